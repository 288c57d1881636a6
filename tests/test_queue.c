/*
 * test_queue.c - the public API of src/queue.c: every call, every error.
 */
#ifndef _WIN32
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifndef _WIN32
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <cmocka.h>

#include "crashpoint.h"
#include "helpers.h"
#include "layout.h"
#include "rq.h"

/* ---- helpers local to this file -------------------------------------- */

#ifndef _WIN32
static void raw_truncate(const char *name, off_t size)
{
    char path[256];
    snprintf(path, sizeof path, "/rq.%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, size), 0);
    close(fd);
}
#endif

static void push_seq(rq *q, uint64_t seq, size_t cap)
{
    unsigned char buf[4096];
    size_t len = th_msg_make(buf, cap, seq, 0);
    assert_int_equal(rq_push(q, buf, len, 0), RQ_OK);
}

static uint64_t pop_seq(rq *q)
{
    unsigned char buf[4096];
    size_t len = 0;
    uint64_t seq;
    uint32_t stream;
    assert_int_equal(rq_pop(q, buf, sizeof buf, &len, 0), RQ_OK);
    assert_int_equal(th_msg_check(buf, len, &seq, &stream), 0);
    return seq;
}

static uint32_t depth_of(rq *q)
{
    rq_stats st;
    assert_int_equal(rq_stat(q, &st), RQ_OK);
    return st.depth;
}

/* ---- open ------------------------------------------------------------ */

static void test_open_rejects_bad_arguments(void **state)
{
    (void)state;
    rq *q = (rq *)1;
    rq_config cfg = {4, 64, 0, 0};
    char long_name[RQ_NAME_MAX + 2];
    memset(long_name, 'a', sizeof long_name);
    long_name[RQ_NAME_MAX + 1] = '\0';

    assert_int_equal(rq_open(NULL, "x", RQ_PRODUCER, &cfg), RQ_EINVAL);
    assert_int_equal(rq_open(&q, NULL, RQ_PRODUCER, &cfg), RQ_EINVAL);
    assert_null(q);
    const char *bad_names[] = {"", "a/b", "a b", "q\xc3\xa4", "../x", "a\\b", "x:y", long_name};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
        assert_int_equal(rq_open(&q, bad_names[i], RQ_PRODUCER, &cfg), RQ_EINVAL);
    const char *name = th_name("badargs");
    assert_int_equal(rq_open(&q, name, 0, &cfg), RQ_EINVAL);
    assert_int_equal(rq_open(&q, name, 4, &cfg), RQ_EINVAL);
    rq_config bad[] = {
        {0, 64, 0, 0},
        {4, 0, 0, 0},
        {4, 64, 0x80, 0},
        {4, 64, 0, 01000},
        {RQ_SLOT_COUNT_MAX + 1, 64, 0, 0},
        {4, RQ_SLOT_SIZE_MAX + 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(rq_open(&q, name, RQ_PRODUCER, &bad[i]), RQ_EINVAL);
    assert_null(q);
    assert_int_equal(rq_unlink(name), RQ_ENOENT); /* nothing was created */
}

static void test_open_name_of_max_length(void **state)
{
    (void)state;
    char name[RQ_NAME_MAX + 1];
    memset(name, 'n', RQ_NAME_MAX);
    name[RQ_NAME_MAX] = '\0';
    rq_unlink(name);
    rq *q = th_open(name, RQ_PRODUCER, 2, 8, 0);
    assert_true(th_raw_exists("rq", name)); /* the OS object carries the whole name */
#ifndef _WIN32
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/rq.%s", name);
    assert_int_equal(access(path, F_OK), 0);
    rq_close(q);
    assert_int_equal(rq_unlink(name), RQ_OK);
#else
    assert_int_equal(rq_unlink(name), RQ_OK); /* open: it is there */
    rq_close(q);
    assert_int_equal(rq_unlink(name), RQ_ENOENT); /* went with its last handle */
#endif
}

static void test_attach_missing_is_enoent(void **state)
{
    (void)state;
    rq *q = (rq *)1;
    assert_int_equal(rq_open(&q, th_name("missing"), RQ_CONSUMER, NULL), RQ_ENOENT);
    assert_null(q);
}

static void test_geometry_mismatch_is_eexist(void **state)
{
    (void)state;
    const char *name = th_name("geom");
    rq *p = th_open(name, RQ_PRODUCER, 4, 64, 0);
    rq *c = NULL;
    rq_config other[] = {{5, 64, 0, 0}, {4, 65, 0, 0}, {4, 64, RQ_MPSC, 0}};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(rq_open(&c, name, RQ_CONSUMER, &other[i]), RQ_EEXIST);
    rq_config same = {4, 64, 0, 0};
    assert_int_equal(rq_open(&c, name, RQ_CONSUMER, &same), RQ_OK);
    rq_close(c);
    assert_int_equal(rq_open(&c, name, RQ_CONSUMER, NULL), RQ_OK);
    rq_close(c);
    rq_close(p);
    rq_unlink(name);
}

#ifndef _WIN32
/* Windows has no permission bits: a Local\ object gets the creator's
 * default security descriptor (docs/design.md, section 7). */
static void test_mode_is_exact_despite_umask(void **state)
{
    (void)state;
    mode_t old = umask(077);
    const char *name = th_name("mode");
    rq_config cfg = {2, 8, 0, 0640};
    rq *q;
    assert_int_equal(rq_open(&q, name, RQ_OBSERVER, &cfg), RQ_OK);
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/rq.%s", name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    rq_close(q);
    rq_unlink(name);

    name = th_name("mode0");
    cfg.mode = 0;
    assert_int_equal(rq_open(&q, name, RQ_OBSERVER, &cfg), RQ_OK);
    snprintf(path, sizeof path, "/dev/shm/rq.%s", name);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    rq_close(q);
    rq_unlink(name);
    umask(old);
}
#endif

/* ---- data path ------------------------------------------------------- */

static void test_fifo_holds_exactly_n_for_any_n(void **state)
{
    (void)state;
    const uint32_t sizes[] = {1, 2, 3, 5, 7, 64, 100};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        uint32_t n = sizes[i];
        const char *name = th_name("fifo");
        rq *p = th_open(name, RQ_PRODUCER, n, 48, 0);
        rq *c = th_open(name, RQ_CONSUMER, n, 48, 0);
        uint64_t next_in = 0, next_out = 0;
        for (int lap = 0; lap < 5; lap++) {
            for (uint32_t k = 0; k < n; k++)
                push_seq(p, next_in++, 48);
            unsigned char one = 0;
            assert_int_equal(rq_push(p, &one, 1, 0), RQ_EAGAIN); /* all N used */
            assert_int_equal(depth_of(p), n);
            /* drain part of it so the offsets wrap at odd places */
            uint32_t take = lap % 2 ? n : (n + 1) / 2;
            for (uint32_t k = 0; k < take; k++)
                assert_int_equal(pop_seq(c), next_out++);
            for (uint32_t k = 0; k < take; k++)
                push_seq(p, next_in++, 48);
            while (next_out < next_in)
                assert_int_equal(pop_seq(c), next_out++);
            size_t len;
            assert_int_equal(rq_pop(c, &one, 1, &len, 0), RQ_EAGAIN);
        }
        rq_close(p);
        rq_close(c);
        rq_unlink(name);
    }
}

static void test_message_sizes(void **state)
{
    (void)state;
    const char *name = th_name("sizes");
    rq *p = th_open(name, RQ_PRODUCER, 3, 100, 0);
    rq *c = th_open(name, RQ_CONSUMER, 3, 100, 0);
    unsigned char big[101], out[101];
    memset(big, 0xab, sizeof big);
    assert_int_equal(rq_push(p, big, 101, 0), RQ_EMSGSIZE);
    assert_int_equal(depth_of(p), 0);
    assert_int_equal(rq_push(p, big, 100, 0), RQ_OK);
    assert_int_equal(rq_push(p, NULL, 0, 0), RQ_OK); /* empty message */
    size_t len = 0;
    assert_int_equal(rq_pop(c, out, 99, &len, 0), RQ_EMSGSIZE);
    assert_int_equal(len, 100);
    assert_int_equal(depth_of(c), 2); /* nothing consumed */
    assert_int_equal(rq_pop(c, out, 100, &len, 0), RQ_OK);
    assert_int_equal(len, 100);
    assert_memory_equal(out, big, 100);
    assert_int_equal(rq_pop(c, NULL, 0, &len, 0), RQ_OK);
    assert_int_equal(len, 0);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

static void test_calls_check_role_and_arguments(void **state)
{
    (void)state;
    const char *name = th_name("roles");
    rq *p = th_open(name, RQ_PRODUCER, 2, 16, 0);
    rq *c = th_open(name, RQ_CONSUMER, 2, 16, 0);
    rq *o = th_open(name, RQ_OBSERVER, 2, 16, 0);
    char buf[16];
    size_t len;
    void *slot;
    const void *msg;
    assert_int_equal(rq_push(c, "x", 1, 0), RQ_EROLE);
    assert_int_equal(rq_push(o, "x", 1, 0), RQ_EROLE);
    assert_int_equal(rq_reserve(c, &slot, 0), RQ_EROLE);
    assert_int_equal(rq_commit(c, 1), RQ_EROLE);
    assert_int_equal(rq_pop(p, buf, 16, &len, 0), RQ_EROLE);
    assert_int_equal(rq_pop(o, buf, 16, &len, 0), RQ_EROLE);
    assert_int_equal(rq_peek(p, &msg, &len, 0), RQ_EROLE);
    assert_int_equal(rq_release(p), RQ_EROLE);

    assert_int_equal(rq_push(NULL, "x", 1, 0), RQ_EINVAL);
    assert_int_equal(rq_pop(NULL, buf, 16, &len, 0), RQ_EINVAL);
    assert_int_equal(rq_reserve(NULL, &slot, 0), RQ_EINVAL);
    assert_int_equal(rq_commit(NULL, 0), RQ_EINVAL);
    assert_int_equal(rq_peek(NULL, &msg, &len, 0), RQ_EINVAL);
    assert_int_equal(rq_release(NULL), RQ_EINVAL);
    assert_int_equal(rq_stat(NULL, NULL), RQ_EINVAL);
    assert_int_equal(rq_stat(p, NULL), RQ_EINVAL);
    assert_int_equal(rq_push(p, NULL, 1, 0), RQ_EINVAL);
    assert_int_equal(rq_push(p, "x", 1, -2), RQ_EINVAL);
    assert_int_equal(rq_reserve(p, NULL, 0), RQ_EINVAL);
    assert_int_equal(rq_reserve_len(p, 1u << 20, NULL, 0), RQ_EINVAL); /* not EMSGSIZE */
    assert_int_equal(rq_pop(c, buf, 16, NULL, 0), RQ_EINVAL);
    assert_int_equal(rq_pop(c, NULL, 16, &len, 0), RQ_EINVAL);
    assert_int_equal(rq_pop(c, buf, 16, &len, -7), RQ_EINVAL);
    assert_int_equal(rq_peek(c, NULL, &len, 0), RQ_EINVAL);
    assert_int_equal(rq_peek(c, &msg, NULL, 0), RQ_EINVAL);
    assert_int_equal(depth_of(o), 0);
    rq_close(NULL); /* allowed */
    rq_close(o);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

static void test_reserve_commit(void **state)
{
    (void)state;
    const char *name = th_name("reserve");
    rq *p = th_open(name, RQ_PRODUCER, 2, 32, 0);
    rq *c = th_open(name, RQ_CONSUMER, 2, 32, 0);
    void *slot, *again;
    assert_int_equal(rq_commit(p, 1), RQ_ESTATE);
    assert_int_equal(rq_reserve(p, &slot, 0), RQ_OK);
    assert_int_equal(rq_reserve(p, &again, 0), RQ_OK);
    assert_ptr_equal(slot, again);
    assert_int_equal(rq_push(p, "x", 1, 0), RQ_ESTATE);
    assert_int_equal(depth_of(c), 0); /* nothing visible yet */
    memcpy(slot, "hello, zero-copy", 16);
    assert_int_equal(rq_commit(p, 33), RQ_EMSGSIZE);
    assert_int_equal(rq_commit(p, 16), RQ_OK); /* reservation survived */
    assert_int_equal(rq_commit(p, 16), RQ_ESTATE);
    char out[32];
    size_t len;
    assert_int_equal(rq_pop(c, out, sizeof out, &len, 0), RQ_OK);
    assert_int_equal(len, 16);
    assert_memory_equal(out, "hello, zero-copy", 16);
    /* a reservation dropped by close leaves nothing behind */
    assert_int_equal(rq_reserve(p, &slot, 0), RQ_OK);
    memcpy(slot, "ghost", 5);
    rq_close(p);
    assert_int_equal(depth_of(c), 0);
    p = th_open(name, RQ_PRODUCER, 2, 32, 0);
    assert_int_equal(rq_push(p, "a", 1, 0), RQ_OK);
    assert_int_equal(rq_push(p, "b", 1, 0), RQ_OK);
    assert_int_equal(rq_reserve(p, &slot, 0), RQ_EAGAIN); /* full */
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

static void test_peek_release(void **state)
{
    (void)state;
    const char *name = th_name("peek");
    rq *p = th_open(name, RQ_PRODUCER, 2, 32, 0);
    rq *c = th_open(name, RQ_CONSUMER, 2, 32, 0);
    const void *msg, *again;
    size_t len, len2;
    char buf[32];
    assert_int_equal(rq_release(c), RQ_ESTATE);
    assert_int_equal(rq_peek(c, &msg, &len, 0), RQ_EAGAIN);
    assert_int_equal(rq_push(p, "first", 5, 0), RQ_OK);
    assert_int_equal(rq_push(p, "second", 6, 0), RQ_OK);
    assert_int_equal(rq_peek(c, &msg, &len, 0), RQ_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(msg, "first", 5);
    assert_int_equal(rq_peek(c, &again, &len2, 0), RQ_OK);
    assert_ptr_equal(msg, again);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_ESTATE);
    /* closing while peeked: at-least-once, the message comes back */
    rq_close(c);
    c = th_open(name, RQ_CONSUMER, 2, 32, 0);
    assert_int_equal(rq_peek(c, &msg, &len, 0), RQ_OK);
    assert_memory_equal(msg, "first", 5);
    assert_int_equal(rq_release(c), RQ_OK);
    assert_int_equal(rq_release(c), RQ_ESTATE);
    assert_int_equal(rq_peek(c, &msg, &len, 0), RQ_OK);
    assert_memory_equal(msg, "second", 6);
    assert_int_equal(rq_release(c), RQ_OK);
    assert_int_equal(depth_of(c), 0);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

static void test_timeouts(void **state)
{
    (void)state;
    const char *name = th_name("timeout");
    rq *p = th_open(name, RQ_PRODUCER, 1, 8, 0);
    rq *c = th_open(name, RQ_CONSUMER, 1, 8, 0);
    char buf[8];
    size_t len;
    assert_int_equal(rq_pop(c, buf, 8, &len, 0), RQ_EAGAIN);
    uint64_t t0 = th_now_ms();
    assert_int_equal(rq_pop(c, buf, 8, &len, 60), RQ_ETIMEDOUT);
    assert_true(th_now_ms() - t0 >= 55);
    assert_int_equal(rq_push(p, "x", 1, 0), RQ_OK);
    assert_int_equal(rq_push(p, "y", 1, 0), RQ_EAGAIN);
    t0 = th_now_ms();
    assert_int_equal(rq_push(p, "y", 1, 60), RQ_ETIMEDOUT);
    assert_true(th_now_ms() - t0 >= 55);
    rq_stats st;
    assert_int_equal(rq_stat(p, &st), RQ_OK);
    assert_true(st.producer_waits >= 1);
    assert_true(st.consumer_waits >= 1);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

/* ---- across processes ------------------------------------------------ */

static int child_pop_blocking(const char *child_name)
{
    rq *c;
    if (rq_open(&c, child_name, RQ_CONSUMER, NULL) != RQ_OK)
        return 10;
    char buf[16];
    size_t len;
    int rc = th_pop_live(c, buf, sizeof buf, &len);
    rq_close(c);
    return rc == RQ_OK && len == 5 && memcmp(buf, "wake!", 5) == 0 ? 0 : 11;
}

static int child_push_blocking(const char *child_name)
{
    rq *p;
    if (rq_open(&p, child_name, RQ_PRODUCER, NULL) != RQ_OK)
        return 10;
    int rc = th_push_live(p, "late", 4);
    rq_close(p);
    return rc == RQ_OK ? 0 : 11;
}

/* Both publishing protocols: plain stores with the sleeper's system-wide
 * barrier (the Linux default), and full fences (RQ_FULL_FENCES). */
static void blocking_waits_are_woken(uint32_t flags)
{
    const char *child_name = th_name("wake");
    rq *p = th_open(child_name, RQ_PRODUCER, 1, 16, flags);
    th_pid pid = th_spawn("child_pop_blocking", child_name, 10);
    rq_stats st;
    uint64_t until = th_now_ms() + 5000;
    do { /* let it fall asleep */
        th_sleep_us(20 * 1000);
        assert_int_equal(rq_stat(p, &st), RQ_OK);
    } while (st.consumer_waits == 0 && th_now_ms() < until);
    th_sleep_us(50 * 1000);
    assert_int_equal(rq_stat(p, &st), RQ_OK);
    assert_int_equal(st.consumer_live, 1);
    assert_int_equal(rq_push(p, "wake!", 5, 0), RQ_OK);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_exited_ok(status));
    assert_int_equal(rq_stat(p, &st), RQ_OK);
    assert_true(st.producer_wakes >= 1);
    assert_true(st.consumer_waits >= 1);
    rq_close(p);

    /* and the other way round: a producer asleep on a full queue */
    rq *c = th_open(child_name, RQ_CONSUMER, 1, 16, flags);
    p = th_open(child_name, RQ_PRODUCER, 1, 16, flags);
    assert_int_equal(rq_push(p, "fill", 4, 0), RQ_OK);
    rq_close(p);
    uint64_t waits_before = st.producer_waits;
    pid = th_spawn("child_push_blocking", child_name, 10);
    until = th_now_ms() + 5000;
    do { /* let it fall asleep */
        th_sleep_us(20 * 1000);
        assert_int_equal(rq_stat(c, &st), RQ_OK);
    } while (st.producer_waits == waits_before && th_now_ms() < until);
    th_sleep_us(50 * 1000);
    char buf[16];
    size_t len;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_exited_ok(status));
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 1000), RQ_OK);
    assert_memory_equal(buf, "late", 4);
    rq_close(c);
    rq_unlink(child_name);
}

static void test_blocking_waits_are_woken_across_processes(void **state)
{
    (void)state;
    blocking_waits_are_woken(0);
    blocking_waits_are_woken(RQ_FULL_FENCES);
}

/* RQ_FULL_FENCES: kept by the queue, reported by rq_stat; asking for it on
 * a queue made without it is a different queue (RQ_EEXIST); leaving it
 * out when the queue has it (perhaps chosen by the creator's OS) is fine. */
static void test_full_fences_flag(void **state)
{
    (void)state;
    const char *name = th_name("fences");
    rq *q = th_open(name, RQ_OBSERVER, 2, 8, RQ_FULL_FENCES);
    rq_stats st;
    assert_int_equal(rq_stat(q, &st), RQ_OK);
    assert_int_equal(st.flags, RQ_FULL_FENCES);
    rq *p = th_open(name, RQ_PRODUCER, 2, 8, 0);
    rq *c = th_open(name, RQ_CONSUMER, 2, 8, RQ_FULL_FENCES);
    char buf[8];
    size_t len;
    assert_int_equal(rq_push(p, "abc", 3, 0), RQ_OK);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_int_equal(len, 3);
    rq_close(p);
    rq_close(c);
    rq_close(q);
    rq_unlink(name);

    name = th_name("fences0");
    q = th_open(name, RQ_OBSERVER, 2, 8, 0);
    assert_int_equal(rq_stat(q, &st), RQ_OK);
    rq *other = (rq *)1;
    rq_config cfg = {2, 8, RQ_FULL_FENCES, 0};
    if (st.flags & RQ_FULL_FENCES) { /* this OS has no asymmetric fence */
        assert_int_equal(rq_open(&other, name, RQ_OBSERVER, &cfg), RQ_OK);
        rq_close(other);
    } else {
        assert_int_equal(rq_open(&other, name, RQ_OBSERVER, &cfg), RQ_EEXIST);
        assert_null(other);
    }
    cfg.flags = 1u << 7; /* unknown */
    assert_int_equal(rq_open(&other, name, RQ_OBSERVER, &cfg), RQ_EINVAL);
    rq_close(q);
    rq_unlink(name);
#ifdef __linux__
    assert_int_equal(st.flags & RQ_FULL_FENCES, 0); /* membarrier is there */
#endif
}

static void test_busy_sides_make_no_wake_calls(void **state)
{
    (void)state;
    const char *name = th_name("nosys");
    rq *p = th_open(name, RQ_PRODUCER, 8, 16, 0);
    rq *c = th_open(name, RQ_CONSUMER, 8, 16, 0);
    rq_stats before, after;
    assert_int_equal(rq_stat(p, &before), RQ_OK);
    char buf[16];
    size_t len;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(rq_push(p, "m", 1, 0), RQ_OK);
        assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    }
    assert_int_equal(rq_stat(p, &after), RQ_OK);
    assert_int_equal(after.pushed - before.pushed, 1000);
    assert_int_equal(after.popped - before.popped, 1000);
    assert_int_equal(after.producer_wakes, before.producer_wakes);
    assert_int_equal(after.consumer_wakes, before.consumer_wakes);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

/* A waiter takes its count out of `waiters` when its wait ends, and a
 * side that takes over a role clears the count left by a predecessor
 * killed while waiting: otherwise every later publish (or free of a full
 * ring) makes a wake call for nobody. */
static int child_wait_forever(const char *child_name)
{
    rq *c;
    if (rq_open(&c, child_name, RQ_CONSUMER, NULL) != RQ_OK)
        return 10;
    char buf[16];
    size_t len;
    (void)rq_pop(c, buf, sizeof buf, &len, RQ_INFINITE); /* until killed */
    return 11;
}

static void expect_no_wake_calls(rq *p, rq *c, const char *after)
{
    rq_stats before, now;
    assert_int_equal(rq_stat(p, &before), RQ_OK);
    char buf[16];
    size_t len;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(rq_push(p, "m", 1, 0), RQ_OK);
        assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    }
    assert_int_equal(rq_stat(p, &now), RQ_OK);
    if (now.producer_wakes != before.producer_wakes)
        fail_msg("after %s: 100 publishes to a busy consumer made %llu wake calls (a stale "
                 "waiter count)",
                 after, (unsigned long long)(now.producer_wakes - before.producer_wakes));
}

static void test_no_wake_calls_for_a_waiter_that_is_gone(void **state)
{
    (void)state;
    const char *name = th_name("stale");
    rq *p = th_open(name, RQ_PRODUCER, 1, 16, 0);
    rq *c = th_open(name, RQ_CONSUMER, 1, 16, 0);
    char buf[16];
    size_t len;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 20), RQ_ETIMEDOUT);
    expect_no_wake_calls(p, c, "a wait that timed out");
    rq_close(c);
    th_pid pid = th_spawn("child_wait_forever", name, 20);
    rq_stats st;
    uint64_t until = th_now_ms() + 5000, waits_before;
    assert_int_equal(rq_stat(p, &st), RQ_OK);
    waits_before = st.consumer_waits;
    do { /* until it sleeps, registered */
        th_sleep_us(5 * 1000);
        assert_int_equal(rq_stat(p, &st), RQ_OK);
    } while (st.consumer_waits == waits_before && th_now_ms() < until);
    th_sleep_us(20 * 1000);
    th_kill(pid);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_was_killed(status));
    c = th_open(name, RQ_CONSUMER, 1, 16, 0); /* takes over */
    expect_no_wake_calls(p, c, "a consumer killed while waiting");
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

