/*
 * test_burst.c - the burst calls (rq_push_burst, rq_pop_burst,
 * rq_reserve_burst / rq_commit_burst, rq_peek_burst / rq_release_burst):
 * how many they move, what they refuse, sequence numbers and redelivery
 * flags of a batch, and MPSC producers pushing batches at once.  The crash
 * suite (test_crash) kills both sides inside bursts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"
#include "rq.h"

#define SLOT_SIZE 32u

static uint64_t next_seq(rq *q)
{
    uint64_t seq = UINT64_MAX;
    assert_int_equal(rq_next_seq(q, &seq), RQ_OK);
    return seq;
}

/* Pushes COUNT numbered messages from FIRST in one rq_push_burst; returns
 * what it returned. */
static int push_numbers(rq *p, uint64_t first, size_t count, int timeout_ms)
{
    uint64_t v[64];
    const void *msgs[64];
    size_t lens[64];
    assert_true(count <= 64);
    for (size_t i = 0; i < count; i++) {
        v[i] = first + i;
        msgs[i] = &v[i];
        lens[i] = sizeof v[i];
    }
    return rq_push_burst(p, msgs, lens, count, timeout_ms);
}

/* Many laps of the 2N offsets in batches of every size, over capacity too:
 * each call moves what fits, in order, and the numbers keep counting. */
static void test_bursts_move_what_fits_in_order(void **state)
{
    (void)state;
    const char *name = th_name("burst.laps");
    rq *p = th_open(name, RQ_PRODUCER, 5, SLOT_SIZE, 0);
    rq *c = th_open(name, RQ_CONSUMER, 5, SLOT_SIZE, 0);
    uint64_t sent = 0, got = 0;
    unsigned char buf[8 * SLOT_SIZE];
    size_t lens[8];
    for (int round = 0; round < 400; round++) {
        size_t want = (size_t)(round % 8) + 1;
        int n = push_numbers(p, sent, want, 0);
        assert_true(n >= 1 && (size_t)n <= want && n <= 5);
        sent += (uint64_t)n;
        assert_int_equal(next_seq(p), sent);
        int m = rq_pop_burst(c, buf, SLOT_SIZE, lens, (size_t)(round % 3) + 1, 0);
        assert_true(m >= 1);
        for (int i = 0; i < m; i++) {
            uint64_t v;
            assert_int_equal(lens[i], sizeof v);
            memcpy(&v, buf + (size_t)i * SLOT_SIZE, sizeof v);
            assert_int_equal(v, got);
            got++;
        }
        if (sent - got == 5) {
            assert_int_equal(push_numbers(p, sent, 1, 0), RQ_EAGAIN); /* full: none */
        }
    }
    while (got < sent) {
        int m = rq_pop_burst(c, buf, SLOT_SIZE, lens, 8, 0);
        assert_true(m >= 1);
        got += (uint64_t)m;
    }
    assert_int_equal(rq_pop_burst(c, buf, SLOT_SIZE, lens, 8, 0), RQ_EAGAIN);
    assert_int_equal(next_seq(c), sent);
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.pushed, sent);
    assert_int_equal(st.popped, sent);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

static void test_bursts_refuse_what_does_not_fit(void **state)
{
    (void)state;
    const char *name = th_name("burst.refuse");
    rq *p = th_open(name, RQ_PRODUCER, 4, SLOT_SIZE, 0);
    rq *c = th_open(name, RQ_CONSUMER, 4, SLOT_SIZE, 0);
    char big[SLOT_SIZE + 1] = {0};
    const void *msgs[3] = {"a", big, "c"};
    size_t lens[3] = {1, sizeof big, 1};
    assert_int_equal(rq_push_burst(p, msgs, lens, 3, 0), RQ_EMSGSIZE);
    assert_int_equal(rq_push_burst(p, msgs, lens, 0, 0), 0);
    assert_int_equal(rq_push_burst(p, NULL, lens, 1, 0), RQ_EINVAL);
    assert_int_equal(rq_push_burst(c, msgs, lens, 1, 0), RQ_EROLE);
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.depth, 0); /* nothing pushed */
    /* "abc", then 20 bytes, then "d": a pop burst with 8-byte buffers takes
     * the first and stops before the long one, which then is RQ_EMSGSIZE
     * alone and stays until a large enough buffer takes it. */
    char twenty[20];
    memset(twenty, 'x', sizeof twenty);
    const void *m2[3] = {"abc", twenty, "d"};
    size_t l2[3] = {3, sizeof twenty, 1};
    assert_int_equal(rq_push_burst(p, m2, l2, 3, 0), 3);
    char buf[3 * SLOT_SIZE];
    size_t got[3];
    assert_int_equal(rq_pop_burst(c, buf, 8, got, 3, 0), 1);
    assert_int_equal(got[0], 3);
    assert_memory_equal(buf, "abc", 3);
    assert_int_equal(rq_pop_burst(c, buf, 8, got, 3, 0), RQ_EMSGSIZE);
    assert_int_equal(got[0], sizeof twenty);
    assert_int_equal(rq_pop_burst(c, buf, SLOT_SIZE, got, 3, 0), 2);
    assert_int_equal(got[0], sizeof twenty);
    assert_int_equal(got[1], 1);
    assert_memory_equal(buf + SLOT_SIZE, "d", 1);
    assert_int_equal(rq_pop_burst(c, buf, SLOT_SIZE, got, 0, 0), 0);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

