/*
 * test_poll.c - event-loop integration (rq_poll_handle, rq_poll_timeout):
 * the object is ready exactly when this side can make progress after an
 * RQ_EAGAIN armed it, on both sides, level- and edge-triggered, with many
 * queues in one epoll set; a peer killed around its signal is covered by
 * its restart and by the bounded wait; a poller killed while armed costs
 * its peer nothing; the new OS calls fail cleanly.  Built twice: as
 * test_poll on slot queues, and with POLL_RECORDS as test_poll_records on
 * record queues (RQ_RECORDS), which wait and signal through the same code.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifdef _WIN32
#include <windows.h>
#else
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "crashpoint.h"
#include "fault.h"
#include "helpers.h"
#include "rq.h"

#define SLOTS 8
#define SLOT_SIZE 64

#ifdef POLL_RECORDS
/* Every message here is 8 bytes: a record of 16 with its header, so a
 * capacity of 16 bytes per slot is full after as many messages as the
 * slot ring (and never needs a padding record). */
#define QUEUE_SLOTS(n) ((uint32_t)(n)*16u)
#define QUEUE_SLOT_SIZE 8u
#define QUEUE_KIND RQ_RECORDS
#else
#define QUEUE_SLOTS(n) ((uint32_t)(n))
#define QUEUE_SLOT_SIZE SLOT_SIZE
#define QUEUE_KIND 0u
#endif

/* A queue of this build's kind that holds SLOTS 8-byte messages. */
static rq *make_queue(const char *name, uint32_t slots, uint32_t flags)
{
    return th_create(name, QUEUE_SLOTS(slots), QUEUE_SLOT_SIZE, flags | QUEUE_KIND);
}

/* 1 if H becomes ready within MS milliseconds, else 0. */
static int ready_within(rq_pollable h, int ms)
{
#ifdef _WIN32
    DWORD r = WaitForSingleObject(h, (DWORD)ms);
    assert_true(r == WAIT_OBJECT_0 || r == WAIT_TIMEOUT);
    return r == WAIT_OBJECT_0;
#else
    struct pollfd p = {h, POLLIN, 0};
    int n = poll(&p, 1, ms);
    assert_true(n >= 0);
    return n == 1 && (p.revents & POLLIN);
#endif
}

static rq_pollable handle_of(rq *q)
{
    rq_pollable h;
    assert_int_equal(rq_poll_handle(q, &h), RQ_OK);
    rq_pollable again;
    assert_int_equal(rq_poll_handle(q, &again), RQ_OK);
    assert_true(h == again);
    return h;
}

static int pop0(rq *c, uint64_t *value)
{
    size_t len;
    uint64_t v = 0;
    int rc = rq_pop(c, &v, sizeof v, &len, 0);
    if (value)
        *value = v;
    return rc;
}

