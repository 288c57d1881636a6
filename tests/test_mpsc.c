/*
 * test_mpsc.c - src/mpsc.c and the RQ_MPSC queue: many producers behind a
 * lock whose dead owner is a normal release (attacks on the lock, kills at
 * each of its steps: test_mpsc_lock.c).
 *
 * `test_mpsc --soak [KILLS]` runs the kill torture longer; RQ_TEST_KILLS
 * sets the default run's number (1000 on Linux, 100 on Windows).
 */
#ifndef _WIN32
#define _GNU_SOURCE
#endif
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
#include "platform.h"
#include "rq.h"

static unsigned long kill_target;

/* The queue the children open, in memory they share with the parent. */
static void test_many_producers_may_open(void **state)
{
    (void)state;
    const char *name = th_name("mpsc.open");
    rq *p[4];
    for (int i = 0; i < 4; i++)
        p[i] = th_open(name, RQ_PRODUCER, 8, 32, RQ_MPSC);
    rq *c = th_open(name, RQ_CONSUMER, 8, 32, RQ_MPSC);
    rq *c2 = NULL;
    assert_int_equal(rq_open(&c2, name, RQ_CONSUMER, NULL), RQ_EBUSY); /* still one consumer */
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.flags & ~(uint32_t)RQ_FULL_FENCES, RQ_MPSC); /* Windows adds full fences */
    assert_int_equal(st.producer_live, 1);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 4; i++) {
            char m = (char)('a' + i + 4 * round);
            assert_int_equal(rq_push(p[i], &m, 1, 0), RQ_OK);
        }
    for (int k = 0; k < 8; k++) {
        char m;
        size_t len;
        assert_int_equal(rq_pop(c, &m, 1, &len, 0), RQ_OK);
        assert_int_equal(m, 'a' + k); /* one FIFO across producers */
    }
    for (int i = 0; i < 4; i++)
        rq_close(p[i]);
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.producer_live, 0);
    assert_int_equal(st.pushed, 8);
    rq_close(c);
    rq_unlink(name);
}

static int child_reserve_and_die(const char *arg)
{
    (void)arg;
    rq *p;
    if (rq_open(&p, th_child_queue(), RQ_PRODUCER, NULL) != RQ_OK)
        return 1;
    void *slot;
    if (rq_reserve(p, &slot, 0) != RQ_OK)
        return 2;
    memcpy(slot, "half-written", 12); /* killed holding the lock, unpublished */
    rq_plat_kill_self();
    return 3;
}

