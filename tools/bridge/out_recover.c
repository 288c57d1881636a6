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

/* What the stream's configuration and state say. */
struct stream_facts {
    uint64_t last;    /* its last sequence */
    int32_t max_size; /* MaxMsgSize, or <= 0: no limit of its own */
    int keeps;        /* limits retention: it keeps its last message */
    int captures;     /* one of its subjects captures --subject */
};

/* The stream's facts in *F.  0, or -1 no answer. */
static int stream_facts(bridge *b, struct stream_facts *f)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    char text[400];
    natsStatus s = bridge_fault("out.stream_info")
                       ? NATS_TIMEOUT
                       : js_GetStreamInfo(&si, b->js, b->o.stream, NULL, &jerr);
    if (s != NATS_OK) {
        bridge_error(b, "cannot read stream %s's last sequence: %s", b->o.stream,
                     bridge_nats_text(s, jerr, text, sizeof text));
        return -1;
    }
    f->last = si->State.LastSeq;
    f->max_size = si->Config ? si->Config->MaxMsgSize : 0;
    f->keeps = si->Config && si->Config->Retention == js_LimitsPolicy;
    f->captures = 0;
    for (int i = 0; si->Config && i < si->Config->SubjectsLen; i++)
        f->captures |= bwin_subject_matches(si->Config->Subjects[i], b->o.subject);
    jsStreamInfo_Destroy(si);
    return 0;
}

/* Refuses a stream the scheme cannot trust: one that deletes consumed
 * messages (work-queue or interest retention: the last one goes too), and
 * one that does not store --subject (another stream does, and its
 * sequence is not the one every publish would expect).  0 or 1 fatal. */
static int stream_trusted(bridge *b, const struct stream_facts *f)
{
    if (!f->keeps) {
        bridge_error(b,
                     "stream %s deletes consumed messages (work-queue or interest retention): "
                     "--dedupe last-sequence needs the stream's last message, so limits retention",
                     b->o.stream);
        return 1;
    }
    if (!f->captures) {
        bridge_error(b,
                     "stream %s does not store subject %s (none of its subjects captures it): "
                     "--dedupe last-sequence needs the stream that does",
                     b->o.stream, b->o.subject);
        return 1;
    }
    return 0;
}

/* The stream's last message LAST is gone (deleted, purged, aged out).
 * Harmless only if nothing out may have sent is in the queue: the queue
 * is empty, or its oldest message was never handed out to a bridge before
 * (not flagged redelivered) nor published by this one (at or past
 * PUBLISHED).  The flag errs toward stopping: it is also set on messages
 * never sent (the oldest after any consumer death, a message parked at
 * the head, a record peeked here).  0 harmless (said), 1 fatal. */
static int last_gone(bridge *b, rq *q, uint64_t last, uint64_t published)
{
    const void *data;
    size_t len;
    rq_msg_info info;
    int rc = rq_peek_info(q, &data, &len, &info, 0);
    if (rc == RQ_EAGAIN || rc == RQ_ETIMEDOUT ||
        (rc == RQ_OK && !(info.flags & RQ_MSG_REDELIVERED) && info.seq >= published)) {
        bridge_error(b,
                     "stream %s's last message (sequence %" PRIu64 ") is gone, but nothing in "
                     "queue %s was sent yet: going on",
                     b->o.stream, last, b->o.queue);
        return 0;
    }
    if (rc < 0)
        bridge_error(b, "cannot read queue %s: %s", b->o.queue, rq_strerror(rc));
    else
        bridge_error(b,
                     "stream %s's last message (sequence %" PRIu64 ") is gone (deleted, purged or "
                     "aged out) and message %" PRIu64 " may have been sent: out cannot tell "
                     "what the stream stored, and stops",
                     b->o.stream, last, info.seq);
    return 1;
}

/* Stream message SEQ's Rq-Pos header: 1 with *OURS (whether it is a
 * position of queue IDBASE: then *POS) and its text in VALUE ("none"
 * without one); 0 if the stream has no message SEQ (or SEQ is 0); -1 no
 * answer (reported).  FAULT, if not NULL, is the fault point of the
 * request. */
static int position_at(bridge *b, uint64_t seq, const char *idbase, const char *fault,
                       uint64_t *pos, int *ours, char *value, size_t cap)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    char text[400];
    natsStatus s = fault && bridge_fault(fault) ? NATS_TIMEOUT
                   : seq ? js_GetMsg(&m, b->js, b->o.stream, seq, NULL, &jerr)
                         : NATS_NOT_FOUND;
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
        return 0;
    if (s != NATS_OK) {
        bridge_error(b, "cannot read stream %s's message %" PRIu64 ": %s", b->o.stream, seq,
                     bridge_nats_text(s, jerr, text, sizeof text));
        return -1;
    }
    const char *header = NULL;
    int found = natsMsgHeader_Get(m, "Rq-Pos", &header) == NATS_OK;
    *ours = found && bwin_parse_pos(header, idbase, pos);
    snprintf(value, cap, "%s", found ? header : "none");
    natsMsg_Destroy(m);
    return 1;
}

/* The queue position the stream's message LAST carries, if this queue's:
 * *OURS 1 and *POS.  0, -1 no answer, 1 fatal. */
