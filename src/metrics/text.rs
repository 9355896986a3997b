//! The Prometheus text exposition format (version 0.0.4), written with as
//! little work per line as the format allows.
//!
//! The `prometheus` crate's `TextEncoder` allocates two strings per sample
//! line (the value, and the `le` bound of every histogram bucket) and writes
//! every label of every line through a `dyn Write`. A histogram series is 18
//! lines that share one label set, and with 50 HTTP targets the probe
//! histograms are 4,500 of the page's 5,400 lines. Here each series' labels
//! are escaped once and copied into each of its lines, the bucket bounds of a
//! family are formatted once, and integral values (counts) skip float
//! formatting. The output is the same text, byte for byte, as the crate's
//! encoder for finite values; non-finite values are written as the format
//! spells them (`+Inf`, `-Inf`, `NaN`).

use std::io::Write as _;

use prometheus::proto::{Metric, MetricFamily, MetricType};

/// Appends `families` to `out` in the text format.
pub fn encode(families: &[MetricFamily], out: &mut Vec<u8>) {
    let mut labels = Vec::with_capacity(256);
    let mut bounds: Vec<(f64, Vec<u8>)> = Vec::new();
    for mf in families {
        let name = mf.name().as_bytes();
        let kind = mf.get_field_type();
        family_head(
            out,
            mf.name(),
            mf.help(),
            match kind {
                MetricType::COUNTER => "counter",
                MetricType::GAUGE => "gauge",
                MetricType::HISTOGRAM => "histogram",
                MetricType::SUMMARY => "summary",
                MetricType::UNTYPED => "untyped",
            },
        );
        bounds.clear();
        for m in mf.get_metric() {
            label_block(m, &mut labels);
            match kind {
                MetricType::COUNTER => {
                    line(out, name, b"", &labels, None, m.get_counter().get_value());
                }
                MetricType::GAUGE => line(out, name, b"", &labels, None, m.get_gauge().get_value()),
                // The crate never makes untyped metrics (its encoder cannot write them).
                MetricType::UNTYPED => {}
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut inf_seen = false;
                    for (i, b) in h.get_bucket().iter().enumerate() {
                        let upper = b.upper_bound();
                        if bounds
                            .get(i)
                            .is_none_or(|(v, _)| v.to_bits() != upper.to_bits())
                        {
                            let mut text = Vec::with_capacity(8);
                            bound(upper, &mut text);
                            bounds.truncate(i);
                            bounds.push((upper, text));
                        }
                        let count = b.cumulative_count() as f64;
                        line(out, name, b"_bucket", &labels, Some(&bounds[i].1), count);
                        inf_seen |= upper.is_infinite() && upper.is_sign_positive();
                    }
                    if !inf_seen {
                        let count = h.get_sample_count() as f64;
                        line(out, name, b"_bucket", &labels, Some(b"+Inf"), count);
                    }
                    line(out, name, b"_sum", &labels, None, h.get_sample_sum());
                    line(
                        out,
                        name,
                        b"_count",
                        &labels,
                        None,
                        h.get_sample_count() as f64,
                    );
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        let mut text = Vec::new();
                        float(q.quantile(), &mut text);
                        line_with(out, name, b"", &labels, b"quantile", Some(&text), q.value());
                    }
                    line(out, name, b"_sum", &labels, None, s.sample_sum());
                    line(out, name, b"_count", &labels, None, s.sample_count() as f64);
                }
            }
        }
    }
}

/// The `# HELP` (when there is help) and `# TYPE` lines of a family.
pub(crate) fn family_head(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    if !help.is_empty() {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        escape(help, false, out);
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
}

/// `k="v",k2="v2"` of a series, escaped, without braces.
fn label_block(m: &Metric, out: &mut Vec<u8>) {
    out.clear();
    for (i, lp) in m.get_label().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        label_pair(out, lp.name(), lp.value());
    }
}

/// One `name="value"` label, the value escaped.
pub(crate) fn label_pair(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    escape(value, true, out);
    out.push(b'"');
}

/// One sample line; `le` adds the bucket label.
pub(crate) fn line(
    out: &mut Vec<u8>,
    name: &[u8],
    suffix: &[u8],
    labels: &[u8],
    le: Option<&[u8]>,
    v: f64,
) {
    line_with(out, name, suffix, labels, b"le", le, v);
}

fn line_with(
    out: &mut Vec<u8>,
    name: &[u8],
    suffix: &[u8],
    labels: &[u8],
    extra_name: &[u8],
    extra: Option<&[u8]>,
    v: f64,
) {
    out.extend_from_slice(name);
    out.extend_from_slice(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push(b'{');
        out.extend_from_slice(labels);
        if let Some(value) = extra {
            if !labels.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(extra_name);
            out.extend_from_slice(b"=\"");
            out.extend_from_slice(value);
            out.push(b'"');
        }
        out.push(b'}');
    }
    out.push(b' ');
    float(v, out);
    out.push(b'\n');
}

