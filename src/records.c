/*
 * records.c - record queues (RQ_RECORDS): variable-length messages packed
 * back to back in a byte ring.  OS-neutral.  docs/design.md, section 12.
 *
 * Each side owns one 64-bit word, seq_lo << 32 | byte offset, and
 * publishes it with one store: the offset runs over [0, 2C) (the double
 * range over bytes), seq_lo is the low half of the side's record number.
 * A record is a 4-byte header (type in 2 bits, length in 30) and its
 * payload, 8-aligned, rounded up to the next multiple of 8; one that does
 * not fit before the end of the ring is preceded by a padding record
 * filling the tail, published in the same store.  Every
 * word, header and length read from the segment is checked before it is
 * used (RQ_ECORRUPT), and a loop over records (a burst, the dump) is bounded
 * by the caller's count or the word's record count and by the published
 * bytes, so no value can make a call read out of bounds or hang.
 */
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "records_impl.h"

int rec_pair_ok(const struct rq_rec *r, uint64_t ww, uint64_t rw)
{
    return rec_pair_fits(r, ww, rw);
}

/* ---- the segment kind ------------------------------------------------ */

static uint32_t rec_max_for(uint32_t cap)
{
    return cap / 2 - RQ_RECORD_HEADER;
}

static int geometry_ok(uint32_t cap, uint32_t max)
{
    return cap >= RQ_RECORDS_CAPACITY_MIN && cap <= RQ_SLOT_COUNT_MAX && cap % 16 == 0 &&
           max >= 1 && max <= rec_max_for(cap);
}

uint64_t rq_rec_size_for(const rq_config *cfg)
{
    return (uint64_t)RQ_REC_DATA_OFFSET + cfg->slot_count;
}

int rq_rec_check_config(const rq_config *cfg)
{
    if ((cfg->flags & ~(uint32_t)(RQ_MPSC | RQ_FULL_FENCES | RQ_ANY_OWNER | RQ_RECORDS)) != 0)
        return RQ_EINVAL;
    if (!geometry_ok(cfg->slot_count, cfg->slot_size))
        return RQ_EINVAL;
    uint64_t total = rq_rec_size_for(cfg);
    return total > RQ_SEGMENT_SIZE_MAX || total > (uint64_t)SIZE_MAX ? RQ_EINVAL : RQ_OK;
}

int rq_rec_check(const struct rq_shm_header *h, uint64_t object_size, const rq_config *cfg,
                 uint64_t *total)
{
    if (h->abi != rq_layout_abi(rq_plat_abi_tag()))
        return RQ_EVERSION;
    if (h->header_size != sizeof(struct rq_rec_shm) || h->slot_stride != RQ_RECORD_HEADER)
        return RQ_ECORRUPT;
    if (!(h->flags & RQ_RECORDS) ||
        (h->flags & ~(uint32_t)(RQ_MPSC | RQ_FULL_FENCES | RQ_RECORDS)) != 0)
        return RQ_ECORRUPT;
    if (!geometry_ok(h->slot_count, h->slot_size))
        return RQ_ECORRUPT;
    uint64_t need = (uint64_t)RQ_REC_DATA_OFFSET + h->slot_count;
    if (h->total_size != need || need > object_size || need > RQ_SEGMENT_SIZE_MAX ||
        need > (uint64_t)SIZE_MAX)
        return RQ_ECORRUPT;
    if (cfg && (!(cfg->flags & RQ_RECORDS) || h->slot_count != cfg->slot_count ||
                h->slot_size != cfg->slot_size || (h->flags & RQ_MPSC) != (cfg->flags & RQ_MPSC) ||
                ((cfg->flags & RQ_FULL_FENCES) && !(h->flags & RQ_FULL_FENCES))))
        return RQ_EEXIST;
    *total = need;
    return RQ_OK;
}

