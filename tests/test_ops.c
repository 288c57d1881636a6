/*
 * test_ops.c - operations around a queue's life: an unlink that cannot
 * silently split a queue (RQ_EUNLINKED, rq_stats.unlinked, the kept lock
 * object), read-only observers, an open that waits for the queue to be
 * created, and learning the geometry behind RQ_EEXIST.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fault.h"
#include "helpers.h"
#include "rq.h"

#ifndef _WIN32
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

/* A wait notices an unlinked queue at its next re-check, a second at most
 * after it began; the bound leaves room for a loaded machine. */
#define NOTICE_MS 2500

#ifndef _WIN32

static int lock_object_exists(const char *name)
{
    char path[300];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/rql.%s", name);
    return stat(path, &st) == 0;
}

/* The handles of the unlinked-object tests below, closed by their
 * teardown when a failed assertion (a timing one under load) skips the
 * test's own closes: the last close removes the lock object of the
 * unlinked queue, which a run otherwise leaves in /dev/shm
 * (rql.t.PID.0.orphan). */
static rq *open_queues[2];
static rq_coalesce *open_worker;

static int close_what_is_open(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof open_queues / sizeof *open_queues; i++) {
        if (open_queues[i])
            rq_close(open_queues[i]);
        open_queues[i] = NULL;
    }
    if (open_worker)
        rq_coalesce_close(open_worker);
    open_worker = NULL;
    return 0;
}

/* A consumer (and a producer with a full queue) waiting on a queue that
 * is unlinked under it is told within a re-check, not left waiting. */
static void test_waits_on_an_unlinked_queue_return_eunlinked(void **state)
{
    (void)state;
    const char *name = th_name("orphan");
    rq_unlink(name);
    rq *p = open_queues[0] = th_open(name, RQ_PRODUCER, 1, 16, 0);
    rq *c = open_queues[1] = th_open(name, RQ_CONSUMER, 1, 16, 0);
    rq_stats st;
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.unlinked, 0);
    assert_int_equal(rq_unlink(name), RQ_OK);
    assert_int_equal(rq_stat(c, &st), RQ_OK);
    assert_int_equal(st.unlinked, 1);

    char buf[16];
    size_t len;
    const void *msg;
    uint64_t t0 = th_now_ms();
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 5000), RQ_EUNLINKED);
    assert_true(th_now_ms() - t0 < NOTICE_MS);
    t0 = th_now_ms();
    assert_int_equal(rq_peek(c, &msg, &len, RQ_INFINITE), RQ_EUNLINKED);
    assert_true(th_now_ms() - t0 < NOTICE_MS);

    /* Work already there is still done: the check is only for waits. */
    assert_int_equal(rq_push(p, "x", 1, 0), RQ_OK);
    assert_int_equal(rq_push(p, "y", 1, 0), RQ_EAGAIN); /* full, no wait */
    t0 = th_now_ms();
    assert_int_equal(rq_push(p, "y", 1, 5000), RQ_EUNLINKED);
    assert_true(th_now_ms() - t0 < NOTICE_MS);
    void *slot;
    assert_int_equal(rq_reserve(p, &slot, RQ_INFINITE), RQ_EUNLINKED);
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 5000), RQ_OK);
    assert_int_equal(rq_stat(p, &st), RQ_OK);
    assert_int_equal(st.unlinked, 1);
    /* A short wait that ends before any re-check just times out. */
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 20), RQ_ETIMEDOUT);
    close_what_is_open(NULL);
}

/* While handles of the unlinked queue hold a role, its lock object stays
 * and a new creator under the name is refused; once they close, the
 * name is free again. */
static void test_create_beside_an_unlinked_live_queue_is_refused(void **state)
{
    (void)state;
    const char *name = th_name("split");
    rq_unlink(name);
    rq *c = th_open(name, RQ_CONSUMER, 4, 16, 0);
    assert_int_equal(rq_unlink(name), RQ_OK);
    assert_true(lock_object_exists(name));
    rq *p = NULL;
    rq_config cfg = {4, 16, 0, 0};
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, &cfg), RQ_EUNLINKED);
    assert_null(p);
    assert_false(th_raw_exists("rq", name)); /* the refused create left nothing */
    rq *o = NULL;
    assert_int_equal(rq_open(&o, name, RQ_OBSERVER, &cfg), RQ_EUNLINKED);
    rq_close(c);
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, &cfg), RQ_OK);
    assert_int_equal(rq_push(p, "new", 3, 0), RQ_OK);
    rq_close(p);
    assert_int_equal(rq_unlink(name), RQ_OK);
    assert_false(lock_object_exists(name)); /* nobody held a lock: removed */
}

