/*
 * rq_icount.c - the code path per message, without the cache traffic: one
 * process pushes a batch and pops it again, over and over, so that an
 * instruction count (valgrind --tool=callgrind, perf stat -e instructions)
 * divided by the messages moved is the cost of the calls alone.  Unlike
 * throughput, the count does not depend on the machine's load.
 *
 *   rq_icount PATH [MESSAGES [SIZE]]
 *
 * PATH: copy (rq_push / rq_pop), zc (rq_reserve + rq_commit / rq_peek +
 * rq_release), burst (rq_push_burst / rq_pop_burst), zc-burst
 * (rq_reserve_burst + rq_commit_burst / rq_peek_burst + rq_release_burst),
 * mpsc-copy, mpsc-burst (the same on an RQ_MPSC queue), mpsc-2p-copy
 * (mpsc-copy with two producer handles taking turns, so that every push
 * follows another producer's, as in a contended queue), rec-copy, rec-zc
 * (rq_reserve_len + rq_commit), rec-mpsc-copy, rec-burst (the same on an
 * RQ_RECORDS queue of SLOTS * 64 bytes), min-ring and
 * min-ring-burst (the minimal ring of transports.c, in one process),
 * mutex-ring (the minimal ring with a process-shared robust pthread mutex
 * taken around every push: the MPSC baseline of transports_mutex.c),
 * rec-zc-burst (rq_reserve_burst_len + rq_commit_burst / rq_peek_burst +
 * rq_release_burst on an RQ_RECORDS queue: zc-burst's records twin).
 * Batches of BATCH messages (16; rq_icount_1: 1, so that every pop
 * reloads the producer's offset); MESSAGES (default 1,600,000) is rounded down
 * to whole batches; SIZE defaults to 8 bytes.  Only measured_run is meant
 * to be counted:
 *
 *   valgrind --tool=callgrind --toggle-collect=measured_run \
 *       build/release/bench/rq_icount copy 160000 8
 *   (then: Ir of the summary / messages)
 *
 * Run natively it also prints the thread's CPU time per message over
 * measured_run: one-process throughput, no cache traffic between cores.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rq.h"

/* rq_icount_1 (bench/CMakeLists.txt) is built with RQ_ICOUNT_BATCH 1. */
#ifndef RQ_ICOUNT_BATCH
#define RQ_ICOUNT_BATCH 16
#endif
#define BATCH RQ_ICOUNT_BATCH
#define SLOTS 1024
#define MAX_SIZE 4096
#define LINE 64

/* ---- the minimal ring (as transports.c's, in one process) ------------- */

struct minring {
    _Alignas(LINE) _Atomic uint64_t head;
    _Alignas(LINE) _Atomic uint64_t tail;
    _Alignas(LINE) uint64_t capacity;
    uint64_t stride;
    uint64_t head_own, tail_cache;       /* producer's */
    uint64_t tail_own, head_cache;       /* consumer's */
    _Alignas(LINE) pthread_mutex_t lock; /* mutex-ring: around every push */
};

static unsigned char *mr_slot(struct minring *r, uint64_t i)
{
    return (unsigned char *)(r + 1) + (i & (r->capacity - 1)) * r->stride;
}

static struct minring *mr_make(size_t size)
{
    uint64_t stride = (8 + size + 7) & ~(uint64_t)7;
    struct minring *r = aligned_alloc(LINE, sizeof *r + SLOTS * stride);
    if (!r)
        exit(1);
    memset(r, 0, sizeof *r);
    r->capacity = SLOTS;
    r->stride = stride;
    return r;
}

static int mr_push(struct minring *r, const void *msg, uint32_t len)
{
    uint64_t head = r->head_own;
    if (head - r->tail_cache == r->capacity) {
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head - r->tail_cache == r->capacity)
            return -1;
    }
    unsigned char *slot = mr_slot(r, head);
    memcpy(slot, &len, sizeof len);
    memcpy(slot + 8, msg, len);
    r->head_own = head + 1;
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return 0;
}

static int mr_pop(struct minring *r, void *buf, uint32_t *len)
{
    uint64_t tail = r->tail_own;
    if (tail == r->head_cache) {
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail == r->head_cache)
            return -1;
    }
    const unsigned char *slot = mr_slot(r, tail);
    memcpy(len, slot, sizeof *len);
    if (*len > MAX_SIZE)
        return -1;
    memcpy(buf, slot + 8, *len);
    r->tail_own = tail + 1;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return 0;
}

