/*
 * rec_bench.c - record queues (RQ_RECORDS) side by side with slot queues,
 * in one run, interleaved: a producer process and a consumer process,
 * both busy (timeout 0, spinning), pinned to CPUs 0 and 1 when there are
 * two.  Linux only (fork, sched_setaffinity).
 *
 *   rec_bench [--pairs N] [--quick] [--mpsc] [--spin-pause N]
 *             [--bursts | --shapes | --drain [--out PATH]] [--single [--only CONFIG]]
 *
 * --mpsc: the slot and record queues of the comparisons are RQ_MPSC (one
 * producer, so each push takes and leaves the producers' lock).
 *
 * --spin-pause N: the busy loops (both sides, both kinds) run N pause
 * instructions after each poll that found nothing (default 0).  The
 * comparisons print how many such polls each side made per message
 * (docs/performance/spinning.md).
 *
 * --single: one process pushes 64 messages and then reads them back, CPU
 * time (on a loaded machine the fairer measure of what the calls cost);
 * --only CONFIG runs one configuration once, for an instruction count
 * (CONFIG + "burst": the consumer takes rq_peek_burst batches):
 *   valgrind --tool=callgrind rec_bench --single --only records64
 *
 * Two comparisons, each as N pairs (slot run, record run, in alternating
 * order), printed per pair and as the median ratio with its spread:
 *   64 B:  64-byte records vs 64-byte slots, same segment size (msgs/s);
 *   mix:   a log-like mix of 16 B .. 2 KiB (mostly short) vs slots sized
 *          2 KiB, same segment size (MB/s of payload);
 * and how many mix records a full record queue holds, against
 * capacity / (mean size + header).  --bursts instead: 64-byte messages
 * through slots and records, each by single calls (rq_push, rq_peek +
 * rq_release), by bursts of BURST (rq_push_burst, rq_peek_burst +
 * rq_release_burst) and by zero-copy bursts (rq_reserve_burst_len +
 * rq_commit_burst, the same consumer), the six runs of a round in rotating
 * order: the gain of each burst on each kind, and records against slots.
 * --shapes: a log shipper's shapes, the mix against 2 KiB slots in the
 * same segment (64 KiB, 1 MiB, 4 MiB): spikes of lines against a consumer
 * that writes and flushes each, then a periodic drain (--drain alone: only
 * that): a producer pushing as fast as it can, a consumer that ships all
 * it finds every 1, 5 or 20 ms (or also when woken) in one write() to
 * PATH (default /dev/null).  See rec_shapes.c.  Every message is checked
 * (length and first and last byte) so a fast wrong queue cannot win.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "rq.h"
#include "rec_bench.h"

#define BURST 32u

/* Busy polls that found nothing (no room for the producer, no message
 * for the consumer) in this process's side of the current run: where a
 * busy run sits.  A consumer that finds the ring empty before most
 * messages waits for its producer, and each message crosses while the
 * consumer watches its lines; a producer that finds it full waits for the
 * consumer, and messages cross in batches. */
static uint64_t idle_polls;
static int spin_pause; /* --spin-pause: pauses after each of them */

/* A busy poll found nothing: counted, then spin_pause pauses. */
static void idle(void)
{
    idle_polls++;
    bench_pause(spin_pause);
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void pin(int cpu)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 2)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % (int)n, &set);
    (void)sched_setaffinity(0, sizeof set, &set);
}

