/*
 * test_copy.c - src/copy.h: a message's copy without a call.  Every length
 * from 0 to past RQ_COPY_SHORT, at every alignment of either side within
 * 16 bytes, copies exactly its bytes and touches nothing around them (the
 * guards here; under AddressSanitizer also the exact-size heap blocks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "copy.h"

#define LONGEST (2 * RQ_COPY_SHORT + 8)
#define GUARD 32
#define FILL 0xa5

/* A pattern no shifted copy matches: byte I of message N. */
static unsigned char pattern(size_t n, size_t i)
{
    return (unsigned char)(i * 7 + n * 13 + 1);
}

typedef void copy_fn(void *, const void *, size_t);

/* N bytes copied by COPY from SRC_AT to DST_AT (offsets within a guarded
 * buffer): exactly the message, the guards and the source untouched. */
static void check_copy(copy_fn *copy, size_t n, size_t src_at, size_t dst_at)
{
    unsigned char src[GUARD + 16 + LONGEST + GUARD], dst[GUARD + 16 + LONGEST + GUARD];
    unsigned char msg[LONGEST];
    for (size_t i = 0; i < LONGEST; i++)
        msg[i] = pattern(n, i);
    memset(src, FILL, sizeof src);
    memset(dst, FILL, sizeof dst);
    memcpy(src + GUARD + src_at, msg, n);
    copy(dst + GUARD + dst_at, src + GUARD + src_at, n);
    for (size_t i = 0; i < sizeof dst; i++) {
        size_t at = GUARD + dst_at;
        unsigned char want = i >= at && i < at + n ? pattern(n, i - at) : FILL;
        if (dst[i] != want)
            fail_msg("length %zu, source +%zu, target +%zu: byte %zu is %#x, not %#x", n, src_at,
                     dst_at, i, dst[i], want);
    }
    for (size_t i = 0; i < sizeof src; i++) {
        size_t at = GUARD + src_at;
        unsigned char want = i >= at && i < at + n ? pattern(n, i - at) : FILL;
        if (src[i] != want)
            fail_msg("length %zu: the source's byte %zu changed", n, i);
    }
}

static void every_length_and_alignment(copy_fn *copy, size_t longest)
{
    for (size_t n = 0; n <= longest; n++)
        for (size_t s = 0; s < 16; s++)
            for (size_t d = 0; d < 16; d++)
                check_copy(copy, n, s, d);
}

static void test_short_copies_exactly(void **state)
{
    (void)state;
    every_length_and_alignment(rq_copy_short, RQ_COPY_SHORT);
}

static void test_any_length_copies_exactly(void **state)
{
    (void)state;
    every_length_and_alignment(rq_copy, LONGEST);
}

/* Source and target in heap blocks of exactly N bytes: a move outside
 * them is a heap overflow, which AddressSanitizer reports (the asan
 * preset); elsewhere the contents are checked. */
static void test_exact_blocks(void **state)
{
    (void)state;
    for (size_t n = 1; n <= LONGEST; n++) {
        unsigned char *src = malloc(n), *dst = malloc(n);
        assert_non_null(src);
        assert_non_null(dst);
        for (size_t i = 0; i < n; i++)
            src[i] = pattern(n, i);
        memset(dst, FILL, n);
        rq_copy(dst, src, n);
        assert_memory_equal(dst, src, n);
        free(src);
        free(dst);
    }
}

/* Length 0 copies nothing, with either pointer NULL (an empty message's
 * buffer may be). */
static void test_empty_copies_nothing(void **state)
{
    (void)state;
    unsigned char b = FILL;
    rq_copy(&b, NULL, 0);
    rq_copy(NULL, &b, 0);
    rq_copy_short(&b, NULL, 0);
    assert_int_equal(b, FILL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_copies_exactly),
        cmocka_unit_test(test_any_length_copies_exactly),
        cmocka_unit_test(test_exact_blocks),
        cmocka_unit_test(test_empty_copies_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
