/*
 * harness.c - the operation interpreter and the checks shared by the fuzz
 * targets (see harness.h for the input format).
 *
 * Every call runs with timeout 0, so nothing can sleep, except at most one
 * call per input that the input gives FZ_WAIT_MS (the waiting paths, with
 * whatever the peer left in the event words; still bounded).  Every result
 * is checked against what the API allows for that call in that state, and
 * anything else traps (a crash libFuzzer reports with the input).
 *
 * Pointers the API hands out (rq_peek, rq_reserve) are checked against the
 * library's own mapping of the segment: the targets are linked with
 * --wrap=mmap,--wrap=munmap,--wrap=shm_open,--wrap=close, so every mapping
 * and shared-memory descriptor the library makes passes through here and
 * is recorded, and none may be left once its handles are closed.
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include "harness.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "records.h"

/* ---- failing --------------------------------------------------------- */

__attribute__((noreturn, format(printf, 1, 2))) static void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "\nrq fuzz: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    __builtin_trap();
}

/* FZ_TRACE=1 in the environment: every checked call and its result on
 * stderr (to read what a crashing input did). */
static int trace;

/* RC must be one of the results in ALLOWED (a list ending with 1, which
 * no rq call returns). */
#define FZ_END 1
static void expect_in(const char *call, int rc, ...)
{
    if (trace)
        fprintf(stderr, "  %s -> %s\n", call, rq_errname(rc));
    va_list ap;
    va_start(ap, rc);
    for (int ok = va_arg(ap, int); ok != FZ_END; ok = va_arg(ap, int)) {
        if (rc == ok) {
            va_end(ap);
            return;
        }
    }
    va_end(ap);
    fz_fail("%s returned %s (%d), which it must not", call, rq_errname(rc), rc);
}

static void expect_is(const char *call, int rc, int expected)
{
    if (trace)
        fprintf(stderr, "  %s -> %s\n", call, rq_errname(rc));
    if (rc != expected)
        fz_fail("%s returned %s, expected %s", call, rq_errname(rc), rq_errname(expected));
}

/* ---- the input --------------------------------------------------------- */

uint8_t fz_u8(struct fz_in *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

uint16_t fz_u16(struct fz_in *in)
{
    uint16_t lo = fz_u8(in);
    return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

uint32_t fz_u32(struct fz_in *in)
{
    uint32_t lo = fz_u16(in);
    return lo | (uint32_t)fz_u16(in) << 16;
}

int fz_more(const struct fz_in *in)
{
    return in->pos < in->size;
}

void fz_read_head(struct fz_in *in, struct fz_head *h)
{
    h->kind = fz_u8(in) % FZ_KINDS;
    unsigned roles = fz_u8(in);
    h->role_a = roles & 3;
    h->role_b = (roles >> 2) & 3;
    h->open_flags = fz_u8(in);
    h->prefill = fz_u8(in);
    h->slot_count = 1 + fz_u16(in) % FZ_MAX_SLOTS;
    h->slot_size = 1 + fz_u16(in) % FZ_MAX_SLOT_SIZE;
    if ((h->open_flags & FZ_CFG_RECORDS) && h->kind != FZ_COALESCE) {
        h->slot_count = 64 + 16 * ((h->slot_count - 1) % 64); /* bytes of ring */
        h->slot_size = 1 + (h->slot_size - 1) % (h->slot_count / 2 - RQ_RECORD_HEADER);
    }
    uint32_t size = fz_u32(in);
    h->size = size;
    h->image_len = fz_u16(in);
    (void)fz_u16(in);
}

/* ---- the library's mappings (--wrap) ----------------------------------- */

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);

struct fz_map {
    unsigned char *addr;
    size_t size;
};
#define FZ_MAPS_MAX 16
static struct fz_map maps[FZ_MAPS_MAX];
static int map_count;
static struct fz_map last_map; /* the library's latest shared mapping */

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p = __real_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED && fd >= 0 && (flags & MAP_SHARED)) {
        if (map_count == FZ_MAPS_MAX)
            fz_fail("more than %d live shared mappings: the library leaks them", FZ_MAPS_MAX);
        maps[map_count].addr = p;
        maps[map_count].size = len;
        last_map = maps[map_count++];
    }
    return p;
}

int __wrap_munmap(void *addr, size_t len)
{
    for (int i = 0; i < map_count; i++) {
        if (maps[i].addr == addr) {
            if (maps[i].size != len)
                fz_fail("munmap of %zu bytes of a %zu-byte mapping", len, maps[i].size);
            maps[i] = maps[--map_count];
            break;
        }
    }
    return __real_munmap(addr, len);
}

/* Descriptors from shm_open (the harness's own view uses __real_shm_open). */
int __real_shm_open(const char *name, int oflag, mode_t mode);
int __real_close(int fd);
int __wrap_shm_open(const char *name, int oflag, mode_t mode);
int __wrap_close(int fd);

#define FZ_FDS_MAX 16
static int fds[FZ_FDS_MAX];
static int fd_count;

int __wrap_shm_open(const char *name, int oflag, mode_t mode)
{
    int fd = __real_shm_open(name, oflag, mode);
    if (fd >= 0) {
        if (fd_count == FZ_FDS_MAX)
            fz_fail("more than %d shared-memory descriptors open: the library leaks them",
                    FZ_FDS_MAX);
        fds[fd_count++] = fd;
    }
    return fd;
}

int __wrap_close(int fd)
{
    for (int i = 0; i < fd_count; i++) {
        if (fds[i] == fd) {
            fds[i] = fds[--fd_count];
            break;
        }
    }
    return __real_close(fd);
}

/* ---- once per process ---------------------------------------------------- */

