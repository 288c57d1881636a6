/*
 * test_records_alloc.c - a record queue without memory: each allocation
 * of an open (the handle, the segment's state, the record state) failed in
 * turn, and those of the bursts (the extents of a long peek burst, the
 * lengths of a batch reservation).  An open is a clean RQ_ESYS with errno
 * ENOMEM (nothing held: the next open works; a failed create leaves a
 * complete queue or none), a peek burst is as long as the handle's own room for extents,
 * a batch reservation is RQ_ESYS holding nothing; under AddressSanitizer
 * nothing leaks.
 *
 * The allocations are those of rq's own code linked into this program:
 * the link wraps malloc, calloc and realloc (CMakeLists.txt: -Wl,--wrap),
 * and the wrappers fail the N-th call from the moment a test arms them.
 * Linux only (GNU ld and lld both wrap; the Windows build leaves it out).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "rq.h"

#define CAP 4096u
#define MAX 120u

/* ---- the wrapped allocator ------------------------------------------ */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);

static unsigned long fail_at; /* the allocation to fail, counted from 1; 0: none */
static unsigned long allocs;  /* allocations since arming */
static unsigned long failed;  /* allocations failed since arming */

static void arm(unsigned long nth)
{
    allocs = failed = 0;
    fail_at = nth;
}

static void disarm(void)
{
    fail_at = 0;
}

static int fail_now(void)
{
    if (!fail_at || ++allocs != fail_at)
        return 0;
    failed++;
    errno = ENOMEM; /* as the C library's allocator sets it */
    return 1;
}

void *__wrap_malloc(size_t size)
{
    return fail_now() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    return fail_now() ? NULL : __real_realloc(p, size);
}

/* ---- opens ----------------------------------------------------------- */

/* Opens NAME as ROLE (CFG: NULL to attach) with the N-th allocation
 * failed, for N = 1, 2, ... until an open needs fewer: each failed open is
 * RQ_ESYS with errno ENOMEM and no handle, and an open right after it
 * (nothing failed) works, so the failed one held no role.  The number of
 * allocations an open makes, which must be some. */
static unsigned long open_each_failed(const char *name, int role, const rq_config *cfg)
{
    for (unsigned long n = 1;; n++) {
        rq *q = (rq *)&q; /* not NULL: the failed open must clear it */
        arm(n);
        int rc = rq_open(&q, name, role, cfg);
        disarm();
        if (!failed) {
            assert_int_equal(rc, RQ_OK);
            rq_close(q);
            assert_true(n > 3); /* the handle, the segment, the record state */
            return n - 1;
        }
        if (rc != RQ_ESYS || errno != ENOMEM)
            fail_msg("allocation %lu failed: %s, errno %d", n, rq_errname(rc), errno);
        assert_null(q);
        if (cfg && th_raw_exists("rq", name)) {
            /* A failed create leaves a complete queue (it failed after
             * making it: taking the role) or nothing (as test_faults). */
            rq *o = NULL;
            if (rq_open(&o, name, RQ_OBSERVER, NULL) != RQ_OK)
                fail_msg("allocation %lu failed: the create left a queue never made", n);
            rq_close(o);
        }
        assert_int_equal(rq_open(&q, name, role, cfg), RQ_OK);
        rq_close(q);
        if (cfg)
            assert_int_equal(rq_unlink(name), RQ_OK);
    }
}

