/*
 * queue.c - the public queue API: open/attach, roles, push/pop, waiting and
 * waking.  OS-neutral: everything OS-specific goes through platform.h.
 *
 * Wake-up protocol (an event count per direction, see layout.h):
 *   waiter:   seq = S; waiters++; if (!ready) sleep while seq == S; waiters--
 *   signaler: publish offset; if (waiters) { seq++; wake }
 * By default the publish is a release store and the signaler reads
 * `waiters` right after it with only a compiler barrier between (ring.h):
 * the busy side makes no fence.  The side about to sleep pays instead:
 * before a long sleep it runs an asymmetric barrier through every process
 * of the queue (rq_plat_fence_heavy, membarrier on Linux) and re-checks, so
 * either its re-check sees the new offset or the signaler sees it
 * registered, and then seq moves and it cannot sleep through it.  The first
 * sleep of a wait is a short nap without the barrier (wait_on says why): a
 * message published in that race is seen at most one nap late, never lost.
 * With RQ_FULL_FENCES (asked for at create, or set where the OS has no
 * asymmetric barrier) the publish and waiters++ are both sequentially
 * consistent instead, and no barrier is needed.  With both sides busy
 * nobody is registered and a message costs no system call.
 * The consumer is the only sleeper on data_event: it registers by setting
 * bit 0 of waiters and leaves by clearing it, and MPSC producers that see
 * it registered take the wake by clearing the bit (a fetch-and: the one
 * that saw it set signals), so that one of them signals each sleep instead
 * of every producer that publishes meanwhile.
 */
#include <stdlib.h>
#include <string.h>

#include "crashpoint.h"
#include "deadline.h"
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
    uint32_t fork_generation; /* rq_plat_fork_generation at open */
    int mpsc;
    int owns_role_line; /* SPSC producer or consumer: keeps the attached flag */
    int pushed;         /* producer: published at least one message */
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
};

/* How a poller's last RQ_EAGAIN armed its object (rq_poll_timeout). */
enum poll_arm { POLL_IDLE, POLL_ARMED_NAP, POLL_ARMED };

/* ---- waiting and waking ---------------------------------------------- */

/* A wait's re-check (READY with its CTX): these two for a slot ring's
 * handle, records.c's for a record ring. */
static int ready_for_consumer(void *ctx)
{
    rq *q = ctx;
    return rq_ring_has_data(&q->ring);
}

static int ready_for_producer(void *ctx)
{
    rq *q = ctx;
    return rq_ring_has_space(&q->ring, q->mpsc);
}

/* After a re-check found work: was event EV never signalled since we read
 * SEQ (coalesce.c's no_requester_woke asks the same of its wake counter)?
 * A live peer may be just between its publish and its signal, so it gets
 * a short grace before the wake counts as missed. */
static int event_never_signalled(rq *q, struct rq_shm_event *ev, uint32_t seq)
{
    if (rq_load_acquire_u32(&ev->seq) != seq)
        return 0;
    (void)rq_plat_wait(q->segment.plat, &ev->seq, seq, RQ_MISSED_WAKE_GRACE_MS);
    return rq_load_acquire_u32(&ev->seq) == seq;
}

/* At the end of a full re-check slice with nothing to do: was our queue
 * unlinked meanwhile?  Then nobody new can reach it, and waiting on would
 * be waiting on an orphan (rq.h, rq_unlink).  One fstat per slice, never
 * per message.  RQ_ETIMEDOUT (wait on), RQ_EUNLINKED or RQ_ESYS. */
static int orphan_check(rq *q)
{
    int stale = rq_plat_segment_stale(q->segment.plat);
    if (stale < 0)
        return stale;
    return stale ? RQ_EUNLINKED : RQ_ETIMEDOUT;
}

/* Counts us in EV's waiters.  Both are sequentially consistent (the
 * no-lost-wake-up rule).  The consumer waits alone on data_event (its role
 * is exclusive, and a dead holder's count is cleared at open): it sets and
 * clears bit 0, leaving the poller bit as it is, so that a producer may
 * take its wake by clearing the bit (wake_consumer); producers, of which
 * many may wait, add and subtract. */
static void register_waiter(rq *q, struct rq_shm_event *ev)
{
    if (ev == &q->shm->data_event)
        rq_fetch_or_u32(&ev->waiters, 1); /* keeps a poller bit of ours */
    else
        rq_fetch_add_u32(&ev->waiters, 1);
}

static void unregister_waiter(rq *q, struct rq_shm_event *ev)
{
    if (ev == &q->shm->data_event)
        rq_fetch_and_u32(&ev->waiters, ~RQ_WAITERS_COUNT);
    else
        rq_fetch_sub_u32(&ev->waiters, 1);
}

/* Sleeps on EV until woken, READY(CTX) says go, or the deadline passes.  Returns
 * RQ_OK (caller re-checks the ring), RQ_EAGAIN for a zero timeout,
 * RQ_ETIMEDOUT, or RQ_ESYS.  No sleep outlasts RQ_RECHECK_MS (deadline.h);
 * a re-check that finds the ring ready without any signal having come
 * counts a missed wake-up, and one that finds nothing checks whether the
 * queue was unlinked (RQ_EUNLINKED).
 *
 * Without full fences the peer publishes with a plain store and reads
 * `waiters` right after, so in a race with our registration it may miss
 * us.  The cure is a barrier on the peer's CPU (rq_plat_fence_heavy), but
 * it costs tens of microseconds on a VM, and the race is rare: so the first
 * sleep of a wait is a nap of RQ_UNFENCED_NAP_MS without it (a wake-up,
 * the usual end of a sleep, needs no barrier), and only a wait that lasts
 * longer pays for the barrier and re-checks before sleeping on.  A message
 * published in the race is seen at most one nap late, never lost.
 * *NAPPED carries that state across the calls of one wait. */
static int wait_on(rq *q, struct rq_shm_event *ev, int (*ready)(void *), void *ctx,
                   const struct rq_deadline *d, int *napped)
{
    int left = rq_deadline_left(d);
    if (left == 0)
        return rq_deadline_error(d);
    uint32_t seq = rq_load_acquire_u32(&ev->seq);
    /* After seq: rq_interrupt sets the flag before it moves seq on, so
     * either we see the flag here or the sleep below returns at once. */
    if (rq_load_acquire_u32(&q->interrupted))
        return RQ_EINTR;
    rq_fetch_add_u64(&q->self->waits, 1);
    register_waiter(q, ev);
    RQ_CRASH_POINT(WAIT_AFTER_REGISTER);
    int rc = RQ_OK, is_slice = 0, slice;
    if (q->ring.full_fences) {
        slice = rq_deadline_slice(left, &is_slice);
    } else if (!*napped) {
        *napped = 1;
        slice = left >= 0 && left < RQ_UNFENCED_NAP_MS ? left : RQ_UNFENCED_NAP_MS;
    } else if (rq_plat_fence_heavy() == RQ_OK) {
        slice = rq_deadline_slice(left, &is_slice);
    } else {
        slice = RQ_UNFENCED_NAP_MS; /* no barrier: never trust a long sleep */
    }
    if (!ready(ctx)) {
        rc = rq_plat_wait(q->segment.plat, &ev->seq, seq, slice);
        RQ_CRASH_POINT(WAIT_AFTER_WAKE);
        if (rc == RQ_ETIMEDOUT && is_slice) {
            if (!ready(ctx))
                rc = orphan_check(q);
            else if (event_never_signalled(q, ev, seq))
                rq_fetch_add_u64(&q->self->missed_wakes, 1);
        }
    }
    unregister_waiter(q, ev);
    return rc == RQ_ETIMEDOUT ? RQ_OK : rc; /* the loop re-checks, then times out */
}

/* A call ends with RC: an RQ_EINTR uses the interrupt up. */
static int wait_result(rq *q, int rc)
{
    if (rc == RQ_EINTR)
        rq_store_seq_u32(&q->interrupted, 0);
    return rc;
}

/* The poll object's side of EV: the consumer's (data) or the producers'. */
static int poll_side_of(rq *q, struct rq_shm_event *ev)
{
    return ev == &q->shm->data_event ? RQ_POLL_DATA : RQ_POLL_SPACE;
}

/* Makes the poller's object of EV ready if the poller bit says one is
 * armed (or if FORCE), clearing the bit first: a poller that arms again
 * after our clear sets it again and is signalled by the next publish,
 * while one cleared but not yet notified is the crash window below,
 * covered by the poller's bounded wait and by our restart (role_acquire). */
