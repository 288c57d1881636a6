/*
 * rqctl.c - command-line tool for rq queues and coalescing objects: the
 * entry point, shared helpers, and the small commands (create, unlink,
 * request).  stat/list live in stat.c, push/pop in io.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objects.h"
#include "rq.h"
#include "rqctl.h"

/* ---- errors ------------------------------------------------------------ */

int rqctl_exit_for(int rc)
{
    switch (rc) {
    case RQ_OK:
        return RQCTL_OK;
    case RQ_EINVAL:
        return RQCTL_USAGE;
    case RQ_ENOENT:
        return RQCTL_NOENT;
    case RQ_ECORRUPT:
    case RQ_EVERSION:
        return RQCTL_CORRUPT;
    case RQ_EBUSY:
        return RQCTL_BUSY;
    case RQ_EAGAIN:
    case RQ_ETIMEDOUT:
        return RQCTL_TIMEOUT;
    case RQ_EEXIST:
        return RQCTL_EXISTS;
    case RQ_EMSGSIZE:
        return RQCTL_MSGSIZE;
    case RQ_EOWNER:
        return RQCTL_OWNER;
    case RQ_EUNLINKED:
        return RQCTL_UNLINKED;
    case RQ_ELOCKED:
        return RQCTL_LOCKED;
    default:
        return RQCTL_FAILED;
    }
}

static const char *kind_word(enum rqctl_kind kind)
{
    return kind == KIND_QUEUE ? "queue" : "coalescing object";
}

int rqctl_error(int code, const char *cmd, const char *fmt, ...)
{
    fprintf(stderr, "rqctl %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int rqctl_fail(const char *cmd, enum rqctl_kind kind, const char *name, int rc)
{
    int saved_errno = errno;
    char shown[RQCTL_SHOWN_MAX];
    const char *why;
    /* rq_strerror's sentence, except where rqctl knows more than rq can
     * say in general: the kind of object, the OS error, what an open's
     * timeout means, who owns the object. */
    switch (rc) {
    case RQ_ENOENT:
        why = kind == KIND_QUEUE ? "no such queue" : "no such coalescing object";
        break;
    case RQ_ESYS:
        why = strerror(saved_errno);
        break;
    case RQ_ETIMEDOUT:
        why = "timed out waiting for its init lock: the process creating or repairing it is "
              "stopped or very slow";
        break;
    case RQ_EOWNER: {
        static char text[600];
        char owner[400];
        const char *who = rqctl_objects_owner(kind, name ? name : "", owner, sizeof owner);
        snprintf(text, sizeof text,
                 "refused: %s; rq uses only objects of your own user or root whose mode is no "
                 "wider than asked",
                 who ? who : "it belongs to another user or is wider open than asked");
        why = text;
        break;
    }
    default:
        why = rq_strerror(rc);
        break;
    }
    if (name)
        fprintf(stderr, "rqctl %s: %s '%s': %s\n", cmd, kind_word(kind),
                rqctl_shown(name, shown, sizeof shown), why);
    else
        fprintf(stderr, "rqctl %s: %s\n", cmd, why);
    return rqctl_exit_for(rc);
}

const char *rqctl_shown(const char *name, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 5 <= cap; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
            buf[o++] = (char)*p;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[*p >> 4];
            buf[o++] = hex[*p & 15];
        }
    }
    buf[o] = '\0';
    return buf;
}

int rqctl_check_name(const char *cmd, const char *name)
{
    if (rq_name_valid(name))
        return RQCTL_OK;
    char shown[RQCTL_SHOWN_MAX];
    return rqctl_error(RQCTL_USAGE, cmd,
                       "invalid name '%s': a name is 1 to %d characters of A-Z a-z 0-9 . _ -",
                       rqctl_shown(name, shown, sizeof shown), RQ_NAME_MAX);
}

/* ---- option values ------------------------------------------------------ */

