/*
 * objects_linux.c - Linux keeps POSIX shared-memory objects as files in
 * /dev/shm: shm_open("/rq.NAME") is /dev/shm/rq.NAME.
 */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "objects.h"

const char rqctl_objects_where[] = "/dev/shm";

static int by_kind_then_name(const void *a, const void *b)
{
    const struct rqctl_object *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The object kind and name of directory entry FILE, or -1 if it is none. */
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
        if (n == cap) {
            size_t new_cap = cap ? 2 * cap : 16;
            struct rqctl_object *grown = realloc(list, new_cap * sizeof *list);
            if (!grown) {
                failed = 1;
                break;
            }
            list = grown;
            cap = new_cap;
        }
        list[n].kind = (enum rqctl_kind)kind;
        list[n].name = strdup(name);
        if (!list[n].name) {
            failed = 1;
            break;
        }
        n++;
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

void rqctl_objects_free(struct rqctl_object *objects, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(objects[i].name);
    free(objects);
}
