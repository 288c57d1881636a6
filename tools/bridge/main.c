/*
 * main.c - rq-bridge: the command line, the status file, the NATS
 * connection (first connect retried with back-off; libnats reconnects
 * after that) and the clean stop on SIGTERM/SIGINT.  The two directions
 * are out.c and in.c; docs/bridge.md is the manual.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bridge.h"

volatile sig_atomic_t bridge_stop;
/* Set by libnats's connection callbacks, which run on its own thread. */
static atomic_int link_down;
static atomic_uint_fast64_t link_reconnects;
static atomic_uint_fast64_t link_disconnects;

uint64_t bridge_disconnects(void)
{
    return atomic_load(&link_disconnects);
}

uint64_t bridge_reconnects(void)
{
    return atomic_load(&link_reconnects);
}

static const char usage[] =
    "usage: rq-bridge out --queue NAME --subject SUBJECT [options]\n"
    "       rq-bridge in  --queue NAME --subject SUBJECT --stream STREAM --durable NAME [options]\n"
    "       rq-bridge --help\n";

/* In two parts: C99 promises string literals of 4,095 bytes only. */
static const char help_top[] =
    "NAME\n"
    "    rq-bridge - carry messages between a local rq queue and NATS JetStream\n"
    "\n"
    "SYNOPSIS\n"
    "    rq-bridge out --queue NAME --subject SUBJECT [--stream STREAM] [options]\n"
    "    rq-bridge in  --queue NAME --subject SUBJECT --stream STREAM --durable NAME [options]\n"
    "\n"
    "DESCRIPTION\n"
    "    out  drains the rq queue NAME (as its consumer) into SUBJECT.  Each\n"
    "         message is published with the message id ID:SEQ (SEQ: its rq\n"
    "         sequence number) and released from the queue only after the\n"
    "         stream acknowledged it.  A bridge killed in between publishes it\n"
    "         again after restart and the stream drops the copy (duplicate\n"
    "         window, 2 minutes by default), so the stream holds each message\n"
    "         once, in queue order.  With --stream, the stream is created\n"
    "         (SUBJECT only, file storage) if it does not exist.  With\n"
    "         --dedupe last-sequence, no message id: see DEDUPE.\n"
    "    in   feeds the rq queue NAME (as its producer) from the durable pull\n"
    "         consumer DURABLE of STREAM (created if missing, filtered on\n"
    "         SUBJECT).  Each record is the stream message behind a 16-byte\n"
    "         header holding its stream sequence (rq_bridge.h); the stream\n"
    "         message is acknowledged only after rq_commit.  Records arrive in\n"
    "         stream order; after a crash some arrive twice, and a receiver\n"
    "         that drops every record at or below the highest stream sequence\n"
    "         it has processed sees each message once.\n"
    "    Both run until SIGTERM or SIGINT, which stop them cleanly (exit 0).\n"
    "    An unreachable server is reported and retried with back-off; a\n"
    "    server restart is survived (in: libnats reconnects; out: connects\n"
    "    again itself and publishes everything unreleased again, in order).\n"
    "\n"
    "OPTIONS\n"
    "    --server URL        NATS server (default nats://127.0.0.1:4222)\n"
    "    --queue NAME        the local rq queue\n"
    "    --subject SUBJECT   JetStream subject\n"
    "    --stream STREAM     stream name (in: required; out: create if missing)\n"
    "    --durable NAME      in: the durable consumer's name\n"
    "    --id ID             out: the queue's identity in message ids (default:\n"
    "                        NAME@N, N telling this queue from an earlier one of\n"
    "                        the same name; required where the OS cannot say)\n"
    "    --dedupe MODE       out: id (default) or last-sequence (see DEDUPE)\n"
    "    --dead-letter NAME  out: move a message the stream refuses as too large\n"
    "                        to this rq queue (must exist) instead of stopping on it\n"
    "    --create SLOTS:SIZE create the queue with this geometry if missing\n"
    "                        (default: it must exist; the bridge waits for it)\n"
    "    --batch N           in: messages per fetch (default 64)\n"
    "    --ack-wait MS       in: the consumer's ack wait (default 30000)\n"
    "    --publish-wait MS   out: wait for a publish ack (default 5000)\n"
    "    --window N          out: publishes in flight before their acks, 1..4096\n"
    "                        (default 4096; at most the queue's slots are peeked);\n"
    "                        released in order as acknowledged\n"
    "    --status FILE       write progress to FILE (JSON, replaced atomically)\n"
    "    --status-interval MS  how often (default 1000)\n"
    "    --max-backoff MS    longest pause between retries (default 5000)\n"
    "\n";

