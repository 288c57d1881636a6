/*
 * stat.c - 'rqctl stat' and 'rqctl list': snapshots of queues and
 * coalescing objects, as aligned text or as JSON (written by jansson, so
 * escaping is a library's job, not ours).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge_report.h"
#include "objects.h"
#include "rq.h"
#include "rqctl.h"

/* One snapshot of either kind of object. */
struct snapshot {
    enum rqctl_kind kind;
    const char *name;
    double time;   /* seconds since the epoch */
    int have_info; /* owner, mode and size could be told (Linux) */
    struct rqctl_object_info info;
    union {
        rq_stats q;
        rq_coalesce_stats c;
    } u;
    rq_record_stats rec; /* a record queue (u.q.flags has RQ_RECORDS) */
};

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Opens NAME as KIND without creating or taking a role, and reads it. */
static int take_snapshot(enum rqctl_kind kind, const char *name, struct snapshot *s)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->name = name;
    s->time = wall_seconds();
    s->have_info = rqctl_objects_info(kind, name, &s->info) == 0;
    int rc;
    if (kind == KIND_QUEUE) {
        rq *q;
        rc = rq_open_timed(&q, name, RQ_OBSERVER, NULL, RQCTL_OPEN_TIMEOUT_MS);
        if (rc == RQ_OK) {
            rc = rq_stat(q, &s->u.q);
            if (rc == RQ_OK && (s->u.q.flags & RQ_RECORDS))
                rc = rq_stat_records(q, &s->rec);
            rq_close(q);
        }
    } else {
        rq_coalesce *c;
        rc = rq_coalesce_attach_timed(&c, name, RQ_OBSERVER, 0, RQCTL_OPEN_TIMEOUT_MS);
        if (rc == RQ_OK) {
            rc = rq_coalesce_stat(c, &s->u.c);
            rq_coalesce_close(c);
        }
    }
    return rc;
}

/* ---- JSON --------------------------------------------------------------- */

/* jansson reports running out of memory by NULL values and -1 returns; one
 * flag collects them so a half-built document is never printed. */
static int json_failed;

static void put(json_t *obj, const char *key, json_t *value)
{
    if (!obj || json_object_set_new(obj, key, value) != 0)
        json_failed = 1;
}

/* Counters come from shared memory: a scribbled one may exceed what a JSON
 * integer (int64 in jansson) holds; then it is written as a real. */
