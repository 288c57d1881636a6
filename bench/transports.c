/*
 * transports.c - every way of moving a message that rq_bench compares.
 *
 *   limit: the cache line ping-pong (core-to-core latency), a minimal
 *          lock-free SPSC ring (the best a shared-memory ring can do), a
 *          raw futex ping-pong (the floor of a blocking round trip);
 *   rq:    SPSC push/pop, SPSC reserve/commit + peek/release, MPSC with
 *          1, 2 and 3 producers;
 *   alt:   pipe, Unix domain socket, POSIX message queue, Boost.Interprocess
 *          message_queue.
 *
 * Every transport is used the way its users would use it: one call per
 * message, the whole message handed over, busy mode spinning on the
 * non-blocking call, block mode sleeping in the blocking one.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <rq.h>

#ifdef RQ_BENCH_HAVE_BOOST
#include "boost_mq.h"
#endif

#define LINE 64

void bench_errno(char *err, const char *what)
{
    snprintf(err, BENCH_ERR_MAX, "%s: %s", what, strerror(errno));
}

uint64_t bench_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

void bench_raise_mq_limit(void)
{
    struct rlimit lim = {RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_MSGQUEUE, &lim) == 0)
        return;
    if (getrlimit(RLIMIT_MSGQUEUE, &lim) == 0) {
        lim.rlim_cur = lim.rlim_max;
        (void)setrlimit(RLIMIT_MSGQUEUE, &lim);
    }
}

static void *shared_map(size_t size, char *err)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        bench_errno(err, "mmap");
        return NULL;
    }
    return p;
}

static void shared_unmap(struct chan *c)
{
    if (c->shm)
        munmap(c->shm, c->shm_size);
    c->shm = NULL;
}

static int recv_buffer(struct endpoint *ep, char *err)
{
    ep->cap = ep->c->p.msg_size;
    ep->buf = malloc(ep->cap);
    if (!ep->buf) {
        bench_errno(err, "malloc");
        return -1;
    }
    return 0;
}

static int is_busy(const struct endpoint *ep)
{
    return ep->c->p.mode == MODE_BUSY;
}

static long futex(_Atomic uint32_t *word, int op, uint32_t val)
{
    /* Shared between processes: no FUTEX_PRIVATE_FLAG. */
    return syscall(SYS_futex, (uint32_t *)word, op, val, NULL, NULL, 0);
}

/* ---- limit: one cache line ping-ponged ------------------------------- */

/* The initiator writes 2i+1, the echo answers 2i+2: each round trip moves
 * the line to the other core and back, nothing else. */
struct line_word {
    _Alignas(LINE) _Atomic uint64_t value;
    unsigned char pad[LINE - sizeof(uint64_t)];
};

static int line_create(struct chan *c, char *err)
{
    c->shm_size = sizeof(struct line_word);
    c->shm = shared_map(c->shm_size, err);
    return c->shm ? 0 : -1;
}

static int line_pingpong(struct chan *c, int initiator, long warmup, long n, uint64_t *samples,
                         char *err)
{
    _Atomic uint64_t *v = &((struct line_word *)c->shm)->value;
    uint64_t prev = bench_ticks();
    for (long i = 0; i < warmup + n; i++) {
        uint64_t ask = 2 * (uint64_t)i + 1, answer = ask + 1, seen;
        if (initiator) {
            atomic_store_explicit(v, ask, memory_order_release);
            while ((seen = atomic_load_explicit(v, memory_order_acquire)) != answer) {
                if (seen != ask) {
                    snprintf(err, BENCH_ERR_MAX, "cache line: saw %llu, expected %llu",
                             (unsigned long long)seen, (unsigned long long)answer);
                    return -1;
                }
            }
            uint64_t now = bench_ticks();
            if (i >= warmup)
                samples[i - warmup] = now - prev;
            prev = now;
        } else {
            while ((seen = atomic_load_explicit(v, memory_order_acquire)) != ask) {
                if (seen != ask - 1) {
                    snprintf(err, BENCH_ERR_MAX, "cache line: saw %llu, expected %llu",
                             (unsigned long long)seen, (unsigned long long)ask);
                    return -1;
                }
            }
            atomic_store_explicit(v, answer, memory_order_release);
        }
    }
    return 0;
}

/* ---- limit: raw futex ping-pong -------------------------------------- */

/* Same protocol on a 32-bit word, but every wait sleeps in FUTEX_WAIT and
 * every answer is a FUTEX_WAKE: the least a blocking round trip costs. */
static int futex_create(struct chan *c, char *err)
{
    return line_create(c, err);
}