static int child_hold_consumer(const char *child_name)
{
    rq *c;
    if (rq_open(&c, child_name, RQ_CONSUMER, NULL) != RQ_OK)
        return 10;
    th_pause(); /* until killed */
    return 0;
}

static void test_roles_are_exclusive_and_taken_over_from_the_dead(void **state)
{
    (void)state;
    const char *child_name = th_name("busy");
    rq *p = th_open(child_name, RQ_PRODUCER, 2, 16, 0);
    rq *keep = th_keep_alive(child_name);
    rq *p2 = NULL;
    assert_int_equal(rq_open(&p2, child_name, RQ_PRODUCER, NULL), RQ_EBUSY);
    assert_null(p2);

    th_pid pid = th_spawn("child_hold_consumer", child_name, 10);
    rq_stats st;
    for (int i = 0; i < 2500; i++) { /* the role is taken just before the pid is stored */
        assert_int_equal(rq_stat(p, &st), RQ_OK);
        if (st.consumer_live && st.consumer_pid == pid)
            break;
        th_sleep_us(2000);
    }
    assert_int_equal(st.consumer_live, 1);
    assert_int_equal(st.consumer_pid, pid);
    rq *c = NULL;
    assert_int_equal(rq_open(&c, child_name, RQ_CONSUMER, NULL), RQ_EBUSY);
    th_kill(pid);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_was_killed(status));
    assert_int_equal(rq_open(&c, child_name, RQ_CONSUMER, NULL), RQ_OK); /* at once */
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.consumer_takeovers, 1);
    assert_int_equal(st.consumer_pid, th_getpid());
    rq_close(c);
    /* a clean close is not a takeover */
    assert_int_equal(rq_open(&c, child_name, RQ_CONSUMER, NULL), RQ_OK);
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.consumer_takeovers, 1);
    rq_close(c);
    rq_close(p);
    assert_int_equal(rq_open(&p2, child_name, RQ_PRODUCER, NULL), RQ_OK);
    rq_close(p2);
    rq_close(keep);
    rq_unlink(child_name);
}

