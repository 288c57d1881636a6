/*
 * records_burst.c - the bursts of a record queue: many records, one
 * publish of the word (and on MPSC one lock round) per batch.  OS-neutral.
 * docs/design.md, section 12, "Bursts on records".
 */
#include <stdlib.h>
#include <string.h>

#include "records_impl.h"

/* ---- bursts: many records, one publish ------------------------------ */

/* Room at our unpublished cursor W (SEQ records ahead of the consumer's
 * word) for NEED more bytes?  The consumer's word is reloaded once if the
 * cache says no.  1, 0, or RQ_ECORRUPT. */
static int rec_room_at(struct rq_rec *r, uint64_t seq, uint32_t w, uint32_t need)
{
    if (rec_used(r, w, r->read_cache) + need <= r->cap)
        return 1;
    uint64_t rw = rq_load_acquire_u64(&r->shm->read_word);
    if (!rec_pair_ok(r, rec_word(seq, w), rw))
        return RQ_ECORRUPT;
    r->read_cache = (uint32_t)rw;
    return rec_used(r, w, r->read_cache) + need <= r->cap;
}

/* Writes record LEN/MSG at cursor W, behind padding PAD (0 or the ring's
 * tail, its header written here): beyond the write word, invisible. */
static uint32_t rec_write_at(struct rq_rec *r, uint32_t w, uint32_t pad, const void *msg,
                             uint32_t len)
{
    uint32_t at = rec_index(r, w);
    if (pad) {
        struct rq_rec_header ph = {pad - RQ_RECORD_HEADER, RQ_REC_PAD};
        memcpy(r->data + at, &ph, sizeof ph);
        RQ_CRASH_POINT(REC_PUSH_AFTER_PAD);
        at = 0;
    }
    struct rq_rec_header h = {len, RQ_REC_DATA};
    memcpy(r->data + at, &h, sizeof h);
    if (len > 0)
        memcpy(r->data + at + RQ_RECORD_HEADER, msg, len);
    return rec_advance(r, w, pad + rec_span(len));
}

int rq_rec_push_burst(struct rq_rec *r, const void *const *msgs, const size_t *lens, size_t count,
                      int timeout_ms)
{
    if (count == 0)
        return 0; /* as on slots: nothing to do, whatever the state */
    if (!msgs || !lens)
        return RQ_EINVAL;
    if (r->reserved)
        return RQ_ESTATE;
    size_t n = count < r->cap / RQ_RECORD_HEADER ? count : r->cap / RQ_RECORD_HEADER;
    if (n == 0)
        return RQ_EINVAL; /* no header fits: the open checked that one does */
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i] && lens[i] > 0)
            return RQ_EINVAL;
        if (lens[i] > r->max)
            return RQ_EMSGSIZE; /* nothing pushed */
    }
    void *first = NULL;
    int rc = rec_claim_fast(r, (uint32_t)lens[0], &first, timeout_ms); /* waits, locks */
    if (rc < 0)
        return rc;
    RQ_CRASH_POINT(PUSH_BURST_AFTER_CLAIM);
    /* The first record's padding, if any, is written by the claim. */
    uint32_t pad = r->res_pad, longest = (uint32_t)lens[0];
    struct rq_rec_header h = {longest, RQ_REC_DATA};
    memcpy(r->data + r->res_data, &h, sizeof h);
    if (longest > 0)
        memcpy(first, msgs[0], longest);
    uint32_t w = rec_advance(r, r->w, pad + rec_span(longest));
    uint64_t bytes = longest;
    uint32_t k = 1;
    for (; k < n; k++) {
        uint32_t len = (uint32_t)lens[k], p;
        uint32_t need = rec_need(r, w, len, &p);
        rc = rec_room_at(r, r->wseq + k, w, need);
        if (rc <= 0)
            break; /* full, or corrupt: the next call reports it */
        RQ_CRASH_POINT(PUSH_BURST_MID_FILL);
        w = rec_write_at(r, w, p, msgs[k], len);
        pad += p;
        bytes += len;
        longest = len > longest ? len : longest;
    }
    RQ_CRASH_POINT(PUSH_BURST_AFTER_FILL);
    r->w = w;
    r->wseq += k;
    rec_publish(r, &r->shm->write_word, rec_word(r->wseq, r->w));
    RQ_CRASH_POINT(PUSH_BEFORE_POSITION);
    rq_store_relaxed_u64(&r->shm->write_position, r->wseq);
    r->pushed = 1;
    RQ_CRASH_POINT(PUSH_AFTER_PUBLISH);
    rq_counter_add(&r->self->messages, k);
    rec_count_bytes(r, bytes, pad, longest);
    if (r->lock)
        rq_mpsc_unlock(r->lock);
    if (rec_peer_waits(r, &r->shm->data_event.waiters))
        rq_queue_wake_consumer(r->q);
    return (int)k;
}

