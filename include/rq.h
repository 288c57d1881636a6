/*
 * rq.h - crash-tolerant shared-memory ring queue between processes.
 *
 * One producer process and one consumer process (or many producers with
 * RQ_MPSC) exchange messages through a ring in shared memory.  Either side
 * may be killed at any instruction and re-open the queue any number of
 * times: no slot is lost, no message is lost or torn, and nobody blocks
 * forever while the queue is neither full (producer) nor empty (consumer).
 *
 * Every int function returns RQ_OK (0) or a negative rq_error.  On RQ_ESYS
 * errno (GetLastError() on Windows) is left as the failing OS call set it.
 *
 * Thread safety: a handle belongs to one thread at a time.  Two handles, in
 * one process or in two, are as independent as two processes.  One more
 * rule on RQ_MPSC queues: a reservation (rq_reserve until rq_commit) holds
 * the producers' lock, and the thread that reserved must be the one that
 * commits (or closes): on Windows the lock is a mutex the OS gives to that
 * thread (on Linux it belongs to the handle, but the rule is the same).  A
 * thread that holds a queue's producers' lock through one handle and
 * pushes or reserves through another gets RQ_EDEADLK instead of waiting
 * for itself.
 *
 * fork(): a handle belongs to the process that opened it.  In a child of
 * fork() every call on an inherited handle returns RQ_EFORK (rq_close only
 * frees the child's copy and leaves the parent's role, locks and
 * reservation alone); the child opens its own handles.  The check is one
 * load per call.
 *
 * Trust: the segment is treated as written by an untrusted peer (every
 * offset, length and header field is checked; RQ_ECORRUPT, never an
 * out-of-bounds access), and that includes the RQ_MPSC producers' lock,
 * which holds only plain words there (no pointers, no C library state).
 * What a writer of the segment can do to it: make producers wait (until
 * their timeouts, or until the producer whose slot a planted owner names
 * next pushes or closes) or let two producers into the lock at once (which
 * only costs the messages that writer could overwrite anyway); never make
 * one crash, hang for good or write outside its mapping.  What is still
 * trusted: that the object's size does not shrink under a mapping (POSIX
 * shared memory has no seal against that; it can SIGBUS any side), and, as
 * for any queue, that whoever can write the segment may rewrite messages.
 *
 * Opening checks who made what it opens: a producer,
 * consumer or creator uses an existing object only if its own user or
 * root owns it and its mode is no wider than asked (RQ_EOWNER otherwise;
 * RQ_ANY_OWNER opts out); a creator never initialises a file it did not
 * make unless that file passes the check.  The locks that serialise
 * creation and mark roles live in a separate lock object only writers can
 * open, so a user who may only read a queue can neither hold its opens up
 * nor take or fake a role; and opens wait for the init lock by polling
 * against a deadline (RQ_OPEN_TIMEOUT_MS).  Other users with write access
 * are peers: they cannot break memory safety but can disturb the queue's
 * contents.  docs/design.md, "Threat model", has the full table.
 *
 * Windows: a queue lives while any process has a handle to it open and goes
 * with the last one (a named file mapping; Linux keeps /dev/shm/rq.NAME until
 * rq_unlink).  docs/design.md, section 7, has the details.
 *
 * On every OS, rq_reserve and rq_commit on an RQ_MPSC queue must be called
 * from the same thread (the rule comes from Windows, where the producers'
 * lock is a thread-owned mutex, and holds on Linux too so that a program
 * right on one is right on the other).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef RQ_H
#define RQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* RQ_EXTERN marks the library's API.  The shared library is built with
 * every other symbol hidden (-fvisibility=hidden and a linker version
 * script), so a function declared here without RQ_EXTERN is not exported
 * (the test_exports test fails).  Windows: the DLL build defines
 * RQ_BUILDING_DLL, its users RQ_DLL (the CMake target rq::rq_shared does). */
#if defined(_WIN32) && defined(RQ_BUILDING_DLL)
#define RQ_EXTERN __declspec(dllexport)
#elif defined(_WIN32) && defined(RQ_DLL)
#define RQ_EXTERN __declspec(dllimport)
#elif defined(__GNUC__) && !defined(_WIN32)
#define RQ_EXTERN __attribute__((visibility("default")))
#else
#define RQ_EXTERN
#endif

#define RQ_VERSION_MAJOR 0
#define RQ_VERSION_MINOR 1
#define RQ_VERSION_PATCH 0
#define RQ_VERSION_HEX ((RQ_VERSION_MAJOR << 16) | (RQ_VERSION_MINOR << 8) | RQ_VERSION_PATCH)

/* Error table: XX(name, value, sentence).  One list gives the enum and the
 * strings of rq_strerror(), so the two can never drift apart. */
/* clang-format off */
#define RQ_ERRNO_MAP(XX)                                                       \
    XX(EAGAIN, -1, "the queue is full (producer) or empty (consumer) and "     \
                   "the call was not allowed to wait")                         \
    XX(ETIMEDOUT, -2, "the timeout expired before the queue had room "         \
                      "(producer) or a message (consumer)")                    \
    XX(EMSGSIZE, -3, "the message does not fit: longer than the slot size, "   \
                     "or longer than the caller's buffer (nothing was "        \
                     "consumed)")                                              \
    XX(EINVAL, -4, "invalid argument: NULL pointer, bad name, bad role, "      \
                   "bad timeout or bad geometry")                              \
    XX(ENOENT, -5, "no queue of that name exists (or it was never fully "      \
                   "created)")                                                 \
    XX(EBUSY, -6, "that role is held by another live process or handle")      \
    XX(ECORRUPT, -7, "the shared segment is corrupt: bad header, size, "       \
                     "offset or length read from shared memory")               \
    XX(ESYS, -8, "an operating-system call failed; see errno")                 \
    XX(EEXIST, -9, "a queue of that name exists with a different geometry "    \
                   "(slot count, slot size or flags; an observer's rq_stat "   \
                   "tells which)")                                             \
    XX(EVERSION, -10, "the segment was made by an incompatible rq build "      \
                      "(layout version or ABI differs)")                       \
    XX(EROLE, -11, "the call is not allowed for this handle's role")           \
    XX(ESTATE, -12, "the call is out of sequence (commit without reserve, "    \
                    "release without peek, push or pop while a slot is "       \
                    "held)")                                                   \
    XX(EOWNER, -13, "an object of that name exists but belongs to another "   \
                    "user, or its permissions are wider than asked; it was "   \
                    "neither used nor changed")                                \
    XX(EFORK, -14, "the handle was opened before fork(); a child process "    \
                   "must open its own handle")                                 \
    XX(EDEADLK, -15, "the calling thread already holds this queue's "         \
                     "producers' lock through another handle; waiting would "  \
                     "deadlock")                                                \
    XX(EUNLINKED, -16, "the queue was unlinked while open: this handle's "     \
                       "queue can no longer be reached by its name, or (when " \
                       "creating) handles of an unlinked queue of that name "  \
                       "still hold its roles")                               \
    XX(EINTR, -17, "the wait was ended by rq_interrupt on this handle")       \
    XX(ELOCKED, -18, "the timeout ran out while another producer held the "   \
                     "producers' lock (RQ_MPSC; the ring itself may have "     \
                     "room)")

