//! The agent's own health: build information, configuration reloads, and the
//! standard `process_*` metrics of this process.

use prometheus::{Gauge, IntGauge, IntGaugeVec, Opts, Registry};

use super::register;

/// Families describing the agent itself.
#[derive(Clone)]
pub struct AgentMetrics {
    /// 1 when the last configuration (re)load succeeded.
    pub reload_success: IntGauge,
    /// Unix time of the last successful (re)load.
    pub reload_timestamp: Gauge,
    /// Number of configured targets.
    pub targets: IntGauge,
}

impl AgentMetrics {
    /// Registers the agent families (and the process collector) on `reg`.
    pub fn register(reg: &Registry, instance: &str) -> prometheus::Result<Self> {
        let build = register(
            reg,
            IntGaugeVec::new(
                Opts::new(
                    "mailpulse_build_info",
                    "Build information of the running agent; always 1.",
                ),
                &["version", "instance"],
            )?,
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), instance])
            .set(1);
        reg.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(AgentMetrics {
            reload_success: register(
                reg,
                IntGauge::new(
                    "mailpulse_config_last_reload_successful",
                    "Whether the last configuration (re)load succeeded (1) or was rejected (0).",
                )?,
            )?,
            reload_timestamp: register(
                reg,
                Gauge::new(
                    "mailpulse_config_last_reload_success_timestamp_seconds",
                    "Unix time of the last successful configuration (re)load.",
                )?,
            )?,
            targets: register(
                reg,
                IntGauge::new("mailpulse_targets", "Number of configured probe targets.")?,
            )?,
        })
    }
}