/* A burst: K slots written, one store of head; K read, one store of tail. */
static int mr_push_burst(struct minring *r, const void *const *msgs, const uint32_t *lens, int k)
{
    uint64_t head = r->head_own;
    if (r->capacity - (head - r->tail_cache) < (uint64_t)k) {
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (r->capacity - (head - r->tail_cache) < (uint64_t)k)
            return -1;
    }
    for (int i = 0; i < k; i++) {
        unsigned char *slot = mr_slot(r, head + (uint64_t)i);
        memcpy(slot, &lens[i], sizeof lens[i]);
        memcpy(slot + 8, msgs[i], lens[i]);
    }
    r->head_own = head + (uint64_t)k;
    atomic_store_explicit(&r->head, r->head_own, memory_order_release);
    return k;
}

static int mr_pop_burst(struct minring *r, unsigned char *buf, size_t cap, uint32_t *lens, int k)
{
    uint64_t tail = r->tail_own;
    if (r->head_cache - tail < (uint64_t)k)
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t n = r->head_cache - tail < (uint64_t)k ? r->head_cache - tail : (uint64_t)k;
    for (uint64_t i = 0; i < n; i++) {
        const unsigned char *slot = mr_slot(r, tail + i);
        memcpy(&lens[i], slot, sizeof lens[i]);
        if (lens[i] > cap)
            return -1;
        memcpy(buf + i * cap, slot + 8, lens[i]);
    }
    r->tail_own = tail + n;
    atomic_store_explicit(&r->tail, r->tail_own, memory_order_release);
    return (int)n;
}

/* ---- the measured loops ------------------------------------------------ */

enum path {
    COPY,
    ZC,
    BURST,
    ZC_BURST,
    MPSC_COPY,
    MPSC_BURST,
    REC_COPY,
    REC_ZC,
    REC_MPSC_COPY,
    REC_BURST,
    MINRING,
    MINRING_BURST,
    MUTEXRING,
    MPSC_2P_COPY,
    REC_ZC_BURST,
    PATHS
};
static const char *const path_names[PATHS] = {
    "copy",       "zc",           "burst",         "zc-burst",  "mpsc-copy", "mpsc-burst",
    "rec-copy",   "rec-zc",       "rec-mpsc-copy", "rec-burst", "min-ring",  "min-ring-burst",
    "mutex-ring", "mpsc-2p-copy", "rec-zc-burst"};

struct run {
    enum path path;
    size_t size;
    long rounds;
    rq *p, *c;
    rq *p2; /* mpsc-2p-copy: the second producer */
    struct minring *mr;
    unsigned char msg[MAX_SIZE];
    unsigned char buf[BATCH * MAX_SIZE];
    volatile unsigned sink; /* every received byte is read once */
};

static void fail(const char *what, int rc)
{
    fprintf(stderr, "rq_icount: %s: %s\n", what, rc < 0 ? rq_strerror(rc) : "short");
    exit(1);
}

static unsigned touch(const void *p, size_t n)
{
    const unsigned char *b = p;
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += b[i];
    return s;
}

static void round_copy(struct run *r)
{
    size_t len;
    for (int i = 0; i < BATCH; i++) {
        int rc = rq_push(r->p, r->msg, r->size, 0);
        if (rc != RQ_OK)
            fail("rq_push", rc);
    }
    for (int i = 0; i < BATCH; i++) {
        int rc = rq_pop(r->c, r->buf, MAX_SIZE, &len, 0);
        if (rc != RQ_OK)
            fail("rq_pop", rc);
        r->sink += touch(r->buf, len);
    }
}

/* Two producers taking turns: each push follows the other's. */
static void round_copy_2p(struct run *r)
{
    size_t len;
    for (int i = 0; i < BATCH; i++) {
        int rc = rq_push(i % 2 ? r->p2 : r->p, r->msg, r->size, 0);
        if (rc != RQ_OK)
            fail("rq_push", rc);
    }
    for (int i = 0; i < BATCH; i++) {
        int rc = rq_pop(r->c, r->buf, MAX_SIZE, &len, 0);
        if (rc != RQ_OK)
            fail("rq_pop", rc);
        r->sink += touch(r->buf, len);
    }
}

/* The consumer's half of a zero-copy round, the same on both kinds of
 * queue: BATCH messages peeked, read and released. */
