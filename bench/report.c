/*
 * report.c - the targets (evaluated at 64-byte messages) and the writers: the text
 * table, CSV, JSON and Markdown.
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

/* ---- targets, at 64-byte messages ----------------------------- */

struct target {
    const char *text;
    int measured, met;
    double value, limit;
    char detail[160];
};

static struct target targets[8];
static int ntargets;

static double best_rate(const char *name, size_t size, const char **mode)
{
    double best = 0;
    for (int m = 0; m < MODE_COUNT; m++) {
        struct result *r = find(name, size, (enum bench_mode)m);
        if (r && r->has_tput && r->tput_ok && r->rate > best) {
            best = r->rate;
            *mode = mode_name((enum bench_mode)m);
        }
    }
    return best;
}

static void target_ratio(const char *text, double num, double den, int at_least, double limit,
                         const char *detail)
{
    struct target *g = &targets[ntargets++];
    g->text = text;
    g->limit = limit;
    g->measured = num > 0 && den > 0;
    if (g->measured) {
        g->value = num / den;
        g->met = at_least ? g->value >= limit : g->value <= limit;
    }
    snprintf(g->detail, sizeof g->detail, "%s", detail);
}

void evaluate_targets(const struct options *o)
{
    const size_t s = 64;
    char d[160];
    const char *bm = "-", *pm = "-", *b2m = "-", *r2m = "-";
    struct result *spsc = find("rq-spsc", s, MODE_BUSY),
                  *spsc_block = find("rq-spsc", s, MODE_BLOCK);
    struct result *ring = find("min-ring", s, MODE_BUSY), *line = find("cache-line", s, MODE_BUSY);
    struct result *fx = find("futex", s, MODE_BLOCK);
    double rq_rate = spsc && spsc->tput_ok ? spsc->rate : 0;
    double boost = best_rate("boost-mq", s, &bm), pmq = best_rate("posix-mq", s, &pm);
    double boost2 = best_rate("boost-mq-2p", s, &b2m), rq2 = best_rate("rq-mpsc-2p", s, &r2m);

    snprintf(d, sizeof d, "rq-spsc busy vs min-ring, 64 B");
    target_ratio("rq SPSC busy throughput >= 0.8 x minimal ring", rq_rate,
                 ring && ring->tput_ok ? ring->rate : 0, 1, 0.8, d);
    snprintf(d, sizeof d, "rq-spsc busy vs boost-mq %s (its best mode), 64 B", bm);
    target_ratio("rq SPSC busy throughput >= 5 x Boost message_queue", rq_rate, boost, 1, 5, d);
    snprintf(d, sizeof d, "rq-spsc busy vs posix-mq %s (its best mode), 64 B", pm);
    target_ratio("rq SPSC busy throughput >= 20 x POSIX mq", rq_rate, pmq, 1, 20, d);
    snprintf(d, sizeof d, "median round trip, rq-spsc busy vs cache-line, 64 B");
    target_ratio("rq SPSC busy round trip <= 1.5 x cache-line ping-pong",
                 spsc && spsc->has_lat && spsc->lat_ok ? spsc->med : 0,
                 line && line->lat_ok ? line->med : 0, 0, 1.5, d);
    snprintf(d, sizeof d, "median round trip, rq-spsc block vs futex, 64 B%s",
             o->spin_us ? "; rq spins first (--spin-us): not the sleeping wait" : "");
    target_ratio("rq blocking round trip <= 1.1 x raw futex ping-pong",
                 spsc_block && spsc_block->has_lat && spsc_block->lat_ok ? spsc_block->med : 0,
                 fx && fx->lat_ok ? fx->med : 0, 0, 1.1, d);
    snprintf(d, sizeof d, "rq-mpsc-2p %s vs boost-mq-2p %s (best modes), 64 B", r2m, b2m);
    target_ratio("rq MPSC 2 producers >= 1.5 x Boost message_queue", rq2, boost2, 1, 1.5, d);
}

/* ---- output ------------------------------------------------------------ */

static char machine_cpu[128] = "unknown", machine_kernel[3 * 65 + 3] = "unknown";
static char when[32];
char load_start[64], load_end[64];

void read_machine(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *v = strchr(line, ':');
            if (v) {
                v += 1 + strspn(v + 1, " \t");
                v[strcspn(v, "\n")] = 0;
                snprintf(machine_cpu, sizeof machine_cpu, "%s", v);
            }
            break;
        }
    }
    if (f)
        fclose(f);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(machine_kernel, sizeof machine_kernel, "%s %s %s", u.sysname, u.release,
                 u.machine);
    time_t t = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
}