static json_t *json_u64(uint64_t v)
{
    return v <= (uint64_t)INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

/* live: true, false, or null when this user cannot tell (it may only read
 * the object, so it cannot open the lock object). */
static json_t *json_role(int live, int64_t pid)
{
    json_t *r = json_object();
    put(r, "live", live < 0 ? json_null() : json_boolean(live));
    put(r, "pid", json_integer((json_int_t)pid));
    return r;
}

/* Owner, mode and size, as ipcs shows them: told by the OS to anyone. */
static void put_info(json_t *o, int have, const struct rqctl_object_info *info)
{
    if (!have)
        return;
    char mode[8];
    snprintf(mode, sizeof mode, "%04o", info->mode);
    json_t *owner = json_object();
    put(owner, "user", json_string(info->user));
    put(owner, "uid", json_integer((json_int_t)info->uid));
    put(o, "owner", owner);
    put(o, "mode", json_string(mode));
    put(o, "bytes", json_u64(info->bytes));
}

/* The MPSC producers' lock: {"held": false} or {"held": true, "pid": N or
 * null, "held_ms": N or null, "reservation": bool}. */
static json_t *json_lock(const rq_stats *q)
{
    json_t *o = json_object();
    put(o, "held", json_boolean(q->lock_holder_pid != 0));
    if (q->lock_holder_pid != 0) {
        put(o, "pid",
            q->lock_holder_pid > 0 ? json_integer((json_int_t)q->lock_holder_pid) : json_null());
        put(o, "held_ms",
            q->lock_held_ms >= 0 ? json_integer((json_int_t)q->lock_held_ms) : json_null());
        put(o, "reservation", json_boolean(q->lock_reserving));
    }
    return o;
}

static json_t *records_json(const struct snapshot *s)
{
    json_t *r = json_object();
    put(r, "capacity", json_u64(s->rec.capacity));
    put(r, "max_record", json_u64(s->rec.max_record));
    put(r, "bytes_used", json_u64(s->rec.bytes_used));
    put(r, "bytes_free", json_u64(s->rec.bytes_free));
    put(r, "records", json_u64(s->rec.records));
    put(r, "largest_record", json_u64(s->rec.largest_record));
    put(r, "padding_bytes", json_u64(s->rec.padding_bytes));
    put(r, "payload_bytes", json_u64(s->rec.payload_bytes));
    return r;
}

static void queue_counters_json(json_t *counters, const rq_stats *q)
{
    put(counters, "pushed", json_u64(q->pushed));
    put(counters, "popped", json_u64(q->popped));
    put(counters, "producer_waits", json_u64(q->producer_waits));
    put(counters, "consumer_waits", json_u64(q->consumer_waits));
    put(counters, "producer_wakes", json_u64(q->producer_wakes));
    put(counters, "consumer_wakes", json_u64(q->consumer_wakes));
    put(counters, "producer_missed_wakes", json_u64(q->producer_missed_wakes));
    put(counters, "consumer_missed_wakes", json_u64(q->consumer_missed_wakes));
    put(counters, "producer_takeovers", json_u64(q->producer_takeovers));
    put(counters, "consumer_takeovers", json_u64(q->consumer_takeovers));
    put(counters, "lock_recoveries", json_u64(q->lock_recoveries));
    put(counters, "dead_reservations", json_u64(q->dead_reservations));
    put(counters, "repairs", json_u64(q->repairs));
}

/* A queue's members of O (in the order rqctl has always written them)
 * and its COUNTERS. */
static void queue_json(json_t *o, json_t *counters, const struct snapshot *s)
{
    const rq_stats *q = &s->u.q;
    put(o, "kind", json_string("queue"));
    put(o, "name", json_string(s->name));
    put(o, "slot_count", json_u64(q->slot_count));
    put(o, "slot_size", json_u64(q->slot_size));
    put(o, "mpsc", json_boolean(q->flags & RQ_MPSC));
    put(o, "fences", json_string((q->flags & RQ_FULL_FENCES) ? "full" : "asymmetric"));
    put(o, "depth", json_u64(q->depth));
    if (q->flags & RQ_RECORDS)
        put(o, "records", records_json(s));
    put(o, "read_offset", json_u64(q->read_offset));
    put(o, "write_offset", json_u64(q->write_offset));
    put(o, "producer", json_role(q->producer_live, q->producer_pid));
    put(o, "consumer", json_role(q->consumer_live, q->consumer_pid));
    if (q->flags & RQ_MPSC)
        put(o, "lock", json_lock(q));
    queue_counters_json(counters, q);
}

static void coalesce_json(json_t *o, json_t *counters, const struct snapshot *s)
{
    const rq_coalesce_stats *c = &s->u.c;
    put(o, "kind", json_string("coalesce"));
    put(o, "name", json_string(s->name));
    put(o, "owed", json_boolean(c->owed));
    put(o, "worker_waiting", json_boolean(c->waiting));
    put(o, "worker", json_role(c->worker_live, c->worker_pid));
    put(counters, "requests", json_u64(c->requests));
    put(counters, "rounds", json_u64(c->rounds));
    put(counters, "wakes", json_u64(c->wakes));
    put(counters, "waits", json_u64(c->waits));
    put(counters, "missed_wakes", json_u64(c->missed_wakes));
    put(counters, "takeovers", json_u64(c->takeovers));
    put(counters, "repairs", json_u64(c->repairs));
}

static json_t *snapshot_json(const struct snapshot *s)
{
    json_t *o = json_object();
    json_t *counters = json_object();
    if (s->kind == KIND_QUEUE)
        queue_json(o, counters, s);
    else
        coalesce_json(o, counters, s);
    put_info(o, s->have_info, &s->info);
    put(o, "counters", counters);
    put(o, "time", json_real(s->time));
    return o;
}

/* Writes VALUE as one line and drops it.  RQCTL_OK or RQCTL_FAILED. */
static int emit_json(const char *cmd, json_t *value)
{
    if (!value)
        json_failed = 1;
    if (json_failed) {
        json_decref(value);
        return rqctl_error(RQCTL_FAILED, cmd, "out of memory building JSON");
    }
    int rc = json_dumpf(value, stdout, JSON_COMPACT);
    json_decref(value);
    if (rc != 0 || putchar('\n') == EOF || fflush(stdout) != 0)
        return rqctl_error(RQCTL_FAILED, cmd, "writing standard output: %s", strerror(errno));
    return RQCTL_OK;
}

/* ---- text --------------------------------------------------------------- */

/* The holder writes its pid just after it takes the role lock, so the pid
 * recorded names the holder only if that process still exists. */
static void text_role(const char *label, int live, int64_t pid, int shared)
{
    printf("%-20s", label);
    int alive = pid > 0 ? rqctl_pid_alive((long long)pid) : 0;
    if (live < 0)
        printf("unknown (no access to its lock object; last pid %" PRId64 ")\n", pid);
    else if (live && shared)
        printf("live (last opened by pid %" PRId64 "%s)\n", pid,
               alive == 0 ? ", which is gone" : "");
    else if (live && alive != 0)
        printf("live, pid %" PRId64 "\n", pid);
    else if (live)
        printf("live, pid cannot be told (pid %" PRId64 " recorded is gone)\n", pid);
    else if (pid != 0)
        printf("none (last pid %" PRId64 ")\n", pid);
    else
        printf("none (never held)\n");
}

/* The MPSC producers' lock holder, as the segment says it (shown only). */
static void text_lock(const rq_stats *q)
{
    printf("%-20s", "producers' lock:");
    if (q->lock_holder_pid == 0) {
        printf("free\n");
        return;
    }
    if (q->lock_holder_pid > 0)
        printf("held by pid %" PRId64, q->lock_holder_pid);
    else
        printf("held (no pid recorded)");
    if (q->lock_reserving)
        printf(", a reservation in progress");
    if (q->lock_held_ms >= 0)
        printf(", for at least %.3f s", (double)q->lock_held_ms / 1000.0);
    else
        printf(", since unknown (no producer has waited for it)");
    putchar('\n');
}

/* A counter; with PREV (the snapshot before, in watch mode) also its rate. */
static void text_counter(const char *label, uint64_t now, const uint64_t *prev, double seconds)
{
    printf("%-20s%" PRIu64, label, now);
    if (prev && seconds > 0 && now >= *prev)
        printf("  (+%.1f/s)", (double)(now - *prev) / seconds);
    putchar('\n');
}

static void text_info(const struct snapshot *s)
{
    if (!s->have_info)
        return;
    printf("%-20s%s (uid %lu)\n", "owner:", s->info.user, s->info.uid);
    printf("%-20s%04o\n", "mode:", s->info.mode);
    printf("%-20s%llu bytes\n", "size:", s->info.bytes);
}

/* A queue's geometry, as the first lines of its text. */
static void queue_geometry_text(const struct snapshot *s)
{
    const rq_stats *q = &s->u.q;
    printf("%-20s%s\n", "queue:", s->name);
    if (q->flags & RQ_RECORDS) {
        printf("%-20s%" PRIu32 " bytes of records\n", "capacity:", q->slot_count);
        printf("%-20s%" PRIu32 " bytes\n", "max record:", q->slot_size);
    } else {
        printf("%-20s%" PRIu32 "\n", "slots:", q->slot_count);
        printf("%-20s%" PRIu32 " bytes\n", "slot size:", q->slot_size);
    }
    printf("%-20s%s\n", "producers:", (q->flags & RQ_MPSC) ? "many (mpsc)" : "one (spsc)");
    printf("%-20s%s\n", "fences:",
           (q->flags & RQ_FULL_FENCES) ? "full (every publish)"
                                       : "asymmetric (membarrier when about to sleep)");
}

/* A record queue's use of its bytes. */
static void records_text(const struct snapshot *s)
{
    printf("%-20s%llu of %llu bytes (%llu free)\n",
           "bytes used:", (unsigned long long)s->rec.bytes_used,
           (unsigned long long)s->rec.capacity, (unsigned long long)s->rec.bytes_free);
    printf("%-20s%llu bytes\n", "largest record:", (unsigned long long)s->rec.largest_record);
    printf("%-20s%llu bytes of %llu published\n",
           "padding wasted:", (unsigned long long)s->rec.padding_bytes,
           (unsigned long long)s->rec.padding_bytes + s->rec.payload_bytes);
}

/* A queue's counters; P (the previous snapshot's, or NULL) and DT give
 * the busy ones a rate. */
static void queue_counters_text(const rq_stats *q, const rq_stats *p, double dt)
{
    text_counter("pushed:", q->pushed, p ? &p->pushed : NULL, dt);
    text_counter("popped:", q->popped, p ? &p->popped : NULL, dt);
    text_counter("producer waits:", q->producer_waits, p ? &p->producer_waits : NULL, dt);
    text_counter("consumer waits:", q->consumer_waits, p ? &p->consumer_waits : NULL, dt);
    text_counter("producer wakes:", q->producer_wakes, p ? &p->producer_wakes : NULL, dt);
    text_counter("consumer wakes:", q->consumer_wakes, p ? &p->consumer_wakes : NULL, dt);
    text_counter("prod. missed wakes:", q->producer_missed_wakes, NULL, 0);
    text_counter("cons. missed wakes:", q->consumer_missed_wakes, NULL, 0);
    text_counter("producer takeovers:", q->producer_takeovers, NULL, 0);
    text_counter("consumer takeovers:", q->consumer_takeovers, NULL, 0);
    text_counter("lock recoveries:", q->lock_recoveries, NULL, 0);
    text_counter("dead reservations:", q->dead_reservations, NULL, 0);
    text_counter("repairs:", q->repairs, NULL, 0);
}

static void queue_text(const struct snapshot *s, const struct snapshot *prev, double dt)
{
    const rq_stats *q = &s->u.q;
    queue_geometry_text(s);
    text_info(s);
    printf("%-20s%" PRIu32 "\n", "depth:", q->depth);
    if (q->flags & RQ_RECORDS)
        records_text(s);
    printf("%-20s%" PRIu32 "\n", "read offset:", q->read_offset);
    printf("%-20s%" PRIu32 "\n", "write offset:", q->write_offset);
    text_role("producer:", q->producer_live, q->producer_pid, (q->flags & RQ_MPSC) != 0);
    text_role("consumer:", q->consumer_live, q->consumer_pid, 0);
    if (q->flags & RQ_MPSC)
        text_lock(q);
    queue_counters_text(q, prev ? &prev->u.q : NULL, dt);
}

static void coalesce_text(const struct snapshot *s, const struct snapshot *prev, double dt)
{
    const rq_coalesce_stats *c = &s->u.c, *p = prev ? &prev->u.c : NULL;
    printf("%-20s%s\n", "coalescing object:", s->name);
    text_info(s);
    printf("%-20s%s\n", "work owed:", c->owed ? "yes" : "no");
    printf("%-20s%s\n", "worker asleep:", c->waiting ? "yes" : "no");
    text_role("worker:", c->worker_live, c->worker_pid, 0);
    text_counter("requests:", c->requests, p ? &p->requests : NULL, dt);
    text_counter("rounds:", c->rounds, p ? &p->rounds : NULL, dt);
    text_counter("wakes:", c->wakes, p ? &p->wakes : NULL, dt);
    text_counter("waits:", c->waits, p ? &p->waits : NULL, dt);
    text_counter("missed wakes:", c->missed_wakes, NULL, 0);
    text_counter("takeovers:", c->takeovers, NULL, 0);
    text_counter("repairs:", c->repairs, NULL, 0);
}

static void snapshot_text(const struct snapshot *s, const struct snapshot *prev)
{
    double dt = prev ? s->time - prev->time : 0;
    if (s->kind == KIND_QUEUE)
        queue_text(s, prev, dt);
    else
        coalesce_text(s, prev, dt);
}

/* ---- stat --------------------------------------------------------------- */

static const char stat_usage[] =
    "rqctl stat [--queue | --coalesce] [--json] [--watch[=SECONDS] [--count N]]\n"
    "                  [--wait[=SECONDS]] NAME";
static const char stat_help[] =
    "Shows queue NAME: geometry, fence mode, owner, mode and size in bytes,\n"
    "depth, read/write offsets, which roles are held and by which live process,\n"
    "and the counters (messages, waits, wake signals, missed wakes, takeovers,\n"
    "lock recoveries, repairs).  Needs only read access (roles show as unknown\n"
    "without access to the lock object).  If there is no queue NAME\n"
    "but a coalescing object NAME, shows that: whether work is owed, the\n"
    "worker, and its counters.  Never creates anything and takes no role.\n"
    "The rq-bridge processes attached to a queue follow, as they report\n"
    "themselves in their files beside it (docs/rqctl.md): direction, pid\n"
    "(alive or gone), state, messages, lag, errors, last error, age.\n"
    "\n"
    "  -q, --queue             only look for a queue\n"
    "  -c, --coalesce          only look for a coalescing object\n"
    "  -j, --json              one JSON object per snapshot, on one line\n"
    "  -w, --watch[=SECONDS]   refresh every SECONDS (default 1) until\n"
    "                          interrupted; text mode shows rates per second\n"
    "  -n, --count N           with --watch: stop after N snapshots\n"
    "  -W, --wait[=SECONDS]    wait for NAME to be created (default: as long as\n"
    "                          it takes), instead of exit 3 at once\n"
    "  -h, --help              this text\n";

/* The first snapshot of NAME: a queue, else (unless ONLY_QUEUE) a
 * coalescing object; *KIND says which.  With WAIT_MS (not 0: --wait),
 * waits that long (RQ_INFINITE: for ever) for either to be created,
 * looking with naps growing to 50 ms, as rq_open_wait does. */
static int first_snapshot(const char *name, int only_queue, int only_coalesce, int wait_ms,
                          enum rqctl_kind *kind, struct snapshot *s)
{
    double until = wall_seconds() + wait_ms / 1000.0;
    int nap_ms = 1;
    for (;;) {
        *kind = only_coalesce ? KIND_COALESCE : KIND_QUEUE;
        int rc = take_snapshot(*kind, name, s);
        if (rc == RQ_ENOENT && !only_queue && !only_coalesce) {
            *kind = KIND_COALESCE;
            rc = take_snapshot(*kind, name, s);
        }
        if (rc != RQ_ENOENT || wait_ms == 0 || (wait_ms > 0 && wall_seconds() >= until))
            return rc;
        struct timespec pause = {0, (long)nap_ms * 1000000L};
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
        }
        if (nap_ms < 50)
            nap_ms = nap_ms * 2 > 50 ? 50 : nap_ms * 2;
    }
}

