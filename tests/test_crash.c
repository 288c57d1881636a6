/*
 * test_crash.c - deterministic crash points, for both roles.
 *
 * For every crash point P a side passes, and for hit counts K, a child
 * process (producer or consumer) is armed to kill itself (SIGKILL,
 * TerminateProcess) on the K-th hit of P; the harness restarts it (armed again, a few times, then
 * unarmed) until all messages are through, and checks:
 *   1. the consumer saw every message, in order, untorn, with no gap, and
 *      with a repeat only of the one in flight at a kill;
 *   2. the queue still holds exactly slot_count messages afterwards;
 *   3. nobody blocked forever (every child has a watchdog, every wait of
 *      the harness a deadline; the children's own waits are unbounded),
 *      and no wake-up was lost (no sleeper found its work by the periodic
 *      re-check, which the missed-wake counters would show).
 * It prints how many points and kills it covered, and fails if any point
 * was never actually hit for a side that passes it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crashpoint.h"
#include "helpers.h"
#include "rq.h"

#define SLOTS 3u
#define SLOT_SIZE 64u
#define MESSAGES 40u
#define KILLS_PER_SCENARIO 3
#define CHILD_WATCHDOG_S 20
#define LIFE_TIMEOUT_MS 20000
#define PAUSE_US 300

enum pacing { SLOW_CONSUMER, SLOW_PRODUCER };

struct scenario {
    int point;         /* the point under test */
    int pre_point;     /* armed for the first life only, or -1 */
    char role;         /* 'P' or 'C' */
    unsigned long hit; /* K */
    uint32_t flags;
    enum pacing pacing;
    int consume_pop;
    unsigned burst; /* 0, or batches of up to this many (burst calls) */
};

static struct {
    unsigned long scenarios, kills, messages, duplicates, lost_by_pop, torn, reorders;
    unsigned long missed_wakes, flagged;
    unsigned long kills_at[RQ_CP_COUNT_][2]; /* [point][0 producer, 1 consumer] */
} totals;

/* Batches of the burst scenarios: the whole ring (SLOTS) and more. */
#define BURST 4u

static int is_burst_point(int point)
{
    const char *name = rq_crash_point_name(point);
    return strncmp(name, "push_burst.", 11) == 0 || strncmp(name, "pop_burst.", 10) == 0 ||
           strncmp(name, "release_burst.", 14) == 0;
}

static th_pid start(char role, int arm_point, unsigned long hit)
{
    th_pid pid = th_spawn_armed(role == 'P' ? "th_producer_main" : "th_consumer_main", "0",
                                CHILD_WATCHDOG_S, arm_point, hit);
    assert_true(pid > 0);
    return pid;
}

/* Points after which a popped message is gone from the queue but the
 * consumer never got to look at it: rq_pop is at-most-once by contract. */
static int pop_may_lose(int point)
{
    return point == RQ_CP_RELEASE_BEFORE_POSITION || point == RQ_CP_RELEASE_AFTER_PUBLISH ||
           point == RQ_CP_SIGNAL_BEFORE_BUMP || point == RQ_CP_SIGNAL_BEFORE_WAKE;
}

static void check_capacity(const char *name)
{
    rq *p, *c;
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, NULL), RQ_OK);
    assert_int_equal(rq_open(&c, name, RQ_CONSUMER, NULL), RQ_OK);
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.depth, 0);
    unsigned char buf[SLOT_SIZE];
    for (uint32_t i = 0; i < st.slot_count; i++) {
        size_t len = th_msg_make(buf, SLOT_SIZE, 1000 + i, 7);
        assert_int_equal(rq_push(p, buf, len, 0), RQ_OK);
    }
    assert_int_equal(rq_push(p, buf, 1, 0), RQ_EAGAIN); /* exactly slot_count */
    for (uint32_t i = 0; i < st.slot_count; i++) {
        size_t len;
        uint64_t seq;
        uint32_t stream;
        assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
        assert_int_equal(th_msg_check(buf, len, &seq, &stream), 0);
        assert_int_equal(seq, 1000 + i);
    }
    rq_close(p);
    rq_close(c);
}

