//! A quantile sketch with a bounded relative error, for percentiles that a
//! soak lead can sign without keeping every sample: the per-phase p50, p95
//! and p99 of a soak report, and any "p95 inside versus the hour before".
//!
//! Values (seconds) fall into logarithmic bins `(γ^(i-1), γ^i]` with
//! `γ = (1 + α) / (1 − α)` and `α` = [`RELATIVE_ERROR`]; a quantile is read
//! as the middle of its bin, so it is within `α` of the sample it stands
//! for (the nearest-rank sample, see [`Sketch::quantile`]). Bins are dense
//! between the lowest and highest index seen, at most [`MAX_BINS`] of them
//! (1 µs to 20 minutes fit); beyond that the lowest bins fold into one, so
//! the upper quantiles stay exact to `α` and the memory stays bounded.
//! Sketches merge exactly (the bins add up), so phases, targets and agents
//! combine without losing accuracy. Pure: no IO, clock or runtime.

use serde::{Deserialize, Serialize};

/// The largest relative error of a quantile: 0.5%.
pub const RELATIVE_ERROR: f64 = 0.005;

/// The most bins a sketch keeps (8 bytes each): 1 µs to about 20 minutes at
/// [`RELATIVE_ERROR`].
pub const MAX_BINS: usize = 2048;

