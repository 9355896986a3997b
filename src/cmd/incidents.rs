//! `mailpulse incidents`: the incident history the agent recorded, newest
//! first, read from the state store (works while the daemon runs), or with
//! `--agent URL` from a running agent's JSON API (`/api/v1/incidents`); by
//! target, time window and soak-test run.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;

use super::{out, parse_time, ConfigSource};
use crate::report;
use anyhow::Context as _;

use crate::store::incidents::IncidentRecord;
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
    /// Ask this running agent (its status address, e.g.
    /// http://cas03:9717) through its JSON API instead of reading the
    /// local state store.
    #[arg(long, value_name = "URL", conflicts_with = "config")]
    pub agent: Option<url::Url>,
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

/// How long `--agent` waits for the agent's answer.
const AGENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The incidents of a running agent, from `GET /api/v1/incidents`, as the
/// store's records (what the JSON API leaves out is zero or absent).
async fn from_agent(
    agent: &url::Url,
    target: Option<&str>,
    limit: usize,
) -> anyhow::Result<Vec<IncidentRecord>> {
    let mut url = agent
        .join("/api/v1/incidents")
        .map_err(|e| anyhow::anyhow!("--agent: {e}"))?;
    url.query_pairs_mut()
        .append_pair("limit", &limit.clamp(1, 1000).to_string());
    if let Some(t) = target {
        url.query_pairs_mut().append_pair("target", t);
    }
    let body = tokio::time::timeout(AGENT_TIMEOUT, crate::replay::http_get(&url))
        .await
        .map_err(|_| anyhow::anyhow!("the agent did not answer within 10s"))??;
    let list: serde_json::Value =
        serde_json::from_slice(&body).context("the agent's answer is not JSON")?;
    let Some(items) = list["incidents"].as_array() else {
        anyhow::bail!("the agent's answer has no incident list");
    };
    items.iter().map(record_of).collect()
}

/// A stored record from one incident of the JSON API.
fn record_of(v: &serde_json::Value) -> anyhow::Result<IncidentRecord> {
    use serde_json::json;
    let duration = |x: &serde_json::Value| {
        x.as_f64().map(|s| {
            let d = std::time::Duration::from_secs_f64(s.max(0.0));
            json!({ "secs": d.as_secs(), "nanos": d.subsec_nanos() })
        })
    };
    let incident = json!({
        "kind": v["kind"],
        "started_at": v["started_at"],
        "detected_at": v["detected_at"],
        "recovered_at": v["recovered_at"],
        "closed_at": v["recovered_at"],
        "peak_latency": duration(&v["peak_seconds"]),
        "baseline_at_onset": duration(&v["baseline_seconds"]),
        "worst_phase": v["worst_step"],
        "slow_count": v["slow_probes"],
        "failed_count": v["failed_probes"],
        "escalated_at": v["escalated_at"],
        "outcome": v["outcome"],
        "run": v["run"],
        "run_phase": v["phase"],
        "window": v["window"],
    });
    Ok(IncidentRecord {
        target: v["target"]
            .as_str()
            .context("an incident without a target")?
            .to_string(),
        incident: serde_json::from_value(incident).context("an incident the agent sent")?,
    })
}

/// Prints the recorded incidents as a table or JSON lines.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
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
    let wanted = |r: &IncidentRecord| {
        target.is_none_or(|t| r.target == t)
            && run.is_none_or(|n| r.incident.run.as_deref() == Some(n))
            && until.is_none_or(|u| r.incident.started_at < u)
            && since.is_none_or(|s| r.incident.recovered_at.is_none_or(|end| end >= s))
    };
    if let Some(agent) = &args.agent {
        // The API filters by target; the rest is filtered here, from as
        // many as it gives.
        let filtered = since.is_some() || until.is_some() || run.is_some();
        let fetch = if filtered { 1000 } else { args.limit };
        let records: Vec<IncidentRecord> = from_agent(agent, target, fetch)
            .await?
            .into_iter()
            .filter(|r| wanted(r))
            .take(args.limit)
            .collect();
        print(&records, args.json, || {
            format!(
                "no incidents recorded by {}",
                crate::report::terminal_text(agent.as_str())
            )
        });
        return Ok(ExitCode::SUCCESS);
    }
    let config = ConfigSource::new(args.config.clone()).load()?;
    let dir = &config.agent.state_dir;
    let records = if history::database_exists(dir) {
        let store = Store::open(dir)?;
        history::history(&store, history::MAX_HISTORY as usize)?
            .into_iter()
            .filter(|r| wanted(r))
            .take(args.limit)
            .collect()
    } else {
        Vec::new()
    };
    print(&records, args.json, || {
        format!("no incidents recorded in {}", dir.display())
    });
    Ok(ExitCode::SUCCESS)
}

/// Prints `records` as JSON lines or a table (`none` when there are none).
fn print(records: &[IncidentRecord], json: bool, none: impl FnOnce() -> String) {
    if json {
        for r in records {
            out::line(report::incident_json(r));
        }
    } else if records.is_empty() {
        out::line(none());
    } else {
        out::print(report::incident_table(records));
    }
}
