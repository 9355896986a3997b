//! The probe phase histograms (`mailpulse_probe_duration_seconds`), kept
//! outside the `prometheus` registry and written straight into the page.
//!
//! With one series per target and phase, this family is most of the page
//! (4,500 of 5,400 lines at 50 HTTP targets). Through the registry, every
//! scrape copied each series into protobuf structures (labels and buckets
//! cloned, about 20 allocations a series) before encoding them; here a scrape
//! reads each series' counts under its target's lock and writes the lines
//! directly, with the labels escaped once per series. The text is the same
//! as the crate's: same names, labels, bucket bounds, order and numbers.
//!
//! Like the rest of `metrics`, this records what it is given and decides nothing.

use std::sync::Mutex;
use std::time::Duration;

use super::table::{lock, SeriesTable};
use super::{order, text};
use crate::sample::{Phase, ProbeKind};

/// Bucket counts of one series (not cumulative), their sum and count.
#[derive(Debug, Clone)]
struct Counts {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

/// The series of one target: its kind and one slot per [`Phase`].
#[derive(Debug)]
struct TargetSeries {
    kind: ProbeKind,
    phases: Vec<Option<Counts>>,
}

/// A histogram family labelled `kind`, `phase` and `target`.
#[derive(Debug)]
pub struct PhaseHistograms {
    name: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    targets: SeriesTable<TargetSeries>,
}

impl PhaseHistograms {
    /// An empty family; `bounds` are the upper bounds of the buckets, ascending.
    pub fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> Self {
        PhaseHistograms {
            name,
            help,
            bounds,
            targets: SeriesTable::default(),
        }
    }

    /// The family's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Observes each `(phase, duration)` of one probe of `target`.
    pub fn observe(&self, target: &str, kind: ProbeKind, phases: &[(Phase, Duration)]) {
        let new = || TargetSeries {
            kind,
            phases: vec![None; Phase::ALL.len()],
        };
        self.targets
            .with(target, new, |series| self.add(series, kind, phases));
    }

    fn add(&self, series: &mut TargetSeries, kind: ProbeKind, phases: &[(Phase, Duration)]) {
        if series.kind != kind {
            // The target changed kind (a reload): its old series end here.
            series.kind = kind;
            series.phases.iter_mut().for_each(|p| *p = None);
        }
        for (phase, d) in phases {
            let v = d.as_secs_f64();
            let counts = series.phases[order::phase_index(*phase)].get_or_insert_with(|| Counts {
                buckets: vec![0; self.bounds.len()],
                sum: 0.0,
                count: 0,
            });
            // The first bucket whose upper bound holds the value; past the last
            // bound only the count (the +Inf bucket) grows.
            let i = self.bounds.partition_point(|b| *b < v);
            if let Some(b) = counts.buckets.get_mut(i) {
                *b += 1;
            }
            counts.sum += v;
            counts.count += 1;
        }
    }

    /// Removes every series of `target`.
    pub fn remove_target(&self, target: &str) {
        self.targets.remove(target);
    }

