//! Copying the outbox's tables into another store (salvage of a damaged
//! file, moving from the memory stand-in to the file): [`collect`] reads
//! every table on its own and keeps the rows that decode, [`apply`] merges
//! them into the destination, keeping each incident's messages in order.

use std::collections::HashSet;

use redb::ReadableTable;

use super::{
    encode, OpenRecord, OutboxEntry, Silence, HELD, OPEN, OUTBOX, OUTBOX_COUNTER, RECEIVER_STATE,
    SILENCES, SILENCE_COUNTER,
};
use crate::store::raise_counter;
use crate::store::salvage::{Report, Source};
use crate::store::Store;

/// The rows of this module's tables that [`collect`] could read and decode.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    /// Queued notifications, oldest id first.
    entries: Vec<OutboxEntry>,
    silences: Vec<Silence>,
    /// `(receiver, incident key, state)`.
    states: Vec<(String, String, Vec<u8>)>,
    /// `(incident key, payload)`.
    held: Vec<(String, String)>,
    open: Vec<OpenRecord>,
}

/// Reads every table of this module from `source`, each on its own, keeping
/// the rows that decode.
pub(crate) fn collect(source: &Source<'_>, report: &mut Report) -> Collected {
    let mut entries = source.rows(OUTBOX).keep("outbox", report, |k, v| {
        let (r, i, id) = <(&str, &str, u64) as redb::Value>::from_bytes(k);
        OutboxEntry::from_row(r, i, id, v)
    });
    entries.sort_by_key(|e| e.id);
    let silences = source
        .rows(SILENCES)
        .keep("silences", report, |_, v| serde_json::from_slice(v).ok());
    let states = source
        .rows(RECEIVER_STATE)
        .keep("receiver_state", report, |k, v| {
            let (r, i) = <(&str, &str) as redb::Value>::from_bytes(k);
            Some((r.to_string(), i.to_string(), v.to_vec()))
        });
    let held = source.rows(HELD).keep("held", report, |k, v| {
        Some((
            String::from_utf8(k.to_vec()).ok()?,
            String::from_utf8(v.to_vec()).ok()?,
        ))
    });
    let open = source.rows(OPEN).keep("open_incidents", report, |_, v| {
        serde_json::from_slice(v).ok()
    });
    Collected {
        entries,
        silences,
        states,
        held,
        open,
    }
}

/// Writes what [`collect`] read into `tx`. Notifications keep their ids
/// unless the destination already holds messages of the same receiver and
/// incident: those groups get new ids, in their order, after the
/// destination's (which are older). Keeping ids means an attempt in flight
/// while the store moves still removes its entry once delivered, so nothing
/// is sent twice. The id counter ends above every id. Other rows replace the
/// destination's rows of the same key when `newer`, and are otherwise
/// written only where the destination has none.
pub(crate) fn apply(
    tx: &redb::WriteTransaction,
    c: &Collected,
    newer: bool,
) -> Result<(), redb::Error> {
    let mut shared: HashSet<(String, String)> = HashSet::new();
    {
        let t = tx.open_table(OUTBOX)?;
        for e in &c.entries {
            let (r, i) = (e.receiver.as_str(), e.incident_key.as_str());
            if t.range((r, i, 0)..=(r, i, u64::MAX))?.next().is_some() {
                shared.insert(e.group());
            }
        }
    }
    if let Some(max) = c.entries.iter().map(|e| e.id).max() {
        raise_counter(tx, OUTBOX_COUNTER, max)?;
    }
    for e in &c.entries {
        let id = if shared.contains(&e.group()) {
            Store::next_counter(tx, OUTBOX_COUNTER)?
        } else {
            e.id
        };
        tx.open_table(OUTBOX)?.insert(
            (e.receiver.as_str(), e.incident_key.as_str(), id),
            e.data_bytes().as_slice(),
        )?;
    }
    {
        let mut t = tx.open_table(SILENCES)?;
        for s in &c.silences {
            if newer || t.get(s.id)?.is_none() {
                t.insert(s.id, encode(s).as_slice())?;
            }
        }
    }
    if let Some(max) = c.silences.iter().map(|s| s.id).max() {
        raise_counter(tx, SILENCE_COUNTER, max)?;
    }
    {
        let mut t = tx.open_table(RECEIVER_STATE)?;
        for (r, i, v) in &c.states {
            if newer || t.get((r.as_str(), i.as_str()))?.is_none() {
                t.insert((r.as_str(), i.as_str()), v.as_slice())?;
            }
        }
    }
    {
        let mut t = tx.open_table(HELD)?;
        for (k, v) in &c.held {
            if newer || t.get(k.as_str())?.is_none() {
                t.insert(k.as_str(), v.as_bytes())?;
            }
        }
    }
    {
        let mut t = tx.open_table(OPEN)?;
        for r in &c.open {
            if newer || t.get(r.incident_key.as_str())?.is_none() {
                t.insert(r.incident_key.as_str(), encode(r).as_slice())?;
            }
        }
    }
    Ok(())
}
