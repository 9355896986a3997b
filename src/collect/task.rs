//! The host collection loop: every host interval, runs the [`HostCollector`]
//! on the blocking pool (procfs reads block) and hands the [`HostSnapshot`]
//! on, to whoever records it (the pipeline), without knowing who that is.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::HostCollector;
use crate::health::Heartbeat;
use crate::sample::host::HostSnapshot;

/// Collects host load every `interval` and sends each snapshot on `to`,
/// until `token` is cancelled, the receiver is gone, or a collection
/// panics. Missed ticks are skipped; `heartbeat` beats around each
/// collection.
pub async fn run<T: From<HostSnapshot>>(
    collector: HostCollector,
    interval: Duration,
    to: mpsc::Sender<T>,
    token: CancellationToken,
    heartbeat: Heartbeat,
) {
    let mut collector = Some(collector);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = ticker.tick() => {}
        }
        heartbeat.beat();
        let Some(mut c) = collector.take() else { break };
        let job = tokio::task::spawn_blocking(move || {
            let snapshot = c.collect();
            (c, snapshot)
        });
        let (c, snapshot) = tokio::select! {
            _ = token.cancelled() => break,
            done = job => match done {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::error!(error = %e, "host collection panicked; stopping it");
                    break;
                }
            },
        };
        let sent = tokio::select! {
            _ = token.cancelled() => break,
            sent = to.send(T::from(snapshot)) => sent,
        };
        if sent.is_err() {
            break;
        }
        collector = Some(c);
        heartbeat.beat();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::{fixture_dir, fixture_options};
    use crate::sample::host::CollectorKind;

    #[tokio::test(start_paused = true)]
    async fn snapshots_are_handed_on_every_interval_until_cancelled() {
        let collector = HostCollector::new(fixture_options(&fixture_dir()));
        let (tx, mut rx) = mpsc::channel::<HostSnapshot>(4);
        let token = CancellationToken::new();
        let health = crate::health::Health::new();
        let heartbeat = health.register("host collection", Duration::from_secs(1));
        let task = tokio::spawn(run(
            collector,
            Duration::from_secs(1),
            tx,
            token.clone(),
            heartbeat,
        ));
        for _ in 0..2 {
            let snapshot = rx.recv().await.expect("a snapshot");
            assert!(snapshot.load.is_some());
            assert!(snapshot
                .collector(CollectorKind::Load)
                .is_some_and(|c| c.success));
        }
        token.cancel();
        task.await.unwrap();
        assert!(rx.recv().await.is_none(), "the sender went with the task");
    }
}
