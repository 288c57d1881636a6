/*
 * make_seeds.c - writes the seed corpus of the fuzz targets: valid objects
 * of a few geometries and states, each with a short script of operations
 * (format: harness.h).  Usage: fuzz_seeds DIR  (writes DIR/fuzz_segment/
 * and DIR/fuzz_peer/).
 *
 * The committed corpus (fuzz/corpus/<target>/) is its output (the named
 * files) plus cov-* files: the smallest set of inputs from a few minutes'
 * fuzzing that covers every edge reached, chosen with
 *   build/fuzz/fuzz/<target> -set_cover_merge=1 -use_counters=0 NEW_DIR \
 *       fuzz/corpus/<target> build/fuzz/corpus/<target>
 * and named cov-<first 12 hex digits of libFuzzer's name>.  Replaying them
 * alone covers what the long runs cover.  The named images must carry
 * today's segment formats (an older one is refused at the version check):
 * scripts/fuzz.sh checks that, and a format change remakes them.
 *
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "rq.h"

static char name[64];

static void die(const char *what, int rc)
{
    fprintf(stderr, "fuzz_seeds: %s: %s\n", what, rc ? rq_errname(rc) : strerror(errno));
    exit(1);
}

static void check(const char *what, int rc)
{
    if (rc != RQ_OK)
        die(what, rc);
}

/* A seed under construction. */
struct seed {
    unsigned char bytes[65536];
    size_t len;
};

static void put(struct seed *s, const void *p, size_t n)
{
    if (s->len + n > sizeof s->bytes)
        die("seed too long", 0);
    memcpy(s->bytes + s->len, p, n);
    s->len += n;
}

static void put8(struct seed *s, unsigned v)
{
    unsigned char b = (unsigned char)v;
    put(s, &b, 1);
}

static void put16(struct seed *s, unsigned v)
{
    put8(s, v & 0xff);
    put8(s, (v >> 8) & 0xff);
}

static void put32(struct seed *s, uint32_t v)
{
    put16(s, v & 0xffff);
    put16(s, v >> 16);
}

static void head(struct seed *s, unsigned kind, unsigned role_a, unsigned role_b,
                 unsigned open_flags, unsigned prefill, uint32_t count, uint32_t size,
                 uint32_t image_len)
{
    s->len = 0;
    put8(s, kind);
    put8(s, role_a | role_b << 2);
    put8(s, open_flags);
    put8(s, prefill);
    put16(s, count - 1);
    put16(s, size - 1);
    put32(s, 0);
    put16(s, image_len);
    put16(s, 0);
}

/* Operation byte: OP on handle HANDLE (0 = A, 1 = B) with VARIANT. */
static void op(struct seed *s, unsigned code, unsigned handle, unsigned variant)
{
    put8(s, code | handle << 4 | variant << 5);
}

/* The whole object NAME of KIND as it is now. */
static size_t dump(const char *kind, unsigned char *buf, size_t cap)
{
    char path[96];
    snprintf(path, sizeof path, "/%s.%s", kind, name);
    int fd = shm_open(path, O_RDONLY, 0);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || (size_t)st.st_size > cap)
        die("reading the object", 0);
    size_t n = (size_t)st.st_size;
    void *p = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("mmap", 0);
    memcpy(buf, p, n);
    munmap(p, n);
    close(fd);
    return n;
}

static void write_seed(const char *dir, const char *target, const char *file, const struct seed *s)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, file);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s->bytes, 1, s->len, f) != s->len || fclose(f) != 0)
        die(path, 0);
}

/* A queue of COUNT x SIZE with FLAGS after TURNS push+pop rounds and KEEP
 * messages left in it. */
