/*
 * rq_delay.c - one-way delivery delay of a blocking receiver, when messages
 * arrive now and then rather than back to back: a sender process sleeps a
 * random 0.2-2 ms, stamps the time (CLOCK_MONOTONIC) into a message and
 * sends it; a receiver process, asleep in the transport's own wait, takes
 * it and records now - stamp.  rq (rq_push / rq_pop with RQ_INFINITE) is
 * measured (also with RQ_FULL_FENCES: no membarrier before a long sleep)
 * beside a raw futex (a shared word bumped and woken) and an eventfd, in
 * interleaved rounds; those two keep the stamps of the last STAMPS
 * messages, so that a message that waited behind another is counted as
 * rq counts it, so that the tails are compared within
 * one run.  An event loop's receiver too: rq-poll (rq_pop with timeout 0,
 * and on RQ_EAGAIN a poll() of rq_poll_handle's descriptor for at most
 * rq_poll_timeout) beside eventfd-poll (a poll() of the eventfd without a
 * timeout, then its read).  Each round runs every transport once, the
 * order rotated from round to round.  Linux only.
 *
 *   rq_delay [SECONDS_PER_ROUND [ROUNDS [TRANSPORTS]]]
 *
 * (default 2 s, 3 rounds, all six; TRANSPORTS a comma list of rq, rq-ff,
 * futex, eventfd, rq-poll and eventfd-poll, e.g. rq,futex: shorter runs
 * of just what is compared)
 *
 * Prints, per transport, messages, p50, p99, p99.9 and max in µs over all
 * rounds pooled; then rq's p99 and p99.9 against the futex's (rq-poll's
 * against eventfd-poll's, if it ran) as ratios
 * with a 95 % interval from a bootstrap over the rounds (whole rounds
 * drawn with replacement, the same draws for every transport, so that a
 * noisy spell weighs on the ratio as it weighed on the run).  A p99.9
 * needs thousands of messages: a round of 3 s has about 2,500.
 * RQ_DELAY_DUMP=FILE also appends every sample to FILE (dump_samples).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rq.h"

#define MAX_SAMPLES 200000
#define END_STAMP INT64_MIN
#define STAMPS 1024 /* far more than can be in flight at one message per 0.2 ms */

enum kind { RQ, RQ_FF, FUTEX, EVENTFD, RQ_POLL, EVENTFD_POLL, KINDS };
static const char *const kind_names[KINDS] = {"rq-spsc block", "rq-spsc-ff",   "futex",
                                              "eventfd",       "rq-spsc poll", "eventfd poll"};
static const char *const kind_args[KINDS] = {"rq",      "rq-ff",       "futex", "eventfd",
                                             "rq-poll", "eventfd-poll"}; /* argv, dumps */

static int is_rq(enum kind k)
{
    return k == RQ || k == RQ_FF || k == RQ_POLL;
}

/* Shared between the parent and its two children. */
struct shared {
    _Alignas(64) _Atomic uint32_t seq;           /* futex, eventfd: messages sent */
    _Alignas(64) _Atomic int64_t stamps[STAMPS]; /* futex, eventfd: message i in i % STAMPS */
    _Alignas(64) _Atomic long count;
    _Atomic int ready;            /* the receiver waits: the sender may start */
    int64_t samples[MAX_SAMPLES]; /* ns */
};

static struct shared *sh;
static int efd = -1;
static char qname[64];

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set); /* best effort: one core is fine too */
}

static void futex_call(_Atomic uint32_t *w, int op, uint32_t v)
{
    syscall(SYS_futex, (uint32_t *)w, op, v, NULL, NULL, 0);
}

/* ---- one message each way ----------------------------------------------- */

static int send_stamp(enum kind k, rq *q, int64_t stamp)
{
    if (is_rq(k))
        return rq_push(q, &stamp, sizeof stamp, RQ_INFINITE) == RQ_OK ? 0 : -1;
    uint32_t i = atomic_load(&sh->seq);
    atomic_store(&sh->stamps[i % STAMPS], stamp);
    atomic_store(&sh->seq, i + 1);
    if (k == FUTEX) {
        futex_call(&sh->seq, FUTEX_WAKE, 1);
        return 0;
    }
    uint64_t one = 1;
    return write(efd, &one, sizeof one) == sizeof one ? 0 : -1;
}

/* Records the delay of every message from *SEEN to the sender's count, so
 * that a message that waited behind another counts as rq's do; 1 when the
 * end marker was among them. */
static int take_stamps(uint32_t *seen)
{
    uint32_t upto = atomic_load(&sh->seq);
    int64_t now = now_ns();
    for (; *seen != upto; (*seen)++) {
        int64_t stamp = atomic_load(&sh->stamps[*seen % STAMPS]);
        if (stamp == END_STAMP)
            return 1;
        long i = atomic_fetch_add(&sh->count, 1);
        if (i < MAX_SAMPLES)
            sh->samples[i] = now - stamp;
    }
    return 0;
}

