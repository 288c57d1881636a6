/*
 * test_records_crash.c - record queues (RQ_RECORDS) killed at every crash
 * point on their path and at random, by real producer and consumer
 * processes exchanging records of random sizes from 1 byte to the largest.
 *
 * Every record carries its stream (producer) and that stream's sequence
 * number, derivable from its content: a record of 16 bytes or more holds
 * the number and a checksum, a shorter one is the exact bytes the expected
 * number gives (its length too is a function of stream and number).  The
 * consumer checks every byte, the order per stream, the queue's sequence
 * numbers and the redelivery flag; afterwards the ring must still take
 * exactly as many records as its capacity allows from where it stands.
 *
 * The burst calls are killed the same way: producers that push batches of
 * 1..BURST_MAX records with rq_push_burst, a consumer that takes them with
 * rq_pop_burst or rq_peek_burst / rq_release_burst.
 *
 * `test_records_crash --soak [KILLS]` runs the long kill torture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crashpoint.h"
#include "helpers.h"
#include "rq.h"

#define CAP 1024u
#define MAX 300u      /* records of 1..MAX bytes; MAX <= CAP / 2 - 4 */
#define STREAMS_MAX 4 /* the stream is 2 bits of a record's first byte */
#define WATCHDOG_S 120
#define LIFE_TIMEOUT_MS 20000
#define FINISH_TIMEOUT_MS 60000
#define BURST_MAX 8u /* records per burst call, at most */

static unsigned long kill_target;

/* ---- self-checking records of any length ------------------------------ */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= UINT64_C(0x9e3779b97f4a7c15);
    x ^= x >> 29;
    return x;
}

/* Mostly short, like log lines: 60% up to 32 bytes, 30% up to 256, 10%
 * anything up to the largest. */
static size_t rec_size(unsigned stream, uint64_t seq, uint32_t max)
{
    uint64_t h = mix(seq * 8 + stream + 1);
    unsigned pick = (unsigned)(h % 100);
    uint64_t r = h / 100;
    size_t len = pick < 60 ? 1 + r % 32 : pick < 90 ? 1 + r % 256 : 1 + r % max;
    return len > max ? max : len;
}

static unsigned char pattern(unsigned stream, uint64_t seq, size_t i)
{
    return (unsigned char)(seq * 131u + stream * 17u + i * 7u + (seq >> 8));
}

static uint32_t rec_sum(const unsigned char *b, size_t len)
{
    uint32_t s = 2166136261u;
    for (size_t i = 0; i < len; i++)
        if (i < 9 || i >= 13)
            s = (s ^ b[i]) * 16777619u;
    return s;
}

static size_t rec_make(unsigned char *b, unsigned stream, uint64_t seq, uint32_t max)
{
    size_t len = rec_size(stream, seq, max);
    b[0] = (unsigned char)(stream | seq << 2); /* a 1-byte record tells seq mod 64 */
    size_t from = 1;
    if (len >= 16) {
        memcpy(b + 1, &seq, 8);
        from = 13;
    }
    for (size_t i = from; i < len; i++)
        b[i] = pattern(stream, seq, i);
    if (len >= 16) {
        uint32_t sum = rec_sum(b, len);
        memcpy(b + 9, &sum, 4);
    }
    return len;
}

/* 1 if B/LEN is record SEQ of STREAM, byte for byte. */
static int rec_is(const unsigned char *b, size_t len, unsigned stream, uint64_t seq, uint32_t max)
{
    unsigned char want[MAX];
    if (len != rec_size(stream, seq, max))
        return 0;
    rec_make(want, stream, seq, max);
    return memcmp(b, want, len) == 0;
}

/* ---- the shared account ---------------------------------------------- */

struct rj {
    char name[RQ_NAME_MAX + 1];
    unsigned streams;
    int consume_pop;
    int bursts; /* both sides use the burst calls (2: the producer reserves them) */
    unsigned producer_pause_us, consumer_pause_us;
    rq_atomic_u64 limit, started;
    rq_atomic_u64 prod_next[STREAMS_MAX], cons_next[STREAMS_MAX];
    rq_atomic_u64 received, bytes, duplicates, gaps, torn, reorders;
    rq_atomic_u64 qseq_next, qseq_gaps, qseq_reused, flags_lost, flagged;
    /* Consumer lives ended since the stream last moved on: each may have
     * lost what rq_pop or rq_pop_burst took, so the next record may be
     * that many batches ahead. */
    rq_atomic_u64 consumer_deaths[STREAMS_MAX];
};

static struct rj *rj;

