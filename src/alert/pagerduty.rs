//! `kind = "pagerduty"`: the Events API v2. A firing incident is a `trigger`
//! and its recovery a `resolve`, both with the incident key as `dedup_key`,
//! so a trigger sent twice (an at-least-once retry) updates the same
//! PagerDuty alert instead of opening another. Timings go in
//! `custom_details`. PagerDuty re-notifies by itself, so no reminders.

use serde_json::{json, Value};

use super::http::HttpClient;
use super::render;
use super::{AlertEvent, AlertStatus, BoxFuture, DeliveryError, Receiver, ReceiverContext};
use crate::config::alerting::{PagerDutySpec, ReceiverConfig};
use crate::config::Secret;

/// PagerDuty's limit on `payload.summary`.
const MAX_SUMMARY: usize = 1024;

/// A PagerDuty receiver.
#[derive(Debug)]
pub struct PagerDutyReceiver {
    name: String,
    url: url::Url,
    routing_key: Secret,
    external_url: Option<String>,
    client: HttpClient,
}

impl PagerDutyReceiver {
    /// Builds the receiver from its configuration.
    pub fn new(
        config: &ReceiverConfig,
        spec: &PagerDutySpec,
        ctx: &ReceiverContext,
    ) -> Result<Self, String> {
        Ok(PagerDutyReceiver {
            name: config.name.clone(),
            url: spec.url.clone(),
            routing_key: spec.routing_key.clone(),
            external_url: ctx.external_url.clone(),
            client: HttpClient::new(config)?,
        })
    }
}

/// The dedup key of an event; tests get their own so they never touch a real incident.
pub fn dedup_key(e: &AlertEvent) -> String {
    if e.test {
        format!("mailpulse-test-{}", e.incident_key)
    } else {
        e.incident_key.clone()
    }
}

/// The Events API v2 body for one event.
pub fn payload(routing_key: &str, e: &AlertEvent, external_url: Option<&str>) -> Value {
    if e.status == AlertStatus::Resolved && e.summary().is_none() {
        return json!({
            "routing_key": routing_key,
            "dedup_key": dedup_key(e),
            "event_action": "resolve",
        });
    }
    let mut details = render::annotations(e);
    details.remove("summary");
    let severity = if e.test || e.summary().is_some() {
        "info"
    } else {
        e.severity.as_str()
    };
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(e),
        "payload": {
            "summary": truncate(&render::summary(e), MAX_SUMMARY),
            "source": e.instance,
            "severity": severity,
            "timestamp": render::rfc3339(e.started_at),
            "component": e.target,
            "group": e.probe_kind,
            "class": e.incident_kind,
            "custom_details": details,
        },
        "client": "mailpulse",
    });
    if let Some(u) = external_url {
        body["client_url"] = json!(u);
        body["links"] = json!([{"href": u, "text": "mailpulse"}]);
    }
    body
}

/// Cuts `s` to at most `max` characters, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl Receiver for PagerDutyReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "pagerduty"
    }

    fn stateful(&self) -> bool {
        true
    }

    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let key = self.routing_key.expose();
            let body = payload(key.trim(), event, self.external_url.as_deref());
            self.client.post_json(&self.url, &[], &body).await?;
            if event.summary().is_some() {
                // A window summary is an info alert that resolves itself.
                let resolve = json!({
                    "routing_key": key.trim(),
                    "dedup_key": dedup_key(event),
                    "event_action": "resolve",
                });
                self.client.post_json(&self.url, &[], &resolve).await?;
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
    fn trigger_and_resolve_share_the_dedup_key() {
        let mut e = sample_event();
        let t = payload("R0UTING", &e, Some("http://agent:9717/"));
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["dedup_key"], "3f2a9c0d11e4b7a2");
        assert_eq!(t["payload"]["severity"], "critical");
        assert_eq!(t["payload"]["source"], "cas01");
        assert_eq!(t["payload"]["component"], "owa");
        assert_eq!(t["payload"]["timestamp"], "2026-12-05T02:14:05Z");
        assert_eq!(
            t["payload"]["custom_details"]["time_to_detect_seconds"],
            "61"
        );
        assert!(t["payload"]["custom_details"].get("summary").is_none());
        assert_eq!(t["links"][0]["href"], "http://agent:9717/");
        e.status = AlertStatus::Resolved;
        let r = payload("R0UTING", &e, None);
        assert_eq!(
            r,
            json!({"routing_key": "R0UTING", "dedup_key": "3f2a9c0d11e4b7a2", "event_action": "resolve"})
        );
    }

    #[test]
    fn a_window_summary_triggers_an_info_alert() {
        let e = crate::alert::tests::sample_summary_event();
        let t = payload("R0UTING", &e, None);
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["payload"]["severity"], "info");
        assert_eq!(t["payload"]["class"], "window_summary");
        assert!(t["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("Change window"));
        assert!(t["payload"]["custom_details"]["description"]
            .as_str()
            .unwrap()
            .contains("owa: 2 incidents"));
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
