#!/usr/bin/env bash
# A throwaway Postfix submission server on 127.0.0.1 for the e-mail receiver
# test, with Dovecot answering SASL only (no IMAP/POP).
#
#   tests/alert/postfix.sh start PREFIX   start; writes PREFIX/env once it answers
#   tests/alert/postfix.sh stop PREFIX    stop the PIDs recorded in PREFIX/env
#
# PREFIX/env holds KEY=VALUE lines: SUBMISSION_PORT (STARTTLS required, AUTH
# after TLS only), USER, PASSWORD_FILE, CA_FILE, MAILDIR (where mail for
# ops@alert.test lands), POSTFIX_PID, DOVECOT_PID. Needs root, postfix,
# dovecot-core and openssl (.ci/install-deps). Stops by recorded PID only.
set -euo pipefail

cmd=${1:?usage: postfix.sh start|stop PREFIX}
PREFIX=${2:?usage: postfix.sh start|stop PREFIX}

stop_pid() {
  [ -n "${1:-}" ] || return 0
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
}

if [ "$cmd" = stop ]; then
  [ -f "$PREFIX/env" ] || exit 0
  # shellcheck disable=SC1091
  . "$PREFIX/env"
  stop_pid "${POSTFIX_PID:-}"
  stop_pid "${POSTFIX_WRAPPER_PID:-}"
  stop_pid "${DOVECOT_PID:-}"
  rm -f "$PREFIX/env"
  exit 0
fi
[ "$cmd" = start ] || { echo "postfix.sh: unknown command $cmd" >&2; exit 2; }

for c in postfix postconf dovecot openssl python3; do
  command -v "$c" >/dev/null || { echo "postfix.sh: $c is missing; run .ci/install-deps" >&2; exit 1; }
done

DOMAIN=alert.test
MAIL_UID=$(id -u nobody)
MAIL_GID=$(getent group nogroup | cut -d: -f3)
mkdir -p "$PREFIX"/{ssl,postfix,postfix-data,postfix-queue,dovecot,dovecot-run,dovecot-state,mail}
chmod 755 "$PREFIX"
chown postfix "$PREFIX/postfix-data"
chown "$MAIL_UID:$MAIL_GID" "$PREFIX/mail"

read -r SUBMISSION_PORT AUTH_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')

# A CA the test trusts, and a server certificate for 127.0.0.1 and localhost.
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=mailpulse alert test CA" \
  -keyout "$PREFIX/ssl/ca-key.pem" -out "$PREFIX/ssl/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$PREFIX/ssl/key.pem" -out "$PREFIX/ssl/req.pem" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
  > "$PREFIX/ssl/ext.cnf"
openssl x509 -req -in "$PREFIX/ssl/req.pem" -CA "$PREFIX/ssl/ca.pem" -CAkey "$PREFIX/ssl/ca-key.pem" \
  -CAcreateserial -days 7 -extfile "$PREFIX/ssl/ext.cnf" -out "$PREFIX/ssl/cert.pem" 2>/dev/null
chmod 600 "$PREFIX/ssl/key.pem" "$PREFIX/ssl/ca-key.pem"

PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
printf '%s\n' "$PASSWORD" > "$PREFIX/password"
chmod 600 "$PREFIX/password"

PF="$PREFIX/postfix"
cp /usr/share/postfix/main.cf.debian "$PF/main.cf"
cp /usr/share/postfix/master.cf.dist "$PF/master.cf"
postconf -c "$PF" -e \
  "queue_directory = $PREFIX/postfix-queue" \
  "data_directory = $PREFIX/postfix-data" \
  "compatibility_level = 3.6" \
  "inet_interfaces = 127.0.0.1" \
  "inet_protocols = ipv4" \
  "maillog_file = /dev/stdout" \
  "myhostname = mx.$DOMAIN" \
  "mydestination =" \
  "mynetworks =" \
  "alias_maps =" \
  "alias_database =" \
  "relayhost =" \
  "virtual_mailbox_domains = $DOMAIN" \
  "virtual_mailbox_base = $PREFIX/mail" \
  "virtual_mailbox_maps = inline:{ ops@$DOMAIN=ops/ }" \
  "virtual_uid_maps = static:$MAIL_UID" \
  "virtual_gid_maps = static:$MAIL_GID" \
  "virtual_minimum_uid = 1" \
  "smtpd_tls_cert_file = $PREFIX/ssl/cert.pem" \
  "smtpd_tls_key_file = $PREFIX/ssl/key.pem" \
  "smtpd_sasl_type = dovecot" \
  "smtpd_sasl_path = inet:127.0.0.1:$AUTH_PORT" \
  "smtpd_relay_restrictions = permit_sasl_authenticated, reject" \
  "smtpd_recipient_restrictions = reject_unlisted_recipient" \
  "smtpd_error_sleep_time = 0"
