/*
 * test_platform_linux.c - src/platform_linux.c: the guarantees platform.h
 * states, checked against the real kernel objects.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"
#include "layout.h"
#include "platform.h"

static void test_segment_open_create_size_map(void **state)
{
    (void)state;
    const char *name = th_name("plat");
    rq_plat_segment *s;
    int created = -1;
    assert_int_equal(rq_plat_segment_open(&s, "rq", name, 0, 0600, &created), RQ_ENOENT);
    assert_int_equal(rq_plat_segment_open(&s, "rq", name, RQ_PLAT_CREATE, 0600, &created), RQ_OK);
    assert_int_equal(created, 1);
    uint64_t size = 1;
    assert_int_equal(rq_plat_segment_size(s, &size), RQ_OK);
    assert_int_equal(size, 0);
    assert_int_equal(rq_plat_segment_resize(s, 8192), RQ_OK);
    assert_int_equal(rq_plat_segment_size(s, &size), RQ_OK);
    assert_int_equal(size, 8192);
    void *a;
    assert_int_equal(rq_plat_segment_map(s, 8192, &a), RQ_OK);
    memset(a, 0x5a, 8192);
    rq_plat_segment *s2;
    assert_int_equal(rq_plat_segment_open(&s2, "rq", name, RQ_PLAT_CREATE, 0600, &created), RQ_OK);
    assert_int_equal(created, 0);
    void *b;
    assert_int_equal(rq_plat_segment_map(s2, 8192, &b), RQ_OK);
    assert_int_equal(((unsigned char *)b)[8191], 0x5a); /* the same memory */
    errno = 0;
    assert_int_equal(rq_plat_segment_map(s2, 0, &b), RQ_ESYS);
    assert_int_equal(errno, EINVAL);
    rq_plat_segment_unmap(a, 8192);
    rq_plat_segment_close(s);
    rq_plat_segment_close(s2);
    assert_int_equal(rq_plat_segment_unlink("rq", name), RQ_OK);
    assert_int_equal(rq_plat_segment_unlink("rq", name), RQ_ENOENT);
}

static void test_resize_reports_enospc_instead_of_sigbus(void **state)
{
    (void)state;
    const char *name = th_name("huge");
    rq_plat_segment *s;
    int created;
    assert_int_equal(rq_plat_segment_open(&s, "rq", name, RQ_PLAT_CREATE, 0600, &created), RQ_OK);
    /* far more than /dev/shm can hold: must fail now, cleanly */
    errno = 0;
    assert_int_equal(rq_plat_segment_resize(s, UINT64_C(1) << 46), RQ_ESYS);
    assert_true(errno == ENOSPC || errno == EFBIG || errno == ENOMEM);
    rq_plat_segment_close(s);
    rq_plat_segment_unlink("rq", name);
}

static void test_locks_belong_to_handles(void **state)
{
    (void)state;
    const char *name = th_name("locks");
    rq_plat_segment *a, *b;
    int created;
    assert_int_equal(rq_plat_segment_open(&a, "rq", name, RQ_PLAT_CREATE, 0600, &created), RQ_OK);
    assert_int_equal(rq_plat_segment_open(&b, "rq", name, 0, 0600, &created), RQ_OK);
    assert_int_equal(rq_plat_lock(a, RQ_LOCK_PRODUCER, RQ_LOCK_TRY), RQ_OK);
    /* same process, other handle: still excluded (OFD, not POSIX locks) */
    assert_int_equal(rq_plat_lock(b, RQ_LOCK_PRODUCER, RQ_LOCK_TRY), RQ_EBUSY);
    assert_int_equal(rq_plat_lock(b, RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED), RQ_EBUSY);
    assert_int_equal(rq_plat_lock_probe(b, RQ_LOCK_PRODUCER), 1);
    assert_int_equal(rq_plat_lock_probe(b, RQ_LOCK_CONSUMER), 0);
    assert_int_equal(rq_plat_lock(b, RQ_LOCK_CONSUMER, RQ_LOCK_TRY), RQ_OK); /* other byte */
    rq_plat_unlock(a, RQ_LOCK_PRODUCER);
    assert_int_equal(rq_plat_lock_probe(b, RQ_LOCK_PRODUCER), 0);
    assert_int_equal(rq_plat_lock(a, RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED), RQ_OK);
    assert_int_equal(rq_plat_lock(b, RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED), RQ_OK);
    rq_plat_segment_close(b); /* closing drops b's locks */
    assert_int_equal(rq_plat_lock_probe(a, RQ_LOCK_CONSUMER), 0);
    rq_plat_segment_close(a);
    rq_plat_segment_unlink("rq", name);
}

static int child_sleep(const char *arg)
{
    rq_plat_segment *s;
    int created;
    if (rq_plat_segment_open(&s, "rq", arg, 0, 0600, &created) != RQ_OK)
        return 1;
    if (rq_plat_lock(s, RQ_LOCK_CONSUMER, RQ_LOCK_TRY) != RQ_OK)
        return 2;
    pause();
    return 0;
}

