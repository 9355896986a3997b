//! `mailpulse soak report NAME`: the end-of-run verdict of a soak run from
//! the local agent alone: the run's phases, what the daemon kept of each
//! (`verdict::stats`), the incidents of the run and the `[[slo]]`
//! objectives, as text, Markdown, JSON or one self-contained HTML file.
//! Exit 0 when every objective is met, 3 when one fails (a load-test
//! controller can gate on it), 1 on errors.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;

use super::out;
use crate::config::Config;
use crate::report::terminal_text;
use crate::store::incidents::history;
use crate::store::{soak, soak_stats, Store};
use crate::verdict::render::{render, Format};
use crate::verdict::stats::PhaseStats;
use crate::verdict::{report, Input, RunIncident, RunPhase, ServerRun};

/// The exit code when an objective failed.
pub const FAILED: u8 = 3;

/// The most incidents read back for a report.
const MAX_INCIDENTS: usize = 100_000;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned plain text.
    Text,
    /// Markdown tables, for a ticket or a wiki.
    Markdown,
    /// JSON, for a test controller.
    Json,
    /// One self-contained HTML page (no scripts, fonts or links).
    Html,
}

impl ReportFormat {
    /// The renderer's format.
    pub fn format(self) -> Format {
        match self {
            ReportFormat::Text => Format::Text,
            ReportFormat::Markdown => Format::Markdown,
            ReportFormat::Json => Format::Json,
            ReportFormat::Html => Format::Html,
        }
    }
}

/// Writes the report of run `name`; the exit code says the verdict.
pub async fn run(
    config: &Config,
    store: Store,
    name: &str,
    format: ReportFormat,
    output: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let wanted = name.to_string();
    let (run, rows, records) = tokio::task::spawn_blocking(move || {
        let runs = soak::runs(&store)?;
        let run = runs.into_iter().rev().find(|r| r.name == wanted);
        let rows = match &run {
            Some(r) => soak_stats::load(&store, r.id)?,
            None => Vec::new(),
        };
        let records = if run.is_some() {
            history(&store, MAX_INCIDENTS)?
        } else {
            Vec::new()
        };
        anyhow::Ok((run, rows, records))
    })
    .await??;
    let Some(run) = run else {
        anyhow::bail!(
            "no soak run named {:?} in this agent's store (mailpulse soak list shows them)",
            terminal_text(name)
        );
    };
    let end = run.ended_at.unwrap_or_else(Utc::now);
    let phases = run_phases(&run);
    let mut stats = vec![PhaseStats::default(); phases.len()];
    for (index, bytes) in rows {
        if let Some(slot) = stats.get_mut(index as usize) {
            *slot = serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "phase {index} of run {:?}: stored figures unreadable",
                    run.name
                )
            })?;
        }
    }
    let server = config.agent.instance.clone();
    let incidents: Vec<RunIncident> = records
        .into_iter()
        .filter(|r| {
            let i = &r.incident;
            i.run.as_deref() == Some(run.name.as_str())
                && i.started_at >= run.started_at - chrono::Duration::hours(24)
                && i.detected_at >= run.started_at
                && i.detected_at <= end
        })
        .map(|r| RunIncident {
            server: server.clone(),
            target: r.target,
            kind: r.incident.kind.as_str().to_string(),
            started_at: r.incident.started_at,
            detected_at: r.incident.detected_at,
            recovered_at: r.incident.recovered_at,
            peak_seconds: r.incident.peak_latency.map(|d| d.as_secs_f64()),
            worst_step: r.incident.worst_phase.clone(),
            phase: r.incident.run_phase.clone(),
        })
        .collect();
    let servers = [ServerRun {
        server,
        phases: stats.into_iter().map(Into::into).collect(),
    }];
    let report = report(&Input {
        run: &run.name,
        phases: &phases,
        servers: &servers,
        incidents: &incidents,
        slos: &config.slos,
        end,
    });
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
    Ok(if report.verdict.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    })
}

/// A stored run's phases as the report's timeline.
pub(super) fn run_phases(run: &crate::store::soak::Run) -> Vec<RunPhase> {
    run.phases
        .iter()
        .map(|p| RunPhase {
            name: p.name.clone(),
            start: p.started_at,
            end: p.ended_at,
            note: p.note.clone(),
        })
        .collect()
}
