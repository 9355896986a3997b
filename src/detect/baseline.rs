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
//!
//! # Rises faster than drift
//!
//! A moving average follows a ramp: a load test that takes latency from
//! 80 ms to 640 ms over an hour keeps every sample under three times the
//! average of the half hour before it, so nothing would ever be slow. The
//! baseline the detector judges by ([`Baseline::value`]) is therefore not the
//! average itself but the average limited to rise at most
//! [`MAX_DRIFT_PER_HOUR`] per hour, the pace of a busy day's drift (an
//! office-hours day that takes latency to 2.5x over twelve hours rises about
//! 1.1x an hour at its steepest). When the average outruns that limit by
//! [`FREEZE_GAP`], or [`FREEZE_SAMPLES`] learned samples in a row are above
//! the baseline while the average rose, the rise is not drift: the baseline falls back to the
//! *anchor*, its value when the last learned sample was at or below it (the
//! level before the rise began), and stays there until the average comes
//! back down to it, or until the rise has held for `thaw_after` (the
//! detector passes `relearn_after`), when it is accepted as the new normal.
//! Falls are followed at once: a faster target is never a false alarm.
//!
//! # The day's reference
//!
//! A rise slower than [`MAX_DRIFT_PER_HOUR`] is followed by the limited
//! average too, and real slowdowns climb that slowly (a back end going from
//! 1.3x to 3x of its usual latency over six hours, an hour at a time). So the
//! judged baseline is also never above the *day's reference*: the median of
//! the geometric means of the last [`REFERENCE_HOURS`] hours of learned
//! samples (an hour's mean is taken when the hour of learning is complete).
//! A median over a day moves only once most of the day was at a new level,
//! so a climb of a few hours is judged against the level before it, while a
//! level that holds for half a day becomes the reference by itself. The
//! reference only lowers the baseline, and it keeps a daily cycle's peaks:
//! it is the two days' median or, if higher, the highest of the three hours
//! of learning around the same time a day earlier, so the average may follow a rise that happened yesterday at this
//! hour too, while a climb that did not is judged against the two days'
//! median. A fall is followed at once by the average.

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

/// The judged baseline rises at most this factor per hour of learning.
pub const MAX_DRIFT_PER_HOUR: f64 = 1.25;

/// When the moving average is this factor above the rate-limited baseline,
/// the rise outpaces drift and the baseline falls back to its anchor.
pub const FREEZE_GAP: f64 = 1.25;

/// A rise also outpaces drift when this many learned samples in a row are
/// above the judged baseline (on a healthy target about half of them are at
/// or below it, so twenty in a row happen about once in a million samples).
pub const FREEZE_SAMPLES: u32 = 20;

/// The reference is the median of this many hourly means of learning.
pub const REFERENCE_HOURS: usize = 48;

/// Hours of learning in a day, for the daily cycle.
const DAY_HOURS: usize = 24;

/// The hours either side of this time a day ago that the reference also
/// accepts as the daily cycle's normal (a busy hour comes a little earlier
/// or later from day to day).
const SEASON_SLACK_HOURS: usize = 1;

/// One hour of learning, in microseconds of the time axis.
const HOUR_US: u64 = 3_600_000_000;

/// A robust moving estimate of typical latency in log space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The warm-up samples in nanoseconds, until there are enough.
    warmup: Vec<u64>,
    /// `ln(seconds) * LEVEL_SCALE` of the moving average, once warmed up.
    level: Option<i64>,
    /// How many samples were learned in total.
    learned: u64,
    /// The judged baseline in the same fixed point: `level` limited to rise
    /// at most [`MAX_DRIFT_PER_HOUR`]; `None` (a state saved before it
    /// existed) means `level`.
    #[serde(default)]
    limited: Option<i64>,
    /// The judged baseline when the last learned sample was at or below it.
    #[serde(default)]
    anchor: Option<i64>,
    /// While frozen at the anchor: microseconds of learning since it froze.
    #[serde(default)]
    frozen_us: Option<u64>,
    /// Samples learned since the last one at or below the judged baseline.
    #[serde(default)]
    rising: u32,
    /// The last [`REFERENCE_HOURS`] hours of learning.
    #[serde(default)]
    hours: Hours,
}

