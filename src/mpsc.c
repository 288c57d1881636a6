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
#include "rq.h"

int rq_mpsc_init(rq_plat_segment *seg, struct rq_shm *shm)
{
    return rq_plat_mutex_init(seg, shm->lock_area);
}

int rq_mpsc_lock(rq_plat_segment *seg, struct rq_shm *shm, int timeout_ms)
{
    int recovered = 0;
    int rc = rq_plat_mutex_lock(seg, shm->lock_area, timeout_ms, &recovered);
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
