/*
 * test_ring.c - src/ring.c and ring.h on a segment in ordinary memory: the
 * double-range arithmetic, capacity, caching and range checks, without any
 * OS object.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "layout.h"
#include "ring.h"

#ifdef _WIN32
#include <malloc.h>
/* The Windows C runtime has no aligned_alloc. */
#define aligned_alloc(align, size) _aligned_malloc(size, align)
#define aligned_free _aligned_free
#else
#define aligned_free free
#endif

struct fake {
    struct rq_shm *shm;
    struct rq_ring prod, cons;
};

static void fake_make(struct fake *f, uint32_t n, uint32_t slot_size)
{
    uint64_t total = rq_layout_total(n, slot_size);
    f->shm = aligned_alloc(RQ_CACHE_LINE, (size_t)((total + 63) & ~63ull));
    assert_non_null(f->shm);
    memset(f->shm, 0, (size_t)total);
    f->shm->hdr.header_size = RQ_SHM_HEADER_SIZE;
    f->shm->hdr.slot_count = n;
    f->shm->hdr.slot_size = slot_size;
    f->shm->hdr.slot_stride = (uint32_t)rq_layout_stride(slot_size);
    rq_ring_attach(&f->prod, f->shm, &f->shm->hdr);
    rq_ring_attach(&f->cons, f->shm, &f->shm->hdr);
    assert_int_equal(rq_ring_load(&f->prod), RQ_OK);
    assert_int_equal(rq_ring_load(&f->cons), RQ_OK);
}

static int push_u32(struct fake *f, uint32_t v)
{
    void *slot;
    int rc = rq_ring_push_begin(&f->prod, &slot, 0);
    if (rc == RQ_OK) {
        memcpy(slot, &v, 4);
        rq_ring_push_publish(&f->prod, slot, 4);
    }
    return rc;
}

static int pop_u32(struct fake *f, uint32_t *v)
{
    const void *p;
    uint32_t len;
    int rc = rq_ring_pop_begin(&f->cons, &p, &len);
    if (rc == RQ_OK) {
        assert_int_equal(len, 4);
        memcpy(v, p, 4);
        rq_ring_pop_publish(&f->cons);
    }
    return rc;
}

static void test_layout_lines(void **state)
{
    (void)state;
    assert_int_equal(RQ_SHM_HEADER_SIZE % RQ_CACHE_LINE, 0);
    assert_int_equal(rq_layout_stride(1), 16);
    assert_int_equal(rq_layout_stride(8), 16);
    assert_int_equal(rq_layout_stride(9), 24);
    assert_int_equal(rq_layout_total(3, 8), RQ_SHM_HEADER_SIZE + 48);
}

/* rq_ring_position: a stored copy behind its offset by less than 2N gives
 * the offset's exact number; a copy stored after the offset was read (so
 * ahead of it) gives a number a lap on.  This is why a reader of both
 * (rq_stat, rq_next_seq) loads the copy first and the offset after it. */
static void test_position_from_stored_copy_and_offset(void **state)
{
    (void)state;
    struct fake f;
    fake_make(&f, 4, 8);
    struct rq_ring *r = &f.prod;
    for (uint64_t stored = 0; stored < 40; stored++)
        for (uint64_t pos = stored; pos < stored + 8; pos++)
            assert_int_equal(rq_ring_position(r, stored, (uint32_t)(pos % 8)), pos);
    /* offset 7 read, then message 8 published and its copy (8) stored */
    assert_int_equal(rq_ring_position(r, 8, 7), 15);
    aligned_free(f.shm);
}

