/*
 * rq.hpp - C++17 interface to rq, header-only over the C API of rq.h.
 *
 *   rqcpp::queue q = rqcpp::queue::create("orders", RQ_PRODUCER, {1024, 256, 0, 0});
 *   q.push("hello");                        // throws rqcpp::error on failure
 *   std::error_code ec;
 *   q.push(rqcpp::const_bytes(p, n), 0, ec);   // or reports it in ec
 *
 * The namespace is rqcpp: in C++ the C handle type `rq` (rq.h) already
 * takes the name rq.
 *
 * Every call comes twice: one overload takes a std::error_code& and is
 * noexcept, the other throws rqcpp::error (a std::system_error whose code()
 * is in rqcpp::category()).  Codes compare with rq_error values directly
 * (ec == RQ_ETIMEDOUT) and with the std::errc they correspond to
 * (ec == std::errc::timed_out).
 *
 * Bursts (up to rqcpp::burst_max messages a call, one publish each):
 *   q.push_burst(std::vector<std::string>{"a", "b"});   // how many went
 *   { auto b = q.reserve_burst(8); ...; b.fill(len); }  // commits the filled
 *   { auto b = q.reserve_burst_len(lens, n); ... }      // a length each (records)
 *   { auto m = c.peek_burst(32); for (auto &v : m) ...; } // releases them
 * Under C++20 the byte views convert to and from std::span<std::byte>.
 *
 * Ownership: rqcpp::queue owns its handle (move-only; the destructor closes
 * it).  rqcpp::reservation, rqcpp::peeked and the burst guards borrow the
 * queue and must not outlive it.  Nothing is published or consumed implicitly: a reservation
 * destroyed without commit() publishes nothing (the next reserve() gets
 * the same slot; on an RQ_MPSC queue the producers' lock stays with this
 * handle until it commits or closes), and a peeked message destroyed
 * without release() stays in the queue (the next peek() returns it).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef RQ_HPP
#define RQ_HPP

#include "rq.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#if __cplusplus >= 202002L && __has_include(<span>)
#include <span>
#endif

namespace rqcpp {

/* ---- errors ---------------------------------------------------------- */

class error_category_impl final : public std::error_category {
public:
    const char *name() const noexcept override { return "rq"; }
    std::string message(int code) const override { return ::rq_strerror(code); }
    std::error_condition default_error_condition(int code) const noexcept override
    {
        switch (code) {
        case RQ_EAGAIN:
            return std::errc::resource_unavailable_try_again;
        case RQ_ETIMEDOUT:
            return std::errc::timed_out;
        case RQ_EMSGSIZE:
            return std::errc::message_size;
        case RQ_EINVAL:
            return std::errc::invalid_argument;
        case RQ_ENOENT:
            return std::errc::no_such_file_or_directory;
        case RQ_EBUSY:
            return std::errc::device_or_resource_busy;
        case RQ_EEXIST:
            return std::errc::file_exists;
        case RQ_EROLE:
            return std::errc::operation_not_permitted;
        case RQ_EDEADLK:
            return std::errc::resource_deadlock_would_occur;
        case RQ_ELOCKED:
            return std::errc::timed_out; /* the lock, not the ring */
        case RQ_EINTR:
            return std::errc::interrupted;
        default:
            return std::error_condition(code, *this);
        }
    }
};

/* The category of every rq error code (name "rq"). */
inline const std::error_category &category() noexcept
{
    static const error_category_impl instance;
    return instance;
}

/* The exception of the throwing overloads. */
class error : public std::system_error {
public:
    explicit error(std::error_code ec) : std::system_error(ec) {}
    error(std::error_code ec, const std::string &what) : std::system_error(ec, what) {}
};

namespace detail {
/* RC (an rq_error) as an error code: cleared for RQ_OK. */
inline bool set(std::error_code &ec, int rc) noexcept
{
    if (rc == RQ_OK)
        ec.clear();
    else
        ec.assign(rc, category());
    return rc == RQ_OK;
}

inline void throw_if(const std::error_code &ec, const char *what)
{
    if (ec)
        throw error(ec, what);
}

template <class C>
using contiguous_t = decltype(std::data(std::declval<C &>()), std::size(std::declval<C &>()));
} // namespace detail

/* ---- byte views -------------------------------------------------------- */

/* A read-only view of SIZE bytes (C++17 has no std::span): from a pointer
 * and a size, a std::string / std::string_view / C string (its characters,
 * without the terminating NUL), or any other contiguous container
 * (std::vector, std::array ...: all its elements' bytes). */
