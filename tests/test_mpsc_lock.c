/*
 * test_mpsc_lock.c - the MPSC producers' lock against a hostile segment
 * writer, self-deadlock, the mode flag, the producer limit, and kills at
 * every step of the lock with producers contending.
 *
 * The lock's shared state (struct rq_shm_mpsc) is plain data: whatever a
 * writer of the segment plants there may delay producers or make a call
 * fail, never crash one, hang one for good, or make it write outside its
 * mapping.  The attacks are written against the lock area's bytes, so the
 * robust-mutex build (layout 1) fails them: it aborts on a planted
 * priority-protect mutex, crashes on rewritten robust-list links, and
 * never recovers a lock whose flag a writer flipped to MPSC.
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

#ifndef _WIN32
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "crashpoint.h"
#include "helpers.h"
#include "layout.h"
#include "mpsc.h"
#include "rq.h"

/* Helpers of the tests that Windows skips (its lock area is unused). */
#ifdef _WIN32
#define LINUX_ONLY __attribute__((unused))
#else
#define LINUX_ONLY
#endif

/* The owner word: the first 8 bytes of the lock area. */
static rq_atomic_u64 *owner_word(struct rq_shm *shm)
{
    return (rq_atomic_u64 *)(void *)shm->lock_area;
}

/* The lock's waiters word (a waiter flags it before it sleeps). */
LINUX_ONLY static rq_atomic_u32 *waiters_word(struct rq_shm *shm)
{
    return &shm->mpsc.waiters;
}

static struct rq_shm *raw_shm(struct th_raw *raw, const char *name)
{
    th_raw_open(raw, "rq", name);
    return (struct rq_shm *)raw->addr;
}

static void pop_expect(rq *c, const char *want)
{
    char buf[64];
    size_t len;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 1000), RQ_OK);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
}

LINUX_ONLY static uint64_t recoveries(rq *q)
{
    rq_stats st;
    assert_int_equal(rq_stat(q, &st), RQ_OK);
    return st.lock_recoveries;
}

/* A word as a producer on SLOT would write it. */
LINUX_ONLY static uint64_t word_for_slot(uint32_t slot, uint64_t nonce)
{
    return RQ_MPSC_HELD | (nonce & RQ_MPSC_NONCE_MASK) << RQ_MPSC_NONCE_SHIFT | slot;
}

/* ---- planted lock words ---------------------------------------------- */

/* The bytes of a robust, process-shared, priority-protect pthread mutex:
 * glibc's lock asserts (tpp.c) on its priority ceiling and aborts. */
LINUX_ONLY static void plant_prio_protect_mutex(unsigned char *area)
{
#ifdef _WIN32
    memset(area, 0x5a, RQ_LOCK_AREA);
#else
    pthread_mutexattr_t attr;
    pthread_mutex_t m;
    memset(&m, 0, sizeof m);
    assert_int_equal(pthread_mutexattr_init(&attr), 0);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_PROTECT);
    if (pthread_mutex_init(&m, &attr) != 0) {
        /* glibc's x86-64 layout by hand: __kind (offset 16) priority-
         * protect | process-shared, __lock holding a ceiling of 99 */
        int kind = 64 | 128, lock = 99 << 19;
        memcpy((char *)&m + 16, &kind, 4);
        memcpy((char *)&m, &lock, 4);
    }
    pthread_mutexattr_destroy(&attr);
    memset(area, 0, RQ_LOCK_AREA);
    memcpy(area, &m, sizeof m < RQ_LOCK_AREA ? sizeof m : RQ_LOCK_AREA);
#endif
}

static int child_push_after_plant(const char *arg)
{
    (void)arg;
    rq *p;
    if (rq_open(&p, th_child_queue(), RQ_PRODUCER, NULL) != RQ_OK)
        return 1;
    int rc = rq_push(p, "planted", 7, 2000);
    rq_close(p);
    return rc == RQ_OK ? 0 : 2;
}

/* A producer run in a child, so that an abort or a crash shows as a
 * status rather than ending the suite. */
LINUX_ONLY static void push_in_child_succeeds(const char *what)
{
    th_pid pid = th_spawn("child_push_after_plant", "", 20);
    int status;
    assert_int_equal(th_wait(pid, 15000, &status), 0);
    if (!th_exited_ok(status))
        fail_msg("%s: the producer ended with status 0x%x", what, status);
}

static void test_planted_garbage_lock_words(void **state)
{
    (void)state;
#ifdef _WIN32
    skip(); /* the lock area is unused: Windows locks with a named mutex */
#else
    const char *name = th_set_child_queue(th_name("lk.plant"));
    rq *c = th_open(name, RQ_CONSUMER, 8, 32, RQ_MPSC);
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, name);

    plant_prio_protect_mutex(shm->lock_area);
    push_in_child_succeeds("a planted priority-protect mutex");
    pop_expect(c, "planted");

    uint64_t rng = 0x5eed1e55u;
    rq *p = th_open(name, RQ_PRODUCER, 8, 32, RQ_MPSC);
    for (int i = 0; i < 300; i++) {
        uint64_t w = th_rand(&rng);
        switch (i % 4) {
        case 0: /* any bytes in the whole area */
            for (size_t k = 0; k + 8 <= RQ_LOCK_AREA; k += 8) {
                uint64_t v = th_rand(&rng);
                memcpy(shm->lock_area + k, &v, 8);
            }
            break;
        case 1: /* a held word naming an invalid slot */
            w = RQ_MPSC_HELD | (w << 16) | (RQ_MPSC_PRODUCERS_MAX + w % 1000);
            break;
        case 2: /* a word naming a slot nobody holds, waiters flagged */
            w = word_for_slot(1 + (uint32_t)(w % (RQ_MPSC_PRODUCERS_MAX - 1)), w);
            rq_store_seq_u32(waiters_word(shm), (uint32_t)(w >> 32));
            break;
        default: /* all ones, no HELD bit, ... */
            w = i % 8 == 3 ? UINT64_MAX : w & ~RQ_MPSC_HELD;
            break;
        }
        if (i % 4 != 0)
            rq_store_seq_u64(owner_word(shm), w);
        char m[16];
        int n = snprintf(m, sizeof m, "m%d", i);
        uint64_t t0 = th_now_ms();
        int rc = rq_push(p, m, (size_t)n, 2000);
        if (rc != RQ_OK)
            fail_msg("push %d after planting %016llx: %s", i, (unsigned long long)w,
                     rq_errname(rc));
        assert_true(th_now_ms() - t0 < 1500); /* a probe, or a nap and a probe */
        pop_expect(c, m);
    }
    assert_true(recoveries(c) >= 200);
    rq_close(p);
    th_raw_close(&raw);
    rq_close(c);
    rq_unlink(name);
#endif
}

