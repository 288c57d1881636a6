/*
 * deadline.h - timeouts of blocking calls, and the re-check interval that
 * bounds every sleep.  OS-neutral.
 *
 * Why every sleep is bounded: a wake-up is one store plus one signal, two
 * steps that a SIGKILL can split (a producer killed after publishing and
 * before waking the consumer, a Windows requester killed between its count
 * and its SetEvent).  A restarted peer signals again at open, but a peer
 * that never comes back would leave the sleeper asleep beside work it could
 * do.  So no sleep lasts longer than RQ_RECHECK_MS: the sleeper then looks
 * at the shared state itself.  Regular wake-ups never depend on this; the
 * re-checks that find work are counted (missed_wakes), so a lost wake-up
 * shows in the statistics and fails the tests instead of hiding.
 *
 * Tested by test_queue (test_timeouts and the blocking calls), test_crash
 * (a sleeper whose peer died is found by the re-check) and test_coalesce.
 */
#ifndef RQ_DEADLINE_H
#define RQ_DEADLINE_H

#include <stdint.h>

#include "platform.h"
#include "rq.h"

#define RQ_RECHECK_MS 1000

/* A re-check that finds work waits this long for a late wake-up before it
 * counts the wake as missed (a live peer may be between its two steps). */
#define RQ_MISSED_WAKE_GRACE_MS 50

/* Without full fences, the first sleep of a wait is a nap taken without
 * the system-wide barrier (see wait_on in queue.c): a message (or a free
 * slot) published in a race with our going to sleep is seen at most one
 * nap late.  A sleep that no barrier made safe lasts at most
 * RQ_UNFENCED_NAP_MS: a producer's first nap, a poller's armed without the
 * barrier, a record wait's naps for what no signal announces, a wait whose
 * barrier failed. */
#define RQ_UNFENCED_NAP_MS 1

/* ...except the consumer's first nap, longer than the gaps of a sender
 * that sends every millisecond or two, so that such a consumer is woken by
 * the message and not by the nap's end: with 1 ms, about half of those
 * waits ended in a timer wake-up, a barrier and a second sleep, and the
 * delivery delay's p99.9 was 1.2-2.8 x a bare futex's on a VM
 * (docs/performance/latency.md, "The consumer's first nap").  Only the
 * consumer's: every publish signals a registered consumer again, so a
 * streaming producer wakes one that missed a signal at its next push
 * (unless that publish filled the ring: then the nap's end does), while a
 * release signals the producers only when it frees a full ring, so a
 * producer that missed that signal waits for its nap's end. */
#define RQ_CONSUMER_NAP_MS 5

struct rq_deadline {
    int timeout_ms;    /* as the caller gave it: RQ_INFINITE, 0, or > 0 */
    uint64_t until_ms; /* timeout_ms > 0: when it expires */
};

static inline struct rq_deadline rq_deadline_start(int timeout_ms)
{
    struct rq_deadline d = {timeout_ms, 0};
    if (timeout_ms > 0)
        d.until_ms = rq_plat_now_ms() + (uint64_t)timeout_ms;
    return d;
}

/* Milliseconds left: RQ_INFINITE, or >= 0 (0: expired, or never wait). */
static inline int rq_deadline_left(const struct rq_deadline *d)
{
    if (d->timeout_ms < 0)
        return RQ_INFINITE;
    if (d->timeout_ms == 0)
        return 0; /* no clock read: a busy caller polls with timeout 0 */
    uint64_t now = rq_plat_now_ms();
    if (now >= d->until_ms)
        return 0;
    uint64_t left = d->until_ms - now;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

/* The error for an expired deadline: RQ_EAGAIN if the call was not allowed
 * to wait at all, RQ_ETIMEDOUT if it waited. */
static inline int rq_deadline_error(const struct rq_deadline *d)
{
    return d->timeout_ms == 0 ? RQ_EAGAIN : RQ_ETIMEDOUT;
}

/* How long the next sleep may last: what is left, but never more than
 * RQ_RECHECK_MS.  *IS_SLICE tells whether the cap applied, i.e. whether a
 * timeout of that sleep is a re-check rather than the caller's deadline. */
static inline int rq_deadline_slice(int left, int *is_slice)
{
    *is_slice = left < 0 || left > RQ_RECHECK_MS;
    return *is_slice ? RQ_RECHECK_MS : left;
}

#endif /* RQ_DEADLINE_H */
