#!/usr/bin/env python3
"""bench.py - rqshm against multiprocessing.Queue and multiprocessing.Pipe,
in the same run: a producer process sends N messages of SIZE bytes (rqshm
also with push_burst / pop_burst of 32 at a time), the
consumer (this process) receives them; the time is from the first message
received to the last.  Repeats are interleaved (every round runs each
transport once, in a rotated order) so that a change in the machine's load
falls on all of them alike; the table gives the median rate, the spread
(min..max), and the ratio to multiprocessing.Queue taken within each
round (median and range over the rounds).

    RQ_LIBRARY=build/release/librq.so python3 python/bench.py [--size 64]
        [--count 200000] [--rounds 5] [--markdown]
"""
import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rqshm  # noqa: E402


def rq_producer(name, count, payload, ready):
    with rqshm.Queue.open(name, rqshm.PRODUCER) as q:
        ready.wait()
        push = q.push
        for _ in range(count):
            push(payload)


def run_on_fresh_queue(tag, producer, consume, count, size, ready_evt_factory):
    """A new queue named after TAG and this process, PRODUCER(name, count,
    payload, ready) in a child process, CONSUME(q) here: returns what
    CONSUME returns (messages and seconds) as a rate, checks the last
    message's size."""
    name = "%s.%d" % (tag, os.getpid())
    try:
        rqshm.unlink(name)
    except rqshm.ENOENT:
        pass
    payload = b"x" * size
    with rqshm.Queue.create(name, rqshm.CONSUMER, slot_count=1024, slot_size=max(size, 64)) as q:
        ready = ready_evt_factory()
        p = mp.Process(target=producer, args=(name, count, payload, ready))
        p.start()
        ready.set()
        timed, seconds, last = consume(q)
        p.join()
        assert len(last) == size
    rqshm.unlink(name)
    return timed / seconds


def run_rq(count, size, ready_evt_factory):
    def consume(q):
        pop = q.pop
        pop()
        t0 = time.perf_counter()
        for _ in range(count - 1):
            m = pop()
        return count - 1, time.perf_counter() - t0, m

    return run_on_fresh_queue("bench-py", rq_producer, consume, count, size, ready_evt_factory)


BURST = 32


def rq_burst_producer(name, count, payload, ready):
    with rqshm.Queue.open(name, rqshm.PRODUCER) as q:
        ready.wait()
        push_burst = q.push_burst
        batch = [payload] * BURST
        left = count
        while left > 0:
            left -= push_burst(batch if left >= BURST else batch[:left])


def run_rq_burst(count, size, ready_evt_factory):
    """rqshm with push_burst / pop_burst of BURST messages."""
    def consume(q):
        pop_burst = q.pop_burst
        got = first = len(pop_burst(BURST, None))
        t0 = time.perf_counter()
        while got < count:
            ms = pop_burst(BURST, None)
            got += len(ms)
        return count - first, time.perf_counter() - t0, ms[-1]

    return run_on_fresh_queue("bench-pyb", rq_burst_producer, consume, count, size,
                              ready_evt_factory)


def queue_producer(q, count, payload, ready):
    ready.wait()
    for _ in range(count):
        q.put(payload)


def run_mp_queue(count, size, ready_evt_factory):
    q = mp.Queue(maxsize=1024)
    ready = ready_evt_factory()
    p = mp.Process(target=queue_producer, args=(q, count, b"x" * size, ready))
    p.start()
    ready.set()
    get = q.get
    get()
    t0 = time.perf_counter()
    for _ in range(count - 1):
        m = get()
    t1 = time.perf_counter()
    p.join()
    assert len(m) == size
    return (count - 1) / (t1 - t0)


def pipe_producer(conn, count, payload, ready):
    ready.wait()
    send = conn.send_bytes
    for _ in range(count):
        send(payload)
    conn.close()


def run_mp_pipe(count, size, ready_evt_factory):
    recv_end, send_end = mp.Pipe(duplex=False)
    ready = ready_evt_factory()
    p = mp.Process(target=pipe_producer, args=(send_end, count, b"x" * size, ready))
    p.start()
    send_end.close()
    ready.set()
    recv = recv_end.recv_bytes
    recv()
    t0 = time.perf_counter()
    for _ in range(count - 1):
        m = recv()
    t1 = time.perf_counter()
    p.join()
    assert len(m) == size
    return (count - 1) / (t1 - t0)


TRANSPORTS = [("rqshm", run_rq), ("rqshm burst %d" % BURST, run_rq_burst),
              ("multiprocessing.Queue", run_mp_queue), ("multiprocessing.Pipe", run_mp_pipe)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--count", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    mp.set_start_method("fork")
    rates = {n: [] for n, _ in TRANSPORTS}
    for r in range(args.rounds):
        order = TRANSPORTS[r % len(TRANSPORTS):] + TRANSPORTS[:r % len(TRANSPORTS)]
        for name, fn in order:
            rates[name].append(fn(args.count, args.size, mp.Event))
            print("round %d %-22s %10.0f msg/s" % (r + 1, name, rates[name][-1]),
                  file=sys.stderr)
    # Ratio to multiprocessing.Queue within each round (the two ran a few
    # seconds apart), then the median and range of those.
    base = rates["multiprocessing.Queue"]
    rows = []
    for name, _ in TRANSPORTS:
        r = rates[name]
        paired = [a / b for a, b in zip(r, base)]
        rows.append((name, statistics.median(r), min(r), max(r), statistics.median(paired),
                     min(paired), max(paired)))
    if args.markdown:
        print("| transport (%d B, %d msgs x %d rounds) | median msg/s | min .. max | "
              "vs multiprocessing.Queue, per round: median (min .. max) |"
              % (args.size, args.count, args.rounds))
        print("|---|---:|---:|---:|")
        for name, med, lo, hi, ratio, rlo, rhi in rows:
            print("| %s | %.0f | %.0f .. %.0f | %.1fx (%.1f .. %.1f) |"
                  % (name, med, lo, hi, ratio, rlo, rhi))
    else:
        for name, med, lo, hi, ratio, rlo, rhi in rows:
            print("%-22s median %10.0f msg/s  (min %.0f, max %.0f)  %.1fx mp.Queue (%.1f .. %.1f)"
                  % (name, med, lo, hi, ratio, rlo, rhi))
    return 0


if __name__ == "__main__":
    sys.exit(main())