class const_bytes {
public:
    constexpr const_bytes() noexcept = default;
    const_bytes(const void *data, std::size_t size) noexcept
        : data_(static_cast<const std::byte *>(data)), size_(size)
    {
    }
    const_bytes(std::string_view s) noexcept
        : data_(reinterpret_cast<const std::byte *>(s.data())), size_(s.size())
    {
    }
    const_bytes(const char *s) noexcept : const_bytes(std::string_view(s)) {}
    const_bytes(const std::string &s) noexcept : const_bytes(std::string_view(s)) {}
    template <class C, class = detail::contiguous_t<const C>,
              class = std::enable_if_t<!std::is_convertible_v<const C &, std::string_view>>>
    const_bytes(const C &c) noexcept
        : data_(reinterpret_cast<const std::byte *>(std::data(c))),
          size_(std::size(c) * sizeof(*std::data(c)))
    {
    }

    constexpr const std::byte *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr const std::byte *begin() const noexcept { return data_; }
    constexpr const std::byte *end() const noexcept { return data_ + size_; }
    std::string_view str() const noexcept
    {
        return std::string_view(reinterpret_cast<const char *>(data_), size_);
    }
#ifdef __cpp_lib_span
    std::span<const std::byte> span() const noexcept
    {
        return {data_, size_};
    }
#endif

private:
    const std::byte *data_ = nullptr;
    std::size_t size_ = 0;
};

/* A writable view of SIZE bytes: a pointer and a size, or a contiguous
 * container of non-const elements. */
class mutable_bytes {
public:
    constexpr mutable_bytes() noexcept = default;
    mutable_bytes(void *data, std::size_t size) noexcept
        : data_(static_cast<std::byte *>(data)), size_(size)
    {
    }
    template <class C, class = detail::contiguous_t<C>,
              class = std::enable_if_t<!std::is_const_v<
                  std::remove_pointer_t<decltype(std::data(std::declval<C &>()))>>>>
    mutable_bytes(C &c) noexcept
        : data_(reinterpret_cast<std::byte *>(std::data(c))),
          size_(std::size(c) * sizeof(*std::data(c)))
    {
    }

#ifdef __cpp_lib_span
    /* A std::span of non-const elements, also as a temporary. */
    template <class T, std::size_t E, class = std::enable_if_t<!std::is_const_v<T>>>
    mutable_bytes(std::span<T, E> s) noexcept
        : data_(reinterpret_cast<std::byte *>(s.data())), size_(s.size_bytes())
    {
    }
#endif

    constexpr std::byte *data() const noexcept
    {
        return data_;
    }
    constexpr std::size_t size() const noexcept
    {
        return size_;
    }
    constexpr std::byte *begin() const noexcept
    {
        return data_;
    }
    constexpr std::byte *end() const noexcept
    {
        return data_ + size_;
    }
    operator const_bytes() const noexcept
    {
        return const_bytes(data_, size_);
    }
#ifdef __cpp_lib_span
    std::span<std::byte> span() const noexcept
    {
        return {data_, size_};
    }
#endif

private:
    std::byte *data_ = nullptr;
    std::size_t size_ = 0;
};

/* ---- zero-copy guards -------------------------------------------------- */

/* A reserved slot (queue::reserve).  Write up to size() bytes at data(),
 * then commit(len).  Destroyed without commit: nothing is published. */
class reservation {
public:
    reservation() noexcept = default;
    reservation(reservation &&o) noexcept : q_(std::exchange(o.q_, nullptr)), slot_(o.slot_) {}
    reservation &operator=(reservation &&o) noexcept
    {
        q_ = std::exchange(o.q_, nullptr);
        slot_ = o.slot_;
        return *this;
    }
    reservation(const reservation &) = delete;
    reservation &operator=(const reservation &) = delete;
    ~reservation() = default; /* abort: the slot stays unpublished */

    std::byte *data() const noexcept { return slot_.data(); }
    std::size_t size() const noexcept { return slot_.size(); }
    mutable_bytes bytes() const noexcept { return slot_; }
    /* True until committed (or moved from). */
    bool active() const noexcept { return q_ != nullptr; }

    /* Publishes LEN bytes of the slot.  RQ_EMSGSIZE keeps the reservation. */
    void commit(std::size_t len, std::error_code &ec) noexcept
    {
        if (detail::set(ec, q_ ? ::rq_commit(q_, len) : RQ_ESTATE))
            q_ = nullptr;
    }
    void commit(std::size_t len)
    {
        std::error_code ec;
        commit(len, ec);
        detail::throw_if(ec, "rq_commit");
    }

private:
    friend class queue;
    reservation(::rq *q, void *slot, std::size_t size) noexcept : q_(q), slot_(slot, size) {}
    ::rq *q_ = nullptr;
    mutable_bytes slot_;
};

