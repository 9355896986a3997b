//! Change-window summaries for the receivers: when a window has ended
//! (closed or expired, also while the agent was down) [`queue_window_summaries`],
//! run by the delivery loop's housekeeping every second, builds its
//! [`WindowSummary`] (the window, the incidents of the targets it covered,
//! the figures the pipeline gathered inside it) and queues it as an
//! [`AlertEvent`] carrying the summary for the receivers the routes pick
//! (`event = "window_summary"`), in the same durable commit that marks the
//! summary sent: a restart never queues it twice and `kill -9` never loses it.
//! A summary waits [`SUMMARY_DELAY`] after the end, so the pipeline has saved
//! the window's last figures.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::stored;
use super::{incident_key, AlertEvent, AlertStatus, Alerting};
use crate::config::alerting::Glob;
use crate::store::outbox;
use crate::store::windows::{self, ChangeWindow};
use crate::store::{incidents, window_stats, Store, StoreError};
use crate::window::{self, WindowFigures, WindowSummary};

/// How long after a window's end its summary is built: the pipeline looks
/// at the windows every 2 s and saves an ended window's figures then.
pub const SUMMARY_DELAY: Duration = Duration::from_secs(5);

/// How far before a window's start an incident may have started and still
/// be looked at (one open across the start).
const LOOK_BACK: chrono::Duration = chrono::Duration::days(7);

/// Builds the summary of `window` as of `now` from the store: the incidents
/// of the targets its patterns cover, the figures saved for it, and every
/// one of `targets` (the configured ones) it covers.
pub fn window_summary(
    store: &Store,
    instance: &str,
    targets: &[String],
    window: &ChangeWindow,
    now: DateTime<Utc>,
) -> Result<WindowSummary, StoreError> {
    let since = window.starts_at - LOOK_BACK;
    let which = incidents::Selection {
        since_micros: Some(since.timestamp_micros()),
        ..Default::default()
    };
    let records: Vec<_> = incidents::select(store, &which, incidents::MAX_HISTORY as usize)?
        .into_iter()
        .filter(|r| {
            window.targets.is_empty()
                || window
                    .targets
                    .iter()
                    .any(|p| Glob(p.clone()).matches(&r.target))
        })
        .collect();
    let figures: WindowFigures = match window_stats::load(store, window.id)? {
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(window = %window.name, error = %e, "ignoring the stored figures of a change window");
            WindowFigures::default()
        }),
        None => WindowFigures::default(),
    };
    let covered: Vec<String> = targets
        .iter()
        .filter(|t| {
            window.targets.is_empty() || window.targets.iter().any(|p| Glob(p.clone()).matches(t))
        })
        .cloned()
        .collect();
    Ok(window::build(
        window, instance, &covered, &records, &figures, now,
    ))
}

/// The event that carries `summary` to the receivers: kind
/// `window_summary`, severity `info`, under a key stable per window.
pub fn summary_event(summary: WindowSummary) -> AlertEvent {
    let key = incident_key(
        &summary.instance,
        &summary.window,
        &format!("window-summary:{}", summary.id),
        summary.starts_at,
    );
    AlertEvent {
        incident_key: key,
        status: AlertStatus::Resolved,
        reminder: false,
        test: false,
        instance: summary.instance.clone(),
        target: String::new(),
        probe_kind: String::new(),
        incident_kind: "window_summary".to_string(),
        severity: "info".to_string(),
        started_at: summary.starts_at,
        detected_at: summary.ends_at,
        recovered_at: Some(summary.ends_at),
        peak_latency_seconds: None,
        baseline_latency_seconds: None,
        new_baseline_latency_seconds: None,
        current_latency_seconds: None,
        worst_phase: None,
        slow_count: 0,
        failed_count: 0,
        last_error: None,
        host: None,
        run: None,
        phase: None,
        soak_phase: false,
        window: Some(summary.window.clone()),
        beyond_tolerance: None,
        held: None,
        window_summary: Some(Box::new(summary)),
    }
}

