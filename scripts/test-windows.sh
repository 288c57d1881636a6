#!/usr/bin/env bash
# Cross-builds rq for 64-bit Windows with mingw-w64 and runs the whole test
# suite under Wine (the `mingw` CMake preset).  Installs what a fresh Debian
# machine lacks (as root): mingw-w64, wine, dpkg-dev, and a deb-src entry so
# that scripts/mingw-deps.sh can build cmocka from Debian's source package.
# Not root and something missing: prints the exact commands and stops.
# Arguments go to ctest: scripts/test-windows.sh -R 'test_interrupt|test_queue'
# runs only those suites.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

source scripts/packages.sh
mapfile -t missing < <(rq_missing_packages cmake make mingw-w64 wine wine64 dpkg-dev xz-utils)

# apt-get source needs a deb-src entry; Debian images ship none.  One this
# script adds is removed again when it ends (with the package lists it
# brought), so that the machine keeps only the packages installed.
deb_src_file=/etc/apt/sources.list.d/rq-deb-src.sources
added_deb_src=0
remove_deb_src() {
  if ((added_deb_src)); then
    echo "== removing the deb-src entry $deb_src_file"
    rm -f "$deb_src_file"
    apt-get update -qq || true
    added_deb_src=0
  fi
}
trap 'remove_deb_src; wineserver -k 2>/dev/null || true' EXIT
have_deb_src() {
  grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/
}
need_cmocka=1
[[ -f build/mingw-deps/cmocka/lib/libcmocka.a ]] && need_cmocka=0
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

if ((${#missing[@]})) || { ((need_cmocka)) && ! have_deb_src; }; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing for the Windows build; run as root, or first:" >&2
    ((${#missing[@]})) && echo "  sudo apt-get install -y ${missing[*]}" >&2
    if ((need_cmocka)) && ! have_deb_src; then
      echo "  printf 'Types: deb-src\\nURIs: http://deb.debian.org/debian\\nSuites: $codename\\nComponents: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n' | sudo tee $deb_src_file" >&2
      echo "  sudo apt-get update" >&2
    fi
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ((need_cmocka)) && ! have_deb_src; then
    echo "== adding a deb-src entry ($deb_src_file) for apt-get source cmocka"
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$codename" > "$deb_src_file"
    added_deb_src=1
  fi
  apt-get update -qq
  if ((${#missing[@]})); then
    echo "== installing: ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

bash scripts/mingw-deps.sh
remove_deb_src # cmocka is built: the entry is needed no more

# A Wine prefix of our own, made once; the server is kept alive for the
# run (a process start then costs ~0.1 s instead of seconds).
export WINEPREFIX=$PWD/build/mingw/wineprefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
mkdir -p build/mingw
[[ -f $WINEPREFIX/system.reg ]] || echo "== making the Wine prefix $WINEPREFIX"
# Wine's own services (started by wineboot) outlive the programs that start
# them; started here with no pipes of ctest's, they cannot hold its output
# open.
wine wineboot </dev/null >/dev/null 2>&1 || true # makes the prefix, if new
wineserver -k 2>/dev/null || true                 # then a persistent server,
wineserver -w 2>/dev/null || true
wineserver -p </dev/null >/dev/null 2>&1 || true
wine wineboot </dev/null >/dev/null 2>&1 || true # and the services under it

echo "== build and test: mingw (under $(wine --version 2>/dev/null))"
cmake --preset mingw >/dev/null
cmake --build --preset mingw -j "$(nproc)"
ctest --preset mingw -j 1 "$@"
echo "== Windows tests passed under Wine in $(($(date +%s) - start)) s"
