/*
 * records_impl.h - what the record queue's files (records.c: the segment,
 * the handle, the slow halves of single records, the statistics;
 * records_burst.c: the bursts; queue.c: the public calls) share: the
 * handle's state, the arithmetic on offsets, the inline halves of the
 * claim, the wait for a record and the release, and the bodies of the
 * single-record calls.  OS-neutral; private to src/.  docs/design.md,
 * section 12.
 */
#ifndef RQ_RECORDS_IMPL_H
#define RQ_RECORDS_IMPL_H

#include <string.h>

#include "copy.h"
#include "crashpoint.h"
#include "records.h"

/* The slow paths (waiting, wrapping, reloading a peer's word) out of line,
 * so that the common case saves no registers for them. */
#if defined(__GNUC__)
#define REC_COLD __attribute__((noinline, cold))
/* Out of line but not cold: the claim loop's try, called through a
 * constant pointer, is then folded into the loop (a cold function is
 * optimised for size and calls it); MPSC pushes take this path every
 * time, a pop whenever its cached view of the producer is used up. */
#define REC_SLOW __attribute__((noinline))
/* Inline in every caller, so that a constant argument folds in. */
#define REC_FLATTEN __attribute__((always_inline)) inline
#else
#define REC_FLATTEN inline
#define REC_COLD
#define REC_SLOW
#endif

/* The batch of a peek burst whose extents the handle keeps without a
 * heap allocation (a handle's records; more on the heap). */
#define REC_BURST_SMALL 64

/* One record of a batch reservation, as the claim placed it: its
 * reserved length, its header's index in the ring, and the bytes it takes
 * there (its span, plus the padding before it if it wraps). */
struct rec_res {
    uint32_t len, at, ext;
};

struct rq_rec {
    struct rq_rec_shm *shm;
    unsigned char *data;
    struct rq *q;         /* the handle: queue.c waits and wakes for us */
    struct rq_mpsc *lock; /* MPSC producers: the handle's lock; else NULL */
    struct rq_shm_role *self;
    int role;
    int full_fences;
    uint32_t cap, two_cap, max, max_span;
    uint32_t spans_per_ring; /* C / max_span: largest records a ring holds */
    /* producer */
    uint32_t w;          /* our offset */
    uint32_t read_cache; /* the consumer's offset, last seen */
    /* MPSC: the write cursor's record number when read_cache was loaded
     * (the write word's, or in a burst the batch's unpublished cursor,
     * which the batch's publish then passes), and how many records past
     * it the write word may move with the cache still trusted
     * (rec_cache_budget, rec_read_cache_ok). */
    uint64_t read_cache_seq;
    uint32_t read_cache_records;
    /* SPSC: bytes a record can take at the write offset, before the
     * ring's end and within the room the cached consumer's word leaves (a
     * lower bound: rec_write_room sets it, each publish takes its bytes
     * off, rec_write_room_take), and where they start, data +
     * rec_index(w), valid while wr_room is not 0.  0 on MPSC, and whenever
     * w or read_cache moves otherwise: the push then goes the long way,
     * whose claim sets it again. */
    uint32_t wr_room;
    unsigned char *wr_ptr;
    uint64_t wseq;                       /* the next record's number */
    uint64_t wdue;                       /* the first number whose write_position is due */
    uint32_t want;                       /* the length a waiting push needs room for */
    int pushed;                          /* MPSC: published a record (rq_next_seq) */
    int reserved;                        /* a reservation is held */
    uint32_t res_len, res_pad, res_data; /* its length, padding, data index */
    uint64_t reserver;                   /* MPSC: the thread that reserved */
    /* A reservation of several records (rq_reserve_burst_len): how many,
     * and each one's place (the first record's is also kept in res_len,
     * res_data and res_pad, where a single reservation keeps its only one,
     * and is read from there); batch_lens and batch_want are the
     * caller's lengths and the count a waiting batch needs room for,
     * valid during the call only.  The array grows as needed and is freed
     * with the handle. */
    uint32_t res_count, batch_want, res_cap;
    struct rec_res *res;
    const size_t *batch_lens;
    /* consumer */
    uint32_t r;           /* our offset */
    uint32_t write_cache; /* the producer's offset, last seen */
    /* The bytes readable at the read offset before the ring's end and
     * within write_cache (a lower bound: rec_read_room sets it, each
     * release takes its bytes off, rec_release), and where they start,
     * data + rec_index(r), valid while rd_room is not 0.  0 whenever r or
     * write_cache moves otherwise: the next read sets it again. */
    uint32_t rd_room;
    uint32_t empty_at; /* r when a look last found no record (rec_prefetch_next_read) */
    const unsigned char *rd_ptr;
    uint64_t rseq; /* the oldest record's number */
    uint64_t rdue; /* the first number whose read_position is due */
    uint64_t delivered, redeliver_below;
    uint32_t peeked; /* messages peeked, not yet released (a burst: many) */
    int peek_valid;  /* peek_* below hold the oldest of them */
    const unsigned char *peek_msg;
    uint32_t peek_len, peek_span;
    /* The extents of the last rq_peek_burst's records, each checked there:
     * burst_ends[i] is the batch's bytes (padding included) from its start
     * to the end of its record i.  Entries burst_next..burst_n-1 are still
     * peeked; the oldest of them is record burst_seq (a number never
     * reused: no release outside them can leave them applying).  Only ours
     * (nothing in the segment), so a release frees what the peek checked
     * without reading the headers again.  burst_ends is burst_small, or
     * (a batch asked for more) the heap's, freed with the handle; burst_n
     * is 0 when nothing is cached. */
    uint32_t *burst_ends;
    uint32_t burst_ends_cap, burst_n, burst_next;
    uint64_t burst_seq;
    uint32_t burst_small[REC_BURST_SMALL];
};