static struct rj *rj_new(const char *name, unsigned streams, uint64_t limit)
{
    struct rj *j = th_shared_fresh("records", sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    j->streams = streams;
    rq_store_relaxed_u64(&j->limit, limit);
    return j;
}

/* Called by the harness after it reaped a killed consumer (no consumer
 * runs then). */
static void rj_consumer_died(struct rj *j)
{
    for (unsigned s = 0; s < j->streams; s++)
        rq_fetch_add_u64(&j->consumer_deaths[s], 1);
}

static int rj_complete(struct rj *j)
{
    return th_streams_complete(&j->limit, j->cons_next, j->streams);
}

/* The producer's loop with rq_push_burst: batches of 1..BURST_MAX records
 * (as many as fit go in, the rest go first into the next batch). */
static int producer_bursts(struct rj *j, rq *p, unsigned stream)
{
    static unsigned char bufs[BURST_MAX][MAX];
    const void *msgs[BURST_MAX];
    size_t lens[BURST_MAX];
    uint64_t seq = rq_load_acquire_u64(&j->prod_next[stream]);
    while (seq < rq_load_acquire_u64(&j->limit)) {
        if (j->producer_pause_us)
            th_sleep_us(j->producer_pause_us);
        unsigned n = 1 + (unsigned)(mix(seq) % BURST_MAX);
        uint64_t limit = rq_load_acquire_u64(&j->limit); /* none past it: the ring ends empty */
        if (seq >= limit)
            break;
        n = limit - seq < n ? (unsigned)(limit - seq) : n;
        for (unsigned i = 0; i < n; i++) {
            lens[i] = rec_make(bufs[i], stream, seq + i, MAX);
            msgs[i] = bufs[i];
        }
        uint64_t t0 = th_now_ms();
        int k = rq_push_burst(p, msgs, lens, n, RQ_INFINITE);
        th_check_wakes_after(p, "rq_push_burst (records producer)", t0);
        if (k < 1)
            return 21;
        seq += (uint64_t)k;
        rq_store_release_u64(&j->prod_next[stream], seq);
    }
    rq_close(p);
    return 0;
}

/* The producer's loop with rq_reserve_burst_len + rq_commit_burst: batches
 * of 1..BURST_MAX records, every third reserved at the largest length
 * and committed shorter (the later ones are packed), and every fifth batch
 * committed but for its last record (dropped, pushed again next time). */
static int producer_reserved_bursts(struct rj *j, rq *p, unsigned stream)
{
    void *bufs[BURST_MAX];
    size_t lens[BURST_MAX], room[BURST_MAX];
    uint64_t seq = rq_load_acquire_u64(&j->prod_next[stream]);
    for (;;) {
        if (j->producer_pause_us)
            th_sleep_us(j->producer_pause_us);
        unsigned n = 1 + (unsigned)(mix(seq) % BURST_MAX);
        uint64_t limit = rq_load_acquire_u64(&j->limit);
        if (seq >= limit)
            break;
        n = limit - seq < n ? (unsigned)(limit - seq) : n;
        for (unsigned i = 0; i < n; i++)
            room[i] = (seq + i) % 3 ? rec_size(stream, seq + i, MAX) : MAX;
        uint64_t t0 = th_now_ms();
        int k = rq_reserve_burst_len(p, room, n, bufs, RQ_INFINITE);
        th_check_wakes_after(p, "rq_reserve_burst_len (records producer)", t0);
        if (k < 1)
            return 21;
        unsigned m = (unsigned)k > 1 && seq % 5 == 0 ? (unsigned)k - 1 : (unsigned)k;
        for (unsigned i = 0; i < m; i++)
            lens[i] = rec_make(bufs[i], stream, seq + i, MAX);
        if (rq_commit_burst(p, lens, m) != RQ_OK)
            return 22;
        seq += m;
        rq_store_release_u64(&j->prod_next[stream], seq);
    }
    rq_close(p);
    return 0;
}

static int producer_main(const char *arg)
{
    unsigned stream = (unsigned)strtoul(arg, NULL, 10);
    struct rj *j = th_shared("records", sizeof *j);
    rq_fetch_add_u64(&j->started, 1);
    rq *p;
    if (rq_open(&p, j->name, RQ_PRODUCER, NULL) != RQ_OK)
        return 20;
    if (j->bursts == 2)
        return producer_reserved_bursts(j, p, stream);
    if (j->bursts)
        return producer_bursts(j, p, stream);
    unsigned char buf[MAX];
    for (uint64_t seq = rq_load_acquire_u64(&j->prod_next[stream]);
         seq < rq_load_acquire_u64(&j->limit); seq++) {
        if (j->producer_pause_us)
            th_sleep_us(j->producer_pause_us);
        uint64_t t0 = th_now_ms();
        int rc;
        if (seq % 2 == 0) {
            size_t len = rec_make(buf, stream, seq, MAX);
            rc = rq_push(p, buf, len, RQ_INFINITE);
        } else {
            void *slot;
            size_t len = rec_size(stream, seq, MAX);
            /* Every third: reserve more than is committed. */
            rc = rq_reserve_len(p, seq % 3 ? len : MAX, &slot, RQ_INFINITE);
            if (rc == RQ_OK)
                rc = rq_commit(p, rec_make(slot, stream, seq, MAX));
        }
        th_check_wakes_after(p, "rq_push (records producer)", t0);
        if (rc != RQ_OK)
            return 21;
        rq_store_release_u64(&j->prod_next[stream], seq + 1);
    }
    rq_close(p);
    return 0;
}

/* The stream's number of record B/LEN: read from it (16 bytes or more) or
 * matched against the numbers it can have (the expected one, a repeat of
 * the last, or one after the records lost by rq_pop; with bursts, a batch
 * either way). */
static int identify(struct rj *j, const unsigned char *b, size_t len, unsigned *stream,
                    uint64_t *seq)
{
    if (len == 0 || (b[0] & 3u) >= j->streams)
        return -1;
    *stream = b[0] & 3u;
    if (len >= 16) {
        memcpy(seq, b + 1, 8);
        return rec_is(b, len, *stream, *seq, MAX) ? 0 : -1;
    }
    uint64_t expect = rq_load_acquire_u64(&j->cons_next[*stream]);
    /* A burst is repeated (or lost by rq_pop_burst) whole: a batch back
     * or ahead, and a batch more ahead for each consumer that died since
     * the stream moved on (each may have lost one: two consumers killed
     * in a row, each after its rq_pop_burst, put the next record 16
     * ahead).  Unique while the window spans at most 64 numbers: the
     * first byte holds the number mod 64.  Past that (seven consumers
     * in a row each losing a batch) a short record reads as torn. */
    uint64_t per_kill = j->bursts ? BURST_MAX : 1, back = per_kill;
    uint64_t deaths = rq_load_acquire_u64(&j->consumer_deaths[*stream]);
    uint64_t ahead = per_kill * (deaths > 1 ? deaths : 1) + 1;
    ahead = ahead < 63 - back ? ahead : 63 - back;
    for (uint64_t c = expect > back ? expect - back : 0; c <= expect + ahead; c++) {
        if (rec_is(b, len, *stream, c, MAX)) {
            *seq = c;
            return 0;
        }
    }
    return -1;
}

static void note_queue_seq(struct rj *j, const rq_msg_info *info)
{
    uint64_t next = rq_load_acquire_u64(&j->qseq_next);
    if (info->flags & RQ_MSG_REDELIVERED)
        rq_fetch_add_u64(&j->flagged, 1);
    /* A peeked burst comes again whole after a kill, every record of it
     * flagged; one without the flag is a reuse. */
    if (j->bursts && info->seq < next) {
        if (!(info->flags & RQ_MSG_REDELIVERED))
            rq_fetch_add_u64(info->seq == next - 1 ? &j->flags_lost : &j->qseq_reused, 1);
        return;
    }
    if (next > 0 && info->seq == next - 1) {
        if (!(info->flags & RQ_MSG_REDELIVERED))
            rq_fetch_add_u64(&j->flags_lost, 1);
        return;
    }
    if (info->seq < next) {
        rq_fetch_add_u64(&j->qseq_reused, 1);
        return;
    }
    if (info->seq > next)
        rq_fetch_add_u64(&j->qseq_gaps, info->seq - next);
    rq_store_release_u64(&j->qseq_next, info->seq + 1);
}

static void consumer_note(struct rj *j, const void *msg, size_t len, const rq_msg_info *info)
{
    unsigned stream;
    uint64_t seq;
    rq_fetch_add_u64(&j->received, 1);
    if (identify(j, msg, len, &stream, &seq) != 0) {
        rq_fetch_add_u64(&j->torn, 1);
        return;
    }
    rq_fetch_add_u64(&j->bytes, len);
    if (info) /* rq_pop_burst tells no numbers */
        note_queue_seq(j, info);
    uint64_t expect = rq_load_acquire_u64(&j->cons_next[stream]);
    if (seq + 1 == expect || (j->bursts && seq < expect && seq + BURST_MAX >= expect)) {
        rq_fetch_add_u64(&j->duplicates, 1);
    } else if (seq < expect) {
        rq_fetch_add_u64(&j->reorders, 1);
    } else {
        if (seq > expect)
            rq_fetch_add_u64(&j->gaps, seq - expect);
        rq_store_release_u64(&j->cons_next[stream], seq + 1);
        rq_store_release_u64(&j->consumer_deaths[stream], 0);
    }
}

static int producers_done(struct rj *j)
{
    uint64_t limit = rq_load_acquire_u64(&j->limit);
    for (unsigned s = 0; s < j->streams; s++)
        if (rq_load_acquire_u64(&j->prod_next[s]) < limit)
            return 0;
    return 1;
}

/* The consumer's loop with rq_pop_burst, or rq_peek_burst and
 * rq_release_burst (the batch in two parts when it has two or more). */
static int consumer_bursts(struct rj *j, rq *c)
{
    static unsigned char buf[BURST_MAX * MAX];
    size_t lens[BURST_MAX];
    rq_msg_view v[BURST_MAX];
    while (!rj_complete(j)) {
        if (j->consumer_pause_us)
            th_sleep_us(j->consumer_pause_us);
        uint64_t t0 = th_now_ms();
        int k;
        if (j->consume_pop) {
            /* rq_pop_burst is at-most-once: a consumer killed after freeing
             * the last batch lost it, and nothing more will come.  Done
             * when the producers are and the ring stays empty. */
            k = rq_pop_burst(c, buf, MAX, lens, BURST_MAX, 200);
            if (k == RQ_ETIMEDOUT && producers_done(j))
                break;
            if (k == RQ_ETIMEDOUT)
                continue;
            for (int i = 0; i < k; i++)
                consumer_note(j, buf + (size_t)i * MAX, lens[i], NULL);
        } else {
            k = rq_peek_burst(c, v, BURST_MAX, RQ_INFINITE);
            for (int i = 0; i < k; i++) {
                rq_msg_info info = {v[i].seq, v[i].flags, 0};
                consumer_note(j, v[i].data, v[i].len, &info);
            }
            int first = k > 1 ? k / 2 : k;
            if (k > 0 && (rq_release_burst(c, (size_t)first) != RQ_OK ||
                          (first < k && rq_release_burst(c, (size_t)(k - first)) != RQ_OK)))
                return 33;
        }
        th_check_wakes_after(c, "rq_pop_burst (records consumer)", t0);
        if (k < 1)
            return 32;
    }
    rq_close(c);
    return 0;
}

static int consumer_main(const char *arg)
{
    (void)arg;
    struct rj *j = th_shared("records", sizeof *j);
    rq_fetch_add_u64(&j->started, 1);
    rq *c;
    if (rq_open(&c, j->name, RQ_CONSUMER, NULL) != RQ_OK)
        return 30;
    if (j->bursts)
        return consumer_bursts(j, c);
    unsigned char buf[MAX];
    rq_msg_info info;
    while (!rj_complete(j)) {
        if (j->consumer_pause_us)
            th_sleep_us(j->consumer_pause_us);
        size_t len;
        uint64_t t0 = th_now_ms();
        int rc;
        if (!j->consume_pop) {
            const void *msg;
            rc = rq_peek_info(c, &msg, &len, &info, RQ_INFINITE);
            if (rc != RQ_OK)
                return 31;
            consumer_note(j, msg, len, &info);
            rc = rq_release(c);
        } else {
            rc = rq_pop_info(c, buf, sizeof buf, &len, &info, RQ_INFINITE);
            if (rc == RQ_OK)
                consumer_note(j, buf, len, &info);
        }
        th_check_wakes_after(c, "rq_pop (records consumer)", t0);
        if (rc != RQ_OK)
            return 32;
    }
    rq_close(c);
    return 0;
}

/* ---- afterwards: exactly the capacity is usable ------------------------ */

/* From wherever the offsets stand, an empty ring takes exactly the records
 * of span SPAN that a ring of CAP bytes with padding at the wrap can. */
static void check_capacity(const char *name, uint32_t flags)
{
    rq *p = th_open(name, RQ_PRODUCER, CAP, MAX, flags | RQ_RECORDS);
    rq *c = th_open(name, RQ_CONSUMER, CAP, MAX, flags | RQ_RECORDS);
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.depth, 0);
    const uint32_t span = 104, len = span - RQ_RECORD_HEADER;
    uint32_t pos = st.write_offset % CAP, free = CAP, expected = 0;
    for (;;) {
        uint32_t tail = CAP - pos, need = span <= tail ? span : tail + span;
        if (need > free)
            break;
        free -= need;
        pos = span <= tail ? (pos + span) % CAP : span;
        expected++;
    }
    unsigned char buf[MAX];
    memset(buf, 0xab, sizeof buf);
    for (uint32_t i = 0; i < expected; i++)
        assert_int_equal(rq_push(p, buf, len, 0), RQ_OK);
    assert_int_equal(rq_push(p, buf, len, 0), RQ_EAGAIN);
    rq_record_stats rs;
    assert_int_equal(rq_stat_records(c, &rs), RQ_OK);
    assert_int_equal(rs.bytes_free, free);
    for (uint32_t i = 0; i < expected; i++) {
        size_t got;
        assert_int_equal(rq_pop(c, buf, sizeof buf, &got, 0), RQ_OK);
        assert_int_equal(got, len);
    }
    rq_close(p);
    rq_close(c);
}

