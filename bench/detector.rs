//! The slowdown detector benchmark: replays every labelled real series in
//! the shared datasets and a set of synthetic soak scenarios through the
//! very same code as `mailpulse replay` (the CSV reader and
//! [`replay_series`] with the default [`SlowdownSettings`]), scores the
//! incidents against the labels, and writes a Markdown report.
//!
//! It is a measuring tool, not a test: nothing here asserts, and it reads
//! files outside the repository. Run it with `bench/detector.sh`.
//!
//! Usage: `detector_bench <datasets-dir> <output.md>`

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailpulse::detect::{Incident, Observation, SlowdownSettings};
use mailpulse::replay::{parse_timestamp, read_csv, replay_series, CsvOptions, ValueUnit};

/// The latency the typical level of a unit-less series is mapped to.
const TYPICAL_WEB_LATENCY: Duration = Duration::from_millis(200);

/// How many unlabelled rows before a labelled run give its reference level.
const REFERENCE_ROWS: usize = 24;

/// A labelled run is a rise when this many of its rows are at least
/// [`RISE_RATIO`] times the reference ...
const RISE_MIN_ROWS: usize = 3;
/// ... and a spike when fewer are.
const RISE_RATIO: f64 = 1.5;

/// What kind of event a label marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A sustained rise: what a slowdown detector should catch.
    Rise,
    /// A spike (one or two high rows).
    Spike,
    /// A drop, a pattern change, or anything else that is not a rise.
    Other,
}

impl Class {
    fn as_str(self) -> &'static str {
        match self {
            Class::Rise => "rise",
            Class::Spike => "spike",
            Class::Other => "drop/other",
        }
    }
}

/// One labelled (or generated) event.
#[derive(Debug, Clone)]
struct Event {
    /// First labelled row (window start for NAB).
    start: DateTime<Utc>,
    /// Last labelled row (window end for NAB).
    end: DateTime<Utc>,
    /// The first unlabelled row after the event, where the run has an end
    /// that means "recovered" (MSFT runs, synthetic events); `None` for the
    /// wide NAB windows.
    recovery: Option<DateTime<Utc>>,
    /// The labelled anomaly point of a NAB window.
    point: Option<DateTime<Utc>>,
    class: Class,
    /// Whether it is big enough for the default settings: at least three
    /// rows at 3x the reference and 100 ms above it (or failures).
    in_scope: bool,
    /// A short description for the details table.
    note: String,
}

/// A series ready to replay.
struct Series {
    name: String,
    group: &'static str,
    /// How values became latencies.
    mapping: String,
    observations: Vec<Observation>,
    events: Vec<Event>,
}

/// The score of one series under one set of settings.
#[derive(Debug, Default, Clone)]
struct Score {
    samples: usize,
    days: f64,
    interval: Duration,
    incidents: usize,
    rises: usize,
    rises_in_scope: usize,
    rises_hit: usize,
    rises_in_scope_hit: usize,
    others: usize,
    others_hit: usize,
    false_alarms: usize,
    /// detected_at - event start, per hit event.
    delays: Vec<f64>,
    /// started_at - event start (or NAB point), per hit event.
    start_errors: Vec<f64>,
    /// recovered_at - truth recovery, per hit event with an end.
    recovery_errors: Vec<f64>,
    /// Incidents that started inside an event, beyond the first.
    splits: usize,
    /// Events with more than one incident starting inside.
    split_events: usize,
    /// Per event: (hit, incident that hit it).
    per_event: Vec<Option<Incident>>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let datasets = PathBuf::from(args.get(1).map_or("../shared/datasets", String::as_str));
    let out = PathBuf::from(
        args.get(2)
            .map_or("bench/detector-results.md", String::as_str),
    );
    let mut series = Vec::new();
    series.extend(nab(&datasets)?);
    series.extend(msft(&datasets)?);
    series.extend(synthetic());

    if let Ok(name) = std::env::var("DETECTOR_BENCH_DUMP") {
        // Debugging aid: every incident of one series, and its events.
        for s in series.iter().filter(|s| s.name == name) {
            for e in &s.events {
                println!("event {} -> {}", e.start, e.end);
            }
            for i in replay_series(&SlowdownSettings::default(), s.observations.iter().cloned()) {
                println!("{i:?}");
            }
        }
        return Ok(());
    }
    if let Ok(trace) = std::env::var("DETECTOR_BENCH_TRACE") {
        // Debugging aid: `series,from,to[,settings]` prints every row of one
        // series between two `MM-DD HH:MM` times with the detector's baseline.
        let mut parts = trace.splitn(4, ',');
        let (name, from, to) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let settings = sweep_settings(parts.next().unwrap_or_default())?;
        for s in series.iter().filter(|s| s.name == name) {
            let mut d = mailpulse::detect::Detector::new(settings.clone());
            for o in &s.observations {
                let when = o.at.format("%m-%d %H:%M").to_string();
                let before = d.baseline();
                let avg = d.learned_baseline().average();
                let verdict = d.classify(o.latency);
                let event = d.observe(o);
                if when.as_str() >= from && when.as_str() <= to {
                    println!(
                        "{when} {:>10} base {:>10} avg {:>10} {:?} {:?} frozen={} {}",
                        o.latency.map_or("-".into(), |l| ms(l.as_secs_f64())),
                        before.map_or("-".into(), |b| ms(b.as_secs_f64())),
                        avg.map_or("-".into(), |b| ms(b.as_secs_f64())),
                        verdict,
                        d.state(),
                        d.learned_baseline().is_frozen(),
                        event.map_or(String::new(), |e| format!(
                            "{} {}",
                            match e {
                                mailpulse::detect::DetectEvent::Opened(_) => "OPENED",
                                mailpulse::detect::DetectEvent::Escalated(_) => "ESCALATED",
                                mailpulse::detect::DetectEvent::Closed(_) => "CLOSED",
                            },
                            e.incident().started_at.format("%m-%d %H:%M")
                        )),
                    );
                }
            }
        }
        return Ok(());
    }
    if let Ok(candidates) = std::env::var("DETECTOR_BENCH_SWEEP") {
        // Tuning aid: the issue 16 table for each `;`-separated candidate
        // of `key=value` settings over the defaults (`factor=2.5,min_delta=10ms`).
        for candidate in candidates.split(';') {
            let settings = sweep_settings(candidate)?;
            let scores: Vec<Score> = series.iter().map(|s| score(s, &settings)).collect();
            println!("## {candidate}\n");
            println!("{}", issue16(&series, &scores, &settings, true));
        }
        return Ok(());
    }
    let defaults = SlowdownSettings::default();
    let started = tokio::time::Instant::now();
    let scores: Vec<Score> = series.iter().map(|s| score(s, &defaults)).collect();
    let elapsed = started.elapsed();
    let sensitivity: Vec<(&str, Vec<Score>)> = [
        (
            "`min_delta = \"0s\"`",
            SlowdownSettings {
                min_delta: Duration::ZERO,
                ..SlowdownSettings::default()
            },
        ),
        (
            "`factor = 2.0`, `min_delta = \"0s\"`",
            SlowdownSettings {
                factor: 2.0,
                min_delta: Duration::ZERO,
                ..SlowdownSettings::default()
            },
        ),
    ]
    .into_iter()
    .map(|(label, settings)| (label, series.iter().map(|s| score(s, &settings)).collect()))
    .collect();
    let issue16_sensitivity: Vec<(&str, SlowdownSettings, Vec<Score>)> = [
        (
            "`factor = 2.5` (the issue's 2.5x)",
            SlowdownSettings {
                factor: 2.5,
                ..SlowdownSettings::default()
            },
        ),
        (
            "`relearn_after = \"6h\"` (the default before issue 16's figures)",
            SlowdownSettings {
                relearn_after: Duration::from_secs(6 * 3600),
                ..SlowdownSettings::default()
            },
        ),
    ]
    .into_iter()
    .map(|(label, settings)| {
        let scores = series.iter().map(|s| score(s, &settings)).collect();
        (label, settings, scores)
    })
    .collect();
    let report = render(
        &series,
        &scores,
        &sensitivity,
        &issue16_sensitivity,
        elapsed,
    );
    std::fs::write(&out, report)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Reads one CSV column pair with the replay reader.
fn read(
    path: &Path,
    value_column: &str,
    unit: ValueUnit,
) -> anyhow::Result<Vec<(DateTime<Utc>, Option<Duration>)>> {
    let text = std::fs::read_to_string(path)?;
    let options = CsvOptions {
        time_column: "timestamp".into(),
        value_column: value_column.into(),
        unit,
    };
    let rows = read_csv(&text, &options).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(rows.into_iter().map(|r| (r.at, r.latency)).collect())
}

/// The scale that maps the median of the positive values to [`TYPICAL_WEB_LATENCY`].
fn typical_scale(values: &[(DateTime<Utc>, Option<Duration>)]) -> f64 {
    let mut positive: Vec<f64> = values
        .iter()
        .filter_map(|(_, v)| *v)
        .map(|d| d.as_secs_f64())
        .filter(|v| *v > 0.0)
        .collect();
    positive.sort_by(f64::total_cmp);
    let median = positive.get(positive.len() / 2).copied().unwrap_or(1.0);
    TYPICAL_WEB_LATENCY.as_secs_f64() / median
}

fn observations(values: &[(DateTime<Utc>, Option<Duration>)], scale: f64) -> Vec<Observation> {
    values
        .iter()
        .map(|(at, v)| Observation {
            at: *at,
            wall: None,
            latency: v.map(|d| d.mul_f64(scale)),
            worst_phase: None,
        })
        .collect()
}

fn file_stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The NAB series, their windows and points. Values have no unit: each
/// series is scaled so its typical level is a 200 ms web latency.
fn nab(root: &Path) -> anyhow::Result<Vec<Series>> {
    let windows: HashMap<String, Vec<[String; 2]>> = serde_json::from_str(
        &std::fs::read_to_string(root.join("nab/labels/combined_windows_subset.json"))?,
    )?;
    let points: HashMap<String, Vec<String>> = serde_json::from_str(&std::fs::read_to_string(
        root.join("nab/labels/combined_labels_subset.json"),
    )?)?;
    let mut out = Vec::new();
    for dir in ["realKnownCause", "realAWSCloudwatch"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("nab/data").join(dir))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        for path in files {
            let key = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
            let values = read(&path, "value", ValueUnit::Seconds)?;
            let scale = typical_scale(&values);
            let observations = observations(&values, scale);
            let rises =
                key.contains("ec2_cpu_utilization_ac20cd") || key.contains("rds_cpu_utilization");
            let label_points: Vec<DateTime<Utc>> = points
                .get(&key)
                .into_iter()
                .flatten()
                .map(|p| parse_timestamp(p).map_err(anyhow::Error::msg))
                .collect::<Result<_, _>>()?;
            let mut events = Vec::new();
            for [a, b] in windows.get(&key).into_iter().flatten() {
                let start = parse_timestamp(a).map_err(anyhow::Error::msg)?;
                let end = parse_timestamp(b).map_err(anyhow::Error::msg)?;
                let point = label_points
                    .iter()
                    .copied()
                    .find(|p| *p >= start && *p <= end);
                let in_scope = in_scope_between(&observations, start, end);
                events.push(Event {
                    start,
                    end,
                    recovery: None,
                    point,
                    class: if rises { Class::Rise } else { Class::Other },
                    in_scope,
                    note: format!("window {} h", (end - start).num_minutes() / 60),
                });
            }
            out.push(Series {
                name: file_stem(&path),
                group: if dir == "realKnownCause" {
                    "NAB realKnownCause"
                } else {
                    "NAB realAWSCloudwatch"
                },
                mapping: format!("x{} (median -> 200 ms)", sig(scale)),
                observations,
                events,
            });
        }
    }
    Ok(out)
}

