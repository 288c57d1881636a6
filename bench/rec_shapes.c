/*
 * rec_shapes.c - rec_bench's log-shipper shapes (--shapes, --drain): the
 * log-like mix through record queues against slots sized for 2 KiB in the
 * same segment, in interleaved pairs, every message checked (length,
 * first and last byte, in order; none lost).
 *
 * Spikes (--shapes): a producer that logs in spikes of SPIKE lines as fast
 * as it can, then idles IDLE_US; a consumer that writes every line to a
 * file and flushes it (a line at a time).  Per pair: MB/s delivered over
 * the run, the producer's time blocked on a full queue, and the spike's
 * admission rate (bytes of a spike per second of the producer's time in
 * it, blocked time included).
 *
 * Periodic drain (--drain, and after the spikes in --shapes): the shape of
 * a log shipper that wakes on a timer (a flush interval) and ships what
 * has accumulated in one write.  The producer pushes the mix as fast as it
 * can, blocking when the queue is full (the time it is blocked is
 * counted: the producer is the application).  The consumer, every tick,
 * takes everything the queue holds with one rq_peek_burst (its MAX is as
 * many messages as the ring can hold, so no cap binds on either kind),
 * checks and copies them into one buffer, write()s it once, and releases
 * the batch after the write (at-least-once, as a shipper must).  A third
 * consumer, "woken", also waits on rq's poll descriptor between ticks: rq
 * wakes it on the first message published after it found the queue empty
 * (rq has no "N waiting" threshold), so it drains again at once; it runs
 * twice, with batches of the ring's worth and of at most DRAIN_BATCH_CAP
 * messages (the same cap on both kinds).  Per pair: MB/s written over the
 * measured time, messages, the producer's blocked share, writes a second,
 * the consumer's CPU time a message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rec_bench.h"

/* ---- a log shipper's shape (--shapes) -------------------------------- */

#define SPIKE 2000u
#define SPIKES 15u
#define IDLE_US 20000u

struct shape_result {
    double wall, blocked, in_spikes; /* seconds */
    uint64_t bytes;
};

static void shape_producer(const char *name, int ready_fd, int go_fd, int out_fd)
{
    rq *p = open_producer_ready(name, "shape producer open", ready_fd, go_fd);
    static unsigned char buf[MIX_MAX];
    int rc;
    uint64_t seed = 88172645463325252ull, i = 0;
    double blocked = 0, in_spikes = 0;
    for (unsigned s = 0; s < SPIKES; s++) {
        double t0 = now_s();
        for (unsigned k = 0; k < SPIKE; k++, i++) {
            uint32_t len = mix_size(&seed);
            buf[0] = buf[len - 1] = (unsigned char)i;
            if ((rc = rq_push(p, buf, len, 0)) == RQ_EAGAIN) {
                double tb = now_s();
                rc = rq_push(p, buf, len, RQ_INFINITE);
                blocked += now_s() - tb;
            }
            if (rc != RQ_OK)
                die("shape push", rc);
        }
        in_spikes += now_s() - t0;
        usleep(IDLE_US);
    }
    double out[2] = {blocked, in_spikes};
    if (write(out_fd, out, sizeof out) != (ssize_t)sizeof out)
        exit(1);
    rq_close(p);
    exit(0);
}

static struct shape_result run_shape(const rq_config *cfg)
{
    char name[64], path[96];
    snprintf(name, sizeof name, "recbench.shape.%ld", (long)getpid());
    snprintf(path, sizeof path, "/tmp/recbench.%ld.log", (long)getpid());
    rq_unlink(name);
    rq *c = NULL;
    bench_queue_owned(name, &c, NULL);
    int rc = rq_open(&c, name, RQ_CONSUMER, cfg);
    if (rc != RQ_OK)
        die("shape consumer open", rc);
    FILE *out = fopen(path, "w");
    int ready[2], go[2], res[2];
    if (!out || pipe(ready) != 0 || pipe(go) != 0 || pipe(res) != 0)
        exit(1);
    pid_t pid = bench_fork(); /* the producer dies with us if we fail */
    if (pid == 0)
        shape_producer(name, ready[1], go[0], res[1]);
    pin(0);
    char ch;
    if (read(ready[0], &ch, 1) != 1)
        exit(1);
    double t0 = now_s();
    if (write(go[1], &ch, 1) != 1)
        exit(1);
    uint64_t seed = 88172645463325252ull;
    struct shape_result r = {0, 0, 0, 0};
    for (uint64_t i = 0; i < (uint64_t)SPIKE * SPIKES; i++) {
        const void *msg;
        size_t len;
        if ((rc = rq_peek(c, &msg, &len, RQ_INFINITE)) != RQ_OK)
            die("shape peek", rc);
        const unsigned char *b = msg;
        if (len != mix_size(&seed) || b[0] != (unsigned char)i || b[len - 1] != (unsigned char)i)
            die("shape: a wrong message", RQ_ECORRUPT);
        fwrite(msg, 1, len, out); /* a line at a time: write, flush, release */
        fflush(out);
        r.bytes += len;
        rq_release(c);
    }
    r.wall = now_s() - t0;
    double got[2];
    if (read(res[0], got, sizeof got) != (ssize_t)sizeof got)
        exit(1);
    r.blocked = got[0];
    r.in_spikes = got[1];
    int status;
    waitpid(pid, &status, 0);
    for (int k = 0; k < 2; k++) {
        close(ready[k]);
        close(go[k]);
        close(res[k]);
    }
    fclose(out);
    unlink(path);
    rq_close(c);
    rq_unlink(name);
    bench_queue_done();
    return r;
}