static void test_consumer_contract(void **state)
{
    (void)state;
    for (int fences = 0; fences < 2; fences++) {
        const char *name = th_name("pollc");
        rq *keep = make_queue(name, SLOTS, fences ? RQ_FULL_FENCES : 0);
        rq *p = th_open(name, RQ_PRODUCER, 0, 0, 0);
        rq *c = th_open(name, RQ_CONSUMER, 0, 0, 0);
        assert_int_equal(rq_poll_timeout(c), RQ_ESTATE); /* no handle yet */
        rq_record_stats rs;                              /* this build's kind of queue */
        assert_int_equal(rq_stat_records(c, &rs), QUEUE_KIND ? RQ_OK : RQ_EINVAL);
        rq_pollable h = handle_of(c);
        assert_int_equal(pop0(c, NULL), RQ_EAGAIN); /* arms */
        assert_false(ready_within(h, 20));
        assert_true(rq_poll_timeout(c) > 0);
        uint64_t v = 7;
        assert_int_equal(rq_push(p, &v, sizeof v, 0), RQ_OK);
        /* Published after the RQ_EAGAIN, before the wait: ready at once. */
        assert_true(ready_within(h, 0));
        assert_true(ready_within(h, 0)); /* level: stays ready */
        assert_int_equal(pop0(c, &v), RQ_OK);
        assert_int_equal(v, 7);
        assert_int_equal(pop0(c, NULL), RQ_EAGAIN); /* drains and re-arms */
        assert_false(ready_within(h, 20));
        /* A busy producer pays one signal per arming, not per message. */
        rq_stats before, after;
        assert_int_equal(rq_stat(p, &before), RQ_OK);
        for (v = 0; v < SLOTS; v++)
            assert_int_equal(rq_push(p, &v, sizeof v, 0), RQ_OK);
        assert_int_equal(rq_stat(p, &after), RQ_OK);
        assert_int_equal(after.producer_wakes - before.producer_wakes, 1);
        assert_true(ready_within(h, 1000));
        /* peek + release drain it as well. */
        for (v = 0; v < SLOTS; v++) {
            const void *m;
            size_t len;
            assert_int_equal(rq_peek(c, &m, &len, 0), RQ_OK);
            assert_int_equal(rq_release(c), RQ_OK);
        }
        const void *m;
        size_t len;
        assert_int_equal(rq_peek(c, &m, &len, 0), RQ_EAGAIN);
        assert_false(ready_within(h, 20));
        /* A second RQ_EAGAIN in a row without progress is fully armed. */
        assert_int_equal(rq_peek(c, &m, &len, 0), RQ_EAGAIN);
        assert_int_equal(rq_poll_timeout(c), 1000);
        /* The _info calls arm the object too: each drains a ready one. */
        for (int info_call = 0; info_call < 2; info_call++) {
            rq_msg_info info;
            assert_int_equal(rq_push(p, &v, sizeof v, 0), RQ_OK);
            assert_true(ready_within(h, 1000));
            assert_int_equal(pop0(c, NULL), RQ_OK);
            uint64_t out;
            int rc = info_call ? rq_peek_info(c, &m, &len, &info, 0)
                               : rq_pop_info(c, &out, sizeof out, &len, &info, 0);
            assert_int_equal(rc, RQ_EAGAIN);
            assert_false(ready_within(h, 20));
            assert_int_equal(rq_push(p, &v, sizeof v, 0), RQ_OK);
            assert_true(ready_within(h, 0));
            assert_int_equal(pop0(c, NULL), RQ_OK);
        }
        rq_close(p);
        rq_close(c);
        rq_close(keep);
        rq_unlink(name);
    }
}

static void test_producer_contract(void **state)
{
    (void)state;
    for (int mpsc = 0; mpsc < 2; mpsc++) {
        const char *name = th_name("pollp");
        rq *keep = make_queue(name, SLOTS, mpsc ? RQ_MPSC : 0);
        rq *p = th_open(name, RQ_PRODUCER, 0, 0, 0);
        rq *p2 = mpsc ? th_open(name, RQ_PRODUCER, 0, 0, 0) : NULL;
        rq *c = th_open(name, RQ_CONSUMER, 0, 0, 0);
        rq_pollable h = handle_of(p);
        rq_pollable h2 = p2 ? handle_of(p2) : RQ_POLLABLE_NONE;
        uint64_t v = 0;
        while (rq_push(p, &v, sizeof v, 0) == RQ_OK)
            v++;
        assert_int_equal(v, SLOTS); /* the last one armed */
        if (p2)
            assert_int_equal(rq_push(p2, &v, sizeof v, 0), RQ_EAGAIN);
        assert_false(ready_within(h, 20));
        assert_int_equal(pop0(c, NULL), RQ_OK); /* a slot for any producer */
        assert_true(ready_within(h, 0));
        if (p2) {
            assert_true(ready_within(h2, 0));
            assert_int_equal(rq_push(p2, &v, sizeof v, 0), RQ_OK);
            assert_int_equal(rq_push(p2, &v, sizeof v, 0), RQ_EAGAIN);
        } else {
            assert_int_equal(rq_push(p, &v, sizeof v, 0), RQ_OK);
        }
        assert_int_equal(rq_push(p, &v, sizeof v, 0), RQ_EAGAIN);
        assert_false(ready_within(h, 20));
        assert_int_equal(pop0(c, NULL), RQ_OK);
        assert_true(ready_within(h, 1000));
        rq_close(p);
        rq_close(p2);
        rq_close(c);
        rq_close(keep);
        rq_unlink(name);
    }
}

static void test_observer_has_no_handle(void **state)
{
    (void)state;
    const char *name = th_name("pollo");
    rq *keep = make_queue(name, SLOTS, 0);
    rq *o;
    assert_int_equal(rq_open(&o, name, RQ_OBSERVER, NULL), RQ_OK);
    rq_pollable h;
    assert_int_equal(rq_poll_handle(o, &h), RQ_EROLE);
    assert_true(h == RQ_POLLABLE_NONE);
    assert_int_equal(rq_poll_handle(NULL, &h), RQ_EINVAL);
    assert_int_equal(rq_poll_timeout(NULL), RQ_EINVAL);
    rq_close(o);
    rq_close(keep);
    rq_unlink(name);
}

