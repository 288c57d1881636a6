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
#include <time.h>
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

/* ---- rq-bridge's status files ------------------------------------------ */

/* The direction and pid of directory entry FILE if it is
 * "PREFIX.DIR.PID.QUEUE" (DIR out or in), else 0. */
static int bridge_entry(const char *file, const char *prefix, const char *queue, char dir[4],
                        long long *pid)
{
    size_t pl = strlen(prefix);
    if (strncmp(file, prefix, pl) != 0)
        return 0;
    const char *p = file + pl;
    if (strncmp(p, "out.", 4) == 0)
        memcpy(dir, "out", 4), p += 4;
    else if (strncmp(p, "in.", 3) == 0)
        memcpy(dir, "in", 3), p += 3;
    else
        return 0;
    *pid = 0;
    const char *digits = p;
    for (; *p >= '0' && *p <= '9' && p - digits < 10; p++)
        *pid = *pid * 10 + (*p - '0');
    return p > digits && *p == '.' && strcmp(p + 1, queue) == 0;
}

/* Reads the file at DIR_FD/NAME into F: bounded, never following a link,
 * never blocking on a FIFO someone put there. */
static void bridge_read(int dir_fd, const char *name, struct rqctl_bridge_file *f)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        f->unreadable = fd < 0 ? errno : EINVAL;
        if (fd >= 0)
            close(fd);
        return;
    }
    f->uid = (unsigned long)st.st_uid;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    f->age =
        (double)(now.tv_sec - st.st_mtim.tv_sec) + (double)(now.tv_nsec - st.st_mtim.tv_nsec) / 1e9;
    char extra;
    ssize_t n = read(fd, f->text, sizeof f->text);
    if (n < 0)
        f->unreadable = errno;
    else if ((size_t)n == sizeof f->text && read(fd, &extra, 1) == 1)
        f->too_long = 1;
    else
        f->len = (size_t)n;
    close(fd);
}

static int by_direction_then_pid(const void *a, const void *b)
{
    const struct rqctl_bridge_file *x = a, *y = b;
    int c = strcmp(y->direction, x->direction); /* "out" first */
    return c ? c : (x->pid > y->pid) - (x->pid < y->pid);
}

/* Where the next file found goes in LIST of N (N < MAX: a free place),
 * or -1 when it is not kept: a full list gives a place held by a file not
 * OWNER's to one of OWNER's (the file's owner is known only once it is
 * read, so a full list reads it into SPARE first). */
static int bridge_place(struct rqctl_bridge_file *list, size_t n, long long owner,
                        const struct rqctl_bridge_file *spare)
{
    if (n < RQCTL_BRIDGE_FILES_MAX)
        return (int)n;
    if (owner < 0 || spare->uid != (unsigned long)owner)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (list[i].uid != (unsigned long)owner)
            return (int)i;
    return -1;
}

int rqctl_bridge_files(const char *queue, long long owner, struct rqctl_bridge_file **out,
                       size_t *count, size_t *more)
{
    *out = NULL;
    *count = 0;
    *more = 0;
    DIR *dir = opendir(rqctl_objects_where);
    if (!dir)
        return -1;
    struct rqctl_bridge_file *list = NULL, spare;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char direction[4] = "";
        long long pid;
        if (!bridge_entry(e->d_name, "rqb.", queue, direction, &pid))
            continue;
        if (!list && !(list = calloc(RQCTL_BRIDGE_FILES_MAX, sizeof *list))) {
            closedir(dir);
            return -1;
        }
        memset(&spare, 0, sizeof spare);
        memcpy(spare.direction, direction, sizeof direction);
        spare.pid = pid;
        bridge_read(dirfd(dir), e->d_name, &spare);
        int at = bridge_place(list, n, owner, &spare);
        if (at < 0 || (size_t)at < n)
            ++*more; /* this file, or the one it displaces */
        if (at < 0)
            continue;
        list[at] = spare;
        if ((size_t)at == n)
            n++;
    }
    closedir(dir);
    if (n)
        qsort(list, n, sizeof *list, by_direction_then_pid);
    *out = list;
    *count = n;
    return 0;
}

int rqctl_bridge_files_remove(const char *queue)
{
    DIR *dir = opendir(rqctl_objects_where);
    if (!dir)
        return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char direction[4];
        long long pid;
        if ((bridge_entry(e->d_name, "rqb.", queue, direction, &pid) ||
             bridge_entry(e->d_name, "rqbt.", queue, direction, &pid)) &&
            unlinkat(dirfd(dir), e->d_name, 0) == 0)
            removed++;
    }
    closedir(dir);
    return removed;
}
