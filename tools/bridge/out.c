/*
 * out.c - rq-bridge out: the local queue drained into a JetStream subject.
 *
 * One message at a time: peek the oldest, publish it with the message id
 * ID:SEQ, wait for the stream's acknowledgement, release.  A message leaves
 * the queue only after the stream has it; a bridge killed between the ack
 * and the release peeks the same message (same SEQ) after restart and
 * publishes it again, and the stream, seeing a known id inside its
 * duplicate window, keeps one copy and answers "duplicate".
 *
 * Publishing several messages before their acks would need the queue to
 * show messages behind the oldest without releasing it, which rq_peek does
 * not; docs/bridge.md says what that costs.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bridge.h"

/* The default identity: the queue's name and its segment's inode number,
 * which a queue re-created under the same name does not share, so its
 * sequence numbers (which restart at 0) do not collide with the old one's
 * in the stream's duplicate window. */
static int queue_identity(bridge *b, char *buf, size_t cap)
{
    if (b->o.id) {
        snprintf(buf, cap, "%s", b->o.id);
        return 0;
    }
#ifdef __linux__
    char path[300];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/rq.%s", b->o.queue);
    if (stat(path, &st) == 0) {
        snprintf(buf, cap, "%s@%ju", b->o.queue, (uintmax_t)st.st_ino);
        return 0;
    }
    bridge_error(b, "cannot tell queue %s's identity (%s); give --id", b->o.queue, path);
#else
    bridge_error(b, "this OS cannot tell a queue's identity; give --id");
#endif
    return -1;
}

/* With --stream: makes sure the stream exists (SUBJECT, file storage). */
static int ensure_stream(bridge *b)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    char text[400];
    int delay = 100;
    while (!bridge_stop) {
        natsStatus s = js_GetStreamInfo(&si, b->js, b->o.stream, NULL, &jerr);
        if (s == NATS_OK) {
            jsStreamInfo_Destroy(si);
            return 0;
        }
        if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
            jsStreamConfig sc;
            jsStreamConfig_Init(&sc);
            sc.Name = b->o.stream;
            sc.Subjects = &b->o.subject;
            sc.SubjectsLen = 1;
            sc.Storage = js_FileStorage;
            s = js_AddStream(&si, b->js, &sc, NULL, &jerr);
            if (s == NATS_OK) {
                jsStreamInfo_Destroy(si);
                return 0;
            }
        }
        bridge_error(b, "cannot find or create stream %s: %s; retrying in %d ms", b->o.stream,
                     bridge_nats_text(s, jerr, text, sizeof text), delay);
        bridge_backoff(b, &delay);
    }
    return -1;
}

static int too_large(natsStatus s, jsErrCode jerr)
{
    return s == NATS_MAX_PAYLOAD || jerr == JSStreamMessageExceedsMaximumErr;
}

/* The stream refused MSG as too large.  With a dead-letter queue: push it
 * there, then release it (a crash in between leaves a second copy in the
 * dead-letter queue, never none).  Without: leave it at the head. */
static int park(bridge *b, rq *q, rq *dlq, const void *msg, size_t len, const rq_msg_info *info,
                int *delay)
{
    if (dlq) {
        int rc = rq_push(dlq, msg, len, 1000);
        if (rc == RQ_OK && (rc = rq_release(q)) == RQ_OK) {
            b->p.parked++;
            b->p.last_queue_seq = info->seq;
            fprintf(stderr, "rq-bridge out: message %" PRIu64 " (%zu bytes) moved to %s\n",
                    info->seq, len, b->o.dead_letter);
            return 0;
        }
        bridge_error(b, "cannot move message %" PRIu64 " to %s: %s; retrying in %d ms", info->seq,
                     b->o.dead_letter, rq_strerror(rc), *delay);
    }
    b->p.state = "parked";
    bridge_status(b, 1);
    bridge_backoff(b, delay);
    return 0;
}