int rq_rec_init(rq_plat_segment *seg, void *addr, const rq_config *cfg, int repairing)
{
    struct rq_rec_shm *shm = addr;
    memset(shm, 0, sizeof *shm); /* both words 0: an empty ring, whatever its bytes */
    shm->hdr.layout_version = RQ_REC_LAYOUT_VERSION;
    shm->hdr.abi = rq_layout_abi(rq_plat_abi_tag());
    shm->hdr.header_size = (uint32_t)sizeof *shm;
    shm->hdr.slot_count = cfg->slot_count;
    shm->hdr.slot_size = cfg->slot_size;
    shm->hdr.slot_stride = RQ_RECORD_HEADER;
    shm->hdr.flags = RQ_RECORDS | (cfg->flags & (RQ_MPSC | RQ_FULL_FENCES));
    if (rq_plat_fence_register() != RQ_OK)
        shm->hdr.flags |= RQ_FULL_FENCES;
    shm->hdr.total_size = rq_rec_size_for(cfg);
    rq_store_relaxed_u64(&shm->admin.repairs, repairing ? 1 : 0);
    /* The lock area is at the slot header's offset (records.h). */
    return (cfg->flags & RQ_MPSC) ? rq_mpsc_init(seg, (struct rq_shm *)addr) : RQ_OK;
}

/* ---- a handle -------------------------------------------------------- */

int rq_rec_attach(struct rq_rec **out, void *shm, const struct rq_shm_header *h, int role,
                  struct rq_mpsc *lock)
{
    struct rq_rec *r = calloc(1, sizeof *r);
    if (!r)
        return RQ_ESYS;
    r->empty_at = UINT32_MAX; /* no offset: the first empty look gives no hint */
    r->shm = shm;
    r->data = (unsigned char *)shm + RQ_REC_DATA_OFFSET;
    r->lock = lock;
    r->role = role;
    r->self = role == RQ_PRODUCER ? &r->shm->producer : &r->shm->consumer;
    r->full_fences = (h->flags & RQ_FULL_FENCES) != 0;
    rec_set_geometry(r, h->slot_count, h->slot_size);
    /* An MPSC producer loads no words at open (queue_open.c): its copy of
     * the consumer's word stays the zeroed one, offset 0 at record 0,
     * which every segment starts with, loaded (as it were) with the
     * write word there too: a true earlier copy. */
    if (lock)
        rec_cache_budget(r, 0, 0);
    *out = r;
    return RQ_OK;
}

void rq_rec_set_queue(struct rq_rec *r, struct rq *q)
{
    r->q = q;
}

uint64_t rq_rec_position(const struct rq_rec *r)
{
    return r->role == RQ_PRODUCER ? r->wseq : r->rseq;
}

int rq_rec_load(struct rq_rec *r)
{
    uint64_t ww = rq_load_acquire_u64(&r->shm->write_word);
    uint64_t rw = rq_load_acquire_u64(&r->shm->read_word);
    if (!rec_pair_ok(r, ww, rw))
        return RQ_ECORRUPT;
    r->w = r->write_cache = (uint32_t)ww;
    r->r = (uint32_t)rw;
    r->rd_room = 0;
    r->wseq = rec_load_position(&r->shm->write_position, (uint32_t)(ww >> 32), &r->wdue);
    rec_cache_read(r, r->wseq, r->w, rw);
    r->rseq = rec_load_position(&r->shm->read_position, (uint32_t)(rw >> 32), &r->rdue);
    /* A predecessor killed between its word and its position left it
     * behind: ours to store now, before it can fall further. */
    if (r->role == RQ_PRODUCER)
        rec_store_position(&r->shm->write_position, &r->wdue, r->wseq);
    else if (r->role == RQ_CONSUMER)
        rec_store_position(&r->shm->read_position, &r->rdue, r->rseq);
    /* A dead consumer handed out at most the records in the ring. */
    uint64_t mark = rq_load_relaxed_u64(&r->shm->consumer.delivered_position);
    r->delivered = mark >= r->rseq && mark - r->rseq <= r->cap / RQ_REC_CELL ? mark : r->rseq;
    r->redeliver_below = r->delivered;
    return RQ_OK;
}

