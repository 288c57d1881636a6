/*
 * queue_impl.h - the queue handle (struct rq), shared by the files that
 * make up the public queue API: queue.c (pushing, popping, waiting and
 * waking), queue_open.c (open, close, roles, unlink, interrupt) and
 * queue_stat.c (rq_stat and the record queue's inspection).  Internal:
 * never installed.
 */
#ifndef RQ_QUEUE_IMPL_H
#define RQ_QUEUE_IMPL_H

#include <stdint.h>

#include "layout.h"
#include "mpsc.h"
#include "platform.h"
#include "records.h"
#include "ring.h"
#include "segment.h"
#include "rq.h"

#define RQ_QUEUE_KIND "rq"

enum held_state { HELD_NONE, HELD_RESERVED, HELD_PEEKED };

struct rq {
    struct rq_segment segment; /* segment.plat: the OS objects */
    struct rq_shm *shm;        /* segment.addr, typed */
    struct rq_ring ring;
    int role;
    /* The fast word: fork_generation plus a code.  A handle whose single
     * calls take the short way (queue.c: a slot queue, no full fences, and
     * for a producer SPSC): RQ_FAST(role, held); a record queue's producer
     * or consumer without full fences: RQ_FAST_REC(role); code 0 for any
     * other.  Set at open from what never changes after it, and follows
     * `held` (set_held): one comparison a call (fast_is) instead of one
     * each for the process, the role, the kind, the mode, the fences and
     * the state. */
    uint64_t fast;
    uint64_t fork_generation; /* rq_plat_fork_generation at open */
    int mpsc;
    int owns_role_line; /* SPSC producer or consumer: keeps the attached flag */
    int took_over;      /* the role's last holder died without closing */
    int pushed;         /* MPSC producer: published at least one message */
    enum held_state held;
    uint32_t held_count; /* slots reserved or messages peeked (bursts) */
    void *reserved;      /* HELD_RESERVED: payload of the claimed slot */
    uint64_t reserver;   /* HELD_RESERVED, MPSC: the thread that reserved */
    struct rq_mpsc lock; /* MPSC producer: the producers' lock */
    int lock_open;       /* lock was opened (rq_mpsc_open succeeded) */
    const void *peeked;  /* HELD_PEEKED: payload of the oldest message */
    uint32_t peeked_len;
    struct rq_shm_role *self; /* this side's statistics line */
    struct rq_rec *rec;       /* a record queue (RQ_RECORDS): records.c */
    int polling;              /* rq_poll_handle was called: RQ_EAGAIN arms */
    int poll_arm;             /* enum poll_arm: how the last arming was made */
    uint64_t poll_arm_pos;    /* this side's position at that arming */
    /* rq_interrupt's flag: set there (any thread, a signal handler), read
     * before every sleep, cleared by the call that returns RQ_EINTR. */
    rq_atomic_u32 interrupted;
    /* rq_set_spin_us: how long a wait polls before it sleeps, in ns (0:
     * it sleeps at once). */
    uint64_t spin_ns;
};

#define RQ_FAST(role, held) ((role) | (int)(held) << 2)
/* A consumer's q->fast after a single peek (held HELD_PEEKED, held_count
 * 1): its release need not count down a burst's rest. */
#define RQ_FAST_PEEKED_ONE RQ_FAST(RQ_CONSUMER, 3)
#define RQ_FAST_REC(role) ((role) | 16) /* records keep their own state */
/* Every code stays below the fork generation's step, so that no code
 * makes up for a child's generation (fast_is). */
_Static_assert(RQ_FAST_REC(RQ_FAST(3, 3)) < RQ_FORK_STEP, "a code below the fork step");

/* Every change of q->held goes through here (or moves q->fast too, where
 * it is known to be a fast handle's: fast_move), so that q->fast follows
 * it.  Only the state's bits change: any other handle keeps 0 in the
 * role's bits (or RQ_FAST_REC's 16), so that its q->fast matches no
 * RQ_FAST whatever its held state, and the generation's bits stay. */