static void notify_poller(rq *q, struct rq_shm_event *ev, int force)
{
    uint32_t old = rq_fetch_and_u32(&ev->waiters, ~RQ_WAITERS_POLLER);
    if (!(old & RQ_WAITERS_POLLER) && !force)
        return;
    RQ_CRASH_POINT(SIGNAL_BEFORE_NOTIFY);
    rq_plat_poll_notify(q->segment.plat, poll_side_of(q, ev));
    rq_fetch_add_u64(&q->self->wakes, 1);
}

/* Wakes EV's sleepers: moves seq, then wakes the futex word. */
static void wake_sleepers(rq *q, struct rq_shm_event *ev, int all)
{
    RQ_CRASH_POINT(SIGNAL_BEFORE_BUMP);
    rq_fetch_add_u32(&ev->seq, 1);
    RQ_CRASH_POINT(SIGNAL_BEFORE_WAKE);
    rq_plat_wake(q->segment.plat, &ev->seq, all);
    rq_fetch_add_u64(&q->self->wakes, 1);
}

/* Signals EV's waiters: pollers through their object, sleepers through
 * the futex word.  With only a poller armed nobody sleeps on the word, so
 * its bump and wake are skipped (a sleeper registering now re-checks the
 * ring after its registration, as always). */
static void signal_peer(rq *q, struct rq_shm_event *ev, int all)
{
    uint32_t seen = rq_load_seq_u32(&ev->waiters);
    if (seen & RQ_WAITERS_POLLER) {
        notify_poller(q, ev, 0);
        if (!(seen & RQ_WAITERS_COUNT))
            return;
    }
    wake_sleepers(q, ev, all);
}

/* After a publish: wakes the consumer if it is registered as waiting.  On
 * an MPSC queue several producers can see the same sleep; only the one
 * whose fetch-and takes the sleeper's count from 1 to 0 signals it (one
 * wake per sleep, not one per producer that publishes meanwhile); the
 * poller bit beside it is taken the same way by notify_poller.  A producer
 * killed between its claim and its signal leaves the consumer to the next
 * producer's open or its own re-check, as an SPSC producer killed between
 * publishing and signalling does. */
static inline void wake_consumer(rq *q)
{
    struct rq_shm_event *ev = &q->shm->data_event;
    if (!rq_ring_peer_waits(&q->ring, &ev->waiters))
        return;
    if (!q->mpsc) {
        signal_peer(q, ev, 0);
        return;
    }
    uint32_t seen = rq_load_seq_u32(&ev->waiters);
    if (seen & RQ_WAITERS_POLLER)
        notify_poller(q, ev, 0);
    if ((seen & RQ_WAITERS_COUNT) &&
        (rq_fetch_and_u32(&ev->waiters, ~RQ_WAITERS_COUNT) & RQ_WAITERS_COUNT))
        wake_sleepers(q, ev, 0);
}

/* After freeing slots from OLD_READ on (K of them): wakes the producers if
 * any waits and the ring was full. */
static inline void wake_producers(rq *q, uint32_t old_read, uint32_t k)
{
    if (rq_ring_peer_waits(&q->ring, &q->shm->space_event.waiters) &&
        rq_ring_was_full_k(&q->ring, old_read, k))
        signal_peer(q, &q->shm->space_event, 1); /* all: MPSC producers may queue up */
}

/* ---- waiting through the poll object (rq_poll_handle) ---------------- */

/* This side's position: it moves whenever this side makes progress. */
static uint64_t poll_position(const rq *q)
{
    if (q->rec)
        return rq_rec_position(q->rec);
    return q->role == RQ_PRODUCER ? rq_ring_write_pos(&q->ring) : rq_ring_read_pos(&q->ring);
}

/* The RQ_EAGAIN of a poller: arms its object exactly as wait_on registers
 * a sleeper, then re-checks.  The object is drained first (so that a
 * level-triggered loop does not spin and an edge-triggered one sees the
 * next write as a new edge), then the poller bit announces us, then the
 * ring is checked again: a publish after that check sees the bit and
 * makes the object ready.  Drained after the announcement instead, it
 * could lose the byte of a signaller that cleared our new bit for a
 * publish we had taken already (model/poll.pml finds that).  The drain
 * is never skipped, although our bit still set says no signaller wrote
 * since our last drain: one that cleared the bit just before that drain
 * may write just after it, and a level-triggered loop would then spin on
 * that byte for as long as nothing is published.  Producers of an MPSC
 * queue share the bit: one that finds the ring ready after all puts a
 * byte back, since what it drained may have been meant for another.
 * Without full fences the publisher's plain store may pass its read of
 * the bit, as with sleepers: the first arming after progress is taken
 * without the barrier (the caller waits at most RQ_UNFENCED_NAP_MS,
 * rq_poll_timeout), a second one in a row pays for it.  RQ_OK: ready
 * after all, go round again; RQ_EAGAIN: armed; RQ_ESYS. */
static int poll_arm(rq *q, struct rq_shm_event *ev, int (*ready)(void *), void *ctx)
{
    int side = poll_side_of(q, ev);
    int rc = rq_plat_poll_drain(q->segment.plat, side);
    if (rc < 0)
        return rc;
    uint64_t pos = poll_position(q);
    int again = q->poll_arm != POLL_IDLE && pos == q->poll_arm_pos;
    q->poll_arm_pos = pos;
    rq_fetch_or_u32(&ev->waiters, RQ_WAITERS_POLLER);
    RQ_CRASH_POINT(POLL_AFTER_ARM);
    if (q->ring.full_fences)
        q->poll_arm = POLL_ARMED;
    else if (!again)
        q->poll_arm = POLL_ARMED_NAP;
    else
        q->poll_arm = rq_plat_fence_heavy() == RQ_OK ? POLL_ARMED : POLL_ARMED_NAP;
    if (!ready(ctx))
        return RQ_EAGAIN;
    if (q->mpsc && side == RQ_POLL_SPACE)
        rq_plat_poll_notify(q->segment.plat, side);
    return RQ_OK;
}

/* A claim loop's RQ_EAGAIN for a poller: arms, or says go round again
 * (RQ_OK).  ROUNDS bounds the rounds of one call: a ring that keeps
 * looking ready to the re-check but not to the claim (a corrupt one is
 * reported by the claim) leaves the object ready and returns RQ_EAGAIN. */
static int poll_again(rq *q, struct rq_shm_event *ev, int (*ready)(void *), void *ctx, int *rounds)
{
    if (++*rounds > 4) {
        rq_plat_poll_notify(q->segment.plat, poll_side_of(q, ev));
        return RQ_EAGAIN;
    }
    return poll_arm(q, ev, ready, ctx);
}

/* ---- waking, for a record queue's calls (records.h) ------------------ */

/* A wait for more than the peer's wake test covers (rq_wait_turn.nap):
 * sleeps of at most RQ_UNFENCED_NAP_MS, since no signal may come for what
 * this call needs, and the unlink check once per RQ_RECHECK_MS of them. */
static int wait_nap(rq *q, struct rq_shm_event *ev, int (*ready)(void *), void *ctx,
                    struct rq_wait_turn *t)
{
    int left = rq_deadline_left(&t->d);
    if (left == 0)
        return rq_deadline_error(&t->d);
    struct rq_deadline nap =
        rq_deadline_start(left >= 0 && left < RQ_UNFENCED_NAP_MS ? left : RQ_UNFENCED_NAP_MS);
    int fenceless = 0; /* the nap is the bound: no barrier is paid for */
    int rc = wait_on(q, ev, ready, ctx, &nap, &fenceless);
    /* The nap's own end (already over when wait_on looked, if this thread
     * lost its CPU meanwhile) is not the call's: its deadline is checked
     * above, on the next turn. */
    if (rc == RQ_ETIMEDOUT)
        rc = RQ_OK;
    if (rc == RQ_OK && ++t->naps % (RQ_RECHECK_MS / RQ_UNFENCED_NAP_MS) == 0 && !ready(ctx)) {
        rc = orphan_check(q);
        rc = rc == RQ_ETIMEDOUT ? RQ_OK : rc;
    }
    return rc;
}

/* One turn of a wait on the data event (SPACE 0: the consumer) or the
 * space event (SPACE 1: producers): a sleep with wait_on (or naps, for a
 * turn that asks for them), re-checked with READY(CTX), or for a handle
 * with a poll object and a zero timeout its arming (RQ_EAGAIN when armed).
 * RQ_OK: look again.  Else the call's error. */
