//! `kind = "opsgenie"`: Opsgenie's (or Jira Service Management's) alert
//! API, with the API key from `api_key_file`.

use super::{ReceiverFields, ReceiverSecret, SpecSecrets};
use crate::config::Secret;

/// Default Opsgenie API base URL (Jira Service Management: `https://api.atlassian.com/jsm/ops/integration`).
pub const DEFAULT_OPSGENIE_URL: &str = "https://api.opsgenie.com";

/// `kind = "opsgenie"`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpsgenieSpec {
    /// API base URL (`/v2/alerts` is appended).
    pub url: url::Url,
    /// API key, sent as `Authorization: GenieKey`.
    pub api_key: Secret,
    /// Extra tags.
    pub tags: Vec<String>,
}

/// The keys an Opsgenie receiver accepts.
pub(super) const KEYS: &[&str] = &["url", "api_key_file", "tags"];

/// Validates an Opsgenie receiver's keys.
pub(super) fn validate(f: &mut ReceiverFields<'_, '_>) -> Option<OpsgenieSpec> {
    let url = f.url_or(DEFAULT_OPSGENIE_URL);
    let file = f.raw.api_key_file.take();
    let api_key = f.required_secret("api_key_file", file);
    Some(OpsgenieSpec {
        url: url?,
        api_key: api_key?,
        tags: f.raw.tags.take().unwrap_or_default(),
    })
}

impl SpecSecrets for OpsgenieSpec {
    fn secrets(&self) -> Vec<ReceiverSecret<'_>> {
        vec![ReceiverSecret::Token(&self.api_key)]
    }
}
