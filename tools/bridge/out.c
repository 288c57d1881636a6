/*
 * out.c - rq-bridge out: the local queue drained into a JetStream subject.
 *
 * A sliding window (window.h): up to --window messages published
 * asynchronously, each with the message id ID:SEQ, kept in flight all the
 * time.  The stream's acknowledgements, in any order, fill the window's
 * ring; the contiguous acknowledged prefix is released with one store
 * (rq_release_burst) as it grows, and the window is refilled from the
 * queue (rq_peek_burst, which starts again at the oldest unreleased
 * message) once a quarter of it is free.  A message leaves the queue only
 * after the stream has it and every message before it.  A refusal or a
 * missing answer at the head, a closed connection (out reconnects by
 * itself) or a kill makes the bridge publish everything unreleased again
 * with the same ids; the stream, seeing a known id inside its duplicate
 * window, keeps one copy and answers "duplicate".
 *
 * With --dedupe last-sequence a publish carries no id but the stream's
 * last sequence it expects and its queue position (Rq-Pos), and each
 * restart of the window looks at the stream's last message before it
 * publishes again (out_recover.c).
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
#include "window.h"

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

static int last_seq_mode(const bridge *b)
{
    return b->o.dedupe == BRIDGE_DEDUPE_LAST_SEQ;
}

static int mark_moved(bridge *b, uint64_t seq, int *delay);

/* Last-sequence: M's place in the stream, the message at queue position
 * IDBASE:POS published expecting the stream's last sequence EXPECT (set
 * by hand: jsPubOptions.ExpectLastSeq leaves out 0, an empty stream's). */
static natsStatus set_place(natsMsg *m, const char *idbase, uint64_t pos, uint64_t expect)
{
    char text[600];
    snprintf(text, sizeof text, "%" PRIu64, expect);
    natsStatus s = natsMsgHeader_Set(m, "Nats-Expected-Last-Sequence", text);
    snprintf(text, sizeof text, "%s:%" PRIu64, idbase, pos);
    return s == NATS_OK ? natsMsgHeader_Set(m, "Rq-Pos", text) : s;
}

/* Last-sequence: the position this process last pushed to the dead-letter
 * queue, so that retrying its marker (refused, or not answered) does not
 * push another copy each time. */
static uint64_t moved_seq = UINT64_MAX;

/* The stream refused MSG as too large.  With a dead-letter queue: push it
 * there, then (last-sequence) put its marker in the stream, then release
 * it (a crash or a failure in between leaves a second copy in the
 * dead-letter queue, never none).  Without: leave it at the head. */
