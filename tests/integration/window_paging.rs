//! Issue 18, paging inside a change window, end to end through the daemon
//! with a webhook sink and a real Alertmanager: a window opened in the
//! store (as `mailpulse window open` writes it) over a target whose latency
//! the test sets. A 3x slowdown is recorded and held, never sent; a 20x
//! slowdown pages at once, marked beyond tolerance; a down target pages
//! after `max_down`; an incident still open when the window closes pages
//! `recover_for` later, saying it was held and by which window. The window
//! summary then reaches the sink once, listing the four incidents with
//! their outcomes and the one still open at the close, and Alertmanager
//! takes it as `MailpulseWindowSummary`. Timings are checked within one
//! probe interval (plus the delivery loop's tick) of the injected ones.

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
/// The detector's `for`: how long a slowdown lasts before it is detected.
const FOR: Duration = Duration::from_millis(500);
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

/// Asserts the summary's time `got` is within one probe interval (plus
/// [`SLACK`]) after `injected`, or at most [`SLACK`] before it (a probe
/// under way when the test made the change).
fn near(what: &str, got: &Value, injected: DateTime<Utc>) -> DateTime<Utc> {
    let got = time(got);
    let off = (got - injected).num_milliseconds();
    let (early, late) = (
        SLACK.as_millis() as i64,
        (INTERVAL + SLACK).as_millis() as i64,
    );
    assert!(
        (-early..=late).contains(&off),
        "{what}: {got} is {off} ms from the injected {injected}"
    );
    got
}

