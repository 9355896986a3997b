//! The footprint of the probe latency histograms (issue 16): bytes per
//! scrape in each format, series per target, render time, and the error of
//! the p50/p95/p99 a Prometheus `histogram_quantile` reads from the native
//! and from the classic buckets, for latencies from 1 ms to 30 s; and the
//! series of a plain HTTP and of an HTTPS target, before and after an
//! incident (the fleet budget: at most 40 per HTTP target).

use std::io::Write as _;
use std::time::{Duration, Instant};

use mailpulse::config::DEFAULT_LATENCY_BUCKETS;
use mailpulse::detect::{DetectEvent, IncidentKind, State};
use mailpulse::metrics::histogram::{native_bound, native_index};
use mailpulse::metrics::{Format, Metrics};
use mailpulse::sample::{FailureReason, Phase, ProbeKind, Sample, TlsInfo};

const TARGETS: usize = 50;

fn sample(target: &str, total: f64) -> Sample {
    sample_of(target, total, false)
}

/// A successful HTTP probe; with `tls`, an HTTPS one (a `tls` step, the
/// connection's version and cipher, the certificate's expiry).
fn sample_of(target: &str, total: f64, tls: bool) -> Sample {
    let s = |v: f64| Duration::from_secs_f64(v);
    let mut phases = vec![
        (Phase::Dns, s(total * 0.01)),
        (Phase::Connect, s(total * 0.04)),
        (Phase::FirstByte, s(total * 0.85)),
        (Phase::Transfer, s(total * 0.10)),
        (Phase::Total, s(total)),
    ];
    if tls {
        phases.insert(2, (Phase::Tls, s(total * 0.05)));
    }
    Sample {
        target: target.to_string(),
        kind: ProbeKind::Http,
        started_at: chrono::DateTime::UNIX_EPOCH,
        steady_at: chrono::DateTime::UNIX_EPOCH,
        phases,
        failure: None,
        status: Some(200),
        tls: tls.then(|| TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            earliest_expiry: Some(1_800_000_000),
        }),
        schedule_lag: Duration::ZERO,
        notes: Vec::new(),
        messages: None,
    }
}

/// xorshift64: uniform over [0, 1).
fn uniform(x: &mut u64) -> f64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    (*x >> 11) as f64 / (1u64 << 53) as f64
}

fn gzip(page: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(page).unwrap();
    gz.finish().unwrap()
}

