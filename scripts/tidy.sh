#!/usr/bin/env bash
# Runs clang-tidy (Debian's clang-tidy package; .clang-tidy has the checks
# and why) over the library and the tools, as the debug preset compiles
# them, and fails on any warning.
#
#   scripts/tidy.sh            src/ and tools/ (bench/ and tests/ are not
#                              checked: test code does odd things on purpose)
#   scripts/tidy.sh FILE...    only those files
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-tidy >/dev/null; then
  echo "clang-tidy is missing: apt-get install clang-tidy" >&2
  exit 1
fi
# The debug build's compile commands: the same flags and definitions
# (RQ_FAULT_INJECTION, the test library's RQ_CRASH_POINTS) as the tests.
cmake --preset debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
if (($#)); then
  files=("$@")
else
  mapfile -t files < <(git ls-files 'src/*.c' 'tools/*.c' | grep -v 'platform_win\.c$\|objects_none\.c$')
fi
start=$(date +%s)
# Two at a time: the machine is shared.  --quiet leaves only findings.
if ! printf '%s\n' "${files[@]}" |
  xargs -P 2 -n 2 clang-tidy -p build/debug --quiet 2>/dev/null; then
  echo "clang-tidy: findings above (warnings are errors; .clang-tidy says why each check is on)" >&2
  exit 1
fi
echo "clang-tidy: ${#files[@]} files clean in $(($(date +%s) - start)) s"
