//! Detection metric families: each target's state and baseline, and the
//! incidents it had. Records what the detector decided; decides nothing.
//!
//! The per-target families (`mailpulse_target_degraded`, `_down`,
//! `_baseline_seconds`, `mailpulse_incidents_total`,
//! `mailpulse_incidents_closed_total`, `mailpulse_incident_closed_seconds_total`,
//! `mailpulse_last_incident_duration_seconds` and the two incident timestamps
//! the dashboards draw incident bands from) are kept outside the
//! `prometheus` registry, like the probe families: every probe updates them,
//! and through the registry every scrape copied each series and its labels.
//! Their text is the crate's, byte for byte (see the tests). The incident
//! duration histogram, which only closed incidents feed, stays in the registry
//! and has series only for the kinds a target's incidents ended as (9 series
//! each: 6 buckets, `+Inf`, sum and count); the two closed-incident counters
//! start at zero, so a mean duration over a time range counts a target's
//! first incident too.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prometheus::{HistogramOpts, HistogramVec, Registry};

use super::register;
use super::table::{lock, write_rows, FamilyDef, SeriesTable};
use super::Format;
use crate::detect::{DetectEvent, IncidentKind, State};

/// Buckets for incident durations, 1 min to a day. An incident lasts at
/// least about its `for` (1 min by default), so there is no bound below a
/// minute; six bounds keep a target's cost after an incident at 9 series per
/// kind (README, "Series per target").
const INCIDENT_BUCKETS: &[f64] = &[60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0];

/// Incident kinds in the order of their `kind` labels, and of their counters' slots.
const KINDS: [IncidentKind; 2] = [IncidentKind::Down, IncidentKind::Slow];

/// One target's series; `None` is a series that does not exist (yet).
#[derive(Debug, Default)]
struct Series {
    degraded: Option<bool>,
    down: Option<bool>,
    baseline: Option<f64>,
    /// Incidents opened, by slot of [`KINDS`].
    incidents: [Option<u64>; KINDS.len()],
    /// Incidents closed, by slot of [`KINDS`] (the kind they ended as).
    closed: [Option<u64>; KINDS.len()],
    /// Total duration of the closed incidents, seconds, by slot of [`KINDS`].
    closed_seconds: [Option<f64>; KINDS.len()],
    last_duration: Option<f64>,
    /// Onset of the open incident, or of the latest one once it closed.
    started: Option<f64>,
    /// Recovery of the latest incident; 0 while it is open.
    recovered: Option<f64>,
}

/// The families kept here.
#[derive(Debug, Clone, Copy)]
enum Family {
    ClosedSeconds,
    Recovered,
    Started,
    Closed,
    Incidents,
    LastDuration,
    Baseline,
    Degraded,
    Down,
}

/// The families, in the order the page lists them (by name).
const FAMILIES: [FamilyDef<Family>; 9] = [
    FamilyDef {
        family: Family::ClosedSeconds,
        name: "mailpulse_incident_closed_seconds_total",
        help: "Total duration of closed incidents, by the kind they ended as; starts at 0.",
        kind: "counter",
        labels: &["kind", "target"],
    },
    FamilyDef {
        family: Family::Recovered,
        name: "mailpulse_incident_recovered_timestamp_seconds",
        help: "When the target's latest incident recovered (its first healthy sample); 0 while it is open.",
        kind: "gauge",
        labels: &["target"],
    },
    FamilyDef {
        family: Family::Started,
        name: "mailpulse_incident_started_timestamp_seconds",
        help: "Onset (where latency left the normal band, at the latest its first bad sample) of the target's open incident, or of its latest one once closed.",
        kind: "gauge",
        labels: &["target"],
    },
    FamilyDef {
        family: Family::Closed,
        name: "mailpulse_incidents_closed_total",
        help: "Incidents closed, by the kind they ended as; starts at 0.",
        kind: "counter",
        labels: &["kind", "target"],
    },
    FamilyDef {
        family: Family::Incidents,
        name: "mailpulse_incidents_total",
        help: "Incidents opened, by kind (slow or down).",
        kind: "counter",
        labels: &["kind", "target"],
    },
    FamilyDef {
        family: Family::LastDuration,
        name: "mailpulse_last_incident_duration_seconds",
        help: "Duration of the target's most recent closed incident.",
        kind: "gauge",
        labels: &["target"],
    },
    FamilyDef {
        family: Family::Baseline,
        name: "mailpulse_target_baseline_seconds",
        help: "The latency the detector learned as normal for the target.",
        kind: "gauge",
        labels: &["target"],
    },
    FamilyDef {
        family: Family::Degraded,
        name: "mailpulse_target_degraded",
        help: "1 while the target has an open incident (slow or down).",
        kind: "gauge",
        labels: &["target"],
    },
    FamilyDef {
        family: Family::Down,
        name: "mailpulse_target_down",
        help: "1 while the target has an open down incident.",
        kind: "gauge",
        labels: &["target"],
    },
];

