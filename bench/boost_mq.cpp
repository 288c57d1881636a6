// boost_mq.cpp - Boost.Interprocess message_queue behind the C calls of
// boost_mq.h.  Exceptions never cross into C: each becomes -1 and a text.

#include "boost_mq.h"

#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/version.hpp>

#include <cstdio>
#include <exception>
#include <new>

namespace bip = boost::interprocess;

struct bench_boost_mq {
    bip::message_queue queue;
    explicit bench_boost_mq(const char *name) : queue(bip::open_only, name) {}
};

namespace {

const int kErrMax = 240; // BENCH_ERR_MAX

int fail(char *err, const char *what, const std::exception &e)
{
    std::snprintf(err, kErrMax, "boost message_queue %s: %s", what, e.what());
    return -1;
}

} // namespace

extern "C" const char *bench_boost_version(void)
{
    static char text[16];
    std::snprintf(text, sizeof text, "%d.%d", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000);
    return text;
}

extern "C" int bench_boost_mq_create(const char *name, unsigned depth, size_t msg_size, char *err)
{
    try {
        bip::message_queue::remove(name);
        bip::message_queue queue(bip::create_only, name, depth, msg_size);
        return 0;
    } catch (const std::exception &e) {
        return fail(err, "create", e);
    }
}

extern "C" int bench_boost_mq_open(bench_boost_mq **out, const char *name, char *err)
{
    try {
        *out = new bench_boost_mq(name);
        return 0;
    } catch (const std::exception &e) {
        *out = nullptr;
        return fail(err, "open", e);
    }
}

extern "C" int bench_boost_mq_send(bench_boost_mq *q, const void *msg, size_t len, int block,
                                   char *err)
{
    try {
        if (block) {
            q->queue.send(msg, len, 0);
            return 0;
        }
        return q->queue.try_send(msg, len, 0) ? 0 : 1;
    } catch (const std::exception &e) {
        return fail(err, "send", e);
    }
}

extern "C" int bench_boost_mq_recv(bench_boost_mq *q, void *buf, size_t cap, size_t *len, int block,
                                   char *err)
{
    try {
        bip::message_queue::size_type got = 0;
        unsigned int priority = 0;
        if (block) {
            q->queue.receive(buf, cap, got, priority);
        } else if (!q->queue.try_receive(buf, cap, got, priority)) {
            return 1;
        }
        *len = got;
        return 0;
    } catch (const std::exception &e) {
        return fail(err, "receive", e);
    }
}

extern "C" void bench_boost_mq_close(bench_boost_mq *q)
{
    delete q;
}

extern "C" void bench_boost_mq_remove(const char *name)
{
    bip::message_queue::remove(name);
}
