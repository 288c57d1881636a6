/*
 * coalesce.pml - rq's crash-safe coalescing requests (src/coalesce.c),
 * with kills at every step.
 *
 * NR requester processes change a shared state and then request a round
 * of idempotent work; one worker waits, does the work (it reads the
 * state) and marks the round done.  The request word is
 * req = (count << 1) | WAITING; work is owed while count != done.
 * The worker sets WAITING with an atomic OR in the very word it sleeps
 * on (looking again if the count moved since its load) and clears it with
 * an atomic AND; a requester that sees WAITING has the kernel add to the
 * word and wake in one step (rq_plat_add_and_wake, FUTEX_WAKE_OP), one
 * that does not bumps the count by CAS, or, after losing the CAS a few
 * times (RQC_REQUEST_TRIES), adds and wakes all the same: here at any
 * attempt.  The worker stores done = ticket only after the work.
 *
 * Memory is sequentially consistent; labels name crash points of
 * src/crashpoint.h; a kill can land between any two steps.
 *
 * Switches (spin -D...):
 *   K          state changes (and requests) per requester       default 2
 *   RCRASH     kills shared by the requesters                   default 1
 *   WCRASH     kills of the worker                              default 2
 *   PERMANENT  1: a killed requester may stay dead
 *   WIN        1: add-and-wake in two steps, as platform_win.c does
 *              (InterlockedExchangeAdd, then SetEvent)
 *   RECHECK    1: the worker's sleep may end by timeout (1 s re-check)
 *   BUG        0: the code.  Injected bugs, each must be caught:
 *              1 done is stored when the round is taken, before the
 *                work (a flag reset before the work, as the first sketch did)
 *              2 the worker sets WAITING with a plain store, not an
 *                atomic OR
 *              3 a requester that sees WAITING bumps the count by CAS
 *                and does not wake the worker
 *              4 the worker's OR ignores a request counted since its load
 *                and sleeps on the word it made
 */
#define NR 2
#ifndef K
#define K 2
#endif
#ifndef RCRASH
#define RCRASH 1
#endif
#ifndef WCRASH
#define WCRASH 2
#endif
#ifndef PERMANENT
#define PERMANENT 0
#endif
#ifndef WIN
#define WIN 0
#endif
#ifndef RECHECK
#define RECHECK 0
#endif
#ifndef BUG
#define BUG 0
#endif

#define WAITING 1
#define COUNT(r) ((r) >> 1)

/* ---- the shared object (struct rqc_shm) ------------------------------ */
byte req;         /* (count << 1) | WAITING: the futex word */
byte done;        /* work.done (work.taken is only a statistic here) */

/* ---- the OS ----------------------------------------------------------- */
bool worker_asleep;
bool kill_w, kill_r[NR], kill_pending;
byte w_kills, r_kills;
bool r_finished[NR], r_gone[NR];

/* ---- ghosts ----------------------------------------------------------- */
byte st;              /* version of the state the requesters change */
byte need;           /* the version when the count last moved: a round
                      * covering the current count must have seen it */
byte covered;         /* the version the last *finished* work read */
byte made[NR];        /* changes requester i has made */
bool pending[NR];     /* requester i changed the state; its request has not returned */

#if RECHECK
#define SLEEP(asleep) if :: !asleep :: asleep -> asleep = false fi
#else
#define SLEEP(asleep) !asleep
#endif