static size_t make_queue(uint32_t count, uint32_t size, uint32_t flags, unsigned turns,
                         unsigned keep, unsigned char *image, size_t cap)
{
    rq_unlink(name);
    rq_config cfg = {count, size, flags, 0};
    rq *p, *c;
    check("open producer", rq_open(&p, name, RQ_PRODUCER, &cfg));
    check("open consumer", rq_open(&c, name, RQ_CONSUMER, NULL));
    unsigned char msg[1024];
    memset(msg, 'm', sizeof msg);
    size_t len;
    for (unsigned i = 0; i < turns; i++) {
        check("push", rq_push(p, msg, i % (size + 1), 0));
        check("pop", rq_pop(c, msg, sizeof msg, &len, 0));
    }
    for (unsigned i = 0; i < keep; i++)
        check("push", rq_push(p, msg, (i * 3 + 1) % (size + 1), 0));
    rq_close(p);
    rq_close(c);
    size_t n = dump("rq", image, cap);
    rq_unlink(name);
    return n;
}

/* Queue operations that touch every call once or more. */
static void queue_script(struct seed *s)
{
    op(s, FZ_OP_STAT, 0, 0);
    op(s, FZ_OP_PEEK, 0, 0);
    op(s, FZ_OP_PEEK, 0, 0);
    op(s, FZ_OP_RELEASE, 0, 0);
    op(s, FZ_OP_POP, 0, 0);
    put16(s, 0);
    op(s, FZ_OP_POP, 0, 1);
    put16(s, 3);
    op(s, FZ_OP_PUSH, 1, 0);
    put16(s, 5);
    op(s, FZ_OP_PUSH, 1, 1);
    put16(s, 0);
    op(s, FZ_OP_RESERVE, 1, 0);
    op(s, FZ_OP_COMMIT, 1, 0);
    put16(s, 7);
    op(s, FZ_OP_PUSH_BURST, 1, 0);
    put8(s, 40);
    op(s, FZ_OP_STAT, 1, 0);
    op(s, FZ_OP_POP_BURST, 0, 0);
    put8(s, 40);
    op(s, FZ_OP_CLOSE, 0, 0);
    op(s, FZ_OP_OPEN, 0, 0);
    put8(s, 1); /* consumer */
    op(s, FZ_OP_POP, 0, 0);
    put16(s, 0);
}

/* The burst calls (variant bit 2 of the burst operations): push and
 * reserve/commit bursts, one with a message too long, pop and peek bursts
 * (a peek burst released in two parts), from both handles. */
static void burst_script(struct seed *s)
{
    op(s, FZ_OP_POP_BURST, 0, 6); /* peek burst */
    put8(s, 3);
    op(s, FZ_OP_PUSH_BURST, 1, 4); /* push burst */
    put8(s, 3);
    op(s, FZ_OP_PUSH_BURST, 1, 5); /* push burst, the last too long */
    put8(s, 2);
    op(s, FZ_OP_PUSH_BURST, 1, 6); /* reserve burst, commit all but one */
    put8(s, 40);
    op(s, FZ_OP_POP_BURST, 0, 4); /* pop burst */
    put8(s, 2);
    op(s, FZ_OP_POP_BURST, 0, 5); /* pop burst into half-size buffers */
    put8(s, 40);
    op(s, FZ_OP_POP_BURST, 0, 6);
    put8(s, 40);
    op(s, FZ_OP_PUSH_BURST, 0, 4); /* wrong role */
    put8(s, 1);
    op(s, FZ_OP_POP_BURST, 1, 6);
    put8(s, 1);
    op(s, FZ_OP_STAT, 0, 0);
}

/* rq_reserve_burst_len (a push burst of variant 6 or 7 with an odd count,
 * harness.c): batches committed whole (counts 1 and 5), one committed but
 * its last at half the reserved lengths (count 3: bit 1 set), a last length
 * too long (variant 7), a batch asked for while a slot is reserved, one
 * on the consumer's handle, and one longer than the ring holds, with pops
 * and a peek burst between. */
