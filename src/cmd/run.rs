//! `mailpulse run`: the daemon, until SIGTERM or SIGINT (see [`crate::app`]).

use std::path::PathBuf;
use std::process::ExitCode;

use super::ConfigSource;
use crate::app;

/// `mailpulse run`: the flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file. Without it, /etc/mailpulse/mailpulse.toml is used
    /// if it exists, else a built-in default (host load only, metrics on
    /// 127.0.0.1:9717).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs the daemon until it is told to stop.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    app::run(ConfigSource::new(args.config.clone()))
        .await
        .map(|()| ExitCode::SUCCESS)
}
