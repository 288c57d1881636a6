#!/bin/bash
# model-check.sh - checks the Promela models of rq's protocol (model/*.pml)
# with spin: each run builds a verifier (spin -a, gcc) and searches the
# whole state space (no bitstate, no hash compaction).
#
#   scripts/model-check.sh          the CI set, 93 runs (66 of them took
#                                   1,937 s on a 2-core VM at load 15,
#                                   2026-12-05; quiet, a fraction of that:
#                                   44 runs took 114 s; the 24 bridge_out
#                                   runs, 122 s at load 3-4)
#   scripts/model-check.sh --deep   the CI set plus larger configurations
#                                   (longer than the CI set, up to 5 GB of RAM)
#
# Runs go two at a time (MODEL_JOBS, default 2: this is a 2-core machine).
# MODEL_ONLY=TEXT runs only the checks whose name contains TEXT.
# Every run has an expected outcome: "pass" (no error) for the code as it
# is, "fail" (spin finds a counterexample) for a variant with an injected
# bug or with a safety net removed.  The script exits non-zero if any run
# does not end as expected, so a model that can no longer fail fails too.
# Pan's outputs go to $MODEL_BUILD_DIR (default: build/model).
# Needs: spin, gcc (Debian packages spin, gcc).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${MODEL_BUILD_DIR:-$root/build/model}
deep=0
[ "${1:-}" = "--deep" ] && deep=1

command -v spin >/dev/null || { echo "model-check: spin not found (apt-get install spin)"; exit 2; }
command -v gcc >/dev/null || { echo "model-check: gcc not found"; exit 2; }
mkdir -p "$build"

jobs_max=${MODEL_JOBS:-2}
start_all=$(date +%s)
names=()

# run_one NAME MODEL EXPECT PROPERTY PAN_EXTRA SPIN_DEFINES...
#   PROPERTY: "safety" (assertions + invalid end states, -DSAFETY), or
#   the name of an ltl formula (acceptance cycles, weak fairness -f).
#   PAN_EXTRA: extra pan flags ("-A": ignore assertions, so that a
#   liveness failure must come from the formula itself), or "-".
run_one() {
    local name=$1 model=$2 expect=$3 prop=$4 extra=$5
    shift 5
    local dir=$build/$name
    rm -rf "$dir"
    mkdir -p "$dir"
    # a run expected to fail stops at its first error: not worth -O2
    local opt=-O2
    [ "$expect" = fail ] && opt=-O0
    # fence.pml has a few thousand states: compiling is all of its cost
    [ "$model" = fence ] && opt=-O0
    local t0 t1 out stored visited depth errors complete result secs label
    t0=$(date +%s.%N)
    (
        cd "$dir"
        spin "$@" -a "$root/model/$model.pml" >spin.out 2>&1 || { cat spin.out; exit 3; }
        if [ "$prop" = safety ]; then
            gcc $opt -w -DSAFETY -DNOCLAIM -o pan pan.c
            ./pan -m200000 >pan.out 2>&1 || true
        else
            gcc $opt -w -DNFAIR=3 -o pan pan.c
            [ "$extra" = - ] && extra=
            # shellcheck disable=SC2086
            ./pan -m200000 -a -f $extra -N "$prop" >pan.out 2>&1 || true
        fi
    ) || { echo "$name: spin/gcc failed" >"$dir/row"; echo bad >"$dir/status"; return; }
    t1=$(date +%s.%N)
    out=$dir/pan.out
    stored=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$out" | head -1)
    visited=$(sed -n 's/.*states, stored (\([0-9.e+]*\) visited).*/\1/p' "$out" | head -1)
    depth=$(sed -n 's/.*depth reached \([0-9]*\),.*/\1/p' "$out" | head -1)
    errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out" | head -1)
    complete=1
    grep -q 'max search depth too small' "$out" && complete=0
    [ -n "$errors" ] || { errors='?'; complete=0; }
    if [ "$expect" = pass ]; then
        [ "$errors" = 0 ] && [ $complete = 1 ] && result=ok || result=UNEXPECTED
    else
        [ "$errors" != 0 ] && [ "$errors" != '?' ] && result=ok || result=UNEXPECTED
    fi
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1fs", b - a }')
    label=$prop
    [ "$extra" = -A ] && label="$prop -A"
    {
        printf '%-32s %-18s %-6s %10s %11s %6s %6s %7s  %s\n' \
            "$name" "$label" "$expect" "${stored:-?}" "${visited:-$stored}" "${depth:-?}" "$errors" "$secs" "$result"
        if [ $result != ok ]; then
            grep -E '^pan:|error' "$out" | head -5 | sed 's/^/    /'
        elif [ "$expect" = fail ]; then
            grep -E '^pan:[0-9]' "$out" | head -1 | sed 's/^/    caught: /'
        fi
    } >"$dir/row"
    echo "$result" >"$dir/status"
}

