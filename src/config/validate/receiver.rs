//! `[[receiver]]`: the keys every kind has (name, kind, timeout,
//! send_resolved, TLS), which keys the kind accepts (a key of another kind
//! names the kind), then the kind's own validation (`config/receivers/`),
//! which reads its keys through [`ReceiverFields`]. Secrets are read from
//! `*_file` keys; a receiver URL is never quoted in an error, since it may
//! be the secret.

use super::files::{receiver_secret, receiver_tls};
use super::*;
use crate::config::alerting::{
    ProxyUrl, ReceiverAuth, ReceiverConfig, ReceiverKind, DEFAULT_RECEIVER_TIMEOUT,
};
use crate::config::raw::RawReceiver;

/// The keys every receiver kind accepts besides `name`, `kind`, `timeout`
/// and `send_resolved`: its TLS settings.
const COMMON_KEYS: &[&str] = &["tls_ca_file", "tls_insecure_skip_verify"];
/// The keys every kind that sends over HTTP (all but `email`) accepts: its
/// proxy.
const HTTP_KEYS: &[&str] = &["proxy_url"];

/// One receiver table as its kind's validation sees it: the raw keys (a
/// kind takes those it reads) and helpers that read a URL, a secret or the
/// authentication keys and report problems at the right key.
pub(in crate::config) struct ReceiverFields<'c, 'a> {
    c: &'c mut Checker<'a>,
    path: &'c KeyPath,
    base: &'c Path,
    hostname: &'c str,
    kind: ReceiverKind,
    /// The table's keys, as written.
    pub(in crate::config) raw: RawReceiver,
}

impl ReceiverFields<'_, '_> {
    /// The kind being validated.
    pub(in crate::config) fn kind(&self) -> ReceiverKind {
        self.kind
    }

    /// The host name (the default EHLO name).
    pub(in crate::config) fn hostname(&self) -> &str {
        self.hostname
    }

    /// Reports a problem with `key` of this receiver.
    pub(in crate::config) fn error(&mut self, key: &str, message: impl Into<String>) {
        self.c.error_at(&self.path.key(key), message);
    }

    /// Reports a problem with item `index` of the list at `key`.
    pub(in crate::config) fn error_at_index(
        &mut self,
        key: &str,
        index: usize,
        message: impl Into<String>,
    ) {
        self.c.error_at(&self.path.key(key).index(index), message);
    }

    /// Reports a problem with the receiver as a whole (a missing key).
    pub(in crate::config) fn error_here(&mut self, message: impl Into<String>) {
        self.c.error_at(self.path, message);
    }

    /// The secret in `file`, named by `key` (it must not be empty).
    pub(in crate::config) fn secret(&mut self, key: &str, file: PathBuf) -> Option<Secret> {
        receiver_secret(self.c, &self.path.key(key), self.base, file)
    }

    /// The secret in `file`, which the kind requires at `key`.
    pub(in crate::config) fn required_secret(
        &mut self,
        key: &str,
        file: Option<PathBuf>,
    ) -> Option<Secret> {
        match file {
            Some(file) => self.secret(key, file),
            None => {
                let kind = self.kind.as_str();
                self.error_here(format!(
                    "missing field `{key}` (required for kind {kind:?})"
                ));
                None
            }
        }
    }

