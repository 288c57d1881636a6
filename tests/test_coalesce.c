/*
 * test_coalesce.c - src/coalesce.c: coalescing requests across processes.
 */
#ifndef _WIN32
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <cmocka.h>

#include "crashpoint.h"
#include "helpers.h"
#include "layout.h"
#include "platform.h"
#include "rq.h"

/* The object the children open, in memory shared with them. */
static const char *obj_name(void)
{
    return th_shared("obj", RQ_NAME_MAX + 1);
}

static const char *set_obj(const char *name)
{
    char *o = th_shared_fresh("obj", RQ_NAME_MAX + 1);
    snprintf(o, RQ_NAME_MAX + 1, "%s", name);
    return o;
}

static rq_coalesce *open_c(const char *name, int role)
{
    rq_coalesce *c = NULL;
    int rc = rq_coalesce_open(&c, name, role, 0);
    if (rc != RQ_OK)
        fail_msg("rq_coalesce_open(%s, %d): %s", name, role, rq_strerror(rc));
    return c;
}

static const char *fresh(const char *tag)
{
    const char *n = th_name(tag);
    rq_coalesce_unlink(n);
    return n;
}

static void test_open_errors_and_roles(void **state)
{
    (void)state;
    rq_coalesce *c = (rq_coalesce *)1;
    assert_int_equal(rq_coalesce_open(NULL, "x", RQ_PRODUCER, 0), RQ_EINVAL);
    assert_int_equal(rq_coalesce_open(&c, "bad/name", RQ_PRODUCER, 0), RQ_EINVAL);
    assert_null(c);
    assert_int_equal(rq_coalesce_open(&c, "", RQ_PRODUCER, 0), RQ_EINVAL);
    const char *name = fresh("co.open");
    assert_int_equal(rq_coalesce_open(&c, name, 0, 0), RQ_EINVAL);
    assert_int_equal(rq_coalesce_open(&c, name, RQ_PRODUCER, 01000), RQ_EINVAL);
    rq_coalesce *w = open_c(name, RQ_CONSUMER);
    assert_int_equal(rq_coalesce_open(&c, name, RQ_CONSUMER, 0), RQ_EBUSY);
    rq_coalesce *r1 = open_c(name, RQ_PRODUCER), *r2 = open_c(name, RQ_PRODUCER);
    uint64_t t;
    assert_int_equal(rq_coalesce_request(w), RQ_EROLE);
    assert_int_equal(rq_coalesce_wait(r1, &t, 0), RQ_EROLE);
    assert_int_equal(rq_coalesce_done(r1, 0), RQ_EROLE);
    assert_int_equal(rq_coalesce_request(NULL), RQ_EINVAL);
    assert_int_equal(rq_coalesce_wait(NULL, &t, 0), RQ_EINVAL);
    assert_int_equal(rq_coalesce_wait(w, NULL, 0), RQ_EINVAL);
    assert_int_equal(rq_coalesce_wait(w, &t, -5), RQ_EINVAL);
    assert_int_equal(rq_coalesce_done(NULL, 0), RQ_EINVAL);
    assert_int_equal(rq_coalesce_stat(NULL, NULL), RQ_EINVAL);
    rq_coalesce_close(r1);
    rq_coalesce_close(r2);
    rq_coalesce_close(w);
    rq_coalesce_close(NULL);
#ifdef _WIN32
    /* The object went with its last handle: no name is left to remove. */
    assert_int_equal(rq_coalesce_unlink(name), RQ_ENOENT);
#else
    assert_int_equal(rq_coalesce_unlink(name), RQ_OK);
    assert_int_equal(rq_coalesce_unlink(name), RQ_ENOENT);
#endif
    assert_int_equal(rq_coalesce_unlink("a b"), RQ_EINVAL);
}

#ifndef _WIN32 /* Windows has no permission bits (docs/design.md, section 7) */
/* Same permission rule as queues: exactly MODE (0 means 0600), whatever
 * the umask. */
static void test_mode_is_exact_despite_umask(void **state)
{
    (void)state;
    mode_t old = umask(077);
    const struct {
        uint32_t asked, want;
    } cases[] = {{0640, 0640}, {0, 0600}, {0666, 0666}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *name = fresh("co.mode");
        rq_coalesce *c = NULL;
        assert_int_equal(rq_coalesce_open(&c, name, RQ_PRODUCER, cases[i].asked), RQ_OK);
        char path[256];
        snprintf(path, sizeof path, "/dev/shm/rqc.%s", name);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, cases[i].want);
        rq_coalesce_close(c);
        rq_coalesce_unlink(name);
    }
    umask(old);
}
#endif