/* Unlinking a queue nobody holds a role of removes both objects, and an
 * observer (which holds no lock) does not keep the lock object. */
static void test_unlink_without_roles_removes_the_lock_object(void **state)
{
    (void)state;
    const char *name = th_name("nolocks");
    rq_unlink(name);
    rq *o = th_open(name, RQ_OBSERVER, 2, 8, 0);
    rq *watch = NULL;
    assert_int_equal(rq_open(&watch, name, RQ_OBSERVER, NULL), RQ_OK);
    assert_int_equal(rq_unlink(name), RQ_OK);
    assert_false(lock_object_exists(name));
    rq_stats st;
    assert_int_equal(rq_stat(watch, &st), RQ_OK);
    assert_int_equal(st.unlinked, 1);
    rq_close(watch);
    rq_close(o);
}

static int coalesce_lock_object_exists(const char *name)
{
    char path[300];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm/rqcl.%s", name);
    return stat(path, &st) == 0;
}

/* The lock object kept by an unlink while roles were held goes with the
 * last close that holds none: nothing of the queue is left behind. */
static void test_last_close_of_an_unlinked_queue_removes_its_lock_object(void **state)
{
    (void)state;
    const char *name = th_name("lastclose");
    rq *p = th_open(name, RQ_PRODUCER, 2, 8, RQ_MPSC);
    rq *p2 = th_open(name, RQ_PRODUCER, 2, 8, RQ_MPSC);
    rq *c = th_open(name, RQ_CONSUMER, 2, 8, RQ_MPSC);
    assert_int_equal(rq_unlink(name), RQ_OK);
    assert_true(lock_object_exists(name)); /* roles held: kept */
    rq_close(p);
    assert_true(lock_object_exists(name)); /* p2 and c still hold theirs */
    rq_close(c);
    assert_true(lock_object_exists(name));
    rq_close(p2);
    assert_false(lock_object_exists(name));

    /* A still linked queue keeps it, whoever closes. */
    p = th_open(name, RQ_PRODUCER, 2, 8, 0);
    rq_close(p);
    assert_true(lock_object_exists(name));
    assert_int_equal(rq_unlink(name), RQ_OK);
    assert_false(lock_object_exists(name));

    /* A coalescing object the same. */
    rq_coalesce *w;
    assert_int_equal(rq_coalesce_open(&w, name, RQ_CONSUMER, 0), RQ_OK);
    assert_int_equal(rq_coalesce_unlink(name), RQ_OK);
    assert_true(coalesce_lock_object_exists(name));
    rq_coalesce_close(w);
    assert_false(coalesce_lock_object_exists(name));
}

#ifdef RQ_FAULT_INJECTION
static void close_queue(void *arg)
{
    rq_close(arg);
}

/* The last close of the old queue removes the lock object just after a
 * creator of a new queue opened it and just before it takes the init lock
 * there: the creator must notice (the object is unlinked) and open the
 * name again, or its role would be held in an object no later opener
 * sees, and a second producer would get in beside it. */
static void test_a_creator_racing_the_last_close_opens_again(void **state)
{
    (void)state;
    const char *name = th_name("closerace");
    rq *old = th_open(name, RQ_PRODUCER, 2, 8, 0);
    assert_int_equal(rq_unlink(name), RQ_OK);
    assert_true(lock_object_exists(name));
    rq_fault_reset();
    rq_fault_before(rq_fault_lookup("fcntl"), 1, close_queue, old);
    rq *p = th_open(name, RQ_PRODUCER, 2, 8, 0);
    rq_fault_reset();
    assert_true(lock_object_exists(name)); /* a new one: p's */
    rq *p2 = NULL;
    assert_int_equal(rq_open(&p2, name, RQ_PRODUCER, NULL), RQ_EBUSY);
    rq_close(p);
    assert_int_equal(rq_open(&p2, name, RQ_PRODUCER, NULL), RQ_OK);
    rq_close(p2);
    assert_int_equal(rq_unlink(name), RQ_OK);
    assert_false(lock_object_exists(name));
}
#endif

