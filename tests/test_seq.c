/*
 * test_seq.c - sequence numbers and the redelivery flag (src/ring.h's
 * positions, rq_peek_info / rq_pop_info / rq_next_seq in src/queue.c).
 * The kill suites (test_crash) check the same under crashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crashpoint.h"
#include "helpers.h"
#include "layout.h"
#include "rq.h"

static uint64_t next_seq(rq *q)
{
    uint64_t seq = UINT64_MAX;
    assert_int_equal(rq_next_seq(q, &seq), RQ_OK);
    return seq;
}

/* Peeks the oldest message, expecting number SEQ and FLAGS, and releases it. */
static void expect_next(rq *c, uint64_t seq, uint32_t flags)
{
    const void *msg;
    size_t len;
    rq_msg_info info;
    assert_int_equal(rq_peek_info(c, &msg, &len, &info, 0), RQ_OK);
    assert_int_equal(info.seq, seq);
    assert_int_equal(info.flags, flags);
    assert_int_equal(rq_release(c), RQ_OK);
}

/* Far more messages than slots: the numbers keep counting across laps of
 * the 2N offsets, one per message, on both sides. */
static void test_numbers_count_every_message_across_laps(void **state)
{
    (void)state;
    const char *name = th_name("seqlap");
    rq *p = th_open(name, RQ_PRODUCER, 3, 16, 0);
    rq *c = th_open(name, RQ_CONSUMER, 3, 16, 0);
    assert_int_equal(next_seq(p), 0);
    assert_int_equal(next_seq(c), 0);
    for (uint64_t i = 0; i < 1000; i++) {
        assert_int_equal(rq_push(p, &i, sizeof i, 0), RQ_OK);
        assert_int_equal(next_seq(p), i + 1);
        char buf[16];
        size_t len;
        rq_msg_info info = {99, 99, 99};
        if (i % 2) {
            assert_int_equal(rq_pop_info(c, buf, sizeof buf, &len, &info, 0), RQ_OK);
        } else {
            const void *msg;
            assert_int_equal(rq_peek_info(c, &msg, &len, &info, 0), RQ_OK);
            memcpy(buf, msg, len);
            assert_int_equal(rq_release(c), RQ_OK);
        }
        assert_int_equal(info.seq, i);
        assert_int_equal(info.flags, 0);
        assert_int_equal(info.reserved, 0);
        assert_memory_equal(buf, &i, sizeof i);
        assert_int_equal(next_seq(c), i + 1);
    }
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

/* A peek repeated before the release is the same delivery; a consumer that
 * closes (or dies) holding it leaves the flag for the next one, with the
 * same number; the message after it is not flagged. */
static void left_unreleased_scenario(uint32_t flags)
{
    const char *name = th_name(flags & RQ_RECORDS ? "seqflagr" : "seqflag");
    const uint32_t n = flags & RQ_RECORDS ? 1024u : 4u;
    rq *keep = th_create(name, n, 16, flags);
    rq *p = th_open(name, RQ_PRODUCER, n, 16, flags);
    assert_int_equal(rq_push(p, "a", 1, 0), RQ_OK);
    assert_int_equal(rq_push(p, "b", 1, 0), RQ_OK);
    rq *c = th_open(name, RQ_CONSUMER, n, 16, flags);
    const void *msg;
    size_t len;
    rq_msg_info info;
    assert_int_equal(rq_peek_info(c, &msg, &len, &info, 0), RQ_OK);
    assert_int_equal(info.seq, 0);
    assert_int_equal(info.flags, 0);
    assert_int_equal(rq_peek_info(c, &msg, &len, &info, 0), RQ_OK);
    assert_int_equal(info.flags, 0); /* the same delivery, not a second one */
    rq_close(c);

    c = th_open(name, RQ_CONSUMER, n, 16, flags);
    assert_int_equal(rq_peek_info(c, &msg, &len, &info, 0), RQ_OK);
    assert_int_equal(info.seq, 0);
    assert_int_equal(info.flags, RQ_MSG_REDELIVERED);
    assert_memory_equal(msg, "a", 1);
    assert_int_equal(rq_release(c), RQ_OK);
    char buf[16];
    assert_int_equal(rq_pop_info(c, buf, sizeof buf, &len, &info, 0), RQ_OK);
    assert_int_equal(info.seq, 1);
    assert_int_equal(info.flags, 0);
    rq_close(c);
    rq_close(p);
    rq_close(keep);
    rq_unlink(name);
}

static void test_a_message_left_unreleased_comes_back_flagged(void **state)
{
    (void)state;
    left_unreleased_scenario(0);
}

static void test_a_record_left_unreleased_comes_back_flagged(void **state)
{
    (void)state;
    left_unreleased_scenario(RQ_RECORDS);
}

/* A restarted SPSC producer learns where the queue stands; on an MPSC
 * queue each producer learns the number of the message it just pushed. */
static void test_producers_learn_their_numbers(void **state)
{
    (void)state;
    const char *name = th_name("seqprod");
    rq *keep = th_create(name, 8, 16, 0);
    rq *p = th_open(name, RQ_PRODUCER, 8, 16, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rq_push(p, "x", 1, 0), RQ_OK);
    rq_close(p);
    p = th_open(name, RQ_PRODUCER, 8, 16, 0);
    assert_int_equal(next_seq(p), 5);
    void *slot;
    assert_int_equal(rq_reserve(p, &slot, 0), RQ_OK);
    assert_int_equal(rq_commit(p, 0), RQ_OK);
    assert_int_equal(next_seq(p), 6);
    rq_close(p);
    rq_close(keep);
    rq_unlink(name);

    name = th_name("seqmpsc");
    keep = th_create(name, 8, 16, RQ_MPSC);
    rq *a = th_open(name, RQ_PRODUCER, 8, 16, RQ_MPSC);
    rq *b = th_open(name, RQ_PRODUCER, 8, 16, RQ_MPSC);
    rq *c = th_open(name, RQ_CONSUMER, 8, 16, RQ_MPSC);
    assert_int_equal(next_seq(b), 0);
    uint64_t mine[6];
    for (int i = 0; i < 6; i++) {
        rq *who = i % 3 ? a : b;
        char tag = (char)('0' + i);
        assert_int_equal(rq_push(who, &tag, 1, 0), RQ_OK);
        mine[i] = next_seq(who) - 1;
    }
    for (int i = 0; i < 6; i++) {
        char buf[16];
        size_t len;
        rq_msg_info info;
        assert_int_equal(rq_pop_info(c, buf, sizeof buf, &len, &info, 0), RQ_OK);
        assert_int_equal(buf[0], '0' + i);
        assert_int_equal(info.seq, mine[i]);
        assert_int_equal(info.seq, (uint64_t)i);
    }
    rq_close(a);
    rq_close(b);
    rq_close(c);
    rq_close(keep);
    rq_unlink(name);
}

/* An MPSC producer that sat out while another went round the ring more
 * than once (2N offsets and more) learns the number of its next push from
 * the stored position, not from its own last one: the shortcut that takes
 * the stored copy as less than a lap ahead must not apply. */
static void test_a_producer_idle_for_laps_learns_its_number(void **state)
{
    (void)state;
    const char *name = th_name("seqidle");
    rq *keep = th_create(name, 8, 16, RQ_MPSC);
    rq *a = th_open(name, RQ_PRODUCER, 8, 16, RQ_MPSC);
    rq *b = th_open(name, RQ_PRODUCER, 8, 16, RQ_MPSC);
    rq *c = th_open(name, RQ_CONSUMER, 8, 16, RQ_MPSC);
    char buf[16];
    size_t len;
    rq_msg_info info;
    uint64_t n = 0;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(rq_push(b, "b", 1, 0), RQ_OK);
        assert_int_equal(next_seq(b), n + 1);
        n++;
        /* a goes 3 laps and a few slots more (N = 8, 2N = 16 offsets) */
        for (int i = 0; i < 3 * 16 + 3 + round; i++, n++) {
            assert_int_equal(rq_push(a, "a", 1, 0), RQ_OK);
            if (i == 0) /* b's message, first */
                assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
            assert_int_equal(rq_pop_info(c, buf, sizeof buf, &len, &info, 0), RQ_OK);
            assert_int_equal(info.seq, n);
        }
        assert_int_equal(rq_push(b, "b", 1, 0), RQ_OK);
        assert_int_equal(next_seq(b), n + 1);
        assert_int_equal(rq_pop_info(c, buf, sizeof buf, &len, &info, 0), RQ_OK);
        assert_int_equal(buf[0], 'b');
        assert_int_equal(info.seq, n);
        n++;
    }
    rq_close(a);
    rq_close(b);
    rq_close(c);
    rq_close(keep);
    rq_unlink(name);
}

