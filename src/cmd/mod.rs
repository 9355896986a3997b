//! Command-line interface: the subcommands, their flags and help text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod silence;

/// mailpulse: probes mail and web-access services step by step, collects host
/// load, exports it all to Prometheus, and runs as a systemd service.
#[derive(Debug, Parser)]
#[command(name = "mailpulse", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: probe every target on its interval, collect host load and
    /// serve /metrics and /healthz until stopped. SIGHUP reloads the
    /// configuration, SIGTERM or SIGINT stops cleanly.
    Run {
        /// Configuration file. Without it, /etc/mailpulse/mailpulse.toml is used
        /// if it exists, else a built-in default (host load only, metrics on
        /// 127.0.0.1:9717).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and print a summary of it. Exits 0 when it
    /// is valid, 1 with every error (file:line:column: key: problem) when not.
    CheckConfig {
        /// Configuration file to check.
        #[arg(short, long, value_name = "FILE", default_value = crate::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Probe targets once, now, and print every phase timing, so you can see
    /// which step is slow. Exits 0 when every probe succeeded, 2 when one failed.
    Probe {
        /// Configuration file with the targets.
        #[arg(short, long, value_name = "FILE", default_value = crate::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Print JSON (one array of results) instead of tables.
        #[arg(long)]
        json: bool,
        /// Targets to probe, by name (default: all).
        #[arg(value_name = "TARGET")]
        targets: Vec<String>,
    },
    /// Read a password on standard input and print its bcrypt hash, for
    /// `[agent.web] basic_auth_users`.
    HashPassword {
        /// bcrypt cost (4-14, the range `[agent.web]` accepts); each step
        /// doubles the work of every check.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(
            i64::from(crate::config::MIN_BCRYPT_COST)..=i64::from(crate::config::MAX_BCRYPT_COST)
        ))]
        cost: u32,
    },
    /// Run the slowdown detector over a recorded latency series (a CSV file
    /// or a Prometheus range query), faster than real time, and print the
    /// incidents it would have raised.
    Replay(crate::replay::ReplayArgs),
    /// Show the incidents the agent recorded, newest first: when each began
    /// (the first bad sample), when it was detected, when it recovered, how
    /// long it lasted and how bad it got. Reads the state store; works while
    /// the daemon runs.
    Incidents {
        /// Configuration file (for `[agent] state_dir`). Without it,
        /// /etc/mailpulse/mailpulse.toml if it exists, else the built-in default.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print one JSON object per incident per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Only this target's incidents.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// At most this many incidents.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Send a clearly marked test notification to one receiver, to check its
    /// wiring. Exits 0 when the receiver accepted it, 1 when not.
    TestAlert(silence::TestAlertArgs),
    /// Hold pages during ad hoc maintenance: `silence add --target owa --for 2h
    /// --reason "..."`, `silence list`, `silence remove ID`.
    Silence(silence::SilenceArgs),
}
