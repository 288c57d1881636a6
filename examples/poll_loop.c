/*
 * rq_poll_loop - one epoll loop that waits on an rq queue, a Unix socket
 * and a timer at once: what a service with sockets, timers and queues
 * writes instead of a thread per queue.  Linux.
 *
 *   rq_poll_loop NAME SOCKET_PATH [SECONDS]
 *
 * Consumes queue NAME (creating it if missing), accepts connections on
 * the Unix socket SOCKET_PATH and echoes what they send, and prints a
 * line every second from a timerfd.  Ends after SECONDS (default: never)
 * or at "quit" on the queue.
 *
 * The queue's side of the loop is rq_poll_handle's contract: drain with
 * timeout 0 until RQ_EAGAIN (which arms the descriptor), then wait, never
 * longer than rq_poll_timeout.  Edge-triggered here; level works as well.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "rq.h"

enum { TAG_QUEUE = -1, TAG_LISTEN = -2, TAG_TIMER = -3 }; /* else: a client fd */

static int add(int ep, int fd, uint32_t events, int tag)
{
    struct epoll_event ev = {.events = events, .data.fd = tag};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int listen_unix(const char *path)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (s < 0 || strlen(path) >= sizeof a.sun_path)
        return -1;
    strcpy(a.sun_path, path);
    unlink(path);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0)
        return -1;
    return s;
}

static int timer_every_second(void)
{
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {{1, 0}, {1, 0}};
    if (t < 0 || timerfd_settime(t, 0, &its, NULL) != 0)
        return -1;
    return t;
}

/* Pops until RQ_EAGAIN: that last call arms the descriptor again.
 * Returns 1 on "quit", 0 to go on, -1 on an error. */
static int drain_queue(rq *q, unsigned long *count)
{
    char buf[256];
    size_t len;
    for (;;) {
        int rc = rq_pop(q, buf, sizeof buf - 1, &len, 0);
        if (rc == RQ_EAGAIN)
            return 0;
        if (rc != RQ_OK) {
            fprintf(stderr, "rq_pop: %s\n", rq_strerror(rc));
            return -1;
        }
        buf[len] = '\0';
        ++*count;
        printf("queue: %s\n", buf);
        if (strcmp(buf, "quit") == 0)
            return 1;
    }
}

static void serve_client(int ep, int fd)
{
    char buf[512];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            if (write(fd, buf, (size_t)n) < 0)
                break;
            continue;
        }
        if (n < 0 && errno == EAGAIN)
            return; /* edge-triggered: drained */
        break;      /* closed, or an error */
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s NAME SOCKET_PATH [SECONDS]\n", argv[0]);
        return 2;
    }
    long seconds = argc == 4 ? strtol(argv[3], NULL, 10) : -1;
    rq_config cfg = {.slot_count = 16, .slot_size = 256}; /* as rq_producer */
    rq *q;
    rq_pollable qfd;
    int rc = rq_open(&q, argv[1], RQ_CONSUMER, &cfg);
    if (rc == RQ_OK)
        rc = rq_poll_handle(q, &qfd);
    if (rc != RQ_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], rq_strerror(rc));
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int ls = listen_unix(argv[2]);
    int tfd = timer_every_second();
    if (ep < 0 || ls < 0 || tfd < 0 || add(ep, qfd, EPOLLIN | EPOLLET, TAG_QUEUE) != 0 ||
        add(ep, ls, EPOLLIN, TAG_LISTEN) != 0 || add(ep, tfd, EPOLLIN, TAG_TIMER) != 0) {
        perror("setup");
        return 1;
    }
    unsigned long messages = 0, ticks = 0;
    int done = drain_queue(q, &messages); /* arms the descriptor */
    while (done == 0) {
        struct epoll_event evs[16];
        int n = epoll_wait(ep, evs, 16, rq_poll_timeout(q));
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return 1;
        }
        if (n == 0) /* the bounded wait ended: look at the queue anyway */
            done = drain_queue(q, &messages);
        for (int i = 0; i < n && done == 0; i++) {
            int tag = evs[i].data.fd;
            if (tag == TAG_QUEUE) {
                done = drain_queue(q, &messages);
            } else if (tag == TAG_TIMER) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof expirations) == sizeof expirations)
                    ticks += expirations;
                printf("tick %lu: %lu messages so far\n", ticks, messages);
                if (seconds >= 0 && (long)ticks >= seconds)
                    done = 1;
            } else if (tag == TAG_LISTEN) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
                    if (add(ep, c, EPOLLIN | EPOLLET, c) != 0)
                        close(c);
            } else {
                serve_client(ep, tag);
            }
        }
        fflush(stdout);
    }
    printf("done: %lu messages, %lu ticks\n", messages, ticks);
    close(tfd);
    close(ls);
    unlink(argv[2]);
    close(ep);
    rq_close(q);
    return done < 0;
}
