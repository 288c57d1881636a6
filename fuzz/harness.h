/*
 * harness.h - what the two libFuzzer targets share.
 *
 * A fuzz input is a fixed head (the kind of object, the roles of two
 * handles, the geometry the object is made with), then, for fuzz_segment,
 * an image written over the segment before it is opened, then a stream of
 * operations.  The harness runs each operation on a real rq handle with
 * timeout 0 and traps on any result the API does not allow for it: a
 * hostile segment may only ever give RQ_ECORRUPT (or a normal result such
 * as RQ_EAGAIN), never RQ_ESYS, a length past slot_size, a pointer
 * outside the mapped segment, a leaked descriptor or mapping.
 *
 * Layout of the head (little-endian, FZ_HEAD_SIZE bytes):
 *   0  kind        % FZ_KINDS: SPSC queue, MPSC queue, coalescing object
 *   1  roles       bits 0-1: handle A, bits 2-3: handle B
 *                  (0 none, 1 producer, 2 consumer, 3 observer)
 *   2  open_flags  bit 0: A opens with a config (may create / repair),
 *                  bit 1: the same for B, bit 2: config asks RQ_FULL_FENCES,
 *                  bit 3: a queue is a record queue (RQ_RECORDS): then
 *                  slot_count is 64 + 16 * (v % 64) bytes of ring and
 *                  slot_size 1 + v % (slot_count / 2 - 4), the largest;
 *                  bit 4: queue handles spin FZ_SPIN_US before a sleep
 *                  (rq_set_spin_us), so the waiting call polls the
 *                  hostile segment first
 *   3  prefill     fuzz_peer: messages (requests) made before the handles open
 *   4  slot_count  u16: the object is made with 1 + v % FZ_MAX_SLOTS slots
 *   6  slot_size   u16: ... of 1 + v % FZ_MAX_SLOT_SIZE bytes
 *   8  size        u32: fuzz_segment: 0 keeps the object's size, else the
 *                  object is truncated/extended to v % FZ_MAX_OBJECT bytes
 *  12  image_len   u16: fuzz_segment: bytes of image after the head
 *  14  reserved    u16
 *
 * Operations: one byte (bits 0-3 the operation, bit 4 the handle, bits
 * 5-7 a variant), then the arguments that operation reads (harness.c).
 * Bytes past the end read as zero; at most FZ_MAX_OPS run.  Calls run
 * with timeout 0; a waiting call (push, pop, peek, reserve, coalesce wait)
 * whose variant has bits 1 and 2 set waits FZ_WAIT_MS instead, once per
 * input, so the sleeping paths meet the peer's event words too.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef RQ_FUZZ_HARNESS_H
#define RQ_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "rq.h"

#define FZ_HEAD_SIZE 16
#define FZ_MAX_SLOTS 64
#define FZ_MAX_SLOT_SIZE 512
#define FZ_MAX_OBJECT 65536
#define FZ_MAX_OPS 256

enum fz_kind { FZ_SPSC, FZ_MPSC, FZ_COALESCE, FZ_KINDS };

enum fz_open_flags {
    FZ_CFG_A = 1,
    FZ_CFG_B = 2,
    FZ_CFG_FENCES = 4,
    FZ_CFG_RECORDS = 8,
    FZ_CFG_SPIN = 16
};

enum fz_queue_op {
    FZ_OP_PUSH, /* u16 length */
    FZ_OP_POP,  /* u16 capacity */
    FZ_OP_PEEK,
    FZ_OP_RELEASE,
    FZ_OP_RESERVE,
    FZ_OP_COMMIT, /* u16 length */
    FZ_OP_STAT,
    FZ_OP_CLOSE,
    FZ_OP_OPEN,       /* u8 role */
    FZ_OP_PUSH_BURST, /* u8 count */
    FZ_OP_POP_BURST,  /* u8 count */
    FZ_OP_SCRIBBLE,   /* fuzz_peer only: u8 word, u32 value */
    FZ_OP_RAW,        /* fuzz_peer only: u16 offset, u32 value */
    FZ_OP_POLL,       /* rq_poll_handle: from then on a timeout-0 call that
                         finds nothing arms the poll object (the poller bit) */
};

enum fz_coalesce_op {
    FZ_OP_REQUEST = 0,
    FZ_OP_WAIT = 1,
    FZ_OP_DONE = 2, /* variant bit 0: ticket + u8 delta, else the ticket */
    /* FZ_OP_STAT, FZ_OP_CLOSE, FZ_OP_OPEN, FZ_OP_SCRIBBLE, FZ_OP_RAW as above */
};

struct fz_head {
    unsigned kind, role_a, role_b, open_flags, prefill;
    uint32_t slot_count, slot_size; /* of the creating config */
    uint32_t size;                  /* 0 or the object size to set */
    uint32_t image_len;
};

/* A cursor over the fuzz input: reads past the end give zeros. */
struct fz_in {
    const uint8_t *data;
    size_t size, pos;
};

uint8_t fz_u8(struct fz_in *in);
uint16_t fz_u16(struct fz_in *in);
uint32_t fz_u32(struct fz_in *in);
int fz_more(const struct fz_in *in);

void fz_read_head(struct fz_in *in, struct fz_head *h);

/* Once per process: the unique object name, the baseline of open
 * descriptors, the template of a fresh MPSC lock. */
void fz_init(void);
const char *fz_name(void);

/* Makes a fresh object of H's kind and geometry through the library
 * (removing any left from the previous input). */
void fz_make_object(const struct fz_head *h);

/* The harness's own view of the object (not tracked as the library's). */
struct fz_view {
    int fd;
    unsigned char *addr;
    size_t size;
};
void fz_view_open(struct fz_view *v, const struct fz_head *h, uint32_t new_size);
void fz_view_close(struct fz_view *v);

/* Runs the operation stream of IN on handles opened per H.  PEER: may the
 * stream scribble on the shared words between calls (VIEW must be open)? */
void fz_run(const struct fz_head *h, struct fz_in *in, struct fz_view *view, int peer);

/* After the handles are closed: no mapping and no descriptor may be left. */
void fz_check_no_leaks(void);

#endif /* RQ_FUZZ_HARNESS_H */
