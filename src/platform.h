/*
 * platform.h - the small interface between rq and the operating system.
 *
 * One implementation per OS (platform_linux.c, platform_win.c).  Nothing
 * above this line includes an OS header.  Each function states what it
 * guarantees; all return RQ_OK or a negative rq_error, and on RQ_ESYS the
 * OS error (errno / GetLastError) is left as the failing call set it.
 *
 * Tested by test_platform_linux and test_platform_win (one per
 * implementation), and through rq by every other suite.
 */
#ifndef RQ_PLATFORM_H
#define RQ_PLATFORM_H

#include <stdint.h>

#include "atomics.h"

/* An open shared segment: the OS object behind one queue name plus the
 * locks and wake objects tied to it.  One per rq handle. */
typedef struct rq_plat_segment rq_plat_segment;

enum rq_plat_open_flags {
    RQ_PLAT_CREATE = 1,    /* create the object if it does not exist */
    RQ_PLAT_CHECKED = 2,   /* an existing object must pass the owner check */
    RQ_PLAT_ANY_OWNER = 4, /* the owner check accepts any owner */
    RQ_PLAT_OBSERVE = 8    /* may open read-only, and without the locks */
};

/* Opens (and with RQ_PLAT_CREATE creates, with exactly MODE permission
 * bits, whatever the umask) the object for queue NAME, whose name has been
 * validated, and the lock object beside it.  KIND is the object family
 * ("rq" for queues, "rqc" for coalescing objects).  *CREATED tells whether
 * this call made the segment.  No size is set.  RQ_ENOENT if it does not
 * exist and may not be created.
 *
 * Owner check (RQ_PLAT_CHECKED): an object this call did not create, the
 * segment or the lock object, must be owned by the caller's effective user
 * or by the administrator (unless RQ_PLAT_ANY_OWNER), and if MODE is not 0
 * its permissions must be no wider than MODE (the lock object's: than the
 * write classes of MODE).  Else RQ_EOWNER, with nothing changed.
 *
 * The lock object holds the byte-range locks (rq_plat_lock) and can be
 * opened only by those who may write the segment, so a reader can neither
 * hold an open up nor take a role.  It is made with the write classes of
 * the segment's mode (0644 -> 0600, 0660 -> 0660).  RQ_PLAT_OBSERVE
 * without RQ_PLAT_CREATE: the segment is opened read-only and mapped
 * PROT_READ (read permission suffices; nothing can be written through
 * it), the lock object read-only if its mode allows, and left out if not
 * (rq_plat_segment_has_locks says so).  Windows opens observers as it
 * opens the other roles. */
int rq_plat_segment_open(rq_plat_segment **out, const char *kind, const char *name, unsigned flags,
                         uint32_t mode, int *created);

/* 1 if SEG has its lock object open, 0 if it was opened without it
 * (RQ_PLAT_OBSERVE).  rq_plat_lock_probe works with it; rq_plat_lock only
 * if the segment was opened for writing (a read-only observer opens the
 * lock object read-only, if its mode lets it, just to probe). */
int rq_plat_segment_has_locks(rq_plat_segment *seg);

/* 1 if SEG was opened read-only (an observer, RQ_PLAT_OBSERVE): it is
 * mapped PROT_READ and may take no lock. */
int rq_plat_segment_readonly(rq_plat_segment *seg);

/* 1 if the object SEG has open was removed since (its name is gone, or
 * now names another object), 0 if not, or a negative rq_error.  One
 * fstat: cheap, but made only at a wait's periodic re-check and in
 * rq_stat, never per message. */
int rq_plat_segment_stale(rq_plat_segment *seg);

/* 1 if the lock object SEG has open was removed since it was opened (by
 * the last close of an unlinked queue, see rq_plat_segment_close), 0 if
 * not, or a negative rq_error.  Checked by an opener holding the init
 * lock: locks taken in a removed lock object would be invisible to every
 * later opener, so it opens the name again.  Always 0 on Windows. */
int rq_plat_segment_locks_stale(rq_plat_segment *seg);

