/*
 * test_faults.c - OS-call fault injection (src/fault.h), the way SQLite
 * fails its N-th allocation: for every operation, fail its 1st OS call,
 * then its 2nd, ... until the operation runs through without reaching the
 * armed call.  After every injected failure:
 *   - the operation reports it: RQ_ESYS with errno / GetLastError() as
 *     injected, or success where the design absorbs that very call (a wake
 *     signal, whose loss the sleeper's periodic re-check covers; the
 *     asymmetric fence, whose absence means full fences);
 *   - no descriptor / handle and no shared mapping is left behind;
 *   - the queue is undamaged: the messages queued before are all there, in
 *     order and intact, and a fresh open + push/pop round trip works.
 */
#ifndef _WIN32
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <cmocka.h>
#include <pthread.h>

#include "fault.h"
#include "helpers.h"
#include "layout.h"
#include "rq.h"

#ifndef RQ_FAULT_INJECTION
#error "test_faults needs the rq_testing library built with RQ_FAULT_INJECTION"
#endif

/* An error no code path of rq treats specially. */
#ifdef _WIN32
#define INJECTED_ERROR ERROR_NO_SYSTEM_RESOURCES
#else
#define INJECTED_ERROR EIO
#endif

#define SLOTS 4
#define SLOT_SIZE 64
#define PRELOADED 2 /* messages in a queue before each operation */

static unsigned long total_injected; /* over the whole run */

/* ---- the OS view: errors, descriptors/handles, mappings ---------------- */

static unsigned long os_error(void)
{
#ifdef _WIN32
    return GetLastError();
#else
    return (unsigned long)errno;
#endif
}

static void os_error_clear(void)
{
#ifdef _WIN32
    SetLastError(0);
#else
    errno = 0;
#endif
}

#define HANDLE_SCAN_LIMIT 0x1000

/* Open descriptors (Linux) or handles (Windows) of this process. */
static long open_handles(void)
{
#ifdef _WIN32
    /* GetProcessHandleCount does not count under Wine (a leaked handle
     * left it unchanged); so ask about every handle value instead
     * (multiples of 4, handed out lowest first: this test's stay below
     * 0x60). */
    long n = 0;
    uintptr_t top = 0;
    for (uintptr_t v = 4; v < HANDLE_SCAN_LIMIT; v += 4) {
        DWORD flags;
        if (GetHandleInformation((HANDLE)v, &flags)) {
            n++;
            top = v;
        }
    }
    /* Handles this close to the bound could hide a leak beyond it. */
    if (top >= HANDLE_SCAN_LIMIT / 2)
        fail_msg("handle value %#lx: raise HANDLE_SCAN_LIMIT", (unsigned long)top);
    return n;
#else
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    long n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
#endif
}

/* Shared mappings of this process: the lines of /proc/self/maps whose
 * permissions say "s" (only shared segments are; the sanitizers' and the C
 * library's own mappings are private), or the mapped views on Windows. */
static long shared_mappings(void)
{
#ifdef _WIN32
    long n = 0;
    MEMORY_BASIC_INFORMATION mbi;
    for (unsigned char *p = NULL; VirtualQuery(p, &mbi, sizeof mbi) == sizeof mbi;
         p = (unsigned char *)mbi.BaseAddress + mbi.RegionSize) {
        if (mbi.Type == MEM_MAPPED && mbi.BaseAddress == mbi.AllocationBase)
            n++;
        if ((uintptr_t)mbi.BaseAddress + mbi.RegionSize < (uintptr_t)mbi.BaseAddress)
            break;
    }
    return n;
#else
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    long n = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char perms[8];
        if (sscanf(line, "%*s %7s", perms) == 1 && perms[3] == 's')
            n++;
    }
    fclose(f);
    return n;
#endif
}

struct os_snapshot {
    long handles, mappings;
};

static struct os_snapshot os_snapshot(void)
{
    struct os_snapshot s = {open_handles(), shared_mappings()};
    return s;
}

static void assert_nothing_leaked(const struct os_snapshot *before, const char *what,
                                  unsigned long n)
{
    struct os_snapshot now = os_snapshot();
    if (now.handles != before->handles || now.mappings != before->mappings)
        fail_msg("%s, call %lu failed: %ld -> %ld descriptors/handles, %ld -> %ld shared mappings",
                 what, n, before->handles, now.handles, before->mappings, now.mappings);
}

/* ---- the state a scenario works on ------------------------------------- */

struct ctx {
    char name[RQ_NAME_MAX + 1];
    uint32_t flags; /* of the queue */
    rq *keep;       /* Windows: keeps the queue alive; NULL on Linux */
    rq *q;          /* made by setup or by the operation */
    rq_coalesce *c, *c2;
    th_pid child;
    uint64_t next_seq;
    /* What the queue must hold, oldest first. */
    uint64_t model[64];
    unsigned model_n;
    /* Coalescing objects: requests registered so far. */
    uint64_t requests;
};

static void model_push(struct ctx *c, uint64_t seq)
{
    assert_true(c->model_n < 64);
    c->model[c->model_n++] = seq;
}

static uint64_t model_pop(struct ctx *c)
{
    assert_true(c->model_n > 0);
    uint64_t seq = c->model[0];
    memmove(c->model, c->model + 1, --c->model_n * sizeof c->model[0]);
    return seq;
}

static void push_seq(rq *q, uint64_t seq)
{
    unsigned char buf[SLOT_SIZE];
    size_t len = th_msg_make(buf, sizeof buf, seq, 0);
    assert_int_equal(rq_push(q, buf, len, 0), RQ_OK);
}

/* Pops one message (waiting up to TIMEOUT_MS); it must be well-formed. */
static uint64_t pop_seq(rq *q, int timeout_ms)
{
    unsigned char buf[SLOT_SIZE];
    size_t len = 0;
    uint64_t seq;
    uint32_t stream;
    assert_int_equal(rq_pop(q, buf, sizeof buf, &len, timeout_ms), RQ_OK);
    assert_int_equal(th_msg_check(buf, len, &seq, &stream), 0);
    return seq;
}

static rq *attach(const char *name, int role)
{
    rq *q = NULL;
    int rc = rq_open(&q, name, role, NULL);
    if (rc != RQ_OK)
        fail_msg("attach %s as %d: %s", name, role, rq_errname(rc));
    return q;
}

/* Empties the queue, checking it held exactly the model, and returns with
 * the model empty too. */
static void drain_checking_model(struct ctx *c, rq *cons)
{
    while (c->model_n > 0) {
        uint64_t want = model_pop(c);
        uint64_t got = pop_seq(cons, 0);
        if (got != want)
            fail_msg("%s: message %llu where %llu was queued", c->name, (unsigned long long)got,
                     (unsigned long long)want);
    }
    size_t len;
    unsigned char buf[SLOT_SIZE];
    assert_int_equal(rq_pop(cons, buf, sizeof buf, &len, 0), RQ_EAGAIN);
}

/* The queue is undamaged: it holds the model, a new message goes round,
 * and the model's messages are put back for the next operation. */
