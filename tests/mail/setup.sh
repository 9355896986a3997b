#!/usr/bin/env bash
# Starts a throwaway Postfix and Dovecot on 127.0.0.1 for the mail probe tests.
#
#   tests/mail/setup.sh [PREFIX]      (default: $MAILPULSE_MAIL_PREFIX or /tmp/mailpulse-mail)
#
# Everything lives under PREFIX: self-signed certificate, configs, Postfix queue,
# Dovecot state and the Maildir both servers share. One virtual user
# (probe@mailpulse.test) with a random password; mail is stored as nobody:nogroup.
# Ports are free high ports picked at start:
#   SMTP_PORT        smtpd, STARTTLS offered, no AUTH (like port 25)
#   SUBMISSION_PORT  smtpd, STARTTLS required, AUTH via Dovecot SASL (like 587)
#   SMTPS_PORT       smtpd, implicit TLS, AUTH (like 465)
#   IMAP_PORT / IMAPS_PORT, POP3_PORT / POP3S_PORT   Dovecot (like 143/993, 110/995)
# Writes PREFIX/env (shell and KEY=VALUE lines: ports, PIDs, user, password file,
# CA file) once both servers answer. Idempotent: if PREFIX/env names running
# servers that answer, it does nothing. tests/mail/stop.sh PREFIX stops exactly
# the PIDs recorded there. With MAILPULSE_MAIL_OWNER_PID set, a watcher stops
# the servers and removes PREFIX once that process (a test binary) has exited.
# Needs root and .ci/install-deps.
set -euo pipefail

PREFIX=${1:-${MAILPULSE_MAIL_PREFIX:-/tmp/mailpulse-mail}}
HERE=$(cd "$(dirname "$0")" && pwd)
DOMAIN=mailpulse.test
USER_LOCAL=probe
MAIL_UID=$(id -u nobody)
MAIL_GID=$(getent group nogroup | cut -d: -f3)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -f "$PREFIX/env" ]; then
  # shellcheck disable=SC1091
  . "$PREFIX/env"
  if kill -0 "$POSTFIX_PID" 2>/dev/null && kill -0 "$DOVECOT_PID" 2>/dev/null \
     && port_open "$SUBMISSION_PORT" && port_open "$IMAP_PORT"; then
    echo "mail servers already running (see $PREFIX/env)"
    exit 0
  fi
  "$HERE/stop.sh" "$PREFIX" || true
fi

for cmd in postfix postconf dovecot openssl python3; do
  command -v "$cmd" >/dev/null || { echo "setup.sh: $cmd is missing; run .ci/install-deps" >&2; exit 1; }
done

rm -rf "$PREFIX"
mkdir -p "$PREFIX"/{ssl,postfix,postfix-data,postfix-queue,dovecot,dovecot-run,dovecot-state,mail}
chmod 755 "$PREFIX"
chown postfix "$PREFIX/postfix-data"
chown "$MAIL_UID:$MAIL_GID" "$PREFIX/mail"

read -r SMTP_PORT SUBMISSION_PORT SMTPS_PORT IMAP_PORT IMAPS_PORT POP3_PORT POP3S_PORT AUTH_PORT < <(python3 - <<'PY'
import socket
socks = []
for _ in range(8):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)

# A throwaway CA (the file the tests trust) and a certificate for localhost signed by it.
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=mailpulse test CA" \
  -keyout "$PREFIX/ssl/ca-key.pem" -out "$PREFIX/ssl/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$PREFIX/ssl/key.pem" -out "$PREFIX/ssl/req.pem" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$PREFIX/ssl/ext.cnf"
openssl x509 -req -in "$PREFIX/ssl/req.pem" -CA "$PREFIX/ssl/ca.pem" -CAkey "$PREFIX/ssl/ca-key.pem" \
  -CAcreateserial -days 30 -extfile "$PREFIX/ssl/ext.cnf" -out "$PREFIX/ssl/cert.pem" 2>/dev/null
chmod 600 "$PREFIX/ssl/key.pem" "$PREFIX/ssl/ca-key.pem"

PASSWORD=$(python3 -c 'import secrets; print("mp-" + secrets.token_urlsafe(12))')
printf '%s\n' "$PASSWORD" > "$PREFIX/password"
chmod 600 "$PREFIX/password"

# --- Postfix --------------------------------------------------------------
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
  "myhostname = mail.$DOMAIN" \
  "myorigin = $DOMAIN" \
  "mydestination =" \
  "mynetworks = 127.0.0.0/8" \
  "alias_maps =" \
  "alias_database =" \
  "relayhost =" \
  "smtpd_banner = \$myhostname ESMTP mailpulse test server" \
  "virtual_mailbox_domains = $DOMAIN" \
  "virtual_mailbox_base = $PREFIX/mail" \
  "virtual_mailbox_maps = inline:{ $USER_LOCAL@$DOMAIN=$DOMAIN/$USER_LOCAL/Maildir/ }" \
  "virtual_uid_maps = static:$MAIL_UID" \
  "virtual_gid_maps = static:$MAIL_GID" \
  "virtual_minimum_uid = 1" \
  "smtpd_tls_cert_file = $PREFIX/ssl/cert.pem" \
  "smtpd_tls_key_file = $PREFIX/ssl/key.pem" \
  "smtpd_tls_security_level = may" \
  "smtpd_sasl_type = dovecot" \
  "smtpd_sasl_path = inet:127.0.0.1:$AUTH_PORT" \
  "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination" \
  "smtpd_recipient_restrictions = reject_unlisted_recipient" \
  "smtp_tls_security_level = none" \
  "smtpd_error_sleep_time = 0"
