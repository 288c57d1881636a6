/*
 * coalesce.c - crash-safe coalescing requests ("refresh" for many
 * processes).  OS-neutral.
 *
 * The obvious design keeps one flag, exchanges it to FALSE and then works: a worker
 * that dies mid-work has already forgotten the request.  Here the state is
 * two counts instead of a flag:
 *
 *   req  = (count << 1) | WAITING   requests so far (mod 2^31), worker asleep?
 *   done = count covered by the last *finished* round
 *
 * Work is owed while count != done.  rq_coalesce_wait returns ticket =
 * count and rq_coalesce_done stores done = ticket, so the request is
 * forgotten only when the work for it is finished.  A request during a
 * round moves count past the ticket: exactly one more round.
 *
 * Waking: the worker sets WAITING in the very word it sleeps on.  A
 * requester that sees WAITING clear bumps count by CAS (no system call:
 * this is every request while the worker is busy); one that sees it set
 * has the kernel add to the word and wake the worker in one step
 * (rq_plat_add_and_wake), so no death of a requester can leave the count
 * moved but the worker asleep.
 *
 * No loop here waits on what another process writes: the worker sets and
 * clears WAITING with one atomic OR or AND, and a requester whose CAS
 * keeps losing adds and wakes instead (RQC_REQUEST_TRIES), so a peer that
 * writes the word without end cannot hold a call up.
 */
#include <stdlib.h>
#include <string.h>

#include "crashpoint.h"
#include "deadline.h"
#include "layout.h"
#include "platform.h"
#include "rq.h"
#include "segment.h"

#define RQC_KIND "rqc"
/* The platform's two role locks, as a coalescing object uses them: the one
 * worker holds one exclusively, every live requester the other shared. */
#define WORKER_LOCK RQ_LOCK_CONSUMER
#define REQUESTER_LOCK RQ_LOCK_PRODUCER
/* CAS attempts of a request before it adds and wakes instead: each lost
 * one was another request (or a write of a peer), so a few are plenty. */
#define RQC_REQUEST_TRIES 16

struct rq_coalesce {
    struct rq_segment segment; /* segment.plat: the OS objects */
    struct rqc_shm *shm;       /* segment.addr, typed */
    int role;
    uint64_t fork_generation; /* rq_plat_fork_generation at open */
    int round_open;           /* worker: a ticket was handed out and not done */
    uint32_t ticket;          /* worker: that ticket */
};

static uint32_t count_of(uint32_t req)
{
    return (req >> 1) & RQC_COUNT_MASK;
}

/* RQ_EROLE unless C is a handle of ROLE, opened in this process (a child of
 * fork() must open its own: the roles and locks are its parent's). */
static int check_handle(const rq_coalesce *c, int role)
{
    if (c->fork_generation != rq_load_relaxed_u64(&rq_plat_fork_generation))
        return RQ_EFORK;
    return c->role == role ? RQ_OK : RQ_EROLE;
}

/* ---- the kind of segment ---------------------------------------------- */

static int coalesce_check(const void *snapshot, uint64_t object_size, const void *cfg,
                          uint64_t *total)
{
    (void)cfg;
    const struct rqc_shm_header *h = snapshot;
    if (h->layout_version != RQC_LAYOUT_VERSION || h->abi != rq_layout_abi(rq_plat_abi_tag()))
        return RQ_EVERSION;
    if (h->header_size != sizeof(struct rqc_shm) || object_size < sizeof(struct rqc_shm))
        return RQ_ECORRUPT;
    *total = sizeof(struct rqc_shm);
    return RQ_OK;
}

static uint64_t coalesce_size_for(const void *cfg)
{
    (void)cfg;
    return sizeof(struct rqc_shm);
}

static int coalesce_init(rq_plat_segment *seg, void *addr, const void *cfg, int repairing)
{
    (void)seg;
    (void)cfg;
    struct rqc_shm *shm = addr;
    memset(shm, 0, sizeof *shm);
    shm->hdr.layout_version = RQC_LAYOUT_VERSION;
    shm->hdr.abi = rq_layout_abi(rq_plat_abi_tag());
    shm->hdr.header_size = sizeof(struct rqc_shm);
    rq_store_relaxed_u64(&shm->admin.repairs, repairing ? 1 : 0);
    return RQ_OK;
}