fn micros(n: usize, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut sink = 0;
    for _ in 0..n {
        sink += f();
    }
    assert!(sink > 0);
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// 50 HTTP targets, 1,000 probes each, totals uniform over 150-190 ms.
fn agent(phase_histograms: bool) -> Metrics {
    let m = Metrics::new("footprint").unwrap();
    m.probe
        .configure_histograms(DEFAULT_LATENCY_BUCKETS, phase_histograms);
    let reasons = [
        FailureReason::Dns,
        FailureReason::Connect,
        FailureReason::Timeout,
        FailureReason::Status,
        FailureReason::Protocol,
    ];
    let mut x = 0x2545_f491_4f6c_dd1d;
    for i in 0..TARGETS {
        let name = format!("t{i:04}");
        m.probe.add_target(&name, ProbeKind::Http, &reasons);
        m.detect.add_target(&name);
        for _ in 0..1000 {
            m.probe
                .record(&sample(&name, 0.150 + 0.040 * uniform(&mut x)));
        }
        m.detect.record_state(
            &name,
            State::Healthy,
            Some(Duration::from_millis(170)),
            None,
        );
    }
    m
}

/// A closed incident of `kind` that lasted `seconds`.
fn incident(kind: IncidentKind, seconds: i64) -> mailpulse::detect::Incident {
    let start = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let end = start + chrono::Duration::seconds(seconds);
    serde_json::from_value(serde_json::json!({
        "kind": kind,
        "started_at": start,
        "detected_at": start,
        "recovered_at": end,
        "closed_at": end,
        "peak_latency": null,
        "baseline_at_onset": null,
        "worst_phase": null,
        "slow_count": 0,
        "failed_count": 0,
    }))
    .unwrap()
}

/// The series of each kind of target in a text scrape, as Prometheus
/// stores them: (plain HTTP, HTTPS) x (before any incident, after a closed
/// `down` incident, after a closed incident of each kind), and how many of
/// them are latency histogram series (which native histograms store as one
/// series per histogram; the incident histograms stay classic).
fn series_by_target(phase_histograms: bool) -> Vec<(&'static str, usize, usize)> {
    let m = Metrics::new("series").unwrap();
    m.probe
        .configure_histograms(DEFAULT_LATENCY_BUCKETS, phase_histograms);
    let both: &[(IncidentKind, i64)] = &[(IncidentKind::Slow, 600), (IncidentKind::Down, 120)];
    let down: &[(IncidentKind, i64)] = &[(IncidentKind::Down, 120)];
    let targets: [(&str, bool, &[(IncidentKind, i64)]); 6] = [
        ("http", false, &[]),
        ("https", true, &[]),
        ("http-down", false, down),
        ("https-down", true, down),
        ("http-both", false, both),
        ("https-both", true, both),
    ];
    let mut x = 0x2545_f491_4f6c_dd1d;
    for (name, tls, incidents) in targets {
        let mut reasons = vec![
            FailureReason::Dns,
            FailureReason::Connect,
            FailureReason::Timeout,
            FailureReason::Status,
            FailureReason::Protocol,
        ];
        if tls {
            reasons.push(FailureReason::Tls);
        }
        m.probe.add_target(name, ProbeKind::Http, &reasons);
        m.detect.add_target(name);
        for _ in 0..100 {
            m.probe
                .record(&sample_of(name, 0.150 + 0.040 * uniform(&mut x), tls));
        }
        let baseline = Some(Duration::from_millis(170));
        m.detect.record_state(name, State::Healthy, baseline, None);
        for (kind, seconds) in incidents {
            let i = incident(*kind, *seconds);
            m.detect.record_event(name, &DetectEvent::Opened(i.clone()));
            m.detect
                .record_state(name, State::Degraded, baseline, Some(i.started_at));
            m.detect.record_event(name, &DetectEvent::Closed(i));
            m.detect.record_state(name, State::Healthy, baseline, None);
        }
    }
    let page = String::from_utf8(m.encode_as(Format::Text)).unwrap();
    targets
        .iter()
        .map(|(name, _, _)| {
            let label = format!("target=\"{name}\"");
            let lines: Vec<&str> = page
                .lines()
                .filter(|l| !l.starts_with('#') && l.contains(&label))
                .collect();
            let histogram = lines
                .iter()
                .filter(|l| l.starts_with("mailpulse_probe_duration_seconds"))
                .count();
            (*name, lines.len(), histogram)
        })
        .collect()
}

/// Prints the footprint tables.
pub fn report() {
    println!("\n### Footprint: {TARGETS} plain HTTP targets, 1,000 probes each\n");
    println!("| histograms | series per target | text KiB | text+gzip KiB | protobuf KiB | protobuf+gzip KiB | render text µs | render text+gzip µs | render protobuf µs |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for phase_histograms in [false, true] {
        let m = agent(phase_histograms);
        let text = m.encode_as(Format::Text);
        let proto = m.encode_as(Format::Protobuf);
        let page = String::from_utf8(text.clone()).unwrap();
        let series = page
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("target=\"t0007\""))
            .count();
        let kib = |n: usize| n as f64 / 1024.0;
        println!(
            "| {} | {series} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} |",
            if phase_histograms {
                "every step (`phase_histograms = true`)"
            } else {
                "`total` only (default)"
            },
            kib(text.len()),
            kib(gzip(&text).len()),
            kib(proto.len()),
            kib(gzip(&proto).len()),
            micros(200, || m.encode_as(Format::Text).len()),
            micros(200, || gzip(&m.encode_as(Format::Text)).len()),
            micros(200, || m.encode_as(Format::Protobuf).len()),
        );
    }

    println!(
        "\n### Series per target, as Prometheus stores them (budget: 40 per default HTTP target)\n"
    );
    println!("A text scrape (classic buckets); with native histograms each latency histogram is one series (the incident duration histograms stay classic). \"After a down incident\": one closed `down` incident; \"after both kinds\": a closed `slow` and a closed `down` incident.\n");
    println!("| target | default | default, native histograms | `phase_histograms = true` |");
    println!("|---|---:|---:|---:|");
    let default = series_by_target(false);
    let every_step = series_by_target(true);
    let per_histogram = default[0].2;
    for ((name, n, h), (_, all, _)) in default.iter().zip(&every_step) {
        let label = match *name {
            "http" => "plain HTTP",
            "https" => "HTTPS",
            "http-down" => "plain HTTP, after a down incident",
            "https-down" => "HTTPS, after a down incident",
            "http-both" => "plain HTTP, after incidents of both kinds",
            _ => "HTTPS, after incidents of both kinds",
        };
        println!("| {label} | {n} | {} | {all} |", n - h + h / per_histogram);
    }

    println!(
        "\n### Quantile error, native (schema 5) and classic (default `latency_buckets`) buckets\n"
    );
    println!("What `histogram_quantile` reads (linear inside the bucket holding the rank, as Prometheus 2.42 does for both kinds) against the exact quantile of 10,000 latencies uniform over [a, 1.3a]; the worst of p50, p95 and p99.\n");
    println!("| latencies | worst native error | worst classic error |");
    println!("|---|---:|---:|");
    let mut x = 0x9e37_79b9_7f4a_7c15;
    let mut worst = (0.0f64, 0.0f64);
    for a in [0.001, 0.0042, 0.018, 0.150, 0.641, 2.0, 7.5, 23.0] {
        let mut v: Vec<f64> = (0..10_000)
            .map(|_| a * (1.0 + 0.3 * uniform(&mut x)))
            .collect();
        v.sort_by(f64::total_cmp);
        let (mut native, mut classic) = (0.0f64, 0.0f64);
        for q in [0.5, 0.95, 0.99] {
            let rank = q * (v.len() - 1) as f64;
            let exact = v[rank.floor() as usize]
                + (v[rank.ceil() as usize] - v[rank.floor() as usize]) * rank.fract();
            native = native.max((native_quantile(&v, q) / exact - 1.0).abs());
            classic = classic.max((classic_quantile(&v, q) / exact - 1.0).abs());
        }
        worst = (worst.0.max(native), worst.1.max(classic));
        println!(
            "| {:.4}-{:.4} s | {:.2}% | {:.1}% |",
            a,
            a * 1.3,
            native * 100.0,
            classic * 100.0
        );
    }
    println!(
        "| worst | {:.2}% | {:.1}% |",
        worst.0 * 100.0,
        worst.1 * 100.0
    );
}

