/*
 * rq_consumer - prints what arrives on a queue.
 *
 *   rq_consumer NAME [WORK_MS]
 *
 * Uses rq_peek + rq_release (at-least-once): the message is released only
 * after it was handled, so a consumer killed while handling it sees the
 * same message again when it is restarted.  WORK_MS simulates slow work.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "rq.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s NAME [WORK_MS]\n", argv[0]);
        return 2;
    }
    long work_ms = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
    rq_config cfg = {.slot_count = 16, .slot_size = 256};
    rq *q;
    int rc = rq_open(&q, argv[1], RQ_CONSUMER, &cfg);
    if (rc != RQ_OK) {
        fprintf(stderr, "rq_open %s: %s\n", argv[1], rq_strerror(rc));
        return 1;
    }
    rq_stats st;
    rq_stat(q, &st);
    printf("consumer %ld on queue %s: %u messages waiting%s\n", (long)getpid(), argv[1], st.depth,
           st.consumer_takeovers ? " (took over from a dead consumer)" : "");
    for (;;) {
        const void *msg;
        size_t len;
        rc = rq_peek(q, &msg, &len, RQ_INFINITE); /* waits while empty */
        if (rc != RQ_OK) {
            fprintf(stderr, "rq_peek: %s\n", rq_strerror(rc));
            break;
        }
        printf("got: %.*s\n", (int)len, (const char *)msg);
        fflush(stdout);
        struct timespec ts = {work_ms / 1000, (work_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        rq_release(q); /* only now is the slot free again */
    }
    rq_close(q);
    return 1;
}
