/*
 * measure.c - the messages (built and checked at both ends), the child processes
 * (senders, receivers, round-trip initiator and echo) and one measurement
 * of one transport in one mode at one size.
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

static unsigned run_serial;

int64_t now_ns(void)
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

/* ---- children ------------------------------------------------------------ */

struct job {
    const struct transport *t;
    const struct options *o;
    struct chan *ping, *pong;                               /* pong: round trips only */
    int index;                                              /* sender number */
    long warmup, n;                                         /* round trips */
    enum { INJECT_NONE, INJECT_SPOIL, INJECT_DROP } inject; /* sender 0, message INJECT_AT */
};

/* An endpoint of channel C with the run's settings (--spin-pause,
 * --spin-us). */
static struct endpoint endpoint_of(const struct job *j, struct chan *c)
{
    struct endpoint ep = {
        .c = c, .fd = -1, .spin_pause = j->o->spin_pause, .spin_us = j->o->spin_us};
    return ep;
}

static void child_barrier(void)
{
    atomic_fetch_add(&ctl->ready, 1);
    while (atomic_load(&ctl->go) == 0)
        syscall(SYS_futex, (uint32_t *)&ctl->go, FUTEX_WAIT, 0, NULL, NULL, 0);
}

/* One batch of BENCH_BURST messages from SEQ on, built in BUFS and handed
 * over in one call (less the dropped one, when that is injected). */
static int send_batch(const struct job *j, struct endpoint *ep, unsigned char *bufs, uint64_t seq,
                      char *err)
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
static int tput_producer_burst(const struct job *j, struct child_out *out, struct endpoint *ep,
                               unsigned char *bufs)
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
    struct endpoint ep = endpoint_of(j, j->ping);
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
    out->idle = ep.idle;
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
    struct endpoint ep = endpoint_of(j, j->ping);
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
    out->idle = ep.idle;
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
                 sender, tag & TAG_END ? "end marker after" : "message", (unsigned long long)seq,
                 (unsigned long long)ty->next[sender]);
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
    struct endpoint ep = endpoint_of(j, j->ping);
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
    out->idle = ep.idle;
    t->close(&ep);
    return 0;
}

/* One round trip's part of one side: message I (its bytes in BUF, SIZE
 * long, built here by the initiator) goes out on OUT_EP and comes back on
 * IN_EP (the echo sends back what came in).  0, or -1 with OUT->err. */
static int lat_round(const struct job *j, struct child_out *out, struct endpoint *in_ep,
                     struct endpoint *out_ep, unsigned char *buf, long i, int initiator)
{
    const struct transport *t = j->t;
    size_t size = j->ping->p.msg_size;
    int full = j->o->check_full;
    uint64_t want = tag_make(0, (uint64_t)i), tag;
    const void *msg;
    size_t len;
    if (initiator) {
        msg_build(buf, size, want, full);
        if (j->inject == INJECT_SPOIL && i == INJECT_AT)
            buf[size - 1] ^= 0x5a;
        if (t->send(out_ep, buf, size, out->err) != 0)
            return -1;
    }
    if (t->recv(in_ep, &msg, &len, out->err) != 0)
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
    } else if (t->send(out_ep, msg, len, out->err) != 0) {
        return -1;
    }
    if (t->recv_done && t->recv_done(in_ep, out->err) != 0)
        return -1;
    return 0;
}

/* The round trips over the transport's send and receive calls; the
 * initiator records each one's time in lat_samples (after the warm-up). */
static int lat_rounds(const struct job *j, struct child_out *out, int initiator)
{
    const struct transport *t = j->t;
    size_t size = j->ping->p.msg_size;
    long total = j->warmup + j->n;
    struct endpoint out_ep = endpoint_of(j, initiator ? j->ping : j->pong);
    struct endpoint in_ep = endpoint_of(j, initiator ? j->pong : j->ping);
    if (t->open(out_ep.c, &out_ep, 1, 0, out->err) != 0 ||
        t->open(in_ep.c, &in_ep, 0, 0, out->err) != 0)
        return -1;
    unsigned char *buf = calloc(1, size);
    if (!buf) {
        bench_errno(out->err, "calloc");
        return -1;
    }
    msg_build(buf, size, 0, 1);
    struct sys_count sc;
    sys_count_open(&sc);
    child_barrier();
    sys_count_start(&sc);
    uint64_t prev = bench_ticks();
    for (long i = 0; i < total; i++) {
        if (lat_round(j, out, &in_ep, &out_ep, buf, i, initiator) != 0)
            return -1;
        if (initiator) {
            uint64_t now = bench_ticks();
            if (i >= j->warmup)
                lat_samples[i - j->warmup] = now - prev;
            prev = now;
        }
    }
    sys_count_stop(&sc, out);
    t->close(&in_ep);
    t->close(&out_ep);
    return 0;
}

/* The initiator (INITIATOR) sends message i and waits for it back; the
 * echo checks it and sends the same bytes back.  A transport with its own
 * round-trip loop (pingpong) runs that instead. */
