//! `mailpulse silence add|list|remove`: ad hoc maintenance windows, stored
//! in the state store the daemon reads, and the configured windows listed
//! beside them. Reads the alerting part of the configuration itself and
//! prints for humans; never starts the daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, SubsecRound, Utc};
use clap::Subcommand;

use super::{out, ConfigSource};
use crate::alert::render;
use crate::config::duration::parse_duration;
use crate::report::{self, terminal_text};
use crate::store::outbox::{self, Silence};
use crate::store::Store;

/// `mailpulse silence`: ad hoc maintenance windows.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: SilenceCommand,
    /// Configuration file (for `[agent] state_dir`). Without it,
    /// /etc/mailpulse/mailpulse.toml if it exists, else the built-in default.
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// The silence subcommands.
#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Hold pages of a target (or of all) for a while. Incidents are still
    /// recorded and exported; one still open when the silence ends pages then.
    Add {
        /// Target name or pattern (`*`, `?`); default every target.
        #[arg(long, default_value = "*")]
        target: String,
        /// How long, e.g. "2h", "30m".
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        duration: Duration,
        /// Why, for whoever looks later.
        #[arg(long)]
        reason: String,
        /// Start later than now (RFC 3339, e.g. 2026-12-05T22:00:00Z).
        #[arg(long, value_name = "TIME")]
        start: Option<String>,
    },
    /// List silences and configured maintenance windows.
    List {
        /// Include silences that have ended.
        #[arg(long)]
        all: bool,
    },
    /// Remove a silence by id.
    Remove {
        /// The id `silence list` shows.
        id: u64,
    },
}

/// Runs `mailpulse silence ...`.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let file = ConfigSource::new(args.config.clone()).load_alerting()?;
    let state_dir = file.state_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&state_dir)).await??;
    // Whole seconds: silences are listed and compared by humans.
    let now = Utc::now().trunc_subsecs(0);
    match &args.command {
        SilenceCommand::Add {
            target,
            duration,
            reason,
            start,
        } => {
            let starts_at = match start {
                Some(text) => DateTime::parse_from_rfc3339(text)
                    .with_context(|| format!("invalid --start {text:?} (expected RFC 3339)"))?
                    .with_timezone(&Utc)
                    .trunc_subsecs(0),
                None => now,
            };
            if duration.is_zero() {
                bail!("--for must be longer than zero");
            }
            if reason.trim().is_empty() {
                bail!("--reason must not be empty");
            }
            let silence = Silence {
                id: 0,
                target: target.clone(),
                starts_at,
                ends_at: starts_at + chrono::Duration::from_std(*duration)?,
                reason: reason.clone(),
                created_at: now,
                created_by: std::env::var("SUDO_USER")
                    .or_else(|_| std::env::var("USER"))
                    .ok(),
            };
            let id = outbox::add_silence(&store, &silence)?;
            out::line(format_args!(
                "silence {id} added: {} until {} ({})",
                if target == "*" {
                    "all targets".into()
                } else {
                    terminal_text(target)
                },
                render::rfc3339(silence.ends_at),
                terminal_text(&silence.reason)
            ));
        }
        SilenceCommand::List { all } => {
            let silences = outbox::silences(&store)?;
            let shown: Vec<&Silence> = silences
                .iter()
                .filter(|s| *all || s.ends_at > now)
                .collect();
            if shown.is_empty() {
                out::line("no silences");
            } else {
                out::line(format_args!(
                    "{:<5} {:<16} {:<21} {:<21} {:<8} REASON",
                    "ID", "TARGET", "STARTS", "ENDS", "STATE"
                ));
                for s in shown {
                    let state = if s.ends_at <= now {
                        "ended"
                    } else if s.starts_at > now {
                        "pending"
                    } else {
                        "active"
                    };
                    // Reasons, targets and users are whatever was typed
                    // (or stored by another tool): escape what a terminal
                    // would obey instead of show.
                    out::line(format_args!(
                        "{:<5} {:<16} {:<21} {:<21} {:<8} {}{}",
                        s.id,
                        terminal_text(&s.target),
                        render::rfc3339(s.starts_at),
                        render::rfc3339(s.ends_at),
                        state,
                        terminal_text(&s.reason),
                        s.created_by
                            .as_deref()
                            .map(|u| format!(" (by {})", terminal_text(u)))
                            .unwrap_or_default()
                    ));
                }
            }
            for w in &file.alerting.maintenance {
                out::line(format_args!(
                    "maintenance {}{}",
                    report::maintenance_window(w),
                    if w.open_at(now) { " (open now)" } else { "" }
                ));
            }
        }
        SilenceCommand::Remove { id } => {
            if outbox::remove_silence(&store, *id)? {
                out::line(format_args!("silence {id} removed"));
            } else {
                bail!("no silence with id {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