static void test_requests_coalesce_into_rounds(void **state)
{
    (void)state;
    const char *name = fresh("co.sem");
    rq_coalesce *w = open_c(name, RQ_CONSUMER), *r = open_c(name, RQ_PRODUCER);
    uint64_t t, t2;
    assert_int_equal(rq_coalesce_wait(w, &t, 0), RQ_EAGAIN);
    uint64_t t0 = th_now_ms();
    assert_int_equal(rq_coalesce_wait(w, &t, 50), RQ_ETIMEDOUT);
    assert_true(th_now_ms() - t0 >= 45);
    assert_int_equal(rq_coalesce_done(w, 0), RQ_ESTATE); /* no round open */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(rq_coalesce_request(r), RQ_OK);
    assert_int_equal(rq_coalesce_wait(w, &t, 0), RQ_OK); /* one round for all 1000 */
    assert_int_equal(rq_coalesce_done(w, t + 1), RQ_ESTATE);
    assert_int_equal(rq_coalesce_done(w, t), RQ_OK);
    assert_int_equal(rq_coalesce_done(w, t), RQ_ESTATE);
    assert_int_equal(rq_coalesce_wait(w, &t, 0), RQ_EAGAIN);
    /* requests during a round: exactly one more round */
    assert_int_equal(rq_coalesce_request(r), RQ_OK);
    assert_int_equal(rq_coalesce_wait(w, &t, 0), RQ_OK);
    for (int i = 0; i < 500; i++)
        assert_int_equal(rq_coalesce_request(r), RQ_OK);
    assert_int_equal(rq_coalesce_done(w, t), RQ_OK);
    assert_int_equal(rq_coalesce_wait(w, &t2, 0), RQ_OK);
    assert_true(t2 != t);
    assert_int_equal(rq_coalesce_done(w, t2), RQ_OK);
    assert_int_equal(rq_coalesce_wait(w, &t, 0), RQ_EAGAIN);
    /* a wait again before done: the round is still owed, same work */
    assert_int_equal(rq_coalesce_request(r), RQ_OK);
    assert_int_equal(rq_coalesce_wait(w, &t, 0), RQ_OK);
    assert_int_equal(rq_coalesce_wait(w, &t2, 0), RQ_OK);
    assert_int_equal(t, t2);
    assert_int_equal(rq_coalesce_done(w, t2), RQ_OK);
    rq_coalesce_stats st;
    assert_int_equal(rq_coalesce_stat(r, &st), RQ_OK);
    assert_int_equal(st.requests, 1502);
    assert_int_equal(st.rounds, 5);
    assert_int_equal(st.wakes, 0); /* the worker never slept on a request */
    assert_int_equal(st.owed, 0);
    assert_int_equal(st.worker_live, 1);
    assert_int_equal(st.worker_pid, th_getpid());
    rq_coalesce_close(r);
    rq_coalesce_close(w);
    rq_coalesce_unlink(name);
}

static int child_wait_once(const char *arg)
{
    (void)arg;
    rq_coalesce *w;
    if (rq_coalesce_open(&w, obj_name(), RQ_CONSUMER, 0) != RQ_OK)
        return 1;
    uint64_t t;
    if (th_coalesce_wait_live(w, &t) != RQ_OK)
        return 2;
    return rq_coalesce_done(w, t) == RQ_OK ? 0 : 3;
}

static void test_sleeping_worker_is_woken(void **state)
{
    (void)state;
    const char *obj = set_obj(fresh("co.wake"));
    rq_coalesce *r = open_c(obj, RQ_PRODUCER);
    th_pid pid = th_spawn("child_wait_once", "", 10);
    rq_coalesce_stats st;
    uint64_t until = th_now_ms() + 3000;
    do { /* until it is asleep */
        th_sleep_us(1000);
        assert_int_equal(rq_coalesce_stat(r, &st), RQ_OK);
    } while (!st.waiting && th_now_ms() < until);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(st.worker_live, 1);
    assert_int_equal(rq_coalesce_request(r), RQ_OK);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_exited_ok(status));
    assert_int_equal(rq_coalesce_stat(r, &st), RQ_OK);
    assert_int_equal(st.wakes, 1);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.owed, 0);
    rq_coalesce_close(r);
    rq_coalesce_unlink(obj);
}

