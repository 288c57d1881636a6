/*
 * crashpoint.h - named places where a test build can kill its own process.
 *
 * In a build with RQ_CRASH_POINTS defined (the rq_testing library), each
 * RQ_CRASH_POINT(ID) counts its hits and, when armed for the K-th hit,
 * raises SIGKILL (TerminateProcess on Windows): the process dies there as
 * from any outside kill.  In normal builds the macro is empty.
 *
 * Each point is named for where it stands: XX(ID, "name", roles), roles
 * being the sides that pass it (P producer, C consumer, A any opener,
 * killed there by tests/test_crash.c's creator test; open.after_check,
 * which observers pass too, is killed as P and C only;
 * m an MPSC producer only when another holds the lock, killed there by
 * tests/test_mpsc_lock.c; R a producer of a record queue only, killed
 * there by tests/test_records.c; p, c a producer or consumer only when a
 * poller (rq_poll_handle) is involved, killed there by tests/test_poll.c;
 * coalescing objects: r requester, w worker).
 */
#ifndef RQ_CRASHPOINT_H
#define RQ_CRASHPOINT_H

/* clang-format off */
#define RQ_CRASH_POINT_MAP(XX)                                                 \
    XX(OPEN_AFTER_INIT_LOCK, "open.after_init_lock", "A")                      \
    XX(INIT_AFTER_RESIZE, "init.after_resize", "A")                            \
    XX(INIT_BEFORE_MAGIC, "init.before_magic", "A")                            \
    XX(OPEN_AFTER_CHECK, "open.after_check", "PC")                             \
    XX(OPEN_AFTER_ROLE_LOCK, "open.after_role_lock", "PC")                     \
    XX(OPEN_AFTER_TAKEOVER, "open.after_takeover", "PC")                       \
    XX(PUSH_AFTER_CLAIM, "push.after_claim", "P")                              \
    XX(PUSH_AFTER_PAYLOAD, "push.after_payload", "P")                          \
    XX(PUSH_BEFORE_POSITION, "push.before_position", "P")                      \
    XX(PUSH_AFTER_PUBLISH, "push.after_publish", "P")                          \
    XX(PUSH_BURST_AFTER_CLAIM, "push_burst.after_claim", "P")                  \
    XX(PUSH_BURST_MID_FILL, "push_burst.mid_fill", "P")                        \
    XX(PUSH_BURST_AFTER_FILL, "push_burst.after_fill", "P")                    \
    XX(POP_AFTER_COPY, "pop.after_copy", "C")                                  \
    XX(POP_BURST_AFTER_COPY, "pop_burst.after_copy", "C")                      \
    XX(RELEASE_BURST_BEFORE_PUBLISH, "release_burst.before_publish", "C")      \
    XX(RELEASE_BEFORE_PUBLISH, "release.before_publish", "C")                  \
    XX(RELEASE_BEFORE_POSITION, "release.before_position", "C")                \
    XX(RELEASE_AFTER_PUBLISH, "release.after_publish", "C")                    \
    XX(DELIVER_AFTER_MARK, "deliver.after_mark", "C")                          \
    XX(PEEK_HANDED_OUT, "peek.handed_out", "C")                                \
    XX(WAIT_AFTER_REGISTER, "wait.after_register", "PC")                       \
    XX(WAIT_AFTER_WAKE, "wait.after_wake", "PC")                               \
    XX(SIGNAL_BEFORE_BUMP, "signal.before_bump", "PC")                         \
    XX(SIGNAL_BEFORE_WAKE, "signal.before_wake", "PC")                         \
    XX(SIGNAL_BEFORE_NOTIFY, "signal.before_notify", "pc")                     \
    XX(POLL_AFTER_ARM, "poll.after_arm", "pc")                                 \
    XX(MPSC_OPEN_AFTER_SLOT, "mpsc.open.after_slot", "P")                      \
    XX(MPSC_AFTER_LOCK, "mpsc.after_lock", "P")                                \
    XX(MPSC_AFTER_RECOVER, "mpsc.after_recover", "P")                          \
    XX(MPSC_LOCK_BEFORE_TAKE, "mpsc.lock.before_take", "m")                    \
    XX(MPSC_WAIT_AFTER_FLAG, "mpsc.wait.after_flag", "m")                      \
    XX(MPSC_BEFORE_UNLOCK, "mpsc.before_unlock", "P")                          \
    XX(MPSC_AFTER_UNLOCK, "mpsc.after_unlock", "P")                            \
    XX(MPSC_UNLOCK_AFTER_TAKE, "mpsc.unlock.after_take", "m")                  \
    XX(CLOSE_BEFORE_DETACH, "close.before_detach", "PC")                       \
    XX(REC_PUSH_AFTER_PAD, "records.push.after_pad", "R")                      \
    XX(COALESCE_REQUEST_BEFORE_BUMP, "coalesce.request.before_bump", "r")      \
    XX(COALESCE_REQUEST_AFTER_BUMP, "coalesce.request.after_bump", "r")        \
    XX(COALESCE_WAIT_AFTER_ANNOUNCE, "coalesce.wait.after_announce", "w")      \
    XX(COALESCE_WAIT_AFTER_TAKE, "coalesce.wait.after_take", "w")              \
    XX(COALESCE_DONE_BEFORE_STORE, "coalesce.done.before_store", "w")          \
    XX(COALESCE_OPEN_AFTER_TAKEOVER, "coalesce.open.after_takeover", "w")
/* clang-format on */

enum rq_crash_point_id {
#define RQ_CRASH_ENUM_(id, name, roles) RQ_CP_##id,
    RQ_CRASH_POINT_MAP(RQ_CRASH_ENUM_)
#undef RQ_CRASH_ENUM_
        RQ_CP_COUNT_
};

#ifdef RQ_CRASH_POINTS
void rq_crash_point_hit(enum rq_crash_point_id id);
#define RQ_CRASH_POINT(id) rq_crash_point_hit(RQ_CP_##id)
#else
#define RQ_CRASH_POINT(id) ((void)0)
#endif

/* Test-build controls (defined only with RQ_CRASH_POINTS). */
const char *rq_crash_point_name(int id);
const char *rq_crash_point_roles(int id);
int rq_crash_point_lookup(const char *name);
/* Arms point ID to kill the process on its HIT-th hit from now (1 = next);
 * ID < 0 disarms. */
void rq_crash_point_arm(int id, unsigned long hit);
/* Runs FN(ARG) at every hit of point ID from now, in the thread that hits
 * it, until FN is NULL or the next reset: a test's way to act as a peer
 * at an exact step (as rq_fault_before does at an OS call). */
void rq_crash_point_run(int id, void (*fn)(void *), void *arg);
/* Hits of point ID since the process started (or since the last reset). */
unsigned long rq_crash_point_hits(int id);
void rq_crash_point_reset(void);

#endif /* RQ_CRASHPOINT_H */
