/*
 * boost_mq.h - a C view of Boost.Interprocess message_queue for the
 * benchmark (boost_mq.cpp, built only when CMake finds Boost).
 *
 * Every call returns 0, 1 ("would block", for the try variants) or -1 with
 * the exception's text in ERR (BENCH_ERR_MAX bytes).
 */
#ifndef RQ_BENCH_BOOST_MQ_H
#define RQ_BENCH_BOOST_MQ_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bench_boost_mq bench_boost_mq;

/* The Boost version as "1.74" (static string). */
const char *bench_boost_version(void);

int bench_boost_mq_create(const char *name, unsigned depth, size_t msg_size, char *err);
int bench_boost_mq_open(bench_boost_mq **out, const char *name, char *err);
/* BLOCK: send()/receive(); else try_send()/try_receive(). */
int bench_boost_mq_send(bench_boost_mq *q, const void *msg, size_t len, int block, char *err);
int bench_boost_mq_recv(bench_boost_mq *q, void *buf, size_t cap, size_t *len, int block,
                        char *err);
void bench_boost_mq_close(bench_boost_mq *q);
void bench_boost_mq_remove(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* RQ_BENCH_BOOST_MQ_H */