int rqctl_parse_u32(const char *cmd, const char *opt, const char *text, uint32_t min, uint32_t max,
                    uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end || errno || v < min || v > max) {
        rqctl_error(RQCTL_USAGE, cmd, "%s: '%s' is not a whole number from %lu to %lu", opt, text,
                    (unsigned long)min, (unsigned long)max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int rqctl_parse_seconds(const char *cmd, const char *opt, const char *text, int *ms)
{
    /* rq's timeouts are int milliseconds; keep well inside them. */
    const double max_s = 86400.0 * 24;
    char *end;
    errno = 0;
    double s = strtod(text, &end);
    if (*text == '\0' || *end || errno || !(s >= 0.0) || s > max_s) {
        rqctl_error(RQCTL_USAGE, cmd, "%s: '%s' is not a number of seconds from 0 to %.0f", opt,
                    text, max_s);
        return -1;
    }
    double want = s * 1000.0;
    *ms = (int)want;
    if ((double)*ms < want)
        (*ms)++; /* round up: never wait less than asked */
    return 0;
}

int rqctl_parse_wait(const char *cmd, const char *text, int *ms)
{
    if (!text) {
        *ms = RQ_INFINITE;
        return 0;
    }
    return rqctl_parse_seconds(cmd, "--wait", text, ms);
}

int rqctl_usage_error(const char *cmd, const char *usage)
{
    fprintf(stderr, "usage: %s\nTry 'rqctl %s --help'.\n", usage, cmd);
    return RQCTL_USAGE;
}

/* ---- create ----------------------------------------------------------- */

static const char create_usage[] =
    "rqctl create NAME --slots N --slot-size BYTES [--mpsc] [--mode OCTAL]\n"
    "       rqctl create NAME --capacity BYTES --max-record BYTES [--mpsc] [--mode OCTAL]\n"
    "       rqctl create NAME --coalesce [--mode OCTAL]";
static const char create_help[] =
    "Creates queue NAME (the POSIX shared-memory object rq.NAME) with N slots\n"
    "of at most BYTES bytes each, or with --coalesce the coalescing object\n"
    "rqc.NAME.  If it already exists with the same geometry nothing changes\n"
    "(not even its mode) and the exit status is 0; another geometry is exit 7.\n"
    "\n"
    "  -n, --slots N          messages the queue holds (1..1073741824)\n"
    "  -s, --slot-size BYTES  largest message in bytes (1..1073741824)\n"
    "  -C, --capacity BYTES   a record queue instead: messages of any length\n"
    "                         packed into a ring of BYTES (a multiple of 16)\n"
    "  -R, --max-record BYTES its largest message (at most capacity / 2 - 4)\n"
    "  -m, --mpsc             many producers may push at once\n"
    "  -M, --mode OCTAL       permission bits of a new object (default 0600)\n"
    "  -c, --coalesce         create a coalescing object instead of a queue\n"
    "  -h, --help             this text\n";

/* Octal permission bits, 1..0777. */
static int parse_mode(const char *cmd, const char *text, uint32_t *mode)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 8);
    if (text[0] < '0' || text[0] > '7' || *end || errno || v == 0 || v > 0777) {
        rqctl_error(RQCTL_USAGE, cmd, "--mode: '%s' is not octal permission bits from 0001 to 0777",
                    text);
        return -1;
    }
    *mode = (uint32_t)v;
    return 0;
}

/* What create was asked to make.  RECORDS: bit 0 --capacity, bit 1
 * --max-record given. */
struct create_args {
    const char *name;
    rq_config cfg;
    int have_slots, have_size, coalesce, records;
};

/* One create option OPT (with optarg) into A: 0, or -1 on a bad value. */
static int create_option(int opt, struct create_args *a)
{
    switch (opt) {
    case 'C':
    case 'R':
        if (rqctl_parse_u32("create", opt == 'C' ? "--capacity" : "--max-record", optarg, 1,
                            RQ_SLOT_COUNT_MAX,
                            opt == 'C' ? &a->cfg.slot_count : &a->cfg.slot_size) < 0)
            return -1;
        a->records |= opt == 'C' ? 1 : 2;
        return 0;
    case 'n':
        a->have_slots = 1;
        return rqctl_parse_u32("create", "--slots", optarg, 1, RQ_SLOT_COUNT_MAX,
                               &a->cfg.slot_count);
    case 's':
        a->have_size = 1;
        return rqctl_parse_u32("create", "--slot-size", optarg, 1, RQ_SLOT_SIZE_MAX,
                               &a->cfg.slot_size);
    case 'm':
        a->cfg.flags |= RQ_MPSC;
        return 0;
    case 'M':
        return parse_mode("create", optarg, &a->cfg.mode);
    default: /* 'c' */
        a->coalesce = 1;
        return 0;
    }
}

