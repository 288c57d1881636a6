/*
 * test_records_batch.c - rq_reserve_burst_len + rq_commit_burst, the
 * zero-copy burst with a length per message: the packing of a batch at the
 * wrap (padding in its middle, a batch that fills the ring exactly), the
 * lengths 0, 1 and the largest, commits shorter than reserved (packed) and
 * of fewer records than reserved, all or nothing when the room is short,
 * a waiting batch woken by a consumer, and the same call on slot queues.
 * SPSC and MPSC.  The crash points are killed in test_records_crash.c.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "rq.h"

#define CAP 256u
#define MAX 120u

static rq_record_stats rstat(rq *q)
{
    rq_record_stats st;
    assert_int_equal(rq_stat_records(q, &st), RQ_OK);
    return st;
}

/* Moves both offsets of an empty ring on by OFF bytes (a multiple of 8
 * up to CAP - 16), with one record pushed and popped. */
static void move_to(struct th_pair *q, size_t off)
{
    if (off == 0)
        return;
    unsigned char b[CAP] = {0};
    size_t len;
    assert_int_equal(rq_push(q->p, b, off - 8, 0), RQ_OK);
    assert_int_equal(rq_pop(q->c, b, sizeof b, &len, 0), RQ_OK);
}

/* Reserves LENS, fills each buffer with its tag, commits COMMIT[0..K). */
static void reserve_fill_commit(rq *p, const size_t *lens, size_t n, const size_t *commit, size_t k,
                                unsigned tag)
{
    void *bufs[16];
    assert_int_equal(rq_reserve_burst_len(p, lens, n, bufs, 0), (int)n);
    for (size_t i = 0; i < n; i++)
        th_fill_tagged(bufs[i], lens[i], tag + (unsigned)i);
    assert_int_equal(rq_commit_burst(p, commit, k), RQ_OK);
}

/* At offset 112 of 256: 60 (span 64) at 112, 60 at 176, then 40 (span 48)
 * does not fit the 16-byte tail: padding 16, and it starts at 0. */
static void test_padding_in_the_middle_of_a_batch(void **state)
{
    (void)state;
    for (int mpsc = 0; mpsc < 2; mpsc++) {
        struct th_pair q = th_pair_open("batch.pad", CAP, MAX, RQ_RECORDS | (mpsc ? RQ_MPSC : 0));
        move_to(&q, 112);
        size_t lens[3] = {60, 60, 40};
        void *bufs[3];
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 3, bufs, 0), 3);
        /* (The consumer maps the ring elsewhere: offsets, not pointers.) */
        assert_int_equal((unsigned char *)bufs[0] - (unsigned char *)bufs[2], 112);
        assert_int_equal((unsigned char *)bufs[1] - (unsigned char *)bufs[2], 176);
        for (unsigned i = 0; i < 3; i++)
            th_fill_tagged(bufs[i], lens[i], 20 + i);
        assert_int_equal(rstat(q.c).records, 0); /* nothing visible before the commit */
        assert_int_equal(rq_commit_burst(q.p, lens, 3), RQ_OK);
        rq_record_stats st = rstat(q.c);
        assert_int_equal(st.records, 3);
        assert_int_equal(st.padding_bytes, 16);
        assert_int_equal(st.bytes_used, 64 + 64 + 16 + 48);
        for (unsigned i = 0; i < 3; i++)
            th_expect_pop_tagged(q.c, lens[i], 20 + i);
        th_pair_close(&q);
    }
}