static int queue_wait(rq *q, int space, int (*ready)(void *), void *ctx, struct rq_wait_turn *t)
{
    struct rq_shm_event *ev = space ? &q->shm->space_event : &q->shm->data_event;
    if (q->polling && t->timeout_ms == 0) {
        int rc = poll_again(q, ev, ready, ctx, &t->rounds);
        if (rc == RQ_EAGAIN && t->nap && q->poll_arm == POLL_ARMED)
            q->poll_arm = POLL_ARMED_NAP; /* no signal may come: rq_poll_timeout says nap */
        return rc;
    }
    if (t->nap)
        return wait_nap(q, ev, ready, ctx, t);
    return wait_on(q, ev, ready, ctx, &t->d, &t->napped);
}

void rq_queue_wake_consumer(rq *q)
{
    wake_consumer(q);
}

void rq_queue_wake_producers(rq *q)
{
    signal_peer(q, &q->shm->space_event, 1); /* all: MPSC producers may queue up */
}

/* ---- producer -------------------------------------------------------- */

/* The error of a failed rq_mpsc_lock (RC) as the call returns it: the
 * lock's timeout is told apart from a full ring's (RQ_ELOCKED). */
static int producer_lock_failed(rq *q, const struct rq_deadline *d, int rc)
{
    if (rc == RQ_EAGAIN || rc == RQ_ETIMEDOUT)
        rc = rq_deadline_error(d) == RQ_EAGAIN ? RQ_EAGAIN : RQ_ELOCKED;
    /* Another producer holds the lock for one push: nobody will signal
     * us for that, so a poller's object stays ready. */
    if (rc == RQ_EAGAIN && q->polling)
        rq_plat_poll_notify(q->segment.plat, RQ_POLL_SPACE);
    return wait_result(q, rc);
}

int rq_queue_lock_failed(rq *q, const struct rq_wait_turn *t, int rc)
{
    return producer_lock_failed(q, &t->d, rc);
}

int rq_queue_wait(rq *q, int space, int (*ready)(void *), void *ctx, struct rq_wait_turn *t)
{
    int rc = queue_wait(q, space, ready, ctx, t);
    return rc < 0 ? wait_result(q, rc) : rc;
}

/* The claim loop (records.h) for a slot call of SPACE: an MPSC producer
 * locks. */
static inline int claim_loop(rq *q, int space, int (*try_claim)(void *), int (*ready)(void *),
                             void *ctx, struct rq_wait_turn *t)
{
    return rq_claim_loop(q, space && q->mpsc ? &q->lock : NULL, space, try_claim, ready, ctx, t);
}

/* The one-message claims' loops stay out of line: inlined into rq_push or
 * rq_pop, their registers would be saved on the common path too. */
#if defined(__GNUC__)
#define CLAIM_SLOW __attribute__((noinline))
#else
#define CLAIM_SLOW
#endif

/* A slot claim's state (the CTX of its try and re-check): the handle, and
 * where the claim's result goes. */
struct claim {
    rq *q;
    void **payload;   /* one message: its payload */
    const void **msg; /* the consumer's: the oldest message */
    uint32_t *len;    /* and its length */
    uint32_t want;    /* a burst: up to WANT */
    uint32_t *count;  /* claimed or there */
};

/* A slot ring's re-checks, for a producer and for the consumer. */
static int ready_for_producer_claim(void *ctx)
{
    return ready_for_producer(((struct claim *)ctx)->q);
}

static int ready_for_consumer_claim(void *ctx)
{
    return ready_for_consumer(((struct claim *)ctx)->q);
}

/* Waits, as allowed, until TRY_CLAIM(C) succeeds: the slot calls' claim. */
static inline int claim_wait(struct claim *c, int space, int (*try_claim)(void *), int timeout_ms)
{
    struct rq_wait_turn t = rq_wait_turn_start(timeout_ms);
    return claim_loop(c->q, space, try_claim,
                      space ? ready_for_producer_claim : ready_for_consumer_claim, c, &t);
}

/* Claims the next free slot. */
static int try_push_one(void *ctx)
{
    struct claim *c = ctx;
    int rc = rq_ring_push_begin(&c->q->ring, c->payload, c->q->mpsc);
    if (rc == RQ_OK)
        RQ_CRASH_POINT(PUSH_AFTER_CLAIM);
    return rc;
}

/* Claims the next free slot, waiting as allowed.  On RQ_OK in MPSC mode
 * the producers' lock is held until producer_publish. */
static CLAIM_SLOW int producer_claim_wait(rq *q, void **payload, int timeout_ms)
{
    struct claim c = {.q = q, .payload = payload};
    return claim_wait(&c, 1, try_push_one, timeout_ms);
}

/* The common case without the loop: an SPSC producer whose cached view
 * shows room takes the slot at once; anything else (full, MPSC, corrupt)
 * goes the long way, which checks again. */
static inline int producer_claim(rq *q, void **payload, int timeout_ms)
{
    if (!q->mpsc && rq_ring_push_begin(&q->ring, payload, 0) == RQ_OK) {
        RQ_CRASH_POINT(PUSH_AFTER_CLAIM);
        return RQ_OK;
    }
    return producer_claim_wait(q, payload, timeout_ms);
}

/* No statistics store here: rq_stat counts messages by the positions. */
static inline void producer_publish(rq *q, void *payload, uint32_t len)
{
    rq_ring_push_publish(&q->ring, payload, len);
    q->pushed = 1;
    RQ_CRASH_POINT(PUSH_AFTER_PUBLISH);
    if (q->mpsc)
        rq_mpsc_unlock(&q->lock);
    wake_consumer(q);
}

/* ---- consumer -------------------------------------------------------- */

/* The oldest message. */
static int try_pop_one(void *ctx)
{
    struct claim *c = ctx;
    return rq_ring_pop_begin(&c->q->ring, c->msg, c->len);
}

static CLAIM_SLOW int consumer_claim_wait(rq *q, const void **payload, uint32_t *len,
                                          int timeout_ms)
{
    struct claim c = {.q = q, .msg = payload, .len = len};
    return claim_wait(&c, 0, try_pop_one, timeout_ms);
}

/* The common case without the loop: a message is there. */
static inline int consumer_claim(rq *q, const void **payload, uint32_t *len, int timeout_ms)
{
    if (rq_ring_pop_begin(&q->ring, payload, len) == RQ_OK)
        return RQ_OK;
    return consumer_claim_wait(q, payload, len, timeout_ms);
}

static inline void consumer_release(rq *q)
{
    uint32_t old_read = rq_ring_pop_publish(&q->ring);
    RQ_CRASH_POINT(RELEASE_AFTER_PUBLISH);
    wake_producers(q, old_read, 1);
}

/* ---- bursts: many slots, one publish ---------------------------------- */

/* Up to WANT free slots, *COUNT of them claimed. */
static int try_push_burst(void *ctx)
{
    struct claim *c = ctx;
    int rc = rq_ring_push_room(&c->q->ring, c->want, c->q->mpsc, c->count);
    if (rc == RQ_OK)
        RQ_CRASH_POINT(PUSH_BURST_AFTER_CLAIM);
    return rc;
}

/* Claims up to WANT (1..N) free slots, waiting as allowed for one.  On
 * RQ_OK (*ROOM >= 1) in MPSC mode the producers' lock is held until
 * producer_publish_burst: one lock round for the whole batch. */
static int producer_claim_burst(rq *q, uint32_t want, uint32_t *room, int timeout_ms)
{
    struct claim c = {.q = q, .want = want, .count = room};
    return claim_wait(&c, 1, try_push_burst, timeout_ms);
}

/* Publishes K filled slots with one store (K == 0: gives the claim up). */
static void producer_publish_burst(rq *q, uint32_t k)
{
    RQ_CRASH_POINT(PUSH_BURST_AFTER_FILL);
    if (k == 0) {
        if (q->mpsc)
            rq_mpsc_unlock(&q->lock);
        return;
    }
    rq_ring_push_publish_burst(&q->ring, k);
    q->pushed = 1;
    RQ_CRASH_POINT(PUSH_AFTER_PUBLISH);
    if (q->mpsc)
        rq_mpsc_unlock(&q->lock);
    wake_consumer(q);
}

static int try_pop_burst(void *ctx)
{
    struct claim *c = ctx;
    return rq_ring_pop_avail(&c->q->ring, c->want, c->count);
}

/* Up to WANT (1..N) messages, waiting as allowed for one: *AVAIL of them
 * are there, their lengths not yet read. */
static int consumer_claim_burst(rq *q, uint32_t want, uint32_t *avail, int timeout_ms)
{
    struct claim c = {.q = q, .want = want, .count = avail};
    return claim_wait(&c, 0, try_pop_burst, timeout_ms);
}

static void consumer_release_burst(rq *q, uint32_t k)
{
    uint32_t old_read = rq_ring_pop_publish_burst(&q->ring, k);
    RQ_CRASH_POINT(RELEASE_AFTER_PUBLISH);
    wake_producers(q, old_read, k);
}

