//! `kind = "slack"`: a Slack incoming webhook with Block Kit blocks (a
//! header, the summary, the incident facts as fields, a context line) and a
//! plain `text` fallback for notifications. The webhook URL is the secret, so
//! it never appears in messages or logs (only its origin does). Slack cannot
//! deduplicate, so a retry after a lost answer may post twice; recoveries are
//! new messages.

use serde_json::{json, Value};

use super::http::HttpClient;
use super::pagerduty::truncate;
use super::render;
use super::{AlertEvent, AlertStatus, BoxFuture, DeliveryError, Receiver};
use crate::config::alerting::{ChatSpec, ReceiverConfig};

/// Slack's limit on a header block's text.
const MAX_HEADER: usize = 150;
/// Slack's limit on a section's text.
const MAX_SECTION: usize = 3000;
/// Slack's limit on the fields of one section.
const MAX_FIELDS: usize = 10;

/// A Slack receiver.
/// Not `Debug`: the URL is the secret.
pub struct SlackReceiver {
    name: String,
    url: url::Url,
    client: HttpClient,
}

impl SlackReceiver {
    /// Builds the receiver from its configuration.
    pub fn new(config: &ReceiverConfig, spec: &ChatSpec) -> Result<Self, String> {
        let url = super::http::secret_url(&spec.url)?;
        Ok(SlackReceiver {
            name: config.name.clone(),
            url,
            client: HttpClient::new(config)?,
        })
    }
}

/// Escapes the three characters Slack's mrkdwn treats as control.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn headline(e: &AlertEvent) -> String {
    let mark = match (e.test, e.status) {
        (true, _) => "🧪",
        (false, AlertStatus::Firing) => "🔴",
        (false, AlertStatus::Resolved) => "✅",
    };
    format!("{mark} {}", render::title(e))
}

/// The webhook body for one event.
pub fn payload(e: &AlertEvent) -> Value {
    if e.summary().is_some() {
        return json!({
            "text": render::title(e),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": truncate(&format!("🗒 {}", render::title(e)), MAX_HEADER), "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("```{}```", escape(&render::description(e))), MAX_SECTION)}},
            ],
        });
    }
    let fields: Vec<Value> = render::facts(e)
        .into_iter()
        .filter(|(name, _)| !matches!(*name, "Incident" | "Instance"))
        .take(MAX_FIELDS)
        .map(|(name, value)| {
            json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", escape(&value))})
        })
        .collect();
    json!({
        "text": render::summary(e),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&headline(e), MAX_HEADER), "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&escape(&render::summary(e)), MAX_SECTION)}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": escape(&format!("mailpulse on {} · {} · incident {}", e.instance, e.severity, e.incident_key))}
            ]},
        ],
    })
}

impl Receiver for SlackReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "slack"
    }

    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            self.client
                .post_json(&self.url, &[], &payload(event))
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::sample_event;

    #[test]
    fn a_window_summary_is_its_text() {
        let p = payload(&crate::alert::tests::sample_summary_event());
        assert!(p["text"]
            .as_str()
            .unwrap()
            .starts_with("Change window \"batch-1\" ended"));
        let section = p["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(section.contains("&lt;batch 1&gt;"), "{section}");
        assert!(section.contains("beyond tolerance"));
    }

    #[test]
    fn blocks_carry_the_summary_and_facts() {
        let mut e = sample_event();
        e.last_error = Some("<html> & stuff".into());
        let p = payload(&e);
        assert!(p["text"]
            .as_str()
            .unwrap()
            .starts_with("owa slow since 02:14:05Z"));
        let blocks = p["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "🔴 owa slow");
        assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
        let fields = blocks[2]["fields"].as_array().unwrap();
        assert!(fields.len() <= 10);
        assert_eq!(fields[0]["text"], "*Target*\nowa (http)");
        assert!(p.to_string().contains("&lt;html&gt; &amp; stuff"));
        assert_eq!(blocks[3]["type"], "context");
    }
}
