#!/usr/bin/env python3
"""bench/delay_compare.py - the delivery-delay samples of several runs of
rq_delay, pooled per build, side by side.

    RQ_DELAY_DUMP=/tmp/a.txt build-a/bench/rq_delay 3 10 rq,futex   # alternate
    RQ_DELAY_DUMP=/tmp/b.txt build-b/bench/rq_delay 3 10 rq,futex   # these two
    ...
    bench/delay_compare.py /tmp/a.txt /tmp/b.txt

Each FILE holds "TRANSPORT NS" lines (rq_delay appends them when
RQ_DELAY_DUMP names the file).  Prints, per file and transport, the
messages, p50, p99, p99.9 and max in microseconds, how many messages in
10,000 took longer than 0.5, 1 and 2 ms, and each transport's p99 and
p99.9 over the same file's futex: the futex ran in the same rounds, so
the ratio is what the build changed, the machine's noise divided out as
far as it can be.
"""
import sys


def quantile(sorted_values, q):
    return sorted_values[int(q * (len(sorted_values) - 1))] / 1e3


def load(path):
    samples = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            name, ns = line.split()
            samples.setdefault(name, []).append(int(ns))
    return {name: sorted(v) for name, v in samples.items()}


def main(paths):
    if not paths:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: delay_compare.py FILE...", file=sys.stderr)
        return 2
    print("| file | transport | messages | p50 us | p99 us | p99.9 us | max us "
          "| > 0.5 / 1 / 2 ms per 10k | p99 / futex | p99.9 / futex |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for path in paths:
        pools = load(path)
        futex = pools.get("futex")
        for name, v in sorted(pools.items()):
            over = " / ".join(f"{sum(x > t for x in v) * 1e4 / len(v):.1f}"
                              for t in (500e3, 1e6, 2e6))
            ratios = ("", "")
            if futex and name != "futex":
                ratios = tuple(f"{quantile(v, q) / quantile(futex, q):.2f}"
                               if quantile(futex, q) > 0 else "-"
                               for q in (0.99, 0.999))
            print(f"| {path} | {name} | {len(v)} | {quantile(v, 0.5):.1f} "
                  f"| {quantile(v, 0.99):.1f} | {quantile(v, 0.999):.1f} "
                  f"| {v[-1] / 1e3:.0f} | {over} | {ratios[0]} | {ratios[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