/// Hourly means of log-latency, the newest last.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Hours {
    /// The means of the complete hours (fixed point, oldest first).
    means: Vec<i64>,
    /// The current hour's running mean (fixed point), its samples, and the
    /// microseconds it spans so far.
    mean: i64,
    samples: u32,
    us: u64,
    /// The reference the complete hours give ([`Baseline::reference`]), kept so
    /// that judging a sample does not sort the hours again: it changes only
    /// when an hour completes.
    #[serde(default)]
    reference: Option<i64>,
}

impl Hours {
    /// Adds a sample `x` (fixed point) `elapsed` after the previous one,
    /// keeping at most `keep` complete hours.
    fn add(&mut self, x: i64, elapsed: Duration, keep: usize) {
        self.samples = self.samples.saturating_add(1);
        self.mean += (x - self.mean) / i64::from(self.samples);
        self.us = self
            .us
            .saturating_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        if self.us >= HOUR_US {
            self.means.push(self.mean);
            if self.means.len() > keep {
                self.means.remove(0);
            }
            *self = Hours::of(std::mem::take(&mut self.means));
        }
    }

    /// Complete hours with these means and no hour in progress.
    fn of(means: Vec<i64>) -> Hours {
        let mut hours = Hours {
            means,
            ..Hours::default()
        };
        hours.reference = hours.median().map(|median| {
            hours
                .a_day_ago()
                .map_or(median, |yesterday| yesterday.max(median))
        });
        hours
    }

    /// The median of the complete hours' means.
    fn median(&self) -> Option<i64> {
        let mut means = self.means.clone();
        means.sort_unstable();
        let n = means.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(means[n / 2]),
            _ => Some(means[n / 2 - 1] / 2 + means[n / 2] / 2),
        }
    }

    /// The highest mean of the complete hours around this time a day ago
    /// (the hour in progress is number `len`; a day earlier is `len - 24`).
    fn a_day_ago(&self) -> Option<i64> {
        let n = self.means.len();
        let from = n.checked_sub(DAY_HOURS + SEASON_SLACK_HOURS)?;
        let to = (n + SEASON_SLACK_HOURS + 1 - DAY_HOURS).min(n);
        self.means[from..to].iter().copied().max()
    }
}

impl Baseline {
    /// Learns from one healthy latency; `alpha` in `(0, 1]` is the weight of
    /// a new sample once the baseline has seen more than `1/alpha` samples;
    /// `elapsed` is the time since the previous observation (how far the
    /// judged baseline may rise), `thaw_after` how long a rise that outpaced
    /// drift keeps it frozen at most.
    pub fn learn(
        &mut self,
        latency: Duration,
        alpha: f64,
        elapsed: Duration,
        thaw_after: Duration,
    ) {
        let latency = latency.max(LATENCY_FLOOR);
        self.learned += 1;
        self.hours.add(
            to_fixed(latency.as_secs_f64().ln()),
            elapsed,
            REFERENCE_HOURS,
        );
        match self.level {
            None => {
                self.warmup
                    .push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
                if self.warmup.len() >= WARMUP_SAMPLES {
                    let mut logs: Vec<f64> =
                        self.warmup.iter().map(|&n| (n as f64 / 1e9).ln()).collect();
                    self.reset(to_fixed(median(&mut logs)));
                    self.warmup = Vec::new();
                }
            }
            Some(level) => {
                let previous = level;
                let level = level as f64 / LEVEL_SCALE;
                let x = latency.as_secs_f64().ln();
                let weight = alpha.max(1.0 / self.learned as f64).min(1.0);
                let step = MAX_STEP_FACTOR.ln();
                let level = to_fixed(level + weight * (x - level).clamp(-step, step));
                self.level = Some(level);
                self.limit(previous, level, to_fixed(x), elapsed, thaw_after);
            }
        }
    }

