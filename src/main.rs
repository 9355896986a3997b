//! The `mailpulse` binary: parses the command line and hands over to `app`.
//! Exit codes: 0 success, 1 error (invalid configuration, cannot start),
//! 2 a probe of `mailpulse probe` failed.

use std::process::ExitCode;

use clap::Parser;
use mailpulse::app::{self, ConfigSource};
use mailpulse::cmd::{Cli, Command};
use mailpulse::config;

fn main() -> ExitCode {
    mailpulse::service::trim::limit_allocator_arenas();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mailpulse")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mailpulse: error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { config } => {
                let source = match config {
                    Some(path) => ConfigSource::Explicit(path),
                    None => ConfigSource::Default,
                };
                app::run(source).await.map(|()| ExitCode::SUCCESS)
            }
            Command::CheckConfig { config } => match config::load(&config) {
                Ok(c) => {
                    for w in &c.warnings {
                        eprintln!("warning: {w}");
                    }
                    print!("{}", mailpulse::report::config_summary(&c));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::from(1))
                }
            },
            Command::Probe {
                config,
                json,
                targets,
            } => app::probe_once(&config, &targets, json).await.map(|ok| {
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                }
            }),
            Command::HashPassword { cost } => hash_password(cost).map(|()| ExitCode::SUCCESS),
            Command::Incidents {
                config,
                json,
                target,
                limit,
            } => {
                let source = match config {
                    Some(path) => ConfigSource::Explicit(path),
                    None => ConfigSource::Default,
                };
                app::show_incidents(&source, target.as_deref(), limit, json)
                    .map(|()| ExitCode::SUCCESS)
            }
            Command::Replay(args) => mailpulse::replay::run(&args)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::TestAlert(args) => mailpulse::cmd::silence::test_alert(&args)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Silence(args) => mailpulse::cmd::silence::silence(&args)
                .await
                .map(|()| ExitCode::SUCCESS),
        }
    });
    // Probe connections still open in the background must not delay exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailpulse: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `mailpulse hash-password`: one line from stdin (without its newline) to a bcrypt hash.
fn hash_password(cost: u32) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        anyhow::bail!("empty password on standard input");
    }
    println!("{}", bcrypt::hash(password, cost)?);
    Ok(())
}
