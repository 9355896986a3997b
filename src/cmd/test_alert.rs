//! `mailpulse test-alert --receiver NAME`: a clearly marked test
//! notification, sent now, straight to one receiver (not through the
//! outbox), to check wiring before a live weekend. Reads the alerting part
//! of the configuration itself and prints for humans.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use chrono::{DateTime, SubsecRound, Utc};

use super::{out, ConfigSource};
use crate::alert::{build_receiver, render, AlertEvent, AlertStatus, HostLoad, ReceiverContext};
use crate::store::Store;

/// `mailpulse test-alert`: sends a test notification to one receiver.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The receiver to send to, by name (`[[receiver]] name`).
    #[arg(long, value_name = "NAME")]
    pub receiver: String,
    /// Configuration file with the receiver. Without it,
    /// /etc/mailpulse/mailpulse.toml if it exists, else the built-in default
    /// (which has no receivers).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The synthetic incident a test notification describes.
fn test_event(instance: &str, severity: &str, now: DateTime<Utc>) -> AlertEvent {
    AlertEvent {
        incident_key: format!("{:016x}", now.timestamp_millis()),
        status: AlertStatus::Firing,
        reminder: false,
        test: true,
        instance: instance.to_string(),
        target: "test-alert".into(),
        probe_kind: "http".into(),
        incident_kind: "slow".into(),
        severity: severity.to_string(),
        started_at: now - chrono::Duration::seconds(125),
        detected_at: now - chrono::Duration::seconds(64),
        recovered_at: None,
        peak_latency_seconds: Some(2.4),
        baseline_latency_seconds: Some(0.12),
        new_baseline_latency_seconds: None,
        current_latency_seconds: Some(1.9),
        worst_phase: Some("first_byte".into()),
        slow_count: 4,
        failed_count: 0,
        last_error: None,
        held: None,
        host: Some(HostLoad {
            cpu_ratio: Some(0.42),
            load1: Some(1.5),
            memory_available_bytes: Some(2 * 1024 * 1024 * 1024),
            tcp_established: Some(321),
        }),
        run: None,
        phase: None,
        soak_phase: false,
        window: None,
        beyond_tolerance: None,
        window_summary: None,
    }
}

/// Runs `mailpulse test-alert`: sends a test notification (and, for
/// receivers that keep an open alert, its resolve) directly, not through the
/// outbox, and reports the outcome.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let source = ConfigSource::new(args.config.clone());
    let Some(path) = source.file() else {
        bail!(
            "no receiver named {:?}: the built-in default has no receivers; name the file that defines it with --config FILE",
            args.receiver
        );
    };
    let file = ConfigSource::Explicit(path.clone()).load_alerting()?;
    let Some(rc) = file.alerting.receiver(&args.receiver) else {
        let known: Vec<&str> = file
            .alerting
            .receivers
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        bail!(
            "no receiver named {:?} in {} (receivers: {})",
            args.receiver,
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    // Test notifications keep no state, so the daemon's store is left alone.
    let ctx = ReceiverContext {
        store: Store::in_memory()?,
        clock: crate::clock::system(),
        external_url: file.alerting.external_url.clone(),
    };
    let receiver = build_receiver(rc, &ctx).map_err(anyhow::Error::msg)?;
    let now = Utc::now().trunc_subsecs(0);
    let mut event = test_event(&file.instance, &file.alerting.default_severity, now);
    receiver
        .send(&event)
        .await
        .with_context(|| format!("test notification to {} ({}) failed", rc.name, rc.kind()))?;
    out::line(format_args!(
        "sent a test notification to {} ({}): {}",
        rc.name,
        rc.kind(),
        render::summary(&event)
    ));
    if receiver.stateful() {
        event.status = AlertStatus::Resolved;
        event.recovered_at = Some(now);
        receiver
            .send(&event)
            .await
            .with_context(|| format!("resolving the test alert at {} failed", rc.name))?;
        out::line(format_args!("resolved the test alert at {}", rc.name));
    }
    Ok(ExitCode::SUCCESS)
}
