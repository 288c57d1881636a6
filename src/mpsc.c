/*
 * mpsc.c - the MPSC producers' lock (see mpsc.h).
 *
 * What the lock protects: the choice of the next slot (write_offset), the
 * slot's bytes, and the one store that publishes it.  A producer that dies
 * holding it has either not published (its slot is unseen and the next
 * holder overwrites it) or has (the message is delivered).  So taking the
 * lock from a dead owner needs no repair: it is a normal release.
 *
 * Linux protocol (owner word W and waiters word F in struct rq_shm_mpsc,
 * futex word seq):
 *
 *   open:    take a free producer slot (exclusive kernel lock, first free
 *            of RQ_MPSC_PRODUCERS_MAX); while W names no live owner, CAS it
 *            to 0 (a recovery); bump seq and wake every lock waiter
 *   lock:    CAS W 0 -> mine.  Contended: spin a little (yielding the
 *            CPU once between two spins); if W names no valid slot, or
 *            our own slot (we hold nothing, so it is stale),
 *            or its owner is suspect (the same word as at our last look)
 *            and the kernel says its slot is free (the owner's handle is
 *            gone: rq_plat_lock_probe), CAS W from exactly that word to
 *            mine (a recovery).  Otherwise read seq, set F (fetch-or),
 *            run the asymmetric fence (rq_plat_fence_heavy) unless the
 *            slice is only a nap, re-read W, and only if it is still the
 *            word we saw sleep on seq for a slice (a nap of
 *            RQ_MPSC_NAP_MS, doubling up to RQ_RECHECK_MS); then look
 *            again.  A CAS that loses (W changed since the look) looks
 *            again at once, unless the call's time is up
 *   unlock:  store(W, 0, release); compiler barrier; if F is set: take it
 *            (exchange F -> 0), and if we got it: seq++, wake all
 *
 * The release makes no locked instruction: the side about to sleep pays,
 * as in the SPSC wait protocol (queue.c).  With RQ_FULL_FENCES (the
 * header's flag, read at open) the release's store and load of F are
 * sequentially consistent instead (on x86 the store is an xchg) and the
 * waiter runs no fence.  A waiter that runs no fence without
 * RQ_FULL_FENCES (a slice that is only a nap: the first of a wait, or a
 * try's) or whose fence failed sleeps at most one nap: a release racing
 * it may miss its flag, and then it is woken by the nap's end, one nap
 * late, never lost.
 *
 * Why no wake-up is lost: the releaser stores W = 0 and then reads F; a
 * sleeper for longer than a nap sets F and then, after the fence, reads
 * W.  The fence puts a full barrier on the releaser's CPU somewhere in its
 * program, so either
 * the sleeper's re-read sees W changed (it does not sleep) or the
 * releaser's read of F sees the flag (store buffering can no longer hide
 * both).  A releaser that sees F takes it with an exchange; the one whose
 * exchange returns it bumps seq after that, which is after the sleeper's
 * read of seq (every write of F is a read-modify-write, so the exchange
 * reads the sleeper's flag or a later one): the futex wait returns at
 * once.  (A releaser that read F before its store, or a sleeper that
 * re-read W before setting F, would lose it: the model's bugs 7 and 9.)
 * A waiter that sets F and then does not sleep (W changed), or is killed,
 * costs one useless wake at the next release, which clears F.  An owner
 * killed between its store and its wake, or between taking F and the
 * wake, leaves sleepers until their slice ends or a producer opens.
 *
 * Why no live owner is robbed: a recovery CAS expects the exact word of
 * the owner proven dead (its slot free in the kernel).  A new handle on
 * that slot writes other words (its id is in the nonce), so the CAS fails
 * against any later owner.  A waiter never concludes "dead" from the
 * segment alone, except for a word no live producer can have written (no
 * valid slot, or our own slot).
 *
 * What a segment writer can do: anything to W is plain data, checked
 * before use; nothing in it is a pointer or an index into memory.  A word
 * naming no valid slot or a dead slot is recovered (one probe; no
 * RQ_ECORRUPT: no producer can be inside the section under a word it did
 * not write, and refusing would make one scribbled word a permanent
 * outage); a word naming a live producer's slot while that producer holds
 * nothing delays the others until that producer next locks (it recognises
 * its slot and takes the lock over) or closes (its slot is then free), or
 * until their own timeouts.  A writer can always break mutual exclusion
 * (clear W under a holder) or keep rewriting W: it can already write the
 * ring itself, and no more than that follows.
 */
