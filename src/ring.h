/*
 * ring.h - the lock-free double-range ring, OS-neutral.
 *
 * Offsets run over [0, 2N) for N slots; offset x and x + N name the same
 * slot.  write == read is empty, write - read == N (mod 2N) is full, so all
 * N slots are usable and no slot is wasted to tell the two apart.
 *
 * Each side owns one offset and keeps a private copy of it plus a cached
 * copy of the peer's, re-reading the shared one only when the cache says
 * full (producer) or empty (consumer).  Every offset and length read from
 * the segment is range-checked: a bad one is RQ_ECORRUPT, never an index.
 */
#ifndef RQ_RING_H
#define RQ_RING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "crashpoint.h"
#include "layout.h"
#include "rq.h"

/* The branch the compiler should lay out as the straight path. */
#if defined(__GNUC__)
#define RQ_RING_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define RQ_RING_LIKELY(x) (x)
#endif

struct rq_ring {
    struct rq_shm *shm;
    unsigned char *slots;
    uint32_t n;          /* slot count */
    uint32_t two_n;      /* offset range */
    uint32_t stride;     /* bytes per slot */
    uint32_t hint_last;  /* min(stride - 1, 64): the second byte a consumer's
                            hint asks for (rq_ring_prefetch_next_read) */
    size_t slot_size;    /* as wide as a length: compared with one (a push's, a
                            slot's as a pop loads it) with no widening move */
    int full_fences;     /* RQ_FULL_FENCES: publish with a full fence */
    uint32_t write_mask; /* P - 1 (rq_ring_stop); 0 for MPSC */
    uint32_t read_mask;
    /* producer side */
    uint32_t write;               /* next offset to publish */
    uint32_t write_stop;          /* rq_ring_stop(write): where a publish does more */
    uint32_t read_cache;          /* last read_offset seen */
    uint32_t write_full;          /* read_cache + N mod 2N: `write` there is full
                                     by the cache (SPSC; rq_ring_set_read_cache) */
    uint64_t write_base;          /* the sequence number of offset 0 in `write`'s
                                     lap: `write` is number write_base + write */
    uint64_t read_cache_pos;      /* MPSC: read_cache as a sequence number, or
                                     UINT64_MAX before the first look */
    unsigned char *write_payload; /* rq_ring_slot(write) + RQ_SLOT_HEADER,
                                     kept where write_mask is not 0 (SPSC,
                                     N >= 2; N = 1: the one slot's); an
                                     MPSC producer looks its slot up */
    /* consumer side */
    uint32_t read;               /* next offset to consume */
    uint32_t read_stop;          /* rq_ring_stop(read) */
    uint32_t write_cache;        /* last write_offset seen */
    uint32_t empty_at;           /* `read` when a look last found the ring
                                    empty (rq_ring_pop_begin's hint) */
    uint64_t read_base;          /* `read` is number read_base + read */
    unsigned char *read_payload; /* rq_ring_slot(read) + RQ_SLOT_HEADER, as
                                    write_payload */
    uint64_t delivered;          /* the mark: one past the last message a burst
                                    handed out, or that may have been handed out
                                    before this handle opened */
    uint64_t redeliver_below;    /* positions below: maybe handed out before
                                    this handle opened (a dead consumer) */
};

/* The sequence number whose offset is OFF, given STORED, a copy of it that
 * lags by less than 2N: the first value >= STORED congruent to OFF mod 2N.
 * OFF < 2N was checked.  Not on the per-message path (a 64-bit division). */
static inline uint64_t rq_ring_position(const struct rq_ring *r, uint64_t stored, uint32_t off)
{
    uint32_t stored_off = (uint32_t)(stored % r->two_n);
    uint32_t ahead = off >= stored_off ? off - stored_off : off + r->two_n - stored_off;
    return stored + ahead;
}

/* Where a single publish from OFF on next has more to do than move the
 * offset on: the next multiple of P after OFF (MASK = P - 1: the position
 * is due, rq_ring_stopped), N (the slots wrap: the side's slot pointer
 * restarts; a multiple of P too when N is a power of two) or 2N (the lap
 * ends: the offset wraps to 0, which is a multiple of P too), whichever
 * comes first.  Offsets that
 * are multiples of P are at most P apart, the wrap included, so the stored
 * copy lags by at most P - 1 single messages.  One compare per message
 * tests the wrap and the period at once: a single push or release costs
 * no instruction more for its sequence number than the ring without. */