static void test_producer_killed_holding_the_lock(void **state)
{
    (void)state;
    const char *name = th_set_child_queue(th_name("mpsc.dead"));
    rq *p = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    for (int round = 1; round <= 3; round++) {
        th_pid pid = th_spawn("child_reserve_and_die", "", 10);
        int status;
        assert_int_equal(th_wait(pid, 5000, &status), 0);
        assert_true(th_was_killed(status));
        th_expect_lock_holder(c, TH_ANOTHER_PROCESS, 1);      /* the dead child's */
        assert_int_equal(rq_push(p, "next", 4, 1000), RQ_OK); /* lock recovered */
        th_expect_lock_holder(c, 0, 0);
        rq_stats st;
        assert_int_equal(rq_stat(c, &st), RQ_OK);
        assert_int_equal(st.lock_recoveries, (uint64_t)round);
        assert_int_equal(st.depth, 1); /* the half-written slot never shows */
        char buf[32];
        size_t len;
        assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
        assert_int_equal(len, 4);
        assert_memory_equal(buf, "next", 4);
    }
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

static int child_push_one(const char *arg)
{
    rq *p;
    if (rq_open(&p, th_child_queue(), RQ_PRODUCER, NULL) != RQ_OK)
        return 1;
    int rc = th_push_live(p, arg, strlen(arg));
    rq_close(p);
    return rc == RQ_OK ? 0 : 2;
}

static void test_reservation_holds_the_lock_until_commit(void **state)
{
    (void)state;
    const char *name = th_set_child_queue(th_name("mpsc.resv"));
    rq *p = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    rq *p2 = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    void *slot;
    assert_int_equal(rq_reserve(p, &slot, 0), RQ_OK);
    th_expect_lock_holder(c, th_getpid(), 1);
    /* another producer of this thread would wait for itself: told so at
     * once, whatever the timeout (before: RQ_EAGAIN, RQ_ETIMEDOUT, and a
     * wait for ever on Linux with RQ_INFINITE) */
    assert_int_equal(rq_push(p2, "x", 1, 0), RQ_EDEADLK);
    assert_int_equal(rq_push(p2, "x", 1, 30), RQ_EDEADLK);
    assert_int_equal(rq_push(p2, "x", 1, RQ_INFINITE), RQ_EDEADLK);
    void *slot2;
    assert_int_equal(rq_reserve(p2, &slot2, RQ_INFINITE), RQ_EDEADLK);
    th_pid pid = th_spawn("child_push_one", "second", 10);
    th_sleep_us(100 * 1000);
    int status;
    assert_int_equal(th_poll(pid, &status), 0); /* blocked on the lock */
    memcpy(slot, "first", 5);
    assert_int_equal(rq_commit(p, 5), RQ_OK);
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_exited_ok(status));
    char buf[32];
    size_t len;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_memory_equal(buf, "first", 5);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_memory_equal(buf, "second", 6);
    /* closing with a reservation releases the lock */
    assert_int_equal(rq_reserve(p, &slot, 0), RQ_OK);
    rq_close(p);
    th_expect_lock_holder(c, 0, 0);
    assert_int_equal(rq_push(p2, "y", 1, 0), RQ_OK);
    rq_close(p2);
    rq_close(c);
    rq_unlink(name);
}

/* ---- a reservation belongs to the thread that made it ----------------- */

struct resv_thread {
    rq *p;
    int reserve_rc, commit_rc;
    int commit_too; /* commit before the thread ends */
};

static void *reserve_on_thread(void *arg)
{
    struct resv_thread *t = arg;
    void *slot;
    t->reserve_rc = rq_reserve(t->p, &slot, 0);
    if (t->reserve_rc == RQ_OK) {
        memcpy(slot, "from-a", 6);
        if (t->commit_too)
            t->commit_rc = rq_commit(t->p, 6);
    }
    return NULL;
}

static void test_reservation_belongs_to_its_thread(void **state)
{
    (void)state;
    const char *name = th_name("mpsc.thread");
    rq *p1 = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    rq *p2 = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    char buf[32];
    size_t len;

    /* Thread A reserves and ends without committing.  Nobody else may
     * commit A's reservation (on Windows the lock died with A and another
     * producer may already be writing that slot).  Windows: the lock dies
     * with the thread and the next producer recovers it.  Linux: the lock
     * belongs to the handle, so it stays held until the handle closes;
     * then its producer slot is free and the next locker recovers it. */
    struct resv_thread a = {p1, -1, -1, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reserve_on_thread, &a), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(a.reserve_rc, RQ_OK);
#ifndef _WIN32
    th_expect_lock_holder(c, th_getpid(), 1); /* p1 holds it, for A's reservation */
    assert_int_equal(rq_push(p2, "never", 5, 50), RQ_ELOCKED);
#else
    assert_int_equal(rq_push(p2, "from-p2", 7, 1000), RQ_OK); /* recovers the lock */
#endif
    assert_int_equal(rq_commit(p1, 6), RQ_ESTATE);
    void *slot;
    assert_int_equal(rq_reserve(p1, &slot, 0), RQ_ESTATE);
    assert_int_equal(rq_push(p1, "x", 1, 0), RQ_ESTATE); /* still held by A */
#ifndef _WIN32
    rq_close(p1); /* not released here (another thread's); the slot goes */
    assert_int_equal(rq_push(p2, "from-p2", 7, 1000), RQ_OK); /* recovers the lock */
#endif
    assert_int_equal(rq_push(p2, "third", 5, 1000), RQ_OK);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_int_equal(len, 7);
    assert_memory_equal(buf, "from-p2", 7);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_memory_equal(buf, "third", 5);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_EAGAIN);
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.lock_recoveries, 1);
#ifdef _WIN32
    rq_close(p1); /* a reservation of a thread that ended: nothing to unlock */
