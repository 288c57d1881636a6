/*
 * test_platform_win.c - src/platform_win.c: the guarantees platform.h
 * states, checked against real Windows kernel objects (under Wine in CI):
 * named file mappings, named mutexes abandoned by TerminateProcess, role
 * locks that follow the handle across threads, and named events across
 * processes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

#include <cmocka.h>

#include "helpers.h"
#include "layout.h"
#include "platform.h"

#define SEG_SIZE 8192u

static rq_plat_segment *seg_create(const char *name, void **addr)
{
    rq_plat_segment *s;
    int created = 0;
    assert_int_equal(rq_plat_segment_open(&s, "rq", name, RQ_PLAT_CREATE, 0600, &created), RQ_OK);
    assert_int_equal(created, 1);
    assert_int_equal(rq_plat_segment_resize(s, SEG_SIZE), RQ_OK);
    assert_int_equal(rq_plat_segment_map(s, SEG_SIZE, addr), RQ_OK);
    return s;
}

/* A child's view of the parent's segment NAME. */
static rq_plat_segment *seg_attach(const char *name, void **addr)
{
    rq_plat_segment *s;
    int created;
    if (rq_plat_segment_open(&s, "rq", name, 0, 0600, &created) != RQ_OK)
        return NULL;
    if (rq_plat_segment_map(s, SEG_SIZE, addr) != RQ_OK) {
        rq_plat_segment_close(s);
        return NULL;
    }
    return s;
}

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
    assert_int_equal(size, 0); /* made only when it gets its size */
    assert_false(th_raw_exists("rq", name));
    assert_int_equal(rq_plat_segment_resize(s, 5000), RQ_OK);
    assert_int_equal(rq_plat_segment_size(s, &size), RQ_OK);
    assert_int_equal(size, 8192); /* whole pages */
    void *a;
    assert_int_equal(rq_plat_segment_map(s, 8192, &a), RQ_OK);
    memset(a, 0x5a, 8192);
    rq_plat_segment *s2;
    assert_int_equal(rq_plat_segment_open(&s2, "rq", name, RQ_PLAT_CREATE, 0600, &created), RQ_OK);
    assert_int_equal(created, 0);
    void *b;
    assert_int_equal(rq_plat_segment_map(s2, 8192, &b), RQ_OK);
    assert_int_equal(((unsigned char *)b)[8191], 0x5a); /* the same memory */
    assert_int_equal(rq_plat_segment_map(s2, 0, &b), RQ_ESYS);
    assert_int_equal(rq_plat_segment_map(s2, 3 * 4096, &b), RQ_ESYS); /* past its end */
    /* a size is fixed once made: a larger one is refused, a smaller fits */
    assert_int_equal(rq_plat_segment_resize(s2, 4 * 4096), RQ_ESYS);
    assert_int_equal(rq_plat_segment_resize(s2, 4096), RQ_OK);
    rq_plat_segment_unmap(a, 8192);
    rq_plat_segment_close(s);
    /* a name cannot be removed while open: unlink only says it is there */
    assert_int_equal(rq_plat_segment_unlink("rq", name), RQ_OK);
    assert_true(th_raw_exists("rq", name));
    rq_plat_segment_unmap(b, 8192);
    rq_plat_segment_close(s2);
    /* the last handle closed: the object and its name are gone */
    assert_false(th_raw_exists("rq", name));
    assert_int_equal(rq_plat_segment_unlink("rq", name), RQ_ENOENT);
}

