/*
 * test_error.c - src/error.c: every code has its own sentence and name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rq.h"

static const int all_codes[] = {RQ_OK,
#define CODE_(name, value, text) RQ_##name,
                                RQ_ERRNO_MAP(CODE_)
#undef CODE_
};
#define N_CODES (sizeof all_codes / sizeof *all_codes)

static void test_every_code_has_a_distinct_sentence(void **state)
{
    (void)state;
    const char *unknown = rq_strerror(12345);
    assert_string_equal(unknown, "unknown rq error");
    for (size_t i = 0; i < N_CODES; i++) {
        const char *s = rq_strerror(all_codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 5);
        assert_string_not_equal(s, unknown);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, rq_strerror(all_codes[j]));
    }
}

static void test_names_and_required_codes(void **state)
{
    (void)state;
    assert_string_equal(rq_errname(RQ_OK), "RQ_OK");
    assert_string_equal(rq_errname(RQ_EBUSY), "RQ_EBUSY");
    assert_string_equal(rq_errname(RQ_ECORRUPT), "RQ_ECORRUPT");
    assert_string_equal(rq_errname(99), "RQ_UNKNOWN");
    /* the codes the API promises exist, are negative and are distinct */
    const int required[] = {RQ_EAGAIN, RQ_ETIMEDOUT, RQ_EMSGSIZE, RQ_EINVAL,
                            RQ_ENOENT, RQ_EBUSY,     RQ_ECORRUPT, RQ_ESYS};
    for (size_t i = 0; i < sizeof required / sizeof *required; i++) {
        assert_true(required[i] < 0);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(required[i], required[j]);
    }
    assert_true(RQ_VERSION_HEX ==
                ((RQ_VERSION_MAJOR << 16) | (RQ_VERSION_MINOR << 8) | RQ_VERSION_PATCH));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_a_distinct_sentence),
        cmocka_unit_test(test_names_and_required_codes),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
