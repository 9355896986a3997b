//! The end-of-run verdict of a soak test: from what the agents kept of each
//! phase ([`stats::PhaseStats`]), the run's incidents and the `[[slo]]`
//! objectives, a [`Report`]: the timeline of phases, per server, target and
//! phase the probes, success share, p50/p95/p99 of the total and of the
//! slowest step with the ratio to the first phase, the incidents, the host
//! load per phase, each objective measured with PASS or FAIL, and a one-line
//! verdict. The figures come from an agent ([`stats`]) or from Prometheus
//! ([`figures::QueriedTarget`], the fleet report); the report states how
//! exact each source's percentiles are. [`render`] writes it as text,
//! Markdown, JSON or one self-contained HTML file. Pure: data in, data and
//! text out.

pub mod figures;
pub mod render;
pub mod stats;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::alerting::Glob;
use crate::config::slo::{Objective, Slo};
use crate::human::{self, Style};
use figures::{PhaseFigures, Source, TargetFigures};
use stats::{HostPeaks, Point};

/// One phase of a run, as marked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunPhase {
    /// Its name (`baseline`, `ramp-up`, `plateau`, ...).
    pub name: String,
    /// When it began.
    pub start: DateTime<Utc>,
    /// When it ended; `None` while it runs.
    pub end: Option<DateTime<Utc>>,
    /// The note given with its mark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An incident of the run, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunIncident {
    /// The agent's instance.
    pub server: String,
    /// The target.
    pub target: String,
    /// `slow` or `down`.
    pub kind: String,
    /// Its onset.
    pub started_at: DateTime<Utc>,
    /// When it was confirmed.
    pub detected_at: DateTime<Utc>,
    /// Its recovery; `None` if still open at the end of the run.
    pub recovered_at: Option<DateTime<Utc>>,
    /// The highest latency seen, seconds.
    pub peak_seconds: Option<f64>,
    /// The step most often worst.
    pub worst_step: Option<String>,
    /// The phase it began in.
    pub phase: Option<String>,
}

impl RunIncident {
    /// From onset to recovery, or to `end` while open.
    pub fn duration(&self, end: DateTime<Utc>) -> chrono::Duration {
        self.recovered_at.unwrap_or(end) - self.started_at
    }
}

/// What is known of one server (agent) in a run: its figures for each
/// phase, in the run's phase order (kept by the agent, or read from
/// Prometheus).
#[derive(Debug, Clone)]
pub struct ServerRun {
    /// The agent's instance.
    pub server: String,
    /// One per phase of the run, same order; a phase it missed is empty.
    pub phases: Vec<PhaseFigures>,
}

/// Everything a report is made from.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The run's name.
    pub run: &'a str,
    /// Its phases, in order.
    pub phases: &'a [RunPhase],
    /// What each server kept.
    pub servers: &'a [ServerRun],
    /// The run's incidents.
    pub incidents: &'a [RunIncident],
    /// The objectives.
    pub slos: &'a [Slo],
    /// When the run ended, or now while it runs (for open phases and incidents).
    pub end: DateTime<Utc>,
}

/// p50, p95 and p99, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One server, target and phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRow {
    /// The agent's instance.
    pub server: String,
    /// The target.
    pub target: String,
    /// The phase.
    pub phase: String,
    /// Probes run.
    pub probes: u64,
    /// Successful probes in percent.
    pub success_percent: Option<f64>,
    /// Of the total latency.
    pub total: Option<Percentiles>,
    /// The step with the highest p95.
    pub slowest_step: Option<String>,
    /// Its percentiles.
    pub slowest: Option<Percentiles>,
    /// p95 of the total over the first phase's.
    pub p95_vs_first: Option<f64>,
}

/// One server's host load in one phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRow {
    /// The agent's instance.
    pub server: String,
    /// The phase.
    pub phase: String,
    /// The figures.
    #[serde(flatten)]
    pub load: HostPeaks,
}

/// One place an objective was measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloCheck {
    /// The agent's instance.
    pub server: String,
    /// The target.
    pub target: String,
    /// The phase.
    pub phase: String,
    /// What was measured: seconds for latency and incidents, percent for success.
    pub measured: f64,
    /// `measured` for people.
    pub measured_text: String,
    /// Whether it met the objective.
    pub pass: bool,
}

/// An objective and how the run fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloResult {
    /// Its name.
    pub name: String,
    /// What it requires, for people.
    pub objective: String,
    /// Met everywhere; `None` when there was nothing to measure.
    pub pass: Option<bool>,
    /// The worst check, for people.
    pub measured: String,
    /// Every check, worst first.
    pub checks: Vec<SloCheck>,
}

/// The one-line verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Every objective with data met.
    pub pass: bool,
    /// `PASS: ...` or `FAIL: ...`.
    pub line: String,
}