/* A request counted with no wake-up (what a requester killed between the
 * two steps of Windows' add-and-wake leaves; written here as a raw add to
 * the word): the sleeping worker must find it by its 1 s re-check, and
 * count it as a missed wake, the figure every other test asserts is 0. */
static int child_wait_once_unchecked(const char *arg)
{
    (void)arg;
    rq_coalesce *w;
    if (rq_coalesce_open(&w, obj_name(), RQ_CONSUMER, 0) != RQ_OK)
        return 1;
    uint64_t t;
    if (rq_coalesce_wait(w, &t, RQ_INFINITE) != RQ_OK) /* only the re-check ends it */
        return 2;
    return rq_coalesce_done(w, t) == RQ_OK ? 0 : 3;
}

static void test_request_without_a_wake_is_found_and_counted(void **state)
{
    (void)state;
    const char *obj = set_obj(fresh("co.nowake"));
    rq_coalesce *r = open_c(obj, RQ_PRODUCER);
    th_pid pid = th_spawn("child_wait_once_unchecked", "", 10);
    rq_coalesce_stats st;
    uint64_t until = th_now_ms() + 3000;
    do { /* until it is asleep */
        th_sleep_us(1000);
        assert_int_equal(rq_coalesce_stat(r, &st), RQ_OK);
    } while (!st.waiting && th_now_ms() < until);
    assert_int_equal(st.waiting, 1);
    th_sleep_us(20 * 1000);
    struct th_raw raw;
    th_raw_open(&raw, "rqc", obj);
    rq_fetch_add_u32(&((struct rqc_shm *)raw.addr)->req, 2); /* count + 1, no wake */
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_exited_ok(status));
    assert_int_equal(rq_coalesce_stat(r, &st), RQ_OK);
    assert_int_equal(st.owed, 0);
    assert_int_equal(st.wakes, 0);
    assert_int_equal(st.missed_wakes, 1);
    th_raw_close(&raw);
    rq_coalesce_close(r);
    rq_coalesce_unlink(obj);
}

static int child_take_and_die(const char *arg)
{
    (void)arg;
    rq_coalesce *w;
    if (rq_coalesce_open(&w, obj_name(), RQ_CONSUMER, 0) != RQ_OK)
        return 1;
    uint64_t t;
    if (rq_coalesce_wait(w, &t, RQ_INFINITE) != RQ_OK)
        return 2;
    rq_plat_kill_self(); /* mid-work */
    return 3;
}

static void test_worker_killed_mid_work_leaves_work_owed(void **state)
{
    (void)state;
    const char *obj = set_obj(fresh("co.dead"));
    rq_coalesce *r = open_c(obj, RQ_PRODUCER);
    assert_int_equal(rq_coalesce_request(r), RQ_OK);
    th_pid pid = th_spawn("child_take_and_die", "", 10);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_was_killed(status));
    rq_coalesce *w = open_c(obj, RQ_CONSUMER); /* taken over at once */
    uint64_t t;
    assert_int_equal(rq_coalesce_wait(w, &t, 0), RQ_OK); /* still owed */
    assert_int_equal(rq_coalesce_done(w, t), RQ_OK);
    rq_coalesce_stats st;
    assert_int_equal(rq_coalesce_stat(w, &st), RQ_OK);
    assert_int_equal(st.takeovers, 1);
    assert_int_equal(st.rounds, 2);
    rq_coalesce_close(w);
    rq_coalesce_close(r);
    rq_coalesce_unlink(obj);
}

/* ---- the storm: 10,000 requests from 4 processes during one round ------ */

#define STORM_REQUESTERS 4
#define STORM_EACH 2500

struct storm {
    rq_atomic_u32 working; /* the worker is inside its first round */
    rq_atomic_u32 go;
    rq_atomic_u64 rounds;
    rq_atomic_u32 last_wait_rc;
};
static struct storm *storm;

