//! `mailpulse incidents`: the incident history the agent recorded, newest
//! first, read from the state store (works while the daemon runs), by
//! target, time window and soak-test run.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;

use super::{out, parse_time, ConfigSource};
use crate::report;
use crate::store::{incidents as history, Store};

/// `mailpulse incidents`: the flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (for `[agent] state_dir`). Without it,
    /// /etc/mailpulse/mailpulse.toml if it exists, else the built-in default.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON object per incident per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only this target's incidents.
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// At most this many incidents.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Only incidents still open at or after this time (RFC 3339, or a
    /// duration ago such as "2h").
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only incidents that began before this time (RFC 3339, or a duration
    /// ago such as "30m").
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only incidents opened during this soak-test run.
    #[arg(long, value_name = "NAME")]
    pub run: Option<String>,
}

/// Prints the recorded incidents as a table or JSON lines.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let config = ConfigSource::new(args.config.clone()).load()?;
    let dir = &config.agent.state_dir;
    let target = args.target.as_deref();
    let now = Utc::now();
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time("--since", t, now))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| parse_time("--until", t, now))
        .transpose()?;
    let run = args.run.as_deref();
    let records = if history::database_exists(dir) {
        let store = Store::open(dir)?;
        history::history(&store, history::MAX_HISTORY as usize)?
            .into_iter()
            .filter(|r| target.is_none_or(|t| r.target == t))
            .filter(|r| run.is_none_or(|n| r.incident.run.as_deref() == Some(n)))
            .filter(|r| until.is_none_or(|u| r.incident.started_at < u))
            .filter(|r| since.is_none_or(|s| r.incident.recovered_at.is_none_or(|end| end >= s)))
            .take(args.limit)
            .collect()
    } else {
        Vec::new()
    };
    if args.json {
        for r in &records {
            out::line(report::incident_json(r));
        }
    } else if records.is_empty() {
        out::line(format_args!("no incidents recorded in {}", dir.display()));
    } else {
        out::print(report::incident_table(&records));
    }
    Ok(ExitCode::SUCCESS)
}
