/*
 * atomics.h - the one place rq touches atomic operations.
 *
 * C11 <stdatomic.h> where the compiler has it; Interlocked intrinsics for
 * MSVC.  Only naturally aligned 32- and 64-bit words are used, which are
 * lock-free on every target, so the same words work across processes.
 *
 * Tested by every suite; test_threads runs the threaded ones under
 * ThreadSanitizer (the tsan preset).
 */
#ifndef RQ_ATOMICS_H
#define RQ_ATOMICS_H

#include <stdint.h>

#if defined(_MSC_VER) && !defined(__clang__)
/* clang-format off */
#include <intrin.h>

typedef volatile long rq_atomic_u32;
typedef volatile __int64 rq_atomic_u64;

/* x86/x64: aligned loads are acquire and stores are release under MSVC's
 * volatile semantics (/volatile:ms); the interlocked calls are full barriers. */
static __forceinline uint32_t rq_load_relaxed_u32(rq_atomic_u32 *p) { return (uint32_t)*p; }
static __forceinline uint32_t rq_load_acquire_u32(rq_atomic_u32 *p) { return (uint32_t)*p; }
static __forceinline uint32_t rq_load_seq_u32(rq_atomic_u32 *p) { return (uint32_t)_InterlockedOr(p, 0); }
static __forceinline void rq_store_relaxed_u32(rq_atomic_u32 *p, uint32_t v) { *p = (long)v; }
static __forceinline void rq_store_release_u32(rq_atomic_u32 *p, uint32_t v) { *p = (long)v; }
static __forceinline void rq_store_seq_u32(rq_atomic_u32 *p, uint32_t v) { _InterlockedExchange(p, (long)v); }
static __forceinline uint32_t rq_fetch_add_u32(rq_atomic_u32 *p, uint32_t v) { return (uint32_t)_InterlockedExchangeAdd(p, (long)v); }
static __forceinline uint32_t rq_fetch_sub_u32(rq_atomic_u32 *p, uint32_t v) { return (uint32_t)_InterlockedExchangeAdd(p, -(long)v); }
static __forceinline uint32_t rq_exchange_u32(rq_atomic_u32 *p, uint32_t v) { return (uint32_t)_InterlockedExchange(p, (long)v); }
static __forceinline uint32_t rq_fetch_or_u32(rq_atomic_u32 *p, uint32_t v) { return (uint32_t)_InterlockedOr(p, (long)v); }
static __forceinline uint32_t rq_fetch_and_u32(rq_atomic_u32 *p, uint32_t v) { return (uint32_t)_InterlockedAnd(p, (long)v); }
static __forceinline int rq_cas_u32(rq_atomic_u32 *p, uint32_t *expected, uint32_t desired)
{
    long seen = _InterlockedCompareExchange(p, (long)desired, (long)*expected);
    if ((uint32_t)seen == *expected) return 1;
    *expected = (uint32_t)seen;
    return 0;
}
static __forceinline uint64_t rq_load_relaxed_u64(rq_atomic_u64 *p) { return (uint64_t)*p; }
static __forceinline uint64_t rq_load_acquire_u64(rq_atomic_u64 *p) { return (uint64_t)*p; }
static __forceinline void rq_store_relaxed_u64(rq_atomic_u64 *p, uint64_t v) { *p = (__int64)v; }
static __forceinline void rq_store_release_u64(rq_atomic_u64 *p, uint64_t v) { *p = (__int64)v; }
static __forceinline uint64_t rq_fetch_add_u64(rq_atomic_u64 *p, uint64_t v) { return (uint64_t)_InterlockedExchangeAdd64(p, (__int64)v); }
static __forceinline uint64_t rq_load_seq_u64(rq_atomic_u64 *p) { return (uint64_t)_InterlockedOr64(p, 0); }
static __forceinline uint64_t rq_exchange_u64(rq_atomic_u64 *p, uint64_t v) { return (uint64_t)_InterlockedExchange64(p, (__int64)v); }
static __forceinline int rq_cas_u64(rq_atomic_u64 *p, uint64_t *expected, uint64_t desired)
{
    __int64 seen = _InterlockedCompareExchange64(p, (__int64)desired, (__int64)*expected);
    if ((uint64_t)seen == *expected) return 1;
    *expected = (uint64_t)seen;
    return 0;
}
static __forceinline void rq_cpu_relax(void) { _mm_pause(); }
static __forceinline void rq_prefetch_write(const void *p) { _m_prefetchw(p); }
static __forceinline void rq_prefetch_read(const void *p) { _mm_prefetch((const char *)p, _MM_HINT_T0); }
/* MemoryBarrier() would need <windows.h>; these are <intrin.h>'s. */
#if defined(_M_X64)
static __forceinline void rq_fence_seq(void) { __faststorefence(); }
#elif defined(_M_IX86)
static __forceinline void rq_fence_seq(void) { _mm_mfence(); }
#else
#error "rq's MSVC atomics rely on x86/x64 volatile semantics (/volatile:ms)"
#endif
/* Keeps the compiler from moving memory accesses across it; no CPU fence. */
static __forceinline void rq_fence_compiler(void) { _ReadWriteBarrier(); }