static int storm_worker(const char *arg)
{
    (void)arg;
    storm = th_shared("storm", sizeof *storm);
    rq_coalesce *w;
    if (rq_coalesce_open(&w, obj_name(), RQ_CONSUMER, 0) != RQ_OK)
        return 1;
    uint64_t t;
    if (th_coalesce_wait_live(w, &t) != RQ_OK)
        return 2;
    rq_fetch_add_u64(&storm->rounds, 1);
    rq_store_release_u32(&storm->working, 1);
    while (rq_load_acquire_u32(&storm->go) != 2) /* work until the storm is over */
        th_sleep_us(1000);
    rq_coalesce_done(w, t);
    int rc;
    while ((rc = rq_coalesce_wait(w, &t, 300)) == RQ_OK) {
        rq_fetch_add_u64(&storm->rounds, 1);
        rq_coalesce_done(w, t);
    }
    rq_store_release_u32(&storm->last_wait_rc, (uint32_t)-rc);
    rq_coalesce_close(w);
    return 0;
}

static int storm_requester(const char *arg)
{
    (void)arg;
    rq_coalesce *r;
    if (rq_coalesce_open(&r, obj_name(), RQ_PRODUCER, 0) != RQ_OK)
        return 1;
    for (int i = 0; i < STORM_EACH; i++)
        if (rq_coalesce_request(r) != RQ_OK)
            return 2;
    rq_coalesce_close(r);
    return 0;
}

static void test_storm_costs_one_round_and_few_wakes(void **state)
{
    (void)state;
    const char *obj = set_obj(fresh("co.storm"));
    storm = th_shared_fresh("storm", sizeof *storm);
    rq_coalesce *r = open_c(obj, RQ_PRODUCER);
    th_pid w = th_spawn("storm_worker", "", 30);
    th_sleep_us(50 * 1000);
    assert_int_equal(rq_coalesce_request(r), RQ_OK); /* starts round one */
    uint64_t until = th_now_ms() + 20000;
    while (!rq_load_acquire_u32(&storm->working)) {
        assert_true(th_now_ms() < until);
        th_sleep_us(1000);
    }
    th_pid req[STORM_REQUESTERS];
    for (int i = 0; i < STORM_REQUESTERS; i++)
        req[i] = th_spawn("storm_requester", "", 30);
    int status;
    for (int i = 0; i < STORM_REQUESTERS; i++) {
        assert_int_equal(th_wait(req[i], 20000, &status), 0);
        assert_true(th_exited_ok(status));
    }
    rq_store_release_u32(&storm->go, 2);
    assert_int_equal(th_wait(w, 20000, &status), 0);
    assert_true(th_exited_ok(status));
    rq_coalesce_stats st;
    assert_int_equal(rq_coalesce_stat(r, &st), RQ_OK);
    print_message("storm: %llu requests from %d processes during one round -> %llu rounds, "
                  "%llu wake signals, %llu worker sleeps\n",
                  (unsigned long long)st.requests, STORM_REQUESTERS,
                  (unsigned long long)rq_load_relaxed_u64(&storm->rounds),
                  (unsigned long long)st.wakes, (unsigned long long)st.waits);
    assert_int_equal(st.requests, 1 + STORM_REQUESTERS * STORM_EACH);
    assert_int_equal(rq_load_relaxed_u64(&storm->rounds), 2); /* exactly one more round */
    assert_true(st.wakes <= 3);                               /* the first edge, a handful */
    assert_int_equal(rq_load_relaxed_u32(&storm->last_wait_rc), (uint32_t)-RQ_ETIMEDOUT);
    rq_coalesce_close(r);
    rq_coalesce_unlink(obj);
}

/* ---- crash points: "no request left unserved, nothing blocks forever" -- */

#define CP_REQUESTERS 2
#define CP_EACH 30

struct ledger {
    rq_atomic_u64 version; /* what the requesters changed */
    rq_atomic_u64 served;  /* the version the last finished round saw */
    rq_atomic_u64 sent[CP_REQUESTERS];
    rq_atomic_u32 quit; /* set by the harness before its last request */
};
static struct ledger *led;

static int cp_requester(const char *arg)
{
    unsigned me = (unsigned)strtoul(arg, NULL, 10);
    led = th_shared("ledger", sizeof *led);
    rq_coalesce *r;
    if (rq_coalesce_open(&r, obj_name(), RQ_PRODUCER, 0) != RQ_OK)
        return 1;
    for (uint64_t i = rq_load_acquire_u64(&led->sent[me]); i < CP_EACH; i++) {
        rq_fetch_add_u64(&led->version, 1); /* change the state, then ask */
        if (rq_coalesce_request(r) != RQ_OK)
            return 2;
        rq_store_release_u64(&led->sent[me], i + 1);
        /* Now and then a pause longer than a round, so that the worker
         * also goes to sleep (and its sleeping-side points are hit). */
        th_sleep_us(i % 4 == 3 ? 3000 : 200);
    }
    rq_coalesce_close(r);
    return 0;
}

