//! The delivery loop's periodic upkeep, every [`HOUSEKEEPING_INTERVAL`]:
//! expiry of notifications past `max_age`, release of pages held by windows
//! that ended, the summaries of change windows that ended, `repeat_interval`
//! reminders, the outbox gauges, and the count of stored alerts that do not
//! decode.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::routing::{held_by, route_and_push};
use super::stored::{self, HeldPage};
use super::summary::queue_window_summaries;
use super::{blocking, enqueue, AlertEvent, Alerting, Enqueued, Held};
use crate::detect::Incident;
use crate::metrics::alert::{AlertMetrics, NotificationResult};
use crate::store::{incidents, outbox};
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

/// Pages incidents whose maintenance window, silence or change window ended
/// while they stayed open: a held page goes out the target's `recover_for`
/// after what held it ended (noted in the page, so a restart keeps the
/// grace), with the incident's current figures from its saved detector
/// state. An incident that closed meanwhile is not paged (its resolve takes
/// the held page); one held again before the grace is over waits again.
pub fn release_held(
    store: &Store,
    alerting: &Alerting,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let held = stored::held(store)?;
    if held.is_empty() {
        return Ok(());
    }
    for HeldPage { key, event, .. } in held {
        let Some(mut event) = event else {
            store.write(|tx| outbox::take_held(tx, &key).map(|_| ()))?;
            continue;
        };
        let Some(mut mark) = event.held.clone() else {
            continue;
        };
        let holding = held_by(store, &alerting.config, &event.target, now, true)?;
        let saved = incidents::saved_open_incident(store, &event.target)?;
        let decision = release_decision(
            &mark,
            holding.is_some(),
            saved.as_ref().map(|(i, grace)| (i.as_ref(), *grace)),
            event.started_at,
            now,
        );
        match decision {
            Release::Wait => continue,
            Release::Mark(ended_at) => {
                mark.ended_at = ended_at;
                event.held = Some(mark);
                let payload = stored::encode(&event);
                store.write(|tx| {
                    // A resolve or a release may have taken it meanwhile.
                    if outbox::take_held(tx, &key)?.is_some() {
                        outbox::hold(tx, &key, &payload)?;
                    }
                    Ok(())
                })?;
                continue;
            }
            Release::Now => {}
        }
        if let Some((Some(i), _)) = &saved {
            refresh(&mut event, i);
        }
        let payload = stored::encode(&event);
        let names = store.write(|tx| {
            // A resolve may have taken it meanwhile: then there is nothing to page.
            if outbox::take_held(tx, &key)?.is_none() {
                return Ok(Vec::new());
            }
            route_and_push(tx, alerting, &event, &payload, now)
        })?;
        tracing::info!(target = %event.target, incident = %key, receivers = ?names, held_by = %mark.by, "what held the page ended with the incident still open; paging now");
    }
    Ok(())
}

/// What [`release_held`] does with one held page.
#[derive(Debug, PartialEq)]
enum Release {
    /// Nothing yet.
    Wait,
    /// Note in the page when what held it ended (`None`: it holds again).
    Mark(Option<DateTime<Utc>>),
    /// Page now.
    Now,
}

/// The decision for a held page `mark`, given whether something holds its
/// target now and the target's saved detector (its open incident and
/// `recover_for`; `None` when none is saved: no grace).
fn release_decision(
    mark: &Held,
    holding: bool,
    saved: Option<(Option<&Incident>, Duration)>,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Release {
    if holding {
        return match mark.ended_at {
            Some(_) => Release::Mark(None),
            None => Release::Wait,
        };
    }
    let grace = match saved {
        Some((None, _)) => return Release::Wait,
        Some((Some(i), _)) if i.started_at != started_at => return Release::Wait,
        Some((Some(_), grace)) => grace,
        None => Duration::ZERO,
    };
    let Some(ended_at) = mark.ended_at else {
        return if grace.is_zero() {
            Release::Now
        } else {
            Release::Mark(Some(now))
        };
    };
    if now >= ended_at + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX) {
        Release::Now
    } else {
        Release::Wait
    }
}