/// `γ`, the ratio of a bin's upper bound to its lower one.
fn gamma() -> f64 {
    (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
}

/// The bin of a positive value: the `i` with `γ^(i-1) < v <= γ^i`.
fn index(v: f64) -> i32 {
    (v.ln() / gamma().ln()).ceil() as i32
}

/// The value a bin stands for: within [`RELATIVE_ERROR`] of every value in it.
fn value(i: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(i) / (g + 1.0)
}

/// Counts of values in logarithmic bins, with their count, sum, minimum and
/// maximum kept exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    /// Index of the first bin of `bins`.
    offset: i32,
    /// Counts of the bins from `offset` on.
    bins: Vec<u64>,
    /// Values of zero (a probe quicker than the clock can tell).
    zeros: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Sketch {
        Sketch::default()
    }

    /// Adds a value (seconds). Negative and non-finite values are ignored.
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() || v < 0.0 {
            return;
        }
        self.note(v);
        if v == 0.0 {
            self.zeros += 1;
        } else {
            self.bump(index(v), 1);
        }
    }

    /// Adds every value of `other`, exactly as if they had been added here.
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        self.zeros += other.zeros;
        for (k, &n) in other.bins.iter().enumerate() {
            if n > 0 {
                self.bump(other.offset + k as i32, n);
            }
        }
        let empty = self.count == 0;
        self.min = if empty {
            other.min
        } else {
            self.min.min(other.min)
        };
        self.max = if empty {
            other.max
        } else {
            self.max.max(other.max)
        };
        self.count += other.count;
        self.sum += other.sum;
    }

    /// Counts one value `v` in the exact figures.
    fn note(&mut self, v: f64) {
        let empty = self.count == 0;
        self.min = if empty { v } else { self.min.min(v) };
        self.max = if empty { v } else { self.max.max(v) };
        self.count += 1;
        self.sum += v;
    }

    /// Adds `n` to bin `i`, growing the dense range, and folding the lowest
    /// bins into one when it would pass [`MAX_BINS`].
    fn bump(&mut self, i: i32, n: u64) {
        const MAX: i32 = MAX_BINS as i32;
        if self.bins.is_empty() {
            self.offset = i;
        }
        // A value below the kept range: widen it down as far as the cap lets,
        // and count the value in the lowest bin kept when it is too low.
        let i = if i < self.offset {
            let last = self.offset + self.bins.len() as i32 - 1;
            let low = i.max(last - MAX + 1);
            let grow = (self.offset - low) as usize;
            self.grow_to(self.bins.len() + grow);
            self.bins.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = low;
            low
        } else {
            i
        };
        // A value above it: fold the lowest bins into one if the range would
        // pass the cap, then widen it up.
        let lowest = self.offset.max(i - MAX + 1);
        if lowest > self.offset {
            let fold = ((lowest - self.offset) as usize).min(self.bins.len());
            let folded: u64 = self.bins.drain(..fold).sum();
            self.offset = lowest;
            if self.bins.is_empty() {
                self.bins.push(0);
            }
            self.bins[0] += folded;
        }
        let len = (i - self.offset + 1) as usize;
        if len > self.bins.len() {
            self.grow_to(len);
            self.bins.resize(len, 0);
        }
        self.bins[(i - self.offset) as usize] += n;
    }

    /// Makes room for `len` bins: doubling, as a `Vec` does, but never past
    /// [`MAX_BINS`].
    fn grow_to(&mut self, len: usize) {
        if len > self.bins.capacity() {
            let want = len.max(self.bins.capacity() * 2).min(MAX_BINS).max(len);
            self.bins.reserve_exact(want - self.bins.len());
        }
    }

    /// How many values were added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their sum (seconds).
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Their mean; `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The smallest value added; `None` when empty.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// The largest value added; `None` when empty.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// The `q` quantile (0 to 1) by nearest rank: the value of rank
    /// `⌈q·n⌉` (at least 1) among the `n` values in ascending order, within
    /// [`RELATIVE_ERROR`] of it, and never outside the minimum and
    /// maximum. `None` when empty or `q` is not in `[0, 1]`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        if rank == self.count {
            return Some(self.max);
        }
        if rank == 1 {
            return Some(self.min);
        }
        let mut seen = self.zeros;
        if rank <= seen {
            return Some(0.0);
        }
        for (k, &n) in self.bins.iter().enumerate() {
            seen += n;
            if rank <= seen {
                let v = value(self.offset + k as i32);
                return Some(v.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Bytes this sketch holds beyond its own size (its bins).
    pub fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The nearest-rank quantile of `values`, sorted in place.
    fn exact(values: &mut [f64], q: f64) -> f64 {
        values.sort_by(f64::total_cmp);
        let rank = ((q * values.len() as f64).ceil() as usize).max(1);
        values[rank - 1]
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() <= want * RELATIVE_ERROR * 1.000_001
    }

    #[test]
    fn an_empty_sketch_has_no_quantiles() {
        let s = Sketch::new();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(
            (s.count(), s.mean(), s.min(), s.max()),
            (0, None, None, None)
        );
    }

    #[test]
    fn a_uniform_plateau_reads_within_half_a_percent() {
        // 150-190 ms, the test plateau.
        let mut values: Vec<f64> = (0..4000)
            .map(|k| 0.150 + 0.040 * k as f64 / 3999.0)
            .collect();
        let mut s = Sketch::new();
        for v in &values {
            s.add(*v);
        }
        for q in [0.5, 0.9, 0.95, 0.99] {
            let (got, want) = (s.quantile(q).unwrap(), exact(&mut values, q));
            assert!(close(got, want), "p{q}: {got} vs {want}");
        }
        assert_eq!(s.count(), 4000);
        assert!((s.mean().unwrap() - 0.170).abs() < 1e-9);
        assert_eq!((s.min(), s.max()), (Some(0.150), Some(0.190)));
    }

    #[test]
    fn the_extremes_are_exact_and_zeros_count() {
        let mut s = Sketch::new();
        for v in [0.0, 0.0, 0.3, 2.0, f64::NAN, -1.0, f64::INFINITY] {
            s.add(v);
        }
        assert_eq!(s.count(), 4);
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!(close(s.quantile(0.75).unwrap(), 0.3));
        assert_eq!(s.quantile(1.0), Some(2.0));
        assert_eq!(s.quantile(1.5), None);
    }

    #[test]
    fn bins_stay_bounded_and_the_top_stays_exact() {
        let mut s = Sketch::new();
        // 1 ns to 1000 s: more decades than MAX_BINS covers.
        let mut v = 1e-9;
        while v < 1000.0 {
            s.add(v);
            v *= 1.001;
        }
        assert!(s.bins.len() <= MAX_BINS);
        let mut values = Vec::new();
        let mut v = 1e-9;
        while v < 1000.0 {
            values.push(v);
            v *= 1.001;
        }
        for q in [0.5, 0.95, 0.99] {
            let (got, want) = (s.quantile(q).unwrap(), exact(&mut values, q));
            assert!(close(got, want), "p{q}: {got} vs {want}");
        }
        assert!(s.heap_bytes() <= MAX_BINS * 8);
    }

    #[test]
    fn a_stored_sketch_reads_back_the_same() {
        let mut s = Sketch::new();
        for k in 1..500 {
            s.add(k as f64 / 1000.0);
        }
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Sketch>(&text).unwrap(), s);
    }

    proptest! {
        #[test]
        fn quantiles_are_within_the_relative_error(
            values in prop::collection::vec(1e-6f64..60.0, 1..400),
            q in 0.0f64..=1.0,
        ) {
            let mut s = Sketch::new();
            for v in &values {
                s.add(*v);
            }
            let mut sorted = values.clone();
            let (got, want) = (s.quantile(q).unwrap(), exact(&mut sorted, q));
            prop_assert!(close(got, want), "q {}: {} vs {}", q, got, want);
        }

        #[test]
        fn merging_is_adding_everything_to_one(
            a in prop::collection::vec(0.0f64..30.0, 0..200),
            b in prop::collection::vec(1e-5f64..0.01, 0..200),
        ) {
            let (mut sa, mut sb, mut all) = (Sketch::new(), Sketch::new(), Sketch::new());
            for v in &a { sa.add(*v); all.add(*v); }
            for v in &b { sb.add(*v); all.add(*v); }
            sa.merge(&sb);
            prop_assert_eq!(sa.count(), all.count());
            prop_assert_eq!((sa.min(), sa.max()), (all.min(), all.max()));
            for q in [0.01, 0.5, 0.95, 0.99] {
                prop_assert_eq!(sa.quantile(q), all.quantile(q));
            }
        }
    }
}