/* A reservation of several slots: only the committed prefix becomes
 * visible, with one publish; a commit of 0 drops it all. */
static void test_reserved_burst_commits_a_prefix(void **state)
{
    (void)state;
    const char *name = th_name("burst.reserve");
    rq *p = th_open(name, RQ_PRODUCER, 4, SLOT_SIZE, 0);
    rq *c = th_open(name, RQ_CONSUMER, 4, SLOT_SIZE, 0);
    void *slots[8];
    assert_int_equal(rq_reserve_burst(p, slots, 8, 0), 4); /* the whole ring */
    assert_int_equal(rq_reserve_burst(p, slots, 2, 0), RQ_ESTATE);
    assert_int_equal(rq_push(p, "x", 1, 0), RQ_ESTATE);
    for (int i = 0; i < 4; i++)
        memset(slots[i], 'a' + i, SLOT_SIZE);
    size_t lens[4] = {1, 2, 3, 4};
    assert_int_equal(rq_commit_burst(p, lens, 5), RQ_EINVAL);
    size_t too_long[2] = {1, SLOT_SIZE + 1};
    assert_int_equal(rq_commit_burst(p, too_long, 2), RQ_EMSGSIZE); /* kept */
    assert_int_equal(rq_commit_burst(p, lens, 2), RQ_OK);
    assert_int_equal(rq_commit_burst(p, lens, 1), RQ_ESTATE);
    char buf[4 * SLOT_SIZE];
    size_t got[4];
    assert_int_equal(rq_pop_burst(c, buf, SLOT_SIZE, got, 4, 0), 2);
    assert_int_equal(got[0], 1);
    assert_int_equal(got[1], 2);
    assert_memory_equal(buf + SLOT_SIZE, "bb", 2);
    assert_int_equal(rq_reserve_burst(p, slots, 3, 0), 3);
    assert_int_equal(rq_commit_burst(p, NULL, 0), RQ_OK); /* dropped, unseen */
    assert_int_equal(rq_pop_burst(c, buf, SLOT_SIZE, got, 4, 0), RQ_EAGAIN);
    /* rq_commit on a burst reservation: the first slot only. */
    assert_int_equal(rq_reserve_burst(p, slots, 3, 0), 3);
    memcpy(slots[0], "first", 5);
    assert_int_equal(rq_commit(p, 5), RQ_OK);
    assert_int_equal(rq_pop_burst(c, buf, SLOT_SIZE, got, 4, 0), 1);
    assert_memory_equal(buf, "first", 5);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

static void expect_view(const rq_msg_view *v, uint64_t value, uint64_t seq, uint32_t flags)
{
    uint64_t got;
    assert_int_equal(v->len, sizeof got);
    memcpy(&got, v->data, sizeof got);
    assert_int_equal(got, value);
    assert_int_equal(v->seq, seq);
    assert_int_equal(v->flags, flags);
    assert_int_equal(v->reserved, 0);
}

/* A peeked window released a prefix at a time, as a bridge releases what
 * its downstream acknowledged; a consumer that dies holding a window gets
 * every message of it again, each flagged. */
static void test_peeked_burst_releases_in_parts(void **state)
{
    (void)state;
    const char *name = th_name("burst.peek");
    rq *p = th_open(name, RQ_PRODUCER, 8, SLOT_SIZE, 0);
    rq *c = th_open(name, RQ_CONSUMER, 8, SLOT_SIZE, 0);
    assert_int_equal(push_numbers(p, 100, 6, 0), 6);
    rq_msg_view v[8];
    assert_int_equal(rq_release_burst(c, 1), RQ_ESTATE);
    assert_int_equal(rq_peek_burst(c, v, 8, 0), 6);
    for (int i = 0; i < 6; i++)
        expect_view(&v[i], 100 + (uint64_t)i, (uint64_t)i, 0);
    assert_int_equal(rq_release_burst(c, 7), RQ_EINVAL);
    assert_int_equal(rq_release_burst(c, 0), RQ_EINVAL);
    char buf[SLOT_SIZE];
    size_t len;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_ESTATE);
    assert_int_equal(rq_release_burst(c, 2), RQ_OK); /* 100, 101 */
    assert_int_equal(next_seq(c), 2);
    /* The rest stays peeked: rq_peek sees its oldest, a new peek burst
     * starts there, and rq_release frees one. */
    const void *msg;
    rq_msg_info info;
    assert_int_equal(rq_peek_info(c, &msg, &len, &info, 0), RQ_OK);
    assert_int_equal(info.seq, 2);
    assert_int_equal(rq_peek_burst(c, v, 2, 0), 2);
    expect_view(&v[0], 102, 2, 0);
    expect_view(&v[1], 103, 3, 0);
    assert_int_equal(rq_release(c), RQ_OK);          /* 102 */
    assert_int_equal(rq_release_burst(c, 1), RQ_OK); /* 103 */
    assert_int_equal(rq_release_burst(c, 1), RQ_ESTATE);
    assert_int_equal(rq_peek_burst(c, v, 8, 0), 2);
    expect_view(&v[1], 105, 5, 0);
    rq_close(c); /* holding 104, 105: both handed out */
    assert_int_equal(push_numbers(p, 106, 1, 0), 1);
    c = th_open(name, RQ_CONSUMER, 8, SLOT_SIZE, 0);
    assert_int_equal(rq_peek_burst(c, v, 8, 0), 3);
    expect_view(&v[0], 104, 4, RQ_MSG_REDELIVERED);
    expect_view(&v[1], 105, 5, RQ_MSG_REDELIVERED);
    expect_view(&v[2], 106, 6, 0); /* never handed out before */
    assert_int_equal(rq_release_burst(c, 3), RQ_OK);
    assert_int_equal(rq_peek_burst(c, v, 8, 0), RQ_EAGAIN);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

/* ---- MPSC: producers pushing batches at once ------------------------- */

#define STREAMS 3u
#define PER_STREAM 3000u

static int burst_producer_main(const char *arg)
{
    uint32_t stream = (uint32_t)arg[0] - '0';
    rq *p;
    if (rq_open(&p, th_child_queue(), RQ_PRODUCER, NULL) != RQ_OK)
        return 70;
    unsigned char bufs[7][SLOT_SIZE];
    const void *msgs[7];
    size_t lens[7];
    uint64_t seq = 0;
    for (unsigned round = 0; seq < PER_STREAM; round++) {
        size_t want = round % 7 + 1;
        if (want > PER_STREAM - seq)
            want = PER_STREAM - seq;
        for (size_t i = 0; i < want; i++) {
            lens[i] = th_msg_make(bufs[i], SLOT_SIZE, seq + i, stream);
            msgs[i] = bufs[i];
        }
        void *slots[7];
        int n;
        if (round % 2) {
            n = rq_push_burst(p, msgs, lens, want, 10000);
        } else {
            n = rq_reserve_burst(p, slots, want, 10000);
            for (int i = 0; i < n; i++)
                memcpy(slots[i], bufs[i], lens[i]);
            if (n > 0 && rq_commit_burst(p, lens, (size_t)n) != RQ_OK)
                return 72;
        }
        if (n < 1)
            return 71;
        seq += (uint64_t)n;
    }
    rq_close(p);
    return 0;
}

static void test_mpsc_producers_push_bursts(void **state)
{
    (void)state;
    const char *name = th_set_child_queue(th_name("burst.mpsc"));
    rq *c = th_open(name, RQ_CONSUMER, 16, SLOT_SIZE, RQ_MPSC);
    th_pid pids[STREAMS];
    for (unsigned s = 0; s < STREAMS; s++)
        pids[s] = th_spawn("burst_producer_main", th_stream_arg(s), 60);
    uint64_t next[STREAMS] = {0}, qseq = 0, total = 0;
    rq_msg_view v[5];
    while (total < (uint64_t)STREAMS * PER_STREAM) {
        int n = rq_peek_burst(c, v, 5, 10000);
        assert_true(n >= 1);
        for (int i = 0; i < n; i++) {
            uint64_t seq;
            uint32_t stream;
            assert_int_equal(th_msg_check(v[i].data, v[i].len, &seq, &stream), 0);
            assert_true(stream < STREAMS);
            assert_int_equal(seq, next[stream]); /* each stream in order */
            next[stream]++;
            assert_int_equal(v[i].seq, qseq + (uint64_t)i);
        }
        /* release in two parts, as acknowledgements come */
        int first = (n + 1) / 2;
        assert_int_equal(rq_release_burst(c, (size_t)first), RQ_OK);
        if (n > first)
            assert_int_equal(rq_release_burst(c, (size_t)(n - first)), RQ_OK);
        qseq += (uint64_t)n;
        total += (uint64_t)n;
    }
    for (unsigned s = 0; s < STREAMS; s++) {
        int status;
        assert_int_equal(th_wait(pids[s], 30000, &status), 0);
        assert_true(th_exited_ok(status));
    }
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.pushed, (uint64_t)STREAMS * PER_STREAM);
    assert_int_equal(st.depth, 0);
    rq_close(c);
    rq_unlink(name);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_CHILD(burst_producer_main),
    };
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bursts_move_what_fits_in_order),
        cmocka_unit_test(test_bursts_refuse_what_does_not_fit),
        cmocka_unit_test(test_reserved_burst_commits_a_prefix),
        cmocka_unit_test(test_peeked_burst_releases_in_parts),
        cmocka_unit_test(test_mpsc_producers_push_bursts),
    };
    return cmocka_run_group_tests_name("burst", tests, NULL, NULL);
}