/* Reads create's options into A.  Returns -1 to go on, or the exit status
 * (RQCTL_OK after --help). */
static int create_options(int argc, char **argv, struct create_args *a)
{
    static const struct option opts[] = {{"slots", required_argument, NULL, 'n'},
                                         {"slot-size", required_argument, NULL, 's'},
                                         {"mpsc", no_argument, NULL, 'm'},
                                         {"mode", required_argument, NULL, 'M'},
                                         {"coalesce", no_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"capacity", required_argument, NULL, 'C'},
                                         {"max-record", required_argument, NULL, 'R'},
                                         {NULL, 0, NULL, 0}};
    *a = (struct create_args){0};
    int opt;
    while ((opt = getopt_long(argc, argv, "n:s:mM:chC:R:", opts, NULL)) != -1) {
        if (opt == 'h') {
            printf("usage: %s\n\n%s", create_usage, create_help);
            return RQCTL_OK;
        }
        if (!strchr("CRnsmMc", opt))
            return rqctl_usage_error("create", create_usage);
        if (create_option(opt, a) < 0)
            return RQCTL_USAGE;
    }
    if (optind != argc - 1)
        return rqctl_usage_error("create", create_usage);
    a->name = argv[optind];
    if (rqctl_check_name("create", a->name) != RQCTL_OK)
        return RQCTL_USAGE;
    return -1;
}

static int create_coalesce(const struct create_args *a)
{
    if (a->have_slots || a->have_size || a->records || (a->cfg.flags & RQ_MPSC))
        return rqctl_error(RQCTL_USAGE, "create",
                           "--coalesce takes no --slots, --slot-size, --capacity, --max-record "
                           "or --mpsc");
    rq_coalesce *c;
    int rc = rq_coalesce_open_timed(&c, a->name, RQ_OBSERVER, a->cfg.mode, RQCTL_OPEN_TIMEOUT_MS);
    if (rc < 0)
        return rqctl_fail("create", KIND_COALESCE, a->name, rc);
    rq_coalesce_close(c);
    return RQCTL_OK;
}

/* Checks a queue's geometry options (and marks a record queue in
 * A->cfg).  Returns -1 if they make a queue, or the usage error's exit
 * status. */
static int create_geometry(struct create_args *a)
{
    if (a->records && (a->have_slots || a->have_size || a->records != 3)) {
        rqctl_error(RQCTL_USAGE, "create",
                    "a record queue needs --capacity and --max-record, and no --slots or "
                    "--slot-size");
        return rqctl_usage_error("create", create_usage);
    }
    if (a->records) {
        a->cfg.flags |= RQ_RECORDS;
        if (a->cfg.slot_count % 16 || a->cfg.slot_count < RQ_RECORDS_CAPACITY_MIN ||
            a->cfg.slot_size > a->cfg.slot_count / 2 - RQ_RECORD_HEADER)
            return rqctl_error(RQCTL_USAGE, "create",
                               "--capacity must be a multiple of 16 from %u, and --max-record at "
                               "most half of it less %u",
                               RQ_RECORDS_CAPACITY_MIN, RQ_RECORD_HEADER);
    } else if (!a->have_slots || !a->have_size) {
        rqctl_error(RQCTL_USAGE, "create", "a queue needs --slots and --slot-size");
        return rqctl_usage_error("create", create_usage);
    }
    return -1;
}

/* RQ_EEXIST: says the geometry of the queue already there (RQCTL_EXISTS),
 * or -1 if it cannot be read. */
