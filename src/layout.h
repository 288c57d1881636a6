/*
 * layout.h - the shared-memory segment, the one struct every process maps.
 *
 * Rules of the layout (docs/design.md has the picture):
 *  - magic, format word and geometry come first; a process refuses a segment
 *    whose magic, layout version, ABI word, geometry or size is wrong;
 *  - every word written by a different party sits on its own 64-byte cache
 *    line, so the producer's stores never invalidate the consumer's line;
 *  - everything read from here is untrusted input: it is checked before it
 *    is used as an index or a length.
 *
 * Tested by the _Static_asserts below (offsets and sizes), test_trust and
 * test_faults (corrupt and foreign headers) and the fuzz targets in fuzz/
 * (every byte of a segment).
 */
#ifndef RQ_LAYOUT_H
#define RQ_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "atomics.h"

#define RQ_CACHE_LINE 64

#if defined(_MSC_VER) && !defined(__clang__)
#define RQ_LINE_ALIGNED __declspec(align(RQ_CACHE_LINE))
#else
#define RQ_LINE_ALIGNED _Alignas(RQ_CACHE_LINE)
#endif

/* "rq-ring\x01" as a little-endian word: a segment of another kind (or
 * another byte order) never matches. */
#define RQ_MAGIC UINT64_C(0x01676e69722d7172)
/* 2: sequence positions beside the offsets (lines 1 and 2); the MPSC lock
 * area holds rq's owner word (struct rq_shm_mpsc), no longer the C
 * library's robust mutex; and the byte-range locks moved to a lock object
 * of their own ("rql.NAME"): builds that lock different objects must
 * refuse each other's queues.
 * 3: the waiters word of an event holds the poller bit (RQ_WAITERS_POLLER):
 * a build that took it for a count would never make a poller's object
 * ready; and who holds the MPSC lock: a reservation bit in the owner word,
 * the word a waiter first slept on and when, the pids of the producer
 * slots (lines 10-25), and a count of dead reservations.
 * 4: the MPSC lock's waiters flag moved out of the owner word into a word
 * of its own (struct rq_shm_mpsc.waiters), so that the owner releases
 * with a plain store: a build that still sets the flag in the owner word
 * would sleep through such a release.
 * 5: a single rq_peek stores no delivered mark; a consumer that takes over
 * from a dead one flags the oldest message instead, and a clean close
 * stores the mark of a peek it holds: a build of format 4 would take the
 * mark for complete and leave a dead consumer's last peek unflagged. */
#define RQ_LAYOUT_VERSION 5u

/* Bytes reserved in the segment for the MPSC producers' lock (struct
 * rq_shm_mpsc on line 8: its owner word on Linux; Windows locks a named
 * mutex).  A record queue keeps its byte statistics on the second line
 * (struct rq_rec_shm), on both platforms. */
#define RQ_LOCK_AREA 128

/* The slot header: the length the producer committed.  The payload follows
 * at offset RQ_SLOT_HEADER, 8-byte aligned. */
#define RQ_SLOT_HEADER 8u

/* Producer slots of an MPSC queue: RQ_MPSC_PRODUCERS_MAX (mpsc.h checks). */
#define RQ_MPSC_SLOTS 256

/* Line 0: written once by the creator, under the init lock, read-only after
 * magic is set. */
struct rq_shm_header {
    rq_atomic_u64 magic; /* RQ_MAGIC, stored last (release) by the creator */
    uint32_t layout_version;
    uint32_t abi;         /* rq_layout_abi(): pointer size, lock size, ... */
    uint32_t header_size; /* sizeof(struct rq_shm): where slot 0 starts */
    uint32_t slot_count;  /* N: offsets run over [0, 2N) */
    uint32_t slot_size;   /* largest payload */
    uint32_t slot_stride; /* bytes from one slot to the next */
    uint32_t flags;       /* RQ_MPSC */
    uint32_t reserved0;
    uint64_t total_size; /* header_size + slot_count * slot_stride */
};