/* What stat was asked to do. */
struct stat_args {
    const char *name;
    int only_queue, only_coalesce, json, watch, interval_ms, wait_ms;
    uint32_t count;
};

/* One stat option OPT (with optarg) into A: 0, or -1 on a bad value. */
static int stat_option(int opt, struct stat_args *a)
{
    switch (opt) {
    case 'q':
        a->only_queue = 1;
        return 0;
    case 'c':
        a->only_coalesce = 1;
        return 0;
    case 'j':
        a->json = 1;
        return 0;
    case 'w':
        a->watch = 1;
        if (optarg && rqctl_parse_seconds("stat", "--watch", optarg, &a->interval_ms) < 0)
            return -1;
        return 0;
    case 'n':
        return rqctl_parse_u32("stat", "--count", optarg, 1, UINT32_MAX, &a->count) < 0 ? -1 : 0;
    default: /* 'W' */
        return rqctl_parse_wait("stat", optarg, &a->wait_ms) < 0 ? -1 : 0;
    }
}

/* Reads stat's options into A.  Returns -1 to go on, or the exit status
 * (RQCTL_OK after --help). */
static int stat_options(int argc, char **argv, struct stat_args *a)
{
    static const struct option opts[] = {
        {"queue", no_argument, NULL, 'q'},       {"coalesce", no_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},        {"watch", optional_argument, NULL, 'w'},
        {"count", required_argument, NULL, 'n'}, {"help", no_argument, NULL, 'h'},
        {"wait", optional_argument, NULL, 'W'},  {NULL, 0, NULL, 0}};
    *a = (struct stat_args){.interval_ms = 1000};
    int opt;
    while ((opt = getopt_long(argc, argv, "qcjw::n:W::h", opts, NULL)) != -1) {
        if (opt == 'h') {
            printf("usage: %s\n\n%s", stat_usage, stat_help);
            return RQCTL_OK;
        }
        if (!strchr("qcjwnW", opt))
            return rqctl_usage_error("stat", stat_usage);
        if (stat_option(opt, a) < 0)
            return RQCTL_USAGE;
    }
    if (optind != argc - 1)
        return rqctl_usage_error("stat", stat_usage);
    if (a->only_queue && a->only_coalesce)
        return rqctl_error(RQCTL_USAGE, "stat", "--queue and --coalesce exclude each other");
    if (a->count && !a->watch)
        return rqctl_error(RQCTL_USAGE, "stat", "--count goes with --watch");
    if (a->watch && a->interval_ms == 0)
        return rqctl_error(RQCTL_USAGE, "stat", "--watch needs an interval above 0 seconds");
    a->name = argv[optind];
    if (rqctl_check_name("stat", a->name) != RQCTL_OK)
        return RQCTL_USAGE;
    return -1;
}