static int create_exists(const char *name)
{
    rq *old;
    rq_stats st;
    if (rq_open_timed(&old, name, RQ_OBSERVER, NULL, RQCTL_OPEN_TIMEOUT_MS) == RQ_OK &&
        rq_stat(old, &st) == RQ_OK) {
        char shown[RQCTL_SHOWN_MAX];
        rqctl_error(RQCTL_EXISTS, "create",
                    (st.flags & RQ_RECORDS)
                        ? "queue '%s' exists with another geometry: records in %lu bytes, "
                          "at most %lu each%s"
                        : "queue '%s' exists with another geometry: %lu slots of %lu bytes%s",
                    rqctl_shown(name, shown, sizeof shown), (unsigned long)st.slot_count,
                    (unsigned long)st.slot_size, (st.flags & RQ_MPSC) ? ", mpsc" : "");
        rq_close(old);
        return RQCTL_EXISTS;
    }
    rq_close(old);
    return -1;
}

int rqctl_cmd_create(int argc, char **argv)
{
    struct create_args a;
    int code = create_options(argc, argv, &a);
    if (code >= 0)
        return code;
    if (a.coalesce)
        return create_coalesce(&a);
    code = create_geometry(&a);
    if (code >= 0)
        return code;
    rq *q;
    int rc = rq_open_timed(&q, a.name, RQ_OBSERVER, &a.cfg, RQCTL_OPEN_TIMEOUT_MS);
    if (rc == RQ_EEXIST && (code = create_exists(a.name)) >= 0)
        return code;
    if (rc < 0)
        return rqctl_fail("create", KIND_QUEUE, a.name, rc);
    rq_close(q);
    return RQCTL_OK;
}

/* ---- unlink ----------------------------------------------------------- */

static const char unlink_usage[] = "rqctl unlink [--coalesce] [--force] NAME";
static const char unlink_help[] =
    "Removes the name of queue NAME (or with --coalesce, of coalescing object\n"
    "NAME).  Processes that have it open keep working; the memory is freed\n"
    "when the last one closes it.  No such name is exit 3.\n"
    "\n"
    "Refused (exit 10) while a process holds a role (producer, consumer,\n"
    "worker) or while that cannot be told (no access to the lock object, or\n"
    "an object this rqctl cannot read: corrupt, or of another layout version):\n"
    "unlinking a queue in use splits it, its users keeping the old one while\n"
    "new ones get a new one.  The holders are named with their pids.  rq tells\n"
    "the users of an unlinked queue (their waits return RQ_EUNLINKED within a\n"
    "second, and a new create under the name is refused while they hold a\n"
    "role), but stop them first.  The check is made just before the unlink.\n"
    "The status files rq-bridge left beside the queue go with it.\n"
    "\n"
    "  -c, --coalesce  remove the coalescing object rqc.NAME, not the queue\n"
    "  -f, --force     unlink even while a role is held (or it cannot be told)\n"
    "  -h, --help      this text\n";

/* Describes ROLE for the refusal: "consumer (pid 123)". */
static int held_role(char *buf, size_t cap, const char *role, int live, int64_t pid, int shared)
{
    if (live == 0)
        return 0;
    if (live < 0)
        snprintf(buf, cap, "%s (cannot tell: no access to the lock object)", role);
    else if (shared)
        snprintf(buf, cap, "%s (one or more; last opened by pid %lld)", role, (long long)pid);
    else
        snprintf(buf, cap, "%s (pid %lld)", role, (long long)pid);
    return 1;
}

/* The refusal when NAME exists but cannot be looked at (RC: why): an
 * object this rq cannot read (corrupt, another layout version, perhaps
 * still used by the rq that made it) may have users all the same. */
static int cannot_tell(enum rqctl_kind kind, const char *name, int rc)
{
    char shown[RQCTL_SHOWN_MAX];
    return rqctl_error(RQCTL_ATTACHED, "unlink",
                       "refused: cannot tell whether %s '%s' is in use (%s: %s); if nobody "
                       "uses it, unlink it with --force",
                       kind_word(kind), rqctl_shown(name, shown, sizeof shown), rq_errname(rc),
                       rq_strerror(rc));
}

/* RQCTL_OK if nobody holds a role of NAME, or if NAME names nothing (the
 * unlink then says so); else prints the holders, or why they cannot be
 * told, and returns RQCTL_ATTACHED. */