/// Whether a window holds a run of at least three samples at 3x and
/// +100 ms over the median of the day before it.
fn in_scope_between(obs: &[Observation], start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    let before: Vec<f64> = obs
        .iter()
        .filter(|o| o.at < start && o.at >= start - chrono::Duration::days(1))
        .filter_map(|o| o.latency.map(|d| d.as_secs_f64()))
        .collect();
    let reference = median_of(before);
    let mut run = 0;
    let mut best = 0;
    for o in obs.iter().filter(|o| o.at >= start && o.at <= end) {
        if big(o.latency, reference) {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best >= 3
}

fn big(latency: Option<Duration>, reference: f64) -> bool {
    match latency {
        None => true,
        Some(d) => {
            let v = d.as_secs_f64();
            v >= 3.0 * reference && v >= reference + 0.1
        }
    }
}

fn median_of(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The MSFT series: the middle-tier latencies in milliseconds, the request
/// rates scaled like NAB, and `service-unavailable` counts as failed probes.
fn msft(root: &Path) -> anyhow::Result<Vec<Series>> {
    let mut out = Vec::new();
    let dir = root.join("msft-cmd/middle-tier-api-dependency-latency");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    for path in files {
        out.push(msft_labelled(&path, "MSFT latency (hourly)", None)?);
    }
    out.push(msft_labelled(
        &root.join("msft-cmd/ecommerce-api-incoming-rps/api-01.csv"),
        "MSFT request rate",
        Some(()),
    )?);
    out.push(msft_labelled(
        &root.join("msft-cmd/mongodb-machine-rps/machine-01.csv"),
        "MSFT request rate",
        Some(()),
    )?);
    let path = root.join("msft-cmd/service-unavailable/unavail-01.csv");
    let values = read(&path, "value", ValueUnit::Seconds)?;
    let observations = values
        .iter()
        .map(|(at, v)| Observation {
            at: *at,
            wall: None,
            latency: match v {
                Some(d) if d.is_zero() => Some(TYPICAL_WEB_LATENCY),
                _ => None,
            },
            worst_phase: None,
        })
        .collect();
    out.push(Series {
        name: file_stem(&path),
        group: "MSFT unlabelled",
        mapping: "count > 0 = failed probe, else 200 ms".into(),
        observations,
        events: Vec::new(),
    });
    Ok(out)
}

/// One MSFT file with its `Label` runs; `scaled` for the unit-less rates.
fn msft_labelled(path: &Path, group: &'static str, scaled: Option<()>) -> anyhow::Result<Series> {
    let unit = if scaled.is_some() {
        ValueUnit::Seconds
    } else {
        ValueUnit::Milliseconds
    };
    let values = read(path, "value", unit)?;
    let labels = read(path, "label", ValueUnit::Seconds)?;
    let scale = if scaled.is_some() {
        typical_scale(&values)
    } else {
        1.0
    };
    let observations = observations(&values, scale);
    let labelled: Vec<bool> = labels
        .iter()
        .map(|(_, v)| v.is_some_and(|d| !d.is_zero()))
        .collect();
    let mut events = Vec::new();
    let mut k = 0;
    while k < labelled.len() {
        if !labelled[k] {
            k += 1;
            continue;
        }
        let first = k;
        while k < labelled.len() && labelled[k] {
            k += 1;
        }
        let last = k - 1;
        let before: Vec<f64> = (first.saturating_sub(REFERENCE_ROWS)..first)
            .filter(|&j| !labelled[j])
            .filter_map(|j| observations[j].latency.map(|d| d.as_secs_f64()))
            .collect();
        let reference = median_of(before);
        let values: Vec<Option<Duration>> =
            (first..=last).map(|j| observations[j].latency).collect();
        let high = values
            .iter()
            .filter(|v| v.is_some_and(|d| d.as_secs_f64() >= RISE_RATIO * reference.max(1e-6)))
            .count();
        let class = if high >= RISE_MIN_ROWS {
            Class::Rise
        } else if high > 0 {
            Class::Spike
        } else {
            Class::Other
        };
        let mut run = 0;
        let mut best = 0;
        for v in &values {
            if big(*v, reference) {
                run += 1;
                best = best.max(run);
            } else {
                run = 0;
            }
        }
        let peak = values
            .iter()
            .filter_map(|v| v.map(|d| d.as_secs_f64()))
            .fold(0.0, f64::max);
        events.push(Event {
            start: observations[first].at,
            end: observations[last].at,
            recovery: observations.get(last + 1).map(|o| o.at),
            point: None,
            class,
            in_scope: best >= 3,
            note: format!(
                "{} rows, ref {}, peak {} ({}x)",
                last - first + 1,
                ms(reference),
                ms(peak),
                sig(peak / reference.max(1e-6))
            ),
        });
    }
    Ok(Series {
        name: file_stem(path),
        group,
        mapping: if scaled.is_some() {
            format!("x{} (median -> 200 ms)", sig(scale))
        } else {
            "milliseconds".into()
        },
        observations,
        events,
    })
}

fn ms(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{}s", sig(seconds))
    } else {
        format!("{}ms", sig(seconds * 1e3))
    }
}

/// Three significant digits, no trailing zeros.
fn sig(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() < 1e-3 {
        return format!("{v:.2e}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A small deterministic generator (splitmix64) for the synthetic series.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }
}

/// What the target does during an event.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Latency uniformly between two values, in seconds.
    Slow(f64, f64),
    /// Every probe fails.
    Down,
    /// A share of probes (first) is slow between two values; the others are normal.
    Intermittent(f64, f64, f64),
    /// Linear ramp from the baseline to a level (seconds) over the first
    /// share of the event, held, then back over the last tenth.
    Ramp(f64, f64),
    /// Slow between two values, with healthy dips of `.2` seconds every `.3` seconds.
    Dipping(f64, f64, f64, f64),
}

/// A synthetic soak scenario.
struct Scenario {
    name: &'static str,
    description: &'static str,
    interval: f64,
    days: f64,
    /// Typical latency in seconds.
    base: f64,
    /// Log-normal sigma of the jitter.
    sigma: f64,
    /// Peak-to-trough ratio of the daily cycle.
    daily: f64,
    /// Probability of a single-sample spike, and its multiplier range.
    spikes: (f64, f64, f64),
    /// Probability per sample that a short burst (2-20 s of 2-5 s latency) starts.
    bursts: f64,
    /// Probability per sample that the agent stops for 5-30 minutes.
    restarts: f64,
    /// Events: (start offset in hours, duration in minutes, shape), repeated each day.
    events: Vec<(f64, f64, Shape)>,
    seed: u64,
}

fn scenarios() -> Vec<Scenario> {
    let web_events = || {
        vec![
            (3.0, 10.0, Shape::Slow(3.0, 6.0)),
            (9.5, 10.0, Shape::Slow(3.0, 6.0)),
            (14.0, 25.0, Shape::Slow(1.0, 2.5)),
            (20.25, 5.0, Shape::Down),
        ]
    };
    vec![
        Scenario {
            name: "web-1s",
            description: "180 ms web baseline (sigma 0.25, daily x1.5), 1 s probes; 10 min at 3-6 s (7.5x load) twice a day, 25 min at 1-2.5 s, 5 min down; 0.5% spikes of 3-10x",
            interval: 1.0,
            days: 3.0,
            base: 0.18,
            sigma: 0.25,
            daily: 1.5,
            spikes: (0.005, 3.0, 10.0),
            bursts: 0.0,
            restarts: 0.0,
            events: web_events(),
            seed: 1,
        },
        Scenario {
            name: "web-10s",
            description: "the same web target probed every 10 s",
            interval: 10.0,
            days: 14.0,
            base: 0.18,
            sigma: 0.25,
            daily: 1.5,
            spikes: (0.005, 3.0, 10.0),
            bursts: 0.0,
            restarts: 0.0,
            events: web_events(),
            seed: 2,
        },
        Scenario {
            name: "web-30s-restarts",
            description: "the same web target every 30 s (the default interval) with agent restarts: 0.05% chance per probe of a 5-30 min gap",
            interval: 30.0,
            days: 30.0,
            base: 0.18,
            sigma: 0.25,
            daily: 1.5,
            spikes: (0.005, 3.0, 10.0),
            bursts: 0.0,
            restarts: 0.0005,
            events: web_events(),
            seed: 3,
        },
        Scenario {
            name: "smtp-30s",
            description: "SMTP dialogue (banner to QUIT) 350 ms, sigma 0.35, 1% spikes 3-8x; 20 min at 1.2-2.5 s (slow DNSBL), 5 min refused, 40 min of 60% probes at 1.5-4 s",
            interval: 30.0,
            days: 30.0,
            base: 0.35,
            sigma: 0.35,
            daily: 1.3,
            spikes: (0.01, 3.0, 8.0),
            bursts: 0.0,
            restarts: 0.0,
            events: vec![
                (2.0, 20.0, Shape::Slow(1.2, 2.5)),
                (8.0, 5.0, Shape::Down),
                (15.0, 40.0, Shape::Intermittent(0.6, 1.5, 4.0)),
            ],
            seed: 4,
        },
        Scenario {
            name: "imap-60s",
            description: "IMAP login+SELECT 90 ms, sigma 0.3, 1% spikes 3-15x; 30 min at 0.8-3 s (mailbox lock), 3 min down, a 20 min ramp to 2 s",
            interval: 60.0,
            days: 30.0,
            base: 0.09,
            sigma: 0.3,
            daily: 1.4,
            spikes: (0.01, 3.0, 15.0),
            bursts: 0.0,
            restarts: 0.0,
            events: vec![
                (4.0, 30.0, Shape::Slow(0.8, 3.0)),
                (11.0, 3.0, Shape::Down),
                (18.0, 40.0, Shape::Ramp(2.0, 0.5)),
            ],
            seed: 5,
        },
        Scenario {
            name: "web-10s-dips",
            description: "web 10 s: 30 min degradations at 2-5 s with a 60 s healthy dip every 4 min (must stay one incident), and a 15 min ramp to 3 s",
            interval: 10.0,
            days: 14.0,
            base: 0.18,
            sigma: 0.25,
            daily: 1.5,
            spikes: (0.005, 3.0, 10.0),
            bursts: 0.0,
            restarts: 0.0,
            events: vec![
                (5.0, 30.0, Shape::Dipping(2.0, 5.0, 60.0, 240.0)),
                (17.0, 30.0, Shape::Ramp(3.0, 0.5)),
            ],
            seed: 6,
        },
        Scenario {
            name: "noisy-1s",
            description: "false-alarm soak: 1 s probes, heavy-tailed 150 ms baseline (sigma 0.45, daily x2), 3% spikes of 3-20x, GC-like bursts of 2-20 s at 2-5 s several times an hour; no events",
            interval: 1.0,
            days: 3.0,
            base: 0.15,
            sigma: 0.45,
            daily: 2.0,
            spikes: (0.03, 3.0, 20.0),
            bursts: 0.0015,
            restarts: 0.0,
            events: vec![],
            seed: 7,
        },
        Scenario {
            name: "very-noisy-30s",
            description: "false-alarm soak beyond typical latency: 30 s probes, 200 ms baseline with log-sigma 0.8 (p99/p50 = 6x, like NAB elb_request_count), 2% spikes of 3-20x; no events",
            interval: 30.0,
            days: 30.0,
            base: 0.2,
            sigma: 0.8,
            daily: 1.5,
            spikes: (0.02, 3.0, 20.0),
            bursts: 0.0,
            restarts: 0.0,
            events: vec![],
            seed: 10,
        },
        Scenario {
            name: "moderate-2.5x-10s",
            description: "out of scope by design: web 10 s with 30 min at 2.5x (below factor 3)",
            interval: 10.0,
            days: 7.0,
            base: 0.18,
            sigma: 0.2,
            daily: 1.3,
            spikes: (0.005, 3.0, 10.0),
            bursts: 0.0,
            restarts: 0.0,
            events: vec![(10.0, 30.0, Shape::Slow(0.45, 0.45))],
            seed: 8,
        },
        Scenario {
            name: "web-hourly",
            description: "hourly web latency (180 ms, sigma 0.25, daily x1.5) for 90 days, 2% single-hour spikes of 3-10x; a 5 h slowdown at 1-2 s every 3rd day",
            interval: 3600.0,
            days: 90.0,
            base: 0.18,
            sigma: 0.25,
            daily: 1.5,
            spikes: (0.02, 3.0, 10.0),
            bursts: 0.0,
            restarts: 0.0,
            events: vec![(9.0, 300.0, Shape::Slow(1.0, 2.0))],
            seed: 9,
        },
    ]
}

/// Generates a scenario's series and its events.
fn generate(s: &Scenario) -> Series {
    let mut rng = Rng(s.seed);
    let n = (s.days * 86400.0 / s.interval) as usize;
    let t0 = parse_timestamp("2024-03-04T00:00:00Z").unwrap();
    // Events repeat daily (the hourly scenario: every third day).
    let period_days = if s.interval >= 3600.0 { 3.0 } else { 1.0 };
    let mut spans: Vec<(f64, f64, Shape)> = Vec::new();
    let mut day = 1.0;
    while day < s.days {
        for (hour, minutes, shape) in &s.events {
            let start = day * 86400.0 + hour * 3600.0;
            let end = start + minutes * 60.0;
            if end < s.days * 86400.0 {
                spans.push((start, end, *shape));
            }
        }
        day += period_days;
    }
    let mut observations = Vec::with_capacity(n);
    let mut events: Vec<Event> = spans
        .iter()
        .map(|(a, b, shape)| Event {
            start: t0,
            end: t0,
            recovery: None,
            point: None,
            class: Class::Rise,
            in_scope: false,
            note: format!("{:?}, {} min", shape, (b - a) / 60.0),
        })
        .collect();
    let mut first_seen: Vec<Option<DateTime<Utc>>> = vec![None; spans.len()];
    let mut last_seen: Vec<Option<DateTime<Utc>>> = vec![None; spans.len()];
    let mut recovery_seen: Vec<Option<DateTime<Utc>>> = vec![None; spans.len()];
    let mut burst_until = -1.0;
    let mut silent_until = -1.0;
    for k in 0..n {
        let t = k as f64 * s.interval;
        if t < silent_until {
            continue;
        }
        if rng.uniform() < s.restarts {
            silent_until = t + rng.between(300.0, 1800.0);
            continue;
        }
        let at = t0 + chrono::Duration::milliseconds((t * 1000.0) as i64);
        let cycle = ((s.daily.ln() / 2.0) * (t / 86400.0 * std::f64::consts::TAU).sin()).exp();
        let normal = s.base * cycle * (s.sigma * rng.normal()).exp();
        let mut latency = Some(normal);
        if rng.uniform() < s.spikes.0 {
            latency = Some(normal * rng.between(s.spikes.1, s.spikes.2));
        }
        if t < burst_until {
            latency = Some(rng.between(2.0, 5.0));
        } else if rng.uniform() < s.bursts {
            burst_until = t + rng.between(2.0, 20.0);
        }
        for (e, (a, b, shape)) in spans.iter().enumerate() {
            if t >= *b && recovery_seen[e].is_none() && last_seen[e].is_some() {
                recovery_seen[e] = Some(at);
            }
            if t < *a || t >= *b {
                continue;
            }
            first_seen[e].get_or_insert(at);
            last_seen[e] = Some(at);
            let into = t - a;
            latency = match *shape {
                Shape::Slow(lo, hi) => Some(rng.between(lo, hi)),
                Shape::Down => None,
                Shape::Intermittent(share, lo, hi) => {
                    if rng.uniform() < share {
                        Some(rng.between(lo, hi))
                    } else {
                        latency
                    }
                }
                Shape::Ramp(level, rise) => {
                    let length = b - a;
                    let up = length * rise;
                    let down_from = length * 0.9;
                    let f = if into < up {
                        into / up
                    } else if into < down_from {
                        1.0
                    } else {
                        (length - into) / (length - down_from)
                    };
                    Some(normal + (level - normal) * f)
                }
                Shape::Dipping(lo, hi, dip, every) => {
                    if into % every >= every - dip {
                        latency
                    } else {
                        Some(rng.between(lo, hi))
                    }
                }
            };
        }
        observations.push(Observation {
            at,
            wall: None,
            latency: latency.map(Duration::from_secs_f64),
            worst_phase: None,
        });
    }
    for (e, event) in events.iter_mut().enumerate() {
        if let (Some(a), Some(b)) = (first_seen[e], last_seen[e]) {
            event.start = a;
            event.end = b;
            event.recovery = recovery_seen[e];
            event.in_scope = in_scope_between(&observations, a, b);
        }
    }
    // Events that fell entirely into an agent restart were never seen.
    let seen: Vec<bool> = first_seen.iter().map(Option::is_some).collect();
    let events = events
        .into_iter()
        .zip(seen)
        .filter_map(|(e, seen)| seen.then_some(e))
        .collect();
    Series {
        name: s.name.to_string(),
        group: "synthetic",
        mapping: s.description.to_string(),
        observations,
        events,
    }
}

fn synthetic() -> Vec<Series> {
    scenarios().iter().map(generate).collect()
}

/// The typical interval of a series.
fn median_interval(obs: &[Observation]) -> Duration {
    let mut gaps: Vec<i64> = obs
        .windows(2)
        .map(|w| (w[1].at - w[0].at).num_milliseconds())
        .filter(|g| *g > 0)
        .collect();
    gaps.sort_unstable();
    Duration::from_millis(gaps.get(gaps.len() / 2).copied().unwrap_or(0) as u64)
}

fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1e3
}

/// Replays a series with `settings` and scores its incidents.
fn score(series: &Series, settings: &SlowdownSettings) -> Score {
    let incidents = replay_series(settings, series.observations.iter().cloned());
    let interval = median_interval(&series.observations);
    let slack = chrono::Duration::from_std(interval).unwrap_or_default();
    let mut s = Score {
        samples: series.observations.len(),
        days: match (series.observations.first(), series.observations.last()) {
            (Some(a), Some(b)) => secs(a.at, b.at) / 86400.0,
            _ => 0.0,
        },
        interval,
        incidents: incidents.len(),
        ..Score::default()
    };
    let inside = |i: &Incident, e: &Event| i.started_at >= e.start - slack && i.started_at <= e.end;
    for e in &series.events {
        let hits: Vec<&Incident> = incidents.iter().filter(|i| inside(i, e)).collect();
        match e.class {
            Class::Rise => {
                s.rises += 1;
                s.rises_in_scope += usize::from(e.in_scope);
                if !hits.is_empty() {
                    s.rises_hit += 1;
                    s.rises_in_scope_hit += usize::from(e.in_scope);
                }
            }
            _ => {
                s.others += 1;
                s.others_hit += usize::from(!hits.is_empty());
            }
        }
        s.splits += hits.len().saturating_sub(1);
        s.split_events += usize::from(hits.len() > 1);
        if let (Some(first), Some(last)) = (hits.first(), hits.last()) {
            if e.class == Class::Rise {
                s.delays.push(secs(e.start, first.detected_at));
                s.start_errors
                    .push(secs(e.point.unwrap_or(e.start), first.started_at));
                if let (Some(truth), Some(rec)) = (e.recovery, last.recovered_at) {
                    s.recovery_errors.push(secs(truth, rec));
                }
            }
        }
        s.per_event.push(hits.first().map(|i| (*i).clone()));
    }
    s.false_alarms = incidents
        .iter()
        .filter(|i| !series.events.iter().any(|e| inside(i, e)))
        .count();
    s
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// A duration in seconds for the tables: `45s`, `12.5min`, `3.2h`.
fn dur(seconds: f64) -> String {
    let sign = if seconds < 0.0 { "-" } else { "" };
    let a = seconds.abs();
    if a < 120.0 {
        format!("{sign}{}s", sig(a))
    } else if a < 7200.0 {
        format!("{sign}{}min", sig(a / 60.0))
    } else {
        format!("{sign}{}h", sig(a / 3600.0))
    }
}

fn dur_or_dash(v: Option<f64>) -> String {
    v.map_or("-".into(), dur)
}

fn interval_label(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h", s / 3600)
    } else if s >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Sums a score column over a group.
fn totals<'a>(scores: impl Iterator<Item = &'a Score>) -> Score {
    let mut t = Score::default();
    for s in scores {
        t.samples += s.samples;
        t.days += s.days;
        t.incidents += s.incidents;
        t.rises += s.rises;
        t.rises_in_scope += s.rises_in_scope;
        t.rises_hit += s.rises_hit;
        t.rises_in_scope_hit += s.rises_in_scope_hit;
        t.others += s.others;
        t.others_hit += s.others_hit;
        t.false_alarms += s.false_alarms;
        t.splits += s.splits;
        t.split_events += s.split_events;
        t.delays.extend(&s.delays);
        t.start_errors.extend(&s.start_errors);
        t.recovery_errors.extend(&s.recovery_errors);
    }
    t
}

fn row(out: &mut String, name: &str, interval: &str, s: &Score) {
    let _ = writeln!(
        out,
        "| {name} | {interval} | {:.1} | {} | {} | {}/{} | {}/{} | {}/{} | {} | {:.2} | {} | {} | {} |",
        s.days,
        s.samples,
        s.incidents,
        s.rises_hit,
        s.rises,
        s.rises_in_scope_hit,
        s.rises_in_scope,
        s.others_hit,
        s.others,
        s.false_alarms,
        if s.days > 0.0 { s.false_alarms as f64 / s.days } else { 0.0 },
        dur_or_dash(median(&s.delays)),
        dur_or_dash(median(&s.start_errors)),
        dur_or_dash(median(&s.recovery_errors)),
    );
}

const TABLE_HEAD: &str = "| series | interval | days | samples | incidents | rises hit | in-scope rises hit | spikes/drops/other flagged | false alarms | FA/day | median delay | median start error | median recovery error |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

fn render(
    series: &[Series],
    scores: &[Score],
    sensitivity: &[(&str, Vec<Score>)],
    issue16_sensitivity: &[(&str, SlowdownSettings, Vec<Score>)],
    elapsed: Duration,
) -> String {
    let mut out = String::new();
    let samples: usize = scores.iter().map(|s| s.samples).sum();
    let d = SlowdownSettings::default();
    let _ = write!(
        out,
        "# Slowdown detector benchmark\n\n\
         Generated by `bench/detector.sh` (`bench/detector.rs`); do not edit by hand.\n\
         Every series is replayed through the same code as `mailpulse replay` (the CSV reader and\n\
         `replay_series`, i.e. `detect::Detector`) with the **default settings**: factor {}, min_delta {} ms,\n\
         for {} s, recover_for {} s, no threshold. {} series, {} samples, replayed in {} ms\n\
         ({:.1} M samples/s on this machine, single thread).\n\n",
        d.factor,
        d.min_delta.as_millis(),
        d.for_.as_secs(),
        d.recover_for.as_secs(),
        series.len(),
        samples,
        elapsed.as_millis(),
        samples as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6,
    );
    out.push_str("## Issue 16 targets (default settings)\n\n");
    out.push_str(&issue16(series, scores, &SlowdownSettings::default(), true));
    out.push_str(ISSUE16_DISCUSSION);
    for (k, (label, settings, sensitive)) in issue16_sensitivity.iter().enumerate() {
        let _ = write!(out, "### Issue 16 targets with {label}\n\n");
        out.push_str(&issue16(series, sensitive, settings, k == 0));
    }
    out.push_str(&headline(series, scores, &sensitivity[1].1));
    out.push_str(METHODOLOGY);
    let groups = [
        "synthetic",
        "MSFT latency (hourly)",
        "NAB realKnownCause",
        "NAB realAWSCloudwatch",
        "MSFT request rate",
        "MSFT unlabelled",
    ];
    out.push_str("\n## Summary by group (default settings)\n\n");
    out.push_str(TABLE_HEAD);
    for g in groups {
        let t = totals(
            series
                .iter()
                .zip(scores)
                .filter(|(s, _)| s.group == g)
                .map(|(_, s)| s),
        );
        row(&mut out, &format!("**{g}**"), "", &t);
    }
    for g in groups {
        let _ = write!(out, "\n## {g}\n\n");
        out.push_str(TABLE_HEAD);
        for (s, sc) in series.iter().zip(scores).filter(|(s, _)| s.group == g) {
            row(&mut out, &s.name, &interval_label(sc.interval), sc);
        }
        let mappings: Vec<String> = series
            .iter()
            .filter(|s| s.group == g)
            .map(|s| format!("- `{}`: {}", s.name, s.mapping))
            .collect();
        if g == "synthetic" {
            out.push_str("\nScenarios:\n\n");
            out.push_str(&mappings.join("\n"));
            out.push('\n');
        } else {
            let _ = write!(
                out,
                "\n<details><summary>Value mapping</summary>\n\n{}\n\n</details>\n",
                mappings.join("\n")
            );
        }
    }

    for (label, sensitive) in sensitivity {
        let _ = write!(
            out,
            "\n## Sensitivity: the same series with {label}\n\n\
             Not the defaults: a per-target override one might use for low-latency backends or\n\
             for catching moderate rises, to show what the defaults leave out and what it costs.\n\n"
        );
        out.push_str(TABLE_HEAD);
        for g in groups {
            let t = totals(
                series
                    .iter()
                    .zip(sensitive)
                    .filter(|(s, _)| s.group == g)
                    .map(|(_, s)| s),
            );
            row(&mut out, &format!("**{g}**"), "", &t);
        }
    }

    out.push_str(
        "\n## Synthetic misses, split events and false alarms (default settings)\n\n\
        | series | what | event | incident(s) |\n|---|---|---|---|\n",
    );
    for s in series.iter().filter(|s| s.group == "synthetic") {
        let incidents = replay_series(&SlowdownSettings::default(), s.observations.iter().cloned());
        let slack =
            chrono::Duration::from_std(median_interval(&s.observations)).unwrap_or_default();
        let inside =
            |i: &Incident, e: &Event| i.started_at >= e.start - slack && i.started_at <= e.end;
        let show = |i: &Incident| {
            format!(
                "{} {} -> {} (peak {}, baseline {})",
                i.kind.as_str(),
                i.started_at.format("%m-%d %H:%M:%S"),
                i.recovered_at
                    .map_or("open".into(), |r| r.format("%H:%M:%S").to_string()),
                i.peak_latency.map_or("-".into(), |p| ms(p.as_secs_f64())),
                i.baseline_at_onset
                    .map_or("-".into(), |b| ms(b.as_secs_f64())),
            )
        };
        for e in &s.events {
            let hits: Vec<String> = incidents
                .iter()
                .filter(|i| inside(i, e))
                .map(show)
                .collect();
            let what = match hits.len() {
                0 if e.in_scope => "missed",
                0 => "missed (out of scope)",
                1 => continue,
                _ => "split",
            };
            let _ = writeln!(
                out,
                "| {} | {what} | {} {} -> {} | {} |",
                s.name,
                e.note,
                e.start.format("%m-%d %H:%M:%S"),
                e.end.format("%H:%M:%S"),
                hits.join("<br>")
            );
        }
        for i in incidents
            .iter()
            .filter(|i| !s.events.iter().any(|e| inside(i, e)))
        {
            let _ = writeln!(out, "| {} | false alarm | - | {} |", s.name, show(i));
        }
    }

    out.push_str("\n## Every labelled event of the real series (default settings)\n\n\
        <details><summary>Per-event table</summary>\n\n\
        | series | event start | end | class | in scope | hit | started_at | detect delay | recovery error | note |\n\
        |---|---|---|---|---|---|---|---|---|---|\n");
    for (s, sc) in series
        .iter()
        .zip(scores)
        .filter(|(s, _)| s.group != "synthetic")
    {
        for (e, hit) in s.events.iter().zip(&sc.per_event) {
            let (hit_s, started, delay, rec) = match hit {
                Some(i) => (
                    format!("yes ({})", i.kind.as_str()),
                    i.started_at.format("%m-%d %H:%M").to_string(),
                    dur(secs(e.start, i.detected_at)),
                    match (e.recovery, i.recovered_at) {
                        (Some(t), Some(r)) => dur(secs(t, r)),
                        _ => "-".into(),
                    },
                ),
                None => ("no".into(), "-".into(), "-".into(), "-".into()),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.name,
                e.start.format("%Y-%m-%d %H:%M"),
                e.end.format("%m-%d %H:%M"),
                e.class.as_str(),
                if e.in_scope { "yes" } else { "no" },
                hit_s,
                started,
                delay,
                rec,
                e.note
            );
        }
    }
    out.push_str("\n</details>\n");

    out.push_str(
        "\n## False alarms on the real series (default settings)\n\n\
        <details><summary>Incidents outside every label</summary>\n\n\
        | series | kind | started_at | duration | peak | baseline |\n|---|---|---|---|---|---|\n",
    );
    for s in series.iter().filter(|s| s.group != "synthetic") {
        let incidents = replay_series(&SlowdownSettings::default(), s.observations.iter().cloned());
        let slack =
            chrono::Duration::from_std(median_interval(&s.observations)).unwrap_or_default();
        for i in incidents.iter().filter(|i| {
            !s.events
                .iter()
                .any(|e| i.started_at >= e.start - slack && i.started_at <= e.end)
        }) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                s.name,
                i.kind.as_str(),
                i.started_at.format("%Y-%m-%d %H:%M"),
                i.duration_seconds().map_or("open".into(), dur),
                i.peak_latency.map_or("-".into(), |p| ms(p.as_secs_f64())),
                i.baseline_at_onset
                    .map_or("-".into(), |b| ms(b.as_secs_f64())),
            );
        }
    }
    out.push_str("\n</details>\n");
    out
}

