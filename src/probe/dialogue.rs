//! A bounded line dialogue over one TCP connection that can be upgraded to
//! TLS in place: the transport under the SMTP, IMAP and POP3 probes.
//!
//! Every read is capped, so a hostile or broken server cannot make a probe
//! grow without bound: a line may be at most [`MAX_LINE`] bytes and the
//! answer to one command (everything read between two sends) at most
//! [`MAX_RESPONSE`] bytes. Time is bounded by the caller's deadline, not here.
//! After a STARTTLS/STLS reply, [`Dialogue::upgrade`] refuses to continue if
//! the server already sent more plaintext: those bytes would otherwise be
//! read as if they had come over TLS (the classic STARTTLS command injection).
//!
//! This module knows no protocol; it never logs or reports a secret that the
//! protocol code registered with [`Dialogue::hide`].

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

use crate::config::{HostPort, IpFamily, TlsMode, TlsOptions};
use crate::sample::{FailureReason, Phase};

use super::stamped::StampedTcp;
use super::{tls, ProbeError, Recorder};

/// Longest line accepted from a server, terminator included.
pub const MAX_LINE: usize = 8 * 1024;
/// Most bytes accepted in answer to one command (or for the greeting).
pub const MAX_RESPONSE: usize = 64 * 1024;
/// How much is read from the socket at a time.
const READ_CHUNK: usize = 4096;
/// Longest piece of server text quoted in a failure message.
const MAX_QUOTE: usize = 200;

/// The connection: plaintext until a TLS handshake replaces it.
enum Stream {
    Plain(StampedTcp),
    Tls(Box<TlsStream<StampedTcp>>),
    /// Only while an upgrade is in progress or after it failed.
    Gone,
    /// No socket: the server's bytes were given up front, what is sent is
    /// dropped, and the end of the bytes is the server closing. For fuzzing
    /// the protocol parsers ([`super::fuzzing`]) without a network.
    Scripted,
}

/// One line-protocol session with a server.
pub struct Dialogue {
    stream: Stream,
    /// Bytes read but not consumed yet, from `start` on.
    buf: Vec<u8>,
    start: usize,
    /// Bytes consumed since the last command was sent.
    response_bytes: usize,
    /// Values that must never appear in logs or messages.
    hidden: Vec<String>,
    /// Protocol name for log lines.
    protocol: &'static str,
}

impl std::fmt::Debug for Dialogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dialogue({})", self.protocol)
    }
}

impl Dialogue {
    /// Resolves and connects to `address` (phases `dns`, `connect`) and, for
    /// implicit TLS, shakes hands at once (phase `tls`, details in `rec.tls`).
    pub async fn open(
        rec: &mut Recorder,
        protocol: &'static str,
        address: &HostPort,
        family: IpFamily,
        mode: TlsMode,
        tls_config: &Arc<rustls::ClientConfig>,
        tls_options: &TlsOptions,
    ) -> Result<Dialogue, ProbeError> {
        let stream = connect(rec, address, family).await?;
        let mut dialogue = Dialogue {
            stream: Stream::Plain(stream),
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            response_bytes: 0,
            hidden: Vec::new(),
            protocol,
        };
        if mode == TlsMode::Implicit {
            rec.begin(Phase::Tls);
            dialogue
                .upgrade(rec, &address.host, tls_config, tls_options)
                .await?;
        }
        Ok(dialogue)
    }

    /// A dialogue with no socket whose server says exactly `bytes` and then
    /// closes; every send succeeds and is discarded. Its futures never wait.
    pub(super) fn scripted(protocol: &'static str, bytes: &[u8]) -> Dialogue {
        Dialogue {
            stream: Stream::Scripted,
            buf: bytes.to_vec(),
            start: 0,
            response_bytes: 0,
            hidden: Vec::new(),
            protocol,
        }
    }

    /// Registers a value (a password, its encodings) that must never be
    /// logged or quoted in a failure message.
    pub fn hide(&mut self, value: &str) {
        if !value.is_empty() {
            self.hidden.push(value.to_string());
        }
    }

