/*
 * rq_bench.c - rq side by side with the physical limit and with what users
 * would pick instead, in one run on one machine (Linux).
 *
 * Every figure comes from real processes: the parent makes the channel,
 * forks a sender pinned to one core and a receiver pinned to another
 * (MPSC: every producer on the sender's core), starts them together and
 * collects what they measured through a shared control block.
 *
 *   throughput   the senders push for --duration seconds, then an end
 *                marker; msgs/s = messages / (last marker seen - start),
 *                median of --repeats runs.
 *   round trip   the initiator sends, the echo sends the message back;
 *                one time stamp per round trip, --round-trips of them
 *                after a warm-up; median, p99, p99.9.
 *
 * Every message carries its sender, its sequence number at both ends
 * (a torn message has two different ones) and, with --check full, a
 * pattern in every byte; the receiver checks each one.  A lost, repeated,
 * reordered, torn or corrupted message fails the run, and any failed run
 * makes the exit status 1: that is what the bench-smoke test relies on.
 * System calls are counted exactly (the raw_syscalls:sys_enter tracepoint
 * through perf_event_open) when the kernel allows it, and rq's own wait and
 * wake counters always: with both sides busy rq must make none.
 */
#define _GNU_SOURCE
#include "bench.h"

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

#define MAX_SENDERS 3
#define MAX_CHILDREN (MAX_SENDERS + 1)
#define MAX_REPEATS 15
#define MAX_SIZES 8
#define INJECT_AT 50 /* --inject-corruption: the message that gets spoiled */
#define CORRUPT "corrupt message: "

/* ---- options ------------------------------------------------------------ */

struct options {
    int selected[64];        /* per bench_transports[] entry */
    int named[64];           /* named explicitly (not through a group) */
    size_t sizes[MAX_SIZES];
    int nsizes;
    unsigned tput_modes;     /* 0: each transport's default */
    unsigned lat_modes;
    int do_tput, do_lat;
    double duration;
    int repeats;
    long round_trips, warmup; /* warm-up: per round */
    int lat_rounds;           /* round trips are measured in this many rounds */
    long rt_per_round;
    uint32_t slots;
    int cpu_a, cpu_b;
    int check_full;
    int quick, inject;
    long min_msgs;
    double timeout;          /* per run; 0: derived */
    const char *csv, *json, *markdown;
};

/* ---- the control block the children report through ------------------- */

struct child_out {
    int64_t t_start_ns, t_end_ns;
    uint64_t msgs;
    int64_t syscalls; /* -1: could not be counted */
    int64_t vcsw, ivcsw;
    char err[BENCH_ERR_MAX];
};

struct control {
    _Atomic uint32_t ready;
    _Atomic uint32_t go; /* futex word */
    struct child_out out[MAX_CHILDREN];
};

static struct control *ctl;
static uint64_t *lat_samples; /* shared: the initiator's round trips, in ticks */
static double ticks_per_ns = 1.0;
static double timer_cost_ns;
static long sys_enter_id = -1; /* tracepoint id, -1: no exact syscall counts */
static char sys_count_why[160] = "not tried";
static unsigned run_serial;
static volatile uint64_t fold_sink;
static volatile sig_atomic_t stop_requested; /* SIGINT/SIGTERM: stop, clean up */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- messages ------------------------------------------------------------ */

/* tag = sender << 56 | seq; an end marker has TAG_END and the count sent. */
#define TAG_END (UINT64_C(1) << 55)
#define TAG_SEQ (TAG_END - 1)

static uint64_t tag_make(int sender, uint64_t seq)
{
    return (uint64_t)sender << 56 | seq;
}

static unsigned char pattern_byte(uint64_t tag, size_t i)
{
    uint64_t mix = tag * UINT64_C(0x9E3779B97F4A7C15);
    return (unsigned char)((mix >> 56) + i * 7 + (i >> 8) * 3);
}

/* Builds message TAG in BUF.  Without FULL only the two tags are written:
 * the rest of BUF keeps what it had (the sender's staging buffer). */
static void msg_build(unsigned char *buf, size_t size, uint64_t tag, int full)
{
    if (full) {
        for (size_t i = 8; i + 8 < size; i++)
            buf[i] = pattern_byte(tag, i);
    }
    memcpy(buf, &tag, 8);
    if (size >= 16)
        memcpy(buf + size - 8, &tag, 8);
}

static int msg_check(const unsigned char *m, size_t len, size_t size, int full, uint64_t *tag,
                     char *err)
{
    if (len != size) {
        snprintf(err, BENCH_ERR_MAX, CORRUPT "length %zu, expected %zu", len, size);
        return -1;
    }
    memcpy(tag, m, 8);
    if (size >= 16) {
        uint64_t tail;
        memcpy(&tail, m + size - 8, 8);
        if (tail != *tag) {
            snprintf(err, BENCH_ERR_MAX, CORRUPT "torn: head tag %#llx, tail tag %#llx",
                     (unsigned long long)*tag, (unsigned long long)tail);
            return -1;
        }
    }
    if (full) {
        for (size_t i = 8; i + 8 < size; i++) {
            if (m[i] != pattern_byte(*tag, i)) {
                snprintf(err, BENCH_ERR_MAX, CORRUPT "byte %zu of tag %#llx", i,
                         (unsigned long long)*tag);
                return -1;
            }
        }
    }
    return 0;
}

/* A receiver handed the message in place reads every byte of it, as a copy
 * would have: otherwise zero-copy would win by never fetching the data. */
static void fold(const unsigned char *m, size_t len)
{
    uint64_t x = 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, m + i, 8);
        x ^= w;
    }
    for (; i < len; i++)
        x += m[i];
    fold_sink ^= x;
}

/* ---- counting system calls -------------------------------------------- */

struct sys_count {
    int fd;
    int64_t baseline;
    struct rusage ru;
};

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

static void sys_count_init(void)
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

static void sys_count_open(struct sys_count *s)
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

static void sys_count_start(struct sys_count *s)
{
    getrusage(RUSAGE_SELF, &s->ru);
    if (s->fd >= 0) {
        ioctl(s->fd, PERF_EVENT_IOC_RESET, 0);
        ioctl(s->fd, PERF_EVENT_IOC_ENABLE, 0);
    }
}

static void sys_count_stop(struct sys_count *s, struct child_out *out)
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

/* ---- children ------------------------------------------------------------ */

enum kind { KIND_TPUT, KIND_LAT };

struct job {
    const struct transport *t;
    const struct options *o;
    struct chan *ping, *pong; /* pong: round trips only */
    int index;                /* sender number */
    long warmup, n;           /* round trips */
    enum { INJECT_NONE, INJECT_SPOIL, INJECT_DROP } inject; /* sender 0, message INJECT_AT */
};

static void child_barrier(void)
{
    atomic_fetch_add(&ctl->ready, 1);
    while (atomic_load(&ctl->go) == 0)
        syscall(SYS_futex, (uint32_t *)&ctl->go, FUTEX_WAIT, 0, NULL, NULL, 0);
}

/* One batch of BENCH_BURST messages from SEQ on, built in BUFS and handed
 * over in one call (less the dropped one, when that is injected). */
static int send_batch(const struct job *j, struct endpoint *ep, unsigned char *bufs,
                      uint64_t seq, char *err)
{
    size_t size = j->ping->p.msg_size;
    const void *msgs[BENCH_BURST];
    int n = 0;
    for (int i = 0; i < BENCH_BURST; i++) {
        unsigned char *m = bufs + (size_t)i * size;
        msg_build(m, size, tag_make(j->index, seq + (uint64_t)i), j->o->check_full);
        if (j->index == 0 && seq + (uint64_t)i == INJECT_AT) {
            if (j->inject == INJECT_DROP)
                continue;
            if (j->inject == INJECT_SPOIL)
                m[size - 1] ^= 0x5a;
        }
        msgs[n++] = m;
    }
    return j->t->send_burst(ep, msgs, size, n, err);
}

/* The burst form of the sender: the deadline is looked at once a batch. */
static int tput_producer_burst(const struct job *j, struct child_out *out,
                               struct endpoint *ep, unsigned char *bufs)
{
    size_t size = j->ping->p.msg_size;
    for (int i = 0; i < BENCH_BURST; i++)
        msg_build(bufs + (size_t)i * size, size, 0, 1); /* full patterns once */
    int64_t deadline = now_ns() + (int64_t)(j->o->duration * 1e9);
    uint64_t seq = 0;
    while ((long)seq < j->o->min_msgs || now_ns() < deadline) {
        if (send_batch(j, ep, bufs, seq, out->err) != 0)
            return -1;
        seq += BENCH_BURST;
    }
    const void *end = bufs;
    msg_build(bufs, size, tag_make(j->index, TAG_END | seq), j->o->check_full);
    if (j->t->send_burst(ep, &end, size, 1, out->err) != 0)
        return -1;
    out->msgs = seq;
    return 0;
}