#ifdef RQ_FAULT_INJECTION
/* Each OS call of that last close failed in turn (fault injection): the
 * close still closes (nothing to report: it returns void), and the lock
 * object is kept, never half-removed; the first run with no failure left
 * removes it. */
static void test_last_close_with_failing_calls_keeps_the_lock_object(void **state)
{
    (void)state;
    const char *name = th_name("lastfault");
    char path[300];
    snprintf(path, sizeof path, "/rql.%s", name);
    for (unsigned long n = 1;; n++) {
        if (n > 50)
            fail_msg("the last close made more than 50 OS calls");
        rq *p = th_open(name, RQ_PRODUCER, 2, 8, 0);
        assert_int_equal(rq_unlink(name), RQ_OK);
        rq_fault_reset();
        rq_fault_arm(-1, n, 5 /* EIO */);
        rq_close(p);
        int hit = rq_fault_injected() > 0;
        rq_fault_reset();
        if (!hit) {
            assert_false(lock_object_exists(name));
            print_message("last close: %lu OS calls failed in turn, object kept each time\n",
                          n - 1);
            return;
        }
        assert_true(lock_object_exists(name));
        shm_unlink(path); /* the test's own cleanup of the kept object */
    }
}
#endif

/* The same for a coalescing object: its idle worker is told, and a new
 * object is refused while the old worker is open. */
static void test_coalescing_worker_of_an_unlinked_object_is_told(void **state)
{
    (void)state;
    const char *name = th_name("corphan");
    rq_coalesce_unlink(name);
    rq_coalesce *w = NULL, *again = NULL;
    assert_int_equal(rq_coalesce_open(&w, name, RQ_CONSUMER, 0), RQ_OK);
    open_worker = w;
    assert_int_equal(rq_coalesce_unlink(name), RQ_OK);
    assert_int_equal(rq_coalesce_open(&again, name, RQ_PRODUCER, 0), RQ_EUNLINKED);
    uint64_t ticket, t0 = th_now_ms();
    assert_int_equal(rq_coalesce_wait(w, &ticket, 5000), RQ_EUNLINKED);
    assert_true(th_now_ms() - t0 < NOTICE_MS);
    close_what_is_open(NULL);
    assert_int_equal(rq_coalesce_open(&again, name, RQ_PRODUCER, 0), RQ_OK);
    rq_coalesce_close(again);
    assert_int_equal(rq_coalesce_unlink(name), RQ_OK);
}

/* An attaching observer maps the segment read-only ("r--s" in
 * /proc/self/maps), even as root, who could write. */
static int mapping_perms(const char *name, char perms[5])
{
    char want[300], line[512];
    snprintf(want, sizeof want, "/dev/shm/rq.%s", name);
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        size_t n = strlen(line), w = strlen(want);
        if (n >= w && strcmp(line + n - w, want) == 0 && sscanf(line, "%*s %4s", perms) == 1) {
            found = 1;
            break;
        }
    }
    fclose(f);
    return found ? 0 : -1;
}

static void test_observer_maps_read_only(void **state)
{
    (void)state;
    const char *name = th_name("ro");
    rq_unlink(name);
    rq *c = th_open(name, RQ_CONSUMER, 2, 8, 0);
    rq_close(c);
    rq *o = NULL;
    assert_int_equal(rq_open(&o, name, RQ_OBSERVER, NULL), RQ_OK);
    char perms[5] = "";
    assert_int_equal(mapping_perms(name, perms), 0);
    assert_string_equal(perms, "r--s");
    rq_stats st;
    assert_int_equal(rq_stat(o, &st), RQ_OK);
    assert_int_equal(st.slot_count, 2);
    assert_int_equal(st.consumer_live, 0); /* root may read the lock object */
    c = th_open(name, RQ_CONSUMER, 2, 8, 0);
    assert_int_equal(rq_stat(o, &st), RQ_OK);
    assert_int_equal(st.consumer_live, 1);
    assert_int_equal(st.consumer_pid, th_getpid());
    rq_close(c);
    rq_close(o);
    rq_unlink(name);
}

#endif /* !_WIN32 */

