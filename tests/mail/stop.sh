#!/usr/bin/env bash
# Stops the Postfix and Dovecot started by tests/mail/setup.sh PREFIX, by the
# PIDs it recorded (never by name), and waits for them to exit.
set -euo pipefail

PREFIX=${1:-${MAILPULSE_MAIL_PREFIX:-/tmp/mailpulse-mail}}
[ -f "$PREFIX/env" ] || exit 0
# shellcheck disable=SC1091
. "$PREFIX/env"
for pid in "$POSTFIX_PID" "$DOVECOT_PID"; do
  kill -TERM "$pid" 2>/dev/null || true
done
for _ in $(seq 1 50); do
  alive=0
  for pid in "$POSTFIX_PID" "$DOVECOT_PID"; do
    kill -0 "$pid" 2>/dev/null && alive=1
  done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
rm -f "$PREFIX/env"