typedef enum rq_error {
    RQ_OK = 0,
#define RQ_ERRNO_ENUM_(name, value, text) RQ_##name = (value),
    RQ_ERRNO_MAP(RQ_ERRNO_ENUM_)
#undef RQ_ERRNO_ENUM_
} rq_error;

typedef struct rq rq; /* opaque handle */

/* Roles.  RQ_OBSERVER takes no role: it may create, inspect (rq_stat) and
 * close a queue, never push or pop, and never gets RQ_EBUSY. */
enum { RQ_PRODUCER = 1, RQ_CONSUMER = 2, RQ_OBSERVER = 3 };

/* rq_config.flags.
 * RQ_MPSC: many producers (serialised by a lock; on Linux at most
 * RQ_MPSC_PRODUCERS_MAX live handles at once), one consumer.
 * RQ_FULL_FENCES: publish every message with a full memory fence.  By
 * default (on Linux) a message is published with a plain release store and
 * the side about to *sleep* pays instead, with a system-wide barrier
 * (membarrier): the busy path then costs what a bare ring costs, and a sleep
 * costs a few microseconds more.  This flag trades back; it is set by
 * itself where the OS has no such barrier (Windows), and rq_stat reports
 * which a queue uses. */
enum { RQ_MPSC = 1u << 0, RQ_FULL_FENCES = 1u << 1, RQ_ANY_OWNER = 1u << 2, RQ_RECORDS = 1u << 3 };

/* RQ_RECORDS (rq_config.flags, kept in the queue): a record queue, a byte
 * ring that packs messages of any length up to a maximum back to back
 * instead of one per fixed slot.  In its config slot_count is the
 * capacity in bytes (a multiple of 16, RQ_RECORDS_CAPACITY_MIN ..
 * RQ_SLOT_COUNT_MAX) and slot_size the largest message (1 .. capacity / 2
 * - RQ_RECORD_HEADER).  A message of LEN bytes takes RQ_RECORD_SPAN(LEN)
 * bytes of the ring: a 4-byte header and its payload, rounded up to a
 * multiple of 8, so every payload is 8-aligned.  Each is contiguous in
 * memory (a message that does not fit before the end of the ring is
 * preceded by padding), so rq_peek gives one pointer and one length.
 * Every call works on both kinds, with the same crash guarantees;
 * rq_reserve_len reserves a length, and rq_stat_records reports bytes as
 * well as messages.  A library built without records refuses such a
 * queue (RQ_EVERSION) or config (RQ_EINVAL). */
#define RQ_RECORD_HEADER 4u
#define RQ_RECORD_SPAN(len) (((size_t)(len) + RQ_RECORD_HEADER + 7u) & ~(size_t)7u)
#define RQ_RECORDS_CAPACITY_MIN 64u

/* RQ_ANY_OWNER (rq_config.flags; never stored in the queue): accept an
 * existing queue owned by another user.  Without it, rq_open uses an
 * existing queue as producer or consumer, or with a creating config, only
 * if the caller's effective user or the administrator (root) owns it, and,
 * when a mode was given (a config), only if its permissions are no wider
 * than that mode (0 in a creating config means 0600); anything else is
 * RQ_EOWNER and nothing is used or changed.  RQ_MODE_ANY_OWNER is the same
 * for the MODE argument of the coalescing calls. */
#define RQ_MODE_ANY_OWNER 0x10000u

/* How long rq_open, rq_coalesce_open and rq_coalesce_attach wait for the
 * init lock, which a creator holds while it makes a queue: a creator that
 * is stopped (SIGSTOP, a debugger) or very slow then costs RQ_ETIMEDOUT,
 * not a hang.  The _timed variants take their own bound. */
#define RQ_OPEN_TIMEOUT_MS 10000

#define RQ_INFINITE (-1) /* timeout_ms: -1 forever, 0 never wait, >0 ms */

/* Live producer handles an RQ_MPSC queue admits at once (Linux: each holds
 * a producer slot, a kernel lock that proves it alive); one more gets
 * RQ_EBUSY from rq_open. */
#define RQ_MPSC_PRODUCERS_MAX 256

#define RQ_NAME_MAX 200 /* queue names: 1..RQ_NAME_MAX of [A-Za-z0-9._-] */
#define RQ_SLOT_COUNT_MAX 0x40000000u /* 2^30 slots */
#define RQ_SLOT_SIZE_MAX 0x40000000u  /* 1 GiB per message */

/* The largest segment rq makes or accepts: 2^44 bytes (16 TiB) where
 * pointers have 64 bits (below what x86-64 and arm64 can map, and far below
 * off_t's limit), 2^30 (1 GiB) elsewhere.  A geometry needing more (header,
 * slots and their 8-byte length words, see docs/design.md) is RQ_EINVAL,
 * refused before any object exists; a segment claiming more is corrupt. */
