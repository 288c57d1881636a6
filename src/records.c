/*
 * records.c - record queues (RQ_RECORDS): variable-length messages packed
 * back to back in a byte ring.  OS-neutral.  docs/design.md, section 12.
 *
 * Each side owns one 64-bit word, seq_lo << 32 | byte offset, and
 * publishes it with one store: the offset runs over [0, 2C) (the double
 * range over bytes), seq_lo is the low half of the side's record number.
 * A record is an 8-byte header {len, type} and its payload rounded up to
 * 8; one that does not fit before the end of the ring is preceded by a
 * padding record filling the tail, published in the same store.  Every
 * word, header and length read from the segment is checked before it is
 * used (RQ_ECORRUPT), and a loop over records (a burst, the dump) is bounded
 * by the caller's count or the word's record count and by the published
 * bytes, so no value can make a call read out of bounds or hang.
 */
#include <stdlib.h>
#include <string.h>

#include "crashpoint.h"
#include "deadline.h"
#include "records.h"

/* The slow paths (waiting, wrapping, reloading a peer's word) out of line,
 * so that the common case pays for no saved registers. */
#if defined(__GNUC__)
#define REC_COLD __attribute__((noinline, cold))
#else
#define REC_COLD
#endif

struct rq_rec {
    struct rq_rec_shm *shm;
    unsigned char *data;
    struct rq *q;         /* the handle: queue.c waits and wakes for us */
    struct rq_mpsc *lock; /* MPSC producers: the handle's lock; else NULL */
    struct rq_shm_role *self;
    int role;
    int full_fences;
    uint32_t cap, two_cap, max, max_span;
    /* producer */
    uint32_t w;          /* our offset */
    uint32_t read_cache; /* the consumer's offset, last seen */
    uint64_t wseq;       /* the next record's number */
    uint32_t want;       /* the length a waiting push needs room for */
    int pushed;
    int reserved;                        /* a reservation is held */
    uint32_t res_len, res_pad, res_data; /* its length, padding, data index */
    uint64_t reserver;                   /* MPSC: the thread that reserved */
    /* consumer */
    uint32_t r;           /* our offset */
    uint32_t write_cache; /* the producer's offset, last seen */
    uint64_t rseq;        /* the oldest record's number */
    uint64_t delivered, redeliver_below;
    uint32_t peeked; /* messages peeked, not yet released (a burst: many) */
    int peek_valid;  /* peek_* below hold the oldest of them */
    const unsigned char *peek_msg;
    uint32_t peek_len, peek_span;
    uint64_t peek_seq;
    int peek_redelivered;
};

/* ---- arithmetic on offsets (all values already checked) ------------- */

static inline uint32_t rec_span(uint32_t len)
{
    return RQ_RECORD_HEADER + ((len + 7u) & ~7u);
}

static inline uint32_t rec_index(const struct rq_rec *r, uint32_t off)
{
    return off < r->cap ? off : off - r->cap;
}

static inline uint32_t rec_advance(const struct rq_rec *r, uint32_t off, uint32_t n)
{
    uint32_t x = off + n; /* n <= C, off < 2C <= 2^31: no overflow */
    return x >= r->two_cap ? x - r->two_cap : x;
}

static inline uint32_t rec_used(const struct rq_rec *r, uint32_t w, uint32_t rd)
{
    return w >= rd ? w - rd : w + r->two_cap - rd;
}

static inline uint64_t rec_word(uint64_t seq, uint32_t off)
{
    return (uint64_t)(uint32_t)seq << 32 | off;
}

/* The 64-bit number whose low half is LO, given STORED, a copy that lags
 * by less than 2^32: the first value >= STORED with those low bits. */
static inline uint64_t rec_extend(uint64_t stored, uint32_t lo)
{
    return stored + (uint32_t)(lo - (uint32_t)stored);
}

/* Bytes a record of LEN needs at offset W: its span, plus the tail of the
 * ring as padding if it does not fit before the end.  *PAD gets that. */