/* The 64-bit positions are stored lagging the offsets; a crash between the
 * two stores (simulated by rewinding the stored copy by one) or a copy
 * many laps behind still gives the right numbers, and a scribbled
 * delivered mark flags nothing (it is out of the range a dead consumer
 * could have left). */
static void test_positions_are_recovered_from_the_offsets(void **state)
{
    (void)state;
    const char *name = th_name("seqpos");
    rq *keep = th_create(name, 4, 16, 0);
    rq *p = th_open(name, RQ_PRODUCER, 4, 16, 0);
    rq *c = th_open(name, RQ_CONSUMER, 4, 16, 0);
    for (int i = 0; i < 23; i++) {
        char buf[16];
        size_t len;
        assert_int_equal(rq_push(p, "m", 1, 0), RQ_OK);
        if (i < 21)
            assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    }
    rq_close(p);
    rq_close(c);
    struct th_raw raw;
    th_raw_open(&raw, "rq", name);
    struct rq_shm *shm = (struct rq_shm *)raw.addr;
    /* as if each side died between its offset store and its position store */
    rq_store_relaxed_u64(&shm->write_position, 22);
    rq_store_relaxed_u64(&shm->read_position, 20);
    rq_store_relaxed_u64(&shm->consumer.delivered_position, UINT64_C(1) << 60);
    p = th_open(name, RQ_PRODUCER, 4, 16, 0);
    c = th_open(name, RQ_CONSUMER, 4, 16, 0);
    assert_int_equal(next_seq(p), 23);
    assert_int_equal(next_seq(c), 21);
    expect_next(c, 21, 0);
    rq_close(c);
    /* A stored read position 1 behind with the mark at it: message 22 was
     * handed out by a consumer that then died. */
    rq_store_relaxed_u64(&shm->read_position, 21);
    rq_store_relaxed_u64(&shm->consumer.delivered_position, 23);
    c = th_open(name, RQ_CONSUMER, 4, 16, 0);
    const void *msg;
    size_t len;
    rq_msg_info info;
    assert_int_equal(rq_peek_info(c, &msg, &len, &info, 0), RQ_OK);
    assert_int_equal(info.seq, 22);
    assert_int_equal(info.flags, RQ_MSG_REDELIVERED);
    th_raw_close(&raw);
    rq_close(c);
    rq_close(p);
    rq_close(keep);
    rq_unlink(name);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    const char *name = th_name("seqarg");
    rq *o = th_open(name, RQ_OBSERVER, 4, 16, 0);
    uint64_t seq;
    assert_int_equal(rq_next_seq(NULL, &seq), RQ_EINVAL);
    assert_int_equal(rq_next_seq(o, NULL), RQ_EINVAL);
    assert_int_equal(rq_next_seq(o, &seq), RQ_EROLE);
    rq *p = th_open(name, RQ_PRODUCER, 4, 16, 0);
    rq_msg_info info;
    const void *msg;
    size_t len;
    assert_int_equal(rq_peek_info(p, &msg, &len, &info, 0), RQ_EROLE);
    rq_close(p);
    rq_close(o);
    rq_unlink(name);
}

