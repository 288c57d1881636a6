#!/usr/bin/env bash
# bench/seq-cost.sh - what sequence numbers cost rq_push/rq_pop and
# rq_peek/rq_release, side by side with a reference build that has them
# taken out (docs/performance/sequence-numbers.md).
#
#   bench/seq-cost.sh [-R ROUNDS] [-d SECONDS] [--rev REV] [--keep]
#
# Builds two release trees from REV (default HEAD) in a temporary
# directory: "after", REV as it is, and "reference", REV with
# bench/seq-reference.patch applied (a single push or release only moves
# its offset on, wrapping at 2N, with no stop, lap or position store (a
# single rq_peek stores nothing in either build): not a usable build,
# since no message number is right, only the reference the cost is
# measured against; no switch in the library turns these off).  If the
# patch no longer applies, the script stops and says so: refresh it by
# taking the same two things out of src/ring.h again.
#
# Then:
#  - instructions per message (bench/rq_icount under callgrind: the copy
#    path and the zero-copy path, 8 and 64 B, and min-ring, the control,
#    whose code is the same in both builds).  Deterministic: load does not
#    change them.
#  - one-process throughput: rq_icount run natively (the same loop), the
#    thread's CPU time per message, the builds alternated for ROUNDS
#    rounds; per row the medians, their ratio and the per-round ratios.
#    No cache traffic between cores and no time lost to other processes:
#    on a 2-core VM the steadier of the two throughput measures.
#  - busy throughput: `rq_bench -t rq-spsc,rq-spsc-zc,min-ring -s 8,64
#    --no-latency --tput-modes busy -d SECONDS -r 1`, the two builds
#    alternated (after, reference; then reference, after; ...) for ROUNDS
#    rounds.  Per row: the median of the rounds and [min-max] for each
#    build, the ratio of the medians, and the median [min-max] of the
#    per-round ratios (after / reference of the same round, which cancels
#    slow drifts of the load).  min-ring, the same code in both builds,
#    shows what noise alone does to a ratio: a row's ratio means something
#    only where the control's ratios stay near 1.00 and tighter than it.
#
# Prints markdown tables ready for docs/performance/sequence-numbers.md.  Default: 8 rounds
# of 1 s, about 4 to 5 minutes on a quiet 2-core machine (the builds
# included).  Needs cmake, a C compiler, valgrind and python3.
set -euo pipefail

