/*
 * test_cpp.cpp - include/rq.hpp: the RAII handle, byte views, the
 * zero-copy guards, error codes and the throwing overloads.  Plain checks
 * that print what failed and exit 1 (they hold without NDEBUG too).
 */
#include "rq.hpp"

#include <array>
#include <cstdio>
#if __cplusplus >= 202002L && __has_include(<span>)
#include <span>
#endif
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <chrono>
#include <dirent.h>
#include <thread>
#include <unistd.h>
#include <vector>

static int failures;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                                   \
        }                                                                                 \
    } while (0)

static std::string fresh(const char *tag)
{
    static int n;
    std::string name = "cpp." + std::to_string(getpid()) + "." + std::to_string(++n) + "." + tag;
    rq_unlink(name.c_str());
    return name;
}

static const rq_config small = {4, 64, 0, 0};

static_assert(!std::is_copy_constructible_v<rqcpp::queue>, "a queue handle is move-only");
static_assert(std::is_nothrow_move_constructible_v<rqcpp::queue>, "moves never throw");
static_assert(!std::is_copy_constructible_v<rqcpp::reservation>, "reservations are move-only");

static void poll_handle_and_timeout()
{
    std::string name = fresh("poll");
    rqcpp::queue p = rqcpp::queue::create(name, RQ_PRODUCER, small);
    rqcpp::queue c = rqcpp::queue::open(name, RQ_CONSUMER);
    CHECK(c.poll_timeout() == RQ_ESTATE);
    rq_pollable h = c.poll_handle();
    CHECK(h != RQ_POLLABLE_NONE && c.poll_handle() == h);
    std::error_code ec;
    c.pop_string(0, ec);
    CHECK(ec.value() == RQ_EAGAIN); // arms
    CHECK(c.poll_timeout() > 0);
    rqcpp::queue::unlink(name);
}

static void push_pop_and_views()
{
    std::string name = fresh("basic");
    rqcpp::queue p = rqcpp::queue::create(name, RQ_PRODUCER, small);
    rqcpp::queue c = rqcpp::queue::open(name, RQ_CONSUMER);
    CHECK(p && c);
    p.push("hello");                             // C string: no NUL
    p.push(std::string("world"));                // std::string
    p.push(std::vector<unsigned char>{1, 2, 3}); // any contiguous container
    std::array<uint16_t, 2> two = {0x0102, 0x0304};
    p.push(two); // 4 bytes
    CHECK(p.stat().depth == 4);
    CHECK(c.pop_string(0) == "hello");
    char buf[64];
    std::size_t n = c.pop(rqcpp::mutable_bytes(buf, sizeof buf), 0);
    CHECK(std::string_view(buf, n) == "world");
    std::vector<unsigned char> v(64);
    CHECK(c.pop(v, 0) == 3 && v[0] == 1 && v[2] == 3);
    CHECK(c.pop(v, 0) == 4 && std::memcmp(v.data(), two.data(), 4) == 0);
    rqcpp::queue::unlink(name);
}

static void error_codes_and_exceptions()
{
    std::string name = fresh("errors");
    std::error_code ec;
    rqcpp::queue none = rqcpp::queue::open(name, RQ_CONSUMER, ec);
    CHECK(!none && ec == RQ_ENOENT);
    CHECK(ec.category() == rqcpp::category() && std::strcmp(ec.category().name(), "rq") == 0);
    CHECK(ec == std::errc::no_such_file_or_directory);
    CHECK(ec.message() == rq_strerror(RQ_ENOENT));
    std::error_code from_enum = RQ_EBUSY; // rq_error is an error-code enum
    CHECK(from_enum.value() == RQ_EBUSY && from_enum.category() == rqcpp::category());

    rqcpp::queue c = rqcpp::queue::create(name, RQ_CONSUMER, small);
    c.pop_string(0, ec);
    CHECK(ec == RQ_EAGAIN);
    c.pop_string(10, ec);
    CHECK(ec == RQ_ETIMEDOUT && ec == std::errc::timed_out);
    c.interrupt(); // the next wait ends at once
    c.pop_string(5000, ec);
    CHECK(ec == RQ_EINTR && ec == std::errc::interrupted);
    c.set_spin_us(RQ_SPIN_US_MAX + 1, ec); // refused: more than a second
    CHECK(ec == RQ_EINVAL && ec == std::errc::invalid_argument);
    c.set_spin_us(1000); // a spin of 1 ms, then the sleep: the same timeout
    c.pop_string(10, ec);
    CHECK(ec == RQ_ETIMEDOUT);
    bool spin_threw = false;
    try {
        c.set_spin_us(UINT32_MAX);
    } catch (const rqcpp::error &e) {
        spin_threw = e.code() == RQ_EINVAL && std::strstr(e.what(), "rq_set_spin_us") != nullptr;
    }
    CHECK(spin_threw);
    c.set_spin_us(0);

    bool threw = false;
    try {
        rqcpp::queue second = rqcpp::queue::open(name, RQ_CONSUMER); // role held
    } catch (const rqcpp::error &e) {
        threw = e.code() == RQ_EBUSY && std::strstr(e.what(), "rq_open") != nullptr;
    }
    CHECK(threw);
    threw = false;
    try {
        c.push("not a producer");
    } catch (const std::system_error &e) { // rqcpp::error is a std::system_error
        threw = e.code() == RQ_EROLE;
    }
    CHECK(threw);

    rqcpp::queue p = rqcpp::queue::open(name, RQ_PRODUCER);
    std::string big(65, 'x');
    p.push(big, 0, ec);
    CHECK(ec == RQ_EMSGSIZE);
    for (int i = 0; i < 4; ++i)
        p.push("x", 0, ec);
    CHECK(!ec);
    p.push("x", 0, ec);
    CHECK(ec == RQ_EAGAIN);
    rqcpp::queue::unlink(name);
}

