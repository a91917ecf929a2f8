#!/usr/bin/env bash
# The Debian packages each make target needs, installed when missing.
#
#   scripts/install-deps.sh run        what building and running cgpt needs (make, make run;
#                                      node/npm build the page)
#   scripts/install-deps.sh test       + the test tool chain (make test): Criterion, Python
#                                      oracles (NumPy, PyTorch, Jinja2), node/npm, curl, MPI
#   scripts/install-deps.sh fuzz       + clang and its sanitizer runtime (make fuzz)
#   scripts/install-deps.sh list MODE  print the packages MODE wants, one line
#   scripts/install-deps.sh check      say which build libraries pkg-config cannot find and
#                                      which packages provide them; exit 1 if any (the
#                                      Makefile runs this before compiling)
#
# As root, run/test/fuzz install with apt-get; otherwise they print the
# command to run and exit 1.
set -euo pipefail

# pkg-config module -> the Debian package that provides it (the Makefile's PKGS).
declare -A PC_PKG=(
  [jansson]=libjansson-dev [libpcre2-8]=libpcre2-dev [libedit]=libedit-dev
  [openblas]=libopenblas-dev [ompi-c]=libopenmpi-dev [libmicrohttpd]=libmicrohttpd-dev
  [libsodium]=libsodium-dev [sqlite3]=libsqlite3-dev
  [icu-uc]=libicu-dev [icu-i18n]=libicu-dev [libcurl]=libcurl4-openssl-dev
)
run_pkgs=(gcc make pkg-config libjansson-dev libpcre2-dev libedit-dev libopenblas-dev
          libopenmpi-dev libmicrohttpd-dev libsodium-dev libsqlite3-dev libicu-dev
          libcurl4-openssl-dev)
# node and npm build the page (web/); a machine that has node already keeps its own
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || run_pkgs+=(nodejs npm)
test_pkgs=(libcriterion-dev python3 python3-numpy python3-jinja2 python3-torch
           python3-prometheus-client openmpi-bin groff-base curl
           chromium fonts-dejavu-core)  # the page test drives Debian's chromium
fuzz_pkgs=(clang libclang-rt-14-dev)

wanted() { # MODE -> the package list on stdout
  case "$1" in
    run) echo "${run_pkgs[*]}" ;;
    test) echo "${run_pkgs[*]} ${test_pkgs[*]}" ;;
    fuzz) echo "$(wanted test) ${fuzz_pkgs[*]}" ;;
    *) echo "install-deps: unknown mode '$1' (run, test, fuzz)" >&2; exit 2 ;;
  esac
}

case "${1:-test}" in
  list) wanted "${2:-test}"; exit 0 ;;
  check)
    if ! command -v pkg-config >/dev/null 2>&1; then
      echo "cgpt: pkg-config is not installed, so the libraries cannot be found." >&2
      echo "cgpt: 'make deps' (as root) installs what building needs; 'make run' installs, builds and starts cgpt" >&2
      exit 1
    fi
    missing=()
    for mod in "${!PC_PKG[@]}"; do
      pkg-config --exists "$mod" 2>/dev/null || missing+=("${PC_PKG[$mod]}")
    done
    [ ${#missing[@]} -eq 0 ] && exit 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort)
    echo "cgpt: cannot build: missing libraries (Debian packages ${missing[*]})" >&2
    echo "cgpt: 'make deps' installs them (as root; otherwise it prints the apt-get command)," >&2
    echo "cgpt: and 'make run' installs, builds and starts cgpt in one step" >&2
    exit 1 ;;
esac

read -r -a want <<<"$(wanted "${1:-test}")"
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "cgpt: missing packages: ${missing[*]}" >&2
  echo "cgpt: run as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "cgpt: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