/* ---- start-up order ----------------------------------------------------- */

static int child_create_later(const char *name)
{
    th_sleep_us(300 * 1000);
    rq *p;
    rq_config cfg = {8, 32, 0, 0};
    if (rq_open(&p, name, RQ_PRODUCER, &cfg) != RQ_OK)
        return 1;
    if (rq_push(p, "hello", 5, 0) != RQ_OK)
        return 2;
    th_sleep_us(3000 * 1000); /* Windows: the queue lives while it is open */
    rq_close(p);
    return 0;
}

static void test_open_wait_waits_for_the_creator(void **state)
{
    (void)state;
    const char *name = th_name("later");
    rq_unlink(name);
    rq *c = NULL;
    /* Nothing there: at once without waiting, after the time with it. */
    assert_int_equal(rq_open_wait(&c, name, RQ_CONSUMER, NULL, 0), RQ_ENOENT);
    uint64_t t0 = th_now_ms();
    assert_int_equal(rq_open_wait(&c, name, RQ_CONSUMER, NULL, 150), RQ_ENOENT);
    assert_true(th_now_ms() - t0 >= 150);
    assert_null(c);
    assert_int_equal(rq_open_wait(&c, name, RQ_CONSUMER, NULL, -2), RQ_EINVAL);

    th_pid pid = th_spawn("child_create_later", name, 30);
    t0 = th_now_ms();
    assert_int_equal(rq_open_wait(&c, name, RQ_CONSUMER, NULL, 20000), RQ_OK);
    uint64_t took = th_now_ms() - t0;
    assert_true(took >= 200 && took < 10000);
    char buf[32];
    size_t len;
    assert_int_equal(rq_pop(c, buf, sizeof buf, &len, 5000), RQ_OK);
    assert_int_equal(len, 5);
    int status;
    assert_int_equal(th_wait(pid, 20000, &status), 0);
    assert_true(th_exited_ok(status));
    rq_close(c);
    /* A creating config never waits: it creates. */
    rq_unlink(name);
    rq_config cfg = {8, 32, 0, 0};
    assert_int_equal(rq_open_wait(&c, name, RQ_PRODUCER, &cfg, 20000), RQ_OK);
    rq_close(c);
    rq_unlink(name);
}

/* RQ_EEXIST: an observer with no config learns the existing geometry. */
static void test_eexist_geometry_is_told_by_an_observer(void **state)
{
    (void)state;
    const char *name = th_name("geom");
    rq_unlink(name);
    rq *keep = th_open(name, RQ_OBSERVER, 16, 100, RQ_MPSC);
    rq *q = NULL;
    rq_config other = {8, 100, 0, 0};
    assert_int_equal(rq_open(&q, name, RQ_PRODUCER, &other), RQ_EEXIST);
    assert_int_equal(rq_open(&q, name, RQ_OBSERVER, NULL), RQ_OK);
    rq_stats st;
    assert_int_equal(rq_stat(q, &st), RQ_OK);
    assert_int_equal(st.slot_count, 16);
    assert_int_equal(st.slot_size, 100);
    assert_true(st.flags & RQ_MPSC);
    rq_close(q);
    rq_close(keep);
    rq_unlink(name);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_CHILD(child_create_later),
    };
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
#ifndef _WIN32
        cmocka_unit_test_teardown(test_waits_on_an_unlinked_queue_return_eunlinked,
                                  close_what_is_open),
        cmocka_unit_test(test_create_beside_an_unlinked_live_queue_is_refused),
        cmocka_unit_test(test_unlink_without_roles_removes_the_lock_object),
        cmocka_unit_test(test_last_close_of_an_unlinked_queue_removes_its_lock_object),
#ifdef RQ_FAULT_INJECTION
        cmocka_unit_test(test_a_creator_racing_the_last_close_opens_again),
        cmocka_unit_test(test_last_close_with_failing_calls_keeps_the_lock_object),
#endif
        cmocka_unit_test_teardown(test_coalescing_worker_of_an_unlinked_object_is_told,
                                  close_what_is_open),
        cmocka_unit_test(test_observer_maps_read_only),
#endif
        cmocka_unit_test(test_open_wait_waits_for_the_creator),
        cmocka_unit_test(test_eexist_geometry_is_told_by_an_observer),
    };
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
