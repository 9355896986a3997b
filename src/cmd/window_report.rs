//! `mailpulse window report NAME [--format text|json|html] [--output FILE]`:
//! the summary of the newest change window of that name from the local
//! agent's store (the one its receivers got when it ended, or the window so
//! far while it is open): its span and note, per target the incidents with
//! their timings and whether each was held or paged beyond tolerance, the
//! p95 inside versus the hour before, and what is still open. Text, the
//! summary's JSON, or one self-contained HTML file.
//!
//! [`Args`] is the `report` subcommand's arguments; `mailpulse window`
//! (`cmd/window.rs`) hands it here with its `--config`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::Utc;

use super::{out, ConfigSource};
use crate::alert::window_summary;
use crate::report::terminal_text;
use crate::store::{windows, Store};
use crate::window::render;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Plain text, as the chat and mail receivers get it.
    Text,
    /// The summary's JSON, as the webhook receiver gets it.
    Json,
    /// One self-contained HTML page (no scripts, fonts or links).
    Html,
}

/// `mailpulse window report`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The window's name (the newest window of that name).
    pub name: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
    /// Write the report to FILE (its title line goes to standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Writes the report of window `args.name` from the store the configuration names.
pub async fn run(args: &Args, config: &ConfigSource) -> anyhow::Result<ExitCode> {
    let file = config.load_alerting()?;
    let state_dir = file.state_dir.clone();
    let instance = file.instance.clone();
    let targets = file.target_names.clone();
    let wanted = args.name.clone();
    let now = Utc::now();
    let summary = tokio::task::spawn_blocking(move || {
        let store = Store::open(&state_dir)?;
        let found = windows::windows(&store)?
            .into_iter()
            .rev()
            .find(|w| w.name == wanted);
        match found {
            Some(w) => anyhow::Ok(Some(window_summary(&store, &instance, &targets, &w, now)?)),
            None => Ok(None),
        }
    })
    .await??;
    let Some(summary) = summary else {
        anyhow::bail!(
            "no change window named {:?} in this agent's store (mailpulse window list shows them)",
            terminal_text(&args.name)
        );
    };
    let text = match args.format {
        ReportFormat::Text => render::text(&summary),
        ReportFormat::Json => {
            let mut json = serde_json::to_string_pretty(&summary)?;
            json.push('\n');
            json
        }
        ReportFormat::Html => render::html(&summary),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write the report to {}", path.display()))?;
            out::line(format_args!(
                "{}: {}",
                path.display(),
                terminal_text(&render::title(&summary))
            ));
        }
        None if args.format == ReportFormat::Text => {
            for line in text.lines() {
                out::line(terminal_text(line));
            }
        }
        None => out::print(text),
    }
    Ok(ExitCode::SUCCESS)
}
