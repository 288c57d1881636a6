/*
 * platform_linux.c - rq's platform layer on Linux.
 *
 *  segment   POSIX shared memory (shm_open: /dev/shm/<kind>.<name>), mmap
 *  locks     open-file-description (OFD) byte-range locks on a separate
 *            lock object (/dev/shm/<kind>l.<name>) that only writers can
 *            open: owned by the handle, dropped by the kernel when the
 *            last descriptor of the handle closes, i.e. when a holder dies
 *  wait/wake futex on a word of the segment (shared, never FUTEX_PRIVATE)
 *  identity  device and inode of the segment (the MPSC self-deadlock check)
 *  poll      a FIFO per queue side beside the segment (/dev/shm/<kind>d.<name>
 *            for data, <kind>s.<name> for space), made by the first poller
 * *  (the MPSC producers' lock is rq's own, src/mpsc.c, on these locks,
 *  futexes and plain words; nothing of the C library lives in the segment)
 */
#define _GNU_SOURCE
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How Linux reports a failed call's error, for the fault gate (fault.h). */
#define RQ_OS_ERROR_SET(e) (errno = (int)(e))
#define RQ_OS_ERROR() errno
#include "fault.h"
#include "layout.h"
#include "rq.h"

/* The OS calls that can fail, each made through a gate so that a test
 * build can fail any one of them (fault.h).  Without RQ_FAULT_INJECTION
 * the gates are the bare calls. */
/* clang-format off */
#define FAULT_CALLS(XX)                                                        \
    XX(SHM_OPEN, "shm_open")                                                   \
    XX(FCHMOD, "fchmod")                                                       \
    XX(SHM_UNLINK, "shm_unlink")                                               \
    XX(SHM_UNLINK_LOCKS, "shm_unlink_locks")                                   \
    XX(SHM_OPEN_PROBE, "shm_open_probe")                                       \
    XX(FCNTL_PROBE, "fcntl_probe")                                             \
    XX(FSTAT, "fstat")                                                         \
    XX(FTRUNCATE, "ftruncate")                                                 \
    XX(POSIX_FALLOCATE, "posix_fallocate")                                     \
    XX(MMAP, "mmap")                                                           \
    XX(FCNTL_LOCK, "fcntl")                                                    \
    XX(FUTEX_WAIT, "futex_wait")                                               \
    XX(FUTEX_WAKE, "futex_wake")                                               \
    XX(FUTEX_WAKE_OP, "futex_wake_op")                                         \
    XX(MEMBARRIER, "membarrier")                                               \
    XX(MKFIFO, "mkfifo")                                                       \
    XX(FIFO_OPEN, "fifo_open")                                                 \
    XX(FIFO_READ, "fifo_read")                                                 \
    XX(FIFO_WRITE, "fifo_write")
/* clang-format on */

RQ_FAULT_TABLE(FAULT_CALLS);

/* "/" kind ["l"] "." name, NUL: the name was validated to RQ_NAME_MAX. */
#define OBJECT_NAME_MAX (1 + 8 + 2 + RQ_NAME_MAX + 1)

struct rq_plat_segment {
    int fd;       /* the segment */
    int lock_fd;  /* the lock object, or -1 (an observer without it) */
    int readonly; /* fd is O_RDONLY: map it read-only */
    int created;  /* this handle made the segment (and maybe the lock) */
    int lock_created;
    dev_t dev, lock_dev; /* what the names named when we opened them */
    ino_t ino, lock_ino;
    pid_t opener; /* the process that opened it (a fork child's copy shares
                     the lock object's open file description: hands off) */
    char path[OBJECT_NAME_MAX];
    char lock_path[OBJECT_NAME_MAX];
    unsigned flags; /* as opened: the owner check for the poll objects */
    mode_t mode;    /* the segment's permission bits */
    int fifo_fd[2]; /* the poll objects (rq_plat_poll_side), or -1 */
};

/* The lock object of KIND.NAME is "/" KIND "l." NAME: "rql.q" can be no
 * queue's name ("rq." is followed by the name) nor a coalescing object's
 * ("rqc."), whatever '.'s names hold. */
