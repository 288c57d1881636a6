/*
 * fence.pml - the wait/wake handshake of one direction (src/queue.c:
 * producer_publish + signal_peer against wait_on) on x86-TSO, where a
 * plain store waits in its CPU's store buffer and becomes visible to the
 * other CPU later than the loads that follow it on its own CPU.
 *
 * spsc.pml assumes sequential consistency, which the code gets from its
 * fences; this model checks those fences.  The publisher stores
 * write_offset with a plain (release) store and then loads the waiter
 * count with a plain load: on x86 the load can complete while the store is
 * still buffered (the store-buffering litmus test).  Only the waiter's
 * membarrier (rq_plat_fence_heavy, MEMBARRIER_CMD_GLOBAL_EXPEDITED), run
 * after it registered and before its last check of the ring, drains the
 * publisher's buffer; so a wait takes its first short sleep (the nap,
 * which ends by itself) without it, and every longer sleep after it.
 * With RQ_FULL_FENCES the publisher stores with xchg instead (a locked
 * instruction: its buffer is drained first) and no membarrier is run.
 *
 * What is modelled:
 *   - memory: write_offset (W, the count of published messages: the ring
 *     itself is spsc.pml's), data_event.waiters, data_event.seq;
 *   - store buffers: the publisher's holds its plain stores of W (values
 *     are consecutive, so the buffer is "memory W up to p_w"); the
 *     waiter's holds a plain store of waiters (BUG 2 only).  A Drain
 *     process moves the oldest entry to memory at any moment, or never;
 *     a locked instruction (fetch_add, xchg) drains its own CPU's buffer
 *     first; membarrier drains both (a full barrier on every CPU, the
 *     caller's included);
 *   - the futex: a sleep starts only while seq still holds the value the
 *     waiter read before registering; a wake ends it.  The nap may also
 *     end by itself (its 1 ms timeout); a long sleep ends only by a wake,
 *     so a message left without one is an invalid end state (pan: the
 *     waiter blocked at "sleep") - what the code counts as a missed wake
 *     and finds only at the 1 s re-check.
 *
 * Switches (spin -D...):
 *   M     messages published, one wait before each              default 2
 *   FULL  1: RQ_FULL_FENCES (xchg publish, no membarrier, no nap)
 *   BUG   0: the code as it is.  Injected bugs, each must be caught:
 *         1 no membarrier before the long sleep (the nap is kept)
 *         2 the waiter registers with a plain store, not fetch_add
 *         3 the publisher loads waiters before it stores write_offset
 *           (rq_fence_compiler gone: the compiler may hoist the load)
 */
#ifndef M
#define M 2
#endif
#ifndef FULL
#define FULL 0
#endif
#ifndef BUG
#define BUG 0
#endif

/* ---- memory and store buffers ----------------------------------------- */
byte W;           /* write_offset in memory */
byte waiters;     /* data_event.waiters in memory */
byte S;           /* data_event.seq in memory */
byte p_w;         /* the publisher's newest store of W (buffered if > W) */
bool c_pend;      /* BUG 2: the waiter's plain store of waiters is buffered */
byte c_val;       /* ... with this value */

/* ---- the OS ----------------------------------------------------------- */
bool asleep;      /* the waiter is in FUTEX_WAIT */
byte published;   /* ghost: messages the publisher has stored */

/* A locked instruction of the publisher: its buffer drains first. */
inline p_drain() { W = p_w }
/* The waiter's locked instruction: its buffer drains first. */
inline c_drain() { if :: c_pend -> waiters = c_val; c_pend = 0 :: else -> skip fi }

active proctype Drain()
{
end:
    do
    :: atomic { W < p_w -> W++ }            /* the oldest buffered store of W */
    :: atomic { c_pend -> waiters = c_val; c_pend = 0 }
    od
}

active proctype Publisher()
{
    byte w;
    do
    :: published < M ->
#if BUG == 3
        w = waiters;                                       /* hoisted above the store */
#endif
#if FULL
        atomic { p_drain(); p_w++; W = p_w; published++ }  /* xchg */
#else
        atomic { p_w++; published++ }                      /* plain store: buffered */
#endif
#if BUG != 3
        w = waiters;                                       /* rq_ring_peer_waits */
#endif
        if
        :: w > 0 ->
            atomic { p_drain(); S++ };                     /* signal_peer: fetch_add seq */
            asleep = 0                                     /* futex_wake */
        :: else -> skip
        fi
    :: else -> break
    od
}

active proctype Waiter()
{
    byte got, seen, s;
    bool napped, fenced;
    do
    :: got == M -> break
    :: else ->
        seen = W;                                          /* rq_ring_pop_begin */
        if
        :: seen > got ->
            got = seen;
            napped = 0                                     /* the next rq_pop starts afresh */
        :: else ->
            /* wait_on */
            s = S;
#if BUG == 2
            atomic { c_pend = 1; c_val = waiters + 1 }     /* plain store: buffered */
#else
            atomic { c_drain(); waiters++ }                /* fetch_add */
#endif
#if FULL
            fenced = 1
#else
            if
            :: !napped -> napped = 1; fenced = 0           /* the nap: no barrier */
            :: else ->
#if BUG == 1
                fenced = 1                                 /* sleeps long, no barrier */
#else
                atomic { p_drain(); c_drain() };           /* membarrier */
                fenced = 1
#endif
            fi;
#endif
            seen = W;                                      /* ready(): has_data */
            if
            :: seen > got -> skip
            :: else ->
                atomic { if :: S == s -> asleep = 1 :: else -> skip fi };
                if
                :: fenced ->
sleep:              !asleep                                /* only a wake ends it */
                :: else ->
                    if
                    :: !asleep -> skip                     /* woken */
                    :: asleep = 0                          /* the nap's timeout */
                    fi
                fi
            fi;
            atomic { c_drain(); waiters-- }                /* fetch_sub */
        fi
    od;
    assert(got == M)
}
