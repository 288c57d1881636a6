/*
 * queue.c - the public queue API's data path: push/pop, zero-copy, bursts,
 * waiting and waking (open and close: queue_open.c; rq_stat: queue_stat.c).
 * OS-neutral: everything OS-specific goes through platform.h.
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

#include "copy.h"
#include "crashpoint.h"
#include "deadline.h"
#include "queue_impl.h"
#include "records_impl.h"

/* What the single-message calls do the long way (waiting, waking) stays
 * out of line: inlined into rq_push, rq_peek or rq_release, its registers
 * would be saved on the common path too.  Reached by a tail call where it
 * can be, so that the common path saves none; for the same reason a slot
 * push's copy and publish, which call memcpy, are out of line too. */
#if defined(__GNUC__)
#define CLAIM_SLOW __attribute__((noinline))
#else
#define CLAIM_SLOW
#endif

/* ---- waiting and waking ---------------------------------------------- */

/* A wait's re-check (READY with its CTX): these two for a slot ring's
 * handle, records.c's for a record ring. */
static int ready_for_consumer(void *ctx)
{
    rq *q = ctx;
    if (rq_ring_has_data(&q->ring))
        return 1;
    rq_ring_prefetch_next_read(&q->ring); /* a spin's looks too: rq_ring_pop_begin's hint */
    return 0;
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
 * sleep of a wait is a nap without it (a wake-up, the usual end of a
 * sleep, needs no barrier; RQ_CONSUMER_NAP_MS for the consumer,
 * RQ_UNFENCED_NAP_MS for a producer: deadline.h), and only a wait that
 * lasts longer pays for the barrier and re-checks before sleeping on.  A message
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
        int nap = ev == &q->shm->data_event ? RQ_CONSUMER_NAP_MS : RQ_UNFENCED_NAP_MS;
        slice = left >= 0 && left < nap ? left : nap;
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
/* wake_consumer once the consumer is registered. */
static inline void wake_registered_consumer(rq *q, struct rq_shm_event *ev)
{
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

static inline void wake_consumer(rq *q)
{
    struct rq_shm_event *ev = &q->shm->data_event;
    if (rq_ring_peer_waits(&q->ring, &ev->waiters))
        wake_registered_consumer(q, ev);
}

/* The same out of line, and RQ_OK, so that an SPSC push reaches it by a
 * tail call and saves no registers for it. */
static CLAIM_SLOW int wake_waiting_consumer(rq *q)
{
    wake_registered_consumer(q, &q->shm->data_event);
    return RQ_OK;
}

/* wake_producers once a producer waits: out of line, and RQ_OK, so that a
 * release reaches it by a tail call and saves no registers for it. */
static CLAIM_SLOW int wake_waiting_producers(rq *q, uint32_t old_read, uint32_t k)
{
    if (rq_ring_was_full_k(&q->ring, old_read, k))
        signal_peer(q, &q->shm->space_event, 1); /* all: MPSC producers may queue up */
    return RQ_OK;
}

/* After freeing slots from OLD_READ on (K of them): wakes the producers if
 * any waits and the ring was full.  RQ_OK. */
static inline int wake_producers(rq *q, uint32_t old_read, uint32_t k)
{
    if (rq_ring_peer_waits(&q->ring, &q->shm->space_event.waiters))
        return wake_waiting_producers(q, old_read, k);
    return RQ_OK;
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

/* Looks between two clock reads of a spin: a look and its pause take
 * tens of nanoseconds, a clock read about as long. */
#define SPIN_LOOKS_PER_CLOCK 8

/* rq_set_spin_us: polls READY(CTX), pausing between looks, for the
 * handle's spin time, never past the deadline D nor an rq_interrupt.  1 if
 * it found the queue ready.  It only loads: the waiters word stays
 * untouched, so a peer that publishes meanwhile makes no wake-up call,
 * and a kill here is a kill before the wait. */
static int spin_until_ready(rq *q, int (*ready)(void *), void *ctx, const struct rq_deadline *d)
{
    uint64_t budget = q->spin_ns;
    int left = rq_deadline_left(d);
    if (left == 0 || rq_load_acquire_u32(&q->interrupted))
        return 0; /* wait_on returns the timeout or RQ_EINTR */
    if (left > 0 && (uint64_t)left * 1000000u < budget)
        budget = (uint64_t)left * 1000000u;
    uint64_t start = rq_plat_now_ns();
    for (;;) {
        for (int i = 0; i < SPIN_LOOKS_PER_CLOCK; i++) {
            if (ready(ctx))
                return 1;
            rq_cpu_relax();
        }
        if (rq_load_acquire_u32(&q->interrupted) || rq_plat_now_ns() - start >= budget)
            return 0;
    }
}

/* One turn of a wait on the data event (SPACE 0: the consumer) or the
 * space event (SPACE 1: producers): the handle's spin if it has one and
 * this call has not spun yet, then a sleep with wait_on (or naps, for a turn that asks for them),
 * re-checked with READY(CTX), or for a handle with a poll object and a
 * zero timeout its arming (RQ_EAGAIN when armed).  RQ_OK: look again.
 * Else the call's error. */
static int queue_wait(rq *q, int space, int (*ready)(void *), void *ctx, struct rq_wait_turn *t)
{
    struct rq_shm_event *ev = space ? &q->shm->space_event : &q->shm->data_event;
    if (q->polling && t->timeout_ms == 0) {
        int rc = poll_again(q, ev, ready, ctx, &t->rounds);
        if (rc == RQ_EAGAIN && t->nap && q->poll_arm == POLL_ARMED)
            q->poll_arm = POLL_ARMED_NAP; /* no signal may come: rq_poll_timeout says nap */
        return rc;
    }
    /* Once a call: its later turns follow a nap or a re-check slice that
     * ended without a signal, where a spin each time would keep a CPU busy
     * for as long as the queue stays quiet. */
    if (q->spin_ns && !t->spun) {
        t->spun = 1;
        if (spin_until_ready(q, ready, ctx, &t->d))
            return RQ_OK;
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

void rq_queue_announce(rq *q, int producer)
{
    struct rq_shm_event *ev = producer ? &q->shm->data_event : &q->shm->space_event;
    notify_poller(q, ev, 1);
    signal_peer(q, ev, 1);
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

/* An MPSC producer's claim: one round of the loop without its set-up
 * when the lock is free and the ring has room (rq_claim_once); anything
 * else (contended, full, corrupt) goes the long way, which checks again.
 * Out of line, as the long way is: the SPSC path is compiled without it. */
static CLAIM_SLOW int producer_claim_mpsc(rq *q, void **payload, int timeout_ms)
{
    struct claim c = {.q = q, .payload = payload};
    if (rq_claim_once(&q->lock, try_push_one, &c) == RQ_OK)
        return RQ_OK;
    return producer_claim_wait(q, payload, timeout_ms);
}

/* RC, a first look at the ring, found nothing to do (a consumer's: no
 * message; an SPSC producer's: no free slot, read_offset re-read), and
 * the call is a busy poll (a zero timeout, no poll object): RQ_EAGAIN can
 * return at once.  The long way's turn would only look again and return
 * the same, since a zero timeout never waits (callgrind: a poll of an
 * empty slot ring costs 49 instructions this way; the long way cost
 * 183-186 when that was measured, before the empty look's hint's 8);
 * a poll object's handle arms the object there, so it goes that way.  A
 * corrupt offset or length (RQ_ECORRUPT) goes the long way too, which
 * reports it. */
static inline int busy_poll_found_nothing(const rq *q, int rc, int timeout_ms)
{
    return rc == RQ_EAGAIN && timeout_ms == 0 && !q->polling;
}

int rq_queue_busy_poll(const rq *q, int timeout_ms)
{
    return busy_poll_found_nothing(q, RQ_EAGAIN, timeout_ms);
}

/* The common case without the loop: an SPSC producer whose cached view
 * shows room takes the slot at once; a busy poll of a full ring returns
 * RQ_EAGAIN (busy_poll_found_nothing); anything else (full, corrupt) goes
 * the long way, which checks again. */
static inline int producer_claim(rq *q, void **payload, int timeout_ms)
{
    if (q->mpsc)
        return producer_claim_mpsc(q, payload, timeout_ms);
    int rc = rq_ring_push_begin(&q->ring, payload, 0);
    if (rc == RQ_OK) {
        RQ_CRASH_POINT(PUSH_AFTER_CLAIM);
        return RQ_OK;
    }
    return busy_poll_found_nothing(q, rc, timeout_ms) ? RQ_EAGAIN
                                                      : producer_claim_wait(q, payload, timeout_ms);
}

/* An MPSC producer leaves the producers' lock after a publish.  First it
 * asks for the next slot's lines for writing (a hint; nothing is
 * written), so that the next push, most often this producer's again, does
 * not wait inside the lock for them to come from the consumer's core.
 * Measured, not derived: docs/performance/mpsc.md, "MPSC: the next slot
 * prefetched for writing". */
static inline void producer_unlock(rq *q)
{
    const unsigned char *next = rq_ring_slot(&q->ring, q->ring.write);
    rq_prefetch_write(next);
    rq_prefetch_write(next + q->ring.stride - 1);
    rq_mpsc_unlock(&q->lock);
}

/* No statistics store here: rq_stat counts messages by the positions. */
static inline void producer_publish(rq *q, void *payload, uint32_t len)
{
    /* Loaded once: the publish's compiler barrier would reload them. */
    struct rq_shm *shm = q->ring.shm;
    int full_fences = q->ring.full_fences;
    rq_ring_push_publish_in(&q->ring, shm, full_fences, payload, len, q->ring.write);
    RQ_CRASH_POINT(PUSH_AFTER_PUBLISH);
    if (q->mpsc) {
        q->pushed = 1;
        producer_unlock(q);
    }
    if (rq_ring_peer_waits_ff(full_fences, &shm->data_event.waiters)) /* wake_consumer */
        wake_registered_consumer(q, &shm->data_event);
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

/* RQ_OK.  FULL_FENCES: q->ring.full_fences, or 0 on a fast handle's path
 * (q->fast), where it is known.  READ: q->ring.read, as a pop loaded it
 * before its copy (rq_ring_pop_publish_in). */
static inline int consumer_release_at(rq *q, int full_fences, uint32_t read)
{
    struct rq_shm *shm = q->ring.shm; /* once, as in producer_publish */
    uint32_t old_read = rq_ring_pop_publish_in(&q->ring, shm, full_fences, read);
    RQ_CRASH_POINT(RELEASE_AFTER_PUBLISH);
    if (rq_ring_peer_waits_ff(full_fences, &shm->space_event.waiters)) /* wake_producers */
        return wake_waiting_producers(q, old_read, 1);
    return RQ_OK;
}

static inline int consumer_release_ff(rq *q, int full_fences)
{
    return consumer_release_at(q, full_fences, q->ring.read);
}

static inline int consumer_release(rq *q)
{
    return consumer_release_ff(q, q->ring.full_fences);
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
static inline void producer_publish_burst(rq *q, uint32_t k)
{
    RQ_CRASH_POINT(PUSH_BURST_AFTER_FILL);
    if (k == 0) {
        if (q->mpsc)
            rq_mpsc_unlock(&q->lock);
        return;
    }
    rq_ring_push_publish_burst(&q->ring, k);
    RQ_CRASH_POINT(PUSH_AFTER_PUBLISH);
    if (q->mpsc) {
        q->pushed = 1;
        producer_unlock(q);
    }
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

/* The checks of every call before the process's. */
static inline int check_args(const rq *q, int timeout_ms)
{
    if (!q || timeout_ms < RQ_INFINITE)
        return RQ_EINVAL;
    return RQ_OK;
}

/* The checks of every call before its role's. */
static inline int check_handle(const rq *q, int timeout_ms)
{
    int rc = check_args(q, timeout_ms);
    if (rc < 0)
        return rc;
    if (!opened_in_this_process(q))
        return RQ_EFORK;
    return RQ_OK;
}

static int check_call(const rq *q, int role, int timeout_ms)
{
    int rc = check_handle(q, timeout_ms);
    if (rc < 0)
        return rc;
    if (q->role != role)
        return RQ_EROLE;
    return RQ_OK;
}

/* ---- the public API: data path --------------------------------------- */

/* Each single-message call checks its handle (rq_push, rq_pop, rq_peek
 * and their _info twins also the arguments both kinds check), then does
 * the work of its kind of queue: a slot queue's inline (slot_*), a
 * record queue's in a function of its own, tail-called (record_*, the
 * bodies in records_impl.h).  Neither kind's path is compiled around a
 * call to the other's.  rq_push, rq_pop, rq_peek and rq_release make no
 * call on their common path but tail calls: what waits or wakes, and the
 * copy of a message longer than RQ_COPY_SHORT (memcpy), is out of line
 * (CLAIM_SLOW); a shorter one is copied inline (copy.h).  So they save no
 * registers, and the record path does not pay for the slot path's.
 * Each kind's whole path in a function of its own was slower for slots
 * (docs/performance/records.md, "The record calls on their own"). */
#if defined(__GNUC__)
#define RECORD_CALL __attribute__((noinline))
#define SLOT_PATH __attribute__((always_inline)) inline
/* Slot queues, the default kind, get the straight line. */
#define is_record_queue(q) __builtin_expect((q)->rec != NULL, 0)
#else
#define RECORD_CALL
#define SLOT_PATH inline
#define is_record_queue(q) ((q)->rec != NULL)
#endif

static CLAIM_SLOW int record_push_wait(struct rq_rec *r, const void *msg, size_t len,
                                       int timeout_ms)
{
    return wait_result(r->q, rec_push_one(r, msg, len, timeout_ms));
}

/* A record longer than RQ_COPY_SHORT, claimed at index AT: its copy
 * (memcpy) and publish, out of line so that the short ones save no
 * registers for the call. */
static CLAIM_SLOW int record_push_copy(struct rq_rec *r, const void *msg, uint32_t len)
{
    rec_push_at(r, rec_index(r, r->w), 0, msg, len);
    return RQ_OK;
}

/* The long way is a tail call with the arguments as they came, so that
 * the common case keeps only what it needs after its copy.  FAST: the
 * handle is a fast one (RQ_FAST_REC), which has no full fences
 * (fast_code), so that the publish does not test the flag. */
static inline int record_push_in(struct rq_rec *r, const void *msg, size_t len, int timeout_ms,
                                 int fast)
{
    if (!rec_push_fits(r, len))
        return record_push_wait(r, msg, len, timeout_ms);
    RQ_CRASH_POINT(PUSH_AFTER_CLAIM);
    if (len > RQ_COPY_SHORT)
        return record_push_copy(r, msg, (uint32_t)len);
    return fast ? rec_push_short_as(r, msg, (uint32_t)len, 0)
                : rec_push_short(r, msg, (uint32_t)len);
}

static RECORD_CALL int record_push(struct rq_rec *r, const void *msg, size_t len, int timeout_ms)
{
    return record_push_in(r, msg, len, timeout_ms, 0);
}

/* A fast handle's (push_other). */
static RECORD_CALL int record_push_fast(struct rq_rec *r, const void *msg, size_t len,
                                        int timeout_ms)
{
    return record_push_in(r, msg, len, timeout_ms, 1);
}

/* A slot push's copy into the slot claimed at PAYLOAD, and its publish.
 * RQ_OK. */
static inline int slot_push_at(rq *q, void *payload, const void *msg, size_t len)
{
    rq_copy(payload, msg, len);
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    producer_publish(q, payload, (uint32_t)len);
    return RQ_OK;
}

/* The same out of line, so that rq_push makes no call but tail calls and
 * saves no registers (a record push passes through rq_push too).  PAYLOAD
 * last: the caller's arguments stay in their registers. */
static CLAIM_SLOW int slot_push_copy(rq *q, const void *msg, size_t len, void *payload)
{
    return slot_push_at(q, payload, msg, len);
}

/* A slot push the long way: an SPSC ring full by the cache, or a pair of
 * offsets to check again (the claim's loop reports a corrupt one). */
static CLAIM_SLOW int slot_push_wait(rq *q, const void *msg, size_t len, int timeout_ms)
{
    void *payload;
    int rc = producer_claim_wait(q, &payload, timeout_ms);
    if (rc < 0)
        return rc;
    return slot_push_at(q, payload, msg, len);
}

/* An SPSC slot push whose cache shows the ring full: read_offset re-read
 * (rq_ring_push_begin), then the push; if still full, RQ_EAGAIN for a busy
 * poll (busy_poll_found_nothing), else the long way.  Out of line, so
 * that the common push saves no registers for it. */
static CLAIM_SLOW int slot_push_reload(rq *q, const void *msg, size_t len, int timeout_ms)
{
    void *payload;
    int rc = rq_ring_push_begin(&q->ring, &payload, 0);
    if (rc != RQ_OK)
        return busy_poll_found_nothing(q, rc, timeout_ms) ? RQ_EAGAIN
                                                          : slot_push_wait(q, msg, len, timeout_ms);
    RQ_CRASH_POINT(PUSH_AFTER_CLAIM);
    return slot_push_at(q, payload, msg, len);
}

/* An MPSC slot push: each one takes the producers' lock. */
static CLAIM_SLOW int slot_push_mpsc(rq *q, const void *msg, size_t len, int timeout_ms)
{
    void *payload;
    int rc = producer_claim_mpsc(q, &payload, timeout_ms);
    if (rc < 0)
        return rc;
    return slot_push_at(q, payload, msg, len);
}

/* producer_publish for an SPSC producer, the wake a tail call: RQ_OK.
 * FULL_FENCES as for consumer_release_ff; WRITE is q->ring.write, as a
 * push loaded it before its copy (rq_ring_push_publish_in). */
static inline int spsc_publish(rq *q, void *payload, uint32_t len, int full_fences, uint32_t write)
{
    struct rq_shm *shm = q->ring.shm; /* once, as in producer_publish */
    rq_ring_push_publish_in(&q->ring, shm, full_fences, payload, len, write);
    RQ_CRASH_POINT(PUSH_AFTER_PUBLISH);
    if (rq_ring_peer_waits_ff(full_fences, &shm->data_event.waiters))
        return wake_waiting_consumer(q);
    return RQ_OK;
}

/* An SPSC slot push once the call is checked; FULL_FENCES as for
 * consumer_release_ff. */
static SLOT_PATH int slot_push_spsc(rq *q, const void *msg, size_t len, int timeout_ms,
                                    int full_fences)
{
    void *payload;
    if (!rq_ring_push_cached(&q->ring, &payload))
        return slot_push_reload(q, msg, len, timeout_ms);
    uint32_t write = q->ring.write; /* kept across the copy */
    RQ_CRASH_POINT(PUSH_AFTER_CLAIM);
    if (!rq_copy_if_short(payload, msg, len))
        return slot_push_copy(q, msg, len, payload);
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    return spsc_publish(q, payload, (uint32_t)len, full_fences, write);
}

/* A slot push's state and length checks (the handle's and the message's
 * were made). */
static SLOT_PATH int slot_push_checks(const rq *q, size_t len)
{
    if (q->held != HELD_NONE)
        return RQ_ESTATE;
    if (len > q->ring.slot_size)
        return RQ_EMSGSIZE;
    return RQ_OK;
}

static SLOT_PATH int slot_push(rq *q, const void *msg, size_t len, int timeout_ms)
{
    int rc = slot_push_checks(q, len);
    if (rc < 0)
        return rc;
    if (q->mpsc)
        return slot_push_mpsc(q, msg, len, timeout_ms);
    return slot_push_spsc(q, msg, len, timeout_ms, q->ring.full_fences);
}

/* Every push but a fast handle's (q->fast), the arguments checked but for
 * the message (check_args), GEN fork_generation_now(): the rest of the
 * checks and each kind's path, as they were. */
static CLAIM_SLOW int push_other(rq *q, const void *msg, size_t len, int timeout_ms, uint64_t gen)
{
    if (fast_is(q, gen, RQ_FAST_REC(RQ_PRODUCER))) { /* the process, the role and the kind in one */
        if (!msg && len > 0)
            return RQ_EINVAL;
        q->lock.reserving = 0; /* the next MPSC hold lasts one call */
        return record_push_fast(q->rec, msg, len, timeout_ms);
    }
    if (!opened_under(q, gen)) /* check_handle's */
        return RQ_EFORK;
    if (q->role != RQ_PRODUCER)
        return RQ_EROLE;
    if (!msg && len > 0)
        return RQ_EINVAL;
    q->lock.reserving = 0; /* the next MPSC hold lasts one call */
    return is_record_queue(q) ? record_push(q->rec, msg, len, timeout_ms)
                              : slot_push(q, msg, len, timeout_ms);
}

/* The single calls (rq_push, rq_pop, rq_reserve, rq_commit, rq_peek,
 * rq_release) check the arguments check_args checks, then the fast word
 * (q->fast, set at open: a slot queue, no full fences, a producer SPSC,
 * and the fork generation), which stands for the process check (the one
 * check_handle makes), the role check and the tests of the kind, the MPSC
 * mode and the fences that the short way would make each time; any other
 * handle (and a wrong process or role) goes the other way (push_other...),
 * which makes the checks and takes the paths as before.  The checks come
 * in the same order either way, so a call gets the same error from
 * both. */
int rq_push(rq *q, const void *msg, size_t len, int timeout_ms)
{
    int rc = check_args(q, timeout_ms);
    if (rc < 0)
        return rc;
    uint64_t gen = fork_generation_now();
    if (!fast_is(q, gen, RQ_FAST(RQ_PRODUCER, HELD_NONE)))
        return push_other(q, msg, len, timeout_ms, gen);
    if (!msg && len > 0)
        return RQ_EINVAL;
    if (len > q->ring.slot_size) /* slot_push_checks: the state is in q->fast */
        return RQ_EMSGSIZE;
    return slot_push_spsc(q, msg, len, timeout_ms, 0);
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

static CLAIM_SLOW int record_reserve_wait(rq *q, size_t len, void **slot, int timeout_ms)
{
    return wait_result(q, rec_reserve_kept(q, rec_reserve_one(q->rec, len, slot, timeout_ms)));
}

/* An SPSC reservation with room by the cache without a call (nothing to
 * keep: no lock); anything else the long way, a tail call. */
static RECORD_CALL int record_reserve(rq *q, size_t len, void **slot, int timeout_ms)
{
    if (!rec_reserve_fast(q->rec, len, slot))
        return record_reserve_wait(q, len, slot, timeout_ms);
    return RQ_OK;
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
    set_held(q, HELD_RESERVED);
    q->held_count = k;
    q->reserved = bufs[0];
    if (q->mpsc) {
        q->reserver = rq_plat_thread_id();
        rq_mpsc_keep(&q->lock); /* held past this call */
    }
}

/* A slot reservation once the call is checked: the one held already, if
 * this thread holds one, or a claim of the next slot. */
static int slot_reserve(rq *q, void **slot, int timeout_ms)
{
    if (q->held == HELD_RESERVED) {
        if (!reservation_is_ours(q))
            return RQ_ESTATE;
        *slot = q->reserved;
        return RQ_OK;
    }
    int rc = producer_claim(q, slot, timeout_ms);
    if (rc < 0)
        return rc;
    hold_reserved(q, slot, 1, 1); /* *SLOT: the claim gave the payload */
    return RQ_OK;                 /* not the count, as the bursts return */
}

/* slot_reserve's claim when the cache shows the ring full, for a fast
 * handle: read_offset re-read, then the long way if still full. */
static CLAIM_SLOW int slot_reserve_wait(rq *q, void **slot, int timeout_ms)
{
    int rc = producer_claim(q, slot, timeout_ms);
    if (rc < 0)
        return rc;
    hold_reserved(q, slot, 1, 1);
    return RQ_OK;
}

/* slot_reserve on a fast handle holding nothing (SPSC: hold_reserved has
 * no lock to keep), with no call but tail calls. */
static SLOT_PATH int slot_reserve_spsc(rq *q, void **slot, int timeout_ms)
{
    void *payload;
    if (!rq_ring_push_cached(&q->ring, &payload)) /* producer_claim */
        return slot_reserve_wait(q, slot, timeout_ms);
    RQ_CRASH_POINT(PUSH_AFTER_CLAIM);
    *slot = payload;
    q->held = HELD_RESERVED; /* hold_reserved(q, slot, 1, 1) */
    fast_move(q, RQ_FAST(RQ_PRODUCER, HELD_NONE), RQ_FAST(RQ_PRODUCER, HELD_RESERVED));
    q->held_count = 1;
    q->reserved = payload;
    return RQ_OK;
}

static CLAIM_SLOW int reserve_other(rq *q, void **slot, int timeout_ms, uint64_t gen)
{
    if (!opened_under(q, gen)) /* check_handle's */
        return RQ_EFORK;
    if (q->role != RQ_PRODUCER)
        return RQ_EROLE;
    if (!slot)
        return RQ_EINVAL;
    q->lock.reserving = 1; /* shown by rq_stat: this hold may last */
    if (is_record_queue(q))
        return record_reserve(q, q->ring.slot_size, slot, timeout_ms);
    return slot_reserve(q, slot, timeout_ms);
}

int rq_reserve(rq *q, void **slot, int timeout_ms)
{
    int rc = check_args(q, timeout_ms); /* then the fast word: see rq_push */
    if (rc < 0)
        return rc;
    uint64_t gen = fork_generation_now();
    if (!fast_is(q, gen, RQ_FAST(RQ_PRODUCER, HELD_NONE))) /* one held: the other way returns it */
        return reserve_other(q, slot, timeout_ms, gen);
    if (!slot)
        return RQ_EINVAL;
    return slot_reserve_spsc(q, slot, timeout_ms);
}

int rq_reserve_len(rq *q, size_t len, void **slot, int timeout_ms)
{
    int rc = check_call(q, RQ_PRODUCER, timeout_ms);
    if (rc < 0)
        return rc;
    if (!slot)
        return RQ_EINVAL;  /* before the length, on both kinds */
    q->lock.reserving = 1; /* shown by rq_stat: this hold may last */
    if (is_record_queue(q))
        return record_reserve(q, len, slot, timeout_ms);
    if (len > q->ring.slot_size)
        return RQ_EMSGSIZE;
    return slot_reserve(q, slot, timeout_ms);
}

static CLAIM_SLOW int record_commit_slow(struct rq_rec *r, size_t len)
{
    return rec_commit_one(r, len);
}

/* An SPSC commit without a call (rec_commit_spsc); MPSC and the errors
 * the long way (rec_commit_one), a tail call. */
static RECORD_CALL int record_commit(rq *q, size_t len)
{
    struct rq_rec *r = q->rec;
    if (r->lock || !r->reserved || len > r->res_len)
        return record_commit_slow(r, len);
    return rec_commit_spsc(r, (uint32_t)len);
}

static SLOT_PATH int slot_commit(rq *q, size_t len)
{
    if (q->held != HELD_RESERVED || !reservation_is_ours(q))
        return RQ_ESTATE;
    if (len > q->ring.slot_size)
        return RQ_EMSGSIZE;
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    void *payload = q->reserved;
    set_held(q, HELD_NONE);
    q->held_count = 0;
    q->reserved = NULL;
    producer_publish(q, payload, (uint32_t)len); /* a burst's first slot; the rest are dropped */
    return RQ_OK;
}

/* slot_commit on a fast handle holding a reservation (SPSC: it is ours). */
static SLOT_PATH int slot_commit_spsc(rq *q, size_t len)
{
    if (len > q->ring.slot_size)
        return RQ_EMSGSIZE;
    RQ_CRASH_POINT(PUSH_AFTER_PAYLOAD);
    void *payload = q->reserved;
    q->held = HELD_NONE;
    fast_move(q, RQ_FAST(RQ_PRODUCER, HELD_RESERVED), RQ_FAST(RQ_PRODUCER, HELD_NONE));
    q->held_count = 0;
    q->reserved = NULL;
    return spsc_publish(q, payload, (uint32_t)len, 0, q->ring.write);
}

static CLAIM_SLOW int commit_other(rq *q, size_t len, uint64_t gen)
{
    if (fast_is(q, gen, RQ_FAST_REC(RQ_PRODUCER))) /* as in push_other */
        return record_commit(q, len);
    if (!opened_under(q, gen)) /* check_handle's */
        return RQ_EFORK;
    if (q->role != RQ_PRODUCER)
        return RQ_EROLE;
    return is_record_queue(q) ? record_commit(q, len) : slot_commit(q, len);
}

int rq_commit(rq *q, size_t len)
{
    int rc = check_args(q, 0); /* then the fast word: see rq_push */
    if (rc < 0)
        return rc;
    uint64_t gen = fork_generation_now();
    if (!fast_is(q, gen, RQ_FAST(RQ_PRODUCER, HELD_RESERVED)))
        return commit_other(q, len, gen);
    return slot_commit_spsc(q, len);
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
        rq_copy(rq_ring_claimed(&q->ring, i), msgs[i], lens[i]);
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
    set_held(q, HELD_NONE);
    q->held_count = 0;
    q->reserved = NULL;
    producer_publish_burst(q, (uint32_t)count);
    return RQ_OK;
}

/* busy_poll_found_nothing's record twin (rq_pop, rq_peek and their
 * _info twins), once a look found no record to hand out: the call is a
 * busy poll and the ring is empty for certain: the write word the
 * consumer last loaded ended at its own offset (so its look read no
 * header), and the word loaded again is its own offset and record
 * number, which no corrupt word passes for.  A record held by a peek
 * keeps both away from the consumer's offset.  Padding, or a header to
 * check, is not empty and goes the long way, which reports it. */
static inline int record_busy_poll_found_nothing(const struct rq_rec *r, int timeout_ms)
{
    return timeout_ms == 0 && !r->q->polling && r->write_cache == r->r &&
           rq_load_acquire_u64(&r->shm->write_word) == rec_word(r->rseq, r->r);
}

static CLAIM_SLOW int record_pop_wait(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                                      rq_msg_info *info, int timeout_ms)
{
    return wait_result(r->q, rec_pop_one(r, buf, cap, len, info, timeout_ms));
}

/* As record_peek_info: the common case inline (nothing peeked, a plain
 * record ready), the long way a tail call with the arguments as they
 * came.  The common case saves what it needs after its copy. */
static RECORD_CALL int record_pop_info(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                                       rq_msg_info *info, int timeout_ms)
{
    const unsigned char *msg;
    uint32_t n, span, room;
    if (r->peeked || (room = rec_pop_room(r)) == 0 || !rec_pop_in_room(r, room, &msg, &n, &span))
        return record_busy_poll_found_nothing(r, timeout_ms)
                   ? RQ_EAGAIN
                   : record_pop_wait(r, buf, cap, len, info, timeout_ms);
    return rec_pop_take_in_room(r, buf, cap, len, info, msg, n, span, room, 0);
}

/* A record longer than RQ_COPY_SHORT, found at the read offset: its copy
 * (memcpy) and release, out of line so that the short ones save no
 * registers for the call. */
static CLAIM_SLOW int record_pop_copy(struct rq_rec *r, void *buf, const unsigned char *msg,
                                      uint32_t n, uint32_t span)
{
    return rec_pop_copy(r, buf, NULL, msg, n, span);
}

/* record_pop_wait without the info: its arguments are record_pop's, in
 * the same registers, so that the tail call moves none. */
static CLAIM_SLOW int record_pop_wait_plain(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                                            int timeout_ms)
{
    return wait_result(r->q, rec_pop_one(r, buf, cap, len, NULL, timeout_ms));
}

/* rq_pop's end once a record MSG/N (SPAN bytes) was found inside the
 * consumer's room ROOM: a long one's copy out of line, a short one (or
 * one too long for BUF too) here.  FAST as for record_push_in. */
static inline int record_pop_found(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                                   const unsigned char *msg, uint32_t n, uint32_t span,
                                   uint32_t room, int fast)
{
    if (n > RQ_COPY_SHORT && n <= cap) {
        *len = n;
        return record_pop_copy(r, buf, msg, n, span);
    }
    return rec_pop_take_in_room(r, buf, cap, len, NULL, msg, n, span, room, fast);
}

/* record_pop once the consumer's room ran out (or a peek is held): sets
 * the room again, reloading the write word if all it showed was read,
 * and pops here; else the long way.  A consumer that keeps up with its
 * producer comes here on nearly every pop; out of line, so that the
 * common path saves no registers for the reload. */
static inline int record_pop_refill_in(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                                       int timeout_ms, int fast)
{
    const unsigned char *msg;
    uint32_t n, span;
    if (r->peeked || !rec_pop_ready(r, &msg, &n, &span))
        return record_busy_poll_found_nothing(r, timeout_ms)
                   ? RQ_EAGAIN
                   : record_pop_wait_plain(r, buf, cap, len, timeout_ms);
    return record_pop_found(r, buf, cap, len, msg, n, span, r->rd_room, fast);
}

static CLAIM_SLOW int record_pop_refill(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                                        int timeout_ms)
{
    return record_pop_refill_in(r, buf, cap, len, timeout_ms, 0);
}

static CLAIM_SLOW int record_pop_refill_fast(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                                             int timeout_ms)
{
    return record_pop_refill_in(r, buf, cap, len, timeout_ms, 1);
}

/* rq_pop's: the same without the info. */
static inline int record_pop_in(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                                int timeout_ms, int fast)
{
    const unsigned char *msg;
    uint32_t n, span, room = r->rd_room;
    if (room == 0 || r->peeked)
        return fast ? record_pop_refill_fast(r, buf, cap, len, timeout_ms)
                    : record_pop_refill(r, buf, cap, len, timeout_ms);
    if (!rec_pop_in_room(r, room, &msg, &n, &span))
        return record_pop_wait_plain(r, buf, cap, len, timeout_ms);
    return record_pop_found(r, buf, cap, len, msg, n, span, room, fast);
}

static RECORD_CALL int record_pop(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                                  int timeout_ms)
{
    return record_pop_in(r, buf, cap, len, timeout_ms, 0);
}

/* A fast handle's (pop_other). */
static RECORD_CALL int record_pop_fast(struct rq_rec *r, void *buf, size_t cap, size_t *len,
                                       int timeout_ms)
{
    return record_pop_in(r, buf, cap, len, timeout_ms, 1);
}

/* A slot pop's copy of the N bytes at PAYLOAD, the oldest message, and
 * its release: out of line, so that rq_pop makes no call but tail calls
 * and saves no registers (a record pop passes through rq_pop too).
 * RQ_OK. */
static CLAIM_SLOW int slot_pop_copy(rq *q, void *buf, const void *payload, uint32_t n)
{
    rq_copy_long(buf, payload, n); /* longer than RQ_COPY_SHORT: the caller took those */
    RQ_CRASH_POINT(POP_AFTER_COPY);
    return consumer_release(q);
}

/* A slot pop of the oldest message, claimed at PAYLOAD (N bytes, checked
 * by the claim): a message longer than CAP is left in place (RQ_EMSGSIZE,
 * *LEN its length). */
static inline int slot_pop_claimed(rq *q, void *buf, size_t cap, size_t *len, rq_msg_info *info,
                                   const void *payload, uint32_t n, int full_fences)
{
    uint32_t read = q->ring.read; /* before the stores to the caller's memory */
    *len = n;
    if (n > cap)
        return RQ_EMSGSIZE; /* nothing consumed */
    if (info) {
        int redelivered;
        uint64_t seq = rq_ring_oldest_info(&q->ring, &redelivered);
        rq_msg_info_fill(info, seq, redelivered);
    }
    if (!rq_copy_if_short(buf, payload, n))
        return slot_pop_copy(q, buf, payload, n);
    RQ_CRASH_POINT(POP_AFTER_COPY);
    return consumer_release_at(q, full_fences, read);
}

/* A slot pop the long way: no message found at once; the claim waited
 * for. */
static CLAIM_SLOW int slot_pop_wait(rq *q, void *buf, size_t cap, size_t *len, rq_msg_info *info,
                                    int timeout_ms)
{
    const void *payload;
    uint32_t n;
    int rc = consumer_claim_wait(q, &payload, &n, timeout_ms);
    if (rc < 0)
        return rc;
    return slot_pop_claimed(q, buf, cap, len, info, payload, n, q->ring.full_fences);
}

/* A slot pop once the state is checked.  FULL_FENCES as for
 * consumer_release_ff. */
static SLOT_PATH int slot_pop_any(rq *q, void *buf, size_t cap, size_t *len, rq_msg_info *info,
                                  int timeout_ms, int full_fences)
{
    const void *payload;
    uint32_t n;
    int rc = rq_ring_pop_begin(&q->ring, &payload, &n);
    if (rc != RQ_OK)
        return busy_poll_found_nothing(q, rc, timeout_ms)
                   ? RQ_EAGAIN
                   : slot_pop_wait(q, buf, cap, len, info, timeout_ms);
    return slot_pop_claimed(q, buf, cap, len, info, payload, n, full_fences);
}

static SLOT_PATH int slot_pop_info(rq *q, void *buf, size_t cap, size_t *len, rq_msg_info *info,
                                   int timeout_ms, int full_fences)
{
    if (q->held != HELD_NONE)
        return RQ_ESTATE;
    return slot_pop_any(q, buf, cap, len, info, timeout_ms, full_fences);
}

int rq_pop_info(rq *q, void *buf, size_t cap, size_t *len, rq_msg_info *info, int timeout_ms)
{
    int rc = check_call(q, RQ_CONSUMER, timeout_ms);
    if (rc < 0)
        return rc;
    if (!len || (!buf && cap > 0))
        return RQ_EINVAL;
    return is_record_queue(q)
               ? record_pop_info(q->rec, buf, cap, len, info, timeout_ms)
               : slot_pop_info(q, buf, cap, len, info, timeout_ms, q->ring.full_fences);
}

/* rq_pop and rq_peek repeat their _info twin's check and dispatch rather
 * than call it: the call cost a copy push and pop 13 instructions, a
 * slot push, peek and release 10 (callgrind, rq_icount copy and rec_bench
 * --single, 2026-12-06). */
static CLAIM_SLOW int pop_other(rq *q, void *buf, size_t cap, size_t *len, int timeout_ms,
                                uint64_t gen)
{
    if (fast_is(q, gen, RQ_FAST_REC(RQ_CONSUMER))) { /* as in push_other */
        if (!len || (!buf && cap > 0))
            return RQ_EINVAL;
        return record_pop_fast(q->rec, buf, cap, len, timeout_ms);
    }
    if (!opened_under(q, gen)) /* check_handle's */
        return RQ_EFORK;
    if (q->role != RQ_CONSUMER)
        return RQ_EROLE;
    if (!len || (!buf && cap > 0))
        return RQ_EINVAL;
    return is_record_queue(q)
               ? record_pop(q->rec, buf, cap, len, timeout_ms)
               : slot_pop_info(q, buf, cap, len, NULL, timeout_ms, q->ring.full_fences);
}

int rq_pop(rq *q, void *buf, size_t cap, size_t *len, int timeout_ms)
{
    int rc = check_args(q, timeout_ms); /* then the fast word: see rq_push */
    if (rc < 0)
        return rc;
    uint64_t gen = fork_generation_now();
    if (!fast_is(q, gen, RQ_FAST(RQ_CONSUMER, HELD_NONE)))
        return pop_other(q, buf, cap, len, timeout_ms, gen);
    if (!len || (!buf && cap > 0))
        return RQ_EINVAL;
    return slot_pop_any(q, buf, cap, len, NULL, timeout_ms, 0); /* state: in q->fast */
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
        rq_copy((unsigned char *)buf + (size_t)done * cap, payload, n);
    }
    RQ_CRASH_POINT(POP_BURST_AFTER_COPY);
    consumer_release_burst(q, done);
    return (int)done;
}

static CLAIM_SLOW int record_peek_wait(struct rq_rec *r, const void **msg, size_t *len,
                                       rq_msg_info *info, int timeout_ms)
{
    return wait_result(r->q, rec_peek_one(r, msg, len, info, timeout_ms));
}

/* The long way is a tail call, and the handle is not passed (the record
 * state knows it): a register more for the common case, which then saves
 * two (record_peek, without the info, one). */
static RECORD_CALL int record_peek_info(struct rq_rec *r, const void **msg, size_t *len,
                                        rq_msg_info *info, int timeout_ms)
{
    if (rec_peek_fast(r, msg, len, info, 1))
        return RQ_OK;
    return record_busy_poll_found_nothing(r, timeout_ms)
               ? RQ_EAGAIN
               : record_peek_wait(r, msg, len, info, timeout_ms);
}

/* record_peek once the consumer's room ran out, as record_pop_refill. */
static CLAIM_SLOW int record_peek_refill(struct rq_rec *r, const void **msg, size_t *len,
                                         int timeout_ms)
{
    if (rec_peek_fast(r, msg, len, NULL, 1))
        return RQ_OK;
    return record_busy_poll_found_nothing(r, timeout_ms)
               ? RQ_EAGAIN
               : record_peek_wait(r, msg, len, NULL, timeout_ms);
}

/* rq_peek's: the same without the info (6 instructions less a peek). */
static RECORD_CALL int record_peek(struct rq_rec *r, const void **msg, size_t *len, int timeout_ms)
{
    if (rec_peek_fast(r, msg, len, NULL, 0))
        return RQ_OK;
    if (r->rd_room == 0)
        return record_peek_refill(r, msg, len, timeout_ms);
    return record_peek_wait(r, msg, len, NULL, timeout_ms);
}

/* The oldest message, just claimed into q->peeked, held by a peek.  No
 * mark stored: the held message is the oldest (see rq_ring_oldest_info
 * for how its flag survives a kill). */
static inline void slot_peek_hold(rq *q)
{
    if (q->held != HELD_PEEKED)
        q->held_count = 1;
    set_held(q, HELD_PEEKED);
    RQ_CRASH_POINT(PEEK_HANDED_OUT);
}

/* What a peek returns once a message is held. */
static inline void slot_peek_give(rq *q, const void **msg, size_t *len, rq_msg_info *info)
{
    *msg = q->peeked;
    *len = q->peeked_len;
    if (info) { /* the held message is the oldest: its number is read_pos */
        int redelivered;
        uint64_t seq = rq_ring_oldest_info(&q->ring, &redelivered);
        rq_msg_info_fill(info, seq, redelivered);
    }
}

/* A slot peek the long way: nothing held, and no message found at once;
 * the claim waited for. */
static CLAIM_SLOW int slot_peek_wait(rq *q, const void **msg, size_t *len, rq_msg_info *info,
                                     int timeout_ms)
{
    int rc = consumer_claim_wait(q, &q->peeked, &q->peeked_len, timeout_ms);
    if (rc < 0)
        return rc;
    slot_peek_hold(q);
    slot_peek_give(q, msg, len, info);
    return RQ_OK;
}

/* The common case inline, the long way a tail call: rq_peek itself then
 * saves no registers, on either kind's path (the record function it jumps
 * to saves its own: record_peek one). */
static SLOT_PATH int slot_peek_info(rq *q, const void **msg, size_t *len, rq_msg_info *info,
                                    int timeout_ms)
{
    if (q->held != HELD_PEEKED || !q->peeked) { /* none, or the rest of a burst */
        int rc = rq_ring_pop_begin(&q->ring, &q->peeked, &q->peeked_len);
        if (rc != RQ_OK)
            return busy_poll_found_nothing(q, rc, timeout_ms)
                       ? RQ_EAGAIN
                       : slot_peek_wait(q, msg, len, info, timeout_ms);
        slot_peek_hold(q);
    }
    slot_peek_give(q, msg, len, info);
    return RQ_OK;
}

int rq_peek_info(rq *q, const void **msg, size_t *len, rq_msg_info *info, int timeout_ms)
{
    int rc = check_call(q, RQ_CONSUMER, timeout_ms);
    if (rc < 0)
        return rc;
    if (!msg || !len)
        return RQ_EINVAL;
    return is_record_queue(q) ? record_peek_info(q->rec, msg, len, info, timeout_ms)
                              : slot_peek_info(q, msg, len, info, timeout_ms);
}

static CLAIM_SLOW int peek_other(rq *q, const void **msg, size_t *len, int timeout_ms, uint64_t gen)
{
    if (fast_is(q, gen, RQ_FAST_REC(RQ_CONSUMER))) { /* as in push_other */
        if (!msg || !len)
            return RQ_EINVAL;
        return record_peek(q->rec, msg, len, timeout_ms);
    }
    if (!opened_under(q, gen)) /* check_handle's */
        return RQ_EFORK;
    if (q->role != RQ_CONSUMER)
        return RQ_EROLE;
    if (!msg || !len)
        return RQ_EINVAL;
    return is_record_queue(q) ? record_peek(q->rec, msg, len, timeout_ms)
                              : slot_peek_info(q, msg, len, NULL, timeout_ms);
}

int rq_peek(rq *q, const void **msg, size_t *len, int timeout_ms)
{
    int rc = check_args(q, timeout_ms); /* then the fast word: see rq_push */
    if (rc < 0)
        return rc;
    uint64_t gen = fork_generation_now();
    if (!fast_is(q, gen, RQ_FAST(RQ_CONSUMER, HELD_NONE))) /* one held: the other way */
        return peek_other(q, msg, len, timeout_ms, gen);
    if (!msg || !len)
        return RQ_EINVAL;
    /* slot_peek_info holding nothing */
    rc = rq_ring_pop_begin(&q->ring, &q->peeked, &q->peeked_len);
    if (rc != RQ_OK)
        return busy_poll_found_nothing(q, rc, timeout_ms)
                   ? RQ_EAGAIN
                   : slot_peek_wait(q, msg, len, NULL, timeout_ms);
    q->held_count = 1; /* slot_peek_hold */
    q->held = HELD_PEEKED;
    fast_move(q, RQ_FAST(RQ_CONSUMER, HELD_NONE), RQ_FAST_PEEKED_ONE);
    RQ_CRASH_POINT(PEEK_HANDED_OUT);
    slot_peek_give(q, msg, len, NULL);
    return RQ_OK;
}

static RECORD_CALL int record_release(struct rq_rec *r)
{
    return rec_release_one(r);
}

static SLOT_PATH int slot_release(rq *q, int full_fences)
{
    if (q->held != HELD_PEEKED)
        return RQ_ESTATE;
    RQ_CRASH_POINT(RELEASE_BEFORE_PUBLISH);                     /* processed, not yet released */
    set_held(q, --q->held_count > 0 ? HELD_PEEKED : HELD_NONE); /* a burst's rest stays */
    q->peeked = NULL;
    return consumer_release_ff(q, full_fences);
}

static CLAIM_SLOW int release_other(rq *q, uint64_t gen)
{
    if (fast_is(q, gen, RQ_FAST_REC(RQ_CONSUMER))) /* as in push_other */
        return record_release(q->rec);
    if (!opened_under(q, gen)) /* check_handle's */
        return RQ_EFORK;
    if (q->role != RQ_CONSUMER)
        return RQ_EROLE;
    return is_record_queue(q) ? record_release(q->rec) : slot_release(q, q->ring.full_fences);
}

int rq_release(rq *q)
{
    int rc = check_args(q, 0); /* then the fast word: see rq_push */
    if (rc < 0)
        return rc;
    uint64_t gen = fork_generation_now();
    if (!fast_is(q, gen, RQ_FAST_PEEKED_ONE)) /* a burst's rest too: the other way */
        return release_other(q, gen);
    RQ_CRASH_POINT(RELEASE_BEFORE_PUBLISH); /* slot_release holding one peek */
    q->held_count = 0;
    q->held = HELD_NONE;
    fast_move(q, RQ_FAST_PEEKED_ONE, RQ_FAST(RQ_CONSUMER, HELD_NONE));
    q->peeked = NULL;
    return consumer_release_ff(q, 0);
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
    set_held(q, HELD_PEEKED);
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
    set_held(q, q->held_count > 0 ? HELD_PEEKED : HELD_NONE); /* the rest stays peeked */
    q->peeked = NULL;
    consumer_release_burst(q, (uint32_t)count);
    return RQ_OK;
}

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