static int object_name(char *buf, const char *kind, const char *name, int lock)
{
    int n = snprintf(buf, OBJECT_NAME_MAX, "/%s%s.%s", kind, lock ? "l" : "", name);
    return (n > 0 && n < OBJECT_NAME_MAX) ? RQ_OK : RQ_EINVAL;
}

/* The lock object's mode: the classes (owner, group, other) that may write
 * the segment get read-write, the others nothing. */
static mode_t lock_mode_for(mode_t mode)
{
    mode_t m = 0;
    for (int shift = 0; shift <= 6; shift += 3)
        if (mode & (02u << shift))
            m |= (mode_t)(06u << shift);
    return m;
}

/* The owner check of an object this call did not create (platform.h). */
static int owner_check(int fd, unsigned flags, mode_t wanted, struct stat *st)
{
    if (RQ_SYS(FSTAT, fstat(fd, st), -1) != 0)
        return RQ_ESYS;
    if (!(flags & RQ_PLAT_CHECKED))
        return RQ_OK;
    if (!(flags & RQ_PLAT_ANY_OWNER) && st->st_uid != geteuid() && st->st_uid != 0)
        return RQ_EOWNER;
    if (wanted != 0 && (st->st_mode & 0777 & ~wanted) != 0)
        return RQ_EOWNER;
    return RQ_OK;
}

/* Creates PATH exclusively with exactly MODE: the fd, or -1 with errno
 * (EEXIST: somebody else's, or an earlier one). */