static char object_name[64];

const char *fz_name(void)
{
    return object_name;
}

static void remove_objects(void)
{
    (void)rq_unlink(object_name);
    (void)rq_coalesce_unlink(object_name);
}

void fz_init(void)
{
    if (object_name[0])
        return;
    trace = getenv("FZ_TRACE") != NULL;
    snprintf(object_name, sizeof object_name, "fz.%ld", (long)getpid());
    remove_objects();
    atexit(remove_objects);
}

/* libFuzzer's start-up hook, shared by both targets. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init();
    return 0;
}

void fz_make_object(const struct fz_head *h)
{
    remove_objects();
    int rc;
    if (h->kind == FZ_COALESCE) {
        rq_coalesce *c;
        rc = rq_coalesce_open(&c, object_name, RQ_OBSERVER, 0);
        rq_coalesce_close(c);
    } else {
        rq_config cfg = {h->slot_count, h->slot_size, 0, 0};
        cfg.flags |= h->kind == FZ_MPSC ? RQ_MPSC : 0;
        cfg.flags |= (h->open_flags & FZ_CFG_FENCES) ? RQ_FULL_FENCES : 0;
        cfg.flags |= (h->open_flags & FZ_CFG_RECORDS) ? RQ_RECORDS : 0;
        rq *q;
        rc = rq_open(&q, object_name, RQ_OBSERVER, &cfg);
        rq_close(q);
    }
    expect_is("creating the object", rc, RQ_OK);
}

void fz_view_open(struct fz_view *v, const struct fz_head *h, uint32_t new_size)
{
    char path[96];
    snprintf(path, sizeof path, "/%s.%s", h->kind == FZ_COALESCE ? "rqc" : "rq", object_name);
    v->fd = __real_shm_open(path, O_RDWR | O_CLOEXEC, 0);
    if (v->fd < 0)
        fz_fail("shm_open %s failed", path);
    if (new_size && ftruncate(v->fd, (off_t)(new_size % FZ_MAX_OBJECT)) != 0)
        fz_fail("ftruncate failed");
    struct stat st;
    if (fstat(v->fd, &st) != 0)
        fz_fail("fstat failed");
    v->size = (size_t)st.st_size;
    v->addr = NULL;
    if (v->size > 0) {
        void *p = __real_mmap(NULL, v->size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
        if (p == MAP_FAILED)
            fz_fail("mmap of the view failed");
        v->addr = p;
    }
}

void fz_view_close(struct fz_view *v)
{
    if (v->addr)
        __real_munmap(v->addr, v->size);
    __real_close(v->fd);
    v->addr = NULL;
}

void fz_check_no_leaks(void)
{
    if (map_count != 0)
        fz_fail("%d mapping(s) of the library left after every handle closed", map_count);
    if (fd_count != 0)
        fz_fail("%d shared-memory descriptor(s) of the library left open", fd_count);
}

/* ---- handles ----------------------------------------------------------- */

struct fz_handle {
    rq *q;
    rq_coalesce *c;
    int role;
    /* queue: geometry as the handle reports it, and its mapping */
    uint32_t slot_count, slot_size;
    uint64_t stride;
    int records; /* a record queue: slot_count is the ring's bytes */
    struct fz_map map;
    /* what the handle holds */
    int reserved;
    void *slot;
    int peeked;
    const void *msg;
    size_t msg_len;
    /* coalescing worker */
    int round_open;
    uint64_t ticket;
};

struct fz_run {
    const struct fz_head *h;
    struct fz_view *view; /* peer: where it scribbles */
    struct fz_handle hd[2];
    unsigned char pattern;
    int waits_left; /* calls that may still wait FZ_WAIT_MS */
};

#define FZ_WAIT_MS 2
/* FZ_CFG_SPIN: half the wait spins, half sleeps. */
#define FZ_SPIN_US 1000

/* The timeout of a call that may wait: 0, or FZ_WAIT_MS when bits 1 and 2
 * of the variant are set and this input has not waited yet. */
static int op_timeout(struct fz_run *r, unsigned variant)
{
    if ((variant & 6) != 6 || r->waits_left == 0)
        return 0;
    r->waits_left--;
    return FZ_WAIT_MS;
}

/* What a call that found nothing to do returns after TIMEOUT. */
static int nothing(int timeout)
{
    return timeout ? RQ_ETIMEDOUT : RQ_EAGAIN;
}

static int role_of(unsigned bits)
{
    return bits == 1 ? RQ_PRODUCER : bits == 2 ? RQ_CONSUMER : RQ_OBSERVER;
}

/* A payload pointer P of LEN bytes must lie in one slot of H's mapping. */
static void check_payload(const struct fz_handle *h, const void *p, size_t len, const char *call)
{
    const unsigned char *b = p;
    size_t first =
        h->records ? RQ_REC_DATA_OFFSET + RQ_RECORD_HEADER : RQ_SHM_HEADER_SIZE + RQ_SLOT_HEADER;
    if (b < h->map.addr + first || b >= h->map.addr + h->map.size)
        fz_fail("%s: pointer %p outside the segment [%p, +%zu)", call, p, (void *)h->map.addr,
                h->map.size);
    size_t off = (size_t)(b - h->map.addr) - first;
    if (h->records) { /* one piece, its header on a cell boundary, inside the ring */
        if (off % RQ_REC_CELL != 0 || len > h->slot_size ||
            off + RQ_RECORD_HEADER + len > h->slot_count)
            fz_fail("%s: %zu bytes at ring offset %zu: not a record of the ring", call, len, off);
        return;
    }
    if (off % h->stride != 0 || off / h->stride >= h->slot_count)
        fz_fail("%s: pointer %p is not a slot's payload", call, p);
    if (len > h->slot_size || (size_t)(b - h->map.addr) + len > h->map.size)
        fz_fail("%s: %zu bytes at slot offset %zu overrun it", call, len, off);
}

