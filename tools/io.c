/*
 * io.c - 'rqctl push' and 'rqctl pop': messages between a queue and a
 * shell pipeline, one per line (or per NUL-terminated record).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "objects.h"
#include "rq.h"
#include "rqctl.h"

/* ---- stopping on a signal ------------------------------------------- */

static rq *volatile stop_queue;
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
    stop_signal = sig;
    rq_interrupt(stop_queue); /* async-signal-safe; NULL is ignored */
}

void rqctl_stop_on_signals(rq *q)
{
    stop_queue = q;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: reads and sleeps end */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int rqctl_stop_signal(void)
{
    return stop_signal;
}

int rqctl_stopped(const char *cmd, const char *what)
{
    int sig = stop_signal;
    fprintf(stderr, "rqctl %s: stopped by %s%s\n", cmd,
            sig == SIGINT    ? "SIGINT"
            : sig == SIGTERM ? "SIGTERM"
                             : "a signal",
            what);
    return 128 + sig;
}

void rqctl_explain_busy(const char *cmd, const char *name, int role)
{
    rq *q;
    rq_stats st;
    if (rq_open_timed(&q, name, RQ_OBSERVER, NULL, RQCTL_OPEN_TIMEOUT_MS) != RQ_OK)
        return;
    int known = rq_stat(q, &st) == RQ_OK;
    rq_close(q);
    int64_t pid = role == RQ_PRODUCER ? st.producer_pid : st.consumer_pid;
    int live = role == RQ_PRODUCER ? st.producer_live : st.consumer_live;
    const char *what = role == RQ_PRODUCER ? "producer" : "consumer";
    if (!known || live != 1)
        return;
    /* The holder writes its pid just after it takes the role lock: a pid
     * that is gone means the holder is between the two, or wrote none. */
    if (pid > 0 && rqctl_pid_alive((long long)pid) == 1)
        fprintf(stderr, "rqctl %s: the %s role is held by live process %" PRId64 "\n", cmd, what,
                pid);
    else
        fprintf(stderr,
                "rqctl %s: the %s role is held by a live process whose pid cannot be "
                "told (the pid recorded, %" PRId64 ", is gone)\n",
                cmd, what, pid);
}

/* Opens NAME in ROLE; prints why not and returns the exit code.  The
 * open waits for a creator's init lock as long as --timeout says (or
 * RQCTL_OPEN_TIMEOUT_MS without one, or with 0); with --wait (WAIT_MS not
 * 0) it also waits that long for the queue to be created. */
static int open_role(const char *cmd, const char *name, int role, rq **q, int timeout_ms,
                     int wait_ms)
{
    int rc;
    if (wait_ms != 0)
        rc = rq_open_wait(q, name, role, NULL, wait_ms);
    else
        rc =
            rq_open_timed(q, name, role, NULL, timeout_ms > 0 ? timeout_ms : RQCTL_OPEN_TIMEOUT_MS);
    if (rc == RQ_OK)
        return RQCTL_OK;
    int code = rqctl_fail(cmd, KIND_QUEUE, name, rc);
    if (rc == RQ_EBUSY)
        rqctl_explain_busy(cmd, name, role);
    return code;
}

static const char *timeout_text(int ms, char *buf, size_t cap);

/* RQ_ELOCKED from a push: the producers' lock, not the ring, held it up. */
static int rqctl_explain_locked(rq *q, const char *name, uint64_t number, uint64_t pushed,
                                int timeout_ms)
{
    char when[64], holder[160] = "";
    rq_stats st;
    if (rq_stat(q, &st) == RQ_OK && st.lock_holder_pid != 0) {
        char pid[40] = "pid unknown", held[48] = "";
        if (st.lock_holder_pid > 0)
            snprintf(pid, sizeof pid, "pid %" PRId64, st.lock_holder_pid);
        if (st.lock_held_ms >= 0)
            snprintf(held, sizeof held, ", held for %.3f s", (double)st.lock_held_ms / 1000.0);
        snprintf(holder, sizeof holder, " (%s%s%s)", pid,
                 st.lock_reserving ? ", a reservation in progress" : "", held);
    }
    rqctl_error(RQCTL_LOCKED, "push",
                "queue '%s': another producer%s held the producers' lock %s (the ring may "
                "have room): message %" PRIu64 " not pushed; %" PRIu64 " pushed before it",
                name, holder, timeout_text(timeout_ms, when, sizeof when), number, pushed);
    return RQCTL_LOCKED;
}

static const char *timeout_text(int ms, char *buf, size_t cap)
{
    if (ms == RQ_INFINITE)
        snprintf(buf, cap, "forever");
    else if (ms == 0)
        snprintf(buf, cap, "without waiting");
    else
        snprintf(buf, cap, "within %.3f s", ms / 1000.0);
    return buf;
}

/* ---- push --------------------------------------------------------------- */

static const char push_usage[] =
    "rqctl push [--wait[=SECONDS]] [--file PATH] [--null] [--timeout SECONDS] NAME";
static const char push_help[] =
    "Pushes one message per line of standard input (or of PATH) into queue\n"
    "NAME, as its producer; the newline is not part of the message, an empty\n"
    "line is an empty message, and a last line without a newline counts.\n"
    "Stops at the first line that cannot be pushed: the lines before it were\n"
    "pushed, it and the ones after it were not (the error says how many).\n"
    "\n"
    "  -f, --file PATH        read PATH instead of standard input\n"
    "  -0, --null             messages end with a NUL byte, not a newline\n"
    "  -t, --timeout SECONDS  wait at most this long for room for each message\n"
    "                         (0: do not wait; default: wait as long as it takes)\n"
    "  -w, --wait[=SECONDS]   wait for the queue to be created (default: as long\n"
    "                         as it takes), instead of exit 3 at once\n"
    "  -h, --help             this text\n"
    "\n"
    "exit status: 3 no such queue, 5 another live process is the producer,\n"
    "6 the queue stayed full (or its creator held it up past the timeout),\n"
    "8 a line is longer than the slot size, 9 the queue belongs to another\n"
    "user or is wider open than asked, 11 the queue was unlinked while this\n"
    "waited, 12 another producer of an MPSC queue held the producers' lock\n"
    "for the whole timeout.\n";

/* What push was asked to do. */
struct push_args {
    const char *name, *path;
    int delim, timeout_ms, wait_ms;
};

/* Reads push's options into A.  Returns -1 to go on, or the exit status
 * (RQCTL_OK after --help). */
static int push_options(int argc, char **argv, struct push_args *a)
{
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'},    {"null", no_argument, NULL, '0'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {"wait", optional_argument, NULL, 'w'},    {NULL, 0, NULL, 0}};
    *a = (struct push_args){NULL, NULL, '\n', RQ_INFINITE, 0};
    int opt;
    while ((opt = getopt_long(argc, argv, "f:0t:w::h", opts, NULL)) != -1) {
        switch (opt) {
        case 'f':
            a->path = optarg;
            break;
        case '0':
            a->delim = '\0';
            break;
        case 't':
            if (rqctl_parse_seconds("push", "--timeout", optarg, &a->timeout_ms) < 0)
                return RQCTL_USAGE;
            break;
        case 'w':
            if (rqctl_parse_wait("push", optarg, &a->wait_ms) < 0)
                return RQCTL_USAGE;
            break;
        case 'h':
            printf("usage: %s\n\n%s", push_usage, push_help);
            return RQCTL_OK;
        default:
            return rqctl_usage_error("push", push_usage);
        }
    }
    if (optind != argc - 1)
        return rqctl_usage_error("push", push_usage);
    a->name = argv[optind];
    if (rqctl_check_name("push", a->name) != RQCTL_OK)
        return RQCTL_USAGE;
    return -1;
}

/* Where a push run stands: message NUMBER (from 1) is the one in hand,
 * PUSHED of those before it went in. */
struct push_run {
    rq *q;
    const char *source;
    uint32_t slot_size;
    uint64_t number, pushed;
};

/* The error and exit status of rq_push's RC for the message in hand
 * (LEN bytes). */
static int push_failed(const struct push_args *a, const struct push_run *r, int rc, size_t len)
{
    char when[64], done[96];
    if (rc == RQ_EINTR || rqctl_stop_signal()) {
        snprintf(done, sizeof done,
                 ": message %" PRIu64 " not pushed; %" PRIu64 " pushed before it", r->number,
                 r->pushed);
        return rqctl_stopped("push", done);
    }
    if (rc == RQ_EMSGSIZE)
        return rqctl_error(RQCTL_MSGSIZE, "push",
                           "%s, message %" PRIu64 ": %zu bytes, but a slot of queue '%s' "
                           "holds at most %" PRIu32 "; %" PRIu64 " pushed before it",
                           r->source, r->number, len, a->name, r->slot_size, r->pushed);
    if (rc == RQ_ETIMEDOUT || rc == RQ_EAGAIN)
        return rqctl_error(RQCTL_TIMEOUT, "push",
                           "queue '%s' is full: message %" PRIu64 " not pushed (no room "
                           "%s); %" PRIu64 " pushed before it",
                           a->name, r->number, timeout_text(a->timeout_ms, when, sizeof when),
                           r->pushed);
    if (rc == RQ_ELOCKED)
        return rqctl_explain_locked(r->q, a->name, r->number, r->pushed, a->timeout_ms);
    return rqctl_fail("push", KIND_QUEUE, a->name, rc);
}

/* Pushes IN's messages until its end, a signal or the first that cannot
 * be pushed.  Returns the exit status. */
static int push_lines(const struct push_args *a, struct push_run *r, FILE *in)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int code = RQCTL_OK;
    while (!rqctl_stop_signal() && (got = getdelim(&line, &cap, a->delim, in)) != -1) {
        r->number++;
        size_t len = (size_t)got;
        if (len > 0 && line[len - 1] == (char)a->delim)
            len--;
        int rc = rq_push(r->q, line, len, a->timeout_ms);
        if (rc != RQ_OK) {
            code = push_failed(a, r, rc, len);
            break;
        }
        r->pushed++;
    }
    if (code == RQCTL_OK && rqctl_stop_signal()) {
        char done[64];
        snprintf(done, sizeof done, ": %" PRIu64 " pushed", r->pushed);
        code = rqctl_stopped("push", done);
    }
    if (code == RQCTL_OK && ferror(in))
        code = rqctl_error(RQCTL_FAILED, "push", "reading %s: %s", r->source, strerror(errno));
    free(line);
    return code;
}