#define RQ_SEGMENT_SIZE_MAX \
    (sizeof(void *) >= 8 ? (uint64_t)1 << 44 : (uint64_t)1 << 30)

/* 1 if NAME is a valid name for a queue or a coalescing object: 1 to
 * RQ_NAME_MAX characters of [A-Za-z0-9._-] (portable across POSIX shared
 * memory and Win32 object names, and free of path separators); else 0.
 * rq_open and rq_coalesce_open refuse other names with RQ_EINVAL. */
RQ_EXTERN int rq_name_valid(const char *name);

/* A config with slot_count and slot_size both 0 is an attach config: it
 * never creates, its flags may only be RQ_ANY_OWNER, and a mode other
 * than 0 is checked against the existing queue. */
typedef struct rq_config {
    uint32_t slot_count; /* messages the queue holds, 1..RQ_SLOT_COUNT_MAX */
    uint32_t slot_size;  /* largest message in bytes, 1..RQ_SLOT_SIZE_MAX */
    uint32_t flags;      /* 0, or RQ_MPSC, RQ_FULL_FENCES, RQ_ANY_OWNER */
    uint32_t mode;       /* permission bits of a new segment; 0 means 0600
                            (Windows: this user only, plus read or all
                            access for Everyone if group/other bits give
                            it; an existing object's mode is not checked
                            there) */
} rq_config;

/* A snapshot of a queue.  Counters are statistics: they live in the
 * segment, survive restarts, and may be off by one per crash of the side
 * that keeps them. */
typedef struct rq_stats {
    uint32_t slot_count, slot_size, flags;
    uint32_t read_offset, write_offset; /* both in [0, 2 * slot_count) */
    uint32_t depth;                     /* messages in the queue now */
    uint64_t pushed;                    /* messages published */
    uint64_t popped;                    /* messages released by the consumer */
    uint64_t producer_waits;            /* times a producer slept: full */
    uint64_t consumer_waits;            /* times the consumer slept: empty */
    uint64_t producer_wakes;            /* wake signals sent by producers */
    uint64_t consumer_wakes;            /* wake signals sent by the consumer */
    /* Work a sleeping side found at its periodic re-check (at most every
     * second) with no wake signal: the peer died between publishing and
     * signalling and has not re-opened.  Normally 0. */
    uint64_t producer_missed_wakes;
    uint64_t consumer_missed_wakes;
    uint64_t producer_takeovers; /* producer role taken from a dead holder */
    uint64_t consumer_takeovers; /* consumer role taken from a dead holder */
    uint64_t lock_recoveries;    /* MPSC lock taken from a dead owner */
    uint64_t repairs;            /* half-made segments re-initialised */
    int64_t producer_pid;        /* last producer to open, or 0 */
    int64_t consumer_pid;        /* last consumer to open, or 0 */
    /* 1 if a live process holds the role now, 0 if not, -1 if this handle
     * cannot tell (an observer that may only read the queue cannot open its
     * lock object). */
    int producer_live;
    int consumer_live;
    /* 1 if the queue this handle has open was unlinked (rq_unlink, rqctl
     * unlink) since it was opened: its name now names nothing or another
     * queue, and no new producer or consumer can reach this one.  (Added
     * last: the fields above keep their offsets.) */
    int unlinked;
    /* RQ_MPSC: who holds the producers' lock now, read from the
     * segment (shown, never acted on: a writer of the segment can plant
     * any value here).  lock_reserving: 1 if the holder took it for a
     * reservation (rq_reserve until rq_commit: a producer that stalls
     * there holds the others up; RQ_ELOCKED tells them).  lock_holder_pid:
     * 0 if free, the holder's process id, or -1 if held with no pid
     * recorded.  lock_held_ms: held at least this long, measured from when
     * a producer first had to wait for this holder (CLOCK_MONOTONIC: the
     * same clock in every process of the machine, and immune to changes of
     * the wall clock); -1 if no producer has waited for it (the
     * uncontended lock stores no time: it costs nothing per push).
     * Windows: the holder stamps its pid and the time it took the mutex
     * into the segment and clears them before releasing it, so that
     * lock_held_ms counts from the acquisition (a holder killed holding it
     * stays named until the next holder takes the abandoned mutex). */
    int lock_reserving;
    int64_t lock_holder_pid;
    int64_t lock_held_ms;
    /* RQ_MPSC: lock recoveries (lock_recoveries) whose dead owner held the
     * lock for a reservation.  Deaths of producers are counted in
     * producer_takeovers for RQ_MPSC too, inside the lock or outside it,
     * on Linux and Windows alike: a producer slot found with the pid of a
     * holder that never closed, counted when the next producer takes that
     * slot. */
    uint64_t dead_reservations;
} rq_stats;

/* What an event loop waits on for a queue handle (rq_poll_handle): a file
 * descriptor on Linux, an event HANDLE on Windows. */
#ifdef _WIN32
typedef void *rq_pollable;
#define RQ_POLLABLE_NONE ((rq_pollable)0)
#else
typedef int rq_pollable;
#define RQ_POLLABLE_NONE (-1)
#endif

/* Opens (cfg NULL or an attach config: attaches to; otherwise creates if
 * missing) the queue NAME in ROLE.  An existing queue of another geometry
 * is RQ_EEXIST (to learn its geometry, open it as RQ_OBSERVER with a NULL
 * config and call rq_stat: slot_count, slot_size, flags); a segment
 * half-made by a creator that died is re-created when cfg is given and
 * RQ_ENOENT otherwise.  A foreign queue (see
 * RQ_ANY_OWNER) is RQ_EOWNER.  A role held by a live process is RQ_EBUSY (so
 * is an RQ_MPSC producer beyond RQ_MPSC_PRODUCERS_MAX); a role whose holder
 * died is taken over at once.  The handle keeps the mode (RQ_MPSC or not)
 * of the header it checked at open; SPSC and MPSC producers never live
 * side by side, whatever the header says later (RQ_EBUSY).  A geometry whose segment
 * would exceed RQ_SEGMENT_SIZE_MAX is RQ_EINVAL with nothing created, and
 * a creation that fails later removes the object it made.  Waits at most
 * RQ_OPEN_TIMEOUT_MS for a creator that holds the queue's init lock, then
 * RQ_ETIMEDOUT.  A creating open whose name was unlinked while handles of
 * the old queue still hold a role (see rq_unlink) is RQ_EUNLINKED, with
 * nothing created.  On success *out is a new handle; on failure *out is
 * NULL.
 *
 * RQ_OBSERVER attaching (cfg NULL or an attach config) opens and maps the
 * queue read-only, so read permission is enough; it learns whether the
 * roles are held only if it may open the queue's lock object
 * (producer_live / consumer_live are -1 otherwise). */
