//! `kind = "email"`: SMTP submission, hand-rolled over tokio and rustls (the
//! same stack as the mail probes; no second TLS provider). STARTTLS (the
//! default; the server must offer it), implicit TLS, or plain for loopback
//! relays; AUTH PLAIN or LOGIN when a password is set, XOAUTH2 with an
//! access token re-read from its file at every send, and never over an
//! unencrypted session unless `tls = "none"` was chosen explicitly.
//!
//! SMTP 4xx replies and network errors are retriable, 5xx permanent. Mail
//! cannot be deduplicated: a retry after a lost final reply may deliver
//! twice. The whole session runs under the receiver's timeout.

use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::render;
use super::{AlertEvent, BoxFuture, DeliveryError, Receiver, ReceiverContext};
use crate::clock::Clock;
use crate::config::alerting::{EmailSpec, OAuth2Login, ReceiverConfig, SmtpAuth, SmtpTls};
use crate::config::Secret;

/// Longest SMTP reply line accepted.
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multi-line reply.
const MAX_REPLY_LINES: usize = 100;

/// An e-mail receiver.
pub struct EmailReceiver {
    name: String,
    spec: EmailSpec,
    tls: Arc<rustls::ClientConfig>,
    timeout: std::time::Duration,
    clock: Arc<dyn Clock>,
}

impl EmailReceiver {
    /// Builds the receiver from its configuration.
    pub fn new(
        config: &ReceiverConfig,
        spec: &EmailSpec,
        ctx: &ReceiverContext,
    ) -> Result<Self, String> {
        Ok(EmailReceiver {
            name: config.name.clone(),
            spec: spec.clone(),
            tls: super::http::tls_config(&config.tls, &[])?,
            timeout: config.timeout,
            clock: ctx.clock.clone(),
        })
    }

