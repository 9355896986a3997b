//! `kind = "alertmanager"`: pushes alerts to a real Alertmanager's API v2
//! (`POST /api/v2/alerts`, an array of `{labels, annotations, startsAt,
//! endsAt, generatorURL}`), so fleets get its grouping, inhibition, silences
//! and HA. For an HA pair configure one receiver per Alertmanager.
//!
//! Alertmanager forgets an alert whose `endsAt` passes, so, like Prometheus,
//! this receiver keeps re-posting open alerts: a firing alert is sent with
//! `endsAt = now + 4 × resend_interval` and re-sent every `resend_interval`;
//! a resolved one is re-sent with its real end for [`RESOLVED_RESEND`] (an
//! Alertmanager restarted meanwhile still learns it ended). What is open lives
//! in the store (per-receiver state), so re-posting survives our restarts.
//! Labels are the identity, so re-posts never duplicate a notification.
//!
//! Each incident is its own alert: its labels carry the incident's key
//! (`incident`, see [`INCIDENT_LABEL`]). Without it, a target's second
//! incident within [`RESOLVED_RESEND`] of the first had the first one's labels,
//! so the re-posted resolve of the first and the re-posted firing of the second
//! overwrote each other in Alertmanager and the pager flapped between
//! "resolved" and "firing". An escalation from slow to down changes the
//! `alertname`, so its update also ends the slow alert at once ([`ended`]);
//! left alone, that one would resolve by itself minutes later while the
//! incident was down.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::http::{authorization, HttpClient};
use super::{blocking, render};
use super::{AlertEvent, AlertStatus, BoxFuture, DeliveryError, Receiver, ReceiverContext};
use crate::clock::Clock;
use crate::config::alerting::{AlertmanagerSpec, ReceiverConfig};
use crate::store::{outbox, Store};

/// How long a resolved alert keeps being re-posted.
pub const RESOLVED_RESEND: Duration = Duration::from_secs(5 * 60);
/// The label naming the incident (its [`incident_key`](super::incident_key)),
/// so two incidents of one target are two alerts to Alertmanager.
pub const INCIDENT_LABEL: &str = "incident";
/// `endsAt` of a firing alert is this many resend intervals ahead, so two
/// lost re-posts do not resolve it (Prometheus' rule).
const ENDS_AT_INTERVALS: u32 = 4;

/// What the receiver remembers per incident, in the store.
#[derive(Debug, Serialize, Deserialize)]
struct Active {
    event: AlertEvent,
    last_sent: DateTime<Utc>,
    /// Set once resolved: re-post until then, then forget.
    resend_until: Option<DateTime<Utc>>,
}

/// An Alertmanager receiver.
pub struct AlertmanagerReceiver {
    name: String,
    endpoint: url::Url,
    auth: Option<String>,
    resend: Duration,
    generator_url: String,
    client: HttpClient,
    store: Store,
    clock: std::sync::Arc<dyn Clock>,
}

impl AlertmanagerReceiver {
    /// Builds the receiver from its configuration.
    pub fn new(
        config: &ReceiverConfig,
        spec: &AlertmanagerSpec,
        ctx: &ReceiverContext,
    ) -> Result<Self, String> {
        let mut endpoint = spec.url.clone();
        endpoint
            .path_segments_mut()
            .map_err(|_| "url cannot be a base".to_string())?
            .pop_if_empty()
            .extend(["api", "v2", "alerts"]);
        Ok(AlertmanagerReceiver {
            name: config.name.clone(),
            endpoint,
            auth: authorization(&spec.auth),
            resend: spec.resend_interval,
            generator_url: ctx.external_url.clone().unwrap_or_default(),
            client: HttpClient::new(config)?,
            store: ctx.store.clone(),
            clock: ctx.clock.clone(),
        })
    }

    async fn post(&self, e: &AlertEvent, now: DateTime<Utc>) -> Result<(), DeliveryError> {
        self.post_all(vec![alert(e, now, self.resend, &self.generator_url)])
            .await
    }

    /// The alert this receiver last posted for `e`'s incident, when `e` is
    /// a firing update under another `alertname` (slow escalated to down):
    /// that one must end now, or Alertmanager would keep it until its
    /// `endsAt` and then report it resolved while the incident is down.
    async fn superseded(&self, e: &AlertEvent) -> Option<AlertEvent> {
        if e.status != AlertStatus::Firing || e.test || e.summary().is_some() {
            return None;
        }
        let (name, key) = (self.name.clone(), e.incident_key.clone());
        let bytes = blocking(&self.store, move |s| outbox::get_state(s, &name, &key))
            .await
            .ok()
            .flatten()?;
        let before = serde_json::from_slice::<Active>(&bytes).ok()?.event;
        (render::alertname(&before) != render::alertname(e)).then_some(before)
    }

    async fn post_all(&self, alerts: Vec<Value>) -> Result<(), DeliveryError> {
        let body = Value::Array(alerts);
        let headers: Vec<(&str, String)> = self
            .auth
            .iter()
            .map(|a| ("authorization", a.clone()))
            .collect();
        self.client
            .post_json(&self.endpoint, &headers, &body)
            .await?;
        Ok(())
    }

    async fn remember(&self, active: Active) {
        let bytes = serde_json::to_vec(&active).unwrap_or_default();
        let (name, key) = (self.name.clone(), active.event.incident_key.clone());
        if let Err(e) = blocking(&self.store, move |s| {
            outbox::put_state(s, &name, &key, &bytes)
        })
        .await
        {
            tracing::error!(receiver = %self.name, error = %e, "cannot record an active Alertmanager alert");
        }
    }
}

