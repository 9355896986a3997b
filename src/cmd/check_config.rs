//! `mailpulse check-config`: validates a configuration file and prints a
//! summary of what the agent would do with it.

use std::path::PathBuf;
use std::process::ExitCode;

use tracing::Level;

use super::{out, ConfigSource};
use crate::report;
use crate::service::logging::stderr_text;

/// `mailpulse check-config`: the flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file to check. Without it,
    /// /etc/mailpulse/mailpulse.toml if it exists, else the built-in default.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Prints the summary (and warnings) of a valid file and exits 0, or every
/// error of an invalid one and exits 1. Under journald (the unit's
/// `ExecStartPre`) each stderr line carries its priority: `<4>` a warning,
/// `<3>` an error.
pub fn run(args: &Args) -> ExitCode {
    match ConfigSource::new(args.config.clone()).load() {
        Ok(c) => {
            for w in &c.warnings {
                eprint!("{}", stderr_text(&Level::WARN, &format!("warning: {w}\n")));
            }
            out::print(report::config_summary(&c));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{}", stderr_text(&Level::ERROR, &format!("{e}\n")));
            ExitCode::from(1)
        }
    }
}