#endif
    assert_int_equal(rq_push(p2, "after", 5, 1000), RQ_OK);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_memory_equal(buf, "after", 5);

    /* Reserve and commit on one thread other than the opener's: fine. */
    p1 = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    struct resv_thread b = {p1, -1, -1, 1};
    assert_int_equal(pthread_create(&th, NULL, reserve_on_thread, &b), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(b.reserve_rc, RQ_OK);
    assert_int_equal(b.commit_rc, RQ_OK);
    assert_int_equal(rq_push(p2, "x", 1, 0), RQ_OK); /* the lock was given back */
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_memory_equal(buf, "from-a", 6);
    rq_close(p1);
    rq_close(p2);
    rq_close(c);
    rq_unlink(name);
}

#define BLOCKED_PRODUCERS 4
#define EACH 6

/* Two producers asleep on a full ring of two slots, each with one message
 * to send; the consumer frees both slots at once.  Only the first free
 * finds the ring full and signals, so it must wake both: a producer left
 * asleep would wait for its 1 s re-check.  The frees come right after
 * both producers began their long sleeps, so that re-check is a second
 * away and a slow message is told from a woken one.  (A producer woken by
 * the first free may refill before the second, which then signals again:
 * hence several rounds.) */
#define WAKE_ALL_ROUNDS 5

static void one_signal_wakes_every_waiting_producer(void)
{
    const char *name = th_set_child_queue(th_name("mpsc.all"));
    rq *c = th_open(name, RQ_CONSUMER, 2, 64, RQ_MPSC);
    rq *p = th_open(name, RQ_PRODUCER, 2, 64, RQ_MPSC);
    assert_int_equal(rq_push(p, "f1", 2, 0), RQ_OK);
    assert_int_equal(rq_push(p, "f2", 2, 0), RQ_OK); /* full */
    rq_close(p);
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    uint64_t waits_before = st.producer_waits;
    th_pid a = th_spawn("child_push_one", "a", 20);
    th_pid b = th_spawn("child_push_one", "b", 20);
    /* Each sleeper's first wait is the unfenced nap, its second the long
     * sleep: four waits in all means both are in their long sleeps. */
    uint64_t until = th_now_ms() + 10000;
    do {
        th_sleep_us(1000);
        assert_int_equal(rq_stat(c, &st), RQ_OK);
    } while (st.producer_waits - waits_before < 4 && th_now_ms() < until);
    assert_true(st.producer_waits - waits_before >= 4);
    char buf[64];
    size_t len;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK); /* from full: signals */
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK); /* not full: does not */
    uint64_t t0 = th_now_ms();
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 3000), RQ_OK);
        assert_true(len == 1 && (buf[0] == 'a' || buf[0] == 'b'));
    }
    uint64_t took = th_now_ms() - t0;
    if (took >= 500)
        fail_msg("the second producer's message came after %llu ms: one signal woke only one "
                 "of the two waiting producers, the other waited for its re-check",
                 (unsigned long long)took);
    int status;
    assert_int_equal(th_wait(a, 5000, &status), 0);
    assert_true(th_exited_ok(status));
    assert_int_equal(th_wait(b, 5000, &status), 0);
    assert_true(th_exited_ok(status));
    rq_close(c);
    rq_unlink(name);
}

