//! Incident tables in the state store: each target's detector state (so a
//! restart, even after `kill -9`, continues an open incident with its
//! original start) and the incident history behind `mailpulse incidents`.
//!
//! Values are JSON, keyed by target name (detectors) and by start time plus
//! target (history, so a range scan in reverse is newest first). This module
//! stores and loads; it does not decide anything about incidents.

use std::collections::HashMap;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::salvage::{Report, Source};
use super::{Store, StoreError};
use crate::detect::{Detector, Incident};

/// Detector state per target: `target -> JSON(Detector)`.
const DETECTORS: TableDefinition<&str, &[u8]> = TableDefinition::new("detectors");
/// Incident history: `(started_at in microseconds, target) -> JSON(IncidentRecord)`.
const INCIDENTS: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("incidents");

/// Incidents kept in the history; the oldest beyond this are dropped.
pub const MAX_HISTORY: u64 = 10_000;

/// One incident of one target, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// The target's name.
    pub target: String,
    /// The incident with its timings.
    pub incident: Incident,
}

fn json_err(e: serde_json::Error) -> redb::Error {
    redb::Error::Corrupted(format!("invalid stored value: {e}"))
}

/// What to write in one transaction.
#[derive(Debug, Default)]
pub struct Batch<'a> {
    /// Detector states to save.
    pub detectors: Vec<(&'a str, &'a Detector)>,
    /// Incidents to insert or update.
    pub incidents: Vec<(&'a str, &'a Incident)>,
}

impl Batch<'_> {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty() && self.incidents.is_empty()
    }
}

/// Writes a batch of detector states and incidents in one durable transaction.
pub fn save(store: &Store, batch: &Batch<'_>) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    store.write(|tx| {
        {
            let mut table = tx.open_table(DETECTORS)?;
            for (target, detector) in &batch.detectors {
                let json = serde_json::to_vec(detector).map_err(json_err)?;
                table.insert(*target, json.as_slice())?;
            }
        }
        let mut table = tx.open_table(INCIDENTS)?;
        for (target, incident) in &batch.incidents {
            let record = IncidentRecord {
                target: target.to_string(),
                incident: (*incident).clone(),
            };
            let json = serde_json::to_vec(&record).map_err(json_err)?;
            let key = incident.started_at.timestamp_micros();
            table.insert((key, *target), json.as_slice())?;
        }
        // Keep the history bounded: drop the oldest beyond MAX_HISTORY.
        let excess = table.len()?.saturating_sub(MAX_HISTORY);
        for _ in 0..excess {
            if table.pop_first()?.is_none() {
                break;
            }
        }
        Ok(())
    })
}