/* The owner word (and, on the old layout, the robust mutex's list links
 * at bytes 24-39, which its unlock writes through) rewritten while a
 * producer holds a reservation: the commit must publish and return. */
static void test_lock_area_rewritten_during_a_reservation(void **state)
{
    (void)state;
    const char *name = th_name("lk.resv");
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    rq *p = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, name);
    uint64_t rng = 0xfeedu;
    for (int pattern = 0; pattern < 4; pattern++) {
        void *slot;
        assert_int_equal(rq_reserve(p, &slot, 1000), RQ_OK);
        memcpy(slot, "kept", 4);
        if (pattern == 0) {
            memset(shm->lock_area + 24, 0x41, 16); /* "list links": wild pointers */
        } else if (pattern == 1) {
            rq_store_seq_u64(owner_word(shm), th_rand(&rng));
        } else if (pattern == 2) {
            rq_store_seq_u64(owner_word(shm), 0); /* "free" under the holder */
        } else {
            for (size_t k = 0; k + 8 <= RQ_LOCK_AREA; k += 8) {
                uint64_t v = th_rand(&rng);
                memcpy(shm->lock_area + k, &v, 8);
            }
        }
        assert_int_equal(rq_commit(p, 4), RQ_OK);
        pop_expect(c, "kept");
        assert_int_equal(rq_push(p, "after", 5, 2000), RQ_OK);
        pop_expect(c, "after");
    }
    th_raw_close(&raw);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

static void test_word_naming_a_dead_slot_is_recovered(void **state)
{
    (void)state;
#ifdef _WIN32
    skip(); /* the lock area is unused: Windows locks with a named mutex */
#else
    const char *name = th_name("lk.dead");
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    rq *p = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, name);
    for (uint32_t slot = 1; slot < 4; slot++) {
        uint64_t before = recoveries(c);
        rq_store_seq_u64(owner_word(shm), word_for_slot(slot, 12345));
        uint64_t t0 = th_now_ms();
        assert_int_equal(rq_push(p, "x", 1, 5000), RQ_OK);
        assert_true(th_now_ms() - t0 < 1000);
        assert_int_equal(recoveries(c), before + 1);
        pop_expect(c, "x");
    }
    /* a producer that opens recovers it too, without a push */
    rq_store_seq_u64(owner_word(shm), word_for_slot(9, 777));
    rq *p2 = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    assert_int_equal(rq_load_seq_u64(owner_word(shm)), 0);
    rq_close(p2);
    th_raw_close(&raw);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
#endif
}

static void test_word_naming_a_live_idle_producer_is_cleared_by_it(void **state)
{
    (void)state;
#ifdef _WIN32
    skip(); /* the lock area is unused: Windows locks with a named mutex */
#else
    const char *name = th_name("lk.live");
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    rq *p1 = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC); /* slot 0 */
    rq *p2 = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC); /* slot 1 */
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, name);
    uint64_t before = recoveries(c);
    /* Names p2's slot: to p1 the owner is alive, so p1 waits (bounded by
     * its timeout); p2 knows it holds nothing and takes the lock over. */
    rq_store_seq_u64(owner_word(shm), word_for_slot(1, 4242));
    assert_int_equal(rq_push(p1, "no", 2, 60), RQ_ELOCKED);
    assert_int_equal(rq_push(p2, "p2", 2, 0), RQ_OK);
    assert_int_equal(recoveries(c), before + 1);
    assert_int_equal(rq_push(p1, "p1", 2, 0), RQ_OK);
    pop_expect(c, "p2");
    pop_expect(c, "p1");
    /* Named again; this time p2 closes: its slot is free, p1 recovers. */
    rq_store_seq_u64(owner_word(shm), word_for_slot(1, 4343));
    rq_close(p2);
    assert_int_equal(rq_push(p1, "p1b", 3, 2000), RQ_OK);
    pop_expect(c, "p1b");
    th_raw_close(&raw);
    rq_close(p1);
    rq_close(c);
    rq_unlink(name);
#endif
}

/* ---- lost races and the deadline ---------------------------------------- */

#ifndef _WIN32
/* A peer that rewrites the owner word at each waiter's step before its
 * CAS, alternately to 0 (free) and to a word naming no valid slot (an
 * owner taken for dead at once): every CAS loses, and the waiter, which
 * finds the lock free or its owner dead at every look, never sleeps.  Each
 * rewrite takes 100 us; past REWRITE_LIMIT of them the peer stops (a
 * waiter still racing then makes the test fail rather than hang). */
#define REWRITE_LIMIT 5000
struct rewriter {
    rq_atomic_u64 *owner;
    uint64_t invalid; /* the word naming no valid slot */
    unsigned long steps;
};

static void rewrite_the_owner(void *arg)
{
    struct rewriter *r = arg;
    if (++r->steps > REWRITE_LIMIT)
        return;
    rq_store_seq_u64(r->owner, r->steps % 2 ? 0 : r->invalid);
    th_sleep_us(100);
}

/* A push with TIMEOUT_MS against the rewriting peer: its result, and the
 * rewrites it took. */
static int push_against_rewrites(rq *p, struct rq_shm *shm, int timeout_ms, unsigned long *steps)
{
    struct rewriter r = {owner_word(shm), word_for_slot(RQ_MPSC_PRODUCERS_MAX + 1, 7), 0};
    rq_store_seq_u64(r.owner, r.invalid);
    rq_crash_point_run(RQ_CP_MPSC_LOCK_BEFORE_TAKE, rewrite_the_owner, &r);
    int rc = rq_push(p, "late", 4, timeout_ms);
    rq_crash_point_run(-1, NULL, NULL);
    rq_store_seq_u64(owner_word(shm), 0);
    *steps = r.steps;
    return rc;
}
#endif

/* Lost races end with the call's deadline: a timed push gets RQ_ELOCKED
 * once its time is up, and a try RQ_EAGAIN once it has raced for as long
 * as its one nap would last, however long the peer keeps beating them to
 * the CAS.  (Before, only a
 * wait looked at the clock: the push raced until the peer stopped.) */
static void test_lost_races_end_at_the_deadline(void **state)
{
    (void)state;
#ifdef _WIN32
    skip(); /* the lock area is unused: Windows locks with a named mutex */
#else
    const char *name = th_name("lk.races");
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    rq *p = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, name);
    static const struct {
        int timeout_ms, want;
    } cases[] = {{50, RQ_ELOCKED}, {0, RQ_EAGAIN}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned long steps;
        int rc = push_against_rewrites(p, shm, cases[i].timeout_ms, &steps);
        if (steps >= REWRITE_LIMIT)
            fail_msg("timeout %d: the push raced %lu times, past its deadline", cases[i].timeout_ms,
                     steps);
        assert_int_equal(rc, cases[i].want);
        assert_true(steps >= 2); /* it lost a race each way: the peer was there */
    }
    /* nothing was pushed, and the lock works once the peer stops */
    char buf[8];
    size_t len;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_EAGAIN);
    assert_int_equal(rq_push(p, "after", 5, 1000), RQ_OK);
    pop_expect(c, "after");
    th_raw_close(&raw);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