    async fn session(&self, message: &[u8]) -> Result<(), DeliveryError> {
        let spec = &self.spec;
        let tcp = TcpStream::connect((spec.host.as_str(), spec.port))
            .await
            .map_err(|e| {
                DeliveryError::retriable(format!(
                    "cannot connect to {}:{}: {e}",
                    spec.host, spec.port
                ))
            })?;
        match spec.tls {
            SmtpTls::Implicit => {
                let tls = self.handshake(tcp).await?;
                let mut s = BufReader::new(tls);
                expect(&mut s, 220, "greeting").await?;
                let caps = ehlo(&mut s, &spec.hello).await?;
                self.transaction(&mut s, &caps, true, message).await
            }
            SmtpTls::StartTls => {
                let mut s = BufReader::new(tcp);
                expect(&mut s, 220, "greeting").await?;
                let caps = ehlo(&mut s, &spec.hello).await?;
                if !caps.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS")) {
                    return Err(DeliveryError::permanent(format!(
                        "{}:{} does not offer STARTTLS (set tls = \"tls\" for port 465, or \"none\" for a plain loopback relay)",
                        spec.host, spec.port
                    )));
                }
                command(&mut s, "STARTTLS", 220, "STARTTLS").await?;
                // Anything the server sent before the handshake would be
                // injected plaintext: refuse the session.
                if !s.buffer().is_empty() {
                    return Err(DeliveryError::permanent(
                        "server sent data after its STARTTLS reply; refusing the session",
                    ));
                }
                let tls = self.handshake(s.into_inner()).await?;
                let mut s = BufReader::new(tls);
                let caps = ehlo(&mut s, &spec.hello).await?;
                self.transaction(&mut s, &caps, true, message).await
            }
            SmtpTls::None => {
                let mut s = BufReader::new(tcp);
                expect(&mut s, 220, "greeting").await?;
                let caps = ehlo(&mut s, &spec.hello).await?;
                self.transaction(&mut s, &caps, false, message).await
            }
        }
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, DeliveryError> {
        let name = ServerName::try_from(self.spec.host.clone()).map_err(|_| {
            DeliveryError::permanent(format!("invalid TLS name {:?}", self.spec.host))
        })?;
        tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| {
                DeliveryError::retriable(format!(
                    "TLS handshake with {}:{}: {e}",
                    self.spec.host, self.spec.port
                ))
            })
    }

    /// AUTH, MAIL, RCPT, DATA, QUIT on an established session.
    async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        s: &mut BufReader<S>,
        caps: &[String],
        encrypted: bool,
        message: &[u8],
    ) -> Result<(), DeliveryError> {
        let spec = &self.spec;
        if spec.credentials.is_some() || spec.oauth2.is_some() {
            if !encrypted && spec.tls != SmtpTls::None {
                return Err(DeliveryError::permanent(
                    "refusing to send credentials without TLS",
                ));
            }
            let offered = mechanisms(caps);
            let offers = |m: &str| offered.iter().any(|o| o == m);
            let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
            if let Some(login) = &spec.oauth2 {
                if !offers("XOAUTH2") {
                    return Err(DeliveryError::permanent(format!(
                        "{}:{} does not offer AUTH XOAUTH2",
                        spec.host, spec.port
                    )));
                }
                xoauth2(s, login).await?;
            } else if let Some((user, password)) = &spec.credentials {
                let plain = offers("PLAIN") && spec.auth != SmtpAuth::Login;
                let login = offers("LOGIN") && spec.auth != SmtpAuth::Plain;
                if plain {
                    let token = b64(format!("\0{user}\0{}", password.expose()).as_bytes());
                    command(s, &format!("AUTH PLAIN {token}"), 235, "AUTH PLAIN").await?;
                } else if login {
                    command(s, "AUTH LOGIN", 334, "AUTH LOGIN").await?;
                    command(s, &b64(user.as_bytes()), 334, "AUTH LOGIN user").await?;
                    command(
                        s,
                        &b64(password.expose().as_bytes()),
                        235,
                        "AUTH LOGIN password",
                    )
                    .await?;
                } else {
                    let wanted = match spec.auth {
                        SmtpAuth::Plain => "PLAIN",
                        SmtpAuth::Login => "LOGIN",
                        _ => "PLAIN, LOGIN",
                    };
                    return Err(DeliveryError::permanent(format!(
                        "{}:{} offers no AUTH mechanism mailpulse speaks ({wanted})",
                        spec.host, spec.port
                    )));
                }
            }
        }
        command(s, &format!("MAIL FROM:<{}>", spec.from), 250, "MAIL FROM").await?;
        for to in &spec.to {
            command(s, &format!("RCPT TO:<{to}>"), 250, "RCPT TO").await?;
        }
        command(s, "DATA", 354, "DATA").await?;
        let mut data = dot_stuff(message);
        data.extend_from_slice(b".\r\n");
        s.get_mut().write_all(&data).await.map_err(io_err)?;
        s.get_mut().flush().await.map_err(io_err)?;
        expect(s, 250, "end of DATA").await?;
        // The message is accepted; a failed QUIT changes nothing.
        let _ = s.get_mut().write_all(b"QUIT\r\n").await;
        let _ = s.get_mut().flush().await;
        Ok(())
    }
}

fn io_err(e: std::io::Error) -> DeliveryError {
    DeliveryError::retriable(format!("smtp connection: {e}"))
}

/// Sends a command line and expects `code`.
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    line: &str,
    code: u16,
    what: &str,
) -> Result<Vec<String>, DeliveryError> {
    s.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(io_err)?;
    s.get_mut().flush().await.map_err(io_err)?;
    expect(s, code, what).await
}

