//! The window summary: what happened on the targets a change window
//! covered, built from the window, the incidents of its targets that
//! overlap it and the figures gathered inside it ([`build`]). Its JSON form
//! is what the `webhook` receiver sends and `window report --format json`
//! prints; its fields are a contract.
//!
//! Each incident says whether its page was held or went out beyond the
//! window's tolerance, by the window's own rules (latency at or above
//! `tolerance` x the baseline, down longer than `max_down`, open longer than
//! `max_incident`); one that opened before the window paged as usual.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::figures::WindowFigures;
use crate::detect::{Incident, IncidentKind};
use crate::human::{self, Style};
use crate::store::incidents::IncidentRecord;
use crate::store::windows::ChangeWindow;

/// What a window's targets went through while it was open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSummary {
    /// The window's name.
    pub window: String,
    /// Its id in the agent's store.
    pub id: u64,
    /// The agent's instance name.
    pub instance: String,
    /// When it opened.
    pub starts_at: DateTime<Utc>,
    /// When it ended (closed or expired), or the time of the report while
    /// it is still open.
    pub ends_at: DateTime<Utc>,
    /// Whether `window close` ended it before its expiry.
    pub closed_early: bool,
    /// Whether it was still open when this summary was made (a report).
    #[serde(default)]
    pub in_progress: bool,
    /// The operator's note.
    pub note: Option<String>,
    /// Who opened it.
    pub by: Option<String>,
    /// Its target patterns; empty covers every target.
    pub covers: Vec<String>,
    /// Latency at or above this many times the baseline was beyond tolerance.
    pub tolerance: f64,
    /// Down for longer than this was beyond tolerance, seconds.
    pub max_down_seconds: f64,
    /// Open for longer than this was beyond tolerance, seconds.
    pub max_incident_seconds: f64,
    /// Incidents on its targets that overlapped it.
    pub incident_count: usize,
    /// Of those, the ones whose page was held.
    pub held: usize,
    /// Of those, the ones that paged beyond tolerance.
    pub beyond_tolerance: usize,
    /// Per target, by name.
    pub targets: Vec<TargetSummary>,
    /// Incidents still open when it ended: they page normally from then on.
    pub still_open: Vec<StillOpen>,
}

/// One covered target in a window summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSummary {
    /// The target's name.
    pub target: String,
    /// Its incidents that overlapped the window.
    pub incident_count: usize,
    /// Their degraded time inside the window, seconds.
    pub degraded_seconds: f64,
    /// The worst peak latency of those incidents, seconds.
    pub worst_peak_seconds: Option<f64>,
    /// The p95 latency of its successful probes inside the window, seconds.
    pub p95_inside_seconds: Option<f64>,
    /// The p95 latency of its successful probes in the hour before, seconds.
    pub p95_before_seconds: Option<f64>,
    /// Probes inside the window.
    pub probes: u64,
    /// Failed probes inside the window.
    pub failures: u64,
    /// The incidents, oldest first.
    pub incidents: Vec<IncidentLine>,
}

/// One incident in a window summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentLine {
    /// `slow` or `down` (its kind at the end).
    pub kind: String,
    /// Onset (first bad probe).
    pub started_at: DateTime<Utc>,
    /// When it was detected.
    pub detected_at: DateTime<Utc>,
    /// When it recovered; `None` while open.
    pub recovered_at: Option<DateTime<Utc>>,
    /// Its degraded time inside the window, seconds.
    pub degraded_seconds: f64,
    /// Worst latency of a successful probe, seconds.
    pub peak_latency_seconds: Option<f64>,
    /// The baseline at its onset, seconds.
    pub baseline_latency_seconds: Option<f64>,
    /// `held` (recorded, not paged), `beyond_tolerance` (paged at once) or
    /// `paged` (it opened before the window).
    pub outcome: String,
    /// Why it was beyond tolerance, in words.
    pub beyond_tolerance: Option<String>,
    /// Whether it was still open when the window ended.
    pub open_at_end: bool,
}

