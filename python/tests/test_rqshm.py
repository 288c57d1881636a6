"""rqshm against the library: every call, the error classes, zero-copy
guards, the struct layouts (compared with the C compiler's, via rq_peer)."""
import dataclasses
import os
import re
import subprocess
import threading
import time

import pytest

import rqshm

_n = 0


@pytest.fixture
def name():
    global _n
    _n += 1
    n = "py.%d.%d" % (os.getpid(), _n)
    try:
        rqshm.unlink(n)
    except rqshm.ENOENT:
        pass
    yield n
    try:
        rqshm.unlink(n)
    except rqshm.ENOENT:
        pass


def test_push_pop_roundtrip(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=8, slot_size=64) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        p.push(b"hello")
        p.push(bytearray(b"world"))
        p.push(memoryview(b"xxview")[2:])
        p.push(b"")
        assert c.pop() == b"hello"
        assert c.pop(timeout=0) == b"world"
        assert c.pop(timeout=1.5) == b"view"
        assert c.pop() == b""
        assert c.slot_size == 64 and c.slot_count == 8


def test_errors_are_classes_from_the_library(name):
    assert issubclass(rqshm.EBUSY, rqshm.Error)
    assert issubclass(rqshm.ETIMEDOUT, TimeoutError)
    # Every code the library names has a class, and only those.
    for code in range(-1, -100, -1):
        libname = rqshm._errname(code)
        if libname == "RQ_UNKNOWN":
            assert code not in rqshm._BY_CODE
        else:
            cls = getattr(rqshm, libname[3:])
            assert cls.code == code and cls is rqshm._BY_CODE[code]
    with pytest.raises(rqshm.ENOENT) as e:
        rqshm.Queue.open(name, rqshm.CONSUMER)
    assert e.value.code == -5 and e.value.name == "RQ_ENOENT"
    assert "no queue of that name" in str(e.value)
    with rqshm.Queue.create(name, rqshm.CONSUMER, slot_count=2, slot_size=8) as c:
        with pytest.raises(rqshm.EBUSY):
            rqshm.Queue.open(name, rqshm.CONSUMER)
        with pytest.raises(rqshm.EAGAIN):
            c.pop(timeout=0)
        t = time.monotonic()
        with pytest.raises(TimeoutError):
            c.pop(timeout=0.05)
        assert time.monotonic() - t >= 0.04
        with pytest.raises(rqshm.EROLE):
            c.push(b"x")
    with pytest.raises(rqshm.EEXIST):
        rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=8)
    with pytest.raises(rqshm.EINVAL):
        rqshm.Queue.create("bad/name", rqshm.PRODUCER)
    with pytest.raises(ValueError):
        rqshm.Queue.open(name, rqshm.CONSUMER).pop(timeout=-1)


def test_full_and_message_size(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=2, slot_size=8) as p:
        with pytest.raises(rqshm.EMSGSIZE):
            p.push(b"123456789")
        assert p.push_many([b"a", b"b"]) == 2
        with pytest.raises(rqshm.EAGAIN):
            p.push(b"c", timeout=0)


def test_reserve_commits_or_publishes_nothing(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=16) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        with p.reserve() as r:
            r.buf[:4] = b"lost"       # no commit: nothing published
        assert p.stat().depth == 0
        with pytest.raises(RuntimeError):
            with p.reserve() as r:
                r.buf[:4] = b"boom"
                raise RuntimeError   # an exception: nothing published
        assert p.stat().depth == 0
        with p.reserve(timeout=0) as r:
            assert len(r.buf) == 16
            r.buf[:5] = b"kept!"
            r.commit(5)
            with pytest.raises(rqshm.ESTATE):
                r.commit(5)
        with pytest.raises(ValueError):
            r.buf[0]  # the view is released with the block
        with p.reserve() as r:
            r.buf[:3] = memoryview(b"abc")
            r.commit(3)
        assert c.pop() == b"kept!" and c.pop() == b"abc"