/* For a creator about to initialise a new segment: 1 if a producer or
 * consumer lock in the lock object it opened (rather than made) is held
 * by another handle, 0 if not, or a negative rq_error.  No handle can hold
 * a role on a segment not yet made, so a holder has a segment that was
 * unlinked under the same name (rq_plat_segment_unlink keeps the lock
 * object while locks are held in it); creating would split the queue.
 * Always 0 where names cannot be removed while open (Windows). */
int rq_plat_segment_orphan_roles(rq_plat_segment *seg);

/* Removes the segment and lock object names, after a failed creation, if
 * they still name the objects this handle created (so nothing another
 * opener made in the meantime is touched).  Errors are ignored. */
void rq_plat_segment_discard(rq_plat_segment *seg);

/* Sleeps MS milliseconds (the init lock is polled, see segment.c). */
void rq_plat_sleep_ms(int ms);

/* Current size of the object in bytes. */
int rq_plat_segment_size(rq_plat_segment *seg, uint64_t *size);

/* Sets the size to SIZE and makes sure the memory is really there (tmpfs
 * out of space is RQ_ESYS/ENOSPC here, never SIGBUS later). */
int rq_plat_segment_resize(rq_plat_segment *seg, uint64_t size);

/* Maps the first SIZE bytes read-write and shared; SIZE must not exceed the
 * object's size. */
int rq_plat_segment_map(rq_plat_segment *seg, uint64_t size, void **addr);
void rq_plat_segment_unmap(void *addr, uint64_t size);

/* Closes the object and drops every lock this handle holds on it.  If
 * the segment was unlinked and no other handle holds a lock in its lock
 * object, the lock object is removed too (Linux), under the init lock:
 * the last close of an unlinked queue leaves nothing behind. */
void rq_plat_segment_close(rq_plat_segment *seg);

/* Removes the name, and its lock object unless a lock in it is held (or
 * that cannot be told); open handles keep working.  RQ_ENOENT if there is
 * no such segment. */
int rq_plat_segment_unlink(const char *kind, const char *name);

/* Locks tied to the segment and owned by this handle (not by the process
 * or thread): the OS drops them when the holder dies, however it dies.
 * They live in the lock object, never in the segment.  Any id from 0 to
 * RQ_LOCK_ID_MAX is valid on Linux (one byte of the lock object each).
 * RQ_LOCK_WAIT has no bound: rq's opens poll RQ_LOCK_TRY instead. */
#define RQ_LOCK_ID_MAX (64 + 65536)
enum rq_plat_lock_id {
    RQ_LOCK_INIT = 0,     /* serialises creation/validation at open */
    RQ_LOCK_PRODUCER = 1, /* the producer role */
    RQ_LOCK_CONSUMER = 2, /* the consumer role */
    /* MPSC producer slots (Linux): slot i is lock RQ_LOCK_PRODUCER_SLOT + i,
     * for i < RQ_MPSC_PRODUCERS_MAX (mpsc.h); each live MPSC producer
     * handle holds its own slot exclusively, which proves it alive. */
    RQ_LOCK_PRODUCER_SLOT = 64
};
enum rq_plat_lock_mode {
    RQ_LOCK_WAIT,      /* exclusive, wait for it */
    RQ_LOCK_TRY,       /* exclusive, RQ_EBUSY if another handle holds it */
    RQ_LOCK_TRY_SHARED /* shared, RQ_EBUSY if held exclusively */
};
int rq_plat_lock(rq_plat_segment *seg, enum rq_plat_lock_id id, enum rq_plat_lock_mode mode);
void rq_plat_unlock(rq_plat_segment *seg, enum rq_plat_lock_id id);

/* 1 if some other handle (in any process) holds lock ID now, else 0;
 * a negative rq_error if that cannot be told. */
int rq_plat_lock_probe(rq_plat_segment *seg, enum rq_plat_lock_id id);

/* Sleeps while *WORD == EXPECTED, at most TIMEOUT_MS (RQ_INFINITE: no
 * limit).  Returns RQ_OK when woken, when *WORD differs, or spuriously
 * (signals, rq_plat_interrupt); RQ_ETIMEDOUT when the time is up.  The
 * caller re-checks. */
int rq_plat_wait(rq_plat_segment *seg, rq_atomic_u32 *word, uint32_t expected, int timeout_ms);

/* Wakes the sleepers on WORD in any process: one, or all if ALL. */
void rq_plat_wake(rq_plat_segment *seg, rq_atomic_u32 *word, int all);