void rq_rec_flag_oldest(struct rq_rec *r)
{
    if (r->write_cache == r->r || r->delivered != r->rseq)
        return; /* none there, or flagged by a dead batch's mark already */
    /* Stored too: a clean close of this handle, which only stores a mark
     * above the handle's, must leave the flag for the next consumer. */
    r->redeliver_below = r->delivered = r->rseq + 1;
    rq_store_relaxed_u64(&r->shm->consumer.delivered_position, r->delivered);
}

void rq_rec_close(struct rq_rec *r)
{
    if (r && r->reserved && r->lock && rec_reservation_is_ours(r))
        rq_mpsc_unlock(r->lock); /* dropped unseen: nothing was published */
    /* A single peek stores no mark: the records still held are marked
     * handed out now, for the next consumer (a burst's are already). */
    if (r && r->role == RQ_CONSUMER && r->peeked)
        rec_mark_delivered(r, r->rseq + r->peeked);
}

void rq_rec_free(struct rq_rec *r)
{
    if (r) {
        free(r->res);
        if (r->burst_ends != r->burst_small)
            free(r->burst_ends);
    }
    free(r);
}

/* ---- waiting: queue.c's, with these re-checks ------------------------- */

static int rec_has_data(void *ctx)
{
    struct rq_rec *r = ctx;
    return (uint32_t)rq_load_seq_u64(&r->shm->write_word) != r->r;
}

static int rec_has_space(void *ctx)
{
    struct rq_rec *r = ctx;
    uint32_t w = r->lock ? (uint32_t)rq_load_seq_u64(&r->shm->write_word) : r->w;
    uint32_t rd = (uint32_t)rq_load_seq_u64(&r->shm->read_word);
    if (!rec_offset_ok(r, w) || !rec_offset_ok(r, rd) || rec_used(r, w, rd) > r->cap)
        return 1; /* corrupt: go back and report it instead of sleeping */
    uint32_t pad;
    return rec_used(r, w, rd) + rec_need(r, w, r->want, &pad) <= r->cap;
}

/* ---- producer -------------------------------------------------------- */

/* Room for a record of LEN?  RQ_OK with *PAYLOAD (padding written if the
 * record wraps), RQ_EAGAIN, RQ_ECORRUPT.  MPSC: under the lock, with the
 * write word re-read (other producers move it). */
static int rec_claim(struct rq_rec *r, uint32_t len, void **payload)
{
    if (r->lock && rec_sync_write(r) < 0)
        return RQ_ECORRUPT;
    uint32_t pad, need = rec_need(r, r->w, len, &pad);
    int rc = rec_room(r, need);
    if (rc < 0)
        return rc;
    rec_write_room(r); /* SPSC: the common path's room from here on */
    RQ_CRASH_POINT(PUSH_AFTER_CLAIM);
    uint32_t at = rec_index(r, r->w);
    if (pad) {
        /* Beyond the write word: invisible until the record is published
         * with it, in the same store. */
        rq_rec_put_padding(r->data + at, pad);
        RQ_CRASH_POINT(REC_PUSH_AFTER_PAD);
        at = 0;
    }
    r->res_len = len;
    r->res_pad = pad;
    r->res_data = at;
    *payload = r->data + at + RQ_RECORD_HEADER;
    return RQ_OK;
}

/* A single record's claim, the CTX of its try in queue.c's loop. */
struct rec_claim_ctx {
    struct rq_rec *r;
    void **payload;
};

static int rec_try_claim(void *ctx)
{
    struct rec_claim_ctx *c = ctx;
    return rec_claim(c->r, c->r->want, c->payload);
}

static int rec_claim_has_space(void *ctx)
{
    return rec_has_space(((struct rec_claim_ctx *)ctx)->r);
}

