/*
 * helpers.c - shared test helpers (see helpers.h).
 *
 * The OS-specific part of the process handling (starting, waiting for and
 * killing children, the watchdog, sleeping) is in spawn_posix.c and
 * spawn_win.c behind spawn_os.h, as src/ keeps OS code in its platform files;
 * everything here is the same on both systems.
 */
#include "helpers.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef _WIN32
#include <dirent.h>
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <cmocka.h>

#include "crashpoint.h"
#include "platform.h"
#include "records.h"
#include "spawn_os.h"

#ifdef RQ_COVERAGE
void __gcov_dump(void); /* libgcov, in the coverage preset's build */
#endif

/* ---- portable odds and ends -------------------------------------------- */

int64_t th_getpid(void)
{
    return rq_plat_pid();
}

uint64_t th_now_ms(void)
{
    return rq_plat_now_ms();
}

void th_pause(void)
{
    for (;;)
        th_sleep_us(1000000u);
}

uint64_t th_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15u;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

const char *th_name(const char *tag)
{
    static char names[16][96];
    static unsigned counter;
    char *buf = names[counter % 16];
    snprintf(buf, sizeof names[0], "t.%lld.%u.%s", (long long)th_getpid(), counter++, tag);
    rq_unlink(buf);
    return buf;
}

static uint32_t fnv1a(uint32_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t msg_sum(const unsigned char *buf, size_t len)
{
    uint32_t h = fnv1a(2166136261u, buf, 12);
    uint64_t len64 = len; /* the same bytes on every system */
    h = fnv1a(h, &len64, sizeof len64);
    return fnv1a(h, buf + TH_MSG_MIN, len - TH_MSG_MIN);
}

size_t th_msg_make(void *out, size_t cap, uint64_t seq, uint32_t stream)
{
    unsigned char *buf = out;
    size_t len = TH_MSG_MIN;
    if (cap > TH_MSG_MIN)
        len += (size_t)((seq * 2654435761u) % (cap - TH_MSG_MIN + 1));
    memcpy(buf, &seq, 8);
    memcpy(buf + 8, &stream, 4);
    for (size_t i = TH_MSG_MIN; i < len; i++)
        buf[i] = (unsigned char)(seq * 31u + i);
    uint32_t sum = msg_sum(buf, len);
    memcpy(buf + 12, &sum, 4);
    return len;
}

int th_msg_check(const void *in, size_t len, uint64_t *seq, uint32_t *stream)
{
    const unsigned char *buf = in;
    if (len < TH_MSG_MIN)
        return -1;
    uint32_t sum;
    memcpy(&sum, buf + 12, 4);
    if (sum != msg_sum(buf, len))
        return -1;
    memcpy(seq, buf, 8);
    memcpy(stream, buf + 8, 4);
    for (size_t i = TH_MSG_MIN; i < len; i++)
        if (buf[i] != (unsigned char)(*seq * 31u + i))
            return -1;
    return 0;
}

rq *th_open(const char *name, int role, uint32_t slots, uint32_t slot_size, uint32_t flags)
{
    rq_config cfg = {slots, slot_size, flags, 0};
    rq *q = NULL;
    int rc = rq_open(&q, name, role, &cfg);
    if (rc != RQ_OK)
        fail_msg("rq_open(%s, %d): %s", name, role, rq_strerror(rc));
    return q;
}

rq *th_keep_alive(const char *name)
{
#ifdef _WIN32
    rq *q = NULL;
    int rc = rq_open(&q, name, RQ_OBSERVER, NULL);
    if (rc != RQ_OK)
        fail_msg("keeping %s alive: %s", name, rq_strerror(rc));
    return q;
#else
    (void)name;
    return NULL;
#endif
}

rq *th_create(const char *name, uint32_t slots, uint32_t slot_size, uint32_t flags)
{
    rq *made = th_open(name, RQ_OBSERVER, slots, slot_size, flags);
    rq *keep = th_keep_alive(name);
    rq_close(made);
    return keep;
}

struct th_pair th_pair_open(const char *tag, uint32_t slots, uint32_t slot_size, uint32_t flags)
{
    struct th_pair q;
    q.name = th_name(tag);
    q.keep = th_create(q.name, slots, slot_size, flags);
    q.p = th_open(q.name, RQ_PRODUCER, slots, slot_size, flags);
    q.c = th_open(q.name, RQ_CONSUMER, slots, slot_size, flags);
    return q;
}

void th_pair_close(struct th_pair *q)
{
    rq_close(q->p);
    rq_close(q->c);
    rq_close(q->keep);
    rq_unlink(q->name);
}

void th_fill_tagged(void *buf, size_t len, unsigned tag)
{
    unsigned char *b = buf;
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)(tag * 7u + i);
}

