/*
 * test_records_peek.c - rq_peek_burst / rq_release_burst on record
 * queues: a release frees exactly the bytes of the records it releases
 * (padding at the wrap inside the batch included), whether the batch is
 * released at once, in parts, or mixed with rq_peek / rq_release and a new
 * peek burst on its rest; batches longer than the handle's first room for
 * extents; headers a hostile producer rewrites after the peek (the release
 * frees what the peek checked, never reads them again, never passes the
 * write word), whether they go by rq_release_burst or one rq_release at a
 * time; rq_peek of a burst's oldest record, then the rest released (counts,
 * numbers, redelivery flags); a batch that stops before an impossible
 * header.  SPSC and MPSC (on MPSC the records come from several producers
 * through the producers' lock).  Kills are in test_records_crash.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "records.h"
#include "rq.h"

#define CAP 256u
#define MAX 120u

/* On MPSC, PRODUCERS producers take turns (each push through the lock). */
#define PRODUCERS 3

struct pair {
    const char *name;
    rq *keep, *c;
    rq *p;               /* the producer that pushes next ... */
    rq *each[PRODUCERS]; /* ... in turn: each[0] (SPSC), or all (MPSC) */
    unsigned producers, turn;
};

static struct pair pair_open(const char *tag, uint32_t cap, uint32_t max, uint32_t flags)
{
    struct pair q = {0};
    q.name = th_name(tag);
    q.keep = th_create(q.name, cap, max, flags | RQ_RECORDS);
    q.producers = (flags & RQ_MPSC) ? PRODUCERS : 1;
    for (unsigned i = 0; i < q.producers; i++)
        q.each[i] = th_open(q.name, RQ_PRODUCER, cap, max, flags | RQ_RECORDS);
    q.p = q.each[0];
    q.c = th_open(q.name, RQ_CONSUMER, cap, max, flags | RQ_RECORDS);
    return q;
}

/* The producer for the next push: on MPSC each in turn. */
static rq *next_producer(struct pair *q)
{
    q->p = q->each[q->turn++ % q->producers];
    return q->p;
}

static void pair_close(struct pair *q)
{
    for (unsigned i = 0; i < q->producers; i++)
        rq_close(q->each[i]);
    rq_close(q->c);
    rq_close(q->keep);
    rq_unlink(q->name);
}

static void fill(unsigned char *buf, size_t len, unsigned tag)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(tag * 7u + i);
}

static void push_tagged(rq *p, size_t len, unsigned tag)
{
    unsigned char buf[MAX];
    fill(buf, len, tag);
    assert_int_equal(rq_push(p, buf, len, 0), RQ_OK);
}

static void expect_view(const rq_msg_view *v, size_t len, unsigned tag)
{
    unsigned char want[MAX];
    fill(want, len, tag);
    assert_int_equal(v->len, len);
    assert_memory_equal(v->data, want, len);
}

static uint32_t bytes_used(rq *q)
{
    rq_record_stats st;
    assert_int_equal(rq_stat_records(q, &st), RQ_OK);
    return st.bytes_used;
}

/* A new queue with the consumer at byte 224 of 256, then records of 8
 * (at 224, 16 bytes), 40 (padding 16 at 240, then 48 bytes at 0), 16 (24
 * bytes) and 0 (8 bytes): 112 bytes, the padding inside the batch. */
