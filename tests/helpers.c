/*
 * helpers.c - shared test helpers (see helpers.h).
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

const char *th_name(const char *tag)
{
    static char names[16][96];
    static unsigned counter;
    char *buf = names[counter % 16];
    snprintf(buf, sizeof names[0], "t.%ld.%u.%s", (long)getpid(), counter++, tag);
    rq_unlink(buf);
    return buf;
}

static uint32_t fnv1a(uint32_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t msg_sum(const unsigned char *buf, size_t len)
{
    uint32_t h = fnv1a(2166136261u, buf, 12);
    h = fnv1a(h, &len, sizeof len);
    return fnv1a(h, buf + TH_MSG_MIN, len - TH_MSG_MIN);
}

size_t th_msg_make(void *out, size_t cap, uint64_t seq, uint32_t stream)
{
    unsigned char *buf = out;
    size_t len = TH_MSG_MIN;
    if (cap > TH_MSG_MIN)
        len += (size_t)((seq * 2654435761u) % (cap - TH_MSG_MIN + 1));
    memcpy(buf, &seq, 8);
    memcpy(buf + 8, &stream, 4);
    for (size_t i = TH_MSG_MIN; i < len; i++)
        buf[i] = (unsigned char)(seq * 31u + i);
    uint32_t sum = msg_sum(buf, len);
    memcpy(buf + 12, &sum, 4);
    return len;
}

int th_msg_check(const void *in, size_t len, uint64_t *seq, uint32_t *stream)
{
    const unsigned char *buf = in;
    if (len < TH_MSG_MIN)
        return -1;
    uint32_t sum;
    memcpy(&sum, buf + 12, 4);
    if (sum != msg_sum(buf, len))
        return -1;
    memcpy(seq, buf, 8);
    memcpy(stream, buf + 8, 4);
    for (size_t i = TH_MSG_MIN; i < len; i++)
        if (buf[i] != (unsigned char)(*seq * 31u + i))
            return -1;
    return 0;
}

pid_t th_spawn(int (*fn)(void *), void *arg, unsigned watchdog_s)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(watchdog_s);
        _exit(fn(arg));
    }
    return pid;
}

int th_wait(pid_t pid, int timeout_ms, int *status)
{
    uint64_t until = th_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        if (th_now_ms() >= until) {
            kill(pid, SIGKILL);
            waitpid(pid, status, 0);
            return -1;
        }
        usleep(200);
    }
}

int th_exited_ok(int status)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int th_killed_by(int status, int sig)
{
    return WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

void *th_shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    return p;
}

void th_shared_free(void *p, size_t size)
{
    munmap(p, size);
}

uint64_t th_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15u;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

uint64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

rq *th_open(const char *name, int role, uint32_t slots, uint32_t slot_size, uint32_t flags)
{
    rq_config cfg = {slots, slot_size, flags, 0};
    rq *q = NULL;
    int rc = rq_open(&q, name, role, &cfg);
    if (rc != RQ_OK)
        fail_msg("rq_open(%s, %d): %s", name, role, rq_strerror(rc));
    return q;
}

struct th_journal *th_jr;

struct th_journal *th_journal_new(const char *name, uint32_t slot_size, unsigned streams,
                                  uint64_t limit)
{
    struct th_journal *j = th_shared_alloc(sizeof *j);
    snprintf(j->name, sizeof j->name, "%s", name);
    j->slot_size = slot_size;
    j->streams = streams;
    rq_store_relaxed_u64(&j->limit, limit);
    return j;
}

int th_producer_main(void *arg)
{
    uint32_t stream = (uint32_t)(intptr_t)arg;
    struct th_journal *j = th_jr;
    rq *p;
    int rc = rq_open(&p, j->name, RQ_PRODUCER, NULL);
    if (rc != RQ_OK)
        return 20;
    unsigned char buf[TH_SLOT_SIZE_MAX];
    for (uint64_t seq = rq_load_acquire_u64(&j->prod_next[stream]);
         seq < rq_load_acquire_u64(&j->limit); seq++) {
        if (j->producer_pause_us)
            usleep(j->producer_pause_us);
        if (seq % 2 == 0) {
            size_t len = th_msg_make(buf, j->slot_size, seq, stream);
            rc = rq_push(p, buf, len, RQ_INFINITE);
        } else {
            void *slot;
            rc = rq_reserve(p, &slot, RQ_INFINITE);
            if (rc == RQ_OK)
                rc = rq_commit(p, th_msg_make(slot, j->slot_size, seq, stream));
        }
        if (rc != RQ_OK)
            return 21;
        rq_store_release_u64(&j->prod_next[stream], seq + 1);
    }
    rq_close(p);
    return 0;
}

int th_journal_complete(const struct th_journal *j)
{
    uint64_t limit = rq_load_acquire_u64((rq_atomic_u64 *)&j->limit);
    for (unsigned s = 0; s < j->streams; s++)
        if (rq_load_acquire_u64((rq_atomic_u64 *)&j->cons_next[s]) < limit)
            return 0;
    return 1;
}

/* Accounts for one delivered message.  cons_next moves only forward and
 * is stored last, so a consumer killed anywhere here re-counts at most the
 * message in hand. */
static void consumer_note(struct th_journal *j, const void *msg, size_t len)
{
    uint64_t seq;
    uint32_t stream;
    rq_fetch_add_u64(&j->received, 1);
    if (th_msg_check(msg, len, &seq, &stream) != 0 || stream >= j->streams) {
        rq_fetch_add_u64(&j->torn, 1);
        return;
    }
    uint64_t expect = rq_load_acquire_u64(&j->cons_next[stream]);
    if (seq + 1 == expect) {
        rq_fetch_add_u64(&j->duplicates, 1);
    } else if (seq < expect) {
        rq_fetch_add_u64(&j->reorders, 1);
    } else {
        if (seq > expect)
            rq_fetch_add_u64(&j->gaps, seq - expect);
        rq_store_release_u64(&j->cons_next[stream], seq + 1);
    }
}

int th_consumer_main(void *arg)
{
    (void)arg;
    struct th_journal *j = th_jr;
    rq *c;
    int rc = rq_open(&c, j->name, RQ_CONSUMER, NULL);
    if (rc != RQ_OK)
        return 30;
    unsigned char buf[TH_SLOT_SIZE_MAX];
    while (!th_journal_complete(j)) {
        if (j->consumer_pause_us)
            usleep(j->consumer_pause_us);
        size_t len;
        if (!j->consume_pop) {
            const void *msg;
            /* Waits are unbounded on purpose: a lost wake-up is then
             * found only by the periodic re-check and counted as a missed
             * wake, which the suites assert never happens. */
            rc = rq_peek(c, &msg, &len, RQ_INFINITE);
            if (rc != RQ_OK)
                return 31;
            consumer_note(j, msg, len); /* processed, then released */
            rc = rq_release(c);
        } else {
            rc = rq_pop(c, buf, sizeof buf, &len, RQ_INFINITE);
            if (rc == RQ_OK)
                consumer_note(j, buf, len);
        }
        if (rc != RQ_OK)
            return 32;
    }
    rq_close(c);
    return 0;
}
