/*
 * rec_bench.h - what rec_bench.c and rec_shapes.c share: the log-like
 * size mix, the clock, pinning, the median with its spread.
 */
#ifndef RQ_REC_BENCH_H
#define RQ_REC_BENCH_H

#include <stdint.h>
#include <sys/types.h>

#include "rq.h"

#define MIX_MAX 2048u /* the mix's longest message, and the slot size it is compared with */

/* Monotonic seconds. */
double now_s(void);
/* Pins the calling process to CPU (mod the CPUs online); nothing with one. */
void pin(int cpu);
/* A log-like size from seed *S: 70% 16..128 bytes, 25% 128..512, 5% 512..2048. */
uint32_t mix_size(uint64_t *s);
/* Prints WHAT and RC's text to stderr and exits 1. */
_Noreturn void die(const char *what, int rc);
/* A benchmark's producer process: pinned to CPU 1, NAME opened as its
 * producer (WHAT names it if that fails), then one byte written to
 * READY_FD and one read from GO_FD, so that every run starts together. */
rq *open_producer_ready(const char *name, const char *what, int ready_fd, int go_fd);
/* fork() for a benchmark's producer child, stdout flushed first: the
 * child is killed when its parent (the consumer) ends, so a consumer that
 * fails never leaves it blocked on a full queue, holding the queue and
 * the parent's output open, forever.  Dies if fork fails. */
pid_t bench_fork(void);
/* NAME is the queue this process runs, *A and *B (B may be NULL) its
 * handles there: if the process exits before bench_queue_done (die, a
 * failed check), its bench_fork child is killed and reaped, the handles
 * closed and NAME unlinked, so a failed run leaves nothing behind. */
void bench_queue_owned(const char *name, rq **a, rq **b);
/* The run of bench_queue_owned ended normally (its handles closed). */
void bench_queue_done(void);
/* Sorts V[0..N) and returns its median, *LO and *HI its ends. */
double median_of(double *v, int n, double *lo, double *hi);
/* Prints /proc/loadavg, saying WHEN. */
void print_load(const char *when);

/* --shapes: spikes of mix lines against a consumer that writes and
 * flushes each, slot and record queues of SEG bytes, PAIRS pairs. */
void compare_shape(uint32_t seg, int pairs);
/* --drain (and --shapes): a producer pushing the mix as fast as it can, a
 * consumer draining everything present every tick into one write() to
 * OUT, for RUN_MS; slot and record queues of SEG bytes, PAIRS pairs. */
void compare_drain(uint32_t seg, int pairs, unsigned run_ms, const char *out);

#endif