int rqctl_cmd_push(int argc, char **argv)
{
    struct push_args a;
    int code = push_options(argc, argv, &a);
    if (code >= 0)
        return code;
    FILE *in = stdin;
    if (a.path && !(in = fopen(a.path, "rb")))
        return rqctl_error(RQCTL_FAILED, "push", "%s: %s", a.path, strerror(errno));
    struct push_run r = {NULL, a.path ? a.path : "standard input", UINT32_MAX, 0, 0};
    code = open_role("push", a.name, RQ_PRODUCER, &r.q, a.timeout_ms, a.wait_ms);
    if (code == RQCTL_OK) {
        rqctl_stop_on_signals(r.q);
        rq_stats st;
        if (rq_stat(r.q, &st) == RQ_OK)
            r.slot_size = st.slot_size;
        code = push_lines(&a, &r, in);
        rq_close(r.q);
    }
    if (in != stdin)
        fclose(in);
    return code;
}

/* ---- pop ---------------------------------------------------------------- */

static const char pop_usage[] =
    "rqctl pop [--wait[=SECONDS]] [--count N] [--null] [--timeout SECONDS] NAME";
static const char pop_help[] =
    "Pops messages from queue NAME, as its consumer, and writes each to\n"
    "standard output followed by a newline.  A message leaves the queue only\n"
    "once it has been written out: if standard output fails (a closed pipe, a\n"
    "full disk), that message stays in the queue and rqctl exits 1.  A message\n"
    "that itself holds a newline is written as it is: use --null for those.\n"
    "\n"
    "  -n, --count N          pop N messages (default 1); 0: keep popping until\n"
    "                         one wait times out (with --timeout 0: drain the\n"
    "                         queue), or forever without --timeout\n"
    "  -0, --null             end each message with a NUL byte, not a newline\n"
    "  -t, --timeout SECONDS  wait at most this long for each message (0: do\n"
    "                         not wait; default: wait as long as it takes)\n"
    "  -w, --wait[=SECONDS]   wait for the queue to be created (default: as long\n"
    "                         as it takes), instead of exit 3 at once\n"
    "  -h, --help             this text\n"
    "\n"
    "exit status: 3 no such queue, 5 another live process is the consumer,\n"
    "6 fewer than N messages came in time (those that did were written), or\n"
    "its creator held the queue up past the timeout, 9 the queue belongs to\n"
    "another user or is wider open than asked, 11 the queue was unlinked\n"
    "while this waited.\n";