static void verify_queue(struct ctx *c)
{
    rq *cons = attach(c->name, RQ_CONSUMER);
    rq *prod = attach(c->name, RQ_PRODUCER);
    uint64_t keep[64];
    unsigned n = c->model_n;
    memcpy(keep, c->model, sizeof keep);
    drain_checking_model(c, cons);
    uint64_t probe = c->next_seq++;
    push_seq(prod, probe);
    assert_int_equal(pop_seq(cons, 0), probe);
    for (unsigned i = 0; i < n; i++) {
        push_seq(prod, keep[i]);
        model_push(c, keep[i]);
    }
    rq_stats st;
    assert_int_equal(rq_stat(cons, &st), RQ_OK);
    assert_int_equal(st.depth, n);
    rq_close(prod);
    rq_close(cons);
}

/* A new queue of the scenario's kind, holding PRELOADED messages. */
static void make_queue(struct ctx *c, const char *tag, uint32_t flags)
{
    snprintf(c->name, sizeof c->name, "%s", th_name(tag));
    c->flags = flags;
    c->keep = th_create(c->name, SLOTS, SLOT_SIZE, flags);
    c->next_seq = 1000;
    rq *prod = attach(c->name, RQ_PRODUCER);
    for (unsigned i = 0; i < PRELOADED; i++) {
        push_seq(prod, c->next_seq);
        model_push(c, c->next_seq++);
    }
    rq_close(prod);
}

static void drop_queue(struct ctx *c)
{
    rq_close(c->keep);
    rq_unlink(c->name);
}

/* ---- the driver --------------------------------------------------------- */

struct scenario {
    const char *what;
    const char *tag; /* queue name tag */
    int coalescing;  /* works on a coalescing object, not a queue */
    uint32_t flags;  /* of the queue */
    int fresh;       /* the operation makes the object: none exists */
    /* Unarmed: what the operation needs (handles, a child). */
    void (*setup)(struct ctx *);
    /* Armed: the operation.  Returns an rq_error. */
    int (*op)(struct ctx *);
    /* Unarmed: closes what setup and op made, updates the model. */
    void (*after)(struct ctx *, int rc);
    /* Calls whose failure the operation may absorb and still succeed,
     * "|name|name|" ("" for none). */
    const char *absorbs;
};

/* How the calls fail in one pass: with ERROR, and which calls the design
 * then absorbs beyond the scenario's own (RETRIES: EINTR is retried). */
struct fault_pass {
    unsigned long error;
    const char *retries;
};

static int absorbed(const struct scenario *sc, const struct fault_pass *pass, int call)
{
    const char *name = rq_fault_name(call);
    char bar[64];
    snprintf(bar, sizeof bar, "|%s|", name ? name : "?");
    return strstr(sc->absorbs, bar) != NULL || strstr(pass->retries, bar) != NULL;
}

static void verify(const struct scenario *sc, struct ctx *c);

/* Fails the 1st, 2nd, ... OS call of SC's operation, until one run reaches
 * no armed call.  Returns the number of injected failures. */
static unsigned long run_scenario(const struct scenario *sc, const struct fault_pass *pass)
{
    struct ctx c;
    memset(&c, 0, sizeof c);
    c.flags = sc->flags;
    if (sc->fresh) {
        snprintf(c.name, sizeof c.name, "%s", th_name(sc->tag));
        if (sc->coalescing)
            rq_coalesce_unlink(c.name);
    } else if (!sc->coalescing) {
        make_queue(&c, sc->tag, sc->flags);
    } else {
        snprintf(c.name, sizeof c.name, "%s", th_name(sc->tag));
        rq_coalesce_unlink(c.name);
        assert_int_equal(rq_coalesce_open(&c.c2, c.name, RQ_OBSERVER, 0), RQ_OK);
#ifndef _WIN32
        rq_coalesce_close(c.c2); /* Windows: kept open, it keeps the object */
        c.c2 = NULL;
#endif
    }
    rq_coalesce *keep_coalesce = c.c2;
    c.c2 = NULL;
    unsigned long injected = 0, absorbed_ok = 0, clean_calls = 0;
    for (unsigned long n = 1;; n++) {
        if (n > 5000)
            fail_msg("%s: still failing after %lu calls", sc->what, n);
        struct os_snapshot before = os_snapshot();
        if (sc->setup)
            sc->setup(&c);
        unsigned long injected_before = rq_fault_injected();
        unsigned long calls_before = rq_fault_calls(-1);
        rq_fault_arm(-1, n, pass->error);
        os_error_clear();
        int rc = sc->op(&c);
        unsigned long err = os_error();
        rq_fault_disarm();
        int hit = rq_fault_injected() != injected_before;
        if (!hit) {
            if (rc != RQ_OK)
                fail_msg("%s: %s with no injected failure", sc->what, rq_errname(rc));
            clean_calls = rq_fault_calls(-1) - calls_before;
        } else {
            int call = rq_fault_last();
            if (rc == RQ_OK) {
                if (!absorbed(sc, pass, call))
                    fail_msg("%s: call %lu (%s) failed, yet the operation succeeded", sc->what, n,
                             rq_fault_name(call));
                absorbed_ok++;
            } else if (rc != RQ_ESYS || err != pass->error) {
                fail_msg("%s: call %lu (%s) failed with error %lu: got %s, OS error %lu", sc->what,
                         n, rq_fault_name(call), pass->error, rq_errname(rc), err);
            }
            injected++;
        }
        sc->after(&c, rc);
        assert_nothing_leaked(&before, sc->what, n);
        verify(sc, &c);
        if (!hit)
            break;
    }
    print_message("%-44s %3lu injected failures (%lu absorbed), all clean; %lu OS calls "
                  "when none fails\n",
                  sc->what, injected, absorbed_ok, clean_calls);
    if (keep_coalesce)
        rq_coalesce_close(keep_coalesce);
    if (sc->coalescing)
        rq_coalesce_unlink(c.name);
    else if (!sc->fresh)
        drop_queue(&c);
    total_injected += injected;
    return injected;
}

/* ---- queue scenarios ------------------------------------------------------ */

static const rq_config *config_for(const struct ctx *c)
{
    static rq_config cfg;
    cfg.slot_count = SLOTS;
    cfg.slot_size = SLOT_SIZE;
    cfg.flags = c->flags;
    cfg.mode = 0;
    return &cfg;
}

static void close_q(struct ctx *c, int rc)
{
    (void)rc;
    rq_close(c->q);
    c->q = NULL;
}

/* A create that failed leaves either a complete queue (it failed after
 * the segment was made: taking the role, say) or nothing at all: the
 * object it made is removed, so no stray is left for a later open to trip
 * on.  (Windows drops an object with its last handle anyway.) */
static void expect_complete_or_gone(const char *kind, const char *name, int complete)
{
#ifndef _WIN32
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s.%s", kind, name);
    struct stat st;
    if (complete || stat(path, &st) != 0)
        return;
    /* One exception: a creator that could not take the init lock at all
     * cannot know that nobody else is making the object, so it leaves it
     * (empty: the next creator makes it, an attach finds nothing). */
    const char *failed = rq_fault_name(rq_fault_last());
    if (st.st_size == 0 && failed && strcmp(failed, "fcntl") == 0)
        return;
    fail_msg("a failed create left %s behind, never made (after %s failed)", path,
             failed ? failed : "?");
#else
    (void)kind;
    (void)name;
    (void)complete;
#endif
}

