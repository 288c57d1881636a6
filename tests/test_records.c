/*
 * test_records.c - record queues (RQ_RECORDS): configuration, packing,
 * the padding at the wrap, lengths, zero-copy reservations, sequence
 * numbers, timeouts, statistics, and hostile segments (every value read
 * from the segment checked: RQ_ECORRUPT, never an out-of-bounds access).
 * The crash points and kill tortures are in test_records_crash.c.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "records.h"
#include "records_impl.h"
#include "rq.h"

#define CAP 256u
#define MAX 120u

static rq_config rec_config(uint32_t cap, uint32_t max, uint32_t flags)
{
    rq_config cfg = {cap, max, flags | RQ_RECORDS, 0};
    return cfg;
}

static void push_tagged(rq *p, size_t len, unsigned tag)
{
    unsigned char buf[4096];
    th_fill_tagged(buf, len, tag);
    assert_int_equal(rq_push(p, buf, len, 0), RQ_OK);
}

static rq_record_stats rstat(rq *q)
{
    rq_record_stats st;
    assert_int_equal(rq_stat_records(q, &st), RQ_OK);
    return st;
}

static void test_config_is_checked(void **state)
{
    (void)state;
    const char *name = th_name("rec.cfg");
    rq *q = NULL;
    const uint32_t bad[][2] = {{CAP + 8, MAX},
                               {48, 16},
                               {CAP, CAP / 2 - RQ_RECORD_HEADER + 1},
                               {CAP, 0},
                               {RQ_SLOT_COUNT_MAX + 16u, 8}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rq_config cfg = rec_config(bad[i][0], bad[i][1], 0);
        assert_int_equal(rq_open(&q, name, RQ_PRODUCER, &cfg), RQ_EINVAL);
        assert_null(q);
    }
    rq_config ok = rec_config(CAP, CAP / 2 - RQ_RECORD_HEADER, 0);
    assert_int_equal(rq_open(&q, name, RQ_PRODUCER, &ok), RQ_OK);
    rq_stats st;
    assert_int_equal(rq_stat(q, &st), RQ_OK);
    assert_int_equal(st.slot_count, CAP);
    assert_int_equal(st.slot_size, CAP / 2 - RQ_RECORD_HEADER);
    assert_true(st.flags & RQ_RECORDS);
    /* The other kind, or another geometry, under the same name: EEXIST. */
    rq *o = NULL;
    rq_config slots = {4, 64, 0, 0};
    assert_int_equal(rq_open(&o, name, RQ_CONSUMER, &slots), RQ_EEXIST);
    rq_config other = rec_config(CAP * 2, MAX, 0);
    assert_int_equal(rq_open(&o, name, RQ_CONSUMER, &other), RQ_EEXIST);
    rq_config mpsc = rec_config(CAP, CAP / 2 - RQ_RECORD_HEADER, RQ_MPSC);
    assert_int_equal(rq_open(&o, name, RQ_CONSUMER, &mpsc), RQ_EEXIST);
    assert_int_equal(rq_open(&o, name, RQ_CONSUMER, NULL), RQ_OK); /* attach */
    rq_close(o);
    rq_close(q);
    rq_unlink(name);
    /* A slot queue refuses a records config, and has no record statistics. */
    const char *sname = th_name("rec.cfg.slots");
    rq *s = th_open(sname, RQ_PRODUCER, 4, 64, 0);
    rq_config r = rec_config(CAP, MAX, 0);
    assert_int_equal(rq_open(&o, sname, RQ_CONSUMER, &r), RQ_EEXIST);
    rq_record_stats rs;
    assert_int_equal(rq_stat_records(s, &rs), RQ_EINVAL);
    rq_close(s);
    rq_unlink(sname);
}

/* Records are packed: a ring of CAP bytes holds CAP / span of them. */
static void test_records_are_packed(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("rec.pack", CAP, MAX, RQ_RECORDS);
    /* 4-byte header + 24..28 bytes: 32 bytes each, 8 of them fill the ring. */
    for (unsigned i = 0; i < 8; i++)
        push_tagged(q.p, 24 + (i % 5), i);
    assert_int_equal(rq_push(q.p, "x", 1, 0), RQ_EAGAIN);
    rq_record_stats st = rstat(q.c);
    assert_int_equal(st.bytes_used, CAP);
    assert_int_equal(st.bytes_free, 0);
    assert_int_equal(st.records, 8);
    assert_int_equal(st.capacity, CAP);
    assert_int_equal(st.max_record, MAX);
    assert_int_equal(st.largest_record, 28);
    rq_stats s;
    assert_int_equal(rq_stat(q.c, &s), RQ_OK);
    assert_int_equal(s.depth, 8);
    for (unsigned i = 0; i < 8; i++)
        th_expect_pop_tagged(q.c, 24 + (i % 5), i);
    st = rstat(q.c);
    assert_int_equal(st.bytes_used, 0);
    assert_int_equal(st.records, 0);
    /* Lengths 0 and 1 are records too, 8 bytes each with their header. */
    assert_int_equal(rq_push(q.p, NULL, 0, 0), RQ_OK);
    push_tagged(q.p, 1, 9);
    st = rstat(q.c);
    assert_int_equal(st.bytes_used, 8 + 8);
    th_expect_pop_tagged(q.c, 0, 0);
    th_expect_pop_tagged(q.c, 1, 9);
    /* Records of up to 4 bytes take one 8-byte cell: CAP / 8 fill it. */
    for (unsigned i = 0; i < CAP / 8; i++)
        push_tagged(q.p, i % 5, i);
    assert_int_equal(rq_push(q.p, NULL, 0, 0), RQ_EAGAIN);
    assert_int_equal(rstat(q.c).records, CAP / 8);
    for (unsigned i = 0; i < CAP / 8; i++)
        th_expect_pop_tagged(q.c, i % 5, i);
    th_pair_close(&q);
}

/* A record of LEN takes RQ_RECORD_SPAN(LEN) = round8(4 + LEN) bytes, and
 * every payload, pushed, reserved or peeked, is 8-aligned (a struct can be
 * read in place), at every offset of the ring, across its wraps. */
static void test_payloads_are_8_aligned_and_take_their_span(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("rec.align", CAP, MAX, RQ_RECORDS);
    unsigned char buf[MAX];
    memset(buf, 0x5a, sizeof buf);
    for (unsigned i = 0; i <= 3 * MAX / 2; i++) {
        size_t n = i % (MAX + 1);
        uint64_t padded = rstat(q.c).padding_bytes;
        void *slot;
        if (i % 2) {
            assert_int_equal(rq_push(q.p, buf, n, 0), RQ_OK);
        } else {
            assert_int_equal(rq_reserve_len(q.p, n, &slot, 0), RQ_OK);
            assert_int_equal((uintptr_t)slot % 8, 0);
            memcpy(slot, buf, n);
            assert_int_equal(rq_commit(q.p, n), RQ_OK);
        }
        rq_record_stats st = rstat(q.c); /* padding before it if it wrapped */
        assert_int_equal(st.bytes_used, RQ_RECORD_SPAN(n) + st.padding_bytes - padded);
        assert_int_equal(RQ_RECORD_SPAN(n), (4 + n + 7) / 8 * 8);
        const void *msg;
        size_t got;
        assert_int_equal(rq_peek(q.c, &msg, &got, 0), RQ_OK);
        assert_int_equal(got, n);
        assert_int_equal((uintptr_t)msg % 8, 0);
        assert_memory_equal(msg, buf, n);
        assert_int_equal(rq_release(q.c), RQ_OK);
    }
    th_pair_close(&q);
}

/* A record that does not fit before the end is preceded by padding and
 * starts at the ring's beginning, in one piece. */