# Our submission listener replaces the port-25 one; nothing runs chrooted.
postconf -c "$PF" -MX smtp/inet
postconf -c "$PF" -M "127.0.0.1:$SUBMISSION_PORT/inet = 127.0.0.1:$SUBMISSION_PORT inet n - n - - smtpd"
postconf -c "$PF" -P \
  "127.0.0.1:$SUBMISSION_PORT/inet/smtpd_tls_security_level=encrypt" \
  "127.0.0.1:$SUBMISSION_PORT/inet/smtpd_sasl_auth_enable=yes" \
  "127.0.0.1:$SUBMISSION_PORT/inet/smtpd_tls_auth_only=yes" \
  "127.0.0.1:$SUBMISSION_PORT/inet/smtpd_client_restrictions=permit_sasl_authenticated,reject"
postconf -c "$PF" -F '*/*/chroot = n'

DC="$PREFIX/dovecot"
printf 'alerts:{PLAIN}%s\n' "$PASSWORD" > "$DC/users"
chgrp dovecot "$DC/users"
chmod 640 "$DC/users"
cat > "$DC/dovecot.conf" <<CONF
# SASL for Postfix only: no mail protocols.
protocols =
listen = 127.0.0.1
base_dir = $PREFIX/dovecot-run
state_dir = $PREFIX/dovecot-state
log_path = /dev/stderr
ssl = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DC/users
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_GID home=$PREFIX/mail/%u
}
service auth {
  inet_listener {
    address = 127.0.0.1
    port = $AUTH_PORT
  }
}
CONF

postfix -c "$PF" check
nohup dovecot -F -c "$DC/dovecot.conf" > "$PREFIX/dovecot.log" 2>&1 &
DOVECOT_PID=$!
nohup postfix -c "$PF" start-fg > "$PREFIX/postfix.log" 2>&1 &
POSTFIX_WRAPPER_PID=$!
# start-fg runs master(8) under a shell: record the master, which stops its children.
POSTFIX_PID=""
for _ in $(seq 1 100); do
  POSTFIX_PID=$(tr -dc 0-9 2>/dev/null < "$PREFIX/postfix-queue/pid/master.pid" || true)
  [ -n "$POSTFIX_PID" ] && break
  sleep 0.1
done
POSTFIX_PID=${POSTFIX_PID:-$POSTFIX_WRAPPER_PID}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 100); do
  if port_open "$SUBMISSION_PORT" && port_open "$AUTH_PORT"; then
    cat > "$PREFIX/env" <<ENV
SUBMISSION_PORT=$SUBMISSION_PORT
USER=alerts
PASSWORD_FILE=$PREFIX/password
CA_FILE=$PREFIX/ssl/ca.pem
MAILDIR=$PREFIX/mail/ops
POSTFIX_PID=$POSTFIX_PID
POSTFIX_WRAPPER_PID=$POSTFIX_WRAPPER_PID
DOVECOT_PID=$DOVECOT_PID
ENV
    exit 0
  fi
  if ! kill -0 "$POSTFIX_WRAPPER_PID" 2>/dev/null || ! kill -0 "$DOVECOT_PID" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
echo "postfix.sh: the servers did not start; logs follow" >&2
tail -n 30 "$PREFIX/postfix.log" "$PREFIX/dovecot.log" >&2 || true
POSTFIX_PID=$POSTFIX_PID POSTFIX_WRAPPER_PID=$POSTFIX_WRAPPER_PID DOVECOT_PID=$DOVECOT_PID
stop_pid "$POSTFIX_PID"; stop_pid "$POSTFIX_WRAPPER_PID"; stop_pid "$DOVECOT_PID"
exit 1
