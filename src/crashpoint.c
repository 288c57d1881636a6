/*
 * crashpoint.c - the test build's crash points (see crashpoint.h).
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

/* Process-local: a forked child inherits the parent's arming, which is how
 * the tests arm a child before it runs. */
static unsigned long hits[RQ_CP_COUNT_];
static int armed_id = -1;
static unsigned long armed_countdown;

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
    armed_countdown = hit;
}

unsigned long rq_crash_point_hits(int id)
{
    return (id >= 0 && id < RQ_CP_COUNT_) ? hits[id] : 0;
}

void rq_crash_point_reset(void)
{
    memset(hits, 0, sizeof hits);
    armed_id = -1;
}

void rq_crash_point_hit(enum rq_crash_point_id id)
{
    hits[id]++;
    if ((int)id == armed_id && --armed_countdown == 0)
        rq_plat_kill_self();
}