int rec_claim_wait(struct rq_rec *r, uint32_t len, void **payload, int timeout_ms)
{
    struct rec_claim_ctx c = {r, payload};
    r->want = len; /* what the try claims and the re-check looks for */
    /* An MPSC producer's common case: the lock free and room behind it. */
    if (r->lock) {
        if (rq_claim_once(r->lock, rec_try_claim, &c) == RQ_OK)
            return RQ_OK;
    } else if (rq_queue_busy_poll(r->q, timeout_ms)) {
        /* An SPSC busy poll: the loop's one try, and its answer (room, a
         * full ring's RQ_EAGAIN, RQ_ECORRUPT), without the wait turn that
         * a zero timeout would end at once. */
        return rec_claim(r, len, payload);
    }
    struct rq_wait_turn t = rq_wait_turn_start(timeout_ms);
    return rq_claim_loop(r->q, r->lock, 1, rec_try_claim, rec_claim_has_space, &c, &t);
}

/* ---- consumer -------------------------------------------------------- */

/* The oldest record: RQ_OK with *MSG, *LEN and *SPAN (its bytes with any
 * padding before it), RQ_EAGAIN if none, RQ_ECORRUPT if a word, header or
 * length read from the segment is impossible. */
static int rec_pop_begin(struct rq_rec *r, const unsigned char **msg, uint32_t *len, uint32_t *span)
{
    if (r->r == r->write_cache) {
        int rc = rec_reload_write(r);
        if (rc < 0)
            return rc;
    }
    rq_record_entry e;
    int rc = rec_at(r, r->r, rec_used(r, r->write_cache, r->r), &e, span);
    if (rc < 0)
        return rc;
    *msg = e.data;
    *len = e.len;
    return RQ_OK;
}

/* The oldest record's wait, the CTX of its try in queue.c's loop. */
struct rec_pop_ctx {
    struct rq_rec *r;
    const unsigned char **msg;
    uint32_t *len, *span;
};

static int rec_try_pop(void *ctx)
{
    struct rec_pop_ctx *c = ctx;
    return rec_pop_begin(c->r, c->msg, c->len, c->span);
}

/* A wait's re-check, and each look of its spin: one that finds nothing
 * asks for the record's lines as a busy look does (rec_pop_room). */
static int rec_pop_has_data(void *ctx)
{
    struct rq_rec *r = ((struct rec_pop_ctx *)ctx)->r;
    if (rec_has_data(r))
        return 1;
    rec_prefetch_next_read(r, r->data + rec_index(r, r->r));
    return 0;
}

int rec_pop_slow(struct rq_rec *r, const unsigned char **msg, uint32_t *len, uint32_t *span,
                 int timeout_ms)
{
    struct rec_pop_ctx c = {r, msg, len, span};
    struct rq_wait_turn t = rq_wait_turn_start(timeout_ms);
    return rq_claim_loop(r->q, NULL, 0, rec_try_pop, rec_pop_has_data, &c, &t);
}

/* After freeing from OLD_READ on: could a producer be waiting for room?
 * One waits only while used + its need > C, and a need is below two
 * largest spans (padding is shorter than the record it precedes). */
static int rec_was_nearly_full(struct rq_rec *r, uint32_t old_read)
{
    uint32_t w = (uint32_t)rq_load_seq_u64(&r->shm->write_word);
    if (!rec_offset_ok(r, w))
        return 1; /* corrupt: a wake costs nothing, a missed one might */
    uint32_t used = rec_used(r, w, old_read);
    return used == 0 || used + 2 * r->max_span > r->cap;
}

int rec_wake_waiting_producers(struct rq_rec *r, uint32_t old_read)
{
    if (rec_was_nearly_full(r, old_read))
        rq_queue_wake_producers(r->q);
    return RQ_OK;
}