/// How long after it is sent a window summary's alert ends.
pub const SUMMARY_ENDS_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// One API v2 alert. Firing: `endsAt` a few resend intervals ahead; resolved:
/// the recovery time. The labels are the common ones plus the incident's key.
pub fn alert(e: &AlertEvent, now: DateTime<Utc>, resend: Duration, generator_url: &str) -> Value {
    let ends_at = match e.status {
        // A window summary: an info alert that ends by itself shortly.
        _ if e.summary().is_some() => now + SUMMARY_ENDS_AFTER,
        AlertStatus::Firing => {
            now + chrono::Duration::from_std(resend * ENDS_AT_INTERVALS)
                .unwrap_or(chrono::Duration::minutes(4))
        }
        AlertStatus::Resolved => e.recovered_at.unwrap_or(now).min(now),
    };
    let mut labels = render::labels(e);
    labels.insert(INCIDENT_LABEL.to_string(), e.incident_key.clone());
    let mut v = json!({
        "labels": labels,
        "annotations": render::annotations(e),
        "startsAt": render::rfc3339(e.started_at),
        "endsAt": render::rfc3339(ends_at),
    });
    if !generator_url.is_empty() {
        v["generatorURL"] = json!(generator_url);
    }
    v
}

/// An alert posted before, as it was, but ending at `now`: how an update
/// under another `alertname` (an escalation from slow to down) retires the
/// alert it replaces, as Prometheus does when a rule's labels change.
pub fn ended(e: &AlertEvent, now: DateTime<Utc>, generator_url: &str) -> Value {
    let mut v = alert(e, now, Duration::ZERO, generator_url);
    v["endsAt"] = json!(render::rfc3339(now));
    v
}

impl Receiver for AlertmanagerReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    fn stateful(&self) -> bool {
        true
    }

    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let now = self.clock.now();
            let mut alerts = Vec::with_capacity(2);
            if let Some(before) = self.superseded(event).await {
                alerts.push(ended(&before, now, &self.generator_url));
            }
            alerts.push(alert(event, now, self.resend, &self.generator_url));
            self.post_all(alerts).await?;
            if !event.test && event.summary().is_none() {
                let resend_until = (event.status == AlertStatus::Resolved)
                    .then(|| now + chrono::Duration::from_std(RESOLVED_RESEND).unwrap_or_default());
                self.remember(Active {
                    event: event.clone(),
                    last_sent: now,
                    resend_until,
                })
                .await;
            }
            Ok(())
        })
    }

    fn refresh(&self, now: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let name = self.name.clone();
            let states = match blocking(&self.store, move |s| outbox::states(s, &name)).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(receiver = %self.name, error = %e, "cannot read active Alertmanager alerts");
                    return;
                }
            };
            let resend = chrono::Duration::from_std(self.resend).unwrap_or_default();
            for (key, bytes) in states {
                let Ok(active) = serde_json::from_slice::<Active>(&bytes) else {
                    continue;
                };
                let (name, k) = (self.name.clone(), key.clone());
                if active.resend_until.is_some_and(|t| t <= now) {
                    let _ =
                        blocking(&self.store, move |s| outbox::remove_state(s, &name, &k)).await;
                    continue;
                }
                if active.last_sent + resend > now {
                    continue;
                }
                // A newer message for this incident waits in the outbox (e.g. its
                // resolve): re-posting the old state now could undo it.
                let pending = blocking(&self.store, move |s| outbox::pending_for(s, &name, &k))
                    .await
                    .unwrap_or(true);
                if pending {
                    continue;
                }
                match self.post(&active.event, now).await {
                    Ok(()) => {
                        self.remember(Active {
                            last_sent: now,
                            ..active
                        })
                        .await
                    }
                    Err(e) => {
                        tracing::debug!(receiver = %self.name, incident = %key, error = %e, "alert re-post failed; next interval retries")
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::sample_event;

    #[test]
    fn a_window_summary_is_an_info_alert_that_ends_soon() {
        let e = crate::alert::tests::sample_summary_event();
        let now: DateTime<Utc> = "2026-12-06T01:00:10Z".parse().unwrap();
        let a = alert(&e, now, Duration::from_secs(60), "");
        assert_eq!(a["labels"]["alertname"], "MailpulseWindowSummary");
        assert_eq!(a["labels"]["severity"], "info");
        assert_eq!(a["labels"]["window"], "batch-1");
        assert_eq!(a["endsAt"], "2026-12-06T01:05:10Z");
        assert!(a["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("owa: 2 incidents"));
    }

    #[test]
    fn firing_ends_four_intervals_ahead_and_resolved_at_recovery() {
        let mut e = sample_event();
        let now = e.detected_at;
        let a = alert(&e, now, Duration::from_secs(60), "http://x/");
        assert_eq!(a["startsAt"], "2026-12-05T02:14:05Z");
        assert_eq!(a["endsAt"], "2026-12-05T02:19:06Z");
        assert_eq!(a["generatorURL"], "http://x/");
        assert_eq!(a["labels"]["alertname"], "MailpulseSlow");
        assert_eq!(a["labels"][INCIDENT_LABEL], e.incident_key.as_str());
        e.status = AlertStatus::Resolved;
        e.recovered_at = Some(e.started_at + chrono::Duration::seconds(603));
        let r = alert(
            &e,
            now + chrono::Duration::hours(1),
            Duration::from_secs(60),
            "",
        );
        assert_eq!(r["endsAt"], "2026-12-05T02:24:08Z");
        assert!(r.get("generatorURL").is_none());
    }
}