/// Every stored detector state, by target. Unreadable entries are skipped
/// (and reported), so one bad value never stops the agent.
pub fn load_detectors(store: &Store) -> Result<HashMap<String, Detector>, StoreError> {
    store.read(|tx| {
        let mut out = HashMap::new();
        let table = match tx.open_table(DETECTORS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for entry in table.iter()? {
            let (k, v) = entry?;
            match serde_json::from_slice::<Detector>(v.value()) {
                Ok(d) => {
                    out.insert(k.value().to_string(), d);
                }
                Err(e) => tracing::warn!(target = k.value(), error = %e, "ignoring a stored detector state"),
            }
        }
        Ok(out)
    })
}

/// What the saved detector state of `target` says now: its open incident
/// (`None` when none is open) and its `recover_for`; `None` when no state
/// of the target is stored (or it does not read).
pub fn saved_open_incident(
    store: &Store,
    target: &str,
) -> Result<Option<(Option<Incident>, std::time::Duration)>, StoreError> {
    store.read(|tx| {
        let table = match tx.open_table(DETECTORS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(v) = table.get(target)? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<Detector>(v.value())
            .ok()
            .map(|d| (d.open_incident().cloned(), d.settings().recover_for)))
    })
}

/// Removes the stored detector state of targets not in `keep`.
pub fn forget_detectors_except(store: &Store, keep: &[&str]) -> Result<(), StoreError> {
    store.write(|tx| {
        let mut table = tx.open_table(DETECTORS)?;
        let stale: Vec<String> = table
            .iter()?
            .filter_map(|e| e.ok())
            .map(|(k, _)| k.value().to_string())
            .filter(|k| !keep.contains(&k.as_str()))
            .collect();
        for k in stale {
            table.remove(k.as_str())?;
        }
        Ok(())
    })
}

/// The incident history, newest first, at most `limit` entries.
pub fn history(store: &Store, limit: usize) -> Result<Vec<IncidentRecord>, StoreError> {
    store.read(|tx| {
        let table = match tx.open_table(INCIDENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for entry in table.iter()?.rev() {
            let (_, v) = entry?;
            if let Ok(record) = serde_json::from_slice::<IncidentRecord>(v.value()) {
                out.push(record);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    })
}

/// Which incidents [`select`] reads; every `None` matches all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection<'a> {
    /// Only this target's.
    pub target: Option<&'a str>,
    /// Only those started at or after this time (microseconds since the epoch).
    pub since_micros: Option<i64>,
    /// Only those started at or before this time (microseconds since the epoch).
    pub until_micros: Option<i64>,
    /// Only those opened during the soak run of this name.
    pub run: Option<&'a str>,
}

/// The incident history, newest first: those `which` selects, at most
/// `limit` entries.
pub fn select(
    store: &Store,
    which: &Selection<'_>,
    limit: usize,
) -> Result<Vec<IncidentRecord>, StoreError> {
    store.read(|tx| {
        let table = match tx.open_table(INCIDENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        let from = which.since_micros.unwrap_or(i64::MIN);
        let to = which.until_micros.unwrap_or(i64::MAX);
        if from > to {
            return Ok(out);
        }
        let upper = match to.checked_add(1) {
            Some(after) => std::ops::Bound::Excluded((after, "")),
            None => std::ops::Bound::Unbounded,
        };
        for entry in table
            .range::<(i64, &str)>((std::ops::Bound::Included((from, "")), upper))?
            .rev()
        {
            if out.len() >= limit {
                break;
            }
            let (k, v) = entry?;
            if which.target.is_some_and(|t| t != k.value().1) {
                continue;
            }
            if let Ok(record) = serde_json::from_slice::<IncidentRecord>(v.value()) {
                if which
                    .run
                    .is_some_and(|r| record.incident.run.as_deref() != Some(r))
                {
                    continue;
                }
                out.push(record);
            }
        }
        Ok(out)
    })
}

/// The newest incident whose key (start in microseconds, target) `matches`;
/// only that one is decoded.
pub fn find(
    store: &Store,
    matches: impl Fn(i64, &str) -> bool,
) -> Result<Option<IncidentRecord>, StoreError> {
    store.read(|tx| {
        let table = match tx.open_table(INCIDENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        for entry in table.iter()?.rev() {
            let (k, v) = entry?;
            let (at, target) = k.value();
            if matches(at, target) {
                return Ok(serde_json::from_slice::<IncidentRecord>(v.value()).ok());
            }
        }
        Ok(None)
    })
}

/// Opens the store read-only in spirit: callers only read. Kept here so the
/// CLI does not need to know the file layout.
pub fn database_exists(state_dir: &std::path::Path) -> bool {
    state_dir.join(super::FILE_NAME).exists()
}

/// The rows of this module's tables that [`collect`] could read and decode.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    /// `(target, JSON detector)`.
    detectors: Vec<(String, Vec<u8>)>,
    /// `((started_at in microseconds, target), JSON record)`.
    records: Vec<((i64, String), Vec<u8>)>,
}

/// Reads the detector and history tables from `source`, each on its own,
/// keeping the rows that decode.
pub(crate) fn collect(source: &Source<'_>, report: &mut Report) -> Collected {
    let detectors = source.rows(DETECTORS).keep("detectors", report, |k, v| {
        serde_json::from_slice::<Detector>(v).ok()?;
        Some((String::from_utf8(k.to_vec()).ok()?, v.to_vec()))
    });
    let records = source.rows(INCIDENTS).keep("incidents", report, |k, v| {
        serde_json::from_slice::<IncidentRecord>(v).ok()?;
        let (at, target) = <(i64, &str) as redb::Value>::from_bytes(k);
        Some(((at, target.to_string()), v.to_vec()))
    });
    Collected { detectors, records }
}

/// Writes what [`collect`] read into `tx`: rows replace the destination's
/// rows of the same key when `newer`, and are otherwise written only where
/// it has none. The history stays within [`MAX_HISTORY`].
pub(crate) fn apply(
    tx: &redb::WriteTransaction,
    c: &Collected,
    newer: bool,
) -> Result<(), redb::Error> {
    {
        let mut t = tx.open_table(DETECTORS)?;
        for (k, v) in &c.detectors {
            if newer || t.get(k.as_str())?.is_none() {
                t.insert(k.as_str(), v.as_slice())?;
            }
        }
    }
    let mut t = tx.open_table(INCIDENTS)?;
    for ((at, target), v) in &c.records {
        if newer || t.get((*at, target.as_str()))?.is_none() {
            t.insert((*at, target.as_str()), v.as_slice())?;
        }
    }
    let excess = t.len()?.saturating_sub(MAX_HISTORY);
    for _ in 0..excess {
        if t.pop_first()?.is_none() {
            break;
        }
    }
    Ok(())
}