def test_record_queue(name):
    """kind="records": messages of any length up to max_record in a byte
    ring, reserve(length=...) and the record fields of stat()."""
    with pytest.raises(TypeError):
        rqshm.Queue.create(name, kind="records", capacity=256)  # no max_record
    with pytest.raises(ValueError):
        rqshm.Queue.create(name, capacity=256, max_record=64)  # kind slots
    with pytest.raises(rqshm.EINVAL):
        rqshm.Queue.create(name, kind="records", capacity=250, max_record=64)  # not 16n
    with rqshm.Queue.create(name, rqshm.PRODUCER, kind="records", capacity=256,
                            max_record=100) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        assert p.kind == c.kind == "records"
        assert c.slot_count == 256 and c.slot_size == 100
        st = c.stat()
        assert st.flags & rqshm.RECORDS
        assert (st.capacity, st.max_record, st.bytes_used, st.records) == (256, 100, 0, 0)
        sizes = [1, 0, 7, 8, 9, 100, 33]
        for n in sizes:
            p.push(bytes([n % 256]) * n)
        with pytest.raises(rqshm.EMSGSIZE):
            p.push(b"x" * 101)  # longer than max_record: nothing pushed
        st = p.stat()
        # Each record: a 4-byte header and its payload, rounded up to 8.
        assert st.bytes_used == sum((4 + n + 7) // 8 * 8 for n in sizes)
        assert st.records == len(sizes) and st.depth == len(sizes)
        assert st.largest_record == 100 and st.payload_bytes == sum(sizes)
        assert st.bytes_free == 256 - st.bytes_used
        assert [bytes(c.pop(timeout=0)) for _ in sizes] == [bytes([n % 256]) * n for n in sizes]
        # Zero-copy: the length reserved is the room taken; commit at most it.
        with p.reserve(length=12, timeout=0) as r:
            assert len(r.buf) == 12
            r.buf[:12] = b"twelve bytes"
            with pytest.raises(rqshm.EMSGSIZE):
                r.commit(13)
            r.commit(6)
        with pytest.raises(rqshm.EMSGSIZE):
            p.reserve(length=101)
        with p.reserve() as r:  # no length: the largest record
            assert len(r.buf) == 100
            r.commit(0)
        with c.peek(timeout=0) as msg:
            assert bytes(msg) == b"twelve"
        assert c.pop(timeout=0) == b""
        with pytest.raises(rqshm.EAGAIN):
            c.pop(timeout=0)
        assert p.stat().padding_bytes > 0  # the 100-byte record wrapped
    full = name + ".full"
    with rqshm.Queue.create(full, rqshm.PRODUCER, kind="records", capacity=256,
                            max_record=100) as p, \
            rqshm.Queue.open(full, rqshm.CONSUMER) as c:
        # Fills to the byte: 16 records of 8 bytes take 16 * (4 + 8 + 4) = 256.
        for i in range(16):
            p.push(b"%08d" % i, timeout=0)
        with pytest.raises(rqshm.EAGAIN):
            p.push(b"", timeout=0)
        st = p.stat()
        assert (st.bytes_free, st.records, st.padding_bytes) == (0, 16, 0)
        assert c.pop_many(100) == [b"%08d" % i for i in range(16)]
    rqshm.unlink(full)


def test_record_queue_polls(name):
    """fileno() on a record queue: readable once a push follows the
    EAGAIN that armed it (rq_poll_handle serves both kinds)."""
    import select
    with rqshm.Queue.create(name, rqshm.CONSUMER, kind="records", capacity=1024,
                            max_record=64) as c, \
            rqshm.Queue.open(name, rqshm.PRODUCER) as p:
        fd = c.fileno()
        with pytest.raises(rqshm.EAGAIN):
            c.pop(timeout=0)  # arms
        assert select.select([fd], [], [], 0.02)[0] == []
        p.push(b"wake")
        assert select.select([fd], [], [], 1)[0] == [fd]
        assert c.pop(timeout=0) == b"wake"


def test_slot_queue_reserve_length(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=16) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        assert p.kind == "slots" and p.stat().capacity is None
        with p.reserve(length=4) as r:
            assert len(r.buf) == 4
            r.buf[:] = b"four"
            r.commit(4)
        with pytest.raises(rqshm.EMSGSIZE):
            p.reserve(length=17)
        assert c.pop() == b"four"


def test_peek_releases_only_on_success(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=16) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        p.push(b"once")
        with pytest.raises(KeyError):
            with c.peek() as msg:
                assert bytes(msg) == b"once" and msg.readonly
                raise KeyError       # handling failed: the message stays
        with c.peek(timeout=0) as msg:
            assert bytes(msg) == b"once"
        assert c.stat().depth == 0
        with pytest.raises(rqshm.EAGAIN):
            with c.peek(timeout=0):
                pass


def test_iteration_and_bursts(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=64, slot_size=16) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        p.push_many(b"%d" % i for i in range(10))
        assert c.pop_many(4) == [b"0", b"1", b"2", b"3"]
        assert list(c.messages(timeout=0)) == [b"%d" % i for i in range(4, 10)]
        assert c.pop_many(4, timeout=0.01) == []
        p.push(b"it")
        assert next(iter(c)) == b"it"


def test_push_burst_and_pop_burst(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=8, slot_size=16) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        assert p.push_burst([b"a", bytearray(b"bb"), memoryview(b"xccc")[1:], b""]) == 4
        assert c.stat().pushed == 4
        assert c.pop_burst(32) == [b"a", b"bb", b"ccc", b""]
        assert c.pop_burst(32) == []  # timeout 0: nothing there
        # A generator, more than a ring's worth: the first 8 go, then full.
        assert p.push_burst((b"%d" % i for i in range(12)), timeout=0) == 8
        with pytest.raises(rqshm.EAGAIN):
            p.push_burst([b"x"], timeout=0)
        assert c.pop_burst(3) == [b"0", b"1", b"2"]
        assert c.pop_burst(32, timeout=0.01) == [b"%d" % i for i in range(3, 8)]
        with pytest.raises(rqshm.EMSGSIZE):
            p.push_burst([b"ok", b"x" * 17])
        assert c.stat().depth == 0  # nothing of that batch went
        assert p.push_burst([]) == 0 and c.pop_burst(0) == []
        # A list longer than the ring goes in batches while the consumer takes them.
        got = []
        t = threading.Thread(target=lambda: got.extend(
            m for _ in range(3) for m in c.pop_burst(8, timeout=5)))
        t.start()
        assert p.push_burst([b"m%d" % i for i in range(20)], timeout=5) == 20
        t.join()
        got += c.pop_burst(32)
        assert got == [b"m%d" % i for i in range(20)]


def test_peek_burst_releases_on_exit(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=8, slot_size=16) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        p.push_burst([b"one", b"two", b"three"])
        with pytest.raises(RuntimeError):
            with c.peek_burst(2) as msgs:
                assert [bytes(m) for m in msgs] == [b"one", b"two"]
                assert msgs[0].readonly
                raise RuntimeError("handler failed")
        assert c.stat().depth == 3  # an exception leaves them
        with pytest.raises(ValueError):
            bytes(msgs[0])  # released views: no access after the block
        pb2 = c.peek_burst(32)
        with pb2 as msgs2:
            assert [bytes(m) for m in msgs2] == [b"one", b"two", b"three"]
            assert pb2.seqs == [0, 1, 2] and pb2.redelivered == [False] * 3
        assert c.stat().depth == 0
        pb = c.peek_burst(4, timeout=0)
        with pytest.raises(rqshm.EAGAIN):
            with pb:
                pass
        p.push(b"n")
        with c.peek_burst(4) as m3:
            assert pb is not None and len(m3) == 1
        assert c.pop_burst(4) == []


def test_blocking_pop_is_woken_by_a_push(name):
    with rqshm.Queue.create(name, rqshm.CONSUMER, slot_count=4, slot_size=16) as c:
        def later():
            time.sleep(0.1)
            with rqshm.Queue.open(name, rqshm.PRODUCER) as p:
                p.push(b"late")
        t = threading.Thread(target=later)
        t.start()
        assert c.pop(timeout=10) == b"late"
        t.join()


def test_selectors_wait_on_the_queue(name):
    """fileno() in a selector: the drain rule, with a producer thread."""
    import selectors
    with rqshm.Queue.create(name, rqshm.CONSUMER, slot_count=8, slot_size=16) as c, \
            rqshm.Queue.open(name, rqshm.PRODUCER) as p:
        sel = selectors.DefaultSelector()
        sel.register(c, selectors.EVENT_READ)
        with pytest.raises(rqshm.EAGAIN):
            c.pop(0)  # arms
        assert sel.select(0.02) == []

        def produce():
            for i in range(500):
                p.push(b"%d" % i)
        t = threading.Thread(target=produce)
        t.start()
        got = []
        while len(got) < 500:
            sel.select(c.poll_timeout())
            try:
                while True:
                    got.append(int(bytes(c.pop(0))))
            except rqshm.EAGAIN:
                pass
        t.join()
        assert got == list(range(500))
        sel.close()


def test_stat_is_a_dataclass(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=16) as p:
        p.push(b"x")
        st = p.stat()
        assert dataclasses.is_dataclass(st)
        assert (st.slot_count, st.slot_size, st.depth, st.pushed) == (4, 16, 1, 1)
        assert st.producer_live is True and st.consumer_live is False
        assert st.producer_pid == os.getpid()
    assert p.closed
    with pytest.raises(rqshm.EINVAL):
        p.push(b"x")  # closed handle


def test_layout_matches_the_c_compiler():
    """rqshm's declarations of rq.h's structs and constants against the C
    compiler's offsetof/sizeof (cffi's ABI mode takes them on trust)."""
    out = subprocess.run([os.environ["RQ_PEER"], "layout"], check=True, capture_output=True,
                         text=True).stdout
    ffi = rqshm.ffi
    checked = 0
    for line in out.splitlines():
        key, *vals = line.split()
        kind, what = key.split(".", 1)
        if kind == "sizeof":
            assert ffi.sizeof(what) == int(vals[0]), key
        elif kind == "value":
            assert getattr(rqshm, what[3:]) == int(vals[0]), key
        else:
            field = dict(ffi.typeof(kind).fields)[what]
            assert (field.offset, ffi.sizeof(field.type)) == (int(vals[0]), int(vals[1])), key
        checked += 1
    assert checked > 25


def test_version_matches_rq_h():
    here = os.path.dirname(os.path.abspath(__file__))
    text = open(os.path.join(here, "..", "..", "include", "rq.h")).read()
    parts = [re.search(r"#define RQ_VERSION_%s (\d+)" % p, text).group(1)
             for p in ("MAJOR", "MINOR", "PATCH")]
    assert rqshm.__version__ == ".".join(parts)
    toml = open(os.path.join(here, "..", "pyproject.toml")).read()
    assert 'version = "%s"' % rqshm.__version__ in toml


def test_names():
    assert rqshm.name_valid("a.b-c_1") and not rqshm.name_valid("a/b")


def test_interrupt_from_another_thread(name):
    with rqshm.Queue.create(name, rqshm.CONSUMER, slot_count=4, slot_size=16) as c:
        t = threading.Timer(0.1, c.interrupt)
        t.start()
        t0 = time.monotonic()
        with pytest.raises(rqshm.EINTR) as e:
            c.pop(timeout=5)
        assert isinstance(e.value, InterruptedError)
        assert time.monotonic() - t0 < 2
        t.join()
        with pytest.raises(rqshm.ETIMEDOUT):  # used up
            c.pop(timeout=0.02)


def test_a_spinning_wait_takes_the_message_without_a_sleep(name):
    """set_spin: the consumer polls instead of sleeping, so a message
    pushed 50 ms into a 1 s spin is taken with no sleep (consumer_waits);
    with no spin the same wait sleeps."""
    with rqshm.Queue.create(name, rqshm.CONSUMER, slot_count=4, slot_size=16) as c:
        with rqshm.Queue.open(name, rqshm.PRODUCER) as p:
            for spin, slept in ((0, True), (1.0, False)):
                c.set_spin(spin)
                waits = c.stat().consumer_waits
                t = threading.Timer(0.05, p.push, args=(b"late",))
                t.start()
                assert c.pop(timeout=10) == b"late"
                t.join()
                assert (c.stat().consumer_waits > waits) == slept
        for bad in (-0.001, 1.5, float("inf"), float("nan")):
            with pytest.raises(ValueError):
                c.set_spin(bad)


def test_a_view_kept_past_its_peek_is_refused(name):
    """A slice of a peeked message kept past the block: BufferError, the
    message stays in the queue, and close() refuses to unmap it."""
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=16) as p:
        c = rqshm.Queue.open(name, rqshm.CONSUMER)
        p.push(b"hello")
        with pytest.raises(BufferError):
            with c.peek() as m:
                kept = m[1:4]
        assert bytes(kept) == b"ell" and c.stat().depth == 1
        with pytest.raises(BufferError):
            c.close()
        assert not c.closed
        del kept
        with c.peek() as m:  # the same message again, now let go
            assert bytes(m) == b"hello"
        assert c.stat().depth == 0
        p.push_burst([b"a", b"b"])
        with pytest.raises(BufferError):
            with c.peek_burst(2) as views:
                kept = [v[0:1] for v in views]
        assert c.stat().depth == 2
        del kept
        c.close()
        assert c.closed