/* All of WANT (1..N) free slots or none (ARG: struct batch_claim). */
struct batch_claim {
    rq *q;
    uint32_t want;
};

static int try_push_batch(void *arg)
{
    struct batch_claim *a = arg;
    uint32_t room;
    int rc = rq_ring_push_room(&a->q->ring, a->want, a->q->mpsc, &room);
    if (rc == RQ_OK && room < a->want)
        return RQ_EAGAIN;
    if (rc == RQ_OK)
        RQ_CRASH_POINT(PUSH_BURST_AFTER_CLAIM);
    return rc;
}

/* A sleeping batch's re-check: WANT slots free (or a corrupt pair, to be
 * reported by the claim). */
static int ready_for_batch(void *arg)
{
    struct batch_claim *a = arg;
    struct rq_ring *r = &a->q->ring;
    uint32_t w = a->q->mpsc ? rq_load_seq_u32(&r->shm->write_offset) : r->write;
    uint32_t rd = rq_load_seq_u32(&r->shm->read_offset);
    return !rq_ring_pair_ok(r, w, rd) || r->n - rq_ring_distance(r, w, rd) >= a->want;
}

/* Claims WANT free slots at once, waiting as allowed until there are.
 * The consumer signals producers only when it frees a full ring, so a
 * batch of more than one re-checks every nap (rq_wait_turn.nap). */
static int producer_claim_batch(rq *q, uint32_t want, int timeout_ms)
{
    struct batch_claim a = {q, want};
    struct rq_wait_turn t = rq_wait_turn_start(timeout_ms);
    t.nap = want > 1;
    return claim_loop(q, 1, try_push_batch, ready_for_batch, &a, &t);
}

/* A burst's count as the ring can take it: at most N. */
static uint32_t burst_want(const rq *q, size_t count)
{
    return count > q->ring.n ? q->ring.n : (uint32_t)count;
}

/* ---- argument checks ------------------------------------------------- */

/* An MPSC reservation holds the producers' lock.  On Windows the lock is a
 * mutex that the OS gives to a thread: from any other thread an unlock
 * would fail, and once the reserving thread has ended another producer
 * may already have recovered the lock and be writing the same slot.  On
 * Linux the lock belongs to the handle, but the rule is kept the same on
 * both, so that a program right on one is right on the other: only the
 * thread that reserved may commit (or drop the reservation at close). */
static int reservation_is_ours(const rq *q)
{
    return !q->mpsc || q->reserver == rq_plat_thread_id();
}

/* A child of fork() shares its parent's mapping and descriptors but not
 * its roles: the parent may still be pushing or popping through the same
 * offsets, and the locks are the parent's.  One load tells. */
static int opened_in_this_process(const rq *q)
{
    return q->fork_generation == rq_load_relaxed_u32(&rq_plat_fork_generation);
}

static int check_call(const rq *q, int role, int timeout_ms)
{
    if (!q || timeout_ms < RQ_INFINITE)
        return RQ_EINVAL;
    if (!opened_in_this_process(q))
        return RQ_EFORK;
    if (q->role != role)
        return RQ_EROLE;
    return RQ_OK;
}

/* An attach configuration (slot_count and slot_size 0) carries only
 * RQ_ANY_OWNER and an optional mode to check; it never creates. */
static int is_attach_config(const rq_config *cfg)
{
    return cfg && cfg->slot_count == 0 && cfg->slot_size == 0;
}

static int check_config(const rq_config *cfg)
{
    if ((cfg->mode & ~0777u) != 0)
        return RQ_EINVAL;
    if (is_attach_config(cfg))
        return (cfg->flags & ~(uint32_t)RQ_ANY_OWNER) == 0 ? RQ_OK : RQ_EINVAL;
    if (cfg->flags & RQ_RECORDS)
        return rq_rec_check_config(cfg);
    if (cfg->slot_count < 1 || cfg->slot_count > RQ_SLOT_COUNT_MAX)
        return RQ_EINVAL;
    if (cfg->slot_size < 1 || cfg->slot_size > RQ_SLOT_SIZE_MAX)
        return RQ_EINVAL;
    if ((cfg->flags & ~(uint32_t)(RQ_MPSC | RQ_FULL_FENCES | RQ_ANY_OWNER)) != 0)
        return RQ_EINVAL;
    /* Refused before anything exists: no object is made that could never
     * be sized or mapped. */
    uint64_t total = rq_layout_total(cfg->slot_count, cfg->slot_size);
    if (total > RQ_SEGMENT_SIZE_MAX || total > (uint64_t)SIZE_MAX)
        return RQ_EINVAL;
    return RQ_OK;
}

/* ---- the public API: data path --------------------------------------- */

int rq_push(rq *q, const void *msg, size_t len, int timeout_ms)
{
    int rc = check_call(q, RQ_PRODUCER, timeout_ms);
    if (rc < 0)
        return rc;
    q->lock.reserving = 0; /* the next MPSC hold lasts one call */
    if (q->rec)
        return wait_result(q, rq_rec_push(q->rec, msg, len, timeout_ms));
    if (!msg && len > 0)
        return RQ_EINVAL;
    if (q->held != HELD_NONE)
        return RQ_ESTATE;
    if (len > q->ring.slot_size)
        return RQ_EMSGSIZE;
    void *payload;
    rc = producer_claim(q, &payload, timeout_ms);
    if (rc < 0)
        return rc;
    if (len > 0)
        memcpy(payload, msg, len);
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    producer_publish(q, payload, (uint32_t)len);
    return RQ_OK;
}

/* A record reservation (RC: RQ_OK or a count) holds an MPSC lock past
 * the call, like a slot reservation: it goes on the thread's list, so that
 * the thread's other handles of the queue get RQ_EDEADLK, not a wait for
 * themselves. */
static int rec_reserve_kept(rq *q, int rc)
{
    if (rc >= 0 && q->mpsc)
        rq_mpsc_keep(&q->lock);
    return rc;
}

/* Hands out the K slots claimed at the ring's write cursor (K >= 1), their
 * payloads in BUFS from index FIRST on (those before it the caller's claim
 * gave already), and holds them reserved for rq_commit or rq_commit_burst.
 * MPSC: the producers' lock stays held past the call, on the thread's list
 * (rq_mpsc_keep), so that only the reserving thread commits and the
 * thread's other handles get RQ_EDEADLK. */
static void hold_reserved(rq *q, void **bufs, uint32_t first, uint32_t k)
{
    for (uint32_t i = first; i < k; i++)
        bufs[i] = rq_ring_claimed(&q->ring, i);
    q->held = HELD_RESERVED;
    q->held_count = k;
    q->reserved = bufs[0];
    if (q->mpsc) {
        q->reserver = rq_plat_thread_id();
        rq_mpsc_keep(&q->lock); /* held past this call */
    }
}

int rq_reserve(rq *q, void **slot, int timeout_ms)
{
    int rc = check_call(q, RQ_PRODUCER, timeout_ms);
    if (rc < 0)
        return rc;
    q->lock.reserving = 1; /* shown by rq_stat: this hold may last */
    if (q->rec)
        return wait_result(
            q, rec_reserve_kept(q, rq_rec_reserve(q->rec, q->ring.slot_size, slot, timeout_ms)));
    if (!slot)
        return RQ_EINVAL;
    if (q->held == HELD_RESERVED) {
        if (!reservation_is_ours(q))
            return RQ_ESTATE;
        *slot = q->reserved;
        return RQ_OK;
    }
    rc = producer_claim(q, slot, timeout_ms);
    if (rc < 0)
        return rc;
    hold_reserved(q, slot, 1, 1); /* *SLOT: the claim gave the payload */
    return RQ_OK;                 /* not the count, as the bursts return */
}

int rq_reserve_len(rq *q, size_t len, void **slot, int timeout_ms)
{
    int rc = check_call(q, RQ_PRODUCER, timeout_ms);
    if (rc < 0)
        return rc;
    q->lock.reserving = 1; /* shown by rq_stat: this hold may last */
    if (q->rec)
        return wait_result(q, rec_reserve_kept(q, rq_rec_reserve(q->rec, len, slot, timeout_ms)));
    if (len > q->ring.slot_size)
        return RQ_EMSGSIZE;
    return rq_reserve(q, slot, timeout_ms);
}