static int futex_pingpong(struct chan *c, int initiator, long warmup, long n, uint64_t *samples,
                          char *err)
{
    _Atomic uint32_t *w = (_Atomic uint32_t *)c->shm;
    uint64_t prev = bench_ticks();
    for (long i = 0; i < warmup + n; i++) {
        uint32_t ask = 2 * (uint32_t)i + 1, answer = ask + 1;
        uint32_t want = initiator ? answer : ask, before = initiator ? ask : ask - 1;
        if (initiator) {
            atomic_store(w, ask);
            futex(w, FUTEX_WAKE, 1);
        }
        uint32_t seen;
        while ((seen = atomic_load(w)) != want) {
            if (seen != before) {
                snprintf(err, BENCH_ERR_MAX, "futex word: saw %u, expected %u", seen, want);
                return -1;
            }
            if (futex(w, FUTEX_WAIT, seen) != 0 && errno != EAGAIN && errno != EINTR) {
                bench_errno(err, "futex wait");
                return -1;
            }
        }
        if (initiator) {
            uint64_t now = bench_ticks();
            if (i >= warmup)
                samples[i - warmup] = now - prev;
            prev = now;
        } else {
            atomic_store(w, answer);
            futex(w, FUTEX_WAKE, 1);
        }
    }
    return 0;
}

/* ---- limit: a minimal lock-free SPSC ring ---------------------------- */

/* Indices on their own lines, each side caching the other's, power-of-two
 * capacity, release/acquire only, a length word per slot like rq's: the
 * shortest path any shared-memory ring can take for the same messages. */
/* struct minring: bench.h (its burst form is in transports_burst.c). */

/* The ring of STRIDE-byte slots after PAYLOADS bytes (a length array). */
static int minring_make(struct chan *c, uint64_t cap, uint64_t stride, uint64_t payloads, char *err)
{
    c->shm_size = 3 * LINE + payloads + cap * stride;
    c->shm = shared_map(c->shm_size, err);
    if (!c->shm)
        return -1;
    struct minring *r = c->shm;
    r->capacity = cap;
    r->stride = stride;
    r->payloads = payloads;
    c->depth = (uint32_t)cap;
    return 0;
}

static uint64_t minring_capacity(const struct chan *c)
{
    uint64_t cap = 1;
    while (cap < c->p.slots)
        cap <<= 1;
    return cap;
}

static int minring_create(struct chan *c, char *err)
{
    uint64_t stride = (8 + c->p.msg_size + 7) & ~(uint64_t)7;
    return minring_make(c, minring_capacity(c), stride, 0, err);
}

/* Two other slot layouts of the same ring, to measure what a layout
 * change could give rq (docs/performance/transports.md, section 4):
 * min-ring-lines rounds the stride up to whole cache lines, so that no
 * two slots share one; min-ring-lens keeps the lengths in an array of
 * their own and then the payloads, from a line boundary, in slots of the
 * message's size rounded up to 8 (a 64-byte message fills one line). */
static int minring_lines_create(struct chan *c, char *err)
{
    uint64_t stride = (8 + c->p.msg_size + LINE - 1) & ~(uint64_t)(LINE - 1);
    return minring_make(c, minring_capacity(c), stride, 0, err);
}

static int minring_lens_create(struct chan *c, char *err)
{
    uint64_t cap = minring_capacity(c);
    uint64_t payloads = (cap * 4 + LINE - 1) & ~(uint64_t)(LINE - 1);
    return minring_make(c, cap, (c->p.msg_size + 7) & ~(uint64_t)7, payloads, err);
}

static int minring_open(struct chan *c, struct endpoint *ep, int sender, int index, char *err)
{
    (void)sender;
    (void)index;
    (void)c;
    ep->own = ep->peer_cache = 0;
    return sender ? 0 : recv_buffer(ep, err);
}

static int minring_burst_open(struct chan *c, struct endpoint *ep, int sender, int index, char *err)
{
    (void)index;
    (void)c;
    ep->own = ep->peer_cache = 0;
    return sender ? 0 : bench_burst_recv_open(ep, err);
}

/* The rest of the ring's protocol, the same for every slot layout (the
 * waits are in bench.h): the producer publishes its position; the
 * consumer checks a length against its buffer, then frees the slot.
 * Inline: each layout's send and recv compile to the code they had, with
 * no call. */
static inline void minring_publish(struct endpoint *ep, struct minring *r, uint64_t head)
{
    ep->own = head + 1;
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
}

static inline int minring_length_ok(const struct endpoint *ep, uint32_t len32, char *err)
{
    if (len32 <= ep->cap)
        return 1;
    snprintf(err, BENCH_ERR_MAX, "minimal ring: length %u > %zu", len32, ep->cap);
    return 0;
}

static inline int minring_free(struct endpoint *ep, struct minring *r, uint64_t tail,
                               const void **msg, size_t *len, uint32_t len32)
{
    ep->own = tail + 1;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    *msg = ep->buf;
    *len = len32;
    return 0;
}

static int minring_send(struct endpoint *ep, const void *msg, size_t len, char *err)
{
    (void)err;
    struct minring *r = ep->c->shm;
    uint64_t cap = r->capacity; /* read once, not again after the acquire */
    uint64_t head = minring_wait_room(ep, r, cap);
    unsigned char *slot = MINRING_SLOTS(r) + (head & (cap - 1)) * r->stride;
    uint32_t len32 = (uint32_t)len;
    memcpy(slot, &len32, sizeof len32);
    memcpy(slot + 8, msg, len);
    minring_publish(ep, r, head);
    return 0;
}

