//! The status page benchmark: a board of 50 HTTP targets with a full hour
//! of 1 s samples (and a day of hourly counts), ten of them in an open
//! incident with a hostile name, and 50 recent incidents; it times what the
//! agent does per sample (`Board::record`), per request (the board copied
//! out, the page and the JSON rendered) and reports the page's size and a
//! target's memory (by the structure's arithmetic, and measured as the
//! resident growth of a board of 2,000 targets).
//!
//! A measuring tool, not a test: nothing here asserts. Run it with
//! `bench/status.sh`, which builds it in release mode (the example
//! `status_bench`) and prints a Markdown section for `bench/notes.md`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mailpulse::detect::{Incident, SlowdownSettings, State};
use mailpulse::sample::{Phase, ProbeKind, Sample};
use mailpulse::status::board::{Board, Judged};
use mailpulse::status::json::{IncidentView, StatusView};
use mailpulse::status::{html, Shared};
use tokio::time::Instant;

const TARGETS: usize = 50;
const RENDERS: usize = 300;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn sample(target: &str, secs: i64, ms: u64) -> Sample {
    Sample {
        target: target.to_string(),
        kind: ProbeKind::Http,
        started_at: at(secs),
        steady_at: at(secs),
        phases: vec![
            (Phase::Dns, Duration::from_micros(40)),
            (Phase::Connect, Duration::from_micros(150)),
            (Phase::Tls, Duration::from_millis(ms / 3)),
            (Phase::FirstByte, Duration::from_millis(ms / 2)),
            (Phase::Transfer, Duration::from_micros(300)),
            (Phase::Total, Duration::from_millis(ms)),
        ],
        failure: None,
        status: Some(200),
        tls: None,
        schedule_lag: Duration::from_micros(800),
        notes: vec![],
        messages: None,
    }
}

fn incident(started: i64, recovered: Option<i64>) -> Incident {
    serde_json::from_value(serde_json::json!({
        "kind": "slow", "started_at": at(started), "detected_at": at(started + 30),
        "recovered_at": recovered.map(at), "closed_at": recovered.map(at),
        "peak_latency": {"secs": 1, "nanos": 500_000_000},
        "baseline_at_onset": {"secs": 0, "nanos": 80_000_000},
        "worst_phase": "first_byte", "slow_count": 40, "failed_count": 2
    }))
    .unwrap()
}

fn name(i: usize) -> String {
    if i.is_multiple_of(5) {
        format!("<script>alert({i})</script> cas{i:02}.example.org")
    } else {
        format!("cas{i:02}-owa.example.org")
    }
}

/// A board of `targets` targets after an hour of 1 s probes; returns the
/// board and the time per `record`.
fn filled(targets: usize, hour_of_samples: i64) -> (Board, Duration) {
    let settings = SlowdownSettings::default();
    let open = incident(3000, None);
    let mut board = Board::new("cas01", at(0));
    let names: Vec<String> = (0..targets).map(name).collect();
    let began = Instant::now();
    let mut n = 0u32;
    for s in 0..hour_of_samples {
        for (i, t) in names.iter().enumerate() {
            let slow = i < 10 && s >= 3000;
            let ms = if slow {
                900
            } else {
                80 + (s as u64 * 7 + i as u64) % 40
            };
            board.record(
                &sample(t, s, ms),
                Judged {
                    state: if slow {
                        State::Degraded
                    } else {
                        State::Healthy
                    },
                    baseline: Some(Duration::from_millis(95)),
                    settings: &settings,
                    open: slow.then_some(&open),
                    event: slow && s == 3000,
                },
            );
            n += 1;
        }
    }
    (board, began.elapsed() / n.max(1))
}

fn resident_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn main() {
    let (board, per_record) = filled(TARGETS, 3600);
    let now = at(3600);
    let recent: Vec<IncidentView> = (0..50)
        .map(|i| {
            IncidentView::new(
                &name(i % TARGETS),
                &incident(i as i64 * 60, Some(i as i64 * 60 + 45)),
                now,
            )
        })
        .collect();
    let shared = Shared::new("cas01", at(0));
    shared.update(|b| *b = board.clone());

    let (mut copy, mut page_t, mut json_t) = (vec![], vec![], vec![]);
    let (mut page_len, mut json_len, mut pretty_len) = (0, 0, 0);
    for _ in 0..RENDERS {
        let t = Instant::now();
        let snapshot = shared.snapshot();
        copy.push(t.elapsed());
        let t = Instant::now();
        let view = StatusView::new(&snapshot, now);
        let page = html::status_page(&view, &recent);
        page_t.push(t.elapsed());
        page_len = page.len();
        let t = Instant::now();
        let view = StatusView::new(&snapshot, now);
        let json = serde_json::to_string(&view).unwrap();
        json_t.push(t.elapsed());
        json_len = json.len();
        pretty_len = serde_json::to_string_pretty(&view).unwrap().len();
    }
    for v in [&mut copy, &mut page_t, &mut json_t] {
        v.sort();
    }

    // Memory: the resident growth of a board of 2,000 targets with a full hour each.
    let before = resident_kib();
    let (big, _) = filled(2000, 3600);
    let after = resident_kib();
    let measured = (after.saturating_sub(before)) as f64 * 1024.0 / 2000.0;
    drop(big);

    println!("| figure | value |\n|---|---:|");
    println!(
        "| `Board::record` per sample (pipeline) | {:.2} µs |",
        per_record.as_secs_f64() * 1e6
    );
    println!(
        "| board copied out for a request, 50 targets, median / p99 | {} / {} ms |",
        ms(percentile(&copy, 0.5)),
        ms(percentile(&copy, 0.99))
    );
    println!(
        "| `/` rendered (view + HTML), 50 targets + 50 incidents, median / p99 | {} / {} ms |",
        ms(percentile(&page_t, 0.5)),
        ms(percentile(&page_t, 0.99))
    );
    println!("| `/` size | {:.1} KiB |", page_len as f64 / 1024.0);
    println!(
        "| `/api/v1/status` rendered, median / p99 | {} / {} ms |",
        ms(percentile(&json_t, 0.5)),
        ms(percentile(&json_t, 0.99))
    );
    println!(
        "| `/api/v1/status` size (compact, the default) | {:.1} KiB |",
        json_len as f64 / 1024.0
    );
    println!(
        "| `/api/v1/status?pretty` size | {:.1} KiB |",
        pretty_len as f64 / 1024.0
    );
    println!(
        "| memory per target, by the structure (`Board::bytes_per_target`) | {:.1} KiB |",
        Board::bytes_per_target() as f64 / 1024.0
    );
    println!(
        "| memory per target, measured (resident growth of 2,000 targets / 2,000) | {:.1} KiB |",
        measured / 1024.0
    );
}