static const struct rq_segment_kind coalesce_kind = {
    .prefix = RQC_KIND,
    .magic = RQC_MAGIC,
    .header_size = sizeof(struct rqc_shm_header),
    .check = coalesce_check,
    .size_for = coalesce_size_for,
    .init = coalesce_init,
};

/* ---- worker side -------------------------------------------------------- */

/* Clears WAITING in the request word, whatever requesters do meanwhile:
 * one atomic AND, no retry loop that a peer changing the word could keep
 * going. */
static void clear_waiting(struct rqc_shm *shm)
{
    (void)rq_fetch_and_u32(&shm->req, ~(uint32_t)RQC_WAITING);
}

static int worker_acquire(rq_coalesce *c)
{
    struct rqc_shm *shm = c->shm;
    int rc = rq_plat_lock(c->segment.plat, WORKER_LOCK, RQ_LOCK_TRY);
    if (rc < 0)
        return rc;
    (void)rq_role_attach(&shm->worker);
    /* A dead predecessor may have left WAITING set: requesters would then
     * make a system call each.  Nobody else can be asleep here. */
    clear_waiting(shm);
    RQ_CRASH_POINT(COALESCE_OPEN_AFTER_TAKEOVER);
    return RQ_OK;
}

/* Owed work: count != done.  Takes it as the round TICKET. */
static int take_round(rq_coalesce *c, uint32_t r, uint64_t *ticket)
{
    struct rqc_shm *shm = c->shm;
    if (r & RQC_WAITING)
        clear_waiting(shm);
    c->ticket = count_of(r);
    c->round_open = 1;
    rq_store_release_u32(&shm->work.taken, c->ticket);
    rq_counter_bump(&shm->worker.rounds);
    RQ_CRASH_POINT(COALESCE_WAIT_AFTER_TAKE);
    *ticket = c->ticket;
    return RQ_OK;
}

static int owed(struct rqc_shm *shm, uint32_t r)
{
    return count_of(r) != (rq_load_acquire_u32(&shm->work.done) & RQC_COUNT_MASK);
}

/* After a re-check found work owed: did no requester wake us for it (the
 * requesters' wake counter has not moved; queue.c's event_never_signalled
 * asks the same of an event count)?  A requester counts its wake-up
 * (requesters.wakes) just after sending it, so a late one gets a short
 * grace before the wake counts as missed. */
static int no_requester_woke(rq_coalesce *c, uint64_t wakes_before)
{
    struct rqc_shm *shm = c->shm;
    if (rq_load_acquire_u64(&shm->requesters.wakes) != wakes_before)
        return 0;
    uint32_t r = rq_load_acquire_u32(&shm->req);
    (void)rq_plat_wait(c->segment.plat, &shm->req, r, RQ_MISSED_WAKE_GRACE_MS);
    return rq_load_acquire_u64(&shm->requesters.wakes) == wakes_before;
}

int rq_coalesce_wait(rq_coalesce *c, uint64_t *ticket, int timeout_ms)
{
    if (!c || !ticket || timeout_ms < RQ_INFINITE)
        return RQ_EINVAL;
    int rc = check_handle(c, RQ_WORKER);
    if (rc < 0)
        return rc;
    struct rqc_shm *shm = c->shm;
    struct rq_deadline d = rq_deadline_start(timeout_ms);
    for (;;) {
        uint32_t r = rq_load_acquire_u32(&shm->req);
        if (owed(shm, r))
            return take_round(c, r, ticket);
        int left = rq_deadline_left(&d);
        if (left == 0) {
            clear_waiting(shm);
            return rq_deadline_error(&d);
        }
        if (!(r & RQC_WAITING)) {
            /* One atomic OR, not a CAS that a peer could keep failing.  A
             * request that came in since the load moved the count: look
             * again (WAITING set meanwhile is cleared with the round). */
            uint32_t before = rq_fetch_or_u32(&shm->req, RQC_WAITING);
            if (count_of(before) != count_of(r))
                continue;
            r = before | RQC_WAITING;
        }
        RQ_CRASH_POINT(COALESCE_WAIT_AFTER_ANNOUNCE);
        rq_counter_bump(&shm->worker.waits);
        uint64_t wakes = rq_load_acquire_u64(&shm->requesters.wakes);
        int is_slice;
        rc = rq_plat_wait(c->segment.plat, &shm->req, r, rq_deadline_slice(left, &is_slice));
        if (rc < 0 && rc != RQ_ETIMEDOUT)
            return rc;
        if (rc != RQ_ETIMEDOUT || !is_slice)
            continue;
        if (owed(shm, rq_load_acquire_u32(&shm->req))) {
            if (no_requester_woke(c, wakes))
                rq_counter_bump(&shm->worker.missed_wakes);
            continue;
        }
        /* Idle for a whole re-check slice: an object unlinked under us gets
         * no more requests, and holding its worker role would keep a new
         * one from being made under the name (rq.h, rq_unlink). */
        rc = rq_plat_segment_stale(c->segment.plat);
        if (rc != 0)
            return rc < 0 ? rc : RQ_EUNLINKED;
    }
}