static void after_create(struct ctx *c, int rc)
{
    close_q(c, rc);
    if (rc != RQ_OK) {
        rq *o = NULL;
        int orc = rq_open(&o, c->name, RQ_OBSERVER, NULL);
        rq_close(o);
        expect_complete_or_gone("rq", c->name, orc == RQ_OK);
    }
    rq_unlink(c->name);
}

static int op_create(struct ctx *c)
{
    return rq_open(&c->q, c->name, RQ_PRODUCER, config_for(c));
}

static int op_open_existing_with_config(struct ctx *c)
{
    return rq_open(&c->q, c->name, RQ_PRODUCER, config_for(c));
}

static int op_attach_observer(struct ctx *c)
{
    return rq_open(&c->q, c->name, RQ_OBSERVER, NULL);
}

static int op_attach_producer(struct ctx *c)
{
    return rq_open(&c->q, c->name, RQ_PRODUCER, NULL);
}

static int op_attach_consumer(struct ctx *c)
{
    return rq_open(&c->q, c->name, RQ_CONSUMER, NULL);
}

static void setup_producer(struct ctx *c)
{
    c->q = attach(c->name, RQ_PRODUCER);
}

/* A producer, and an MPSC lock word left by a producer on slot 5, which
 * nobody holds: the push naps once, then probes the slot and recovers
 * (Linux; Windows' named mutex does not read the word). */
static void setup_producer_dead_owner(struct ctx *c)
{
    c->q = attach(c->name, RQ_PRODUCER);
    struct th_raw raw;
    th_raw_open(&raw, "rq", c->name);
    uint64_t dead = (UINT64_C(1) << 63) | UINT64_C(77) << 16 | 5;
    rq_store_seq_u64((rq_atomic_u64 *)(void *)((struct rq_shm *)raw.addr)->lock_area, dead);
    th_raw_close(&raw);
}

/* after_push, then the queue is emptied (checked against the model), so
 * that the next round's push never finds it full. */
static void after_push_drained(struct ctx *c, int rc);

static void setup_observer(struct ctx *c)
{
    c->q = attach(c->name, RQ_OBSERVER);
}

/* Pushes of the operation: the message it pushes is the model's next. */
static void after_push(struct ctx *c, int rc)
{
    if (rc == RQ_OK)
        model_push(c, c->next_seq);
    c->next_seq++;
    close_q(c, rc);
}

static void after_push_drained(struct ctx *c, int rc)
{
    after_push(c, rc);
    rq *cons = attach(c->name, RQ_CONSUMER);
    drain_checking_model(c, cons);
    rq_close(cons);
}

static int op_push(struct ctx *c)
{
    unsigned char buf[SLOT_SIZE];
    size_t len = th_msg_make(buf, sizeof buf, c->next_seq, 0);
    return rq_push(c->q, buf, len, 1000);
}

static int op_push_try(struct ctx *c)
{
    unsigned char buf[SLOT_SIZE];
    size_t len = th_msg_make(buf, sizeof buf, c->next_seq, 0);
    return rq_push(c->q, buf, len, 0);
}

static int op_reserve_commit(struct ctx *c)
{
    void *slot;
    int rc = rq_reserve(c->q, &slot, 1000);
    if (rc < 0)
        return rc;
    size_t len = th_msg_make(slot, SLOT_SIZE, c->next_seq, 0);
    return rq_commit(c->q, len);
}

static int op_stat(struct ctx *c)
{
    rq_stats st;
    int rc = rq_stat(c->q, &st);
    if (rc == RQ_OK && st.depth != c->model_n)
        fail_msg("rq_stat: depth %u, %u queued", st.depth, c->model_n);
    return rc;
}

/* ---- blocking: a child process wakes the operation ------------------------ */

#define WAKE_DELAY_MS 60

/* Child: after a moment, pushes message SEQ into NAME.  Arg "NAME,SEQ". */
static int child_push_later(const char *arg)
{
    char name[RQ_NAME_MAX + 1];
    unsigned long long seq;
    if (sscanf(arg, "%200[^,],%llu", name, &seq) != 2)
        return 90;
    th_sleep_us(WAKE_DELAY_MS * 1000u);
    rq *q = NULL;
    if (rq_open(&q, name, RQ_PRODUCER, NULL) != RQ_OK)
        return 91;
    unsigned char buf[SLOT_SIZE];
    size_t len = th_msg_make(buf, sizeof buf, seq, 0);
    int rc = rq_push(q, buf, len, 5000);
    rq_close(q);
    return rc == RQ_OK ? 0 : 92;
}

/* Child: after a moment, pops one message of NAME, which must be SEQ. */
static int child_pop_later(const char *arg)
{
    char name[RQ_NAME_MAX + 1];
    unsigned long long want;
    if (sscanf(arg, "%200[^,],%llu", name, &want) != 2)
        return 90;
    th_sleep_us(WAKE_DELAY_MS * 1000u);
    rq *q = NULL;
    if (rq_open(&q, name, RQ_CONSUMER, NULL) != RQ_OK)
        return 91;
    unsigned char buf[SLOT_SIZE];
    size_t len = 0;
    uint64_t seq;
    uint32_t stream;
    int rc = rq_pop(q, buf, sizeof buf, &len, 5000);
    rq_close(q);
    if (rc != RQ_OK)
        return 92;
    return th_msg_check(buf, len, &seq, &stream) == 0 && seq == want ? 0 : 93;
}

static th_pid spawn_with(const char *child, const char *name, uint64_t seq)
{
    char arg[RQ_NAME_MAX + 32];
    snprintf(arg, sizeof arg, "%s,%llu", name, (unsigned long long)seq);
    return th_spawn(child, arg, 20);
}

static void wait_child(struct ctx *c)
{
    int status;
    assert_int_equal(th_wait(c->child, 15000, &status), 0);
    if (!th_exited_ok(status))
        fail_msg("%s: child ended with status %d", c->name, status);
    c->child = 0;
}

/* Pop that must wait: the queue is emptied (checked against the model) and
 * a child pushes one message a moment later. */
static void setup_pop_blocking(struct ctx *c)
{
    c->q = attach(c->name, RQ_CONSUMER);
    drain_checking_model(c, c->q);
    c->child = spawn_with("child_push_later", c->name, c->next_seq);
}

static int op_pop_blocking(struct ctx *c)
{
    unsigned char buf[SLOT_SIZE];
    size_t len = 0;
    int rc = rq_pop(c->q, buf, sizeof buf, &len, 5000);
    uint64_t seq;
    uint32_t stream;
    if (rc == RQ_OK && (th_msg_check(buf, len, &seq, &stream) != 0 || seq != c->next_seq))
        fail_msg("blocking pop: a wrong or torn message");
    return rc;
}