#ifndef _WIN32
static const char *fifo_of(const char *name, char side)
{
    static char path[300];
    snprintf(path, sizeof path, "/dev/shm/rq%c.%s", side, name);
    return path;
}

/* The FIFOs: made by the first poller with the write classes of the
 * queue's mode, removed by rq_unlink (strays too); a file there that is
 * not a FIFO made as rq makes it is refused. */
static void test_fifo_files(void **state)
{
    (void)state;
    const char *name = th_name("pollfifo");
    rq_config cfg = {QUEUE_SLOTS(SLOTS), QUEUE_SLOT_SIZE, QUEUE_KIND, 0644};
    rq *c, *p;
    assert_int_equal(rq_open(&c, name, RQ_CONSUMER, &cfg), RQ_OK);
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, NULL), RQ_OK);
    struct stat st;
    assert_int_equal(stat(fifo_of(name, 'd'), &st), -1); /* nobody polls yet */
    handle_of(c);
    handle_of(p);
    assert_int_equal(stat(fifo_of(name, 'd'), &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600); /* the lock object's mode for 0644 */
    assert_int_equal(stat(fifo_of(name, 's'), &st), 0);
    rq_close(p);
    rq_close(c);
    assert_int_equal(rq_unlink(name), RQ_OK);
    assert_int_equal(stat(fifo_of(name, 'd'), &st), -1);
    assert_int_equal(stat(fifo_of(name, 's'), &st), -1);
    /* A stray of a queue that is gone: rq_unlink (rqctl unlink) removes it. */
    assert_int_equal(mkfifo(fifo_of(name, 'd'), 0600), 0);
    assert_int_equal(rq_unlink(name), RQ_ENOENT);
    assert_int_equal(stat(fifo_of(name, 'd'), &st), -1);
    /* Squatters: a regular file, a FIFO wider than the queue allows, and
     * (as root) one owned by another user. */
    for (int squat = 0; squat < 3; squat++) {
        if (squat == 2 && geteuid() != 0)
            break;
        name = th_name("pollsquat");
        const char *path = fifo_of(name, 'd');
        if (squat == 0)
            close(open(path, O_CREAT | O_WRONLY, 0600));
        else
            assert_int_equal(mkfifo(path, 0600), 0);
        if (squat == 1)
            assert_int_equal(chmod(path, 0666), 0);
        if (squat == 2)
            assert_int_equal(chown(path, 65534, 65534), 0);
        rq *keep = make_queue(name, SLOTS, 0);
        c = th_open(name, RQ_CONSUMER, 0, 0, 0);
        rq_pollable h;
        assert_int_equal(rq_poll_handle(c, &h), RQ_EOWNER);
        /* A producer's signal never writes into it either. */
        p = th_open(name, RQ_PRODUCER, 0, 0, 0);
        uint64_t v = 1;
        assert_int_equal(rq_push(p, &v, sizeof v, 0), RQ_OK);
        rq_close(p);
        rq_close(c);
        rq_close(keep);
        unlink(path);
        rq_unlink(name);
    }
}
#endif

#ifdef RQ_FAULT_INJECTION
/* With both sides busy nothing arms: no OS call per message, poller or
 * not; and one signal per arming. */
