//! Alert delivery: the [`AlertEvent`] the incident layer hands over, routing
//! to receivers, maintenance windows and silences, repeat reminders, and the
//! delivery loop that drains the durable outbox.
//!
//! The path of a notification: [`enqueue()`] decides who gets it (routes,
//! `send_resolved`, windows) and writes one outbox entry per receiver in one
//! durable commit before anything is sent; [`run_delivery`] hands the first
//! entry of every `(receiver, incident)` group to its [`Receiver`], removes it
//! on success, reschedules it with capped, jittered exponential backoff on a
//! retriable failure (a failure blocks later messages of that incident for
//! that receiver only), drops it on a permanent one, and gives up after
//! `max_age`. Delivery is at least once; receivers with idempotency keys
//! (PagerDuty `dedup_key`, Opsgenie alias, Alertmanager labels, the Grafana
//! annotation id kept in the store) make a repeat harmless.
//!
//! Only this module and its receivers send alerts. It never detects anything:
//! what is an incident, and when it starts and ends, is decided upstream.
//!
//! Files: `event.rs` the model ([`AlertEvent`], [`incident_key`]);
//! `receiver.rs` the [`Receiver`] trait and [`DeliveryError`]; this file
//! builds receivers from the configuration ([`build_receiver`], [`Alerting`]);
//! `routing.rs` routes, windows and silences; `enqueue.rs` accepting an alert
//! into the outbox; `stored.rs` the one typed accessor of alerts in the store
//! (nothing else encodes or decodes them); `reconcile.rs` the repair of what a
//! crash leaves between incidents and alerts; `delivery.rs` the loop and its
//! backoff; `housekeeping.rs` its periodic upkeep (expiry, held pages,
//! reminders); `pending.rs` alerts waiting in memory for the store. One
//! receiver kind per file beside them, sharing `http.rs`, `render.rs` and
//! `redact.rs`; `soak.rs` queues soak-test phase boundaries for the
//! `grafana` receivers; `summary.rs` builds the summary of a change window
//! that ended and queues it for the receivers the routes pick (once, in the
//! commit that marks it sent); `registry.rs` maps each kind to its receiver; `glob.rs`
//! matches target patterns and `window.rs` says whether a maintenance window
//! is open.

pub mod alertmanager;
mod delivery;
pub mod email;
mod enqueue;
mod event;
mod glob;
pub mod grafana;
mod housekeeping;
pub mod http;
pub mod opsgenie;
pub mod pagerduty;
pub mod pending;
mod receiver;
mod reconcile;
pub mod redact;
mod registry;
pub mod render;
mod routing;
pub mod slack;
mod soak;
pub mod stored;
mod summary;
pub mod teams;
pub mod webhook;
mod window;

pub use delivery::{
    backoff, run_delivery, BASE_BACKOFF, DRAIN_GRACE, MAX_IN_FLIGHT, MAX_IN_FLIGHT_PER_RECEIVER,
    MAX_RETRY_AFTER, MIN_RETRY_DELAY,
};
pub use enqueue::{enqueue, Enqueued};
pub use event::{incident_key, AlertEvent, AlertStatus, Held, HostLoad, IncidentContext};
pub use housekeeping::{release_held, HOUSEKEEPING_INTERVAL};
pub use receiver::{BoxFuture, DeliveryError, Receiver};
pub use reconcile::{reconcile, resolve_recovered};
pub use routing::{covering_window, held_by, silenced_by, window_hold};
pub use soak::{enqueue_phase_marks, phase_events, phase_key};
pub use stored::open_incidents;
pub use summary::{queue_window_summaries, summary_event, window_summary, SUMMARY_DELAY};
pub use window::{beyond_tolerance, change_window_covers};

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::alerting::{AlertingConfig, ReceiverConfig};
use crate::store::{Store, StoreError};

/// What receivers may need besides their own configuration.
#[derive(Clone)]
pub struct ReceiverContext {
    /// The state store, for receivers that keep idempotency state.
    pub store: Store,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// `[alerting] external_url`.
    pub external_url: Option<String>,
}

