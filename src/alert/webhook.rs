//! `kind = "webhook"`: posts the Alertmanager webhook JSON (`version` "4"),
//! one alert per message, so every existing Alertmanager webhook consumer
//! (chat relays, ticket bridges) works unchanged. Extras ride in annotations;
//! the incident key is also sent as an `X-Alert-Id` header for consumers that
//! want to deduplicate. A change-window summary is a body of its own:
//! `event: "window_summary"`, its `title`, `text` and the structured
//! `summary`, and no alerts.

use serde_json::{json, Value};

use super::http::{authorization, HttpClient};
use super::render;
use super::{AlertEvent, AlertStatus, BoxFuture, DeliveryError, Receiver, ReceiverContext};
use crate::config::alerting::{ReceiverConfig, WebhookSpec};

/// The `endsAt` Alertmanager writes for alerts still firing (Go's zero time).
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A webhook receiver. Not `Debug`: it holds the `Authorization` value.
pub struct WebhookReceiver {
    name: String,
    url: url::Url,
    auth: Option<String>,
    external_url: String,
    client: HttpClient,
}

impl WebhookReceiver {
    /// Builds the receiver from its configuration.
    pub fn new(
        config: &ReceiverConfig,
        spec: &WebhookSpec,
        ctx: &ReceiverContext,
    ) -> Result<Self, String> {
        Ok(WebhookReceiver {
            name: config.name.clone(),
            url: spec.url.clone(),
            auth: authorization(&spec.auth),
            external_url: ctx.external_url.clone().unwrap_or_default(),
            client: HttpClient::new(config)?,
        })
    }
}

impl Receiver for WebhookReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let body = payload(&self.name, event, &self.external_url);
            let mut headers = vec![("x-alert-id", event.incident_key.clone())];
            if let Some(a) = &self.auth {
                headers.push(("authorization", a.clone()));
            }
            self.client.post_json(&self.url, &headers, &body).await?;
            Ok(())
        })
    }
}

/// The Alertmanager-style fingerprint of a label set: 16 hex digits of a
/// 64-bit FNV-1a hash over the sorted labels (stable, like Alertmanager's,
/// though not bit-identical to it).
pub fn fingerprint(labels: &std::collections::BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The webhook body for one event.
pub fn payload(receiver: &str, e: &AlertEvent, external_url: &str) -> Value {
    if let Some(s) = e.summary() {
        return json!({
            "version": "4",
            "event": "window_summary",
            "status": "resolved",
            "receiver": receiver,
            "externalURL": external_url,
            "title": render::title(e),
            "text": render::description(e),
            "summary": s,
            "alerts": [],
        });
    }
    let labels = render::labels(e);
    let annotations = render::annotations(e);
    let ends_at = match (e.status, e.recovered_at) {
        (AlertStatus::Resolved, Some(t)) => render::rfc3339(t),
        (AlertStatus::Resolved, None) => render::rfc3339(e.detected_at),
        (AlertStatus::Firing, _) => ZERO_TIME.to_string(),
    };
    let group_labels = json!({
        "alertname": labels["alertname"],
        "target": labels["target"],
    });
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\", target=\"{}\"}}", labels["alertname"], labels["target"]),
        "truncatedAlerts": 0,
        "status": e.status.as_str(),
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [{
            "status": e.status.as_str(),
            "labels": labels,
            "annotations": annotations,
            "startsAt": render::rfc3339(e.started_at),
            "endsAt": ends_at,
            "generatorURL": external_url,
            "fingerprint": fingerprint(&labels),
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::sample_event;

    #[test]
    fn a_window_summary_is_its_own_body() {
        let e = crate::alert::tests::sample_summary_event();
        let p = payload("hook", &e, "");
        assert_eq!(p["event"], "window_summary");
        assert_eq!(p["summary"]["window"], "batch-1");
        assert_eq!(
            p["summary"]["targets"][1]["incidents"][1]["outcome"],
            "beyond_tolerance"
        );
        assert!(p["text"]
            .as_str()
            .unwrap()
            .contains("Still open at the end"));
        assert_eq!(p["alerts"], json!([]));
    }

    #[test]
    fn firing_and_resolved_shapes() {
        let mut e = sample_event();
        let p = payload("hook", &e, "http://mailpulse.example:9717/");
        assert_eq!(p["version"], "4");
        assert_eq!(p["status"], "firing");
        assert_eq!(p["receiver"], "hook");
        assert_eq!(p["externalURL"], "http://mailpulse.example:9717/");
        assert_eq!(
            p["groupKey"],
            "{}:{alertname=\"MailpulseSlow\", target=\"owa\"}"
        );
        assert_eq!(
            p["groupLabels"],
            json!({"alertname": "MailpulseSlow", "target": "owa"})
        );
        let a = &p["alerts"][0];
        assert_eq!(a["status"], "firing");
        assert_eq!(a["startsAt"], "2026-12-05T02:14:05Z");
        assert_eq!(a["endsAt"], ZERO_TIME);
        assert_eq!(
            a["labels"],
            json!({"alertname": "MailpulseSlow", "instance": "cas01", "kind": "http", "severity": "critical", "target": "owa"})
        );
        assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
        e.status = AlertStatus::Resolved;
        e.recovered_at = Some(e.started_at + chrono::Duration::seconds(603));
        let r = payload("hook", &e, "");
        assert_eq!(r["status"], "resolved");
        assert_eq!(r["alerts"][0]["endsAt"], "2026-12-05T02:24:08Z");
        assert_eq!(r["alerts"][0]["annotations"]["duration"], "10m 3s");
        // Same labels, same fingerprint: consumers see one alert change state.
        assert_eq!(r["alerts"][0]["fingerprint"], a["fingerprint"]);
    }
}