# Replace the port-25 listener by ours; nothing runs chrooted.
postconf -c "$PF" -MX smtp/inet
postconf -c "$PF" -M "127.0.0.1:$SMTP_PORT/inet = 127.0.0.1:$SMTP_PORT inet n - n - - smtpd"
postconf -c "$PF" -M "127.0.0.1:$SUBMISSION_PORT/inet = 127.0.0.1:$SUBMISSION_PORT inet n - n - - smtpd"
postconf -c "$PF" -P \
  "127.0.0.1:$SUBMISSION_PORT/inet/smtpd_tls_security_level=encrypt" \
  "127.0.0.1:$SUBMISSION_PORT/inet/smtpd_sasl_auth_enable=yes" \
  "127.0.0.1:$SUBMISSION_PORT/inet/smtpd_tls_auth_only=yes"
postconf -c "$PF" -M "127.0.0.1:$SMTPS_PORT/inet = 127.0.0.1:$SMTPS_PORT inet n - n - - smtpd"
postconf -c "$PF" -P \
  "127.0.0.1:$SMTPS_PORT/inet/smtpd_tls_wrappermode=yes" \
  "127.0.0.1:$SMTPS_PORT/inet/smtpd_sasl_auth_enable=yes"
postconf -c "$PF" -F '*/*/chroot = n'

# --- Dovecot --------------------------------------------------------------
DC="$PREFIX/dovecot"
printf '%s@%s:{PLAIN}%s\n' "$USER_LOCAL" "$DOMAIN" "$PASSWORD" > "$DC/users"
chgrp dovecot "$DC/users"
chmod 640 "$DC/users"
DH=""
[ -f /usr/share/dovecot/dh.pem ] && DH="ssl_dh = </usr/share/dovecot/dh.pem"
cat > "$DC/dovecot.conf" <<CONF
protocols = imap pop3
listen = 127.0.0.1
base_dir = $PREFIX/dovecot-run
state_dir = $PREFIX/dovecot-state
log_path = /dev/stderr
ssl = yes
ssl_cert = <$PREFIX/ssl/cert.pem
ssl_key = <$PREFIX/ssl/key.pem
$DH
disable_plaintext_auth = yes
# Tests try wrong passwords on purpose; answer them at once.
auth_failure_delay = 0
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DC/users
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_GID home=$PREFIX/mail/%d/%n
}
mail_location = maildir:$PREFIX/mail/%d/%n/Maildir
first_valid_uid = 1
pop3_uidl_format = %08Xu%08Xv
service imap-login {
  inet_listener imap {
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = $IMAPS_PORT
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = $POP3_PORT
  }
  inet_listener pop3s {
    port = $POP3S_PORT
    ssl = yes
  }
}
# No growing delays after failed logins (Dovecot's auth penalty): tests fail
# logins on purpose, and a probe's failed login must not slow the next one.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  inet_listener {
    address = 127.0.0.1
    port = $AUTH_PORT
  }
}
CONF

# --- Start both in the foreground, in the background of this script --------
postfix -c "$PF" check
nohup postfix -c "$PF" start-fg > "$PREFIX/postfix.log" 2>&1 &
POSTFIX_WRAPPER_PID=$!
nohup dovecot -F -c "$DC/dovecot.conf" > "$PREFIX/dovecot.log" 2>&1 &
DOVECOT_PID=$!
# start-fg runs master(8) as a child of a shell: record the master itself,
# which stops its own children on SIGTERM.
POSTFIX_PID=""
for _ in $(seq 1 100); do
  POSTFIX_PID=$(tr -dc 0-9 < "$PREFIX/postfix-queue/pid/master.pid" 2>/dev/null || true)
  [ -n "$POSTFIX_PID" ] && break
  sleep 0.1
done
POSTFIX_PID=${POSTFIX_PID:-$POSTFIX_WRAPPER_PID}

cat > "$PREFIX/env" <<ENV
POSTFIX_PID=$POSTFIX_PID
POSTFIX_WRAPPER_PID=$POSTFIX_WRAPPER_PID
DOVECOT_PID=$DOVECOT_PID
SMTP_PORT=$SMTP_PORT
SUBMISSION_PORT=$SUBMISSION_PORT
SMTPS_PORT=$SMTPS_PORT
IMAP_PORT=$IMAP_PORT
IMAPS_PORT=$IMAPS_PORT
POP3_PORT=$POP3_PORT
POP3S_PORT=$POP3S_PORT
MAIL_USER=$USER_LOCAL@$DOMAIN
PASSWORD_FILE=$PREFIX/password
CA_FILE=$PREFIX/ssl/ca.pem
ENV

for _ in $(seq 1 100); do
  if port_open "$SMTP_PORT" && port_open "$SUBMISSION_PORT" && port_open "$SMTPS_PORT" \
     && port_open "$IMAP_PORT" && port_open "$IMAPS_PORT" \
     && port_open "$POP3_PORT" && port_open "$POP3S_PORT"; then
    if [ -n "${MAILPULSE_MAIL_OWNER_PID:-}" ]; then
      nohup bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; "$2/stop.sh" "$3"; rm -rf "$3"' \
        watcher "$MAILPULSE_MAIL_OWNER_PID" "$HERE" "$PREFIX" >/dev/null 2>&1 &
    fi
    echo "mail servers running (see $PREFIX/env)"
    exit 0
  fi
  if ! kill -0 "$POSTFIX_PID" 2>/dev/null || ! kill -0 "$DOVECOT_PID" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
echo "setup.sh: the mail servers did not start; logs follow" >&2
tail -n 30 "$PREFIX/postfix.log" "$PREFIX/dovecot.log" >&2 || true
"$HERE/stop.sh" "$PREFIX" || true
exit 1
