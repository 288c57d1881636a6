#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks (as root), then builds and runs
# every rq test: the format check (scripts/format.sh --check), the
# documentation's links (scripts/check-doc-links.py), clang-tidy
# (scripts/tidy.sh, full mode only), the debug build, the
# AddressSanitizer+UBSan build, the threaded suites under ThreadSanitizer,
# a short libFuzzer pass (scripts/fuzz.sh), the spin model check
# (scripts/model-check.sh), the quick mutation-testing subset
# (scripts/mutate.sh --quick), then the Windows build under Wine
# (scripts/test-windows.sh).
# Not root and something missing: prints the exact apt-get line and stops.
#
#   scripts/test-all.sh            everything (about 23 minutes on 2 cores once
#                                  the packages are in; Wine alone takes about 6)
#   scripts/test-all.sh --quick    the debug build and its tests only (C, C++,
#                                  Python, rqctl, package): a few minutes; no
#                                  clang-tidy, sanitizers, fuzzing, model
#                                  check or Wine.
#                                  RQ_QUICK=1 does the same.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${RQ_QUICK:-0}
case ${1:-} in
  --quick) quick=1 ;;
  "") ;;
  *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac
start=$(date +%s)

source scripts/packages.sh
# util-linux: setpriv, with which test_rqctl.py runs rqctl as a second user.
rq_install_packages cmake gcc g++ make pkg-config libcmocka-dev libjansson-dev libboost-dev \
  python3 python3-cffi python3-pytest python3-pip python3-setuptools python3-venv groff-base \
  clang libclang-rt-14-dev spin util-linux \
  libnats-dev nats-server libuv1-dev clang-format clang-tidy

# The layout first: a file off .clang-format fails in seconds, not after
# the builds (scripts/format.sh formats it).
echo "== format check"
bash scripts/format.sh --check
# The documentation's links: every relative markdown link of README.md and
# docs/ names a file and a heading that exist (well under a second).
echo "== doc links"
python3 scripts/check-doc-links.py

jobs=$(nproc)
if ((quick)); then
  echo "== quick: build and test: debug"
  cmake --preset debug >/dev/null
  cmake --build --preset debug -j "$jobs"
  ctest --preset debug -j 1
  echo "== quick tests passed in $(($(date +%s) - start)) s (scripts/test-all.sh runs everything)"
  exit 0
fi
# clang-tidy over src/ and tools/ with the debug configure's compile
# database (the loop below reuses that configure): about a minute of two
# cores, so the quick mode leaves it out.
echo "== clang-tidy"
cmake --preset debug >/dev/null
tidy_start=$(date +%s)
bash scripts/tidy.sh
echo "== clang-tidy took $(($(date +%s) - tidy_start)) s"
for preset in debug asan; do
  echo "== build and test: $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  ctest --preset "$preset" -j 1
done
# ThreadSanitizer: the suites with threads in one process (label threads).
echo "== build and test: tsan (threaded suites)"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs"
ctest --preset tsan -j 1
# Fuzzing (clang, ASan + UBSan): replay the committed corpus, then 30 s per
# target.  RQ_FUZZ_SECONDS changes the time.
echo "== fuzz"
bash scripts/fuzz.sh
# The protocol's Promela models, checked with spin (about a minute): every
# check of the code as it is must pass, every injected bug must be caught.
echo "== model check"
bash scripts/model-check.sh
# Mutation testing, the quick subset (a minute or two): each realistic bug
# of tests/mutants/catalogue marked quick must make its test fail
# (scripts/mutate.sh alone runs the whole catalogue).
echo "== mutation testing (quick)"
bash scripts/mutate.sh --quick
# Windows: cross-built with mingw-w64, run under Wine (installs what it
# needs, as root).  RQ_SKIP_WINDOWS=1 leaves it out.
if [[ ${RQ_SKIP_WINDOWS:-0} != 1 ]]; then
  bash scripts/test-windows.sh
fi
echo "== all tests passed in $(($(date +%s) - start)) s"
