//! Targets that speak over a socket: `tcp`, `smtp`, `imap`, `pop3` and
//! `mailflow` (an SMTP submission and an IMAP session), with the mail
//! credentials, envelope addresses and mailbox they share.

use super::connect::{
    endpoint, endpoint_address, endpoint_start, endpoint_tls, Endpoint, EndpointKeys,
};
use super::files::read_password;
use super::*;
use crate::config::raw::RawTarget;

/// Whether `text` can be sent inside one protocol line without breaking it.
fn is_single_line(text: &str) -> bool {
    !text.chars().any(|ch| matches!(ch, '\r' | '\n' | '\0'))
}

/// A mail address for `MAIL FROM`/`RCPT TO`: no spaces, brackets or line breaks.
fn mail_address(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    key: &str,
    text: Option<String>,
) -> Option<String> {
    let text = text?;
    let ok = !text.is_empty()
        && text.contains('@')
        && !text
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control() || matches!(ch, '<' | '>'));
    if !ok {
        c.error_at(
            &tp.key(key),
            format!("invalid mail address {text:?} (expected local@domain)"),
        );
        return None;
    }
    Some(text)
}

/// The credentials of a mail target: both `username` and a password, or neither.
/// `Err` means an error was reported.
fn mail_credentials(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    base: &Path,
    t: &mut RawTarget,
    tls: &[TlsMode],
) -> Result<Option<Credentials>, ()> {
    let password_key = if t.password_credential.is_some() {
        "password_credential"
    } else {
        "password_file"
    };
    let password = read_password(
        c,
        tp,
        base,
        t.password_file.take(),
        t.password_credential.take(),
    )?;
    let creds = match (t.username.take(), password) {
        (Some(username), Some(password)) => {
            if username.is_empty() || !is_single_line(&username) {
                c.error_at(
                    &tp.key("username"),
                    "must be non-empty, without line breaks or NUL",
                );
                return Err(());
            }
            if !is_single_line(password.expose()) {
                // Never show the value: only where it came from.
                c.error_at(
                    &tp.key(password_key),
                    format!(
                        "the secret in {} must be one line without NUL",
                        password.path().display()
                    ),
                );
                return Err(());
            }
            Credentials { username, password }
        }
        (Some(_), None) => {
            c.error_at(
                &tp.key("username"),
                "needs password_file or password_credential",
            );
            return Err(());
        }
        (None, Some(_)) => {
            c.error_at(&tp.key(password_key), "needs username");
            return Err(());
        }
        (None, None) => return Ok(None),
    };
    if tls.contains(&TlsMode::None) {
        c.error_at(
            &tp.key("username"),
            "a password is never sent without TLS; use tls = \"starttls\" or \"implicit\"",
        );
        return Err(());
    }
    Ok(Some(creds))
}

/// `tcp`: `address` and `tls` (`none` by default; no STARTTLS).
const TCP: EndpointKeys = EndpointKeys::one("tcp", "mail.example.org:25", false);
/// `smtp`: `address` and `tls`.
const SMTP: EndpointKeys = EndpointKeys::one("smtp", "mail.example.org:587", true);
/// `imap`: `address` and `tls`.
const IMAP: EndpointKeys = EndpointKeys::one("imap", "mail.example.org:993", true);
/// `pop3`: `address` and `tls`.
const POP3: EndpointKeys = EndpointKeys::one("pop3", "mail.example.org:995", true);
/// The submission side of `mailflow`: `smtp_address` and `smtp_tls`.
const MAILFLOW_SMTP: EndpointKeys = EndpointKeys {
    kind: "mailflow",
    address: "smtp_address",
    tls: "smtp_tls",
    example: "mail.example.org:587",
    mail: true,
};
/// The mailbox side of `mailflow`: `imap_address` and `imap_tls`.
const MAILFLOW_IMAP: EndpointKeys = EndpointKeys {
    kind: "mailflow",
    address: "imap_address",
    tls: "imap_tls",
    example: "mail.example.org:993",
    mail: true,
};

/// The endpoint and credentials of an `smtp`, `imap` or `pop3` target, in
/// the order they are checked: address and TLS mode, then the credentials
/// (which need the TLS mode; a bad one ends the target's checks), then the
/// address family and TLS options.
fn mail_endpoint(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    base: &Path,
    t: &mut RawTarget,
    keys: &EndpointKeys,
) -> Option<(Endpoint, Option<Credentials>)> {
    let start = endpoint_start(c, tp, t, keys)?;
    let auth = mail_credentials(c, tp, base, t, &[start.1]).ok()?;
    Some((endpoint(c, tp, base, t, start), auth))
}

pub(super) fn build_tcp(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    mut t: RawTarget,
    base: &Path,
) -> Option<TcpSpec> {
    let start = endpoint_start(c, tp, &mut t, &TCP)?;
    let (address, tls, ip_family, tls_options) = endpoint(c, tp, base, &mut t, start).into_parts();
    Some(TcpSpec {
        address,
        tls,
        ip_family,
        tls_options,
    })
}

/// The parts of an SMTP spec shared by `smtp` and `mailflow`.
fn build_smtp_parts(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    t: &mut RawTarget,
    endpoint: Endpoint,
    auth: Option<Credentials>,
) -> Option<SmtpSpec> {
    let (address, tls, ip_family, tls_options) = endpoint.into_parts();
    let helo_name = match t.helo_name.take() {
        Some(name) => {
            if name.is_empty() || name.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                c.error_at(&tp.key("helo_name"), format!("invalid helo_name {name:?}"));
            }
            name
        }
        None => hostname(),
    };
    let mechanism = match t.auth.take().as_deref() {
        None | Some("plain") => SmtpAuthMechanism::Plain,
        Some("login") => SmtpAuthMechanism::Login,
        Some(other) => {
            c.error_at(
                &tp.key("auth"),
                format!("invalid auth {other:?} (expected \"plain\" or \"login\")"),
            );
            SmtpAuthMechanism::Plain
        }
    };
    let mail_from = mail_address(c, tp, "mail_from", t.mail_from.take());
    let rcpt_to = mail_address(c, tp, "rcpt_to", t.rcpt_to.take());
    Some(SmtpSpec {
        address,
        tls,
        ip_family,
        tls_options,
        helo_name,
        auth,
        mechanism,
        mail_from,
        rcpt_to,
    })
}