static void after_pop_blocking(struct ctx *c, int rc)
{
    close_q(c, rc);
    wait_child(c);
    if (rc != RQ_OK)
        model_push(c, c->next_seq); /* the child's message waits in the queue */
    c->next_seq++;
}

/* Push (or reserve) that must wait: the queue is filled, and a child pops
 * the oldest message a moment later. */
static void setup_push_blocking(struct ctx *c)
{
    c->q = attach(c->name, RQ_PRODUCER);
    while (c->model_n < SLOTS) {
        push_seq(c->q, c->next_seq);
        model_push(c, c->next_seq++);
    }
    c->child = spawn_with("child_pop_later", c->name, c->model[0]);
}

static void after_push_blocking(struct ctx *c, int rc)
{
    close_q(c, rc);
    wait_child(c);
    (void)model_pop(c); /* the child took it (and checked it) */
    if (rc == RQ_OK)
        model_push(c, c->next_seq);
    c->next_seq++;
}

static int op_push_blocking(struct ctx *c)
{
    unsigned char buf[SLOT_SIZE];
    size_t len = th_msg_make(buf, sizeof buf, c->next_seq, 0);
    return rq_push(c->q, buf, len, 5000);
}

/* ---- unlink: a queue of its own each time --------------------------------- */

static void setup_unlink(struct ctx *c)
{
    /* A queue holding one message, kept open by an observer handle. */
    c->q = th_open(c->name, RQ_OBSERVER, SLOTS, SLOT_SIZE, 0);
    rq *prod = attach(c->name, RQ_PRODUCER);
    push_seq(prod, 7);
    rq_close(prod);
}

static int op_unlink(struct ctx *c)
{
    return rq_unlink(c->name);
}

static void after_unlink(struct ctx *c, int rc)
{
    rq *q = NULL;
#ifndef _WIN32
    if (rc == RQ_OK) {
        /* Gone by name; the open handle still works. */
        assert_int_equal(rq_open(&q, c->name, RQ_OBSERVER, NULL), RQ_ENOENT);
        rq_stats st;
        assert_int_equal(rq_stat(c->q, &st), RQ_OK);
        assert_int_equal(st.depth, 1);
        close_q(c, rc);
        return;
    }
#endif
    /* Still there, message and all. */
    rq *cons = attach(c->name, RQ_CONSUMER);
    assert_int_equal(pop_seq(cons, 0), 7);
    rq_close(cons);
    close_q(c, rc);
    rq_unlink(c->name);
    (void)q;
}

#ifndef _WIN32
/* ---- unlink under a live role (Linux: names can go while open) ----------- */

static void remove_lock_object(const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/rql.%s", name);
    (void)unlink(path);
}

static void setup_unlink_held(struct ctx *c)
{
    c->q = th_open(c->name, RQ_CONSUMER, SLOTS, SLOT_SIZE, 0);
}

/* The consumer holds its role: the lock object must stay (whether the
 * probe said so or failed), so a create beside it is refused. */
static void after_unlink_held(struct ctx *c, int rc)
{
    char path[300];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/rql.%s", c->name);
    assert_int_equal(stat(path, &st), 0);
    rq *p = NULL;
    rq_config cfg = {SLOTS, SLOT_SIZE, 0, 0};
    assert_int_equal(rq_open(&p, c->name, RQ_PRODUCER, &cfg), rc == RQ_OK ? RQ_EUNLINKED : RQ_OK);
    rq_close(p);
    close_q(c, rc);
    rq_unlink(c->name);
    remove_lock_object(c->name);
}

/* A consumer waits on a queue unlinked under it: RQ_EUNLINKED (taken as
 * success here) at the end of its first re-check slice. */
static void setup_wait_unlinked(struct ctx *c)
{
    c->q = th_open(c->name, RQ_CONSUMER, SLOTS, SLOT_SIZE, 0);
    assert_int_equal(rq_unlink(c->name), RQ_OK);
}

static int op_wait_unlinked(struct ctx *c)
{
    unsigned char buf[SLOT_SIZE];
    size_t len;
    int rc = rq_pop(c->q, buf, sizeof buf, &len, 5000);
    if (rc == RQ_OK || rc == RQ_ETIMEDOUT)
        fail_msg("a pop on an unlinked queue: %s", rq_errname(rc));
    return rc == RQ_EUNLINKED ? RQ_OK : rc;
}

static void after_wait_unlinked(struct ctx *c, int rc)
{
    close_q(c, rc);
    remove_lock_object(c->name);
}
#endif

/* ---- coalescing objects ------------------------------------------------- */

static rq_coalesce *coalesce_attach(const char *name, int role)
{
    rq_coalesce *c = NULL;
    int rc = rq_coalesce_attach(&c, name, role);
    if (rc != RQ_OK)
        fail_msg("coalesce attach %s as %d: %s", name, role, rq_errname(rc));
    return c;
}

static void close_coalesce(struct ctx *c, int rc)
{
    (void)rc;
    rq_coalesce_close(c->c);
    rq_coalesce_close(c->c2);
    c->c = c->c2 = NULL;
}

static int op_coalesce_create_requester(struct ctx *c)
{
    return rq_coalesce_open(&c->c, c->name, RQ_PRODUCER, 0);
}

static int op_coalesce_create_worker(struct ctx *c)
{
    return rq_coalesce_open(&c->c, c->name, RQ_CONSUMER, 0);
}

static int op_coalesce_create_observer(struct ctx *c)
{
    return rq_coalesce_open(&c->c, c->name, RQ_OBSERVER, 0);
}

static void after_coalesce_create(struct ctx *c, int rc)
{
    close_coalesce(c, rc);
    if (rc != RQ_OK) {
        rq_coalesce *o = NULL;
        int orc = rq_coalesce_attach(&o, c->name, RQ_OBSERVER);
        rq_coalesce_close(o);
        expect_complete_or_gone("rqc", c->name, orc == RQ_OK);
    }
    rq_coalesce_unlink(c->name);
}

static int op_coalesce_attach_worker(struct ctx *c)
{
    return rq_coalesce_attach(&c->c, c->name, RQ_CONSUMER);
}

static int op_coalesce_attach_requester(struct ctx *c)
{
    return rq_coalesce_attach(&c->c, c->name, RQ_PRODUCER);
}

static void setup_coalesce_requester(struct ctx *c)
{
    c->c = coalesce_attach(c->name, RQ_PRODUCER);
}

static int op_coalesce_request(struct ctx *c)
{
    return rq_coalesce_request(c->c);
}

static void after_coalesce_request(struct ctx *c, int rc)
{
    if (rc == RQ_OK)
        c->requests++;
    close_coalesce(c, rc);
}

/* Child: the worker.  Waits up to 10 s for one round and finishes it. */
static int child_coalesce_worker(const char *name)
{
    rq_coalesce *w = NULL;
    if (rq_coalesce_attach(&w, name, RQ_CONSUMER) != RQ_OK)
        return 91;
    uint64_t ticket;
    int rc = rq_coalesce_wait(w, &ticket, 10000);
    if (rc == RQ_OK)
        rc = rq_coalesce_done(w, ticket);
    rq_coalesce_close(w);
    return rc == RQ_OK ? 0 : 92;
}