static void test_wrap_pads_and_keeps_records_contiguous(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("rec.wrap", CAP, MAX, RQ_RECORDS);
    push_tagged(q.p, 108, 1); /* span 112: [0, 112) */
    const void *first;
    size_t len;
    assert_int_equal(rq_peek(q.c, &first, &len, 0), RQ_OK);
    assert_int_equal(rq_release(q.c), RQ_OK);
    push_tagged(q.p, 108, 2); /* [112, 224) */
    push_tagged(q.p, 108, 3); /* tail 32 < 112: padding 32, then [0, 112) */
    rq_record_stats st = rstat(q.c);
    assert_int_equal(st.padding_bytes, 32);
    assert_int_equal(st.bytes_used, 112 + 32 + 112);
    assert_int_equal(st.records, 2);
    assert_int_equal(rq_push(q.p, "x", 1, 0), RQ_EAGAIN); /* 0 free */
    th_expect_pop_tagged(q.c, 108, 2);
    const void *msg;
    assert_int_equal(rq_peek(q.c, &msg, &len, 0), RQ_OK);
    assert_ptr_equal(msg, first); /* the ring's start: one pointer, one length */
    unsigned char want[108];
    th_fill_tagged(want, sizeof want, 3);
    assert_memory_equal(msg, want, sizeof want);
    assert_int_equal(rq_release(q.c), RQ_OK);
    st = rstat(q.c);
    assert_int_equal(st.bytes_used, 0); /* padding freed with its record */
    /* Around the ring many times with every length: all come back whole. */
    unsigned tag = 10;
    for (unsigned round = 0; round < 40; round++) {
        for (size_t l = round % 3; l <= MAX; l += 7 + round % 5) {
            push_tagged(q.p, l, tag);
            th_expect_pop_tagged(q.c, l, tag++);
        }
    }
    rq_stats s;
    assert_int_equal(rq_stat(q.c, &s), RQ_OK);
    assert_int_equal(s.pushed, s.popped);
    th_pair_close(&q);
}

/* A record that wraps needs its padding as well as its own bytes: with
 * 192 bytes used and the write index at 224, a 40-byte record (48 bytes)
 * would fit the free 64 only without its 32 bytes of padding. */
static void test_room_counts_the_padding(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("rec.room", CAP, MAX, RQ_RECORDS);
    for (unsigned i = 0; i < 7; i++)
        push_tagged(q.p, 24, i);      /* [0, 224) */
    th_expect_pop_tagged(q.c, 24, 0); /* 192 used from 32 */
    assert_int_equal(rq_push(q.p, "0123456789012345678901234567890123456789", 40, 0), RQ_EAGAIN);
    push_tagged(q.p, 24, 7); /* fits before the end: [224, 256) */
    for (unsigned i = 1; i < 8; i++)
        th_expect_pop_tagged(q.c, 24, i); /* none overwritten */
    th_pair_close(&q);
}

/* Pushes the COUNT records of LENS from P, tagged from TAG on; with C,
 * pops them again.  Returns the next tag. */
static unsigned push_tagged_run(rq *p, rq *c, const size_t *lens, unsigned count, unsigned tag)
{
    for (unsigned i = 0; i < count; i++) {
        push_tagged(p, lens[i], tag + i);
        if (c)
            th_expect_pop_tagged(c, lens[i], tag + i);
    }
    return tag + count;
}

/* An MPSC producer p1's copy of the consumer's word, left from an earlier
 * push while p2 went round the ring, is not trusted: the consumer is
 * 2C - 8 bytes past the copy, the write word 8 records past it, and the
 * ring full, where the distance modulo 2C from the copy shows room over
 * the oldest unread record (few records: large ones, C / span(largest) =
 * 2).  LOADED: the copy is one p1 loaded (its third push found it 2
 * records old), else the one it opened with (the zeroed words every
 * segment starts with). */
static void check_stale_copy_not_trusted(int loaded)
{
    enum { LARGEST = CAP / 2 - RQ_RECORD_HEADER }; /* span 128 */
    const char *name = th_name(loaded ? "rec.stale.loaded" : "rec.stale");
    rq *p1 = th_open(name, RQ_PRODUCER, CAP, LARGEST, RQ_RECORDS | RQ_MPSC);
    rq *p2 = th_open(name, RQ_PRODUCER, CAP, LARGEST, RQ_RECORDS | RQ_MPSC);
    rq *c = th_open(name, RQ_CONSUMER, CAP, LARGEST, RQ_RECORDS | RQ_MPSC);
    static const size_t one[] = {1, 1, 1};
    unsigned tag = push_tagged_run(p1, c, one, 1, 0); /* [0, 8) */
    if (loaded) {
        tag = push_tagged_run(p1, NULL, one, 2, tag); /* [8, 24): p1's copy now (8, record 1) */
        th_expect_pop_tagged(c, 1, 1);
        th_expect_pop_tagged(c, 1, 2);
    }
    /* Spans 120, 128, 128, 120 from 8, or 104, 128, 128, 128 from 24, none
     * wrapping: the consumer at 504 or 512, 2C - 8 past the copy. */
    static const size_t lap[2][4] = {{116, LARGEST, LARGEST, 116},
                                     {100, LARGEST, LARGEST, LARGEST}};
    tag = push_tagged_run(p2, c, lap[loaded], 4, tag);
    /* Full: [504, 512), [512, 640), [640, 760); or [512, 640), [640, 768). */
    static const size_t fill[2][3] = {{1, LARGEST, 116}, {LARGEST, LARGEST, 0}};
    unsigned filled = loaded ? 2 : 3;
    push_tagged_run(p2, NULL, fill[loaded], filled, tag);
    assert_int_equal(rq_push(p2, "z", 1, 0), RQ_EAGAIN);
    /* 760 - 0 or 768 - 8 modulo 2C: 248, room for 8 more by p1's copy. */
    assert_int_equal(rq_push(p1, "z", 1, 0), RQ_EAGAIN);
    for (unsigned i = 0; i < filled; i++)
        th_expect_pop_tagged(c, fill[loaded][i], tag + i); /* none overwritten */
    unsigned char m;
    size_t len;
    assert_int_equal(rq_pop(c, &m, 1, &len, 0), RQ_EAGAIN);
    push_tagged_run(p1, c, one, 1, tag + filled);
    rq_close(p1);
    rq_close(p2);
    rq_close(c);
    rq_unlink(name);
}

static void test_a_stale_cache_of_the_consumer_is_not_trusted(void **state)
{
    (void)state;
    check_stale_copy_not_trusted(0);
    check_stale_copy_not_trusted(1);
}

/* A copy may be trusted for a number of records after its load that
 * counts the bytes the copy trailed the write word by, and paddings.
 * Records of span 72 (C / 72 = 3, three records and a padding of 40 a
 * lap): FROM_ZERO, p1's copy is the zeroed words it opened with, and p2's
 * 7 records, 504 bytes of them but 584 with the two paddings, take the
 * write word past 2C to a full ring whose distance modulo 2C from the
 * copy (72) shows room; else p1 loads its copy with 224 bytes in the ring
 * and p2's 4 records (2 paddings) take the write word 360 bytes on, 2C -
 * 224 + 72. */
