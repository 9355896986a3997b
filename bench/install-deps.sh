#!/usr/bin/env bash
# Installs the peers the performance benchmark measures mailpulse against
# (node_exporter and blackbox_exporter from Debian) and the tools it uses.
# Idempotent: packages already present are skipped. A temporary policy-rc.d
# keeps the package scripts from starting the exporters on their default
# ports (the benchmark starts its own copies on 127.0.0.1).
set -euo pipefail

PACKAGES=(prometheus-node-exporter prometheus-blackbox-exporter util-linux)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: need root to install: ${missing[*]}" >&2
  exit 1
fi

created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