/// The SASL mechanisms an EHLO reply offers (`AUTH PLAIN LOGIN`, or the old
/// `AUTH=` form), upper-cased.
fn mechanisms(caps: &[String]) -> Vec<String> {
    caps.iter()
        .filter_map(|c| {
            let upper = c.to_ascii_uppercase();
            upper
                .strip_prefix("AUTH ")
                .or_else(|| upper.strip_prefix("AUTH="))
                .map(str::to_string)
        })
        .flat_map(|m| m.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// AUTH XOAUTH2 with the token as its file holds it now. A refused token
/// (the server's 334 error challenge, answered with an empty line, then its
/// final reply) is retriable: the operator's tooling may not have refreshed
/// it yet. Whatever the server answers passes a redactor of this token
/// first, since the receiver's own redactor knows only the token at load.
async fn xoauth2<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    login: &OAuth2Login,
) -> Result<(), DeliveryError> {
    let token = Secret::from_file(&login.token_file).map_err(|e| {
        DeliveryError::retriable(format!(
            "cannot read token_file {}: {e}",
            login.token_file.display()
        ))
    })?;
    let initial = base64::engine::general_purpose::STANDARD.encode(format!(
        "user={}\x01auth=Bearer {}\x01\x01",
        login.username,
        token.expose()
    ));
    let redactor = super::redact::Redactor::new([token.expose(), initial.as_str()]);
    let result = async {
        s.get_mut()
            .write_all(format!("AUTH XOAUTH2 {initial}\r\n").as_bytes())
            .await
            .map_err(io_err)?;
        s.get_mut().flush().await.map_err(io_err)?;
        let (code, lines) = reply(s, "AUTH XOAUTH2").await?;
        match code {
            235 => Ok(()),
            334 => {
                // The error challenge (base64 JSON); an empty line ends the exchange.
                let detail = lines
                    .first()
                    .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l.trim()).ok())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                s.get_mut().write_all(b"\r\n").await.map_err(io_err)?;
                s.get_mut().flush().await.map_err(io_err)?;
                let (code, lines) = reply(s, "AUTH XOAUTH2").await?;
                Err(DeliveryError::retriable(format!(
                    "AUTH XOAUTH2: the token was refused (smtp {code} {}; {detail}); retried with the token file as it is then",
                    lines.join(" ")
                )))
            }
            _ => Err(reply_error("AUTH XOAUTH2", code, &lines)),
        }
    }
    .await;
    result.map_err(|e| redactor.error(e))
}

/// Reads one (possibly multi-line) reply and checks its code: 4xx is
/// retriable, anything else unexpected permanent. Returns the text lines.
async fn expect<S: AsyncRead + Unpin>(
    s: &mut BufReader<S>,
    code: u16,
    what: &str,
) -> Result<Vec<String>, DeliveryError> {
    let (got, lines) = reply(s, what).await?;
    if got == code {
        Ok(lines)
    } else {
        Err(reply_error(what, got, &lines))
    }
}

/// The error of an unexpected reply: 4xx is retriable, anything else permanent.
fn reply_error(what: &str, code: u16, lines: &[String]) -> DeliveryError {
    let message = format!("{what}: smtp {code} {}", lines.join(" "));
    if (400..500).contains(&code) {
        DeliveryError::retriable(message)
    } else {
        DeliveryError::permanent(message)
    }
}

/// Reads one (possibly multi-line) reply: its code and text lines.
async fn reply<S: AsyncRead + Unpin>(
    s: &mut BufReader<S>,
    what: &str,
) -> Result<(u16, Vec<String>), DeliveryError> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = (&mut *s)
            .take(MAX_REPLY_LINE as u64)
            .read_line(&mut line)
            .await
            .map_err(io_err)?;
        if n == 0 {
            return Err(DeliveryError::retriable(format!(
                "smtp server closed the connection (waiting for the {what} reply)"
            )));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        let got: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| DeliveryError::permanent(format!("malformed smtp reply {line:?}")))?;
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line.get(4..).unwrap_or("").to_string());
        if last {
            return Ok((got, lines));
        }
        if lines.len() > MAX_REPLY_LINES {
            return Err(DeliveryError::permanent("smtp reply too long"));
        }
    }
}

/// EHLO; returns the capability lines (after the greeting line).
async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    hello: &str,
) -> Result<Vec<String>, DeliveryError> {
    let lines = command(s, &format!("EHLO {hello}"), 250, "EHLO").await?;
    Ok(lines.into_iter().skip(1).collect())
}

/// CRLF line endings and a doubled leading dot on lines that start with one.
fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(message);
    let mut out = Vec::with_capacity(message.len() + 64);
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // `split` yields an empty last piece after a final newline; drop its CRLF
    // duplicate so the body ends with exactly one line break.
    if message.ends_with(b"\n") {
        out.truncate(out.len() - 2);
    }
    out
}

/// A header value, RFC 2047-encoded when not plain ASCII.
fn header_text(s: &str) -> String {
    if s.is_ascii() && !s.chars().any(|c| c.is_control()) {
        s.to_string()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }
}

