//! `mailpulse soak start|phase|end|list`: soak-test runs and their phases,
//! marked in the local agent's state store (also while the daemon runs,
//! which notices within seconds), or, with `--agent`/`--prometheus`, on
//! every agent of a fleet through their API (`fleet`), a line per agent.
//! Every mark is stamped once, by this command (`--at`, else now), so the
//! phase boundaries are the caller's and all agents agree on them.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::Subcommand;

use super::fleet_args::FleetArgs;
use super::{out, parse_time, ConfigSource};
use crate::alert::render;
use crate::fleet;
use crate::report::terminal_text;
use crate::store::soak::{self, Mark, Run};
use crate::store::Store;

/// `mailpulse soak`: soak-test runs.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: SoakCommand,
    /// Configuration file (for `[agent] state_dir` and `[soak] keep_runs`).
    /// Without it, /etc/mailpulse/mailpulse.toml if it exists, else the
    /// built-in default.
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Where to act: the local store, or agents through their API.
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// The soak subcommands.
#[derive(Debug, Subcommand)]
pub enum SoakCommand {
    /// Start a run (refused while one is active), with its first phase if
    /// `--phase` is given.
    Start {
        /// The run's name, e.g. "golive-2026-12".
        name: String,
        /// The first phase, e.g. "baseline".
        #[arg(long)]
        phase: Option<String>,
        /// A note for the phase (or the run, without `--phase`).
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// When (RFC 3339, or a duration ago such as "5m"); default now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// End the active run's current phase and start the next.
    Phase {
        /// The next phase, e.g. "plateau".
        phase: String,
        /// A note for it.
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// When (RFC 3339, or a duration ago such as "5m"); default now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// End the active run (and its current phase).
    End {
        /// When (RFC 3339, or a duration ago such as "5m"); default now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// The end-of-run report of a run from this agent, or with
    /// `--prometheus` from the whole fleet: phases, per-target percentiles,
    /// incidents, host load and each `[[slo]]` objective with PASS or FAIL.
    /// Exit 0 when all pass, 3 when one fails.
    Report {
        /// The run's name (the newest run of that name).
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: super::soak_report::ReportFormat,
        /// Write the report to FILE (the verdict goes to standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List the stored runs, newest first, with their phases.
    List {
        /// One JSON object per run per line instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl SoakCommand {
    /// The mark this subcommand sets and its time; `None` for `list`.
    fn mark(&self, now: DateTime<Utc>) -> anyhow::Result<Option<(Mark, DateTime<Utc>)>> {
        let (mark, at) = match self {
            SoakCommand::Start {
                name,
                phase,
                note,
                at,
            } => (
                Mark::Start {
                    name: name.clone(),
                    phase: phase.clone(),
                    note: note.clone(),
                },
                at,
            ),
            SoakCommand::Phase { phase, note, at } => (
                Mark::Phase {
                    phase: phase.clone(),
                    note: note.clone(),
                },
                at,
            ),
            SoakCommand::End { at } => (Mark::End, at),
            SoakCommand::List { .. } | SoakCommand::Report { .. } => return Ok(None),
        };
        let at = match at {
            Some(text) => parse_time("--at", text, now)?,
            None => now,
        };
        Ok(Some((mark, at)))
    }
}

/// Runs `mailpulse soak ...`.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let SoakCommand::Report {
        name,
        format,
        output,
    } = &args.command
    {
        if let Some(prometheus) = &args.fleet.prometheus {
            if !args.fleet.agents.is_empty() {
                anyhow::bail!(
                    "soak report --prometheus reads the agents Prometheus scrapes; \
                     --agent is for marks and lists"
                );
            }
            let config = ConfigSource::new(args.config.clone()).load()?;
            let credentials = args.fleet.credentials()?;
            let fleet = super::soak_fleet_report::Fleet {
                prometheus,
                job: args.fleet.job.as_deref(),
                credentials: credentials.as_ref(),
            };
            return super::soak_fleet_report::run(
                &config,
                &fleet,
                name,
                *format,
                output.as_deref(),
            )
            .await;
        }
        if !args.fleet.agents.is_empty() {
            anyhow::bail!(
                "soak report reads a fleet through --prometheus URL (the agents it scrapes); \
                 --agent is for marks and lists"
            );
        }
    }
    if args.fleet.is_fleet() {
        return fleet_run(args).await;
    }
    args.fleet.check_local()?;
    let config = ConfigSource::new(args.config.clone()).load()?;
    let keep = config.soak.keep_runs;
    let state_dir = config.agent.state_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&state_dir)).await??;
    if let SoakCommand::Report {
        name,
        format,
        output,
    } = &args.command
    {
        return super::soak_report::run(&config, store, name, *format, output.as_deref()).await;
    }
    let now = Utc::now();
    match args.command.mark(now)? {
        Some((mark, at)) => {
            let run = tokio::task::spawn_blocking(move || {
                mark.apply(&store, at, keep, crate::config::is_hidden_char)
            })
            .await??;
            out::line(marked(&run));
        }
        None => {
            let runs = tokio::task::spawn_blocking(move || soak::runs(&store)).await??;
            let json = matches!(args.command, SoakCommand::List { json: true });
            print_runs(&runs, json);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `soak ...` on every agent named with `--agent` or found through
/// `--prometheus`: the mark stamped once, here; a line per agent; exit 1
/// when any agent did not take it.
async fn fleet_run(args: &Args) -> anyhow::Result<ExitCode> {
    let agents = args.fleet.agents().await?;
    let credentials = args.fleet.credentials()?;
    let now = Utc::now();
    let (outcomes, mark) = match args.command.mark(now)? {
        Some((mark, at)) => {
            let mut body = serde_json::to_value(&mark)?;
            let path = match body.as_object_mut().and_then(|m| m.remove("action")) {
                Some(serde_json::Value::String(a)) => format!("soak/{a}"),
                _ => anyhow::bail!("internal: a mark without its action"),
            };
            body["at"] = serde_json::Value::String(render::rfc3339(at));
            let outcomes = fleet::send_all(
                &agents,
                hyper::Method::POST,
                &path,
                Some(&body),
                credentials.as_ref(),
            )
            .await?;
            (outcomes, true)
        }
        None => {
            let outcomes = fleet::send_all(
                &agents,
                hyper::Method::GET,
                "soak/runs",
                None,
                credentials.as_ref(),
            )
            .await?;
            (outcomes, false)
        }
    };
    let json = matches!(args.command, SoakCommand::List { json: true });
    let mut failed = 0;
    for o in &outcomes {
        let agent = terminal_text(&o.agent);
        match &o.result {
            Err(e) => {
                failed += 1;
                out::line(format_args!("{agent}: FAILED: {}", terminal_text(e)));
            }
            Ok(v) if mark => match serde_json::from_value::<Run>(v["run"].clone()) {
                Ok(run) => out::line(format_args!("{agent}: {}", marked(&run))),
                Err(e) => {
                    failed += 1;
                    out::line(format_args!("{agent}: FAILED: unexpected answer: {e}"));
                }
            },
            Ok(v) if json => out::line(serde_json::json!({ "agent": o.agent, "runs": v })),
            Ok(v) => {
                let runs: Vec<Run> = serde_json::from_value(v.clone()).unwrap_or_default();
                out::line(format_args!("{agent}:"));
                print_runs(&runs, false);
            }
        }
    }
    if failed > 0 {
        eprintln!("mailpulse: {failed} of {} agent(s) failed", outcomes.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// One line saying what a mark did to `run`.
pub fn marked(run: &Run) -> String {
    let name = terminal_text(&run.name);
    match (run.ended_at, run.phases.last()) {
        (Some(end), _) => format!("soak run {name} ended at {}", render::rfc3339(end)),
        (None, Some(p)) if run.phases.len() > 1 => format!(
            "soak run {name}: phase {} began at {}",
            terminal_text(&p.name),
            render::rfc3339(p.started_at)
        ),
        (None, Some(p)) => format!(
            "soak run {name} started at {} (phase {})",
            render::rfc3339(run.started_at),
            terminal_text(&p.name)
        ),
        (None, None) => format!(
            "soak run {name} started at {}",
            render::rfc3339(run.started_at)
        ),
    }
}

/// Prints runs newest first: text for people, or one JSON object a line.
pub fn print_runs(runs: &[Run], json: bool) {
    if json {
        for run in runs.iter().rev() {
            out::line(serde_json::to_string(run).expect("runs serialize"));
        }
        return;
    }
    if runs.is_empty() {
        out::line("no soak runs");
        return;
    }
    for run in runs.iter().rev() {
        out::line(format_args!(
            "{} {} {} .. {}{}",
            run.id,
            terminal_text(&run.name),
            render::rfc3339(run.started_at),
            run.ended_at.map_or("active".to_string(), render::rfc3339),
            run.note
                .as_deref()
                .map(|n| format!(" ({})", terminal_text(n)))
                .unwrap_or_default()
        ));
        for p in &run.phases {
            out::line(format_args!(
                "  {} {} .. {}{}",
                terminal_text(&p.name),
                render::rfc3339(p.started_at),
                p.ended_at.map_or("now".to_string(), render::rfc3339),
                p.note
                    .as_deref()
                    .map(|n| format!(" ({})", terminal_text(n)))
                    .unwrap_or_default()
            ));
        }
    }
}
