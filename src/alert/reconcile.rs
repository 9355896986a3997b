//! Start-up reconciliation of alerting with the incidents: resolves what
//! alerting still considers open once the incident layer says it is over.

use chrono::{DateTime, Utc};

use super::{enqueue, AlertEvent, AlertStatus, Alerting, Enqueued};
use crate::store::outbox;
use crate::store::{Store, StoreError};

/// The incidents alerting has paged and not yet resolved, with their latest
/// firing event (pages held by a window are not included). At start-up,
/// [`reconcile`] resolves those the incident layer no longer considers open.
pub fn open_incidents(store: &Store) -> Result<Vec<AlertEvent>, StoreError> {
    Ok(outbox::open_records(store)?
        .into_iter()
        .filter_map(|r| serde_json::from_str(&r.payload).ok())
        .collect())
}

/// Start-up reconciliation: for every incident alerting still considers open
/// (paged, or held by a window), `recovered` says whether it is over
/// (`Some(recovery time)`) or still open (`None`); each one that is over gets
/// its resolve enqueued (a held one is simply dropped). Returns the keys
/// resolved. Call it once the incident state is loaded, before new events.
pub fn reconcile(
    store: &Store,
    alerting: &Alerting,
    now: DateTime<Utc>,
    mut recovered: impl FnMut(&AlertEvent) -> Option<DateTime<Utc>>,
) -> Result<Vec<String>, StoreError> {
    let mut resolved = Vec::new();
    // Incidents whose page a window still holds count too: left alone, one
    // that recovered meanwhile would page when the window ends.
    let held = outbox::held(store)?
        .into_iter()
        .filter_map(|(_, payload)| serde_json::from_str::<AlertEvent>(&payload).ok());
    let candidates: Vec<AlertEvent> = open_incidents(store)?.into_iter().chain(held).collect();
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