rq *open_producer_ready(const char *name, const char *what, int ready_fd, int go_fd)
{
    pin(1);
    rq *p;
    int rc = rq_open(&p, name, RQ_PRODUCER, NULL);
    if (rc != RQ_OK)
        die(what, rc);
    char c = 'r';
    if (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 1)
        exit(1);
    return p;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* A log-like size: 70% 16..128 bytes, 25% 128..512, 5% 512..2048. */
uint32_t mix_size(uint64_t *s)
{
    uint64_t r = xorshift(s);
    unsigned pick = (unsigned)(r % 100);
    r >>= 8;
    if (pick < 70)
        return 16 + (uint32_t)(r % 113);
    if (pick < 95)
        return 128 + (uint32_t)(r % 385);
    return 512 + (uint32_t)(r % 1537);
}

struct run {
    const char *what;
    rq_config cfg;
    uint32_t fixed; /* every message this long, or 0: the mix */
    uint64_t messages;
    int burst; /* both sides move BURST at a time (bursts of a fixed size only);
                * 2: the producer reserves them (rq_reserve_burst_len) */
};

static uint32_t next_len(const struct run *r, uint64_t *seed)
{
    return r->fixed ? r->fixed : mix_size(seed);
}

_Noreturn void die(const char *what, int rc)
{
    fprintf(stderr, "rec_bench: %s: %s\n", what, rq_strerror(rc));
    exit(1);
}

/* The queue this process is running (bench_queue_owned): its name, its
 * maker, the handles that hold roles in it and the producer child.  If
 * the process exits before bench_queue_done (die, a failed check), the
 * child is killed and reaped, the handles closed and the name unlinked,
 * in that order (a lock object goes with the last close, once no role is
 * held in it), so a consumer that fails leaves nothing in /dev/shm.  Not
 * by a producer child, which inherits the handler. */
static char owned_queue[64];
static pid_t owned_by, owned_child;
static rq **owned_handle[2];

static void unlink_owned_queue(void)
{
    if (!owned_queue[0] || getpid() != owned_by)
        return;
    /* Still ours (not reaped, so its pid is not reused): kill and reap. */
    if (owned_child > 0 && waitpid(owned_child, NULL, WNOHANG) == 0 &&
        kill(owned_child, SIGKILL) == 0)
        (void)waitpid(owned_child, NULL, 0);
    for (int i = 0; i < 2; i++)
        if (owned_handle[i] && *owned_handle[i])
            rq_close(*owned_handle[i]);
    (void)rq_unlink(owned_queue);
}

void bench_queue_owned(const char *name, rq **a, rq **b)
{
    static int registered;
    if (!registered && atexit(unlink_owned_queue) == 0)
        registered = 1;
    snprintf(owned_queue, sizeof owned_queue, "%s", name);
    owned_by = getpid();
    owned_child = 0;
    owned_handle[0] = a;
    owned_handle[1] = b;
}

void bench_queue_done(void)
{
    owned_queue[0] = '\0';
    owned_child = 0;
    owned_handle[0] = owned_handle[1] = NULL;
}

pid_t bench_fork(void)
{
    pid_t parent = getpid();
    fflush(stdout); /* the child must not print our buffer again */
    pid_t pid = fork();
    if (pid < 0)
        die("fork", RQ_ESYS);
    /* Killed with its parent; a parent gone before the prctl: now. */
    if (pid == 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent))
        _exit(1);
    if (pid > 0)
        owned_child = pid;
    return pid;
}

/* The producer's loop with rq_push_burst: BURST messages a call, the
 * rest of a partly taken batch first in the next. */
static void producer_bursts(const struct run *r, rq *p)
{
    static unsigned char bufs[BURST][MIX_MAX];
    const void *msgs[BURST];
    size_t lens[BURST];
    for (uint64_t i = 0; i < r->messages;) {
        unsigned n = r->messages - i < BURST ? (unsigned)(r->messages - i) : BURST;
        for (unsigned k = 0; k < n; k++) {
            bufs[k][0] = bufs[k][r->fixed - 1] = (unsigned char)(i + k);
            msgs[k] = bufs[k];
            lens[k] = r->fixed;
        }
        int rc;
        while ((rc = rq_push_burst(p, msgs, lens, n, 0)) == RQ_EAGAIN)
            idle();
        if (rc < 0)
            die("push burst", rc);
        i += (uint64_t)rc;
    }
}

/* The zero-copy producer: BURST messages a call reserved with
 * rq_reserve_burst_len (all or none), written in place, one commit. */
static void producer_reserved_bursts(const struct run *r, rq *p)
{
    void *bufs[BURST];
    size_t lens[BURST];
    for (unsigned k = 0; k < BURST; k++)
        lens[k] = r->fixed;
    for (uint64_t i = 0; i < r->messages;) {
        unsigned n = r->messages - i < BURST ? (unsigned)(r->messages - i) : BURST;
        int rc;
        while ((rc = rq_reserve_burst_len(p, lens, n, bufs, 0)) == RQ_EAGAIN)
            idle();
        if (rc < 0)
            die("reserve burst", rc);
        for (int k = 0; k < rc; k++) {
            unsigned char *b = bufs[k];
            b[0] = b[r->fixed - 1] = (unsigned char)(i + (unsigned)k);
        }
        rc = rq_commit_burst(p, lens, (size_t)rc) == RQ_OK ? rc : -1;
        if (rc < 0)
            die("commit burst", RQ_ESTATE);
        i += (uint64_t)rc;
    }
}