static int create_exclusive(const char *path, mode_t mode)
{
    int fd = RQ_SYS(SHM_OPEN, shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode), -1);
    if (fd < 0)
        return -1;
    /* shm_open applies the umask; the caller asked for MODE. */
    if (RQ_SYS(FCHMOD, fchmod(fd, mode), -1) != 0) {
        int saved = errno;
        close(fd);
        shm_unlink(path);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Opens the segment: made by this call (*CREATED), or an existing one that
 * passes the owner check.  Never adopts a file another call made without
 * checking it first. */
static int open_segment(rq_plat_segment *seg, unsigned flags, mode_t mode, struct stat *st)
{
    /* A racing unlink between the two opens sends us round again. */
    for (int attempt = 0; attempt < 16; attempt++) {
        if (flags & RQ_PLAT_CREATE) {
            int fd = create_exclusive(seg->path, mode);
            if (fd >= 0) {
                seg->fd = fd;
                if (RQ_SYS(FSTAT, fstat(fd, st), -1) != 0) {
                    int saved = errno;
                    shm_unlink(seg->path); /* made a moment ago, exclusively */
                    errno = saved;
                    return RQ_ESYS;
                }
                seg->created = 1;
                return RQ_OK;
            }
            if (errno != EEXIST)
                return RQ_ESYS;
        }
        /* An observer that may not create only reads: read permission is
         * all it needs, and its mapping cannot write by mistake. */
        seg->readonly = (flags & RQ_PLAT_OBSERVE) && !(flags & RQ_PLAT_CREATE);
        int access = seg->readonly ? O_RDONLY : O_RDWR;
        int fd = RQ_SYS(SHM_OPEN, shm_open(seg->path, access | O_CLOEXEC, 0), -1);
        if (fd >= 0) {
            seg->fd = fd;
            return owner_check(fd, flags, mode, st);
        }
        if (errno != ENOENT)
            return RQ_ESYS;
        if (!(flags & RQ_PLAT_CREATE))
            return RQ_ENOENT;
    }
    errno = EAGAIN;
    return RQ_ESYS;
}

/* Opens (or makes) the lock object, checked as the segment is.  Its mode
 * follows the segment's real mode, so a queue made by another build or
 * with another umask still gets the right one. */
static int open_locks(rq_plat_segment *seg, unsigned flags, mode_t mode, const struct stat *seg_st)
{
    mode_t lmode = lock_mode_for(seg_st->st_mode & 0777);
    int may_make = !(flags & RQ_PLAT_OBSERVE) || (flags & RQ_PLAT_CREATE);
    /* Opened first, made only if missing: it exists for every queue but a
     * new one, so the usual open costs one call. */
    for (int attempt = 0; attempt < 16 && seg->lock_fd < 0; attempt++) {
        int fd = RQ_SYS(SHM_OPEN, shm_open(seg->lock_path, O_RDWR | O_CLOEXEC, 0), -1);
        if (fd >= 0) {
            seg->lock_fd = fd;
            struct stat st;
            int rc = owner_check(fd, flags, mode ? lock_mode_for(mode) : 0, &st);
            if (rc < 0)
                return rc;
            seg->lock_dev = st.st_dev;
            seg->lock_ino = st.st_ino;
            return RQ_OK;
        }
        if (errno != ENOENT || !may_make)
            return RQ_ESYS; /* errno ENOENT without may_make: the caller decides */
        fd = create_exclusive(seg->lock_path, lmode);
        if (fd >= 0) {
            seg->lock_fd = fd;
            seg->lock_created = 1;
        } else if (errno != EEXIST) {
            return RQ_ESYS;
        }
    }
    if (seg->lock_fd < 0) {
        errno = EAGAIN;
        return RQ_ESYS;
    }
    struct stat st; /* made by this call */
    if (RQ_SYS(FSTAT, fstat(seg->lock_fd, &st), -1) != 0)
        return RQ_ESYS;
    seg->lock_dev = st.st_dev;
    seg->lock_ino = st.st_ino;
    return RQ_OK;
}

/* A read-only observer opens the lock object read-only, if its mode lets
 * it: enough to see who holds a role (F_OFD_GETLK), never to take one. */
static int open_locks_to_probe(rq_plat_segment *seg)
{
    int fd = RQ_SYS(SHM_OPEN, shm_open(seg->lock_path, O_RDONLY | O_CLOEXEC, 0), -1);
    if (fd < 0)
        return RQ_ESYS; /* EACCES / ENOENT: the caller goes without */
    seg->lock_fd = fd;
    return RQ_OK;
}

static void segment_free(rq_plat_segment *seg)
{
    int saved = errno;
    if (seg->fd >= 0)
        close(seg->fd);
    if (seg->lock_fd >= 0)
        close(seg->lock_fd);
    for (int side = 0; side < 2; side++)
        if (seg->fifo_fd[side] >= 0)
            close(seg->fifo_fd[side]);
    free(seg);
    errno = saved;
}

int rq_plat_segment_open(rq_plat_segment **out, const char *kind, const char *name, unsigned flags,
                         uint32_t mode, int *created)
{
    *created = 0;
    rq_plat_segment *seg = calloc(1, sizeof *seg);
    if (!seg)
        return RQ_ESYS;
    seg->fd = seg->lock_fd = -1;
    seg->fifo_fd[0] = seg->fifo_fd[1] = -1;
    seg->flags = flags;
    seg->opener = getpid();
    int rc = object_name(seg->path, kind, name, 0);
    if (rc == RQ_OK)
        rc = object_name(seg->lock_path, kind, name, 1);
    struct stat st;
    if (rc == RQ_OK)
        rc = open_segment(seg, flags, (mode_t)mode, &st);
    if (rc == RQ_OK) {
        seg->dev = st.st_dev;
        seg->ino = st.st_ino;
        seg->mode = st.st_mode & 0777;
        if (seg->readonly)
            rc = open_locks_to_probe(seg); /* it must not take them */
        else
            rc = open_locks(seg, flags, (mode_t)mode, &st);
        /* Only a lock object the observer may not open (or that is gone)
         * is left out; any other failure is reported. */
        if (rc == RQ_ESYS && (errno == EACCES || errno == ENOENT) && (flags & RQ_PLAT_OBSERVE) &&
            !(flags & RQ_PLAT_CREATE)) {
            if (seg->lock_fd >= 0)
                close(seg->lock_fd);
            seg->lock_fd = -1;
            rc = RQ_OK; /* liveness unknown, the rest can be read */
        }
    }
    if (rc < 0) {
        int saved = errno;
        if (seg->fd >= 0 || seg->lock_fd >= 0)
            rq_plat_segment_discard(seg);
        segment_free(seg);
        errno = saved;
        return rc;
    }
    *created = seg->created;
    *out = seg;
    return RQ_OK;
}

int rq_plat_segment_has_locks(rq_plat_segment *seg)
{
    return seg->lock_fd >= 0;
}

int rq_plat_segment_orphan_roles(rq_plat_segment *seg)
{
    /* A lock object this handle made has no other holders. */
    if (seg->lock_created || seg->lock_fd < 0)
        return 0;
    int held = rq_plat_lock_probe(seg, RQ_LOCK_PRODUCER);
    if (held == 0)
        held = rq_plat_lock_probe(seg, RQ_LOCK_CONSUMER);
    return held;
}

int rq_plat_segment_readonly(rq_plat_segment *seg)
{
    return seg->readonly;
}

/* 1 if PATH names the object DEV/INO now, 0 if it names another or none,
 * RQ_ESYS if that cannot be told. */
static int names_object(const char *path, dev_t dev, ino_t ino)
{
    int fd = RQ_SYS(SHM_OPEN, shm_open(path, O_RDONLY | O_CLOEXEC, 0), -1);
    if (fd < 0)
        return errno == ENOENT ? 0 : RQ_ESYS;
    struct stat st;
    int rc =
        RQ_SYS(FSTAT, fstat(fd, &st), -1) == 0 ? st.st_dev == dev && st.st_ino == ino : RQ_ESYS;
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int rq_plat_segment_stale(rq_plat_segment *seg)
{
    struct stat st;
    if (RQ_SYS(FSTAT, fstat(seg->fd, &st), -1) != 0)
        return RQ_ESYS;
    /* A name that now names another object was unlinked from ours first:
     * shm_open makes no second links, so st_nlink alone tells. */
    return st.st_nlink == 0;
}

int rq_plat_segment_locks_stale(rq_plat_segment *seg)
{
    struct stat st;
    if (seg->lock_fd < 0)
        return 0;
    if (RQ_SYS(FSTAT, fstat(seg->lock_fd, &st), -1) != 0)
        return RQ_ESYS;
    return st.st_nlink == 0;
}

void rq_plat_segment_discard(rq_plat_segment *seg)
{
    int saved = errno;
    /* Between the check and the unlink another process could replace the
     * name only by unlinking ours first, which it has no reason to do: the
     * window is the one any rm of a shared name has. */
    if (seg->created && seg->fd >= 0 && names_object(seg->path, seg->dev, seg->ino) == 1)
        shm_unlink(seg->path);
    if (seg->lock_created && seg->lock_fd >= 0 &&
        names_object(seg->lock_path, seg->lock_dev, seg->lock_ino) == 1)
        shm_unlink(seg->lock_path);
    errno = saved;
}

void rq_plat_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int rq_plat_segment_size(rq_plat_segment *seg, uint64_t *size)
{
    struct stat st;
    if (RQ_SYS(FSTAT, fstat(seg->fd, &st), -1) != 0)
        return RQ_ESYS;
    *size = st.st_size < 0 ? 0 : (uint64_t)st.st_size;
    return RQ_OK;
}

int rq_plat_segment_identity(rq_plat_segment *seg, uint64_t id[2])
{
    struct stat st;
    if (RQ_SYS(FSTAT, fstat(seg->fd, &st), -1) != 0)
        return RQ_ESYS;
    id[0] = (uint64_t)st.st_dev;
    id[1] = (uint64_t)st.st_ino;
    return RQ_OK;
}

int rq_plat_segment_resize(rq_plat_segment *seg, uint64_t size)
{
    if (size > (uint64_t)INT64_MAX) {
        errno = EFBIG;
        return RQ_ESYS;
    }
    if (RQ_SYS(FTRUNCATE, ftruncate(seg->fd, (off_t)size), -1) != 0)
        return RQ_ESYS;
    /* tmpfs hands out pages lazily: a full /dev/shm would otherwise show up
     * as SIGBUS on first touch.  Reserve them now. */
    int err = RQ_SYS_RET(POSIX_FALLOCATE, posix_fallocate(seg->fd, 0, (off_t)size));
    if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
        errno = err;
        return RQ_ESYS;
    }
    return RQ_OK;
}

int rq_plat_segment_map(rq_plat_segment *seg, uint64_t size, void **addr)
{
    if (size == 0 || size > (uint64_t)SIZE_MAX) {
        errno = EINVAL;
        return RQ_ESYS;
    }
    int prot = seg->readonly ? PROT_READ : PROT_READ | PROT_WRITE;
    void *p = RQ_SYS(MMAP, mmap(NULL, (size_t)size, prot, MAP_SHARED, seg->fd, 0), MAP_FAILED);
    if (p == MAP_FAILED)
        return RQ_ESYS;
    *addr = p;
    return RQ_OK;
}

void rq_plat_segment_unmap(void *addr, uint64_t size)
{
    if (addr)
        munmap(addr, (size_t)size);
}

static int lock_range(rq_plat_segment *seg, struct flock *fl, short type, enum rq_plat_lock_id id);

/* At the close of a handle whose segment was unlinked: removes the lock
 * object if no other handle holds a lock in it, so that it does not
 * outlive its queue.  Race-free with an opener of a new queue under the
 * name (docs/design.md, "Unlinking a queue in use"): we decide holding
 * the init lock (an opener holding it, or any role, keeps the object),
 * and an opener that opened the object before we removed it takes the
 * init lock after us, finds it unlinked (rq_plat_segment_locks_stale)
 * and opens the name again.  Any failure keeps the object: it holds no data. */
static void remove_lock_object(rq_plat_segment *seg)
{
    struct stat st;
    struct flock fl;
    if (seg->lock_fd < 0 || seg->readonly || seg->fd < 0 || seg->opener != getpid())
        return;
    if (fstat(seg->fd, &st) != 0 || st.st_nlink != 0)
        return; /* the queue is still there: so is its lock object */
    if (names_object(seg->lock_path, seg->lock_dev, seg->lock_ino) != 1)
        return; /* removed already, or the name is another object's */
    if (lock_range(seg, &fl, F_WRLCK, RQ_LOCK_INIT) < 0 ||
        RQ_SYS(FCNTL_LOCK, fcntl(seg->lock_fd, F_OFD_SETLK, &fl), -1) != 0)
        return; /* an open in progress holds it */
    fl.l_start = 0;
    fl.l_len = 0; /* every lock id; our own locks are not reported */
    if (RQ_SYS(FCNTL_PROBE, fcntl(seg->lock_fd, F_OFD_GETLK, &fl), -1) == 0 && fl.l_type == F_UNLCK)
        (void)RQ_SYS(SHM_UNLINK_LOCKS, shm_unlink(seg->lock_path), -1);
    /* The init lock goes with the descriptor, after the removal. */
}

void rq_plat_segment_close(rq_plat_segment *seg)
{
    if (!seg)
        return;
    int saved = errno;
    remove_lock_object(seg);
    errno = saved;
    segment_free(seg);
}

/* ---- poll objects: FIFOs beside the segment -------------------------- */

#define SHM_DIR "/dev/shm"
#define FIFO_PATH_MAX (sizeof SHM_DIR + OBJECT_NAME_MAX + 1)

/* The FIFO of SIDE for the object whose shm name is PATH ("/" kind "."
 * name): SHM_DIR "/" kind "d." name (data) or kind "s." name (space).
 * Neither can be a segment or lock object name ("rq." / "rql."). */
static int fifo_path(char *buf, const char *path, int side)
{
    const char *dot = strchr(path, '.');
    if (!dot)
        return RQ_EINVAL;
    int n = snprintf(buf, FIFO_PATH_MAX, SHM_DIR "%.*s%c%s", (int)(dot - path), path,
                     side == RQ_POLL_SPACE ? 's' : 'd', dot);
    return (n > 0 && (size_t)n < FIFO_PATH_MAX) ? RQ_OK : RQ_EINVAL;
}

/* Opens the FIFO at PATH O_RDWR | O_NONBLOCK, checked: a FIFO, owned and
 * no wider than the lock object of this segment may be (platform.h).
 * MAKE: made first if missing, with exactly that mode.  The fd, or a
 * negative rq_error (RQ_ENOENT: missing and not MAKE). */
static int fifo_open(rq_plat_segment *seg, const char *path, int make)
{
    mode_t mode = lock_mode_for(seg->mode);
    for (int attempt = 0; attempt < 16; attempt++) {
        int fd = RQ_SYS(FIFO_OPEN, open(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC), -1);
        if (fd >= 0) {
            struct stat st;
            int rc = owner_check(fd, seg->flags | RQ_PLAT_CHECKED, mode, &st);
            if (rc == RQ_OK && !S_ISFIFO(st.st_mode))
                rc = RQ_EOWNER; /* not what rq makes: somebody else's file */
            if (rc < 0) {
                int saved = errno;
                close(fd);
                errno = saved;
                return rc;
            }
            return fd;
        }
        if (errno != ENOENT)
            return RQ_ESYS;
        if (!make)
            return RQ_ENOENT;
        if (RQ_SYS(MKFIFO, mkfifo(path, mode), -1) == 0) {
            (void)chmod(path, mode); /* mkfifo applies the umask */
        } else if (errno != EEXIST) {
            return RQ_ESYS;
        }
    }
    errno = EAGAIN;
    return RQ_ESYS;
}

int rq_plat_poll_open(rq_plat_segment *seg, int side, rq_plat_pollable *out)
{
    if ((side != RQ_POLL_DATA && side != RQ_POLL_SPACE) || seg->readonly) {
        errno = EINVAL;
        return RQ_ESYS;
    }
    if (seg->fifo_fd[side] < 0) {
        char path[FIFO_PATH_MAX];
        int fd = fifo_path(path, seg->path, side);
        if (fd == RQ_OK)
            fd = fifo_open(seg, path, 1);
        if (fd < 0)
            return fd;
        seg->fifo_fd[side] = fd;
    }
    *out = seg->fifo_fd[side];
    return RQ_OK;
}

int rq_plat_poll_drain(rq_plat_segment *seg, int side)
{
    if ((side != RQ_POLL_DATA && side != RQ_POLL_SPACE) || seg->fifo_fd[side] < 0)
        return RQ_OK;
    char buf[64];
    for (;;) {
        ssize_t n = RQ_SYS(FIFO_READ, read(seg->fifo_fd[side], buf, sizeof buf), -1);
        if (n == (ssize_t)sizeof buf || (n < 0 && errno == EINTR))
            continue;
        if (n >= 0 || errno == EAGAIN)
            return RQ_OK; /* empty now */
        return RQ_ESYS;
    }
}

void rq_plat_poll_notify(rq_plat_segment *seg, int side)
{
    if ((side != RQ_POLL_DATA && side != RQ_POLL_SPACE) || seg->readonly)
        return;
    int saved = errno;
    if (seg->fifo_fd[side] < 0) {
        char path[FIFO_PATH_MAX];
        int fd = fifo_path(path, seg->path, side);
        if (fd == RQ_OK)
            fd = fifo_open(seg, path, 0);
        if (fd < 0) {
            errno = saved;
            return; /* no poller ever made it, or it is not ours to write */
        }
        seg->fifo_fd[side] = fd;
    }
    /* EAGAIN: the FIFO is full, so it is readable already. */
    const char one = 1;
    (void)RQ_SYS(FIFO_WRITE, write(seg->fifo_fd[side], &one, 1), -1);
    errno = saved;
}

/* Removes the poll objects of the object named PATH, if any.  They go
 * with the name: open ones keep working for the handles that hold them,
 * and they hold no data.  Errors are ignored (a stray FIFO is reused by
 * the next queue of the name, owner-checked). */
static void unlink_fifos(const char *path)
{
    int saved = errno;
    for (int side = 0; side < 2; side++) {
        char fifo[FIFO_PATH_MAX];
        if (fifo_path(fifo, path, side) == RQ_OK)
            (void)unlink(fifo);
    }
    errno = saved;
}

/* 1 if any handle holds a lock in the lock object PATH (a role, or the
 * init lock of an open in progress), 0 if none does or there is no such
 * object, RQ_ESYS if that cannot be told.  A read-only descriptor
 * suffices to test for a conflicting lock. */
static int locks_in_use(const char *path)
{
    int fd = RQ_SYS(SHM_OPEN_PROBE, shm_open(path, O_RDONLY | O_CLOEXEC, 0), -1);
    if (fd < 0)
        return errno == ENOENT ? 0 : RQ_ESYS;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0; /* every byte: every lock id */
    int rc =
        RQ_SYS(FCNTL_PROBE, fcntl(fd, F_OFD_GETLK, &fl), -1) == 0 ? fl.l_type != F_UNLCK : RQ_ESYS;
    close(fd);
    return rc;
}

int rq_plat_segment_unlink(const char *kind, const char *name)
{
    char path[OBJECT_NAME_MAX], lock_path[OBJECT_NAME_MAX];
    int rc = object_name(path, kind, name, 0);
    if (rc == RQ_OK)
        rc = object_name(lock_path, kind, name, 1);
    if (rc < 0)
        return rc;
    /* The segment first: were the lock object removed first, an opener in
     * between could make a new one and hold a role beside a live holder of
     * the old one, on the same segment. */
    if (RQ_SYS(SHM_UNLINK, shm_unlink(path), -1) != 0) {
        if (errno != ENOENT)
            return RQ_ESYS;
        unlink_fifos(path); /* strays of a queue already gone */
        errno = ENOENT;
        return RQ_ENOENT;
    }
    /* The lock object goes with the name only while nobody holds a lock in
     * it.  Kept, it lets a creator of a new queue under the name see that
     * handles of this one still hold its roles, and refuse to split the
     * queue in two (RQ_EUNLINKED, see segment.c); the next creator after
     * they close reuses it (owner-checked).  A probe that fails keeps it:
     * a stray lock object holds no data.  If the removal fails, the queue
     * is gone all the same. */
    int saved = errno;
    if (locks_in_use(lock_path) == 0)
        (void)RQ_SYS(SHM_UNLINK_LOCKS, shm_unlink(lock_path), -1);
    unlink_fifos(path);
    errno = saved;
    return RQ_OK;
}

/* Lock ID is byte ID of the lock object: advisory, and in an object that
 * only writers can open, so no reader can take or hold one. */
static int lock_range(rq_plat_segment *seg, struct flock *fl, short type, enum rq_plat_lock_id id)
{
    memset(fl, 0, sizeof *fl);
    fl->l_type = type;
    fl->l_whence = SEEK_SET;
    fl->l_start = (off_t)id;
    fl->l_len = 1;
    if (seg->lock_fd < 0 || (unsigned long)id > (unsigned long)RQ_LOCK_ID_MAX) {
        errno = EBADF;
        return RQ_ESYS;
    }
    return RQ_OK;
}

int rq_plat_lock(rq_plat_segment *seg, enum rq_plat_lock_id id, enum rq_plat_lock_mode mode)
{
    struct flock fl;
    if (lock_range(seg, &fl, mode == RQ_LOCK_TRY_SHARED ? F_RDLCK : F_WRLCK, id) < 0)
        return RQ_ESYS;
    int cmd = mode == RQ_LOCK_WAIT ? F_OFD_SETLKW : F_OFD_SETLK;
    for (;;) {
        if (RQ_SYS(FCNTL_LOCK, fcntl(seg->lock_fd, cmd, &fl), -1) == 0)
            return RQ_OK;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EACCES)
            return RQ_EBUSY;
        return RQ_ESYS;
    }
}

