//! The probe latency histograms (`mailpulse_probe_duration_seconds`), kept
//! outside the `prometheus` registry and written straight into the page.
//!
//! Each series keeps two histograms of the same observations: the classic
//! one, on the configured bucket bounds (`[agent] latency_buckets`), which
//! the text format carries, and a native one (Prometheus's sparse
//! exponential buckets, schema 5: each bucket 2^(1/32) wide, about 2.2%, so a
//! quantile read from it is within about 1.1% of the exact one), which only
//! the protobuf format carries. By default only `phase="total"` has a
//! histogram; `[agent] phase_histograms = true` adds one per step (the steps'
//! latest durations are always in `mailpulse_probe_last_duration_seconds`).
//!
//! A scrape reads each series' counts under its target's lock and writes the
//! lines directly, with the labels escaped once per series. The text is the
//! same as the crate's: same names, labels, bucket bounds, order and numbers.
//!
//! Like the rest of `metrics`, this records what it is given and decides nothing.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use super::table::{lock, SeriesTable};
use super::{order, protobuf, text, Format};
use crate::sample::{Phase, ProbeKind};

/// The native histograms' schema: bucket boundaries at powers of 2^(2^-5).
pub const SCHEMA: i32 = 5;
/// Observations at or below this many seconds go to the native histograms'
/// zero bucket (the value client libraries use by default, 2^-128).
const ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// The native bucket of `v` (seconds): bucket `i` holds (2^((i-1)/32), 2^(i/32)].
pub fn native_index(v: f64) -> i32 {
    (v.log2() * f64::from(1 << SCHEMA)).ceil() as i32
}

/// The upper bound of native bucket `i`.
pub fn native_bound(i: i32) -> f64 {
    (f64::from(i) / f64::from(1 << SCHEMA)).exp2()
}

/// Bucket counts of one series (not cumulative), their sum and count.
#[derive(Debug, Clone, Default)]
struct Counts {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
    /// Native buckets by index, and the zero bucket.
    native: BTreeMap<i32, u64>,
    zero: u64,
}

/// The series of one target: its kind and one slot per [`Phase`].
#[derive(Debug)]
struct TargetSeries {
    kind: ProbeKind,
    phases: Vec<Option<Counts>>,
}

/// Which series exist and their classic buckets.
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    bounds: Vec<f64>,
    all_phases: bool,
}

/// A histogram family labelled `kind`, `phase` and `target`.
#[derive(Debug)]
pub struct PhaseHistograms {
    name: &'static str,
    help: &'static str,
    shape: RwLock<Shape>,
    targets: SeriesTable<TargetSeries>,
}

impl PhaseHistograms {
    /// An empty family; `bounds` are the upper bounds of the classic
    /// buckets, ascending; with `all_phases` every phase has a series, else
    /// only [`Phase::Total`].
    pub fn new(name: &'static str, help: &'static str, bounds: &[f64], all_phases: bool) -> Self {
        PhaseHistograms {
            name,
            help,
            shape: RwLock::new(Shape {
                bounds: bounds.to_vec(),
                all_phases,
            }),
            targets: SeriesTable::default(),
        }
    }

    /// The family's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Changes the classic buckets and which phases have series. A change
    /// of buckets starts every series over (a reload); turning
    /// `all_phases` off ends the steps' series.
    pub fn configure(&self, bounds: &[f64], all_phases: bool) {
        let mut shape = self.shape.write().unwrap_or_else(PoisonError::into_inner);
        let new = Shape {
            bounds: bounds.to_vec(),
            all_phases,
        };
        if *shape == new {
            return;
        }
        let restart = shape.bounds != new.bounds;
        let map = self.targets.sorted();
        for series in map.values() {
            let mut s = lock(series);
            for (i, slot) in s.phases.iter_mut().enumerate() {
                if restart || (!all_phases && Phase::ALL[i] != Phase::Total) {
                    *slot = None;
                }
            }
        }
        *shape = new;
    }

    /// Observes each `(phase, duration)` of one probe of `target`.
    pub fn observe(&self, target: &str, kind: ProbeKind, phases: &[(Phase, Duration)]) {
        let shape = self.shape.read().unwrap_or_else(PoisonError::into_inner);
        let new = || TargetSeries {
            kind,
            phases: vec![None; Phase::ALL.len()],
        };
        self.targets
            .with(target, new, |series| add(&shape, series, kind, phases));
    }

    /// Removes every series of `target`.
    pub fn remove_target(&self, target: &str) {
        self.targets.remove(target);
    }

