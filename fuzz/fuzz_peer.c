/*
 * fuzz_peer.c - libFuzzer target: a peer that turns hostile after open.
 *
 * Each input makes a valid object through the library (kind and geometry
 * from the head), fills it with PREFILL messages (or requests), opens
 * handles with the roles the input chooses, then runs the input's
 * operations with timeout 0, interleaved with a fuzz-driven peer that
 * scribbles on the shared words between the calls: offsets and the
 * positions and delivered mark beside them, slot lengths, event words,
 * role lines, the header, the MPSC lock's owner word, handle ids and futex
 * word (plain data: nothing of it is trusted).  harness.c traps on any
 * result the API does not allow.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Some traffic before the handles under test open: messages in the ring
 * (possibly wrapped past the end), or requests owed. */
static void prefill(const struct fz_head *h)
{
    if (h->kind == FZ_COALESCE) {
        rq_coalesce *c;
        if (rq_coalesce_open(&c, fz_name(), RQ_PRODUCER, 0) != RQ_OK)
            __builtin_trap();
        for (unsigned i = 0; i < h->prefill % 3; i++)
            (void)rq_coalesce_request(c);
        rq_coalesce_close(c);
        return;
    }
    rq *p, *c;
    if (rq_open(&p, fz_name(), RQ_PRODUCER, NULL) != RQ_OK ||
        rq_open(&c, fz_name(), RQ_CONSUMER, NULL) != RQ_OK)
        __builtin_trap();
    unsigned char msg[FZ_MAX_SLOT_SIZE] = {0};
    /* Low bits: messages left in the ring; high bits: rounds of push+pop
     * before, which move the offsets round the ring. */
    unsigned turns = (h->prefill >> 5) * 11 % (2 * h->slot_count);
    size_t len;
    for (unsigned i = 0; i < turns; i++) {
        if (rq_push(p, msg, i % (h->slot_size + 1), 0) != RQ_OK ||
            rq_pop(c, msg, sizeof msg, &len, 0) != RQ_OK)
            __builtin_trap();
    }
    /* A record queue (slot_count its bytes) may fill before: then it is
     * full, which is a state as good as any to start from. */
    int records = (h->open_flags & FZ_CFG_RECORDS) != 0;
    for (unsigned i = 0; i < (h->prefill & 31) % (h->slot_count + 1); i++) {
        int rc = rq_push(p, msg, (i * 5) % (h->slot_size + 1), 0);
        if (records && rc == RQ_EAGAIN)
            break;
        if (rc != RQ_OK)
            __builtin_trap();
    }
    rq_close(p);
    rq_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    struct fz_in in = {data, size, 0};
    struct fz_head h;
    fz_read_head(&in, &h);
    fz_make_object(&h);
    prefill(&h);
    struct fz_view view;
    fz_view_open(&view, &h, 0);
    fz_run(&h, &in, &view, 1);
    fz_view_close(&view);
    fz_check_no_leaks();
    return 0;
}