static void test_busy_sides_make_no_os_calls(void **state)
{
    (void)state;
    const char *name = th_name("pollbusy");
    rq *keep = make_queue(name, SLOTS, 0);
    rq *p = th_open(name, RQ_PRODUCER, 0, 0, 0);
    rq *c = th_open(name, RQ_CONSUMER, 0, 0, 0);
    handle_of(p);
    handle_of(c);
    rq_fault_reset();
    uint64_t v = 0;
    for (int round = 0; round < 1000; round++) {
        for (int i = 0; i < SLOTS / 2; i++)
            assert_int_equal(rq_push(p, &v, sizeof v, 0), RQ_OK);
        for (int i = 0; i < SLOTS / 2; i++)
            assert_int_equal(pop0(c, &v), RQ_OK);
    }
    assert_int_equal(rq_fault_calls(-1), 0);
    assert_int_equal(pop0(c, &v), RQ_EAGAIN); /* arms: drains its object */
    unsigned long arming = rq_fault_calls(-1);
#ifndef _WIN32
    assert_int_equal(arming, 1); /* a read of the FIFO (Windows: ResetEvent, not counted) */
#endif
    for (int i = 0; i < SLOTS; i++)
        assert_int_equal(rq_push(p, &v, sizeof v, 0), RQ_OK);
    print_message("busy: 0 OS calls in 8000 messages; an arming %lu, its signal %lu\n", arming,
                  rq_fault_calls(-1) - arming);
#ifndef _WIN32
    /* The first signal opens and checks the FIFO: open, fstat, write. */
    assert_true(rq_fault_calls(-1) - arming <= 3);
#endif
    for (int i = 0; i < SLOTS; i++)
        assert_int_equal(pop0(c, &v), RQ_OK);
    assert_int_equal(pop0(c, &v), RQ_EAGAIN);
    rq_fault_reset();
    for (int i = 0; i < SLOTS; i++)
        assert_int_equal(rq_push(p, &v, sizeof v, 0), RQ_OK);
    assert_int_equal(rq_fault_calls(-1), 1); /* later ones: one write (SetEvent) per arming */
    rq_close(p);
    rq_close(c);
    rq_close(keep);
    rq_unlink(name);
}
#endif

/* ---- a live stream through the poll objects ------------------------- */

#define STREAM 20000
#define QUEUES 8

struct feeder {
    const char *names[QUEUES];
    int queues;
};

/* Pushes STREAM messages per queue, round-robin, polling when full. */
static void *feeder_thread(void *arg)
{
    struct feeder *f = arg;
    rq *p[QUEUES];
    rq_pollable h[QUEUES];
    for (int i = 0; i < f->queues; i++) {
        assert_int_equal(rq_open(&p[i], f->names[i], RQ_PRODUCER, NULL), RQ_OK);
        h[i] = handle_of(p[i]);
    }
    uint64_t next[QUEUES] = {0};
    for (int done = 0; done < f->queues;) {
        done = 0;
        for (int i = 0; i < f->queues; i++) {
            if (next[i] == STREAM) {
                done++;
                continue;
            }
            int rc = rq_push(p[i], &next[i], sizeof next[i], 0);
            if (rc == RQ_OK)
                next[i]++;
            else if (rc == RQ_EAGAIN)
                (void)ready_within(h[i], rq_poll_timeout(p[i]));
            else
                fail_msg("push: %s", rq_errname(rc));
        }
    }
    for (int i = 0; i < f->queues; i++)
        rq_close(p[i]);
    return NULL;
}

/* One stream, both sides waiting on their objects (poll(2) on Linux,
 * WaitForSingleObject on Windows): every message arrives, and with full
 * fences every wake-up came through the object. */
static void test_stream_through_the_objects(void **state)
{
    (void)state;
    for (int fences = 1; fences >= 0; fences--) {
        struct feeder f = {{th_name("pollwait")}, 1};
        rq *keep = make_queue(f.names[0], SLOTS, fences ? RQ_FULL_FENCES : 0);
        rq *c = th_open(f.names[0], RQ_CONSUMER, 0, 0, 0);
        rq_pollable h = handle_of(c);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, feeder_thread, &f), 0);
        uint64_t next = 0;
        unsigned long late = 0, waits = 0;
        int timed_out = 0;
        uint64_t until = th_now_ms() + 60000;
        while (next < STREAM) {
            assert_true(th_now_ms() < until);
            int got = 0;
            uint64_t v;
            int rc;
            while ((rc = pop0(c, &v)) == RQ_OK) {
                assert_int_equal(v, next);
                next++;
                got++;
            }
            assert_int_equal(rc, RQ_EAGAIN);
            if (timed_out && got)
                late++;
            if (next == STREAM)
                break;
            waits++;
            timed_out = !ready_within(h, rq_poll_timeout(c));
        }
        pthread_join(th, NULL);
        print_message("%s: %d messages, %lu waits, %lu found by a timed-out wait\n",
                      fences ? "full fences" : "membarrier", STREAM, waits, late);
        if (fences)
            assert_int_equal(late, 0);
        else
            assert_true(late <= STREAM / 100);
        rq_close(c);
        rq_close(keep);
        rq_unlink(f.names[0]);
    }
}