/* An event loop's wait for rq: rq_pop with timeout 0; on RQ_EAGAIN (which
 * armed the descriptor) a poll() of it for at most rq_poll_timeout, then
 * again.  RQ_OK with the message, or the error. */
static int pop_polled(rq *q, int64_t *stamp, size_t *len)
{
    rq_pollable fd;
    int rc = rq_poll_handle(q, &fd);
    while (rc == RQ_OK) {
        rc = rq_pop(q, stamp, sizeof *stamp, len, 0);
        if (rc != RQ_EAGAIN)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        int ms = rq_poll_timeout(q);
        if (ms < 0 || (poll(&pfd, 1, ms) < 0 && errno != EINTR))
            return ms < 0 ? ms : RQ_ESYS;
        rc = RQ_OK;
    }
    return rc;
}

/* Waits for the next message(s) and records them; 1 at the end marker,
 * -1 (said why) if the transport failed. */
static int receive(enum kind k, rq *q, uint32_t *seen)
{
    int64_t stamp = END_STAMP;
    size_t len;
    uint64_t n;
    if (k == EVENTFD_POLL) {
        struct pollfd pfd = {efd, POLLIN, 0};
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
            perror("rq_delay: poll");
            return -1;
        }
        if (!(pfd.revents & POLLIN))
            return 0;
    }
    switch (k) {
    case RQ:
    case RQ_FF:
    case RQ_POLL: {
        int rc = k == RQ_POLL ? pop_polled(q, &stamp, &len)
                              : rq_pop(q, &stamp, sizeof stamp, &len, RQ_INFINITE);
        if (rc != RQ_OK) {
            fprintf(stderr, "rq_delay: %s receive: %s\n", kind_names[k], rq_strerror(rc));
            return -1;
        }
        if (stamp == END_STAMP)
            return 1;
        long i = atomic_fetch_add(&sh->count, 1);
        if (i < MAX_SAMPLES)
            sh->samples[i] = now_ns() - stamp;
        return 0;
    }
    case FUTEX:
        while (atomic_load(&sh->seq) == *seen)
            futex_call(&sh->seq, FUTEX_WAIT, *seen);
        return take_stamps(seen);
    default: /* eventfd, and eventfd-poll once polled */
        if (read(efd, &n, sizeof n) != sizeof n) {
            perror("rq_delay: read");
            return -1;
        }
        return take_stamps(seen);
    }
}

/* ---- the two sides -------------------------------------------------------- */

static rq *open_side(enum kind k, int role)
{
    rq *q = NULL;
    if (is_rq(k) && rq_open(&q, qname, role, NULL) != RQ_OK)
        exit(3);
    return q;
}

static int sender(enum kind k, double seconds)
{
    pin(0);
    rq *q = open_side(k, RQ_PRODUCER);
    while (!atomic_load(&sh->ready)) { /* no message may wait for the receiver to start */
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    unsigned seed = (unsigned)getpid();
    int64_t until = now_ns() + (int64_t)(seconds * 1e9);
    while (now_ns() < until) {
        long gap_us = 200 + (long)(rand_r(&seed) % 1801); /* 0.2 - 2 ms */
        struct timespec ts = {0, gap_us * 1000};
        nanosleep(&ts, NULL);
        if (send_stamp(k, q, now_ns()) != 0)
            return 1;
    }
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL); /* the last message taken before the end marker */
    send_stamp(k, q, END_STAMP);
    rq_close(q);
    return 0;
}

static int receiver(enum kind k)
{
    pin(1);
    rq *q = open_side(k, RQ_CONSUMER);
    uint32_t seen = atomic_load(&sh->seq);
    atomic_store(&sh->ready, 1);
    int rc;
    while ((rc = receive(k, q, &seen)) == 0)
        ;
    rq_close(q);
    return rc < 0;
}

/* ---- the parent -------------------------------------------------------------- */

struct pool {
    int64_t *v;
    long n;
    long *start; /* round r's samples: v[start[r]] .. v[start[r + 1] - 1] */
};