/* Child: after a moment, makes one request. */
static int child_coalesce_request_later(const char *name)
{
    th_sleep_us(WAKE_DELAY_MS * 1000u);
    rq_coalesce *r = NULL;
    if (rq_coalesce_attach(&r, name, RQ_PRODUCER) != RQ_OK)
        return 91;
    int rc = rq_coalesce_request(r);
    rq_coalesce_close(r);
    return rc == RQ_OK ? 0 : 92;
}

/* A request to a sleeping worker: the one request that makes a system
 * call (the worker announced its sleep in the word). */
static void setup_coalesce_sleeping_worker(struct ctx *c)
{
    c->c = coalesce_attach(c->name, RQ_PRODUCER);
    c->c2 = coalesce_attach(c->name, RQ_OBSERVER);
    c->child = th_spawn("child_coalesce_worker", c->name, 20);
    uint64_t until = th_now_ms() + 10000;
    for (;;) {
        rq_coalesce_stats st;
        assert_int_equal(rq_coalesce_stat(c->c2, &st), RQ_OK);
        if (st.waiting && st.worker_live)
            break;
        if (th_now_ms() > until)
            fail_msg("the worker never went to sleep");
        th_sleep_us(2000);
    }
}

static void after_coalesce_sleeping_worker(struct ctx *c, int rc)
{
    if (rc != RQ_OK) /* the worker still waits: give it its round */
        assert_int_equal(rq_coalesce_request(c->c), RQ_OK);
    c->requests++;
    wait_child(c);
    close_coalesce(c, rc);
}

/* A wait that must sleep: a child requests a moment later. */
static void setup_coalesce_wait(struct ctx *c)
{
    c->c = coalesce_attach(c->name, RQ_CONSUMER);
    c->child = th_spawn("child_coalesce_request_later", c->name, 20);
}

static int op_coalesce_wait(struct ctx *c)
{
    uint64_t ticket;
    int rc = rq_coalesce_wait(c->c, &ticket, 5000);
    if (rc == RQ_OK)
        assert_int_equal(rq_coalesce_done(c->c, ticket), RQ_OK);
    return rc;
}

static void after_coalesce_wait(struct ctx *c, int rc)
{
    wait_child(c);
    c->requests++;
    close_coalesce(c, rc);
}

/* done makes no OS call: one clean run proves it. */
static void setup_coalesce_done(struct ctx *c)
{
    c->c2 = coalesce_attach(c->name, RQ_PRODUCER);
    assert_int_equal(rq_coalesce_request(c->c2), RQ_OK);
    c->requests++;
    c->c = coalesce_attach(c->name, RQ_CONSUMER);
}

static int op_coalesce_done(struct ctx *c)
{
    uint64_t ticket;
    assert_int_equal(rq_coalesce_wait(c->c, &ticket, 0), RQ_OK);
    return rq_coalesce_done(c->c, ticket);
}

static void setup_coalesce_unlink(struct ctx *c)
{
    assert_int_equal(rq_coalesce_open(&c->c, c->name, RQ_OBSERVER, 0), RQ_OK);
}

static int op_coalesce_unlink(struct ctx *c)
{
    return rq_coalesce_unlink(c->name);
}

static void after_coalesce_unlink(struct ctx *c, int rc)
{
#ifndef _WIN32
    if (rc == RQ_OK) {
        rq_coalesce *x = NULL;
        assert_int_equal(rq_coalesce_attach(&x, c->name, RQ_OBSERVER), RQ_ENOENT);
    }
#else
    (void)rc;
#endif
    close_coalesce(c, rc);
    rq_coalesce_unlink(c->name);
}

/* The coalescing object is undamaged: the requests all counted, at most
 * one round owed, and a request -> round -> done round trip works. */
static void verify_coalesce(struct ctx *c, int fresh)
{
    rq_coalesce *w = NULL, *r = NULL;
    if (fresh) {
        assert_int_equal(rq_coalesce_open(&w, c->name, RQ_CONSUMER, 0), RQ_OK);
    } else {
        w = coalesce_attach(c->name, RQ_CONSUMER);
    }
    uint64_t ticket;
    int rc = rq_coalesce_wait(w, &ticket, 0);
    if (rc == RQ_OK)
        assert_int_equal(rq_coalesce_done(w, ticket), RQ_OK);
    else
        assert_int_equal(rc, RQ_EAGAIN);
    rq_coalesce_stats st;
    assert_int_equal(rq_coalesce_stat(w, &st), RQ_OK);
    if (!fresh && st.requests != c->requests)
        fail_msg("%s: %llu requests counted, %llu made", c->name, (unsigned long long)st.requests,
                 (unsigned long long)c->requests);
    assert_int_equal(st.owed, 0);
    r = coalesce_attach(c->name, RQ_PRODUCER);
    assert_int_equal(rq_coalesce_request(r), RQ_OK);
    c->requests++;
    assert_int_equal(rq_coalesce_wait(w, &ticket, 0), RQ_OK);
    assert_int_equal(rq_coalesce_done(w, ticket), RQ_OK);
    assert_int_equal(rq_coalesce_wait(w, &ticket, 0), RQ_EAGAIN);
    rq_coalesce_close(r);
    rq_coalesce_close(w);
    if (fresh)
        rq_coalesce_unlink(c->name);
}

/* A failed create leaves nothing that keeps the next from working. */
static void verify_fresh_queue(struct ctx *c)
{
    rq *prod = NULL;
    assert_int_equal(rq_open(&prod, c->name, RQ_PRODUCER, config_for(c)), RQ_OK);
    rq *cons = attach(c->name, RQ_CONSUMER);
    push_seq(prod, 42);
    assert_int_equal(pop_seq(cons, 0), 42);
    rq_close(cons);
    rq_close(prod);
    rq_unlink(c->name);
}

static void verify(const struct scenario *sc, struct ctx *c)
{
    if (sc->coalescing)
        verify_coalesce(c, sc->fresh);
    else if (sc->fresh)
        verify_fresh_queue(c);
    else if (sc->op == op_unlink && sc->after == after_unlink)
        ; /* after_unlink checked it */
    else
        verify_queue(c);
}

/* ---- the scenarios ------------------------------------------------------ */

/* What an operation may absorb: a lost wake-up (the sleeper re-checks at
 * least once a second; a poller's wait is bounded by rq_poll_timeout, and
 * an open signals a poller of the other side, if any), and a missing asymmetric fence (a new queue
 * then uses full fences; a waiter then naps instead of sleeping long). */
#ifdef _WIN32
#define ABSORBS_WAKE "|OpenEventW|SetEvent|"
#define ABSORBS_WAKE_AND_FENCE ABSORBS_WAKE
#else
#define ABSORBS_WAKE "|futex_wake|fifo_open|fifo_write|"
#define ABSORBS_WAKE_AND_FENCE "|futex_wake|fifo_open|fifo_write|membarrier|"
#endif
/* rq_unlink removes the lock object after the segment, if no lock in it
 * is held: if that probe or the removal fails the queue is gone all the
 * same and the stray lock object is reused. */