    /// Writes the family in `format`; nothing when it has no series (as the
    /// registry leaves out empty families).
    pub fn encode(&self, format: Format, out: &mut Vec<u8>) {
        let shape = self.shape.read().unwrap_or_else(PoisonError::into_inner);
        let map = self.targets.sorted();
        // ((kind rank, phase rank), (kind, target), series lock, phase slot).
        // The map keeps targets sorted, and a stable sort on kind and phase
        // keeps them so: the registry's order (by label values in label-name
        // order) without comparing target names.
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
        match format {
            Format::Text => self.encode_text(&shape.bounds, &rows, out),
            Format::Protobuf => self.encode_protobuf(&shape.bounds, &rows, out),
        }
    }

    fn encode_text(&self, bounds: &[f64], rows: &[Row], out: &mut Vec<u8>) {
        let mut snapshot = Counts {
            buckets: vec![0; bounds.len()],
            ..Counts::default()
        };
        // Each bound with the end of its line's labels, so that a bucket line
        // is three copies and a count: prefix, bound, count.
        let bounds: Vec<Vec<u8>> = bounds
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
        for (_, (kind, target), series, slot) in rows {
            {
                // Copied out, so the target's lock is held only that long.
                let s = lock(series);
                let Some(c) = counts_of(&s, kind, *slot) else {
                    continue;
                };
                snapshot.buckets.copy_from_slice(&c.buckets);
                snapshot.sum = c.sum;
                snapshot.count = c.count;
            }
            let phase = Phase::ALL[*slot];
            labels.clear();
            text::label_pair(&mut labels, "kind", kind);
            labels.push(b',');
            text::label_pair(&mut labels, "phase", phase.as_str());
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

    fn encode_protobuf(&self, bounds: &[f64], rows: &[Row], out: &mut Vec<u8>) {
        let mut family = protobuf::FamilyBuf::new(self.name, self.help, protobuf::Kind::Histogram);
        let (mut metric, mut h, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
        let mut deltas = Vec::new();
        for (_, (kind, target), series, slot) in rows {
            // Encoded under the target's lock: the native buckets are not copied.
            let s = lock(series);
            let Some(c) = counts_of(&s, kind, *slot) else {
                continue;
            };
            let phase = Phase::ALL[*slot];
            metric.clear();
            protobuf::label(&mut metric, "kind", kind, &mut scratch);
            protobuf::label(&mut metric, "phase", phase.as_str(), &mut scratch);
            protobuf::label(&mut metric, "target", target, &mut scratch);
            h.clear();
            protobuf::uint(&mut h, 1, c.count);
            protobuf::double(&mut h, 2, c.sum);
            let mut cumulative = 0;
            for (b, n) in bounds.iter().zip(&c.buckets) {
                cumulative += n;
                scratch.clear();
                protobuf::uint(&mut scratch, 1, cumulative);
                protobuf::double(&mut scratch, 2, *b);
                protobuf::bytes(&mut h, 3, &scratch);
            }
            protobuf::sint(&mut h, 5, i64::from(SCHEMA));
            protobuf::double(&mut h, 6, ZERO_THRESHOLD);
            protobuf::uint(&mut h, 7, c.zero);
            // Spans of consecutive buckets (offset from the end of the span
            // before), and each bucket's count as a delta from the previous one.
            deltas.clear();
            let (mut previous_index, mut previous_count): (Option<i32>, i64) = (None, 0);
            let mut span: Option<(i32, u32)> = None;
            for (&i, &n) in &c.native {
                match (&mut span, previous_index) {
                    (Some((_, len)), Some(p)) if i == p + 1 => *len += 1,
                    _ => {
                        if let Some((offset, len)) = span.take() {
                            write_span(&mut h, offset, len, &mut scratch);
                        }
                        let offset = previous_index.map_or(i, |p| i - p - 1);
                        span = Some((offset, 1));
                    }
                }
                let n = n as i64;
                deltas.push(n - previous_count);
                previous_count = n;
                previous_index = Some(i);
            }
            match span {
                Some((offset, len)) => write_span(&mut h, offset, len, &mut scratch),
                // No bucket yet: an empty span marks the histogram native.
                None => write_span(&mut h, 0, 0, &mut scratch),
            }
            if !deltas.is_empty() {
                protobuf::packed_sint(&mut h, 13, &deltas, &mut scratch);
            }
            protobuf::bytes(&mut metric, 7, &h);
            family.metric(&metric);
        }
        family.finish(out);
    }
}

/// A row of a scrape: ((kind rank, phase rank), (kind, target), series
/// lock, phase slot).
type Row<'a> = ((u8, u8), (&'a str, &'a str), &'a Mutex<TargetSeries>, usize);

/// The counts of `slot`, unless the target changed kind since the rows were listed.
fn counts_of<'s>(s: &'s TargetSeries, kind: &str, slot: usize) -> Option<&'s Counts> {
    s.phases[slot].as_ref().filter(|_| s.kind.as_str() == kind)
}