static void batch_across_the_wrap(struct pair *q, const char *tag, uint32_t flags)
{
    *q = pair_open(tag, CAP, MAX, flags);
    push_tagged(next_producer(q), 108, 90); /* [0, 112) */
    push_tagged(next_producer(q), 108, 91); /* [112, 224) */
    unsigned char buf[MAX];
    size_t len;
    assert_int_equal(rq_pop(q->c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_int_equal(rq_pop(q->c, buf, sizeof buf, &len, 0), RQ_OK);
    push_tagged(next_producer(q), 8, 1);
    push_tagged(next_producer(q), 40, 2);
    push_tagged(next_producer(q), 16, 3);
    push_tagged(next_producer(q), 0, 4);
    assert_int_equal(bytes_used(q->c), 112);
}

static void expect_batch(rq *c, rq_msg_view *v, size_t max, int first)
{
    static const size_t lens[] = {8, 40, 16, 0};
    int n = rq_peek_burst(c, v, max, 0);
    assert_int_equal(n, 4 - first < (int)max ? 4 - first : (int)max);
    for (int i = 0; i < n; i++)
        expect_view(&v[i], lens[first + i], (unsigned)(first + i + 1));
}

/* Each release frees its records' bytes and no more; the padding goes
 * with the record after it. */
static void test_partial_releases_free_their_bytes(void **state)
{
    (void)state;
    for (uint32_t flags = 0; flags <= RQ_MPSC; flags += RQ_MPSC) {
        struct pair q;
        batch_across_the_wrap(&q, "rec.peek.parts", flags);
        rq_msg_view v[8];
        expect_batch(q.c, v, 8, 0);
        assert_int_equal(rq_release_burst(q.c, 1), RQ_OK);
        assert_int_equal(bytes_used(q.c), 96);
        assert_int_equal(rq_release_burst(q.c, 1), RQ_OK); /* 16 + 48 */
        assert_int_equal(bytes_used(q.c), 32);
        assert_int_equal(rq_release_burst(q.c, 2), RQ_OK);
        assert_int_equal(bytes_used(q.c), 0);
        assert_int_equal(rq_release_burst(q.c, 1), RQ_ESTATE);
        assert_int_equal(rq_peek_burst(q.c, v, 8, 0), RQ_EAGAIN);
        pair_close(&q);
        /* Two at once across the wrap, then the rest. */
        batch_across_the_wrap(&q, "rec.peek.parts", flags);
        expect_batch(q.c, v, 8, 0);
        assert_int_equal(rq_release_burst(q.c, 2), RQ_OK);
        assert_int_equal(bytes_used(q.c), 32);
        assert_int_equal(rq_release_burst(q.c, 2), RQ_OK);
        assert_int_equal(bytes_used(q.c), 0);
        pair_close(&q);
    }
}

/* The rest of a burst through rq_peek / rq_release and a new peek burst:
 * each step frees its own record's bytes. */
static void test_the_rest_of_a_burst(void **state)
{
    (void)state;
    for (uint32_t flags = 0; flags <= RQ_MPSC; flags += RQ_MPSC) {
        struct pair q;
        batch_across_the_wrap(&q, "rec.peek.rest", flags);
        rq_msg_view v[8];
        expect_batch(q.c, v, 8, 0);
        assert_int_equal(rq_release(q.c), RQ_OK); /* by the extents the peek burst kept */
        assert_int_equal(bytes_used(q.c), 96);
        assert_int_equal(rq_release(q.c), RQ_OK);
        assert_int_equal(bytes_used(q.c), 32);
        const void *m;
        size_t len;
        assert_int_equal(rq_peek(q.c, &m, &len, 0), RQ_OK);
        assert_ptr_equal(m, v[2].data);
        assert_int_equal(rq_release(q.c), RQ_OK);
        assert_int_equal(bytes_used(q.c), 8);
        assert_int_equal(rq_release_burst(q.c, 1), RQ_OK);
        assert_int_equal(bytes_used(q.c), 0);
        pair_close(&q);
        /* A new peek burst on the rest starts at its oldest record. */
        batch_across_the_wrap(&q, "rec.peek.rest", flags);
        expect_batch(q.c, v, 8, 0);
        assert_int_equal(rq_release_burst(q.c, 1), RQ_OK);
        expect_batch(q.c, v, 2, 1);
        assert_int_equal(rq_release_burst(q.c, 1), RQ_OK); /* the padded one */
        assert_int_equal(bytes_used(q.c), 32);
        expect_batch(q.c, v, 8, 2);
        assert_int_equal(rq_release_burst(q.c, 2), RQ_OK);
        assert_int_equal(bytes_used(q.c), 0);
        pair_close(&q);
    }
}

/* A batch of hundreds of records, released in uneven parts; on MPSC
 * from producers taking turns. */
static void test_long_batches(void **state)
{
    (void)state;
    enum { BIG = 8192, N = 600 }; /* 8000 bytes */
    for (uint32_t flags = 0; flags <= RQ_MPSC; flags += RQ_MPSC) {
        struct pair q = pair_open("rec.peek.long", BIG, MAX, flags);
        for (unsigned i = 0; i < N; i++)
            push_tagged(next_producer(&q), i % 3 * 5, i); /* 8 or 16 bytes */
        static rq_msg_view v[N + 10];
        assert_int_equal(rq_peek_burst(q.c, v, N + 10, 0), N);
        uint32_t used = bytes_used(q.c);
        assert_int_equal(used, 8000);
        unsigned done = 0;
        static const unsigned parts[] = {1, 63, 64, 129, 300, 43};
        for (size_t p = 0; p < sizeof parts / sizeof *parts; p++) {
            for (unsigned i = done; i < done + parts[p]; i++) {
                expect_view(&v[i], i % 3 * 5, i);
                assert_int_equal(v[i].seq, v[0].seq + i);
                used -= i % 3 ? 16 : 8;
            }
            assert_int_equal(rq_release_burst(q.c, parts[p]), RQ_OK);
            done += parts[p];
            assert_int_equal(bytes_used(q.c), used);
        }
        assert_int_equal(done, N);
        assert_int_equal(used, 0);
        pair_close(&q);
    }
}

/* Headers rewritten after the peek by a hostile producer: the release
 * frees the extents the peek checked (within the bytes published then),
 * not what the headers say now, whether the batch goes by
 * rq_release_burst or by one rq_release per record that rq_peek has not
 * looked at again.  The rewrites: garbage, a valid length that would free
 * more than was published, and a valid shorter one (a release that read
 * it again would free too little and lose the record boundary). */
static void check_rewritten_headers(uint32_t flags, int variant, int single)
{
    static const struct rq_rec_header rewrites[] = {
        {MAX + 1, 3u}, {MAX, RQ_REC_DATA}, {0, RQ_REC_DATA}};
    struct pair q = pair_open("rec.peek.hostile", CAP, MAX, flags);
    struct th_raw raw;
    th_raw_open(&raw, "rq", q.name);
    unsigned char *data = raw.addr + RQ_REC_DATA_OFFSET;
    push_tagged(next_producer(&q), 8, 1);  /* [0, 16) */
    push_tagged(next_producer(&q), 24, 2); /* [16, 48) */
    push_tagged(next_producer(&q), 8, 3);  /* [48, 64) */
    rq_msg_view v[4];
    assert_int_equal(rq_peek_burst(q.c, v, 4, 0), 3);
    rq_rec_put_header(data + 16, rewrites[variant].type, rewrites[variant].len);
    rq_rec_put_header(data + 48, rewrites[variant].type, rewrites[variant].len);
    if (single) {
        static const uint32_t left[] = {48, 16, 0};
        for (int i = 0; i < 3; i++) {
            assert_int_equal(rq_release(q.c), RQ_OK);
            assert_int_equal(bytes_used(q.c), left[i]);
        }
        assert_int_equal(rq_release(q.c), RQ_ESTATE);
    } else {
        assert_int_equal(rq_release_burst(q.c, 1), RQ_OK);
        assert_int_equal(bytes_used(q.c), 48);
        assert_int_equal(rq_release_burst(q.c, 2), RQ_OK);
        assert_int_equal(bytes_used(q.c), 0);
    }
    rq_record_stats st;
    assert_int_equal(rq_stat_records(q.c, &st), RQ_OK);
    assert_int_equal(st.records, 0);
    push_tagged(next_producer(&q), 8, 4); /* the queue goes on */
    assert_int_equal(rq_peek_burst(q.c, v, 4, 0), 1);
    expect_view(&v[0], 8, 4);
    assert_int_equal(rq_release_burst(q.c, 1), RQ_OK);
    th_raw_close(&raw);
    pair_close(&q);
}

static void test_headers_rewritten_after_the_peek(void **state)
{
    (void)state;
    for (uint32_t flags = 0; flags <= RQ_MPSC; flags += RQ_MPSC)
        for (int variant = 0; variant < 3; variant++)
            for (int single = 0; single < 2; single++)
                check_rewritten_headers(flags, variant, single);
}

/* rq_peek after rq_peek_burst: the burst's oldest record again (the same
 * bytes, number and flag), the batch still peeked, and its rest released
 * by rq_release_burst (after an rq_release of the oldest, or with it):
 * every byte freed once, the numbers going on, and a consumer that dies
 * holding the batch leaves all of it flagged for the next. */
static void check_peek_in_a_burst(uint32_t flags, int release_oldest)
{
    struct pair q;
    batch_across_the_wrap(&q, "rec.peek.again", flags);
    rq_msg_view v[8];
    expect_batch(q.c, v, 8, 0);
    const void *m;
    size_t len;
    rq_msg_info info;
    assert_int_equal(rq_peek_info(q.c, &m, &len, &info, 0), RQ_OK);
    assert_ptr_equal(m, v[0].data);
    assert_int_equal(len, v[0].len);
    assert_int_equal(info.seq, v[0].seq);
    assert_int_equal(info.flags, 0);
    if (release_oldest) {
        assert_int_equal(rq_release(q.c), RQ_OK);
        assert_int_equal(bytes_used(q.c), 96);
    }
    /* Dies holding the rest: every record of it comes back flagged. */
    rq_close(q.c);
    q.c = th_open(q.name, RQ_CONSUMER, CAP, MAX, flags | RQ_RECORDS);
    int first = release_oldest ? 1 : 0;
    rq_msg_view w[8];
    expect_batch(q.c, w, 8, first);
    for (int i = first; i < 4; i++) {
        assert_int_equal(w[i - first].seq, v[i].seq);
        assert_int_equal(w[i - first].flags, RQ_MSG_REDELIVERED);
    }
    assert_int_equal(rq_peek_info(q.c, &m, &len, &info, 0), RQ_OK);
    assert_ptr_equal(m, w[0].data);
    assert_int_equal(info.seq, w[0].seq);
    assert_int_equal(info.flags, RQ_MSG_REDELIVERED);
    if (release_oldest) {
        assert_int_equal(rq_release(q.c), RQ_OK); /* the padded one */
        assert_int_equal(bytes_used(q.c), 32);
    }
    assert_int_equal(rq_release_burst(q.c, (size_t)(4 - first - release_oldest)), RQ_OK);
    assert_int_equal(bytes_used(q.c), 0);
    assert_int_equal(rq_release(q.c), RQ_ESTATE);
    rq_record_stats st;
    assert_int_equal(rq_stat_records(q.c, &st), RQ_OK);
    assert_int_equal(st.records, 0);
    /* Nothing lost or repeated: the next record is numbered on. */
    push_tagged(next_producer(&q), 8, 5);
    assert_int_equal(rq_peek_info(q.c, &m, &len, &info, 0), RQ_OK);
    assert_int_equal(info.seq, v[3].seq + 1);
    assert_int_equal(info.flags, 0);
    assert_int_equal(rq_release(q.c), RQ_OK);
    pair_close(&q);
}

static void test_peek_of_a_bursts_oldest(void **state)
{
    (void)state;
    for (uint32_t flags = 0; flags <= RQ_MPSC; flags += RQ_MPSC)
        for (int release_oldest = 0; release_oldest < 2; release_oldest++)
            check_peek_in_a_burst(flags, release_oldest);
}

/* A consumer closed holding a peeked batch of 4 leaves a mark past it;
 * its successor, which peeks a smaller batch of the same records, must
 * not move that mark back: the third consumer still gets all 4 flagged. */
static void test_a_smaller_batch_keeps_the_mark(void **state)
{
    (void)state;
    struct pair q = pair_open("rec.peek.mark", CAP, MAX, 0);
    for (unsigned i = 0; i < 4; i++)
        push_tagged(q.p, 8, i);
    rq_msg_view v[8];
    assert_int_equal(rq_peek_burst(q.c, v, 8, 0), 4);
    for (int round = 0; round < 3; round++) {
        rq_close(q.c);
        q.c = th_open(q.name, RQ_CONSUMER, CAP, MAX, RQ_RECORDS);
        size_t want = round < 2 ? 2 : 8; /* 2, 2, then all: 4 */
        int n = rq_peek_burst(q.c, v, want, 0);
        assert_int_equal(n, round < 2 ? 2 : 4);
        for (int i = 0; i < n; i++)
            assert_int_equal(v[i].flags, RQ_MSG_REDELIVERED);
    }
    assert_int_equal(rq_release_burst(q.c, 4), RQ_OK);
    push_tagged(q.p, 8, 4);
    assert_int_equal(rq_peek_burst(q.c, v, 8, 0), 1);
    assert_int_equal(v[0].flags, 0);
    pair_close(&q);
}

/* A batch ends before a record whose header is impossible (each checked
 * as rq_pop checks it), and the next call reports it: the consumer at 224
 * of 256, records of 8 at 224 and 240, then 40 at 0 (80 bytes). */
static void test_a_batch_stops_before_a_bad_record(void **state)
{
    (void)state;
    struct {
        uint32_t at, len, type, good;
    } cases[] = {
        {240, MAX + 1, RQ_REC_DATA, 1}, /* longer than the largest record */
        {240, 8, 3, 1},                 /* the one type no record has */
        {240, 40, RQ_REC_DATA, 1},      /* runs past the ring's end */
        {0, 56, RQ_REC_DATA, 2},        /* runs past the published bytes */
    };
    for (size_t i = 0; i < 2 * sizeof cases / sizeof *cases; i++) {
        int peek = i % 2;
        struct pair q = pair_open("rec.peek.bad", CAP, MAX, 0);
        struct th_raw raw;
        th_raw_open(&raw, "rq", q.name);
        unsigned char *data = raw.addr + RQ_REC_DATA_OFFSET, buf[8 * MAX];
        size_t len, lens[8];
        push_tagged(q.p, 108, 90); /* [0, 112) */
        push_tagged(q.p, 108, 91); /* [112, 224) */
        assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 0), RQ_OK);
        assert_int_equal(rq_pop(q.c, buf, sizeof buf, &len, 0), RQ_OK);
        push_tagged(q.p, 8, 1);
        push_tagged(q.p, 8, 2);
        push_tagged(q.p, 40, 3);
        rq_rec_put_header(data + cases[i / 2].at, cases[i / 2].type, cases[i / 2].len);
        rq_msg_view v[8];
        int want = (int)cases[i / 2].good;
        if (peek) {
            assert_int_equal(rq_peek_burst(q.c, v, 8, 0), want);
            assert_int_equal(rq_release_burst(q.c, (size_t)want), RQ_OK);
            assert_int_equal(rq_peek_burst(q.c, v, 8, 0), RQ_ECORRUPT);
        } else {
            assert_int_equal(rq_pop_burst(q.c, buf, MAX, lens, 8, 0), want);
            assert_int_equal(rq_pop_burst(q.c, buf, MAX, lens, 8, 0), RQ_ECORRUPT);
        }
        th_raw_close(&raw);
        pair_close(&q);
    }
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {{"none", NULL}};
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partial_releases_free_their_bytes),
        cmocka_unit_test(test_the_rest_of_a_burst),
        cmocka_unit_test(test_long_batches),
        cmocka_unit_test(test_headers_rewritten_after_the_peek),
        cmocka_unit_test(test_peek_of_a_bursts_oldest),
        cmocka_unit_test(test_a_smaller_batch_keeps_the_mark),
        cmocka_unit_test(test_a_batch_stops_before_a_bad_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