static void test_lock_dropped_when_holder_dies(void **state)
{
    (void)state;
    const char *name = th_name("death");
    rq_plat_segment *s;
    int created;
    assert_int_equal(rq_plat_segment_open(&s, "rq", name, RQ_PLAT_CREATE, 0600, &created), RQ_OK);
    th_pid pid = th_spawn("child_sleep", name, 10);
    int held = 0;
    for (int i = 0; i < 1000 && !held; i++) {
        held = rq_plat_lock_probe(s, RQ_LOCK_CONSUMER) == 1;
        if (!held)
            usleep(1000);
    }
    assert_true(held);
    assert_int_equal(rq_plat_lock(s, RQ_LOCK_CONSUMER, RQ_LOCK_TRY), RQ_EBUSY);
    th_kill(pid);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_int_equal(rq_plat_lock(s, RQ_LOCK_CONSUMER, RQ_LOCK_TRY), RQ_OK);
    rq_plat_segment_close(s);
    rq_plat_segment_unlink("rq", name);
}

static void test_wait_times_out_and_sees_changed_word(void **state)
{
    (void)state;
    rq_atomic_u32 *word = th_shared_fresh("word", 4096);
    rq_store_relaxed_u32(word, 7);
    assert_int_equal(rq_plat_wait(NULL, word, 8, RQ_INFINITE), RQ_OK); /* differs: no sleep */
    uint64_t t0 = th_now_ms();
    assert_int_equal(rq_plat_wait(NULL, word, 7, 50), RQ_ETIMEDOUT);
    uint64_t dt = th_now_ms() - t0;
    assert_true(dt >= 45);
    assert_int_equal(rq_plat_wait(NULL, word, 7, 0), RQ_ETIMEDOUT);
}

static rq_atomic_u32 *wake_word;

static int child_wake_later(const char *arg)
{
    (void)arg;
    wake_word = th_shared("wake_word", 4096);
    usleep(50 * 1000);
    rq_fetch_add_u32(wake_word, 1);
    rq_plat_wake(NULL, wake_word, 1);
    return 0;
}

static void test_wake_crosses_processes(void **state)
{
    (void)state;
    wake_word = th_shared_fresh("wake_word", 4096);
    th_pid pid = th_spawn("child_wake_later", "", 10);
    uint64_t t0 = th_now_ms();
    int rc;
    do
        rc = rq_plat_wait(NULL, wake_word, 0, 5000);
    while (rc == RQ_OK && rq_load_acquire_u32(wake_word) == 0);
    assert_int_equal(rc, RQ_OK);
    assert_true(th_now_ms() - t0 < 4000);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_exited_ok(status));
}

static int child_add_and_wake_later(const char *arg)
{
    (void)arg;
    wake_word = th_shared("wake_word", 4096);
    usleep(50 * 1000);
    return rq_plat_add_and_wake(NULL, wake_word, 2) == RQ_OK ? 0 : 1;
}

static void test_add_and_wake_is_one_step(void **state)
{
    (void)state;
    wake_word = th_shared_fresh("wake_word", 4096);
    rq_store_relaxed_u32(wake_word, 5);
    assert_int_equal(rq_plat_add_and_wake(NULL, wake_word, 2), RQ_OK); /* no sleeper */
    assert_int_equal(rq_load_acquire_u32(wake_word), 7);
    assert_int_equal(rq_plat_add_and_wake(NULL, wake_word, 0), RQ_ESYS);
    assert_int_equal(rq_plat_add_and_wake(NULL, wake_word, 4096), RQ_ESYS);
    th_pid pid = th_spawn("child_add_and_wake_later", "", 10);
    uint64_t t0 = th_now_ms();
    int rc;
    do
        rc = rq_plat_wait(NULL, wake_word, 7, 5000);
    while (rc == RQ_OK && rq_load_acquire_u32(wake_word) == 7);
    assert_int_equal(rc, RQ_OK);
    assert_int_equal(rq_load_acquire_u32(wake_word), 9);
    assert_true(th_now_ms() - t0 < 4000);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_exited_ok(status));
}

/* The MPSC producer slots: exclusive per handle, probed by others; and
 * the identity that tells two handles of one object from two objects. */
