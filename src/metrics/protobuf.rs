//! The Prometheus protobuf exposition format: `io.prometheus.client.MetricFamily`
//! messages, each prefixed with its length (`encoding=delimited`). A scraper
//! that asks for it (Prometheus with `--enable-feature=native-histograms`)
//! gets the probe latency histograms as native histograms, which the text
//! format cannot carry.
//!
//! Hand-written for the few messages the page needs (family, metric, label,
//! gauge, counter, summary, histogram with its classic buckets and its sparse
//! exponential ones): the `prometheus` crate writes no protobuf without its
//! `protobuf` feature (a second code generator and runtime), and its model has
//! no native histogram fields. Field numbers are those of the upstream
//! `metrics.proto`.

use prometheus::proto::{MetricFamily, MetricType};

/// The `Content-Type` of a protobuf page (and what a scraper's `Accept` names).
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// `MetricType` values of the format.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Counter = 0,
    Gauge = 1,
    Summary = 2,
    Histogram = 4,
}

impl Kind {
    /// The kind of a family written as `counter`, `gauge`, ... in the text format.
    pub(crate) fn from_text(kind: &str) -> Kind {
        match kind {
            "counter" => Kind::Counter,
            "histogram" => Kind::Histogram,
            "summary" => Kind::Summary,
            _ => Kind::Gauge,
        }
    }
}

/// Appends a base-128 varint.
pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

/// A `uint64`/`enum` field.
pub(crate) fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    key(out, field, 0);
    varint(out, v);
}

/// A `sint32`/`sint64` field (zigzag).
pub(crate) fn sint(out: &mut Vec<u8>, field: u32, v: i64) {
    key(out, field, 0);
    varint(out, zigzag(v));
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// A `double` field.
pub(crate) fn double(out: &mut Vec<u8>, field: u32, v: f64) {
    key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

/// A `string` or embedded message field whose bytes are `body`.
pub(crate) fn bytes(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    key(out, field, 2);
    varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// A packed `repeated sint64` field.
pub(crate) fn packed_sint(out: &mut Vec<u8>, field: u32, values: &[i64], scratch: &mut Vec<u8>) {
    scratch.clear();
    for v in values {
        varint(scratch, zigzag(*v));
    }
    bytes(out, field, scratch);
}

/// One `LabelPair` of a `Metric` (field 1).
pub(crate) fn label(metric: &mut Vec<u8>, name: &str, value: &str, scratch: &mut Vec<u8>) {
    scratch.clear();
    bytes(scratch, 1, name.as_bytes());
    bytes(scratch, 2, value.as_bytes());
    bytes(metric, 1, scratch);
}

/// A `Metric`'s value as a gauge (field 2) or a counter (field 3).
pub(crate) fn value(metric: &mut Vec<u8>, kind: Kind, v: f64) {
    let field = if matches!(kind, Kind::Counter) { 3 } else { 2 };
    key(metric, field, 2);
    varint(metric, 9);
    double(metric, 1, v);
}

/// Builds one `MetricFamily` and appends it, length-prefixed, to `out`.
pub(crate) struct FamilyBuf {
    body: Vec<u8>,
}

impl FamilyBuf {
    /// A family `name` of `kind`.
    pub(crate) fn new(name: &str, help: &str, kind: Kind) -> FamilyBuf {
        let mut body = Vec::with_capacity(256);
        bytes(&mut body, 1, name.as_bytes());
        if !help.is_empty() {
            bytes(&mut body, 2, help.as_bytes());
        }
        uint(&mut body, 3, kind as u64);
        FamilyBuf { body }
    }

    /// Adds one `Metric` whose encoded fields are `metric`.
    pub(crate) fn metric(&mut self, metric: &[u8]) {
        bytes(&mut self.body, 4, metric);
    }

    /// Appends the family, length-prefixed.
    pub(crate) fn finish(self, out: &mut Vec<u8>) {
        varint(out, self.body.len() as u64);
        out.extend_from_slice(&self.body);
    }
}

/// Appends the registry's `families` to `out`.
pub fn encode(families: &[MetricFamily], out: &mut Vec<u8>) {
    let mut metric = Vec::with_capacity(256);
    let mut inner = Vec::with_capacity(256);
    let mut scratch = Vec::with_capacity(128);
    for mf in families {
        let kind = match mf.get_field_type() {
            MetricType::COUNTER => Kind::Counter,
            MetricType::GAUGE => Kind::Gauge,
            MetricType::HISTOGRAM => Kind::Histogram,
            MetricType::SUMMARY => Kind::Summary,
            // The crate never makes untyped metrics.
            MetricType::UNTYPED => continue,
        };
        let mut family = FamilyBuf::new(mf.name(), mf.help(), kind);
        for m in mf.get_metric() {
            metric.clear();
            for lp in m.get_label() {
                label(&mut metric, lp.name(), lp.value(), &mut scratch);
            }
            match kind {
                Kind::Counter => value(&mut metric, kind, m.get_counter().get_value()),
                Kind::Gauge => value(&mut metric, kind, m.get_gauge().get_value()),
                Kind::Histogram => {
                    let h = m.get_histogram();
                    inner.clear();
                    uint(&mut inner, 1, h.get_sample_count());
                    double(&mut inner, 2, h.get_sample_sum());
                    for b in h.get_bucket() {
                        scratch.clear();
                        uint(&mut scratch, 1, b.cumulative_count());
                        double(&mut scratch, 2, b.upper_bound());
                        bytes(&mut inner, 3, &scratch);
                    }
                    bytes(&mut metric, 7, &inner);
                }
                Kind::Summary => {
                    let s = m.get_summary();
                    inner.clear();
                    uint(&mut inner, 1, s.sample_count());
                    double(&mut inner, 2, s.sample_sum());
                    for q in s.get_quantile() {
                        scratch.clear();
                        double(&mut scratch, 1, q.quantile());
                        double(&mut scratch, 2, q.value());
                        bytes(&mut inner, 3, &scratch);
                    }
                    bytes(&mut metric, 4, &inner);
                }
            }
            family.metric(&metric);
        }
        family.finish(out);
    }
}

/// Whether an `Accept` header asks for the delimited protobuf format.
pub fn accepts(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let mut params = part.split(';').map(str::trim);
        params
            .next()
            .is_some_and(|t| t.eq_ignore_ascii_case("application/vnd.google.protobuf"))
            && !part.replace(' ', "").contains(";q=0,")
            && !part.replace(' ', "").ends_with(";q=0")
            && params
                .clone()
                .any(|p| p == "proto=io.prometheus.client.MetricFamily")
            && params.any(|p| p == "encoding=delimited")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_are_the_wire_format() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
        assert_eq!(zigzag(i64::from(i32::MIN)), u64::from(u32::MAX));
    }

    #[test]
    fn accept_negotiation_follows_what_prometheus_sends() {
        // Prometheus 2.42 with --enable-feature=native-histograms.
        assert!(accepts("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"));
        // Without the flag.
        assert!(!accepts(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!accepts(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text"
        ));
        assert!(!accepts("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0"));
        assert!(!accepts(""));
    }
}
