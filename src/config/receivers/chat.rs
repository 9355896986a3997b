//! `kind = "slack"` and `kind = "teams"`: an incoming webhook whose URL is
//! the secret, from `url` or `url_file`. The two kinds share their settings;
//! only what they post differs (`alert/slack.rs`, `alert/teams.rs`).

use super::{ReceiverFields, ReceiverSecret, SpecSecrets};
use crate::config::Secret;

/// `kind = "slack"` and `kind = "teams"`: the URL is the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSpec {
    /// The webhook URL (from `url` or `url_file`).
    pub url: Secret,
}

/// The keys a Slack or Teams receiver accepts.
pub(super) const KEYS: &[&str] = &["url", "url_file"];

/// Validates a Slack or Teams receiver's keys. The URL is never quoted in
/// an error.
pub(super) fn validate(f: &mut ReceiverFields<'_, '_>) -> Option<ChatSpec> {
    let url = match (f.raw.url.take(), f.raw.url_file.take()) {
        (Some(_), Some(_)) => {
            f.error("url_file", "cannot be combined with url");
            None
        }
        (Some(u), None) => f.url(&u).map(|u| Secret::new(u.as_str())),
        (None, Some(file)) => match f.secret("url_file", file) {
            Some(s) => {
                let valid = url::Url::parse(s.expose().trim()).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                });
                if !valid {
                    // Never quote the content: the URL is the secret.
                    f.error(
                        "url_file",
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
            let kind = f.kind().as_str();
            f.error_here(format!(
                "missing field `url` or `url_file` (required for kind {kind:?})"
            ));
            None
        }
    };
    Some(ChatSpec { url: url? })
}

impl SpecSecrets for ChatSpec {
    fn secrets(&self) -> Vec<ReceiverSecret<'_>> {
        vec![ReceiverSecret::Url(&self.url)]
    }
}
