//! The per-target probe families other than the phase histograms, kept
//! outside the `prometheus` registry and written straight into the page:
//! `mailpulse_probe_success`, `_last_duration_seconds`, `_failures_total`,
//! `_http_status_code`, `_mailbox_messages` and
//! `mailpulse_tls_cert_expiry_timestamp_seconds`, which also carries the
//! latest TLS connection's `version` and `cipher` as labels: one series per
//! TLS target rather than an expiry gauge and an info gauge (the fleet
//! budget, README "Series per target").
//!
//! Through the registry, every scrape copied each of these series into
//! protobuf structures, cloning every label name and value (about 800 series
//! and 3,000 allocations at 50 HTTP targets). Here a target's series live in
//! one small record, a probe result updates it under that target's lock, and
//! a scrape writes the lines directly. The text is the crate's, byte for byte:
//! same names, help, label order, series order and numbers (see the tests).
//!
//! Like the rest of `metrics`, this records what it is given and decides nothing.

use super::order;
use super::table::{lock, write_rows, FamilyDef, SeriesTable};
use super::Format;
use crate::sample::{FailureReason, Phase, ProbeKind, Sample};

/// All failure reasons, in the order of their slots.
pub(crate) const REASONS: [FailureReason; 9] = FailureReason::ALL;

const PHASES: usize = Phase::ALL.len();

/// One target's series; `None` is a series that does not exist (yet).
#[derive(Debug, Clone)]
struct Series {
    kind: ProbeKind,
    success: Option<bool>,
    last: [Option<f64>; PHASES],
    failures: [Option<u64>; REASONS.len()],
    status: Option<u16>,
    messages: Option<u64>,
    cert_expiry: Option<f64>,
    /// (version, cipher) of the latest TLS connection.
    tls: Option<(String, String)>,
}

impl Series {
    fn new(kind: ProbeKind) -> Series {
        Series {
            kind,
            success: None,
            last: [None; PHASES],
            failures: [None; REASONS.len()],
            status: None,
            messages: None,
            cert_expiry: None,
            tls: None,
        }
    }

    /// A target that changed kind (a reload) starts its `kind`-labelled
    /// series over; the others carry on.
    fn set_kind(&mut self, kind: ProbeKind) {
        if self.kind != kind {
            self.kind = kind;
            self.success = None;
            self.last = [None; PHASES];
            self.failures = [None; REASONS.len()];
        }
    }
}

/// The families kept here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Failures,
    HttpStatus,
    LastDuration,
    Mailbox,
    Success,
    CertExpiry,
}

/// The families, in the order the page lists them (by name).
const FAMILIES: [FamilyDef<Family>; 6] = [
    FamilyDef {
        family: Family::Failures,
        name: "mailpulse_probe_failures_total",
        help: "Failed probes by reason.",
        kind: "counter",
        labels: &["kind", "reason", "target"],
    },
    FamilyDef {
        family: Family::HttpStatus,
        name: "mailpulse_probe_http_status_code",
        help: "HTTP status code of the latest probe's final response.",
        kind: "gauge",
        labels: &["target"],
    },
    FamilyDef {
        family: Family::LastDuration,
        name: "mailpulse_probe_last_duration_seconds",
        help: "Duration of each phase of the latest probe, failed or not.",
        kind: "gauge",
        labels: &["kind", "phase", "target"],
    },
    FamilyDef {
        family: Family::Mailbox,
        name: "mailpulse_probe_mailbox_messages",
        help: "Messages in the mailbox the latest probe looked at (IMAP SELECT, POP3 STAT).",
        kind: "gauge",
        labels: &["target"],
    },
    FamilyDef {
        family: Family::Success,
        name: "mailpulse_probe_success",
        help: "Whether the latest probe of the target succeeded (1) or failed (0).",
        kind: "gauge",
        labels: &["kind", "target"],
    },
    FamilyDef {
        family: Family::CertExpiry,
        name: "mailpulse_tls_cert_expiry_timestamp_seconds",
        help: "Earliest notAfter of the certificate chain the target presented, as a Unix timestamp; labelled with the latest connection's TLS version and cipher.",
        kind: "gauge",
        labels: &["cipher", "target", "version"],
    },
];

/// The per-target probe families.
#[derive(Debug, Default)]
pub struct TargetFamilies {
    targets: SeriesTable<Series>,
}

