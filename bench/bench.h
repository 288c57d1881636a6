/*
 * bench.h - what the benchmark harness (rq_bench.c) and the transports
 * (transports.c) share.  Linux only.
 *
 * A transport moves messages one way from one or more senders to one
 * receiver ("a channel").  Throughput uses one channel; a ping-pong uses two
 * (ping: initiator -> echo, pong: echo -> initiator), or a transport's own
 * ping-pong when it carries no messages (the cache line, the raw futex).
 */
#ifndef RQ_BENCH_H
#define RQ_BENCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum bench_mode {
    MODE_BUSY = 0,  /* the waiting side spins on a non-blocking call */
    MODE_BLOCK = 1, /* the waiting side sleeps in the transport's wait */
    MODE_COUNT
};
#define MODE_BIT(m) (1u << (m))

#define BENCH_ERR_MAX 240

struct chan_params {
    size_t msg_size; /* every message is exactly this long */
    uint32_t slots;  /* queue depth asked for (transports may get less) */
    int senders;     /* processes that will open the sending side */
    enum bench_mode mode;
    const char *tag; /* unique per run: names of OS objects */
};

/* One direction of one transport, made by the parent before it forks. */
struct chan {
    const struct transport *t;
    struct chan_params p;
    char name[96]; /* name of the OS object, if it has one */
    int fd[2];     /* pipe / socketpair ends, -1 when unused */
    void *shm;     /* shared mapping made before fork */
    size_t shm_size;
    void *obj;      /* rq observer handle */
    uint32_t depth; /* the queue depth the transport really got */
    char note[96];  /* e.g. "depth 10 (system limit)" */
    char tag[64];   /* storage for p.tag */
};

/* One side's handle on a channel, opened in the child. */
struct endpoint {
    struct chan *c;
    int sender;
    int index; /* sender number */
    int fd;
    void *obj;          /* rq handle / Boost queue / mqd */
    long mq;            /* POSIX mqd_t */
    unsigned char *buf; /* receive buffer of copying transports */
    size_t cap;
    uint64_t own, peer_cache; /* minimal ring: own index, cached peer index */
    int spin_pause;           /* pauses after each busy poll that found nothing */
    uint32_t spin_us;         /* rq handles: rq_set_spin_us (--spin-us) */
    uint64_t idle;            /* busy polls that found nothing (no message, no room) */
};

/* N spin-wait hints (x86: pause; Arm: yield): rq_bench's and
 * rec_bench's --spin-pause. */
static inline void bench_pause(int n)
{
    for (int i = 0; i < n; i++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
    }
}

/* A busy wait's poll found nothing (no message to receive, no room to
 * send): counted, then EP->spin_pause pause instructions (--spin-pause; 0
 * by default: a plain spin) before the next poll.  The same in every
 * transport's busy loop, rq's, the reference rings' and the
 * alternatives' alike; only the cache line's ping-pong, the floor of a
 * round trip, is left as it is. */
static inline void bench_idle(struct endpoint *ep)
{
    ep->idle++;
    bench_pause(ep->spin_pause);
}

struct transport {
    const char *name;
    const char *group;     /* "limit", "rq", "alt", "layout" (not in "all") */
    const char *what;      /* one line for --list and the docs */
    int senders;           /* producers in a throughput run */
    unsigned tput_modes;   /* modes it can do, throughput */
    unsigned lat_modes;    /* modes it can do, round trip */
    unsigned default_tput; /* modes measured unless --tput-modes says */
    unsigned default_lat;  /* modes measured unless --lat-modes says */
    int in_place;          /* recv hands out the message where it lies */
    int available;         /* 0: not built here (Boost missing) */

    int (*create)(struct chan *c, char *err);
    void (*destroy)(struct chan *c);
    int (*open)(struct chan *c, struct endpoint *ep, int sender, int index, char *err);
    void (*close)(struct endpoint *ep);
    /* 0, or -1 with err set.  Busy mode spins inside. */
    int (*send)(struct endpoint *ep, const void *msg, size_t len, char *err);
    /* 0 with *msg, *len valid until recv_done, or -1 with err set. */
    int (*recv)(struct endpoint *ep, const void **msg, size_t *len, char *err);
    int (*recv_done)(struct endpoint *ep, char *err); /* NULL: nothing to do */

    /* Transports without messages: the whole ping-pong.  INITIATOR times
     * N round trips after WARMUP into SAMPLES (ticks, one per round trip). */
    int (*pingpong)(struct chan *c, int initiator, long warmup, long n, uint64_t *samples,
                    char *err);

