//! Alerts waiting in memory for the state store. When the store cannot take
//! a write (a full disk, an I/O error), the alert the incident layer hands
//! over is kept here, in order, and written to the outbox by [`enqueue()`] once
//! the store takes writes again; only then is it sent, as every alert is
//! (the outbox comes before any attempt). Nothing here is durable: this is
//! what keeps a page while the disk that should keep it is full.
//!
//! The queue is bounded by [`MAX_PENDING`]. When it is full, the least useful
//! alert goes first, and each one dropped is counted and logged:
//! 1. an update superseded by a later alert of the same incident still
//!    waiting (an escalation's earlier firing when a later firing waits);
//! 2. else both pages of the oldest incident that opened and closed while
//!    waiting (its record stays in the incident history);
//! 3. else the oldest alert.
//!
//! The first incident (firing) and last word (resolved) of every incident
//! are what matter most, so they go last.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use super::{enqueue, AlertEvent, AlertStatus, Alerting};
use crate::store::{Store, StoreError};

/// Alerts kept in memory at most (about 1 KiB each).
pub const MAX_PENDING: usize = 1000;

/// Alerts written to the outbox per [`Pending::flush`] at most (one durable
/// commit each), so a long backlog does not hold up the sample pipeline.
pub const MAX_FLUSH: usize = 200;

/// Why an alert was dropped before it reached the outbox; its `as_str()` is
/// the `reason` label of `mailpulse_alerts_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The memory queue was full.
    MemoryFull,
}

impl DropReason {
    /// Every reason, for pre-creating series.
    pub const ALL: [DropReason; 1] = [DropReason::MemoryFull];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::MemoryFull => "memory_full",
        }
    }
}

/// An alert and when it was made.
#[derive(Debug, Clone)]
struct Waiting {
    event: AlertEvent,
    at: DateTime<Utc>,
}

/// Alerts waiting for the store, oldest first.
#[derive(Debug)]
pub struct Pending {
    queue: VecDeque<Waiting>,
    cap: usize,
}

impl Default for Pending {
    fn default() -> Self {
        Pending::new(MAX_PENDING)
    }
}

impl Pending {
    /// An empty queue holding at most `cap` alerts (at least one).
    pub fn new(cap: usize) -> Pending {
        Pending {
            queue: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Alerts waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Keeps `event` (made at `at`) until the store takes it. Returns the
    /// alerts dropped to stay within the bound (see the module doc).
    pub fn push(&mut self, event: AlertEvent, at: DateTime<Utc>) -> Vec<AlertEvent> {
        self.queue.push_back(Waiting { event, at });
        let mut dropped = Vec::new();
        while self.queue.len() > self.cap {
            dropped.extend(self.evict());
        }
        dropped
    }

    /// Removes the least useful alert (or pair), per the module doc.
    fn evict(&mut self) -> Vec<AlertEvent> {
        let later = |i: usize, pred: &dyn Fn(&AlertEvent) -> bool| {
            let key = &self.queue[i].event.incident_key;
            self.queue
                .iter()
                .skip(i + 1)
                .position(|w| &w.event.incident_key == key && pred(&w.event))
                .map(|p| p + i + 1)
        };
        // 1. A firing superseded by a later firing of the same incident.
        let superseded = (0..self.queue.len()).find(|&i| {
            self.queue[i].event.status == AlertStatus::Firing
                && later(i, &|e| e.status == AlertStatus::Firing).is_some()
        });
        if let Some(i) = superseded {
            return self.queue.remove(i).into_iter().map(|w| w.event).collect();
        }
        // 2. The oldest incident whose firing and resolved both wait.
        let pair = (0..self.queue.len()).find_map(|i| {
            (self.queue[i].event.status == AlertStatus::Firing)
                .then(|| later(i, &|e| e.status == AlertStatus::Resolved))
                .flatten()
                .map(|j| (i, j))
        });
        if let Some((i, j)) = pair {
            let second = self.queue.remove(j);
            let first = self.queue.remove(i);
            return first.into_iter().chain(second).map(|w| w.event).collect();
        }
        // 3. The oldest.
        self.queue
            .pop_front()
            .into_iter()
            .map(|w| w.event)
            .collect()
    }

    /// Writes waiting alerts to the outbox with [`enqueue()`], oldest first and
    /// each at the time it was made, at most [`MAX_FLUSH`]. Stops at the first
    /// store error, keeping that alert and every later one. Returns how many
    /// were written.
    pub fn flush(&mut self, store: &Store, alerting: &Alerting) -> Result<usize, StoreError> {
        let mut written = 0;
        while written < MAX_FLUSH {
            let Some(next) = self.queue.front() else {
                break;
            };
            enqueue(store, alerting, &next.event, next.at)?;
            self.queue.pop_front();
            written += 1;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::sample_event;

    fn event(key: &str, status: AlertStatus, kind: &str) -> AlertEvent {
        AlertEvent {
            incident_key: key.into(),
            status,
            incident_kind: kind.into(),
            ..sample_event()
        }
    }

    fn keys(p: &Pending) -> Vec<String> {
        p.queue
            .iter()
            .map(|w| {
                format!(
                    "{}:{}:{}",
                    w.event.incident_key,
                    w.event.status.as_str(),
                    w.event.incident_kind
                )
            })
            .collect()
    }

    fn names(events: &[AlertEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| format!("{}:{}", e.incident_key, e.status.as_str()))
            .collect()
    }

    #[test]
    fn a_full_queue_drops_updates_then_finished_incidents_then_the_oldest() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut p = Pending::new(4);
        use AlertStatus::{Firing, Resolved};
        assert!(p.push(event("a", Firing, "slow"), now).is_empty());
        assert!(p.push(event("b", Firing, "slow"), now).is_empty());
        assert!(p.push(event("b", Resolved, "slow"), now).is_empty());
        assert!(p.push(event("a", Firing, "down"), now).is_empty());
        assert_eq!(p.len(), 4);
        // Full: a's first firing is superseded by its escalation.
        let gone = p.push(event("c", Firing, "slow"), now);
        assert_eq!(names(&gone), ["a:firing"]);
        assert_eq!(
            keys(&p),
            [
                "b:firing:slow",
                "b:resolved:slow",
                "a:firing:down",
                "c:firing:slow"
            ]
        );
        // Then b, which opened and closed while waiting, goes whole.
        let gone = p.push(event("d", Firing, "slow"), now);
        assert_eq!(names(&gone), ["b:firing", "b:resolved"]);
        assert_eq!(
            keys(&p),
            ["a:firing:down", "c:firing:slow", "d:firing:slow"]
        );
        p.push(event("e", Firing, "slow"), now);
        // Only first pages left: the oldest goes.
        let gone = p.push(event("f", Firing, "slow"), now);
        assert_eq!(names(&gone), ["a:firing"]);
        assert_eq!(p.len(), 4);
        assert_eq!(DropReason::MemoryFull.as_str(), "memory_full");
    }
}