/* Slot and record queues of SEG bytes each, N interleaved pairs. */
void compare_shape(uint32_t seg, int pairs)
{
    uint32_t slots = seg / (MIX_MAX + 8);
    rq_config slot_cfg = {slots, MIX_MAX, 0, 0};
    rq_config rec_cfg = {(slots * (MIX_MAX + 8)) & ~15u, MIX_MAX, RQ_RECORDS, 0};
    double mbs[2][64], blk[2][64], adm[2][64], rate[64], admr[64];
    int n = pairs < 64 ? pairs : 64;
    printf("\nsegment %u KiB (%u slots of 2 KiB | a ring of %u bytes): spikes of %u mix lines, "
           "%u ms idle, %u spikes; consumer fwrite+fflush per line\n",
           seg / 1024, slots, rec_cfg.slot_count, SPIKE, IDLE_US / 1000, SPIKES);
    for (int i = 0; i < n; i++) {
        struct shape_result r[2];
        for (int j = 0; j < 2; j++) {
            int kind = (i + j) % 2; /* 0 slots, 1 records, alternating first */
            r[kind] = run_shape(kind ? &rec_cfg : &slot_cfg);
        }
        for (int k = 0; k < 2; k++) {
            mbs[k][i] = (double)r[k].bytes / r[k].wall / 1e6;
            blk[k][i] = r[k].blocked * 1e3;
            adm[k][i] = (double)r[k].bytes / r[k].in_spikes / 1e6;
        }
        rate[i] = mbs[1][i] / mbs[0][i];
        admr[i] = adm[1][i] / adm[0][i];
        printf("  pair %2d: delivered MB/s slots %6.2f records %6.2f (ratio %.3f); producer "
               "blocked ms slots %7.1f records %7.1f; spike admission MB/s slots %7.1f records "
               "%7.1f (ratio %.2f)\n",
               i + 1, mbs[0][i], mbs[1][i], rate[i], blk[0][i], blk[1][i], adm[0][i], adm[1][i],
               admr[i]);
    }
    double lo, hi, m = median_of(rate, n, &lo, &hi);
    printf("  delivered MB/s, records / slots: median %.3f (min %.3f, max %.3f)\n", m, lo, hi);
    m = median_of(admr, n, &lo, &hi);
    printf("  spike admission, records / slots: median %.2f (min %.2f, max %.2f)\n", m, lo, hi);
    m = median_of(blk[0], n, &lo, &hi);
    printf("  producer blocked ms, slots: median %.1f (min %.1f, max %.1f)\n", m, lo, hi);
    m = median_of(blk[1], n, &lo, &hi);
    printf("  producer blocked ms, records: median %.1f (min %.1f, max %.1f)\n", m, lo, hi);
}

/* ---- a log shipper's shape: periodic drain (--drain) ----------------- */

/* How the draining consumer wakes: on its tick only, or also when rq's
 * poll descriptor says a message came after it found the queue empty. */
enum drain_wake { DRAIN_TICK, DRAIN_WOKEN };

/* The woken consumer's batch cap in its second run (0 elsewhere: the
 * ring's worth). */
#define DRAIN_BATCH_CAP 256u

struct drain_result {
    double wall, blocked; /* seconds: the measured run; the producer's time in full-queue waits */
    double cpu;           /* seconds of the consumer's CPU time in the measured run */
    uint64_t bytes, messages, writes, pushed;
};

