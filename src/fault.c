/*
 * fault.c - the OS-call fault injector of test builds (see fault.h).
 * OS-neutral: the platform file turns an injected failure into errno or
 * GetLastError.  Counters are atomic because a Windows role keeper makes
 * injectable calls on a thread of its own.
 *
 * Tested by test_faults, which fails every call of both platform tables.
 */
#include "fault.h"

#include <string.h>

#include "atomics.h"

static rq_atomic_u64 calls[RQ_FAULT_CALLS_MAX];
static rq_atomic_u64 calls_total;
static rq_atomic_u64 injected;
static rq_atomic_u32 last_call; /* id + 1; 0: none */

/* Armed: armed_left > 0 counts down the matching calls to the failing one. */
static rq_atomic_u32 armed_left;
static rq_atomic_u32 armed_call; /* id + 1; 0: any call */
static rq_atomic_u64 armed_error;

static int call_count(void)
{
    int n = 0;
    while (n < RQ_FAULT_CALLS_MAX && rq_fault_call_names[n])
        n++;
    return n;
}

/* rq_fault_before: counts down the calls of before_call (id + 1) */
static rq_atomic_u32 before_left;
static rq_atomic_u32 before_call;
static void (*before_fn)(void *);
static void *before_arg;

/* Runs the rq_fault_before action if this call of CALL is its turn. */
static void run_before(int call)
{
    uint32_t left = rq_load_seq_u32(&before_left);
    if (left == 0 || rq_load_seq_u32(&before_call) != (uint32_t)call + 1)
        return;
    while (left > 0) {
        if (rq_cas_u32(&before_left, &left, left - 1)) {
            if (left == 1)
                before_fn(before_arg); /* disarmed already: FN may make calls */
            return;
        }
    }
}

int rq_fault_hit(int call, unsigned long *error)
{
    if (call < 0 || call >= RQ_FAULT_CALLS_MAX)
        return 0;
    rq_fetch_add_u64(&calls[call], 1);
    rq_fetch_add_u64(&calls_total, 1);
    run_before(call);
    uint32_t left = rq_load_seq_u32(&armed_left);
    uint32_t which = rq_load_seq_u32(&armed_call);
    if (left == 0 || (which != 0 && which != (uint32_t)call + 1))
        return 0;
    /* Count down; of racing threads, exactly one takes the last step. */
    while (left > 0) {
        if (rq_cas_u32(&armed_left, &left, left - 1)) {
            if (left != 1)
                return 0;
            *error = (unsigned long)rq_load_acquire_u64(&armed_error);
            rq_fetch_add_u64(&injected, 1);
            rq_store_seq_u32(&last_call, (uint32_t)call + 1);
            return 1;
        }
    }
    return 0;
}

int rq_fault_lookup(const char *name)
{
    int n = call_count();
    for (int i = 0; name && i < n; i++)
        if (strcmp(rq_fault_call_names[i], name) == 0)
            return i;
    return -1;
}

const char *rq_fault_name(int call)
{
    return call >= 0 && call < call_count() ? rq_fault_call_names[call] : NULL;
}

void rq_fault_arm(int call, unsigned long nth, unsigned long error)
{
    rq_fault_disarm();
    rq_store_seq_u32(&armed_call, call < 0 ? 0 : (uint32_t)call + 1);
    rq_store_release_u64(&armed_error, error);
    rq_store_seq_u32(&armed_left, nth > UINT32_MAX ? UINT32_MAX : (uint32_t)nth);
}

void rq_fault_disarm(void)
{
    rq_store_seq_u32(&armed_left, 0);
}

void rq_fault_before(int call, unsigned long nth, void (*fn)(void *), void *arg)
{
    rq_store_seq_u32(&before_left, 0);
    before_fn = fn;
    before_arg = arg;
    rq_store_seq_u32(&before_call, (uint32_t)call + 1);
    rq_store_seq_u32(&before_left, nth > UINT32_MAX ? UINT32_MAX : (uint32_t)nth);
}

unsigned long rq_fault_calls(int call)
{
    if (call < 0)
        return (unsigned long)rq_load_acquire_u64(&calls_total);
    return call < RQ_FAULT_CALLS_MAX ? (unsigned long)rq_load_acquire_u64(&calls[call]) : 0;
}

unsigned long rq_fault_injected(void)
{
    return (unsigned long)rq_load_acquire_u64(&injected);
}

int rq_fault_last(void)
{
    return (int)rq_load_seq_u32(&last_call) - 1;
}

void rq_fault_reset(void)
{
    rq_fault_disarm();
    rq_store_seq_u32(&before_left, 0);
    for (int i = 0; i < RQ_FAULT_CALLS_MAX; i++)
        rq_store_release_u64(&calls[i], 0);
    rq_store_release_u64(&calls_total, 0);
    rq_store_release_u64(&injected, 0);
    rq_store_seq_u32(&last_call, 0);
}
