/*
 * records.h - record queues (RQ_RECORDS): a byte ring of variable-length
 * messages.  OS-neutral.  docs/design.md, section 12, has the protocol.
 *
 * The segment keeps the slot ring's header lines (events, role lines,
 * admin, the MPSC lock at the same offsets), so queue.c and mpsc.c serve
 * both kinds beyond the data path; only lines 1 and 2 and the data differ.
 * queue.c calls in here from the top of its public functions when a handle
 * is a record queue (struct rq.rec != NULL).
 */
#ifndef RQ_RECORDS_H
#define RQ_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "deadline.h"
#include "layout.h"
#include "mpsc.h"
#include "platform.h"
#include "rq.h"

/* layout_version of a record segment: kind 1 (records) << 16 | version.
 * A library without records compares it with its own RQ_LAYOUT_VERSION
 * (2 when records came, 5 now; never kind 1) and refuses the segment with
 * RQ_EVERSION.  Version 2: the MPSC lock's waiters flag has a word of its
 * own (RQ_LAYOUT_VERSION 4).  Version 3: the byte statistics moved from
 * line 1 to line 9, the positions are stored once in 2^31 records, and a
 * single peek stores no delivered mark (as slot queues since format 5).
 * Version 4: the record header is one 32-bit word, 4 bytes before an
 * 8-aligned payload (the ring's data starts 4 bytes past an 8-byte
 * boundary), so a record takes round8(4 + len) bytes, not 8 + round8(len). */
#define RQ_REC_LAYOUT_VERSION 0x00010004u

/* The record header's type, its top 2 bits: 0 (a zeroed ring) and 3 are
 * corrupt. */
#define RQ_REC_DATA 1u
#define RQ_REC_PAD 2u
#define RQ_REC_LEN_MASK 0x3fffffffu /* the low 30 bits */
_Static_assert(RQ_SLOT_COUNT_MAX - RQ_RECORD_HEADER <= RQ_REC_LEN_MASK, "lengths fit 30 bits");

/* The bytes every record takes at least, and the alignment of every
 * record's offset: so a ring of C bytes holds at most C / RQ_REC_CELL
 * records, the bound every count read from the segment is checked
 * against. */
#define RQ_REC_CELL 8u

/* A record header as read from the ring or to be written there. */
struct rq_rec_header {
    uint32_t len;  /* DATA: payload bytes; PAD: bytes after this header */
    uint32_t type; /* RQ_REC_DATA or RQ_REC_PAD (anything else: corrupt) */
};

/* Writes the header of a record of TYPE (< 4) and LEN (< 2^30) at P: one
 * 32-bit word.  Every length written is below the capacity (a record's
 * payload, at most C/2 - 4, or a padding's, less than C/2), so it fits. */
static inline void rq_rec_put_header(unsigned char *p, uint32_t type, uint32_t len)
{
    uint32_t word = type << 30 | len;
    memcpy(p, &word, sizeof word);
}

/* Writes at P the header of a padding record of PAD bytes, its header
 * included: the ring's tail before a record that wraps (rec_at checks
 * the same length from the other side). */
static inline void rq_rec_put_padding(unsigned char *p, uint32_t pad)
{
    rq_rec_put_header(p, RQ_REC_PAD, pad - RQ_RECORD_HEADER);
}

/* Reads the header at P once (the producer is untrusted: each field is
 * taken from this one load, then checked by the caller). */
static inline struct rq_rec_header rq_rec_get_header(const unsigned char *p)
{
    uint32_t word = rq_read_once_u32(p);
    struct rq_rec_header h = {word & RQ_REC_LEN_MASK, word >> 30};
    return h;
}

/* Reads the header at P once, for a data record's length: the length if
 * it is one, else a value above every record's largest (which is below
 * 2^30): a data header is 1 << 30 | len, and any other type's word less
 * 1 << 30 is at least 2^30 or wraps.  So one comparison with the largest
 * checks the type and the length at once. */
static inline uint32_t rq_rec_data_len(const unsigned char *p)
{
    uint32_t word = rq_read_once_u32(p);
    return word - (RQ_REC_DATA << 30);
}

struct rq_rec_shm {
    RQ_LINE_ALIGNED struct rq_shm_header hdr;

