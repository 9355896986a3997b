//! `mailpulse status --prometheus URL [--watch]`: the whole fleet at a
//! glance, for the person running the bridge call. Instant queries over the
//! agents' metrics in Prometheus ([`crate::fleet::Prometheus`]) make one row
//! per (instance, target): its state (ok / slow / down, the detector's), the
//! latest latency against the learned baseline, and the age of its open
//! incident; down first, then slow, then by how far above its baseline.
//! Building, sorting and rendering the rows is pure ([`build`], [`sort`],
//! [`render_table`], [`render_json`]); outside text (instance labels,
//! target names, errors) is escaped with [`report::terminal_text`].

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::cmd::out;
use crate::fleet::{self, Prometheus, Series};
use crate::human::{self, Style};
use crate::report::{self, Width};

/// `mailpulse status`: the flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The Prometheus server that scrapes the agents (`http://host:9090`).
    #[arg(long, value_name = "URL")]
    pub prometheus: String,
    /// Only the agents of this Prometheus job (the dashboards' `job` label;
    /// default: every job).
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// Redraw every --interval until Ctrl-C (clearing the screen only when
    /// standard output is a terminal; otherwise one snapshot per interval,
    /// separated by a blank line). An unreachable Prometheus is shown and
    /// tried again.
    #[arg(long)]
    pub watch: bool,
    /// Time between two snapshots with --watch (`5s`, `1m`; at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Print one JSON object per row per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = crate::config::duration::parse_duration(text).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) {
        return Err("at least 1s".into());
    }
    Ok(d)
}

/// A target's state, as the detector names it (the agent's status page
/// says the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// A down incident is open (`mailpulse_target_down`).
    Down,
    /// A slow incident is open (`mailpulse_target_degraded`).
    Slow,
    /// No incident is open.
    Ok,
}

impl State {
    /// `down`, `slow` or `ok`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Down => "down",
            State::Slow => "slow",
            State::Ok => "ok",
        }
    }
}

/// One target of one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The agent: Prometheus's `instance` label.
    pub instance: String,
    /// The target's name.
    pub target: String,
    /// The probe kind (`http`, `smtp`...), when known.
    pub kind: Option<String>,
    /// The detector's state.
    pub state: State,
    /// Whether the latest probe succeeded, when known.
    pub success: Option<bool>,
    /// The latest probe's total duration, in seconds.
    pub latency: Option<f64>,
    /// The learned baseline, in seconds (none before it is learned).
    pub baseline: Option<f64>,
    /// Onset of the open incident (Unix seconds); none when none is open.
    pub incident_started: Option<f64>,
}

impl Row {
    /// Latency over baseline, when both are known.
    pub fn ratio(&self) -> Option<f64> {
        match (self.latency, self.baseline) {
            (Some(l), Some(b)) if b > 0.0 && l.is_finite() => Some(l / b),
            _ => None,
        }
    }

    /// How long the open incident has lasted at `at` (Unix seconds).
    pub fn incident_age(&self, at: f64) -> Option<Duration> {
        self.incident_started
            .map(|s| Duration::try_from_secs_f64((at - s).max(0.0)).unwrap_or(Duration::MAX))
    }
}

/// What each query feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `mailpulse_probe_success`.
    Success,
    /// `mailpulse_probe_last_duration_seconds{phase="total"}`.
    Latency,
    /// `mailpulse_target_baseline_seconds`.
    Baseline,
    /// `mailpulse_target_degraded`.
    Degraded,
    /// `mailpulse_target_down`.
    Down,
    /// `mailpulse_incident_started_timestamp_seconds`.
    Started,
    /// `mailpulse_incident_recovered_timestamp_seconds`.
    Recovered,
    /// Agents Prometheus scraped within the last hour (they exported
    /// `mailpulse_build_info`) whose latest scrape failed (`up == 0`).
    Unreachable,
}