/* The consumer's side of a burst run: BURST messages a call, each
 * checked, released with one store. */
static uint64_t consume_bursts(const struct run *r, rq *c)
{
    uint64_t moved = 0;
    rq_msg_view v[BURST];
    for (uint64_t i = 0; i < r->messages;) {
        int rc;
        while ((rc = rq_peek_burst(c, v, BURST, 0)) == RQ_EAGAIN)
            idle();
        if (rc < 0)
            die("peek burst", rc);
        for (int k = 0; k < rc; k++, i++) {
            const unsigned char *b = v[k].data;
            if (v[k].len != r->fixed || b[0] != (unsigned char)i ||
                b[v[k].len - 1] != (unsigned char)i) {
                fprintf(stderr, "rec_bench: %s: message %llu is wrong\n", r->what,
                        (unsigned long long)i);
                exit(1);
            }
            moved += v[k].len;
        }
        rq_release_burst(c, (size_t)rc);
    }
    return moved;
}

/* The producer's last word on the ready pipe: its idle polls. */
static void producer_exit(rq *p, int ready_fd)
{
    rq_close(p);
    if (write(ready_fd, &idle_polls, sizeof idle_polls) != (ssize_t)sizeof idle_polls)
        exit(1);
    exit(0);
}

static void producer(const struct run *r, const char *name, int ready_fd, int go_fd)
{
    rq *p = open_producer_ready(name, "producer open", ready_fd, go_fd);
    static unsigned char buf[MIX_MAX];
    int rc;
    idle_polls = 0;
    if (r->burst) {
        if (r->burst == 2)
            producer_reserved_bursts(r, p);
        else
            producer_bursts(r, p);
        producer_exit(p, ready_fd);
    }
    uint64_t seed = 88172645463325252ull;
    for (uint64_t i = 0; i < r->messages; i++) {
        uint32_t len = next_len(r, &seed);
        buf[0] = buf[len - 1] = (unsigned char)i;
        while ((rc = rq_push(p, buf, len, 0)) == RQ_EAGAIN)
            idle();
        if (rc != RQ_OK)
            die("push", rc);
    }
    producer_exit(p, ready_fd);
}

/* The consumer's side of one run: peeks, checks and releases every
 * message.  Returns the payload bytes moved (exits on a wrong message). */
static uint64_t consume_all(const struct run *r, rq *c)
{
    uint64_t seed = 88172645463325252ull, moved = 0;
    for (uint64_t i = 0; i < r->messages; i++) {
        const void *msg;
        size_t len;
        int rc;
        while ((rc = rq_peek(c, &msg, &len, 0)) == RQ_EAGAIN)
            idle();
        if (rc != RQ_OK)
            die("peek", rc);
        const unsigned char *b = msg;
        if (len != next_len(r, &seed) || b[0] != (unsigned char)i ||
            b[len - 1] != (unsigned char)i) {
            fprintf(stderr, "rec_bench: %s: message %llu is wrong\n", r->what,
                    (unsigned long long)i);
            exit(1);
        }
        moved += len;
        rq_release(c);
    }
    return moved;
}

/* The last run_once's idle polls per message: the consumer's and the
 * producer's. */
static double last_consumer_idle, last_producer_idle;

/* One run: returns seconds; *BYTES gets the payload moved. */
static double run_once(const struct run *r, uint64_t *bytes)
{
    char name[64];
    snprintf(name, sizeof name, "recbench.%ld", (long)getpid());
    rq_unlink(name);
    rq *c = NULL;
    bench_queue_owned(name, &c, NULL);
    int rc = rq_open(&c, name, RQ_CONSUMER, &r->cfg);
    if (rc != RQ_OK)
        die("consumer open", rc);
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0)
        exit(1);
    pid_t pid = bench_fork();
    if (pid == 0)
        producer(r, name, ready[1], go[0]);
    pin(0);
    char ch;
    if (read(ready[0], &ch, 1) != 1)
        exit(1);
    idle_polls = 0;
    double t0 = now_s();
    if (write(go[1], &ch, 1) != 1)
        exit(1);
    uint64_t moved = r->burst ? consume_bursts(r, c) : consume_all(r, c);
    double t = now_s() - t0;
    uint64_t producer_idle;
    if (read(ready[0], &producer_idle, sizeof producer_idle) != (ssize_t)sizeof producer_idle)
        exit(1);
    last_consumer_idle = (double)idle_polls / (double)r->messages;
    last_producer_idle = (double)producer_idle / (double)r->messages;
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        exit(1);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
    rq_close(c);
    rq_unlink(name);
    bench_queue_done();
    *bytes = moved;
    return t;
}

