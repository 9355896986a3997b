//! Reconciliation of alerting with the incidents: the repair of the gap a
//! crash can leave between saving an incident and queuing its alert, in both
//! directions, at start-up and whenever the store moves to another file.
//! [`reconcile`] is the one entry point (the pipeline calls it);
//! [`resolve_recovered`] is its outbox half.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::stored;
use super::{enqueue, incident_key, AlertEvent, AlertStatus, Alerting, Enqueued, IncidentContext};
use crate::incident::Incidents;
use crate::store::{incidents as history, Store, StoreError};

/// Repair of the gap a crash can leave between saving an incident and
/// queuing its alert, at start-up and whenever the store moves to another
/// file (whose outbox may say otherwise than the detectors), in both
/// directions:
/// - an alert still firing whose incident is no longer open (it closed, or
///   its target is gone) gets its resolve, at the recorded recovery time;
/// - an incident open in its detector whose alert never made it to the
///   outbox gets its firing alert.
pub fn reconcile(
    store: &Store,
    alerting: &Alerting,
    incidents: &Incidents,
    instance: &str,
    kinds: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let recorded = history::history(store, history::MAX_HISTORY as usize)?;
    let candidates = still_open(store)?;
    let known: HashSet<String> = candidates.iter().map(|e| e.incident_key.clone()).collect();
    resolve(store, alerting, now, candidates, |event| {
        let still_open = incidents
            .detector(&event.target)
            .and_then(|d| d.open_incident())
            .is_some_and(|i| i.started_at == event.started_at);
        if still_open {
            return None;
        }
        let recovered = recorded
            .iter()
            .find(|r| r.target == event.target && r.incident.started_at == event.started_at)
            .and_then(|r| r.incident.recovered_at);
        Some(recovered.unwrap_or(now))
    })?;
    for (target, detector) in incidents.detectors() {
        let Some(incident) = detector.open_incident() else {
            continue;
        };
        // The kind is part of the incident key: without it the key would be
        // another incident's. Every configured target has one.
        let Some(probe_kind) = kinds.get(target).cloned() else {
            continue;
        };
        let key = incident_key(instance, target, &probe_kind, incident.started_at);
        if known.contains(&key) {
            continue;
        }
        let ctx = IncidentContext {
            instance: instance.to_string(),
            target: target.to_string(),
            probe_kind,
            severity: alerting.config.severity_for(target).to_string(),
            current_latency_seconds: None,
            last_error: None,
            host: None,
        };
        tracing::info!(target, started_at = %incident.started_at, "queuing the alert of an incident opened before the restart");
        enqueue(
            store,
            alerting,
            &AlertEvent::from_incident(incident, ctx),
            now,
        )?;
    }
    Ok(())
}

/// The outbox half of [`reconcile`]: for every incident alerting still
/// considers open (paged, or held by a window), `recovered` says whether it
/// is over (`Some(recovery time)`) or still open (`None`); each one that is
/// over gets its resolve enqueued (a held one is simply dropped). Returns the
/// keys resolved. Call it once the incident state is loaded, before new events.
pub fn resolve_recovered(
    store: &Store,
    alerting: &Alerting,
    now: DateTime<Utc>,
    recovered: impl FnMut(&AlertEvent) -> Option<DateTime<Utc>>,
) -> Result<Vec<String>, StoreError> {
    resolve(store, alerting, now, still_open(store)?, recovered)
}

/// Every incident alerting still considers open: paged ones first, then
/// those whose page a window holds (left alone, one that recovered meanwhile
/// would page when the window ends).
fn still_open(store: &Store) -> Result<Vec<AlertEvent>, StoreError> {
    let mut events = stored::open_incidents(store)?;
    events.extend(stored::held_events(store)?);
    Ok(events)
}

/// Enqueues the resolve of each of `candidates` that `recovered` says is over.
fn resolve(
    store: &Store,
    alerting: &Alerting,
    now: DateTime<Utc>,
    candidates: Vec<AlertEvent>,
    mut recovered: impl FnMut(&AlertEvent) -> Option<DateTime<Utc>>,
) -> Result<Vec<String>, StoreError> {
    let mut resolved = Vec::new();
    for mut event in candidates {
        let Some(at) = recovered(&event) else {
            continue;
        };
        event.status = AlertStatus::Resolved;
        event.reminder = false;
        event.recovered_at = Some(at);
        match enqueue(store, alerting, &event, now)? {
            Enqueued::Queued(_) | Enqueued::Suppressed => {
                tracing::info!(target = %event.target, incident = %event.incident_key, "incident recovered while the agent was down; resolving");
                resolved.push(event.incident_key);
            }
            _ => {}
        }
    }
    Ok(resolved)
}