static int park(bridge *b, rq *q, rq *dlq, const void *msg, size_t len, const rq_msg_info *info,
                int *delay)
{
    if (dlq) {
        int again = last_seq_mode(b) && info->seq == moved_seq;
        int rc = again ? RQ_OK : rq_push(dlq, msg, len, 1000);
        if (rc == RQ_OK && last_seq_mode(b)) {
            moved_seq = info->seq;
            bridge_crash_point("out.moved"); /* moved, not marked */
            if (mark_moved(b, info->seq, delay))
                return 0; /* no marker: the stream is looked at, and this is tried again */
        }
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

/* The queue's depth for the status file, read only when the file is due:
 * rq_stat looks at the role holders (system calls), too dear per round. */
static void update_lag(bridge *b, rq *q)
{
    rq_stats st;
    if (bridge_now_ms() >= b->next_status_ms && rq_stat(q, &st) == RQ_OK)
        b->p.lag = st.depth;
}

/* The window (window.h).  libnats calls bridge_out_ack on its own thread,
 * so the window is under MU.  The main thread sleeps on CV only when it
 * has nothing to do, and says what it waits for: WANT acknowledged
 * messages at the head (or any answer at the head, or an error), so a
 * steady stream of acks wakes it once per refill, not once per ack. */
static struct out_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int waiting;   /* the main thread sleeps on CV */
    uint32_t want; /* ... until PREFIX reaches this */
    bwin w;
    /* The libnats message of each publish in flight, by ring entry, until
     * its answer: how the ack handler finds the sequence number (an ack
     * carries neither the id nor a closure, and reading the id back from
     * the message's header table cost about 8 % of out's CPU).  Cleared
     * when answered and at a restart, so a freed pointer never matches. */
    const natsMsg *msg[BRIDGE_WINDOW_MAX];
    uint64_t hint; /* the next answer expected: acks come mostly in order */
    /* --dedupe last-sequence: the stream's last sequence the message at
     * W.BASE is published expecting (the one at BASE + i expects
     * EXPECT + i), and whether the stream must be looked at before the
     * next publish (at the start, and after every restart of the window).
     * The main thread's alone. */
    uint64_t expect;
    int recover;
    /* Last-sequence: 1 + the highest position published by this process
     * (0: none), the largest message the stream takes (payload and
     * headers, as the last recovery read it), the most header bytes out
     * adds to a payload, and "wrong last sequence" refusals at the head
     * since the last release (the first few recover at once). */
    uint64_t published;
    int64_t max_bytes;
    size_t header_bytes;
    int quick_recoveries;
    const char *idbase; /* the queue's identity, for the markers */
} st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Last-sequence: a marker takes, in the stream, the place of the message
 * at SEQ, moved to the dead-letter queue: an empty message with its
 * Rq-Pos and "Rq-Moved: DEAD-LETTER", published (nothing is in flight)
 * expecting what the message would have expected.  So each position takes
 * one sequence, whoever publishes it: a dead bridge's late copies of the
 * messages behind it expect the places they had, which the successor's
 * copies take first, or theirs.  0 stored; 1 not (reported; the stream
 * is looked at before anything else is sent). */
static int mark_moved(bridge *b, uint64_t seq, int *delay)
{
    char text[400];
    pthread_mutex_lock(&st.mu);
    uint64_t expect = st.expect;
    pthread_mutex_unlock(&st.mu);
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = b->o.publish_wait_ms;
    natsStatus s = natsMsg_Create(&m, b->o.subject, NULL, NULL, 0);
    if (s == NATS_OK)
        s = set_place(m, st.idbase, seq, expect);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Rq-Moved", b->o.dead_letter);
    if (s == NATS_OK)
        s = js_PublishMsg(&pa, b->js, m, &po, &jerr);
    natsMsg_Destroy(m);
    jsPubAck_Destroy(pa);
    st.recover = 1; /* the next window starts from what the stream says */
    if (s == NATS_OK) {
        st.quick_recoveries = 0;
        bridge_crash_point("out.moved_marked"); /* marked, not released */
        return 0;
    }
    bridge_error(b, "cannot put the marker of message %" PRIu64 " (moved to %s) in stream %s: %s",
                 seq, b->o.dead_letter, b->o.stream, bridge_nats_text(s, jerr, text, sizeof text));
    /* Refused for the sequence: at once, a few times in a row (as a refused
     * publish at the head), then with the pause. */
    if (jerr != JSStreamWrongLastSequenceErr || st.quick_recoveries++ >= 3)
        bridge_backoff(b, delay);
    return 1;
}

/* The sequence number of the publish whose message is MSG, its entry
 * cleared (UINT64_MAX if it is not in flight: answered already, or taken
 * back by a restart).  Under ST.MU. */
static uint64_t take_seq(const natsMsg *msg)
{
    uint64_t seq = st.hint;
    if (seq - st.w.base >= st.w.sent || st.msg[bwin_slot(seq)] != msg) {
        seq = UINT64_MAX;
        for (uint32_t i = 0; i < st.w.sent; i++)
            if (st.msg[bwin_slot(st.w.base + i)] == msg) {
                seq = st.w.base + i;
                break;
            }
        if (seq == UINT64_MAX)
            return seq;
    }
    st.msg[bwin_slot(seq)] = NULL;
    st.hint = seq + 1;
    return seq;
}

/* Forgets the messages of everything in flight (under ST.MU). */
static void forget_msgs(void)
{
    for (uint32_t i = 0; i < st.w.sent; i++)
        st.msg[bwin_slot(st.w.base + i)] = NULL;
}

void bridge_out_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)closure;
    int answer = pa ? (pa->Duplicate ? BWIN_DUPLICATE : BWIN_STORED) : BWIN_REFUSED;
    pthread_mutex_lock(&st.mu);
    uint64_t seq = take_seq(msg);
    if (bwin_answer(&st.w, seq, answer,
                    pa    ? NATS_OK
                    : pae ? (int)pae->Err
                          : (int)NATS_ERR,
                    pae ? (int)pae->ErrCode : 0, pa ? pa->Sequence : 0) &&
        st.waiting && (st.w.prefix >= st.want || bwin_head(&st.w) == BWIN_REFUSED)) {
        st.waiting = 0;
        pthread_cond_signal(&st.cv);
    }
    pthread_mutex_unlock(&st.mu);
    natsMsg_Destroy(msg);
}