static void test_one_signal_wakes_every_waiting_producer(void **state)
{
    (void)state;
    for (int round = 0; round < WAKE_ALL_ROUNDS; round++)
        one_signal_wakes_every_waiting_producer();
}

static int child_push_stream(const char *arg)
{
    uint32_t stream = (uint32_t)strtoul(arg, NULL, 10);
    rq *p;
    if (rq_open(&p, th_child_queue(), RQ_PRODUCER, NULL) != RQ_OK)
        return 1;
    unsigned char buf[64];
    for (uint64_t seq = 0; seq < EACH; seq++)
        if (th_push_live(p, buf, th_msg_make(buf, 64, seq, stream)) != RQ_OK)
            return 2;
    rq_close(p);
    return 0;
}

static void test_all_blocked_producers_finish(void **state)
{
    (void)state;
    const char *name = th_set_child_queue(th_name("mpsc.full"));
    rq *c = th_open(name, RQ_CONSUMER, 2, 64, RQ_MPSC);
    rq *p = th_open(name, RQ_PRODUCER, 2, 64, RQ_MPSC);
    assert_int_equal(rq_push(p, "f1", 2, 0), RQ_OK);
    assert_int_equal(rq_push(p, "f2", 2, 0), RQ_OK); /* full */
    rq_close(p);
    th_pid pids[BLOCKED_PRODUCERS];
    for (int i = 0; i < BLOCKED_PRODUCERS; i++)
        pids[i] = th_spawn("child_push_stream", th_stream_arg((unsigned)i), 20);
    rq_stats st;
    uint64_t until = th_now_ms() + 10000;
    do { /* until all of them are asleep on the full queue */
        th_sleep_us(20 * 1000);
        assert_int_equal(rq_stat(c, &st), RQ_OK);
    } while (st.producer_waits < BLOCKED_PRODUCERS && th_now_ms() < until);
    th_sleep_us(100 * 1000); /* and really asleep */
    assert_true(st.producer_waits >= BLOCKED_PRODUCERS);
    /* Drain in bursts of two: the second pop of a burst frees a slot while
     * the producer woken by the first has not refilled yet, so only a wake
     * of *every* waiting producer keeps the others from sleeping on with
     * space free. */
    uint64_t next[BLOCKED_PRODUCERS] = {0};
    unsigned char buf[64];
    size_t len;
    for (int k = 0; k < 2; k++)
        assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 1000), RQ_OK);
    for (int k = 0; k < BLOCKED_PRODUCERS * EACH; k++) {
        if (k % 2 == 0)
            th_sleep_us(20 * 1000);
        uint64_t t0 = th_now_ms();
        int rc = rq_pop(c, buf, sizeof buf, &len, 3000);
        uint64_t took = th_now_ms() - t0;
        if (rc != RQ_OK)
            fail_msg("message %d of %d: %s (a producer slept with space free?)", k,
                     BLOCKED_PRODUCERS * EACH, rq_errname(rc));
        /* A woken producer refills at once; a pop that waited for the
         * 1 s re-check found the others asleep beside free space. */
        if (took >= TH_WAKE_SUSPECT_MS)
            fail_msg("message %d of %d took %llu ms: a producer slept with space free until "
                     "its re-check (not every waiting producer was woken)",
                     k, BLOCKED_PRODUCERS * EACH, (unsigned long long)took);
        uint64_t seq;
        uint32_t stream;
        assert_int_equal(th_msg_check(buf, len, &seq, &stream), 0);
        assert_true(stream < BLOCKED_PRODUCERS);
        assert_int_equal(seq, next[stream]++); /* per-producer order */
    }
    for (int i = 0; i < BLOCKED_PRODUCERS; i++) {
        int status;
        assert_int_equal(th_wait(pids[i], 5000, &status), 0);
        assert_true(th_exited_ok(status));
        assert_int_equal(next[i], EACH);
    }
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_true(st.consumer_wakes >= 1);
    rq_close(c);
    rq_unlink(name);
}