static void handle_close(struct fz_handle *h)
{
    rq_close(h->q);
    rq_coalesce_close(h->c);
    memset(h, 0, sizeof *h);
}

static void queue_open(struct fz_run *r, struct fz_handle *h, int role, int with_cfg)
{
    handle_close(h);
    rq_config cfg = {r->h->slot_count, r->h->slot_size, 0, 0};
    cfg.flags |= r->h->kind == FZ_MPSC ? RQ_MPSC : 0;
    cfg.flags |= (r->h->open_flags & FZ_CFG_FENCES) ? RQ_FULL_FENCES : 0;
    cfg.flags |= (r->h->open_flags & FZ_CFG_RECORDS) ? RQ_RECORDS : 0;
    last_map.addr = NULL;
    int rc = rq_open(&h->q, object_name, role, with_cfg ? &cfg : NULL);
    /* A creating open that finds the header wiped (the peer's doing) while
     * our other handle holds a role takes it for an unlinked queue's
     * holder and refuses: RQ_EUNLINKED, nothing changed. */
    if (with_cfg)
        expect_in("rq_open (config)", rc, RQ_OK, RQ_ECORRUPT, RQ_EVERSION, RQ_EBUSY, RQ_EEXIST,
                  RQ_EUNLINKED, FZ_END);
    else
        expect_in("rq_open", rc, RQ_OK, RQ_ECORRUPT, RQ_EVERSION, RQ_EBUSY, RQ_ENOENT, FZ_END);
    if (rc != RQ_OK) {
        if (h->q)
            fz_fail("rq_open failed but set a handle");
        return;
    }
    h->role = role;
    h->map = last_map;
    if (r->h->open_flags & FZ_CFG_SPIN)
        expect_in("rq_set_spin_us", rq_set_spin_us(h->q, FZ_SPIN_US), RQ_OK, FZ_END);
    rq_stats st;
    rc = rq_stat(h->q, &st);
    expect_in("rq_stat after open", rc, RQ_OK, RQ_ECORRUPT, FZ_END);
    if (st.slot_count < 1 || st.slot_count > RQ_SLOT_COUNT_MAX || st.slot_size < 1 ||
        st.slot_size > RQ_SLOT_SIZE_MAX)
        fz_fail("open accepted geometry %u x %u", st.slot_count, st.slot_size);
    h->slot_count = st.slot_count;
    h->slot_size = st.slot_size;
    h->stride = (RQ_SLOT_HEADER + (uint64_t)st.slot_size + 7) & ~(uint64_t)7;
    h->records = (st.flags & RQ_RECORDS) != 0;
    if (h->records && (st.slot_count % 16 || st.slot_size > st.slot_count / 2 - RQ_RECORD_HEADER))
        fz_fail("open accepted a ring of %u bytes for records of %u", st.slot_count, st.slot_size);
    uint64_t need = h->records ? (uint64_t)RQ_REC_DATA_OFFSET + st.slot_count
                               : RQ_SHM_HEADER_SIZE + (uint64_t)st.slot_count * h->stride;
    if (!h->map.addr || h->map.size < need)
        fz_fail("open accepted %u slots of %u bytes but mapped %zu bytes", st.slot_count,
                st.slot_size, h->map.size);
}

static void coalesce_open(struct fz_run *r, struct fz_handle *h, int role, int create)
{
    (void)r;
    handle_close(h);
    int rc = create ? rq_coalesce_open(&h->c, object_name, role, 0)
                    : rq_coalesce_attach(&h->c, object_name, role);
    expect_in("rq_coalesce_open", rc, RQ_OK, RQ_ECORRUPT, RQ_EVERSION, RQ_EBUSY,
              create ? RQ_EUNLINKED : RQ_ENOENT, FZ_END);
    if (rc == RQ_OK)
        h->role = role;
    else if (h->c)
        fz_fail("rq_coalesce_open failed but set a handle");
}

static void handle_open(struct fz_run *r, struct fz_handle *h, int role, int with_cfg)
{
    if (r->h->kind == FZ_COALESCE)
        coalesce_open(r, h, role, with_cfg);
    else
        queue_open(r, h, role, with_cfg);
}

/* ---- queue operations --------------------------------------------------- */

/* A message length: within the slot size, or (variant bit 0) just past it. */
static size_t op_length(const struct fz_handle *h, struct fz_in *in, unsigned variant)
{
    uint16_t arg = fz_u16(in);
    if (variant & 1)
        return (size_t)h->slot_size + 1 + arg % 3;
    return arg % ((size_t)h->slot_size + 1);
}

/* A heap copy of LEN pattern bytes (at least 1 byte), so that ASan sees
 * any read past LEN. */
static unsigned char *message(struct fz_run *r, size_t len)
{
    unsigned char *m = malloc(len ? len : 1);
    if (!m)
        fz_fail("out of memory");
    memset(m, r->pattern++, len ? len : 1);
    return m;
}

static int reservation_held(const struct fz_run *r);

/* RQ_EDEADLK is allowed to a producer while another handle of this thread
 * holds the MPSC lock through a reservation. */
static int deadlock_ok(const struct fz_run *r)
{
    return reservation_held(r) ? RQ_EDEADLK : RQ_OK;
}

/* An MPSC push that waits may find the producers' lock held for all of its
 * timeout (by our other handle, or by a word the peer planted). */