/* Writes snapshot NOW (shot SHOT; PREV the one before, or NULL) as
 * asked.  CLEAR: a watch on a terminal, which redraws the screen. */
static int stat_show(const struct stat_args *a, const struct snapshot *now,
                     const struct snapshot *prev, uint32_t shot, int clear)
{
    if (a->json) {
        json_t *o = snapshot_json(now);
        if (now->kind == KIND_QUEUE)
            put(o, "bridges", rqctl_bridges_json(a->name));
        return emit_json("stat", o);
    }
    if (clear)
        fputs("\033[H\033[2J", stdout);
    else if (shot > 0)
        putchar('\n');
    snapshot_text(now, prev);
    if (now->kind == KIND_QUEUE)
        rqctl_bridges_text(a->name);
    if (fflush(stdout) != 0)
        return rqctl_error(RQCTL_FAILED, "stat", "writing standard output: %s", strerror(errno));
    return RQCTL_OK;
}

/* The pause of a watch between shots: RQCTL_OK, or the exit status of a
 * signal that stopped it. */
static int stat_pause(int interval_ms)
{
    struct timespec pause = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR && !rqctl_stop_signal()) {
    }
    return rqctl_stop_signal() ? rqctl_stopped("stat", "") : RQCTL_OK;
}

int rqctl_cmd_stat(int argc, char **argv)
{
    struct stat_args a;
    int code = stat_options(argc, argv, &a);
    if (code >= 0)
        return code;
    /* Which kind: fixed by the first snapshot, so a watch never switches. */
    enum rqctl_kind kind = a.only_coalesce ? KIND_COALESCE : KIND_QUEUE;
    struct snapshot snap[2];
    int rc = first_snapshot(a.name, a.only_queue, a.only_coalesce, a.wait_ms, &kind, &snap[0]);
    if (rc == RQ_ENOENT && !a.only_queue && !a.only_coalesce) {
        char shown[RQCTL_SHOWN_MAX];
        return rqctl_error(RQCTL_NOENT, "stat", "no queue or coalescing object '%s'",
                           rqctl_shown(a.name, shown, sizeof shown));
    }
    const int clear = a.watch && !a.json && isatty(STDOUT_FILENO);
    if (a.watch)
        rqctl_stop_on_signals(NULL); /* no waits: the sleep between shots ends */
    for (uint32_t shot = 0;; shot++) {
        struct snapshot *now = &snap[shot & 1], *prev = shot ? &snap[(shot + 1) & 1] : NULL;
        if (shot > 0)
            rc = take_snapshot(kind, a.name, now);
        if (rc < 0)
            return rqctl_fail("stat", kind, a.name, rc);
        code = stat_show(&a, now, prev, shot, clear);
        if (code != RQCTL_OK || !a.watch || (a.count && shot + 1 >= a.count))
            return code;
        code = stat_pause(a.interval_ms);
        if (code != RQCTL_OK)
            return code;
    }
}

