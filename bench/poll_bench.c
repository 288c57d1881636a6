/*
 * poll_bench.c - round trip through epoll: rq's poll descriptor
 * (rq_poll_handle) against an eventfd ping-pong, the floor an event-loop
 * wake-up between two processes costs.  Linux only.
 *
 *   rq_poll_bench [ROUNDS [TRIPS]]
 *
 * Two processes, each in its own epoll loop.  rq: two queues (ping, pong);
 * each side consumes one and produces into the other, waits in epoll_wait
 * on its consumer descriptor, pops until RQ_EAGAIN (the arming), pushes
 * the answer.  eventfd: the same with two eventfds (write 1, read).  The
 * two run interleaved, ROUNDS times TRIPS round trips each, so that the
 * load of a shared machine falls on both alike; printed: the median and
 * spread of each, and of their ratio round by round.  Also printed: the
 * messages and wake signals rq_stat counted, i.e. the system calls rq made
 * besides epoll_wait (one notification per message here: every wait is a
 * real sleep).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rq.h"

#define ROUNDS_MAX 200

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "rq_poll_bench: %s: %s\n", what, rc ? rq_strerror(rc) : strerror(errno));
    exit(1);
}

/* ---- rq through epoll ------------------------------------------------ */

struct rq_side {
    rq *in, *out;
    int ep;
};

static void rq_side_open(struct rq_side *s, const char *in, const char *out)
{
    int rc = rq_open(&s->in, in, RQ_CONSUMER, NULL);
    if (rc == RQ_OK)
        rc = rq_open(&s->out, out, RQ_PRODUCER, NULL);
    rq_pollable fd;
    if (rc == RQ_OK)
        rc = rq_poll_handle(s->in, &fd);
    if (rc != RQ_OK)
        die("open", rc);
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll", 0);
}

/* One message in, the event loop's way: pop until one comes, waiting in
 * epoll_wait between RQ_EAGAINs. */
static uint64_t rq_receive(struct rq_side *s)
{
    uint64_t v;
    size_t len;
    for (;;) {
        int rc = rq_pop(s->in, &v, sizeof v, &len, 0);
        if (rc == RQ_OK)
            return v;
        if (rc != RQ_EAGAIN)
            die("rq_pop", rc);
        struct epoll_event ev;
        if (epoll_wait(s->ep, &ev, 1, rq_poll_timeout(s->in)) < 0 && errno != EINTR)
            die("epoll_wait", 0);
    }
}

static void rq_send(struct rq_side *s, uint64_t v)
{
    int rc = rq_push(s->out, &v, sizeof v, 0);
    if (rc != RQ_OK)
        die("rq_push", rc);
}

/* ---- eventfd through epoll ------------------------------------------- */

struct efd_side {
    int in, out, ep;
};

static void efd_side_open(struct efd_side *s, int in, int out)
{
    s->in = in;
    s->out = out;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    if (s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, in, &ev) != 0)
        die("epoll", 0);
}

static void efd_receive(struct efd_side *s)
{
    uint64_t v;
    for (;;) {
        if (read(s->in, &v, sizeof v) == sizeof v)
            return;
        if (errno != EAGAIN)
            die("read", 0);
        struct epoll_event ev;
        if (epoll_wait(s->ep, &ev, 1, -1) < 0 && errno != EINTR)
            die("epoll_wait", 0);
    }
}

static void efd_send(struct efd_side *s)
{
    uint64_t one = 1;
    if (write(s->out, &one, sizeof one) != sizeof one)
        die("write", 0);
}

/* ---- the runs -------------------------------------------------------- */

/* The echo process: answers TRIPS round trips of each kind, ROUNDS times,
 * in the order the initiator runs them. */
static void echo(struct rq_side *r, struct efd_side *e, int rounds, long trips)
{
    for (int round = 0; round < rounds; round++) {
        for (int kind = 0; kind < 2; kind++) {
            int rq_first = round % 2 == 0;
            for (long i = 0; i < trips; i++) {
                if (kind == 0 ? rq_first : !rq_first)
                    rq_send(r, rq_receive(r));
                else {
                    efd_receive(e);
                    efd_send(e);
                }
            }
        }
    }
}

static double run_rq(struct rq_side *r, long trips)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < trips; i++) {
        rq_send(r, (uint64_t)i);
        if (rq_receive(r) != (uint64_t)i)
            die("rq: wrong answer", 0);
    }
    return (double)(now_ns() - t0) / (double)trips;
}

