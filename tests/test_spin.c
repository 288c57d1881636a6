/*
 * test_spin.c - rq_set_spin_us: a wait that polls before it sleeps.  A
 * message or a free slot that comes during the spin is taken with no
 * sleep and no wake-up call on either side (the statistics' wait and wake
 * counters show it); the spin never outlasts the call's deadline nor an
 * rq_interrupt; a spin that ends empty-handed sleeps as before; a zero
 * timeout never spins.  Slot and record queues, SPSC and MPSC.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "helpers.h"
#include "rq.h"

/* Long enough that a spinning call is still spinning when the peer acts
 * DELAY_MS later, however slow the machine (sanitizers, Wine, load). */
#define LONG_SPIN_US RQ_SPIN_US_MAX
#define DELAY_MS 50

/* The promptness bound of test_interrupt: an interrupt or a deadline is
 * seen within this much (looser under Wine, whose waits go through
 * wineserver). */
#ifdef _WIN32
#define PROMPT_MS 500
#else
#define PROMPT_MS 100
#endif

static rq_stats stats_of(rq *q)
{
    rq_stats st;
    assert_int_equal(rq_stat(q, &st), RQ_OK);
    return st;
}

/* ---- a peer thread that acts once, DELAY_MS after it starts ---------- */

struct peer {
    rq *q;
    int producer; /* 1: pushes one message; 0: pops one */
    int rc;
    pthread_t th;
};

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    th_sleep_us(DELAY_MS * 1000ul);
    if (p->producer) {
        p->rc = rq_push(p->q, "spun", 4, 1000);
    } else {
        char buf[64];
        size_t len;
        p->rc = rq_pop(p->q, buf, sizeof buf, &len, 1000);
    }
    return NULL;
}

static void peer_start(struct peer *p, rq *q, int producer)
{
    *p = (struct peer){.q = q, .producer = producer, .rc = -1};
    assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_join(struct peer *p)
{
    assert_int_equal(pthread_join(p->th, NULL), 0);
    assert_int_equal(p->rc, RQ_OK);
}

/* ---- the consumer's wait and the producer's ------------------------- */

/* A waiting call's sleeps (WAITS, from its side's counter) and the wake
 * calls its peer made for it (WAKES), over the call: none of either after
 * a long spin (SPUN); without one, the call slept and was woken (the
 * control, so that the counters are shown able to tell). */
static void expect_sleeps(uint64_t waits, uint64_t wakes, int spun)
{
    if (spun) {
        assert_int_equal(waits, 0);
        assert_int_equal(wakes, 0);
    } else {
        assert_true(waits >= 1);
        assert_true(wakes >= 1);
    }
}

/* The consumer of a queue of KIND waits for a message pushed DELAY_MS
 * later. */
static void consumer_case(uint32_t kind, uint32_t spin_us)
{
    struct th_pair q = th_pair_open("spin.cons", kind & RQ_RECORDS ? 4096 : 8, 64, kind);
    assert_int_equal(rq_set_spin_us(q.c, spin_us), RQ_OK);
    rq_stats st0 = stats_of(q.c);
    struct peer peer;
    peer_start(&peer, q.p, 1);
    char buf[64];
    size_t len = 0;
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 10000), RQ_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "spun", 4);
    peer_join(&peer);
    rq_stats st = stats_of(q.c);
    expect_sleeps(st.consumer_waits - st0.consumer_waits, st.producer_wakes - st0.producer_wakes,
                  spin_us != 0);
    th_pair_close(&q);
}

/* The producer of a full queue of KIND waits for room, which the consumer
 * makes DELAY_MS later. */
static void producer_case(uint32_t kind, uint32_t spin_us)
{
    struct th_pair q = th_pair_open("spin.prod", kind & RQ_RECORDS ? 128 : 1, 48, kind);
    char msg[48] = "full";
    while (rq_push(q.p, msg, sizeof msg, 0) == RQ_OK)
        ;
    assert_int_equal(rq_set_spin_us(q.p, spin_us), RQ_OK);
    rq_stats st0 = stats_of(q.p);
    struct peer peer;
    peer_start(&peer, q.c, 0);
    assert_int_equal(rq_push(q.p, msg, sizeof msg, 10000), RQ_OK);
    peer_join(&peer);
    rq_stats st = stats_of(q.p);
    expect_sleeps(st.producer_waits - st0.producer_waits, st.consumer_wakes - st0.consumer_wakes,
                  spin_us != 0);
    th_pair_close(&q);
}

static const uint32_t kinds[] = {0, RQ_MPSC, RQ_RECORDS, RQ_RECORDS | RQ_MPSC};

static void test_a_spinning_consumer_takes_the_message_without_a_sleep(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        consumer_case(kinds[k], 0);
        consumer_case(kinds[k], LONG_SPIN_US);
    }
}