/* Single messages store their side's position only once per period (the
 * largest power of two <= N): after any run of them the stored copies lag
 * by less than 2N, so that the next handles (which recover from them, as
 * after a kill) number the next message right.  No store at all fails
 * here.  A longer period does not: the stops are offsets in [0, 2N), so a
 * period of 2N or more is once a lap, a lag of at most 2N - 1 after a
 * clean close; the kill below, at a lap's end, catches it. */
static void test_positions_stored_once_a_period_stay_within_reach(void **state)
{
    (void)state;
    for (uint32_t slots = 3; slots <= 4; slots++) {
        const char *name = th_name("seqperiod");
        rq *keep = th_create(name, slots, 16, 0);
        rq *p = th_open(name, RQ_PRODUCER, slots, 16, 0);
        rq *c = th_open(name, RQ_CONSUMER, slots, 16, 0);
        uint64_t count = 4 * slots - 1;
        for (uint64_t i = 0; i < count; i++) {
            char buf[16];
            size_t len;
            assert_int_equal(rq_push(p, "m", 1, 0), RQ_OK);
            assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
        }
        struct th_raw raw;
        th_raw_open(&raw, "rq", name);
        struct rq_shm *shm = (struct rq_shm *)raw.addr;
        uint64_t w = rq_load_relaxed_u64(&shm->write_position);
        uint64_t r = rq_load_relaxed_u64(&shm->read_position);
        assert_true(w <= count && count - w < 2 * slots);
        assert_true(r <= count && count - r < 2 * slots);
        th_raw_close(&raw);
        rq_close(p);
        rq_close(c);
        p = th_open(name, RQ_PRODUCER, slots, 16, 0);
        c = th_open(name, RQ_CONSUMER, slots, 16, 0);
        assert_int_equal(next_seq(p), count);
        assert_int_equal(next_seq(c), count);
        assert_int_equal(rq_push(p, "n", 1, 0), RQ_OK);
        expect_next(c, count, 0);
        rq_close(c);
        rq_close(p);
        rq_close(keep);
        rq_unlink(name);
    }
}

