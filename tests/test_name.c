/*
 * test_name.c - src/name.c: the queue-name rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rq.h"

static void test_valid_names(void **state)
{
    (void)state;
    const char *good[] = {"a", "Z", "0", "orders", "a.b-c_d", "...", "-x-", "Q1.2_3-4"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(rq_name_valid(good[i]));
    char longest[RQ_NAME_MAX + 1];
    memset(longest, 'x', RQ_NAME_MAX);
    longest[RQ_NAME_MAX] = '\0';
    assert_true(rq_name_valid(longest));
}

static void test_invalid_names(void **state)
{
    (void)state;
    const char *bad[] = {"",    "a/b",  "/a", "a b", "tab\t", "nl\n", "q\xc3\xa4",
                         "a:b", "a\\b", "a*", "a?",  "~a",    "a%",   "a@b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(rq_name_valid(bad[i]));
    assert_false(rq_name_valid(NULL));
    char too_long[RQ_NAME_MAX + 2];
    memset(too_long, 'x', RQ_NAME_MAX + 1);
    too_long[RQ_NAME_MAX + 1] = '\0';
    assert_false(rq_name_valid(too_long));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_names),
        cmocka_unit_test(test_invalid_names),
    };
    return cmocka_run_group_tests_name("name", tests, NULL, NULL);
}