#ifndef _WIN32
/* The consumer side of many queues in one epoll set, level or edge.
 * Counts waits that timed out with work to do: with full fences every
 * wake-up must come through the object (none may), without them the
 * first arming after progress may be seen one nap late (a rare race). */
static void epoll_stream(int queues, int edge, uint32_t flags)
{
    struct feeder f = {{0}, queues};
    rq *c[QUEUES], *keep[QUEUES];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(ep >= 0);
    for (int i = 0; i < queues; i++) {
        const char *n = th_name("pollstream");
        char *copy = malloc(strlen(n) + 1);
        assert_non_null(copy);
        f.names[i] = strcpy(copy, n);
        keep[i] = make_queue(f.names[i], SLOTS, flags);
        c[i] = th_open(f.names[i], RQ_CONSUMER, 0, 0, 0);
        struct epoll_event ev = {(uint32_t)EPOLLIN | (edge ? (uint32_t)EPOLLET : 0u),
                                 {.u32 = (uint32_t)i}};
        assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, handle_of(c[i]), &ev), 0);
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, feeder_thread, &f), 0);
    uint64_t next[QUEUES] = {0};
    unsigned long late = 0, wakeups = 0, spurious = 0;
    int left = queues;
    /* Every queue starts armed: drain each once. */
    int todo[QUEUES];
    for (int i = 0; i < queues; i++)
        todo[i] = 1;
    uint64_t until = th_now_ms() + 60000;
    while (left > 0) {
        assert_true(th_now_ms() < until);
        int timeout = 1000;
        for (int i = 0; i < queues; i++) {
            if (!todo[i])
                continue;
            int got = 0;
            for (;;) {
                uint64_t v;
                int rc = pop0(c[i], &v);
                if (rc == RQ_EAGAIN)
                    break;
                assert_int_equal(rc, RQ_OK);
                assert_int_equal(v, next[i]);
                next[i]++;
                got++;
                if (next[i] == STREAM)
                    left--;
            }
            if (todo[i] == 2 && got)
                late++; /* a timed-out wait found work */
            if (todo[i] == 1 && !got)
                spurious++;
            todo[i] = 0;
        }
        for (int i = 0; i < queues; i++) {
            int t = rq_poll_timeout(c[i]);
            if (next[i] < STREAM && t < timeout)
                timeout = t;
        }
        if (left == 0)
            break;
        struct epoll_event evs[QUEUES];
        int n = epoll_wait(ep, evs, QUEUES, timeout);
        assert_true(n >= 0);
        wakeups += (unsigned long)n;
        if (n == 0) {
            for (int i = 0; i < queues; i++)
                todo[i] = next[i] < STREAM ? 2 : 0;
        }
        for (int k = 0; k < n; k++)
            todo[evs[k].data.u32] = 1;
    }
    pthread_join(th, NULL);
    print_message("%d queue(s), %s, %s: %lu messages, %lu wake-ups, %lu spurious, %lu found by "
                  "a timed-out wait\n",
                  queues, edge ? "edge" : "level", flags ? "full fences" : "membarrier",
                  (unsigned long)queues * STREAM, wakeups, spurious, late);
    if (flags & RQ_FULL_FENCES)
        assert_int_equal(late, 0);
    else
        assert_true(late <= (unsigned long)queues * STREAM / 100);
    assert_true(spurious <= wakeups / 10 + 10); /* the arming drains the object */
    for (int i = 0; i < queues; i++) {
        rq_close(c[i]);
        rq_close(keep[i]);
        rq_unlink(f.names[i]);
        free((void *)f.names[i]);
    }
    close(ep);
}

static void test_epoll_level_and_edge(void **state)
{
    (void)state;
    epoll_stream(1, 0, RQ_FULL_FENCES);
    epoll_stream(1, 1, RQ_FULL_FENCES);
    epoll_stream(1, 0, 0);
    epoll_stream(1, 1, 0);
}

static void test_many_queues_in_one_epoll_set(void **state)
{
    (void)state;
    epoll_stream(QUEUES, 0, RQ_FULL_FENCES);
    epoll_stream(QUEUES, 1, RQ_FULL_FENCES);
    epoll_stream(QUEUES, 1, 0);
}
#endif

/* ---- crashes --------------------------------------------------------- */

/* Children of the crash tests: they open, say so, and wait for the
 * parent's go (the parent arms after their open's own signal). */