/* A producer that pushes PERIOD_KILL_PUSHES single messages into a 4-slot
 * queue (blocking: the parent pops them); armed, it dies in the last one
 * between its offset store and its position store. */
#define PERIOD_KILL_SLOTS 4u
#define PERIOD_KILL_PUSHES 8u

static int period_pusher_main(const char *queue)
{
    rq *p;
    rq_config cfg = {PERIOD_KILL_SLOTS, 16, 0, 0};
    if (rq_open(&p, queue, RQ_PRODUCER, &cfg) != RQ_OK)
        return 40;
    for (unsigned i = 0; i < PERIOD_KILL_PUSHES; i++)
        if (rq_push(p, "k", 1, 10000) != RQ_OK)
            return 41;
    rq_close(p);
    return 0;
}

/* The period is at most N, so a kill before a position store leaves a lag
 * of less than 2N.  Here N = 4: one producer life pushes 7 messages, which
 * store the position once (at 4), and dies in the 8th (offset 8, that is 0
 * mod 2N, published; position not stored).  The next producer recovers 8
 * from the stored 4; a period of 2N would have stored nothing yet (the
 * stored 0 is a whole 2N behind), and 8 would be numbered 0 again. */
static void test_a_kill_before_the_position_store_loses_no_number(void **state)
{
    (void)state;
    const char *name = th_name("seqkill");
    rq *keep = th_create(name, PERIOD_KILL_SLOTS, 16, 0);
    rq *c = th_open(name, RQ_CONSUMER, PERIOD_KILL_SLOTS, 16, 0);
    th_pid pid = th_spawn_armed("period_pusher_main", name, 30, RQ_CP_PUSH_BEFORE_POSITION,
                                PERIOD_KILL_PUSHES);
    for (uint64_t i = 0; i < PERIOD_KILL_PUSHES - 1; i++) {
        char buf[16];
        size_t len;
        assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 10000), RQ_OK);
    }
    int status;
    assert_int_equal(th_wait(pid, 20000, &status), 0);
    assert_true(th_was_killed(status));
    rq *p = th_open(name, RQ_PRODUCER, PERIOD_KILL_SLOTS, 16, 0);
    assert_int_equal(next_seq(p), PERIOD_KILL_PUSHES);
    assert_int_equal(rq_push(p, "n", 1, 0), RQ_OK);
    for (uint64_t seq = PERIOD_KILL_PUSHES - 1; seq <= PERIOD_KILL_PUSHES; seq++)
        expect_next(c, seq, 0); /* the consumer never died: nothing flagged */
    rq_close(p);
    rq_close(c);
    rq_close(keep);
    rq_unlink(name);
}