    /// Moves the judged baseline after the average moved to `level` on a
    /// sample `x` (all in fixed point).
    fn limit(
        &mut self,
        previous: i64,
        level: i64,
        x: i64,
        elapsed: Duration,
        thaw_after: Duration,
    ) {
        let limited = self.limited.unwrap_or(previous);
        let anchor = self.anchor.unwrap_or(limited);
        if let Some(frozen) = self.frozen_us {
            let frozen =
                frozen.saturating_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
            if level <= anchor
                || frozen >= u64::try_from(thaw_after.as_micros()).unwrap_or(u64::MAX)
            {
                // The rise is over, or held long enough to be the new normal.
                self.reset(level);
            } else {
                self.frozen_us = Some(frozen);
            }
            return;
        }
        let allowance = to_fixed(MAX_DRIFT_PER_HOUR.ln() * elapsed.as_secs_f64() / 3600.0);
        let limited = level.min(limited.saturating_add(allowance));
        let rising = if x <= limited { 0 } else { self.rising + 1 };
        let outran = level - limited > to_fixed(FREEZE_GAP.ln());
        if outran || (rising >= FREEZE_SAMPLES && level > anchor) {
            self.limited = Some(anchor);
            self.frozen_us = Some(0);
            self.rising = 0;
            return;
        }
        self.limited = Some(limited);
        self.rising = rising;
        if rising == 0 {
            self.anchor = Some(limited);
        }
    }

    /// The reference: the median of the last [`REFERENCE_HOURS`] hours of
    /// learning, or the highest hour of learning around this time a day
    /// earlier, if higher (a daily cycle's peak is its own normal).
    pub fn reference(&self) -> Option<Duration> {
        self.hours.reference.map(from_fixed)
    }

    /// Sets the average and the judged baseline to `level` (fixed point).
    fn reset(&mut self, level: i64) {
        self.level = Some(level);
        self.limited = Some(level);
        self.anchor = Some(level);
        self.frozen_us = None;
        self.rising = 0;
    }

    /// Makes `latency` the baseline at once (a level shift accepted as the
    /// new normal), keeping the count of learned samples.
    pub fn set(&mut self, latency: Duration) {
        self.warmup = Vec::new();
        let level = to_fixed(latency.max(LATENCY_FLOOR).as_secs_f64().ln());
        self.reset(level);
        self.hours = Hours::of(vec![level]);
    }

    /// The baseline slowness is judged by, once warmed up: the limited
    /// average, never above the reference.
    pub fn value(&self) -> Option<Duration> {
        let limited = self.limited.or(self.level).map(from_fixed)?;
        Some(match self.reference() {
            Some(reference) => limited.min(reference),
            None => limited,
        })
    }

    /// The moving average itself, which follows rises the baseline does not.
    pub fn average(&self) -> Option<Duration> {
        self.level.map(from_fixed)
    }

    /// Whether a rise that outpaced drift holds the baseline at its anchor.
    pub fn is_frozen(&self) -> bool {
        self.frozen_us.is_some()
    }

    /// How many samples were learned in total (warm-up included).
    pub fn learned(&self) -> u64 {
        self.learned
    }
}

/// A latency from a log-space level in fixed point, rounded to the
/// nanosecond, so a constant latency gives itself back.
pub(crate) fn from_fixed(level: i64) -> Duration {
    Duration::from_nanos(((level as f64 / LEVEL_SCALE).exp() * 1e9).round() as u64)
}

/// A log-space level in fixed point.
pub(crate) fn to_fixed(level: f64) -> i64 {
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
            b.learn(ms(v), 0.01, Duration::ZERO, Duration::MAX);
        }
        let got = b.value().unwrap().as_secs_f64();
        assert!((got - 0.1805).abs() < 0.002, "{got}");
    }

    #[test]
    fn updates_are_clamped() {
        let mut b = Baseline::default();
        for _ in 0..WARMUP_SAMPLES {
            b.learn(ms(10), 0.5, Duration::ZERO, Duration::MAX);
        }
        b.learn(ms(10_000), 1.0, Duration::ZERO, Duration::MAX);
        // The moving average: the judged baseline does not follow the jump at all.
        let got = b.average().unwrap().as_secs_f64();
        assert!((got - 0.020).abs() < 1e-9, "{got}");
    }

    #[test]
    fn zero_latency_stays_finite() {
        let mut b = Baseline::default();
        for _ in 0..WARMUP_SAMPLES + 5 {
            b.learn(Duration::ZERO, 0.1, Duration::ZERO, Duration::MAX);
        }
        let got = b.value().unwrap().as_secs_f64();
        assert!((got - 1e-6).abs() < 1e-9, "{got}");
    }
}
