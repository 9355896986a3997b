//! The alert model: [`AlertEvent`], what the incident layer hands to
//! [`enqueue`](super::enqueue()) and what the outbox stores (as JSON), with its
//! [`AlertStatus`], the [`HostLoad`] it carries, and [`incident_key`], the
//! stable key every receiver's idempotency rests on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::window::WindowSummary;

#[cfg(doc)]
use super::enqueue;
#[cfg(doc)]
use crate::config::alerting::AlertingConfig;

/// Whether an incident is open or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The incident is open.
    Firing,
    /// The incident is over.
    Resolved,
}

impl AlertStatus {
    /// `firing` or `resolved`, as Alertmanager writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// A short host-load snapshot taken when the incident was detected.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostLoad {
    /// CPU busy ratio, 0..1.
    pub cpu_ratio: Option<f64>,
    /// One-minute load average.
    pub load1: Option<f64>,
    /// Memory available, bytes.
    pub memory_available_bytes: Option<u64>,
    /// Established TCP connections.
    pub tcp_established: Option<u64>,
}

/// One notification's worth of incident: what the incident layer hands to
/// [`enqueue`](super::enqueue()). Serialized into the outbox as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Stable per incident (e.g. a hex hash of instance, target, kind and
    /// start); the idempotency key at every receiver that has one.
    pub incident_key: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// A `repeat_interval` reminder of an open incident.
    #[serde(default)]
    pub reminder: bool,
    /// A test notification from `mailpulse test-alert`.
    #[serde(default)]
    pub test: bool,
    /// The agent's instance name.
    pub instance: String,
    /// The target name.
    pub target: String,
    /// The probe kind (`http`, `smtp`, ...); the `kind` label.
    pub probe_kind: String,
    /// `slow` or `down`.
    pub incident_kind: String,
    /// `critical`, `error`, `warning` or `info`; see [`AlertingConfig::severity_for`].
    pub severity: String,
    /// Onset of the incident (where latency left the normal band, at the
    /// latest its first bad sample).
    pub started_at: DateTime<Utc>,
    /// When the detector declared it.
    pub detected_at: DateTime<Utc>,
    /// When it ended (resolved events).
    pub recovered_at: Option<DateTime<Utc>>,
    /// Worst latency seen, seconds.
    pub peak_latency_seconds: Option<f64>,
    /// The normal latency before the incident, seconds.
    pub baseline_latency_seconds: Option<f64>,
    /// For an incident that ended as a level shift held for `relearn_after`
    /// (outcome `new_baseline`): the new baseline, seconds.
    #[serde(default)]
    pub new_baseline_latency_seconds: Option<f64>,
    /// The latency when this event was made, seconds.
    pub current_latency_seconds: Option<f64>,
    /// The phase that slowed down most (`first_byte`, `tls`, ...).
    pub worst_phase: Option<String>,
    /// Slow samples during the incident.
    pub slow_count: u64,
    /// Failed samples during the incident.
    pub failed_count: u64,
    /// The latest probe error, if any.
    pub last_error: Option<String>,
    /// Host load when detected.
    pub host: Option<HostLoad>,
    /// The soak-test run active when the incident opened, if any.
    #[serde(default)]
    pub run: Option<String>,
    /// That run's phase.
    #[serde(default)]
    pub phase: Option<String>,
    /// Not an incident but a soak-test phase boundary (`run` and `phase`
    /// name it; `started_at` is the phase's start and `recovered_at` its
    /// end), queued for the `grafana` receivers only
    /// ([`enqueue_phase_marks`](super::enqueue_phase_marks)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub soak_phase: bool,
    /// The change window that covered the target when the incident opened
    /// (its page is held while the window is open), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Set on a page sent during a change window because the incident went
    /// beyond the window's tolerance: why, in words (`latency 21x the
    /// baseline, tolerance 10x`, `down for 5m, max_down 5m`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beyond_tolerance: Option<String>,
    /// Set on a page a maintenance window or silence held: by which and
    /// since when. Pages that were never held leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
    /// Not an incident but the summary of a change window that ended
    /// (`incident_kind` `window_summary`): queued by the delivery loop's
    /// housekeeping for the receivers the routes pick, and rendered by
    /// each receiver as a summary ([`alert::window_summary`](super::window_summary)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_summary: Option<Box<WindowSummary>>,
}

impl AlertEvent {
    /// The change-window summary this event carries, if it is one.
    pub fn summary(&self) -> Option<&WindowSummary> {
        self.window_summary.as_deref()
    }
}

/// Why and since when a page was held, carried by the page released when
/// the window or silence ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The window or silence, as [`silenced_by`](super::silenced_by) names it
    /// (`maintenance window "patch"`, `silence 3 (upgrade)`).
    pub by: String,
    /// When the page was first held.
    pub since: DateTime<Utc>,
    /// When what held it ended (the page goes out the target's
    /// `recover_for` later, if the incident is still open); `None` while
    /// it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

