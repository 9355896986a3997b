//! `mailpulse window open|extend|close|list`: change windows, in which the
//! expected trouble of a migration batch on some targets is recorded and
//! held, and trouble beyond the agreed tolerance pages at once. Written to
//! the local agent's state store (also while the daemon runs, which reads
//! it every 2 s), or, with `--agent`/`--prometheus`, to every agent of a
//! fleet through their API (`POST /api/v1/windows/open|extend|close`), a
//! line per agent, exit 1 when any agent did not take the change. This
//! command stamps every change once (now), so all agents agree on a
//! window's span. `window list` shows the stored windows, open and
//! scheduled (ended ones too with `--all`), and the `[[window]]`s of the
//! configuration that have not opened yet.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, SubsecRound, Utc};
use clap::Subcommand;
use serde_json::{json, Value};

use super::fleet_args::FleetArgs;
use super::{out, ConfigSource};
use crate::alert::render;
use crate::config::alerting::{
    AlertingFile, Glob, DEFAULT_WINDOW_MAX_DOWN, DEFAULT_WINDOW_MAX_INCIDENT,
    DEFAULT_WINDOW_TOLERANCE,
};
use crate::config::duration::parse_duration;
use crate::human::{self, Style};
use crate::report::terminal_text;
use crate::store::windows::{self, ChangeWindow, WindowSource};
use crate::store::Store;

/// `mailpulse window`: change windows.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: WindowCommand,
    /// Configuration file (for `[agent] state_dir`, the target names and
    /// `[[window]]`). Without it, /etc/mailpulse/mailpulse.toml if it
    /// exists, else the built-in default.
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Where to act: the local store, or agents through their API.
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// The window subcommands.
#[derive(Debug, Subcommand)]
pub enum WindowCommand {
    /// Open a change window now: incidents of the targets it covers are
    /// recorded and their pages held; beyond tolerance they page at once.
    /// Refused while a window of that name is open.
    Open {
        /// The window's name, e.g. "batch-07".
        name: String,
        /// How long, e.g. "4h".
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        duration: Duration,
        /// Target names or patterns (`*`, `?`) it covers; default every
        /// target.
        #[arg(long, value_name = "PATTERN", num_args = 1..)]
        targets: Vec<String>,
        /// Latency at or above this many times the baseline pages at once
        /// (default 10).
        #[arg(long, value_name = "FACTOR")]
        tolerance: Option<f64>,
        /// Down for longer than this pages at once (default 5m).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        max_down: Option<Duration>,
        /// Open for longer than this pages at once (default 30m).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        max_incident: Option<Duration>,
        /// What the window is for (shown in `window list` and the summary).
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// Who opens it; default $SUDO_USER, else $USER (else, through the
        /// API, the API user).
        #[arg(long = "by", value_name = "WHO")]
        by: Option<String>,
    },
    /// Move the end of the open window NAME later.
    Extend {
        /// The window's name.
        name: String,
        /// How much longer, e.g. "1h".
        #[arg(long = "by", value_name = "DURATION", value_parser = parse_duration)]
        duration: Duration,
    },
    /// Close the open window NAME now (its summary follows).
    Close {
        /// The window's name.
        name: String,
    },
    /// List open and scheduled windows (and the configured ones not open
    /// yet), with their span, targets, tolerance, note and author.
    List {
        /// One JSON object per window per line instead of text.
        #[arg(long)]
        json: bool,
        /// Include windows that have ended or were closed.
        #[arg(long)]
        all: bool,
    },
    /// The summary of the newest window NAME from this agent's store: the
    /// one its receivers got when it ended, or the window so far while open.
    Report(super::window_report::Args),
}

