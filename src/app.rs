//! The daemon: turns a [`Config`] and a bound listener into running tasks
//! ([`Daemon::start`]), applies reloaded configurations as a diff
//! ([`Daemon::reload`]), and drains on shutdown ([`Daemon::stop`]). [`run`]
//! is all three with a shutdown future, for tests that run the agent in
//! process; `cmd/run.rs` drives it from signals. The only module that knows
//! every other module; it prints nothing.
//!
//! Task tree: one root [`CancellationToken`] with a child per target and one
//! for host collection; every task is tracked so shutdown can wait for them
//! (bounded by [`SHUTDOWN_GRACE`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::{self, Alerting};
use crate::api::AgentApi;
use crate::clock::{self, Clock};
use crate::collect::{self, CollectOptions, HostCollector};
use crate::config::{Config, HostConfig, Target};
use crate::health::Health;
use crate::incident::Incidents;
use crate::metrics::server::{self, ServerState, WebRuntime};
use crate::metrics::Metrics;
use crate::pipeline::{Message, Pipeline, Reload};
use crate::probe;
use crate::schedule;
use crate::service::{systemd, watchdog};
use crate::status::api::Pages;
use crate::status::Shared;
use crate::store::Store;

/// How long shutdown waits for tasks to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);
/// Capacity of the pipeline's channel (samples, host snapshots, reloads).
const PIPELINE_QUEUE: usize = 1024;

/// The running agent.
struct Agent {
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    clock: Arc<dyn Clock>,
    /// The pipeline's channel: samples, host snapshots, reloads.
    pipeline: mpsc::Sender<Message>,
    root: CancellationToken,
    tracker: TaskTracker,
    targets: HashMap<String, (Target, CancellationToken)>,
    host: Option<CancellationToken>,
    store: Store,
    /// The alerting configuration the delivery loop runs on.
    alerting: Arc<Alerting>,
    delivery: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    /// The status page's board (reload outcomes go there).
    status: Shared,
}

impl Agent {
    /// Starts host collection if the configuration enables it.
    fn start_host(&mut self, host: &HostConfig) {
        if !host.enabled {
            return;
        }
        let token = self.root.child_token();
        let opts = CollectOptions {
            proc_root: host.proc_root.clone(),
            processes: host.processes.clone(),
            exclude_filesystems: host.exclude_filesystems.clone(),
            exclude_interfaces: host.exclude_interfaces.clone(),
        };
        let heartbeat = self.health.register("host collection", host.interval);
        self.tracker.spawn(collect::task::run(
            HostCollector::new(opts),
            host.interval,
            self.pipeline.clone(),
            token.clone(),
            heartbeat,
        ));
        self.host = Some(token);
    }

    fn start_target(&mut self, target: &Target) {
        let token = self.root.child_token();
        match schedule::spawn_target(
            target,
            self.pipeline.clone(),
            token.clone(),
            &self.tracker,
            &self.health,
            self.clock.clone(),
        ) {
            Ok(()) => {
                self.metrics.probe.add_target(
                    &target.name,
                    target.kind(),
                    &probe::failure_reasons(target),
                );
                self.metrics.detect.add_target(&target.name);
                self.targets
                    .insert(target.name.clone(), (target.clone(), token));
            }
            Err(e) => {
                tracing::error!(target = %target.name, error = %e, "cannot start target");
            }
        }
    }

    fn stop_target(&mut self, name: &str) {
        if let Some((_, token)) = self.targets.remove(name) {
            token.cancel();
            self.metrics.probe.remove_target(name);
            self.metrics.detect.remove_target(name);
        }
    }

    /// Starts the delivery loop on the current alerting configuration, after
    /// the previous loop (if any) has drained, so no two loops send at once.
    fn start_delivery(&mut self) {
        let previous = self.delivery.take();
        let token = self.root.child_token();
        let alerting = self.alerting.clone();
        let (store, metrics, clock) = (
            self.store.clone(),
            self.metrics.alert.clone(),
            self.clock.clone(),
        );
        let child = token.clone();
        let handle = self.tracker.spawn(async move {
            if let Some((old_token, old)) = previous {
                old_token.cancel();
                let _ = old.await;
            }
            alert::run_delivery(store, alerting, metrics, child, clock).await;
        });
        self.delivery = Some((token, handle));
    }

