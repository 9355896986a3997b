//! `mailpulse soak report NAME --prometheus URL`: the fleet-wide report of a
//! soak run. The agents are those Prometheus scrapes (`fleet`); the run's
//! timeline is the one the agents stored (`/api/v1/soak/runs`, the first
//! agent in URL order that has the run), and each agent's incidents of the
//! run come from its `/api/v1/incidents?run=...`. The figures per instance,
//! target and phase come from Prometheus: instant queries over each phase's
//! window at its end (`increase` of the latency histograms, native ones
//! where Prometheus has them, else the classic buckets; the step gauges
//! when no step histograms are exported; `max_over_time`/`min_over_time` of
//! the host gauges) and range queries for the latency timeline. The same
//! `verdict::Report` as the local report, so formats, objectives and exit
//! codes are shared; an agent that could not be read is named on standard
//! error and in the report, and makes the exit code 1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::out;
use super::soak_report::{ReportFormat, FAILED};
use crate::config::slo::Objective;
use crate::config::Config;
use crate::fleet::{self, promql_string, Credentials, Prometheus};
use crate::report::terminal_text;
use crate::store::soak::Run;
use crate::verdict::figures::{percent_key, PhaseFigures, QueriedTarget, Source, TargetFigures};
use crate::verdict::render::render;
use crate::verdict::stats::{HostPeaks, Point};
use crate::verdict::{report, Input, RunIncident, RunPhase, ServerRun};

/// The latency histogram the agents export.
const HISTOGRAM: &str = "mailpulse_probe_duration_seconds";
/// The per-step gauges of each target's latest probe.
const LAST: &str = "mailpulse_probe_last_duration_seconds";
/// The most incidents read from one agent.
const MAX_INCIDENTS: usize = 1000;
/// The most points of a target's timeline over the run.
const TIMELINE_POINTS: i64 = 240;

/// What `soak report --prometheus` needs besides the run's name.
#[derive(Debug)]
pub struct Fleet<'a> {
    /// Prometheus's base URL.
    pub prometheus: &'a str,
    /// Only the agents of this scrape job.
    pub job: Option<&'a str>,
    /// For the agents' API.
    pub credentials: Option<&'a Credentials>,
}