static void run_scenario(const struct scenario *s)
{
    th_jr = th_journal_new(th_name("crash"), SLOT_SIZE, 1, MESSAGES);
    th_jr->producer_pause_us = s->pacing == SLOW_PRODUCER ? PAUSE_US : 0;
    th_jr->consumer_pause_us = s->pacing == SLOW_CONSUMER ? PAUSE_US : 0;
    th_jr->consume_pop = s->consume_pop;
    th_jr->burst = s->burst;
    uint64_t per_kill = s->burst ? s->burst : 1; /* messages one kill may repeat or lose */
    rq *keep = th_create(th_jr->name, SLOTS, SLOT_SIZE, s->flags); /* Windows: alive */

    int first = s->pre_point >= 0 ? s->pre_point : s->point;
    th_pid prod = start('P', s->role == 'P' ? first : -1, s->hit);
    th_pid cons = start('C', s->role == 'C' ? first : -1, s->hit);
    int kills = 0, prod_done = 0, cons_done = 0;
    uint64_t until = th_now_ms() + LIFE_TIMEOUT_MS;
    while (!prod_done || !cons_done) {
        int status;
        th_pid pid = th_wait_any(20, &status);
        if (pid == 0) {
            if (th_now_ms() > until) {
                if (!prod_done)
                    th_kill(prod);
                if (!cons_done)
                    th_kill(cons);
                fail_msg("%s (%c, hit %lu): a side blocked for %d ms",
                         rq_crash_point_name(s->point), s->role, s->hit, LIFE_TIMEOUT_MS);
            }
            continue;
        }
        assert_true(pid == prod || pid == cons);
        char who = pid == prod ? 'P' : 'C';
        if (th_was_killed(status)) {
            assert_int_equal(who, s->role); /* only the armed side dies */
            kills++;
            if (kills > 1 || s->pre_point < 0)
                totals.kills_at[s->point][who == 'C']++;
            th_pid np = start(who, kills < KILLS_PER_SCENARIO ? s->point : -1, s->hit);
            if (who == 'P')
                prod = np;
            else
                cons = np;
            until = th_now_ms() + LIFE_TIMEOUT_MS;
            continue;
        }
        if (!th_exited_ok(status))
            fail_msg("%s (%c, hit %lu): %c exited with status 0x%x", rq_crash_point_name(s->point),
                     s->role, s->hit, who, status);
        if (who == 'P')
            prod_done = 1;
        else
            cons_done = 1;
    }

    uint64_t gaps = rq_load_relaxed_u64(&th_jr->gaps);
    uint64_t dups = rq_load_relaxed_u64(&th_jr->duplicates);
    assert_int_equal(rq_load_relaxed_u64(&th_jr->cons_next[0]), MESSAGES);
    assert_int_equal(rq_load_relaxed_u64(&th_jr->torn), 0);
    assert_int_equal(rq_load_relaxed_u64(&th_jr->reorders), 0);
    if (s->role == 'C' && s->consume_pop && pop_may_lose(s->point))
        assert_true(gaps <= (uint64_t)kills * per_kill);
    else if (gaps != 0)
        fail_msg("%s (%c, hit %lu, pop %d): %llu lost", rq_crash_point_name(s->point), s->role,
                 s->hit, s->consume_pop, (unsigned long long)gaps);
    assert_true(dups <= (uint64_t)kills * per_kill); /* only those in flight, per kill */
    /* The queue's numbers: none given twice, no repeat without its flag,
     * and none skipped but where rq_pop lost one by contract. */
    uint64_t qgaps = rq_load_relaxed_u64(&th_jr->qseq_gaps);
    if (rq_load_relaxed_u64(&th_jr->qseq_reused) || rq_load_relaxed_u64(&th_jr->flags_lost) ||
        (qgaps && !(s->role == 'C' && s->consume_pop && pop_may_lose(s->point))))
        fail_msg("%s (%c, hit %lu, pop %d): sequence numbers reused %llu, skipped %llu, "
                 "redelivery flags lost %llu",
                 rq_crash_point_name(s->point), s->role, s->hit, s->consume_pop,
                 (unsigned long long)rq_load_relaxed_u64(&th_jr->qseq_reused),
                 (unsigned long long)qgaps,
                 (unsigned long long)rq_load_relaxed_u64(&th_jr->flags_lost));
    assert_true(qgaps <= (uint64_t)kills * per_kill);
    /* A flag on a message new to the journal: per consumer death at most
     * the one it had in hand or the oldest (a batch: the batch); never
     * when only the producer died. */
    uint64_t new_flagged = rq_load_relaxed_u64(&th_jr->new_flagged);
    if (new_flagged > (s->role == 'C' ? (uint64_t)kills * per_kill : 0))
        fail_msg("%s (%c, hit %lu, pop %d): %llu new messages flagged after %d kills",
                 rq_crash_point_name(s->point), s->role, s->hit, s->consume_pop,
                 (unsigned long long)new_flagged, kills);
    totals.flagged += (unsigned long)rq_load_relaxed_u64(&th_jr->flagged);
    /* A killed side is restarted at once and signals at open, so no sleeper
     * ever had to find its work by the periodic re-check. */
    rq *o = th_open(th_jr->name, RQ_OBSERVER, SLOTS, SLOT_SIZE, s->flags);
    rq_stats st;
    assert_int_equal(rq_stat(o, &st), RQ_OK);
    rq_close(o);
    totals.missed_wakes += (unsigned long)(st.producer_missed_wakes + st.consumer_missed_wakes);
    if (st.producer_missed_wakes + st.consumer_missed_wakes != 0)
        fail_msg("%s (%c, hit %lu): a wake-up was lost (missed wakes p/c %llu/%llu)",
                 rq_crash_point_name(s->point), s->role, s->hit,
                 (unsigned long long)st.producer_missed_wakes,
                 (unsigned long long)st.consumer_missed_wakes);
    check_capacity(th_jr->name);
    rq_close(keep);
    rq_unlink(th_jr->name);
    totals.scenarios++;
    totals.kills += (unsigned long)kills;
    totals.messages += rq_load_relaxed_u64(&th_jr->received);
    totals.duplicates += (unsigned long)dups;
    totals.lost_by_pop += (unsigned long)gaps;
    totals.torn += (unsigned long)rq_load_relaxed_u64(&th_jr->torn);
    totals.reorders += (unsigned long)rq_load_relaxed_u64(&th_jr->reorders);
    th_jr = NULL;
}