static int check_unattached(enum rqctl_kind kind, const char *name)
{
    char a[160] = "", b[160] = "";
    int n = 0, rc;
    if (kind == KIND_QUEUE) {
        rq *q;
        rq_stats st;
        rc = rq_open_timed(&q, name, RQ_OBSERVER, NULL, RQCTL_OPEN_TIMEOUT_MS);
        if (rc == RQ_ENOENT)
            return RQCTL_OK;
        if (rc != RQ_OK)
            return cannot_tell(kind, name, rc);
        rc = rq_stat(q, &st);
        rq_close(q);
        if (rc != RQ_OK && rc != RQ_ECORRUPT) /* a corrupt ring still names its holders */
            return cannot_tell(kind, name, rc);
        n += held_role(a, sizeof a, "producer", st.producer_live, st.producer_pid,
                       (st.flags & RQ_MPSC) != 0);
        n += held_role(n ? b : a, sizeof a, "consumer", st.consumer_live, st.consumer_pid, 0);
    } else {
        rq_coalesce *c;
        rq_coalesce_stats st;
        rc = rq_coalesce_attach_timed(&c, name, RQ_OBSERVER, 0, RQCTL_OPEN_TIMEOUT_MS);
        if (rc == RQ_ENOENT)
            return RQCTL_OK;
        if (rc != RQ_OK)
            return cannot_tell(kind, name, rc);
        rc = rq_coalesce_stat(c, &st);
        rq_coalesce_close(c);
        if (rc != RQ_OK)
            return cannot_tell(kind, name, rc);
        n += held_role(a, sizeof a, "worker", st.worker_live, st.worker_pid, 0);
    }
    if (n == 0)
        return RQCTL_OK;
    char shown[RQCTL_SHOWN_MAX];
    return rqctl_error(RQCTL_ATTACHED, "unlink",
                       "refused: %s '%s' is in use by its %s%s%s; unlinking it would split "
                       "it (stop them first, or use --force)",
                       kind_word(kind), rqctl_shown(name, shown, sizeof shown), a,
                       n > 1 ? " and " : "", b);
}