/// Writes the fleet-wide report of run `name`; the exit code says the
/// verdict (1 when an agent could not be read).
pub async fn run(
    config: &Config,
    fleet: &Fleet<'_>,
    name: &str,
    format: ReportFormat,
    output: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let agents = fleet::discover_instances(fleet.prometheus, fleet.job).await?;
    let urls: Vec<url::Url> = agents.iter().map(|a| a.url.clone()).collect();
    let mut unread: Vec<String> = Vec::new();
    let runs = fleet::send_all(
        &urls,
        hyper::Method::GET,
        "soak/runs",
        None,
        fleet.credentials,
    )
    .await?;
    let mut run: Option<Run> = None;
    let mut differing = Vec::new();
    for (agent, o) in agents.iter().zip(&runs) {
        let found = match &o.result {
            Ok(v) => serde_json::from_value::<Vec<Run>>(v.clone())
                .map_err(|e| format!("unexpected answer: {e}"))
                .map(|runs| runs.into_iter().rev().find(|r| r.name == name)),
            Err(e) => Err(e.clone()),
        };
        match found {
            Err(e) => unread.push(format!("{}: {e}", o.agent)),
            Ok(None) => differing.push(agent.instance.clone()),
            Ok(Some(r)) => match &run {
                None => run = Some(r),
                Some(first) if !same_timeline(first, &r) => differing.push(agent.instance.clone()),
                Some(_) => {}
            },
        }
    }
    let Some(run) = run else {
        for e in &unread {
            eprintln!("mailpulse: {}", terminal_text(e));
        }
        anyhow::bail!(
            "no agent Prometheus {} scrapes has a soak run named {:?}",
            outbound_origin(fleet.prometheus),
            terminal_text(name)
        );
    };
    let end = run.ended_at.unwrap_or_else(Utc::now);
    let phases = super::soak_report::run_phases(&run);

    // Each agent's incidents of the run.
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("run", &run.name)
        .append_pair(
            "since",
            &crate::alert::render::rfc3339(run.started_at - chrono::Duration::hours(24)),
        )
        .append_pair("until", &crate::alert::render::rfc3339(end))
        .append_pair("limit", &MAX_INCIDENTS.to_string())
        .finish();
    let answers = fleet::send_all(
        &urls,
        hyper::Method::GET,
        &format!("incidents?{query}"),
        None,
        fleet.credentials,
    )
    .await?;
    let mut incidents = Vec::new();
    for (agent, o) in agents.iter().zip(&answers) {
        match o.result.as_ref().map_err(String::clone).and_then(|v| {
            incidents_of(&agent.instance, v).map_err(|e| format!("unexpected answer: {e}"))
        }) {
            Ok(list) => incidents.extend(
                list.into_iter()
                    .filter(|i| i.detected_at >= run.started_at && i.detected_at <= end),
            ),
            Err(e) => unread.push(format!("{}: {e}", o.agent)),
        }
    }

    // The figures, from Prometheus.
    let prometheus = Prometheus::new(fleet.prometheus)?;
    let percents = wanted_percents(config);
    let mut servers: BTreeMap<String, Vec<PhaseFigures>> = agents
        .iter()
        .map(|a| {
            (
                a.instance.clone(),
                vec![PhaseFigures::default(); phases.len()],
            )
        })
        .collect();
    let job = fleet.job.map(|j| format!("job={}", promql_string(j)));
    let q = Queries {
        job: job.as_deref(),
    };
    // A phase's window reaches back to the last scrape before it began, so
    // each probe counts in the phase of the scrape that reported it.
    let lookback = agents
        .iter()
        .filter_map(|a| a.scrape_interval)
        .max()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .unwrap_or_else(chrono::Duration::zero);
    for (k, phase) in phases.iter().enumerate() {
        let phase_end = phase.end.unwrap_or(end);
        let window = window_of(phase_end - phase.start + lookback);
        let at = seconds(phase_end);
        let found = phase_figures(&prometheus, &q, &window, at, &percents).await?;
        for (instance, figures) in found {
            let slots = servers
                .entry(instance)
                .or_insert_with(|| vec![PhaseFigures::default(); phases.len()]);
            slots[k] = figures;
        }
    }
    timelines(&prometheus, &q, &phases, run.started_at, end, &mut servers).await?;

    let servers: Vec<ServerRun> = servers
        .into_iter()
        .map(|(server, phases)| ServerRun { server, phases })
        .collect();
    let mut report = report(&Input {
        run: &run.name,
        phases: &phases,
        servers: &servers,
        incidents: &incidents,
        slos: &config.slos,
        end,
    });
    report.notes.insert(
        0,
        format!(
            "fleet report: {} agent(s) scraped by Prometheus {}; timeline from the agents, figures from Prometheus",
            agents.len(),
            outbound_origin(fleet.prometheus)
        ),
    );
    report.notes.push(
        "each probe counts in the phase of the scrape that reported it: up to one scrape \
         interval off at each phase boundary"
            .to_string(),
    );
    if !differing.is_empty() {
        report.notes.push(format!(
            "these agents have another timeline for the run (or none): {}",
            differing.join(", ")
        ));
    }
    for e in &unread {
        report
            .notes
            .push(format!("not read (its incidents are missing): {e}"));
    }
    let text = render(&report, format.format());
    match output {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write the report to {}", path.display()))?;
            out::line(format_args!(
                "{}: {}",
                path.display(),
                terminal_text(&report.verdict.line)
            ));
        }
        None => out::print(text),
    }
    if !unread.is_empty() {
        for e in &unread {
            eprintln!("mailpulse: FAILED: {}", terminal_text(e));
        }
        eprintln!(
            "mailpulse: {} of {} agent(s) could not be read; the report is incomplete",
            unread.len(),
            agents.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if report.verdict.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    })
}

fn outbound_origin(text: &str) -> String {
    Prometheus::new(text)
        .map(|p| p.origin())
        .unwrap_or_else(|_| terminal_text(text).into_owned())
}

/// Whether two agents' copies of a run have the same phase boundaries.
fn same_timeline(a: &Run, b: &Run) -> bool {
    a.started_at == b.started_at
        && a.ended_at == b.ended_at
        && a.phases.len() == b.phases.len()
        && a.phases.iter().zip(&b.phases).all(|(p, q)| {
            p.name == q.name && p.started_at == q.started_at && p.ended_at == q.ended_at
        })
}

fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// A phase's length as a PromQL range (whole milliseconds, at least 1 s).
fn window_of(length: chrono::Duration) -> String {
    format!("{}ms", length.num_milliseconds().max(1000))
}

