//! Liveness of the agent's loops, for `/healthz` and the systemd watchdog, and
//! the conditions other parts report for `/healthz`.
//!
//! Every loop (a target's schedule, the host collector) holds a [`Heartbeat`]
//! and beats at each step. A loop is stale when it has not beaten within its
//! allowance (its interval plus its timeout plus slack). The watchdog is fed
//! only while no loop is stale, so a wedged scheduler lets systemd restart us.
//!
//! Conditions ([`Condition`]) say what a restart would not fix and would make
//! worse (the state store failing while alerts wait in memory): they make
//! `/healthz` answer 503, loudly, but never stop the watchdog.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Slack added to every allowance, for scheduling noise and slow hosts.
pub const SLACK: Duration = Duration::from_secs(10);

/// The set of registered loops, and the conditions reported.
#[derive(Debug)]
pub struct Health {
    base: Instant,
    next_id: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
    conditions: Mutex<BTreeMap<String, Vec<Condition>>>,
}

/// Something a part of the agent reports for `/healthz`, beside loop liveness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// A problem now (a line after `degraded: `); `/healthz` answers 503.
    Degraded(String),
    /// Worth knowing, not a problem now (a line after `note: `, e.g. a
    /// damaged store file moved aside); `/healthz` still answers 200.
    Note(String),
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
            conditions: Mutex::new(BTreeMap::new()),
        })
    }

    /// Replaces what `source` reports (nothing clears it).
    pub fn set_conditions(&self, source: &str, conditions: Vec<Condition>) {
        let mut all = self.conditions.lock().expect("health lock");
        if conditions.is_empty() {
            all.remove(source);
        } else if all.get(source) != Some(&conditions) {
            all.insert(source.to_string(), conditions);
        }
    }

    /// What `/healthz` answers: whether the agent is healthy (200) or not
    /// (503), and the body: `ok`, or `stale: LOOPS` and `degraded: ...`
    /// lines, then any `note: ...` lines.
    pub fn report(&self) -> (bool, String) {
        let stale = self.check().err();
        let all = self.conditions.lock().expect("health lock");
        let (mut degraded, mut notes) = (Vec::new(), Vec::new());
        for c in all.values().flatten() {
            match c {
                Condition::Degraded(m) => degraded.push(m.as_str()),
                Condition::Note(m) => notes.push(m.as_str()),
            }
        }
        let healthy = stale.is_none() && degraded.is_empty();
        let mut body = String::new();
        if let Some(stale) = stale {
            body.push_str(&format!("stale: {}\n", stale.join(", ")));
        }
        for d in degraded {
            body.push_str(&format!("degraded: {d}\n"));
        }
        if healthy {
            body.push_str("ok\n");
        }
        for n in notes {
            body.push_str(&format!("note: {n}\n"));
        }
        (healthy, body)
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

    #[tokio::test(start_paused = true)]
    async fn conditions_make_healthz_degraded_but_leave_the_watchdog_alone() {
        let health = Health::new();
        let a = health.register("target owa", Duration::from_secs(10));
        assert_eq!(health.report(), (true, "ok\n".to_string()));
        health.set_conditions(
            "state store",
            vec![
                Condition::Degraded("the state store is full".into()),
                Condition::Note("a damaged file was moved aside".into()),
            ],
        );
        health.set_conditions(
            "alerts",
            vec![Condition::Degraded("3 alerts waiting in memory".into())],
        );
        assert_eq!(
            health.report(),
            (
                false,
                "degraded: 3 alerts waiting in memory\ndegraded: the state store is full\n\
                 note: a damaged file was moved aside\n"
                    .to_string()
            )
        );
        assert_eq!(health.check(), Ok(()), "the watchdog is fed");
        tokio::time::sleep(Duration::from_secs(21)).await;
        assert_eq!(
            health.report().1,
            "stale: target owa\ndegraded: 3 alerts waiting in memory\n\
             degraded: the state store is full\nnote: a damaged file was moved aside\n"
        );
        a.beat();
        health.set_conditions("alerts", Vec::new());
        health.set_conditions(
            "state store",
            vec![Condition::Note("a damaged file was moved aside".into())],
        );
        assert_eq!(
            health.report(),
            (
                true,
                "ok\nnote: a damaged file was moved aside\n".to_string()
            )
        );
    }
}
