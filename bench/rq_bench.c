/*
 * rq_bench.c - rq side by side with the physical limit and with what users
 * would pick instead, in one run on one machine (Linux).
 *
 * Every figure comes from real processes: the parent makes the channel,
 * forks a sender pinned to one core and a receiver pinned to another
 * (MPSC: every producer on the sender's core), starts them together and
 * collects what they measured through a shared control block.
 *
 *   throughput   the senders push for --duration seconds, then an end
 *                marker; msgs/s = messages / (last marker seen - start),
 *                median of --repeats runs.
 *   round trip   the initiator sends, the echo sends the message back;
 *                one time stamp per round trip, --round-trips of them
 *                after a warm-up; median, p99, p99.9.
 *
 * Every message carries its sender, its sequence number at both ends
 * (a torn message has two different ones) and, with --check full, a
 * pattern in every byte; the receiver checks each one.  A lost, repeated,
 * reordered, torn or corrupted message fails the run, and any failed run
 * makes the exit status 1: that is what the bench-smoke test relies on.
 * System calls are counted exactly (the raw_syscalls:sys_enter tracepoint
 * through perf_event_open) when the kernel allows it, and rq's own wait and
 * wake counters always: with both sides busy rq must make none.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rq.h>

#ifdef RQ_BENCH_HAVE_BOOST
#include "boost_mq.h"
#endif

struct control *ctl;
uint64_t *lat_samples;
double ticks_per_ns = 1.0;
double timer_cost_ns;
volatile sig_atomic_t stop_requested;
volatile uint64_t fold_sink;

/* ---- results --------------------------------------------------------- */

struct result *results;
size_t nresults;
int failures;

const char *mode_name(enum bench_mode m)
{
    return m == MODE_BUSY ? "busy" : "block";
}

double median(double *v, int n)
{
    double s[MAX_REPEATS];
    memcpy(s, v, (size_t)n * sizeof *v);
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && s[k - 1] > s[k]; k--) {
            double x = s[k];
            s[k] = s[k - 1];
            s[k - 1] = x;
        }
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static double per(int64_t count, uint64_t n)
{
    return count < 0 || n == 0 ? -1 : (double)count / (double)n;
}

void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

/* One throughput run of RES, added to its rounds.  Rounds interleave:
 * round k runs every row once before round k+1 starts, so a slow drift of
 * the machine (other load, the host moving the vCPUs) spreads over all
 * transports instead of landing on one of them. */
static void tput_round(struct result *res, const struct options *o)
{
    struct measured m;
    if (!res->tput_ok)
        return;
    if (measure(res->t, KIND_TPUT, res->size, res->mode, o, &m, res->tput_err) != 0) {
        res->tput_ok = 0;
        return;
    }
    res->rates[res->nrep++] = m.rate;
    res->acc_msgs += m.msgs;
    res->acc_sys = (res->acc_sys < 0 || m.syscalls < 0) ? -1 : res->acc_sys + m.syscalls;
    res->acc_csw += m.vcsw;
    res->acc_rq = (res->acc_rq < 0 || m.rq_calls < 0) ? -1 : res->acc_rq + m.rq_calls;
    res->acc_recv_idle += m.recv_idle;
    res->acc_send_idle += m.send_idle;
    res->preempted += m.ivcsw;
    res->depth = m.depth;
    snprintf(res->note, sizeof res->note, "%s", m.note);
}

static void tput_finish(struct result *res)
{
    if (!res->has_tput || !res->tput_ok)
        return;
    res->rate = median(res->rates, res->nrep);
    for (int k = 0; k < res->nrep; k++)
        if (res->rates[k] > res->best)
            res->best = res->rates[k];
    res->mbps = res->rate * (double)res->size / 1e6;
    res->tput_sys = per(res->acc_sys, res->acc_msgs);
    res->tput_csw = per(res->acc_csw, res->acc_msgs);
    res->tput_rq = per(res->acc_rq, res->acc_msgs);
    res->recv_idle = per((int64_t)res->acc_recv_idle, res->acc_msgs);
    res->send_idle = per((int64_t)res->acc_send_idle, res->acc_msgs);
}