static inline uint32_t rec_need(const struct rq_rec *r, uint32_t w, uint32_t len, uint32_t *pad)
{
    uint32_t span = rec_span(len), tail = r->cap - rec_index(r, w);
    *pad = span <= tail ? 0 : tail;
    return *pad + span;
}

/* A pair of words that can be true at one moment: offsets in range, at
 * most C bytes apart, and a record count that those bytes can hold (each
 * record takes 8 bytes at least, and bytes are used only by records). */
/* An offset as the ring makes them: in [0, 2C) and 8-aligned (every record
 * and padding record starts on an 8-byte boundary; a peer's word that is
 * not would put headers at unaligned addresses). */
static inline int rec_offset_ok(const struct rq_rec *r, uint32_t x)
{
    return x < r->two_cap && x % 8 == 0;
}

static int rec_pair_ok(const struct rq_rec *r, uint64_t ww, uint64_t rw)
{
    uint32_t w = (uint32_t)ww, rd = (uint32_t)rw;
    if (!rec_offset_ok(r, w) || !rec_offset_ok(r, rd))
        return 0;
    uint32_t used = rec_used(r, w, rd);
    uint32_t count = (uint32_t)(ww >> 32) - (uint32_t)(rw >> 32);
    return used <= r->cap && count <= used / RQ_RECORD_HEADER && (count == 0) == (used == 0);
}

static inline void rec_publish(struct rq_rec *r, rq_atomic_u64 *word, uint64_t v)
{
    if (r->full_fences) {
        rq_store_seq_u64(word, v);
    } else {
        rq_store_release_u64(word, v);
        rq_fence_compiler(); /* the waiters load below stays after it */
    }
}

static inline int rec_peer_waits(const struct rq_rec *r, rq_atomic_u32 *waiters)
{
    return (r->full_fences ? rq_load_seq_u32(waiters) : rq_load_relaxed_u32(waiters)) != 0;
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
    return (uint64_t)sizeof(struct rq_rec_shm) + cfg->slot_count;
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
    uint64_t need = (uint64_t)sizeof(struct rq_rec_shm) + h->slot_count;
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
    r->shm = shm;
    r->data = (unsigned char *)shm + sizeof(struct rq_rec_shm);
    r->lock = lock;
    r->role = role;
    r->self = role == RQ_PRODUCER ? &r->shm->producer : &r->shm->consumer;
    r->full_fences = (h->flags & RQ_FULL_FENCES) != 0;
    r->cap = h->slot_count;
    r->two_cap = 2 * h->slot_count;
    r->max = h->slot_size;
    r->max_span = rec_span(h->slot_size);
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
    r->r = r->read_cache = (uint32_t)rw;
    r->wseq = rec_extend(rq_load_relaxed_u64(&r->shm->write_position), (uint32_t)(ww >> 32));
    r->rseq = rec_extend(rq_load_relaxed_u64(&r->shm->read_position), (uint32_t)(rw >> 32));
    /* A dead consumer handed out at most the records in the ring. */
    uint64_t mark = rq_load_relaxed_u64(&r->shm->consumer.delivered_position);
    r->delivered = mark >= r->rseq && mark - r->rseq <= r->cap / RQ_RECORD_HEADER ? mark : r->rseq;
    r->redeliver_below = r->delivered;
    return RQ_OK;
}

static int reservation_is_ours(const struct rq_rec *r)
{
    return !r->lock || r->reserver == rq_plat_thread_id();
}

void rq_rec_close(struct rq_rec *r)
{
    if (r && r->reserved && r->lock && reservation_is_ours(r))
        rq_mpsc_unlock(r->lock); /* dropped unseen: nothing was published */
}