/* Sleeps until WANT messages at the head are acknowledged, the head is
 * refused, or WAIT_MS pass (a stop too, unless FINAL). */
static void wait_acks(uint32_t want, int64_t wait_ms, int final)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(wait_ms / 1000);
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&st.mu);
    st.want = want;
    while (st.w.prefix < want && bwin_head(&st.w) != BWIN_REFUSED && (final || !bridge_stop)) {
        st.waiting = 1;
        if (pthread_cond_timedwait(&st.cv, &st.mu, &until) == ETIMEDOUT)
            break;
    }
    st.waiting = 0;
    pthread_mutex_unlock(&st.mu);
}

/* The message of V in *M, with the id IDBASE:SEQ, or (last-sequence) that
 * text as its position and the stream's last sequence EXPECT: NATS_OK, or
 * why not. */
static natsStatus make_msg(bridge *b, const char *idbase, const rq_msg_view *v, uint64_t expect,
                           natsMsg **m)
{
    char msgid[600];
    *m = NULL;
    if (v->len > INT32_MAX)
        return NATS_MAX_PAYLOAD;
    natsStatus s = natsMsg_Create(m, b->o.subject, NULL, v->data, (int)v->len);
    if (s == NATS_OK && last_seq_mode(b))
        s = set_place(*m, idbase, v->seq, expect);
    else if (s == NATS_OK) {
        snprintf(msgid, sizeof msgid, "%s:%" PRIu64, idbase, v->seq);
        s = natsMsgHeader_Set(*m, "Nats-Msg-Id", msgid); /* what jsPubOptions.MsgId sets */
    }
    if (s != NATS_OK) {
        natsMsg_Destroy(*m);
        *m = NULL;
    }
    return s;
}

/* Publishes V[0..N) asynchronously, in order, all entered in the window
 * (with their messages) first: an answer may come before
 * js_PublishMsgAsync returns.  A message that cannot be made or published
 * stops the pass there: it and the ones after it are answered as refused,
 * so the head, when it gets there, restarts the window.  No MaxWait: the
 * head's deadline is kept here. */
static void publish(bridge *b, const char *idbase, const rq_msg_view *v, size_t n)
{
    static natsMsg *m[BRIDGE_WINDOW_MAX];
    natsStatus s = NATS_OK;
    size_t made = 0;
    pthread_mutex_lock(&st.mu);
    uint64_t expect0 = st.expect + (v[0].seq - st.w.base); /* the message at V[0] */
    pthread_mutex_unlock(&st.mu);
    if (n > 0 && v[n - 1].seq + 1 > st.published)
        st.published = v[n - 1].seq + 1;
    while (made < n && (s = make_msg(b, idbase, &v[made], expect0 + made, &m[made])) == NATS_OK)
        made++;
    int64_t now = bridge_now_ms();
    pthread_mutex_lock(&st.mu);
    for (size_t i = 0; i < n; i++) {
        if (bwin_publish(&st.w, v[i].seq, (v[i].flags & RQ_MSG_REDELIVERED) != 0, now) != 0) {
            n = i; /* cannot happen: the caller publishes at most the room */
            break;
        }
        st.msg[bwin_slot(v[i].seq)] = i < made ? m[i] : NULL;
    }
    pthread_mutex_unlock(&st.mu);
    size_t i = 0;
    for (; i < made && i < n; i++) {
        natsMsg *one = m[i];
        s = js_PublishMsgAsync(b->js, &one, NULL);
        if (s != NATS_OK) {
            natsMsg_Destroy(one); /* not taken over: still ours */
            break;
        }
    }
    if (i == n) {
        for (size_t j = n; j < made; j++)
            natsMsg_Destroy(m[j]); /* made, but the window had no place for it */
        return;
    }
    pthread_mutex_lock(&st.mu);
    for (size_t j = i; j < n; j++) {
        st.msg[bwin_slot(v[j].seq)] = NULL;
        bwin_answer(&st.w, v[j].seq, BWIN_REFUSED, (int)s, 0, 0);
    }
    pthread_mutex_unlock(&st.mu);
    for (size_t j = i + 1; j < made; j++)
        natsMsg_Destroy(m[j]);
}

