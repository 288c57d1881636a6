/*
 * test_fork.c - a handle used in a fork()ed child (POSIX only).
 *
 * A child of fork() inherits its parent's mapping and descriptors, but the
 * roles and locks behind them stay the parent's: a parent and a child
 * pushing through one SPSC handle would both write the same slots.  Every
 * call on such a handle returns RQ_EFORK; closing it leaves the parent's
 * queue as it was.  The child (here) reports through its exit status.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"
#include "rq.h"

/* Runs FN in a fork()ed child; returns its exit status (0: all as expected,
 * else the number of the first check that failed). */
static int in_child(int (*fn)(void *), void *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn(arg));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

struct pair {
    rq *producer, *consumer;
};

static int child_uses_inherited_handles(void *arg)
{
    struct pair *p = arg;
    char buf[64];
    size_t len;
    const void *msg;
    void *slot;
    rq_stats st;
    if (rq_push(p->producer, "child", 5, 0) != RQ_EFORK)
        return 1;
    if (rq_reserve(p->producer, &slot, 0) != RQ_EFORK)
        return 2;
    if (rq_commit(p->producer, 1) != RQ_EFORK)
        return 3;
    if (rq_pop(p->consumer, buf, sizeof buf, &len, 0) != RQ_EFORK)
        return 4;
    if (rq_peek(p->consumer, &msg, &len, 0) != RQ_EFORK)
        return 5;
    if (rq_release(p->consumer) != RQ_EFORK)
        return 6;
    if (rq_stat(p->consumer, &st) != RQ_EFORK)
        return 7;
    /* Closing them here must not touch the parent's roles. */
    rq_close(p->producer);
    rq_close(p->consumer);
    return 0;
}

static void test_inherited_queue_handles_refuse_every_call(void **state)
{
    (void)state;
    const char *name = th_name("fork");
    struct pair p;
    p.producer = th_open(name, RQ_PRODUCER, 8, 64, 0);
    p.consumer = th_open(name, RQ_CONSUMER, 8, 64, 0);
    assert_int_equal(rq_push(p.producer, "before", 6, 0), RQ_OK);

    assert_int_equal(in_child(child_uses_inherited_handles, &p), 0);

    /* The parent's handles work on, and nothing was added or taken. */
    rq_stats st;
    assert_int_equal(rq_stat(p.consumer, &st), RQ_OK);
    assert_int_equal(st.depth, 1);
    assert_true(st.producer_live && st.consumer_live);
    assert_int_equal(rq_push(p.producer, "after", 5, 0), RQ_OK);
    char buf[64];
    size_t len;
    assert_int_equal(rq_pop(p.consumer, buf, sizeof buf, &len, 0), RQ_OK);
    assert_memory_equal(buf, "before", 6);
    assert_int_equal(rq_pop(p.consumer, buf, sizeof buf, &len, 0), RQ_OK);
    assert_memory_equal(buf, "after", 5);
    rq_close(p.producer);
    rq_close(p.consumer);
    assert_int_equal(rq_unlink(name), RQ_OK);
}

/* In the middle of a call pair at the fork: the producer holding a
 * reservation, the consumer a peek.  The child's commit and release must
 * be refused too (each kind of handle, each state the single calls take
 * their short way from). */
static int child_finishes_inherited_holds(void *arg)
{
    struct pair *p = arg;
    const void *msg;
    size_t len;
    if (rq_commit(p->producer, 1) != RQ_EFORK)
        return 1;
    if (rq_release(p->consumer) != RQ_EFORK)
        return 2;
    if (rq_peek(p->consumer, &msg, &len, 0) != RQ_EFORK)
        return 3;
    return 0;
}

static void test_inherited_holds_are_refused_too(void **state)
{
    (void)state;
    for (int records = 0; records <= 1; records++) {
        const char *name = th_name(records ? "forkrec" : "forkhold");
        struct pair p;
        uint32_t flags = records ? RQ_RECORDS : 0;
        p.producer = th_open(name, RQ_PRODUCER, records ? 1024 : 8, 64, flags);
        p.consumer = th_open(name, RQ_CONSUMER, records ? 1024 : 8, 64, flags);
        assert_int_equal(rq_push(p.producer, "first", 5, 0), RQ_OK);
        const void *msg;
        size_t len;
        assert_int_equal(rq_peek(p.consumer, &msg, &len, 0), RQ_OK);
        void *slot;
        assert_int_equal(rq_reserve_len(p.producer, 6, &slot, 0), RQ_OK);
        memcpy(slot, "second", 6);

        assert_int_equal(in_child(child_finishes_inherited_holds, &p), 0);

        /* The parent's holds are still its own, and nothing moved. */
        assert_int_equal(rq_release(p.consumer), RQ_OK);
        assert_int_equal(rq_commit(p.producer, 6), RQ_OK);
        char buf[64];
        assert_int_equal(rq_pop(p.consumer, buf, sizeof buf, &len, 0), RQ_OK);
        assert_int_equal(len, 6);
        assert_memory_equal(buf, "second", 6);
        assert_int_equal(rq_pop(p.consumer, buf, sizeof buf, &len, 0), RQ_EAGAIN);
        rq_close(p.producer);
        rq_close(p.consumer);
        assert_int_equal(rq_unlink(name), RQ_OK);
    }
}

