/*
 * rq_refresh_service - a "refresh" worker on a coalescing object.
 *
 *   rq_refresh_service NAME [WORK_MS]
 *
 * Any number of processes ask for a refresh (see rq_refresh); this service
 * does the work.  Requests that arrive while nothing runs are served by one
 * round; requests that arrive during a round cause exactly one more round.
 * Kill it in the middle of a round (the work takes WORK_MS, default 2000)
 * and start it again: the round it did not finish is still owed, and it
 * runs again at once.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rq.h"

#ifdef _WIN32
#include <windows.h>
static void sleep_ms(long ms)
{
    Sleep((DWORD)ms);
}
#else
static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
#endif

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s NAME [WORK_MS]\n", argv[0]);
        return 2;
    }
    long work_ms = argc == 3 ? strtol(argv[2], NULL, 10) : 2000;
    rq_coalesce *c;
    int rc = rq_coalesce_open(&c, argv[1], RQ_WORKER, 0);
    if (rc != RQ_OK) {
        fprintf(stderr, "rq_coalesce_open %s: %s\n", argv[1], rq_strerror(rc));
        return 1;
    }
    rq_coalesce_stats st;
    rq_coalesce_stat(c, &st);
    printf("refresh service on %s%s%s\n", argv[1],
           st.takeovers ? " (took over from a dead worker)" : "",
           st.owed ? "; a refresh is owed" : "");
    fflush(stdout);
    for (;;) {
        uint64_t ticket;
        rc = rq_coalesce_wait(c, &ticket, RQ_INFINITE); /* sleeps until asked */
        if (rc != RQ_OK) {
            fprintf(stderr, "rq_coalesce_wait: %s\n", rq_strerror(rc));
            break;
        }
        rq_coalesce_stat(c, &st);
        printf("refreshing (round %llu; %llu requests so far, %llu wake-ups)...\n",
               (unsigned long long)st.rounds, (unsigned long long)st.requests,
               (unsigned long long)st.wakes);
        fflush(stdout);
        sleep_ms(work_ms); /* the work: idempotent, so a crash here just redoes it */
        rc = rq_coalesce_done(c, ticket);
        if (rc != RQ_OK) {
            fprintf(stderr, "rq_coalesce_done: %s\n", rq_strerror(rc));
            break;
        }
        printf("refreshed\n");
        fflush(stdout);
    }
    rq_coalesce_close(c);
    return 1;
}
