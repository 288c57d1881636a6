/*
 * in.c - rq-bridge in: a durable JetStream pull consumer feeding the local
 * queue.
 *
 * Each fetched message is written into the queue behind the header of
 * rq_bridge.h (its stream sequence), committed, and only then acked.  A
 * crash between commit and ack makes the stream hand the message out again
 * and it is committed twice: the receiver drops the copy by its stream
 * sequence, which works because records reach the queue in stream order.
 *
 * Order needs care at one point: the consumer redelivers unacknowledged
 * messages only after its ack wait, and meanwhile hands out newer ones.
 * So whenever messages may have been handed out and not committed (at
 * start, after a previous bridge died, or after this one gave a batch up)
 * the bridge re-creates the consumer at its ack floor + 1: everything not
 * yet acked comes again, in order, at once.  The acked prefix is never
 * repeated; a committed-but-unacked message comes again as a duplicate.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bridge.h"
#include "rq_bridge.h"

static natsStatus add_consumer(bridge *b, uint64_t start_seq, jsErrCode *jerr)
{
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = b->o.durable;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = b->o.ack_wait_ms * 1000000;
    cc.FilterSubject = b->o.subject;
    cc.MaxAckPending = b->o.batch * 4 > 1024 ? b->o.batch * 4 : 1024;
    if (start_seq > 1) {
        cc.DeliverPolicy = js_DeliverByStartSequence;
        cc.OptStartSeq = start_seq;
    }
    jsConsumerInfo *ci = NULL;
    natsStatus s = js_AddConsumer(&ci, b->js, b->o.stream, &cc, NULL, jerr);
    jsConsumerInfo_Destroy(ci);
    return s;
}

/* Makes the consumer exist with nothing handed out and unacked (see the
 * top of the file).  A bridge killed between the delete and the add finds
 * no consumer and starts from the stream's first message: more duplicates,
 * nothing lost. */
static natsStatus resync(bridge *b, jsErrCode *jerr)
{
    jsConsumerInfo *ci = NULL;
    natsStatus s = js_GetConsumerInfo(&ci, b->js, b->o.stream, b->o.durable, NULL, jerr);
    if (s == NATS_NOT_FOUND || *jerr == JSConsumerNotFoundErr) {
        *jerr = 0;
        return add_consumer(b, 1, jerr);
    }
    if (s != NATS_OK)
        return s;
    int64_t pending = ci->NumAckPending;
    uint64_t start = ci->AckFloor.Stream + 1;
    /* A consumer that has acked nothing yet reports a floor of 0, not its
     * start - 1: everything before the start it was made with was acked by
     * its predecessor, so start there (the floor alone would repeat the
     * stream from the first message). */
    if (ci->AckFloor.Consumer == 0 && ci->Config &&
        ci->Config->DeliverPolicy == js_DeliverByStartSequence && ci->Config->OptStartSeq > start)
        start = ci->Config->OptStartSeq;
    b->p.lag = ci->NumPending;
    jsConsumerInfo_Destroy(ci);
    if (pending == 0)
        return NATS_OK;
    fprintf(stderr,
            "rq-bridge in: %" PRId64 " messages handed out but not acked; "
            "restarting the consumer at stream sequence %" PRIu64 "\n",
            pending, start);
    s = js_DeleteConsumer(b->js, b->o.stream, b->o.durable, NULL, jerr);
    if (s != NATS_OK && s != NATS_NOT_FOUND && *jerr != JSConsumerNotFoundErr)
        return s;
    *jerr = 0;
    bridge_crash_point("in.after_delete"); /* no consumer until the add */
    return add_consumer(b, start, jerr);
}

static natsStatus subscribe(bridge *b, natsSubscription **sub, jsErrCode *jerr)
{
    natsStatus s = resync(b, jerr);
    if (s != NATS_OK)
        return s;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = b->o.stream;
    so.Consumer = b->o.durable;
    return js_PullSubscribe(sub, b->js, b->o.subject, b->o.durable, NULL, &so, jerr);
}

/* Waits for a free slot, telling the stream the message is still being
 * worked on so its ack wait does not run out meanwhile.  0, or -1 when
 * stopped or the queue failed. */
static int reserve(bridge *b, rq *q, natsMsg *m, void **slot)
{
    int64_t next_progress = bridge_now_ms() + b->o.ack_wait_ms / 3;
    for (;;) {
        int rc = rq_reserve(q, slot, 100);
        if (rc == RQ_OK)
            return 0;
        if (rc != RQ_EAGAIN && rc != RQ_ETIMEDOUT && rc != RQ_ELOCKED) {
            bridge_error(b, "cannot write to queue %s: %s", b->o.queue, rq_strerror(rc));
            return -1;
        }
        if (bridge_stop)
            return -1;
        if (bridge_now_ms() >= next_progress) {
            natsMsg_InProgress(m, NULL);
            next_progress = bridge_now_ms() + b->o.ack_wait_ms / 3;
        }
        bridge_status(b, 0);
    }
}

/* Commits one message and acks it.  0; 1 parked (too large); -1 stopped or
 * failed.  In the last two cases it is not acked. */
