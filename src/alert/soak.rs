//! Soak-test phase boundaries for the `grafana` receivers: each phase of a
//! run becomes one annotation, a point at its start that turns into a region
//! when the phase ends (the next phase begins or the run ends), tagged
//! `mailpulse`, `soak`, `run:NAME`, `phase:NAME`. [`enqueue_phase_marks`]
//! queues the boundaries of a run in the durable outbox like incident alerts
//! (a phase's start as a firing event, its end as a resolve, under a key
//! stable per phase), for every configured `grafana` receiver and no other
//! kind, past routes, windows and silences (a phase mark pages nobody).
//! Which boundaries were queued for which receiver is kept in the same
//! commit (`receiver_state`, under `soak-mark:KEY`), so a restart, or the
//! daemon reading the same run again, never queues a boundary twice; the
//! receiver's stored annotation id makes a repeated delivery harmless.

use chrono::{DateTime, Utc};

use super::stored;
use super::{incident_key, AlertEvent, AlertStatus, Alerting};
use crate::store::outbox;
use crate::store::soak::Run;
use crate::store::{Store, StoreError};

/// The receiver kind phase boundaries go to.
const KIND: &str = "grafana";

/// What is stored per receiver and phase once its start was queued.
const BEGUN: &[u8] = b"begun";
/// What is stored per receiver and phase once its end was queued.
const ENDED: &[u8] = b"ended";

/// The stable key of a run's phase (its annotation's key in the outbox and
/// the receiver's state): the incident-key hash of instance, run, phase and
/// the phase's start.
pub fn phase_key(instance: &str, run: &str, phase: &str, started_at: DateTime<Utc>) -> String {
    incident_key(instance, run, &format!("soak-phase:{phase}"), started_at)
}

/// The events of `run`'s phases: one per phase, firing while it runs,
/// resolved (with its end) once it ended.
pub fn phase_events(instance: &str, run: &Run) -> Vec<AlertEvent> {
    run.phases
        .iter()
        .map(|p| AlertEvent {
            incident_key: phase_key(instance, &run.name, &p.name, p.started_at),
            status: if p.ended_at.is_some() {
                AlertStatus::Resolved
            } else {
                AlertStatus::Firing
            },
            reminder: false,
            test: false,
            instance: instance.to_string(),
            target: String::new(),
            probe_kind: String::new(),
            incident_kind: "soak-phase".to_string(),
            severity: "info".to_string(),
            started_at: p.started_at,
            detected_at: p.started_at,
            recovered_at: p.ended_at,
            peak_latency_seconds: None,
            baseline_latency_seconds: None,
            new_baseline_latency_seconds: None,
            current_latency_seconds: None,
            worst_phase: None,
            slow_count: 0,
            failed_count: 0,
            last_error: None,
            host: None,
            run: Some(run.name.clone()),
            phase: Some(p.name.clone()),
            held: None,
            soak_phase: true,
            window: None,
            beyond_tolerance: None,
            window_summary: None,
        })
        .collect()
}

/// Queues, in one durable commit, every boundary of `run`'s phases that no
/// `grafana` receiver has been queued yet: a phase's start, and its end once
/// it ended (a phase that ended before its start was queued is queued once,
/// as the whole region). Returns how many outbox entries were written.
pub fn enqueue_phase_marks(
    store: &Store,
    alerting: &Alerting,
    instance: &str,
    run: &Run,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let receivers: Vec<String> = alerting
        .receivers()
        .filter(|r| r.kind() == KIND)
        .map(|r| r.name().to_string())
        .collect();
    if receivers.is_empty() || run.phases.is_empty() {
        return Ok(0);
    }
    let events: Vec<(String, AlertEvent)> = phase_events(instance, run)
        .into_iter()
        .map(|e| (stored::encode(&e), e))
        .collect();
    let queued = store.write(|tx| {
        let mut queued = 0;
        for name in &receivers {
            for (payload, e) in &events {
                let mark = format!("soak-mark:{}", e.incident_key);
                let before = outbox::get_state_in(tx, name, &mark)?;
                let wanted = match e.status {
                    AlertStatus::Firing => BEGUN,
                    AlertStatus::Resolved => ENDED,
                };
                if before.as_deref() == Some(ENDED) || before.as_deref() == Some(wanted) {
                    continue;
                }
                outbox::push(tx, name, &e.incident_key, payload, now)?;
                outbox::put_state_in(tx, name, &mark, wanted)?;
                queued += 1;
            }
        }
        Ok(queued)
    })?;
    if queued > 0 {
        tracing::info!(run = %run.name, entries = queued, "soak phase boundaries queued for grafana");
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::soak;

    #[test]
    fn each_boundary_is_queued_once_per_grafana_receiver() {
        let store = Store::in_memory().unwrap();
        let config: crate::config::alerting::AlertingConfig = Default::default();
        struct Gf(&'static str, &'static str);
        impl super::super::Receiver for Gf {
            fn name(&self) -> &str {
                self.0
            }
            fn kind(&self) -> &'static str {
                self.1
            }
            fn send<'a>(
                &'a self,
                _: &'a AlertEvent,
            ) -> super::super::BoxFuture<'a, Result<(), super::super::DeliveryError>> {
                Box::pin(async { Ok(()) })
            }
        }
        let alerting = Alerting::with_receivers(
            config,
            vec![
                std::sync::Arc::new(Gf("gf", "grafana")),
                std::sync::Arc::new(Gf("hook", "webhook")),
            ],
        );
        let t0: DateTime<Utc> = "2026-12-05T10:00:00Z".parse().unwrap();
        let run = soak::start(&store, "r1", Some("baseline"), None, t0, 5).unwrap();
        assert_eq!(
            enqueue_phase_marks(&store, &alerting, "cas01", &run, t0).unwrap(),
            1
        );
        // Read again (the next poll, a restart): nothing new.
        assert_eq!(
            enqueue_phase_marks(&store, &alerting, "cas01", &run, t0).unwrap(),
            0
        );
        let t1 = t0 + chrono::Duration::minutes(30);
        let run = soak::phase(&store, "plateau", None, t1, 5).unwrap();
        // The baseline's end and the plateau's start.
        assert_eq!(
            enqueue_phase_marks(&store, &alerting, "cas01", &run, t1).unwrap(),
            2
        );
        let run = soak::end(&store, t1 + chrono::Duration::minutes(5), 5).unwrap();
        assert_eq!(
            enqueue_phase_marks(&store, &alerting, "cas01", &run, t1).unwrap(),
            1
        );
        assert_eq!(
            enqueue_phase_marks(&store, &alerting, "cas01", &run, t1).unwrap(),
            0
        );
        let rows = outbox::all_rows(&store).unwrap();
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.receiver == "gf"));
        let events: Vec<AlertEvent> = rows.iter().map(|r| stored::queued(r).unwrap()).collect();
        let baseline: Vec<_> = events
            .iter()
            .filter(|e| e.phase.as_deref() == Some("baseline"))
            .collect();
        assert_eq!(baseline.len(), 2);
        assert_eq!(baseline[0].incident_key, baseline[1].incident_key);
        assert!(events.iter().all(|e| e.soak_phase));
    }
}
