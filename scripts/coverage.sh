#!/usr/bin/env bash
# Line and branch coverage of src/ by the debug test suite (the coverage
# preset: the debug build with gcov), reported by gcovr (Debian's gcovr
# package).  Prints the per-file table and the totals; the HTML report
# goes to build/coverage/coverage.html.
#
#   scripts/coverage.sh            build, run the suite (as ctest --preset
#                                  debug: everything but the soak tests), report
#   scripts/coverage.sh --report   report on the counts of the last run only
#
# Children that exit write their counts (tests/helpers.c calls __gcov_dump
# before _exit); children killed on purpose, at a crash point or by a
# test, cannot, so code that only such children run counts as unexercised.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/packages.sh
rq_install_packages gcovr
if [[ ${1:-} != --report ]]; then
  cmake --preset coverage >/dev/null
  cmake --build --preset coverage -j 2
  find build/coverage -name '*.gcda' -delete
  ctest --preset coverage -j 1 || echo "== some tests failed: coverage is of what ran" >&2
fi
# -fprofile-update=atomic (the preset) keeps the counts of threads right;
# the package test's scratch builds are not rq's.
gcovr --root . --object-directory build/coverage --filter 'src/' \
  --exclude-directories 'build/coverage/tests/package-test' \
  --exclude-unreachable-branches \
  --txt - --html build/coverage/coverage.html --print-summary