RQ_EXTERN int rq_open(rq **out, const char *name, int role, const rq_config *cfg);

/* rq_open with its own bound: waits at most TIMEOUT_MS (RQ_INFINITE: no
 * limit; 0: one try) for the init lock, polling it (a stopped holder cannot
 * hold the caller longer), and returns RQ_ETIMEDOUT when the time is up
 * having initialised nothing.  Every other result is as
 * rq_open's.  The time bounds the wait for other openers only: the
 * caller's own work (sizing a large segment) is not cut short. */
RQ_EXTERN int rq_open_timed(rq **out, const char *name, int role, const rq_config *cfg, int timeout_ms);

/* rq_open_timed that also waits for the queue to be created: with cfg NULL
 * or an attach config, a queue that does not exist yet (or whose creator
 * has not finished it) is waited for, up to TIMEOUT_MS in all (RQ_INFINITE:
 * no limit; 0: one try), instead of RQ_ENOENT at once.  For a consumer or
 * observer started before its producer.  The wait polls the name with naps
 * growing from 1 ms to 50 ms (no OS notification: the same on every OS), so
 * a queue is found at most 50 ms after it is complete.  Still missing when
 * the time is up: RQ_ENOENT.  A creating config creates as rq_open_timed
 * does (nothing to wait for). */
RQ_EXTERN int rq_open_wait(rq **out, const char *name, int role, const rq_config *cfg, int timeout_ms);

/* Producer: copies LEN bytes into the queue, waiting up to TIMEOUT_MS for a
 * free slot (RQ_MPSC: and for the producers' lock).  RQ_EMSGSIZE if LEN >
 * slot_size (queue untouched); RQ_EDEADLK as for rq_reserve.  A timeout is
 * RQ_ETIMEDOUT when the ring stayed full, RQ_ELOCKED (RQ_MPSC) when the
 * time ran out waiting for the producers' lock, which another producer
 * held (a reservation in progress, a stopped producer: rq_stat names it);
 * with TIMEOUT_MS 0 both are RQ_EAGAIN (a held lock once its holder had
 * about a millisecond to finish a push in progress: one sleep, ended by
 * the release; a reservation is not waited for).  RQ_EINTR: see
 * rq_interrupt.  Every
 * call that waits (this one, rq_pop, rq_peek, rq_reserve and their _info
 * forms) returns RQ_EUNLINKED when, at one of its periodic re-checks (at
 * most a second apart), the queue turns out to have been unlinked: see
 * rq_unlink. */
RQ_EXTERN int rq_push(rq *q, const void *msg, size_t len, int timeout_ms);

/* Consumer: copies the oldest message into BUF and frees its slot
 * (at-most-once: a consumer killed after rq_pop returns has the message
 * only in its own memory).  *LEN gets the message length.  If the message
 * is longer than CAP: RQ_EMSGSIZE, *LEN is the length needed, nothing is
 * consumed. */
RQ_EXTERN int rq_pop(rq *q, void *buf, size_t cap, size_t *len, int timeout_ms);

/* Producer, zero-copy: *SLOT points at slot_size writable bytes of the next
 * free slot.  Nothing is visible to the consumer until rq_commit; a producer
 * killed before it leaves the queue as it was.  Reserving again before
 * committing returns the same slot.  On an RQ_MPSC queue the reservation
 * holds the producers' lock until rq_commit (other producers wait), and
 * only the reserving thread may commit: RQ_ESTATE from any other.
 * RQ_EDEADLK (RQ_MPSC): this thread holds the lock through another
 * handle.  RQ_ELOCKED, RQ_EINTR: as for rq_push. */
RQ_EXTERN int rq_reserve(rq *q, void **slot, int timeout_ms);

/* Producer, zero-copy, with a length: *SLOT points at LEN writable bytes,
 * to be published by rq_commit with at most LEN.  On a record queue
 * (RQ_RECORDS) the space taken is what LEN needs, and rq_reserve reserves
 * slot_size bytes; on a slot queue this is rq_reserve for any LEN up to
 * slot_size.  RQ_EINVAL for a NULL SLOT (whatever LEN); RQ_EMSGSIZE if
 * LEN > slot_size (nothing reserved).  Reserving again before committing
 * returns the same reservation if LEN fits it, else RQ_ESTATE.  Otherwise
 * as rq_reserve. */
RQ_EXTERN int rq_reserve_len(rq *q, size_t len, void **slot, int timeout_ms);

/* Publishes the reserved slot holding LEN bytes.  RQ_EMSGSIZE if LEN >
 * slot_size (the reservation is kept); RQ_ESTATE without a reservation, or
 * (RQ_MPSC) from a thread other than the one that reserved. */
RQ_EXTERN int rq_commit(rq *q, size_t len);

/* Consumer, zero-copy: *MSG points at the oldest message, valid until
 * rq_release.  At-least-once: a consumer killed before rq_release sees the
 * same message again after it re-opens.  Peeking again before releasing
 * returns the same message. */
RQ_EXTERN int rq_peek(rq *q, const void **msg, size_t *len, int timeout_ms);

/* ---- sequence numbers --------------------------------------------- */

