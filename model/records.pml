/*
 * records.pml - record queues (src/records.c): variable-length records
 * packed in a byte ring, padding at the wrap, with kills at every step.
 *
 * The ring has C units (a unit stands for 8 bytes, the granule of every
 * offset); record k takes SPAN(k) units (its 4-byte header and payload,
 * rounded up to whole units), so records of 1 and 2 units
 * alternate and every few records one does not fit before the end: then
 * a padding record fills the tail and the record starts at unit 0.  Each
 * side owns one word, (offset in [0, 2C), record number), stored in one
 * step (one 64-bit store in the code).  A record's units all hold its
 * number + 1, written and read one unit per step, so a torn, stale or
 * misplaced record shows.  A Killer may kill either side before any of
 * its steps (the `unless` around each body); the side restarts from the
 * shared words.  Waiting is a guard here: the wait/wake protocol is the
 * slot ring's code (wait_on, signal_peer), checked in spsc.pml.
 *
 * Switches (spin -D...):
 *   C        units in the ring                              default 5
 *   M        records the producer sends                     default 6
 *   PCRASH   kills of the producer                          default 2
 *   CCRASH   kills of the consumer                          default 2
 *   BATCH    records a producer publishes with one store     default 1
 *            (rq_push_burst: it waits for room for the first only, then
 *            writes records, padding included, at a local cursor beyond
 *            the word while there is room, and stores the word once)
 *   BUG      0: the code.  Injected bugs, each must be caught:
 *            1 the record's header is written after the word is published
 *            2 the padding is published by a store of its own, before
 *              the record (visible alone)
 *            3 the consumer frees the record but not the padding before it
 *            4 the producer's room check leaves the padding out
 */
#ifndef C
#define C 5
#endif
#ifndef M
#define M 6
#endif
#ifndef PCRASH
#define PCRASH 2
#endif
#ifndef CCRASH
#define CCRASH 2
#endif
#ifndef BUG
#define BUG 0
#endif
#ifndef BATCH
#define BATCH 1
#endif
#ifndef CBATCH
#define CBATCH 1
#endif

#define TWO_C (2 * C)
#define IDX(x) ((x) < C -> (x) : (x) - C)
#define USED(w, r) ((w) >= (r) -> (w) - (r) : (w) + TWO_C - (r))
#define ADV(x, n) ((x) + (n) >= TWO_C -> (x) + (n) - TWO_C : (x) + (n))
#define SPAN(k) (1 + (k) % 2)
#define DATA 1
#define PAD 2

/* ---- the shared segment ---------------------------------------------- */
byte wword, wseq;        /* write_word: offset, record number */
byte rword, rseq;        /* read_word */
byte htype[C], hlen[C];  /* record headers: type, units (padding: the tail) */
byte body[C];            /* payload units: the record's number + 1 */

/* ---- the OS and the applications ---------------------------------------- */
bool kill_p, kill_c, kill_pending;
byte p_kills, c_kills;
bool p_finished;
byte published, released, handled; /* ghosts */

#define RING_INVARIANT \
    assert(wword < TWO_C && rword < TWO_C && USED(wword, rword) <= C); \
    assert(wseq - rseq == published - released)

