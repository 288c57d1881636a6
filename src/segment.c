/*
 * segment.c - opening, validating and creating shared segments (see
 * segment.h).
 */
#include "segment.h"

#include <string.h>

#include "atomics.h"
#include "crashpoint.h"
#include "deadline.h"
#include "rq.h"

/* Makes a fresh segment in the (new or half-made) object.  Called under
 * the init lock.  magic is stored last: until then every opener sees an
 * uninitialised segment. */
static int segment_init(struct rq_segment *s, const struct rq_segment_kind *kind, const void *cfg,
                        int repairing)
{
    uint64_t total = kind->size_for(cfg);
    int rc = rq_plat_segment_resize(s->plat, total);
    if (rc < 0)
        return rc;
    RQ_CRASH_POINT(INIT_AFTER_RESIZE);
    void *addr;
    rc = rq_plat_segment_map(s->plat, total, &addr);
    if (rc < 0)
        return rc;
    memset(addr, 0, kind->header_size);
    rc = kind->init(s->plat, addr, cfg, repairing);
    if (rc == RQ_OK) {
        /* The handle keeps a checked copy, as an attaching opener does. */
        uint64_t checked;
        memcpy(s->header.bytes, addr, kind->header_size);
        rc = kind->check(s->header.bytes, total, cfg, &checked);
    }
    if (rc < 0) {
        rq_plat_segment_unmap(addr, total);
        return rc;
    }
    RQ_CRASH_POINT(INIT_BEFORE_MAGIC);
    rq_store_release_u64((rq_atomic_u64 *)addr, kind->magic);
    s->addr = addr;
    s->size = total;
    return RQ_OK;
}

/* Under the init lock: validates an initialised segment and maps it whole,
 * or initialises an uninitialised one (when CFG allows). */
static int segment_attach(struct rq_segment *s, const struct rq_segment_kind *kind, const void *cfg)
{
    uint64_t size;
    int rc = rq_plat_segment_size(s->plat, &size);
    if (rc < 0)
        return rc;
    if (size >= kind->header_size) {
        void *addr;
        rc = rq_plat_segment_map(s->plat, kind->header_size, &addr);
        if (rc < 0)
            return rc;
        unsigned char *h = s->header.bytes;
        uint64_t magic = rq_load_acquire_u64((rq_atomic_u64 *)addr);
        memcpy(h, addr, kind->header_size); /* one snapshot, then check it */
        rq_plat_segment_unmap(addr, kind->header_size);
        if (magic == kind->magic) {
            uint64_t total;
            rc = kind->check(h, size, cfg, &total);
            if (rc < 0)
                return rc;
            rc = rq_plat_segment_map(s->plat, total, &addr);
            if (rc < 0)
                return rc;
            s->addr = addr;
            s->size = total;
            /* The header we map must be the one we checked. */
            if (memcmp((unsigned char *)addr + 8, h + 8, kind->header_size - 8) != 0)
                return RQ_ECORRUPT;
            return RQ_OK;
        }
        if (magic != 0)
            return RQ_ECORRUPT; /* somebody else's object, or scribbled on */
    }
    if (!cfg)
        return RQ_ENOENT; /* never completed: only a creator can finish it */
    /* Roles held in the lock object of a segment not made yet belong to
     * handles of an unlinked one of the same name: making a new one would
     * split the queue between them and us. */
    rc = rq_plat_segment_orphan_roles(s->plat);
    if (rc != 0)
        return rc < 0 ? rc : RQ_EUNLINKED;
    return segment_init(s, kind, cfg, size != 0);
}

/* Takes the init lock by polling with short, growing naps, never by a
 * blocking wait: a holder that is stopped (SIGSTOP, a debugger) would
 * otherwise hold every opener forever, and no signal ends a blocking
 * wait that retries on EINTR. */
static int init_lock(rq_plat_segment *plat, const struct rq_deadline *d)
{
    int nap = 1;
    for (;;) {
        int rc = rq_plat_lock(plat, RQ_LOCK_INIT, RQ_LOCK_TRY);
        if (rc != RQ_EBUSY)
            return rc;
        int left = rq_deadline_left(d);
        if (left == 0)
            return RQ_ETIMEDOUT;
        rq_plat_sleep_ms(left > 0 && left < nap ? left : nap);
        if (nap < 64)
            nap *= 2;
    }
}

