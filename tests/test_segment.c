/*
 * test_segment.c - src/segment.c: opening, creating, checking and
 * repairing a named segment, with a test kind of its own ("rqt"), and the
 * open helpers queues and coalescing objects share (rq_role_valid,
 * rq_segment_open_as, rq_role_attach).  Queues and coalescing objects
 * exercise the same code through their kinds in test_queue, test_trust,
 * test_coalesce_attach and test_faults (which also fails each OS call).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "segment.h"

#define TEST_KIND "rqt"
#define TEST_MAGIC 0x0174736574717275ull
#define OTHER_MAGIC 0x02746f6874717275ull
#define TEST_VERSION 7u

struct test_header {
    rq_atomic_u64 magic;
    uint32_t version;
    uint32_t size; /* the whole segment, from the configuration */
};

struct test_config {
    uint32_t size;
    int init_error; /* returned by test_init when not RQ_OK */
};

static int inits, repairs;

static int test_check(const void *snapshot, uint64_t object_size, const void *config,
                      uint64_t *total)
{
    const struct test_header *h = snapshot;
    const struct test_config *cfg = config;
    if (h->version != TEST_VERSION)
        return RQ_EVERSION;
    if (h->size < sizeof *h || h->size > object_size)
        return RQ_ECORRUPT;
    if (cfg && cfg->size != h->size)
        return RQ_EEXIST;
    *total = h->size;
    return RQ_OK;
}

static uint64_t test_size_for(const void *config)
{
    return ((const struct test_config *)config)->size;
}

static int test_init(rq_plat_segment *seg, void *addr, const void *config, int repairing)
{
    (void)seg;
    const struct test_config *cfg = config;
    struct test_header *h = addr;
    inits++;
    repairs += repairing;
    if (cfg->init_error)
        return cfg->init_error;
    h->version = TEST_VERSION;
    h->size = cfg->size;
    return RQ_OK;
}

static const struct rq_segment_kind test_kind = {
    .prefix = TEST_KIND,
    .magic = TEST_MAGIC,
    .header_size = sizeof(struct test_header),
    .check = test_check,
    .size_for = test_size_for,
    .init = test_init,
};

static const char *fresh(const char *tag)
{
    const char *name = th_name(tag);
    (void)rq_plat_segment_unlink(TEST_KIND, name);
    inits = repairs = 0;
    return name;
}

static void test_create_then_attach(void **state)
{
    (void)state;
    const char *name = fresh("seg.create");
    struct test_config cfg = {4096, 0};
    struct rq_segment made, seen;
    assert_int_equal(rq_segment_open(&made, &test_kind, name, &cfg, 0600, RQ_PLAT_CHECKED, 1000),
                     RQ_OK);
    assert_int_equal(inits, 1);
    assert_int_equal(repairs, 0);
    assert_int_equal(made.size, 4096);
    assert_int_equal(rq_load_relaxed_u64((rq_atomic_u64 *)made.addr), TEST_MAGIC);
    /* An attaching opener maps the size the header gives and keeps a
     * checked copy of the header. */
    assert_int_equal(rq_segment_open(&seen, &test_kind, name, NULL, 0, RQ_PLAT_CHECKED, 1000),
                     RQ_OK);
    assert_int_equal(seen.size, 4096);
    assert_int_equal(((struct test_header *)seen.header.bytes)->size, 4096);
    assert_int_equal(inits, 1); /* nothing made twice */
    /* A creator whose configuration differs gets the kind's verdict. */
    struct rq_segment other;
    struct test_config bigger = {8192, 0};
    assert_int_equal(
        rq_segment_open(&other, &test_kind, name, &bigger, 0600, RQ_PLAT_CHECKED, 1000), RQ_EEXIST);
    assert_null(other.addr);
    rq_segment_close(&seen);
    rq_segment_close(&made);
    (void)rq_plat_segment_unlink(TEST_KIND, name); /* Windows: gone with its last handle */
}