    /* Line 1: the producer's word, seq_lo << 32 | byte offset in [0, 2C),
     * published in one store, and nothing else stored with it: the
     * consumer polls this line, and each store after the word would take
     * it back.  write_position extends seq_lo to 64 bits; it is stored after
     * the word only when the number's bits from 2^31 up change
     * (rec_store_position), so it lags by less than 2^31 records, plus one
     * batch if its writer was killed in between. */
    RQ_LINE_ALIGNED rq_atomic_u64 write_word;
    rq_atomic_u64 write_position;

    /* Line 2: the consumer's word, as line 1. */
    RQ_LINE_ALIGNED rq_atomic_u64 read_word;
    rq_atomic_u64 read_position;

    /* Lines 3-9: exactly struct rq_shm's. */
    RQ_LINE_ALIGNED struct rq_shm_event data_event;
    RQ_LINE_ALIGNED struct rq_shm_event space_event;
    RQ_LINE_ALIGNED struct rq_shm_role producer;
    RQ_LINE_ALIGNED struct rq_shm_role consumer;
    RQ_LINE_ALIGNED struct {
        rq_atomic_u64 repairs;
        rq_atomic_u64 lock_recoveries;
        rq_atomic_u64 dead_reservations;
    } admin;
    /* Lines 8-9: the MPSC lock on line 8, as struct rq_shm's.  Line 9,
     * which the lock leaves unused, holds the producers' byte statistics
     * (single writer: SPSC, or under the lock; read by rq_stat_records
     * only). */
    RQ_LINE_ALIGNED union {
        struct rq_shm_mpsc mpsc;
        unsigned char lock_area[RQ_LOCK_AREA];
        struct {
            unsigned char lock_line[RQ_CACHE_LINE];
            rq_atomic_u64 padding_bytes;
            rq_atomic_u64 payload_bytes;
            rq_atomic_u64 largest;
        } bytes;
    };
    /* Lines 10-25: exactly struct rq_shm's. */
    RQ_LINE_ALIGNED rq_atomic_u32 slot_pid[RQ_MPSC_SLOTS];
};

#define RQ_REC_SAME_(f) offsetof(struct rq_rec_shm, f) == offsetof(struct rq_shm, f)
_Static_assert(sizeof(struct rq_rec_shm) == sizeof(struct rq_shm), "same header size");
_Static_assert(RQ_REC_SAME_(write_position) && RQ_REC_SAME_(read_position), "positions");
_Static_assert(RQ_REC_SAME_(data_event) && RQ_REC_SAME_(space_event), "events");
_Static_assert(RQ_REC_SAME_(producer) && RQ_REC_SAME_(consumer), "role lines");
_Static_assert(RQ_REC_SAME_(admin) && RQ_REC_SAME_(lock_area), "admin, lock");
_Static_assert(RQ_REC_SAME_(admin.dead_reservations) && RQ_REC_SAME_(slot_pid), "lock holders");
_Static_assert(offsetof(struct rq_rec_shm, write_word) == 1 * RQ_CACHE_LINE, "line 1");
_Static_assert(offsetof(struct rq_rec_shm, bytes.padding_bytes) == 9 * RQ_CACHE_LINE, "line 9");
_Static_assert(sizeof(struct rq_shm_mpsc) <= RQ_CACHE_LINE, "the lock leaves line 9");
_Static_assert(offsetof(struct rq_rec_shm, read_word) == 2 * RQ_CACHE_LINE, "line 2");

/* The ring's data starts RQ_RECORD_HEADER (4) bytes past the header
 * lines, an 8-byte boundary, so that a record's header at an 8-aligned
 * offset leaves its payload 8-aligned.  A record segment is
 * RQ_REC_DATA_OFFSET + capacity bytes. */
#define RQ_REC_DATA_OFFSET ((uint32_t)sizeof(struct rq_rec_shm) + RQ_RECORD_HEADER)
_Static_assert(RQ_REC_DATA_OFFSET % RQ_REC_CELL == RQ_RECORD_HEADER, "payloads 8-aligned");

struct rq_rec; /* a handle's record state (records.c) */

/* ---- hooks for queue.c's segment kind -------------------------------- */

/* rq_open's check of a config with RQ_RECORDS (geometry, flags, size). */
int rq_rec_check_config(const rq_config *cfg);
/* Checks a record header snapshot H (layout_version already
 * RQ_REC_LAYOUT_VERSION) as queue_check does a slot header. */
