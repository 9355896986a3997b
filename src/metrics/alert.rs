//! Alert delivery metric families: notification outcomes per receiver, the
//! outbox backlog, how long receivers take to answer, pages held by windows
//! (in all and per target), stored alerts that do not decode, and the
//! incidents change windows held or paged beyond their tolerance.
//!
//! This module only defines and records; the delivery loop in `alert` decides
//! what happened and calls the functions here.

use std::collections::BTreeMap;

use prometheus::core::Collector as _;
use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::register;

/// Buckets for receiver request durations, 10 ms to 30 s.
const DELIVERY_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The outcome of one delivery attempt or of a whole notification; its
/// `as_str()` is the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationResult {
    /// The receiver accepted the notification.
    Delivered,
    /// The attempt failed in a way worth retrying; it will be.
    Retried,
    /// The receiver refused it for good (e.g. HTTP 400); it was dropped.
    Failed,
    /// It stayed undelivered past `max_age` and was given up.
    Expired,
}

impl NotificationResult {
    /// Every result, for pre-creating series.
    pub const ALL: [NotificationResult; 4] = [
        NotificationResult::Delivered,
        NotificationResult::Retried,
        NotificationResult::Failed,
        NotificationResult::Expired,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationResult::Delivered => "delivered",
            NotificationResult::Retried => "retried",
            NotificationResult::Failed => "failed",
            NotificationResult::Expired => "expired",
        }
    }
}

/// Families fed by alert delivery.
#[derive(Clone)]
pub struct AlertMetrics {
    notifications: IntCounterVec,
    duration: HistogramVec,
    /// Notifications waiting in the outbox.
    pub outbox_pending: IntGauge,
    /// Age of the oldest waiting notification, 0 when none waits.
    pub outbox_oldest_age: Gauge,
    /// Incidents whose page is held by a maintenance window, silence or change window.
    pub held: IntGauge,
    /// The same per target; a target with none held has no series.
    held_by_target: IntGaugeVec,
    bad_payloads: IntCounter,
}

impl AlertMetrics {
    /// Registers the alert families on `reg`.
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        Ok(AlertMetrics {
            notifications: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "mailpulse_notifications_total",
                        "Notification outcomes per receiver: delivered, retried (one failed attempt), failed (refused for good) or expired (given up after max_age).",
                    ),
                    &["receiver", "result"],
                )?,
            )?,
            duration: register(
                reg,
                HistogramVec::new(
                    HistogramOpts::new(
                        "mailpulse_notification_duration_seconds",
                        "Time receivers took to answer a delivery attempt, successful or not.",
                    )
                    .buckets(DELIVERY_BUCKETS.to_vec()),
                    &["receiver"],
                )?,
            )?,
            outbox_pending: register(
                reg,
                IntGauge::new(
                    "mailpulse_outbox_pending",
                    "Notifications written to the outbox and not yet delivered, failed or expired.",
                )?,
            )?,
            outbox_oldest_age: register(
                reg,
                Gauge::new(
                    "mailpulse_outbox_oldest_pending_age_seconds",
                    "Age of the oldest notification still waiting in the outbox; 0 when the outbox is empty.",
                )?,
            )?,
            held: register(
                reg,
                IntGauge::new(
                    "mailpulse_alerts_held",
                    "Open incidents whose page is held by a maintenance window, silence or change window.",
                )?,
            )?,
            held_by_target: register(
                reg,
                IntGaugeVec::new(
                    Opts::new(
                        "mailpulse_alerts_held_by_target",
                        "Open incidents of the target whose page is held by a maintenance window, silence or change window; no series while none is.",
                    ),
                    &["target"],
                )?,
            )?,
            bad_payloads: register(
                reg,
                IntCounter::new(
                    "mailpulse_alerts_bad_payloads_total",
                    "Alerts in the state store (queued, held or open) that did not decode, each counted once; they were skipped or dropped, and logged with their key.",
                )?,
            )?,
        })
    }

    /// Creates the series of a receiver at zero, so rates work from the start.
    pub fn add_receiver(&self, receiver: &str) {
        for r in NotificationResult::ALL {
            self.notifications
                .with_label_values(&[receiver, r.as_str()]);
        }
    }

    /// Counts one outcome.
    pub fn record(&self, receiver: &str, result: NotificationResult) {
        self.notifications
            .with_label_values(&[receiver, result.as_str()])
            .inc();
    }

    /// Records how long one attempt took.
    pub fn observe_duration(&self, receiver: &str, seconds: f64) {
        self.duration
            .with_label_values(&[receiver])
            .observe(seconds);
    }

    /// Sets the held pages: `total` (`mailpulse_alerts_held`) and the count
    /// of each target that has any (`mailpulse_alerts_held_by_target`). A
    /// target no longer in `per_target` loses its series; the others are
    /// updated in place, so a scrape never sees a held target missing.
    pub fn set_held(&self, total: usize, per_target: &BTreeMap<String, usize>) {
        self.held.set(total as i64);
        let shown: Vec<String> = self
            .held_by_target
            .collect()
            .iter()
            .flat_map(|f| f.get_metric().iter())
            .flat_map(|m| m.get_label().iter())
            .filter(|l| l.name() == "target")
            .map(|l| l.value().to_string())
            .collect();
        for (target, n) in per_target {
            self.held_by_target
                .with_label_values(&[target.as_str()])
                .set(*n as i64);
        }
        for gone in shown.iter().filter(|t| !per_target.contains_key(*t)) {
            let _ = self.held_by_target.remove_label_values(&[gone.as_str()]);
        }
    }

    /// Raises the bad-payload counter to `total`, the count kept where alerts
    /// are decoded (it never goes down).
    pub fn count_bad_payloads(&self, total: u64) {
        let counted = self.bad_payloads.get();
        if total > counted {
            self.bad_payloads.inc_by(total - counted);
        }
    }

    /// Stored alerts that did not decode, as counted so far.
    pub fn bad_payloads(&self) -> u64 {
        self.bad_payloads.get()
    }

    /// The count of one outcome (tests and status output).
    pub fn count(&self, receiver: &str, result: NotificationResult) -> u64 {
        self.notifications
            .with_label_values(&[receiver, result.as_str()])
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(reg: &Registry) -> String {
        let mut out = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &reg.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn held_pages_are_counted_in_all_and_per_target_and_vanish_when_released() {
        let reg = Registry::new();
        let m = AlertMetrics::register(&reg).unwrap();
        let held = BTreeMap::from([("owa".to_string(), 1), ("smtp".to_string(), 2)]);
        m.set_held(3, &held);
        let text = page(&reg);
        assert!(text.contains("mailpulse_alerts_held 3\n"), "{text}");
        assert!(
            text.contains("mailpulse_alerts_held_by_target{target=\"owa\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mailpulse_alerts_held_by_target{target=\"smtp\"} 2\n"),
            "{text}"
        );
        m.set_held(1, &BTreeMap::from([("smtp".to_string(), 1)]));
        let text = page(&reg);
        assert!(text.contains("mailpulse_alerts_held 1\n"), "{text}");
        assert!(!text.contains("target=\"owa\""), "{text}");
        assert!(
            text.contains("mailpulse_alerts_held_by_target{target=\"smtp\"} 1\n"),
            "{text}"
        );
        m.set_held(0, &BTreeMap::new());
        assert!(!page(&reg).contains("mailpulse_alerts_held_by_target{"));
    }
}
