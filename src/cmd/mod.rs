//! The command line: the top-level [`Cli`], the [`Command`] enum, and
//! [`run()`], which hands each subcommand to its own file. One file per
//! subcommand holds its clap arguments (`Args`) and its `run`; a command
//! prints for people (through [`out`], where a reader that left early is a
//! normal end) and returns the exit code it wants (`Err` is printed
//! once by `main.rs` as a chain, and exits 1). To add a command: a file here
//! with `Args` and `run`, a variant in [`Command`], a line in [`run()`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::config::alerting::AlertingFile;
use crate::config::{self, Config};

pub mod check_config;
pub mod fleet_args;
pub mod generate_docs;
pub mod hash_password;
pub mod incidents;
pub mod out;
pub mod probe;
pub mod replay;
pub mod run;
pub mod silence;
pub mod soak;
pub mod soak_fleet_report;
pub mod soak_report;
pub mod status;
pub mod test_alert;
pub mod window;
pub mod window_report;

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
    Run(run::Args),
    /// Validate a configuration file and print a summary of it. Exits 0 when it
    /// is valid, 1 with every error (file:line:column: key: problem) when not.
    CheckConfig(check_config::Args),
    /// Probe targets once, now, and print every phase timing, so you can see
    /// which step is slow. Exits 0 when every probe succeeded, 2 when one failed.
    Probe(probe::Args),
    /// Read a password on standard input and print its bcrypt hash, for
    /// `[agent.web] basic_auth_users`.
    HashPassword(hash_password::Args),
    /// Run the slowdown detector over a recorded latency series (a CSV file
    /// or a Prometheus range query), faster than real time, and print the
    /// incidents it would have raised.
    Replay(replay::Args),
    /// Show the incidents the agent recorded, newest first: when each began
    /// (the onset of the rise), when it was detected, when it recovered, how
    /// long it lasted and how bad it got. Reads the state store; works while
    /// the daemon runs.
    Incidents(incidents::Args),
    /// Send a clearly marked test notification to one receiver, to check its
    /// wiring. Exits 0 when the receiver accepted it, 1 when not.
    TestAlert(test_alert::Args),
    /// Hold pages during ad hoc maintenance: `silence add --target owa --for 2h
    /// --reason "..."`, `silence list`, `silence remove ID`.
    Silence(silence::Args),
    /// Mark soak-test runs and their phases: `soak start NAME --phase
    /// baseline`, `soak phase plateau`, `soak end`, `soak list`. Incidents
    /// opened during a run carry its name and phase.
    Soak(soak::Args),
    /// Change windows for migration weekends: `window open NAME --for 4h
    /// --targets 'owa*'`, `window extend NAME --by 1h`, `window close NAME`,
    /// `window list`. Expected trouble is recorded and held; trouble beyond
    /// the window's tolerance pages at once.
    Window(window::Args),
    /// The whole fleet at a glance, from Prometheus: every agent's targets
    /// and their state (ok, slow, down), slowest first, open incidents with
    /// their age. `--watch` redraws until Ctrl-C.
    Status(status::Args),
    /// Write the manual pages and shell completions (for packaging).
    #[command(hide = true)]
    GenerateDocs(generate_docs::Args),
}

/// Runs one subcommand; the exit code it asks for, or the error to print.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let code = match command {
        Command::Run(args) => run::run(&args).await,
        Command::CheckConfig(args) => Ok(check_config::run(&args)),
        Command::Probe(args) => probe::run(&args).await,
        Command::HashPassword(args) => hash_password::run(&args),
        Command::Replay(args) => replay::run(&args).await,
        Command::Incidents(args) => incidents::run(&args).await,
        Command::TestAlert(args) => test_alert::run(&args).await,
        Command::Silence(args) => silence::run(&args).await,
        Command::Soak(args) => soak::run(&args).await,
        Command::Status(args) => status::run(&args).await,
        Command::Window(args) => window::run(&args).await,
        Command::GenerateDocs(args) => generate_docs::run(&args),
    }?;
    // A reader that left early is a normal end; a failed write is not.
    out::finish().map_err(|e| anyhow::anyhow!("cannot write to standard output: {e}"))?;
    Ok(code)
}

/// Where the configuration comes from: one rule for every command that
/// reads one (`run`, `check-config`, `probe`, `incidents`, `test-alert`,
/// `silence`). The file `--config` names, which must exist; without
/// `--config`, [`config::DEFAULT_CONFIG_PATH`] if there is such a file (one
/// that cannot be read is an error, not a reason to fall back); else the
/// built-in default, host load only, which the commands say on stderr
/// ([`BUILTIN_NOTE`]) and `run` logs. (`replay` reads a configuration only
/// when `--config` names one: its built-in detector settings are the
/// documented default for a series from anywhere.)
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file named with `--config`: it must exist.
    Explicit(PathBuf),
    /// No `--config`: the default path if it exists, else the built-in default.
    Default,
}