/* Producers pushing as fast as they can to a consumer that keeps falling
 * asleep on an empty ring: each of its sleeps is signalled once, by the
 * producer that takes the wake, not by every producer that publishes
 * before the consumer is up again (which made several wake calls per
 * sleep).  Every producer also signals at open, counted twice: the
 * forced poller notification and the futex wake (role_acquire). */
#define WAKE_PRODUCERS 3
/* Each consumer sleep costs a wake-up's latency, a few milliseconds on a
 * loaded machine, and the consumer may sleep for almost every message: so
 * few messages.  Enough, though: with every publishing producer signalling,
 * 6,000 messages made 350-560 sleeps and 5,900-6,000 wake calls (60,000
 * took the test near its watchdog at a load of 14). */
#define WAKE_EACH 2000

static int child_push_many(const char *arg)
{
    uint32_t stream = (uint32_t)strtoul(arg, NULL, 10);
    rq *p;
    if (rq_open(&p, th_child_queue(), RQ_PRODUCER, NULL) != RQ_OK)
        return 1;
    unsigned char buf[64];
    for (uint64_t seq = 0; seq < WAKE_EACH; seq++)
        if (th_push_live(p, buf, th_msg_make(buf, 64, seq, stream)) != RQ_OK)
            return 2;
    rq_close(p);
    return 0;
}

static void test_one_wake_per_consumer_sleep(void **state)
{
    (void)state;
    const char *name = th_set_child_queue(th_name("mpsc.wakes"));
    rq *c = th_open(name, RQ_CONSUMER, 64, 64, RQ_MPSC);
    th_pid pids[WAKE_PRODUCERS];
    for (int i = 0; i < WAKE_PRODUCERS; i++)
        pids[i] = th_spawn("child_push_many", th_stream_arg((unsigned)i), 60);
    unsigned char buf[64];
    size_t len;
    for (long k = 0; k < (long)WAKE_PRODUCERS * WAKE_EACH; k++)
        assert_int_equal(th_pop_live(c, buf, sizeof buf, &len), RQ_OK);
    for (int i = 0; i < WAKE_PRODUCERS; i++) {
        int status;
        assert_int_equal(th_wait(pids[i], 30000, &status), 0);
        assert_true(th_exited_ok(status));
    }
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    print_message("%d producers, %d messages: %llu consumer sleeps, %llu wake calls from "
                  "producers\n",
                  WAKE_PRODUCERS, WAKE_PRODUCERS * WAKE_EACH, (unsigned long long)st.consumer_waits,
                  (unsigned long long)st.producer_wakes);
    assert_true(st.producer_wakes <= st.consumer_waits + 2 * WAKE_PRODUCERS);
    rq_close(c);
    rq_unlink(name);
}

/* A push that finds the ring full leaves the lock as it found it: free
 * for the other producers, and for its own next push once there is room
 * (a lock left held by a live producer would be taken back as a dead
 * one's, and counted as a recovery).  SLOTS, SIZE, FLAGS: the queue's. */