int rq_coalesce_done(rq_coalesce *c, uint64_t ticket)
{
    if (!c)
        return RQ_EINVAL;
    int rc = check_handle(c, RQ_WORKER);
    if (rc < 0)
        return rc;
    if (!c->round_open || ticket != c->ticket)
        return RQ_ESTATE;
    RQ_CRASH_POINT(COALESCE_DONE_BEFORE_STORE);
    rq_store_release_u32(&c->shm->work.done, c->ticket);
    c->round_open = 0;
    return RQ_OK;
}

/* ---- requester side ------------------------------------------------------ */

int rq_coalesce_request(rq_coalesce *c)
{
    if (!c)
        return RQ_EINVAL;
    int rc = check_handle(c, RQ_REQUESTER);
    if (rc < 0)
        return rc;
    struct rqc_shm *shm = c->shm;
    uint32_t r = rq_load_acquire_u32(&shm->req);
    for (int tries = 0;; tries++) {
        uint32_t count = count_of(r);
        uint32_t done = rq_load_acquire_u32(&shm->work.done) & RQC_COUNT_MASK;
        if (count != done && ((count + 1) & RQC_COUNT_MASK) == done)
            return RQ_OK; /* 2^31 - 1 owed: one more would read as none */
        RQ_CRASH_POINT(COALESCE_REQUEST_BEFORE_BUMP);
        if ((r & RQC_WAITING) || tries == RQC_REQUEST_TRIES) {
            /* The worker sleeps on this word: count and wake in one step.
             * Also when the CAS below lost RQC_REQUEST_TRIES times in a
             * row (the word keeps changing: many requesters, or a peer
             * that writes it): the add cannot fail, and a wake nobody
             * waits for costs one system call.  Never blocks. */
            rc = rq_plat_add_and_wake(c->segment.plat, &shm->req, 2);
            if (rc < 0)
                return rc;
            rq_fetch_add_u64(&shm->requesters.wakes, 1);
            break;
        }
        if (rq_cas_u32(&shm->req, &r, r + 2))
            break; /* worker busy or idle-and-awake: it looks before sleeping */
    }
    RQ_CRASH_POINT(COALESCE_REQUEST_AFTER_BUMP);
    rq_fetch_add_u64(&shm->requesters.requests, 1);
    return RQ_OK;
}

/* ---- open, close, stat --------------------------------------------------- */

/* CREATE: make the object if it is missing or half-made.  MODE may carry
 * RQ_MODE_ANY_OWNER; its permission bits are checked against an existing
 * object (0: the default when creating, no check when attaching). */
