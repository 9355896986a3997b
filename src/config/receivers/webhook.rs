//! `kind = "webhook"`: the Alertmanager webhook JSON, posted to `url` with
//! an optional bearer token or basic authentication.

use super::{ReceiverAuth, ReceiverFields, ReceiverSecret, SpecSecrets};

/// `kind = "webhook"`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSpec {
    /// Where the JSON is posted.
    pub url: url::Url,
    /// Authentication.
    pub auth: ReceiverAuth,
}

/// The keys a webhook accepts.
pub(super) const KEYS: &[&str] = &["url", "token_file", "username", "password_file"];

/// Validates a webhook's keys.
pub(super) fn validate(f: &mut ReceiverFields<'_, '_>) -> Option<WebhookSpec> {
    let url = f.required_url();
    let auth = f.auth();
    Some(WebhookSpec { url: url?, auth })
}

impl SpecSecrets for WebhookSpec {
    fn secrets(&self) -> Vec<ReceiverSecret<'_>> {
        self.auth.secrets()
    }
}
