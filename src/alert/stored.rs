//! Alerts as the store keeps them: the one typed accessor of the alert
//! payloads in the outbox and the tables around it (queued notifications,
//! pages held by a window, open incidents).
//!
//! The store keeps payloads as opaque strings ([`crate::store::outbox`]);
//! this module is the only place that turns an [`AlertEvent`] into one
//! ([`encode`]) and back ([`decode`] and the readers built on it). A payload
//! that does not decode (a damaged row that still read, a file written by a
//! future build) is never passed over in silence: it is logged with its table
//! and key, quoting at most [`BAD_PAYLOAD_PREFIX`] characters of it
//! (escaped), and counted in `mailpulse_alerts_bad_payloads_total`. Each bad
//! payload is logged and counted once, however often a periodic pass reads
//! it again. What a reader does with it afterwards (skip it, drop it, refuse
//! the delivery for good) is the reader's decision and is unchanged.

use std::collections::HashSet;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::AlertEvent;
use crate::store::outbox::{self, OpenRecord, OutboxEntry};
use crate::store::{Store, StoreError};

/// Characters of a bad payload a log line quotes at most (escaped): enough
/// to tell JSON from garbage, too few to carry much of what it held.
pub const BAD_PAYLOAD_PREFIX: usize = 32;

/// Distinct bad payloads remembered, so that each is logged and counted once.
/// Past that many the memory starts over (a bad payload still stored is then
/// logged and counted once more).
pub const MAX_REMEMBERED: usize = 4096;

/// Bad payloads found since the agent started, each counted once.
static BAD_PAYLOADS: AtomicU64 = AtomicU64::new(0);

/// The bad payloads seen so far, by a hash of table, key and payload.
static SEEN: Mutex<Option<HashSet<u64>>> = Mutex::new(None);

/// A stored alert payload that does not decode. It has been logged and
/// counted already; its `Display` is the decoder's message.
#[derive(Debug)]
pub struct BadPayload(serde_json::Error);

impl fmt::Display for BadPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BadPayload {}

/// The payload the outbox keeps for `event` (JSON).
pub fn encode(event: &AlertEvent) -> String {
    // Plain data of strings, numbers and timestamps always serializes.
    serde_json::to_string(event).expect("alert events serialize")
}

/// Decodes the payload stored under `key` in `table` (the store's table
/// name, for the log). A bad payload is logged and counted (once) and
/// returned as [`BadPayload`].
pub fn decode(table: &str, key: &str, payload: &str) -> Result<AlertEvent, BadPayload> {
    serde_json::from_str(payload).map_err(|e| {
        if first_sight(table, key, payload) {
            BAD_PAYLOADS.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                table,
                key,
                bytes = payload.len(),
                starts_with = ?clip(payload),
                error = %format_args!("{:?} at line {} column {}", e.classify(), e.line(), e.column()),
                "a stored alert does not decode"
            );
        }
        BadPayload(e)
    })
}

/// The alert of a queued notification.
pub fn queued(entry: &OutboxEntry) -> Result<AlertEvent, BadPayload> {
    let key = format!("{}/{}/{}", entry.receiver, entry.incident_key, entry.id);
    decode("outbox", &key, &entry.payload)
}

/// The latest firing alert of an open incident, if it decodes.
pub fn open_event(record: &OpenRecord) -> Option<AlertEvent> {
    decode("open_incidents", &record.incident_key, &record.payload).ok()
}

/// The incidents alerting has paged and not yet resolved, with their latest
/// firing event (pages held by a window are not included). At start-up,
/// [`resolve_recovered`](super::resolve_recovered) resolves those the
/// incident layer no longer considers open.
pub fn open_incidents(store: &Store) -> Result<Vec<AlertEvent>, StoreError> {
    Ok(outbox::open_records(store)?
        .iter()
        .filter_map(open_event)
        .collect())
}

/// A page held by a maintenance window, silence or change window, as stored.
#[derive(Debug)]
pub struct HeldPage {
    /// The incident key.
    pub key: String,
    /// The stored payload, written back as it is when the page is released.
    pub payload: String,
    /// The alert, `None` if the payload does not decode.
    pub event: Option<AlertEvent>,
}

/// Every held page.
pub fn held(store: &Store) -> Result<Vec<HeldPage>, StoreError> {
    Ok(outbox::held(store)?
        .into_iter()
        .map(|(key, payload)| {
            let event = decode("held", &key, &payload).ok();
            HeldPage {
                key,
                payload,
                event,
            }
        })
        .collect())
}

/// The alerts of every held page that decodes.
pub fn held_events(store: &Store) -> Result<Vec<AlertEvent>, StoreError> {
    Ok(held(store)?.into_iter().filter_map(|h| h.event).collect())
}

/// Bad payloads found since the agent started (each counted once), for
/// `mailpulse_alerts_bad_payloads_total`.
pub fn bad_payloads() -> u64 {
    BAD_PAYLOADS.load(Ordering::Relaxed)
}

/// Whether this bad payload is new (and remembers it).
fn first_sight(table: &str, key: &str, payload: &str) -> bool {
    let mut h = DefaultHasher::new();
    (table, key, payload).hash(&mut h);
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    let seen = seen.get_or_insert_with(HashSet::new);
    if seen.len() >= MAX_REMEMBERED {
        seen.clear();
    }
    seen.insert(h.finish())
}

/// The first [`BAD_PAYLOAD_PREFIX`] characters of `payload`.
fn clip(payload: &str) -> &str {
    match payload.char_indices().nth(BAD_PAYLOAD_PREFIX) {
        Some((at, _)) => &payload[..at],
        None => payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::sample_event;

    #[test]
    fn events_round_trip() {
        let e = sample_event();
        assert_eq!(decode("outbox", "k", &encode(&e)).unwrap(), e);
    }

    #[test]
    fn a_bad_payload_is_counted_once_and_keeps_the_decoders_message() {
        let before = bad_payloads();
        let garbage = "{\"incident_key\": 17, \"secret\": \"do not log all of me\"}";
        let err = decode("held", "a-bad-one", garbage).unwrap_err();
        let direct = serde_json::from_str::<AlertEvent>(garbage).unwrap_err();
        assert_eq!(err.to_string(), direct.to_string());
        assert!(bad_payloads() > before);
        // Read again by a periodic pass, it is neither logged nor counted again;
        // the same bytes in another row are another bad payload.
        assert!(!first_sight("held", "a-bad-one", garbage));
        assert!(first_sight("held", "another", garbage));
    }

    #[test]
    fn only_a_short_prefix_is_quoted() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(100);
        assert_eq!(clip(&long).chars().count(), BAD_PAYLOAD_PREFIX);
    }
}
