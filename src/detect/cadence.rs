//! The sampling cadence of one target, learned from the timestamps it sends:
//! the typical interval between observations.
//!
//! The detector needs it to think in sample counts as well as in time (the
//! baseline's memory, the longest silence that is not yet a gap) without
//! being told the probe interval, so that replayed series and live probes
//! behave the same. It does no IO and reads no clock.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How many recent intervals the typical interval is the median of.
pub const CADENCE_WINDOW: usize = 15;

/// The median of the most recent positive intervals between observations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cadence {
    /// Recent intervals in nanoseconds, a ring of at most [`CADENCE_WINDOW`].
    recent: Vec<u64>,
    /// Where the next interval goes once the ring is full.
    next: usize,
}

impl Cadence {
    /// Records the time since the previous observation. Zero intervals
    /// (repeated timestamps) say nothing about the cadence and are skipped;
    /// one long gap does not move a median.
    pub fn record(&mut self, interval: Duration) {
        if interval.is_zero() {
            return;
        }
        let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        if self.recent.len() < CADENCE_WINDOW {
            self.recent.push(nanos);
        } else {
            self.recent[self.next] = nanos;
        }
        self.next = (self.next + 1) % CADENCE_WINDOW;
    }

    /// The typical interval, once at least one was seen.
    pub fn typical(&self) -> Option<Duration> {
        if self.recent.is_empty() {
            return None;
        }
        let mut sorted = self.recent.clone();
        sorted.sort_unstable();
        Some(Duration::from_nanos(sorted[sorted.len() / 2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_ignores_gaps_and_repeats() {
        let mut c = Cadence::default();
        assert_eq!(c.typical(), None);
        for s in [10, 10, 0, 3600, 10, 11, 9, 0, 10] {
            c.record(Duration::from_secs(s));
        }
        assert_eq!(c.typical(), Some(Duration::from_secs(10)));
    }

    #[test]
    fn forgets_an_old_cadence() {
        let mut c = Cadence::default();
        for _ in 0..100 {
            c.record(Duration::from_secs(60));
        }
        for _ in 0..CADENCE_WINDOW / 2 + 1 {
            c.record(Duration::from_secs(1));
        }
        assert_eq!(c.typical(), Some(Duration::from_secs(1)));
    }
}