/* What rq_peek_info / rq_pop_info say about a message besides its bytes.
 *
 * seq: the message's position in the queue since the queue was created
 * (0, 1, 2, ...; 64 bits, never reused, whatever crashes: it is derived
 * from the ring's offsets, which are the only truth).  Consecutive
 * messages have consecutive numbers; a redelivered message has the number
 * it had the first time.
 *
 * RQ_MSG_REDELIVERED in flags: the message may have been handed out before,
 * to a consumer that died (or closed) before releasing it.  A message that
 * was handed out and not released carries it always.  A message nobody
 * saw carries it only after a consumer death, and then at most one (the
 * oldest, when the consumer died between a release and its next peek: a
 * single peek stores nothing, so its successor flags the oldest message
 * in case the dead one held it), or a peeked batch killed between its
 * mark and the hand-over.
 *
 * Exactly-once processing: store the last processed seq atomically with
 * the output (in the same file write, database transaction, ...); after a
 * restart, skip every message whose seq is at or below it
 * (docs/exactly-once.md, examples/rq_exactly_once.c). */
enum { RQ_MSG_REDELIVERED = 1u << 0 };

typedef struct rq_msg_info {
    uint64_t seq;
    uint32_t flags;    /* RQ_MSG_REDELIVERED */
    uint32_t reserved; /* 0 */
} rq_msg_info;

/* rq_peek that also fills *INFO (NULL allowed).  Peeking again before
 * releasing returns the same message with the same info. */
RQ_EXTERN int rq_peek_info(rq *q, const void **msg, size_t *len, rq_msg_info *info, int timeout_ms);

/* rq_pop that also fills *INFO (NULL allowed) for the message popped. */
RQ_EXTERN int rq_pop_info(rq *q, void *buf, size_t cap, size_t *len, rq_msg_info *info,
                int timeout_ms);

/* *SEQ: producer: the sequence number the next message pushed through this
 * handle gets if no other producer goes first (SPSC: exactly the one it
 * gets).  So right after a push, *SEQ - 1 is that message's number, also
 * on an RQ_MPSC queue; right after open it is where a restarted producer
 * resumes.  Consumer: the number of the oldest message not yet released.
 * RQ_EROLE for an observer. */
RQ_EXTERN int rq_next_seq(rq *q, uint64_t *seq);

/* ---- bursts: many messages, one publish -------------------------- */

/* A burst moves up to COUNT messages (at most slot_count) and publishes the
 * offset once for the whole batch: one store, one look at the peer's line,
 * one wake check and, on an RQ_MPSC queue, one round of the producers'
 * lock.  A burst waits up to TIMEOUT_MS for the first message or free slot
 * only, then moves as many as are there at once, and returns how many it
 * moved (>= 1), or a negative rq_error (RQ_EAGAIN / RQ_ETIMEDOUT: none).
 * A batch is all-or-nothing under a crash: a producer killed before the
 * publish leaves none of it visible, one killed after it all of it; a
 * consumer killed before freeing a batch gets all of it again.  On a
 * record queue (RQ_RECORDS) the push, pop, peek and release bursts work
 * alike (a batch: as many records as there are, or fit, at most one per 8
 * bytes of capacity, padding at the wrap inside it); rq_reserve_burst is
 * RQ_EINVAL there (a record's room is its length: rq_reserve_burst_len
 * names each). */

/* Producer: copies messages MSGS[i] of LENS[i] bytes, i < COUNT, in order.
 * RQ_EMSGSIZE if one of those that fit is longer than slot_size (nothing
 * pushed); COUNT 0 returns 0. */
RQ_EXTERN int rq_push_burst(rq *q, const void *const *msgs, const size_t *lens, size_t count,
                            int timeout_ms);

/* Consumer: copies the oldest messages, the i-th to BUF + i * CAP (CAP
 * bytes each), its length to LENS[i], i < MAX, and frees their slots with
 * one store (at-most-once, as rq_pop).  It stops before a message longer
 * than CAP; if that is the first: RQ_EMSGSIZE, LENS[0] the length needed,
 * nothing consumed.  MAX 0 returns 0. */
RQ_EXTERN int rq_pop_burst(rq *q, void *buf, size_t cap, size_t *lens, size_t max, int timeout_ms);

/* Producer, zero-copy: SLOTS[i] points at slot_size writable bytes of the
 * i-th of the free slots claimed (the return value; at most COUNT).
 * Nothing is visible until rq_commit_burst.  RQ_ESTATE while a reservation
 * is held.  RQ_MPSC: holds the producers' lock until the commit, and only
 * the reserving thread may commit, as rq_reserve.  (rq_commit on a burst
 * reservation publishes its first slot and drops the rest.) */
RQ_EXTERN int rq_reserve_burst(rq *q, void **slots, size_t count, int timeout_ms);

/* Producer, zero-copy, with a length per message: BUFS[i] points at
 * LENS[i] writable bytes (on a slot queue at a whole slot), i < the return
 * value, which is COUNT, or less only if the batch could never fit: at
 * most slot_count messages, and on a record queue (RQ_RECORDS) the longest
 * start of the batch that fits the ring from the write offset (its
 * records, and the padding at the wrap).  All of those or none: the call waits
 * up to TIMEOUT_MS until there is room for the whole batch (each record
 * contiguous, padding at the wrap as rq_reserve_len), and RQ_EAGAIN /
 * RQ_ETIMEDOUT leave nothing reserved.  RQ_EMSGSIZE if one of those
 * lengths is over slot_size (the largest record): nothing reserved.
 * Nothing is visible until rq_commit_burst, which publishes the first K
 * with at most their reserved lengths in one store (all-or-nothing under
 * a crash) and drops the rest; on a record queue records committed
 * shorter than reserved are packed, the later ones moved down behind them
 * (a copy of their payload: the format has no gap inside the ring).
 * rq_commit publishes the first alone.  RQ_EINVAL for a NULL array or
 * COUNT 0.  Waiting for more room than one message needs, the call
 * re-checks every millisecond (the consumer signals producers only for
 * the room one message needs).  Otherwise as rq_reserve_burst: RQ_ESTATE
 * while a reservation is held; RQ_MPSC: holds the producers' lock until
 * the commit (one lock round per batch), same thread. */