static void check_copy_counts_paddings_and_bytes(int from_zero)
{
    enum { LARGEST = 68 }; /* span 72 */
    const char *name = th_name(from_zero ? "rec.budget.zero" : "rec.budget.loaded");
    rq *p1 = th_open(name, RQ_PRODUCER, CAP, LARGEST, RQ_RECORDS | RQ_MPSC);
    rq *p2 = th_open(name, RQ_PRODUCER, CAP, LARGEST, RQ_RECORDS | RQ_MPSC);
    rq *c = th_open(name, RQ_CONSUMER, CAP, LARGEST, RQ_RECORDS | RQ_MPSC);
    static const size_t big[] = {LARGEST, LARGEST, LARGEST, LARGEST}, small[] = {4};
    static const unsigned char record[LARGEST];
    unsigned tag = push_tagged_run(p2, NULL, big, 3, 0); /* [0, 216) */
    if (!from_zero) {
        tag = push_tagged_run(p1, NULL, small, 1, tag); /* [216, 224) */
        /* A pad of 32 and 72 do not fit by p1's copy: it loads, 224 used. */
        assert_int_equal(rq_push(p1, record, LARGEST, 0), RQ_EAGAIN);
    }
    unsigned first = 0;
    if (from_zero) {
        for (; first < 3; first++)
            th_expect_pop_tagged(c, LARGEST, first);  /* at 216 */
        tag = push_tagged_run(p2, NULL, big, 3, tag); /* pad [216, 256), [256, 472) */
        th_expect_pop_tagged(c, LARGEST, first++);    /* at 328 */
    } else {
        for (; first < 4; first++)
            th_expect_pop_tagged(c, first < 3 ? LARGEST : 4, first); /* at 224 */
        tag = push_tagged_run(p2, NULL, big, 3, tag); /* pad [224, 256), [256, 472) */
        th_expect_pop_tagged(c, LARGEST, first++);    /* at 328 */
    }
    tag = push_tagged_run(p2, NULL, big, 1, tag); /* pad [472, 512), [512, 584): full */
    assert_int_equal(rq_push(p2, "z", 1, 0), RQ_EAGAIN);
    /* 584 - 0 is 72 modulo 2C: room for 184 more by p1's copy. */
    assert_int_equal(rq_push(p1, "z", 1, 0), RQ_EAGAIN);
    for (; first < tag; first++)
        th_expect_pop_tagged(c, LARGEST, first); /* none overwritten */
    unsigned char m;
    size_t len;
    assert_int_equal(rq_pop(c, &m, 1, &len, 0), RQ_EAGAIN);
    push_tagged_run(p1, c, small, 1, tag);
    rq_close(p1);
    rq_close(p2);
    rq_close(c);
    rq_unlink(name);
}

static void test_a_copy_counts_paddings_and_the_bytes_it_trailed(void **state)
{
    (void)state;
    check_copy_counts_paddings_and_bytes(1);
    check_copy_counts_paddings_and_bytes(0);
}

/* The fewest records, each of 1..A units (a unit: 8 bytes), that take the
 * write word of a ring of C units from index AT to TARGET units or more
 * past where it was, each one that does not fit before the end behind
 * a padding to it: a breadth-first search over the units moved (the
 * index is AT plus them, modulo C). */
static unsigned fewest_records_to(unsigned c, unsigned a, unsigned at, unsigned target)
{
    enum { MOVED = 128 }; /* > 2C: TARGET <= 2C, C <= 32 units */
    unsigned char seen[MOVED] = {0};
    unsigned moved[MOVED], n = 1, next = 0;
    assert_true(target <= 2 * c && 2 * c < MOVED);
    moved[0] = 0;
    seen[0] = 1;
    for (unsigned k = 1;; k++) {
        unsigned level_end = n;
        assert_true(next < level_end); /* some record always moves it on */
        for (; next < level_end; next++) {
            for (unsigned span = 1; span <= a; span++) {
                unsigned tail = c - (at + moved[next]) % c, pad = span > tail ? tail : 0;
                unsigned b = moved[next] + pad + span;
                if (b >= target)
                    return k;
                if (!seen[b]) {
                    seen[b] = 1;
                    moved[n++] = b;
                }
            }
        }
    }
}

/* The number of records an MPSC producer's copy of the consumer's word
 * stays trusted for after its load (rec_cache_budget), checked against
 * every ring of up to 32 units, every largest record up to half of it,
 * every byte count between the copy and the write word at the load, and
 * every index the write word was at: no sequence of records that few
 * takes the write word 2C or more past the copy, where the distance
 * modulo 2C would be wrong. */
static void test_the_copys_budget_keeps_it_within_2c(void **state)
{
    (void)state;
    unsigned tight = 0;
    for (unsigned c = 2; c <= 32; c++) {
        for (unsigned a = 1; a <= c / 2; a++) {
            struct rq_rec r;
            memset(&r, 0, sizeof r);
            rec_set_geometry(&r, c * RQ_REC_CELL, a * RQ_REC_CELL - RQ_RECORD_HEADER);
            assert_int_equal(r.max_span, a * RQ_REC_CELL);
            for (unsigned used = 0; used <= c; used++) {
                rec_cache_budget(&r, 1000, used * RQ_REC_CELL);
                assert_int_equal(r.read_cache_seq, 1000);
                assert_true(r.read_cache_records >= c / a); /* never below C / A */
                for (unsigned at = 0; at < c; at++) {
                    unsigned k = fewest_records_to(c, a, at, 2 * c - used);
                    if (k < r.read_cache_records)
                        fail_msg("C %u, A %u, %u used, at %u: %u records reach 2C, budget %u", c, a,
                                 used, at, k, r.read_cache_records);
                    tight += k == r.read_cache_records;
                }
            }
        }
    }
    assert_true(tight > 0); /* the search reaches the bound somewhere */
}

/* Moves the empty ring of Q on to index AT with records that never wrap
 * (each one's span at most what is left before AT or the end). */
static void advance_to(struct th_pair *q, uint32_t at)
{
    for (;;) {
        rq_stats st;
        assert_int_equal(rq_stat(q->c, &st), RQ_OK);
        uint32_t idx = (uint32_t)(st.write_offset % CAP);
        if (idx == at)
            return;
        uint32_t room = at > idx ? at - idx : CAP - idx, step = room < CAP / 2 ? room : CAP / 2;
        push_tagged(q->p, step - RQ_RECORD_HEADER, idx);
        th_expect_pop_tagged(q->c, step - RQ_RECORD_HEADER, idx);
    }
}

/* A largest record (its span C/2) always fits an empty ring, wherever the
 * offsets are: at every index a record can start at, before the end or
 * behind padding to it. */
static void test_largest_record_fits_an_empty_ring_anywhere(void **state)
{
    (void)state;
    const uint32_t max = CAP / 2 - RQ_RECORD_HEADER;
    struct th_pair q = th_pair_open("rec.max", CAP, max, RQ_RECORDS);
    for (uint32_t at = 0; at < CAP; at += RQ_REC_CELL) {
        advance_to(&q, at);
        uint64_t padded = rstat(q.c).padding_bytes;
        push_tagged(q.p, max, at);
        assert_int_equal(rstat(q.c).padding_bytes - padded, at > CAP / 2 ? CAP - at : 0);
        th_expect_pop_tagged(q.c, max, at);
    }
    th_pair_close(&q);
}

static void test_lengths_too_large(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("rec.size", CAP, MAX, RQ_RECORDS);
    unsigned char buf[CAP];
    th_fill_tagged(buf, sizeof buf, 5);
    assert_int_equal(rq_push(q.p, buf, MAX + 1, 0), RQ_EMSGSIZE);
    rq_record_stats st = rstat(q.c);
    assert_int_equal(st.bytes_used, 0);
    assert_int_equal(st.payload_bytes, 0);
    push_tagged(q.p, 50, 4);
    size_t len = 0;
    assert_int_equal(rq_pop(q.c, buf, 49, &len, 0), RQ_EMSGSIZE);
    assert_int_equal(len, 50); /* reported, left in place */
    assert_int_equal(rstat(q.c).records, 1);
    th_expect_pop_tagged(q.c, 50, 4);
    /* The same where the common path finds it (inside the consumer's
     * room, set by the pop before it): still left in place. */
    push_tagged(q.p, 10, 6);
    push_tagged(q.p, 50, 7);
    th_expect_pop_tagged(q.c, 10, 6);
    assert_int_equal(rq_pop(q.c, buf, 49, &len, 0), RQ_EMSGSIZE);
    assert_int_equal(len, 50);
    assert_int_equal(rstat(q.c).records, 1);
    th_expect_pop_tagged(q.c, 50, 7);
    /* And where only the long way finds it: behind padding at the ring's
     * end.  Used so far: 56 + 16 + 56 bytes, the write index at 128; 100
     * bytes (a span of 104) fit, then 108 (112) do not fit the 24 left
     * before the end: padding, and the record at the ring's start. */
    push_tagged(q.p, 100, 8);
    th_expect_pop_tagged(q.c, 100, 8);
    push_tagged(q.p, 108, 9);
    assert_int_equal(rstat(q.c).padding_bytes, 24);
    assert_int_equal(rq_pop(q.c, buf, 107, &len, 0), RQ_EMSGSIZE);
    assert_int_equal(len, 108);
    assert_int_equal(rstat(q.c).records, 1);
    th_expect_pop_tagged(q.c, 108, 9);
    th_pair_close(&q);
}

