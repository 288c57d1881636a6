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
    "waited.\n";

int rqctl_cmd_push(int argc, char **argv)
{
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'},    {"null", no_argument, NULL, '0'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {"wait", optional_argument, NULL, 'w'},    {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int delim = '\n', timeout_ms = RQ_INFINITE, wait_ms = 0, opt;
    while ((opt = getopt_long(argc, argv, "f:0t:w::h", opts, NULL)) != -1) {
        switch (opt) {
        case 'f':
            path = optarg;
            break;
        case '0':
            delim = '\0';
            break;
        case 't':
            if (rqctl_parse_seconds("push", "--timeout", optarg, &timeout_ms) < 0)
                return RQCTL_USAGE;
            break;
        case 'w':
            if (rqctl_parse_wait("push", optarg, &wait_ms) < 0)
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
    const char *name = argv[optind];
    if (rqctl_check_name("push", name) != RQCTL_OK)
        return RQCTL_USAGE;
    FILE *in = stdin;
    if (path && !(in = fopen(path, "rb")))
        return rqctl_error(RQCTL_FAILED, "push", "%s: %s", path, strerror(errno));
    rq *q;
    int code = open_role("push", name, RQ_PRODUCER, &q, timeout_ms, wait_ms);
    if (code != RQCTL_OK) {
        if (in != stdin)
            fclose(in);
        return code;
    }
    rq_stats st;
    uint32_t slot_size = rq_stat(q, &st) == RQ_OK ? st.slot_size : UINT32_MAX;
    const char *source = path ? path : "standard input";
    char *line = NULL;
    size_t cap = 0;
    uint64_t number = 0, pushed = 0;
    ssize_t got;
    while ((got = getdelim(&line, &cap, delim, in)) != -1) {
        number++;
        size_t len = (size_t)got;
        if (len > 0 && line[len - 1] == (char)delim)
            len--;
        int rc = rq_push(q, line, len, timeout_ms);
        if (rc == RQ_OK) {
            pushed++;
            continue;
        }
        char when[64];
        if (rc == RQ_EMSGSIZE)
            code = rqctl_error(RQCTL_MSGSIZE, "push",
                               "%s, message %" PRIu64 ": %zu bytes, but a slot of queue '%s' "
                               "holds at most %" PRIu32 "; %" PRIu64 " pushed before it",
                               source, number, len, name, slot_size, pushed);
        else if (rc == RQ_ETIMEDOUT || rc == RQ_EAGAIN)
            code = rqctl_error(RQCTL_TIMEOUT, "push",
                               "queue '%s' is full: message %" PRIu64 " not pushed (no room "
                               "%s); %" PRIu64 " pushed before it",
                               name, number, timeout_text(timeout_ms, when, sizeof when), pushed);
        else
            code = rqctl_fail("push", KIND_QUEUE, name, rc);
        break;
    }
    if (code == RQCTL_OK && ferror(in))
        code = rqctl_error(RQCTL_FAILED, "push", "reading %s: %s", source, strerror(errno));
    free(line);
    rq_close(q);
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

int rqctl_cmd_pop(int argc, char **argv)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},   {"null", no_argument, NULL, '0'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {"wait", optional_argument, NULL, 'w'},    {NULL, 0, NULL, 0}};
    uint32_t count = 1;
    int delim = '\n', timeout_ms = RQ_INFINITE, wait_ms = 0, opt;
    while ((opt = getopt_long(argc, argv, "n:0t:w::h", opts, NULL)) != -1) {
        switch (opt) {
        case 'n':
            if (rqctl_parse_u32("pop", "--count", optarg, 0, UINT32_MAX, &count) < 0)
                return RQCTL_USAGE;
            break;
        case '0':
            delim = '\0';
            break;
        case 't':
            if (rqctl_parse_seconds("pop", "--timeout", optarg, &timeout_ms) < 0)
                return RQCTL_USAGE;
            break;
        case 'w':
            if (rqctl_parse_wait("pop", optarg, &wait_ms) < 0)
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
    const char *name = argv[optind];
    if (rqctl_check_name("pop", name) != RQCTL_OK)
        return RQCTL_USAGE;
    /* A closed pipe must be an error we see (and keep the message for),
     * not a signal that kills us between write and release. */
    signal(SIGPIPE, SIG_IGN);
    rq *q;
    int code = open_role("pop", name, RQ_CONSUMER, &q, timeout_ms, wait_ms);
    if (code != RQCTL_OK)
        return code;
    uint64_t popped = 0;
    while (count == 0 || popped < count) {
        const void *msg;
        size_t len;
        int rc = rq_peek(q, &msg, &len, timeout_ms);
        if (rc == RQ_ETIMEDOUT || rc == RQ_EAGAIN) {
            if (count == 0)
                break; /* drained */
            char when[64];
            code = rqctl_error(RQCTL_TIMEOUT, "pop",
                               "queue '%s' is empty: %" PRIu64 " of %" PRIu32
                               " messages popped (no more came %s)",
                               name, popped, count, timeout_text(timeout_ms, when, sizeof when));
            break;
        }
        if (rc < 0) {
            code = rqctl_fail("pop", KIND_QUEUE, name, rc);
            break;
        }
        /* Written and flushed before it is released: at-least-once. */
        if ((len > 0 && fwrite(msg, 1, len, stdout) != len) || putchar(delim) == EOF ||
            fflush(stdout) != 0) {
            code = rqctl_error(RQCTL_FAILED, "pop",
                               "writing standard output: %s; the message stays in queue '%s'",
                               strerror(errno), name);
            break;
        }
        rc = rq_release(q);
        if (rc < 0) {
            code = rqctl_fail("pop", KIND_QUEUE, name, rc);
            break;
        }
        popped++;
    }
    rq_close(q);
    return code;
}
