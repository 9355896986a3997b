//! Mail probes against hostile in-process servers: endless and oversized
//! banners and lines, responses that never end, slow drips, garbage instead
//! of TLS, plaintext injected after STARTTLS, and resets at every step. Each
//! case asserts the reason, the phase, and that the probe returned by its
//! timeout (plus a small margin).

use crate::support;

use std::time::Duration;

use mailpulse::sample::{FailureReason, Phase, Sample};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// The timeout of every probe here.
const TIMEOUT: Duration = Duration::from_millis(800);
/// How much later than its timeout a probe may return.
const MARGIN: Duration = Duration::from_millis(300);

/// One thing the fake server does, in order.
#[derive(Clone, Debug)]
enum Step {
    /// Read one line; it must start with this (case-insensitive).
    Expect(&'static str),
    /// Write these bytes.
    Send(&'static str),
    /// Write this line over and over, forever.
    Endless(&'static str),
    /// Write bytes without any line end, forever.
    EndlessBytes,
    /// Write these bytes one at a time, 100 ms apart.
    Drip(&'static str),
    /// Accept a TLS handshake and continue over TLS.
    StartTls,
    /// Read whatever the client sends next (a ClientHello, say).
    ReadSome,
    /// Wait for the client's first bytes (a ClientHello), then write garbage.
    GarbageAfterHello,
    /// Abort the connection with a TCP reset.
    Reset,
    /// Close the connection normally (FIN).
    Close,
    /// Keep the connection open and say nothing.
    Hang,
}

trait Io: AsyncRead + AsyncWrite + Unpin + std::marker::Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + std::marker::Send> Io for T {}

/// Starts a server that plays `script` on every connection; returns its port.
async fn serve(script: Vec<Step>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = support::tls::self_signed_acceptor();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let script = script.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(play(stream, script, acceptor));
        }
    });
    port
}

async fn read_line(io: &mut Box<dyn Io>) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match io.read(&mut byte).await {
            Ok(1) => {
                if byte[0] == b'\n' {
                    return Some(String::from_utf8_lossy(&line).into_owned());
                }
                line.push(byte[0]);
            }
            _ => return None,
        }
    }
}