# check NAME ...: queues run_one NAME ..., at most $jobs_max at a time;
# with MODEL_ONLY=TEXT, only the runs whose name contains TEXT (e.g.
# MODEL_ONLY=mpsc for the MPSC lock's runs).
check() {
    case "$1" in *"${MODEL_ONLY:-}"*) ;; *) return 0 ;; esac
    names+=("$1")
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n || true
    done
    run_one "$@" &
}

# ---- SPSC ring (model/spsc.pml) ----------------------------------------
S="-DN=2 -DM=4 -DPCRASH=2 -DCCRASH=2"
L="-DN=2 -DM=3 -DPCRASH=1 -DCCRASH=1"
check spsc-n2-m4-k2x2         spsc pass safety - $S
check spsc-n1-m3-k2x2         spsc pass safety - -DN=1 -DM=3 -DPCRASH=2 -DCCRASH=2
check spsc-live-delivered     spsc pass all_delivered - $L
check spsc-live-stranded      spsc pass none_stranded - $L
check spsc-bug1-no-recheck    spsc fail safety - $S -DBUG=1
check spsc-bug2-wake-first    spsc fail safety - $S -DBUG=2
check spsc-bug3-no-open-wake  spsc fail safety - $S -DBUG=3
check spsc-bug4-full-n+1      spsc fail safety - $S -DBUG=4
check spsc-bug5-seq-late      spsc fail safety - $S -DBUG=5
# sequence numbers and the redelivery flag (SEQ=1)
check spsc-seq-n2-m3-k1x2     spsc pass safety - -DN=2 -DM=3 -DPCRASH=1 -DCCRASH=2 -DSEQ=1
check spsc-bug6-position-first spsc fail safety - -DN=2 -DM=3 -DPCRASH=1 -DCCRASH=1 -DSEQ=1 -DBUG=6
check spsc-bug7-oldest-unflagged spsc fail safety - -DN=2 -DM=3 -DPCRASH=1 -DCCRASH=1 -DSEQ=1 -DBUG=7
check spsc-bug9-flags-two     spsc fail safety - -DN=2 -DM=3 -DPCRASH=1 -DCCRASH=1 -DSEQ=1 -DBUG=9
# kills between an offset and its position, life after life (N = 1: two
# lags of one reach 2N); the stored-back position keeps the lag at one
check spsc-seq-n1-m3-k2x2     spsc pass safety - -DN=1 -DM=3 -DPCRASH=2 -DCCRASH=2 -DSEQ=1
check spsc-bug8-no-anchor     spsc fail safety - -DN=1 -DM=3 -DPCRASH=2 -DCCRASH=2 -DSEQ=1 -DBUG=8
# positions stored once per PERIOD messages (the code: the largest power
# of two <= N).  M = 6 > 2N = 4 messages, so a lap is recovered from a
# stored copy: PERIOD = N passes; PERIOD = 2N stores at 4 only, and a
# kill between offset 4 (0 mod 2N) and that store leaves a lag of 2N,
# which must fail (rpos==released).
check spsc-seq-n2-m6-period2   spsc pass safety - -DN=2 -DM=6 -DPCRASH=1 -DCCRASH=1 -DSEQ=1 -DPERIOD=2
check spsc-seq-n2-m6-period4   spsc fail safety - -DN=2 -DM=6 -DPCRASH=1 -DCCRASH=1 -DSEQ=1 -DPERIOD=4
check spsc-bug1-live          spsc fail all_delivered -A $L -DBUG=1
# A side that dies for good between publishing and signalling: only the
# 1 s re-check (deadline.h) saves the sleeper.
check spsc-gone-no-recheck    spsc fail safety - $L -DPERMANENT=1
check spsc-gone-no-recheck-lv spsc fail none_stranded -A $L -DPERMANENT=1
check spsc-gone-recheck       spsc pass none_stranded - $L -DPERMANENT=1 -DRECHECK=1

