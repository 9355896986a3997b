//! What the daemon kept of each soak phase, for `mailpulse soak report`:
//! one table, `(run id, phase index) -> bytes` (the caller's JSON of
//! `verdict::stats::PhaseStats`; the store keeps bytes). Rows of runs the
//! run table no longer holds (`[soak] keep_runs`) go at the next save.

use redb::{ReadableTable, TableDefinition};

use super::{read_table, Store, StoreError};

/// Phase figures: `(run id, phase index) -> bytes`.
const PHASE_STATS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("soak_phase_stats");

/// Saves the figures of phase `index` of run `run`, replacing what was
/// saved before, and drops the rows of runs older than `oldest_run` (the
/// oldest run still kept).
pub fn save(
    store: &Store,
    run: u64,
    index: u32,
    bytes: &[u8],
    oldest_run: u64,
) -> Result<(), StoreError> {
    store.write(|tx| {
        let mut table = tx.open_table(PHASE_STATS)?;
        table.insert((run, index), bytes)?;
        loop {
            let first = match table.first()? {
                Some((k, _)) => k.value().0,
                None => break,
            };
            if first >= oldest_run {
                break;
            }
            table.pop_first()?;
        }
        Ok(())
    })
}

/// The saved figures of run `run`, by phase index.
pub fn load(store: &Store, run: u64) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
    store.read(|tx| {
        let Some(table) = read_table(tx, PHASE_STATS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.range((run, 0)..=(run, u32::MAX))? {
            let (k, v) = row?;
            out.push((k.value().1, v.value().to_vec()));
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_saved_replaced_and_dropped_with_their_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(load(&store, 1).unwrap().is_empty());
        save(&store, 1, 0, b"a", 1).unwrap();
        save(&store, 1, 1, b"b", 1).unwrap();
        save(&store, 1, 1, b"b2", 1).unwrap();
        save(&store, 2, 0, b"c", 1).unwrap();
        assert_eq!(
            load(&store, 1).unwrap(),
            [(0, b"a".to_vec()), (1, b"b2".to_vec())]
        );
        // Run 1 is no longer kept: its rows go with the next save.
        save(&store, 2, 1, b"d", 2).unwrap();
        assert!(load(&store, 1).unwrap().is_empty());
        assert_eq!(load(&store, 2).unwrap().len(), 2);
    }
}
