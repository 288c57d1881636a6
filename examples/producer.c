/*
 * rq_producer - sends numbered lines into a queue, one every INTERVAL ms.
 *
 *   rq_producer NAME [INTERVAL_MS]
 *
 * Run rq_consumer NAME in another terminal; kill either one (Ctrl-C,
 * kill -9) and start it again: nothing is lost.  The numbering continues
 * from the queue's own "pushed" counter, so a restarted producer carries on
 * where the dead one stopped.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rq.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s NAME [INTERVAL_MS]\n", argv[0]);
        return 2;
    }
    long interval_ms = argc == 3 ? strtol(argv[2], NULL, 10) : 500;
    rq_config cfg = {.slot_count = 16, .slot_size = 256};
    rq *q;
    int rc = rq_open(&q, argv[1], RQ_PRODUCER, &cfg);
    if (rc != RQ_OK) {
        fprintf(stderr, "rq_open %s: %s\n", argv[1], rq_strerror(rc));
        return 1;
    }
    rq_stats st;
    rq_stat(q, &st);
    printf("producer %ld on queue %s: %u slots, %u in the queue, %llu sent before%s\n",
           (long)getpid(), argv[1], st.slot_count, st.depth, (unsigned long long)st.pushed,
           st.producer_takeovers ? " (took over from a dead producer)" : "");
    for (unsigned long long seq = st.pushed;; seq++) {
        char msg[256];
        int len = snprintf(msg, sizeof msg, "message %llu from producer %ld", seq, (long)getpid());
        rc = rq_push(q, msg, (size_t)len, RQ_INFINITE); /* waits while full */
        if (rc != RQ_OK) {
            fprintf(stderr, "rq_push: %s\n", rq_strerror(rc));
            break;
        }
        printf("sent: %s\n", msg);
        fflush(stdout);
        struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    rq_close(q);
    return 1;
}
