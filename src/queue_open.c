/*
 * queue_open.c - opening a queue (its kind of segment: the header check,
 * the size, the initialisation), taking a role, closing, unlinking and
 * interrupting.  OS-neutral: everything OS-specific goes through
 * platform.h and segment.h.
 */
#include <stdlib.h>
#include <string.h>

#include "crashpoint.h"
#include "deadline.h"
#include "queue_impl.h"

/* An attach configuration (slot_count and slot_size 0) carries only
 * RQ_ANY_OWNER and an optional mode to check; it never creates. */
static int is_attach_config(const rq_config *cfg)
{
    return cfg && cfg->slot_count == 0 && cfg->slot_size == 0;
}

static int check_config(const rq_config *cfg)
{
    if ((cfg->mode & ~0777u) != 0)
        return RQ_EINVAL;
    if (is_attach_config(cfg))
        return (cfg->flags & ~(uint32_t)RQ_ANY_OWNER) == 0 ? RQ_OK : RQ_EINVAL;
    if (cfg->flags & RQ_RECORDS)
        return rq_rec_check_config(cfg);
    if (cfg->slot_count < 1 || cfg->slot_count > RQ_SLOT_COUNT_MAX)
        return RQ_EINVAL;
    if (cfg->slot_size < 1 || cfg->slot_size > RQ_SLOT_SIZE_MAX)
        return RQ_EINVAL;
    if ((cfg->flags & ~(uint32_t)(RQ_MPSC | RQ_FULL_FENCES | RQ_ANY_OWNER)) != 0)
        return RQ_EINVAL;
    /* Refused before anything exists: no object is made that could never
     * be sized or mapped. */
    uint64_t total = rq_layout_total(cfg->slot_count, cfg->slot_size);
    if (total > RQ_SEGMENT_SIZE_MAX || total > (uint64_t)SIZE_MAX)
        return RQ_EINVAL;
    return RQ_OK;
}

/* ---- open: the queue's kind of segment ------------------------------ */

/* Checks a header whose magic is RQ_MAGIC against itself, the object's
 * real size and (if given) the opener's configuration. */
static int queue_check(const void *snapshot, uint64_t object_size, const void *config,
                       uint64_t *total)
{
    const struct rq_shm_header *h = snapshot;
    const rq_config *cfg = config;
    if (h->layout_version == RQ_REC_LAYOUT_VERSION)
        return rq_rec_check(h, object_size, cfg, total);
    if (h->layout_version != RQ_LAYOUT_VERSION || h->abi != rq_layout_abi(rq_plat_abi_tag()))
        return RQ_EVERSION;
    if (h->header_size != RQ_SHM_HEADER_SIZE)
        return RQ_ECORRUPT;
    if (h->slot_count < 1 || h->slot_count > RQ_SLOT_COUNT_MAX)
        return RQ_ECORRUPT;
    if (h->slot_size < 1 || h->slot_size > RQ_SLOT_SIZE_MAX)
        return RQ_ECORRUPT;
    if (h->slot_stride != rq_layout_stride(h->slot_size))
        return RQ_ECORRUPT;
    if ((h->flags & ~(uint32_t)(RQ_MPSC | RQ_FULL_FENCES)) != 0)
        return RQ_ECORRUPT;
    uint64_t need = rq_layout_total(h->slot_count, h->slot_size);
    if (h->total_size != need || need > object_size || need > RQ_SEGMENT_SIZE_MAX ||
        need > (uint64_t)SIZE_MAX)
        return RQ_ECORRUPT;
    /* RQ_FULL_FENCES may have been chosen by the creator's OS: only an
     * opener that asks for it and finds it missing is refused. */
    if (cfg && ((cfg->flags & RQ_RECORDS) || h->slot_count != cfg->slot_count ||
                h->slot_size != cfg->slot_size || (h->flags & RQ_MPSC) != (cfg->flags & RQ_MPSC) ||
                ((cfg->flags & RQ_FULL_FENCES) && !(h->flags & RQ_FULL_FENCES))))
        return RQ_EEXIST;
    *total = need;
    return RQ_OK;
}

static uint64_t queue_size_for(const void *config)
{
    const rq_config *cfg = config;
    if (cfg->flags & RQ_RECORDS)
        return rq_rec_size_for(cfg);
    return rq_layout_total(cfg->slot_count, cfg->slot_size);
}

