//! Change windows in the state store: named spans in which expected trouble
//! on some targets is recorded and held rather than paged (`mailpulse window
//! open|extend|close`, `[[window]]` occurrences), so a window, its end and
//! whether its summary went out survive restarts and `kill -9`.
//!
//! One table, `window id -> JSON(ChangeWindow)`, ids increasing. Every change
//! is one durable transaction that reads what it decides against, so a
//! command and the daemon's API never interleave half a change. Matching a
//! window's target patterns is alerting's business (the store keeps the
//! patterns as text). At most [`KEEP`] windows are kept: the oldest whose
//! summary went out go first.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{read_table, Store, StoreError};

/// Windows: `id -> JSON(ChangeWindow)`.
const WINDOWS: TableDefinition<u64, &[u8]> = TableDefinition::new("change_windows");

/// Windows kept at most; the oldest summarised ones go first.
pub const KEEP: usize = 500;
/// Longest window name, in bytes.
pub const MAX_NAME: usize = 128;
/// Longest note, in bytes.
pub const MAX_NOTE: usize = 1024;

/// Where a window came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowSource {
    /// `mailpulse window open` (locally or through the API).
    Command,
    /// An occurrence of a `[[window]]` of the configuration.
    Config,
}

/// One change window, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeWindow {
    /// Increasing id, unique in the store.
    pub id: u64,
    /// The window's name (unique among open windows).
    pub name: String,
    /// Where it came from.
    pub source: WindowSource,
    /// When it opens (the caller's stamp, so a fleet agrees).
    pub starts_at: DateTime<Utc>,
    /// When it expires unless extended or closed first.
    pub ends_at: DateTime<Utc>,
    /// When `window close` ended it early; `None` otherwise.
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    /// Target name patterns it covers (`*`, `?`); empty covers every target.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Latency at or above this many times the baseline is beyond tolerance.
    pub tolerance: f64,
    /// Down for longer than this is beyond tolerance (`max_down_seconds`
    /// in JSON, as `window list --json` shows it).
    #[serde(rename = "max_down_seconds", with = "seconds")]
    pub max_down: Duration,
    /// Open for longer than this is beyond tolerance (`max_incident_seconds`).
    #[serde(rename = "max_incident_seconds", with = "seconds")]
    pub max_incident: Duration,
    /// What the operator wrote about it.
    #[serde(default)]
    pub note: Option<String>,
    /// Who opened it.
    #[serde(default)]
    pub by: Option<String>,
    /// When its summary was queued for the receivers; `None` until then.
    #[serde(default)]
    pub summary_sent_at: Option<DateTime<Utc>>,
}

impl ChangeWindow {
    /// When it ends: its close, else its (possibly extended) expiry.
    pub fn end(&self) -> DateTime<Utc> {
        self.closed_at
            .map_or(self.ends_at, |closed| closed.min(self.ends_at))
    }

    /// Whether it is open at `at` (its targets aside).
    pub fn is_open_at(&self, at: DateTime<Utc>) -> bool {
        self.starts_at <= at && at < self.end()
    }

    /// Whether it has ended by `at` and its summary has not gone out.
    pub fn summary_due(&self, at: DateTime<Utc>) -> bool {
        self.end() <= at && self.summary_sent_at.is_none()
    }
}

/// Why a window change was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `open` of a name that is open (or scheduled) already.
    #[error("window {0:?} is already open; extend or close it (mailpulse window extend|close)")]
    Open(String),
    /// `extend` or `close` of a name with no open window.
    #[error("no window {0:?} is open")]
    NotOpen(String),
    /// A name, note, time or figure the store will not take.
    #[error("{0}")]
    Invalid(String),
}

impl WindowError {
    /// Whether the request itself was wrong (as opposed to the store failing).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, WindowError::Store(_))
    }
}

/// A duration as a number of seconds in JSON (the API and the store).
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

fn json_err(e: serde_json::Error) -> redb::Error {
    redb::Error::Corrupted(format!("invalid stored change window: {e}"))
}

