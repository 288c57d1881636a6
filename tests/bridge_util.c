/*
 * bridge_util.c - the helper tests/test_bridge.py drives rq-bridge with:
 * makes streams, reads a stream back, produces into and drains rq queues,
 * publishes to a subject, and times a plain libnats publisher for the
 * benchmark.  Output is line-based text for the test to parse.
 *
 *   bridge_util stream-create URL STREAM SUBJECT MAX_MSG_SIZE
 *   bridge_util stream-read URL STREAM          "seq <tab> payload" lines
 *   bridge_util produce QUEUE FIRST COUNT INTERVAL_US SLOTS
 *   bridge_util push QUEUE SIZE                 one message of SIZE 'x'
 *   bridge_util depth QUEUE                     messages in the queue
 *   bridge_util create QUEUE SLOTS SIZE
 *   bridge_util create-records QUEUE CAPACITY MAXLEN   a record queue
 *   bridge_util fill QUEUE COUNT SIZE           COUNT messages of SIZE bytes
 *   bridge_util fill-wait QUEUE COUNT SIZE      the same, then waits until the
 *                                               queue is empty: messages per second
 *   bridge_util drain QUEUE COUNT IDLE_MS       records, duplicates dropped
 *   bridge_util publish URL SUBJECT FIRST COUNT INTERVAL_US
 *   bridge_util bench-pub URL SUBJECT COUNT SIZE   messages per second
 *   bridge_util bench-pub-opts URL SUBJECT COUNT SIZE MAXPENDING MODE
 *                               the same, MAXPENDING in flight, on a stream
 *                               it alone writes to; MODE: plain (or 0), id
 *                               (a message id, or 1), custom (a header the
 *                               server passes on: Rq-Pos), payload (custom's
 *                               header text in the payload instead),
 *                               expect-seq, expect-subject-seq (the
 *                               expected last sequence, stream's or
 *                               subject's), expect-seq-pos (expect-seq
 *                               and custom); "RATE CPU_US_PER_MSG", checks
 *                               that the stream stored all
 *   bridge_util stream-create-dup URL STREAM SUBJECT MAX_MSG_SIZE DUP_MS
 *                               stream-create, duplicate window DUP_MS
 *   bridge_util stream-purge URL STREAM
 *   bridge_util stream-create-wq URL STREAM SUBJECT
 *                               a stream with work-queue retention
 *   bridge_util stream-set-max URL STREAM MAX   its MaxMsgSize changed
 *   bridge_util latency QUEUE_OUT QUEUE_IN COUNT   push->pop through a bridge
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <nats/nats.h>

#include "rq.h"
#include "rq_bridge.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pause_us(long us)
{
    if (us <= 0)
        return;
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int die(const char *what, natsStatus s)
{
    fprintf(stderr, "bridge_util: %s: %s (%s)\n", what, natsStatus_GetText(s),
            nats_GetLastError(NULL));
    return 1;
}

static jsCtx *connect_js(const char *url, natsConnection **nc)
{
    jsCtx *js = NULL;
    natsStatus s = natsConnection_ConnectTo(nc, url);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&js, *nc, NULL);
    if (s != NATS_OK) {
        die("connect", s);
        exit(1);
    }
    return js;
}

/* A checksum over the message's text, so a torn or altered message shows. */
static uint32_t sum(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static int format_msg(char *buf, size_t cap, const char *tag, uint64_t i)
{
    int n = snprintf(buf, cap, "%s %" PRIu64 " ", tag, i);
    return n + snprintf(buf + n, cap - (size_t)n, "%08x", sum(buf, (size_t)n));
}

/* Stream NAME storing SUBJECT on the server at URL: messages up to
 * MAX_SIZE bytes (-1: any), duplicate window DUP_NS (0: the server's
 * default, 2 minutes), RETENTION. */
static int stream_create(const char *url, const char *name, const char *subject, int32_t max_size,
                         int64_t dup_ns, jsRetentionPolicy retention)
{
    natsConnection *nc;
    jsCtx *js = connect_js(url, &nc);
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = name;
    sc.Subjects = &subject;
    sc.SubjectsLen = 1;
    sc.MaxMsgSize = max_size;
    sc.Duplicates = dup_ns;
    sc.Retention = retention;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return s == NATS_OK ? 0 : die("add stream", s);
}

static int cmd_stream_create(char **a)
{
    return stream_create(a[0], a[1], a[2], atoi(a[3]), 0, js_LimitsPolicy);
}

static int cmd_stream_create_dup(char **a)
{
    return stream_create(a[0], a[1], a[2], atoi(a[3]), (int64_t)atol(a[4]) * 1000000,
                         js_LimitsPolicy);
}

/* A stream that deletes what a consumer acknowledged: one that cannot
 * promise to keep its last message. */
static int cmd_stream_create_wq(char **a)
{
    return stream_create(a[0], a[1], a[2], -1, 0, js_WorkQueuePolicy);
}

/* Sets STREAM's largest message (MaxMsgSize) to MAX. */
static int cmd_stream_set_max(char **a)
{
    natsConnection *nc;
    jsCtx *js = connect_js(a[0], &nc);
    jsStreamInfo *si = NULL, *after = NULL;
    natsStatus s = js_GetStreamInfo(&si, js, a[1], NULL, NULL);
    if (s == NATS_OK) {
        si->Config->MaxMsgSize = (int32_t)strtol(a[2], NULL, 10);
        s = js_UpdateStream(&after, js, si->Config, NULL, NULL);
    }
    jsStreamInfo_Destroy(after);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return s == NATS_OK ? 0 : die("update stream", s);
}

/* Empties STREAM between benchmark runs, so that the store does not grow. */
static int cmd_stream_purge(char **a)
{
    natsConnection *nc;
    jsCtx *js = connect_js(a[0], &nc);
    natsStatus s = js_PurgeStream(js, a[1], NULL, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return s == NATS_OK ? 0 : die("purge stream", s);
}

static int cmd_stream_read(char **a)
{
    natsConnection *nc;
    jsCtx *js = connect_js(a[0], &nc);
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, js, a[1], NULL, NULL);
    if (s != NATS_OK)
        return die("stream info", s);
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    for (uint64_t seq = first; seq && seq <= last; seq++) {
        natsMsg *m = NULL;
        s = js_GetMsg(&m, js, a[1], seq, NULL, NULL);
        if (s == NATS_NOT_FOUND)
            continue;
        if (s != NATS_OK)
            return die("get message", s);
        printf("%" PRIu64 "\t%.*s\n", seq, natsMsg_GetDataLength(m), natsMsg_GetData(m));
        natsMsg_Destroy(m);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}

static rq *open_queue(const char *name, int role, uint32_t slots, uint32_t size)
{
    rq_config cfg = {slots, size, 0, 0};
    rq *q = NULL;
    int rc = rq_open(&q, name, role, slots ? &cfg : NULL);
    if (rc != RQ_OK) {
        fprintf(stderr, "bridge_util: open %s: %s\n", name, rq_strerror(rc));
        exit(1);
    }
    return q;
}

static int cmd_produce(char **a)
{
    rq *q = open_queue(a[0], RQ_PRODUCER, (uint32_t)atol(a[4]), 256);
    uint64_t first = strtoull(a[1], NULL, 10), count = strtoull(a[2], NULL, 10);
    long interval = atol(a[3]);
    char buf[128];
    for (uint64_t i = first; i < first + count; i++) {
        int n = format_msg(buf, sizeof buf, "m", i);
        int rc = rq_push(q, buf, (size_t)n, RQ_INFINITE);
        if (rc != RQ_OK)
            return fprintf(stderr, "bridge_util: push: %s\n", rq_strerror(rc)), 1;
        pause_us(interval);
    }
    rq_close(q);
    return 0;
}

static int cmd_push(char **a)
{
    rq *q = open_queue(a[0], RQ_PRODUCER, 0, 0);
    size_t n = (size_t)atol(a[1]);
    char *buf = malloc(n ? n : 1);
    memset(buf, 'x', n);
    int rc = rq_push(q, buf, n, 1000);
    free(buf);
    rq_close(q);
    return rc == RQ_OK ? 0 : (fprintf(stderr, "bridge_util: push: %s\n", rq_strerror(rc)), 1);
}

static int cmd_create(char **a)
{
    rq_close(open_queue(a[0], RQ_OBSERVER, (uint32_t)atol(a[1]), (uint32_t)atol(a[2])));
    return 0;
}

static int cmd_fill(char **a)
{
    rq *q = open_queue(a[0], RQ_PRODUCER, 0, 0);
    long count = atol(a[1]);
    char buf[4096] = {0};
    size_t size = (size_t)atol(a[2]);
    for (long i = 0; i < count; i++) {
        int rc = rq_push(q, buf, size < sizeof buf ? size : sizeof buf, 5000);
        if (rc != RQ_OK)
            return fprintf(stderr, "bridge_util: push: %s\n", rq_strerror(rc)), 1;
    }
    rq_close(q);
    return 0;
}

/* The benchmark of rq-bridge out, with the bridge already connected and
 * waiting on the empty QUEUE: pushes COUNT messages of SIZE bytes, waits
 * (polling, 0.2 ms apart, in this process) until the bridge has released
 * them all, and prints messages per second from the first push. */
static int cmd_fill_wait(char **a)
{
    rq *q = open_queue(a[0], RQ_PRODUCER, 0, 0);
    long count = atol(a[1]);
    char buf[4096] = {0};
    size_t size = (size_t)atol(a[2]);
    int64_t t0 = now_ns();
    for (long i = 0; i < count; i++) {
        int rc = rq_push(q, buf, size < sizeof buf ? size : sizeof buf, 5000);
        if (rc != RQ_OK)
            return fprintf(stderr, "bridge_util: push: %s\n", rq_strerror(rc)), 1;
    }
    rq_stats st;
    int rc;
    while ((rc = rq_stat(q, &st)) == RQ_OK && st.depth > 0)
        pause_us(200);
    int64_t t1 = now_ns();
    rq_close(q);
    if (rc != RQ_OK)
        return fprintf(stderr, "bridge_util: stat: %s\n", rq_strerror(rc)), 1;
    printf("%.0f\n", (double)count * 1e9 / (double)(t1 - t0));
    return 0;
}

/* A record queue (RQ_RECORDS) of CAPACITY bytes, messages up to MAXLEN. */
static int cmd_create_records(char **a)
{
    rq_config cfg = {(uint32_t)atol(a[1]), (uint32_t)atol(a[2]), RQ_RECORDS, 0};
    rq *q = NULL;
    int rc = rq_open(&q, a[0], RQ_OBSERVER, &cfg);
    if (rc != RQ_OK)
        return fprintf(stderr, "bridge_util: create %s: %s\n", a[0], rq_strerror(rc)), 1;
    rq_close(q);
    return 0;
}

static int cmd_depth(char **a)
{
    rq *q = open_queue(a[0], RQ_OBSERVER, 0, 0);
    rq_stats st;
    if (rq_stat(q, &st) != RQ_OK)
        return 1;
    printf("%u\n", st.depth);
    rq_close(q);
    return 0;
}

/* Removes queue NAME as rq_unlink does: the segment, and its lock object
 * and poll files once no lock is held in them (every side stopped).  A
 * name that is gone already is no error. */
static int cmd_unlink(char **a)
{
    int rc = rq_unlink(a[0]);
    if (rc != RQ_OK && rc != RQ_ENOENT)
        return fprintf(stderr, "bridge_util: rq_unlink %s: %s\n", a[0], rq_errname(rc)), 1;
    return 0;
}

/* The receiving application of docs/bridge.md: keeps the highest stream
 * sequence processed and drops every record at or below it.  Prints
 * "rec SEQ DELIVERIES PAYLOAD" for a record it keeps and "dup SEQ" for one
 * it drops; stops after COUNT kept records or IDLE_MS without any. */
static int cmd_drain(char **a)
{
    rq *q = NULL;
    if (rq_open(&q, a[0], RQ_CONSUMER, NULL) != RQ_OK) /* else create it */
        q = open_queue(a[0], RQ_CONSUMER, 1024, 256);
    uint64_t want = strtoull(a[1], NULL, 10), kept = 0, high = 0;
    int idle = atoi(a[2]);
    char buf[256];
    while (kept < want) {
        size_t len;
        int rc = rq_pop(q, buf, sizeof buf, &len, idle);
        if (rc == RQ_ETIMEDOUT || rc == RQ_EAGAIN)
            break;
        if (rc != RQ_OK)
            return fprintf(stderr, "bridge_util: pop: %s\n", rq_strerror(rc)), 1;
        rq_bridge_record r;
        if (rq_bridge_record_parse(buf, len, &r) != 0) {
            printf("bad %zu\n", len);
            continue;
        }
        if (r.stream_seq <= high) {
            printf("dup %" PRIu64 "\n", r.stream_seq);
            continue;
        }
        high = r.stream_seq;
        kept++;
        printf("rec %" PRIu64 " %u %.*s\n", r.stream_seq, r.deliveries, (int)r.payload_len,
               (const char *)r.payload);
        fflush(stdout);
    }
    fflush(stdout);
    rq_close(q);
    return 0;
}

static int cmd_publish(char **a)
{
    natsConnection *nc;
    jsCtx *js = connect_js(a[0], &nc);
    uint64_t first = strtoull(a[2], NULL, 10), count = strtoull(a[3], NULL, 10);
    long interval = atol(a[4]);
    char buf[128];
    for (uint64_t i = first; i < first + count; i++) {
        int n = format_msg(buf, sizeof buf, "n", i);
        natsStatus s = js_Publish(NULL, js, a[1], buf, n, NULL, NULL);
        if (s != NATS_OK)
            return die("publish", s);
        pause_us(interval);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}

/* The baseline: a plain libnats JetStream asynchronous publisher, MAXP
 * publishes in flight (libnats's MaxPending), of COUNT messages of SIZE
 * zero bytes.  bench-pub-opts's MODE says what goes on each publish
 * besides the payload, to measure what each header costs the client and
 * the server (docs/bridge.md, "What the server charges for a header"). */
enum pub_mode {
    PUB_PLAIN,
    PUB_ID,
    PUB_CUSTOM,
    PUB_PAYLOAD,
    PUB_EXPECT_SEQ,
    PUB_EXPECT_SUBJ_SEQ,
    PUB_EXPECT_SEQ_POS
};
static const char *const pub_modes[] = {
    "plain", "id", "custom", "payload", "expect-seq", "expect-subject-seq", "expect-seq-pos"};

/* The header text PUB_CUSTOM sends (as libnats encodes it in HPUB), which
 * PUB_PAYLOAD writes into the payload instead: the same bytes, no header. */
#define RQ_POS_FMT "NATS/1.0\r\nRq-Pos: %ld\r\n\r\n"

typedef struct {
    jsCtx *js;
    const char *subj;
    enum pub_mode mode;
    char *buf; /* SIZE zeros, and room for the header text in front */
    int size;
    int64_t t0;    /* the run's start: makes its message ids new */
    uint64_t last; /* the stream's last sequence before the run */
} bench_run;

/* One message with the header "Rq-Pos: I", which the server passes on
 * without interpreting it, and the headers PO asks for. */
static natsStatus pub_custom(bench_run *r, long i, jsPubOptions *po)
{
    char pos[24];
    snprintf(pos, sizeof pos, "%ld", i);
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, r->subj, NULL, r->buf, r->size);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Rq-Pos", pos);
    if (s == NATS_OK)
        s = js_PublishMsgAsync(r->js, &m, po);
    natsMsg_Destroy(m); /* NULL once libnats has taken it over */
    return s;
}

static natsStatus pub_one(bench_run *r, long i)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    char id[64];
    switch (r->mode) {
    case PUB_CUSTOM:
        return pub_custom(r, i, NULL);
    case PUB_EXPECT_SEQ_POS: /* the last message tells its position */
        po.ExpectLastSeq = r->last + (uint64_t)i;
        return pub_custom(r, i, &po);
    case PUB_PAYLOAD: {
        int n = snprintf(r->buf, 64, RQ_POS_FMT, i);
        return js_PublishAsync(r->js, r->subj, r->buf, n + r->size, NULL);
    }
    case PUB_ID: /* new ids every run: a known id is a cheaper "duplicate" */
        snprintf(id, sizeof id, "bench.%" PRId64 ":%ld", r->t0, i);
        po.MsgId = id;
        break;
    case PUB_EXPECT_SEQ: /* the stream's only writer knows its last sequence */
        po.ExpectLastSeq = r->last + (uint64_t)i;
        break;
    case PUB_EXPECT_SUBJ_SEQ: /* and, with one subject, the subject's */
        po.ExpectLastSubjectSeq = r->last + (uint64_t)i;
        break;
    case PUB_PLAIN:
        break;
    }
    return js_PublishAsync(r->js, r->subj, r->buf, r->size, &po);
}

static double cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_usec;
}

