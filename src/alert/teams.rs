//! `kind = "teams"`: a Microsoft Teams Workflows webhook ("When a Teams
//! webhook request is received") carrying an Adaptive Card: a coloured title,
//! the summary, and the incident facts as a FactSet. The retired Office 365
//! connectors (MessageCard) are not supported. The URL is the secret and is
//! never logged. A 2xx only means the flow accepted the card.

use serde_json::{json, Value};

use super::http::HttpClient;
use super::render;
use super::{AlertEvent, AlertStatus, BoxFuture, DeliveryError, Receiver};
use crate::config::alerting::{ChatSpec, ReceiverConfig};

/// A Teams receiver.
/// Not `Debug`: the URL is the secret.
pub struct TeamsReceiver {
    name: String,
    url: url::Url,
    client: HttpClient,
}

impl TeamsReceiver {
    /// Builds the receiver from its configuration.
    pub fn new(config: &ReceiverConfig, spec: &ChatSpec) -> Result<Self, String> {
        let url = super::http::secret_url(&spec.url)?;
        Ok(TeamsReceiver {
            name: config.name.clone(),
            url,
            client: HttpClient::new(config)?,
        })
    }
}

/// The Workflows body for one event: a message with one Adaptive Card.
pub fn payload(e: &AlertEvent) -> Value {
    if e.summary().is_some() {
        return json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.2",
                    "body": [
                        {"type": "TextBlock", "text": render::title(e), "weight": "Bolder", "size": "Medium", "wrap": true, "style": "heading", "color": "Accent"},
                        {"type": "TextBlock", "text": render::description(e), "wrap": true, "fontType": "Monospace"},
                    ],
                    "msteams": {"width": "full"},
                },
            }],
        });
    }
    let color = match (e.test, e.status) {
        (true, _) => "Accent",
        (false, AlertStatus::Firing) => "Attention",
        (false, AlertStatus::Resolved) => "Good",
    };
    let facts: Vec<Value> = render::facts(e)
        .into_iter()
        .map(|(title, value)| json!({"title": title, "value": value}))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.2",
                "body": [
                    {"type": "TextBlock", "text": render::title(e), "weight": "Bolder", "size": "Medium", "wrap": true, "style": "heading", "color": color},
                    {"type": "TextBlock", "text": render::summary(e), "wrap": true},
                    {"type": "FactSet", "facts": facts},
                ],
                "msteams": {"width": "full"},
            },
        }],
    })
}

impl Receiver for TeamsReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "teams"
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
    fn a_window_summary_is_a_card_of_its_text() {
        let p = payload(&crate::alert::tests::sample_summary_event());
        let body = &p["attachments"][0]["content"]["body"];
        assert!(body[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Change window"));
        assert!(body[1]["text"]
            .as_str()
            .unwrap()
            .contains("owa: 2 incidents"));
    }

    #[test]
    fn an_adaptive_card_in_a_message() {
        let mut e = sample_event();
        let p = payload(&e);
        assert_eq!(p["type"], "message");
        let a = &p["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert!(a["contentUrl"].is_null());
        let card = &a["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.2");
        assert_eq!(card["body"][0]["text"], "owa slow");
        assert_eq!(card["body"][0]["color"], "Attention");
        assert_eq!(card["body"][2]["type"], "FactSet");
        assert_eq!(
            card["body"][2]["facts"][0],
            json!({"title": "Target", "value": "owa (http)"})
        );
        e.status = AlertStatus::Resolved;
        assert_eq!(
            payload(&e)["attachments"][0]["content"]["body"][0]["color"],
            "Good"
        );
    }
}