/* ---- list --------------------------------------------------------------- */

static const char list_usage[] = "rqctl list [--json]";
static const char list_help[] =
    "Lists every rq queue and coalescing object on this machine (Linux: the\n"
    "files rq.* and rqc.* in /dev/shm), like ipcs: kind, name, owner, mode and\n"
    "size in bytes of each, and a summary: geometry, depth and the roles held\n"
    "(with pids) of those this user may read, or why not (no read access,\n"
    "corrupt, ...) for the others.  Roles show as unknown where this user may\n"
    "read a queue but not its lock object.  Takes no role and creates nothing.\n"
    "Not supported where the OS cannot enumerate shared-memory objects (exit 1).\n"
    "\n"
    "  -j, --json  a JSON array: for each object what 'stat --json' gives, or\n"
    "              kind, name, owner, mode, bytes, \"error\" (the rq error name)\n"
    "              and \"message\"\n"
    "  -h, --help  this text\n";

static const char *kind_label(enum rqctl_kind kind)
{
    return kind == KIND_QUEUE ? "queue" : "coalesce";
}

static void role_summary(char *buf, size_t cap, int live, int64_t pid)
{
    if (live < 0)
        snprintf(buf, cap, "unknown");
    else if (live && rqctl_pid_alive((long long)pid) != 0)
        snprintf(buf, cap, "live pid %" PRId64, pid);
    else if (live)
        snprintf(buf, cap, "live (pid cannot be told)");
    else
        snprintf(buf, cap, "none");
}

