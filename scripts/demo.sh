#!/usr/bin/env bash
# Builds rq and runs the crash-recovery demo: a producer and a consumer
# exchanging messages while the demo SIGKILLs them again and again.
#   scripts/demo.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in cmake gcc make; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "missing: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DRQ_BUILD_TESTS=OFF -DRQ_BUILD_BENCH=OFF >/dev/null
cmake --build build/demo --target rq_demo -j "$(nproc)" >/dev/null
exec build/demo/examples/rq_demo "${1:-10}"
