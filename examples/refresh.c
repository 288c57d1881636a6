/*
 * rq_refresh - asks the refresh service for a refresh.
 *
 *   rq_refresh NAME [COUNT]
 *
 * Makes COUNT requests (default 1) as fast as it can.  The service wakes
 * only on the first one after it went idle; the rest coalesce into at most
 * one more round.  rq_coalesce_request never blocks, and never needs the
 * service to be running: a request made while no service runs is served
 * when one starts.
 */
#include <stdio.h>
#include <stdlib.h>

#include "rq.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s NAME [COUNT]\n", argv[0]);
        return 2;
    }
    long count = argc == 3 ? strtol(argv[2], NULL, 10) : 1;
    rq_coalesce *c;
    int rc = rq_coalesce_open(&c, argv[1], RQ_REQUESTER, 0);
    if (rc != RQ_OK) {
        fprintf(stderr, "rq_coalesce_open %s: %s\n", argv[1], rq_strerror(rc));
        return 1;
    }
    for (long i = 0; i < count; i++) {
        rc = rq_coalesce_request(c);
        if (rc != RQ_OK) {
            fprintf(stderr, "rq_coalesce_request: %s\n", rq_strerror(rc));
            rq_coalesce_close(c);
            return 1;
        }
    }
    rq_coalesce_stats st;
    rq_coalesce_stat(c, &st);
    printf("%ld requests made; service %s, %s; %llu requests and %llu rounds in all\n", count,
           st.worker_live ? "running" : "not running", st.owed ? "refresh owed" : "nothing owed",
           (unsigned long long)st.requests, (unsigned long long)st.rounds);
    rq_coalesce_close(c);
    return 0;
}