/// The subject line of an event: `[mailpulse] owa slow (critical)`.
pub fn subject(e: &AlertEvent) -> String {
    format!("[mailpulse] {} ({})", render::title(e), e.severity)
}

/// The whole message (headers and body), with CRLF line endings.
pub fn message(spec: &EmailSpec, e: &AlertEvent, now: DateTime<Utc>) -> Vec<u8> {
    let body = render::description(e);
    let (encoding, body) = if body.is_ascii() {
        ("7bit", body)
    } else {
        // Base64 in 76-column lines: safe through any relay, 8BITMIME or not.
        let encoded = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());
        let lines: Vec<&str> = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        ("base64", lines.join("\n"))
    };
    let message_id = format!(
        "<{}.{}.{}@{}>",
        e.incident_key,
        e.status.as_str(),
        now.timestamp_millis(),
        spec.hello
    );
    let headers = [
        format!("From: {}", spec.from),
        format!("To: {}", spec.to.join(", ")),
        format!("Subject: {}", header_text(&subject(e))),
        format!("Date: {}", now.to_rfc2822()),
        format!("Message-ID: {message_id}"),
        "MIME-Version: 1.0".to_string(),
        "Content-Type: text/plain; charset=utf-8".to_string(),
        format!("Content-Transfer-Encoding: {encoding}"),
        "Auto-Submitted: auto-generated".to_string(),
        format!("X-Mailpulse-Incident: {}", e.incident_key),
        format!("X-Mailpulse-Status: {}", e.status.as_str()),
    ];
    let mut out = headers.join("\r\n");
    out.push_str("\r\n\r\n");
    out.push_str(&body.replace('\n', "\r\n"));
    out.push_str("\r\n");
    out.into_bytes()
}

