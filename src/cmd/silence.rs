//! The alert commands: `mailpulse test-alert --receiver NAME` (a clearly
//! marked test notification, sent now, to check wiring before a live
//! weekend) and `mailpulse silence add|list|remove` (ad hoc maintenance
//! windows, stored in the state store the daemon reads).
//!
//! These are clap argument types plus one async function each; `main.rs`
//! only dispatches. They read the alerting part of the configuration file
//! themselves and print for humans; they never start the daemon.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, SubsecRound, Utc};
use clap::{Args, Subcommand};

use crate::alert::{build_receiver, render, AlertEvent, AlertStatus, HostLoad, ReceiverContext};
use crate::config::alerting::{load_alerting_part, WindowSchedule};
use crate::config::duration::parse_duration;
use crate::config::DEFAULT_CONFIG_PATH;
use crate::report::terminal_text;
use crate::store::outbox::{self, Silence};
use crate::store::Store;

/// `mailpulse test-alert`: sends a test notification to one receiver.
#[derive(Debug, Args)]
pub struct TestAlertArgs {
    /// The receiver to send to, by name (`[[receiver]] name`).
    #[arg(long, value_name = "NAME")]
    pub receiver: String,
    /// Configuration file with the receiver.
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
}

/// `mailpulse silence`: ad hoc maintenance windows.
#[derive(Debug, Args)]
pub struct SilenceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SilenceCommand,
    /// Configuration file (for `[agent] state_dir`).
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH, global = true)]
    pub config: PathBuf,
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

/// The synthetic incident a test notification describes.
fn test_event(instance: &str, severity: &str, now: DateTime<Utc>) -> AlertEvent {
    AlertEvent {
        incident_key: format!("{:016x}", now.timestamp_millis()),
        status: AlertStatus::Firing,
        reminder: false,
        test: true,
        instance: instance.to_string(),
        target: "test-alert".into(),
        probe_kind: "http".into(),
        incident_kind: "slow".into(),
        severity: severity.to_string(),
        started_at: now - chrono::Duration::seconds(125),
        detected_at: now - chrono::Duration::seconds(64),
        recovered_at: None,
        peak_latency_seconds: Some(2.4),
        baseline_latency_seconds: Some(0.12),
        current_latency_seconds: Some(1.9),
        worst_phase: Some("first_byte".into()),
        slow_count: 4,
        failed_count: 0,
        last_error: None,
        host: Some(HostLoad {
            cpu_ratio: Some(0.42),
            load1: Some(1.5),
            memory_available_bytes: Some(2 * 1024 * 1024 * 1024),
            tcp_established: Some(321),
        }),
    }
}

/// Runs `mailpulse test-alert`: sends a test notification (and, for
/// receivers that keep an open alert, its resolve) directly, not through the
/// outbox, and reports the outcome.
pub async fn test_alert(args: &TestAlertArgs) -> anyhow::Result<()> {
    let file = load_alerting_part(&args.config).map_err(anyhow::Error::msg)?;
    let Some(rc) = file.alerting.receiver(&args.receiver) else {
        let known: Vec<&str> = file
            .alerting
            .receivers
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        bail!(
            "no receiver named {:?} in {} (receivers: {})",
            args.receiver,
            args.config.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    // Test notifications keep no state, so the daemon's store is left alone.
    let ctx = ReceiverContext {
        store: Store::in_memory()?,
        clock: crate::clock::system(),
        external_url: file.alerting.external_url.clone(),
    };
    let receiver = build_receiver(rc, &ctx).map_err(anyhow::Error::msg)?;
    let now = Utc::now().trunc_subsecs(0);
    let mut event = test_event(&file.instance, &file.alerting.default_severity, now);
    receiver
        .send(&event)
        .await
        .with_context(|| format!("test notification to {} ({}) failed", rc.name, rc.kind()))?;
    println!(
        "sent a test notification to {} ({}): {}",
        rc.name,
        rc.kind(),
        render::summary(&event)
    );
    if receiver.stateful() {
        event.status = AlertStatus::Resolved;
        event.recovered_at = Some(now);
        receiver
            .send(&event)
            .await
            .with_context(|| format!("resolving the test alert at {} failed", rc.name))?;
        println!("resolved the test alert at {}", rc.name);
    }
    Ok(())
}

/// Runs `mailpulse silence ...`.
pub async fn silence(args: &SilenceArgs) -> anyhow::Result<()> {
    let file = load_alerting_part(&args.config).map_err(anyhow::Error::msg)?;
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
            println!(
                "silence {id} added: {} until {} ({})",
                if target == "*" {
                    "all targets".into()
                } else {
                    terminal_text(target)
                },
                render::rfc3339(silence.ends_at),
                terminal_text(&silence.reason)
            );
        }
        SilenceCommand::List { all } => {
            let silences = outbox::silences(&store)?;
            let shown: Vec<&Silence> = silences
                .iter()
                .filter(|s| *all || s.ends_at > now)
                .collect();
            if shown.is_empty() {
                println!("no silences");
            } else {
                println!(
                    "{:<5} {:<16} {:<21} {:<21} {:<8} REASON",
                    "ID", "TARGET", "STARTS", "ENDS", "STATE"
                );
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
                    println!(
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
                    );
                }
            }
            for w in &file.alerting.maintenance {
                let targets = if w.targets.is_empty() {
                    "all targets".to_string()
                } else {
                    w.targets
                        .iter()
                        .map(|g| terminal_text(&g.0))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let when = match &w.schedule {
                    WindowSchedule::Once { start, end } => {
                        format!("{} to {}", render::rfc3339(*start), render::rfc3339(*end))
                    }
                    WindowSchedule::Weekly {
                        weekday,
                        at,
                        duration,
                    } => format!(
                        "every {weekday} {} UTC for {}",
                        at.format("%H:%M"),
                        render::human_duration(*duration)
                    ),
                    WindowSchedule::Daily { at, duration } => format!(
                        "every day {} UTC for {}",
                        at.format("%H:%M"),
                        render::human_duration(*duration)
                    ),
                };
                println!(
                    "maintenance {:?}: {targets}, {when}{}",
                    w.name,
                    if w.open_at(now) { " (open now)" } else { "" }
                );
            }
        }
        SilenceCommand::Remove { id } => {
            if outbox::remove_silence(&store, *id)? {
                println!("silence {id} removed");
            } else {
                bail!("no silence with id {id}");
            }
        }
    }
    Ok(())
}
