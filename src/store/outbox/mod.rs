//! The durable alert outbox and the small tables around it, in the state store.
//!
//! Every notification is written here (one entry per receiver) before any
//! attempt to send it, and removed only once delivered, given up or expired,
//! so a restart or `kill -9` loses nothing. Entries are keyed
//! `(receiver, incident key, id)` with `id` from a store-wide counter, so a
//! range scan yields each receiver's messages of one incident in the order
//! they were written; only the first of such a group is ever handed out
//! ([`due`]), which keeps "resolved" behind its "firing".
//!
//! Beside the queue: ad hoc silences, per-receiver idempotency state (such as a
//! Grafana annotation id per incident), alerts held by a maintenance window,
//! and the incidents alerting considers open (for reminders and start-up
//! reconciliation). Payloads are opaque strings (JSON written by `alert`): this
//! module stores and orders, it never interprets an alert or sends anything.

mod copy;
pub mod sent;

pub(crate) use copy::{apply, collect, Collected};
pub use sent::{sent_for, Sent};

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{read_table, Store, StoreError};

/// Queue entries: `(receiver, incident key, id)` → JSON [`EntryData`].
const OUTBOX: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("outbox");
/// Silences: id → JSON [`Silence`].
const SILENCES: TableDefinition<u64, &[u8]> = TableDefinition::new("silences");
/// Per-receiver state: `(receiver, incident key)` → bytes the receiver chose.
const RECEIVER_STATE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("receiver_state");
/// Alerts held by a maintenance window: incident key → payload.
const HELD: TableDefinition<&str, &[u8]> = TableDefinition::new("held");
/// Incidents paged and not yet resolved: incident key → JSON [`OpenRecord`].
const OPEN: TableDefinition<&str, &[u8]> = TableDefinition::new("open_incidents");

/// Counter names in the metadata table.
pub(crate) const OUTBOX_COUNTER: &str = "outbox_next_id";
const SILENCE_COUNTER: &str = "silence_next_id";

/// One queued notification for one receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Store-wide increasing id; also the order of an incident's messages.
    pub id: u64,
    /// Receiver name.
    pub receiver: String,
    /// Incident the message belongs to.
    pub incident_key: String,
    /// The serialized alert.
    pub payload: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not to be tried before this.
    pub next_attempt_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// The last failure, for logs.
    pub last_error: Option<String>,
}

/// The stored value of an entry (the key holds the rest).
#[derive(Debug, Serialize, Deserialize)]
struct EntryData {
    payload: String,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    #[serde(default)]
    last_error: Option<String>,
}

impl OutboxEntry {
    fn from_row(receiver: &str, incident: &str, id: u64, bytes: &[u8]) -> Option<OutboxEntry> {
        let data: EntryData = serde_json::from_slice(bytes).ok()?;
        Some(OutboxEntry {
            id,
            receiver: receiver.to_string(),
            incident_key: incident.to_string(),
            payload: data.payload,
            attempts: data.attempts,
            next_attempt_at: data.next_attempt_at,
            created_at: data.created_at,
            last_error: data.last_error,
        })
    }

    fn data_bytes(&self) -> Vec<u8> {
        encode(&EntryData {
            payload: self.payload.clone(),
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            created_at: self.created_at,
            last_error: self.last_error.clone(),
        })
    }

