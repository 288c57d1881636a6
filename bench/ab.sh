#!/usr/bin/env bash
# bench/ab.sh - two builds of rq side by side: rq_bench alternated between
# them, round by round, and a table of what moved and what noise does.
#
#   bench/ab.sh [-R ROUNDS] [--keep] A B [-- RQ_BENCH_ARGS...]
#
# A and B: each a git revision of this repository (built in Release from
# `git archive` in a temporary directory, so the working tree and git's
# worktree list are left alone) or dir:PATH, an existing build directory
# holding bench/rq_bench (e.g. dir:build/release).  RQ_BENCH_ARGS default
# to the MPSC comparison:
#   -t rq-mpsc-1p,rq-mpsc-2p,rq-mpsc-3p,boost-mq,boost-mq-2p,boost-mq-3p,mutex-ring-1p
#   -s 8,64 --no-latency --tput-modes busy,block -d 1
# (ab.sh adds -r 1 and --csv).  Round i runs A then B, round i + 1 B then
# A, ROUNDS rounds (default 8).
#
# Prints a markdown table, one line per row of rq_bench (transport, mode,
# size): median [min-max] M msg/s of each build, the ratio of the medians
# B / A, and the median [min-max] of the per-round ratios B / A (within
# one round, so slow drifts of the load fall on both alike), and the
# load average (1 min) before each round: median [min-max].  Rows whose
# code is the same in both builds (other transports, e.g. boost-mq,
# mutex-ring) are the control: a ratio means something only outside the
# spread of theirs.  Needs cmake, a C/C++ compiler and python3.
set -euo pipefail

ROUNDS=8
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    -R) ROUNDS="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "ab.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
    esac
done
case "$ROUNDS" in '' | *[!0-9]* | 0) echo "ab.sh: -R wants a count >= 1" >&2; exit 2 ;; esac
[ $# -ge 2 ] || { echo "ab.sh: two builds wanted: A B (see --help)" >&2; exit 2; }
SPEC_A="$1" SPEC_B="$2"
shift 2
if [ $# -gt 0 ]; then
    [ "$1" = "--" ] || { echo "ab.sh: '--' expected before rq_bench's arguments" >&2; exit 2; }
    shift
fi
if [ $# -gt 0 ]; then
    ARGS=("$@")
else
    ARGS=(-t "rq-mpsc-1p,rq-mpsc-2p,rq-mpsc-3p,boost-mq,boost-mq-2p,boost-mq-3p,mutex-ring-1p"
        -s "8,64" --no-latency --tput-modes "busy,block" -d 1)
fi

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(git -C "$HERE" rev-parse --show-toplevel)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rq-ab.XXXXXX")"
cleanup() { if [ "$KEEP" = 1 ]; then echo "kept: $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# The rq_bench of SPEC, built if it is a revision.  Prints its path.
bench_of() {
    local spec="$1" side="$2"
    if [ "${spec#dir:}" != "$spec" ]; then
        local exe="${spec#dir:}/bench/rq_bench"
        [ -x "$exe" ] || { echo "ab.sh: no $exe" >&2; return 1; }
        (cd "$(dirname "$exe")" && echo "$PWD/rq_bench")
        return 0
    fi
    local sha
    sha="$(git -C "$REPO" rev-parse --verify "$spec^{commit}")" ||
        { echo "ab.sh: $spec is no revision" >&2; return 1; }
    mkdir -p "$WORK/$side/src"
    git -C "$REPO" archive "$sha" | tar -x -C "$WORK/$side/src"
    echo "building $side: $spec (${sha:0:12}) ..." >&2
    cmake -S "$WORK/$side/src" -B "$WORK/$side/build" -DCMAKE_BUILD_TYPE=Release \
        -DRQ_BUILD_TESTS=OFF -DRQ_BUILD_TOOLS=OFF -DRQ_BUILD_EXAMPLES=OFF -DRQ_INSTALL=OFF \
        >"$WORK/$side/configure.log" 2>&1 || { cat "$WORK/$side/configure.log" >&2; return 1; }
    cmake --build "$WORK/$side/build" -j2 --target rq_bench >"$WORK/$side/build.log" 2>&1 ||
        { tail -30 "$WORK/$side/build.log" >&2; return 1; }
    echo "$WORK/$side/build/bench/rq_bench"
}
BENCH_A="$(bench_of "$SPEC_A" a)"
BENCH_B="$(bench_of "$SPEC_B" b)"

: >"$WORK/load.txt"
for ((i = 1; i <= ROUNDS; i++)); do
    order="a b"
    [ $((i % 2)) = 0 ] && order="b a"
    for side in $order; do
        exe="$BENCH_A"
        [ "$side" = b ] && exe="$BENCH_B"
        echo "$i $side $(cut -d' ' -f1 /proc/loadavg)" >>"$WORK/load.txt"
        mkdir -p "$WORK/$side"
        "$exe" "${ARGS[@]}" -r 1 --csv "$WORK/$side/tput.$i.csv" >/dev/null 2>&1 ||
            { echo "ab.sh: rq_bench ($side, round $i) failed" >&2; exit 1; }
    done
    echo "  round $i/$ROUNDS done (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done

python3 - "$WORK" "$ROUNDS" "$SPEC_A" "$SPEC_B" "${ARGS[*]}" <<'EOF'
import csv, statistics, sys, time
work, rounds, spec_a, spec_b, args = sys.argv[1:6]
rounds = int(rounds)
tp, order = {}, []
for side in ("a", "b"):
    for i in range(1, rounds + 1):
        for row in csv.DictReader(open(f"{work}/{side}/tput.{i}.csv")):
            key = (row["transport"], row["mode"], int(row["size"]))
            if key not in tp:
                order.append(key)
            tp.setdefault(key, {}).setdefault(side, {})[i] = float(row["msgs_per_s"]) / 1e6
loads = [float(l.split()[2]) for l in open(f"{work}/load.txt")]

def span(v):
    return f"{statistics.median(v):.3g} [{min(v):.3g}-{max(v):.3g}]"

print(f"A = {spec_a}, B = {spec_b}, {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}: "
      f"`rq_bench {args} -r 1`, alternated (A B, B A, ...) for {rounds} rounds; "
      f"load average (1 min) before each run: {span(loads)}.  M msg/s, median [min-max]:\n")
print("| row | mode | size | A | B | B / A (medians) | B / A per round: median [min-max] |")
print("|---|---|--:|--:|--:|--:|--:|")
for key in order:
    t, mode, size = key
    d = tp[key]
    if set(d) != {"a", "b"}:
        print(f"| {t} | {mode} | {size} B | missing | | | |")
        continue
    a, b = d["a"], d["b"]
    ratios = [b[i] / a[i] for i in sorted(b) if i in a and a[i] > 0]
    print(f"| {t} | {mode} | {size} B | {span(list(a.values()))} | {span(list(b.values()))} "
          f"| {statistics.median(b.values()) / statistics.median(a.values()):.3f} "
          f"| {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}] |")
EOF