/* The summary column of one object. */
static void list_summary(const struct snapshot *s, char *buf, size_t cap)
{
    char producer[64], consumer[64];
    if (s->kind == KIND_QUEUE) {
        const rq_stats *q = &s->u.q;
        role_summary(producer, sizeof producer, q->producer_live, q->producer_pid);
        role_summary(consumer, sizeof consumer, q->consumer_live, q->consumer_pid);
        if (q->flags & RQ_RECORDS)
            snprintf(buf, cap,
                     "records in %" PRIu32 " B (up to %" PRIu32 " B)%s, %" PRIu32
                     " records, %llu B used, producer %s, consumer %s",
                     q->slot_count, q->slot_size, (q->flags & RQ_MPSC) ? " mpsc" : "", q->depth,
                     (unsigned long long)s->rec.bytes_used, producer, consumer);
        else
            snprintf(buf, cap,
                     "%" PRIu32 " slots x %" PRIu32 " B%s, depth %" PRIu32 ", producer %s, "
                     "consumer %s",
                     q->slot_count, q->slot_size, (q->flags & RQ_MPSC) ? " mpsc" : "", q->depth,
                     producer, consumer);
    } else {
        const rq_coalesce_stats *c = &s->u.c;
        role_summary(producer, sizeof producer, c->worker_live, c->worker_pid);
        snprintf(buf, cap, "%s, worker %s, %" PRIu64 " requests, %" PRIu64 " rounds",
                 c->owed ? "work owed" : "idle", producer, c->requests, c->rounds);
    }
}

/* Why an object could not be read, for the summary column and JSON: a
 * few words that fit a listing's line (rq_strerror's sentences do not),
 * and rq_strerror for the rest. */
static const char *list_error_text(int rc, int saved_errno)
{
    switch (rc) {
    case RQ_EINVAL:
        return "not a valid rq name";
    case RQ_ENOENT:
        return "not fully created (or removed meanwhile)";
    case RQ_ECORRUPT:
        return "corrupt segment";
    case RQ_EVERSION:
        return "made by an incompatible rq build";
    case RQ_ETIMEDOUT:
        return "held up: its creator is stopped or very slow";
    case RQ_ESYS:
        /* Another user's object this user may not read: ipcs shows such
         * ones too, with what the OS tells (owner, mode, size). */
        return saved_errno == EACCES ? "no read access (depth and roles cannot be told)"
                                     : strerror(saved_errno);
    default:
        return rq_strerror(rc);
    }
}

/* Reads list's options (*JSON: --json).  Returns -1 to go on, or the
 * exit status (RQCTL_OK after --help). */
static int list_options(int argc, char **argv, int *json)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt;
    *json = 0;
    while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            *json = 1;
            break;
        case 'h':
            printf("usage: %s\n\n%s", list_usage, list_help);
            return RQCTL_OK;
        default:
            return rqctl_usage_error("list", list_usage);
        }
    }
    if (optind != argc)
        return rqctl_usage_error("list", list_usage);
    return -1;
}

/* The objects could not be listed: why (errno), and the exit status. */
static int list_failed(void)
{
    if (errno == ENOSYS)
        return rqctl_error(RQCTL_FAILED, "list",
                           "listing shared-memory objects is not supported on this OS "
                           "(rq objects are files only on Linux, in /dev/shm)");
    return rqctl_error(RQCTL_FAILED, "list", "reading %s: %s", rqctl_objects_where,
                       strerror(errno));
}

/* The width of the NAME column: the longest shown name, at least 4. */
static int list_name_width(const struct rqctl_object *objects, size_t n)
{
    int width = 4;
    char shown[RQCTL_SHOWN_MAX];
    for (size_t i = 0; i < n; i++) {
        int w = (int)strlen(rqctl_shown(objects[i].name, shown, sizeof shown));
        if (w > width)
            width = w;
    }
    return width;
}

/* One object's snapshot S as JSON, or (RC < 0) its error, its errno
 * SAVED_ERRNO and what the OS tells of it.  SHOWN: its name as shown. */
static json_t *list_entry_json(const struct rqctl_object *obj, const struct snapshot *s, int rc,
                               int saved_errno, const char *shown)
{
    if (rc == RQ_OK)
        return snapshot_json(s);
    json_t *o = json_object();
    put(o, "kind", json_string(obj->kind == KIND_QUEUE ? "queue" : "coalesce"));
    /* A name found on disk may hold any bytes: the shown form is
     * printable ASCII, so it is always a valid JSON string. */
    put(o, "name", json_string(shown));
    put(o, "error", json_string(rq_errname(rc)));
    put(o, "message", json_string(list_error_text(rc, saved_errno)));
    put_info(o, s->have_info, &s->info);
    return o;
}