/* Batches that fill the ring exactly, with and without padding. */
static void test_a_batch_fills_the_ring_exactly(void **state)
{
    (void)state;
    for (int mpsc = 0; mpsc < 2; mpsc++) {
        struct th_pair q = th_pair_open("batch.full", CAP, MAX, RQ_RECORDS | (mpsc ? RQ_MPSC : 0));
        size_t four[4] = {56, 56, 56, 56}; /* 4 spans of 64 */
        reserve_fill_commit(q.p, four, 4, four, 4, 30);
        assert_int_equal(rstat(q.c).bytes_free, 0);
        assert_int_equal(rq_push(q.p, "x", 1, 0), RQ_EAGAIN);
        for (unsigned i = 0; i < 4; i++)
            th_expect_pop_tagged(q.c, 56, 30 + i);
        /* At 112 of 256: 108 (span 112) to 224, padding 32, 108 at 0. */
        move_to(&q, 112);
        size_t two[2] = {108, 108};
        reserve_fill_commit(q.p, two, 2, two, 2, 40);
        rq_record_stats st = rstat(q.c);
        assert_int_equal(st.bytes_free, 0);
        assert_int_equal(st.records, 2);
        th_expect_pop_tagged(q.c, 108, 40);
        th_expect_pop_tagged(q.c, 108, 41);
        /* More than the ring holds from here (112): the start that fits,
         * 64 + 64, padding 16, 64; a fourth would need 272 bytes. */
        size_t many[6] = {56, 56, 56, 56, 56, 56};
        void *bufs[6];
        assert_int_equal(rq_reserve_burst_len(q.p, many, 6, bufs, 0), 3);
        for (unsigned i = 0; i < 3; i++)
            th_fill_tagged(bufs[i], 56, 90 + i);
        assert_int_equal(rq_commit_burst(q.p, many, 3), RQ_OK);
        assert_int_equal(rstat(q.c).bytes_used, 208);
        for (unsigned i = 0; i < 3; i++)
            th_expect_pop_tagged(q.c, 56, 90 + i);
        move_to(&q, 96); /* from 64 to 160 */
        move_to(&q, 96); /* back at 0 */
        assert_int_equal(rq_reserve_burst_len(q.p, many, 6, bufs, 0), 4);
        assert_int_equal(rq_commit_burst(q.p, many, 4), RQ_OK);
        assert_int_equal(rstat(q.c).bytes_free, 0);
        th_pair_close(&q);
    }
}

static void test_lengths_zero_one_and_the_largest(void **state)
{
    (void)state;
    const uint32_t max = CAP / 2 - RQ_RECORD_HEADER;
    for (int mpsc = 0; mpsc < 2; mpsc++) {
        struct th_pair q = th_pair_open("batch.lens", CAP, max, RQ_RECORDS | (mpsc ? RQ_MPSC : 0));
        size_t lens[3] = {0, 1, max};
        void *bufs[3];
        for (unsigned shift = 0; shift < CAP / 16; shift++) {
            reserve_fill_commit(q.p, lens, 3, lens, 3, shift);
            th_expect_pop_tagged(q.c, 0, shift);
            th_expect_pop_tagged(q.c, 1, shift + 1);
            th_expect_pop_tagged(q.c, max, shift + 2);
            move_to(&q, 16); /* on by 16 each round: every wrap position */
        }
        size_t too_long[2] = {1, max + 1};
        assert_int_equal(rq_reserve_burst_len(q.p, too_long, 2, bufs, 0), RQ_EMSGSIZE);
        assert_int_equal(rq_commit_burst(q.p, lens, 1), RQ_ESTATE); /* nothing reserved */
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 0, bufs, 0), RQ_EINVAL);
        assert_int_equal(rq_reserve_burst_len(q.p, NULL, 1, bufs, 0), RQ_EINVAL);
        assert_int_equal(rstat(q.c).bytes_used, 0);
        th_pair_close(&q);
    }
}

/* Records committed shorter than reserved are packed: the later ones move
 * down behind them, across the wrap too. */