/// Runs `mailpulse window ...`.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let WindowCommand::Report(report) = &args.command {
        if args.fleet.is_fleet() {
            bail!("window report reads this agent's store; run it on each agent (--agent and --prometheus are for open, extend, close and list)");
        }
        return super::window_report::run(report, &ConfigSource::new(args.config.clone())).await;
    }
    // Whole seconds: windows are listed and compared by humans.
    let now = Utc::now().trunc_subsecs(0);
    if args.fleet.is_fleet() {
        return fleet_run(args, now).await;
    }
    args.fleet.check_local()?;
    let file = ConfigSource::new(args.config.clone()).load_alerting()?;
    let state_dir = file.state_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&state_dir)).await??;
    match &args.command {
        WindowCommand::Open { .. } => {
            let window = open_window(&args.command, now)?;
            warn_unmatched(&file, &window.targets);
            let w = tokio::task::spawn_blocking(move || windows::open(&store, window))
                .await?
                .map_err(refused)?;
            out::line(opened(&w));
        }
        WindowCommand::Extend { name, duration } => {
            if duration.is_zero() {
                bail!("--by must be longer than zero");
            }
            let (name, by) = (name.clone(), *duration);
            let w = tokio::task::spawn_blocking(move || windows::extend(&store, &name, by, now))
                .await?
                .map_err(refused)?;
            out::line(extended(&w));
        }
        WindowCommand::Close { name } => {
            let name = name.clone();
            let w = tokio::task::spawn_blocking(move || windows::close(&store, &name, now))
                .await?
                .map_err(refused)?;
            out::line(closed(&w));
        }
        WindowCommand::List { json, all } => {
            let stored = tokio::task::spawn_blocking(move || windows::windows(&store)).await??;
            print_list(&stored, Some(&file), now, *json, *all);
        }
        WindowCommand::Report(_) => unreachable!("reports are answered above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A refused change as the command's error (the store's message says why).
fn refused(e: windows::WindowError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Warns on stderr about each pattern that matches no configured target.
fn warn_unmatched(file: &AlertingFile, patterns: &[String]) {
    let names = &file.target_names;
    if names.is_empty() {
        return;
    }
    for p in patterns {
        if !names.iter().any(|n| Glob(p.clone()).matches(n)) {
            eprintln!(
                "warning: --targets \"{}\" matches no configured target; the window is opened anyway",
                terminal_text(p)
            );
        }
    }
}

/// The window `window open` asks for, opening at `now` (its author `--by`,
/// else the login name; through the API, else the API user).
fn open_window(command: &WindowCommand, now: DateTime<Utc>) -> anyhow::Result<ChangeWindow> {
    let WindowCommand::Open {
        name,
        duration,
        targets,
        tolerance,
        max_down,
        max_incident,
        note,
        by,
    } = command
    else {
        bail!("internal: not an open");
    };
    if duration.is_zero() {
        bail!("--for must be longer than zero");
    }
    for (flag, d) in [("--max-down", max_down), ("--max-incident", max_incident)] {
        if d.is_some_and(|d| d.is_zero()) {
            bail!("{flag} must be longer than zero");
        }
    }
    if let Some(ch) = name.chars().find(|c| crate::config::is_hidden_char(*c)) {
        bail!("the window name must not contain U+{:04X}", u32::from(ch));
    }
    let by = match by {
        Some(b) if b.trim().is_empty() => bail!("--by must not be empty"),
        Some(b) => Some(b.clone()),
        None => super::silence::login_name(),
    };
    Ok(ChangeWindow {
        id: 0,
        name: name.clone(),
        source: WindowSource::Command,
        starts_at: now,
        ends_at: now + chrono::Duration::from_std(*duration)?,
        closed_at: None,
        targets: targets.clone(),
        tolerance: tolerance.unwrap_or(DEFAULT_WINDOW_TOLERANCE),
        max_down: max_down.unwrap_or(DEFAULT_WINDOW_MAX_DOWN),
        max_incident: max_incident.unwrap_or(DEFAULT_WINDOW_MAX_INCIDENT),
        note: note.clone(),
        by,
        summary_sent_at: None,
    })
}

/// The body of `POST /api/v1/windows/open` for `window`: the fields the API
/// reads (`name`, `at`, `for`, `targets`, `tolerance`, `max_down`,
/// `max_incident`, `note`, `by`), durations in the configuration's grammar.
fn open_body(w: &ChangeWindow) -> Value {
    let length = (w.ends_at - w.starts_at).to_std().unwrap_or_default();
    json!({
        "name": w.name,
        "at": render::rfc3339(w.starts_at),
        "for": human::duration(length, Style::Config),
        "targets": w.targets,
        "tolerance": w.tolerance,
        "max_down": human::duration(w.max_down, Style::Config),
        "max_incident": human::duration(w.max_incident, Style::Config),
        "note": w.note,
        "by": w.by,
    })
}

/// `window open|extend|close|list` on every agent of the fleet.
async fn fleet_run(args: &Args, now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    let at = render::rfc3339(now);
    let post = hyper::Method::POST;
    let change = |line: fn(&ChangeWindow) -> String| {
        move |agent: &str, v: &Value| -> Result<(), String> {
            let w: ChangeWindow =
                serde_json::from_value(v["window"].clone()).map_err(|e| e.to_string())?;
            out::line(format_args!("{}: {}", terminal_text(agent), line(&w)));
            Ok(())
        }
    };
    match &args.command {
        WindowCommand::Open { .. } => {
            let body = open_body(&open_window(&args.command, now)?);
            args.fleet
                .send_and_report(post, "windows/open", Some(&body), change(opened))
                .await
        }
        WindowCommand::Extend { name, duration } => {
            if duration.is_zero() {
                bail!("--by must be longer than zero");
            }
            let body =
                json!({ "name": name, "by": human::duration(*duration, Style::Config), "at": at });
            args.fleet
                .send_and_report(post, "windows/extend", Some(&body), change(extended))
                .await
        }
        WindowCommand::Close { name } => {
            let body = json!({ "name": name, "at": at });
            args.fleet
                .send_and_report(post, "windows/close", Some(&body), change(closed))
                .await
        }
        WindowCommand::List { json, all } => {
            let (json, all) = (*json, *all);
            args.fleet
                .send_and_report(hyper::Method::GET, "windows", None, |agent, v| {
                    let stored: Vec<ChangeWindow> =
                        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
                    if json {
                        for w in shown(&stored, now, all) {
                            let mut line = view(w, now);
                            line["agent"] = Value::String(agent.to_string());
                            out::line(line);
                        }
                    } else {
                        out::line(format_args!("{}:", terminal_text(agent)));
                        print_list(&stored, None, now, false, all);
                    }
                    Ok(())
                })
                .await
        }
        WindowCommand::Report(_) => unreachable!("reports are answered before the fleet"),
    }
}

/// `window NAME open from .. until .. (covering ..., tolerance ...)`.
fn opened(w: &ChangeWindow) -> String {
    format!(
        "window {} open from {} until {} ({}; {})",
        terminal_text(&w.name),
        render::rfc3339(w.starts_at),
        render::rfc3339(w.ends_at),
        covering(w),
        tolerance(w)
    )
}

fn extended(w: &ChangeWindow) -> String {
    format!(
        "window {} extended until {}",
        terminal_text(&w.name),
        render::rfc3339(w.ends_at)
    )
}

fn closed(w: &ChangeWindow) -> String {
    format!(
        "window {} closed at {}",
        terminal_text(&w.name),
        render::rfc3339(w.end())
    )
}

/// The targets a window covers, escaped: `all targets` or the patterns.
fn covering(w: &ChangeWindow) -> String {
    if w.targets.is_empty() {
        "all targets".into()
    } else {
        terminal_text(&w.targets.join(",")).into_owned()
    }
}

/// `tolerance 10x, down 5m, incident 30m`.
fn tolerance(w: &ChangeWindow) -> String {
    format!(
        "tolerance {}x, down {}, incident {}",
        w.tolerance,
        human::duration(w.max_down, Style::Config),
        human::duration(w.max_incident, Style::Config)
    )
}

/// A window's state at `now`: `scheduled`, `open`, `closed` (early) or `ended`.
fn state(w: &ChangeWindow, now: DateTime<Utc>) -> &'static str {
    if w.starts_at > now && w.closed_at.is_none() {
        "scheduled"
    } else if w.is_open_at(now) {
        "open"
    } else if w.closed_at.is_some_and(|c| c < w.ends_at) {
        "closed"
    } else {
        "ended"
    }
}

/// The windows `window list` shows: not ended at `now`, or all.
fn shown(stored: &[ChangeWindow], now: DateTime<Utc>, all: bool) -> Vec<&ChangeWindow> {
    stored
        .iter()
        .rev()
        .filter(|w| all || w.end() > now)
        .collect()
}

/// A window as `window list --json` prints it (one object a line).
fn view(w: &ChangeWindow, now: DateTime<Utc>) -> Value {
    json!({
        "id": w.id,
        "name": w.name,
        "source": w.source,
        "state": state(w, now),
        "starts_at": render::rfc3339(w.starts_at),
        "ends_at": render::rfc3339(w.ends_at),
        "closed_at": w.closed_at.map(render::rfc3339),
        "targets": w.targets,
        "tolerance": w.tolerance,
        "max_down_seconds": w.max_down.as_secs_f64(),
        "max_incident_seconds": w.max_incident.as_secs_f64(),
        "note": w.note,
        "by": w.by,
        "summary_sent_at": w.summary_sent_at.map(render::rfc3339),
    })
}

/// Prints the stored windows (newest first) and, with the configuration,
/// the next occurrence of each `[[window]]` not stored yet.
fn print_list(
    stored: &[ChangeWindow],
    file: Option<&AlertingFile>,
    now: DateTime<Utc>,
    json: bool,
    all: bool,
) {
    let mut rows: Vec<ChangeWindow> = shown(stored, now, all).into_iter().cloned().collect();
    // The configured windows' next occurrences (id 0: not stored yet).
    for p in file.map_or(&[][..], |f| &f.alerting.windows[..]) {
        let Some((start, end)) = p.next_occurrence(now) else {
            continue;
        };
        if !stored
            .iter()
            .any(|w| w.name == p.name && w.starts_at == start)
        {
            rows.push(p.change_window(start, end));
        }
    }
    if json {
        for w in &rows {
            let mut v = view(w, now);
            if w.id == 0 {
                v["id"] = Value::Null;
            }
            out::line(v);
        }
        return;
    }
    if rows.is_empty() {
        out::line("no change windows");
        return;
    }
    out::line(format_args!(
        "{:<20} {:<9} {:<7} {:<21} {:<21} {:<16} TOLERANCE; NOTE; BY",
        "NAME", "STATE", "SOURCE", "STARTS", "ENDS", "TARGETS"
    ));
    for w in &rows {
        let source = match w.source {
            WindowSource::Command => "command",
            WindowSource::Config => "config",
        };
        let mut extra = vec![tolerance(w)];
        if let Some(n) = &w.note {
            extra.push(terminal_text(n).into_owned());
        }
        if let Some(b) = &w.by {
            extra.push(format!("by {}", terminal_text(b)));
        }
        out::line(format_args!(
            "{:<20} {:<9} {:<7} {:<21} {:<21} {:<16} {}",
            terminal_text(&w.name),
            state(w, now),
            source,
            render::rfc3339(w.starts_at),
            render::rfc3339(w.end()),
            covering(w),
            extra.join("; ")
        ));
    }
}
