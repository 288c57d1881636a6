/*
 * transports_mutex.c - the MPSC baseline "Lamport ring + robust mutex per
 * push": the minimal ring's consumer, and producers that take one
 * process-shared robust pthread mutex around each push (64-bit indices, so
 * a producer's cached tail never needs a lap check).  What an MPSC queue
 * that survives a producer's death inside the lock costs at the least with
 * the C library's lock.  Throughput only, busy.  Linux only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

struct mutex_ring {
    _Alignas(BENCH_LINE) pthread_mutex_t lock;
    _Alignas(BENCH_LINE) _Atomic uint64_t head; /* written under the lock */
    _Alignas(BENCH_LINE) _Atomic uint64_t tail; /* written by the consumer */
    _Alignas(BENCH_LINE) uint64_t capacity;
    uint64_t stride;
    _Alignas(BENCH_LINE) unsigned char slots[];
};

int mutex_ring_create(struct chan *c, char *err)
{
    uint64_t cap = 1;
    while (cap < c->p.slots)
        cap <<= 1;
    uint64_t stride = (8 + c->p.msg_size + 7) & ~(uint64_t)7;
    c->shm_size = sizeof(struct mutex_ring) + cap * stride;
    void *p = mmap(NULL, c->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        bench_errno(err, "mmap");
        return -1;
    }
    struct mutex_ring *r = c->shm = p;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&r->lock, &a);
    pthread_mutexattr_destroy(&a);
    if (rc != 0) {
        errno = rc;
        bench_errno(err, "pthread_mutex_init");
        return -1;
    }
    r->capacity = cap;
    r->stride = stride;
    c->depth = (uint32_t)cap;
    return 0;
}

void mutex_ring_destroy(struct chan *c)
{
    if (c->shm) {
        pthread_mutex_destroy(&((struct mutex_ring *)c->shm)->lock);
        munmap(c->shm, c->shm_size);
    }
    c->shm = NULL;
}

int mutex_ring_open(struct chan *c, struct endpoint *ep, int sender, int index, char *err)
{
    (void)index;
    ep->own = ep->peer_cache = 0;
    if (sender)
        return 0;
    ep->cap = c->p.msg_size;
    ep->buf = malloc(ep->cap);
    if (!ep->buf) {
        bench_errno(err, "malloc");
        return -1;
    }
    return 0;
}

void mutex_ring_close(struct endpoint *ep)
{
    free(ep->buf);
    ep->buf = NULL;
}

static void lock(struct mutex_ring *r)
{
    if (pthread_mutex_lock(&r->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&r->lock);
}

/* One push under the lock; 0 if the ring was full (the lock is dropped
 * before the caller tries again). */
static int try_push(struct endpoint *ep, struct mutex_ring *r, const void *msg, size_t len)
{
    lock(r);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (head - ep->peer_cache >= r->capacity) {
        ep->peer_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head - ep->peer_cache >= r->capacity) {
            pthread_mutex_unlock(&r->lock);
            return 0;
        }
    }
    unsigned char *slot = r->slots + (head & (r->capacity - 1)) * r->stride;
    uint32_t len32 = (uint32_t)len;
    memcpy(slot, &len32, sizeof len32);
    memcpy(slot + 8, msg, len);
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    pthread_mutex_unlock(&r->lock);
    return 1;
}

int mutex_ring_send(struct endpoint *ep, const void *msg, size_t len, char *err)
{
    (void)err;
    while (!try_push(ep, ep->c->shm, msg, len))
        bench_idle(ep);
    return 0;
}

int mutex_ring_recv(struct endpoint *ep, const void **msg, size_t *len, char *err)
{
    struct mutex_ring *r = ep->c->shm;
    uint64_t tail = ep->own;
    while (tail == ep->peer_cache) {
        ep->peer_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail == ep->peer_cache)
            bench_idle(ep);
    }
    const unsigned char *slot = r->slots + (tail & (r->capacity - 1)) * r->stride;
    uint32_t len32;
    memcpy(&len32, slot, sizeof len32);
    if (len32 > ep->cap) {
        snprintf(err, BENCH_ERR_MAX, "mutex ring: length %u > %zu", len32, ep->cap);
        return -1;
    }
    memcpy(ep->buf, slot + 8, len32);
    ep->own = tail + 1;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    *msg = ep->buf;
    *len = len32;
    return 0;
}
