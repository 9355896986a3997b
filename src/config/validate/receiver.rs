//! `[[receiver]]`: the keys every kind has (name, kind, timeout,
//! send_resolved, TLS), which keys each kind accepts (a key of another kind
//! names the kind), and each kind's own settings. Secrets are read from
//! `*_file` keys; a receiver URL is never quoted in an error, since it may be
//! the secret.

use super::files::{receiver_secret, receiver_tls};
use super::*;
use crate::config::alerting::{
    AlertmanagerSpec, ChatSpec, EmailSpec, GrafanaSpec, OpsgenieSpec, PagerDutySpec, ReceiverAuth,
    ReceiverConfig, ReceiverSpec, SmtpTls, WebhookSpec, DEFAULT_ALERTMANAGER_RESEND,
    DEFAULT_OPSGENIE_URL, DEFAULT_PAGERDUTY_URL, DEFAULT_RECEIVER_TIMEOUT,
};
use crate::config::raw::RawReceiver;

/// Receiver kinds and the kind-specific keys each accepts.
const RECEIVER_KINDS: &[(&str, &[&str])] = &[
    (
        "webhook",
        &[
            "url",
            "token_file",
            "username",
            "password_file",
            "tls_ca_file",
            "tls_insecure_skip_verify",
        ],
    ),
    (
        "alertmanager",
        &[
            "url",
            "token_file",
            "username",
            "password_file",
            "tls_ca_file",
            "tls_insecure_skip_verify",
            "resend_interval",
        ],
    ),
    (
        "pagerduty",
        &[
            "url",
            "routing_key_file",
            "tls_ca_file",
            "tls_insecure_skip_verify",
        ],
    ),
    (
        "opsgenie",
        &[
            "url",
            "api_key_file",
            "tags",
            "tls_ca_file",
            "tls_insecure_skip_verify",
        ],
    ),
    (
        "slack",
        &["url", "url_file", "tls_ca_file", "tls_insecure_skip_verify"],
    ),
    (
        "teams",
        &["url", "url_file", "tls_ca_file", "tls_insecure_skip_verify"],
    ),
    (
        "email",
        &[
            "smtp_address",
            "from",
            "to",
            "username",
            "password_file",
            "tls",
            "hello",
            "tls_ca_file",
            "tls_insecure_skip_verify",
        ],
    ),
    (
        "grafana",
        &[
            "url",
            "token_file",
            "username",
            "password_file",
            "dashboard_uid",
            "panel_id",
            "tags",
            "tls_ca_file",
            "tls_insecure_skip_verify",
        ],
    ),
];

/// Parses a receiver's URL. An error never quotes it: a receiver URL may
/// hold a secret (a Slack or Teams URL is one; a webhook's may carry a
/// token or a password).
fn parse_url(c: &mut Checker<'_>, key: &KeyPath, text: &str) -> Option<url::Url> {
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
        Ok(u) => {
            c.error_at(
                key,
                format!(
                    "invalid url with scheme {:?} (expected an http:// or https:// URL with a host; the URL is not quoted, it may hold a secret)",
                    u.scheme()
                ),
            );
            None
        }
        Err(err) => {
            c.error_at(
                key,
                format!("invalid url: {err} (the URL is not quoted, it may hold a secret)"),
            );
            None
        }
    }
}

