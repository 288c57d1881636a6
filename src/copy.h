/*
 * copy.h - a message's copy into or out of the ring, without a call when
 * it is short.  A call to memcpy in the middle of a push or a pop makes
 * the call save the registers it needs afterwards (the handle, the
 * length) and costs the call and the library's dispatch on its size: for
 * a short message more than the copy itself.  Up to RQ_COPY_SHORT bytes,
 * two fixed-size moves copy the message instead, the second one ending at
 * its last byte (they overlap when the length is not a power of two), as
 * the C library's own copy does for short lengths.  OS-neutral; private
 * to src/.
 */
#ifndef RQ_COPY_H
#define RQ_COPY_H

#include <stddef.h>
#include <string.h>

/* The longest message copied without a call: a cache line. */
#define RQ_COPY_SHORT 64

#if defined(__GNUC__)
#define RQ_COPY_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define RQ_COPY_LIKELY(x) (x)
#endif

/* WIDTH bytes from S to D, and the WIDTH bytes ending at S + N to D + N
 * (N >= WIDTH).  WIDTH is a constant at every call: once inlined, the
 * compiler makes the copies moves, not calls. */
static inline void rq_copy_two(unsigned char *d, const unsigned char *s, size_t n, size_t width)
{
    memcpy(d, s, width);
    memcpy(d + n - width, s + n - width, width);
}

/* Copies N bytes from SRC to DST (which do not overlap) if N <=
 * RQ_COPY_SHORT, reading and writing nothing outside the N bytes of
 * either, and returns 1; returns 0, having copied nothing, for a longer
 * N (the caller copies it with a call).  The compares halve the lengths
 * at 16 first, so that 8 to 15 bytes take two of them and the test for
 * a long message is asked only of 32 bytes and more, where it is the
 * third, as it was when it came first.  Below 16 bytes, 8 to 15 are laid
 * out as the straight path into the caller's code after the copy, and 32
 * to 64 bytes above: each saves the jump back that the shorter lengths
 * take. */
static inline int rq_copy_if_short(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (n >= 16) {
        if (n >= 32) {
            if (!RQ_COPY_LIKELY(n <= RQ_COPY_SHORT))
                return 0;
            rq_copy_two(d, s, n, 32);
        } else {
            rq_copy_two(d, s, n, 16);
        }
    } else if (RQ_COPY_LIKELY(n >= 8)) { /* the straight path into what follows */
        rq_copy_two(d, s, n, 8);
    } else if (n >= 4) {
        rq_copy_two(d, s, n, 4);
    } else if (n > 0) { /* 1 to 3 bytes: the first, the middle, the last */
        unsigned char first = s[0], middle = s[n / 2], last = s[n - 1];
        d[0] = first;
        d[n / 2] = middle;
        d[n - 1] = last;
    }
    return 1;
}

/* Copies N <= RQ_COPY_SHORT bytes from SRC to DST (which do not overlap),
 * reading and writing nothing outside the N bytes of either. */
static inline void rq_copy_short(void *dst, const void *src, size_t n)
{
    (void)rq_copy_if_short(dst, src, n);
}

/* The copy of N bytes where rq_copy_if_short returned 0 (N longer than
 * RQ_COPY_SHORT), with a call.  The test of N is for the static analyzer
 * only (clang-tidy's): where it does not follow rq_copy_if_short into its
 * body, it takes a result of 0 for possible with any N, even with the N of
 * 0 that a NULL buffer comes with, and would report a memcpy from NULL. */
static inline void rq_copy_long(void *dst, const void *src, size_t n)
{
#ifdef __clang_analyzer__
    if (n <= RQ_COPY_SHORT)
        return;
#endif
    memcpy(dst, src, n);
}

/* Copies N bytes from SRC to DST (which do not overlap; either may be
 * NULL when N is 0): rq_copy_short's moves up to RQ_COPY_SHORT bytes,
 * memcpy beyond. */
static inline void rq_copy(void *dst, const void *src, size_t n)
{
    if (!rq_copy_if_short(dst, src, n))
        rq_copy_long(dst, src, n);
}

#endif /* RQ_COPY_H */