impl TargetFamilies {
    /// No targets yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The names of the families, sorted.
    pub fn names() -> impl Iterator<Item = &'static str> {
        FAMILIES.iter().map(|f| f.name)
    }

    /// Runs `f` on `target`'s series, creating it for `kind` if needed.
    fn with(&self, target: &str, kind: ProbeKind, f: impl FnOnce(&mut Series)) {
        self.targets.with(
            target,
            || Series::new(kind),
            |s| {
                s.set_kind(kind);
                f(s);
            },
        );
    }

    /// Records one probe result.
    pub fn record(&self, s: &Sample) {
        self.with(&s.target, s.kind, |series| {
            series.success = Some(s.success());
            for (phase, d) in &s.phases {
                series.last[*phase as usize] = Some(d.as_secs_f64());
            }
            if let Some(f) = &s.failure {
                let slot = &mut series.failures[reason_index(f.reason)];
                *slot = Some(slot.unwrap_or(0) + 1);
            }
            if let Some(code) = s.status {
                series.status = Some(code);
            }
            if let Some(tls) = &s.tls {
                if let Some(expiry) = tls.earliest_expiry {
                    series.cert_expiry = Some(expiry as f64);
                }
                if series
                    .tls
                    .as_ref()
                    .is_none_or(|(v, c)| *v != tls.version || *c != tls.cipher)
                {
                    series.tls = Some((tls.version.clone(), tls.cipher.clone()));
                }
            }
            if let Some(count) = s.messages {
                series.messages = Some(count);
            }
        });
    }

    /// Creates a configured target's failure counters at zero, one per
    /// reason in `reasons` (those it can meet), so that `rate()` and
    /// `increase()` see its first failure.
    pub fn add_target(&self, target: &str, kind: ProbeKind, reasons: &[FailureReason]) {
        self.with(target, kind, |series| {
            for r in reasons {
                series.failures[reason_index(*r)].get_or_insert(0);
            }
        });
    }

    /// Removes every series of a target that is no longer configured.
    pub fn remove_target(&self, target: &str) {
        self.targets.remove(target);
    }

    /// Writes the family `name` (one of [`TargetFamilies::names`]) in the
    /// `format`; nothing when it has no series, as the registry does.
    pub fn encode(&self, name: &str, format: Format, out: &mut Vec<u8>) {
        let Some(def) = FAMILIES.iter().find(|f| f.name == name) else {
            return;
        };
        let map = self.targets.sorted();
        // TLS version and cipher live under each target's lock: copied out,
        // with the certificate's expiry.
        let mut tls: Vec<(String, &str, String, f64)> = Vec::new();
        // The sort key (ranks of the label values before `target`), the label
        // values in label-name order (unused slots empty), and the value. The
        // map lists targets sorted, and the stable sort keeps them so.
        let mut rows: Vec<((u8, u8), [&str; 3], f64)> = Vec::new();
        for (target, s) in map.iter() {
            let target = target.as_str();
            let s = lock(s);
            let (k, kr) = (s.kind.as_str(), order::kind(s.kind));
            match def.family {
                Family::Failures => {
                    for (r, n) in REASONS.iter().zip(s.failures) {
                        if let Some(n) = n {
                            let key = (kr, order::reason(*r));
                            rows.push((key, [k, r.as_str(), target], n as f64));
                        }
                    }
                }
                Family::HttpStatus => {
                    if let Some(code) = s.status {
                        rows.push(((0, 0), [target, "", ""], f64::from(code)));
                    }
                }
                Family::LastDuration => {
                    for (p, v) in Phase::ALL.iter().zip(s.last) {
                        if let Some(v) = v {
                            let key = (kr, order::phase(*p));
                            rows.push((key, [k, p.as_str(), target], v));
                        }
                    }
                }
                Family::Mailbox => {
                    if let Some(n) = s.messages {
                        // As the crate's integer gauge held it.
                        let n = i64::try_from(n).unwrap_or(i64::MAX) as f64;
                        rows.push(((0, 0), [target, "", ""], n));
                    }
                }
                Family::Success => {
                    if let Some(ok) = s.success {
                        rows.push(((kr, 0), [k, target, ""], f64::from(u8::from(ok))));
                    }
                }
                Family::CertExpiry => {
                    if let (Some((version, cipher)), Some(t)) = (&s.tls, s.cert_expiry) {
                        tls.push((cipher.clone(), target, version.clone(), t));
                    }
                }
            }
        }
        // Ordered by cipher, then target (one series per target).
        tls.sort_by(|a, b| a.0.cmp(&b.0));
        rows.extend(tls.iter().map(|(cipher, target, version, expiry)| {
            (
                (0, 0),
                [cipher.as_str(), *target, version.as_str()],
                *expiry,
            )
        }));
        rows.sort_by_key(|r| r.0);
        write_rows(
            def,
            rows.into_iter().map(|(_, values, v)| (values, v)),
            format,
            out,
        );
    }
}