static int tput_producer_bursts(const struct job *j, struct child_out *out)
{
    struct endpoint ep = {.c = j->ping, .fd = -1};
    unsigned char *bufs = calloc(BENCH_BURST, j->ping->p.msg_size);
    if (!bufs) {
        bench_errno(out->err, "calloc");
        return -1;
    }
    if (j->t->open(j->ping, &ep, 1, j->index, out->err) != 0)
        return -1;
    struct sys_count sc;
    sys_count_open(&sc);
    child_barrier();
    sys_count_start(&sc);
    int64_t start = now_ns();
    if (tput_producer_burst(j, out, &ep, bufs) != 0)
        return -1;
    out->t_end_ns = now_ns();
    sys_count_stop(&sc, out);
    out->t_start_ns = start;
    j->t->close(&ep);
    free(bufs);
    return 0;
}

static int tput_producer(const struct job *j, struct child_out *out)
{
    const struct transport *t = j->t;
    if (t->burst)
        return tput_producer_bursts(j, out);
    size_t size = j->ping->p.msg_size;
    struct endpoint ep = {.c = j->ping, .fd = -1};
    unsigned char *buf = calloc(1, size);
    if (!buf) {
        bench_errno(out->err, "calloc");
        return -1;
    }
    msg_build(buf, size, 0, 1); /* a full pattern once; later only the tags move */
    if (t->open(j->ping, &ep, 1, j->index, out->err) != 0)
        return -1;
    struct sys_count sc;
    sys_count_open(&sc);
    child_barrier();
    sys_count_start(&sc);
    int64_t start = now_ns(), deadline = start + (int64_t)(j->o->duration * 1e9);
    uint64_t seq = 0;
    for (;; seq++) {
        if ((seq & 1023) == 0 && (long)seq >= j->o->min_msgs && now_ns() >= deadline)
            break;
        msg_build(buf, size, tag_make(j->index, seq), j->o->check_full);
        if (j->index == 0 && seq == INJECT_AT) {
            if (j->inject == INJECT_DROP)
                continue;
            if (j->inject == INJECT_SPOIL)
                buf[size - 1] ^= 0x5a;
        }
        if (t->send(&ep, buf, size, out->err) != 0)
            return -1;
    }
    msg_build(buf, size, tag_make(j->index, TAG_END | seq), j->o->check_full);
    if (t->send(&ep, buf, size, out->err) != 0)
        return -1;
    out->t_end_ns = now_ns();
    sys_count_stop(&sc, out);
    out->t_start_ns = start;
    out->msgs = seq;
    t->close(&ep);
    return 0;
}

/* What the receiver has seen: the next sequence number due per sender,
 * end markers and messages. */
struct tally {
    uint64_t next[MAX_SENDERS];
    int ended;
    uint64_t total;
};

/* Checks one received message and counts it.  0, or -1 with ERR set. */
static int account(const struct job *j, struct tally *ty, const void *msg, size_t len, char *err)
{
    int full = j->o->check_full;
    uint64_t tag;
    if (msg_check(msg, len, j->ping->p.msg_size, full, &tag, err) != 0)
        return -1;
    if (j->t->in_place && !full)
        fold(msg, len);
    unsigned sender = (unsigned)(tag >> 56);
    uint64_t seq = tag & TAG_SEQ;
    if (sender >= (unsigned)j->t->senders) {
        snprintf(err, BENCH_ERR_MAX, CORRUPT "bad tag %#llx", (unsigned long long)tag);
        return -1;
    }
    if (seq != ty->next[sender]) {
        snprintf(err, BENCH_ERR_MAX,
                 CORRUPT "sender %u: %s %llu where %llu was due (lost, repeated or reordered)",
                 sender, tag & TAG_END ? "end marker after" : "message",
                 (unsigned long long)seq, (unsigned long long)ty->next[sender]);
        return -1;
    }
    if (tag & TAG_END) {
        ty->ended++;
        ty->next[sender] = TAG_END; /* nothing may follow it */
    } else {
        ty->next[sender]++;
        ty->total++;
    }
    return 0;
}

/* One message, or (burst transports) one batch. */
static int receive(const struct job *j, struct endpoint *ep, struct tally *ty, char *err)
{
    const struct transport *t = j->t;
    const void *msgs[BENCH_BURST];
    size_t lens[BENCH_BURST];
    int n = 1;
    if (t->burst) {
        if (t->recv_burst(ep, msgs, lens, BENCH_BURST, &n, err) != 0)
            return -1;
    } else if (t->recv(ep, &msgs[0], &lens[0], err) != 0) {
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (account(j, ty, msgs[i], lens[i], err) != 0)
            return -1;
    if (t->burst)
        return t->recv_burst_done ? t->recv_burst_done(ep, n, err) : 0;
    return t->recv_done ? t->recv_done(ep, err) : 0;
}

static int tput_consumer(const struct job *j, struct child_out *out)
{
    const struct transport *t = j->t;
    struct tally ty = {{0}, 0, 0};
    struct endpoint ep = {.c = j->ping, .fd = -1};
    if (t->open(j->ping, &ep, 0, 0, out->err) != 0)
        return -1;
    struct sys_count sc;
    sys_count_open(&sc);
    child_barrier();
    sys_count_start(&sc);
    while (ty.ended < t->senders)
        if (receive(j, &ep, &ty, out->err) != 0)
            return -1;
    out->t_end_ns = now_ns();
    sys_count_stop(&sc, out);
    out->msgs = ty.total;
    t->close(&ep);
    return 0;
}

/* The initiator (INITIATOR) sends message i and waits for it back; the
 * echo checks it and sends the same bytes back. */
static int lat_side(const struct job *j, struct child_out *out, int initiator)
{
    const struct transport *t = j->t;
    long total = j->warmup + j->n;
    uint64_t *samples = initiator ? lat_samples : NULL;
    struct sys_count sc;
    if (t->pingpong) {
        sys_count_open(&sc);
        child_barrier();
        sys_count_start(&sc);
        if (t->pingpong(j->ping, initiator, j->warmup, j->n, samples, out->err) != 0)
            return -1;
        sys_count_stop(&sc, out);
    } else {
        size_t size = j->ping->p.msg_size;
        int full = j->o->check_full;
        struct endpoint out_ep = {.c = initiator ? j->ping : j->pong, .fd = -1};
        struct endpoint in_ep = {.c = initiator ? j->pong : j->ping, .fd = -1};
        if (t->open(out_ep.c, &out_ep, 1, 0, out->err) != 0 ||
            t->open(in_ep.c, &in_ep, 0, 0, out->err) != 0)
            return -1;
        unsigned char *buf = calloc(1, size);
        if (!buf) {
            bench_errno(out->err, "calloc");
            return -1;
        }
        msg_build(buf, size, 0, 1);
        sys_count_open(&sc);
        child_barrier();
        sys_count_start(&sc);
        uint64_t prev = bench_ticks();
        for (long i = 0; i < total; i++) {
            uint64_t want = tag_make(0, (uint64_t)i), tag;
            const void *msg;
            size_t len;
            if (initiator) {
                msg_build(buf, size, want, full);
                if (j->inject == INJECT_SPOIL && i == INJECT_AT)
                    buf[size - 1] ^= 0x5a;
                if (t->send(&out_ep, buf, size, out->err) != 0)
                    return -1;
            }
            if (t->recv(&in_ep, &msg, &len, out->err) != 0)
                return -1;
            if (msg_check(msg, len, size, full, &tag, out->err) != 0)
                return -1;
            if (tag != want) {
                snprintf(out->err, BENCH_ERR_MAX, CORRUPT "%s got tag %#llx, expected %#llx",
                         initiator ? "initiator" : "echo", (unsigned long long)tag,
                         (unsigned long long)want);
                return -1;
            }
            if (initiator) {
                if (t->in_place && !full)
                    fold(msg, len);
            } else if (t->send(&out_ep, msg, len, out->err) != 0) {
                return -1;
            }
            if (t->recv_done && t->recv_done(&in_ep, out->err) != 0)
                return -1;
            if (initiator) {
                uint64_t now = bench_ticks();
                if (i >= j->warmup)
                    samples[i - j->warmup] = now - prev;
                prev = now;
            }
        }
        sys_count_stop(&sc, out);
        t->close(&in_ep);
        t->close(&out_ep);
    }
    out->msgs = (uint64_t)total;
    return 0;
}

static int lat_initiator(const struct job *j, struct child_out *out)
{
    return lat_side(j, out, 1);
}

static int lat_echo(const struct job *j, struct child_out *out)
{
    return lat_side(j, out, 0);
}

/* ---- the parent: running one measurement ------------------------------- */

typedef int (*child_fn)(const struct job *, struct child_out *);

struct run {
    pid_t pid[MAX_CHILDREN];
    const char *role[MAX_CHILDREN];
    int done[MAX_CHILDREN];
    int n;
};

static int spawn(struct run *r, int cpu, const char *role, child_fn fn, const struct job *j,
                 char *err)
{
    int slot = r->n;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        bench_errno(err, "fork");
        return -1;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a killed harness */
        struct child_out *out = &ctl->out[slot];
        if (cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpu, &set);
            if (sched_setaffinity(0, sizeof set, &set) != 0) {
                bench_errno(out->err, "sched_setaffinity");
                _exit(1);
            }
        }
        _exit(fn(j, out) == 0 ? 0 : 1);
    }
    r->pid[slot] = pid;
    r->role[slot] = role;
    r->done[slot] = 0;
    r->n++;
    return 0;
}