/* ---- every crash point on the record path ----------------------------- */

struct scenario {
    int point;
    char side; /* 'P' or 'C' */
    unsigned long hit;
    uint32_t flags;
    int consume_pop;
    int slow_producer;
    int bursts;
    uint64_t start; /* the record numbers' start (forge_numbers), or 0 */
};

static struct {
    unsigned long scenarios, kills, messages, duplicates, lost_by_pop, flagged;
    unsigned long kills_at[RQ_CP_COUNT_][2];
} totals;

#define KILLS_PER_SCENARIO 3
#define MESSAGES 100u

static th_pid start(char side, unsigned stream, int point, unsigned long hit)
{
    th_pid pid = th_spawn_armed(side == 'P' ? "producer_main" : "consumer_main",
                                th_stream_arg(stream), WATCHDOG_S, point, hit);
    assert_true(pid > 0);
    return pid;
}

static int pop_may_lose(int point)
{
    return point == RQ_CP_RELEASE_BEFORE_POSITION || point == RQ_CP_RELEASE_AFTER_PUBLISH ||
           point == RQ_CP_SIGNAL_BEFORE_BUMP || point == RQ_CP_SIGNAL_BEFORE_WAKE;
}

/* A producer killed after publishing its last batch, before noting it,
 * pushes the batch again after its restart, when the consumer may be done
 * already: those records are left in the ring.  Each must be a repeat of
 * one delivered (counted as a duplicate), never a new or torn one. */