static void test_messages_persist_until_unlink(void **state)
{
    (void)state;
    const char *name = th_name("persist");
#ifdef _WIN32
    /* Windows: a queue lives while any process holds a handle to it (here
     * an observer), and goes with the last one; rq_unlink cannot remove a
     * name that is open (docs/design.md, section 7). */
    rq *keep = th_open(name, RQ_OBSERVER, 4, 64, 0);
#endif
    rq *p = th_open(name, RQ_PRODUCER, 4, 64, 0);
    for (uint64_t s = 0; s < 3; s++)
        push_seq(p, s, 64);
    rq_close(p);
    rq *c;
    assert_int_equal(rq_open(&c, name, RQ_CONSUMER, NULL), RQ_OK);
    for (uint64_t s = 0; s < 3; s++)
        assert_int_equal(pop_seq(c), s);
    assert_int_equal(rq_unlink(name), RQ_OK);
#ifdef _WIN32
    assert_int_equal(rq_unlink(name), RQ_OK); /* still open: still there */
#else
    assert_int_equal(rq_unlink(name), RQ_ENOENT);
#endif
    assert_int_equal(rq_unlink("bad/name"), RQ_EINVAL);
    /* open handles keep working after unlink */
    char b;
    size_t len;
    assert_int_equal(rq_pop(c, &b, 1, &len, 0), RQ_EAGAIN);
    rq_close(c);
#ifdef _WIN32
    rq_close(keep); /* the last handle: the queue goes */
    assert_int_equal(rq_unlink(name), RQ_ENOENT);
#endif
    assert_int_equal(rq_open(&c, name, RQ_CONSUMER, NULL), RQ_ENOENT);
}

