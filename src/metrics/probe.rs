//! Probe metric families and how a [`Sample`] is recorded into them.

use prometheus::{GaugeVec, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::histogram::PhaseHistograms;
use super::{register, LATENCY_BUCKETS};
use crate::sample::{FailureReason, Phase, ProbeKind, Sample};

/// Families fed by probe results.
pub struct ProbeMetrics {
    success: IntGaugeVec,
    /// `mailpulse_probe_duration_seconds`: outside the registry, written by
    /// [`super::Metrics::encode`] (see [`super::histogram`] for why).
    pub(crate) duration: PhaseHistograms,
    last_duration: GaugeVec,
    failures: IntCounterVec,
    cert_expiry: GaugeVec,
    status_code: IntGaugeVec,
    tls_info: IntGaugeVec,
    mailbox_messages: IntGaugeVec,
    schedule_lag: prometheus::Histogram,
}

/// All failure reasons, for removing a target's series.
const REASONS: [FailureReason; 9] = [
    FailureReason::Dns,
    FailureReason::Connect,
    FailureReason::Tls,
    FailureReason::Timeout,
    FailureReason::Status,
    FailureReason::Body,
    FailureReason::Protocol,
    FailureReason::Auth,
    FailureReason::Reply,
];

impl ProbeMetrics {
    /// Registers the probe families on `reg`.
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        Ok(ProbeMetrics {
            success: register(
                reg,
                IntGaugeVec::new(
                    Opts::new("mailpulse_probe_success", "Whether the latest probe of the target succeeded (1) or failed (0)."),
                    &["target", "kind"],
                )?,
            )?,
            duration: PhaseHistograms::new(
                "mailpulse_probe_duration_seconds",
                "Duration of each phase of successful probes.",
                LATENCY_BUCKETS,
            ),
            last_duration: register(
                reg,
                GaugeVec::new(
                    Opts::new(
                        "mailpulse_probe_last_duration_seconds",
                        "Duration of each phase of the latest probe, failed or not.",
                    ),
                    &["target", "kind", "phase"],
                )?,
            )?,
            failures: register(
                reg,
                IntCounterVec::new(
                    Opts::new("mailpulse_probe_failures_total", "Failed probes by reason."),
                    &["target", "kind", "reason"],
                )?,
            )?,
            cert_expiry: register(
                reg,
                GaugeVec::new(
                    Opts::new(
                        "mailpulse_tls_cert_expiry_timestamp_seconds",
                        "Earliest notAfter of the certificate chain the target presented, as a Unix timestamp.",
                    ),
                    &["target"],
                )?,
            )?,
            status_code: register(
                reg,
                IntGaugeVec::new(
                    Opts::new(
                        "mailpulse_probe_http_status_code",
                        "HTTP status code of the latest probe's final response.",
                    ),
                    &["target"],
                )?,
            )?,
            tls_info: register(
                reg,
                IntGaugeVec::new(
                    Opts::new("mailpulse_probe_tls_info", "TLS version and cipher of the latest probe's connection."),
                    &["target", "version", "cipher"],
                )?,
            )?,
            mailbox_messages: register(
                reg,
                IntGaugeVec::new(
                    Opts::new(
                        "mailpulse_probe_mailbox_messages",
                        "Messages in the mailbox the latest probe looked at (IMAP SELECT, POP3 STAT).",
                    ),
                    &["target"],
                )?,
            )?,
            schedule_lag: register(
                reg,
                prometheus::Histogram::with_opts(
                    HistogramOpts::new(
                        "mailpulse_probe_schedule_lag_seconds",
                        "How late each probe started against its schedule.",
                    )
                    .buckets(vec![0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
                )?,
            )?,
        })
    }

    /// Records one probe result.
    pub fn record(&self, s: &Sample) {
        let kind = s.kind.as_str();
        let target = s.target.as_str();
        self.success
            .with_label_values(&[target, kind])
            .set(i64::from(s.success()));
        for (phase, d) in &s.phases {
            let labels = [target, kind, phase.as_str()];
            self.last_duration
                .with_label_values(&labels)
                .set(d.as_secs_f64());
        }
        if s.success() {
            self.duration.observe(target, s.kind, &s.phases);
        }
        if let Some(f) = &s.failure {
            self.failures
                .with_label_values(&[target, kind, f.reason.as_str()])
                .inc();
        }
        if let Some(code) = s.status {
            self.status_code
                .with_label_values(&[target])
                .set(i64::from(code));
        }
        if let Some(tls) = &s.tls {
            if let Some(expiry) = tls.earliest_expiry {
                self.cert_expiry
                    .with_label_values(&[target])
                    .set(expiry as f64);
            }
            let current = [target, tls.version.as_str(), tls.cipher.as_str()];
            remove_other_label_sets(&self.tls_info, target, &current);
            self.tls_info.with_label_values(&current).set(1);
        }
        if let Some(count) = s.messages {
            self.mailbox_messages
                .with_label_values(&[target])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        self.schedule_lag.observe(s.schedule_lag.as_secs_f64());
    }

    /// Creates a configured target's failure counters at zero, one per
    /// reason, so that `rate()` and `increase()` see its first failure.
    pub fn add_target(&self, target: &str, kind: ProbeKind) {
        for reason in REASONS {
            self.failures
                .with_label_values(&[target, kind.as_str(), reason.as_str()]);
        }
    }

    /// Removes every series of a target that is no longer configured.
    pub fn remove_target(&self, target: &str, kind: ProbeKind) {
        let kind = kind.as_str();
        let _ = self.success.remove_label_values(&[target, kind]);
        self.duration.remove_target(target);
        for phase in Phase::ALL {
            let _ = self
                .last_duration
                .remove_label_values(&[target, kind, phase.as_str()]);
        }
        for reason in REASONS {
            let _ = self
                .failures
                .remove_label_values(&[target, kind, reason.as_str()]);
        }
        let _ = self.cert_expiry.remove_label_values(&[target]);
        let _ = self.status_code.remove_label_values(&[target]);
        let _ = self.mailbox_messages.remove_label_values(&[target]);
        remove_other_label_sets(&self.tls_info, target, &[]);
    }
}

/// Removes the series of `vec` whose first label is `target`, except `keep`.
fn remove_other_label_sets(vec: &IntGaugeVec, target: &str, keep: &[&str]) {
    use prometheus::core::Collector;
    for family in vec.collect() {
        for m in family.get_metric() {
            let values: Vec<&str> = m.get_label().iter().map(|l| l.value()).collect();
            if values.first() == Some(&target) && values.as_slice() != keep {
                let _ = vec.remove_label_values(&values);
            }
        }
    }
}