static void raii_closes_and_moves()
{
    std::string name = fresh("raii");
    // Keeps the queue in existence on Windows, where it goes with its
    // last handle; takes no role.
    rqcpp::queue observer = rqcpp::queue::create(name, RQ_OBSERVER, small);
    {
        rqcpp::queue p = rqcpp::queue::open(name, RQ_PRODUCER);
        rqcpp::queue moved = std::move(p);
        CHECK(!p && moved); // NOLINT: moved-from is empty by contract
        rqcpp::queue other;
        other = std::move(moved);
        CHECK(other && !moved);
        CHECK(other.stat().producer_live == 1);
    } // closed here: the role is free again
    std::error_code ec;
    rqcpp::queue again = rqcpp::queue::open(name, RQ_PRODUCER, ec);
    CHECK(!ec && again);
    again.close();
    CHECK(!again);
    rqcpp::queue::unlink(name, ec); // Windows: the queue went with its last handle
}

static void reservation_commits_or_aborts()
{
    std::string name = fresh("reserve");
    rqcpp::queue p = rqcpp::queue::create(name, RQ_PRODUCER, small);
    rqcpp::queue c = rqcpp::queue::open(name, RQ_CONSUMER);
    {
        rqcpp::reservation r = p.reserve(0);
        CHECK(r.active() && r.size() == 64);
        std::memcpy(r.data(), "abandoned", 9);
    } // destroyed without commit: nothing published
    CHECK(p.stat().depth == 0);
    std::error_code ec;
    c.peek(0, ec);
    CHECK(ec == RQ_EAGAIN);
    {
        rqcpp::reservation r = p.reserve(0);
        std::memcpy(r.data(), "kept", 4);
        r.commit(65, ec); // too long: reservation kept
        CHECK(ec == RQ_EMSGSIZE && r.active());
        r.commit(4);
        CHECK(!r.active());
        r.commit(4, ec); // twice: out of sequence
        CHECK(ec == RQ_ESTATE);
    }
    {
        rqcpp::peeked m = c.peek(0);
        CHECK(m.str() == "kept");
    } // not released: still there
    rqcpp::peeked m = c.peek(0);
    CHECK(m.str() == "kept" && c.stat().depth == 1);
    m.release();
    CHECK(!m.active() && c.stat().depth == 0);
    bool threw = false;
    try {
        m.release();
    } catch (const rqcpp::error &e) {
        threw = e.code() == RQ_ESTATE;
    }
    CHECK(threw);
    rqcpp::queue::unlink(name);
}