static void test_a_commit_shorter_than_reserved(void **state)
{
    (void)state;
    for (int mpsc = 0; mpsc < 2; mpsc++) {
        struct th_pair q = th_pair_open("batch.short", CAP, MAX, RQ_RECORDS | (mpsc ? RQ_MPSC : 0));
        size_t room[3] = {40, 40, 40}, lens[3] = {10, 40, 0}, over[3] = {10, 41, 0};
        void *bufs[3];
        assert_int_equal(rq_reserve_burst_len(q.p, room, 3, bufs, 0), 3);
        for (unsigned i = 0; i < 3; i++)
            th_fill_tagged(bufs[i], room[i], 50 + i);
        assert_int_equal(rq_commit_burst(q.p, over, 3), RQ_EMSGSIZE); /* kept */
        assert_int_equal(rq_commit_burst(q.p, lens, 3), RQ_OK);
        assert_int_equal(rstat(q.c).bytes_used, 16 + 48 + 8);
        for (unsigned i = 0; i < 3; i++)
            th_expect_pop_tagged(q.c, lens[i], 50 + i);
        /* At 160: 88 (span 96) fills the tail, 40 wraps to 0; committed as
         * 8, the first leaves room and the second now fits the tail. */
        move_to(&q, 160 - 72);
        size_t wide[2] = {88, 40}, narrow[2] = {8, 40};
        assert_int_equal(rq_reserve_burst_len(q.p, wide, 2, bufs, 0), 2);
        th_fill_tagged(bufs[0], 88, 60);
        th_fill_tagged(bufs[1], 40, 61);
        assert_int_equal(rq_commit_burst(q.p, narrow, 2), RQ_OK);
        rq_record_stats st = rstat(q.c);
        assert_int_equal(st.padding_bytes, 0);
        assert_int_equal(st.bytes_used, 16 + 48);
        th_expect_pop_tagged(q.c, 8, 60);
        th_expect_pop_tagged(q.c, 40, 61);
        th_pair_close(&q);
    }
}

/* Fewer committed than reserved: the rest is dropped, unseen. */
static void test_a_commit_of_fewer_than_reserved(void **state)
{
    (void)state;
    for (int mpsc = 0; mpsc < 2; mpsc++) {
        struct th_pair q = th_pair_open("batch.fewer", CAP, MAX, RQ_RECORDS | (mpsc ? RQ_MPSC : 0));
        size_t lens[3] = {30, 30, 30};
        void *bufs[3], *again;
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 3, bufs, 0), 3);
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 3, bufs, 0), RQ_ESTATE);
        assert_int_equal(rq_push(q.p, "x", 1, 0), RQ_ESTATE);
        assert_int_equal(rq_reserve_len(q.p, 30, &again, 0), RQ_OK); /* the first again */
        assert_ptr_equal(again, bufs[0]);
        th_fill_tagged(bufs[0], 30, 70);
        assert_int_equal(rq_commit_burst(q.p, lens, 4), RQ_EINVAL);
        assert_int_equal(rq_commit_burst(q.p, lens, 1), RQ_OK);
        assert_int_equal(rstat(q.c).records, 1);
        th_expect_pop_tagged(q.c, 30, 70);
        /* COUNT 0 drops it all; rq_commit publishes the first alone. */
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 3, bufs, 0), 3);
        assert_int_equal(rq_commit_burst(q.p, lens, 0), RQ_OK);
        assert_int_equal(rstat(q.c).records, 0);
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 3, bufs, 0), 3);
        th_fill_tagged(bufs[0], 20, 71);
        assert_int_equal(rq_commit(q.p, 20), RQ_OK);
        th_expect_pop_tagged(q.c, 20, 71);
        /* rq_commit_burst after a plain rq_reserve_len. */
        assert_int_equal(rq_reserve_len(q.p, 30, &again, 0), RQ_OK);
        th_fill_tagged(again, 12, 72);
        size_t twelve = 12;
        assert_int_equal(rq_commit_burst(q.p, &twelve, 1), RQ_OK);
        th_expect_pop_tagged(q.c, 12, 72);
        th_pair_close(&q);
    }
}

/* Room for part of the batch only: nothing reserved, RQ_EAGAIN or
 * RQ_ETIMEDOUT (rq_push_burst would take the part). */
static void test_all_or_nothing(void **state)
{
    (void)state;
    for (int mpsc = 0; mpsc < 2; mpsc++) {
        struct th_pair q = th_pair_open("batch.all", CAP, MAX, RQ_RECORDS | (mpsc ? RQ_MPSC : 0));
        unsigned char b[CAP] = {0};
        assert_int_equal(rq_push(q.p, b, 120, 0), RQ_OK); /* 128 used */
        size_t lens[3] = {56, 56, 8};                     /* 64 + 64 + 16 */
        void *bufs[3];
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 3, bufs, 0), RQ_EAGAIN);
        uint64_t t0 = th_now_ms();
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 3, bufs, 50), RQ_ETIMEDOUT);
        assert_true(th_now_ms() - t0 >= 40);
        assert_int_equal(rstat(q.c).records, 1);
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 2, bufs, 0), 2); /* this fits */
        assert_int_equal(rq_commit_burst(q.p, lens, 2), RQ_OK);
        assert_int_equal(rstat(q.c).bytes_free, 0);
        th_pair_close(&q);
    }
}

