//! `kind = "email"`: SMTP submission of the alert as a plain-text mail,
//! with STARTTLS (default), implicit TLS or none (loopback relays), and
//! optional AUTH: PLAIN or LOGIN with a password, or XOAUTH2 with an OAuth
//! access token read from a file at every send (Microsoft 365 and Gmail,
//! where basic SMTP AUTH is being switched off; the operator's tooling
//! refreshes the file).

use std::path::PathBuf;

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

/// Which SMTP AUTH mechanism the e-mail receiver uses (`auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpAuth {
    /// No `auth` key: PLAIN, else LOGIN, as the server offers (with a password).
    Auto,
    /// `auth = "plain"`: PLAIN only.
    Plain,
    /// `auth = "login"`: LOGIN only.
    Login,
    /// `auth = "xoauth2"`: XOAUTH2 with the token in `token_file`.
    XOAuth2,
}

/// The user and token file of `auth = "xoauth2"`.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuth2Login {
    /// The mailbox the token was issued for (`username`).
    pub username: String,
    /// The token as it was at load (checked then; also what the redactor
    /// knows). Every send reads the file again.
    pub token: Secret,
    /// Where the token is, re-read at every send.
    pub token_file: PathBuf,
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
    /// AUTH credentials (user and password), if any.
    pub credentials: Option<(String, Secret)>,
    /// `auth = "xoauth2"`: the user and the token file.
    pub oauth2: Option<OAuth2Login>,
    /// The mechanism.
    pub auth: SmtpAuth,
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
    "auth",
    "token_file",
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
    let auth = match f.raw.auth.take().as_deref() {
        None => SmtpAuth::Auto,
        Some("plain") => SmtpAuth::Plain,
        Some("login") => SmtpAuth::Login,
        Some("xoauth2") => SmtpAuth::XOAuth2,
        Some(other) => {
            f.error(
                "auth",
                format!("invalid auth {other:?} (expected \"plain\", \"login\" or \"xoauth2\")"),
            );
            ok = false;
            SmtpAuth::Auto
        }
    };
    let username = f.raw.username.take();
    let password_file = f.raw.password_file.take();
    let token_file = f.raw.token_file.take();
    let mut credentials = None;
    let mut oauth2 = None;
    if auth == SmtpAuth::XOAuth2 {
        if password_file.is_some() {
            f.error(
                "password_file",
                "not used with auth = \"xoauth2\" (use token_file)",
            );
            ok = false;
        }
        match (username, token_file) {
            (Some(username), Some(file)) => match f.secret("token_file", file) {
                Some(token) => {
                    let token_file = token.path().to_path_buf();
                    oauth2 = Some(OAuth2Login {
                        username,
                        token,
                        token_file,
                    });
                }
                None => ok = false,
            },
            (None, _) => {
                f.error_here("auth = \"xoauth2\" needs `username` (the mailbox the token is for)");
                ok = false;
            }
            (Some(_), None) => {
                f.error(
                    "auth",
                    "auth = \"xoauth2\" needs `token_file` (the access token)",
                );
                ok = false;
            }
        }
    } else {
        if token_file.is_some() {
            f.error("token_file", "only used with auth = \"xoauth2\"");
            ok = false;
        }
        match (username, password_file) {
            (Some(u), Some(file)) => match f.secret("password_file", file) {
                Some(s) => credentials = Some((u, s)),
                None => ok = false,
            },
            (Some(_), None) => {
                f.error("username", "needs password_file");
                ok = false;
            }
            (None, Some(_)) => {
                f.error("password_file", "needs username");
                ok = false;
            }
            (None, None) => {
                if auth != SmtpAuth::Auto {
                    f.error("auth", "needs username and password_file");
                    ok = false;
                }
            }
        }
    }
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
        oauth2,
        auth,
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
        let mut secrets = Vec::new();
        if let Some((username, password)) = &self.credentials {
            secrets.push(ReceiverSecret::SmtpLogin { username, password });
        }
        if let Some(login) = &self.oauth2 {
            // The token at load; the receiver redacts the one it sends too.
            secrets.push(ReceiverSecret::Token(&login.token));
        }
        secrets
    }
}
