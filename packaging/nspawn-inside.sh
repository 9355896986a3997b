#!/bin/bash
# Runs inside the container booted by packaging/test-systemd.sh, as a oneshot
# unit, with the packages in /results. Writes PASS or FAIL to /results/status,
# then powers the container off.
set -u
step() { echo "== $*"; }
finish() {
  echo "$1" > /results/status
  systemctl --no-block poweroff
  exit 0
}
fail() {
  echo "FAIL: $*"
  systemctl status mailpulse --no-pager -l || true
  journalctl -u mailpulse --no-pager -n 50 || true
  finish FAIL
}
# Waits up to $1 tenths of a second for the command to succeed.
wait_for() {
  local n=$1
  shift
  for _ in $(seq 1 "$n"); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}
healthz() {
  exec 3<>/dev/tcp/127.0.0.1/9717 || return 1
  printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
  grep -q '^ok' <&3
  local rc=$?
  exec 3<&-
  return $rc
}
prop() { systemctl show -p "$1" --value mailpulse; }

step "install"
dpkg -i /results/first.deb || fail "dpkg -i"
wait_for 100 systemctl is-active --quiet mailpulse || fail "service not active after install"
[ "$(prop Type)" = notify ] || fail "unit type is not notify"
wait_for 50 healthz || fail "/healthz does not answer"
systemctl status mailpulse --no-pager | grep -q 'Status: "probing' || fail "no STATUS= line"
[ -d /var/lib/mailpulse ] || fail "no state directory"

step "reload"
systemctl reload mailpulse || fail "systemctl reload"
wait_for 50 sh -c 'journalctl -u mailpulse --no-pager | grep -q "configuration reloaded"' || fail "no reload in the journal"
systemctl is-active --quiet mailpulse || fail "not active after reload"

step "watchdog"
mkdir -p /etc/systemd/system/mailpulse.service.d
printf '[Service]\nWatchdogSec=2s\nRestartSec=1s\n' > /etc/systemd/system/mailpulse.service.d/test-watchdog.conf
systemctl daemon-reload
systemctl restart mailpulse
wait_for 100 systemctl is-active --quiet mailpulse || fail "not active after restart"
pid=$(prop MainPID)
before=$(prop NRestarts)
kill -STOP "$pid"
wait_for 200 sh -c "[ \"\$(systemctl show -p NRestarts --value mailpulse)\" -gt $before ]" || fail "watchdog did not restart the frozen service"
wait_for 100 systemctl is-active --quiet mailpulse || fail "not active after the watchdog restart"
[ "$(prop MainPID)" != "$pid" ] || fail "same PID after the watchdog restart"
journalctl -u mailpulse --no-pager | grep -qi watchdog || fail "journal does not mention the watchdog"
rm -rf /etc/systemd/system/mailpulse.service.d
systemctl daemon-reload

step "upgrade keeps local edits"
echo "# local edit kept across upgrades" >> /etc/mailpulse/mailpulse.toml
dpkg -i --force-confold /results/second.deb || fail "dpkg -i (upgrade)"
grep -q "local edit kept across upgrades" /etc/mailpulse/mailpulse.toml || fail "upgrade replaced the edited config"
wait_for 100 systemctl is-active --quiet mailpulse || fail "not active after upgrade"

step "journal priorities"
# A secret file every user may read: the agent logs a warning at start,
# which journald must file as a warning (the <4> prefix), while info lines
# stay info.
printf 'owa-secret-never-logged\n' > /etc/mailpulse/owa.pw
chmod 0644 /etc/mailpulse/owa.pw
cat >> /etc/mailpulse/mailpulse.toml <<'TOML'

[[target]]
name = "owa"
kind = "http"
url = "https://127.0.0.1:9/"
interval = "1m"
username = "probe"
password_file = "owa.pw"
TOML
systemctl restart mailpulse || fail "restart with the warning"
wait_for 100 systemctl is-active --quiet mailpulse || fail "not active with the warning"
warnings() { journalctl -u mailpulse -p warning --no-pager -o cat; }
wait_for 100 sh -c 'journalctl -u mailpulse -p warning --no-pager -o cat | grep -q "configuration warning.*owa.pw is readable by others"' \
  || fail "journalctl -p warning does not show the agent's warning"
journalctl -u mailpulse -p 4..4 --no-pager -o cat | grep -q "configuration warning" || fail "the warning is not at priority 4"
warnings | grep -q "state directory" && fail "an info line is filed as a warning"
journalctl -u mailpulse -p info --no-pager -o cat | grep -q "state directory path=/var/lib/mailpulse" \
  || fail "the state directory is not logged at start"
journalctl -u mailpulse --no-pager -o cat | grep -q '^<[0-7]>' && fail "a priority prefix reached the journal unparsed"
journalctl -u mailpulse --no-pager | grep -q owa-secret-never-logged && fail "the secret reached the journal"
warnings | tail -n 3
# The agent read it at start; purge below expects only the package's files.
rm -f /etc/mailpulse/owa.pw

step "purge"
dpkg --purge mailpulse || fail "dpkg --purge"
[ ! -e /etc/mailpulse/mailpulse.toml ] || fail "config left after purge"
[ ! -e /var/lib/mailpulse ] && [ ! -e /var/lib/private/mailpulse ] || fail "state left after purge"
[ ! -e /usr/bin/mailpulse ] || fail "binary left after purge"
systemctl cat mailpulse >/dev/null 2>&1 && fail "unit left after purge"

step "all passed"
finish PASS
