/*
 * test_bridge_window.c - rq-bridge out's sliding window (tools/bridge/
 * window.c) without a server: acknowledgements in any order release only
 * the contiguous acknowledged prefix; nothing unacknowledged, nothing
 * beyond the window, nothing answered twice.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "window.h"

static bwin w; /* 64 KiB and more: not on the stack */

/* Publishes COUNT messages from the window's next position on. */
static void publish_n(uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        assert_int_equal(bwin_publish(&w, w.base + w.sent, 0, 0), 0);
}

static void test_out_of_order_releases_only_prefix(void **state)
{
    (void)state;
    bwin_init(&w, 8, 100);
    publish_n(5); /* 100..104 in flight */
    assert_int_equal(bwin_answer(&w, 102, BWIN_STORED, 0, 0, 7), 1);
    assert_int_equal(bwin_answer(&w, 104, BWIN_STORED, 0, 0, 9), 1);
    assert_int_equal(w.prefix, 0); /* 100 not answered: nothing may go */
    assert_int_equal(bwin_answer(&w, 101, BWIN_DUPLICATE, 0, 0, 0), 1);
    assert_int_equal(w.prefix, 0);
    assert_int_equal(bwin_answer(&w, 100, BWIN_STORED, 0, 0, 5), 1);
    assert_int_equal(w.prefix, 3); /* 100, 101, 102; 103 is the gap */
    bwin_counts c;
    bwin_release(&w, w.prefix, &c);
    assert_int_equal(c.duplicates, 1);
    assert_true(w.base == 103 && w.sent == 2 && w.prefix == 0);
    assert_int_equal(bwin_answer(&w, 103, BWIN_STORED, 0, 0, 8), 1);
    assert_int_equal(w.prefix, 2); /* 104 was waiting behind the gap */
    bwin_release(&w, 2, &c);
    assert_true(w.base == 105 && w.sent == 0 && w.prefix == 0);
    assert_true(w.last_stream_seq == 9);
}

static void test_refused_stops_prefix(void **state)
{
    (void)state;
    bwin_init(&w, 4, 0);
    publish_n(3);
    assert_int_equal(bwin_answer(&w, 1, BWIN_REFUSED, 10, 10054, 0), 1);
    assert_int_equal(bwin_answer(&w, 2, BWIN_STORED, 0, 0, 1), 1);
    assert_int_equal(bwin_answer(&w, 0, BWIN_STORED, 0, 0, 2), 1);
    assert_int_equal(w.prefix, 1); /* 1 refused: 2 stays behind it */
    bwin_counts c;
    bwin_release(&w, 5, &c); /* more than the prefix: only the prefix goes */
    assert_true(w.base == 1 && w.sent == 2);
    assert_int_equal(bwin_head(&w), BWIN_REFUSED);
    assert_int_equal(w.code[bwin_slot(1)], 10054);
}

static void test_answers_outside_or_twice_ignored(void **state)
{
    (void)state;
    bwin_init(&w, 4, 10);
    publish_n(2);                                                           /* 10, 11 */
    assert_int_equal(bwin_answer(&w, 9, BWIN_STORED, 0, 0, 0), 0);          /* released before */
    assert_int_equal(bwin_answer(&w, 12, BWIN_STORED, 0, 0, 0), 0);         /* not published */
    assert_int_equal(bwin_answer(&w, UINT64_MAX, BWIN_STORED, 0, 0, 0), 0); /* no id */
    assert_int_equal(bwin_answer(&w, 10, BWIN_REFUSED, 1, 0, 0), 1);
    assert_int_equal(bwin_answer(&w, 10, BWIN_STORED, 0, 0, 0), 0); /* the first answer counts */
    assert_int_equal(w.prefix, 0);
}

static void test_window_bound(void **state)
{
    (void)state;
    bwin_init(&w, 3, 0);
    publish_n(3);
    assert_int_equal(bwin_room(&w), 0);
    assert_int_equal(bwin_publish(&w, 3, 0, 0), -1); /* never more than the window */
    assert_int_equal(bwin_publish(&w, 5, 0, 0), -1);
    assert_int_equal(bwin_answer(&w, 0, BWIN_STORED, 0, 0, 0), 1);
    bwin_counts c;
    bwin_release(&w, 1, &c);
    assert_int_equal(bwin_room(&w), 1);
    assert_int_equal(bwin_publish(&w, 2, 0, 0), -1); /* out of order */
    assert_int_equal(bwin_publish(&w, 3, 1, 0), 0);
    bwin_init(&w, 100000, 0);
    assert_int_equal(w.cap, BRIDGE_WINDOW_MAX);
}