static int single_burst; /* --single: the consumer peeks bursts (rq_peek_burst) */

/* The consumer's half of a single-process round with bursts: BATCH
 * messages by rq_peek_burst, each checked, freed by rq_release_burst. */
static uint64_t single_peek_bursts(const struct run *r, rq *c, uint64_t first, unsigned batch,
                                   uint64_t *seed)
{
    rq_msg_view v[64];
    uint64_t moved = 0;
    for (unsigned k = 0; k < batch;) {
        int n = rq_peek_burst(c, v, batch - k < 64 ? batch - k : 64, 0);
        if (n < 0)
            die("single peek burst", n);
        for (int j = 0; j < n; j++, k++) {
            const unsigned char *m = v[j].data;
            if (v[j].len != next_len(r, seed) || m[0] != (unsigned char)(first + k) ||
                m[v[j].len - 1] != (unsigned char)(first + k))
                die("single: a wrong message", RQ_ECORRUPT);
            moved += v[j].len;
        }
        rq_release_burst(c, (size_t)n);
    }
    return moved;
}

/* One process, no peer: pushes BATCH messages, then peeks and releases
 * them (one at a time, or as bursts with SINGLE_BURST), until
 * R->messages have gone through.  Returns CPU seconds (not
 * wall time: on a loaded machine, time taken by other processes does not
 * count), *BYTES the payload moved.  The cost of the calls themselves,
 * without the cache-line transfers of two busy sides. */
