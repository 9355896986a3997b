//! The fleet flags `soak`, `window` and `silence` share (`--agent`,
//! `--prometheus`, `--job`, `--user`, `--password-file`): which agents a
//! command acts on through their API instead of the local store, the
//! credentials it sends, and the per-agent report of what each answered
//! (a line per agent; exit 1 when any did not take the change).

use std::path::PathBuf;
use std::process::ExitCode;

use hyper::Method;
use url::Url;

use super::out;
use crate::config::secret::Secret;
use crate::fleet;
use crate::report::terminal_text;

/// The environment variable of the API user.
pub const USER_ENV: &str = "MAILPULSE_API_USER";
/// The environment variable of the API password.
pub const PASSWORD_ENV: &str = "MAILPULSE_API_PASSWORD";

/// Where a fleet command sends its change, and as whom.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Act on this agent through its API instead of on the local store
    /// (repeatable): http(s)://HOST:PORT.
    #[arg(long = "agent", value_name = "URL", global = true)]
    pub agents: Vec<String>,
    /// Act on every agent this Prometheus scrapes (its targets API).
    #[arg(long, value_name = "URL", global = true)]
    pub prometheus: Option<String>,
    /// With --prometheus: only the targets of this job.
    #[arg(long, value_name = "JOB", global = true)]
    pub job: Option<String>,
    /// The agents' API user (`[agent.api] write_users`); default
    /// $MAILPULSE_API_USER.
    #[arg(long, value_name = "USER", global = true)]
    pub user: Option<String>,
    /// A file holding that user's password; default $MAILPULSE_API_PASSWORD.
    #[arg(long, value_name = "FILE", global = true)]
    pub password_file: Option<PathBuf>,
}

impl FleetArgs {
    /// Whether the command acts on agents through their API.
    pub fn is_fleet(&self) -> bool {
        !self.agents.is_empty() || self.prometheus.is_some()
    }

    /// Refuses fleet-only flags on a local command.
    pub fn check_local(&self) -> anyhow::Result<()> {
        if self.job.is_some() {
            anyhow::bail!("--job needs --prometheus");
        }
        Ok(())
    }

    /// The agents named with `--agent` and found through `--prometheus`.
    pub async fn agents(&self) -> anyhow::Result<Vec<Url>> {
        let mut agents = self
            .agents
            .iter()
            .map(|a| fleet::agent_url(a))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if let Some(prometheus) = &self.prometheus {
            agents.extend(fleet::discover(prometheus, self.job.as_deref()).await?);
        } else if self.job.is_some() {
            anyhow::bail!("--job needs --prometheus");
        }
        agents.dedup();
        Ok(agents)
    }

    /// The API credentials from the flags or the environment; `None` when
    /// no user is given.
    pub fn credentials(&self) -> anyhow::Result<Option<fleet::Credentials>> {
        let user = self.user.clone().or_else(|| std::env::var(USER_ENV).ok());
        let Some(user) = user.filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let password = match &self.password_file {
            Some(path) => Secret::from_file(path).map_err(|e| {
                anyhow::anyhow!("cannot read --password-file {}: {e}", path.display())
            })?,
            None => match std::env::var(PASSWORD_ENV) {
                Ok(p) => Secret::new(p),
                Err(_) => anyhow::bail!(
                    "the API user {user:?} needs a password: --password-file FILE or ${PASSWORD_ENV}"
                ),
            },
        };
        Ok(Some(fleet::Credentials { user, password }))
    }

    /// Sends `method` `/api/v1/<path>` with `body` to every agent, and
    /// prints a line per agent: `render` of its answer, or why it failed
    /// (escaped). Exit 1 when any agent failed (said on stderr).
    pub async fn send_and_report(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        mut render: impl FnMut(&str, &serde_json::Value) -> Result<(), String>,
    ) -> anyhow::Result<ExitCode> {
        let agents = self.agents().await?;
        let credentials = self.credentials()?;
        let outcomes = fleet::send_all(&agents, method, path, body, credentials.as_ref()).await?;
        let mut failed = 0;
        for o in &outcomes {
            let agent = terminal_text(&o.agent);
            let result =
                o.result.as_ref().map_err(Clone::clone).and_then(|v| {
                    render(&o.agent, v).map_err(|e| format!("unexpected answer: {e}"))
                });
            if let Err(e) = result {
                failed += 1;
                out::line(format_args!("{agent}: FAILED: {}", terminal_text(&e)));
            }
        }
        if failed > 0 {
            eprintln!("mailpulse: {failed} of {} agent(s) failed", outcomes.len());
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }
}