static void test_locks_belong_to_handles(void **state)
{
    (void)state;
    const char *name = th_name("locks");
    void *addr;
    rq_plat_segment *a = seg_create(name, &addr), *b;
    int created;
    assert_int_equal(rq_plat_segment_open(&b, "rq", name, 0, 0600, &created), RQ_OK);
    assert_int_equal(rq_plat_lock(a, RQ_LOCK_PRODUCER, RQ_LOCK_TRY), RQ_OK);
    /* same process, same thread, other handle: still excluded */
    assert_int_equal(rq_plat_lock(b, RQ_LOCK_PRODUCER, RQ_LOCK_TRY), RQ_EBUSY);
    assert_int_equal(rq_plat_lock(b, RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED), RQ_EBUSY);
    assert_int_equal(rq_plat_lock(a, RQ_LOCK_PRODUCER, RQ_LOCK_TRY), RQ_EBUSY); /* held */
    assert_int_equal(rq_plat_lock_probe(b, RQ_LOCK_PRODUCER), 1);
    assert_int_equal(rq_plat_lock_probe(b, RQ_LOCK_CONSUMER), 0);
    assert_int_equal(rq_plat_lock(b, RQ_LOCK_CONSUMER, RQ_LOCK_TRY), RQ_OK);
    rq_plat_unlock(a, RQ_LOCK_PRODUCER);
    assert_int_equal(rq_plat_lock_probe(b, RQ_LOCK_PRODUCER), 0);
    assert_int_equal(rq_plat_lock(a, RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED), RQ_OK);
    assert_int_equal(rq_plat_lock(b, RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED), RQ_OK);
    assert_int_equal(rq_plat_lock_probe(b, RQ_LOCK_CONSUMER), 0); /* b's own: not another's */
    assert_int_equal(rq_plat_lock_probe(a, RQ_LOCK_CONSUMER), 1);
    /* shared holders keep out an exclusive one */
    rq_plat_segment *c;
    assert_int_equal(rq_plat_segment_open(&c, "rq", name, 0, 0600, &created), RQ_OK);
    assert_int_equal(rq_plat_lock_probe(c, RQ_LOCK_PRODUCER), 1);
    assert_int_equal(rq_plat_lock(c, RQ_LOCK_PRODUCER, RQ_LOCK_TRY), RQ_EBUSY);
    rq_plat_segment_close(b); /* closing drops b's locks, shared and exclusive */
    assert_int_equal(rq_plat_lock_probe(c, RQ_LOCK_CONSUMER), 0);
    assert_int_equal(rq_plat_lock_probe(c, RQ_LOCK_PRODUCER), 1); /* a's share */
    rq_plat_unlock(a, RQ_LOCK_PRODUCER);
    assert_int_equal(rq_plat_lock_probe(c, RQ_LOCK_PRODUCER), 0);
    assert_int_equal(rq_plat_lock(c, RQ_LOCK_PRODUCER, RQ_LOCK_TRY), RQ_OK);
    rq_plat_segment_close(c);
    rq_plat_segment_unmap(addr, SEG_SIZE);
    rq_plat_segment_close(a);
}

/* Every RQ_EBUSY says so in the last error (ERROR_BUSY), as Linux's held
 * lock does in errno, never with a stale error of an earlier call: a role
 * held by another handle (exclusive, shared) or by this one, a second
 * producer slot of one handle, and every producer slot held (the slot
 * keeper's search fails). */
static void expect_busy(int rc)
{
    assert_int_equal(rc, RQ_EBUSY);
    assert_int_equal(GetLastError(), ERROR_BUSY);
    SetLastError(ERROR_INVALID_HANDLE); /* stale, for the next call */
}