void read_load(char *buf, size_t n)
{
    FILE *f = fopen("/proc/loadavg", "r");
    buf[0] = 0;
    if (f) {
        if (fgets(buf, (int)n, f))
            buf[strcspn(buf, "\n")] = 0;
        fclose(f);
    }
}

static const char *boost_version(void)
{
#ifdef RQ_BENCH_HAVE_BOOST
    return bench_boost_version();
#else
    return "not built (Boost headers not found at configure time)";
#endif
}

static void fmt_num(char *b, size_t n, double v, const char *f, int ok)
{
    if (!ok)
        snprintf(b, n, "-");
    else
        snprintf(b, n, f, v);
}

static void fmt_per(char *b, size_t n, double v)
{
    if (v < 0)
        snprintf(b, n, "n/a");
    else if (v == 0)
        snprintf(b, n, "0");
    else
        snprintf(b, n, v < 0.01 ? "%.4f" : "%.2f", v);
}

void print_header(FILE *f, const struct options *o)
{
    fprintf(f, "rq_bench %d.%d.%d  %s\n", RQ_VERSION_MAJOR, RQ_VERSION_MINOR, RQ_VERSION_PATCH,
            when);
    fprintf(f, "cpu: %s, %ld online; pinned: sender(s) cpu %d, receiver cpu %d\n", machine_cpu,
            sysconf(_SC_NPROCESSORS_ONLN), o->cpu_a, o->cpu_b);
    fprintf(f, "kernel: %s; compiler: %s; Boost: %s\n", machine_kernel, __VERSION__,
            boost_version());
    fprintf(f, "load average at start: %s; at end: %s\n", load_start, load_end);
    fprintf(f,
            "throughput: median of %d interleaved rounds of %.2f s; round trip: %ld in %d "
            "interleaved rounds, each after %ld warm-up; queue depth %u\n",
            o->repeats, o->duration, o->rt_per_round * o->lat_rounds, o->lat_rounds, o->warmup,
            o->slots);
    fprintf(f, "every message checked: %s\n",
            o->check_full ? "every byte" : "length, sender, sequence at both ends");
    if (o->spin_pause)
        fprintf(f, "busy waits: %d pause instructions after each poll that found nothing\n",
                o->spin_pause);
    if (o->spin_us)
        fprintf(f, "rq's blocking calls: a spin of %u us before the first sleep (rq_set_spin_us)\n",
                o->spin_us);
    fprintf(f,
            "timer: %.3f ticks/ns, one read (%.1f ns) inside every round-trip sample; "
            "system calls: %s\n",
            ticks_per_ns, timer_cost_ns, sys_count_why);
#ifndef __OPTIMIZE__
    fprintf(f, "WARNING: built without optimisation; use the release preset for figures\n");
#endif
}

enum { NCELLS = 10 };

/* The figures of one row as text, "-" where there is none. */
static void row_cells(const struct result *r, char cell[NCELLS][24])
{
    int tok = r->has_tput && r->tput_ok, lok = r->has_lat && r->lat_ok;
    fmt_num(cell[0], 24, r->rate / 1e6, "%.3f", tok);
    fmt_num(cell[1], 24, r->best / 1e6, "%.3f", tok);
    fmt_num(cell[2], 24, r->mbps, "%.1f", tok);
    fmt_num(cell[3], 24, r->x_ring, "%.2f", tok && r->x_ring > 0);
    if (tok)
        fmt_per(cell[4], 24, r->tput_sys);
    else
        snprintf(cell[4], 24, "-");
    fmt_num(cell[5], 24, r->med, "%.0f", lok);
    fmt_num(cell[6], 24, r->p99, "%.0f", lok);
    fmt_num(cell[7], 24, r->p999, "%.0f", lok);
    fmt_num(cell[8], 24, r->x_floor, "%.2f", lok && r->x_floor > 0);
    if (lok)
        fmt_per(cell[9], 24, r->lat_sys);
    else
        snprintf(cell[9], 24, "-");
}

static int row_failed(const struct result *r)
{
    return (r->has_tput && !r->tput_ok) || (r->has_lat && !r->lat_ok);
}