int rq_rec_check(const struct rq_shm_header *h, uint64_t object_size, const rq_config *cfg,
                 uint64_t *total);
uint64_t rq_rec_size_for(const rq_config *cfg);
/* Fills a new record segment from CFG, all but the magic word. */
int rq_rec_init(rq_plat_segment *seg, void *addr, const rq_config *cfg, int repairing);

/* ---- queue.c's waiting and waking, for both kinds --------------------- */

/* One wait of a call: its deadline and the state its turns carry. */
struct rq_wait_turn {
    struct rq_deadline d;
    int timeout_ms; /* as the call was given it: 0 lets a poller arm */
    int napped;     /* wait_on's first unfenced nap was taken */
    int rounds;     /* a poller's re-checks in this call */
    int nap;        /* the peer's wake test may miss this wait: re-check every nap */
    int naps;       /* naps taken (the unlink check is every RQ_RECHECK_MS) */
    int spun;       /* the handle's spin (rq_set_spin_us) was taken: once a call */
};

static inline struct rq_wait_turn rq_wait_turn_start(int timeout_ms)
{
    struct rq_wait_turn t = {rq_deadline_start(timeout_ms), timeout_ms, 0, 0, 0, 0, 0};
    return t;
}

struct rq;
/* After rq_mpsc_lock failed with RC (< 0) against T's deadline: the call's
 * error, always negative, as a slot queue's MPSC push returns it
 * (RQ_ELOCKED for the lock's timeout; a poller's object is kept ready). */
int rq_queue_lock_failed(struct rq *q, const struct rq_wait_turn *t, int rc);
/* One turn of a wait on the data event (SPACE 0: the consumer) or the
 * space event (SPACE 1: producers), exactly as a slot queue's call waits:
 * a sleep with queue.c's wait_on (the waiters word, the nap and barrier,
 * the re-check with READY(CTX), missed wakes, the unlink check), naps if
 * T asks for them, or for a handle with a poll object and a zero timeout
 * its arming (RQ_EAGAIN when armed).  RQ_OK: look again.  Else the
 * call's error. */
int rq_queue_wait(struct rq *q, int space, int (*ready)(void *), void *ctx, struct rq_wait_turn *t);

/* The claim loop of every call that waits, on both kinds of queue:
 * TRY_CLAIM(CTX) (RQ_OK: claimed; RQ_EAGAIN: full or empty; else the
 * call's error), and until it succeeds one turn of rq_queue_wait on
 * SPACE's event, re-checked with READY(CTX).  LOCK (MPSC producers: the
 * handle's lock, else NULL) is taken for each try and kept on RQ_OK,
 * until the publish; the loop never waits holding it.  T: the call's
 * turn, from rq_wait_turn_start.  Inline, so that each caller's constant
 * TRY_CLAIM folds into its loop. */
static inline int rq_claim_loop(struct rq *q, struct rq_mpsc *lock, int space,
                                int (*try_claim)(void *), int (*ready)(void *), void *ctx,
                                struct rq_wait_turn *t)
{
    for (;;) {
        if (lock) {
            int rc = rq_mpsc_lock(lock, rq_deadline_left(&t->d));
            if (rc < 0)
                return rq_queue_lock_failed(q, t, rc);
        }
        int rc = try_claim(ctx);
        if (rc == RQ_OK)
            return RQ_OK;
        if (lock)
            rq_mpsc_unlock(lock); /* never wait holding the lock */
        if (rc != RQ_EAGAIN)
            return rc;
        rc = rq_queue_wait(q, space, ready, ctx, t);
        if (rc < 0)
            return rc;
    }
}

/* An MPSC producer's common case, before rq_claim_loop and without its
 * wait turn: the lock free (rq_mpsc_try_lock) and TRY_CLAIM(CTX)
 * succeeding under it.  RQ_OK with LOCK held; else RQ_EAGAIN with the
 * lock left as found, and the caller runs the loop, which checks again.
 * Inline, as the loop is, so that the constant TRY_CLAIM folds in. */
static inline int rq_claim_once(struct rq_mpsc *lock, int (*try_claim)(void *), void *ctx)
{
    if (rq_mpsc_try_lock(lock) != RQ_OK)
        return RQ_EAGAIN;
    if (try_claim(ctx) == RQ_OK)
        return RQ_OK;
    rq_mpsc_unlock(lock);
    return RQ_EAGAIN;
}