void rq_plat_unlock(rq_plat_segment *seg, enum rq_plat_lock_id id)
{
    struct flock fl;
    int saved = errno;
    if (lock_range(seg, &fl, F_UNLCK, id) == RQ_OK)
        (void)fcntl(seg->lock_fd, F_OFD_SETLK, &fl);
    errno = saved;
}

int rq_plat_lock_probe(rq_plat_segment *seg, enum rq_plat_lock_id id)
{
    struct flock fl;
    if (lock_range(seg, &fl, F_WRLCK, id) < 0)
        return RQ_ESYS;
    if (RQ_SYS(FCNTL_LOCK, fcntl(seg->lock_fd, F_OFD_GETLK, &fl), -1) != 0)
        return RQ_ESYS;
    return fl.l_type != F_UNLCK;
}

static long futex(rq_atomic_u32 *word, int op, uint32_t val, const struct timespec *ts)
{
    /* No FUTEX_PRIVATE_FLAG: the word is shared between processes. */
    return syscall(SYS_futex, (uint32_t *)word, op, val, ts, NULL, 0);
}

int rq_plat_wait(rq_plat_segment *seg, rq_atomic_u32 *word, uint32_t expected, int timeout_ms)
{
    (void)seg;
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    if (RQ_SYS(FUTEX_WAIT, futex(word, FUTEX_WAIT, expected, tsp), -1) == 0)
        return RQ_OK;
    switch (errno) {
    case EAGAIN: /* the word had moved on: a signal came before we slept */
    case EINTR:
        return RQ_OK;
    case ETIMEDOUT:
        return RQ_ETIMEDOUT;
    default:
        return RQ_ESYS;
    }
}