/* One round of RES's round trips, pooled with its other rounds (the
 * rounds interleave like the throughput rounds). */
static void lat_round(struct result *res, const struct options *o)
{
    struct measured m;
    if (!res->lat_ok)
        return;
    if (measure(res->t, KIND_LAT, res->size, res->mode, o, &m, res->lat_err) != 0) {
        res->lat_ok = 0;
        return;
    }
    if (!res->pool) {
        res->pool = malloc((size_t)o->rt_per_round * (size_t)o->lat_rounds * sizeof *res->pool);
        if (!res->pool) {
            res->lat_ok = 0;
            snprintf(res->lat_err, BENCH_ERR_MAX, "out of memory for samples");
            return;
        }
    }
    memcpy(res->pool + res->npool, lat_samples, (size_t)o->rt_per_round * sizeof *res->pool);
    res->npool += o->rt_per_round;
    res->lat_acc_rts += m.msgs;
    res->lat_acc_sys =
        (res->lat_acc_sys < 0 || m.syscalls < 0) ? -1 : res->lat_acc_sys + m.syscalls;
    res->lat_acc_csw += m.vcsw;
    res->lat_acc_rq = (res->lat_acc_rq < 0 || m.rq_calls < 0) ? -1 : res->lat_acc_rq + m.rq_calls;
    res->preempted += m.ivcsw;
    if (!res->depth) {
        res->depth = m.depth;
        snprintf(res->note, sizeof res->note, "%s", m.note);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void lat_finish(struct result *res)
{
    if (!res->has_lat || !res->lat_ok || res->npool == 0)
        return;
    uint64_t *s = res->pool;
    long n = res->npool;
    qsort(s, (size_t)n, sizeof *s, cmp_u64);
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += (double)s[i];
    res->med = (double)s[n / 2] / ticks_per_ns;
    res->p99 = (double)s[(long)((double)n * 0.99)] / ticks_per_ns;
    res->p999 = (double)s[(long)((double)n * 0.999)] / ticks_per_ns;
    res->mean = sum / (double)n / ticks_per_ns;
    res->min = (double)s[0] / ticks_per_ns;
    res->max = (double)s[n - 1] / ticks_per_ns;
    res->round_trips = n;
    res->lat_sys = per(res->lat_acc_sys, res->lat_acc_rts);
    res->lat_csw = per(res->lat_acc_csw, res->lat_acc_rts);
    res->lat_rq = per(res->lat_acc_rq, res->lat_acc_rts);
    free(res->pool);
    res->pool = NULL;
}

/* rq's promise: with both sides busy, no system call.  Its own counters
 * must not move in busy mode (they count every futex wait and wake). */
static void check_busy_rq(struct result *res)
{
    if (res->mode != MODE_BUSY || !res->t->counters)
        return;
    if (res->has_tput && res->tput_ok && res->tput_rq != 0) {
        res->tput_ok = 0;
        snprintf(res->tput_err, BENCH_ERR_MAX, "rq made %.3g waits+wakes per message while busy",
                 res->tput_rq);
    }
    if (res->has_lat && res->lat_ok && res->lat_rq != 0) {
        res->lat_ok = 0;
        snprintf(res->lat_err, BENCH_ERR_MAX, "rq made %.3g waits+wakes per round trip while busy",
                 res->lat_rq);
    }
}

struct result *find(const char *name, size_t size, enum bench_mode mode)
{
    for (size_t i = 0; i < nresults; i++)
        if (!strcmp(results[i].t->name, name) && results[i].size == size && results[i].mode == mode)
            return &results[i];
    return NULL;
}

static void compute_ratios(void)
{
    for (size_t i = 0; i < nresults; i++) {
        struct result *r = &results[i];
        struct result *ring = find("min-ring", r->size, MODE_BUSY);
        struct result *floor =
            find(r->mode == MODE_BUSY ? "cache-line" : "futex", r->size, r->mode);
        if (r->has_tput && r->tput_ok && ring && ring->has_tput && ring->tput_ok && ring->rate > 0)
            r->x_ring = r->rate / ring->rate;
        if (r->has_lat && r->lat_ok && floor && floor->has_lat && floor->lat_ok && floor->med > 0)
            r->x_floor = r->med / floor->med;
    }
}

/* ---- set-up -------------------------------------------------------------- */

static void calibrate_timer(void)
{
    int64_t t0 = now_ns();
    uint64_t k0 = bench_ticks();
    while (now_ns() - t0 < 50000000)
        ;
    int64_t t1 = now_ns();
    uint64_t k1 = bench_ticks();
    ticks_per_ns = (double)(k1 - k0) / (double)(t1 - t0);
    const int reads = 1000000;
    uint64_t a = bench_ticks(), x = 0;
    for (int i = 0; i < reads; i++)
        x += bench_ticks();
    uint64_t b = bench_ticks();
    fold_sink ^= x;
    timer_cost_ns = (double)(b - a) / reads / ticks_per_ns;
}

static int inject_caught(const struct result *r)
{
    int ok = 1;
    if (r->has_tput)
        ok &= !r->tput_ok && strstr(r->tput_err, CORRUPT) != NULL;
    if (r->has_lat && !r->t->pingpong)
        ok &= !r->lat_ok && strstr(r->lat_err, CORRUPT) != NULL;
    if (r->has_lat && r->t->pingpong)
        ok &= r->lat_ok;
    return ok;
}

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Signals: SIGCHLD blocked (the parent reaps with a timeout); SIGINT and
 * SIGTERM stop the run, which still kills its children and removes the
 * objects it made (no SA_RESTART: the waits return at once). */
static void install_signals(void)
{
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    struct sigaction stop = {.sa_handler = on_stop};
    sigemptyset(&stop.sa_mask);
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGTERM, &stop, NULL);
}

/* The control block and the round-trip samples, shared with the children. */
static int map_shared(const struct options *o)
{
    ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    lat_samples = mmap(NULL, (size_t)o->rt_per_round * sizeof *lat_samples, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ctl == MAP_FAILED || lat_samples == MAP_FAILED) {
        perror("rq_bench: mmap");
        return -1;
    }
    return 0;
}

static void add_row(const struct options *o, int si, const struct transport *t, int m, unsigned tm,
                    unsigned lm)
{
    struct result *r = &results[nresults++];
    r->t = t;
    r->size = o->sizes[si];
    r->mode = (enum bench_mode)m;
    r->has_tput = r->tput_ok = (tm & MODE_BIT(m)) != 0;
    r->has_lat = r->lat_ok = (lm & MODE_BIT(m)) != 0;
    r->tput_sys = r->tput_csw = r->tput_rq = -1;
    r->lat_sys = r->lat_csw = r->lat_rq = -1;
}

/* One row per size, transport and mode to measure. */
static int make_rows(const struct options *o)
{
    size_t cap = (size_t)o->nsizes * bench_transport_count * MODE_COUNT;
    results = calloc(cap, sizeof *results);
    if (!results) {
        perror("rq_bench: calloc");
        return -1;
    }
    for (int si = 0; si < o->nsizes; si++) {
        for (size_t k = 0; k < bench_transport_count; k++) {
            const struct transport *t = &bench_transports[k];
            if (!o->selected[k] || !t->available)
                continue;
            unsigned tm =
                o->do_tput ? modes_for(o->tput_modes, t->tput_modes, t->default_tput, o->named[k])
                           : 0;
            unsigned lm =
                o->do_lat ? modes_for(o->lat_modes, t->lat_modes, t->default_lat, o->named[k]) : 0;
            for (int m = 0; m < MODE_COUNT; m++)
                if ((tm | lm) & MODE_BIT(m))
                    add_row(o, si, t, m, tm, lm);
        }
    }
    return 0;
}

/* Throughput, in rounds: round k measures every row once before round
 * k + 1 starts, so that drift spreads over all of them. */
static void run_throughput(const struct options *o)
{
    size_t rows = 0;
    for (size_t i = 0; i < nresults; i++)
        rows += results[i].has_tput;
    for (int rep = 0; rep < o->repeats; rep++) {
        size_t done = 0;
        for (size_t i = 0; i < nresults && !stop_requested; i++) {
            struct result *r = &results[i];
            if (!r->has_tput)
                continue;
            progress("throughput round %d/%d [%zu/%zu] %-12s %-5s %5zu B:", rep + 1, o->repeats,
                     ++done, rows, r->t->name, mode_name(r->mode), r->size);
            tput_round(r, o);
            if (r->tput_ok)
                progress(" %9.3f M msg/s\n", r->rates[r->nrep - 1] / 1e6);
            else
                progress(" FAILED: %s\n", r->tput_err);
        }
    }
    for (size_t i = 0; i < nresults; i++)
        tput_finish(&results[i]);
}

/* Round trips, in rounds as throughput. */
static void run_round_trips(const struct options *o)
{
    size_t rows = 0;
    for (size_t i = 0; i < nresults; i++)
        rows += results[i].has_lat;
    for (int round = 0; round < o->lat_rounds; round++) {
        size_t done = 0;
        for (size_t i = 0; i < nresults && !stop_requested; i++) {
            struct result *r = &results[i];
            if (!r->has_lat)
                continue;
            progress("round trip round %d/%d [%zu/%zu] %-12s %-5s %5zu B:", round + 1,
                     o->lat_rounds, ++done, rows, r->t->name, mode_name(r->mode), r->size);
            lat_round(r, o);
            if (r->lat_ok)
                progress(" %ld done\n", r->npool);
            else
                progress(" FAILED: %s\n", r->lat_err);
        }
    }
    for (size_t i = 0; i < nresults; i++) {
        lat_finish(&results[i]);
        check_busy_rq(&results[i]);
    }
}

/* The table and the files asked for; F is where the table goes. */
static void report_all(FILE *f, const struct options *o, int64_t t0)
{
    print_header(f, o);
    print_table(f, o);
    print_targets(f);
    fprintf(f, "\n%zu points in %.1f s\n", nresults, (double)(now_ns() - t0) / 1e9);
    if (o->csv)
        write_csv(o->csv);
    if (o->json)
        write_json(o->json, o);
    if (o->markdown)
        write_markdown(o->markdown, o);
}

/* --inject-corruption: 0 if the checker caught every spoiled message. */
static int inject_verdict(FILE *f)
{
    int missed = 0;
    for (size_t i = 0; i < nresults; i++) {
        if (inject_caught(&results[i]))
            continue;
        missed++;
        fprintf(f, "NOT CAUGHT %s %s %zu B: %s / %s\n", results[i].t->name,
                mode_name(results[i].mode), results[i].size,
                results[i].tput_err[0] ? results[i].tput_err : "(throughput passed)",
                results[i].lat_err[0] ? results[i].lat_err : "(round trip passed)");
    }
    fprintf(f, "inject-corruption: %s (%zu points, %d not caught)\n",
            missed ? "FAILED" : "every spoiled message was caught", nresults, missed);
    return missed ? 1 : 0;
}

/* A plain run: 1 if any point failed. */
static int verdict(FILE *f)
{
    for (size_t i = 0; i < nresults; i++)
        failures += (results[i].has_tput && !results[i].tput_ok) ||
                    (results[i].has_lat && !results[i].lat_ok);
    print_failures(f);
    if (failures)
        fprintf(f, "%d point(s) FAILED\n", failures);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse_options(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    check_cpus(&o);
    install_signals();
    bench_raise_mq_limit();
    sys_count_init();
    calibrate_timer();
    read_machine();
    read_load(load_start, sizeof load_start);
    if (map_shared(&o) != 0 || make_rows(&o) != 0)
        return 1;
    int64_t t0 = now_ns();
    run_throughput(&o);
    run_round_trips(&o);
    if (stop_requested) {
        fprintf(stderr, "rq_bench: interrupted; nothing left behind\n");
        return 130;
    }
    read_load(load_end, sizeof load_end);
    compute_ratios();
    evaluate_targets(&o);
    int to_stdout = (o.csv && !strcmp(o.csv, "-")) || (o.json && !strcmp(o.json, "-")) ||
                    (o.markdown && !strcmp(o.markdown, "-"));
    FILE *f = to_stdout ? stderr : stdout;
    report_all(f, &o, t0);
    return o.inject ? inject_verdict(f) : verdict(f);
}
