/*
 * bridges.c - the rq-bridge processes of a queue in 'rqctl stat': what
 * each reported in its status file beside the queue, with what rqctl can
 * tell itself (is the pid alive, how old is the file, whose is it).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_report.h"
#include "objects.h"
#include "rqctl.h"

/* One bridge as shown: its file F, its report R (PARSED 0: WHY says why
 * not), and what rqctl tells: ALIVE (1, 0, -1 cannot tell), STATE. */
struct shown_bridge {
    const struct rqctl_bridge_file *f;
    struct rqctl_bridge_report r;
    int parsed, alive, foreign;
    const char *why, *state;
};

static void judge(const struct rqctl_bridge_file *f, unsigned long queue_uid, int have_uid,
                  struct shown_bridge *b)
{
    memset(b, 0, sizeof *b);
    b->f = f;
    b->alive = rqctl_pid_alive(f->pid);
    b->foreign = have_uid && f->uid != queue_uid;
    if (f->unreadable)
        b->why = "cannot be read (not a regular file, or no read access)";
    else if (f->too_long)
        b->why = "longer than any report a bridge writes";
    else if (rqctl_bridge_parse(f->text, f->len, f->direction, &b->r, &b->why) == 0 &&
             b->r.pid != f->pid)
        b->why = "its pid is not the one in its name";
    b->parsed = b->why == NULL;
    /* A bridge that stopped cleanly said so last; one that says anything
     * else and is gone was killed (or crashed). */
    if (!b->parsed)
        b->state = b->alive == 0 ? "dead" : "unknown";
    else if (b->alive == 0)
        b->state = strcmp(b->r.state, "stopped") == 0 ? "stopped" : "dead";
    else
        b->state = b->r.state;
}

/* The files of QUEUE and the queue owner's uid; NULL when none. */
static struct rqctl_bridge_file *find(const char *queue, size_t *n, size_t *more,
                                      unsigned long *uid, int *have_uid)
{
    struct rqctl_bridge_file *files;
    struct rqctl_object_info info;
    *have_uid = rqctl_objects_info(KIND_QUEUE, queue, &info) == 0;
    *uid = *have_uid ? info.uid : 0;
    if (rqctl_bridge_files(queue, *have_uid ? (long long)*uid : -1, &files, n, more) != 0) {
        *n = 0;
        return NULL;
    }
    return files;
}

static void text_one(const struct shown_bridge *b)
{
    char pid[48], shown[4 * 512 + 1];
    snprintf(pid, sizeof pid, "pid %lld %s", b->f->pid,
             b->alive < 0 ? "(?)"
             : b->alive   ? "alive"
                          : "gone");
    printf("  %-4s %-18s %s", b->f->direction, pid, b->state);
    if (!b->parsed) {
        printf(": report unusable (%s)\n", b->why);
        return;
    }
    if (strcmp(b->state, b->r.state) != 0 && strcmp(b->state, "stopped") != 0)
        printf(" (last reported %s)", b->r.state);
    printf(", %" PRIu64 " messages, lag %" PRIu64 ", %" PRIu64 " errors, written %.1f s ago%s%s\n",
           b->r.messages, b->r.lag, b->r.errors, b->f->age,
           b->foreign ? ", by another user than the queue's owner" : "",
           b->f->age < 0 ? " (dated in the future: not to be trusted)" : "");
    if (b->r.last_error[0])
        printf("  %-23s last error: %s\n", "", rqctl_shown(b->r.last_error, shown, sizeof shown));
}

void rqctl_bridges_text(const char *queue)
{
    size_t n, more = 0;
    unsigned long uid;
    int have_uid;
    struct rqctl_bridge_file *files = find(queue, &n, &more, &uid, &have_uid);
    if (!files)
        return;
    printf("%-20s%zu, as reported by the bridges themselves (files rqb.*.%s)\n", "bridges", n,
           queue);
    if (more)
        printf("  (%zu more files not shown: the queue owner's are shown first)\n", more);
    for (size_t i = 0; i < n; i++) {
        struct shown_bridge b;
        judge(&files[i], uid, have_uid, &b);
        text_one(&b);
    }
    free(files);
}

/* Sets KEY of O to V; *FAILED on any failure (V NULL: out of memory). */
static void put(json_t *o, const char *key, json_t *v, int *failed)
{
    if (json_object_set_new(o, key, v) != 0)
        *failed = 1;
}

static json_t *json_one(const struct shown_bridge *b)
{
    int failed = 0;
    json_t *o = json_object();
    if (!o)
        return NULL;
    put(o, "direction", json_string(b->f->direction), &failed);
    put(o, "pid", json_integer(b->f->pid), &failed);
    put(o, "alive", b->alive < 0 ? json_null() : json_boolean(b->alive), &failed);
    put(o, "state", json_string(b->state), &failed);
    put(o, "age_s", json_real(b->f->age), &failed);
    put(o, "owner_uid", json_integer((json_int_t)b->f->uid), &failed);
    put(o, "owner_is_queue_owner", json_boolean(!b->foreign), &failed);
    if (!b->parsed) {
        put(o, "error", json_string(b->why), &failed);
    } else {
        json_t *r = json_object();
        put(o, "reported", r, &failed);
        if (r) {
            put(r, "state", json_string(b->r.state), &failed);
            put(r, "messages", json_integer((json_int_t)b->r.messages), &failed);
            put(r, "lag", json_integer((json_int_t)b->r.lag), &failed);
            put(r, "errors", json_integer((json_int_t)b->r.errors), &failed);
            char shown[4 * 512 + 1];
            put(r, "last_error", json_string(rqctl_shown(b->r.last_error, shown, sizeof shown)),
                &failed);
        }
    }
    if (failed) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *rqctl_bridges_json(const char *queue)
{
    size_t n = 0, more = 0;
    unsigned long uid;
    int have_uid;
    struct rqctl_bridge_file *files = find(queue, &n, &more, &uid, &have_uid);
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        struct shown_bridge b;
        judge(&files[i], uid, have_uid, &b);
        if (json_array_append_new(a, json_one(&b)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    free(files);
    return a;
}