void th_expect_pop_tagged(rq *c, size_t len, unsigned tag)
{
    unsigned char buf[4096], want[4096];
    size_t got = 0;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &got, 0), RQ_OK);
    assert_int_equal(got, len);
    th_fill_tagged(want, len, tag);
    assert_memory_equal(buf, want, len);
}

void th_expect_lock_holder(rq *q, int64_t pid, int reserving)
{
    rq_stats st;
    assert_int_equal(rq_stat(q, &st), RQ_OK);
    if (pid == TH_ANOTHER_PROCESS) {
        assert_true(st.lock_holder_pid > 0 && st.lock_holder_pid != th_getpid());
    } else {
        assert_int_equal(st.lock_holder_pid, pid);
    }
    if (pid == 0) {
        assert_int_equal(st.lock_reserving, 0);
        assert_int_equal(st.lock_held_ms, -1);
    } else {
        assert_int_equal(st.lock_reserving, reserving);
    }
}

unsigned long th_kill_count(const char *what, unsigned long default_posix,
                            unsigned long default_windows)
{
#ifdef _WIN32
    unsigned long n = default_windows;
    const char *os = "Windows default";
    (void)default_posix;
#else
    unsigned long n = default_posix;
    const char *os = "Linux default";
    (void)default_windows;
#endif
    const char *env = getenv("RQ_TEST_KILLS");
    if (env && *env) {
        n = strtoul(env, NULL, 10);
        os = "RQ_TEST_KILLS";
    }
    print_message("%s: %lu kills (%s)\n", what, n, os);
    return n;
}

/* ---- shared scratch memory --------------------------------------------- */

/* One named segment per test run ("rqt.th.<parent pid>"), made by the
 * parent in th_init; children map it from the name in RQ_TH_ARENA.  A
 * small table at its start maps keys to blocks. */
#define ARENA_SIZE (1u << 20)
#define ARENA_KEYS 32
#define ARENA_ENV "RQ_TH_ARENA"
#define ARENA_KIND "rqt"

struct arena {
    uint32_t used; /* bytes handed out, from the first block on */
    uint32_t keys;
    struct {
        char key[32];
        uint32_t offset, size;
    } entry[ARENA_KEYS];
};

static struct arena *arena;
static rq_plat_segment *arena_seg;
static char arena_name[64];
static int arena_owner;

static void arena_unlink(void)
{
    if (arena_owner)
        rq_plat_segment_unlink(ARENA_KIND, arena_name);
}

static void arena_attach(const char *name, int create)
{
    int created;
    snprintf(arena_name, sizeof arena_name, "%s", name);
    int rc = rq_plat_segment_open(&arena_seg, ARENA_KIND, arena_name, create ? RQ_PLAT_CREATE : 0,
                                  0600, &created);
    if (rc == RQ_OK && create)
        rc = rq_plat_segment_resize(arena_seg, ARENA_SIZE);
    void *addr = NULL;
    if (rc == RQ_OK)
        rc = rq_plat_segment_map(arena_seg, ARENA_SIZE, &addr);
    if (rc != RQ_OK) {
        fprintf(stderr, "test harness: shared memory %s: %s\n", name, rq_strerror(rc));
        exit(98);
    }
    arena = addr;
    if (create) {
        arena_owner = 1;
        atexit(arena_unlink);
    }
}