static void test_stats(void **state)
{
    (void)state;
    const char *name = th_name("stats");
    rq *p = th_open(name, RQ_PRODUCER, 5, 16, 0);
    rq *c = th_open(name, RQ_CONSUMER, 5, 16, 0);
    rq *o = th_open(name, RQ_OBSERVER, 5, 16, 0);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(rq_push(p, "s", 1, 0), RQ_OK);
        char b;
        size_t len;
        if (i % 2)
            assert_int_equal(rq_pop(c, &b, 1, &len, 0), RQ_OK);
    }
    rq_stats st;
    assert_int_equal(rq_stat(o, &st), RQ_OK);
    assert_int_equal(st.slot_count, 5);
    assert_int_equal(st.slot_size, 16);
    /* RQ_FULL_FENCES is set by the creator's OS where it lacks an
     * asymmetric fence (Windows); test_full_fences_flag covers it. */
    assert_int_equal(st.flags & ~(uint32_t)RQ_FULL_FENCES, 0);
    assert_int_equal(st.pushed, 7);
    assert_int_equal(st.popped, 3);
    assert_int_equal(st.depth, 4);
    assert_int_equal(st.write_offset, 7);
    assert_int_equal(st.read_offset, 3);
    assert_int_equal(st.producer_live, 1);
    assert_int_equal(st.consumer_live, 1);
    assert_int_equal(st.producer_pid, th_getpid());
    assert_int_equal(st.repairs, 0);
    rq_close(p);
    assert_int_equal(rq_stat(o, &st), RQ_OK);
    assert_int_equal(st.producer_live, 0);
    rq_close(c);
    rq_close(o);
    rq_unlink(name);
}

