/*
 * test_bridge_report.c - rqctl's parsing of the status files rq-bridge
 * leaves beside a queue (tools/bridge_report.c).  Anyone who may write the
 * directory may forge one: hostile files (truncated, too long, wrong
 * types, out of range, duplicate keys, embedded NULs, another direction)
 * are refused with a reason and leave nothing half-filled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bridge_report.h"

static const char good[] = "{\"direction\":\"out\",\"state\":\"running\",\"messages\":12,"
                           "\"duplicates\":0,\"lag\":3,\"errors\":1,\"last_error\":\"boom\","
                           "\"pid\":4242,\"time\":1}";

static int parse(const char *text, size_t len, const char *dir, struct rqctl_bridge_report *r,
                 const char **why)
{
    *why = NULL;
    return rqctl_bridge_parse(text, len, dir, r, why);
}

static void test_good(void **state)
{
    (void)state;
    struct rqctl_bridge_report r;
    const char *why;
    assert_int_equal(parse(good, strlen(good), "out", &r, &why), 0);
    assert_null(why);
    assert_string_equal(r.state, "running");
    assert_int_equal(r.pid, 4242);
    assert_int_equal(r.messages, 12);
    assert_int_equal(r.lag, 3);
    assert_int_equal(r.errors, 1);
    assert_string_equal(r.last_error, "boom");
}

/* Every proper prefix of a good file is refused (a torn or truncated
 * write), and the length given is never read past. */
static void test_truncated(void **state)
{
    (void)state;
    size_t n = strlen(good);
    for (size_t len = 0; len < n; len++) {
        char *copy = malloc(len ? len : 1); /* exactly LEN bytes: ASan sees overreads */
        memcpy(copy, good, len);
        struct rqctl_bridge_report r;
        const char *why;
        assert_int_equal(parse(copy, len, "out", &r, &why), -1);
        assert_non_null(why);
        assert_int_equal(r.pid, 0);
        free(copy);
    }
}

/* Wrong types, ranges and values, one field at a time. */
static void test_hostile_fields(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[]",
        "\"running\"",
        "{}",
        "{\"direction\":\"in\",\"state\":\"running\",\"messages\":1,\"lag\":0,\"errors\":0,"
        "\"last_error\":\"\",\"pid\":1}",
        "{\"direction\":\"out\",\"state\":\"dancing\",\"messages\":1,\"lag\":0,\"errors\":0,"
        "\"last_error\":\"\",\"pid\":1}",
        "{\"direction\":\"out\",\"state\":\"running\",\"messages\":\"1\",\"lag\":0,"
        "\"errors\":0,\"last_error\":\"\",\"pid\":1}",
        "{\"direction\":\"out\",\"state\":\"running\",\"messages\":1.5,\"lag\":0,\"errors\":0,"
        "\"last_error\":\"\",\"pid\":1}",
        "{\"direction\":\"out\",\"state\":\"running\",\"messages\":-1,\"lag\":0,\"errors\":0,"
        "\"last_error\":\"\",\"pid\":1}",
        "{\"direction\":\"out\",\"state\":\"running\",\"messages\":1,\"lag\":0,\"errors\":0,"
        "\"last_error\":\"\",\"pid\":0}",
        "{\"direction\":\"out\",\"state\":\"running\",\"messages\":1,\"lag\":0,\"errors\":0,"
        "\"last_error\":\"\",\"pid\":99999999999}",
        "{\"direction\":\"out\",\"state\":\"running\",\"messages\":1,\"lag\":0,\"errors\":0,"
        "\"last_error\":7,\"pid\":1}",
        "{\"direction\":\"out\",\"state\":\"running\",\"messages\":1,\"lag\":0,\"errors\":0,"
        "\"last_error\":\"a\\u0000b\",\"pid\":1}",
        "{\"direction\":\"out\",\"state\":\"running\",\"messages\":1,\"lag\":0,\"errors\":0,"
        "\"last_error\":\"\",\"pid\":1,\"pid\":2}",
        "{\"direction\":\"out\",\"state\":\"running\",\"messages\":1,\"lag\":0,\"errors\":0,"
        "\"last_error\":\"\",\"pid\":1}}",
        "{\"direction\":\"out\",\"state\":null,\"messages\":1,\"lag\":0,\"errors\":0,"
        "\"last_error\":\"\",\"pid\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rqctl_bridge_report r;
        const char *why;
        int rc = parse(bad[i], strlen(bad[i]), "out", &r, &why);
        if (rc != -1)
            fail_msg("accepted hostile report %zu: %s", i, bad[i]);
        assert_non_null(why);
        assert_int_equal(r.pid, 0);
        assert_int_equal(r.state[0], 0);
    }
}

/* A last error longer than the bridge ever writes, and a deep nesting. */
static void test_too_long(void **state)
{
    (void)state;
    size_t cap = 8192;
    char *text = malloc(cap);
    int n = snprintf(text, cap,
                     "{\"direction\":\"out\",\"state\":\"running\",\"messages\":1,\"lag\":0,"
                     "\"errors\":0,\"pid\":1,\"last_error\":\"");
    memset(text + n, 'e', 600);
    snprintf(text + n + 600, cap - (size_t)n - 600, "\"}");
    struct rqctl_bridge_report r;
    const char *why;
    assert_int_equal(parse(text, strlen(text), "out", &r, &why), -1);
    memset(text, '[', 4000);
    assert_int_equal(parse(text, 4000, "out", &r, &why), -1);
    free(text);
}

/* Random bytes are refused or parsed, never read past. */
static void test_random_bytes(void **state)
{
    (void)state;
    srand(7);
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand() % 200);
        char *text = malloc(len ? len : 1);
        memcpy(text, good, len < strlen(good) ? len : strlen(good));
        for (size_t i = 0; i < len; i++)
            if (i >= strlen(good) || rand() % 8 == 0)
                text[i] = (char)(rand() & 0xff);
        struct rqctl_bridge_report r;
        const char *why;
        (void)parse(text, len, "out", &r, &why);
        free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),           cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_hostile_fields), cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