void rq_rec_free(struct rq_rec *r)
{
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
    if (r->lock) {
        uint64_t ww = rq_load_acquire_u64(&r->shm->write_word);
        if (!rec_offset_ok(r, (uint32_t)ww))
            return RQ_ECORRUPT;
        r->w = (uint32_t)ww;
        r->wseq = rec_extend(rq_load_relaxed_u64(&r->shm->write_position), (uint32_t)(ww >> 32));
    }
    uint32_t pad, need = rec_need(r, r->w, len, &pad);
    if (rec_used(r, r->w, r->read_cache) + need > r->cap || r->lock) {
        uint64_t rw = rq_load_acquire_u64(&r->shm->read_word);
        if (!rec_pair_ok(r, rec_word(r->wseq, r->w), rw))
            return RQ_ECORRUPT;
        r->read_cache = (uint32_t)rw;
        if (rec_used(r, r->w, r->read_cache) + need > r->cap)
            return RQ_EAGAIN;
    }
    RQ_CRASH_POINT(PUSH_AFTER_CLAIM);
    uint32_t at = rec_index(r, r->w);
    if (pad) {
        /* Beyond the write word: invisible until the record is published
         * with it, in the same store. */
        struct rq_rec_header h = {pad - RQ_RECORD_HEADER, RQ_REC_PAD};
        memcpy(r->data + at, &h, sizeof h);
        RQ_CRASH_POINT(REC_PUSH_AFTER_PAD);
        at = 0;
    }
    r->res_len = len;
    r->res_pad = pad;
    r->res_data = at;
    *payload = r->data + at + RQ_RECORD_HEADER;
    return RQ_OK;
}

static REC_COLD int rec_claim_wait(struct rq_rec *r, uint32_t len, void **payload, int timeout_ms)
{
    struct rq_wait_turn t = rq_wait_turn_start(timeout_ms);
    for (;;) {
        if (r->lock) {
            int rc = rq_mpsc_lock(r->lock, rq_deadline_left(&t.d));
            if (rc < 0) {
                rc = rq_queue_lock_failed(r->q, &t, rc);
                /* always an error; said here too for the analyzer, which
                 * cannot see into queue.c and would let *payload go unset */
                return rc < 0 ? rc : RQ_ESYS;
            }
        }
        int rc = rec_claim(r, len, payload);
        if (rc == RQ_OK)
            return RQ_OK;
        if (r->lock)
            rq_mpsc_unlock(r->lock); /* never wait holding the lock */
        if (rc != RQ_EAGAIN)
            return rc;
        r->want = len;
        rc = rq_queue_wait(r->q, 1, rec_has_space, r, &t);
        if (rc < 0)
            return rc;
    }
}

/* The common case without a call: an SPSC producer whose cached view
 * shows room before the end of the ring.  Anything else (a wrap, a full
 * cache, MPSC) goes the long way, which checks again. */
static inline int rec_claim_fast(struct rq_rec *r, uint32_t len, void **payload, int timeout_ms)
{
    uint32_t at = rec_index(r, r->w), span = rec_span(len);
    if (!r->lock && span <= r->cap - at && rec_used(r, r->w, r->read_cache) + span <= r->cap) {
        RQ_CRASH_POINT(PUSH_AFTER_CLAIM);
        r->res_len = len;
        r->res_pad = 0;
        r->res_data = at;
        *payload = r->data + at + RQ_RECORD_HEADER;
        return RQ_OK;
    }
    return rec_claim_wait(r, len, payload, timeout_ms);
}

/* LEN payload bytes in records of at most LONGEST, PAD of padding. */
static inline void rec_count_bytes(struct rq_rec *r, uint64_t len, uint32_t pad, uint32_t longest)
{
    struct rq_rec_shm *shm = r->shm;
    if (pad)
        rq_store_relaxed_u64(&shm->padding_bytes, rq_load_relaxed_u64(&shm->padding_bytes) + pad);
    rq_store_relaxed_u64(&shm->payload_bytes, rq_load_relaxed_u64(&shm->payload_bytes) + len);
    if (longest > rq_load_relaxed_u64(&shm->largest))
        rq_store_relaxed_u64(&shm->largest, longest);
}

/* Writes the header of the claimed record holding LEN and publishes it,
 * with its padding, in one store. */
