#!/usr/bin/env bash
# The packages under a real systemd: boots a minimal Debian 12 root with
# systemd-nspawn (no network, bounded by a timeout) and, inside it, installs
# the .deb, sees the service reach active (READY=1), reloads it, freezes it
# (SIGSTOP) until the watchdog restarts it, upgrades it keeping a local config
# edit, and purges it. Run packaging/build.sh first (or pass the .deb files).
#
#   packaging/test-systemd.sh [FIRST.deb SECOND.deb]
#
# The debootstrapped root is cached in $MAILPULSE_NSPAWN_CACHE
# (default /var/cache/mailpulse-test); every run works on a fresh copy.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${MAILPULSE_NSPAWN_CACHE:-/var/cache/mailpulse-test}
BASE="$CACHE/bookworm-root-v2"
TIMEOUT=${MAILPULSE_NSPAWN_TIMEOUT:-240}

first=${1:-}
second=${2:-}
if [ -z "$first" ]; then
  first=$(ls -1 target/debian/mailpulse_*.deb | sort | head -n 1)
fi
if [ -z "$second" ]; then
  second=$(ls -1 target/debian/mailpulse_*.deb | sort | tail -n 1)
fi
[ -f "$first" ] && [ -f "$second" ] || { echo "no .deb found; run packaging/build.sh" >&2; exit 1; }

need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The Debian mirror this machine's apt already uses.
mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1 || true)
  fi
  echo "$uri"
}

if [ ! -x "$BASE/lib/systemd/systemd" ]; then
  mkdir -p "$CACHE"
  rm -rf "$BASE.partial"
  echo "debootstrapping a minimal Debian 12 root into $BASE (once)"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,procps bookworm "$BASE.partial" "$(mirror)" >/dev/null
  mv "$BASE.partial" "$BASE"
fi

work=$(mktemp -d /var/tmp/mailpulse-nspawn.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
results="$work/results"
mkdir -p "$results"
cp -a "$BASE" "$root"
cp "$first" "$results/first.deb"
cp "$second" "$results/second.deb"
cp packaging/nspawn-inside.sh "$root/usr/local/sbin/mailpulse-test"
chmod 755 "$root/usr/local/sbin/mailpulse-test"
cat > "$root/etc/systemd/system/mailpulse-test.service" <<'UNIT'
[Unit]
Description=mailpulse package test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/mailpulse-test
StandardOutput=file:/results/log
StandardError=inherit
UNIT
mkdir -p "$root/etc/systemd/system/default.target.wants"
ln -sf /etc/systemd/system/mailpulse-test.service "$root/etc/systemd/system/default.target.wants/mailpulse-test.service"

echo "booting the container (at most ${TIMEOUT}s)"
set +e
timeout "$TIMEOUT" systemd-nspawn -q -b -D "$root" --register=no --keep-unit --private-network \
  --console=pipe --bind="$results:/results" > "$work/console.log" 2>&1
rc=$?
set -e
cat "$results/log" 2>/dev/null || true
status=$(cat "$results/status" 2>/dev/null || echo "none")
if [ "$status" != "PASS" ]; then
  echo "--- container console (tail) ---"
  tail -n 40 "$work/console.log"
  echo "package test under systemd: FAILED (status: $status, nspawn exit: $rc)" >&2
  exit 1
fi
echo "package test under systemd: passed"