/// A target's latency over the run, for the charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetTimeline {
    /// The agent's instance.
    pub server: String,
    /// The target.
    pub target: String,
    /// The points of every phase, in time order.
    pub points: Vec<Point>,
}

/// The report of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The run.
    pub run: String,
    /// The verdict, first.
    pub verdict: Verdict,
    /// The phases, in order.
    pub phases: Vec<RunPhase>,
    /// Per server, target and phase.
    pub targets: Vec<TargetRow>,
    /// The run's incidents, in onset order.
    pub incidents: Vec<RunIncident>,
    /// Host load per server and phase.
    pub host: Vec<HostRow>,
    /// The objectives.
    pub slos: Vec<SloResult>,
    /// Latency over time per server and target.
    pub timelines: Vec<TargetTimeline>,
    /// How exact the figures are (one line per source of percentiles), and
    /// what the maker of the report adds (agents it could not read).
    pub notes: Vec<String>,
    /// When the run ended (or the report was made, while it runs).
    pub end: DateTime<Utc>,
}

/// The step name of the whole probe.
const TOTAL: &str = "total";

fn matches(globs: &[Glob], name: &str) -> bool {
    globs.is_empty() || globs.iter().any(|g| g.matches(name))
}

/// Makes the report of a run.
pub fn report(input: &Input<'_>) -> Report {
    let mut targets = Vec::new();
    let mut host = Vec::new();
    let mut timelines = Vec::new();
    let mut sources = std::collections::BTreeSet::new();
    for server in input.servers {
        let mut names: Vec<&String> = server
            .phases
            .iter()
            .flat_map(|p| p.targets.keys())
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            let first = server
                .phases
                .first()
                .and_then(|p| p.targets.get(name))
                .and_then(|t| t.quantile(TOTAL, 0.95));
            let mut points = Vec::new();
            for (phase, stats) in input.phases.iter().zip(&server.phases) {
                let Some(t) = stats.targets.get(name) else {
                    continue;
                };
                points.extend(t.points().iter().copied());
                let total = t.percentiles(TOTAL);
                let slowest = t.slowest_step();
                sources.extend(t.source(TOTAL).filter(|_| total.is_some()));
                sources.extend(slowest.as_deref().and_then(|s| t.source(s)));
                targets.push(TargetRow {
                    server: server.server.clone(),
                    target: name.clone(),
                    phase: phase.name.clone(),
                    probes: t.probes(),
                    success_percent: t.success_percent(),
                    total,
                    slowest: slowest.as_deref().and_then(|s| t.percentiles(s)),
                    slowest_step: slowest,
                    p95_vs_first: match (total, first) {
                        (Some(t), Some(f)) if f > 0.0 => Some(t.p95 / f),
                        _ => None,
                    },
                });
            }
            points.sort_by_key(|p| p.at);
            timelines.push(TargetTimeline {
                server: server.server.clone(),
                target: name.clone(),
                points,
            });
        }
        for (phase, stats) in input.phases.iter().zip(&server.phases) {
            host.push(HostRow {
                server: server.server.clone(),
                phase: phase.name.clone(),
                load: stats.host.clone(),
            });
        }
    }
    let mut incidents = input.incidents.to_vec();
    incidents.sort_by_key(|i| i.started_at);
    let slos: Vec<SloResult> = input.slos.iter().map(|s| evaluate(input, s)).collect();
    let verdict = verdict(&slos);
    Report {
        run: input.run.to_string(),
        verdict,
        phases: input.phases.to_vec(),
        targets,
        incidents,
        host,
        slos,
        timelines,
        notes: sources
            .into_iter()
            .map(|s: Source| s.statement().to_string())
            .collect(),
        end: input.end,
    }
}

