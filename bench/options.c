/*
 * options.c - the command line of rq_bench.
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

void usage(FILE *f)
{
    fprintf(f, "usage: rq_bench [options]\n"
               "  -t, --transports LIST  names or groups (limit, rq, alt, all; layout: two\n"
               "                         other slot layouts of the minimal ring, not in\n"
               "                         all); default: all,\n"
               "                         each in its default modes (--list); a transport\n"
               "                         named here runs in every mode it has\n"
               "  -s, --sizes LIST       message sizes in bytes, >= 8 (default 8,64,4096)\n"
               "      --tput-modes LIST  busy,block: throughput modes for every transport\n"
               "      --lat-modes LIST   busy,block: round-trip modes for every transport\n"
               "      --no-throughput, --no-latency\n"
               "  -d, --duration SEC     seconds per throughput repeat (default 1)\n"
               "  -r, --repeats N        throughput rounds, the median is shown (default 3)\n"
               "  -n, --round-trips N    timed round trips per point (default 200000)\n"
               "      --lat-rounds N     ...measured in N interleaved rounds (default 4)\n"
               "      --slots N          queue depth for every queue (default 1024)\n"
               "      --cpus A,B         sender core, receiver core (default 0,1)\n"
               "      --check full|ends  check every byte, or length+sender+sequence at both\n"
               "                         ends (default ends; full with --quick)\n"
               "      --quick            smoke pass: every transport in every mode, 0.02 s x 1,\n"
               "                         300 round trips, 64 slots, every byte checked\n"
               "      --inject-corruption  self-test: spoil one message per run; succeeds only\n"
               "                         if every run reports it\n"
               "      --csv FILE, --json FILE, --markdown FILE   also write results there\n"
               "                         ('-' = stdout; the table then goes to stderr)\n"
               "      --timeout SEC      per run (default: derived from the run)\n"
               "      --spin-pause N     busy waits: N pause instructions after each poll that\n"
               "                         found nothing, in every transport's busy loop but\n"
               "                         the cache line's (default 0: a plain spin)\n"
               "      --spin-us N        rq's blocking calls: spin N us before the first sleep\n"
               "                         (rq_set_spin_us; default 0)\n"
               "      --list             list the transports and exit\n");
}

static int parse_list(const char *arg, char items[][32], int max)
{
    int n = 0;
    const char *p = arg;
    while (*p && n < max) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= 32)
            return -1;
        memcpy(items[n], p, len);
        items[n][len] = 0;
        n++;
        p += len;
        if (*p == ',')
            p++;
    }
    return *p ? -1 : n;
}

static int parse_modes(const char *arg, unsigned *out)
{
    char items[4][32];
    int n = parse_list(arg, items, 4);
    *out = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(items[i], "busy"))
            *out |= MODE_BIT(MODE_BUSY);
        else if (!strcmp(items[i], "block"))
            *out |= MODE_BIT(MODE_BLOCK);
        else
            return -1;
    }
    return n > 0 ? 0 : -1;
}

/* "all" and the default run leave out the layout experiments: they are
 * other rings, not rq, and answer one question (transports.md,
 * section 4). */
static int in_default_run(const struct transport *t)
{
    return strcmp(t->group, "layout") != 0;
}

