/*
 * fault.h - OS-call fault injection for test builds.
 *
 * The idea is SQLite's (os_unix.c sends every system call through one
 * table, so a test can make any of them fail): each platform file keeps a
 * table of the OS calls it makes that can fail (rq_fault_call_names) and
 * makes each such call through a gate, RQ_SYS / RQ_SYS_RET (at the end of
 * this file; the platform file says how its OS reports an error).  A test
 * then says "fail the N-th call from now (of any call, or of call C) with
 * error E", and the gate returns the call's failure value with errno (or
 * GetLastError) set to E instead of calling the OS.
 *
 * Built in only with RQ_FAULT_INJECTION (the rq_testing library of the
 * debug, asan and mingw presets).  Otherwise the gates are the bare calls.
 *
 * Not routed, on purpose: releases (close, munmap, unlock, CloseHandle,
 * ReleaseMutex, a keeper thread's wait for its release), which cannot fail
 * on a valid object and which rq has no way to report; and calls that
 * cannot fail (getpid, clock_gettime(CLOCK_MONOTONIC), QueryPerformance*).
 */
#ifndef RQ_FAULT_H
#define RQ_FAULT_H

/* From a platform file's X-macro list of its injectable calls,
 * CALLS(XX) with XX(ID, "name"): enum fault_call (FAULT_ID) and, in a
 * test build, the name table below. */
#define RQ_FAULT_ENUM_(id, name) FAULT_##id,
#define RQ_FAULT_NAME_(id, name) name,
#ifdef RQ_FAULT_INJECTION
/* clang-format off */
#define RQ_FAULT_TABLE(CALLS)                                                  \
    enum fault_call { CALLS(RQ_FAULT_ENUM_) };                                 \
    const char *const rq_fault_call_names[] = {CALLS(RQ_FAULT_NAME_) NULL};    \
    _Static_assert(sizeof rq_fault_call_names / sizeof *rq_fault_call_names <= \
                       RQ_FAULT_CALLS_MAX + 1,                                 \
                   "the fault table fits")
/* clang-format on */
#else
#define RQ_FAULT_TABLE(CALLS) enum fault_call { CALLS(RQ_FAULT_ENUM_) }
#endif

#ifdef RQ_FAULT_INJECTION

/* The platform's table: the name of each injectable call, NULL-terminated,
 * indexed by the platform's call ids (below RQ_FAULT_CALLS_MAX). */
#define RQ_FAULT_CALLS_MAX 32
extern const char *const rq_fault_call_names[];

/* The gate: counts one call of CALL and returns 1 if it must fail now,
 * with the error to report in *ERROR.  Safe from any thread. */
int rq_fault_hit(int call, unsigned long *error);

/* ---- test controls ---------------------------------------------------- */

/* The id of the call named NAME ("shm_open", "MapViewOfFile"), or -1. */
int rq_fault_lookup(const char *name);
/* The name of call id CALL, or NULL. */
const char *rq_fault_name(int call);
/* Fails the NTH call from now (1 = the next one) of CALL (< 0: of any
 * injectable call) with ERROR; once, then disarms itself. */
void rq_fault_arm(int call, unsigned long nth, unsigned long error);
void rq_fault_disarm(void);
/* Runs FN(ARG) once, in the calling thread, just before the NTH call from
 * now of CALL is made (or fails): a test's way to act at an exact point
 * inside an operation, such as a peer's signal landing between a waiter's
 * last check and its sleep.  FN may call rq itself. */
void rq_fault_before(int call, unsigned long nth, void (*fn)(void *), void *arg);
/* Calls of CALL (< 0: of all calls) seen since the last reset. */
unsigned long rq_fault_calls(int call);
/* Failures injected since the last reset, and the call of the last one
 * (-1 if none). */
unsigned long rq_fault_injected(void);
int rq_fault_last(void);
/* Disarms (faults and rq_fault_before) and zeroes every count. */
void rq_fault_reset(void);

#endif /* RQ_FAULT_INJECTION */

/* ---- the gate, for a platform file ------------------------------------ */

/* A platform file says how its OS reports a failed call's error before it
 * includes this header: RQ_OS_ERROR_SET(E) stores error E (errno = E,
 * SetLastError(E)) and RQ_OS_ERROR() reads it back. */
#ifdef RQ_OS_ERROR_SET
#ifdef RQ_FAULT_INJECTION
static inline int rq_fault_now(int call)
{
    unsigned long err;
    if (!rq_fault_hit(call, &err))
        return 0;
    RQ_OS_ERROR_SET(err);
    return 1;
}
/* CALL fails as it would (FAILED: -1, NULL, MAP_FAILED, FALSE, WAIT_FAILED,
 * 0) with the OS error set ... */
#define RQ_SYS(id, call, failed) (rq_fault_now(FAULT_##id) ? (failed) : (call))
/* ... or, for calls that return an error number (posix_fallocate,
 * GetSecurityInfo), returns it. */
#define RQ_SYS_RET(id, call) (rq_fault_now(FAULT_##id) ? RQ_OS_ERROR() : (call))
#else
#define RQ_SYS(id, call, failed) (call)
#define RQ_SYS_RET(id, call) (call)
#endif
#endif /* RQ_OS_ERROR_SET */

#endif /* RQ_FAULT_H */
