/*
 * queue_stat.c - rq_stat (counts, positions, who is attached, the MPSC
 * lock's holder) and the record queue's inspection (rq_stat_records,
 * rq_dump_records).  Reads only: every value read from the segment is
 * checked or shown as read.  OS-neutral.
 */
#include <stdlib.h>
#include <string.h>

#include "crashpoint.h"
#include "deadline.h"
#include "queue_impl.h"

/* ---- statistics ------------------------------------------------------ */

/* 1 if ROLE is held by a live handle, 0 if not, ROLE_UNKNOWN if this
 * handle cannot tell (an observer without the lock object), or the rq_error
 * of a probe that failed (never taken for "not live"). */
#define ROLE_UNKNOWN 2
static int role_live(rq *q, int role, enum rq_plat_lock_id id)
{
    if (q->role == role)
        return 1;
    if (!rq_plat_segment_has_locks(q->segment.plat))
        return ROLE_UNKNOWN;
    int held = rq_plat_lock_probe(q->segment.plat, id);
    return held < 0 ? held : held > 0;
}

/* Both offsets, as a pair that was true at one moment.  A reader that owns
 * neither (an observer, an MPSC producer) can see the producer move on and
 * the consumer follow between its two loads, so a pair that looks further
 * apart than N is read again; only one that stays wrong is corrupt. */
static int read_offset_pair(rq *q, uint32_t *write, uint32_t *read)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        *write = rq_load_acquire_u32(&q->shm->write_offset);
        *read = rq_load_acquire_u32(&q->shm->read_offset);
        if (*write >= q->ring.two_n || *read >= q->ring.two_n)
            return RQ_ECORRUPT;
        if (rq_ring_pair_ok(&q->ring, *write, *read))
            return RQ_OK;
    }
    return RQ_ECORRUPT;
}

/* The offset pair into ST and the messages pushed and popped since
 * creation: the positions (section 3 of docs/design.md), made exact from
 * the offsets, so that no per-message statistics store is needed.  Each
 * stored position is loaded before the offsets (acquire): a copy stored
 * after the offset load would be ahead of that offset, and the number
 * derived from the two a lap (2N) too far.  If a copy moved by the time
 * the offsets are read, again: the offset could then be 2N or more past
 * the copy loaded.  Returns read_offset_pair's result; when that is not
 * RQ_OK, pushed and popped are the stored copies themselves. */
static int message_counts(rq *q, rq_stats *st)
{
    int rc = RQ_ECORRUPT;
    for (int attempt = 0; attempt < POSITION_TRIES; attempt++) {
        uint64_t w = rq_load_acquire_u64(&q->shm->write_position);
        uint64_t r = rq_load_acquire_u64(&q->shm->read_position);
        rc = read_offset_pair(q, &st->write_offset, &st->read_offset);
        st->pushed = rc == RQ_OK ? rq_ring_position(&q->ring, w, st->write_offset) : w;
        st->popped = rc == RQ_OK ? rq_ring_position(&q->ring, r, st->read_offset) : r;
        if (rc < 0 || (rq_load_acquire_u64(&q->shm->write_position) == w &&
                       rq_load_acquire_u64(&q->shm->read_position) == r))
            break;
    }
    return rc;
}

/* rq_stat's wait, wake, takeover and recovery counters, and who holds
 * the MPSC lock. */
static void stat_counters(rq *q, rq_stats *st)
{
    struct rq_shm *shm = q->shm;
    st->producer_waits = rq_load_relaxed_u64(&shm->producer.waits);
    st->consumer_waits = rq_load_relaxed_u64(&shm->consumer.waits);
    st->producer_wakes = rq_load_relaxed_u64(&shm->producer.wakes);
    st->consumer_wakes = rq_load_relaxed_u64(&shm->consumer.wakes);
    st->producer_missed_wakes = rq_load_relaxed_u64(&shm->producer.missed_wakes);
    st->consumer_missed_wakes = rq_load_relaxed_u64(&shm->consumer.missed_wakes);
    st->producer_takeovers = rq_load_relaxed_u64(&shm->producer.takeovers);
    st->consumer_takeovers = rq_load_relaxed_u64(&shm->consumer.takeovers);
    st->lock_recoveries = rq_load_relaxed_u64(&shm->admin.lock_recoveries);
    st->dead_reservations = rq_load_relaxed_u64(&shm->admin.dead_reservations);
    st->lock_held_ms = -1;
    if (q->mpsc) {
        struct rq_mpsc_holder holder;
        rq_mpsc_holder(shm, &holder);
        st->lock_holder_pid = holder.pid;
        st->lock_held_ms = holder.held_ms;
        st->lock_reserving = holder.reserving;
    }
}

int rq_stat(rq *q, rq_stats *st)
{
    if (!q || !st)
        return RQ_EINVAL;
    if (!opened_in_this_process(q))
        return RQ_EFORK;
    struct rq_shm *shm = q->shm;
    memset(st, 0, sizeof *st);
    st->slot_count =
        q->rec ? ((const struct rq_shm_header *)q->segment.header.bytes)->slot_count : q->ring.n;
    st->slot_size = (uint32_t)q->ring.slot_size;
    st->flags = (q->mpsc ? RQ_MPSC : 0) | (q->ring.full_fences ? RQ_FULL_FENCES : 0) |
                (q->rec ? RQ_RECORDS : 0);
    uint32_t records = 0;
    int rc;
    if (q->rec) {
        rc = rq_rec_offsets(q->rec, &st->write_offset, &st->read_offset, &records, &st->pushed,
                            &st->popped);
    } else {
        rc = message_counts(q, st);
    }
    stat_counters(q, st);
    st->repairs = rq_load_relaxed_u64(&shm->admin.repairs);
    st->producer_pid = (int64_t)rq_load_relaxed_u64(&shm->producer.pid);
    st->consumer_pid = (int64_t)rq_load_relaxed_u64(&shm->consumer.pid);
    int producer_live = role_live(q, RQ_PRODUCER, RQ_LOCK_PRODUCER);
    int consumer_live = producer_live < 0 ? 0 : role_live(q, RQ_CONSUMER, RQ_LOCK_CONSUMER);
    st->producer_live = producer_live == ROLE_UNKNOWN ? -1 : producer_live > 0;
    st->consumer_live = consumer_live == ROLE_UNKNOWN ? -1 : consumer_live > 0;
    int stale = rq_plat_segment_stale(q->segment.plat);
    st->unlinked = stale > 0;
    if (rc == RQ_OK && stale < 0)
        rc = stale;
    if (rc < 0)
        return rc; /* every field but depth is filled in, for a post-mortem */
    if (producer_live < 0 || consumer_live < 0)
        return producer_live < 0 ? producer_live : consumer_live;
    st->depth = q->rec ? records : rq_ring_distance(&q->ring, st->write_offset, st->read_offset);
    return RQ_OK;
}

int rq_stat_records(rq *q, rq_record_stats *st)
{
    if (!q || !st)
        return RQ_EINVAL;
    if (!opened_in_this_process(q))
        return RQ_EFORK;
    return q->rec ? rq_rec_stat(q->rec, st) : RQ_EINVAL;
}

int rq_dump_records(rq *q, int (*fn)(void *ctx, const rq_record_entry *entry), void *ctx)
{
    if (!q || !fn)
        return RQ_EINVAL;
    if (!opened_in_this_process(q))
        return RQ_EFORK;
    return q->rec ? rq_rec_walk(q->rec, fn, ctx) : RQ_EINVAL;
}