void print_table(FILE *f, const struct options *o)
{
    static const char *fmt = "%-12s %-5s%c%6s | %8s %8s %8s %6s %7s | %8s %8s %9s %7s %6s\n";
    fprintf(f, "\n");
    fprintf(f, fmt, "transport", "mode", ' ', "size", "Mmsg/s", "best", "MB/s", "x ring", "sys/msg",
            "rtt med", "p99", "p99.9", "x floor", "sys/rt");
    fprintf(f, fmt, "", "", ' ', "bytes", "median", "round", "", "", "", "ns", "ns", "ns", "", "");
    for (int si = 0; si < o->nsizes; si++) {
        fprintf(f, "%.*s\n", 112,
                "-----------------------------------------------------------------------------"
                "------------------------------------------------");
        for (size_t i = 0; i < nresults; i++) {
            const struct result *r = &results[i];
            if (r->size != o->sizes[si])
                continue;
            char c[NCELLS][24], size[24];
            row_cells(r, c);
            snprintf(size, sizeof size, "%zu", r->size);
            fprintf(f, fmt, r->t->name, mode_name(r->mode), r->preempted > 0 ? '*' : ' ', size,
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]);
        }
    }
    fprintf(f, "\nMmsg/s: median of the rounds, best: the highest round.  x ring: median / "
               "min-ring busy median (same size).\n");
    fprintf(f, "x floor: median round trip / cache-line (busy rows) or futex (block rows), "
               "same size.\n");
    fprintf(f, "sys/msg, sys/rt: system calls of all processes per message / per round trip; "
               "rq busy rows are checked to make no wait or wake call.\n");
    fprintf(f, "*: another process took a core from a measured process during the row "
               "(involuntary context switches): the machine was not quiet.\n");
    /* Queue depths that are not --slots (the transport decides). */
    const struct transport *said[64] = {0};
    size_t nsaid = 0;
    for (size_t i = 0; i < nresults; i++) {
        const struct result *r = &results[i];
        int seen = 0;
        for (size_t k = 0; k < nsaid; k++)
            seen |= said[k] == r->t;
        if (seen || !r->note[0] || nsaid == 64)
            continue;
        said[nsaid++] = r->t;
        fprintf(f, "%s: %s\n", r->t->name, r->note);
    }
}

void print_targets(FILE *f)
{
    fprintf(f, "\nTargets:\n");
    for (int i = 0; i < ntargets; i++) {
        const struct target *g = &targets[i];
        if (!g->measured)
            fprintf(f, "  [ n/a  ] %-55s not measured in this run\n", g->text);
        else
            fprintf(f, "  [%s] %-55s %.2f  (%s)\n", g->met ? " met  " : "MISSED", g->text, g->value,
                    g->detail);
    }
}

void print_failures(FILE *f)
{
    for (size_t i = 0; i < nresults; i++) {
        const struct result *r = &results[i];
        if (r->has_tput && !r->tput_ok)
            fprintf(f, "FAILED %s %s %zu B throughput: %s\n", r->t->name, mode_name(r->mode),
                    r->size, r->tput_err);
        if (r->has_lat && !r->lat_ok)
            fprintf(f, "FAILED %s %s %zu B round trip: %s\n", r->t->name, mode_name(r->mode),
                    r->size, r->lat_err);
    }
}