static inline uint32_t rq_ring_stop(const struct rq_ring *r, uint32_t off, uint32_t mask)
{
    uint32_t next = (off | mask) + 1;
    if (off < r->n && next > r->n)
        return r->n;
    return next < r->two_n ? next : r->two_n;
}

static inline unsigned char *rq_ring_slot(const struct rq_ring *r, uint32_t off)
{
    uint32_t index = off < r->n ? off : off - r->n;
    return r->slots + (size_t)index * r->stride;
}

/* The sequence numbers of `write` and `read`. */
static inline uint64_t rq_ring_write_pos(const struct rq_ring *r)
{
    return r->write_base + r->write;
}

static inline uint64_t rq_ring_read_pos(const struct rq_ring *r)
{
    return r->read_base + r->read;
}

/* Moves `write` to OFF (< 2N), whose sequence number is POS (congruent to
 * OFF mod 2N, as rq_ring_position makes it): at open and after a burst. */
static inline void rq_ring_set_write(struct rq_ring *r, uint32_t off, uint64_t pos)
{
    r->write = off;
    r->write_base = pos - off;
    r->write_stop = rq_ring_stop(r, off, r->write_mask);
    r->write_payload = rq_ring_slot(r, off) + RQ_SLOT_HEADER;
}

static inline void rq_ring_set_read(struct rq_ring *r, uint32_t off, uint64_t pos)
{
    r->read = off;
    r->read_base = pos - off;
    r->read_stop = rq_ring_stop(r, off, r->read_mask);
    r->read_payload = rq_ring_slot(r, off) + RQ_SLOT_HEADER;
}

/* OFF moved on by K <= N slots. */
static inline uint32_t rq_ring_advance(const struct rq_ring *r, uint32_t off, uint32_t k)
{
    uint32_t next = off + k;
    return next >= r->two_n ? next - r->two_n : next;
}

/* Messages between READ and WRITE, both already known to be < 2N. */
static inline uint32_t rq_ring_distance(const struct rq_ring *r, uint32_t write, uint32_t read)
{
    return write >= read ? write - read : write + r->two_n - read;
}

static inline int rq_ring_pair_ok(const struct rq_ring *r, uint32_t write, uint32_t read)
{
    return write < r->two_n && read < r->two_n && rq_ring_distance(r, write, read) <= r->n;
}

/* The producer's copy of read_offset, RD, checked against `write` (at most
 * N apart), and where `write` would be full by it.  An SPSC producer's
 * `write` then stays at most N ahead of read_cache (it moves only into
 * room the cache shows), so "distance >= N" is "write == write_full". */
static inline void rq_ring_set_read_cache(struct rq_ring *r, uint32_t rd)
{
    r->read_cache = rd;
    r->write_full = rq_ring_advance(r, rd, r->n);
}

/* Sets up the local view of SHM from H, the copy of its header that was
 * validated at open (never from the shared header, which a peer may
 * rewrite after the check). */
void rq_ring_attach(struct rq_ring *r, struct rq_shm *shm, const struct rq_shm_header *h);

/* Loads both shared offsets into the local copies; RQ_ECORRUPT if they are
 * out of range or further apart than N.  The role's holder then calls
 * rq_ring_anchor. */
int rq_ring_load(struct rq_ring *r);

/* Consumer, at open, after rq_ring_load, when the last consumer died
 * without closing: it may have been holding the oldest message from a
 * single peek, which stores no mark (the peek's fast path makes no store
 * for it), so the oldest message, if there is one, is flagged, and the
 * mark moved past it is stored.  At most that one message is flagged
 * without having been handed out. */
void rq_ring_flag_oldest(struct rq_ring *r);

/* Producer: free slots as the cache sees them.  An MPSC producer's cache
 * is from an earlier hold of the lock, since when other producers may have
 * gone round the ring: it counts only while its 64-bit position says that
 * WRITE is less than N ahead of it (the consumer only moves forward, so the
 * true room is at least that). */
