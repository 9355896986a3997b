//! The probe figures of one change window, as the pipeline gathers them:
//! per covered target the probes inside the window (count, failures and a
//! [`Sketch`] of the successful ones' latencies) and the p95 of the hour
//! before the window, taken once from the status board's latest probes when
//! the target is first seen inside the window. Serializable, so the pipeline
//! saves it (at most a minute apart) and a restart goes on from it.
//!
//! Bounded: one sketch per covered target, about 2 KiB for latencies within
//! one decade and 16 KiB at worst, whatever the window's length.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sketch::Sketch;

/// The figures of one window, by target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowFigures {
    /// Per covered target that probed inside the window.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetFigures>,
}

/// One target's figures inside a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetFigures {
    /// The p95 latency of the successful probes of the hour before the
    /// window, seconds; `None` when none was known.
    pub before_p95_seconds: Option<f64>,
    /// How many successful probes that p95 was taken over.
    pub before_probes: u32,
    /// Probes inside the window.
    pub probes: u64,
    /// Failed probes inside the window.
    pub failures: u64,
    /// Latencies of the successful probes inside the window, seconds.
    pub latency: Sketch,
}

impl TargetFigures {
    /// The p95 latency inside the window, seconds.
    pub fn inside_p95_seconds(&self) -> Option<f64> {
        self.latency.quantile(0.95)
    }
}

impl WindowFigures {
    /// Counts one probe of `target` (its latency when it succeeded).
    /// `before` gives the hour-before p95 and its probe count; it is called
    /// only when the target is first seen in this window.
    pub fn observe(
        &mut self,
        target: &str,
        latency_seconds: Option<f64>,
        before: impl FnOnce() -> (Option<f64>, u32),
    ) {
        let figures = match self.targets.get_mut(target) {
            Some(f) => f,
            None => {
                let (p95, n) = before();
                self.targets
                    .entry(target.to_string())
                    .or_insert(TargetFigures {
                        before_p95_seconds: p95,
                        before_probes: n,
                        ..TargetFigures::default()
                    })
            }
        };
        figures.probes += 1;
        match latency_seconds {
            Some(v) => figures.latency.add(v),
            None => figures.failures += 1,
        }
    }

    /// Memory held beyond the struct itself, bytes (the sketches and names).
    pub fn heap_bytes(&self) -> usize {
        self.targets
            .iter()
            .map(|(k, f)| k.len() + std::mem::size_of::<TargetFigures>() + f.latency.heap_bytes())
            .sum()
    }
}

/// The p95 of `latencies` (nearest rank), `None` when empty. Sorts in place.
pub fn p95(latencies: &mut [f64]) -> Option<f64> {
    if latencies.is_empty() {
        return None;
    }
    latencies.sort_by(f64::total_cmp);
    let rank = ((latencies.len() as f64) * 0.95).ceil() as usize;
    Some(latencies[rank.clamp(1, latencies.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_is_the_nearest_rank() {
        assert_eq!(p95(&mut []), None);
        assert_eq!(p95(&mut [0.3]), Some(0.3));
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(p95(&mut v), Some(95.0));
        let mut v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(p95(&mut v), Some(19.0));
    }

    #[test]
    fn the_hour_before_is_taken_once_and_probes_are_counted() {
        let mut f = WindowFigures::default();
        let mut asked = 0;
        for i in 0..100 {
            let latency = (i % 10 != 0).then_some(0.1 + f64::from(i) / 1000.0);
            f.observe("owa", latency, || {
                asked += 1;
                (Some(0.08), 240)
            });
        }
        assert_eq!(asked, 1);
        let owa = &f.targets["owa"];
        assert_eq!((owa.probes, owa.failures), (100, 10));
        assert_eq!(owa.before_p95_seconds, Some(0.08));
        let inside = owa.inside_p95_seconds().unwrap();
        assert!((inside - 0.194).abs() < 0.003, "{inside}");
        let back: WindowFigures = serde_json::from_slice(&serde_json::to_vec(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert!(f.heap_bytes() < 4096, "{}", f.heap_bytes());
    }
}