def test_a_reserved_view_kept_past_commit_is_refused(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=16) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        with p.reserve() as r:
            r.buf[:3] = b"abc"
            kept = r.buf[0:3]
            with pytest.raises(BufferError):
                r.commit(3)  # nothing published while a view of the slot lives
            with pytest.raises(BufferError):
                r.commit(3)  # nor on a second try
            assert c.stat().depth == 0
            del kept
            r.commit(3)
        assert c.pop() == b"abc"
        with p.reserve_burst(2) as rb:
            kept = rb.bufs[1][0:1]
            with pytest.raises(BufferError):
                rb.commit([0, 0])
            del kept
            rb.commit([0])
        assert c.pop() == b"" and c.stat().depth == 0


def test_a_reservation_left_without_commit_is_dropped(name):
    """Leaving `with q.reserve()` without commit() publishes nothing and
    holds nothing: the next push goes, and on an MPSC queue another
    producer gets the lock."""
    for flags in (0, rqshm.MPSC):
        n = "%s.%d" % (name, flags)
        with rqshm.Queue.create(n, rqshm.PRODUCER, slot_count=4, slot_size=16,
                                flags=flags) as p, \
                rqshm.Queue.open(n, rqshm.CONSUMER) as c:
            with p.reserve() as r:
                r.buf[:4] = b"lost"
            p.push(b"next", timeout=0)
            if flags:
                with rqshm.Queue.open(n, rqshm.PRODUCER) as p2:
                    with p.reserve() as r:
                        pass
                    p2.push(b"other", timeout=0)
                assert c.pop() == b"next" and c.pop() == b"other"
            else:
                assert c.pop() == b"next"
        rqshm.unlink(n)
    with rqshm.Queue.create(name + ".r", rqshm.PRODUCER, kind="records", capacity=256,
                            max_record=64) as p, \
            rqshm.Queue.open(name + ".r", rqshm.CONSUMER) as c:
        with p.reserve(length=10) as r:
            r.buf[:2] = b"no"
        p.push(b"yes", timeout=0)
        assert c.pop() == b"yes" and c.stat().depth == 0
        with p.reserve(length=0) as r:  # an empty reservation's view is writable too
            assert len(r.buf) == 0 and not r.buf.readonly
            r.buf[:0] = b""
            r.commit(0)
        assert c.pop() == b""
    rqshm.unlink(name + ".r")