/* What rq_peek_info / rq_pop_info say about a message besides its bytes:
 * its number in the queue since the queue was created (0, 1, 2, ...; a
 * redelivered message keeps its number), and whether it may have been
 * handed out before to a consumer that died or closed before releasing it
 * (RQ_MSG_REDELIVERED). */
struct message_info {
    std::uint64_t seq = 0;
    bool redelivered = false;
};

namespace detail {
inline message_info info(const rq_msg_info &i) noexcept
{
    return message_info{i.seq, (i.flags & RQ_MSG_REDELIVERED) != 0};
}
} // namespace detail

/* A peeked message (queue::peek), valid until release(), with its number
 * and redelivery flag (info(), from rq_peek_info).  Destroyed without
 * release: the message stays in the queue. */
class peeked {
public:
    peeked() noexcept = default;
    peeked(peeked &&o) noexcept : q_(std::exchange(o.q_, nullptr)), msg_(o.msg_), info_(o.info_) {}
    peeked &operator=(peeked &&o) noexcept
    {
        q_ = std::exchange(o.q_, nullptr);
        msg_ = o.msg_;
        info_ = o.info_;
        return *this;
    }
    peeked(const peeked &) = delete;
    peeked &operator=(const peeked &) = delete;
    ~peeked() = default; /* the message stays for the next peek */

    const std::byte *data() const noexcept { return msg_.data(); }
    std::size_t size() const noexcept { return msg_.size(); }
    const_bytes bytes() const noexcept { return msg_; }
    std::string_view str() const noexcept { return msg_.str(); }
    bool active() const noexcept { return q_ != nullptr; }
    message_info info() const noexcept { return info_; }
    std::uint64_t seq() const noexcept { return info_.seq; }
    bool redelivered() const noexcept { return info_.redelivered; }

    /* Frees the slot; data() is no longer valid. */
    void release(std::error_code &ec) noexcept
    {
        if (detail::set(ec, q_ ? ::rq_release(q_) : RQ_ESTATE))
            q_ = nullptr;
    }
    void release()
    {
        std::error_code ec;
        release(ec);
        detail::throw_if(ec, "rq_release");
    }

private:
    friend class queue;
    peeked(::rq *q, const void *msg, std::size_t len, message_info info) noexcept
        : q_(q), msg_(msg, len), info_(info)
    {
    }
    ::rq *q_ = nullptr;
    const_bytes msg_;
    message_info info_;
};

/* ---- burst guards -------------------------------------------------------- */

/* The most messages one burst call moves (the guards keep their slots and
 * views inline, without allocating). */
constexpr std::size_t burst_max = 64;

/* Reserved slots (queue::reserve_burst) or messages of given lengths
 * (queue::reserve_burst_len, records too): fill them in order (next(),
 * then fill(len), LEN up to the room of each); destroyed, or commit()ed,
 * it publishes the filled ones with one store (rq_commit_burst), or drops
 * the reservation if none was filled.  abort() drops it all.  On an
 * RQ_MPSC queue the producers' lock is held from the reservation until
 * then (same thread). */
class reserved_burst {
public:
    reserved_burst() noexcept = default;
    reserved_burst(reserved_burst &&o) noexcept
        : q_(std::exchange(o.q_, nullptr)), count_(o.count_), filled_(o.filled_), slots_(o.slots_),
          room_(o.room_), lens_(o.lens_)
    {
    }
    reserved_burst &operator=(reserved_burst &&o) noexcept
    {
        if (this != &o) {
            finish();
            q_ = std::exchange(o.q_, nullptr);
            count_ = o.count_;
            filled_ = o.filled_;
            slots_ = o.slots_;
            room_ = o.room_;
            lens_ = o.lens_;
        }
        return *this;
    }
    reserved_burst(const reserved_burst &) = delete;
    reserved_burst &operator=(const reserved_burst &) = delete;
    ~reserved_burst() { finish(); }

    /* Slots reserved, and filled so far. */
    std::size_t size() const noexcept { return count_; }
    std::size_t filled() const noexcept { return filled_; }
    bool active() const noexcept { return q_ != nullptr; }
    /* The I-th slot's writable bytes: slot_size, or the length reserved. */
    mutable_bytes operator[](std::size_t i) const noexcept
    {
        return i < count_ ? mutable_bytes(slots_[i], room_[i]) : mutable_bytes();
    }
    /* The next slot to fill (empty when all are). */
    mutable_bytes next() const noexcept { return (*this)[filled_]; }
    /* The next slot holds LEN bytes: false (nothing recorded) if LEN is
     * over its room or every slot is filled. */
    bool fill(std::size_t len) noexcept
    {
        if (!q_ || filled_ >= count_ || len > room_[filled_])
            return false;
        lens_[filled_++] = len;
        return true;
    }