static void drain_repeats(struct rj *j, uint32_t flags)
{
    rq *c = th_open(j->name, RQ_CONSUMER, CAP, MAX, flags | RQ_RECORDS);
    unsigned char buf[MAX];
    size_t len;
    rq_msg_info info;
    uint64_t before = rq_load_relaxed_u64(&j->duplicates), n = 0;
    while (rq_pop_info(c, buf, sizeof buf, &len, &info, 0) == RQ_OK) {
        consumer_note(j, buf, len, &info);
        n++;
    }
    assert_int_equal(rq_load_relaxed_u64(&j->duplicates) - before, n);
    rq_close(c);
}

/* Sets the empty queue NAME's record numbers to START, as if START records
 * had passed, with both stored positions 2^31 + 5 records behind, as a
 * side killed between its word and its position where one was due leaves
 * it: the next holder of each role stores its own. */
static void forge_numbers(const char *name, uint64_t start)
{
    struct th_raw raw;
    th_raw_open(&raw, "rq", name);
    uint64_t behind = start - (UINT64_C(1) << 31) - 5;
    th_raw_forge_record_numbers(&raw, start, behind, behind);
    th_raw_close(&raw);
}

static void run_scenario(const struct scenario *s)
{
    rj = rj_new(th_name("rcrash"), 1, MESSAGES);
    rj->consume_pop = s->consume_pop;
    rj->bursts = s->bursts;
    rj->producer_pause_us = s->slow_producer ? 300 : 0;
    rj->consumer_pause_us = s->slow_producer ? 0 : 300;
    rq *keep = th_create(rj->name, CAP, MAX, s->flags | RQ_RECORDS);
    if (s->start) {
        forge_numbers(rj->name, s->start);
        rq_store_relaxed_u64(&rj->qseq_next, s->start);
    }
    th_pid prod = start('P', 0, s->side == 'P' ? s->point : -1, s->hit);
    th_pid cons = start('C', 0, s->side == 'C' ? s->point : -1, s->hit);
    int kills = 0, prod_done = 0, cons_done = 0;
    uint64_t until = th_now_ms() + LIFE_TIMEOUT_MS;
    while (!prod_done || !cons_done) {
        int status;
        th_pid pid = th_wait_any(20, &status);
        if (pid == 0) {
            if (th_now_ms() > until) {
                if (!prod_done)
                    th_kill(prod);
                if (!cons_done)
                    th_kill(cons);
                fail_msg("%s (%c, hit %lu, pop %d, bursts %d, flags 0x%x): a side blocked (%c "
                         "done %d; consumer at %llu of %u)",
                         rq_crash_point_name(s->point), s->side, s->hit, s->consume_pop, s->bursts,
                         s->flags, prod_done ? 'P' : 'C', prod_done || cons_done,
                         (unsigned long long)rq_load_acquire_u64(&rj->cons_next[0]), MESSAGES);
            }
            continue;
        }
        char who = pid == prod ? 'P' : 'C';
        if (th_was_killed(status)) {
            assert_int_equal(who, s->side);
            kills++;
            totals.kills_at[s->point][who == 'C']++;
            if (who == 'C')
                rj_consumer_died(rj);
            th_pid np = start(who, 0, kills < KILLS_PER_SCENARIO ? s->point : -1, s->hit);
            if (who == 'P')
                prod = np;
            else
                cons = np;
            until = th_now_ms() + LIFE_TIMEOUT_MS;
            continue;
        }
        if (!th_exited_ok(status))
            fail_msg("%s (%c, hit %lu): %c exited with status 0x%x", rq_crash_point_name(s->point),
                     s->side, s->hit, who, status);
        if (who == 'P')
            prod_done = 1;
        else
            cons_done = 1;
    }
    drain_repeats(rj, s->flags);
    uint64_t gaps = rq_load_relaxed_u64(&rj->gaps), qgaps = rq_load_relaxed_u64(&rj->qseq_gaps);
    int may_lose = s->side == 'C' && s->consume_pop && pop_may_lose(s->point);
    if (rq_load_relaxed_u64(&rj->torn) || rq_load_relaxed_u64(&rj->reorders) ||
        (gaps && !may_lose) || (qgaps && !may_lose) || rq_load_relaxed_u64(&rj->qseq_reused) ||
        rq_load_relaxed_u64(&rj->flags_lost))
        fail_msg("%s (%c, hit %lu, pop %d, flags 0x%x): torn %llu, reordered %llu, lost %llu, "
                 "numbers skipped %llu, reused %llu, flags lost %llu",
                 rq_crash_point_name(s->point), s->side, s->hit, s->consume_pop, s->flags,
                 (unsigned long long)rq_load_relaxed_u64(&rj->torn),
                 (unsigned long long)rq_load_relaxed_u64(&rj->reorders), (unsigned long long)gaps,
                 (unsigned long long)qgaps,
                 (unsigned long long)rq_load_relaxed_u64(&rj->qseq_reused),
                 (unsigned long long)rq_load_relaxed_u64(&rj->flags_lost));
    uint64_t per_kill = s->bursts ? BURST_MAX : 1; /* a batch is lost or redelivered whole */
    assert_true(gaps <= (uint64_t)kills * per_kill);
    uint64_t dups = rq_load_relaxed_u64(&rj->duplicates);
    assert_true(dups <= (uint64_t)kills * per_kill);
    rq *o = th_open(rj->name, RQ_OBSERVER, CAP, MAX, s->flags | RQ_RECORDS);
    rq_stats st;
    assert_int_equal(rq_stat(o, &st), RQ_OK);
    rq_close(o);
    if (st.producer_missed_wakes + st.consumer_missed_wakes != 0)
        fail_msg("%s (%c, hit %lu): a wake-up was lost", rq_crash_point_name(s->point), s->side,
                 s->hit);
    /* Drained: every record published was released, kills or not, and
     * rq_stat's counts say so exactly (they are the words' numbers). */
    if (st.pushed != st.popped || st.pushed < s->start + MESSAGES)
        fail_msg("%s (%c, hit %lu): drained, but pushed %llu, popped %llu",
                 rq_crash_point_name(s->point), s->side, s->hit, (unsigned long long)st.pushed,
                 (unsigned long long)st.popped);
    check_capacity(rj->name, s->flags);
    rq_close(keep);
    rq_unlink(rj->name);
    totals.scenarios++;
    totals.kills += (unsigned long)kills;
    totals.messages += (unsigned long)rq_load_relaxed_u64(&rj->received);
    totals.duplicates += (unsigned long)dups;
    totals.lost_by_pop += (unsigned long)gaps;
    totals.flagged += (unsigned long)rq_load_relaxed_u64(&rj->flagged);
}