static void test_next_and_distance_over_double_range(void **state)
{
    (void)state;
    struct fake f;
    fake_make(&f, 3, 8);
    struct rq_ring *r = &f.prod;
    assert_int_equal(r->two_n, 6);
    /* stops: the next multiple of P (2 for N = 3), N (the slots wrap: the
     * payload pointers are looked up again) or 2N, whichever first */
    assert_int_equal(rq_ring_stop(r, 0, 1), 2);
    assert_int_equal(rq_ring_stop(r, 1, 1), 2);
    assert_int_equal(rq_ring_stop(r, 2, 1), 3);
    assert_int_equal(rq_ring_stop(r, 3, 1), 4);
    assert_int_equal(rq_ring_stop(r, 4, 1), 6);
    assert_int_equal(rq_ring_stop(r, 5, 1), 6);
    assert_int_equal(rq_ring_stop(r, 5, 0), 6); /* MPSC: every offset */
    assert_int_equal(rq_ring_stop(r, 2, 0), 3);
    assert_int_equal(rq_ring_distance(r, 3, 0), 3); /* full */
    assert_int_equal(rq_ring_distance(r, 0, 3), 3); /* full, wrapped */
    assert_int_equal(rq_ring_distance(r, 1, 4), 3);
    assert_int_equal(rq_ring_distance(r, 2, 2), 0); /* empty */
    assert_true(rq_ring_pair_ok(r, 0, 3));
    assert_false(rq_ring_pair_ok(r, 4, 0)); /* 4 apart with N = 3 */
    assert_false(rq_ring_pair_ok(r, 6, 0)); /* out of range */
    assert_false(rq_ring_pair_ok(r, 0, 6));
    /* offset x and x + N share a slot */
    assert_ptr_equal(rq_ring_slot(r, 1), rq_ring_slot(r, 4));
    assert_ptr_not_equal(rq_ring_slot(r, 1), rq_ring_slot(r, 2));
    aligned_free(f.shm);
}

static void test_capacity_and_order_through_many_laps(void **state)
{
    (void)state;
    for (uint32_t n = 1; n <= 9; n++) {
        struct fake f;
        fake_make(&f, n, 4);
        uint32_t in = 0, out = 0, v;
        for (int round = 0; round < 50; round++) {
            uint32_t burst = (uint32_t)(round * 7 % (n + 1));
            for (uint32_t k = 0; k < burst; k++) {
                if (push_u32(&f, in) == RQ_OK)
                    in++;
            }
            /* bounded: a ring that never says full must fail, not hang */
            for (uint32_t k = 0; k <= n && push_u32(&f, in) == RQ_OK; k++)
                in++;
            assert_int_equal(in - out, n); /* exactly N fit */
            uint32_t take = (uint32_t)(round * 5 % (n + 1));
            for (uint32_t k = 0; k < take; k++) {
                assert_int_equal(pop_u32(&f, &v), RQ_OK);
                assert_int_equal(v, out++);
            }
        }
        for (uint32_t k = 0; k <= n && pop_u32(&f, &v) == RQ_OK; k++)
            assert_int_equal(v, out++);
        assert_int_equal(in, out);
        assert_int_equal(pop_u32(&f, &v), RQ_EAGAIN);
        aligned_free(f.shm);
    }
}

/* The largest power of two <= N, as rq_ring_attach picks it. */
static uint64_t period(uint32_t n)
{
    uint64_t p = 1;
    while (p * 2 <= n)
        p *= 2;
    return p;
}

/* Single pushes and pops number every message by its true index, lap after
 * lap, for N not a power of two too (the wrap at 2N then falls between two
 * multiples of P); the stored copies are never ahead and lag by less than
 * P, and a side that reopens from them gets the exact numbers back. */
static void test_positions_through_many_laps(void **state)
{
    (void)state;
    for (uint32_t n = 1; n <= 9; n++) {
        struct fake f;
        fake_make(&f, n, 4);
        uint64_t p = period(n);
        uint32_t in = 0, out = 0, v;
        for (int round = 0; round < 60; round++) {
            for (uint32_t k = 0; k < 1 + (uint32_t)(round * 7 % (n + 1)); k++) {
                if (push_u32(&f, in) != RQ_OK)
                    break;
                in++;
                uint64_t stored = rq_load_relaxed_u64(&f.shm->write_position);
                assert_int_equal(rq_ring_write_pos(&f.prod), in);
                assert_true(stored <= in && in - stored < p);
            }
            for (uint32_t k = 0; k < 1 + (uint32_t)(round * 5 % (n + 1)); k++) {
                if (pop_u32(&f, &v) != RQ_OK)
                    break;
                assert_int_equal(v, out++);
                uint64_t stored = rq_load_relaxed_u64(&f.shm->read_position);
                assert_int_equal(rq_ring_read_pos(&f.cons), out);
                assert_true(stored <= out && out - stored < p);
            }
        }
        assert_true(in > 4 * n); /* several laps */
        struct rq_ring again;
        rq_ring_attach(&again, f.shm, &f.shm->hdr);
        assert_int_equal(rq_ring_load(&again), RQ_OK);
        assert_int_equal(rq_ring_write_pos(&again), in);
        assert_int_equal(rq_ring_read_pos(&again), out);
        aligned_free(f.shm);
    }
}

