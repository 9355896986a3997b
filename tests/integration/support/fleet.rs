//! A fleet for the fleet-command tests (`soak`, `window`, `silence` with
//! `--agent` or `--prometheus`): agents (the real binary, so one can be
//! killed with `kill -9` and restarted on its store), each with the write
//! API user `ops` (password `write-pw`), optionally scraped by a real
//! Prometheus as job `mailpulse`; and the commands run against them with
//! those credentials.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use super::prometheus::Prometheus;
use super::{bin, free_port, get, wait_until, write_file, Agent};

/// Agents with the write API, and the Prometheus scraping them if asked.
pub struct Fleet {
    /// The test's directory (kept until the fleet is dropped).
    pub dir: tempfile::TempDir,
    /// Each agent's configuration file.
    pub configs: Vec<PathBuf>,
    /// Each agent's address.
    pub addrs: Vec<SocketAddr>,
    /// The running agents (`None` once killed).
    pub agents: Vec<Option<Agent>>,
    /// Prometheus, once [`Fleet::scraped`] started it.
    pub prometheus: Option<Prometheus>,
}

impl Fleet {
    /// Starts `n` agents, `agent0`, `agent1`..., without host collection;
    /// `extra` is more configuration for every agent (targets, receivers,
    /// read users).
    pub async fn start(n: usize, extra: &str) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let writer = bcrypt::hash("write-pw", 4).unwrap();
        let mut configs = Vec::new();
        let mut addrs = Vec::new();
        let mut agents = Vec::new();
        for i in 0..n {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let cfg = write_file(
                dir.path(),
                &format!("agent{i}.toml"),
                &format!(
                    "[agent]\nlisten = \"{addr}\"\ninstance = \"agent{i}\"\nstate_dir = \"{}\"\n\
                     [host]\nenabled = false\n\
                     [agent.api]\nwrite_users = {{ ops = \"{writer}\" }}\n{extra}",
                    dir.path().join(format!("state{i}")).display()
                ),
            );
            agents.push(Some(Agent::start(&cfg, addr, &[]).await));
            configs.push(cfg);
            addrs.push(addr);
        }
        Fleet {
            dir,
            configs,
            addrs,
            agents,
            prometheus: None,
        }
    }

    /// Starts a Prometheus scraping the agents every second as job
    /// `mailpulse`, and `others` (when there are any) as job `other`, and
    /// waits until it lists them all as targets.
    pub async fn scraped(mut self, others: &[SocketAddr]) -> Fleet {
        let job = |name: &str, addrs: &[SocketAddr]| {
            let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
            format!(
                "  - job_name: {name}\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            )
        };
        let mut scrape = job("mailpulse", &self.addrs);
        if !others.is_empty() {
            scrape.push_str(&job("other", others));
        }
        let prometheus = Prometheus::start(
            self.dir.path(),
            &format!("global:\n  scrape_interval: 1s\nscrape_configs:\n{scrape}"),
            &[],
        )
        .await;
        // Service discovery hands Prometheus its static targets just after
        // it is ready.
        let prom = prometheus.addr;
        let n = self.addrs.len() + others.len();
        wait_until(
            "prometheus to list every target",
            Duration::from_secs(20),
            || async move {
                get(prom, "/api/v1/targets?state=active")
                    .await
                    .is_some_and(|(code, body)| {
                        code == 200 && body.matches("\"scrapeUrl\"").count() == n
                    })
            },
        )
        .await;
        self.prometheus = Some(prometheus);
        self
    }

    /// Prometheus's URL, for `--prometheus`.
    pub fn prometheus_url(&self) -> String {
        let prometheus = self.prometheus.as_ref().expect("Fleet::scraped");
        format!("http://{}", prometheus.addr)
    }

    /// `mailpulse ARGS` as the API user `ops`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("MAILPULSE_API_USER", "ops")
            .env("MAILPULSE_API_PASSWORD", "write-pw");
        cmd
    }

    /// [`Fleet::command`] with `--agent URL` for every agent, running or not.
    pub fn to_every_agent(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        for a in &self.addrs {
            cmd.args(["--agent", &format!("http://{a}")]);
        }
        cmd
    }

    /// Runs [`Fleet::command`] to completion (the command is made at once,
    /// so the future borrows nothing).
    pub fn run(&self, args: &[&str]) -> impl Future<Output = Output> + 'static {
        output(self.command(args))
    }

    /// Kills agent `i` with SIGKILL (no chance to save anything).
    pub fn kill_9(&mut self, i: usize) {
        let mut agent = self.agents[i].take().expect("agent running");
        agent.child.kill().unwrap();
        agent.child.wait().unwrap();
    }

    /// Starts agent `i` again on its configuration, address and store.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.agents[i].is_none(), "agent {i} still runs");
        self.agents[i] = Some(Agent::start(&self.configs[i], self.addrs[i], &[]).await);
    }

    /// Agent `i`, running.
    pub fn agent(&self, i: usize) -> &Agent {
        self.agents[i].as_ref().expect("agent running")
    }

    /// Stops every running agent with SIGTERM and asserts each exits 0.
    pub async fn stop(mut self) {
        for agent in self.agents.iter_mut().flatten() {
            agent.signal("TERM");
            let status = agent
                .wait_exit(mailpulse::app::SHUTDOWN_GRACE + Duration::from_secs(5))
                .await;
            assert!(status.success(), "{status}:\n{}", agent.log_text());
        }
    }
}

/// Runs `cmd` to completion off the runtime's threads.
pub async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// An address on 127.0.0.1 where nothing listens: an agent that is gone.
pub fn closed_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
