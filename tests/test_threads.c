/*
 * test_threads.c - producer and consumer threads in one process, each with
 * its own handle on the same queue: the suite that ThreadSanitizer runs
 * (`ctest --preset tsan -L threads`).  Every payload byte is written by
 * one thread and read by another, so a missing release/acquire pair on the
 * offsets is a data race that TSan reports; the checks here (order, no gap,
 * no torn message) catch what the race would do in a normal build.
 */
#include <pthread.h>
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

/* The count only has to make every full/empty transition happen many
 * times; sanitized builds run several times slower, and under Wine every
 * sleep and wake is a round trip through wineserver. */
#ifdef _WIN32
#define MESSAGES_PER_PRODUCER 3000u
#define REQUESTS_PER_THREAD 3000u
#else
#define MESSAGES_PER_PRODUCER 20000u
#define REQUESTS_PER_THREAD 20000u
#endif
#define SLOT_SIZE 64u
/* Lengths on both sides of the inline copy's limit (src/copy.h). */
#define LONG_SLOT_SIZE 200u
#define MAX_PRODUCERS 3

struct stream_test {
    const char *name;
    uint32_t slots, flags;
    unsigned producers;
    int zero_copy; /* reserve/commit + peek/release instead of push/pop */
    int rc[MAX_PRODUCERS];
    uint32_t slot_size; /* 0: SLOT_SIZE */
};

static uint32_t slot_size_of(const struct stream_test *t)
{
    return t->slot_size ? t->slot_size : SLOT_SIZE;
}

struct producer_arg {
    struct stream_test *t;
    unsigned stream;
};

static int produce_one(rq *q, int zero_copy, uint32_t size, uint64_t seq, unsigned stream)
{
    if (!zero_copy) {
        unsigned char msg[LONG_SLOT_SIZE];
        size_t len = th_msg_make(msg, size, seq, stream);
        return th_push_live(q, msg, len);
    }
    void *slot;
    int rc = th_reserve_live(q, &slot);
    if (rc != RQ_OK)
        return rc;
    return rq_commit(q, th_msg_make(slot, size, seq, stream));
}

static void *producer_thread(void *arg)
{
    struct producer_arg *a = arg;
    struct stream_test *t = a->t;
    rq *q = th_open(t->name, RQ_PRODUCER, t->slots, slot_size_of(t), t->flags);
    int rc = RQ_OK;
    for (uint64_t seq = 0; seq < MESSAGES_PER_PRODUCER && rc == RQ_OK; seq++)
        rc = produce_one(q, t->zero_copy, slot_size_of(t), seq, a->stream);
    t->rc[a->stream] = rc;
    rq_close(q);
    return NULL;
}

/* Takes one message and checks it against the next expected seq of its
 * stream; fails the test on a torn, reordered or missing message. */
static void consume_one(rq *q, int zero_copy, uint64_t *next, unsigned producers)
{
    unsigned char copy[LONG_SLOT_SIZE];
    const void *msg = copy;
    size_t len;
    if (zero_copy)
        assert_int_equal(th_peek_live(q, &msg, &len), RQ_OK);
    else
        assert_int_equal(th_pop_live(q, copy, sizeof copy, &len), RQ_OK);
    uint64_t seq;
    uint32_t stream;
    if (th_msg_check(msg, len, &seq, &stream) != 0)
        fail_msg("torn message of %zu bytes", len);
    assert_true(stream < producers);
    if (seq != next[stream])
        fail_msg("stream %u: got seq %llu, expected %llu", stream, (unsigned long long)seq,
                 (unsigned long long)next[stream]);
    next[stream]++;
    if (zero_copy)
        assert_int_equal(rq_release(q), RQ_OK);
}