    /* Publishes the filled slots and drops the rest (none filled: drops
     * them all). */
    void commit(std::error_code &ec) noexcept
    {
        if (detail::set(ec, q_ ? ::rq_commit_burst(q_, lens_.data(), filled_) : RQ_ESTATE))
            q_ = nullptr;
    }
    void commit()
    {
        std::error_code ec;
        commit(ec);
        detail::throw_if(ec, "rq_commit_burst");
    }
    /* Publishes nothing: every slot goes back. */
    void abort() noexcept
    {
        filled_ = 0;
        finish();
    }

private:
    friend class queue;
    void finish() noexcept
    {
        if (q_)
            (void)::rq_commit_burst(q_, lens_.data(), filled_); /* lengths were checked */
        q_ = nullptr;
    }
    ::rq *q_ = nullptr;
    std::size_t count_ = 0, filled_ = 0;
    std::array<void *, burst_max> slots_{};
    std::array<std::size_t, burst_max> room_{}, lens_{};
};

/* Peeked messages (queue::peek_burst), oldest first, each an rq_msg_view
 * (data, len, seq, flags: RQ_MSG_REDELIVERED).  Destroyed, it releases
 * those not yet released (one store); release(n) frees the N oldest
 * earlier, keep() leaves them all in the queue (the next peek returns
 * them again). */
class peeked_burst {
public:
    peeked_burst() noexcept = default;
    peeked_burst(peeked_burst &&o) noexcept
        : q_(std::exchange(o.q_, nullptr)), first_(o.first_), count_(o.count_), msgs_(o.msgs_)
    {
    }
    peeked_burst &operator=(peeked_burst &&o) noexcept
    {
        if (this != &o) {
            finish();
            q_ = std::exchange(o.q_, nullptr);
            first_ = o.first_;
            count_ = o.count_;
            msgs_ = o.msgs_;
        }
        return *this;
    }
    peeked_burst(const peeked_burst &) = delete;
    peeked_burst &operator=(const peeked_burst &) = delete;
    ~peeked_burst() { finish(); }

    /* The messages not yet released. */
    std::size_t size() const noexcept { return q_ ? count_ - first_ : 0; }
    bool empty() const noexcept { return size() == 0; }
    const rq_msg_view &operator[](std::size_t i) const noexcept { return msgs_[first_ + i]; }
    const rq_msg_view *begin() const noexcept { return msgs_.data() + first_; }
    const rq_msg_view *end() const noexcept { return msgs_.data() + (q_ ? count_ : first_); }
    /* The I-th message's bytes. */
    const_bytes bytes(std::size_t i) const noexcept
    {
        return i < size() ? const_bytes(msgs_[first_ + i].data, msgs_[first_ + i].len)
                          : const_bytes();
    }
#ifdef __cpp_lib_span
    std::span<const rq_msg_view> views() const noexcept
    {
        return {begin(), size()};
    }
#endif

    /* Frees the N oldest (rq_release_burst); their bytes are no longer
     * valid. */
    void release(std::size_t n, std::error_code &ec) noexcept
    {
        if (detail::set(ec, q_ ? ::rq_release_burst(q_, n) : RQ_ESTATE)) {
            first_ += n;
            if (first_ == count_)
                q_ = nullptr;
        }
    }
    void release(std::size_t n)
    {
        std::error_code ec;
        release(n, ec);
        detail::throw_if(ec, "rq_release_burst");
    }
    /* Leaves the unreleased messages in the queue. */
    void keep() noexcept
    {
        q_ = nullptr;
    }

private:
    friend class queue;
    void finish() noexcept
    {
        if (q_ && first_ < count_)
            (void)::rq_release_burst(q_, count_ - first_);
        q_ = nullptr;
    }
    ::rq *q_ = nullptr;
    std::size_t first_ = 0, count_ = 0;
    std::array<rq_msg_view, burst_max> msgs_{};
};

/* ---- the queue --------------------------------------------------------- */

constexpr int infinite = RQ_INFINITE;