static int minring_recv(struct endpoint *ep, const void **msg, size_t *len, char *err)
{
    struct minring *r = ep->c->shm;
    uint64_t tail = minring_wait_message(ep, r);
    const unsigned char *slot = MINRING_SLOTS(r) + (tail & (r->capacity - 1)) * r->stride;
    uint32_t len32;
    memcpy(&len32, slot, sizeof len32);
    if (!minring_length_ok(ep, len32, err))
        return -1;
    memcpy(ep->buf, slot + 8, len32);
    return minring_free(ep, r, tail, msg, len, len32);
}

/* min-ring-lens: the length in the array at the ring's start, the payload
 * in its own slot after it. */
static int minring_lens_send(struct endpoint *ep, const void *msg, size_t len, char *err)
{
    (void)err;
    struct minring *r = ep->c->shm;
    uint64_t cap = r->capacity;
    uint64_t head = minring_wait_room(ep, r, cap);
    uint64_t index = head & (cap - 1);
    uint32_t len32 = (uint32_t)len;
    memcpy(MINRING_SLOTS(r) + index * 4, &len32, sizeof len32);
    memcpy(MINRING_SLOTS(r) + r->payloads + index * r->stride, msg, len);
    minring_publish(ep, r, head);
    return 0;
}

static int minring_lens_recv(struct endpoint *ep, const void **msg, size_t *len, char *err)
{
    struct minring *r = ep->c->shm;
    uint64_t tail = minring_wait_message(ep, r);
    uint64_t index = tail & (r->capacity - 1);
    uint32_t len32;
    memcpy(&len32, MINRING_SLOTS(r) + index * 4, sizeof len32);
    if (!minring_length_ok(ep, len32, err))
        return -1;
    memcpy(ep->buf, MINRING_SLOTS(r) + r->payloads + index * r->stride, len32);
    return minring_free(ep, r, tail, msg, len, len32);
}

/* ---- rq --------------------------------------------------------------- */

static int rq_fail(char *err, const char *what, int rc)
{
    snprintf(err, BENCH_ERR_MAX, "%s: %s (%s)", what, rq_errname(rc), rq_strerror(rc));
    return -1;
}

/* A record queue's capacity in bytes for SLOTS messages of SIZE: as many
 * records as the slot queues of the run hold messages, in a multiple of
 * 16 and at least twice the largest record (as rq_open asks), at most
 * RQ_SLOT_COUNT_MAX (a multiple of 16).  *RECORDS: how many it holds. */
static uint32_t rq_records_capacity(uint32_t slots, size_t size, uint32_t *records)
{
    uint64_t span = RQ_RECORD_SPAN(size);
    uint64_t cap = (uint64_t)slots * span;
    if (cap < 2 * span)
        cap = 2 * span;
    cap = (cap + 15) & ~(uint64_t)15;
    if (cap < RQ_RECORDS_CAPACITY_MIN)
        cap = RQ_RECORDS_CAPACITY_MIN;
    if (cap > RQ_SLOT_COUNT_MAX)
        cap = RQ_SLOT_COUNT_MAX;
    *records = (uint32_t)(cap / span);
    return (uint32_t)cap;
}

static int rq_create(struct chan *c, char *err)
{
    snprintf(c->name, sizeof c->name, "rqbench-%s", c->p.tag);
    (void)rq_unlink(c->name);
    int records = strcmp(c->t->name, "rq-records") == 0;
    uint32_t count = c->p.slots, depth = c->p.slots;
    if (records)
        count = rq_records_capacity(c->p.slots, c->p.msg_size, &depth);
    rq_config cfg = {.slot_count = count,
                     .slot_size = (uint32_t)c->p.msg_size,
                     .flags = (strncmp(c->t->name, "rq-mpsc", 7) == 0 ? RQ_MPSC : 0) |
                              (strcmp(c->t->name, "rq-spsc-ff") == 0 ? RQ_FULL_FENCES : 0) |
                              (records ? RQ_RECORDS : 0)};
    rq *observer;
    int rc = rq_open(&observer, c->name, RQ_OBSERVER, &cfg);
    if (rc != RQ_OK)
        return rq_fail(err, "rq_open (create)", rc);
    c->obj = observer;
    c->depth = depth;
    if (records && depth != c->p.slots)
        snprintf(c->note, sizeof c->note, "a ring of %u bytes: %u records", cfg.slot_count, depth);
    return 0;
}

static void rq_destroy(struct chan *c)
{
    rq_close(c->obj);
    c->obj = NULL;
    (void)rq_unlink(c->name);
}

