/*
 * out.c - rq-bridge out: the local queue drained into a JetStream subject.
 *
 * A window at a time: peek up to --window messages (rq_peek_burst), publish
 * each asynchronously with the message id ID:SEQ, wait for the stream's
 * acknowledgements, then release the longest acknowledged prefix with one
 * store (rq_release_burst).  A message leaves the queue only after the
 * stream has it.  What is not released stays peeked and is published
 * again in the next round with the same ids; a bridge killed between the
 * acks and the release peeks the same messages (same SEQ) after restart
 * and publishes them again.  Either way the stream, seeing a known id
 * inside its duplicate window, keeps one copy and answers "duplicate", and
 * the stream's order is the queue's: a message is never released before
 * the ones in front of it.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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

/* The answers to one window's publishes.  libnats calls bridge_out_ack
 * on its own thread, so every field is under MU. */
enum { ANSWER_NONE = 0, ANSWER_STORED, ANSWER_DUPLICATE, ANSWER_REFUSED };
static struct out_window {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t base;   /* sequence number of the window's first message */
    size_t n;        /* messages published in this round */
    size_t answered; /* of those, answered */
    unsigned char answer[BRIDGE_WINDOW_MAX];
    natsStatus err[BRIDGE_WINDOW_MAX];
    jsErrCode code[BRIDGE_WINDOW_MAX];
    uint64_t last_stream_seq;
} win = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* The message's rq sequence number, from its id "ID:SEQ" (UINT64_MAX if
 * it has none: not one of ours). */
static uint64_t id_seq(natsMsg *msg)
{
    const char *id = NULL;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK || !id)
        return UINT64_MAX;
    const char *colon = strrchr(id, ':');
    if (!colon)
        return UINT64_MAX;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(colon + 1, &end, 10);
    return (*end || errno) ? UINT64_MAX : (uint64_t)v;
}

void bridge_out_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)closure;
    uint64_t seq = id_seq(msg);
    pthread_mutex_lock(&win.mu);
    /* An answer to an earlier round's publish of the same message counts
     * as well: same id, same message. */
    if (seq >= win.base && seq - win.base < win.n && win.answer[seq - win.base] == ANSWER_NONE) {
        size_t i = (size_t)(seq - win.base);
        if (pa) {
            win.answer[i] = pa->Duplicate ? ANSWER_DUPLICATE : ANSWER_STORED;
            if (pa->Sequence > win.last_stream_seq)
                win.last_stream_seq = pa->Sequence;
        } else {
            win.answer[i] = ANSWER_REFUSED;
            win.err[i] = pae ? pae->Err : NATS_ERR;
            win.code[i] = pae ? pae->ErrCode : 0;
        }
        win.answered++;
        pthread_cond_broadcast(&win.cv);
    }
    pthread_mutex_unlock(&win.mu);
    natsMsg_Destroy(msg);
}

/* Starts a round for the N messages from sequence BASE on. */
static void window_open(uint64_t base, size_t n)
{
    pthread_mutex_lock(&win.mu);
    win.base = base;
    win.n = n;
    win.answered = 0;
    memset(win.answer, 0, n);
    pthread_mutex_unlock(&win.mu);
}

/* A publish that failed before it left: answered at once, refused. */
static void window_refuse(size_t i, natsStatus s, jsErrCode code)
{
    pthread_mutex_lock(&win.mu);
    if (win.answer[i] == ANSWER_NONE) {
        win.answer[i] = ANSWER_REFUSED;
        win.err[i] = s;
        win.code[i] = code;
        win.answered++;
    }
    pthread_mutex_unlock(&win.mu);
}

/* Waits until the first N publishes are answered or WAIT_MS pass. */
static void window_wait(size_t n, int64_t wait_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(wait_ms / 1000);
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&win.mu);
    while (win.answered < n && !bridge_stop)
        if (pthread_cond_timedwait(&win.cv, &win.mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&win.mu);
}

/* Publishes V[0..N) asynchronously; how many left (a failed call stops the
 * round there, answered as refused). */
