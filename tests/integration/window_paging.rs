//! Issue 18, paging inside a change window, end to end through the daemon
//! with a webhook sink and a real Alertmanager: a window opened in the
//! store (as `mailpulse window open` writes it) over a target whose latency
//! the test sets. A 3x slowdown is recorded and held, never sent; a 20x
//! slowdown pages at once, marked beyond tolerance; a down target pages
//! after `max_down`; an incident still open when the window closes pages
//! `recover_for` later, saying it was held and by which window. Timings are
//! checked within one probe interval (plus the delivery loop's tick) of
//! the injected ones.

use crate::support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use mailpulse::store::windows::{self, ChangeWindow, WindowSource};
use mailpulse::store::Store;
use serde_json::Value;
use support::alertmanager::Alertmanager;
use support::{incidents, metric, write_file, Agent, HttpServer, Reply};
use tokio::time::Instant;

/// Probe interval of the test target.
const INTERVAL: Duration = Duration::from_millis(500);
/// The target's normal latency.
const BASE: Duration = Duration::from_millis(20);
/// The window's `max_down`.
const MAX_DOWN: Duration = Duration::from_secs(3);
/// The detector's `recover_for`: the grace of a release.
const RECOVER_FOR: Duration = Duration::from_secs(1);
/// How often the delivery loop looks at held pages.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// The longest a recovery may take to close an incident at this cadence.
const RECOVERY: Duration = Duration::from_secs(30);
/// Leeway for a busy machine on top of the figures above.
const SLACK: Duration = Duration::from_millis(700);

fn config(port: u16, state: &std::path::Path, url: &str, receivers: &str) -> String {
    format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\ninstance = \"cas01\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
         [slowdown]\nfactor = 2.5\nmin_delta = \"20ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
         [alerting]\nmax_backoff = \"1s\"\n\
         [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"500ms\"\ntimeout = \"500ms\"\n{receivers}",
        state.display()
    )
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