RQ_EXTERN int rq_reserve_burst_len(rq *q, const size_t *lens, size_t count, void **bufs,
                                   int timeout_ms);

/* Publishes the first COUNT reserved slots, the i-th holding LENS[i] bytes,
 * with one store, and drops the rest of the reservation (COUNT 0: drops it
 * all).  RQ_EINVAL if COUNT is more than were reserved; RQ_EMSGSIZE if a
 * length is over slot_size, or on a record queue over the length reserved
 * (the reservation is kept); RQ_ESTATE as for rq_commit.  On a record
 * queue it commits rq_reserve_burst_len's and rq_reserve_len's records. */
RQ_EXTERN int rq_commit_burst(rq *q, const size_t *lens, size_t count);

/* One message of a peeked burst: its bytes (valid until released), its
 * sequence number and flags, as rq_msg_info says. */
typedef struct rq_msg_view {
    const void *data;
    size_t len;
    uint64_t seq;
    uint32_t flags;    /* RQ_MSG_REDELIVERED */
    uint32_t reserved; /* 0 */
} rq_msg_view;

/* Consumer, zero-copy: fills MSGS[i] for the oldest messages not yet
 * released, i < MAX, and returns how many (>= 1).  One store of the
 * delivered mark, made before the hand-over, covers the batch: a consumer
 * killed any time after it gets every one of them again, flagged
 * RQ_MSG_REDELIVERED.  Peeking again before releasing starts again from
 * the oldest unreleased message (same numbers, same flags), and may see
 * more.  rq_peek returns the oldest of a peeked burst; rq_release frees
 * it alone. */
RQ_EXTERN int rq_peek_burst(rq *q, rq_msg_view *msgs, size_t max, int timeout_ms);

/* Frees the COUNT oldest messages of the last rq_peek_burst with one
 * store; the rest stay peeked, to be released later (for instance as a
 * downstream acknowledges them in order).  RQ_ESTATE without a peek;
 * RQ_EINVAL for COUNT 0 or more than are peeked. */
RQ_EXTERN int rq_release_burst(rq *q, size_t count);
/* ---- interrupting a wait ------------------------------------------- */

/* Ends a wait of Q from outside: another thread, or a signal handler.
 * The call of Q that is waiting now (rq_push, rq_pop, rq_peek,
 * rq_reserve and their _info forms, for room, a message or the producers'
 * lock) returns RQ_EINTR promptly (one wake-up: microseconds); if none is
 * waiting, the next call of Q that would wait returns RQ_EINTR instead of
 * waiting.  Either way the interrupt is then used up: the call after that
 * waits as usual.  A call that finds its room or message without waiting
 * succeeds and leaves the interrupt pending; a call with timeout 0 never
 * waits, so never returns RQ_EINTR.  Several rq_interrupt calls before a
 * wait count as one.
 *
 * Async-signal-safe: it makes only atomic stores and one wake-up system
 * call per word (Linux: FUTEX_WAKE_OP on the word Q sleeps on, which
 * moves that shared word on by one: other handles asleep on it wake,
 * re-check and sleep again; Windows: SetEvent on an event of Q's own),
 * and it keeps errno.  Q must stay open while rq_interrupt may run on it
 * (close it only after the signal handler or thread can no longer call
 * it).  Any role; on an observer it only marks Q (observers never wait).
 * A NULL Q is ignored.
 *
 * EINTR policy: without rq_interrupt, a signal that interrupts a sleep
 * (a futex wait returning EINTR; Windows has no such case) is treated as
 * a spurious wake-up: the call re-checks and sleeps on until its
 * deadline, as it would after any early wake.  A handler that returns
 * cannot tell rq which calls it meant to end, and the wait would
 * otherwise end at whatever point the signal happened to land (or not
 * at all, with SA_RESTART): so a program that wants a signal to end a
 * wait calls rq_interrupt from its handler. */
RQ_EXTERN void rq_interrupt(rq *q);

#define RQ_SPIN_US_MAX 1000000u /* rq_set_spin_us: one second */

/* How long a call of Q polls the queue before it first sleeps, in
 * microseconds: 0 (the default) sleeps at once; at most RQ_SPIN_US_MAX.
 *
 * A call that must wait (timeout_ms not 0) then looks at the queue again
 * and again, with a pause instruction between looks, for up to US
 * microseconds before its first sleep; never past its own deadline, and
 * an rq_interrupt ends the spin (the call then returns RQ_EINTR as
 * usual).  Once a call: if it sleeps, it sleeps as without a spin until
 * it returns.  The spinner is not registered as a waiter, so a message or
 * a free slot that comes during the spin is taken without a wake-up
 * system call on either side.  The price is a CPU kept busy for up to US
 * per call that finds nothing.  Worth it where the peer usually answers
 * within a few microseconds (two processes on their own cores, a stream
 * of messages, a request and its reply), not where messages come
 * milliseconds apart.  Calls with timeout 0 never wait, so never spin;
 * the MPSC producers' lock has a short spin of its own either way.
 *
 * Per handle, and local to this process: the segment is not touched, so
 * the peer is unaffected and a kill during a spin is a kill before a
 * wait.  Set it between calls of Q, like any of Q's state.
 * Returns RQ_OK, or RQ_EINVAL for a NULL Q or US > RQ_SPIN_US_MAX (the
 * setting is then unchanged). */
RQ_EXTERN int rq_set_spin_us(rq *q, uint32_t us);

/* Frees the peeked slot.  RQ_ESTATE without a peek. */
RQ_EXTERN int rq_release(rq *q);

/* Fills *ST with geometry, offsets, depth, counters and role holders. */
RQ_EXTERN int rq_stat(rq *q, rq_stats *st);