fn decode_all(
    table: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Vec<ChangeWindow>, redb::Error> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        match serde_json::from_slice::<ChangeWindow>(v.value()) {
            Ok(w) => out.push(w),
            Err(e) => tracing::warn!(id = k.value(), error = %e, "ignoring a stored change window"),
        }
    }
    Ok(out)
}

fn put(table: &mut redb::Table<'_, u64, &[u8]>, w: &ChangeWindow) -> Result<(), redb::Error> {
    let json = serde_json::to_vec(w).map_err(json_err)?;
    table.insert(w.id, json.as_slice())?;
    Ok(())
}

fn check(w: &ChangeWindow) -> Result<(), WindowError> {
    if w.name.trim().is_empty() {
        return Err(WindowError::Invalid(
            "the window name must not be empty".into(),
        ));
    }
    if w.name.len() > MAX_NAME {
        return Err(WindowError::Invalid(format!(
            "the window name is longer than {MAX_NAME} bytes"
        )));
    }
    if w.note.as_ref().is_some_and(|n| n.len() > MAX_NOTE) {
        return Err(WindowError::Invalid(format!(
            "the note is longer than {MAX_NOTE} bytes"
        )));
    }
    if w.ends_at <= w.starts_at {
        return Err(WindowError::Invalid(format!(
            "window {:?} must end after it starts",
            w.name
        )));
    }
    if !(w.tolerance.is_finite() && w.tolerance > 1.0) {
        return Err(WindowError::Invalid(format!(
            "the tolerance must be a factor greater than 1, got {}",
            w.tolerance
        )));
    }
    Ok(())
}

/// Applies `change` to every stored window in one durable transaction; it
/// returns the window to write (a new one has id 0: the next id is given).
/// A refusal writes nothing. Keeps at most [`KEEP`] windows.
fn change(
    store: &Store,
    change: impl FnOnce(&[ChangeWindow]) -> Result<ChangeWindow, WindowError>,
) -> Result<ChangeWindow, WindowError> {
    let mut refusal = None;
    let outcome = store.write(|tx| {
        let mut table = tx.open_table(WINDOWS)?;
        let all = decode_all(&table)?;
        let mut window = match change(&all) {
            Ok(w) => w,
            Err(e) => {
                refusal = Some(e);
                return Ok(None);
            }
        };
        if window.id == 0 {
            window.id = table.last()?.map_or(1, |(k, _)| k.value() + 1);
        }
        put(&mut table, &window)?;
        let mut excess = table.len()?.saturating_sub(KEEP as u64);
        for old in all.iter().filter(|w| w.summary_sent_at.is_some()) {
            if excess == 0 {
                break;
            }
            table.remove(old.id)?;
            excess -= 1;
        }
        Ok(Some(window))
    })?;
    match (outcome, refusal) {
        (Some(w), _) => Ok(w),
        (None, Some(e)) => Err(e),
        (None, None) => Err(WindowError::Invalid("nothing changed".into())),
    }
}

/// The window named `name` that has not ended by `at` (open now or
/// scheduled to open), if any.
fn current<'a>(all: &'a [ChangeWindow], name: &str, at: DateTime<Utc>) -> Option<&'a ChangeWindow> {
    all.iter().rev().find(|w| w.name == name && at < w.end())
}

/// Stores a new window (its `id` is ignored and given here). Refused while a
/// window of the same name has not ended at its start.
pub fn open(store: &Store, window: ChangeWindow) -> Result<ChangeWindow, WindowError> {
    check(&window)?;
    change(store, |all| {
        if current(all, &window.name, window.starts_at).is_some() {
            return Err(WindowError::Open(window.name.clone()));
        }
        Ok(ChangeWindow { id: 0, ..window })
    })
}