fn served(delay: Duration) -> Reply {
    Reply::ok("ok").delayed(delay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_window_blips_are_held_and_real_trouble_pages() {
    let _timed = support::timed();
    let dir = tempfile::tempdir().unwrap();
    let Some(am) = Alertmanager::start_or_skip(dir.path()).await else {
        return;
    };
    let hook = HttpServer::receiver().await;
    let server = HttpServer::start().await;
    server.route("/owa", served(BASE));
    let port = support::free_port();
    let receivers = format!(
        "[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\
         [[receiver]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://{}\"\nresend_interval = \"1s\"\n",
        hook.url("/hook"),
        am.addr
    );
    let state = dir.path().join("state");
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &config(port, &state, &server.url("/owa"), &receivers),
    );
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
    agent.wait_baseline("owa").await;
    // Slowdowns are multiples of the baseline learned (the server's delay
    // plus what a busy machine adds), the 20x one within the timeout.
    let baseline = agent
        .metric("mailpulse_target_baseline_seconds", &[("target", "owa")])
        .await
        .unwrap();
    let baseline = Duration::from_secs_f64(baseline);
    assert!(
        baseline < INTERVAL / 12,
        "a baseline of {baseline:?} leaves no room for 20x"
    );
    let blip = baseline * 3;
    let beyond = (baseline * 20).min(INTERVAL * 9 / 10);

    // The window, written to the store as `mailpulse window open` does.
    let store = Store::open(&state).unwrap();
    let now = Utc::now();
    windows::open(
        &store,
        ChangeWindow {
            id: 0,
            name: "batch1".into(),
            source: WindowSource::Command,
            starts_at: now,
            ends_at: now + chrono::Duration::hours(1),
            closed_at: None,
            targets: vec!["owa".into()],
            tolerance: 10.0,
            max_down: MAX_DOWN,
            max_incident: Duration::from_secs(3600),
            note: Some("mailbox moves".into()),
            by: Some("test".into()),
            summary_sent_at: None,
        },
    )
    .unwrap();
    let count = |scrape: &str, outcome: &str| {
        metric(
            scrape,
            "mailpulse_window_incidents_total",
            &[("window", "batch1"), ("outcome", outcome)],
        )
    };
    let held = |v: Option<f64>| v == Some(1.0);
    let none_held = |v: Option<f64>| v == Some(0.0);

    // 1. A 3x slowdown: detected, recorded, held; it recovers unseen.
    let slowed = Utc::now();
    server.route("/owa", served(blip));
    agent
        .wait_metric("mailpulse_alerts_held", &[], held, "the 3x page held")
        .await;
    agent.wait_degraded("owa", true, "the 3x incident").await;
    server.route("/owa", served(BASE));
    // At this cadence a recovery takes several clean probes: up to 30 s.
    support::wait_until("its resolve to take it", RECOVERY, || async {
        none_held(agent.metric("mailpulse_alerts_held", &[]).await)
    })
    .await;
    let history = incidents(&cfg);
    assert_eq!(history.len(), 1, "{history:#?}");
    assert_eq!(history[0]["window"], "batch1");
    let lag = (time(&history[0]["started_at"]) - slowed).to_std().unwrap();
    assert!(
        lag <= INTERVAL + SLACK,
        "started {lag:?} after the slowdown"
    );
    let scrape = agent.scrape().await;
    assert_eq!(count(&scrape, "held"), Some(1.0), "{scrape}");
    assert!(hook.accepted().is_empty(), "nothing sent for a blip");
    assert!(am.alert("owa").await.is_none());

    // 2. A 20x slowdown pages at once, marked beyond tolerance.
    let slowed = Utc::now();
    server.route("/owa", served(beyond));
    let sent = hook.wait_accepted(1, Duration::from_secs(20)).await;
    let page = sent[0].json();
    let a = &page["alerts"][0];
    assert_eq!(a["status"], "firing", "{page:#}");
    let why = a["annotations"]["beyond_tolerance"].as_str().unwrap();
    assert!(why.contains("baseline (tolerance 10x)"), "{why}");
    assert_eq!(a["annotations"]["window"], "batch1");
    let summary = a["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("beyond tolerance of window batch1: latency"),
        "{summary}"
    );
    let started = time(&a["annotations"]["started_at"]);
    let lag = (started - slowed).to_std().unwrap();
    assert!(
        lag <= INTERVAL + SLACK,
        "started {lag:?} after the slowdown"
    );
    // Paged when detected: not held first.
    assert!(a["annotations"].get("held_by").is_none(), "{a:#}");
    let listed = support::wait_until(
        "alertmanager to list it",
        Duration::from_secs(15),
        || async {
            am.alert("owa")
                .await
                .filter(|x| x["annotations"]["beyond_tolerance"].is_string())
        },
    )
    .await;
    assert_eq!(listed["annotations"]["window"], "batch1");
    server.route("/owa", served(BASE));
    let sent = hook.wait_accepted(2, RECOVERY).await;
    assert_eq!(sent[1].json()["status"], "resolved");

    // 3. Down: held, then paged once down for longer than max_down.
    let down = Instant::now();
    server.route("/owa", Reply::status(503));
    let sent = hook.wait_accepted(3, Duration::from_secs(20)).await;
    let after = sent[2].at - down;
    let a = &sent[2].json()["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["annotations"]["incident_kind"], "down", "{a:#}");
    let why = a["annotations"]["beyond_tolerance"].as_str().unwrap();
    assert!(
        why.starts_with("down for 3") && why.ends_with("(max_down 3s)"),
        "{why}"
    );
    assert_eq!(
        a["annotations"]["held_by"], "window batch1",
        "held until then"
    );
    assert!(
        // One interval to the first failing probe, one to the probe that
        // finds it down for longer than max_down.
        after >= MAX_DOWN && after <= MAX_DOWN + INTERVAL * 2 + SLACK,
        "paged {after:?} after the target went down"
    );
    server.route("/owa", served(BASE));
    let sent = hook.wait_accepted(4, RECOVERY).await;
    assert_eq!(sent[3].json()["status"], "resolved");

    // 4. Still open when the window closes: paged recover_for later.
    server.route("/owa", served(blip));
    agent
        .wait_metric("mailpulse_alerts_held", &[], held, "the last 3x page held")
        .await;
    let closed = Instant::now();
    windows::close(&store, "batch1", Utc::now()).unwrap();
    let sent = hook.wait_accepted(5, Duration::from_secs(20)).await;
    let after = sent[4].at - closed;
    let a = &sent[4].json()["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["annotations"]["held_by"], "window batch1", "{a:#}");
    assert!(a["annotations"]["held_since"].is_string());
    assert!(a["annotations"].get("beyond_tolerance").is_none());
    assert!(
        after >= RECOVER_FOR && after <= RECOVER_FOR + HOUSEKEEPING + SLACK,
        "released {after:?} after the window closed"
    );
    server.route("/owa", served(BASE));
    hook.wait_accepted(6, RECOVERY).await;

    let scrape = agent.scrape().await;
    assert_eq!(count(&scrape, "held"), Some(3.0), "{scrape}");
    assert_eq!(count(&scrape, "beyond_tolerance"), Some(2.0), "{scrape}");
    let history = incidents(&cfg);
    assert_eq!(history.len(), 4, "{history:#?}");
    assert!(
        history.iter().all(|i| i["window"] == "batch1"),
        "{history:#?}"
    );
}
