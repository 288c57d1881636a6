/*
 * helpers.h - what the rq tests share: unique queue names, self-checking
 * messages, child processes with watchdogs, and shared scratch memory.
 *
 * The same harness runs on Linux and on Windows (under Wine in CI).  A
 * child process is a new run of the test binary itself (posix_spawn /
 * CreateProcess, never fork), told on its command line which registered
 * child function to run, with which argument, and which crash point to
 * arm.  Memory shared with children is a named segment made through the
 * platform layer and found by key, since a child maps it at another
 * address.
 */
#ifndef RQ_TEST_HELPERS_H
#define RQ_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "rq.h"

/* A queue name no other test (or earlier run) uses: t.<pid>.<n>.<tag>.
 * The name is unlinked first in case a crashed earlier run left it.  At
 * exit (Linux) every /dev/shm object of this process's names still there
 * is removed and fails the run (th_init): a test unlinks what it makes
 * (RQ_TEST_LEFTOVERS_OK=1: remove only). */
const char *th_name(const char *tag);

/* Self-checking messages: seq, stream id, checksum, then a payload derived
 * from seq whose length varies with seq between TH_MSG_MIN and CAP. */
#define TH_MSG_MIN 16u
size_t th_msg_make(void *buf, size_t cap, uint64_t seq, uint32_t stream);
/* 0 if BUF/LEN is a well-formed message (fills *SEQ, *STREAM), -1 if torn. */
int th_msg_check(const void *buf, size_t len, uint64_t *seq, uint32_t *stream);

/* ---- child processes ------------------------------------------------- */

/* A child: runs in a new process of this test binary and returns its exit
 * status.  ARG is the string given to th_spawn ("" if none). */
typedef int (*th_child_fn)(const char *arg);
struct th_child {
    const char *name;
    th_child_fn fn;
};
#define TH_CHILD(fn) \
    {                \
#fn, fn      \
    }

/* First call of every test main.  In a child process it runs the child
 * named on the command line and never returns; in the parent it sets up
 * the shared scratch memory that children map, and applies the test name
 * filter in the environment variable RQ_TEST_FILTER, if set. */
void th_init(int argc, char **argv, const struct th_child *children, size_t count);
#define TH_INIT(argc, argv, table) th_init(argc, argv, table, sizeof table / sizeof *table)

typedef int64_t th_pid; /* the OS process id, as rq_stat reports it */

/* Starts child CHILD(ARG).  A watchdog kills it after WATCHDOG_S seconds
 * (a status that is neither "exited ok" nor "killed"). */
th_pid th_spawn(const char *child, const char *arg, unsigned watchdog_s);
/* The same, with crash point POINT armed in the child for its HIT-th hit
 * (POINT < 0: none).  The parent itself is never armed. */
th_pid th_spawn_armed(const char *child, const char *arg, unsigned watchdog_s, int point,
                      unsigned long hit);
/* Waits up to TIMEOUT_MS for PID.  Returns 0 and *STATUS, or -1 on timeout
 * (the child is then killed and reaped). */
int th_wait(th_pid pid, int timeout_ms, int *status);
/* Waits up to TIMEOUT_MS for any child: its pid and *STATUS, or 0. */
th_pid th_wait_any(int timeout_ms, int *status);
/* 1 and *STATUS if PID has ended (it is reaped), 0 if it still runs. */
int th_poll(th_pid pid, int *status);
/* Kills PID at once (SIGKILL; TerminateProcess with TH_KILLED_CODE). */
void th_kill(th_pid pid);
int th_exited_ok(int status);
/* Died by th_kill, a crash point or rq_plat_kill_self. */
int th_was_killed(int status);
#define TH_KILLED_CODE 137 /* Windows exit code standing for SIGKILL */

/* A kill torture's kill of one side: kills PID and reaps it, asserting
 * that it died by our hand (not by its own failure or its watchdog). */
void th_kill_and_reap(th_pid pid);
/* Waits (up to 20 s, asserted) until the counter STARTED, which each
 * child life bumps as it reaches its main function, is at least LIVES. */
void th_await_started(const rq_atomic_u64 *started, uint64_t lives);
/* 1 when each of the STREAMS counters CONS_NEXT has reached LIMIT. */
int th_streams_complete(const rq_atomic_u64 *limit, const rq_atomic_u64 *cons_next,
                        unsigned streams);

/* A number of kills for a kill torture: DEFAULT_POSIX on Linux,
 * DEFAULT_WINDOWS on Windows (process start under Wine costs ~0.1 s), or
 * the environment variable RQ_TEST_KILLS when set.  Printed. */
unsigned long th_kill_count(const char *what, unsigned long default_posix,
                            unsigned long default_windows);

/* ---- shared scratch memory ------------------------------------------- */

/* SIZE bytes that every process of this test run sees under KEY: made
 * (zeroed) by the first caller, found by the others. */