/// The quantiles (whole per cent) a report shows and its objectives ask for.
fn wanted_percents(config: &Config) -> BTreeSet<u8> {
    let mut set: BTreeSet<u8> = [50, 95, 99].into();
    for s in &config.slos {
        if let Objective::Latency { quantile, .. } = s.objective {
            set.insert(percent_key(quantile));
        }
    }
    set
}

/// One incident as `/api/v1/incidents` shows it (the fields the report uses).
#[derive(Deserialize)]
struct IncidentJson {
    target: String,
    kind: String,
    started_at: DateTime<Utc>,
    detected_at: DateTime<Utc>,
    recovered_at: Option<DateTime<Utc>>,
    peak_seconds: Option<f64>,
    worst_step: Option<String>,
    phase: Option<String>,
}

#[derive(Deserialize)]
struct IncidentListJson {
    incidents: Vec<IncidentJson>,
}

/// The incidents of one agent's answer, as the report shows them.
fn incidents_of(server: &str, answer: &serde_json::Value) -> anyhow::Result<Vec<RunIncident>> {
    let list: IncidentListJson = serde_json::from_value(answer.clone())?;
    Ok(list
        .incidents
        .into_iter()
        .map(|i| RunIncident {
            server: server.to_string(),
            target: i.target,
            kind: i.kind,
            started_at: i.started_at,
            detected_at: i.detected_at,
            recovered_at: i.recovered_at,
            peak_seconds: i.peak_seconds,
            worst_step: i.worst_step,
            phase: i.phase,
        })
        .collect())
}

/// Builds the PromQL of the report, with the job's matcher when given.
struct Queries<'a> {
    job: Option<&'a str>,
}

impl Queries<'_> {
    /// `metric{job="...", matchers}`.
    fn select(&self, metric: &str, matchers: &str) -> String {
        let all: Vec<&str> = self
            .job
            .into_iter()
            .chain((!matchers.is_empty()).then_some(matchers))
            .collect();
        if all.is_empty() {
            metric.to_string()
        } else {
            format!("{metric}{{{}}}", all.join(","))
        }
    }

    /// Successful probes per instance and target over `range`.
    fn successes(&self, range: &str) -> String {
        format!(
            "sum by (instance, target) (histogram_count(increase({}[{range}]))) \
             or sum by (instance, target) (increase({}[{range}]))",
            self.select(HISTOGRAM, "phase=\"total\""),
            self.select(&format!("{HISTOGRAM}_count"), "phase=\"total\"")
        )
    }

    /// Failed probes per instance and target over `range`.
    fn failures(&self, range: &str) -> String {
        format!(
            "sum by (instance, target) (increase({}[{range}]))",
            self.select("mailpulse_probe_failures_total", "")
        )
    }

    /// Quantile `q` per instance, target and step from native histograms.
    fn native(&self, q: f64, range: &str) -> String {
        format!(
            "histogram_quantile({q}, sum by (instance, target, phase) (increase({}[{range}])))",
            self.select(HISTOGRAM, "")
        )
    }

    /// The same from classic buckets.
    fn classic(&self, q: f64, range: &str) -> String {
        format!(
            "histogram_quantile({q}, sum by (le, instance, target, phase) (increase({}[{range}])))",
            self.select(&format!("{HISTOGRAM}_bucket"), "")
        )
    }

    /// Quantile `q` of the step gauges as sampled.
    fn gauges(&self, q: f64, range: &str) -> String {
        format!(
            "max by (instance, target, phase) (quantile_over_time({q}, {}[{range}]))",
            self.select(LAST, "phase!=\"total\"")
        )
    }

    /// `how` (`max`, `min`) of a host gauge per instance over `range`.
    fn host(&self, how: &str, metric: &str, matchers: &str, range: &str) -> String {
        format!(
            "{how} by (instance) ({how}_over_time({}[{range}]))",
            self.select(metric, matchers)
        )
    }

    /// Mean total latency per instance and target over `range`.
    fn mean(&self, range: &str) -> String {
        let total = self.select(HISTOGRAM, "phase=\"total\"");
        let sum = self.select(&format!("{HISTOGRAM}_sum"), "phase=\"total\"");
        let count = self.select(&format!("{HISTOGRAM}_count"), "phase=\"total\"");
        format!(
            "(sum by (instance, target) (histogram_sum(increase({total}[{range}]))) \
             / sum by (instance, target) (histogram_count(increase({total}[{range}])))) \
             or (sum by (instance, target) (increase({sum}[{range}])) \
             / sum by (instance, target) (increase({count}[{range}])))"
        )
    }

    /// Highest total latency per instance and target over `range`.
    fn worst(&self, range: &str) -> String {
        format!(
            "max by (instance, target) (max_over_time({}[{range}]))",
            self.select(LAST, "phase=\"total\"")
        )
    }
}