/// Measures one objective everywhere it applies.
fn evaluate(input: &Input<'_>, slo: &Slo) -> SloResult {
    let mut checks = Vec::new();
    match slo.objective {
        Objective::Latency {
            quantile,
            step,
            cmp,
            limit,
        } => per_target_phase(input, slo, &mut checks, |t| {
            let v = t.quantile(step.as_str(), quantile)?;
            Some((v, seconds(v), cmp.holds(v, limit.as_secs_f64())))
        }),
        Objective::Success { cmp, percent } => per_target_phase(input, slo, &mut checks, |t| {
            let v = t.success_percent()?;
            Some((
                v,
                format!("{v:.3}% of {}", t.probes()),
                cmp.holds(v, percent),
            ))
        }),
        Objective::MaxIncident(max) => {
            for i in input.incidents {
                let phase = i.phase.as_deref().unwrap_or("");
                if !matches(&slo.targets, &i.target) || !matches(&slo.phases, phase) {
                    continue;
                }
                let d = i.duration(input.end).num_milliseconds().max(0) as f64 / 1000.0;
                checks.push(SloCheck {
                    server: i.server.clone(),
                    target: i.target.clone(),
                    phase: phase.to_string(),
                    measured: d,
                    measured_text: format!(
                        "{}{}",
                        seconds(d),
                        if i.recovered_at.is_none() {
                            " (still open)"
                        } else {
                            ""
                        }
                    ),
                    pass: d <= max.as_secs_f64(),
                });
            }
        }
    }
    // Worst first: failures, then by how far the figure goes the wrong way.
    let higher_is_worse = !matches!(slo.objective, Objective::Success { .. });
    checks.sort_by(|a, b| {
        a.pass.cmp(&b.pass).then_with(|| {
            if higher_is_worse {
                b.measured.total_cmp(&a.measured)
            } else {
                a.measured.total_cmp(&b.measured)
            }
        })
    });
    let pass = match (&slo.objective, checks.is_empty()) {
        (Objective::MaxIncident(_), true) => Some(true),
        (_, true) => None,
        _ => Some(checks.iter().all(|c| c.pass)),
    };
    let measured = match checks.first() {
        Some(c) => format!(
            "{} ({} {} in {})",
            c.measured_text, c.server, c.target, c.phase
        ),
        None if pass == Some(true) => "no incident".to_string(),
        None => "no data".to_string(),
    };
    SloResult {
        name: slo.name.clone(),
        objective: slo.objective.to_string(),
        pass,
        measured,
        checks,
    }
}

/// Checks an objective in every phase and on every target it names:
/// `measure` gives a target's figure in a phase (value, text, whether it
/// meets the objective), or `None` when there is nothing to measure.
fn per_target_phase(
    input: &Input<'_>,
    slo: &Slo,
    checks: &mut Vec<SloCheck>,
    measure: impl Fn(&TargetFigures) -> Option<(f64, String, bool)>,
) {
    for server in input.servers {
        for (phase, stats) in input.phases.iter().zip(&server.phases) {
            if !matches(&slo.phases, &phase.name) {
                continue;
            }
            for (target, t) in &stats.targets {
                if !matches(&slo.targets, target) {
                    continue;
                }
                if let Some((measured, measured_text, pass)) = measure(t) {
                    checks.push(SloCheck {
                        server: server.server.clone(),
                        target: target.clone(),
                        phase: phase.name.clone(),
                        measured,
                        measured_text,
                        pass,
                    });
                }
            }
        }
    }
}

/// The verdict line over every objective.
fn verdict(slos: &[SloResult]) -> Verdict {
    let failed: Vec<&SloResult> = slos.iter().filter(|s| s.pass == Some(false)).collect();
    let no_data = slos.iter().filter(|s| s.pass.is_none()).count();
    let tail = if no_data > 0 {
        format!(", {no_data} without data")
    } else {
        String::new()
    };
    if slos.is_empty() {
        return Verdict {
            pass: true,
            line: "PASS: no objectives declared ([[slo]] in the configuration)".into(),
        };
    }
    if failed.is_empty() {
        Verdict {
            pass: true,
            line: format!(
                "PASS: {} of {} objectives met{tail}",
                slos.len() - no_data,
                slos.len()
            ),
        }
    } else {
        let names: Vec<String> = failed
            .iter()
            .map(|s| format!("{} ({})", s.name, s.measured))
            .collect();
        Verdict {
            pass: false,
            line: format!(
                "FAIL: {} of {} objectives failed{tail}: {}",
                failed.len(),
                slos.len(),
                names.join("; ")
            ),
        }
    }
}

/// Seconds for people, to three significant digits below a minute
/// (`687ms`, `94.9ms`, `1.25s`) and in whole seconds from a minute up
/// (`5m30s`): the sketch's figures are good to 0.5%, no more.
pub fn seconds(v: f64) -> String {
    let v = v.max(0.0);
    let (n, unit) = if v < 1.0 { (v * 1e3, "ms") } else { (v, "s") };
    if v >= 60.0 {
        return human::duration(std::time::Duration::from_secs_f64(v.round()), Style::Table);
    }
    if n == 0.0 {
        return format!("0{unit}");
    }
    let decimals = (2 - n.log10().floor() as i32).max(0) as usize;
    let text = format!("{n:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{unit}")
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod seconds_tests {
    #[test]
    fn figures_have_three_significant_digits() {
        let cases = [
            (0.687279, "687ms"),
            (0.09489, "94.9ms"),
            (0.0085, "8.5ms"),
            (0.19, "190ms"),
            (1.2549, "1.25s"),
            (0.0, "0ms"),
            (600.0, "10m"),
            (330.4, "5m30s"),
        ];
        for (v, want) in cases {
            assert_eq!(super::seconds(v), want, "{v}");
        }
    }
}