static double run_single(const struct run *r, uint64_t *bytes)
{
    char name[64];
    snprintf(name, sizeof name, "recbench.1.%ld", (long)getpid());
    rq_unlink(name);
    rq *p = NULL, *c = NULL;
    bench_queue_owned(name, &p, &c);
    int rc = rq_open(&c, name, RQ_CONSUMER, &r->cfg);
    if (rc != RQ_OK || (rc = rq_open(&p, name, RQ_PRODUCER, NULL)) != RQ_OK)
        die("single open", rc);
    static unsigned char buf[MIX_MAX];
    const unsigned batch = 64;
    uint64_t pseed = 88172645463325252ull, cseed = pseed, moved = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (uint64_t i = 0; i < r->messages; i += batch) {
        for (unsigned k = 0; k < batch; k++) {
            uint32_t len = next_len(r, &pseed);
            buf[0] = buf[len - 1] = (unsigned char)(i + k);
            if ((rc = rq_push(p, buf, len, 0)) != RQ_OK)
                die("single push", rc);
        }
        if (single_burst) {
            moved += single_peek_bursts(r, c, i, batch, &cseed);
            continue;
        }
        for (unsigned k = 0; k < batch; k++) {
            const void *msg;
            size_t len;
            if ((rc = rq_peek(c, &msg, &len, 0)) != RQ_OK)
                die("single peek", rc);
            const unsigned char *m = msg;
            if (len != next_len(r, &cseed) || m[0] != (unsigned char)(i + k) ||
                m[len - 1] != (unsigned char)(i + k))
                die("single: a wrong message", RQ_ECORRUPT);
            moved += len;
            rq_release(c);
        }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    rq_close(p);
    rq_close(c);
    rq_unlink(name);
    bench_queue_done();
    *bytes = moved;
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static int single_mode;

static double run_either(const struct run *r, uint64_t *bytes)
{
    return single_mode ? run_single(r, bytes) : run_once(r, bytes);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* N interleaved pairs of SLOT and REC; prints each and the median ratio
 * (REC over SLOT) of messages/s (or MB/s with BY_BYTES), min and max. */
static void compare(const char *title, const struct run *slot, const struct run *rec, int pairs,
                    int by_bytes)
{
    double ratio[64], polls[4][64]; /* idle: slots' consumer, producer; records' */
    printf("\n%s\n", title);
    for (int i = 0; i < pairs && i < 64; i++) {
        uint64_t bs = 0, br = 0;
        double ts = 1, tr = 1;
        for (int k = 0; k < 2; k++) { /* slots first in even pairs */
            int is_rec = (i + k) % 2;
            if (is_rec)
                tr = run_either(rec, &br);
            else
                ts = run_either(slot, &bs);
            polls[2 * is_rec][i] = last_consumer_idle; /* 0 in single mode */
            polls[2 * is_rec + 1][i] = last_producer_idle;
        }
        double vs = by_bytes ? bs / ts / 1e6 : slot->messages / ts / 1e6;
        double vr = by_bytes ? br / tr / 1e6 : rec->messages / tr / 1e6;
        ratio[i] = vr / vs;
        printf("  pair %2d: slots %8.2f  records %8.2f %s  ratio %.3f", i + 1, vs, vr,
               by_bytes ? "MB/s" : "M msgs/s", ratio[i]);
        if (!single_mode)
            printf("  idle polls/msg: slots c %.2f p %.2f, records c %.2f p %.2f", polls[0][i],
                   polls[1][i], polls[2][i], polls[3][i]);
        printf("\n");
    }
    int n = pairs < 64 ? pairs : 64;
    qsort(ratio, (size_t)n, sizeof *ratio, cmp_double);
    printf("  records / slots: median %.3f (min %.3f, max %.3f, %d pairs)\n", ratio[n / 2],
           ratio[0], ratio[n - 1], n);
    if (single_mode)
        return;
    double m[4], lo, hi;
    for (int k = 0; k < 4; k++)
        m[k] = median_of(polls[k], n, &lo, &hi);
    printf("  idle polls per message (busy polls that found nothing), medians: slots consumer "
           "%.3f, producer %.3f; records consumer %.3f, producer %.3f\n",
           m[0], m[1], m[2], m[3]);
}

double median_of(double *v, int n, double *lo, double *hi)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *lo = v[0];
    *hi = v[n - 1];
    return v[n / 2];
}

void print_load(const char *when)
{
    char line[128] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = 0;
        fclose(f);
    }
    line[strcspn(line, "\n")] = 0;
    printf("  load average %s: %s\n", when, line);
}

/* Bursts of BURST against single calls, on slots and on records: N rounds
 * of six runs (single calls, rq_push_burst, and the zero-copy
 * rq_reserve_burst_len + rq_commit_burst, each on slots and on records;
 * the consumer peeks its bursts) in rotating order; prints each round and
 * the median gains with their spread. */
static void compare_bursts(const struct run runs[6], int pairs)
{
    enum { SLOT, SLOT_B, REC, REC_B, SLOT_Z, REC_Z, RUNS };
    double gain[4][64], ratio[2][64];
    int n = pairs < 64 ? pairs : 64;
    printf("\n64-byte messages, busy SPSC, two processes, same segment size (73,728 bytes): M "
           "msgs/s; bursts of %u (rq_push_burst, and zero-copy rq_reserve_burst_len + "
           "rq_commit_burst; the consumer rq_peek_burst + rq_release_burst) against single "
           "calls (rq_push / rq_peek + rq_release)\n",
           BURST);
    print_load("before");
    for (int i = 0; i < n; i++) {
        double rate[RUNS];
        for (int j = 0; j < RUNS; j++) {
            int which = (i + j) % RUNS;
            uint64_t bytes;
            double t = run_once(&runs[which], &bytes);
            rate[which] = (double)runs[which].messages / t / 1e6;
        }
        gain[0][i] = rate[SLOT_B] / rate[SLOT];
        gain[1][i] = rate[REC_B] / rate[REC];
        gain[2][i] = rate[SLOT_Z] / rate[SLOT];
        gain[3][i] = rate[REC_Z] / rate[REC];
        ratio[0][i] = rate[REC_B] / rate[SLOT_B];
        ratio[1][i] = rate[REC_Z] / rate[SLOT_Z];
        printf("  round %2d: slots %6.2f, bursts %6.2f, zero-copy %6.2f; records %6.2f, bursts "
               "%6.2f, zero-copy %6.2f\n",
               i + 1, rate[SLOT], rate[SLOT_B], rate[SLOT_Z], rate[REC], rate[REC_B], rate[REC_Z]);
    }
    print_load("after");
    static const char *const what[] = {
        "push burst gain on slots:      ", "push burst gain on records:    ",
        "zero-copy burst gain on slots: ", "zero-copy burst gain on records:"};
    double lo, hi, m;
    for (int g = 0; g < 4; g++) {
        m = median_of(gain[g], n, &lo, &hi);
        printf("  %s median %.2f (min %.2f, max %.2f, %d rounds)\n", what[g], m, lo, hi, n);
    }
    m = median_of(ratio[0], n, &lo, &hi);
    printf("  record / slot push bursts:      median %.3f (min %.3f, max %.3f)\n", m, lo, hi);
    m = median_of(ratio[1], n, &lo, &hi);
    printf("  record / slot zero-copy bursts: median %.3f (min %.3f, max %.3f)\n", m, lo, hi);
}

/* How many mix records fit an empty record queue, against the bound
 * capacity / (mean size + 8) (a header of 8 bytes, as the BPF ring
 * buffer's, with no rounding) and against capacity / (mean size +
 * RQ_RECORD_HEADER) (the 4-byte header alone), and where the bytes go:
 * the headers, the rounding of each record to 8 bytes (which keeps every
 * payload 8-aligned), padding at the wrap, the free tail.  Its checks of
 * the arithmetic fail the benchmark. */
static void capacity_check(const rq_config *cfg)
{
    char name[64];
    snprintf(name, sizeof name, "recbench.fill.%ld", (long)getpid());
    rq_unlink(name);
    rq *p = NULL;
    bench_queue_owned(name, &p, NULL);
    int rc = rq_open(&p, name, RQ_PRODUCER, cfg);
    if (rc != RQ_OK)
        die("fill open", rc);
    static unsigned char buf[MIX_MAX];
    uint64_t seed = 88172645463325252ull, n = 0, bytes = 0, rounding = 0;
    for (;;) {
        uint32_t len = mix_size(&seed);
        if (rq_push(p, buf, len, 0) != RQ_OK)
            break;
        n++;
        bytes += len;
        rounding += RQ_RECORD_SPAN(len) - RQ_RECORD_HEADER - len;
    }
    rq_record_stats st;
    rq_stat_records(p, &st);
    if (n == 0 || st.records != n ||
        st.bytes_used != bytes + n * RQ_RECORD_HEADER + rounding + st.padding_bytes)
        die("fill: the statistics disagree with the records pushed", RQ_ECORRUPT);
    double mean = (double)bytes / (double)n, round = (double)rounding / (double)n;
    double bound8 = (double)cfg->slot_count / (mean + 8);
    double bound4 = (double)cfg->slot_count / (mean + RQ_RECORD_HEADER);
    printf("\nfull record queue of %u bytes: %llu mix records (mean %.1f B); capacity / (mean + "
           "8) = %.0f: %.3f of it; capacity / (mean + %u) = %.0f: %.3f of it\n",
           cfg->slot_count, (unsigned long long)n, mean, bound8, (double)n / bound8,
           RQ_RECORD_HEADER, bound4, (double)n / bound4);
    printf("  a record takes %u bytes of header and %.2f of rounding to 8 on average; %llu bytes "
           "free, padding so far %llu bytes; a slot queue of the same size holds %u\n",
           RQ_RECORD_HEADER, round, (unsigned long long)st.bytes_free,
           (unsigned long long)st.padding_bytes, cfg->slot_count / (MIX_MAX + 8));
    rq_close(p);
    rq_unlink(name);
    bench_queue_done();
}

/* --only NAME: runs configuration NAME of ALL (in the order of the names
 * below) once; NAME + "burst": the consumer peeks bursts (--single).  The
 * exit status. */
static int run_only(const char *only, const struct run *const all[4])
{
    const char *names[] = {"slots64", "records64", "slotsmix", "recordsmix"};
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(names[i]);
        if (strncmp(only, names[i], n) == 0 && strcmp(only + n, "burst") == 0)
            single_burst = 1;
        if (strcmp(only, names[i]) == 0 || single_burst) {
            struct run one = *all[i];
            one.messages = 200000;
            uint64_t bytes;
            double t = run_either(&one, &bytes);
            printf("%s: %llu messages, %llu bytes, %.3f s\n", only,
                   (unsigned long long)one.messages, (unsigned long long)bytes, t);
            return 0;
        }
    }
    fprintf(stderr, "rec_bench: --only: unknown configuration '%s'\n", only);
    return 2;
}

