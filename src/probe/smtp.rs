//! The SMTP probe: a real client dialogue, every step timed: `connect`,
//! `tls` (implicit, on 465), `banner`, `ehlo`, `starttls` + `tls` + `ehlo`
//! again, `auth` (PLAIN or LOGIN), optionally `mail_from` and `rcpt_to`
//! (the recipient is checked, no message is sent), and `quit`.
//!
//! Replies are read whole (multi-line `250-...` continuations) within the
//! caps of [`Dialogue`]; a refusal fails with reason `reply` (or `auth` for
//! the credentials) and the server's code in the message. [`Session`] is
//! reused by the mail flow probe, which sends a real message.

use std::sync::Arc;

use base64::Engine as _;

use crate::config::{SmtpAuthMechanism, SmtpSpec, TlsMode};
use crate::sample::{FailureReason, Phase};

use super::dialogue::Dialogue;
use super::{tls, ProbeError, Recorder};

/// An SMTP target prepared for probing.
#[derive(Debug)]
pub struct SmtpProber {
    spec: SmtpSpec,
    tls: Arc<rustls::ClientConfig>,
}

impl SmtpProber {
    /// Prepares the TLS client of a target.
    pub fn new(spec: &SmtpSpec) -> Result<SmtpProber, ProbeError> {
        Ok(SmtpProber {
            spec: spec.clone(),
            tls: tls::client_config(&spec.tls_options, &[])?,
        })
    }

    /// Runs the dialogue.
    pub async fn probe(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        let mut session = Session::open(rec, &self.spec, &self.tls).await?;
        if let Some(from) = &self.spec.mail_from {
            rec.begin_after_read(Phase::MailFrom);
            session.mail_from(from).await?;
            if let Some(to) = &self.spec.rcpt_to {
                rec.begin_after_read(Phase::RcptTo);
                session.rcpt_to(to).await?;
            }
        }
        rec.begin_after_read(Phase::Quit);
        if self.spec.mail_from.is_some() {
            // Nothing is sent: the transaction is abandoned before DATA.
            session.command("RSET", &[250], "RSET").await?;
        }
        session.quit().await?;
        rec.end_after_read();
        Ok(())
    }
}

/// One SMTP reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Text after the code on each line.
    pub lines: Vec<String>,
}

impl Reply {
    /// The first line, for messages: `554 5.7.1 go away`.
    fn summary(&self, d: &Dialogue) -> String {
        let text = self.lines.first().map(String::as_str).unwrap_or("");
        d.shown(format!("{} {text}", self.code).trim_end())
    }
}

/// An open SMTP session, greeted and (if configured) authenticated.
#[derive(Debug)]
pub struct Session {
    d: Dialogue,
    /// EHLO keywords and their parameters, uppercased (`AUTH PLAIN LOGIN`).
    extensions: Vec<String>,
}

impl Session {
    /// Connects, reads the banner, says EHLO, starts TLS and authenticates,
    /// as `spec` asks; each step timed in `rec`.
    pub async fn open(
        rec: &mut Recorder,
        spec: &SmtpSpec,
        tls_config: &Arc<rustls::ClientConfig>,
    ) -> Result<Session, ProbeError> {
        let mut d = Dialogue::open(
            rec,
            "smtp",
            &spec.address,
            spec.ip_family,
            spec.tls,
            tls_config,
            &spec.tls_options,
        )
        .await?;
        if let Some(creds) = &spec.auth {
            hide_credentials(&mut d, &creds.username, creds.password.expose());
        }

        rec.begin(Phase::Banner);
        let banner = read_reply(&mut d, "the banner").await?;
        if banner.code != 220 {
            return Err(refused(&d, "server refused the session", &banner));
        }
        rec.notes.push(format!("banner: {}", banner.summary(&d)));

        let mut session = Session {
            d,
            extensions: Vec::new(),
        };
        rec.begin_after_read(Phase::Ehlo);
        session.ehlo(&spec.helo_name).await?;

        if spec.tls == TlsMode::StartTls {
            rec.begin_after_read(Phase::Starttls);
            if !session.has("STARTTLS") {
                return Err(ProbeError::new(
                    FailureReason::Tls,
                    "server does not offer STARTTLS (set tls = \"none\" to probe without TLS)",
                ));
            }
            session.command("STARTTLS", &[220], "STARTTLS").await?;
            rec.begin_after_read(Phase::Tls);
            session
                .d
                .upgrade(rec, &spec.address.host, tls_config, &spec.tls_options)
                .await?;
            // RFC 3207: everything learnt before TLS is forgotten.
            rec.begin(Phase::Ehlo);
            session.ehlo(&spec.helo_name).await?;
        }

        if let Some(creds) = &spec.auth {
            rec.begin_after_read(Phase::Auth);
            session
                .authenticate(spec.mechanism, &creds.username, creds.password.expose())
                .await?;
        }
        Ok(session)
    }