proctype Worker() provided (!kill_pending || kill_w)
{
    byte r, ticket, seen, before;
    bool is_owed, swapped;
restart:
    {
        skip; /* rq_plat_lock(RQ_LOCK_CONSUMER, RQ_LOCK_TRY) */
        /* worker_acquire -> clear_waiting: a dead predecessor may have
         * left WAITING set; nobody else can be asleep here */
        req = req & ~WAITING; /* one atomic AND */
coalesce_open_after_takeover:
        /* the worker application: wait, work, done, for ever */
        do
        :: true ->
            /* rq_coalesce_wait */
            d_step {
                r = req;
                is_owed = (COUNT(r) != done); /* done is the worker's own word */
                /* nothing owed: every request counted so far is covered
                 * by a finished round */
                assert(is_owed || covered >= need)
            }
            if
            :: is_owed ->
                /* take_round: clear WAITING (one atomic AND); the ticket
                 * is the count of the load above */
                if
                :: (r & WAITING) -> req = req & ~WAITING
                :: else
                fi;
                ticket = COUNT(r); /* work.taken = ticket */
coalesce_wait_after_take:
#if BUG == 1
                done = ticket;
#endif
                /* the work: it reads the state and is finished (a kill in
                 * between leaves only local traces, like a kill before it) */
                d_step { seen = st; if :: seen > covered -> covered = seen :: else fi; seen = 0 }
                /* rq_coalesce_done */
coalesce_done_before_store:
                d_step { done = ticket; ticket = 0; r = 0; is_owed = false }
            :: else ->
                swapped = true;
                if
                :: !(r & WAITING) ->
#if BUG == 2
                    req = r | WAITING;
                    r = r | WAITING
#else
                    /* one atomic OR; a request since the load: look again */
                    d_step {
                        before = req;
                        req = req | WAITING;
                        if
#if BUG != 4
                        :: COUNT(before) != COUNT(r) -> swapped = false
#endif
                        :: else -> r = before | WAITING
                        fi;
                        before = 0
                    }
#endif
                :: else
                fi;
                if
                :: swapped ->
coalesce_wait_after_announce:
                    /* futex wait on req: sleeps only while req == r */
                    atomic { if :: req == r -> worker_asleep = true :: else fi };
end_idle:           SLEEP(worker_asleep)
                :: else /* a request came in: look again */
                fi;
                d_step { r = 0; is_owed = false; swapped = false }
            fi
        od
    } unless {
        kill_w ->
        d_step {
            worker_asleep = false;
            kill_w = false;
            kill_pending = false;
            r = 0; ticket = 0; seen = 0; is_owed = false; swapped = false
        }
        goto restart
    }
}

proctype Requester(byte me) provided (!kill_pending || kill_r[me])
{
    byte r;
    bool bumped, wake;
restart:
    {
        skip; /* rq_plat_lock(RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED) */
        do
        :: d_step { /* the application changes the shared state, then requests */
               !pending[me] && made[me] < K -> st++; made[me]++; pending[me] = true }
        :: !pending[me] && made[me] == K -> break
        :: pending[me] ->
            /* rq_coalesce_request (the overflow case, 2^31 - 1 owed,
             * cannot arise with these few requests) */
            r = req;
            bumped = false;
            do
            :: bumped -> break
            :: else ->
coalesce_request_before_bump:
                if
                :: (r & WAITING) -> wake = true
                :: else ->
                    if
                    :: atomic { if :: req == r -> req = r + 2; need = st; bumped = true :: else -> r = req fi }
                    :: wake = true /* the CAS lost RQC_REQUEST_TRIES times */
                    fi
                fi;
                if
                :: wake ->
#if BUG == 3
                    atomic { if :: req == r -> req = r + 2; need = st; bumped = true :: else -> r = req fi };
#elif WIN
                    d_step { req = req + 2; need = st };
win_between_add_and_set_event:
                    d_step { worker_asleep = false; bumped = true };
#else
                    /* FUTEX_WAKE_OP: add 2 and wake, one kernel step */
                    d_step { req = req + 2; need = st; worker_asleep = false; bumped = true };
#endif
                    wake = false
                :: else
                fi
            od;
coalesce_request_after_bump:
            atomic { pending[me] = false; r = 0; bumped = false }
        od;
        r_finished[me] = true
    } unless {
        kill_r[me] ->
        d_step { kill_r[me] = false; kill_pending = false; r = 0; bumped = false; wake = false }
        if
        :: PERMANENT -> r_gone[me] = true
        :: true -> goto restart
        fi
    }
}

active proctype Killer()
{
end_killer:
    do
    :: d_step { w_kills < WCRASH && !kill_w -> kill_w = true; kill_pending = true; w_kills++ }
    :: d_step { r_kills < RCRASH && !kill_r[0] && !r_finished[0] && !r_gone[0] -> kill_r[0] = true; kill_pending = true; r_kills++ }
    :: d_step { r_kills < RCRASH && !kill_r[1] && !r_finished[1] && !r_gone[1] -> kill_r[1] = true; kill_pending = true; r_kills++ }
    :: break
    od
}

/* When nothing can move any more: nothing owed, every change seen by a
 * finished round, and WAITING set only while the worker really sleeps. */
active proctype Quiescence()
{
    timeout ->
    assert(COUNT(req) == done);
    assert(r_gone[0] || r_gone[1] || covered == st);
    assert(!(req & WAITING) || worker_asleep)
}

init
{
    atomic { run Worker(); run Requester(0); run Requester(1) }
}

/* Owed work is eventually done (weak fairness). */
ltl owed_work_done { [] ((COUNT(req) != done) -> <> (COUNT(req) == done)) }