/// An incident still open when the window ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StillOpen {
    /// The target's name.
    pub target: String,
    /// `slow` or `down`.
    pub kind: String,
    /// Its onset.
    pub started_at: DateTime<Utc>,
}

fn secs(d: chrono::Duration) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

fn std_secs(d: chrono::Duration) -> Duration {
    Duration::from_millis(d.num_milliseconds().max(0) as u64)
}

/// Why `incident` went beyond the window's tolerance by `end`, if it did.
pub fn beyond_tolerance(
    window: &ChangeWindow,
    incident: &Incident,
    end: DateTime<Utc>,
) -> Option<String> {
    let until = incident.recovered_at.map_or(end, |r| r.min(end));
    if let (Some(peak), Some(base)) = (incident.peak_latency, incident.baseline_at_onset) {
        let factor = peak.as_secs_f64() / base.as_secs_f64().max(1e-9);
        if factor >= window.tolerance {
            return Some(format!(
                "latency {factor:.0}x the baseline, tolerance {}x",
                window.tolerance
            ));
        }
    }
    if incident.kind == IncidentKind::Down {
        let since = incident.escalated_at.unwrap_or(incident.started_at);
        let down = until - since;
        if std_secs(down) > window.max_down {
            return Some(format!(
                "down for {}, max_down {}",
                human::duration(std_secs(down), Style::Spaced),
                human::duration(window.max_down, Style::Config)
            ));
        }
    }
    let open = until - incident.started_at;
    if std_secs(open) > window.max_incident {
        return Some(format!(
            "open for {}, max_incident {}",
            human::duration(std_secs(open), Style::Spaced),
            human::duration(window.max_incident, Style::Config)
        ));
    }
    None
}