static int deliver(bridge *b, rq *q, uint32_t slot_size, natsMsg *m)
{
    jsMsgMetaData *meta = NULL;
    char text[400];
    natsStatus s = natsMsg_GetMetaData(&meta, m);
    if (s != NATS_OK) {
        bridge_error(b, "a fetched message has no JetStream metadata: %s",
                     bridge_nats_text(s, 0, text, sizeof text));
        return -1;
    }
    uint64_t seq = meta->Sequence.Stream;
    uint64_t deliveries = meta->NumDelivered;
    b->p.lag = meta->NumPending;
    jsMsgMetaData_Destroy(meta);
    const char *moved = NULL;
    if (natsMsgHeader_Get(m, "Rq-Moved", &moved) == NATS_OK) {
        /* The place of a message rq-bridge out moved to its dead-letter
         * queue (--dedupe last-sequence): not a message; acked, skipped. */
        natsMsg_Ack(m, NULL);
        b->p.parked++;
        b->p.last_stream_seq = seq;
        return 0;
    }
    size_t len = (size_t)natsMsg_GetDataLength(m);
    if (len > slot_size - RQ_BRIDGE_HEADER_SIZE || slot_size < RQ_BRIDGE_HEADER_SIZE) {
        bridge_error(b,
                     "stream message %" PRIu64 " (%zu bytes) does not fit a slot of queue %s "
                     "(%u bytes, %u of them header); parked, not acked",
                     seq, len, b->o.queue, slot_size, RQ_BRIDGE_HEADER_SIZE);
        b->p.state = "parked";
        return 1;
    }
    void *slot;
    if (reserve(b, q, m, &slot))
        return -1;
    rq_bridge_header_write(slot, seq, deliveries > UINT32_MAX ? UINT32_MAX : (uint32_t)deliveries);
    memcpy((char *)slot + RQ_BRIDGE_HEADER_SIZE, natsMsg_GetData(m), len);
    int rc = rq_commit(q, len + RQ_BRIDGE_HEADER_SIZE);
    if (rc != RQ_OK) {
        bridge_error(b, "cannot commit to queue %s: %s", b->o.queue, rq_strerror(rc));
        return -1;
    }
    /* Committed: a lost ack now only means a duplicate. */
    bridge_crash_point("in.after_commit");
    natsMsg_Ack(m, NULL);
    if (deliveries > 1)
        b->p.duplicates++;
    b->p.messages++;
    b->p.last_stream_seq = seq;
    b->p.state = "running";
    return 0;
}

/* One fetch.  0 go on; 1 the batch was given up (resubscribe first);
 * -1 fatal.  EPOCH: the disconnect count when the subscription was made.
 * Messages the server handed out on a connection that then broke may never
 * have arrived; the batch is then not trusted (a gap in it would break the
 * order), and the consumer is re-created at its ack floor first. */
static int fetch_once(bridge *b, rq *q, uint32_t slot_size, natsSubscription *sub, uint64_t epoch,
                      int *delay)
{
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    char text[400];
    if (bridge_disconnects() != epoch)
        return 1;
    natsStatus s = natsSubscription_Fetch(&list, sub, b->o.batch, 500, &jerr);
    /* A timeout may still have brought some messages: they are the next
     * ones in order and must be handled (or given up), never skipped. */
    if (s == NATS_TIMEOUT && list.Count == 0) {
        bridge_status(b, 0);
        return bridge_disconnects() != epoch;
    }
    if (s != NATS_OK && s != NATS_TIMEOUT) {
        /* Messages it brought, if any, are given up unacked: the consumer
         * is re-created at its ack floor before the next fetch. */
        bridge_error(b, "fetch failed: %s; retrying in %d ms",
                     bridge_nats_text(s, jerr, text, sizeof text), *delay);
        natsMsgList_Destroy(&list);
        bridge_backoff(b, delay);
        return 1;
    }
    if (bridge_disconnects() != epoch) {
        natsMsgList_Destroy(&list);
        return 1;
    }
    int given_up = 0;
    for (int i = 0; i < list.Count && !given_up; i++) {
        int rc = deliver(b, q, slot_size, list.Msgs[i]);
        if (rc < 0 && !bridge_stop)
            given_up = -1;
        else if (rc != 0)
            given_up = 1;
    }
    natsMsgList_Destroy(&list);
    bridge_status(b, 0);
    if (given_up > 0 && !bridge_stop)
        bridge_backoff(b, delay);
    else if (!given_up)
        *delay = 100;
    return given_up;
}

static int consume(bridge *b, rq *q, uint32_t slot_size)
{
    natsSubscription *sub = NULL;
    uint64_t epoch = 0;
    int delay = 100;
    char text[400];
    while (!bridge_stop) {
        if (!sub) {
            jsErrCode jerr = 0;
            epoch = bridge_disconnects();
            natsStatus s = subscribe(b, &sub, &jerr);
            if (s != NATS_OK) {
                bridge_error(b, "cannot attach to consumer %s of stream %s: %s; retrying in %d ms",
                             b->o.durable, b->o.stream,
                             bridge_nats_text(s, jerr, text, sizeof text), delay);
                natsSubscription_Destroy(sub);
                sub = NULL;
                bridge_backoff(b, &delay);
                continue;
            }
            b->p.state = "running";
        }
        int rc = fetch_once(b, q, slot_size, sub, epoch, &delay);
        if (rc < 0) {
            natsSubscription_Destroy(sub);
            return 1;
        }
        if (rc > 0) {
            natsSubscription_Unsubscribe(sub);
            natsSubscription_Destroy(sub);
            sub = NULL;
        }
    }
    /* Acks are sent asynchronously: let the last ones leave. */
    natsConnection_FlushTimeout(b->nc, 1000);
    natsSubscription_Destroy(sub);
    return 0;
}

int bridge_run_in(bridge *b)
{
    rq *q = bridge_open_queue(b, b->o.queue, RQ_PRODUCER);
    if (!q)
        return 1;
    rq_stats st;
    int rc = rq_stat(q, &st);
    if (rc != RQ_OK) {
        bridge_error(b, "cannot read queue %s's geometry: %s", b->o.queue, rq_strerror(rc));
        rq_close(q);
        return 1;
    }
    rc = consume(b, q, st.slot_size);
    rq_close(q);
    return rc;
}