static size_t publish_window(bridge *b, const char *idbase, const rq_msg_view *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char msgid[600];
        snprintf(msgid, sizeof msgid, "%s:%" PRIu64, idbase, v[i].seq);
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = msgid;
        po.MaxWait = b->o.publish_wait_ms;
        jsErrCode jerr = 0;
        natsStatus s = v[i].len > INT32_MAX
                           ? NATS_MAX_PAYLOAD
                           : js_PublishAsync(b->js, b->o.subject, v[i].data, (int)v[i].len, &po);
        if (s != NATS_OK) {
            window_refuse(i, s, jerr);
            return i + 1;
        }
    }
    return n;
}

/* One round: the answers to N published messages of V decide how many are
 * released.  0 to go on, or 1 on a fatal error. */
static int settle(bridge *b, rq *q, rq *dlq, const rq_msg_view *v, size_t n, int *delay)
{
    /* The window's publishes leave now, not at libnats's next flush (about
     * a millisecond later); a failure shows as missing acks below. */
    (void)natsConnection_FlushTimeout(b->nc, b->o.publish_wait_ms);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = b->o.publish_wait_ms;
    (void)js_PublishAsyncComplete(b->js, &po); /* waits for the acks */
    window_wait(n, 1000);                      /* and for their callbacks */
    pthread_mutex_lock(&win.mu);
    size_t k = 0, dups = 0;
    while (k < n && (win.answer[k] == ANSWER_STORED || win.answer[k] == ANSWER_DUPLICATE))
        dups += win.answer[k++] == ANSWER_DUPLICATE;
    int refused = k < n && win.answer[k] == ANSWER_REFUSED;
    natsStatus s = refused ? win.err[k] : NATS_TIMEOUT;
    jsErrCode jerr = refused ? win.code[k] : 0;
    b->p.last_stream_seq = win.last_stream_seq;
    pthread_mutex_unlock(&win.mu);
    if (k > 0) {
        bridge_crash_point("out.after_ack"); /* stored, not released */
        int rc = rq_release_burst(q, k);
        if (rc != RQ_OK) {
            bridge_error(b, "cannot release messages %" PRIu64 "..%" PRIu64 ": %s", v[0].seq,
                         v[k - 1].seq, rq_strerror(rc));
            return 1;
        }
        for (size_t i = 0; i < k; i++)
            b->p.redelivered += (v[i].flags & RQ_MSG_REDELIVERED) != 0;
        b->p.duplicates += dups;
        b->p.messages += k;
        b->p.last_queue_seq = v[k - 1].seq;
        b->p.state = "running";
        *delay = 100;
    }
    if (k == n)
        return 0;
    char text[400];
    rq_msg_info info = {v[k].seq, v[k].flags, 0};
    if (refused && too_large(s, jerr)) {
        bridge_error(b, "message %" PRIu64 " (%zu bytes) is larger than the stream accepts: %s%s",
                     v[k].seq, v[k].len, bridge_nats_text(s, jerr, text, sizeof text),
                     dlq ? "" : "; parked at the head of the queue (see --dead-letter)");
        return park(b, q, dlq, v[k].data, v[k].len, &info, delay);
    }
    bridge_error(b, "publish of message %" PRIu64 " failed: %s; retrying in %d ms", v[k].seq,
                 refused ? bridge_nats_text(s, jerr, text, sizeof text) : "no acknowledgement",
                 *delay);
    bridge_backoff(b, delay);
    return 0;
}

static int drain(bridge *b, rq *q, rq *dlq, const char *idbase)
{
    static rq_msg_view v[BRIDGE_WINDOW_MAX];
    int delay = 100;
    while (!bridge_stop) {
        int n = rq_peek_burst(q, v, (size_t)b->o.window, 200);
        if (n == RQ_EAGAIN || n == RQ_ETIMEDOUT) {
            update_lag(b, q);
            bridge_status(b, 0);
            continue;
        }
        if (n < 0) {
            bridge_error(b, "cannot read queue %s: %s", b->o.queue, rq_strerror(n));
            return 1;
        }
        window_open(v[0].seq, (size_t)n);
        size_t sent = publish_window(b, idbase, v, (size_t)n);
        if (settle(b, q, dlq, v, sent, &delay))
            return 1;
        update_lag(b, q);
        bridge_status(b, 0);
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