/* Sides that pass POINT on a record queue: 'R' is a record producer. */
static int passes(int point, char side)
{
    const char *roles = rq_crash_point_roles(point);
    return side == 'P' ? strchr(roles, 'P') || strchr(roles, 'R') : strchr(roles, 'C') != NULL;
}

/* Points of the burst calls only (the rest are passed by both forms). */
static int burst_point(int point)
{
    return strstr(rq_crash_point_name(point), "_burst.") != NULL;
}

static void test_every_point_on_the_record_path(void **state)
{
    (void)state;
    static const unsigned long hits[] = {1, 7};
    for (int point = 0; point < RQ_CP_COUNT_; point++) {
        int mpsc_only = strncmp(rq_crash_point_name(point), "mpsc.", 5) == 0;
        if (point == RQ_CP_MPSC_AFTER_RECOVER)
            continue; /* needs a death holding the lock first: test_mpsc_lock */
        for (int side = 0; side < 2; side++) {
            char who = side ? 'C' : 'P';
            if (!passes(point, who))
                continue;
            for (size_t h = 0; h < sizeof hits / sizeof *hits; h++) {
                for (int variant = 0; variant < 4; variant++) {
                    /* Variants 2 and 3: the burst calls. */
                    int bursts = variant >= 2;
                    if (bursts != burst_point(point) && !(bursts && h == 1))
                        continue;
                    struct scenario s = {point, who, hits[h], 0, 0, (int)h, bursts, 0};
                    if (who == 'P') {
                        if (mpsc_only && variant % 2 == 0)
                            continue;
                        s.flags = variant % 2 ? RQ_MPSC : 0;
                    } else {
                        s.consume_pop = variant % 2;
                    }
                    run_scenario(&s);
                }
            }
        }
    }
    unsigned long covered = 0, expected = 0;
    for (int point = 0; point < RQ_CP_COUNT_; point++) {
        if (point == RQ_CP_MPSC_AFTER_RECOVER)
            continue;
        for (int side = 0; side < 2; side++) {
            if (!passes(point, side ? 'C' : 'P'))
                continue;
            expected++;
            if (totals.kills_at[point][side])
                covered++;
            else
                print_error("crash point %s was never hit by the %s\n", rq_crash_point_name(point),
                            side ? "consumer" : "producer");
        }
    }
    print_message("record crash points: %lu of %lu (point, side) pairs covered; %lu scenarios, "
                  "%lu kills, %lu records checked, %lu redelivered (%lu flagged), %lu lost (all "
                  "by rq_pop's at-most-once), 0 torn, 0 reordered, 0 wake-ups lost\n",
                  covered, expected, totals.scenarios, totals.kills, totals.messages,
                  totals.duplicates, totals.flagged, totals.lost_by_pop);
    assert_int_equal(covered, expected);
}