    /// Replaces the plaintext connection by a TLS one (the caller has begun
    /// phase `tls`). Fails if the server sent anything the client has not read
    /// yet: after a STARTTLS reply, that is injected plaintext.
    pub async fn upgrade(
        &mut self,
        rec: &mut Recorder,
        host: &str,
        tls_config: &Arc<rustls::ClientConfig>,
        tls_options: &TlsOptions,
    ) -> Result<(), ProbeError> {
        if self.start < self.buf.len() {
            return Err(ProbeError::new(
                FailureReason::Protocol,
                format!(
                    "server sent {} byte(s) of plaintext after the STARTTLS reply; refusing to continue (possible command injection)",
                    self.buf.len() - self.start
                ),
            ));
        }
        let name = tls::server_name(tls_options, host)?;
        let tcp = match std::mem::replace(&mut self.stream, Stream::Gone) {
            Stream::Plain(tcp) => tcp,
            other => {
                self.stream = other;
                return Err(ProbeError::new(
                    FailureReason::Tls,
                    "the connection is already encrypted",
                ));
            }
        };
        let connector = tokio_rustls::TlsConnector::from(tls_config.clone());
        let tls_stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| tls::handshake_error(&e))?;
        rec.tls = Some(tls::info(tls_stream.get_ref().1));
        self.stream = Stream::Tls(Box::new(tls_stream));
        self.buf.clear();
        self.start = 0;
        Ok(())
    }

    /// Sends one command line; CRLF is appended. The line is logged at trace level.
    pub async fn send(&mut self, line: &str) -> Result<(), ProbeError> {
        tracing::trace!(protocol = self.protocol, "> {}", self.shown(line));
        self.send_bytes(format!("{line}\r\n").as_bytes()).await
    }

    /// Sends a line carrying a secret; only `shown` is ever logged.
    pub async fn send_secret(&mut self, line: &str, shown: &str) -> Result<(), ProbeError> {
        tracing::trace!(protocol = self.protocol, "> {shown}");
        self.send_bytes(format!("{line}\r\n").as_bytes()).await
    }

    /// Sends raw bytes (a message body, an IMAP literal) without logging them;
    /// like a command, it starts a new response budget.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), ProbeError> {
        self.response_bytes = 0;
        let result = match &mut self.stream {
            Stream::Plain(s) => write_all(s, bytes).await,
            Stream::Tls(s) => write_all(s.as_mut(), bytes).await,
            Stream::Scripted => Ok(()),
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        };
        result.map_err(|e| io_error(&e, "sending a command"))
    }

    /// Reads one line, without its CRLF (or bare LF). `what` names what the
    /// probe waits for, for messages ("the EHLO reply").
    pub async fn read_line(&mut self, what: &str) -> Result<String, ProbeError> {
        loop {
            let pending = &self.buf[self.start..];
            let newline = pending.iter().position(|b| *b == b'\n');
            if newline.unwrap_or(pending.len()) >= MAX_LINE {
                return Err(ProbeError::new(
                    FailureReason::Protocol,
                    format!("line longer than {MAX_LINE} bytes in {what}"),
                ));
            }
            if let Some(i) = newline {
                self.consume(i + 1, what)?;
                let mut line = &self.buf[self.start..self.start + i];
                self.start += i + 1;
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let text = String::from_utf8_lossy(line).into_owned();
                tracing::trace!(protocol = self.protocol, "< {}", self.shown(&text));
                return Ok(text);
            }
            if self.response_bytes + pending.len() > MAX_RESPONSE {
                return Err(too_long(what));
            }
            self.fill(what).await?;
        }
    }

    /// Reads exactly `n` bytes (an IMAP literal), within the response budget.
    pub async fn read_exact(&mut self, n: usize, what: &str) -> Result<Vec<u8>, ProbeError> {
        if self.response_bytes.saturating_add(n) > MAX_RESPONSE {
            return Err(too_long(what));
        }
        while self.buf.len() - self.start < n {
            self.fill(what).await?;
        }
        self.consume(n, what)?;
        let bytes = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        Ok(bytes)
    }

    /// Counts `n` consumed bytes against the response budget.
    fn consume(&mut self, n: usize, what: &str) -> Result<(), ProbeError> {
        self.response_bytes += n;
        if self.response_bytes > MAX_RESPONSE {
            return Err(too_long(what));
        }
        Ok(())
    }

    /// Reads more bytes from the socket into the buffer.
    async fn fill(&mut self, what: &str) -> Result<(), ProbeError> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0u8; READ_CHUNK];
        let n = match &mut self.stream {
            Stream::Plain(s) => s.read(&mut chunk).await,
            Stream::Tls(s) => s.read(&mut chunk).await,
            Stream::Scripted => Ok(0),
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
        .map_err(|e| io_error(&e, &format!("waiting for {what}")))?;
        if n == 0 {
            return Err(ProbeError::new(
                FailureReason::Protocol,
                format!("connection closed by the server while waiting for {what}"),
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Server text made safe to quote: registered secrets replaced, control
    /// characters dropped, and cut to a readable length.
    pub fn shown(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.hidden {
            out = out.replace(secret.as_str(), "<redacted>");
        }
        let mut clean: String = out
            .chars()
            .map(|ch| if ch.is_control() { ' ' } else { ch })
            .take(MAX_QUOTE)
            .collect();
        if out.chars().count() > MAX_QUOTE {
            clean.push_str("...");
        }
        clean
    }
}

async fn write_all<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

fn too_long(what: &str) -> ProbeError {
    ProbeError::new(
        FailureReason::Protocol,
        format!("{what} is longer than {MAX_RESPONSE} bytes"),
    )
}

/// Maps a socket error during the dialogue to a reason and a message.
fn io_error(e: &std::io::Error, doing: &str) -> ProbeError {
    use std::io::ErrorKind;
    if let Some(tls_error) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return ProbeError::new(
            FailureReason::Tls,
            format!("tls error while {doing}: {tls_error}"),
        );
    }
    let message = match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
            format!("connection reset by the server while {doing}")
        }
        ErrorKind::BrokenPipe => format!("connection closed by the server while {doing}"),
        ErrorKind::UnexpectedEof => format!("connection closed by the server while {doing}"),
        _ => format!("socket error while {doing}: {e}"),
    };
    ProbeError::new(FailureReason::Protocol, message)
}