int rec_wake_waiting_consumer(struct rq_rec *r)
{
    rq_queue_wake_consumer(r->q);
    return RQ_OK;
}

/* Marks the records below SEQ handed out, before the hand-over: a
 * consumer killed after it leaves the flag for its successor. */
void rec_mark_delivered(struct rq_rec *r, uint64_t seq)
{
    if (seq <= r->delivered)
        return;
    r->delivered = seq;
    rq_store_relaxed_u64(&r->shm->consumer.delivered_position, r->delivered);
    RQ_CRASH_POINT(DELIVER_AFTER_MARK);
}

/* The bytes of the K oldest records (K >= 1, all published), checked as
 * the consumer checks them: RQ_OK with *SPAN, or RQ_ECORRUPT. */
int rec_spans(struct rq_rec *r, uint32_t k, uint32_t *span)
{
    uint32_t off = r->r, total = 0;
    for (uint32_t i = 0; i < k; i++) { /* k <= the records published: bounded */
        rq_record_entry e;
        uint32_t s;
        int rc = rec_at(r, off, rec_used(r, r->write_cache, off), &e, &s);
        if (rc < 0)
            return rc;
        total += s;
        off = rec_advance(r, off, s);
    }
    *span = total;
    return RQ_OK;
}

int rec_release_unlooked(struct rq_rec *r)
{
    uint32_t span;
    int rc = rec_burst_take(r, 1, &span) ? RQ_OK : rec_spans(r, 1, &span);
    if (rc < 0)
        return rc;
    RQ_CRASH_POINT(RELEASE_BEFORE_PUBLISH);
    r->peeked--;
    rec_release(r, span, 1);
    return RQ_OK;
}

int rq_rec_next_seq(struct rq_rec *r, uint64_t *seq)
{
    if (r->role == RQ_CONSUMER) {
        *seq = r->rseq;
        return RQ_OK;
    }
    if (r->lock && !r->pushed) {
        /* The position first: loaded after the word, another producer's
         * publish in between could put it ahead, and the number a lap on. */
        uint64_t wp = rq_load_acquire_u64(&r->shm->write_position);
        uint64_t ww = rq_load_acquire_u64(&r->shm->write_word);
        if (!rec_offset_ok(r, (uint32_t)ww))
            return RQ_ECORRUPT;
        *seq = rec_extend(wp, (uint32_t)(ww >> 32));
        return RQ_OK;
    }
    *seq = r->wseq;
    return RQ_OK;
}

/* ---- statistics ------------------------------------------------------ */

/* Both words as a pair true at one moment (see queue.c's read_offset_pair:
 * a reader owning neither can see them move between its two loads). */
static int rec_read_pair(struct rq_rec *r, uint64_t *ww, uint64_t *rw)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        *ww = rq_load_acquire_u64(&r->shm->write_word);
        *rw = rq_load_acquire_u64(&r->shm->read_word);
        if (!rec_offset_ok(r, (uint32_t)*ww) || !rec_offset_ok(r, (uint32_t)*rw))
            return RQ_ECORRUPT;
        if (rec_pair_ok(r, *ww, *rw))
            return RQ_OK;
    }
    return RQ_ECORRUPT;
}

int rq_rec_offsets(struct rq_rec *r, uint32_t *write, uint32_t *read, uint32_t *records,
                   uint64_t *pushed, uint64_t *popped)
{
    /* Each position is stored after its word: loaded before the words, it
     * is never ahead of the number it extends. */
    uint64_t wp = rq_load_acquire_u64(&r->shm->write_position);
    uint64_t rp = rq_load_acquire_u64(&r->shm->read_position);
    uint64_t ww, rw;
    int rc = rec_read_pair(r, &ww, &rw);
    *write = (uint32_t)ww;
    *read = (uint32_t)rw;
    *records = rc == RQ_OK ? (uint32_t)(ww >> 32) - (uint32_t)(rw >> 32) : 0;
    *pushed = rc == RQ_OK ? rec_extend(wp, (uint32_t)(ww >> 32)) : wp;
    *popped = rc == RQ_OK ? rec_extend(rp, (uint32_t)(rw >> 32)) : rp;
    return rc;
}