static void describe_exit(const struct run *r, int i, int status, char *err)
{
    const char *text = ctl->out[i].err;
    if (WIFEXITED(status) && text[0])
        snprintf(err, BENCH_ERR_MAX, "%s: %.200s", r->role[i], text);
    else if (WIFSIGNALED(status))
        snprintf(err, BENCH_ERR_MAX, "%s: killed by signal %d (%s)", r->role[i],
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(err, BENCH_ERR_MAX, "%s: exited with status %d", r->role[i],
                 WEXITSTATUS(status));
}

static void kill_all(struct run *r)
{
    for (int i = 0; i < r->n; i++) {
        if (!r->done[i]) {
            kill(r->pid[i], SIGKILL);
            waitpid(r->pid[i], NULL, 0);
            r->done[i] = 1;
        }
    }
}

/* Reaps whatever has exited; -1 with ERR once any child failed. */
static int reap(struct run *r, char *err)
{
    for (int i = 0; i < r->n; i++) {
        int status;
        if (r->done[i] || waitpid(r->pid[i], &status, WNOHANG) != r->pid[i])
            continue;
        r->done[i] = 1;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            describe_exit(r, i, status, err);
            return -1;
        }
    }
    return 0;
}

static int all_done(const struct run *r)
{
    for (int i = 0; i < r->n; i++)
        if (!r->done[i])
            return 0;
    return 1;
}

static int wait_ready(struct run *r, double timeout_s, char *err)
{
    int64_t until = now_ns() + (int64_t)(timeout_s * 1e9);
    while (atomic_load(&ctl->ready) < (uint32_t)r->n) {
        if (stop_requested) {
            snprintf(err, BENCH_ERR_MAX, "interrupted");
            return -1;
        }
        if (reap(r, err) != 0 || all_done(r)) {
            if (!err[0])
                snprintf(err, BENCH_ERR_MAX, "a child exited before the start");
            return -1;
        }
        if (now_ns() > until) {
            snprintf(err, BENCH_ERR_MAX, "children not ready after %.0f s", timeout_s);
            return -1;
        }
        struct timespec pause = {0, 200000};
        nanosleep(&pause, NULL);
    }
    return 0;
}

