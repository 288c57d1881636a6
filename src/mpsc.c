/*
 * mpsc.c - the MPSC producers' lock (see mpsc.h).
 *
 * What the lock protects: the choice of the next slot (write_offset), the
 * slot's bytes, and the one store that publishes it.  A producer that dies
 * holding it has either not published (its slot is unseen and the next
 * holder overwrites it) or has (the message is delivered).  So "owner
 * died" needs no repair, only the OS's consistent-again step, which the
 * platform does before returning.
 */
#include "mpsc.h"

#include "crashpoint.h"
#include "deadline.h"
#include "rq.h"

int rq_mpsc_init(rq_plat_segment *seg, struct rq_shm *shm)
{
    return rq_plat_mutex_init(seg, shm->lock_area);
}

/* Waits for the lock in slices of at most RQ_RECHECK_MS, like every other
 * sleep in rq: an owner killed inside its unlock, between freeing the lock
 * word and waking the waiters, would otherwise leave them asleep for good
 * (kernels before 5.6 did not wake them on its death). */
static int lock_in_slices(rq_plat_segment *seg, struct rq_shm *shm, int timeout_ms,
                          int *recovered)
{
    /* Uncontended, the lock is taken by a plain try: a timed lock reads
     * the clock first, which costs more than the lock itself on a VM. */
    int rc = rq_plat_mutex_lock(seg, shm->lock_area, 0, recovered);
    if (rc != RQ_EAGAIN || timeout_ms == 0)
        return rc;
    struct rq_deadline d = rq_deadline_start(timeout_ms);
    for (;;) {
        int left = rq_deadline_left(&d), is_slice = 0;
        int slice = left == 0 ? 0 : rq_deadline_slice(left, &is_slice);
        rc = rq_plat_mutex_lock(seg, shm->lock_area, slice, recovered);
        if (rc != RQ_ETIMEDOUT || !is_slice)
            return rc;
    }
}

int rq_mpsc_lock(rq_plat_segment *seg, struct rq_shm *shm, int timeout_ms)
{
    int recovered = 0;
    int rc = lock_in_slices(seg, shm, timeout_ms, &recovered);
    if (rc < 0)
        return rc;
    RQ_CRASH_POINT(MPSC_AFTER_LOCK);
    if (recovered) {
        rq_fetch_add_u64(&shm->admin.lock_recoveries, 1);
        RQ_CRASH_POINT(MPSC_AFTER_RECOVER);
    }
    return RQ_OK;
}

void rq_mpsc_unlock(rq_plat_segment *seg, struct rq_shm *shm)
{
    RQ_CRASH_POINT(MPSC_BEFORE_UNLOCK);
    rq_plat_mutex_unlock(seg, shm->lock_area);
}