# ---- record queues: padding at the wrap (model/records.pml) --------------
check records-c5-m6-k2x2      records pass safety - -DC=5 -DM=6 -DPCRASH=2 -DCCRASH=2
check records-bug1-header-late records fail safety - -DBUG=1
check records-bug2-pad-alone  records fail safety - -DBUG=2
check records-bug3-pad-kept   records fail safety - -DBUG=3
check records-bug4-room-no-pad records fail safety - -DBUG=4
# bursts: several records (padding inside the batch) in one store of the
# producer's word (rq_push_burst) and of the consumer's (the burst pops)
check records-batch2-c5-m6-k2x2 records pass safety - -DC=5 -DM=6 -DPCRASH=2 -DCCRASH=2 -DBATCH=2
check records-cbatch2-c5-m6-k2x2 records pass safety - -DC=5 -DM=6 -DPCRASH=2 -DCCRASH=2 -DCBATCH=2
check records-batch3x3-c5-m6-k2x2 records pass safety - -DC=5 -DM=6 -DPCRASH=2 -DCCRASH=2 -DBATCH=3 -DCBATCH=3
check records-batch2-bug4      records fail safety - -DBATCH=2 -DBUG=4
check records-cbatch2-bug3     records fail safety - -DCBATCH=2 -DBUG=3

# ---- the fences of the wait/wake handshake on x86-TSO (model/fence.pml) --
check fence-membarrier        fence pass safety - -DM=3
check fence-full-fences       fence pass safety - -DM=3 -DFULL=1
check fence-bug1-no-barrier   fence fail safety - -DM=2 -DBUG=1
check fence-bug2-plain-register fence fail safety - -DM=2 -DFULL=1 -DBUG=2
check fence-bug3-load-hoisted fence fail safety - -DM=2 -DBUG=3

# ---- a poller's arming against the signal through its object (model/poll.pml)
check poll-m3-k2              poll pass safety - -DM=3 -DK=2
check poll-m4-k3              poll pass safety - -DM=4 -DK=3
check poll-bug1-check-first   poll fail safety - -DBUG=1
check poll-bug2-drain-last    poll fail safety - -DBUG=2
check poll-bug3-write-first   poll fail safety - -DBUG=3
check poll-bug4-no-open-signal poll fail safety - -DBUG=4
check poll-bug5-drain-after-bit poll fail safety - -DBUG=5

# ---- MPSC lock (model/mpsc.pml) ----------------------------------------
# The owner-word lock's waiters loop (look, probe, flag, sleep), so its
# state space is larger than the old mutex's: one producer kill per run,
# not two, fits the time.
A="-DN=1 -DMP=1 -DPCRASH=1 -DCCRASH=0 -DCLOSES=0"
B="-DN=1 -DMP=1 -DPCRASH=0 -DCCRASH=1 -DCLOSES=0"
C="-DN=2 -DMP=2 -DPCRASH=0 -DCCRASH=0 -DCLOSES=0"
D="-DN=2 -DMP=1 -DPCRASH=0 -DCCRASH=0 -DCLOSES=1"
check mpsc-n1-pkill1          mpsc pass safety - $A
check mpsc-n2-pkill1          mpsc pass safety - -DN=2 -DMP=1 -DPCRASH=1 -DCCRASH=0 -DCLOSES=0
check mpsc-n1-ckill1          mpsc pass safety - $B
check mpsc-n2-two-sleepers    mpsc pass safety - $C
check mpsc-n2-close           mpsc pass safety - $D
check mpsc-live-delivered     mpsc pass all_delivered - -DN=1 -DMP=1 -DPCRASH=0 -DCCRASH=0 -DCLOSES=1
check mpsc-bug1-unlock-early  mpsc fail safety - $D -DBUG=1
check mpsc-bug2-wake-one      mpsc fail safety - $C -DBUG=2
check mpsc-bug4-no-probe      mpsc fail safety - $D -DBUG=4
check mpsc-bug5-was-full-cache mpsc fail safety - $C -DBUG=5
check mpsc-bug6-no-wake       mpsc fail safety - $D -DBUG=6
check mpsc-bug7-flag-before-store mpsc fail safety - $D -DBUG=7
check mpsc-bug9-recheck-before-flag mpsc fail safety - $D -DBUG=9
check mpsc-bug8-claim-no-wake mpsc fail safety - $C -DBUG=8
check mpsc-bug2-live          mpsc fail all_delivered -A $C -DBUG=2

