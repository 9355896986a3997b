//! Metrics: owns the Prometheus registry and the metric families, each group
//! registered by its own submodule on an explicit [`Registry`] (so every test
//! builds its own).
//!
//! Metric names are a contract with dashboards and alert rules: change them
//! only with a note in the README. This module records what it is given; it
//! never probes, collects or decides anything.

pub mod agent;
pub mod alert;
pub mod detect;
pub mod histogram;
pub mod host;
pub mod probe;
pub mod server;
pub mod text;

use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::Registry;

/// Histogram buckets for latencies from 0.5 ms to 30 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

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
    /// Size of the last page, so the next one is written without regrowing.
    last_size: AtomicUsize,
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
        Ok(Metrics {
            registry,
            probe,
            agent,
            host,
            detect,
            alert,
            last_size: AtomicUsize::new(16 * 1024),
        })
    }

    /// The registry in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> Vec<u8> {
        let families = self.registry.gather();
        let mut out = Vec::with_capacity(self.last_size.load(Ordering::Relaxed) + 4096);
        // The registry's families come sorted by name; the phase histograms
        // (kept outside it) go in their place among them.
        let split = families.partition_point(|f| f.name() < self.probe.duration.name());
        text::encode(&families[..split], &mut out);
        self.probe.duration.encode(&mut out);
        text::encode(&families[split..], &mut out);
        self.last_size.store(out.len(), Ordering::Relaxed);
        out
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
