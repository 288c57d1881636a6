/*
 * peer.c - the C side of the Python package's kill tests (python/tests/):
 * a producer or a consumer of self-checking messages that keeps its
 * progress in a file, so that a run killed with SIGKILL at any point can
 * be started again and go on.  The Python tests pair it with a Python
 * peer and kill one side or both at random.
 *
 *   rq_peer produce NAME TOTAL PROGRESS   messages PROGRESS..TOTAL-1
 *   rq_peer consume NAME TOTAL PROGRESS   checks every message until TOTAL
 *   rq_peer layout                        sizes and offsets of rq's structs
 *
 * PROGRESS is a file of two little-endian uint64: the next sequence number
 * (sent, or expected), then the duplicates seen.  A producer killed after
 * rq_push but before it records the number sends that message again, so
 * the consumer accepts seq < next as a duplicate; seq > next (a gap) or a
 * torn message fails.  Exit: 0 done, 1 usage or rq error, 3 torn, 4 gap.
 *
 * Message: uint64 seq, uint32 n, n payload bytes (byte i = seq * 31 + i),
 * uint32 FNV-1a of all that; n = seq % 64.  python/tests/peer_format.py
 * writes and checks the same.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rq.h"

#define PEER_SLOTS 64u
#define PEER_SLOT_SIZE 128u

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static size_t make(unsigned char *buf, uint64_t seq)
{
    uint32_t n = (uint32_t)(seq % 64);
    memcpy(buf, &seq, 8);
    memcpy(buf + 8, &n, 4);
    for (uint32_t i = 0; i < n; i++)
        buf[12 + i] = (unsigned char)(seq * 31 + i);
    uint32_t h = fnv1a(buf, 12 + n);
    memcpy(buf + 12 + n, &h, 4);
    return 16 + n;
}

/* 0 and *SEQ if BUF/LEN is intact, -1 if torn. */
static int check(const unsigned char *buf, size_t len, uint64_t *seq)
{
    uint32_t n, h;
    if (len < 16)
        return -1;
    memcpy(seq, buf, 8);
    memcpy(&n, buf + 8, 4);
    if (n != *seq % 64 || len != 16 + (size_t)n)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        if (buf[12 + i] != (unsigned char)(*seq * 31 + i))
            return -1;
    memcpy(&h, buf + 12 + n, 4);
    return h == fnv1a(buf, 12 + n) ? 0 : -1;
}