static void test_a_spinning_producer_takes_the_room_without_a_sleep(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        producer_case(kinds[k], 0);
        producer_case(kinds[k], LONG_SPIN_US);
    }
}

/* ---- the spin's bounds ------------------------------------------------ */

/* A deadline shorter than the spin ends the call on time. */
static void test_the_deadline_ends_the_spin(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("spin.deadline", 4, 16, 0);
    assert_int_equal(rq_set_spin_us(q.c, LONG_SPIN_US), RQ_OK);
    char buf[16];
    size_t len;
    uint64_t t0 = th_now_ms();
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 30), RQ_ETIMEDOUT);
    uint64_t took = th_now_ms() - t0;
    assert_true(took >= 25);
    if (took >= 30 + PROMPT_MS)
        fail_msg("a 30 ms pop with a 1 s spin took %llu ms", (unsigned long long)took);
    assert_int_equal(stats_of(q.c).consumer_waits, 0);
    th_pair_close(&q);
}

/* Every call given a zero timeout on an empty (consumer) or full
 * (producer) queue of KIND: RQ_EAGAIN at once, though the handles spin
 * for a second before a sleep. */
static void zero_timeouts_case(uint32_t kind)
{
    struct th_pair q = th_pair_open("spin.zero", kind & RQ_RECORDS ? 128 : 1, 16, kind);
    rq *p = q.p, *c = q.c;
    assert_int_equal(rq_set_spin_us(p, LONG_SPIN_US), RQ_OK);
    assert_int_equal(rq_set_spin_us(c, LONG_SPIN_US), RQ_OK);
    char buf[16] = "zero";
    size_t len, lens[2] = {16, 16};
    const void *msg;
    rq_msg_view views[2];
    uint64_t t0 = th_now_ms();
    for (int call = 0; call < 8; call++) {
        int rc = RQ_OK;
        const void *msgs[2] = {buf, buf};
        void *slots[2];
        switch (call) {
        case 0:
            rc = rq_pop(c, buf, sizeof buf, &len, 0);
            break;
        case 1:
            rc = rq_peek(c, &msg, &len, 0);
            break;
        case 2:
            rc = rq_pop_burst(c, buf, sizeof buf, lens, 1, 0);
            break;
        case 3:
            rc = rq_peek_burst(c, views, 2, 0);
            break;
        case 4:
            while (rq_push(p, buf, sizeof buf, 0) == RQ_OK)
                ; /* full, for the producer's calls */
            rc = rq_push(p, buf, sizeof buf, 0);
            break;
        case 5:
            rc = rq_reserve_len(p, sizeof buf, slots, 0);
            break;
        case 6:
            rc = rq_push_burst(p, msgs, lens, 2, 0);
            break;
        case 7:
            rc = rq_reserve_burst_len(p, lens, 2, slots, 0);
            break;
        }
        assert_int_equal(rc, RQ_EAGAIN);
        if (th_now_ms() - t0 >= PROMPT_MS)
            fail_msg("kind %#x: call %d with timeout 0 returned after %llu ms", kind, call,
                     (unsigned long long)(th_now_ms() - t0));
    }
    assert_int_equal(stats_of(c).consumer_waits + stats_of(p).producer_waits, 0);
    th_pair_close(&q);
}

/* A zero timeout never waits, so never spins. */
static void test_a_zero_timeout_never_spins(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        zero_timeouts_case(kinds[k]);
}

struct interrupter {
    rq *q;
    uint64_t at_ms;
};

static void *interrupter_main(void *arg)
{
    struct interrupter *in = arg;
    th_sleep_us(DELAY_MS * 1000ul);
    __atomic_store_n(&in->at_ms, th_now_ms(), __ATOMIC_SEQ_CST);
    rq_interrupt(in->q);
    return NULL;
}

/* rq_interrupt ends a spin, not only a sleep: the call returns RQ_EINTR
 * promptly, not when the spin runs out. */
static void test_an_interrupt_ends_the_spin(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("spin.intr", 4, 16, 0);
    assert_int_equal(rq_set_spin_us(q.c, LONG_SPIN_US), RQ_OK);
    struct interrupter in = {q.c, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, interrupter_main, &in), 0);
    char buf[16];
    size_t len;
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 10000), RQ_EINTR);
    uint64_t late = th_now_ms() - __atomic_load_n(&in.at_ms, __ATOMIC_SEQ_CST);
    assert_int_equal(pthread_join(th, NULL), 0);
    if (late >= PROMPT_MS)
        fail_msg("rq_pop returned %llu ms after the interrupt", (unsigned long long)late);
    th_pair_close(&q);
}

/* A spin that finds nothing is followed by the usual sleep, which the
 * producer's push ends with a wake-up. */