static int cp_worker(const char *arg)
{
    (void)arg;
    led = th_shared("ledger", sizeof *led);
    rq_coalesce *w;
    if (rq_coalesce_open(&w, obj_name(), RQ_CONSUMER, 0) != RQ_OK)
        return 1;
    for (;;) {
        uint64_t t;
        uint64_t t0 = th_now_ms();
        if (rq_coalesce_wait(w, &t, RQ_INFINITE) != RQ_OK) /* unbounded on purpose */
            return 2;
        th_check_coalesce_wakes_after(w, "rq_coalesce_wait (worker)", t0);
        int quitting = rq_load_acquire_u32(&led->quit) != 0;
        uint64_t v = rq_load_acquire_u64(&led->version);
        th_sleep_us(300); /* the work */
        rq_store_release_u64(&led->served, v);
        if (rq_coalesce_done(w, t) != RQ_OK)
            return 3;
        if (quitting)
            break;
    }
    rq_coalesce_close(w);
    return 0;
}

static unsigned long cp_kills[RQ_CP_COUNT_];

static void request_once(void)
{
    rq_coalesce *r = open_c(obj_name(), RQ_PRODUCER);
    assert_int_equal(rq_coalesce_request(r), RQ_OK);
    rq_coalesce_close(r);
}

static void run_cp_scenario(int point, char role, unsigned long hit)
{
    const char *obj = set_obj(fresh("co.cp"));
    memset(led, 0, sizeof *led);
#ifdef _WIN32
    /* Keeps the object alive while every child is down (a named mapping
     * goes with its last handle). */
    rq_coalesce *keep = open_c(obj, RQ_OBSERVER);
#else
    rq_coalesce_close(open_c(obj, RQ_OBSERVER));
#endif
    th_pid req[CP_REQUESTERS], wk;
    wk = th_spawn_armed("cp_worker", "", 30, role == 'w' ? point : -1, hit);
    for (int i = 0; i < CP_REQUESTERS; i++)
        req[i] = th_spawn_armed("cp_requester", th_stream_arg((unsigned)i), 30,
                                role == 'r' ? point : -1, hit);
    int live = CP_REQUESTERS, kills = 0;
    int phase = 0; /* 0 requesters run, 1 final change sent, 2 worker told to quit */
    uint64_t until = th_now_ms() + 20000;
    while (live > 0 || wk > 0) {
        int status;
        th_pid pid = th_wait_any(20, &status);
        if (pid == 0) {
            if (th_now_ms() > until) {
                rq_coalesce *o = open_c(obj, RQ_OBSERVER);
                rq_coalesce_stats st;
                rq_coalesce_stat(o, &st);
                rq_coalesce_close(o);
                fail_msg("%s (%c, hit %lu): blocked; requesters live %d, worker %d, final "
                         "request %s; owed %d, worker waiting %d, live %d",
                         rq_crash_point_name(point), role, hit, live, (int)wk,
                         phase == 0 ? "not made" : "made", st.owed, st.waiting, st.worker_live);
            }
            if (live == 0 && phase == 0) {
                /* requesters finished: the final change, and its request */
                rq_fetch_add_u64(&led->version, 1);
                request_once();
                phase = 1;
            } else if (phase == 1 &&
                       rq_load_acquire_u64(&led->served) == rq_load_acquire_u64(&led->version)) {
                /* every change served: tell the worker to go, and wake it */
                rq_store_release_u32(&led->quit, 1);
                request_once();
                phase = 2;
            }
            continue;
        }
        int which = -1;
        for (int i = 0; i < CP_REQUESTERS; i++)
            if (pid == req[i])
                which = i;
        assert_true(which >= 0 || pid == wk);
        if (th_was_killed(status)) {
            kills++;
            cp_kills[point]++;
            int again = kills < 3 ? point : -1; /* again, then unarmed */
            if (which >= 0)
                req[which] =
                    th_spawn_armed("cp_requester", th_stream_arg((unsigned)which), 30, again, hit);
            else
                wk = th_spawn_armed("cp_worker", "", 30, again, hit);
            continue;
        }
        if (!th_exited_ok(status))
            fail_msg("%s (%c, hit %lu): child status 0x%x", rq_crash_point_name(point), role, hit,
                     status);
        if (which >= 0) {
            req[which] = 0;
            live--;
        } else {
            wk = 0;
        }
    }
    /* every request was covered by a round that finished after it */
    assert_int_equal(rq_load_relaxed_u64(&led->served), rq_load_relaxed_u64(&led->version));
    /* A requester killed between its change and its journal entry makes
     * that change again after restart: at least one change per request. */
    assert_true(rq_load_relaxed_u64(&led->version) >= CP_REQUESTERS * CP_EACH + 1);
    for (int i = 0; i < CP_REQUESTERS; i++)
        assert_int_equal(rq_load_relaxed_u64(&led->sent[i]), CP_EACH);
    /* The worker may have left before the round for the quit request: at
     * most that one round is owed. */
    rq_coalesce *o = open_c(obj, RQ_CONSUMER);
    uint64_t t;
    if (rq_coalesce_wait(o, &t, 0) == RQ_OK)
        assert_int_equal(rq_coalesce_done(o, t), RQ_OK);
    assert_int_equal(rq_coalesce_wait(o, &t, 0), RQ_EAGAIN);
    rq_coalesce_stats st;
    assert_int_equal(rq_coalesce_stat(o, &st), RQ_OK);
    assert_int_equal(st.owed, 0);
    if (st.missed_wakes != 0) /* every wake-up must come as a wake-up */
        fail_msg("%s (%c, hit %lu): %llu wake-ups lost", rq_crash_point_name(point), role, hit,
                 (unsigned long long)st.missed_wakes);
    rq_coalesce_close(o);
#ifdef _WIN32
    rq_coalesce_close(keep);
#endif
    rq_coalesce_unlink(obj);
}

