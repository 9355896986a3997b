//! `kind = "pagerduty"`: PagerDuty's Events API v2, with the integration
//! (routing) key from `routing_key_file`.

use super::{ReceiverFields, ReceiverSecret, SpecSecrets};
use crate::config::Secret;

/// Default PagerDuty Events API v2 endpoint.
pub const DEFAULT_PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// `kind = "pagerduty"`.
#[derive(Debug, Clone, PartialEq)]
pub struct PagerDutySpec {
    /// The enqueue endpoint.
    pub url: url::Url,
    /// Integration (routing) key.
    pub routing_key: Secret,
}

/// The keys a PagerDuty receiver accepts.
pub(super) const KEYS: &[&str] = &["url", "routing_key_file"];

/// Validates a PagerDuty receiver's keys.
pub(super) fn validate(f: &mut ReceiverFields<'_, '_>) -> Option<PagerDutySpec> {
    let url = f.url_or(DEFAULT_PAGERDUTY_URL);
    let file = f.raw.routing_key_file.take();
    let routing_key = f.required_secret("routing_key_file", file);
    Some(PagerDutySpec {
        url: url?,
        routing_key: routing_key?,
    })
}

impl SpecSecrets for PagerDutySpec {
    fn secrets(&self) -> Vec<ReceiverSecret<'_>> {
        vec![ReceiverSecret::Token(&self.routing_key)]
    }
}
