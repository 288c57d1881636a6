/*
 * objects_none.c - 'rqctl list' on an OS whose shared-memory objects
 * cannot be enumerated (POSIX offers no call for it; only Linux shows them
 * as files).
 */
#include <errno.h>
#include <stdlib.h>

#include "objects.h"

const char rqctl_objects_where[] = "(not supported on this OS)";

int rqctl_objects_list(struct rqctl_object **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    errno = ENOSYS;
    return -1;
}

const char *rqctl_objects_owner(enum rqctl_kind kind, const char *name, char *buf, size_t cap)
{
    (void)kind;
    (void)name;
    (void)buf;
    (void)cap;
    return NULL;
}

int rqctl_objects_info(enum rqctl_kind kind, const char *name, struct rqctl_object_info *info)
{
    (void)kind;
    (void)name;
    (void)info;
    errno = ENOSYS;
    return -1;
}

int rqctl_pid_alive(long long pid)
{
    (void)pid;
    return -1;
}

void rqctl_objects_free(struct rqctl_object *objects, size_t count)
{
    (void)count;
    free(objects);
}

int rqctl_bridge_files(const char *queue, long long owner, struct rqctl_bridge_file **out,
                       size_t *count, size_t *more)
{
    (void)queue;
    (void)owner;
    *out = NULL;
    *count = 0;
    *more = 0;
    errno = ENOSYS;
    return -1;
}

int rqctl_bridge_files_remove(const char *queue)
{
    (void)queue;
    return 0;
}
