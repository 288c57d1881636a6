/*
 * out_recover.c - rq-bridge out with --dedupe last-sequence: what the
 * stream holds says where the queue goes on.
 *
 * Every publish expects the stream's last sequence
 * (Nats-Expected-Last-Sequence) and carries its queue position (Rq-Pos:
 * ID:SEQ), and out is the stream's only writer.  So the stream takes each
 * of its places once, in order, and the message stored after the one of
 * position p is always the next position out sends after p.  After a
 * start, a kill, a timeout, a refusal or a lost connection, the stream's
 * last message tells how far the queue got: out releases through its
 * position and publishes the head expecting the stream's last sequence.
 * Copies still on their way (a killed bridge's socket buffer, an old
 * connection) either expect a sequence the stream has passed and are
 * refused, or take their place before out's own copy, which is then
 * refused, and the next recovery finds them.
 */
#include <inttypes.h>
#include <stdio.h>

#include "bridge.h"

/* The stream's last sequence in *LAST, checking that the stream keeps its
 * messages (limits retention: a work-queue or interest stream deletes the
 * last one once consumed).  0, -1 no answer, 1 fatal. */
static int stream_last(bridge *b, uint64_t *last)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    char text[400];
    natsStatus s = js_GetStreamInfo(&si, b->js, b->o.stream, NULL, &jerr);
    if (s != NATS_OK) {
        bridge_error(b, "cannot read stream %s's last sequence: %s", b->o.stream,
                     bridge_nats_text(s, jerr, text, sizeof text));
        return -1;
    }
    int keeps = si->Config && si->Config->Retention == js_LimitsPolicy;
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    if (!keeps) {
        bridge_error(b,
                     "stream %s deletes consumed messages (work-queue or interest retention): "
                     "--dedupe last-sequence needs the stream's last message, so limits retention",
                     b->o.stream);
        return 1;
    }
    return 0;
}

/* The queue position the stream's message LAST carries, if this queue's:
 * *OURS 1 and *POS.  0, -1 no answer, 1 fatal (the message is gone). */
static int last_position(bridge *b, uint64_t last, const char *idbase, uint64_t *pos, int *ours)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    char text[400];
    natsStatus s = js_GetMsg(&m, b->js, b->o.stream, last, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
        bridge_error(b,
                     "stream %s's last message (sequence %" PRIu64 ") is gone (deleted, purged or "
                     "aged out): out cannot tell what it stored, and stops",
                     b->o.stream, last);
        return 1;
    }
    if (s != NATS_OK) {
        bridge_error(b, "cannot read stream %s's message %" PRIu64 ": %s", b->o.stream, last,
                     bridge_nats_text(s, jerr, text, sizeof text));
        return -1;
    }
    const char *value = NULL;
    *ours = natsMsgHeader_Get(m, "Rq-Pos", &value) == NATS_OK && bwin_parse_pos(value, idbase, pos);
    if (!*ours)
        /* Said, not fatal: the queue was re-created (a new identity) or the
         * stream was written by out with --dedupe id; but another writer
         * breaks the scheme's condition, and this is where it shows. */
        bridge_error(b,
                     "stream %s's last message (sequence %" PRIu64 ") carries no position of "
                     "queue %s (Rq-Pos: %s): publishing from the queue's head; with "
                     "--dedupe last-sequence out must be the stream's only writer",
                     b->o.stream, last, idbase, value ? value : "none");
    natsMsg_Destroy(m);
    return 0;
}

/* Releases the queue's messages through position POS (the stream has
 * them), peeking no further than POS: a peeked message is flagged
 * redelivered if this bridge dies, and those beyond were never sent.
 * 0, or 1 fatal. */
static int release_through(bridge *b, rq *q, uint64_t pos)
{
    static rq_msg_view v[BRIDGE_WINDOW_MAX];
    for (;;) {
        int n = rq_peek_burst(q, v, 1, 0); /* where the head is */
        if (n == RQ_EAGAIN || n == RQ_ETIMEDOUT || (n > 0 && v[0].seq > pos))
            return 0; /* released before: a position is pushed before it is sent */
        if (n > 0) {
            uint64_t ahead = pos - v[0].seq + 1;
            n = rq_peek_burst(q, v, ahead < BRIDGE_WINDOW_MAX ? (size_t)ahead : BRIDGE_WINDOW_MAX,
                              0);
        }
        if (n < 0) {
            bridge_error(b, "cannot read queue %s: %s", b->o.queue, rq_strerror(n));
            return 1;
        }
        if (n == 0)
            return 0; /* cannot happen: a peek returns at least one */
        uint32_t k = (uint32_t)n;
        if (v[k - 1].seq != pos && k < BRIDGE_WINDOW_MAX) {
            bridge_error(b,
                         "stream %s holds position %" PRIu64 " of queue %s, which has nothing "
                         "beyond %" PRIu64 ": is --id another queue's?",
                         b->o.stream, pos, b->o.queue, v[k - 1].seq);
            return 1;
        }
        bridge_crash_point("out.recovery_release"); /* read, not released */
        int rc = rq_release_burst(q, k);
        if (rc != RQ_OK) {
            bridge_error(b, "cannot release messages %" PRIu64 "..%" PRIu64 ": %s", v[0].seq,
                         v[0].seq + k - 1, rq_strerror(rc));
            return 1;
        }
        for (uint32_t i = 0; i < k; i++)
            b->p.redelivered += (v[i].flags & RQ_MSG_REDELIVERED) != 0;
        b->p.messages += k;
        b->p.duplicates += k;
        b->p.last_queue_seq = v[k - 1].seq;
        if (v[k - 1].seq == pos)
            return 0;
    }
}

int bridge_out_recover(bridge *b, rq *q, const char *idbase, uint64_t *expect)
{
    uint64_t last = 0, pos = 0;
    int ours = 0;
    b->p.recoveries++;
    int rc = stream_last(b, &last);
    if (rc == 0 && last > 0)
        rc = last_position(b, last, idbase, &pos, &ours);
    if (rc != 0)
        return rc;
    if (ours && (rc = release_through(b, q, pos)) != 0)
        return rc;
    *expect = last;
    b->p.last_stream_seq = last;
    return 0;
}