/* Arguments that cannot work are refused before anything is read or
 * freed: the record waiting stays for the next good call. */
static void test_bad_arguments_leave_the_record(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("rec.args", CAP, MAX, RQ_RECORDS);
    unsigned char buf[CAP];
    const void *m;
    size_t len = 7;
    rq_msg_info info;
    assert_int_equal(rq_push(q.p, NULL, 5, 0), RQ_EINVAL);
    assert_int_equal(rq_reserve(q.p, NULL, 0), RQ_EINVAL);
    assert_int_equal(rq_reserve_len(q.p, MAX + 1, NULL, 0), RQ_EINVAL); /* not EMSGSIZE */
    assert_int_equal(rstat(q.c).records, 0);
    push_tagged(q.p, 20, 6);
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, NULL, 0), RQ_EINVAL);
    assert_int_equal(rq_pop(q.c, NULL, sizeof buf, &len, 0), RQ_EINVAL);
    assert_int_equal(rq_pop_info(q.c, buf, sizeof buf, NULL, &info, 0), RQ_EINVAL);
    assert_int_equal(rq_pop_info(q.c, NULL, sizeof buf, &len, &info, 0), RQ_EINVAL);
    assert_int_equal(rq_peek(q.c, NULL, &len, 0), RQ_EINVAL);
    assert_int_equal(rq_peek(q.c, &m, NULL, 0), RQ_EINVAL);
    assert_int_equal(rq_peek_info(q.c, NULL, &len, &info, 0), RQ_EINVAL);
    assert_int_equal(len, 7); /* nothing written */
    assert_int_equal(rstat(q.c).records, 1);
    /* A peek holds it: a pop is refused and frees nothing either. */
    assert_int_equal(rq_peek(q.c, &m, &len, 0), RQ_OK);
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, NULL, 0), RQ_EINVAL); /* checked first */
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 0), RQ_ESTATE);
    assert_int_equal(rq_pop_info(q.c, buf, sizeof buf, &len, &info, 0), RQ_ESTATE);
    assert_int_equal(rq_release(q.c), RQ_OK);
    assert_int_equal(rstat(q.c).records, 0);
    push_tagged(q.p, 20, 7);
    th_expect_pop_tagged(q.c, 20, 7);
    th_pair_close(&q);
}

static void test_reserve_with_a_length(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("rec.reserve", CAP, MAX, RQ_RECORDS);
    void *slot, *again;
    assert_int_equal(rq_reserve_len(q.p, MAX + 1, &slot, 0), RQ_EMSGSIZE);
    assert_int_equal(rq_reserve_len(q.p, 40, &slot, 0), RQ_OK);
    assert_int_equal(rq_reserve_len(q.p, 30, &again, 0), RQ_OK); /* fits: the same */
    assert_ptr_equal(slot, again);
    assert_int_equal(rq_reserve_len(q.p, 41, &again, 0), RQ_ESTATE);
    assert_int_equal(rq_push(q.p, "x", 1, 0), RQ_ESTATE);
    assert_int_equal(rq_commit(q.p, 41), RQ_EMSGSIZE); /* kept */
    assert_int_equal(rstat(q.c).records, 0);           /* unpublished */
    th_fill_tagged(slot, 12, 6);
    assert_int_equal(rq_commit(q.p, 12), RQ_OK);
    assert_int_equal(rq_commit(q.p, 12), RQ_ESTATE);
    assert_int_equal(rstat(q.c).bytes_used, 16); /* round8(4 + 12): the committed length */
    th_expect_pop_tagged(q.c, 12, 6);
    /* rq_reserve reserves the largest record. */
    assert_int_equal(rq_reserve(q.p, &slot, 0), RQ_OK);
    th_fill_tagged(slot, MAX, 7);
    assert_int_equal(rq_commit(q.p, MAX), RQ_OK);
    th_expect_pop_tagged(q.c, MAX, 7);
    /* A reservation dropped by close leaves nothing. */
    assert_int_equal(rq_reserve_len(q.p, 64, &slot, 0), RQ_OK);
    rq_close(q.p);
    assert_int_equal(rstat(q.c).records, 0);
    q.p = th_open(q.name, RQ_PRODUCER, CAP, MAX, RQ_RECORDS);
    push_tagged(q.p, 64, 8);
    th_expect_pop_tagged(q.c, 64, 8);
    th_pair_close(&q);
    /* rq_reserve_len on a slot queue: any length up to slot_size. */
    const char *sname = th_name("rec.reserve.slots");
    rq *p = th_open(sname, RQ_PRODUCER, 2, 64, 0);
    assert_int_equal(rq_reserve_len(p, 65, &slot, 0), RQ_EMSGSIZE);
    assert_int_equal(rq_reserve_len(p, 64, &slot, 0), RQ_OK);
    assert_int_equal(rq_commit(p, 3), RQ_OK);
    rq_close(p);
    rq_unlink(sname);
}

static void test_sequence_numbers_and_redelivery(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("rec.seq", CAP, MAX, RQ_RECORDS);
    uint64_t next;
    for (unsigned i = 0; i < 30; i++) {
        assert_int_equal(rq_next_seq(q.p, &next), RQ_OK);
        assert_int_equal(next, i);
        push_tagged(q.p, 1 + (i * 37) % MAX, i);
        const void *msg;
        size_t len;
        rq_msg_info info;
        assert_int_equal(rq_peek_info(q.c, &msg, &len, &info, 0), RQ_OK);
        assert_int_equal(info.seq, i);
        assert_int_equal(info.flags, 0);
        if (i == 29)
            break; /* left peeked */
        assert_int_equal(rq_release(q.c), RQ_OK);
    }
    rq_close(q.c); /* handed out, not released */
    q.c = th_open(q.name, RQ_CONSUMER, CAP, MAX, RQ_RECORDS);
    assert_int_equal(rq_next_seq(q.c, &next), RQ_OK);
    assert_int_equal(next, 29);
    rq_msg_info info;
    unsigned char buf[MAX];
    size_t len;
    assert_int_equal(rq_pop_info(q.c, buf, sizeof buf, &len, &info, 0), RQ_OK);
    assert_int_equal(info.seq, 29);
    assert_int_equal(info.flags, RQ_MSG_REDELIVERED);
    /* A restarted producer goes on with the next number. */
    rq_close(q.p);
    q.p = th_open(q.name, RQ_PRODUCER, CAP, MAX, RQ_RECORDS);
    assert_int_equal(rq_next_seq(q.p, &next), RQ_OK);
    assert_int_equal(next, 30);
    push_tagged(q.p, 3, 30);
    assert_int_equal(rq_pop_info(q.c, buf, sizeof buf, &len, &info, 0), RQ_OK);
    assert_int_equal(info.seq, 30);
    assert_int_equal(info.flags, 0);
    th_pair_close(&q);
}

static void test_timeouts(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("rec.time", CAP, MAX, RQ_RECORDS);
    unsigned char buf[MAX];
    size_t len;
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 0), RQ_EAGAIN);
    uint64_t t0 = th_now_ms();
    assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 30), RQ_ETIMEDOUT);
    assert_true(th_now_ms() - t0 >= 25);
    push_tagged(q.p, MAX, 1);
    push_tagged(q.p, 60, 2); /* 128 + 64 = 192 used: MAX needs 128 */
    assert_int_equal(rq_push(q.p, buf, MAX, 0), RQ_EAGAIN);
    t0 = th_now_ms();
    assert_int_equal(rq_push(q.p, buf, MAX, 30), RQ_ETIMEDOUT);
    assert_true(th_now_ms() - t0 >= 25);
    push_tagged(q.p, 40, 3); /* 48 more fit */
    th_pair_close(&q);
}

