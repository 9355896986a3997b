//! Alert delivery end to end through the library: every receiver kind's
//! request shape against a capturing HTTP server, routing, the durable outbox
//! under outages (503, refused connections, `Retry-After`, a `kill -9` of the
//! delivering process), expiry, maintenance windows, reminders and metrics.

use crate::support;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailpulse::alert::{
    self, AlertEvent, AlertStatus, Alerting, BoxFuture, DeliveryError, Enqueued, HostLoad, Receiver,
};
use mailpulse::clock::Clock as _;
use mailpulse::config::alerting::{parse, AlertingConfig};
use mailpulse::metrics::alert::NotificationResult;
use mailpulse::store::{outbox, Store};
use serde_json::{json, Value};
use support::delivery::{self, Delivery};
use support::{wait_until, HttpServer, Reply};

const WAIT: Duration = Duration::from_secs(20);

fn config(text: &str, dir: &Path) -> AlertingConfig {
    parse(text, dir, "agent.test").unwrap_or_else(|e| panic!("{e:?}"))
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The incident of the issue's example, with key `key` on target `target`.
fn firing(key: &str, target: &str) -> AlertEvent {
    AlertEvent {
        target: target.into(),
        host: Some(HostLoad {
            cpu_ratio: Some(0.97),
            load1: Some(12.3),
            memory_available_bytes: Some(1_288_490_189),
            tcp_established: Some(4120),
        }),
        ..delivery::slow(key, at("2026-12-05T02:14:05Z"))
    }
}

fn resolved(key: &str, target: &str) -> AlertEvent {
    delivery::resolved_at(&firing(key, target), at("2026-12-05T02:24:08Z"))
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn secret(dir: &Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    p.display().to_string()
}

// ---------------------------------------------------------------------------
// Payloads, one receiver kind each.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn webhook_posts_the_alertmanager_webhook_format() {
    let cap = HttpServer::receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let token = secret(dir.path(), "token", "t0ken");
    let h = Delivery::from_config(config(
        &format!(
            r#"
            [alerting]
            external_url = "http://agent.test:9717/"
            [[receiver]]
            name = "hook"
            kind = "webhook"
            url = "{}"
            token_file = "{token}"
            "#,
            cap.url("/hook")
        ),
        dir.path(),
    ));
    assert_eq!(
        h.enqueue(&firing("inc1", "owa")),
        Enqueued::Queued(vec!["hook".into()])
    );
    assert_eq!(
        h.enqueue(&resolved("inc1", "owa")),
        Enqueued::Queued(vec!["hook".into()])
    );
    let got = cap.wait_accepted(2, WAIT).await;
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), Some("Bearer t0ken"));
    assert_eq!(r.header("x-alert-id"), Some("inc1"));
    assert!(r.header("user-agent").unwrap().starts_with("mailpulse/"));
    let b = r.json();
    assert_eq!(
        keys(&b),
        [
            "alerts",
            "commonAnnotations",
            "commonLabels",
            "externalURL",
            "groupKey",
            "groupLabels",
            "receiver",
            "status",
            "truncatedAlerts",
            "version"
        ]
    );
    assert_eq!(b["version"], "4");
    assert_eq!(b["status"], "firing");
    assert_eq!(b["receiver"], "hook");
    assert_eq!(b["externalURL"], "http://agent.test:9717/");
    let a = &b["alerts"][0];
    assert_eq!(
        keys(a),
        [
            "annotations",
            "endsAt",
            "fingerprint",
            "generatorURL",
            "labels",
            "startsAt",
            "status"
        ]
    );
    assert_eq!(
        a["labels"],
        json!({"alertname": "MailpulseSlow", "instance": "cas01", "kind": "http", "severity": "critical", "target": "owa"})
    );
    assert_eq!(a["startsAt"], "2026-12-05T02:14:05Z");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        a["annotations"]["summary"],
        "owa slow since 02:14:05Z: latency 3.8 s against a 180 ms baseline (21x), CPU 97%, 4,120 TCP established"
    );
    for key in [
        "summary",
        "description",
        "started_at",
        "detected_at",
        "time_to_detect_seconds",
        "peak_latency_seconds",
        "baseline_latency_seconds",
        "worst_phase",
        "host_load",
    ] {
        assert!(
            a["annotations"][key].is_string(),
            "annotation {key} missing"
        );
    }
    let b = got[1].json();
    assert_eq!(b["status"], "resolved");
    let a = &b["alerts"][0];
    assert_eq!(a["endsAt"], "2026-12-05T02:24:08Z");
    assert_eq!(
        a["annotations"]["summary"],
        "owa recovered at 02:24:08Z after 10m 3s (detected 61 s after onset, peak 6.2 s)"
    );
    assert_eq!(a["annotations"]["recovered_at"], "2026-12-05T02:24:08Z");
    assert_eq!(a["annotations"]["duration_seconds"], "603");
    assert_eq!(a["annotations"]["duration"], "10m 3s");
    h.stop().await;
}