/* After the oldest record (SPAN bytes from r->r, waited for): the next
 * records up to MAX in all, each checked; FN gets each with its index and
 * says go on (1) or stop (0).  The number of records, >= 1; *TOTAL their
 * bytes with padding.  A corrupt one ends the batch before it. */
static uint32_t rec_gather(struct rq_rec *r, uint32_t span, size_t max, uint32_t *total,
                           int (*fn)(void *ctx, uint32_t i, const rq_record_entry *e), void *ctx)
{
    uint32_t k = 1, off = rec_advance(r, r->r, span);
    *total = span;
    while (k < max) {
        if (off == r->write_cache) {
            uint64_t ww = rq_load_acquire_u64(&r->shm->write_word);
            if (!rec_pair_ok(r, ww, rec_word(r->rseq, r->r)))
                break;
            r->write_cache = (uint32_t)ww;
            if (off == r->write_cache)
                break;
        }
        rq_record_entry e;
        uint32_t s;
        if (rec_at(r, off, rec_used(r, r->write_cache, off), &e, &s) < 0 || !fn(ctx, k, &e))
            break;
        *total += s;
        off = rec_advance(r, off, s);
        k++;
    }
    return k;
}

struct rec_copy_ctx {
    unsigned char *buf;
    size_t cap;
    size_t *lens;
};

static int rec_copy_one(void *ctx, uint32_t i, const rq_record_entry *e)
{
    struct rec_copy_ctx *c = ctx;
    if (e->len > c->cap)
        return 0; /* the next call reports it */
    c->lens[i] = e->len;
    if (e->len > 0)
        memcpy(c->buf + (size_t)i * c->cap, e->data, e->len);
    return 1;
}

int rq_rec_pop_burst(struct rq_rec *r, void *buf, size_t cap, size_t *lens, size_t max,
                     int timeout_ms)
{
    if (max == 0)
        return 0; /* as on slots: nothing to do, whatever the state */
    if (!lens || !buf)
        return RQ_EINVAL;
    if (r->peeked)
        return RQ_ESTATE;
    const unsigned char *msg;
    uint32_t n, span, total;
    int rc = rec_pop_wait(r, &msg, &n, &span, timeout_ms);
    if (rc < 0)
        return rc;
    lens[0] = n;
    if (n > cap)
        return RQ_EMSGSIZE; /* nothing consumed */
    if (n > 0)
        memcpy(buf, msg, n);
    struct rec_copy_ctx c = {buf, cap, lens};
    uint32_t k = rec_gather(r, span, max, &total, rec_copy_one, &c);
    RQ_CRASH_POINT(POP_BURST_AFTER_COPY);
    rec_release(r, total, k);
    return (int)k;
}

struct rec_view_ctx {
    struct rq_rec *r;
    rq_msg_view *msgs;
};

static void rec_view(struct rq_rec *r, rq_msg_view *v, uint64_t seq, const void *data, size_t len)
{
    *v = (rq_msg_view){data, len, seq, seq < r->redeliver_below ? RQ_MSG_REDELIVERED : 0u, 0u};
}

static int rec_view_one(void *ctx, uint32_t i, const rq_record_entry *e)
{
    struct rec_view_ctx *c = ctx;
    rec_view(c->r, &c->msgs[i], c->r->rseq + i, e->data, e->len);
    return 1;
}

int rq_rec_peek_burst(struct rq_rec *r, rq_msg_view *msgs, size_t max, int timeout_ms)
{
    if (!msgs || max == 0)
        return RQ_EINVAL;
    const unsigned char *msg;
    uint32_t n, span, total;
    int rc = rec_pop_wait(r, &msg, &n, &span, timeout_ms);
    if (rc < 0)
        return rc;
    rec_view(r, &msgs[0], r->rseq, msg, n);
    struct rec_view_ctx c = {r, msgs};
    uint32_t k = rec_gather(r, span, max, &total, rec_view_one, &c);
    rec_mark_delivered(r, r->rseq + k); /* one mark for the batch, before the hand-over */
    r->peeked = k;
    r->peek_valid = 1;
    r->peek_msg = msg;
    r->peek_len = n;
    r->peek_span = span;
    r->peek_seq = r->rseq;
    r->peek_redelivered = (msgs[0].flags & RQ_MSG_REDELIVERED) != 0;
    return (int)k;
}

int rq_rec_release_burst(struct rq_rec *r, size_t count)
{
    if (!r->peeked)
        return RQ_ESTATE;
    if (count == 0 || count > r->peeked)
        return RQ_EINVAL;
    uint32_t total;
    int rc = rec_spans(r, (uint32_t)count, &total);
    if (rc < 0)
        return rc;
    RQ_CRASH_POINT(RELEASE_BURST_BEFORE_PUBLISH);
    r->peeked -= (uint32_t)count; /* the rest stays peeked */
    r->peek_valid = 0;
    r->peek_msg = NULL;
    rec_release(r, total, (uint32_t)count);
    return RQ_OK;
}

