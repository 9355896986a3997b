//! Metrics: owns the Prometheus registry and the metric families, each group
//! registered by its own submodule on an explicit [`Registry`] (so every test
//! builds its own).
//!
//! Metric names are a contract with dashboards and alert rules: change them
//! only with a note in the README. This module records what it is given; it
//! never probes, collects or decides anything.

pub mod agent;
pub mod alert;
mod auth;
mod connections;
pub mod detect;
pub mod histogram;
pub mod host;
mod order;
pub mod probe;
pub mod process;
pub mod protobuf;
pub mod server;
pub mod soak;
mod table;
pub mod targets;
pub mod text;
pub mod web;
pub mod window;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use prometheus::Registry;

/// The formats `/metrics` is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The text format, version 0.0.4 (what a scraper gets by default).
    Text,
    /// Length-delimited `io.prometheus.client.MetricFamily` messages
    /// ([`protobuf`]), with the native latency histograms.
    Protobuf,
}

/// Every metric family the agent exports.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Probe results.
    pub probe: probe::ProbeMetrics,
    /// The agent's own health.
    pub agent: agent::AgentMetrics,
    /// Host load.
    pub host: host::HostMetrics,
    /// Detector state and incidents.
    pub detect: detect::DetectMetrics,
    /// Alert delivery and the outbox.
    pub alert: alert::AlertMetrics,
    /// The metrics listener itself: connections and authentication.
    pub web: web::WebMetrics,
    /// The soak-test run and phase in progress.
    pub soak: soak::SoakMetrics,
    /// Change windows open, and their incidents' outcomes.
    pub window: window::WindowMetrics,
    /// Size of the last page, so the next one is written without regrowing.
    last_size: AtomicUsize,
    /// The buffer of the last page, back from the HTTP layer (see [`Metrics::page`]).
    spare_page: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Metrics {
    /// Registers every family on a new registry.
    pub fn new(instance: &str) -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let probe = probe::ProbeMetrics::register(&registry)?;
        let agent = agent::AgentMetrics::register(&registry, instance)?;
        let host = host::HostMetrics::register(&registry)?;
        let detect = detect::DetectMetrics::register(&registry)?;
        let alert = alert::AlertMetrics::register(&registry)?;
        let web = web::WebMetrics::register(&registry)?;
        let soak = soak::SoakMetrics::register(&registry)?;
        let window = window::WindowMetrics::register(&registry)?;
        Ok(Metrics {
            registry,
            probe,
            agent,
            host,
            detect,
            alert,
            web,
            soak,
            window,
            last_size: AtomicUsize::new(16 * 1024),
            spare_page: Arc::default(),
        })
    }

    /// Adds the standard `process_*` families, read by `read` at each
    /// scrape (the agent passes `collect::own::read_self`).
    pub fn register_process(&self, read: process::Reader) -> prometheus::Result<()> {
        process::ProcessMetrics::register(&self.registry, read)
    }

    /// The registry in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(Format::Text)
    }

    /// The registry in `format`.
    pub fn encode_as(&self, format: Format) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.last_size.load(Ordering::Relaxed) + 4096);
        self.write_page(format, &mut out);
        out
    }

    /// The same page for the HTTP response, written into a buffer that is
    /// reused: when the response is dropped, its buffer comes back for the
    /// next scrape. A fresh page-sized buffer per scrape (485 KiB at 50
    /// targets) is freed into whichever allocator arena the serving thread
    /// has, and each arena kept its own high-water mark resident.
    pub fn page(&self) -> Bytes {
        self.page_as(Format::Text)
    }

    /// [`Metrics::page`] in `format`.
    pub fn page_as(&self, format: Format) -> Bytes {
        let mut out = self
            .spare_page
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        out.clear();
        out.reserve(self.last_size.load(Ordering::Relaxed) + 4096);
        self.write_page(format, &mut out);
        Bytes::from_owner(Page {
            bytes: out,
            home: self.spare_page.clone(),
        })
    }

    fn write_page(&self, format: Format, out: &mut Vec<u8>) {
        let families = self.registry.gather();
        // The families kept outside the registry, sorted by name like the
        // registry's, go in their places among them.
        enum Outside {
            Targets,
            Detect,
            Histograms,
        }
        let mut outside: Vec<(&'static str, Outside)> = targets::TargetFamilies::names()
            .map(|n| (n, Outside::Targets))
            .chain(detect::DetectMetrics::names().map(|n| (n, Outside::Detect)))
            .chain([(self.probe.duration.name(), Outside::Histograms)])
            .collect();
        outside.sort_unstable_by_key(|o| o.0);
        let mut rest = &families[..];
        for (name, owner) in outside {
            let split = rest.partition_point(|f| f.name() < name);
            encode_registry(format, &rest[..split], out);
            rest = &rest[split..];
            match owner {
                Outside::Targets => self.probe.targets.encode(name, format, out),
                Outside::Detect => self.detect.encode(name, format, out),
                Outside::Histograms => self.probe.duration.encode(format, out),
            }
        }
        encode_registry(format, rest, out);
        self.last_size.store(out.len(), Ordering::Relaxed);
    }
}

