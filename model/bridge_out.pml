/*
 * bridge_out.pml - rq-bridge out's exactly-once scheme without message ids
 * (docs/bridge.md, "Exactly-once without the id: the stream's last
 * sequence"), with kills of the bridge at every step.
 *
 * The queue holds M messages, positions 0..M-1, all produced up front; its
 * released position `released` is the only state of the bridge that
 * survives a kill.  The stream is an array of stored positions and its
 * last sequence.  Each publish carries the sequence it expects the stream
 * to be at (Nats-Expected-Last-Sequence) and the message's position
 * (Rq-Pos).  The bridge keeps a window of up to W publishes in flight: a
 * window that starts at head h with the stream's last sequence L publishes
 * position h+i expecting L+i.  The answer to the oldest publish decides:
 * stored, the head is released (rq_release_burst) and the window slides;
 * refused for the sequence, or no answer, a recovery.  A recovery (at
 * start too) takes back what is in flight (its answers are ignored from
 * then on: a generation number), reads the stream's last sequence L and
 * the position p of its last message in one request (js_GetLastMsg),
 * releases through p if p is at or beyond the head, then publishes from
 * the head expecting L.
 *
 * Too large (the one position BIG, refused as too large whatever it
 * expects): the message goes to the dead-letter queue (rq_push) and a
 * marker takes its place in the stream: a small message with the same
 * Rq-Pos, published at the head in its stead after a recovery, expecting
 * the same sequence the message did, stored, and released on its answer
 * like any message.  So every position takes one stream sequence, the
 * same whoever publishes it, and a copy still on a wire expecting L+i is
 * stored only where it belongs.  Dead-lettering the message and going on
 * without the marker (the rule docs/bridge.md gave first, BUG 5) shifts
 * every later position one sequence down: a copy a killed life left on
 * its wire, expecting the old place, is then stored a second time.  With
 * a window of 1 nothing is in flight behind the head, and that rule holds.
 * Without a dead-letter queue (PARK) the message stays at the head and is
 * retried until the stream's limit is raised; nothing behind it is stored
 * before it.  A limit raised while copies of a dead-lettered message are
 * still on a wire (RAISE) may let one of them into the stream at its
 * place before its marker gets there (the marker is then refused): the
 * message is in the stream (once) and in the dead-letter queue, as it
 * can be with message ids.
 *
 * Each life of the bridge has its own connection: a wire (publishes, in
 * order) and a channel of answers.  A killed life's wire keeps delivering
 * to the server (the socket buffer, or a server still reading a closed
 * connection), interleaved with its successor's; its answers are dropped.
 * A lost connection is a kill here: the bridge's recovery after it keeps
 * nothing from before but the queue, which is all a restart keeps.  The
 * bridge may give up waiting at any moment (a --publish-wait that ran out
 * while the answers were late: TIMEOUTS times in all), and does for sure
 * when its answer can no longer come (its wire and answers are empty: an
 * answer is lost when its channel is full).
 *
 * Assumptions (the scheme's conditions, docs/bridge.md):
 *   - each connection delivers in order (TCP), and the server answers on
 *     it in the order it applies;
 *   - the server applies one publish at a time, the expected-last-sequence
 *     check and the store in one step (one Conn process per connection,
 *     each application one atomic step);
 *   - the bridge owns the stream alone, and the stream keeps its last
 *     message (limits retention, no purge): the recovery's read finds it;
 *   - the server may check the size or the sequence first: a too-large
 *     message expecting the wrong sequence gets either refusal.
 *
 * Checks (ghost variables stored[], dead[]):
 *   - the server never stores a position twice, and stores positions in
 *     increasing order (the stream never holds p after some q > p);
 *   - a position is released only if the stream holds it or it went to
 *     the dead-letter queue, and only the too-large one goes there;
 *   - when nothing can move any more (no kills left, wires drained), the
 *     bridge has finished and every position is stored exactly once (BIG
 *     as its marker), and BIG alone is in the dead-letter queue (once or
 *     more: a kill between its push and its marker's release pushes it
 *     again, never none); a position stored as itself (RAISE) may be in
 *     the dead-letter queue too, a marker never stands for one that is not;
 *   - ltl settled: the bridge finishes (no endless refusals).
 *
 * Switches (spin -D...):
 *   M        messages in the queue                           default 3
 *   W        publishes in flight (the window)                 default 2
 *   WIRE     publishes a connection buffers (its capacity)    default W
 *   KILLS    kills of the bridge                              default 2
 *   TIMEOUTS early give-ups (recoveries while answers are late) default 1
 *   BIG      the position the stream refuses as too large, or 255: none
 *                                                             default 255
 *   RAISE    1: the stream's size limit may be raised at any moment
 *   PARK     1: no dead-letter queue: a too-large message stays at the
 *            head, retried once, then after the limit is raised (which
 *            comes at some moment)
 *   BUG      0: the scheme.  Injected bugs, each must be caught:
 *            1 the recovery does not release through the stream's last
 *              position: it publishes the head expecting L, which the
 *              stream takes again (a duplicate)
 *            2 no expected-last-sequence check (the header left out):
 *              a copy on a killed life's wire, or one taken back, is
 *              stored beside the new one
 *            3 every publish in flight expects the window's L, not L+i:
 *              once the head is stored the next is refused, the one
 *              after it stored in its place, and that answer, expecting
 *              the slid L, releases the refused one (loss)
 *            4 the release at the publish, before the answer (loss)
 *            5 a too-large message is dead-lettered and released with no
 *              marker in its place (needs BIG and W > 1): a duplicate
 *            6 the recovery reads the last message and the last sequence
 *              in two requests: a store between them pairs the new L with
 *              the older position, and the next one is stored twice
 *            7 a refusal for the sequence is retried like the id scheme's
 *              (the window again from the head, same expectations, no
 *              read of the stream): refused for ever once the stream has
 *              moved (ltl settled; no assertion fails)
 */
