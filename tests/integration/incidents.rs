//! Slowdown detection in the running daemon: a target whose latency the test
//! raises and lowers opens and closes one incident, exported as metrics and
//! kept in the store; `kill -9` in the middle of it continues the same
//! incident, with its original start, after a restart.

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::{incidents, metric, Agent, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowdown_survives_kill_9_as_one_incident_with_its_original_start() {
    let support::owa::Owa {
        server,
        dir: _dir,
        cfg,
        addr,
        mut agent,
    } = support::owa::start("100ms", "90ms", "").await;
    assert_eq!(
        agent
            .metric(
                "mailpulse_incidents_total",
                &[("target", "owa"), ("kind", "slow")]
            )
            .await,
        Some(0.0),
        "incident counters start at zero"
    );

    // Slow the service down: 60 ms against a ~1 ms baseline.
    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(60)));
    agent
        .wait_degraded("owa", true, "the incident to open")
        .await;
    let open = incidents(&cfg);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["kind"], "slow");
    assert_eq!(open[0]["recovered_at"], Value::Null);
    let started_at = open[0]["started_at"].clone();

    // kill -9 mid-incident, then start again on the same state.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    drop(agent);
    let agent = Agent::start(&cfg, addr, &[]).await;
    agent
        .wait_degraded("owa", true, "the incident to continue")
        .await;
    assert!(
        agent
            .log_text()
            .contains("continuing an incident open before the restart"),
        "{}",
        agent.log_text()
    );

    // Recover.
    server.route("/owa", Reply::ok("ok"));
    agent
        .wait_degraded("owa", false, "the incident to close")
        .await;
    let scrape = agent.scrape().await;
    assert_eq!(
        metric(
            &scrape,
            "mailpulse_incidents_total",
            &[("target", "owa"), ("kind", "slow")]
        ),
        Some(0.0),
        "the restarted agent continued the incident rather than opening one"
    );
    assert!(
        metric(
            &scrape,
            "mailpulse_last_incident_duration_seconds",
            &[("target", "owa")]
        )
        .unwrap()
            > 0.5
    );

    let all = incidents(&cfg);
    assert_eq!(all.len(), 1, "one incident, not two: {all:?}");
    let i = &all[0];
    assert_eq!(i["started_at"], started_at, "the original start is kept");
    assert!(i["recovered_at"].is_string());
    // It lasted past its detection (and across the restart), and took at least
    // `for` (500 ms) to confirm.
    let duration = i["duration_seconds"].as_f64().unwrap();
    let ttd = i["time_to_detect_seconds"].as_f64().unwrap();
    assert!(ttd >= 0.4, "{i}");
    assert!(duration > ttd, "{i}");
    assert_eq!(i["kind"], "slow");
    assert_eq!(i["worst_phase"], "first_byte");
    assert!(i["peak_seconds"].as_f64().unwrap() >= 0.06, "{i}");
}