/// Linear interpolation inside the bucket that holds rank `q * count`.
fn interpolate(buckets: &[(f64, f64, u64)], count: u64, q: f64) -> f64 {
    let rank = q * count as f64;
    let mut below = 0u64;
    for (lower, upper, n) in buckets {
        if (below + n) as f64 >= rank && *n > 0 {
            return lower + (upper - lower) * (rank - below as f64) / *n as f64;
        }
        below += n;
    }
    buckets.last().map_or(f64::NAN, |b| b.1)
}

fn native_quantile(sorted: &[f64], q: f64) -> f64 {
    let mut buckets: Vec<(f64, f64, u64)> = Vec::new();
    for v in sorted {
        let i = native_index(*v);
        match buckets.last_mut() {
            Some(b) if b.1 == native_bound(i) => b.2 += 1,
            _ => buckets.push((native_bound(i - 1), native_bound(i), 1)),
        }
    }
    interpolate(&buckets, sorted.len() as u64, q)
}

fn classic_quantile(sorted: &[f64], q: f64) -> f64 {
    let mut lower = 0.0;
    let mut buckets = Vec::new();
    for upper in DEFAULT_LATENCY_BUCKETS {
        let n = sorted
            .iter()
            .filter(|v| **v > lower && **v <= *upper)
            .count() as u64;
        buckets.push((lower, *upper, n));
        lower = *upper;
    }
    // Past the last bound, Prometheus answers the last bound.
    let over = sorted.iter().filter(|v| **v > lower).count() as u64;
    buckets.push((lower, lower, over));
    interpolate(&buckets, sorted.len() as u64, q)
}
