//! What an agent keeps of one soak phase so that its report needs nothing
//! else: per target the probes, the successes, a [`Sketch`] of the total
//! latency and one per step, and a coarse latency timeline; for the host the
//! peaks (CPU, pressure, load, TCP established) and the lowest available
//! memory. Bounded: a sketch is at most 16 KiB, a timeline at most
//! [`TIMELINE_POINTS`] points, and a target has at most one sketch per step
//! its probe kind has.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sample::host::{HostSnapshot, TcpState};
use crate::sample::{Phase, Sample};
use crate::sketch::Sketch;

/// The most points a target's timeline keeps in a phase; past that,
/// neighbouring points merge and each point covers twice the time.
pub const TIMELINE_POINTS: usize = 240;

/// The first width of a timeline point, seconds.
const FIRST_WIDTH: i64 = 15;

/// One phase of one agent: its targets and its host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseStats {
    /// By target name.
    pub targets: BTreeMap<String, TargetStats>,
    /// The host's load over the phase.
    pub host: HostPeaks,
}

impl PhaseStats {
    /// Counts one probe result.
    pub fn observe(&mut self, s: &Sample) {
        let t = self.targets.entry(s.target.clone()).or_default();
        t.probes += 1;
        let total = s.phase(Phase::Total);
        if s.success() {
            t.ok += 1;
            if let Some(d) = total {
                t.total.add(d.as_secs_f64());
            }
            for (phase, d) in &s.phases {
                if *phase != Phase::Total {
                    t.steps
                        .entry(phase.as_str().to_string())
                        .or_default()
                        .add(d.as_secs_f64());
                }
            }
        }
        t.timeline.add(
            s.started_at,
            total.filter(|_| s.success()).map(|d| d.as_secs_f64()),
        );
    }

    /// Takes the host's load from one snapshot.
    pub fn observe_host(&mut self, h: &HostSnapshot) {
        self.host.observe(h);
    }

    /// Bytes kept beyond the structures' own sizes (sketch bins, timelines,
    /// names): what a phase costs an agent.
    pub fn heap_bytes(&self) -> usize {
        self.targets
            .iter()
            .map(|(name, t)| {
                name.capacity()
                    + t.total.heap_bytes()
                    + t.steps
                        .iter()
                        .map(|(k, s)| k.capacity() + s.heap_bytes() + std::mem::size_of::<Sketch>())
                        .sum::<usize>()
                    + t.timeline.points.capacity() * std::mem::size_of::<Point>()
                    + std::mem::size_of::<TargetStats>()
            })
            .sum()
    }
}

/// One target in one phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetStats {
    /// Probes run.
    pub probes: u64,
    /// Of which succeeded.
    pub ok: u64,
    /// Total latency of the successful probes, seconds.
    pub total: Sketch,
    /// Each step's latency of the successful probes, by step name.
    pub steps: BTreeMap<String, Sketch>,
    /// The latency over time, coarse.
    pub timeline: Timeline,
}

impl TargetStats {
    /// The share of successful probes in percent, computed in one division
    /// (see `config::slo::Objective::Success`); `None` without probes.
    pub fn success_percent(&self) -> Option<f64> {
        (self.probes > 0).then(|| self.ok as f64 * 100.0 / self.probes as f64)
    }

    /// The sketch of a step (`total` for the whole probe).
    pub fn step(&self, step: &str) -> Option<&Sketch> {
        if step == Phase::Total.as_str() {
            Some(&self.total)
        } else {
            self.steps.get(step)
        }
    }

    /// The step with the highest p95, other than the total.
    pub fn slowest_step(&self) -> Option<(&str, &Sketch)> {
        self.steps
            .iter()
            .filter_map(|(k, s)| s.quantile(0.95).map(|p| (k.as_str(), s, p)))
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .map(|(k, s, _)| (k, s))
    }
}

/// A latency timeline in points of equal width (seconds), each the mean
/// and the worst of the successful probes that started in it, and the
/// failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Width of a point, seconds; doubles when the points would pass
    /// [`TIMELINE_POINTS`].
    pub width: i64,
    /// The points, in time order (empty ones left out).
    pub points: Vec<Point>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            width: FIRST_WIDTH,
            points: Vec::new(),
        }
    }
}

/// One point of a [`Timeline`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Start of the point, Unix seconds, a multiple of the width.
    pub at: i64,
    /// Successful probes in it.
    pub ok: u32,
    /// Failed probes in it.
    pub failed: u32,
    /// Sum of the successful probes' latency, seconds.
    pub sum: f64,
    /// The highest latency, seconds.
    pub max: f64,
}

impl Point {
    /// Mean latency of the successful probes; `None` when all failed.
    pub fn mean(&self) -> Option<f64> {
        (self.ok > 0).then(|| self.sum / f64::from(self.ok))
    }
}

impl Timeline {
    /// Counts a probe that started at `at`: its latency, or `None` for a failure.
    pub fn add(&mut self, at: DateTime<Utc>, latency: Option<f64>) {
        let slot = at.timestamp().div_euclid(self.width) * self.width;
        let point = match self.points.last_mut() {
            Some(p) if p.at == slot => p,
            // Out of order: rare; fold into the point it belongs to, if kept.
            Some(p) if p.at > slot => match self.points.iter_mut().find(|p| p.at == slot) {
                Some(p) => p,
                None => return,
            },
            _ => {
                if self.points.len() == TIMELINE_POINTS {
                    self.coarsen();
                    return self.add(at, latency);
                }
                self.points.push(Point {
                    at: slot,
                    ok: 0,
                    failed: 0,
                    sum: 0.0,
                    max: 0.0,
                });
                self.points.last_mut().expect("just pushed")
            }
        };
        match latency {
            Some(v) => {
                point.ok += 1;
                point.sum += v;
                point.max = point.max.max(v);
            }
            None => point.failed += 1,
        }
    }