static jsCtx *connect_pub(const char *url, long maxp, natsConnection **nc)
{
    natsStatus s = natsConnection_ConnectTo(nc, url);
    if (s != NATS_OK)
        exit(die("connect", s));
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = maxp;
    jo.PublishAsync.StallWait = 10000; /* a loaded machine stalls longer than the default 200 ms */
    jsCtx *js = NULL;
    s = natsConnection_JetStream(&js, *nc, &jo);
    if (s != NATS_OK)
        exit(die("jetstream", s));
    return js;
}

/* Publishes COUNT messages and waits for every answer: returns the status,
 * the rate in messages per second and this process's CPU time (all its
 * threads) per message in microseconds. */
static natsStatus bench_loop(bench_run *r, long count, double *rate, double *cpu)
{
    double c0 = cpu_us();
    r->t0 = now_ns();
    natsStatus s = NATS_OK;
    for (long i = 0; i < count && s == NATS_OK; i++)
        s = pub_one(r, i);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    if (s == NATS_OK)
        s = js_PublishAsyncComplete(r->js, &po);
    *rate = (double)count * 1e9 / (double)(now_ns() - r->t0);
    *cpu = (cpu_us() - c0) / (double)count;
    return s;
}

static int cmd_bench_pub(char **a)
{
    natsConnection *nc;
    bench_run r = {connect_pub(a[0], 4096, &nc), a[1], PUB_PLAIN, NULL, atoi(a[3]), 0, 0};
    r.buf = calloc(1, (size_t)r.size + 64);
    double rate, cpu;
    natsStatus s = bench_loop(&r, atol(a[2]), &rate, &cpu);
    free(r.buf);
    if (s != NATS_OK)
        return die("async publish", s);
    printf("%.0f\n", rate);
    jsCtx_Destroy(r.js);
    natsConnection_Destroy(nc);
    return 0;
}