/// The queries: each family and the extra matcher it needs.
const QUERIES: [(Field, &str, &str); 7] = [
    (Field::Success, "mailpulse_probe_success", ""),
    (
        Field::Latency,
        "mailpulse_probe_last_duration_seconds",
        "phase=\"total\"",
    ),
    (Field::Baseline, "mailpulse_target_baseline_seconds", ""),
    (Field::Degraded, "mailpulse_target_degraded", ""),
    (Field::Down, "mailpulse_target_down", ""),
    (
        Field::Started,
        "mailpulse_incident_started_timestamp_seconds",
        "",
    ),
    (
        Field::Recovered,
        "mailpulse_incident_recovered_timestamp_seconds",
        "",
    ),
];

/// The PromQL of [`Field::Unreachable`], narrowed to `job`: `up == 0` of
/// the agents that exported `mailpulse_build_info` within the last hour
/// (their targets are gone from the other answers).
pub fn unreachable_query(job: Option<&str>) -> String {
    format!(
        "{} == 0 and on(job, instance) last_over_time({}[1h])",
        selector("up", "", job),
        selector("mailpulse_build_info", "", job)
    )
}

/// The PromQL selector of `family` with `matcher`, narrowed to `job`.
pub fn selector(family: &str, matcher: &str, job: Option<&str>) -> String {
    let mut matchers: Vec<String> = Vec::new();
    if !matcher.is_empty() {
        matchers.push(matcher.to_string());
    }
    if let Some(job) = job {
        matchers.push(format!("job={}", fleet::promql_string(job)));
    }
    if matchers.is_empty() {
        family.to_string()
    } else {
        format!("{family}{{{}}}", matchers.join(","))
    }
}

/// The rows the answers make: one per (instance, target) any series names,
/// unsorted (an incident is open when its recovery stamp is 0); and the
/// agents Prometheus could not scrape, sorted.
pub fn build(answers: &[(Field, Vec<Series>)]) -> (Vec<Row>, Vec<String>) {
    let mut unreachable: Vec<String> = answers
        .iter()
        .filter(|(field, _)| *field == Field::Unreachable)
        .flat_map(|(_, series)| {
            series
                .iter()
                .filter_map(|s| s.labels.get("instance").cloned())
        })
        .collect();
    unreachable.sort();
    unreachable.dedup();
    #[derive(Default)]
    struct Values {
        kind: Option<String>,
        fields: BTreeMap<u8, f64>,
    }
    let mut by_key: BTreeMap<(String, String), Values> = BTreeMap::new();
    for (field, series) in answers.iter().filter(|(f, _)| *f != Field::Unreachable) {
        for s in series {
            let (Some(instance), Some(target)) = (s.labels.get("instance"), s.labels.get("target"))
            else {
                continue;
            };
            let v = by_key
                .entry((instance.clone(), target.clone()))
                .or_default();
            if v.kind.is_none() {
                v.kind = s.labels.get("kind").cloned();
            }
            v.fields.insert(*field as u8, s.value);
        }
    }
    let rows = by_key
        .into_iter()
        .map(|((instance, target), v)| {
            let get = |f: Field| v.fields.get(&(f as u8)).copied().filter(|x| !x.is_nan());
            let state = if get(Field::Down) == Some(1.0) {
                State::Down
            } else if get(Field::Degraded) == Some(1.0) {
                State::Slow
            } else {
                State::Ok
            };
            let incident_started = match (get(Field::Started), get(Field::Recovered)) {
                (Some(s), Some(r)) if s > 0.0 && r == 0.0 => Some(s),
                _ => None,
            };
            Row {
                instance,
                target,
                kind: v.kind,
                state,
                success: get(Field::Success).map(|x| x == 1.0),
                latency: get(Field::Latency).filter(|x| x.is_finite() && *x >= 0.0),
                baseline: get(Field::Baseline).filter(|x| x.is_finite() && *x > 0.0),
                incident_started,
            }
        })
        .collect();
    (rows, unreachable)
}