/// Whether a request the sink took is a window summary.
fn is_summary(c: &support::http::Captured) -> bool {
    c.json()["event"] == "window_summary"
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
    let blip_seen = Utc::now();
    let blip_fixed = Utc::now();
    server.route("/owa", served(BASE));
    // At this cadence a recovery takes several clean probes: up to 30 s.
    support::wait_until("its resolve to take it", RECOVERY, || async {
        none_held(agent.metric("mailpulse_alerts_held", &[]).await)
    })
    .await;
    let history = incidents(&cfg);
    assert_eq!(history.len(), 1, "{history:#?}");
    assert_eq!(history[0]["window"], "batch1");
    let blip_at = slowed;
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
    let beyond_seen = Utc::now();
    let beyond_at = slowed;
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
    let beyond_fixed = Utc::now();
    server.route("/owa", served(BASE));
    let sent = hook.wait_accepted(2, RECOVERY).await;
    assert_eq!(sent[1].json()["status"], "resolved");

    // 3. Down: held, then paged once down for longer than max_down.
    let down = Instant::now();
    let down_at = Utc::now();
    server.route("/owa", Reply::status(503));
    let sent = hook.wait_accepted(3, Duration::from_secs(20)).await;
    let down_seen = Utc::now();
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
    let down_fixed = Utc::now();
    server.route("/owa", served(BASE));
    let sent = hook.wait_accepted(4, RECOVERY).await;
    assert_eq!(sent[3].json()["status"], "resolved");

    // 4. Still open when the window closes: paged recover_for later; the
    // summary follows SUMMARY_DELAY (5 s) after the close.
    let last_at = Utc::now();
    server.route("/owa", served(blip));
    agent
        .wait_metric("mailpulse_alerts_held", &[], held, "the last 3x page held")
        .await;
    let last_seen = Utc::now();
    let closed = Instant::now();
    let closed_at = Utc::now();
    windows::close(&store, "batch1", closed_at).unwrap();
    let alerts = || -> Vec<support::http::Captured> {
        hook.accepted()
            .into_iter()
            .filter(|c| !is_summary(c))
            .collect()
    };
    let sent = support::wait_until("the release", Duration::from_secs(20), || async {
        let sent = alerts();
        (sent.len() >= 5).then_some(sent)
    })
    .await;
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
    support::wait_until("the last resolve", RECOVERY, || async {
        alerts().len() >= 6
    })
    .await;

    // 5. The summary, once, at the sink and at Alertmanager.
    let got = support::wait_until("the window summary", Duration::from_secs(30), || async {
        hook.accepted().into_iter().find(is_summary)
    })
    .await;
    let body = got.json();
    let s = &body["summary"];
    assert_eq!(s["window"], "batch1", "{body:#}");
    assert_eq!(s["note"], "mailbox moves");
    assert_eq!(s["closed_early"], true);
    near("the window's end", &s["ends_at"], closed_at);
    assert_eq!(s["incident_count"], 4, "{s:#}");
    assert_eq!(s["held"], 2, "{s:#}");
    assert_eq!(s["beyond_tolerance"], 2, "{s:#}");
    let owa = &s["targets"][0];
    assert_eq!(s["targets"].as_array().unwrap().len(), 1, "{s:#}");
    assert_eq!(owa["target"], "owa", "{s:#}");
    assert_eq!(owa["incident_count"], 4, "{s:#}");
    let lines = owa["incidents"].as_array().unwrap();
    assert_eq!(lines.len(), 4, "{s:#}");
    // Kind, outcome, injected onset, when the test saw it detected (held or
    // paged), injected recovery (none: open at the close).
    let injected = [
        ("slow", "held", blip_at, blip_seen, Some(blip_fixed)),
        (
            "slow",
            "beyond_tolerance",
            beyond_at,
            beyond_seen,
            Some(beyond_fixed),
        ),
        (
            "down",
            "beyond_tolerance",
            down_at,
            down_seen,
            Some(down_fixed),
        ),
        ("slow", "held", last_at, last_seen, None),
    ];
    for (n, (line, (kind, outcome, onset, seen, fixed))) in lines.iter().zip(injected).enumerate() {
        let what = format!("incident {n} ({kind}, {outcome})");
        assert_eq!(line["kind"], kind, "{what}: {line:#}");
        assert_eq!(line["outcome"], outcome, "{what}: {line:#}");
        let started = near(&format!("{what}: onset"), &line["started_at"], onset);
        let detected = time(&line["detected_at"]);
        assert!(
            started <= detected && detected <= seen,
            "{what}: detected {detected}, started {started}, seen {seen}"
        );
        let detect_ms = (detected - started).num_milliseconds();
        assert!(
            (FOR.as_millis()..=(FOR + INTERVAL + SLACK).as_millis()).contains(&(detect_ms as u128)),
            "{what}: detected {detect_ms} ms after its onset (for {FOR:?})"
        );
        let onset_ms = (started - onset).num_milliseconds();
        match fixed {
            Some(fixed) => {
                let r = near(&format!("{what}: recovery"), &line["recovered_at"], fixed);
                let recovery_ms = (r - fixed).num_milliseconds();
                eprintln!("{what}: onset +{onset_ms} ms, detected +{detect_ms} ms after it, recovered +{recovery_ms} ms");
                assert_eq!(line["open_at_end"], false, "{what}: {line:#}");
            }
            None => {
                eprintln!("{what}: onset +{onset_ms} ms, detected +{detect_ms} ms after it, open at the close");
                assert_eq!(line["open_at_end"], true, "{what}: {line:#}");
                if let Some(r) = line["recovered_at"].as_str() {
                    let r: DateTime<Utc> = r.parse().unwrap();
                    assert!(r > closed_at, "{what}: recovered {r} before the close");
                }
            }
        }
        assert_eq!(
            line["beyond_tolerance"].is_string(),
            outcome == "beyond_tolerance",
            "{what}: {line:#}"
        );
    }
    let open = s["still_open"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{s:#}");
    assert_eq!(open[0]["target"], "owa");
    assert_eq!(open[0]["kind"], "slow");
    assert_eq!(open[0]["started_at"], lines[3]["started_at"]);
    let reasons = (
        lines[1]["beyond_tolerance"].as_str(),
        lines[2]["beyond_tolerance"].as_str(),
    );
    assert!(
        reasons.0.unwrap().contains("tolerance 10x") && reasons.1.unwrap().contains("max_down 3s"),
        "{reasons:?}"
    );
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("4 incidents (2 held, 2 beyond tolerance), 1 still open"),
        "{text}"
    );
    let listed = support::wait_until(
        "the summary at alertmanager",
        Duration::from_secs(15),
        || async {
            let (status, body) = support::get(am.addr, "/api/v2/alerts").await?;
            assert_eq!(status, 200, "{body}");
            let list: Value = serde_json::from_str(&body).ok()?;
            list.as_array()?
                .iter()
                .find(|a| a["labels"]["alertname"] == "MailpulseWindowSummary")
                .cloned()
        },
    )
    .await;
    assert_eq!(listed["labels"]["window"], "batch1", "{listed:#}");
    // Housekeeping looks at ended windows every second: once the outbox is
    // empty, a few more probes' worth of it queue no second summary.
    agent
        .wait_metric(
            "mailpulse_outbox_pending",
            &[],
            |v| v == Some(0.0),
            "the deliveries to be recorded",
        )
        .await;
    let probes = agent.probes("owa", "total").await;
    agent
        .wait_metric(
            "mailpulse_probe_duration_seconds_count",
            &[("target", "owa"), ("phase", "total")],
            |v| v.unwrap_or(0.0) >= probes + 6.0,
            "three more seconds of probes",
        )
        .await;
    let summaries = hook.accepted().into_iter().filter(is_summary).count();
    assert_eq!(summaries, 1, "the summary arrived once");

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
