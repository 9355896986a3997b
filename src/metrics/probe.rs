//! Probe metric families and how a [`Sample`] is recorded into them.

use prometheus::{HistogramOpts, Registry};

use super::histogram::PhaseHistograms;
use super::register;
use super::targets::TargetFamilies;
use crate::config::DEFAULT_LATENCY_BUCKETS;
use crate::sample::{FailureReason, ProbeKind, Sample};

/// Families fed by probe results.
pub struct ProbeMetrics {
    /// `mailpulse_probe_duration_seconds`: outside the registry, written by
    /// [`super::Metrics::encode`] (see [`super::histogram`] for why).
    pub(crate) duration: PhaseHistograms,
    /// The other per-target families, outside the registry too (see
    /// [`super::targets`]).
    pub(crate) targets: TargetFamilies,
    schedule_lag: prometheus::Histogram,
}

impl ProbeMetrics {
    /// Registers the probe families on `reg`.
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        Ok(ProbeMetrics {
            duration: PhaseHistograms::new(
                "mailpulse_probe_duration_seconds",
                "Duration of each phase of successful probes.",
                DEFAULT_LATENCY_BUCKETS,
                false,
            ),
            targets: TargetFamilies::new(),
            schedule_lag: register(
                reg,
                prometheus::Histogram::with_opts(
                    HistogramOpts::new(
                        "mailpulse_probe_schedule_lag_seconds",
                        "How late each probe started against its schedule.",
                    )
                    .buckets(vec![
                        0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                        1.0, 5.0,
                    ]),
                )?,
            )?,
        })
    }

    /// Sets the latency histograms' classic buckets and whether every phase
    /// has one (`[agent] latency_buckets`, `phase_histograms`).
    pub fn configure_histograms(&self, bounds: &[f64], all_phases: bool) {
        self.duration.configure(bounds, all_phases);
    }

    /// Records one probe result.
    pub fn record(&self, s: &Sample) {
        self.targets.record(s);
        if s.success() {
            self.duration.observe(&s.target, s.kind, &s.phases);
        }
        self.schedule_lag.observe(s.schedule_lag.as_secs_f64());
    }

    /// Creates a configured target's failure counters at zero, one per
    /// reason in `reasons` (those it can meet: `probe::failure_reasons`),
    /// so that `rate()` and `increase()` see its first failure.
    pub fn add_target(&self, target: &str, kind: ProbeKind, reasons: &[FailureReason]) {
        self.targets.add_target(target, kind, reasons);
    }

    /// Removes every series of a target that is no longer configured.
    pub fn remove_target(&self, target: &str) {
        self.targets.remove_target(target);
        self.duration.remove_target(target);
    }
}