    /// The `(receiver, incident)` group whose order this entry keeps.
    pub fn group(&self) -> (String, String) {
        (self.receiver.clone(), self.incident_key.clone())
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs of strings, numbers and timestamps cannot fail.
    serde_json::to_vec(value).expect("outbox records serialize")
}

/// Appends a message for `receiver` inside a caller's write transaction, due
/// now. Returns its id.
pub fn push(
    tx: &redb::WriteTransaction,
    receiver: &str,
    incident_key: &str,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<u64, redb::Error> {
    let id = Store::next_counter(tx, OUTBOX_COUNTER)?;
    let data = encode(&EntryData {
        payload: payload.to_string(),
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
        last_error: None,
    });
    tx.open_table(OUTBOX)?
        .insert((receiver, incident_key, id), data.as_slice())?;
    Ok(id)
}

/// Appends one message per receiver in one durable commit. Returns the ids.
pub fn enqueue(
    store: &Store,
    receivers: &[&str],
    incident_key: &str,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<Vec<u64>, StoreError> {
    store.write(|tx| {
        receivers
            .iter()
            .map(|r| push(tx, r, incident_key, payload, now))
            .collect()
    })
}

/// What [`due`] found.
#[derive(Debug, Default)]
pub struct Due {
    /// Group heads whose time has come, oldest id first.
    pub ready: Vec<OutboxEntry>,
    /// The earliest time a waiting head becomes due.
    pub next_at: Option<DateTime<Utc>>,
}

/// The first entry of every `(receiver, incident)` group not in `busy`, if
/// due at `now`. Later entries of a group wait for its head, whatever their
/// own time, so an incident's messages reach a receiver in order.
pub fn due(
    store: &Store,
    now: DateTime<Utc>,
    busy: &HashSet<(String, String)>,
) -> Result<Due, StoreError> {
    let rows = all_rows(store)?;
    let mut out = Due::default();
    let mut last_group: Option<(String, String)> = None;
    for entry in rows {
        let group = entry.group();
        if last_group.as_ref() == Some(&group) {
            continue;
        }
        last_group = Some(group.clone());
        if busy.contains(&group) {
            continue;
        }
        if entry.next_attempt_at <= now {
            out.ready.push(entry);
        } else {
            out.next_at = Some(match out.next_at {
                Some(t) => t.min(entry.next_attempt_at),
                None => entry.next_attempt_at,
            });
        }
    }
    out.ready.sort_by_key(|e| e.id);
    Ok(out)
}

/// Every entry, in key order (receiver, incident, id). Rows that cannot be
/// decoded are skipped with a log line.
pub fn all_rows(store: &Store) -> Result<Vec<OutboxEntry>, StoreError> {
    let raw: Vec<(String, String, u64, Vec<u8>)> = store.read(|tx| {
        let Some(t) = read_table(tx, OUTBOX)? else {
            return Ok(Vec::new());
        };
        let mut rows = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let (r, i, id) = k.value();
            rows.push((r.to_string(), i.to_string(), id, v.value().to_vec()));
        }
        Ok(rows)
    })?;
    Ok(raw
        .into_iter()
        .filter_map(|(r, i, id, bytes)| {
            let entry = OutboxEntry::from_row(&r, &i, id, &bytes);
            if entry.is_none() {
                tracing::error!(receiver = %r, incident = %i, id, "undecodable outbox entry skipped");
            }
            entry
        })
        .collect())
}

/// Removes an entry (delivered, or given up). Returns whether it was there.
pub fn remove(store: &Store, entry: &OutboxEntry) -> Result<bool, StoreError> {
    store.write(|tx| remove_in(tx, entry))
}

/// [`remove`] inside a caller's write transaction, so that several outcomes
/// share one commit.
pub fn remove_in(tx: &redb::WriteTransaction, entry: &OutboxEntry) -> Result<bool, redb::Error> {
    let mut t = tx.open_table(OUTBOX)?;
    let removed = t
        .remove((
            entry.receiver.as_str(),
            entry.incident_key.as_str(),
            entry.id,
        ))?
        .is_some();
    Ok(removed)
}

/// Records a failed attempt: one more attempt, not before `next_at`.
pub fn reschedule(
    store: &Store,
    entry: &OutboxEntry,
    next_at: DateTime<Utc>,
    error: &str,
) -> Result<OutboxEntry, StoreError> {
    store.write(|tx| reschedule_in(tx, entry, next_at, error))
}

/// [`reschedule`] inside a caller's write transaction, so that several
/// outcomes share one commit.
pub fn reschedule_in(
    tx: &redb::WriteTransaction,
    entry: &OutboxEntry,
    next_at: DateTime<Utc>,
    error: &str,
) -> Result<OutboxEntry, redb::Error> {
    let mut updated = entry.clone();
    updated.attempts += 1;
    updated.next_attempt_at = next_at;
    updated.last_error = Some(error.to_string());
    let bytes = updated.data_bytes();
    let mut t = tx.open_table(OUTBOX)?;
    let key = (
        entry.receiver.as_str(),
        entry.incident_key.as_str(),
        entry.id,
    );
    // An entry removed meanwhile (e.g. expired) stays removed.
    if t.get(key)?.is_some() {
        t.insert(key, bytes.as_slice())?;
    }
    Ok(updated)
}

/// Removes and returns every entry created before `now - max_age`.
pub fn expire(
    store: &Store,
    now: DateTime<Utc>,
    max_age: std::time::Duration,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let cutoff = now - chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    let old: Vec<OutboxEntry> = all_rows(store)?
        .into_iter()
        .filter(|e| e.created_at < cutoff)
        .collect();
    if old.is_empty() {
        return Ok(old);
    }
    store.write(|tx| {
        let mut t = tx.open_table(OUTBOX)?;
        for e in &old {
            t.remove((e.receiver.as_str(), e.incident_key.as_str(), e.id))?;
        }
        Ok(())
    })?;
    Ok(old)
}

/// Size of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OutboxStats {
    /// Entries waiting.
    pub pending: u64,
    /// Creation time of the oldest waiting entry.
    pub oldest_created_at: Option<DateTime<Utc>>,
}

/// Counts the waiting entries and finds the oldest.
pub fn stats(store: &Store) -> Result<OutboxStats, StoreError> {
    let rows = all_rows(store)?;
    Ok(OutboxStats {
        pending: rows.len() as u64,
        oldest_created_at: rows.iter().map(|e| e.created_at).min(),
    })
}

/// Whether `receiver` still has undelivered messages of `incident_key`.
pub fn pending_for(store: &Store, receiver: &str, incident_key: &str) -> Result<bool, StoreError> {
    store.read(|tx| {
        let Some(t) = read_table(tx, OUTBOX)? else {
            return Ok(false);
        };
        let mut range =
            t.range((receiver, incident_key, 0)..=(receiver, incident_key, u64::MAX))?;
        Ok(range.next().is_some())
    })
}

// ---------------------------------------------------------------------------
// Silences.
// ---------------------------------------------------------------------------

/// An ad hoc maintenance window, from `mailpulse silence add`. Removed and
/// ended silences are kept for the audit (`silence list --all`), for
/// [`SILENCE_RETENTION`] and at most [`MAX_ENDED_SILENCES`] of them. Fields
/// added later default, so silences stored by earlier versions still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Id for `silence remove`.
    pub id: u64,
    /// Target name pattern (`*` for every target).
    pub target: String,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End (exclusive); the removal time once removed, if that was earlier.
    pub ends_at: DateTime<Utc>,
    /// Why, for whoever looks later.
    pub reason: String,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// Who added it (`--by`, else the login name), if known.
    #[serde(default)]
    pub created_by: Option<String>,
    /// When it was removed (`silence remove`), if it was.
    #[serde(default)]
    pub removed_at: Option<DateTime<Utc>>,
    /// Who removed it, if known.
    #[serde(default)]
    pub removed_by: Option<String>,
    /// Each `silence extend`, oldest first (the latest [`MAX_EXTENSIONS`]).
    #[serde(default)]
    pub extensions: Vec<SilenceExtension>,
}