#define ABSORBS_LOCK_UNLINK "|shm_unlink_locks|shm_open_probe|fcntl_probe|"

static const struct scenario queue_scenarios[] = {
    {"rq_open create (producer)", "f.create", 0, 0, 1, NULL, op_create, after_create,
     ABSORBS_WAKE_AND_FENCE},
    {"rq_open create MPSC (producer)", "f.createm", 0, RQ_MPSC, 1, NULL, op_create, after_create,
     ABSORBS_WAKE_AND_FENCE},
    {"rq_open existing, with config (producer)", "f.exist", 0, 0, 0, NULL,
     op_open_existing_with_config, close_q, ABSORBS_WAKE},
    {"rq_open attach observer", "f.obs", 0, 0, 0, NULL, op_attach_observer, close_q, ""},
    {"rq_open attach producer", "f.prod", 0, 0, 0, NULL, op_attach_producer, close_q, ABSORBS_WAKE},
    {"rq_open attach consumer", "f.cons", 0, 0, 0, NULL, op_attach_consumer, close_q, ABSORBS_WAKE},
    {"rq_open attach MPSC producer", "f.mprod", 0, RQ_MPSC, 0, NULL, op_attach_producer, close_q,
     ABSORBS_WAKE},
    {"rq_open attach MPSC consumer", "f.mcons", 0, RQ_MPSC, 0, NULL, op_attach_consumer, close_q,
     ABSORBS_WAKE},
    {"rq_pop that blocks, woken by a push", "f.popw", 0, 0, 0, setup_pop_blocking, op_pop_blocking,
     after_pop_blocking, ABSORBS_WAKE_AND_FENCE},
    {"rq_push that blocks, woken by a pop", "f.pushw", 0, 0, 0, setup_push_blocking,
     op_push_blocking, after_push_blocking, ABSORBS_WAKE_AND_FENCE},
    {"rq_push MPSC (lock, timeout 1 s)", "f.mpush", 0, RQ_MPSC, 0, setup_producer, op_push,
     after_push, ABSORBS_WAKE},
    {"rq_push MPSC (lock, no wait)", "f.mpush0", 0, RQ_MPSC, 0, setup_producer, op_push_try,
     after_push, ABSORBS_WAKE},
    {"rq_push MPSC, lock left by a dead owner (nap, probe)", "f.mdead", 0, RQ_MPSC, 0,
     setup_producer_dead_owner, op_push, after_push_drained, ABSORBS_WAKE_AND_FENCE},
    {"rq_reserve + rq_commit", "f.resv", 0, 0, 0, setup_producer, op_reserve_commit, after_push,
     ABSORBS_WAKE},
    {"rq_reserve that blocks, + rq_commit", "f.resvw", 0, 0, 0, setup_push_blocking,
     op_reserve_commit, after_push_blocking, ABSORBS_WAKE_AND_FENCE},
    {"rq_reserve + rq_commit MPSC", "f.mresv", 0, RQ_MPSC, 0, setup_producer, op_reserve_commit,
     after_push, ABSORBS_WAKE},
    {"rq_stat (observer: probes both roles)", "f.stat", 0, 0, 0, setup_observer, op_stat, close_q,
     ""},
    {"rq_unlink", "f.unlink", 0, 0, 1, setup_unlink, op_unlink, after_unlink, ABSORBS_LOCK_UNLINK},
#ifndef _WIN32
    {"rq_unlink while a consumer holds its role", "f.unlinkh", 0, 0, 1, setup_unlink_held,
     op_unlink, after_unlink_held, ABSORBS_LOCK_UNLINK},
    {"rq_pop waiting on an unlinked queue", "f.orphan", 0, 0, 1, setup_wait_unlinked,
     op_wait_unlinked, after_wait_unlinked, ABSORBS_WAKE_AND_FENCE},
#endif
};

static const struct scenario coalesce_scenarios[] = {
    {"rq_coalesce_open create (requester)", "f.ccreq", 1, 0, 1, NULL, op_coalesce_create_requester,
     after_coalesce_create, ""},
    {"rq_coalesce_open create (worker)", "f.ccwrk", 1, 0, 1, NULL, op_coalesce_create_worker,
     after_coalesce_create, ""},
    {"rq_coalesce_open create (observer)", "f.ccobs", 1, 0, 1, NULL, op_coalesce_create_observer,
     after_coalesce_create, ""},
    {"rq_coalesce_attach worker", "f.cawrk", 1, 0, 0, NULL, op_coalesce_attach_worker,
     close_coalesce, ""},
    {"rq_coalesce_attach requester", "f.careq", 1, 0, 0, NULL, op_coalesce_attach_requester,
     close_coalesce, ""},
    {"rq_coalesce_request, worker idle and awake", "f.creq", 1, 0, 0, setup_coalesce_requester,
     op_coalesce_request, after_coalesce_request, ""},
    {"rq_coalesce_request, worker asleep", "f.creqw", 1, 0, 0, setup_coalesce_sleeping_worker,
     op_coalesce_request, after_coalesce_sleeping_worker, ABSORBS_WAKE},
    {"rq_coalesce_wait that blocks, woken", "f.cwait", 1, 0, 0, setup_coalesce_wait,
     op_coalesce_wait, after_coalesce_wait, ""},
    {"rq_coalesce_wait + rq_coalesce_done", "f.cdone", 1, 0, 0, setup_coalesce_done,
     op_coalesce_done, close_coalesce, ""},
    {"rq_coalesce_unlink", "f.cunlink", 1, 0, 1, setup_coalesce_unlink, op_coalesce_unlink,
     after_coalesce_unlink, ABSORBS_LOCK_UNLINK},
};

static const struct fault_pass plain_failure = {INJECTED_ERROR, ""};

static void test_queue_operations_survive_every_failing_call(void **state)
{
    (void)state;
    unsigned long sum = 0;
    for (size_t i = 0; i < sizeof queue_scenarios / sizeof *queue_scenarios; i++)
        sum += run_scenario(&queue_scenarios[i], &plain_failure);
    /* Opens alone make a dozen failable calls: a total near zero would
     * mean the injection is not reaching the OS calls at all. */
    assert_true(sum >= 50);
}

static void test_coalesce_operations_survive_every_failing_call(void **state)
{
    (void)state;
    unsigned long sum = 0;
    for (size_t i = 0; i < sizeof coalesce_scenarios / sizeof *coalesce_scenarios; i++)
        sum += run_scenario(&coalesce_scenarios[i], &plain_failure);
    assert_true(sum >= 20);
}

#ifndef _WIN32
/* EINTR: a lock request is made again, and an interrupted sleep is a
 * spurious wake-up (the caller re-checks).  Every other call interrupted
 * is RQ_ESYS with errno EINTR. */