/// Queues the summary of every window that ended at least [`SUMMARY_DELAY`]
/// before `now` and whose summary has not gone out, each in one durable
/// commit with its mark. Returns how many summaries were queued.
pub fn queue_window_summaries(
    store: &Store,
    alerting: &Alerting,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let delay = chrono::Duration::from_std(SUMMARY_DELAY).unwrap_or_default();
    let due = windows::due_summaries(store, now - delay)?;
    let mut queued = 0;
    for w in due {
        let summary = window_summary(store, &alerting.instance, &alerting.targets, &w, now)?;
        let event = summary_event(summary);
        let payload = stored::encode(&event);
        let names = alerting.route(&event);
        let sent = store.write(|tx| {
            if !windows::mark_summary_sent_in(tx, w.id, now)? {
                return Ok(false);
            }
            for name in &names {
                outbox::push(tx, name, &event.incident_key, &payload, now)?;
            }
            Ok(true)
        })?;
        if sent {
            queued += 1;
            if names.is_empty() {
                tracing::warn!(window = %w.name, "change window summary matched no route; nothing sent");
            } else {
                tracing::info!(window = %w.name, receivers = ?names, "change window ended; summary queued");
            }
        }
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerting::{AlertingConfig, Route};
    use crate::store::windows::WindowSource;

    struct Fake(&'static str);
    impl super::super::Receiver for Fake {
        fn name(&self) -> &str {
            self.0
        }
        fn kind(&self) -> &'static str {
            "webhook"
        }
        fn send<'a>(
            &'a self,
            _: &'a AlertEvent,
        ) -> super::super::BoxFuture<'a, Result<(), super::super::DeliveryError>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn route(event: Option<&str>, target: Option<&str>, receiver: &str) -> Route {
        Route {
            target: target.map(|t| Glob(t.into())),
            kind: None,
            incident: None,
            severity: None,
            event: event.map(Into::into),
            receivers: vec![receiver.into()],
            continue_matching: true,
        }
    }

    #[test]
    fn a_summary_is_queued_once_for_the_routes_that_match_it() {
        let store = Store::in_memory().unwrap();
        let config = AlertingConfig {
            routes: vec![
                route(Some("incident"), None, "pager"),
                route(Some("window_summary"), Some("owa*"), "chat"),
                route(Some("window_summary"), Some("smtp"), "mail"),
                route(None, None, "hook"),
            ],
            ..AlertingConfig::default()
        };
        let alerting = Alerting::with_receivers(
            config,
            vec![
                std::sync::Arc::new(Fake("pager")),
                std::sync::Arc::new(Fake("chat")),
                std::sync::Arc::new(Fake("mail")),
                std::sync::Arc::new(Fake("hook")),
            ],
        )
        .with_agent("cas01", vec!["owa".into(), "smtp".into()]);
        let w = windows::open(
            &store,
            ChangeWindow {
                id: 0,
                name: "batch-1".into(),
                source: WindowSource::Command,
                starts_at: at("2026-12-05T22:00:00Z"),
                ends_at: at("2026-12-05T23:00:00Z"),
                closed_at: None,
                targets: vec!["owa*".into()],
                tolerance: 10.0,
                max_down: Duration::from_secs(300),
                max_incident: Duration::from_secs(1800),
                note: None,
                by: None,
                summary_sent_at: None,
            },
        )
        .unwrap();
        let mut figures = WindowFigures::default();
        figures.observe("owa", Some(0.2), || (Some(0.1), 10));
        window_stats::save(&store, w.id, &serde_json::to_vec(&figures).unwrap()).unwrap();
        // Not yet: open, then within the delay after its end.
        assert_eq!(
            queue_window_summaries(&store, &alerting, at("2026-12-05T22:30:00Z")).unwrap(),
            0
        );
        assert_eq!(
            queue_window_summaries(&store, &alerting, at("2026-12-05T23:00:02Z")).unwrap(),
            0
        );
        assert_eq!(
            queue_window_summaries(&store, &alerting, at("2026-12-05T23:00:06Z")).unwrap(),
            1
        );
        assert_eq!(
            queue_window_summaries(&store, &alerting, at("2026-12-05T23:01:00Z")).unwrap(),
            0,
            "once"
        );
        let rows = outbox::all_rows(&store).unwrap();
        let mut to: Vec<_> = rows.iter().map(|r| r.receiver.as_str()).collect();
        to.sort();
        assert_eq!(to, ["chat", "hook"]);
        let e = stored::queued(&rows[0]).unwrap();
        let s = e.summary().unwrap();
        assert_eq!(
            (s.window.as_str(), s.instance.as_str()),
            ("batch-1", "cas01")
        );
        assert_eq!(s.targets[0].p95_before_seconds, Some(0.1));
        assert_eq!(e.incident_kind, "window_summary");
        // No incident: the status page's delivery log leaves it out.
        let now = at("2026-12-05T23:01:00Z");
        assert!(super::super::delivery::sent_row(&rows[0], "delivered", now, None).is_none());
    }
}
