"""Message numbers and redelivery flags of single messages (pop_info,
peek().seq / .redelivered), next_seq(), and Queue.open_wait."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import rqshm

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_n = 0


@pytest.fixture
def name():
    global _n
    _n += 1
    n = "pyseq.%d.%d" % (os.getpid(), _n)
    for _ in range(2):
        try:
            rqshm.unlink(n)
        except rqshm.ENOENT:
            pass
        if _ == 0:
            yield n


def test_numbers_are_consecutive_from_zero(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=16) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        assert p.next_seq() == 0 and c.next_seq() == 0
        seqs = []
        for i in range(10):  # past the ring's size: numbers are not slot indices
            p.push(b"m%d" % i)
            assert p.next_seq() == i + 1
            if i % 2:
                m = c.pop_info(timeout=0)
                assert isinstance(m, rqshm.Message) and not m.redelivered
                seqs.append(m.seq)
                assert m.data == b"m%d" % m.seq
            else:
                pk = c.peek(timeout=0)
                with pk as view:
                    assert bytes(view) == b"m%d" % pk.seq
                seqs.append(pk.seq)
                assert pk.redelivered is False
            assert c.next_seq() == i + 1
        assert seqs == list(range(10))
        with pytest.raises(rqshm.EAGAIN):
            c.pop_info(timeout=0)


def test_observer_has_no_next_seq(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=16), \
            rqshm.Queue.open(name, rqshm.OBSERVER) as o:
        with pytest.raises(rqshm.EROLE):
            o.next_seq()


def test_redelivered_after_the_consumer_died_holding_a_peek(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=16) as p:
        p.push_burst([b"zero", b"one", b"two"])
        with rqshm.Queue.open(name, rqshm.CONSUMER) as c:
            assert c.pop_info(timeout=0) == (b"zero", 0, False)
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import sys, time; sys.path.insert(0, %r); import rqshm\n"
             "q = rqshm.Queue.open(%r, rqshm.CONSUMER)\n"
             "with q.peek(timeout=5) as m:\n"
             "    print(bytes(m).decode(), flush=True); time.sleep(60)\n"
             % (PACKAGE_DIR, name)],
            stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "one"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        with rqshm.Queue.open(name, rqshm.CONSUMER) as c:
            pk = c.peek(timeout=0)
            with pytest.raises(RuntimeError):
                with pk as m:
                    assert bytes(m) == b"one"
                    raise RuntimeError("keep it")  # still held: closed below
            assert (pk.seq, pk.redelivered) == (1, True)
        with rqshm.Queue.open(name, rqshm.CONSUMER) as c:
            assert c.pop_info(timeout=0) == (b"one", 1, True)
            assert c.pop_info(timeout=0) == (b"two", 2, False)  # never handed out
            assert c.next_seq() == 3


def test_open_wait_returns_once_the_queue_is_created(name):
    def create_later():
        time.sleep(0.2)
        with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=16) as p:
            p.push(b"hello")
    t = threading.Thread(target=create_later)
    t0 = time.monotonic()
    t.start()
    try:
        with rqshm.Queue.open_wait(name, rqshm.CONSUMER, timeout=10) as c:
            assert time.monotonic() - t0 >= 0.15
            assert c.pop(timeout=5) == b"hello"
    finally:
        t.join()


def test_open_wait_times_out_with_enoent(name):
    # In a thread, so that a wait that ignored its bound fails the test
    # instead of hanging it.
    got = []

    def wait(timeout):
        t0 = time.monotonic()
        try:
            rqshm.Queue.open_wait(name, rqshm.CONSUMER, timeout=timeout).close()
            got.append(("opened", time.monotonic() - t0))
        except rqshm.Error as e:
            got.append((e, time.monotonic() - t0))
    for timeout in (0.2, 0):
        t = threading.Thread(target=wait, args=(timeout,), daemon=True)
        t.start()
        t.join(5)
        assert not t.is_alive(), "open_wait(timeout=%r) still waiting after 5 s" % timeout
        e, took = got.pop()
        assert isinstance(e, rqshm.ENOENT) and isinstance(e, LookupError), e
        assert timeout * 0.75 <= took < 5


def test_reserve_burst_publishes_what_is_committed(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=4, slot_size=16) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        with p.reserve_burst(8) as rb:  # at most slot_count
            assert len(rb) == 4 and all(len(b) == 16 for b in rb.bufs)
            rb.bufs[0][:3] = b"one"
            rb.bufs[1][:3] = b"two"
            rb.bufs[2][:5] = b"three"
            assert c.stat().depth == 0  # nothing visible before the commit
            rb.commit([3, 3])  # the first two; the rest dropped
        assert c.pop_burst(8) == [b"one", b"two"]
        with pytest.raises(RuntimeError):
            with p.reserve_burst(2) as rb:
                rb.bufs[0][:1] = b"x"
                raise RuntimeError("no commit")
        with p.reserve_burst(2) as rb:  # the dropped reservation does not hold it
            rb.bufs[0][:4] = b"lost"
        assert c.stat().depth == 0
        with p.reserve_burst(lengths=[2, 5]) as rb:
            assert [len(b) for b in rb.bufs] == [2, 5]
            rb.bufs[0][:] = b"ab"
            rb.bufs[1][:] = b"cdefg"
            rb.commit([2, 5])
        m = c.pop_info(timeout=0)
        assert m == (b"ab", 2, False) and c.pop(timeout=0) == b"cdefg"
        with pytest.raises(rqshm.EMSGSIZE):
            p.reserve_burst(lengths=[17])


def test_reserve_burst_on_a_record_queue(name):
    with rqshm.Queue.create(name, rqshm.PRODUCER, kind="records", capacity=256,
                            max_record=100) as p, rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        with pytest.raises(rqshm.EINVAL):
            p.reserve_burst(2)  # a record's room is its length
        with p.reserve_burst(lengths=[3, 40, 100]) as rb:
            assert [len(b) for b in rb.bufs] == [3, 40, 100]
            rb.bufs[0][:] = b"one"
            rb.bufs[1][:3] = b"two"
            rb.commit([3, 3])  # shorter than reserved: packed
        assert c.pop_burst(8) == [b"one", b"two"]
        assert c.stat().bytes_used == 0