static int locked_ok(const struct fz_run *r, int timeout)
{
    return r->h->kind == FZ_MPSC && timeout ? RQ_ELOCKED : RQ_OK;
}

static int op_push(struct fz_run *r, struct fz_handle *h, size_t len, int timeout)
{
    /* Past slot_size the call must refuse before reading: a 1-byte buffer
     * makes ASan catch it if it does not. */
    unsigned char *m = message(r, len > h->slot_size ? 1 : len);
    int rc = rq_push(h->q, m, len, timeout);
    free(m);
    if (h->role != RQ_PRODUCER)
        expect_is("rq_push", rc, RQ_EROLE);
    else if (h->reserved)
        expect_is("rq_push while reserved", rc, RQ_ESTATE);
    else if (len > h->slot_size)
        expect_is("rq_push too long", rc, RQ_EMSGSIZE);
    else
        expect_in("rq_push", rc, RQ_OK, nothing(timeout), RQ_ECORRUPT, deadlock_ok(r),
                  locked_ok(r, timeout), FZ_END);
    return rc;
}

static int op_pop(struct fz_handle *h, size_t cap, int timeout)
{
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf)
        fz_fail("out of memory");
    size_t len = (size_t)-1;
    rq_msg_info info = {0, 0, 0};
    int rc = rq_pop_info(h->q, buf, cap, &len, &info, timeout);
    free(buf);
    if (rc == RQ_OK && (info.flags & ~(uint32_t)RQ_MSG_REDELIVERED || info.reserved))
        fz_fail("rq_pop_info: flags %#x reserved %u", info.flags, info.reserved);
    if (h->role != RQ_CONSUMER) {
        expect_is("rq_pop", rc, RQ_EROLE);
    } else if (h->peeked) {
        expect_is("rq_pop while peeked", rc, RQ_ESTATE);
    } else {
        expect_in("rq_pop", rc, RQ_OK, RQ_EMSGSIZE, nothing(timeout), RQ_ECORRUPT, FZ_END);
        if (rc == RQ_OK && (len > cap || len > h->slot_size))
            fz_fail("rq_pop gave %zu bytes (cap %zu, slot_size %u)", len, cap, h->slot_size);
        if (rc == RQ_EMSGSIZE && (len <= cap || len > h->slot_size))
            fz_fail("rq_pop: EMSGSIZE with length %zu (cap %zu, slot_size %u)", len, cap,
                    h->slot_size);
    }
    return rc;
}

static void op_peek(struct fz_handle *h, int timeout)
{
    const void *msg = NULL;
    size_t len = (size_t)-1;
    rq_msg_info info = {0, 0, 0};
    int rc = rq_peek_info(h->q, &msg, &len, &info, timeout);
    if (rc == RQ_OK && (info.flags & ~(uint32_t)RQ_MSG_REDELIVERED || info.reserved))
        fz_fail("rq_peek_info: flags %#x reserved %u", info.flags, info.reserved);
    if (h->role != RQ_CONSUMER) {
        expect_is("rq_peek", rc, RQ_EROLE);
        return;
    }
    if (h->peeked) {
        expect_is("rq_peek again", rc, RQ_OK);
        if (msg != h->msg || len != h->msg_len)
            fz_fail("rq_peek again gave another message");
        return;
    }
    expect_in("rq_peek", rc, RQ_OK, nothing(timeout), RQ_ECORRUPT, FZ_END);
    if (rc != RQ_OK)
        return;
    check_payload(h, msg, len, "rq_peek");
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < len; i++)
        sink ^= ((const unsigned char *)msg)[i];
    (void)sink;
    h->peeked = 1;
    h->msg = msg;
    h->msg_len = len;
}

static void op_release(struct fz_handle *h)
{
    int rc = rq_release(h->q);
    if (h->role != RQ_CONSUMER) {
        expect_is("rq_release", rc, RQ_EROLE);
    } else if (!h->peeked) {
        expect_is("rq_release without peek", rc, RQ_ESTATE);
    } else {
        expect_is("rq_release", rc, RQ_OK);
        h->peeked = 0;
    }
}

static void op_reserve(struct fz_run *r, struct fz_handle *h, int timeout)
{
    void *slot = NULL;
    int rc = rq_reserve(h->q, &slot, timeout);
    if (h->role != RQ_PRODUCER) {
        expect_is("rq_reserve", rc, RQ_EROLE);
        return;
    }
    if (h->reserved) {
        expect_is("rq_reserve again", rc, RQ_OK);
        if (slot != h->slot)
            fz_fail("rq_reserve again gave another slot");
        return;
    }
    expect_in("rq_reserve", rc, RQ_OK, nothing(timeout), RQ_ECORRUPT, deadlock_ok(r),
              locked_ok(r, timeout), FZ_END);
    if (rc != RQ_OK)
        return;
    check_payload(h, slot, h->slot_size, "rq_reserve");
    memset(slot, r->pattern++, h->slot_size);
    h->reserved = 1;
    h->slot = slot;
}

static void op_commit(struct fz_handle *h, size_t len)
{
    int rc = rq_commit(h->q, len);
    if (h->role != RQ_PRODUCER) {
        expect_is("rq_commit", rc, RQ_EROLE);
    } else if (!h->reserved) {
        expect_is("rq_commit without reserve", rc, RQ_ESTATE);
    } else if (len > h->slot_size) {
        expect_is("rq_commit too long", rc, RQ_EMSGSIZE);
    } else {
        expect_is("rq_commit", rc, RQ_OK);
        h->reserved = 0;
    }
}