int rq_commit(rq *q, size_t len)
{
    int rc = check_call(q, RQ_PRODUCER, 0);
    if (rc < 0)
        return rc;
    if (q->rec)
        return rq_rec_commit(q->rec, len);
    if (q->held != HELD_RESERVED || !reservation_is_ours(q))
        return RQ_ESTATE;
    if (len > q->ring.slot_size)
        return RQ_EMSGSIZE;
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    void *payload = q->reserved;
    q->held = HELD_NONE;
    q->held_count = 0;
    q->reserved = NULL;
    producer_publish(q, payload, (uint32_t)len); /* a burst's first slot; the rest are dropped */
    return RQ_OK;
}

int rq_push_burst(rq *q, const void *const *msgs, const size_t *lens, size_t count, int timeout_ms)
{
    int rc = check_call(q, RQ_PRODUCER, timeout_ms);
    if (rc < 0)
        return rc;
    q->lock.reserving = 0; /* the next MPSC hold lasts one call */
    if (q->rec)
        return wait_result(q, rq_rec_push_burst(q->rec, msgs, lens, count, timeout_ms));
    if (count == 0)
        return 0;
    if (!msgs || !lens)
        return RQ_EINVAL;
    if (q->held != HELD_NONE)
        return RQ_ESTATE;
    uint32_t want = burst_want(q, count);
    for (uint32_t i = 0; i < want; i++) {
        if (!msgs[i] && lens[i] > 0)
            return RQ_EINVAL;
        if (lens[i] > q->ring.slot_size)
            return RQ_EMSGSIZE; /* nothing pushed */
    }
    uint32_t k;
    rc = producer_claim_burst(q, want, &k, timeout_ms);
    if (rc < 0)
        return rc;
    k = k < want ? k : want;
    for (uint32_t i = 0; i < k; i++) {
        if (lens[i] > 0)
            memcpy(rq_ring_claimed(&q->ring, i), msgs[i], lens[i]);
        rq_ring_set_len(&q->ring, i, (uint32_t)lens[i]);
        if (i + 1 < k)
            RQ_CRASH_POINT(PUSH_BURST_MID_FILL); /* half a batch written */
    }
    producer_publish_burst(q, k);
    return (int)k;
}

int rq_reserve_burst(rq *q, void **slots, size_t count, int timeout_ms)
{
    int rc = check_call(q, RQ_PRODUCER, timeout_ms);
    if (rc < 0)
        return rc;
    q->lock.reserving = 1; /* shown by rq_stat: this hold may last */
    if (q->rec)
        return RQ_EINVAL; /* records: rq_reserve_burst_len (rq.h) */
    if (!slots || count == 0)
        return RQ_EINVAL;
    if (q->held != HELD_NONE)
        return RQ_ESTATE;
    uint32_t want = burst_want(q, count), k;
    rc = producer_claim_burst(q, want, &k, timeout_ms);
    if (rc < 0)
        return rc;
    k = k < want ? k : want;
    hold_reserved(q, slots, 0, k);
    return (int)k;
}

int rq_reserve_burst_len(rq *q, const size_t *lens, size_t count, void **bufs, int timeout_ms)
{
    int rc = check_call(q, RQ_PRODUCER, timeout_ms);
    if (rc < 0)
        return rc;
    q->lock.reserving = 1; /* shown by rq_stat: this hold may last */
    if (q->rec)
        return wait_result(
            q, rec_reserve_kept(q, rq_rec_reserve_batch(q->rec, lens, count, bufs, timeout_ms)));
    if (!lens || !bufs || count == 0)
        return RQ_EINVAL;
    if (q->held != HELD_NONE)
        return RQ_ESTATE;
    uint32_t want = burst_want(q, count);
    for (uint32_t i = 0; i < want; i++)
        if (lens[i] > q->ring.slot_size)
            return RQ_EMSGSIZE; /* nothing reserved */
    rc = producer_claim_batch(q, want, timeout_ms);
    if (rc < 0)
        return rc;
    hold_reserved(q, bufs, 0, want); /* all WANT or none: the claim waited for them all */
    return (int)want;
}

int rq_commit_burst(rq *q, const size_t *lens, size_t count)
{
    int rc = check_call(q, RQ_PRODUCER, 0);
    if (rc < 0)
        return rc;
    if (q->rec)
        return rq_rec_commit_burst(q->rec, lens, count);
    if (q->held != HELD_RESERVED || !reservation_is_ours(q))
        return RQ_ESTATE;
    if (count > q->held_count || (count > 0 && !lens))
        return RQ_EINVAL;
    for (size_t i = 0; i < count; i++)
        if (lens[i] > q->ring.slot_size)
            return RQ_EMSGSIZE; /* the reservation is kept */
    for (uint32_t i = 0; i < (uint32_t)count; i++) {
        rq_ring_set_len(&q->ring, i, (uint32_t)lens[i]);
        if (i + 1 < count)
            RQ_CRASH_POINT(PUSH_BURST_MID_FILL);
    }
    q->held = HELD_NONE;
    q->held_count = 0;
    q->reserved = NULL;
    producer_publish_burst(q, (uint32_t)count);
    return RQ_OK;
}

static void fill_info(rq_msg_info *info, uint64_t seq, int redelivered)
{
    info->seq = seq;
    info->flags = redelivered ? RQ_MSG_REDELIVERED : 0;
    info->reserved = 0;
}

int rq_pop(rq *q, void *buf, size_t cap, size_t *len, int timeout_ms)
{
    return rq_pop_info(q, buf, cap, len, NULL, timeout_ms);
}

int rq_pop_info(rq *q, void *buf, size_t cap, size_t *len, rq_msg_info *info, int timeout_ms)
{
    int rc = check_call(q, RQ_CONSUMER, timeout_ms);
    if (rc < 0)
        return rc;
    if (q->rec)
        return wait_result(q, rq_rec_pop(q->rec, buf, cap, len, info, timeout_ms));
    if (!len || (!buf && cap > 0))
        return RQ_EINVAL;
    if (q->held != HELD_NONE)
        return RQ_ESTATE;
    const void *payload;
    uint32_t n;
    rc = consumer_claim(q, &payload, &n, timeout_ms);
    if (rc < 0)
        return rc;
    *len = n;
    if (n > cap)
        return RQ_EMSGSIZE; /* nothing consumed */
    int redelivered;
    uint64_t seq = rq_ring_oldest_info(&q->ring, &redelivered);
    if (n > 0)
        memcpy(buf, payload, n);
    if (info)
        fill_info(info, seq, redelivered);
    RQ_CRASH_POINT(POP_AFTER_COPY);
    consumer_release(q);
    return RQ_OK;
}

int rq_pop_burst(rq *q, void *buf, size_t cap, size_t *lens, size_t max, int timeout_ms)
{
    int rc = check_call(q, RQ_CONSUMER, timeout_ms);
    if (rc < 0)
        return rc;
    if (q->rec)
        return wait_result(q, rq_rec_pop_burst(q->rec, buf, cap, lens, max, timeout_ms));
    if (max == 0)
        return 0;
    if (!lens || !buf)
        return RQ_EINVAL;
    if (q->held != HELD_NONE)
        return RQ_ESTATE;
    uint32_t want = burst_want(q, max), k;
    rc = consumer_claim_burst(q, want, &k, timeout_ms);
    if (rc < 0)
        return rc;
    k = k < want ? k : want;
    uint32_t done = 0;
    for (; done < k; done++) {
        const void *payload;
        uint32_t n;
        rc = rq_ring_message(&q->ring, done, &payload, &n);
        if (rc < 0 || n > cap) {
            if (done > 0)
                break; /* the next call reports it */
            if (rc == RQ_OK)
                lens[0] = n; /* nothing consumed */
            return rc < 0 ? rc : RQ_EMSGSIZE;
        }
        lens[done] = n;
        if (n > 0)
            memcpy((unsigned char *)buf + (size_t)done * cap, payload, n);
    }
    RQ_CRASH_POINT(POP_BURST_AFTER_COPY);
    consumer_release_burst(q, done);
    return (int)done;
}

int rq_peek(rq *q, const void **msg, size_t *len, int timeout_ms)
{
    return rq_peek_info(q, msg, len, NULL, timeout_ms);
}

int rq_peek_info(rq *q, const void **msg, size_t *len, rq_msg_info *info, int timeout_ms)
{
    int rc = check_call(q, RQ_CONSUMER, timeout_ms);
    if (rc < 0)
        return rc;
    if (q->rec)
        return wait_result(q, rq_rec_peek(q->rec, msg, len, info, timeout_ms));
    if (!msg || !len)
        return RQ_EINVAL;
    if (q->held != HELD_PEEKED || !q->peeked) { /* none, or the rest of a burst */
        rc = consumer_claim(q, &q->peeked, &q->peeked_len, timeout_ms);
        if (rc < 0)
            return rc;
        rq_ring_deliver(&q->ring);
        if (q->held != HELD_PEEKED)
            q->held_count = 1;
        q->held = HELD_PEEKED;
    }
    *msg = q->peeked;
    *len = q->peeked_len;
    if (info) { /* the held message is the oldest: its number is read_pos */
        int redelivered;
        uint64_t seq = rq_ring_oldest_info(&q->ring, &redelivered);
        fill_info(info, seq, redelivered);
    }
    return RQ_OK;
}

