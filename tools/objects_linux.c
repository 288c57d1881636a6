/*
 * objects_linux.c - Linux keeps POSIX shared-memory objects as files in
 * /dev/shm: shm_open("/rq.NAME") is /dev/shm/rq.NAME.
 */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "objects.h"

const char rqctl_objects_where[] = "/dev/shm";

static int by_kind_then_name(const void *a, const void *b)
{
    const struct rqctl_object *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The object kind and name of directory entry FILE, or -1 if it is none.
 * Lock objects ("rql.NAME", "rqcl.NAME") and a queue's poll FIFOs
 * ("rqd.NAME", "rqs.NAME") are none: they go with their queue or
 * coalescing object ('rqctl unlink NAME' also removes stray FIFOs of a
 * queue that is gone). */
static int classify(const char *file, const char **name)
{
    /* "rqc." first: an "rq." prefix never matches it, but be explicit. */
    if (strncmp(file, "rqc.", 4) == 0 && file[4]) {
        *name = file + 4;
        return KIND_COALESCE;
    }
    if (strncmp(file, "rq.", 3) == 0 && file[3]) {
        *name = file + 3;
        return KIND_QUEUE;
    }
    return -1;
}

/* Adds object KIND NAME to *LIST (*N of *CAP used), growing it.  0, or -1
 * (errno ENOMEM) with *LIST as it was. */
static int append(struct rqctl_object **list, size_t *n, size_t *cap, int kind, const char *name)
{
    if (*n == *cap) {
        size_t new_cap = *cap ? 2 * *cap : 16;
        struct rqctl_object *grown = realloc(*list, new_cap * sizeof **list);
        if (!grown)
            return -1;
        *list = grown;
        *cap = new_cap;
    }
    (*list)[*n].kind = (enum rqctl_kind)kind;
    (*list)[*n].name = strdup(name);
    if (!(*list)[*n].name)
        return -1;
    (*n)++;
    return 0;
}

int rqctl_objects_list(struct rqctl_object **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    DIR *dir = opendir(rqctl_objects_where);
    if (!dir)
        return -1;
    int dir_fd = dirfd(dir);
    struct rqctl_object *list = NULL;
    size_t n = 0, cap = 0;
    int failed = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(dir);
        if (!e) {
            failed = errno != 0;
            break;
        }
        const char *name;
        int kind = classify(e->d_name, &name);
        if (kind < 0)
            continue;
        struct stat st;
        if (fstatat(dir_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue; /* gone meanwhile, or not an object shm_open made */
        if (append(&list, &n, &cap, kind, name) != 0) {
            failed = 1;
            break;
        }
    }
    int saved = errno;
    closedir(dir);
    if (failed) {
        rqctl_objects_free(list, n);
        errno = saved ? saved : ENOMEM;
        return -1;
    }
    if (n)
        qsort(list, n, sizeof *list, by_kind_then_name);
    *out = list;
    *count = n;
    return 0;
}

/* "owned by USER (uid N), mode 0NNN" of /dev/shm/FILE, or "" if gone. */
static int describe(const char *file, char *buf, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", rqctl_objects_where, file);
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    struct passwd *pw = getpwuid(st.st_uid);
    snprintf(buf, cap, "owned by %s (uid %lu), mode %04o", pw ? pw->pw_name : "?",
             (unsigned long)st.st_uid, (unsigned)(st.st_mode & 0777));
    return 1;
}

const char *rqctl_objects_owner(enum rqctl_kind kind, const char *name, char *buf, size_t cap)
{
    const char *prefix = kind == KIND_QUEUE ? "rq" : "rqc";
    char file[300], seg[160], locks[160];
    snprintf(file, sizeof file, "%s.%s", prefix, name);
    if (!describe(file, seg, sizeof seg))
        return NULL;
    snprintf(file, sizeof file, "%sl.%s", prefix, name);
    if (describe(file, locks, sizeof locks) && strcmp(seg, locks) != 0)
        snprintf(buf, cap, "%s; its lock object %s", seg, locks);
    else
        snprintf(buf, cap, "%s", seg);
    return buf;
}

int rqctl_objects_info(enum rqctl_kind kind, const char *name, struct rqctl_object_info *info)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.%s", rqctl_objects_where, kind == KIND_QUEUE ? "rq" : "rqc",
             name);
    struct stat st;
    if (stat(path, &st) != 0) /* needs no permission on the object itself */
        return -1;
    struct passwd *pw = getpwuid(st.st_uid);
    info->uid = (unsigned long)st.st_uid;
    snprintf(info->user, sizeof info->user, "%s", pw ? pw->pw_name : "?");
    info->mode = (unsigned)(st.st_mode & 0777);
    info->bytes = st.st_size < 0 ? 0 : (unsigned long long)st.st_size;
    return 0;
}

int rqctl_pid_alive(long long pid)
{
    if (pid <= 0 || pid != (long long)(pid_t)pid)
        return 0;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

void rqctl_objects_free(struct rqctl_object *objects, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(objects[i].name);
    free(objects);
}
