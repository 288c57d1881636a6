/*
 * mpsc.pml - rq's RQ_MPSC queue: producers serialised by rq's owner-word
 * lock (src/mpsc.c, Linux), with kills at every step.
 *
 * NP producer processes and one consumer share the segment.  Each producer
 * holds a producer slot (a kernel lock, dropped by the OS when it dies) from
 * open to close.  The lock is an owner word: 0, or id << 2 | slot + 1,
 * taken by CAS from 0, and a waiters word of its own.  A contended
 * producer either sleeps on the lock's event (after it read seq, set the
 * waiters word, and found the owner word still the one it saw) or, finding
 * the owner's slot free in the kernel (the probe) or naming its own slot,
 * takes the lock by CAS from that exact word (a recovery).  Unlock is a
 * plain store of 0, then a read of the waiters word; if set, an exchange
 * takes it and the one that got it wakes all sleepers.  The code's waiter
 * runs an asymmetric fence (membarrier) between setting the flag and its
 * re-read, and the releaser only a compiler barrier between its store and
 * its read: memory here is sequentially consistent, which is what that
 * fence gives the pair (model/fence.pml checks the same handshake on
 * x86-TSO for the SPSC wait).  The fence is no step of its own here, so
 * the code's sleeps without it (a slice that is only the 1 ms nap: the
 * first of a wait, a try's; or a failed fence) change nothing in this
 * model: their only extra outcome, a release that misses the flag in a
 * store buffer, needs weaker memory than this, and such a sleep ends by
 * its timeout, which is the bounded sleep RECHECK 1 already lets every
 * sleep take (fence.pml's nap is that case on x86-TSO).  A producer that opens recovers a dead
 * owner's word and wakes all lock sleepers.  Whether a waiter probes or sleeps
 * first is left open (the code probes a word it saw before; here either
 * may happen at any look).  A try (timeout 0) that finds a push in
 * progress sleeps once too (src/mpsc.c): the same sleep, one that may end
 * by its timeout (RECHECK 1); the CPU it yields between two spins is no
 * step on shared memory.  Producers never wait holding the lock.  The
 * consumer is the SPSC consumer, but wakes *all* producers; of the
 * producers that see it registered as waiting, only the one whose CAS
 * takes the count from 1 to 0 signals it (one wake per sleep).  A producer
 * may also close its handle while holding a reservation (rq_close: unlock,
 * nothing published, then the slot goes) and open again.
 *
 * Memory is sequentially consistent; labels name crash points of
 * src/crashpoint.h; a kill can land between any two steps.  Each atomic
 * step makes at most one access to a shared word (plus local work and
 * ghost bookkeeping, which a kill would discard anyway).
 *
 * Switches (spin -D...):
 *   N        slots                                     default 2
 *   MP       messages per producer                     default 2
 *   PCRASH   kills shared by the producers             default 2
 *   CCRASH   kills of the consumer                     default 1
 *   CLOSES   closes holding a reservation, all producers    default 1
 *   RECHECK  1: every sleep (the lock's too) may end by timeout
 *   BUG      0: the code.  Injected bugs, each must be caught:
 *            1 a producer unlocks before it publishes write_offset
 *            2 the consumer wakes one sleeping producer, not all (the first sketch)
 *            3 a producer waits for space holding the lock and then takes
 *              it again (the first sketch).  No longer a safety failure: the holder
 *              takes its own stale word over (it names its slot), so the
 *              others only wait while it sleeps; not in the CI set
 *            4 recovery without the liveness probe: a waiter takes the
 *              lock from any owner it sees (steals a live owner's lock)
 *            5 rq_ring_was_full trusts the consumer's cached write offset
 *              and never reloads write_offset
 *            6 unlock without waking the lock's sleepers
 *            7 unlock reads the waiters word before its store of 0 (not
 *              after): a flag set in between is lost
 *            9 a waiter re-reads the owner word before it sets the
 *              waiters word (not after): a release in between is missed
 *            8 a producer that sees the consumer registered takes no
 *              wake and sends none (the one-wake-per-sleep claim without
 *              its signal): the consumer sleeps with messages waiting
 */