/* What rq_stat_records reports about a record queue (RQ_RECORDS). */
typedef struct rq_record_stats {
    uint64_t capacity;       /* bytes of the ring */
    uint64_t max_record;     /* largest message accepted (slot_size) */
    uint64_t bytes_used;     /* bytes in the ring now: headers, payloads and padding */
    uint64_t bytes_free;     /* capacity - bytes_used */
    uint64_t records;        /* messages in the ring now */
    uint64_t largest_record; /* longest message pushed so far */
    uint64_t padding_bytes;  /* bytes published as padding at the wrap so far */
    uint64_t payload_bytes;  /* message bytes published so far */
} rq_record_stats;
/* The last three are counted just after each publish: a producer killed
 * between its publish and its count leaves out that push's records from
 * them (records, bytes_used and rq_stat's pushed and popped are exact). */

/* Fills *ST for a record queue (any role, observers too).  RQ_EINVAL for a
 * slot queue; RQ_ECORRUPT if the offsets read are inconsistent (the
 * counters are filled in anyway). */
RQ_EXTERN int rq_stat_records(rq *q, rq_record_stats *st);

/* One record as rq_dump_records finds it in the ring. */
typedef struct rq_record_entry {
    uint64_t seq;      /* its sequence number */
    uint32_t offset;   /* its header's byte index in the ring */
    uint32_t len;      /* its length */
    uint32_t padding;  /* bytes of padding just before it (the wrap), or 0 */
    uint32_t reserved; /* 0 */
    const void *data;  /* its bytes, valid during the call only */
} rq_record_entry;

/* Calls FN(CTX, entry) for every record in a record queue, oldest first,
 * without consuming any (any role, observers too: for inspection tools).
 * The queue may move meanwhile: a record's bytes may be overwritten by a
 * producer after the consumer frees it, so the walk is a diagnostic view,
 * not a read; it stops at the records it found at its start.  FN returns 0
 * to go on, anything else to stop (returned as is).  RQ_EINVAL for a slot
 * queue; RQ_ECORRUPT on an impossible offset, length or padding (every
 * value checked, never an out-of-bounds read); RQ_EAGAIN if the consumer
 * freed records under the walk (walk again). */
RQ_EXTERN int rq_dump_records(rq *q, int (*fn)(void *ctx, const rq_record_entry *entry),
                              void *ctx);

/* Closes the handle and gives its role up; a reservation is dropped and a
 * peeked message stays in the queue.  The queue itself persists.  NULL is
 * allowed.  (RQ_MPSC: a reservation made by another thread is not released
 * from here.  Linux: the lock goes with the handle, and the next producer
 * to lock takes it over; Windows: it is freed when that thread commits or
 * ends.) */
RQ_EXTERN void rq_close(rq *q);

/* Event-loop integration: *OUT is an object that becomes ready when this
 * handle's side can make progress: the consumer when a message is there,
 * a producer when a slot is free (RQ_MPSC: free for any producer; another
 * may take it first).  Linux: a file descriptor that polls readable
 * (epoll level- or edge-triggered, poll, select, io_uring poll); Windows:
 * an event HANDLE for WaitForMultipleObjects or RegisterWaitForSingleObject.
 * It belongs to the handle: do not read, close or reset it; rq_close
 * closes it.  Repeated calls return the same object.
 *
 * The contract.  After RQ_EAGAIN from rq_pop, rq_pop_info, rq_peek,
 * rq_peek_info (consumer) or rq_push, rq_reserve (producer) called with
 * timeout 0 on this handle, the object becomes ready as soon as a message
 * or a slot is published, however soon after the RQ_EAGAIN that happens:
 * that RQ_EAGAIN armed it (it announces the wait as a blocking call does,
 * then looks at the ring once more).  So the loop is: wait; when the
 * object is ready, or the wait timed out, call the function with timeout
 * 0 until it returns RQ_EAGAIN (or a message is left for later: then the
 * object is not armed, call again before waiting); wait again.  The
 * object may also be ready with nothing to do (a spurious wake-up: the
 * next call returns RQ_EAGAIN and re-arms).  A side that never sees
 * RQ_EAGAIN never arms it, and a peer pays a system call only for a side
 * that armed it: one per arming, none per message.  Blocking calls
 * (timeout not 0) on the handle work as before; only a zero timeout arms.
 *
 * Wait at most rq_poll_timeout(q) milliseconds, then call again: see
 * there.  Linux: the object is a FIFO /dev/shm/rqd.NAME (consumer) or
 * rqs.NAME (producers), made by the first caller with the queue's mode
 * (write classes, as the lock object) and owner-checked as the queue is;
 * rq_unlink removes it.  Nothing is left behind by a killed process but
 * that name, which holds no data and is reused.
 *
 * RQ_OK; RQ_EROLE for an observer; RQ_EOWNER if the FIFO exists but is
 * not a FIFO owned as the queue must be; RQ_ESYS; RQ_EFORK; RQ_EINVAL.
 * Record queues (RQ_RECORDS) too: their calls arm and signal the same
 * objects. */
RQ_EXTERN int rq_poll_handle(rq *q, rq_pollable *out);

/* The longest wait, in milliseconds, a poller should make on the object of
 * rq_poll_handle before calling rq_pop (rq_push, ...) again: 1 after an
 * RQ_EAGAIN that armed without the system-wide barrier (the first arming
 * after progress, on a queue without RQ_FULL_FENCES, for either side: a
 * publish racing it may be seen that late, the race of a blocking call's
 * first nap, which lasts 5 ms for a consumer and 1 ms for a producer; the next
 * RQ_EAGAIN in a row pays for the barrier), otherwise 1000: the periodic
 * re-check every blocking wait makes, which finds work a peer published
 * before it was killed and before it could signal (its restart signals
 * too).  A loop over many queues waits for the smallest.  RQ_ESTATE if
 * rq_poll_handle was not called on Q; RQ_EINVAL, RQ_EFORK. */
RQ_EXTERN int rq_poll_timeout(rq *q);