static void test_busy_sets_the_last_error(void **state)
{
    (void)state;
    const char *name = th_name("busy");
    void *addr;
    rq_plat_segment *a = seg_create(name, &addr), *b;
    int created;
    assert_int_equal(rq_plat_segment_open(&b, "rq", name, 0, 0600, &created), RQ_OK);
    assert_int_equal(rq_plat_lock(a, RQ_LOCK_PRODUCER, RQ_LOCK_TRY), RQ_OK);
    SetLastError(ERROR_INVALID_HANDLE);
    expect_busy(rq_plat_lock(b, RQ_LOCK_PRODUCER, RQ_LOCK_TRY));
    expect_busy(rq_plat_lock(b, RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED));
    expect_busy(rq_plat_lock(a, RQ_LOCK_PRODUCER, RQ_LOCK_TRY));
    rq_plat_unlock(a, RQ_LOCK_PRODUCER);
    /* Producer slots: one per handle, RQ_MPSC_PRODUCERS_MAX in all. */
    enum { SLOTS = RQ_MPSC_PRODUCERS_MAX };
    static rq_plat_segment *h[SLOTS];
    uint32_t slot;
    assert_int_equal(rq_plat_producer_slot(a, &slot), RQ_OK);
    expect_busy(rq_plat_producer_slot(a, &slot));
    for (int i = 1; i < SLOTS; i++) {
        assert_int_equal(rq_plat_segment_open(&h[i], "rq", name, 0, 0600, &created), RQ_OK);
        assert_int_equal(rq_plat_producer_slot(h[i], &slot), RQ_OK);
        assert_int_equal(slot, (uint32_t)i);
    }
    expect_busy(rq_plat_producer_slot(b, &slot)); /* every slot held */
    rq_plat_producer_slot_release(h[7]);
    assert_int_equal(rq_plat_producer_slot(b, &slot), RQ_OK);
    assert_int_equal(slot, 7);
    for (int i = 1; i < SLOTS; i++)
        rq_plat_segment_close(h[i]);
    rq_plat_segment_close(b);
    rq_plat_segment_unmap(addr, SEG_SIZE);
    rq_plat_segment_close(a);
}

/* ---- a role taken on one thread stays with the handle ------------------ */

struct lock_on_thread {
    rq_plat_segment *seg;
    int rc;
};

static DWORD WINAPI take_consumer_role(void *arg)
{
    struct lock_on_thread *t = arg;
    t->rc = rq_plat_lock(t->seg, RQ_LOCK_CONSUMER, RQ_LOCK_TRY);
    return 0; /* the thread ends; a mutex it owned would now be abandoned */
}

static void test_role_follows_the_handle_not_the_thread(void **state)
{
    (void)state;
    const char *name = th_name("thread");
    void *addr;
    rq_plat_segment *a = seg_create(name, &addr), *b;
    int created;
    assert_int_equal(rq_plat_segment_open(&b, "rq", name, 0, 0600, &created), RQ_OK);
    struct lock_on_thread t = {a, -100};
    HANDLE th = CreateThread(NULL, 0, take_consumer_role, &t, 0, NULL);
    assert_non_null(th);
    assert_int_equal(WaitForSingleObject(th, 5000), WAIT_OBJECT_0);
    CloseHandle(th);
    assert_int_equal(t.rc, RQ_OK);
    /* the thread that took it is gone; the handle still holds the role */
    assert_int_equal(rq_plat_lock_probe(b, RQ_LOCK_CONSUMER), 1);
    assert_int_equal(rq_plat_lock(b, RQ_LOCK_CONSUMER, RQ_LOCK_TRY), RQ_EBUSY);
    /* and gives it up from another thread (this one) */
    rq_plat_unlock(a, RQ_LOCK_CONSUMER);
    assert_int_equal(rq_plat_lock(b, RQ_LOCK_CONSUMER, RQ_LOCK_TRY), RQ_OK);
    rq_plat_segment_close(b);
    rq_plat_segment_unmap(addr, SEG_SIZE);
    rq_plat_segment_close(a);
}

/* ---- the holder killed: TerminateProcess abandons its mutexes ---------- */

static int child_hold_role(const char *name)
{
    void *addr;
    rq_plat_segment *s = seg_attach(name, &addr);
    if (!s)
        return 1;
    if (rq_plat_lock(s, RQ_LOCK_CONSUMER, RQ_LOCK_TRY) != RQ_OK)
        return 2;
    if (rq_plat_lock(s, RQ_LOCK_PRODUCER, RQ_LOCK_TRY_SHARED) != RQ_OK)
        return 3;
    rq_store_release_u32((rq_atomic_u32 *)addr, 1); /* holding both */
    th_pause();
    return 0;
}