pub(super) fn build_receiver(
    c: &mut Checker<'_>,
    path: &KeyPath,
    r: RawReceiver,
    base: &Path,
    hostname: &str,
) -> Option<ReceiverConfig> {
    let name = match &r.name {
        Some(n) if n.trim().is_empty() => {
            c.error_at(
                &path.key("name"),
                "must be a non-empty name without control characters",
            );
            return None;
        }
        Some(n) => match hidden_char_error(n) {
            Some(message) => {
                c.error_at(&path.key("name"), message);
                return None;
            }
            None => n.clone(),
        },
        None => {
            c.error_at(path, "missing field `name`");
            return None;
        }
    };
    let Some(kind) = r.kind.clone() else {
        c.error_at(path, format!("missing field `kind` in receiver {name:?}"));
        return None;
    };
    let Some((_, allowed)) = RECEIVER_KINDS.iter().find(|(k, _)| *k == kind) else {
        let known: Vec<&str> = RECEIVER_KINDS.iter().map(|(k, _)| *k).collect();
        c.error_at(
            &path.key("kind"),
            format!(
                "unknown kind {kind:?} (expected one of: {})",
                known.join(", ")
            ),
        );
        return None;
    };
    let mut misplaced = false;
    for key in r.keys_set() {
        if !allowed.contains(&key) {
            c.error_at(
                &path.key(key),
                format!("not valid for receiver kind {kind:?}"),
            );
            misplaced = true;
        }
    }
    let timeout = r
        .timeout
        .map(HumanDuration::get)
        .unwrap_or(DEFAULT_RECEIVER_TIMEOUT);
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(300) {
        c.error_at(&path.key("timeout"), "must be between 100ms and 5m");
    }
    let tls = receiver_tls(
        c,
        path,
        base,
        r.tls_ca_file.clone(),
        r.tls_insecure_skip_verify,
    );
    let key = |k: &str| path.key(k);
    let auth = |c: &mut Checker<'_>, r: &mut RawReceiver| -> ReceiverAuth {
        match (
            r.token_file.take(),
            r.username.take(),
            r.password_file.take(),
        ) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                c.error_at(
                    &key("token_file"),
                    "cannot be combined with username/password_file",
                );
                ReceiverAuth::None
            }
            (Some(f), None, None) => receiver_secret(c, &key("token_file"), base, f)
                .map(ReceiverAuth::Bearer)
                .unwrap_or(ReceiverAuth::None),
            (None, Some(username), Some(f)) => receiver_secret(c, &key("password_file"), base, f)
                .map(|password| ReceiverAuth::Basic { username, password })
                .unwrap_or(ReceiverAuth::None),
            (None, Some(_), None) => {
                c.error_at(&key("username"), "needs password_file");
                ReceiverAuth::None
            }
            (None, None, Some(_)) => {
                c.error_at(&key("password_file"), "needs username");
                ReceiverAuth::None
            }
            (None, None, None) => ReceiverAuth::None,
        }
    };
    let mut r = r;
    let required_url = |c: &mut Checker<'_>, r: &RawReceiver| -> Option<url::Url> {
        match &r.url {
            Some(u) => parse_url(c, &key("url"), u),
            None => {
                c.error_at(
                    path,
                    format!("missing field `url` (required for kind {kind:?})"),
                );
                None
            }
        }
    };
    let spec = match kind.as_str() {
        "webhook" => {
            let url = required_url(c, &r);
            let auth = auth(c, &mut r);
            ReceiverSpec::Webhook(WebhookSpec { url: url?, auth })
        }
        "alertmanager" => {
            let url = required_url(c, &r);
            let auth = auth(c, &mut r);
            let resend_interval = r
                .resend_interval
                .map(HumanDuration::get)
                .unwrap_or(DEFAULT_ALERTMANAGER_RESEND);
            if resend_interval < Duration::from_secs(1) {
                c.error_at(&key("resend_interval"), "must be at least 1s");
            }
            ReceiverSpec::Alertmanager(AlertmanagerSpec {
                url: url?,
                auth,
                resend_interval,
            })
        }
        "pagerduty" => {
            let url = parse_url(
                c,
                &key("url"),
                r.url.as_deref().unwrap_or(DEFAULT_PAGERDUTY_URL),
            );
            let routing_key = match r.routing_key_file.take() {
                Some(f) => receiver_secret(c, &key("routing_key_file"), base, f),
                None => {
                    c.error_at(
                        path,
                        "missing field `routing_key_file` (required for kind \"pagerduty\")",
                    );
                    None
                }
            };
            ReceiverSpec::PagerDuty(PagerDutySpec {
                url: url?,
                routing_key: routing_key?,
            })
        }
        "opsgenie" => {
            let url = parse_url(
                c,
                &key("url"),
                r.url.as_deref().unwrap_or(DEFAULT_OPSGENIE_URL),
            );
            let api_key = match r.api_key_file.take() {
                Some(f) => receiver_secret(c, &key("api_key_file"), base, f),
                None => {
                    c.error_at(
                        path,
                        "missing field `api_key_file` (required for kind \"opsgenie\")",
                    );
                    None
                }
            };
            ReceiverSpec::Opsgenie(OpsgenieSpec {
                url: url?,
                api_key: api_key?,
                tags: r.tags.take().unwrap_or_default(),
            })
        }
        "slack" | "teams" => {
            let url = match (r.url.take(), r.url_file.take()) {
                (Some(_), Some(_)) => {
                    c.error_at(&key("url_file"), "cannot be combined with url");
                    None
                }
                (Some(u), None) => parse_url(c, &key("url"), &u).map(|u| Secret::new(u.as_str())),
                (None, Some(f)) => match receiver_secret(c, &key("url_file"), base, f) {
                    Some(s) => {
                        let valid = url::Url::parse(s.expose().trim()).is_ok_and(|u| {
                            matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                        });
                        if !valid {
                            // Never quote the content: the URL is the secret.
                            c.error_at(
                                &key("url_file"),
                                format!(
                                    "{} does not hold an http:// or https:// URL",
                                    s.path().display()
                                ),
                            );
                        }
                        valid.then_some(s)
                    }
                    None => None,
                },
                (None, None) => {
                    c.error_at(
                        path,
                        format!("missing field `url` or `url_file` (required for kind {kind:?})"),
                    );
                    None
                }
            };
            let spec = ChatSpec { url: url? };
            if kind == "slack" {
                ReceiverSpec::Slack(spec)
            } else {
                ReceiverSpec::Teams(spec)
            }
        }
        "email" => build_email(c, path, &mut r, base, hostname)?,
        "grafana" => {
            let url = required_url(c, &r);
            let auth = auth(c, &mut r);
            ReceiverSpec::Grafana(GrafanaSpec {
                url: url?,
                auth,
                dashboard_uid: r.dashboard_uid.take(),
                panel_id: r.panel_id,
                tags: r.tags.take().unwrap_or_default(),
            })
        }
        _ => unreachable!("kinds are checked above"),
    };
    if misplaced {
        return None;
    }
    Some(ReceiverConfig {
        name,
        timeout,
        send_resolved: r.send_resolved.unwrap_or(true),
        tls: tls?,
        spec,
    })
}

