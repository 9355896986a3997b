//! The real `mailpulse` binary running as a daemon (`mailpulse run`), a
//! child process of the test, killed on drop.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::net::TcpStream;

use super::{bin, get, metric, timed, wait_until_or, Share};

/// How long [`Agent::wait_until`] waits.
const AGENT_WAIT: Duration = Duration::from_secs(15);
/// Lines of the log [`Agent::wait_exit`] shows when the agent does not exit.
const LOG_TAIL: usize = 20;

/// The agent binary running as a child process.
pub struct Agent {
    /// The child.
    pub child: Child,
    /// Its metrics address.
    pub addr: SocketAddr,
    /// Where its stderr goes.
    pub log: PathBuf,
    /// Its share of the machine: [`super::heavy`] tests wait for it.
    _share: Share,
}

impl Agent {
    /// Starts `mailpulse run --config FILE` with extra environment and waits
    /// until `/healthz` answers.
    pub async fn start(config: &Path, addr: SocketAddr, env: &[(&str, &str)]) -> Agent {
        let agent = Agent::spawn(config, addr, env).await;
        agent.wait_healthz().await;
        agent
    }

    /// [`Agent::start`] with more flags after `run --config FILE`.
    pub async fn start_with_args(
        config: &Path,
        addr: SocketAddr,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Agent {
        let mut cmd = Command::new(bin());
        cmd.arg("run").arg("--config").arg(config).args(args);
        let agent = Agent::launch_as(cmd, config, addr, env).await;
        agent.wait_healthz().await;
        agent
    }

    /// [`Agent::start`] with the descriptor limit (soft and hard) set to
    /// `nofile`, and `RUST_LOG=debug`.
    pub async fn start_with_nofile(config: &Path, addr: SocketAddr, nofile: u64) -> Agent {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(bin());
        let agent = Agent::launch(cmd, config, addr, &[]).await;
        agent.wait_healthz().await;
        agent
    }

    /// Starts the agent and waits only until its port accepts connections
    /// (for listeners that want TLS or credentials).
    pub async fn spawn(config: &Path, addr: SocketAddr, env: &[(&str, &str)]) -> Agent {
        Agent::launch(Command::new(bin()), config, addr, env).await
    }

    /// Runs `cmd run --config FILE` (`cmd` runs the binary) with stderr in
    /// a log beside the configuration, and waits for the agent's listener.
    async fn launch(
        mut cmd: Command,
        config: &Path,
        addr: SocketAddr,
        env: &[(&str, &str)],
    ) -> Agent {
        cmd.arg("run").arg("--config").arg(config);
        Agent::launch_as(cmd, config, addr, env).await
    }

    /// Runs `cmd` (the binary with its arguments) with stderr in a log
    /// beside the configuration (an existing log is truncated in place),
    /// and waits for the agent's listener.
    async fn launch_as(
        mut cmd: Command,
        config: &Path,
        addr: SocketAddr,
        env: &[(&str, &str)],
    ) -> Agent {
        let log = config.with_extension("log");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .env("RUST_LOG", "debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let share = timed();
        let child = cmd.spawn().unwrap();
        let agent = Agent {
            child,
            addr,
            log,
            _share: share,
        };
        // This agent's own listener, not another process's on the same port.
        let pid = agent.child.id();
        agent
            .wait_until(
                || async {
                    match addr {
                        SocketAddr::V4(v4) if v4.ip().is_loopback() => listens_on(pid, addr.port()),
                        _ => TcpStream::connect(addr).await.is_ok(),
                    }
                },
                "its own listener",
            )
            .await;
        agent
    }

    async fn wait_healthz(&self) {
        self.wait_until(
            || async { get(self.addr, "/healthz").await.is_some() },
            "listening",
        )
        .await;
    }

    /// Waits (up to 15 s) until `cond` holds, polling; fails at once, with
    /// the agent's log, if the agent exits meanwhile.
    pub async fn wait_until<F, Fut>(&self, mut cond: F, what: &str)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        wait_until_or(
            what,
            AGENT_WAIT,
            || format!("agent log:\n{}", self.log_text()),
            || {
                let holds = cond();
                async move {
                    if holds.await {
                        return true;
                    }
                    if self.exited() {
                        panic!(
                            "the agent exited while waiting for {what}; its log:\n{}",
                            self.log_text()
                        );
                    }
                    false
                }
            },
        )
        .await
    }

    /// Waits until the sample `name{labels}` of a scrape satisfies `want`.
    pub async fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        want: impl Fn(Option<f64>) -> bool,
        what: &str,
    ) {
        self.wait_until(|| async { want(self.metric(name, labels).await) }, what)
            .await
    }

    /// Waits until `target` has learned a baseline (its detector is warm).
    pub async fn wait_baseline(&self, target: &str) {
        self.wait_metric(
            "mailpulse_target_baseline_seconds",
            &[("target", target)],
            |v| v.is_some(),
            &format!("a learned baseline of {target}"),
        )
        .await
    }

    /// Waits until `target` is degraded (an incident is open) or not.
    pub async fn wait_degraded(&self, target: &str, degraded: bool, what: &str) {
        let want = if degraded { 1.0 } else { 0.0 };
        self.wait_metric(
            "mailpulse_target_degraded",
            &[("target", target)],
            |v| v == Some(want),
            what,
        )
        .await
    }

    /// Probes of `target` so far that reached `phase` (0 before the first).
    pub async fn probes(&self, target: &str, phase: &str) -> f64 {
        self.metric(
            "mailpulse_probe_duration_seconds_count",
            &[("target", target), ("phase", phase)],
        )
        .await
        .unwrap_or(0.0)
    }

    /// Waits until the agent exits (up to `within`) and returns its status;
    /// fails with the end of its log.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let (child, log) = (&mut self.child, &self.log);
        wait_until_or(
            "the agent to exit",
            within,
            || {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(LOG_TAIL).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("the end of its log:\n{}", tail.join("\n"))
            },
            || std::future::ready(child.try_wait().unwrap()),
        )
        .await
    }

    /// Whether the agent has exited (a zombie not yet waited for, or gone).
    fn exited(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .map(|stat| {
                // The state follows the command name, which is in parentheses.
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    }

    /// The agent's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Scrapes `/metrics`.
    pub async fn scrape(&self) -> String {
        get(self.addr, "/metrics").await.unwrap_or_default().1
    }

    /// The sample `name{labels}` of a fresh scrape.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric(&self.scrape().await, name, labels)
    }

    /// Sends a signal to the agent.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port`
/// (from `/proc/net/tcp` and the process's descriptors).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    let inode = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Fields: sl, local, remote, state (0A = LISTEN), ..., inode (10th).
        (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
            .then(|| f.get(9).map(|i| format!("socket:[{i}]")))
            .flatten()
    });
    let Some(socket) = inode else {
        return false;
    };
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == socket.as_str()))
    })
}