/// The stable key of an incident: 16 hex digits of a 64-bit FNV-1a hash of
/// instance, target, probe kind and onset. The incident kind is left out on
/// purpose, so an escalation from slow to down keeps its key (and its
/// PagerDuty alert, Opsgenie alias and Grafana region).
pub fn incident_key(
    instance: &str,
    target: &str,
    probe_kind: &str,
    started_at: DateTime<Utc>,
) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let millis = started_at.timestamp_millis().to_string();
    for part in [instance, target, probe_kind, millis.as_str()] {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// What an [`AlertEvent`] needs besides the detector's incident.
#[derive(Debug, Clone, Default)]
pub struct IncidentContext {
    /// The agent's instance name.
    pub instance: String,
    /// The target name.
    pub target: String,
    /// The probe kind (`http`, `smtp`, ...).
    pub probe_kind: String,
    /// The target's severity ([`AlertingConfig::severity_for`]).
    pub severity: String,
    /// The latest latency, seconds.
    pub current_latency_seconds: Option<f64>,
    /// The latest probe error.
    pub last_error: Option<String>,
    /// Host load now.
    pub host: Option<HostLoad>,
}

impl AlertEvent {
    /// The event for a detector incident: firing while it is open, resolved
    /// once it has recovered. Map `Opened` and `Escalated` to this while
    /// open, and `Closed` once recovered.
    pub fn from_incident(incident: &crate::detect::Incident, ctx: IncidentContext) -> AlertEvent {
        let secs = |d: Duration| d.as_secs_f64();
        AlertEvent {
            incident_key: incident_key(
                &ctx.instance,
                &ctx.target,
                &ctx.probe_kind,
                incident.started_at,
            ),
            status: if incident.is_open() {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            },
            reminder: false,
            test: false,
            instance: ctx.instance,
            target: ctx.target,
            probe_kind: ctx.probe_kind,
            incident_kind: incident.kind.as_str().to_string(),
            severity: ctx.severity,
            started_at: incident.started_at,
            detected_at: incident.detected_at,
            recovered_at: incident.recovered_at,
            peak_latency_seconds: incident.peak_latency.map(secs),
            baseline_latency_seconds: incident.baseline_at_onset.map(secs),
            new_baseline_latency_seconds: incident.new_baseline.map(secs),
            current_latency_seconds: ctx.current_latency_seconds,
            worst_phase: incident.worst_phase.clone(),
            slow_count: u64::from(incident.slow_count),
            failed_count: u64::from(incident.failed_count),
            last_error: ctx.last_error,
            held: None,
            host: ctx.host,
            run: incident.run.clone(),
            phase: incident.run_phase.clone(),
            soak_phase: false,
            window: incident.window.clone(),
            beyond_tolerance: None,
            window_summary: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::render;
    use crate::alert::tests::sample_event;

    #[test]
    fn incident_keys_are_stable_and_ignore_the_incident_kind() {
        let e = sample_event();
        let a = incident_key("cas01", "owa", "http", e.started_at);
        assert_eq!(a.len(), 16);
        assert_eq!(a, incident_key("cas01", "owa", "http", e.started_at));
        assert_ne!(a, incident_key("cas01", "owa", "smtp", e.started_at));
        assert_ne!(
            a,
            incident_key(
                "cas01",
                "owa",
                "http",
                e.started_at + chrono::Duration::seconds(1)
            )
        );
    }

    #[test]
    fn a_detector_incident_becomes_an_event() {
        let incident: crate::detect::Incident = serde_json::from_value(serde_json::json!({
            "kind": "slow",
            "started_at": "2026-12-05T02:14:05Z",
            "detected_at": "2026-12-05T02:15:06Z",
            "recovered_at": "2026-12-05T02:24:08Z",
            "closed_at": "2026-12-05T02:25:00Z",
            "peak_latency": {"secs": 6, "nanos": 200_000_000},
            "baseline_at_onset": {"secs": 0, "nanos": 180_000_000},
            "worst_phase": "first_byte",
            "slow_count": 12,
            "failed_count": 0
        }))
        .unwrap();
        let ctx = IncidentContext {
            instance: "cas01".into(),
            target: "owa".into(),
            probe_kind: "http".into(),
            severity: "critical".into(),
            ..IncidentContext::default()
        };
        let e = AlertEvent::from_incident(&incident, ctx);
        assert_eq!(e.status, AlertStatus::Resolved);
        assert_eq!(
            e.incident_key,
            incident_key("cas01", "owa", "http", incident.started_at)
        );
        assert_eq!(e.peak_latency_seconds, Some(6.2));
        assert_eq!(e.baseline_latency_seconds, Some(0.18));
        assert_eq!(
            render::summary(&e),
            "owa recovered at 02:24:08Z after 10m 3s (detected 61 s after onset, peak 6.2 s)"
        );
    }
}
