//! Detection metric families: each target's state and baseline, and the
//! incidents it had. Records what the detector decided; decides nothing.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::register;
use crate::detect::{DetectEvent, IncidentKind, State};

/// Buckets for incident durations, 30 s to a day.
const INCIDENT_BUCKETS: &[f64] = &[
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];

/// Families fed by the detector.
#[derive(Clone)]
pub struct DetectMetrics {
    degraded: IntGaugeVec,
    down: IntGaugeVec,
    incidents: IntCounterVec,
    duration: HistogramVec,
    last_duration: GaugeVec,
    baseline: GaugeVec,
}

impl DetectMetrics {
    /// Registers the detection families on `reg`.
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        Ok(DetectMetrics {
            degraded: register(
                reg,
                IntGaugeVec::new(
                    Opts::new(
                        "mailpulse_target_degraded",
                        "1 while the target has an open incident (slow or down).",
                    ),
                    &["target"],
                )?,
            )?,
            down: register(
                reg,
                IntGaugeVec::new(
                    Opts::new("mailpulse_target_down", "1 while the target has an open down incident."),
                    &["target"],
                )?,
            )?,
            incidents: register(
                reg,
                IntCounterVec::new(
                    Opts::new("mailpulse_incidents_total", "Incidents opened, by kind (slow or down)."),
                    &["target", "kind"],
                )?,
            )?,
            duration: register(
                reg,
                HistogramVec::new(
                    HistogramOpts::new(
                        "mailpulse_incident_duration_seconds",
                        "Duration of closed incidents, from the first bad sample to the first healthy one.",
                    )
                    .buckets(INCIDENT_BUCKETS.to_vec()),
                    &["target", "kind"],
                )?,
            )?,
            last_duration: register(
                reg,
                GaugeVec::new(
                    Opts::new(
                        "mailpulse_last_incident_duration_seconds",
                        "Duration of the target's most recent closed incident.",
                    ),
                    &["target"],
                )?,
            )?,
            baseline: register(
                reg,
                GaugeVec::new(
                    Opts::new(
                        "mailpulse_target_baseline_seconds",
                        "The latency the detector learned as normal for the target.",
                    ),
                    &["target"],
                )?,
            )?,
        })
    }

    /// Sets the target's state and baseline after an observation.
    pub fn record_state(&self, target: &str, state: State, baseline: Option<std::time::Duration>) {
        let (degraded, down) = match state {
            State::Healthy => (0, 0),
            State::Degraded => (1, 0),
            State::Down => (1, 1),
        };
        self.degraded.with_label_values(&[target]).set(degraded);
        self.down.with_label_values(&[target]).set(down);
        match baseline {
            Some(b) => self
                .baseline
                .with_label_values(&[target])
                .set(b.as_secs_f64()),
            None => {
                let _ = self.baseline.remove_label_values(&[target]);
            }
        }
    }

    /// Counts an event: an opened incident, or a closed one's duration.
    pub fn record_event(&self, target: &str, event: &DetectEvent) {
        match event {
            DetectEvent::Opened(i) => {
                self.incidents
                    .with_label_values(&[target, i.kind.as_str()])
                    .inc();
            }
            // A slow incident that turned into a down one counts as a down incident too.
            DetectEvent::Escalated(_) => {
                self.incidents
                    .with_label_values(&[target, IncidentKind::Down.as_str()])
                    .inc();
            }
            DetectEvent::Closed(i) => {
                if let Some(d) = i.duration_seconds() {
                    self.duration
                        .with_label_values(&[target, i.kind.as_str()])
                        .observe(d);
                    self.last_duration.with_label_values(&[target]).set(d);
                }
            }
        }
    }

    /// Creates a configured target's incident counters at zero, so that
    /// `increase()` sees its first incident.
    pub fn add_target(&self, target: &str) {
        for kind in [IncidentKind::Slow, IncidentKind::Down] {
            self.incidents.with_label_values(&[target, kind.as_str()]);
        }
    }

    /// Removes every series of a target that is no longer configured.
    pub fn remove_target(&self, target: &str) {
        let _ = self.degraded.remove_label_values(&[target]);
        let _ = self.down.remove_label_values(&[target]);
        let _ = self.last_duration.remove_label_values(&[target]);
        let _ = self.baseline.remove_label_values(&[target]);
        for kind in [IncidentKind::Slow, IncidentKind::Down] {
            let _ = self.incidents.remove_label_values(&[target, kind.as_str()]);
            let _ = self.duration.remove_label_values(&[target, kind.as_str()]);
        }
    }
}
