#!/usr/bin/env bash
# Installs the real peers the tests drive. Idempotent.
set -euo pipefail
# age: the backup tests decrypt with the standard tool; systemd: systemd-analyze
# checks the shipped unit; dpkg: dpkg-deb lists the built package; chromium and
# libnss3-tools: the browser tests.
pkgs=(sip-tester baresip-core tshark sox sipvicious stunnel4 openssl iproute2 util-linux chromium libnss3-tools age systemd dpkg)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections || true
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
