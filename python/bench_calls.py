#!/usr/bin/env python3
"""bench_calls.py - what one push plus one pop of 64 bytes costs through
rqshm in one process (no second process, no waiting): the Python layer's
own cost, which python/bench.py's rates include.  Several trees side by
side, runs alternated, the best of each run's repeats:

    RQ_LIBRARY=build/release/librq.so python3 python/bench_calls.py \\
        old=/tmp/old/python new=python --runs 4

Each NAME=DIR imports rqshm from DIR in a process of its own.
"""
import argparse
import os
import subprocess
import sys
import time

MESSAGES, REPEATS = 100_000, 7


def measure():
    """In the child: the best of REPEATS rounds of MESSAGES push + pop, in ns."""
    import rqshm
    name = "bench-calls.%d" % os.getpid()
    best = float("inf")
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=1024, slot_size=64) as p, \
            rqshm.Queue.open(name, rqshm.CONSUMER) as c:
        msg = b"x" * 64
        for _ in range(REPEATS):
            t = time.perf_counter()
            for _ in range(MESSAGES // 1000):
                for _ in range(1000):
                    p.push(msg)
                for _ in range(1000):
                    c.pop()
            best = min(best, (time.perf_counter() - t) / MESSAGES)
    rqshm.unlink(name)
    return best * 1e9


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.path.insert(0, sys.argv[2])
        print("%.1f" % measure())
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trees", nargs="+", help="NAME=DIR: rqshm imported from DIR")
    ap.add_argument("--runs", type=int, default=4)
    a = ap.parse_args()
    trees = [t.split("=", 1) for t in a.trees]
    results = {n: [] for n, _ in trees}
    for _ in range(a.runs):
        for n, d in trees:
            out = subprocess.run([sys.executable, __file__, "--child", os.path.abspath(d)],
                                 check=True, capture_output=True, text=True).stdout
            results[n].append(float(out))
    first = trees[0][0]
    for n, _ in trees:
        ratios = [x / y for x, y in zip(results[n], results[first])]
        print("%-8s ns per push+pop: %s   vs %s per run: %s" % (
            n, " ".join("%.0f" % x for x in results[n]), first,
            " ".join("%.2f" % r for r in ratios)))


if __name__ == "__main__":
    main()
