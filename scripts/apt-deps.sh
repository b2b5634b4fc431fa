#!/usr/bin/env bash
# Installs the Debian packages Shoal needs, only when one is missing (idempotent, quiet when done).
set -euo pipefail
packages=(clang llvm libbpf-dev libbpf1 bpftool iproute2 ethtool nftables tcpdump curl socat
          gcc python3-dev python3-venv postgresql bird2 hping3 haproxy wrk netsniff-ng nginx
          prometheus chromium)  # chromium: the console's browser tests (Playwright drives it)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "shoal: installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || { echo "shoal: apt-get update failed" >&2; exit 1; }
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || { echo "shoal: apt-get install ${missing[*]} failed" >&2; exit 1; }
