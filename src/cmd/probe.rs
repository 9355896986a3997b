//! `mailpulse probe`: probes the chosen targets once, now, concurrently, and
//! prints every phase timing in configuration order (tables or JSON).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use super::{out, ConfigSource};
use crate::config::Target;
use crate::probe::{self, Prober};
use crate::report;
use crate::sample::Sample;

/// `mailpulse probe`: the flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file with the targets. Without it,
    /// /etc/mailpulse/mailpulse.toml if it exists, else the built-in default
    /// (which has no targets).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON (one array of results) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Targets to probe, by name (default: all).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
}

/// Probes and prints; exits 0 when every probe succeeded, 2 when one failed.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let names = &args.targets;
    let config = ConfigSource::new(args.config.clone()).load()?;
    let Some(path) = &config.source else {
        anyhow::bail!(
            "nothing to probe: the built-in default has no targets; name a file with --config FILE"
        );
    };
    for name in names {
        if config.target(name).is_none() {
            let known: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
            anyhow::bail!(
                "no target named {name:?} in {} (targets: {})",
                path.display(),
                report::name_hint(name, &known)
            );
        }
    }
    let chosen: Vec<&Target> = config
        .targets
        .iter()
        .filter(|t| names.is_empty() || names.contains(&t.name))
        .collect();
    if chosen.is_empty() {
        anyhow::bail!("{} defines no targets", path.display());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, target) in chosen.iter().enumerate() {
        let prober = Prober::new(target).with_context(|| format!("target {:?}", target.name))?;
        tasks.spawn(async move {
            (
                i,
                probe::run(&prober, chrono::Utc::now(), Duration::ZERO).await,
            )
        });
    }
    let mut samples: Vec<(usize, Sample)> = tasks.join_all().await;
    samples.sort_by_key(|(i, _)| *i);
    let all_ok = samples.iter().all(|(_, s)| s.success());
    if args.json {
        let list: Vec<_> = samples
            .iter()
            .map(|(_, s)| report::sample_json(s))
            .collect();
        out::line(serde_json::to_string_pretty(&list)?);
    } else {
        let now = chrono::Utc::now();
        let blocks: Vec<String> = samples
            .iter()
            .map(|(_, s)| report::sample_table(s, now))
            .collect();
        out::print(blocks.join("\n"));
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