/* A record queue: a reservation of the length asked for. */
static void record_queue_reserve_len()
{
    std::string name = fresh("records");
    rq_config cfg = {256, 100, RQ_RECORDS, 0};
    rqcpp::queue p = rqcpp::queue::create(name, RQ_PRODUCER, cfg);
    rqcpp::queue c = rqcpp::queue::open(name, RQ_CONSUMER);
    std::error_code ec;
    p.reserve_len(101, 0, ec);
    CHECK(ec == RQ_EMSGSIZE);
    rqcpp::reservation r = p.reserve_len(5, 0);
    CHECK(r.active() && r.size() == 5);
    std::memcpy(r.data(), "hello", 5);
    r.commit(5);
    rqcpp::peeked m = c.peek(0);
    CHECK(m.str() == "hello" && (c.stat().flags & RQ_RECORDS));
    m.release();
    // A batch with a length each: the guard's room is that length.
    const std::size_t lens[3] = {3, 40, 100};
    {
        rqcpp::reserved_burst b = p.reserve_burst_len(lens, 3, 0);
        CHECK(b.size() == 3 && b[0].size() == 3 && b[2].size() == 100);
        std::memcpy(b.next().data(), "one", 3);
        CHECK(b.fill(3));
        CHECK(!b.fill(41)); // over its room: not recorded
        std::memcpy(b.next().data(), "two", 3);
        CHECK(b.fill(3)); // shorter than reserved: packed at the commit
    }                     // commits the two filled, drops the third
    CHECK(c.stat().depth == 2);
    CHECK(c.pop_string(0) == "one" && c.pop_string(0) == "two");
    const std::size_t too_long[1] = {101};
    p.reserve_burst_len(too_long, 1, 0, ec);
    CHECK(ec == RQ_EMSGSIZE);
    rqcpp::queue::unlink(name);
}

/* The README's C snippet style, in C++17: no designated initialisers. */
static void readme_style_config()
{
    std::string name = fresh("readme");
    rq_config cfg = {1024, 256, 0, 0}; /* slot_count, slot_size, flags, mode */
    rq *q = nullptr;
    CHECK(rq_open(&q, name.c_str(), RQ_PRODUCER, &cfg) == RQ_OK);
    rqcpp::queue owned(q); // adopts the C handle
    CHECK(owned.native_handle() == q && owned.stat().slot_count == 1024);
    rqcpp::queue::unlink(name);
}

/* Bursts: push_burst / pop_burst copy a batch each way; reserve_burst
 * commits what was filled when it goes (or nothing, aborted); peek_burst
 * releases what is left when it goes, unless kept. */
static void bursts()
{
    std::string name = fresh("burst");
    rq_config cfg = {8, 16, 0, 0};
    rqcpp::queue p = rqcpp::queue::create(name, RQ_PRODUCER, cfg);
    rqcpp::queue c = rqcpp::queue::open(name, RQ_CONSUMER);
    std::vector<std::string> words = {"a", "bb", "ccc"};
    CHECK(p.push_burst(words, 0) == 3);
    std::array<char, 4 * 16> buf{};
    std::array<std::size_t, 4> lens{};
    std::size_t n = c.pop_burst(buf, 16, lens, 0);
    CHECK(n == 3 && lens[0] == 1 && lens[1] == 2 && lens[2] == 3);
    CHECK(std::string_view(buf.data() + 16, lens[1]) == "bb");
    std::error_code ec;
    CHECK(c.pop_burst(buf, 16, lens, 0, ec) == 0 && ec == RQ_EAGAIN);
    CHECK(p.push_burst({"d", std::string("ee")}, 0) == 2); // a braced list
    CHECK(c.pop_burst(buf, 16, lens, 0) == 2 && lens[1] == 2);
    std::vector<std::string> too_many(10, "x");
    CHECK(p.push_burst(too_many, 0) == 8); // the ring's worth
    CHECK(p.push_burst(words, 0, ec) == 0 && ec == RQ_EAGAIN);
    std::array<std::size_t, 8> lens8{};
    std::array<char, 8 * 16> buf8{};
    CHECK(c.pop_burst(buf8, 16, lens8, 0) == 8);

    {
        rqcpp::reserved_burst b = p.reserve_burst(4, 0);
        CHECK(b.active() && b.size() == 4 && b[0].size() == 16);
        std::memcpy(b.next().data(), "one", 3);
        CHECK(b.fill(3));
        std::memcpy(b.next().data(), "two", 3);
        CHECK(b.fill(3));
        CHECK(!b.fill(17)); // over slot_size: not recorded
        CHECK(b.filled() == 2);
    } // commits the two filled
    CHECK(p.stat().depth == 2);
    {
        rqcpp::reserved_burst b = p.reserve_burst(2, 0);
        std::memcpy(b.next().data(), "gone", 4);
        CHECK(b.fill(4));
        b.abort(); // nothing published
        CHECK(!b.active());
    }
    {
        rqcpp::reserved_burst b = p.reserve_burst(2, 0);
    } // none filled: dropped, and the next reserve works
    CHECK(p.stat().depth == 2);
    {
        rqcpp::reserved_burst b = p.reserve_burst(1, 0);
        std::memcpy(b.next().data(), "three", 5);
        b.fill(5);
        b.commit();
        CHECK(!b.active());
        b.commit(ec);
        CHECK(ec == RQ_ESTATE);
    }

    {
        rqcpp::peeked_burst m = c.peek_burst(8, 0);
        CHECK(m.size() == 3 && m.bytes(0).str() == "one" && m[2].len == 5);
        CHECK(m[0].seq + 1 == m[1].seq && m[0].flags == 0);
        m.keep(); // left in the queue
    }
    CHECK(c.stat().depth == 3);
    {
        rqcpp::peeked_burst m = c.peek_burst(8, 0);
        CHECK(m.size() == 3);
        m.release(1); // the oldest, early
        CHECK(m.size() == 2 && m.bytes(0).str() == "two");
        std::size_t seen = 0;
        for (const rq_msg_view &v : m)
            seen += v.len;
        CHECK(seen == 8);
    } // releases the other two
    CHECK(c.stat().depth == 0);
    c.peek_burst(8, 0, ec);
    CHECK(ec == RQ_EAGAIN);
#ifdef __cpp_lib_span
    // C++20: std::span in and out.
    std::array<rqcpp::const_bytes, 2> two = {rqcpp::const_bytes("s1"), rqcpp::const_bytes("s2")};
    CHECK(p.push_burst(std::span<const rqcpp::const_bytes>(two), 0) == 2);
    std::span<std::size_t> lens_span(lens);
    CHECK(c.pop_burst(std::span<char>(buf), 16, lens_span, 0) == 2 && lens[1] == 2);
    {
        rqcpp::reserved_burst b = p.reserve_burst(1, 0);
        std::span<std::byte> slot = b.next().span();
        slot[0] = std::byte{'z'};
        b.fill(1);
    }
    {
        rqcpp::peeked_burst m = c.peek_burst(4, 0);
        std::span<const rq_msg_view> views = m.views();
        CHECK(views.size() == 1 && m.bytes(0).span()[0] == std::byte{'z'});
    }
    CHECK(c.stat().depth == 0);
#endif
    rqcpp::queue::unlink(name);
}