# ---- coalescing (model/coalesce.pml) -----------------------------------
Q="-DK=1 -DWCRASH=2 -DRCRASH=1"
check coalesce-k1-w2-r1       coalesce pass safety - $Q
check coalesce-k2-w1          coalesce pass safety - -DK=2 -DWCRASH=1 -DRCRASH=0
check coalesce-live           coalesce pass owed_work_done - -DK=1 -DWCRASH=1 -DRCRASH=0
check coalesce-bug1-done-first coalesce fail safety - $Q -DBUG=1
check coalesce-bug2-plain-store coalesce fail safety - $Q -DBUG=2
check coalesce-bug3-no-wake   coalesce fail safety - $Q -DBUG=3
check coalesce-bug3-live      coalesce fail owed_work_done -A -DK=1 -DWCRASH=0 -DRCRASH=1 -DBUG=3
check coalesce-bug4-or-misses coalesce fail safety - $Q -DBUG=4
# A requester that dies for good: harmless with FUTEX_WAKE_OP (Linux); with
# Windows' two-step add-and-wake only the worker's re-check saves it.
check coalesce-gone           coalesce pass safety - $Q -DPERMANENT=1
check coalesce-win-gone       coalesce fail safety - $Q -DPERMANENT=1 -DWIN=1
check coalesce-win-gone-recheck coalesce pass owed_work_done - -DK=1 -DWCRASH=0 -DRCRASH=1 -DPERMANENT=1 -DWIN=1 -DRECHECK=1

# ---- rq-bridge out without message ids (model/bridge_out.pml) -----------
# The expected last sequence with Rq-Pos, recovery from the stream's last
# message; kills of the bridge whose wire keeps delivering, early give-ups.
# BIG: the position the stream refuses as too large (its marker takes its
# place); a window of 1 keeps even the marker-less dead-lettering safe.
# RAISE: the limit may be raised; PARK: no dead-letter queue.
O="-DM=3 -DW=2 -DKILLS=2 -DTIMEOUTS=1"
check bridge-m3-w2-k2-t1        bridge_out pass safety - $O
check bridge-m3-w2-k2-t2        bridge_out pass safety - -DM=3 -DW=2 -DKILLS=2 -DTIMEOUTS=2
check bridge-m3-w2-k3-t0        bridge_out pass safety - -DM=3 -DW=2 -DKILLS=3 -DTIMEOUTS=0
check bridge-m3-w2-wire4        bridge_out pass safety - $O -DWIRE=4
check bridge-m4-w3-k1-t0        bridge_out pass safety - -DM=4 -DW=3 -DKILLS=1 -DTIMEOUTS=0
check bridge-big1-k2-t0         bridge_out pass safety - -DM=3 -DW=2 -DKILLS=2 -DTIMEOUTS=0 -DBIG=1
check bridge-big1-k1-t1         bridge_out pass safety - -DM=3 -DW=2 -DKILLS=1 -DTIMEOUTS=1 -DBIG=1
check bridge-big0-k1-t1         bridge_out pass safety - -DM=3 -DW=2 -DKILLS=1 -DTIMEOUTS=1 -DBIG=0
check bridge-live-settled       bridge_out pass settled - $O
check bridge-live-big1-k1       bridge_out pass settled - -DM=3 -DW=2 -DKILLS=1 -DTIMEOUTS=1 -DBIG=1
check bridge-raise-big1-k1      bridge_out pass safety - -DM=3 -DW=2 -DKILLS=1 -DTIMEOUTS=1 -DBIG=1 -DRAISE=1
check bridge-raise-big1-k2-t0   bridge_out pass safety - -DM=3 -DW=2 -DKILLS=2 -DTIMEOUTS=0 -DBIG=1 -DRAISE=1
check bridge-park-big1-k1       bridge_out pass safety - -DM=3 -DW=2 -DKILLS=1 -DTIMEOUTS=1 -DBIG=1 -DPARK=1
check bridge-park-big0-k1       bridge_out pass safety - -DM=3 -DW=2 -DKILLS=1 -DTIMEOUTS=1 -DBIG=0 -DPARK=1
check bridge-park-big0-k2-t0    bridge_out pass safety - -DM=3 -DW=2 -DKILLS=2 -DTIMEOUTS=0 -DBIG=0 -DPARK=1
check bridge-live-park-big1-k1  bridge_out pass settled - -DM=3 -DW=2 -DKILLS=1 -DTIMEOUTS=1 -DBIG=1 -DPARK=1
check bridge-no-marker-w1       bridge_out pass safety - $O -DW=1 -DBIG=1 -DBUG=5
check bridge-bug1-no-release    bridge_out fail safety - $O -DBUG=1
check bridge-bug2-no-expected   bridge_out fail safety - $O -DBUG=2
check bridge-bug3-expect-base   bridge_out fail safety - $O -DBUG=3
check bridge-bug4-release-early bridge_out fail safety - $O -DBUG=4
check bridge-bug5-no-marker     bridge_out fail safety - $O -DBIG=1 -DBUG=5
check bridge-bug6-two-requests  bridge_out fail safety - $O -DBUG=6
check bridge-bug7-retry-live    bridge_out fail settled -A $O -DBUG=7

