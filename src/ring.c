/*
 * ring.c - the slow-path parts of the ring (the fast path is inline in
 * ring.h).  OS-neutral.
 */
#include "ring.h"

void rq_ring_attach(struct rq_ring *r, struct rq_shm *shm, const struct rq_shm_header *h)
{
    memset(r, 0, sizeof *r);
    r->empty_at = UINT32_MAX; /* no offset: the first empty look gives no hint */
    r->shm = shm;
    r->slots = (unsigned char *)shm + RQ_SHM_HEADER_SIZE;
    r->n = h->slot_count;
    r->two_n = 2 * r->n;
    r->stride = h->slot_stride;
    /* The slot's last byte, or its 65th: in the line after the slot's
     * first either way, wherever in its line the slot starts. */
    uint32_t last = r->stride - 1;
    r->hint_last = last < 64 ? last : 64;
    r->slot_size = h->slot_size;
    r->full_fences = (h->flags & RQ_FULL_FENCES) != 0;
    uint32_t p = 1;
    while (p <= r->n / 2)
        p *= 2; /* the largest power of two <= N */
    r->read_mask = p - 1;
    r->write_mask = (h->flags & RQ_MPSC) ? 0 : p - 1;
    r->read_cache_pos = UINT64_MAX;
}

int rq_ring_load(struct rq_ring *r)
{
    uint32_t w = rq_load_acquire_u32(&r->shm->write_offset);
    uint32_t rd = rq_load_acquire_u32(&r->shm->read_offset);
    if (!rq_ring_pair_ok(r, w, rd))
        return RQ_ECORRUPT;
    r->write_cache = w;
    rq_ring_set_read_cache(r, rd);
    rq_ring_set_write(r, w, rq_ring_position(r, rq_load_relaxed_u64(&r->shm->write_position), w));
    rq_ring_set_read(r, rd, rq_ring_position(r, rq_load_relaxed_u64(&r->shm->read_position), rd));
    uint64_t read_pos = rq_ring_read_pos(r);
    /* A dead consumer may have handed out messages it never released: at
     * most the N in the ring.  A mark outside that range is a peer's
     * scribble, and flags nothing. */
    uint64_t mark = rq_load_relaxed_u64(&r->shm->consumer.delivered_position);
    r->delivered = mark >= read_pos && mark - read_pos <= r->n ? mark : read_pos;
    r->redeliver_below = r->delivered;
    return RQ_OK;
}

void rq_ring_flag_oldest(struct rq_ring *r)
{
    uint64_t read_pos = rq_ring_read_pos(r);
    if (r->write_cache == r->read || r->delivered != read_pos)
        return; /* none there, or flagged by the mark already */
    /* Stored too: a clean close of this handle, which only stores a mark
     * above the handle's, must leave the flag for the next consumer. */
    r->redeliver_below = r->delivered = read_pos + 1;
    rq_store_relaxed_u64(&r->shm->consumer.delivered_position, r->delivered);
}

void rq_ring_anchor(struct rq_ring *r, int producer)
{
    if (producer) {
        rq_ring_anchor_write(r, rq_load_relaxed_u64(&r->shm->write_position));
        return;
    }
    if (rq_load_relaxed_u64(&r->shm->read_position) != rq_ring_read_pos(r))
        rq_store_relaxed_u64(&r->shm->read_position, rq_ring_read_pos(r));
}

int rq_ring_has_data(struct rq_ring *r)
{
    uint32_t w = rq_load_seq_u32(&r->shm->write_offset);
    return w != r->read;
}

int rq_ring_has_space(struct rq_ring *r, int shared_write)
{
    uint32_t w = shared_write ? rq_load_seq_u32(&r->shm->write_offset) : r->write;
    uint32_t rd = rq_load_seq_u32(&r->shm->read_offset);
    if (!rq_ring_pair_ok(r, w, rd))
        return 1;
    return rq_ring_distance(r, w, rd) < r->n;
}