class queue {
public:
    queue() noexcept = default;
    /* Takes ownership of a handle from rq_open. */
    explicit queue(::rq *handle) noexcept : q_(handle) {}
    queue(queue &&o) noexcept : q_(std::exchange(o.q_, nullptr)) {}
    queue &operator=(queue &&o) noexcept
    {
        if (this != &o) {
            close();
            q_ = std::exchange(o.q_, nullptr);
        }
        return *this;
    }
    queue(const queue &) = delete;
    queue &operator=(const queue &) = delete;
    ~queue() { close(); }

    /* Attaches to the existing queue NAME in ROLE (rq_open, cfg NULL). */
    static queue open(const std::string &name, int role, std::error_code &ec) noexcept
    {
        return open_(name, role, nullptr, ec);
    }
    static queue open(const std::string &name, int role)
    {
        std::error_code ec;
        queue q = open(name, role, ec);
        detail::throw_if(ec, "rq_open");
        return q;
    }
    /* rq_open_wait: open() that waits up to TIMEOUT_MS (infinite: no limit)
     * for another process to create NAME, for a consumer or observer
     * started before its producer.  Still missing when the time is up:
     * RQ_ENOENT. */
    static queue open_wait(const std::string &name, int role, int timeout_ms,
                           std::error_code &ec) noexcept
    {
        ::rq *h = nullptr;
        detail::set(ec, ::rq_open_wait(&h, name.c_str(), role, nullptr, timeout_ms));
        return queue(h);
    }
    static queue open_wait(const std::string &name, int role, int timeout_ms = infinite)
    {
        std::error_code ec;
        queue q = open_wait(name, role, timeout_ms, ec);
        detail::throw_if(ec, "rq_open_wait");
        return q;
    }
    /* Opens NAME in ROLE, creating it with CFG if missing. */
    static queue create(const std::string &name, int role, const rq_config &cfg,
                        std::error_code &ec) noexcept
    {
        return open_(name, role, &cfg, ec);
    }
    static queue create(const std::string &name, int role, const rq_config &cfg)
    {
        std::error_code ec;
        queue q = create(name, role, cfg, ec);
        detail::throw_if(ec, "rq_open");
        return q;
    }
    static void unlink(const std::string &name, std::error_code &ec) noexcept
    {
        detail::set(ec, ::rq_unlink(name.c_str()));
    }
    static void unlink(const std::string &name)
    {
        std::error_code ec;
        unlink(name, ec);
        detail::throw_if(ec, "rq_unlink");
    }

    ::rq *native_handle() const noexcept { return q_; }
    explicit operator bool() const noexcept { return q_ != nullptr; }
    /* rq_interrupt: ends the current or next wait with RQ_EINTR
     * (std::errc::interrupted); async-signal-safe. */
    void interrupt() noexcept { ::rq_interrupt(q_); }
    /* rq_set_spin_us: this handle's waits poll for up to US microseconds
     * before they sleep (0: sleep at once; at most RQ_SPIN_US_MAX).
     * std::errc::invalid_argument beyond that. */
    void set_spin_us(std::uint32_t us, std::error_code &ec) noexcept
    {
        detail::set(ec, ::rq_set_spin_us(q_, us));
    }
    void set_spin_us(std::uint32_t us)
    {
        std::error_code ec;
        set_spin_us(us, ec);
        detail::throw_if(ec, "rq_set_spin_us");
    }

    /* Gives the handle up (rq_close); the queue itself persists. */
    void close() noexcept
    {
        ::rq_close(q_);
        q_ = nullptr;
    }

    void push(const_bytes msg, int timeout_ms, std::error_code &ec) noexcept
    {
        detail::set(ec, ::rq_push(q_, msg.data(), msg.size(), timeout_ms));
    }
    void push(const_bytes msg, int timeout_ms = infinite)
    {
        std::error_code ec;
        push(msg, timeout_ms, ec);
        detail::throw_if(ec, "rq_push");
    }