/* The producer's points on the path of rq_reserve_burst_len and
 * rq_commit_burst (its claim, its padding, the packing, the publish; and
 * the wait and the lock as every push passes them), killed at their 1st
 * and 7th passing, SPSC and MPSC: a batch is all or nothing at each. */
static void test_every_point_on_the_batch_reservation(void **state)
{
    (void)state;
    static const int points[] = {RQ_CP_PUSH_BURST_AFTER_CLAIM, RQ_CP_REC_PUSH_AFTER_PAD,
                                 RQ_CP_PUSH_BURST_MID_FILL,    RQ_CP_PUSH_BURST_AFTER_FILL,
                                 RQ_CP_PUSH_BEFORE_POSITION,   RQ_CP_PUSH_AFTER_PUBLISH,
                                 RQ_CP_MPSC_AFTER_LOCK,        RQ_CP_MPSC_BEFORE_UNLOCK};
    static const unsigned long hits[] = {1, 7};
    memset(&totals, 0, sizeof totals);
    for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
        int mpsc_only = strncmp(rq_crash_point_name(points[i]), "mpsc.", 5) == 0;
        for (int mpsc = mpsc_only; mpsc < 2; mpsc++) {
            for (size_t h = 0; h < sizeof hits / sizeof *hits; h++) {
                struct scenario s = {points[i], 'P', hits[h], 0, 0, (int)h, 2, 0};
                s.flags = mpsc ? RQ_MPSC : 0;
                run_scenario(&s);
            }
        }
        if (!totals.kills_at[points[i]][0])
            fail_msg("crash point %s was never hit by a batch reservation",
                     rq_crash_point_name(points[i]));
    }
    print_message("batch reservation: %lu scenarios, %lu kills, %lu records checked, %lu "
                  "redelivered, 0 torn, 0 reordered, 0 lost\n",
                  totals.scenarios, totals.kills, totals.messages, totals.duplicates);
}