static inline void set_held(rq *q, enum held_state held)
{
    q->held = held;
    q->fast = (q->fast & ~(uint64_t)RQ_FAST(0, 3)) | (uint64_t)RQ_FAST(0, held);
}

/* A fast handle's q->fast from code FROM to code TO, where the caller
 * knows it is FROM: its generation kept. */
static inline void fast_move(rq *q, int from, int to)
{
    q->fast += (uint64_t)(to - from);
}

/* How a poller's last RQ_EAGAIN armed its object (rq_poll_timeout). */
enum poll_arm { POLL_IDLE, POLL_ARMED_NAP, POLL_ARMED };

/* An MPSC reservation holds the producers' lock.  On Windows the lock is a
 * mutex that the OS gives to a thread: from any other thread an unlock
 * would fail, and once the reserving thread has ended another producer
 * may already have recovered the lock and be writing the same slot.  On
 * Linux the lock belongs to the handle, but the rule is kept the same on
 * both, so that a program right on one is right on the other: only the
 * thread that reserved may commit (or drop the reservation at close). */
static inline int reservation_is_ours(const rq *q)
{
    return !q->mpsc || q->reserver == rq_plat_thread_id();
}

/* The fork generation now (platform.h). */
static inline uint64_t fork_generation_now(void)
{
    return rq_load_relaxed_u64(&rq_plat_fork_generation);
}

/* A child of fork() shares its parent's mapping and descriptors but not
 * its roles: the parent may still be pushing or popping through the same
 * offsets, and the locks are the parent's.  One load tells (GEN:
 * fork_generation_now(), where the caller has it already). */
static inline int opened_under(const rq *q, uint64_t gen)
{
    return q->fork_generation == gen;
}

static inline int opened_in_this_process(const rq *q)
{
    return opened_under(q, fork_generation_now());
}

/* Is q->fast CODE (RQ_FAST...), the handle opened in this process?  GEN:
 * fork_generation_now().  One compare: in a fork()ed child the generation
 * has moved on by RQ_FORK_STEP or more, which no code below it makes up
 * for. */
static inline int fast_is(const rq *q, uint64_t gen, int code)
{
    return q->fast == gen + (uint64_t)code;
}

/* Tries at a stored position that stays put around its offset's load
 * (message_counts, rq_next_seq).  A try fails only when the peer stores
 * the copy between the two loads of it, a window of three loads: an SPSC
 * side stores once in P single messages, an MPSC producer once a publish,
 * under the lock.  Measured with the peers pushing and popping flat out
 * (SPSC N = 1, 2, 1,024; MPSC with two producers, N = 2 and 1,024; the
 * reader in a loop for 3 s each, 1.2 to 2.6 x 10^8 reads; on a 2-core VM
 * at a load of 11 the peers moved only 7,000 to 250,000 messages in that
 * time, so this is a low rate of stores): no read needed more than 2
 * tries, and 1 in 10^6 to 10^8 needed 2.  Back-to-back tries fail
 * together only if the peer stores in each window, once per three of our
 * loads, which no honest peer does (its stores are at least a publish
 * apart, P of them for SPSC); and even a failed check gives a wrong number
 * only if the copy was 2N or more behind the offset read, which takes a
 * reader stalled between its loads while 2N - P messages go by.  So a few
 * tries suffice, and 8 costs nothing when the first holds.  What the bound
 * is for is the peer that stores without end (a hostile one): it gets the
 * last try's number, never a hang. */
#define POSITION_TRIES 8

/* queue.c: after a role is taken, wakes the peer (a sleeper or a poller)
 * of PRODUCER's side so that it re-checks: a predecessor may have died
 * between publishing and signalling. */
void rq_queue_announce(rq *q, int producer);

#endif