static inline uint32_t rq_ring_cached_room(const struct rq_ring *r, int shared_write)
{
    if (!shared_write)
        return r->n - rq_ring_distance(r, r->write, r->read_cache);
    uint64_t write_pos = rq_ring_write_pos(r);
    if (r->read_cache_pos > write_pos || write_pos - r->read_cache_pos >= r->n ||
        rq_ring_distance(r, r->write, r->read_cache) != write_pos - r->read_cache_pos)
        return 0;
    return r->n - (uint32_t)(write_pos - r->read_cache_pos);
}

/* Stores a recovered position back when its stored copy lagged: after a
 * holder killed between publishing an offset and storing the position,
 * and also after a clean close, since single messages store the position
 * only once per period (rq_ring_stop: up to P - 1 of them left
 * unstored).  The recovery needs a lag below 2N, and lags left by holder
 * after holder would otherwise add up.  Only the side that owns the copy
 * calls these (MPSC: under the producers' lock). */
static inline void rq_ring_anchor_write(struct rq_ring *r, uint64_t stored)
{
    if (stored != rq_ring_write_pos(r))
        rq_store_release_u64(&r->shm->write_position, rq_ring_write_pos(r)); /* as stopped */
}

void rq_ring_anchor(struct rq_ring *r, int producer);

/* Producer: room for one more message?  RQ_OK with *PAYLOAD pointing at the
 * free slot's payload, RQ_EAGAIN if full, RQ_ECORRUPT on a bad read offset.
 * SHARED_WRITE: other producers may have moved write_offset (MPSC, called
 * under the producers' lock), so it is re-read. */
/* Producer: re-reads write_offset (MPSC, under the producers' lock: other
 * producers move it).  RQ_ECORRUPT if out of range. */
static inline int rq_ring_sync_write(struct rq_ring *r)
{
    uint32_t w = rq_load_acquire_u32(&r->shm->write_offset);
    if (w >= r->two_n)
        return RQ_ECORRUPT;
    /* Other producers may have gone since our last push (and died before
     * storing write_position): extend W from the stored copy.  Cheaply,
     * without rq_ring_position's division, when that copy is still ours,
     * or when it is the number GUESS that ours gives W (W less than a lap
     * ahead of our last push, and the last holder stored its number after
     * publishing W: the usual case after another producer's push).  GUESS
     * is congruent to W mod 2N, so for a copy equal to it rq_ring_position
     * would return GUESS too: the result is the same either way. */
    uint64_t stored = rq_load_relaxed_u64(&r->shm->write_position);
    uint64_t write_pos = rq_ring_write_pos(r);
    uint64_t guess = write_pos + rq_ring_distance(r, w, r->write);
    write_pos = stored == write_pos || stored == guess ? guess : rq_ring_position(r, stored, w);
    r->write = w;
    r->write_base = write_pos - w;
    r->write_stop = w + 1; /* rq_ring_stop with an MPSC write mask, 0 */
    rq_ring_anchor_write(r, stored);
    return RQ_OK;
}

/* SPSC producer: does the cache show room?  Then *PAYLOAD is the free
 * slot's payload; if not, rq_ring_push_begin re-reads read_offset.  A fast
 * path that calls this and leaves the re-read out of line saves no
 * registers for it. */
static inline int rq_ring_push_cached(const struct rq_ring *r, void **payload)
{
    if (r->write == r->write_full)
        return 0;
    *payload = r->write_payload; /* rq_ring_slot(r, r->write) + RQ_SLOT_HEADER */
    return 1;
}

static inline int rq_ring_push_begin(struct rq_ring *r, void **payload, int shared_write)
{
    if (shared_write) {
        int rc = rq_ring_sync_write(r);
        if (rc < 0)
            return rc;
    }
    /* MPSC: the cache is from an earlier hold of the lock, and counts only
     * while its position says it is less than a lap old. */
    if (shared_write ? rq_ring_cached_room(r, 1) == 0 : r->write == r->write_full) {
        uint32_t rd = rq_load_acquire_u32(&r->shm->read_offset);
        if (!rq_ring_pair_ok(r, r->write, rd))
            return RQ_ECORRUPT;
        rq_ring_set_read_cache(r, rd);
        r->read_cache_pos = rq_ring_write_pos(r) - rq_ring_distance(r, r->write, rd);
        if (rq_ring_distance(r, r->write, rd) == r->n)
            return RQ_EAGAIN;
    }
    *payload = rq_ring_slot(r, r->write) + RQ_SLOT_HEADER;
    return RQ_OK;
}