fn build_email(
    c: &mut Checker<'_>,
    path: &KeyPath,
    r: &mut RawReceiver,
    base: &Path,
    hostname: &str,
) -> Option<ReceiverSpec> {
    let key = |k: &str| path.key(k);
    let mut ok = true;
    let (host, port) = match r.smtp_address.take() {
        None => {
            c.error_at(
                path,
                "missing field `smtp_address` (required for kind \"email\")",
            );
            ok = false;
            (String::new(), 0)
        }
        Some(addr) => match split_host_port(&addr) {
            Some(hp) => hp,
            None => {
                c.error_at(
                    &key("smtp_address"),
                    format!("invalid address {addr:?} (expected host:port, e.g. \"smtp.example.org:587\")"),
                );
                ok = false;
                (String::new(), 0)
            }
        },
    };
    let from = r.from.take().unwrap_or_default();
    if !looks_like_address(&from) {
        c.error_at(
            &if from.is_empty() {
                path.clone()
            } else {
                key("from")
            },
            if from.is_empty() {
                "missing field `from` (required for kind \"email\")".to_string()
            } else {
                format!("invalid address {from:?}")
            },
        );
        ok = false;
    }
    let to = r.to.take().unwrap_or_default();
    if to.is_empty() {
        c.error_at(
            &key("to"),
            "must list at least one address (required for kind \"email\")",
        );
        ok = false;
    }
    for (i, addr) in to.iter().enumerate() {
        if !looks_like_address(addr) {
            c.error_at(
                &path.key("to").index(i),
                format!("invalid address {addr:?}"),
            );
            ok = false;
        }
    }
    let tls = match r.tls.as_deref() {
        None | Some("starttls") => SmtpTls::StartTls,
        Some("tls") => SmtpTls::Implicit,
        Some("none") => SmtpTls::None,
        Some(other) => {
            c.error_at(
                &key("tls"),
                format!("invalid tls {other:?} (expected \"starttls\", \"tls\" or \"none\")"),
            );
            ok = false;
            SmtpTls::StartTls
        }
    };
    let credentials = match (r.username.take(), r.password_file.take()) {
        (Some(u), Some(f)) => match receiver_secret(c, &key("password_file"), base, f) {
            Some(s) => Some((u, s)),
            None => {
                ok = false;
                None
            }
        },
        (Some(_), None) => {
            c.error_at(&key("username"), "needs password_file");
            ok = false;
            None
        }
        (None, Some(_)) => {
            c.error_at(&key("password_file"), "needs username");
            ok = false;
            None
        }
        (None, None) => None,
    };
    let hello = r.hello.take().unwrap_or_else(|| hostname.to_string());
    if hello.is_empty() || hello.chars().any(|c| c.is_whitespace() || c.is_control()) {
        c.error_at(&key("hello"), "must be a host name");
        ok = false;
    }
    ok.then_some(ReceiverSpec::Email(EmailSpec {
        host,
        port,
        from,
        to,
        credentials,
        tls,
        hello,
    }))
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
