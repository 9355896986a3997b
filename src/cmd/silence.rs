//! `mailpulse silence add|list|extend|remove`: ad hoc maintenance windows,
//! stored in the state store the daemon reads, and the configured windows
//! listed beside them; with `--agent`/`--prometheus`, on every agent of a
//! fleet through their API (`/api/v1/silences`), a line per agent. A silence
//! added to a fleet is stamped once here, so the time it was added names it
//! on every agent (`silence extend|remove TIME`). Silences can be audited: each records who added it
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

use serde_json::{json, Value};

use super::fleet_args::FleetArgs;
use super::{out, ConfigSource};
use crate::alert::render;
use crate::config::alerting::Glob;
use crate::config::duration::parse_duration;
use crate::human::{self, Style};
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
    /// Where to act: the local store, or agents through their API.
    #[command(flatten)]
    pub fleet: FleetArgs,
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
        /// The id `silence list` shows, or the time the silence was added
        /// (RFC 3339, as `silence add` printed it): the same on every agent
        /// of a fleet.
        #[arg(value_name = "ID|ADDED")]
        id: String,
        /// How much longer, e.g. "1h".
        #[arg(long = "by", value_name = "DURATION", value_parser = parse_duration)]
        duration: Duration,
    },
    /// Remove a silence by id: it stops holding pages now, and stays listed
    /// by `silence list --all`.
    Remove {
        /// The id `silence list` shows, or the time the silence was added
        /// (RFC 3339): the same on every agent of a fleet.
        #[arg(value_name = "ID|ADDED")]
        id: String,
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

/// A silence named on the command line: its id, or when it was added.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Named {
    /// `silence list`'s id.
    Id(u64),
    /// When it was added (the same on every agent of a fleet).
    Added(DateTime<Utc>),
}

/// Reads `ID|ADDED`.
fn named(text: &str) -> anyhow::Result<Named> {
    if let Ok(id) = text.parse() {
        return Ok(Named::Id(id));
    }
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => Ok(Named::Added(t.with_timezone(&Utc))),
        Err(_) => bail!(
            "invalid silence {text:?} (expected the id `silence list` shows, or the time it was added, RFC 3339)"
        ),
    }
}

/// The id of the silence `named` names in `store`.
fn local_id(store: &Store, named: Named) -> anyhow::Result<u64> {
    match named {
        Named::Id(id) => Ok(id),
        Named::Added(at) => outbox::silences(store)?
            .iter()
            .find(|s| s.created_at == at)
            .map(|s| s.id)
            .ok_or_else(|| anyhow::anyhow!("no silence added at {}", render::rfc3339(at))),
    }
}

/// Runs `mailpulse silence ...`.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    // Whole seconds: silences are listed and compared by humans.
    let now = Utc::now().trunc_subsecs(0);
    if args.fleet.is_fleet() {
        return fleet_run(args, now).await;
    }
    args.fleet.check_local()?;
    let file = ConfigSource::new(args.config.clone()).load_alerting()?;
    let state_dir = file.state_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&state_dir)).await??;
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
            print_silences(&outbox::silences(&store)?, now, *all);
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
            let id = local_id(&store, named(id)?)?;
            let s = outbox::extend_silence(&store, id, by, now, login_name())??;
            out::line(format_args!(
                "silence {id} extended until {}",
                render::rfc3339(s.ends_at)
            ));
        }
        SilenceCommand::Remove { id, author: by } => {
            let by = author(by)?;
            let id = local_id(&store, named(id)?)?;
            if outbox::remove_silence(&store, id, now, by)? {
                out::line(format_args!("silence {id} removed"));
            } else {
                match outbox::silences(&store)?.iter().find(|s| s.id == id) {
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

/// Prints the silences not ended at `now` (all with `all`) as a table.
fn print_silences(silences: &[Silence], now: DateTime<Utc>, all: bool) {
    let shown: Vec<&Silence> = silences.iter().filter(|s| all || s.ends_at > now).collect();
    if shown.is_empty() {
        out::line("no silences");
        return;
    }
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
        // Reasons, targets and users are whatever was typed (or stored by
        // another tool): escape what a terminal would obey instead of show.
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

/// `silence ...` on every agent of the fleet: one stamp for all; a line per
/// agent; exit 1 when any agent did not take the change.
async fn fleet_run(args: &Args, now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    let at = render::rfc3339(now);
    let post = hyper::Method::POST;
    let changed = |what: &'static str| {
        move |agent: &str, v: &Value| -> Result<(), String> {
            let s: Silence =
                serde_json::from_value(v["silence"].clone()).map_err(|e| e.to_string())?;
            out::line(format_args!(
                "{}: silence {} {what}: {} until {} ({})",
                terminal_text(agent),
                s.id,
                terminal_text(&s.target),
                render::rfc3339(s.ends_at),
                terminal_text(&s.reason)
            ));
            Ok(())
        }
    };
    let name = |id: &str| -> anyhow::Result<Value> {
        Ok(match named(id)? {
            Named::Id(id) => json!({ "id": id }),
            Named::Added(t) => json!({ "added_at": render::rfc3339(t) }),
        })
    };
    match &args.command {
        SilenceCommand::Add {
            target,
            duration,
            reason,
            start,
            author: by,
        } => {
            if duration.is_zero() {
                bail!("--for must be longer than zero");
            }
            if reason.trim().is_empty() {
                bail!("--reason must not be empty");
            }
            let body = json!({
                "target": target,
                "for": human::duration(*duration, Style::Config),
                "reason": reason,
                "start": start,
                "by": author(by)?,
                "at": at,
            });
            let code = args
                .fleet
                .send_and_report(post, "silences/add", Some(&body), changed("added"))
                .await?;
            out::line(format_args!(
                "added at {at} on every agent: `silence extend|remove {at}` changes it fleet-wide"
            ));
            Ok(code)
        }
        SilenceCommand::Extend { id, duration } => {
            if duration.is_zero() {
                bail!("--by must be longer than zero");
            }
            let mut body = name(id)?;
            body["by"] = json!(human::duration(*duration, Style::Config));
            body["who"] = json!(login_name());
            body["at"] = json!(at);
            args.fleet
                .send_and_report(post, "silences/extend", Some(&body), changed("extended"))
                .await
        }
        SilenceCommand::Remove { id, author: by } => {
            let mut body = name(id)?;
            body["by"] = json!(author(by)?);
            body["at"] = json!(at);
            args.fleet
                .send_and_report(post, "silences/remove", Some(&body), changed("removed"))
                .await
        }
        SilenceCommand::List { all } => {
            let all = *all;
            args.fleet
                .send_and_report(hyper::Method::GET, "silences", None, |agent, v| {
                    let silences: Vec<Silence> =
                        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
                    out::line(format_args!("{}:", terminal_text(agent)));
                    print_silences(&silences, now, all);
                    Ok(())
                })
                .await
        }
    }
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
