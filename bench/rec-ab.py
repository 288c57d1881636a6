#!/usr/bin/env python3
"""bench/rec-ab.py - two builds of rec_bench side by side, round by round.

    bench/rec-ab.py [-R ROUNDS] [--pairs N] [--single] A/bench/rec_bench B/bench/rec_bench

Round i runs A then B, round i + 1 B then A (so a drift of the machine
falls on both alike), each `rec_bench --pairs N` (default 3: the 64-byte
and the log-mix comparisons, records against slots; with --single in one
process, CPU time, rather than two busy processes).  For each comparison
it prints, as each round ends, the record rate of B over A's (medians of
their pairs) and the round's slot rate (the mean of the two runs'
medians): the slot path's code is the same in both builds, so its rate
tells the machine's state (this VM has run the same slot queue anywhere
from 5 to 84 M msgs/s).  Then the median [min-max] of those ratios, over
all rounds and split by state: rounds whose slot rate is at or above the
median of all rounds' and those below it.  A and B may be the same
binary (an A/A run: the noise alone).  Linux only, as rec_bench.
"""
import argparse
import re
import statistics
import subprocess
import sys

PAIR = re.compile(r"pair\s+\d+: slots\s+([\d.]+)\s+records\s+([\d.]+) (M msgs/s|MB/s)")


def run(binary, pairs, single):
    """One rec_bench run: {'64': [(slots, records)...], 'mix': [...]}."""
    argv = [binary, "--pairs", str(pairs)] + (["--single"] if single else [])
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600).stdout
    got = {"64": [], "mix": []}
    for line in out.splitlines():
        m = PAIR.search(line)
        if m:
            got["64" if m.group(3) == "M msgs/s" else "mix"].append(
                (float(m.group(1)), float(m.group(2))))
    if len(got["64"]) != pairs or len(got["mix"]) != pairs:
        sys.exit(f"rec-ab: {binary} printed {len(got['64'])} and {len(got['mix'])} pairs, "
                 f"not {pairs} each")
    if any(r <= 0 or s <= 0 for k in got for s, r in got[k]):
        sys.exit(f"rec-ab: {binary} printed a rate of 0")
    return got


def spread(xs):
    return f"{statistics.median(xs):.3f} [{min(xs):.3f}-{max(xs):.3f}] ({len(xs)} rounds)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-R", type=int, default=8, help="rounds (default 8)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--single", action="store_true", help="rec_bench --single: one process")
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    if args.R < 1 or not 1 <= args.pairs <= 64:
        sys.exit("rec-ab: -R wants a count >= 1, --pairs 1..64")
    kinds = (("64", "M msgs/s"), ("mix", "MB/s"))
    ratios = {k: [] for k, _ in kinds}
    states = {k: [] for k, _ in kinds}
    for i in range(args.R):
        if i % 2 == 0:
            a = run(args.a, args.pairs, args.single)
            b = run(args.b, args.pairs, args.single)
        else:
            b = run(args.b, args.pairs, args.single)
            a = run(args.a, args.pairs, args.single)
        line = []
        for kind, unit in kinds:
            rec_a = statistics.median(r for _, r in a[kind])
            rec_b = statistics.median(r for _, r in b[kind])
            slots = (statistics.median(s for s, _ in a[kind]) +
                     statistics.median(s for s, _ in b[kind])) / 2
            ratios[kind].append(rec_b / rec_a)
            states[kind].append(slots)
            line.append(f"{kind} {rec_b / rec_a:.3f} (slots {slots:.1f} {unit})")
        print(f"round {i + 1:2d} ({'AB' if i % 2 == 0 else 'BA'}): " + ", ".join(line), flush=True)
    for kind, unit in kinds:
        rs, ss = ratios[kind], states[kind]
        print(f"{kind}: records B / A per round, the slot rate in {unit} beside each:")
        print("  " + "  ".join(f"{r:.3f}@{s:.0f}" for r, s in zip(rs, ss)))
        cut = statistics.median(ss)
        fast = [r for r, s in zip(rs, ss) if s >= cut]
        slow = [r for r, s in zip(rs, ss) if s < cut]
        print(f"  all rounds: {spread(rs)}")
        print(f"  slot rate >= {cut:.1f}: {spread(fast)}")
        if slow:
            print(f"  slot rate <  {cut:.1f}: {spread(slow)}")


if __name__ == "__main__":
    main()