/// What a command says on stderr, once, when it runs on the built-in
/// default because there is no configuration file.
pub const BUILTIN_NOTE: &str = "mailpulse: no configuration file (no --config, and /etc/mailpulse/mailpulse.toml does not exist); using the built-in default (host load only: no targets, no receivers)";

impl ConfigSource {
    /// The source `--config` names: that file, or the default.
    pub fn new(config: Option<PathBuf>) -> ConfigSource {
        match config {
            Some(path) => ConfigSource::Explicit(path),
            None => ConfigSource::Default,
        }
    }

    /// The file to read; `None` for the built-in default.
    pub fn file(&self) -> Option<PathBuf> {
        self.file_or(Path::new(config::DEFAULT_CONFIG_PATH))
    }

    /// [`ConfigSource::file`] with `default` in place of the default path.
    /// There is a file when there is an entry of that name, even one that
    /// cannot be read or a dangling link: loading it reports why.
    fn file_or(&self, default: &Path) -> Option<PathBuf> {
        match self {
            ConfigSource::Explicit(path) => Some(path.clone()),
            ConfigSource::Default => match std::fs::symlink_metadata(default) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                _ => Some(default.to_path_buf()),
            },
        }
    }

    /// Loads the configuration this source names, saying on stderr when
    /// that is the built-in default.
    pub fn load(&self) -> anyhow::Result<Config> {
        let config = self.load_quiet()?;
        if config.source.is_none() {
            eprintln!("{BUILTIN_NOTE}");
        }
        Ok(config)
    }

    /// Loads the configuration this source names, saying nothing: the
    /// daemon logs which one it runs on (once, at start) and loads again on
    /// every SIGHUP.
    pub fn load_quiet(&self) -> anyhow::Result<Config> {
        match self.file() {
            Some(path) => Ok(config::load(&path)?),
            None => Ok(Config::builtin()),
        }
    }

    /// Loads what the alert commands need ([`config::load_alerting`]) by
    /// the same rule, saying on stderr when that is the built-in default
    /// (the default state directory and instance, no receivers, no routes,
    /// no windows).
    pub fn load_alerting(&self) -> anyhow::Result<AlertingFile> {
        match self.file() {
            Some(path) => Ok(config::load_alerting(&path)?),
            None => {
                eprintln!("{BUILTIN_NOTE}");
                let builtin = Config::builtin();
                Ok(AlertingFile {
                    state_dir: builtin.agent.state_dir,
                    instance: builtin.agent.instance,
                    target_names: builtin.targets.iter().map(|t| t.name.clone()).collect(),
                    alerting: builtin.alerting,
                })
            }
        }
    }
}

/// Reads a time given as `flag`: RFC 3339 (`2026-12-05T22:00:00Z`), or a
/// duration before `now` (`90s`, `2h`, `1d`).
pub fn parse_time(flag: &str, text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    match crate::config::duration::parse_duration(text) {
        Ok(ago) => Ok(now - chrono::Duration::from_std(ago)?),
        Err(_) => anyhow::bail!(
            "invalid {flag} {text:?} (expected RFC 3339, e.g. 2026-12-05T22:00:00Z, or a duration ago, e.g. 2h)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        let now: DateTime<Utc> = "2026-12-05T12:00:00Z".parse().unwrap();
        let t = parse_time("--at", "2026-12-05T13:00:00+01:00", now).unwrap();
        assert_eq!(t, now);
        let t = parse_time("--since", "2h", now).unwrap();
        assert_eq!(t, "2026-12-05T10:00:00Z".parse::<DateTime<Utc>>().unwrap());
        let e = parse_time("--since", "yesterday", now)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid --since \"yesterday\""), "{e}");
    }

    #[test]
    fn the_default_path_is_read_when_it_exists_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("mailpulse.toml");
        assert_eq!(ConfigSource::Default.file_or(&default), None);
        std::fs::write(&default, "").unwrap();
        assert_eq!(
            ConfigSource::Default.file_or(&default),
            Some(default.clone())
        );
        // A dangling link is a file meant to be there: loading it says why.
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(dir.path().join("gone.toml"), &link).unwrap();
        assert_eq!(ConfigSource::Default.file_or(&link), Some(link.clone()));
    }

    #[test]
    fn an_explicit_file_is_read_even_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let source = ConfigSource::new(Some(missing.clone()));
        assert_eq!(
            source.file_or(&dir.path().join("other")),
            Some(missing.clone())
        );
        let e = source.load().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}: cannot read configuration: ",
                missing.display()
            )),
            "{e}"
        );
    }
}