    /* rq only: the library's own wait and wake counters (each one system
     * call), read through the parent's observer handle. */
    int (*counters)(struct chan *c, uint64_t *waits, uint64_t *wakes);

    /* Burst transports (throughput only): the sender hands over BURST
     * messages at a time, the receiver takes up to BURST at a time. */
    int burst;
    /* Sends all N messages MSGS[i] of LEN bytes, in order (busy mode
     * spins inside).  0, or -1 with err set. */
    int (*send_burst)(struct endpoint *ep, const void *const *msgs, size_t len, int n, char *err);
    /* Up to MAX messages: *N >= 1 of them in MSGS / LENS, valid until
     * recv_burst_done.  0, or -1 with err set. */
    int (*recv_burst)(struct endpoint *ep, const void **msgs, size_t *lens, int max, int *n,
                      char *err);
    int (*recv_burst_done)(struct endpoint *ep, int n, char *err); /* NULL: nothing to do */
};

/* Messages per batch of the burst transports. */
#define BENCH_BURST 32

/* The burst transports' operations (transports_burst.c). */
int bench_burst_recv_open(struct endpoint *ep, char *err);
int minring_send_burst(struct endpoint *ep, const void *const *msgs, size_t len, int n, char *err);
int minring_recv_burst(struct endpoint *ep, const void **msgs, size_t *lens, int max, int *n,
                       char *err);
int rq_send_push_burst(struct endpoint *ep, const void *const *msgs, size_t len, int n, char *err);
int rq_send_reserve_burst(struct endpoint *ep, const void *const *msgs, size_t len, int n,
                          char *err);
int rq_recv_pop_burst(struct endpoint *ep, const void **msgs, size_t *lens, int max, int *n,
                      char *err);
int rq_recv_peek_burst(struct endpoint *ep, const void **msgs, size_t *lens, int max, int *n,
                       char *err);
int rq_recv_release_burst(struct endpoint *ep, int n, char *err);

/* The MPSC baseline "Lamport ring + robust mutex per push"
 * (transports_mutex.c). */
int mutex_ring_create(struct chan *c, char *err);
void mutex_ring_destroy(struct chan *c);
int mutex_ring_open(struct chan *c, struct endpoint *ep, int sender, int index, char *err);
void mutex_ring_close(struct endpoint *ep);
int mutex_ring_send(struct endpoint *ep, const void *msg, size_t len, char *err);
int mutex_ring_recv(struct endpoint *ep, const void **msg, size_t *len, char *err);

/* The minimal ring's shared block (transports.c), for its burst form. */
#define BENCH_LINE 64
struct minring {
    _Alignas(BENCH_LINE) _Atomic uint64_t head; /* written by the producer */
    _Alignas(BENCH_LINE) _Atomic uint64_t tail; /* written by the consumer */
    _Alignas(BENCH_LINE) uint64_t capacity;     /* read-only after create */
    uint64_t stride;
    uint64_t payloads; /* min-ring-lens: where the payloads start, after the
                          array of lengths (4 bytes a slot); 0 otherwise */
};
#define MINRING_SLOTS(r) ((unsigned char *)(r) + 3 * BENCH_LINE)

/* The minimal ring's waits, the same for every slot layout and for its
 * bursts (transports.c, transports_burst.c): the producer waits for room
 * (the ring holds CAP, which the caller read once) and gets its position;
 * the consumer waits for a message and gets its position.  Inline: each
 * caller compiles to the loop it had, with no call. */
static inline uint64_t minring_wait_room(struct endpoint *ep, struct minring *r, uint64_t cap)
{
    uint64_t head = ep->own;
    while (head - ep->peer_cache == cap) {
        ep->peer_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head - ep->peer_cache == cap)
            bench_idle(ep);
    }
    return head;
}

static inline uint64_t minring_wait_message(struct endpoint *ep, struct minring *r)
{
    uint64_t tail = ep->own;
    while (tail == ep->peer_cache) {
        ep->peer_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail == ep->peer_cache)
            bench_idle(ep);
    }
    return tail;
}

extern const struct transport bench_transports[];
extern const size_t bench_transport_count;

/* A time stamp for round trips: the TSC on x86-64, the monotonic clock
 * elsewhere; bench_ticks_per_ns() converts. */
uint64_t bench_ticks(void);

/* Sets errno-based text into ERR: "WHAT: strerror". */
void bench_errno(char *err, const char *what);

/* Raises RLIMIT_MSGQUEUE as far as allowed (POSIX mq depth). */
void bench_raise_mq_limit(void);

#endif /* RQ_BENCH_H */