/* clang-format on */
#else /* C11 */
#include <stdatomic.h>

typedef _Atomic uint32_t rq_atomic_u32;
typedef _Atomic uint64_t rq_atomic_u64;

/* clang-format off */
/* T is a type: it cannot be parenthesized. */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define RQ_ATOMIC_FN_(T, S)                                                    \
    static inline T rq_load_relaxed_##S(rq_atomic_##S *p)                      \
    { return atomic_load_explicit(p, memory_order_relaxed); }                  \
    static inline T rq_load_acquire_##S(rq_atomic_##S *p)                      \
    { return atomic_load_explicit(p, memory_order_acquire); }                  \
    static inline T rq_load_seq_##S(rq_atomic_##S *p)                          \
    { return atomic_load_explicit(p, memory_order_seq_cst); }                  \
    static inline void rq_store_relaxed_##S(rq_atomic_##S *p, T v)             \
    { atomic_store_explicit(p, v, memory_order_relaxed); }                     \
    static inline void rq_store_release_##S(rq_atomic_##S *p, T v)             \
    { atomic_store_explicit(p, v, memory_order_release); }                     \
    static inline void rq_store_seq_##S(rq_atomic_##S *p, T v)                 \
    { atomic_store_explicit(p, v, memory_order_seq_cst); }                     \
    static inline T rq_fetch_add_##S(rq_atomic_##S *p, T v)                    \
    { return atomic_fetch_add_explicit(p, v, memory_order_seq_cst); }          \
    static inline T rq_fetch_sub_##S(rq_atomic_##S *p, T v)                    \
    { return atomic_fetch_sub_explicit(p, v, memory_order_seq_cst); }          \
    static inline T rq_exchange_##S(rq_atomic_##S *p, T v)                     \
    { return atomic_exchange_explicit(p, v, memory_order_seq_cst); }           \
    static inline int rq_cas_##S(rq_atomic_##S *p, T *expected, T desired)     \
    { return atomic_compare_exchange_strong_explicit(                          \
          p, expected, desired, memory_order_seq_cst, memory_order_seq_cst); }
/* NOLINTEND(bugprone-macro-parentheses) */
/* clang-format on */

RQ_ATOMIC_FN_(uint32_t, u32)
RQ_ATOMIC_FN_(uint64_t, u64)
#undef RQ_ATOMIC_FN_

static inline uint32_t rq_fetch_or_u32(rq_atomic_u32 *p, uint32_t v)
{
    return atomic_fetch_or_explicit(p, v, memory_order_seq_cst);
}
static inline uint32_t rq_fetch_and_u32(rq_atomic_u32 *p, uint32_t v)
{
    return atomic_fetch_and_explicit(p, v, memory_order_seq_cst);
}

static inline void rq_fence_seq(void)
{
    atomic_thread_fence(memory_order_seq_cst);
}
/* Keeps the compiler from moving memory accesses across it; no CPU fence
 * (the other half of an asymmetric fence, see platform.h). */
static inline void rq_fence_compiler(void)
{
    atomic_signal_fence(memory_order_seq_cst);
}

/* One step of a spin-wait: tells the CPU (x86: pause) that we are spinning. */
static inline void rq_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    rq_fence_compiler();
#endif
}

/* A hint: bring the line at P into this core's cache for writing.  x86's
 * PREFETCHW in inline assembly, so that no -m flag is needed (a CPU
 * without it runs it as a no-op); elsewhere the compiler's builtin. */
static inline void rq_prefetch_write(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("prefetchw %0" ::"m"(*(const char *)p));
#else
    __builtin_prefetch(p, 1, 3);
#endif
}

/* A hint: bring the line at P into this core's cache for reading. */
static inline void rq_prefetch_read(const void *p)
{
    __builtin_prefetch(p, 0, 3);
}

#endif

/* The 32-bit word at P (4-aligned) in memory a peer writes, read exactly
 * once: a volatile load, so that the compiler cannot load it again after
 * the caller has checked the value (as the Linux kernel's READ_ONCE).
 * For a slot's length and a record's header, which the caller checks and
 * then uses: a second load could see what the peer wrote in between. */
static inline uint32_t rq_read_once_u32(const void *p)
{
    return *(const volatile uint32_t *)p;
}

/* A single-writer counter bump: a plain load and store, no locked
 * instruction, because only one process (or the lock holder) writes it. */
static inline void rq_counter_bump(rq_atomic_u64 *c)
{
    rq_store_relaxed_u64(c, rq_load_relaxed_u64(c) + 1);
}

/* rq_counter_bump by K. */
static inline void rq_counter_add(rq_atomic_u64 *c, uint64_t k)
{
    rq_store_relaxed_u64(c, rq_load_relaxed_u64(c) + k);
}

#endif /* RQ_ATOMICS_H */