#include "mpsc.h"

#include "crashpoint.h"
#include "deadline.h"
#include "rq.h"

#if RQ_PLAT_MPSC_MUTEX

/* ---- Windows: the named mutex ---------------------------------------- */

int rq_mpsc_init(rq_plat_segment *seg, struct rq_shm *shm)
{
    (void)shm;
    return rq_plat_mutex_init(seg);
}

int rq_mpsc_open(struct rq_mpsc *m, rq_plat_segment *seg, struct rq_shm *shm)
{
    m->seg = seg;
    m->lock = &shm->mpsc;
    m->recoveries = &shm->admin.lock_recoveries;
    m->dead_reservations = &shm->admin.dead_reservations;
    m->held = 0;
    m->slot_pid = NULL;
    /* A producer slot, as on Linux: a pid left on it is a producer that
     * died without closing, outside the lock as well as inside it (the
     * mutex's WAIT_ABANDONED sees only the latter), counted as a takeover.
     * The slot index comes from the kernel object's name, never from the
     * segment. */
    uint32_t slot;
    int rc = rq_plat_producer_slot(seg, &slot);
    if (rc < 0)
        return rc;
    RQ_CRASH_POINT(MPSC_OPEN_AFTER_SLOT);
    m->slot_pid = &shm->slot_pid[slot];
    if (rq_exchange_u32(m->slot_pid, (uint32_t)rq_plat_pid()) != 0)
        rq_fetch_add_u64(&shm->producer.takeovers, 1);
    return RQ_OK;
}

/* Waits for the lock in slices of at most RQ_RECHECK_MS, like every other
 * sleep in rq; an interrupt (the handle's flag, checked before each slice
 * and after each wake-up) ends the wait. */
static int lock_in_slices(struct rq_mpsc *m, int timeout_ms, int *recovered)
{
    int rc = rq_plat_mutex_lock(m->seg, 0, recovered);
    if (rc != RQ_EAGAIN || timeout_ms == 0)
        return rc;
    struct rq_deadline d = rq_deadline_start(timeout_ms);
    for (;;) {
        if (rq_mpsc_interrupted(m))
            return RQ_EINTR;
        int left = rq_deadline_left(&d), is_slice = 0;
        int slice = left == 0 ? 0 : rq_deadline_slice(left, &is_slice);
        rc = rq_plat_mutex_lock(m->seg, slice, recovered);
        if (rc == RQ_EINTR || (rc == RQ_ETIMEDOUT && is_slice))
            continue; /* a stale interrupt event, or the end of a slice */
        return rc;
    }
}

/* Who holds the mutex, for rq_stat only (the mutex cannot be inspected):
 * the holder stores the time it took it, then in the owner word
 * RQ_MPSC_HELD | [RQ_MPSC_RESERVING] | its pid (low 32 bits), and clears
 * the word before it releases.  A holder killed holding it leaves its
 * word; the next holder (WAIT_ABANDONED) overwrites it.  Nothing reads
 * these words to decide anything. */
static void stamp_holder(struct rq_mpsc *m)
{
    rq_store_relaxed_u64(&m->lock->waited_since_ms, rq_plat_now_ms());
    uint64_t word = RQ_MPSC_HELD | (m->reserving ? RQ_MPSC_RESERVING : 0) |
                    ((uint64_t)rq_plat_pid() & UINT64_C(0xffffffff));
    rq_store_release_u64(&m->lock->owner, word);
}