#ifndef N
#define N 2
#endif
#define NP 2
#ifndef MP
#define MP 2
#endif
#ifndef PCRASH
#define PCRASH 2
#endif
#ifndef CCRASH
#define CCRASH 1
#endif
#ifndef CLOSES
#define CLOSES 1
#endif
#ifndef RECHECK
#define RECHECK 0
#endif
#ifndef BUG
#define BUG 0
#endif

#define TOTAL (NP * MP)
#define TWO_N (2 * N)
#define DIST(w, r) ((w) >= (r) -> (w) - (r) : (w) + TWO_N - (r))
#define NEXT(x) ((x) + 1 == TWO_N -> 0 : (x) + 1)
#define SLOT(x) ((x) < N -> (x) : (x) - N)
#define PAIR_OK(w, r) ((w) < TWO_N && (r) < TWO_N && DIST(w, r) <= N)

/* ---- the shared segment ---------------------------------------------- */
byte write_offset, read_offset;
/* Events: "seq moved since this sleeper read it" (see spsc.pml); the
 * space event has one such bit per producer that may sleep on it. */
byte data_waiters, space_waiters;
bool data_seq_moved;
bool space_seq_moved[NP];
byte slot_lo[N], slot_hi[N];
/* lock area: the owner word, the waiters word and the lock's event (seq) */
#define SLOT_OF(w) (((w) & 3) - 1) /* of a word != 0 */
#define SAME_OWNER(a, b) ((a) == (b))
byte owner;   /* 0: free; else gen << 2 | slot + 1 */
bool lock_flag; /* the waiters word: someone may sleep on the lock's seq */
byte gen[NP]; /* handle ids, per slot: the code's ids are global, but all
                 that matters is that a slot's next handle writes other
                 words than its last (mod 4: at most 3 re-opens per run) */
bool lock_seq_moved[NP]; /* the lock's seq moved since this sleeper read it */

/* ---- the OS ----------------------------------------------------------- */
bool consumer_asleep;
bool producer_asleep[NP];
bool lock_asleep[NP];
bool slot_held[NP]; /* the kernel's producer-slot locks (NP producers, NP slots) */
bool kill_p[NP], kill_c;
byte p_kills, c_kills;
bool p_finished[NP];
byte closes; /* reservations dropped by rq_close so far */

/* ---- ghosts ----------------------------------------------------------- */
bool in_cs[NP]; /* live holders of the lock: never two */
byte sent[NP];     /* messages producer i has published (its application's journal) */
byte order[TOTAL]; /* order[k]: the message published k-th */
byte published, released, handled;

#define MSG(p, k) ((p) * MP + (k)) /* message k (1-based) of producer p */

#define RING_INVARIANT \
    assert(write_offset < TWO_N && read_offset < TWO_N); \
    assert(DIST(write_offset, read_offset) == published - released); \
    assert(published - released <= N)

#define FUTEX_WAIT(moved, asleep) \
    atomic { if :: !moved -> asleep = true :: else -> skip fi }

#if RECHECK
#define SLEEP(asleep) if :: !asleep :: asleep -> asleep = false fi
#else
#define SLEEP(asleep) !asleep
#endif

#define SIGNAL_DATA(at) \
    signal_before_bump_##at: data_seq_moved = true; \
    signal_before_wake_##at: consumer_asleep = false

#if BUG == 2
/* FUTEX_WAKE of one: whichever sleeper the kernel picks */
#define WAKE_PRODUCERS \
    if \
    :: producer_asleep[0] -> producer_asleep[0] = false \
    :: producer_asleep[1] -> producer_asleep[1] = false \
    :: else \
    fi
#else
#define WAKE_PRODUCERS d_step { producer_asleep[0] = false; producer_asleep[1] = false }
#endif

#define SIGNAL_SPACE(at) \
    signal_before_bump_##at: d_step { space_seq_moved[0] = true; space_seq_moved[1] = true }; \
    signal_before_wake_##at: WAKE_PRODUCERS