static const char help_rest[] =
    "DEDUPE\n"
    "    out --dedupe id: every publish carries the message id ID:SEQ; a copy\n"
    "    published again within the stream's duplicate window is dropped.\n"
    "    out --dedupe last-sequence (needs --stream): every publish carries\n"
    "    Nats-Expected-Last-Sequence and the header Rq-Pos: ID:SEQ, and the\n"
    "    stream stores a message only right after the one expected before it.\n"
    "    At start and after any unknown outcome out reads the stream's last\n"
    "    message and releases the queue through its Rq-Pos.  No duplicate\n"
    "    window (a bridge down for days still stores nothing twice) and less\n"
    "    work for the server, but out must be the stream's only writer, the\n"
    "    stream must store SUBJECT and keep its last message (limits\n"
    "    retention; out checks both), and nats-server must be 2.9.0 or later.\n"
    "    If the last message is gone (deleted, purged, aged out) out goes on\n"
    "    only when nothing in the queue can have been sent, else it stops.  A\n"
    "    message larger than the stream takes is never sent (see PARKING).\n"
    "\n"
    "PARKING\n"
    "    out: a message the stream refuses as too large (max payload or the\n"
    "    stream's max message size) is never dropped.  Without --dead-letter it\n"
    "    stays at the head of the queue, the state is \"parked\" and the bridge\n"
    "    retries with back-off; with it, it is pushed there, then released.\n"
    "    With --dedupe last-sequence out knows the limits and never sends it,\n"
    "    and a message moved to the dead-letter queue leaves in the stream a\n"
    "    marker in its place (no payload, headers Rq-Pos and Rq-Moved: NAME),\n"
    "    which in skips (counted as parked) and other readers must skip too.\n"
    "    in: a stream message too large for a queue slot (payload + 16 bytes)\n"
    "    is left unacknowledged, the state is \"parked\", and the bridge retries.\n"
    "\n"
    "STATUS FILE\n"
    "    JSON: direction, state (connecting, running, disconnected, parked,\n"
    "    stopped), messages, duplicates, parked, redelivered, last_queue_seq,\n"
    "    last_stream_seq, lag (out: queue depth; in: stream messages not yet\n"
    "    delivered), errors, reconnects, recoveries (out, last-sequence:\n"
    "    looks at the stream's last message), last_error, pid, time.  Also in\n"
    "    /dev/shm/rqb.DIR.PID.NAME, for 'rqctl stat NAME'.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 stopped by a signal; 1 a fatal error (corrupt queue, refused\n"
    "    configuration); 2 usage.\n"
    "\n"
    "SEE ALSO\n"
    "    rqctl(1), docs/bridge.md\n";

static void print_help(void)
{
    fputs(help_top, stdout);
    fputs(help_rest, stdout);
}

int64_t bridge_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bridge_error(bridge *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->p.last_error, sizeof b->p.last_error, fmt, ap);
    va_end(ap);
    b->p.errors++;
    fprintf(stderr, "rq-bridge %s: %s\n", b->p.direction, b->p.last_error);
    bridge_status(b, 1);
}

const char *bridge_nats_text(natsStatus s, jsErrCode jerr, char *buf, size_t cap)
{
    natsStatus last = NATS_OK;
    const char *detail = nats_GetLastError(&last);
    if (jerr != 0)
        snprintf(buf, cap, "%s (JetStream error %d%s%s)", natsStatus_GetText(s), (int)jerr,
                 detail && *detail ? ": " : "", detail ? detail : "");
    else
        snprintf(buf, cap, "%s%s%s", natsStatus_GetText(s), detail && *detail ? ": " : "",
                 detail ? detail : "");
    return buf;
}

void bridge_backoff(bridge *b, int *delay_ms)
{
    int64_t until = bridge_now_ms() + *delay_ms;
    while (!bridge_stop && bridge_now_ms() < until) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        bridge_status(b, 0);
    }
    *delay_ms = *delay_ms * 2 > b->o.max_backoff_ms ? b->o.max_backoff_ms : *delay_ms * 2;
}

/* A test trigger from the environment, NAME:N[:TAIL]: the N-th pass
 * through NAME hits.  Parsed on the first pass. */
