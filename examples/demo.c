/*
 * rq_demo - the crash-recovery demo.
 *
 *   rq_demo [SECONDS]          (default 10)
 *
 * Forks a producer and a consumer that exchange numbered, checksummed
 * messages through an rq queue as fast as they can, and SIGKILLs one or the
 * other (sometimes both) again and again, restarting each at once.  A live
 * line shows what was sent, received, redelivered and lost, and how many
 * slots are free.  At the end the demo lets both sides finish and checks
 * that every message arrived, in order, and that the queue has all its
 * slots back.  Exit status 0 means nothing was lost.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rq.h"

#define SLOTS 8u
#define SLOT_SIZE 128u

/* The demo's own ledger, in memory shared by every process it forks. */
struct ledger {
    char name[64];
    volatile uint64_t limit;    /* stop after this many messages */
    volatile uint64_t sent;     /* producer: messages confirmed pushed */
    volatile uint64_t received; /* consumer: next sequence number expected */
    volatile uint64_t redelivered, lost, torn;
};
static struct ledger *led;

static uint32_t checksum(uint64_t seq)
{
    uint64_t x = seq * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x ^ (x >> 29));
}

static int producer(void)
{
    rq *q;
    if (rq_open(&q, led->name, RQ_PRODUCER, NULL) != RQ_OK)
        return 1;
    for (uint64_t seq = led->sent; seq < led->limit; seq++) {
        unsigned char msg[SLOT_SIZE];
        uint32_t sum = checksum(seq);
        size_t len = 12 + (size_t)(seq % (SLOT_SIZE - 12));
        memcpy(msg, &seq, 8);
        memcpy(msg + 8, &sum, 4);
        memset(msg + 12, (int)(seq & 0xff), len - 12);
        if (rq_push(q, msg, len, RQ_INFINITE) != RQ_OK)
            return 1;
        __atomic_store_n(&led->sent, seq + 1, __ATOMIC_RELEASE);
    }
    rq_close(q);
    return 0;
}

static void account(const unsigned char *msg, size_t len)
{
    uint64_t seq;
    uint32_t sum;
    memcpy(&seq, msg, 8);
    memcpy(&sum, msg + 8, 4);
    int whole = len >= 12 && sum == checksum(seq) && len == 12 + seq % (SLOT_SIZE - 12);
    for (size_t i = 12; whole && i < len; i++)
        whole = msg[i] == (unsigned char)(seq & 0xff);
    if (!whole) {
        led->torn++;
        return;
    }
    uint64_t expect = led->received;
    if (seq < expect) {
        led->redelivered++; /* killed after handling, before rq_release */
        return;
    }
    if (seq > expect)
        led->lost += seq - expect;
    __atomic_store_n(&led->received, seq + 1, __ATOMIC_RELEASE);
}

static int consumer(void)
{
    rq *q;
    if (rq_open(&q, led->name, RQ_CONSUMER, NULL) != RQ_OK)
        return 1;
    while (led->received < led->limit) {
        const void *msg;
        size_t len;
        if (rq_peek(q, &msg, &len, RQ_INFINITE) != RQ_OK)
            return 1;
        account(msg, len); /* handle it ... */
        rq_release(q);     /* ... then free the slot */
    }
    rq_close(q);
    return 0;
}

static pid_t start(int (*side)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(side());
    return pid;
}

static void kill_now(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void show(rq *watch, unsigned long pk, unsigned long ck, const char *end)
{
    rq_stats st;
    rq_stat(watch, &st);
    printf("%skills %5lu (producer %lu, consumer %lu)  sent %9llu  received %9llu  "
           "redelivered %4llu  lost %llu  torn %llu  free slots %u/%u   %s",
           isatty(STDOUT_FILENO) ? "\r" : "", pk + ck, pk, ck, (unsigned long long)led->sent,
           (unsigned long long)led->received, (unsigned long long)led->redelivered,
           (unsigned long long)led->lost, (unsigned long long)led->torn, st.slot_count - st.depth,
           st.slot_count, end);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 10.0;
    led = mmap(NULL, sizeof *led, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (led == MAP_FAILED)
        return 1;
    snprintf(led->name, sizeof led->name, "demo.%ld", (long)getpid());
    led->limit = UINT64_MAX;
    rq_config cfg = {.slot_count = SLOTS, .slot_size = SLOT_SIZE};
    rq *watch;
    int rc = rq_open(&watch, led->name, RQ_OBSERVER, &cfg);
    if (rc != RQ_OK) {
        fprintf(stderr, "rq_open: %s\n", rq_strerror(rc));
        return 1;
    }
    printf("rq crash-recovery demo: queue %s (%u slots), killing producer and consumer "
           "at random for %.0f s\n",
           led->name, SLOTS, seconds);
    srand((unsigned)getpid());
    pid_t prod = start(producer), cons = start(consumer);
    unsigned long pk = 0, ck = 0;
    double t0 = now_s(), last_show = 0;
    /* a terminal gets a live line; a log gets one line a second */
    double show_every = isatty(STDOUT_FILENO) ? 0.1 : 1.0;
    const char *show_end = isatty(STDOUT_FILENO) ? "" : "\n";
    while (now_s() - t0 < seconds) {
        usleep((useconds_t)(rand() % 20000));
        int pick = rand() % 10;
        if (pick < 5 || pick == 9) {
            kill_now(prod);
            prod = start(producer);
            pk++;
        }
        if (pick >= 5) {
            kill_now(cons);
            cons = start(consumer);
            ck++;
        }
        if (now_s() - last_show > show_every) {
            show(watch, pk, ck, show_end);
            last_show = now_s();
        }
    }
    /* Stop killing; let both sides finish a last stretch and check. */
    led->limit = led->sent + 1000;
    waitpid(prod, NULL, 0);
    waitpid(cons, NULL, 0);
    show(watch, pk, ck, "\n");
    rq_stats st;
    rq_stat(watch, &st);
    int ok = led->lost == 0 && led->torn == 0 && led->received == led->limit && st.depth == 0;
    printf("%s: %llu messages through %lu kills; %llu redelivered (the one in flight at a kill); "
           "%llu lost; %llu torn; %u of %u slots free; takeovers: producer %llu, "
           "consumer %llu\n",
           ok ? "OK" : "FAILED", (unsigned long long)led->received, pk + ck,
           (unsigned long long)led->redelivered, (unsigned long long)led->lost,
           (unsigned long long)led->torn, st.slot_count - st.depth, st.slot_count,
           (unsigned long long)st.producer_takeovers, (unsigned long long)st.consumer_takeovers);
    rq_close(watch);
    rq_unlink(led->name);
    return ok ? 0 : 1;
}