static void test_opens_without_memory(void **state)
{
    (void)state;
    for (uint32_t flags = RQ_RECORDS; flags <= (RQ_RECORDS | RQ_MPSC); flags += RQ_MPSC) {
        const char *name = th_name("rec.alloc.open");
        rq_config cfg = {CAP, MAX, flags, 0};
        open_each_failed(name, RQ_PRODUCER, &cfg); /* creating it */
        rq *keep = th_create(name, CAP, MAX, flags);
        open_each_failed(name, RQ_PRODUCER, NULL);
        open_each_failed(name, RQ_CONSUMER, NULL);
        open_each_failed(name, RQ_OBSERVER, NULL);
        /* The queue works after it all. */
        rq *p = th_open(name, RQ_PRODUCER, CAP, MAX, flags);
        rq *c = th_open(name, RQ_CONSUMER, CAP, MAX, flags);
        assert_int_equal(rq_push(p, "", 0, 0), RQ_OK);
        th_expect_pop_tagged(c, 0, 0);
        rq_close(p);
        rq_close(c);
        rq_close(keep);
        rq_unlink(name);
    }
}

/* ---- bursts ---------------------------------------------------------- */

/* A peek burst longer than the handle's own room for extents (64), its
 * heap room failed: as long as that room, the rest by the next call, each
 * released by the extents kept; then with memory, the whole batch. */
static void test_a_long_peek_burst_without_memory(void **state)
{
    (void)state;
    enum { N = 100 };
    struct th_pair q = th_pair_open("rec.alloc.peek", CAP, MAX, RQ_RECORDS);
    for (unsigned i = 0; i < 2 * N; i++)
        assert_int_equal(rq_push(q.p, "", 0, 0), RQ_OK); /* 8 bytes each */
    static rq_msg_view v[N];
    arm(1);
    int n = rq_peek_burst(q.c, v, N, 0);
    disarm();
    assert_int_equal(failed, 1);
    assert_int_equal(n, 64);
    uint64_t first = v[0].seq;
    for (unsigned i = 1; i < 64; i++)
        assert_int_equal(v[i].seq, first + i);
    assert_int_equal(rq_release_burst(q.c, 64), RQ_OK);
    assert_int_equal(rq_peek_burst(q.c, v, N, 0), N); /* room for it now */
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(v[i].seq, first + 64 + i);
    assert_int_equal(rq_release_burst(q.c, N), RQ_OK);
    rq_record_stats st;
    assert_int_equal(rq_stat_records(q.c, &st), RQ_OK);
    assert_int_equal(st.records, N - 64);
    assert_int_equal(st.bytes_used, 8 * (N - 64));
    th_pair_close(&q);
}

/* A batch reservation whose lengths cannot be kept: RQ_ESYS, holding no
 * reservation (and on MPSC not the lock): a push and a new batch work. */
static void test_a_batch_reservation_without_memory(void **state)
{
    (void)state;
    for (uint32_t flags = RQ_RECORDS; flags <= (RQ_RECORDS | RQ_MPSC); flags += RQ_MPSC) {
        struct th_pair q = th_pair_open("rec.alloc.batch", CAP, MAX, flags);
        const size_t lens[3] = {8, 16, 24};
        void *bufs[3];
        arm(1);
        int rc = rq_reserve_burst_len(q.p, lens, 3, bufs, 0);
        disarm();
        assert_int_equal(failed, 1);
        assert_int_equal(rc, RQ_ESYS);
        assert_int_equal(errno, ENOMEM);
        assert_int_equal(rq_commit_burst(q.p, lens, 3), RQ_ESTATE);
        assert_int_equal(rq_push(q.p, "x", 1, 0), RQ_OK);
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 3, bufs, 0), 3);
        for (int i = 0; i < 3; i++)
            th_fill_tagged(bufs[i], lens[i], (unsigned)i);
        assert_int_equal(rq_commit_burst(q.p, lens, 3), RQ_OK);
        unsigned char buf[MAX];
        size_t len;
        assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 0), RQ_OK);
        assert_int_equal(len, 1);
        for (int i = 0; i < 3; i++)
            th_expect_pop_tagged(q.c, lens[i], (unsigned)i);
        th_pair_close(&q);
    }
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {{"none", NULL}};
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_without_memory),
        cmocka_unit_test(test_a_long_peek_burst_without_memory),
        cmocka_unit_test(test_a_batch_reservation_without_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