/* Shared by the two processes: the consumer's stop, and when it was
 * given (the producer's blocked time is counted up to it, not through
 * the consumer's last drain). */
struct drain_ctl {
    atomic_int stop;
    double stop_at; /* now_s(), written before stop */
};

/* What the producer reports when it stops. */
struct drain_report {
    uint64_t pushed;
    double blocked;
};

/* Pushes mix lines as fast as it can until *STOP, blocking when the queue
 * is full; reports how many it pushed and how long it was blocked. */
static void drain_producer(const char *name, struct drain_ctl *ctl, int ready_fd, int go_fd,
                           int out_fd)
{
    rq *p = open_producer_ready(name, "drain producer open", ready_fd, go_fd);
    static unsigned char buf[MIX_MAX];
    int rc;
    uint64_t seed = 88172645463325252ull, i = 0;
    double blocked = 0;
    while (!atomic_load_explicit(&ctl->stop, memory_order_acquire)) {
        uint32_t len = mix_size(&seed);
        buf[0] = buf[len - 1] = (unsigned char)i;
        if ((rc = rq_push(p, buf, len, 0)) == RQ_EAGAIN) {
            double tb = now_s();
            rc = rq_push(p, buf, len, RQ_INFINITE); /* the consumer's last drain ends it */
            double te = now_s();
            if (atomic_load_explicit(&ctl->stop, memory_order_acquire) && ctl->stop_at < te)
                te = ctl->stop_at > tb ? ctl->stop_at : tb;
            blocked += te - tb;
        }
        if (rc != RQ_OK)
            die("drain push", rc);
        i++;
    }
    struct drain_report out = {i, blocked};
    if (write(out_fd, &out, sizeof out) != (ssize_t)sizeof out)
        exit(1);
    rq_close(p);
    exit(0);
}

/* The consumer's state: its handle, the views and the one buffer of a
 * batch, the output, the next message it expects. */
struct drainer {
    rq *c;
    rq_msg_view *views;
    size_t max_views;
    unsigned char *buf;
    size_t cap;
    int fd;
    uint64_t seed, next;
};

static void write_all(int fd, const unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("drain write", RQ_ESYS);
        buf += w;
        n -= (size_t)w;
    }
}

/* One batch: everything the queue holds now (one rq_peek_burst, timeout
 * 0: an RQ_EAGAIN arms a poll descriptor), each message checked and copied
 * into one buffer, one write(), then the release.  Counted into R unless
 * R is NULL.  Returns the messages taken, 0 if the queue was empty. */
static int drain_once(struct drainer *d, struct drain_result *r)
{
    int n = rq_peek_burst(d->c, d->views, d->max_views, 0);
    if (n == RQ_EAGAIN)
        return 0;
    if (n < 0)
        die("drain peek", n);
    size_t total = 0;
    for (int k = 0; k < n; k++, d->next++) {
        const unsigned char *b = d->views[k].data;
        size_t len = d->views[k].len;
        if (len != mix_size(&d->seed) || b[0] != (unsigned char)d->next ||
            b[len - 1] != (unsigned char)d->next || total + len > d->cap)
            die("drain: a wrong message", RQ_ECORRUPT);
        memcpy(d->buf + total, b, len);
        total += len;
    }
    write_all(d->fd, d->buf, total);
    int rc = rq_release_burst(d->c, (size_t)n);
    if (rc != RQ_OK)
        die("drain release", rc);
    if (r) {
        r->bytes += total;
        r->messages += (uint64_t)n;
        r->writes++;
    }
    return n;
}

static void sleep_until(double t)
{
    double d = t - now_s();
    if (d <= 0)
        return;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The calling process's CPU seconds. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The measured part, from T0 (the producer's start): RUN_MS of ticks of
 * TICK_MS, a batch at each; with a poll descriptor POLL_FD (else -1), also
 * whenever it says a message came. */
static void drain_ticks(struct drainer *d, struct drain_result *r, double t0, unsigned tick_ms,
                        unsigned run_ms, int poll_fd)
{
    struct pollfd pfd = {poll_fd, POLLIN, 0};
    enum drain_wake wake = poll_fd >= 0 ? DRAIN_WOKEN : DRAIN_TICK;
    double end = t0 + run_ms / 1e3, tick = tick_ms / 1e3, cpu0 = cpu_s();
    for (unsigned t = 1; t0 + t * tick <= end + 1e-9; t++) {
        double at = t0 + t * tick;
        while (wake == DRAIN_WOKEN && now_s() < at) {
            if (drain_once(d, r) > 0)
                continue; /* drain until RQ_EAGAIN, which arms the descriptor */
            int ms = (int)((at - now_s()) * 1e3) + 1, most = rq_poll_timeout(d->c);
            (void)poll(&pfd, 1, most >= 0 && most < ms ? most : ms);
        }
        sleep_until(at);
        drain_once(d, r);
    }
    r->wall = now_s() - t0;
    r->cpu = cpu_s() - cpu0;
}

