//! A receiver that is down for an hour, in paused (accelerated) time: it
//! answers 503 or refuses, alternately, while incidents open and close; when
//! it comes back every notification arrives exactly once, each incident's
//! firing before its resolved, none expired, the outbox empty, and the
//! retries during the hour were paced by the backoff (no hot loop).

use crate::support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailpulse::alert::{AlertEvent, AlertStatus, BoxFuture, DeliveryError, Receiver};
use mailpulse::clock::{Clock as _, TokioClock};
use mailpulse::config::alerting::AlertingConfig;
use mailpulse::store::outbox;
use support::delivery::{self, Delivery};

/// How long the receiver is down, in virtual time.
const OUTAGE: Duration = Duration::from_secs(3600);
/// Incidents opened (and closed) during the outage.
const INCIDENTS: usize = 6;

/// A receiver that fails while `down`, alternating 503 and a refused connection.
struct Flaky {
    down: AtomicBool,
    attempts: AtomicU64,
    seen: Mutex<Vec<(String, AlertStatus)>>,
}

impl Receiver for Flaky {
    fn name(&self) -> &str {
        "hook"
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn stateful(&self) -> bool {
        false
    }

    fn send<'a>(&'a self, e: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let n = self.attempts.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) {
                return Err(DeliveryError::retriable(if n.is_multiple_of(2) {
                    "HTTP 503"
                } else {
                    "connection refused"
                }));
            }
            self.seen
                .lock()
                .unwrap()
                .push((e.incident_key.clone(), e.status));
            Ok(())
        })
    }
}

/// Incident `key` of this test, firing or resolved.
fn event(key: &str, status: AlertStatus, started: DateTime<Utc>) -> AlertEvent {
    let e = delivery::slow(key, started);
    match status {
        AlertStatus::Firing => e,
        AlertStatus::Resolved => delivery::resolved_at(&e, started + chrono::Duration::minutes(3)),
    }
}

#[tokio::test(start_paused = true)]
async fn a_receiver_down_for_an_hour_gets_every_notification_once_in_order() {
    let _busy = support::busy();
    let clock = TokioClock::starting_at("2026-12-05T00:00:00Z".parse().unwrap());
    let rx = Arc::new(Flaky {
        down: AtomicBool::new(true),
        attempts: AtomicU64::new(0),
        seen: Mutex::default(),
    });
    let d = Delivery::with_receivers(
        AlertingConfig::default(),
        vec![rx.clone() as Arc<dyn Receiver>],
        clock.clone(),
    );

    // Through the hour: an incident opens every ten minutes and closes
    // six minutes later, all while the receiver is down.
    let start = tokio::time::Instant::now();
    let step = OUTAGE / (INCIDENTS as u32 * 5);
    let mut open: Vec<(String, DateTime<Utc>, u32)> = Vec::new();
    for tick in 0..(INCIDENTS as u32 * 5) {
        if tick.is_multiple_of(5) {
            let key = format!("i{:02}", tick / 5);
            let e = event(&key, AlertStatus::Firing, clock.now());
            d.enqueue(&e);
            open.push((key, e.started_at, tick));
        }
        open.retain(|(key, started, opened)| {
            if tick - opened < 3 {
                return true;
            }
            let e = event(key, AlertStatus::Resolved, *started);
            d.enqueue(&e);
            false
        });
        tokio::time::sleep(step).await;
    }
    for (key, started, _) in open.drain(..) {
        let e = event(&key, AlertStatus::Resolved, started);
        d.enqueue(&e);
    }
    assert!(start.elapsed() >= OUTAGE);
    assert!(rx.seen.lock().unwrap().is_empty());
    let attempts_in_outage = rx.attempts.load(Ordering::Relaxed);

    // Back up: everything arrives within a few (virtual) minutes.
    rx.down.store(false, Ordering::Relaxed);
    support::wait_until_or(
        "every notification",
        Duration::from_secs(600),
        || format!("delivered: {:?}", rx.seen.lock().unwrap()),
        || async { rx.seen.lock().unwrap().len() >= INCIDENTS * 2 },
    )
    .await;
    // Anything extra would arrive now.
    tokio::time::sleep(Duration::from_secs(300)).await;

    let seen = rx.seen.lock().unwrap().clone();
    let mut per_incident: BTreeMap<&str, Vec<AlertStatus>> = BTreeMap::new();
    for (key, status) in &seen {
        per_incident.entry(key).or_default().push(*status);
    }
    assert_eq!(per_incident.len(), INCIDENTS, "{seen:?}");
    for (key, statuses) in &per_incident {
        assert_eq!(
            statuses,
            &[AlertStatus::Firing, AlertStatus::Resolved],
            "incident {key}: {seen:?}"
        );
    }
    assert_eq!(outbox::stats(&d.store).unwrap().pending, 0);
    // Paced by the backoff (full jitter, capped at a minute by default): a
    // hot loop would make thousands of attempts per notification.
    let per_head = attempts_in_outage as f64 / INCIDENTS as f64;
    eprintln!(
        "outage: {} notifications, {attempts_in_outage} attempts during the hour \
         ({per_head:.0} per incident)",
        seen.len()
    );
    assert!(attempts_in_outage >= INCIDENTS as u64, "it kept retrying");
    assert!(per_head < 200.0, "{attempts_in_outage} attempts: not paced");
    d.stop().await;
}