int rq_mpsc_lock(struct rq_mpsc *m, int timeout_ms)
{
    int recovered = 0;
    int rc = lock_in_slices(m, timeout_ms, &recovered);
    if (rc < 0)
        return rc;
    m->held = 1;
    if (recovered) {
        RQ_CRASH_POINT(MPSC_AFTER_RECOVER);
        rq_fetch_add_u64(m->recoveries, 1);
        /* The dead owner's stamp says whether it was reserving: a count
         * for rq_stat, like the stamp itself never acted on. */
        uint64_t dead = rq_load_acquire_u64(&m->lock->owner);
        if ((dead & RQ_MPSC_HELD) && (dead & RQ_MPSC_RESERVING))
            rq_fetch_add_u64(m->dead_reservations, 1);
    }
    stamp_holder(m);
    RQ_CRASH_POINT(MPSC_AFTER_LOCK);
    return RQ_OK;
}

int rq_mpsc_try_lock(struct rq_mpsc *m)
{
    (void)m;
    return RQ_EAGAIN;
}

void rq_mpsc_unlock(struct rq_mpsc *m)
{
    if (!m->held)
        return;
    RQ_CRASH_POINT(MPSC_BEFORE_UNLOCK);
    m->held = 0;
    rq_store_release_u64(&m->lock->owner, 0); /* while still ours */
    rq_plat_mutex_unlock(m->seg);
    RQ_CRASH_POINT(MPSC_AFTER_UNLOCK);
}

void rq_mpsc_close(struct rq_mpsc *m)
{
    rq_mpsc_unlock(m);
    if (m->slot_pid)
        rq_store_relaxed_u32(m->slot_pid, 0); /* a clean close, no death */
    rq_plat_producer_slot_release(m->seg);
}

void rq_mpsc_keep(struct rq_mpsc *m)
{
    (void)m; /* the mutex is the thread's: the OS tells a self-deadlock */
}

void rq_mpsc_holder(struct rq_shm *shm, struct rq_mpsc_holder *out)
{
    /* The words stamp_holder wrote: untrusted, each checked, only shown. */
    uint64_t w = rq_load_acquire_u64(&shm->mpsc.owner);
    *out = (struct rq_mpsc_holder){.pid = 0, .held_ms = -1, .reserving = 0};
    if (w == 0)
        return;
    out->reserving = (w & RQ_MPSC_RESERVING) != 0;
    uint64_t pid = w & UINT64_C(0xffffffff);
    out->pid = (w & RQ_MPSC_HELD) && pid != 0 ? (int64_t)pid : -1;
    uint64_t since = rq_load_relaxed_u64(&shm->mpsc.waited_since_ms), now = rq_plat_now_ms();
    if (since <= now && now - since <= (uint64_t)INT64_MAX)
        out->held_ms = (int64_t)(now - since);
}

#else

/* ---- Linux: the owner word ------------------------------------------- */

/* Looks at a held word before the first sleep: a holder running on
 * another CPU is out of its short section within a few hundred ns. */
#define SPIN_LOOKS 64
#ifndef SPIN_ROUNDS
#define SPIN_ROUNDS 2 /* spins, with a yield of the CPU between them */
#endif

/* Self-deadlock check: the locks this thread holds, by queue.  Only a
 * reservation can hold the lock across calls, so a thread rarely has more
 * than one; beyond HELD_HERE_MAX the check is skipped (a wait then lasts
 * until the caller's timeout, as it would without the check). */
#define HELD_HERE_MAX 8
struct held_here {
    uint64_t object[2];
    uint64_t word;
};
static _Thread_local struct held_here held_here[HELD_HERE_MAX];
static _Thread_local unsigned held_here_count;

static uint32_t slot_of(uint64_t w)
{
    return (uint32_t)(w & RQ_MPSC_SLOT_MASK);
}

/* Could a producer have written W?  (HELD set, slot in range.) */
static int names_a_slot(uint64_t w)
{
    return (w & RQ_MPSC_HELD) && slot_of(w) < (uint32_t)RQ_MPSC_PRODUCERS_MAX;
}

static enum rq_plat_lock_id slot_lock(uint32_t slot)
{
    return (enum rq_plat_lock_id)(RQ_LOCK_PRODUCER_SLOT + (int)slot);
}

/* A word for our next acquisition: never one another handle writes. */
static uint64_t next_word(struct rq_mpsc *m)
{
    m->count++;
    uint64_t count = m->count & ((UINT64_C(1) << RQ_MPSC_COUNT_BITS) - 1);
    uint64_t nonce = (m->id << RQ_MPSC_COUNT_BITS | count) & RQ_MPSC_NONCE_MASK;
    return RQ_MPSC_HELD | (m->reserving ? RQ_MPSC_RESERVING : 0) | nonce << RQ_MPSC_NONCE_SHIFT |
           m->slot;
}

