/*
 * transports_burst.c - the burst forms of the minimal ring and of rq
 * (throughput only): the sender hands over BENCH_BURST messages at a time,
 * the receiver takes up to BENCH_BURST at a time, and each side publishes
 * its index once per batch.  The minimal ring gets the same treatment as
 * rq, so that the comparison stays between equals.  Linux only.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "rq.h"

static int busy(const struct endpoint *ep)
{
    return ep->c->p.mode == MODE_BUSY;
}

/* The receive buffer of a copying burst: BENCH_BURST messages. */
int bench_burst_recv_open(struct endpoint *ep, char *err)
{
    ep->cap = ep->c->p.msg_size;
    ep->buf = malloc(ep->cap * BENCH_BURST);
    if (!ep->buf) {
        bench_errno(err, "malloc");
        return -1;
    }
    return 0;
}

/* ---- the minimal ring ---------------------------------------------------- */

int minring_send_burst(struct endpoint *ep, const void *const *msgs, size_t len, int n, char *err)
{
    (void)err;
    struct minring *r = ep->c->shm;
    uint64_t cap = r->capacity;
    for (int done = 0; done < n;) {
        uint64_t head = minring_wait_room(ep, r, cap);
        uint64_t room = cap - (head - ep->peer_cache);
        int k = room < (uint64_t)(n - done) ? (int)room : n - done;
        uint32_t len32 = (uint32_t)len;
        for (int i = 0; i < k; i++) {
            unsigned char *slot = MINRING_SLOTS(r) + ((head + (uint64_t)i) & (cap - 1)) * r->stride;
            memcpy(slot, &len32, sizeof len32);
            memcpy(slot + 8, msgs[done + i], len);
        }
        ep->own = head + (uint64_t)k;
        atomic_store_explicit(&r->head, ep->own, memory_order_release);
        done += k;
    }
    return 0;
}

int minring_recv_burst(struct endpoint *ep, const void **msgs, size_t *lens, int max, int *n,
                       char *err)
{
    struct minring *r = ep->c->shm;
    uint64_t tail = minring_wait_message(ep, r);
    uint64_t avail = ep->peer_cache - tail;
    int k = avail < (uint64_t)max ? (int)avail : max;
    for (int i = 0; i < k; i++) {
        const unsigned char *slot =
            MINRING_SLOTS(r) + ((tail + (uint64_t)i) & (r->capacity - 1)) * r->stride;
        uint32_t len32;
        memcpy(&len32, slot, sizeof len32);
        if (len32 > ep->cap) {
            snprintf(err, BENCH_ERR_MAX, "minimal ring: length %u > %zu", len32, ep->cap);
            return -1;
        }
        memcpy(ep->buf + (size_t)i * ep->cap, slot + 8, len32);
        msgs[i] = ep->buf + (size_t)i * ep->cap;
        lens[i] = len32;
    }
    ep->own = tail + (uint64_t)k;
    atomic_store_explicit(&r->tail, ep->own, memory_order_release);
    *n = k;
    return 0;
}

/* ---- rq -------------------------------------------------------------------- */

static int fail(char *err, const char *what, int rc)
{
    snprintf(err, BENCH_ERR_MAX, "%s: %s (%s)", what, rq_errname(rc), rq_strerror(rc));
    return -1;
}

static int timeout(const struct endpoint *ep)
{
    return busy(ep) ? 0 : RQ_INFINITE;
}

int rq_send_push_burst(struct endpoint *ep, const void *const *msgs, size_t len, int n, char *err)
{
    size_t lens[BENCH_BURST];
    for (int i = 0; i < n; i++)
        lens[i] = len;
    for (int done = 0; done < n;) {
        int rc = rq_push_burst(ep->obj, msgs + done, lens + done, (size_t)(n - done), timeout(ep));
        if (rc == RQ_EAGAIN) {
            bench_idle(ep);
            continue;
        }
        if (rc < 0)
            return fail(err, "rq_push_burst", rc);
        done += rc;
    }
    return 0;
}

/* Zero-copy: every byte is still written once, into the slots. */
int rq_send_reserve_burst(struct endpoint *ep, const void *const *msgs, size_t len, int n,
                          char *err)
{
    size_t lens[BENCH_BURST];
    void *slots[BENCH_BURST];
    for (int i = 0; i < n; i++)
        lens[i] = len;
    for (int done = 0; done < n;) {
        int k = rq_reserve_burst(ep->obj, slots, (size_t)(n - done), timeout(ep));
        if (k == RQ_EAGAIN) {
            bench_idle(ep);
            continue;
        }
        if (k < 0)
            return fail(err, "rq_reserve_burst", k);
        for (int i = 0; i < k; i++)
            memcpy(slots[i], msgs[done + i], len);
        int rc = rq_commit_burst(ep->obj, lens, (size_t)k);
        if (rc != RQ_OK)
            return fail(err, "rq_commit_burst", rc);
        done += k;
    }
    return 0;
}

int rq_recv_pop_burst(struct endpoint *ep, const void **msgs, size_t *lens, int max, int *n,
                      char *err)
{
    int k;
    while ((k = rq_pop_burst(ep->obj, ep->buf, ep->cap, lens, (size_t)max, timeout(ep))) ==
           RQ_EAGAIN)
        bench_idle(ep);
    if (k < 0)
        return fail(err, "rq_pop_burst", k);
    for (int i = 0; i < k; i++)
        msgs[i] = ep->buf + (size_t)i * ep->cap;
    *n = k;
    return 0;
}

int rq_recv_peek_burst(struct endpoint *ep, const void **msgs, size_t *lens, int max, int *n,
                       char *err)
{
    rq_msg_view v[BENCH_BURST];
    int k;
    while ((k = rq_peek_burst(ep->obj, v, (size_t)max, timeout(ep))) == RQ_EAGAIN)
        bench_idle(ep);
    if (k < 0)
        return fail(err, "rq_peek_burst", k);
    for (int i = 0; i < k; i++) {
        msgs[i] = v[i].data;
        lens[i] = v[i].len;
    }
    *n = k;
    return 0;
}

int rq_recv_release_burst(struct endpoint *ep, int n, char *err)
{
    int rc = rq_release_burst(ep->obj, (size_t)n);
    return rc == RQ_OK ? 0 : fail(err, "rq_release_burst", rc);
}