/* Where a position is due (its number's bits from 2^31 up change: at
 * 3 x 2^31, and at 2^32 where the words' low halves wrap), each side
 * killed just before and just after the store, and killed right after
 * its open (an SPSC producer's or a consumer's stores the position a dead
 * side left behind; MPSC producers store it under the lock, at their
 * first claim).  Both positions are forged 2^31 + 5 records behind at the
 * start; the first life's 7th record is the one that crosses (the later
 * lives' kills land past it).  No number may be skipped or used twice,
 * and rq_stat's counts must stay exact. */
static void test_kills_where_a_position_is_due(void **state)
{
    (void)state;
    static const uint64_t crossings[] = {UINT64_C(3) << 31, UINT64_C(1) << 32};
    static const int points[] = {RQ_CP_PUSH_BEFORE_POSITION, RQ_CP_PUSH_AFTER_PUBLISH,
                                 RQ_CP_RELEASE_BEFORE_POSITION, RQ_CP_RELEASE_AFTER_PUBLISH,
                                 RQ_CP_OPEN_AFTER_TAKEOVER};
    memset(&totals, 0, sizeof totals);
    for (size_t x = 0; x < sizeof crossings / sizeof *crossings; x++) {
        for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
            unsigned long hit = points[i] == RQ_CP_OPEN_AFTER_TAKEOVER ? 1 : 7;
            for (int side = 0; side < 2; side++) {
                char who = side ? 'C' : 'P';
                if (!passes(points[i], who))
                    continue;
                for (int variant = 0; variant < 2; variant++) {
                    struct scenario s = {points[i], who, hit, 0, 0, 0, 0, crossings[x] - 7};
                    if (who == 'P')
                        s.flags = variant ? RQ_MPSC : 0;
                    else
                        s.consume_pop = variant;
                    run_scenario(&s);
                }
            }
        }
    }
    for (size_t i = 0; i < sizeof points / sizeof *points; i++)
        for (int side = 0; side < 2; side++)
            if (passes(points[i], side ? 'C' : 'P') && !totals.kills_at[points[i]][side])
                fail_msg("crash point %s was never hit by the %s", rq_crash_point_name(points[i]),
                         side ? "consumer" : "producer");
    print_message("positions due: %lu scenarios, %lu kills, %lu records checked, %lu "
                  "redelivered, %lu lost (all by rq_pop's at-most-once)\n",
                  totals.scenarios, totals.kills, totals.messages, totals.duplicates,
                  totals.lost_by_pop);
}

/* ---- random kills ------------------------------------------------------ */

struct torture {
    unsigned streams;
    unsigned long kills;
    int consume_pop;
    uint32_t flags;
    uint64_t seed;
    int bursts;
};