static int run_round(enum kind k, int round, double seconds, struct pool *p)
{
    atomic_store(&sh->count, 0);
    atomic_store(&sh->ready, 0);
    rq *keep = NULL;
    if (is_rq(k)) {
        rq_config cfg = {64, 8, k == RQ_FF ? RQ_FULL_FENCES : 0, 0};
        rq_unlink(qname);
        if (rq_open(&keep, qname, RQ_OBSERVER, &cfg) != RQ_OK)
            return -1;
    }
    pid_t r = fork();
    if (r == 0)
        _exit(receiver(k));
    pid_t s = fork();
    if (s == 0)
        _exit(sender(k, seconds));
    /* The receiver first: one that failed leaves the sender blocked on a
     * queue nobody drains, which only a kill ends. */
    int st1, st2;
    waitpid(r, &st2, 0);
    if (!WIFEXITED(st2) || WEXITSTATUS(st2))
        kill(s, SIGKILL);
    waitpid(s, &st1, 0);
    rq_close(keep);
    rq_unlink(qname);
    long n = atomic_load(&sh->count);
    n = n < MAX_SAMPLES ? n : MAX_SAMPLES;
    int64_t *v = realloc(p->v, (size_t)(p->n + n) * sizeof *p->v);
    if (!v)
        return -1;
    p->v = v;
    memcpy(p->v + p->n, sh->samples, (size_t)n * sizeof *p->v);
    p->n += n;
    p->start[round + 1] = p->n;
    return WIFEXITED(st1) && !WEXITSTATUS(st1) && WIFEXITED(st2) && !WEXITSTATUS(st2) ? 0 : -1;
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct(const struct pool *p, double q)
{
    long i = (long)(q * (double)(p->n - 1));
    return (double)p->v[i] / 1e3;
}

/* The element that would be at index I of V[0..N-1] sorted (V reordered). */
static int64_t select_nth(int64_t *v, long n, long i)
{
    long lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t pivot = v[lo + (hi - lo) / 2];
        long a = lo, b = hi;
        while (a <= b) {
            while (v[a] < pivot)
                a++;
            while (v[b] > pivot)
                b--;
            if (a <= b) {
                int64_t t = v[a];
                v[a++] = v[b];
                v[b--] = t;
            }
        }
        if (i <= b)
            hi = b;
        else if (i >= a)
            lo = a;
        else
            break;
    }
    return v[i];
}

#define BOOTSTRAPS 1000

/* One bootstrap draw: the samples of rounds PICK[0..ROUNDS-1] of P into
 * BUF; its Q-quantile. */