static void test_interrupted_calls_are_retried_or_reported(void **state)
{
    (void)state;
    static const struct fault_pass interrupted = {EINTR, "|fcntl|futex_wait|"};
    unsigned long before = rq_fault_calls(rq_fault_lookup("fcntl"));
    for (size_t i = 0; i < sizeof queue_scenarios / sizeof *queue_scenarios; i++)
        run_scenario(&queue_scenarios[i], &interrupted);
    for (size_t i = 0; i < sizeof coalesce_scenarios / sizeof *coalesce_scenarios; i++)
        run_scenario(&coalesce_scenarios[i], &interrupted);
    assert_true(rq_fault_calls(rq_fault_lookup("fcntl")) > before);
}
#endif

/* ---- the instruments are checked too ------------------------------------ */

/* The leak check sees a leaked descriptor/handle and a leaked mapping. */
static void test_leak_check_sees_a_leak(void **state)
{
    (void)state;
    const char *name = th_name("f.leak");
    struct os_snapshot before = os_snapshot();
    rq *q = th_open(name, RQ_OBSERVER, SLOTS, SLOT_SIZE, 0);
    struct os_snapshot open_now = os_snapshot();
    assert_true(open_now.handles > before.handles);
    assert_true(open_now.mappings > before.mappings);
    rq_close(q);
    struct os_snapshot after = os_snapshot();
    assert_int_equal(after.handles, before.handles);
    assert_int_equal(after.mappings, before.mappings);
    rq_unlink(name);
}

/* Per-call counting: the N-th call of one named call fails, and the
 * operation fails with exactly the injected error. */
static void test_nth_call_of_a_named_call_fails(void **state)
{
    (void)state;
#ifdef _WIN32
    const char *map_call = "MapViewOfFile";
#else
    const char *map_call = "mmap";
#endif
    int map = rq_fault_lookup(map_call);
    assert_true(map >= 0);
    assert_string_equal(rq_fault_name(map), map_call);
    assert_int_equal(rq_fault_lookup("no_such_call"), -1);
    const char *name = th_name("f.named");
    rq *keep = th_create(name, SLOTS, SLOT_SIZE, 0);
    /* A clean attach maps twice at least: the header, then the whole. */
    unsigned long maps_before = rq_fault_calls(map);
    rq *q = attach(name, RQ_OBSERVER);
    unsigned long maps_per_open = rq_fault_calls(map) - maps_before;
    assert_true(maps_per_open >= 2);
    rq_close(q);
    for (unsigned long nth = 1; nth <= maps_per_open; nth++) {
        unsigned long injected = rq_fault_injected();
        rq_fault_arm(map, nth, INJECTED_ERROR);
        os_error_clear();
        q = (rq *)1;
        int rc = rq_open(&q, name, RQ_OBSERVER, NULL);
        unsigned long err = os_error();
        rq_fault_disarm();
        assert_int_equal(rc, RQ_ESYS);
        assert_int_equal(err, INJECTED_ERROR);
        assert_null(q);
        assert_int_equal(rq_fault_injected(), injected + 1);
        assert_int_equal(rq_fault_last(), map);
    }
    /* Disarmed: nothing fails any more. */
    q = attach(name, RQ_OBSERVER);
    rq_close(q);
    rq_close(keep);
    rq_unlink(name);
}

static int print_total(void **state)
{
    (void)state;
    print_message("test_faults: %lu injected OS-call failures checked\n", total_injected);
    return 0;
}

/* ---- the barrier of a long wait, counted ------------------------------ */

/* A peer that pops (for a waiting producer) or pushes (for a waiting
 * consumer) after DELAY_US. */
struct late_peer {
    rq *q;             /* the peer's handle */
    int pop;           /* 1: it pops (the waiter is the producer), 0: it pushes */
    uint64_t waits;    /* the waiter's sleeps before its call */
    unsigned delay_us; /* from the waiter's registration to the peer's call */
    int rc;            /* of the peer's call, checked by the main thread */
};

/* The sleeps of the producers (PRODUCER) or of the consumer so far, or
 * UINT64_MAX if rq_stat fails. */
static uint64_t sleeps_of(rq *q, int producer)
{
    rq_stats st;
    if (rq_stat(q, &st) != RQ_OK)
        return UINT64_MAX;
    return producer ? st.producer_waits : st.consumer_waits;
}

/* Waits until the waiter has registered for its sleep (its count of
 * sleeps moved, at most 5 s), then DELAY_US, then pushes or pops. */
static void *late_peer_main(void *arg)
{
    struct late_peer *l = arg;
    char buf[SLOT_SIZE];
    size_t len;
    uint64_t until = th_now_ms() + 5000;
    while (sleeps_of(l->q, l->pop) == l->waits && th_now_ms() < until)
        th_sleep_us(20);
    th_sleep_us(l->delay_us);
    l->rc = l->pop ? rq_pop(l->q, buf, sizeof buf, &len, 0) : rq_push(l->q, "y", 1, 0);
    return NULL;
}

/* Calls of the OS call CALL made by a blocking wait, rq_pop on an empty
 * queue or rq_push on a full one (PRODUCER), of FLAGS.  PEER_DELAY_US 0:
 * nobody ends it, and it times out after 50 ms (many naps long, so it goes
 * on past the first one); else a peer thread pushes or pops that long
 * after the waiter registered, and the wait succeeds. */
static unsigned long calls_of_a_wait(const char *call, int producer, uint32_t flags,
                                     unsigned peer_delay_us)
{
    const char *name = th_name("f.fence");
    rq *p = th_open(name, RQ_PRODUCER, 1, SLOT_SIZE, flags);
    rq *c = th_open(name, RQ_CONSUMER, 1, SLOT_SIZE, flags);
    char buf[SLOT_SIZE];
    size_t len;
    if (producer)
        assert_int_equal(rq_push(p, "x", 1, 0), RQ_OK); /* full */
    rq *peer = producer ? c : p;
    struct late_peer l = {peer, producer, sleeps_of(peer, producer), peer_delay_us, -1};
    pthread_t t;
    memset(&t, 0, sizeof t); /* joined only if started */
    int id = rq_fault_lookup(call);
    unsigned long before = rq_fault_calls(id);
    if (peer_delay_us)
        assert_int_equal(pthread_create(&t, NULL, late_peer_main, &l), 0);
    int timeout_ms = peer_delay_us ? 1000 : 50;
    int rc =
        producer ? rq_push(p, "y", 1, timeout_ms) : rq_pop(c, buf, sizeof buf, &len, timeout_ms);
    unsigned long made = rq_fault_calls(id) - before;
    if (peer_delay_us) {
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(l.rc, RQ_OK);
    }
    assert_int_equal(rc, peer_delay_us ? RQ_OK : RQ_ETIMEDOUT);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
    return made;
}

/* Without full fences the publisher stores without a fence, and only the
 * sleeper's system-wide barrier (membarrier) keeps it from missing the
 * sleeper's registration: a wait that outlasts the unfenced first nap
 * must run it before it sleeps on.  A queue with RQ_FULL_FENCES never
 * does.  (The race the barrier closes is too narrow to provoke from a
 * test; this checks that the step is there, and model/fence.pml that it
 * is needed.) */