impl Receiver for EmailReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "email"
    }

    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let msg = message(&self.spec, event, self.clock.now());
            match tokio::time::timeout(self.timeout, self.session(&msg)).await {
                Ok(r) => r,
                Err(_) => Err(DeliveryError::retriable(format!(
                    "smtp session with {}:{} took longer than {}",
                    self.spec.host,
                    self.spec.port,
                    crate::config::HumanDuration(self.timeout)
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::sample_event;
    use crate::config::Secret;
    use crate::config::TlsOptions;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    fn spec(port: u16, tls: SmtpTls, creds: bool) -> EmailSpec {
        EmailSpec {
            host: "127.0.0.1".into(),
            port,
            from: "mailpulse@example.org".into(),
            to: vec!["ops@example.org".into(), "oncall@example.org".into()],
            credentials: creds.then(|| ("alice".to_string(), Secret::new("s3cret"))),
            oauth2: None,
            auth: SmtpAuth::Auto,
            tls,
            hello: "agent.example".into(),
        }
    }

    fn receiver(spec: EmailSpec) -> EmailReceiver {
        EmailReceiver {
            name: "mail".into(),
            spec,
            tls: super::super::http::tls_config(&TlsOptions::default(), &[]).unwrap(),
            timeout: std::time::Duration::from_secs(5),
            clock: crate::clock::system(),
        }
    }

    /// A scripted SMTP server: answers each command with the next reply and
    /// records what it received.
    async fn fake_server(replies: Vec<&'static str>) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut seen = String::new();
            sock.write_all(b"220 fake ESMTP\r\n").await.unwrap();
            let mut buf = vec![0u8; 65536];
            let mut in_data = false;
            let mut replies = replies.into_iter();
            loop {
                let n = sock.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                let chunk = String::from_utf8_lossy(&buf[..n]).to_string();
                seen.push_str(&chunk);
                if in_data && !seen.ends_with("\r\n.\r\n") {
                    continue;
                }
                in_data = chunk.starts_with("DATA");
                let Some(reply) = replies.next() else { break };
                sock.write_all(reply.as_bytes()).await.unwrap();
            }
            seen
        });
        (port, handle)
    }

    #[tokio::test]
    async fn a_plain_session_with_auth_plain() {
        let (port, server) = fake_server(vec![
            "250-fake\r\n250-AUTH LOGIN PLAIN\r\n250 8BITMIME\r\n",
            "235 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "250 ok\r\n",
            "354 go\r\n",
            "250 queued\r\n",
            "221 bye\r\n",
        ])
        .await;
        let r = receiver(spec(port, SmtpTls::None, true));
        r.send(&sample_event()).await.unwrap();
        let seen = server.await.unwrap();
        let plain = base64::engine::general_purpose::STANDARD.encode("\0alice\0s3cret");
        assert!(seen.starts_with(&format!(
            "EHLO agent.example\r\nAUTH PLAIN {plain}\r\nMAIL FROM:<mailpulse@example.org>\r\nRCPT TO:<ops@example.org>\r\nRCPT TO:<oncall@example.org>\r\nDATA\r\n"
        )), "{seen}");
        assert!(seen.contains("Subject: [mailpulse] owa slow (critical)\r\n"));
        assert!(seen.contains("\r\n\r\nowa slow since 02:14:05Z: latency 3.8 s"));
        assert!(seen.ends_with("\r\n.\r\nQUIT\r\n"), "{seen}");
    }

    /// The SASL exchange an XOAUTH2 server makes, checked: accepts only
    /// `user=alice@example.org` with the bearer token `expected` says for
    /// this connection; a wrong one gets the error challenge, which must be
    /// answered with an empty line, then 535. Records each token it got.
    async fn xoauth2_server(
        offers: &'static str,
        expected: Vec<&'static str>,
    ) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let mut tokens = Vec::new();
            for want in expected {
                let (sock, _) = listener.accept().await.unwrap();
                let mut sock = BufReader::new(sock);
                sock.get_mut()
                    .write_all(b"220 fake ESMTP\r\n")
                    .await
                    .unwrap();
                let mut in_data = false;
                loop {
                    let mut line = String::new();
                    if sock.read_line(&mut line).await.unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end().to_string();
                    let reply: String = if in_data {
                        if line != "." {
                            continue;
                        }
                        in_data = false;
                        "250 queued".into()
                    } else if line.starts_with("EHLO") {
                        format!("250-fake\r\n250 {offers}")
                    } else if let Some(initial) = line.strip_prefix("AUTH XOAUTH2 ") {
                        let decoded = base64::engine::general_purpose::STANDARD
                            .decode(initial)
                            .map(|b| String::from_utf8(b).unwrap())
                            .unwrap_or_default();
                        let token = decoded
                            .strip_prefix("user=alice@example.org\x01auth=Bearer ")
                            .and_then(|rest| rest.strip_suffix("\x01\x01"))
                            .unwrap_or("<malformed>")
                            .to_string();
                        tokens.push(token.clone());
                        if token == want {
                            "235 2.7.0 Accepted".into()
                        } else {
                            let challenge = base64::engine::general_purpose::STANDARD
                                .encode(r#"{"status":"401","schemes":"bearer"}"#);
                            sock.get_mut()
                                .write_all(format!("334 {challenge}\r\n").as_bytes())
                                .await
                                .unwrap();
                            let mut empty = String::new();
                            sock.read_line(&mut empty).await.unwrap();
                            assert_eq!(
                                empty, "\r\n",
                                "the error challenge is answered with an empty line"
                            );
                            // Echoes what it got, as a hostile server might.
                            format!("535 5.7.8 rejected {initial}")
                        }
                    } else if line == "DATA" {
                        in_data = true;
                        "354 go".into()
                    } else if line == "QUIT" {
                        sock.get_mut().write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    } else {
                        "250 ok".into()
                    };
                    sock.get_mut()
                        .write_all(format!("{reply}\r\n").as_bytes())
                        .await
                        .unwrap();
                }
            }
            tokens
        });
        (port, handle)
    }

    fn oauth2_spec(port: u16, token_file: &std::path::Path) -> EmailSpec {
        EmailSpec {
            credentials: None,
            oauth2: Some(OAuth2Login {
                username: "alice@example.org".into(),
                token: Secret::new("at-load"),
                token_file: token_file.to_path_buf(),
            }),
            auth: SmtpAuth::XOAuth2,
            ..spec(port, SmtpTls::None, false)
        }
    }

    #[tokio::test]
    async fn xoauth2_sends_the_token_as_its_file_holds_it_at_each_send() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "tok-one\n").unwrap();
        let (port, server) = xoauth2_server("AUTH PLAIN XOAUTH2", vec!["tok-one", "tok-two"]).await;
        let r = receiver(oauth2_spec(port, &file));
        r.send(&sample_event()).await.unwrap();
        // The operator's tooling refreshes the token.
        std::fs::write(&file, "tok-two\n").unwrap();
        r.send(&sample_event()).await.unwrap();
        assert_eq!(server.await.unwrap(), ["tok-one", "tok-two"]);
    }

    #[tokio::test]
    async fn a_refused_token_is_retried_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "stale-token-4711\n").unwrap();
        let (port, server) = xoauth2_server("AUTH XOAUTH2", vec!["fresh-token"]).await;
        let err = receiver(oauth2_spec(port, &file))
            .send(&sample_event())
            .await
            .unwrap_err();
        assert!(err.is_retriable(), "{err}");
        let text = err.to_string();
        assert!(text.contains("the token was refused (smtp 535"), "{text}");
        assert!(text.contains(r#""status":"401""#), "{text}");
        let initial = base64::engine::general_purpose::STANDARD
            .encode("user=alice@example.org\x01auth=Bearer stale-token-4711\x01\x01");
        assert!(
            !text.contains("stale-token-4711") && !text.contains(&initial),
            "{text}"
        );
        assert_eq!(server.await.unwrap(), ["stale-token-4711"]);
    }

    #[tokio::test]
    async fn xoauth2_needs_the_server_to_offer_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "tok\n").unwrap();
        let (port, _server) = xoauth2_server("AUTH PLAIN LOGIN", vec!["tok"]).await;
        let err = receiver(oauth2_spec(port, &file))
            .send(&sample_event())
            .await
            .unwrap_err();
        assert!(!err.is_retriable(), "{err}");
        assert!(
            err.to_string().ends_with("does not offer AUTH XOAUTH2"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn reply_codes_decide_retries() {
        // A 4xx at RCPT is worth retrying.
        let (port, _server) =
            fake_server(vec!["250 fake\r\n", "250 ok\r\n", "451 try later\r\n"]).await;
        let err = receiver(spec(port, SmtpTls::None, false))
            .send(&sample_event())
            .await
            .unwrap_err();
        assert!(err.is_retriable(), "{err}");
        assert_eq!(err.to_string(), "RCPT TO: smtp 451 try later");
        // A 5xx is not.
        let (port, _server) = fake_server(vec!["250 fake\r\n", "550 no such user\r\n"]).await;
        let err = receiver(spec(port, SmtpTls::None, false))
            .send(&sample_event())
            .await
            .unwrap_err();
        assert!(!err.is_retriable(), "{err}");
        // STARTTLS is required by default.
        let (port, _server) = fake_server(vec!["250 fake\r\n"]).await;
        let err = receiver(spec(port, SmtpTls::StartTls, false))
            .send(&sample_event())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not offer STARTTLS"), "{err}");
    }

    #[test]
    fn dots_are_stuffed_and_lines_end_in_crlf() {
        assert_eq!(dot_stuff(b"a\n.b\nc\n"), b"a\r\n..b\r\nc\r\n");
        assert_eq!(dot_stuff(b"a\r\n.\r\n"), b"a\r\n..\r\n");
    }

    #[test]
    fn non_ascii_is_encoded() {
        let mut e = sample_event();
        e.target = "wébmail".into();
        let m =
            String::from_utf8(message(&spec(25, SmtpTls::None, false), &e, e.detected_at)).unwrap();
        assert!(m.contains("Subject: =?UTF-8?B?"), "{m}");
        assert!(m.contains("Content-Transfer-Encoding: base64"));
    }

    #[test]
    fn a_window_summary_is_its_text() {
        let e = crate::alert::tests::sample_summary_event();
        assert_eq!(
            subject(&e),
            "[mailpulse] Change window \"batch-1\" ended on cas01: 3 incidents (1 held, 2 beyond tolerance), 1 still open (info)"
        );
        let m =
            String::from_utf8(message(&spec(25, SmtpTls::None, false), &e, e.detected_at)).unwrap();
        assert!(m.contains("owa: 2 incidents, degraded 12m 3s"), "{m}");
        assert!(m.contains("Still open at the end"), "{m}");
    }
}