int rq_release(rq *q)
{
    int rc = check_call(q, RQ_CONSUMER, 0);
    if (rc < 0)
        return rc;
    if (q->rec)
        return rq_rec_release(q->rec);
    if (q->held != HELD_PEEKED)
        return RQ_ESTATE;
    RQ_CRASH_POINT(RELEASE_BEFORE_PUBLISH);                  /* processed, not yet released */
    q->held = --q->held_count > 0 ? HELD_PEEKED : HELD_NONE; /* a burst's rest stays */
    q->peeked = NULL;
    consumer_release(q);
    return RQ_OK;
}

int rq_peek_burst(rq *q, rq_msg_view *msgs, size_t max, int timeout_ms)
{
    int rc = check_call(q, RQ_CONSUMER, timeout_ms);
    if (rc < 0)
        return rc;
    if (q->rec)
        return wait_result(q, rq_rec_peek_burst(q->rec, msgs, max, timeout_ms));
    if (!msgs || max == 0)
        return RQ_EINVAL;
    uint32_t want = burst_want(q, max), k;
    rc = consumer_claim_burst(q, want, &k, timeout_ms);
    if (rc < 0)
        return rc;
    k = k < want ? k : want;
    uint32_t done = 0;
    uint64_t first = rq_ring_read_pos(&q->ring);
    for (; done < k; done++) {
        const void *payload;
        uint32_t n;
        rc = rq_ring_message(&q->ring, done, &payload, &n);
        if (rc < 0) {
            if (done > 0)
                break; /* the next call reports it */
            return rc;
        }
        uint64_t seq = first + done;
        msgs[done] = (rq_msg_view){payload, n, seq,
                                   seq < q->ring.redeliver_below ? RQ_MSG_REDELIVERED : 0u, 0u};
    }
    rq_ring_deliver_burst(&q->ring, done); /* one mark for the batch, before the hand-over */
    q->held = HELD_PEEKED;
    q->held_count = done;
    q->peeked = msgs[0].data;
    q->peeked_len = (uint32_t)msgs[0].len;
    return (int)done;
}

