//! `kind = "opsgenie"`: the Opsgenie alert API, also spoken by its successor
//! Jira Service Management (set `url` to its base). A firing incident creates
//! an alert with the incident key as `alias` (Opsgenie keeps one open alert
//! per alias, so a repeated create is harmless); recovery closes it by alias.
//! Opsgenie re-notifies by itself, so no reminders.

use serde_json::{json, Value};

use super::http::HttpClient;
use super::pagerduty::truncate;
use super::render;
use super::{AlertEvent, AlertStatus, BoxFuture, DeliveryError, Receiver, ReceiverContext};
use crate::config::alerting::{OpsgenieSpec, ReceiverConfig};
use crate::config::Secret;

/// Opsgenie's limit on `message`.
const MAX_MESSAGE: usize = 130;
/// Opsgenie's limit on `description`.
const MAX_DESCRIPTION: usize = 15000;

/// An Opsgenie receiver.
#[derive(Debug)]
pub struct OpsgenieReceiver {
    name: String,
    base: url::Url,
    api_key: Secret,
    tags: Vec<String>,
    client: HttpClient,
}

impl OpsgenieReceiver {
    /// Builds the receiver from its configuration.
    pub fn new(
        config: &ReceiverConfig,
        spec: &OpsgenieSpec,
        _ctx: &ReceiverContext,
    ) -> Result<Self, String> {
        if spec.url.cannot_be_a_base() {
            return Err("url cannot be a base".into());
        }
        Ok(OpsgenieReceiver {
            name: config.name.clone(),
            base: spec.url.clone(),
            api_key: spec.api_key.clone(),
            tags: spec.tags.clone(),
            client: HttpClient::new(config)?,
        })
    }

    fn url(&self, segments: &[&str], query: Option<&str>) -> url::Url {
        let mut u = self.base.clone();
        if let Ok(mut path) = u.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        u.set_query(query);
        u
    }
}

/// The alias of an event; tests get their own.
pub fn alias(e: &AlertEvent) -> String {
    if e.test {
        format!("mailpulse-test-{}", e.incident_key)
    } else {
        e.incident_key.clone()
    }
}

/// Opsgenie priority of a severity.
pub fn priority(severity: &str) -> &'static str {
    match severity {
        "critical" => "P1",
        "error" => "P2",
        "warning" => "P3",
        _ => "P5",
    }
}

/// The create body for a firing event.
pub fn create_payload(e: &AlertEvent, extra_tags: &[String]) -> Value {
    let mut details = render::annotations(e);
    details.remove("summary");
    details.remove("description");
    let mut tags = match e.summary() {
        Some(s) => vec![
            "mailpulse".to_string(),
            "window".to_string(),
            format!("window:{}", s.window),
        ],
        None => vec![
            "mailpulse".to_string(),
            e.target.clone(),
            e.probe_kind.clone(),
            e.incident_kind.clone(),
        ],
    };
    if e.test {
        tags.push("test".into());
    }
    tags.extend(extra_tags.iter().cloned());
    json!({
        "message": truncate(&render::summary(e), MAX_MESSAGE),
        "alias": alias(e),
        "description": truncate(&render::description(e), MAX_DESCRIPTION),
        "tags": tags,
        "details": details,
        "entity": e.target,
        "source": e.instance,
        "priority": if e.test || e.summary().is_some() { "P5" } else { priority(&e.severity) },
    })
}

/// The close body for a resolved event.
pub fn close_payload(e: &AlertEvent) -> Value {
    json!({
        "source": e.instance,
        "user": "mailpulse",
        "note": render::summary(e),
    })
}

impl Receiver for OpsgenieReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "opsgenie"
    }

    fn stateful(&self) -> bool {
        true
    }

    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let auth = [(
                "authorization",
                format!("GenieKey {}", self.api_key.expose().trim()),
            )];
            match event.status {
                // A window summary is an informational alert, left open for
                // someone to read and close.
                _ if event.summary().is_some() => {
                    let url = self.url(&["v2", "alerts"], None);
                    self.client
                        .post_json(&url, &auth, &create_payload(event, &self.tags))
                        .await?;
                }
                AlertStatus::Firing => {
                    let url = self.url(&["v2", "alerts"], None);
                    self.client
                        .post_json(&url, &auth, &create_payload(event, &self.tags))
                        .await?;
                }
                AlertStatus::Resolved => {
                    let url = self.url(
                        &["v2", "alerts", &alias(event), "close"],
                        Some("identifierType=alias"),
                    );
                    self.client
                        .post_json(&url, &auth, &close_payload(event))
                        .await?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::sample_event;

    #[test]
    fn a_window_summary_is_an_informational_alert() {
        let e = crate::alert::tests::sample_summary_event();
        let p = create_payload(&e, &[]);
        assert_eq!(p["priority"], "P5");
        assert_eq!(p["tags"], json!(["mailpulse", "window", "window:batch-1"]));
        assert!(p["description"]
            .as_str()
            .unwrap()
            .contains("Still open at the end"));
    }

    #[test]
    fn create_and_close_bodies() {
        let mut e = sample_event();
        let c = create_payload(&e, &["soak".into()]);
        assert_eq!(c["alias"], "3f2a9c0d11e4b7a2");
        assert_eq!(c["priority"], "P1");
        assert_eq!(c["entity"], "owa");
        assert_eq!(c["source"], "cas01");
        assert_eq!(
            c["tags"],
            json!(["mailpulse", "owa", "http", "slow", "soak"])
        );
        assert!(c["message"].as_str().unwrap().chars().count() <= 130);
        assert_eq!(c["details"]["worst_phase"], "first_byte");
        e.status = AlertStatus::Resolved;
        e.recovered_at = Some(e.started_at + chrono::Duration::seconds(603));
        let close = close_payload(&e);
        assert_eq!(close["user"], "mailpulse");
        assert!(close["note"]
            .as_str()
            .unwrap()
            .starts_with("owa recovered at 02:24:08Z"));
    }
}