/* Removes the queue name; handles already open keep working.  RQ_ENOENT if
 * there is no such queue.  Windows: a name cannot be removed while open;
 * RQ_OK only says the queue exists (it goes with its last handle).
 *
 * Hazard (Linux): unlinking a queue that a producer or consumer has open
 * splits it.  The open handles keep the old queue, which nobody new can
 * reach by name; a producer that restarts would create a new queue under
 * the name while the old consumer waits on the old one.  So rq tells them:
 *  - rq_stat's `unlinked` is 1 on every handle of the old queue;
 *  - a blocking call (rq_push, rq_pop, rq_peek, rq_reserve waiting for
 *    room or a message) on the old queue returns RQ_EUNLINKED at its next
 *    periodic re-check (within a second) instead of waiting on: close the
 *    handle and open the name again;
 *  - a creating rq_open under the name fails with RQ_EUNLINKED while a
 *    handle of the old queue still holds a role (the old lock object is
 *    kept for this while any lock in it is held), and succeeds once they
 *    have closed.
 * Messages still in the old queue go with its last handle.  To retire a
 * queue, stop its users first ('rqctl unlink' refuses while a role is
 * held, unless --force). */
RQ_EXTERN int rq_unlink(const char *name);

/* A sentence for an rq_error (or "unknown rq error" for anything else). */
RQ_EXTERN const char *rq_strerror(int err);

/* The short name of an rq_error, e.g. "RQ_EBUSY". */
RQ_EXTERN const char *rq_errname(int err);

/* ---- coalescing requests -------------------------------------------- */

/* Many processes request an idempotent piece of work ("refresh"); one
 * worker does it.  Requests made while no round has started are coalesced
 * into the next round; a request made while a round runs causes exactly
 * one more round.  The worker is woken only on the idle-to-requested edge.
 * Crash-safe: a worker killed between rq_coalesce_wait and
 * rq_coalesce_done finds the work still owed when it (or a successor)
 * opens again; a requester killed at any point never leaves the worker
 * asleep with work owed.  Object name "/rqc.NAME". */
typedef struct rq_coalesce rq_coalesce;

/* A coalescing object's roles.  They equal RQ_PRODUCER and RQ_CONSUMER,
 * which programs written before these names existed pass and which keep
 * working. */
enum { RQ_REQUESTER = RQ_PRODUCER, RQ_WORKER = RQ_CONSUMER };

/* Opens NAME, creating it with MODE (0 means 0600) if missing.  ROLE:
 * RQ_REQUESTER requests (any number), RQ_WORKER does the work (one live
 * one: RQ_EBUSY otherwise; a dead one is taken over at once), RQ_OBSERVER
 * only reads statistics.  An existing object is checked as rq_open checks
 * a queue with a creating config: RQ_EOWNER unless MODE has
 * RQ_MODE_ANY_OWNER.  Waits at most RQ_OPEN_TIMEOUT_MS for the init lock. */
RQ_EXTERN int rq_coalesce_open(rq_coalesce **out, const char *name, int role, uint32_t mode);

/* As rq_coalesce_open, but never creates: RQ_ENOENT if NAME does not exist
 * (or its creator died before finishing it).  For tools that inspect or
 * poke an object and must not leave one behind.  A requester or worker is
 * owner-checked (no mode check); an observer is not. */
RQ_EXTERN int rq_coalesce_attach(rq_coalesce **out, const char *name, int role);

/* The two above with their own bound on the wait for the init lock (as
 * rq_open_timed).  For rq_coalesce_attach_timed, MODE may be 0,
 * RQ_MODE_ANY_OWNER, and/or permission bits the object must not exceed. */
RQ_EXTERN int rq_coalesce_open_timed(rq_coalesce **out, const char *name, int role, uint32_t mode,
                           int timeout_ms);
RQ_EXTERN int rq_coalesce_attach_timed(rq_coalesce **out, const char *name, int role, uint32_t mode,
                             int timeout_ms);

/* Requester: asks for one more round.  Never blocks. */
RQ_EXTERN int rq_coalesce_request(rq_coalesce *c);

/* Worker: returns RQ_OK when work is owed, with *TICKET naming the round.
 * The round covers every request made before this call took it; a request
 * made after that (during the work) makes the next call return another
 * round.  Waits up to TIMEOUT_MS: RQ_EAGAIN (a TIMEOUT_MS of 0) or RQ_ETIMEDOUT when
 * nothing is owed; RQ_EUNLINKED (within a second) when the object was
 * unlinked meanwhile (rq_coalesce_unlink: as rq_unlink on a queue, a
 * create under the name is refused while a worker or requester of the old
 * object is open). */
RQ_EXTERN int rq_coalesce_wait(rq_coalesce *c, uint64_t *ticket, int timeout_ms);

/* Worker: the round begun with TICKET is finished.  RQ_ESTATE if TICKET is
 * not the one the last rq_coalesce_wait returned. */
RQ_EXTERN int rq_coalesce_done(rq_coalesce *c, uint64_t ticket);

typedef struct rq_coalesce_stats {
    uint64_t requests; /* rq_coalesce_request calls that registered */
    uint64_t rounds;   /* rounds of work started (rq_coalesce_wait OK) */
    uint64_t wakes;    /* wake signals sent to the worker */
    uint64_t waits;    /* times the worker went to sleep */
    uint64_t missed_wakes; /* work found by the periodic re-check, no wake */
    uint64_t takeovers;/* worker role taken from a dead holder */
    uint64_t repairs;  /* half-made objects re-initialised */
    int owed;          /* 1 if work is owed now */
    int waiting;       /* 1 if the worker is announced as asleep */
    int64_t worker_pid;
    int worker_live;   /* 1, 0, or -1: cannot tell (as rq_stats) */
} rq_coalesce_stats;

RQ_EXTERN int rq_coalesce_stat(rq_coalesce *c, rq_coalesce_stats *st);

/* Closes the handle (a round in progress stays owed). NULL is allowed. */
RQ_EXTERN void rq_coalesce_close(rq_coalesce *c);

/* Removes the name.  RQ_ENOENT if there is none.  The hazard of
 * rq_unlink applies: open handles keep the old object. */
RQ_EXTERN int rq_coalesce_unlink(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* RQ_H */