/* A consumer that peeks and releases single messages for ever (blocking);
 * armed, it dies at a point of its K-th peek or release.  It opens the
 * queue as it is (SPSC or MPSC). */
#define DEAD_CONSUMER_SLOTS 8u

static int peeking_consumer_main(const char *queue)
{
    rq *c;
    if (rq_open(&c, queue, RQ_CONSUMER, NULL) != RQ_OK)
        return 40;
    for (;;) {
        const void *msg;
        size_t len;
        if (rq_peek(c, &msg, &len, 10000) != RQ_OK || rq_release(c) != RQ_OK)
            return 41;
    }
}

/* The same with peeked batches of up to 3, each released whole. */
static int burst_consumer_main(const char *queue)
{
    rq *c;
    if (rq_open(&c, queue, RQ_CONSUMER, NULL) != RQ_OK)
        return 40;
    for (;;) {
        rq_msg_view v[3];
        int k = rq_peek_burst(c, v, 3, 10000);
        if (k < 1 || rq_release_burst(c, (size_t)k) != RQ_OK)
            return 41;
    }
}

/* Runs CHILD on NAME until it dies at POINT's HIT-th pass, after PUSHED
 * more messages through producer P. */
static void kill_consumer(const char *child, const char *name, rq *p, unsigned pushed, int point,
                          unsigned long hit)
{
    for (unsigned i = 0; i < pushed; i++)
        assert_int_equal(rq_push(p, "d", 1, 0), RQ_OK);
    th_pid pid = th_spawn_armed(child, name, 30, point, hit);
    int status;
    assert_int_equal(th_wait(pid, 20000, &status), 0);
    if (!th_was_killed(status))
        fail_msg("%s not killed at point %d, hit %lu: status %d", child, point, hit, status);
}

static void kill_peeking_consumer(const char *name, rq *p, unsigned pushed, int point,
                                  unsigned long hit)
{
    kill_consumer("peeking_consumer_main", name, p, pushed, point, hit);
}

/* A single peek stores no mark: when a consumer dies, its successor flags
 * the oldest message, which the dead one may have been holding.  Killed
 * holding message 2 (its third peek), message 2 comes back flagged (also
 * after a successor closed holding it) and 3 does not; killed just after
 * releasing message 4, message 5, which it never saw, is flagged too (the
 * one message a death may flag without a hand-over), and 6 is not; killed
 * with the ring empty, a message pushed once the successor is open is not
 * flagged; a clean close holding nothing flags nothing.  Killed holding a
 * peeked batch, every message of it comes back flagged: the takeover's
 * flag never lowers the batch's mark. */