static int await_go(void)
{
    rq_atomic_u64 *flags = th_shared("steps", 16);
    rq_store_release_u64(&flags[0], 1);
    uint64_t until = th_now_ms() + 20000;
    while (!rq_load_acquire_u64(&flags[1]))
        if (th_now_ms() > until)
            return -1;
    return 0;
}

static void children_open_then_go(void (*arm)(void *), void *arg)
{
    rq_atomic_u64 *flags = th_shared("steps", 16);
    uint64_t until = th_now_ms() + 20000;
    while (!rq_load_acquire_u64(&flags[0])) {
        assert_true(th_now_ms() < until);
        th_sleep_us(500);
    }
    arm(arg);
    rq_store_release_u64(&flags[1], 1);
}

/* Child: opens the queue's producer, pushes one message (the crash point
 * armed by the parent may kill it inside), exits. */
static int push_one_main(const char *arg)
{
    (void)arg;
    rq *p;
    if (rq_open(&p, th_child_queue(), RQ_PRODUCER, NULL) != RQ_OK)
        return 20;
    if (await_go() < 0)
        return 22;
    uint64_t v = 42;
    if (rq_push(p, &v, sizeof v, 0) != RQ_OK)
        return 21;
    rq_close(p);
    return 0;
}

/* Child: opens the consumer, pops one message, exits. */
static int pop_one_main(const char *arg)
{
    (void)arg;
    rq *c;
    if (rq_open(&c, th_child_queue(), RQ_CONSUMER, NULL) != RQ_OK)
        return 20;
    if (await_go() < 0)
        return 22;
    size_t len;
    uint64_t v;
    if (rq_pop(c, &v, sizeof v, &len, 0) != RQ_OK)
        return 21;
    rq_close(c);
    return 0;
}

/* Child: opens ROLE ("P"/"C") and closes: a restart that does nothing. */
static int reopen_main(const char *arg)
{
    rq *q;
    int role = arg[0] == 'P' ? RQ_PRODUCER : RQ_CONSUMER;
    if (rq_open(&q, th_child_queue(), role, NULL) != RQ_OK)
        return 20;
    rq_close(q);
    return 0;
}

/* Child: polls as ROLE until its object is armed, then waits to be killed. */
static int armed_poller_main(const char *arg)
{
    rq *q;
    int producer = arg[0] == 'P';
    if (rq_open(&q, th_child_queue(), producer ? RQ_PRODUCER : RQ_CONSUMER, NULL) != RQ_OK)
        return 20;
    rq_pollable h;
    if (rq_poll_handle(q, &h) != RQ_OK)
        return 21;
    uint64_t v = 0;
    size_t len;
    int rc;
    do
        rc = producer ? rq_push(q, &v, sizeof v, 0) : rq_pop(q, &v, sizeof v, &len, 0);
    while (rc == RQ_OK);
    if (rc != RQ_EAGAIN)
        return 22;
    rq_store_release_u64((rq_atomic_u64 *)th_shared("armed", 8), 1);
    th_pause();
    return 0;
}

static void run_child(const char *child, const char *arg, int point, unsigned long hit,
                      void (*arm)(void *), void *arm_arg)
{
    th_shared_fresh("steps", 16);
    th_pid pid = th_spawn_armed(child, arg, 30, point, hit);
    assert_true(pid > 0);
    if (arm)
        children_open_then_go(arm, arm_arg);
    int status;
    assert_int_equal(th_wait(pid, 20000, &status), 0);
    if (point >= 0)
        assert_true(th_was_killed(status));
    else
        assert_true(th_exited_ok(status));
}

/* Arms a handle's object as a loop that waited once already: two
 * RQ_EAGAINs in a row, the second with the barrier. */
struct armer {
    rq *q;
    int producer;
};

static void arm_twice(void *arg)
{
    struct armer *a = arg;
    uint64_t v = 0;
    for (int i = 0; i < 2; i++)
        assert_int_equal(a->producer ? rq_push(a->q, &v, sizeof v, 0) : pop0(a->q, NULL),
                         RQ_EAGAIN);
}

/* The peer dies at POINT while publishing to our armed object: no signal
 * came, and its restart makes the object ready (without a restart, a
 * wait bounded by rq_poll_timeout finds the message at the next call). */