static void check_full_ring_leaves_the_lock(const char *name, uint32_t slots, uint32_t size,
                                            uint32_t flags)
{
    rq *p1 = th_open(name, RQ_PRODUCER, slots, size, flags | RQ_MPSC);
    rq *p2 = th_open(name, RQ_PRODUCER, slots, size, flags | RQ_MPSC);
    rq *c = th_open(name, RQ_CONSUMER, slots, size, flags | RQ_MPSC);
    int n = 0, rc;
    while ((rc = rq_push(p1, "a", 1, 0)) == RQ_OK)
        n++;
    assert_int_equal(rc, RQ_EAGAIN); /* full, not RQ_ELOCKED */
    assert_true(n >= 2);
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.lock_holder_pid, 0);
    assert_int_equal(rq_push(p2, "b", 1, 0), RQ_EAGAIN);
    char m;
    size_t len;
    assert_int_equal(rq_pop(c, &m, 1, &len, 0), RQ_OK);
    assert_int_equal(rq_push(p2, "b", 1, 0), RQ_OK);
    assert_int_equal(rq_push(p1, "c", 1, 0), RQ_EAGAIN);
    assert_int_equal(rq_pop(c, &m, 1, &len, 0), RQ_OK);
    assert_int_equal(rq_push(p1, "c", 1, 0), RQ_OK);
    for (int k = 2; k < n; k++) {
        assert_int_equal(rq_pop(c, &m, 1, &len, 0), RQ_OK);
        assert_int_equal(m, 'a');
    }
    for (int want = 'b'; want <= 'c'; want++) {
        assert_int_equal(rq_pop(c, &m, 1, &len, 0), RQ_OK);
        assert_int_equal(m, want);
    }
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.lock_holder_pid, 0);
    assert_int_equal(st.lock_recoveries, 0); /* nobody died: no lock was left */
    rq_close(p1);
    rq_close(p2);
    rq_close(c);
    rq_unlink(name);
}

static void test_a_push_to_a_full_ring_leaves_the_lock(void **state)
{
    (void)state;
    check_full_ring_leaves_the_lock(th_name("mpsc.full"), 2, 8, 0);
    check_full_ring_leaves_the_lock(th_name("mpsc.full.rec"), RQ_RECORDS_CAPACITY_MIN, 8,
                                    RQ_RECORDS);
}

static void test_spsc_queue_still_refuses_second_producer(void **state)
{
    (void)state;
    const char *name = th_name("mpsc.spsc");
    rq *p = th_open(name, RQ_PRODUCER, 2, 8, 0);
    rq *p2 = NULL;
    assert_int_equal(rq_open(&p2, name, RQ_PRODUCER, NULL), RQ_EBUSY);
    rq_close(p);
    rq_unlink(name);
}

/* ---- kill torture: 3 producers, 1 consumer --------------------------- */

#define STREAMS 3

static th_pid spawn_producer(unsigned s)
{
    return th_spawn("th_producer_main", th_stream_arg(s), 120);
}

static void reap_killed(th_pid pid)
{
    int status;
    th_kill(pid);
    assert_int_equal(th_wait(pid, 10000, &status), 0);
    if (!th_was_killed(status))
        fail_msg("a side ended by itself (status 0x%x) during the kill phase", status);
}