/// Families fed by the detector.
#[derive(Clone)]
pub struct DetectMetrics {
    duration: HistogramVec,
    targets: Arc<SeriesTable<Series>>,
}

impl DetectMetrics {
    /// Registers the incident duration histogram on `reg`; the other
    /// families are written by [`DetectMetrics::encode`].
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        Ok(DetectMetrics {
            duration: register(
                reg,
                HistogramVec::new(
                    HistogramOpts::new(
                        "mailpulse_incident_duration_seconds",
                        "Duration of closed incidents, from the onset to the first recovered sample.",
                    )
                    .buckets(INCIDENT_BUCKETS.to_vec()),
                    &["target", "kind"],
                )?,
            )?,
            targets: Arc::default(),
        })
    }

    /// The names of the families kept outside the registry, sorted.
    pub fn names() -> impl Iterator<Item = &'static str> {
        FAMILIES.iter().map(|f| f.name)
    }

    /// Sets the target's state and baseline after an observation, and the
    /// onset of its open incident (`open_since`), if it has one: after a
    /// restart too, where the incident was opened before it.
    pub fn record_state(
        &self,
        target: &str,
        state: State,
        baseline: Option<std::time::Duration>,
        open_since: Option<DateTime<Utc>>,
    ) {
        let (degraded, down) = match state {
            State::Healthy => (false, false),
            State::Degraded => (true, false),
            State::Down => (true, true),
        };
        self.targets.with(target, Series::default, |s| {
            s.degraded = Some(degraded);
            s.down = Some(down);
            s.baseline = baseline.map(|b| b.as_secs_f64());
            if let Some(t) = open_since {
                s.started = Some(seconds(t));
                s.recovered = Some(0.0);
            }
        });
    }

    /// Counts an event: an opened incident, or a closed one's duration.
    pub fn record_event(&self, target: &str, event: &DetectEvent) {
        let opened = |kind: IncidentKind| {
            self.targets.with(target, Series::default, |s| {
                let slot = &mut s.incidents[kind_slot(kind)];
                *slot = Some(slot.unwrap_or(0) + 1);
            });
        };
        match event {
            DetectEvent::Opened(i) => opened(i.kind),
            // A slow incident that turned into a down one counts as a down incident too.
            DetectEvent::Escalated(_) => opened(IncidentKind::Down),
            DetectEvent::Closed(i) => {
                if let Some(d) = i.duration_seconds() {
                    self.duration
                        .with_label_values(&[target, i.kind.as_str()])
                        .observe(d);
                    let slot = kind_slot(i.kind);
                    self.targets.with(target, Series::default, |s| {
                        s.started = Some(seconds(i.started_at));
                        s.recovered = i.recovered_at.or(i.closed_at).map(seconds);
                        s.last_duration = Some(d);
                        s.closed[slot] = Some(s.closed[slot].unwrap_or(0) + 1);
                        s.closed_seconds[slot] = Some(s.closed_seconds[slot].unwrap_or(0.0) + d);
                    });
                }
            }
        }
    }

    /// Creates a configured target's incident counters at zero, so that
    /// `increase()` sees its first incident.
    pub fn add_target(&self, target: &str) {
        self.targets.with(target, Series::default, |s| {
            for slot in s.incidents.iter_mut().chain(&mut s.closed) {
                slot.get_or_insert(0);
            }
            for slot in &mut s.closed_seconds {
                slot.get_or_insert(0.0);
            }
        });
    }

    /// Removes every series of a target that is no longer configured.
    pub fn remove_target(&self, target: &str) {
        self.targets.remove(target);
        for kind in KINDS {
            let _ = self.duration.remove_label_values(&[target, kind.as_str()]);
        }
    }

    /// Writes the family `name` (one of [`DetectMetrics::names`]) in the
    /// `format`; nothing when it has no series, as the registry does.
    pub fn encode(&self, name: &str, format: Format, out: &mut Vec<u8>) {
        let Some(def) = FAMILIES.iter().find(|f| f.name == name) else {
            return;
        };
        let map = self.targets.sorted();
        let flag = |b: bool| f64::from(u8::from(b));
        // Label values in label-name order, and the value; targets come sorted.
        let mut rows: Vec<([&str; 2], f64)> = Vec::new();
        match def.family {
            // By kind, then target.
            Family::Incidents | Family::Closed | Family::ClosedSeconds => {
                for (slot, kind) in KINDS.iter().enumerate() {
                    for (target, s) in map.iter() {
                        let s = lock(s);
                        let value = match def.family {
                            Family::Incidents => s.incidents[slot].map(|n| n as f64),
                            Family::Closed => s.closed[slot].map(|n| n as f64),
                            _ => s.closed_seconds[slot],
                        };
                        if let Some(v) = value {
                            rows.push(([kind.as_str(), target], v));
                        }
                    }
                }
            }
            _ => {
                for (target, s) in map.iter() {
                    let s = lock(s);
                    let value = match def.family {
                        Family::LastDuration => s.last_duration,
                        Family::Baseline => s.baseline,
                        Family::Degraded => s.degraded.map(flag),
                        Family::Down => s.down.map(flag),
                        Family::Started => s.started,
                        Family::Recovered => s.recovered,
                        Family::Incidents | Family::Closed | Family::ClosedSeconds => None,
                    };
                    if let Some(v) = value {
                        rows.push(([target, ""], v));
                    }
                }
            }
        }
        write_rows(def, rows, format, out);
    }
}