/* ---- hostile and broken segments ------------------------------------- */

static void expect_open(const char *name, int role, int expected)
{
    rq *q = (rq *)1;
    int rc = rq_open(&q, name, role, NULL);
    if (rc != expected)
        fail_msg("open %s role %d: got %s, expected %s", name, role, rq_errname(rc),
                 rq_errname(expected));
    if (rc == RQ_OK)
        rq_close(q);
    else
        assert_null(q);
}

static void test_corrupt_headers_are_refused(void **state)
{
    (void)state;
    const char *name = th_name("hdr");
    rq *made = th_open(name, RQ_OBSERVER, 4, 32, 0);
    struct th_raw raw;
    th_raw_open(&raw, "rq", name);
    rq_close(made); /* the raw view keeps it (Windows: alive) */
    struct rq_shm *shm = (struct rq_shm *)raw.addr;
    struct rq_shm_header good = shm->hdr;
    struct {
        size_t offset;
        uint32_t value;
        int expected;
    } cases[] = {
        {offsetof(struct rq_shm_header, layout_version), 1,
         RQ_EVERSION}, /* the robust-mutex layout */
        {offsetof(struct rq_shm_header, layout_version), RQ_LAYOUT_VERSION + 1, RQ_EVERSION},
        {offsetof(struct rq_shm_header, abi), 0x1234, RQ_EVERSION},
        {offsetof(struct rq_shm_header, header_size), 64, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, slot_count), 0, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, slot_count), 5, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, slot_count), 0xffffffffu, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, slot_size), 0, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, slot_size), 4096, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, slot_stride), 8, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, flags), 0x10, RQ_ECORRUPT},
        {offsetof(struct rq_shm_header, total_size), 1u << 20, RQ_ECORRUPT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        shm->hdr = good;
        memcpy((char *)&shm->hdr + cases[i].offset, &cases[i].value, 4);
        expect_open(name, RQ_CONSUMER, cases[i].expected);
        expect_open(name, RQ_PRODUCER, cases[i].expected);
        expect_open(name, RQ_OBSERVER, cases[i].expected);
    }
    shm->hdr = good;
    rq_store_relaxed_u64(&shm->hdr.magic, 0x4242);
    expect_open(name, RQ_CONSUMER, RQ_ECORRUPT);
    rq_config cfg = {4, 32, 0, 0};
    rq *q;
    assert_int_equal(rq_open(&q, name, RQ_PRODUCER, &cfg), RQ_ECORRUPT); /* never overwritten */
    shm->hdr = good;
    expect_open(name, RQ_CONSUMER, RQ_OK);
    uint64_t size = raw.size;
    th_raw_close(&raw);

    /* a short segment is refused, never touched past its end (no SIGBUS) */