static int same_object(const uint64_t a[2], const uint64_t b[2])
{
    return a[0] == b[0] && a[1] == b[1];
}

static void note_held(struct rq_mpsc *m, uint64_t word)
{
    m->held = 1;
    m->word = word;
}

void rq_mpsc_keep(struct rq_mpsc *m)
{
    if (!m->held || m->kept || held_here_count >= HELD_HERE_MAX)
        return;
    struct held_here *h = &held_here[held_here_count++];
    h->object[0] = m->object[0];
    h->object[1] = m->object[1];
    h->word = m->word;
    m->kept = 1;
}

static void drop_held_here(unsigned i)
{
    held_here[i] = held_here[--held_here_count];
}

static void note_released(struct rq_mpsc *m)
{
    m->held = 0;
    if (!m->kept)
        return;
    m->kept = 0;
    for (unsigned i = 0; i < held_here_count; i++)
        if (held_here[i].word == m->word && same_object(held_here[i].object, m->object)) {
            drop_held_here(i);
            return;
        }
}

/* RQ_EDEADLK if this thread holds the lock through another handle: a
 * record of ours whose word is still the owner.  A record whose word is
 * not (released from another thread, or recovered) is stale: dropped. */
static int check_self_deadlock(struct rq_mpsc *m)
{
    for (unsigned i = 0; i < held_here_count; i++) {
        if (!same_object(held_here[i].object, m->object))
            continue;
        if (rq_load_seq_u64(&m->lock->owner) == held_here[i].word)
            return RQ_EDEADLK;
        drop_held_here(i--);
    }
    return RQ_OK;
}

static void wake_waiters(struct rq_mpsc *m)
{
    rq_fetch_add_u32(&m->lock->seq, 1);
    rq_plat_wake(m->seg, &m->lock->seq, 1);
}

/* Is the owner named by W gone?  1 yes, 0 no (or not suspect yet), or a
 * negative rq_error from the probe.  Only a word seen unchanged since our
 * last look is probed: a live owner's next acquisition writes another. */
static int owner_gone(struct rq_mpsc *m, uint64_t w)
{
    if (!names_a_slot(w) || slot_of(w) == m->slot)
        return 1; /* no producer wrote it, or it is ours and we hold nothing */
    if (w != m->last_seen)
        return 0;
    int held = rq_plat_lock_probe(m->seg, slot_lock(slot_of(w)));
    if (held < 0)
        return held;
    return !held;
}

int rq_mpsc_init(rq_plat_segment *seg, struct rq_shm *shm)
{
    (void)seg;
    (void)shm; /* zeroed with the header: free, no waiters */
    return RQ_OK;
}

/* A lock taken from the dead owner whose word was DEAD: counted, and if
 * it held the lock for a reservation, counted as a dead reservation. */
static void count_recovery(struct rq_mpsc *m, uint64_t dead)
{
    RQ_CRASH_POINT(MPSC_AFTER_RECOVER);
    rq_fetch_add_u64(m->recoveries, 1);
    if (dead & RQ_MPSC_RESERVING)
        rq_fetch_add_u64(m->dead_reservations, 1);
}

static int take_slot(struct rq_mpsc *m)
{
    for (uint32_t slot = 0; slot < (uint32_t)RQ_MPSC_PRODUCERS_MAX; slot++) {
        int rc = rq_plat_lock(m->seg, slot_lock(slot), RQ_LOCK_TRY);
        if (rc == RQ_OK) {
            m->slot = slot;
            return RQ_OK;
        }
        if (rc != RQ_EBUSY)
            return rc;
    }
    return RQ_EBUSY;
}

/* At open: frees a lock whose owner is gone.  A word naming our new slot
 * is our dead predecessor's, and only we can tell it is stale (to the
 * others the slot is alive).  The CAS is retried on the word it finds
 * instead (another owner, perhaps also gone); bounded, in case a writer
 * keeps changing the word. */