static inline void rec_publish_record(struct rq_rec *r, uint32_t len)
{
    struct rq_rec_header h = {len, RQ_REC_DATA};
    memcpy(r->data + r->res_data, &h, sizeof h);
    uint32_t pad = r->res_pad;
    r->w = rec_advance(r, r->w, pad + rec_span(len));
    r->wseq++;
    rec_publish(r, &r->shm->write_word, rec_word(r->wseq, r->w));
    RQ_CRASH_POINT(PUSH_BEFORE_POSITION);
    rq_store_relaxed_u64(&r->shm->write_position, r->wseq);
    r->pushed = 1;
    RQ_CRASH_POINT(PUSH_AFTER_PUBLISH);
    rq_counter_bump(&r->self->messages); /* single writer: SPSC, or under the lock */
    rec_count_bytes(r, len, pad, len);
    if (r->lock)
        rq_mpsc_unlock(r->lock);
    if (rec_peer_waits(r, &r->shm->data_event.waiters))
        rq_queue_wake_consumer(r->q);
}

int rq_rec_push(struct rq_rec *r, const void *msg, size_t len, int timeout_ms)
{
    if (!msg && len > 0)
        return RQ_EINVAL;
    if (r->reserved)
        return RQ_ESTATE;
    if (len > r->max)
        return RQ_EMSGSIZE;
    void *payload;
    int rc = rec_claim_fast(r, (uint32_t)len, &payload, timeout_ms);
    if (rc < 0)
        return rc;
    if (len > 0)
        memcpy(payload, msg, len);
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    rec_publish_record(r, (uint32_t)len);
    return RQ_OK;
}

int rq_rec_reserve(struct rq_rec *r, size_t len, void **slot, int timeout_ms)
{
    if (!slot)
        return RQ_EINVAL;
    if (len > r->max)
        return RQ_EMSGSIZE;
    if (r->reserved) {
        if (!reservation_is_ours(r) || len > r->res_len)
            return RQ_ESTATE;
        *slot = r->data + r->res_data + RQ_RECORD_HEADER;
        return RQ_OK;
    }
    int rc = rec_claim_fast(r, (uint32_t)len, slot, timeout_ms);
    if (rc < 0)
        return rc;
    r->reserved = 1;
    if (r->lock)
        r->reserver = rq_plat_thread_id();
    return RQ_OK;
}

int rq_rec_commit(struct rq_rec *r, size_t len)
{
    if (!r->reserved || !reservation_is_ours(r))
        return RQ_ESTATE;
    if (len > r->res_len)
        return RQ_EMSGSIZE;
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    r->reserved = 0;
    rec_publish_record(r, (uint32_t)len);
    return RQ_OK;
}

/* ---- consumer -------------------------------------------------------- */

static int rec_at(const struct rq_rec *r, uint32_t off, uint32_t avail, rq_record_entry *e,
                  uint32_t *span);

/* The oldest record: RQ_OK with *MSG, *LEN and *SPAN (its bytes with any
 * padding before it), RQ_EAGAIN if none, RQ_ECORRUPT if a word, header or
 * length read from the segment is impossible. */
static int rec_pop_begin(struct rq_rec *r, const unsigned char **msg, uint32_t *len, uint32_t *span)
{
    if (r->r == r->write_cache) {
        uint64_t ww = rq_load_acquire_u64(&r->shm->write_word);
        if (!rec_pair_ok(r, ww, rec_word(r->rseq, r->r)))
            return RQ_ECORRUPT;
        r->write_cache = (uint32_t)ww;
        if (r->write_cache == r->r)
            return RQ_EAGAIN;
    }
    rq_record_entry e;
    int rc = rec_at(r, r->r, rec_used(r, r->write_cache, r->r), &e, span);
    if (rc < 0)
        return rc;
    *msg = e.data;
    *len = e.len;
    return RQ_OK;
}

static REC_COLD int rec_pop_slow(struct rq_rec *r, const unsigned char **msg, uint32_t *len,
                                 uint32_t *span, int timeout_ms)
{
    int rc = rec_pop_begin(r, msg, len, span);
    if (rc != RQ_EAGAIN)
        return rc;
    struct rq_wait_turn t = rq_wait_turn_start(timeout_ms);
    for (;;) {
        rc = rq_queue_wait(r->q, 0, rec_has_data, r, &t);
        if (rc < 0)
            return rc;
        rc = rec_pop_begin(r, msg, len, span);
        if (rc != RQ_EAGAIN)
            return rc;
    }
}