/// Puts the incident's current figures (as its saved detector has them)
/// into the page about to be released.
fn refresh(event: &mut AlertEvent, i: &Incident) {
    event.incident_kind = i.kind.as_str().to_string();
    event.detected_at = i.detected_at;
    event.peak_latency_seconds = i.peak_latency.map(|d| d.as_secs_f64());
    event.worst_phase = i.worst_phase.clone().or(event.worst_phase.take());
    event.slow_count = u64::from(i.slow_count);
    event.failed_count = u64::from(i.failed_count);
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

    fn at(s: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + i64::from(s), 0).unwrap()
    }

    fn incident(started_at: DateTime<Utc>) -> Incident {
        serde_json::from_value(serde_json::json!({
            "kind": "slow", "started_at": started_at, "detected_at": started_at,
            "recovered_at": null, "closed_at": null, "peak_latency": null,
            "baseline_at_onset": null, "worst_phase": null,
            "slow_count": 3, "failed_count": 0
        }))
        .unwrap()
    }

    /// A held page waits while held, then `recover_for` after its hold
    /// ended (noted once, kept across looks), and never for an incident
    /// that closed (or another one of the target).
    #[test]
    fn a_held_page_goes_out_recover_for_after_its_hold_ended() {
        let grace = Duration::from_secs(30);
        let open = incident(at(0));
        let saved = Some((Some(&open), grace));
        let mut mark = Held {
            by: "window batch1".into(),
            since: at(10),
            ended_at: None,
        };
        assert_eq!(
            release_decision(&mark, true, saved, at(0), at(20)),
            Release::Wait
        );
        assert_eq!(
            release_decision(&mark, false, saved, at(0), at(100)),
            Release::Mark(Some(at(100)))
        );
        mark.ended_at = Some(at(100));
        assert_eq!(
            release_decision(&mark, false, saved, at(0), at(129)),
            Release::Wait
        );
        assert_eq!(
            release_decision(&mark, false, saved, at(0), at(130)),
            Release::Now
        );
        // Held again inside the grace: the end is forgotten.
        assert_eq!(
            release_decision(&mark, true, saved, at(0), at(110)),
            Release::Mark(None)
        );
        // Recovered (no open incident), or a newer incident: never paged here.
        let over = Some((None, grace));
        assert_eq!(
            release_decision(&mark, false, over, at(0), at(500)),
            Release::Wait
        );
        let newer = incident(at(300));
        let other = Some((Some(&newer), grace));
        assert_eq!(
            release_decision(&mark, false, other, at(0), at(500)),
            Release::Wait
        );
        // No saved detector (a target removed): no grace, as before.
        mark.ended_at = None;
        assert_eq!(
            release_decision(&mark, false, None, at(0), at(100)),
            Release::Now
        );
        // A zero grace pages at once.
        let zero = Some((Some(&open), Duration::ZERO));
        assert_eq!(
            release_decision(&mark, false, zero, at(0), at(100)),
            Release::Now
        );
    }

    /// The released page carries the incident as it is now, not as it was
    /// when its page was held.
    #[test]
    fn a_released_page_takes_the_incidents_current_figures() {
        let mut event = crate::alert::tests::sample_event();
        let mut v = serde_json::to_value(incident(event.started_at)).unwrap();
        v["kind"] = "down".into();
        let mut now: Incident = serde_json::from_value(v).unwrap();
        now.slow_count = 40;
        now.failed_count = 12;
        now.peak_latency = Some(Duration::from_millis(9100));
        refresh(&mut event, &now);
        assert_eq!(event.incident_kind, "down");
        assert_eq!((event.slow_count, event.failed_count), (40, 12));
        assert_eq!(event.peak_latency_seconds, Some(9.1));
        assert_eq!(
            event.worst_phase.as_deref(),
            Some("first_byte"),
            "kept when unknown now"
        );
    }

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
