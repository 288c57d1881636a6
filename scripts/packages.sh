# Sourced by the scripts that need Debian packages (test-all.sh, fuzz.sh,
# test-windows.sh): one place that tells what is missing and installs it.

# Prints, one per line, those of the named Debian packages that are not
# installed.
rq_missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

# Installs those of the named packages that are missing (as root), or,
# not root, prints the exact apt-get line and exits 1.
rq_install_packages() {
  local missing
  mapfile -t missing < <(rq_missing_packages "$@")
  ((${#missing[@]})) || return 0
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages; run as root, or first:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "== installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