/// Down first, then slow, then by latency over baseline (highest first;
/// rows without one last), then by instance and target.
pub fn sort(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        a.state
            .cmp(&b.state)
            .then_with(|| match (a.ratio(), b.ratio()) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.instance.cmp(&b.instance))
            .then_with(|| a.target.cmp(&b.target))
    });
}

/// One look at the fleet.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When the queries were evaluated.
    pub at: DateTime<Utc>,
    /// The rows, sorted.
    pub rows: Vec<Row>,
    /// The agents Prometheus could not scrape at its latest try, sorted.
    pub unreachable: Vec<String>,
}

fn unix(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The header line: the time, where from, and the counts.
pub fn header(s: &Snapshot, source: &str) -> String {
    let agents: std::collections::BTreeSet<&str> =
        s.rows.iter().map(|r| r.instance.as_str()).collect();
    let count = |state| s.rows.iter().filter(|r| r.state == state).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut line = format!(
        "{}  {}: {}, {}, {} down, {} slow",
        rfc3339(s.at),
        report::terminal_text(source),
        plural(agents.len(), "agent"),
        plural(s.rows.len(), "target"),
        count(State::Down),
        count(State::Slow),
    );
    if !s.unreachable.is_empty() {
        let names: Vec<String> = s
            .unreachable
            .iter()
            .map(|i| report::terminal_text(i).into_owned())
            .collect();
        line.push_str(&format!("; not scraped: {}", names.join(", ")));
    }
    line
}

/// The snapshot as a header line and a table for people.
pub fn render_table(s: &Snapshot, source: &str) -> String {
    let mut text = header(s, source);
    text.push('\n');
    if s.rows.is_empty() {
        text.push_str("no mailpulse targets found\n");
        return text;
    }
    let at = unix(s.at);
    let latency = |x: Option<f64>| x.map_or("-".to_string(), |v| human::seconds(v, Style::Latency));
    let rows: Vec<Vec<String>> = s
        .rows
        .iter()
        .map(|r| {
            let mut lat = latency(r.latency);
            if r.success == Some(false) {
                lat.push_str(" (failed)");
            }
            vec![
                report::terminal_text(&r.instance).into_owned(),
                report::terminal_text(&r.target).into_owned(),
                r.state.as_str().to_string(),
                lat,
                latency(r.baseline),
                r.ratio().map_or("-".into(), |x| format!("{x:.1}x")),
                r.incident_age(at)
                    .map_or("-".into(), |d| human::duration(d, Style::Age)),
            ]
        })
        .collect();
    text.push_str(&report::table(
        &[
            "INSTANCE",
            "TARGET",
            "STATE",
            "LATENCY",
            "BASELINE",
            "x-BASELINE",
            "OPEN INCIDENT",
        ],
        &rows,
        Width::Chars,
    ));
    text
}

/// The snapshot as one JSON object per row.
pub fn render_json(s: &Snapshot) -> Vec<Value> {
    let at = unix(s.at);
    let unreachable = s.unreachable.iter().map(|i| {
        json!({
            "at": rfc3339(s.at),
            "instance": i,
            "target": null,
            "state": "unreachable",
        })
    });
    let rows = s.rows.iter().map(|r| {
        json!({
            "at": rfc3339(s.at),
            "instance": r.instance,
            "target": r.target,
            "kind": r.kind,
            "state": r.state.as_str(),
            "success": r.success,
            "latency_seconds": r.latency,
            "baseline_seconds": r.baseline,
            "ratio": r.ratio(),
            "incident_started_at": r.incident_started
                .and_then(|t| DateTime::from_timestamp_millis((t * 1000.0).round() as i64))
                .map(rfc3339),
            "incident_age_seconds": r.incident_age(at).map(|d| d.as_secs()),
        })
    });
    unreachable.chain(rows).collect()
}

/// Queries Prometheus (every family at once, evaluated at the same time,
/// bounded by [`fleet::QUERY_TIMEOUT`]) and builds the sorted rows.
pub async fn snapshot(prometheus: &Prometheus, job: Option<&str>) -> anyhow::Result<Snapshot> {
    let at = Utc::now();
    let t = unix(at);
    let mut tasks = tokio::task::JoinSet::new();
    let queries = QUERIES
        .iter()
        .map(|(field, family, matcher)| (*field, *family, selector(family, matcher, job)))
        .chain([(Field::Unreachable, "up", unreachable_query(job))]);
    for (field, family, promql) in queries {
        let prometheus = prometheus.clone();
        tasks.spawn(async move {
            let series = prometheus
                .query(&promql, t)
                .await
                .with_context(|| format!("cannot query {family}"))?;
            anyhow::Ok((field, series))
        });
    }
    let gathered = tokio::time::timeout(fleet::QUERY_TIMEOUT, async {
        let mut answers = Vec::new();
        while let Some(done) = tasks.join_next().await {
            answers.push(done.context("a query panicked")??);
        }
        anyhow::Ok(answers)
    })
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "prometheus {} did not answer within {}s",
            prometheus.origin(),
            fleet::QUERY_TIMEOUT.as_secs()
        )
    })??;
    let (mut rows, unreachable) = build(&gathered);
    sort(&mut rows);
    Ok(Snapshot {
        at,
        rows,
        unreachable,
    })
}

