//! Alert delivery: the [`AlertEvent`] the incident layer hands over, routing
//! to receivers, maintenance windows and silences, repeat reminders, and the
//! delivery loop that drains the durable outbox.
//!
//! The path of a notification: [`enqueue`] decides who gets it (routes,
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

pub mod alertmanager;
pub mod cli;
mod delivery;
pub mod email;
mod glob;
pub mod grafana;
pub mod http;
pub mod opsgenie;
pub mod pagerduty;
pub mod pending;
pub mod redact;
mod registry;
pub mod render;
pub mod slack;
pub mod teams;
pub mod webhook;
mod window;

pub use delivery::{run_delivery, DRAIN_GRACE, MAX_IN_FLIGHT, MAX_IN_FLIGHT_PER_RECEIVER};

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::alerting::{AlertingConfig, Glob, ReceiverConfig};
use crate::metrics::alert::{AlertMetrics, NotificationResult};
use crate::store::outbox::{self, OpenRecord, Silence};
use crate::store::{Store, StoreError};

/// First retry delay before jitter; doubles per failed attempt up to `max_backoff`.
pub const BASE_BACKOFF: Duration = Duration::from_secs(1);
/// Smallest delay between two attempts, so full jitter never spins.
pub const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);
/// A receiver's `Retry-After` is honoured up to this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How often the loop expires old entries, releases held alerts, sends
/// reminders, refreshes receivers and updates the gauges; also the longest it
/// sleeps without looking at the store (writes of other processes are not signalled).
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// Whether an incident is open or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The incident is open.
    Firing,
    /// The incident is over.
    Resolved,
}

impl AlertStatus {
    /// `firing` or `resolved`, as Alertmanager writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// A short host-load snapshot taken when the incident was detected.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostLoad {
    /// CPU busy ratio, 0..1.
    pub cpu_ratio: Option<f64>,
    /// One-minute load average.
    pub load1: Option<f64>,
    /// Memory available, bytes.
    pub memory_available_bytes: Option<u64>,
    /// Established TCP connections.
    pub tcp_established: Option<u64>,
}

/// One notification's worth of incident: what the incident layer hands to
/// [`enqueue`]. Serialized into the outbox as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Stable per incident (e.g. a hex hash of instance, target, kind and
    /// start); the idempotency key at every receiver that has one.
    pub incident_key: String,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// A `repeat_interval` reminder of an open incident.
    #[serde(default)]
    pub reminder: bool,
    /// A test notification from `mailpulse test-alert`.
    #[serde(default)]
    pub test: bool,
    /// The agent's instance name.
    pub instance: String,
    /// The target name.
    pub target: String,
    /// The probe kind (`http`, `smtp`, ...); the `kind` label.
    pub probe_kind: String,
    /// `slow` or `down`.
    pub incident_kind: String,
    /// `critical`, `error`, `warning` or `info`; see [`AlertingConfig::severity_for`].
    pub severity: String,
    /// Onset of the incident (first bad sample).
    pub started_at: DateTime<Utc>,
    /// When the detector declared it.
    pub detected_at: DateTime<Utc>,
    /// When it ended (resolved events).
    pub recovered_at: Option<DateTime<Utc>>,
    /// Worst latency seen, seconds.
    pub peak_latency_seconds: Option<f64>,
    /// The normal latency before the incident, seconds.
    pub baseline_latency_seconds: Option<f64>,
    /// The latency when this event was made, seconds.
    pub current_latency_seconds: Option<f64>,
    /// The phase that slowed down most (`first_byte`, `tls`, ...).
    pub worst_phase: Option<String>,
    /// Slow samples during the incident.
    pub slow_count: u64,
    /// Failed samples during the incident.
    pub failed_count: u64,
    /// The latest probe error, if any.
    pub last_error: Option<String>,
    /// Host load when detected.
    pub host: Option<HostLoad>,
}