/* Releases the acknowledged prefix.  0, or 1 on a fatal error. */
static int release_prefix(bridge *b, rq *q, int *delay)
{
    pthread_mutex_lock(&st.mu);
    uint32_t k = st.w.prefix;
    uint64_t first = st.w.base;
    if (st.w.last_stream_seq > b->p.last_stream_seq)
        b->p.last_stream_seq = st.w.last_stream_seq;
    pthread_mutex_unlock(&st.mu);
    if (k == 0)
        return 0;
    st.quick_recoveries = 0;
    bridge_crash_point("out.after_ack"); /* stored, not released */
    int rc = rq_release_burst(q, k);
    if (rc != RQ_OK) {
        bridge_error(b, "cannot release messages %" PRIu64 "..%" PRIu64 ": %s", first,
                     first + k - 1, rq_strerror(rc));
        return 1;
    }
    bwin_counts c;
    pthread_mutex_lock(&st.mu);
    bwin_release(&st.w, k, &c);
    st.expect += k;
    pthread_mutex_unlock(&st.mu);
    b->p.redelivered += c.redelivered;
    b->p.duplicates += c.duplicates;
    b->p.messages += k;
    b->p.last_queue_seq = first + k - 1;
    b->p.state = "running";
    *delay = 100;
    return 0;
}

/* Everything in flight is forgotten and will be published again from the
 * head, with the same ids: libnats's pending publishes are taken back
 * (answers to them that still come are dropped), so they cannot pile up.
 * Last-sequence: what the stream now holds is unknown until looked at. */
static void restart_window(bridge *b)
{
    st.recover = 1;
    natsMsgList pending;
    if (js_PublishAsyncGetPendingList(&pending, b->js) == NATS_OK)
        natsMsgList_Destroy(&pending);
    pthread_mutex_lock(&st.mu);
    forget_msgs();
    bwin_restart(&st.w, st.w.base);
    pthread_mutex_unlock(&st.mu);
}

/* The head was refused, or not answered in time: park it (too large) or
 * report, pause, and publish the window again.  0, or 1 on a fatal error. */
static int head_failed(bridge *b, rq *q, rq *dlq, int answer, int *delay)
{
    pthread_mutex_lock(&st.mu);
    uint64_t seq = st.w.base;
    natsStatus s = answer == BWIN_REFUSED ? (natsStatus)st.w.err[bwin_slot(seq)] : NATS_TIMEOUT;
    jsErrCode jerr = answer == BWIN_REFUSED ? (jsErrCode)st.w.code[bwin_slot(seq)] : 0;
    pthread_mutex_unlock(&st.mu);
    restart_window(b);
    char text[400];
    if (answer == BWIN_REFUSED && too_large(s, jerr)) {
        rq_msg_view v;
        int n = rq_peek_burst(q, &v, 1, 0); /* the head again: its bytes, for the report */
        if (n < 1 || v.seq != seq) {
            bridge_error(b, "cannot read queue %s: %s", b->o.queue,
                         rq_strerror(n < 1 ? n : RQ_ECORRUPT));
            return 1;
        }
        bridge_error(b, "message %" PRIu64 " (%zu bytes) is larger than the stream accepts: %s%s",
                     seq, v.len, bridge_nats_text(s, jerr, text, sizeof text),
                     dlq ? "" : "; parked at the head of the queue (see --dead-letter)");
        rq_msg_info info = {v.seq, v.flags, 0};
        /* Moved to the dead-letter queue and released, or left at the head:
         * either way the next refill starts the window at the head. */
        return park(b, q, dlq, v.data, v.len, &info, delay);
    }
    if (answer == BWIN_REFUSED && jerr == JSStreamWrongLastSequenceErr && last_seq_mode(b) &&
        st.quick_recoveries++ < 3) {
        /* An earlier copy took the place first (a killed bridge's socket, an
         * old connection), or another writer did: the stream says which.
         * At once, a few times: a writer that keeps moving the stream on
         * gets the back-off pause below instead of a loop. */
        bridge_error(b,
                     "message %" PRIu64 " was refused: the stream is past the sequence it "
                     "expected; looking at the stream's last message",
                     seq);
        return 0;
    }
    bridge_error(b, "publish of message %" PRIu64 " failed: %s; retrying in %d ms", seq,
                 answer == BWIN_REFUSED ? bridge_nats_text(s, jerr, text, sizeof text)
                                        : "no acknowledgement",
                 *delay);
    bridge_backoff(b, delay);
    return 0;
}