static int parse_mode(const char *m)
{
    if (strcmp(m, "0") == 0 || strcmp(m, "1") == 0) /* the earlier IDS argument */
        return m[0] == '1' ? PUB_ID : PUB_PLAIN;
    for (size_t i = 0; i < sizeof pub_modes / sizeof pub_modes[0]; i++)
        if (strcmp(m, pub_modes[i]) == 0)
            return (int)i;
    return -1;
}

/* The stream behind SUBJ and its last sequence, learnt from one
 * synchronous publish (untimed) in front of the run; the expected-sequence
 * modes need the last sequence. */
static int prime(bench_run *r, char *stream, size_t cap)
{
    jsPubAck *pa = NULL;
    natsStatus s = js_Publish(&pa, r->js, r->subj, r->buf, r->size, NULL, NULL);
    if (s != NATS_OK)
        return die("first publish", s);
    snprintf(stream, cap, "%s", pa->Stream);
    r->last = pa->Sequence;
    jsPubAck_Destroy(pa);
    return 0;
}

/* Every answer came back, but did the stream store every message?  A
 * wrong expected sequence is refused in the ack, which the loop ignores. */
static int check_stored(bench_run *r, const char *stream, long count)
{
    jsStreamInfo *si = NULL;
    natsStatus s = js_GetStreamInfo(&si, r->js, stream, NULL, NULL);
    if (s != NATS_OK)
        return die("stream info", s);
    uint64_t stored = si->State.LastSeq - r->last;
    jsStreamInfo_Destroy(si);
    if (stored != (uint64_t)count)
        return fprintf(stderr, "bridge_util: %s stored %" PRIu64 " of %ld\n", stream, stored,
                       count),
               1;
    return 0;
}