    /// Doubles the width, merging the points that now share a slot.
    fn coarsen(&mut self) {
        self.width *= 2;
        let mut merged: Vec<Point> = Vec::with_capacity(TIMELINE_POINTS);
        for p in self.points.drain(..) {
            let at = p.at.div_euclid(self.width) * self.width;
            match merged.last_mut() {
                Some(m) if m.at == at => {
                    m.ok += p.ok;
                    m.failed += p.failed;
                    m.sum += p.sum;
                    m.max = m.max.max(p.max);
                }
                _ => merged.push(Point { at, ..p }),
            }
        }
        self.points = merged;
    }
}

/// The host's load over a phase: peaks, and the lowest available memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostPeaks {
    /// Snapshots taken.
    pub snapshots: u64,
    /// Highest CPU use, 0 to 1.
    pub cpu_peak: Option<f64>,
    /// Lowest available memory, bytes.
    pub memory_available_min: Option<u64>,
    /// Highest 10-second CPU pressure (`some`), 0 to 1.
    pub psi_cpu_peak: Option<f64>,
    /// Highest 10-second memory pressure (`some`), 0 to 1.
    pub psi_memory_peak: Option<f64>,
    /// Highest 10-second I/O pressure (`some`), 0 to 1.
    pub psi_io_peak: Option<f64>,
    /// Highest 1-minute load average.
    pub load1_peak: Option<f64>,
    /// Most established TCP connections.
    pub tcp_established_peak: Option<u64>,
}

fn peak<T: PartialOrd + Copy>(slot: &mut Option<T>, v: T) {
    if slot.is_none_or(|p| v > p) {
        *slot = Some(v);
    }
}

impl HostPeaks {
    /// Takes one snapshot's figures.
    pub fn observe(&mut self, h: &HostSnapshot) {
        self.snapshots += 1;
        if let Some(cpu) = &h.cpu {
            peak(&mut self.cpu_peak, cpu.usage_ratio);
        }
        if let Some(m) = &h.memory {
            if self
                .memory_available_min
                .is_none_or(|v| m.available_bytes < v)
            {
                self.memory_available_min = Some(m.available_bytes);
            }
        }
        if let Some(p) = &h.pressure {
            for (slot, r) in [
                (&mut self.psi_cpu_peak, &p.cpu),
                (&mut self.psi_memory_peak, &p.memory),
                (&mut self.psi_io_peak, &p.io),
            ] {
                if let Some(r) = r {
                    peak(slot, r.some.avg10_ratio);
                }
            }
        }
        if let Some(l) = &h.load {
            peak(&mut self.load1_peak, l.load1);
        }
        if let Some(t) = &h.tcp {
            peak(&mut self.tcp_established_peak, t.get(TcpState::Established));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// A probe of `target` started at `at` (Unix seconds) that took
    /// `total_ms` (a quarter connecting, half waiting for the first byte),
    /// or failed.
    pub(crate) fn sample(target: &str, at: i64, total_ms: Option<u64>) -> Sample {
        let wall = DateTime::from_timestamp(at, 0).unwrap();
        let mut s = Sample::http_ok(wall, wall, total_ms.unwrap_or(0));
        s.target = target.into();
        match total_ms {
            Some(ms) => {
                s.phases = vec![
                    (Phase::Connect, Duration::from_millis(ms / 4)),
                    (Phase::FirstByte, Duration::from_millis(ms / 2)),
                    (Phase::Total, Duration::from_millis(ms)),
                ]
            }
            None => {
                s.phases = vec![];
                s.failure = Some(crate::sample::Failure {
                    reason: crate::sample::FailureReason::Timeout,
                    phase: Phase::FirstByte,
                    message: "timed out".into(),
                });
            }
        }
        s
    }

    #[test]
    fn a_phase_counts_probes_successes_and_step_percentiles() {
        let mut p = PhaseStats::default();
        for k in 0..100 {
            p.observe(&sample("owa", 1_000 + k * 10, Some(100 + k as u64)));
        }
        p.observe(&sample("owa", 2_000, None));
        let t = &p.targets["owa"];
        assert_eq!((t.probes, t.ok), (101, 100));
        assert!((t.success_percent().unwrap() - 100.0 * 100.0 / 101.0).abs() < 1e-12);
        let p95 = t.total.quantile(0.95).unwrap();
        assert!((p95 - 0.194).abs() <= 0.194 * 0.005, "{p95}");
        let (slowest, s) = t.slowest_step().unwrap();
        assert_eq!(slowest, "first_byte");
        assert!((s.quantile(0.5).unwrap() - 0.0745).abs() < 0.001);
        assert!(t.step("total").is_some() && t.step("tls").is_none());
    }

    #[test]
    fn a_timeline_stays_bounded_and_keeps_the_worst() {
        let mut tl = Timeline::default();
        // A day of probes every 10 s: 8,640 probes.
        for k in 0..8_640i64 {
            let at = DateTime::from_timestamp(k * 10, 0).unwrap();
            let v = if k == 5_000 { Some(9.0) } else { Some(0.1) };
            tl.add(at, v);
        }
        assert!(tl.points.len() <= TIMELINE_POINTS, "{}", tl.points.len());
        assert_eq!(tl.points.iter().map(|p| p.ok).sum::<u32>(), 8_640);
        assert_eq!(tl.points.iter().map(|p| p.max).fold(0.0, f64::max), 9.0);
        assert!(tl.points.windows(2).all(|w| w[0].at < w[1].at));
    }
}