#ifndef _WIN32
    raw_truncate(name, (off_t)size - 1);
    expect_open(name, RQ_CONSUMER, RQ_ECORRUPT);
    raw_truncate(name, 100);
    expect_open(name, RQ_CONSUMER, RQ_ECORRUPT); /* magic intact, body gone */
    raw_truncate(name, 10);
    expect_open(name, RQ_CONSUMER, RQ_ENOENT); /* shorter than a header: never made */
#else
    /* Windows: an object is whole pages and its size is fixed when it is
     * made, so a short one is made anew, one page shorter than a queue
     * of 6,688 bytes (two pages) needs, with that queue's header in it. */
    (void)size;
    rq_unlink(name);
    name = th_name("hdr.big");
    made = th_open(name, RQ_OBSERVER, 4, 1500, 0);
    th_raw_open(&raw, "rq", name);
    struct rq_shm_header big = ((struct rq_shm *)raw.addr)->hdr;
    assert_true(big.total_size > 4096 && raw.size == 8192);
    th_raw_close(&raw);
    rq_close(made); /* gone: the last handle */
    assert_false(th_raw_exists("rq", name));
    th_raw_create(&raw, "rq", name, 4096, &big, sizeof big);
    assert_int_equal(raw.size, 4096);
    expect_open(name, RQ_CONSUMER, RQ_ECORRUPT); /* magic intact, body gone */
    th_raw_close(&raw);
    big.magic = 0;
    th_raw_create(&raw, "rq", name, 4096, &big, sizeof big);
    expect_open(name, RQ_CONSUMER, RQ_ENOENT); /* never completed */
    th_raw_close(&raw);
#endif
    rq_unlink(name);
}

static void test_corrupt_offsets_and_lengths(void **state)
{
    (void)state;
    const char *name = th_name("offs");
    rq *p = th_open(name, RQ_PRODUCER, 4, 32, 0);
    rq *c = th_open(name, RQ_CONSUMER, 4, 32, 0);
    struct th_raw raw;
    th_raw_open(&raw, "rq", name);
    struct rq_shm *shm = (struct rq_shm *)raw.addr;
    char buf[64];
    size_t len;
    const void *msg;

    /* write offset out of range, or too far ahead: consumer sees corrupt */
    rq_store_relaxed_u32(&shm->write_offset, 8);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_ECORRUPT);
    assert_int_equal(rq_peek(c, &msg, &len, 0), RQ_ECORRUPT);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 100), RQ_ECORRUPT); /* no sleep */
    rq_store_relaxed_u32(&shm->write_offset, 5);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_ECORRUPT);
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_ECORRUPT);
    rq_store_relaxed_u32(&shm->write_offset, 0);
    assert_int_equal(rq_stat(c, &st), RQ_OK);

    /* read offset out of range: the producer sees corrupt once it looks */
    for (int i = 0; i < 4; i++)
        assert_int_equal(rq_push(p, "abcd", 4, 0), RQ_OK);
    rq_store_relaxed_u32(&shm->read_offset, 9);
    assert_int_equal(rq_push(p, "abcd", 4, 0), RQ_ECORRUPT);
    assert_int_equal(rq_push(p, "abcd", 4, 100), RQ_ECORRUPT);
    expect_open(name, RQ_OBSERVER, RQ_OK);
    rq_close(p);
    expect_open(name, RQ_PRODUCER, RQ_ECORRUPT);
    rq_store_relaxed_u32(&shm->read_offset, 0);
    p = th_open(name, RQ_PRODUCER, 4, 32, 0);

    /* a slot length past slot_size */
    uint32_t bad_len = 33;
    memcpy((char *)shm + shm->hdr.header_size, &bad_len, 4);
    assert_int_equal(rq_peek(c, &msg, &len, 0), RQ_ECORRUPT);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_ECORRUPT);
    bad_len = 4;
    memcpy((char *)shm + shm->hdr.header_size, &bad_len, 4);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_OK);
    assert_memory_equal(buf, "abcd", 4);
    th_raw_close(&raw);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
}

/* A peer rewriting the header while we open: the handle must take the
 * geometry it validated, never a value read again after the check.  A
 * rewrite may land anywhere in the open here, before the check too (then
 * the open is refused); test_header_rewritten_after_the_check puts it
 * exactly between the check and the handle's set-up. */
struct header_flipper {
    struct rq_shm *shm;
    rq_atomic_u32 stop;
};

static void *flip_slot_count(void *arg)
{
    struct header_flipper *f = arg;
    volatile uint32_t *slot_count = &f->shm->hdr.slot_count;
    while (!rq_load_acquire_u32(&f->stop)) {
        *slot_count = 1u << 20;
        *slot_count = 4;
    }
    return NULL;
}

static void test_header_rewritten_during_open(void **state)
{
    (void)state;
    const char *name = th_name("flip");
    rq *made = th_open(name, RQ_OBSERVER, 4, 16, 0);
    struct th_raw raw;
    th_raw_open(&raw, "rq", name);
    rq_close(made); /* the raw view keeps it (Windows: alive) */
    struct header_flipper f = {(struct rq_shm *)raw.addr, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, flip_slot_count, &f), 0);
    int opened = 0, refused = 0;
    for (int i = 0; i < 2000; i++) {
        rq *q;
        int rc = rq_open(&q, name, RQ_OBSERVER, NULL);
        if (rc == RQ_ECORRUPT) { /* it saw the scribbled value: fine */
            refused++;
            continue;
        }
        assert_int_equal(rc, RQ_OK);
        opened++;
        rq_stats st;
        assert_int_equal(rq_stat(q, &st), RQ_OK);
        assert_int_equal(st.slot_count, 4); /* what was validated */
        rq_close(q);
    }
    rq_store_release_u32(&f.stop, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    print_message("header rewritten during 2000 opens: %d opened with the checked geometry, "
                  "%d refused as corrupt\n",
                  opened, refused);
    assert_true(opened > 0);
    th_raw_close(&raw);
    rq_unlink(name);
}