#endif
}

/* ---- a try against a push in progress ---------------------------------- */

#ifndef _WIN32
/* Plays a holder that was off its CPU in the middle of a push: once a
 * waiter has flagged the waiters word (it sleeps, or is about to),
 * releases the planted word as rq_mpsc_unlock does (store 0, take the
 * flag, seq moved on, wake). */
struct late_release {
    struct rq_shm *shm;
    int saw_waiters;
};

static void *release_when_waited_for(void *arg)
{
    struct late_release *t = arg;
    uint64_t t0 = th_now_ms();
    while (!rq_load_seq_u32(waiters_word(t->shm))) {
        /* Generous: the test's thread may be off its CPU for seconds on a
         * loaded machine before its try even starts; a try that flags
         * ends this wait at once. */
        if (th_now_ms() - t0 > 10000)
            return NULL; /* the try never slept: nothing to release */
        th_sleep_us(20);
    }
    t->saw_waiters = 1;
    rq_store_seq_u64(owner_word(t->shm), 0);
    rq_exchange_u32(waiters_word(t->shm), 0);
    rq_fetch_add_u32(&t->shm->mpsc.seq, 1);
    syscall(SYS_futex, &t->shm->mpsc.seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
    return NULL;
}
#endif

/* A try (timeout 0) that finds the lock held for a push gives its CPU to
 * the holder and sleeps until the release (one nap of at most
 * RQ_MPSC_TRY_NAP_MS): it gets the lock instead of RQ_EAGAIN.  Held for a
 * reservation, which may last, the try returns RQ_EAGAIN at once, without
 * flagging a wait.  (Before: every try returned RQ_EAGAIN after a short
 * spin, and its caller spun on the lock in a loop of calls.) */
static void test_a_try_waits_for_a_push_in_progress(void **state)
{
    (void)state;
#ifdef _WIN32
    skip(); /* the lock area is unused: Windows locks with a named mutex */
#else
    const char *name = th_name("lk.try");
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    rq *p1 = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC); /* slot 0: the "holder" */
    rq *p2 = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, name);
    /* Released by the thread once p2 waits: p2's try gets the lock.  A
     * releaser delayed past the nap (RQ_MPSC_TRY_NAP_MS, 1 ms) makes the
     * try's RQ_EAGAIN correct but the round useless, and on a loaded
     * machine a thread woken or started is often not on a CPU within 1 ms:
     * so rounds go on, for up to 20 s, until one sees the hand-over.  A try
     * that never takes a released lock still fails (after those 20 s); one
     * that never sleeps fails at the first round. */
    int handed = 0, rounds = 0;
    for (uint64_t start = th_now_ms(); !handed && th_now_ms() - start < 20000; rounds++) {
        int round = rounds % 1000;
        rq_store_seq_u64(owner_word(shm), word_for_slot(0, 5000 + (uint64_t)round));
        struct late_release t = {shm, 0};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, release_when_waited_for, &t), 0);
        int rc = rq_push(p2, "try", 3, 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_true(t.saw_waiters); /* the try slept instead of giving up */
        if (rc == RQ_OK) {
            handed = 1;
            pop_expect(c, "try");
        } else {
            assert_int_equal(rc, RQ_EAGAIN);
        }
    }
    if (!handed)
        fail_msg("no try got the lock released in its nap in %d rounds", rounds);
    if (rounds > 1)
        print_message("the hand-over took %d rounds\n", rounds);
    /* Never released: RQ_EAGAIN after one nap, not a wait till a timeout. */
    rq_store_seq_u64(owner_word(shm), word_for_slot(0, 6000));
    uint64_t t0 = th_now_ms();
    assert_int_equal(rq_push(p2, "no", 2, 0), RQ_EAGAIN);
    assert_true(th_now_ms() - t0 < 900);
    assert_true(rq_load_seq_u32(waiters_word(shm)));
    /* Held for a reservation: RQ_EAGAIN without a sleep. */
    rq_store_seq_u32(waiters_word(shm), 0);
    rq_store_seq_u64(owner_word(shm), word_for_slot(0, 7000) | RQ_MPSC_RESERVING);
    assert_int_equal(rq_push(p2, "no", 2, 0), RQ_EAGAIN);
    assert_false(rq_load_seq_u32(waiters_word(shm)));
    rq_store_seq_u64(owner_word(shm), 0);
    assert_int_equal(rq_push(p2, "free", 4, 0), RQ_OK);
    pop_expect(c, "free");
    th_raw_close(&raw);
    rq_close(p1);
    rq_close(p2);
    rq_close(c);
    rq_unlink(name);
#endif
}

/* ---- self-deadlock --------------------------------------------------- */

struct other_thread {
    rq *p;
    int rc;
};

static void *push_from_other_thread(void *arg)
{
    struct other_thread *t = arg;
    t->rc = rq_push(t->p, "other", 5, 60);
    return NULL;
}

struct timed_push {
    rq *p;
    int rc;
    uint64_t done_ms;
};

static void *timed_push(void *arg)
{
    struct timed_push *t = arg;
    t->rc = rq_push(t->p, "late", 4, 10000);
    t->done_ms = th_now_ms();
    return NULL;
}

/* A producer asleep on the lock is woken by the release, not by the end of
 * its slice: its naps double from 1 ms, so one that began about a second
 * into the wait ends about 2 s in; a release at 1.2 s that forgot to wake
 * it would cost it most of a second. */
static void test_a_released_lock_wakes_its_sleepers(void **state)
{
    (void)state;
    const char *name = th_name("lk.wake");
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    rq *a = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    rq *b = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    void *slot;
    assert_int_equal(rq_reserve(a, &slot, 0), RQ_OK);
    struct timed_push t = {b, 99, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, timed_push, &t), 0);
    th_sleep_us(1200 * 1000);
    memcpy(slot, "a", 1);
    assert_int_equal(rq_commit(a, 1), RQ_OK);
    uint64_t released = th_now_ms();
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(t.rc, RQ_OK);
    /* The woken thread may read the clock before this one does. */
    uint64_t late = t.done_ms > released ? t.done_ms - released : 0;
    if (late > 400)
        fail_msg("the lock's sleeper got it %llu ms after the release: it was not woken",
                 (unsigned long long)late);
    pop_expect(c, "a");
    pop_expect(c, "late");
    rq_close(a);
    rq_close(b);
    rq_close(c);
    rq_unlink(name);
}