static void test_peer_offsets_are_range_checked(void **state)
{
    (void)state;
    struct fake f;
    fake_make(&f, 4, 8);
    uint32_t v;
    rq_store_relaxed_u32(&f.shm->write_offset, 8);
    assert_int_equal(pop_u32(&f, &v), RQ_ECORRUPT);
    rq_store_relaxed_u32(&f.shm->write_offset, 5); /* 5 ahead of 0 with N = 4 */
    assert_int_equal(pop_u32(&f, &v), RQ_ECORRUPT);
    rq_store_relaxed_u32(&f.shm->write_offset, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(push_u32(&f, (uint32_t)i), RQ_OK);
    rq_store_relaxed_u32(&f.shm->read_offset, 200);
    assert_int_equal(push_u32(&f, 9), RQ_ECORRUPT);
    rq_store_relaxed_u32(&f.shm->read_offset, 0);
    assert_int_equal(push_u32(&f, 9), RQ_EAGAIN);
    /* a length larger than the slot is refused */
    uint32_t huge = 9;
    memcpy(rq_ring_slot(&f.cons, 0), &huge, 4);
    const void *p;
    uint32_t len;
    assert_int_equal(rq_ring_pop_begin(&f.cons, &p, &len), RQ_ECORRUPT);
    /* the MPSC path re-reads write_offset and checks it too */
    void *slot;
    rq_store_relaxed_u32(&f.shm->write_offset, 77);
    assert_int_equal(rq_ring_push_begin(&f.prod, &slot, 1), RQ_ECORRUPT);
    /* rq_ring_load refuses a bad pair */
    rq_store_relaxed_u32(&f.shm->write_offset, 7);
    rq_store_relaxed_u32(&f.shm->read_offset, 1);
    assert_int_equal(rq_ring_load(&f.cons), RQ_ECORRUPT);
    aligned_free(f.shm);
}

static void test_was_full(void **state)
{
    (void)state;
    for (uint32_t n = 1; n <= 4; n++) {
        struct fake f;
        fake_make(&f, n, 4);
        uint32_t v;
        for (uint32_t i = 0; i < n; i++)
            assert_int_equal(push_u32(&f, i), RQ_OK);
        f.cons.write_cache = f.cons.read; /* stale cache forces the reload */
        assert_int_equal(pop_u32(&f, &v), RQ_OK);
        assert_true(rq_ring_was_full(&f.cons, 0));
        /* The same with the cache made stale after the pop: only the fresh
         * load of write_offset can tell, and it finds exactly N (d == N). */
        f.cons.write_cache = 0; /* says "empty before the pop" */
        assert_true(rq_ring_was_full(&f.cons, 0));
        /* a producer refilled the freed slot already: still "was full" */
        assert_int_equal(push_u32(&f, 99), RQ_OK);
        f.cons.write_cache = f.cons.read;
        assert_true(rq_ring_was_full(&f.cons, 0));
        if (n >= 2) {
            assert_int_equal(pop_u32(&f, &v), RQ_OK);
            assert_int_equal(pop_u32(&f, &v), RQ_OK);
            /* the last pop freed offset 2 and took N-1 messages to N-2 */
            f.cons.write_cache = f.cons.read;
            assert_false(rq_ring_was_full(&f.cons, 2));
        }
        aligned_free(f.shm);
    }
}

static void test_has_data_and_space(void **state)
{
    (void)state;
    struct fake f;
    fake_make(&f, 2, 4);
    assert_false(rq_ring_has_data(&f.cons));
    assert_true(rq_ring_has_space(&f.prod, 0));
    assert_int_equal(push_u32(&f, 1), RQ_OK);
    assert_int_equal(push_u32(&f, 2), RQ_OK);
    assert_true(rq_ring_has_data(&f.cons));
    assert_false(rq_ring_has_space(&f.prod, 0));
    assert_false(rq_ring_has_space(&f.prod, 1));
    rq_store_relaxed_u32(&f.shm->read_offset, 99); /* corrupt: do not sleep on it */
    assert_true(rq_ring_has_space(&f.prod, 0));
    aligned_free(f.shm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_lines),
        cmocka_unit_test(test_next_and_distance_over_double_range),
        cmocka_unit_test(test_position_from_stored_copy_and_offset),
        cmocka_unit_test(test_capacity_and_order_through_many_laps),
        cmocka_unit_test(test_positions_through_many_laps),
        cmocka_unit_test(test_peer_offsets_are_range_checked),
        cmocka_unit_test(test_was_full),
        cmocka_unit_test(test_has_data_and_space),
    };
    return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