static void batch_script(struct seed *s)
{
    op(s, FZ_OP_PUSH_BURST, 1, 6); /* reserve 1, commit it */
    put8(s, 1);
    op(s, FZ_OP_POP_BURST, 0, 4);
    put8(s, 40);
    op(s, FZ_OP_PUSH_BURST, 1, 6); /* reserve 3, commit 2 shorter */
    put8(s, 3);
    op(s, FZ_OP_PUSH_BURST, 1, 7); /* one, too long */
    put8(s, 1);
    op(s, FZ_OP_PUSH_BURST, 1, 7); /* three, the last too long */
    put8(s, 3);
    op(s, FZ_OP_RESERVE, 1, 0);
    op(s, FZ_OP_PUSH_BURST, 1, 6); /* while reserved */
    put8(s, 1);
    op(s, FZ_OP_COMMIT, 1, 0);
    put16(s, 7);
    op(s, FZ_OP_PUSH_BURST, 0, 6); /* wrong role */
    put8(s, 3);
    op(s, FZ_OP_POP_BURST, 0, 6); /* peek burst */
    put8(s, 40);
    op(s, FZ_OP_POP_BURST, 0, 4);
    put8(s, 40);
    op(s, FZ_OP_PUSH_BURST, 1, 6); /* reserve 5, commit all */
    put8(s, 5);
    op(s, FZ_OP_PUSH_BURST, 1, 6); /* 65: more than the ring holds */
    put8(s, 65);
    op(s, FZ_OP_STAT, 1, 0);
}

static void coalesce_script(struct seed *s)
{
    op(s, FZ_OP_WAIT, 0, 0);
    op(s, FZ_OP_REQUEST, 1, 0);
    op(s, FZ_OP_DONE, 0, 0);
    op(s, FZ_OP_WAIT, 0, 0);
    op(s, FZ_OP_DONE, 0, 1);
    put8(s, 1);
    op(s, FZ_OP_DONE, 0, 0);
    op(s, FZ_OP_STAT, 0, 0);
    op(s, FZ_OP_STAT, 1, 0);
}