static void test_after_a_short_spin_the_wait_sleeps(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("spin.short", 4, 16, 0);
    assert_int_equal(rq_set_spin_us(q.c, 100), RQ_OK);
    struct peer peer;
    peer_start(&peer, q.p, 1);
    char buf[16];
    size_t len;
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 10000), RQ_OK);
    peer_join(&peer);
    rq_stats st = stats_of(q.c);
    assert_true(st.consumer_waits >= 1);
    assert_true(st.producer_wakes >= 1);
    th_pair_close(&q);
}

/* The CPU time this thread has used, in ms. */
static uint64_t thread_cpu_ms(void)
{
    struct timespec ts;
    assert_int_equal(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A call spins once, before its first sleep, not again after each nap or
 * re-check slice that ends without a signal: on a quiet queue a 3.5 s wait
 * with a 200 ms spin costs one spin of CPU.  Spinning before every sleep
 * would cost one more after the consumer's first nap and after each 1 s
 * slice (about 1,000 ms here), and a producer's wait for a burst's room,
 * which re-checks every millisecond, would keep the CPU busy throughout.
 * The spin ends by the clock, so a thread that lost its CPU meanwhile
 * spends less: the lower bound only shows that the CPU clock counts. */
#define ONE_SPIN_US 200000u
#define ONE_SPIN_CPU_MIN_MS 20u
#define ONE_SPIN_CPU_MAX_MS 500u

static void test_a_call_spins_once(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("spin.once", 2, 16, 0);
    assert_int_equal(rq_set_spin_us(q.c, ONE_SPIN_US), RQ_OK);
    assert_int_equal(rq_set_spin_us(q.p, ONE_SPIN_US), RQ_OK);
    char buf[16] = "once";
    size_t len;
    uint64_t cpu0 = thread_cpu_ms();
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 3500), RQ_ETIMEDOUT);
    uint64_t cpu = thread_cpu_ms() - cpu0;
    if (cpu < ONE_SPIN_CPU_MIN_MS || cpu > ONE_SPIN_CPU_MAX_MS)
        fail_msg("a 3.5 s pop with a 200 ms spin used %llu ms of CPU", (unsigned long long)cpu);

    /* A burst's room, re-checked every millisecond (rq_reserve_burst_len
     * on a full ring). */
    while (rq_push(q.p, buf, sizeof buf, 0) == RQ_OK)
        ;
    size_t lens[2] = {16, 16};
    void *bufs[2];
    cpu0 = thread_cpu_ms();
    assert_int_equal(rq_reserve_burst_len(q.p, lens, 2, bufs, 1000), RQ_ETIMEDOUT);
    cpu = thread_cpu_ms() - cpu0;
    if (cpu > ONE_SPIN_CPU_MAX_MS)
        fail_msg("a 1 s burst reservation with a 200 ms spin used %llu ms of CPU",
                 (unsigned long long)cpu);
    th_pair_close(&q);
}

/* ---- arguments -------------------------------------------------------- */

static void test_arguments(void **state)
{
    (void)state;
    assert_int_equal(rq_set_spin_us(NULL, 10), RQ_EINVAL);
    struct th_pair q = th_pair_open("spin.args", 4, 16, 0);
    assert_int_equal(rq_set_spin_us(q.c, RQ_SPIN_US_MAX + 1), RQ_EINVAL);
    assert_int_equal(rq_set_spin_us(q.c, UINT32_MAX), RQ_EINVAL);
    assert_int_equal(rq_set_spin_us(q.c, RQ_SPIN_US_MAX), RQ_OK);
    assert_int_equal(rq_set_spin_us(q.p, 0), RQ_OK);
    /* A refused value leaves the last one: the spin is still 1 s, which
     * a 20 ms pop shows by taking its whole timeout without a sleep. */
    assert_int_equal(rq_set_spin_us(q.c, RQ_SPIN_US_MAX + 1), RQ_EINVAL);
    char buf[16];
    size_t len;
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 20), RQ_ETIMEDOUT);
    assert_int_equal(stats_of(q.c).consumer_waits, 0);
    /* Back to 0: the next wait sleeps at once. */
    assert_int_equal(rq_set_spin_us(q.c, 0), RQ_OK);
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 20), RQ_ETIMEDOUT);
    assert_true(stats_of(q.c).consumer_waits >= 1);
    th_pair_close(&q);
}

int main(int argc, char **argv)
{
    th_init(argc, argv, NULL, 0); /* no child processes */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_a_spinning_consumer_takes_the_message_without_a_sleep),
        cmocka_unit_test(test_a_spinning_producer_takes_the_room_without_a_sleep),
        cmocka_unit_test(test_the_deadline_ends_the_spin),
        cmocka_unit_test(test_a_zero_timeout_never_spins),
        cmocka_unit_test(test_an_interrupt_ends_the_spin),
        cmocka_unit_test(test_after_a_short_spin_the_wait_sleeps),
        cmocka_unit_test(test_a_call_spins_once),
    };
    return cmocka_run_group_tests_name("spin", tests, NULL, NULL);
}