    /* Copies the oldest message into BUF and returns its length. */
    std::size_t pop(mutable_bytes buf, int timeout_ms, std::error_code &ec) noexcept
    {
        std::size_t len = 0;
        detail::set(ec, ::rq_pop(q_, buf.data(), buf.size(), &len, timeout_ms));
        return ec ? 0 : len;
    }
    std::size_t pop(mutable_bytes buf, int timeout_ms = infinite)
    {
        std::error_code ec;
        std::size_t len = pop(buf, timeout_ms, ec);
        detail::throw_if(ec, "rq_pop");
        return len;
    }
    /* pop() that also fills INFO for the message popped (rq_pop_info). */
    std::size_t pop(mutable_bytes buf, message_info &info, int timeout_ms,
                    std::error_code &ec) noexcept
    {
        std::size_t len = 0;
        rq_msg_info i{};
        if (!detail::set(ec, ::rq_pop_info(q_, buf.data(), buf.size(), &len, &i, timeout_ms)))
            return 0;
        info = detail::info(i);
        return len;
    }
    std::size_t pop(mutable_bytes buf, message_info &info, int timeout_ms = infinite)
    {
        std::error_code ec;
        std::size_t len = pop(buf, info, timeout_ms, ec);
        detail::throw_if(ec, "rq_pop_info");
        return len;
    }
    /* rq_next_seq.  A producer: the number its next message gets if no
     * other producer goes first (right after a push, next_seq() - 1 is that
     * message's).  A consumer: the number of the oldest message not yet
     * released.  RQ_EROLE for an observer. */
    std::uint64_t next_seq(std::error_code &ec) const noexcept
    {
        std::uint64_t seq = 0;
        detail::set(ec, ::rq_next_seq(q_, &seq));
        return seq;
    }
    std::uint64_t next_seq() const
    {
        std::error_code ec;
        std::uint64_t seq = next_seq(ec);
        detail::throw_if(ec, "rq_next_seq");
        return seq;
    }
    /* The oldest message as a string (allocates slot_size bytes). */
    std::string pop_string(int timeout_ms, std::error_code &ec)
    {
        rq_stats st{};
        if (!detail::set(ec, ::rq_stat(q_, &st)))
            return {};
        std::string s(st.slot_size, '\0');
        s.resize(pop(mutable_bytes(s.data(), s.size()), timeout_ms, ec));
        return s;
    }
    std::string pop_string(int timeout_ms = infinite)
    {
        std::error_code ec;
        std::string s = pop_string(timeout_ms, ec);
        detail::throw_if(ec, "rq_pop");
        return s;
    }

    reservation reserve(int timeout_ms, std::error_code &ec) noexcept
    {
        void *slot = nullptr;
        rq_stats st{};
        if (!detail::set(ec, ::rq_stat(q_, &st)) ||
            !detail::set(ec, ::rq_reserve(q_, &slot, timeout_ms)))
            return {};
        return reservation(q_, slot, st.slot_size);
    }
    reservation reserve(int timeout_ms = infinite)
    {
        std::error_code ec;
        reservation r = reserve(timeout_ms, ec);
        detail::throw_if(ec, "rq_reserve");
        return r;
    }

    /* rq_reserve_len: LEN writable bytes (a record queue takes only the
     * room LEN needs; a slot queue, any LEN up to slot_size). */
    reservation reserve_len(std::size_t len, int timeout_ms, std::error_code &ec) noexcept
    {
        void *slot = nullptr;
        if (!detail::set(ec, ::rq_reserve_len(q_, len, &slot, timeout_ms)))
            return {};
        return reservation(q_, slot, len);
    }
    reservation reserve_len(std::size_t len, int timeout_ms = infinite)
    {
        std::error_code ec;
        reservation r = reserve_len(len, timeout_ms, ec);
        detail::throw_if(ec, "rq_reserve_len");
        return r;
    }

    peeked peek(int timeout_ms, std::error_code &ec) noexcept
    {
        const void *msg = nullptr;
        std::size_t len = 0;
        rq_msg_info info{};
        if (!detail::set(ec, ::rq_peek_info(q_, &msg, &len, &info, timeout_ms)))
            return {};
        return peeked(q_, msg, len, detail::info(info));
    }
    peeked peek(int timeout_ms = infinite)
    {
        std::error_code ec;
        peeked m = peek(timeout_ms, ec);
        detail::throw_if(ec, "rq_peek");
        return m;
    }

    /* Pushes the first messages of MSGS (any range of what const_bytes
     * takes: std::vector<std::string>, std::span<const const_bytes> ...),
     * at most burst_max, with one publish; returns how many went (>= 1;
     * 0 with ec set: none).  The rest are the caller's to push again. */
    template <class Range>
    std::size_t push_burst(const Range &msgs, int timeout_ms, std::error_code &ec) noexcept
    {
        std::array<const void *, burst_max> ptrs;
        std::array<std::size_t, burst_max> lens;
        std::size_t n = 0;
        for (auto it = std::begin(msgs); it != std::end(msgs) && n < burst_max; ++it, ++n) {
            const_bytes b(*it);
            ptrs[n] = b.data();
            lens[n] = b.size();
        }
        int rc = ::rq_push_burst(q_, ptrs.data(), lens.data(), n, timeout_ms);
        detail::set(ec, rc < 0 ? rc : RQ_OK);
        return rc < 0 ? 0 : static_cast<std::size_t>(rc);
    }
    template <class Range> std::size_t push_burst(const Range &msgs, int timeout_ms = infinite)
    {
        std::error_code ec;
        std::size_t n = push_burst(msgs, timeout_ms, ec);
        detail::throw_if(ec, "rq_push_burst");
        return n;
    }
    /* push_burst({"a", "b"}): a braced list deduces no Range. */
    std::size_t push_burst(std::initializer_list<const_bytes> msgs, int timeout_ms,
                           std::error_code &ec) noexcept
    {
        return push_burst<std::initializer_list<const_bytes>>(msgs, timeout_ms, ec);
    }
    std::size_t push_burst(std::initializer_list<const_bytes> msgs, int timeout_ms = infinite)
    {
        return push_burst<std::initializer_list<const_bytes>>(msgs, timeout_ms);
    }