static void start_all(void)
{
    atomic_store(&ctl->go, 1);
    syscall(SYS_futex, (uint32_t *)&ctl->go, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Waits (SIGCHLD is blocked; sigtimedwait sleeps until one comes) for every
 * child, at most TIMEOUT_S.  A failed child stops the others. */
static int wait_all(struct run *r, double timeout_s, char *err)
{
    int64_t until = now_ns() + (int64_t)(timeout_s * 1e9);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    for (;;) {
        if (reap(r, err) != 0)
            return -1;
        if (all_done(r))
            return 0;
        if (stop_requested) {
            snprintf(err, BENCH_ERR_MAX, "interrupted");
            return -1;
        }
        int64_t left = until - now_ns();
        if (left <= 0) {
            snprintf(err, BENCH_ERR_MAX, "timed out after %.1f s (a side hung)", timeout_s);
            return -1;
        }
        struct timespec ts = {left / 1000000000, left % 1000000000};
        if (ts.tv_sec > 1)
            ts = (struct timespec){1, 0};
        (void)sigtimedwait(&chld, NULL, &ts);
    }
}

struct measured {
    double rate; /* throughput; round trips are in lat_samples */
    /* costs */
    uint64_t msgs;        /* messages (throughput) or round trips incl. warm-up */
    int64_t syscalls;     /* all children; -1 unknown */
    int64_t vcsw, ivcsw;
    int64_t rq_calls;     /* rq's waits + wakes; -1: not rq */
    uint32_t depth;
    char note[96];
};

static int chan_make(struct chan *c, const struct transport *t, size_t size, enum bench_mode mode,
                     const struct options *o, const char *dir, char *err)
{
    memset(c, 0, sizeof *c);
    c->t = t;
    c->fd[0] = c->fd[1] = -1;
    c->p.msg_size = size;
    c->p.slots = o->slots;
    c->p.senders = t->senders;
    c->p.mode = mode;
    snprintf(c->tag, sizeof c->tag, "%ld-%u-%s", (long)getpid(), run_serial, dir);
    c->p.tag = c->tag;
    return t->create(c, err);
}

static double run_timeout(const struct options *o, enum kind kind, enum bench_mode mode)
{
    if (o->timeout > 0)
        return o->timeout;
    if (kind == KIND_TPUT)
        return o->duration + 30;
    /* A blocking round trip waits for the scheduler: on a loaded machine
     * (the woken side's core busy with another task) that can be ms. */
    return 30 + (double)(o->rt_per_round + o->warmup) * (mode == MODE_BLOCK ? 5e-3 : 1e-4);
}

static int measure(const struct transport *t, enum kind kind, size_t size, enum bench_mode mode,
                   const struct options *o, struct measured *m, char *err)
{
    struct chan ping, pong;
    int have_pong = 0, rc = -1;
    memset(m, 0, sizeof *m);
    m->rq_calls = -1;
    run_serial++;
    err[0] = 0;
    if (chan_make(&ping, t, size, mode, o, "ping", err) != 0)
        return -1;
    m->depth = ping.depth;
    snprintf(m->note, sizeof m->note, "%s", ping.note);
    if (kind == KIND_LAT && !t->pingpong) {
        if (chan_make(&pong, t, size, mode, o, "pong", err) != 0)
            goto out;
        have_pong = 1;
    }
    memset(ctl, 0, sizeof *ctl);
    struct run r = {.n = 0};
    struct job jobs[MAX_CHILDREN];
    for (int i = 0; i < MAX_CHILDREN; i++)
        jobs[i] = (struct job){.t = t, .o = o, .ping = &ping, .pong = have_pong ? &pong : NULL,
                               .index = i, .warmup = o->warmup, .n = o->rt_per_round};
    /* --inject-corruption: throughput runs alternately spoil a byte and
     * drop a message; a round trip can only spoil (a drop would hang it). */
    for (int i = 0; o->inject && i < MAX_CHILDREN; i++)
        jobs[i].inject = kind == KIND_LAT || run_serial % 2 ? INJECT_SPOIL : INJECT_DROP;
    if (kind == KIND_TPUT) {
        if (spawn(&r, o->cpu_b, "consumer", tput_consumer, &jobs[0], err) != 0)
            goto out;
        static const char *names[MAX_SENDERS] = {"producer 0", "producer 1", "producer 2"};
        for (int p = 0; p < t->senders; p++)
            if (spawn(&r, o->cpu_a, names[p], tput_producer, &jobs[p], err) != 0)
                goto stop;
    } else {
        if (spawn(&r, o->cpu_a, "initiator", lat_initiator, &jobs[0], err) != 0 ||
            spawn(&r, o->cpu_b, "echo", lat_echo, &jobs[0], err) != 0)
            goto stop;
    }
    double timeout = run_timeout(o, kind, mode);
    if (wait_ready(&r, 30, err) != 0)
        goto stop;
    uint64_t waits0 = 0, wakes0 = 0, waits1 = 0, wakes1 = 0, pw0 = 0, pk0 = 0, pw1 = 0, pk1 = 0;
    int counted = t->counters && t->counters(&ping, &waits0, &wakes0) == 0 &&
                  (!have_pong || t->counters(&pong, &pw0, &pk0) == 0);
    start_all();
    if (wait_all(&r, timeout, err) != 0)
        goto stop;
    if (counted && t->counters(&ping, &waits1, &wakes1) == 0 &&
        (!have_pong || t->counters(&pong, &pw1, &pk1) == 0))
        m->rq_calls = (int64_t)((waits1 - waits0) + (wakes1 - wakes0) + (pw1 - pw0) + (pk1 - pk0));

    m->syscalls = 0;
    for (int i = 0; i < r.n; i++) {
        const struct child_out *c = &ctl->out[i];
        m->syscalls = (m->syscalls < 0 || c->syscalls < 0) ? -1 : m->syscalls + c->syscalls;
        m->vcsw += c->vcsw;
        m->ivcsw += c->ivcsw;
    }
    if (kind == KIND_TPUT) {
        int64_t start = INT64_MAX;
        uint64_t sent = 0;
        for (int i = 1; i < r.n; i++) {
            if (ctl->out[i].t_start_ns < start)
                start = ctl->out[i].t_start_ns;
            sent += ctl->out[i].msgs;
        }
        m->msgs = ctl->out[0].msgs;
        if (m->msgs != sent) {
            snprintf(err, BENCH_ERR_MAX, CORRUPT "%llu sent, %llu received",
                     (unsigned long long)sent, (unsigned long long)m->msgs);
            goto out;
        }
        double seconds = (double)(ctl->out[0].t_end_ns - start) / 1e9;
        m->rate = seconds > 0 ? (double)m->msgs / seconds : 0;
    } else {
        m->msgs = ctl->out[0].msgs;
    }
    rc = 0;
    goto out;
stop:
    kill_all(&r);
out:
    if (have_pong)
        t->destroy(&pong);
    t->destroy(&ping);
    return rc;
}

/* ---- results --------------------------------------------------------- */

struct result {
    const struct transport *t;
    size_t size;
    enum bench_mode mode;
    int has_tput, has_lat;
    int tput_ok, lat_ok;
    char tput_err[BENCH_ERR_MAX], lat_err[BENCH_ERR_MAX];
    int nrep;
    double rates[MAX_REPEATS];
    double rate, mbps, tput_sys, tput_csw, tput_rq; /* per message; -1 unknown */
    double med, p99, p999, mean, min, max;
    double lat_sys, lat_csw, lat_rq; /* per round trip; -1 unknown */
    long round_trips;
    uint64_t *pool;    /* every timed round trip of every round, ticks */
    long npool;
    uint64_t lat_acc_rts;
    int64_t lat_acc_sys, lat_acc_csw, lat_acc_rq;
    double best;       /* highest throughput of the rounds */
    /* throughput sums over the rounds so far */
    uint64_t acc_msgs;
    int64_t acc_sys, acc_csw, acc_rq;
    int64_t preempted; /* involuntary context switches, all runs of the row */
    uint32_t depth;
    char note[96];
    double x_ring, x_floor; /* 0: no reference */
};

static struct result *results;
static size_t nresults;
static int failures;

static const char *mode_name(enum bench_mode m)
{
    return m == MODE_BUSY ? "busy" : "block";
}

static double median(double *v, int n)
{
    double s[MAX_REPEATS];
    memcpy(s, v, (size_t)n * sizeof *v);
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && s[k - 1] > s[k]; k--) {
            double x = s[k];
            s[k] = s[k - 1];
            s[k - 1] = x;
        }
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double per(int64_t count, uint64_t n)
{
    return count < 0 || n == 0 ? -1 : (double)count / (double)n;
}

static void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

/* One throughput run of RES, added to its rounds.  Rounds interleave:
 * round k runs every row once before round k+1 starts, so a slow drift of
 * the machine (other load, the host moving the vCPUs) spreads over all
 * transports instead of landing on one of them. */
static void tput_round(struct result *res, const struct options *o)
{
    struct measured m;
    if (!res->tput_ok)
        return;
    if (measure(res->t, KIND_TPUT, res->size, res->mode, o, &m, res->tput_err) != 0) {
        res->tput_ok = 0;
        return;
    }
    res->rates[res->nrep++] = m.rate;
    res->acc_msgs += m.msgs;
    res->acc_sys = (res->acc_sys < 0 || m.syscalls < 0) ? -1 : res->acc_sys + m.syscalls;
    res->acc_csw += m.vcsw;
    res->acc_rq = (res->acc_rq < 0 || m.rq_calls < 0) ? -1 : res->acc_rq + m.rq_calls;
    res->preempted += m.ivcsw;
    res->depth = m.depth;
    snprintf(res->note, sizeof res->note, "%s", m.note);
}

static void tput_finish(struct result *res)
{
    if (!res->has_tput || !res->tput_ok)
        return;
    res->rate = median(res->rates, res->nrep);
    for (int k = 0; k < res->nrep; k++)
        if (res->rates[k] > res->best)
            res->best = res->rates[k];
    res->mbps = res->rate * (double)res->size / 1e6;
    res->tput_sys = per(res->acc_sys, res->acc_msgs);
    res->tput_csw = per(res->acc_csw, res->acc_msgs);
    res->tput_rq = per(res->acc_rq, res->acc_msgs);
}

/* One round of RES's round trips, pooled with its other rounds (the
 * rounds interleave like the throughput rounds). */
static void lat_round(struct result *res, const struct options *o)
{
    struct measured m;
    if (!res->lat_ok)
        return;
    if (measure(res->t, KIND_LAT, res->size, res->mode, o, &m, res->lat_err) != 0) {
        res->lat_ok = 0;
        return;
    }
    if (!res->pool) {
        res->pool = malloc((size_t)o->rt_per_round * (size_t)o->lat_rounds * sizeof *res->pool);
        if (!res->pool) {
            res->lat_ok = 0;
            snprintf(res->lat_err, BENCH_ERR_MAX, "out of memory for samples");
            return;
        }
    }
    memcpy(res->pool + res->npool, lat_samples, (size_t)o->rt_per_round * sizeof *res->pool);
    res->npool += o->rt_per_round;
    res->lat_acc_rts += m.msgs;
    res->lat_acc_sys = (res->lat_acc_sys < 0 || m.syscalls < 0) ? -1 : res->lat_acc_sys + m.syscalls;
    res->lat_acc_csw += m.vcsw;
    res->lat_acc_rq = (res->lat_acc_rq < 0 || m.rq_calls < 0) ? -1 : res->lat_acc_rq + m.rq_calls;
    res->preempted += m.ivcsw;
    if (!res->depth) {
        res->depth = m.depth;
        snprintf(res->note, sizeof res->note, "%s", m.note);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void lat_finish(struct result *res)
{
    if (!res->has_lat || !res->lat_ok || res->npool == 0)
        return;
    uint64_t *s = res->pool;
    long n = res->npool;
    qsort(s, (size_t)n, sizeof *s, cmp_u64);
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += (double)s[i];
    res->med = (double)s[n / 2] / ticks_per_ns;
    res->p99 = (double)s[(long)((double)n * 0.99)] / ticks_per_ns;
    res->p999 = (double)s[(long)((double)n * 0.999)] / ticks_per_ns;
    res->mean = sum / (double)n / ticks_per_ns;
    res->min = (double)s[0] / ticks_per_ns;
    res->max = (double)s[n - 1] / ticks_per_ns;
    res->round_trips = n;
    res->lat_sys = per(res->lat_acc_sys, res->lat_acc_rts);
    res->lat_csw = per(res->lat_acc_csw, res->lat_acc_rts);
    res->lat_rq = per(res->lat_acc_rq, res->lat_acc_rts);
    free(res->pool);
    res->pool = NULL;
}

/* rq's promise: with both sides busy, no system call.  Its own counters
 * must not move in busy mode (they count every futex wait and wake). */
static void check_busy_rq(struct result *res)
{
    if (res->mode != MODE_BUSY || !res->t->counters)
        return;
    if (res->has_tput && res->tput_ok && res->tput_rq != 0) {
        res->tput_ok = 0;
        snprintf(res->tput_err, BENCH_ERR_MAX, "rq made %.3g waits+wakes per message while busy",
                 res->tput_rq);
    }
    if (res->has_lat && res->lat_ok && res->lat_rq != 0) {
        res->lat_ok = 0;
        snprintf(res->lat_err, BENCH_ERR_MAX,
                 "rq made %.3g waits+wakes per round trip while busy", res->lat_rq);
    }
}

static struct result *find(const char *name, size_t size, enum bench_mode mode)
{
    for (size_t i = 0; i < nresults; i++)
        if (!strcmp(results[i].t->name, name) && results[i].size == size &&
            results[i].mode == mode)
            return &results[i];
    return NULL;
}

static void compute_ratios(void)
{
    for (size_t i = 0; i < nresults; i++) {
        struct result *r = &results[i];
        struct result *ring = find("min-ring", r->size, MODE_BUSY);
        struct result *floor =
            find(r->mode == MODE_BUSY ? "cache-line" : "futex", r->size, r->mode);
        if (r->has_tput && r->tput_ok && ring && ring->has_tput && ring->tput_ok && ring->rate > 0)
            r->x_ring = r->rate / ring->rate;
        if (r->has_lat && r->lat_ok && floor && floor->has_lat && floor->lat_ok && floor->med > 0)
            r->x_floor = r->med / floor->med;
    }
}

/* ---- targets, at 64-byte messages ----------------------------- */

struct target {
    const char *text;
    int measured, met;
    double value, limit;
    char detail[160];
};

static struct target targets[8];
static int ntargets;

static double best_rate(const char *name, size_t size, const char **mode)
{
    double best = 0;
    for (int m = 0; m < MODE_COUNT; m++) {
        struct result *r = find(name, size, (enum bench_mode)m);
        if (r && r->has_tput && r->tput_ok && r->rate > best) {
            best = r->rate;
            *mode = mode_name((enum bench_mode)m);
        }
    }
    return best;
}

static void target_ratio(const char *text, double num, double den, int at_least, double limit,
                         const char *detail)
{
    struct target *g = &targets[ntargets++];
    g->text = text;
    g->limit = limit;
    g->measured = num > 0 && den > 0;
    if (g->measured) {
        g->value = num / den;
        g->met = at_least ? g->value >= limit : g->value <= limit;
    }
    snprintf(g->detail, sizeof g->detail, "%s", detail);
}

static void evaluate_targets(void)
{
    const size_t s = 64;
    char d[160];
    const char *bm = "-", *pm = "-", *b2m = "-", *r2m = "-";
    struct result *spsc = find("rq-spsc", s, MODE_BUSY), *spsc_block = find("rq-spsc", s, MODE_BLOCK);
    struct result *ring = find("min-ring", s, MODE_BUSY), *line = find("cache-line", s, MODE_BUSY);
    struct result *fx = find("futex", s, MODE_BLOCK);
    double rq_rate = spsc && spsc->tput_ok ? spsc->rate : 0;
    double boost = best_rate("boost-mq", s, &bm), pmq = best_rate("posix-mq", s, &pm);
    double boost2 = best_rate("boost-mq-2p", s, &b2m), rq2 = best_rate("rq-mpsc-2p", s, &r2m);

    snprintf(d, sizeof d, "rq-spsc busy vs min-ring, 64 B");
    target_ratio("rq SPSC busy throughput >= 0.8 x minimal ring", rq_rate,
                 ring && ring->tput_ok ? ring->rate : 0, 1, 0.8, d);
    snprintf(d, sizeof d, "rq-spsc busy vs boost-mq %s (its best mode), 64 B", bm);
    target_ratio("rq SPSC busy throughput >= 5 x Boost message_queue", rq_rate, boost, 1, 5, d);
    snprintf(d, sizeof d, "rq-spsc busy vs posix-mq %s (its best mode), 64 B", pm);
    target_ratio("rq SPSC busy throughput >= 20 x POSIX mq", rq_rate, pmq, 1, 20, d);
    snprintf(d, sizeof d, "median round trip, rq-spsc busy vs cache-line, 64 B");
    target_ratio("rq SPSC busy round trip <= 1.5 x cache-line ping-pong",
                 spsc && spsc->has_lat && spsc->lat_ok ? spsc->med : 0,
                 line && line->lat_ok ? line->med : 0, 0, 1.5, d);
    snprintf(d, sizeof d, "median round trip, rq-spsc block vs futex, 64 B");
    target_ratio("rq blocking round trip <= 1.1 x raw futex ping-pong",
                 spsc_block && spsc_block->has_lat && spsc_block->lat_ok ? spsc_block->med : 0,
                 fx && fx->lat_ok ? fx->med : 0, 0, 1.1, d);
    snprintf(d, sizeof d, "rq-mpsc-2p %s vs boost-mq-2p %s (best modes), 64 B", r2m, b2m);
    target_ratio("rq MPSC 2 producers >= 1.5 x Boost message_queue", rq2, boost2, 1, 1.5, d);
}

/* ---- output ------------------------------------------------------------ */

static char machine_cpu[128] = "unknown", machine_kernel[3 * 65 + 3] = "unknown";
static char when[32], load_start[64], load_end[64];

static void read_machine(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *v = strchr(line, ':');
            if (v) {
                v += 1 + strspn(v + 1, " \t");
                v[strcspn(v, "\n")] = 0;
                snprintf(machine_cpu, sizeof machine_cpu, "%s", v);
            }
            break;
        }
    }
    if (f)
        fclose(f);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(machine_kernel, sizeof machine_kernel, "%s %s %s", u.sysname, u.release,
                 u.machine);
    time_t t = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
}

static void read_load(char *buf, size_t n)
{
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = 0;
    if (f) {
        if (fgets(buf, (int)n, f))
            buf[strcspn(buf, "\n")] = 0;
        fclose(f);
    }
}

static const char *boost_version(void)
{
#ifdef RQ_BENCH_HAVE_BOOST
    return bench_boost_version();
#else
    return "not built (Boost headers not found at configure time)";
#endif
}

static void fmt_num(char *b, size_t n, double v, const char *f, int ok)
{
    if (!ok)
        snprintf(b, n, "-");
    else
        snprintf(b, n, f, v);
}

static void fmt_per(char *b, size_t n, double v)
{
    if (v < 0)
        snprintf(b, n, "n/a");
    else if (v == 0)
        snprintf(b, n, "0");
    else
        snprintf(b, n, v < 0.01 ? "%.4f" : "%.2f", v);
}

static void print_header(FILE *f, const struct options *o)
{
    fprintf(f, "rq_bench %d.%d.%d  %s\n", RQ_VERSION_MAJOR, RQ_VERSION_MINOR, RQ_VERSION_PATCH,
            when);
    fprintf(f, "cpu: %s, %ld online; pinned: sender(s) cpu %d, receiver cpu %d\n", machine_cpu,
            sysconf(_SC_NPROCESSORS_ONLN), o->cpu_a, o->cpu_b);
    fprintf(f, "kernel: %s; compiler: %s; Boost: %s\n", machine_kernel, __VERSION__,
            boost_version());
    fprintf(f, "load average at start: %s; at end: %s\n", load_start, load_end);
    fprintf(f, "throughput: median of %d interleaved rounds of %.2f s; round trip: %ld in %d "
               "interleaved rounds, each after %ld warm-up; queue depth %u\n",
            o->repeats, o->duration, o->rt_per_round * o->lat_rounds, o->lat_rounds, o->warmup,
            o->slots);
    fprintf(f, "every message checked: %s\n",
            o->check_full ? "every byte" : "length, sender, sequence at both ends");
    fprintf(f, "timer: %.3f ticks/ns, one read (%.1f ns) inside every round-trip sample; "
               "system calls: %s\n",
            ticks_per_ns, timer_cost_ns, sys_count_why);
#ifndef __OPTIMIZE__
    fprintf(f, "WARNING: built without optimisation; use the release preset for figures\n");
#endif
}

enum { NCELLS = 10 };

/* The figures of one row as text, "-" where there is none. */
static void row_cells(const struct result *r, char cell[NCELLS][24])
{
    int tok = r->has_tput && r->tput_ok, lok = r->has_lat && r->lat_ok;
    fmt_num(cell[0], 24, r->rate / 1e6, "%.3f", tok);
    fmt_num(cell[1], 24, r->best / 1e6, "%.3f", tok);
    fmt_num(cell[2], 24, r->mbps, "%.1f", tok);
    fmt_num(cell[3], 24, r->x_ring, "%.2f", tok && r->x_ring > 0);
    if (tok)
        fmt_per(cell[4], 24, r->tput_sys);
    else
        snprintf(cell[4], 24, "-");
    fmt_num(cell[5], 24, r->med, "%.0f", lok);
    fmt_num(cell[6], 24, r->p99, "%.0f", lok);
    fmt_num(cell[7], 24, r->p999, "%.0f", lok);
    fmt_num(cell[8], 24, r->x_floor, "%.2f", lok && r->x_floor > 0);
    if (lok)
        fmt_per(cell[9], 24, r->lat_sys);
    else
        snprintf(cell[9], 24, "-");
}

static int row_failed(const struct result *r)
{
    return (r->has_tput && !r->tput_ok) || (r->has_lat && !r->lat_ok);
}

static void print_table(FILE *f, const struct options *o)
{
    static const char *fmt = "%-12s %-5s%c%6s | %8s %8s %8s %6s %7s | %8s %8s %9s %7s %6s\n";
    fprintf(f, "\n");
    fprintf(f, fmt, "transport", "mode", ' ', "size", "Mmsg/s", "best", "MB/s", "x ring",
            "sys/msg", "rtt med", "p99", "p99.9", "x floor", "sys/rt");
    fprintf(f, fmt, "", "", ' ', "bytes", "median", "round", "", "", "", "ns", "ns", "ns", "",
            "");
    for (int si = 0; si < o->nsizes; si++) {
        fprintf(f, "%.*s\n", 112,
                "-----------------------------------------------------------------------------"
                "------------------------------------------------");
        for (size_t i = 0; i < nresults; i++) {
            const struct result *r = &results[i];
            if (r->size != o->sizes[si])
                continue;
            char c[NCELLS][24], size[24];
            row_cells(r, c);
            snprintf(size, sizeof size, "%zu", r->size);
            fprintf(f, fmt, r->t->name, mode_name(r->mode), r->preempted > 0 ? '*' : ' ', size,
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]);
        }
    }
    fprintf(f, "\nMmsg/s: median of the rounds, best: the highest round.  x ring: median / "
               "min-ring busy median (same size).\n");
    fprintf(f, "x floor: median round trip / cache-line (busy rows) or futex (block rows), "
               "same size.\n");
    fprintf(f, "sys/msg, sys/rt: system calls of all processes per message / per round trip; "
               "rq busy rows are checked to make no wait or wake call.\n");
    fprintf(f, "*: another process took a core from a measured process during the row "
               "(involuntary context switches): the machine was not quiet.\n");
    /* Queue depths that are not --slots (the transport decides). */
    const struct transport *said[64] = {0};
    size_t nsaid = 0;
    for (size_t i = 0; i < nresults; i++) {
        const struct result *r = &results[i];
        int seen = 0;
        for (size_t k = 0; k < nsaid; k++)
            seen |= said[k] == r->t;
        if (seen || !r->note[0] || nsaid == 64)
            continue;
        said[nsaid++] = r->t;
        fprintf(f, "%s: %s\n", r->t->name, r->note);
    }
}

static void print_targets(FILE *f)
{
    fprintf(f, "\nTargets:\n");
    for (int i = 0; i < ntargets; i++) {
        const struct target *g = &targets[i];
        if (!g->measured)
            fprintf(f, "  [ n/a  ] %-55s not measured in this run\n", g->text);
        else
            fprintf(f, "  [%s] %-55s %.2f  (%s)\n", g->met ? " met  " : "MISSED", g->text,
                    g->value, g->detail);
    }
}

static void print_failures(FILE *f)
{
    for (size_t i = 0; i < nresults; i++) {
        const struct result *r = &results[i];
        if (r->has_tput && !r->tput_ok)
            fprintf(f, "FAILED %s %s %zu B throughput: %s\n", r->t->name, mode_name(r->mode),
                    r->size, r->tput_err);
        if (r->has_lat && !r->lat_ok)
            fprintf(f, "FAILED %s %s %zu B round trip: %s\n", r->t->name, mode_name(r->mode),
                    r->size, r->lat_err);
    }
}

static FILE *open_out(const char *path)
{
    if (!strcmp(path, "-"))
        return stdout;
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "rq_bench: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

static void close_out(FILE *f)
{
    if (f && f != stdout)
        fclose(f);
}

static void csv_num(FILE *f, double v, int ok)
{
    if (ok)
        fprintf(f, ",%.6g", v);
    else
        fprintf(f, ",");
}

static void write_csv(const char *path)
{
    FILE *f = open_out(path);
    if (!f)
        return;
    fprintf(f, "transport,group,producers,mode,size,msgs_per_s,msgs_per_s_best,mb_per_s,x_ring,sys_per_msg,"
               "csw_per_msg,rq_calls_per_msg,rtt_median_ns,rtt_p99_ns,rtt_p999_ns,rtt_mean_ns,"
               "rtt_min_ns,rtt_max_ns,x_floor,sys_per_rt,csw_per_rt,depth,status,preempted,repeats\n");
    for (size_t i = 0; i < nresults; i++) {
        const struct result *r = &results[i];
        int tok = r->has_tput && r->tput_ok, lok = r->has_lat && r->lat_ok;
        fprintf(f, "%s,%s,%d,%s,%zu", r->t->name, r->t->group, r->t->senders, mode_name(r->mode),
                r->size);
        csv_num(f, r->rate, tok);
        csv_num(f, r->best, tok);
        csv_num(f, r->mbps, tok);
        csv_num(f, r->x_ring, tok && r->x_ring > 0);
        csv_num(f, r->tput_sys, tok && r->tput_sys >= 0);
        csv_num(f, r->tput_csw, tok && r->tput_csw >= 0);
        csv_num(f, r->tput_rq, tok && r->tput_rq >= 0);
        csv_num(f, r->med, lok);
        csv_num(f, r->p99, lok);
        csv_num(f, r->p999, lok);
        csv_num(f, r->mean, lok);
        csv_num(f, r->min, lok);
        csv_num(f, r->max, lok);
        csv_num(f, r->x_floor, lok && r->x_floor > 0);
        csv_num(f, r->lat_sys, lok && r->lat_sys >= 0);
        csv_num(f, r->lat_csw, lok && r->lat_csw >= 0);
        fprintf(f, ",%u,%s,%lld,", r->depth, row_failed(r) ? "failed" : "ok",
                (long long)r->preempted);
        for (int k = 0; k < r->nrep; k++)
            fprintf(f, "%s%.6g", k ? ";" : "", r->rates[k]);
        fprintf(f, "\n");
    }
    close_out(f);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, const char *key, double v, int ok)
{
    fprintf(f, ", \"%s\": ", key);
    if (ok)
        fprintf(f, "%.6g", v);
    else
        fprintf(f, "null");
}

static void write_json(const char *path, const struct options *o)
{
    FILE *f = open_out(path);
    if (!f)
        return;
    fprintf(f, "{\n  \"rq_version\": \"%d.%d.%d\", \"date\": ", RQ_VERSION_MAJOR,
            RQ_VERSION_MINOR, RQ_VERSION_PATCH);
    json_str(f, when);
    fprintf(f, ",\n  \"machine\": {\"cpu\": ");
    json_str(f, machine_cpu);
    fprintf(f, ", \"cpus_online\": %ld, \"kernel\": ", sysconf(_SC_NPROCESSORS_ONLN));
    json_str(f, machine_kernel);
    fprintf(f, ", \"compiler\": ");
    json_str(f, __VERSION__);
    fprintf(f, ", \"boost\": ");
    json_str(f, boost_version());
    fprintf(f, ", \"load_start\": ");
    json_str(f, load_start);
    fprintf(f, ", \"load_end\": ");
    json_str(f, load_end);
    fprintf(f, ", \"ticks_per_ns\": %.6g, \"timer_read_ns\": %.3g, \"syscall_counting\": ",
            ticks_per_ns, timer_cost_ns);
    json_str(f, sys_count_why);
#ifdef __OPTIMIZE__
    fprintf(f, ", \"optimized\": true},\n");
#else
    fprintf(f, ", \"optimized\": false},\n");
#endif
    fprintf(f, "  \"options\": {\"duration_s\": %g, \"repeats\": %d, \"round_trips\": %ld, "
               "\"lat_rounds\": %d, \"warmup_per_round\": %ld, \"slots\": %u, "
               "\"cpu_sender\": %d, \"cpu_receiver\": %d, \"check\": \"%s\"},\n",
            o->duration, o->repeats, o->rt_per_round * o->lat_rounds, o->lat_rounds, o->warmup,
            o->slots, o->cpu_a, o->cpu_b,
            o->check_full ? "full" : "ends");
    fprintf(f, "  \"results\": [\n");
    for (size_t i = 0; i < nresults; i++) {
        const struct result *r = &results[i];
        int tok = r->has_tput && r->tput_ok, lok = r->has_lat && r->lat_ok;
        fprintf(f, "    {\"transport\": \"%s\", \"group\": \"%s\", \"producers\": %d, "
                   "\"mode\": \"%s\", \"size\": %zu, \"depth\": %u, \"preempted\": %lld, "
                   "\"note\": ",
                r->t->name, r->t->group, r->t->senders, mode_name(r->mode), r->size, r->depth,
                (long long)r->preempted);
        json_str(f, r->note);
        if (r->has_tput) {
            fprintf(f, ",\n     \"throughput\": {\"ok\": %s", tok ? "true" : "false");
            if (!tok) {
                fprintf(f, ", \"error\": ");
                json_str(f, r->tput_err);
            }
            fprintf(f, ", \"repeats\": [");
            for (int k = 0; k < r->nrep; k++)
                fprintf(f, "%s%.6g", k ? ", " : "", r->rates[k]);
            fprintf(f, "]");
            json_num(f, "msgs_per_s", r->rate, tok);
            json_num(f, "msgs_per_s_best", r->best, tok);
            json_num(f, "mb_per_s", r->mbps, tok);
            json_num(f, "x_ring", r->x_ring, tok && r->x_ring > 0);
            json_num(f, "syscalls_per_msg", r->tput_sys, tok && r->tput_sys >= 0);
            json_num(f, "voluntary_csw_per_msg", r->tput_csw, tok && r->tput_csw >= 0);
            json_num(f, "rq_waits_wakes_per_msg", r->tput_rq, tok && r->tput_rq >= 0);
            fprintf(f, "}");
        }
        if (r->has_lat) {
            fprintf(f, ",\n     \"round_trip\": {\"ok\": %s", lok ? "true" : "false");
            if (!lok) {
                fprintf(f, ", \"error\": ");
                json_str(f, r->lat_err);
            }
            fprintf(f, ", \"count\": %ld", r->round_trips);
            json_num(f, "median_ns", r->med, lok);
            json_num(f, "p99_ns", r->p99, lok);
            json_num(f, "p999_ns", r->p999, lok);
            json_num(f, "mean_ns", r->mean, lok);
            json_num(f, "min_ns", r->min, lok);
            json_num(f, "max_ns", r->max, lok);
            json_num(f, "x_floor", r->x_floor, lok && r->x_floor > 0);
            json_num(f, "syscalls_per_rt", r->lat_sys, lok && r->lat_sys >= 0);
            json_num(f, "voluntary_csw_per_rt", r->lat_csw, lok && r->lat_csw >= 0);
            json_num(f, "rq_waits_wakes_per_rt", r->lat_rq, lok && r->lat_rq >= 0);
            fprintf(f, "}");
        }
        fprintf(f, "}%s\n", i + 1 < nresults ? "," : "");
    }
    fprintf(f, "  ],\n  \"targets\": [\n");
    for (int i = 0; i < ntargets; i++) {
        const struct target *g = &targets[i];
        fprintf(f, "    {\"target\": ");
        json_str(f, g->text);
        fprintf(f, ", \"limit\": %g, \"measured\": %s", g->limit, g->measured ? "true" : "false");
        json_num(f, "value", g->value, g->measured);
        fprintf(f, ", \"met\": %s, \"detail\": ", g->measured && g->met ? "true" : "false");
        json_str(f, g->detail);
        fprintf(f, "}%s\n", i + 1 < ntargets ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    close_out(f);
}

static void write_markdown(const char *path, const struct options *o)
{
    FILE *f = open_out(path);
    if (!f)
        return;
    fprintf(f, "| transport | mode | size B | M msg/s | best | MB/s | x ring | sys/msg "
               "| rtt median ns | p99 ns | p99.9 ns | x floor | sys/rt |\n");
    fprintf(f, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (int si = 0; si < o->nsizes; si++) {
        for (size_t i = 0; i < nresults; i++) {
            const struct result *r = &results[i];
            if (r->size != o->sizes[si])
                continue;
            char c[NCELLS][24];
            row_cells(r, c);
            fprintf(f, "| %s%s | %s%s | %zu |", r->t->name, row_failed(r) ? " (FAILED)" : "",
                    mode_name(r->mode), r->preempted > 0 ? "\\*" : "", r->size);
            for (int k = 0; k < NCELLS; k++)
                fprintf(f, " %s |", c[k]);
            fprintf(f, "\n");
        }
    }
    close_out(f);
}

/* ---- set-up -------------------------------------------------------------- */

static void calibrate_timer(void)
{
    int64_t t0 = now_ns();
    uint64_t k0 = bench_ticks();
    while (now_ns() - t0 < 50000000)
        ;
    int64_t t1 = now_ns();
    uint64_t k1 = bench_ticks();
    ticks_per_ns = (double)(k1 - k0) / (double)(t1 - t0);
    const int reads = 1000000;
    uint64_t a = bench_ticks(), x = 0;
    for (int i = 0; i < reads; i++)
        x += bench_ticks();
    uint64_t b = bench_ticks();
    fold_sink ^= x;
    timer_cost_ns = (double)(b - a) / reads / ticks_per_ns;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: rq_bench [options]\n"
            "  -t, --transports LIST  names or groups (limit, rq, alt, all); default: all,\n"
            "                         each in its default modes (--list); a transport\n"
            "                         named here runs in every mode it has\n"
            "  -s, --sizes LIST       message sizes in bytes, >= 8 (default 8,64,4096)\n"
            "      --tput-modes LIST  busy,block: throughput modes for every transport\n"
            "      --lat-modes LIST   busy,block: round-trip modes for every transport\n"
            "      --no-throughput, --no-latency\n"
            "  -d, --duration SEC     seconds per throughput repeat (default 1)\n"
            "  -r, --repeats N        throughput rounds, the median is shown (default 3)\n"
            "  -n, --round-trips N    timed round trips per point (default 200000)\n"
            "      --lat-rounds N     ...measured in N interleaved rounds (default 4)\n"
            "      --slots N          queue depth for every queue (default 1024)\n"
            "      --cpus A,B         sender core, receiver core (default 0,1)\n"
            "      --check full|ends  check every byte, or length+sender+sequence at both\n"
            "                         ends (default ends; full with --quick)\n"
            "      --quick            smoke pass: every transport in every mode, 0.02 s x 1,\n"
            "                         300 round trips, 64 slots, every byte checked\n"
            "      --inject-corruption  self-test: spoil one message per run; succeeds only\n"
            "                         if every run reports it\n"
            "      --csv FILE, --json FILE, --markdown FILE   also write results there\n"
            "                         ('-' = stdout; the table then goes to stderr)\n"
            "      --timeout SEC      per run (default: derived from the run)\n"
            "      --list             list the transports and exit\n");
}

static int parse_list(const char *arg, char items[][32], int max)
{
    int n = 0;
    const char *p = arg;
    while (*p && n < max) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= 32)
            return -1;
        memcpy(items[n], p, len);
        items[n][len] = 0;
        n++;
        p += len;
        if (*p == ',')
            p++;
    }
    return *p ? -1 : n;
}

static int parse_modes(const char *arg, unsigned *out)
{
    char items[4][32];
    int n = parse_list(arg, items, 4);
    *out = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(items[i], "busy"))
            *out |= MODE_BIT(MODE_BUSY);
        else if (!strcmp(items[i], "block"))
            *out |= MODE_BIT(MODE_BLOCK);
        else
            return -1;
    }
    return n > 0 ? 0 : -1;
}