static int clear_dead_owner(struct rq_mpsc *m)
{
    uint64_t w = rq_load_seq_u64(&m->lock->owner);
    for (int tries = 0; w != 0 && tries < 64; tries++) {
        m->last_seen = w; /* suspect at once: probe it */
        int gone = owner_gone(m, w);
        if (gone <= 0)
            return gone;
        if (rq_cas_u64(&m->lock->owner, &w, 0)) {
            count_recovery(m, w);
            return RQ_OK;
        }
    }
    return RQ_OK;
}

int rq_mpsc_open(struct rq_mpsc *m, rq_plat_segment *seg, struct rq_shm *shm)
{
    *m = (struct rq_mpsc){.seg = seg,
                          .lock = &shm->mpsc,
                          .recoveries = &shm->admin.lock_recoveries,
                          .dead_reservations = &shm->admin.dead_reservations};
    int rc = rq_plat_segment_identity(seg, m->object);
    if (rc == RQ_OK)
        rc = take_slot(m);
    if (rc < 0)
        return rc;
    m->id = rq_fetch_add_u64(&m->lock->next_id, 1) + 1;
    RQ_CRASH_POINT(MPSC_OPEN_AFTER_SLOT);
    /* Our pid on our slot, for rq_stat; a pid already there is a holder
     * that died without closing (a takeover, as an SPSC producer counts). */
    m->slot_pid = &shm->slot_pid[m->slot];
    if (rq_exchange_u32(m->slot_pid, (uint32_t)rq_plat_pid()) != 0)
        rq_fetch_add_u64(&shm->producer.takeovers, 1);
    rc = clear_dead_owner(m);
    if (rc < 0)
        return rc;
    /* A predecessor may have died between its release and its wake. */
    wake_waiters(m);
    return RQ_OK;
}

/* W after up to SPIN_LOOKS looks while it is held, and if it still is,
 * after giving the CPU away once and looking as long again: a holder
 * still there after the first spin is most likely waiting for a CPU (a
 * push holds the lock for well under a microsecond), perhaps for ours. */
static uint64_t spin(struct rq_mpsc *m, uint64_t w)
{
    for (int round = 0; round < SPIN_ROUNDS && w != 0; round++) {
        if (round > 0) {
            rq_plat_yield();
            w = rq_load_relaxed_u64(&m->lock->owner);
        }
        for (int i = 0; i < SPIN_LOOKS && w != 0; i++) {
            rq_cpu_relax();
            w = rq_load_relaxed_u64(&m->lock->owner);
        }
    }
    return w;
}

/* For rq_stat: since when (at least) the owner W holds the lock.  The
 * first waiter for an owner stamps it; a waiter killed before its stamp
 * leaves it to the next one (rq_stat shows the time as unknown till
 * then).  The time is stored before the word, so a reader that finds the
 * word finds a time at least as new as that waiter's (display only). */
static void stamp_wait(struct rq_mpsc *m, uint64_t w)
{
    if (rq_load_relaxed_u64(&m->lock->waited_word) == w)
        return;
    rq_store_relaxed_u64(&m->lock->waited_since_ms, rq_plat_now_ms());
    rq_store_release_u64(&m->lock->waited_word, w);
}

/* Flags the lock's waiters word for the release, then (if FENCE) makes
 * sure that the owner's release, if it already came, is seen: 1 if W is
 * still the owner word (we may sleep), 0 if it changed (look again), and
 * *FENCED 0 if the fence was skipped or failed (sleep only a nap: a
 * release racing us may have missed our flag).  The flag is a
 * read-modify-write, so the release that takes it reads our read of seq
 * as done before. */
static int flag_and_recheck(struct rq_mpsc *m, uint64_t w, int fence, int *fenced)
{
    rq_fetch_or_u32(&m->lock->waiters, RQ_MPSC_LOCK_WAITERS);
    RQ_CRASH_POINT(MPSC_WAIT_AFTER_FLAG);
    *fenced = m->full_fences || (fence && rq_plat_fence_heavy() == RQ_OK);
    return rq_load_seq_u64(&m->lock->owner) == w;
}