static int lat_side(const struct job *j, struct child_out *out, int initiator)
{
    const struct transport *t = j->t;
    if (t->pingpong) {
        struct sys_count sc;
        sys_count_open(&sc);
        child_barrier();
        sys_count_start(&sc);
        if (t->pingpong(j->ping, initiator, j->warmup, j->n, initiator ? lat_samples : NULL,
                        out->err) != 0)
            return -1;
        sys_count_stop(&sc, out);
    } else if (lat_rounds(j, out, initiator) != 0) {
        return -1;
    }
    out->msgs = (uint64_t)(j->warmup + j->n);
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
        snprintf(err, BENCH_ERR_MAX, "%s: killed by signal %d (%s)", r->role[i], WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(err, BENCH_ERR_MAX, "%s: exited with status %d", r->role[i], WEXITSTATUS(status));
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

/* The children's jobs: all on channel PING (and PONG, or NULL). */
static void jobs_make(struct job *jobs, const struct transport *t, const struct options *o,
                      enum kind kind, struct chan *ping, struct chan *pong)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        jobs[i] = (struct job){.t = t,
                               .o = o,
                               .ping = ping,
                               .pong = pong,
                               .index = i,
                               .warmup = o->warmup,
                               .n = o->rt_per_round};
    /* --inject-corruption: throughput runs alternately spoil a byte and
     * drop a message; a round trip can only spoil (a drop would hang it). */
    for (int i = 0; o->inject && i < MAX_CHILDREN; i++)
        jobs[i].inject = kind == KIND_LAT || run_serial % 2 ? INJECT_SPOIL : INJECT_DROP;
}

/* Starts the children of one run: a consumer and the producers, or the
 * initiator and the echo.  0, or -1 with ERR. */
static int spawn_children(struct run *r, const struct transport *t, enum kind kind,
                          const struct options *o, struct job *jobs, char *err)
{
    if (kind == KIND_TPUT) {
        if (spawn(r, o->cpu_b, "consumer", tput_consumer, &jobs[0], err) != 0)
            return -1;
        static const char *names[MAX_SENDERS] = {"producer 0", "producer 1", "producer 2"};
        for (int p = 0; p < t->senders; p++)
            if (spawn(r, o->cpu_a, names[p], tput_producer, &jobs[p], err) != 0)
                return -1;
        return 0;
    }
    if (spawn(r, o->cpu_a, "initiator", lat_initiator, &jobs[0], err) != 0 ||
        spawn(r, o->cpu_b, "echo", lat_echo, &jobs[0], err) != 0)
        return -1;
    return 0;
}

/* The transport's own wait and wake counters of PING (and PONG, or NULL)
 * added up: 0, or -1 if it has none or they cannot be read. */
static int calls_counted(const struct transport *t, struct chan *ping, struct chan *pong,
                         uint64_t *sum)
{
    uint64_t waits = 0, wakes = 0, pw = 0, pk = 0;
    if (!t->counters || t->counters(ping, &waits, &wakes) != 0 ||
        (pong && t->counters(pong, &pw, &pk) != 0))
        return -1;
    *sum = waits + wakes + pw + pk;
    return 0;
}

/* The children's system calls and context switches, added into M. */
static void children_totals(struct measured *m, const struct run *r)
{
    m->syscalls = 0;
    for (int i = 0; i < r->n; i++) {
        const struct child_out *c = &ctl->out[i];
        m->syscalls = (m->syscalls < 0 || c->syscalls < 0) ? -1 : m->syscalls + c->syscalls;
        m->vcsw += c->vcsw;
        m->ivcsw += c->ivcsw;
        /* out[0]: a throughput run's receiver (round trips count none) */
        *(i == 0 ? &m->recv_idle : &m->send_idle) += c->idle;
    }
}

/* A throughput run's messages and rate: every message sent must have
 * been received.  0, or -1 with ERR. */
static int tput_result(struct measured *m, const struct run *r, char *err)
{
    int64_t start = INT64_MAX;
    uint64_t sent = 0;
    for (int i = 1; i < r->n; i++) {
        if (ctl->out[i].t_start_ns < start)
            start = ctl->out[i].t_start_ns;
        sent += ctl->out[i].msgs;
    }
    m->msgs = ctl->out[0].msgs;
    if (m->msgs != sent) {
        snprintf(err, BENCH_ERR_MAX, CORRUPT "%llu sent, %llu received", (unsigned long long)sent,
                 (unsigned long long)m->msgs);
        return -1;
    }
    double seconds = (double)(ctl->out[0].t_end_ns - start) / 1e9;
    m->rate = seconds > 0 ? (double)m->msgs / seconds : 0;
    return 0;
}

/* Runs the children of one measurement on PING (and PONG, or NULL) and
 * fills M: 0, or -1 with ERR (the children killed). */
static int run_children(const struct transport *t, enum kind kind, enum bench_mode mode,
                        const struct options *o, struct chan *ping, struct chan *pong,
                        struct measured *m, char *err)
{
    memset(ctl, 0, sizeof *ctl);
    struct run r = {.n = 0};
    struct job jobs[MAX_CHILDREN];
    jobs_make(jobs, t, o, kind, ping, pong);
    uint64_t calls0, calls1;
    if (spawn_children(&r, t, kind, o, jobs, err) != 0 || wait_ready(&r, 30, err) != 0)
        goto stop;
    int counted = calls_counted(t, ping, pong, &calls0) == 0;
    start_all();
    if (wait_all(&r, run_timeout(o, kind, mode), err) != 0)
        goto stop;
    if (counted && calls_counted(t, ping, pong, &calls1) == 0)
        m->rq_calls = (int64_t)(calls1 - calls0);
    children_totals(m, &r);
    if (kind == KIND_TPUT)
        return tput_result(m, &r, err);
    m->msgs = ctl->out[0].msgs;
    return 0;
stop:
    kill_all(&r);
    return -1;
}

int measure(const struct transport *t, enum kind kind, size_t size, enum bench_mode mode,
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
    rc = run_children(t, kind, mode, o, &ping, have_pong ? &pong : NULL, m, err);
out:
    if (have_pong)
        t->destroy(&pong);
    t->destroy(&ping);
    return rc;
}
