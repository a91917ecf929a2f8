#!/usr/bin/env bash
# Install the Debian packages a target needs, if any are missing.
#   scripts/install-deps.sh test|fuzz|run
# As root it runs apt-get; otherwise it prints the command to run.
set -euo pipefail
want=(gcc make pkg-config libcriterion-dev libjansson-dev libpcre2-dev libedit-dev python3 python3-numpy python3-jinja2
      libopenblas-dev libopenmpi-dev openmpi-bin python3-torch groff-base
      libmicrohttpd-dev libsodium-dev libsqlite3-dev curl python3-prometheus-client)
case "${1:-test}" in
  fuzz) want+=(clang libclang-rt-14-dev) ;;
esac
command -v node >/dev/null 2>&1 || want+=(nodejs npm)
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
