/*
 * test_torture.c - random SIGKILLs of real producer and consumer processes.
 *
 * A producer and a consumer run flat out (unbounded waits; a lost wake-up
 * shows as a missed wake in the statistics and fails the run); the harness SIGKILLs one of them, or
 * both, at random moments and restarts it at once, KILLS times.  Then it
 * lets them finish and checks the consumer's account: every message seen,
 * in order, untorn, none lost, repeats only of one in flight per kill; and
 * the queue still holds exactly slot_count messages.
 *
 * Default: 1000 kills with rq_peek/rq_release (at-least-once) plus a short
 * rq_pop round (Windows: 100, since a process start under Wine takes about
 * 0.1 s; RQ_TEST_KILLS sets another number).  `test_torture --soak [KILLS]`
 * runs the long version.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "rq.h"

#define WATCHDOG_S 120
#define FINISH_TIMEOUT_MS 60000

static unsigned long kill_target;

struct torture {
    uint32_t slots, slot_size;
    unsigned long kills;
    int consume_pop;
    uint64_t seed;
    uint32_t flags; /* rq_config.flags of the queue */
};

struct outcome {
    unsigned long kills, producer_kills, consumer_kills, both_kills;
    uint64_t received, duplicates, gaps, torn, reorders, new_flagged;
    rq_stats stats;
};

static th_pid spawn_side(int producer)
{
    th_pid pid = th_spawn(producer ? "th_producer_main" : "th_consumer_main", "0", WATCHDOG_S);
    assert_true(pid > 0);
    return pid;
}

static void run(const struct torture *t, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    th_jr = th_journal_new(th_name("torture"), t->slot_size, 1, UINT64_MAX);
    th_jr->consume_pop = t->consume_pop;
    /* Windows: the observer keeps the queue alive when both sides are dead */
    rq *keep = th_create(th_jr->name, t->slots, t->slot_size, t->flags);
    uint64_t rng = t->seed;
    th_pid prod = spawn_side(1), cons = spawn_side(0);
    uint64_t lives = 2;
    while (o->kills < t->kills) {
        th_journal_await_started(th_jr, lives); /* kill in the work, not the start */
        th_sleep_us((unsigned long)(th_rand(&rng) % 2000));
        unsigned pick = (unsigned)(th_rand(&rng) % 20);
        if (pick < 2) { /* both at once: the messages must outlive them */
            th_kill_and_reap(prod);
            th_kill_and_reap(cons);
            prod = spawn_side(1);
            cons = spawn_side(0);
            lives += 2;
            o->both_kills++;
        } else if (pick < 11) {
            th_kill_and_reap(prod);
            prod = spawn_side(1);
            lives++;
            o->producer_kills++;
        } else {
            th_kill_and_reap(cons);
            cons = spawn_side(0);
            lives++;
            o->consumer_kills++;
        }
        o->kills++;
    }
    /* Finish: a limit beyond anything sent, so the consumer always has
     * more to wait for and both sides end by themselves. */
    rq_store_release_u64(&th_jr->limit, rq_load_acquire_u64(&th_jr->prod_next[0]) + 500);
    int status;
    assert_int_equal(th_wait(prod, FINISH_TIMEOUT_MS, &status), 0);
    assert_true(th_exited_ok(status));
    assert_int_equal(th_wait(cons, FINISH_TIMEOUT_MS, &status), 0);
    assert_true(th_exited_ok(status));

    o->received = rq_load_relaxed_u64(&th_jr->received);
    o->duplicates = rq_load_relaxed_u64(&th_jr->duplicates);
    o->gaps = rq_load_relaxed_u64(&th_jr->gaps);
    o->torn = rq_load_relaxed_u64(&th_jr->torn);
    o->reorders = rq_load_relaxed_u64(&th_jr->reorders);
    o->new_flagged = rq_load_relaxed_u64(&th_jr->new_flagged);
    th_journal_check_numbers(th_jr, o->consumer_kills + o->both_kills, 1, t->consume_pop);
    rq *q = th_open(th_jr->name, RQ_OBSERVER, t->slots, t->slot_size, t->flags);
    assert_int_equal(rq_stat(q, &o->stats), RQ_OK);
    rq_close(q);

    /* exactly slot_count messages still fit */
    rq *p = th_open(th_jr->name, RQ_PRODUCER, t->slots, t->slot_size, t->flags);
    rq *c = th_open(th_jr->name, RQ_CONSUMER, t->slots, t->slot_size, t->flags);
    unsigned char buf[TH_SLOT_SIZE_MAX];
    size_t len;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_EAGAIN);
    for (uint32_t i = 0; i < t->slots; i++)
        assert_int_equal(rq_push(p, buf, th_msg_make(buf, t->slot_size, i, 0), 0), RQ_OK);
    assert_int_equal(rq_push(p, buf, 1, 0), RQ_EAGAIN);
    rq_close(p);
    rq_close(c);
    rq_close(keep);
    rq_unlink(th_jr->name);
    th_jr = NULL;
}