/// Resolves `address` (phase `dns`) and connects (phase `connect`); the
/// connection's reads feed `rec`'s arrivals.
pub async fn connect(
    rec: &mut Recorder,
    address: &HostPort,
    family: IpFamily,
) -> Result<StampedTcp, ProbeError> {
    rec.begin(Phase::Dns);
    let host = if address.host.contains(':') {
        url::Host::parse(&format!("[{}]", address.host))
    } else {
        url::Host::parse(&address.host)
    }
    .map_err(|e| {
        ProbeError::new(
            FailureReason::Dns,
            format!("invalid host {:?}: {e}", address.host),
        )
    })?;
    let host = match &host {
        url::Host::Domain(name) => url::Host::Domain(name.as_str()),
        url::Host::Ipv4(ip) => url::Host::Ipv4(*ip),
        url::Host::Ipv6(ip) => url::Host::Ipv6(*ip),
    };
    let addrs: Vec<SocketAddr> = super::http::resolve(&host, address.port, family).await?;
    rec.begin(Phase::Connect);
    let stream = super::http::connect(&addrs).await?;
    Ok(StampedTcp::new(stream, rec.arrivals()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    /// A dialogue over a loopback connection whose server side is returned.
    async fn pair() -> (Dialogue, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let d = Dialogue {
            stream: Stream::Plain(StampedTcp::new(client, Default::default())),
            buf: Vec::new(),
            start: 0,
            response_bytes: 0,
            hidden: Vec::new(),
            protocol: "test",
        };
        (d, server)
    }

    #[tokio::test]
    async fn lines_split_on_crlf_and_bare_lf() {
        let (mut d, mut server) = pair().await;
        server.write_all(b"one\r\ntwo\nthree\r\n").await.unwrap();
        assert_eq!(d.read_line("x").await.unwrap(), "one");
        assert_eq!(d.read_line("x").await.unwrap(), "two");
        assert_eq!(d.read_line("x").await.unwrap(), "three");
    }

    #[tokio::test]
    async fn an_oversized_line_is_refused() {
        let (mut d, mut server) = pair().await;
        server.write_all(&vec![b'a'; MAX_LINE + 10]).await.unwrap();
        let e = d.read_line("the banner").await.unwrap_err();
        assert_eq!(e.reason, FailureReason::Protocol);
        assert_eq!(e.message, "line longer than 8192 bytes in the banner");
    }

    #[tokio::test]
    async fn a_complete_but_oversized_line_is_refused_too() {
        let (mut d, mut server) = pair().await;
        let mut line = vec![b'a'; MAX_LINE + 100];
        line.extend_from_slice(b"\r\n");
        server.write_all(&line).await.unwrap();
        let e = d.read_line("the banner").await.unwrap_err();
        assert_eq!(e.message, "line longer than 8192 bytes in the banner");
    }

    #[tokio::test]
    async fn the_response_budget_resets_with_each_command() {
        let (mut d, mut server) = pair().await;
        let line = format!("{}\r\n", "x".repeat(1000));
        tokio::spawn(async move {
            for _ in 0..200 {
                if server.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        for _ in 0..60 {
            d.read_line("x").await.unwrap();
        }
        d.response_bytes = 0;
        let mut n = 0;
        let e = loop {
            match d.read_line("the reply").await {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert!((64..=66).contains(&n), "{n}");
        assert_eq!(e.message, "the reply is longer than 65536 bytes");
    }

    #[tokio::test]
    async fn secrets_are_redacted_from_quotes() {
        let (mut d, _server) = pair().await;
        d.hide("hunter2");
        assert_eq!(d.shown("bad pw hunter2\r"), "bad pw <redacted> ");
    }
}
