//! The agent run inside the test process: `mailpulse::app::run` on a
//! listener bound to 127.0.0.1:0, so a test needs no child process and no
//! guessed port. For tests that need only the agent and HTTP; where signals,
//! systemd, `kill -9`, exit codes or the log are the point, [`super::Agent`]
//! runs the real binary.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Share;

/// How long [`InProcessAgent::wait_until`] polls before failing.
const WAIT: Duration = Duration::from_secs(15);

/// The daemon running on its own runtime in a thread of this process.
pub struct InProcessAgent {
    /// Where it serves `/metrics` and `/healthz`.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    thread: Mutex<Option<JoinHandle<anyhow::Result<()>>>>,
    /// Its share of the machine: [`super::heavy`] tests wait for it.
    _share: Share,
}

impl InProcessAgent {
    /// Loads `config` (as `mailpulse run --config` does) and starts the
    /// daemon on it, serving on a fresh port of 127.0.0.1 instead of
    /// `agent.listen`; returns once `/healthz` answers.
    pub async fn start(config: &Path) -> InProcessAgent {
        let agent = InProcessAgent::spawn(config);
        agent
            .wait_until(
                || async { super::get(agent.addr, "/healthz").await.is_some() },
                "/healthz",
            )
            .await;
        agent
    }

    /// Starts the daemon as [`InProcessAgent::start`] does, without waiting
    /// for `/healthz` (for listeners that refuse this client); connections
    /// wait in the listener's backlog until it serves.
    pub fn spawn(config: &Path) -> InProcessAgent {
        let mut config = mailpulse::config::load(config).expect("a valid configuration");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        config.agent.listen = addr;
        let share = super::timed();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        // Its own multi-threaded runtime: the pipeline leaves its worker for
        // store writes (`block_in_place`), which a test's current-thread
        // runtime does not allow, and the agent outlives no test task.
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                mailpulse::app::run(config, listener, stop.cancelled_owned()).await
            })
        });
        InProcessAgent {
            addr,
            shutdown,
            thread: Mutex::new(Some(thread)),
            _share: share,
        }
    }

    /// Waits (up to 15 s) until `cond` holds, polling with
    /// [`super::wait_until`]; fails at once, with its error, if the agent
    /// stopped meanwhile.
    pub async fn wait_until<F, Fut>(&self, mut cond: F, what: &str)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        super::wait_until(what, WAIT, || {
            let holds = cond();
            async move {
                if holds.await {
                    return true;
                }
                let finished = self
                    .thread
                    .lock()
                    .unwrap()
                    .as_ref()
                    .is_none_or(|t| t.is_finished());
                if finished {
                    panic!(
                        "the agent stopped while waiting for {what}: {:?}",
                        self.join()
                    );
                }
                false
            }
        })
        .await;
    }

    /// Scrapes `/metrics`.
    pub async fn scrape(&self) -> String {
        super::get(self.addr, "/metrics")
            .await
            .unwrap_or_default()
            .1
    }

    /// Stops the agent (as SIGTERM would) and returns how its run ended.
    pub fn stop(self) -> anyhow::Result<()> {
        self.join()
    }

    /// Stops the agent if it runs, and waits for its thread.
    fn join(&self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let thread = self.thread.lock().unwrap().take();
        match thread {
            Some(thread) => thread.join().expect("the agent's thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for InProcessAgent {
    fn drop(&mut self) {
        let result = self.join();
        if !std::thread::panicking() {
            result.expect("the agent ended with an error");
        }
    }
}