static void test_every_point_for_every_side(void **state)
{
    (void)state;
    static const unsigned long hits[] = {1, 5};
    for (int point = 0; point < RQ_CP_COUNT_; point++) {
        const char *roles = rq_crash_point_roles(point);
        int mpsc_only = strncmp(rq_crash_point_name(point), "mpsc.", 5) == 0;
        int pre = -1;
        if (point == RQ_CP_MPSC_AFTER_RECOVER)
            pre = RQ_CP_MPSC_AFTER_LOCK; /* first die holding the lock */
        /* Points of the burst calls, and the publish points a burst shares
         * with single messages, are killed in batches of up to BURST. */
        int burst_only = is_burst_point(point);
        int both = burst_only || point == RQ_CP_PUSH_BEFORE_POSITION ||
                   point == RQ_CP_RELEASE_BEFORE_POSITION || point == RQ_CP_DELIVER_AFTER_MARK;
        for (const char *r = roles; *r; r++) {
            if (*r != 'P' && *r != 'C')
                continue; /* opener points: test_creator_killed_while_initialising */
            for (size_t h = 0; h < sizeof hits / sizeof *hits; h++) {
                for (int pacing = SLOW_CONSUMER; pacing <= SLOW_PRODUCER; pacing++) {
                    for (int variant = 0; variant < 4; variant++) {
                        struct scenario s = {point, pre,
                                             *r,    hits[h],
                                             0,     (enum pacing)pacing,
                                             0,     variant >= 2 ? BURST : 0};
                        if ((variant >= 2 && !both) || (variant < 2 && burst_only))
                            continue;
                        if (*r == 'P') {
                            if (mpsc_only && !(variant % 2))
                                continue;
                            s.flags = variant % 2 ? RQ_MPSC : 0;
                        } else {
                            s.consume_pop = variant % 2;
                        }
                        run_scenario(&s);
                    }
                }
            }
        }
    }
    unsigned long covered = 0, expected = 0;
    for (int point = 0; point < RQ_CP_COUNT_; point++) {
        const char *roles = rq_crash_point_roles(point);
        for (int side = 0; side < 2; side++) {
            if (!strchr(roles, side ? 'C' : 'P'))
                continue;
            expected++;
            if (totals.kills_at[point][side])
                covered++;
            else
                print_error("crash point %s was never hit by the %s\n", rq_crash_point_name(point),
                            side ? "consumer" : "producer");
        }
    }
    print_message("crash points: %lu of %lu (point, side) pairs covered; %lu scenarios, %lu kills, "
                  "%lu messages checked, %lu redelivered (%lu flagged as such), %lu lost (all by "
                  "rq_pop's at-most-once after its free), %lu torn, %lu reordered, %lu wake-ups "
                  "lost\n",
                  covered, expected, totals.scenarios, totals.kills, totals.messages,
                  totals.duplicates, totals.flagged, totals.lost_by_pop, totals.torn,
                  totals.reorders, totals.missed_wakes);
    assert_int_equal(covered, expected);
}