struct env_trigger {
    const char *var;
    int parsed;
    char want[64];
    char tail[16]; /* what follows N, colon and all ("" if nothing) */
    long target, hits;
};

/* 1 when this pass through NAME is T's hit, else 0. */
static int env_trigger_hit(struct env_trigger *t, const char *name)
{
    if (!t->parsed) {
        t->parsed = 1;
        const char *spec = getenv(t->var);
        const char *colon = spec ? strchr(spec, ':') : NULL;
        if (colon && (size_t)(colon - spec) < sizeof t->want) {
            char *end;
            memcpy(t->want, spec, (size_t)(colon - spec));
            t->target = strtol(colon + 1, &end, 10);
            snprintf(t->tail, sizeof t->tail, "%s", end);
        }
    }
    return t->want[0] && strcmp(t->want, name) == 0 && ++t->hits == t->target;
}

void bridge_crash_point(const char *name)
{
    static struct env_trigger t = {.var = "RQ_BRIDGE_CRASH_POINT"};
    if (!env_trigger_hit(&t, name))
        return;
    int stop = strcmp(t.tail, ":stop") == 0;
    fprintf(stderr, "rq-bridge: crash point %s, pass %ld: %s\n", name, t.hits,
            stop ? "stopping (SIGSTOP) until continued" : "killing myself");
    raise(stop ? SIGSTOP : SIGKILL);
}

int bridge_fault(const char *name)
{
    static struct env_trigger t = {.var = "RQ_BRIDGE_FAULT"};
    if (!env_trigger_hit(&t, name))
        return 0;
    fprintf(stderr, "rq-bridge: fault %s injected, pass %ld\n", name, t.hits);
    return 1;
}

static void status_write(bridge *b)
{
    bridge_progress *p = &b->p;
    const char *state = p->state;
    if (atomic_load(&link_down) && strcmp(state, "running") == 0)
        state = "disconnected";
    json_t *j = json_pack(
        "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:I}", "direction",
        p->direction, "state", state, "messages", (json_int_t)p->messages, "duplicates",
        (json_int_t)p->duplicates, "parked", (json_int_t)p->parked, "redelivered",
        (json_int_t)p->redelivered, "last_queue_seq", (json_int_t)p->last_queue_seq,
        "last_stream_seq", (json_int_t)p->last_stream_seq, "lag", (json_int_t)p->lag, "errors",
        (json_int_t)p->errors, "reconnects", (json_int_t)atomic_load(&link_reconnects),
        "recoveries", (json_int_t)p->recoveries, "last_error", p->last_error, "pid",
        (json_int_t)getpid(), "time", (json_int_t)time(NULL));
    if (!j)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", b->o.status_path ? b->o.status_path : "");
    if (b->o.status_path && json_dump_file(j, tmp, JSON_COMPACT) == 0 &&
        rename(tmp, b->o.status_path) != 0)
        fprintf(stderr, "rq-bridge: cannot replace %s: %s\n", b->o.status_path, strerror(errno));
    char *text = b->report_path[0] ? json_dumps(j, JSON_COMPACT) : NULL;
    if (text)
        bridge_report_write(b, text, strlen(text));
    free(text);
    json_decref(j);
}

void bridge_status(bridge *b, int force)
{
    if (!b->o.status_path && !b->report_path[0])
        return;
    int64_t now = bridge_now_ms();
    if (!force && now < b->next_status_ms)
        return;
    b->next_status_ms = now + b->o.status_ms;
    status_write(b);
}

rq *bridge_open_queue(bridge *b, const char *name, int role)
{
    rq_config cfg = {b->o.slots, b->o.slot_size, 0, 0};
    int delay = 100;
    while (!bridge_stop) {
        rq *q = NULL;
        int rc = rq_open(&q, name, role, b->o.slots && name == b->o.queue ? &cfg : NULL);
        /* The queue exists: report beside it, also while another bridge
         * holds the role (two outs on one queue by mistake show both). */
        if ((rc == RQ_OK || rc == RQ_EBUSY) && name == b->o.queue && !b->report_path[0]) {
            bridge_report_begin(b);
            bridge_status(b, 1);
        }
        if (rc == RQ_OK)
            return q;
        bridge_error(b, "cannot open queue %s: %s (%s); retrying in %d ms", name, rq_errname(rc),
                     rq_strerror(rc), delay);
        if (rc != RQ_ENOENT && rc != RQ_EBUSY && rc != RQ_ESYS)
            return NULL; /* corrupt, wrong version, bad geometry: no retry helps */
        bridge_backoff(b, &delay);
    }
    return NULL;
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc, (void)closure;
    atomic_store(&link_down, 1);
    atomic_fetch_add(&link_disconnects, 1);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc, (void)closure;
    atomic_store(&link_down, 0);
    atomic_fetch_add(&link_reconnects, 1);
}

