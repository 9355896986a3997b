//! `kind = "grafana"`: incidents as region annotations through Grafana's
//! annotations API, on a dashboard (and panel) or the organisation.

use super::{ReceiverAuth, ReceiverFields, ReceiverSecret, SpecSecrets};

/// `kind = "grafana"`.
#[derive(Debug, Clone, PartialEq)]
pub struct GrafanaSpec {
    /// Grafana base URL (`/api/annotations` is appended).
    pub url: url::Url,
    /// Authentication (a service-account token as bearer).
    pub auth: ReceiverAuth,
    /// Dashboard of the annotations, if any.
    pub dashboard_uid: Option<String>,
    /// Panel of the annotations, if any.
    pub panel_id: Option<i64>,
    /// Extra tags.
    pub tags: Vec<String>,
}

/// The keys a Grafana receiver accepts.
pub(super) const KEYS: &[&str] = &[
    "url",
    "token_file",
    "username",
    "password_file",
    "dashboard_uid",
    "panel_id",
    "tags",
];

/// Validates a Grafana receiver's keys.
pub(super) fn validate(f: &mut ReceiverFields<'_, '_>) -> Option<GrafanaSpec> {
    let url = f.required_url();
    let auth = f.auth();
    Some(GrafanaSpec {
        url: url?,
        auth,
        dashboard_uid: f.raw.dashboard_uid.take(),
        panel_id: f.raw.panel_id,
        tags: f.raw.tags.take().unwrap_or_default(),
    })
}

impl SpecSecrets for GrafanaSpec {
    fn secrets(&self) -> Vec<ReceiverSecret<'_>> {
        self.auth.secrets()
    }
}