static void test_a_long_wait_runs_the_barrier(void **state)
{
    (void)state;
    if (rq_fault_lookup("membarrier") < 0) {
        /* No cross-process barrier on this OS: every queue has full
         * fences, and no wait may count on one. */
        const char *name = th_name("f.fence");
        rq *q = th_open(name, RQ_OBSERVER, 1, SLOT_SIZE, 0);
        rq_stats st;
        assert_int_equal(rq_stat(q, &st), RQ_OK);
        assert_true((st.flags & RQ_FULL_FENCES) != 0);
        rq_close(q);
        rq_unlink(name);
        return;
    }
    unsigned long consumer = calls_of_a_wait("membarrier", 0, 0, 0);
    unsigned long producer = calls_of_a_wait("membarrier", 1, 0, 0);
    unsigned long consumer_full = calls_of_a_wait("membarrier", 0, RQ_FULL_FENCES, 0);
    unsigned long producer_full = calls_of_a_wait("membarrier", 1, RQ_FULL_FENCES, 0);
    print_message("membarrier calls of a 50 ms wait: consumer %lu, producer %lu; with full fences "
                  "%lu, %lu\n",
                  consumer, producer, consumer_full, producer_full);
    if (consumer < 1 || producer < 1)
        fail_msg("a wait past the first nap slept without the barrier (consumer %lu, producer "
                 "%lu membarrier calls): a publisher's unfenced store can miss it",
                 consumer, producer);
    assert_int_equal(consumer_full, 0);
    assert_int_equal(producer_full, 0);
    /* and the sleeps were real sleeps, not a spin */
    assert_true(calls_of_a_wait("futex_wait", 0, 0, 0) >= 2);
}

/* The first nap of a wait differs by side (deadline.h): the consumer's
 * (5 ms) outlasts a sender's gap of a millisecond or two, so a message
 * pushed 2 ms after the consumer registered ends it and no barrier is run;
 * a producer's is 1 ms (a release signals only from full, so a producer
 * that missed it waits out its nap), and a slot freed 3 ms after the
 * producer registered finds it past its nap, after the barrier.  Each half
 * tries again while the machine ran a side too late for the timing to
 * mean anything (a peer's call late past the consumer's nap, a producer
 * whose nap had not ended); with the wrong nap every try fails. */
static void test_first_nap_is_longer_for_the_consumer(void **state)
{
    (void)state;
    if (rq_fault_lookup("membarrier") < 0) {
        print_message("no cross-process barrier on this OS: every queue has full fences, "
                      "and no wait naps (test_a_long_wait_runs_the_barrier checks that)\n");
        return;
    }
    unsigned long consumer = 1, producer = 0;
    int tries = 0;
    for (; tries < 20 && consumer != 0; tries++)
        consumer = calls_of_a_wait("membarrier", 0, 0, 2000);
    print_message("consumer: %lu membarrier calls (try %d)\n", consumer, tries);
    assert_int_equal(consumer, 0);
    for (tries = 0; tries < 20 && producer == 0; tries++)
        producer = calls_of_a_wait("membarrier", 1, 0, 3000);
    print_message("producer: %lu membarrier calls (try %d)\n", producer, tries);
    assert_true(producer >= 1);
}

/* ---- a signal that lands between the last check and the sleep --------- */

struct racing_peer {
    rq *peer; /* the other side's handle, used from inside the wait */
    int rc;   /* what its call returned */
};

static void racing_push(void *arg)
{
    struct racing_peer *r = arg;
    r->rc = rq_push(r->peer, "x", 1, 0); /* publishes, sees the waiter, signals */
}

static void racing_pop(void *arg)
{
    struct racing_peer *r = arg;
    char buf[SLOT_SIZE];
    size_t len;
    r->rc = rq_pop(r->peer, buf, sizeof buf, &len, 0);
}

/* The waiter has registered and found nothing; before its sleep starts,
 * the peer publishes and signals (run from inside the wait, just before
 * the system call that sleeps).  The sleep must not start: the signal
 * moved the event's seq, which the sleep compares with the value read
 * before the check.  Otherwise the waiter sleeps until its 1 s re-check
 * and counts a missed wake.  With the asymmetric fence the first sleep is
 * the unfenced nap, so the peer lands before the second one, the long sleep. */
static void signal_racing_the_sleep(int producer_waits, uint32_t flags)
{
    int wait_call = rq_fault_lookup("futex_wait");
    const char *name = th_name("f.race");
    rq *p = th_open(name, RQ_PRODUCER, 1, SLOT_SIZE, flags);
    rq *c = th_open(name, RQ_CONSUMER, 1, SLOT_SIZE, flags);
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    unsigned long nth = (st.flags & RQ_FULL_FENCES) ? 1 : 2;
    struct racing_peer r = {producer_waits ? c : p, -1};
    char buf[SLOT_SIZE];
    size_t len;
    if (producer_waits)
        assert_int_equal(rq_push(p, "full", 4, 0), RQ_OK);
    rq_fault_before(wait_call, nth, producer_waits ? racing_pop : racing_push, &r);
    uint64_t t0 = th_now_ms();
    int rc = producer_waits ? rq_push(p, "y", 1, 5000) : rq_pop(c, buf, sizeof buf, &len, 5000);
    uint64_t took = th_now_ms() - t0;
    rq_fault_reset();
    assert_int_equal(rc, RQ_OK);
    assert_int_equal(r.rc, RQ_OK); /* the peer did act inside the wait */
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    if (st.producer_missed_wakes + st.consumer_missed_wakes != 0 || took >= 900)
        fail_msg("%s waiting%s: a signal sent between its last check and its sleep was lost "
                 "(the call took %llu ms, missed wakes p/c %llu/%llu)",
                 producer_waits ? "producer" : "consumer",
                 (flags & RQ_FULL_FENCES) ? ", full fences" : "", (unsigned long long)took,
                 (unsigned long long)st.producer_missed_wakes,
                 (unsigned long long)st.consumer_missed_wakes);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

static void test_a_signal_racing_the_sleep_is_not_lost(void **state)
{
    (void)state;
    if (rq_fault_lookup("futex_wait") < 0)
        skip(); /* Windows: its waits are named events (test_platform_win) */
    for (int producer_waits = 0; producer_waits < 2; producer_waits++) {
        signal_racing_the_sleep(producer_waits, 0);
        signal_racing_the_sleep(producer_waits, RQ_FULL_FENCES);
    }
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_CHILD(child_push_later),
        TH_CHILD(child_pop_later),
        TH_CHILD(child_coalesce_worker),
        TH_CHILD(child_coalesce_request_later),
    };
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leak_check_sees_a_leak),
        cmocka_unit_test(test_nth_call_of_a_named_call_fails),
        cmocka_unit_test(test_a_long_wait_runs_the_barrier),
        cmocka_unit_test(test_first_nap_is_longer_for_the_consumer),
        cmocka_unit_test(test_a_signal_racing_the_sleep_is_not_lost),
        cmocka_unit_test(test_queue_operations_survive_every_failing_call),
        cmocka_unit_test(test_coalesce_operations_survive_every_failing_call),
#ifndef _WIN32
        cmocka_unit_test(test_interrupted_calls_are_retried_or_reported),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, print_total);
}