/* The first connection, retried with back-off and reported each time:
 * libnats retries a failed first connect only silently.  After it, libnats
 * reconnects by itself (forever, every 250 ms). */
static int bridge_connect(bridge *b)
{
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, b->o.server);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, b);
    /* in: a fetch's pull request is a plain publish, which libnats would
     * hold for its flusher thread (about a millisecond) to batch it (out
     * lets publishes batch that way under load; bridge_out flushes a lone
     * one). */
    if (s == NATS_OK && strcmp(b->p.direction, "in") == 0)
        s = natsOptions_SetSendAsap(opts, true);
    /* out reconnects by itself (bridge_reconnect): libnats would send the
     * publishes it buffered while reconnecting first, ahead of earlier ones
     * lost with the old connection, and the stream would store them out of
     * queue order.  On a new connection out publishes everything not yet
     * acknowledged again, in order. */
    if (s == NATS_OK && strcmp(b->p.direction, "out") == 0)
        s = natsOptions_SetAllowReconnect(opts, false);
    char text[400];
    if (s != NATS_OK) {
        bridge_error(b, "cannot set up the connection: %s",
                     bridge_nats_text(s, 0, text, sizeof text));
        natsOptions_Destroy(opts);
        return -1;
    }
    int delay = 100;
    while (!bridge_stop) {
        s = natsConnection_Connect(&b->nc, opts);
        if (s == NATS_OK)
            break;
        bridge_error(b, "cannot connect to %s: %s; retrying in %d ms", b->o.server,
                     bridge_nats_text(s, 0, text, sizeof text), delay);
        bridge_backoff(b, &delay);
    }
    natsOptions_Destroy(opts);
    if (bridge_stop)
        return -1;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = b->o.publish_wait_ms;
    if (strcmp(b->p.direction, "out") == 0) {
        jo.PublishAsync.AckHandler = bridge_out_ack;
        /* No limit in libnats: out's window is the limit.  One equal to
         * it would stall a publish in the moment between out's ack
         * handler, which opens the window, and libnats's own count. */
        jo.PublishAsync.MaxPending = 0;
    }
    s = natsConnection_JetStream(&b->js, b->nc, &jo);
    if (s != NATS_OK) {
        bridge_error(b, "no JetStream context: %s", bridge_nats_text(s, 0, text, sizeof text));
        return -1;
    }
    fprintf(stderr, "rq-bridge %s: connected to %s\n", b->p.direction, b->o.server);
    return 0;
}

int bridge_reconnect(bridge *b)
{
    jsCtx_Destroy(b->js);
    natsConnection_Destroy(b->nc);
    b->js = NULL;
    b->nc = NULL;
    if (bridge_connect(b) != 0)
        return -1;
    atomic_store(&link_down, 0);
    atomic_fetch_add(&link_reconnects, 1);
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    bridge_stop = 1;
}

static int parse_geometry(const char *s, uint32_t *slots, uint32_t *size)
{
    unsigned long a, c;
    char *end;
    errno = 0;
    a = strtoul(s, &end, 10);
    if (end == s || *end != ':' || errno)
        return -1;
    const char *t = end + 1;
    c = strtoul(t, &end, 10);
    if (end == t || *end || errno || a == 0 || c == 0 || a > RQ_SLOT_COUNT_MAX ||
        c > RQ_SLOT_SIZE_MAX)
        return -1;
    *slots = (uint32_t)a, *size = (uint32_t)c;
    return 0;
}

