//! `kind = "grafana"`: incidents as region annotations through Grafana's
//! annotations API, so soak-test dashboards show every incident from onset to
//! recovery. The onset creates an annotation (`POST /api/annotations`,
//! tagged with target and kind); its id is kept in the store per incident;
//! the recovery turns it into a region (`PATCH /api/annotations/{id}` with
//! `timeEnd`). A recovery whose onset was never annotated posts the whole
//! region at once, and so does one whose annotation was deleted meanwhile
//! (the PATCH answers 404). A firing event for an incident already annotated
//! is not posted again. Soak-test phases (`alert/soak.rs`) take the same
//! path: a point at the phase's start, a region once it ended; a phase's id
//! is kept after its region closed (one small row per phase), so an end sent
//! again after a crash patches the same region instead of adding one.

use hyper::Method;
use serde_json::{json, Value};

use super::http::{authorization, HttpClient};
use super::{blocking, render};
use super::{AlertEvent, AlertStatus, BoxFuture, DeliveryError, Receiver, ReceiverContext};
use crate::config::alerting::{GrafanaSpec, ReceiverConfig};
use crate::store::{outbox, Store};

/// A Grafana receiver.
pub struct GrafanaReceiver {
    name: String,
    base: url::Url,
    auth: Option<String>,
    dashboard_uid: Option<String>,
    panel_id: Option<i64>,
    tags: Vec<String>,
    client: HttpClient,
    store: Store,
}

impl GrafanaReceiver {
    /// Builds the receiver from its configuration.
    pub fn new(
        config: &ReceiverConfig,
        spec: &GrafanaSpec,
        ctx: &ReceiverContext,
    ) -> Result<Self, String> {
        if spec.url.cannot_be_a_base() {
            return Err("url cannot be a base".into());
        }
        Ok(GrafanaReceiver {
            name: config.name.clone(),
            base: spec.url.clone(),
            auth: authorization(&spec.auth),
            dashboard_uid: spec.dashboard_uid.clone(),
            panel_id: spec.panel_id,
            tags: spec.tags.clone(),
            client: HttpClient::new(config)?,
            store: ctx.store.clone(),
        })
    }

    fn url(&self, id: Option<u64>) -> url::Url {
        let mut u = self.base.clone();
        if let Ok(mut path) = u.path_segments_mut() {
            path.pop_if_empty().extend(["api", "annotations"]);
            if let Some(id) = id {
                path.push(&id.to_string());
            }
        }
        u
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        self.auth
            .iter()
            .map(|a| ("authorization", a.clone()))
            .collect()
    }

    async fn stored_id(&self, key: &str) -> Result<Option<u64>, DeliveryError> {
        let (name, key) = (self.name.clone(), key.to_string());
        let state = blocking(&self.store, move |s| outbox::get_state(s, &name, &key))
            .await
            .map_err(|e| DeliveryError::retriable(e.to_string()))?;
        Ok(state.and_then(|b| String::from_utf8(b).ok()?.parse().ok()))
    }
}

/// The tags of an incident's annotation (with `window:NAME` for one a
/// change window covered); a soak phase's are `mailpulse`,
/// `soak`, `run:NAME` and `phase:NAME`. The receiver's own tags follow.
pub fn tags(e: &AlertEvent, extra: &[String]) -> Vec<String> {
    if let Some(s) = e.summary() {
        let mut t = vec![
            "mailpulse".to_string(),
            "window".to_string(),
            format!("window:{}", s.window),
        ];
        t.extend(extra.iter().cloned());
        return t;
    }
    if e.soak_phase {
        let mut t = vec!["mailpulse".to_string(), "soak".to_string()];
        t.extend(e.run.iter().map(|r| format!("run:{r}")));
        t.extend(e.phase.iter().map(|p| format!("phase:{p}")));
        t.extend(extra.iter().cloned());
        return t;
    }
    let mut t = vec![
        "mailpulse".to_string(),
        format!("target:{}", e.target),
        format!("kind:{}", e.probe_kind),
        format!("incident:{}", e.incident_kind),
        format!("severity:{}", e.severity),
    ];
    if e.test {
        t.push("test".into());
    }
    if let Some(w) = &e.window {
        t.push(format!("window:{w}"));
    }
    if let Some(run) = &e.run {
        t.push("soak".into());
        t.push(format!("run:{run}"));
        if let Some(p) = &e.phase {
            t.push(format!("phase:{p}"));
        }
    }
    t.extend(extra.iter().cloned());
    t
}

/// The annotation's text: the incident's summary, or the soak phase and
/// its run.
fn text(e: &AlertEvent) -> String {
    if e.summary().is_some() {
        return render::description(e);
    }
    if e.soak_phase {
        return format!(
            "soak run {}: phase {}",
            e.run.as_deref().unwrap_or_default(),
            e.phase.as_deref().unwrap_or_default()
        );
    }
    render::summary(e)
}