static void test_crash_points_leave_no_request_unserved(void **state)
{
    (void)state;
    led = th_shared_fresh("ledger", sizeof *led);
    unsigned long scenarios = 0, kills = 0, points = 0;
    for (int p = 0; p < RQ_CP_COUNT_; p++) {
        const char *roles = rq_crash_point_roles(p);
        char role = strchr(roles, 'r') ? 'r' : strchr(roles, 'w') ? 'w' : 0;
        if (!role)
            continue;
        for (unsigned long hit = 1; hit <= 3; hit += 2) {
            run_cp_scenario(p, role, hit);
            scenarios++;
        }
        if (!cp_kills[p])
            print_error("coalescing crash point %s was never hit\n", rq_crash_point_name(p));
        assert_true(cp_kills[p] > 0);
        points++;
        kills += cp_kills[p];
    }
    print_message("coalescing crash points: %lu points, %lu scenarios, %lu kills, every request "
                  "served, nothing blocked\n",
                  points, scenarios, kills);
}

static void test_corrupt_and_half_made_objects(void **state)
{
    (void)state;
    const char *name = fresh("co.bad");
    rq_coalesce *made = open_c(name, RQ_OBSERVER);
    struct th_raw raw;
    th_raw_open(&raw, "rqc", name);
    rq_coalesce_close(made); /* the raw view keeps it (Windows: alive) */
    struct rqc_shm *shm = (struct rqc_shm *)raw.addr;
    rq_coalesce *c = (rq_coalesce *)1;
    shm->hdr.layout_version = 9;
    assert_int_equal(rq_coalesce_open(&c, name, RQ_PRODUCER, 0), RQ_EVERSION);
    assert_null(c);
    shm->hdr.layout_version = RQC_LAYOUT_VERSION;
    shm->hdr.header_size = 64;
    assert_int_equal(rq_coalesce_open(&c, name, RQ_CONSUMER, 0), RQ_ECORRUPT);
    shm->hdr.header_size = sizeof *shm;
    rq_store_relaxed_u64(&shm->hdr.magic, 77);
    assert_int_equal(rq_coalesce_open(&c, name, RQ_OBSERVER, 0), RQ_ECORRUPT);
    /* a creator that died before magic: made again, counted */
    rq_store_relaxed_u64(&shm->hdr.magic, 0);
    c = open_c(name, RQ_OBSERVER);
    rq_coalesce_stats st;
    assert_int_equal(rq_coalesce_stat(c, &st), RQ_OK);
    assert_int_equal(st.repairs, 1);
    rq_coalesce_close(c);
#ifndef _WIN32
    /* a short object with the right magic is corrupt, never read past its
     * end.  (Windows: an object is whole pages, and a coalescing object is
     * smaller than one page, so it cannot be short.) */
    char path[256];
    snprintf(path, sizeof path, "/rqc.%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 100), 0);
    close(fd);
    assert_int_equal(rq_coalesce_open(&c, name, RQ_OBSERVER, 0), RQ_ECORRUPT);
#endif
    th_raw_close(&raw);
    rq_coalesce_unlink(name);
}

/* A peer that rewrites the request word between each load and CAS of a
 * request: at the step before the bump it moves the count on and back
 * again, never setting WAITING, so every CAS loses.  Past FLIP_LIMIT
 * steps it stops (a request still looping then makes the test fail
 * rather than hang). */
#define FLIP_LIMIT 10000
struct flipper {
    rq_atomic_u32 *req;
    unsigned long steps;
};

static void flip_the_count(void *arg)
{
    struct flipper *f = arg;
    if (++f->steps > FLIP_LIMIT)
        return;
    uint32_t r = rq_load_relaxed_u32(f->req);
    rq_store_relaxed_u32(f->req, f->steps % 2 ? r + 2 : r - 2);
}

static void test_a_peer_rewriting_the_word_cannot_hold_a_request_up(void **state)
{
    (void)state;
    const char *name = fresh("co.flip");
    rq_coalesce *w = open_c(name, RQ_WORKER), *r = open_c(name, RQ_REQUESTER);
    struct th_raw raw;
    th_raw_open(&raw, "rqc", name);
    struct rqc_shm *shm = (struct rqc_shm *)raw.addr;
    rq_coalesce_stats before, after;
    assert_int_equal(rq_coalesce_stat(r, &before), RQ_OK);
    struct flipper f = {&shm->req, 0};
    rq_crash_point_run(RQ_CP_COALESCE_REQUEST_BEFORE_BUMP, flip_the_count, &f);
    int rc = rq_coalesce_request(r);
    rq_crash_point_run(-1, NULL, NULL);
    assert_int_equal(rc, RQ_OK);
    if (f.steps > 100)
        fail_msg("the request looped %lu times on a word a peer kept rewriting", f.steps);
    assert_true(f.steps >= 2); /* the CAS lost at least once: the peer was there */
    /* registered, and counted as a wake (it added and woke) */
    assert_int_equal(rq_coalesce_stat(r, &after), RQ_OK);
    assert_int_equal(after.requests, before.requests + 1);
    assert_int_equal(after.wakes, before.wakes + 1);
    assert_true(after.owed);
    uint64_t ticket;
    assert_int_equal(rq_coalesce_wait(w, &ticket, 0), RQ_OK);
    assert_int_equal(rq_coalesce_done(w, ticket), RQ_OK);
    assert_int_equal(rq_coalesce_wait(w, &ticket, 0), RQ_EAGAIN);
    th_raw_close(&raw);
    rq_coalesce_close(r);
    rq_coalesce_close(w);
    rq_coalesce_unlink(name);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_CHILD(child_wait_once),    TH_CHILD(child_wait_once_unchecked),
        TH_CHILD(child_take_and_die), TH_CHILD(storm_worker),
        TH_CHILD(storm_requester),    TH_CHILD(cp_requester),
        TH_CHILD(cp_worker),
    };
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_errors_and_roles),
#ifndef _WIN32
        cmocka_unit_test(test_mode_is_exact_despite_umask),
#endif
        cmocka_unit_test(test_requests_coalesce_into_rounds),
        cmocka_unit_test(test_sleeping_worker_is_woken),
        cmocka_unit_test(test_request_without_a_wake_is_found_and_counted),
        cmocka_unit_test(test_worker_killed_mid_work_leaves_work_owed),
        cmocka_unit_test(test_storm_costs_one_round_and_few_wakes),
        cmocka_unit_test(test_crash_points_leave_no_request_unserved),
        cmocka_unit_test(test_corrupt_and_half_made_objects),
        cmocka_unit_test(test_a_peer_rewriting_the_word_cannot_hold_a_request_up),
    };
    return cmocka_run_group_tests_name("coalesce", tests, NULL, NULL);
}