    /// Applies a new configuration: unchanged targets keep running (and keep
    /// their state); changed ones restart; removed ones stop and lose their series.
    async fn apply(&mut self, new: Config) {
        self.metrics
            .probe
            .configure_histograms(&new.agent.latency_buckets, new.agent.phase_histograms);
        if new.agent.listen != self.config.agent.listen {
            tracing::warn!(
                old = %self.config.agent.listen,
                new = %new.agent.listen,
                "agent.listen changed; restart the agent to move the listener"
            );
        }
        if new.host != self.config.host {
            if let Some(token) = self.host.take() {
                token.cancel();
            }
            self.start_host(&new.host);
        }
        let mut alerting = None;
        if new.alerting != self.config.alerting {
            match Alerting::new(new.alerting.clone(), &self.store, self.clock.clone()) {
                Ok(a) => {
                    self.alerting = Arc::new(a.with_agent(&new.agent.instance, target_names(&new)));
                    alerting = Some(self.alerting.clone());
                    self.start_delivery();
                }
                Err(e) => {
                    tracing::error!(error = %e, "alerting configuration rejected; keeping the running one")
                }
            }
        }
        let reload = Reload {
            targets: new.targets.clone(),
            alerting,
        };
        // The pipeline runs as long as this sender lives.
        let _ = self.pipeline.send(Message::Reload(Box::new(reload))).await;
        let names: Vec<String> = self.targets.keys().cloned().collect();
        for name in names {
            let keep = new
                .target(&name)
                .is_some_and(|t| Some(t) == self.targets.get(&name).map(|(old, _)| old));
            if !keep {
                self.stop_target(&name);
            }
        }
        for target in &new.targets {
            if !self.targets.contains_key(&target.name) {
                self.start_target(target);
            }
        }
        self.metrics.agent.targets.set(self.targets.len() as i64);
        self.config = new;
    }

    fn status_line(&self) -> String {
        format!(
            "probing {} target(s), metrics on {}",
            self.targets.len(),
            self.config.agent.listen
        )
    }
}

/// Runs the daemon on `config`, serving `/metrics` on `listener`, until
/// `shutdown` completes; then drains (within [`SHUTDOWN_GRACE`]). For
/// tests and embedding: no signals, no reloads, no logging set up (the
/// `run` command, `cmd/run.rs`, adds those around [`Daemon`]). The caller
/// binds the listener; `config.agent.listen` is only reported.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let daemon = Daemon::start(config, listener)?;
    shutdown.await;
    daemon.stop().await;
    Ok(())
}

/// The running daemon: every task started from one configuration, and what
/// a reload or the shutdown needs.
pub struct Daemon {
    agent: Agent,
    server: Arc<ServerState>,
}

impl Daemon {
    /// Starts everything `config` asks for (the `/metrics` server on
    /// `listener`, the state store, the pipeline, alert delivery, host
    /// collection, one task per target, the memory trim and the systemd
    /// watchdog) and tells systemd it is ready. Call it inside a tokio
    /// runtime; what it starts runs there. When it fails half-way, what
    /// it started stops.
    pub fn start(config: Config, listener: TcpListener) -> anyhow::Result<Daemon> {
        let metrics =
            Arc::new(Metrics::new(&config.agent.instance).context("cannot register metrics")?);
        metrics
            .register_process(crate::collect::own::read_self)
            .context("cannot register metrics")?;
        metrics
            .probe
            .configure_histograms(&config.agent.latency_buckets, config.agent.phase_histograms);
        mark_reload(&metrics, true);
        let health = Health::new();
        let root = CancellationToken::new();
        let started = root.clone().drop_guard();
        let tracker = TaskTracker::new();

        let web = WebRuntime::new(&config.agent.web)
            .and_then(|w| w.with_writers(&config.agent.api.write_users))
            .map_err(|e| anyhow::anyhow!("agent.web: {e}"))?;
        let clock = clock::system();
        let status = Shared::new(&config.agent.instance, clock.now());
        let server = Arc::new(ServerState::new(metrics.clone(), health.clone(), web));
        if let Some(limit) = crate::service::fdlimit::raise() {
            server.limit_descriptors(limit.soft);
            tracing::info!(
                descriptors = limit.soft,
                raised_from = limit.before,
                max_connections = server.connection_limit(),
                "descriptor limit"
            );
        }

        let store = open_store(&config, &metrics);
        // Before the listener serves, so no request finds the status pages
        // or the API missing.
        server.set_pages(Pages::new(
            status.clone(),
            Some(store.clone()),
            clock.clone(),
        ));
        server.set_api(Arc::new(AgentApi::new(
            store.clone(),
            config.soak.keep_runs,
        )));
        tracker.spawn(server::serve(listener, server.clone(), root.child_token()));
        // A read that fails on damaged contents makes the store replace the file
        // (keeping what reads) before its next use: load once more from that.
        let loaded = Incidents::load(Some(store.clone()), &config.targets).or_else(|e| {
            metrics.agent.store_errors.inc();
            tracing::error!(error = %e, "cannot restore detector state; trying once more");
            store.maintain();
            Incidents::load(Some(store.clone()), &config.targets)
        });
        let incidents = match loaded {
            Ok(i) => i,
            Err(e) => {
                metrics.agent.store_errors.inc();
                tracing::error!(error = %e, "cannot restore detector state; starting fresh");
                Incidents::load(None, &config.targets).expect("no store, no error")
            }
        };
        let alerting = Alerting::new(config.alerting.clone(), &store, clock.clone())
            .map_err(|e| anyhow::anyhow!("alerting: {e}"))?
            .with_agent(&config.agent.instance, target_names(&config));
        // The pipeline reconciles the outbox with the incidents before it takes
        // its first sample (and again whenever the store moves to another file).
        let kinds: HashMap<String, String> = config
            .targets
            .iter()
            .map(|t| (t.name.clone(), t.kind().as_str().to_string()))
            .collect();
        let alerting = Arc::new(alerting);

        let (tx, rx) = mpsc::channel(PIPELINE_QUEUE);
        let flow = Pipeline {
            metrics: metrics.clone(),
            incidents,
            alerting: alerting.clone(),
            store: store.clone(),
            instance: config.agent.instance.clone(),
            host_load: None,
            clock: clock.clone(),
            health: health.clone(),
            kinds,
            status: status.clone(),
        };
        tracker.spawn(flow.run(rx));

        let mut agent = Agent {
            config: config.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            clock,
            pipeline: tx,
            root: root.clone(),
            tracker: tracker.clone(),
            targets: HashMap::new(),
            host: None,
            store,
            alerting,
            delivery: None,
            status,
        };
        agent.start_delivery();
        agent.start_host(&config.host);
        for target in &config.targets {
            agent.start_target(target);
        }
        metrics.agent.targets.set(agent.targets.len() as i64);

        if let Some(every) = config.agent.memory_trim {
            tracker.spawn(crate::service::trim::run(every, root.child_token()));
        }
        if let Some(period) = systemd::watchdog_interval() {
            tracker.spawn(watchdog::feed(period, health.clone(), root.child_token()));
        }
        tracing::info!(
            listen = %config.agent.listen,
            instance = %config.agent.instance,
            targets = agent.targets.len(),
            "mailpulse started"
        );
        systemd::ready(&agent.status_line());
        started.disarm();
        Ok(Daemon { agent, server })
    }

