//! The systemd watchdog feeder: WATCHDOG=1 at half the watchdog period,
//! only while every loop registered with [`Health`] makes progress, so a
//! wedged scheduler stops the pings and systemd restarts the agent.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::systemd;
use crate::health::Health;

/// Sends WATCHDOG=1 at half the watchdog period, only while every loop is
/// live: a wedged scheduler stops the pings and systemd restarts the agent.
pub async fn feed(period: Duration, health: Arc<Health>, token: CancellationToken) {
    watchdog_loop(period, &health, &token, systemd::watchdog, |stale| {
        tracing::error!(stale = %stale.join(", "), "loops stopped making progress; withholding the watchdog");
        systemd::status(&format!("stalled: {}", stale.join(", ")));
    })
    .await;
}

/// The watchdog loop with its effects injected: `ping` when all loops are
/// live, `stalled` once when some stop (and again after they recover and stall anew).
async fn watchdog_loop(
    period: Duration,
    health: &Health,
    token: &CancellationToken,
    mut ping: impl FnMut(),
    mut stalled: impl FnMut(&[String]),
) {
    let mut ticker = tokio::time::interval(period / 2);
    let mut was_stale = false;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = ticker.tick() => {}
        }
        match health.check() {
            Ok(()) => {
                ping();
                was_stale = false;
            }
            Err(stale) => {
                if !was_stale {
                    stalled(&stale);
                }
                was_stale = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_stops_while_a_loop_is_wedged() {
        let health = Health::new();
        let token = CancellationToken::new();
        let pings = Arc::new(AtomicUsize::new(0));
        let stalls = Arc::new(AtomicUsize::new(0));
        // A loop allowed 1 s (+ slack) between beats, which beats for a while, then wedges.
        let beat = health.register("target owa", Duration::from_secs(1));
        let task = {
            let (health, token, pings, stalls) =
                (health.clone(), token.clone(), pings.clone(), stalls.clone());
            tokio::spawn(async move {
                watchdog_loop(
                    Duration::from_secs(2),
                    &health,
                    &token,
                    || {
                        pings.fetch_add(1, Ordering::SeqCst);
                    },
                    |_| {
                        stalls.fetch_add(1, Ordering::SeqCst);
                    },
                )
                .await
            })
        };
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            beat.beat();
        }
        let live_pings = pings.load(Ordering::SeqCst);
        assert!(
            live_pings >= 19,
            "pinged {live_pings} times in 20 s at a 1 s cadence"
        );
        assert_eq!(stalls.load(Ordering::SeqCst), 0);
        // Wedge: no more beats. After the allowance the pings stop for good.
        tokio::time::sleep(crate::health::SLACK + Duration::from_secs(3)).await;
        let at_stall = pings.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            pings.load(Ordering::SeqCst),
            at_stall,
            "pinged while wedged"
        );
        assert_eq!(stalls.load(Ordering::SeqCst), 1);
        token.cancel();
        task.await.unwrap();
    }
}