/* A hostile peer at open.after_check: the header has been checked, the
 * handle not yet set up.  It writes a header that is consistent in itself
 * but far bigger than the segment, so a handle that took its geometry from
 * the shared header instead of the checked copy would show it in rq_stat,
 * accept messages longer than a slot and more messages than there are
 * slots (written past the end of the ring). */
#define REWRITE_SLOTS 4u
#define REWRITE_SLOT_SIZE 16u

struct header_rewriter {
    struct rq_shm_header *hdr;
    unsigned long rewrites;
};

static void rewrite_header(void *arg)
{
    struct header_rewriter *w = arg;
    w->hdr->slot_count = 1u << 20;
    w->hdr->slot_size = 4096;
    w->hdr->slot_stride = (uint32_t)rq_layout_stride(4096);
    w->hdr->total_size = rq_layout_total(1u << 20, 4096);
    w->rewrites++;
}

static void expect_checked_geometry(rq *q)
{
    rq_stats st;
    assert_int_equal(rq_stat(q, &st), RQ_OK);
    assert_int_equal(st.slot_count, REWRITE_SLOTS);
    assert_int_equal(st.slot_size, REWRITE_SLOT_SIZE);
}

static void header_rewritten_after_the_check(uint32_t flags)
{
    const char *name = th_name("rewrite");
    rq *keep = th_create(name, REWRITE_SLOTS, REWRITE_SLOT_SIZE, flags);
    struct th_raw raw;
    th_raw_open(&raw, "rq", name);
    struct rq_shm *shm = (struct rq_shm *)raw.addr;
    struct rq_shm_header checked;
    memcpy(&checked, &shm->hdr, sizeof checked);
    struct header_rewriter peer = {&shm->hdr, 0};
    static const int roles[] = {RQ_CONSUMER, RQ_PRODUCER, RQ_OBSERVER};
    rq *q[3];
    for (int i = 0; i < 3; i++) {
        /* Each open checks the header as it is: the one before left it
         * rewritten, so it is put back first. */
        memcpy(&shm->hdr, &checked, sizeof checked);
        rq_crash_point_run(RQ_CP_OPEN_AFTER_CHECK, rewrite_header, &peer);
        int rc = rq_open(&q[i], name, roles[i], NULL);
        rq_crash_point_run(-1, NULL, NULL);
        assert_int_equal(rc, RQ_OK);
        assert_int_equal(peer.rewrites, (unsigned long)i + 1); /* after its check */
    }
    /* The header stays rewritten: no handle may read it again either. */
    rq *c = q[0], *p = q[1];
    for (int i = 0; i < 3; i++)
        expect_checked_geometry(q[i]);
    unsigned char buf[REWRITE_SLOT_SIZE + 1];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(rq_push(p, buf, REWRITE_SLOT_SIZE + 1, 0), RQ_EMSGSIZE);
    for (uint64_t seq = 0; seq < REWRITE_SLOTS; seq++)
        push_seq(p, seq, REWRITE_SLOT_SIZE);
    assert_int_equal(rq_push(p, buf, 1, 0), RQ_EAGAIN); /* full at the checked count */
    for (uint64_t seq = 0; seq < REWRITE_SLOTS; seq++)
        assert_int_equal(pop_seq(c), seq);
    size_t len;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 0), RQ_EAGAIN);
    memcpy(&shm->hdr, &checked, sizeof checked);
    for (int i = 0; i < 3; i++)
        rq_close(q[i]);
    th_raw_close(&raw);
    rq_close(keep);
    rq_unlink(name);
}

static void test_header_rewritten_after_the_check(void **state)
{
    (void)state;
    header_rewritten_after_the_check(0);
    header_rewritten_after_the_check(RQ_MPSC);
}

/* rq_stat from a handle that owns neither offset, while both move: the
 * two loads may straddle a push and a pop, which must not read as a
 * corrupt pair. */
struct traffic {
    const char *name;
    rq_atomic_u32 stop;
};

static void *traffic_side(void *arg, int producer)
{
    struct traffic *t = arg;
    rq *q = th_open(t->name, producer ? RQ_PRODUCER : RQ_CONSUMER, 4, 8, 0);
    char buf[8] = "abc";
    size_t len;
    while (!rq_load_acquire_u32(&t->stop)) {
        if (producer)
            (void)rq_push(q, buf, 3, 10);
        else
            (void)rq_pop(q, buf, sizeof buf, &len, 10);
    }
    rq_close(q);
    return NULL;
}

static void *traffic_producer(void *arg)
{
    return traffic_side(arg, 1);
}
static void *traffic_consumer(void *arg)
{
    return traffic_side(arg, 0);
}

static void test_stat_under_traffic_is_never_corrupt(void **state)
{
    (void)state;
    struct traffic t = {th_name("traffic"), 0};
    rq *o = th_open(t.name, RQ_OBSERVER, 4, 8, 0);
    pthread_t pt, ct;
    assert_int_equal(pthread_create(&pt, NULL, traffic_producer, &t), 0);
    assert_int_equal(pthread_create(&ct, NULL, traffic_consumer, &t), 0);
    unsigned long calls = 0;
    uint64_t until = th_now_ms() + 1500;
    while (th_now_ms() < until) {
        for (int i = 0; i < 1000; i++, calls++) {
            rq_stats st;
            int rc = rq_stat(o, &st);
            if (rc != RQ_OK)
                fail_msg("rq_stat: %s (write %u, read %u, call %lu)", rq_errname(rc),
                         st.write_offset, st.read_offset, calls);
            assert_true(st.depth <= 4);
        }
    }
    rq_store_release_u32(&t.stop, 1);
    assert_int_equal(pthread_join(pt, NULL), 0);
    assert_int_equal(pthread_join(ct, NULL), 0);
    rq_stats st;
    assert_int_equal(rq_stat(o, &st), RQ_OK);
    print_message("rq_stat under traffic: %lu calls, %llu messages moved meanwhile, none "
                  "corrupt\n",
                  calls, (unsigned long long)st.popped);
    assert_true(st.popped > 0);
    rq_close(o);
    rq_unlink(t.name);
}