struct walk {
    unsigned n;
    rq_record_entry e[16];
};

static int collect(void *ctx, const rq_record_entry *e)
{
    struct walk *w = ctx;
    w->e[w->n++] = *e;
    return w->n == 16;
}

static void test_dump_walks_without_consuming(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("rec.dump", CAP, MAX, RQ_RECORDS);
    struct walk w = {0};
    assert_int_equal(rq_dump_records(q.keep ? q.keep : q.c, collect, &w), RQ_OK);
    assert_int_equal(w.n, 0);
    push_tagged(q.p, 108, 1);
    th_expect_pop_tagged(q.c, 108, 1);
    push_tagged(q.p, 108, 2); /* [112, 224) */
    push_tagged(q.p, 5, 3);   /* [224, 240) */
    push_tagged(q.p, 20, 4);  /* padding 16, then [0, 24) */
    rq *o = th_open(q.name, RQ_OBSERVER, CAP, MAX, RQ_RECORDS);
    assert_int_equal(rq_dump_records(o, collect, &w), RQ_OK);
    assert_int_equal(w.n, 3);
    const uint32_t offsets[] = {112, 224, 0}, lens[] = {108, 5, 20}, pads[] = {0, 0, 16};
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(w.e[i].seq, 1 + i);
        assert_int_equal(w.e[i].offset, offsets[i]);
        assert_int_equal(w.e[i].len, lens[i]);
        assert_int_equal(w.e[i].padding, pads[i]);
        unsigned char want[108];
        th_fill_tagged(want, lens[i], 2 + i);
        assert_memory_equal(w.e[i].data, want, lens[i]);
    }
    assert_int_equal(rstat(o).records, 3); /* nothing consumed */
    rq_close(o);
    const char *sname = th_name("rec.dump.slots");
    rq *s = th_open(sname, RQ_OBSERVER, 2, 8, 0);
    assert_int_equal(rq_dump_records(s, collect, &w), RQ_EINVAL);
    rq_close(s);
    rq_unlink(sname);
    th_pair_close(&q);
}

/* ---- threads: producers and a consumer in one process --------------- */

#define THREAD_RECORDS 20000u
#define THREAD_MAX 300u

struct thread_arg {
    const char *name;
    unsigned stream;
    int rc;
};

/* ---- bursts ----------------------------------------------------------- */

/* Record lengths of a burst test: 0..MAX, varied. */
static size_t burst_len(unsigned tag)
{
    return (tag * 37u + tag / 3u) % (MAX + 1);
}

/* One rq_push_burst of records TAG.. (at most N): how many went in, or
 * 0 if the ring was full. */
static unsigned push_burst_tagged(rq *p, unsigned tag, unsigned n)
{
    static unsigned char bufs[64][MAX];
    const void *msgs[64];
    size_t lens[64];
    for (unsigned i = 0; i < n; i++) {
        lens[i] = burst_len(tag + i);
        th_fill_tagged(bufs[i], lens[i], tag + i);
        msgs[i] = bufs[i];
    }
    int k = rq_push_burst(p, msgs, lens, n, 0);
    if (k == RQ_EAGAIN)
        return 0;
    assert_true(k >= 1 && (unsigned)k <= n);
    return (unsigned)k;
}

/* Takes every record there with bursts (pop, or peek and release), each
 * checked to be record *NEXT; returns how many. */
static unsigned drain_bursts(rq *c, unsigned *next, int peek)
{
    unsigned char buf[64 * MAX], want[MAX];
    size_t lens[64];
    unsigned got = 0;
    for (;;) {
        if (!peek) {
            int k = rq_pop_burst(c, buf, MAX, lens, 64, 0);
            if (k == RQ_EAGAIN)
                return got;
            assert_true(k >= 1);
            for (int i = 0; i < k; i++, got++, (*next)++) {
                th_fill_tagged(want, burst_len(*next), *next);
                assert_int_equal(lens[i], burst_len(*next));
                assert_memory_equal(buf + (size_t)i * MAX, want, lens[i]);
            }
            continue;
        }
        rq_msg_view v[64];
        int k = rq_peek_burst(c, v, 64, 0);
        if (k == RQ_EAGAIN)
            return got;
        assert_true(k >= 1);
        for (int i = 0; i < k; i++) {
            th_fill_tagged(want, burst_len(*next + (unsigned)i), *next + (unsigned)i);
            assert_int_equal(v[i].len, burst_len(*next + (unsigned)i));
            assert_memory_equal(v[i].data, want, v[i].len);
            assert_int_equal(v[i].seq, v[0].seq + (unsigned)i);
        }
        /* A prefix, then the rest one by one with rq_peek / rq_release. */
        assert_int_equal(rq_release_burst(c, 0), RQ_EINVAL);
        assert_int_equal(rq_release_burst(c, (size_t)k + 1), RQ_EINVAL);
        assert_int_equal(rq_release_burst(c, 1), RQ_OK);
        for (int i = 1; i < k; i++) {
            const void *m;
            size_t len;
            assert_int_equal(rq_pop(c, buf, MAX, &len, 0), RQ_ESTATE);
            assert_int_equal(rq_peek(c, &m, &len, 0), RQ_OK);
            assert_ptr_equal(m, v[i].data);
            assert_int_equal(rq_release(c), RQ_OK);
        }
        assert_int_equal(rq_release(c), RQ_ESTATE);
        got += (unsigned)k;
        *next += (unsigned)k;
    }
}

static void test_bursts_on_records(void **state)
{
    (void)state;
    for (int mpsc = 0; mpsc < 2; mpsc++) {
        struct th_pair q = th_pair_open("rec.burst", CAP, MAX, RQ_RECORDS | (mpsc ? RQ_MPSC : 0));
        unsigned char buf[64 * MAX], want[MAX];
        size_t lens[64];
        const void *msgs[4] = {"a", "bb", want, "d"};
        size_t mlens[4] = {1, 2, MAX + 1, 1};
        /* One too long among them: nothing pushed. */
        assert_int_equal(rq_push_burst(q.p, msgs, mlens, 4, 0), RQ_EMSGSIZE);
        assert_int_equal(rstat(q.c).records, 0);
        assert_int_equal(rq_push_burst(q.p, msgs, mlens, 0, 0), 0);
        /* A batch takes what fits, in one publish: 4 records of 56
         * (span 64) fill 256 bytes, the 5th waits for the next call. */
        static unsigned char big[5][56];
        const void *bm[5];
        size_t bl[5];
        for (unsigned i = 0; i < 5; i++) {
            th_fill_tagged(big[i], 56, 100 + i);
            bm[i] = big[i];
            bl[i] = 56;
        }
        rq_stats before, after;
        assert_int_equal(rq_stat(q.c, &before), RQ_OK);
        assert_int_equal(rq_push_burst(q.p, bm, bl, 5, 0), 4);
        assert_int_equal(rq_push_burst(q.p, bm + 4, bl + 4, 1, 0), RQ_EAGAIN);
        assert_int_equal(rstat(q.c).bytes_free, 0);
        /* A buffer too small for the first: RQ_EMSGSIZE, its length, kept. */
        assert_int_equal(rq_pop_burst(q.c, buf, 55, lens, 64, 0), RQ_EMSGSIZE);
        assert_int_equal(lens[0], 56);
        assert_int_equal(rq_pop_burst(q.c, buf, 56, lens, 3, 0), 3);
        for (unsigned i = 0; i < 3; i++) {
            th_fill_tagged(want, 56, 100 + i);
            assert_int_equal(lens[i], 56);
            assert_memory_equal(buf + i * 56, want, 56);
        }
        assert_int_equal(rq_stat(q.c, &after), RQ_OK);
        assert_int_equal(after.popped - before.popped, 3);
        th_expect_pop_tagged(q.c, 56, 103);
        /* Around the ring many times in batches of every size, across the
         * wrap (padding inside a batch): copies and peeks, every byte. */
        unsigned pushed = 1000, next = 1000;
        for (unsigned round = 0; round < 300; round++) {
            pushed += push_burst_tagged(q.p, pushed, 1 + round % 9);
            if (round % 3 != 1)
                drain_bursts(q.c, &next, (round / 3) % 2);
        }
        drain_bursts(q.c, &next, 0);
        assert_int_equal(next, pushed);
        assert_true(pushed - 1000 > 300);
        rq_record_stats rs = rstat(q.c);
        assert_int_equal(rs.records, 0);
        assert_true(rs.padding_bytes > 0);
        /* Reserving a burst needs a length per record: not on records. */
        void *slots[2];
        assert_int_equal(rq_reserve_burst(q.p, slots, 2, 0), RQ_EINVAL);
        th_pair_close(&q);
    }
}