static void op_stat(struct fz_handle *h)
{
    rq_stats st;
    int rc = rq_stat(h->q, &st);
    expect_in("rq_stat", rc, RQ_OK, RQ_ECORRUPT, FZ_END);
    if (st.slot_count != h->slot_count || st.slot_size != h->slot_size)
        fz_fail("rq_stat: geometry changed after open");
    if (rc != RQ_OK)
        return;
    uint32_t two_n = 2 * st.slot_count;
    if (st.write_offset >= two_n || st.read_offset >= two_n || st.depth > st.slot_count)
        fz_fail("rq_stat OK with offsets %u/%u, depth %u of %u", st.write_offset, st.read_offset,
                st.depth, st.slot_count);
    /* The lock holder is shown as read, but in range whatever was planted. */
    if (st.lock_holder_pid < -1 || st.lock_held_ms < -1 ||
        (st.lock_reserving != 0 && st.lock_reserving != 1) ||
        (st.lock_holder_pid == 0 && (st.lock_held_ms != -1 || st.lock_reserving)))
        fz_fail("rq_stat: lock holder %lld, held %lld ms, reserving %d",
                (long long)st.lock_holder_pid, (long long)st.lock_held_ms, st.lock_reserving);
}

/* The burst calls (variant bit 2 of the burst operations): COUNT messages
 * through rq_push_burst (variant bit 1 clear) or rq_reserve_burst and
 * rq_commit_burst of all but the last slot; variant bit 0 makes the last
 * message one byte too long. */
static void op_push_burst(struct fz_run *r, struct fz_handle *h, unsigned count, unsigned variant)
{
    const void *msgs[2 * FZ_MAX_SLOTS + 2];
    size_t lens[2 * FZ_MAX_SLOTS + 2];
    unsigned char *m = message(r, h->slot_size);
    for (unsigned i = 0; i < count; i++) {
        msgs[i] = m;
        lens[i] = ((size_t)i * 7 + variant) % ((size_t)h->slot_size + 1);
    }
    /* The most one call looks at: a ring's slots, or as many records as
     * headers fit in a record ring (lengths beyond it are not read). */
    unsigned batch_max = h->records ? h->slot_count / RQ_REC_CELL : h->slot_count;
    int too_long = (variant & 1) && count > 0 && count <= batch_max;
    if (too_long)
        lens[count - 1] = (size_t)h->slot_size + 1; /* never read: refused first */
    int rc;
    if (!(variant & 2)) {
        rc = rq_push_burst(h->q, msgs, lens, count, 0);
    } else {
        void *slots[2 * FZ_MAX_SLOTS + 2];
        rc = rq_reserve_burst(h->q, slots, count, 0);
        for (int i = 0; i < rc; i++) {
            check_payload(h, slots[i], h->slot_size, "rq_reserve_burst");
            memset(slots[i], r->pattern, h->slot_size);
        }
        if (rc > 0) {
            int c = rq_commit_burst(h->q, lens, (size_t)rc - 1);
            expect_is("rq_commit_burst", c, RQ_OK);
            rc = rc - 1;
        }
    }
    free(m);
    if (h->role != RQ_PRODUCER)
        expect_is("rq_push_burst", rc, RQ_EROLE);
    else if (count == 0)
        expect_is("rq_push_burst of 0", rc, (variant & 2) ? RQ_EINVAL : 0);
    else if (h->reserved)
        expect_is("rq_push_burst while reserved", rc, RQ_ESTATE);
    else if (too_long && !(variant & 2))
        expect_is("rq_push_burst too long", rc, RQ_EMSGSIZE);
    else if (rc > (int)count || rc > (int)h->slot_count)
        fz_fail("rq_push_burst moved %d of %u (slot_count %u)", rc, count, h->slot_count);
    else if (rc < 0)
        expect_in("rq_push_burst", rc, nothing(0), RQ_ECORRUPT, deadlock_ok(r), FZ_END);
}

/* COUNT messages through rq_pop_burst (variant bit 1 clear) or
 * rq_peek_burst, released in two parts. */
static void op_pop_burst(struct fz_handle *h, unsigned count, unsigned variant)
{
    int rc;
    if (!(variant & 2)) {
        size_t cap = (variant & 1) ? h->slot_size / 2 : h->slot_size;
        unsigned char *buf = malloc(cap * (count ? count : 1) + 1);
        size_t lens[2 * FZ_MAX_SLOTS + 2];
        if (!buf)
            fz_fail("out of memory");
        rc = rq_pop_burst(h->q, buf, cap, lens, count, 0);
        free(buf);
        for (int i = 0; i < rc; i++)
            if (lens[i] > cap)
                fz_fail("rq_pop_burst gave %zu bytes (cap %zu)", lens[i], cap);
        if (rc == RQ_EMSGSIZE && (lens[0] <= cap || lens[0] > h->slot_size))
            fz_fail("rq_pop_burst: EMSGSIZE with length %zu (cap %zu)", lens[0], cap);
    } else {
        rq_msg_view v[2 * FZ_MAX_SLOTS + 2];
        rc = rq_peek_burst(h->q, v, count, 0);
        for (int i = 0; i < rc; i++) {
            check_payload(h, v[i].data, v[i].len, "rq_peek_burst");
            if (v[i].flags & ~(uint32_t)RQ_MSG_REDELIVERED || v[i].reserved ||
                (i > 0 && v[i].seq != v[0].seq + (uint64_t)i))
                fz_fail("rq_peek_burst: message %d: seq %llu flags %#x", i,
                        (unsigned long long)v[i].seq, v[i].flags);
        }
        if (rc > 0) {
            int first = (rc + 1) / 2;
            expect_is("rq_release_burst", rq_release_burst(h->q, (size_t)first), RQ_OK);
            if (rc > first)
                expect_is("rq_release_burst rest", rq_release_burst(h->q, (size_t)(rc - first)),
                          RQ_OK);
            h->peeked = 0;
        }
    }
    if (h->role != RQ_CONSUMER) {
        expect_is("rq_pop_burst", rc, RQ_EROLE);
    } else if (count == 0) {
        expect_is("rq_pop_burst of 0", rc, (variant & 2) ? RQ_EINVAL : 0);
    } else if (h->peeked && !(variant & 2)) {
        expect_is("rq_pop_burst while peeked", rc, RQ_ESTATE);
    } else if (rc > (int)count || rc > (int)h->slot_count) {
        fz_fail("rq_pop_burst moved %d of %u (slot_count %u)", rc, count, h->slot_count);
    } else if (rc < 0) {
        expect_in("rq_pop_burst", rc, RQ_EMSGSIZE, nothing(0), RQ_ECORRUPT, FZ_END);
    }
}