static double run_efd(struct efd_side *e, long trips)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < trips; i++) {
        efd_send(e);
        efd_receive(e);
    }
    return (double)(now_ns() - t0) / (double)trips;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median and the 10th / 90th percentiles of V (N values), sorted here. */
static void spread(double *v, int n, double out[3])
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    out[0] = v[n / 2];
    out[1] = v[n / 10];
    out[2] = v[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1];
}

/* The child: echoes each round trip on both transports, then exits. */
static void echo_child(const char *ping, const char *pong, int e_ping, int e_pong, int rounds,
                       long trips)
{
    struct rq_side r;
    struct efd_side e;
    rq_side_open(&r, ping, pong);
    efd_side_open(&e, e_ping, e_pong);
    echo(&r, &e, rounds, trips);
    rq_close(r.in);
    rq_close(r.out);
    _exit(0);
}

/* ROUNDS rounds of TRIPS round trips, the two transports in turn (which
 * goes first alternates): each round's time per trip and their ratio. */
static void interleave(struct rq_side *r, struct efd_side *e, int rounds, long trips, double *rq_ns,
                       double *efd_ns, double *ratio)
{
    for (int round = 0; round < rounds; round++) {
        if (round % 2 == 0) {
            rq_ns[round] = run_rq(r, trips);
            efd_ns[round] = run_efd(e, trips);
        } else {
            efd_ns[round] = run_efd(e, trips);
            rq_ns[round] = run_rq(r, trips);
        }
        ratio[round] = rq_ns[round] / efd_ns[round];
    }
}

static void report(int rounds, long trips, double *rq_ns, double *efd_ns, double *ratio,
                   const rq_stats *st)
{
    double a[3], b[3], c[3];
    spread(rq_ns, rounds, a);
    spread(efd_ns, rounds, b);
    spread(ratio, rounds, c);
    printf("round trip through epoll, %d rounds x %ld, interleaved (median [p10, p90]):\n", rounds,
           trips);
    printf("  rq poll descriptor   %8.0f ns  [%.0f, %.0f]\n", a[0], a[1], a[2]);
    printf("  eventfd ping-pong    %8.0f ns  [%.0f, %.0f]\n", b[0], b[1], b[2]);
    printf("  ratio rq / eventfd   %8.2f x   [%.2f, %.2f]  (target <= 1.2)\n", c[0], c[1], c[2]);
    printf("  ping queue: %llu messages, %llu wake signals by the initiator\n",
           (unsigned long long)st->pushed, (unsigned long long)st->producer_wakes);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    long trips = argc > 2 ? atol(argv[2]) : 2000;
    if (rounds < 1 || rounds > ROUNDS_MAX || trips < 1) {
        fprintf(stderr, "usage: %s [ROUNDS (1-%d) [TRIPS]]\n", argv[0], ROUNDS_MAX);
        return 2;
    }
    char ping[64], pong[64];
    snprintf(ping, sizeof ping, "pollbench.%ld.ping", (long)getpid());
    snprintf(pong, sizeof pong, "pollbench.%ld.pong", (long)getpid());
    rq_config cfg = {.slot_count = 64, .slot_size = 8};
    rq *keep[2];
    if (rq_open(&keep[0], ping, RQ_OBSERVER, &cfg) != RQ_OK ||
        rq_open(&keep[1], pong, RQ_OBSERVER, &cfg) != RQ_OK)
        die("create", 0);
    int e_ping = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
        e_pong = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e_ping < 0 || e_pong < 0)
        die("eventfd", 0);
    fflush(stdout);
    pid_t child = fork();
    if (child < 0)
        die("fork", 0);
    if (child == 0)
        echo_child(ping, pong, e_ping, e_pong, rounds, trips);
    struct rq_side r;
    struct efd_side e;
    rq_side_open(&r, pong, ping);
    efd_side_open(&e, e_pong, e_ping);
    double rq_ns[ROUNDS_MAX], efd_ns[ROUNDS_MAX], ratio[ROUNDS_MAX];
    interleave(&r, &e, rounds, trips, rq_ns, efd_ns, ratio);
    int status;
    waitpid(child, &status, 0);
    rq_stats st;
    rq_stat(r.out, &st);
    report(rounds, trips, rq_ns, efd_ns, ratio, &st);
    rq_close(r.in);
    rq_close(r.out);
    rq_close(keep[0]);
    rq_close(keep[1]);
    rq_unlink(ping);
    rq_unlink(pong);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