static void test_attach_to_nothing_is_enoent(void **state)
{
    (void)state;
    const char *name = fresh("seg.none");
    struct rq_segment s;
    assert_int_equal(rq_segment_open(&s, &test_kind, name, NULL, 0, RQ_PLAT_CHECKED, 1000),
                     RQ_ENOENT);
    assert_null(s.addr);
    assert_null(s.plat);
}

static void test_bad_kind_is_einval(void **state)
{
    (void)state;
    struct rq_segment_kind tiny = test_kind;
    tiny.header_size = 4; /* the magic word alone is 8 */
    struct rq_segment s;
    assert_int_equal(rq_segment_open(&s, &tiny, fresh("seg.tiny"), NULL, 0, 0, 1000), RQ_EINVAL);
    struct rq_segment_kind huge = test_kind;
    huge.header_size = RQ_SEGMENT_HEADER_MAX + 1;
    assert_int_equal(rq_segment_open(&s, &huge, fresh("seg.huge"), NULL, 0, 0, 1000), RQ_EINVAL);
}

static void test_failed_creation_leaves_nothing(void **state)
{
    (void)state;
    const char *name = fresh("seg.fail");
    struct test_config cfg = {4096, RQ_ECORRUPT};
    struct rq_segment s;
    assert_int_equal(rq_segment_open(&s, &test_kind, name, &cfg, 0600, RQ_PLAT_CHECKED, 1000),
                     RQ_ECORRUPT);
    assert_int_equal(inits, 1);
    assert_int_equal(rq_segment_open(&s, &test_kind, name, NULL, 0, RQ_PLAT_CHECKED, 1000),
                     RQ_ENOENT);
}

static void test_half_made_segment_is_repaired(void **state)
{
    (void)state;
    const char *name = fresh("seg.half");
    struct test_config cfg = {4096, 0};
    struct rq_segment made;
    assert_int_equal(rq_segment_open(&made, &test_kind, name, &cfg, 0600, RQ_PLAT_CHECKED, 1000),
                     RQ_OK);
    /* As if the creator had died before its last store, the magic word. */
    rq_store_release_u64((rq_atomic_u64 *)made.addr, 0);
    struct rq_segment s;
    assert_int_equal(rq_segment_open(&s, &test_kind, name, NULL, 0, RQ_PLAT_CHECKED, 1000),
                     RQ_ENOENT); /* only a creator can finish it */
    assert_int_equal(rq_segment_open(&s, &test_kind, name, &cfg, 0600, RQ_PLAT_CHECKED, 1000),
                     RQ_OK);
    assert_int_equal(inits, 2);
    assert_int_equal(repairs, 1);
    rq_segment_close(&s);
    rq_segment_close(&made);
    (void)rq_plat_segment_unlink(TEST_KIND, name);
}

static void test_foreign_or_wrong_version_is_refused(void **state)
{
    (void)state;
    const char *name = fresh("seg.foreign");
    struct test_config cfg = {4096, 0};
    struct rq_segment made, s;
    assert_int_equal(rq_segment_open(&made, &test_kind, name, &cfg, 0600, RQ_PLAT_CHECKED, 1000),
                     RQ_OK);
    /* Another kind's magic under our prefix: never taken for half-made. */
    struct rq_segment_kind other = test_kind;
    other.magic = OTHER_MAGIC;
    assert_int_equal(rq_segment_open(&s, &other, name, &cfg, 0600, RQ_PLAT_CHECKED, 1000),
                     RQ_ECORRUPT);
    assert_int_equal(inits, 1);
    ((struct test_header *)made.addr)->version = TEST_VERSION + 1;
    assert_int_equal(rq_segment_open(&s, &test_kind, name, NULL, 0, RQ_PLAT_CHECKED, 1000),
                     RQ_EVERSION);
    rq_segment_close(&made);
    (void)rq_plat_segment_unlink(TEST_KIND, name);
}

/* ---- the helpers queues and coalescing objects share ------------------ */

