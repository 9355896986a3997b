//! How spiky a target is when nothing is wrong: the background rates of slow
//! and of failed samples that did not become incidents, and from them how
//! many bad samples a run needs before it can be told apart from chance.
//!
//! It owns only this estimate; the detector decides which samples count
//! (those outside incidents, once the baseline is warm, and the samples of a
//! pending run only after the run died without opening an incident). It does
//! no IO and reads no clock.
//!
//! # Why
//!
//! `for` is a duration, and at coarse cadences it covers few samples (at
//! 30 s probes `for = 1m` is three). On a heavy-tailed target one sample in
//! ten can be three times the median on its own; three such samples close
//! together then happen several times a day by chance. Requiring `k` bad
//! samples with `q^k` below [`CHANCE_RUN_PROBABILITY`] (where `q` is the
//! background rate) keeps chance runs rare: a clean target (`q` around 1%)
//! keeps the floor of three, a spiky one (`q` = 10%) needs five. At 1 s
//! probes `for` already needs about sixty samples, so this changes nothing.
//!
//! Failures are counted apart: three failed probes in a row are not chance
//! on a target that rarely fails, however spiky its latency, so a run made
//! mostly of failures is judged against the failure rate alone.

use serde::{Deserialize, Serialize};

/// The background rate is an average over about this many samples.
pub const BACKGROUND_SAMPLES: i64 = 256;

/// A run of bad samples should be at most this likely to be chance, per sample.
pub const CHANCE_RUN_PROBABILITY: f64 = 1e-5;

/// The fewest bad samples a run needs, however clean the target.
pub const MIN_BAD_SAMPLES: u32 = 3;

/// The most bad samples a run needs, however spiky the target: beyond this
/// the target is too noisy for the settings, and waiting longer would only
/// delay real incidents.
pub const MAX_BAD_SAMPLES: u32 = 8;

/// The background rates of slow and of failed samples, in parts per
/// million, kept as integers so the persisted state round-trips exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Background {
    slow_ppm: i64,
    failed_ppm: i64,
}

impl Background {
    /// Counts one sample that did not belong to an incident.
    pub fn record(&mut self, slow: bool, failed: bool) {
        fn update(rate: &mut i64, hit: bool) {
            let x = if hit { 1_000_000 } else { 0 };
            *rate += (x - *rate) / BACKGROUND_SAMPLES;
        }
        update(&mut self.slow_ppm, slow);
        update(&mut self.failed_ppm, failed);
    }

    /// The share of bad (slow or failed) samples, between 0 and 1.
    pub fn rate(&self) -> f64 {
        (self.slow_ppm + self.failed_ppm) as f64 / 1e6
    }

    /// The share of failed samples, between 0 and 1.
    pub fn failure_rate(&self) -> f64 {
        self.failed_ppm as f64 / 1e6
    }

    /// How many bad samples a run needs before it can open an incident;
    /// `mostly_failures` for a run where failures are at least half.
    pub fn required_bad_samples(&self, mostly_failures: bool) -> u32 {
        let q = if mostly_failures {
            self.failure_rate()
        } else {
            self.rate()
        };
        chance_run_length(q, MIN_BAD_SAMPLES, MAX_BAD_SAMPLES)
    }
}

/// How many samples a run of events that each happen with probability `q`
/// needs to be at most [`CHANCE_RUN_PROBABILITY`] likely, within `min..=max`.
pub fn chance_run_length(q: f64, min: u32, max: u32) -> u32 {
    if q <= 0.0 {
        return min;
    }
    if q >= 1.0 {
        return max;
    }
    let k = (CHANCE_RUN_PROBABILITY.ln() / q.ln()).ceil();
    if k >= f64::from(max) {
        return max;
    }
    (k as u32).clamp(min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A background where a share `q` of samples is slow and `f` failed.
    fn at_rate(q: f64, f: f64) -> Background {
        let mut b = Background::default();
        let (mut slow, mut failed) = (0.0, 0.0);
        for _ in 0..20_000 {
            slow += q;
            failed += f;
            let is_slow = slow >= 1.0;
            let is_failed = !is_slow && failed >= 1.0;
            if is_slow {
                slow -= 1.0;
            }
            if is_failed {
                failed -= 1.0;
            }
            b.record(is_slow, is_failed);
        }
        b
    }

    #[test]
    fn required_samples_grow_with_the_background_rate() {
        assert_eq!(Background::default().required_bad_samples(false), 3);
        for (q, k) in [
            (0.0, 3),
            (0.01, 3),
            (0.015, 3),
            (0.05, 4),
            (0.1, 5),
            (0.2, 8),
            (0.6, 8),
        ] {
            let b = at_rate(q, 0.0);
            assert!((b.rate() - q).abs() < 0.01, "{q}: {}", b.rate());
            assert_eq!(b.required_bad_samples(false), k, "rate {q}");
            // Latency spikes say nothing about how often the target fails.
            assert_eq!(b.required_bad_samples(true), 3, "rate {q}");
        }
        let b = at_rate(0.0, 0.1);
        assert_eq!(b.required_bad_samples(true), 5);
        assert_eq!(b.required_bad_samples(false), 5);
    }
}
