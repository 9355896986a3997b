//! What an agent keeps per soak phase (`verdict::stats::PhaseStats`), and how
//! close its percentiles are to the exact ones: one HTTP target (connect,
//! TLS, first byte, transfer and total) probed every 10 s for one hour, and
//! for a whole day with latencies spread over 20x, then the same for 50
//! targets. Then what the daemon keeps per target of a change window
//! (`window::WindowFigures`: a sketch of the latencies inside and the p95 of
//! the hour before) for a 4-hour and a 24-hour window, in memory and as the
//! JSON it saves. Prints Markdown tables for bench/RESULTS.md.
//!
//! Run: `cargo run --release --example soak_footprint`.

use std::time::Duration;

use chrono::DateTime;
use mailpulse::sample::{Phase, ProbeKind, Sample};
use mailpulse::verdict::stats::PhaseStats;
use mailpulse::window::WindowFigures;

/// A successful probe of `target` at `at` (Unix seconds) of `ms` in all.
fn sample(target: &str, at: i64, ms: f64) -> Sample {
    let wall = DateTime::from_timestamp(at, 0).unwrap();
    let d = |f: f64| Duration::from_secs_f64(ms * f / 1e3);
    Sample {
        target: target.into(),
        kind: ProbeKind::Http,
        started_at: wall,
        steady_at: wall,
        phases: vec![
            (Phase::Connect, d(0.05)),
            (Phase::Tls, d(0.15)),
            (Phase::FirstByte, d(0.6)),
            (Phase::Transfer, d(0.2)),
            (Phase::Total, d(1.0)),
        ],
        failure: None,
        status: Some(200),
        tls: None,
        schedule_lag: Duration::ZERO,
        notes: vec![],
        messages: None,
    }
}

/// A deterministic spread of latencies: `base` times 1 to `spread`.
fn latency(k: i64, base: f64, spread: f64) -> f64 {
    let u = ((k as u64).wrapping_mul(2_654_435_761) % 1_000_003) as f64 / 1_000_003.0;
    base * spread.powf(u)
}

fn exact(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((q * values.len() as f64).ceil() as usize).max(1) - 1]
}

fn main() {
    println!("| case | probes per target | bytes per target and phase | worst p50/p95/p99 error |");
    println!("|---|---|---|---|");
    for (name, targets, probes, spread) in [
        ("1 target, 1 h, 150-190 ms", 1usize, 360i64, 190.0 / 150.0),
        ("1 target, 24 h, 100 ms-2 s", 1, 8_640, 20.0),
        ("50 targets, 1 h, 150-190 ms", 50, 360, 190.0 / 150.0),
    ] {
        let mut p = PhaseStats::default();
        let mut worst: f64 = 0.0;
        for t in 0..targets {
            let target = format!("target-{t:02}");
            let mut values = Vec::new();
            for k in 0..probes {
                let ms = latency(
                    k + t as i64 * 7,
                    if spread > 2.0 { 100.0 } else { 150.0 },
                    spread,
                );
                values.push(ms / 1e3);
                p.observe(&sample(&target, 1_764_748_800 + k * 10, ms));
            }
            let sketch = &p.targets[&target].total;
            for q in [0.5, 0.95, 0.99] {
                let want = exact(&mut values, q);
                let got = sketch.quantile(q).unwrap();
                worst = worst.max(((got - want) / want).abs());
            }
        }
        println!(
            "| {name} | {probes} | {} | {:.3}% |",
            p.heap_bytes() / targets,
            worst * 100.0
        );
    }
    println!();
    println!("| change window | probes per target | heap bytes per target | saved JSON bytes per target | p95 error |");
    println!("|---|---|---|---|---|");
    for (name, probes, base, spread) in [
        ("4 h, 150-190 ms", 1_440i64, 150.0, 190.0 / 150.0),
        ("24 h, 100 ms-2 s", 8_640, 100.0, 20.0),
    ] {
        let mut figures = WindowFigures::default();
        let mut values = Vec::new();
        for k in 0..probes {
            let s = latency(k, base, spread) / 1e3;
            values.push(s);
            figures.observe("owa", Some(s), || (Some(0.15), 240));
        }
        let want = exact(&mut values, 0.95);
        let got = figures.targets["owa"].inside_p95_seconds().unwrap();
        println!(
            "| {name} | {probes} | {} | {} | {:.3}% |",
            figures.heap_bytes(),
            serde_json::to_vec(&figures).unwrap().len(),
            ((got - want) / want).abs() * 100.0
        );
    }
}
