//! The `alertmanager` receiver against a real Alertmanager (Debian package
//! `prometheus-alertmanager`) on 127.0.0.1: a firing incident becomes an
//! active alert, stays fresh through re-posts, and disappears once resolved;
//! a target's second incident soon after its first is a second alert, which
//! the first one's re-posted resolve leaves firing; an escalation from slow
//! to down ends the slow alert as it posts the down one.
//!
//! Without the binary the test skips with a message, unless `CI` is set, in
//! which case it fails: CI must exercise the real peer (`support::alertmanager`).

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mailpulse::alert::alertmanager::{AlertmanagerReceiver, INCIDENT_LABEL};
use mailpulse::alert::{self, AlertEvent, Enqueued, Receiver, ReceiverContext};
use mailpulse::clock::{Clock, TokioClock};
use mailpulse::config::alerting::{parse, ReceiverSpec};
use mailpulse::store::Store;
use serde_json::Value;
use support::alertmanager::Alertmanager;
use support::delivery::{self, Delivery};

/// Polls `cond` (up to 20 s) until it yields a value.
async fn wait_for<F, Fut>(what: &str, am: &Alertmanager, cond: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let log = || {
        let text = std::fs::read_to_string(&am.log).unwrap_or_default();
        format!("alertmanager log:\n{text}")
    };
    support::wait_until_or(what, Duration::from_secs(20), log, cond).await
}

/// An `alertmanager` receiver (resend every minute) for `am`, driven
/// directly on a clock the test steps, its state stored under `dir`.
fn receiver_for(
    am: &Alertmanager,
    dir: &std::path::Path,
) -> (AlertmanagerReceiver, Arc<TokioClock>) {
    let config = parse(
        &format!(
            "[[receiver]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://{}\"\nresend_interval = \"1m\"\n",
            am.addr
        ),
        dir,
        "agent.test",
    )
    .unwrap();
    let ReceiverSpec::Alertmanager(spec) = &config.receivers[0].spec else {
        panic!("not an alertmanager receiver");
    };
    let clock = TokioClock::starting_at(Utc::now());
    let ctx = ReceiverContext {
        store: Store::open(&dir.join("state")).unwrap(),
        clock: clock.clone(),
        external_url: None,
    };
    let receiver = AlertmanagerReceiver::new(&config.receivers[0], spec, &ctx).unwrap();
    (receiver, clock)
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
    let d = Delivery::open(config, &dir.path().join("state"));

    let firing = AlertEvent {
        target: "owa".into(),
        detected_at: Utc::now() - chrono::Duration::seconds(30),
        slow_count: 3,
        ..delivery::slow("9a1b", Utc::now() - chrono::Duration::seconds(90))
    };
    assert_eq!(d.enqueue(&firing), Enqueued::Queued(vec!["am".into()]));
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

    d.enqueue(&delivery::resolved_at(
        &firing,
        Utc::now() - chrono::Duration::seconds(1),
    ));
    // Alertmanager lists only unresolved alerts: a resolved one drops out.
    wait_for("the alert to be resolved", &am, || async {
        match am.alert("owa").await {
            None => Some(Value::Null),
            Some(_) => None,
        }
    })
    .await;
    d.stop().await;
}

/// The flap seen on pagers: a target's incident resolves, a second one opens
/// a minute later, and the receiver re-posts the first one's resolve (for
/// `RESOLVED_RESEND`) besides the second one's firing. With the same labels,
/// each re-post overwrote the other in Alertmanager: resolved, firing,
/// resolved. The receiver is driven directly, so the first resolve is
/// re-posted alone, after the second incident fired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_incident_of_a_target_is_a_second_alert_the_old_resolve_leaves_alone() {
    let dir = tempfile::tempdir().unwrap();
    let Some(am) = Alertmanager::start_or_skip(dir.path()).await else {
        return;
    };
    let (receiver, clock) = receiver_for(&am, dir.path());

    let now = clock.now();
    let first = AlertEvent {
        target: "owa".into(),
        detected_at: now - chrono::Duration::seconds(150),
        ..delivery::slow("first", now - chrono::Duration::seconds(180))
    };
    let first_resolved = delivery::resolved_at(&first, now - chrono::Duration::seconds(60));
    let second = AlertEvent {
        target: "owa".into(),
        detected_at: now - chrono::Duration::seconds(5),
        ..delivery::slow("second", now - chrono::Duration::seconds(30))
    };
    receiver.send(&first).await.unwrap();
    let first_resolved_sent = clock.now();
    receiver.send(&first_resolved).await.unwrap();
    clock.step(chrono::Duration::seconds(10));
    receiver.send(&second).await.unwrap();
    let listed = am.alerts("owa").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(
        listed[0]["startsAt"].as_str().unwrap()[..19],
        alert::render::rfc3339(second.started_at)[..19]
    );

    // One resend interval after the first resolve: only it is due again.
    receiver
        .refresh(first_resolved_sent + chrono::Duration::seconds(65))
        .await;
    let listed = am.alerts("owa").await.unwrap();
    assert_eq!(
        listed.len(),
        1,
        "the second incident must still fire after the first one's resolve was re-posted: {listed:#?}"
    );
    assert_eq!(listed[0]["status"]["state"], "active", "{listed:#?}");
    assert_eq!(
        listed[0]["startsAt"].as_str().unwrap()[..19],
        alert::render::rfc3339(second.started_at)[..19]
    );
    assert_eq!(listed[0]["labels"][INCIDENT_LABEL], "second", "{listed:#?}");
}

/// An escalation from slow to down is posted under another `alertname`
/// (`MailpulseDown`): the same post ends the `MailpulseSlow` alert of that
/// incident at once. Before, the slow alert stayed active until its
/// `endsAt` (four resend intervals) and Alertmanager then reported it
/// resolved while the incident was down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_to_down_ends_the_slow_alert_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(am) = Alertmanager::start_or_skip(dir.path()).await else {
        return;
    };
    let (receiver, clock) = receiver_for(&am, dir.path());

    let now = clock.now();
    let slow = AlertEvent {
        target: "owa".into(),
        detected_at: now - chrono::Duration::seconds(60),
        ..delivery::slow("esc", now - chrono::Duration::seconds(90))
    };
    receiver.send(&slow).await.unwrap();
    let listed = am.alerts("owa").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["labels"]["alertname"], "MailpulseSlow");

    // The clock stays at the real time: Alertmanager takes an alert as
    // ended once its `endsAt` has passed on its own clock.
    let down = AlertEvent {
        incident_kind: "down".into(),
        ..slow.clone()
    };
    receiver.send(&down).await.unwrap();
    let listed = am.alerts("owa").await.unwrap();
    let names: Vec<&str> = listed
        .iter()
        .map(|a| a["labels"]["alertname"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["MailpulseDown"],
        "the slow alert must end with the escalation: {listed:#?}"
    );
    assert_eq!(listed[0]["labels"][INCIDENT_LABEL], "esc");

    // A re-post of the open incident is the down alert alone.
    receiver
        .refresh(clock.now() + chrono::Duration::seconds(65))
        .await;
    let listed = am.alerts("owa").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["labels"]["alertname"], "MailpulseDown");
}