/// Builds the receiver a configuration entry describes, wrapped so that its
/// errors never carry one of its secrets ([`redact::Redacted`]).
pub fn build_receiver(
    config: &ReceiverConfig,
    ctx: &ReceiverContext,
) -> Result<Arc<dyn Receiver>, String> {
    let inner = registry::build(config, ctx)?;
    Ok(Arc::new(redact::Redacted::new(
        inner,
        redact::Redactor::for_receiver(config),
    )))
}

/// The alerting configuration together with its built receivers.
pub struct Alerting {
    /// The configuration routing, windows and backoff follow.
    pub config: AlertingConfig,
    receivers: BTreeMap<String, Arc<dyn Receiver>>,
    /// The agent's instance name, for what the delivery loop queues itself
    /// (window summaries); empty unless [`Alerting::with_agent`] set it.
    pub instance: String,
    /// The configured targets' names, for the targets a window summary
    /// covers; empty unless [`Alerting::with_agent`] set them.
    pub targets: Vec<String>,
}

impl Alerting {
    /// Builds every configured receiver.
    pub fn new(
        config: AlertingConfig,
        store: &Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Alerting, String> {
        let ctx = ReceiverContext {
            store: store.clone(),
            clock,
            external_url: config.external_url.clone(),
        };
        let mut receivers = BTreeMap::new();
        for rc in &config.receivers {
            let r = build_receiver(rc, &ctx).map_err(|e| format!("receiver {:?}: {e}", rc.name))?;
            receivers.insert(rc.name.clone(), r);
        }
        Ok(Alerting {
            config,
            receivers,
            instance: String::new(),
            targets: Vec::new(),
        })
    }

    /// Uses the given receivers instead of building them (tests, embedding).
    /// Routes may name only these.
    pub fn with_receivers(config: AlertingConfig, list: Vec<Arc<dyn Receiver>>) -> Alerting {
        let receivers = list
            .into_iter()
            .map(|r| (r.name().to_string(), r))
            .collect();
        Alerting {
            config,
            receivers,
            instance: String::new(),
            targets: Vec::new(),
        }
    }

    /// Names the agent whose alerting this is and its targets (window
    /// summaries carry the name and list every target a window covers).
    pub fn with_agent(mut self, instance: &str, targets: Vec<String>) -> Alerting {
        self.instance = instance.to_string();
        self.targets = targets;
        self
    }

    /// A receiver by name.
    pub fn receiver(&self, name: &str) -> Option<&Arc<dyn Receiver>> {
        self.receivers.get(name)
    }

    /// Every receiver, by name.
    pub fn receivers(&self) -> impl Iterator<Item = &Arc<dyn Receiver>> {
        self.receivers.values()
    }
}

/// Runs blocking store work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(r) => r,
        Err(e) => Err(StoreError::Db {
            path: Default::default(),
            message: format!("store task failed: {e}"),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    /// A change-window summary event (`window::summary`'s sample).
    pub(crate) fn sample_summary_event() -> AlertEvent {
        summary_event(crate::window::summary::tests::sample())
    }

    /// The incident of the example sentences.
    pub(crate) fn sample_event() -> AlertEvent {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        AlertEvent {
            incident_key: "3f2a9c0d11e4b7a2".into(),
            status: AlertStatus::Firing,
            reminder: false,
            test: false,
            instance: "cas01".into(),
            target: "owa".into(),
            probe_kind: "http".into(),
            incident_kind: "slow".into(),
            severity: "critical".into(),
            started_at: at("2026-12-05T02:14:05Z"),
            detected_at: at("2026-12-05T02:15:06Z"),
            recovered_at: None,
            peak_latency_seconds: Some(6.2),
            baseline_latency_seconds: Some(0.18),
            new_baseline_latency_seconds: None,
            current_latency_seconds: Some(3.8),
            worst_phase: Some("first_byte".into()),
            slow_count: 12,
            failed_count: 0,
            last_error: None,
            held: None,
            host: Some(HostLoad {
                cpu_ratio: Some(0.97),
                load1: Some(12.3),
                memory_available_bytes: Some(1_288_490_189),
                tcp_established: Some(4120),
            }),
            run: None,
            phase: None,
            soak_phase: false,
            window: None,
            beyond_tolerance: None,
            window_summary: None,
        }
    }
}
