/*
 * platform_posix.c - rq's platform layer on Linux.
 *
 *  segment   POSIX shared memory (shm_open: /dev/shm/<kind>.<name>), mmap
 *  locks     open-file-description (OFD) byte-range locks on the segment's
 *            descriptor: owned by the handle, dropped by the kernel when the
 *            last descriptor of the handle closes, i.e. when a holder dies
 *  wait/wake futex on a word of the segment (shared, never FUTEX_PRIVATE)
 *  identity  device and inode of the segment (the MPSC self-deadlock check)
 *  (the MPSC producers' lock is rq's own, src/mpsc.c, on these locks,
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "layout.h"
#include "rq.h"

/* The OS calls that can fail, each made through a gate so that a test
 * build can fail any one of them (fault.h).  Without RQ_FAULT_INJECTION
 * the gates are the bare calls. */
#define FAULT_CALLS(XX)                                                        \
    XX(SHM_OPEN, "shm_open")                                                   \
    XX(FCHMOD, "fchmod")                                                       \
    XX(SHM_UNLINK, "shm_unlink")                                               \
    XX(FSTAT, "fstat")                                                         \
    XX(FTRUNCATE, "ftruncate")                                                 \
    XX(POSIX_FALLOCATE, "posix_fallocate")                                     \
    XX(MMAP, "mmap")                                                           \
    XX(FCNTL_LOCK, "fcntl")                                                    \
    XX(FUTEX_WAIT, "futex_wait")                                               \
    XX(FUTEX_WAKE, "futex_wake")                                               \
    XX(FUTEX_WAKE_OP, "futex_wake_op")                                         \
    XX(MEMBARRIER, "membarrier")

RQ_FAULT_TABLE(FAULT_CALLS);

#ifdef RQ_FAULT_INJECTION

static int fault_now(enum fault_call call)
{
    unsigned long err;
    if (!rq_fault_hit((int)call, &err))
        return 0;
    errno = (int)err;
    return 1;
}
/* CALL fails as -1/NULL/MAP_FAILED does (FAILED) with errno set ... */
#define RQ_SYS(id, call, failed) (fault_now(FAULT_##id) ? (failed) : (call))
/* ... or, for calls that return an error number (posix_fallocate), returns it. */
#define RQ_SYS_RET(id, call) (fault_now(FAULT_##id) ? errno : (call))
#else
#define RQ_SYS(id, call, failed) (call)
#define RQ_SYS_RET(id, call) (call)
#endif

struct rq_plat_segment {
    int fd;
};

/* "/" kind "." name, NUL: the name was validated to RQ_NAME_MAX. */
#define OBJECT_NAME_MAX (1 + 8 + 1 + RQ_NAME_MAX + 1)

static int object_name(char *buf, const char *kind, const char *name)
{
    int n = snprintf(buf, OBJECT_NAME_MAX, "/%s.%s", kind, name);
    return (n > 0 && n < OBJECT_NAME_MAX) ? RQ_OK : RQ_EINVAL;
}

static int open_object(const char *path, unsigned flags, uint32_t mode, int *created)
{
    *created = 0;
    /* A racing unlink between the two opens sends us round again. */
    for (int attempt = 0; attempt < 16; attempt++) {
        if (flags & RQ_PLAT_CREATE) {
            int fd = RQ_SYS(SHM_OPEN, shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode), -1);
            if (fd >= 0) {
                /* shm_open applies the umask; the caller asked for MODE. */
                if (RQ_SYS(FCHMOD, fchmod(fd, (mode_t)mode), -1) != 0) {
                    int saved = errno;
                    close(fd);
                    shm_unlink(path);
                    errno = saved;
                    return RQ_ESYS;
                }
                *created = 1;
                return fd;
            }
            if (errno != EEXIST)
                return RQ_ESYS;
        }
        int fd = RQ_SYS(SHM_OPEN, shm_open(path, O_RDWR | O_CLOEXEC, 0), -1);
        if (fd >= 0)
            return fd;
        if (errno != ENOENT)
            return RQ_ESYS;
        if (!(flags & RQ_PLAT_CREATE))
            return RQ_ENOENT;
    }
    errno = EAGAIN;
    return RQ_ESYS;
}