pub(super) fn build_smtp(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    mut t: RawTarget,
    base: &Path,
) -> Option<SmtpSpec> {
    let (endpoint, auth) = mail_endpoint(c, tp, base, &mut t, &SMTP)?;
    if t.auth.is_some() && auth.is_none() {
        c.error_at(&tp.key("auth"), "needs username and password_file");
    }
    if t.rcpt_to.is_some() && t.mail_from.is_none() {
        c.error_at(&tp.key("rcpt_to"), "needs mail_from");
    }
    build_smtp_parts(c, tp, &mut t, endpoint, auth)
}

/// The IMAP `auth` key.
fn imap_mechanism(c: &mut Checker<'_>, tp: &KeyPath, text: Option<String>) -> ImapAuthMechanism {
    match text.as_deref() {
        None | Some("login") => ImapAuthMechanism::Login,
        Some("plain") => ImapAuthMechanism::Plain,
        Some(other) => {
            c.error_at(
                &tp.key("auth"),
                format!("invalid auth {other:?} (expected \"login\" or \"plain\")"),
            );
            ImapAuthMechanism::Login
        }
    }
}

/// The `mailbox` key.
fn mailbox(c: &mut Checker<'_>, tp: &KeyPath, text: Option<String>) -> String {
    let name = text.unwrap_or_else(|| DEFAULT_MAILBOX.into());
    if name.is_empty() || !is_single_line(&name) {
        c.error_at(
            &tp.key("mailbox"),
            "must be a non-empty mailbox name on one line",
        );
    }
    name
}

pub(super) fn build_imap(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    mut t: RawTarget,
    base: &Path,
) -> Option<ImapSpec> {
    let (endpoint, auth) = mail_endpoint(c, tp, base, &mut t, &IMAP)?;
    if auth.is_none() {
        if t.auth.is_some() {
            c.error_at(&tp.key("auth"), "needs username and password_file");
        }
        if t.mailbox.is_some() {
            c.error_at(&tp.key("mailbox"), "needs username and password_file");
        }
    }
    let mechanism = imap_mechanism(c, tp, t.auth.take());
    let mailbox = mailbox(c, tp, t.mailbox.take());
    let (address, tls, ip_family, tls_options) = endpoint.into_parts();
    Some(ImapSpec {
        address,
        tls,
        ip_family,
        tls_options,
        auth,
        mechanism,
        mailbox,
    })
}

pub(super) fn build_pop3(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    mut t: RawTarget,
    base: &Path,
) -> Option<Pop3Spec> {
    let (endpoint, auth) = mail_endpoint(c, tp, base, &mut t, &POP3)?;
    let (address, tls, ip_family, tls_options) = endpoint.into_parts();
    Some(Pop3Spec {
        address,
        tls,
        ip_family,
        tls_options,
        auth,
    })
}

pub(super) fn build_mailflow(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    mut t: RawTarget,
    base: &Path,
) -> Option<MailflowSpec> {
    // Both addresses are checked before either TLS mode.
    let smtp_address = endpoint_address(c, tp, &mut t, &MAILFLOW_SMTP);
    let imap_address = endpoint_address(c, tp, &mut t, &MAILFLOW_IMAP);
    let (smtp_address, imap_address) = (smtp_address?, imap_address?);
    let smtp_tls = endpoint_tls(c, tp, &mut t, &MAILFLOW_SMTP, smtp_address.port);
    let imap_tls = endpoint_tls(c, tp, &mut t, &MAILFLOW_IMAP, imap_address.port);
    let Some(auth) = mail_credentials(c, tp, base, &mut t, &[smtp_tls, imap_tls]).ok()? else {
        c.error_at(
            tp,
            "missing field `username` (kind \"mailflow\" needs username and password_file)",
        );
        return None;
    };
    // The probe account usually mails itself: both envelope addresses default
    // to the user name when it is an address.
    let default_address = auth.username.contains('@').then(|| auth.username.clone());
    if t.mail_from.is_none() {
        t.mail_from = default_address.clone();
    }
    if t.rcpt_to.is_none() {
        t.rcpt_to = t.mail_from.clone().or(default_address);
    }
    if t.mail_from.is_none() || t.rcpt_to.is_none() {
        c.error_at(
            tp,
            "missing field `mail_from` (needed when username is not a mail address)",
        );
        return None;
    }
    let mailbox = mailbox(c, tp, t.mailbox.take());
    // One address family and one set of TLS options for both sides.
    let endpoint = endpoint(c, tp, base, &mut t, (smtp_address, smtp_tls));
    let imap = ImapSpec {
        address: imap_address,
        tls: imap_tls,
        ip_family: endpoint.ip_family,
        tls_options: endpoint.tls_options.clone(),
        auth: Some(auth.clone()),
        mechanism: ImapAuthMechanism::Login,
        mailbox,
    };
    let smtp = build_smtp_parts(c, tp, &mut t, endpoint, Some(auth))?;
    if smtp.mail_from.is_none() || smtp.rcpt_to.is_none() {
        return None;
    }
    Some(MailflowSpec { smtp, imap })
}