/// Builds the summary of `window` as of `now` (its end once ended; `now`
/// while it is open, for a report in progress). `covered` are the
/// configured targets it covers and `incidents` the records of the targets
/// it covers (the caller matches its patterns); those that do not overlap
/// it are left out. `figures` are what the pipeline gathered inside it.
/// Every target of the three is listed.
pub fn build(
    window: &ChangeWindow,
    instance: &str,
    covered: &[String],
    incidents: &[IncidentRecord],
    figures: &WindowFigures,
    now: DateTime<Utc>,
) -> WindowSummary {
    let in_progress = now < window.end();
    let start = window.starts_at;
    let end = if in_progress {
        now.max(start)
    } else {
        window.end()
    };
    let mut by_target: std::collections::BTreeMap<String, Vec<&IncidentRecord>> =
        std::collections::BTreeMap::new();
    for name in figures.targets.keys().chain(covered) {
        by_target.entry(name.clone()).or_default();
    }
    for r in incidents {
        let i = &r.incident;
        if i.started_at < end && i.recovered_at.is_none_or(|t| t > start) {
            by_target.entry(r.target.clone()).or_default().push(r);
        }
    }
    let mut summary = WindowSummary {
        window: window.name.clone(),
        id: window.id,
        instance: instance.to_string(),
        starts_at: start,
        ends_at: end,
        closed_early: window.closed_at.is_some_and(|c| c < window.ends_at),
        in_progress,
        note: window.note.clone(),
        by: window.by.clone(),
        covers: window.targets.clone(),
        tolerance: window.tolerance,
        max_down_seconds: window.max_down.as_secs_f64(),
        max_incident_seconds: window.max_incident.as_secs_f64(),
        incident_count: 0,
        held: 0,
        beyond_tolerance: 0,
        targets: Vec::new(),
        still_open: Vec::new(),
    };
    for (target, mut records) in by_target {
        records.sort_by_key(|r| r.incident.started_at);
        let mut lines = Vec::new();
        for r in records {
            let i = &r.incident;
            let open_at_end = i.recovered_at.is_none_or(|t| t > end);
            let until = i.recovered_at.map_or(end, |t| t.min(end));
            let reason = beyond_tolerance(window, i, end);
            let outcome = if i.started_at < start {
                "paged"
            } else if reason.is_some() {
                summary.beyond_tolerance += 1;
                "beyond_tolerance"
            } else {
                summary.held += 1;
                "held"
            };
            if open_at_end {
                summary.still_open.push(StillOpen {
                    target: target.clone(),
                    kind: i.kind.as_str().to_string(),
                    started_at: i.started_at,
                });
            }
            lines.push(IncidentLine {
                kind: i.kind.as_str().to_string(),
                started_at: i.started_at,
                detected_at: i.detected_at,
                recovered_at: i.recovered_at,
                degraded_seconds: secs(until - i.started_at.max(start)),
                peak_latency_seconds: i.peak_latency.map(|d| d.as_secs_f64()),
                baseline_latency_seconds: i.baseline_at_onset.map(|d| d.as_secs_f64()),
                outcome: outcome.to_string(),
                beyond_tolerance: if outcome == "beyond_tolerance" {
                    reason
                } else {
                    None
                },
                open_at_end,
            });
        }
        let f = figures.targets.get(&target);
        summary.incident_count += lines.len();
        summary.targets.push(TargetSummary {
            incident_count: lines.len(),
            degraded_seconds: lines.iter().map(|l| l.degraded_seconds).sum(),
            worst_peak_seconds: lines
                .iter()
                .filter_map(|l| l.peak_latency_seconds)
                .reduce(f64::max),
            p95_inside_seconds: f.and_then(|f| f.inside_p95_seconds()),
            p95_before_seconds: f.and_then(|f| f.before_p95_seconds),
            probes: f.map_or(0, |f| f.probes),
            failures: f.map_or(0, |f| f.failures),
            target,
            incidents: lines,
        });
    }
    summary
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::windows::WindowSource;

    pub(crate) fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    pub(crate) fn window() -> ChangeWindow {
        ChangeWindow {
            id: 7,
            name: "batch-1".into(),
            source: WindowSource::Command,
            starts_at: at("2026-12-05T22:00:00Z"),
            ends_at: at("2026-12-06T02:00:00Z"),
            closed_at: Some(at("2026-12-06T01:00:00Z")),
            targets: vec!["owa*".into(), "imap".into()],
            tolerance: 10.0,
            max_down: Duration::from_secs(300),
            max_incident: Duration::from_secs(1800),
            note: Some("30,000 accounts <batch 1>".into()),
            by: Some("ops".into()),
            summary_sent_at: None,
        }
    }

    fn incident(
        target: &str,
        kind: &str,
        start: &str,
        recovered: Option<&str>,
        peak_ms: u64,
    ) -> IncidentRecord {
        let started_at = at(start);
        IncidentRecord {
            target: target.into(),
            incident: serde_json::from_value(serde_json::json!({
                "kind": kind,
                "started_at": started_at,
                "detected_at": started_at + chrono::Duration::seconds(30),
                "recovered_at": recovered.map(at),
                "closed_at": recovered.map(at),
                "peak_latency": {"secs": peak_ms / 1000, "nanos": (peak_ms % 1000) * 1_000_000},
                "baseline_at_onset": {"secs": 0, "nanos": 200_000_000},
                "worst_phase": null,
                "slow_count": 3,
                "failed_count": 0
            }))
            .unwrap(),
        }
    }

    pub(crate) fn sample() -> WindowSummary {
        let mut figures = WindowFigures::default();
        for i in 0..200 {
            figures.observe("owa", Some(0.2 + f64::from(i % 20) / 100.0), || {
                (Some(0.18), 240)
            });
            figures.observe("imap", (i % 50 != 0).then_some(0.05), || (None, 0));
        }
        let incidents = [
            // Before the window, over before it: left out.
            incident(
                "owa",
                "slow",
                "2026-12-05T21:00:00Z",
                Some("2026-12-05T21:10:00Z"),
                900,
            ),
            // A held 3x slowdown.
            incident(
                "owa",
                "slow",
                "2026-12-05T22:14:05Z",
                Some("2026-12-05T22:24:08Z"),
                600,
            ),
            // A 20x slowdown: beyond tolerance.
            incident(
                "owa",
                "slow",
                "2026-12-05T23:00:00Z",
                Some("2026-12-05T23:02:00Z"),
                4000,
            ),
            // Down from 00:50, still open at the close.
            incident("imap", "down", "2026-12-06T00:50:00Z", None, 0),
            // After the window: left out.
            incident("imap", "slow", "2026-12-06T01:30:00Z", None, 500),
        ];
        build(
            &window(),
            "cas01",
            &["owa-ext".to_string()],
            &incidents,
            &figures,
            at("2026-12-06T01:00:05Z"),
        )
    }

    #[test]
    fn incidents_are_counted_timed_and_judged_by_the_windows_rules() {
        let s = sample();
        assert!(!s.in_progress && s.closed_early);
        assert_eq!(s.ends_at, at("2026-12-06T01:00:00Z"));
        assert_eq!((s.incident_count, s.held, s.beyond_tolerance), (3, 1, 2));
        let names: Vec<_> = s.targets.iter().map(|t| t.target.as_str()).collect();
        assert_eq!(names, ["imap", "owa", "owa-ext"]);
        assert_eq!(s.targets[2].incident_count, 0);
        assert_eq!(s.targets[2].probes, 0);
        let owa = &s.targets[1];
        assert_eq!(owa.incident_count, 2);
        assert_eq!(owa.incidents[0].outcome, "held");
        assert_eq!(owa.incidents[0].degraded_seconds, 603.0);
        assert_eq!(owa.incidents[1].outcome, "beyond_tolerance");
        assert_eq!(
            owa.incidents[1].beyond_tolerance.as_deref(),
            Some("latency 20x the baseline, tolerance 10x")
        );
        assert_eq!(owa.degraded_seconds, 723.0);
        assert_eq!(owa.worst_peak_seconds, Some(4.0));
        assert_eq!(owa.p95_before_seconds, Some(0.18));
        let p95 = owa.p95_inside_seconds.unwrap();
        assert!((p95 - 0.38).abs() < 0.005, "{p95}");
        let imap = &s.targets[0];
        assert_eq!((imap.probes, imap.failures), (200, 4));
        let down = &imap.incidents[0];
        assert!(down.open_at_end);
        assert_eq!(down.degraded_seconds, 600.0);
        assert_eq!(
            down.beyond_tolerance.as_deref(),
            Some("down for 10m, max_down 5m")
        );
        assert_eq!(
            s.still_open,
            [StillOpen {
                target: "imap".into(),
                kind: "down".into(),
                started_at: at("2026-12-06T00:50:00Z")
            }]
        );
    }

    #[test]
    fn a_window_in_progress_is_summarised_up_to_now() {
        let mut w = window();
        w.closed_at = None;
        let s = build(
            &w,
            "cas01",
            &[],
            &[],
            &WindowFigures::default(),
            at("2026-12-05T23:00:00Z"),
        );
        assert!(s.in_progress && !s.closed_early);
        assert_eq!(s.ends_at, at("2026-12-05T23:00:00Z"));
        assert!(s.targets.is_empty() && s.still_open.is_empty());
    }

    #[test]
    fn an_incident_open_longer_than_max_incident_is_beyond_tolerance() {
        let w = window();
        let r = incident(
            "owa",
            "slow",
            "2026-12-05T22:00:00Z",
            Some("2026-12-05T22:40:00Z"),
            500,
        );
        assert_eq!(
            beyond_tolerance(&w, &r.incident, w.end()).as_deref(),
            Some("open for 40m, max_incident 30m")
        );
        let r = incident(
            "owa",
            "slow",
            "2026-12-05T22:00:00Z",
            Some("2026-12-05T22:20:00Z"),
            500,
        );
        assert_eq!(beyond_tolerance(&w, &r.incident, w.end()), None);
    }
}