    /* Copies up to LENS.size() oldest messages (and no more than BUF holds)
     * into BUF, the i-th at BUF + i * CAP, its length into LENS[i], and
     * frees them with one store; returns how many (0 with ec set: none).
     * LENS: any contiguous range of std::size_t (std::vector, std::array,
     * std::span). */
    template <class Lens>
    std::size_t pop_burst(mutable_bytes buf, std::size_t cap, Lens &&lens, int timeout_ms,
                          std::error_code &ec) noexcept
    {
        std::size_t max = std::size(lens);
        if (cap > 0 && buf.size() / cap < max)
            max = buf.size() / cap;
        if (cap == 0 || max == 0) {
            detail::set(ec, RQ_EINVAL);
            return 0;
        }
        int rc = ::rq_pop_burst(q_, buf.data(), cap, std::data(lens), max, timeout_ms);
        detail::set(ec, rc < 0 ? rc : RQ_OK);
        return rc < 0 ? 0 : static_cast<std::size_t>(rc);
    }
    template <class Lens>
    std::size_t pop_burst(mutable_bytes buf, std::size_t cap, Lens &&lens,
                          int timeout_ms = infinite)
    {
        std::error_code ec;
        std::size_t n = pop_burst(buf, cap, std::forward<Lens>(lens), timeout_ms, ec);
        detail::throw_if(ec, "rq_pop_burst");
        return n;
    }

    /* Reserves up to COUNT (<= burst_max) free slots. */
    reserved_burst reserve_burst(std::size_t count, int timeout_ms, std::error_code &ec) noexcept
    {
        reserved_burst b;
        rq_stats st{};
        if (!detail::set(ec, ::rq_stat(q_, &st)))
            return b;
        int rc = ::rq_reserve_burst(q_, b.slots_.data(), count < burst_max ? count : burst_max,
                                    timeout_ms);
        if (detail::set(ec, rc < 0 ? rc : RQ_OK)) {
            b.q_ = q_;
            b.count_ = static_cast<std::size_t>(rc);
            b.room_.fill(st.slot_size);
        }
        return b;
    }
    reserved_burst reserve_burst(std::size_t count, int timeout_ms = infinite)
    {
        std::error_code ec;
        reserved_burst b = reserve_burst(count, timeout_ms, ec);
        detail::throw_if(ec, "rq_reserve_burst");
        return b;
    }

    /* Reserves COUNT (<= burst_max) messages of LENS[i] bytes, all or none
     * (rq_reserve_burst_len: on a record queue, records of those lengths;
     * fewer only if the batch could never fit). */
    reserved_burst reserve_burst_len(const std::size_t *lens, std::size_t count, int timeout_ms,
                                     std::error_code &ec) noexcept
    {
        reserved_burst b;
        count = count < burst_max ? count : burst_max;
        int rc = ::rq_reserve_burst_len(q_, lens, count, b.slots_.data(), timeout_ms);
        if (detail::set(ec, rc < 0 ? rc : RQ_OK)) {
            b.q_ = q_;
            b.count_ = static_cast<std::size_t>(rc);
            std::copy(lens, lens + b.count_, b.room_.begin());
        }
        return b;
    }
    reserved_burst reserve_burst_len(const std::size_t *lens, std::size_t count,
                                     int timeout_ms = infinite)
    {
        std::error_code ec;
        reserved_burst b = reserve_burst_len(lens, count, timeout_ms, ec);
        detail::throw_if(ec, "rq_reserve_burst_len");
        return b;
    }