/* Each test unlinks what it made: nothing of this run's queues (segment,
 * lock object, poll files) may stay in /dev/shm. */
static void nothing_left_behind()
{
    std::string mine = "cpp." + std::to_string(getpid()) + ".";
    DIR *dir = opendir("/dev/shm");
    if (!dir)
        return;
    for (dirent *e; (e = readdir(dir)) != nullptr;) {
        if (std::strstr(e->d_name, mine.c_str())) {
            std::fprintf(stderr, "test_cpp: left behind: /dev/shm/%s\n", e->d_name);
            ++failures;
        }
    }
    closedir(dir);
}

// Numbers consecutive from 0, the redelivery flag after a consumer closed
// holding a peek (pop and peek forms), next_seq on both sides.
static void sequence_numbers()
{
    std::string name = fresh("seq");
    rqcpp::queue p = rqcpp::queue::create(name, RQ_PRODUCER, small);
    std::error_code ec;
    {
        rqcpp::queue c = rqcpp::queue::open(name, RQ_CONSUMER);
        CHECK(p.next_seq() == 0 && c.next_seq() == 0);
        char buf[64];
        for (unsigned i = 0; i < 10; ++i) { // past the ring's 4 slots
            std::string m = "m" + std::to_string(i);
            p.push(m);
            CHECK(p.next_seq() == i + 1);
            if (i % 2) {
                rqcpp::message_info info{99, true};
                std::size_t n = c.pop(buf, info, 0);
                CHECK(std::string(buf, n) == m && info.seq == i && !info.redelivered);
            } else {
                rqcpp::peeked pk = c.peek(0);
                CHECK(pk.str() == m && pk.seq() == i && !pk.redelivered());
                CHECK(pk.info().seq == i);
                pk.release();
            }
            CHECK(c.next_seq() == i + 1);
        }
        rqcpp::message_info info;
        c.pop(buf, info, 0, ec);
        CHECK(ec == RQ_EAGAIN);
        p.push(std::string("held"));
        p.push(std::string("after"));
        rqcpp::peeked pk = c.peek(0);
        CHECK(pk.seq() == 10 && !pk.redelivered());
    } // closed holding the peek: handed out, not released
    rqcpp::queue c = rqcpp::queue::open(name, RQ_CONSUMER);
    rqcpp::peeked again = c.peek(0);
    CHECK(again.str() == "held" && again.seq() == 10 && again.redelivered());
    again = rqcpp::peeked();
    c.close();
    c = rqcpp::queue::open(name, RQ_CONSUMER);
    char buf[64];
    rqcpp::message_info info;
    std::size_t n = c.pop(buf, info, 0);
    CHECK(std::string(buf, n) == "held" && info.seq == 10 && info.redelivered);
    n = c.pop(buf, info, 0);
    CHECK(std::string(buf, n) == "after" && info.seq == 11 && !info.redelivered);
    rqcpp::queue o = rqcpp::queue::open(name, RQ_OBSERVER);
    o.next_seq(ec);
    CHECK(ec == RQ_EROLE);
    CHECK(!o.stat_records(ec) && !ec); // a slot queue: no record statistics
    CHECK(!o.dump_records([](const rq_record_entry &) { return true; }, ec));
    CHECK(ec == RQ_EINVAL);
    rqcpp::queue::unlink(name);
}