/* The same as one line of the table, its NAME column WIDTH wide. */
static void list_entry_text(const struct rqctl_object *obj, const struct snapshot *s, int rc,
                            int saved_errno, const char *shown, int width)
{
    char summary[256];
    if (rc == RQ_OK)
        list_summary(s, summary, sizeof summary);
    else
        snprintf(summary, sizeof summary, "error: %s", list_error_text(rc, saved_errno));
    char owner[64] = "?", mode[8] = "?", bytes[24] = "?";
    if (s->have_info) {
        snprintf(owner, sizeof owner, "%s", s->info.user);
        snprintf(mode, sizeof mode, "%04o", s->info.mode);
        snprintf(bytes, sizeof bytes, "%llu", s->info.bytes);
    }
    printf("%-9s %-*s %-10s %-5s %12s %s\n", kind_label(obj->kind), width, shown, owner, mode,
           bytes, summary);
}

/* Looks at one object and writes it: into ARRAY (JSON) or as a line. */
static void list_one(const struct rqctl_object *obj, json_t *array, int width)
{
    char shown[RQCTL_SHOWN_MAX];
    struct snapshot s;
    int rc = rq_name_valid(obj->name) ? take_snapshot(obj->kind, obj->name, &s) : RQ_EINVAL;
    int saved_errno = errno;
    if (rc == RQ_EINVAL) /* no snapshot was begun: what the OS tells */
        s.have_info = rqctl_objects_info(obj->kind, obj->name, &s.info) == 0;
    rqctl_shown(obj->name, shown, sizeof shown);
    if (!array) {
        list_entry_text(obj, &s, rc, saved_errno, shown, width);
        return;
    }
    json_t *o = list_entry_json(obj, &s, rc, saved_errno, shown);
    if (!o || json_array_append_new(array, o) != 0)
        json_failed = 1;
}

int rqctl_cmd_list(int argc, char **argv)
{
    int json;
    int code = list_options(argc, argv, &json);
    if (code >= 0)
        return code;
    struct rqctl_object *objects;
    size_t n;
    if (rqctl_objects_list(&objects, &n) != 0)
        return list_failed();
    json_t *array = json ? json_array() : NULL;
    if (json && !array)
        json_failed = 1;
    int width = list_name_width(objects, n);
    if (!json)
        printf("%-9s %-*s %-10s %-5s %12s %s\n", "KIND", width, "NAME", "OWNER", "MODE", "BYTES",
               "SUMMARY");
    for (size_t i = 0; i < n && !json_failed; i++)
        list_one(&objects[i], array, width);
    rqctl_objects_free(objects, n);
    if (json)
        return emit_json("list", array);
    if (fflush(stdout) != 0)
        return rqctl_error(RQCTL_FAILED, "list", "writing standard output: %s", strerror(errno));
    return RQCTL_OK;
}

/* ---- dump --------------------------------------------------------------- */

static const char dump_usage[] = "rqctl dump [--json] [--bytes N] NAME";
static const char dump_help[] =
    "Lists the records in record queue NAME, oldest first, without consuming\n"
    "them: sequence number, index in the ring, length, padding before it, and\n"
    "its first bytes in hex; then the totals (records, bytes used, padding in\n"
    "the ring, largest record in the ring).  Takes no role; needs read access.\n"
    "\n"
    "  -j, --json     one JSON object: the records and the totals\n"
    "  -b, --bytes N  bytes of each record to show (default 16, 0..4096)\n"
    "  -h, --help     this text\n";

struct dump_state {
    int json;
    uint32_t show;
    json_t *list; /* --json: the records of the walk */
    FILE *text;   /* else: their lines, spooled until the walk is whole */
    uint64_t records, bytes, padding, largest;
};