/// The slot of a failure reason in [`REASONS`].
fn reason_index(reason: FailureReason) -> usize {
    REASONS
        .iter()
        .position(|r| *r == reason)
        .expect("REASONS lists every reason")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

    use super::*;
    use crate::metrics::text;
    use crate::sample::{Failure, TlsInfo};

    /// The families as they were through the `prometheus` registry: the oracle.
    struct Oracle {
        reg: Registry,
        success: IntGaugeVec,
        last: GaugeVec,
        failures: IntCounterVec,
        status: IntGaugeVec,
        messages: IntGaugeVec,
        cert: GaugeVec,
    }

    impl Oracle {
        fn new() -> Oracle {
            let reg = Registry::new();
            let help = |n: &str| FAMILIES.iter().find(|f| f.name == n).unwrap().help;
            let opts = |n: &str| Opts::new(n, help(n));
            macro_rules! reg {
                ($t:ty, $n:expr, $l:expr) => {{
                    let v = <$t>::new(opts($n), $l).unwrap();
                    reg.register(Box::new(v.clone())).unwrap();
                    v
                }};
            }
            Oracle {
                success: reg!(IntGaugeVec, "mailpulse_probe_success", &["target", "kind"]),
                last: reg!(
                    GaugeVec,
                    "mailpulse_probe_last_duration_seconds",
                    &["target", "kind", "phase"]
                ),
                failures: reg!(
                    IntCounterVec,
                    "mailpulse_probe_failures_total",
                    &["target", "kind", "reason"]
                ),
                status: reg!(IntGaugeVec, "mailpulse_probe_http_status_code", &["target"]),
                messages: reg!(IntGaugeVec, "mailpulse_probe_mailbox_messages", &["target"]),
                cert: reg!(
                    GaugeVec,
                    "mailpulse_tls_cert_expiry_timestamp_seconds",
                    &["target", "version", "cipher"]
                ),
                reg,
            }
        }

        fn record(&self, s: &Sample) {
            let (t, k) = (s.target.as_str(), s.kind.as_str());
            self.success
                .with_label_values(&[t, k])
                .set(i64::from(s.success()));
            for (p, d) in &s.phases {
                self.last
                    .with_label_values(&[t, k, p.as_str()])
                    .set(d.as_secs_f64());
            }
            if let Some(f) = &s.failure {
                self.failures
                    .with_label_values(&[t, k, f.reason.as_str()])
                    .inc();
            }
            if let Some(c) = s.status {
                self.status.with_label_values(&[t]).set(i64::from(c));
            }
            if let Some(tls) = &s.tls {
                if let Some(e) = tls.earliest_expiry {
                    self.cert
                        .with_label_values(&[t, tls.version.as_str(), tls.cipher.as_str()])
                        .set(e as f64);
                }
            }
            if let Some(m) = s.messages {
                self.messages.with_label_values(&[t]).set(m as i64);
            }
        }

        fn text(&self) -> String {
            let mut out = Vec::new();
            text::encode(&self.reg.gather(), &mut out);
            String::from_utf8(out).unwrap()
        }
    }

    fn ours(f: &TargetFamilies) -> String {
        let mut out = Vec::new();
        for name in TargetFamilies::names() {
            f.encode(name, crate::metrics::Format::Text, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    fn sample(target: &str, kind: ProbeKind, ms: f64) -> Sample {
        Sample {
            target: target.to_string(),
            kind,
            started_at: chrono::DateTime::UNIX_EPOCH,
            steady_at: chrono::DateTime::UNIX_EPOCH,
            phases: vec![
                (Phase::Connect, Duration::from_secs_f64(ms / 3000.0)),
                (Phase::Total, Duration::from_secs_f64(ms / 1000.0)),
            ],
            failure: None,
            status: None,
            tls: None,
            schedule_lag: Duration::ZERO,
            notes: Vec::new(),
            messages: None,
        }
    }

    fn failure(reason: FailureReason) -> Failure {
        Failure {
            reason,
            phase: Phase::Total,
            message: "failed".into(),
        }
    }

    #[test]
    fn writes_what_the_registry_wrote() {
        let oracle = Oracle::new();
        let ours_ = TargetFamilies::new();
        let mut owa = sample("owa", ProbeKind::Http, 184.1);
        owa.status = Some(200);
        owa.tls = Some(TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            earliest_expiry: Some(1_800_000_000),
        });
        let mut ews = sample("ews \"2\"", ProbeKind::Http, 31_000.0);
        ews.failure = Some(failure(FailureReason::Timeout));
        ews.status = Some(503);
        // A second TLS target whose cipher sorts first though its name sorts last.
        let mut zimbra = sample("zimbra", ProbeKind::Http, 12.0);
        zimbra.tls = Some(TlsInfo {
            version: "TLSv1.2".into(),
            cipher: "TLS12_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            earliest_expiry: Some(1_700_000_000),
        });
        let mut imap = sample("a-imap", ProbeKind::Imap, 9.5);
        imap.messages = Some(42);
        let mut imap_failed = imap.clone();
        imap_failed.failure = Some(failure(FailureReason::Auth));
        for s in [&owa, &ews, &imap, &ews, &imap_failed, &zimbra] {
            oracle.record(s);
            ours_.record(s);
        }
        assert_eq!(ours(&ours_), oracle.text());

        // Configured targets get their counters at zero.
        for r in REASONS {
            oracle
                .failures
                .with_label_values(&["smtp", "smtp", r.as_str()]);
        }
        ours_.add_target("smtp", ProbeKind::Smtp, &FailureReason::ALL);
        assert_eq!(ours(&ours_), oracle.text());
    }

    #[test]
    fn removing_a_target_removes_its_series_and_empty_families_write_nothing() {
        let f = TargetFamilies::new();
        assert_eq!(ours(&f), "");
        f.add_target("t", ProbeKind::Http, &FailureReason::ALL);
        f.record(&sample("t", ProbeKind::Http, 5.0));
        assert!(ours(&f).contains("mailpulse_probe_success{kind=\"http\",target=\"t\"} 1\n"));
        f.remove_target("t");
        assert_eq!(ours(&f), "");
    }

    #[test]
    fn a_kind_change_starts_the_kind_labelled_series_over() {
        let f = TargetFamilies::new();
        let mut s = sample("t", ProbeKind::Http, 5.0);
        s.status = Some(200);
        f.record(&s);
        f.record(&sample("t", ProbeKind::Tcp, 1.0));
        let text = ours(&f);
        assert!(!text.contains("kind=\"http\""), "{text}");
        assert!(text.contains("mailpulse_probe_success{kind=\"tcp\",target=\"t\"} 1\n"));
        assert!(text.contains("mailpulse_probe_http_status_code{target=\"t\"} 200\n"));
    }

    #[test]
    fn a_tls_target_has_one_series_labelled_by_its_latest_connection() {
        let f = TargetFamilies::new();
        let tls = |version: &str, cipher: &str, expiry: Option<i64>| {
            let mut s = sample("owa", ProbeKind::Http, 5.0);
            s.tls = Some(TlsInfo {
                version: version.into(),
                cipher: cipher.into(),
                earliest_expiry: expiry,
            });
            s
        };
        f.record(&tls(
            "TLSv1.2",
            "TLS12_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            Some(1_700_000_000),
        ));
        f.record(&tls(
            "TLSv1.3",
            "TLS13_AES_256_GCM_SHA384",
            Some(1_800_000_000),
        ));
        let text = ours(&f);
        let expiry: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("mailpulse_tls_cert_expiry_timestamp_seconds{"))
            .collect();
        assert_eq!(
            expiry,
            ["mailpulse_tls_cert_expiry_timestamp_seconds{cipher=\"TLS13_AES_256_GCM_SHA384\",target=\"owa\",version=\"TLSv1.3\"} 1800000000"]
        );
        assert!(!text.contains("tls_info"), "{text}");
        // A connection whose chain gave no expiry keeps the one known.
        f.record(&tls("TLSv1.3", "TLS13_AES_128_GCM_SHA256", None));
        assert!(ours(&f).contains(
            "mailpulse_tls_cert_expiry_timestamp_seconds{cipher=\"TLS13_AES_128_GCM_SHA256\",target=\"owa\",version=\"TLSv1.3\"} 1800000000\n"
        ));
    }
}