static void test_role_valid(void **state)
{
    (void)state;
    assert_true(rq_role_valid(RQ_PRODUCER));
    assert_true(rq_role_valid(RQ_CONSUMER));
    assert_true(rq_role_valid(RQ_OBSERVER));
    assert_true(rq_role_valid(RQ_REQUESTER));
    assert_true(rq_role_valid(RQ_WORKER));
    assert_false(rq_role_valid(0));
    assert_false(rq_role_valid(4));
    assert_false(rq_role_valid(-1));
}

static void test_open_as_observer_never_creates(void **state)
{
    (void)state;
    const char *name = fresh("seg.observer");
    struct rq_segment s;
    assert_int_equal(rq_segment_open_as(&s, &test_kind, name, NULL, RQ_OBSERVER, 0, 0, 1000),
                     RQ_ENOENT);
    struct test_config cfg = {4096, 0};
    struct rq_segment made;
    assert_int_equal(rq_segment_open_as(&made, &test_kind, name, &cfg, RQ_OBSERVER, 0, 0, 1000),
                     RQ_OK);
    assert_int_equal(rq_segment_open_as(&s, &test_kind, name, NULL, RQ_OBSERVER, 0, 0, 1000),
                     RQ_OK);
    assert_int_equal(s.size, 4096);
    rq_segment_close(&s);
    /* The creator's mode 0 became the 0600 default: a role holder asking
     * for 0600 is let in, one asking for 0400 (narrower) is refused. */
#ifndef _WIN32
    assert_int_equal(rq_segment_open_as(&s, &test_kind, name, NULL, RQ_PRODUCER, 0400, 0, 1000),
                     RQ_EOWNER);
    assert_int_equal(rq_segment_open_as(&s, &test_kind, name, NULL, RQ_PRODUCER, 0600, 0, 1000),
                     RQ_OK);
    rq_segment_close(&s);
#endif
    rq_segment_close(&made);
    (void)rq_plat_segment_unlink(TEST_KIND, name);
}

static void test_role_attach_counts_takeovers(void **state)
{
    (void)state;
    struct rq_shm_role line;
    memset(&line, 0, sizeof line);
    assert_int_equal(rq_role_attach(&line), 0);
    assert_int_equal(rq_load_relaxed_u32(&line.attached), 1);
    assert_int_equal(rq_load_relaxed_u64(&line.takeovers), 0);
    assert_int_equal(rq_load_relaxed_u64(&line.pid), (uint64_t)rq_plat_pid());
    /* The last holder never detached: it died holding the role. */
    assert_int_equal(rq_role_attach(&line), 1);
    assert_int_equal(rq_load_relaxed_u64(&line.takeovers), 1);
    rq_store_relaxed_u32(&line.attached, 0); /* a clean close */
    assert_int_equal(rq_role_attach(&line), 0);
    assert_int_equal(rq_load_relaxed_u64(&line.takeovers), 1);
    /* A death an open found and passed on when it failed: taken over
     * again, counted once (above); a later death is counted again. */
    rq_store_relaxed_u32(&line.attached, RQ_ROLE_DEATH_PASSED_ON);
    assert_int_equal(rq_role_attach(&line), 1);
    assert_int_equal(rq_load_relaxed_u32(&line.attached), RQ_ROLE_HELD);
    assert_int_equal(rq_load_relaxed_u64(&line.takeovers), 1);
    assert_int_equal(rq_role_attach(&line), 1);
    assert_int_equal(rq_load_relaxed_u64(&line.takeovers), 2);
}

int main(int argc, char **argv)
{
    th_init(argc, argv, NULL, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_then_attach),
        cmocka_unit_test(test_attach_to_nothing_is_enoent),
        cmocka_unit_test(test_bad_kind_is_einval),
        cmocka_unit_test(test_failed_creation_leaves_nothing),
        cmocka_unit_test(test_half_made_segment_is_repaired),
        cmocka_unit_test(test_foreign_or_wrong_version_is_refused),
        cmocka_unit_test(test_role_valid),
        cmocka_unit_test(test_open_as_observer_never_creates),
        cmocka_unit_test(test_role_attach_counts_takeovers),
    };
    return cmocka_run_group_tests_name("segment", tests, NULL, NULL);
}