static void run_streams(struct stream_test *t)
{
    rq *c = th_open(t->name, RQ_CONSUMER, t->slots, slot_size_of(t), t->flags);
    pthread_t th[MAX_PRODUCERS];
    struct producer_arg args[MAX_PRODUCERS];
    for (unsigned i = 0; i < t->producers; i++) {
        args[i] = (struct producer_arg){t, i};
        t->rc[i] = -1;
        assert_int_equal(pthread_create(&th[i], NULL, producer_thread, &args[i]), 0);
    }
    uint64_t next[MAX_PRODUCERS] = {0};
    uint64_t total = (uint64_t)t->producers * MESSAGES_PER_PRODUCER;
    for (uint64_t i = 0; i < total; i++)
        consume_one(c, t->zero_copy, next, t->producers);
    for (unsigned i = 0; i < t->producers; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(t->rc[i], RQ_OK);
        assert_int_equal(next[i], MESSAGES_PER_PRODUCER);
    }
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.popped, total);
    /* A wake-up lost to a race would be found by the 1 s re-check (and
     * the *_live calls above would already have stopped the test). */
    assert_int_equal(st.producer_missed_wakes + st.consumer_missed_wakes, 0);
    print_message("%s: %llu messages, %llu producer waits, %llu consumer waits\n", t->name,
                  (unsigned long long)total, (unsigned long long)st.producer_waits,
                  (unsigned long long)st.consumer_waits);
    rq_close(c);
    rq_unlink(t->name);
}

/* A ring of 3 slots (not a power of two) keeps both sides crossing the
 * full and empty edges, so they sleep and wake each other all the time. */
static void test_spsc_copy_threads(void **state)
{
    (void)state;
    struct stream_test t = {th_name("thr-spsc"), 3, 0, 1, 0, {0}, 0};
    run_streams(&t);
}

/* Lengths from 16 to 200 bytes: copies with and without a call. */
static void test_spsc_long_copy_threads(void **state)
{
    (void)state;
    struct stream_test t = {th_name("thr-long"), 3, 0, 1, 0, {0}, LONG_SLOT_SIZE};
    run_streams(&t);
}

static void test_spsc_zero_copy_threads(void **state)
{
    (void)state;
    struct stream_test t = {th_name("thr-zc"), 3, 0, 1, 1, {0}, 0};
    run_streams(&t);
}

static void test_spsc_full_fences_threads(void **state)
{
    (void)state;
    struct stream_test t = {th_name("thr-ff"), 2, RQ_FULL_FENCES, 1, 0, {0}, 0};
    run_streams(&t);
}

static void test_mpsc_threads(void **state)
{
    (void)state;
    struct stream_test t = {th_name("thr-mpsc"), 4, RQ_MPSC, MAX_PRODUCERS, 0, {0}, 0};
    run_streams(&t);
}

static void test_mpsc_zero_copy_threads(void **state)
{
    (void)state;
    struct stream_test t = {th_name("thr-mpsczc"), 4, RQ_MPSC, MAX_PRODUCERS, 1, {0}, 0};
    run_streams(&t);
}

/* Coalescing: requester threads against a worker thread.  Each requester
 * records how many requests it has made before each one; the worker, after
 * each rq_coalesce_wait, reads a snapshot and checks after done that every
 * request made before the wait returned is covered by a finished round. */
#define REQUESTERS 2

struct coalesce_test {
    const char *name;
    rq_atomic_u64 made;     /* requests made so far, all requesters */
    rq_atomic_u64 covered;  /* requests covered by a finished round */
    rq_atomic_u32 finished; /* requesters done */
    int rc[REQUESTERS];
};

struct requester_arg {
    struct coalesce_test *t;
    unsigned id;
};

static void *requester_thread(void *arg)
{
    struct requester_arg *a = arg;
    rq_coalesce *c;
    int rc = rq_coalesce_open(&c, a->t->name, RQ_PRODUCER, 0);
    for (unsigned i = 0; i < REQUESTS_PER_THREAD && rc == RQ_OK; i++) {
        rq_fetch_add_u64(&a->t->made, 1);
        rc = rq_coalesce_request(c);
    }
    if (rc == RQ_OK)
        rq_coalesce_close(c);
    a->t->rc[a->id] = rc;
    rq_fetch_add_u32(&a->t->finished, 1);
    return NULL;
}