    /// Tells systemd that a reload has begun (RELOADING=1).
    pub fn reloading(&self) {
        systemd::reloading();
    }

    /// Applies a reloaded configuration: `[agent.web]`, `[agent.api]` and
    /// `[soak]` at once; targets,
    /// host collection and alerting as a diff against the running one.
    pub async fn reload(&mut self, new: Config) {
        log_warnings(&new);
        if new.agent.web != self.agent.config.agent.web
            || new.agent.api != self.agent.config.agent.api
        {
            let web = WebRuntime::new(&new.agent.web)
                .and_then(|w| w.with_writers(&new.agent.api.write_users));
            match web {
                Ok(web) => self.server.set_web(web),
                Err(e) => {
                    tracing::error!(error = %e, "agent.web rejected; keeping the running one")
                }
            }
        }
        if new.soak != self.agent.config.soak {
            self.server.set_api(Arc::new(AgentApi::new(
                self.agent.store.clone(),
                new.soak.keep_runs,
            )));
        }
        self.agent.apply(new).await;
        mark_reload(&self.agent.metrics, true);
        let now = self.agent.clock.now();
        self.agent.status.update(|b| b.record_reload(now, None));
        tracing::info!(targets = self.agent.targets.len(), "configuration reloaded");
        systemd::ready(&self.agent.status_line());
    }

    /// Reports a reloaded configuration that was rejected; the running one
    /// stays.
    pub fn reject(&self, error: &anyhow::Error) {
        self.agent.metrics.agent.reload_success.set(0);
        let now = self.agent.clock.now();
        self.agent
            .status
            .update(|b| b.record_reload(now, Some(format!("{error:#}"))));
        tracing::error!(error = %format!("{error:#}"), "configuration rejected; keeping the running one");
        systemd::ready(&format!(
            "{}; last reload rejected",
            self.agent.status_line()
        ));
    }

    /// Stops every task and waits for them, at most [`SHUTDOWN_GRACE`].
    pub async fn stop(self) {
        tracing::info!("shutting down");
        systemd::stopping();
        let Daemon { agent, server } = self;
        let (root, tracker) = (agent.root.clone(), agent.tracker.clone());
        root.cancel();
        drop(agent);
        drop(server);
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some tasks did not stop within the grace period");
        }
    }
}

/// Logs what the configuration loader warned about (a secret file others can read).
pub fn log_warnings(config: &Config) {
    for w in &config.warnings {
        tracing::warn!(problem = %w, "configuration warning");
    }
}

fn mark_reload(metrics: &Metrics, ok: bool) {
    metrics.agent.reload_success.set(i64::from(ok));
    if ok {
        metrics
            .agent
            .reload_timestamp
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }
}

/// Opens the state store in `state_dir` as the daemon's store: a damaged
/// file is moved aside and replaced, and a file that cannot be opened is
/// stood in for by memory (and tried again), so probing, detection and
/// alerting go on. The store logs what happened; the metrics say it too.
fn open_store(config: &Config, metrics: &Metrics) -> Store {
    let store = Store::open_daemon(&config.agent.state_dir);
    let status = store.status();
    metrics.agent.store_durable.set(i64::from(status.durable));
    if !status.durable || status.corruptions > 0 {
        metrics.agent.store_errors.inc();
    }
    store
}

/// The configured targets' names, for the alerting (window summaries).
fn target_names(config: &Config) -> Vec<String> {
    config.targets.iter().map(|t| t.name.clone()).collect()
}