static void torture(const struct torture *t, const char *what)
{
    rj = rj_new(th_name("rtorture"), t->streams, UINT64_MAX);
    rj->consume_pop = t->consume_pop;
    rj->bursts = t->bursts;
    rq *keep = th_create(rj->name, CAP, MAX, t->flags | RQ_RECORDS);
    th_pid side[STREAMS_MAX + 1]; /* [0] consumer, [1..] producers */
    side[0] = start('C', 0, -1, 0);
    for (unsigned s = 0; s < t->streams; s++)
        side[1 + s] = start('P', s, -1, 0);
    uint64_t lives = 1 + t->streams, rng = t->seed;
    unsigned long kills = 0, consumer_kills = 0;
    while (kills < t->kills) {
        th_await_started(&rj->started, lives); /* kill in the work, not the start */
        th_sleep_us((unsigned long)(th_rand(&rng) % 3000));
        unsigned victim = (unsigned)(th_rand(&rng) % (1 + t->streams));
        th_kill_and_reap(side[victim]);
        if (victim == 0)
            rj_consumer_died(rj);
        side[victim] = victim ? start('P', victim - 1, -1, 0) : start('C', 0, -1, 0);
        consumer_kills += victim == 0;
        lives++;
        kills++;
    }
    uint64_t most = 0;
    for (unsigned s = 0; s < t->streams; s++) {
        uint64_t n = rq_load_acquire_u64(&rj->prod_next[s]);
        most = n > most ? n : most;
    }
    rq_store_release_u64(&rj->limit, most + 300);
    for (unsigned i = 0; i <= t->streams; i++) {
        int status;
        assert_int_equal(th_wait(side[i], FINISH_TIMEOUT_MS, &status), 0);
        if (!th_exited_ok(status))
            fail_msg("%s: a side exited with status 0x%x", what, status);
    }
    rq *o = th_open(rj->name, RQ_OBSERVER, CAP, MAX, t->flags | RQ_RECORDS);
    rq_stats st;
    rq_record_stats rs;
    assert_int_equal(rq_stat(o, &st), RQ_OK);
    assert_int_equal(rq_stat_records(o, &rs), RQ_OK);
    rq_close(o);
    uint64_t received = rq_load_relaxed_u64(&rj->received), gaps = rq_load_relaxed_u64(&rj->gaps);
    uint64_t dups = rq_load_relaxed_u64(&rj->duplicates);
    print_message("%s: %lu kills (%lu of the consumer), %llu records (%llu bytes) checked byte "
                  "for byte, lost %llu, torn %llu, reordered %llu, redelivered %llu (%llu "
                  "flagged), largest %llu, padding %llu bytes, wake-ups lost p/c %llu/%llu\n",
                  what, kills, consumer_kills, (unsigned long long)received,
                  (unsigned long long)rq_load_relaxed_u64(&rj->bytes), (unsigned long long)gaps,
                  (unsigned long long)rq_load_relaxed_u64(&rj->torn),
                  (unsigned long long)rq_load_relaxed_u64(&rj->reorders), (unsigned long long)dups,
                  (unsigned long long)rq_load_relaxed_u64(&rj->flagged),
                  (unsigned long long)rs.largest_record, (unsigned long long)rs.padding_bytes,
                  (unsigned long long)st.producer_missed_wakes,
                  (unsigned long long)st.consumer_missed_wakes);
    assert_true(received > kills);
    assert_int_equal(rq_load_relaxed_u64(&rj->torn), 0);
    assert_int_equal(rq_load_relaxed_u64(&rj->reorders), 0);
    assert_int_equal(rq_load_relaxed_u64(&rj->qseq_reused), 0);
    assert_int_equal(rq_load_relaxed_u64(&rj->flags_lost), 0);
    uint64_t per_kill = t->bursts ? BURST_MAX : 1; /* a batch is lost or redelivered whole */
    if (t->consume_pop)
        assert_true(gaps <= consumer_kills * per_kill);
    else
        assert_int_equal(gaps, 0);
    assert_true(dups <= kills * per_kill);
    /* Sizes up to the largest came through (the longest one every few
     * hundred records), and the ring wrapped with padding. */
    assert_true(rs.largest_record <= MAX && rs.largest_record > MAX / 2);
    assert_true(rs.padding_bytes > 0);
    assert_int_equal(st.producer_missed_wakes + st.consumer_missed_wakes, 0);
    check_capacity(rj->name, t->flags);
    rq_close(keep);
    rq_unlink(rj->name);
}

static void test_random_kills_spsc(void **state)
{
    (void)state;
    struct torture t = {1, kill_target, 0, 0, 0x5eed0101u, 0};
    torture(&t, "records, peek/release");
}

static void test_random_kills_spsc_pop_full_fences(void **state)
{
    (void)state;
    struct torture t = {1, kill_target / 4, 1, RQ_FULL_FENCES, 0x5eed0102u, 0};
    torture(&t, "records, pop, full fences");
}

static void test_random_kills_mpsc_three_producers(void **state)
{
    (void)state;
    struct torture t = {3, kill_target, 0, RQ_MPSC, 0x5eed0103u, 0};
    torture(&t, "records, MPSC, 3 producers");
}

static void test_random_kills_bursts_spsc_pop(void **state)
{
    (void)state;
    struct torture t = {1, kill_target / 2, 1, 0, 0x5eed0104u, 1};
    torture(&t, "records, bursts, rq_pop_burst");
}

static void test_random_kills_bursts_mpsc_three_producers(void **state)
{
    (void)state;
    struct torture t = {3, kill_target / 2, 0, RQ_MPSC, 0x5eed0105u, 1};
    torture(&t, "records, bursts, MPSC, 3 producers, rq_peek_burst");
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_CHILD(producer_main),
        TH_CHILD(consumer_main),
    };
    TH_INIT(argc, argv, children);
    if (argc > 1 && strcmp(argv[1], "--soak") == 0)
        kill_target = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
    else
        kill_target = th_kill_count("records torture", 300, 30);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_kills_spsc),
        cmocka_unit_test(test_random_kills_spsc_pop_full_fences),
        cmocka_unit_test(test_random_kills_mpsc_three_producers),
        cmocka_unit_test(test_random_kills_bursts_spsc_pop),
        cmocka_unit_test(test_random_kills_bursts_mpsc_three_producers),
        cmocka_unit_test(test_every_point_on_the_record_path),
        cmocka_unit_test(test_every_point_on_the_batch_reservation),
        cmocka_unit_test(test_kills_where_a_position_is_due),
    };
    return cmocka_run_group_tests_name("records_crash", tests, NULL, NULL);
}