static inline void peek_release_batch(struct run *r)
{
    for (int i = 0; i < BATCH; i++) {
        const void *m;
        size_t len;
        int rc = rq_peek(r->c, &m, &len, 0);
        if (rc != RQ_OK)
            fail("rq_peek", rc);
        r->sink += touch(m, len);
        rq_release(r->c);
    }
}

static void round_zc(struct run *r)
{
    for (int i = 0; i < BATCH; i++) {
        void *slot;
        int rc = rq_reserve(r->p, &slot, 0);
        if (rc != RQ_OK)
            fail("rq_reserve", rc);
        memcpy(slot, r->msg, r->size);
        rq_commit(r->p, r->size);
    }
    peek_release_batch(r);
}

static void round_burst(struct run *r)
{
    const void *msgs[BATCH];
    size_t lens[BATCH];
    for (int i = 0; i < BATCH; i++) {
        msgs[i] = r->msg;
        lens[i] = r->size;
    }
    int n = rq_push_burst(r->p, msgs, lens, BATCH, 0);
    if (n != BATCH)
        fail("rq_push_burst", n);
    n = rq_pop_burst(r->c, r->buf, r->size, lens, BATCH, 0);
    if (n != BATCH)
        fail("rq_pop_burst", n);
    for (int i = 0; i < BATCH; i++)
        r->sink += touch(r->buf + (size_t)i * r->size, lens[i]);
}

static void round_zc_burst(struct run *r)
{
    void *slots[BATCH];
    size_t lens[BATCH];
    int n = rq_reserve_burst(r->p, slots, BATCH, 0);
    if (n != BATCH)
        fail("rq_reserve_burst", n);
    for (int i = 0; i < BATCH; i++) {
        memcpy(slots[i], r->msg, r->size);
        lens[i] = r->size;
    }
    rq_commit_burst(r->p, lens, BATCH);
    rq_msg_view v[BATCH];
    n = rq_peek_burst(r->c, v, BATCH, 0);
    if (n != BATCH)
        fail("rq_peek_burst", n);
    for (int i = 0; i < BATCH; i++)
        r->sink += touch(v[i].data, v[i].len);
    rq_release_burst(r->c, BATCH);
}

static void round_rec_zc_burst(struct run *r)
{
    void *bufs[BATCH];
    size_t lens[BATCH];
    for (int i = 0; i < BATCH; i++)
        lens[i] = r->size;
    int n = rq_reserve_burst_len(r->p, lens, BATCH, bufs, 0);
    if (n != BATCH)
        fail("rq_reserve_burst_len", n);
    for (int i = 0; i < BATCH; i++)
        memcpy(bufs[i], r->msg, r->size);
    rq_commit_burst(r->p, lens, BATCH);
    rq_msg_view v[BATCH];
    n = rq_peek_burst(r->c, v, BATCH, 0);
    if (n != BATCH)
        fail("rq_peek_burst", n);
    for (int i = 0; i < BATCH; i++)
        r->sink += touch(v[i].data, v[i].len);
    rq_release_burst(r->c, BATCH);
}

static void round_rec_zc(struct run *r)
{
    for (int i = 0; i < BATCH; i++) {
        void *slot;
        int rc = rq_reserve_len(r->p, r->size, &slot, 0);
        if (rc != RQ_OK)
            fail("rq_reserve_len", rc);
        memcpy(slot, r->msg, r->size);
        rq_commit(r->p, r->size);
    }
    peek_release_batch(r);
}

static void round_minring(struct run *r)
{
    uint32_t len;
    for (int i = 0; i < BATCH; i++)
        if (mr_push(r->mr, r->msg, (uint32_t)r->size) < 0)
            fail("min-ring push", 0);
    for (int i = 0; i < BATCH; i++) {
        if (mr_pop(r->mr, r->buf, &len) < 0)
            fail("min-ring pop", 0);
        r->sink += touch(r->buf, len);
    }
}

static void round_mutexring(struct run *r)
{
    uint32_t len;
    for (int i = 0; i < BATCH; i++) {
        if (pthread_mutex_lock(&r->mr->lock) == EOWNERDEAD)
            pthread_mutex_consistent(&r->mr->lock);
        int rc = mr_push(r->mr, r->msg, (uint32_t)r->size);
        pthread_mutex_unlock(&r->mr->lock);
        if (rc < 0)
            fail("mutex-ring push", 0);
    }
    for (int i = 0; i < BATCH; i++) {
        if (mr_pop(r->mr, r->buf, &len) < 0)
            fail("mutex-ring pop", 0);
        r->sink += touch(r->buf, len);
    }
}