int rq_release_burst(rq *q, size_t count)
{
    int rc = check_call(q, RQ_CONSUMER, 0);
    if (rc < 0)
        return rc;
    if (q->rec)
        return rq_rec_release_burst(q->rec, count);
    if (q->held != HELD_PEEKED)
        return RQ_ESTATE;
    if (count == 0 || count > q->held_count)
        return RQ_EINVAL;
    RQ_CRASH_POINT(RELEASE_BURST_BEFORE_PUBLISH); /* processed, not yet released */
    q->held_count -= (uint32_t)count;
    q->held = q->held_count > 0 ? HELD_PEEKED : HELD_NONE; /* the rest stays peeked */
    q->peeked = NULL;
    consumer_release_burst(q, (uint32_t)count);
    return RQ_OK;
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

int rq_next_seq(rq *q, uint64_t *seq)
{
    if (!q || !seq)
        return RQ_EINVAL;
    if (!opened_in_this_process(q))
        return RQ_EFORK;
    if (q->rec && q->role != RQ_OBSERVER)
        return rq_rec_next_seq(q->rec, seq);
    if (q->role == RQ_CONSUMER) {
        *seq = rq_ring_read_pos(&q->ring);
        return RQ_OK;
    }
    if (q->role != RQ_PRODUCER)
        return RQ_EROLE;
    if (q->mpsc && !q->pushed) {
        /* Not pushed yet: the queue's own next number, as of now (other
         * producers may move it at any time).  The stored position first,
         * then the offset, as in message_counts. */
        for (int attempt = 0; attempt < POSITION_TRIES; attempt++) {
            uint64_t stored = rq_load_acquire_u64(&q->shm->write_position);
            uint32_t w = rq_load_acquire_u32(&q->shm->write_offset);
            if (w >= q->ring.two_n)
                return RQ_ECORRUPT;
            *seq = rq_ring_position(&q->ring, stored, w);
            if (rq_load_acquire_u64(&q->shm->write_position) == stored)
                break;
        }
        return RQ_OK;
    }
    *seq = rq_ring_write_pos(&q->ring);
    return RQ_OK;
}

int rq_poll_handle(rq *q, rq_pollable *out)
{
    if (out)
        *out = RQ_POLLABLE_NONE;
    int rc = check_call(q, q ? q->role : 0, 0);
    if (rc < 0)
        return rc;
    if (!out)
        return RQ_EINVAL;
    if (q->role == RQ_OBSERVER)
        return RQ_EROLE;
    rq_plat_pollable h;
    rc = rq_plat_poll_open(q->segment.plat, q->role == RQ_PRODUCER ? RQ_POLL_SPACE : RQ_POLL_DATA,
                           &h);
    if (rc < 0)
        return rc;
    q->polling = 1;
    *out = h;
    return RQ_OK;
}

int rq_poll_timeout(rq *q)
{
    int rc = check_call(q, q ? q->role : 0, 0);
    if (rc < 0)
        return rc;
    if (!q->polling)
        return RQ_ESTATE;
    return q->poll_arm == POLL_ARMED_NAP ? RQ_UNFENCED_NAP_MS : RQ_RECHECK_MS;
}

/* ---- open: the queue's kind of segment ------------------------------ */

/* Checks a header whose magic is RQ_MAGIC against itself, the object's
 * real size and (if given) the opener's configuration. */
static int queue_check(const void *snapshot, uint64_t object_size, const void *config,
                       uint64_t *total)
{
    const struct rq_shm_header *h = snapshot;
    const rq_config *cfg = config;
    if (h->layout_version == RQ_REC_LAYOUT_VERSION)
        return rq_rec_check(h, object_size, cfg, total);
    if (h->layout_version != RQ_LAYOUT_VERSION || h->abi != rq_layout_abi(rq_plat_abi_tag()))
        return RQ_EVERSION;
    if (h->header_size != RQ_SHM_HEADER_SIZE)
        return RQ_ECORRUPT;
    if (h->slot_count < 1 || h->slot_count > RQ_SLOT_COUNT_MAX)
        return RQ_ECORRUPT;
    if (h->slot_size < 1 || h->slot_size > RQ_SLOT_SIZE_MAX)
        return RQ_ECORRUPT;
    if (h->slot_stride != rq_layout_stride(h->slot_size))
        return RQ_ECORRUPT;
    if ((h->flags & ~(uint32_t)(RQ_MPSC | RQ_FULL_FENCES)) != 0)
        return RQ_ECORRUPT;
    uint64_t need = rq_layout_total(h->slot_count, h->slot_size);
    if (h->total_size != need || need > object_size || need > RQ_SEGMENT_SIZE_MAX ||
        need > (uint64_t)SIZE_MAX)
        return RQ_ECORRUPT;
    /* RQ_FULL_FENCES may have been chosen by the creator's OS: only an
     * opener that asks for it and finds it missing is refused. */
    if (cfg && ((cfg->flags & RQ_RECORDS) || h->slot_count != cfg->slot_count ||
                h->slot_size != cfg->slot_size || (h->flags & RQ_MPSC) != (cfg->flags & RQ_MPSC) ||
                ((cfg->flags & RQ_FULL_FENCES) && !(h->flags & RQ_FULL_FENCES))))
        return RQ_EEXIST;
    *total = need;
    return RQ_OK;
}

static uint64_t queue_size_for(const void *config)
{
    const rq_config *cfg = config;
    if (cfg->flags & RQ_RECORDS)
        return rq_rec_size_for(cfg);
    return rq_layout_total(cfg->slot_count, cfg->slot_size);
}

static int queue_init(rq_plat_segment *seg, void *addr, const void *config, int repairing)
{
    const rq_config *cfg = config;
    if (cfg->flags & RQ_RECORDS)
        return rq_rec_init(seg, addr, cfg, repairing);
    struct rq_shm *shm = addr;
    memset(shm, 0, sizeof *shm);
    shm->hdr.layout_version = RQ_LAYOUT_VERSION;
    shm->hdr.abi = rq_layout_abi(rq_plat_abi_tag());
    shm->hdr.header_size = RQ_SHM_HEADER_SIZE;
    shm->hdr.slot_count = cfg->slot_count;
    shm->hdr.slot_size = cfg->slot_size;
    shm->hdr.slot_stride = (uint32_t)rq_layout_stride(cfg->slot_size);
    shm->hdr.flags = cfg->flags & (RQ_MPSC | RQ_FULL_FENCES); /* RQ_ANY_OWNER is the opener's */
    if (rq_plat_fence_register() != RQ_OK)
        shm->hdr.flags |= RQ_FULL_FENCES; /* no asymmetric fence here */
    shm->hdr.total_size = queue_size_for(cfg);
    rq_store_relaxed_u64(&shm->admin.repairs, repairing ? 1 : 0);
    return (cfg->flags & RQ_MPSC) ? rq_mpsc_init(seg, shm) : RQ_OK;
}

static const struct rq_segment_kind queue_kind = {
    .prefix = RQ_QUEUE_KIND,
    .magic = RQ_MAGIC,
    .header_size = sizeof(struct rq_shm_header),
    .check = queue_check,
    .size_for = queue_size_for,
    .init = queue_init,
};

/* ---- open: roles ----------------------------------------------------- */

/* Takes the role's lock: exclusive for a consumer or an SPSC producer; for
 * an MPSC producer a shared one, which only marks it live, and its slot in
 * the producers' lock. */
static int role_lock(rq *q, int producer)
{
    if (!(producer && q->mpsc))
        return rq_plat_lock(q->segment.plat, producer ? RQ_LOCK_PRODUCER : RQ_LOCK_CONSUMER,
                            RQ_LOCK_TRY);
    /* Any number of producers: the shared lock keeps an SPSC producer
     * (exclusive) out while any is live, and the other way round, whatever
     * the header's flag says now. */
    int rc = rq_plat_lock(q->segment.plat, RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED);
    if (rc == RQ_OK) {
        rc = rq_mpsc_open(&q->lock, q->segment.plat, q->shm);
        q->lock_open = rc == RQ_OK;
        q->lock.interrupt = &q->interrupted;
        q->lock.full_fences = q->ring.full_fences;
    }
    return rc;
}

/* Makes the side's role line this handle's: all of it when the role is
 * held alone, only the pid for an MPSC producer. */
static void role_line_claim(rq *q, int producer)
{
    struct rq_shm *shm = q->shm;
    q->self = producer ? &shm->producer : &shm->consumer;
    q->owns_role_line = !(producer && q->mpsc);
    if (q->owns_role_line) {
        /* We hold the role alone, so nobody else can be asleep on our side's
         * event: a count left by a holder killed while waiting is stale. */
        struct rq_shm_event *own = producer ? &shm->space_event : &shm->data_event;
        rq_store_seq_u32(&own->waiters, 0);
        rq_role_attach(q->self);
    } else {
        rq_store_relaxed_u64(&q->self->pid, (uint64_t)rq_plat_pid());
    }
}

static int role_acquire(rq *q)
{
    struct rq_shm *shm = q->shm;
    int producer = q->role == RQ_PRODUCER;
    int rc = role_lock(q, producer);
    if (rc < 0)
        return rc;
    RQ_CRASH_POINT(OPEN_AFTER_ROLE_LOCK);
    /* This process publishes with plain stores: it must be reached by the
     * barrier of a peer about to sleep. */
    if (!q->ring.full_fences && rq_plat_fence_register() != RQ_OK)
        return RQ_ESYS;
    role_line_claim(q, producer);
    /* Check the offsets now, except as an MPSC producer: other producers
     * move write_offset while we read the pair, so it could look corrupt
     * when it is not; every MPSC push re-reads both under the lock. */
    if (q->owns_role_line || !producer) {
        rc = q->rec ? rq_rec_load(q->rec) : rq_ring_load(&q->ring);
        if (rc < 0)
            return rc;
        if (!q->rec) /* a record queue's positions are records.c's */
            rq_ring_anchor(&q->ring, producer);
    }
    RQ_CRASH_POINT(OPEN_AFTER_TAKEOVER);
    /* A predecessor may have died between publishing and signalling, and
     * the peer may be asleep or polling since: wake it so it re-checks. */
    notify_poller(q, producer ? &shm->data_event : &shm->space_event, 1);
    signal_peer(q, producer ? &shm->data_event : &shm->space_event, 1);
    return RQ_OK;
}

static void handle_free(rq *q)
{
    if (q->lock_open && !q->lock.held)
        rq_mpsc_close(&q->lock);   /* releases nothing here: gives the slot up */
    rq_segment_close(&q->segment); /* drops every lock of this handle */
    rq_rec_free(q->rec);
    free(q);
}

int rq_open_timed(rq **out, const char *name, int role, const rq_config *cfg, int timeout_ms)
{
    if (out)
        *out = NULL;
    if (!out || !rq_name_valid(name) || timeout_ms < RQ_INFINITE)
        return RQ_EINVAL;
    if (!rq_role_valid(role))
        return RQ_EINVAL;
    if (cfg && check_config(cfg) < 0)
        return RQ_EINVAL;
    if (rq_plat_fork_watch() < 0)
        return RQ_ESYS;
    rq *q = calloc(1, sizeof *q);
    if (!q)
        return RQ_ESYS;
    q->role = role;
    q->fork_generation = rq_load_relaxed_u32(&rq_plat_fork_generation);
    const rq_config *create = is_attach_config(cfg) ? NULL : cfg;
    int rc = rq_segment_open_as(&q->segment, &queue_kind, name, create, role, cfg ? cfg->mode : 0,
                                cfg && (cfg->flags & RQ_ANY_OWNER), timeout_ms);
    if (rc < 0) {
        free(q);
        return rc;
    }
    q->shm = q->segment.addr;
    const struct rq_shm_header *h = (const struct rq_shm_header *)q->segment.header.bytes;
    rq_ring_attach(&q->ring, q->shm, h);
    q->mpsc = (h->flags & RQ_MPSC) != 0;
    if (h->layout_version == RQ_REC_LAYOUT_VERSION) {
        rc = rq_rec_attach(&q->rec, q->shm, h, role,
                           q->mpsc && role == RQ_PRODUCER ? &q->lock : NULL);
        if (rc == RQ_OK)
            rq_rec_set_queue(q->rec, q);
        /* An empty offset range: a slot-ring call that reached a record
         * queue by mistake finds every offset out of range (RQ_ECORRUPT)
         * instead of indexing slots that are not there. */
        q->ring.n = q->ring.two_n = 0;
    }
    if (rc == RQ_OK && role != RQ_OBSERVER)
        rc = role_acquire(q);
    if (rc < 0) {
        if (q->owns_role_line)
            rq_store_seq_u32(&q->self->attached, 0);
        handle_free(q);
        return rc;
    }
    *out = q;
    return RQ_OK;
}

int rq_open(rq **out, const char *name, int role, const rq_config *cfg)
{
    return rq_open_timed(out, name, role, cfg, RQ_OPEN_TIMEOUT_MS);
}

/* The longest nap between two looks for a queue not created yet. */
#define WAIT_FOR_CREATE_NAP_MAX_MS 50

int rq_open_wait(rq **out, const char *name, int role, const rq_config *cfg, int timeout_ms)
{
    if (timeout_ms < RQ_INFINITE) {
        if (out)
            *out = NULL;
        return RQ_EINVAL;
    }
    struct rq_deadline d = rq_deadline_start(timeout_ms);
    int nap = 1;
    for (;;) {
        int left = rq_deadline_left(&d);
        int rc = rq_open_timed(out, name, role, cfg, left);
        if (rc != RQ_ENOENT || (cfg && !is_attach_config(cfg)))
            return rc;
        left = rq_deadline_left(&d);
        if (left == 0)
            return RQ_ENOENT;
        /* Polled: no OS notification is both portable and robust here
         * (a name may appear, be half-made by a creator that dies, and be
         * finished by another), and a look costs one failed open. */
        rq_plat_sleep_ms(left > 0 && left < nap ? left : nap);
        if (nap < WAIT_FOR_CREATE_NAP_MAX_MS)
            nap = nap * 2 < WAIT_FOR_CREATE_NAP_MAX_MS ? nap * 2 : WAIT_FOR_CREATE_NAP_MAX_MS;
    }
}

void rq_close(rq *q)
{
    if (!q)
        return;
    if (!opened_in_this_process(q)) {
        /* The shared state and the kernel locks are the parent's, and this
         * child shares its open file descriptions: an unlock here would
         * drop the parent's locks.  Only this process's copy is freed. */
        rq_segment_close(&q->segment);
        rq_rec_free(q->rec);
        free(q);
        return;
    }
    /* A reservation is dropped, unseen.  One made by another thread is
     * not released from here (see reservation_is_ours): on Linux it goes
     * with the handle's producer slot, and the next locker recovers it;
     * on Windows it goes with the reserving thread. */
    if (q->lock_open && q->held == HELD_RESERVED && reservation_is_ours(q))
        rq_mpsc_unlock(&q->lock);
    rq_rec_close(q->rec);
    if (q->owns_role_line) {
        RQ_CRASH_POINT(CLOSE_BEFORE_DETACH);
        rq_store_seq_u32(&q->self->attached, 0);
    }
    handle_free(q);
}

void rq_interrupt(rq *q)
{
    if (!q)
        return;
    /* The flag first: a waiter reads the word, then the flag, so it sees
     * one or the other move (see wait_on). */
    rq_store_seq_u32(&q->interrupted, 1);
    if (q->role == RQ_OBSERVER)
        return; /* never waits; its mapping may be read-only */
    rq_atomic_u32 *words[2];
    int n = 0;
    if (q->role == RQ_CONSUMER) {
        words[n++] = &q->shm->data_event.seq;
    } else {
        words[n++] = &q->shm->space_event.seq;
        if (q->mpsc)
            words[n++] = &q->shm->mpsc.seq; /* the lock's sleepers */
    }
    rq_plat_interrupt(q->segment.plat, words, n);
}

int rq_unlink(const char *name)
{
    if (!rq_name_valid(name))
        return RQ_EINVAL;
    return rq_plat_segment_unlink(RQ_QUEUE_KIND, name);
}

/* ---- statistics ------------------------------------------------------ */

/* 1 if ROLE is held by a live handle, 0 if not, ROLE_UNKNOWN if this
 * handle cannot tell (an observer without the lock object), or the rq_error
 * of a probe that failed (never taken for "not live"). */
#define ROLE_UNKNOWN 2
static int role_live(rq *q, int role, enum rq_plat_lock_id id)
{
    if (q->role == role)
        return 1;
    if (!rq_plat_segment_has_locks(q->segment.plat))
        return ROLE_UNKNOWN;
    int held = rq_plat_lock_probe(q->segment.plat, id);
    return held < 0 ? held : held > 0;
}

/* Both offsets, as a pair that was true at one moment.  A reader that owns
 * neither (an observer, an MPSC producer) can see the producer move on and
 * the consumer follow between its two loads, so a pair that looks further
 * apart than N is read again; only one that stays wrong is corrupt. */
static int read_offset_pair(rq *q, uint32_t *write, uint32_t *read)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        *write = rq_load_acquire_u32(&q->shm->write_offset);
        *read = rq_load_acquire_u32(&q->shm->read_offset);
        if (*write >= q->ring.two_n || *read >= q->ring.two_n)
            return RQ_ECORRUPT;
        if (rq_ring_pair_ok(&q->ring, *write, *read))
            return RQ_OK;
    }
    return RQ_ECORRUPT;
}