int main(int argc, char **argv)
{
    int pairs = 7, quick = 0, bursts = 0, shapes = 0, drain = 0;
    uint32_t mpsc = 0;
    const char *only = NULL, *out = "/dev/null";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--bursts") == 0)
            bursts = 1;
        else if (strcmp(argv[i], "--shapes") == 0)
            shapes = 1;
        else if (strcmp(argv[i], "--drain") == 0)
            drain = 1;
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--single") == 0)
            single_mode = 1;
        else if (strcmp(argv[i], "--mpsc") == 0)
            mpsc = RQ_MPSC;
        else if (strcmp(argv[i], "--pairs") == 0 && i + 1 < argc)
            pairs = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--spin-pause") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || v < 0 || v > 10000) {
                fprintf(stderr, "rec_bench: --spin-pause wants 0 to 10000\n");
                return 2;
            }
            spin_pause = (int)v;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr,
                    "usage: rec_bench [--pairs N] [--quick] [--mpsc] [--spin-pause N] [--bursts | "
                    "--shapes | --drain [--out PATH]] [--single [--only "
                    "slots64|records64|slotsmix|recordsmix[burst]]]\n");
            return 2;
        }
    }
    if (pairs < 1)
        pairs = 1;
    uint64_t scale = quick ? 20 : 1;
    if (shapes || drain) {
        static const uint32_t segs[] = {64u << 10, 1u << 20, 4u << 20};
        for (size_t i = 0; shapes && i < sizeof segs / sizeof *segs; i++)
            compare_shape(segs[i], quick ? 1 : pairs);
        for (size_t i = 0; i < sizeof segs / sizeof *segs; i++)
            compare_drain(segs[i], quick ? 1 : pairs, quick ? 40 : 500, out);
        return 0;
    }
    /* 64 B: 1024 slots of stride 72 = 73,728 bytes, the ring the same. */
    struct run slot64 = {"slots 64 B", {1024, 64, mpsc, 0}, 64, 4000000 / scale, 0};
    struct run rec64 = {
        "records 64 B", {1024 * 72, 64, RQ_RECORDS | mpsc, 0}, 64, 4000000 / scale, 0};
    if (bursts) {
        struct run runs[6] = {slot64, slot64, rec64, rec64, slot64, rec64};
        runs[1].burst = runs[3].burst = 1;
        runs[4].burst = runs[5].burst = 2;
        runs[1].what = "slot bursts 64 B";
        runs[3].what = "record bursts 64 B";
        runs[4].what = "slot zero-copy bursts 64 B";
        runs[5].what = "record zero-copy bursts 64 B";
        compare_bursts(runs, quick ? 1 : pairs);
        return 0;
    }
    /* mix: 256 slots of 2 KiB (stride 2,056) = 526,336 bytes, the ring the same. */
    struct run slotmix = {"slots 2 KiB, mix", {256, MIX_MAX, mpsc, 0}, 0, 1500000 / scale, 0};
    struct run recmix = {"records, mix",
                         {256 * (MIX_MAX + 8), MIX_MAX, RQ_RECORDS | mpsc, 0},
                         0,
                         1500000 / scale,
                         0};
    if (only) { /* one configuration once, for an instruction count (callgrind) */
        const struct run *all[] = {&slot64, &rec64, &slotmix, &recmix};
        return run_only(only, all);
    }
    const char *how = single_mode ? "one process, CPU time"
                      : mpsc      ? "busy MPSC (one producer, through the lock), two processes"
                                  : "busy SPSC, two processes";
    char title[200];
    snprintf(title, sizeof title,
             "64-byte messages, %s, same segment size (73,728 bytes of ring): M msgs/s", how);
    compare(title, &slot64, &rec64, quick ? 1 : pairs, 0);
    snprintf(title, sizeof title,
             "log-like mix 16 B .. 2 KiB, %s, same segment size (526,336 bytes): MB/s", how);
    compare(title, &slotmix, &recmix, quick ? 1 : pairs, 1);
    capacity_check(&recmix.cfg);
    return 0;
}
