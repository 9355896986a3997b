//! Incidents: one slowdown detector per target, fed with every probe result,
//! and kept durable in the state store.
//!
//! A detector's state is saved whenever an incident opens, escalates or
//! closes (at once, in the same step), whenever a bad run starts or ends (so
//! a restart keeps an incident's original start), and otherwise at most once
//! a minute (so the learned baseline survives restarts too); an open
//! incident's record is saved with it, so the history shows its current
//! counts. Routine saves
//! are batched into one transaction per [`Incidents::flush`]. On start-up
//! the stored detectors are restored, so an incident open before a restart,
//! even a `kill -9`, continues rather than opening anew; the detector treats
//! the downtime as a data gap, which neither opens nor closes anything.
//!
//! When the store fails (disk full, unreadable file), detection keeps
//! running in memory and the failure is logged and counted by the caller. An
//! incident record whose save failed is kept and written with the next save
//! that succeeds (so is its detector), so the history loses nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration as WallDuration, Utc};

use crate::config::Target;
use crate::detect::{DetectEvent, Detector, Observation};
use crate::sample::Sample;
use crate::store::incidents::{self as table, Batch};
use crate::store::{Store, StoreError};

/// Longest time a detector's state goes unsaved while nothing notable happens.
const SAVE_EVERY_SECONDS: i64 = 60;

/// One target's detector and what was last saved of it.
#[derive(Debug)]
struct Tracked {
    detector: Detector,
    saved_at: Option<DateTime<Utc>>,
    saved_pending: Option<DateTime<Utc>>,
    dirty: bool,
}

/// Every target's detector.
#[derive(Debug)]
pub struct Incidents {
    store: Option<Store>,
    tracked: HashMap<String, Tracked>,
    /// States restored from the store that no configured target claimed yet.
    restored: HashMap<String, Detector>,
    /// Incident records whose save failed, by start and target (the latest
    /// version of each), until a save succeeds. At most
    /// [`table::MAX_HISTORY`]: the store keeps no more anyway.
    unsaved: BTreeMap<(DateTime<Utc>, String), crate::detect::Incident>,
}

impl Incidents {
    /// Restores the stored detectors (if any) and configures `targets`.
    pub fn load(store: Option<Store>, targets: &[Target]) -> Result<Incidents, StoreError> {
        let restored = match &store {
            Some(s) => table::load_detectors(s)?,
            None => HashMap::new(),
        };
        let mut incidents = Incidents {
            store,
            tracked: HashMap::new(),
            restored,
            unsaved: BTreeMap::new(),
        };
        incidents.configure(targets);
        Ok(incidents)
    }

    /// Follows a (re)loaded configuration: new targets get a detector (their
    /// stored one if there is one), changed settings apply to the running
    /// detector, removed targets are dropped.
    pub fn configure(&mut self, targets: &[Target]) {
        let names: HashSet<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        self.tracked.retain(|name, _| names.contains(name.as_str()));
        for t in targets {
            match self.tracked.get_mut(&t.name) {
                Some(tracked) => {
                    if tracked.detector.settings() != &t.slowdown {
                        tracked.detector.set_settings(t.slowdown.clone());
                        tracked.dirty = true;
                    }
                }
                None => {
                    let (detector, restored) = match self.restored.remove(&t.name) {
                        Some(mut d) => {
                            d.set_settings(t.slowdown.clone());
                            if let Some(i) = d.open_incident() {
                                tracing::info!(
                                    target = %t.name,
                                    kind = %i.kind,
                                    started_at = %i.started_at,
                                    "continuing an incident open before the restart"
                                );
                            }
                            (d, true)
                        }
                        None => (Detector::new(t.slowdown.clone()), false),
                    };
                    let pending = detector.pending_since();
                    self.tracked.insert(
                        t.name.clone(),
                        Tracked {
                            detector,
                            saved_at: None,
                            saved_pending: pending,
                            dirty: !restored,
                        },
                    );
                }
            }
        }
    }

    /// Feeds one probe result to its target's detector. Returns what changed;
    /// an event is saved (with the detector) before this returns, and the
    /// second value reports a failure to save it (the event stands regardless).
    pub fn observe(&mut self, sample: &Sample) -> (Option<DetectEvent>, Option<StoreError>) {
        let event = self.detect(sample);
        let error = match &event {
            Some(e) => self.save_event(&sample.target, e).err(),
            None => None,
        };
        (event, error)
    }

    /// The in-memory half of [`Incidents::observe`]: feeds the detector and
    /// notes what needs saving, without any IO. An event it returns must be
    /// passed to [`Incidents::save_event`]. The pipeline calls the halves
    /// apart so that only the rare sample with an event leaves the async
    /// worker for the store.
    pub fn detect(&mut self, sample: &Sample) -> Option<DetectEvent> {
        let tracked = self.tracked.get_mut(&sample.target)?;
        let observation = Observation::from_sample(sample);
        let event = tracked.detector.observe(&observation);
        if tracked.detector.pending_since() != tracked.saved_pending {
            tracked.dirty = true;
        }
        // On the detector's own axis, which a step back of the input shifts.
        let now = tracked.detector.last_observation_at();
        let stale = tracked.saved_at.is_none_or(|at| {
            now.is_some_and(|now| now - at >= WallDuration::seconds(SAVE_EVERY_SECONDS))
        });
        if stale {
            tracked.dirty = true;
        }
        event
    }

