#!/usr/bin/env bash
# libFuzzer runs of rq's two hostile-segment targets (fuzz/; the input
# format is in fuzz/harness.h), built with the `fuzz` preset (clang,
# ASan + UBSan).
#
#   scripts/fuzz.sh                 CI: build, replay the committed corpus
#                                   (fuzz/corpus/<target>), then fuzz each
#                                   target for RQ_FUZZ_SECONDS (default 30)
#                                   from the fixed seed RQ_FUZZ_SEED (default
#                                   1; 0 = libFuzzer picks one), so a red run
#                                   is a finding that replays, and a new
#                                   finding comes from --long runs, not from
#                                   the luck of a CI run
#   scripts/fuzz.sh --long SECONDS  fuzz each target SECONDS, then report
#                                   coverage: libFuzzer's cov/ft and the line
#                                   coverage of src/ (llvm-cov, build/fuzz-coverage)
#
# Exits non-zero on any crash, sanitizer report, leak, hang (-timeout) or
# result the API does not allow (the harness traps).  New corpus entries go
# to build/fuzz/corpus/<target> and crash inputs to build/fuzz/artifacts/:
# the committed corpus is only read.  A crash replays with
#   build/fuzz/fuzz/<target> build/fuzz/artifacts/<file>   (FZ_TRACE=1: each call)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${RQ_FUZZ_SECONDS:-30}
seed=${RQ_FUZZ_SEED:-1}
long=0
if [[ ${1:-} == --long ]]; then
  long=1
  seconds=${2:?usage: scripts/fuzz.sh --long SECONDS}
  seed=${RQ_FUZZ_SEED:-0}
elif [[ $# -gt 0 ]]; then
  echo "usage: scripts/fuzz.sh [--long SECONDS]" >&2
  exit 2
fi

packages=(cmake make clang libclang-rt-14-dev)
((long)) && packages+=(llvm-14)
source scripts/packages.sh
rq_install_packages "${packages[@]}"

targets=(fuzz_segment fuzz_peer fuzz_bridge_text)
declare -A max_len=([fuzz_segment]=8192 [fuzz_peer]=1024 [fuzz_bridge_text]=256)
build=build/fuzz
jobs=$(nproc)
((jobs > 2)) && jobs=2

# Objects of fuzz processes that died (a crash skips their atexit).
clean_stale_objects() {
  local f pid
  for f in /dev/shm/rq.fz.* /dev/shm/rqc.fz.* /dev/shm/rql.fz.* /dev/shm/rqcl.fz.*; do
    [[ -e $f ]] || continue
    pid=${f##*.}
    kill -0 "$pid" 2>/dev/null || rm -f "$f"
  done
}
trap clean_stale_objects EXIT

echo "== build: fuzz preset"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$build/artifacts"

# The harness's own message and the sanitizer's report, from a failed run.
show_failure() {
  grep -E -A25 'rq fuzz:|ERROR:|runtime error' "$1" | head -60 || tail -40 "$1"
}

# The named seeds of fuzz_segment are images of valid objects; one made
# with an older segment format is refused at the version check and
# reaches nothing behind it.  Each must carry the format fuzz_seeds writes
# now (the image follows the 16-byte head: magic, then layout_version).
echo "== seeds: the named images carry today's segment formats"
fresh="$build/seeds-now"
rm -rf "$fresh"
mkdir -p "$fresh"/{fuzz_segment,fuzz_peer,fuzz_bridge_text}
"$build/fuzz/fuzz_seeds" "$fresh" >/dev/null
for f in "$fresh"/fuzz_segment/*; do
  n=$(basename "$f")
  c=fuzz/corpus/fuzz_segment/$n
  if [[ ! -f $c || $(od -An -tx4 -j24 -N4 "$f") != $(od -An -tx4 -j24 -N4 "$c") ]]; then
    echo "FAIL: $c is missing or carries an old segment format: copy the named seeds" \
      "from $fresh/fuzz_segment (fuzz/make_seeds.c)" >&2
    exit 1
  fi
done

for t in "${targets[@]}"; do
  echo "== replay: $t ($(ls fuzz/corpus/$t | wc -l) committed inputs)"
  log="$build/replay-$t.log"
  if ! "$build/fuzz/$t" -runs=0 -artifact_prefix="$build/artifacts/$t-replay-" \
      "fuzz/corpus/$t" >"$log" 2>&1; then
    show_failure "$log"
    echo "FAIL: replaying fuzz/corpus/$t (log: $log)" >&2
    exit 1
  fi
done

# Prints "target: N executions in S s (R/s), cov C ft F, corpus K" from a log.
summary() {
  local t=$1 log=$2 runs secs last
  read -r runs secs < <(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 \2/p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  local cov ft corp
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  echo "$t: ${runs:-?} executions in ${secs:-?} s ($(( ${runs:-0} / (${secs:-1} > 0 ? ${secs:-1} : 1) ))/s), cov ${cov:-?} ft ${ft:-?}, corpus ${corp:-?} inputs"
}

status=0
results=()
for t in "${targets[@]}"; do
  echo "== fuzz: $t for $seconds s (seed $seed)"
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  log="$build/fuzz-$t.log"
  if "$build/fuzz/$t" -max_total_time="$seconds" -seed="$seed" -timeout=10 -max_len="${max_len[$t]}" \
      -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
      "$corpus" "fuzz/corpus/$t" >"$log" 2>&1; then
    results+=("$(summary "$t" "$log")")
  else
    show_failure "$log"
    echo "FAIL: $t crashed; input in $build/artifacts/ (log: $log)" >&2
    results+=("$t: CRASHED")
    status=1
  fi
  echo "   ${results[-1]}"
done

if ((long && status == 0)); then
  echo "== coverage: fuzz-coverage preset, replaying every corpus"
  cmake --preset fuzz-coverage >/dev/null
  cmake --build --preset fuzz-coverage -j "$jobs" >/dev/null
  cov=build/fuzz-coverage
  rm -f "$cov"/*.profraw
  objects=()
  for t in "${targets[@]}"; do
    LLVM_PROFILE_FILE="$cov/$t.profraw" "$cov/fuzz/$t" -runs=0 \
      "$build/corpus/$t" "fuzz/corpus/$t" >"$cov/replay-$t.log" 2>&1
    objects+=(-object "$cov/fuzz/$t")
  done
  llvm-profdata-14 merge -sparse "$cov"/*.profraw -o "$cov/fuzz.profdata"
  llvm-cov-14 report "${objects[@]:1}" -instr-profile="$cov/fuzz.profdata" src/ | tee "$cov/report.txt"
  echo "   (per line: llvm-cov-14 show ${objects[*]:1} -instr-profile=$cov/fuzz.profdata src/)"
fi

echo "== fuzz summary"
printf '   %s\n' "${results[@]}"
exit $status
