/*
 * mpsc.h - the lock that serialises producers of an RQ_MPSC queue.
 * OS-neutral.
 *
 * Linux: rq's own lock (mpsc.c).  Its shared state is plain data in the
 * segment (struct rq_shm_mpsc): an owner word taken by compare-and-swap,
 * and a futex word waiters sleep on.  Whether an owner is alive is never
 * read from the segment: every MPSC producer handle holds an exclusive
 * kernel byte-range lock on a producer slot of its own from open to close,
 * the owner word names that slot, and a waiter that suspects the owner
 * asks the kernel whether the slot is still held (rq_plat_lock_probe).
 * Windows: the platform's named mutex (platform_win.c), thread-owned.
 */
#ifndef RQ_MPSC_H
#define RQ_MPSC_H

#include <stdint.h>

#include "layout.h"
#include "platform.h"
#include "rq.h"

/* RQ_MPSC_PRODUCERS_MAX (rq.h) live producer handles, one producer slot
 * each: kernel locks RQ_LOCK_PRODUCER_SLOT .. + RQ_MPSC_PRODUCERS_MAX - 1.
 * The slot is 16 bits of the owner word. */
_Static_assert(RQ_MPSC_PRODUCERS_MAX <= 0x10000, "a slot fits the owner word");
_Static_assert(RQ_MPSC_PRODUCERS_MAX == RQ_MPSC_SLOTS, "a pid word per slot");

/* The owner word:
 *   RQ_MPSC_HELD | [RQ_MPSC_RESERVING] | nonce << 16 | slot.
 * The nonce is the handle's id (from next_id at open) and a count of its
 * acquisitions, so that a word never repeats for another handle of the
 * same slot (a waiter's recovery CAS from a dead owner's exact word cannot
 * succeed against a new owner) and changes with every acquisition.  Bit 62
 * is unused (before layout 4 it was the waiters flag: now the lock's
 * waiters word, so that the release can be a plain store). */
#define RQ_MPSC_HELD (UINT64_C(1) << 63)
/* The lock's waiters word: someone may be asleep on seq. */
#define RQ_MPSC_LOCK_WAITERS 1u
/* Taken for a reservation (rq_reserve until rq_commit), which may last:
 * part of the word the owner writes anyway, so telling costs nothing. */
#define RQ_MPSC_RESERVING (UINT64_C(1) << 61)
#define RQ_MPSC_SLOT_MASK UINT64_C(0xffff)
#define RQ_MPSC_NONCE_SHIFT 16
#define RQ_MPSC_NONCE_MASK ((UINT64_C(1) << 45) - 1)
#define RQ_MPSC_COUNT_BITS 24 /* acquisitions, low bits of the nonce */

/* The first sleep of a lock wait; each sleep that ends with the same owner
 * doubles the next, up to RQ_RECHECK_MS. */
#define RQ_MPSC_NAP_MS 1
/* A try (timeout 0) that finds the lock held for a push waits this long
 * at most for its release (one sleep, ended by the release's wake). */
#define RQ_MPSC_TRY_NAP_MS 1

/* A producer handle's side of the lock. */
struct rq_mpsc {
    rq_plat_segment *seg;
    struct rq_shm_mpsc *lock;         /* in the segment: untrusted */
    rq_atomic_u64 *recoveries;        /* admin.lock_recoveries */
    rq_atomic_u64 *dead_reservations; /* admin.dead_reservations */
    int held;                         /* this handle holds the lock */
    int reserving;                    /* the next lock is for a reservation */
    int full_fences;                  /* RQ_FULL_FENCES: release with a full fence */
    rq_atomic_u32 *interrupt;         /* the handle's rq_interrupt flag, or NULL */
#if !RQ_PLAT_MPSC_MUTEX
    uint32_t slot;           /* our producer slot */
    uint64_t id;             /* our handle id (nonce high bits) */
    uint64_t count;          /* acquisitions so far (nonce low bits) */
    uint64_t word;           /* held: the owner word we wrote */
    uint64_t last_seen;      /* owner word at our last failed look */
    int kept;                /* held across calls: in this thread's list */
    uint64_t object[2];      /* which queue (self-deadlock check) */
    rq_atomic_u32 *slot_pid; /* our slot's pid word in the segment */
#else
    rq_atomic_u32 *slot_pid; /* our producer slot's pid word in the segment */
#endif
};

/* 1 if rq_interrupt asked the handle's waits to end (the flag is the
 * queue handle's; it is cleared there). */
static inline int rq_mpsc_interrupted(const struct rq_mpsc *m)
{
    return m->interrupt && rq_load_acquire_u32(m->interrupt) != 0;
}

/* Who holds the lock, as the segment says (rq_stat; display only: the
 * values are shown, never acted on).  pid: 0 free, -1 held but no pid
 * recorded (or Windows, where the lock is a mutex nobody can inspect);
 * held_ms: at least this long (since a waiter first found this holder),
 * -1 if no producer has waited for it. */
struct rq_mpsc_holder {
    int64_t pid;
    int64_t held_ms;
    int reserving;
};
void rq_mpsc_holder(struct rq_shm *shm, struct rq_mpsc_holder *out);

/* Makes the lock in a new segment (creator, under the init lock). */
int rq_mpsc_init(rq_plat_segment *seg, struct rq_shm *shm);

/* Producer open: takes a producer slot (RQ_EBUSY if all
 * RQ_MPSC_PRODUCERS_MAX are held), recovers a lock left by a dead owner
 * and wakes lock waiters (its predecessor may have died between releasing
 * the lock and waking them). */
int rq_mpsc_open(struct rq_mpsc *m, rq_plat_segment *seg, struct rq_shm *shm);

/* Takes the producers' lock, waiting at most TIMEOUT_MS (0: RQ_EAGAIN at
 * once if held by a live owner; RQ_INFINITE; else RQ_ETIMEDOUT).  A lock
 * abandoned by a dead producer is taken as if it had been released
 * normally (and counted in admin.lock_recoveries): the critical section
 * is consistent at every instruction, so there is nothing to repair.
 * RQ_EDEADLK if the calling thread holds this queue's lock through
 * another handle, and RQ_EINTR (lock not taken) when the handle was
 * interrupted while waiting for it. */
int rq_mpsc_lock(struct rq_mpsc *m, int timeout_ms);
/* Releases the lock if this handle holds it (else nothing), waking its
 * sleepers if any flagged themselves. */
void rq_mpsc_unlock(struct rq_mpsc *m);

/* The first step of rq_mpsc_lock alone, for a push's common case: RQ_OK
 * if the lock was free and is now ours, held as rq_mpsc_lock holds it;
 * else RQ_EAGAIN, having changed nothing in the segment, and the caller
 * takes the long way (rq_mpsc_lock: spin, sleep, recovery of a dead
 * owner, RQ_EDEADLK).  On Windows always RQ_EAGAIN: taking the mutex is
 * a system call either way. */
int rq_mpsc_try_lock(struct rq_mpsc *m);

/* The lock just taken stays held after the call returns (a reservation):
 * recorded for the self-deadlock check (RQ_EDEADLK), which only a lock held
 * across calls can need.  A lock taken and released inside one call is
 * not recorded, which keeps a thread-local list off every push. */
void rq_mpsc_keep(struct rq_mpsc *m);

/* Producer close: releases the lock if held (before the producer slot
 * goes, so that nobody has to recover it). */
void rq_mpsc_close(struct rq_mpsc *m);

#endif /* RQ_MPSC_H */