    /* Peeks up to MAX (<= burst_max) of the oldest messages. */
    peeked_burst peek_burst(std::size_t max, int timeout_ms, std::error_code &ec) noexcept
    {
        peeked_burst m;
        int rc = ::rq_peek_burst(q_, m.msgs_.data(), max < burst_max ? max : burst_max, timeout_ms);
        if (detail::set(ec, rc < 0 ? rc : RQ_OK)) {
            m.q_ = q_;
            m.count_ = static_cast<std::size_t>(rc);
        }
        return m;
    }
    peeked_burst peek_burst(std::size_t max, int timeout_ms = infinite)
    {
        std::error_code ec;
        peeked_burst m = peek_burst(max, timeout_ms, ec);
        detail::throw_if(ec, "rq_peek_burst");
        return m;
    }

    rq_stats stat(std::error_code &ec) const noexcept
    {
        rq_stats st{};
        detail::set(ec, ::rq_stat(q_, &st));
        return st;
    }
    rq_stats stat() const
    {
        std::error_code ec;
        rq_stats st = stat(ec);
        detail::throw_if(ec, "rq_stat");
        return st;
    }
    /* rq_stat_records: a record queue's byte accounting; empty (ec clear)
     * on a slot queue. */
    std::optional<rq_record_stats> stat_records(std::error_code &ec) const noexcept
    {
        rq_record_stats st{};
        int rc = ::rq_stat_records(q_, &st);
        if (rc == RQ_EINVAL && q_) {
            rq_stats s{};
            if (::rq_stat(q_, &s) == RQ_OK && !(s.flags & RQ_RECORDS)) {
                ec.clear();
                return std::nullopt;
            }
        }
        if (!detail::set(ec, rc))
            return std::nullopt;
        return st;
    }
    /* rq_dump_records: calls FN(const rq_record_entry &) for every record
     * of a record queue, oldest first, without consuming any (a diagnostic
     * view: entry.data is valid during the call only, and may be
     * overwritten once the consumer frees it).  FN returns true to go on,
     * false to stop.  Returns true when the walk went to its end, false
     * when FN stopped it or on an error (ec: RQ_EINVAL for a slot queue,
     * RQ_EAGAIN when records were freed under the walk, RQ_ECORRUPT).  An
     * exception from FN stops the walk and leaves this call. */
    template <class F> bool dump_records(F &&fn, std::error_code &ec)
    {
        struct walk {
            std::remove_reference_t<F> *fn;
            std::exception_ptr thrown;
        } w{&fn, nullptr};
        int rc = ::rq_dump_records(
            q_,
            [](void *ctx, const rq_record_entry *e) -> int {
                auto *wp = static_cast<walk *>(ctx);
                try {
                    return (*wp->fn)(*e) ? 0 : 1;
                } catch (...) {
                    wp->thrown = std::current_exception();
                    return 1;
                }
            },
            &w);
        if (w.thrown)
            std::rethrow_exception(w.thrown);
        if (rc == 1) {
            ec.clear();
            return false;
        }
        return detail::set(ec, rc);
    }
    template <class F> bool dump_records(F &&fn)
    {
        std::error_code ec;
        bool done = dump_records(std::forward<F>(fn), ec);
        detail::throw_if(ec, "rq_dump_records");
        return done;
    }
    std::optional<rq_record_stats> stat_records() const
    {
        std::error_code ec;
        std::optional<rq_record_stats> st = stat_records(ec);
        detail::throw_if(ec, "rq_stat_records");
        return st;
    }

    // The object an event loop waits on (rq_poll_handle: a descriptor on
    // Linux, an event HANDLE on Windows); the longest wait on it before
    // trying again, in milliseconds (rq_poll_timeout).
    rq_pollable poll_handle(std::error_code &ec) noexcept
    {
        rq_pollable h = RQ_POLLABLE_NONE;
        detail::set(ec, ::rq_poll_handle(q_, &h));
        return h;
    }
    rq_pollable poll_handle()
    {
        std::error_code ec;
        rq_pollable h = poll_handle(ec);
        detail::throw_if(ec, "rq_poll_handle");
        return h;
    }
    int poll_timeout() const noexcept { return ::rq_poll_timeout(q_); }

private:
    static queue open_(const std::string &name, int role, const rq_config *cfg,
                       std::error_code &ec) noexcept
    {
        ::rq *h = nullptr;
        detail::set(ec, ::rq_open(&h, name.c_str(), role, cfg));
        return queue(h);
    }
    ::rq *q_ = nullptr;
};

} // namespace rqcpp

/* rq_error values are error codes: std::error_code ec = RQ_EBUSY, and
 * ec == RQ_ETIMEDOUT compare in rqcpp::category(). */
inline std::error_code make_error_code(rq_error e) noexcept
{
    return std::error_code(static_cast<int>(e), rqcpp::category());
}

namespace std {
template <> struct is_error_code_enum<rq_error> : true_type {
};
} // namespace std

#endif /* RQ_HPP */