static int queue_init(rq_plat_segment *seg, void *addr, const void *config, int repairing)
{
    const rq_config *cfg = config;
    if (cfg->flags & RQ_RECORDS)
        return rq_rec_init(seg, addr, cfg, repairing);
    struct rq_shm *shm = addr;
    memset(shm, 0, sizeof *shm);
    shm->hdr.layout_version = RQ_LAYOUT_VERSION;
    shm->hdr.abi = rq_layout_abi(rq_plat_abi_tag());
    shm->hdr.header_size = RQ_SHM_HEADER_SIZE;
    shm->hdr.slot_count = cfg->slot_count;
    shm->hdr.slot_size = cfg->slot_size;
    shm->hdr.slot_stride = (uint32_t)rq_layout_stride(cfg->slot_size);
    shm->hdr.flags = cfg->flags & (RQ_MPSC | RQ_FULL_FENCES); /* RQ_ANY_OWNER is the opener's */
    if (rq_plat_fence_register() != RQ_OK)
        shm->hdr.flags |= RQ_FULL_FENCES; /* no asymmetric fence here */
    shm->hdr.total_size = queue_size_for(cfg);
    rq_store_relaxed_u64(&shm->admin.repairs, repairing ? 1 : 0);
    return (cfg->flags & RQ_MPSC) ? rq_mpsc_init(seg, shm) : RQ_OK;
}

static const struct rq_segment_kind queue_kind = {
    .prefix = RQ_QUEUE_KIND,
    .magic = RQ_MAGIC,
    .header_size = sizeof(struct rq_shm_header),
    .check = queue_check,
    .size_for = queue_size_for,
    .init = queue_init,
};

/* ---- open: roles ----------------------------------------------------- */

/* Takes the role's lock: exclusive for a consumer or an SPSC producer; for
 * an MPSC producer a shared one, which only marks it live, and its slot in
 * the producers' lock. */
static int role_lock(rq *q, int producer)
{
    if (!(producer && q->mpsc))
        return rq_plat_lock(q->segment.plat, producer ? RQ_LOCK_PRODUCER : RQ_LOCK_CONSUMER,
                            RQ_LOCK_TRY);
    /* Any number of producers: the shared lock keeps an SPSC producer
     * (exclusive) out while any is live, and the other way round, whatever
     * the header's flag says now. */
    int rc = rq_plat_lock(q->segment.plat, RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED);
    if (rc == RQ_OK) {
        rc = rq_mpsc_open(&q->lock, q->segment.plat, q->shm);
        q->lock_open = rc == RQ_OK;
        q->lock.interrupt = &q->interrupted;
        q->lock.full_fences = q->ring.full_fences;
    }
    return rc;
}

/* Makes the side's role line this handle's: all of it when the role is
 * held alone, only the pid for an MPSC producer.  Returns 1 when the last
 * holder of a role held alone died without closing. */
static int role_line_claim(rq *q, int producer)
{
    struct rq_shm *shm = q->shm;
    q->self = producer ? &shm->producer : &shm->consumer;
    q->owns_role_line = !(producer && q->mpsc);
    if (q->owns_role_line) {
        /* We hold the role alone, so nobody else can be asleep on our side's
         * event: a count left by a holder killed while waiting is stale. */
        struct rq_shm_event *own = producer ? &shm->space_event : &shm->data_event;
        rq_store_seq_u32(&own->waiters, 0);
        return rq_role_attach(q->self);
    }
    rq_store_relaxed_u64(&q->self->pid, (uint64_t)rq_plat_pid());
    return 0;
}