static FILE *open_out(const char *path)
{
    if (!strcmp(path, "-"))
        return stdout;
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "rq_bench: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

static void close_out(FILE *f)
{
    if (f && f != stdout)
        fclose(f);
}

static void csv_num(FILE *f, double v, int ok)
{
    if (ok)
        fprintf(f, ",%.6g", v);
    else
        fprintf(f, ",");
}

void write_csv(const char *path)
{
    FILE *f = open_out(path);
    if (!f)
        return;
    fprintf(f, "transport,group,producers,mode,size,msgs_per_s,msgs_per_s_best,mb_per_s,x_ring,sys_"
               "per_msg,"
               "csw_per_msg,rq_calls_per_msg,rtt_median_ns,rtt_p99_ns,rtt_p999_ns,rtt_mean_ns,"
               "rtt_min_ns,rtt_max_ns,x_floor,sys_per_rt,csw_per_rt,depth,status,preempted,repeats,"
               "recv_idle_per_msg,send_idle_per_msg\n");
    for (size_t i = 0; i < nresults; i++) {
        const struct result *r = &results[i];
        int tok = r->has_tput && r->tput_ok, lok = r->has_lat && r->lat_ok;
        fprintf(f, "%s,%s,%d,%s,%zu", r->t->name, r->t->group, r->t->senders, mode_name(r->mode),
                r->size);
        csv_num(f, r->rate, tok);
        csv_num(f, r->best, tok);
        csv_num(f, r->mbps, tok);
        csv_num(f, r->x_ring, tok && r->x_ring > 0);
        csv_num(f, r->tput_sys, tok && r->tput_sys >= 0);
        csv_num(f, r->tput_csw, tok && r->tput_csw >= 0);
        csv_num(f, r->tput_rq, tok && r->tput_rq >= 0);
        csv_num(f, r->med, lok);
        csv_num(f, r->p99, lok);
        csv_num(f, r->p999, lok);
        csv_num(f, r->mean, lok);
        csv_num(f, r->min, lok);
        csv_num(f, r->max, lok);
        csv_num(f, r->x_floor, lok && r->x_floor > 0);
        csv_num(f, r->lat_sys, lok && r->lat_sys >= 0);
        csv_num(f, r->lat_csw, lok && r->lat_csw >= 0);
        fprintf(f, ",%u,%s,%lld,", r->depth, row_failed(r) ? "failed" : "ok",
                (long long)r->preempted);
        for (int k = 0; k < r->nrep; k++)
            fprintf(f, "%s%.6g", k ? ";" : "", r->rates[k]);
        csv_num(f, r->recv_idle, tok && r->recv_idle >= 0);
        csv_num(f, r->send_idle, tok && r->send_idle >= 0);
        fprintf(f, "\n");
    }
    close_out(f);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, const char *key, double v, int ok)
{
    fprintf(f, ", \"%s\": ", key);
    if (ok)
        fprintf(f, "%.6g", v);
    else
        fprintf(f, "null");
}

static void json_machine(FILE *f)
{
    fprintf(f, ",\n  \"machine\": {\"cpu\": ");
    json_str(f, machine_cpu);
    fprintf(f, ", \"cpus_online\": %ld, \"kernel\": ", sysconf(_SC_NPROCESSORS_ONLN));
    json_str(f, machine_kernel);
    fprintf(f, ", \"compiler\": ");
    json_str(f, __VERSION__);
    fprintf(f, ", \"boost\": ");
    json_str(f, boost_version());
    fprintf(f, ", \"load_start\": ");
    json_str(f, load_start);
    fprintf(f, ", \"load_end\": ");
    json_str(f, load_end);
    fprintf(f, ", \"ticks_per_ns\": %.6g, \"timer_read_ns\": %.3g, \"syscall_counting\": ",
            ticks_per_ns, timer_cost_ns);
    json_str(f, sys_count_why);
#ifdef __OPTIMIZE__
    fprintf(f, ", \"optimized\": true},\n");
#else
    fprintf(f, ", \"optimized\": false},\n");
#endif
}

static void json_throughput(FILE *f, const struct result *r)
{
    int tok = r->has_tput && r->tput_ok;
    fprintf(f, ",\n     \"throughput\": {\"ok\": %s", tok ? "true" : "false");
    if (!tok) {
        fprintf(f, ", \"error\": ");
        json_str(f, r->tput_err);
    }
    fprintf(f, ", \"repeats\": [");
    for (int k = 0; k < r->nrep; k++)
        fprintf(f, "%s%.6g", k ? ", " : "", r->rates[k]);
    fprintf(f, "]");
    json_num(f, "msgs_per_s", r->rate, tok);
    json_num(f, "msgs_per_s_best", r->best, tok);
    json_num(f, "mb_per_s", r->mbps, tok);
    json_num(f, "x_ring", r->x_ring, tok && r->x_ring > 0);
    json_num(f, "syscalls_per_msg", r->tput_sys, tok && r->tput_sys >= 0);
    json_num(f, "voluntary_csw_per_msg", r->tput_csw, tok && r->tput_csw >= 0);
    json_num(f, "rq_waits_wakes_per_msg", r->tput_rq, tok && r->tput_rq >= 0);
    json_num(f, "receiver_idle_polls_per_msg", r->recv_idle, tok && r->recv_idle >= 0);
    json_num(f, "sender_idle_polls_per_msg", r->send_idle, tok && r->send_idle >= 0);
    fprintf(f, "}");
}

static void json_round_trip(FILE *f, const struct result *r)
{
    int lok = r->has_lat && r->lat_ok;
    fprintf(f, ",\n     \"round_trip\": {\"ok\": %s", lok ? "true" : "false");
    if (!lok) {
        fprintf(f, ", \"error\": ");
        json_str(f, r->lat_err);
    }
    fprintf(f, ", \"count\": %ld", r->round_trips);
    json_num(f, "median_ns", r->med, lok);
    json_num(f, "p99_ns", r->p99, lok);
    json_num(f, "p999_ns", r->p999, lok);
    json_num(f, "mean_ns", r->mean, lok);
    json_num(f, "min_ns", r->min, lok);
    json_num(f, "max_ns", r->max, lok);
    json_num(f, "x_floor", r->x_floor, lok && r->x_floor > 0);
    json_num(f, "syscalls_per_rt", r->lat_sys, lok && r->lat_sys >= 0);
    json_num(f, "voluntary_csw_per_rt", r->lat_csw, lok && r->lat_csw >= 0);
    json_num(f, "rq_waits_wakes_per_rt", r->lat_rq, lok && r->lat_rq >= 0);
    fprintf(f, "}");
}

static void json_row(FILE *f, const struct result *r, int last)
{
    fprintf(f,
            "    {\"transport\": \"%s\", \"group\": \"%s\", \"producers\": %d, "
            "\"mode\": \"%s\", \"size\": %zu, \"depth\": %u, \"preempted\": %lld, "
            "\"note\": ",
            r->t->name, r->t->group, r->t->senders, mode_name(r->mode), r->size, r->depth,
            (long long)r->preempted);
    json_str(f, r->note);
    if (r->has_tput)
        json_throughput(f, r);
    if (r->has_lat)
        json_round_trip(f, r);
    fprintf(f, "}%s\n", last ? "" : ",");
}

static void json_targets(FILE *f)
{
    fprintf(f, "  ],\n  \"targets\": [\n");
    for (int i = 0; i < ntargets; i++) {
        const struct target *g = &targets[i];
        fprintf(f, "    {\"target\": ");
        json_str(f, g->text);
        fprintf(f, ", \"limit\": %g, \"measured\": %s", g->limit, g->measured ? "true" : "false");
        json_num(f, "value", g->value, g->measured);
        fprintf(f, ", \"met\": %s, \"detail\": ", g->measured && g->met ? "true" : "false");
        json_str(f, g->detail);
        fprintf(f, "}%s\n", i + 1 < ntargets ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
}

void write_json(const char *path, const struct options *o)
{
    FILE *f = open_out(path);
    if (!f)
        return;
    fprintf(f, "{\n  \"rq_version\": \"%d.%d.%d\", \"date\": ", RQ_VERSION_MAJOR, RQ_VERSION_MINOR,
            RQ_VERSION_PATCH);
    json_str(f, when);
    json_machine(f);
    fprintf(f,
            "  \"options\": {\"duration_s\": %g, \"repeats\": %d, \"round_trips\": %ld, "
            "\"lat_rounds\": %d, \"warmup_per_round\": %ld, \"slots\": %u, "
            "\"cpu_sender\": %d, \"cpu_receiver\": %d, \"check\": \"%s\", \"spin_pause\": %d, "
            "\"spin_us\": %u},\n",
            o->duration, o->repeats, o->rt_per_round * o->lat_rounds, o->lat_rounds, o->warmup,
            o->slots, o->cpu_a, o->cpu_b, o->check_full ? "full" : "ends", o->spin_pause,
            o->spin_us);
    fprintf(f, "  \"results\": [\n");
    for (size_t i = 0; i < nresults; i++)
        json_row(f, &results[i], i + 1 == nresults);
    json_targets(f);
    close_out(f);
}

void write_markdown(const char *path, const struct options *o)
{
    FILE *f = open_out(path);
    if (!f)
        return;
    fprintf(f, "| transport | mode | size B | M msg/s | best | MB/s | x ring | sys/msg "
               "| rtt median ns | p99 ns | p99.9 ns | x floor | sys/rt |\n");
    fprintf(f, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (int si = 0; si < o->nsizes; si++) {
        for (size_t i = 0; i < nresults; i++) {
            const struct result *r = &results[i];
            if (r->size != o->sizes[si])
                continue;
            char c[NCELLS][24];
            row_cells(r, c);
            fprintf(f, "| %s%s | %s%s | %zu |", r->t->name, row_failed(r) ? " (FAILED)" : "",
                    mode_name(r->mode), r->preempted > 0 ? "\\*" : "", r->size);
            for (int k = 0; k < NCELLS; k++)
                fprintf(f, " %s |", c[k]);
            fprintf(f, "\n");
        }
    }
    close_out(f);
}
