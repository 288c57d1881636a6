/*
 * rq_exactly_once - a consumer whose output holds every message exactly
 * once, however often it is killed.
 *
 *   rq_exactly_once QUEUE OUTPUT [COUNT]
 *
 * Appends one line "SEQ PAYLOAD\n" per message of QUEUE to OUTPUT, and
 * exits once the message numbered COUNT - 1 is in it (COUNT 0 or none: runs
 * until killed).  The recipe (docs/exactly-once.md):
 *
 *   1. The output carries the queue's sequence number of each message, so
 *      "what was processed" is stored atomically with the output itself:
 *      one write() of one whole line.
 *   2. At start, a torn last line (a kill in the middle of a write) is cut
 *      off, and the number of the last whole line is the last processed.
 *   3. Messages at or below it are released without output: they were
 *      processed by a life that died before releasing them.
 *
 * POSIX only (it uses write/ftruncate directly: the point is to show
 * exactly which step makes the output durable against a kill).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rq.h>

#define TAIL_MAX 4096 /* a line is far shorter: SEQ, space, payload */
#define PAYLOAD_MAX 1024

/* Cuts OUTPUT back to its last whole line and returns through *LAST the
 * number on that line (*HAVE_LAST = 0 when there is none). */
static int recover_output(int fd, uint64_t *last, int *have_last)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    char tail[TAIL_MAX + 1];
    off_t from = st.st_size > TAIL_MAX ? st.st_size - TAIL_MAX : 0;
    ssize_t n = pread(fd, tail, (size_t)(st.st_size - from), from);
    if (n < 0)
        return -1;
    tail[n] = '\0';
    char *end = strrchr(tail, '\n'); /* end of the last whole line */
    off_t keep = end ? from + (end - tail) + 1 : 0;
    if (keep != st.st_size && ftruncate(fd, keep) != 0)
        return -1;
    *have_last = 0;
    if (!end)
        return from == 0 ? 0 : -1; /* no newline in a long tail: not ours */
    *end = '\0';
    char *line = strrchr(tail, '\n');
    line = line ? line + 1 : tail;
    if (from > 0 && line == tail)
        return -1;
    *last = strtoull(line, NULL, 10);
    *have_last = 1;
    return 0;
}

/* One line, one write(): a kill leaves either nothing, the whole line, or
 * a torn line that recover_output cuts off next time. */
static int append_line(int fd, uint64_t seq, const void *msg, size_t len)
{
    char line[32 + PAYLOAD_MAX];
    if (len > PAYLOAD_MAX || memchr(msg, '\n', len))
        return -1;
    int head = snprintf(line, sizeof line, "%" PRIu64 " ", seq);
    memcpy(line + head, msg, len);
    line[head + len] = '\n';
    size_t total = (size_t)head + len + 1;
    return write(fd, line, total) == (ssize_t)total ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s QUEUE OUTPUT [COUNT]\n", argv[0]);
        return 2;
    }
    uint64_t count = argc == 4 ? strtoull(argv[3], NULL, 10) : 0;
    int fd = open(argv[2], O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    uint64_t last = 0;
    int have_last;
    if (fd < 0 || recover_output(fd, &last, &have_last) != 0) {
        fprintf(stderr, "%s: %s: cannot use it: %s\n", argv[0], argv[2], strerror(errno));
        return 1;
    }
    rq *q;
    int rc = rq_open(&q, argv[1], RQ_CONSUMER, NULL);
    if (rc != RQ_OK) {
        fprintf(stderr, "%s: %s: %s\n", argv[0], argv[1], rq_strerror(rc));
        return 1;
    }
    while (count == 0 || !have_last || last + 1 < count) {
        const void *msg;
        size_t len;
        rq_msg_info info;
        rc = rq_peek_info(q, &msg, &len, &info, RQ_INFINITE);
        if (rc != RQ_OK)
            break;
        if (!have_last || info.seq > last) { /* else: in the output already */
            if (append_line(fd, info.seq, msg, len) != 0) {
                fprintf(stderr, "%s: writing %s: %s\n", argv[0], argv[2], strerror(errno));
                rq_close(q);
                return 1;
            }
            last = info.seq;
            have_last = 1;
        }
        rc = rq_release(q);
        if (rc != RQ_OK)
            break;
    }
    rq_close(q);
    close(fd);
    if (rc != RQ_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], rq_strerror(rc));
        return 1;
    }
    return 0;
}