static int role_acquire(rq *q)
{
    int producer = q->role == RQ_PRODUCER;
    int rc = role_lock(q, producer);
    if (rc < 0)
        return rc;
    RQ_CRASH_POINT(OPEN_AFTER_ROLE_LOCK);
    /* This process publishes with plain stores: it must be reached by the
     * barrier of a peer about to sleep. */
    if (!q->ring.full_fences && rq_plat_fence_register() != RQ_OK)
        return RQ_ESYS;
    q->took_over = role_line_claim(q, producer);
    /* Check the offsets now, except as an MPSC producer: other producers
     * move write_offset while we read the pair, so it could look corrupt
     * when it is not; every MPSC push re-reads the write side under the
     * lock, and the consumer's side whenever its copy cannot be trusted
     * (ring.h, records_impl.h: rec_read_cache_ok). */
    if (q->owns_role_line || !producer) {
        rc = q->rec ? rq_rec_load(q->rec) : rq_ring_load(&q->ring);
        if (rc < 0)
            return rc;
        if (!q->rec) /* a record queue's positions are records.c's */
            rq_ring_anchor(&q->ring, producer);
        if (!producer && q->took_over) {
            if (q->rec)
                rq_rec_flag_oldest(q->rec);
            else
                rq_ring_flag_oldest(&q->ring);
        }
    }
    RQ_CRASH_POINT(OPEN_AFTER_TAKEOVER);
    /* A predecessor may have died between publishing and signalling, and
     * the peer may be asleep or polling since: wake it so it re-checks. */
    rq_queue_announce(q, producer);
    return RQ_OK;
}

static void handle_free(rq *q)
{
    if (q->lock_open && !q->lock.held)
        rq_mpsc_close(&q->lock);   /* releases nothing here: gives the slot up */
    rq_segment_close(&q->segment); /* drops every lock of this handle */
    rq_rec_free(q->rec);
    free(q);
}

/* An open that fails after it may have claimed its role line detaches and
 * frees the handle.  If it found the last consumer dead, its successor
 * must still find that out (it flags what the dead one may have held),
 * without counting as a second takeover the one this open counted. */
static void open_failed(rq *q)
{
    if (q->owns_role_line) {
        int passed_on = q->took_over && q->role == RQ_CONSUMER;
        rq_store_seq_u32(&q->self->attached, passed_on ? RQ_ROLE_DEATH_PASSED_ON : 0);
    }
    handle_free(q);
}

/* The code in q->fast of a handle just opened as ROLE (queue_impl.h): from
 * what never changes after the open. */
static int fast_code(const rq *q, int role)
{
    if (role == RQ_OBSERVER)
        return 0;
    if (q->rec) /* its calls then publish without testing the fences */
        return q->ring.full_fences ? 0 : RQ_FAST_REC(role);
    if (q->ring.full_fences || (role == RQ_PRODUCER && q->mpsc))
        return 0;
    return RQ_FAST(role, HELD_NONE);
}

int rq_open_timed(rq **out, const char *name, int role, const rq_config *cfg, int timeout_ms)
{
    if (out)
        *out = NULL;
    if (!out || !rq_name_valid(name) || timeout_ms < RQ_INFINITE)
        return RQ_EINVAL;
    if (!rq_role_valid(role))
        return RQ_EINVAL;
    if (cfg && check_config(cfg) < 0)
        return RQ_EINVAL;
    if (rq_plat_fork_watch() < 0)
        return RQ_ESYS;
    rq *q = calloc(1, sizeof *q);
    if (!q)
        return RQ_ESYS;
    q->role = role;
    q->fork_generation = rq_load_relaxed_u64(&rq_plat_fork_generation);
    const rq_config *create = is_attach_config(cfg) ? NULL : cfg;
    int rc = rq_segment_open_as(&q->segment, &queue_kind, name, create, role, cfg ? cfg->mode : 0,
                                cfg && (cfg->flags & RQ_ANY_OWNER), timeout_ms);
    if (rc < 0) {
        free(q);
        return rc;
    }
    q->shm = q->segment.addr;
    /* Checked and mapped, nothing of the handle set up yet: from here a
     * peer may rewrite the shared header, so what follows reads only the
     * checked copy (test_queue's test_header_rewritten_after_the_check
     * rewrites it at this point). */
    RQ_CRASH_POINT(OPEN_AFTER_CHECK);
    const struct rq_shm_header *h = (const struct rq_shm_header *)q->segment.header.bytes;
    rq_ring_attach(&q->ring, q->shm, h);
    q->mpsc = (h->flags & RQ_MPSC) != 0;
    if (h->layout_version == RQ_REC_LAYOUT_VERSION) {
        rc = rq_rec_attach(&q->rec, q->shm, h, role,
                           q->mpsc && role == RQ_PRODUCER ? &q->lock : NULL);
        if (rc == RQ_OK)
            rq_rec_set_queue(q->rec, q);
        /* An empty offset range: a slot-ring call that reached a record
         * queue by mistake finds every offset out of range (RQ_ECORRUPT)
         * instead of indexing slots that are not there. */
        q->ring.n = q->ring.two_n = 0;
    }
    if (rc == RQ_OK && role != RQ_OBSERVER)
        rc = role_acquire(q);
    if (rc < 0) {
        open_failed(q);
        return rc;
    }
    q->fast = q->fork_generation + (uint64_t)fast_code(q, role);
    *out = q;
    return RQ_OK;
}