/* A waiters flag nobody sleeps under (its waiter was killed after setting
 * it, or found the owner word changed and did not sleep) costs the next
 * release one useless wake, which takes it: the releases after it find it
 * clear and make no system call.  FLAGS picks the release's branch: a
 * plain store (0) or, with RQ_FULL_FENCES, sequentially consistent ones. */
static void stale_flag_costs_one_wake(int flags)
{
#ifdef _WIN32
    (void)flags;
    skip(); /* the lock area is unused: Windows locks with a named mutex */
#else
    const char *name = th_name("lk.stale");
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC | flags);
    rq *p = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC | flags);
    rq_stats st;
    assert_int_equal(rq_stat(p, &st), RQ_OK);
    assert_int_equal(st.flags & RQ_FULL_FENCES, flags & RQ_FULL_FENCES);
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, name);
    uint32_t seq = rq_load_seq_u32(&shm->mpsc.seq);
    rq_store_seq_u32(waiters_word(shm), RQ_MPSC_LOCK_WAITERS);
    assert_int_equal(rq_push(p, "a", 1, 0), RQ_OK);
    assert_int_equal(rq_load_seq_u32(waiters_word(shm)), 0);    /* taken */
    assert_int_equal(rq_load_seq_u32(&shm->mpsc.seq), seq + 1); /* one wake */
    assert_int_equal(rq_push(p, "b", 1, 0), RQ_OK);
    assert_int_equal(rq_load_seq_u32(&shm->mpsc.seq), seq + 1); /* no more */
    pop_expect(c, "a");
    pop_expect(c, "b");
    th_raw_close(&raw);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
#endif
}

static void test_a_stale_flag_costs_one_wake(void **state)
{
    (void)state;
    stale_flag_costs_one_wake(0);
}

static void test_a_stale_flag_costs_one_wake_with_full_fences(void **state)
{
    (void)state;
    stale_flag_costs_one_wake(RQ_FULL_FENCES);
}

/* The same with record reservations, single and batch: they hold the
 * lock past the call too. */
static void test_record_reservations_get_edeadlk_too(void **state)
{
    (void)state;
    const char *name = th_name("lk.dlr");
    rq *c = th_open(name, RQ_CONSUMER, 1024, 32, RQ_MPSC | RQ_RECORDS);
    rq *a = th_open(name, RQ_PRODUCER, 1024, 32, RQ_MPSC | RQ_RECORDS);
    rq *b = th_open(name, RQ_PRODUCER, 1024, 32, RQ_MPSC | RQ_RECORDS);
    void *bufs[2];
    size_t lens[2] = {1, 1};
    assert_int_equal(rq_reserve_len(a, 1, &bufs[0], 0), RQ_OK);
    assert_int_equal(rq_push(b, "b", 1, 500), RQ_EDEADLK); /* before: RQ_ELOCKED after 0.5 s */
    assert_int_equal(rq_commit(a, 1), RQ_OK);
    assert_int_equal(rq_reserve_burst_len(a, lens, 2, bufs, 0), 2);
    assert_int_equal(rq_push(b, "b", 1, 500), RQ_EDEADLK);
    assert_int_equal(rq_commit_burst(a, lens, 2), RQ_OK);
    assert_int_equal(rq_push(b, "b", 1, 0), RQ_OK);
    rq_close(b);
    rq_close(a);
    rq_close(c);
    rq_unlink(name);
}

static void test_two_handles_of_one_thread_get_edeadlk(void **state)
{
    (void)state;
    const char *name = th_name("lk.dl"), *name2 = th_name("lk.dl2");
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    rq *a = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    rq *b = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    rq *other = th_open(name2, RQ_PRODUCER, 4, 32, RQ_MPSC);
    void *slot;
    assert_int_equal(rq_reserve(a, &slot, 0), RQ_OK);
    memcpy(slot, "a", 1);
    /* before: blocked for ever on Linux (the bounded calls first, so that
     * a missing check fails here rather than hanging below) */
    assert_int_equal(rq_push(b, "b", 1, 0), RQ_EDEADLK);
    assert_int_equal(rq_push(b, "b", 1, 500), RQ_EDEADLK);
    assert_int_equal(rq_push(b, "b", 1, RQ_INFINITE), RQ_EDEADLK);
    assert_int_equal(rq_reserve(b, &slot, RQ_INFINITE), RQ_EDEADLK);
    /* another queue's lock is another lock */
    assert_int_equal(rq_push(other, "o", 1, 0), RQ_OK);
    /* another thread with b is no deadlock: it waits (here: times out) */
    struct other_thread t = {b, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, push_from_other_thread, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(t.rc, RQ_ELOCKED);
    assert_int_equal(rq_commit(a, 1), RQ_OK);
    assert_int_equal(rq_push(b, "b", 1, 0), RQ_OK);
    pop_expect(c, "a");
    pop_expect(c, "b");
    /* closed with the reservation: released, no stale record left */
    assert_int_equal(rq_reserve(a, &slot, 0), RQ_OK);
    rq_close(a);
    assert_int_equal(rq_push(b, "c", 1, 0), RQ_OK);
    pop_expect(c, "c");
    rq_close(b);
    rq_close(other);
    rq_close(c);
    rq_unlink(name);
    rq_unlink(name2);
}

/* ---- the mode flag ---------------------------------------------------- */

static int child_reserve_and_die(const char *arg)
{
    (void)arg;
    rq *p;
    if (rq_open(&p, th_child_queue(), RQ_PRODUCER, NULL) != RQ_OK)
        return 1;
    void *slot;
    if (rq_reserve(p, &slot, 0) != RQ_OK)
        return 2;
    rq_plat_kill_self();
    return 3;
}

static void set_flags(const char *name, uint32_t flags)
{
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, name);
    shm->hdr.flags = flags | (shm->hdr.flags & RQ_FULL_FENCES);
    th_raw_close(&raw);
}