static void make_robust_lock(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (pthread_mutex_init(m, &a) != 0)
        fail("pthread_mutex_init", 0);
    pthread_mutexattr_destroy(&a);
}

static void round_minring_burst(struct run *r)
{
    const void *msgs[BATCH];
    uint32_t lens[BATCH];
    for (int i = 0; i < BATCH; i++) {
        msgs[i] = r->msg;
        lens[i] = (uint32_t)r->size;
    }
    if (mr_push_burst(r->mr, msgs, lens, BATCH) != BATCH)
        fail("min-ring push burst", 0);
    if (mr_pop_burst(r->mr, r->buf, r->size, lens, BATCH) != BATCH)
        fail("min-ring pop burst", 0);
    for (int i = 0; i < BATCH; i++)
        r->sink += touch(r->buf + (size_t)i * r->size, lens[i]);
}

/* The one function a counter should count (callgrind --toggle-collect). */
__attribute__((noinline)) void measured_run(struct run *r);
__attribute__((noinline)) void measured_run(struct run *r)
{
    static void (*const rounds[PATHS])(struct run *) = {
        round_copy,      round_zc,      round_burst,       round_zc_burst,
        round_copy,      round_burst,   round_copy,        round_rec_zc,
        round_copy,      round_burst,   round_minring,     round_minring_burst,
        round_mutexring, round_copy_2p, round_rec_zc_burst};
    for (long i = 0; i < r->rounds; i++)
        rounds[r->path](r);
}

static void open_queue(struct run *r)
{
    char name[64];
    snprintf(name, sizeof name, "icount.%ld", (long)getpid());
    int mpsc = r->path == MPSC_COPY || r->path == MPSC_BURST || r->path == REC_MPSC_COPY ||
               r->path == MPSC_2P_COPY;
    int rec = r->path == REC_COPY || r->path == REC_ZC || r->path == REC_MPSC_COPY ||
              r->path == REC_BURST || r->path == REC_ZC_BURST;
    rq_config cfg = {SLOTS, (uint32_t)r->size, mpsc ? RQ_MPSC : 0, 0};
    if (rec) /* capacity in bytes; the largest record is the message size */
        cfg = (rq_config){SLOTS * LINE, MAX_SIZE, (mpsc ? RQ_MPSC : 0) | RQ_RECORDS, 0};
    rq_unlink(name);
    int rc = rq_open(&r->p, name, RQ_PRODUCER, &cfg);
    if (rc == RQ_OK)
        rc = rq_open(&r->c, name, RQ_CONSUMER, NULL);
    if (rc == RQ_OK && r->path == MPSC_2P_COPY)
        rc = rq_open(&r->p2, name, RQ_PRODUCER, NULL);
    if (rc != RQ_OK)
        fail("rq_open", rc);
    rq_unlink(name); /* the handles keep it */
}

int main(int argc, char **argv)
{
    static struct run r;
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: rq_icount PATH [MESSAGES [SIZE]]\n");
        return 2;
    }
    r.path = PATHS;
    for (int i = 0; i < PATHS; i++)
        if (strcmp(argv[1], path_names[i]) == 0)
            r.path = (enum path)i;
    long messages = argc > 2 ? atol(argv[2]) : 1600000;
    r.size = argc > 3 ? (size_t)atol(argv[3]) : 8;
    if (r.path == PATHS || messages < BATCH || r.size < 1 || r.size > MAX_SIZE) {
        fprintf(stderr, "rq_icount: bad PATH, MESSAGES or SIZE\n");
        return 2;
    }
    r.rounds = messages / BATCH;
    memset(r.msg, 'm', sizeof r.msg);
    if (r.path == MINRING || r.path == MINRING_BURST || r.path == MUTEXRING) {
        r.mr = mr_make(r.size);
        if (r.path == MUTEXRING)
            make_robust_lock(&r.mr->lock);
    } else
        open_queue(&r);
    /* CPU time of this thread only: preemption by other processes does
     * not count, so one-process throughput compares builds more steadily
     * than a two-process run on a loaded or virtual machine. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    measured_run(&r);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%s %zu B: %ld messages, %.2f ns of CPU per message\n", path_names[r.path], r.size,
           r.rounds * BATCH, ns / (double)(r.rounds * BATCH));
    rq_close(r.p);
    if (r.p2)
        rq_close(r.p2);
    rq_close(r.c);
    free(r.mr);
    return 0;
}