static void test_locks_dropped_when_holder_is_terminated(void **state)
{
    (void)state;
    const char *name = th_name("death");
    void *addr;
    rq_plat_segment *s = seg_create(name, &addr);
    th_pid pid = th_spawn("child_hold_role", name, 20);
    uint64_t until = th_now_ms() + 10000;
    while (rq_load_acquire_u32((rq_atomic_u32 *)addr) == 0) {
        assert_true(th_now_ms() < until);
        th_sleep_us(2000);
    }
    assert_int_equal(rq_plat_lock_probe(s, RQ_LOCK_CONSUMER), 1);
    assert_int_equal(rq_plat_lock_probe(s, RQ_LOCK_PRODUCER), 1); /* a shared holder */
    assert_int_equal(rq_plat_lock(s, RQ_LOCK_CONSUMER, RQ_LOCK_TRY), RQ_EBUSY);
    assert_int_equal(rq_plat_lock(s, RQ_LOCK_PRODUCER, RQ_LOCK_TRY), RQ_EBUSY);
    th_kill(pid);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_true(th_was_killed(status));
    /* at once: the abandoned mutex is an acquisition, the presence is gone */
    assert_int_equal(rq_plat_lock_probe(s, RQ_LOCK_PRODUCER), 0);
    assert_int_equal(rq_plat_lock(s, RQ_LOCK_CONSUMER, RQ_LOCK_TRY), RQ_OK);
    assert_int_equal(rq_plat_lock(s, RQ_LOCK_PRODUCER, RQ_LOCK_TRY), RQ_OK);
    rq_plat_segment_unmap(addr, SEG_SIZE);
    rq_plat_segment_close(s);
}

static void test_init_lock_abandoned_is_taken(void **state)
{
    (void)state;
    const char *name = th_name("init");
    void *addr;
    rq_plat_segment *s = seg_create(name, &addr);
    th_pid pid = th_spawn("child_take_init_and_die", name, 20);
    int status;
    assert_int_equal(th_wait(pid, 10000, &status), 0);
    assert_true(th_was_killed(status));
    assert_int_equal(rq_plat_lock(s, RQ_LOCK_INIT, RQ_LOCK_TRY), RQ_OK);
    rq_plat_unlock(s, RQ_LOCK_INIT);
    rq_plat_segment_unmap(addr, SEG_SIZE);
    rq_plat_segment_close(s);
}

static int child_take_init_and_die(const char *name)
{
    void *addr;
    rq_plat_segment *s = seg_attach(name, &addr);
    if (!s || rq_plat_lock(s, RQ_LOCK_INIT, RQ_LOCK_WAIT) != RQ_OK)
        return 1;
    rq_plat_kill_self();
    return 2;
}

/* ---- wait and wake --------------------------------------------------------- */

static void test_wait_times_out_and_sees_changed_word(void **state)
{
    (void)state;
    void *addr;
    rq_plat_segment *s = seg_create(th_name("wait"), &addr);
    rq_atomic_u32 *word = (rq_atomic_u32 *)((char *)addr + 64);
    rq_store_relaxed_u32(word, 7);
    assert_int_equal(rq_plat_wait(s, word, 8, RQ_INFINITE), RQ_OK); /* differs: no sleep */
    uint64_t t0 = th_now_ms();
    assert_int_equal(rq_plat_wait(s, word, 7, 50), RQ_ETIMEDOUT);
    assert_true(th_now_ms() - t0 >= 45);
    assert_int_equal(rq_plat_wait(s, word, 7, 0), RQ_ETIMEDOUT);
    assert_int_equal(rq_plat_wait(NULL, word, 7, 0), RQ_ESYS); /* events are per segment */
    rq_plat_segment_unmap(addr, SEG_SIZE);
    rq_plat_segment_close(s);
}

#define WAKE_WORD_OFFSET 128
#define WAITERS 4

/* Sleeps on the word until it moves from 0 (limit 5 s, far beyond the
 * wake), counts itself in the word next to it, and says how long it slept
 * in its exit status: 0 when woken well before the limit. */
static int child_wait_for_wake(const char *name)
{
    void *addr;
    rq_plat_segment *s = seg_attach(name, &addr);
    if (!s)
        return 1;
    rq_atomic_u32 *word = (rq_atomic_u32 *)((char *)addr + WAKE_WORD_OFFSET);
    rq_fetch_add_u32(word + 1, 1); /* about to sleep */
    uint64_t t0 = th_now_ms();
    int rc;
    do
        rc = rq_plat_wait(s, word, 0, 5000);
    while (rc == RQ_OK && rq_load_acquire_u32(word) == 0);
    if (rc != RQ_OK)
        return 2;
    return th_now_ms() - t0 < 4000 ? 0 : 3;
}