static int last_position(bridge *b, rq *q, uint64_t last, const char *idbase, uint64_t published,
                         uint64_t *pos, int *ours)
{
    char value[512];
    int rc = position_at(b, last, idbase, "out.last_message", pos, ours, value, sizeof value);
    if (rc == 0)
        return last_gone(b, q, last, published);
    if (rc < 0)
        return -1;
    if (!*ours)
        /* Said, not fatal: the queue was re-created (a new identity) or the
         * stream was written by out with --dedupe id; but another writer
         * breaks the scheme's condition, and this is where it shows. */
        bridge_error(b,
                     "stream %s's last message (sequence %" PRIu64 ") carries no position of "
                     "queue %s (Rq-Pos: %s): publishing from the queue's head; with "
                     "--dedupe last-sequence out must be the stream's only writer",
                     b->o.stream, last, idbase, value);
    return 0;
}

/* Whether position POS can be in the queue whose oldest message is HEAD:
 * it must be one of the messages there now (it was pushed before it was
 * sent).  0, or 1 fatal (a stream of another queue with the same --id). */
static int position_in_queue(bridge *b, rq *q, uint64_t head, uint64_t pos)
{
    rq_stats st;
    int rc = rq_stat(q, &st);
    if (rc != RQ_OK) {
        bridge_error(b, "cannot read queue %s: %s", b->o.queue, rq_strerror(rc));
        return 1;
    }
    if (st.depth == 0 || pos - head >= st.depth) {
        bridge_error(b,
                     "stream %s holds position %" PRIu64 " of queue %s, whose messages are "
                     "%" PRIu64 "..%" PRIu64 ": is --id another queue's?",
                     b->o.stream, pos, b->o.queue, head, head + st.depth - 1);
        return 1;
    }
    return 0;
}

/* Whether the stream holds, at the sequence where it must be, position
 * HEAD: each position takes one sequence, so with position POS at LAST,
 * HEAD is at LAST - (POS - HEAD).  A server that counted a sequence and
 * then dropped its message (nats-server 2.9 over an account's storage
 * limit) leaves a hole there, and out must not release the message the
 * hole stands for.  0 it is there; -1 no answer; 1 fatal (reported). */
static int head_in_stream(bridge *b, const char *idbase, uint64_t last, uint64_t pos, uint64_t head)
{
    uint64_t at = pos - head < last ? last - (pos - head) : 0, found = 0;
    int ours = 0;
    char value[512];
    int rc = position_at(b, at, idbase, NULL, &found, &ours, value, sizeof value);
    if (rc < 0)
        return -1;
    if (rc > 0 && ours && found == head)
        return 0;
    bridge_error(b,
                 "stream %s does not hold queue position %" PRIu64 " at sequence %" PRIu64
                 " (it holds %" PRIu64 " at %" PRIu64 "): a message the server counted and "
                 "dropped, or deleted; out stops rather than release what the stream may not hold",
                 b->o.stream, head, at, pos, last);
    return 1;
}

/* Releases the queue's messages through position POS, which the stream
 * holds at sequence LAST, peeking no further: a message peeked in a batch
 * is flagged redelivered if this bridge dies, and those beyond were never
 * sent.  0, -1 no answer, or 1 fatal. */
static int release_through(bridge *b, rq *q, const char *idbase, uint64_t last, uint64_t pos)
{
    static rq_msg_view v[BRIDGE_WINDOW_MAX];
    int checked = 0;
    for (;;) {
        const void *data;
        size_t len;
        rq_msg_info head;
        int n = rq_peek_info(q, &data, &len, &head, 0);
        if (n == RQ_EAGAIN || n == RQ_ETIMEDOUT || (n == RQ_OK && head.seq > pos))
            return 0; /* released before: a position is pushed before it is sent */
        if (n == RQ_OK && !checked++) {
            if (position_in_queue(b, q, head.seq, pos))
                return 1;
            int rc = head.seq < pos ? head_in_stream(b, idbase, last, pos, head.seq) : 0;
            if (rc != 0)
                return rc;
        }
        if (n == RQ_OK) {
            uint64_t ahead = pos - head.seq + 1;
            n = rq_peek_burst(q, v, ahead < BRIDGE_WINDOW_MAX ? (size_t)ahead : BRIDGE_WINDOW_MAX,
                              0);
        }
        if (n <= 0 || v[0].seq != head.seq) {
            bridge_error(b, "cannot read queue %s: %s", b->o.queue,
                         rq_strerror(n < 0 ? n : RQ_ECORRUPT));
            return 1;
        }
        uint32_t k = (uint32_t)n;
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
        if (v[k - 1].seq >= pos)
            return 0;
    }
}

int bridge_out_recover(bridge *b, rq *q, const char *idbase, bridge_recovery *r)
{
    struct stream_facts f;
    uint64_t pos = 0;
    int ours = 0;
    b->p.recoveries++;
    int rc = stream_facts(b, &f);
    if (rc != 0)
        return rc;
    if (stream_trusted(b, &f))
        return 1;
    if (f.last > 0 && (rc = last_position(b, q, f.last, idbase, r->published, &pos, &ours)) != 0)
        return rc;
    if (ours && (rc = release_through(b, q, idbase, f.last, pos)) != 0)
        return rc;
    int64_t server = natsConnection_GetMaxPayload(b->nc);
    r->max_bytes = server > 0 ? server : INT64_MAX;
    if (f.max_size > 0 && f.max_size < r->max_bytes)
        r->max_bytes = f.max_size;
    r->expect = f.last;
    b->p.last_stream_seq = f.last;
    return 0;
}
