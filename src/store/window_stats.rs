//! What the daemon gathered inside each change window, for its summary and
//! `mailpulse window report`: one table, `window id -> bytes` (the caller's
//! JSON of `window::WindowFigures`; the store keeps bytes). At most
//! [`KEEP`](super::windows::KEEP) rows: the oldest windows' go first.

use redb::{ReadableTableMetadata, TableDefinition};

use super::{read_table, Store, StoreError};

/// Window figures: `window id -> bytes`.
const WINDOW_STATS: TableDefinition<u64, &[u8]> = TableDefinition::new("window_figures");

/// Saves the figures of window `id`, replacing what was saved before.
pub fn save(store: &Store, id: u64, bytes: &[u8]) -> Result<(), StoreError> {
    store.write(|tx| {
        let mut table = tx.open_table(WINDOW_STATS)?;
        table.insert(id, bytes)?;
        while table.len()? > super::windows::KEEP as u64 {
            table.pop_first()?;
        }
        Ok(())
    })
}

/// The saved figures of window `id`, if any.
pub fn load(store: &Store, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
    store.read(|tx| {
        let Some(table) = read_table(tx, WINDOW_STATS)? else {
            return Ok(None);
        };
        let value = table.get(id)?;
        Ok(value.map(|v| v.value().to_vec()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_saved_replaced_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(load(&store, 1).unwrap(), None);
        save(&store, 1, b"a").unwrap();
        save(&store, 1, b"b").unwrap();
        assert_eq!(load(&store, 1).unwrap().as_deref(), Some(&b"b"[..]));
        for id in 2..=(super::super::windows::KEEP as u64 + 1) {
            save(&store, id, b"c").unwrap();
        }
        assert_eq!(load(&store, 1).unwrap(), None, "the oldest went first");
        assert!(load(&store, 2).unwrap().is_some());
    }
}