static void report(const char *what, const struct outcome *o)
{
    print_message(
        "%s: kills %lu (producer %lu, consumer %lu, both %lu), messages checked %llu, "
        "lost %llu, torn %llu, reordered %llu, redelivered %llu (new ones flagged %llu); "
        "takeovers p/c "
        "%llu/%llu, wakes p/c %llu/%llu, wake-ups lost p/c %llu/%llu\n",
        what, o->kills, o->producer_kills, o->consumer_kills, o->both_kills,
        (unsigned long long)o->received, (unsigned long long)o->gaps, (unsigned long long)o->torn,
        (unsigned long long)o->reorders, (unsigned long long)o->duplicates,
        (unsigned long long)o->new_flagged, (unsigned long long)o->stats.producer_takeovers,
        (unsigned long long)o->stats.consumer_takeovers,
        (unsigned long long)o->stats.producer_wakes, (unsigned long long)o->stats.consumer_wakes,
        (unsigned long long)o->stats.producer_missed_wakes,
        (unsigned long long)o->stats.consumer_missed_wakes);
}

static void test_random_kills_lose_nothing(void **state)
{
    (void)state;
    struct torture t = {5, 256, kill_target, 0, 0x5eed0001u, 0};
    struct outcome o;
    run(&t, &o);
    report("peek/release", &o);
    assert_true(o.kills >= kill_target);
    assert_true(o.received > o.kills); /* it really moved messages */
    assert_int_equal(o.gaps, 0);
    assert_int_equal(o.torn, 0);
    assert_int_equal(o.reorders, 0);
    assert_true(o.duplicates <= o.kills);
    assert_true(o.stats.producer_takeovers + o.stats.consumer_takeovers > 0);
    /* every kill is followed by a restart, which signals at open: no
     * sleeper ever had to rely on its periodic re-check */
    assert_int_equal(o.stats.producer_missed_wakes + o.stats.consumer_missed_wakes, 0);
}

static void test_random_kills_single_slot_pop(void **state)
{
    (void)state;
    /* One slot, rq_pop: at-most-once, so a kill may cost the one message
     * the consumer had in hand, never more, and never tears or reorders.
     * This queue publishes with full fences (RQ_FULL_FENCES), so both
     * publishing protocols are killed for real on Linux. */
    struct torture t = {1, 64, kill_target / 5, 1, 0x5eed0002u, RQ_FULL_FENCES};
    struct outcome o;
    run(&t, &o);
    report("pop, 1 slot, full fences", &o);
    assert_true(o.stats.flags & RQ_FULL_FENCES);
    assert_int_equal(o.stats.producer_missed_wakes + o.stats.consumer_missed_wakes, 0);
    assert_true(o.received > o.kills);
    assert_true(o.gaps <= o.consumer_kills + o.both_kills);
    assert_int_equal(o.torn, 0);
    assert_int_equal(o.reorders, 0);
    assert_true(o.duplicates <= o.kills);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {TH_JOURNAL_CHILDREN};
    TH_INIT(argc, argv, children);
    if (argc > 1 && strcmp(argv[1], "--soak") == 0)
        kill_target = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000;
    else
        kill_target = th_kill_count("torture", 1000, 100);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_kills_lose_nothing),
        cmocka_unit_test(test_random_kills_single_slot_pop),
    };
    return cmocka_run_group_tests_name("torture", tests, NULL, NULL);
}