fn label<'a>(labels: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    labels.get(name).map(String::as_str).unwrap_or("")
}

/// Every figure of one phase from Prometheus, per instance.
async fn phase_figures(
    prometheus: &Prometheus,
    q: &Queries<'_>,
    range: &str,
    at: f64,
    percents: &BTreeSet<u8>,
) -> anyhow::Result<BTreeMap<String, PhaseFigures>> {
    let mut found: BTreeMap<String, PhaseFigures> = BTreeMap::new();
    let mut rows: BTreeMap<(String, String), QueriedTarget> = BTreeMap::new();
    for s in prometheus.query(&q.successes(range), at).await? {
        let t = rows
            .entry((
                label(&s.labels, "instance").into(),
                label(&s.labels, "target").into(),
            ))
            .or_default();
        t.ok = count(s.value);
    }
    for s in prometheus.query(&q.failures(range), at).await? {
        let t = rows
            .entry((
                label(&s.labels, "instance").into(),
                label(&s.labels, "target").into(),
            ))
            .or_default();
        t.probes = count(s.value);
    }
    for t in rows.values_mut() {
        t.probes += t.ok;
    }
    for &p in percents {
        let quantile = f64::from(p) / 100.0;
        for (source, promql) in [
            (Source::NativeHistogram, q.native(quantile, range)),
            (Source::ClassicBuckets, q.classic(quantile, range)),
            (Source::SampledGauges, q.gauges(quantile, range)),
        ] {
            for s in prometheus.query(&promql, at).await? {
                if !s.value.is_finite() {
                    continue;
                }
                let key = (
                    label(&s.labels, "instance").into(),
                    label(&s.labels, "target").into(),
                );
                let Some(t) = rows.get_mut(&key) else {
                    continue;
                };
                let step = label(&s.labels, "phase").to_string();
                // The better source wins: native, then classic, then gauges.
                if t.sources.get(&step).is_some_and(|have| *have < source) {
                    continue;
                }
                t.sources.insert(step.clone(), source);
                t.quantiles.entry(step).or_default().insert(p, s.value);
            }
        }
    }
    for ((instance, target), t) in rows {
        if t.probes == 0 {
            continue;
        }
        found
            .entry(instance)
            .or_default()
            .targets
            .insert(target, TargetFigures::Queried(t));
    }
    // The host's load.
    let mut host: BTreeMap<String, HostPeaks> = BTreeMap::new();
    let gauges: [(&str, &str, &str); 8] = [
        ("max", "mailpulse_host_cpu_usage_ratio", ""),
        ("min", "mailpulse_host_memory_available_bytes", ""),
        (
            "max",
            "mailpulse_host_pressure_cpu_waiting_ratio",
            "window=\"10s\"",
        ),
        (
            "max",
            "mailpulse_host_pressure_memory_waiting_ratio",
            "window=\"10s\"",
        ),
        (
            "max",
            "mailpulse_host_pressure_io_waiting_ratio",
            "window=\"10s\"",
        ),
        ("max", "mailpulse_host_load1", ""),
        (
            "max",
            "mailpulse_host_tcp_connections",
            "state=\"established\"",
        ),
        ("count", "mailpulse_host_cpu_usage_ratio", ""),
    ];
    for (k, (how, metric, matchers)) in gauges.iter().enumerate() {
        let promql = if *how == "count" {
            format!(
                "max by (instance) (count_over_time({}[{range}]))",
                q.select(metric, matchers)
            )
        } else {
            q.host(how, metric, matchers, range)
        };
        for s in prometheus.query(&promql, at).await? {
            let h = host.entry(label(&s.labels, "instance").into()).or_default();
            let v = s.value;
            match k {
                0 => h.cpu_peak = Some(v),
                1 => h.memory_available_min = Some(count(v)),
                2 => h.psi_cpu_peak = Some(v),
                3 => h.psi_memory_peak = Some(v),
                4 => h.psi_io_peak = Some(v),
                5 => h.load1_peak = Some(v),
                6 => h.tcp_established_peak = Some(count(v)),
                _ => h.snapshots = count(v),
            }
        }
    }
    for (instance, h) in host {
        found.entry(instance).or_default().host = h;
    }
    Ok(found)
}