static void test_flipped_mpsc_flag(void **state)
{
    (void)state;
    rq_config mpsc_cfg = {4, 32, RQ_MPSC, 0}, spsc_cfg = {4, 32, 0, 0};
    rq *x = NULL;

    /* An SPSC queue flipped to MPSC while no producer is live: producers
     * that attach are MPSC ones, and the lock they share is a working
     * one (before: a zeroed, non-robust pthread mutex, never recovered
     * from a dead owner). */
    const char *name = th_set_child_queue(th_name("lk.flip"));
    rq *keep = th_create(name, 4, 32, 0);
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, 0);
    set_flags(name, RQ_MPSC);
    rq *p = NULL;
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, NULL), RQ_OK);
    th_pid pid = th_spawn("child_reserve_and_die", "", 10);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_was_killed(status));
    assert_int_equal(rq_push(p, "ok", 2, 3000), RQ_OK);
    pop_expect(c, "ok");

    /* MPSC producers live, flag flipped back: an SPSC-minded producer
     * (exclusive role lock) cannot join them, nor an opener with either
     * config (geometry check, then the role lock). */
    set_flags(name, 0);
    assert_int_equal(rq_open(&x, name, RQ_PRODUCER, NULL), RQ_EBUSY);
    assert_int_equal(rq_open(&x, name, RQ_PRODUCER, &spsc_cfg), RQ_EBUSY);
    assert_int_equal(rq_open(&x, name, RQ_PRODUCER, &mpsc_cfg), RQ_EEXIST);
    rq_stats st;
    assert_int_equal(rq_stat(p, &st), RQ_OK);
    assert_true(st.flags & RQ_MPSC); /* the handle keeps the mode it opened with */
    assert_int_equal(rq_push(p, "still", 5, 0), RQ_OK);
    pop_expect(c, "still");
    rq_close(p);

    /* An SPSC producer live, flag flipped to MPSC: no MPSC producer joins. */
    rq *s = NULL;
    assert_int_equal(rq_open(&s, name, RQ_PRODUCER, NULL), RQ_OK); /* SPSC now */
    set_flags(name, RQ_MPSC);
    assert_int_equal(rq_open(&x, name, RQ_PRODUCER, NULL), RQ_EBUSY);
    assert_int_equal(rq_open(&x, name, RQ_PRODUCER, &mpsc_cfg), RQ_EBUSY);
    assert_int_equal(rq_push(s, "spsc", 4, 0), RQ_OK);
    pop_expect(c, "spsc");
    rq_close(s);
    rq_close(c);
    rq_close(keep);
    rq_unlink(name);
}

/* ---- the producer limit ----------------------------------------------- */

static void test_producer_limit(void **state)
{
    (void)state;
#ifdef _WIN32
    skip(); /* Windows' named mutex has no producer slots */
#else
    const char *name = th_name("lk.max");
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    static rq *p[RQ_MPSC_PRODUCERS_MAX];
    for (unsigned i = 0; i < RQ_MPSC_PRODUCERS_MAX; i++)
        assert_int_equal(rq_open(&p[i], name, RQ_PRODUCER, NULL), RQ_OK);
    rq *x = NULL;
    assert_int_equal(rq_open(&x, name, RQ_PRODUCER, NULL), RQ_EBUSY);
    rq_close(p[17]);
    assert_int_equal(rq_open(&p[17], name, RQ_PRODUCER, NULL), RQ_OK); /* its slot */
    assert_int_equal(rq_push(p[17], "x", 1, 0), RQ_OK);
    assert_int_equal(rq_push(p[RQ_MPSC_PRODUCERS_MAX - 1], "y", 1, 0), RQ_OK);
    pop_expect(c, "x");
    pop_expect(c, "y");
    for (unsigned i = 0; i < RQ_MPSC_PRODUCERS_MAX; i++)
        rq_close(p[i]);
    rq_close(c);
    rq_unlink(name);
#endif
}

/* ---- kills at every step of the lock, producers contending ----------- */

#define STREAMS 3
#define EACH 40
#define KILLS_PER_RUN 4

/* Kills of producers at POINT (on its HIT-th hit of a life), restarted
 * armed again until KILLS_PER_RUN; mpsc.after_recover needs a dead owner
 * first, so the first lives die at mpsc.after_lock.  Returns the kills at
 * POINT. */
static unsigned long run_kills(int point, unsigned long hit, unsigned pause_us)
{
    int first = point == RQ_CP_MPSC_AFTER_RECOVER ? RQ_CP_MPSC_AFTER_LOCK : point;
    int life[STREAMS] = {0};
    th_jr = th_journal_new(th_name("lk.kill"), 64, STREAMS, EACH);
    th_jr->consumer_pause_us = pause_us;
    rq *keep = th_create(th_jr->name, 2, 64, RQ_MPSC);
    th_pid cons = th_spawn("th_consumer_main", "", 60), prod[STREAMS];
    for (unsigned s = 0; s < STREAMS; s++)
        prod[s] = th_spawn_armed("th_producer_main", th_stream_arg(s), 60, first, hit);
    unsigned long kills = 0, at_point = 0;
    int done = 0;
    uint64_t until = th_now_ms() + 30000;
    while (done < STREAMS + 1) {
        int status;
        th_pid pid = th_wait_any(20, &status);
        if (pid == 0) {
            if (th_now_ms() > until)
                fail_msg("%s (hit %lu): blocked", rq_crash_point_name(point), hit);
            continue;
        }
        if (pid == cons) {
            assert_true(th_exited_ok(status));
            done++;
            continue;
        }
        unsigned s = 0;
        while (s < STREAMS && prod[s] != pid)
            s++;
        assert_true(s < STREAMS);
        if (th_was_killed(status)) {
            kills++;
            at_point += first == point || life[s] > 0;
            life[s]++;
            prod[s] = th_spawn_armed("th_producer_main", th_stream_arg(s), 60,
                                     kills < KILLS_PER_RUN ? point : -1, hit);
            continue;
        }
        if (!th_exited_ok(status))
            fail_msg("%s: a producer exited with status 0x%x", rq_crash_point_name(point), status);
        done++;
    }
    for (unsigned s = 0; s < STREAMS; s++)
        assert_int_equal(rq_load_relaxed_u64(&th_jr->cons_next[s]), EACH);
    assert_int_equal(rq_load_relaxed_u64(&th_jr->gaps), 0);
    assert_int_equal(rq_load_relaxed_u64(&th_jr->torn), 0);
    assert_int_equal(rq_load_relaxed_u64(&th_jr->reorders), 0);
    assert_true(rq_load_relaxed_u64(&th_jr->duplicates) <= kills);
    rq_close(keep);
    rq_unlink(th_jr->name);
    th_jr = NULL;
    return at_point;
}

static int child_push_one(const char *arg)
{
    rq *p;
    if (rq_open(&p, th_child_queue(), RQ_PRODUCER, NULL) != RQ_OK)
        return 1;
    int rc = rq_push(p, arg, strlen(arg), 5000);
    rq_close(p);
    return rc == RQ_OK ? 0 : 2;
}

/* Where the runs above rarely get (a producer about to sleep on the lock,
 * its flag set in the waiters word): made sure of.  The parent holds the lock by a
 * reservation, a child comes to sleep on it and is killed there; the
 * stale flag costs the parent's commit one useless wake. */
static unsigned long kills_asleep_on_the_lock(void)
{
#ifdef _WIN32
    return 0;
#else
    const char *name = th_set_child_queue(th_name("lk.flag"));
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    rq *p = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    unsigned long kills = 0;
    for (int round = 0; round < 3; round++) {
        void *slot;
        assert_int_equal(rq_reserve(p, &slot, 0), RQ_OK);
        memcpy(slot, "held", 4);
        th_pid pid = th_spawn_armed("child_push_one", "never", 20, RQ_CP_MPSC_WAIT_AFTER_FLAG, 1);
        int status;
        assert_int_equal(th_wait(pid, 10000, &status), 0);
        assert_true(th_was_killed(status));
        kills++;
        assert_int_equal(rq_commit(p, 4), RQ_OK);
        assert_int_equal(rq_push(p, "next", 4, 1000), RQ_OK);
        pop_expect(c, "held");
        pop_expect(c, "next");
    }
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
    return kills;
#endif
}