static void *arena_get(const char *key, size_t size, int zero)
{
    if (!arena) {
        fail_msg("th_shared(%s) before th_init", key);
        return NULL; /* not reached: fail_msg ends the test (the analyzer cannot tell) */
    }
    size_t first = (sizeof(struct arena) + 63u) & ~(size_t)63u;
    for (uint32_t i = 0; i < arena->keys; i++) {
        if (strcmp(arena->entry[i].key, key) == 0) {
            if (arena->entry[i].size < size)
                fail_msg("th_shared(%s): %lu bytes asked, %u made", key, (unsigned long)size,
                         (unsigned)arena->entry[i].size);
            void *p = (char *)arena + first + arena->entry[i].offset;
            if (zero)
                memset(p, 0, size);
            return p;
        }
    }
    if (!arena_owner) { /* children only find what the parent made */
        fprintf(stderr, "test harness: child asked for unknown shared block %s\n", key);
        exit(97);
    }
    size_t rounded = (size + 63u) & ~(size_t)63u;
    if (arena->keys == ARENA_KEYS || first + arena->used + rounded > ARENA_SIZE)
        fail_msg("th_shared(%s): the test arena is full", key);
    uint32_t i = arena->keys;
    snprintf(arena->entry[i].key, sizeof arena->entry[i].key, "%s", key);
    arena->entry[i].offset = arena->used;
    arena->entry[i].size = (uint32_t)size;
    arena->used += (uint32_t)rounded;
    void *p = (char *)arena + first + arena->entry[i].offset;
    memset(p, 0, size);
    rq_store_release_u32((rq_atomic_u32 *)&arena->keys, i + 1);
    return p;
}

void *th_shared(const char *key, size_t size)
{
    return arena_get(key, size, 0);
}

void *th_shared_fresh(const char *key, size_t size)
{
    return arena_get(key, size, 1);
}

/* ---- raw access to segments ------------------------------------------------ */

void th_raw_open(struct th_raw *r, const char *kind, const char *name)
{
    int created;
    memset(r, 0, sizeof *r);
    int rc = rq_plat_segment_open(&r->seg, kind, name, 0, 0600, &created);
    if (rc == RQ_OK)
        rc = rq_plat_segment_size(r->seg, &r->size);
    void *addr = NULL;
    if (rc == RQ_OK)
        rc = rq_plat_segment_map(r->seg, r->size, &addr);
    if (rc != RQ_OK)
        fail_msg("raw map of %s.%s: %s", kind, name, rq_strerror(rc));
    r->addr = addr;
}

void th_raw_create(struct th_raw *r, const char *kind, const char *name, uint64_t size,
                   const void *bytes, size_t len)
{
    int created;
    memset(r, 0, sizeof *r);
    int rc = rq_plat_segment_open(&r->seg, kind, name, RQ_PLAT_CREATE, 0600, &created);
    if (rc == RQ_OK && !created)
        fail_msg("raw create of %s.%s: it exists", kind, name);
    if (rc == RQ_OK)
        rc = rq_plat_segment_resize(r->seg, size);
    if (rc == RQ_OK)
        rc = rq_plat_segment_size(r->seg, &r->size);
    void *addr = NULL;
    if (rc == RQ_OK)
        rc = rq_plat_segment_map(r->seg, r->size, &addr);
    if (rc != RQ_OK) {
        fail_msg("raw create of %s.%s: %s", kind, name, rq_strerror(rc));
        return; /* not reached */
    }
    r->addr = addr;
    if (len > 0)
        memcpy(r->addr, bytes, len);
}

void th_raw_close(struct th_raw *r)
{
    if (r->addr)
        rq_plat_segment_unmap(r->addr, r->size);
    rq_plat_segment_close(r->seg);
    memset(r, 0, sizeof *r);
}

void th_raw_forge_record_numbers(struct th_raw *r, uint64_t start, uint64_t write_pos,
                                 uint64_t read_pos)
{
    struct rq_rec_shm *shm = (struct rq_rec_shm *)r->addr;
    rq_store_relaxed_u64(&shm->write_position, write_pos);
    rq_store_relaxed_u64(&shm->read_position, read_pos);
    rq_store_release_u64(&shm->write_word, (uint64_t)(uint32_t)start << 32);
    rq_store_release_u64(&shm->read_word, (uint64_t)(uint32_t)start << 32);
}

int th_raw_exists(const char *kind, const char *name)
{
    rq_plat_segment *seg;
    int created;
    int rc = rq_plat_segment_open(&seg, kind, name, 0, 0600, &created);
    if (rc == RQ_ENOENT)
        return 0;
    if (rc != RQ_OK) {
        fail_msg("looking for %s.%s: %s", kind, name, rq_strerror(rc));
        return 1; /* not reached */
    }
    rq_plat_segment_close(seg);
    return 1;
}