#[tokio::test]
async fn alertmanager_receives_api_v2_alerts() {
    let cap = HttpServer::receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let h = Delivery::from_config(config(
        &format!(
            "[[receiver]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"{}\"\n",
            cap.url("/")
        ),
        dir.path(),
    ));
    let before = Utc::now();
    // Alertmanager takes an end in the future as "firing until then": use a
    // recovery in the past, as real ones are.
    let mut fire = firing("inc1", "owa");
    fire.started_at = before - chrono::Duration::minutes(10);
    fire.detected_at = before - chrono::Duration::minutes(9);
    let mut end = fire.clone();
    end.status = AlertStatus::Resolved;
    end.recovered_at = Some(before - chrono::Duration::seconds(3));
    h.enqueue(&fire);
    h.enqueue(&end);
    let got = cap.wait_accepted(2, WAIT).await;
    assert_eq!(got[0].path, "/api/v2/alerts");
    let body = got[0].json();
    let list = body.as_array().expect("an array of alerts");
    assert_eq!(list.len(), 1);
    assert_eq!(
        keys(&list[0]),
        ["annotations", "endsAt", "labels", "startsAt"]
    );
    assert_eq!(list[0]["labels"]["alertname"], "MailpulseSlow");
    let ends = at(list[0]["endsAt"].as_str().unwrap());
    // Firing: endsAt four resend intervals (1m) ahead.
    assert!(ends > before + chrono::Duration::minutes(3), "{ends}");
    let resolved_body = got[1].json();
    assert_eq!(
        resolved_body[0]["endsAt"],
        mailpulse::alert::render::rfc3339(end.recovered_at.unwrap())
    );
    assert_eq!(resolved_body[0]["labels"], list[0]["labels"]);
    h.stop().await;
}