/* A wait queue: an event count.  waiters counts processes between "about
 * to sleep" and "awake"; seq is the futex word, bumped by every signal.  A
 * waiter sleeps only while seq still has the value it read before its last
 * check of the ring, so no signal can be lost between check and sleep. */
struct rq_shm_event {
    rq_atomic_u32 waiters;
    rq_atomic_u32 seq;
};

/* The waiters word: the count of sleepers in its low 31 bits, and a bit a
 * poller (rq_poll_handle) sets when an RQ_EAGAIN arms its poll object.
 * The signaller clears the bit before it makes the object ready, so it
 * signals once per arming and a busy peer pays nothing. */
#define RQ_WAITERS_POLLER 0x80000000u
#define RQ_WAITERS_COUNT 0x7fffffffu

/* Per-role statistics and identity, written only by that role's holder
 * (MPSC: by producers, with atomic adds). */
struct rq_shm_role {
    union {
        rq_atomic_u64 messages; /* unused by queues (0; a record queue made by
                                   an older build may hold its count): rq_stat
                                   counts messages by the positions, with no
                                   store per message */
        rq_atomic_u64 rounds;   /* a coalescing worker's: rounds started */
    };
    rq_atomic_u64 waits;     /* times this side went to sleep */
    rq_atomic_u64 wakes;     /* wake signals this side sent to the peer */
    rq_atomic_u64 takeovers; /* role taken over from a dead holder */
    rq_atomic_u64 pid;       /* last holder's process id */
    rq_atomic_u32 attached;  /* non-zero from open until a clean close: segment.h */
    uint32_t reserved0;
    rq_atomic_u64 missed_wakes; /* work found by the periodic re-check, not
                                   by a wake: a peer died before signalling */
    /* Consumer: the delivered mark, one past the last message a peeked
     * batch handed to the application (or a clean close held, or a dead
     * consumer may have held: the successor's flag on the oldest), stored
     * *before* the hand-over: a message below it was possibly delivered
     * already (the redelivery flag).  A single peek stores none (ring.h:
     * rq_ring_flag_oldest).  On
     * this line, which only the consumer writes and producers never read,
     * so that the store costs no cache line the producer is polling.
     * Unused by other roles. */
    rq_atomic_u64 delivered_position;
};

_Static_assert(sizeof(struct rq_shm_role) <= RQ_CACHE_LINE, "a role's line");

/* The MPSC producers' lock (Linux; src/mpsc.c has the protocol; Windows
 * locks a named mutex and uses only owner and waited_since_ms, to show
 * who holds it: mpsc.c's stamp_holder).  Plain
 * data, no pointers: every value is checked before use, and the proof that
 * an owner is alive is a lock the kernel holds for it (its producer slot),
 * never a word of this struct.  owner: 0 when free, otherwise
 * RQ_MPSC_HELD | [RQ_MPSC_RESERVING] | nonce << 16 | slot (mpsc.h). */
struct rq_shm_mpsc {
    rq_atomic_u64 owner;
    rq_atomic_u64 next_id; /* producer handles opened so far: their ids */
    rq_atomic_u32 seq;     /* the futex lock waiters sleep on; bumped by a
                              releasing owner that took the waiters flag */
    rq_atomic_u32 waiters; /* RQ_MPSC_LOCK_WAITERS: someone may sleep on
                              seq (set by a waiter, taken by a release) */
    /* For rq_stat only (the protocol never reads them): the owner word
     * that a producer about to sleep found held when
     * nobody had stamped it yet, and rq_plat_now_ms() (CLOCK_MONOTONIC)
     * at that moment.  Written by waiters only: an uncontended lock costs
     * no store here. */
    rq_atomic_u64 waited_word;
    rq_atomic_u64 waited_since_ms;
};

_Static_assert(sizeof(struct rq_shm_mpsc) <= RQ_CACHE_LINE, "the lock's line");
struct rq_shm {
    RQ_LINE_ALIGNED struct rq_shm_header hdr;