/// A labelled MSFT latency run judged by issue 16's definition.
struct Sustained {
    series: String,
    event: Event,
    /// Median of the unlabelled rows of the two days before it.
    reference: f64,
    /// The longest run of consecutive rows at 2.5x the reference or more.
    longest: usize,
    /// The labelled values as ratios of the reference.
    ratios: Vec<f64>,
    /// The detector's baseline when the run began.
    baseline: Option<Duration>,
    /// The detector's baseline before each labelled row.
    baselines: Vec<Option<Duration>>,
    /// An incident that began before the run and was still open at its start.
    open_before: Option<Incident>,
    hit: Option<Incident>,
    interval: Duration,
}

/// How many rows before a labelled run issue 16's reference is the median of.
const ISSUE16_REFERENCE_ROWS: usize = 48;
/// Issue 16's rise: 2.5x the reference or more ...
const ISSUE16_RATIO: f64 = 2.5;
/// ... on at least this many consecutive rows (the fewest an hourly
/// incident can open on).
const ISSUE16_MIN_ROWS: usize = 3;

/// Issue 16's targets: the MSFT latency rises of 2.5x over the preceding
/// two days' median, caught, started and recovered within one sample; false
/// alarms per day over the latency series and the quiet series; the
/// synthetic soak.
fn issue16(series: &[Series], scores: &[Score], settings: &SlowdownSettings, full: bool) -> String {
    let settings = settings.clone();
    let mut judged: Vec<Sustained> = Vec::new();
    let mut fa = 0usize;
    let mut fa_days = 0.0;
    let mut fa_rows: Vec<String> = Vec::new();
    for (s, sc) in series.iter().zip(scores) {
        let latency = s.group == "MSFT latency (hourly)";
        let quiet =
            s.group == "MSFT unlabelled" || (s.group.starts_with("NAB") && s.events.is_empty());
        if !latency && !quiet {
            continue;
        }
        let incidents = replay_series(&settings, s.observations.iter().cloned());
        fa += sc.false_alarms;
        fa_days += sc.days;
        let slack = chrono::Duration::from_std(sc.interval).unwrap_or_default();
        for i in incidents.iter().filter(|i| {
            !s.events
                .iter()
                .any(|e| i.started_at >= e.start - slack && i.started_at <= e.end)
        }) {
            fa_rows.push(format!(
                "| {} | {} | {} | {} | {} | {} |",
                s.name,
                i.started_at.format("%Y-%m-%d %H:%M"),
                i.duration_seconds().map_or("open".into(), dur),
                i.peak_latency.map_or("-".into(), |p| ms(p.as_secs_f64())),
                i.baseline_at_onset
                    .map_or("-".into(), |b| ms(b.as_secs_f64())),
                i.outcome.map_or("open", |o| o.as_str()),
            ));
        }
        if !latency {
            continue;
        }
        // The detector's baseline before every observation.
        let mut detector = mailpulse::detect::Detector::new(settings.clone());
        let mut baselines = Vec::with_capacity(s.observations.len());
        for o in &s.observations {
            baselines.push(detector.baseline());
            detector.observe(o);
        }
        let labelled = |at: DateTime<Utc>| s.events.iter().any(|e| at >= e.start && at <= e.end);
        for e in &s.events {
            let Some(first) = s.observations.iter().position(|o| o.at == e.start) else {
                continue;
            };
            let before: Vec<f64> = s.observations
                [first.saturating_sub(ISSUE16_REFERENCE_ROWS)..first]
                .iter()
                .filter(|o| !labelled(o.at))
                .filter_map(|o| o.latency.map(|d| d.as_secs_f64()))
                .collect();
            let reference = median_of(before);
            let ratios: Vec<f64> = s
                .observations
                .iter()
                .filter(|o| o.at >= e.start && o.at <= e.end)
                .map(|o| {
                    o.latency
                        .map_or(f64::INFINITY, |d| d.as_secs_f64() / reference.max(1e-6))
                })
                .collect();
            let mut run = 0;
            let mut longest = 0;
            for r in &ratios {
                run = if *r >= ISSUE16_RATIO { run + 1 } else { 0 };
                longest = longest.max(run);
            }
            if longest < 2 {
                continue;
            }
            let hit = incidents
                .iter()
                .find(|i| i.started_at >= e.start - slack && i.started_at <= e.end)
                .cloned();
            let open_before = incidents
                .iter()
                .find(|i| {
                    i.started_at < e.start - slack && i.recovered_at.is_none_or(|r| r > e.start)
                })
                .cloned();
            let last = first
                + s.observations[first..]
                    .iter()
                    .take_while(|o| o.at <= e.end)
                    .count();
            judged.push(Sustained {
                baselines: baselines[first..last].to_vec(),
                open_before,
                series: s.name.clone(),
                event: e.clone(),
                reference,
                longest,
                ratios,
                baseline: baselines[first],
                hit,
                interval: sc.interval,
            });
        }
    }
    let sustained: Vec<&Sustained> = judged
        .iter()
        .filter(|j| j.longest >= ISSUE16_MIN_ROWS)
        .collect();
    let within = |j: &Sustained, a: DateTime<Utc>, b: Option<DateTime<Utc>>| {
        b.is_some_and(|b| (b - a).num_seconds().unsigned_abs() <= j.interval.as_secs())
    };
    let caught = sustained.iter().filter(|j| j.hit.is_some()).count();
    let started = sustained
        .iter()
        .filter(|j| {
            j.hit
                .as_ref()
                .is_some_and(|i| within(j, j.event.start, Some(i.started_at)))
        })
        .count();
    // The labelled end is the run's last labelled row, as the labelled
    // onset is its first (the labels pad one normal row on each side).
    let recovered = sustained
        .iter()
        .filter(|j| {
            j.hit
                .as_ref()
                .is_some_and(|i| within(j, j.event.end, i.recovered_at))
        })
        .count();
    // The reading used before: against the first unlabelled row after it.
    let recovered_after = sustained
        .iter()
        .filter(|j| {
            j.hit.as_ref().is_some_and(|i| {
                j.event
                    .recovery
                    .is_some_and(|r| within(j, r, i.recovered_at))
            })
        })
        .count();
    let soak = totals(
        series
            .iter()
            .zip(scores)
            .filter(|(s, _)| s.group == "synthetic")
            .map(|(_, s)| s),
    );
    let pct = |n: usize, d: usize| {
        if d == 0 {
            0.0
        } else {
            100.0 * n as f64 / d as f64
        }
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "\
| target | wanted | measured |\n|---|---|---|\n\
| MSFT latency: labelled sustained rises (>= {} consecutive rows at >= {}x the median of the unlabelled rows of the {} h before) caught | >= 90% | **{}/{} ({:.0}%)** |\n\
| ... started within one sample of the labelled onset | >= 90% | **{}/{} ({:.0}%)** |\n\
| ... recovered within one sample of the labelled end (its last labelled row) | >= 90% | **{}/{} ({:.0}%)** |\n\
| false incidents per day, MSFT latency + quiet series (`service-unavailable`, NAB files without labels) | <= 0.05 | **{:.3}** ({} in {:.0} days) |\n\
| synthetic soak, in-scope events caught | 100% | **{}/{}** |\n\n",
        ISSUE16_MIN_ROWS,
        ISSUE16_RATIO,
        ISSUE16_REFERENCE_ROWS,
        caught,
        sustained.len(),
        pct(caught, sustained.len()),
        started,
        sustained.len(),
        pct(started, sustained.len()),
        recovered,
        sustained.len(),
        pct(recovered, sustained.len()),
        fa as f64 / fa_days.max(1e-9),
        fa,
        fa_days,
        soak.rises_in_scope_hit,
        soak.rises_in_scope,
    );
    let _ = writeln!(
        out,
        "(Recovered within one sample of the first unlabelled row after the run instead: {}/{}. \
Synthetic soak false alarms: {:.2}/day.)\n",
        recovered_after,
        sustained.len(),
        soak.false_alarms as f64 / soak.days.max(1e-9)
    );
    if !full {
        return out;
    }
    out.push_str(
        "Every labelled MSFT latency run with at least two consecutive rows at 2.5x (two-row runs are \
shown for completeness; an hourly series needs three bad samples before anything opens, so they are \
not counted as sustained). Ratios are of the two-day reference; `-` is a missing row; the baseline is \
the detector's before the first labelled row; start and recovery are the incident's `started_at` and \
`recovered_at` minus the first and the last labelled row.\n\n\
| series | labelled | rows at 2.5x in a row | reference | baseline | ratios | incident | start | recovery | verdict |\n\
|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for j in &judged {
        let (incident, start, rec, verdict) = match &j.hit {
            Some(i) => {
                let start_ok = within(j, j.event.start, Some(i.started_at));
                let rec_ok = within(j, j.event.end, i.recovered_at);
                (
                    format!(
                        "{} {}-{} ({})",
                        i.kind.as_str(),
                        i.started_at.format("%m-%d %H:%M"),
                        i.recovered_at
                            .map_or("open".into(), |r| r.format("%H:%M").to_string()),
                        i.outcome.map_or("open", |o| o.as_str()),
                    ),
                    dur(secs(j.event.start, i.started_at)),
                    i.recovered_at
                        .map_or("-".into(), |r| dur(secs(j.event.end, r))),
                    match (start_ok, rec_ok) {
                        (true, true) => "ok".to_string(),
                        (false, true) => "start off".to_string(),
                        (true, false) => "recovery off".to_string(),
                        (false, false) => "start and recovery off".to_string(),
                    },
                )
            }
            None => (
                "-".into(),
                "-".into(),
                "-".into(),
                miss_reason(j, &settings),
            ),
        };
        let ratios: Vec<String> = j
            .ratios
            .iter()
            .map(|r| {
                if r.is_finite() {
                    format!("{r:.1}")
                } else {
                    "-".into()
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} -> {} | {}{} | {} | {} | {} | {} | {} | {} | {} |",
            j.series,
            j.event.start.format("%m-%d %H:%M"),
            j.event.end.format("%H:%M"),
            j.longest,
            if j.longest < ISSUE16_MIN_ROWS {
                " (not sustained)"
            } else {
                ""
            },
            ms(j.reference),
            j.baseline.map_or("-".into(), |b| ms(b.as_secs_f64())),
            ratios.join(" "),
            incident,
            start,
            rec,
            verdict,
        );
    }
    out.push_str(
        "\nFalse incidents on those series:\n\n\
| series | started_at | duration | peak | baseline | outcome |\n|---|---|---|---|---|---|\n",
    );
    for r in fa_rows {
        out.push_str(&r);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Why a sustained rise opened nothing, from its rows and the detector's
/// baseline: the default rule is 3x the baseline and 100 ms above it for
/// `for` and three samples.
fn miss_reason(j: &Sustained, d: &SlowdownSettings) -> String {
    if let Some(i) = &j.open_before {
        return format!(
            "missed: inside the incident open since {} ({})",
            i.started_at.format("%m-%d %H:%M"),
            i.outcome.map_or("still open", |o| o.as_str())
        );
    }
    let Some(base) = j.baseline else {
        return "missed: baseline not warm".into();
    };
    let moved = j
        .baselines
        .iter()
        .flatten()
        .map(|b| b.as_secs_f64())
        .fold(0.0, f64::max);
    let b = base.as_secs_f64();
    let values: Vec<f64> = j.ratios.iter().map(|r| r * j.reference.max(1e-6)).collect();
    let mut run = 0;
    let mut longest = 0;
    for v in &values {
        let slow = !v.is_finite() || (*v >= b * d.factor && *v >= b + d.min_delta.as_secs_f64());
        run = if slow { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let ratio_rows = values.iter().filter(|v| **v >= b * d.factor).count();
    let delta_rows = values
        .iter()
        .filter(|v| **v >= b + d.min_delta.as_secs_f64())
        .count();
    if longest >= 3 {
        // Against the baseline the detector had at each row.
        let mut run = 0;
        let mut longest_now = 0;
        for (v, base) in values.iter().zip(&j.baselines) {
            let b = base.map_or(0.0, |b| b.as_secs_f64());
            let slow =
                !v.is_finite() || (*v >= b * d.factor && *v >= b + d.min_delta.as_secs_f64());
            run = if slow { run + 1 } else { 0 };
            longest_now = longest_now.max(run);
        }
        if longest_now < 3 {
            format!(
                "missed: {longest} rows in a row are slow against the {} baseline before the run, but the baseline rose with its first rows (to {}), so at most {longest_now} in a row were slow",
                ms(b),
                ms(moved),
            )
        } else {
            format!(
                "missed: {longest_now} rows in a row were slow; this spiky series' background rate asks for more bad samples in a row"
            )
        }
    } else if ratio_rows >= 3 && delta_rows < 3 {
        format!(
            "missed: under min_delta ({} rows {} above the {} baseline)",
            delta_rows,
            ms(d.min_delta.as_secs_f64()),
            ms(b)
        )
    } else {
        format!(
            "missed: {} rows at {}x the {} baseline, {} in a row slow",
            ratio_rows,
            d.factor,
            ms(b),
            longest
        )
    }
}

/// What the issue 16 figures mean, whatever they are.
const ISSUE16_DISCUSSION: &str = "\
**Reading these figures.** The issue asks for 90% of the labelled MSFT rises of 2.5x or more at the
*default* settings. Two default changes of issue 16 come from this table. `min_delta` went from
100 ms to 10 ms: every rise missed before was a 3-70 ms back end whose whole rise stayed under 100 ms
above its baseline; that doubled what is caught, 5 to 10 of 20, with one more false incident in 714
days and the synthetic soak unchanged. `relearn_after` went from 6 h to a day: three caught rises
that held 4-14x for 17-21 hours (`outbound-08` 07-12, `outbound-15` and `-18` 06-20) had closed as
`new_baseline` after 6 h, hours before their labelled end; now they recover at it, for one more
false incident (on `outbound-02`; the run with `relearn_after = \"6h\"` below shows the difference). Start and recovery are judged against the first
and the last labelled row, the issue's \"labelled onset\" and \"labelled end\" (the labels pad one normal
row on each side, so a start one hour after the first labelled row is the true onset, and
`recovered_at`, the first normal sample, lands on the last labelled row); until issue 16 the bench
compared recovery with the first unlabelled row after the run, one hour later, and that figure is shown
beside it. Two detector changes of issue 16 come from this table too: the baseline is never above
the median of the last two days' hourly means (or the same hour a day earlier, if higher), so a
climb over hours (`outbound-05` 07-12: 1.3x, 1.6x, 1.8x ... an hour apart, then 3.1-3.3x) is judged
against the level before it instead of being learned; and `started_at` is where latency left the
normal band (`sqrt(factor)` x the baseline) on its way to the first slow sample, so the climbs of
`outbound-15` and `-18` 06-20 start within an hour of their label instead of 2-3 hours late.
**The target is not met, and no detector can meet it on these labels.** A ceiling first, by
event: (i) `outbound-15` and `-18` 06-21 are at 3.3x and 4.0x from 06:00, two rows before their
label starts at 08:00, and the 07:00 row between them (3.96x, 4.43x) is unlabelled: an incident
that starts inside the label would have to ignore two rows at 3-4x; (ii) `outbound-11` 07-05's
first two labelled rows are at 0.85x and 0.95x of the reference, so a start within one sample of
its labelled onset precedes any rise; (iii) `outbound-02` is a series of zeros whose labelled
three-row burst looks like its ten unlabelled multi-hour bursts of 60 ms-5 s (the false incidents
below). So at most 16 of the 20 can start within one sample of their label (80%), whatever the
detector. What the per-event table misses beyond that, by cause:
(a) *rises that stay under 3x* of their two-day reference for all but one or two rows
(`outbound-15` and `-18` 06-19: 2.7x, 4.0x, 3.3x, 2.7x; `outbound-19` 06-20: 2.3-3.7x, never two
rows in a row at 3x; `outbound-11` 07-05 peaks at 2.9x; `outbound-20` 06-27 holds 3.0-3.7x of its
reference, but under 3x of a baseline 6% above it after one slow row): only `factor = 2.5` flags them (the table
below), and that default would make an office-hours day of 2.5x with 20% jitter an incident (the
`an_office_hours_day_raises_nothing` test), so it stays a per-target override for back ends whose
normal is flat;
(b) *rises the day before at the same hours* (`outbound-21` 07-04: 2.0-2.5x the evening before;
`outbound-19` 06-20: 1.5-2.7x the evening before, its baseline 28 ms against a 22 ms reference):
the reference follows the same hour a day earlier, so a daily cycle's peak stays normal, and this
rise is judged against that;
(c) *onsets of a slow climb below the band* (`outbound-05` 07-12 leaves 1.7x three rows after its
labelled onset, at 1.8x): the normal band is where
recovery is judged too (an incident spans from leaving the band to coming back into it); a lower
band would date it earlier and make recoveries through a slow tail later still;
(d) *recoveries through a slow tail* (`outbound-03` 07-01: 2.0x, 1.8x, 1.2x, 1.9x after the
labelled end; `outbound-08` 07-01: 1.3x, 1.8x): the incident recovers only under 1.7x the onset
baseline, hours after the label ends.

";
/// The headline figures and the discussion, computed from the default run.
fn headline(series: &[Series], scores: &[Score], factor_two: &[Score]) -> String {
    let pick_from = |scores: &[Score], f: &dyn Fn(&Series) -> bool| {
        totals(
            series
                .iter()
                .zip(scores)
                .filter(|(s, _)| f(s))
                .map(|(_, s)| s),
        )
    };
    let pick = |f: &dyn Fn(&Series) -> bool| pick_from(scores, f);
    let all_synthetic = pick(&|s| s.group == "synthetic");
    let all_synthetic_two = pick_from(factor_two, &|s| s.group == "synthetic");
    let msft_two = pick_from(factor_two, &|s| s.group == "MSFT latency (hourly)");
    let soak = pick(&|s| s.group == "synthetic" && s.name != "very-noisy-30s");
    let noisy = pick(&|s| s.name == "very-noisy-30s");
    let msft = pick(&|s| s.group == "MSFT latency (hourly)");
    let msft_fa_02 = pick(&|s| s.name == "outbound-02").false_alarms;
    let nab = pick(&|s| s.group.starts_with("NAB"));
    let nab_quiet =
        pick(&|s| s.group == "NAB realKnownCause" || s.name == "ec2_cpu_utilization_c6585a");
    let bursty = pick(&|s| {
        [
            "ec2_cpu_utilization_77c1ca",
            "ec2_cpu_utilization_fe7f93",
            "elb_request_count_8c0756",
            "ec2_disk_write_bytes_1ef3de",
            "ec2_disk_write_bytes_c0d644",
            "ec2_network_in_5abac7",
        ]
        .contains(&s.name.as_str())
    });
    let intermittent = pick(&|s| s.name == "smtp-30s");
    let intermittent_events = intermittent.rises / 3;
    let mut out = String::new();
    let _ = write!(
        out,
        "## Headline (default settings)\n\n\
- **Synthetic soak** ({} simulated days, web and mail targets at 1 s, 10 s, 30 s, 60 s and hourly probes,\n  \
  noise, daily drift, spikes, restarts): **{}/{} in-scope events detected**, **{} false alarms**\n  \
  ({:.2}/day). Median detection delay {} (= `for` at 1-30 s probes; three samples at 60 s and hourly),\n  \
  median start and recovery error {} and {}. {} events were split into two or three incidents (11\n  \
  before issue 16, all in the SMTP scenario where 60% of probes are slow and 40% still fast).\n\
- **Heavy-tailed target** (log-sigma 0.8, 30 s probes, no events): {:.2} false alarms/day, the known\n  \
  weak spot (14/day before the noise-aware sample floor).\n\
- **MSFT middle-tier latency** (23 real hourly series, {:.0} days): **{}/{} in-scope labelled rises detected**\n  \
  (rises of 3x and 100 ms for three hours), {}/{} of all labelled rises; {} false alarms ({:.3}/day), {} of\n  \
  them on `outbound-02`.\n\
- **NAB** ({:.0} days, no latency series among the rises): {}/{} rise windows hit, {} false alarms\n  \
  ({:.2}/day); the realKnownCause files and the no-anomaly file `ec2_cpu_utilization_c6585a` raise\n  \
  {}, while six bursty non-latency AWS series raise {} of them.\n\n",
        soak.days.round(),
        soak.rises_in_scope_hit,
        soak.rises_in_scope,
        soak.false_alarms,
        soak.false_alarms as f64 / soak.days,
        dur_or_dash(median(&soak.delays)),
        dur_or_dash(median(&soak.start_errors)),
        dur_or_dash(median(&soak.recovery_errors)),
        soak.split_events,
        noisy.false_alarms as f64 / noisy.days,
        msft.days,
        msft.rises_in_scope_hit,
        msft.rises_in_scope,
        msft.rises_hit,
        msft.rises,
        msft.false_alarms,
        msft.false_alarms as f64 / msft.days,
        msft_fa_02,
        nab.days,
        nab.rises_hit,
        nab.rises,
        nab.false_alarms,
        nab.false_alarms as f64 / nab.days,
        nab_quiet.false_alarms,
        bursty.false_alarms,
    );
    let _ = write!(
        out,
        "## Discussion\n\n\
**What works.** On latency-like data the detector does what the issue asks with the defaults: every\n\
sustained slowdown of at least 3x and 100 ms is found, at every cadence from 1 s probes to hourly\n\
series, `started_at` is the first degraded sample (median error 0), `recovered_at` the first healthy\n\
one, and spikes, bursts of GC pauses, daily drift and agent restarts raise nothing. At 1-30 s probes\n\
the detection delay is exactly `for`; at 60 s and hourly it is three samples (the sample floor), so\n\
hourly data is detected two hours after onset. Ramps are reported from the moment they cross 3x,\n\
up to two minutes after their first sample: that is the start error shown for `web-10s-dips`.\n\n\
**Where it misses, by design.** Rises under 3x are not slowdowns under the defaults: the moderate\n\
2.5x scenario, both NAB `rds_cpu_utilization` rises (6 to 15, 2.5x) and the MSFT labelled rises\n\
that stay under 3x of the detector's baseline are missed (the 3-70 ms back ends that triple are\n\
caught since `min_delta` is 10 ms). The sensitivity runs show the price\n\
of catching them globally: `factor = 2` finds {}/{} MSFT rises but raises false alarms on the synthetic\n\
soak from {:.2} to {:.2} a day, so it belongs in a per-target override, not in the defaults. The MSFT\n\
labels pad one normal row before and after each run, which is where the 1 h start error and the -1 h\n\
recovery error on that data come from.\n\n\
**Where it misses, honestly.**\n\
- *Level shifts* (issue 16). The baseline is frozen during an incident, so a series that moves to a\n  \
  new level for good used to keep its incident open to the end of the series. Now a slow level held\n  \
  for `relearn_after` (a day) closes the incident as `new_baseline` and the baseline moves there (see\n  \
  the outcome column of the false-alarm tables: most long incidents on the NAB AWS series end so).\n\
- *Intermittent degradations* (issue 16). With 30 s probes `recover_for = 2m` is five samples, and in\n  \
  a 40 minute degradation where 40% of probes are still fast, five fast probes in a row happen by\n  \
  chance: before issue 16, 11 of the 29 such events were split. A recovery run must now be longer than\n  \
  chance gives at the incident's own share of fast probes: {} of those {} events are split.\n\
- *Heavy tails at coarse cadences.* On a target whose p99 is 6x its median, about one healthy probe in\n  \
  ten is 3x slow on its own. The noise-aware floor (a run needs `q^k <= 1e-5` bad samples, up to 8)\n  \
  brought this from 14 to {:.2} false alarms a day at 30 s probes; raising `factor` for such a target\n  \
  is the real fix.\n\
- *Non-latency series.* The NAB AWS series with the most false alarms are CPU, byte and request\n  \
  counts: `77c1ca` runs a job that takes CPU from 0.1% to 90% for 20-50 minutes every 90 minutes (a\n  \
  1000x \"slowdown\" by definition, and a healthy-only baseline never learns it), `elb_request_count`\n  \
  is counts with a log-sigma near 0.9, the disk and network series are mostly 0 with bursts. On\n  \
  `outbound-02` most hours read 0 ms (no calls), which the detector takes as a healthy 1 us latency,\n  \
  so every multi-second burst is a million-fold slowdown. These figures say more about the mapping of\n  \
  such data to latency than about the detector; they are reported, not tuned away.\n\n\
**Tuning done.** The defaults are the issue's. The algorithm constants were chosen on the synthetic\n\
scenarios and the MSFT latency series, then checked for sensitivity: the baseline time constant\n\
(10 min to 3 h) and its floor in samples (6 to 24) change no figure on the synthetic soak and move the\n\
NAB false alarms by a few percent, so nothing depends on a lucky value. Three changes came out of this\n\
benchmark and are covered by unit tests: onsets start at the first of two consecutive bad samples\n\
(a spike just before a slowdown used to pull `started_at` one or two samples early and score as a miss\n\
plus a false alarm), recovery runs tolerate one bad sample per eight healthy ones (with one in four,\n\
24 of the 29 intermittent events split), and the noise-aware sample floor. Issue 16 added the burst\n\
rule (a blip before a pause as long as it is not the onset), the ramp-proof baseline (rises at most\n\
1.25x an hour, falls back to the level before a faster rise), the hysteresis (recovered under\n\
`sqrt(factor)` times the baseline), chance-length recovery runs and `relearn_after`; their constants\n\
were set on the synthetic unit tests (ramps, an office-hours day, 60%-slow probes), not on these data.\n\n",
        msft_two.rises_hit,
        msft_two.rises,
        all_synthetic.false_alarms as f64 / all_synthetic.days,
        all_synthetic_two.false_alarms as f64 / all_synthetic_two.days,
        intermittent.split_events,
        intermittent_events,
        noisy.false_alarms as f64 / noisy.days,
    );
    out
}

const METHODOLOGY: &str = "## Method

- **Scoring** follows `datasets/README.md`: events, not points. A labelled event (an NAB window, a run of
  consecutive MSFT `Label = 1` rows, a generated synthetic event) is *hit* when an incident starts inside it
  or at most one sample before it. An incident that starts outside every event is a *false alarm*;
  false alarms per day divide by the series' length.
- **Detection delay** = `detected_at` minus the first labelled row (NAB: the window start, which is
  placed well before the anomaly, so NAB delays are not meaningful). **Start error** = `started_at`
  minus the first labelled row (NAB: minus the labelled anomaly point). **Recovery error** =
  `recovered_at` minus the first unlabelled row after the run (only where runs have an end: MSFT and
  synthetic; NAB windows do not). Positive = late.
- **Classes.** A slowdown detector should catch sustained rises and stay quiet on the rest, so events
  are split. NAB: the windows of `ec2_cpu_utilization_ac20cd` and both `rds_cpu_utilization` files are
  the rises (per the datasets README); all other NAB windows are spikes, drops or pattern changes.
  MSFT: each labelled run is compared with the median of the up to 24 unlabelled rows before it; a run
  with at least 3 rows at 1.5x that reference or more is a *rise*, with 1-2 such rows a *spike*, with
  none a *drop/other* (most of these are single rows that fall to 0). A rise is *in scope* when it
  holds at least three consecutive rows at 3x the reference and 100 ms above it, i.e. when it is a
  slowdown by the issue's own definition with the default settings; out-of-scope rises are missed by
  design, and both counts are shown (`hit/total`).
- **Units.** The detector compares against an absolute `min_delta`, so values must be latencies. MSFT
  middle-tier values are read as milliseconds. NAB values and the MSFT request rates have no (latency)
  unit: each such series is scaled so that the median of its positive values is a 200 ms web latency,
  then replayed as latency; this keeps `min_delta` meaningful but is an assumption, and on these
  non-latency series the interesting figure is mostly how quiet the detector stays.
  `service-unavailable` counts are replayed as failed probes (count > 0) on a 200 ms healthy latency.
- **Synthetic scenarios** are generated with a fixed seed (deterministic). Latency is log-normal around
  a daily cycle, with single-sample spikes; events repeat every day (every third day for hourly data),
  the first day being event-free. Event truth is exact: start = first degraded sample, recovery =
  first sample after the event. Every synthetic event (outages included) counts under *rises*: all of
  them are to be caught, except those out of scope (the 2.5x scenario).
";

/// The settings of one `DETECTOR_BENCH_SWEEP` candidate: `key=value` pairs
/// over the defaults, durations as `10ms`, `60s`, `6h`.
fn sweep_settings(candidate: &str) -> anyhow::Result<SlowdownSettings> {
    fn duration(v: &str) -> anyhow::Result<Duration> {
        let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
        let (n, unit) = v.split_at(split);
        let n: f64 = n.parse()?;
        let scale = match unit {
            "ms" => 1e-3,
            "s" | "" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => anyhow::bail!("unknown unit in {v}"),
        };
        Ok(Duration::from_secs_f64(n * scale))
    }
    let mut s = SlowdownSettings::default();
    for pair in candidate.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("not key=value: {pair}"))?;
        match k.trim() {
            "factor" => s.factor = v.parse()?,
            "min_delta" => s.min_delta = duration(v)?,
            "for" => s.for_ = duration(v)?,
            "recover_for" => s.recover_for = duration(v)?,
            "relearn_after" => s.relearn_after = duration(v)?,
            "bad_share" => s.bad_share = v.parse()?,
            "recover_factor" => s.recover_factor = Some(v.parse()?),
            other => anyhow::bail!("unknown key {other}"),
        }
    }
    Ok(s)
}
