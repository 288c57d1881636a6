/*
 * crashpoint.c - the test build's crash points (see crashpoint.h).
 *
 * Tested by test_crash, test_mpsc_lock and test_coalesce, which kill a
 * child at each point and check that every point is reached.
 */
#include "crashpoint.h"

#include <string.h>

#include "platform.h"

static const char *const point_names[RQ_CP_COUNT_] = {
#define RQ_CRASH_NAME_(id, name, roles) name,
    RQ_CRASH_POINT_MAP(RQ_CRASH_NAME_)
#undef RQ_CRASH_NAME_
};

static const char *const point_roles[RQ_CP_COUNT_] = {
#define RQ_CRASH_ROLES_(id, name, roles) roles,
    RQ_CRASH_POINT_MAP(RQ_CRASH_ROLES_)
#undef RQ_CRASH_ROLES_
};

/* Process-local; the test harness arms a child before it runs.  The
 * counters are atomic because threads of one process hit points
 * concurrently (test_threads under ThreadSanitizer); armed_id is a plain
 * int, written only by rq_crash_point_arm / _reset before the threads
 * that hit points start (a test arms, then runs the operation). */
static rq_atomic_u64 hits[RQ_CP_COUNT_];
static int armed_id = -1;
static rq_atomic_u64 armed_countdown;

const char *rq_crash_point_name(int id)
{
    return (id >= 0 && id < RQ_CP_COUNT_) ? point_names[id] : NULL;
}

const char *rq_crash_point_roles(int id)
{
    return (id >= 0 && id < RQ_CP_COUNT_) ? point_roles[id] : NULL;
}

int rq_crash_point_lookup(const char *name)
{
    for (int i = 0; name && i < RQ_CP_COUNT_; i++)
        if (strcmp(point_names[i], name) == 0)
            return i;
    return -1;
}

void rq_crash_point_arm(int id, unsigned long hit)
{
    armed_id = (id >= 0 && id < RQ_CP_COUNT_ && hit > 0) ? id : -1;
    rq_store_relaxed_u64(&armed_countdown, hit);
}

unsigned long rq_crash_point_hits(int id)
{
    return (id >= 0 && id < RQ_CP_COUNT_) ? (unsigned long)rq_load_relaxed_u64(&hits[id]) : 0;
}

/* The action of rq_crash_point_run: process-local, set by a test while
 * no other thread passes the point. */
static int run_id = -1;
static void (*run_fn)(void *);
static void *run_arg;

void rq_crash_point_run(int id, void (*fn)(void *), void *arg)
{
    run_fn = fn;
    run_arg = arg;
    run_id = (id >= 0 && id < RQ_CP_COUNT_ && fn) ? id : -1;
}

void rq_crash_point_reset(void)
{
    for (int i = 0; i < RQ_CP_COUNT_; i++)
        rq_store_relaxed_u64(&hits[i], 0);
    armed_id = -1;
    run_id = -1;
}

void rq_crash_point_hit(enum rq_crash_point_id id)
{
    rq_fetch_add_u64(&hits[id], 1);
    if ((int)id == run_id)
        run_fn(run_arg);
    if ((int)id == armed_id && rq_fetch_sub_u64(&armed_countdown, 1) == 1)
        rq_plat_kill_self();
}
