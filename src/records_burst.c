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
 * cache says no.  1, 0, or RQ_ECORRUPT.  The cache is used without
 * rec_read_cache_ok: the batch's first claim (rec_room) trusted or
 * reloaded it in this hold, and each record's check since keeps the
 * cursor at most C past it. */
static int rec_room_at(struct rq_rec *r, uint64_t seq, uint32_t w, uint32_t need)
{
    if (rec_used(r, w, r->read_cache) + need <= r->cap)
        return 1;
    uint64_t rw = rq_load_acquire_u64(&r->shm->read_word);
    if (!rec_pair_ok(r, rec_word(seq, w), rw))
        return RQ_ECORRUPT;
    rec_cache_read(r, seq, w, rw);
    return rec_used(r, w, r->read_cache) + need <= r->cap;
}

/* Writes record LEN/MSG at cursor W, behind padding PAD (0 or the ring's
 * tail, its header written here): beyond the write word, invisible. */
static uint32_t rec_write_at(struct rq_rec *r, uint32_t w, uint32_t pad, const void *msg,
                             uint32_t len)
{
    uint32_t at = rec_index(r, w);
    if (pad) {
        rq_rec_put_padding(r->data + at, pad);
        RQ_CRASH_POINT(REC_PUSH_AFTER_PAD);
        at = 0;
    }
    rq_rec_put_header(r->data + at, RQ_REC_DATA, len);
    rq_copy(r->data + at + RQ_RECORD_HEADER, msg, len);
    return rec_advance(r, w, pad + rec_span(len));
}

/* A batch written beyond the word: where it ends, its records, their
 * payload bytes, padding and longest record. */
struct rec_batch {
    uint32_t end, k;
    uint64_t bytes;
    uint32_t pad, longest;
};

/* Publishes batch B (K >= 1 records) with one store of the word, then the
 * position, the statistics, the MPSC unlock and one wake check.  The
 * batch's bytes from the word on are at most C, so their distance modulo
 * 2C is exact: what the SPSC room (wr_room) loses. */
static REC_FLATTEN void rec_publish_batch_inline(struct rq_rec *r, const struct rec_batch *b)
{
    RQ_CRASH_POINT(PUSH_BURST_AFTER_FILL);
    rec_publish_records(r, b->end, rec_used(r, b->end, r->w), b->k, b->bytes, b->pad, b->longest);
}

/* The same out of line (rq_rec_commit_burst's). */
static REC_SLOW void rec_publish_batch(struct rq_rec *r, const struct rec_batch *b)
{
    rec_publish_batch_inline(r, b);
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
    size_t n = count < r->cap / RQ_REC_CELL ? count : r->cap / RQ_REC_CELL;
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
    rq_rec_put_header(r->data + r->res_data, RQ_REC_DATA, longest);
    rq_copy(first, msgs[0], longest);
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
    struct rec_batch b = {w, k, bytes, pad, longest};
    rec_publish_batch_inline(r, &b);
    return (int)k;
}

/* The record at index AT of the ring, AVAIL published bytes from it on
 * (> 0), checked as rec_at checks it: inline for a plain record, rec_at
 * for padding (and for the report of a corrupt one).  RQ_OK with *DATA,
 * *LEN and *SPAN (its bytes with the padding before it), or RQ_ECORRUPT. */
static inline int rec_next(const struct rq_rec *r, uint32_t at, uint32_t avail,
                           const unsigned char **data, uint32_t *len, uint32_t *span)
{
    struct rq_rec_header h = rq_rec_get_header(r->data + at); /* one load: untrusted */
    uint32_t s = rec_span(h.len);                             /* no overflow: len < 2^30 */
    if (h.type == RQ_REC_DATA && h.len <= r->max && s <= avail && s <= r->cap - at) {
        *data = r->data + at + RQ_RECORD_HEADER;
        *len = h.len;
        *span = s;
        return RQ_OK;
    }
    rq_record_entry e = {0}; /* rec_at fills it only for RQ_OK */
    int rc = rec_at(r, at, avail, &e, span);
    *data = e.data;
    *len = e.len;
    return rc;
}

/* The published bytes after the first TOTAL of the consumer's, from one
 * load of the write word; 0 if none or the word is impossible (the next
 * call reports it). */