/* What pop was asked to do. */
struct pop_args {
    const char *name;
    uint32_t count;
    int delim, timeout_ms, wait_ms;
};

/* Reads pop's options into A.  Returns -1 to go on, or the exit status
 * (RQCTL_OK after --help). */
static int pop_options(int argc, char **argv, struct pop_args *a)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},   {"null", no_argument, NULL, '0'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {"wait", optional_argument, NULL, 'w'},    {NULL, 0, NULL, 0}};
    *a = (struct pop_args){NULL, 1, '\n', RQ_INFINITE, 0};
    int opt;
    while ((opt = getopt_long(argc, argv, "n:0t:w::h", opts, NULL)) != -1) {
        switch (opt) {
        case 'n':
            if (rqctl_parse_u32("pop", "--count", optarg, 0, UINT32_MAX, &a->count) < 0)
                return RQCTL_USAGE;
            break;
        case '0':
            a->delim = '\0';
            break;
        case 't':
            if (rqctl_parse_seconds("pop", "--timeout", optarg, &a->timeout_ms) < 0)
                return RQCTL_USAGE;
            break;
        case 'w':
            if (rqctl_parse_wait("pop", optarg, &a->wait_ms) < 0)
                return RQCTL_USAGE;
            break;
        case 'h':
            printf("usage: %s\n\n%s", pop_usage, pop_help);
            return RQCTL_OK;
        default:
            return rqctl_usage_error("pop", pop_usage);
        }
    }
    if (optind != argc - 1)
        return rqctl_usage_error("pop", pop_usage);
    a->name = argv[optind];
    if (rqctl_check_name("pop", a->name) != RQCTL_OK)
        return RQCTL_USAGE;
    return -1;
}

