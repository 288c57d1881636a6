/*
 * spsc.pml - rq's SPSC ring and its wake-up protocol, with crashes.
 *
 * One producer process and one consumer process share the segment
 * (src/layout.h).  A Killer may kill either of them before any of its
 * steps (the `unless` around each body); the OS then drops the dead side's
 * role lock and its futex sleep, and the side is started again (rq_open,
 * role_acquire in src/queue.c) with only the shared words kept.  Memory is
 * sequentially consistent here: see "Model" in docs/design.md for where
 * the code gets that ordering (seq_cst stores, or the asymmetric fence).
 *
 * Labels name the code's crash points (src/crashpoint.h) where one stands;
 * a kill can land before any step, not only there.  Each atomic step makes
 * at most one access to a shared word (local work and ghost bookkeeping
 * ride along: a kill would discard them anyway).
 *
 * Switches (spin -D...):
 *   N        slots (offsets run over [0, 2N))              default 2
 *   M        messages the producer application sends       default 3
 *   PCRASH   kills of the producer                         default 2
 *   CCRASH   kills of the consumer                         default 2
 *   RECHECK  1: every sleep may end by timeout (deadline.h's 1 s re-check)
 *   PERMANENT 1: a killed side may stay dead (nobody restarts it)
 *   SEQ      1: also model the sequence numbers (below)         default 0
 *   BUG      0: the code as it is.  Injected bugs, each must be caught:
 *            1 the waiter sleeps without re-checking the ring after it
 *              registered (check-then-register)
 *            2 the producer signals before it publishes write_offset
 *            3 a restarted side does not signal its peer at open
 *            4 the producer takes "full" to be N + 1 messages
 *            5 the waiter reads the event's seq after its ready check
 *            6 the producer stores write_position before write_offset (SEQ)
 *            7 a consumer that takes over from a dead one does not flag
 *              the oldest message (SEQ)
 *            8 a side that recovered its position from a lagging stored
 *              copy does not store it back (SEQ): kills between offset and
 *              position in several lives in a row add their lags up, and
 *              once they reach 2N the next side recovers a wrong number
 *            9 the takeover flags two messages, not only the oldest (SEQ):
 *              a message nobody saw is flagged beyond one per death
 *
 * Sequence numbers (ring.h: rq_ring_position, rq_ring_flag_oldest): each side
 * stores its 64-bit position after its offset when the new offset is a
 * multiple of PERIOD (the largest power of two <= N; ring.h's
 * rq_ring_stop: the code tests the offset, which for the N checked here,
 * powers of two, is the same as testing the position) and recovers it at
 * open from the offset; every message's number must be its true index (ghost
 * `published` / `released`), the same on both sides, and every repeat of
 * a message must carry the redelivery flag.  A single hand-out stores no
 * mark (the model's consumer hands out one message at a time, like
 * rq_peek): every restart here follows a kill, so the restarted consumer
 * flags the oldest message if the ring holds one, and stores the mark
 * past it (delivered_position, otherwise the bursts' mark, which this
 * model never stores).
 */
#ifndef N
#define N 2
#endif
#ifndef M
#define M 3
#endif
#ifndef PERIOD
#define PERIOD N /* the code's P (largest power of two <= N) for the N checked,
                     1, 2 and 4; scripts/model-check.sh also sets PERIOD = 2N,
                     which must fail */
#endif
#ifndef PCRASH
#define PCRASH 2
#endif
#ifndef CCRASH
#define CCRASH 2
#endif
#ifndef RECHECK
#define RECHECK 0
#endif
#ifndef PERMANENT
#define PERMANENT 0
#endif
#ifndef BUG
#define BUG 0
#endif
#ifndef SEQ
#define SEQ 0
#endif

#define TWO_N (2 * N)
/* ring.h: rq_ring_distance, rq_ring_next, rq_ring_slot, rq_ring_pair_ok */
#define DIST(w, r) ((w) >= (r) -> (w) - (r) : (w) + TWO_N - (r))
#define NEXT(x) ((x) + 1 == TWO_N -> 0 : (x) + 1)
#define SLOT(x) ((x) < N -> (x) : (x) - N)
#define PAIR_OK(w, r) ((w) < TWO_N && (r) < TWO_N && DIST(w, r) <= N)
/* rq_ring_position: the first value >= STORED congruent to OFF mod 2N */
#define POSITION(stored, off) ((stored) + DIST(off, (stored) % TWO_N))