/// The body creating the annotation: a point at onset while firing, the
/// whole region once resolved.
pub fn create_payload(
    e: &AlertEvent,
    extra_tags: &[String],
    dashboard_uid: Option<&str>,
    panel_id: Option<i64>,
) -> Value {
    let mut v = json!({
        "time": e.started_at.timestamp_millis(),
        "tags": tags(e, extra_tags),
        "text": text(e),
    });
    if let (AlertStatus::Resolved, Some(end)) = (e.status, e.recovered_at) {
        v["timeEnd"] = json!(end.timestamp_millis());
    }
    if let Some(d) = dashboard_uid {
        v["dashboardUID"] = json!(d);
    }
    if let Some(p) = panel_id {
        v["panelId"] = json!(p);
    }
    v
}

/// The body closing an annotation into a region at recovery.
pub fn close_payload(e: &AlertEvent, extra_tags: &[String]) -> Value {
    json!({
        "time": e.started_at.timestamp_millis(),
        "timeEnd": e.recovered_at.unwrap_or(e.detected_at).timestamp_millis(),
        "tags": tags(e, extra_tags),
        "text": text(e),
    })
}

impl Receiver for GrafanaReceiver {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "grafana"
    }

    fn stateful(&self) -> bool {
        true
    }

    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let key = event.incident_key.clone();
            let existing = if event.test {
                None
            } else {
                self.stored_id(&key).await?
            };
            match (event.status, existing) {
                (AlertStatus::Firing, Some(_)) => Ok(()),
                (AlertStatus::Resolved, Some(id)) => {
                    let patched = self
                        .client
                        .send_json(
                            Method::PATCH,
                            &self.url(Some(id)),
                            &self.headers(),
                            &close_payload(event, &self.tags),
                        )
                        .await;
                    match patched {
                        Ok(_) => {}
                        // Someone deleted the annotation: draw the whole region anew.
                        Err(DeliveryError::Permanent { message })
                            if message.starts_with("HTTP 404") =>
                        {
                            let body = create_payload(
                                event,
                                &self.tags,
                                self.dashboard_uid.as_deref(),
                                self.panel_id,
                            );
                            self.client
                                .post_json(&self.url(None), &self.headers(), &body)
                                .await?;
                        }
                        Err(e) => return Err(e),
                    }
                    if !event.soak_phase {
                        let (name, k) = (self.name.clone(), key);
                        // Failing to forget the id only leaves a stale row behind.
                        let _ = blocking(&self.store, move |s| outbox::remove_state(s, &name, &k))
                            .await;
                    }
                    Ok(())
                }
                (status, None) => {
                    let body = create_payload(
                        event,
                        &self.tags,
                        self.dashboard_uid.as_deref(),
                        self.panel_id,
                    );
                    let response = self
                        .client
                        .post_json(&self.url(None), &self.headers(), &body)
                        .await?;
                    if status == AlertStatus::Firing && !event.test {
                        let id = serde_json::from_str::<Value>(&response.body)
                            .ok()
                            .and_then(|v| v["id"].as_u64());
                        match id {
                            Some(id) => {
                                let (name, k) = (self.name.clone(), key);
                                blocking(&self.store, move |s| {
                                    outbox::put_state(s, &name, &k, id.to_string().as_bytes())
                                })
                                .await
                                .map_err(|e| DeliveryError::retriable(e.to_string()))?;
                            }
                            None => {
                                tracing::warn!(receiver = %self.name, "grafana answered without an annotation id; the recovery will add a separate region")
                            }
                        }
                    }
                    Ok(())
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
    fn a_window_incident_is_tagged_with_its_window() {
        let mut e = sample_event();
        assert!(!tags(&e, &[]).iter().any(|t| t.starts_with("window:")));
        e.window = Some("batch1".into());
        assert!(tags(&e, &[]).contains(&"window:batch1".to_string()));
    }

    #[test]
    fn a_window_summary_is_a_region_over_the_window() {
        let e = crate::alert::tests::sample_summary_event();
        let p = create_payload(&e, &["ops".to_string()], None, None);
        assert_eq!(
            p["tags"],
            json!(["mailpulse", "window", "window:batch-1", "ops"])
        );
        let s = e.summary().unwrap();
        assert_eq!(p["time"], s.starts_at.timestamp_millis());
        assert_eq!(p["timeEnd"], s.ends_at.timestamp_millis());
        assert!(p["text"].as_str().unwrap().contains("owa: 2 incidents"));
    }

    #[test]
    fn point_at_onset_then_region() {
        let mut e = sample_event();
        let c = create_payload(&e, &["soak".into()], Some("abc"), Some(2));
        assert_eq!(c["time"], e.started_at.timestamp_millis());
        assert!(c.get("timeEnd").is_none());
        assert_eq!(c["dashboardUID"], "abc");
        assert_eq!(c["panelId"], 2);
        assert_eq!(
            c["tags"],
            json!([
                "mailpulse",
                "target:owa",
                "kind:http",
                "incident:slow",
                "severity:critical",
                "soak"
            ])
        );
        e.status = AlertStatus::Resolved;
        e.recovered_at = Some(e.started_at + chrono::Duration::seconds(603));
        let p = close_payload(&e, &[]);
        assert_eq!(
            p["timeEnd"].as_i64().unwrap() - p["time"].as_i64().unwrap(),
            603_000
        );
        assert!(p["text"].as_str().unwrap().starts_with("owa recovered"));
    }
}