/* One attempt: RQ_OK, an error, or 1 if the object was removed while we
 * waited for its init lock (a creator that failed removed its own). */
static int segment_try_open(struct rq_segment *s, const struct rq_segment_kind *kind,
                            const char *name, const void *cfg, uint32_t mode, unsigned flags,
                            const struct rq_deadline *d)
{
    int created;
    int rc = rq_plat_segment_open(&s->plat, kind->prefix, name, flags | (cfg ? RQ_PLAT_CREATE : 0),
                                  mode, &created);
    if (rc < 0)
        return rc;
    if (!rq_plat_segment_has_locks(s->plat) || rq_plat_segment_readonly(s->plat)) {
        /* An observer only reads (and may hold no lock: it may be a user
         * who can only read).  The magic word is stored last, so a segment
         * that has it is complete without the init lock. */
        return segment_attach(s, kind, NULL);
    }
    rc = init_lock(s->plat, d);
    if (rc < 0)
        return rc;
    RQ_CRASH_POINT(OPEN_AFTER_INIT_LOCK);
    rc = rq_plat_segment_stale(s->plat);
    if (rc == 0) /* the lock object, removed by a last close meanwhile */
        rc = rq_plat_segment_locks_stale(s->plat);
    if (rc == 0)
        rc = segment_attach(s, kind, cfg);
    if (rc < 0 && created)
        rq_plat_segment_discard(s->plat);
    rq_plat_unlock(s->plat, RQ_LOCK_INIT);
    return rc;
}

int rq_segment_open(struct rq_segment *s, const struct rq_segment_kind *kind, const char *name,
                    const void *cfg, uint32_t mode, unsigned flags, int timeout_ms)
{
    memset(s, 0, sizeof *s);
    if (kind->header_size < 8 || kind->header_size > RQ_SEGMENT_HEADER_MAX)
        return RQ_EINVAL;
    struct rq_deadline d = rq_deadline_start(timeout_ms);
    for (;;) {
        int rc = segment_try_open(s, kind, name, cfg, mode, flags, &d);
        if (rc == RQ_OK)
            return RQ_OK;
        rq_segment_close(s);
        if (rc < 0)
            return rc;
        if (rq_deadline_left(&d) == 0)
            return RQ_ETIMEDOUT;
    }
}

void rq_segment_close(struct rq_segment *s)
{
    if (s->addr)
        rq_plat_segment_unmap(s->addr, s->size);
    rq_plat_segment_close(s->plat);
    memset(s, 0, sizeof *s);
}

int rq_role_valid(int role)
{
    return role == RQ_PRODUCER || role == RQ_CONSUMER || role == RQ_OBSERVER;
}

int rq_segment_open_as(struct rq_segment *s, const struct rq_segment_kind *kind, const char *name,
                       const void *cfg, int role, uint32_t mode, int any_owner, int timeout_ms)
{
    unsigned flags = 0;
    if (role != RQ_OBSERVER || cfg)
        flags |= RQ_PLAT_CHECKED;
    if (role == RQ_OBSERVER)
        flags |= RQ_PLAT_OBSERVE;
    if (any_owner)
        flags |= RQ_PLAT_ANY_OWNER;
    if (cfg && mode == 0)
        mode = RQ_DEFAULT_MODE;
    return rq_segment_open(s, kind, name, cfg, mode, flags, timeout_ms);
}

int rq_role_attach(struct rq_shm_role *line)
{
    uint32_t was = rq_exchange_u32(&line->attached, RQ_ROLE_HELD);
    int took_over = was != 0;
    if (took_over && was != RQ_ROLE_DEATH_PASSED_ON)
        rq_fetch_add_u64(&line->takeovers, 1); /* the holder died without closing */
    rq_store_relaxed_u64(&line->pid, (uint64_t)rq_plat_pid());
    return took_over;
}