/// A bucket bound as the crate writes it (`+Inf` for the last one).
fn bound(v: f64, out: &mut Vec<u8>) {
    if v.is_infinite() && v.is_sign_positive() {
        out.extend_from_slice(b"+Inf");
    } else {
        float(v, out);
    }
}

/// Largest magnitude written through the integer fast path; below 2^53, so
/// every integral f64 in range is exact, and Rust's `Display` writes these
/// without an exponent or fraction too.
const INTEGER_FAST_PATH: f64 = 1e15;

/// A sample value: Rust's shortest round-trip `Display`, as the crate writes
/// it, with the text format's spellings for infinities and NaN.
pub(crate) fn float(v: f64, out: &mut Vec<u8>) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if v.fract() == 0.0 && v.abs() < INTEGER_FAST_PATH && !(v == 0.0 && v.is_sign_negative())
    {
        if v < 0.0 {
            out.push(b'-');
        }
        uint(v.abs() as u64, out);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// An unsigned integer in decimal, as `Display` writes it, without the
/// formatting machinery (most of a page's values are bucket counts).
pub(crate) fn uint(mut v: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Escapes backslash and newline, and `"` inside label values.
fn escape(s: &str, quote: bool, out: &mut Vec<u8>) {
    let special = |b: &u8| *b == b'\\' || *b == b'\n' || (quote && *b == b'"');
    // Nearly every value has nothing to escape: one copy.
    if !s.as_bytes().iter().any(special) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quote => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{
        CounterVec, Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, Opts, Registry,
        TextEncoder,
    };

    use super::*;

    fn crate_encoding(reg: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&reg.gather(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn ours(reg: &Registry) -> String {
        let mut out = Vec::new();
        encode(&reg.gather(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_what_the_crate_writes() {
        let reg = Registry::new();
        let h = HistogramVec::new(
            HistogramOpts::new("h_seconds", "A histogram\nwith \\ in its help.")
                .buckets(crate::config::DEFAULT_LATENCY_BUCKETS.to_vec()),
            &["target", "phase"],
        )
        .unwrap();
        reg.register(Box::new(h.clone())).unwrap();
        for (t, p, v) in [
            ("owa", "total", 0.1834),
            ("owa", "dns", 0.000_004_1),
            ("we\"ird\\name\n", "total", 12.5),
            ("owa", "total", 31.0),
        ] {
            h.with_label_values(&[t, p]).observe(v);
        }
        let c = CounterVec::new(Opts::new("c_total", "Counts."), &["reason"]).unwrap();
        reg.register(Box::new(c.clone())).unwrap();
        c.with_label_values(&["dns"]).inc_by(3.0);
        c.with_label_values(&["timeout"]).inc_by(2.5);
        let g = Gauge::new("g", "A gauge.").unwrap();
        reg.register(Box::new(g.clone())).unwrap();
        g.set(1_764_000_000.123);
        let big = Gauge::new("big", "A big gauge.").unwrap();
        reg.register(Box::new(big.clone())).unwrap();
        big.set(3.0e20);
        let i = IntCounter::new("plain_total", "Plain.").unwrap();
        reg.register(Box::new(i.clone())).unwrap();
        i.inc();
        let tiny = Gauge::new("tiny", "Tiny.").unwrap();
        reg.register(Box::new(tiny.clone())).unwrap();
        tiny.set(-1.5e-9);

        assert_eq!(ours(&reg), crate_encoding(&reg));
    }

    #[test]
    fn integers_are_written_as_display_writes_them() {
        for v in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            uint(v, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
        for v in [0.0, 1.0, -1.0, -42.0, 7e14, -7e14, 1e15, 2.5, -0.0] {
            let mut out = Vec::new();
            float(v, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string(), "{v}");
        }
    }

    #[test]
    fn spells_non_finite_values_as_the_format_does() {
        let reg = Registry::new();
        let g = prometheus::GaugeVec::new(Opts::new("g", "G."), &["v"]).unwrap();
        reg.register(Box::new(g.clone())).unwrap();
        g.with_label_values(&["inf"]).set(f64::INFINITY);
        g.with_label_values(&["nan"]).set(f64::NAN);
        g.with_label_values(&["neg"]).set(f64::NEG_INFINITY);
        let text = ours(&reg);
        assert!(text.contains("g{v=\"inf\"} +Inf\n"), "{text}");
        assert!(text.contains("g{v=\"nan\"} NaN\n"), "{text}");
        assert!(text.contains("g{v=\"neg\"} -Inf\n"), "{text}");
    }

    #[test]
    fn the_agents_own_page_matches_the_crate() {
        let m = crate::metrics::Metrics::new("bench").unwrap();
        let families = m.registry.gather();
        let mut out = Vec::new();
        encode(&families, &mut out);
        let mut expected = Vec::new();
        TextEncoder::new().encode(&families, &mut expected).unwrap();
        assert_eq!(String::from_utf8(out), String::from_utf8(expected));
    }
}