static int rq_endpoint_open(struct chan *c, struct endpoint *ep, int sender, int index, char *err)
{
    (void)index;
    rq *q;
    int rc = rq_open(&q, c->name, sender ? RQ_PRODUCER : RQ_CONSUMER, NULL);
    if (rc != RQ_OK)
        return rq_fail(err, sender ? "rq_open (producer)" : "rq_open (consumer)", rc);
    ep->obj = q;
    if (ep->spin_us && (rc = rq_set_spin_us(q, ep->spin_us)) != RQ_OK)
        return rq_fail(err, "rq_set_spin_us", rc);
    return sender ? 0 : recv_buffer(ep, err);
}

static void rq_endpoint_close(struct endpoint *ep)
{
    rq_close(ep->obj);
    ep->obj = NULL;
}

static int rq_timeout(const struct endpoint *ep)
{
    return is_busy(ep) ? 0 : RQ_INFINITE;
}

static int rq_burst_open(struct chan *c, struct endpoint *ep, int sender, int index, char *err)
{
    int rc = rq_endpoint_open(c, ep, sender, index, err);
    if (rc != 0 || sender)
        return rc;
    free(ep->buf);
    return bench_burst_recv_open(ep, err);
}

static int rq_send_push(struct endpoint *ep, const void *msg, size_t len, char *err)
{
    int timeout = rq_timeout(ep), rc;
    while ((rc = rq_push(ep->obj, msg, len, timeout)) == RQ_EAGAIN)
        bench_idle(ep);
    return rc == RQ_OK ? 0 : rq_fail(err, "rq_push", rc);
}

static int rq_recv_pop(struct endpoint *ep, const void **msg, size_t *len, char *err)
{
    int timeout = rq_timeout(ep), rc;
    while ((rc = rq_pop(ep->obj, ep->buf, ep->cap, len, timeout)) == RQ_EAGAIN)
        bench_idle(ep);
    *msg = ep->buf;
    return rc == RQ_OK ? 0 : rq_fail(err, "rq_pop", rc);
}

/* Zero-copy: the sender still writes every byte once, into the slot
 * instead of through rq_push; the receiver reads the message in place. */
static int rq_send_reserve(struct endpoint *ep, const void *msg, size_t len, char *err)
{
    int timeout = rq_timeout(ep), rc;
    void *slot;
    while ((rc = rq_reserve(ep->obj, &slot, timeout)) == RQ_EAGAIN)
        bench_idle(ep);
    if (rc != RQ_OK)
        return rq_fail(err, "rq_reserve", rc);
    memcpy(slot, msg, len);
    rc = rq_commit(ep->obj, len);
    return rc == RQ_OK ? 0 : rq_fail(err, "rq_commit", rc);
}

static int rq_recv_peek(struct endpoint *ep, const void **msg, size_t *len, char *err)
{
    int timeout = rq_timeout(ep), rc;
    while ((rc = rq_peek(ep->obj, msg, len, timeout)) == RQ_EAGAIN)
        bench_idle(ep);
    return rc == RQ_OK ? 0 : rq_fail(err, "rq_peek", rc);
}

static int rq_recv_release(struct endpoint *ep, char *err)
{
    int rc = rq_release(ep->obj);
    return rc == RQ_OK ? 0 : rq_fail(err, "rq_release", rc);
}

static int rq_counters(struct chan *c, uint64_t *waits, uint64_t *wakes)
{
    rq_stats st;
    if (rq_stat(c->obj, &st) != RQ_OK)
        return -1;
    *waits = st.producer_waits + st.consumer_waits;
    *wakes = st.producer_wakes + st.consumer_wakes;
    return 0;
}

/* ---- pipe ------------------------------------------------------------- */

static void fd_chan_destroy(struct chan *c)
{
    for (int i = 0; i < 2; i++) {
        if (c->fd[i] >= 0)
            close(c->fd[i]);
        c->fd[i] = -1;
    }
}

static int pipe_create(struct chan *c, char *err)
{
    if (pipe(c->fd) != 0) {
        bench_errno(err, "pipe");
        return -1;
    }
    int bytes = fcntl(c->fd[1], F_GETPIPE_SZ);
    c->depth = bytes > 0 ? (uint32_t)((size_t)bytes / c->p.msg_size) : 0;
    snprintf(c->note, sizeof c->note, "default pipe buffer %d B", bytes);
    return 0;
}

static int set_nonblocking(int fd, int on, char *err)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) != 0) {
        bench_errno(err, "fcntl");
        return -1;
    }
    return 0;
}

static int pipe_open(struct chan *c, struct endpoint *ep, int sender, int index, char *err)
{
    (void)index;
    ep->fd = sender ? c->fd[1] : c->fd[0];
    if (set_nonblocking(ep->fd, is_busy(ep), err) != 0)
        return -1;
    return sender ? 0 : recv_buffer(ep, err);
}

static void nothing_to_close(struct endpoint *ep)
{
    (void)ep;
}

