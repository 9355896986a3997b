//! `kind = "email"`: SMTP submission of the alert as a plain-text mail,
//! with STARTTLS (default), implicit TLS or none (loopback relays), and
//! optional AUTH.

use super::{ReceiverFields, ReceiverSecret, SpecSecrets};
use crate::config::Secret;

/// How the e-mail receiver secures its SMTP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection, then STARTTLS, which the server must offer.
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all (loopback relays only).
    None,
}

/// `kind = "email"`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailSpec {
    /// Host name of the submission server (also the TLS name).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// AUTH credentials, if any.
    pub credentials: Option<(String, Secret)>,
    /// Transport security.
    pub tls: SmtpTls,
    /// EHLO name.
    pub hello: String,
}

/// The keys an e-mail receiver accepts.
pub(super) const KEYS: &[&str] = &[
    "smtp_address",
    "from",
    "to",
    "username",
    "password_file",
    "tls",
    "hello",
];

/// Validates an e-mail receiver's keys, reporting every problem.
pub(super) fn validate(f: &mut ReceiverFields<'_, '_>) -> Option<EmailSpec> {
    let mut ok = true;
    let (host, port) = match f.raw.smtp_address.take() {
        None => {
            f.error_here("missing field `smtp_address` (required for kind \"email\")");
            ok = false;
            (String::new(), 0)
        }
        Some(addr) => match split_host_port(&addr) {
            Some(hp) => hp,
            None => {
                f.error(
                    "smtp_address",
                    format!("invalid address {addr:?} (expected host:port, e.g. \"smtp.example.org:587\")"),
                );
                ok = false;
                (String::new(), 0)
            }
        },
    };
    let from = f.raw.from.take().unwrap_or_default();
    if !looks_like_address(&from) {
        if from.is_empty() {
            f.error_here("missing field `from` (required for kind \"email\")");
        } else {
            f.error("from", format!("invalid address {from:?}"));
        }
        ok = false;
    }
    let to = f.raw.to.take().unwrap_or_default();
    if to.is_empty() {
        f.error(
            "to",
            "must list at least one address (required for kind \"email\")",
        );
        ok = false;
    }
    for (i, addr) in to.iter().enumerate() {
        if !looks_like_address(addr) {
            f.error_at_index("to", i, format!("invalid address {addr:?}"));
            ok = false;
        }
    }
    let tls = match f.raw.tls.as_deref() {
        None | Some("starttls") => SmtpTls::StartTls,
        Some("tls") => SmtpTls::Implicit,
        Some("none") => SmtpTls::None,
        Some(other) => {
            let message =
                format!("invalid tls {other:?} (expected \"starttls\", \"tls\" or \"none\")");
            f.error("tls", message);
            ok = false;
            SmtpTls::StartTls
        }
    };
    let credentials = match (f.raw.username.take(), f.raw.password_file.take()) {
        (Some(u), Some(file)) => match f.secret("password_file", file) {
            Some(s) => Some((u, s)),
            None => {
                ok = false;
                None
            }
        },
        (Some(_), None) => {
            f.error("username", "needs password_file");
            ok = false;
            None
        }
        (None, Some(_)) => {
            f.error("password_file", "needs username");
            ok = false;
            None
        }
        (None, None) => None,
    };
    let hello = match f.raw.hello.take() {
        Some(hello) => hello,
        None => f.hostname().to_string(),
    };
    if hello.is_empty() || hello.chars().any(|c| c.is_whitespace() || c.is_control()) {
        f.error("hello", "must be a host name");
        ok = false;
    }
    ok.then_some(EmailSpec {
        host,
        port,
        from,
        to,
        credentials,
        tls,
        hello,
    })
}

/// Splits `host:port` or `[v6]:port`.
fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// A plain `local@domain` address, without display names or angle brackets
/// (which would need quoting in SMTP commands).
fn looks_like_address(a: &str) -> bool {
    match a.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !a
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
        }
        None => false,
    }
}

impl SpecSecrets for EmailSpec {
    fn secrets(&self) -> Vec<ReceiverSecret<'_>> {
        match &self.credentials {
            Some((username, password)) => vec![ReceiverSecret::SmtpLogin { username, password }],
            None => Vec::new(),
        }
    }
}
