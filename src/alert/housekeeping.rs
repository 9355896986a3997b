//! The delivery loop's periodic upkeep, every [`HOUSEKEEPING_INTERVAL`]:
//! expiry of notifications past `max_age`, release of pages held by windows
//! that ended, the summaries of change windows that ended, `repeat_interval`
//! reminders, the outbox gauges, and the count of stored alerts that do not
//! decode.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::routing::{route_and_push, silenced_by};
use super::stored::{self, HeldPage};
use super::summary::queue_window_summaries;
use super::{blocking, enqueue, Alerting, Enqueued};
use crate::metrics::alert::{AlertMetrics, NotificationResult};
use crate::store::outbox;
use crate::store::{Store, StoreError};

/// How often the loop expires old entries, releases held alerts, sends
/// reminders, refreshes receivers and updates the gauges; also the longest it
/// sleeps without looking at the store (writes of other processes are not signalled).
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// Expiry, held-alert release, reminders, gauges and the bad-payload count.
pub(super) async fn housekeeping(
    store: &Store,
    alerting: &Arc<Alerting>,
    metrics: &AlertMetrics,
    now: DateTime<Utc>,
) {
    let max_age = alerting.config.max_age;
    match blocking(store, move |s| outbox::expire(s, now, max_age)).await {
        Ok(expired) => {
            let log: Vec<_> = expired
                .iter()
                .filter_map(|e| super::delivery::sent_row(e, "expired", now, None))
                .collect();
            if !log.is_empty() {
                if let Err(e) = blocking(store, move |s| outbox::sent::log(s, &log)).await {
                    tracing::warn!(error = %e, "cannot log expired notifications for the status page");
                }
            }
            for e in expired {
                metrics.record(&e.receiver, NotificationResult::Expired);
                tracing::error!(
                    receiver = %e.receiver,
                    incident = %e.incident_key,
                    attempts = e.attempts,
                    last_error = e.last_error.as_deref().unwrap_or("none"),
                    "notification undelivered after max_age; given up"
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot expire old notifications"),
    }
    let a = alerting.clone();
    if let Err(e) = blocking(store, move |s| queue_window_summaries(s, &a, now)).await {
        tracing::error!(error = %e, "cannot queue the summaries of change windows that ended");
    }
    let a = alerting.clone();
    let result = blocking(store, move |s| {
        release_held(s, &a, now)?;
        send_reminders(s, &a, now)?;
        let mut per_target = std::collections::BTreeMap::<String, usize>::new();
        for e in stored::held_events(s)? {
            *per_target.entry(e.target).or_default() += 1;
        }
        Ok((outbox::stats(s)?, outbox::held(s)?.len(), per_target))
    })
    .await;
    match result {
        Ok((stats, held, per_target)) => {
            metrics.outbox_pending.set(stats.pending as i64);
            metrics.outbox_oldest_age.set(
                stats
                    .oldest_created_at
                    .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0),
            );
            metrics.set_held(held, &per_target);
        }
        Err(e) => tracing::error!(error = %e, "alert housekeeping failed"),
    }
    metrics.count_bad_payloads(stored::bad_payloads());
}

/// Pages incidents whose maintenance window ended while they stayed open.
fn release_held(store: &Store, alerting: &Alerting, now: DateTime<Utc>) -> Result<(), StoreError> {
    let held = stored::held(store)?;
    if held.is_empty() {
        return Ok(());
    }
    let silences = outbox::silences(store)?;
    for HeldPage {
        key,
        payload,
        event,
    } in held
    {
        let Some(event) = event else {
            store.write(|tx| outbox::take_held(tx, &key).map(|_| ()))?;
            continue;
        };
        if silenced_by(&alerting.config, &silences, &event.target, now).is_some() {
            continue;
        }
        let names = store.write(|tx| {
            // A resolve may have taken it meanwhile: then there is nothing to page.
            if outbox::take_held(tx, &key)?.is_none() {
                return Ok(Vec::new());
            }
            route_and_push(tx, alerting, &event, &payload, now)
        })?;
        tracing::info!(target = %event.target, incident = %key, receivers = ?names, "maintenance ended with the incident open; paging now");
    }
    Ok(())
}

/// Enqueues a reminder for every open incident not paged for `repeat_interval`.
fn send_reminders(
    store: &Store,
    alerting: &Alerting,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(every) = alerting.config.repeat_interval else {
        return Ok(());
    };
    let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
    for record in outbox::open_records(store)? {
        if record.last_notified_at + every > now {
            continue;
        }
        let Some(mut event) = stored::open_event(&record) else {
            continue;
        };
        event.reminder = true;
        let outcome = enqueue(store, alerting, &event, now)?;
        if matches!(outcome, Enqueued::Queued(_)) {
            tracing::info!(target = %event.target, incident = %event.incident_key, "reminder of an open incident");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerting::AlertingConfig;

    #[tokio::test]
    async fn a_held_page_that_does_not_decode_is_dropped_and_counted() {
        let store = Store::in_memory().unwrap();
        store
            .write(|tx| outbox::hold(tx, "bad-held-page", "{\"incident_key\": [garbage"))
            .unwrap();
        let alerting = Arc::new(Alerting::with_receivers(
            AlertingConfig::default(),
            Vec::new(),
        ));
        let metrics = AlertMetrics::register(&prometheus::Registry::new()).unwrap();
        housekeeping(&store, &alerting, &metrics, Utc::now()).await;
        assert!(
            outbox::held(&store).unwrap().is_empty(),
            "dropped, as before"
        );
        assert_eq!(metrics.held.get(), 0);
        assert!(metrics.bad_payloads() >= 1);
    }
}