struct later {
    rq *c;
    unsigned n;
};

static void *pop_later(void *arg)
{
    struct later *l = arg;
    unsigned char b[CAP];
    size_t len;
    for (unsigned i = 0; i < l->n; i++) {
        th_sleep_us(20000);
        assert_int_equal(rq_pop(l->c, b, sizeof b, &len, 1000), RQ_OK);
    }
    return NULL;
}

/* A batch waiting for more room than one record's, which the consumer's
 * wake test does not signal, is through soon after the room is there. */
static void test_a_waiting_batch_gets_its_room(void **state)
{
    (void)state;
    for (int flags = 0; flags < 3; flags++) {
        uint32_t f = RQ_RECORDS | (flags == 1 ? RQ_MPSC : 0) | (flags == 2 ? RQ_FULL_FENCES : 0);
        struct th_pair q = th_pair_open("batch.wait", 1024, 56, f);
        unsigned char b[64] = {0};
        for (unsigned i = 0; i < 16; i++)
            assert_int_equal(rq_push(q.p, b, 56, 0), RQ_OK); /* full: 16 x 64 */
        size_t lens[10] = {56, 56, 56, 56, 56, 56, 56, 56, 56, 56};
        void *bufs[10];
        struct later l = {q.c, 10};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, pop_later, &l), 0);
        uint64_t t0 = th_now_ms();
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 10, bufs, 10000), 10);
        assert_true(th_now_ms() - t0 < 800); /* not the 1 s re-check */
        assert_int_equal(rq_commit_burst(q.p, lens, 10), RQ_OK);
        pthread_join(t, NULL);
        assert_int_equal(rstat(q.c).records, 16);
        th_pair_close(&q);
    }
}

/* On a slot queue: each length up to slot_size, all of the batch or none
 * (rq_reserve_burst would take the free part). */
static void test_on_slot_queues(void **state)
{
    (void)state;
    for (int mpsc = 0; mpsc < 2; mpsc++) {
        struct th_pair q = th_pair_open("batch.slots", 4, 32, mpsc ? RQ_MPSC : 0);
        size_t lens[5] = {32, 1, 0, 32, 7}, too_long[2] = {1, 33};
        void *bufs[5];
        assert_int_equal(rq_reserve_burst_len(q.p, too_long, 2, bufs, 0), RQ_EMSGSIZE);
        assert_int_equal(rq_push(q.p, "\x07", 1, 0), RQ_OK);
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 4, bufs, 0), RQ_EAGAIN); /* 3 free */
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 4, bufs, 30), RQ_ETIMEDOUT);
        th_expect_pop_tagged(q.c, 1, 1); /* tag 1's first byte is 7 */
        /* Five asked of a ring of four: the four it holds. */
        assert_int_equal(rq_reserve_burst_len(q.p, lens, 5, bufs, 0), 4);
        for (unsigned i = 0; i < 4; i++)
            th_fill_tagged(bufs[i], lens[i], 80 + i);
        assert_int_equal(rq_commit_burst(q.p, lens, 4), RQ_OK);
        for (unsigned i = 0; i < 4; i++)
            th_expect_pop_tagged(q.c, lens[i], 80 + i);
        th_pair_close(&q);
    }
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {{"none", NULL}};
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_padding_in_the_middle_of_a_batch),
        cmocka_unit_test(test_a_batch_fills_the_ring_exactly),
        cmocka_unit_test(test_lengths_zero_one_and_the_largest),
        cmocka_unit_test(test_a_commit_shorter_than_reserved),
        cmocka_unit_test(test_a_commit_of_fewer_than_reserved),
        cmocka_unit_test(test_all_or_nothing),
        cmocka_unit_test(test_a_waiting_batch_gets_its_room),
        cmocka_unit_test(test_on_slot_queues),
    };
    return cmocka_run_group_tests_name("records_batch", tests, NULL, NULL);
}