/* Pops one message to standard output: 1 (popped), 0 (none came in time)
 * or -1 (pop stops: *CODE is its exit status).  The message is written
 * and flushed before it is released: at-least-once. */
static int pop_one(rq *q, const struct pop_args *a, uint64_t popped, int *code)
{
    const void *msg;
    size_t len;
    int rc = rqctl_stop_signal() ? RQ_EINTR : rq_peek(q, &msg, &len, a->timeout_ms);
    if (rc == RQ_EINTR) {
        char done[64];
        snprintf(done, sizeof done, ": %" PRIu64 " messages popped", popped);
        *code = rqctl_stopped("pop", done);
        return -1;
    }
    if (rc == RQ_ETIMEDOUT || rc == RQ_EAGAIN)
        return 0;
    if (rc < 0) {
        *code = rqctl_fail("pop", KIND_QUEUE, a->name, rc);
        return -1;
    }
    if ((len > 0 && fwrite(msg, 1, len, stdout) != len) || putchar(a->delim) == EOF ||
        fflush(stdout) != 0) {
        *code = rqctl_error(RQCTL_FAILED, "pop",
                            "writing standard output: %s; the message stays in queue '%s'",
                            strerror(errno), a->name);
        return -1;
    }
    rc = rq_release(q);
    if (rc < 0) {
        *code = rqctl_fail("pop", KIND_QUEUE, a->name, rc);
        return -1;
    }
    return 1;
}

int rqctl_cmd_pop(int argc, char **argv)
{
    struct pop_args a;
    int code = pop_options(argc, argv, &a);
    if (code >= 0)
        return code;
    /* A closed pipe must be an error we see (and keep the message for),
     * not a signal that kills us between write and release. */
    signal(SIGPIPE, SIG_IGN);
    rq *q;
    code = open_role("pop", a.name, RQ_CONSUMER, &q, a.timeout_ms, a.wait_ms);
    if (code != RQCTL_OK)
        return code;
    rqctl_stop_on_signals(q);
    uint64_t popped = 0;
    while (a.count == 0 || popped < a.count) {
        int got = pop_one(q, &a, popped, &code);
        if (got == 0 && a.count > 0) {
            char when[64];
            code = rqctl_error(
                RQCTL_TIMEOUT, "pop",
                "queue '%s' is empty: %" PRIu64 " of %" PRIu32 " messages popped (no more came %s)",
                a.name, popped, a.count, timeout_text(a.timeout_ms, when, sizeof when));
        }
        if (got <= 0)
            break; /* with count 0, none in time: drained */
        popped++;
    }
    rq_close(q);
    return code;
}
