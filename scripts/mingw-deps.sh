#!/usr/bin/env bash
# Builds cmocka for mingw-w64 as a static library, from Debian's own cmocka
# source package (Debian ships no mingw build of it), into build/mingw-deps.
#   scripts/mingw-deps.sh            -> build/mingw-deps/cmocka/{include,lib}
# Needs: mingw-w64, cmake, dpkg-dev, and a deb-src entry for apt-get source
# (scripts/test-windows.sh adds one when run as root).  Idempotent: does
# nothing when the library is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
deps=$root/build/mingw-deps
prefix=$deps/cmocka
if [[ -f $prefix/lib/libcmocka.a && -f $prefix/include/cmocka.h ]]; then
  echo "== cmocka for mingw: already in $prefix"
  exit 0
fi
mkdir -p "$deps/src"
cd "$deps/src"
if ! ls -d cmocka-*/ >/dev/null 2>&1; then
  echo "== fetching Debian's cmocka source package"
  apt-get source -qq cmocka
fi
src=$(ls -d "$deps"/src/cmocka-*/ | head -1)
echo "== building $(basename "$src") with x86_64-w64-mingw32-gcc"
cmake -S "$src" -B "$deps/cmocka-build" \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-mingw64.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DWITH_STATIC_LIB=ON -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF \
  -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
cmake --build "$deps/cmocka-build" --target cmocka-static -j 2 >/dev/null
mkdir -p "$prefix/lib" "$prefix/include"
cp "$deps/cmocka-build/src/libcmocka-static.a" "$prefix/lib/libcmocka.a"
cp "$src/include/cmocka.h" "$prefix/include/"
echo "== cmocka for mingw: $prefix/lib/libcmocka.a"
