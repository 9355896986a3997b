//! The `alertmanager` receiver against a real Alertmanager (Debian package
//! `prometheus-alertmanager`) on 127.0.0.1: a firing incident becomes an
//! active alert, stays fresh through re-posts, and disappears once resolved.
//!
//! Without the binary the test skips with a message, unless `CI` is set, in
//! which case it fails: CI must exercise the real peer (`support::alertmanager`).

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mailpulse::alert::{self, AlertEvent, AlertStatus, Alerting, Enqueued};
use mailpulse::config::alerting::parse;
use mailpulse::metrics::alert::AlertMetrics;
use mailpulse::store::Store;
use serde_json::Value;
use support::alertmanager::Alertmanager;
use tokio_util::sync::CancellationToken;

/// Polls `cond` (up to 20 s) until it yields a value.
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
    let Some(am) = Alertmanager::start_or_skip(dir.path()).await else {
        return;
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
    let active = wait_for("the alert to be active", &am, || am.alert("owa")).await;
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
        am.alert("owa")
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
        match am.alert("owa").await {
            None => Some(Value::Null),
            Some(_) => None,
        }
    })
    .await;
    token.cancel();
    task.await.unwrap();
}