void rq_plat_wake(rq_plat_segment *seg, rq_atomic_u32 *word, int all)
{
    (void)seg;
    int saved = errno;
    (void)RQ_SYS(FUTEX_WAKE, futex(word, FUTEX_WAKE, all ? (uint32_t)INT_MAX : 1u, NULL), -1);
    errno = saved;
}

int rq_plat_add_and_wake(rq_plat_segment *seg, rq_atomic_u32 *word, uint32_t add)
{
    (void)seg;
    if (add < 1 || add > 2047) {
        errno = EINVAL;
        return RQ_ESYS;
    }
    /* The kernel adds ADD to the word (uaddr2 == uaddr) and wakes up to
     * INT_MAX sleepers on it under its futex lock: a SIGKILL lands before
     * or after, never in between. */
    int op = FUTEX_OP(FUTEX_OP_ADD, (int)add, FUTEX_OP_CMP_EQ, 0);
    long r = RQ_SYS(FUTEX_WAKE_OP,
                    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_OP, INT_MAX,
                            (void *)(uintptr_t)0, (uint32_t *)word, op),
                    -1);
    return r < 0 ? RQ_ESYS : RQ_OK;
}

void rq_plat_interrupt(rq_plat_segment *seg, rq_atomic_u32 *const *words, int n)
{
    int saved = errno; /* callable from a signal handler */
    for (int i = 0; i < n; i++)
        (void)rq_plat_add_and_wake(seg, words[i], 1);
    errno = saved;
}

