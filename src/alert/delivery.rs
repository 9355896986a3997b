//! The delivery loop: drains the durable outbox into the receivers. It hands
//! the first entry of every `(receiver, incident)` group to its receiver,
//! records the outcome (removed when delivered or refused for good,
//! rescheduled with backoff when retriable), and runs the periodic
//! housekeeping of [`super`] (expiry, held-page release, reminders, receiver
//! refresh). Routing and the outbox writes of new alerts are `super::enqueue`'s.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{
    backoff, blocking, housekeeping, AlertEvent, Alerting, DeliveryError, Receiver,
    HOUSEKEEPING_INTERVAL,
};
use crate::clock::Clock;
use crate::metrics::alert::{AlertMetrics, NotificationResult};
use crate::store::outbox::{self, OutboxEntry};
use crate::store::Store;

/// Attempts in flight at once, across all receivers.
pub const MAX_IN_FLIGHT: usize = 16;
/// How long shutdown waits for attempts in flight before abandoning them (they
/// stay in the outbox and are sent again after a restart).
pub const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// Margin on top of a receiver's own timeout before an attempt is abandoned.
const ATTEMPT_MARGIN: Duration = Duration::from_secs(5);

/// What a finished task of the delivery loop reports.
enum Done {
    Attempt {
        entry: OutboxEntry,
        result: Result<(), DeliveryError>,
    },
    Refresh(String),
}

/// The delivery loop: drains the outbox until `token` is cancelled, then
/// waits up to [`DRAIN_GRACE`] for attempts in flight. Also expires old
/// entries, releases alerts held by windows that ended, sends reminders and
/// lets receivers refresh, every [`HOUSEKEEPING_INTERVAL`].
pub async fn run_delivery(
    store: Store,
    alerting: Arc<Alerting>,
    metrics: AlertMetrics,
    token: CancellationToken,
    clock: Arc<dyn Clock>,
) {
    for r in alerting.receivers() {
        metrics.add_receiver(r.name());
    }
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let mut busy: HashSet<(String, String)> = HashSet::new();
    let mut refreshing: HashSet<String> = HashSet::new();
    let mut unknown_logged: HashSet<String> = HashSet::new();
    let mut next_housekeeping = tokio::time::Instant::now();
    loop {
        if token.is_cancelled() {
            break;
        }
        // Register for change notifications before looking, so a write made
        // while we look still wakes us.
        let changed = store.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();

        let now = clock.now();
        if tokio::time::Instant::now() >= next_housekeeping {
            next_housekeeping = tokio::time::Instant::now() + HOUSEKEEPING_INTERVAL;
            housekeeping(&store, &alerting, &metrics, now).await;
            for r in alerting.receivers() {
                if refreshing.insert(r.name().to_string()) {
                    let r = r.clone();
                    tasks.spawn(async move {
                        let name = r.name().to_string();
                        if let Err(why) = contained(async move { r.refresh(now).await }).await {
                            tracing::error!(receiver = %name, error = %why, "receiver refresh failed");
                        }
                        Done::Refresh(name)
                    });
                }
            }
        }

        let snapshot = busy.clone();
        let due = match blocking(&store, move |s| outbox::due(s, now, &snapshot)).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the alert outbox");
                outbox::Due::default()
            }
        };
        let next_at = due.next_at;
        for entry in due.ready {
            if tasks.len() >= MAX_IN_FLIGHT + refreshing.len() {
                // At capacity: a finishing attempt wakes the loop.
                break;
            }
            let Some(receiver) = alerting.receiver(&entry.receiver).cloned() else {
                if unknown_logged.insert(entry.receiver.clone()) {
                    tracing::warn!(receiver = %entry.receiver, "outbox holds notifications for a receiver no longer configured; they expire after max_age");
                }
                continue;
            };
            busy.insert(entry.group());
            let deadline = alerting
                .config
                .receiver(&entry.receiver)
                .map_or(crate::config::alerting::DEFAULT_RECEIVER_TIMEOUT, |rc| {
                    rc.timeout
                })
                + ATTEMPT_MARGIN;
            let metrics = metrics.clone();
            tasks.spawn(async move {
                let sent = entry.clone();
                let result = contained(async move {
                    attempt(receiver.as_ref(), &sent, deadline, &metrics).await
                })
                .await
                // A bug in a receiver: retried with backoff like any failure,
                // so the group keeps its order and nothing is lost.
                .unwrap_or_else(|why| {
                    Err(DeliveryError::retriable(format!("receiver failed: {why}")))
                });
                Done::Attempt { entry, result }
            });
        }

        let wait = next_at
            .map(|t| (t - clock.now()).to_std().unwrap_or_default())
            .unwrap_or(HOUSEKEEPING_INTERVAL)
            .min(next_housekeeping.saturating_duration_since(tokio::time::Instant::now()));
        tokio::select! {
            _ = token.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                finish(&store, &alerting, &metrics, &clock, &mut busy, &mut refreshing, done).await;
            }
            _ = &mut changed => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Drain: let attempts in flight finish so their outcome is recorded; an
    // attempt cut off here stays in the outbox and is sent again after a restart.
    let drain = async {
        while let Some(done) = tasks.join_next().await {
            finish(
                &store,
                &alerting,
                &metrics,
                &clock,
                &mut busy,
                &mut refreshing,
                done,
            )
            .await;
        }
    };
    if tokio::time::timeout(DRAIN_GRACE, drain).await.is_err() {
        tracing::warn!(
            in_flight = tasks.len(),
            "alert deliveries still running at shutdown; they will be retried after a restart"
        );
        tasks.abort_all();
    }
}

