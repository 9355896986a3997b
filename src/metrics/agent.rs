//! The agent's own health: build information, configuration reloads, the
//! state store's condition and alerts waiting in memory for it (the standard
//! `process_*` metrics of this process are `process.rs`'s).

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

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
    /// Failed reads and writes of the state store.
    pub store_errors: IntCounter,
    /// 1 while the state store is a durable file, 0 when the agent fell back to memory or the file is failing.
    pub store_durable: IntGauge,
    /// Damaged store files found (each moved aside and replaced).
    pub store_corruptions: IntCounter,
    /// Alerts waiting in memory for the state store to take them.
    pub alerts_pending_memory: IntGauge,
    /// Alerts dropped before they reached the outbox, by `reason` (the
    /// caller creates each reason's series at zero).
    pub alerts_dropped: IntCounterVec,
    /// Steps of the system clock seen in probe start times, by `direction`.
    pub clock_jumps: IntCounterVec,
}

impl AgentMetrics {
    /// Registers the agent families on `reg`.
    pub fn register(reg: &Registry, instance: &str) -> prometheus::Result<Self> {
        let build = register(
            reg,
            IntGaugeVec::new(
                Opts::new(
                    "mailpulse_build_info",
                    "Build information of the running agent; always 1.",
                ),
                &["version", "agent_instance"],
            )?,
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), instance])
            .set(1);
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
            store_errors: register(
                reg,
                IntCounter::new(
                    "mailpulse_state_store_errors_total",
                    "Failed reads and writes of the state store (incidents, alert outbox).",
                )?,
            )?,
            store_durable: register(
                reg,
                IntGauge::new(
                    "mailpulse_state_store_durable",
                    "1 while state is kept in the store file; 0 when the agent runs on a memory store because the file could not be opened, or while writes to the file fail (disk full) until one succeeds.",
                )?,
            )?,
            store_corruptions: register(
                reg,
                IntCounter::new(
                    "mailpulse_state_store_corruptions_total",
                    "Damaged state store files found (corrupt pages, or a panic of the database on their contents); each was moved aside as mailpulse.redb.corrupt-<UTC time> and replaced by a fresh file holding what could still be read.",
                )?,
            )?,
            alerts_pending_memory: register(
                reg,
                IntGauge::new(
                    "mailpulse_alerts_pending_in_memory",
                    "Alerts the state store could not take yet (disk full, I/O error), waiting in memory to be written to the outbox and sent; lost if the agent stops meanwhile.",
                )?,
            )?,
            alerts_dropped: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "mailpulse_alerts_dropped_total",
                        "Alerts dropped before they reached the outbox, by reason: memory_full (the in-memory queue for an unwritable store was full; superseded updates go first, then incidents that opened and closed meanwhile, then the oldest).",
                    ),
                    &["reason"],
                )?,
            )?,
            clock_jumps: register(
                reg,
                IntCounterVec::new(
                    Opts::new(
                        "mailpulse_clock_jumps_total",
                        "Steps of the system clock (forward or backward) by more than a second, seen against the agent's monotonic clock. Detection measures durations on the monotonic clock and is not affected; timestamps are.",
                    ),
                    &["direction"],
                )?,
            )?,
        })
    }
}
