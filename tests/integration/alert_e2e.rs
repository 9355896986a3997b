//! Alerting end to end through the real daemon: a local web target whose
//! latency the test raises and lowers, a webhook receiver capturing what it
//! is sent, and a real Alertmanager. Firing and resolved notifications
//! arrive with timings that match the incident (within one probe interval of
//! the changes the test made), and an outage of the receiver plus a `kill -9`
//! of the agent mid-incident lose and duplicate nothing.

use crate::support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use support::alertmanager::Alertmanager;
use support::{incidents, write_file, Agent, HttpServer, Reply};

/// Probe interval of the test target.
const INTERVAL: Duration = Duration::from_millis(100);

fn config(port: u16, state: &std::path::Path, url: &str, receivers: &str) -> String {
    format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\ninstance = \"cas01\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
         [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
         [alerting]\nmax_backoff = \"1s\"\nexternal_url = \"http://cas01.test:9717/\"\n\
         [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\n{receivers}",
        state.display()
    )
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

async fn warm(agent: &Agent) {
    agent.wait_baseline("owa").await;
}

/// The alerts of webhook messages accepted so far, as (status, alert).
fn webhook_alerts(cap: &HttpServer) -> Vec<(String, Value)> {
    cap.accepted()
        .iter()
        .flat_map(|r| {
            let body = r.json();
            body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a["status"].as_str().unwrap().to_string(), a.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowdown_pages_the_webhook_and_alertmanager_and_resolves_with_its_timings() {
    let _timed = support::timed();
    let dir = tempfile::tempdir().unwrap();
    let Some(am) = Alertmanager::start_or_skip(dir.path()).await else {
        return;
    };
    let hook = HttpServer::receiver().await;
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    let port = support::free_port();
    let receivers = format!(
        "[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\
         [[receiver]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://{}\"\nresend_interval = \"1s\"\n",
        hook.url("/hook"),
        am.addr
    );
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &config(
            port,
            &dir.path().join("state"),
            &server.url("/owa"),
            &receivers,
        ),
    );
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
    warm(&agent).await;

    let slowed_at = Utc::now();
    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(60)));
    let firing = hook.wait_accepted(1, Duration::from_secs(15)).await;
    let body = firing[0].json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "hook");
    let alert = &body["alerts"][0];
    // `kind` is the probe kind; the incident kind is in the alert name and an annotation.
    for (k, v) in [
        ("alertname", "MailpulseSlow"),
        ("target", "owa"),
        ("kind", "http"),
        ("instance", "cas01"),
        ("severity", "critical"),
    ] {
        assert_eq!(alert["labels"][k], v, "{alert}");
    }
    assert_eq!(alert["annotations"]["incident_kind"], "slow");
    let started = time(&alert["annotations"]["started_at"]);
    let onset_lag = (started - slowed_at).num_milliseconds();
    assert!(
        (0..=(INTERVAL.as_millis() as i64 + 50)).contains(&onset_lag),
        "started {onset_lag} ms after the slowdown"
    );
    assert!(alert["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("owa"));

    let listed = am.alert("owa").await.expect("alertmanager lists the alert");
    assert_eq!(listed["status"]["state"], "active", "{listed}");
    assert_eq!(listed["labels"]["alertname"], "MailpulseSlow");

    let recovered_at = Utc::now();
    server.route("/owa", Reply::ok("ok"));
    let all = hook.wait_accepted(2, Duration::from_secs(15)).await;
    let resolved = all.last().unwrap().json();
    assert_eq!(resolved["status"], "resolved");
    let a = &resolved["alerts"][0];
    assert_eq!(
        time(&a["annotations"]["started_at"]),
        started,
        "same incident"
    );
    let recovered = time(&a["annotations"]["recovered_at"]);
    let recovery_lag = (recovered - recovered_at).num_milliseconds();
    assert!(
        (0..=(INTERVAL.as_millis() as i64 + 50)).contains(&recovery_lag),
        "recovered {recovery_lag} ms after the fix"
    );
    let duration: f64 = a["annotations"]["duration_seconds"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let expect = (recovered - started).num_microseconds().unwrap() as f64 / 1e6;
    assert!((duration - expect).abs() < 0.001, "{duration} vs {expect}");
    assert!(a["annotations"]["duration"].is_string());
    assert!(
        a["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("recovered"),
        "{a}"
    );

    // The history agrees with what was paged.
    let history = incidents(&cfg);
    assert_eq!(history.len(), 1);
    assert_eq!(time(&history[0]["started_at"]), started);
    assert_eq!(time(&history[0]["recovered_at"]), recovered);

    // Alertmanager sees it resolved (no longer active).
    agent
        .wait_until(
            || async {
                am.alert("owa")
                    .await
                    .is_none_or(|a| a["status"]["state"] != "active")
            },
            "alertmanager to resolve the alert",
        )
        .await;
    // The gauge follows the outbox at the next housekeeping tick.
    agent
        .wait_metric(
            "mailpulse_outbox_pending",
            &[],
            |v| v == Some(0.0),
            "the outbox to drain",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_outage_and_a_kill_9_mid_incident_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hook = HttpServer::receiver().await;
    // The receiver is down: every post gets a 503 until the test says otherwise.
    hook.default_reply(Reply::status(503));
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    let port = support::free_port();
    let receivers = format!(
        "[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        hook.url("/hook")
    );
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &config(
            port,
            &dir.path().join("state"),
            &server.url("/owa"),
            &receivers,
        ),
    );
    let addr = ([127, 0, 0, 1], port).into();
    let mut agent = Agent::start(&cfg, addr, &[]).await;
    warm(&agent).await;

    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(60)));
    // The firing page is refused, retried, refused again.
    agent
        .wait_until(
            || async { hook.requests().len() >= 2 },
            "retries against the 503s",
        )
        .await;
    assert!(hook.accepted().is_empty());

    // The agent dies mid-incident with the page undelivered; the receiver then refuses connections.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    drop(agent);
    hook.stop();
    let agent = Agent::start(&cfg, addr, &[]).await;
    agent
        .wait_degraded("owa", true, "the incident to continue")
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The service recovers while the receiver is still unreachable.
    server.route("/owa", Reply::ok("ok"));
    agent
        .wait_degraded("owa", false, "the incident to close")
        .await;

    // The receiver comes back: everything queued arrives once, in order.
    hook.default_reply(Reply::json("{}"));
    hook.restart().await;
    hook.wait_accepted(2, Duration::from_secs(20)).await;
    // Give any duplicate a chance to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts = webhook_alerts(&hook);
    let statuses: Vec<&str> = alerts.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(statuses, ["firing", "resolved"], "{alerts:?}");
    let fingerprints: Vec<&Value> = alerts.iter().map(|(_, a)| &a["fingerprint"]).collect();
    assert_eq!(fingerprints[0], fingerprints[1], "one incident");
    let history = incidents(&cfg);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        time(&alerts[1].1["annotations"]["started_at"]),
        time(&history[0]["started_at"])
    );
    assert_eq!(
        time(&alerts[1].1["annotations"]["recovered_at"]),
        time(&history[0]["recovered_at"])
    );
}
