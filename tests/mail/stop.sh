#!/usr/bin/env bash
# Stops the Postfix and Dovecot started by tests/mail/setup.sh PREFIX, by the
# PIDs it recorded (never by name), and waits for them to exit. Postfix goes
# first: its smtpd processes hold connections to Dovecot's auth service.
set -euo pipefail

PREFIX=${1:-${MAILPULSE_MAIL_PREFIX:-/tmp/mailpulse-mail}}
[ -f "$PREFIX/env" ] || exit 0
# shellcheck disable=SC1091
. "$PREFIX/env"

stop_pid() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
}

stop_pid "${POSTFIX_PID:-}"
stop_pid "${POSTFIX_WRAPPER_PID:-}"
stop_pid "${DOVECOT_PID:-}"
rm -f "$PREFIX/env"
