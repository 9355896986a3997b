//! The real alert delivery loop (`alert::run_delivery`) over a store, for
//! tests that drive receivers through the library, and the incident event
//! those tests send.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use mailpulse::alert::{self, AlertEvent, AlertStatus, Alerting, Enqueued, Receiver};
use mailpulse::clock::Clock;
use mailpulse::config::alerting::AlertingConfig;
use mailpulse::metrics::alert::AlertMetrics;
use mailpulse::store::Store;
use tokio_util::sync::CancellationToken;

/// A running delivery loop; the store may live in a temporary directory
/// owned by it.
pub struct Delivery {
    /// The state store holding the outbox.
    pub store: Store,
    /// The receivers and routing.
    pub alerting: Arc<Alerting>,
    /// The delivery metrics, registered in `registry`.
    pub metrics: AlertMetrics,
    /// The registry `scrape` encodes.
    pub registry: prometheus::Registry,
    /// The clock the loop runs on; `enqueue` stamps with it.
    pub clock: Arc<dyn Clock>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Delivery {
    /// Starts the loop on the system clock.
    pub fn start(alerting: Alerting, store: Store, dir: Option<tempfile::TempDir>) -> Delivery {
        Delivery::start_with_clock(alerting, store, dir, mailpulse::clock::system())
    }

    /// Starts the loop on `clock` (a paused-time clock for accelerated tests).
    pub fn start_with_clock(
        alerting: Alerting,
        store: Store,
        dir: Option<tempfile::TempDir>,
        clock: Arc<dyn Clock>,
    ) -> Delivery {
        let alerting = Arc::new(alerting);
        let registry = prometheus::Registry::new();
        let metrics = AlertMetrics::register(&registry).unwrap();
        let token = CancellationToken::new();
        let task = tokio::spawn(alert::run_delivery(
            store.clone(),
            alerting.clone(),
            metrics.clone(),
            token.clone(),
            clock.clone(),
        ));
        Delivery {
            store,
            alerting,
            metrics,
            registry,
            clock,
            token,
            task,
            _dir: dir,
        }
    }

    /// A fresh store in a temporary directory, loaded from `config`.
    pub fn from_config(config: AlertingConfig) -> Delivery {
        let dir = tempfile::tempdir().unwrap();
        let mut delivery = Delivery::open(config, dir.path());
        delivery._dir = Some(dir);
        delivery
    }

    /// The store in `state` (created if need be), loaded from `config`, on
    /// the system clock.
    pub fn open(config: AlertingConfig, state: &Path) -> Delivery {
        let store = Store::open(state).unwrap();
        let alerting = Alerting::new(config, &store, mailpulse::clock::system()).unwrap();
        Delivery::start(alerting, store, None)
    }

    /// A fresh store in a temporary directory, delivering to `receivers`
    /// on `clock`.
    pub fn with_receivers(
        config: AlertingConfig,
        receivers: Vec<Arc<dyn Receiver>>,
        clock: Arc<dyn Clock>,
    ) -> Delivery {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let alerting = Alerting::with_receivers(config, receivers);
        Delivery::start_with_clock(alerting, store, Some(dir), clock)
    }

    /// Queues `e`, stamped with the loop's clock.
    pub fn enqueue(&self, e: &AlertEvent) -> Enqueued {
        alert::enqueue(&self.store, &self.alerting, e, self.clock.now()).unwrap()
    }

    /// The delivery metrics in the text format.
    pub fn scrape(&self) -> String {
        use prometheus::Encoder as _;
        let mut out = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Waits until a scrape satisfies `cond` (the gauges follow the store at
    /// each housekeeping tick, a second apart); panics with the last scrape
    /// after `limit`.
    pub async fn wait_scrape(
        &self,
        limit: std::time::Duration,
        what: &str,
        cond: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let scrape = self.scrape();
            if cond(&scrape) {
                return scrape;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}:\n{scrape}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Whether the loop is still running.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops the loop and waits for it; panics if it panicked.
    pub async fn stop(self) {
        self.token.cancel();
        self.task.await.unwrap();
    }
}

/// A slow incident like the example on `cas01`: it started at
/// `started`, was detected 61 s later, peaked at 6.2 s over a 0.18 s
/// baseline; it is firing, on target `target-<key>`, with no host load.
pub fn slow(key: &str, started: DateTime<Utc>) -> AlertEvent {
    AlertEvent {
        incident_key: key.into(),
        status: AlertStatus::Firing,
        reminder: false,
        test: false,
        instance: "cas01".into(),
        target: format!("target-{key}"),
        probe_kind: "http".into(),
        incident_kind: "slow".into(),
        severity: "critical".into(),
        started_at: started,
        detected_at: started + Duration::seconds(61),
        recovered_at: None,
        peak_latency_seconds: Some(6.2),
        baseline_latency_seconds: Some(0.18),
        new_baseline_latency_seconds: None,
        current_latency_seconds: Some(3.8),
        worst_phase: Some("first_byte".into()),
        slow_count: 12,
        failed_count: 0,
        last_error: None,
        held: None,
        host: None,
        run: None,
        phase: None,
        soak_phase: false,
        window: None,
        beyond_tolerance: None,
        window_summary: None,
    }
}

/// `e` resolved at `at`.
pub fn resolved_at(e: &AlertEvent, at: DateTime<Utc>) -> AlertEvent {
    AlertEvent {
        status: AlertStatus::Resolved,
        recovered_at: Some(at),
        ..e.clone()
    }
}