/* Stores a new offset, to be followed by rq_ring_peer_waits.  The load of
 * the peer's waiter count must not be ordered before this store (the
 * no-lost-wake-up rule).  With full fences the store is sequentially
 * consistent; otherwise it is a release store and only the compiler is
 * held back: the side about to sleep runs a barrier on our CPU
 * (rq_plat_fence_heavy) after registering, which orders the two for us.
 * FULL_FENCES is r->full_fences, passed in (the _ff forms) so that a caller
 * that loaded it once keeps it in a register across the compiler barrier. */
static inline void rq_ring_publish_offset_ff(int full_fences, rq_atomic_u32 *offset, uint32_t v)
{
    if (full_fences) {
        rq_store_seq_u32(offset, v);
    } else {
        rq_store_release_u32(offset, v);
        rq_fence_compiler();
    }
}

static inline void rq_ring_publish_offset(struct rq_ring *r, rq_atomic_u32 *offset, uint32_t v)
{
    rq_ring_publish_offset_ff(r->full_fences, offset, v);
}

/* Right after publishing: is the peer registered as waiting? */
static inline int rq_ring_peer_waits_ff(int full_fences, rq_atomic_u32 *waiters)
{
    return (full_fences ? rq_load_seq_u32(waiters) : rq_load_relaxed_u32(waiters)) != 0;
}

static inline int rq_ring_peer_waits(const struct rq_ring *r, rq_atomic_u32 *waiters)
{
    return rq_ring_peer_waits_ff(r->full_fences, waiters);
}

/* A single publish's position store, due when the new offset reaches its
 * stop (rq_ring_stop): when it is a multiple of P, P the largest power of
 * two <= N, or after every publish on an MPSC queue's write side (mask 0,
 * every offset is a stop: producers extend the next holder's offset from
 * write_position, and rq_next_seq reads it).  The copy then lags by at
 * most P - 1 single messages plus one publish killed before its store (a
 * burst, which stores every time: <= N), so by less than 2N, as
 * rq_ring_position needs; and the line the peer polls takes this store
 * for one message in P instead of for each one.  Between stops a publish
 * only moves its offset: the position is the lap's base plus the offset.
 *
 * NEXT is the old offset + 1 and equal to *STOP: it wraps at 2N (the base
 * moves on a lap); the caller publishes the offset returned, then calls
 * rq_ring_stopped. */
static inline uint32_t rq_ring_lap(const struct rq_ring *r, uint32_t next, uint64_t *base)
{
    if (next != r->two_n)
        return next;
    *base += r->two_n;
    return 0;
}

/* Between stops a publish moves the side's payload pointer (PAYLOAD) on by
 * a stride; at a stop it looks it up again, unless MASK is 0 (N = 1: the
 * one slot's, set at open; MPSC's write side: looked up at every claim). */
static inline void rq_ring_stopped(const struct rq_ring *r, rq_atomic_u64 *stored, uint64_t base,
                                   uint32_t off, uint32_t mask, uint32_t *stop,
                                   unsigned char **payload)
{
    rq_store_release_u64(stored, base + off); /* after the offset: message_counts */
    if (mask == 0) {
        *stop = off + 1; /* every offset */
        return;
    }
    *stop = rq_ring_stop(r, off, mask);
    *payload = rq_ring_slot(r, off) + RQ_SLOT_HEADER;
}

/* Producer: records LEN in the claimed slot (PAYLOAD, as rq_ring_push_begin
 * gave it: the slot is not looked up twice) and publishes it.  SHM and
 * FULL_FENCES are r->shm and r->full_fences, loaded once by the caller;
 * WRITE is r->write, which the caller may have loaded before its copy
 * into the slot (a store through a byte pointer, after which the compiler
 * would load it again). */