/* Where the runs above get only by chance (a producer between its look at
 * the owner word and its CAS, which it makes when it finds the lock free
 * or its owner dead): made sure of, both ways.  The parent holds the lock
 * by a reservation until a child sleeps on it; then it commits (the child
 * finds the lock free) or rewrites the owner word to one naming no valid
 * slot (the child takes its owner for dead) and commits once the child is
 * dead.  The killed child took nothing: no recovery, nothing pushed. */
static unsigned long kills_before_taking_the_lock(void)
{
#ifdef _WIN32
    return 0;
#else
    const char *name = th_set_child_queue(th_name("lk.race"));
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    rq *p = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, name);
    unsigned long kills = 0;
    for (int round = 0; round < 4; round++) {
        int free_way = round % 2 == 0;
        void *slot;
        assert_int_equal(rq_reserve(p, &slot, 0), RQ_OK);
        memcpy(slot, "held", 4);
        uint64_t before = recoveries(c), t0 = th_now_ms();
        th_pid pid = th_spawn_armed("child_push_one", "never", 20, RQ_CP_MPSC_LOCK_BEFORE_TAKE, 1);
        while (!rq_load_seq_u32(waiters_word(shm)) && th_now_ms() - t0 < 10000)
            th_sleep_us(100);
        if (free_way)
            assert_int_equal(rq_commit(p, 4), RQ_OK);
        else
            rq_store_seq_u64(owner_word(shm), word_for_slot(RQ_MPSC_PRODUCERS_MAX + 3, 99));
        int status;
        assert_int_equal(th_wait(pid, 10000, &status), 0);
        if (!th_was_killed(status))
            fail_msg("round %d: the child was not killed (status 0x%x)", round, status);
        kills++;
        if (!free_way)
            assert_int_equal(rq_commit(p, 4), RQ_OK);
        assert_int_equal(rq_push(p, "next", 4, 1000), RQ_OK);
        assert_int_equal(recoveries(c), before);
        pop_expect(c, "held");
        pop_expect(c, "next");
    }
    th_raw_close(&raw);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
    return kills;
#endif
}

/* Reserves, waits until a producer has flagged the lock's waiters word
 * (it sleeps, or is about to), and commits: the release finds the flag
 * and takes it (armed: killed there, before the wake). */
static int child_commit_when_waited_for(const char *arg)
{
    (void)arg;
#ifdef _WIN32
    return 0;
#else
    rq *p;
    if (rq_open(&p, th_child_queue(), RQ_PRODUCER, NULL) != RQ_OK)
        return 1;
    void *slot;
    if (rq_reserve(p, &slot, 0) != RQ_OK)
        return 2;
    memcpy(slot, "held", 4);
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, th_child_queue());
    uint64_t t0 = th_now_ms();
    while (!rq_load_seq_u32(waiters_word(shm))) {
        if (th_now_ms() - t0 > 5000)
            return 3;
        th_sleep_us(100);
    }
    th_sleep_us(20 * 1000); /* past its fence and re-check, into its sleep */
    rq_commit(p, 4);
    return 4; /* not killed: the release never found the flag */
#endif
}

/* A release killed after taking the waiters flag, before its wake: the
 * sleeper it took it from is left to the end of its slice, and then
 * takes the free lock.  Made sure of: the child holds the lock by a
 * reservation until the parent sleeps on it. */
static unsigned long kills_after_taking_the_flag(void)
{
#ifdef _WIN32
    return 0;
#else
    const char *name = th_set_child_queue(th_name("lk.take"));
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, RQ_MPSC);
    rq *p = th_open(name, RQ_PRODUCER, 4, 32, RQ_MPSC);
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, name);
    unsigned long kills = 0;
    /* A slice of ours that ends between the child's store and its look
     * at the flag lets us take the lock and the flag first: that child
     * exits unkilled, and the round is done again. */
    for (int round = 0; round < 8 && kills < 3; round++) {
        th_pid pid =
            th_spawn_armed("child_commit_when_waited_for", "", 20, RQ_CP_MPSC_UNLOCK_AFTER_TAKE, 1);
        uint64_t t0 = th_now_ms();
        while (rq_load_seq_u64(owner_word(shm)) == 0) {
            assert_true(th_now_ms() - t0 < 5000);
            th_sleep_us(100);
        }
        assert_int_equal(rq_push(p, "next", 4, 5000), RQ_OK);
        assert_true(th_now_ms() - t0 < 4000); /* a slice, not a timeout */
        int status;
        assert_int_equal(th_wait(pid, 10000, &status), 0);
        if (th_was_killed(status)) {
            kills++;
            assert_int_equal(rq_load_seq_u32(waiters_word(shm)), 0); /* taken, then killed */
        }
        pop_expect(c, "held");
        pop_expect(c, "next");
    }
    assert_true(kills > 0);
    th_raw_close(&raw);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
    return kills;
#endif
}

/* ---- who holds the lock (rq_stat) -------------------------------------- */

struct bounded_push {
    rq *q;
    int timeout_ms;
    int rc;
};

LINUX_ONLY static void *bounded_push_main(void *arg)
{
    struct bounded_push *t = arg;
    t->rc = rq_push(t->q, "w", 1, t->timeout_ms);
    return NULL;
}

static rq_stats stat_of(rq *q)
{
    rq_stats st;
    assert_int_equal(rq_stat(q, &st), RQ_OK);
    return st;
}

/* Every reservation is shown as one (lock_reserving), on both kinds and
 * for the bursts too, and a push after a reservation is not: the flag is
 * set by each call that takes the lock, not left over from the last. */
