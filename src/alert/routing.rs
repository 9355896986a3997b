//! Who gets an alert, and whether now: [`Alerting::route`] (routes in file
//! order, `continue`), `send_resolved` and reminder filtering, maintenance
//! windows and silences ([`silenced_by`]), and the outbox writes of a routed
//! alert inside a caller's transaction (`route_and_push`, shared by
//! [`enqueue`](super::enqueue()) and the release of held pages).

use chrono::{DateTime, Utc};

use super::stored;
use super::window::change_window_covers;
use super::{AlertEvent, AlertStatus, Alerting};
use crate::config::alerting::{AlertingConfig, Glob};
use crate::store::outbox::{self, OpenRecord, Silence};
use crate::store::windows::{self, ChangeWindow};
use crate::store::{Store, StoreError};

impl Alerting {
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
            let matches = match e.summary() {
                Some(s) => route.matches_summary(s.targets.iter().map(|t| t.target.as_str())),
                None => route.matches(&e.target, &e.probe_kind, &e.incident_kind, &e.severity),
            };
            if matches {
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

/// The change window that covers `target` at `now` (the first opened), if any.
pub fn covering_window<'a>(
    windows: &'a [ChangeWindow],
    target: &str,
    now: DateTime<Utc>,
) -> Option<&'a ChangeWindow> {
    windows
        .iter()
        .find(|w| change_window_covers(w, target, now))
}

/// How a change window names itself as what holds a page: `window NAME`.
pub fn window_hold(name: &str) -> String {
    format!("window {name}")
}

/// What holds pages of `target` at `now`, by name: a maintenance window or
/// silence ([`silenced_by`]), else, unless `windows_too` is false (a page
/// beyond a window's tolerance), a change window open in the store
/// (`window NAME`).
pub fn held_by(
    store: &Store,
    config: &AlertingConfig,
    target: &str,
    now: DateTime<Utc>,
    windows_too: bool,
) -> Result<Option<String>, StoreError> {
    let silences = outbox::silences(store)?;
    if let Some(by) = silenced_by(config, &silences, target, now) {
        return Ok(Some(by));
    }
    if !windows_too {
        return Ok(None);
    }
    let open = windows::open_at(store, now)?;
    Ok(covering_window(&open, target, now).map(|w| window_hold(&w.name)))
}

/// Writes the outbox entries of `event` and the open-incident record, inside
/// a caller's transaction. Returns the receivers written to.
pub(super) fn route_and_push(
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
                        payload: stored::encode(&base),
                        last_notified_at: now,
                    },
                )?;
            }
            AlertStatus::Resolved => outbox::remove_open(tx, &event.incident_key)?,
        }
    }
    Ok(names)
}