/* A peeked burst is marked delivered in one store: a new consumer gets
 * every record of it again, flagged. */
static void test_peek_burst_redelivers(void **state)
{
    (void)state;
    struct th_pair q = th_pair_open("rec.burstre", CAP, MAX, RQ_RECORDS);
    const void *m[5] = {"r0", "r1", "r2", "r3", "r4"};
    size_t l[5] = {2, 2, 2, 2, 2};
    assert_int_equal(rq_push_burst(q.p, m, l, 5, 0), 5);
    rq_msg_view v[8];
    assert_int_equal(rq_peek_burst(q.c, v, 8, 0), 5);
    assert_int_equal(v[0].flags, 0);
    assert_int_equal(rq_release_burst(q.c, 2), RQ_OK);
    rq_close(q.c);
    q.c = th_open(q.name, RQ_CONSUMER, CAP, MAX, RQ_RECORDS);
    rq_msg_view w[8];
    assert_int_equal(rq_peek_burst(q.c, w, 8, 0), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w[i].seq, v[2 + i].seq);
        assert_int_equal(w[i].flags, RQ_MSG_REDELIVERED);
        assert_int_equal(w[i].len, v[2 + i].len);
    }
    assert_int_equal(rq_release_burst(q.c, 3), RQ_OK);
    assert_int_equal(rstat(q.c).records, 0);
    th_pair_close(&q);
}

static size_t thread_len(unsigned stream, unsigned i)
{
    return 1 + (i * 37u + stream * 11u) % THREAD_MAX;
}

static void thread_fill(unsigned char *b, size_t len, unsigned stream, unsigned i)
{
    b[0] = (unsigned char)stream;
    for (size_t k = 1; k < len; k++)
        b[k] = (unsigned char)(i + k);
}

static void *producer_thread(void *p)
{
    struct thread_arg *a = p;
    rq *q;
    a->rc = rq_open(&q, a->name, RQ_PRODUCER, NULL);
    unsigned char buf[THREAD_MAX];
    for (unsigned i = 0; a->rc == RQ_OK && i < THREAD_RECORDS; i++) {
        size_t len = thread_len(a->stream, i);
        if (i % 2) {
            thread_fill(buf, len, a->stream, i);
            a->rc = rq_push(q, buf, len, TH_LIVE_TIMEOUT_MS);
        } else {
            void *slot;
            a->rc = rq_reserve_len(q, len, &slot, TH_LIVE_TIMEOUT_MS);
            if (a->rc == RQ_OK) {
                thread_fill(slot, len, a->stream, i);
                a->rc = rq_commit(q, len);
            }
        }
    }
    rq_close(q);
    return NULL;
}

/* SPSC and MPSC (3 producer threads), blocking both ways on a small ring,
 * every byte checked: the suite ThreadSanitizer runs (label threads). */
static void test_threads_every_byte(void **state)
{
    (void)state;
    for (int mpsc = 0; mpsc < 2; mpsc++) {
        unsigned streams = mpsc ? 3 : 1;
        const char *name = th_name("rec.threads");
        rq *keep = th_create(name, 2048, THREAD_MAX, RQ_RECORDS | (mpsc ? RQ_MPSC : 0));
        rq *c = th_open(name, RQ_CONSUMER, 2048, THREAD_MAX, RQ_RECORDS | (mpsc ? RQ_MPSC : 0));
        pthread_t th[3];
        struct thread_arg args[3];
        for (unsigned s = 0; s < streams; s++) {
            args[s] = (struct thread_arg){name, s, RQ_OK};
            assert_int_equal(pthread_create(&th[s], NULL, producer_thread, &args[s]), 0);
        }
        unsigned next[3] = {0, 0, 0};
        unsigned char buf[THREAD_MAX], want[THREAD_MAX];
        for (unsigned n = 0; n < streams * THREAD_RECORDS; n++) {
            size_t len;
            const void *msg;
            if (n % 3 == 0) {
                assert_int_equal(th_pop_live(c, buf, sizeof buf, &len), RQ_OK);
                msg = buf;
            } else {
                assert_int_equal(th_peek_live(c, &msg, &len), RQ_OK);
            }
            const unsigned char *b = msg;
            assert_true(len >= 1 && b[0] < streams);
            unsigned s = b[0];
            assert_int_equal(len, thread_len(s, next[s]));
            thread_fill(want, len, s, next[s]);
            assert_memory_equal(b, want, len);
            next[s]++;
            if (n % 3 != 0)
                assert_int_equal(rq_release(c), RQ_OK);
        }
        for (unsigned s = 0; s < streams; s++) {
            assert_int_equal(pthread_join(th[s], NULL), 0);
            assert_int_equal(args[s].rc, RQ_OK);
        }
        rq_close(c);
        rq_close(keep);
        rq_unlink(name);
    }
}

/* ---- hostile segments ------------------------------------------------ */

struct hostile {
    struct th_pair q;
    struct th_raw raw;
    struct rq_rec_shm *shm;
    unsigned char *data;
};

static void hostile_open(struct hostile *h)
{
    h->q = th_pair_open("rec.hostile", CAP, MAX, RQ_RECORDS);
    th_raw_open(&h->raw, "rq", h->q.name);
    h->shm = (struct rq_rec_shm *)h->raw.addr;
    h->data = h->raw.addr + RQ_REC_DATA_OFFSET;
}

static void hostile_close(struct hostile *h)
{
    th_raw_close(&h->raw);
    th_pair_close(&h->q);
}

static void put_header(unsigned char *at, uint32_t len, uint32_t type)
{
    rq_rec_put_header(at, type, len);
}

/* Each of the consumer's four calls with a zero timeout (a busy poll,
 * which may leave without the wait) reports the segment corrupt. */
static void expect_corrupt_pop(struct hostile *h)
{
    unsigned char buf[CAP];
    size_t len;
    assert_int_equal(rq_pop(h->q.c, buf, sizeof buf, &len, 0), RQ_ECORRUPT);
    const void *msg;
    assert_int_equal(rq_peek(h->q.c, &msg, &len, 0), RQ_ECORRUPT);
    rq_msg_info info;
    assert_int_equal(rq_pop_info(h->q.c, buf, sizeof buf, &len, &info, 0), RQ_ECORRUPT);
    assert_int_equal(rq_peek_info(h->q.c, &msg, &len, &info, 0), RQ_ECORRUPT);
}

/* Publishes, as the producer would, BYTES of records with COUNT records. */
static void forge_write(struct hostile *h, uint32_t bytes, uint32_t count)
{
    rq_store_release_u64(&h->shm->write_word, (uint64_t)count << 32 | bytes);
}