/// One `silence extend`: who moved the end, when, and from where to where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilenceExtension {
    /// When.
    pub at: DateTime<Utc>,
    /// Who, if known.
    pub by: Option<String>,
    /// The end before.
    pub from: DateTime<Utc>,
    /// The end after.
    pub to: DateTime<Utc>,
}

/// How long an ended or removed silence is kept for `silence list --all`.
pub const SILENCE_RETENTION: chrono::Duration = chrono::Duration::days(30);
/// How many ended or removed silences are kept at most (the latest ended).
pub const MAX_ENDED_SILENCES: usize = 200;
/// How many extensions a silence remembers (the latest).
pub const MAX_EXTENSIONS: usize = 20;

/// Why a silence could not be extended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtendRefused {
    /// No silence has the id.
    #[error("no silence with id {0}")]
    Missing(u64),
    /// The silence was removed or has ended: add a new one.
    #[error("silence {0} has ended or was removed; add a new one")]
    Ended(u64),
}

/// Stores a silence, assigning its id (the `id` given is ignored). Silences
/// that ended more than [`SILENCE_RETENTION`] before it was made, and ended
/// ones beyond the latest [`MAX_ENDED_SILENCES`], are pruned in the same
/// commit.
pub fn add_silence(store: &Store, silence: &Silence) -> Result<u64, StoreError> {
    let now = silence.created_at;
    let mut ended: Vec<Silence> = silences(store)?
        .into_iter()
        .filter(|s| s.ends_at <= now)
        .collect();
    ended.sort_by_key(|s| std::cmp::Reverse((s.ends_at, s.id)));
    let prune: Vec<u64> = ended
        .iter()
        .enumerate()
        .filter(|(i, s)| *i >= MAX_ENDED_SILENCES || s.ends_at < now - SILENCE_RETENTION)
        .map(|(_, s)| s.id)
        .collect();
    store.write(|tx| {
        let id = Store::next_counter(tx, SILENCE_COUNTER)?;
        let mut s = silence.clone();
        s.id = id;
        let mut t = tx.open_table(SILENCES)?;
        t.insert(id, encode(&s).as_slice())?;
        for old in &prune {
            t.remove(*old)?;
        }
        Ok(id)
    })
}