static void peer_killed_at(int point, int consumer_polls)
{
    const char *name = th_set_child_queue(th_name("pollkill"));
    rq *keep = make_queue(name, SLOTS, 0);
    rq *me = th_open(name, consumer_polls ? RQ_CONSUMER : RQ_PRODUCER, 0, 0, 0);
    rq_pollable h = handle_of(me);
    uint64_t v = 0;
    size_t len;
    if (!consumer_polls)
        while (rq_push(me, &v, sizeof v, 0) == RQ_OK)
            v++;
    /* signal.before_notify: its first hit is the open's own signal. */
    unsigned long hit = point == rq_crash_point_lookup("signal.before_notify") ? 2 : 1;
    struct armer a = {me, !consumer_polls};
    run_child(consumer_polls ? "push_one_main" : "pop_one_main", "", point, hit, arm_twice, &a);
    assert_false(ready_within(h, 50)); /* died before its signal */
    /* The peer's progress is in the ring: the bounded wait's call finds it. */
    if (consumer_polls)
        assert_int_equal(rq_pop(me, &v, sizeof v, &len, 0), RQ_OK);
    else
        assert_int_equal(rq_push(me, &v, sizeof v, 0), RQ_OK);
    /* Once more, for the restart's signal. */
    run_child(consumer_polls ? "push_one_main" : "pop_one_main", "", point, hit, arm_twice, &a);
    run_child("reopen_main", consumer_polls ? "P" : "C", -1, 0, NULL, NULL);
    assert_true(ready_within(h, 2000)); /* the restart's signal */
    if (consumer_polls)
        assert_int_equal(rq_pop(me, &v, sizeof v, &len, 0), RQ_OK);
    else
        assert_int_equal(rq_push(me, &v, sizeof v, 0), RQ_OK);
    rq_close(me);
    rq_close(keep);
    rq_unlink(name);
}

static void test_peer_killed_around_its_signal(void **state)
{
    (void)state;
    static const char *const producer_points[] = {"push.after_publish", "signal.before_notify"};
    static const char *const consumer_points[] = {"release.after_publish", "signal.before_notify"};
    for (size_t i = 0; i < 2; i++) {
        peer_killed_at(rq_crash_point_lookup(producer_points[i]), 1);
        peer_killed_at(rq_crash_point_lookup(consumer_points[i]), 0);
    }
}

/* A poller killed while armed: until a successor's open clears its bit,
 * the peer signals once for it (one write into a FIFO that nobody reads,
 * which never blocks), then runs as if nobody polled: no system call per
 * message. */
static void test_poller_killed_while_armed(void **state)
{
    (void)state;
    for (int run = 0; run < 4; run++) {
        int side = run & 1, at_point = run >> 1; /* killed by us, or at poll.after_arm */
        const char *name = th_set_child_queue(th_name("pollarmed"));
        rq *keep = make_queue(name, 4096, 0);
        rq_atomic_u64 *armed = th_shared_fresh("armed", 8);
        /* Open first: an open signals the other side itself. */
        rq *peer = th_open(name, side ? RQ_CONSUMER : RQ_PRODUCER, 0, 0, 0);
        th_pid pid = th_spawn_armed("armed_poller_main", side ? "P" : "C", 60,
                                    at_point ? rq_crash_point_lookup("poll.after_arm") : -1, 1);
        uint64_t until = th_now_ms() + 20000;
        while (!at_point && !rq_load_acquire_u64(armed)) {
            assert_true(th_now_ms() < until);
            th_sleep_us(1000);
        }
        if (!at_point)
            th_kill(pid);
        int status;
        assert_int_equal(th_wait(pid, 10000, &status), 0);
        assert_true(th_was_killed(status));
        /* The dead consumer polled an empty ring: the producer fills it;
         * the dead producer polled a full one: the consumer empties it. */
        rq_stats before, after;
        assert_int_equal(rq_stat(peer, &before), RQ_OK);
        uint64_t v = 0, t0 = th_now_ms();
        size_t len;
        int rc, n = 0;
        while ((rc = side ? rq_pop(peer, &v, sizeof v, &len, 0) : rq_push(peer, &v, sizeof v, 0)) ==
               RQ_OK)
            n++;
        assert_int_equal(rc, RQ_EAGAIN);
        assert_int_equal(n, 4096);
        assert_int_equal(rq_stat(peer, &after), RQ_OK);
        uint64_t wakes = side ? after.consumer_wakes - before.consumer_wakes
                              : after.producer_wakes - before.producer_wakes;
        print_message("%s poller killed %s: its peer made %d calls in %llu ms with %llu "
                      "wake signal(s)\n",
                      side ? "producer" : "consumer",
                      at_point ? "at poll.after_arm" : "while armed", n,
                      (unsigned long long)(th_now_ms() - t0), (unsigned long long)wakes);
        assert_int_equal(wakes, 1);
        rq_close(peer);
        rq_close(keep);
        rq_unlink(name);
    }
}