/* After the measured part: stops the producer, takes the rest (checked,
 * not counted) and checks that every message it pushed came, once. */
static void drain_rest(struct drainer *d, struct drain_ctl *ctl, int res_fd, struct drain_result *r)
{
    ctl->stop_at = now_s();
    atomic_store_explicit(&ctl->stop, 1, memory_order_release);
    struct pollfd pf = {res_fd, POLLIN, 0};
    while (poll(&pf, 1, 0) == 0)
        drain_once(d, NULL); /* frees room for a producer blocked on a full queue */
    struct drain_report got;
    if (read(res_fd, &got, sizeof got) != (ssize_t)sizeof got)
        exit(1);
    while (d->next < got.pushed)
        if (drain_once(d, NULL) == 0)
            die("drain: a message is missing", RQ_ECORRUPT);
    if (drain_once(d, NULL) != 0)
        die("drain: more messages than pushed", RQ_ECORRUPT);
    r->pushed = got.pushed;
    r->blocked = got.blocked;
}

static struct drain_result run_drain(const rq_config *cfg, size_t max_views, size_t cap,
                                     unsigned tick_ms, unsigned run_ms, enum drain_wake wake,
                                     const char *out)
{
    char name[64];
    snprintf(name, sizeof name, "recbench.drain.%ld", (long)getpid());
    rq_unlink(name);
    struct drainer d = {NULL,
                        calloc(max_views, sizeof(rq_msg_view)),
                        max_views,
                        malloc(cap),
                        cap,
                        open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600),
                        88172645463325252ull,
                        0};
    struct drain_ctl *ctl =
        mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int ready[2], go[2], res[2];
    if (!d.views || !d.buf || d.fd < 0 || ctl == MAP_FAILED || pipe(ready) != 0 || pipe(go) != 0 ||
        pipe(res) != 0)
        die("drain setup", RQ_ESYS);
    atomic_init(&ctl->stop, 0);
    ctl->stop_at = 0;
    bench_queue_owned(name, &d.c, NULL);
    int rc = rq_open(&d.c, name, RQ_CONSUMER, cfg);
    if (rc != RQ_OK)
        die("drain consumer open", rc);
    pid_t pid = bench_fork(); /* the producer dies with us if we fail */
    if (pid == 0)
        drain_producer(name, ctl, ready[1], go[0], res[1]);
    pin(0);
    rq_pollable h = RQ_POLLABLE_NONE;
    if (wake == DRAIN_WOKEN && (rc = rq_poll_handle(d.c, &h)) != RQ_OK)
        die("drain poll handle", rc);
    char ch;
    if (read(ready[0], &ch, 1) != 1)
        exit(1);
    double t0 = now_s(); /* before the go: a consumer descheduled here still counts */
    if (write(go[1], &ch, 1) != 1)
        exit(1);
    struct drain_result r = {0, 0, 0, 0, 0, 0, 0};
    drain_ticks(&d, &r, t0, tick_ms, run_ms, h);
    drain_rest(&d, ctl, res[0], &r);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        exit(1);
    for (int k = 0; k < 2; k++) {
        close(ready[k]);
        close(go[k]);
        close(res[k]);
    }
    close(d.fd);
    free(d.views);
    free(d.buf);
    munmap(ctl, sizeof *ctl);
    rq_close(d.c);
    rq_unlink(name);
    bench_queue_done();
    return r;
}

/* Prints the median [min-max] of V[0..N) after LABEL, DIGITS decimals. */
static void print_spread(const char *label, double *v, int n, int digits)
{
    double lo, hi, m = median_of(v, n, &lo, &hi);
    printf("  %s median %.*f [%.*f-%.*f]\n", label, digits, m, digits, lo, digits, hi);
}