/// Runs `work` as a task of its own, so that a panic in it (a bug in a
/// receiver) comes back here as an error with its message instead of ending
/// the task that holds the outbox entry. The task is aborted if the caller is.
async fn contained<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let task = tokio::spawn(work);
    let _guard = AbortOnDrop(task.abort_handle());
    task.await.map_err(|e| {
        if !e.is_panic() {
            return "cancelled".to_string();
        }
        let payload = e.into_panic();
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .map_or_else(|| "panicked".to_string(), |m| format!("panicked: {m}"))
    })
}

/// One attempt: decodes the payload and sends it under a deadline.
async fn attempt(
    receiver: &dyn Receiver,
    entry: &OutboxEntry,
    deadline: Duration,
    metrics: &AlertMetrics,
) -> Result<(), DeliveryError> {
    let event: AlertEvent = serde_json::from_str(&entry.payload)
        .map_err(|e| DeliveryError::permanent(format!("undecodable outbox payload: {e}")))?;
    let started = tokio::time::Instant::now();
    let result = match tokio::time::timeout(deadline, receiver.send(&event)).await {
        Ok(r) => r,
        Err(_) => Err(DeliveryError::retriable(format!(
            "no answer within {}",
            crate::config::HumanDuration(deadline)
        ))),
    };
    metrics.observe_duration(receiver.name(), started.elapsed().as_secs_f64());
    result
}

/// Records the outcome of a finished task in the store, the metrics and the log.
async fn finish(
    store: &Store,
    alerting: &Alerting,
    metrics: &AlertMetrics,
    clock: &Arc<dyn Clock>,
    busy: &mut HashSet<(String, String)>,
    refreshing: &mut HashSet<String>,
    done: Result<Done, tokio::task::JoinError>,
) {
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            // A receiver's panic is caught inside its task (`contained`).
            // Should the task itself fail, its group stays busy until restart
            // rather than being sent out of order.
            tracing::error!(error = %e, "alert delivery task failed");
            return;
        }
    };
    let (entry, result) = match done {
        Done::Refresh(name) => {
            refreshing.remove(&name);
            return;
        }
        Done::Attempt { entry, result } => (entry, result),
    };
    let receiver = entry.receiver.clone();
    let group = entry.group();
    let outcome = match result {
        Ok(()) => {
            metrics.record(&receiver, NotificationResult::Delivered);
            tracing::info!(receiver = %receiver, incident = %entry.incident_key, attempts = entry.attempts + 1, "notification delivered");
            let e = entry.clone();
            blocking(store, move |s| outbox::remove(s, &e).map(|_| ())).await
        }
        Err(DeliveryError::Permanent { message }) => {
            metrics.record(&receiver, NotificationResult::Failed);
            tracing::error!(receiver = %receiver, incident = %entry.incident_key, error = %message, "notification refused; dropped");
            let e = entry.clone();
            blocking(store, move |s| outbox::remove(s, &e).map(|_| ())).await
        }
        Err(DeliveryError::Retriable {
            message,
            retry_after,
        }) => {
            metrics.record(&receiver, NotificationResult::Retried);
            let delay = backoff(entry.attempts + 1, alerting.config.max_backoff, retry_after);
            let next_at = clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
            tracing::warn!(
                receiver = %receiver,
                incident = %entry.incident_key,
                attempt = entry.attempts + 1,
                retry_in_ms = delay.as_millis() as u64,
                error = %message,
                "notification failed; will retry"
            );
            let e = entry.clone();
            blocking(store, move |s| {
                outbox::reschedule(s, &e, next_at, &message).map(|_| ())
            })
            .await
        }
    };
    if let Err(e) = outcome {
        tracing::error!(error = %e, "cannot record a delivery outcome in the outbox");
    }
    busy.remove(&group);
}