/// Every stored silence, by id.
pub fn silences(store: &Store) -> Result<Vec<Silence>, StoreError> {
    decoded_values(store, SILENCES)
}

/// Reads silence `id`, lets `change` edit it and writes it back, in one
/// transaction. `change` returns what the caller gets; the silence is
/// written only when it returns `Ok`. `None` when there is no such silence.
fn update_silence<R, E>(
    store: &Store,
    id: u64,
    change: impl FnOnce(&mut Silence) -> Result<R, E>,
) -> Result<Option<Result<R, E>>, StoreError> {
    store.write(|tx| {
        let mut t = tx.open_table(SILENCES)?;
        let stored = t.get(id)?.map(|v| v.value().to_vec());
        let Some(mut silence) = stored.and_then(|b| serde_json::from_slice::<Silence>(&b).ok())
        else {
            return Ok(None);
        };
        let result = change(&mut silence);
        if result.is_ok() {
            t.insert(id, encode(&silence).as_slice())?;
        }
        Ok(Some(result))
    })
}

/// Removes a silence at `at` by `by`: it stops holding pages then (its end
/// becomes `at` if that is earlier) and is kept for the audit. Returns
/// whether there was such a silence not yet removed.
pub fn remove_silence(
    store: &Store,
    id: u64,
    at: DateTime<Utc>,
    by: Option<String>,
) -> Result<bool, StoreError> {
    let removed = update_silence(store, id, |s| {
        if s.removed_at.is_some() {
            return Err(());
        }
        s.removed_at = Some(at);
        s.removed_by = by;
        s.ends_at = s.ends_at.min(at);
        Ok(())
    })?;
    Ok(matches!(removed, Some(Ok(()))))
}

/// Moves the end of silence `id` `by` later, at `at` by `who`. Refused for a
/// silence that has ended or was removed. Returns the silence as stored.
pub fn extend_silence(
    store: &Store,
    id: u64,
    by: chrono::Duration,
    at: DateTime<Utc>,
    who: Option<String>,
) -> Result<Result<Silence, ExtendRefused>, StoreError> {
    let extended = update_silence(store, id, |s| {
        if s.removed_at.is_some() || s.ends_at <= at {
            return Err(ExtendRefused::Ended(id));
        }
        let to = s.ends_at + by;
        s.extensions.push(SilenceExtension {
            at,
            by: who,
            from: s.ends_at,
            to,
        });
        let excess = s.extensions.len().saturating_sub(MAX_EXTENSIONS);
        s.extensions.drain(..excess);
        s.ends_at = to;
        Ok(s.clone())
    })?;
    Ok(extended.unwrap_or(Err(ExtendRefused::Missing(id))))
}

// ---------------------------------------------------------------------------
// Per-receiver state.
// ---------------------------------------------------------------------------

/// Stores `value` as `receiver`'s state for `incident_key`.
pub fn put_state(
    store: &Store,
    receiver: &str,
    incident_key: &str,
    value: &[u8],
) -> Result<(), StoreError> {
    store.write(|tx| {
        tx.open_table(RECEIVER_STATE)?
            .insert((receiver, incident_key), value)?;
        Ok(())
    })
}