static uint32_t rec_reload_avail(struct rq_rec *r, uint32_t total)
{
    uint64_t ww = rq_load_acquire_u64(&r->shm->write_word);
    if (!rec_pair_ok(r, ww, rec_word(r->rseq, r->r)))
        return 0;
    uint32_t used = rec_used(r, (uint32_t)ww, r->r);
    if (used < total)
        return 0; /* behind what it published before: corrupt */
    r->write_cache = (uint32_t)ww;
    r->rd_room = 0;
    return used - total;
}

/* Whether the claim of a burst's oldest record (rec_pop_wait) is to load
 * the write word, the burst's one view of it: a consumer that has taken
 * all it saw of the producer loads it there, in the inline path
 * (rec_pop_ready); only if nothing is there (or the word is impossible)
 * does the slow path load it again, to wait or to report. */
static inline int rec_claim_loads_the_word(const struct rq_rec *r)
{
    return r->r == r->write_cache;
}

/* The bytes ahead of the record being checked at which rec_gather asks
 * for the ring's line (a prefetch for reading; none in the last bytes
 * before the ring's end).  Each record's header says where the next one
 * starts, so the walk is a chain of dependent loads, over records the
 * producer has just written on the other core: without the hint, a woken
 * consumer draining a 4 MiB ring spent 1.3-2.2 x the slot consumer's time
 * a message, with it 0.8-1.1 x (docs/performance/records.md, "A batch's
 * walk asks for its lines ahead"; 512 is the only distance measured). */
#define REC_GATHER_AHEAD 512u

/* After the oldest record (SPAN bytes from r->r, waited for): the next
 * records up to MAX in all, each checked against one view of the write
 * word (the cached one, reloaded if it runs out first and the call has
 * not LOADED it yet: the producer's position once per burst, as on slots,
 * so a batch does not chase a busy producer round the ring; a wait for
 * the oldest record loads it as it needs); FN gets each with its index
 * and says go on (1) or stop (0).  The number of records, >= 1; *TOTAL
 * their bytes with padding, and ENDS (if not NULL) the batch's bytes to
 * the end of each.  A corrupt one ends the batch before it. */
static inline uint32_t
rec_gather(struct rq_rec *r, uint32_t span, size_t max, int loaded, uint32_t *ends, uint32_t *total,
           int (*fn)(void *ctx, uint32_t i, const unsigned char *data, uint32_t len), void *ctx)
{
    uint32_t k = 1, sum = span, at = rec_index(r, rec_advance(r, r->r, span));
    uint32_t avail = rec_used(r, r->write_cache, r->r) - span; /* span <= it: checked */
    while (k < max) {
        if (avail == 0) {
            if (loaded)
                break;
            loaded = 1;
            avail = rec_reload_avail(r, sum);
            if (avail == 0)
                break;
        }
        const unsigned char *data;
        uint32_t len, s;
        if (at + REC_GATHER_AHEAD < r->cap) /* inside the ring: a hint, nothing read */
            rq_prefetch_read(r->data + at + REC_GATHER_AHEAD);
        if (rec_next(r, at, avail, &data, &len, &s) < 0 || !fn(ctx, k, data, len))
            break;
        sum += s;
        avail -= s;
        at += s; /* padding and all: at most to the ring's end, or past it by a record */
        at = at < r->cap ? at : at - r->cap;
        if (ends)
            ends[k] = sum;
        k++;
    }
    *total = sum;
    return k;
}

struct rec_copy_ctx {
    unsigned char *buf;
    size_t cap;
    size_t *lens;
};