/* What stops the head: its answer if refused, BWIN_NONE past its
 * deadline; -1 if nothing does. */
static int head_stuck(bridge *b)
{
    int64_t now = bridge_now_ms();
    pthread_mutex_lock(&st.mu);
    int head = bwin_head(&st.w), stuck = -1;
    if (head == BWIN_REFUSED)
        stuck = head;
    else if (st.w.sent && head == BWIN_NONE &&
             now - st.w.sent_ms[bwin_slot(st.w.base)] > b->o.publish_wait_ms)
        stuck = BWIN_NONE;
    pthread_mutex_unlock(&st.mu);
    return stuck;
}

/* The connection closed (the server went away): what was in flight may
 * be lost, so everything not released is published again, in order, on a
 * new connection.  0, or -1 when stopped. */
static int reconnect(bridge *b)
{
    const char *why = NULL;
    natsStatus s = natsConnection_GetLastError(b->nc, &why);
    bridge_error(b, "connection to %s lost: %s; reconnecting", b->o.server,
                 why && *why ? why : natsStatus_GetText(s));
    restart_window(b);
    return bridge_reconnect(b);
}

/* Last-sequence: how many of V[0..N) from V[SENT] on may be sent: up to
 * the first the stream would refuse as too large, payload and the most
 * header bytes out adds (a fixed bound, so every bridge agrees).  Such a
 * message is never sent: publishes behind it would expect it stored, and
 * a dead bridge's late copies of them would fit in after the successor
 * moved it aside. */
static uint32_t fitting(const bridge *b, const rq_msg_view *v, uint32_t sent, uint32_t n)
{
    if (!last_seq_mode(b))
        return n;
    uint32_t i = sent;
    while (i < n && (int64_t)v[i].len <= st.max_bytes - (int64_t)st.header_bytes)
        i++;
    return i;
}

/* Last-sequence: the head is larger than the stream takes (fitting), and
 * nothing is in flight: moved to the dead-letter queue or parked, as a
 * refusal would be, then the stream is looked at again (its limit may
 * have been raised).  0, or 1 on a fatal error. */
static int park_head(bridge *b, rq *q, rq *dlq, const rq_msg_view *v, int *delay)
{
    bridge_error(b,
                 "message %" PRIu64 " (%zu bytes, %zu more with its headers) is larger than "
                 "stream %s takes (%" PRId64 " bytes)%s",
                 v->seq, v->len, st.header_bytes, b->o.stream, st.max_bytes,
                 dlq ? "" : "; parked at the head of the queue (see --dead-letter)");
    rq_msg_info info = {v->seq, v->flags, 0};
    st.recover = 1;
    return park(b, q, dlq, v->data, v->len, &info, delay);
}

/* Peeks the oldest messages, up to the window, and publishes those beyond
 * the ones in flight (a peek starts again from the oldest unreleased).
 * 1 if there was nothing new, 0 if there was, 2 if the head is too large
 * to send (last-sequence), negative: an rq error. */
static int refill(bridge *b, rq *q, const char *idbase, rq_msg_view *v, uint32_t sent, uint32_t cap)
{
    int n = rq_peek_burst(q, v, cap, sent == 0 ? 200 : 0);
    if (n == RQ_EAGAIN || n == RQ_ETIMEDOUT)
        return 1;
    if (n < 0)
        return n;
    pthread_mutex_lock(&st.mu);
    if (st.w.sent == 0)
        st.w.base = v[0].seq;
    int same = v[0].seq == st.w.base;
    pthread_mutex_unlock(&st.mu);
    if (!same)
        return RQ_ECORRUPT; /* the queue's head is not the window's */
    if ((uint32_t)n <= sent)
        return 1;
    /* Last-sequence: one too large is not sent; parked once it is the head. */
    uint32_t fit = fitting(b, v, sent, (uint32_t)n);
    if (fit == 0)
        return 2;
    if (fit > sent)
        publish(b, idbase, v + sent, (size_t)fit - sent);
    /* A lone message leaves now, not at libnats's next flush (about a
     * millisecond later); under load the buffer fills and goes by itself. */
    if (sent == 0)
        (void)natsConnection_FlushTimeout(b->nc, b->o.publish_wait_ms);
    return fit < cap ? 1 : 0;
}