static int parse_transports(const char *arg, struct options *o)
{
    char items[32][32];
    int n = parse_list(arg, items, 32);
    if (n <= 0)
        return -1;
    memset(o->selected, 0, sizeof o->selected);
    for (int i = 0; i < n; i++) {
        int hit = 0;
        for (size_t k = 0; k < bench_transport_count; k++) {
            const struct transport *t = &bench_transports[k];
            int by_name = !strcmp(items[i], t->name);
            if (by_name || !strcmp(items[i], "all") || !strcmp(items[i], t->group)) {
                o->selected[k] = 1;
                o->named[k] |= by_name;
                hit = 1;
            }
        }
        if (!hit) {
            fprintf(stderr, "rq_bench: unknown transport or group '%s' (see --list)\n", items[i]);
            return -1;
        }
    }
    return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    enum { O_TPUT_MODES = 256, O_LAT_MODES, O_LAT_ROUNDS, O_NO_TPUT, O_NO_LAT, O_SLOTS, O_CPUS, O_CHECK,
           O_QUICK, O_INJECT, O_CSV, O_JSON, O_MD, O_TIMEOUT, O_LIST };
    static const struct option longopts[] = {
        {"transports", required_argument, 0, 't'}, {"sizes", required_argument, 0, 's'},
        {"tput-modes", required_argument, 0, O_TPUT_MODES},
        {"lat-modes", required_argument, 0, O_LAT_MODES},
        {"no-throughput", no_argument, 0, O_NO_TPUT}, {"no-latency", no_argument, 0, O_NO_LAT},
        {"duration", required_argument, 0, 'd'}, {"repeats", required_argument, 0, 'r'},
        {"round-trips", required_argument, 0, 'n'},
        {"lat-rounds", required_argument, 0, O_LAT_ROUNDS}, {"slots", required_argument, 0, O_SLOTS},
        {"cpus", required_argument, 0, O_CPUS}, {"check", required_argument, 0, O_CHECK},
        {"quick", no_argument, 0, O_QUICK}, {"inject-corruption", no_argument, 0, O_INJECT},
        {"csv", required_argument, 0, O_CSV}, {"json", required_argument, 0, O_JSON},
        {"markdown", required_argument, 0, O_MD}, {"timeout", required_argument, 0, O_TIMEOUT},
        {"list", no_argument, 0, O_LIST}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int check = -1, lat_rounds_given = 0, transports_given = 0, sizes_given = 0, rt_given = 0, dur_given = 0, rep_given = 0, slots_given = 0;
    long v;
    char items[MAX_SIZES][32];
    *o = (struct options){.do_tput = 1, .do_lat = 1, .duration = 1.0, .repeats = 3,
                          .round_trips = 200000, .lat_rounds = 4, .slots = 1024, .cpu_a = 0,
                          .cpu_b = 1};
    for (size_t k = 0; k < bench_transport_count; k++)
        o->selected[k] = 1;
    int c;
    while ((c = getopt_long(argc, argv, "t:s:d:r:n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (parse_transports(optarg, o) != 0)
                return -1;
            transports_given = 1;
            break;
        case 's': {
            int n = parse_list(optarg, items, MAX_SIZES);
            if (n <= 0)
                return -1;
            for (int i = 0; i < n; i++) {
                if (parse_long(items[i], 8, 1 << 24, &v) != 0)
                    return -1;
                o->sizes[i] = (size_t)v;
            }
            o->nsizes = n;
            sizes_given = 1;
            break;
        }
        case O_TPUT_MODES:
            if (parse_modes(optarg, &o->tput_modes) != 0)
                return -1;
            break;
        case O_LAT_MODES:
            if (parse_modes(optarg, &o->lat_modes) != 0)
                return -1;
            break;
        case O_NO_TPUT:
            o->do_tput = 0;
            break;
        case O_NO_LAT:
            o->do_lat = 0;
            break;
        case 'd': {
            char *end;
            o->duration = strtod(optarg, &end);
            if (*end || !(o->duration > 0 && o->duration <= 3600))
                return -1;
            dur_given = 1;
            break;
        }
        case 'r':
            if (parse_long(optarg, 1, MAX_REPEATS, &v) != 0)
                return -1;
            o->repeats = (int)v;
            rep_given = 1;
            break;
        case 'n':
            if (parse_long(optarg, 100, 100000000, &v) != 0)
                return -1;
            o->round_trips = v;
            rt_given = 1;
            break;
        case O_LAT_ROUNDS:
            if (parse_long(optarg, 1, 100, &v) != 0)
                return -1;
            o->lat_rounds = (int)v;
            lat_rounds_given = 1;
            break;
        case O_SLOTS:
            if (parse_long(optarg, 1, 1 << 20, &v) != 0)
                return -1;
            o->slots = (uint32_t)v;
            slots_given = 1;
            break;
        case O_CPUS:
            if (parse_list(optarg, items, 2) != 2 || parse_long(items[0], 0, CPU_SETSIZE - 1, &v))
                return -1;
            o->cpu_a = (int)v;
            if (parse_long(items[1], 0, CPU_SETSIZE - 1, &v) != 0)
                return -1;
            o->cpu_b = (int)v;
            break;
        case O_CHECK:
            if (!strcmp(optarg, "full"))
                check = 1;
            else if (!strcmp(optarg, "ends"))
                check = 0;
            else
                return -1;
            break;
        case O_QUICK:
            o->quick = 1;
            break;
        case O_INJECT:
            o->inject = 1;
            break;
        case O_CSV:
            o->csv = optarg;
            break;
        case O_JSON:
            o->json = optarg;
            break;
        case O_MD:
            o->markdown = optarg;
            break;
        case O_TIMEOUT: {
            char *end;
            o->timeout = strtod(optarg, &end);
            if (*end || !(o->timeout > 0))
                return -1;
            break;
        }
        case O_LIST:
            for (size_t k = 0; k < bench_transport_count; k++) {
                const struct transport *t = &bench_transports[k];
                static const char *m[] = {"-", "busy", "block", "both"};
                printf("%-12s %-5s tput %-5s rtt %-5s %s%s\n", t->name, t->group,
                       m[t->default_tput], m[t->default_lat], t->what,
                       t->available ? "" : " [not built: no Boost]");
            }
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind != argc)
        return -1;
    if (!sizes_given) {
        static const size_t dflt[] = {8, 64, 4096};
        memcpy(o->sizes, dflt, sizeof dflt);
        o->nsizes = 3;
    }
    if (o->quick) {
        if (!dur_given)
            o->duration = 0.02;
        if (!rep_given)
            o->repeats = 1;
        if (!rt_given)
            o->round_trips = 300;
        if (!lat_rounds_given)
            o->lat_rounds = 1;
        if (!slots_given)
            o->slots = 64; /* a small ring: many wraps, full and empty */
        /* The smoke pass covers every transport in every mode it has. */
        for (size_t k = 0; !transports_given && k < bench_transport_count; k++)
            o->named[k] = 1;
    }
    o->check_full = check >= 0 ? check : o->quick;
    o->rt_per_round = (o->round_trips + o->lat_rounds - 1) / o->lat_rounds;
    o->warmup = o->rt_per_round / 10 > 5000 ? 5000 : o->rt_per_round / 10;
    if (o->warmup < INJECT_AT + 1)
        o->warmup = INJECT_AT + 1;
    /* Every run wraps the ring a few times, however short. */
    o->min_msgs = o->quick ? 4L * o->slots + 16 : 0;
    return 0;
}

/* Sender and receiver must be allowed on the chosen cores; on a single
 * core machine both share it (and the figures say so). */
static void check_cpus(struct options *o)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return;
    int first = -1, second = -1;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &allowed))
            continue;
        if (first < 0)
            first = c;
        else if (second < 0)
            second = c;
    }
    if (!CPU_ISSET(o->cpu_a, &allowed) || !CPU_ISSET(o->cpu_b, &allowed) || o->cpu_a == o->cpu_b) {
        int a = first, b = second >= 0 ? second : first;
        fprintf(stderr, "rq_bench: cores %d,%d not both available; using %d,%d%s\n", o->cpu_a,
                o->cpu_b, a, b, a == b ? " (ONE core: both sides share it)" : "");
        o->cpu_a = a;
        o->cpu_b = b;
    }
}