static volatile uint64_t *map_progress(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, 16) != 0) {
        perror(path);
        exit(1);
    }
    void *p = mmap(NULL, 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static rq *open_queue(const char *name, int role)
{
    rq_config cfg = {PEER_SLOTS, PEER_SLOT_SIZE, 0, 0};
    rq *q;
    int rc = rq_open(&q, name, role, &cfg);
    if (rc != RQ_OK) {
        fprintf(stderr, "rq_peer: rq_open %s: %s\n", name, rq_strerror(rc));
        exit(1);
    }
    return q;
}

static int produce(const char *name, uint64_t total, volatile uint64_t *progress)
{
    rq *q = open_queue(name, RQ_PRODUCER);
    unsigned char buf[PEER_SLOT_SIZE];
    for (uint64_t seq = progress[0]; seq < total; seq++) {
        int rc = rq_push(q, buf, make(buf, seq), RQ_INFINITE);
        if (rc != RQ_OK) {
            fprintf(stderr, "rq_peer: rq_push: %s\n", rq_strerror(rc));
            return 1;
        }
        progress[0] = seq + 1;
    }
    rq_close(q);
    return 0;
}

static int consume(const char *name, uint64_t total, volatile uint64_t *progress)
{
    rq *q = open_queue(name, RQ_CONSUMER);
    while (progress[0] < total) {
        const void *msg;
        size_t len;
        uint64_t seq;
        int rc = rq_peek(q, &msg, &len, RQ_INFINITE);
        if (rc != RQ_OK) {
            fprintf(stderr, "rq_peer: rq_peek: %s\n", rq_strerror(rc));
            return 1;
        }
        if (check(msg, len, &seq) != 0) {
            fprintf(stderr, "rq_peer: torn message (%zu bytes) after seq %llu\n", len,
                    (unsigned long long)progress[0]);
            return 3;
        }
        if (seq > progress[0]) {
            fprintf(stderr, "rq_peer: gap: got %llu, expected %llu\n", (unsigned long long)seq,
                    (unsigned long long)progress[0]);
            return 4;
        }
        if (seq < progress[0])
            progress[1]++;
        else
            progress[0] = seq + 1;
        rq_release(q);
    }
    rq_close(q);
    return 0;
}

#define FIELD(type, f) \
    printf("%s.%s %zu %zu\n", #type, #f, offsetof(type, f), sizeof(((type *)0)->f))

static int layout(void)
{
    printf("sizeof.rq_config %zu\nsizeof.rq_stats %zu\n", sizeof(rq_config), sizeof(rq_stats));
    FIELD(rq_config, slot_count);
    FIELD(rq_config, slot_size);
    FIELD(rq_config, flags);
    FIELD(rq_config, mode);
    FIELD(rq_stats, slot_count);
    FIELD(rq_stats, slot_size);
    FIELD(rq_stats, flags);
    FIELD(rq_stats, read_offset);
    FIELD(rq_stats, write_offset);
    FIELD(rq_stats, depth);
    FIELD(rq_stats, pushed);
    FIELD(rq_stats, popped);
    FIELD(rq_stats, producer_waits);
    FIELD(rq_stats, consumer_waits);
    FIELD(rq_stats, producer_wakes);
    FIELD(rq_stats, consumer_wakes);
    FIELD(rq_stats, producer_missed_wakes);
    FIELD(rq_stats, consumer_missed_wakes);
    FIELD(rq_stats, producer_takeovers);
    FIELD(rq_stats, consumer_takeovers);
    FIELD(rq_stats, lock_recoveries);
    FIELD(rq_stats, repairs);
    FIELD(rq_stats, producer_pid);
    FIELD(rq_stats, consumer_pid);
    FIELD(rq_stats, producer_live);
    FIELD(rq_stats, consumer_live);
    FIELD(rq_stats, unlinked);
    printf("sizeof.rq_record_stats %zu\n", sizeof(rq_record_stats));
    FIELD(rq_record_stats, capacity);
    FIELD(rq_record_stats, max_record);
    FIELD(rq_record_stats, bytes_used);
    FIELD(rq_record_stats, bytes_free);
    FIELD(rq_record_stats, records);
    FIELD(rq_record_stats, largest_record);
    FIELD(rq_record_stats, padding_bytes);
    FIELD(rq_record_stats, payload_bytes);
    printf("sizeof.rq_msg_info %zu\n", sizeof(rq_msg_info));
    FIELD(rq_msg_info, seq);
    FIELD(rq_msg_info, flags);
    FIELD(rq_msg_info, reserved);
    printf("value.RQ_MSG_REDELIVERED %u\n", (unsigned)RQ_MSG_REDELIVERED);
    printf("value.RQ_PRODUCER %d\nvalue.RQ_CONSUMER %d\nvalue.RQ_OBSERVER %d\n", RQ_PRODUCER,
           RQ_CONSUMER, RQ_OBSERVER);
    printf("value.RQ_MPSC %u\nvalue.RQ_FULL_FENCES %u\nvalue.RQ_RECORDS %u\n", (unsigned)RQ_MPSC,
           (unsigned)RQ_FULL_FENCES, (unsigned)RQ_RECORDS);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "layout") == 0)
        return layout();
    if (argc != 5) {
        fprintf(stderr, "usage: rq_peer produce|consume NAME TOTAL PROGRESS | rq_peer layout\n");
        return 1;
    }
    uint64_t total = strtoull(argv[3], NULL, 10);
    volatile uint64_t *progress = map_progress(argv[4]);
    if (strcmp(argv[1], "produce") == 0)
        return produce(argv[2], total, progress);
    if (strcmp(argv[1], "consume") == 0)
        return consume(argv[2], total, progress);
    fprintf(stderr, "rq_peer: unknown mode %s\n", argv[1]);
    return 1;
}