/* Plausible scribbles: offsets and lengths near their limits. */
static void peer_script(struct seed *s, int coalesce)
{
    if (coalesce) {
        op(s, FZ_OP_SCRIBBLE, 0, 1);
        put8(s, 5); /* req */
        put32(s, 2);
        coalesce_script(s);
        op(s, FZ_OP_SCRIBBLE, 0, 0);
        put8(s, 7); /* work.done */
        put32(s, 0x7fffffff);
        coalesce_script(s);
        return;
    }
    op(s, FZ_OP_SCRIBBLE, 0, 2);
    put8(s, 11); /* write_offset */
    put32(s, 3);
    op(s, FZ_OP_PEEK, 0, 0);
    op(s, FZ_OP_SCRIBBLE, 0, 3);
    put8(s, 25); /* slot 0's length word */
    put32(s, 1);
    op(s, FZ_OP_RELEASE, 0, 0);
    op(s, FZ_OP_SCRIBBLE, 0, 2);
    put8(s, 12); /* read_offset */
    put32(s, 5);
    queue_script(s);
    op(s, FZ_OP_RAW, 0, 0);
    put16(s, 64);
    put32(s, 0);
    op(s, FZ_OP_OPEN, 1, 0);
    put8(s, 0); /* producer */
    op(s, FZ_OP_PUSH_BURST, 1, 0);
    put8(s, 9);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    snprintf(name, sizeof name, "seed.%ld", (long)getpid());
    static unsigned char image[65536];
    static struct seed s;

    const struct {
        const char *file;
        unsigned kind;
        uint32_t count, size, flags;
        unsigned turns, keep;
    } queues[] = {
        {"spsc-4x32-three", FZ_SPSC, 4, 32, 0, 0, 3},
        {"spsc-1x1-full", FZ_SPSC, 1, 1, 0, 1, 1},
        {"spsc-8x100-wrapped", FZ_SPSC, 8, 100, 0, 11, 6},
        {"spsc-16x8-fences-empty", FZ_SPSC, 16, 8, RQ_FULL_FENCES, 5, 0},
        {"mpsc-4x16-two", FZ_MPSC, 4, 16, RQ_MPSC, 2, 2},
        {"mpsc-3x64-full", FZ_MPSC, 3, 64, RQ_MPSC, 4, 3},
    };
    for (size_t i = 0; i < sizeof queues / sizeof *queues; i++) {
        size_t n = make_queue(queues[i].count, queues[i].size, queues[i].flags, queues[i].turns,
                              queues[i].keep, image, sizeof image);
        /* A: consumer, B: producer, as the scripts expect. */
        head(&s, queues[i].kind, 2, 1, 0, 0, queues[i].count, queues[i].size, (uint32_t)n);
        put(&s, image, n);
        queue_script(&s);
        write_seed(dir, "fuzz_segment", queues[i].file, &s);

        unsigned fill = queues[i].keep | (queues[i].turns % 8) << 5;
        head(&s, queues[i].kind, 2, 1, queues[i].flags & RQ_FULL_FENCES ? FZ_CFG_FENCES : 0, fill,
             queues[i].count, queues[i].size, 0);
        peer_script(&s, 0);
        write_seed(dir, "fuzz_peer", queues[i].file, &s);
    }

    /* Record queues (RQ_RECORDS): a ring of 256 bytes for records of up to
     * 100, wrapped (padding at its end) with 3 left; the head's count 13
     * and size 100 give that geometry (harness.h). */
    const struct {
        const char *file;
        unsigned kind;
        uint32_t flags;
    } records[] = {
        {"records-256x100-wrapped", FZ_SPSC, RQ_RECORDS},
        {"records-mpsc-256x100-wrapped", FZ_MPSC, RQ_RECORDS | RQ_MPSC},
    };
    for (size_t i = 0; i < sizeof records / sizeof *records; i++) {
        size_t n = make_queue(256, 100, records[i].flags, 9, 3, image, sizeof image);
        head(&s, records[i].kind, 2, 1, FZ_CFG_RECORDS, 0, 13, 100, (uint32_t)n);
        put(&s, image, n);
        queue_script(&s);
        write_seed(dir, "fuzz_segment", records[i].file, &s);
        head(&s, records[i].kind, 2, 1, FZ_CFG_RECORDS, 3 | 1 << 5, 13, 100, 0);
        peer_script(&s, 0);
        write_seed(dir, "fuzz_peer", records[i].file, &s);
    }

    /* Handles that spin before they sleep (FZ_CFG_SPIN): the consumer's
     * one waiting pop (variant 6) on an empty queue spins, then sleeps;
     * the peer's scribbles follow, for the fuzzer to move before it.  A
     * slot queue and a record queue. */
    head(&s, FZ_SPSC, 2, 1, FZ_CFG_SPIN, 0, 4, 32, 0);
    op(&s, FZ_OP_POP, 0, 6);
    put16(&s, 32);
    peer_script(&s, 0);
    write_seed(dir, "fuzz_peer", "spin-spsc-4x32", &s);
    head(&s, FZ_SPSC, 2, 1, FZ_CFG_RECORDS | FZ_CFG_SPIN, 0, 13, 100, 0);
    op(&s, FZ_OP_POP, 0, 6);
    put16(&s, 100);
    peer_script(&s, 0);
    write_seed(dir, "fuzz_peer", "spin-records-256x100", &s);

    /* The burst calls over two of the queues above. */
    for (size_t i = 0; i < sizeof queues / sizeof *queues; i += 4) {
        size_t n = make_queue(queues[i].count, queues[i].size, queues[i].flags, queues[i].turns,
                              queues[i].keep, image, sizeof image);
        char file[64];
        snprintf(file, sizeof file, "burst-%s", queues[i].file);
        head(&s, queues[i].kind, 2, 1, 0, 0, queues[i].count, queues[i].size, (uint32_t)n);
        put(&s, image, n);
        burst_script(&s);
        write_seed(dir, "fuzz_segment", file, &s);
        head(&s, queues[i].kind, 2, 1, 0, queues[i].keep, queues[i].count, queues[i].size, 0);
        op(&s, FZ_OP_SCRIBBLE, 0, 3);
        put8(&s, 25); /* slot 0's length word */
        put32(&s, 1u << 20);
        burst_script(&s);
        write_seed(dir, "fuzz_peer", file, &s);
    }

    /* rq_reserve_burst_len over a slot queue of each kind and both record
     * queues. */
    const struct {
        const char *file;
        unsigned kind;
        uint32_t count, size, flags;
        unsigned turns, keep, fz_count;
    } batches[] = {
        {"batch-spsc-4x32-three", FZ_SPSC, 4, 32, 0, 0, 3, 4},
        {"batch-mpsc-4x16-two", FZ_MPSC, 4, 16, RQ_MPSC, 2, 2, 4},
        {"batch-records-256x100-wrapped", FZ_SPSC, 256, 100, RQ_RECORDS, 9, 3, 13},
        {"batch-records-mpsc-256x100-wrapped", FZ_MPSC, 256, 100, RQ_RECORDS | RQ_MPSC, 9, 3, 13},
    };
    for (size_t i = 0; i < sizeof batches / sizeof *batches; i++) {
        size_t n = make_queue(batches[i].count, batches[i].size, batches[i].flags, batches[i].turns,
                              batches[i].keep, image, sizeof image);
        unsigned cfg = batches[i].flags & RQ_RECORDS ? FZ_CFG_RECORDS : 0;
        head(&s, batches[i].kind, 2, 1, cfg, 0, batches[i].fz_count, batches[i].size, (uint32_t)n);
        put(&s, image, n);
        batch_script(&s);
        write_seed(dir, "fuzz_segment", batches[i].file, &s);
        unsigned fill = batches[i].keep | (batches[i].turns % 8) << 5;
        head(&s, batches[i].kind, 2, 1, cfg, fill, batches[i].fz_count, batches[i].size, 0);
        batch_script(&s);
        write_seed(dir, "fuzz_peer", batches[i].file, &s);
    }

    /* A coalescing object with a round owed. */
    rq_coalesce_unlink(name);
    rq_coalesce *r;
    check("coalesce open", rq_coalesce_open(&r, name, RQ_PRODUCER, 0));
    check("request", rq_coalesce_request(r));
    rq_coalesce_close(r);
    size_t n = dump("rqc", image, sizeof image);
    rq_coalesce_unlink(name);
    head(&s, FZ_COALESCE, 2, 1, 0, 0, 1, 1, (uint32_t)n);
    put(&s, image, n);
    coalesce_script(&s);
    write_seed(dir, "fuzz_segment", "coalesce-owed", &s);
    head(&s, FZ_COALESCE, 2, 1, 0, 1, 1, 1, 0);
    peer_script(&s, 1);
    write_seed(dir, "fuzz_peer", "coalesce-owed", &s);

    /* An observer, and a creating open over a truncated object. */
    n = make_queue(2, 24, 0, 1, 1, image, sizeof image);
    head(&s, FZ_SPSC, 3, 0, 0, 0, 2, 24, (uint32_t)n);
    put(&s, image, n);
    op(&s, FZ_OP_STAT, 0, 0);
    op(&s, FZ_OP_PUSH, 0, 0);
    put16(&s, 1);
    write_seed(dir, "fuzz_segment", "observer-2x24", &s);
    head(&s, FZ_SPSC, 1, 2, FZ_CFG_A, 0, 2, 24, 64);
    s.bytes[8] = 100; /* object truncated to 100 bytes: magic and part of a header */
    put(&s, image, 64);
    queue_script(&s);
    write_seed(dir, "fuzz_segment", "truncated-create", &s);
    return 0;
}