/* Adds ADD to *WORD and wakes every sleeper on it, as one step that the
 * death of the calling process cannot split: either both happen or
 * neither does.  (Linux: FUTEX_WAKE_OP, done by the kernel.)  ADD must be
 * in [1, 2047]. */
int rq_plat_add_and_wake(rq_plat_segment *seg, rq_atomic_u32 *word, uint32_t add);

/* Wakes the waits of this handle (rq_interrupt; async-signal-safe, keeps
 * errno): a current rq_plat_wait on one of the N WORDS (or, on Windows,
 * any rq_plat_wait or rq_plat_mutex_lock of SEG) returns RQ_OK or
 * RQ_EINTR at once, and so does one that begins before the word moves on
 * again.  The caller sets its own interrupt flag first and re-checks it
 * after every wake-up.  Linux: each word is moved on by one and its
 * sleepers woken (rq_plat_add_and_wake): other handles asleep on it wake
 * and sleep again.  Windows: the handle's own interrupt event is set
 * (WORDS unused); the next wait that sees it resets it. */
void rq_plat_interrupt(rq_plat_segment *seg, rq_atomic_u32 *const *words, int n);

/* An asymmetric fence across processes (Linux: membarrier's
 * GLOBAL_EXPEDITED commands).  After rq_plat_fence_heavy returns, every
 * thread of every process that called rq_plat_fence_register has passed a
 * full memory barrier since the call began (or was not running, which
 * implies one).  The fast side then needs only a compiler barrier where a
 * StoreLoad fence would otherwise be: the side about to sleep pays for
 * both.  rq_plat_fence_register is idempotent; both return RQ_OK, or
 * RQ_ESYS where the OS has no such fence (then rq uses full fences). */
int rq_plat_fence_register(void);
int rq_plat_fence_heavy(void);

/* Gives this thread's CPU to another runnable thread, if any (a lock
 * waiter whose holder may be waiting for a CPU).  Cannot fail. */
void rq_plat_yield(void);

/* Which MPSC producers' lock this platform uses.  1 (Windows): the
 * platform's named mutex below, thread-owned, nothing of it in the
 * segment.  0 (Linux): rq's own lock of mpsc.c, an owner word in the
 * segment whose owners prove they are alive with producer-slot locks. */
#ifdef _WIN32
#define RQ_PLAT_MPSC_MUTEX 1
#else
#define RQ_PLAT_MPSC_MUTEX 0
#endif

#if RQ_PLAT_MPSC_MUTEX
/* The MPSC producers' lock as a named mutex of the segment.  init is
 * called once by the creator.  lock waits at most TIMEOUT_MS (0: try once
 * -> RQ_EAGAIN; RQ_INFINITE: no limit; else RQ_ETIMEDOUT) and returns
 * RQ_OK with *RECOVERED = 1 when the previous owner died holding it: the
 * lock is then held, exactly as after a normal release.  RQ_EDEADLK if
 * the calling thread holds it already through another handle.  RQ_EINTR
 * (lock not taken) when rq_plat_interrupt woke the wait: the caller checks
 * its flag, and waits on if the wake-up was a stale one. */
int rq_plat_mutex_init(rq_plat_segment *seg);
int rq_plat_mutex_lock(rq_plat_segment *seg, int timeout_ms, int *recovered);
void rq_plat_mutex_unlock(rq_plat_segment *seg);
/* An MPSC producer handle's slot, so a producer that dies outside the
 * lock is seen when its slot is next taken (mpsc.c counts it from the
 * slot's pid word): the named mutex "...pslot.<i>" of the first free
 * i < RQ_MPSC_PRODUCERS_MAX, owned by a thread of the handle's until
 * release or the process's death (then abandoned, or gone with its last
 * handle: free either way).  RQ_OK and *SLOT; RQ_EBUSY if every slot is
 * held; RQ_ESYS.  The segment's close releases it too. */
int rq_plat_producer_slot(rq_plat_segment *seg, uint32_t *slot);
void rq_plat_producer_slot_release(rq_plat_segment *seg);
#else
/* Which object SEG is, as two numbers equal for every handle of the same
 * object in any process (Linux: device and inode).  Read once, at open. */
