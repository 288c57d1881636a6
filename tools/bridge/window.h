/*
 * window.h - rq-bridge out's sliding window: what the stream answered to
 * each publish in flight, one entry per queue position, in a ring.
 *
 * The messages in flight are the queue's oldest unreleased ones, BASE to
 * BASE + SENT - 1, published in that order.  Acknowledgements may come
 * back in any order; only the contiguous acknowledged prefix from BASE may
 * be released (a message leaves the queue only after the stream has it and
 * every message before it).  Pure bookkeeping: no locks, no I/O (out.c
 * holds it under its mutex), so tests/test_bridge_window.c checks it
 * without a server.
 */
#ifndef RQ_BRIDGE_WINDOW_H
#define RQ_BRIDGE_WINDOW_H

#include <stdint.h>

/* The most messages published before their acknowledgements (the ring's
 * size: a power of two, so a position's entry is SEQ & mask). */
#define BRIDGE_WINDOW_MAX 4096

/* The ring entry of the message with sequence number SEQ. */
static inline uint32_t bwin_slot(uint64_t seq)
{
    return (uint32_t)(seq & (uint64_t)(BRIDGE_WINDOW_MAX - 1));
}

enum { BWIN_NONE = 0, BWIN_STORED, BWIN_DUPLICATE, BWIN_REFUSED };

typedef struct bwin {
    uint64_t base;            /* sequence number of the oldest message not released */
    uint32_t sent;            /* published from BASE on, answered or not */
    uint32_t cap;             /* most in flight, 1..BRIDGE_WINDOW_MAX */
    uint32_t prefix;          /* answered STORED or DUPLICATE from BASE on, without a gap */
    uint64_t last_stream_seq; /* highest stream sequence acknowledged */
    unsigned char answer[BRIDGE_WINDOW_MAX];      /* BWIN_* */
    unsigned char redelivered[BRIDGE_WINDOW_MAX]; /* RQ_MSG_REDELIVERED was set */
    int err[BRIDGE_WINDOW_MAX];                   /* BWIN_REFUSED: libnats's status */
    int code[BRIDGE_WINDOW_MAX];                  /* BWIN_REFUSED: JetStream's error code */
    int64_t sent_ms[BRIDGE_WINDOW_MAX];           /* when it was (last) published */
} bwin;

/* What bwin_release let go of. */
typedef struct bwin_counts {
    uint32_t duplicates;  /* answered "duplicate" */
    uint32_t redelivered; /* flagged RQ_MSG_REDELIVERED when peeked */
} bwin_counts;

/* Empty window of CAP (clamped to 1..BRIDGE_WINDOW_MAX) starting at BASE. */
void bwin_init(bwin *w, uint32_t cap, uint64_t base);
/* Forgets everything in flight: the window restarts empty at BASE (the
 * queue's oldest unreleased message), to publish it all again. */
void bwin_restart(bwin *w, uint64_t base);
/* How many more may be published now: CAP - SENT. */
uint32_t bwin_room(const bwin *w);
/* Records the publish of SEQ at NOW_MS.  SEQ must be BASE + SENT (the
 * next in order) and there must be room: 0, else -1 and nothing changes. */
int bwin_publish(bwin *w, uint64_t seq, int redelivered, int64_t now_ms);
/* Records the stream's answer ANSWER (BWIN_STORED, BWIN_DUPLICATE or
 * BWIN_REFUSED with ERR and CODE) for SEQ.  Returns 1 if taken; 0 if SEQ
 * is not in flight (released already, or from before a restart beyond
 * the window) or was answered already: the first answer counts, as every
 * publish of a position carries the same message and id. */
int bwin_answer(bwin *w, uint64_t seq, int answer, int err, int code, uint64_t stream_seq);
/* The answer for the oldest message in flight (BWIN_NONE if none or not
 * yet answered). */
int bwin_head(const bwin *w);
/* Lets go of the K oldest (K <= PREFIX): BASE moves on by K.  Fills *C. */
void bwin_release(bwin *w, uint32_t k, bwin_counts *c);

/* Whether TEXT, the Rq-Pos header of a stream message, names a position
 * of the queue whose identity is ID: "ID:SEQ" (split at the last colon,
 * SEQ decimal digits only, no leading zero, no overflow: as out writes it).  1 and *POS; 0 when it
 * is another queue's or not such a header. */
int bwin_parse_pos(const char *text, const char *id, uint64_t *pos);

/* Whether the stream subject PATTERN (tokens split at '.', '*' one token,
 * '>' as the last token one or more) captures SUBJECT: 1 or 0. */
int bwin_subject_matches(const char *pattern, const char *subject);

#endif
