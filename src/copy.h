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

/* WIDTH bytes from S to D, and the WIDTH bytes ending at S + N to D + N
 * (N >= WIDTH).  WIDTH is a constant at every call: once inlined, the
 * compiler makes the copies moves, not calls. */
static inline void rq_copy_two(unsigned char *d, const unsigned char *s, size_t n, size_t width)
{
    memcpy(d, s, width);
    memcpy(d + n - width, s + n - width, width);
}

/* Copies N <= RQ_COPY_SHORT bytes from SRC to DST (which do not overlap),
 * reading and writing nothing outside the N bytes of either. */
static inline void rq_copy_short(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (n >= 16) {
        if (n >= 32)
            rq_copy_two(d, s, n, 32);
        else
            rq_copy_two(d, s, n, 16);
    } else if (n >= 8) {
        rq_copy_two(d, s, n, 8);
    } else if (n >= 4) {
        rq_copy_two(d, s, n, 4);
    } else if (n > 0) { /* 1 to 3 bytes: the first, the middle, the last */
        unsigned char first = s[0], middle = s[n / 2], last = s[n - 1];
        d[0] = first;
        d[n / 2] = middle;
        d[n - 1] = last;
    }
}

/* Copies N bytes from SRC to DST (which do not overlap; either may be
 * NULL when N is 0): rq_copy_short's moves up to RQ_COPY_SHORT bytes,
 * memcpy beyond. */
static inline void rq_copy(void *dst, const void *src, size_t n)
{
    if (n <= RQ_COPY_SHORT)
        rq_copy_short(dst, src, n);
    else
        memcpy(dst, src, n);
}

#endif /* RQ_COPY_H */