#if BUG == 4
#define CAPACITY (N + 1)
#else
#define CAPACITY N
#endif

/* ---- the shared segment ---------------------------------------------- */
byte write_offset, read_offset;
/* The events (struct rq_shm_event).  seq is a 32-bit counter that a waiter
 * reads before its check and sleeps on "while seq == what I read".  Only
 * that comparison is ever made, and the counter does not wrap within a
 * wait, so the model keeps exactly that: "seq moved since its sleeper read
 * it" (SPSC: one possible sleeper per event).  Reading seq clears it, a
 * signal's bump sets it. */
byte data_waiters, space_waiters;
bool data_seq_moved, space_seq_moved;
byte slot_lo[N], slot_hi[N];   /* a payload is two words: a torn copy shows */
byte slot_seq[N];              /* ghost: the number the producer gave it */
/* line 1 and 2's positions (u64 in the code; M is small here) */
byte write_position, read_position, delivered_position;

/* ---- the OS ----------------------------------------------------------- */
bool consumer_asleep, producer_asleep; /* in FUTEX_WAIT */
bool kill_p, kill_c;                   /* SIGKILL pending */
byte p_kills, c_kills;
bool p_gone, c_gone;                   /* PERMANENT: died for good */
bool p_finished;                       /* the producer application is done */

/* ---- ghosts: what the applications know ------------------------------ */
byte published; /* messages whose write_offset store happened: message k is k */
byte released;  /* read_offset stores */
byte handled;   /* messages the consumer application has handled (durably) */
byte new_flagged; /* first deliveries that carried the redelivery flag */

/* Every store of an offset keeps the ring's accounting exact: both offsets
 * in range, and write - read (mod 2N) is the number of messages published
 * and not released, never more than N. */
#define RING_INVARIANT \
    assert(write_offset < TWO_N && read_offset < TWO_N); \
    assert(DIST(write_offset, read_offset) == published - released); \
    assert(published - released <= N)

/* futex(FUTEX_WAIT, &seq, seen): one atomic step that sleeps only if seq
 * still holds what the waiter read.  The caller then blocks on !ASLEEP
 * until a FUTEX_WAKE (or its death) clears it; with RECHECK the sleep may
 * also end by timeout at any moment. */
#define FUTEX_WAIT(moved, asleep) \
    atomic { if :: !moved -> asleep = true :: else -> skip fi }

#if RECHECK
#define SLEEP(asleep) if :: !asleep :: asleep -> asleep = false /* timeout: re-check */ fi
#else
#define SLEEP(asleep) !asleep
#endif

/* signal_peer: bump seq, then wake whoever sleeps on it. */
#define SIGNAL(seq, asleep, at) \
    signal_before_bump_##at: seq##_moved = true; \
    signal_before_wake_##at: asleep = false

/* A kill is one step: while one is pending only its victim moves, and
 * its next move is the escape (the OS's clean-up of the dead process). */
bool kill_pending;

