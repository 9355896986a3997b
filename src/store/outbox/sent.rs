//! The delivery log: what became of each notification that left the queue
//! (delivered, refused for good, expired), kept for the status page's
//! incident view. Keyed `(incident start in microseconds, target, id)`, so
//! an incident's notifications are one range and the oldest incidents'
//! rows go first when the log is full ([`MAX_SENT`]). A log, not state:
//! a damaged file's repair does not carry it over.

use chrono::{DateTime, Utc};
use redb::{ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::super::{read_table, Store, StoreError};

/// `(incident start in microseconds, target, outbox id)` → JSON [`Sent`].
const SENT: TableDefinition<(i64, &str, u64), &[u8]> = TableDefinition::new("sent_log");

/// Rows kept; the oldest incidents' rows beyond this are dropped.
pub const MAX_SENT: u64 = 10_000;

/// One notification that left the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    /// Its outbox id (the order its incident's notifications were queued in).
    #[serde(skip)]
    pub id: u64,
    /// The receiver's name.
    pub receiver: String,
    /// The notification's status as its writer names it (`firing`, `resolved`).
    pub status: String,
    /// Whether it was a reminder.
    #[serde(default)]
    pub reminder: bool,
    /// `delivered`, `rejected` or `expired`.
    pub outcome: String,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was delivered or given up.
    pub done_at: DateTime<Utc>,
    /// Failed attempts before the outcome.
    pub attempts: u32,
    /// The last failure, as stored in the queue (already redacted).
    pub last_error: Option<String>,
}

/// Logs `sent` for the incident of `target` started at `started_micros`,
/// inside a caller's write transaction.
pub fn log_in(
    tx: &redb::WriteTransaction,
    target: &str,
    started_micros: i64,
    sent: &Sent,
) -> Result<(), redb::Error> {
    let mut t = tx.open_table(SENT)?;
    let json = serde_json::to_vec(sent).expect("log rows serialize");
    t.insert((started_micros, target, sent.id), json.as_slice())?;
    let excess = t.len()?.saturating_sub(MAX_SENT);
    for _ in 0..excess {
        if t.pop_first()?.is_none() {
            break;
        }
    }
    Ok(())
}

/// Logs each of `rows` in one transaction.
pub fn log(store: &Store, rows: &[(String, i64, Sent)]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    store.write(|tx| {
        for (target, started, sent) in rows {
            log_in(tx, target, *started, sent)?;
        }
        Ok(())
    })
}

/// The logged notifications of the incident of `target` started at
/// `started_micros`, in the order they were queued.
pub fn sent_for(store: &Store, target: &str, started_micros: i64) -> Result<Vec<Sent>, StoreError> {
    store.read(|tx| {
        let Some(t) = read_table(tx, SENT)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in t.range((started_micros, target, 0)..=(started_micros, target, u64::MAX))? {
            let (k, v) = row?;
            if let Ok(mut sent) = serde_json::from_slice::<Sent>(v.value()) {
                sent.id = k.value().2;
                out.push(sent);
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: u64, receiver: &str) -> Sent {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Sent {
            id,
            receiver: receiver.into(),
            status: "firing".into(),
            reminder: false,
            outcome: "delivered".into(),
            created_at: t,
            done_at: t,
            attempts: 0,
            last_error: None,
        }
    }

    #[test]
    fn an_incidents_notifications_read_back_in_order_and_apart_from_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        log(
            &store,
            &[
                ("owa".into(), 5, sent(3, "hook")),
                ("owa".into(), 5, sent(1, "pager")),
                ("owa2".into(), 5, sent(2, "hook")),
                ("owa".into(), 6, sent(4, "hook")),
            ],
        )
        .unwrap();
        let got = sent_for(&store, "owa", 5).unwrap();
        assert_eq!(
            got.iter()
                .map(|s| (s.id, s.receiver.as_str()))
                .collect::<Vec<_>>(),
            [(1, "pager"), (3, "hook")]
        );
        assert!(sent_for(&store, "nobody", 5).unwrap().is_empty());
    }
}