if [ $deep = 1 ]; then
    check deep-spsc-n2-m4-k3x3    spsc pass safety - -DN=2 -DM=4 -DPCRASH=3 -DCCRASH=3
    check deep-spsc-n2-m5-k2x2    spsc pass safety - -DN=2 -DM=5 -DPCRASH=2 -DCCRASH=2
    check deep-spsc-seq-n2-m4-k2x2 spsc pass safety - -DN=2 -DM=4 -DPCRASH=2 -DCCRASH=2 -DSEQ=1
    check deep-spsc-live-m4       spsc pass all_delivered - -DN=2 -DM=4 -DPCRASH=2 -DCCRASH=2
    check deep-mpsc-n1-pkill2-close mpsc pass safety - -DN=1 -DMP=1 -DPCRASH=2 -DCCRASH=0 -DCLOSES=1
    check deep-mpsc-n1-pkill1-ckill1 mpsc pass safety - -DN=1 -DMP=1 -DPCRASH=1 -DCCRASH=1 -DCLOSES=0
    check deep-mpsc-live-pkill1   mpsc pass all_delivered - $A
    check deep-records-c7-m8-k3x3 records pass safety - -DC=7 -DM=8 -DPCRASH=3 -DCCRASH=3
    check deep-coalesce-k2-w2-r1  coalesce pass safety - -DK=2 -DWCRASH=2 -DRCRASH=1
    check deep-coalesce-live      coalesce pass owed_work_done - -DK=1 -DWCRASH=1 -DRCRASH=1
    # raise and park take 4.3 and 4.1 GB: first and last, not side by side
    check deep-bridge-raise-big1-k2 bridge_out pass safety - -DM=3 -DW=2 -DKILLS=2 -DTIMEOUTS=1 -DBIG=1 -DRAISE=1
    check deep-bridge-big1-k2-t1  bridge_out pass safety - -DM=3 -DW=2 -DKILLS=2 -DTIMEOUTS=1 -DBIG=1
    check deep-bridge-big0-k2-t1  bridge_out pass safety - -DM=3 -DW=2 -DKILLS=2 -DTIMEOUTS=1 -DBIG=0
    check deep-bridge-m4-w3-k2-t1 bridge_out pass safety - -DM=4 -DW=3 -DKILLS=2 -DTIMEOUTS=1
    check deep-bridge-m4-big1-k2-t1 bridge_out pass safety - -DM=4 -DW=2 -DKILLS=2 -DTIMEOUTS=1 -DBIG=1
    check deep-bridge-live-big1-k2 bridge_out pass settled - -DM=3 -DW=2 -DKILLS=2 -DTIMEOUTS=1 -DBIG=1
    check deep-bridge-park-big0-k2 bridge_out pass safety - -DM=3 -DW=2 -DKILLS=2 -DTIMEOUTS=1 -DBIG=0 -DPARK=1
fi

wait
printf '%-32s %-18s %-6s %10s %11s %6s %6s %7s  %s\n' \
    run check expect stored visited depth errors time result
failures=0
for name in "${names[@]}"; do
    cat "$build/$name/row" 2>/dev/null || echo "$name: no result"
    [ "$(cat "$build/$name/status" 2>/dev/null)" = ok ] || failures=$((failures + 1))
done
end_all=$(date +%s)
echo "model-check: ${#names[@]} runs, $failures unexpected, $((end_all - start_all)) s" \
     "(exhaustive: no bitstate, no compression)"
[ $failures = 0 ]
