//! The live status page (`/`, `/incidents/ID`) and its JSON API
//! (`/api/v1/status`, `/api/v1/incidents`, `/api/v1/incidents/ID`).
//!
//! The pipeline keeps a [`Board`] (per-target last hour, host load, agent
//! facts) behind [`Shared`]; it holds the lock for one update at a time,
//! and a request holds it only to copy the board out, so rendering never
//! holds up the pipeline. [`api::Pages`] answers the requests from a copy
//! of the board and the incident history and outbox in the store. `board`,
//! `json` and `html` are pure; `api` reads the store and the clock.

pub mod api;
pub mod board;
pub mod html;
pub mod json;

use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};

pub use board::{Board, TargetState};

/// The board the pipeline writes and the web server reads.
#[derive(Debug, Clone)]
pub struct Shared(Arc<RwLock<Board>>);

impl Shared {
    /// A shared empty board for agent `instance`, started at `started_at`.
    pub fn new(instance: &str, started_at: DateTime<Utc>) -> Shared {
        Shared(Arc::new(RwLock::new(Board::new(instance, started_at))))
    }

    /// Changes the board (the pipeline and reloads).
    pub fn update(&self, f: impl FnOnce(&mut Board)) {
        f(&mut self.0.write().unwrap_or_else(PoisonError::into_inner));
    }

    /// A copy of the board as it is now.
    pub fn snapshot(&self) -> Board {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// An incident's id in URLs and the API: 16 hex digits of a 64-bit FNV-1a
/// hash of its target and start (which identify it in the history).
pub fn incident_id(target: &str, started_at: DateTime<Utc>) -> String {
    id_of_key(started_at.timestamp_micros(), target)
}

/// [`incident_id`] from a history key (start in microseconds, target).
pub fn id_of_key(started_micros: i64, target: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let micros = started_micros.to_string();
    for part in [target, micros.as_str()] {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_ids_tell_targets_and_starts_apart() {
        let t = DateTime::from_timestamp(1_700_000_000, 5_000).unwrap();
        let a = incident_id("owa", t);
        assert_eq!(a.len(), 16);
        assert_eq!(a, id_of_key(t.timestamp_micros(), "owa"));
        assert_ne!(a, incident_id("owa2", t));
        assert_ne!(a, incident_id("owa", t + chrono::Duration::microseconds(1)));
    }
}
