//! `kind = "alertmanager"`: alerts posted to one Alertmanager's API v2 at
//! `url`, re-posted every `resend_interval` while they fire.

use std::time::Duration;

use super::{ReceiverAuth, ReceiverFields, ReceiverSecret, SpecSecrets};
use crate::config::HumanDuration;

/// Default interval at which firing alerts are re-posted to Alertmanager.
pub const DEFAULT_ALERTMANAGER_RESEND: Duration = Duration::from_secs(60);

/// `kind = "alertmanager"`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerSpec {
    /// Base URL of one Alertmanager (`/api/v2/alerts` is appended).
    pub url: url::Url,
    /// Authentication.
    pub auth: ReceiverAuth,
    /// Re-post interval of open alerts.
    pub resend_interval: Duration,
}

/// The keys an Alertmanager receiver accepts.
pub(super) const KEYS: &[&str] = &[
    "url",
    "token_file",
    "username",
    "password_file",
    "resend_interval",
];

/// Validates an Alertmanager receiver's keys.
pub(super) fn validate(f: &mut ReceiverFields<'_, '_>) -> Option<AlertmanagerSpec> {
    let url = f.required_url();
    let auth = f.auth();
    let resend_interval = f
        .raw
        .resend_interval
        .map(HumanDuration::get)
        .unwrap_or(DEFAULT_ALERTMANAGER_RESEND);
    if resend_interval < Duration::from_secs(1) {
        f.error("resend_interval", "must be at least 1s");
    }
    Some(AlertmanagerSpec {
        url: url?,
        auth,
        resend_interval,
    })
}

impl SpecSecrets for AlertmanagerSpec {
    fn secrets(&self) -> Vec<ReceiverSecret<'_>> {
        self.auth.secrets()
    }
}