/// Writes families of the registry in `format`.
fn encode_registry(
    format: Format,
    families: &[prometheus::proto::MetricFamily],
    out: &mut Vec<u8>,
) {
    match format {
        Format::Text => text::encode(families, out),
        Format::Protobuf => protobuf::encode(families, out),
    }
}

/// A page handed to the HTTP layer; its buffer returns to `home` when dropped.
struct Page {
    bytes: Vec<u8>,
    home: Arc<Mutex<Option<Vec<u8>>>>,
}

impl AsRef<[u8]> for Page {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let mut spare = self.home.lock().unwrap_or_else(PoisonError::into_inner);
        // With two scrapes at once, the second buffer is simply freed.
        if spare.is_none() {
            *spare = Some(std::mem::take(&mut self.bytes));
        }
    }
}

/// Creates a collector with `new`, registers it, and returns it.
pub(crate) fn register<C>(reg: &Registry, collector: C) -> prometheus::Result<C>
where
    C: prometheus::core::Collector + Clone + 'static,
{
    reg.register(Box::new(collector.clone()))?;
    Ok(collector)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Families from the registry and from outside it interleave by name,
    /// each once, as the registry alone listed them.
    #[test]
    fn families_are_listed_once_each_sorted_by_name() {
        use crate::sample::{Phase, ProbeKind, Sample};
        let m = Metrics::new("test").unwrap();
        m.probe
            .add_target("owa", ProbeKind::Http, &[crate::sample::FailureReason::Dns]);
        m.probe.record(&Sample {
            target: "owa".into(),
            kind: ProbeKind::Http,
            started_at: chrono::DateTime::UNIX_EPOCH,
            steady_at: chrono::DateTime::UNIX_EPOCH,
            phases: vec![(Phase::Total, std::time::Duration::from_millis(3))],
            failure: None,
            status: Some(200),
            tls: None,
            schedule_lag: std::time::Duration::ZERO,
            notes: Vec::new(),
            messages: None,
        });
        let page = String::from_utf8(m.encode()).unwrap();
        let names: Vec<&str> = page
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for family in [
            "mailpulse_probe_duration_seconds",
            "mailpulse_probe_failures_total",
            "mailpulse_probe_http_status_code",
            "mailpulse_probe_last_duration_seconds",
            "mailpulse_probe_schedule_lag_seconds",
            "mailpulse_probe_success",
        ] {
            assert!(names.contains(&family), "{family} missing: {names:?}");
        }
    }

    #[test]
    fn a_page_is_the_encoding_and_its_buffer_is_reused() {
        let m = Metrics::new("test").unwrap();
        let page = m.page();
        // The process collector's samples (resident memory, CPU) move
        // between two renders; everything else must be the same bytes.
        let stable = |b: &[u8]| -> String {
            String::from_utf8_lossy(b)
                .lines()
                .filter(|l| !l.starts_with("process_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(stable(page.as_ref()), stable(&m.encode()));
        let first = page.as_ptr();
        drop(page);
        let again = m.page();
        assert_eq!(
            again.as_ptr(),
            first,
            "the buffer came back for the next page"
        );
        // While a page is out, the next one gets a buffer of its own.
        let other = m.page();
        assert_ne!(other.as_ptr(), again.as_ptr());
        assert_eq!(stable(&other), stable(&again));
    }
}
