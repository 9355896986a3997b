//! The learned latency baseline of one target: a robust, slowly moving
//! estimate of its typical (median-like) latency.
//!
//! It owns only the arithmetic: the detector decides which samples it may
//! learn from (healthy ones, outside incidents and pending runs) and how fast
//! it moves (from the sampling cadence). It does no IO and reads no clock.
//!
//! # Algorithm
//!
//! Latency is heavy-tailed and multiplicative (a slow backend doubles it, it
//! does not add 100 ms), so the baseline works on `ln(latency)`:
//!
//! 1. Warm-up: the first [`WARMUP_SAMPLES`] learned samples are kept and the
//!    baseline starts as their median, so a cold-cache first probe or a
//!    connection-setup outlier cannot skew it.
//! 2. After that it is an exponentially weighted moving average of
//!    `ln(latency)` (a geometric mean, which equals the median of a
//!    log-normal latency), updated with a weight `alpha` that the detector
//!    derives from a time constant, so it forgets at the same *time* scale
//!    whether probes come every second or every hour. Early on the weight is
//!    at least `1/n` (an equal-weight mean of everything seen), which removes
//!    the start-up bias of a plain EWMA.
//! 3. Each update is clamped to a factor of [`MAX_STEP_FACTOR`] around the
//!    current value. Samples above `factor x baseline` never reach it (they
//!    are slow), but with a tiny baseline `min_delta` lets samples many times
//!    the baseline count as healthy; the clamp keeps those, and unusually
//!    fast answers (an error page, a cache hit), from yanking it around.
//!
//! Compared to a rolling median this needs O(1) state (it is persisted with
//! the detector) and follows slow drift smoothly, while the clamp and the
//! healthy-only rule give it the robustness a median would have.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Healthy samples needed before the baseline exists and relative slowness
/// can be judged. Ten samples is enough for a median to shrug off two or three
/// outliers; at 1 s probes that is ten seconds, with hourly data ten hours.
pub const WARMUP_SAMPLES: usize = 10;

/// One update moves the baseline by at most this factor (up or down).
pub const MAX_STEP_FACTOR: f64 = 2.0;

/// Latencies are floored here before taking the logarithm, so a recorded
/// `0` (a dependency that was not called) stays finite.
pub const LATENCY_FLOOR: Duration = Duration::from_micros(1);

/// The log-space level is kept in fixed point with this many steps per unit
/// (1e-12, far below any meaningful change), so that the persisted state is
/// integers only and a restored detector is bit-for-bit the saved one (JSON
/// floats do not always survive a round trip exactly).
const LEVEL_SCALE: f64 = 1e12;

/// A robust moving estimate of typical latency in log space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The warm-up samples in nanoseconds, until there are enough.
    warmup: Vec<u64>,
    /// `ln(seconds) * LEVEL_SCALE` of the current baseline, once warmed up.
    level: Option<i64>,
    /// How many samples were learned in total.
    learned: u64,
}

impl Baseline {
    /// Learns from one healthy latency; `alpha` in `(0, 1]` is the weight of
    /// a new sample once the baseline has seen more than `1/alpha` samples.
    pub fn learn(&mut self, latency: Duration, alpha: f64) {
        let latency = latency.max(LATENCY_FLOOR);
        self.learned += 1;
        match self.level {
            None => {
                self.warmup
                    .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
                if self.warmup.len() >= WARMUP_SAMPLES {
                    let mut logs: Vec<f64> =
                        self.warmup.iter().map(|&n| (n as f64 / 1e9).ln()).collect();
                    self.level = Some(to_fixed(median(&mut logs)));
                    self.warmup = Vec::new();
                }
            }
            Some(level) => {
                let level = level as f64 / LEVEL_SCALE;
                let x = latency.as_secs_f64().ln();
                let weight = alpha.max(1.0 / self.learned as f64).min(1.0);
                let step = MAX_STEP_FACTOR.ln();
                self.level = Some(to_fixed(level + weight * (x - level).clamp(-step, step)));
            }
        }
    }

    /// The baseline, once warmed up.
    pub fn value(&self) -> Option<Duration> {
        // Rounded to the nanosecond, so a constant latency gives itself back.
        self.level
            .map(|l| Duration::from_nanos(((l as f64 / LEVEL_SCALE).exp() * 1e9).round() as u64))
    }

    /// How many samples were learned in total (warm-up included).
    pub fn learned(&self) -> u64 {
        self.learned
    }
}

/// A log-space level in fixed point.
fn to_fixed(level: f64) -> i64 {
    (level * LEVEL_SCALE).round() as i64
}

/// The median of a non-empty slice (the lower middle for even lengths would
/// bias low; the mean of both middles is used).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn warms_up_to_the_median_ignoring_outliers() {
        let mut b = Baseline::default();
        for v in [2000, 180, 170, 190, 185, 175, 5, 180, 182, 178] {
            assert_eq!(b.value(), None);
            b.learn(ms(v), 0.01);
        }
        let got = b.value().unwrap().as_secs_f64();
        assert!((got - 0.1805).abs() < 0.002, "{got}");
    }

    #[test]
    fn updates_are_clamped() {
        let mut b = Baseline::default();
        for _ in 0..WARMUP_SAMPLES {
            b.learn(ms(10), 0.5);
        }
        b.learn(ms(10_000), 1.0);
        let got = b.value().unwrap().as_secs_f64();
        assert!((got - 0.020).abs() < 1e-9, "{got}");
    }

    #[test]
    fn zero_latency_stays_finite() {
        let mut b = Baseline::default();
        for _ in 0..WARMUP_SAMPLES + 5 {
            b.learn(Duration::ZERO, 0.1);
        }
        let got = b.value().unwrap().as_secs_f64();
        assert!((got - 1e-6).abs() < 1e-9, "{got}");
    }
}