#ifndef M
#define M 3
#endif
#ifndef W
#define W 2
#endif
#ifndef WIRE
#define WIRE W
#endif
#ifndef KILLS
#define KILLS 2
#endif
#ifndef TIMEOUTS
#define TIMEOUTS 1
#endif
#ifndef BIG
#define BIG 255
#endif
#ifndef RAISE
#define RAISE 0
#endif
#ifndef PARK
#define PARK 0
#endif
#ifndef BUG
#define BUG 0
#endif

#define NC (KILLS + 1) /* connections: one per life */
#define NOPOS 255
#define STORED 1
#define WRONG 2 /* "wrong last sequence" */
#define LARGE 3 /* too large */

/* ---- the queue, the stream and the connections -------------------------- */
byte released;               /* the queue's released position (kept by kills) */
byte last;                   /* the stream's last sequence (0: empty) */
byte spos[M + 1];            /* spos[s]: the position stored at sequence s */
/* publishes: generation, expected sequence, position, marker or not */
chan wire[NC] = [WIRE] of { byte, byte, byte, bool };
/* answers: generation, expected sequence, outcome */
chan ans[NC] = [W] of { byte, byte, byte };
bool alive[NC];              /* the connection's bridge is not killed */

/* ---- the OS and the checks --------------------------------------------- */
bool kill_b;
byte kills, giveups, life;
bool done;                   /* the bridge has released everything */
bool raised;                 /* the stream's size limit was raised: BIG fits */
byte stored[M];              /* ghost: copies in the stream */
byte dead[M];                /* ghost: copies in the dead-letter queue */
bool smark[M];               /* ghost: the stream holds it as a marker */

/* Released only what is in the stream (BIG: its marker, after its push to
 * the dead-letter queue), or with BUG 5 in the dead-letter queue alone. */
#if BUG == 5
#define SAFE_TO_RELEASE(q) (stored[q] == 1 || (q == BIG && dead[q] > 0))
#else
#define SAFE_TO_RELEASE(q) (stored[q] == 1 && (!smark[q] || dead[q] > 0))
#endif

/* rq_release_burst through position x (one store of the released word) */
inline release_through(x)
{
    d_step {
        k = released;
        do
        :: k <= x -> assert(SAFE_TO_RELEASE(k)); k++
        :: else -> break
        od;
        if
        :: x + 1 > released -> released = x + 1
        :: else
        fi;
        k = 0
    }
}

/* The server's side of connection c: one publish applied at a time. */
proctype Conn(byte c)
{
    byte g, e, p, out;
    bool mk;
end_conn:
    do
    :: atomic {
        wire[c]?g, e, p, mk ->
        if
        :: p == BIG && !mk && !raised -> out = LARGE
        :: (p != BIG || mk || raised) && (e == last || BUG == 2) ->
            assert(stored[p] == 0);                /* never twice */
            assert(last == 0 || spos[last] < p);   /* in queue order */
            last++;
            spos[last] = p;
            stored[p]++;
            smark[p] = mk;
            out = STORED
        :: e != last && BUG != 2 -> out = WRONG /* either check first */
        fi;
        if
        :: alive[c] && nfull(ans[c]) -> ans[c]!g, e, out
        :: !alive[c] || full(ans[c]) /* the bridge is gone, or it is lost */
        fi;
        g = 0; e = 0; p = 0; out = 0; mk = false
    }
    od
}