/// A time as Unix seconds, to the millisecond.
fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The slot of an incident kind in [`KINDS`].
fn kind_slot(kind: IncidentKind) -> usize {
    match kind {
        IncidentKind::Down => 0,
        IncidentKind::Slow => 1,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus::{CounterVec, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

    use super::*;
    use crate::detect::Incident;
    use crate::metrics::text;

    /// The families as they were through the `prometheus` registry: the oracle.
    struct Oracle {
        reg: Registry,
        degraded: IntGaugeVec,
        down: IntGaugeVec,
        incidents: IntCounterVec,
        closed: IntCounterVec,
        closed_seconds: CounterVec,
        last: GaugeVec,
        baseline: GaugeVec,
        started: GaugeVec,
        recovered: GaugeVec,
    }

    impl Oracle {
        fn new() -> Oracle {
            let reg = Registry::new();
            let opts = |n: &str| Opts::new(n, FAMILIES.iter().find(|f| f.name == n).unwrap().help);
            let target = &["target"];
            let oracle = Oracle {
                degraded: IntGaugeVec::new(opts("mailpulse_target_degraded"), target).unwrap(),
                down: IntGaugeVec::new(opts("mailpulse_target_down"), target).unwrap(),
                incidents: IntCounterVec::new(
                    opts("mailpulse_incidents_total"),
                    &["target", "kind"],
                )
                .unwrap(),
                closed: IntCounterVec::new(
                    opts("mailpulse_incidents_closed_total"),
                    &["target", "kind"],
                )
                .unwrap(),
                closed_seconds: CounterVec::new(
                    opts("mailpulse_incident_closed_seconds_total"),
                    &["target", "kind"],
                )
                .unwrap(),
                last: GaugeVec::new(opts("mailpulse_last_incident_duration_seconds"), target)
                    .unwrap(),
                baseline: GaugeVec::new(opts("mailpulse_target_baseline_seconds"), target).unwrap(),
                started: GaugeVec::new(
                    opts("mailpulse_incident_started_timestamp_seconds"),
                    target,
                )
                .unwrap(),
                recovered: GaugeVec::new(
                    opts("mailpulse_incident_recovered_timestamp_seconds"),
                    target,
                )
                .unwrap(),
                reg,
            };
            oracle
                .reg
                .register(Box::new(oracle.degraded.clone()))
                .unwrap();
            oracle.reg.register(Box::new(oracle.down.clone())).unwrap();
            oracle
                .reg
                .register(Box::new(oracle.incidents.clone()))
                .unwrap();
            oracle.reg.register(Box::new(oracle.last.clone())).unwrap();
            oracle
                .reg
                .register(Box::new(oracle.closed.clone()))
                .unwrap();
            oracle
                .reg
                .register(Box::new(oracle.closed_seconds.clone()))
                .unwrap();
            oracle
                .reg
                .register(Box::new(oracle.baseline.clone()))
                .unwrap();
            for g in [&oracle.started, &oracle.recovered] {
                oracle.reg.register(Box::new(g.clone())).unwrap();
            }
            oracle
        }

        fn text(&self) -> String {
            let mut out = Vec::new();
            text::encode(&self.reg.gather(), &mut out);
            String::from_utf8(out).unwrap()
        }
    }

    fn ours(m: &DetectMetrics) -> String {
        let mut out = Vec::new();
        for name in DetectMetrics::names() {
            m.encode(name, crate::metrics::Format::Text, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    fn incident(kind: IncidentKind, seconds: Option<i64>) -> Incident {
        let start = chrono::DateTime::UNIX_EPOCH;
        let end = seconds.map(|s| start + chrono::Duration::seconds(s));
        serde_json::from_value(serde_json::json!({
            "kind": kind,
            "started_at": start,
            "detected_at": start,
            "recovered_at": end,
            "closed_at": end,
            "peak_latency": null,
            "baseline_at_onset": null,
            "worst_phase": null,
            "slow_count": 0,
            "failed_count": 0,
        }))
        .unwrap()
    }

    #[test]
    fn writes_what_the_registry_wrote() {
        let oracle = Oracle::new();
        let reg = Registry::new();
        let m = DetectMetrics::register(&reg).unwrap();
        for t in ["owa", "ews \"2\"", "a-imap"] {
            m.add_target(t);
            for kind in KINDS {
                oracle.incidents.with_label_values(&[t, kind.as_str()]);
                oracle.closed.with_label_values(&[t, kind.as_str()]);
                oracle.closed_seconds.with_label_values(&[t, kind.as_str()]);
            }
        }
        // The open incidents' onsets, seconds after the epoch, to the millisecond.
        let states = [
            ("owa", State::Degraded, Some(0.184), Some(1_700_000_000_250)),
            ("ews \"2\"", State::Down, None, Some(1_700_000_100_000)),
            ("a-imap", State::Healthy, Some(0.0095), None),
            ("zimbra", State::Healthy, Some(1.5), None),
        ];
        for (t, state, baseline, open_since) in states {
            let open_since =
                open_since.map(|ms| chrono::DateTime::from_timestamp_millis(ms).unwrap());
            m.record_state(t, state, baseline.map(Duration::from_secs_f64), open_since);
            if let Some(at) = open_since {
                let at = at.timestamp_millis() as f64 / 1000.0;
                oracle.started.with_label_values(&[t]).set(at);
                oracle.recovered.with_label_values(&[t]).set(0.0);
            }
            let (degraded, down) = match state {
                State::Healthy => (0, 0),
                State::Degraded => (1, 0),
                State::Down => (1, 1),
            };
            oracle.degraded.with_label_values(&[t]).set(degraded);
            oracle.down.with_label_values(&[t]).set(down);
            if let Some(b) = baseline {
                oracle.baseline.with_label_values(&[t]).set(b);
            }
        }
        let events = [
            (
                "owa",
                DetectEvent::Opened(incident(IncidentKind::Slow, None)),
            ),
            (
                "ews \"2\"",
                DetectEvent::Opened(incident(IncidentKind::Slow, None)),
            ),
            (
                "ews \"2\"",
                DetectEvent::Escalated(incident(IncidentKind::Down, None)),
            ),
            (
                "a-imap",
                DetectEvent::Closed(incident(IncidentKind::Slow, Some(610))),
            ),
            (
                "zimbra",
                DetectEvent::Opened(incident(IncidentKind::Down, None)),
            ),
        ];
        for (t, event) in &events {
            m.record_event(t, event);
            match event {
                DetectEvent::Opened(i) => oracle
                    .incidents
                    .with_label_values(&[t, i.kind.as_str()])
                    .inc(),
                DetectEvent::Escalated(_) => oracle.incidents.with_label_values(&[t, "down"]).inc(),
                DetectEvent::Closed(i) => {
                    let d = i.duration_seconds().unwrap();
                    // The latest incident's onset and recovery, for the bands.
                    oracle.started.with_label_values(&[t]).set(0.0);
                    oracle.recovered.with_label_values(&[t]).set(d);
                    oracle.last.with_label_values(&[t]).set(d);
                    oracle.closed.with_label_values(&[t, i.kind.as_str()]).inc();
                    oracle
                        .closed_seconds
                        .with_label_values(&[t, i.kind.as_str()])
                        .inc_by(d);
                }
            }
        }
        assert_eq!(ours(&m), oracle.text());
        // The closed incident's duration went to the registry's histogram,
        // labelled by its target and the kind it ended as.
        let families = reg.gather();
        let histogram = families
            .iter()
            .find(|f| f.name() == "mailpulse_incident_duration_seconds")
            .expect("the incident duration histogram");
        let series: Vec<Vec<(&str, &str)>> = histogram
            .get_metric()
            .iter()
            .map(|m| {
                m.get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect()
            })
            .collect();
        assert_eq!(series, [vec![("kind", "slow"), ("target", "a-imap")]]);
        let h = histogram.get_metric()[0].get_histogram();
        assert_eq!((h.get_sample_count(), h.get_sample_sum()), (1, 610.0));
        // 610 s falls in the 15 min bucket, not the 5 min one.
        let counts: Vec<(f64, u64)> = h
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        assert_eq!(
            counts,
            [
                (60.0, 0),
                (300.0, 0),
                (900.0, 1),
                (3600.0, 1),
                (14400.0, 1),
                (86400.0, 1)
            ]
        );

        // A baseline that is no longer known disappears; a removed target's series too.
        m.record_state("owa", State::Healthy, None, None);
        let _ = oracle.baseline.remove_label_values(&["owa"]);
        oracle.degraded.with_label_values(&["owa"]).set(0);
        m.remove_target("ews \"2\"");
        for v in [&oracle.degraded, &oracle.down] {
            let _ = v.remove_label_values(&["ews \"2\""]);
        }
        for v in [&oracle.started, &oracle.recovered] {
            let _ = v.remove_label_values(&["ews \"2\""]);
        }
        for kind in KINDS {
            for v in [&oracle.incidents, &oracle.closed] {
                let _ = v.remove_label_values(&["ews \"2\"", kind.as_str()]);
            }
            let _ = oracle
                .closed_seconds
                .remove_label_values(&["ews \"2\"", kind.as_str()]);
        }
        assert_eq!(ours(&m), oracle.text());
    }

    #[test]
    fn kind_slots_follow_the_label_order() {
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(kind_slot(*k), i);
        }
        assert!(KINDS.windows(2).all(|w| w[0].as_str() < w[1].as_str()));
    }
}