static void wake_waiters(int add_and_wake)
{
    const char *name = th_name(add_and_wake ? "addwake" : "wake");
    void *addr;
    rq_plat_segment *s = seg_create(name, &addr);
    rq_atomic_u32 *word = (rq_atomic_u32 *)((char *)addr + WAKE_WORD_OFFSET);
    th_pid pids[WAITERS];
    for (int i = 0; i < WAITERS; i++)
        pids[i] = th_spawn("child_wait_for_wake", name, 20);
    uint64_t until = th_now_ms() + 10000;
    while (rq_load_acquire_u32(word + 1) < WAITERS) {
        assert_true(th_now_ms() < until);
        th_sleep_us(2000);
    }
    th_sleep_us(200 * 1000); /* all of them asleep */
    if (add_and_wake) {
        assert_int_equal(rq_plat_add_and_wake(s, word, 2), RQ_OK);
        assert_int_equal(rq_load_acquire_u32(word), 2);
    } else {
        rq_fetch_add_u32(word, 1);
        rq_plat_wake(s, word, 1); /* one call releases every sleeper */
    }
    for (int i = 0; i < WAITERS; i++) {
        int status;
        assert_int_equal(th_wait(pids[i], 10000, &status), 0);
        if (!th_exited_ok(status))
            fail_msg("waiter %d: status %d (3: not woken, only timed out)", i, status);
    }
    rq_plat_segment_unmap(addr, SEG_SIZE);
    rq_plat_segment_close(s);
}

static void test_wake_all_releases_every_waiter_across_processes(void **state)
{
    (void)state;
    wake_waiters(0);
}

static void test_add_and_wake(void **state)
{
    (void)state;
    void *addr;
    rq_plat_segment *s = seg_create(th_name("add"), &addr);
    rq_atomic_u32 *word = (rq_atomic_u32 *)((char *)addr + 64);
    rq_store_relaxed_u32(word, 5);
    assert_int_equal(rq_plat_add_and_wake(s, word, 2), RQ_OK); /* no sleeper */
    assert_int_equal(rq_load_acquire_u32(word), 7);
    assert_int_equal(rq_plat_add_and_wake(s, word, 0), RQ_ESYS);
    assert_int_equal(rq_plat_add_and_wake(s, word, 4096), RQ_ESYS);
    assert_int_equal(rq_load_acquire_u32(word), 7);
    rq_plat_segment_unmap(addr, SEG_SIZE);
    rq_plat_segment_close(s);
    wake_waiters(1);
}

/* ---- the MPSC mutex --------------------------------------------------------- */

static int child_die_holding_mutex(const char *name)
{
    void *addr;
    rq_plat_segment *s = seg_attach(name, &addr);
    int recovered;
    if (!s || rq_plat_mutex_lock(s, RQ_INFINITE, &recovered) != RQ_OK)
        return 1;
    rq_plat_kill_self();
    return 2;
}

static void test_abandoned_mutex_is_a_normal_acquisition(void **state)
{
    (void)state;
    const char *name = th_name("mutex");
    void *addr;
    rq_plat_segment *s = seg_create(name, &addr);
    assert_int_equal(rq_plat_mutex_init(s), RQ_OK);
    int recovered = -1;
    assert_int_equal(rq_plat_mutex_lock(s, RQ_INFINITE, &recovered), RQ_OK);
    assert_int_equal(recovered, 0);
    rq_plat_mutex_unlock(s);
    for (int round = 0; round < 3; round++) {
        th_pid pid = th_spawn("child_die_holding_mutex", name, 10);
        int status;
        assert_int_equal(th_wait(pid, 10000, &status), 0);
        assert_true(th_was_killed(status));
        assert_int_equal(rq_plat_mutex_lock(s, RQ_INFINITE, &recovered), RQ_OK);
        assert_int_equal(recovered, 1); /* WAIT_ABANDONED */
        rq_plat_mutex_unlock(s);
        assert_int_equal(rq_plat_mutex_lock(s, RQ_INFINITE, &recovered), RQ_OK);
        assert_int_equal(recovered, 0); /* then WAIT_OBJECT_0 again */
        rq_plat_mutex_unlock(s);
    }
    rq_plat_segment_unmap(addr, SEG_SIZE);
    rq_plat_segment_close(s);
}

