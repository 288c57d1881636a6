/*
 * test_coalesce.c - src/coalesce.c: coalescing requests across processes.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "crashpoint.h"
#include "helpers.h"
#include "layout.h"
#include "rq.h"

static const char *obj; /* the object the children open */

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
    assert_int_equal(rq_coalesce_unlink(name), RQ_OK);
    assert_int_equal(rq_coalesce_unlink(name), RQ_ENOENT);
    assert_int_equal(rq_coalesce_unlink("a b"), RQ_EINVAL);
}

#ifndef _WIN32
/* Same permission rule as queues: exactly MODE (0 means 0600), whatever
 * the umask. */
static void test_mode_is_exact_despite_umask(void **state)
{
    (void)state;
    mode_t old = umask(077);
    const struct { uint32_t asked, want; } cases[] = {{0640, 0640}, {0, 0600}, {0666, 0666}};
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
    assert_int_equal(st.worker_pid, getpid());
    rq_coalesce_close(r);
    rq_coalesce_close(w);
    rq_coalesce_unlink(name);
}

static int child_wait_once(void *arg)
{
    (void)arg;
    rq_coalesce *w;
    if (rq_coalesce_open(&w, obj, RQ_CONSUMER, 0) != RQ_OK)
        return 1;
    uint64_t t;
    if (rq_coalesce_wait(w, &t, RQ_INFINITE) != RQ_OK)
        return 2;
    return rq_coalesce_done(w, t) == RQ_OK ? 0 : 3;
}

