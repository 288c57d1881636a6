/*
 * helpers.h - what the rq tests share: unique queue names, self-checking
 * messages, child processes with watchdogs, and shared scratch memory.
 */
#ifndef RQ_TEST_HELPERS_H
#define RQ_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "atomics.h"
#include "rq.h"

/* A queue name no other test (or earlier run) uses: t.<pid>.<n>.<tag>.
 * The name is unlinked first in case a crashed earlier run left it. */
const char *th_name(const char *tag);

/* Self-checking messages: seq, stream id, checksum, then a payload derived
 * from seq whose length varies with seq between TH_MSG_MIN and CAP. */
#define TH_MSG_MIN 16u
size_t th_msg_make(void *buf, size_t cap, uint64_t seq, uint32_t stream);
/* 0 if BUF/LEN is a well-formed message (fills *SEQ, *STREAM), -1 if torn. */
int th_msg_check(const void *buf, size_t len, uint64_t *seq, uint32_t *stream);

/* Child processes.  The child runs FN(ARG) and exits with its return value;
 * an alarm of WATCHDOG_S seconds kills a child that hangs (exit by SIGALRM
 * is then visible to th_wait's caller). */
pid_t th_spawn(int (*fn)(void *), void *arg, unsigned watchdog_s);
/* Waits up to TIMEOUT_MS for PID.  Returns 0 and *STATUS, or -1 on timeout
 * (the child is then SIGKILLed and reaped). */
int th_wait(pid_t pid, int timeout_ms, int *status);
int th_exited_ok(int status);
int th_killed_by(int status, int sig);

/* Zeroed memory shared with children forked later (MAP_SHARED). */
void *th_shared_alloc(size_t size);
void th_shared_free(void *p, size_t size);

/* Pseudo-random numbers for tests (xorshift), seeded explicitly. */
uint64_t th_rand(uint64_t *state);

/* Monotonic milliseconds. */
uint64_t th_now_ms(void);

/* Opens with a config; asserts success. */
rq *th_open(const char *name, int role, uint32_t slots, uint32_t slot_size, uint32_t flags);

/* ---- the sender/receiver pair used by the crash and kill suites ------ */

#define TH_MAX_STREAMS 8
#define TH_SLOT_SIZE_MAX 4096

/* Lives in th_shared_alloc memory, so every child life sees and updates
 * it.  Each producer stream s sends seq 0, 1, ... up to LIMIT; the consumer
 * accounts for every message it is handed. */
struct th_journal {
    char name[RQ_NAME_MAX + 1];
    uint32_t slot_size;
    unsigned streams;
    unsigned producer_pause_us, consumer_pause_us;
    int consume_pop;      /* 0: peek + release (at-least-once), 1: pop */
    rq_atomic_u64 limit;  /* messages per stream; may be lowered later */
    rq_atomic_u64 prod_next[TH_MAX_STREAMS];
    rq_atomic_u64 cons_next[TH_MAX_STREAMS];
    rq_atomic_u64 received, duplicates, gaps, reorders, torn;
};

/* The journal the th_*_main functions use (set before spawning). */
extern struct th_journal *th_jr;
struct th_journal *th_journal_new(const char *name, uint32_t slot_size, unsigned streams,
                                  uint64_t limit);
/* Producer life for stream (intptr_t)ARG: even seqs via rq_push, odd ones
 * via rq_reserve/rq_commit.  Returns 0 when the stream is complete. */
int th_producer_main(void *arg);
/* Consumer life: returns 0 once every stream reached the limit. */
int th_consumer_main(void *arg);
/* 1 when every stream has been received up to the limit. */
int th_journal_complete(const struct th_journal *j);

#endif