static void test_coalesce_threads(void **state)
{
    (void)state;
    struct coalesce_test t = {.name = th_name("thr-coal")};
    rq_coalesce *w;
    assert_int_equal(rq_coalesce_open(&w, t.name, RQ_CONSUMER, 0), RQ_OK);
    pthread_t th[REQUESTERS];
    struct requester_arg args[REQUESTERS];
    for (unsigned i = 0; i < REQUESTERS; i++) {
        args[i] = (struct requester_arg){&t, i};
        assert_int_equal(pthread_create(&th[i], NULL, requester_thread, &args[i]), 0);
    }
    uint64_t rounds = 0;
    for (;;) {
        uint32_t finished_before = rq_load_acquire_u32(&t.finished);
        uint64_t ticket;
        int rc = rq_coalesce_wait(w, &ticket, 100);
        if (rc == RQ_ETIMEDOUT) {
            if (finished_before == REQUESTERS)
                break; /* every request made, and none owed */
            continue;
        }
        assert_int_equal(rc, RQ_OK);
        /* Every request counted in MADE before this point was made before
         * the wait returned, so this round covers it. */
        uint64_t made = rq_load_acquire_u64(&t.made);
        assert_int_equal(rq_coalesce_done(w, ticket), RQ_OK);
        rq_store_release_u64(&t.covered, made);
        rounds++;
    }
    for (unsigned i = 0; i < REQUESTERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(t.rc[i], RQ_OK);
    }
    uint64_t total = (uint64_t)REQUESTERS * REQUESTS_PER_THREAD;
    assert_int_equal(rq_load_acquire_u64(&t.made), total);
    assert_int_equal(rq_load_acquire_u64(&t.covered), total);
    rq_coalesce_stats st;
    assert_int_equal(rq_coalesce_stat(w, &st), RQ_OK);
    assert_int_equal(st.rounds, rounds);
    assert_true(rounds >= 1 && rounds <= total);
    assert_int_equal(st.missed_wakes, 0);
    print_message("coalescing: %llu requests from %d threads, %llu rounds, %llu wake signals\n",
                  (unsigned long long)total, REQUESTERS, (unsigned long long)rounds,
                  (unsigned long long)st.wakes);
    rq_coalesce_close(w);
    rq_coalesce_unlink(t.name);
}

/* An observer reading rq_stat from a third thread while the two sides run:
 * stat reads the offsets and counters without a lock. */
struct observer_arg {
    const char *name;
    rq_atomic_u32 stop;
    unsigned long calls;
    int rc;
};

static void *observer_thread(void *arg)
{
    struct observer_arg *o = arg;
    rq *q = th_open(o->name, RQ_OBSERVER, 3, SLOT_SIZE, 0);
    o->rc = RQ_OK;
    while (!rq_load_acquire_u32(&o->stop) && o->rc == RQ_OK) {
        rq_stats st;
        o->rc = rq_stat(q, &st);
        if (o->rc == RQ_OK && st.depth > 3)
            o->rc = RQ_ECORRUPT;
        o->calls++;
    }
    rq_close(q);
    return NULL;
}

static void test_stat_from_a_third_thread(void **state)
{
    (void)state;
    struct stream_test t = {th_name("thr-stat"), 3, 0, 1, 0, {0}, 0};
    struct observer_arg o = {.name = t.name};
    rq *keep = th_create(t.name, 3, SLOT_SIZE, 0); /* NULL on Linux */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, observer_thread, &o), 0);
    run_streams(&t);
    rq_store_release_u32(&o.stop, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(o.rc, RQ_OK);
    assert_true(o.calls > 0);
    if (keep)
        rq_close(keep);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {TH_JOURNAL_CHILDREN};
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spsc_copy_threads),
        cmocka_unit_test(test_spsc_long_copy_threads),
        cmocka_unit_test(test_spsc_zero_copy_threads),
        cmocka_unit_test(test_spsc_full_fences_threads),
        cmocka_unit_test(test_mpsc_threads),
        cmocka_unit_test(test_mpsc_zero_copy_threads),
        cmocka_unit_test(test_coalesce_threads),
        cmocka_unit_test(test_stat_from_a_third_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