static int pipe_send(struct endpoint *ep, const void *msg, size_t len, char *err)
{
    const unsigned char *p = msg;
    while (len > 0) {
        ssize_t n = write(ep->fd, p, len);
        if (n < 0) {
            if (errno == EAGAIN)
                bench_idle(ep);
            if (errno == EAGAIN || errno == EINTR)
                continue;
            bench_errno(err, "write");
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A pipe is a byte stream: the receiver reads exactly one message's bytes
 * (every message has the run's size). */
static int pipe_recv(struct endpoint *ep, const void **msg, size_t *len, char *err)
{
    size_t got = 0;
    while (got < ep->cap) {
        ssize_t n = read(ep->fd, ep->buf + got, ep->cap - got);
        if (n < 0) {
            if (errno == EAGAIN)
                bench_idle(ep);
            if (errno == EAGAIN || errno == EINTR)
                continue;
            bench_errno(err, "read");
            return -1;
        }
        if (n == 0) {
            snprintf(err, BENCH_ERR_MAX, "read: end of file");
            return -1;
        }
        got += (size_t)n;
    }
    *msg = ep->buf;
    *len = got;
    return 0;
}

/* ---- Unix domain socket (SOCK_SEQPACKET: keeps message boundaries) ---- */

static int unix_create(struct chan *c, char *err)
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, c->fd) != 0) {
        bench_errno(err, "socketpair");
        return -1;
    }
    int bytes = 0;
    socklen_t sl = sizeof bytes;
    (void)getsockopt(c->fd[0], SOL_SOCKET, SO_SNDBUF, &bytes, &sl);
    snprintf(c->note, sizeof c->note, "SOCK_SEQPACKET, default SO_SNDBUF %d B", bytes);
    return 0;
}

static int unix_open(struct chan *c, struct endpoint *ep, int sender, int index, char *err)
{
    (void)index;
    ep->fd = sender ? c->fd[0] : c->fd[1];
    return sender ? 0 : recv_buffer(ep, err);
}

static int unix_send(struct endpoint *ep, const void *msg, size_t len, char *err)
{
    int flags = is_busy(ep) ? MSG_DONTWAIT : 0;
    for (;;) {
        ssize_t n = send(ep->fd, msg, len, flags);
        if (n == (ssize_t)len)
            return 0;
        if (n >= 0) {
            snprintf(err, BENCH_ERR_MAX, "send: %zd of %zu bytes", n, len);
            return -1;
        }
        if (errno != EAGAIN && errno != EINTR) {
            bench_errno(err, "send");
            return -1;
        }
        if (errno == EAGAIN)
            bench_idle(ep);
    }
}

static int unix_recv(struct endpoint *ep, const void **msg, size_t *len, char *err)
{
    int flags = MSG_TRUNC | (is_busy(ep) ? MSG_DONTWAIT : 0);
    for (;;) {
        ssize_t n = recv(ep->fd, ep->buf, ep->cap, flags);
        if (n >= 0) {
            if ((size_t)n > ep->cap) {
                snprintf(err, BENCH_ERR_MAX, "recv: message of %zd bytes > %zu", n, ep->cap);
                return -1;
            }
            *msg = ep->buf;
            *len = (size_t)n;
            return 0;
        }
        if (errno != EAGAIN && errno != EINTR) {
            bench_errno(err, "recv");
            return -1;
        }
        if (errno == EAGAIN)
            bench_idle(ep);
    }
}

/* ---- POSIX message queue ---------------------------------------------- */

static long mq_msg_max(void)
{
    long v = -1;
    FILE *f = fopen("/proc/sys/fs/mqueue/msg_max", "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static int mq_create(struct chan *c, char *err)
{
    snprintf(c->name, sizeof c->name, "/rqbench-%s", c->p.tag);
    (void)mq_unlink(c->name);
    /* Ask for the run's depth.  Without CAP_SYS_RESOURCE the kernel allows
     * at most fs.mqueue.msg_max (10 by default); RLIMIT_MSGQUEUE may allow
     * less still: then halve until it fits.  The note says what it got. */
    long depth = c->p.slots, msg_max = mq_msg_max();
    const char *why = NULL;
    while (depth >= 1) {
        struct mq_attr attr = {.mq_maxmsg = depth, .mq_msgsize = (long)c->p.msg_size};
        mqd_t q = mq_open(c->name, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
        if (q != (mqd_t)-1) {
            mq_close(q);
            c->depth = (uint32_t)depth;
            if (why)
                snprintf(c->note, sizeof c->note, "depth %ld (%s)", depth, why);
            return 0;
        }
        if (errno == EINVAL && msg_max > 0 && depth > msg_max) {
            depth = msg_max;
            why = "fs.mqueue.msg_max";
        } else if (errno == EINVAL || errno == EMFILE || errno == ENOMEM) {
            depth /= 2;
            why = "RLIMIT_MSGQUEUE";
        } else {
            break;
        }
    }
    bench_errno(err, "mq_open (create)");
    return -1;
}

static void mq_destroy(struct chan *c)
{
    (void)mq_unlink(c->name);
}

static int mq_endpoint_open(struct chan *c, struct endpoint *ep, int sender, int index, char *err)
{
    (void)index;
    int flags = (sender ? O_WRONLY : O_RDONLY) | (is_busy(ep) ? O_NONBLOCK : 0);
    mqd_t q = mq_open(c->name, flags);
    if (q == (mqd_t)-1) {
        bench_errno(err, "mq_open");
        return -1;
    }
    ep->mq = (long)q;
    return sender ? 0 : recv_buffer(ep, err);
}

static void mq_endpoint_close(struct endpoint *ep)
{
    mq_close((mqd_t)ep->mq);
}

static int mq_send_one(struct endpoint *ep, const void *msg, size_t len, char *err)
{
    while (mq_send((mqd_t)ep->mq, msg, len, 0) != 0) {
        if (errno != EAGAIN && errno != EINTR) {
            bench_errno(err, "mq_send");
            return -1;
        }
        if (errno == EAGAIN)
            bench_idle(ep);
    }
    return 0;
}

static int mq_recv_one(struct endpoint *ep, const void **msg, size_t *len, char *err)
{
    ssize_t n;
    while ((n = mq_receive((mqd_t)ep->mq, (char *)ep->buf, ep->cap, NULL)) < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            bench_errno(err, "mq_receive");
            return -1;
        }
        if (errno == EAGAIN)
            bench_idle(ep);
    }
    *msg = ep->buf;
    *len = (size_t)n;
    return 0;
}

/* ---- Boost.Interprocess message_queue --------------------------------- */

#ifdef RQ_BENCH_HAVE_BOOST
static int boost_create(struct chan *c, char *err)
{
    snprintf(c->name, sizeof c->name, "rqbench-boost-%s", c->p.tag);
    if (bench_boost_mq_create(c->name, c->p.slots, c->p.msg_size, err) != 0)
        return -1;
    c->depth = c->p.slots;
    return 0;
}

static void boost_destroy(struct chan *c)
{
    bench_boost_mq_remove(c->name);
}

static int boost_open(struct chan *c, struct endpoint *ep, int sender, int index, char *err)
{
    (void)index;
    bench_boost_mq *q;
    if (bench_boost_mq_open(&q, c->name, err) != 0)
        return -1;
    ep->obj = q;
    return sender ? 0 : recv_buffer(ep, err);
}

static void boost_close(struct endpoint *ep)
{
    bench_boost_mq_close(ep->obj);
    ep->obj = NULL;
}

static int boost_send(struct endpoint *ep, const void *msg, size_t len, char *err)
{
    int rc;
    while ((rc = bench_boost_mq_send(ep->obj, msg, len, !is_busy(ep), err)) == 1)
        bench_idle(ep);
    return rc;
}

static int boost_recv(struct endpoint *ep, const void **msg, size_t *len, char *err)
{
    int rc;
    while ((rc = bench_boost_mq_recv(ep->obj, ep->buf, ep->cap, len, !is_busy(ep), err)) == 1)
        bench_idle(ep);
    *msg = ep->buf;
    return rc;
}
#define BOOST_AVAILABLE 1
#else
#define boost_create NULL
#define boost_destroy NULL
#define boost_open NULL
#define boost_close NULL
#define boost_send NULL
#define boost_recv NULL
#define BOOST_AVAILABLE 0
#endif

/* ---- the list ---------------------------------------------------------- */

#define BUSY MODE_BIT(MODE_BUSY)
#define BLOCK MODE_BIT(MODE_BLOCK)
#define BOTH (BUSY | BLOCK)

/* default_*: what a plain run measures (a transport named with -t gets
 * every mode it can do).  The alternatives are measured the way they are
 * normally used, blocking; Boost and POSIX mq also busy for throughput,
 * and the MPSC rows in both modes, since the targets compare best with
 * best. */
#define RQ_OPS                                                                 \
    .group = "rq", .available = 1, .create = rq_create, .destroy = rq_destroy, \
    .open = rq_endpoint_open, .close = rq_endpoint_close, .counters = rq_counters
#define MUTEX_RING_OPS                                                                   \
    .group = "limit", .available = 1, .tput_modes = BUSY, .default_tput = BUSY,          \
    .create = mutex_ring_create, .destroy = mutex_ring_destroy, .open = mutex_ring_open, \
    .close = mutex_ring_close, .send = mutex_ring_send, .recv = mutex_ring_recv
#define RQ_BURST_OPS                                                            \
    .group = "rq", .available = 1, .create = rq_create, .destroy = rq_destroy,  \
    .open = rq_burst_open, .close = rq_endpoint_close, .counters = rq_counters, \
    .burst = BENCH_BURST
#define BOOST_OPS                                                                           \
    .group = "alt", .available = BOOST_AVAILABLE, .create = boost_create,                   \
    .destroy = boost_destroy, .open = boost_open, .close = boost_close, .send = boost_send, \
    .recv = boost_recv, .tput_modes = BOTH

const struct transport bench_transports[] = {
    {.name = "cache-line",
     .group = "limit",
     .available = 1,
     .senders = 1,
     .what = "one 64-byte line written alternately by the two cores",
     .lat_modes = BUSY,
     .default_lat = BUSY,
     .create = line_create,
     .destroy = shared_unmap,
     .pingpong = line_pingpong},
    {.name = "futex",
     .group = "limit",
     .available = 1,
     .senders = 1,
     .what = "raw FUTEX_WAIT/FUTEX_WAKE ping-pong on one shared word",
     .lat_modes = BLOCK,
     .default_lat = BLOCK,
     .create = futex_create,
     .destroy = shared_unmap,
     .pingpong = futex_pingpong},
    {.name = "min-ring",
     .group = "limit",
     .available = 1,
     .senders = 1,
     .what = "minimal lock-free SPSC ring: line-separated indices, cached peer index",
     .tput_modes = BUSY,
     .lat_modes = BUSY,
     .default_tput = BUSY,
     .default_lat = BUSY,
     .create = minring_create,
     .destroy = shared_unmap,
     .open = minring_open,
     .close = nothing_to_close,
     .send = minring_send,
     .recv = minring_recv},
    {.name = "min-ring-lines",
     .group = "layout",
     .available = 1,
     .senders = 1,
     .what =
         "the minimal ring, its stride rounded up to whole cache lines (no two slots share one)",
     .tput_modes = BUSY,
     .default_tput = BUSY,
     .create = minring_lines_create,
     .destroy = shared_unmap,
     .open = minring_open,
     .close = nothing_to_close,
     .send = minring_send,
     .recv = minring_recv},
    {.name = "min-ring-lens",
     .group = "layout",
     .available = 1,
     .senders = 1,
     .what = "the minimal ring, lengths in an array of their own, then the payloads from a line "
             "boundary",
     .tput_modes = BUSY,
     .default_tput = BUSY,
     .create = minring_lens_create,
     .destroy = shared_unmap,
     .open = minring_open,
     .close = nothing_to_close,
     .send = minring_lens_send,
     .recv = minring_lens_recv},
    {.name = "rq-spsc",
     RQ_OPS,
     .senders = 1,
     .what = "rq SPSC, rq_push / rq_pop",
     .tput_modes = BOTH,
     .lat_modes = BOTH,
     .default_tput = BOTH,
     .default_lat = BOTH,
     .send = rq_send_push,
     .recv = rq_recv_pop},
    {.name = "rq-spsc-ff",
     RQ_OPS,
     .senders = 1,
     .what = "rq SPSC with RQ_FULL_FENCES (xchg per publish, no membarrier per sleep)",
     .tput_modes = BOTH,
     .lat_modes = BOTH,
     .default_tput = BOTH,
     .default_lat = BOTH,
     .send = rq_send_push,
     .recv = rq_recv_pop},
    {.name = "rq-spsc-zc",
     RQ_OPS,
     .senders = 1,
     .in_place = 1,
     .what = "rq SPSC, rq_reserve+rq_commit / rq_peek+rq_release",
     .tput_modes = BOTH,
     .lat_modes = BOTH,
     .default_tput = BUSY,
     .default_lat = BUSY,
     .send = rq_send_reserve,
     .recv = rq_recv_peek,
     .recv_done = rq_recv_release},
    {.name = "rq-records",
     RQ_OPS,
     .senders = 1,
     .what = "rq SPSC record queue (RQ_RECORDS), rq_push / rq_pop, as many records as slots",
     .tput_modes = BOTH,
     .lat_modes = BOTH,
     .default_tput = BUSY,
     .default_lat = BUSY,
     .send = rq_send_push,
     .recv = rq_recv_pop},
    {.name = "rq-mpsc-1p",
     RQ_OPS,
     .senders = 1,
     .what = "rq MPSC queue, 1 producer",
     .tput_modes = BOTH,
     .lat_modes = BOTH,
     .default_tput = BUSY,
     .default_lat = BUSY,
     .send = rq_send_push,
     .recv = rq_recv_pop},
    {.name = "rq-mpsc-2p",
     RQ_OPS,
     .senders = 2,
     .what = "rq MPSC queue, 2 producers",
     .tput_modes = BOTH,
     .default_tput = BOTH,
     .send = rq_send_push,
     .recv = rq_recv_pop},
    {.name = "rq-mpsc-3p",
     RQ_OPS,
     .senders = 3,
     .what = "rq MPSC queue, 3 producers",
     .tput_modes = BOTH,
     .default_tput = BOTH,
     .send = rq_send_push,
     .recv = rq_recv_pop},
    /* The MPSC baseline: the minimal ring with a robust mutex per push. */
    {.name = "mutex-ring-1p",
     MUTEX_RING_OPS,
     .senders = 1,
     .what = "minimal ring + one robust pthread mutex lock per push, 1 producer"},
    {.name = "mutex-ring-2p",
     MUTEX_RING_OPS,
     .senders = 2,
     .what = "minimal ring + one robust pthread mutex lock per push, 2 producers"},
    {.name = "mutex-ring-3p",
     MUTEX_RING_OPS,
     .senders = 3,
     .what = "minimal ring + one robust pthread mutex lock per push, 3 producers"},
    /* Bursts of BENCH_BURST (throughput only), the minimal ring's too. */
    {.name = "min-ring-burst",
     .group = "limit",
     .available = 1,
     .senders = 1,
     .what = "the minimal ring, batches: one index store per batch on each side",
     .tput_modes = BUSY,
     .default_tput = BUSY,
     .burst = BENCH_BURST,
     .create = minring_create,
     .destroy = shared_unmap,
     .open = minring_burst_open,
     .close = nothing_to_close,
     .send_burst = minring_send_burst,
     .recv_burst = minring_recv_burst},
    {.name = "rq-spsc-burst",
     RQ_BURST_OPS,
     .senders = 1,
     .what = "rq SPSC, rq_push_burst / rq_pop_burst",
     .tput_modes = BOTH,
     .default_tput = BUSY,
     .send_burst = rq_send_push_burst,
     .recv_burst = rq_recv_pop_burst},
    {.name = "rq-spsc-zc-burst",
     RQ_BURST_OPS,
     .senders = 1,
     .in_place = 1,
     .what = "rq SPSC, rq_reserve_burst+rq_commit_burst / rq_peek_burst+rq_release_burst",
     .tput_modes = BOTH,
     .default_tput = BUSY,
     .send_burst = rq_send_reserve_burst,
     .recv_burst = rq_recv_peek_burst,
     .recv_burst_done = rq_recv_release_burst},
    {.name = "rq-mpsc-1p-burst",
     RQ_BURST_OPS,
     .senders = 1,
     .what = "rq MPSC queue, 1 producer, bursts",
     .tput_modes = BOTH,
     .default_tput = BUSY,
     .send_burst = rq_send_push_burst,
     .recv_burst = rq_recv_pop_burst},
    {.name = "rq-mpsc-2p-burst",
     RQ_BURST_OPS,
     .senders = 2,
     .what = "rq MPSC queue, 2 producers, bursts",
     .tput_modes = BOTH,
     .default_tput = BUSY,
     .send_burst = rq_send_push_burst,
     .recv_burst = rq_recv_pop_burst},
    {.name = "rq-mpsc-3p-burst",
     RQ_BURST_OPS,
     .senders = 3,
     .what = "rq MPSC queue, 3 producers, bursts",
     .tput_modes = BOTH,
     .send_burst = rq_send_push_burst,
     .recv_burst = rq_recv_pop_burst},
    {.name = "pipe",
     .group = "alt",
     .available = 1,
     .senders = 1,
     .what = "pipe(2), one write/read per message",
     .tput_modes = BOTH,
     .lat_modes = BOTH,
     .default_tput = BLOCK,
     .default_lat = BLOCK,
     .create = pipe_create,
     .destroy = fd_chan_destroy,
     .open = pipe_open,
     .close = nothing_to_close,
     .send = pipe_send,
     .recv = pipe_recv},
    {.name = "unix",
     .group = "alt",
     .available = 1,
     .senders = 1,
     .what = "Unix domain socketpair, SOCK_SEQPACKET, one send/recv per message",
     .tput_modes = BOTH,
     .lat_modes = BOTH,
     .default_tput = BLOCK,
     .default_lat = BLOCK,
     .create = unix_create,
     .destroy = fd_chan_destroy,
     .open = unix_open,
     .close = nothing_to_close,
     .send = unix_send,
     .recv = unix_recv},
    {.name = "posix-mq",
     .group = "alt",
     .available = 1,
     .senders = 1,
     .what = "POSIX message queue (mq_open), mq_send / mq_receive",
     .tput_modes = BOTH,
     .lat_modes = BOTH,
     .default_tput = BOTH,
     .default_lat = BLOCK,
     .create = mq_create,
     .destroy = mq_destroy,
     .open = mq_endpoint_open,
     .close = mq_endpoint_close,
     .send = mq_send_one,
     .recv = mq_recv_one},
    {.name = "boost-mq",
     BOOST_OPS,
     .senders = 1,
     .what = "Boost.Interprocess message_queue, send / receive (try_ when busy)",
     .lat_modes = BOTH,
     .default_tput = BOTH,
     .default_lat = BLOCK},
    {.name = "boost-mq-2p",
     BOOST_OPS,
     .senders = 2,
     .what = "Boost.Interprocess message_queue, 2 producers",
     .default_tput = BOTH},
    {.name = "boost-mq-3p",
     BOOST_OPS,
     .senders = 3,
     .what = "Boost.Interprocess message_queue, 3 producers"},
};

const size_t bench_transport_count = sizeof bench_transports / sizeof bench_transports[0];
