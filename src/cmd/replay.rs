//! `mailpulse replay`: runs the slowdown detector over a recorded latency
//! series (a CSV file or a Prometheus range query, read by [`crate::replay`]),
//! faster than real time, and prints the incidents it would have raised, as
//! JSON lines or a table. Every decision comes from the agent's own detector.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};

use crate::detect::{Incident, SlowdownSettings};
use crate::human::{self, Style};
use crate::replay::{
    check_order, query_range, read_csv, replay_series, rfc3339, CsvOptions, IncidentLine,
    RangeQuery, Row, ValueUnit,
};
use crate::report::{self, Width};

/// `mailpulse replay`: the flags.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["csv", "prometheus"])))]
pub struct Args {
    /// A CSV file with a header; the `timestamp` and `value` columns are read
    /// (names matched regardless of case, other columns ignored). Timestamps
    /// are Unix seconds, RFC 3339 or `YYYY-MM-DD HH:MM:SS` (UTC); an empty
    /// value is a failed probe. Rows must be in time order (repeated
    /// timestamps are fine): a row earlier than the one before it is an
    /// error naming both lines, unless `--sort` is given.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Sort the CSV rows by time (keeping the file order of equal times)
    /// instead of refusing rows that go back in time.
    #[arg(long, requires = "csv")]
    pub sort: bool,
    /// A Prometheus server (`http://host:9090`) to run a range query on; each
    /// returned series is replayed separately. NaN values are failed probes.
    #[arg(long, value_name = "URL", requires_all = ["query", "start", "end", "step"])]
    pub prometheus: Option<String>,
    /// The PromQL expression of the range query (its values are latencies).
    #[arg(long, value_name = "PROMQL", requires = "prometheus")]
    pub query: Option<String>,
    /// Start of the range query (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "T", requires = "prometheus")]
    pub start: Option<String>,
    /// End of the range query (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "T", requires = "prometheus")]
    pub end: Option<String>,
    /// Resolution of the range query (`15s`, `1m`, or seconds).
    #[arg(long, value_name = "S", requires = "prometheus")]
    pub step: Option<String>,
    /// Take the detector settings from this configuration's `[slowdown]`
    /// table (and the `--target`'s override); built-in defaults without it.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The target name printed, and whose `[target.slowdown]` applies
    /// (default: the CSV file's stem, or each Prometheus series' `target`
    /// or `instance` label).
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Unit of the values.
    #[arg(long, value_enum, value_name = "UNIT", default_value = "s")]
    pub value_unit: ValueUnit,
    /// The CSV column holding timestamps.
    #[arg(long, value_name = "NAME", default_value = "timestamp")]
    pub time_column: String,
    /// The CSV column holding values.
    #[arg(long, value_name = "NAME", default_value = "value")]
    pub value_column: String,
    /// Print one JSON object per incident per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Renders incidents as a table for people.
pub fn render_table(series: &[(String, usize, Vec<Incident>)]) -> String {
    let mut out = String::new();
    let header = [
        "TARGET",
        "KIND",
        "STARTED",
        "DETECTED AFTER",
        "RECOVERED",
        "DURATION",
        "PEAK",
        "BASELINE",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (target, _, incidents) in series {
        for i in incidents {
            let secs = |s: f64| human::duration(Duration::from_secs_f64(s.max(0.0)), Style::Table);
            rows.push(vec![
                target.clone(),
                i.kind.as_str().to_string(),
                rfc3339(i.started_at),
                secs(i.time_to_detect_seconds()),
                i.recovered_at.map_or("open".into(), rfc3339),
                i.duration_seconds().map_or("-".into(), secs),
                i.peak_latency
                    .map_or("-".into(), |d| human::duration(d, Style::Table)),
                i.baseline_at_onset
                    .map_or("-".into(), |d| human::duration(d, Style::Table)),
            ]);
        }
    }
    if !rows.is_empty() {
        out = report::table(&header, &rows, Width::Bytes);
    }
    for (target, samples, incidents) in series {
        let open = incidents.iter().filter(|i| i.is_open()).count();
        let _ = writeln!(
            out,
            "{target}: {} incident{} ({open} open) in {samples} sample{}",
            incidents.len(),
            if incidents.len() == 1 { "" } else { "s" },
            if *samples == 1 { "" } else { "s" },
        );
    }
    out
}

/// Where the detector settings come from: the agent's own configuration
/// (loaded and validated by the same loader as `run`), or the defaults.
#[derive(Debug)]
struct SettingsSource {
    config: Option<crate::config::Config>,
}

impl SettingsSource {
    fn load(path: Option<&Path>) -> anyhow::Result<SettingsSource> {
        let config = match path {
            Some(path) => Some(crate::config::load(path)?),
            None => None,
        };
        Ok(SettingsSource { config })
    }

    /// The settings of `target`: its own when the configuration defines it,
    /// else the configuration's `[slowdown]`; with `must_exist`, a target the
    /// file does not define is an error.
    fn settings(&self, target: &str, must_exist: bool) -> anyhow::Result<SlowdownSettings> {
        let Some(config) = &self.config else {
            return Ok(SlowdownSettings::default());
        };
        match config.target(target) {
            Some(t) => Ok(t.slowdown.clone()),
            None if must_exist => {
                let path = config
                    .source
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string());
                bail!("target {target:?} is not defined in {path}")
            }
            None => Ok(config.slowdown.clone()),
        }
    }
}

/// Runs `mailpulse replay` and prints its results to stdout.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let source = SettingsSource::load(args.config.as_deref())?;
    let mut results: Vec<(String, usize, Vec<Incident>)> = Vec::new();
    if let Some(path) = &args.csv {
        let text = tokio::fs::read_to_string(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        let options = CsvOptions {
            time_column: args.time_column.clone(),
            value_column: args.value_column.clone(),
            unit: args.value_unit,
        };
        let mut rows = read_csv(&text, &options).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if args.sort {
            rows.sort_by_key(|r| r.at);
        }
        check_order(&rows).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let target = match &args.target {
            Some(t) => t.clone(),
            None => path
                .file_stem()
                .map_or("series".into(), |s| s.to_string_lossy().into_owned()),
        };
        let settings = source.settings(&target, args.target.is_some())?;
        let incidents = replay_series(&settings, rows.iter().map(Row::observation));
        results.push((target, rows.len(), incidents));
    } else if let Some(url) = &args.prometheus {
        let query = RangeQuery {
            query: args.query.clone().unwrap_or_default(),
            start: args.start.clone().unwrap_or_default(),
            end: args.end.clone().unwrap_or_default(),
            step: args.step.clone().unwrap_or_default(),
        };
        for (name, observations) in query_range(url, &query, args.value_unit).await? {
            let settings = match &args.target {
                Some(t) => source.settings(t, true)?,
                None => source.settings(&name, false)?,
            };
            let count = observations.len();
            results.push((name, count, replay_series(&settings, observations)));
        }
    }
    let mut out = String::new();
    if args.json {
        for (target, _, incidents) in &results {
            for incident in incidents {
                out.push_str(&serde_json::to_string(&IncidentLine::new(
                    target, incident,
                ))?);
                out.push('\n');
            }
        }
    } else {
        out = render_table(&results);
    }
    super::out::print(out);
    Ok(ExitCode::SUCCESS)
}