/// `receiver`'s state for `key`, inside a caller's write transaction.
pub fn get_state_in(
    tx: &redb::WriteTransaction,
    receiver: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, redb::Error> {
    let t = tx.open_table(RECEIVER_STATE)?;
    let value = t.get((receiver, key))?.map(|v| v.value().to_vec());
    Ok(value)
}

/// Sets `receiver`'s state for `key`, inside a caller's write transaction.
pub fn put_state_in(
    tx: &redb::WriteTransaction,
    receiver: &str,
    key: &str,
    value: &[u8],
) -> Result<(), redb::Error> {
    tx.open_table(RECEIVER_STATE)?
        .insert((receiver, key), value)?;
    Ok(())
}

/// `receiver`'s state for `incident_key`, if any.
pub fn get_state(
    store: &Store,
    receiver: &str,
    incident_key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    store.read(|tx| {
        let Some(t) = read_table(tx, RECEIVER_STATE)? else {
            return Ok(None);
        };
        Ok(t.get((receiver, incident_key))?.map(|v| v.value().to_vec()))
    })
}

/// Forgets `receiver`'s state for `incident_key`.
pub fn remove_state(store: &Store, receiver: &str, incident_key: &str) -> Result<(), StoreError> {
    store.write(|tx| {
        tx.open_table(RECEIVER_STATE)?
            .remove((receiver, incident_key))?;
        Ok(())
    })
}

/// Every `(incident key, state)` of `receiver`.
pub fn states(store: &Store, receiver: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    store.read(|tx| {
        let Some(t) = read_table(tx, RECEIVER_STATE)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in t.range((receiver, "")..)? {
            let (k, v) = row?;
            let (r, incident) = k.value();
            if r != receiver {
                break;
            }
            out.push((incident.to_string(), v.value().to_vec()));
        }
        Ok(out)
    })
}

// ---------------------------------------------------------------------------
// Held alerts and open incidents.
// ---------------------------------------------------------------------------

/// Holds `payload` (a firing alert) for `incident_key` until its window ends.
pub fn hold(
    tx: &redb::WriteTransaction,
    incident_key: &str,
    payload: &str,
) -> Result<(), redb::Error> {
    tx.open_table(HELD)?
        .insert(incident_key, payload.as_bytes())?;
    Ok(())
}

/// Removes and returns the held alert of `incident_key`.
pub fn take_held(
    tx: &redb::WriteTransaction,
    incident_key: &str,
) -> Result<Option<String>, redb::Error> {
    let mut t = tx.open_table(HELD)?;
    let value = t
        .remove(incident_key)?
        .map(|v| String::from_utf8_lossy(v.value()).into_owned());
    Ok(value)
}

/// Whether `incident_key` has a held alert.
pub fn is_held(tx: &redb::WriteTransaction, incident_key: &str) -> Result<bool, redb::Error> {
    Ok(tx.open_table(HELD)?.get(incident_key)?.is_some())
}

/// Every held `(incident key, payload)`.
pub fn held(store: &Store) -> Result<Vec<(String, String)>, StoreError> {
    store.read(|tx| {
        let Some(t) = read_table(tx, HELD)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((
                k.value().to_string(),
                String::from_utf8_lossy(v.value()).into_owned(),
            ));
        }
        Ok(out)
    })
}

/// An incident alerting has paged and not yet resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenRecord {
    /// The incident.
    pub incident_key: String,
    /// Its latest firing alert.
    pub payload: String,
    /// When it was last paged (first page or reminder).
    pub last_notified_at: DateTime<Utc>,
}

/// Records (or refreshes) an open incident.
pub fn put_open(tx: &redb::WriteTransaction, record: &OpenRecord) -> Result<(), redb::Error> {
    tx.open_table(OPEN)?
        .insert(record.incident_key.as_str(), encode(record).as_slice())?;
    Ok(())
}

