/*
 * bridge.h - rq-bridge's shared state: options, progress, the NATS
 * connection with its back-off, and the two directions (out.c, in.c).
 */
#ifndef RQ_BRIDGE_TOOL_H
#define RQ_BRIDGE_TOOL_H

#include <signal.h>
#include <stdint.h>

#include <nats/nats.h>

#include "rq.h"

#include "window.h" /* BRIDGE_WINDOW_MAX: out's most publishes in flight */

/* How out keeps the stream free of copies after a crash (--dedupe):
 * a message id the stream remembers for its duplicate window, or the
 * stream's last sequence, expected by every publish, on a stream out
 * writes to alone (docs/bridge.md, "Exactly-once without the id"). */
enum { BRIDGE_DEDUPE_ID = 0, BRIDGE_DEDUPE_LAST_SEQ };

typedef struct bridge_opts {
    const char *queue;         /* the local rq queue */
    const char *server;        /* NATS URL */
    const char *subject;       /* JetStream subject */
    const char *stream;        /* stream name (in: required; out: created if missing) */
    const char *durable;       /* in: durable consumer name */
    const char *id;            /* out: queue identity in message ids */
    const char *dead_letter;   /* out: rq queue for messages the stream refuses */
    int dedupe;                /* out: BRIDGE_DEDUPE_ID or BRIDGE_DEDUPE_LAST_SEQ */
    int dedupe_set;            /* --dedupe was given (in refuses it) */
    const char *status_path;   /* progress file, rewritten periodically */
    uint32_t slots, slot_size; /* create the queue if missing (0: attach) */
    int batch;                 /* in: messages per fetch */
    int window;                /* out: publishes in flight (1..BRIDGE_WINDOW_MAX) */
    int64_t ack_wait_ms;       /* in: the consumer's AckWait */
    int64_t publish_wait_ms;   /* out: how long to wait for a publish ack */
    int status_ms;             /* status file period */
    int max_backoff_ms;        /* longest pause between retries */
} bridge_opts;

typedef struct bridge_progress {
    const char *direction;   /* "out" or "in" */
    const char *state;       /* connecting, running, disconnected, parked, stopped */
    uint64_t messages;       /* out: acked by the stream and released;
                                in: committed to the queue and acked */
    uint64_t duplicates;     /* out: acks saying "duplicate", or (last-sequence)
                                found in the stream at a recovery and released
                                without a publish; in: redeliveries */
    uint64_t parked;         /* out: moved to the dead-letter queue */
    uint64_t redelivered;    /* out: found flagged RQ_MSG_REDELIVERED (a bridge
                                had it in hand and died or stopped) */
    uint64_t last_queue_seq; /* rq sequence number of the last message handled */
    uint64_t last_stream_seq;
    uint64_t lag; /* out: queue depth; in: stream messages not yet delivered */
    uint64_t errors;
    uint64_t reconnects;
    uint64_t recoveries; /* out, last-sequence: looks at the stream's last message */
    char last_error[512];
} bridge_progress;

typedef struct bridge {
    bridge_opts o;
    bridge_progress p;
    natsConnection *nc;
    jsCtx *js;
    int64_t next_status_ms;
    /* The status file beside the queue (report.c), "" until the queue is
     * open; written with the queue's permission bits. */
    char report_path[320];
    unsigned report_mode;
} bridge;

extern volatile sig_atomic_t bridge_stop;

int64_t bridge_now_ms(void);
/* Records an error (stderr and the status file). */
void bridge_error(bridge *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Text for a failed libnats call: its status and the library's last error. */
const char *bridge_nats_text(natsStatus s, jsErrCode jerr, char *buf, size_t cap);
/* Sleeps *DELAY_MS (cut short by a stop), then doubles it up to the cap. */
void bridge_backoff(bridge *b, int *delay_ms);
/* Rewrites the status file if its period has passed (FORCE: now). */
void bridge_status(bridge *b, int force);
/* The status file beside the queue, found by 'rqctl stat' without being
 * told a path (report.c): started once the queue is open (removing the
 * files of earlier bridges of this direction that are dead), then
 * rewritten with every status.  Failures are said once on stderr. */
void bridge_report_begin(bridge *b);
void bridge_report_write(bridge *b, const char *text, size_t len);

/* Opens the queue in ROLE, retrying with back-off while it does not exist
 * (or, producer, while the role is held).  NULL only when stopped. */
rq *bridge_open_queue(bridge *b, const char *name, int role);

/* out: libnats's answer to an asynchronous publish (jsOptions'
 * PublishAsync.AckHandler), on libnats's thread. */
void bridge_out_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure);

/* How often the connection was lost, and re-established, so far
 * (libnats's callback thread; out's own reconnects). */
uint64_t bridge_disconnects(void);
uint64_t bridge_reconnects(void);

/* out: a new connection after the old one closed (out does not let libnats
 * reconnect), retried with back-off.  -1 only when stopped. */
int bridge_reconnect(bridge *b);

/* Named crash points for the tests: with RQ_BRIDGE_CRASH_POINT=NAME:N in
 * the environment, the N-th pass through NAME kills the process (SIGKILL),
 * exactly in the window the point names; NAME:N:stop stops it (SIGSTOP)
 * there instead, for a test to act in that window and continue it.
 * Without it, one string compare per pass. */
void bridge_crash_point(const char *name);
/* Fault injection for the tests: with RQ_BRIDGE_FAULT=NAME:N in the
 * environment, the N-th pass through NAME returns 1 and the caller fails
 * its request as the server would (NATS_TIMEOUT); 0 otherwise. */
int bridge_fault(const char *name);

/* out, last-sequence: what a recovery learns, and what it is told. */
typedef struct bridge_recovery {
    uint64_t published; /* in: 1 + the highest queue position this process
                           published, 0 if none */
    uint64_t expect;    /* out: the stream's last sequence: what the queue's
                           head must now be published expecting */
    int64_t max_bytes;  /* out: the largest message the stream and the
                           server take, payload and headers (INT64_MAX: no
                           limit but the server's) */
} bridge_recovery;

/* out, last-sequence: after a start or anything whose outcome is unknown
 * (nothing in flight any more), checks the stream (limits retention, it
 * captures --subject), reads its last sequence and the queue position its
 * last message carries (Rq-Pos: ID:SEQ), and releases the queue's messages
 * through that position: the stream has them.  0 done; -1 the server did
 * not answer (retry later); 1 fatal (the stream cannot say what it holds,
 * is not the one storing the subject, or the queue is corrupt), reported.
 * (out_recover.c) */
int bridge_out_recover(bridge *b, rq *q, const char *idbase, bridge_recovery *r);

int bridge_run_out(bridge *b);
int bridge_run_in(bridge *b);

#endif
