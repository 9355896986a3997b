//! The change-window summary through the daemon: a window over `owa` with a
//! slowdown inside, closed; the summary reaches a webhook sink once, with
//! the incident's timings within a probe interval of the injected ones and
//! the p95 inside above the hour before's; after a `kill -9` and a restart
//! it is not sent again, and a window that expired while the agent was
//! stopped is summarised on start-up. `window report` (for now the hidden
//! `window report`) prints the same summary as JSON, and its HTML page
//! opens in headless Chromium. A real Alertmanager takes a summary as an
//! info alert that ends by itself.

use crate::support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailpulse::store::windows::{self, ChangeWindow, WindowSource};
use mailpulse::store::Store;
use serde_json::Value;
use support::{chromium, Agent, HttpServer, Reply};

/// The probe interval of `owa`.
const INTERVAL: Duration = Duration::from_millis(200);

fn report(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["window", "report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", config.to_str().unwrap()]);
    support::mailpulse(&all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn window(name: &str, starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> ChangeWindow {
    ChangeWindow {
        id: 0,
        name: name.into(),
        source: WindowSource::Command,
        starts_at,
        ends_at,
        closed_at: None,
        targets: vec!["owa*".into()],
        // The 80 ms slowdown is far above the loopback baseline: a
        // tolerance this wide keeps it held.
        tolerance: 10_000.0,
        max_down: Duration::from_secs(300),
        max_incident: Duration::from_secs(1800),
        note: Some("batch 1: 30,000 accounts".into()),
        by: Some("ops".into()),
        summary_sent_at: None,
    }
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// Asserts `got` is within one probe interval (plus 100 ms of scheduling on
/// a busy machine) of `injected`.
fn near(what: &str, got: DateTime<Utc>, injected: DateTime<Utc>) {
    let off = (got - injected).num_milliseconds().abs();
    let limit = INTERVAL.as_millis() as i64 + 100;
    assert!(
        off <= limit,
        "{what}: {got} is {off} ms from the injected {injected}"
    );
}

/// Waits until the agent has run `n` more probes of `owa` than now.
async fn probes(agent: &Agent, n: f64) {
    let now = agent.probes("owa", "total").await;
    agent
        .wait_metric(
            "mailpulse_probe_duration_seconds_count",
            &[("target", "owa"), ("phase", "total")],
            |v| v.unwrap_or(0.0) >= now + n,
            "more probes",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_goes_out_once_with_the_timings_and_after_downtime_too() {
    let sink = HttpServer::receiver().await;
    let extra = format!(
        "[alerting]\n[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\
         [[route]]\nevent = \"window_summary\"\ntarget = \"owa\"\nreceivers = [\"hook\"]\n",
        sink.url("/hook")
    );
    let support::owa::Owa {
        server,
        dir,
        cfg,
        addr,
        mut agent,
    } = support::owa::start("200ms", "190ms", &extra).await;
    let state = dir.path().join("state");
    let store = Store::open(&state).unwrap();
    // The hour before: fast probes.
    probes(&agent, 15.0).await;
    let opened = Utc::now();
    windows::open(
        &store,
        window("batch-1", opened, opened + chrono::Duration::hours(1)),
    )
    .unwrap();
    // The pipeline reads the windows every 2 s: let it see this one.
    probes(&agent, 20.0).await;

    let slowed = Utc::now();
    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(80)));
    agent
        .wait_degraded("owa", true, "the incident to open")
        .await;
    probes(&agent, 10.0).await;
    let fixed = Utc::now();
    server.route("/owa", Reply::ok("ok"));
    agent
        .wait_degraded("owa", false, "the incident to close")
        .await;
    probes(&agent, 10.0).await;
    windows::close(&store, "batch-1", Utc::now()).unwrap();

    let got = sink.wait_accepted(1, Duration::from_secs(30)).await;
    let body = got[0].json();
    assert_eq!(body["event"], "window_summary", "{body:#}");
    let s = &body["summary"];
    assert_eq!(s["window"], "batch-1");
    assert_eq!(s["note"], "batch 1: 30,000 accounts");
    assert_eq!(s["closed_early"], true);
    let owa = &s["targets"][0];
    assert_eq!(owa["target"], "owa", "{s:#}");
    assert_eq!(owa["incident_count"], 1, "{s:#}");
    let incident = &owa["incidents"][0];
    assert_eq!(incident["outcome"], "held", "{s:#}");
    near("onset", at(&incident["started_at"]), slowed);
    near("recovery", at(&incident["recovered_at"]), fixed);
    assert!(at(&incident["detected_at"]) > at(&incident["started_at"]));
    let degraded = owa["degraded_seconds"].as_f64().unwrap();
    let injected = (fixed - slowed).num_milliseconds() as f64 / 1000.0;
    assert!(
        (degraded - injected).abs() <= 0.4,
        "degraded {degraded} s, injected {injected} s"
    );
    let before = owa["p95_before_seconds"].as_f64().expect("the hour before");
    let inside = owa["p95_inside_seconds"].as_f64().unwrap();
    assert!(inside >= 0.08 && before < 0.04, "{s:#}");
    assert!(owa["probes"].as_u64().unwrap() >= 40, "{s:#}");
    assert_eq!(s["still_open"], serde_json::json!([]));
    assert!(body["text"]
        .as_str()
        .unwrap()
        .contains("owa: 1 incident, degraded"));

    // kill -9 once the delivery is recorded (a kill between the sink's
    // answer and that commit sends it again: at least once, by design), and
    // a window that expires while the agent is down.
    agent
        .wait_metric(
            "mailpulse_outbox_pending",
            &[],
            |v| v == Some(0.0),
            "the summary's delivery to be recorded",
        )
        .await;
    agent.signal("KILL");
    agent.wait_exit(Duration::from_secs(10)).await;
    let now = Utc::now();
    windows::open(
        &store,
        window(
            "batch-2",
            now - chrono::Duration::minutes(10),
            now - chrono::Duration::seconds(30),
        ),
    )
    .unwrap();
    drop(store);
    let agent = Agent::start(&cfg, addr, &[]).await;
    let got = sink.wait_accepted(2, Duration::from_secs(30)).await;
    let names: Vec<Value> = got
        .iter()
        .map(|r| r.json()["summary"]["window"].clone())
        .collect();
    assert_eq!(names, ["batch-1", "batch-2"]);
    // Housekeeping runs every second: a few more of them send nothing new.
    probes(&agent, 20.0).await;
    assert_eq!(sink.accepted().len(), 2, "batch-1 was not sent again");

    // The report: the same summary, and an HTML page.
    let out = report(&cfg, &["batch-1", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["targets"][0]["incidents"], owa["incidents"]);
    let out = report(&cfg, &["batch-1"]);
    assert!(
        text(&out.stdout).starts_with("Change window \"batch-1\" ended on "),
        "{}",
        text(&out.stdout)
    );
    let html = dir.path().join("batch-1.html");
    let out = report(
        &cfg,
        &[
            "batch-1",
            "--format",
            "html",
            "--output",
            html.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let url = format!("file://{}", html.display());
    let loaded = chromium::dump_dom(&url).await;
    assert!(loaded.dom.contains("id=\"title\""), "{}", loaded.dom);
    assert_eq!(loaded.dom.matches("data-target=\"owa\"").count(), 1);
    assert_eq!(loaded.dom.matches("class=\"incident\"").count(), 1);
    assert!(loaded.dom.contains("class=\"span held\""), "{}", loaded.dom);
    assert!(!loaded.dom.contains("<script"));
    assert!(
        loaded.console_errors().is_empty(),
        "{:?}",
        loaded.console_errors()
    );
    chromium::screenshot(&url, "window-report.png").await;

    let out = report(&cfg, &["nosuchwindow"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no change window named \"nosuchwindow\""));
}

/// A window summary at a real Alertmanager (Debian's
/// `prometheus-alertmanager`): an info alert `MailpulseWindowSummary` with
/// the window's label and the summary's text, which ends by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_takes_the_summary_as_an_info_alert() {
    let dir = tempfile::tempdir().unwrap();
    let Some(am) = support::alertmanager::Alertmanager::start_or_skip(dir.path()).await else {
        return;
    };
    let config = mailpulse::config::alerting::parse(
        &format!(
            "[[receiver]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://{}\"\n\
             [[route]]\nevent = \"window_summary\"\nreceivers = [\"am\"]\n",
            am.addr
        ),
        dir.path(),
        "agent.test",
    )
    .unwrap();
    let d = support::delivery::Delivery::open(config, &dir.path().join("state"));
    let now = Utc::now();
    windows::open(
        &d.store,
        window(
            "batch-7",
            now - chrono::Duration::minutes(30),
            now - chrono::Duration::seconds(10),
        ),
    )
    .unwrap();
    let alert = support::wait_until(
        "the summary at alertmanager",
        Duration::from_secs(20),
        || async {
            let (status, body) = support::get(am.addr, "/api/v2/alerts").await?;
            assert_eq!(status, 200, "{body}");
            let list: Value = serde_json::from_str(&body).ok()?;
            list.as_array()?
                .iter()
                .find(|a| a["labels"]["window"] == "batch-7")
                .cloned()
        },
    )
    .await;
    assert_eq!(
        alert["labels"]["alertname"], "MailpulseWindowSummary",
        "{alert:#}"
    );
    assert_eq!(alert["labels"]["severity"], "info");
    assert_eq!(alert["status"]["state"], "active");
    assert!(alert["annotations"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("Change window \"batch-7\" ended on "));
    let ends_at: DateTime<Utc> = alert["endsAt"].as_str().unwrap().parse().unwrap();
    let ahead = (ends_at - Utc::now()).num_seconds();
    assert!((200..=300).contains(&ahead), "ends in {ahead} s");
    d.stop().await;
}