int rqctl_cmd_unlink(int argc, char **argv)
{
    static const struct option opts[] = {{"coalesce", no_argument, NULL, 'c'},
                                         {"force", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int coalesce = 0, force = 0, opt;
    while ((opt = getopt_long(argc, argv, "cfh", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            coalesce = 1;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            printf("usage: %s\n\n%s", unlink_usage, unlink_help);
            return RQCTL_OK;
        default:
            return rqctl_usage_error("unlink", unlink_usage);
        }
    }
    if (optind != argc - 1)
        return rqctl_usage_error("unlink", unlink_usage);
    const char *name = argv[optind];
    if (rqctl_check_name("unlink", name) != RQCTL_OK)
        return RQCTL_USAGE;
    enum rqctl_kind kind = coalesce ? KIND_COALESCE : KIND_QUEUE;
    if (!force) {
        int code = check_unattached(kind, name);
        if (code != RQCTL_OK)
            return code;
    }
    int rc = coalesce ? rq_coalesce_unlink(name) : rq_unlink(name);
    if (rc < 0) {
        int code = rqctl_fail("unlink", kind, name, rc);
        rq_coalesce *c;
        if (rc == RQ_ENOENT && !coalesce &&
            rq_coalesce_attach_timed(&c, name, RQ_OBSERVER, 0, RQCTL_OPEN_TIMEOUT_MS) == RQ_OK) {
            rq_coalesce_close(c);
            fprintf(stderr, "rqctl unlink: (a coalescing object of that name exists: use "
                            "--coalesce)\n");
        }
        return code;
    }
    if (!coalesce)
        rqctl_bridge_files_remove(name); /* rq-bridge's status files beside it */
    return RQCTL_OK;
}

/* ---- request ---------------------------------------------------------- */

static const char request_usage[] = "rqctl request NAME";
static const char request_help[] =
    "Asks the worker of coalescing object NAME for one more round of work\n"
    "(rq_coalesce_request).  Never waits.  The object must exist (see\n"
    "'rqctl create --coalesce').\n"
    "\n"
    "  -h, --help  this text\n";

int rqctl_cmd_request(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt != 'h')
            return rqctl_usage_error("request", request_usage);
        printf("usage: %s\n\n%s", request_usage, request_help);
        return RQCTL_OK;
    }
    if (optind != argc - 1)
        return rqctl_usage_error("request", request_usage);
    const char *name = argv[optind];
    if (rqctl_check_name("request", name) != RQCTL_OK)
        return RQCTL_USAGE;
    rq_coalesce *c;
    int rc = rq_coalesce_attach_timed(&c, name, RQ_REQUESTER, 0, RQCTL_OPEN_TIMEOUT_MS);
    if (rc == RQ_OK) {
        rc = rq_coalesce_request(c);
        rq_coalesce_close(c);
    }
    return rc < 0 ? rqctl_fail("request", KIND_COALESCE, name, rc) : RQCTL_OK;
}

/* ---- main ------------------------------------------------------------- */

static const struct command {
    const char *name;
    int (*run)(int, char **);
    const char *summary;
} commands[] = {
    {"create", rqctl_cmd_create, "create a queue (or a coalescing object)"},
    {"unlink", rqctl_cmd_unlink, "remove a queue's (or coalescing object's) name"},
    {"list", rqctl_cmd_list, "list every queue and coalescing object on this machine"},
    {"stat", rqctl_cmd_stat, "geometry, depth, roles and counters (--json, --watch)"},
    {"push", rqctl_cmd_push, "push one message per input line"},
    {"pop", rqctl_cmd_pop, "pop messages to standard output"},
    {"request", rqctl_cmd_request, "request a round of work from a coalescing object"},
    {"dump", rqctl_cmd_dump, "list the records in a record queue without consuming them"},
};

static void main_help(FILE *out)
{
    fprintf(out, "usage: rqctl COMMAND [OPTIONS] [NAME]\n"
                 "       rqctl COMMAND --help | rqctl --help | rqctl --version\n\n"
                 "Operates rq shared-memory queues and coalescing objects.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nexit status: 0 ok, 1 failed (OS error, I/O, unsupported), 2 bad usage,\n"
                 "3 no such queue, 4 corrupt or incompatible segment, 5 role held by another\n"
                 "live process, 6 timed out (empty or full), 7 exists with another geometry,\n"
                 "8 message larger than the slot size, 9 another user's object (or wider\n"
                 "mode than asked), 10 unlink refused: in use, 11 the queue was unlinked\n"
                 "while in use, 12 push: another producer held the MPSC producers' lock.\n");
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int unknown_command(const char *cmd)
{
    char shown[RQCTL_SHOWN_MAX];
    fprintf(stderr, "rqctl: unknown command '%s'\n", rqctl_shown(cmd, shown, sizeof shown));
    main_help(stderr);
    return RQCTL_USAGE;
}

/* "rqctl help [COMMAND]": the overview, or COMMAND --help. */
static int help_command(char *name)
{
    if (!name) {
        main_help(stdout);
        return RQCTL_OK;
    }
    const struct command *c = find_command(name);
    if (!c)
        return unknown_command(name);
    char *help_argv[] = {name, "--help", NULL};
    optind = 0;
    return c->run(2, help_argv);
}

/* Runs command C with the arguments after it (ARGV[0] is its name). */
static int run_command(const struct command *c, int argc, char **argv)
{
    /* getopt names argv[0] in its messages */
    static char prog[32];
    snprintf(prog, sizeof prog, "rqctl %s", c->name);
    argv[0] = prog;
    /* 0, not 1: makes glibc (and the BSDs) re-initialise getopt, whose
     * first run stopped at the command with "+" */
    optind = 0;
    return c->run(argc, argv);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
    int opt;
    /* '+': stop at the command; its options are its own. */
    while ((opt = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'h':
            main_help(stdout);
            return RQCTL_OK;
        case 'V':
            printf("rqctl (rq) %d.%d.%d\n", RQ_VERSION_MAJOR, RQ_VERSION_MINOR, RQ_VERSION_PATCH);
            return RQCTL_OK;
        default:
            main_help(stderr);
            return RQCTL_USAGE;
        }
    }
    if (optind >= argc) {
        main_help(stderr);
        return RQCTL_USAGE;
    }
    const char *cmd = argv[optind];
    if (strcmp(cmd, "help") == 0)
        return help_command(optind + 1 < argc ? argv[optind + 1] : NULL);
    const struct command *c = find_command(cmd);
    if (!c)
        return unknown_command(cmd);
    return run_command(c, argc - optind, argv + optind);
}