void *th_shared(const char *key, size_t size);
/* The same, zeroed again now (the parent, before it starts children). */
void *th_shared_fresh(const char *key, size_t size);

/* The queue a test's children work on: set by the parent (a fresh copy of
 * NAME, returned) before it starts them, read by each child. */
const char *th_set_child_queue(const char *name);
const char *th_child_queue(void);

/* ---- raw access to a segment, as a hostile or broken peer ------------ */

struct th_raw {
    struct rq_plat_segment *seg;
    unsigned char *addr;
    uint64_t size; /* the object's size (Windows: whole pages) */
};
/* Maps the whole object KIND.NAME ("rq", "rqc") read-write; asserts. */
void th_raw_open(struct th_raw *r, const char *kind, const char *name);
/* Makes a new object KIND.NAME of SIZE bytes holding BYTES (LEN of them)
 * at its start, and keeps it open (Windows: alive) until th_raw_close. */
void th_raw_create(struct th_raw *r, const char *kind, const char *name, uint64_t size,
                   const void *bytes, size_t len);
void th_raw_close(struct th_raw *r);
/* Sets the empty record queue mapped by R: both words at record number
 * START (offsets 0), its stored positions at WRITE_POS and READ_POS, as a
 * peer or a side killed between its word and its position can leave
 * them.  No side may hold the queue open (a handle keeps its own copy). */
void th_raw_forge_record_numbers(struct th_raw *r, uint64_t start, uint64_t write_pos,
                                 uint64_t read_pos);
/* 1 if the object KIND.NAME exists. */
int th_raw_exists(const char *kind, const char *name);

/* ---- portable odds and ends ------------------------------------------ */

uint64_t th_rand(uint64_t *state); /* xorshift, seeded explicitly */
uint64_t th_now_ms(void);          /* monotonic milliseconds */
void th_sleep_us(unsigned long us);
int64_t th_getpid(void);
void th_pause(void); /* sleeps until killed */

/* Windows only: an observer handle that keeps the existing queue NAME alive
 * while the test's children die and restart, or while the test closes and
 * re-opens its own handles (a named mapping goes with its last handle;
 * /dev/shm keeps it without one).  NULL on Linux.  rq_close it. */
rq *th_keep_alive(const char *name);
/* Creates queue NAME; returns th_keep_alive's handle for it. */
rq *th_create(const char *name, uint32_t slots, uint32_t slot_size, uint32_t flags);

/* Opens with a config; asserts success. */
rq *th_open(const char *name, int role, uint32_t slots, uint32_t slot_size, uint32_t flags);

/* A queue with its producer and consumer in this process: NAME
 * (th_name(TAG)), made and kept alive by KEEP (th_create), P and C opened
 * with the same geometry and FLAGS.  th_pair_close closes all three and
 * unlinks NAME. */
struct th_pair {
    const char *name;
    rq *keep, *p, *c;
};
struct th_pair th_pair_open(const char *tag, uint32_t slots, uint32_t slot_size, uint32_t flags);
void th_pair_close(struct th_pair *q);

/* Tagged payloads: byte I of the message tagged TAG is TAG * 7 + I, so a
 * message out of place or overwritten shows. */
void th_fill_tagged(void *buf, size_t len, unsigned tag);
/* Pops one message from C without waiting (at most 4096 bytes) and asserts
 * that it is LEN bytes tagged TAG. */
void th_expect_pop_tagged(rq *c, size_t len, unsigned tag);

/* Who holds the producers' lock of an MPSC queue, as rq_stat on Q shows it:
 * PID 0 (free: then no reservation and no wait time shown), our own
 * process id, or TH_ANOTHER_PROCESS (some other live or dead process);
 * RESERVING as lock_reserving shows it (only checked while held). */
#define TH_ANOTHER_PROCESS (-2)
void th_expect_lock_holder(rq *q, int64_t pid, int reserving);

/* ---- blocking calls while the peer is alive: a lost wake-up fails fast - */

/* A blocking call whose peer is alive and working is ended by a wake-up
 * within milliseconds.  One that lasts past the 1 s re-check may have been
 * ended by the re-check instead, which rq counts as a missed wake: these
 * look at rq's counters right then, and a missed wake ends the process at
 * once (a clear message on stderr, then abort: safe from any thread, and a
 * child's parent sees it exit badly), instead of costing a second per
 * message until the suite's timeout. */
#define TH_LIVE_TIMEOUT_MS 10000 /* the peer is silent this long: the call fails */
#define TH_WAKE_SUSPECT_MS 900   /* a call this long may have missed its wake */
/* After a blocking call on Q that began at T0 (th_now_ms): checks Q's
 * missed-wake counters if the call took TH_WAKE_SUSPECT_MS or longer. */