#ifdef RQ_FAULT_INJECTION
/* Every new OS call failing: a clean error or, for a signal, a poller
 * that finds the message at its bounded wait's end. */
static void test_poll_faults(void **state)
{
    (void)state;
#ifdef _WIN32
    static const char *const open_calls[] = {"CreateEventW"};
    const char *notify_call = "SetEvent";
    const char *drain_call = NULL;
#else
    static const char *const open_calls[] = {"fifo_open", "mkfifo", "fstat"};
    const char *notify_call = "fifo_write";
    const char *drain_call = "fifo_read";
#endif
    for (size_t i = 0; i < sizeof open_calls / sizeof *open_calls; i++) {
        const char *name = th_name("pollfault");
        rq *keep = make_queue(name, SLOTS, 0);
        rq *c = th_open(name, RQ_CONSUMER, 0, 0, 0);
        rq_fault_reset();
        rq_fault_arm(rq_fault_lookup(open_calls[i]), 1, 5 /* EIO */);
        rq_pollable h;
        assert_int_equal(rq_poll_handle(c, &h), RQ_ESYS);
        assert_true(h == RQ_POLLABLE_NONE);
        assert_int_equal(rq_fault_injected(), 1);
        rq_fault_reset();
        assert_int_equal(rq_poll_timeout(c), RQ_ESTATE);
        h = handle_of(c); /* works once the OS does */
        assert_int_equal(pop0(c, NULL), RQ_EAGAIN);
        rq_close(c);
        rq_close(keep);
        rq_unlink(name);
    }
    const char *name = th_name("pollfault");
    rq *keep = make_queue(name, SLOTS, 0);
    rq *c = th_open(name, RQ_CONSUMER, 0, 0, 0);
    rq *p = th_open(name, RQ_PRODUCER, 0, 0, 0);
    rq_pollable h = handle_of(c);
    if (drain_call) {
        rq_fault_reset();
        rq_fault_arm(rq_fault_lookup(drain_call), 1, 5);
        assert_int_equal(pop0(c, NULL), RQ_ESYS);
        rq_fault_reset();
    }
    assert_int_equal(pop0(c, NULL), RQ_EAGAIN);
    rq_fault_arm(rq_fault_lookup(notify_call), 1, 5);
    uint64_t v = 1;
    assert_int_equal(rq_push(p, &v, sizeof v, 0), RQ_OK);
    assert_int_equal(rq_fault_injected(), 1);
    rq_fault_reset();
    /* Lost signal: the bounded wait ends, the call finds the message. */
    assert_false(ready_within(h, rq_poll_timeout(c)));
    assert_int_equal(pop0(c, &v), RQ_OK);
    rq_close(p);
    rq_close(c);
    rq_close(keep);
    rq_unlink(name);
}
#endif

int main(int argc, char **argv)
{
    static const struct th_child children[] = {
        TH_CHILD(push_one_main),
        TH_CHILD(pop_one_main),
        TH_CHILD(reopen_main),
        TH_CHILD(armed_poller_main),
    };
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consumer_contract),
        cmocka_unit_test(test_producer_contract),
        cmocka_unit_test(test_observer_has_no_handle),
        cmocka_unit_test(test_stream_through_the_objects),
#ifdef RQ_FAULT_INJECTION
        cmocka_unit_test(test_busy_sides_make_no_os_calls),
#endif
#ifndef _WIN32
        cmocka_unit_test(test_fifo_files),
        cmocka_unit_test(test_epoll_level_and_edge),
        cmocka_unit_test(test_many_queues_in_one_epoll_set),
#endif
        cmocka_unit_test(test_peer_killed_around_its_signal),
        cmocka_unit_test(test_poller_killed_while_armed),
#ifdef RQ_FAULT_INJECTION
        cmocka_unit_test(test_poll_faults),
#endif
    };
#ifdef POLL_RECORDS
    return cmocka_run_group_tests_name("poll on record queues", tests, NULL, NULL);
#else
    return cmocka_run_group_tests_name("poll", tests, NULL, NULL);
#endif
}