#[tokio::test]
async fn pagerduty_triggers_and_resolves_with_one_dedup_key() {
    let cap = HttpServer::receiver().await;
    cap.default_reply(
        Reply::status(202)
            .body(r#"{"status":"success","message":"Event processed","dedup_key":"inc1"}"#),
    );
    let dir = tempfile::tempdir().unwrap();
    let key = secret(dir.path(), "pd", "R0UTINGKEY");
    let h = Delivery::from_config(config(
        &format!(
            "[[receiver]]\nname = \"pd\"\nkind = \"pagerduty\"\nurl = \"{}\"\nrouting_key_file = \"{key}\"\n",
            cap.url("/v2/enqueue")
        ),
        dir.path(),
    ));
    h.enqueue(&firing("inc1", "owa"));
    h.enqueue(&resolved("inc1", "owa"));
    let got = cap.wait_accepted(2, WAIT).await;
    assert_eq!(got[0].path, "/v2/enqueue");
    let t = got[0].json();
    assert_eq!(
        keys(&t),
        [
            "client",
            "dedup_key",
            "event_action",
            "payload",
            "routing_key"
        ]
    );
    assert_eq!(t["routing_key"], "R0UTINGKEY");
    assert_eq!(t["event_action"], "trigger");
    assert_eq!(t["dedup_key"], "inc1");
    assert_eq!(
        keys(&t["payload"]),
        [
            "class",
            "component",
            "custom_details",
            "group",
            "severity",
            "source",
            "summary",
            "timestamp"
        ]
    );
    assert_eq!(t["payload"]["severity"], "critical");
    assert_eq!(
        t["payload"]["custom_details"]["peak_latency_seconds"],
        "6.2"
    );
    assert_eq!(
        got[1].json(),
        json!({"routing_key": "R0UTINGKEY", "dedup_key": "inc1", "event_action": "resolve"})
    );
    h.stop().await;
}

#[tokio::test]
async fn opsgenie_creates_and_closes_by_alias() {
    let cap = HttpServer::receiver().await;
    cap.default_reply(
        Reply::status(202)
            .body(r#"{"result":"Request will be processed","took":0.1,"requestId":"r1"}"#),
    );
    let dir = tempfile::tempdir().unwrap();
    let key = secret(dir.path(), "og", "g3n1e");
    let h = Delivery::from_config(config(
        &format!(
            "[[receiver]]\nname = \"og\"\nkind = \"opsgenie\"\nurl = \"{}\"\napi_key_file = \"{key}\"\n",
            cap.url("/")
        ),
        dir.path(),
    ));
    h.enqueue(&firing("inc1", "owa"));
    h.enqueue(&resolved("inc1", "owa"));
    let got = cap.wait_accepted(2, WAIT).await;
    assert_eq!(got[0].path, "/v2/alerts");
    assert_eq!(got[0].header("authorization"), Some("GenieKey g3n1e"));
    let c = got[0].json();
    assert_eq!(
        keys(&c),
        [
            "alias",
            "description",
            "details",
            "entity",
            "message",
            "priority",
            "source",
            "tags"
        ]
    );
    assert_eq!(c["alias"], "inc1");
    assert_eq!(c["priority"], "P1");
    assert_eq!(got[1].path, "/v2/alerts/inc1/close?identifierType=alias");
    assert_eq!(keys(&got[1].json()), ["note", "source", "user"]);
    h.stop().await;
}

#[tokio::test]
async fn slack_posts_blocks_to_the_secret_url() {
    let cap = HttpServer::receiver().await;
    cap.default_reply(Reply::status(200).body("ok"));
    let dir = tempfile::tempdir().unwrap();
    let url = secret(dir.path(), "slack", &cap.url("/services/T0/B0/s3cr3t"));
    let h = Delivery::from_config(config(
        &format!("[[receiver]]\nname = \"sl\"\nkind = \"slack\"\nurl_file = \"{url}\"\n"),
        dir.path(),
    ));
    h.enqueue(&firing("inc1", "owa"));
    h.enqueue(&resolved("inc1", "owa"));
    let got = cap.wait_accepted(2, WAIT).await;
    assert_eq!(got[0].path, "/services/T0/B0/s3cr3t");
    let b = got[0].json();
    assert_eq!(keys(&b), ["blocks", "text"]);
    let types: Vec<&str> = b["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["header", "section", "section", "context"]);
    assert_eq!(b["blocks"][0]["text"]["text"], "🔴 owa slow");
    assert_eq!(
        got[1].json()["blocks"][0]["text"]["text"],
        "✅ owa recovered"
    );
    h.stop().await;
}

#[tokio::test]
async fn teams_posts_an_adaptive_card() {
    let cap = HttpServer::receiver().await;
    cap.default_reply(Reply::status(202));
    let dir = tempfile::tempdir().unwrap();
    let h = Delivery::from_config(config(
        &format!(
            "[[receiver]]\nname = \"tm\"\nkind = \"teams\"\nurl = \"{}\"\n",
            cap.url("/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=s1g")
        ),
        dir.path(),
    ));
    h.enqueue(&firing("inc1", "owa"));
    let got = cap.wait_accepted(1, WAIT).await;
    assert_eq!(
        got[0].path,
        "/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=s1g"
    );
    let b = got[0].json();
    assert_eq!(keys(&b), ["attachments", "type"]);
    let a = &b["attachments"][0];
    assert_eq!(keys(a), ["content", "contentType", "contentUrl"]);
    assert_eq!(a["content"]["type"], "AdaptiveCard");
    assert_eq!(
        a["content"]["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(a["content"]["msteams"]["width"], "full");
    h.stop().await;
}

#[tokio::test]
async fn grafana_draws_a_region_from_onset_to_recovery() {
    let cap = HttpServer::receiver().await;
    cap.script([Reply::json(r#"{"message":"Annotation added","id":42}"#)]);
    cap.default_reply(Reply::json(r#"{"message":"Annotation patched"}"#));
    let dir = tempfile::tempdir().unwrap();
    let token = secret(dir.path(), "gf", "glsa_t0k");
    let h = Delivery::from_config(config(
        &format!(
            "[[receiver]]\nname = \"gf\"\nkind = \"grafana\"\nurl = \"{}\"\ntoken_file = \"{token}\"\ndashboard_uid = \"soak\"\n",
            cap.url("/grafana/")
        ),
        dir.path(),
    ));
    h.enqueue(&firing("inc1", "owa"));
    h.enqueue(&resolved("inc1", "owa"));
    let got = cap.wait_accepted(2, WAIT).await;
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/grafana/api/annotations")
    );
    assert_eq!(got[0].header("authorization"), Some("Bearer glsa_t0k"));
    let c = got[0].json();
    assert_eq!(keys(&c), ["dashboardUID", "tags", "text", "time"]);
    assert_eq!(c["time"], at("2026-12-05T02:14:05Z").timestamp_millis());
    assert!(c["tags"].as_array().unwrap().contains(&json!("target:owa")));
    assert!(c["tags"].as_array().unwrap().contains(&json!("kind:http")));
    assert_eq!(
        (got[1].method.as_str(), got[1].path.as_str()),
        ("PATCH", "/grafana/api/annotations/42")
    );
    let p = got[1].json();
    assert_eq!(p["timeEnd"], at("2026-12-05T02:24:08Z").timestamp_millis());
    // The annotation id is forgotten once the region is closed.
    wait_until("annotation id forgotten", WAIT, || async {
        outbox::get_state(&h.store, "gf", "inc1").unwrap().is_none()
    })
    .await;
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Outages and the durable outbox.
// ---------------------------------------------------------------------------

/// Which `(incident, status)` pairs were accepted, in arrival order.
fn accepted_pairs(cap: &HttpServer) -> Vec<(String, String)> {
    cap.accepted()
        .iter()
        .map(|r| {
            let b = r.json();
            (
                r.header("x-alert-id").unwrap().to_string(),
                b["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_exactly_once_in_order(pairs: &[(String, String)], incidents: &[&str]) {
    for inc in incidents {
        let mine: Vec<&str> = pairs
            .iter()
            .filter(|(i, _)| i == inc)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(mine, ["firing", "resolved"], "incident {inc}: {pairs:?}");
    }
    assert_eq!(pairs.len(), incidents.len() * 2, "{pairs:?}");
}

fn webhook_config(cap: &HttpServer, dir: &Path) -> AlertingConfig {
    config(
        &format!(
            "[alerting]\nmax_backoff = \"1s\"\n[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\ntimeout = \"2s\"\n",
            cap.url("/hook")
        ),
        dir,
    )
}

#[tokio::test]
async fn an_outage_of_503s_then_refused_connections_loses_nothing() {
    let cap = HttpServer::receiver().await;
    cap.script([Reply::status(503), Reply::status(503), Reply::status(503)]);
    let dir = tempfile::tempdir().unwrap();
    let h = Delivery::from_config(webhook_config(&cap, dir.path()));
    for e in [
        firing("a", "owa"),
        firing("b", "smtp"),
        resolved("a", "owa"),
        resolved("b", "smtp"),
    ] {
        h.enqueue(&e);
    }
    // Let the 503s happen, then refuse connections for a while.
    wait_until("three attempts", WAIT, || async {
        cap.requests().len() >= 3
    })
    .await;
    cap.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(h.metrics.count("hook", NotificationResult::Retried) >= 4);
    cap.restart().await;
    cap.wait_accepted(4, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once_in_order(&accepted_pairs(&cap), &["a", "b"]);
    assert_eq!(h.metrics.count("hook", NotificationResult::Delivered), 4);
    assert_eq!(outbox::stats(&h.store).unwrap().pending, 0);
    h.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let cap = HttpServer::receiver().await;
    cap.script([Reply::status(429).header("Retry-After", "2")]);
    let dir = tempfile::tempdir().unwrap();
    let h = Delivery::from_config(webhook_config(&cap, dir.path()));
    h.enqueue(&firing("a", "owa"));
    cap.wait_accepted(1, WAIT).await;
    let r = cap.requests();
    assert_eq!(r.len(), 2);
    let gap = r[1].at - r[0].at;
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
    h.stop().await;
}

#[tokio::test]
async fn a_permanent_refusal_is_dropped_and_the_incident_goes_on() {
    let cap = HttpServer::receiver().await;
    cap.script([Reply::status(400)]);
    let dir = tempfile::tempdir().unwrap();
    let h = Delivery::from_config(webhook_config(&cap, dir.path()));
    h.enqueue(&firing("a", "owa"));
    h.enqueue(&resolved("a", "owa"));
    cap.wait_accepted(1, WAIT).await;
    assert_eq!(cap.requests().len(), 2);
    assert_eq!(
        accepted_pairs(&cap),
        [("a".to_string(), "resolved".to_string())]
    );
    assert_eq!(h.metrics.count("hook", NotificationResult::Failed), 1);
    h.stop().await;
}

#[tokio::test]
async fn undeliverable_notifications_expire_after_max_age() {
    let cap = HttpServer::receiver().await;
    cap.default_reply(Reply::status(503));
    let dir = tempfile::tempdir().unwrap();
    let mut c = webhook_config(&cap, dir.path());
    c.max_age = Duration::from_secs(2);
    let h = Delivery::from_config(c);
    h.enqueue(&firing("a", "owa"));
    wait_until("the notification to expire", WAIT, || async {
        h.metrics.count("hook", NotificationResult::Expired) > 0
    })
    .await;
    assert_eq!(outbox::stats(&h.store).unwrap().pending, 0);
    let scrape = h.scrape();
    assert!(
        scrape.contains("mailpulse_notifications_total{receiver=\"hook\",result=\"expired\"} 1"),
        "{scrape}"
    );
    h.stop().await;
}

#[tokio::test]
async fn metrics_track_the_backlog() {
    let cap = HttpServer::receiver().await;
    cap.default_reply(Reply::status(503));
    let dir = tempfile::tempdir().unwrap();
    let h = Delivery::from_config(webhook_config(&cap, dir.path()));
    h.enqueue(&firing("a", "owa"));
    h.enqueue(&resolved("a", "owa"));
    let age = |scrape: &str| -> f64 {
        scrape
            .lines()
            .find_map(|l| l.strip_prefix("mailpulse_outbox_oldest_pending_age_seconds "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    // Both wait while the receiver refuses, and the oldest one ages.
    let scrape = h
        .wait_scrape(WAIT, "two pending, the oldest a second old", |s| {
            s.contains("mailpulse_outbox_pending 2") && age(s) >= 1.0
        })
        .await;
    assert!(scrape.contains("mailpulse_notification_duration_seconds_count{receiver=\"hook\"}"));
    cap.default_reply(Reply::status(200));
    cap.wait_accepted(2, WAIT).await;
    let scrape = h
        .wait_scrape(WAIT, "the backlog drained", |s| {
            s.contains("mailpulse_outbox_pending 0")
                && s.contains("mailpulse_outbox_oldest_pending_age_seconds 0")
        })
        .await;
    assert!(
        scrape.contains("mailpulse_notifications_total{receiver=\"hook\",result=\"delivered\"} 2")
    );
    support::promtool_check(&scrape);
    h.stop().await;
}

/// The child half of `a_kill_9_mid_delivery_loses_and_duplicates_nothing`:
/// runs the delivery loop on the store named in the environment until killed.
#[tokio::test]
async fn child_delivery_process() {
    let (Ok(dir), Ok(url)) = (
        std::env::var("MAILPULSE_TEST_CHILD_DIR"),
        std::env::var("MAILPULSE_TEST_CHILD_URL"),
    ) else {
        return; // Only meaningful as the child of the test below.
    };
    let c = config(
        &format!("[alerting]\nmax_backoff = \"1s\"\n[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\n"),
        Path::new(&dir),
    );
    let h = Delivery::open(c, Path::new(&dir));
    tokio::time::sleep(Duration::from_secs(60)).await;
    h.stop().await;
}

#[tokio::test]
async fn a_kill_9_mid_delivery_loses_and_duplicates_nothing() {
    let cap = HttpServer::receiver().await;
    // The first message is accepted, the second hangs: the kill lands mid-send.
    cap.script([Reply::status(200), Reply::hang()]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // The store stays open here while the child writes to it too (multi-writer).
    let store = Store::open(&state).unwrap();
    let c = webhook_config(&cap, dir.path());
    let alerting = Alerting::new(c, &store, mailpulse::clock::system()).unwrap();
    alert::enqueue(&store, &alerting, &firing("a", "owa"), Utc::now()).unwrap();
    alert::enqueue(&store, &alerting, &firing("b", "smtp"), Utc::now()).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!(
                "{}::child_delivery_process",
                module_path!().split_once("::").unwrap().1
            ),
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MAILPULSE_TEST_CHILD_DIR", &state)
        .env("MAILPULSE_TEST_CHILD_URL", cap.url("/hook"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until one message is delivered and recorded as such, and the other
    // is on the wire: the kill then lands in the middle of a send. (A kill
    // between a 2xx and its commit would resend that message: delivery is at
    // least once, which receivers with idempotency keys absorb.)
    wait_until("the child to be mid-send", WAIT, || async {
        cap.requests().len() >= 2 && outbox::all_rows(&store).unwrap().len() == 1
    })
    .await;
    // SIGKILL: no chance to record anything.
    child.kill().unwrap();
    child.wait().unwrap();

    // Restarted: the incidents recover, and delivery resumes from the file.
    cap.default_reply(Reply::status(200));
    drop(alerting);
    drop(store);
    let store = Store::open(&state).unwrap();
    let c = webhook_config(&cap, dir.path());
    let alerting = Alerting::new(c, &store, mailpulse::clock::system()).unwrap();
    let open: Vec<String> = alert::open_incidents(&store)
        .unwrap()
        .into_iter()
        .map(|e| e.incident_key)
        .collect();
    assert_eq!(open, ["a", "b"]);
    // Both recovered while the agent was down: reconciliation resolves them.
    let recovered_at = at("2026-12-05T02:24:08Z");
    let done =
        alert::resolve_recovered(&store, &alerting, Utc::now(), |_| Some(recovered_at)).unwrap();
    assert_eq!(done, ["a", "b"]);
    let h = Delivery::start(alerting, store, None);
    cap.wait_accepted(4, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once_in_order(&accepted_pairs(&cap), &["a", "b"]);
    assert!(alert::open_incidents(&h.store).unwrap().is_empty());
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Routing, windows, reminders, with in-memory receivers.
// ---------------------------------------------------------------------------

/// A receiver that records what it is sent and fails as scripted.
struct Fake {
    name: String,
    stateful: bool,
    seen: Mutex<Vec<AlertEvent>>,
    failures: Mutex<VecDeque<DeliveryError>>,
}

impl Fake {
    fn new(name: &str, stateful: bool) -> Arc<Fake> {
        Arc::new(Fake {
            name: name.into(),
            stateful,
            seen: Mutex::default(),
            failures: Mutex::default(),
        })
    }

    fn seen(&self) -> Vec<(String, AlertStatus, bool)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|e| (e.incident_key.clone(), e.status, e.reminder))
            .collect()
    }
}

impl Receiver for Fake {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "fake"
    }

    fn stateful(&self) -> bool {
        self.stateful
    }

    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            if let Some(e) = self.failures.lock().unwrap().pop_front() {
                return Err(e);
            }
            self.seen.lock().unwrap().push(event.clone());
            Ok(())
        })
    }
}

fn fakes(config: AlertingConfig, list: &[&Arc<Fake>]) -> Delivery {
    let receivers: Vec<Arc<dyn Receiver>> = list
        .iter()
        .map(|f| (*f).clone() as Arc<dyn Receiver>)
        .collect();
    Delivery::with_receivers(config, receivers, mailpulse::clock::system())
}

#[tokio::test]
async fn routes_pick_receivers_and_continue_adds_more() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(
        r#"
        [[receiver]]
        name = "pager"
        kind = "webhook"
        url = "http://127.0.0.1:9/"
        [[receiver]]
        name = "chat"
        kind = "webhook"
        url = "http://127.0.0.1:9/"
        send_resolved = false
        [[receiver]]
        name = "all"
        kind = "webhook"
        url = "http://127.0.0.1:9/"
        [[route]]
        target = "owa*"
        severity = "critical"
        receivers = ["pager"]
        continue = true
        [[route]]
        kind = "http"
        receivers = ["chat"]
        [[route]]
        receivers = ["all"]
        "#,
        dir.path(),
    );
    let store = Store::open(dir.path()).unwrap();
    let a = Alerting::new(c, &store, mailpulse::clock::system()).unwrap();
    assert_eq!(a.route(&firing("x", "owa-cas01")), ["pager", "chat"]);
    let mut smtp = firing("y", "mx1");
    smtp.probe_kind = "smtp".into();
    assert_eq!(a.route(&smtp), ["all"]);
    let mut warn = firing("z", "owa");
    warn.severity = "warning".into();
    assert_eq!(a.route(&warn), ["chat"]);
    // send_resolved = false: the resolve goes to the pager only.
    let now = Utc::now();
    alert::enqueue(&store, &a, &firing("x", "owa-cas01"), now).unwrap();
    assert_eq!(
        alert::enqueue(&store, &a, &resolved("x", "owa-cas01"), now).unwrap(),
        Enqueued::Queued(vec!["pager".into()])
    );
}

#[tokio::test]
async fn no_routes_means_everyone_and_duplicates_are_ignored() {
    let one = Fake::new("one", false);
    let two = Fake::new("two", true);
    let h = fakes(AlertingConfig::default(), &[&one, &two]);
    assert_eq!(
        h.enqueue(&firing("a", "owa")),
        Enqueued::Queued(vec!["one".into(), "two".into()])
    );
    assert_eq!(h.enqueue(&firing("a", "owa")), Enqueued::Duplicate);
    // An escalation (slow to down) under the same key is news.
    let down = AlertEvent {
        incident_kind: "down".into(),
        failed_count: 3,
        ..firing("a", "owa")
    };
    assert_eq!(
        h.enqueue(&down),
        Enqueued::Queued(vec!["one".into(), "two".into()])
    );
    assert_eq!(h.enqueue(&down), Enqueued::Duplicate);
    h.enqueue(&resolved("a", "owa"));
    assert_eq!(h.enqueue(&resolved("a", "owa")), Enqueued::Duplicate);
    // A reminder made just before the resolve must not reopen the incident.
    let late_reminder = AlertEvent {
        reminder: true,
        ..firing("a", "owa")
    };
    assert_eq!(h.enqueue(&late_reminder), Enqueued::Duplicate);
    assert!(alert::open_incidents(&h.store).unwrap().is_empty());
    wait_until("both delivered", WAIT, || async {
        one.seen().len() == 3 && two.seen().len() == 3
    })
    .await;
    assert_eq!(
        one.seen(),
        [
            ("a".to_string(), AlertStatus::Firing, false),
            ("a".to_string(), AlertStatus::Firing, false),
            ("a".to_string(), AlertStatus::Resolved, false)
        ]
    );
    assert_eq!(one.seen.lock().unwrap()[1].incident_kind, "down");
    h.stop().await;
}

#[tokio::test]
async fn a_failing_receiver_blocks_only_its_own_queue() {
    let slow = Fake::new("slow", false);
    let fast = Fake::new("fast", false);
    slow.failures
        .lock()
        .unwrap()
        .extend((0..3).map(|_| DeliveryError::retriable("boom")));
    let c = AlertingConfig {
        max_backoff: Duration::from_millis(300),
        ..AlertingConfig::default()
    };
    let h = fakes(c, &[&slow, &fast]);
    h.enqueue(&firing("a", "owa"));
    h.enqueue(&resolved("a", "owa"));
    h.enqueue(&firing("b", "smtp"));
    wait_until("fast got all three", WAIT, || async {
        fast.seen().len() == 3
    })
    .await;
    wait_until("slow got all three", WAIT, || async {
        slow.seen().len() == 3
    })
    .await;
    let order: Vec<_> = slow
        .seen()
        .into_iter()
        .filter(|(k, _, _)| k == "a")
        .map(|(_, s, _)| s)
        .collect();
    assert_eq!(order, [AlertStatus::Firing, AlertStatus::Resolved]);
    h.stop().await;
}

#[tokio::test]
async fn silences_hold_pages_and_release_them_when_they_end() {
    let rx = Fake::new("rx", false);
    let h = fakes(AlertingConfig::default(), &[&rx]);
    let now = Utc::now();
    let id = outbox::add_silence(
        &h.store,
        &outbox::Silence {
            id: 0,
            target: "owa".into(),
            starts_at: now - chrono::Duration::minutes(1),
            ends_at: now + chrono::Duration::hours(2),
            reason: "patching".into(),
            created_at: now,
            created_by: None,
            removed_at: None,
            removed_by: None,
            extensions: Vec::new(),
        },
    )
    .unwrap();
    // Held while silenced; another target pages as usual.
    assert!(matches!(h.enqueue(&firing("a", "owa")), Enqueued::Held(r) if r.contains("patching")));
    let held_since = |key: &str| {
        alert::stored::held_events(&h.store)
            .unwrap()
            .into_iter()
            .find(|e| e.incident_key == key)
            .and_then(|e| e.held)
            .map(|held| held.since)
    };
    let since = held_since("a").expect("the held page records since when");
    // An escalation while held keeps its latest details, and since when.
    let down = AlertEvent {
        incident_kind: "down".into(),
        ..firing("a", "owa")
    };
    assert!(matches!(h.enqueue(&down), Enqueued::Held(_)));
    assert_eq!(held_since("a"), Some(since));
    h.enqueue(&firing("b", "smtp"));
    // An incident that starts and ends inside the window pages nobody.
    assert!(matches!(h.enqueue(&firing("c", "owa")), Enqueued::Held(_)));
    assert_eq!(h.enqueue(&resolved("c", "owa")), Enqueued::Suppressed);
    // One held across a restart and recovered meanwhile is dropped by reconciliation.
    assert!(matches!(h.enqueue(&firing("d", "owa")), Enqueued::Held(_)));
    let done = alert::resolve_recovered(&h.store, &h.alerting, Utc::now(), |e| {
        (e.incident_key == "d").then(Utc::now)
    })
    .unwrap();
    assert_eq!(done, ["d"]);
    wait_until("smtp paged", WAIT, || async { rx.seen().len() == 1 }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.seen().len(), 1, "nothing for owa while silenced");
    assert!(h.scrape().contains("mailpulse_alerts_held 1"));
    // Per target too, for the Prometheus rules; smtp, not held, has no series.
    let scrape = h.scrape();
    assert!(
        scrape.contains("mailpulse_alerts_held_by_target{target=\"owa\"} 1"),
        "{scrape}"
    );
    assert!(!scrape.contains("target=\"smtp\""), "{scrape}");
    // The silence ends with incident a still open: it pages now.
    assert!(outbox::remove_silence(&h.store, id, Utc::now(), None).unwrap());
    wait_until("owa paged after the window", WAIT, || async {
        rx.seen().len() == 2
    })
    .await;
    wait_until("owa no longer held", WAIT, || async {
        !h.scrape().contains("mailpulse_alerts_held_by_target{")
    })
    .await;
    assert!(h.scrape().contains("mailpulse_alerts_held 0"));
    assert_eq!(rx.seen()[1], ("a".to_string(), AlertStatus::Firing, false));
    // The released page says it was held, by what and since when.
    let released = rx.seen.lock().unwrap()[1].clone();
    let held = released
        .held
        .clone()
        .expect("the released page says it was held");
    assert_eq!(held.by, format!("silence {id} (patching)"));
    assert_eq!(held.since, since);
    assert_eq!(released.incident_kind, "down", "the latest details");
    let annotations = alert::render::annotations(&released);
    assert_eq!(annotations["held_by"], held.by);
    assert_eq!(annotations["held_since"], alert::render::rfc3339(since));
    assert!(
        alert::render::description(&released).contains(&format!(
            "Held: by silence {id} (patching) since {} (paged when it ended)",
            alert::render::rfc3339(held.since)
        )),
        "{}",
        alert::render::description(&released)
    );
    h.enqueue(&resolved("a", "owa"));
    wait_until("owa resolved", WAIT, || async { rx.seen().len() == 3 }).await;
    h.stop().await;
}

#[tokio::test]
async fn configured_windows_hold_pages_too() {
    let rx = Fake::new("rx", false);
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let c = config(
        &format!(
            "[[maintenance]]\nname = \"now\"\ntargets = [\"owa\"]\nstart = \"{}\"\nend = \"{}\"\n",
            (now - chrono::Duration::minutes(1)).to_rfc3339(),
            (now + chrono::Duration::hours(1)).to_rfc3339()
        ),
        dir.path(),
    );
    let h = fakes(c, &[&rx]);
    assert_eq!(
        h.enqueue(&firing("a", "owa")),
        Enqueued::Held("maintenance window \"now\"".into())
    );
    h.stop().await;
}

#[tokio::test]
async fn open_incidents_get_reminders_except_at_stateful_receivers() {
    let chat = Fake::new("chat", false);
    let pager = Fake::new("pager", true);
    let c = AlertingConfig {
        repeat_interval: Some(Duration::from_secs(1)),
        ..AlertingConfig::default()
    };
    let h = fakes(c, &[&chat, &pager]);
    h.enqueue(&firing("a", "owa"));
    wait_until("two reminders", WAIT, || async {
        chat.seen().iter().filter(|(_, _, r)| *r).count() >= 2
    })
    .await;
    assert!(
        pager.seen().iter().all(|(_, _, r)| !r),
        "{:?}",
        pager.seen()
    );
    h.enqueue(&resolved("a", "owa"));
    wait_until("resolved", WAIT, || async {
        chat.seen().last().map(|s| s.1) == Some(AlertStatus::Resolved)
    })
    .await;
    let count = chat.seen().len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(chat.seen().len(), count, "no reminders after the resolve");
    h.stop().await;
}

#[tokio::test]
async fn grafana_redraws_a_region_whose_annotation_was_deleted() {
    let cap = HttpServer::receiver().await;
    cap.script([
        Reply::json(r#"{"message":"Annotation added","id":7}"#),
        Reply::status(404),
        Reply::json(r#"{"message":"Annotation added","id":8}"#),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let h = Delivery::from_config(config(
        &format!(
            "[[receiver]]\nname = \"gf\"\nkind = \"grafana\"\nurl = \"{}\"\n",
            cap.url("/")
        ),
        dir.path(),
    ));
    h.enqueue(&firing("inc2", "owa"));
    h.enqueue(&resolved("inc2", "owa"));
    cap.wait_accepted(2, WAIT).await;
    let r = cap.requests();
    let calls: Vec<(&str, &str, u16)> = r
        .iter()
        .map(|c| (c.method.as_str(), c.path.as_str(), c.answered))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "/api/annotations", 200),
            ("PATCH", "/api/annotations/7", 404),
            ("POST", "/api/annotations", 200)
        ]
    );
    let region = r[2].json();
    assert_eq!(
        region["timeEnd"],
        at("2026-12-05T02:24:08Z").timestamp_millis()
    );
    h.stop().await;
}

/// Issue 17: a soak phase's closing resent after a crash (delivered, but
/// the outbox never recorded it) patches the same region again instead of
/// posting a second one: the receiver keeps a phase's annotation id.
#[tokio::test]
async fn grafana_patches_a_resent_soak_phase_end_into_the_same_region() {
    let cap = HttpServer::receiver().await;
    cap.default_reply(Reply::json(r#"{"message":"Annotation added","id":7}"#));
    let dir = tempfile::tempdir().unwrap();
    let h = Delivery::from_config(config(
        &format!(
            "[[receiver]]\nname = \"gf\"\nkind = \"grafana\"\nurl = \"{}\"\n",
            cap.url("/")
        ),
        dir.path(),
    ));
    let t0 = at("2026-12-05T10:00:00Z");
    let soak =
        mailpulse::store::soak::start(&h.store, "golive", Some("baseline"), None, t0, 5).unwrap();
    let push = |e: &AlertEvent| {
        let payload = alert::stored::encode(e);
        h.store
            .write(|tx| outbox::push(tx, "gf", &e.incident_key, &payload, Utc::now()))
            .unwrap();
    };
    let begun = alert::phase_events("cas01", &soak).remove(0);
    assert!(begun.soak_phase && begun.status == AlertStatus::Firing);
    push(&begun);
    cap.wait_accepted(1, WAIT).await;
    let t1 = t0 + chrono::Duration::minutes(30);
    let soak = mailpulse::store::soak::phase(&h.store, "plateau", None, t1, 5).unwrap();
    let ended = alert::phase_events("cas01", &soak).remove(0);
    assert_eq!(ended.status, AlertStatus::Resolved);
    push(&ended);
    cap.wait_accepted(2, WAIT).await;
    push(&ended);
    let got = cap.wait_accepted(3, WAIT).await;
    let calls: Vec<(&str, &str)> = got
        .iter()
        .map(|c| (c.method.as_str(), c.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "/api/annotations"),
            ("PATCH", "/api/annotations/7"),
            ("PATCH", "/api/annotations/7")
        ]
    );
    assert_eq!(got[2].json()["timeEnd"], t1.timestamp_millis());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_to_max_backoff_in_virtual_time() {
    let clock = mailpulse::clock::TokioClock::starting_at(at("2026-12-05T00:00:00Z"));
    let rx = Fake::new("rx", false);
    rx.failures
        .lock()
        .unwrap()
        .extend((0..8).map(|_| DeliveryError::retriable("503")));
    let times = Arc::new(Mutex::new(Vec::new()));
    let c = AlertingConfig {
        max_backoff: Duration::from_secs(30),
        ..AlertingConfig::default()
    };
    let h = Delivery::with_receivers(c, vec![rx.clone() as Arc<dyn Receiver>], clock.clone());
    let started = tokio::time::Instant::now();
    alert::enqueue(&h.store, &h.alerting, &firing("a", "owa"), clock.now()).unwrap();
    let t = times.clone();
    let retried = || h.metrics.count("rx", NotificationResult::Retried);
    let mut last = 0;
    while rx.seen().is_empty() {
        let n = retried();
        if n != last {
            t.lock().unwrap().push(tokio::time::Instant::now());
            last = n;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "never delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(retried(), 8);
    let times = t.lock().unwrap().clone();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        // Full jitter under the cap (plus the polling step of this test).
        assert!(gap <= Duration::from_millis(30_200), "gap {gap:?}");
    }
    // Eight failures took virtual, not real, time.
    assert!(started.elapsed() > Duration::from_millis(800));
    h.stop().await;
}

// ---------------------------------------------------------------------------
// The commands, through the binary.
// ---------------------------------------------------------------------------

fn mailpulse(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mailpulse"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_alert_sends_a_marked_notification_and_reports_failures() {
    let cap = HttpServer::receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailpulse.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = \"state\"\ninstance = \"cas01\"\n[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n[[receiver]]\nname = \"pd\"\nkind = \"pagerduty\"\nurl = \"{}\"\nrouting_key_file = \"{}\"\n[[receiver]]\nname = \"dead\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\ntimeout = \"1s\"\n",
            cap.url("/hook"),
            cap.url("/pd"),
            secret(dir.path(), "pd.key", "K3Y")
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let out = mailpulse(&["test-alert", "--receiver", "hook", "--config", c]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(
            "sent a test notification to hook (webhook): [TEST] test-alert slow since"
        ),
        "{stdout}"
    );
    let hook = &cap.requests()[0];
    let body = hook.json();
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "MailpulseTest");
    assert_eq!(body["alerts"][0]["labels"]["instance"], "cas01");
    assert_eq!(body["alerts"][0]["annotations"]["test"], "true");
    // PagerDuty keeps an open alert: the test one is resolved right away.
    let out = mailpulse(&["test-alert", "--receiver", "pd", "--config", c]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pd: Vec<Value> = cap.requests()[1..].iter().map(|r| r.json()).collect();
    assert_eq!(pd[0]["event_action"], "trigger");
    assert_eq!(pd[0]["payload"]["severity"], "info");
    assert_eq!(pd[1]["event_action"], "resolve");
    assert_eq!(pd[0]["dedup_key"], pd[1]["dedup_key"]);
    assert!(pd[0]["dedup_key"]
        .as_str()
        .unwrap()
        .starts_with("mailpulse-test-"));
    // A dead receiver: exit 1 with the reason.
    let out = mailpulse(&["test-alert", "--receiver", "dead", "--config", c]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "test notification to dead (webhook) failed: cannot connect to http://127.0.0.1:9"
        ),
        "{stderr}"
    );
    // Test notifications leave the daemon's store alone.
    assert!(!dir.path().join("state").exists());
}

#[test]
fn silence_add_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailpulse.toml");
    std::fs::write(&config, "[agent]\nstate_dir = \"state\"\n").unwrap();
    let c = config.to_str().unwrap();
    let out = mailpulse(&[
        "silence",
        "add",
        "--target",
        "owa",
        "--for",
        "2h",
        "--reason",
        "patching CAS",
        "--config",
        c,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("silence 1 added: owa until "));
    let out = mailpulse(&["silence", "list", "--config", c]);
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        list.contains(" owa ") && list.contains("active") && list.contains("patching CAS"),
        "{list}"
    );
    // The daemon reads the same store.
    let store = Store::open(&dir.path().join("state")).unwrap();
    assert_eq!(outbox::silences(&store).unwrap()[0].target, "owa");
    drop(store);
    let out = mailpulse(&["silence", "remove", "1", "--config", c]);
    assert!(out.status.success());
    let out = mailpulse(&["silence", "remove", "1", "--config", c]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no silence with id 1"));
    let out = mailpulse(&[
        "silence", "add", "--for", "5 min", "--reason", "x", "--config", c,
    ]);
    assert_eq!(out.status.code(), Some(2), "clap rejects a bad duration");
}

/// Silences an on-call team can audit: who added (`--by`, else the login
/// name), extended and removed each one, kept for `silence list --all`; a
/// pattern that matches no configured target is stored with a warning.
#[test]
fn silences_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailpulse.toml");
    std::fs::write(
        &config,
        "[agent]\nstate_dir = \"state\"\n[[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"https://cas01.example.org/owa/\"\n[[target]]\nname = \"smtp-in\"\nkind = \"smtp\"\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(support::bin())
            .args(args)
            .args(["--config", c])
            .env_remove("SUDO_USER")
            .env("USER", "dave")
            .output()
            .unwrap()
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();

    // A typo: stored, with a warning on stderr.
    let out = run(&[
        "silence", "add", "--target", "owx", "--for", "2h", "--reason", "typo", "--by", "alice",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "warning: --target \"owx\" matches no configured target; the silence is stored anyway\n"
    );
    // A pattern that matches: no warning; the author defaults to the user.
    let out = run(&[
        "silence", "add", "--target", "ow*", "--for", "2h", "--reason", "patching",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");

    let store_ends = || {
        let store = Store::open(&dir.path().join("state")).unwrap();
        outbox::silences(&store).unwrap()
    };
    let before = store_ends();
    assert_eq!(before[0].created_by.as_deref(), Some("alice"));
    assert_eq!(before[1].created_by.as_deref(), Some("dave"));

    let out = run(&["silence", "extend", "2", "--by", "1h"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("silence 2 extended until "));
    let after = store_ends();
    assert_eq!(
        after[1].ends_at - before[1].ends_at,
        chrono::Duration::hours(1)
    );
    assert_eq!(after[1].extensions[0].by.as_deref(), Some("dave"));

    let out = run(&["silence", "remove", "1", "--by", "carol"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["silence", "extend", "1", "--by", "1h"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("silence 1 has ended or was removed"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["silence", "remove", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no silence with id 1 to remove: it was removed at ")
            && text(&out.stderr).contains(" by carol"),
        "{}",
        text(&out.stderr)
    );

    // The current list leaves the removed one out; --all shows the record.
    let list = text(&run(&["silence", "list"]).stdout);
    assert!(!list.contains(" typo"), "{list}");
    assert!(
        list.contains(" active   patching (by dave; extended at "),
        "{list}"
    );
    let all = text(&run(&["silence", "list", "--all"]).stdout);
    let removed = all
        .lines()
        .find(|l| l.contains(" typo"))
        .unwrap_or_default();
    assert!(removed.starts_with("1 "), "{all}");
    assert!(
        removed.contains(" removed  typo (by alice; removed at "),
        "{all}"
    );
    assert!(removed.ends_with(" by carol)"), "{all}");
}
