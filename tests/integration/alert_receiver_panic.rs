//! A receiver with a bug: it panics on some notifications and in its
//! periodic refresh. The panic is retried like any failure: the notification
//! arrives once it stops panicking, its group keeps its order, other groups
//! are not held up, and refreshes go on.

use crate::support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailpulse::alert::{AlertEvent, AlertStatus, BoxFuture, DeliveryError, Receiver};
use mailpulse::clock::{Clock as _, TokioClock};
use mailpulse::config::alerting::AlertingConfig;
use mailpulse::store::outbox;
use support::delivery::{self, Delivery};

/// Panics on the first `panics` attempts for incident `a`, and in every refresh.
struct Buggy {
    panics: u64,
    attempts_a: AtomicU64,
    refreshes: AtomicU64,
    seen: Mutex<Vec<(String, AlertStatus)>>,
}

impl Receiver for Buggy {
    fn name(&self) -> &str {
        "hook"
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, e: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            if e.incident_key == "a"
                && self.attempts_a.fetch_add(1, Ordering::Relaxed) < self.panics
            {
                panic!("a receiver bug");
            }
            self.seen
                .lock()
                .unwrap()
                .push((e.incident_key.clone(), e.status));
            Ok(())
        })
    }

    fn refresh(&self, _now: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.refreshes.fetch_add(1, Ordering::Relaxed);
            panic!("a refresh bug");
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_receiver_is_retried_in_order_and_holds_up_nothing_else() {
    let clock = TokioClock::starting_at("2026-12-05T00:00:00Z".parse().unwrap());
    let rx = Arc::new(Buggy {
        panics: 3,
        attempts_a: AtomicU64::new(0),
        refreshes: AtomicU64::new(0),
        seen: Mutex::default(),
    });
    let d = Delivery::with_receivers(
        AlertingConfig::default(),
        vec![rx.clone() as Arc<dyn Receiver>],
        clock.clone(),
    );

    let now = clock.now();
    let a = delivery::slow("a", now);
    for e in [
        a.clone(),
        delivery::slow("b", now),
        delivery::resolved_at(&a, now),
    ] {
        d.enqueue(&e);
    }
    support::wait_until_or(
        "three notifications",
        Duration::from_secs(600),
        || format!("delivered: {:?}", rx.seen.lock().unwrap()),
        || async { rx.seen.lock().unwrap().len() >= 3 },
    )
    .await;
    // Anything extra would arrive now.
    tokio::time::sleep(Duration::from_secs(120)).await;

    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            ("b".to_string(), AlertStatus::Firing),
            ("a".to_string(), AlertStatus::Firing),
            ("a".to_string(), AlertStatus::Resolved),
        ],
        "b is not held up by a, and a keeps its order"
    );
    assert_eq!(
        rx.attempts_a.load(Ordering::Relaxed),
        3 + 2,
        "each of a's sent once it worked"
    );
    assert_eq!(outbox::stats(&d.store).unwrap().pending, 0);
    // Refresh runs every housekeeping interval, panic or not.
    let refreshes = rx.refreshes.load(Ordering::Relaxed);
    assert!(
        refreshes >= 100,
        "refresh stopped after a panic: {refreshes}"
    );
    assert!(d.is_running(), "the delivery loop ended");
    d.stop().await;
}