/* Sleeps while the owner word is still W, flagging the waiters word for
 * its release, for one slice of at most LEFT ms; *NAP doubles after a
 * slice that ran out.  A slice no longer than RQ_MPSC_NAP_MS (the first
 * nap of a wait, a try's nap) runs no fence: the fence costs tens of
 * microseconds on a VM and IPIs the holder too, and a release that misses
 * our flag then costs at most that nap, the same bound a failed fence
 * gives.  A release usually wakes us anyway (the race is rare), and a
 * wait that outlasts the nap fences before every longer slice. */
static int sleep_while_owned(struct rq_mpsc *m, uint64_t w, int left, int *nap)
{
    uint32_t seq = rq_load_acquire_u32(&m->lock->seq);
    /* After seq: an interrupt sets the flag before it moves seq on, so
     * either we see the flag or the wait below returns at once. */
    if (rq_mpsc_interrupted(m))
        return RQ_EINTR;
    int slice = left < 0 || left > *nap ? *nap : left, fenced;
    if (!flag_and_recheck(m, w, slice > RQ_MPSC_NAP_MS, &fenced))
        return RQ_OK; /* released or taken over: look again */
    stamp_wait(m, w);
    if (!fenced && slice > RQ_MPSC_NAP_MS)
        slice = RQ_MPSC_NAP_MS; /* no fence: never trust a long sleep */
    int rc = rq_plat_wait(m->seg, &m->lock->seq, seq, slice);
    if (rc != RQ_ETIMEDOUT)
        return rc;
    *nap = *nap * 2 > RQ_RECHECK_MS ? RQ_RECHECK_MS : *nap * 2;
    return RQ_OK;
}

/* DEAD: the word of the dead owner we took the lock from, or 0. */
static int taken(struct rq_mpsc *m, uint64_t word, uint64_t dead)
{
    note_held(m, word);
    if (dead)
        count_recovery(m, dead);
    RQ_CRASH_POINT(MPSC_AFTER_LOCK);
    return RQ_OK;
}

/* After a lost race for the lock (W changed between our look and our
 * CAS: another producer took it, or a peer rewrote it): whether the call
 * is out of time.  Without this bound a stream of lost races, which a peer
 * rewriting W can keep up for as long as it likes, would hold a timed call
 * past its deadline, since only a wait looks at the clock.  A try
 * (D's timeout 0) may race for as long as the one nap it may take;
 * *TRY_END is that nap's end, started at its first lost race (a timeout
 * of 0 there: not yet started). */
static int too_late_to_race(const struct rq_deadline *d, struct rq_deadline *try_end)
{
    if (d->timeout_ms != 0)
        return rq_deadline_left(d) == 0; /* never with RQ_INFINITE */
    if (try_end->timeout_ms == 0)
        *try_end = rq_deadline_start(RQ_MPSC_TRY_NAP_MS);
    return rq_deadline_left(try_end) == 0;
}

/* Contended.  A holder still there after the spin is most likely off its
 * CPU (a push holds the lock for well under a microsecond), and on a
 * machine with fewer cores than processes spinning on would burn the very
 * core it waits for: so the waiter sleeps on seq, woken by the release.
 * A try (TIMEOUT_MS 0) sleeps too, once, for at most RQ_MPSC_TRY_NAP_MS,
 * when the holder holds the lock for a push (bounded work): returning
 * RQ_EAGAIN at once would only have its caller spin on the lock in a loop
 * of calls.  A holder that reserves may hold it for as long as its
 * application likes: a try does not wait for it. */