/* Record queues have every burst call but the zero-copy batch write: a
 * reserved record's room is its length, so rq_reserve_burst is refused
 * (after the role check) and changes nothing. */
static void op_reserve_burst_on_records(struct fz_handle *h)
{
    void *slot;
    int want = h->role == RQ_PRODUCER ? RQ_EINVAL : RQ_EROLE;
    expect_is("rq_reserve_burst (records)", rq_reserve_burst(h->q, &slot, 1, 0), want);
}

/* rq_reserve_burst_len on either kind: COUNT lengths (variant bit 0: the
 * last one too long), all of the batch or none; then rq_commit_burst of
 * all of it, or (COUNT bit 1) of all but the last at half their reserved
 * lengths (records packed behind the shorter ones). */
static void op_reserve_burst_len(struct fz_run *r, struct fz_handle *h, unsigned count,
                                 unsigned variant)
{
    size_t lens[2 * FZ_MAX_SLOTS + 2], half[2 * FZ_MAX_SLOTS + 2];
    void *bufs[2 * FZ_MAX_SLOTS + 2];
    for (unsigned i = 0; i < count; i++)
        lens[i] = ((size_t)i * i * 5 + count) % ((size_t)h->slot_size + 1);
    int too_long = (variant & 1) && count > 0;
    if (too_long)
        lens[count - 1] = (size_t)h->slot_size + 1;
    int rc = rq_reserve_burst_len(h->q, lens, count, bufs, 0);
    unsigned most = h->records ? h->slot_count / RQ_REC_CELL : h->slot_count;
    if (h->role != RQ_PRODUCER) {
        expect_is("rq_reserve_burst_len", rc, RQ_EROLE);
    } else if (count == 0) {
        expect_is("rq_reserve_burst_len of 0", rc, RQ_EINVAL);
    } else if (h->reserved) {
        expect_is("rq_reserve_burst_len while reserved", rc, RQ_ESTATE);
    } else if (too_long && !h->records && count <= h->slot_count) {
        expect_is("rq_reserve_burst_len too long", rc, RQ_EMSGSIZE);
    } else if (rc < 0) {
        expect_in("rq_reserve_burst_len", rc, nothing(0), RQ_ECORRUPT, deadlock_ok(r),
                  too_long ? RQ_EMSGSIZE : RQ_OK, FZ_END);
    } else if (rc > (int)count || rc > (int)most ||
               (!h->records && rc != (int)(count < most ? count : most))) {
        fz_fail("rq_reserve_burst_len reserved %d of %u (at most %u)", rc, count, most);
    }
    if (rc <= 0)
        return;
    for (int i = 0; i < rc; i++) {
        check_payload(h, bufs[i], h->records ? lens[i] : h->slot_size, "rq_reserve_burst_len");
        if (i > 0 && h->records && bufs[i] == bufs[i - 1])
            fz_fail("rq_reserve_burst_len: records %d and %d at one place", i - 1, i);
        memset(bufs[i], r->pattern, lens[i]);
        half[i] = lens[i] / 2;
    }
    r->pattern++;
    size_t k = (count & 2) ? (size_t)rc - 1 : (size_t)rc;
    expect_is("rq_commit_burst", rq_commit_burst(h->q, (count & 2) ? half : lens, k), RQ_OK);
}

/* Turns the handle into a poller: its RQ_EAGAINs then arm the poll object
 * (drain it, set the poller bit, re-check), which meets the hostile
 * waiters words; the publishes of its peer then signal it. */
static void op_poll(struct fz_handle *h)
{
    rq_pollable fd;
    int rc = rq_poll_handle(h->q, &fd);
    if (h->role == RQ_OBSERVER) {
        expect_is("rq_poll_handle (observer)", rc, RQ_EROLE);
        return;
    }
    expect_is("rq_poll_handle", rc, RQ_OK);
    int t = rq_poll_timeout(h->q);
    if (t != 1 && t != 1000)
        fz_fail("rq_poll_timeout: %d", t);
}