static void test_every_reservation_is_shown(void **state)
{
    (void)state;
    for (int records = 0; records < 2; records++) {
        const char *name = th_name(records ? "lk.show.rec" : "lk.show");
        uint32_t f = RQ_MPSC | (records ? RQ_RECORDS : 0);
        rq *c = th_open(name, RQ_CONSUMER, records ? 1024 : 8, 32, f);
        rq *p = th_open(name, RQ_PRODUCER, records ? 1024 : 8, 32, f);
        void *bufs[2];
        size_t lens[2] = {4, 4};
        assert_int_equal(rq_reserve_len(p, 4, &bufs[0], 0), RQ_OK);
        assert_int_equal(stat_of(c).lock_reserving, 1);
        assert_int_equal(rq_commit(p, 4), RQ_OK);
        assert_int_equal(rq_push(p, "abcd", 4, 0), RQ_OK); /* a hold of one call */
        assert_int_equal(rq_reserve_burst_len(p, lens, 2, bufs, 0), 2);
        assert_int_equal(stat_of(c).lock_reserving, 1);
        assert_int_equal(rq_commit_burst(p, lens, 2), RQ_OK);
        if (!records) {
            const void *msgs[1] = {"abcd"};
            assert_int_equal(rq_push_burst(p, msgs, lens, 1, 0), 1);
            assert_int_equal(rq_reserve_burst(p, bufs, 1, 0), 1);
            assert_int_equal(stat_of(c).lock_reserving, 1);
            assert_int_equal(rq_commit_burst(p, lens, 1), RQ_OK);
        }
        rq_close(p);
        rq_close(c);
        rq_unlink(name);
    }
}

/* rq_stat names the holder (pid, a reservation, held since a producer
 * first waited); a waiter killed between setting the waiters word and stamping
 * the time leaves the time unknown, and the next waiter stamps it; dead
 * reservations and dead producers (their slots taken again) are
 * counted. */
static void test_who_holds_the_lock(void **state)
{
    (void)state;
#ifndef _WIN32
    const char *name = th_set_child_queue(th_name("lk.who"));
    rq *c = th_open(name, RQ_CONSUMER, 8, 32, RQ_MPSC);
    rq *p = th_open(name, RQ_PRODUCER, 8, 32, RQ_MPSC);
    rq *p2 = th_open(name, RQ_PRODUCER, 8, 32, RQ_MPSC);
    th_expect_lock_holder(c, 0, 0);
    assert_int_equal(rq_push(p, "a", 1, 0), RQ_OK);
    th_expect_lock_holder(c, 0, 0); /* released */

    void *slot;
    assert_int_equal(rq_reserve(p, &slot, 0), RQ_OK);
    memcpy(slot, "r", 1);
    th_expect_lock_holder(c, th_getpid(), 1);
    assert_int_equal(stat_of(c).lock_held_ms, -1); /* nobody waited: no time */

    /* Killed after its flag in the waiters word, before its stamp. */
    uint64_t takeovers = stat_of(c).producer_takeovers;
    th_pid pid = th_spawn_armed("child_push_one", "never", 20, RQ_CP_MPSC_WAIT_AFTER_FLAG, 1);
    int status;
    assert_int_equal(th_wait(pid, 10000, &status), 0);
    assert_true(th_was_killed(status));
    th_expect_lock_holder(c, th_getpid(), 1);
    assert_int_equal(stat_of(c).lock_held_ms, -1);

    /* The next waiter stamps it, and times out on the lock. */
    struct bounded_push t = {p2, 300, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, bounded_push_main, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(t.rc, RQ_ELOCKED);
    th_expect_lock_holder(c, th_getpid(), 1);
    assert_true(stat_of(c).lock_held_ms >= 250);
    assert_int_equal(rq_commit(p, 1), RQ_OK);
    th_expect_lock_holder(c, 0, 0);

    /* The killed child's slot, taken by the next producer: a death. */
    rq *p3 = th_open(name, RQ_PRODUCER, 8, 32, RQ_MPSC);
    assert_int_equal(stat_of(c).producer_takeovers, takeovers + 1);
    rq_close(p3); /* a clean close is no death */
    p3 = th_open(name, RQ_PRODUCER, 8, 32, RQ_MPSC);
    assert_int_equal(stat_of(c).producer_takeovers, takeovers + 1);
    rq_close(p3);

    /* A reservation whose producer dies: recovered and counted. */
    rq_stats st = stat_of(c);
    pid = th_spawn("child_reserve_and_die", "", 10);
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_was_killed(status));
    th_expect_lock_holder(c, TH_ANOTHER_PROCESS, 1);
    assert_int_equal(rq_push(p2, "b", 1, 2000), RQ_OK);
    rq_stats dead = stat_of(c);
    assert_int_equal(dead.lock_recoveries, st.lock_recoveries + 1);
    assert_int_equal(dead.dead_reservations, st.dead_reservations + 1);
    th_expect_lock_holder(c, 0, 0);
    pop_expect(c, "a");
    pop_expect(c, "r");
    pop_expect(c, "b");
    rq_close(p2);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
#endif
}

/* Windows: the named mutex cannot be inspected, so its holder stamps its
 * pid and the time into the lock area, and clears them before releasing;
 * rq_stat shows them.  A holder killed holding it (TerminateProcess)
 * leaves its stamp until the next holder (WAIT_ABANDONED) overwrites it.
 * Planted words are shown within range, never acted on. */
static void test_who_holds_the_mutex(void **state)
{
    (void)state;
#ifndef _WIN32
    skip(); /* Linux: test_who_holds_the_lock */
#else
    const char *name = th_set_child_queue(th_name("lk.mtx"));
    rq *c = th_open(name, RQ_CONSUMER, 8, 32, RQ_MPSC);
    rq *p = th_open(name, RQ_PRODUCER, 8, 32, RQ_MPSC);
    th_expect_lock_holder(c, 0, 0);
    assert_int_equal(rq_push(p, "a", 1, 0), RQ_OK);
    th_expect_lock_holder(c, 0, 0); /* released */

    void *slot;
    assert_int_equal(rq_reserve(p, &slot, 0), RQ_OK);
    memcpy(slot, "r", 1);
    th_expect_lock_holder(c, th_getpid(), 1);
    rq_stats st = stat_of(c);
    assert_true(st.lock_held_ms >= 0 && st.lock_held_ms < 5000);
    th_sleep_us(300000);
    assert_true(stat_of(c).lock_held_ms >= 250);
    assert_int_equal(rq_commit(p, 1), RQ_OK);
    th_expect_lock_holder(c, 0, 0);
    st = stat_of(c);

    /* Killed holding it: its stamp stays, then the next holder's. */
    uint64_t recoveries = st.lock_recoveries, dead_reservations = st.dead_reservations;
    th_pid pid = th_spawn("child_reserve_and_die", "", 10);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_was_killed(status));
    th_expect_lock_holder(c, TH_ANOTHER_PROCESS, 1);
    assert_true(stat_of(c).lock_held_ms >= 0);
    assert_int_equal(rq_reserve(p, &slot, 2000), RQ_OK); /* WAIT_ABANDONED */
    memcpy(slot, "b", 1);
    st = stat_of(c);
    assert_int_equal(st.lock_recoveries, recoveries + 1);
    assert_int_equal(st.dead_reservations, dead_reservations + 1);
    th_expect_lock_holder(c, th_getpid(), 1);
    assert_int_equal(rq_commit(p, 1), RQ_OK);
    th_expect_lock_holder(c, 0, 0);

    /* Planted words: shown within range, and the next holder clears them. */
    struct th_raw raw;
    struct rq_shm *shm = raw_shm(&raw, name);
    uint64_t rng = 0x5eed1e55u;
    for (int i = 0; i < 200; i++) {
        rq_store_relaxed_u64(&shm->mpsc.owner, i % 8 == 0 ? UINT64_MAX : th_rand(&rng));
        rq_store_relaxed_u64(&shm->mpsc.waited_since_ms, i % 8 == 1 ? UINT64_MAX : th_rand(&rng));
        st = stat_of(c);
        assert_true(st.lock_holder_pid >= -1 && st.lock_holder_pid <= (int64_t)UINT32_MAX);
        assert_true(st.lock_held_ms >= -1);
        assert_true(st.lock_reserving == 0 || st.lock_reserving == 1);
    }
    assert_int_equal(rq_push(p, "c", 1, 2000), RQ_OK); /* the mutex decides, not the words */
    th_expect_lock_holder(c, 0, 0);
    th_raw_close(&raw);
    pop_expect(c, "a");
    pop_expect(c, "r");
    pop_expect(c, "b");
    pop_expect(c, "c");
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
#endif
}