#define WAKE_LOCK_SLEEPERS(at) \
    lock_bump_##at: d_step { lock_seq_moved[0] = true; lock_seq_moved[1] = true }; \
    lock_wake_##at: d_step { lock_asleep[0] = false; lock_asleep[1] = false }

/* rq_mpsc_unlock: the word is still ours; a plain store of 0, then a
 * read of the waiters word (w: 1 if set); if set, an exchange takes it
 * (w: 1 if this release got it) and that release wakes. */
#if BUG == 7
#define UNLOCK_STORE \
    d_step { assert(in_cs[me] && SAME_OWNER(owner, mine)); in_cs[me] = false; w = lock_flag }; \
    owner = 0
#define UNLOCK_READ skip
#else
#define UNLOCK_STORE \
    d_step { assert(in_cs[me] && SAME_OWNER(owner, mine)); in_cs[me] = false; owner = 0 }
#define UNLOCK_READ w = lock_flag
#endif
#if BUG == 6
#define UNLOCK_WAKE(at) skip
#else
#define UNLOCK_WAKE(at) \
    if \
    :: w -> d_step { w = lock_flag; lock_flag = false }; \
        if \
        :: w -> mpsc_unlock_after_take_##at: WAKE_LOCK_SLEEPERS(at) \
        :: else \
        fi \
    :: else \
    fi
#endif
#define UNLOCK(at) \
    mpsc_before_unlock_##at: UNLOCK_STORE; \
    mpsc_after_unlock_##at: UNLOCK_READ; \
    UNLOCK_WAKE(at); \
    w = 0

/* owner_gone: a word naming our own slot is stale (we hold nothing); any
 * other is gone if the kernel says its slot is free (the probe).  (The
 * code probes only a word it saw before, and naps first on a new one:
 * a delay of one nap, which the model leaves out.) */
#if BUG == 4
#define OWNER_GONE gone = true
#else
#define OWNER_GONE \
    if \
    :: SLOT_OF(w) == mys -> gone = true \
    :: SLOT_OF(w) != mys -> gone = !slot_held[SLOT_OF(w)] \
    fi
#endif

/* A kill is one step: while one is pending only its victim moves, and
 * its next move is the escape (the OS's clean-up of the dead process). */
bool kill_pending;