proctype Producer() provided (!kill_pending || kill_p)
{
    byte w, i, at, tail, span, pad, k, need, n;
    bool room;
restart:
    {
        d_step { w = wword; i = wseq; assert(i == published) } /* rq_rec_load */
        do
        :: i == M -> p_finished = true; break
        :: else ->
            n = 0; /* records of this batch written beyond the word */
            do
            :: i + n == M || n == BATCH -> break
            :: else ->
                d_step {
                    span = SPAN(i + n);
                    at = IDX(w);
                    tail = C - at;
                    if
                    :: span <= tail -> pad = 0
                    :: else -> pad = tail
                    fi;
#if BUG == 4
                    need = span
#else
                    need = pad + span
#endif
                }
                /* rec_claim: room?  (one load of read_word; the first
                 * record waits while there is none, a later one ends the
                 * batch) */
                if
                :: n == 0 -> USED(w, rword) + need <= C
                :: else -> d_step { room = (USED(w, rword) + need <= C) };
                    if
                    :: !room -> break
                    :: else
                    fi
                fi;
push_after_claim:
                if
                :: pad > 0 ->
                    d_step { htype[at] = PAD; hlen[at] = pad };
#if BUG == 2
                    d_step { w = ADV(w, pad); wword = w; pad = 0 };
#endif
                    at = 0
                :: else
                fi;
records_push_after_pad:
                k = 0;
                do
                :: k < span -> body[at + k] = i + n + 1; k++
                :: else -> break
                od;
                skip; /* (a loop's exit may not jump into a d_step) */
#if BUG != 1
                d_step { htype[at] = DATA; hlen[at] = span };
#endif
push_after_payload:
                d_step { w = ADV(w, pad + span); n++ }
            od;
            skip;
            d_step { /* rec_publish_records (single records and bursts): one store of the word */
                wword = w;
                wseq = i + n;
                published = published + n;
                i = i + n;
                RING_INVARIANT
            }
#if BUG == 1
            d_step { htype[at] = DATA; hlen[at] = span };
#endif
push_after_publish:
            skip
        od
    } unless {
        kill_p ->
        d_step {
            kill_p = false;
            kill_pending = false;
            w = 0; i = 0; at = 0; tail = 0; span = 0; pad = 0; k = 0; need = 0; n = 0;
            room = false
        }
        goto restart
    }
}

proctype Consumer() provided (!kill_pending || kill_c)
{
    byte r, q, w, at, t, l, skipped, k, r2, n;
restart:
    {
        d_step { r = rword; q = rseq; assert(q == released) }
        do
        :: q == M -> break
        :: else ->
            atomic { wword != r -> w = wword } /* rec_pop_begin: waits while empty */
            n = 0; /* records of this batch read, at the local cursor r2 */
            r2 = r;
            do
            :: n == CBATCH || q + n == M || (n > 0 && r2 == w) -> break
            :: else ->
                d_step { at = IDX(r2); t = htype[at]; l = hlen[at]; skipped = 0 }
                if
                :: t == PAD ->
                    /* padding reaches the end, and a record follows it */
                    d_step { assert(l == C - at && l < USED(w, r2)); skipped = l; at = 0 };
                    d_step { t = htype[0]; l = hlen[0] }
                :: else
                fi;
                /* the record's checks (RQ_ECORRUPT in the code: never here) */
                d_step { assert(t == DATA && l == SPAN(q + n) && skipped + l <= USED(w, r2) && at + l <= C) }
                k = 0;
                do
                :: k < l -> assert(body[at + k] == q + n + 1); k++ /* the next one, whole */
                :: else -> break
                od;
                skip;
pop_after_copy:
                d_step { /* the application handles it */
                    if
                    :: handled == q + n -> handled++
                    :: else -> /* handed out before: only a batch in flight comes again */
                        assert(handled > q + n && handled <= released + CBATCH)
                    fi;
#if BUG == 3
                    r2 = ADV(r2, l);
#else
                    r2 = ADV(r2, skipped + l);
#endif
                    n++
                }
            od;
            skip;
release_before_publish:
            d_step { /* rec_release: one store of the word for the batch */
                r = r2;
                q = q + n;
                rword = r;
                rseq = q;
                released = released + n;
                RING_INVARIANT
            }
release_after_publish:
            skip
        od
    } unless {
        kill_c ->
        d_step {
            kill_c = false;
            kill_pending = false;
            r = 0; q = 0; w = 0; at = 0; t = 0; l = 0; skipped = 0; k = 0; r2 = 0; n = 0
        }
        goto restart
    }
}

active proctype Killer()
{
end_killer:
    do
    :: d_step { p_kills < PCRASH && !kill_p && !p_finished -> kill_p = true; kill_pending = true; p_kills++ }
    :: d_step { c_kills < CCRASH && !kill_c && released < M -> kill_c = true; kill_pending = true; c_kills++ }
    :: break
    od
}

/* When nothing can move any more, everything went through: no space was
 * lost (a producer waiting for room that never comes would stop here). */
active proctype Quiescence()
{
    timeout -> assert(published == M && released == M && handled == M)
}

init
{
    atomic { run Producer(); run Consumer() }
}
