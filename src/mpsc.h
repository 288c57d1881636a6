/*
 * mpsc.h - the lock that serialises producers of an RQ_MPSC queue.
 * OS-neutral; the lock itself is the platform's robust mutex.
 */
#ifndef RQ_MPSC_H
#define RQ_MPSC_H

#include "layout.h"
#include "platform.h"

/* Makes the lock in a new segment (creator, under the init lock). */
int rq_mpsc_init(rq_plat_segment *seg, struct rq_shm *shm);

/* Takes the producers' lock.  A lock abandoned by a dead producer is taken
 * as if it had been released normally (and counted in
 * admin.lock_recoveries): the critical section is consistent at every
 * instruction, so there is nothing to repair.  TIMEOUT_MS as for
 * rq_plat_mutex_lock. */
int rq_mpsc_lock(rq_plat_segment *seg, struct rq_shm *shm, int timeout_ms);
void rq_mpsc_unlock(rq_plat_segment *seg, struct rq_shm *shm);

#endif /* RQ_MPSC_H */