static void dead_consumer_scenarios(uint32_t flags)
{
    const char *name = th_name(flags & RQ_RECORDS ? "seqdeadr"
                               : flags & RQ_MPSC  ? "seqdeadm"
                                                  : "seqdead");
    /* A record queue of 1,024 bytes holds 128 of these 1-byte records. */
    const uint32_t n = flags & RQ_RECORDS ? 1024u : DEAD_CONSUMER_SLOTS;
    rq *keep = th_create(name, n, 16, flags);
    rq *p = th_open(name, RQ_PRODUCER, n, 16, flags);

    kill_peeking_consumer(name, p, 4, RQ_CP_PEEK_HANDED_OUT, 3);
    rq *c = th_open(name, RQ_CONSUMER, n, 16, flags);
    const void *msg;
    size_t len;
    assert_int_equal(rq_peek(c, &msg, &len, 0), RQ_OK);
    rq_close(c); /* closed holding it: the flag stays for the next one */
    c = th_open(name, RQ_CONSUMER, n, 16, flags);
    expect_next(c, 2, RQ_MSG_REDELIVERED);
    expect_next(c, 3, 0);
    rq_close(c);

    kill_peeking_consumer(name, p, 3, RQ_CP_RELEASE_BEFORE_POSITION, 1); /* releases 4 */
    c = th_open(name, RQ_CONSUMER, n, 16, flags);
    expect_next(c, 5, RQ_MSG_REDELIVERED);
    expect_next(c, 6, 0);
    rq_close(c);

    kill_peeking_consumer(name, p, 1, RQ_CP_PEEK_HANDED_OUT, 1);         /* dies holding 7 */
    kill_peeking_consumer(name, p, 0, RQ_CP_RELEASE_BEFORE_POSITION, 1); /* releases 7 */
    c = th_open(name, RQ_CONSUMER, n, 16, flags);
    assert_int_equal(rq_push(p, "e", 1, 0), RQ_OK);
    expect_next(c, 8, 0); /* pushed once the successor was open: not the dead one's */
    rq_close(c);

    assert_int_equal(rq_push(p, "f", 1, 0), RQ_OK);
    c = th_open(name, RQ_CONSUMER, n, 16, flags);
    expect_next(c, 9, 0);
    rq_close(c);

    kill_consumer("burst_consumer_main", name, p, 4, RQ_CP_RELEASE_BURST_BEFORE_PUBLISH, 1);
    c = th_open(name, RQ_CONSUMER, n, 16, flags);
    for (uint64_t seq = 10; seq < 13; seq++) /* the batch it held */
        expect_next(c, seq, RQ_MSG_REDELIVERED);
    expect_next(c, 13, 0);
    rq_close(c);
    rq_close(p);
    rq_close(keep);
    rq_unlink(name);
}

static void test_a_dead_consumer_leaves_the_oldest_flagged(void **state)
{
    (void)state;
    dead_consumer_scenarios(0);
}

static void test_a_dead_mpsc_consumer_leaves_the_oldest_flagged(void **state)
{
    (void)state;
    dead_consumer_scenarios(RQ_MPSC);
}

static void test_a_dead_record_consumer_leaves_the_oldest_flagged(void **state)
{
    (void)state;
    dead_consumer_scenarios(RQ_RECORDS);
}

/* An open that fails after it found the last consumer dead (here: a
 * read_offset out of range) leaves that finding for the next open, which
 * still flags the message the dead one held; the one death is counted
 * once, however many opens fail before one succeeds. */
static void failed_open_scenario(uint32_t flags)
{
    const char *name = th_name(flags & RQ_RECORDS ? "seqfailr" : "seqfail");
    const uint32_t n = flags & RQ_RECORDS ? 1024u : DEAD_CONSUMER_SLOTS;
    rq *keep = th_create(name, n, 16, flags);
    rq *p = th_open(name, RQ_PRODUCER, n, 16, flags);
    kill_peeking_consumer(name, p, 2, RQ_CP_PEEK_HANDED_OUT, 1); /* dies holding 0 */
    struct th_raw raw;
    th_raw_open(&raw, "rq", name);
    struct rq_shm *shm = (struct rq_shm *)raw.addr;
    /* (little-endian: a record queue's read_word has its offset there) */
    uint32_t read = rq_load_relaxed_u32(&shm->read_offset);
    rq_store_relaxed_u32(&shm->read_offset, 2 * n); /* out of range */
    rq *c = NULL;
    rq_config cfg = {n, 16, flags, 0};
    assert_int_equal(rq_open(&c, name, RQ_CONSUMER, &cfg), RQ_ECORRUPT);
    assert_int_equal(rq_open(&c, name, RQ_CONSUMER, &cfg), RQ_ECORRUPT);
    rq_store_relaxed_u32(&shm->read_offset, read);
    th_raw_close(&raw);
    c = th_open(name, RQ_CONSUMER, n, 16, flags);
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.consumer_takeovers, 1);
    expect_next(c, 0, RQ_MSG_REDELIVERED);
    expect_next(c, 1, 0);
    rq_close(c);
    rq_close(p);
    rq_close(keep);
    rq_unlink(name);
}