/// The stable key of an incident: 16 hex digits of a 64-bit FNV-1a hash of
/// instance, target, probe kind and onset. The incident kind is left out on
/// purpose, so an escalation from slow to down keeps its key (and its
/// PagerDuty alert, Opsgenie alias and Grafana region).
pub fn incident_key(
    instance: &str,
    target: &str,
    probe_kind: &str,
    started_at: DateTime<Utc>,
) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let millis = started_at.timestamp_millis().to_string();
    for part in [instance, target, probe_kind, millis.as_str()] {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// What an [`AlertEvent`] needs besides the detector's incident.
#[derive(Debug, Clone, Default)]
pub struct IncidentContext {
    /// The agent's instance name.
    pub instance: String,
    /// The target name.
    pub target: String,
    /// The probe kind (`http`, `smtp`, ...).
    pub probe_kind: String,
    /// The target's severity ([`AlertingConfig::severity_for`]).
    pub severity: String,
    /// The latest latency, seconds.
    pub current_latency_seconds: Option<f64>,
    /// The latest probe error.
    pub last_error: Option<String>,
    /// Host load now.
    pub host: Option<HostLoad>,
}

impl AlertEvent {
    /// The event for a detector incident: firing while it is open, resolved
    /// once it has recovered. Map `Opened` and `Escalated` to this while
    /// open, and `Closed` once recovered.
    pub fn from_incident(incident: &crate::detect::Incident, ctx: IncidentContext) -> AlertEvent {
        let secs = |d: Duration| d.as_secs_f64();
        AlertEvent {
            incident_key: incident_key(
                &ctx.instance,
                &ctx.target,
                &ctx.probe_kind,
                incident.started_at,
            ),
            status: if incident.is_open() {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            },
            reminder: false,
            test: false,
            instance: ctx.instance,
            target: ctx.target,
            probe_kind: ctx.probe_kind,
            incident_kind: incident.kind.as_str().to_string(),
            severity: ctx.severity,
            started_at: incident.started_at,
            detected_at: incident.detected_at,
            recovered_at: incident.recovered_at,
            peak_latency_seconds: incident.peak_latency.map(secs),
            baseline_latency_seconds: incident.baseline_at_onset.map(secs),
            current_latency_seconds: ctx.current_latency_seconds,
            worst_phase: incident.worst_phase.clone(),
            slow_count: u64::from(incident.slow_count),
            failed_count: u64::from(incident.failed_count),
            last_error: ctx.last_error,
            host: ctx.host,
        }
    }
}

/// Why a delivery attempt failed, as the receiver judges it.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryError {
    /// Worth another try later: network errors, timeouts, HTTP 5xx and 429,
    /// SMTP 4xx.
    Retriable {
        /// What happened.
        message: String,
        /// How long the receiver asked us to wait (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The receiver refused the message for good (HTTP 4xx, SMTP 5xx, a
    /// payload it cannot take); sending it again would fail again.
    Permanent {
        /// What happened.
        message: String,
    },
}

impl DeliveryError {
    /// A retriable error without a requested delay.
    pub fn retriable(message: impl Into<String>) -> DeliveryError {
        DeliveryError::Retriable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> DeliveryError {
        DeliveryError::Permanent {
            message: message.into(),
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, DeliveryError::Retriable { .. })
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::Retriable { message, .. } | DeliveryError::Permanent { message } => {
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for DeliveryError {}

/// A boxed future, so receivers can sit behind `dyn Receiver`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One destination of notifications. One implementation per file, all with
/// this signature; the delivery loop owns retries, order and deadlines.
pub trait Receiver: Send + Sync {
    /// The configured name; the `receiver` label.
    fn name(&self) -> &str;

    /// The configured kind (`webhook`, `pagerduty`, ...).
    fn kind(&self) -> &'static str;

    /// Sends one notification, once. The receiver classifies failures.
    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>>;

    /// Whether the far side keeps an open alert that it re-notifies about by
    /// itself and that a resolve closes (PagerDuty, Opsgenie, Alertmanager,
    /// Grafana). Such receivers get no `repeat_interval` reminders, and
    /// `test-alert` resolves its test right after firing it.
    fn stateful(&self) -> bool {
        false
    }

    /// Periodic upkeep, called about every [`HOUSEKEEPING_INTERVAL`] (the
    /// Alertmanager receiver re-posts its open alerts here). Best effort.
    fn refresh(&self, _now: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// `text` without this receiver's secrets, for what the delivery loop
    /// says about it besides its errors (a panic's message). Receivers built
    /// from the configuration are wrapped in [`redact::Redacted`], which
    /// redacts; the default returns `text` as it is.
    fn redact(&self, text: &str) -> String {
        text.to_string()
    }
}

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
        Ok(Alerting { config, receivers })
    }

    /// Uses the given receivers instead of building them (tests, embedding).
    /// Routes may name only these.
    pub fn with_receivers(config: AlertingConfig, list: Vec<Arc<dyn Receiver>>) -> Alerting {
        let receivers = list
            .into_iter()
            .map(|r| (r.name().to_string(), r))
            .collect();
        Alerting { config, receivers }
    }

    /// A receiver by name.
    pub fn receiver(&self, name: &str) -> Option<&Arc<dyn Receiver>> {
        self.receivers.get(name)
    }

    /// Every receiver, by name.
    pub fn receivers(&self) -> impl Iterator<Item = &Arc<dyn Receiver>> {
        self.receivers.values()
    }

    /// The receivers an alert goes to, before `send_resolved` and reminder
    /// filtering. Routes are tried in file order; the first that matches
    /// decides, unless it has `continue = true`, in which case later matching
    /// routes add their receivers too. Without any route every receiver gets
    /// every alert; with routes, an alert no route matches goes nowhere (end
    /// the list with a route without matchers as a catch-all).
    pub fn route(&self, e: &AlertEvent) -> Vec<String> {
        if self.config.routes.is_empty() {
            return self.receivers.keys().cloned().collect();
        }
        let mut out: Vec<String> = Vec::new();
        for route in &self.config.routes {
            if route.matches(&e.target, &e.probe_kind, &e.incident_kind, &e.severity) {
                for r in &route.receivers {
                    if !out.contains(r) && self.receivers.contains_key(r) {
                        out.push(r.clone());
                    }
                }
                if !route.continue_matching {
                    break;
                }
            }
        }
        out
    }

    fn send_resolved(&self, receiver: &str) -> bool {
        self.config
            .receiver(receiver)
            .is_none_or(|rc| rc.send_resolved)
    }
}

/// What [`enqueue`] did with an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Enqueued {
    /// Written to the outbox for these receivers.
    Queued(Vec<String>),
    /// Held by a maintenance window or silence (named); it pages when the
    /// window ends if the incident is still open.
    Held(String),
    /// A resolve of an incident whose page was held all along: nothing is sent.
    Suppressed,
    /// A firing event of an incident already paged, or a resolve of one not
    /// open: nothing new to say.
    Duplicate,
    /// No route matched.
    Unrouted,
}

/// The maintenance window or silence that holds pages of `target` at `now`, by name.
pub fn silenced_by(
    config: &AlertingConfig,
    silences: &[Silence],
    target: &str,
    now: DateTime<Utc>,
) -> Option<String> {
    if let Some(w) = config.maintenance.iter().find(|w| w.covers(target, now)) {
        return Some(format!("maintenance window {:?}", w.name));
    }
    silences
        .iter()
        .find(|s| s.starts_at <= now && now < s.ends_at && Glob(s.target.clone()).matches(target))
        .map(|s| format!("silence {} ({})", s.id, s.reason))
}

/// Accepts an event for delivery: writes it to the outbox for every receiver
/// it is routed to, in one durable commit, before anything is sent (or holds
/// it during a maintenance window). Blocking (one fsync): call it from a
/// blocking context or accept a few milliseconds.
///
/// Incident bookkeeping happens here too: a firing event opens the incident
/// (a second firing of an open incident is a [`Enqueued::Duplicate`], unless
/// its `incident_kind` or `severity` changed: an escalation from slow to down
/// is sent as an update under the same key), a resolve closes it. Reminders are generated by [`run_delivery`] from
/// `repeat_interval`; callers need not send them.
pub fn enqueue(
    store: &Store,
    alerting: &Alerting,
    event: &AlertEvent,
    now: DateTime<Utc>,
) -> Result<Enqueued, StoreError> {
    let hold = if event.test {
        None
    } else {
        let silences = outbox::silences(store)?;
        silenced_by(&alerting.config, &silences, &event.target, now)
    };
    let payload = encode_event(event);
    // Decide and write in one transaction, so a resolve racing with a
    // reminder or a window's release can never reopen the incident.
    let outcome = store.write(|tx| enqueue_tx(tx, alerting, event, &payload, hold, now))?;
    let key = event.incident_key.as_str();
    match &outcome {
        Enqueued::Held(reason) if !event.reminder => {
            tracing::info!(target = %event.target, incident = key, held_by = %reason, "page held by maintenance")
        }
        Enqueued::Suppressed => {
            tracing::info!(target = %event.target, incident = key, "incident ended inside a maintenance window; nothing paged")
        }
        Enqueued::Unrouted => {
            tracing::warn!(target = %event.target, incident = key, "alert matched no route; nothing sent")
        }
        _ => {}
    }
    Ok(outcome)
}

/// The decision of [`enqueue`], inside its write transaction.
fn enqueue_tx(
    tx: &redb::WriteTransaction,
    alerting: &Alerting,
    event: &AlertEvent,
    payload: &str,
    hold: Option<String>,
    now: DateTime<Utc>,
) -> Result<Enqueued, redb::Error> {
    let key = event.incident_key.as_str();
    let open = outbox::open_record(tx, key)?;
    let held = outbox::is_held(tx, key)?;
    match event.status {
        AlertStatus::Firing if event.test => {}
        AlertStatus::Firing if event.reminder => {
            let Some(record) = open else {
                // Resolved meanwhile: nothing to remind of.
                return Ok(Enqueued::Duplicate);
            };
            if let Some(reason) = hold {
                // Silenced: look again at the next interval rather than every tick.
                outbox::put_open(
                    tx,
                    &OpenRecord {
                        last_notified_at: now,
                        ..record
                    },
                )?;
                return Ok(Enqueued::Held(reason));
            }
        }
        AlertStatus::Firing if held => {
            // Keep the latest details for when the window ends.
            outbox::hold(tx, key, payload)?;
            return Ok(Enqueued::Held(hold.unwrap_or_else(|| "held".into())));
        }
        AlertStatus::Firing if open.is_some() => {
            // The same incident again: news only if it escalated (slow to down)
            // or changed severity; then it is sent as an update.
            let before = open
                .as_ref()
                .and_then(|r| serde_json::from_str::<AlertEvent>(&r.payload).ok());
            let escalated = before.is_none_or(|b| {
                b.incident_kind != event.incident_kind || b.severity != event.severity
            });
            if !escalated {
                return Ok(Enqueued::Duplicate);
            }
        }
        AlertStatus::Firing => {
            if let Some(reason) = hold {
                outbox::hold(tx, key, payload)?;
                return Ok(Enqueued::Held(reason));
            }
        }
        AlertStatus::Resolved if event.test => {}
        AlertStatus::Resolved if held => {
            outbox::take_held(tx, key)?;
            outbox::remove_open(tx, key)?;
            return Ok(Enqueued::Suppressed);
        }
        AlertStatus::Resolved if open.is_none() => return Ok(Enqueued::Duplicate),
        AlertStatus::Resolved => {}
    }
    let names = route_and_push(tx, alerting, event, payload, now)?;
    if names.is_empty() && event.status == AlertStatus::Firing {
        return Ok(Enqueued::Unrouted);
    }
    Ok(Enqueued::Queued(names))
}

/// Writes the outbox entries of `event` and the open-incident record, inside
/// a caller's transaction. Returns the receivers written to.
fn route_and_push(
    tx: &redb::WriteTransaction,
    alerting: &Alerting,
    event: &AlertEvent,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, redb::Error> {
    let names: Vec<String> = alerting
        .route(event)
        .into_iter()
        .filter(|name| {
            let r = &alerting.receivers[name];
            match event.status {
                AlertStatus::Resolved => alerting.send_resolved(name),
                AlertStatus::Firing => !(event.reminder && r.stateful()),
            }
        })
        .collect();
    for name in &names {
        outbox::push(tx, name, &event.incident_key, payload, now)?;
    }
    if !event.test {
        match event.status {
            AlertStatus::Firing => {
                let mut base = event.clone();
                base.reminder = false;
                outbox::put_open(
                    tx,
                    &OpenRecord {
                        incident_key: event.incident_key.clone(),
                        payload: encode_event(&base),
                        last_notified_at: now,
                    },
                )?;
            }
            AlertStatus::Resolved => outbox::remove_open(tx, &event.incident_key)?,
        }
    }
    Ok(names)
}

fn encode_event(e: &AlertEvent) -> String {
    // Plain data of strings, numbers and timestamps always serializes.
    serde_json::to_string(e).expect("alert events serialize")
}

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

/// The delay before attempt `attempts + 1` after `attempts` failures: full
/// jitter over an exponential ceiling (`BASE_BACKOFF * 2^(attempts-1)`,
/// capped by `max_backoff`), at least [`MIN_RETRY_DELAY`], and at least the
/// receiver's `Retry-After` (itself capped by [`MAX_RETRY_AFTER`]).
pub fn backoff(attempts: u32, max_backoff: Duration, retry_after: Option<Duration>) -> Duration {
    let exp = BASE_BACKOFF
        .checked_mul(1u32 << attempts.saturating_sub(1).min(20))
        .unwrap_or(max_backoff)
        .min(max_backoff);
    let jittered = exp.mul_f64(fastrand::f64()).max(MIN_RETRY_DELAY);
    match retry_after {
        Some(r) => jittered.max(r.min(MAX_RETRY_AFTER)),
        None => jittered,
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

/// Expiry, held-alert release, reminders and gauges.
async fn housekeeping(
    store: &Store,
    alerting: &Arc<Alerting>,
    metrics: &AlertMetrics,
    now: DateTime<Utc>,
) {
    let max_age = alerting.config.max_age;
    match blocking(store, move |s| outbox::expire(s, now, max_age)).await {
        Ok(expired) => {
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
    let result = blocking(store, move |s| {
        release_held(s, &a, now)?;
        send_reminders(s, &a, now)?;
        Ok((outbox::stats(s)?, outbox::held(s)?.len()))
    })
    .await;
    match result {
        Ok((stats, held)) => {
            metrics.outbox_pending.set(stats.pending as i64);
            metrics.outbox_oldest_age.set(
                stats
                    .oldest_created_at
                    .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0),
            );
            metrics.held.set(held as i64);
        }
        Err(e) => tracing::error!(error = %e, "alert housekeeping failed"),
    }
}

/// Pages incidents whose maintenance window ended while they stayed open.
fn release_held(store: &Store, alerting: &Alerting, now: DateTime<Utc>) -> Result<(), StoreError> {
    let held = outbox::held(store)?;
    if held.is_empty() {
        return Ok(());
    }
    let silences = outbox::silences(store)?;
    for (key, payload) in held {
        let Ok(event) = serde_json::from_str::<AlertEvent>(&payload) else {
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
        let Ok(mut event) = serde_json::from_str::<AlertEvent>(&record.payload) else {
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
pub(crate) mod tests {
    use super::*;

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
            current_latency_seconds: Some(3.8),
            worst_phase: Some("first_byte".into()),
            slow_count: 12,
            failed_count: 0,
            last_error: None,
            host: Some(HostLoad {
                cpu_ratio: Some(0.97),
                load1: Some(12.3),
                memory_available_bytes: Some(1_288_490_189),
                tcp_established: Some(4120),
            }),
        }
    }

    #[test]
    fn incident_keys_are_stable_and_ignore_the_incident_kind() {
        let e = sample_event();
        let a = incident_key("cas01", "owa", "http", e.started_at);
        assert_eq!(a.len(), 16);
        assert_eq!(a, incident_key("cas01", "owa", "http", e.started_at));
        assert_ne!(a, incident_key("cas01", "owa", "smtp", e.started_at));
        assert_ne!(
            a,
            incident_key(
                "cas01",
                "owa",
                "http",
                e.started_at + chrono::Duration::seconds(1)
            )
        );
    }

    #[test]
    fn a_detector_incident_becomes_an_event() {
        let incident: crate::detect::Incident = serde_json::from_value(serde_json::json!({
            "kind": "slow",
            "started_at": "2026-12-05T02:14:05Z",
            "detected_at": "2026-12-05T02:15:06Z",
            "recovered_at": "2026-12-05T02:24:08Z",
            "closed_at": "2026-12-05T02:25:00Z",
            "peak_latency": {"secs": 6, "nanos": 200_000_000},
            "baseline_at_onset": {"secs": 0, "nanos": 180_000_000},
            "worst_phase": "first_byte",
            "slow_count": 12,
            "failed_count": 0
        }))
        .unwrap();
        let ctx = IncidentContext {
            instance: "cas01".into(),
            target: "owa".into(),
            probe_kind: "http".into(),
            severity: "critical".into(),
            ..IncidentContext::default()
        };
        let e = AlertEvent::from_incident(&incident, ctx);
        assert_eq!(e.status, AlertStatus::Resolved);
        assert_eq!(
            e.incident_key,
            incident_key("cas01", "owa", "http", incident.started_at)
        );
        assert_eq!(e.peak_latency_seconds, Some(6.2));
        assert_eq!(e.baseline_latency_seconds, Some(0.18));
        assert_eq!(
            render::summary(&e),
            "owa recovered at 02:24:08Z after 10m 3s (detected 61 s after onset, peak 6.2 s)"
        );
    }

    #[test]
    fn backoff_is_capped_jittered_and_honours_retry_after() {
        let max = Duration::from_secs(60);
        for attempts in 1..40 {
            let d = backoff(attempts, max, None);
            assert!(d >= MIN_RETRY_DELAY && d <= max, "{attempts}: {d:?}");
        }
        // The ceiling grows: after 3 failures at most 4 s.
        for _ in 0..100 {
            assert!(backoff(3, max, None) <= Duration::from_secs(4));
        }
        assert!(backoff(1, max, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        assert_eq!(
            backoff(1, max, Some(Duration::from_secs(86400))).max(MAX_RETRY_AFTER),
            MAX_RETRY_AFTER
        );
    }
}