static void test_producer_slot_locks_and_identity(void **state)
{
    (void)state;
    const char *name = th_name("slots"), *other = th_name("slots2");
    rq_plat_segment *a, *b, *c;
    int created;
    assert_int_equal(rq_plat_segment_open(&a, "rq", name, RQ_PLAT_CREATE, 0600, &created), RQ_OK);
    assert_int_equal(rq_plat_segment_open(&b, "rq", name, 0, 0600, &created), RQ_OK);
    assert_int_equal(rq_plat_segment_open(&c, "rq", other, RQ_PLAT_CREATE, 0600, &created), RQ_OK);
    uint64_t ia[2], ib[2], ic[2];
    assert_int_equal(rq_plat_segment_identity(a, ia), RQ_OK);
    assert_int_equal(rq_plat_segment_identity(b, ib), RQ_OK);
    assert_int_equal(rq_plat_segment_identity(c, ic), RQ_OK);
    assert_memory_equal(ia, ib, sizeof ia);
    assert_true(ia[0] != ic[0] || ia[1] != ic[1]);
    enum rq_plat_lock_id s3 = (enum rq_plat_lock_id)(RQ_LOCK_PRODUCER_SLOT + 3);
    enum rq_plat_lock_id s4 = (enum rq_plat_lock_id)(RQ_LOCK_PRODUCER_SLOT + 4);
    assert_int_equal(rq_plat_lock(a, s3, RQ_LOCK_TRY), RQ_OK);
    assert_int_equal(rq_plat_lock(b, s3, RQ_LOCK_TRY), RQ_EBUSY);
    assert_int_equal(rq_plat_lock(b, s4, RQ_LOCK_TRY), RQ_OK); /* its neighbour is free */
    assert_int_equal(rq_plat_lock_probe(b, s3), 1);
    assert_int_equal(rq_plat_lock_probe(a, s3), 0);               /* held by this handle only */
    assert_int_equal(rq_plat_lock_probe(a, RQ_LOCK_PRODUCER), 0); /* slots are apart from roles */
    rq_plat_segment_close(a);
    assert_int_equal(rq_plat_lock_probe(b, s3), 0);
    rq_plat_segment_close(b);
    rq_plat_segment_close(c);
    rq_plat_segment_unlink("rq", name);
    rq_plat_segment_unlink("rq", other);
}

static void test_clock_and_pid(void **state)
{
    (void)state;
    uint64_t a = rq_plat_now_ms();
    usleep(20 * 1000);
    uint64_t b = rq_plat_now_ms();
    assert_true(b >= a + 15);
    assert_int_equal(rq_plat_pid(), getpid());
}

/* Lock ids beyond the three rq uses (MPSC producer slots use 64 and up)
 * are bytes of the lock object too: they exclude across handles, and
 * neither they nor the init lock touch the segment's bytes. */
static void test_high_lock_ids_live_in_the_lock_object(void **state)
{
    (void)state;
    const char *name = th_name("hiids");
    rq_plat_segment *a, *b;
    int created;
    assert_int_equal(rq_plat_segment_open(&a, "rq", name, RQ_PLAT_CREATE, 0600, &created), RQ_OK);
    assert_int_equal(rq_plat_segment_open(&b, "rq", name, 0, 0600, &created), RQ_OK);
    assert_int_equal(rq_plat_segment_has_locks(a), 1);
    enum rq_plat_lock_id hi = (enum rq_plat_lock_id)(64 + 4096);
    assert_int_equal(rq_plat_lock(a, hi, RQ_LOCK_TRY), RQ_OK);
    assert_int_equal(rq_plat_lock(b, hi, RQ_LOCK_TRY), RQ_EBUSY);
    assert_int_equal(rq_plat_lock_probe(b, hi), 1);
    assert_int_equal(rq_plat_lock(a, RQ_LOCK_INIT, RQ_LOCK_TRY), RQ_OK);
    /* the segment itself carries no lock: a write lock on its bytes is free */
    char path[300];
    snprintf(path, sizeof path, "/rq.%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    assert_true(fd >= 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 4200};
    assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
    close(fd);
    rq_plat_unlock(a, hi);
    assert_int_equal(rq_plat_lock_probe(b, hi), 0);
    assert_int_equal(rq_plat_lock(b, hi, RQ_LOCK_TRY), RQ_OK);
    errno = 0;
    assert_int_equal(rq_plat_lock(b, (enum rq_plat_lock_id)(RQ_LOCK_ID_MAX + 1), RQ_LOCK_TRY),
                     RQ_ESYS);
    rq_plat_segment_close(a);
    rq_plat_segment_close(b);
    assert_int_equal(rq_plat_segment_unlink("rq", name), RQ_OK);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_CHILD(child_sleep),
        TH_CHILD(child_wake_later),
        TH_CHILD(child_add_and_wake_later),
    };
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segment_open_create_size_map),
        cmocka_unit_test(test_resize_reports_enospc_instead_of_sigbus),
        cmocka_unit_test(test_locks_belong_to_handles),
        cmocka_unit_test(test_lock_dropped_when_holder_dies),
        cmocka_unit_test(test_wait_times_out_and_sees_changed_word),
        cmocka_unit_test(test_wake_crosses_processes),
        cmocka_unit_test(test_add_and_wake_is_one_step),
        cmocka_unit_test(test_producer_slot_locks_and_identity),
        cmocka_unit_test(test_clock_and_pid),
        cmocka_unit_test(test_high_lock_ids_live_in_the_lock_object),
    };
    return cmocka_run_group_tests_name("platform_linux", tests, NULL, NULL);
}