async fn play(stream: TcpStream, script: Vec<Step>, acceptor: tokio_rustls::TlsAcceptor) {
    if script.iter().any(|s| matches!(s, Step::Reset)) {
        // Dropping the socket now sends RST instead of FIN.
        stream.set_zero_linger().unwrap();
    }
    let mut io: Box<dyn Io> = Box::new(stream);
    for step in script {
        match step {
            Step::Expect(prefix) => {
                let Some(line) = read_line(&mut io).await else {
                    return;
                };
                assert!(
                    line.to_ascii_uppercase().starts_with(prefix),
                    "expected {prefix:?}, got {line:?}"
                );
            }
            Step::Send(text) => {
                if io.write_all(text.as_bytes()).await.is_err() {
                    return;
                }
                let _ = io.flush().await;
            }
            Step::Endless(line) => loop {
                if io.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
            },
            Step::EndlessBytes => loop {
                if io.write_all(&[b'x'; 1024]).await.is_err() {
                    return;
                }
            },
            Step::Drip(text) => {
                for b in text.bytes() {
                    if io.write_all(&[b]).await.is_err() {
                        return;
                    }
                    let _ = io.flush().await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Step::StartTls => {
                let inner = std::mem::replace(&mut io, Box::new(Placeholder));
                let Ok(tls) = acceptor.accept(inner).await else {
                    return;
                };
                io = Box::new(tls);
            }
            Step::ReadSome => {
                let mut buf = [0u8; 512];
                let _ = io.read(&mut buf).await;
            }
            Step::GarbageAfterHello => {
                let mut buf = [0u8; 512];
                let _ = io.read(&mut buf).await;
                let _ = io.write_all(b"HTTP/1.0 400 this is not TLS\r\n\r\n").await;
            }
            Step::Reset => return,
            Step::Close => {
                let _ = io.shutdown().await;
                return;
            }
            Step::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// A placeholder stream between two owners; never read or written.
struct Placeholder;

impl AsyncRead for Placeholder {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Placeholder {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Ok(0))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Probes the fake server with `kind` and extra keys; checks the deadline.
async fn probe_fake(kind: &str, port: u16, keys: &str) -> Sample {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(dir.path(), "pw", "hostile-secret\n");
    let text = format!(
        "[[target]]\nname = \"t\"\nkind = \"{kind}\"\naddress = \"127.0.0.1:{port}\"\ntimeout = \"{}ms\"\n\
         tls_insecure_skip_verify = true\n{keys}\n",
        TIMEOUT.as_millis()
    );
    let prober = support::load_prober(dir.path(), &text);
    let _timed = support::timed();
    let start = Instant::now();
    let s = support::probe_once(&prober).await;
    let took = start.elapsed();
    assert!(took <= TIMEOUT + MARGIN, "took {took:?}");
    s
}

/// Checks one case: reason, phase, and a piece of the message.
fn check(s: &Sample, reason: FailureReason, phase: Phase, message: &str) {
    let f = s.failure.as_ref().expect("the probe must fail");
    assert_eq!((f.reason, f.phase), (reason, phase), "{}", f.message);
    assert!(
        f.message.contains(message),
        "{:?} lacks {message:?}",
        f.message
    );
    assert!(!f.message.contains("hostile-secret"), "{}", f.message);
}

const AUTH: &str = "username = \"probe\"\npassword_file = \"pw\"";

use Step::*;

#[tokio::test]
async fn an_endless_smtp_banner_is_cut_at_the_response_cap() {
    let port = serve(vec![Endless("220-still greeting you\r\n")]).await;
    let s = probe_fake("smtp", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Protocol,
        Phase::Banner,
        "the banner is longer than 65536 bytes",
    );
}

#[tokio::test]
async fn an_oversized_banner_line_is_refused() {
    let port = serve(vec![Send("220 "), EndlessBytes]).await;
    let s = probe_fake("smtp", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Protocol,
        Phase::Banner,
        "line longer than 8192 bytes",
    );
}

#[tokio::test]
async fn an_oversized_line_in_the_ehlo_reply_is_refused() {
    let port = serve(vec![
        Send("220 hi\r\n"),
        Expect("EHLO"),
        Send("250-"),
        EndlessBytes,
    ])
    .await;
    let s = probe_fake("smtp", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Protocol,
        Phase::Ehlo,
        "line longer than 8192 bytes in the EHLO reply",
    );
}

#[tokio::test]
async fn a_never_ending_multiline_ehlo_reply_is_cut() {
    let port = serve(vec![
        Send("220 hi\r\n"),
        Expect("EHLO"),
        Endless("250-PIPELINING\r\n"),
    ])
    .await;
    let s = probe_fake("smtp", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Protocol,
        Phase::Ehlo,
        "the EHLO reply is longer than 65536 bytes",
    );
}

#[tokio::test]
async fn never_ending_imap_untagged_responses_are_cut() {
    let port = serve(vec![
        Send("* OK ready\r\n"),
        Expect("MP1 CAPABILITY"),
        Endless("* CAPABILITY IMAP4rev1 STARTTLS\r\n"),
    ])
    .await;
    let s = probe_fake("imap", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Protocol,
        Phase::Capability,
        "the CAPABILITY response is longer than 65536 bytes",
    );
}

#[tokio::test]
async fn a_never_ending_pop3_capa_list_is_cut() {
    let port = serve(vec![
        Send("+OK ready\r\n"),
        Expect("CAPA"),
        Send("+OK\r\n"),
        Endless("TOP\r\n"),
    ])
    .await;
    let s = probe_fake("pop3", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Protocol,
        Phase::Capability,
        "the CAPA list is longer than 65536 bytes",
    );
}

#[tokio::test]
async fn a_huge_imap_literal_is_refused_before_it_is_read() {
    let port = serve(vec![
        Send("* OK ready\r\n"),
        Expect("MP1 CAPABILITY"),
        Send("* CAPABILITY {999999999}\r\n"),
        Hang,
    ])
    .await;
    let s = probe_fake("imap", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Protocol,
        Phase::Capability,
        "longer than 65536 bytes",
    );
}

#[tokio::test]
async fn a_reply_that_stops_halfway_times_out_in_its_phase() {
    let port = serve(vec![
        Send("220 hi\r\n"),
        Expect("EHLO"),
        Send("250-hello\r\n250-PIPEL"),
        Hang,
    ])
    .await;
    let s = probe_fake("smtp", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Timeout,
        Phase::Ehlo,
        "no answer within the timeout",
    );
}

#[tokio::test]
async fn a_slow_drip_banner_times_out_at_the_timeout() {
    let port = serve(vec![Drip("220 a very slow and patient server\r\n")]).await;
    let s = probe_fake("smtp", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Timeout,
        Phase::Banner,
        "no answer within the timeout",
    );
    assert!(s.total() >= TIMEOUT, "{:?}", s.total());
}

#[tokio::test]
async fn a_slow_drip_imap_greeting_times_out() {
    let port = serve(vec![Drip("* OK slowly\r\n* OK slowly\r\n")]).await;
    let s = probe_fake("imap", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Timeout,
        Phase::Banner,
        "no answer within the timeout",
    );
}

#[tokio::test]
async fn garbage_instead_of_implicit_tls_is_a_tls_failure() {
    for kind in ["smtp", "imap", "pop3", "tcp"] {
        let port = serve(vec![Send("220 plaintext here, not TLS\r\n"), Hang]).await;
        let s = probe_fake(kind, port, "tls = \"implicit\"").await;
        check(&s, FailureReason::Tls, Phase::Tls, "tls handshake failed");
    }
}

#[tokio::test]
async fn garbage_after_starttls_is_a_tls_failure() {
    let port = serve(vec![
        Send("220 hi\r\n"),
        Expect("EHLO"),
        Send("250-hi\r\n250 STARTTLS\r\n"),
        Expect("STARTTLS"),
        Send("220 go ahead\r\n"),
        GarbageAfterHello,
        Hang,
    ])
    .await;
    let s = probe_fake("smtp", port, "tls = \"starttls\"").await;
    check(&s, FailureReason::Tls, Phase::Tls, "tls handshake failed");

    let port = serve(vec![
        Send("+OK hi\r\n"),
        Expect("CAPA"),
        Send("+OK\r\nSTLS\r\n.\r\n"),
        Expect("STLS"),
        Send("+OK go ahead\r\n"),
        GarbageAfterHello,
        Hang,
    ])
    .await;
    let s = probe_fake("pop3", port, "tls = \"starttls\"").await;
    check(&s, FailureReason::Tls, Phase::Tls, "tls handshake failed");
}

#[tokio::test]
async fn plaintext_injected_after_the_starttls_reply_is_refused() {
    let port = serve(vec![
        Send("220 hi\r\n"),
        Expect("EHLO"),
        Send("250-hi\r\n250 STARTTLS\r\n"),
        Expect("STARTTLS"),
        Send("220 go ahead\r\n250 injected\r\n"),
        Hang,
    ])
    .await;
    let s = probe_fake("smtp", port, "tls = \"starttls\"").await;
    check(
        &s,
        FailureReason::Protocol,
        Phase::Tls,
        "plaintext after the STARTTLS reply",
    );

    let port = serve(vec![
        Send("* OK hi\r\n"),
        Expect("MP1 CAPABILITY"),
        Send("* CAPABILITY IMAP4rev1 STARTTLS\r\nmp1 OK\r\n"),
        Expect("MP2 STARTTLS"),
        Send("mp2 OK begin\r\n* OK injected\r\n"),
        Hang,
    ])
    .await;
    let s = probe_fake("imap", port, "tls = \"starttls\"").await;
    check(
        &s,
        FailureReason::Protocol,
        Phase::Tls,
        "plaintext after the STARTTLS reply",
    );
}

#[tokio::test]
async fn a_server_without_starttls_fails_when_it_is_required() {
    let port = serve(vec![
        Send("220 hi\r\n"),
        Expect("EHLO"),
        Send("250-hi\r\n250 8BITMIME\r\n"),
        Hang,
    ])
    .await;
    let s = probe_fake("smtp", port, "").await;
    check(
        &s,
        FailureReason::Tls,
        Phase::Starttls,
        "server does not offer STARTTLS",
    );
}

#[tokio::test]
async fn smtp_refusals_carry_their_code() {
    let port = serve(vec![Send("554 5.7.1 no service for you\r\n"), Hang]).await;
    let s = probe_fake("smtp", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Reply,
        Phase::Banner,
        "server refused the session: 554 5.7.1 no service for you",
    );

    let port = serve(vec![
        Send("220 hi\r\n"),
        Expect("EHLO"),
        Send("421 4.3.2 shutting down\r\n"),
        Hang,
    ])
    .await;
    let s = probe_fake("smtp", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Reply,
        Phase::Ehlo,
        "EHLO refused: 421 4.3.2 shutting down",
    );
}

#[tokio::test]
async fn an_unusual_but_valid_greeting_is_accepted() {
    let port = serve(vec![
        Send("220-mail.example.org\r\n220-  with a long\r\n220 \r\n"),
        Expect("EHLO"),
        Send("250 mail.example.org\r\n"),
        Expect("QUIT"),
        Send("221 bye\r\n"),
    ])
    .await;
    let s = probe_fake("smtp", port, "tls = \"none\"").await;
    assert!(s.success(), "{:?}", s.failure);
}

#[tokio::test]
async fn malformed_replies_are_protocol_failures() {
    let port = serve(vec![Send("SSH-2.0-OpenSSH_9.2\r\n"), Hang]).await;
    let s = probe_fake("smtp", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Protocol,
        Phase::Banner,
        "malformed line in the banner",
    );

    let port = serve(vec![Send("* BYE too many connections\r\n"), Hang]).await;
    let s = probe_fake("imap", port, "tls = \"none\"").await;
    check(
        &s,
        FailureReason::Reply,
        Phase::Banner,
        "server refused the session: BYE too many connections",
    );
}

/// The SMTP dialogue up to the given step, then a reset.
fn smtp_until(steps: usize) -> Vec<Step> {
    let full = vec![
        Send("220 hi\r\n"),
        Expect("EHLO"),
        Send("250-hi\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"),
        Expect("STARTTLS"),
        Send("220 go ahead\r\n"),
        StartTls,
        Expect("EHLO"),
        Send("250-hi\r\n250 AUTH PLAIN LOGIN\r\n"),
        Expect("AUTH PLAIN"),
        Send("235 ok\r\n"),
        Expect("QUIT"),
    ];
    let mut script: Vec<Step> = full.into_iter().take(steps).collect();
    script.push(Reset);
    script
}

#[tokio::test]
async fn a_reset_at_each_smtp_step_fails_in_that_step() {
    let cases = [
        (
            0,
            FailureReason::Protocol,
            Phase::Banner,
            "connection reset by the server while waiting for the banner",
        ),
        (
            2,
            FailureReason::Protocol,
            Phase::Ehlo,
            "while waiting for the EHLO reply",
        ),
        (
            4,
            FailureReason::Protocol,
            Phase::Starttls,
            "while waiting for the STARTTLS reply",
        ),
        (
            7,
            FailureReason::Protocol,
            Phase::Ehlo,
            "while waiting for the EHLO reply",
        ),
        (
            9,
            FailureReason::Protocol,
            Phase::Auth,
            "while waiting for the AUTH reply",
        ),
        (
            11,
            FailureReason::Protocol,
            Phase::Quit,
            "while waiting for the QUIT reply",
        ),
    ];
    for (steps, reason, phase, message) in cases {
        let port = serve(smtp_until(steps)).await;
        let s = probe_fake("smtp", port, AUTH).await;
        check(&s, reason, phase, message);
    }
    // In the middle of the TLS handshake: after the ClientHello arrived.
    let mut script = smtp_until(5);
    script.insert(5, ReadSome);
    let s = probe_fake("smtp", serve(script).await, AUTH).await;
    check(&s, FailureReason::Tls, Phase::Tls, "tls handshake failed");
}

#[tokio::test]
async fn a_server_that_closes_mid_dialogue_is_a_protocol_failure() {
    let cases = [(0, Phase::Banner), (2, Phase::Ehlo)];
    for (steps, phase) in cases {
        let mut script = smtp_until(steps);
        script.pop();
        script.push(Close);
        let s = probe_fake("smtp", serve(script).await, AUTH).await;
        check(
            &s,
            FailureReason::Protocol,
            phase,
            "connection closed by the server",
        );
    }
}

#[tokio::test]
async fn a_reset_at_each_imap_step_fails_in_that_step() {
    let full = vec![
        Send("* OK hi\r\n"),
        Expect("MP1 CAPABILITY"),
        Send("* CAPABILITY IMAP4rev1 STARTTLS\r\nmp1 OK\r\n"),
        Expect("MP2 STARTTLS"),
        Send("mp2 OK begin\r\n"),
        StartTls,
        Expect("MP3 CAPABILITY"),
        Send("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nmp3 OK\r\n"),
        Expect("MP4 LOGIN"),
        Send("mp4 OK logged in\r\n"),
        Expect("MP5 SELECT"),
        Send("* 3 EXISTS\r\nmp5 OK\r\n"),
        Expect("MP6 LOGOUT"),
    ];
    let cases = [
        (0, FailureReason::Protocol, Phase::Banner),
        (2, FailureReason::Protocol, Phase::Capability),
        (4, FailureReason::Protocol, Phase::Starttls),
        (7, FailureReason::Protocol, Phase::Capability),
        (9, FailureReason::Protocol, Phase::Auth),
        (11, FailureReason::Protocol, Phase::Select),
    ];
    for (steps, reason, phase) in cases {
        let mut script: Vec<Step> = full.iter().take(steps).cloned().collect();
        script.push(Reset);
        let port = serve(script).await;
        let s = probe_fake("imap", port, AUTH).await;
        check(&s, reason, phase, "connection reset by the server");
    }
    // The whole dialogue, for contrast, succeeds with the message count.
    let mut script = full.clone();
    script.push(Send("* BYE\r\nmp6 OK\r\n"));
    let s = probe_fake("imap", serve(script).await, AUTH).await;
    assert!(s.success(), "{:?}", s.failure);
    assert_eq!(s.messages, Some(3));
}

#[tokio::test]
async fn a_reset_at_each_pop3_step_fails_in_that_step() {
    let full = vec![
        Send("+OK hi\r\n"),
        Expect("CAPA"),
        Send("+OK\r\nSTLS\r\nUSER\r\n.\r\n"),
        Expect("STLS"),
        Send("+OK begin\r\n"),
        StartTls,
        Expect("CAPA"),
        Send("+OK\r\nUSER\r\n.\r\n"),
        Expect("USER"),
        Send("+OK\r\n"),
        Expect("PASS"),
        Send("+OK in\r\n"),
        Expect("STAT"),
        Send("+OK 2 320\r\n"),
        Expect("QUIT"),
    ];
    let cases = [
        (0, Phase::Banner),
        (2, Phase::Capability),
        (4, Phase::Starttls),
        (9, Phase::Auth),
        (11, Phase::Auth),
        (13, Phase::Stat),
    ];
    for (steps, phase) in cases {
        let mut script: Vec<Step> = full.iter().take(steps).cloned().collect();
        script.push(Reset);
        let s = probe_fake("pop3", serve(script).await, AUTH).await;
        check(
            &s,
            FailureReason::Protocol,
            phase,
            "connection reset by the server",
        );
    }
    let mut script = full.clone();
    script.push(Send("+OK bye\r\n"));
    let s = probe_fake("pop3", serve(script).await, AUTH).await;
    assert!(s.success(), "{:?}", s.failure);
    assert_eq!(s.messages, Some(2));
}

#[tokio::test]
async fn a_rejected_login_is_an_auth_failure_and_an_echoed_password_is_hidden() {
    let port = serve(vec![
        Send("+OK hi\r\n"),
        Expect("CAPA"),
        Send("-ERR no capa\r\n"),
        Expect("STLS"),
        Send("+OK begin\r\n"),
        StartTls,
        Expect("CAPA"),
        Send("-ERR\r\n"),
        Expect("USER"),
        Send("+OK\r\n"),
        Expect("PASS"),
        Send("-ERR [AUTH] wrong password hostile-secret\r\n"),
        Hang,
    ])
    .await;
    let s = probe_fake("pop3", port, AUTH).await;
    check(
        &s,
        FailureReason::Auth,
        Phase::Auth,
        "login refused: -ERR [AUTH] wrong password <redacted>",
    );
}