static int child_hold_mutex(const char *name)
{
    void *addr;
    rq_plat_segment *s = seg_attach(name, &addr);
    int recovered;
    if (!s || rq_plat_mutex_lock(s, RQ_INFINITE, &recovered) != RQ_OK)
        return 1;
    th_pause();
    return 0;
}

static void test_mutex_lock_honours_timeouts(void **state)
{
    (void)state;
    const char *name = th_name("mtime");
    void *addr;
    rq_plat_segment *s = seg_create(name, &addr);
    th_pid pid = th_spawn("child_hold_mutex", name, 20);
    int recovered, rc = RQ_OK;
    for (int i = 0; i < 5000; i++) { /* until the child holds it */
        rc = rq_plat_mutex_lock(s, 0, &recovered);
        if (rc != RQ_OK)
            break;
        rq_plat_mutex_unlock(s);
        th_sleep_us(1000);
    }
    assert_int_equal(rc, RQ_EAGAIN);
    uint64_t t0 = th_now_ms();
    assert_int_equal(rq_plat_mutex_lock(s, 60, &recovered), RQ_ETIMEDOUT);
    assert_true(th_now_ms() - t0 >= 55);
    th_kill(pid);
    int status;
    assert_int_equal(th_wait(pid, 5000, &status), 0);
    assert_int_equal(rq_plat_mutex_lock(s, 1000, &recovered), RQ_OK);
    assert_int_equal(recovered, 1); /* the timed path recovers too */
    rq_plat_mutex_unlock(s);
    rq_plat_segment_unmap(addr, SEG_SIZE);
    rq_plat_segment_close(s);
}

static void test_mutex_excludes_a_second_handle_of_the_same_thread(void **state)
{
    (void)state;
    const char *name = th_name("mrec");
    void *addr;
    rq_plat_segment *a = seg_create(name, &addr), *b;
    int created, recovered;
    assert_int_equal(rq_plat_segment_open(&b, "rq", name, 0, 0600, &created), RQ_OK);
    assert_int_equal(rq_plat_mutex_lock(a, 0, &recovered), RQ_OK);
    /* a Win32 mutex would let its owner thread in again; waiting for
     * ourselves would never end */
    assert_int_equal(rq_plat_mutex_lock(b, 0, &recovered), RQ_EDEADLK);
    assert_int_equal(rq_plat_mutex_lock(b, 30, &recovered), RQ_EDEADLK);
    assert_int_equal(rq_plat_mutex_lock(b, RQ_INFINITE, &recovered), RQ_EDEADLK);
    rq_plat_mutex_unlock(b); /* not held by b: no effect */
    assert_int_equal(rq_plat_mutex_lock(b, 0, &recovered), RQ_EDEADLK);
    rq_plat_mutex_unlock(a);
    assert_int_equal(rq_plat_mutex_lock(b, 0, &recovered), RQ_OK);
    rq_plat_mutex_unlock(b);
    rq_plat_segment_close(b);
    rq_plat_segment_unmap(addr, SEG_SIZE);
    rq_plat_segment_close(a);
}

static void test_clock_and_pid(void **state)
{
    (void)state;
    uint64_t a = rq_plat_now_ms();
    th_sleep_us(20 * 1000);
    uint64_t b = rq_plat_now_ms();
    assert_true(b >= a + 15);
    assert_int_equal(rq_plat_pid(), (int64_t)GetCurrentProcessId());
}

/* The objects of a new segment get an explicit descriptor owned by this
 * user; they pass this user's owner check, and so does the queue API. */