int rq_plat_segment_open(rq_plat_segment **out, const char *kind, const char *name,
                         unsigned flags, uint32_t mode, int *created)
{
    char path[OBJECT_NAME_MAX];
    int rc = object_name(path, kind, name);
    if (rc < 0)
        return rc;
    rq_plat_segment *seg = malloc(sizeof *seg);
    if (!seg)
        return RQ_ESYS;
    int fd = open_object(path, flags, mode, created);
    if (fd < 0) {
        int saved = errno;
        free(seg);
        errno = saved;
        return fd;
    }
    seg->fd = fd;
    *out = seg;
    return RQ_OK;
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
    void *p = RQ_SYS(MMAP, mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, seg->fd, 0),
                     MAP_FAILED);
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

void rq_plat_segment_close(rq_plat_segment *seg)
{
    if (!seg)
        return;
    int saved = errno;
    close(seg->fd);
    free(seg);
    errno = saved;
}

int rq_plat_segment_unlink(const char *kind, const char *name)
{
    char path[OBJECT_NAME_MAX];
    int rc = object_name(path, kind, name);
    if (rc < 0)
        return rc;
    if (RQ_SYS(SHM_UNLINK, shm_unlink(path), -1) == 0)
        return RQ_OK;
    return errno == ENOENT ? RQ_ENOENT : RQ_ESYS;
}

/* Lock ID is byte ID of the object: advisory, so it does not touch data. */
static void lock_range(struct flock *fl, short type, enum rq_plat_lock_id id)
{
    memset(fl, 0, sizeof *fl);
    fl->l_type = type;
    fl->l_whence = SEEK_SET;
    fl->l_start = (off_t)id;
    fl->l_len = 1;
}

int rq_plat_lock(rq_plat_segment *seg, enum rq_plat_lock_id id, enum rq_plat_lock_mode mode)
{
    struct flock fl;
    lock_range(&fl, mode == RQ_LOCK_TRY_SHARED ? F_RDLCK : F_WRLCK, id);
    int cmd = mode == RQ_LOCK_WAIT ? F_OFD_SETLKW : F_OFD_SETLK;
    for (;;) {
        if (RQ_SYS(FCNTL_LOCK, fcntl(seg->fd, cmd, &fl), -1) == 0)
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
    lock_range(&fl, F_UNLCK, id);
    (void)fcntl(seg->fd, F_OFD_SETLK, &fl);
    errno = saved;
}

int rq_plat_lock_probe(rq_plat_segment *seg, enum rq_plat_lock_id id)
{
    struct flock fl;
    lock_range(&fl, F_WRLCK, id);
    if (RQ_SYS(FCNTL_LOCK, fcntl(seg->fd, F_OFD_GETLK, &fl), -1) != 0)
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

int rq_plat_fence_heavy(void)
{
    return membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0 ? RQ_OK : RQ_ESYS;
}

uint64_t rq_plat_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t rq_plat_pid(void)
{
    return (int64_t)getpid();
}

/* gettid() is a system call each time; the id is cached per thread, and
 * forgotten in a fork()ed child, whose one thread has a new id. */
static _Thread_local uint64_t cached_tid;
static pthread_once_t tid_atfork_once = PTHREAD_ONCE_INIT;

static void forget_tid(void)
{
    cached_tid = 0;
}

static void register_forget_tid(void)
{
    (void)pthread_atfork(NULL, NULL, forget_tid);
}

uint64_t rq_plat_thread_id(void)
{
    if (cached_tid == 0) {
        (void)pthread_once(&tid_atfork_once, register_forget_tid);
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

void rq_plat_kill_self(void)
{
    kill(getpid(), SIGKILL);
    _exit(137); /* not reached */
}