/* ---- arithmetic on offsets (all values already checked) ------------- */

/* The bytes a record of LEN takes: rq.h's RQ_RECORD_SPAN, its header and
 * payload rounded up to the next record's 8-aligned offset (LEN < 2^30:
 * fits 32 bits). */
static inline uint32_t rec_span(uint32_t len)
{
    return (uint32_t)RQ_RECORD_SPAN(len);
}
_Static_assert(RQ_REC_CELL == 8, "RQ_RECORD_SPAN rounds to 8");

/* A ring of CAP bytes whose largest record is MAX (both checked at open),
 * and what follows from them, computed once. */
static inline void rec_set_geometry(struct rq_rec *r, uint32_t cap, uint32_t max)
{
    r->cap = cap;
    r->two_cap = 2 * cap;
    r->max = max;
    r->max_span = rec_span(max);
    r->spans_per_ring = cap / r->max_span;
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

/* A position is due where a side's number reaches the next multiple of
 * 2^31 above the position stored: the first number due after STORED. */
static inline uint64_t rec_position_due(uint64_t stored)
{
    return (stored | ((UINT64_C(1) << 31) - 1)) + 1;
}

/* Stores SEQ, this side's number after a publish, as its position POS if
 * it is due (SEQ >= *DUE): once in 2^31 records, so that the word is the
 * only store a record makes on the line the peer polls.  Between
 * publishes a position then lags its word by less than 2^31 records; a
 * side killed between the two leaves it at most one batch (< 2^28
 * records) further behind, and the next holder of the role stores it when
 * it loads it (rq_rec_load, rec_sync_write): always less than the 2^32
 * rec_extend needs.  Release: a reader that loads the position first finds
 * the word at least as far on (rq_rec_offsets; a plain store on x86). */
static inline void rec_store_position(rq_atomic_u64 *pos, uint64_t *due, uint64_t seq)
{
    if (seq >= *due) {
        rq_store_release_u64(pos, seq);
        *due = rec_position_due(seq);
    }
}

/* The number whose low half is LO, extended by the position stored at
 * POS; *DUE: the first number whose position is due from there. */
static inline uint64_t rec_load_position(rq_atomic_u64 *pos, uint32_t lo, uint64_t *due)
{
    uint64_t stored = rq_load_relaxed_u64(pos);
    *due = rec_position_due(stored);
    return rec_extend(stored, lo);
}

/* An offset as the ring makes them: in [0, 2C) and 8-aligned (every record
 * and padding record starts at a multiple of 8; a peer's word that is
 * not would put payloads at unaligned addresses). */
static inline int rec_offset_ok(const struct rq_rec *r, uint32_t x)
{
    return x < r->two_cap && x % RQ_REC_CELL == 0;
}

/* A pair of words that can be true at one moment: offsets in range, at
 * most C bytes apart, and a record count that those bytes can hold (each
 * record takes RQ_REC_CELL bytes at least, and bytes are used only by
 * records). */
static inline int rec_pair_fits(const struct rq_rec *r, uint64_t ww, uint64_t rw)
{
    uint32_t w = (uint32_t)ww, rd = (uint32_t)rw;
    if (!rec_offset_ok(r, w) || !rec_offset_ok(r, rd))
        return 0;
    uint32_t used = rec_used(r, w, rd);
    uint32_t count = (uint32_t)(ww >> 32) - (uint32_t)(rw >> 32);
    return used <= r->cap && count <= used / RQ_REC_CELL && (count == 0) == (used == 0);
}

/* The bytes the producer's word WW shows published past RD, the
 * consumer's own offset (RSEQ_LO: the low half of its number), if the
 * pair passes rec_pair_fits; else a value above the capacity.  The same
 * answer, less the test of RD (the handle's: in range and aligned, as
 * every offset it moves to), and with the count's two tests in one (the
 * bytes are a multiple of RQ_REC_CELL: no record in 0 bytes, else 1 to
 * bytes / RQ_REC_CELL). */
static inline uint32_t rec_write_used(const struct rq_rec *r, uint64_t ww, uint32_t rd,
                                      uint32_t rseq_lo)
{
    uint32_t w = (uint32_t)ww;
    if (!rec_offset_ok(r, w))
        return UINT32_MAX;
    uint32_t used = rec_used(r, w, rd), count = (uint32_t)(ww >> 32) - rseq_lo;
    return (used ? count - 1 < used / RQ_REC_CELL : count == 0) ? used : UINT32_MAX;
}

/* rec_pair_fits out of line, for the other loads of a peer's word (the
 * open, a producer's reload, a burst's further loads), where an inline
 * copy cost the bursts' common paths registers. */
int rec_pair_ok(const struct rq_rec *r, uint64_t ww, uint64_t rw);

/* A side's word stored (FULL: the handle's full_fences).  The compiler
 * fence makes the compiler load the handle's fields again after it: a
 * caller loads what it needs before. */
static inline void rec_publish(int full, rq_atomic_u64 *word, uint64_t v)
{
    if (full) {
        rq_store_seq_u64(word, v);
    } else {
        rq_store_release_u64(word, v);
        rq_fence_compiler(); /* the waiters load below stays after it */
    }
}

static inline int rec_peer_waits(int full, rq_atomic_u32 *waiters)
{
    return (full ? rq_load_seq_u32(waiters) : rq_load_relaxed_u32(waiters)) != 0;
}

/* ---- shared by records.c, records_burst.c and queue.c ---------------- */

/* MPSC, under the lock: the write word as the last holder left it (other
 * producers move it).  RQ_OK or RQ_ECORRUPT. */
static inline int rec_sync_write(struct rq_rec *r)
{
    uint64_t ww = rq_load_acquire_u64(&r->shm->write_word);
    if (!rec_offset_ok(r, (uint32_t)ww))
        return RQ_ECORRUPT;
    r->w = (uint32_t)ww;
    r->wr_room = 0;
    r->wseq = rec_load_position(&r->shm->write_position, (uint32_t)(ww >> 32), &r->wdue);
    rec_store_position(&r->shm->write_position, &r->wdue, r->wseq); /* a dead holder's */
    return RQ_OK;
}

/* MPSC: how many records the write word may move past WSEQ, its number
 * when the consumer's word was loaded (USED bytes behind it, at most C by
 * the pair's check), with the copy still trusted (rec_read_cache_ok).
 * Trusted, the bytes from the copy to the write word stay below 2C, so
 * their distance modulo 2C is exact and the consumer, at or past the
 * copy, leaves at least the room it shows.  A record takes at most
 * A = max_span bytes; a padding, shorter than A, ends at a multiple of C.
 * K more records keep the bytes below 2C if either
 *  - K < C / A: their records take at most C - A bytes, and two
 *    paddings, their ends C or more apart, have more than that between
 *    them (C less the second padding); so there is at most one, the
 *    bytes are fewer than C, and USED <= C;
 *  - USED + (K + 2) A < 2C: were the bytes to reach 2C, take the first
 *    record that brings them there, the J-th (J <= K).  Before it they
 *    were below 2C, so there are at most three paddings.  With two or
 *    fewer, the bytes are below USED + (J + 2) A.  With three, each of
 *    the two stretches between them holds more than C - A bytes of
 *    records, and J A > 2C - 2A already.
 * (test_records checks both against every small ring exhaustively.)
 * The second keeps the copy through many records when the ring held few
 * bytes at the load. */
static inline void rec_cache_budget(struct rq_rec *r, uint64_t wseq, uint32_t used)
{
    uint32_t budget = r->spans_per_ring;
    uint64_t slack = (uint64_t)r->two_cap - used, reserve = 2 * (uint64_t)r->max_span;
    /* The bytes' bound, if larger: no division on a reload of a full ring. */
    if (slack > reserve + (uint64_t)budget * r->max_span)
        budget = (uint32_t)((slack - reserve + r->max_span - 1) / r->max_span); /* < 2^29 */
    r->read_cache_seq = wseq;
    r->read_cache_records = budget;
}

/* The consumer's word RW, checked against a write cursor at W whose
 * record number is SEQ, as the producer's cache: its offset, and on MPSC
 * the records it stays good for. */
static inline void rec_cache_read(struct rq_rec *r, uint64_t seq, uint32_t w, uint64_t rw)
{
    r->read_cache = (uint32_t)rw;
    r->wr_room = 0; /* set again by the claim (rec_write_room) */
    if (r->lock)
        rec_cache_budget(r, seq, rec_used(r, w, (uint32_t)rw));
}

/* May the cached consumer's word stand in for the real one?  An SPSC
 * producer's always: the consumer only moves forward, and only this
 * producer moves the write word, never more than the capacity past the
 * cache.  An MPSC producer's cache is from an earlier hold of the lock,
 * and other producers may since have moved the write word round the ring
 * any number of times, where the distance modulo 2C says nothing.  So
 * it counts only while the write word has moved fewer records past the
 * load than rec_cache_budget allowed. */
static inline int rec_read_cache_ok(const struct rq_rec *r)
{
    return !r->lock || r->wseq - r->read_cache_seq < r->read_cache_records;
}

/* Room at the write word for NEED more bytes (the wrap's padding
 * counted in NEED by the caller)?  The consumer's word is reloaded if the
 * cache says no, or on MPSC if it cannot be trusted (rec_read_cache_ok).
 * RQ_OK, RQ_EAGAIN, or RQ_ECORRUPT for a pair of words that cannot be
 * true at once. */
static inline int rec_room(struct rq_rec *r, uint32_t need)
{
    if (rec_used(r, r->w, r->read_cache) + need <= r->cap && rec_read_cache_ok(r))
        return RQ_OK;
    uint64_t rw = rq_load_acquire_u64(&r->shm->read_word);
    if (!rec_pair_ok(r, rec_word(r->wseq, r->w), rw))
        return RQ_ECORRUPT;
    rec_cache_read(r, r->wseq, r->w, rw);
    return rec_used(r, r->w, r->read_cache) + need <= r->cap ? RQ_OK : RQ_EAGAIN;
}

/* The producer's word loaded again into the consumer's cache, checked
 * against the consumer's own: RQ_OK if it shows a record at the read
 * offset, RQ_EAGAIN if none, RQ_ECORRUPT (the cache unchanged) for a pair
 * of words that cannot be true at once. */
static inline int rec_reload_write(struct rq_rec *r)
{
    uint64_t ww = rq_load_acquire_u64(&r->shm->write_word);
    if (rec_write_used(r, ww, r->r, (uint32_t)r->rseq) > r->cap)
        return RQ_ECORRUPT;
    r->write_cache = (uint32_t)ww;
    r->rd_room = 0;
    return r->write_cache == r->r ? RQ_EAGAIN : RQ_OK;
}

static inline int rec_reservation_is_ours(const struct rq_rec *r)
{
    return !r->lock || r->reserver == rq_plat_thread_id();
}

/* The claim of one record of LEN with waiting (and MPSC locking): RQ_OK
 * with *PAYLOAD, the record's place in res_data and its padding in
 * res_pad (the padding's header written if it wraps). */
REC_SLOW int rec_claim_wait(struct rq_rec *r, uint32_t len, void **payload, int timeout_ms);
/* The oldest record, waited for: see rec_pop_wait. */
REC_SLOW int rec_pop_slow(struct rq_rec *r, const unsigned char **msg, uint32_t *len,
                          uint32_t *span, int timeout_ms);
/* The record at offset OFF of the ring with AVAIL published bytes, checked
 * as the consumer checks: RQ_OK with *E (but seq) and *SPAN. */
int rec_at(const struct rq_rec *r, uint32_t off, uint32_t avail, rq_record_entry *e,
           uint32_t *span);
/* The bytes of the K oldest records (K >= 1, all published), checked as
 * the consumer checks them: RQ_OK with *SPAN, or RQ_ECORRUPT. */
int rec_spans(struct rq_rec *r, uint32_t k, uint32_t *span);
/* Marks the records below SEQ handed out, before the hand-over. */
void rec_mark_delivered(struct rq_rec *r, uint64_t seq);

/* The bytes of the COUNT oldest peeked records as rq_peek_burst cached
 * them, if the cache holds them and the oldest is the record it left off
 * at: 1 with *TOTAL, the cache then past them.  Else 0, and the cache is
 * dropped (the caller reads the headers again: rec_spans). */
static inline int rec_burst_take(struct rq_rec *r, uint32_t count, uint32_t *total)
{
    uint32_t i = r->burst_next; /* <= burst_n */
    if (r->rseq != r->burst_seq || count > r->burst_n - i) {
        r->burst_n = r->burst_next = 0;
        return 0;
    }
    *total = r->burst_ends[i + count - 1] - (i ? r->burst_ends[i - 1] : 0);
    r->burst_next = i + count;
    r->burst_seq = r->rseq + count;
    return 1;
}

/* An SPSC producer's room at the write offset from its cached view:
 * the bytes before the ring's end and within the room the consumer's
 * cached word leaves (both checked: the cache passed rec_pair_ok and
 * each publish stayed in the room), into wr_room and wr_ptr.  0 on
 * MPSC, whose cache counts only under rec_read_cache_ok. */
static inline void rec_write_room(struct rq_rec *r)
{
    if (r->lock)
        return; /* 0 since rec_sync_write */
    uint32_t at = rec_index(r, r->w), used = rec_used(r, r->w, r->read_cache);
    uint32_t tail = r->cap - at, room = used <= r->cap ? r->cap - used : 0;
    r->wr_room = tail < room ? tail : room;
    r->wr_ptr = r->data + at;
}

/* A publish of ADV bytes from the write offset on (padding included):
 * the room left after them, or none if they were not inside it (a wrap:
 * the next claim sets it again). */
static inline void rec_write_room_take(struct rq_rec *r, uint32_t adv)
{
    if (adv <= r->wr_room) {
        r->wr_room -= adv;
        r->wr_ptr += adv;
    } else {
        r->wr_room = 0;
    }
}

/* The common case without a call: an SPSC producer whose cached view
 * shows room for SPAN bytes at the write offset, before the end of the
 * ring (wr_room).  Anything else (a wrap, a full cache) goes the long
 * way, which checks again; so does every MPSC claim, as an MPSC handle's
 * wr_room is always 0 (rec_write_room). */
static inline int rec_fits_at(const struct rq_rec *r, uint32_t span)
{
    return span <= r->wr_room;
}

/* The claim of a record of LEN at the write offset, inside the room
 * (rec_fits_at said so): no padding, its payload at wr_ptr's. */
static inline void rec_claim_in_room(struct rq_rec *r, uint32_t len, void **payload)
{
    RQ_CRASH_POINT(PUSH_AFTER_CLAIM);
    r->res_len = len;
    r->res_pad = 0;
    r->res_data = rec_index(r, r->w);
    *payload = r->wr_ptr + RQ_RECORD_HEADER; /* = r->data + res_data while wr_room > 0 */
}

/* The claim of one record of LEN: without a call if rec_fits_at says so
 * (its place kept in the res_* fields), else rec_claim_wait's.  RQ_OK
 * with *PAYLOAD. */
static inline int rec_claim_fast(struct rq_rec *r, uint32_t len, void **payload, int timeout_ms)
{
    if (rec_fits_at(r, rec_span(len))) {
        rec_claim_in_room(r, len, payload);
        return RQ_OK;
    }
    return rec_claim_wait(r, len, payload, timeout_ms);
}

/* LEN payload bytes in records of at most LONGEST, PAD of padding. */
static inline void rec_count_bytes(struct rq_rec_shm *shm, uint64_t len, uint32_t pad,
                                   uint32_t longest)
{
    if (pad)
        rq_store_relaxed_u64(&shm->bytes.padding_bytes,
                             rq_load_relaxed_u64(&shm->bytes.padding_bytes) + pad);
    rq_store_relaxed_u64(&shm->bytes.payload_bytes,
                         rq_load_relaxed_u64(&shm->bytes.payload_bytes) + len);
    if (longest > rq_load_relaxed_u64(&shm->bytes.largest))
        rq_store_relaxed_u64(&shm->bytes.largest, longest);
}

/* The consumer's room at its read offset RD, AVAIL the bytes published
 * there (by the cached write word, checked against the read word when
 * loaded: at most C apart): the bytes before the ring's end and up to
 * the word, into rd_room and rd_ptr. */
static inline uint32_t rec_read_room(struct rq_rec *r, uint32_t rd, uint32_t avail)
{
    uint32_t at = rec_index(r, rd);
    uint32_t tail = r->cap - at, room = avail < tail ? avail : tail;
    r->rd_room = room;
    r->rd_ptr = r->data + at;
    return room;
}

/* A plain record at rd_ptr inside ROOM, the consumer's room (not 0):
 * 1 with *MSG, *LEN and *SPAN; 0 for padding, a header to check the long
 * way, or a record past the room. */
static inline int rec_pop_in_room(const struct rq_rec *r, uint32_t room, const unsigned char **msg,
                                  uint32_t *len, uint32_t *span)
{
    const unsigned char *p = r->rd_ptr;
    uint32_t n = rq_rec_data_len(p);
    if (n > r->max) /* padding, or corrupt */
        return 0;
    uint32_t s = rec_span(n); /* no overflow: n <= max < 2^30 */
    if (s > room)             /* past the ring's end or the write word */
        return 0;
    *msg = p + RQ_RECORD_HEADER;
    *len = n;
    *span = s;
    return 1;
}

/* The consumer, on finding no record at r again: asks for the lines of
 * the next one's header and of the 60 bytes after it, for reading, as the
 * slot ring's rq_ring_prefetch_next_read does and for its reasons.  A
 * hint: nothing is read.  AT is where the record will start, data +
 * rec_index(r, r->r) (rd_ptr once rec_read_room has set it); the second
 * address may lie past the ring's end, so it is made as an integer, not
 * by pointer arithmetic past the object (a prefetch of any address is
 * harmless). */
static inline void rec_prefetch_next_read(struct rq_rec *r, const unsigned char *at)
{
    if (r->empty_at == r->r) {
        rq_prefetch_read(at);
        rq_prefetch_read((const void *)((uintptr_t)at + 63));
    }
    r->empty_at = r->r;
}

/* The consumer's room (rd_room), set again when it is 0 from the cached
 * write word, reloaded first if the consumer has read all it showed (as
 * the slot ring's pop does).  A consumer that keeps up with its producer
 * does this on nearly every pop: record_pop_refill and record_peek_refill
 * keep it a short way, out of the common path.  0 if nothing is
 * published or the word fails its check (the long way says which). */
static inline uint32_t rec_pop_room(struct rq_rec *r)
{
    uint32_t room = r->rd_room;
    if (room == 0) {
        uint32_t rd = r->r, avail;
        if (rd == r->write_cache) { /* rec_reload_write, its bytes kept for the room */
            uint64_t ww = rq_load_acquire_u64(&r->shm->write_word);
            avail = rec_write_used(r, ww, rd, (uint32_t)r->rseq);
            if (avail > r->cap)
                return 0; /* the cache unchanged: the long way reports it */
            r->write_cache = (uint32_t)ww;
        } else {
            avail = rec_used(r, r->write_cache, rd);
        }
        room = rec_read_room(r, rd, avail);
        if (room == 0)
            rec_prefetch_next_read(r, r->rd_ptr);
    }
    return room;
}

/* A plain record inside the room the handle keeps, without the reload:
 * 1 as rec_pop_ready; 0 for anything else. */
static inline int rec_pop_cached(const struct rq_rec *r, const unsigned char **msg, uint32_t *len,
                                 uint32_t *span)
{
    uint32_t room = r->rd_room;
    return room != 0 && rec_pop_in_room(r, room, msg, len, span);
}

/* The common case without a wait: a plain record at the read offset,
 * inside the consumer's room (rec_pop_room).  1 with *MSG, *LEN and
 * *SPAN; else 0 (nothing published, padding, or a word or header to
 * check the long way: rec_pop_slow). */
static inline int rec_pop_ready(struct rq_rec *r, const unsigned char **msg, uint32_t *len,
                                uint32_t *span)
{
    uint32_t room = rec_pop_room(r);
    return room != 0 && rec_pop_in_room(r, room, msg, len, span);
}

static inline int rec_pop_wait(struct rq_rec *r, const unsigned char **msg, uint32_t *len,
                               uint32_t *span, int timeout_ms)
{
    if (rec_pop_ready(r, msg, len, span))
        return RQ_OK;
    return rec_pop_slow(r, msg, len, span, timeout_ms);
}

/* rec_release once a producer waits: out of line, and RQ_OK, so that a
 * release reaches it by a tail call and saves no registers for it. */
REC_COLD int rec_wake_waiting_producers(struct rq_rec *r, uint32_t old_read);

/* rec_release with FULL, the handle's full_fences, a constant in each of
 * its two inline copies (rec_release): one test of the flag on the path,
 * not one for the publish and one for the waiters load. */
static REC_FLATTEN int rec_release_as(struct rq_rec *r, uint32_t span, uint32_t k, int full)
{
    struct rq_rec_shm *shm = r->shm;
    uint32_t old = r->r;
    uint64_t seq = r->rseq + k;
    r->r = rec_advance(r, old, span);
    r->rseq = seq;
    rec_publish(full, &shm->read_word, rec_word(seq, r->r));
    RQ_CRASH_POINT(RELEASE_BEFORE_POSITION);
    rec_store_position(&shm->read_position, &r->rdue, seq);
    RQ_CRASH_POINT(RELEASE_AFTER_PUBLISH);
    if (rec_peer_waits(full, &shm->space_event.waiters))
        return rec_wake_waiting_producers(r, old);
    return RQ_OK;
}

/* rec_release once the room (rd_room) is taken care of. */
static inline int rec_release_kept(struct rq_rec *r, uint32_t span, uint32_t k)
{
    return r->full_fences ? rec_release_as(r, span, k, 1) : rec_release_as(r, span, k, 0);
}

/* A release of SPAN bytes from the read offset on (padding included):
 * the room left after them, or none if they were not all inside it. */
static inline void rec_read_room_take(struct rq_rec *r, uint32_t span)
{
    uint32_t room = r->rd_room;
    if (span <= room) {
        r->rd_room = room - span;
        r->rd_ptr += span;
    } else {
        r->rd_room = 0;
    }
}

/* Frees the K oldest records, SPAN bytes with their padding, in one store.
 * RQ_OK. */
static inline int rec_release(struct rq_rec *r, uint32_t span, uint32_t k)
{
    rec_read_room_take(r, span);
    return rec_release_kept(r, span, k);
}

/* Publishes K records (K >= 1) written beyond the word, up to offset END,
 * with one store of the word (FULL: the handle's full_fences; SHM its
 * segment, both loaded before: the store's fence makes the compiler load
 * fields again after it); then the position and the statistics (BYTES of
 * payload in records of at most LONGEST, PAD of padding).  The caller
 * unlocks (MPSC) and checks for a waiting consumer. */
static inline void rec_publish_word(struct rq_rec *r, struct rq_rec_shm *shm, int full,
                                    uint32_t end, uint32_t k, uint64_t bytes, uint32_t pad,
                                    uint32_t longest)
{
    uint64_t seq = r->wseq + k;
    r->w = end;
    r->wseq = seq;
    rec_publish(full, &shm->write_word, rec_word(seq, end));
    RQ_CRASH_POINT(PUSH_BEFORE_POSITION);
    rec_store_position(&shm->write_position, &r->wdue, seq);
    RQ_CRASH_POINT(PUSH_AFTER_PUBLISH);
    rec_count_bytes(shm, bytes, pad, longest);
}

/* rec_publish_records' wake check once the consumer waits: out of line,
 * and RQ_OK, so that an SPSC push reaches it by a tail call. */
REC_COLD int rec_wake_waiting_consumer(struct rq_rec *r);

/* rec_publish_word, then the MPSC unlock and one wake check; FULL a
 * constant in each of rec_publish_records' two copies. */
static REC_FLATTEN void rec_publish_records_as(struct rq_rec *r, uint32_t end, uint32_t adv,
                                               uint32_t k, uint64_t bytes, uint32_t pad,
                                               uint32_t longest, int full)
{
    struct rq_rec_shm *shm = r->shm;
    struct rq_mpsc *lock = r->lock;
    if (!lock)
        rec_write_room_take(r, adv); /* MPSC: 0, as rec_sync_write left it */
    rec_publish_word(r, shm, full, end, k, bytes, pad, longest);
    if (lock) {
        r->pushed = 1;
        rq_mpsc_unlock(lock);
    }
    if (rec_peer_waits(full, &shm->data_event.waiters))
        rq_queue_wake_consumer(r->q);
}

/* ADV: the bytes from the write offset to END (padding included): what
 * the SPSC room (wr_room) loses. */
static inline void rec_publish_records(struct rq_rec *r, uint32_t end, uint32_t adv, uint32_t k,
                                       uint64_t bytes, uint32_t pad, uint32_t longest)
{
    if (r->full_fences)
        rec_publish_records_as(r, end, adv, k, bytes, pad, longest, 1);
    else
        rec_publish_records_as(r, end, adv, k, bytes, pad, longest, 0);
}

/* ---- single records: the public calls' bodies ----------------------- */

/* Inline in queue.c's record_* functions, one for each single-message
 * call (rq_push, rq_reserve and rq_reserve_len, rq_commit, rq_pop and
 * rq_pop_info, rq_peek and rq_peek_info, rq_release) on a record queue,
 * which the public call jumps to after its checks; rq_push's, rq_pop's
 * and rq_peek's common cases (rec_push_fits and rec_push_short,
 * rec_pop_ready and rec_pop_copy, rec_peek_fast; a record longer than
 * RQ_COPY_SHORT copied out of line, record_push_copy and
 * record_pop_copy) there, their long ways
 * (rec_push_one, rec_pop_one, rec_peek_one) in the record_*_wait
 * functions they tail-call.  What waits, wraps or reloads the consumer's
 * word stays out of line (rec_claim_wait, rec_pop_slow; a consumer
 * reloads the write word inline, rec_reload_write), and so do the wake
 * after a release (rec_wake_waiting_producers) and the release of a
 * burst's record that rq_peek has not looked at again
 * (rec_release_unlooked). */

/* rq_release of a peeked burst's record that rq_peek has not looked at
 * again: its span as rq_peek_burst checked it, or read (and checked)
 * there. */
REC_COLD int rec_release_unlooked(struct rq_rec *r);

/* Writes the header of the record of LEN claimed at index AT, PAD bytes
 * of padding before it (written already), and publishes both in one
 * store. */
static inline void rec_publish_at(struct rq_rec *r, uint32_t at, uint32_t pad, uint32_t len)
{
    uint32_t adv = pad + rec_span(len);
    rq_rec_put_header(r->data + at, RQ_REC_DATA, len);
    rec_publish_records(r, rec_advance(r, r->w, adv), adv, 1, len, pad, len);
}

/* rq_push's common case, without a call (its caller checked the
 * message): a length that fits, no reservation held, and room by
 * rec_fits_at.  1: the record's place is wr_ptr, claimed;
 * 0 claims nothing (rec_push_one then checks, waits or wraps). */
static inline int rec_push_fits(const struct rq_rec *r, size_t len)
{
    /* The room first: an MPSC handle's is 0, so that its pushes, which
     * all go the long way, leave after one test (the span of a length cut
     * to 32 bits is only a guess until the test of LEN passes). */
    return rec_fits_at(r, rec_span((uint32_t)len)) && !r->reserved && len <= r->max;
}

/* rq_push's common case once rec_push_fits claimed the place at wr_ptr
 * (no padding, SPSC): a short record's copy without a call, its publish,
 * and the wake check by a tail call, so that the path saves no
 * registers.  RQ_OK. */
static REC_FLATTEN int rec_push_short_as(struct rq_rec *r, const void *msg, uint32_t len, int full)
{
    struct rq_rec_shm *shm = r->shm;
    unsigned char *p = r->wr_ptr;
    rq_copy_short(p + RQ_RECORD_HEADER, msg, len);
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    rq_rec_put_header(p, RQ_REC_DATA, len);
    uint32_t span = rec_span(len);
    r->wr_room -= span; /* rec_push_fits: span <= wr_room */
    r->wr_ptr = p + span;
    rec_publish_word(r, shm, full, rec_advance(r, r->w, span), 1, len, 0, len);
    if (rec_peer_waits(full, &shm->data_event.waiters))
        return rec_wake_waiting_consumer(r);
    return RQ_OK;
}

/* The same, with the handle's full_fences a constant in each copy (as
 * rec_release). */
static inline int rec_push_short(struct rq_rec *r, const void *msg, uint32_t len)
{
    return r->full_fences ? rec_push_short_as(r, msg, len, 1) : rec_push_short_as(r, msg, len, 0);
}

/* Copies the record of LEN claimed at index AT, PAD bytes of padding
 * before it, and publishes it. */
static inline void rec_push_at(struct rq_rec *r, uint32_t at, uint32_t pad, const void *msg,
                               uint32_t len)
{
    rq_copy(r->data + at + RQ_RECORD_HEADER, msg, len);
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    rec_publish_at(r, at, pad, len);
}

/* rq_push on a record queue the long way, once rec_push_fits said no
 * (MSG checked by the caller): the errors, or the claim with waiting,
 * wrapping and the MPSC lock. */
static inline int rec_push_one(struct rq_rec *r, const void *msg, size_t len, int timeout_ms)
{
    if (r->reserved)
        return RQ_ESTATE;
    if (len > r->max)
        return RQ_EMSGSIZE;
    void *payload;
    int rc = rec_claim_wait(r, (uint32_t)len, &payload, timeout_ms);
    if (rc < 0)
        return rc;
    rec_push_at(r, r->res_data, r->res_pad, msg, (uint32_t)len);
    return RQ_OK;
}

/* rq_reserve / rq_reserve_len on a record queue (SLOT checked by the
 * caller): the reservation this thread holds, if LEN still fits it, or a
 * claim of LEN bytes. */
static inline int rec_reserve_one(struct rq_rec *r, size_t len, void **slot, int timeout_ms)
{
    if (len > r->max)
        return RQ_EMSGSIZE;
    if (r->reserved) {
        if (!rec_reservation_is_ours(r) || len > r->res_len)
            return RQ_ESTATE;
        *slot = r->data + r->res_data + RQ_RECORD_HEADER;
        return RQ_OK;
    }
    int rc = rec_claim_fast(r, (uint32_t)len, slot, timeout_ms);
    if (rc < 0)
        return rc;
    r->reserved = 1;
    r->res_count = 1;
    if (r->lock)
        r->reserver = rq_plat_thread_id();
    return RQ_OK;
}

/* rq_reserve_len's common case without a call (SLOT checked by the
 * caller): no reservation held, LEN within the largest, and room at the
 * write offset by rec_fits_at: an SPSC producer's only, as an MPSC
 * handle's wr_room is 0 (its reservations keep the lock: the long way).
 * 1 with the claim made as rec_reserve_one makes it; 0 claims nothing. */
static inline int rec_reserve_fast(struct rq_rec *r, size_t len, void **slot)
{
    if (r->reserved || len > r->max || !rec_fits_at(r, rec_span((uint32_t)len)))
        return 0;
    rec_claim_in_room(r, (uint32_t)len, slot);
    r->reserved = 1;
    r->res_count = 1;
    return 1;
}

/* rq_commit's common case on an SPSC producer (its caller checked: no
 * lock, a reservation held, LEN within it), as rec_commit_one does it,
 * with FULL a constant: the header and the publish without a call, the
 * wake check by a tail call.  RQ_OK. */
static REC_FLATTEN int rec_commit_spsc_as(struct rq_rec *r, uint32_t len, int full)
{
    struct rq_rec_shm *shm = r->shm;
    uint32_t pad = r->res_pad, adv = pad + rec_span(len);
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    r->reserved = 0;
    rq_rec_put_header(r->data + r->res_data, RQ_REC_DATA, len); /* the claim's place */
    rec_write_room_take(r, adv);
    rec_publish_word(r, shm, full, rec_advance(r, r->w, adv), 1, len, pad, len);
    if (rec_peer_waits(full, &shm->data_event.waiters))
        return rec_wake_waiting_consumer(r);
    return RQ_OK;
}

static inline int rec_commit_spsc(struct rq_rec *r, uint32_t len)
{
    return r->full_fences ? rec_commit_spsc_as(r, len, 1) : rec_commit_spsc_as(r, len, 0);
}

static inline int rec_commit_one(struct rq_rec *r, size_t len)
{
    if (!r->reserved || !rec_reservation_is_ours(r))
        return RQ_ESTATE;
    if (len > r->res_len)
        return RQ_EMSGSIZE;
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    r->reserved = 0;
    rec_publish_at(r, r->res_data, r->res_pad, (uint32_t)len); /* the claim's place */
    return RQ_OK;
}

/* The copy of the oldest record, MSG/N (SPAN bytes with its header),
 * into BUF, which holds it; its number into INFO (if not NULL), its
 * release.  RQ_OK. */
static inline int rec_pop_copy(struct rq_rec *r, void *buf, rq_msg_info *info,
                               const unsigned char *msg, uint32_t n, uint32_t span)
{
    rq_copy(buf, msg, n); /* short: no call, and the path saves no registers */
    rq_msg_info_fill(info, r->rseq, r->rseq < r->redeliver_below);
    RQ_CRASH_POINT(POP_AFTER_COPY);
    return rec_release(r, span, 1);
}

/* rec_pop_take of a record that rec_pop_in_room found inside ROOM: its
 * bytes come off the room without a test.  FAST: the caller knows the
 * handle has no full fences (a fast handle's: queue.c), so that the
 * release does not test the flag. */
static inline int rec_pop_take_in_room(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                                       rq_msg_info *info, const unsigned char *msg, uint32_t n,
                                       uint32_t span, uint32_t room, int fast)
{
    *len = n;
    if (n > cap)
        return RQ_EMSGSIZE;   /* left in place, its room as it was */
    r->rd_room = room - span; /* span <= room: rec_pop_in_room */
    r->rd_ptr = msg - RQ_RECORD_HEADER + span;
    rq_copy(buf, msg, n);
    rq_msg_info_fill(info, r->rseq, r->rseq < r->redeliver_below);
    RQ_CRASH_POINT(POP_AFTER_COPY);
    return fast ? rec_release_as(r, span, 1, 0) : rec_release_kept(r, span, 1);
}

/* A pop of the oldest record, MSG/N (SPAN bytes with its header), found
 * at the read offset: rec_pop_copy into BUF (CAP bytes) if it fits; a
 * record longer than CAP is left in place (RQ_EMSGSIZE, *LEN its
 * length). */
static inline int rec_pop_take(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                               rq_msg_info *info, const unsigned char *msg, uint32_t n,
                               uint32_t span)
{
    *len = n;
    if (n > cap)
        return RQ_EMSGSIZE; /* left in place */
    return rec_pop_copy(r, buf, info, msg, n, span);
}

/* rq_pop and rq_pop_info on a record queue the long way (BUF, CAP and
 * LEN checked by the caller), once the common case did not take a
 * record: a peek holds one (RQ_ESTATE), or rec_pop_ready found none it
 * could take at once.  Straight to rec_pop_slow, which reloads the write
 * word if the cached one has nothing more, checks the header the long
 * way (padding, a corrupt one) and waits as allowed. */
static inline int rec_pop_one(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                              rq_msg_info *info, int timeout_ms)
{
    if (r->peeked)
        return RQ_ESTATE;
    const unsigned char *msg;
    uint32_t n, span;
    int rc = rec_pop_wait(r, &msg, &n, &span, timeout_ms);
    if (rc < 0)
        return rc;
    return rec_pop_take(r, buf, cap, len, info, msg, n, span);
}

/* The oldest record, found at the read offset, handed out by a peek. */
static inline void rec_peek_hold(struct rq_rec *r, const unsigned char *msg, uint32_t len,
                                 uint32_t span)
{
    r->peek_msg = msg;
    r->peek_len = len;
    r->peek_span = span;
    /* No mark: a single peek holds the oldest record, which the successor
     * of a consumer killed now flags (rq_rec_flag_oldest). */
    r->peek_valid = 1;
    if (!r->peeked)
        r->peeked = 1;
    RQ_CRASH_POINT(PEEK_HANDED_OUT);
}

/* What a peek returns once a record is held. */
static inline void rec_peek_give(const struct rq_rec *r, const void **msg, size_t *len,
                                 rq_msg_info *info)
{
    *msg = r->peek_msg;
    *len = r->peek_len;
    /* The record peeked is the oldest, and redeliver_below moves only at
     * takeover: both read now as they were at the peek. */
    rq_msg_info_fill(info, r->rseq, r->rseq < r->redeliver_below);
}

/* rq_peek's common case, without a call (MSG and LEN checked by the
 * caller): the record already held, or a plain record ready at the read
 * offset (rec_pop_ready).  1 if it was handed out; 0 holds nothing (the
 * copy of the write word may be fresher), for rec_peek_one, which waits.
 * Its caller then tail-calls the long way, so that this path saves no
 * registers for a call. */
static inline int rec_peek_fast(struct rq_rec *r, const void **msg, size_t *len, rq_msg_info *info,
                                int reload)
{
    if (!r->peek_valid) { /* none peeked, or the rest of a burst */
        const unsigned char *m;
        uint32_t n, span;
        if (!(reload ? rec_pop_ready(r, &m, &n, &span) : rec_pop_cached(r, &m, &n, &span)))
            return 0;
        rec_peek_hold(r, m, n, span);
    }
    rec_peek_give(r, msg, len, info);
    return 1;
}

/* rq_peek_info on a record queue the long way, once rec_peek_fast said no
 * (MSG and LEN checked by the caller): nothing held and nothing it could
 * take at once, so straight to rec_pop_slow, as rec_pop_one. */
static inline int rec_peek_one(struct rq_rec *r, const void **msg, size_t *len, rq_msg_info *info,
                               int timeout_ms)
{
    const unsigned char *m;
    uint32_t n, span;
    int rc = rec_pop_wait(r, &m, &n, &span, timeout_ms);
    if (rc < 0)
        return rc;
    rec_peek_hold(r, m, n, span);
    rec_peek_give(r, msg, len, info);
    return RQ_OK;
}

static inline int rec_release_one(struct rq_rec *r)
{
    if (!r->peeked)
        return RQ_ESTATE;
    if (!r->peek_valid)
        return rec_release_unlooked(r);
    RQ_CRASH_POINT(RELEASE_BEFORE_PUBLISH);
    r->peeked--;       /* a burst's rest stays peeked */
    r->peek_valid = 0; /* peek_* now stale, read only once set again */
    return rec_release(r, r->peek_span, 1);
}

#endif /* RQ_RECORDS_IMPL_H */