/// The open-incident record of `incident_key`, read inside a write transaction.
pub fn open_record(
    tx: &redb::WriteTransaction,
    incident_key: &str,
) -> Result<Option<OpenRecord>, redb::Error> {
    let t = tx.open_table(OPEN)?;
    let bytes = t.get(incident_key)?.map(|v| v.value().to_vec());
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Forgets an open incident (it was resolved).
pub fn remove_open(tx: &redb::WriteTransaction, incident_key: &str) -> Result<(), redb::Error> {
    tx.open_table(OPEN)?.remove(incident_key)?;
    Ok(())
}

/// Every open incident.
pub fn open_records(store: &Store) -> Result<Vec<OpenRecord>, StoreError> {
    decoded_values(store, OPEN)
}

/// Every JSON value of `table` that decodes, in key order. The bytes are
/// copied out first, so decoding runs after the read transaction.
fn decoded_values<K: redb::Key + 'static, T: DeserializeOwned>(
    store: &Store,
    table: TableDefinition<'static, K, &'static [u8]>,
) -> Result<Vec<T>, StoreError> {
    let raw: Vec<Vec<u8>> = store.read(|tx| {
        let Some(t) = read_table(tx, table)? else {
            return Ok(Vec::new());
        };
        t.iter()?
            .map(|row| row.map(|(_, v)| v.value().to_vec()).map_err(Into::into))
            .collect()
    })?;
    Ok(raw
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn ids(entries: &[OutboxEntry]) -> Vec<u64> {
        entries.iter().map(|e| e.id).collect()
    }

    #[test]
    fn only_the_head_of_each_incident_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        enqueue(&store, &["a", "b"], "inc1", "firing", t(0)).unwrap(); // ids 1, 2
        enqueue(&store, &["a", "b"], "inc1", "resolved", t(1)).unwrap(); // ids 3, 4
        enqueue(&store, &["a"], "inc2", "firing", t(2)).unwrap(); // id 5
        let due1 = due(&store, t(10), &HashSet::new()).unwrap();
        assert_eq!(ids(&due1.ready), [1, 2, 5]);
        assert_eq!(due1.ready[0].payload, "firing");

        // A failing head blocks its group for that receiver only.
        let first = &due1.ready[0];
        reschedule(&store, first, t(100), "503").unwrap();
        remove(&store, &due1.ready[1]).unwrap();
        let due2 = due(&store, t(10), &HashSet::new()).unwrap();
        assert_eq!(ids(&due2.ready), [4, 5]);
        assert_eq!(due2.next_at, Some(t(100)));

        // Busy groups are skipped entirely.
        let busy = HashSet::from([("a".to_string(), "inc2".to_string())]);
        assert_eq!(ids(&due(&store, t(10), &busy).unwrap().ready), [4]);

        let later = due(&store, t(100), &HashSet::new()).unwrap();
        assert_eq!(ids(&later.ready), [1, 4, 5]);
        assert_eq!(later.ready[0].attempts, 1);
        assert_eq!(later.ready[0].last_error.as_deref(), Some("503"));
        assert!(pending_for(&store, "a", "inc1").unwrap());
        assert!(!pending_for(&store, "b", "inc9").unwrap());
    }

    #[test]
    fn entries_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            enqueue(&store, &["a"], "inc1", "firing", t(0)).unwrap();
            enqueue(&store, &["a"], "inc1", "resolved", t(5)).unwrap();
            put_state(&store, "gf", "inc1", b"42").unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let rows = all_rows(&store).unwrap();
        assert_eq!(ids(&rows), [1, 2]);
        assert_eq!(rows[1].payload, "resolved");
        assert_eq!(get_state(&store, "gf", "inc1").unwrap().unwrap(), b"42");
        // Ids keep increasing after a reopen, so order is kept across restarts.
        enqueue(&store, &["a"], "inc1", "reminder", t(6)).unwrap();
        assert_eq!(ids(&all_rows(&store).unwrap()), [1, 2, 3]);
        assert_eq!(
            stats(&store).unwrap(),
            OutboxStats {
                pending: 3,
                oldest_created_at: Some(t(0))
            }
        );
    }

    #[test]
    fn old_entries_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        enqueue(&store, &["a"], "inc1", "old", t(0)).unwrap();
        enqueue(&store, &["a"], "inc1", "new", t(3000)).unwrap();
        let gone = expire(&store, t(3601), Duration::from_secs(3600)).unwrap();
        assert_eq!(ids(&gone), [1]);
        // The expired head no longer blocks the next message.
        assert_eq!(
            ids(&due(&store, t(3601), &HashSet::new()).unwrap().ready),
            [2]
        );
    }

    fn silence(target: &str, start: i64, end: i64) -> Silence {
        Silence {
            id: 0,
            target: target.into(),
            starts_at: t(start),
            ends_at: t(end),
            reason: "patching".into(),
            created_at: t(start),
            created_by: Some("ops".into()),
            removed_at: None,
            removed_by: None,
            extensions: Vec::new(),
        }
    }

    #[test]
    fn silences_round_trip_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let s = silence("owa", 0, 7200);
        assert_eq!(add_silence(&store, &s).unwrap(), 1);
        // Ended a day ago: kept for the audit.
        let next = Silence {
            created_at: t(7200 + 86400 + 1),
            ..s.clone()
        };
        assert_eq!(add_silence(&store, &next).unwrap(), 2);
        assert_eq!(silences(&store).unwrap().len(), 2, "first kept");
        let later = Silence {
            created_at: t(7200) + SILENCE_RETENTION + chrono::Duration::seconds(1),
            ..s.clone()
        };
        assert_eq!(add_silence(&store, &later).unwrap(), 3);
        let all = silences(&store).unwrap();
        assert_eq!(
            all.iter().map(|s| s.id).collect::<Vec<_>>(),
            [3],
            "first two pruned after the retention"
        );
        assert!(remove_silence(&store, 3, t(10), Some("lead".into())).unwrap());
        assert!(!remove_silence(&store, 3, t(11), None).unwrap());
        assert!(!remove_silence(&store, 4, t(11), None).unwrap());
    }

    #[test]
    fn ended_silences_are_kept_up_to_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..(MAX_ENDED_SILENCES as i64 + 5) {
            add_silence(&store, &silence("owa", i * 10, i * 10 + 5)).unwrap();
        }
        let all = silences(&store).unwrap();
        assert_eq!(
            all.len(),
            MAX_ENDED_SILENCES + 1,
            "the bound plus the new one"
        );
        // The oldest went first.
        assert_eq!(all[0].id, 5);
    }

    #[test]
    fn a_removed_silence_ends_and_stays_for_the_audit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = add_silence(&store, &silence("owa", 0, 7200)).unwrap();
        assert!(remove_silence(&store, id, t(600), Some("lead".into())).unwrap());
        let s = &silences(&store).unwrap()[0];
        assert_eq!(s.ends_at, t(600));
        assert_eq!(s.removed_at, Some(t(600)));
        assert_eq!(s.removed_by.as_deref(), Some("lead"));
        assert_eq!(
            extend_silence(&store, id, chrono::Duration::hours(1), t(700), None).unwrap(),
            Err(ExtendRefused::Ended(id))
        );
    }

    #[test]
    fn extending_moves_the_end_and_records_who() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = add_silence(&store, &silence("owa", 0, 7200)).unwrap();
        let s = extend_silence(
            &store,
            id,
            chrono::Duration::hours(1),
            t(60),
            Some("lead".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.ends_at, t(7200 + 3600));
        assert_eq!(
            s.extensions,
            [SilenceExtension {
                at: t(60),
                by: Some("lead".into()),
                from: t(7200),
                to: t(10800)
            }]
        );
        assert_eq!(silences(&store).unwrap()[0], s);
        assert_eq!(
            extend_silence(&store, id, chrono::Duration::hours(1), t(10800), None).unwrap(),
            Err(ExtendRefused::Ended(id)),
            "ended at the new end"
        );
        assert_eq!(
            extend_silence(&store, 9, chrono::Duration::hours(1), t(60), None).unwrap(),
            Err(ExtendRefused::Missing(9))
        );
        for i in 0..MAX_EXTENSIONS + 3 {
            extend_silence(
                &store,
                id,
                chrono::Duration::minutes(1),
                t(61 + i as i64),
                None,
            )
            .unwrap()
            .unwrap();
        }
        let s = &silences(&store).unwrap()[0];
        assert_eq!(s.extensions.len(), MAX_EXTENSIONS);
        assert_eq!(s.extensions[0].at, t(61 + 3));
    }

    #[test]
    fn silences_stored_before_the_audit_fields_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = br#"{"id":7,"target":"owa","starts_at":"2027-01-15T08:00:00Z","ends_at":"2027-01-15T10:00:00Z","reason":"patching","created_at":"2027-01-15T08:00:00Z","created_by":"ops"}"#;
        store
            .write(|tx| {
                tx.open_table(SILENCES)?.insert(7, old.as_slice())?;
                Ok(())
            })
            .unwrap();
        let s = &silences(&store).unwrap()[0];
        assert_eq!((s.id, s.removed_at, s.extensions.len()), (7, None, 0));
        assert!(remove_silence(&store, 7, t(0), None).unwrap());
    }

    #[test]
    fn receiver_state_is_per_receiver() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put_state(&store, "a", "i1", b"1").unwrap();
        put_state(&store, "a", "i2", b"2").unwrap();
        put_state(&store, "ab", "i1", b"3").unwrap();
        let a = states(&store, "a").unwrap();
        assert_eq!(
            a,
            vec![("i1".into(), b"1".to_vec()), ("i2".into(), b"2".to_vec())]
        );
        remove_state(&store, "a", "i1").unwrap();
        assert_eq!(get_state(&store, "a", "i1").unwrap(), None);
    }
}