static void update_lag(bridge *b, rq *q)
{
    rq_stats st;
    if (rq_stat(q, &st) == RQ_OK)
        b->p.lag = st.depth;
}

/* Publishes the peeked message; 0 when it may be released. */
static natsStatus publish(bridge *b, const char *idbase, const void *msg, size_t len,
                          const rq_msg_info *info, jsErrCode *jerr)
{
    char msgid[600];
    snprintf(msgid, sizeof msgid, "%s:%" PRIu64, idbase, info->seq);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msgid;
    po.MaxWait = b->o.publish_wait_ms;
    jsPubAck *pa = NULL;
    *jerr = 0;
    natsStatus s = js_Publish(&pa, b->js, b->o.subject, msg, (int)len, &po, jerr);
    if (s == NATS_OK) {
        if (pa->Duplicate)
            b->p.duplicates++;
        b->p.last_stream_seq = pa->Sequence;
        jsPubAck_Destroy(pa);
    }
    return s;
}

static int drain(bridge *b, rq *q, rq *dlq, const char *idbase)
{
    int delay = 100;
    char text[400];
    while (!bridge_stop) {
        const void *msg;
        size_t len;
        rq_msg_info info;
        int rc = rq_peek_info(q, &msg, &len, &info, 200);
        if (rc == RQ_EAGAIN || rc == RQ_ETIMEDOUT) {
            update_lag(b, q);
            bridge_status(b, 0);
            continue;
        }
        if (rc != RQ_OK) {
            bridge_error(b, "cannot read queue %s: %s", b->o.queue, rq_strerror(rc));
            return 1;
        }
        jsErrCode jerr = 0; /* publish may not run: too_large reads it */
        natsStatus s =
            len > INT32_MAX ? NATS_MAX_PAYLOAD : publish(b, idbase, msg, len, &info, &jerr);
        if (s == NATS_OK) {
            bridge_crash_point("out.after_ack"); /* stored, not released */
            if (info.flags & RQ_MSG_REDELIVERED)
                b->p.redelivered++;
            if ((rc = rq_release(q)) != RQ_OK) {
                bridge_error(b, "cannot release message %" PRIu64 ": %s", info.seq,
                             rq_strerror(rc));
                return 1;
            }
            b->p.messages++;
            b->p.last_queue_seq = info.seq;
            b->p.state = "running";
            delay = 100;
            if ((b->p.messages & 255) == 0)
                update_lag(b, q);
            bridge_status(b, 0);
        } else if (too_large(s, jerr)) {
            bridge_error(b,
                         "message %" PRIu64 " (%zu bytes) is larger than the stream accepts: %s%s",
                         info.seq, len, bridge_nats_text(s, jerr, text, sizeof text),
                         dlq ? "" : "; parked at the head of the queue (see --dead-letter)");
            park(b, q, dlq, msg, len, &info, &delay);
        } else {
            bridge_error(b, "publish of message %" PRIu64 " failed: %s; retrying in %d ms",
                         info.seq, bridge_nats_text(s, jerr, text, sizeof text), delay);
            bridge_backoff(b, &delay);
        }
    }
    return 0;
}

int bridge_run_out(bridge *b)
{
    char idbase[400];
    if (b->o.stream && ensure_stream(b))
        return 1;
    rq *q = bridge_open_queue(b, b->o.queue, RQ_CONSUMER);
    if (!q)
        return 1;
    rq *dlq = NULL;
    if (b->o.dead_letter && !(dlq = bridge_open_queue(b, b->o.dead_letter, RQ_PRODUCER))) {
        rq_close(q);
        return 1;
    }
    int rc = 1;
    if (queue_identity(b, idbase, sizeof idbase) == 0) {
        b->p.state = "running";
        rc = drain(b, q, dlq, idbase);
    }
    rq_close(dlq);
    rq_close(q);
    return rc;
}