    /// Writes the family in the text format; nothing when it has no series
    /// (as the registry leaves out empty families).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let map = self.targets.sorted();
        // ((kind rank, phase rank), (kind, target), series lock, phase slot).
        // The map keeps targets sorted, and a stable sort on kind and phase
        // keeps them so: the registry's order (by label values in label-name
        // order) without comparing target names.
        type Row<'a> = ((u8, u8), (&'a str, &'a str), &'a Mutex<TargetSeries>, usize);
        let mut rows: Vec<Row> = Vec::new();
        for (target, series) in map.iter() {
            let s = lock(series);
            for (i, slot) in s.phases.iter().enumerate() {
                if slot.is_some() {
                    let (k, p) = (order::kind(s.kind), order::phase(Phase::ALL[i]));
                    rows.push(((k, p), (s.kind.as_str(), target), series, i));
                }
            }
        }
        if rows.is_empty() {
            return;
        }
        rows.sort_by_key(|r| r.0);
        // Each bound with the end of its line's labels, so that a bucket line
        // is three copies and a count: prefix, bound, count.
        let bounds: Vec<Vec<u8>> = self
            .bounds
            .iter()
            .map(|b| {
                let mut t = Vec::with_capacity(12);
                text::float(*b, &mut t);
                t.extend_from_slice(b"\"} ");
                t
            })
            .chain([b"+Inf\"} ".to_vec()])
            .collect();
        let name = self.name.as_bytes();
        text::family_head(out, self.name, self.help, "histogram");
        let mut labels = Vec::with_capacity(128);
        let mut prefix = Vec::with_capacity(192);
        let mut snapshot = Counts {
            buckets: vec![0; self.bounds.len()],
            sum: 0.0,
            count: 0,
        };
        for (_, (kind, target), series, slot) in rows {
            {
                let s = lock(series);
                // The target may have changed kind since the rows were listed.
                let Some(c) = s.phases[slot].as_ref().filter(|_| s.kind.as_str() == kind) else {
                    continue;
                };
                snapshot.buckets.copy_from_slice(&c.buckets);
                snapshot.sum = c.sum;
                snapshot.count = c.count;
            }
            labels.clear();
            text::label_pair(&mut labels, "kind", kind);
            labels.push(b',');
            text::label_pair(&mut labels, "phase", Phase::ALL[slot].as_str());
            labels.push(b',');
            text::label_pair(&mut labels, "target", target);
            prefix.clear();
            prefix.extend_from_slice(name);
            prefix.extend_from_slice(b"_bucket{");
            prefix.extend_from_slice(&labels);
            prefix.extend_from_slice(b",le=\"");
            // Counts stay far below 2^53, where they are exact as the f64s the
            // crate writes.
            let cumulative = snapshot.buckets.iter().scan(0, |sum, b| {
                *sum += b;
                Some(*sum)
            });
            for (n, bound) in cumulative.chain([snapshot.count]).zip(&bounds) {
                out.extend_from_slice(&prefix);
                out.extend_from_slice(bound);
                text::uint(n, out);
                out.push(b'\n');
            }
            text::line(out, name, b"_sum", &labels, None, snapshot.sum);
            out.extend_from_slice(name);
            out.extend_from_slice(b"_count{");
            out.extend_from_slice(&labels);
            out.extend_from_slice(b"} ");
            text::uint(snapshot.count, out);
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{HistogramOpts, HistogramVec, Registry};

    use super::*;
    use crate::metrics::LATENCY_BUCKETS;

    /// The same observations through the `prometheus` crate and through ours
    /// give the same text.
    #[test]
    fn writes_what_the_registry_writes() {
        let reg = Registry::new();
        let vec = HistogramVec::new(
            HistogramOpts::new("h_seconds", "Phase durations.").buckets(LATENCY_BUCKETS.to_vec()),
            &["target", "kind", "phase"],
        )
        .unwrap();
        reg.register(Box::new(vec.clone())).unwrap();
        let ours = PhaseHistograms::new("h_seconds", "Phase durations.", LATENCY_BUCKETS);
        let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
        type Probe<'a> = (&'a str, ProbeKind, Vec<(Phase, Duration)>);
        let probes: Vec<Probe> = vec![
            (
                "owa",
                ProbeKind::Http,
                vec![
                    (Phase::Dns, ms(0.01)),
                    (Phase::Connect, ms(0.3)),
                    (Phase::Total, ms(184.1)),
                ],
            ),
            (
                "ews",
                ProbeKind::Http,
                vec![(Phase::Connect, ms(0.5)), (Phase::Total, ms(31_000.0))],
            ),
            (
                "owa",
                ProbeKind::Http,
                vec![(Phase::Total, ms(1.0)), (Phase::Connect, ms(2.5))],
            ),
            (
                "smtp \"x\"",
                ProbeKind::Smtp,
                vec![(Phase::Banner, ms(12.0)), (Phase::Total, ms(40.0))],
            ),
            (
                "a-imap",
                ProbeKind::Imap,
                vec![(Phase::Select, ms(5.0)), (Phase::Total, ms(9.0))],
            ),
        ];
        for (target, kind, phases) in &probes {
            for (phase, d) in phases {
                vec.with_label_values(&[target, kind.as_str(), phase.as_str()])
                    .observe(d.as_secs_f64());
            }
            ours.observe(target, *kind, phases);
        }
        let mut expected = Vec::new();
        text::encode(&reg.gather(), &mut expected);
        let mut got = Vec::new();
        ours.encode(&mut got);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(expected).unwrap()
        );

        // Removing a target removes exactly its series, as remove_label_values does.
        for phase in Phase::ALL {
            let _ = vec.remove_label_values(&["owa", "http", phase.as_str()]);
        }
        ours.remove_target("owa");
        let mut expected = Vec::new();
        text::encode(&reg.gather(), &mut expected);
        let mut got = Vec::new();
        ours.encode(&mut got);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn an_empty_family_writes_nothing_and_a_kind_change_starts_over() {
        let h = PhaseHistograms::new("h_seconds", "H.", LATENCY_BUCKETS);
        let mut out = Vec::new();
        h.encode(&mut out);
        assert!(out.is_empty());
        h.observe(
            "t",
            ProbeKind::Http,
            &[(Phase::Total, Duration::from_millis(1))],
        );
        h.observe(
            "t",
            ProbeKind::Tcp,
            &[(Phase::Total, Duration::from_millis(2))],
        );
        h.encode(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("h_seconds_count{kind=\"tcp\",phase=\"total\",target=\"t\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("kind=\"http\""), "{text}");
    }
}