static void open_wait_and_record_stats()
{
    std::string name = fresh("wait");
    std::error_code ec;
    auto t0 = std::chrono::steady_clock::now();
    rqcpp::queue none = rqcpp::queue::open_wait(name, RQ_CONSUMER, 200, ec);
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(ec == RQ_ENOENT && !none);
    CHECK(took >= std::chrono::milliseconds(150) && took < std::chrono::seconds(5));
    rq_config cfg = {256, 100, RQ_RECORDS, 0};
#ifndef _WIN32
    auto create = [&] {
        rqcpp::queue p = rqcpp::queue::create(name, RQ_PRODUCER, cfg);
        p.push(std::string("hello"));
    };
    // Created while open_wait waits (a thread of this process).
    std::thread creator([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        create();
    });
    t0 = std::chrono::steady_clock::now();
    rqcpp::queue c = rqcpp::queue::open_wait(name, RQ_CONSUMER, 10000);
    took = std::chrono::steady_clock::now() - t0;
    creator.join();
    CHECK(c && took >= std::chrono::milliseconds(150));
#else
    // mingw-w64's default (win32) thread model has no std::thread: the
    // queue exists before the wait here, and the C tests cover a queue
    // created during one.
    // Windows removes a queue with its last handle: the creator stays
    // open until the consumer has it, then gives the producer's role up.
    rqcpp::queue c;
    {
        rqcpp::queue creator = rqcpp::queue::create(name, RQ_PRODUCER, cfg);
        creator.push(std::string("hello"));
        c = rqcpp::queue::open_wait(name, RQ_CONSUMER, 10000);
    }
    CHECK(c);
#endif
    std::optional<rq_record_stats> st = c.stat_records();
    CHECK(st && st->capacity == 256 && st->max_record == 100 && st->records == 1);
    CHECK(st && st->payload_bytes == 5);
    CHECK(c.pop_string(0) == "hello");
    st = c.stat_records();
    CHECK(st && st->records == 0);
    // dump_records: every record, oldest first, none consumed; stopped by FN.
    rqcpp::queue p = rqcpp::queue::open(name, RQ_PRODUCER);
    p.push_burst(std::vector<std::string>{"ab", "cde", "fghi"});
    std::string seen;
    CHECK(c.dump_records([&](const rq_record_entry &e) {
        seen += std::to_string(e.seq) + ":" +
                std::string(static_cast<const char *>(e.data), e.len) + " ";
        return true;
    }));
    CHECK(seen == "1:ab 2:cde 3:fghi ");
    int calls = 0;
    std::error_code ec2;
    CHECK(!c.dump_records([&](const rq_record_entry &) { return ++calls < 2; }, ec2));
    CHECK(calls == 2 && !ec2);
    bool thrown = false;
    try {
        c.dump_records([](const rq_record_entry &) -> bool { throw std::runtime_error("stop"); });
    } catch (const std::runtime_error &) {
        thrown = true;
    }
    CHECK(thrown && c.stat_records().value().records == 3);
    CHECK(c.pop_string(0) == "ab");
    rqcpp::queue::unlink(name);
}

int main()
{
    push_pop_and_views();
    poll_handle_and_timeout();
    error_codes_and_exceptions();
    raii_closes_and_moves();
    reservation_commits_or_aborts();
    readme_style_config();
    record_queue_reserve_len();
    bursts();
    sequence_numbers();
    open_wait_and_record_stats();
    nothing_left_behind();
    if (failures) {
        std::fprintf(stderr, "test_cpp: %d check(s) failed\n", failures);
        return 1;
    }
    std::puts("test_cpp: ok");
    return 0;
}