static inline void rq_ring_push_publish_in(struct rq_ring *r, struct rq_shm *shm, int full_fences,
                                           void *payload, uint32_t len, uint32_t write)
{
    unsigned char *slot = (unsigned char *)payload - RQ_SLOT_HEADER;
    memcpy(slot, &len, sizeof len);
    uint32_t next = write + 1;
    if (RQ_RING_LIKELY(next != r->write_stop)) { /* neither a lap's end nor a position due */
        r->write = next;
        r->write_payload += r->stride; /* no wrap before a stop */
        rq_ring_publish_offset_ff(full_fences, &shm->write_offset, next);
        RQ_CRASH_POINT(PUSH_BEFORE_POSITION);
        return;
    }
    next = rq_ring_lap(r, next, &r->write_base);
    r->write = next;
    rq_ring_publish_offset_ff(full_fences, &shm->write_offset, next);
    RQ_CRASH_POINT(PUSH_BEFORE_POSITION);
    rq_ring_stopped(r, &shm->write_position, r->write_base, next, r->write_mask, &r->write_stop,
                    &r->write_payload);
}

static inline void rq_ring_push_publish(struct rq_ring *r, void *payload, uint32_t len)
{
    rq_ring_push_publish_in(r, r->shm, r->full_fences, payload, len, r->write);
}

/* Consumer: the message in SLOT, its length checked.  RQ_ECORRUPT on a
 * length over slot_size. */
static inline int rq_ring_slot_message(const struct rq_ring *r, const unsigned char *slot,
                                       const void **payload, uint32_t *len)
{
    uint32_t n = rq_read_once_u32(slot); /* the producer is untrusted */
    if (n > r->slot_size)
        return RQ_ECORRUPT;
    *len = n;
    *payload = slot + RQ_SLOT_HEADER;
    return RQ_OK;
}

/* Consumer, on finding the ring empty at `read` again: asks for the next
 * message's slot for reading: its first line and the one after when the
 * slot reaches it (a 72-byte slot may straddle two; of a larger slot only
 * those two, where a short message lies).  A hint: nothing is read.  A
 * consumer that waits for a message otherwise takes two misses in a row
 * once it comes, the write offset's line and then the slot's; a look's
 * prefetch runs while its load of the offset is still out (the branch
 * predicted empty), so the slot's line travels beside the offset's.  Not
 * on a busy poll's first empty look at a place: a consumer that only
 * caught up with a busy producer would take the line from it in the
 * middle of its write (a waiting call looks twice at once, so its wait
 * hints from the start).  Measured, not derived:
 * docs/performance/transports.md, "The consumer asks for the next slot
 * while it waits". */
static inline void rq_ring_prefetch_next_read(struct rq_ring *r)
{
    if (r->empty_at == r->read) {
        const unsigned char *slot = r->read_payload - RQ_SLOT_HEADER;
        rq_prefetch_read(slot);
        rq_prefetch_read(slot + r->hint_last);
    }
    r->empty_at = r->read;
}

/* Consumer: the oldest message, if any.  RQ_OK with *PAYLOAD and *LEN,
 * RQ_EAGAIN if empty, RQ_ECORRUPT on a bad write offset or length. */
static inline int rq_ring_pop_begin(struct rq_ring *r, const void **payload, uint32_t *len)
{
    if (r->read == r->write_cache) {
        uint32_t w = rq_load_acquire_u32(&r->shm->write_offset);
        if (!rq_ring_pair_ok(r, w, r->read))
            return RQ_ECORRUPT;
        r->write_cache = w;
        if (w == r->read) {
            rq_ring_prefetch_next_read(r);
            return RQ_EAGAIN;
        }
    }
    return rq_ring_slot_message(r, r->read_payload - RQ_SLOT_HEADER, payload, len);
}

/* Consumer: frees the oldest slot, whose offset OLD is r->read.  Returns
 * OLD, for the was-full test.  SHM, FULL_FENCES and OLD as for
 * rq_ring_push_publish_in's (its copy is out of the slot, into the
 * caller's buffer). */
static inline uint32_t rq_ring_pop_publish_in(struct rq_ring *r, struct rq_shm *shm,
                                              int full_fences, uint32_t old)
{
    uint32_t next = old + 1;
    if (RQ_RING_LIKELY(next != r->read_stop)) { /* as in rq_ring_push_publish */
        r->read = next;
        r->read_payload += r->stride;
        rq_ring_publish_offset_ff(full_fences, &shm->read_offset, next);
        RQ_CRASH_POINT(RELEASE_BEFORE_POSITION);
        return old;
    }
    next = rq_ring_lap(r, next, &r->read_base);
    r->read = next;
    rq_ring_publish_offset_ff(full_fences, &shm->read_offset, next);
    RQ_CRASH_POINT(RELEASE_BEFORE_POSITION);
    rq_ring_stopped(r, &shm->read_position, r->read_base, next, r->read_mask, &r->read_stop,
                    &r->read_payload);
    return old;
}