/// Where a snapshot came from, for the header.
fn source(prometheus: &Prometheus, job: Option<&str>) -> String {
    match job {
        Some(j) => format!("{} job {j:?}", prometheus.origin()),
        None => prometheus.origin(),
    }
}

fn print(s: &Snapshot, args: &Args, source: &str) {
    if args.json {
        for v in render_json(s) {
            out::line(v);
        }
    } else {
        out::print(render_table(s, source));
    }
}

/// Why a snapshot failed, for people: the whole chain on one line, with
/// what Prometheus (or whatever answered) said escaped.
fn failure(source: &str, e: &anyhow::Error) -> String {
    format!(
        "cannot read the fleet's status from {source}: {}",
        report::terminal_text(&format!("{e:#}"))
    )
}

/// Clears a terminal and puts the cursor home.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Runs `mailpulse status`: one snapshot (exit 1 when Prometheus cannot
/// be read), or with `--watch` one per interval until Ctrl-C (exit 0).
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let prometheus = Prometheus::new(&args.prometheus)?;
    let job = args.job.as_deref();
    let source = source(&prometheus, job);
    if !args.watch {
        let s = match snapshot(&prometheus, job).await {
            Ok(s) => s,
            Err(e) => anyhow::bail!("{}", failure(&source, &e)),
        };
        print(&s, args, &source);
        return Ok(ExitCode::SUCCESS);
    }
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for Ctrl-C")?;
    let terminal = out::is_terminal();
    let mut first = true;
    loop {
        let result = tokio::select! {
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
            r = snapshot(&prometheus, job) => r,
        };
        if terminal {
            out::print(CLEAR);
        } else if !first && !args.json {
            out::line("");
        }
        first = false;
        match result {
            Ok(s) => print(&s, args, &source),
            Err(e) => {
                let message = format!(
                    "{}  {}; trying again in {}",
                    rfc3339(Utc::now()),
                    failure(&source, &e),
                    human::duration(args.interval, Style::Config)
                );
                if args.json {
                    eprintln!("{message}");
                } else {
                    out::line(message);
                }
            }
        }
        if out::ended() {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(args.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], value: f64) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    /// Two agents: cas01's owa is slow (open incident since 720 s before
    /// `AT`), its smtp down, cas02's owa fine, cas02's imap a bit above its
    /// baseline, and an incident of cas02's owa long recovered.
    const AT: f64 = 1_764_000_000.0;

    fn answers() -> Vec<(Field, Vec<Series>)> {
        let t = |i: &'static str, n: &'static str| {
            vec![("instance", i), ("target", n), ("job", "mailpulse")]
        };
        let with = |mut l: Vec<(&'static str, &'static str)>, k, v| {
            l.push((k, v));
            l
        };
        vec![
            (
                Field::Success,
                vec![
                    series(&with(t("cas01", "owa"), "kind", "http"), 1.0),
                    series(&with(t("cas01", "smtp"), "kind", "smtp"), 0.0),
                    series(&with(t("cas02", "owa"), "kind", "http"), 1.0),
                    series(&with(t("cas02", "imap"), "kind", "imap"), 1.0),
                ],
            ),
            (
                Field::Latency,
                vec![
                    series(&t("cas01", "owa"), 0.9),
                    series(&t("cas01", "smtp"), 5.0),
                    series(&t("cas02", "owa"), 0.1),
                    series(&t("cas02", "imap"), 0.04),
                ],
            ),
            (
                Field::Baseline,
                vec![
                    series(&t("cas01", "owa"), 0.1),
                    series(&t("cas01", "smtp"), 0.05),
                    series(&t("cas02", "owa"), 0.1),
                    series(&t("cas02", "imap"), 0.02),
                ],
            ),
            (
                Field::Degraded,
                vec![
                    series(&t("cas01", "owa"), 1.0),
                    series(&t("cas01", "smtp"), 1.0),
                    series(&t("cas02", "owa"), 0.0),
                    series(&t("cas02", "imap"), 0.0),
                ],
            ),
            (
                Field::Down,
                vec![
                    series(&t("cas01", "owa"), 0.0),
                    series(&t("cas01", "smtp"), 1.0),
                    series(&t("cas02", "owa"), 0.0),
                    series(&t("cas02", "imap"), 0.0),
                ],
            ),
            (
                Field::Started,
                vec![
                    series(&t("cas01", "owa"), AT - 720.0),
                    series(&t("cas01", "smtp"), AT - 45.0),
                    series(&t("cas02", "owa"), AT - 86_400.0),
                ],
            ),
            (
                Field::Recovered,
                vec![
                    series(&t("cas01", "owa"), 0.0),
                    series(&t("cas01", "smtp"), 0.0),
                    series(&t("cas02", "owa"), AT - 80_000.0),
                ],
            ),
        ]
    }

    fn snap() -> Snapshot {
        let (mut rows, unreachable) = build(&answers());
        sort(&mut rows);
        Snapshot {
            at: DateTime::from_timestamp(AT as i64, 0).unwrap(),
            rows,
            unreachable,
        }
    }

    #[test]
    fn down_first_then_slow_then_by_ratio() {
        let s = snap();
        let order: Vec<(&str, &str, State)> = s
            .rows
            .iter()
            .map(|r| (r.instance.as_str(), r.target.as_str(), r.state))
            .collect();
        assert_eq!(
            order,
            [
                ("cas01", "smtp", State::Down),
                ("cas01", "owa", State::Slow),
                ("cas02", "imap", State::Ok),
                ("cas02", "owa", State::Ok),
            ]
        );
        let owa = &s.rows[1];
        assert_eq!(owa.incident_age(AT), Some(Duration::from_secs(720)));
        assert_eq!(owa.kind.as_deref(), Some("http"));
        // A recovered incident is not open.
        assert_eq!(s.rows[3].incident_started, None);
    }

    #[test]
    fn rows_without_a_baseline_come_after_those_with_one() {
        let row = |target: &str, latency, baseline| Row {
            instance: "a".into(),
            target: target.into(),
            kind: None,
            state: State::Ok,
            success: Some(true),
            latency,
            baseline,
            incident_started: None,
        };
        let mut rows = vec![
            row("new", Some(9.0), None),
            row("low", Some(1.0), Some(1.0)),
            row("high", Some(3.0), Some(1.0)),
        ];
        sort(&mut rows);
        let names: Vec<&str> = rows.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(names, ["high", "low", "new"]);
    }

    #[test]
    fn the_table_has_counts_ratios_and_ages() {
        let text = render_table(&snap(), "http://127.0.0.1:9090");
        let expected = "\
2025-11-24T16:00:00Z  http://127.0.0.1:9090: 2 agents, 4 targets, 1 down, 1 slow
INSTANCE  TARGET  STATE  LATENCY         BASELINE  x-BASELINE  OPEN INCIDENT
cas01     smtp    down   5.0 s (failed)  50 ms     100.0x      45s
cas01     owa     slow   900 ms          100 ms    9.0x        12m
cas02     imap    ok     40 ms           20 ms     2.0x        -
cas02     owa     ok     100 ms          100 ms    1.0x        -
";
        assert_eq!(text, expected);
    }

    #[test]
    fn outside_text_is_escaped_and_json_has_every_field() {
        let mut s = snap();
        s.rows[1].target = "owa\u{1b}[2J".into();
        let text = render_table(&s, "http://p:9090");
        assert!(text.contains("owa\\u{1b}[2J"), "{text}");
        assert!(!text.contains('\u{1b}'));
        let json = render_json(&snap());
        assert_eq!(json.len(), 4);
        assert_eq!(json[1]["state"], "slow");
        assert_eq!(json[1]["incident_age_seconds"], 720);
        assert_eq!(json[1]["incident_started_at"], "2025-11-24T15:48:00Z");
        assert_eq!(json[1]["ratio"], 9.0);
        assert_eq!(json[3]["incident_started_at"], Value::Null);
        assert_eq!(json[0]["success"], false);
    }

    #[test]
    fn selectors_narrow_to_the_job() {
        assert_eq!(
            selector("mailpulse_target_down", "", None),
            "mailpulse_target_down"
        );
        assert_eq!(
            selector(
                "mailpulse_probe_last_duration_seconds",
                "phase=\"total\"",
                Some("mail\"pulse")
            ),
            "mailpulse_probe_last_duration_seconds{phase=\"total\",job=\"mail\\\"pulse\"}"
        );
        let empty = Snapshot {
            at: DateTime::from_timestamp(AT as i64, 0).unwrap(),
            rows: Vec::new(),
            unreachable: Vec::new(),
        };
        assert!(render_table(&empty, "x")
            .ends_with("0 agents, 0 targets, 0 down, 0 slow\nno mailpulse targets found\n"));
    }

    #[test]
    fn agents_prometheus_cannot_scrape_are_named() {
        let mut answers = answers();
        answers.push((
            Field::Unreachable,
            vec![
                series(&[("instance", "cas03"), ("job", "mailpulse")], 0.0),
                series(&[("instance", "mx\u{1b}1"), ("job", "mailpulse")], 0.0),
            ],
        ));
        let (rows, unreachable) = build(&answers);
        assert_eq!(rows.len(), 4, "no row of its own: {rows:?}");
        assert_eq!(unreachable, ["cas03", "mx\u{1b}1"]);
        let s = Snapshot {
            at: DateTime::from_timestamp(AT as i64, 0).unwrap(),
            rows,
            unreachable,
        };
        assert!(header(&s, "p").ends_with("1 down, 1 slow; not scraped: cas03, mx\\u{1b}1"));
        let json = render_json(&s);
        assert_eq!(json.len(), 6);
        assert_eq!(json[0]["instance"], "cas03");
        assert_eq!(json[0]["state"], "unreachable");
        assert_eq!(json[0]["target"], Value::Null);
        assert_eq!(
            unreachable_query(Some("mailpulse")),
            "up{job=\"mailpulse\"} == 0 and on(job, instance) last_over_time(mailpulse_build_info{job=\"mailpulse\"}[1h])"
        );
    }

    #[test]
    fn what_prometheus_says_in_an_error_is_escaped() {
        let e = anyhow::anyhow!("prometheus answered status 400: bad\u{1b}[2J\rquery")
            .context("cannot query mailpulse_target_down");
        assert_eq!(
            failure("http://p:9090", &e),
            "cannot read the fleet's status from http://p:9090: cannot query mailpulse_target_down: prometheus answered status 400: bad\\u{1b}[2J\\u{d}query"
        );
    }

    #[test]
    fn the_interval_is_a_duration_of_a_second_or_more() {
        assert_eq!(parse_interval("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_interval("500ms").is_err());
        assert!(parse_interval("soon").is_err());
    }
}