/// Stores the occurrence of a configured window that opens at
/// `window.starts_at`, unless one of that name and start is stored already
/// (closed early or not): idempotent, so the daemon may call it at every look.
/// Returns the stored occurrence.
pub fn ensure_occurrence(store: &Store, window: ChangeWindow) -> Result<ChangeWindow, WindowError> {
    check(&window)?;
    change(store, |all| {
        if let Some(w) = all
            .iter()
            .find(|w| w.name == window.name && w.starts_at == window.starts_at)
        {
            return Ok(w.clone());
        }
        Ok(ChangeWindow {
            id: 0,
            source: WindowSource::Config,
            ..window
        })
    })
}

/// Moves the expiry of the open window `name` `by` later.
pub fn extend(
    store: &Store,
    name: &str,
    by: Duration,
    at: DateTime<Utc>,
) -> Result<ChangeWindow, WindowError> {
    let by = chrono::Duration::from_std(by)
        .map_err(|_| WindowError::Invalid("the extension is too long".into()))?;
    change(store, |all| {
        let w = current(all, name, at).ok_or_else(|| WindowError::NotOpen(name.into()))?;
        let ends_at = w
            .ends_at
            .checked_add_signed(by)
            .ok_or_else(|| WindowError::Invalid("the extension is too long".into()))?;
        Ok(ChangeWindow {
            ends_at,
            ..w.clone()
        })
    })
}

/// Closes the open (or scheduled) window `name` at `at`.
pub fn close(store: &Store, name: &str, at: DateTime<Utc>) -> Result<ChangeWindow, WindowError> {
    change(store, |all| {
        let w = current(all, name, at).ok_or_else(|| WindowError::NotOpen(name.into()))?;
        Ok(ChangeWindow {
            closed_at: Some(at.max(w.starts_at)),
            ..w.clone()
        })
    })
}

/// Every stored window, oldest first. A row that does not decode is skipped
/// (and logged), so one bad value never hides the others.
pub fn windows(store: &Store) -> Result<Vec<ChangeWindow>, StoreError> {
    store.read(|tx| match read_table(tx, WINDOWS)? {
        Some(table) => decode_all(&table),
        None => Ok(Vec::new()),
    })
}

/// The windows open at `at`, oldest first.
pub fn open_at(store: &Store, at: DateTime<Utc>) -> Result<Vec<ChangeWindow>, StoreError> {
    Ok(windows(store)?
        .into_iter()
        .filter(|w| w.is_open_at(at))
        .collect())
}

/// The windows that have ended by `at` and whose summary has not gone out.
pub fn due_summaries(store: &Store, at: DateTime<Utc>) -> Result<Vec<ChangeWindow>, StoreError> {
    Ok(windows(store)?
        .into_iter()
        .filter(|w| w.summary_due(at))
        .collect())
}

/// The window with id `id` in a write transaction, if stored.
pub fn get_in(tx: &redb::WriteTransaction, id: u64) -> Result<Option<ChangeWindow>, redb::Error> {
    let table = tx.open_table(WINDOWS)?;
    let value = table.get(id)?;
    match value {
        Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(json_err)?)),
        None => Ok(None),
    }
}

