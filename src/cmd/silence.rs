//! `mailpulse silence add|list|extend|remove`: ad hoc maintenance windows,
//! stored in the state store the daemon reads, and the configured windows
//! listed beside them. Silences can be audited: each records who added it
//! (`--by`, else the login name), who extended it and who removed it, and
//! removed or ended ones stay listed by `silence list --all` (for a while,
//! see `store::outbox::SILENCE_RETENTION`). Reads the alerting part of the
//! configuration itself and prints for humans; never starts the daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, SubsecRound, Utc};
use clap::Subcommand;

use super::{out, ConfigSource};
use crate::alert::render;
use crate::config::alerting::Glob;
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
        /// Who adds it, for the audit; default $SUDO_USER, else $USER.
        #[arg(long = "by", value_name = "AUTHOR")]
        author: Option<String>,
    },
    /// List silences and configured maintenance windows.
    List {
        /// Include silences that have ended or were removed (kept 30 days).
        #[arg(long)]
        all: bool,
    },
    /// Move the end of a silence that has not ended later.
    Extend {
        /// The id `silence list` shows.
        id: u64,
        /// How much longer, e.g. "1h".
        #[arg(long = "by", value_name = "DURATION", value_parser = parse_duration)]
        duration: Duration,
    },
    /// Remove a silence by id: it stops holding pages now, and stays listed
    /// by `silence list --all`.
    Remove {
        /// The id `silence list` shows.
        id: u64,
        /// Who removes it, for the audit; default $SUDO_USER, else $USER.
        #[arg(long = "by", value_name = "AUTHOR")]
        author: Option<String>,
    },
}

/// The user running the command: `$SUDO_USER` (who ran sudo), else `$USER`.
pub(super) fn login_name() -> Option<String> {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .filter(|u| !u.is_empty())
}

/// `--by`, else the login name; a blank `--by` is refused.
fn author(by: &Option<String>) -> anyhow::Result<Option<String>> {
    match by {
        Some(b) if b.trim().is_empty() => bail!("--by must not be empty"),
        Some(b) => Ok(Some(b.clone())),
        None => Ok(login_name()),
    }
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
            author: by,
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
                created_by: author(by)?,
                removed_at: None,
                removed_by: None,
                extensions: Vec::new(),
            };
            let names = &file.target_names;
            if !names.is_empty() && !names.iter().any(|n| Glob(target.clone()).matches(n)) {
                eprintln!(
                    "warning: --target \"{}\" matches no configured target; the silence is stored anyway",
                    terminal_text(target)
                );
            }
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
                    let state = if s.removed_at.is_some() {
                        "removed"
                    } else if s.ends_at <= now {
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
                        audit(s)
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
        SilenceCommand::Extend { id, duration } => {
            let by = chrono::Duration::from_std(*duration)?;
            if by.is_zero() {
                bail!("--by must be longer than zero");
            }
            let s = outbox::extend_silence(&store, *id, by, now, login_name())??;
            out::line(format_args!(
                "silence {id} extended until {}",
                render::rfc3339(s.ends_at)
            ));
        }
        SilenceCommand::Remove { id, author: by } => {
            let by = author(by)?;
            if outbox::remove_silence(&store, *id, now, by)? {
                out::line(format_args!("silence {id} removed"));
            } else {
                match outbox::silences(&store)?.iter().find(|s| s.id == *id) {
                    Some(s) => bail!(
                        "no silence with id {id} to remove: it was removed at {}{}",
                        s.removed_at.map(render::rfc3339).unwrap_or_default(),
                        who(&s.removed_by)
                    ),
                    None => bail!("no silence with id {id}"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// ` by NAME`, escaped, or nothing when nobody is known.
fn who(by: &Option<String>) -> String {
    by.as_deref()
        .map(|u| format!(" by {}", terminal_text(u)))
        .unwrap_or_default()
}

/// What `silence list` adds after the reason: who added it, each extension
/// and the removal, e.g. ` (by alice; extended at ... by bob to ...;
/// removed at ... by carol)`. Names are escaped.
fn audit(s: &Silence) -> String {
    let mut parts = Vec::new();
    if let Some(by) = &s.created_by {
        parts.push(format!("by {}", terminal_text(by)));
    }
    for e in &s.extensions {
        parts.push(format!(
            "extended at {}{} to {}",
            render::rfc3339(e.at),
            who(&e.by),
            render::rfc3339(e.to)
        ));
    }
    if let Some(at) = s.removed_at {
        parts.push(format!(
            "removed at {}{}",
            render::rfc3339(at),
            who(&s.removed_by)
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}
