/*
 * segment.h - the named shared segment every rq object family lives in
 * (queues "rq.NAME", coalescing objects "rqc.NAME").  OS-neutral.
 *
 * Opening validates the segment, or creates it, under the init lock; a
 * creator stores the magic word (the first 8 bytes of every kind) last, so
 * a segment whose creator died half-way reads as "never made" and is made
 * again by the next opener that has a configuration.
 */
#ifndef RQ_SEGMENT_H
#define RQ_SEGMENT_H

#include <stdint.h>

#include "layout.h"
#include "platform.h"

struct rq_segment_kind {
    const char *prefix;   /* object family: "rq", "rqc" */
    uint64_t magic;       /* first 8 bytes of an initialised segment */
    uint32_t header_size; /* bytes of immutable header (magic included) */
    /* Checks the header snapshot H (header_size bytes, magic matched)
     * against the object's size and, if CFG is not NULL, against the
     * opener's configuration.  RQ_OK with *TOTAL = bytes to map, else
     * RQ_ECORRUPT / RQ_EVERSION / RQ_EEXIST. */
    int (*check)(const void *h, uint64_t object_size, const void *cfg, uint64_t *total);
    /* Bytes a new segment made from CFG needs. */
    uint64_t (*size_for)(const void *cfg);
    /* Fills a new segment ADDR (its header zeroed) from CFG, all but the
     * magic word.  REPAIRING: it replaces one whose creator died. */
    int (*init)(rq_plat_segment *seg, void *addr, const void *cfg, int repairing);
};

#define RQ_SEGMENT_HEADER_MAX 256

struct rq_segment {
    rq_plat_segment *plat;
    void *addr;
    uint64_t size;
    /* The header as validated at open.  The handle takes its geometry from
     * here, never from the segment again: a peer may rewrite the shared
     * header at any time after the check. */
    union {
        unsigned char bytes[RQ_SEGMENT_HEADER_MAX];
        uint64_t align_;
    } header;
};

/* Opens NAME of KIND.  CFG NULL: attach only (RQ_ENOENT if missing or never
 * completed).  Otherwise create it with MODE if missing or half-made.
 * FLAGS are rq_plat_open_flags besides RQ_PLAT_CREATE (which CFG decides):
 * the owner check, RQ_PLAT_OBSERVE.  MODE 0 (attach only): no mode check.
 * The init lock is polled until TIMEOUT_MS (RQ_INFINITE: no limit) has
 * passed: RQ_ETIMEDOUT then (another opener holds it: a creator that is
 * stopped, or very slow).  A creation that fails after this call made the
 * object removes it.  On RQ_OK, S->header holds the checked header
 * (kind->header_size bytes). */
int rq_segment_open(struct rq_segment *s, const struct rq_segment_kind *kind, const char *name,
                    const void *cfg, uint32_t mode, unsigned flags, int timeout_ms);

/* Unmaps and closes (which drops every lock held through S). */
void rq_segment_close(struct rq_segment *s);

/* ---- what the opens of queues and coalescing objects share ----------- */

/* The mode a creator gives a new object when the opener asks for none. */
#define RQ_DEFAULT_MODE 0600u

/* 1 if ROLE is one an opener may ask for: RQ_PRODUCER, RQ_CONSUMER or
 * RQ_OBSERVER (for a coalescing object: requester, worker, observer). */
int rq_role_valid(int role);

/* rq_segment_open for an opener of ROLE, with the rules every family
 * follows: an open that may create (CFG not NULL) or takes a role is
 * owner-checked, an observer's look is not, and ANY_OWNER lifts the check;
 * MODE 0 means RQ_DEFAULT_MODE when creating and no mode check when
 * attaching. */
int rq_segment_open_as(struct rq_segment *s, const struct rq_segment_kind *kind, const char *name,
                       const void *cfg, int role, uint32_t mode, int any_owner, int timeout_ms);

/* A role line's attached word: 0 after a clean close (or never held),
 * RQ_ROLE_HELD from open until a clean close, RQ_ROLE_DEATH_PASSED_ON
 * when an open found the last holder dead and then failed: the next open
 * still learns of the death (a consumer flags what the dead one may have
 * held) but counts no second takeover for it.  Any other value is read as
 * a death too. */
#define RQ_ROLE_HELD 1u
#define RQ_ROLE_DEATH_PASSED_ON 2u

/* Marks the role line LINE held by this process, whose holder is alone in
 * its role: attached = RQ_ROLE_HELD (a takeover counted if the last
 * holder died without closing) and its pid.  Returns 1 if the last holder
 * died without closing (attached not 0, counted or passed on), else 0. */
int rq_role_attach(struct rq_shm_role *line);

#endif /* RQ_SEGMENT_H */