proctype Producer(byte me) provided (!kill_pending || kill_p[me])
{
    byte write, rd, w, mys, mine;
    bool is_full, ready, gone, has_slot, took;
restart:
    {
        skip; /* rq_plat_lock(RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED) */
        d_step { /* rq_mpsc_open: the first free producer slot, a new id */
            if
            :: !slot_held[0] -> mys = 0
            :: else -> mys = 1
            fi;
            assert(!slot_held[mys]);
            slot_held[mys] = true;
            has_slot = true;
            gen[mys] = (gen[mys] + 1) % 4;
            mine = (gen[mys] << 2) | (mys + 1)
        }
mpsc_open_after_slot:
        /* clear_dead_owner: the word is looked at as suspect (probed), and
         * the CAS retried while it fails */
        do
        :: d_step {
                w = owner;
                if
                :: w == 0 -> gone = false
                :: w != 0 && SLOT_OF(w) == mys -> gone = true
                :: w != 0 && SLOT_OF(w) != mys -> gone = !slot_held[SLOT_OF(w)]
                fi
            };
            if
            :: !gone -> break
            :: gone -> d_step { if :: owner == w -> owner = 0; gone = false :: else fi };
                if
                :: !gone -> break
                :: else
                fi
            fi
        od;
        atomic { w = 0; gone = false };
        WAKE_LOCK_SLEEPERS(open);
open_after_role_lock:
        /* an MPSC producer owns no role line: no waiter reset, no load */
open_after_takeover:
        SIGNAL_DATA(open);
        do
        :: sent[me] == MP -> break
        :: sent[me] < MP ->
            /* producer_claim_wait -> rq_mpsc_lock */
            do
            :: d_step { owner == 0 -> owner = mine } -> break
            :: d_step { owner != 0 -> w = owner; OWNER_GONE } ->
                /* the read and the probe as one step: a death or an open
                 * between them changes neither the word nor the outcome
                 * of the CAS that follows */
                if
                :: gone -> /* recovery: CAS from exactly the word seen */
mpsc_lock_before_take:
                    d_step { if :: owner == w -> owner = mine; took = true :: else fi };
                    if
                    :: took -> break
                    :: else
                    fi
                :: else -> /* sleep_while_owned */
                    lock_seq_moved[me] = false; /* read seq */
#if BUG == 9
                    ready = (owner == w); /* the re-read first ... */
                    lock_flag = true;     /* ... then the flag */
mpsc_wait_after_flag:
                    skip;
#else
                    lock_flag = true; /* flag_and_recheck: fetch-or, the fence, */
mpsc_wait_after_flag:
                    ready = (owner == w); /* and the re-read */
#endif
                    if
                    :: ready ->
                        FUTEX_WAIT(lock_seq_moved[me], lock_asleep[me]);
                        SLEEP(lock_asleep[me])
                    :: else
                    fi
                fi;
                d_step { w = 0; gone = false; ready = false }
            od;
            atomic { assert(!in_cs[1 - me]); in_cs[me] = true; took = false; w = 0; gone = false }
mpsc_after_lock:
            /* rq_ring_push_begin(shared_write = 1) */
            d_step {
                /* write_offset is re-read (shared_write): under the lock
                 * nobody else moves it, so this load and the next step's
                 * are one step here */
                write = write_offset;
                assert(write < TWO_N);
                rd = read_offset;
                assert(PAIR_OK(write, rd)); /* under the lock the pair is exact */
                is_full = (DIST(write, rd) == N);
                rd = 0
            }
            if
            :: is_full ->
#if BUG != 3
                UNLOCK(full); /* never wait holding the lock */
#endif
                /* wait_on(space_event, ready_for_producer) */
                space_seq_moved[me] = false;
                space_waiters++;
wait_after_register:
                w = write_offset; /* rq_ring_has_space(shared_write = 1) */
                d_step {
                    rd = read_offset;
                    ready = (!PAIR_OK(w, rd) || DIST(w, rd) < N);
                    rd = 0; w = 0
                }
                if
                :: ready -> skip
                :: else ->
                    FUTEX_WAIT(space_seq_moved[me], producer_asleep[me]);
                    SLEEP(producer_asleep[me])
                fi;
wait_after_wake:
                d_step { space_waiters--; ready = false; is_full = false; write = 0 }
            :: else ->
push_after_claim:
                if
                :: slot_lo[SLOT(write)] = MSG(me, sent[me] + 1)
                :: closes < CLOSES -> /* rq_close holding the reservation: dropped, unseen */
                    closes++;
                    UNLOCK(close);
                    d_step { slot_held[mys] = false; has_slot = false }; /* then the slot goes */
                    goto restart
                fi;
                slot_hi[SLOT(write)] = MSG(me, sent[me] + 1);
push_after_payload:
#if BUG == 1
                UNLOCK(early);
#endif
                d_step { /* rq_ring_push_publish */
                    write = NEXT(write);
                    write_offset = write;
                    order[published] = MSG(me, sent[me] + 1);
                    published++;
                    sent[me]++;
                    RING_INVARIANT;
                    write = 0
                }
push_after_publish:
#if BUG != 1
                UNLOCK(publish);
#endif
                if
#if BUG == 8
                :: data_waiters > 0 -> skip /* claims without a CAS: nobody signals */
#else
                /* wake_consumer: the producer whose CAS takes the count
                 * from 1 to 0 signals; the others leave this sleep to it */
                :: atomic { data_waiters == 1 -> data_waiters = 0 }; SIGNAL_DATA(push)
#endif
                :: else
                fi
            fi
        od;
        p_finished[me] = true
    } unless {
        kill_p[me] ->
        d_step {
            /* the OS: the futex sleeps end; the producer slot is dropped
             * (the owner word stays as it was) */
            producer_asleep[me] = false;
            lock_asleep[me] = false;
            if
            :: has_slot -> slot_held[mys] = false
            :: else
            fi;
            has_slot = false;
            in_cs[me] = false;
            kill_p[me] = false;
            kill_pending = false;
            write = 0; rd = 0; w = 0; mys = 0; mine = 0;
            is_full = false; ready = false; gone = false; took = false
        }
        goto restart
    }
}