/* Opens an MPSC producer, pushes ARG, and waits to be killed. */
static int child_push_and_wait(const char *arg)
{
    rq *p;
    if (rq_open(&p, th_child_queue(), RQ_PRODUCER, NULL) != RQ_OK)
        return 1;
    if (rq_push(p, arg, strlen(arg), 5000) != RQ_OK)
        return 2;
    for (;;)
        th_sleep_us(100000);
}

/* A producer killed outside the producers' lock (SIGKILL; on Windows
 * TerminateProcess, which the named mutex alone would not see) is counted
 * in producer_takeovers when its producer slot is next taken, and is no
 * lock recovery; live producers and clean closes count nothing. */
static void test_producer_death_outside_the_lock(void **state)
{
    (void)state;
    const char *name = th_set_child_queue(th_name("lk.death"));
    rq *c = th_open(name, RQ_CONSUMER, 8, 32, RQ_MPSC);
    rq_stats before = stat_of(c);
    for (int round = 1; round <= 3; round++) {
        th_pid pid = th_spawn("child_push_and_wait", "alive", 30);
        char buf[64];
        size_t len;
        assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 10000), RQ_OK); /* it has its slot */
        rq *live = th_open(name, RQ_PRODUCER, 8, 32, RQ_MPSC);            /* another slot */
        assert_int_equal(stat_of(c).producer_takeovers, before.producer_takeovers + round - 1);
        rq_close(live);
        th_kill_and_reap(pid);
        assert_int_equal(stat_of(c).producer_takeovers, before.producer_takeovers + round - 1);
        rq *p = th_open(name, RQ_PRODUCER, 8, 32, RQ_MPSC); /* the dead one's slot */
        rq_stats st = stat_of(c);
        assert_int_equal(st.producer_takeovers, before.producer_takeovers + round);
        assert_int_equal(st.lock_recoveries, before.lock_recoveries);
        assert_int_equal(st.dead_reservations, before.dead_reservations);
        assert_int_equal(rq_push(p, "x", 1, 1000), RQ_OK);
        pop_expect(c, "x");
        rq_close(p); /* a clean close is no death */
        p = th_open(name, RQ_PRODUCER, 8, 32, RQ_MPSC);
        assert_int_equal(stat_of(c).producer_takeovers, before.producer_takeovers + round);
        rq_close(p);
    }
    rq_close(c);
    rq_unlink(name);
}

static void test_kills_at_every_lock_step(void **state)
{
    (void)state;
    static const unsigned long hits[] = {1, 3};
    unsigned long total = 0;
    for (int point = 0; point < RQ_CP_COUNT_; point++) {
        if (strncmp(rq_crash_point_name(point), "mpsc.", 5) != 0)
            continue;
#ifdef _WIN32
        if (point == RQ_CP_MPSC_WAIT_AFTER_FLAG || point == RQ_CP_MPSC_UNLOCK_AFTER_TAKE ||
            point == RQ_CP_MPSC_LOCK_BEFORE_TAKE)
            continue; /* no such step with the named mutex */
#endif
        unsigned long at_point = 0;
        for (size_t h = 0; h < sizeof hits / sizeof *hits; h++)
            for (unsigned pause = 0; pause <= 200; pause += 200)
                at_point += run_kills(point, hits[h], pause);
        if (point == RQ_CP_MPSC_WAIT_AFTER_FLAG)
            at_point += kills_asleep_on_the_lock();
        if (point == RQ_CP_MPSC_UNLOCK_AFTER_TAKE)
            at_point += kills_after_taking_the_flag();
        if (point == RQ_CP_MPSC_LOCK_BEFORE_TAKE)
            at_point += kills_before_taking_the_lock();
        print_message("mpsc lock kills: %-22s %lu\n", rq_crash_point_name(point), at_point);
        if (at_point == 0)
            fail_msg("%s was never hit with producers contending", rq_crash_point_name(point));
        total += at_point;
    }
    print_message("mpsc lock kills: %lu in all, no message lost, torn or reordered\n", total);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_JOURNAL_CHILDREN,
        TH_CHILD(child_push_after_plant),
        TH_CHILD(child_reserve_and_die),
        TH_CHILD(child_push_one),
        TH_CHILD(child_push_and_wait),
        TH_CHILD(child_commit_when_waited_for),
    };
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planted_garbage_lock_words),
        cmocka_unit_test(test_lock_area_rewritten_during_a_reservation),
        cmocka_unit_test(test_word_naming_a_dead_slot_is_recovered),
        cmocka_unit_test(test_word_naming_a_live_idle_producer_is_cleared_by_it),
        cmocka_unit_test(test_two_handles_of_one_thread_get_edeadlk),
        cmocka_unit_test(test_record_reservations_get_edeadlk_too),
        cmocka_unit_test(test_a_released_lock_wakes_its_sleepers),
        cmocka_unit_test(test_a_stale_flag_costs_one_wake),
        cmocka_unit_test(test_a_stale_flag_costs_one_wake_with_full_fences),
        cmocka_unit_test(test_lost_races_end_at_the_deadline),
        cmocka_unit_test(test_a_try_waits_for_a_push_in_progress),
        cmocka_unit_test(test_flipped_mpsc_flag),
        cmocka_unit_test(test_producer_limit),
        cmocka_unit_test(test_who_holds_the_lock),
        cmocka_unit_test(test_every_reservation_is_shown),
        cmocka_unit_test(test_who_holds_the_mutex),
        cmocka_unit_test(test_producer_death_outside_the_lock),
        cmocka_unit_test(test_kills_at_every_lock_step),
    };
    return cmocka_run_group_tests_name("mpsc_lock", tests, NULL, NULL);
}