static void queue_op(struct fz_run *r, struct fz_handle *h, unsigned op, unsigned variant,
                     struct fz_in *in)
{
    switch (op) {
    case FZ_OP_PUSH:
        op_push(r, h, op_length(h, in, variant), op_timeout(r, variant));
        break;
    case FZ_OP_POP: {
        uint16_t arg = fz_u16(in);
        size_t cap = (variant & 1) ? arg % ((size_t)h->slot_size + 1) : h->slot_size;
        op_pop(h, cap > FZ_MAX_OBJECT ? FZ_MAX_OBJECT : cap, op_timeout(r, variant));
        break;
    }
    case FZ_OP_PEEK:
        op_peek(h, op_timeout(r, variant));
        break;
    case FZ_OP_RELEASE:
        op_release(h);
        break;
    case FZ_OP_RESERVE:
        op_reserve(r, h, op_timeout(r, variant));
        break;
    case FZ_OP_COMMIT:
        op_commit(h, op_length(h, in, variant));
        break;
    case FZ_OP_STAT:
        op_stat(h);
        break;
    case FZ_OP_POLL:
        op_poll(h);
        break;
    case FZ_OP_PUSH_BURST: {
        unsigned count = fz_u8(in) % (2 * FZ_MAX_SLOTS + 2);
        /* The zero-copy bursts (variant 6, 7): rq_reserve_burst_len on
         * either kind for an odd count, else rq_reserve_burst (refused on
         * records, variant 7 there). */
        if ((variant & 6) == 6 && (count & 1)) {
            op_reserve_burst_len(r, h, count, variant);
            break;
        }
        if ((variant & 6) == 6 && h->records) {
            op_reserve_burst_on_records(h);
            break;
        }
        if (variant & 4) {
            op_push_burst(r, h, count, variant);
            break;
        }
        for (unsigned i = 0; i < count; i++) {
            size_t len = ((size_t)i * 7 + variant) % ((size_t)h->slot_size + 1);
            if (op_push(r, h, len, 0) != RQ_OK)
                break;
        }
        break;
    }
    case FZ_OP_POP_BURST: {
        unsigned count = fz_u8(in) % (2 * FZ_MAX_SLOTS + 2);
        if (variant & 4) {
            op_pop_burst(h, count, variant);
            break;
        }
        size_t cap = h->slot_size > FZ_MAX_OBJECT ? FZ_MAX_OBJECT : h->slot_size;
        for (unsigned i = 0; i < count; i++) {
            if (op_pop(h, cap, 0) != RQ_OK)
                break;
        }
        break;
    }
    default:
        break;
    }
}

/* ---- coalescing operations ---------------------------------------------- */

static void coalesce_op(struct fz_run *r, struct fz_handle *h, unsigned op, unsigned variant,
                        struct fz_in *in)
{
    int rc;
    /* Every opcode means something: 0-2 as named, stat, the rest modulo 3. */
    enum { FZ_COALESCE_STAT = 3 };
    switch (op == FZ_OP_STAT ? FZ_COALESCE_STAT : op % 3) {
    case FZ_OP_REQUEST:
        rc = rq_coalesce_request(h->c);
        expect_is("rq_coalesce_request", rc, h->role == RQ_PRODUCER ? RQ_OK : RQ_EROLE);
        break;
    case FZ_OP_WAIT: {
        uint64_t ticket = 0;
        int timeout = op_timeout(r, variant);
        rc = rq_coalesce_wait(h->c, &ticket, timeout);
        if (h->role != RQ_CONSUMER) {
            expect_is("rq_coalesce_wait", rc, RQ_EROLE);
        } else {
            expect_in("rq_coalesce_wait", rc, RQ_OK, nothing(timeout), FZ_END);
            if (rc == RQ_OK) {
                if (ticket > RQC_COUNT_MASK)
                    fz_fail("rq_coalesce_wait: ticket %llu", (unsigned long long)ticket);
                h->round_open = 1;
                h->ticket = ticket;
            }
        }
        break;
    }
    case FZ_OP_DONE: {
        uint64_t ticket = h->ticket + ((variant & 1) ? fz_u8(in) : 0);
        rc = rq_coalesce_done(h->c, ticket);
        if (h->role != RQ_CONSUMER) {
            expect_is("rq_coalesce_done", rc, RQ_EROLE);
        } else if (!h->round_open || ticket != h->ticket) {
            expect_is("rq_coalesce_done, wrong ticket", rc, RQ_ESTATE);
        } else {
            expect_is("rq_coalesce_done", rc, RQ_OK);
            h->round_open = 0;
        }
        break;
    }
    default: {
        rq_coalesce_stats st;
        rc = rq_coalesce_stat(h->c, &st);
        expect_is("rq_coalesce_stat", rc, RQ_OK);
        if ((st.owed != 0 && st.owed != 1) || (st.waiting != 0 && st.waiting != 1))
            fz_fail("rq_coalesce_stat: owed %d waiting %d", st.owed, st.waiting);
        break;
    }
    }
}

/* ---- the hostile peer ------------------------------------------------- */

#define Q(field) offsetof(struct rq_shm, field)
#define C(field) offsetof(struct rqc_shm, field)
static const size_t queue_words[] = {
    Q(hdr.magic),
    Q(hdr.magic) + 4,
    Q(hdr.layout_version),
    Q(hdr.abi),
    Q(hdr.header_size),
    Q(hdr.slot_count),
    Q(hdr.slot_size),
    Q(hdr.slot_stride),
    Q(hdr.flags),
    Q(hdr.total_size),
    Q(hdr.total_size) + 4,
    Q(write_offset),
    Q(read_offset),
    Q(data_event.waiters),
    Q(data_event.seq),
    Q(space_event.waiters),
    Q(space_event.seq),
    Q(producer.attached),
    Q(consumer.attached),
    Q(producer.pid), /* the last holder, shown by rq_stat */
    Q(write_position),
    Q(write_position) + 4,
    Q(read_position),
    Q(read_position) + 4,
    Q(consumer.delivered_position),
    Q(consumer.delivered_position) + 4,
    /* the MPSC lock: owner word (both halves), handle ids, futex word */
    Q(mpsc.owner),
    Q(mpsc.owner) + 4,
    Q(mpsc.next_id),
    Q(mpsc.seq),
    Q(mpsc.owner) + 4,
    /* most likely to matter: the offsets, again */
    Q(write_offset),
    Q(read_offset),
    Q(write_offset),
    Q(read_offset),
    /* a record queue's words: the record numbers beside the offsets */
    Q(write_offset) + 4,
    Q(read_offset) + 4,
    /* who holds the MPSC lock (read by rq_stat only): the stamp, the slot
     * pids (first, second, last), dead reservations */
    Q(mpsc.waited_word),
    Q(mpsc.waited_word) + 4,
    Q(mpsc.waited_since_ms),
    Q(mpsc.waited_since_ms) + 4,
    Q(slot_pid[0]),
    Q(slot_pid[1]),
    Q(slot_pid[RQ_MPSC_SLOTS - 1]),
    Q(admin.dead_reservations),
    /* the MPSC lock's waiters word (a release that finds it set wakes) */
    Q(mpsc.waiters),
    /* a record queue's byte statistics (line 9, beside the lock; read by
     * rq_stat_records only) */
    offsetof(struct rq_rec_shm, bytes.padding_bytes),
    offsetof(struct rq_rec_shm, bytes.payload_bytes),
    offsetof(struct rq_rec_shm, bytes.largest),
};
static const size_t coalesce_words[] = {
    C(hdr.magic), C(hdr.magic) + 4, C(hdr.layout_version), C(hdr.abi),         C(hdr.header_size),
    C(req),       C(work.taken),    C(work.done),          C(worker.attached), C(requesters.wakes),
    C(req),       C(work.done),
};
#define COUNT(a) (sizeof a / sizeof *a)