/* --tput-modes / --lat-modes, else everything a transport named with -t
 * can do, else its defaults. */
static unsigned modes_for(unsigned chosen, unsigned can, unsigned dflt, int named)
{
    if (chosen)
        return chosen & can;
    return named ? can : dflt;
}

static int inject_caught(const struct result *r)
{
    int ok = 1;
    if (r->has_tput)
        ok &= !r->tput_ok && strstr(r->tput_err, CORRUPT) != NULL;
    if (r->has_lat && !r->t->pingpong)
        ok &= !r->lat_ok && strstr(r->lat_err, CORRUPT) != NULL;
    if (r->has_lat && r->t->pingpong)
        ok &= r->lat_ok;
    return ok;
}

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_options(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    check_cpus(&o);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    /* Stopped by hand, the run still kills its children and removes the
     * objects it made (no SA_RESTART: the waits return at once). */
    struct sigaction stop = {.sa_handler = on_stop};
    sigemptyset(&stop.sa_mask);
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGTERM, &stop, NULL);
    bench_raise_mq_limit();
    sys_count_init();
    calibrate_timer();
    read_machine();
    read_load(load_start, sizeof load_start);
    ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    lat_samples = mmap(NULL, (size_t)o.rt_per_round * sizeof *lat_samples,
                       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ctl == MAP_FAILED || lat_samples == MAP_FAILED) {
        perror("rq_bench: mmap");
        return 1;
    }
    size_t cap = (size_t)o.nsizes * bench_transport_count * MODE_COUNT;
    results = calloc(cap, sizeof *results);
    if (!results) {
        perror("rq_bench: calloc");
        return 1;
    }
    int64_t t0 = now_ns();
    for (int si = 0; si < o.nsizes; si++) {
        for (size_t k = 0; k < bench_transport_count; k++) {
            const struct transport *t = &bench_transports[k];
            if (!o.selected[k] || !t->available)
                continue;
            unsigned tm = o.do_tput ? modes_for(o.tput_modes, t->tput_modes, t->default_tput,
                                                o.named[k]) : 0;
            unsigned lm = o.do_lat ? modes_for(o.lat_modes, t->lat_modes, t->default_lat,
                                               o.named[k]) : 0;
            for (int m = 0; m < MODE_COUNT; m++) {
                if (!((tm | lm) & MODE_BIT(m)))
                    continue;
                struct result *r = &results[nresults++];
                r->t = t;
                r->size = o.sizes[si];
                r->mode = (enum bench_mode)m;
                r->has_tput = r->tput_ok = (tm & MODE_BIT(m)) != 0;
                r->has_lat = r->lat_ok = (lm & MODE_BIT(m)) != 0;
                r->tput_sys = r->tput_csw = r->tput_rq = -1;
                r->lat_sys = r->lat_csw = r->lat_rq = -1;
            }
        }
    }
    size_t tput_rows = 0, lat_rows = 0;
    for (size_t i = 0; i < nresults; i++) {
        tput_rows += results[i].has_tput;
        lat_rows += results[i].has_lat;
    }
    for (int rep = 0; rep < o.repeats; rep++) {
        size_t done = 0;
        for (size_t i = 0; i < nresults; i++) {
            struct result *r = &results[i];
            if (!r->has_tput)
                continue;
            if (stop_requested)
                break;
            progress("throughput round %d/%d [%zu/%zu] %-12s %-5s %5zu B:", rep + 1, o.repeats,
                     ++done, tput_rows, r->t->name, mode_name(r->mode), r->size);
            tput_round(r, &o);
            if (r->tput_ok)
                progress(" %9.3f M msg/s\n", r->rates[r->nrep - 1] / 1e6);
            else
                progress(" FAILED: %s\n", r->tput_err);
        }
    }
    for (size_t i = 0; i < nresults; i++)
        tput_finish(&results[i]);
    for (int round = 0; round < o.lat_rounds; round++) {
        size_t done = 0;
        for (size_t i = 0; i < nresults; i++) {
            struct result *r = &results[i];
            if (!r->has_lat)
                continue;
            if (stop_requested)
                break;
            progress("round trip round %d/%d [%zu/%zu] %-12s %-5s %5zu B:", round + 1,
                     o.lat_rounds, ++done, lat_rows, r->t->name, mode_name(r->mode), r->size);
            lat_round(r, &o);
            if (r->lat_ok)
                progress(" %ld done\n", r->npool);
            else
                progress(" FAILED: %s\n", r->lat_err);
        }
    }
    for (size_t i = 0; i < nresults; i++) {
        lat_finish(&results[i]);
        check_busy_rq(&results[i]);
    }
    if (stop_requested) {
        fprintf(stderr, "rq_bench: interrupted; nothing left behind\n");
        return 130;
    }
    read_load(load_end, sizeof load_end);
    compute_ratios();
    evaluate_targets();

    int to_stdout = (o.csv && !strcmp(o.csv, "-")) || (o.json && !strcmp(o.json, "-")) ||
                    (o.markdown && !strcmp(o.markdown, "-"));
    FILE *f = to_stdout ? stderr : stdout;
    print_header(f, &o);
    print_table(f, &o);
    print_targets(f);
    fprintf(f, "\n%zu points in %.1f s\n", nresults, (double)(now_ns() - t0) / 1e9);
    if (o.csv)
        write_csv(o.csv);
    if (o.json)
        write_json(o.json, &o);
    if (o.markdown)
        write_markdown(o.markdown, &o);

    if (o.inject) {
        int missed = 0;
        for (size_t i = 0; i < nresults; i++) {
            if (!inject_caught(&results[i])) {
                missed++;
                fprintf(f, "NOT CAUGHT %s %s %zu B: %s / %s\n", results[i].t->name,
                        mode_name(results[i].mode), results[i].size,
                        results[i].tput_err[0] ? results[i].tput_err : "(throughput passed)",
                        results[i].lat_err[0] ? results[i].lat_err : "(round trip passed)");
            }
        }
        fprintf(f, "inject-corruption: %s (%zu points, %d not caught)\n",
                missed ? "FAILED" : "every spoiled message was caught", nresults, missed);
        return missed ? 1 : 0;
    }
    for (size_t i = 0; i < nresults; i++)
        failures += (results[i].has_tput && !results[i].tput_ok) ||
                    (results[i].has_lat && !results[i].lat_ok);
    print_failures(f);
    if (failures)
        fprintf(f, "%d point(s) FAILED\n", failures);
    return failures ? 1 : 0;
}
