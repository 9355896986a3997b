//! `mailpulse run`: the daemon as a service. Installs the signal handlers,
//! loads the configuration off the signal task, sets up logging, binds the
//! listener and starts the [`Daemon`]; then SIGHUP reloads (a new load, then
//! [`Daemon::reload`] or [`Daemon::reject`]) and SIGTERM or SIGINT stops it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use super::ConfigSource;
use crate::app::{self, Daemon};
use crate::config::{self, Config};
use crate::human::{self, Style};
use crate::metrics::server;
use crate::service::logging::{self, LogFormat};
use crate::service::signals::{Control, Signals};

/// `mailpulse run`: the flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file. Without it, /etc/mailpulse/mailpulse.toml is used
    /// if it exists, else a built-in default (host load only, metrics on
    /// 127.0.0.1:9717).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How log lines on stderr are written: text, or one JSON object per
    /// line for log shippers. Overrides `[agent] log_format`.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let source = ConfigSource::new(args.config.clone());
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    let config = match load_off_thread(&source, &mut signals).await {
        Loaded::Config(config) => *config?,
        Loaded::Shutdown => return Ok(ExitCode::SUCCESS),
    };
    logging::init(
        &config.agent.log_level,
        args.log_format.unwrap_or(config.agent.log_format),
    );
    match (&source, &config.source) {
        (ConfigSource::Default, None) => tracing::info!(
            path = config::DEFAULT_CONFIG_PATH,
            "no configuration file; running on the built-in default (host load only)"
        ),
        (_, Some(path)) => tracing::info!(path = %path.display(), "configuration loaded"),
        _ => {}
    }
    tracing::info!(path = %config.agent.state_dir.display(), "state directory");
    app::log_warnings(&config);
    let listener = server::bind(config.agent.listen)
        .with_context(|| format!("cannot listen on {}", config.agent.listen))?;
    let mut daemon = Daemon::start(config, listener)?;
    loop {
        match signals.next().await {
            Control::Shutdown => break,
            Control::Reload => {
                daemon.reloading();
                match load_off_thread(&source, &mut signals).await {
                    Loaded::Config(Ok(new)) => daemon.reload(*new).await,
                    Loaded::Config(Err(e)) => daemon.reject(&e),
                    Loaded::Shutdown => break,
                }
            }
        }
    }
    daemon.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// How long reading and validating the configuration (with every secret
/// and certificate file it names) may take before a reload, or the start,
/// gives up on it. Loading takes milliseconds; a file on a hung network
/// mount can take forever.
pub const CONFIG_LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// What came of loading the configuration off the signal task.
enum Loaded {
    /// The configuration, or why it was rejected.
    Config(anyhow::Result<Box<Config>>),
    /// SIGTERM or SIGINT arrived first.
    Shutdown,
}

/// Loads the configuration on the blocking pool, never on this task: file
/// reads can block (a FIFO, a hung mount), and this task is the one that
/// answers signals. Gives up after [`CONFIG_LOAD_TIMEOUT`]; SIGTERM and
/// SIGINT win over a load still running (which is left behind, and ends
/// with the process), and a SIGHUP meanwhile is folded into this load.
async fn load_off_thread(source: &ConfigSource, signals: &mut Signals) -> Loaded {
    let job = {
        let source = source.clone();
        tokio::task::spawn_blocking(move || source.load_quiet())
    };
    let job = tokio::time::timeout(CONFIG_LOAD_TIMEOUT, job);
    let mut job = std::pin::pin!(job);
    loop {
        tokio::select! {
            done = &mut job => {
                return Loaded::Config(match done {
                    Ok(Ok(result)) => result.map(Box::new),
                    Ok(Err(e)) => Err(anyhow::anyhow!("loading the configuration failed: {e}")),
                    Err(_) => Err(anyhow::anyhow!(
                        "loading the configuration took longer than {}; is a file it names on a hung mount, or a FIFO?",
                        human::duration(CONFIG_LOAD_TIMEOUT, Style::Config)
                    )),
                });
            }
            control = signals.next() => match control {
                Control::Shutdown => return Loaded::Shutdown,
                Control::Reload => {
                    tracing::info!("configuration is being loaded already; SIGHUP folded into that load")
                }
            },
        }
    }
}