static inline int rec_pop_wait(struct rq_rec *r, const unsigned char **msg, uint32_t *len,
                               uint32_t *span, int timeout_ms)
{
    if (r->r != r->write_cache) {
        /* The common case without a call: a plain record is there. */
        uint32_t at = rec_index(r, r->r);
        struct rq_rec_header h;
        memcpy(&h, r->data + at, sizeof h); /* read once: the producer is untrusted */
        uint32_t s = rec_span(h.len);       /* no overflow: len checked first below */
        if (h.type == RQ_REC_DATA && h.len <= r->max && s <= r->cap - at &&
            s <= rec_used(r, r->write_cache, r->r)) {
            *msg = r->data + at + RQ_RECORD_HEADER;
            *len = h.len;
            *span = s;
            return RQ_OK;
        }
    }
    return rec_pop_slow(r, msg, len, span, timeout_ms);
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

/* Frees the K oldest records, SPAN bytes with their padding, in one store. */
static inline void rec_release(struct rq_rec *r, uint32_t span, uint32_t k)
{
    uint32_t old = r->r;
    r->r = rec_advance(r, r->r, span);
    r->rseq += k;
    rec_publish(r, &r->shm->read_word, rec_word(r->rseq, r->r));
    RQ_CRASH_POINT(RELEASE_BEFORE_POSITION);
    rq_store_relaxed_u64(&r->shm->read_position, r->rseq);
    RQ_CRASH_POINT(RELEASE_AFTER_PUBLISH);
    rq_counter_add(&r->self->messages, k);
    if (rec_peer_waits(r, &r->shm->space_event.waiters) && rec_was_nearly_full(r, old))
        rq_queue_wake_producers(r->q);
}

static void rec_info(rq_msg_info *info, uint64_t seq, int redelivered)
{
    if (!info)
        return;
    info->seq = seq;
    info->flags = redelivered ? RQ_MSG_REDELIVERED : 0;
    info->reserved = 0;
}

int rq_rec_pop(struct rq_rec *r, void *buf, size_t cap, size_t *len, rq_msg_info *info,
               int timeout_ms)
{
    if (!len || (!buf && cap > 0))
        return RQ_EINVAL;
    if (r->peeked)
        return RQ_ESTATE;
    const unsigned char *msg;
    uint32_t n, span;
    int rc = rec_pop_wait(r, &msg, &n, &span, timeout_ms);
    if (rc < 0)
        return rc;
    *len = n;
    if (n > cap)
        return RQ_EMSGSIZE; /* left in place */
    if (n > 0)
        memcpy(buf, msg, n);
    rec_info(info, r->rseq, r->rseq < r->redeliver_below);
    RQ_CRASH_POINT(POP_AFTER_COPY);
    rec_release(r, span, 1);
    return RQ_OK;
}

/* Marks the records below SEQ handed out, before the hand-over: a
 * consumer killed after it leaves the flag for its successor. */
static void rec_mark_delivered(struct rq_rec *r, uint64_t seq)
{
    if (seq <= r->delivered)
        return;
    r->delivered = seq;
    rq_store_relaxed_u64(&r->shm->consumer.delivered_position, r->delivered);
    RQ_CRASH_POINT(DELIVER_AFTER_MARK);
}

int rq_rec_peek(struct rq_rec *r, const void **msg, size_t *len, rq_msg_info *info, int timeout_ms)
{
    if (!msg || !len)
        return RQ_EINVAL;
    if (!r->peek_valid) { /* none peeked, or the rest of a burst */
        const unsigned char *m;
        uint32_t n, span;
        int rc = rec_pop_wait(r, &m, &n, &span, timeout_ms);
        if (rc < 0)
            return rc;
        r->peek_msg = m;
        r->peek_len = n;
        r->peek_span = span;
        r->peek_seq = r->rseq;
        r->peek_redelivered = r->rseq < r->redeliver_below;
        rec_mark_delivered(r, r->rseq + 1);
        r->peek_valid = 1;
        if (!r->peeked)
            r->peeked = 1;
    }
    *msg = r->peek_msg;
    *len = r->peek_len;
    rec_info(info, r->peek_seq, r->peek_redelivered);
    return RQ_OK;
}

/* The bytes of the K oldest records (K >= 1, all published), checked as
 * the consumer checks them: RQ_OK with *SPAN, or RQ_ECORRUPT. */
static int rec_spans(struct rq_rec *r, uint32_t k, uint32_t *span)
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

/* rq_release of a peeked burst's record that rq_peek has not looked at
 * again: its span is read (and checked) here. */
static REC_COLD int rec_release_unlooked(struct rq_rec *r)
{
    uint32_t span;
    int rc = rec_spans(r, 1, &span);
    if (rc < 0)
        return rc;
    RQ_CRASH_POINT(RELEASE_BEFORE_PUBLISH);
    r->peeked--;
    rec_release(r, span, 1);
    return RQ_OK;
}

int rq_rec_release(struct rq_rec *r)
{
    if (!r->peeked)
        return RQ_ESTATE;
    if (!r->peek_valid)
        return rec_release_unlooked(r);
    RQ_CRASH_POINT(RELEASE_BEFORE_PUBLISH);
    r->peeked--; /* a burst's rest stays peeked */
    r->peek_valid = 0;
    r->peek_msg = NULL;
    rec_release(r, r->peek_span, 1);
    return RQ_OK;
}

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

int rq_rec_next_seq(struct rq_rec *r, uint64_t *seq)
{
    if (r->role == RQ_CONSUMER) {
        *seq = r->rseq;
        return RQ_OK;
    }
    if (r->lock && !r->pushed) {
        uint64_t ww = rq_load_acquire_u64(&r->shm->write_word);
        if (!rec_offset_ok(r, (uint32_t)ww))
            return RQ_ECORRUPT;
        *seq = rec_extend(rq_load_relaxed_u64(&r->shm->write_position), (uint32_t)(ww >> 32));
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

int rq_rec_offsets(struct rq_rec *r, uint32_t *write, uint32_t *read, uint32_t *records)
{
    uint64_t ww, rw;
    int rc = rec_read_pair(r, &ww, &rw);
    *write = (uint32_t)ww;
    *read = (uint32_t)rw;
    *records = rc == RQ_OK ? (uint32_t)(ww >> 32) - (uint32_t)(rw >> 32) : 0;
    return rc;
}

int rq_rec_stat(struct rq_rec *r, rq_record_stats *st)
{
    memset(st, 0, sizeof *st);
    st->capacity = r->cap;
    st->max_record = r->max;
    st->largest_record = rq_load_relaxed_u64(&r->shm->largest);
    st->padding_bytes = rq_load_relaxed_u64(&r->shm->padding_bytes);
    st->payload_bytes = rq_load_relaxed_u64(&r->shm->payload_bytes);
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
static int rec_at(const struct rq_rec *r, uint32_t off, uint32_t avail, rq_record_entry *e,
                  uint32_t *span)
{
    uint32_t at = rec_index(r, off), skip = 0;
    struct rq_rec_header h;
    memcpy(&h, r->data + at, sizeof h); /* read once: the producer is untrusted */
    if (h.type == RQ_REC_PAD) {
        uint32_t tail = r->cap - at;
        if (h.len != tail - RQ_RECORD_HEADER || tail >= avail)
            return RQ_ECORRUPT; /* padding ends at the ring's end, a record follows */
        skip = tail;
        avail -= tail;
        at = 0;
        memcpy(&h, r->data, sizeof h);
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
    uint64_t ww, rw;
    int rc = rec_read_pair(r, &ww, &rw);
    if (rc < 0)
        return rc;
    uint32_t off = (uint32_t)rw, end = (uint32_t)ww;
    uint32_t count = (uint32_t)(ww >> 32) - (uint32_t)(rw >> 32);
    uint64_t seq = rec_extend(rq_load_relaxed_u64(&r->shm->read_position), (uint32_t)(rw >> 32));
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