static int dump_one(void *ctx, const rq_record_entry *e)
{
    struct dump_state *d = ctx;
    const unsigned char *b = e->data;
    uint32_t n = e->len < d->show ? e->len : d->show;
    char hex[2 * 4096 + 1];
    for (uint32_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    hex[2 * n] = 0;
    d->records++;
    d->bytes += e->len;
    d->padding += e->padding;
    d->largest = e->len > d->largest ? e->len : d->largest;
    /* Kept, not printed: a walk the consumer overtakes starts again, and
     * only the last, whole one is shown. */
    if (d->json) {
        json_t *r = json_object();
        put(r, "seq", json_u64(e->seq));
        put(r, "offset", json_u64(e->offset));
        put(r, "len", json_u64(e->len));
        put(r, "padding", json_u64(e->padding));
        put(r, "head", json_string(hex));
        if (json_array_append_new(d->list, r) != 0)
            json_failed = 1;
    } else {
        fprintf(d->text, "%-12" PRIu64 " @%-10" PRIu32 " %8" PRIu32 " B%s %s\n", e->seq, e->offset,
                e->len, e->padding ? " (after padding)" : "                ", hex);
    }
    return 0;
}

/* A fresh spool for a walk's lines (a temporary file: a ring of small
 * records can hold millions).  0, or -1 with errno. */
static int dump_spool(struct dump_state *d)
{
    if (d->text)
        fclose(d->text);
    d->text = tmpfile();
    return d->text ? 0 : -1;
}

/* The spooled lines of the last walk to standard output.  0, or the
 * failed step's words for the error: the spool (written while walking,
 * read back here) or standard output; errno says why. */
static const char *dump_text_records(FILE *text)
{
    static const char spool[] = "the walk's temporary file", out[] = "writing standard output";
    char buf[8192];
    size_t n;
    if (ferror(text) || fflush(text) != 0 || fseek(text, 0, SEEK_SET) != 0)
        return spool;
    while ((n = fread(buf, 1, sizeof buf, text)) > 0)
        if (fwrite(buf, 1, n, stdout) != n)
            return out;
    return ferror(text) ? spool : NULL;
}

/* Reads dump's options into D and *NAME.  Returns -1 to go on, or the
 * exit status (RQCTL_OK after --help). */
static int dump_options(int argc, char **argv, struct dump_state *d, const char **name)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"bytes", required_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "jb:h", opts, NULL)) != -1) {
        if (opt == 'j') {
            d->json = 1;
        } else if (opt == 'b') {
            if (rqctl_parse_u32("dump", "--bytes", optarg, 0, 4096, &d->show) < 0)
                return RQCTL_USAGE;
        } else if (opt == 'h') {
            printf("usage: %s\n\n%s", dump_usage, dump_help);
            return RQCTL_OK;
        } else {
            return rqctl_usage_error("dump", dump_usage);
        }
    }
    if (optind != argc - 1)
        return rqctl_usage_error("dump", dump_usage);
    *name = argv[optind];
    if (rqctl_check_name("dump", *name) != RQCTL_OK)
        return RQCTL_USAGE;
    return -1;
}

/* Walks the records into D, again while the consumer frees under the walk
 * (RQ_EAGAIN), at most 100 times.  RC: rq_stat_records' result.  Returns
 * the walk's. */
static int dump_walk(rq *q, struct dump_state *d, int rc)
{
    for (int attempt = 0; rc == RQ_OK || rc == RQ_EAGAIN; attempt++) {
        if (attempt == 100)
            break; /* the consumer keeps freeing under us: report that */
        d->records = d->bytes = d->padding = d->largest = 0;
        if (d->json)
            json_array_clear(d->list);
        else if (dump_spool(d) < 0)
            return RQ_ESYS;
        rc = rq_dump_records(q, dump_one, d);
        if (rc == RQ_OK)
            break;
    }
    return rc;
}

/* The summary after the records (and, as JSON, with them). */
static int dump_summary(const char *name, const rq_record_stats *st, struct dump_state *d)
{
    if (d->json) {
        json_t *o = json_object();
        put(o, "name", json_string(name));
        put(o, "capacity", json_u64(st->capacity));
        put(o, "max_record", json_u64(st->max_record));
        put(o, "records", json_u64(d->records));
        put(o, "payload_bytes", json_u64(d->bytes));
        put(o, "padding_bytes", json_u64(d->padding));
        put(o, "largest_record", json_u64(d->largest));
        put(o, "entries", d->list);
        return emit_json("dump", o);
    }
    const char *failed = dump_text_records(d->text);
    int err = errno;
    fclose(d->text);
    if (failed)
        return rqctl_error(RQCTL_FAILED, "dump", "%s: %s", failed, strerror(err));
    printf("%" PRIu64 " records, %" PRIu64 " bytes of payload, %" PRIu64
           " bytes of padding in the ring; largest %" PRIu64 " bytes; capacity %" PRIu64 " bytes\n",
           d->records, d->bytes, d->padding, d->largest, st->capacity);
    if (fflush(stdout) != 0 || ferror(stdout))
        return rqctl_error(RQCTL_FAILED, "dump", "writing standard output: %s", strerror(errno));
    return RQCTL_OK;
}

int rqctl_cmd_dump(int argc, char **argv)
{
    struct dump_state d = {0, 16, NULL, NULL, 0, 0, 0, 0};
    const char *name = NULL;
    int code = dump_options(argc, argv, &d, &name);
    if (code >= 0)
        return code;
    rq *q;
    int rc = rq_open_timed(&q, name, RQ_OBSERVER, NULL, RQCTL_OPEN_TIMEOUT_MS);
    if (rc < 0)
        return rqctl_fail("dump", KIND_QUEUE, name, rc);
    rq_record_stats st;
    rc = rq_stat_records(q, &st);
    if (rc == RQ_EINVAL) {
        rq_close(q);
        char shown[RQCTL_SHOWN_MAX];
        return rqctl_error(RQCTL_USAGE, "dump", "queue '%s' is a slot queue, not a record queue",
                           rqctl_shown(name, shown, sizeof shown));
    }
    d.list = d.json ? json_array() : NULL;
    rc = dump_walk(q, &d, rc);
    rq_close(q);
    if (rc < 0) {
        json_decref(d.list);
        if (d.text)
            fclose(d.text);
        return rqctl_fail("dump", KIND_QUEUE, name, rc);
    }
    return dump_summary(name, &st, &d);
}