int rq_open(rq **out, const char *name, int role, const rq_config *cfg)
{
    return rq_open_timed(out, name, role, cfg, RQ_OPEN_TIMEOUT_MS);
}

/* The longest nap between two looks for a queue not created yet. */
#define WAIT_FOR_CREATE_NAP_MAX_MS 50

int rq_open_wait(rq **out, const char *name, int role, const rq_config *cfg, int timeout_ms)
{
    if (timeout_ms < RQ_INFINITE) {
        if (out)
            *out = NULL;
        return RQ_EINVAL;
    }
    struct rq_deadline d = rq_deadline_start(timeout_ms);
    int nap = 1;
    for (;;) {
        int left = rq_deadline_left(&d);
        int rc = rq_open_timed(out, name, role, cfg, left);
        if (rc != RQ_ENOENT || (cfg && !is_attach_config(cfg)))
            return rc;
        left = rq_deadline_left(&d);
        if (left == 0)
            return RQ_ENOENT;
        /* Polled: no OS notification is both portable and robust here
         * (a name may appear, be half-made by a creator that dies, and be
         * finished by another), and a look costs one failed open. */
        rq_plat_sleep_ms(left > 0 && left < nap ? left : nap);
        if (nap < WAIT_FOR_CREATE_NAP_MAX_MS)
            nap = nap * 2 < WAIT_FOR_CREATE_NAP_MAX_MS ? nap * 2 : WAIT_FOR_CREATE_NAP_MAX_MS;
    }
}

void rq_close(rq *q)
{
    if (!q)
        return;
    if (!opened_in_this_process(q)) {
        /* The shared state and the kernel locks are the parent's, and this
         * child shares its open file descriptions: an unlock here would
         * drop the parent's locks.  Only this process's copy is freed. */
        rq_segment_close(&q->segment);
        rq_rec_free(q->rec);
        free(q);
        return;
    }
    /* A reservation is dropped, unseen.  One made by another thread is
     * not released from here (see reservation_is_ours): on Linux it goes
     * with the handle's producer slot, and the next locker recovers it;
     * on Windows it goes with the reserving thread. */
    if (q->lock_open && q->held == HELD_RESERVED && reservation_is_ours(q))
        rq_mpsc_unlock(&q->lock);
    rq_rec_close(q->rec);
    /* A single peek stores no mark: a message still held is marked handed
     * out now, for the next consumer (see rq_ring_oldest_info). */
    if (!q->rec && q->role == RQ_CONSUMER && q->held == HELD_PEEKED)
        rq_ring_deliver_burst(&q->ring, q->held_count);
    if (q->owns_role_line) {
        RQ_CRASH_POINT(CLOSE_BEFORE_DETACH);
        rq_store_seq_u32(&q->self->attached, 0);
    }
    handle_free(q);
}

void rq_interrupt(rq *q)
{
    if (!q)
        return;
    /* The flag first: a waiter reads the word, then the flag, so it sees
     * one or the other move (see wait_on). */
    rq_store_seq_u32(&q->interrupted, 1);
    if (q->role == RQ_OBSERVER)
        return; /* never waits; its mapping may be read-only */
    rq_atomic_u32 *words[2];
    int n = 0;
    if (q->role == RQ_CONSUMER) {
        words[n++] = &q->shm->data_event.seq;
    } else {
        words[n++] = &q->shm->space_event.seq;
        if (q->mpsc)
            words[n++] = &q->shm->mpsc.seq; /* the lock's sleepers */
    }
    rq_plat_interrupt(q->segment.plat, words, n);
}

int rq_set_spin_us(rq *q, uint32_t us)
{
    if (!q || us > RQ_SPIN_US_MAX)
        return RQ_EINVAL;
    q->spin_ns = (uint64_t)us * 1000u;
    return RQ_OK;
}

int rq_unlink(const char *name)
{
    if (!rq_name_valid(name))
        return RQ_EINVAL;
    return rq_plat_segment_unlink(RQ_QUEUE_KIND, name);
}