    /* Line 1: the producer's offset; the consumer only reads it.
     * write_position extends it to 64 bits: the sequence number of the
     * next message, stored just *after* a publish of write_offset (MPSC:
     * every publish; SPSC: bursts, and single messages whose offset is a
     * multiple of the largest power of two <= N, or N), so it lags the truth by
     * less than 2N (rq_ring_stop); the truth is the first value >= it that
     * is congruent to write_offset mod 2N (rq_ring_position).  It shares the
     * line the consumer polls: stored once a period, it takes the line away
     * from the consumer for one single message in P, not for each. */
    RQ_LINE_ALIGNED rq_atomic_u32 write_offset;
    rq_atomic_u64 write_position;

    /* Line 2: the consumer's offset; producers only read it.
     * read_position extends it as write_position extends write_offset
     * (the delivered mark is on the consumer's role line). */
    RQ_LINE_ALIGNED rq_atomic_u32 read_offset;
    rq_atomic_u64 read_position;

    /* Line 3: the consumer sleeps here when the ring is empty. */
    RQ_LINE_ALIGNED struct rq_shm_event data_event;

    /* Line 4: producers sleep here when the ring is full. */
    RQ_LINE_ALIGNED struct rq_shm_event space_event;

    /* Lines 5 and 6: statistics, each on a line only its side writes. */
    RQ_LINE_ALIGNED struct rq_shm_role producer;
    RQ_LINE_ALIGNED struct rq_shm_role consumer;

    /* Line 7: written at open under the init lock, and by MPSC recovery. */
    RQ_LINE_ALIGNED struct {
        rq_atomic_u64 repairs;           /* half-made segments re-initialised */
        rq_atomic_u64 lock_recoveries;   /* MPSC lock taken from a dead owner */
        rq_atomic_u64 dead_reservations; /* ... who held it for a reservation */
    } admin;

    /* Lines 8-9: the MPSC producers' lock (line 9 unused). */
    RQ_LINE_ALIGNED union {
        struct rq_shm_mpsc mpsc;
        unsigned char lock_area[RQ_LOCK_AREA];
    };

    /* Lines 10-25: the pid of each MPSC producer slot's holder (Linux),
     * written by the producer that takes the slot at open and cleared at
     * its close; a pid found there at open is a producer that died
     * (producer.takeovers).  Display only: the kernel's slot lock, never
     * this, says whether a producer is alive. */
    RQ_LINE_ALIGNED rq_atomic_u32 slot_pid[RQ_MPSC_SLOTS];
};

#define RQ_SHM_HEADER_SIZE ((uint32_t)sizeof(struct rq_shm))

/* Static checks of the layout: a change here is a change of the format. */
_Static_assert(sizeof(struct rq_shm_header) <= RQ_CACHE_LINE, "header fits a line");
_Static_assert(offsetof(struct rq_shm, write_offset) == 1 * RQ_CACHE_LINE, "line 1");
_Static_assert(offsetof(struct rq_shm, write_position) < 2 * RQ_CACHE_LINE, "line 1");
_Static_assert(offsetof(struct rq_shm, read_offset) == 2 * RQ_CACHE_LINE, "line 2");
_Static_assert(offsetof(struct rq_shm, read_position) < 3 * RQ_CACHE_LINE, "line 2");
_Static_assert(offsetof(struct rq_shm, data_event) == 3 * RQ_CACHE_LINE, "line 3");
_Static_assert(offsetof(struct rq_shm, space_event) == 4 * RQ_CACHE_LINE, "line 4");
_Static_assert(offsetof(struct rq_shm, producer) == 5 * RQ_CACHE_LINE, "line 5");
_Static_assert(offsetof(struct rq_shm, consumer) == 6 * RQ_CACHE_LINE, "line 6");
_Static_assert(offsetof(struct rq_shm, admin) == 7 * RQ_CACHE_LINE, "line 7");
_Static_assert(offsetof(struct rq_shm, lock_area) == 8 * RQ_CACHE_LINE, "line 8");
_Static_assert(offsetof(struct rq_shm, slot_pid) == 10 * RQ_CACHE_LINE, "line 10");
_Static_assert(sizeof(struct rq_shm) == 26 * RQ_CACHE_LINE, "26 lines");
_Static_assert(sizeof(rq_atomic_u32) == 4 && sizeof(rq_atomic_u64) == 8,
               "atomics are plain words in the segment");