static int child_opens_its_own(void *arg)
{
    const char *name = arg;
    rq *c = NULL;
    /* The parent still holds the consumer role. */
    if (rq_open(&c, name, RQ_CONSUMER, NULL) != RQ_EBUSY)
        return 1;
    rq *p = NULL;
    if (rq_open(&p, name, RQ_PRODUCER, NULL) != RQ_OK)
        return 2;
    if (rq_push(p, "from child", 10, 0) != RQ_OK)
        return 3;
    rq_close(p);
    return 0;
}

static void test_a_child_opens_its_own_handle(void **state)
{
    (void)state;
    const char *name = th_name("forkown");
    rq *consumer = th_open(name, RQ_CONSUMER, 8, 64, 0);
    assert_int_equal(in_child(child_opens_its_own, (void *)name), 0);
    char buf[64];
    size_t len;
    assert_int_equal(rq_pop(consumer, buf, sizeof buf, &len, 1000), RQ_OK);
    assert_int_equal(len, 10);
    assert_memory_equal(buf, "from child", 10);
    rq_close(consumer);
    assert_int_equal(rq_unlink(name), RQ_OK);
}

static int child_closes_inherited_producer(void *arg)
{
    rq_close(arg);
    return 0;
}

struct pusher {
    const char *name;
    int rc;
};

static void *push_from_another_thread(void *arg)
{
    struct pusher *p = arg;
    rq *q = NULL;
    p->rc = rq_open(&q, p->name, RQ_PRODUCER, NULL);
    if (p->rc == RQ_OK)
        p->rc = rq_push(q, "other", 5, 300);
    rq_close(q);
    return NULL;
}

/* The child shares its parent's open file descriptions, so an unlock made
 * by the child's rq_close would drop the parent's producer slot: another
 * producer would then take the parent for dead and steal the lock the
 * parent holds. */
static void test_a_child_closing_an_mpsc_producer_keeps_the_parents_lock(void **state)
{
    (void)state;
    const char *name = th_name("forkmpsc");
    rq *producer = th_open(name, RQ_PRODUCER, 8, 64, RQ_MPSC);
    assert_int_equal(in_child(child_closes_inherited_producer, producer), 0);
    void *slot;
    assert_int_equal(rq_reserve(producer, &slot, 0), RQ_OK); /* holds the lock */
    struct pusher other = {name, 99};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, push_from_another_thread, &other), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(other.rc, RQ_ELOCKED); /* the parent is alive: wait */
    memcpy(slot, "mine", 4);
    assert_int_equal(rq_commit(producer, 4), RQ_OK);
    rq_stats st;
    assert_int_equal(rq_stat(producer, &st), RQ_OK);
    assert_int_equal(st.lock_recoveries, 0);
    assert_int_equal(st.depth, 1);
    rq_close(producer);
    assert_int_equal(rq_unlink(name), RQ_OK);
}

static int child_uses_inherited_coalescer(void *arg)
{
    rq_coalesce **h = arg;
    uint64_t ticket;
    rq_coalesce_stats st;
    if (rq_coalesce_request(h[0]) != RQ_EFORK)
        return 1;
    if (rq_coalesce_wait(h[1], &ticket, 0) != RQ_EFORK)
        return 2;
    if (rq_coalesce_done(h[1], 1) != RQ_EFORK)
        return 3;
    if (rq_coalesce_stat(h[1], &st) != RQ_EFORK)
        return 4;
    rq_coalesce_close(h[0]);
    rq_coalesce_close(h[1]); /* must not mark the parent's worker detached */
    return 0;
}

static void test_inherited_coalescing_handles_refuse_every_call(void **state)
{
    (void)state;
    const char *name = th_name("forkc");
    rq_coalesce *h[2];
    assert_int_equal(rq_coalesce_open(&h[0], name, RQ_PRODUCER, 0), RQ_OK);
    assert_int_equal(rq_coalesce_open(&h[1], name, RQ_CONSUMER, 0), RQ_OK);
    assert_int_equal(in_child(child_uses_inherited_coalescer, h), 0);
    rq_coalesce_stats st;
    assert_int_equal(rq_coalesce_stat(h[0], &st), RQ_OK);
    assert_int_equal(st.requests, 0);
    assert_true(st.worker_live);
    assert_int_equal(rq_coalesce_request(h[0]), RQ_OK);
    uint64_t ticket;
    assert_int_equal(rq_coalesce_wait(h[1], &ticket, 0), RQ_OK);
    assert_int_equal(rq_coalesce_done(h[1], ticket), RQ_OK);
    rq_coalesce_close(h[1]);
    /* The worker closed cleanly in this process: a new one is no takeover. */
    rq_coalesce *w;
    assert_int_equal(rq_coalesce_open(&w, name, RQ_CONSUMER, 0), RQ_OK);
    assert_int_equal(rq_coalesce_stat(w, &st), RQ_OK);
    assert_int_equal(st.takeovers, 0);
    rq_coalesce_close(w);
    rq_coalesce_close(h[0]);
    assert_int_equal(rq_coalesce_unlink(name), RQ_OK);
}

int main(int argc, char **argv)
{
    /* The harness: each queue this program names (th_name) and leaves
     * behind, when a test fails before its unlink, is removed at exit and
     * fails the run. */
    static const struct th_child children[] = {{"none", NULL}};
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inherited_queue_handles_refuse_every_call),
        cmocka_unit_test(test_inherited_holds_are_refused_too),
        cmocka_unit_test(test_a_child_opens_its_own_handle),
        cmocka_unit_test(test_inherited_coalescing_handles_refuse_every_call),
        cmocka_unit_test(test_a_child_closing_an_mpsc_producer_keeps_the_parents_lock),
    };
    return cmocka_run_group_tests_name("fork", tests, NULL, NULL);
}