static void test_sleeping_worker_is_woken(void **state)
{
    (void)state;
    obj = fresh("co.wake");
    rq_coalesce *r = open_c(obj, RQ_PRODUCER);
    pid_t pid = th_spawn(child_wait_once, NULL, 10);
    rq_coalesce_stats st;
    for (int i = 0; i < 1000; i++) { /* until it is asleep */
        assert_int_equal(rq_coalesce_stat(r, &st), RQ_OK);
        if (st.waiting)
            break;
        usleep(1000);
    }
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

static int child_take_and_die(void *arg)
{
    (void)arg;
    rq_coalesce *w;
    if (rq_coalesce_open(&w, obj, RQ_CONSUMER, 0) != RQ_OK)
        return 1;
    uint64_t t;
    if (rq_coalesce_wait(w, &t, RQ_INFINITE) != RQ_OK)
        return 2;
    kill(getpid(), SIGKILL); /* mid-work */
    return 3;
}

static void test_worker_killed_mid_work_leaves_work_owed(void **state)
{
    (void)state;
    obj = fresh("co.dead");
    rq_coalesce *r = open_c(obj, RQ_PRODUCER);
    assert_int_equal(rq_coalesce_request(r), RQ_OK);
    pid_t pid = th_spawn(child_take_and_die, NULL, 10);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_killed_by(status, SIGKILL));
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

static int storm_worker(void *arg)
{
    (void)arg;
    rq_coalesce *w;
    if (rq_coalesce_open(&w, obj, RQ_CONSUMER, 0) != RQ_OK)
        return 1;
    uint64_t t;
    if (rq_coalesce_wait(w, &t, RQ_INFINITE) != RQ_OK)
        return 2;
    rq_fetch_add_u64(&storm->rounds, 1);
    rq_store_release_u32(&storm->working, 1);
    while (rq_load_acquire_u32(&storm->go) != 2) /* work until the storm is over */
        usleep(1000);
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

static int storm_requester(void *arg)
{
    (void)arg;
    rq_coalesce *r;
    if (rq_coalesce_open(&r, obj, RQ_PRODUCER, 0) != RQ_OK)
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
    obj = fresh("co.storm");
    storm = th_shared_alloc(sizeof *storm);
    rq_coalesce *r = open_c(obj, RQ_PRODUCER);
    pid_t w = th_spawn(storm_worker, NULL, 30);
    usleep(50 * 1000);
    assert_int_equal(rq_coalesce_request(r), RQ_OK); /* starts round one */
    while (!rq_load_acquire_u32(&storm->working))
        usleep(1000);
    pid_t req[STORM_REQUESTERS];
    for (int i = 0; i < STORM_REQUESTERS; i++)
        req[i] = th_spawn(storm_requester, NULL, 30);
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
    th_shared_free(storm, sizeof *storm);
}

/* ---- crash points: "no request left unserved, nothing blocks forever" -- */

#define CP_REQUESTERS 2
#define CP_EACH 30

struct ledger {
    rq_atomic_u64 version;    /* what the requesters changed */
    rq_atomic_u64 served;     /* the version the last finished round saw */
    rq_atomic_u64 sent[CP_REQUESTERS];
    rq_atomic_u32 quit;       /* set by the harness before its last request */
};
static struct ledger *led;

static int cp_requester(void *arg)
{
    unsigned me = (unsigned)(intptr_t)arg;
    rq_coalesce *r;
    if (rq_coalesce_open(&r, obj, RQ_PRODUCER, 0) != RQ_OK)
        return 1;
    for (uint64_t i = rq_load_acquire_u64(&led->sent[me]); i < CP_EACH; i++) {
        rq_fetch_add_u64(&led->version, 1); /* change the state, then ask */
        if (rq_coalesce_request(r) != RQ_OK)
            return 2;
        rq_store_release_u64(&led->sent[me], i + 1);
        /* Now and then a pause longer than a round, so that the worker
         * also goes to sleep (and its sleeping-side points are hit). */
        usleep(i % 4 == 3 ? 3000 : 200);
    }
    rq_coalesce_close(r);
    return 0;
}

static int cp_worker(void *arg)
{
    (void)arg;
    rq_coalesce *w;
    if (rq_coalesce_open(&w, obj, RQ_CONSUMER, 0) != RQ_OK)
        return 1;
    for (;;) {
        uint64_t t;
        if (rq_coalesce_wait(w, &t, RQ_INFINITE) != RQ_OK) /* unbounded on purpose */
            return 2;
        int quitting = rq_load_acquire_u32(&led->quit) != 0;
        uint64_t v = rq_load_acquire_u64(&led->version);
        usleep(300); /* the work */
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
    rq_coalesce *r = open_c(obj, RQ_PRODUCER);
    assert_int_equal(rq_coalesce_request(r), RQ_OK);
    rq_coalesce_close(r);
}

static void run_cp_scenario(int point, char role, unsigned long hit)
{
    obj = fresh("co.cp");
    memset(led, 0, sizeof *led);
    rq_coalesce_close(open_c(obj, RQ_OBSERVER));
    pid_t req[CP_REQUESTERS], wk;
    rq_crash_point_arm(role == 'w' ? point : -1, hit);
    wk = th_spawn(cp_worker, NULL, 30);
    rq_crash_point_arm(role == 'r' ? point : -1, hit);
    for (int i = 0; i < CP_REQUESTERS; i++)
        req[i] = th_spawn(cp_requester, (void *)(intptr_t)i, 30);
    rq_crash_point_arm(-1, 0);
    int live = CP_REQUESTERS, kills = 0;
    int phase = 0; /* 0 requesters run, 1 final change sent, 2 worker told to quit */
    uint64_t until = th_now_ms() + 20000;
    while (live > 0 || wk > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
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
            usleep(200);
            continue;
        }
        int which = -1;
        for (int i = 0; i < CP_REQUESTERS; i++)
            if (pid == req[i])
                which = i;
        assert_true(which >= 0 || pid == wk);
        if (th_killed_by(status, SIGKILL)) {
            kills++;
            cp_kills[point]++;
            rq_crash_point_arm(kills < 3 ? point : -1, hit); /* again, then unarmed */
            if (which >= 0)
                req[which] = th_spawn(cp_requester, (void *)(intptr_t)which, 30);
            else
                wk = th_spawn(cp_worker, NULL, 30);
            rq_crash_point_arm(-1, 0);
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
    rq_coalesce_unlink(obj);
}

static void test_crash_points_leave_no_request_unserved(void **state)
{
    (void)state;
    led = th_shared_alloc(sizeof *led);
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
    th_shared_free(led, sizeof *led);
}

static void test_corrupt_and_half_made_objects(void **state)
{
    (void)state;
    const char *name = fresh("co.bad");
    rq_coalesce_close(open_c(name, RQ_OBSERVER));
    char path[256];
    snprintf(path, sizeof path, "/rqc.%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    assert_true(fd >= 0);
    struct rqc_shm *shm =
        mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(shm != MAP_FAILED);
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
    /* a short object with the right magic is corrupt, never read past its end */
    assert_int_equal(ftruncate(fd, 100), 0);
    assert_int_equal(rq_coalesce_open(&c, name, RQ_OBSERVER, 0), RQ_ECORRUPT);
    munmap(shm, sizeof *shm);
    close(fd);
    rq_coalesce_unlink(name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_errors_and_roles),
#ifndef _WIN32
        cmocka_unit_test(test_mode_is_exact_despite_umask),
#endif
        cmocka_unit_test(test_requests_coalesce_into_rounds),
        cmocka_unit_test(test_sleeping_worker_is_woken),
        cmocka_unit_test(test_worker_killed_mid_work_leaves_work_owed),
        cmocka_unit_test(test_storm_costs_one_round_and_few_wakes),
        cmocka_unit_test(test_crash_points_leave_no_request_unserved),
        cmocka_unit_test(test_corrupt_and_half_made_objects),
    };
    return cmocka_run_group_tests_name("coalesce", tests, NULL, NULL);
}