/// Notes, inside the caller's transaction (the one that queues the summary),
/// that the summary of window `id` went out at `at`. Returns false when it
/// had been noted already (or the window is gone): then queue nothing.
pub fn mark_summary_sent_in(
    tx: &redb::WriteTransaction,
    id: u64,
    at: DateTime<Utc>,
) -> Result<bool, redb::Error> {
    let Some(mut w) = get_in(tx, id)? else {
        return Ok(false);
    };
    if w.summary_sent_at.is_some() {
        return Ok(false);
    }
    w.summary_sent_at = Some(at);
    let mut table = tx.open_table(WINDOWS)?;
    put(&mut table, &w)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn window(name: &str, start: &str, end: &str) -> ChangeWindow {
        ChangeWindow {
            id: 0,
            name: name.into(),
            source: WindowSource::Command,
            starts_at: at(start),
            ends_at: at(end),
            closed_at: None,
            targets: vec!["owa*".into()],
            tolerance: 10.0,
            max_down: Duration::from_secs(300),
            max_incident: Duration::from_secs(1800),
            note: Some("batch 1".into()),
            by: Some("ops".into()),
            summary_sent_at: None,
        }
    }

    #[test]
    fn open_extend_close_and_summary_once() {
        let store = Store::in_memory().unwrap();
        let w = open(
            &store,
            window("b1", "2026-12-05T22:00:00Z", "2026-12-06T02:00:00Z"),
        )
        .unwrap();
        assert_eq!(w.id, 1);
        assert!(matches!(
            open(
                &store,
                window("b1", "2026-12-05T23:00:00Z", "2026-12-06T01:00:00Z")
            ),
            Err(WindowError::Open(_))
        ));
        let w = extend(
            &store,
            "b1",
            Duration::from_secs(3600),
            at("2026-12-06T01:00:00Z"),
        )
        .unwrap();
        assert_eq!(w.ends_at, at("2026-12-06T03:00:00Z"));
        assert!(open_at(&store, at("2026-12-06T02:30:00Z")).unwrap().len() == 1);
        assert!(due_summaries(&store, at("2026-12-06T02:30:00Z"))
            .unwrap()
            .is_empty());
        let w = close(&store, "b1", at("2026-12-06T02:40:00Z")).unwrap();
        assert_eq!(w.end(), at("2026-12-06T02:40:00Z"));
        assert!(open_at(&store, at("2026-12-06T02:41:00Z"))
            .unwrap()
            .is_empty());
        assert!(matches!(
            close(&store, "b1", at("2026-12-06T02:41:00Z")),
            Err(WindowError::NotOpen(_))
        ));
        let due = due_summaries(&store, at("2026-12-06T02:41:00Z")).unwrap();
        assert_eq!(due.len(), 1);
        let sent = |when: &str| {
            store
                .write(|tx| mark_summary_sent_in(tx, due[0].id, at(when)))
                .unwrap()
        };
        assert!(sent("2026-12-06T02:41:00Z"));
        assert!(!sent("2026-12-06T02:42:00Z"), "once only");
        assert!(due_summaries(&store, at("2026-12-06T03:00:00Z"))
            .unwrap()
            .is_empty());
        // The name is free again once the window ended.
        open(
            &store,
            window("b1", "2026-12-06T22:00:00Z", "2026-12-07T02:00:00Z"),
        )
        .unwrap();
    }

    #[test]
    fn configured_occurrences_are_stored_once() {
        let store = Store::in_memory().unwrap();
        let w = window("sat", "2026-12-05T22:00:00Z", "2026-12-06T02:00:00Z");
        let a = ensure_occurrence(&store, w.clone()).unwrap();
        close(&store, "sat", at("2026-12-05T23:00:00Z")).unwrap();
        let b = ensure_occurrence(&store, w).unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(b.source, WindowSource::Config);
        assert_eq!(
            b.closed_at,
            Some(at("2026-12-05T23:00:00Z")),
            "a close sticks"
        );
        assert_eq!(windows(&store).unwrap().len(), 1);
    }

    #[test]
    fn durations_are_seconds_in_json() {
        let w = window("b1", "2026-12-05T22:00:00Z", "2026-12-06T02:00:00Z");
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["max_down_seconds"], 300.0);
        assert_eq!(json["max_incident_seconds"], 1800.0);
        assert_eq!(serde_json::from_value::<ChangeWindow>(json).unwrap(), w);
    }

    #[test]
    fn bad_windows_are_refused() {
        let store = Store::in_memory().unwrap();
        let backwards = window("x", "2026-12-05T22:00:00Z", "2026-12-05T21:00:00Z");
        assert!(matches!(
            open(&store, backwards),
            Err(WindowError::Invalid(_))
        ));
        let mut loose = window("x", "2026-12-05T22:00:00Z", "2026-12-05T23:00:00Z");
        loose.tolerance = 0.5;
        assert!(matches!(open(&store, loose), Err(WindowError::Invalid(_))));
        assert!(windows(&store).unwrap().is_empty());
    }
}