int rq_plat_segment_identity(rq_plat_segment *seg, uint64_t id[2]);
#endif

/* ---- poll objects: a queue side's waiting through an event loop -------- */

/* Which side's poll object: the consumer's (ready on data) or the
 * producers' (ready on space). */
enum rq_plat_poll_side { RQ_POLL_DATA = 0, RQ_POLL_SPACE = 1 };

/* The object an event loop waits on (rq.h, rq_poll_handle): a descriptor
 * on Linux, an event HANDLE on Windows. */
#ifdef _WIN32
typedef void *rq_plat_pollable;
#else
typedef int rq_plat_pollable;
#endif

/* Opens (making it if missing, with the write classes of the segment's
 * mode, as the lock object) SIDE's poll object of SEG's queue and returns
 * what a caller waits on.  An existing one must pass the owner check the
 * segment passed at open (RQ_EOWNER).  Idempotent: a second call returns
 * the same object.  Linux: a FIFO beside the segment (/dev/shm/<kind>d.
 * or <kind>s.<name>), held O_RDWR | O_NONBLOCK, so that it never reads
 * EOF and a write to it can neither block nor raise SIGPIPE. */
int rq_plat_poll_open(rq_plat_segment *seg, int side, rq_plat_pollable *out);

/* Makes SIDE's poll object not ready (reads what is in the FIFO / resets
 * the event).  RQ_OK, or RQ_ESYS. */
int rq_plat_poll_drain(rq_plat_segment *seg, int side);

/* Makes SIDE's poll object ready, if it exists: opened (checked) the
 * first time, kept open after.  Never blocks: a full FIFO is ready
 * already, and a missing object has nobody to wake.  Failures are
 * ignored: the poller's bounded wait re-checks (rq.h, rq_poll_timeout). */
void rq_plat_poll_notify(rq_plat_segment *seg, int side);

/* Monotonic clock in nanoseconds (Linux: CLOCK_MONOTONIC, the same in
 * every process of the machine; Windows: the performance counter). */
uint64_t rq_plat_now_ns(void);

/* The same clock in milliseconds: deadlines, and the lock's stamps. */
static inline uint64_t rq_plat_now_ms(void)
{
    return rq_plat_now_ns() / 1000000u;
}

/* This process's id. */
int64_t rq_plat_pid(void);

/* The calling thread's id: unique among live threads of all processes
 * (what Windows' thread-owned MPSC mutex follows).  Cheap enough to call
 * on every MPSC reserve and commit. */
uint64_t rq_plat_thread_id(void);

/* The fork generation: 0 in a process that was started, moved on by
 * RQ_FORK_STEP in the child by every fork() once rq_plat_fork_watch has
 * been called (never on Windows, which has no fork).  A handle remembers
 * the generation it was opened under; a different one means the caller is
 * a child using its parent's handle, whose roles and locks belong to the
 * parent.  Reading it is one plain load: no system call per message.  Its
 * low bits stay 0, so that a code below RQ_FORK_STEP added to it at open
 * (queue.c's fast word) is compared with the generation in the same
 * compare; 64 bits, so that it never wraps.  rq_plat_fork_watch arms the
 * bump (RQ_ESYS if the C library cannot); it is idempotent and cheap after
 * its first call. */
#define RQ_FORK_STEP 32
#if defined(__GNUC__) && !defined(_WIN32)
/* Hidden: the library's own (never rq.h's), so that code built position-
 * independent (every build: see CMakeLists.txt) reads it with one load
 * instead of the address from the GOT and then the word. */
__attribute__((visibility("hidden")))
#endif
extern rq_atomic_u64 rq_plat_fork_generation;
int rq_plat_fork_watch(void);

/* What of the segment's format this platform decides beyond the layout
 * (what the lock area holds: rq's owner word, or nothing); folded into the
 * header's ABI word so that builds which would misread each other's locks
 * refuse each other's segments.  Below 256. */
uint32_t rq_plat_abi_tag(void);

#ifdef RQ_CRASH_POINTS
/* Kills this process at once, as an outside SIGKILL / TerminateProcess
 * would: no handlers, no atexit, no flushing.  Used by crash points (and
 * tests), so only the test build (rq_testing) has it. */
void rq_plat_kill_self(void);
#endif

#endif /* RQ_PLATFORM_H */