/* Opener points: a creator killed inside initialisation. */
static int creator_main(const char *queue)
{
    rq *q;
    rq_config cfg = {SLOTS, SLOT_SIZE, 0, 0};
    if (rq_open(&q, queue, RQ_PRODUCER, &cfg) != RQ_OK)
        return 40;
    rq_close(q);
    return 0;
}

static void test_creator_killed_while_initialising(void **state)
{
    (void)state;
    const int points[] = {RQ_CP_OPEN_AFTER_INIT_LOCK, RQ_CP_INIT_AFTER_RESIZE,
                          RQ_CP_INIT_BEFORE_MAGIC};
    unsigned long kills = 0;
    for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
        const char *creator_queue = th_name("init");
        th_pid pid = th_spawn_armed("creator_main", creator_queue, CHILD_WATCHDOG_S, points[i], 1);
        int status;
        assert_int_equal(th_wait(pid, LIFE_TIMEOUT_MS, &status), 0);
        assert_true(th_was_killed(status));
        kills++;
        /* nobody attaches to the half-made queue ... */
        rq *q = (rq *)1;
        assert_int_equal(rq_open(&q, creator_queue, RQ_CONSUMER, NULL), RQ_ENOENT);
        assert_null(q);
        /* ... and the next creator makes it whole */
        rq *p = th_open(creator_queue, RQ_PRODUCER, SLOTS, SLOT_SIZE, 0);
        rq *keep = th_keep_alive(creator_queue);
        rq_stats st;
        assert_int_equal(rq_stat(p, &st), RQ_OK);
#ifdef _WIN32
        /* A named mapping goes with its last handle: the half-made object
         * died with its only holder, and this creator made a new one.
         * test_half_made_segment_is_repaired (test_queue) covers a
         * half-made object that another process keeps alive. */
        assert_int_equal(st.repairs, 0);
#else
        assert_int_equal(st.repairs, points[i] == RQ_CP_OPEN_AFTER_INIT_LOCK ? 0 : 1);
#endif
        rq_close(p);
        check_capacity(creator_queue);
        rq_close(keep);
        rq_unlink(creator_queue);
    }
    print_message("initialisation: %lu points, %lu creators killed, every queue re-created\n",
                  (unsigned long)(sizeof points / sizeof *points), kills);
}

/* ---- a peer killed between publishing and signalling, never restarted -- */

#define LONELY_MSG "the last word"

static int lonely_consumer_main(const char *lonely_queue)
{
    rq *c;
    if (rq_open(&c, lonely_queue, RQ_CONSUMER, NULL) != RQ_OK)
        return 50;
    th_sleep_us(100 * 1000); /* a sleeping peer handles our open-time wake first */
    char buf[SLOT_SIZE];
    size_t len;
    if (rq_pop(c, buf, sizeof buf, &len, RQ_INFINITE) != RQ_OK) /* sleeps: empty */
        return 51;
    if (len != sizeof LONELY_MSG || memcmp(buf, LONELY_MSG, len) != 0)
        return 52;
    rq_close(c);
    return 0;
}

static int lonely_producer_main(const char *lonely_queue)
{
    rq *p;
    if (rq_open(&p, lonely_queue, RQ_PRODUCER, NULL) != RQ_OK)
        return 53;
    th_sleep_us(100 * 1000); /* a sleeping peer handles our open-time wake first */
    if (rq_push(p, LONELY_MSG, sizeof LONELY_MSG, RQ_INFINITE) != RQ_OK) /* sleeps: full */
        return 54;
    rq_close(p);
    return 0;
}

/* Waits until the side keeping COUNTER (a *_waits statistic) has gone to
 * sleep in a blocking call; then a little longer, so it is really asleep. */