proctype Consumer() provided (!kill_pending || kill_c)
{
    byte read, write_cache, w, old, lo;
    bool is_empty, ready, was_full;
restart:
    {
        skip; /* rq_plat_lock(RQ_LOCK_CONSUMER, RQ_LOCK_TRY) */
open_after_role_lock:
        data_waiters = 0;
        d_step { w = write_offset; write_cache = w }
        d_step { read = read_offset; assert(PAIR_OK(w, read)); w = 0 }
open_after_takeover:
        SIGNAL_SPACE(open);
        do
        :: true ->
            d_step { /* rq_ring_pop_begin */
                is_empty = false;
                if
                :: read == write_cache ->
                    w = write_offset;
                    assert(PAIR_OK(w, read));
                    write_cache = w;
                    is_empty = (w == read);
                    w = 0
                :: else
                fi
            }
            if
            :: is_empty ->
                data_seq_moved = false;
                data_waiters = 1; /* register_waiter: the consumer waits alone */
wait_after_register:
                ready = (write_offset != read);
                if
                :: ready -> skip
                :: else ->
                    FUTEX_WAIT(data_seq_moved, consumer_asleep);
end_idle:           SLEEP(consumer_asleep)
                fi;
wait_after_wake:
                d_step { data_waiters = 0; ready = false; is_empty = false }
            :: else ->
                lo = slot_lo[SLOT(read)];
                d_step {
                    assert(lo == slot_hi[SLOT(read)]); /* not torn */
                    assert(lo == order[released]);     /* the next published: none lost, in order */
                    if
                    :: handled == released -> handled++
                    :: else -> assert(handled == released + 1) /* redelivery of the one in flight */
                    fi;
                    lo = 0
                }
pop_after_copy:
                d_step {
                    old = read;
                    read = NEXT(read);
                    read_offset = read;
                    released++;
                    RING_INVARIANT
                }
release_after_publish:
                if
                :: space_waiters > 0 ->
                    d_step { /* rq_ring_was_full(old) */
                        if
                        :: write_cache < TWO_N && DIST(write_cache, old) == N -> was_full = true
#if BUG == 5
                        :: else -> was_full = false
#else
                        :: else ->
                            w = write_offset;
                            was_full = (w >= TWO_N || DIST(w, old) == 0 || DIST(w, old) >= N);
                            w = 0
#endif
                        fi
                    }
                    if
                    :: was_full -> SIGNAL_SPACE(release)
                    :: else
                    fi
                :: else
                fi;
                d_step { old = 0; was_full = false }
            fi
        od
    } unless {
        kill_c ->
        d_step {
            consumer_asleep = false;
            kill_c = false;
            kill_pending = false;
            read = 0; write_cache = 0; w = 0; old = 0; lo = 0;
            is_empty = false; ready = false; was_full = false
        }
        goto restart
    }
}

active proctype Killer()
{
end_killer:
    do
    :: d_step { p_kills < PCRASH && !kill_p[0] && !p_finished[0] -> kill_p[0] = true; kill_pending = true; p_kills++ }
    :: d_step { p_kills < PCRASH && !kill_p[1] && !p_finished[1] -> kill_p[1] = true; kill_pending = true; p_kills++ }
    :: d_step { c_kills < CCRASH && !kill_c -> kill_c = true; kill_pending = true; c_kills++ }
    :: break
    od
}

active proctype Quiescence()
{
    timeout ->
    assert(!(consumer_asleep && write_offset != read_offset));
    assert(!(producer_asleep[0] && DIST(write_offset, read_offset) < N));
    assert(!(producer_asleep[1] && DIST(write_offset, read_offset) < N));
    assert(!lock_asleep[0] && !lock_asleep[1]); /* nobody left asleep on the lock */
    assert(published == TOTAL && released == TOTAL)
}

init
{
    atomic { run Producer(0); run Producer(1); run Consumer() }
}

ltl all_delivered { <> (released == TOTAL) }