static long membarrier(int cmd)
{
    return RQ_SYS(MEMBARRIER, syscall(SYS_membarrier, cmd, 0, 0), -1);
}

int rq_plat_fence_register(void)
{
    long cmds = membarrier(MEMBARRIER_CMD_QUERY);
    if (cmds < 0)
        return RQ_ESYS;
    if (!(cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) ||
        !(cmds & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)) {
        errno = ENOSYS;
        return RQ_ESYS;
    }
    return membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0 ? RQ_OK : RQ_ESYS;
}

void rq_plat_yield(void)
{
    (void)sched_yield(); /* cannot fail on Linux */
}

int rq_plat_fence_heavy(void)
{
    return membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0 ? RQ_OK : RQ_ESYS;
}

uint64_t rq_plat_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t rq_plat_pid(void)
{
    return (int64_t)getpid();
}

/* gettid() is a system call each time; the id is cached per thread, and
 * forgotten in a fork()ed child, whose one thread has a new id. */
static _Thread_local uint64_t cached_tid;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

rq_atomic_u64 rq_plat_fork_generation;

/* In the child of a fork(), before fork() returns there. */
static void after_fork_in_child(void)
{
    cached_tid = 0;
    rq_fetch_add_u64(&rq_plat_fork_generation, RQ_FORK_STEP);
}

static int atfork_error;

static void register_after_fork(void)
{
    atfork_error = pthread_atfork(NULL, NULL, after_fork_in_child);
}

int rq_plat_fork_watch(void)
{
    (void)pthread_once(&atfork_once, register_after_fork);
    if (atfork_error == 0)
        return RQ_OK;
    errno = atfork_error; /* ENOMEM: fork() could not be told apart */
    return RQ_ESYS;
}

uint64_t rq_plat_thread_id(void)
{
    if (cached_tid == 0) {
        (void)rq_plat_fork_watch(); /* open already made sure it is armed */
        cached_tid = (uint64_t)syscall(SYS_gettid);
    }
    return cached_tid;
}

uint32_t rq_plat_abi_tag(void)
{
    /* The lock area holds rq's own owner word (mpsc.c), the same whatever
     * the C library; 2 was a non-glibc pthread_mutex_t before layout 2. */
    return 1;
}

#ifdef RQ_CRASH_POINTS
void rq_plat_kill_self(void)
{
    kill(getpid(), SIGKILL);
    _exit(137); /* not reached */
}
#endif