static int reservation_held(const struct fz_run *r)
{
    return r->hd[0].reserved || r->hd[1].reserved;
}

/* May the peer write the 4 bytes at OFF?  Anything, at any time, inside
 * the object: the MPSC lock area too (it holds no pointers: mpsc.c).  Only
 * the magic stays while a reservation is held (a repairing open would
 * zero the segment under the reserved slot's writer). */
static int peer_may_write(const struct fz_run *r, size_t off)
{
    if (off + 4 > r->view->size)
        return 0;
    if (r->h->kind == FZ_COALESCE)
        return 1;
    if (off < 8)
        return !reservation_held(r);
    return 1;
}

static void peer_write(struct fz_run *r, size_t off, uint32_t value)
{
    off &= ~(size_t)3;
    if (peer_may_write(r, off))
        __atomic_store_n((uint32_t *)(r->view->addr + off), value, __ATOMIC_SEQ_CST);
}

/* VARIANT picks how VALUE is used: as is, as a small step from the word's
 * value, as a plausible offset, or as a length near the slot size. */
static void op_scribble(struct fz_run *r, unsigned variant, struct fz_in *in)
{
    unsigned sel = fz_u8(in);
    uint32_t value = fz_u32(in);
    const size_t *words = r->h->kind == FZ_COALESCE ? coalesce_words : queue_words;
    size_t nwords = r->h->kind == FZ_COALESCE ? COUNT(coalesce_words) : COUNT(queue_words);
    size_t off;
    if (sel < nwords || r->h->kind == FZ_COALESCE)
        off = words[sel % nwords];
    else if (r->h->open_flags & FZ_CFG_RECORDS) /* a record header or a payload word */
        off = RQ_REC_DATA_OFFSET + (sel - nwords) * 4 % r->h->slot_count;
    else /* a slot's length word */
        off = RQ_SHM_HEADER_SIZE +
              (sel - nwords) % r->h->slot_count * rq_layout_stride(r->h->slot_size);
    if (off + 4 > r->view->size)
        return;
    uint32_t now = __atomic_load_n((uint32_t *)(r->view->addr + off), __ATOMIC_SEQ_CST);
    switch (variant & 3) {
    case 1:
        value = now + (uint32_t)(int32_t)(int8_t)value;
        break;
    case 2:
        value %= 2 * r->h->slot_count + 1;
        break;
    case 3:
        value = r->h->slot_size + (uint32_t)(int32_t)(int8_t)value;
        break;
    default:
        break;
    }
    peer_write(r, off, value);
}

static void op_raw(struct fz_run *r, struct fz_in *in)
{
    size_t off = fz_u16(in);
    uint32_t value = fz_u32(in);
    if (r->view->size >= 4)
        peer_write(r, off % (r->view->size - 3), value);
}

/* ---- the run -------------------------------------------------------------- */

void fz_run(const struct fz_head *h, struct fz_in *in, struct fz_view *view, int peer)
{
    struct fz_run r = {.h = h, .view = view, .waits_left = 1};
    unsigned roles[2] = {h->role_a, h->role_b};
    for (int i = 0; i < 2; i++) {
        if (roles[i])
            handle_open(&r, &r.hd[i], role_of(roles[i]), (h->open_flags >> i) & 1);
    }
    for (int n = 0; n < FZ_MAX_OPS && fz_more(in); n++) {
        unsigned byte = fz_u8(in);
        unsigned op = byte & 15, variant = byte >> 5;
        struct fz_handle *hd = &r.hd[(byte >> 4) & 1];
        if (op == FZ_OP_SCRIBBLE || op == FZ_OP_RAW) {
            if (!peer)
                continue;
            if (op == FZ_OP_SCRIBBLE)
                op_scribble(&r, variant, in);
            else
                op_raw(&r, in);
        } else if (op == FZ_OP_OPEN) {
            handle_open(&r, hd, 1 + fz_u8(in) % 3, variant & 1);
        } else if (op == FZ_OP_CLOSE) {
            handle_close(hd);
        } else if (hd->q) {
            queue_op(&r, hd, op, variant, in);
        } else if (hd->c) {
            coalesce_op(&r, hd, op, variant, in);
        }
    }
    handle_close(&r.hd[0]);
    handle_close(&r.hd[1]);
}