/// A non-negative count from Prometheus's (extrapolated) float.
fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

/// The latency timeline of every target over the run (range queries), its
/// points put in the phase they fall in.
async fn timelines(
    prometheus: &Prometheus,
    q: &Queries<'_>,
    phases: &[RunPhase],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    servers: &mut BTreeMap<String, Vec<PhaseFigures>>,
) -> anyhow::Result<()> {
    let length = (end - start).num_seconds().max(1);
    let step = (length + TIMELINE_POINTS - 1) / TIMELINE_POINTS;
    let step = step.max(1);
    let range = format!("{}s", step.max(5));
    let (from, to) = (seconds(start), seconds(end));
    let mut points: BTreeMap<(String, String), BTreeMap<i64, Point>> = BTreeMap::new();
    let queries = [
        q.successes(&range),
        q.mean(&range),
        q.worst(&range),
        q.failures(&range),
    ];
    for (k, promql) in queries.iter().enumerate() {
        for s in prometheus
            .query_range(promql, from, to, step as f64)
            .await?
        {
            let key = (
                label(&s.labels, "instance").into(),
                label(&s.labels, "target").into(),
            );
            let series = points.entry(key).or_default();
            for (at, v) in &s.points {
                if !v.is_finite() {
                    continue;
                }
                let p = series.entry(at.round() as i64).or_insert(Point {
                    at: at.round() as i64,
                    ok: 0,
                    failed: 0,
                    sum: 0.0,
                    max: 0.0,
                });
                match k {
                    0 => p.ok = count(*v).min(u64::from(u32::MAX)) as u32,
                    1 => p.sum = *v,
                    2 => p.max = *v,
                    _ => p.failed = count(*v).min(u64::from(u32::MAX)) as u32,
                }
            }
        }
    }
    for ((instance, target), series) in points {
        let Some(slots) = servers.get_mut(&instance) else {
            continue;
        };
        for mut p in series.into_values() {
            // `sum` held the mean: keep it a mean over `ok` probes.
            if p.ok == 0 && p.sum > 0.0 {
                p.ok = 1;
            }
            p.sum *= f64::from(p.ok);
            if p.ok == 0 && p.failed == 0 {
                continue;
            }
            let Some(k) = phases.iter().rposition(|ph| ph.start.timestamp() <= p.at) else {
                continue;
            };
            if let Some(TargetFigures::Queried(t)) = slots[k].targets.get_mut(&target) {
                t.points.push(p);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_carry_the_job_and_the_phase_window() {
        let q = Queries {
            job: Some("job=\"mail\""),
        };
        assert_eq!(
            q.classic(0.95, "12500ms"),
            "histogram_quantile(0.95, sum by (le, instance, target, phase) \
             (increase(mailpulse_probe_duration_seconds_bucket{job=\"mail\"}[12500ms])))"
        );
        let all = Queries { job: None };
        assert_eq!(
            all.native(0.5, "3s"),
            "histogram_quantile(0.5, sum by (instance, target, phase) \
             (increase(mailpulse_probe_duration_seconds[3s])))"
        );
        assert!(all
            .successes("3s")
            .contains("mailpulse_probe_duration_seconds_count{phase=\"total\"}[3s]"));
        assert_eq!(window_of(chrono::Duration::milliseconds(200)), "1000ms");
        assert_eq!(count(2.6), 3);
        assert_eq!(count(f64::NAN), 0);
    }

    #[test]
    fn an_agents_incidents_are_read_with_their_run_phase() {
        let answer = serde_json::json!({"incidents": [{
            "id": "x", "target": "owa", "kind": "slow", "open": false,
            "started_at": "2026-12-03T10:00:01.5Z", "detected_at": "2026-12-03T10:00:03Z",
            "recovered_at": "2026-12-03T10:00:09Z", "peak_seconds": 0.4,
            "worst_step": "first_byte", "run": "r", "phase": "plateau"
        }]});
        let list = incidents_of("cas01", &answer).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].server, "cas01");
        assert_eq!(list[0].phase.as_deref(), Some("plateau"));
        assert_eq!(
            (list[0].recovered_at.unwrap() - list[0].started_at).num_milliseconds(),
            7500
        );
    }
}