def test_close_from_another_thread_ends_a_wait(name):
    """close() while another thread waits in pop(): the wait ends with
    EINVAL (the queue is closed), close() returns after it, and the
    handle is not freed under the waiting call."""
    c = rqshm.Queue.create(name, rqshm.CONSUMER, slot_count=4, slot_size=16)
    got = []

    def wait():
        try:
            c.pop(timeout=10)
        except Exception as e:  # noqa: B902 (what it raises is checked)
            got.append(e)
    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    c.close()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - t0 < 2
    assert len(got) == 1 and isinstance(got[0], rqshm.EINVAL) and "closed" in str(got[0])
    with pytest.raises(rqshm.EINVAL, match="closed"):
        c.pop(timeout=0)


def test_errors_pickle_and_copy():
    import copy
    import pickle
    with pytest.raises(rqshm.ENOENT) as e:
        rqshm.Queue.open("py.none.%d" % os.getpid(), rqshm.CONSUMER)
    for err in (e.value, rqshm.EBUSY(rqshm.EBUSY.code), rqshm.ESYS(rqshm.ESYS.code, 13)):
        for again in (pickle.loads(pickle.dumps(err)), copy.copy(err)):
            assert type(again) is type(err)
            assert again.code == err.code and again.errno == err.errno
            assert str(again) == str(err)