    /// Saves an event [`Incidents::detect`] returned, with its detector (and
    /// any incident record a failed save left), in one transaction (blocking
    /// IO). On failure the record is kept for the next save.
    pub fn save_event(&mut self, target: &str, event: &DetectEvent) -> Result<(), StoreError> {
        let (Some(tracked), Some(store)) = (self.tracked.get_mut(target), &self.store) else {
            return Ok(());
        };
        let mut incidents: Vec<(&str, &crate::detect::Incident)> = self
            .unsaved
            .iter()
            .map(|((_, t), i)| (t.as_str(), i))
            .collect();
        incidents.push((target, event.incident()));
        let batch = Batch {
            detectors: vec![(target, &tracked.detector)],
            incidents,
        };
        if let Err(e) = table::save(store, &batch) {
            tracked.dirty = true;
            let incident = event.incident();
            self.unsaved
                .insert((incident.started_at, target.to_string()), incident.clone());
            while self.unsaved.len() as u64 > table::MAX_HISTORY {
                self.unsaved.pop_first();
            }
            return Err(e);
        }
        self.unsaved.clear();
        tracked.dirty = false;
        tracked.saved_at = tracked.detector.last_observation_at();
        tracked.saved_pending = tracked.detector.pending_since();
        Ok(())
    }

    /// Whether [`Incidents::flush`] has anything to write.
    pub fn has_unsaved(&self) -> bool {
        self.store.is_some() && (!self.unsaved.is_empty() || self.tracked.values().any(|t| t.dirty))
    }

    /// Incident records waiting for a save that succeeds.
    pub fn unsaved_incidents(&self) -> usize {
        self.unsaved.len()
    }

    /// Saves every detector changed since the last save, with the incident
    /// records a failed save left, in one transaction.
    pub fn flush(&mut self) -> Result<usize, StoreError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let mut names: Vec<&String> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.dirty)
            .map(|(n, _)| n)
            .collect();
        if names.is_empty() && self.unsaved.is_empty() {
            return Ok(0);
        }
        names.sort();
        let mut incidents: Vec<(&str, &crate::detect::Incident)> = self
            .unsaved
            .iter()
            .map(|((_, t), i)| (t.as_str(), i))
            .collect();
        // An open incident's record follows its current counts.
        incidents.extend(names.iter().filter_map(|n| {
            let open = self.tracked[*n].detector.open_incident()?;
            Some((n.as_str(), open))
        }));
        let batch = Batch {
            detectors: names
                .iter()
                .map(|n| (n.as_str(), &self.tracked[*n].detector))
                .collect(),
            incidents,
        };
        table::save(store, &batch)?;
        self.unsaved.clear();
        let count = names.len();
        let names: Vec<String> = names.into_iter().cloned().collect();
        for n in names {
            if let Some(t) = self.tracked.get_mut(&n) {
                t.dirty = false;
                t.saved_pending = t.detector.pending_since();
                t.saved_at = t.detector.last_observation_at();
            }
        }
        Ok(count)
    }

    /// Notes on `target`'s open incident the soak-test run and phase it
    /// belongs to; saved with the detector.
    pub fn mark_open(&mut self, target: &str, run: &str, phase: Option<&str>) {
        if let Some(t) = self.tracked.get_mut(target) {
            t.detector.mark_open_incident(run, phase);
            t.dirty = true;
        }
    }

    /// Notes on `target`'s open incident the change window covering it;
    /// saved with the detector.
    pub fn mark_window(&mut self, target: &str, window: &str) {
        if let Some(t) = self.tracked.get_mut(target) {
            t.detector.mark_open_window(window);
            t.dirty = true;
        }
    }

    /// The detector of a target.
    pub fn detector(&self, target: &str) -> Option<&Detector> {
        self.tracked.get(target).map(|t| &t.detector)
    }

    /// Every target's detector.
    pub fn detectors(&self) -> impl Iterator<Item = (&str, &Detector)> {
        self.tracked.iter().map(|(n, t)| (n.as_str(), &t.detector))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: DateTime<Utc>, ms: u64) -> Sample {
        Sample::http_ok(at, at, ms)
    }

    /// Issue 16: "the open record shows its current counts". The stored
    /// record of an open incident follows the detector's counts with the
    /// routine saves, not only at its events.
    #[test]
    fn the_stored_open_record_has_its_current_counts() {
        let config = crate::config::parse(
            "[[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"https://127.0.0.1:9/\"\ninterval = \"10s\"\n",
            None,
        )
        .unwrap();
        let store = Store::in_memory().unwrap();
        let mut incidents = Incidents::load(Some(store.clone()), &config.targets).unwrap();
        let mut at: DateTime<Utc> = "2026-12-05T12:00:00Z".parse().unwrap();
        let mut opened = None;
        for k in 0..100 {
            let ms = if k < 40 { 200 } else { 4000 };
            let (event, error) = incidents.observe(&sample(at, ms));
            assert!(error.is_none());
            if let Some(DetectEvent::Opened(i)) = event {
                opened = Some(i);
            }
            if incidents.has_unsaved() {
                incidents.flush().unwrap();
            }
            at += WallDuration::seconds(10);
        }
        assert_eq!(opened.unwrap().slow_count, 7);
        let history = table::history(&store, 10).unwrap();
        assert_eq!(history.len(), 1);
        let stored = &history[0].incident;
        assert!(stored.is_open());
        // Saved at most a minute (six samples) ago.
        assert!(stored.slow_count >= 60 - 6, "{}", stored.slow_count);
        let live = incidents.detector("owa").unwrap().open_incident().unwrap();
        assert!(stored.slow_count <= live.slow_count);
    }
}