static int parse_transports(const char *arg, struct options *o)
{
    char items[32][32];
    int n = parse_list(arg, items, 32);
    if (n <= 0)
        return -1;
    memset(o->selected, 0, sizeof o->selected);
    for (int i = 0; i < n; i++) {
        int hit = 0;
        for (size_t k = 0; k < bench_transport_count; k++) {
            const struct transport *t = &bench_transports[k];
            int by_name = !strcmp(items[i], t->name);
            int in_all = !strcmp(items[i], "all") && in_default_run(t);
            if (by_name || in_all || !strcmp(items[i], t->group)) {
                o->selected[k] = 1;
                o->named[k] |= by_name;
                hit = 1;
            }
        }
        if (!hit) {
            fprintf(stderr, "rq_bench: unknown transport or group '%s' (see --list)\n", items[i]);
            return -1;
        }
    }
    return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

enum {
    O_TPUT_MODES = 256,
    O_LAT_MODES,
    O_LAT_ROUNDS,
    O_NO_TPUT,
    O_NO_LAT,
    O_SLOTS,
    O_CPUS,
    O_CHECK,
    O_QUICK,
    O_INJECT,
    O_CSV,
    O_JSON,
    O_MD,
    O_TIMEOUT,
    O_SPIN_PAUSE,
    O_SPIN_US,
    O_LIST
};

/* Which options were given, for the defaults that depend on them. */
struct given {
    int check; /* -1: not given, else 0 ends / 1 full */
    int lat_rounds, transports, sizes, rt, dur, rep, slots;
};

static void list_transports(void)
{
    for (size_t k = 0; k < bench_transport_count; k++) {
        const struct transport *t = &bench_transports[k];
        static const char *m[] = {"-", "busy", "block", "both"};
        printf("%-16s %-6s tput %-5s rtt %-5s %s%s\n", t->name, t->group, m[t->default_tput],
               m[t->default_lat], t->what, t->available ? "" : " [not built: no Boost]");
    }
}

static int parse_sizes(const char *arg, struct options *o)
{
    char items[MAX_SIZES][32];
    long v;
    int n = parse_list(arg, items, MAX_SIZES);
    if (n <= 0)
        return -1;
    for (int i = 0; i < n; i++) {
        if (parse_long(items[i], 8, 1 << 24, &v) != 0)
            return -1;
        o->sizes[i] = (size_t)v;
    }
    o->nsizes = n;
    return 0;
}

static int parse_cpus(const char *arg, struct options *o)
{
    char items[2][32];
    long v;
    if (parse_list(arg, items, 2) != 2 || parse_long(items[0], 0, CPU_SETSIZE - 1, &v))
        return -1;
    o->cpu_a = (int)v;
    if (parse_long(items[1], 0, CPU_SETSIZE - 1, &v) != 0)
        return -1;
    o->cpu_b = (int)v;
    return 0;
}

static int parse_seconds(const char *arg, double max, double *out)
{
    char *end;
    *out = strtod(arg, &end);
    return *end || !(*out > 0 && *out <= max) ? -1 : 0;
}

/* What is measured: transports, sizes, modes.  1 handled, 0 not ours,
 * -1 bad. */
static int parse_what(int c, const char *arg, struct options *o, struct given *g)
{
    switch (c) {
    case 't':
        g->transports = 1;
        return parse_transports(arg, o) == 0 ? 1 : -1;
    case 's':
        g->sizes = 1;
        return parse_sizes(arg, o) == 0 ? 1 : -1;
    case O_TPUT_MODES:
        return parse_modes(arg, &o->tput_modes) == 0 ? 1 : -1;
    case O_LAT_MODES:
        return parse_modes(arg, &o->lat_modes) == 0 ? 1 : -1;
    case O_NO_TPUT:
        o->do_tput = 0;
        return 1;
    case O_NO_LAT:
        o->do_lat = 0;
        return 1;
    default:
        return 0;
    }
}

/* How long and how many.  1 handled, 0 not ours, -1 bad. */
static int parse_how_much(int c, const char *arg, struct options *o, struct given *g)
{
    long v;
    switch (c) {
    case 'd':
        g->dur = 1;
        return parse_seconds(arg, 3600, &o->duration) == 0 ? 1 : -1;
    case 'r':
        g->rep = 1;
        if (parse_long(arg, 1, MAX_REPEATS, &v) != 0)
            return -1;
        o->repeats = (int)v;
        return 1;
    case 'n':
        g->rt = 1;
        if (parse_long(arg, 100, 100000000, &v) != 0)
            return -1;
        o->round_trips = v;
        return 1;
    case O_LAT_ROUNDS:
        g->lat_rounds = 1;
        if (parse_long(arg, 1, 100, &v) != 0)
            return -1;
        o->lat_rounds = (int)v;
        return 1;
    case O_SLOTS:
        g->slots = 1;
        if (parse_long(arg, 1, 1 << 20, &v) != 0)
            return -1;
        o->slots = (uint32_t)v;
        return 1;
    case O_TIMEOUT:
        return parse_seconds(arg, 1e9, &o->timeout) == 0 ? 1 : -1;
    case O_SPIN_PAUSE:
        if (parse_long(arg, 0, 10000, &v) != 0)
            return -1;
        o->spin_pause = (int)v;
        return 1;
    case O_SPIN_US:
        if (parse_long(arg, 0, RQ_SPIN_US_MAX, &v) != 0)
            return -1;
        o->spin_us = (uint32_t)v;
        return 1;
    default:
        return 0;
    }
}

/* Where, how checked, and what is written.  1 handled, 0 not ours, -1 bad. */
static int parse_run(int c, const char *arg, struct options *o, struct given *g)
{
    switch (c) {
    case O_CPUS:
        return parse_cpus(arg, o) == 0 ? 1 : -1;
    case O_CHECK:
        g->check = !strcmp(arg, "full") ? 1 : !strcmp(arg, "ends") ? 0 : -2;
        return g->check >= 0 ? 1 : -1;
    case O_QUICK:
        o->quick = 1;
        return 1;
    case O_INJECT:
        o->inject = 1;
        return 1;
    case O_CSV:
        o->csv = arg;
        return 1;
    case O_JSON:
        o->json = arg;
        return 1;
    case O_MD:
        o->markdown = arg;
        return 1;
    default:
        return 0;
    }
}

/* The defaults that depend on what was given (--quick: a short smoke pass
 * over every transport in every mode, on a small ring). */
static void apply_defaults(struct options *o, const struct given *g)
{
    if (!g->sizes) {
        static const size_t dflt[] = {8, 64, 4096};
        memcpy(o->sizes, dflt, sizeof dflt);
        o->nsizes = 3;
    }
    if (o->quick) {
        o->duration = g->dur ? o->duration : 0.02;
        o->repeats = g->rep ? o->repeats : 1;
        o->round_trips = g->rt ? o->round_trips : 300;
        o->lat_rounds = g->lat_rounds ? o->lat_rounds : 1;
        o->slots = g->slots ? o->slots : 64; /* a small ring: many wraps, full and empty */
        for (size_t k = 0; !g->transports && k < bench_transport_count; k++)
            o->named[k] = in_default_run(&bench_transports[k]);
    }
    o->check_full = g->check >= 0 ? g->check : o->quick;
    o->rt_per_round = (o->round_trips + o->lat_rounds - 1) / o->lat_rounds;
    o->warmup = o->rt_per_round / 10 > 5000 ? 5000 : o->rt_per_round / 10;
    if (o->warmup < INJECT_AT + 1)
        o->warmup = INJECT_AT + 1;
    /* Every run wraps the ring a few times, however short. */
    o->min_msgs = o->quick ? 4L * o->slots + 16 : 0;
}

/* The long options (the short ones are in parse_options' getopt string). */
static const struct option longopts[] = {{"transports", required_argument, 0, 't'},
                                         {"sizes", required_argument, 0, 's'},
                                         {"tput-modes", required_argument, 0, O_TPUT_MODES},
                                         {"lat-modes", required_argument, 0, O_LAT_MODES},
                                         {"no-throughput", no_argument, 0, O_NO_TPUT},
                                         {"no-latency", no_argument, 0, O_NO_LAT},
                                         {"duration", required_argument, 0, 'd'},
                                         {"repeats", required_argument, 0, 'r'},
                                         {"round-trips", required_argument, 0, 'n'},
                                         {"lat-rounds", required_argument, 0, O_LAT_ROUNDS},
                                         {"slots", required_argument, 0, O_SLOTS},
                                         {"cpus", required_argument, 0, O_CPUS},
                                         {"check", required_argument, 0, O_CHECK},
                                         {"quick", no_argument, 0, O_QUICK},
                                         {"inject-corruption", no_argument, 0, O_INJECT},
                                         {"csv", required_argument, 0, O_CSV},
                                         {"json", required_argument, 0, O_JSON},
                                         {"markdown", required_argument, 0, O_MD},
                                         {"timeout", required_argument, 0, O_TIMEOUT},
                                         {"spin-pause", required_argument, 0, O_SPIN_PAUSE},
                                         {"spin-us", required_argument, 0, O_SPIN_US},
                                         {"list", no_argument, 0, O_LIST},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};

/* The options before the command line: every transport selected. */
static void set_defaults(struct options *o)
{
    *o = (struct options){.do_tput = 1,
                          .do_lat = 1,
                          .duration = 1.0,
                          .repeats = 3,
                          .round_trips = 200000,
                          .lat_rounds = 4,
                          .slots = 1024,
                          .cpu_a = 0,
                          .cpu_b = 1};
    for (size_t k = 0; k < bench_transport_count; k++)
        o->selected[k] = in_default_run(&bench_transports[k]);
}

int parse_options(int argc, char **argv, struct options *o)
{
    struct given g = {.check = -1};
    set_defaults(o);
    int c;
    while ((c = getopt_long(argc, argv, "t:s:d:r:n:h", longopts, NULL)) != -1) {
        if (c == O_LIST || c == 'h') {
            c == O_LIST ? list_transports() : usage(stdout);
            exit(0);
        }
        int rc = parse_what(c, optarg, o, &g);
        if (rc == 0)
            rc = parse_how_much(c, optarg, o, &g);
        if (rc == 0)
            rc = parse_run(c, optarg, o, &g);
        if (rc <= 0)
            return -1;
    }
    if (optind != argc)
        return -1;
    apply_defaults(o, &g);
    return 0;
}

/* Sender and receiver must be allowed on the chosen cores; on a single
 * core machine both share it (and the figures say so). */
void check_cpus(struct options *o)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return;
    int first = -1, second = -1;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &allowed))
            continue;
        if (first < 0)
            first = c;
        else if (second < 0)
            second = c;
    }
    if (!CPU_ISSET(o->cpu_a, &allowed) || !CPU_ISSET(o->cpu_b, &allowed) || o->cpu_a == o->cpu_b) {
        int a = first, b = second >= 0 ? second : first;
        fprintf(stderr, "rq_bench: cores %d,%d not both available; using %d,%d%s\n", o->cpu_a,
                o->cpu_b, a, b, a == b ? " (ONE core: both sides share it)" : "");
        o->cpu_a = a;
        o->cpu_b = b;
    }
}

/* --tput-modes / --lat-modes, else everything a transport named with -t
 * can do, else its defaults. */
unsigned modes_for(unsigned chosen, unsigned can, unsigned dflt, int named)
{
    if (chosen)
        return chosen & can;
    return named ? can : dflt;
}