static int parse_ms(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v <= 0 || v > 86400000LL)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, bridge_opts *o)
{
    static const struct option longs[] = {
        {"server", 1, 0, 'S'},      {"queue", 1, 0, 'q'},
        {"subject", 1, 0, 's'},     {"stream", 1, 0, 't'},
        {"durable", 1, 0, 'd'},     {"id", 1, 0, 'i'},
        {"dead-letter", 1, 0, 'D'}, {"dedupe", 1, 0, 'e'},
        {"create", 1, 0, 'c'},      {"batch", 1, 0, 'b'},
        {"ack-wait", 1, 0, 'a'},    {"publish-wait", 1, 0, 'p'},
        {"status", 1, 0, 'f'},      {"status-interval", 1, 0, 'I'},
        {"max-backoff", 1, 0, 'm'}, {"window", 1, 0, 'w'},
        {"help", 0, 0, 'h'},        {0, 0, 0, 0}};
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case 'S':
            o->server = optarg;
            break;
        case 'q':
            o->queue = optarg;
            break;
        case 's':
            o->subject = optarg;
            break;
        case 't':
            o->stream = optarg;
            break;
        case 'd':
            o->durable = optarg;
            break;
        case 'i':
            o->id = optarg;
            break;
        case 'D':
            o->dead_letter = optarg;
            break;
        case 'e':
            if (strcmp(optarg, "id") == 0)
                o->dedupe = BRIDGE_DEDUPE_ID;
            else if (strcmp(optarg, "last-sequence") == 0)
                o->dedupe = BRIDGE_DEDUPE_LAST_SEQ;
            else
                return fprintf(stderr, "rq-bridge: --dedupe wants id or last-sequence\n"), -1;
            o->dedupe_set = 1;
            break;
        case 'f':
            o->status_path = optarg;
            break;
        case 'c':
            if (parse_geometry(optarg, &o->slots, &o->slot_size))
                return fprintf(stderr, "rq-bridge: --create wants SLOTS:SIZE\n"), -1;
            break;
        case 'b':
            if (parse_ms(optarg, &v) || v > 4096)
                return fprintf(stderr, "rq-bridge: --batch wants 1..4096\n"), -1;
            o->batch = (int)v;
            break;
        case 'w':
            if (parse_ms(optarg, &v) || v > BRIDGE_WINDOW_MAX)
                return fprintf(stderr, "rq-bridge: --window wants 1..%d\n", BRIDGE_WINDOW_MAX), -1;
            o->window = (int)v;
            break;
        case 'a':
        case 'p':
        case 'I':
        case 'm':
            if (parse_ms(optarg, &v))
                return fprintf(stderr, "rq-bridge: %s wants milliseconds > 0\n", argv[optind - 1]),
                       -1;
            if (c == 'a')
                o->ack_wait_ms = v;
            if (c == 'p')
                o->publish_wait_ms = v;
            if (c == 'I')
                o->status_ms = (int)v;
            if (c == 'm')
                o->max_backoff_ms = (int)v;
            break;
        case 'h':
            print_help();
            exit(0);
        default:
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static bridge b;
    b.o = (bridge_opts){.server = "nats://127.0.0.1:4222",
                        .batch = 64,
                        .window = BRIDGE_WINDOW_MAX,
                        .ack_wait_ms = 30000,
                        .publish_wait_ms = 5000,
                        .status_ms = 1000,
                        .max_backoff_ms = 5000};
    if (argc < 2 || (strcmp(argv[1], "out") != 0 && strcmp(argv[1], "in") != 0)) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
            return print_help(), 0;
        return fputs(usage, stderr), 2;
    }
    int out = strcmp(argv[1], "out") == 0;
    if (parse_args(argc - 1, argv + 1, &b.o))
        return fputs(usage, stderr), 2;
    if (optind + 1 != argc || !b.o.queue || !b.o.subject ||
        (!out && (!b.o.stream || !b.o.durable)) || (out && b.o.durable)) {
        fputs(usage, stderr);
        return 2;
    }
    if (!out && b.o.dedupe_set)
        return fputs("rq-bridge: --dedupe is for out\n", stderr), 2;
    if (b.o.dedupe == BRIDGE_DEDUPE_LAST_SEQ && !b.o.stream)
        return fputs("rq-bridge: --dedupe last-sequence needs --stream (the stream whose last\n"
                     "  message out reads at every recovery)\n",
                     stderr),
               2;
    b.p.direction = argv[1];
    b.p.state = "connecting";

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    bridge_status(&b, 1);
    int rc = 1;
    if (bridge_connect(&b) == 0)
        rc = out ? bridge_run_out(&b) : bridge_run_in(&b);
    if (bridge_stop)
        rc = 0;
    b.p.state = "stopped";
    bridge_status(&b, 1);
    jsCtx_Destroy(b.js);
    natsConnection_Destroy(b.nc);
    nats_Close();
    fprintf(stderr, "rq-bridge %s: stopped (%llu messages)\n", b.p.direction,
            (unsigned long long)b.p.messages);
    return rc;
}
