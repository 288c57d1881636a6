/*
 * report.c - rq-bridge's status beside its queue, for 'rqctl stat'.
 *
 * The --status file is wherever the operator chose, so rqctl cannot find
 * it.  Once the queue is open the bridge also writes the same JSON to
 * /dev/shm/rqb.DIR.PID.NAME (DIR "out" or "in", PID its own): in the
 * queue's directory, with the queue's permission bits, one file per
 * bridge, so two bridges on one queue (out and in, or two outs by
 * mistake, the second waiting for the consumer role) are both seen.
 * Replaced atomically (written to rqbt.DIR.PID.NAME, then renamed); left
 * behind on exit so a stopped or killed bridge still shows, and removed by
 * the next bridge of the same direction on that queue, or by 'rqctl unlink'.
 * /dev/shm is writable by everyone, so rqctl trusts none of it
 * (docs/rqctl.md).
 */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bridge.h"

static const char report_dir[] = "/dev/shm";

/* The pid in directory entry FILE if it is "PREFIX.DIR.PID.QUEUE", else 0. */
static long long report_pid(const char *file, const char *prefix, const char *dir,
                            const char *queue)
{
    size_t pl = strlen(prefix), dl = strlen(dir);
    if (strncmp(file, prefix, pl) != 0 || file[pl] != '.' || strncmp(file + pl + 1, dir, dl) != 0 ||
        file[pl + 1 + dl] != '.')
        return 0;
    const char *p = file + pl + 1 + dl + 1;
    long long pid = 0;
    for (; *p >= '0' && *p <= '9' && pid < 100000000; p++)
        pid = pid * 10 + (*p - '0');
    return *p == '.' && strcmp(p + 1, queue) == 0 ? pid : 0;
}

/* Removes the files of bridges of this direction on this queue whose
 * process is gone: a restarted bridge replaces its killed predecessor's. */
static void remove_dead(const bridge *b)
{
    DIR *d = opendir(report_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long pid = report_pid(e->d_name, "rqb", b->p.direction, b->o.queue);
        if (!pid)
            pid = report_pid(e->d_name, "rqbt", b->p.direction, b->o.queue);
        if (pid > 0 && pid != (long long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            unlinkat(dirfd(d), e->d_name, 0); /* another user's: EPERM, left */
    }
    closedir(d);
}

void bridge_report_begin(bridge *b)
{
    char queue_path[300];
    struct stat st;
    snprintf(queue_path, sizeof queue_path, "%s/rq.%s", report_dir, b->o.queue);
    if (stat(queue_path, &st) != 0) {
        fprintf(stderr, "rq-bridge %s: no status beside the queue: %s: %s\n", b->p.direction,
                queue_path, strerror(errno));
        return;
    }
    b->report_mode = (unsigned)(st.st_mode & 0666);
    remove_dead(b);
    snprintf(b->report_path, sizeof b->report_path, "%s/rqb.%s.%lld.%s", report_dir, b->p.direction,
             (long long)getpid(), b->o.queue);
}

/* Writes LEN bytes of TEXT to the new file FD: 0, or -1 with errno. */
static int write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        text += n;
        len -= (size_t)n;
    }
    return 0;
}

void bridge_report_write(bridge *b, const char *text, size_t len)
{
    static int complained;
    if (!b->report_path[0])
        return;
    char tmp[340];
    snprintf(tmp, sizeof tmp, "%s/rqbt.%s.%lld.%s", report_dir, b->p.direction, (long long)getpid(),
             b->o.queue);
    /* A fresh file each time (O_EXCL, never following a link someone put
     * under the name), its mode set past the umask. */
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, b->report_mode);
    int ok = fd >= 0 && fchmod(fd, b->report_mode) == 0 && write_all(fd, text, len) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    if (ok && rename(tmp, b->report_path) == 0)
        return;
    if (!complained++)
        fprintf(stderr, "rq-bridge %s: cannot write the status beside the queue (%s): %s\n",
                b->p.direction, b->report_path, strerror(errno));
    if (fd >= 0)
        unlink(tmp);
}