static void wait_until_asleep(const char *name, int producer)
{
    rq *o = th_open(name, RQ_OBSERVER, 1, SLOT_SIZE, 0);
    rq_stats st;
    uint64_t until = th_now_ms() + LIFE_TIMEOUT_MS;
    do {
        assert_true(th_now_ms() < until);
        th_sleep_us(1000);
        assert_int_equal(rq_stat(o, &st), RQ_OK);
    } while ((producer ? st.producer_waits : st.consumer_waits) == 0);
    rq_close(o);
    th_sleep_us(50 * 1000);
}

static void expect_missed_wake(const char *name, th_pid sleeper, int producer)
{
    int status;
    assert_int_equal(th_wait(sleeper, LIFE_TIMEOUT_MS, &status), 0);
    assert_true(th_exited_ok(status));
    rq *o = th_open(name, RQ_OBSERVER, 1, SLOT_SIZE, 0);
    rq_stats st;
    assert_int_equal(rq_stat(o, &st), RQ_OK);
    assert_int_equal(producer ? st.producer_missed_wakes : st.consumer_missed_wakes, 1);
    assert_int_equal(producer ? st.consumer_missed_wakes : st.producer_missed_wakes, 0);
    rq_close(o);
}

/* The producer dies after publishing and before waking the sleeping
 * consumer, and never comes back: the consumer's bounded sleep re-checks
 * and finds the message. */
static void test_consumer_is_not_left_asleep_by_a_dead_producer(void **state)
{
    (void)state;
    const char *lonely_queue = th_name("lonely.c");
    /* An observer keeps the queue alive on Windows, where it would go with
     * the last handle (between the producer's death and the consumer's
     * check); on Linux it changes nothing. */
    rq *keep = th_open(lonely_queue, RQ_OBSERVER, 1, SLOT_SIZE, 0);
    th_pid cons = th_spawn("lonely_consumer_main", lonely_queue, CHILD_WATCHDOG_S);
    wait_until_asleep(lonely_queue, 0);
    th_pid prod = th_spawn_armed("lonely_producer_main", lonely_queue, CHILD_WATCHDOG_S,
                                 RQ_CP_PUSH_AFTER_PUBLISH, 1);
    int status;
    assert_int_equal(th_wait(prod, LIFE_TIMEOUT_MS, &status), 0);
    assert_true(th_was_killed(status));
    expect_missed_wake(lonely_queue, cons, 0);
    rq_close(keep);
    rq_unlink(lonely_queue);
}

/* The consumer frees the only slot of a full queue and dies before waking
 * the sleeping producer: the producer's re-check finds the room. */
static void test_producer_is_not_left_asleep_by_a_dead_consumer(void **state)
{
    (void)state;
    const char *lonely_queue = th_name("lonely.p");
    rq *keep = th_open(lonely_queue, RQ_OBSERVER, 1, SLOT_SIZE, 0); /* as above */
    rq *p = th_open(lonely_queue, RQ_PRODUCER, 1, SLOT_SIZE, 0);
    assert_int_equal(rq_push(p, "x", 1, 0), RQ_OK); /* full */
    rq_close(p);
    th_pid prod = th_spawn("lonely_producer_main", lonely_queue, CHILD_WATCHDOG_S);
    wait_until_asleep(lonely_queue, 1);
    th_pid cons = th_spawn_armed("lonely_consumer_main", lonely_queue, CHILD_WATCHDOG_S,
                                 RQ_CP_RELEASE_AFTER_PUBLISH, 1);
    int status;
    assert_int_equal(th_wait(cons, LIFE_TIMEOUT_MS, &status), 0);
    assert_true(th_was_killed(status));
    expect_missed_wake(lonely_queue, prod, 1);
    rq *c = th_open(lonely_queue, RQ_CONSUMER, 1, SLOT_SIZE, 0);
    char buf[SLOT_SIZE];
    size_t len;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_memory_equal(buf, LONELY_MSG, sizeof LONELY_MSG);
    rq_close(c);
    rq_close(keep);
    rq_unlink(lonely_queue);
}

/* ---- single-message hand-offs: every wake-up must come as a wake-up -- */

/* The journal scenarios above keep both sides busy, so a sleeper mostly
 * finds its work at the end of its first nap and a skipped signal goes
 * unseen.  Here every message is a hand-off to a side that is already in
 * its long sleep (the gap outlasts the nap): first the consumer sleeps on
 * an empty queue before each message, then the producer sleeps on a full
 * one before each free slot.  Each of those sleeps must be ended by the
 * peer's signal; one ended by the 1 s re-check is a lost wake-up, and the
 * parent stops at the first (about a second), naming the hand-off. */