ROUNDS=8
DURATION=1
REV=HEAD
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    -R) ROUNDS="$2"; shift 2 ;;
    -d) DURATION="$2"; shift 2 ;;
    --rev) REV="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "seq-cost.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$ROUNDS" in '' | *[!0-9]* | 0) echo "seq-cost.sh: -R wants a count >= 1" >&2; exit 2 ;; esac

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(git -C "$HERE" rev-parse --show-toplevel)"
PATCH="$HERE/seq-reference.patch"
SHA="$(git -C "$REPO" rev-parse --verify "$REV^{commit}")"
for tool in cmake valgrind python3; do
    command -v "$tool" >/dev/null || { echo "seq-cost.sh: $tool not found" >&2; exit 2; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/rq-seq-cost.XXXXXX")"
cleanup() { if [ "$KEEP" = 1 ]; then echo "kept: $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# The two source trees: git archive, so that the working tree's state and
# git's worktree list are left alone.
for b in after reference; do
    mkdir -p "$WORK/$b/src"
    git -C "$REPO" archive "$SHA" | tar -x -C "$WORK/$b/src"
done
if ! (cd "$WORK/reference/src" && git apply --check "$PATCH" 2>"$WORK/apply.err"); then
    echo "seq-cost.sh: FAILED: bench/seq-reference.patch no longer applies to ${SHA:0:12}:" >&2
    cat "$WORK/apply.err" >&2
    echo "Refresh it: make rq_ring_push_publish and rq_ring_pop_publish (src/ring.h)" \
        "only move their offset on (wrapping at 2N) and publish it," \
        "then git diff > bench/seq-reference.patch." >&2
    exit 1
fi
(cd "$WORK/reference/src" && git apply "$PATCH")

for b in after reference; do
    echo "building $b (${SHA:0:12}) ..." >&2
    cmake -S "$WORK/$b/src" -B "$WORK/$b/build" -DCMAKE_BUILD_TYPE=Release \
        -DRQ_BUILD_TESTS=OFF -DRQ_BUILD_TOOLS=OFF -DRQ_BUILD_EXAMPLES=OFF -DRQ_INSTALL=OFF \
        >"$WORK/$b/configure.log" 2>&1 || { cat "$WORK/$b/configure.log" >&2; exit 1; }
    cmake --build "$WORK/$b/build" -j2 --target rq_bench rq_icount \
        >"$WORK/$b/build.log" 2>&1 || { tail -30 "$WORK/$b/build.log" >&2; exit 1; }
done

# Instructions per message, counted in measured_run only.
ICOUNT_MSGS=16000
: >"$WORK/icount.txt"
for b in after reference; do
    for spec in copy:8 copy:64 zc:8 zc:64 min-ring:8 min-ring:64; do
        path="${spec%%:*}" size="${spec##*:}"
        out="$WORK/$b/callgrind.$path.$size"
        valgrind --tool=callgrind --toggle-collect=measured_run --callgrind-out-file="$out" \
            "$WORK/$b/build/bench/rq_icount" "$path" "$ICOUNT_MSGS" "$size" >/dev/null 2>&1 ||
            { echo "seq-cost.sh: callgrind of rq_icount $path $size ($b) failed" >&2; exit 1; }
        ir="$(awk '/^(summary|totals):/ { print $2; exit }' "$out")"
        echo "$b $path $size $ir" >>"$WORK/icount.txt"
    done
done

# ROUNDS rounds of "$1 BUILD ROUND" for both builds, the order swapped
# every round (after, reference; then reference, after; ...), so that a
# slow drift of the load favours neither; with a second argument, a line
# on stderr after each round.
alternate() {
    local fn="$1" progress="${2:-}" i b order
    for ((i = 1; i <= ROUNDS; i++)); do
        order="after reference"
        [ $((i % 2)) = 0 ] && order="reference after"
        for b in $order; do
            "$fn" "$b" "$i"
        done
        [ -z "$progress" ] || echo "  round $i/$ROUNDS done" >&2
    done
}

# One-process throughput: rq_icount run natively prints the CPU time per
# message of its measured loop (no cache traffic between cores, and the
# time other processes take does not count), the builds alternated.
CPU_MSGS=8000000
cpu_round() { # BUILD ROUND
    local b="$1" i="$2" spec path size ns
    for spec in copy:8 copy:64 zc:8 zc:64 min-ring:8 min-ring:64; do
        path="${spec%%:*}" size="${spec##*:}"
        ns="$("$WORK/$b/build/bench/rq_icount" "$path" "$CPU_MSGS" "$size" |
            sed -n 's/.* \([0-9.]*\) ns of CPU per message$/\1/p')"
        [ -n "$ns" ] || { echo "seq-cost.sh: rq_icount $path $size ($b) failed" >&2; exit 1; }
        echo "$b $path $size $i $ns" >>"$WORK/cpu.txt"
    done
}
echo "one-process CPU time: $ROUNDS rounds of both builds ..." >&2
: >"$WORK/cpu.txt"
alternate cpu_round

# Throughput: the builds alternated, the order swapped every round.
tput_round() { # BUILD ROUND
    "$WORK/$1/build/bench/rq_bench" -t rq-spsc,rq-spsc-zc,min-ring -s 8,64 --no-latency \
        --tput-modes busy -d "$DURATION" -r 1 --csv "$WORK/$1/tput.$2.csv" >/dev/null 2>&1 ||
        { echo "seq-cost.sh: rq_bench ($1, round $2) failed" >&2; exit 1; }
}
echo "throughput: $ROUNDS rounds of both builds, -d $DURATION ..." >&2
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
alternate tput_round progress
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$WORK" "$ROUNDS" "$ICOUNT_MSGS" "${SHA:0:12}" "$DURATION" "$LOAD_BEFORE" \
    "$LOAD_AFTER" <<'EOF'
import csv, statistics, sys, time
work, rounds, msgs, sha, dur, load0, load1 = sys.argv[1:8]
rounds, msgs = int(rounds), int(msgs)

ic = {}
for line in open(f"{work}/icount.txt"):
    b, path, size, ir = line.split()
    ic[b, path, int(size)] = int(ir) / msgs
names = {"copy": "`rq_push` / `rq_pop`",
         "zc": "`rq_reserve`+`rq_commit` / `rq_peek`+`rq_release`",
         "min-ring": "min-ring (control)"}
print(f"Sequence numbers: what they cost, {sha}, "
      f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}\n")
print(f"Instructions per message (bench/rq_icount, callgrind, release -O2, "
      f"{msgs:,} messages in batches of 16):\n")
print("| path | size | reference | after | after - reference | after / reference |")
print("|---|--:|--:|--:|--:|--:|")
for path in ("copy", "zc", "min-ring"):
    for size in (8, 64):
        a, r = ic["after", path, size], ic["reference", path, size]
        print(f"| {names[path]} | {size} B | {r:.1f} | {a:.1f} | {a - r:+.1f} | {a / r:.3f} |")

cpu = {}
for line in open(f"{work}/cpu.txt"):
    b, path, size, i, ns = line.split()
    cpu.setdefault((path, int(size)), {}).setdefault(b, {})[int(i)] = float(ns)
print(f"\nOne process, CPU time per message (`rq_icount PATH 8000000 SIZE` run natively: "
      f"the thread's CPU time over its loop, the two builds alternated, {rounds} rounds "
      f"each: median [min-max] ns; throughput ratio = reference ns / after ns):\n")
print("| path | size | reference ns | after ns | throughput after / reference (medians) "
      "| per round: median [min-max] |")
print("|---|--:|--:|--:|--:|--:|")
for path in ("min-ring", "copy", "zc"):
    for size in (8, 64):
        a, r = cpu[path, size]["after"], cpu[path, size]["reference"]
        ratios = [r[i] / a[i] for i in sorted(a) if i in r and a[i] > 0]
        va, vr = list(a.values()), list(r.values())
        print(f"| {names[path]} | {size} B | {statistics.median(vr):.2f} [{min(vr):.2f}-{max(vr):.2f}] "
              f"| {statistics.median(va):.2f} [{min(va):.2f}-{max(va):.2f}] "
              f"| {statistics.median(vr) / statistics.median(va):.3f} "
              f"| {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}] |")

tp = {}
for b in ("after", "reference"):
    for i in range(1, rounds + 1):
        for row in csv.DictReader(open(f"{work}/{b}/tput.{i}.csv")):
            tp.setdefault((row["transport"], int(row["size"])), {}).setdefault(b, {})[i] = \
                float(row["msgs_per_s"]) / 1e6

def span(v):
    return f"{statistics.median(v):.3g} [{min(v):.3g}-{max(v):.3g}]"

print(f"\nBusy throughput, M msg/s (`rq_bench -t rq-spsc,rq-spsc-zc,min-ring -s 8,64 "
      f"--no-latency --tput-modes busy -d {dur} -r 1`, the two builds alternated, "
      f"{rounds} rounds each: median [min-max]; load average {load0} before, "
      f"{load1} after):\n")
print("| row | reference | after | after / reference (medians) "
      "| after / reference per round: median [min-max] |")
print("|---|--:|--:|--:|--:|")
for t in ("min-ring", "rq-spsc", "rq-spsc-zc"):
    for size in (8, 64):
        d = tp.get((t, size))
        if not d or set(d) != {"after", "reference"}:
            print(f"| {t} {size} B | missing | | | |")
            continue
        a, r = d["after"], d["reference"]
        ratios = [a[i] / r[i] for i in sorted(a) if i in r and r[i] > 0]
        label = f"{t} (control)" if t == "min-ring" else t
        print(f"| {label} {size} B | {span(list(r.values()))} | {span(list(a.values()))} "
              f"| {statistics.median(a.values()) / statistics.median(r.values()):.3f} "
              f"| {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}] |")
print("\nThe control's per-round ratios show the noise: a row's ratio says something only "
      "where it lies outside the control's spread, and the target (after / reference >= 0.97) "
      "is shown only when the control stays within a few percent of 1.00.")
EOF