/// One `BucketSpan` of the positive native buckets (field 12).
fn write_span(h: &mut Vec<u8>, offset: i32, len: u32, scratch: &mut Vec<u8>) {
    scratch.clear();
    protobuf::sint(scratch, 1, i64::from(offset));
    protobuf::uint(scratch, 2, u64::from(len));
    protobuf::bytes(h, 12, scratch);
}

fn add(shape: &Shape, series: &mut TargetSeries, kind: ProbeKind, phases: &[(Phase, Duration)]) {
    if series.kind != kind {
        // The target changed kind (a reload): its old series end here.
        series.kind = kind;
        series.phases.iter_mut().for_each(|p| *p = None);
    }
    for (phase, d) in phases {
        if !shape.all_phases && *phase != Phase::Total {
            continue;
        }
        let v = d.as_secs_f64();
        let counts = series.phases[order::phase_index(*phase)].get_or_insert_with(|| Counts {
            buckets: vec![0; shape.bounds.len()],
            ..Counts::default()
        });
        // The first bucket whose upper bound holds the value; past the last
        // bound only the count (the +Inf bucket) grows.
        let i = shape.bounds.partition_point(|b| *b < v);
        if let Some(b) = counts.buckets.get_mut(i) {
            *b += 1;
        }
        if v <= ZERO_THRESHOLD {
            counts.zero += 1;
        } else {
            *counts.native.entry(native_index(v)).or_insert(0) += 1;
        }
        counts.sum += v;
        counts.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{HistogramOpts, HistogramVec, Registry};

    use super::*;
    use crate::config::DEFAULT_LATENCY_BUCKETS as LATENCY_BUCKETS;

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
        let ours = PhaseHistograms::new("h_seconds", "Phase durations.", LATENCY_BUCKETS, true);
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
        ours.encode(Format::Text, &mut got);
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
        ours.encode(Format::Text, &mut got);
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn an_empty_family_writes_nothing_and_a_kind_change_starts_over() {
        let h = PhaseHistograms::new("h_seconds", "H.", LATENCY_BUCKETS, false);
        let mut out = Vec::new();
        h.encode(Format::Text, &mut out);
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
        h.encode(Format::Text, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("h_seconds_count{kind=\"tcp\",phase=\"total\",target=\"t\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("kind=\"http\""), "{text}");
    }

    /// A protobuf field: (number, varint value or bytes).
    enum Field<'a> {
        Varint(u64),
        Fixed(u64),
        Bytes(&'a [u8]),
    }

    fn read_varint(b: &[u8], at: &mut usize) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[*at];
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    /// The fields of one message, in order (a test decoder, independent of the encoder).
    fn fields(b: &[u8]) -> Vec<(u64, Field<'_>)> {
        let mut at = 0;
        let mut out = Vec::new();
        while at < b.len() {
            let key = read_varint(b, &mut at);
            let field = match key & 7 {
                0 => Field::Varint(read_varint(b, &mut at)),
                1 => {
                    let v = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
                    at += 8;
                    Field::Fixed(v)
                }
                2 => {
                    let n = read_varint(b, &mut at) as usize;
                    at += n;
                    Field::Bytes(&b[at - n..at])
                }
                w => panic!("wire type {w}"),
            };
            out.push((key >> 3, field));
        }
        out
    }

    fn unzigzag(v: u64) -> i64 {
        ((v >> 1) as i64) ^ -((v & 1) as i64)
    }

    /// The native buckets of a histogram message, as (index, count), from
    /// its spans and deltas.
    fn native_buckets(h: &[u8]) -> (i64, Vec<(i64, i64)>) {
        let (mut spans, mut deltas, mut schema) = (Vec::new(), Vec::new(), 0);
        for (n, f) in fields(h) {
            match (n, f) {
                (5, Field::Varint(v)) => schema = unzigzag(v),
                (12, Field::Bytes(span)) => {
                    let mut s = (0, 0);
                    for (n, f) in fields(span) {
                        match (n, f) {
                            (1, Field::Varint(v)) => s.0 = unzigzag(v),
                            (2, Field::Varint(v)) => s.1 = v as i64,
                            _ => {}
                        }
                    }
                    spans.push(s);
                }
                (13, Field::Bytes(packed)) => {
                    let mut at = 0;
                    while at < packed.len() {
                        deltas.push(unzigzag(read_varint(packed, &mut at)));
                    }
                }
                _ => {}
            }
        }
        let (mut out, mut index, mut count, mut d) = (Vec::new(), 0i64, 0i64, deltas.iter());
        for (k, (offset, len)) in spans.iter().enumerate() {
            index += offset + if k == 0 { 0 } else { 1 };
            for j in 0..*len {
                if j > 0 {
                    index += 1;
                }
                count += d.next().unwrap();
                out.push((index, count));
            }
        }
        (schema, out)
    }

    /// The protobuf page's native buckets hold each observation where
    /// Prometheus's schema 5 puts it, gaps between buckets included.
    #[test]
    fn native_buckets_are_encoded_as_spans_and_deltas() {
        let h = PhaseHistograms::new("h_seconds", "H.", LATENCY_BUCKETS, false);
        let at = |i: i32| Duration::from_secs_f64(native_bound(i) * 0.999);
        // Buckets -100 (x2), -99, -96 (a gap of two), 50 (far away).
        for i in [-100, -100, -99, -96, 50] {
            h.observe("t", ProbeKind::Http, &[(Phase::Total, at(i))]);
        }
        assert_eq!(native_index(1.0), 0);
        assert_eq!(native_index(2.0), 32);
        assert_eq!(native_index(2.0f64.next_up()), 33);
        let mut out = Vec::new();
        h.encode(Format::Protobuf, &mut out);
        let mut at = 0;
        let len = read_varint(&out, &mut at) as usize;
        assert_eq!(at + len, out.len(), "one delimited family");
        let family = fields(&out[at..]);
        let metrics: Vec<&[u8]> = family
            .iter()
            .filter_map(|(n, f)| match (n, f) {
                (4, Field::Bytes(b)) => Some(*b),
                _ => None,
            })
            .collect();
        assert_eq!(metrics.len(), 1);
        let histogram = fields(metrics[0])
            .into_iter()
            .find_map(|(n, f)| match (n, f) {
                (7, Field::Bytes(b)) => Some(b),
                _ => None,
            })
            .unwrap();
        let (schema, buckets) = native_buckets(histogram);
        assert_eq!(schema, 5);
        assert_eq!(buckets, [(-100, 2), (-99, 1), (-96, 1), (50, 1)]);
        let count = fields(histogram)
            .into_iter()
            .find_map(|(n, f)| match (n, f) {
                (1, Field::Varint(v)) => Some(v),
                _ => None,
            });
        assert_eq!(count, Some(5));
        let zero_threshold = fields(histogram)
            .into_iter()
            .find_map(|(n, f)| match (n, f) {
                (6, Field::Fixed(v)) => Some(f64::from_bits(v)),
                _ => None,
            });
        assert!(
            zero_threshold.is_some_and(|z| z > 0.0),
            "marks the histogram native"
        );
    }

    /// A reload that changes the buckets starts the series over; turning
    /// `phase_histograms` off ends the steps' series and keeps `total`.
    #[test]
    fn configure_restarts_or_trims_the_series() {
        let h = PhaseHistograms::new("h_seconds", "H.", LATENCY_BUCKETS, true);
        let probe = [
            (Phase::Connect, Duration::from_millis(1)),
            (Phase::Total, Duration::from_millis(3)),
        ];
        h.observe("t", ProbeKind::Http, &probe);
        let text = |h: &PhaseHistograms| {
            let mut out = Vec::new();
            h.encode(Format::Text, &mut out);
            String::from_utf8(out).unwrap()
        };
        h.configure(LATENCY_BUCKETS, false);
        let page = text(&h);
        assert!(!page.contains("phase=\"connect\""), "{page}");
        assert!(
            page.contains("h_seconds_count{kind=\"http\",phase=\"total\",target=\"t\"} 1\n"),
            "{page}"
        );
        h.observe("t", ProbeKind::Http, &probe);
        assert!(!text(&h).contains("phase=\"connect\""));
        h.configure(&[0.002, 0.004], false);
        assert_eq!(text(&h), "", "new buckets: the old counts are gone");
        h.observe("t", ProbeKind::Http, &probe);
        let page = text(&h);
        assert!(page.contains("le=\"0.004\"} 1\n"), "{page}");
        assert!(!page.contains("le=\"0.005\""), "{page}");
    }
}