static int lock_slow(struct rq_mpsc *m, uint64_t mine, uint64_t w, int timeout_ms)
{
    int rc = check_self_deadlock(m);
    if (rc < 0)
        return rc;
    struct rq_deadline d = rq_deadline_start(timeout_ms), try_end = {0, 0};
    int nap = RQ_MPSC_NAP_MS, brief = timeout_ms == 0;
    for (;;) {
        w = spin(m, w);
        int gone = w == 0 ? 0 : owner_gone(m, w);
        if (gone < 0)
            return gone;
        if (w == 0 || gone) {
            /* A dead owner's sleepers left their flag in the waiters
             * word: our release wakes them. */
            uint64_t dead = w;
            RQ_CRASH_POINT(MPSC_LOCK_BEFORE_TAKE);
            if (rq_cas_u64(&m->lock->owner, &w, mine))
                return taken(m, mine, dead);
            if (too_late_to_race(&d, &try_end))
                return rq_deadline_error(&d);
            continue; /* W holds what beat us to it */
        }
        m->last_seen = w;
        int left = rq_deadline_left(&d);
        if (left == 0) {
            if (!brief || (w & RQ_MPSC_RESERVING))
                return rq_deadline_error(&d);
            brief = 0; /* a try: one nap for a push in progress */
            left = RQ_MPSC_TRY_NAP_MS;
        }
        rc = sleep_while_owned(m, w, left, &nap);
        if (rc < 0)
            return rc;
        w = rq_load_seq_u64(&m->lock->owner);
    }
}

int rq_mpsc_lock(struct rq_mpsc *m, int timeout_ms)
{
    uint64_t w = 0, mine = next_word(m);
    if (rq_cas_u64(&m->lock->owner, &w, mine))
        return taken(m, mine, 0);
    return lock_slow(m, mine, w, timeout_ms);
}

int rq_mpsc_try_lock(struct rq_mpsc *m)
{
    uint64_t w = 0, mine = next_word(m);
    return rq_cas_u64(&m->lock->owner, &w, mine) ? taken(m, mine, 0) : RQ_EAGAIN;
}

/* The release found the waiters word set: takes it, and wakes the
 * sleepers if it got it (another release may have taken it first: then
 * that one wakes them). */
static void take_and_wake(struct rq_mpsc *m)
{
    if (rq_exchange_u32(&m->lock->waiters, 0) == 0)
        return;
    RQ_CRASH_POINT(MPSC_UNLOCK_AFTER_TAKE);
    wake_waiters(m);
}

void rq_mpsc_unlock(struct rq_mpsc *m)
{
    if (!m->held)
        return;
    RQ_CRASH_POINT(MPSC_BEFORE_UNLOCK);
    note_released(m);
    struct rq_shm_mpsc *lock = m->lock; /* not reloaded after the barrier */
    uint32_t flagged;
    if (m->full_fences) {
        rq_store_seq_u64(&lock->owner, 0);
        RQ_CRASH_POINT(MPSC_AFTER_UNLOCK);
        flagged = rq_load_seq_u32(&lock->waiters);
    } else {
        /* A plain store, then the flag: a waiter's fence orders the two
         * for us (see the top of this file). */
        rq_store_release_u64(&lock->owner, 0);
        rq_fence_compiler();
        RQ_CRASH_POINT(MPSC_AFTER_UNLOCK);
        flagged = rq_load_relaxed_u32(&lock->waiters);
    }
    if (flagged)
        take_and_wake(m);
}

void rq_mpsc_close(struct rq_mpsc *m)
{
    if (!m->seg)
        return;
    rq_mpsc_unlock(m); /* before the slot goes: nobody has to recover it */
    if (m->slot_pid)
        rq_store_relaxed_u32(m->slot_pid, 0); /* a clean close, no death */
    rq_plat_unlock(m->seg, slot_lock(m->slot));
}

void rq_mpsc_holder(struct rq_shm *shm, struct rq_mpsc_holder *out)
{
    struct rq_shm_mpsc *lock = &shm->mpsc;
    uint64_t w = rq_load_acquire_u64(&lock->owner);
    *out = (struct rq_mpsc_holder){.pid = 0, .held_ms = -1, .reserving = 0};
    if (w == 0)
        return;
    out->reserving = (w & RQ_MPSC_RESERVING) != 0;
    /* Untrusted: a slot out of range names nobody (index checked). */
    uint32_t pid = names_a_slot(w) ? rq_load_relaxed_u32(&shm->slot_pid[slot_of(w)]) : 0;
    out->pid = pid != 0 ? (int64_t)pid : -1;
    if (rq_load_acquire_u64(&lock->waited_word) == w) {
        uint64_t since = rq_load_relaxed_u64(&lock->waited_since_ms), now = rq_plat_now_ms();
        if (since <= now && now - since <= (uint64_t)INT64_MAX)
            out->held_ms = (int64_t)(now - since);
    }
}

#endif