static void test_hostile_record_segments(void **state)
{
    (void)state;
    struct hostile h;
    /* A word out of range, bytes beyond the capacity, counts the bytes
     * cannot hold, bytes without a record, an offset no record ends at
     * (not a multiple of 8: the next payload would be unaligned). */
    const uint32_t words[][2] = {{2 * CAP, 1}, {CAP + 8, 1}, {16, 3}, {16, 0}, {0, 1}, {20, 1}};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        hostile_open(&h);
        put_header(h.data, 8, RQ_REC_DATA);
        forge_write(&h, words[i][0], words[i][1]);
        expect_corrupt_pop(&h);
        hostile_close(&h);
    }
    /* Bad record headers under a good word. */
    struct {
        uint32_t len, type, published;
    } recs[] = {
        {8, 0, 16},                                /* zeroed memory is no record */
        {8, 3, 16},                                /* the one type no record has */
        {MAX + 1, RQ_REC_DATA, CAP},               /* longer than the largest record */
        {64, RQ_REC_DATA, 16},                     /* longer than what was published */
        {CAP - RQ_RECORD_HEADER, RQ_REC_PAD, CAP}, /* padding at index 0 fills everything */
        {8, RQ_REC_PAD, 16},                       /* padding that does not reach the end */
    };
    for (size_t i = 0; i < sizeof recs / sizeof *recs; i++) {
        hostile_open(&h);
        put_header(h.data, recs[i].len, recs[i].type);
        forge_write(&h, recs[i].published, 1);
        expect_corrupt_pop(&h);
        hostile_close(&h);
    }
    /* Padding at the tail that is published without its record, or
     * followed by a bad one, or of the wrong length, or right and followed
     * by a good one: only the last is delivered. */
    for (int variant = 0; variant < 4; variant++) {
        hostile_open(&h);
        push_tagged(h.q.p, 100, 1); /* [0, 104) */
        push_tagged(h.q.p, 100, 2); /* [104, 208) */
        th_expect_pop_tagged(h.q.c, 100, 1);
        th_expect_pop_tagged(h.q.c, 100, 2);
        uint32_t tail = CAP - 2 * RQ_RECORD_SPAN(100); /* 48 */
        put_header(h.data + CAP - tail, variant == 2 ? 8 : tail - RQ_RECORD_HEADER, RQ_REC_PAD);
        put_header(h.data, variant == 1 ? 500 : 16, RQ_REC_DATA);
        uint32_t end = variant == 0 ? CAP : CAP + RQ_RECORD_SPAN(16);
        forge_write(&h, end, 3);
        if (variant < 3) {
            expect_corrupt_pop(&h);
        } else {
            unsigned char buf[CAP];
            size_t len;
            assert_int_equal(rq_pop(h.q.c, buf, sizeof buf, &len, 0), RQ_OK);
            assert_int_equal(len, 16);
        }
        hostile_close(&h);
    }
    /* A consumer word that makes no sense stops the producer. */
    hostile_open(&h);
    for (unsigned i = 0; i < 7; i++)
        push_tagged(h.q.p, 24, i); /* 224 of 256 used */
    rq_store_release_u64(&h.shm->read_word, (uint64_t)5 << 32 | 3 * CAP);
    assert_int_equal(rq_push(h.q.p, "0123456789abcdef0123456789abcdef", 32, 0), RQ_ECORRUPT);
    /* So does an unaligned one that is otherwise in range. */
    rq_store_release_u64(&h.shm->read_word, (uint64_t)0 << 32 | 4);
    assert_int_equal(rq_push(h.q.p, "0123456789abcdef0123456789abcdef", 32, 0), RQ_ECORRUPT);
    rq_stats st;
    assert_int_equal(rq_stat(h.q.keep ? h.q.keep : h.q.c, &st), RQ_ECORRUPT);
    hostile_close(&h);
}

/* Moves both sides to index AT (a multiple of 8) with records of spans
 * of 120 bytes at most (MAX is 120), each pushed and popped; returns the
 * write word then, whose offset is checked to be at AT. */
static uint64_t hostile_advance(struct hostile *h, uint32_t at)
{
    for (uint32_t idx = 0; idx < at;) {
        uint32_t step = at - idx < 120 ? at - idx : 120;
        push_tagged(h->q.p, step - RQ_RECORD_HEADER, idx);
        th_expect_pop_tagged(h->q.c, step - RQ_RECORD_HEADER, idx);
        idx += step;
    }
    uint64_t word = rq_load_acquire_u64(&h->shm->write_word);
    assert_int_equal((uint32_t)word % CAP, at);
    return word;
}

/* A bad header behind a word the consumer has already loaded: the
 * common path (no reload, rq_pop and rq_peek alike) checks it as the long
 * way does.  At index AT (after good records moved the ring there), a
 * good record of 4 bytes, then the bad one, both published by a word
 * PUBLISHED bytes past the bad record's start; the good one is popped,
 * which loads that word. */
static void test_hostile_headers_behind_a_loaded_word(void **state)
{
    (void)state;
    struct {
        uint32_t at, len, type, published;
    } recs[] = {
        {0, 8, 0, 16},                   /* zeroed memory is no record */
        {0, 8, 3, 16},                   /* the one type no record has */
        {0, 8, RQ_REC_PAD, 16},          /* padding that does not reach the end */
        {0, MAX + 1, RQ_REC_DATA, 128},  /* longer than the largest record */
        {0, 64, RQ_REC_DATA, 8},         /* longer than what was published */
        {CAP - 24, 32, RQ_REC_DATA, 40}, /* past the end of the ring */
    };
    for (size_t i = 0; i < sizeof recs / sizeof *recs; i++) {
        struct hostile h;
        hostile_open(&h);
        uint64_t word = hostile_advance(&h, recs[i].at);
        uint32_t off = (uint32_t)word, count = (uint32_t)(word >> 32);
        put_header(h.data + recs[i].at, 4, RQ_REC_DATA);
        put_header(h.data + recs[i].at + 8, recs[i].len, recs[i].type);
        forge_write(&h, (off + 8 + recs[i].published) % (2 * CAP), count + 2);
        unsigned char buf[CAP];
        size_t len;
        assert_int_equal(rq_pop(h.q.c, buf, sizeof buf, &len, 0), RQ_OK);
        assert_int_equal(len, 4);
        expect_corrupt_pop(&h);
        hostile_close(&h);
    }
}

/* A busy poll (timeout 0) reports a bad header that the consumer's cached
 * write word shows, even after the producer's word has been rewound to the
 * consumer's own offset and number, which alone would read as an empty
 * ring: a good record ends at the ring's end (the consumer's room runs out
 * there), the bad one starts at index 0. */
static void test_a_busy_poll_reports_a_header_its_cached_word_shows(void **state)
{
    (void)state;
    struct hostile h;
    hostile_open(&h);
    uint64_t word = hostile_advance(&h, CAP - 8);
    uint32_t off = (uint32_t)word, count = (uint32_t)(word >> 32);
    put_header(h.data + CAP - 8, 4, RQ_REC_DATA);
    put_header(h.data, 8, 3); /* the one type no record has */
    forge_write(&h, (off + 8 + 16) % (2 * CAP), count + 2);
    unsigned char buf[CAP];
    size_t len;
    assert_int_equal(rq_pop(h.q.c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_int_equal(len, 4);
    forge_write(&h, (off + 8) % (2 * CAP), count + 1); /* the consumer's own word */
    expect_corrupt_pop(&h);
    hostile_close(&h);
}

/* The header is checked at open as a slot queue's is. */
static void test_hostile_record_headers(void **state)
{
    (void)state;
    struct {
        size_t offset;
        uint32_t value;
        int expect;
    } cases[] = {
        {offsetof(struct rq_shm_header, slot_count), CAP + 8, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, slot_count), CAP * 2, RQ_ECORRUPT}, /* size */
        {offsetof(struct rq_shm_header, slot_size), CAP, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, slot_stride), 16, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, slot_stride), 8, RQ_ECORRUPT}, /* the 8-byte header's */
        {offsetof(struct rq_shm_header, flags), RQ_MPSC, RQ_ECORRUPT}, /* RQ_RECORDS gone */
        {offsetof(struct rq_shm_header, flags), RQ_RECORDS | 64u, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, header_size), 512, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, abi), 1, RQ_EVERSION},
        {offsetof(struct rq_shm_header, layout_version), RQ_LAYOUT_VERSION, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, layout_version), RQ_REC_LAYOUT_VERSION + 1, RQ_EVERSION},
        {offsetof(struct rq_shm_header, layout_version), 0x00010003u,
         RQ_EVERSION}, /* 8-byte headers */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *name = th_name("rec.header");
        rq *keep = th_create(name, CAP, MAX, RQ_RECORDS);
        struct th_raw raw;
        th_raw_open(&raw, "rq", name);
        memcpy(raw.addr + cases[i].offset, &cases[i].value, sizeof cases[i].value);
        rq *q = NULL;
        int rc = rq_open(&q, name, RQ_CONSUMER, NULL);
        if (rc != cases[i].expect)
            fail_msg("case %zu: %s, expected %s", i, rq_errname(rc), rq_errname(cases[i].expect));
        assert_null(q);
        th_raw_close(&raw);
        rq_close(keep);
        rq_unlink(name);
    }
}

