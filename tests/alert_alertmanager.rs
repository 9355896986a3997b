//! The `alertmanager` receiver against a real Alertmanager (Debian package
//! `prometheus-alertmanager`) on 127.0.0.1: a firing incident becomes an
//! active alert, stays fresh through re-posts, and disappears once resolved.
//!
//! Without the binary the test skips with a message, unless `CI` is set, in
//! which case it fails: CI must exercise the real peer.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mailpulse::alert::{self, AlertEvent, AlertStatus, Alerting, Enqueued};
use mailpulse::config::alerting::parse;
use mailpulse::metrics::alert::AlertMetrics;
use mailpulse::store::Store;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager, stopped (by its PID) on drop.
struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Alertmanager with a fresh storage directory (its notification log
/// persists there) and no cluster listener, or explains why it cannot.
async fn start_alertmanager(dir: &Path) -> Result<Alertmanager, String> {
    if !Path::new(BINARY).exists() {
        return Err(format!(
            "{BINARY} is missing (apt-get install prometheus-alertmanager; see .ci/install-deps)"
        ));
    }
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let storage = dir.join("am-data");
    std::fs::create_dir_all(&storage).unwrap();
    let port = support::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.join("alertmanager.log");
    let child = Command::new(BINARY)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg(format!("--web.listen-address={addr}"))
        // An empty cluster address is the only way to keep it off 0.0.0.0:9094.
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .map_err(|e| format!("cannot start {BINARY}: {e}"))?;
    let am = Alertmanager { child, addr, log };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((200, _)) = support::get(addr, "/-/ready").await {
            return Ok(am);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "alertmanager did not become ready; log:\n{}",
                std::fs::read_to_string(&am.log).unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Our alert as Alertmanager lists it, if it does.
async fn listed(addr: SocketAddr, target: &str) -> Option<Value> {
    let (status, body) = support::get(addr, "/api/v2/alerts").await?;
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    list.as_array()?
        .iter()
        .find(|a| a["labels"]["target"] == target)
        .cloned()
}

async fn wait_for<F, Fut>(what: &str, am: &Alertmanager, mut cond: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; alertmanager log:\n{}",
            std::fs::read_to_string(&am.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_sees_the_incident_open_and_then_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let am = match start_alertmanager(dir.path()).await {
        Ok(am) => am,
        Err(why) if std::env::var_os("CI").is_some() => panic!("{why}"),
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    let config = parse(
        &format!(
            "[alerting]\nexternal_url = \"http://agent.test:9717/\"\n[[receiver]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://{}\"\nresend_interval = \"1s\"\n",
            am.addr
        ),
        dir.path(),
        "agent.test",
    )
    .unwrap();
    let store = Store::open(&dir.path().join("state")).unwrap();
    let clock = mailpulse::clock::system();
    let alerting = Arc::new(Alerting::new(config, &store, clock.clone()).unwrap());
    let registry = prometheus::Registry::new();
    let token = CancellationToken::new();
    let task = tokio::spawn(alert::run_delivery(
        store.clone(),
        alerting.clone(),
        AlertMetrics::register(&registry).unwrap(),
        token.clone(),
        clock,
    ));

    let now = Utc::now();
    let firing = AlertEvent {
        incident_key: "9a1b".into(),
        status: AlertStatus::Firing,
        reminder: false,
        test: false,
        instance: "cas01".into(),
        target: "owa".into(),
        probe_kind: "http".into(),
        incident_kind: "slow".into(),
        severity: "critical".into(),
        started_at: now - chrono::Duration::seconds(90),
        detected_at: now - chrono::Duration::seconds(30),
        recovered_at: None,
        peak_latency_seconds: Some(6.2),
        baseline_latency_seconds: Some(0.18),
        current_latency_seconds: Some(3.8),
        worst_phase: Some("first_byte".into()),
        slow_count: 3,
        failed_count: 0,
        last_error: None,
        host: None,
    };
    assert_eq!(
        alert::enqueue(&store, &alerting, &firing, Utc::now()).unwrap(),
        Enqueued::Queued(vec!["am".into()])
    );
    let active = wait_for("the alert to be active", &am, || listed(am.addr, "owa")).await;
    assert_eq!(active["status"]["state"], "active", "{active:#}");
    assert_eq!(active["labels"]["alertname"], "MailpulseSlow");
    assert_eq!(active["labels"]["instance"], "cas01");
    assert_eq!(active["labels"]["kind"], "http");
    assert_eq!(active["labels"]["severity"], "critical");
    assert_eq!(active["generatorURL"], "http://agent.test:9717/");
    assert!(active["annotations"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("owa slow since"));
    assert_eq!(
        active["startsAt"].as_str().unwrap()[..19],
        alert::render::rfc3339(firing.started_at)[..19]
    );

    // While open, the receiver keeps re-posting: Alertmanager sees updates.
    let first_update = active["updatedAt"].as_str().unwrap().to_string();
    wait_for("a re-post", &am, || async {
        listed(am.addr, "owa")
            .await
            .filter(|a| a["updatedAt"].as_str() != Some(first_update.as_str()))
    })
    .await;

    let resolved = AlertEvent {
        status: AlertStatus::Resolved,
        recovered_at: Some(Utc::now() - chrono::Duration::seconds(1)),
        ..firing.clone()
    };
    alert::enqueue(&store, &alerting, &resolved, Utc::now()).unwrap();
    // Alertmanager lists only unresolved alerts: a resolved one drops out.
    wait_for("the alert to be resolved", &am, || async {
        match listed(am.addr, "owa").await {
            None => Some(Value::Null),
            Some(_) => None,
        }
    })
    .await;
    token.cancel();
    task.await.unwrap();
}