proctype Producer() provided (!kill_pending || kill_p)
{
    byte write, read_cache, rd, wpos;
    bool is_full, ready;
restart:
    {
        /* role_acquire: the role lock of a dead holder has been dropped by
         * the OS, so this is the only producer. */
        skip; /* rq_plat_lock(RQ_LOCK_PRODUCER, RQ_LOCK_TRY) */
open_after_role_lock:
        space_waiters = 0; /* stale count of a holder killed while waiting */
        write = write_offset; /* rq_ring_load */
        d_step { rd = read_offset; assert(PAIR_OK(write, rd)); read_cache = rd; rd = 0 }
#if SEQ
        d_step { wpos = POSITION(write_position, write); assert(wpos == published) }
#endif
#if SEQ && BUG != 8
        if /* rq_ring_anchor: a lagging copy is stored back before any publish */
        :: write_position != wpos -> write_position = wpos
        :: else
        fi;
#endif
open_after_takeover:
#if BUG != 3
        /* the predecessor may have died between publish and signal */
        SIGNAL(data_seq, consumer_asleep, open);
#endif
        do
        :: published == M -> break
        :: else ->
            /* producer_claim -> rq_ring_push_begin(shared_write = 0) */
            d_step {
                is_full = false;
                if
                :: DIST(write, read_cache) >= CAPACITY ->
                    rd = read_offset;
#if BUG != 4
                    assert(PAIR_OK(write, rd));
#endif
                    read_cache = rd;
                    is_full = (DIST(write, rd) == CAPACITY);
                    rd = 0
                :: else
                fi
            }
            if
            :: is_full ->
                /* wait_on(space_event, ready_for_producer) */
#if BUG != 5
                space_seq_moved = false; /* seq = load(space_event.seq) */
#endif
                space_waiters++;
wait_after_register_p:
#if BUG == 1
                ready = false;
#else
                ready = (DIST(write, read_offset) < CAPACITY); /* rq_ring_has_space */
#endif
                if
                :: ready -> skip
                :: else ->
#if BUG == 5
                    space_seq_moved = false; /* seq = load(space_event.seq) */
#endif
                    FUTEX_WAIT(space_seq_moved, producer_asleep);
                    SLEEP(producer_asleep)
                fi;
wait_after_wake_p:
                d_step { space_waiters--; ready = false; is_full = false }
            :: else ->
push_after_claim:
                d_step {
                    slot_lo[SLOT(write)] = published + 1;
#if SEQ
                    slot_seq[SLOT(write)] = wpos
#endif
                }
                slot_hi[SLOT(write)] = published + 1;
push_after_payload:
#if BUG == 2
                if
                :: data_waiters > 0 -> SIGNAL(data_seq, consumer_asleep, early)
                :: else
                fi;
#endif
#if SEQ && BUG == 6
                write_position = wpos + 1;
#endif
                d_step { /* rq_ring_push_publish */
                    write = NEXT(write);
                    write_offset = write;
                    published++;
#if SEQ
                    wpos++;
#endif
                    RING_INVARIANT
                }
push_before_position:
#if SEQ && BUG != 6
                if /* rq_ring_stopped: only at a multiple of the period */
                :: write % PERIOD == 0 -> write_position = wpos
                :: else -> skip
                fi;
#endif
push_after_publish:
#if BUG != 2
                if
                :: data_waiters > 0 -> SIGNAL(data_seq, consumer_asleep, push)
                :: else
                fi
#endif
            fi
        od;
        p_finished = true
    } unless {
        kill_p ->
        d_step {
            producer_asleep = false;
            kill_p = false;
            kill_pending = false;
            write = 0; read_cache = 0; rd = 0; wpos = 0; is_full = false; ready = false
        }
        if
        :: PERMANENT -> p_gone = true
        :: true -> goto restart
        fi
    }
}

