#!/usr/bin/env bash
# Runs clang-tidy (Debian's clang-tidy package; .clang-tidy has the checks
# and why) over the library and the tools, as the debug preset compiles
# them, and fails on any warning.  scripts/test-all.sh runs it (full mode
# only) as its own stage.
#
#   scripts/tidy.sh            src/ and tools/ (bench/ and tests/ are not
#                              checked: test code does odd things on purpose)
#   scripts/tidy.sh FILE...    only those files
#
# RQ_TIDY_JOBS sets how many clang-tidy processes run at once (default 2:
# the machine is shared).
set -euo pipefail
cd "$(dirname "$0")/.."
# Installs Debian's clang-tidy if missing (as root; otherwise prints the
# apt-get line and stops).
source scripts/packages.sh
rq_install_packages clang-tidy
# The debug build's compile commands (the debug preset exports them): the
# same flags and definitions (RQ_FAULT_INJECTION, the test library's
# RQ_CRASH_POINTS) as the tests.  One configure, reused when test-all.sh
# has already made it.
if [[ ! -f build/debug/compile_commands.json ]]; then
  cmake --preset debug >/dev/null
fi
if (($#)); then
  files=("$@")
else
  # Largest first: the static analyzer's time grows with the file, and
  # src/queue.c alone takes about half of it, so it must start at once
  # for the parallel run to end when it does.  platform_win.c and
  # objects_none.c are not in the Linux compile database.
  mapfile -t files < <(git ls-files 'src/*.c' 'tools/*.c' |
    grep -v 'platform_win\.c$\|objects_none\.c$' | xargs wc -c |
    grep -v ' total$' | sort -rn | awk '{print $2}')
fi
start=$(date +%s)
# One file per clang-tidy process, RQ_TIDY_JOBS at a time.  --quiet leaves
# only findings on stdout; of stderr, the "N warnings generated" counts of
# suppressed (system header) warnings are dropped, anything else (a crash,
# a file it cannot read) is shown.
if ! printf '%s\n' "${files[@]}" |
  xargs -P "${RQ_TIDY_JOBS:-2}" -n 1 clang-tidy -p build/debug --quiet \
    2> >(grep -v '^[0-9]* warnings\? generated\.$' >&2); then
  echo "clang-tidy: findings above (warnings are errors; .clang-tidy says why each check is on)" >&2
  exit 1
fi
echo "clang-tidy: ${#files[@]} files clean in $(($(date +%s) - start)) s"