void th_check_wakes_after(rq *q, const char *call, uint64_t t0);
/* The same for a coalescing object's worker or requester. */
void th_check_coalesce_wakes_after(rq_coalesce *c, const char *call, uint64_t t0);
/* rq_push / rq_pop / rq_peek / rq_reserve / rq_coalesce_wait with a
 * TH_LIVE_TIMEOUT_MS deadline, checked as above. */
int th_push_live(rq *q, const void *msg, size_t len);
int th_pop_live(rq *q, void *buf, size_t cap, size_t *len);
int th_peek_live(rq *q, const void **msg, size_t *len);
int th_reserve_live(rq *q, void **slot);
int th_coalesce_wait_live(rq_coalesce *c, uint64_t *ticket);

/* ---- the sender/receiver pair used by the crash and kill suites ------ */

#define TH_MAX_STREAMS 8
#define TH_SLOT_SIZE_MAX 4096
#define TH_BURST_MAX 8

/* Lives in shared memory (key "journal"), so every child life sees and
 * updates it.  Each producer stream s sends seq 0, 1, ... up to LIMIT; the
 * consumer accounts for every message it is handed. */
struct th_journal {
    char name[RQ_NAME_MAX + 1];
    uint32_t slot_size;
    unsigned streams;
    unsigned producer_pause_us, consumer_pause_us;
    int consume_pop;     /* 0: peek + release (at-least-once), 1: pop */
    unsigned burst;      /* 0: one message a call; B (<= TH_BURST_MAX):
                            batches of up to B through the burst calls */
    rq_atomic_u64 limit; /* messages per stream; may be lowered later */
    rq_atomic_u64 prod_next[TH_MAX_STREAMS];
    rq_atomic_u64 cons_next[TH_MAX_STREAMS];
    rq_atomic_u64 received, duplicates, gaps, reorders, torn;
    /* The queue's own numbers (rq_msg_info): the next one expected, the
     * message that had the one before it, and what went wrong: a number
     * skipped, a number given to two different messages, a repeat that
     * did not carry RQ_MSG_REDELIVERED; new_flagged: messages new to the
     * journal that carried it (the one a consumer killed before noting it
     * had in hand, or the oldest that a successor flags after a death
     * although nobody saw it: per consumer death at most one, or a batch). */
    rq_atomic_u64 qseq_next, last_stream, last_stream_seq;
    rq_atomic_u64 qseq_gaps, qseq_reused, flags_lost, flagged, new_flagged;
    rq_atomic_u64 started; /* child lives that reached their main function */
    /* Burst mode: which message had each of the last TH_BURST_MAX queue
     * numbers (stream << 48 | seq), to check a redelivered batch. */
    rq_atomic_u64 qseq_window[TH_BURST_MAX];
};

/* The journal (th_journal_new in the parent; found again in children). */
extern struct th_journal *th_jr;
struct th_journal *th_journal_new(const char *name, uint32_t slot_size, unsigned streams,
                                  uint64_t limit);
/* Children: producer life for stream atoi(ARG): even seqs via rq_push, odd
 * ones via rq_reserve/rq_commit (burst mode: batches via rq_push_burst and
 * rq_reserve_burst/rq_commit_burst in turn), 0 when the stream is
 * complete; consumer life (burst mode: rq_peek_burst/rq_release_burst or
 * rq_pop_burst), 0 once every stream reached the limit.  In burst mode a
 * kill may repeat a whole batch: a repeat up to B back counts as a
 * duplicate, and a queue number up to B back as a redelivery.  Register them with
 * TH_JOURNAL_CHILDREN in the test's child table. */
int th_producer_main(const char *arg);
int th_consumer_main(const char *arg);
#define TH_JOURNAL_CHILDREN TH_CHILD(th_producer_main), TH_CHILD(th_consumer_main)
/* Waits (up to 20 s, asserted) until START child lives have begun: a kill
 * torture waits for a restarted child before it picks the next moment to
 * kill, so that kills land in the child's work, not in the process start
 * (exec of a sanitized binary, or a process start under Wine). */
void th_journal_await_started(const struct th_journal *j, uint64_t started);
/* 1 when every stream has been received up to the limit. */
int th_journal_complete(const struct th_journal *j);
/* Checks the queue's numbers after a kill run (asserted, with the counts
 * in the message): none given to two messages, no repeat without
 * RQ_MSG_REDELIVERED, none skipped except up to one per consumer death
 * where rq_pop may lose the message in hand (MAY_LOSE), and at most
 * PER_DEATH messages new to the journal flagged per consumer death (the
 * one in hand or the oldest; a batch: the batch).  CONSUMER_DEATHS counts
 * every consumer killed, alone or with the producer. */
void th_journal_check_numbers(struct th_journal *j, uint64_t consumer_deaths, uint64_t per_death,
                              int may_lose);
/* "0".."7": the argument naming stream S. */
const char *th_stream_arg(unsigned s);

#endif