/* Ping-pong between two threads through two queues, each side sleeping in
 * every round: the race between a side going to sleep and the other
 * publishing is run tens of thousands of times, in both publishing
 * protocols.  A wake-up lost to it would be found by the 1 s re-check and
 * counted as missed, so the count must stay 0; the first one stops the
 * test at once (th_pop_live / th_push_live). */
#define PING_PONG_ROUNDS 20000

struct ping_pong {
    const char *there, *back;
    int rc;
};

static void *pong_side(void *arg)
{
    struct ping_pong *pp = arg;
    rq *in = th_open(pp->there, RQ_CONSUMER, 1, 8, 0);
    rq *out = th_open(pp->back, RQ_PRODUCER, 1, 8, 0);
    char buf[8];
    size_t len;
    pp->rc = RQ_OK;
    for (int i = 0; i < PING_PONG_ROUNDS && pp->rc == RQ_OK; i++) {
        pp->rc = th_pop_live(in, buf, sizeof buf, &len);
        if (pp->rc == RQ_OK)
            pp->rc = th_push_live(out, buf, len);
    }
    rq_close(in);
    rq_close(out);
    return NULL;
}

static void ping_pong(uint32_t flags)
{
    struct ping_pong pp = {th_name("ping"), NULL, -1};
    pp.back = th_name("pong");
    rq *out = th_open(pp.there, RQ_PRODUCER, 1, 8, flags);
    rq *in = th_open(pp.back, RQ_CONSUMER, 1, 8, flags);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pong_side, &pp), 0);
    uint64_t t0 = th_now_ms();
    for (uint32_t i = 0; i < PING_PONG_ROUNDS; i++) {
        char buf[8];
        size_t len;
        assert_int_equal(th_push_live(out, &i, sizeof i), RQ_OK);
        assert_int_equal(th_pop_live(in, buf, sizeof buf, &len), RQ_OK);
        assert_memory_equal(buf, &i, sizeof i);
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(pp.rc, RQ_OK);
    rq_stats a, b;
    assert_int_equal(rq_stat(out, &a), RQ_OK);
    assert_int_equal(rq_stat(in, &b), RQ_OK);
    print_message("ping-pong%s: %d round trips in %llu ms, %llu sleeps, %llu missed wakes\n",
                  (a.flags & RQ_FULL_FENCES) ? " (full fences)" : "", PING_PONG_ROUNDS,
                  (unsigned long long)(th_now_ms() - t0),
                  (unsigned long long)(a.consumer_waits + b.consumer_waits),
                  (unsigned long long)(a.consumer_missed_wakes + b.consumer_missed_wakes +
                                       a.producer_missed_wakes + b.producer_missed_wakes));
    assert_true(a.consumer_waits + b.consumer_waits > 0); /* they did sleep */
    assert_int_equal(a.consumer_missed_wakes + b.consumer_missed_wakes, 0);
    assert_int_equal(a.producer_missed_wakes + b.producer_missed_wakes, 0);
    rq_close(out);
    rq_close(in);
    rq_unlink(pp.there);
    rq_unlink(pp.back);
}

static void test_ping_pong_never_misses_a_wake(void **state)
{
    (void)state;
    ping_pong(0);
    ping_pong(RQ_FULL_FENCES);
}

static void test_half_made_segment_is_repaired(void **state)
{
    (void)state;
    const char *name = th_name("half");
    /* a creator that died after sizing the object, before magic (kept
     * alive by this raw handle, which matters on Windows only) */
    struct th_raw raw;
    th_raw_create(&raw, "rq", name, 4096, NULL, 0);
    expect_open(name, RQ_CONSUMER, RQ_ENOENT);
    rq *p = th_open(name, RQ_PRODUCER, 3, 24, 0);
    rq_stats st;
    assert_int_equal(rq_stat(p, &st), RQ_OK);
    assert_int_equal(st.repairs, 1);
    assert_int_equal(st.slot_count, 3);
    assert_int_equal(st.depth, 0);
    rq_close(p);
    expect_open(name, RQ_CONSUMER, RQ_OK);
    th_raw_close(&raw);
    rq_unlink(name);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_CHILD(child_pop_blocking),
        TH_CHILD(child_push_blocking),
        TH_CHILD(child_hold_consumer),
        TH_CHILD(child_wait_forever),
    };
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_rejects_bad_arguments),
        cmocka_unit_test(test_open_name_of_max_length),
        cmocka_unit_test(test_attach_missing_is_enoent),
        cmocka_unit_test(test_geometry_mismatch_is_eexist),
#ifndef _WIN32
        cmocka_unit_test(test_mode_is_exact_despite_umask),
#endif
        cmocka_unit_test(test_fifo_holds_exactly_n_for_any_n),
        cmocka_unit_test(test_message_sizes),
        cmocka_unit_test(test_calls_check_role_and_arguments),
        cmocka_unit_test(test_reserve_commit),
        cmocka_unit_test(test_peek_release),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_blocking_waits_are_woken_across_processes),
        cmocka_unit_test(test_full_fences_flag),
        cmocka_unit_test(test_ping_pong_never_misses_a_wake),
        cmocka_unit_test(test_busy_sides_make_no_wake_calls),
        cmocka_unit_test(test_no_wake_calls_for_a_waiter_that_is_gone),
        cmocka_unit_test(test_roles_are_exclusive_and_taken_over_from_the_dead),
        cmocka_unit_test(test_messages_persist_until_unlink),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_corrupt_headers_are_refused),
        cmocka_unit_test(test_corrupt_offsets_and_lengths),
        cmocka_unit_test(test_half_made_segment_is_repaired),
        cmocka_unit_test(test_header_rewritten_during_open),
        cmocka_unit_test(test_header_rewritten_after_the_check),
        cmocka_unit_test(test_stat_under_traffic_is_never_corrupt),
    };
    return cmocka_run_group_tests_name("queue", tests, NULL, NULL);
}