static inline uint32_t rq_ring_pop_publish(struct rq_ring *r)
{
    return rq_ring_pop_publish_in(r, r->shm, r->full_fences, r->read);
}

/* Consumer: the oldest message's number and flag (whether it may have
 * been handed out before, to a consumer that died or closed before
 * releasing it).  A single peek stores nothing: what it hands out is
 * always the oldest message, so a successor of a consumer that died
 * flags the oldest (rq_ring_flag_oldest), and a clean close holding it
 * stores the mark (rq_ring_deliver_burst of what it holds).  Bursts store
 * the mark before they hand out. */
static inline uint64_t rq_ring_oldest_info(const struct rq_ring *r, int *redelivered)
{
    uint64_t read_pos = rq_ring_read_pos(r);
    *redelivered = read_pos < r->redeliver_below;
    return read_pos;
}

/* ---- bursts: many slots, one publish ----------------------------------- */

/* Producer: up to WANT (1 <= WANT <= N) free slots from `write` on.  RQ_OK
 * with *ROOM >= 1, RQ_EAGAIN if full, RQ_ECORRUPT on a bad read offset.
 * read_offset is read only when the cache shows fewer than WANT. */
int rq_ring_push_room(struct rq_ring *r, uint32_t want, int shared_write, uint32_t *room);

/* Producer: the payload of the I-th free slot from `write`. */
static inline unsigned char *rq_ring_claimed(const struct rq_ring *r, uint32_t i)
{
    return rq_ring_slot(r, rq_ring_advance(r, r->write, i)) + RQ_SLOT_HEADER;
}

/* Producer: records LEN in the I-th claimed slot (not yet visible). */
static inline void rq_ring_set_len(struct rq_ring *r, uint32_t i, uint32_t len)
{
    memcpy(rq_ring_slot(r, rq_ring_advance(r, r->write, i)), &len, sizeof len);
}

/* Producer: publishes the K claimed slots (1 <= K <= N) with one store of
 * write_offset: a producer killed before it leaves none of them visible,
 * after it all of them. */
void rq_ring_push_publish_burst(struct rq_ring *r, uint32_t k);

/* Consumer: up to WANT (1 <= WANT <= N) messages from `read` on.  RQ_OK
 * with *AVAIL >= 1, RQ_EAGAIN if empty, RQ_ECORRUPT on a bad write offset.
 * write_offset is read only when the cache shows fewer than WANT. */
int rq_ring_pop_avail(struct rq_ring *r, uint32_t want, uint32_t *avail);

/* Consumer: the I-th available message (I < *AVAIL of the last
 * rq_ring_pop_avail).  RQ_ECORRUPT on a bad length. */
static inline int rq_ring_message(const struct rq_ring *r, uint32_t i, const void **payload,
                                  uint32_t *len)
{
    return rq_ring_slot_message(r, rq_ring_slot(r, rq_ring_advance(r, r->read, i)), payload, len);
}

/* Consumer: frees the K oldest slots (1 <= K <= N) with one store of
 * read_offset.  Returns the offset `read` had, for the was-full test. */
uint32_t rq_ring_pop_publish_burst(struct rq_ring *r, uint32_t k);

/* Consumer, before K messages from the oldest on are handed out: one store
 * of the delivered mark covers them all.  The I-th one's number is
 * read_pos + I, redelivered when below redeliver_below. */
void rq_ring_deliver_burst(struct rq_ring *r, uint32_t k);

/* Fresh, sequentially consistent checks used by a side about to sleep:
 * true when it need not (or when the segment is corrupt, so that the
 * caller goes back and reports it instead of sleeping). */
int rq_ring_has_data(struct rq_ring *r);
int rq_ring_has_space(struct rq_ring *r, int shared_write);

/* Consumer, after freeing K slots from OLD_READ on: was the ring full just
 * before?  Only then can a producer be asleep waiting for space. */
int rq_ring_was_full_k(struct rq_ring *r, uint32_t old_read, uint32_t k);

static inline int rq_ring_was_full(struct rq_ring *r, uint32_t old_read)
{
    return rq_ring_was_full_k(r, old_read, 1);
}

#endif /* RQ_RING_H */