proctype Bridge()
{
    byte conn, gen, h, L, n, sl, sp, g, e, o, k;
    byte marker = NOPOS; /* the position to publish as a marker */
    bool parked;         /* PARK: the head was refused as too large */
restart:
    {
        d_step { conn = life; alive[conn] = true }
recover:
        skip; /* (a goto may not jump into a d_step) */
        /* take back what is in flight, read the stream's last message */
#if BUG == 6
        d_step {
            gen++; n = 0; g = 0; e = 0; o = 0;
            sp = (last > 0 -> spos[last] : NOPOS)
        };
        d_step { sl = last };
#else
        d_step {
            gen++; n = 0; g = 0; e = 0; o = 0;
            sl = last; sp = (last > 0 -> spos[last] : NOPOS)
        };
#endif
        d_step { h = released; L = sl };
#if BUG != 1
        if
        :: sp != NOPOS && sp >= h -> release_through(sp); h = sp + 1
        :: else
        fi;
#endif
retry:
        skip;
        do
        :: h == M -> break
        :: n < W && h + n < M && nfull(wire[conn]) ->
#if BUG == 3
            wire[conn]!gen, L, h + n, h + n == marker;
#else
            wire[conn]!gen, L + n, h + n, h + n == marker;
#endif
#if BUG == 4
            release_through(h + n);
#endif
            n++
        :: ans[conn]?g, e, o ->
            if
            :: g != gen || e != L || n == 0 -> skip /* taken back, or a gap */
            :: else ->
                if
                :: o == STORED -> release_through(h); d_step { h++; L++; n-- }
                :: o == WRONG ->
#if BUG == 7
                    n = 0; goto retry
#else
                    goto recover
#endif
                :: o == LARGE ->
#if PARK
                    /* stays at the head: retried after a back-off pause
                     * (here: once, then only after the limit is raised) */
                    (raised || !parked);
                    parked = true;
                    goto recover
#endif
                    /* rq_push to the dead-letter queue */
                    d_step { assert(h == BIG); dead[h]++ };
#if BUG == 5
                    release_through(h);
#else
                    marker = h; /* its place in the stream: a marker */
#endif
                    goto recover
                fi
            fi;
            d_step { g = 0; e = 0; o = 0 }
        :: d_step { n > 0 && giveups < TIMEOUTS -> giveups++ }; goto recover
        :: n > 0 && empty(wire[conn]) && empty(ans[conn]) ->
            goto recover /* no answer will come */
        od;
        done = true
    } unless {
        kill_b ->
        d_step {
            kill_b = false;
            alive[conn] = false;
            life++;
            gen = 0; h = 0; L = 0; n = 0; sl = 0; sp = 0;
            g = 0; e = 0; o = 0; k = 0;
            marker = NOPOS;
            parked = false
        }
        goto restart
    }
}

active proctype Killer()
{
end_killer:
    do
    :: d_step { kills < KILLS && !kill_b && !done -> kill_b = true; kills++ }
    :: break
    od
}

/* When nothing can move any more (no kills left, every wire drained), the
 * bridge has finished, the stream holds every position once (BIG as
 * itself or as its marker; with BUG 5 not at all), the dead-letter queue
 * holds BIG alone (a kill between its push and its release pushes it
 * again), and a marker's position is in it (never none); with PARK it is
 * empty. */
active proctype Quiescence()
{
    byte q;
    timeout ->
    d_step {
        assert(done && released == M);
        q = 0;
        do
        :: q < M ->
#if BUG == 5
            assert((q != BIG && stored[q] == 1 && dead[q] == 0) ||
                   (q == BIG && stored[q] == 0 && dead[q] > 0));
#else
            assert(stored[q] == 1 && (q == BIG || dead[q] == 0) &&
                   (!smark[q] || dead[q] > 0));
            assert(!PARK || dead[q] == 0)
#endif
            q++
        :: else -> break
        od
    }
}

#if RAISE || PARK
/* The operator raises the stream's size limit (MaxMsgSize) at any moment;
 * with PARK for sure (a parked message waits for it). */
active proctype Operator()
{
    if
    :: raised = true
    :: !PARK -> skip
    fi
}
#endif

ltl settled { <> done }

init
{
    byte c;
    atomic {
        do
        :: c < NC -> run Conn(c); c++
        :: else -> break
        od;
        run Bridge()
    }
}