int rq_rec_stat(struct rq_rec *r, rq_record_stats *st)
{
    memset(st, 0, sizeof *st);
    st->capacity = r->cap;
    st->max_record = r->max;
    st->largest_record = rq_load_relaxed_u64(&r->shm->bytes.largest);
    st->padding_bytes = rq_load_relaxed_u64(&r->shm->bytes.padding_bytes);
    st->payload_bytes = rq_load_relaxed_u64(&r->shm->bytes.payload_bytes);
    uint64_t ww, rw;
    int rc = rec_read_pair(r, &ww, &rw);
    if (rc < 0)
        return rc;
    st->bytes_used = rec_used(r, (uint32_t)ww, (uint32_t)rw);
    st->bytes_free = r->cap - st->bytes_used;
    st->records = (uint32_t)(ww >> 32) - (uint32_t)(rw >> 32);
    return RQ_OK;
}

/* ---- inspection ------------------------------------------------------ */

/* The record at offset OFF of the ring with AVAIL published bytes, checked
 * as the consumer checks: RQ_OK with *E (but seq) and *SPAN. */
int rec_at(const struct rq_rec *r, uint32_t off, uint32_t avail, rq_record_entry *e, uint32_t *span)
{
    uint32_t at = rec_index(r, off), skip = 0;
    struct rq_rec_header h = rq_rec_get_header(r->data + at); /* one load: untrusted */
    if (h.type == RQ_REC_PAD) {
        uint32_t tail = r->cap - at;
        if (h.len != tail - RQ_RECORD_HEADER || tail >= avail)
            return RQ_ECORRUPT; /* padding ends at the ring's end, a record follows */
        skip = tail;
        avail -= tail;
        at = 0;
        h = rq_rec_get_header(r->data);
    }
    if (h.type != RQ_REC_DATA || h.len > r->max)
        return RQ_ECORRUPT;
    uint32_t s = rec_span(h.len);
    if (s > avail || s > r->cap - at)
        return RQ_ECORRUPT;
    e->offset = at;
    e->len = h.len;
    e->padding = skip;
    e->reserved = 0;
    e->data = r->data + at + RQ_RECORD_HEADER;
    *span = skip + s;
    return RQ_OK;
}

int rq_rec_walk(struct rq_rec *r, int (*fn)(void *ctx, const rq_record_entry *entry), void *ctx)
{
    /* The position first: loaded after the word, a release in between
     * that stored it could put it ahead, and the numbers a lap on. */
    uint64_t rp = rq_load_acquire_u64(&r->shm->read_position);
    uint64_t ww, rw;
    int rc = rec_read_pair(r, &ww, &rw);
    if (rc < 0)
        return rc;
    uint32_t off = (uint32_t)rw, end = (uint32_t)ww;
    uint32_t count = (uint32_t)(ww >> 32) - (uint32_t)(rw >> 32);
    uint64_t seq = rec_extend(rp, (uint32_t)(rw >> 32));
    for (uint32_t i = 0; i < count; i++) { /* count <= C / 8: bounded */
        rq_record_entry e;
        uint32_t span;
        rc = rec_at(r, off, rec_used(r, end, off), &e, &span);
        if (rc == RQ_OK && (uint32_t)rq_load_acquire_u64(&r->shm->read_word) != (uint32_t)rw)
            rc = RQ_EAGAIN; /* freed under us: the bytes may be a producer's now */
        if (rc < 0)
            return rc;
        e.seq = seq + i;
        rc = fn(ctx, &e);
        if (rc != 0)
            return rc;
        off = rec_advance(r, off, span);
    }
    return off == end ? RQ_OK : RQ_ECORRUPT; /* the records fill the published bytes */
}