static void test_a_failed_open_keeps_the_dead_consumers_flag(void **state)
{
    (void)state;
    failed_open_scenario(0);
}

static void test_a_failed_open_keeps_the_dead_record_consumers_flag(void **state)
{
    (void)state;
    failed_open_scenario(RQ_RECORDS);
}

/* A record queue's positions are its own (records.c): opening a side must
 * not store the slot ring's, which a record queue never loads (0), over
 * them.  Numbers past 2^32 show it: the record offsets carry only the low
 * 32 bits, and a stored copy of 0 would number the next message 5. */
static void test_record_queue_positions_survive_a_reopen(void **state)
{
    (void)state;
    const char *name = th_name("seqrec");
    rq *keep = th_create(name, 4096, 256, RQ_RECORDS); /* capacity, largest record */
    rq *p, *c;
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, NULL), RQ_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(rq_push(p, "r", 1, 0), RQ_OK);
    rq_close(p);
    struct th_raw raw;
    th_raw_open(&raw, "rq", name);
    struct rq_shm *shm = (struct rq_shm *)raw.addr;
    const uint64_t lap = UINT64_C(1) << 32; /* as if 2^32 more had gone by */
    rq_store_relaxed_u64(&shm->write_position, lap + 5);
    rq_store_relaxed_u64(&shm->read_position, lap);
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, NULL), RQ_OK);
    assert_int_equal(rq_open(&c, name, RQ_CONSUMER, NULL), RQ_OK);
    assert_int_equal(rq_load_relaxed_u64(&shm->write_position), lap + 5);
    assert_int_equal(rq_load_relaxed_u64(&shm->read_position), lap);
    rq_close(p);
    rq_close(c);
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, NULL), RQ_OK);
    assert_int_equal(next_seq(p), lap + 5);
    th_raw_close(&raw);
    rq_close(p);
    rq_close(keep);
    rq_unlink(name);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_CHILD(period_pusher_main),
        TH_CHILD(peeking_consumer_main),
        TH_CHILD(burst_consumer_main),
    };
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_count_every_message_across_laps),
        cmocka_unit_test(test_a_message_left_unreleased_comes_back_flagged),
        cmocka_unit_test(test_a_record_left_unreleased_comes_back_flagged),
        cmocka_unit_test(test_producers_learn_their_numbers),
        cmocka_unit_test(test_a_producer_idle_for_laps_learns_its_number),
        cmocka_unit_test(test_positions_are_recovered_from_the_offsets),
        cmocka_unit_test(test_positions_stored_once_a_period_stay_within_reach),
        cmocka_unit_test(test_a_kill_before_the_position_store_loses_no_number),
        cmocka_unit_test(test_a_dead_consumer_leaves_the_oldest_flagged),
        cmocka_unit_test(test_a_dead_mpsc_consumer_leaves_the_oldest_flagged),
        cmocka_unit_test(test_a_dead_record_consumer_leaves_the_oldest_flagged),
        cmocka_unit_test(test_a_failed_open_keeps_the_dead_consumers_flag),
        cmocka_unit_test(test_a_failed_open_keeps_the_dead_record_consumers_flag),
        cmocka_unit_test(test_record_queue_positions_survive_a_reopen),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests_name("seq", tests, NULL, NULL);
}
