/*
 * syscount.c - counting the system calls of a measured process exactly, with the
 * raw_syscalls:sys_enter tracepoint through perf_event_open (root or
 * perf_event_paranoid <= 1); -1 where the kernel does not allow it.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rq.h>

#ifdef RQ_BENCH_HAVE_BOOST
#include "boost_mq.h"
#endif

static long sys_enter_id = -1; /* tracepoint id, -1: no exact syscall counts */
char sys_count_why[160] = "not tried";

/* ---- counting system calls -------------------------------------------- */

static long perf_open(void)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.type = PERF_TYPE_TRACEPOINT;
    a.size = sizeof a;
    a.config = (uint64_t)sys_enter_id;
    a.disabled = 1;
    return syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

void sys_count_init(void)
{
    static const char *paths[] = {"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
                                  "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id"};
    for (size_t i = 0; i < 2 && sys_enter_id < 0; i++) {
        FILE *f = fopen(paths[i], "r");
        if (!f)
            continue;
        if (fscanf(f, "%ld", &sys_enter_id) != 1)
            sys_enter_id = -1;
        fclose(f);
    }
    if (sys_enter_id < 0) {
        snprintf(sys_count_why, sizeof sys_count_why,
                 "no raw_syscalls:sys_enter tracepoint (tracefs not mounted or not root)");
        return;
    }
    long fd = perf_open();
    if (fd < 0) {
        snprintf(sys_count_why, sizeof sys_count_why, "perf_event_open: %s", strerror(errno));
        sys_enter_id = -1;
        return;
    }
    close((int)fd);
    snprintf(sys_count_why, sizeof sys_count_why,
             "exact: raw_syscalls:sys_enter tracepoint per process");
}

static int64_t sys_count_read(struct sys_count *s)
{
    uint64_t v = 0;
    if (s->fd < 0 || read(s->fd, &v, sizeof v) != (ssize_t)sizeof v)
        return -1;
    return (int64_t)v;
}

void sys_count_open(struct sys_count *s)
{
    s->fd = sys_enter_id >= 0 ? (int)perf_open() : -1;
    s->baseline = 0;
    if (s->fd < 0)
        return;
    /* What counting nothing counts (the disabling ioctl itself). */
    ioctl(s->fd, PERF_EVENT_IOC_RESET, 0);
    ioctl(s->fd, PERF_EVENT_IOC_ENABLE, 0);
    ioctl(s->fd, PERF_EVENT_IOC_DISABLE, 0);
    s->baseline = sys_count_read(s);
}

void sys_count_start(struct sys_count *s)
{
    getrusage(RUSAGE_SELF, &s->ru);
    if (s->fd >= 0) {
        ioctl(s->fd, PERF_EVENT_IOC_RESET, 0);
        ioctl(s->fd, PERF_EVENT_IOC_ENABLE, 0);
    }
}

void sys_count_stop(struct sys_count *s, struct child_out *out)
{
    out->syscalls = -1;
    if (s->fd >= 0) {
        ioctl(s->fd, PERF_EVENT_IOC_DISABLE, 0);
        int64_t v = sys_count_read(s);
        if (v >= 0)
            out->syscalls = v > s->baseline ? v - s->baseline : 0;
        close(s->fd);
        s->fd = -1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    out->vcsw = ru.ru_nvcsw - s->ru.ru_nvcsw;
    out->ivcsw = ru.ru_nivcsw - s->ru.ru_nivcsw;
}