/* rq_stat counts a record queue's records by the numbers its words carry,
 * extended by the stored positions: exact whatever the positions lag (here
 * 0, then a few records behind; up to 2^31 and a batch in use), and never
 * a lap (2^32) off. */
static void test_stat_counts_records_by_their_numbers(void **state)
{
    (void)state;
    struct hostile h;
    hostile_open(&h);
    for (unsigned i = 0; i < 5; i++)
        push_tagged(h.q.p, 10 + i, i);
    for (unsigned i = 0; i < 2; i++)
        th_expect_pop_tagged(h.q.c, 10 + i, i);
    rq_stats s;
    assert_int_equal(rq_stat(h.q.c, &s), RQ_OK);
    assert_int_equal(s.pushed, 5);
    assert_int_equal(s.popped, 2);
    rq_store_relaxed_u64(&h.shm->write_position, 4); /* behind the words */
    rq_store_relaxed_u64(&h.shm->read_position, 1);
    assert_int_equal(rq_stat(h.q.c, &s), RQ_OK);
    assert_int_equal(s.pushed, 5);
    assert_int_equal(s.popped, 2);
    /* Past 2^32: the words carry the low halves, the positions the rest. */
    const uint64_t lap = UINT64_C(1) << 32;
    rq_store_relaxed_u64(&h.shm->write_position, lap + 4);
    rq_store_relaxed_u64(&h.shm->read_position, lap + 2);
    assert_int_equal(rq_stat(h.q.c, &s), RQ_OK);
    assert_true(s.pushed == lap + 5 && s.popped == lap + 2);
    hostile_close(&h);
}

/* Each side stores its position only where its number's bits from 2^31
 * up change, and an opener stores the one a side killed in between left
 * further behind. */
static void test_positions_are_stored_once_in_2_31_records(void **state)
{
    (void)state;
    const uint64_t period = UINT64_C(1) << 31, start = 3 * period - 2;
    struct hostile h;
    hostile_open(&h);
    rq_close(h.q.p);
    rq_close(h.q.c);
    /* An empty ring at record START; the write position left 2^31 + 5
     * records behind, the read position 3 (due at the next crossing). */
    th_raw_forge_record_numbers(&h.raw, start, start - period - 5, start - 3);
    h.q.p = th_open(h.q.name, RQ_PRODUCER, CAP, MAX, RQ_RECORDS);
    h.q.c = th_open(h.q.name, RQ_CONSUMER, CAP, MAX, RQ_RECORDS);
    assert_true(rq_load_relaxed_u64(&h.shm->write_position) == start); /* stored by the open */
    assert_true(rq_load_relaxed_u64(&h.shm->read_position) == start - 3);
    push_tagged(h.q.p, 10, 0); /* record START: nothing due */
    assert_true(rq_load_relaxed_u64(&h.shm->write_position) == start);
    push_tagged(h.q.p, 11, 1); /* its number's bit 31 changes */
    assert_true(rq_load_relaxed_u64(&h.shm->write_position) == start + 2);
    unsigned char buf[64];
    size_t len;
    rq_msg_info info;
    for (unsigned i = 0; i < 2; i++) {
        assert_int_equal(rq_pop_info(h.q.c, buf, sizeof buf, &len, &info, 0), RQ_OK);
        assert_true(info.seq == start + i && len == 10 + i);
        assert_true(rq_load_relaxed_u64(&h.shm->read_position) == (i ? start + 2 : start - 3));
    }
    rq_stats s;
    assert_int_equal(rq_stat(h.q.c, &s), RQ_OK);
    assert_true(s.pushed == start + 2 && s.popped == start + 2);
    uint64_t next;
    assert_int_equal(rq_next_seq(h.q.p, &next), RQ_OK);
    assert_true(next == start + 2);
    /* A consumer that finds its position 2^31 + 1 behind stores it. */
    rq_close(h.q.c);
    rq_store_relaxed_u64(&h.shm->read_position, start + 1 - period);
    h.q.c = th_open(h.q.name, RQ_CONSUMER, CAP, MAX, RQ_RECORDS);
    assert_true(rq_load_relaxed_u64(&h.shm->read_position) == start + 2);
    hostile_close(&h);
    /* An MPSC producer stores it under the lock, at its claim: before it
     * publishes anything. */
    struct th_pair q = th_pair_open("rec.pos.mpsc", CAP, MAX, RQ_RECORDS | RQ_MPSC);
    struct th_raw raw;
    th_raw_open(&raw, "rq", q.name);
    struct rq_rec_shm *shm = (struct rq_rec_shm *)raw.addr;
    th_raw_forge_record_numbers(&raw, start, start - period - 5, start);
    void *slot;
    assert_int_equal(rq_reserve_len(q.p, 10, &slot, 0), RQ_OK);
    assert_true(rq_load_relaxed_u64(&shm->write_position) == start);
    assert_int_equal(rq_commit(q.p, 0), RQ_OK);
    th_raw_close(&raw);
    th_pair_close(&q);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {{"none", NULL}};
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_is_checked),
        cmocka_unit_test(test_records_are_packed),
        cmocka_unit_test(test_payloads_are_8_aligned_and_take_their_span),
        cmocka_unit_test(test_wrap_pads_and_keeps_records_contiguous),
        cmocka_unit_test(test_room_counts_the_padding),
        cmocka_unit_test(test_a_stale_cache_of_the_consumer_is_not_trusted),
        cmocka_unit_test(test_a_copy_counts_paddings_and_the_bytes_it_trailed),
        cmocka_unit_test(test_the_copys_budget_keeps_it_within_2c),
        cmocka_unit_test(test_largest_record_fits_an_empty_ring_anywhere),
        cmocka_unit_test(test_lengths_too_large),
        cmocka_unit_test(test_bad_arguments_leave_the_record),
        cmocka_unit_test(test_reserve_with_a_length),
        cmocka_unit_test(test_sequence_numbers_and_redelivery),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_dump_walks_without_consuming),
        cmocka_unit_test(test_bursts_on_records),
        cmocka_unit_test(test_peek_burst_redelivers),
        cmocka_unit_test(test_threads_every_byte),
        cmocka_unit_test(test_hostile_record_segments),
        cmocka_unit_test(test_hostile_headers_behind_a_loaded_word),
        cmocka_unit_test(test_a_busy_poll_reports_a_header_its_cached_word_shows),
        cmocka_unit_test(test_hostile_record_headers),
        cmocka_unit_test(test_stat_counts_records_by_their_numbers),
        cmocka_unit_test(test_positions_are_stored_once_in_2_31_records),
    };
    return cmocka_run_group_tests_name("records", tests, NULL, NULL);
}
