#!/usr/bin/env bash
# Formats rq's C and C++ sources with clang-format (Debian's clang-format
# package; .clang-format has the style), or checks them.
#
#   scripts/format.sh          formats every file in place
#   scripts/format.sh --check  changes nothing; lists the files that
#                              differ from the style and exits 1 if any do
#
# The files are the tracked *.c, *.h, *.cpp and *.hpp.
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
case ${1:-} in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac
if ! command -v clang-format >/dev/null; then
  echo "clang-format is missing: apt-get install clang-format" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp' '*.hpp')
if ((check)); then
  drift=0
  for f in "${files[@]}"; do
    if ! clang-format --style=file "$f" | cmp -s - "$f"; then
      echo "not formatted: $f (scripts/format.sh formats it)"
      drift=1
    fi
  done
  ((drift == 0)) && echo "format: ${#files[@]} files match .clang-format"
  exit "$drift"
fi
clang-format --style=file -i "${files[@]}"