/* The offset pair into ST and the messages pushed and popped since
 * creation: the positions (section 3 of docs/design.md), made exact from
 * the offsets, so that no per-message statistics store is needed.  Each
 * stored position is loaded before the offsets (acquire): a copy stored
 * after the offset load would be ahead of that offset, and the number
 * derived from the two a lap (2N) too far.  If a copy moved by the time
 * the offsets are read, again: the offset could then be 2N or more past
 * the copy loaded.  Returns read_offset_pair's result; when that is not
 * RQ_OK, pushed and popped are the stored copies themselves. */
static int message_counts(rq *q, rq_stats *st)
{
    int rc = RQ_ECORRUPT;
    for (int attempt = 0; attempt < POSITION_TRIES; attempt++) {
        uint64_t w = rq_load_acquire_u64(&q->shm->write_position);
        uint64_t r = rq_load_acquire_u64(&q->shm->read_position);
        rc = read_offset_pair(q, &st->write_offset, &st->read_offset);
        st->pushed = rc == RQ_OK ? rq_ring_position(&q->ring, w, st->write_offset) : w;
        st->popped = rc == RQ_OK ? rq_ring_position(&q->ring, r, st->read_offset) : r;
        if (rc < 0 || (rq_load_acquire_u64(&q->shm->write_position) == w &&
                       rq_load_acquire_u64(&q->shm->read_position) == r))
            break;
    }
    return rc;
}

/* rq_stat's wait, wake, takeover and recovery counters, and who holds
 * the MPSC lock. */
static void stat_counters(rq *q, rq_stats *st)
{
    struct rq_shm *shm = q->shm;
    st->producer_waits = rq_load_relaxed_u64(&shm->producer.waits);
    st->consumer_waits = rq_load_relaxed_u64(&shm->consumer.waits);
    st->producer_wakes = rq_load_relaxed_u64(&shm->producer.wakes);
    st->consumer_wakes = rq_load_relaxed_u64(&shm->consumer.wakes);
    st->producer_missed_wakes = rq_load_relaxed_u64(&shm->producer.missed_wakes);
    st->consumer_missed_wakes = rq_load_relaxed_u64(&shm->consumer.missed_wakes);
    st->producer_takeovers = rq_load_relaxed_u64(&shm->producer.takeovers);
    st->consumer_takeovers = rq_load_relaxed_u64(&shm->consumer.takeovers);
    st->lock_recoveries = rq_load_relaxed_u64(&shm->admin.lock_recoveries);
    st->dead_reservations = rq_load_relaxed_u64(&shm->admin.dead_reservations);
    st->lock_held_ms = -1;
    if (q->mpsc) {
        struct rq_mpsc_holder holder;
        rq_mpsc_holder(shm, &holder);
        st->lock_holder_pid = holder.pid;
        st->lock_held_ms = holder.held_ms;
        st->lock_reserving = holder.reserving;
    }
}

int rq_stat(rq *q, rq_stats *st)
{
    if (!q || !st)
        return RQ_EINVAL;
    if (!opened_in_this_process(q))
        return RQ_EFORK;
    struct rq_shm *shm = q->shm;
    memset(st, 0, sizeof *st);
    st->slot_count =
        q->rec ? ((const struct rq_shm_header *)q->segment.header.bytes)->slot_count : q->ring.n;
    st->slot_size = q->ring.slot_size;
    st->flags = (q->mpsc ? RQ_MPSC : 0) | (q->ring.full_fences ? RQ_FULL_FENCES : 0) |
                (q->rec ? RQ_RECORDS : 0);
    uint32_t records = 0;
    int rc;
    if (q->rec) { /* a record queue counts its records as it goes */
        rc = rq_rec_offsets(q->rec, &st->write_offset, &st->read_offset, &records);
        st->pushed = rq_load_relaxed_u64(&shm->producer.messages);
        st->popped = rq_load_relaxed_u64(&shm->consumer.messages);
    } else {
        rc = message_counts(q, st);
    }
    stat_counters(q, st);
    st->repairs = rq_load_relaxed_u64(&shm->admin.repairs);
    st->producer_pid = (int64_t)rq_load_relaxed_u64(&shm->producer.pid);
    st->consumer_pid = (int64_t)rq_load_relaxed_u64(&shm->consumer.pid);
    int producer_live = role_live(q, RQ_PRODUCER, RQ_LOCK_PRODUCER);
    int consumer_live = producer_live < 0 ? 0 : role_live(q, RQ_CONSUMER, RQ_LOCK_CONSUMER);
    st->producer_live = producer_live == ROLE_UNKNOWN ? -1 : producer_live > 0;
    st->consumer_live = consumer_live == ROLE_UNKNOWN ? -1 : consumer_live > 0;
    int stale = rq_plat_segment_stale(q->segment.plat);
    st->unlinked = stale > 0;
    if (rc == RQ_OK && stale < 0)
        rc = stale;
    if (rc < 0)
        return rc; /* every field but depth is filled in, for a post-mortem */
    if (producer_live < 0 || consumer_live < 0)
        return producer_live < 0 ? producer_live : consumer_live;
    st->depth = q->rec ? records : rq_ring_distance(&q->ring, st->write_offset, st->read_offset);
    return RQ_OK;
}

int rq_stat_records(rq *q, rq_record_stats *st)
{
    if (!q || !st)
        return RQ_EINVAL;
    if (!opened_in_this_process(q))
        return RQ_EFORK;
    return q->rec ? rq_rec_stat(q->rec, st) : RQ_EINVAL;
}

int rq_dump_records(rq *q, int (*fn)(void *ctx, const rq_record_entry *entry), void *ctx)
{
    if (!q || !fn)
        return RQ_EINVAL;
    if (!opened_in_this_process(q))
        return RQ_EFORK;
    return q->rec ? rq_rec_walk(q->rec, fn, ctx) : RQ_EINVAL;
}
