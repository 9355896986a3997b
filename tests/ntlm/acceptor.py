#!/usr/bin/env python3
"""An NTLM acceptor over HTTP(S) for mailpulse's integration tests, built on
pyspnego (an implementation independent of mailpulse's): the stand-in for an
Exchange virtual directory with Extended Protection required.

It listens on 127.0.0.1 (an ephemeral port), prints `listening PORT`, then one
line per AUTHENTICATE: `accepted DOMAIN\\USER bindings=HEX` or
`refused REASON`. A request is let in (200 "ok") only when pyspnego accepts
the AUTHENTICATE with its channel bindings set, and, stricter than pyspnego,
when the message carries a MIC (MsvAvFlags 0x2) and MsvAvChannelBindings
(non-zero over TLS, where pyspnego would also take the all-zero value).

Over TLS (--cert/--key) the bindings are RFC 5929's tls-server-end-point of
the certificate in --bind-to (default: the one served), hashed with the
certificate's signature hash (MD5 and SHA-1 upgraded to SHA-256), computed
here with `cryptography`. --bind-to another certificate stands for a
TLS-intercepting relay: the client's channel is not the server's.

The accounts are those of the file NTLM_USER_FILE names (pyspnego's
`DOMAIN:USER:PASSWORD` lines), which the caller writes. The helper stops by
itself when stdin closes or after --lifetime seconds.
"""

import argparse
import base64
import os
import ssl
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import spnego
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from spnego._ntlm_raw.messages import Authenticate, AvFlags, AvId, NTClientChallengeV2
from spnego.channel_bindings import GssChannelBindings

LOCK = threading.Lock()


def say(line):
    with LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def end_point_bindings(pem_path):
    """GSS channel bindings carrying tls-server-end-point of a certificate."""
    with open(pem_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    try:
        algorithm = cert.signature_hash_algorithm
    except Exception:  # e.g. Ed25519: no separate hash
        algorithm = None
    if algorithm is None or isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(Encoding.DER))
    return GssChannelBindings(application_data=b"tls-server-end-point:" + digest.finalize())


def message_type(token):
    if len(token) < 12 or token[:8] != b"NTLMSSP\0":
        return None
    return struct.unpack("<I", token[8:12])[0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bindings = None
    tls = False

    def setup(self):
        super().setup()
        # One NTLM context per connection, as IIS keeps it.
        self.context = None

    def log_message(self, format, *args):
        pass

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def refuse(self, reason):
        say("refused " + reason)
        self.close_connection = True
        self.reply(401, b"refused", [("WWW-Authenticate", "NTLM"), ("Connection", "close")])

    def do_GET(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "ntlm" or not token.strip():
            self.reply(401, b"unauthorized", [("WWW-Authenticate", "NTLM")])
            return
        data = base64.b64decode(token.strip())
        kind = message_type(data)
        if kind == 1:
            self.context = spnego.server(protocol="ntlm", channel_bindings=self.bindings)
            challenge = self.context.step(data)
            value = "NTLM " + base64.b64encode(challenge).decode()
            self.reply(401, b"unauthorized", [("WWW-Authenticate", value)])
            return
        if kind != 3 or self.context is None:
            self.refuse("no AUTHENTICATE after a NEGOTIATE on this connection")
            return
        try:
            self.context.step(data)
        except Exception as e:
            self.refuse(f"{type(e).__name__}: {e}")
            return
        auth = Authenticate.unpack(data)
        info = NTClientChallengeV2.unpack(auth.nt_challenge_response[16:]).av_pairs
        if not info.get(AvId.flags, 0) & AvFlags.mic:
            self.refuse("no MIC (MsvAvFlags 0x2 unset)")
            return
        bindings = info.get(AvId.channel_bindings)
        if bindings is None:
            self.refuse("no MsvAvChannelBindings")
            return
        if self.tls and bindings == b"\0" * 16:
            self.refuse("all-zero MsvAvChannelBindings over TLS")
            return
        say(f"accepted {auth.domain_name}\\{auth.user_name} bindings={bindings.hex()}")
        self.reply(200, b"ok")

    do_POST = do_GET


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cert", help="PEM certificate to serve (TLS)")
    parser.add_argument("--key", help="PEM key of --cert")
    parser.add_argument("--bind-to", help="PEM certificate the bindings must name")
    parser.add_argument("--lifetime", type=float, default=60.0)
    args = parser.parse_args()
    if not os.path.isfile(os.environ.get("NTLM_USER_FILE", "")):
        parser.error("NTLM_USER_FILE must name the accounts file")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        Handler.tls = True
        Handler.bindings = end_point_bindings(args.bind_to or args.cert)

    def stop_on_eof():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=stop_on_eof, daemon=True).start()
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    say(f"listening {server.server_address[1]}")
    server.serve_forever()


if __name__ == "__main__":
    main()