static int64_t drawn_quantile(const struct pool *p, const int *pick, int rounds, int64_t *buf,
                              double q)
{
    long n = 0;
    for (int r = 0; r < rounds; r++) {
        long from = p->start[pick[r]], to = p->start[pick[r] + 1];
        memcpy(buf + n, p->v + from, (size_t)(to - from) * sizeof *buf);
        n += to - from;
    }
    return n ? select_nth(buf, n, (long)(q * (double)(n - 1))) : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Prints K's Q-quantile over REF's: the pooled ratio, and a 95 %
 * interval from BOOTSTRAPS draws of whole rounds (the same rounds for
 * both). */
static void print_ratio(struct pool *pools, enum kind k, enum kind ref, int rounds, double q,
                        const char *what)
{
    struct pool *a = &pools[k], *f = &pools[ref];
    long most = 0; /* a draw may take the largest round every time */
    for (int r = 0; r < rounds; r++) {
        long na = a->start[r + 1] - a->start[r], nf = f->start[r + 1] - f->start[r];
        most = na > most ? na : most;
        most = nf > most ? nf : most;
    }
    int64_t *buf = malloc((size_t)(most * rounds) * sizeof *buf);
    int *pick = malloc((size_t)rounds * sizeof *pick);
    double *ratio = malloc(BOOTSTRAPS * sizeof *ratio);
    if (!buf || !pick || !ratio) {
        free(buf), free(pick), free(ratio);
        return;
    }
    for (int r = 0; r < rounds; r++)
        pick[r] = r;
    int64_t pooled_a = drawn_quantile(a, pick, rounds, buf, q);
    int64_t pooled_f = drawn_quantile(f, pick, rounds, buf, q);
    unsigned seed = 12345;
    int m = 0;
    for (int i = 0; i < BOOTSTRAPS; i++) {
        for (int r = 0; r < rounds; r++)
            pick[r] = (int)(rand_r(&seed) % (unsigned)rounds);
        int64_t x = drawn_quantile(a, pick, rounds, buf, q);
        int64_t y = drawn_quantile(f, pick, rounds, buf, q);
        if (y > 0)
            ratio[m++] = (double)x / (double)y;
    }
    qsort(ratio, (size_t)m, sizeof *ratio, cmp_double);
    if (m > 0 && pooled_f > 0)
        printf("%-14s %s / %s's: %.2f, 95 %% interval %.2f-%.2f (bootstrap over rounds)\n",
               kind_names[k], what, kind_names[ref], (double)pooled_a / (double)pooled_f,
               ratio[m / 40], ratio[m - 1 - m / 40]);
    free(buf), free(pick), free(ratio);
}

/* With RQ_DELAY_DUMP=FILE in the environment, appends every sample to
 * FILE as "TRANSPORT NS" lines (TRANSPORT as on the command line): runs of
 * two builds, alternated, pooled and compared afterwards. */
static int dump_samples(const struct pool *pools)
{
    const char *path = getenv("RQ_DELAY_DUMP");
    if (!path)
        return 0;
    FILE *f = fopen(path, "a");
    if (!f) {
        perror(path);
        return -1;
    }
    for (int k = 0; k < KINDS; k++)
        for (long i = 0; i < pools[k].n; i++)
            fprintf(f, "%s %lld\n", kind_args[k], (long long)pools[k].v[i]);
    return fclose(f) == 0 ? 0 : -1;
}

/* Marks in CHOSEN the transports of the comma list LIST; -1 for a name
 * that is not one. */
static int parse_transports(const char *list, int chosen[KINDS])
{
    for (int k = 0; k < KINDS; k++)
        chosen[k] = 0;
    while (*list) {
        size_t len = strcspn(list, ",");
        int k = 0;
        while (k < KINDS && (strlen(kind_args[k]) != len || strncmp(kind_args[k], list, len) != 0))
            k++;
        if (k == KINDS)
            return -1;
        chosen[k] = 1;
        list += len + (list[len] == ',');
    }
    return 0;
}

/* A whole argument as a number, else -1 (the usage is printed then). */
static double parse_number(const char *arg)
{
    char *end;
    double v = strtod(arg, &end);
    return end != arg && *end == '\0' ? v : -1;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? parse_number(argv[1]) : 2.0;
    double rounds_arg = argc > 2 ? parse_number(argv[2]) : 3;
    int rounds = rounds_arg >= 1 && rounds_arg <= 1000 ? (int)rounds_arg : 0;
    int chosen[KINDS] = {1, 1, 1, 1, 1, 1};
    if (argc > 3 && parse_transports(argv[3], chosen) != 0)
        rounds = 0;
    if (seconds <= 0 || rounds < 1) {
        fprintf(stderr, "usage: rq_delay [SECONDS_PER_ROUND [ROUNDS "
                        "[rq,rq-ff,futex,eventfd,rq-poll,eventfd-poll]]]\n");
        return 2;
    }
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    efd = eventfd(0, 0);
    if (sh == MAP_FAILED || efd < 0) {
        perror("rq_delay");
        return 1;
    }
    snprintf(qname, sizeof qname, "rqdelay.%ld", (long)getpid());
    struct pool pools[KINDS] = {{0}};
    for (int k = 0; k < KINDS; k++)
        if (!(pools[k].start = calloc((size_t)rounds + 1, sizeof *pools[k].start))) {
            perror("rq_delay");
            return 1;
        }
    enum kind order[KINDS];
    int n_chosen = 0;
    for (int k = 0; k < KINDS; k++)
        if (chosen[k])
            order[n_chosen++] = (enum kind)k;
    for (int round = 0; round < rounds; round++)
        for (int i = 0; i < n_chosen; i++) {
            enum kind k = order[(round + i) % n_chosen]; /* the order rotates */
            if (run_round(k, round, seconds, &pools[k]) != 0) {
                fprintf(stderr, "rq_delay: %s round %d failed\n", kind_names[k], round + 1);
                return 1;
            }
        }
    printf("one-way delay, messages every 0.2-2 ms, %d rounds of %.1f s, interleaved\n", rounds,
           seconds);
    printf("%-14s %9s %9s %9s %9s %9s\n", "transport", "messages", "p50 us", "p99 us", "p99.9 us",
           "max us");
    for (int k = 0; k < KINDS; k++) {
        struct pool *p = &pools[k];
        if (p->n == 0)
            continue;
        int64_t *all = malloc((size_t)p->n * sizeof *all);
        if (!all)
            return 1;
        memcpy(all, p->v, (size_t)p->n * sizeof *all);
        qsort(all, (size_t)p->n, sizeof *all, cmp);
        struct pool sorted = {all, p->n, NULL};
        p = &sorted;
        printf("%-14s %9ld %9.1f %9.1f %9.1f %9.1f\n", kind_names[k], p->n, pct(p, 0.5),
               pct(p, 0.99), pct(p, 0.999), (double)p->v[p->n - 1] / 1e3);
        free(all);
    }
    if (dump_samples(pools) != 0)
        return 1;
    for (int k = RQ; k < KINDS; k++) {
        enum kind ref = k == RQ_POLL && pools[EVENTFD_POLL].n ? EVENTFD_POLL : FUTEX;
        if (!is_rq((enum kind)k) || pools[k].n == 0 || pools[ref].n == 0)
            continue;
        print_ratio(pools, (enum kind)k, ref, rounds, 0.99, "p99");
        print_ratio(pools, (enum kind)k, ref, rounds, 0.999, "p99.9");
    }
    return 0;
}
