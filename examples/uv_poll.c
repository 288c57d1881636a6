/*
 * rq_uv_poll - an rq queue in a libuv loop (uv_poll on rq_poll_handle's
 * descriptor), beside a libuv timer: how a libuv (or Node.js addon)
 * program consumes a queue without a thread of its own.  Linux.
 *
 *   rq_uv_poll NAME [COUNT]
 *
 * Consumes queue NAME (creating it if missing) and ends after COUNT
 * messages (default: never) or at "quit".
 *
 * The contract (rq.h, rq_poll_handle): pop with timeout 0 until RQ_EAGAIN
 * (which arms the descriptor), then let the loop wait, never longer than
 * rq_poll_timeout: the timer below re-arms itself with that bound, and its
 * callback drains the queue too.
 */
#define _GNU_SOURCE /* uv.h's pthread types */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "rq.h"

struct consumer {
    rq *q;
    uv_poll_t poll;
    uv_timer_t recheck;
    unsigned long count, limit;
};

static void stop(struct consumer *c)
{
    uv_poll_stop(&c->poll);
    uv_timer_stop(&c->recheck);
    uv_close((uv_handle_t *)&c->poll, NULL);
    uv_close((uv_handle_t *)&c->recheck, NULL);
}

static void recheck_cb(uv_timer_t *t);

/* Pops until RQ_EAGAIN, then bounds the next wait. */
static void drain(struct consumer *c)
{
    char buf[256];
    size_t len;
    int rc;
    while ((rc = rq_pop(c->q, buf, sizeof buf - 1, &len, 0)) == RQ_OK) {
        buf[len] = '\0';
        c->count++;
        if (strcmp(buf, "quit") == 0 || (c->limit && c->count >= c->limit)) {
            printf("done: %lu messages\n", c->count);
            stop(c);
            return;
        }
    }
    if (rc != RQ_EAGAIN) {
        fprintf(stderr, "rq_pop: %s\n", rq_strerror(rc));
        stop(c);
        return;
    }
    uv_timer_start(&c->recheck, recheck_cb, (uint64_t)rq_poll_timeout(c->q), 0);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct consumer *c = p->data;
    if (status < 0) {
        fprintf(stderr, "uv_poll: %s\n", uv_strerror(status));
        stop(c);
        return;
    }
    drain(c);
}

static void recheck_cb(uv_timer_t *t)
{
    drain(t->data);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s NAME [COUNT]\n", argv[0]);
        return 2;
    }
    struct consumer c = {.limit = argc == 3 ? strtoul(argv[2], NULL, 10) : 0};
    rq_config cfg = {.slot_count = 16, .slot_size = 256}; /* as rq_producer */
    rq_pollable fd;
    int rc = rq_open(&c.q, argv[1], RQ_CONSUMER, &cfg);
    if (rc == RQ_OK)
        rc = rq_poll_handle(c.q, &fd);
    if (rc != RQ_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], rq_strerror(rc));
        return 1;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_poll_init(loop, &c.poll, fd);
    uv_timer_init(loop, &c.recheck);
    c.poll.data = c.recheck.data = &c;
    uv_poll_start(&c.poll, UV_READABLE, poll_cb);
    drain(&c); /* the first RQ_EAGAIN arms the descriptor */
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    rq_close(c.q);
    return 0;
}