/* ---- processes ------------------------------------------------------------ */

char th_self_path[TH_SELF_PATH_MAX];

static const char *arg_after(int argc, char **argv, const char *flag)
{
    for (int i = 1; i + 1 < argc; i++)
        if (argv[i] && strcmp(argv[i], flag) == 0) /* never NULL: for the analyzer */
            return argv[i + 1];
    return NULL;
}

#ifndef _WIN32
/* Removes the objects in /dev/shm named as this process names them
 * (th_name: "t.PID."): queues, coalescing objects, their lock objects and
 * their poll FIFOs (data and space side; an rq_unlink removes them with
 * the name, but a test that fails before it leaves them too).  REPORT:
 * names each on stderr.  Returns how many there were. */
static unsigned remove_own_objects(int report)
{
    static const char *const kinds[] = {"rq.",  "rql.", "rqc.",  "rqcl.",
                                        "rqd.", "rqs.", "rqcd.", "rqcs."};
    char mine[40];
    snprintf(mine, sizeof mine, "t.%lld.", (long long)th_getpid());
    DIR *dir = opendir("/dev/shm");
    if (!dir)
        return 0;
    unsigned found = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
            size_t n = strlen(kinds[k]);
            if (strncmp(e->d_name, kinds[k], n) != 0 ||
                strncmp(e->d_name + n, mine, strlen(mine)) != 0)
                continue;
            char path[300];
            snprintf(path, sizeof path, "/%s", e->d_name);
            if (report)
                fprintf(stderr, "test harness: left behind: /dev/shm/%s\n", e->d_name);
            shm_unlink(path);
            found++;
            break;
        }
    }
    closedir(dir);
    return found;
}

/* At the exit of a test program: what it left in /dev/shm.  Each object is
 * removed, and any makes the run fail: a test must unlink what it makes,
 * or every run leaves more behind.  RQ_TEST_LEFTOVERS_OK=1 only removes
 * them.  (Objects of an earlier process that had our PID are removed at
 * th_init, before any test runs, so they are never taken for ours.) */
static void leftovers_check(void)
{
    unsigned found = remove_own_objects(1);
    const char *ok = getenv("RQ_TEST_LEFTOVERS_OK");
    if (found && !(ok && *ok == '1')) {
        fprintf(stderr, "test harness: %u shared-memory objects left behind (removed now)\n",
                found);
        _exit(1);
    }
}
#endif

void th_init(int argc, char **argv, const struct th_child *children, size_t count)
{
    const char *child = arg_after(argc, argv, "--th-child");
    if (!child) {
#ifndef _WIN32
        /* A dead process with our PID may have left objects under our
         * prefix: not ours to answer for. */
        unsigned stale = remove_own_objects(0);
        if (stale)
            fprintf(stderr, "test harness: removed %u objects of an earlier process %lld\n", stale,
                    (long long)th_getpid());
        atexit(leftovers_check);
#endif
        /* RQ_TEST_FILTER: run only the tests whose names match (a cmocka
         * pattern, * and ?), as scripts/mutate.sh does for a mutant. */
        const char *filter = getenv("RQ_TEST_FILTER");
        if (filter && *filter)
            cmocka_set_test_filter(filter);
        char name[64];
        snprintf(name, sizeof name, "th.%lld", (long long)th_getpid());
        arena_attach(name, 1);
        th_os_setenv(ARENA_ENV, name);
        th_os_self_path(th_self_path, sizeof th_self_path, argv[0]);
        return;
    }
    const char *watchdog = arg_after(argc, argv, "--th-watchdog");
    if (watchdog)
        th_os_start_watchdog((unsigned)strtoul(watchdog, NULL, 10));
    const char *env = getenv(ARENA_ENV);
    if (env)
        arena_attach(env, 0);
    const char *arm = arg_after(argc, argv, "--th-arm");
    if (arm) {
        char *colon;
        long point = strtol(arm, &colon, 10);
        rq_crash_point_arm((int)point, *colon == ':' ? strtoul(colon + 1, NULL, 10) : 1);
    }
    const char *arg = arg_after(argc, argv, "--th-arg");
    for (size_t i = 0; i < count; i++) {
        if (strcmp(children[i].name, child) == 0) {
            int rc = children[i].fn(arg ? arg : "");
            fflush(NULL);
#ifdef RQ_COVERAGE
            /* _exit skips the handler that writes a coverage build's
             * counts: write them now (a killed child's are lost). */
            __gcov_dump();
#endif
            /* No exit handlers: a child ends like the forked ones did (and
             * LeakSanitizer does not judge a life cut short on purpose). */
            _exit(rc);
        }
    }
    fprintf(stderr, "test harness: no child called %s\n", child);
    _exit(96);
}