    /// Whether the server announced an EHLO keyword.
    fn has(&self, keyword: &str) -> bool {
        self.extensions
            .iter()
            .any(|e| e.split_whitespace().next() == Some(keyword))
    }

    async fn ehlo(&mut self, name: &str) -> Result<(), ProbeError> {
        let reply = self
            .command(&format!("EHLO {name}"), &[250], "EHLO")
            .await?;
        self.extensions = reply
            .lines
            .iter()
            .skip(1)
            .map(|l| l.trim().to_ascii_uppercase())
            .collect();
        Ok(())
    }

    /// Sends `line`, reads the reply and checks its code is one of `ok`.
    pub async fn command(
        &mut self,
        line: &str,
        ok: &[u16],
        name: &str,
    ) -> Result<Reply, ProbeError> {
        self.d.send(line).await?;
        let reply = read_reply(&mut self.d, &format!("the {name} reply")).await?;
        if !ok.contains(&reply.code) {
            return Err(refused(&self.d, &format!("{name} refused"), &reply));
        }
        Ok(reply)
    }

    async fn authenticate(
        &mut self,
        mechanism: SmtpAuthMechanism,
        username: &str,
        password: &str,
    ) -> Result<(), ProbeError> {
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let offered: Vec<String> = self
            .extensions
            .iter()
            .filter_map(|e| e.strip_prefix("AUTH").map(str::to_string))
            .flat_map(|rest| {
                rest.trim_start_matches('=')
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        let name = match mechanism {
            SmtpAuthMechanism::Plain => "PLAIN",
            SmtpAuthMechanism::Login => "LOGIN",
        };
        if !offered.iter().any(|m| m == name) {
            let list = if offered.is_empty() {
                "none".to_string()
            } else {
                offered.join(" ")
            };
            return Err(ProbeError::new(
                FailureReason::Auth,
                format!("server does not offer AUTH {name} (offered: {list})"),
            ));
        }
        let final_reply = match mechanism {
            SmtpAuthMechanism::Plain => {
                let token = b64(format!("\0{username}\0{password}").as_bytes());
                self.d.hide(&token);
                self.d
                    .send_secret(&format!("AUTH PLAIN {token}"), "AUTH PLAIN <credentials>")
                    .await?;
                read_reply(&mut self.d, "the AUTH reply").await?
            }
            SmtpAuthMechanism::Login => {
                self.d.send("AUTH LOGIN").await?;
                let reply = read_reply(&mut self.d, "the AUTH LOGIN reply").await?;
                if reply.code != 334 {
                    return Err(auth_refused(&self.d, &reply));
                }
                self.d
                    .send_secret(&b64(username.as_bytes()), "<user name>")
                    .await?;
                let reply = read_reply(&mut self.d, "the AUTH LOGIN reply").await?;
                if reply.code != 334 {
                    return Err(auth_refused(&self.d, &reply));
                }
                self.d
                    .send_secret(&b64(password.as_bytes()), "<password>")
                    .await?;
                read_reply(&mut self.d, "the AUTH reply").await?
            }
        };
        if final_reply.code != 235 {
            return Err(auth_refused(&self.d, &final_reply));
        }
        Ok(())
    }

    /// `MAIL FROM:<from>`, expecting 250.
    pub async fn mail_from(&mut self, from: &str) -> Result<(), ProbeError> {
        self.command(&format!("MAIL FROM:<{from}>"), &[250], "MAIL FROM")
            .await
            .map(drop)
    }

    /// `RCPT TO:<to>`, expecting 250 or 251.
    pub async fn rcpt_to(&mut self, to: &str) -> Result<(), ProbeError> {
        self.command(&format!("RCPT TO:<{to}>"), &[250, 251], "RCPT TO")
            .await
            .map(drop)
    }

    /// `DATA`, the message (dot-stuffed, CRLF line ends) and the final dot;
    /// returns the acceptance reply (`250 2.0.0 Ok: queued as ...`).
    pub async fn data(&mut self, message: &str) -> Result<Reply, ProbeError> {
        self.command("DATA", &[354], "DATA").await?;
        let mut body = String::with_capacity(message.len() + 16);
        for line in message.lines() {
            if line.starts_with('.') {
                body.push('.');
            }
            body.push_str(line);
            body.push_str("\r\n");
        }
        body.push_str(".\r\n");
        self.d.send_bytes(body.as_bytes()).await?;
        let reply = read_reply(&mut self.d, "the reply to the message").await?;
        if reply.code != 250 {
            return Err(refused(&self.d, "message refused", &reply));
        }
        Ok(reply)
    }

    /// `QUIT`, expecting 221; a server that just closes is accepted too.
    pub async fn quit(mut self) -> Result<(), ProbeError> {
        self.d.send("QUIT").await?;
        match read_reply(&mut self.d, "the QUIT reply").await {
            Ok(reply) if reply.code == 221 => Ok(()),
            Ok(reply) => Err(refused(&self.d, "QUIT refused", &reply)),
            Err(e) if e.message.starts_with("connection closed") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Sends `QUIT` without waiting for the answer (the mail flow probe
    /// does not want the goodbye inside its delivery timing).
    pub async fn quit_without_waiting(mut self) {
        let _ = self.d.send("QUIT").await;
    }

    /// Quotes server text safely (secrets removed).
    pub fn shown(&self, text: &str) -> String {
        self.d.shown(text)
    }
}

/// The client side of a session against a scripted server (fuzzing): banner,
/// EHLO and its extensions, then every further reply until the script ends.
pub(super) async fn fuzz_session(d: Dialogue) {
    let mut session = Session {
        d,
        extensions: Vec::new(),
    };
    if read_reply(&mut session.d, "the banner").await.is_err() {
        return;
    }
    if session.ehlo("fuzz.invalid").await.is_err() {
        return;
    }
    let _ = session.has("STARTTLS");
    while let Ok(reply) = read_reply(&mut session.d, "a reply").await {
        let _ = reply.summary(&session.d);
    }
}

/// Registers the forms of the credentials that could appear on the wire.
fn hide_credentials(d: &mut Dialogue, username: &str, password: &str) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    d.hide(password);
    d.hide(&b64(password));
    d.hide(&b64(&format!("\0{username}\0{password}")));
}

/// Reads one complete reply: `ddd-text` lines up to a `ddd text` (or bare `ddd`) line.
pub async fn read_reply(d: &mut Dialogue, what: &str) -> Result<Reply, ProbeError> {
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let line = d.read_line(what).await?;
        let bytes = line.as_bytes();
        let parsed = (bytes.len() >= 3 && bytes[..3].iter().all(u8::is_ascii_digit))
            .then(|| line[..3].parse::<u16>().ok())
            .flatten()
            .filter(|c| (200..=599).contains(c));
        let Some(this) = parsed.filter(|_| matches!(bytes.get(3), None | Some(b' ' | b'-'))) else {
            return Err(ProbeError::new(
                FailureReason::Protocol,
                format!("malformed line in {what}: {:?}", d.shown(&line)),
            ));
        };
        if *code.get_or_insert(this) != this {
            return Err(ProbeError::new(
                FailureReason::Protocol,
                format!("reply codes change inside {what}: {:?}", d.shown(&line)),
            ));
        }
        lines.push(line.get(4..).unwrap_or("").to_string());
        if bytes.get(3) != Some(&b'-') {
            return Ok(Reply { code: this, lines });
        }
    }
}

fn refused(d: &Dialogue, what: &str, reply: &Reply) -> ProbeError {
    ProbeError::new(
        FailureReason::Reply,
        format!("{what}: {}", reply.summary(d)),
    )
}

/// An AUTH refusal: 535 and friends are the credentials; 4xx and the rest
/// are the server's trouble, reported as `reply`.
fn auth_refused(d: &Dialogue, reply: &Reply) -> ProbeError {
    let reason = match reply.code {
        535 | 534 | 530 | 538 | 501 | 504 => FailureReason::Auth,
        _ => FailureReason::Reply,
    };
    ProbeError::new(reason, format!("AUTH refused: {}", reply.summary(d)))
}