/* Last-sequence, when due: the stream's last message releases what it
 * holds, and sets what the head expects.  0 go on; -1 not now (the
 * server did not answer: paused); 1 fatal. */
static int recover_if_due(bridge *b, rq *q, const char *idbase, int *delay)
{
    if (!last_seq_mode(b) || !st.recover)
        return 0;
    bridge_recovery r = {.published = st.published};
    int rc = bridge_out_recover(b, q, idbase, &r);
    if (rc < 0) {
        bridge_backoff(b, delay);
        return -1;
    }
    if (rc == 0) {
        pthread_mutex_lock(&st.mu);
        st.expect = r.expect;
        pthread_mutex_unlock(&st.mu);
        st.max_bytes = r.max_bytes;
        st.recover = 0;
        bridge_crash_point("out.recovered"); /* released what the stream has */
    }
    return rc;
}

/* An empty window of --window; last-sequence: the stream is looked at
 * first.  Returns the window's size. */
static uint32_t drain_begin(bridge *b, const char *idbase)
{
    st.recover = 1;
    st.idbase = idbase;
    st.published = 0;
    st.quick_recoveries = 0;
    st.max_bytes = INT64_MAX;
    /* "NATS/1.0\r\n", the two headers with the longest numbers, "\r\n". */
    st.header_bytes = 10 + strlen("Nats-Expected-Last-Sequence: \r\n") + 20 +
                      strlen("Rq-Pos: :\r\n") + strlen(idbase) + 20 + 2;
    /* Slot and record queues alike: the bursts work on both. */
    pthread_mutex_lock(&st.mu);
    bwin_init(&st.w, (uint32_t)b->o.window, 0);
    uint32_t cap = st.w.cap;
    pthread_mutex_unlock(&st.mu);
    return cap;
}

/* Stopping: what is in flight gets a last chance to be acknowledged and
 * released, so a clean stop leaves nothing to publish again.  0, or 1 on
 * a fatal error. */
static int drain_end(bridge *b, rq *q, int *delay)
{
    if (!b->nc || natsConnection_IsClosed(b->nc))
        return 0;
    (void)natsConnection_FlushTimeout(b->nc, 1000);
    pthread_mutex_lock(&st.mu);
    uint32_t sent = st.w.sent;
    pthread_mutex_unlock(&st.mu);
    if (sent) {
        wait_acks(sent, 2000, 1);
        return release_prefix(b, q, delay);
    }
    return 0;
}

static int drain(bridge *b, rq *q, rq *dlq, const char *idbase)
{
    static rq_msg_view v[BRIDGE_WINDOW_MAX];
    int delay = 100;
    uint32_t cap = drain_begin(b, idbase);
    /* A refill re-reads the views of the whole window (a peek starts at the
     * oldest unreleased message): worth it once a quarter is free. */
    uint32_t batch = cap / 4 ? cap / 4 : 1;
    while (!bridge_stop) {
        if (natsConnection_IsClosed(b->nc) && reconnect(b))
            break;
        int due = recover_if_due(b, q, idbase, &delay);
        if (due > 0)
            return 1;
        if (due < 0)
            continue;
        pthread_mutex_lock(&st.mu);
        uint32_t sent = st.w.sent, room = bwin_room(&st.w);
        pthread_mutex_unlock(&st.mu);
        int idle = 0;
        if (sent == 0 || room >= batch) {
            idle = refill(b, q, idbase, v, sent, cap);
            if (idle < 0) {
                bridge_error(b, "cannot read queue %s: %s", b->o.queue, rq_strerror(idle));
                return 1;
            }
            if (idle == 2) {
                if (park_head(b, q, dlq, &v[0], &delay))
                    return 1;
                continue;
            }
            if (idle && sent == 0) {
                update_lag(b, q);
                bridge_status(b, 0);
                continue;
            }
        }
        /* Nothing new in the queue: wake at the next ack, and look at the
         * queue again within a millisecond.  Window full: wake when a
         * refill's worth is acknowledged. */
        wait_acks(idle ? 1 : batch, idle ? 1 : 100, 0);
        if (release_prefix(b, q, &delay))
            return 1;
        int stuck = head_stuck(b);
        if (stuck >= 0 && head_failed(b, q, dlq, stuck, &delay))
            return 1;
        update_lag(b, q);
        bridge_status(b, 0);
    }
    return drain_end(b, q, &delay);
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