static void test_random_kills_of_producers(void **state)
{
    (void)state;
    th_jr = th_journal_new(th_name("mpsc.torture"), 128, STREAMS, UINT64_MAX);
    rq *keep = th_create(th_jr->name, 6, 128, RQ_MPSC); /* Windows: alive while sides are down */
    th_pid prod[STREAMS], cons = th_spawn("th_consumer_main", "", 120);
    for (unsigned s = 0; s < STREAMS; s++)
        prod[s] = spawn_producer(s);
    uint64_t rng = 0x3e3e3e3eu;
    unsigned long kills = 0, producer_kills = 0, consumer_kills = 0;
    uint64_t lives = 1 + STREAMS;
    while (kills < kill_target) {
        th_journal_await_started(th_jr, lives); /* kill in the work, not the start */
        th_sleep_us((unsigned long)(th_rand(&rng) % 1500));
        unsigned victim = (unsigned)(th_rand(&rng) % (STREAMS + 1));
        if (victim < STREAMS) {
            reap_killed(prod[victim]);
            prod[victim] = spawn_producer(victim);
            lives++;
            producer_kills++;
        } else {
            reap_killed(cons);
            cons = th_spawn("th_consumer_main", "", 120);
            lives++;
            consumer_kills++;
        }
        kills++;
    }
    uint64_t most = 0;
    for (unsigned s = 0; s < STREAMS; s++)
        if (rq_load_acquire_u64(&th_jr->prod_next[s]) > most)
            most = rq_load_acquire_u64(&th_jr->prod_next[s]);
    rq_store_release_u64(&th_jr->limit, most + 300);
    int status;
    for (unsigned s = 0; s < STREAMS; s++) {
        assert_int_equal(th_wait(prod[s], 60000, &status), 0);
        assert_true(th_exited_ok(status));
    }
    assert_int_equal(th_wait(cons, 60000, &status), 0);
    assert_true(th_exited_ok(status));

    rq *o = th_open(th_jr->name, RQ_OBSERVER, 6, 128, RQ_MPSC);
    rq_stats st;
    assert_int_equal(rq_stat(o, &st), RQ_OK);
    rq_close(o);
    uint64_t received = rq_load_relaxed_u64(&th_jr->received);
    uint64_t gaps = rq_load_relaxed_u64(&th_jr->gaps);
    uint64_t torn = rq_load_relaxed_u64(&th_jr->torn);
    uint64_t reorders = rq_load_relaxed_u64(&th_jr->reorders);
    uint64_t dups = rq_load_relaxed_u64(&th_jr->duplicates);
    print_message("mpsc torture: %d producers, kills %lu (producers %lu, consumer %lu), messages "
                  "checked %llu, lost %llu, torn %llu, reordered %llu, redelivered %llu, lock "
                  "recoveries %llu, consumer takeovers %llu, wake-ups lost p/c %llu/%llu\n",
                  STREAMS, kills, producer_kills, consumer_kills, (unsigned long long)received,
                  (unsigned long long)gaps, (unsigned long long)torn, (unsigned long long)reorders,
                  (unsigned long long)dups, (unsigned long long)st.lock_recoveries,
                  (unsigned long long)st.consumer_takeovers,
                  (unsigned long long)st.producer_missed_wakes,
                  (unsigned long long)st.consumer_missed_wakes);
    assert_true(kills >= kill_target);
    assert_true(received > kills);
    assert_int_equal(gaps, 0);
    assert_int_equal(torn, 0);
    assert_int_equal(reorders, 0);
    assert_true(dups <= kills); /* one in flight per kill, at most */
    th_journal_check_numbers(th_jr, consumer_kills, 1, th_jr->consume_pop);
    assert_int_equal(st.depth, 0);
    assert_int_equal(st.producer_missed_wakes + st.consumer_missed_wakes, 0);
    for (unsigned s = 0; s < STREAMS; s++)
        assert_int_equal(rq_load_relaxed_u64(&th_jr->cons_next[s]), most + 300);
    rq_close(keep);
    rq_unlink(th_jr->name);
    th_jr = NULL;
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_JOURNAL_CHILDREN,         TH_CHILD(child_reserve_and_die), TH_CHILD(child_push_one),
        TH_CHILD(child_push_stream), TH_CHILD(child_push_many),
    };
    TH_INIT(argc, argv, children);
    if (argc > 1 && strcmp(argv[1], "--soak") == 0)
        kill_target = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000;
    else
        kill_target = th_kill_count("mpsc torture", 1000, 100);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_producers_may_open),
        cmocka_unit_test(test_producer_killed_holding_the_lock),
        cmocka_unit_test(test_reservation_holds_the_lock_until_commit),
        cmocka_unit_test(test_reservation_belongs_to_its_thread),
        cmocka_unit_test(test_all_blocked_producers_finish),
        cmocka_unit_test(test_one_signal_wakes_every_waiting_producer),
        cmocka_unit_test(test_one_wake_per_consumer_sleep),
        cmocka_unit_test(test_a_push_to_a_full_ring_leaves_the_lock),
        cmocka_unit_test(test_spsc_queue_still_refuses_second_producer),
        cmocka_unit_test(test_random_kills_of_producers),
    };
    return cmocka_run_group_tests_name("mpsc", tests, NULL, NULL);
}