static int coalesce_open(rq_coalesce **out, const char *name, int role, uint32_t mode, int create,
                         int timeout_ms)
{
    if (out)
        *out = NULL;
    if (!out || !rq_name_valid(name) || (mode & ~(0777u | RQ_MODE_ANY_OWNER)) != 0 ||
        timeout_ms < RQ_INFINITE)
        return RQ_EINVAL;
    if (!rq_role_valid(role))
        return RQ_EINVAL;
    if (rq_plat_fork_watch() < 0)
        return RQ_ESYS;
    rq_coalesce *c = calloc(1, sizeof *c);
    if (!c)
        return RQ_ESYS;
    c->role = role;
    c->fork_generation = rq_load_relaxed_u64(&rq_plat_fork_generation);
    /* Coalescing objects have no geometry: the segment layer only needs to
     * know whether it may create one. */
    static const int no_config;
    int rc = rq_segment_open_as(&c->segment, &coalesce_kind, name, create ? &no_config : NULL, role,
                                mode & 0777u, (mode & RQ_MODE_ANY_OWNER) != 0, timeout_ms);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->shm = c->segment.addr;
    if (role == RQ_WORKER) {
        rc = worker_acquire(c);
    } else if (role == RQ_REQUESTER) {
        rc = rq_plat_lock(c->segment.plat, REQUESTER_LOCK, RQ_LOCK_TRY_SHARED);
        rq_store_relaxed_u64(&c->shm->requesters.pid, (uint64_t)rq_plat_pid());
    }
    if (rc < 0) {
        rq_segment_close(&c->segment);
        free(c);
        return rc;
    }
    *out = c;
    return RQ_OK;
}

int rq_coalesce_open(rq_coalesce **out, const char *name, int role, uint32_t mode)
{
    return coalesce_open(out, name, role, mode, 1, RQ_OPEN_TIMEOUT_MS);
}

int rq_coalesce_open_timed(rq_coalesce **out, const char *name, int role, uint32_t mode,
                           int timeout_ms)
{
    return coalesce_open(out, name, role, mode, 1, timeout_ms);
}

int rq_coalesce_attach(rq_coalesce **out, const char *name, int role)
{
    return coalesce_open(out, name, role, 0, 0, RQ_OPEN_TIMEOUT_MS);
}

int rq_coalesce_attach_timed(rq_coalesce **out, const char *name, int role, uint32_t mode,
                             int timeout_ms)
{
    return coalesce_open(out, name, role, mode, 0, timeout_ms);
}

void rq_coalesce_close(rq_coalesce *c)
{
    if (!c)
        return;
    if (c->role == RQ_WORKER && check_handle(c, RQ_WORKER) == RQ_OK)
        rq_store_seq_u32(&c->shm->worker.attached, 0);
    rq_segment_close(&c->segment);
    free(c);
}

int rq_coalesce_unlink(const char *name)
{
    if (!rq_name_valid(name))
        return RQ_EINVAL;
    return rq_plat_segment_unlink(RQC_KIND, name);
}

int rq_coalesce_stat(rq_coalesce *c, rq_coalesce_stats *st)
{
    if (!c || !st)
        return RQ_EINVAL;
    int rc = check_handle(c, c->role);
    if (rc < 0)
        return rc;
    struct rqc_shm *shm = c->shm;
    memset(st, 0, sizeof *st);
    uint32_t r = rq_load_acquire_u32(&shm->req);
    uint32_t done = rq_load_acquire_u32(&shm->work.done) & RQC_COUNT_MASK;
    st->requests = rq_load_relaxed_u64(&shm->requesters.requests);
    st->wakes = rq_load_relaxed_u64(&shm->requesters.wakes);
    st->rounds = rq_load_relaxed_u64(&shm->worker.rounds);
    st->waits = rq_load_relaxed_u64(&shm->worker.waits);
    st->missed_wakes = rq_load_relaxed_u64(&shm->worker.missed_wakes);
    st->takeovers = rq_load_relaxed_u64(&shm->worker.takeovers);
    st->repairs = rq_load_relaxed_u64(&shm->admin.repairs);
    st->owed = count_of(r) != done;
    st->waiting = (r & RQC_WAITING) != 0;
    st->worker_pid = (int64_t)rq_load_relaxed_u64(&shm->worker.pid);
    if (c->role != RQ_WORKER && !rq_plat_segment_has_locks(c->segment.plat)) {
        st->worker_live = -1; /* an observer without the lock object */
        return RQ_OK;
    }
    int live = c->role == RQ_WORKER ? 1 : rq_plat_lock_probe(c->segment.plat, WORKER_LOCK);
    st->worker_live = live > 0;
    return live < 0 ? live : RQ_OK; /* a probe that cannot tell is an error */
}
