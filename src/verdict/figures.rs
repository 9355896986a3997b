//! What a report knows of one server's phase, however it was measured: the
//! figures an agent kept itself ([`TargetStats`], exact sketches) or those
//! a fleet report read from Prometheus ([`QueriedTarget`], percentiles
//! already computed from histograms). The report asks both the same
//! questions (probes, success, a step's quantile, the slowest step, the
//! timeline) and states each [`Source`]'s error. Pure.

use std::collections::BTreeMap;

use serde::Serialize;

use super::stats::{HostPeaks, PhaseStats, Point, TargetStats};
use super::Percentiles;
use crate::sample::Phase;

/// One server's phase: its targets and its host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhaseFigures {
    /// By target name.
    pub targets: BTreeMap<String, TargetFigures>,
    /// The host's load over the phase.
    pub host: HostPeaks,
}

impl From<PhaseStats> for PhaseFigures {
    fn from(p: PhaseStats) -> PhaseFigures {
        PhaseFigures {
            targets: p
                .targets
                .into_iter()
                .map(|(k, t)| (k, TargetFigures::Kept(t)))
                .collect(),
            host: p.host,
        }
    }
}

/// Where a percentile comes from, and so how far it may be off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The agent's own sketch of every probe.
    Sketch,
    /// Prometheus's native histograms (schema 5).
    NativeHistogram,
    /// Prometheus's classic buckets (`[agent] latency_buckets`).
    ClassicBuckets,
    /// The per-step gauges of the latest probe, as Prometheus sampled them.
    SampledGauges,
}

impl Source {
    /// The error statement a report carries for it.
    pub fn statement(self) -> &'static str {
        match self {
            Source::Sketch => "percentiles from the agents' own sketches, within 0.5% of exact",
            Source::NativeHistogram => {
                "percentiles from Prometheus native histograms (schema 5), within 2.2% \
                 (one bucket's width)"
            }
            Source::ClassicBuckets => {
                "percentiles from Prometheus classic buckets ([agent] latency_buckets), \
                 error up to the width of the bucket each falls in"
            }
            Source::SampledGauges => {
                "step percentiles from the last-probe step gauges as Prometheus sampled them \
                 (no step histograms: [agent] phase_histograms is off), approximate"
            }
        }
    }
}

/// One target in one phase as Prometheus measured it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueriedTarget {
    /// Probes run (successes plus failures).
    pub probes: u64,
    /// Of which succeeded.
    pub ok: u64,
    /// By step (`total`, `first_byte`, ...): quantiles by whole per cent
    /// (50, 95, 99, and those the objectives ask for), seconds.
    pub quantiles: BTreeMap<String, BTreeMap<u8, f64>>,
    /// By step: where its quantiles come from.
    pub sources: BTreeMap<String, Source>,
    /// The latency over the phase, coarse.
    pub points: Vec<Point>,
}

/// The key of quantile `q` (0.95 is 95).
pub fn percent_key(q: f64) -> u8 {
    (q * 100.0).round().clamp(0.0, 100.0) as u8
}

/// A target's figures in a phase.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetFigures {
    /// Kept by the agent (`verdict::stats`).
    Kept(TargetStats),
    /// Read from Prometheus.
    Queried(QueriedTarget),
}

impl TargetFigures {
    /// Probes run.
    pub fn probes(&self) -> u64 {
        match self {
            TargetFigures::Kept(t) => t.probes,
            TargetFigures::Queried(q) => q.probes,
        }
    }

    /// Successful probes in percent; `None` without probes.
    pub fn success_percent(&self) -> Option<f64> {
        match self {
            TargetFigures::Kept(t) => t.success_percent(),
            TargetFigures::Queried(q) => {
                (q.probes > 0).then(|| q.ok as f64 * 100.0 / q.probes as f64)
            }
        }
    }

    /// The `q` quantile of `step` (`total` for the whole probe), seconds.
    pub fn quantile(&self, step: &str, q: f64) -> Option<f64> {
        match self {
            TargetFigures::Kept(t) => t.step(step)?.quantile(q),
            TargetFigures::Queried(t) => t
                .quantiles
                .get(step)?
                .get(&percent_key(q))
                .copied()
                .filter(|v| v.is_finite()),
        }
    }

    /// p50, p95 and p99 of `step`.
    pub fn percentiles(&self, step: &str) -> Option<Percentiles> {
        Some(Percentiles {
            p50: self.quantile(step, 0.50)?,
            p95: self.quantile(step, 0.95)?,
            p99: self.quantile(step, 0.99)?,
        })
    }

    /// The step other than the total with the highest p95.
    pub fn slowest_step(&self) -> Option<String> {
        match self {
            TargetFigures::Kept(t) => t.slowest_step().map(|(k, _)| k.to_string()),
            TargetFigures::Queried(q) => q
                .quantiles
                .keys()
                .filter(|k| k.as_str() != Phase::Total.as_str())
                .filter_map(|k| self.quantile(k, 0.95).map(|p| (k, p)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| k.clone()),
        }
    }

    /// Where the quantiles of `step` come from.
    pub fn source(&self, step: &str) -> Option<Source> {
        match self {
            TargetFigures::Kept(_) => Some(Source::Sketch),
            TargetFigures::Queried(q) => q.sources.get(step).copied(),
        }
    }

    /// The latency over the phase.
    pub fn points(&self) -> &[Point] {
        match self {
            TargetFigures::Kept(t) => &t.timeline.points,
            TargetFigures::Queried(q) => &q.points,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queried_figures_answer_as_kept_ones_do() {
        let mut q = QueriedTarget {
            probes: 40,
            ok: 38,
            ..QueriedTarget::default()
        };
        for (step, base) in [("total", 0.2), ("connect", 0.01), ("first_byte", 0.15)] {
            q.quantiles.insert(
                step.into(),
                [(50, base), (95, base * 2.0), (99, base * 3.0)].into(),
            );
            q.sources.insert(step.into(), Source::NativeHistogram);
        }
        let t = TargetFigures::Queried(q);
        assert_eq!(t.probes(), 40);
        assert_eq!(t.success_percent(), Some(95.0));
        assert_eq!(t.quantile("total", 0.95), Some(0.4));
        assert_eq!(t.quantile("total", 0.90), None);
        assert_eq!(t.slowest_step().as_deref(), Some("first_byte"));
        assert_eq!(t.percentiles("connect").unwrap().p99, 0.03);
        assert_eq!(t.source("total"), Some(Source::NativeHistogram));
        assert_eq!(percent_key(0.95), 95);
    }
}
