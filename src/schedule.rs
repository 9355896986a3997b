//! The probe schedule: one task per target, probing on its own interval,
//! concurrently with every other target, and sending each [`Sample`] on.
//!
//! Ticks are anchored to a fixed start (no drift over hours); a tick missed
//! because the host was starved is skipped rather than run in a burst (no
//! bunching), and the lateness of every start is carried in the sample as
//! `schedule_lag`. Targets start spread over their interval, by a hash of the
//! name, so a fleet of targets does not probe in lock-step.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::Target;
use crate::health::Health;
use crate::probe::{self, Prober};
use crate::sample::Sample;

/// Starts the probe loop of `target`, sending each sample on `samples` (as
/// whatever message type the receiver takes); it ends when `token` is
/// cancelled or the receiver of `samples` is gone.
pub fn spawn_target<T: From<Sample> + Send + 'static>(
    target: &Target,
    samples: mpsc::Sender<T>,
    token: CancellationToken,
    tracker: &TaskTracker,
    health: &Arc<Health>,
    clock: Arc<dyn Clock>,
) -> Result<(), probe::ProbeError> {
    let prober = Prober::new(target)?;
    let heartbeat = health.register(
        &format!("target {}", target.name),
        target.interval + target.timeout,
    );
    let interval = target.interval;
    let first = Instant::now() + start_offset(&target.name, interval);
    tracker.spawn(async move {
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            let scheduled = tokio::select! {
                _ = token.cancelled() => break,
                at = ticker.tick() => at,
            };
            heartbeat.beat();
            let lag = Instant::now().saturating_duration_since(scheduled);
            let sample = tokio::select! {
                _ = token.cancelled() => break,
                s = probe::run(&prober, clock.stamp(), lag) => s,
            };
            heartbeat.beat();
            if samples.send(T::from(sample)).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// Where in its interval a target's first probe starts: a stable fraction of
/// the interval derived from the name, capped so the first result comes soon.
pub fn start_offset(name: &str, interval: Duration) -> Duration {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    let fraction = (hasher.finish() % 10_000) as f64 / 10_000.0;
    interval.min(Duration::from_secs(5)).mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn target(interval: &str) -> Target {
        let text = format!(
            "[[target]]\nname = \"t\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\ninterval = \"{interval}\"\ntimeout = \"50ms\"\n"
        );
        config::parse(&text, None).unwrap().targets.remove(0)
    }

    #[test]
    fn start_offsets_are_stable_and_inside_the_interval() {
        let i = Duration::from_secs(10);
        assert_eq!(start_offset("owa", i), start_offset("owa", i));
        assert!(start_offset("owa", i) < Duration::from_secs(5));
        assert!(start_offset("x", Duration::from_millis(200)) < Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn probes_follow_the_interval_without_drift() {
        // Port 9 (discard) on loopback refuses at once: each probe is a fast failure.
        let t = target("1s");
        let (tx, mut rx) = mpsc::channel::<Sample>(16);
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let health = Health::new();
        let clock = crate::clock::TokioClock::starting_at(chrono::Utc::now());
        spawn_target(&t, tx, token.clone(), &tracker, &health, clock).unwrap();
        let mut starts = Vec::new();
        for _ in 0..5 {
            let s = rx.recv().await.unwrap();
            starts.push(s.started_at);
            assert!(
                s.schedule_lag < Duration::from_millis(50),
                "{:?}",
                s.schedule_lag
            );
        }
        for pair in starts.windows(2) {
            let gap = (pair[1] - pair[0]).to_std().unwrap();
            assert!(
                gap.abs_diff(Duration::from_secs(1)) < Duration::from_millis(100),
                "{gap:?}"
            );
        }
        token.cancel();
        tracker.close();
        tracker.wait().await;
    }

    /// A step of the system clock moves the samples' wall-clock start, not
    /// their steady one, which detection measures durations on.
    #[tokio::test(start_paused = true)]
    async fn samples_carry_the_steady_clock_across_a_step() {
        let t = target("1s");
        let (tx, mut rx) = mpsc::channel::<Sample>(16);
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let health = Health::new();
        let clock = crate::clock::TokioClock::starting_at(chrono::Utc::now());
        spawn_target(&t, tx, token.clone(), &tracker, &health, clock.clone()).unwrap();
        let before = rx.recv().await.unwrap();
        assert_eq!(before.started_at, before.steady_at);
        clock.step(chrono::Duration::hours(-1));
        let after = rx.recv().await.unwrap();
        assert_eq!(
            after.steady_at - after.started_at,
            chrono::Duration::hours(1)
        );
        let steady_gap = (after.steady_at - before.steady_at).to_std().unwrap();
        assert!(
            steady_gap.abs_diff(Duration::from_secs(1)) < Duration::from_millis(100),
            "{steady_gap:?}"
        );
        token.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