static void test_own_objects_pass_the_owner_check(void **state)
{
    (void)state;
    const char *name = th_name("own");
    void *a;
    rq_plat_segment *s = seg_create(name, &a);
    rq_plat_segment *b;
    int created;
    assert_int_equal(rq_plat_segment_open(&b, "rq", name, RQ_PLAT_CHECKED, 0600, &created), RQ_OK);
    rq_plat_segment_close(b);
    rq_plat_segment_unmap(a, SEG_SIZE);
    rq_plat_segment_close(s);
    rq *q;
    rq_config cfg = {4, 64, 0, 0644};
    assert_int_equal(rq_open(&q, th_name("ownq"), RQ_PRODUCER, &cfg), RQ_OK);
    rq_close(q);
}

/* A mapping whose owner is another account (the Guests group, set through
 * its descriptor) is refused by a checked open, accepted with
 * RQ_PLAT_ANY_OWNER.  If the OS (Wine) does not keep the owner asked for,
 * the refusal cannot be shown here: the test says so and checks the rest. */
static void test_foreign_mapping_is_refused(void **state)
{
    (void)state;
    const char *name = th_name("foreign");
    wchar_t wname[300];
    swprintf(wname, 300, L"Local\\rq.%hs", name);
    PSECURITY_DESCRIPTOR sd;
    assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorW(L"O:BGD:(A;;GA;;;WD)",
                                                                     SDDL_REVISION_1, &sd, NULL));
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, &sa, PAGE_READWRITE | SEC_COMMIT, 0,
                                  SEG_SIZE, wname);
    LocalFree(sd);
    assert_non_null(h);
    PSID owner = NULL;
    PSECURITY_DESCRIPTOR got = NULL;
    int kept = GetSecurityInfo(h, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION, &owner, NULL, NULL,
                               NULL, &got) == ERROR_SUCCESS &&
               owner && IsWellKnownSid(owner, WinBuiltinGuestsSid);
    LocalFree(got);
    rq_plat_segment *s;
    int created;
    int rc = rq_plat_segment_open(&s, "rq", name, RQ_PLAT_CHECKED, 0600, &created);
    if (kept) {
        assert_int_equal(rc, RQ_EOWNER);
    } else {
        print_message("test_foreign_mapping_is_refused: this OS did not keep the owner asked "
                      "for (Wine); the refusal is not shown here\n");
        if (rc == RQ_OK)
            rq_plat_segment_close(s);
    }
    assert_int_equal(
        rq_plat_segment_open(&s, "rq", name, RQ_PLAT_CHECKED | RQ_PLAT_ANY_OWNER, 0600, &created),
        RQ_OK);
    rq_plat_segment_close(s);
    CloseHandle(h);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_CHILD(child_hold_role),     TH_CHILD(child_take_init_and_die),
        TH_CHILD(child_wait_for_wake), TH_CHILD(child_die_holding_mutex),
        TH_CHILD(child_hold_mutex),
    };
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segment_open_create_size_map),
        cmocka_unit_test(test_locks_belong_to_handles),
        cmocka_unit_test(test_busy_sets_the_last_error),
        cmocka_unit_test(test_role_follows_the_handle_not_the_thread),
        cmocka_unit_test(test_locks_dropped_when_holder_is_terminated),
        cmocka_unit_test(test_init_lock_abandoned_is_taken),
        cmocka_unit_test(test_wait_times_out_and_sees_changed_word),
        cmocka_unit_test(test_wake_all_releases_every_waiter_across_processes),
        cmocka_unit_test(test_add_and_wake),
        cmocka_unit_test(test_abandoned_mutex_is_a_normal_acquisition),
        cmocka_unit_test(test_mutex_lock_honours_timeouts),
        cmocka_unit_test(test_mutex_excludes_a_second_handle_of_the_same_thread),
        cmocka_unit_test(test_clock_and_pid),
        cmocka_unit_test(test_own_objects_pass_the_owner_check),
        cmocka_unit_test(test_foreign_mapping_is_refused),
    };
    return cmocka_run_group_tests_name("platform_win", tests, NULL, NULL);
}