/* Is a call with TIMEOUT_MS a busy poll: a zero timeout on a handle with
 * no poll object?  Its wait turn would only return RQ_EAGAIN (a zero
 * timeout never sleeps), so a claim that found nothing may return that at
 * once; a poller's handle waits the long way, which arms its object. */
int rq_queue_busy_poll(const struct rq *q, int timeout_ms);

/* After a publish whose waiters word was seen non-zero: wakes the
 * consumer (MPSC: one producer per sleep) and its poller. */
void rq_queue_wake_consumer(struct rq *q);
/* After a release that may have made room a producer waits for: wakes
 * every sleeping producer and their poller. */
void rq_queue_wake_producers(struct rq *q);

/* Fills *INFO, if INFO is not NULL: a message's number and redelivery
 * flag (the pop and peek of both kinds). */
static inline void rq_msg_info_fill(rq_msg_info *info, uint64_t seq, int redelivered)
{
    if (!info)
        return;
    info->seq = seq;
    info->flags = redelivered ? RQ_MSG_REDELIVERED : 0;
    info->reserved = 0;
}

/* ---- a handle -------------------------------------------------------- */

/* A handle's record state for SHM, from its checked header H.  LOCK: the
 * handle's MPSC lock (MPSC producers), else NULL.  RQ_ESYS if out of
 * memory. */
int rq_rec_attach(struct rq_rec **out, void *shm, const struct rq_shm_header *h, int role,
                  struct rq_mpsc *lock);
/* The handle Q that R's calls wait and wake through. */
void rq_rec_set_queue(struct rq_rec *r, struct rq *q);
/* This side's record number: it moves whenever this side makes progress
 * (a poller's re-arming tells a new wait from a repeated one by it). */
uint64_t rq_rec_position(const struct rq_rec *r);
/* At role takeover: loads and checks both words (RQ_ECORRUPT). */
int rq_rec_load(struct rq_rec *r);
/* A consumer that took over from a dead one: flags the oldest record, which
 * the dead one may have held from a single peek (that stores no mark),
 * unless a dead batch's mark covers it already; the mark is stored. */
void rq_rec_flag_oldest(struct rq_rec *r);
/* Close: drops a reservation (an MPSC one releases the lock if this
 * thread made it); a consumer marks what it still holds peeked. */
void rq_rec_close(struct rq_rec *r);
/* Frees without touching the segment (a child of fork, a failed open). */
void rq_rec_free(struct rq_rec *r);

/* The single-record calls (push, reserve, commit, pop, peek, release) are
 * inline in records_impl.h. */
/* The burst calls on a record queue: rq.h's contracts; one publish of
 * the word per batch (MPSC: one lock round). */
int rq_rec_push_burst(struct rq_rec *r, const void *const *msgs, const size_t *lens, size_t count,
                      int timeout_ms);
int rq_rec_pop_burst(struct rq_rec *r, void *buf, size_t cap, size_t *lens, size_t max,
                     int timeout_ms);
int rq_rec_peek_burst(struct rq_rec *r, rq_msg_view *msgs, size_t max, int timeout_ms);
int rq_rec_release_burst(struct rq_rec *r, size_t count);
/* rq_reserve_burst_len and rq_commit_burst on a record queue (rq.h). */
int rq_rec_reserve_batch(struct rq_rec *r, const size_t *lens, size_t count, void **bufs,
                         int timeout_ms);
int rq_rec_commit_burst(struct rq_rec *r, const size_t *lens, size_t count);
int rq_rec_next_seq(struct rq_rec *r, uint64_t *seq);
/* rq_stat's ring part: byte offsets, the records in the queue, and the
 * records pushed and popped since creation, from the numbers the words
 * carry (exact whenever a side is killed: no count stored per record).
 * RQ_OK, else RQ_ECORRUPT with the stored positions as the counts (up to
 * 2^31 and a batch behind). */
int rq_rec_offsets(struct rq_rec *r, uint32_t *write, uint32_t *read, uint32_t *records,
                   uint64_t *pushed, uint64_t *popped);
int rq_rec_stat(struct rq_rec *r, rq_record_stats *st);
int rq_rec_walk(struct rq_rec *r, int (*fn)(void *ctx, const rq_record_entry *entry), void *ctx);

#endif /* RQ_RECORDS_H */