/* The ABI word: what must agree between two builds that share a segment
 * besides the layout version: pointer width (kept although the segment
 * holds no pointers: builds of another width are not tested against this
 * layout), the lock area's size, and the platform's tag, which says what
 * the lock area means there (rq_plat_abi_tag). */
static inline uint32_t rq_layout_abi(uint32_t platform_tag)
{
    return (platform_tag & 0xffu) << 16 | (uint32_t)(sizeof(void *) << 8) |
           (uint32_t)RQ_LOCK_AREA >> 3;
}

/* Bytes from one slot to the next for a payload of SLOT_SIZE: header plus
 * payload, rounded up to 8 so every slot header is aligned. */
static inline uint64_t rq_layout_stride(uint32_t slot_size)
{
    return ((uint64_t)RQ_SLOT_HEADER + slot_size + 7u) & ~(uint64_t)7u;
}

static inline uint64_t rq_layout_total(uint32_t slot_count, uint32_t slot_size)
{
    return (uint64_t)RQ_SHM_HEADER_SIZE + (uint64_t)slot_count * rq_layout_stride(slot_size);
}

/* ---- coalescing objects ("rqc.NAME") -------------------------------- */

/* "rq-coal\x01" */
#define RQC_MAGIC UINT64_C(0x016c616f632d7172)
/* 2: locks in "rqcl.NAME", as RQ_LAYOUT_VERSION 2. */
#define RQC_LAYOUT_VERSION 2u

/* req word: (count << 1) | RQC_WAITING.  count runs mod 2^31. */
#define RQC_WAITING 1u
#define RQC_COUNT_MASK 0x7fffffffu

struct rqc_shm_header {
    rq_atomic_u64 magic; /* RQC_MAGIC, stored last by the creator */
    uint32_t layout_version;
    uint32_t abi;
    uint32_t header_size; /* sizeof(struct rqc_shm) */
    uint32_t reserved0;
};

struct rqc_shm {
    RQ_LINE_ALIGNED struct rqc_shm_header hdr;

    /* Line 1: the request word, the futex the worker sleeps on.  Written
     * by requesters (CAS, or add-and-wake in the kernel) and by the worker
     * (WAITING bit only). */
    RQ_LINE_ALIGNED rq_atomic_u32 req;

    /* Line 2: the worker's progress, written only by the worker. */
    RQ_LINE_ALIGNED struct {
        rq_atomic_u32 taken; /* count of the round under way */
        rq_atomic_u32 done;  /* count covered by the last finished round */
    } work;

    /* Line 3: requesters' statistics (atomic adds: many writers). */
    RQ_LINE_ALIGNED struct {
        rq_atomic_u64 requests;
        rq_atomic_u64 wakes;
        rq_atomic_u64 pid; /* last requester to open */
    } requesters;

    /* Line 4: the worker's statistics and identity. */
    RQ_LINE_ALIGNED struct rq_shm_role worker; /* rounds, not messages */

    /* Line 5: written at open under the init lock. */
    RQ_LINE_ALIGNED struct {
        rq_atomic_u64 repairs;
    } admin;
};

_Static_assert(sizeof(struct rqc_shm_header) <= RQ_CACHE_LINE, "header fits a line");
_Static_assert(offsetof(struct rqc_shm, req) == 1 * RQ_CACHE_LINE, "rqc line 1");
_Static_assert(offsetof(struct rqc_shm, work) == 2 * RQ_CACHE_LINE, "rqc line 2");
_Static_assert(sizeof(struct rqc_shm) == 6 * RQ_CACHE_LINE, "rqc: 6 lines");

#endif /* RQ_LAYOUT_H */