th_pid th_spawn(const char *child, const char *arg, unsigned watchdog_s)
{
    return th_spawn_armed(child, arg, watchdog_s, -1, 0);
}

void th_check_word(const char *s)
{
    /* Arguments travel on a command line: keep them to one plain word. */
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '\\' || *p == '\t')
            fail_msg("test harness: argument \"%s\" is not one plain word", s);
}

/* ---- the sender/receiver pair --------------------------------------------- */

struct th_journal *th_jr;

struct th_journal *th_journal_new(const char *name, uint32_t slot_size, unsigned streams,
                                  uint64_t limit)
{
    struct th_journal *j = th_shared_fresh("journal", sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    j->slot_size = slot_size;
    j->streams = streams;
    rq_store_relaxed_u64(&j->limit, limit);
    return j;
}

const char *th_stream_arg(unsigned s)
{
    static const char *const args[TH_MAX_STREAMS] = {"0", "1", "2", "3", "4", "5", "6", "7"};
    return s < TH_MAX_STREAMS ? args[s] : "0";
}

/* ---- blocking calls while the peer is alive ---------------------------- */

static void lost_wake(const char *call, uint64_t ms, uint64_t producer, uint64_t consumer)
{
    fprintf(stderr,
            "LOST WAKE-UP: %s returned after %llu ms, ended by the periodic re-check, not by "
            "the peer's signal (missed wakes: producer side %llu, consumer side %llu)\n",
            call, (unsigned long long)ms, (unsigned long long)producer,
            (unsigned long long)consumer);
    fflush(stderr);
    abort();
}

void th_check_wakes_after(rq *q, const char *call, uint64_t t0)
{
    uint64_t ms = th_now_ms() - t0;
    rq_stats st;
    if (ms < TH_WAKE_SUSPECT_MS || rq_stat(q, &st) != RQ_OK)
        return;
    if (st.producer_missed_wakes + st.consumer_missed_wakes != 0)
        lost_wake(call, ms, st.producer_missed_wakes, st.consumer_missed_wakes);
}

void th_check_coalesce_wakes_after(rq_coalesce *c, const char *call, uint64_t t0)
{
    uint64_t ms = th_now_ms() - t0;
    rq_coalesce_stats st;
    if (ms < TH_WAKE_SUSPECT_MS || rq_coalesce_stat(c, &st) != RQ_OK)
        return;
    if (st.missed_wakes != 0)
        lost_wake(call, ms, 0, st.missed_wakes);
}

int th_push_live(rq *q, const void *msg, size_t len)
{
    uint64_t t0 = th_now_ms();
    int rc = rq_push(q, msg, len, TH_LIVE_TIMEOUT_MS);
    th_check_wakes_after(q, "rq_push", t0);
    return rc;
}

int th_pop_live(rq *q, void *buf, size_t cap, size_t *len)
{
    uint64_t t0 = th_now_ms();
    int rc = rq_pop(q, buf, cap, len, TH_LIVE_TIMEOUT_MS);
    th_check_wakes_after(q, "rq_pop", t0);
    return rc;
}

int th_peek_live(rq *q, const void **msg, size_t *len)
{
    uint64_t t0 = th_now_ms();
    int rc = rq_peek(q, msg, len, TH_LIVE_TIMEOUT_MS);
    th_check_wakes_after(q, "rq_peek", t0);
    return rc;
}

int th_reserve_live(rq *q, void **slot)
{
    uint64_t t0 = th_now_ms();
    int rc = rq_reserve(q, slot, TH_LIVE_TIMEOUT_MS);
    th_check_wakes_after(q, "rq_reserve", t0);
    return rc;
}

int th_coalesce_wait_live(rq_coalesce *c, uint64_t *ticket)
{
    uint64_t t0 = th_now_ms();
    int rc = rq_coalesce_wait(c, ticket, TH_LIVE_TIMEOUT_MS);
    th_check_coalesce_wakes_after(c, "rq_coalesce_wait", t0);
    return rc;
}

/* A batch of up to j->burst messages from SEQ on, through rq_push_burst
 * or rq_reserve_burst/rq_commit_burst in turn; how many went, or an
 * rq_error. */
static int produce_burst(rq *p, struct th_journal *j, uint32_t stream, uint64_t seq)
{
    static unsigned char bufs[TH_BURST_MAX][TH_SLOT_SIZE_MAX];
    const void *msgs[TH_BURST_MAX];
    size_t lens[TH_BURST_MAX];
    uint64_t left = rq_load_acquire_u64(&j->limit) - seq;
    size_t want = left < j->burst ? (size_t)left : j->burst;
    if ((seq / j->burst) % 2 == 0) {
        for (size_t i = 0; i < want; i++) {
            lens[i] = th_msg_make(bufs[i], j->slot_size, seq + i, stream);
            msgs[i] = bufs[i];
        }
        return rq_push_burst(p, msgs, lens, want, RQ_INFINITE);
    }
    void *slots[TH_BURST_MAX];
    int n = rq_reserve_burst(p, slots, want, RQ_INFINITE);
    for (int i = 0; i < n; i++)
        lens[i] = th_msg_make(slots[i], j->slot_size, seq + (uint64_t)i, stream);
    if (n > 0) {
        int rc = rq_commit_burst(p, lens, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return n;
}

int th_producer_main(const char *arg)
{
    uint32_t stream = (uint32_t)strtoul(arg, NULL, 10);
    struct th_journal *j = th_jr = th_shared("journal", sizeof *th_jr);
    rq_fetch_add_u64(&j->started, 1);
    rq *p;
    int rc = rq_open(&p, j->name, RQ_PRODUCER, NULL);
    if (rc != RQ_OK)
        return 20;
    unsigned char buf[TH_SLOT_SIZE_MAX];
    for (uint64_t seq = rq_load_acquire_u64(&j->prod_next[stream]);
         seq < rq_load_acquire_u64(&j->limit); seq++) {
        if (j->producer_pause_us)
            th_sleep_us(j->producer_pause_us);
        uint64_t t0 = th_now_ms();
        if (j->burst) {
            rc = produce_burst(p, j, stream, seq);
            th_check_wakes_after(p, "rq_push_burst (journal producer)", t0);
            if (rc < 1)
                return 21;
            seq += (uint64_t)rc - 1;
            rq_store_release_u64(&j->prod_next[stream], seq + 1);
            continue;
        }
        if (seq % 2 == 0) {
            size_t len = th_msg_make(buf, j->slot_size, seq, stream);
            rc = rq_push(p, buf, len, RQ_INFINITE);
        } else {
            void *slot;
            rc = rq_reserve(p, &slot, RQ_INFINITE);
            if (rc == RQ_OK)
                rc = rq_commit(p, th_msg_make(slot, j->slot_size, seq, stream));
        }
        th_check_wakes_after(p, "rq_push (journal producer)", t0);
        if (rc != RQ_OK)
            return 21;
        rq_store_release_u64(&j->prod_next[stream], seq + 1);
    }
    rq_close(p);
    return 0;
}

void th_kill_and_reap(th_pid pid)
{
    int status;
    th_kill(pid);
    assert_int_equal(th_wait(pid, 10000, &status), 0);
    if (!th_was_killed(status))
        fail_msg("a side ended by itself (status 0x%x) during the kill phase", status);
}

void th_await_started(const rq_atomic_u64 *started, uint64_t lives)
{
    uint64_t until = th_now_ms() + 20000;
    while (rq_load_acquire_u64((rq_atomic_u64 *)started) < lives) {
        if (th_now_ms() > until)
            fail_msg("a child did not start within 20 s");
        th_sleep_us(100);
    }
}

int th_streams_complete(const rq_atomic_u64 *limit, const rq_atomic_u64 *cons_next,
                        unsigned streams)
{
    uint64_t lim = rq_load_acquire_u64((rq_atomic_u64 *)limit);
    for (unsigned s = 0; s < streams; s++)
        if (rq_load_acquire_u64((rq_atomic_u64 *)&cons_next[s]) < lim)
            return 0;
    return 1;
}

void th_journal_await_started(const struct th_journal *j, uint64_t started)
{
    th_await_started(&j->started, started);
}

int th_journal_complete(const struct th_journal *j)
{
    return th_streams_complete(&j->limit, j->cons_next, j->streams);
}

void th_journal_check_numbers(struct th_journal *j, uint64_t consumer_deaths, uint64_t per_death,
                              int may_lose)
{
    uint64_t reused = rq_load_relaxed_u64(&j->qseq_reused);
    uint64_t lost_flags = rq_load_relaxed_u64(&j->flags_lost);
    uint64_t skipped = rq_load_relaxed_u64(&j->qseq_gaps);
    uint64_t new_flagged = rq_load_relaxed_u64(&j->new_flagged);
    if (reused || lost_flags || skipped > (may_lose ? consumer_deaths * per_death : 0) ||
        new_flagged > consumer_deaths * per_death)
        fail_msg("sequence numbers reused %llu, redelivery flags lost %llu, numbers skipped %llu, "
                 "new messages flagged %llu, after %llu consumer deaths",
                 (unsigned long long)reused, (unsigned long long)lost_flags,
                 (unsigned long long)skipped, (unsigned long long)new_flagged,
                 (unsigned long long)consumer_deaths);
}

/* Accounts for one delivered message.  cons_next moves only forward and
 * is stored last, so a consumer killed anywhere here re-counts at most the
 * message in hand. */
/* The queue's numbers: each message gets the next one, and a repeat (the
 * last message again, after a consumer died holding it) has the same
 * number, the same content and the redelivery flag.  next is stored last,
 * so a consumer killed in here sees the message as new next time. */
static void note_queue_seq(struct th_journal *j, const rq_msg_info *info, uint32_t stream,
                           uint64_t seq)
{
    uint64_t next = rq_load_acquire_u64(&j->qseq_next);
    if (info->flags & RQ_MSG_REDELIVERED)
        rq_fetch_add_u64(&j->flagged, 1);
    uint64_t who = (uint64_t)stream << 48 | seq;
    if (j->burst && info->seq < next && next - info->seq <= j->burst) {
        /* a batch handed out again: the same message, flagged */
        if (rq_load_relaxed_u64(&j->qseq_window[info->seq % TH_BURST_MAX]) != who)
            rq_fetch_add_u64(&j->qseq_reused, 1);
        else if (!(info->flags & RQ_MSG_REDELIVERED))
            rq_fetch_add_u64(&j->flags_lost, 1);
        return;
    }
    if (next > 0 && info->seq == next - 1) {
        if (rq_load_relaxed_u64(&j->last_stream) != stream ||
            rq_load_relaxed_u64(&j->last_stream_seq) != seq)
            rq_fetch_add_u64(&j->qseq_reused, 1);
        else if (!(info->flags & RQ_MSG_REDELIVERED))
            rq_fetch_add_u64(&j->flags_lost, 1);
        return;
    }
    if (info->seq < next) {
        rq_fetch_add_u64(&j->qseq_reused, 1);
        return;
    }
    if (info->seq > next)
        rq_fetch_add_u64(&j->qseq_gaps, info->seq - next);
    if (info->flags & RQ_MSG_REDELIVERED)
        rq_fetch_add_u64(&j->new_flagged, 1);
    rq_store_relaxed_u64(&j->last_stream, stream);
    rq_store_relaxed_u64(&j->last_stream_seq, seq);
    rq_store_relaxed_u64(&j->qseq_window[info->seq % TH_BURST_MAX], who);
    rq_store_release_u64(&j->qseq_next, info->seq + 1);
}

static void consumer_note(struct th_journal *j, const void *msg, size_t len,
                          const rq_msg_info *info)
{
    uint64_t seq;
    uint32_t stream;
    rq_fetch_add_u64(&j->received, 1);
    if (th_msg_check(msg, len, &seq, &stream) != 0 || stream >= j->streams) {
        rq_fetch_add_u64(&j->torn, 1);
        return;
    }
    note_queue_seq(j, info, stream, seq);
    uint64_t expect = rq_load_acquire_u64(&j->cons_next[stream]);
    if (seq + 1 == expect || (j->burst && seq < expect && expect - seq <= j->burst)) {
        rq_fetch_add_u64(&j->duplicates, 1);
    } else if (seq < expect) {
        rq_fetch_add_u64(&j->reorders, 1);
    } else {
        if (seq > expect)
            rq_fetch_add_u64(&j->gaps, seq - expect);
        rq_store_release_u64(&j->cons_next[stream], seq + 1);
    }
}

/* A batch of up to j->burst messages, noted, through rq_peek_burst and
 * rq_release_burst (in two parts) or rq_pop_burst.  BUF holds
 * TH_BURST_MAX * slot_size bytes. */
static int consume_burst(rq *c, struct th_journal *j, unsigned char *buf)
{
    if (!j->consume_pop) {
        rq_msg_view v[TH_BURST_MAX];
        int n = rq_peek_burst(c, v, j->burst, RQ_INFINITE);
        if (n < 1)
            return RQ_ESTATE;
        for (int i = 0; i < n; i++) {
            rq_msg_info info = {v[i].seq, v[i].flags, 0};
            consumer_note(j, v[i].data, v[i].len, &info);
        }
        int first = (n + 1) / 2; /* processed, then released */
        int rc = rq_release_burst(c, (size_t)first);
        return rc == RQ_OK && n > first ? rq_release_burst(c, (size_t)(n - first)) : rc;
    }
    uint64_t first_seq;
    size_t lens[TH_BURST_MAX];
    int rc = rq_next_seq(c, &first_seq);
    int n = rc < 0 ? rc : rq_pop_burst(c, buf, j->slot_size, lens, j->burst, RQ_INFINITE);
    if (n < 1)
        return RQ_ESTATE;
    for (int i = 0; i < n; i++) {
        rq_msg_info info = {first_seq + (uint64_t)i, 0, 0};
        consumer_note(j, buf + (size_t)i * j->slot_size, lens[i], &info);
    }
    return RQ_OK;
}

int th_consumer_main(const char *arg)
{
    (void)arg;
    struct th_journal *j = th_jr = th_shared("journal", sizeof *th_jr);
    rq_fetch_add_u64(&j->started, 1);
    rq *c;
    int rc = rq_open(&c, j->name, RQ_CONSUMER, NULL);
    if (rc != RQ_OK)
        return 30;
    static unsigned char buf[TH_BURST_MAX * TH_SLOT_SIZE_MAX];
    rq_msg_info info;
    while (!th_journal_complete(j)) {
        if (j->consumer_pause_us)
            th_sleep_us(j->consumer_pause_us);
        size_t len;
        uint64_t t0 = th_now_ms();
        if (j->burst) {
            rc = consume_burst(c, j, buf);
            th_check_wakes_after(c, "rq_pop_burst (journal consumer)", t0);
            if (rc != RQ_OK)
                return 32;
            continue;
        }
        if (!j->consume_pop) {
            const void *msg;
            /* Waits are unbounded on purpose: a lost wake-up is then
             * found only by the periodic re-check and counted as a missed
             * wake, which th_check_wakes_after turns into a failure at
             * once (a killed side is restarted at once and signals at
             * open, so none may happen). */
            rc = rq_peek_info(c, &msg, &len, &info, RQ_INFINITE);
            if (rc != RQ_OK)
                return 31;
            consumer_note(j, msg, len, &info); /* processed, then released */
            rc = rq_release(c);
        } else {
            rc = rq_pop_info(c, buf, sizeof buf, &len, &info, RQ_INFINITE);
            if (rc == RQ_OK)
                consumer_note(j, buf, len, &info);
        }
        th_check_wakes_after(c, "rq_pop (journal consumer)", t0);
        if (rc != RQ_OK)
            return 32;
    }
    rq_close(c);
    return 0;
}

const char *th_set_child_queue(const char *name)
{
    char *q = th_shared_fresh("child_queue", RQ_NAME_MAX + 1);
    snprintf(q, RQ_NAME_MAX + 1, "%s", name);
    return q;
}

const char *th_child_queue(void)
{
    return th_shared("child_queue", RQ_NAME_MAX + 1);
}
