//! `[[target]]`: the keys common to every kind (name, kind, interval,
//! timeout, slowdown), which keys each kind accepts, and the dispatch to the
//! kind's own validation.

use std::collections::HashMap;

use super::http::build_http;
use super::mail::{build_imap, build_mailflow, build_pop3, build_smtp, build_tcp};
use super::*;
use crate::config::raw::RawTarget;

/// The keys of how a target connects, which every kind accepts.
const CONNECTION_KEYS: &[&str] = &[
    "ip_family",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_insecure_skip_verify",
    "tls_server_name",
];

/// The keys of a password login.
const LOGIN_KEYS: &[&str] = &["username", "password_file", "password_credential"];

/// Every kind, with the keys it accepts besides `name`, `kind`, `interval`,
/// `timeout` and `slowdown`: its own, and the groups it shares.
const KINDS: &[(&str, &[&[&str]])] = &[
    (
        "http",
        &[
            &[
                "url",
                "method",
                "headers",
                "body",
                "expect_status",
                "body_regex",
                "body_not_regex",
                "follow_redirects",
                "max_redirects",
                "max_body_bytes",
                "bearer_token_file",
                "auth",
                "allow_plaintext_auth",
            ],
            LOGIN_KEYS,
            CONNECTION_KEYS,
        ],
    ),
    ("tcp", &[&["address", "tls"], CONNECTION_KEYS]),
    (
        "smtp",
        &[
            &[
                "address",
                "tls",
                "helo_name",
                "auth",
                "mail_from",
                "rcpt_to",
            ],
            LOGIN_KEYS,
            CONNECTION_KEYS,
        ],
    ),
    (
        "imap",
        &[
            &["address", "tls", "auth", "mailbox"],
            LOGIN_KEYS,
            CONNECTION_KEYS,
        ],
    ),
    ("pop3", &[&["address", "tls"], LOGIN_KEYS, CONNECTION_KEYS]),
    (
        "mailflow",
        &[
            &[
                "smtp_address",
                "smtp_tls",
                "imap_address",
                "imap_tls",
                "helo_name",
                "auth",
                "mail_from",
                "rcpt_to",
                "mailbox",
            ],
            LOGIN_KEYS,
            CONNECTION_KEYS,
        ],
    ),
];

/// Validates every `[[target]]` (names unique), and returns the valid
/// ones with the index of the first target using each name (valid or not).
pub(super) fn build_targets(
    c: &mut Checker<'_>,
    root: &KeyPath,
    raw: Vec<RawTarget>,
    base: &Path,
    global_slowdown: Option<&slowdown::RawSlowdown>,
) -> (Vec<Target>, HashMap<String, usize>) {
    let mut targets = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, t) in raw.into_iter().enumerate() {
        let tp = root.key("target").index(i);
        if let Some(name) = &t.name {
            if let Some(first) = seen.get(name) {
                c.error_at(
                    &tp.key("name"),
                    format!("duplicate target name {name:?} (first used by target[{first}])"),
                );
            } else {
                seen.insert(name.clone(), i);
            }
        }
        if let Some(target) = build_target(c, &tp, t, base, global_slowdown) {
            targets.push(target);
        }
    }
    (targets, seen)
}

fn build_target(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    mut t: RawTarget,
    base: &Path,
    global_slowdown: Option<&slowdown::RawSlowdown>,
) -> Option<Target> {
    let name = required_name(c, tp, &t.name)?;
    let kind = match t.kind.as_deref() {
        Some(k) => k,
        None => {
            c.error_at(tp, format!("missing field `kind` in target {name:?}"));
            return None;
        }
    };
    let Some((_, allowed)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        unknown_kind(c, tp, kind, KINDS.iter().map(|(k, _)| *k));
        return None;
    };
    let misplaced = misplaced_keys(
        c,
        tp,
        t.keys_set(),
        |key| allowed.iter().any(|group| group.contains(&key)),
        &format!("kind {kind:?}"),
    );
    let interval = t
        .interval
        .map(HumanDuration::get)
        .unwrap_or(DEFAULT_TARGET_INTERVAL);
    if interval < Duration::from_millis(100) {
        c.error_at(&tp.key("interval"), "must be at least 100ms");
    }
    let timeout = match t.timeout {
        Some(d) => {
            if d.get().is_zero() {
                c.error_at(&tp.key("timeout"), "must be greater than zero");
            } else if d.get() > interval {
                c.error_at(
                    &tp.key("timeout"),
                    format!(
                        "{d} is longer than the interval ({})",
                        HumanDuration(interval)
                    ),
                );
            }
            d.get()
        }
        None => DEFAULT_TARGET_TIMEOUT.min(interval),
    };
    let slowdown = match slowdown::resolve(global_slowdown, t.slowdown.take().as_ref()) {
        Ok(s) => s,
        Err((key, message)) => {
            // Errors in the global table are reported once, by `build`.
            if let Some(rest) = key.strip_prefix("target.") {
                c.error_at(&key_path(tp, rest), message);
            }
            crate::detect::SlowdownSettings::default()
        }
    };
    let kind = kind.to_string();
    let kind = kind.as_str();
    let spec = match kind {
        "http" => ProbeSpec::Http(build_http(c, tp, t, base)?),
        "tcp" => ProbeSpec::Tcp(build_tcp(c, tp, t, base)?),
        "smtp" => ProbeSpec::Smtp(build_smtp(c, tp, t, base)?),
        "imap" => ProbeSpec::Imap(build_imap(c, tp, t, base)?),
        "pop3" => ProbeSpec::Pop3(build_pop3(c, tp, t, base)?),
        "mailflow" => ProbeSpec::Mailflow(build_mailflow(c, tp, t, base)?),
        _ => unreachable!("kinds are checked above"),
    };
    if misplaced {
        return None;
    }
    Some(Target {
        name,
        interval,
        timeout,
        slowdown,
        spec,
    })
}

/// `parent` extended by a dotted path such as `slowdown.factor`.
pub(super) fn key_path(parent: &KeyPath, dotted: &str) -> KeyPath {
    dotted.split('.').fold(parent.clone(), |p, k| p.key(k))
}
