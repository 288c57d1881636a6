/*
 * poll.pml - a poller's arming against the publisher's signal through the
 * poll object (src/queue.c: poll_arm against producer_publish ->
 * signal_peer -> notify_poller, and role_acquire's signal at open), with
 * the publisher killed before any of its steps and restarted.
 *
 * The consumer waits in an event loop: it pops while there is a message;
 * on RQ_EAGAIN it arms (drains its FIFO, sets the poller bit, looks at the
 * ring again) and, finding nothing, waits until the FIFO holds a byte.
 * The wait has no timeout here: the model shows that no wake-up is lost
 * through the object alone, a killed publisher's restart included, so the
 * bounded wait of rq_poll_timeout is needed only for a publisher that
 * never comes back (and, without full fences, for the nap: fence.pml).
 * A consumer blocked in its wait while a message is there and the
 * publisher has finished is an invalid end state.
 *
 * Memory is sequentially consistent: the arming's fetch_or is the
 * registration's fetch_add of fence.pml, the publisher's path is the one
 * fence.pml checks, so its fences carry over.
 *
 * Switches (spin -D...):
 *   M     messages                                       default 3
 *   K     publisher kills                                default 2
 *   BUG   0: the code as it is.  Injected bugs, each must be caught:
 *         1 the poller looks at the ring before it sets the bit
 *         2 the poller drains its FIFO after its last look at the ring
 *         3 the publisher writes the FIFO before it clears the bit
 *         4 a restarted publisher signals only if the bit is set
 *         5 the poller drains after setting the bit (a signaller that
 *           cleared the new bit for a message already taken loses it)
 */
#ifndef M
#define M 3
#endif
#ifndef K
#define K 2
#endif
#ifndef BUG
#define BUG 0
#endif

byte W;      /* messages published (write_offset) */
byte R;      /* messages consumed (read_offset) */
bool pbit;   /* the poller bit of data_event.waiters */
byte fifo;   /* bytes in the consumer's FIFO (a full pipe only says EAGAIN) */
byte kills;

inline fifo_write() {
    if
    :: fifo < 2 -> fifo++
    :: else -> skip
    fi
}

/* A SIGKILL before the next step: the publisher starts again at open. */
#define CRASH if :: kills < K -> kills++; goto restart :: true -> skip fi

active proctype Publisher()
{
restart:
    /* role_acquire: the signal at open, whatever the bit says (BUG 4:
     * only if it is set) */
#if BUG == 4
    if
    :: pbit -> pbit = false; CRASH; fifo_write()
    :: else -> skip
    fi;
#else
    pbit = false;             /* notify_poller(force): fetch_and */
    CRASH;
    fifo_write();            /* rq_plat_poll_notify */
#endif
    CRASH;
    do
    :: W < M ->
        W++;                 /* rq_ring_push_publish */
        CRASH;               /* push.after_publish */
        if
        :: pbit ->
#if BUG == 3
            fifo_write();
            CRASH;
            pbit = false
#else
            pbit = false;     /* fetch_and, which saw the bit set */
            CRASH;           /* signal.before_notify */
            fifo_write()
#endif
        :: else -> skip
        fi;
        CRASH
    :: else -> break
    od
}

active proctype Poller()
{
    do
    :: R == M -> break
    :: else ->
        if
        :: R < W -> R++      /* rq_pop: a message */
        :: else ->           /* RQ_EAGAIN: poll_arm */
#if BUG == 1
            if
            :: R < W -> pbit = true
            :: else -> fifo = 0; pbit = true; (fifo > 0)
            fi
#elif BUG == 2
            pbit = true;
            if
            :: R < W -> skip
            :: else -> fifo = 0; (fifo > 0)
            fi
#else
#if BUG == 5
            pbit = true; fifo = 0; /* drained after the announcement */
#else
            fifo = 0;        /* rq_plat_poll_drain */
            pbit = true;     /* fetch_or(waiters, RQ_WAITERS_POLLER) */
#endif
            if
            :: R < W -> skip /* ready after all: go round */
            :: else ->
                (fifo > 0)   /* epoll_wait: the object is ready */
            fi
#endif
        fi
    od
}