/* bench-pub with MAXPENDING and MODE given (a name of pub_modes, or 0 and
 * 1 for plain and id), on a stream this run alone writes to.  Prints the
 * rate (messages per second) and the CPU time per message of this process
 * in microseconds, then checks that the stream stored all COUNT. */
static int cmd_bench_pub_opts(char **a)
{
    int mode = parse_mode(a[5]);
    if (mode < 0)
        return fprintf(stderr, "bridge_util: unknown mode %s\n", a[5]), 2;
    natsConnection *nc;
    bench_run r = {
        connect_pub(a[0], atol(a[4]), &nc), a[1], (enum pub_mode)mode, NULL, atoi(a[3]), 0, 0};
    r.buf = calloc(1, (size_t)r.size + 64);
    long count = atol(a[2]);
    char stream[256];
    double rate, cpu;
    if (prime(&r, stream, sizeof stream) != 0)
        return 1;
    natsStatus s = bench_loop(&r, count, &rate, &cpu);
    free(r.buf);
    if (s != NATS_OK)
        return die("async publish", s);
    if (check_stored(&r, stream, count) != 0)
        return 1;
    printf("%.0f %.3f\n", rate, cpu);
    jsCtx_Destroy(r.js);
    natsConnection_Destroy(nc);
    return 0;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* One message at a time: push into QUEUE_OUT (drained by rq-bridge out),
 * pop its record from QUEUE_IN (fed by rq-bridge in).  Prints the median,
 * 99th percentile and maximum in microseconds. */
static int cmd_latency(char **a)
{
    rq *out = open_queue(a[0], RQ_PRODUCER, 0, 0);
    rq *in = open_queue(a[1], RQ_CONSUMER, 0, 0);
    int count = atoi(a[2]);
    int64_t *lat = calloc((size_t)count, sizeof *lat);
    char buf[256];
    for (int i = 0; i < count; i++) {
        int64_t t0 = now_ns();
        int n = format_msg(buf, sizeof buf, "l", (uint64_t)i);
        size_t len;
        if (rq_push(out, buf, (size_t)n, 5000) != RQ_OK ||
            rq_pop(in, buf, sizeof buf, &len, 5000) != RQ_OK)
            return fprintf(stderr, "bridge_util: latency round %d timed out\n", i), 1;
        lat[i] = now_ns() - t0;
    }
    qsort(lat, (size_t)count, sizeof *lat, cmp_i64);
    printf("%.0f %.0f %.0f\n", lat[count / 2] / 1e3, lat[count * 99 / 100] / 1e3,
           lat[count - 1] / 1e3);
    free(lat);
    rq_close(out);
    rq_close(in);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int args;
        int (*fn)(char **);
    } cmds[] = {{"stream-create", 4, cmd_stream_create},
                {"stream-create-dup", 5, cmd_stream_create_dup},
                {"stream-purge", 2, cmd_stream_purge},
                {"stream-create-wq", 3, cmd_stream_create_wq},
                {"stream-set-max", 3, cmd_stream_set_max},
                {"stream-read", 2, cmd_stream_read},
                {"produce", 5, cmd_produce},
                {"push", 2, cmd_push},
                {"depth", 1, cmd_depth},
                {"unlink", 1, cmd_unlink},
                {"create", 3, cmd_create},
                {"create-records", 3, cmd_create_records},
                {"drain", 3, cmd_drain},
                {"fill", 3, cmd_fill},
                {"fill-wait", 3, cmd_fill_wait},
                {"publish", 5, cmd_publish},
                {"bench-pub", 4, cmd_bench_pub},
                {"bench-pub-opts", 6, cmd_bench_pub_opts},
                {"latency", 3, cmd_latency}};
    for (size_t i = 0; argc >= 2 && i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0 && argc == cmds[i].args + 2)
            return cmds[i].fn(argv + 2);
    fprintf(stderr, "usage: see the top of tests/bridge_util.c\n");
    return 2;
}