int rq_ring_was_full_k(struct rq_ring *r, uint32_t old_read, uint32_t k)
{
    if (k > 1 && k >= r->n)
        return 1; /* a burst of N: it was full, or could be again */
    if (r->write_cache < r->two_n && rq_ring_distance(r, r->write_cache, old_read) == r->n)
        return 1;
    /* seq_cst, not acquire: a waiting MPSC producer may have seen another
     * producer's newer write_offset after registering, and only a load in
     * the single total order is sure to see it too. */
    uint32_t w = rq_load_seq_u32(&r->shm->write_offset);
    if (w >= r->two_n)
        return 1; /* corrupt: waking someone costs nothing, sleeping might */
    /* Since our free, producers can have added at most K messages, so the
     * true distance is at most N + K; for K == N == 1 that wraps to 0
     * (a larger K == N was answered above). */
    uint32_t d = rq_ring_distance(r, w, old_read);
    return d == 0 || d >= r->n;
}

int rq_ring_push_room(struct rq_ring *r, uint32_t want, int shared_write, uint32_t *room)
{
    if (shared_write) {
        int rc = rq_ring_sync_write(r);
        if (rc < 0)
            return rc;
    }
    uint32_t k = rq_ring_cached_room(r, shared_write);
    if (k < want) {
        uint32_t rd = rq_load_acquire_u32(&r->shm->read_offset);
        if (!rq_ring_pair_ok(r, r->write, rd))
            return RQ_ECORRUPT;
        rq_ring_set_read_cache(r, rd);
        r->read_cache_pos = rq_ring_write_pos(r) - rq_ring_distance(r, r->write, rd);
        k = r->n - rq_ring_distance(r, r->write, rd);
        if (k == 0)
            return RQ_EAGAIN;
    }
    *room = k;
    return RQ_OK;
}

void rq_ring_push_publish_burst(struct rq_ring *r, uint32_t k)
{
    uint64_t pos = rq_ring_write_pos(r) + k;
    rq_ring_set_write(r, rq_ring_advance(r, r->write, k), pos);
    rq_ring_publish_offset(r, &r->shm->write_offset, r->write);
    RQ_CRASH_POINT(PUSH_BEFORE_POSITION);
    rq_store_relaxed_u64(&r->shm->write_position, pos);
}

int rq_ring_pop_avail(struct rq_ring *r, uint32_t want, uint32_t *avail)
{
    uint32_t k = r->write_cache < r->two_n ? rq_ring_distance(r, r->write_cache, r->read) : 0;
    if (k < want) {
        uint32_t w = rq_load_acquire_u32(&r->shm->write_offset);
        if (!rq_ring_pair_ok(r, w, r->read))
            return RQ_ECORRUPT;
        r->write_cache = w;
        k = rq_ring_distance(r, w, r->read);
        if (k == 0)
            return RQ_EAGAIN;
    }
    *avail = k;
    return RQ_OK;
}

uint32_t rq_ring_pop_publish_burst(struct rq_ring *r, uint32_t k)
{
    uint32_t old = r->read;
    uint64_t pos = rq_ring_read_pos(r) + k;
    rq_ring_set_read(r, rq_ring_advance(r, old, k), pos);
    rq_ring_publish_offset(r, &r->shm->read_offset, r->read);
    RQ_CRASH_POINT(RELEASE_BEFORE_POSITION);
    rq_store_relaxed_u64(&r->shm->read_position, pos);
    return old;
}

void rq_ring_deliver_burst(struct rq_ring *r, uint32_t k)
{
    uint64_t end = rq_ring_read_pos(r) + k;
    if (end > r->delivered) {
        r->delivered = end;
        rq_store_relaxed_u64(&r->shm->consumer.delivered_position, r->delivered);
        RQ_CRASH_POINT(DELIVER_AFTER_MARK);
    }
}
