//! Liveness of the agent's loops, for `/healthz` and the systemd watchdog.
//!
//! Every loop (a target's schedule, the host collector) holds a [`Heartbeat`]
//! and beats at each step. A loop is stale when it has not beaten within its
//! allowance (its interval plus its timeout plus slack). The watchdog is fed
//! only while no loop is stale, so a wedged scheduler lets systemd restart us.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Slack added to every allowance, for scheduling noise and slow hosts.
pub const SLACK: Duration = Duration::from_secs(10);

/// The set of registered loops.
#[derive(Debug)]
pub struct Health {
    base: Instant,
    next_id: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
}

#[derive(Debug)]
struct Entry {
    name: String,
    allowance: Duration,
    last_ms: Arc<AtomicU64>,
}

/// One loop's heartbeat; dropping it unregisters the loop.
#[derive(Debug)]
pub struct Heartbeat {
    health: Arc<Health>,
    id: u64,
    last_ms: Arc<AtomicU64>,
}

impl Health {
    /// An empty set, with the clock starting now.
    pub fn new() -> Arc<Health> {
        Arc::new(Health {
            base: Instant::now(),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        })
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Registers a loop that must beat at least every `allowance` (plus [`SLACK`]).
    pub fn register(self: &Arc<Self>, name: &str, allowance: Duration) -> Heartbeat {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let last_ms = Arc::new(AtomicU64::new(self.now_ms()));
        self.entries.lock().expect("health lock").insert(
            id,
            Entry {
                name: name.to_string(),
                allowance: allowance + SLACK,
                last_ms: last_ms.clone(),
            },
        );
        Heartbeat {
            health: self.clone(),
            id,
            last_ms,
        }
    }

    /// `Ok` when every loop beat within its allowance, else the stale loops' names.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let now = self.now_ms();
        let entries = self.entries.lock().expect("health lock");
        let mut stale: Vec<String> = entries
            .values()
            .filter(|e| {
                let age = now.saturating_sub(e.last_ms.load(Ordering::Relaxed));
                Duration::from_millis(age) > e.allowance
            })
            .map(|e| e.name.clone())
            .collect();
        stale.sort();
        if stale.is_empty() {
            Ok(())
        } else {
            Err(stale)
        }
    }
}

impl Heartbeat {
    /// Records progress now.
    pub fn beat(&self) {
        self.last_ms.store(self.health.now_ms(), Ordering::Relaxed);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Ok(mut entries) = self.health.entries.lock() {
            entries.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_stops_beating_goes_stale() {
        let health = Health::new();
        let a = health.register("target owa", Duration::from_secs(10));
        let _b = health.register("host", Duration::from_secs(60));
        assert_eq!(health.check(), Ok(()));
        tokio::time::sleep(Duration::from_secs(15)).await;
        a.beat();
        assert_eq!(health.check(), Ok(()));
        tokio::time::sleep(Duration::from_secs(21)).await;
        assert_eq!(health.check(), Err(vec!["target owa".to_string()]));
        drop(a);
        assert_eq!(health.check(), Ok(()));
    }
}