static void test_restart_forgets_in_flight(void **state)
{
    (void)state;
    bwin_init(&w, 4, 0);
    publish_n(4);
    assert_int_equal(bwin_answer(&w, 2, BWIN_STORED, 0, 0, 0), 1);
    bwin_restart(&w, 0);
    assert_true(w.sent == 0 && w.prefix == 0 && bwin_head(&w) == BWIN_NONE);
    assert_int_equal(bwin_answer(&w, 2, BWIN_STORED, 0, 0, 0), 0); /* no longer in flight */
    publish_n(4);
    assert_int_equal(bwin_answer(&w, 1, BWIN_STORED, 0, 0, 0), 1);
    assert_int_equal(bwin_answer(&w, 0, BWIN_STORED, 0, 0, 0), 1);
    assert_int_equal(w.prefix, 2); /* 2's old answer was dropped with the restart */
}

/* Randomly ordered acks across many ring turns: the prefix is always
 * exactly the acknowledged run from the head, and every position is
 * released once, in order. */
static void test_random_order_many_turns(void **state)
{
    (void)state;
    srand(12345);
    bwin_init(&w, BRIDGE_WINDOW_MAX, (uint64_t)BRIDGE_WINDOW_MAX * 3 - 17);
    static unsigned char acked[BRIDGE_WINDOW_MAX * 8];
    uint64_t first = w.base, released = 0, total = (uint64_t)BRIDGE_WINDOW_MAX * 6;
    while (released < total) {
        while (bwin_room(&w) && w.base + w.sent < first + total)
            publish_n(1);
        for (int i = 0; i < 64; i++) {
            uint64_t seq = w.base + (uint64_t)rand() % w.sent;
            int took = bwin_answer(&w, seq, rand() % 8 ? BWIN_STORED : BWIN_DUPLICATE, 0, 0, seq);
            assert_int_equal(took, !acked[seq - first]);
            acked[seq - first] = 1;
        }
        uint32_t run = 0;
        while (run < w.sent && acked[w.base + run - first])
            run++;
        assert_int_equal(w.prefix, run);
        bwin_counts c;
        bwin_release(&w, (uint32_t)rand() % (run + 1), &c);
        released = w.base - first;
    }
    assert_true(w.base == first + total && w.sent == 0);
}

/* The Rq-Pos header out reads back at a recovery: only this queue's
 * identity with a plain decimal position counts; an identity holding
 * colons splits at the last one; overflow and junk are not positions. */
static void test_parse_pos(void **state)
{
    (void)state;
    uint64_t pos = 7;
    assert_int_equal(bwin_parse_pos("q@12:0", "q@12", &pos), 1);
    assert_int_equal(pos, 0);
    assert_int_equal(bwin_parse_pos("q@12:18446744073709551615", "q@12", &pos), 1);
    assert_true(pos == UINT64_MAX);
    assert_int_equal(bwin_parse_pos("a:b:42", "a:b", &pos), 1);
    assert_int_equal(pos, 42);
    pos = 7;
    const char *not_ours[] = {"q@12:18446744073709551616", /* one past the largest */
                              "q@13:5",
                              "q@1:5",
                              "q@123:5",
                              "q@12:",
                              "q@12:5x",
                              "q@12:-5",
                              "q@12: 5",
                              "q@12:007",
                              "q@125",
                              "",
                              ":5",
                              "a:b:42"};
    for (size_t i = 0; i < sizeof not_ours / sizeof *not_ours; i++) {
        const char *id = i == sizeof not_ours / sizeof *not_ours - 1 ? "a" : "q@12";
        assert_int_equal(bwin_parse_pos(not_ours[i], id, &pos), 0);
    }
    assert_int_equal(bwin_parse_pos(NULL, "q@12", &pos), 0);
    assert_int_equal(bwin_parse_pos("q@12:5", NULL, &pos), 0);
    assert_int_equal(pos, 7); /* untouched when not a position */
}

/* Which stream subjects capture out's subject: out checks its --stream
 * does, or every publish would be refused by the wrong stream's sequence. */
static void test_subject_matches(void **state)
{
    (void)state;
    const char *yes[][2] = {{"a.b", "a.b"},   {"a.*", "a.b"}, {"*.b", "a.b"}, {"a.>", "a.b"},
                            {"a.>", "a.b.c"}, {">", "a"},     {"*", "a"},     {"a.*.c", "a.b.c"}};
    const char *no[][2] = {{"a.b", "a.c"},   {"a.*", "a.b.c"}, {"a.>", "a"}, {"a.b", "a.b.c"},
                           {"a.b.c", "a.b"}, {"a.b", "a.bc"},  {"ab", "a"},  {"*", "a.b"},
                           {"a.*", "a."},    {"", "a"},        {"a", ""},    {"a.>.c", "a.b.c"}};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        assert_int_equal(bwin_subject_matches(yes[i][0], yes[i][1]), 1);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        assert_int_equal(bwin_subject_matches(no[i][0], no[i][1]), 0);
    assert_int_equal(bwin_subject_matches(NULL, "a"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_order_releases_only_prefix),
        cmocka_unit_test(test_refused_stops_prefix),
        cmocka_unit_test(test_answers_outside_or_twice_ignored),
        cmocka_unit_test(test_window_bound),
        cmocka_unit_test(test_restart_forgets_in_flight),
        cmocka_unit_test(test_random_order_many_turns),
        cmocka_unit_test(test_parse_pos),
        cmocka_unit_test(test_subject_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
