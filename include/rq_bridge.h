/*
 * rq_bridge.h - reading the records rq-bridge in writes into an rq queue.
 *
 * rq-bridge in copies each message of a JetStream stream into the local
 * queue behind a 16-byte header (docs/bridge.md):
 *
 *   bytes 0-3   "RQB1"                      (format and version)
 *   bytes 4-7   deliveries, little-endian   (1 the first time; a stream
 *                                            message redelivered after a
 *                                            crash or lost ack says more)
 *   bytes 8-15  stream sequence, little-endian
 *   bytes 16-   the message's payload, unchanged
 *
 * The bridge acknowledges a stream message only after its record is
 * committed to the queue, and it writes records in stream order; a crash
 * between the two makes it write the same record again.  So a receiving
 * application that keeps the highest stream sequence it has processed
 * (stored with its output, as in docs/exactly-once.md) and drops every
 * record at or below it processes each stream message exactly once.
 *
 * Header only; C99 and C++.  SPDX-License-Identifier: MIT
 */
#ifndef RQ_BRIDGE_H
#define RQ_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#define RQ_BRIDGE_HEADER_SIZE 16u

typedef struct rq_bridge_record {
    uint64_t stream_seq; /* the message's sequence number in its stream */
    uint32_t deliveries; /* how often the stream has handed it out */
    const void *payload; /* points into the record */
    size_t payload_len;
} rq_bridge_record;

static inline uint64_t rq_bridge_le_(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Fills *OUT from the record MSG of LEN bytes (as rq_pop or rq_peek gave
 * it).  Returns 0, or -1 if it is not an rq-bridge record (too short or
 * wrong magic): the queue's bytes are untrusted like any other input. */
static inline int rq_bridge_record_parse(const void *msg, size_t len, rq_bridge_record *out)
{
    const unsigned char *p = (const unsigned char *)msg;
    if (msg == NULL || out == NULL || len < RQ_BRIDGE_HEADER_SIZE)
        return -1;
    if (p[0] != 'R' || p[1] != 'Q' || p[2] != 'B' || p[3] != '1')
        return -1;
    out->deliveries = (uint32_t)rq_bridge_le_(p + 4, 4);
    out->stream_seq = rq_bridge_le_(p + 8, 8);
    out->payload = p + RQ_BRIDGE_HEADER_SIZE;
    out->payload_len = len - RQ_BRIDGE_HEADER_SIZE;
    return 0;
}

/* Writes the header for STREAM_SEQ and DELIVERIES into BUF (at least
 * RQ_BRIDGE_HEADER_SIZE bytes); the payload goes right after it. */
static inline void rq_bridge_header_write(void *buf, uint64_t stream_seq, uint32_t deliveries)
{
    unsigned char *p = (unsigned char *)buf;
    p[0] = 'R', p[1] = 'Q', p[2] = 'B', p[3] = '1';
    for (int i = 0; i < 4; i++)
        p[4 + i] = (unsigned char)(deliveries >> (8 * i));
    for (int i = 0; i < 8; i++)
        p[8 + i] = (unsigned char)(stream_seq >> (8 * i));
}

#endif /* RQ_BRIDGE_H */