#define HANDOFFS 10u
#define HANDOFF_GAP_US (20u * 1000u)

static int handoff_producer_main(const char *handoff_queue)
{
    rq *p;
    if (rq_open(&p, handoff_queue, RQ_PRODUCER, NULL) != RQ_OK)
        return 60;
    for (uint32_t i = 0; i < 2 * HANDOFFS; i++) {
        if (i < HANDOFFS)
            th_sleep_us(HANDOFF_GAP_US); /* phase 1: the consumer falls asleep */
        uint64_t t0 = th_now_ms();
        if (rq_push(p, &i, sizeof i, LIFE_TIMEOUT_MS) != RQ_OK) /* phase 2: sleeps on full */
            return 61;
        th_check_wakes_after(p, "rq_push (hand-off producer)", t0);
    }
    rq_close(p);
    return 0;
}

static void handoffs(uint32_t flags)
{
    const char *handoff_queue = th_name("handoff");
    rq *c = th_open(handoff_queue, RQ_CONSUMER, 1, SLOT_SIZE, flags);
    th_pid prod = th_spawn("handoff_producer_main", handoff_queue, CHILD_WATCHDOG_S);
    uint64_t start = th_now_ms(), slowest = 0;
    for (uint32_t i = 0; i < 2 * HANDOFFS; i++) {
        if (i >= HANDOFFS)
            th_sleep_us(HANDOFF_GAP_US); /* phase 2: the producer falls asleep */
        uint32_t v = 0;
        size_t len;
        uint64_t t0 = th_now_ms();
        int rc = rq_pop(c, &v, sizeof v, &len, LIFE_TIMEOUT_MS);
        uint64_t took = th_now_ms() - t0;
        slowest = took > slowest ? took : slowest;
        if (rc != RQ_OK)
            fail_msg("hand-off %u: rq_pop %s after %llu ms", i, rq_errname(rc),
                     (unsigned long long)took);
        assert_int_equal(v, i);
        rq_stats st;
        assert_int_equal(rq_stat(c, &st), RQ_OK);
        if (st.consumer_missed_wakes + st.producer_missed_wakes != 0)
            fail_msg("hand-off %u (%s asleep%s): a wake-up was lost, the sleeper was ended by its "
                     "1 s re-check (missed wakes p/c %llu/%llu, this pop took %llu ms)",
                     i, i < HANDOFFS ? "consumer" : "producer",
                     (flags & RQ_FULL_FENCES) ? ", full fences" : "",
                     (unsigned long long)st.producer_missed_wakes,
                     (unsigned long long)st.consumer_missed_wakes, (unsigned long long)took);
    }
    int status;
    assert_int_equal(th_wait(prod, LIFE_TIMEOUT_MS, &status), 0);
    assert_true(th_exited_ok(status));
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_true(st.consumer_waits >= HANDOFFS / 2); /* they did sleep */
    assert_true(st.producer_waits >= HANDOFFS / 2);
    print_message("hand-offs%s: %u to a sleeping consumer, %u to a sleeping producer in %llu ms "
                  "(slowest %llu ms), waits p/c %llu/%llu, missed wakes 0\n",
                  (flags & RQ_FULL_FENCES) ? " (full fences)" : "", HANDOFFS, HANDOFFS,
                  (unsigned long long)(th_now_ms() - start), (unsigned long long)slowest,
                  (unsigned long long)st.producer_waits, (unsigned long long)st.consumer_waits);
    rq_close(c);
    rq_unlink(handoff_queue);
}

static void test_every_hand_off_to_a_sleeper_is_woken(void **state)
{
    (void)state;
    handoffs(0);
    handoffs(RQ_FULL_FENCES);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_JOURNAL_CHILDREN,
        TH_CHILD(creator_main),
        TH_CHILD(lonely_consumer_main),
        TH_CHILD(lonely_producer_main),
        TH_CHILD(handoff_producer_main),
    };
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_hand_off_to_a_sleeper_is_woken),
        cmocka_unit_test(test_creator_killed_while_initialising),
        cmocka_unit_test(test_every_point_for_every_side),
        cmocka_unit_test(test_consumer_is_not_left_asleep_by_a_dead_producer),
        cmocka_unit_test(test_producer_is_not_left_asleep_by_a_dead_consumer),
    };
    return cmocka_run_group_tests_name("crash", tests, NULL, NULL);
}