proctype Consumer() provided (!kill_pending || kill_c)
{
    byte read, write_cache, w, old, lo, rpos, delivered, below;
    bool is_empty, ready, was_full, flagged;
restart:
    {
        skip; /* rq_plat_lock(RQ_LOCK_CONSUMER, RQ_LOCK_TRY) */
open_after_role_lock:
        data_waiters = 0;
        d_step { w = write_offset; write_cache = w } /* rq_ring_load */
        d_step { read = read_offset; assert(PAIR_OK(w, read)); w = 0 }
#if SEQ
        d_step { rpos = POSITION(read_position, read); assert(rpos == released) }
#if BUG != 8
        if /* rq_ring_anchor */
        :: read_position != rpos -> read_position = rpos
        :: else
        fi;
#endif
        d_step {
            below = delivered_position;
            if
            :: below >= rpos && below - rpos <= N -> skip
            :: else -> below = rpos
            fi;
            delivered = below
        }
#if BUG != 7
        d_step { /* rq_ring_flag_oldest: the predecessor died */
            if
            :: c_kills > 0 && write_cache != read && below == rpos ->
#if BUG == 9
                below = rpos + 2; delivered = below; delivered_position = below
#else
                below = rpos + 1; delivered = below; delivered_position = below
#endif
            :: else
            fi
        }
#endif
#endif
open_after_takeover:
#if BUG != 3
        SIGNAL(space_seq, producer_asleep, open);
#endif
        /* The consumer is a server: it pops for ever. */
        do
        :: true ->
            /* a pop or peek (slot_pop_info, slot_peek_info) -> rq_ring_pop_begin */
            d_step {
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
                /* wait_on(data_event, ready_for_consumer) */
#if BUG != 5
                data_seq_moved = false; /* seq = load(data_event.seq) */
#endif
                data_waiters++;
wait_after_register_c:
#if BUG == 1
                ready = false;
#else
                ready = (write_offset != read); /* rq_ring_has_data */
#endif
                if
                :: ready -> skip
                :: else ->
#if BUG == 5
                    data_seq_moved = false; /* seq = load(data_event.seq) */
#endif
                    FUTEX_WAIT(data_seq_moved, consumer_asleep);
end_idle:           SLEEP(consumer_asleep)
                fi;
wait_after_wake_c:
                d_step { data_waiters--; ready = false; is_empty = false }
            :: else ->
                /* the oldest message: copy it (rq_pop) or hand it out
                 * (rq_peek); the payload is read in two loads */
                lo = slot_lo[SLOT(read)];
                /* rq_ring_oldest_info: the number and the flag (no mark:
                 * see rq_ring_flag_oldest above) */
#if SEQ
                d_step { flagged = (rpos < below); assert(rpos == released && rpos == slot_seq[SLOT(read)]) }
#endif
peek_handed_out:
                d_step { /* the hand-over: the application handles it */
                    assert(lo == slot_hi[SLOT(read)]); /* not torn */
                    assert(lo == released + 1);        /* the next one: nothing lost, in order */
                    if
                    :: handled == released -> /* new */
                        handled++;
                        /* flagged although nobody saw it: at most one per
                         * consumer death (the oldest after a takeover) */
                        if
                        :: flagged -> new_flagged++; assert(new_flagged <= c_kills)
                        :: else
                        fi
                    :: else ->
                        assert(handled == released + 1); /* redelivery of the one in flight */
                        assert(!SEQ || flagged)          /* ... and it says so */
                    fi;
                    lo = 0;
                    flagged = false
                }
pop_after_copy:
                d_step { /* rq_release -> consumer_release -> rq_ring_pop_publish */
                    old = read;
                    read = NEXT(read);
                    read_offset = read;
                    released++;
#if SEQ
                    rpos++;
#endif
                    RING_INVARIANT
                }
release_before_position:
#if SEQ
                if
                :: read % PERIOD == 0 -> read_position = rpos
                :: else -> skip
                fi;
#endif
release_after_publish:
                if
                :: space_waiters > 0 ->
                    d_step { /* rq_ring_was_full(old) */
                        if
                        :: write_cache < TWO_N && DIST(write_cache, old) == N -> was_full = true
                        :: else ->
                            w = write_offset;
                            was_full = (w >= TWO_N || DIST(w, old) == 0 || DIST(w, old) >= N);
                            w = 0
                        fi
                    }
                    if
                    :: was_full -> SIGNAL(space_seq, producer_asleep, release)
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
            rpos = 0; delivered = 0; below = 0; flagged = false;
            is_empty = false; ready = false; was_full = false
        }
        if
        :: PERMANENT -> c_gone = true
        :: true -> goto restart
        fi
    }
}

/* Kills either side before any of its steps, within a budget; may retire
 * at any time, so every state is also seen with no rescue by a kill. */
active proctype Killer()
{
end_killer:
    do
    :: d_step { p_kills < PCRASH && !kill_p && !p_finished && !p_gone -> kill_p = true; kill_pending = true; p_kills++ }
    :: d_step { c_kills < CCRASH && !kill_c && !c_gone -> kill_c = true; kill_pending = true; c_kills++ }
    :: break
    od
}

/* When nothing can move any more: nobody may be asleep beside work. */
active proctype Quiescence()
{
    timeout ->
    assert(!(consumer_asleep && write_offset != read_offset));
    assert(!(producer_asleep && DIST(write_offset, read_offset) < N));
    assert(p_gone || c_gone || (published == M && released == M))
}

init
{
    atomic { run Producer(); run Consumer() }
}

/* Liveness (pan -a -f: weak fairness, i.e. the OS runs a runnable process
 * eventually; a sleeper is not runnable and gets no help from it). */
ltl all_delivered { <> (released == M) }
/* A published message is eventually consumed (also when the producer is
 * gone for good: the PERMANENT runs). */
ltl none_stranded { [] ((write_offset != read_offset) -> <> (write_offset == read_offset || c_gone)) }