/* N interleaved pairs of one consumer schedule (TICK_MS, WAKE). */
static void drain_pairs(const rq_config cfgs[2], const size_t ring_views[2], size_t cap, int n,
                        unsigned tick_ms, unsigned run_ms, enum drain_wake wake, size_t batch,
                        const char *out)
{
    double mbs[2][64], blk[2][64], msgs[2][64], wps[2][64], cpm[2][64], ratio[64];
    size_t views[2];
    for (int k = 0; k < 2; k++)
        views[k] = batch && batch < ring_views[k] ? batch : ring_views[k];
    printf(" consumer: %s every %u ms",
           wake == DRAIN_WOKEN ? "drain when woken (poll descriptor), at the latest" : "drain",
           tick_ms);
    if (batch)
        printf(", batches of at most %zu messages", batch);
    printf("; %u ms a run\n", run_ms);
    for (int i = 0; i < n; i++) {
        struct drain_result r[2];
        for (int j = 0; j < 2; j++) {
            int kind = (i + j) % 2; /* 0 slots, 1 records, alternating first */
            r[kind] = run_drain(&cfgs[kind], views[kind], cap, tick_ms, run_ms, wake, out);
        }
        for (int k = 0; k < 2; k++) {
            mbs[k][i] = (double)r[k].bytes / r[k].wall / 1e6;
            blk[k][i] = 100 * r[k].blocked / r[k].wall;
            msgs[k][i] = (double)r[k].messages;
            wps[k][i] = (double)r[k].writes / r[k].wall;
            cpm[k][i] = r[k].messages ? r[k].cpu * 1e9 / (double)r[k].messages : 0;
        }
        ratio[i] = mbs[1][i] / mbs[0][i];
        printf("  pair %2d: delivered MB/s slots %8.2f records %8.2f (ratio %6.3f); messages "
               "slots %8.0f records %8.0f; producer blocked %% slots %5.1f records %5.1f; "
               "writes/s slots %6.0f records %6.0f; consumer CPU ns/message slots %5.0f "
               "records %5.0f\n",
               i + 1, mbs[0][i], mbs[1][i], ratio[i], msgs[0][i], msgs[1][i], blk[0][i], blk[1][i],
               wps[0][i], wps[1][i], cpm[0][i], cpm[1][i]);
    }
    print_spread("delivered MB/s, records / slots:", ratio, n, 3);
    print_spread("delivered MB/s, slots:          ", mbs[0], n, 1);
    print_spread("delivered MB/s, records:        ", mbs[1], n, 1);
    print_spread("messages delivered, slots:      ", msgs[0], n, 0);
    print_spread("messages delivered, records:    ", msgs[1], n, 0);
    print_spread("producer blocked %, slots:      ", blk[0], n, 1);
    print_spread("producer blocked %, records:    ", blk[1], n, 1);
    print_spread("writes/s, slots:                ", wps[0], n, 0);
    print_spread("writes/s, records:              ", wps[1], n, 0);
    print_spread("consumer CPU ns/message, slots: ", cpm[0], n, 0);
    print_spread("consumer CPU ns/message, records:", cpm[1], n, 0);
}

void compare_drain(uint32_t seg, int pairs, unsigned run_ms, const char *out)
{
    uint32_t slots = seg / (MIX_MAX + 8);
    rq_config cfgs[2] = {{slots, MIX_MAX, 0, 0},
                         {(slots * (MIX_MAX + 8)) & ~15u, MIX_MAX, RQ_RECORDS, 0}};
    /* A burst takes at most slot_count slots, or one record per 8 bytes:
     * asking for that many never caps a drain. */
    size_t views[2] = {slots, cfgs[1].slot_count / 8};
    static const unsigned ticks[] = {1, 5, 20};
    int n = pairs < 64 ? pairs : 64;
    printf("\nsegment %u KiB (%u slots of 2 KiB | a ring of %u bytes): periodic drain, producer "
           "pushing mix lines as fast as it can; one rq_peek_burst, one write() to %s a batch\n",
           seg / 1024, slots, cfgs[1].slot_count, out);
    print_load("before");
    for (size_t t = 0; t < sizeof ticks / sizeof *ticks; t++)
        drain_pairs(cfgs, views, seg, n, ticks[t], run_ms, DRAIN_TICK, 0, out);
    /* Woken, a batch is what has come since the last one; on records a
     * burst also takes what is published while it gathers, so it can grow
     * to the whole ring while the producer waits for the release.  The
     * same cap on both kinds shows what that costs. */
    drain_pairs(cfgs, views, seg, n, 20, run_ms, DRAIN_WOKEN, 0, out);
    drain_pairs(cfgs, views, seg, n, 20, run_ms, DRAIN_WOKEN, DRAIN_BATCH_CAP, out);
    print_load("after");
}