def test_a_peek_burst_guard_can_be_entered_again(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=8, slot_size=16) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        pb = c.peek_burst(2)
        p.push_burst([b"1", b"2", b"3"])
        with pb as views:
            assert [bytes(v) for v in views] == [b"1", b"2"] and pb.seqs == [0, 1]
        with pb as views:
            assert [bytes(v) for v in views] == [b"3"] and pb.seqs == [2]
        assert c.stat().depth == 0


def test_names_with_a_nul_or_of_another_type_are_refused(name):
    with pytest.raises(ValueError):
        rqshm.name_valid(name + "\0/../x")
    with pytest.raises(ValueError):
        rqshm.Queue.create(name + "\0x", rqshm.PRODUCER)
    with pytest.raises(TypeError):
        rqshm.Queue.open(7)
    assert rqshm.name_valid(name.encode())


def test_close_from_a_signal_handler_does_not_hang(name):
    """close() from a signal handler that Python runs inside this thread's
    own pop(): it cannot wait for that call, so it returns within
    CLOSE_WAIT and leaves the handle to be freed with the object; the
    pop ends as closed, and the role is free once the object is gone."""
    import gc
    import signal
    c = rqshm.Queue.create(name, rqshm.CONSUMER, slot_count=4, slot_size=16)
    took = []

    def handler(signum, frame):
        t0 = time.monotonic()
        c.close()
        took.append(time.monotonic() - t0)
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        # The handler runs once the library's wait has returned, inside
        # pop(), which then reports the queue closed.
        with pytest.raises(rqshm.EINVAL, match="closed"):
            c.pop(timeout=0.5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert len(took) == 1 and rqshm.CLOSE_WAIT * 0.9 <= took[0] < 1 and c.closed
    assert c._deferred  # left to the object's end, not freed under pop()
    with pytest.raises(rqshm.EINVAL, match="closed"):
        c.pop(timeout=0)
    del c
    gc.collect()
    with rqshm.Queue.open(name, rqshm.CONSUMER):
        pass


def test_an_interrupt_at_a_calls_start_leaves_no_mark(name):
    """A KeyboardInterrupt that Python raises as a call marks itself in
    progress (at the return of the append, where a signal handler may
    run) leaves no mark: close() then frees the handle at once instead of
    waiting for a call that is not there.  The interrupt is raised from a
    profile hook at that exact return."""
    import sys
    c = rqshm.Queue.create(name, rqshm.CONSUMER, slot_count=4, slot_size=16)
    marks = c._inflight
    calls = {"push": lambda q: q.push(b"x", 0), "pop": lambda q: q.pop(0),
             "stat": lambda q: q.stat(), "interrupt": lambda q: q.interrupt()}
    for what, call in calls.items():
        hit = []

        def at_the_marks_return(frame, event, arg):
            if event == "c_return" and getattr(arg, "__self__", None) is marks:
                sys.setprofile(None)
                hit.append(what)
                raise KeyboardInterrupt
        sys.setprofile(at_the_marks_return)
        try:
            call(c)
        except KeyboardInterrupt:
            pass
        except rqshm.Error:  # push as a consumer, pop of nothing: not interrupted
            pass
        finally:
            sys.setprofile(None)
        assert hit == [what], "%s never marked itself" % what
        assert marks == [], "%s left its mark" % what
    t0 = time.monotonic()
    c.close()
    assert time.monotonic() - t0 < rqshm.CLOSE_WAIT / 2 and not c._deferred


def test_timeouts_inf_and_nan(name):
    with rqshm.Queue.create(name, rqshm.CONSUMER, slot_count=4, slot_size=16) as c:
        t = threading.Timer(0.1, c.interrupt)
        t.start()
        with pytest.raises(rqshm.EINTR):
            c.pop(timeout=float("inf"))  # for ever, as None
        t.join()
        with pytest.raises(ValueError):
            c.pop(timeout=float("nan"))


def test_pop_burst_buffer_is_bounded(name):
    """On a record queue slot_count is a capacity in bytes: a large
    max_count must not size the copy buffer by it."""
    with rqshm.Queue.create(name, rqshm.PRODUCER, kind="records", capacity=1 << 20,
                            max_record=65536) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        p.push_burst([b"r%d" % i for i in range(100)])
        got = []
        while len(got) < 100:
            got += c.pop_burst(1 << 20)
        assert got == [b"r%d" % i for i in range(100)]
        assert c._burst_n * c.slot_size <= rqshm.BURST_BYTES