static int rec_copy_one(void *ctx, uint32_t i, const unsigned char *data, uint32_t len)
{
    struct rec_copy_ctx *c = ctx;
    if (len > c->cap)
        return 0; /* the next call reports it */
    c->lens[i] = len;
    rq_copy(c->buf + (size_t)i * c->cap, data, len);
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
    int loaded = rec_claim_loads_the_word(r);
    int rc = rec_pop_wait(r, &msg, &n, &span, timeout_ms);
    if (rc < 0)
        return rc;
    lens[0] = n;
    if (n > cap)
        return RQ_EMSGSIZE; /* nothing consumed */
    rq_copy(buf, msg, n);
    struct rec_copy_ctx c = {buf, cap, lens};
    uint32_t k = rec_gather(r, span, max, loaded, NULL, &total, rec_copy_one, &c);
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

/* Room for the extents of a batch of up to MAX records (rec_burst_take):
 * how many it may have, >= 1.  The heap's room grows to what a call asks
 * (a ring holds at most C / 8 records); without memory a batch is as long
 * as the room there is (the next call gets the rest). */
static uint32_t rec_ends_room(struct rq_rec *r, size_t max)
{
    uint32_t want = max < r->cap / RQ_REC_CELL ? (uint32_t)max : r->cap / RQ_REC_CELL;
    if (!r->burst_ends) {
        r->burst_ends = r->burst_small;
        r->burst_ends_cap = REC_BURST_SMALL;
    }
    if (want > r->burst_ends_cap) {
        uint32_t *a = malloc((size_t)want * sizeof *a); /* nothing to keep: a new batch */
        if (a) {
            if (r->burst_ends != r->burst_small)
                free(r->burst_ends);
            r->burst_ends = a;
            r->burst_ends_cap = want;
        }
    }
    return want < r->burst_ends_cap ? want : r->burst_ends_cap;
}

static int rec_view_one(void *ctx, uint32_t i, const unsigned char *data, uint32_t len)
{
    struct rec_view_ctx *c = ctx;
    rec_view(c->r, &c->msgs[i], c->r->rseq + i, data, len);
    return 1;
}

int rq_rec_peek_burst(struct rq_rec *r, rq_msg_view *msgs, size_t max, int timeout_ms)
{
    if (!msgs || max == 0)
        return RQ_EINVAL;
    const unsigned char *msg;
    uint32_t n, span, total;
    int loaded = rec_claim_loads_the_word(r);
    int rc = rec_pop_wait(r, &msg, &n, &span, timeout_ms);
    if (rc < 0)
        return rc;
    rec_view(r, &msgs[0], r->rseq, msg, n);
    uint32_t room = rec_ends_room(r, max);
    r->burst_ends[0] = span;
    struct rec_view_ctx c = {r, msgs};
    uint32_t k = rec_gather(r, span, room, loaded, r->burst_ends, &total, rec_view_one, &c);
    r->burst_n = k; /* a new batch from the oldest record */
    r->burst_next = 0;
    r->burst_seq = r->rseq;
    rec_mark_delivered(r, r->rseq + k); /* one mark for the batch, before the hand-over */
    r->peeked = k;
    r->peek_valid = 0; /* rq_peek reads the oldest again; rq_release frees it by its extent */
    r->peek_msg = NULL;
    return (int)k;
}

int rq_rec_release_burst(struct rq_rec *r, size_t count)
{
    if (!r->peeked)
        return RQ_ESTATE;
    if (count == 0 || count > r->peeked)
        return RQ_EINVAL;
    /* The extents rq_peek_burst checked: within the bytes published then,
     * so the release never passes the write word (the producer may have
     * rewritten those headers since: they are not read again). */
    uint32_t total;
    if (!rec_burst_take(r, (uint32_t)count, &total)) {
        int rc = rec_spans(r, (uint32_t)count, &total);
        if (rc < 0)
            return rc;
    }
    RQ_CRASH_POINT(RELEASE_BURST_BEFORE_PUBLISH);
    r->peeked -= (uint32_t)count; /* the rest stays peeked */
    r->peek_valid = 0;
    r->peek_msg = NULL;
    rec_release(r, total, (uint32_t)count);
    return RQ_OK;
}

/* ---- a zero-copy batch: rq_reserve_burst_len, rq_commit_burst ------- */

/* The I-th record of the reservation, as the claim placed it (entry 0
 * is kept where a single reservation keeps it, for rq_commit). */
static inline struct rec_res rec_reserved(const struct rq_rec *r, uint32_t i)
{
    if (i > 0)
        return r->res[i];
    struct rec_res e = {r->res_len, r->res_data, r->res_pad + rec_span(r->res_len)};
    return e;
}

/* Of the first K records of LENS, how many fit an empty ring from offset
 * W (*FIT, >= 1: a largest record fits anywhere), and the bytes those
 * need there, padding included (the return value).  With PLACE, each of
 * them is placed there: its entry of the reservation. */
static uint32_t rec_batch_need(const struct rq_rec *r, uint32_t w, const size_t *lens, uint32_t k,
                               uint32_t *fit, struct rec_res *place)
{
    uint32_t need = 0, i = 0;
    for (; i < k; i++) {
        uint32_t pad, len = (uint32_t)lens[i], n = rec_need(r, w, len, &pad);
        if (need + n > r->cap)
            break;
        if (place) {
            struct rec_res e = {len, pad ? 0 : rec_index(r, w), n};
            place[i] = e;
        }
        need += n;
        w = rec_advance(r, w, n);
    }
    *fit = i;
    return need;
}

/* How many of LENS (COUNT >= 1) a reservation may take: the longest start
 * of the batch whose spans fit the ring (where it starts decides, by its
 * padding, how many of them do: rec_batch_need).  *OVER gets 1 if its
 * need may exceed what the consumer's wake test covers (two largest
 * spans: rec_was_nearly_full); a padding is shorter than the record after
 * it.  RQ_EMSGSIZE if one of them is too long. */
static int rec_batch_size(const struct rq_rec *r, const size_t *lens, size_t count, int *over)
{
    uint32_t k = 0, total = 0, widest = 0;
    for (; k < count && k < r->cap / RQ_REC_CELL; k++) {
        if (lens[k] > r->max)
            return RQ_EMSGSIZE;
        uint32_t span = rec_span((uint32_t)lens[k]);
        if (total + span > r->cap)
            break;
        total += span;
        widest = span > widest ? span : widest;
    }
    *over = total + widest - RQ_REC_CELL > 2 * r->max_span;
    return (int)k;
}

/* Room in the reservation's array for K records. */
static int rec_res_room(struct rq_rec *r, uint32_t k)
{
    if (k <= r->res_cap)
        return RQ_OK;
    struct rec_res *a = realloc(r->res, (size_t)k * sizeof *a);
    if (!a)
        return RQ_ESYS;
    r->res = a;
    r->res_cap = k;
    return RQ_OK;
}

/* Room for the whole batch at the write word?  (MPSC: under the lock.)
 * Places the records that fit there, in one walk. */
static int rec_try_batch(void *ctx)
{
    struct rq_rec *r = ctx;
    if (r->lock && rec_sync_write(r) < 0)
        return RQ_ECORRUPT;
    uint32_t need = rec_batch_need(r, r->w, r->batch_lens, r->batch_want, &r->res_count, r->res);
    int rc = rec_room(r, need);
    if (rc < 0)
        return rc;
    RQ_CRASH_POINT(PUSH_BURST_AFTER_CLAIM);
    return RQ_OK;
}

/* A sleeping batch's re-check (or a corrupt pair, reported by the try). */
static int rec_batch_has_space(void *ctx)
{
    struct rq_rec *r = ctx;
    uint32_t w = r->lock ? (uint32_t)rq_load_seq_u64(&r->shm->write_word) : r->w;
    uint32_t rd = (uint32_t)rq_load_seq_u64(&r->shm->read_word);
    if (!rec_offset_ok(r, w) || !rec_offset_ok(r, rd) || rec_used(r, w, rd) > r->cap)
        return 1;
    uint32_t fit;
    return rec_used(r, w, rd) + rec_batch_need(r, w, r->batch_lens, r->batch_want, &fit, NULL) <=
           r->cap;
}

/* The claimed batch's payload pointers into BUFS; the first record's
 * padding header is written (beyond the word, invisible) and its place
 * kept where a single reservation keeps it, so that rq_commit can publish
 * the first record alone, as after rq_reserve_len. */
static void rec_hand_out(struct rq_rec *r, void **bufs)
{
    const struct rec_res *e = r->res;
    r->res_len = e[0].len;
    r->res_data = e[0].at;
    r->res_pad = e[0].ext - rec_span(e[0].len);
    if (r->res_pad) {
        rq_rec_put_padding(r->data + rec_index(r, r->w), r->res_pad);
        RQ_CRASH_POINT(REC_PUSH_AFTER_PAD);
    }
    for (uint32_t i = 0; i < r->res_count; i++)
        bufs[i] = r->data + e[i].at + RQ_RECORD_HEADER;
}

int rq_rec_reserve_batch(struct rq_rec *r, const size_t *lens, size_t count, void **bufs,
                         int timeout_ms)
{
    if (!lens || !bufs || count == 0)
        return RQ_EINVAL;
    if (r->reserved)
        return RQ_ESTATE;
    int over, k = rec_batch_size(r, lens, count, &over);
    if (k < 0)
        return k;
    int rc = rec_res_room(r, (uint32_t)k);
    if (rc < 0)
        return rc;
    r->batch_lens = lens;
    r->batch_want = (uint32_t)k;
    struct rq_wait_turn t = rq_wait_turn_start(timeout_ms);
    t.nap = over; /* the consumer may free room without a signal for it */
    rc = rq_claim_loop(r->q, r->lock, 1, rec_try_batch, rec_batch_has_space, r, &t);
    r->batch_lens = NULL;
    if (rc < 0)
        return rc;
    r->reserved = 1; /* res_count: as many as the try found room for */
    if (r->lock)
        r->reserver = rq_plat_thread_id();
    rec_hand_out(r, bufs);
    return (int)r->res_count;
}

/* Writes the I-th committed record, LEN of its reserved room, at cursor W
 * (its padding header too if it wraps there); its payload, written at OLD
 * (the reserved data index), is moved down if the records before it were
 * committed shorter.  Returns the padding it needed; *W moves past it. */
static uint32_t rec_settle(struct rq_rec *r, uint32_t *w, uint32_t old, uint32_t len)
{
    uint32_t pad, at = rec_index(r, *w);
    rec_need(r, *w, len, &pad);
    if (pad) {
        rq_rec_put_padding(r->data + at, pad);
        RQ_CRASH_POINT(REC_PUSH_AFTER_PAD);
        at = 0;
    }
    /* Never later in ring order: a record only moves towards the write
     * word, so it never lands on bytes still to be moved (one that wrapped
     * as reserved may land at a higher address, before the ring's end:
     * the two ranges are then apart, and memmove copes with either). */
    if (at != old && len > 0)
        memmove(r->data + at + RQ_RECORD_HEADER, r->data + old + RQ_RECORD_HEADER, len);
    rq_rec_put_header(r->data + at, RQ_REC_DATA, len);
    *w = rec_advance(r, *w, pad + rec_span(len));
    return pad;
}

int rq_rec_commit_burst(struct rq_rec *r, const size_t *lens, size_t count)
{
    if (!r->reserved || !rec_reservation_is_ours(r))
        return RQ_ESTATE;
    if (count > r->res_count || (count > 0 && !lens))
        return RQ_EINVAL;
    for (uint32_t i = 0; i < (uint32_t)count; i++)
        if (lens[i] > rec_reserved(r, i).len)
            return RQ_EMSGSIZE; /* the reservation is kept */
    r->reserved = 0;
    if (count == 0) {
        if (r->lock)
            rq_mpsc_unlock(r->lock); /* dropped unseen */
        return RQ_OK;
    }
    /* The layout has no room left inside a record (a padding record only
     * ever fills the ring's tail), so records committed shorter than
     * reserved are packed: each later one moves down behind them.  Until
     * the first such record, each stays where it was placed. */
    struct rec_batch b = {r->w, (uint32_t)count, 0, 0, 0};
    uint32_t placed = r->w; /* where the next record was reserved */
    for (uint32_t i = 0; i < b.k; i++) {
        struct rec_res e = rec_reserved(r, i);
        uint32_t len = (uint32_t)lens[i];
        if (b.end == placed && len == e.len && (i == 0 || e.ext == rec_span(len))) {
            /* in place: its padding header, if any, is the first record's,
             * written at the reservation */
            rq_rec_put_header(r->data + e.at, RQ_REC_DATA, len);
            b.pad += e.ext - rec_span(len);
            b.end = rec_advance(r, b.end, e.ext);
        } else {
            b.pad += rec_settle(r, &b.end, e.at, len);
        }
        placed = rec_advance(r, placed, e.ext);
        b.bytes += len;
        b.longest = len > b.longest ? len : b.longest;
        if (i + 1 < b.k)
            RQ_CRASH_POINT(PUSH_BURST_MID_FILL); /* part of the batch written */
    }
    rec_publish_batch(r, &b);
    return RQ_OK;
}