    /// `text` as the receiver's `url`: http or https with a host. An error
    /// never quotes it: a receiver URL may hold a secret (a Slack or Teams
    /// URL is one; a webhook's may carry a token or a password).
    pub(in crate::config) fn url(&mut self, text: &str) -> Option<url::Url> {
        match url::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
            Ok(u) => {
                self.error(
                    "url",
                    format!(
                        "invalid url with scheme {:?} (expected an http:// or https:// URL with a host; the URL is not quoted, it may hold a secret)",
                        u.scheme()
                    ),
                );
                None
            }
            Err(err) => {
                self.error(
                    "url",
                    format!("invalid url: {err} (the URL is not quoted, it may hold a secret)"),
                );
                None
            }
        }
    }

    /// The `url` the kind requires.
    pub(in crate::config) fn required_url(&mut self) -> Option<url::Url> {
        match self.raw.url.take() {
            Some(u) => self.url(&u),
            None => {
                let kind = self.kind.as_str();
                self.error_here(format!("missing field `url` (required for kind {kind:?})"));
                None
            }
        }
    }

    /// The `url`, or `default` when it is not set.
    pub(in crate::config) fn url_or(&mut self, default: &str) -> Option<url::Url> {
        let text = self.raw.url.take();
        self.url(text.as_deref().unwrap_or(default))
    }

    /// An HTTP receiver's authentication: a bearer token from `token_file`,
    /// basic authentication from `username` and `password_file`, or none.
    pub(in crate::config) fn auth(&mut self) -> ReceiverAuth {
        let raw = &mut self.raw;
        match (
            raw.token_file.take(),
            raw.username.take(),
            raw.password_file.take(),
        ) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                self.error(
                    "token_file",
                    "cannot be combined with username/password_file",
                );
                ReceiverAuth::None
            }
            (Some(f), None, None) => self
                .secret("token_file", f)
                .map(ReceiverAuth::Bearer)
                .unwrap_or(ReceiverAuth::None),
            (None, Some(username), Some(f)) => self
                .secret("password_file", f)
                .map(|password| ReceiverAuth::Basic { username, password })
                .unwrap_or(ReceiverAuth::None),
            (None, Some(_), None) => {
                self.error("username", "needs password_file");
                ReceiverAuth::None
            }
            (None, None, Some(_)) => {
                self.error("password_file", "needs username");
                ReceiverAuth::None
            }
            (None, None, None) => ReceiverAuth::None,
        }
    }
}

/// Validates one `[[receiver]]` at `path`; `None` when it has errors (all
/// reported). Relative `*_file` paths start at `base`; `hostname` is the
/// default EHLO name.
pub(super) fn build_receiver(
    c: &mut Checker<'_>,
    path: &KeyPath,
    r: RawReceiver,
    base: &Path,
    hostname: &str,
) -> Option<ReceiverConfig> {
    let name = required_name(c, path, &r.name)?;
    let Some(kind_name) = r.kind.clone() else {
        c.error_at(path, format!("missing field `kind` in receiver {name:?}"));
        return None;
    };
    let Some(kind) = ReceiverKind::from_name(&kind_name) else {
        unknown_kind(
            c,
            path,
            &kind_name,
            ReceiverKind::ALL.iter().map(|k| k.as_str()),
        );
        return None;
    };
    let misplaced = misplaced_keys(
        c,
        path,
        r.keys_set(),
        |key| {
            COMMON_KEYS.contains(&key)
                || (kind != ReceiverKind::Email && HTTP_KEYS.contains(&key))
                || kind.keys().contains(&key)
        },
        &format!("receiver kind {kind_name:?}"),
    );
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
    let mut proxy_ok = true;
    let proxy = match r
        .proxy_url
        .as_deref()
        .filter(|_| kind != ReceiverKind::Email)
    {
        Some(text) => match ProxyUrl::parse(text) {
            Ok(p) => Some(p),
            Err(message) => {
                c.error_at(&path.key("proxy_url"), message);
                proxy_ok = false;
                None
            }
        },
        None => None,
    };
    let mut fields = ReceiverFields {
        c,
        path,
        base,
        hostname,
        kind,
        raw: r,
    };
    let spec = kind.validate(&mut fields)?;
    if misplaced || !proxy_ok {
        return None;
    }
    Some(ReceiverConfig {
        name,
        timeout,
        send_resolved: fields.raw.send_resolved.unwrap_or(true),
        tls: tls?,
        proxy,
        spec,
    })
}
