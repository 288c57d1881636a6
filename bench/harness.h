/*
 * harness.h - what the files of the benchmark harness share.  Linux only.
 *
 *   rq_bench.c   main: the rows, the rounds, the results and their ratios
 *   options.c    the command line
 *   measure.c    the messages, the child processes, one measurement
 *   syscount.c   counting system calls (the raw_syscalls tracepoint)
 *   report.c     the targets and the writers (text, CSV, JSON, Markdown)
 *
 * The transports (what is measured) are in transports*.c, behind bench.h:
 * a new kind of queue (a record queue, say) gets a transports_NAME.c and
 * its entries in bench_transports[] (transports.c), and every writer and
 * check here picks it up.
 */
#ifndef RQ_BENCH_HARNESS_H
#define RQ_BENCH_HARNESS_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>

#include "bench.h"

#define MAX_SENDERS 3
#define MAX_CHILDREN (MAX_SENDERS + 1)
#define MAX_REPEATS 15
#define MAX_SIZES 8
#define INJECT_AT 50 /* --inject-corruption: the message that gets spoiled */
#define CORRUPT "corrupt message: "
/* ---- options ------------------------------------------------------------ */

struct options {
    int selected[64]; /* per bench_transports[] entry */
    int named[64];    /* named explicitly (not through a group) */
    size_t sizes[MAX_SIZES];
    int nsizes;
    unsigned tput_modes; /* 0: each transport's default */
    unsigned lat_modes;
    int do_tput, do_lat;
    double duration;
    int repeats;
    long round_trips, warmup; /* warm-up: per round */
    int lat_rounds;           /* round trips are measured in this many rounds */
    long rt_per_round;
    uint32_t slots;
    int cpu_a, cpu_b;
    int check_full;
    int quick, inject;
    int spin_pause;   /* pauses after each busy poll that found nothing */
    uint32_t spin_us; /* rq handles spin this long before they sleep */
    long min_msgs;
    double timeout; /* per run; 0: derived */
    const char *csv, *json, *markdown;
};

/* ---- the control block the children report through ------------------- */

struct child_out {
    int64_t t_start_ns, t_end_ns;
    uint64_t msgs;
    int64_t syscalls; /* -1: could not be counted */
    int64_t vcsw, ivcsw;
    uint64_t idle; /* busy polls that found nothing (bench_idle) */
    char err[BENCH_ERR_MAX];
};

struct control {
    _Atomic uint32_t ready;
    _Atomic uint32_t go; /* futex word */
    struct child_out out[MAX_CHILDREN];
};

extern struct control *ctl;
extern uint64_t *lat_samples; /* shared: the initiator's round trips, in ticks */
extern double ticks_per_ns;
extern double timer_cost_ns;
extern volatile sig_atomic_t stop_requested; /* SIGINT/SIGTERM: stop, clean up */
extern volatile uint64_t fold_sink;          /* keeps reads that only fold bytes */

int64_t now_ns(void);

/* ---- counting system calls (syscount.c) ---- */

struct sys_count {
    int fd;
    int64_t baseline;
    struct rusage ru;
};

extern char sys_count_why[160];
void sys_count_init(void);
void sys_count_open(struct sys_count *s);
void sys_count_start(struct sys_count *s);
void sys_count_stop(struct sys_count *s, struct child_out *out);

/* ---- one measurement (measure.c) ---- */

enum kind { KIND_TPUT, KIND_LAT };

struct measured {
    double rate; /* throughput; round trips are in lat_samples */
    /* costs */
    uint64_t msgs;    /* messages (throughput) or round trips incl. warm-up */
    int64_t syscalls; /* all children; -1 unknown */
    int64_t vcsw, ivcsw;
    int64_t rq_calls;              /* rq's waits + wakes; -1: not rq */
    uint64_t recv_idle, send_idle; /* busy polls that found nothing: the
                                      receiver's, all senders' */
    uint32_t depth;
    char note[96];
};

int measure(const struct transport *t, enum kind kind, size_t size, enum bench_mode mode,
            const struct options *o, struct measured *m, char *err);

/* ---- results (rq_bench.c) ---- */

struct result {
    const struct transport *t;
    size_t size;
    enum bench_mode mode;
    int has_tput, has_lat;
    int tput_ok, lat_ok;
    char tput_err[BENCH_ERR_MAX], lat_err[BENCH_ERR_MAX];
    int nrep;
    double rates[MAX_REPEATS];
    double rate, mbps, tput_sys, tput_csw, tput_rq; /* per message; -1 unknown */
    double recv_idle, send_idle;                    /* busy polls that found nothing,
                                                       per message */
    double med, p99, p999, mean, min, max;
    double lat_sys, lat_csw, lat_rq; /* per round trip; -1 unknown */
    long round_trips;
    uint64_t *pool; /* every timed round trip of every round, ticks */
    long npool;
    uint64_t lat_acc_rts;
    int64_t lat_acc_sys, lat_acc_csw, lat_acc_rq;
    double best; /* highest throughput of the rounds */
    /* throughput sums over the rounds so far */
    uint64_t acc_msgs;
    int64_t acc_sys, acc_csw, acc_rq;
    uint64_t acc_recv_idle, acc_send_idle;
    int64_t preempted; /* involuntary context switches, all runs of the row */
    uint32_t depth;
    char note[96];
    double x_ring, x_floor; /* 0: no reference */
};

extern struct result *results;
extern size_t nresults;
extern int failures;
const char *mode_name(enum bench_mode m);
double median(double *v, int n);
struct result *find(const char *name, size_t size, enum bench_mode mode);
void progress(const char *fmt, ...);

/* ---- the command line (options.c) ---- */

void usage(FILE *f);
int parse_options(int argc, char **argv, struct options *o);
void check_cpus(struct options *o);
unsigned modes_for(unsigned chosen, unsigned can, unsigned dflt, int named);

/* ---- targets and writers (report.c) ---- */

extern char load_start[64], load_end[64];
void evaluate_targets(const struct options *o);
void read_machine(void);
void read_load(char *buf, size_t n);
void print_header(FILE *f, const struct options *o);
void print_table(FILE *f, const struct options *o);
void print_targets(FILE *f);
void print_failures(FILE *f);
void write_csv(const char *path);
void write_json(const char *path, const struct options *o);
void write_markdown(const char *path, const struct options *o);

#endif /* RQ_BENCH_HARNESS_H */
