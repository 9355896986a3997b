//! Copying state from one database into another: what a damaged file still
//! holds into a fresh store, and what a memory store collected into the file
//! once the file can be used.
//!
//! Reading is defensive when the source is damaged: every table is read on
//! its own (a table whose pages are garbage costs only that table), every
//! pass runs behind the panic boundary, and a pass that stops at a damaged
//! page is followed by one from the other end, so the rows on both sides of
//! the damage are kept. A damaged file closed cleanly is opened read-only
//! anew for every pass (a panic may leave redb's in-process state
//! half-updated); one that was not (redb would have to repair it first) is
//! read from a copy repaired in memory, so the file moved aside stays as it
//! was found. Only rows that decode are copied. Each
//! table's module decides how its rows merge (`outbox.rs`, `incidents.rs`,
//! `soak.rs`);
//! this module reads, counts and reports.

use std::collections::HashSet;
use std::path::Path;

use redb::{
    ConcurrencyMode, Database, Key, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, Value,
};

use super::{incidents, outbox, read_table, soak, unwind, CACHE_SIZE, META};

/// Where rows are copied from.
pub(crate) enum Source<'a> {
    /// A database in good order (the memory store standing in for the file).
    Sound(&'a Database),
    /// The database still open on a file whose contents just failed (a
    /// panic may have left its in-process state half-updated).
    DamagedOpen(&'a Database),
    /// A damaged file that was closed cleanly: opened read-only anew for
    /// every pass over a table.
    DamagedFile(&'a Path),
    /// A damaged file that was not closed cleanly (redb refuses to read it
    /// without a repair): a copy of it, repaired in memory. The file itself
    /// is left as it was.
    DamagedCopy(Database),
    /// Nothing can be opened; the reason.
    Unreadable(String),
}

/// Raw rows of one table, and whether every row could be read.
pub(crate) struct Rows {
    /// `(key bytes, value bytes)`, in key order where the table could be read whole.
    pub(crate) rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// False when a pass stopped at a page it could not read.
    pub(crate) complete: bool,
}

impl Rows {
    /// The rows `decode` accepts, noting in `report` what was read of `table`
    /// (a row it refuses counts as undecodable).
    pub(crate) fn keep<T>(
        &self,
        table: &'static str,
        report: &mut Report,
        mut decode: impl FnMut(&[u8], &[u8]) -> Option<T>,
    ) -> Vec<T> {
        let kept: Vec<T> = self.rows.iter().filter_map(|(k, v)| decode(k, v)).collect();
        report.add(
            table,
            self.complete,
            kept.len(),
            self.rows.len() - kept.len(),
        );
        kept
    }
}

impl Source<'_> {
    /// How to read the damaged file at `path`.
    pub(crate) fn damaged_file(path: &Path) -> Source<'_> {
        if with_reader(path, |_| Ok(())) {
            return Source::DamagedFile(path);
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return Source::Unreadable(e.to_string()),
        };
        let copy = unwind::catch(|| -> Result<Database, redb::Error> {
            let backend = redb::backends::InMemoryBackend::new();
            redb::StorageBackend::set_len(&backend, bytes.len() as u64)?;
            redb::StorageBackend::write(&backend, 0, &bytes)?;
            Ok(Database::builder()
                .set_cache_size(CACHE_SIZE)
                .create_with_backend(backend)?)
        });
        match copy {
            Ok(Ok(db)) => Source::DamagedCopy(db),
            Ok(Err(e)) => Source::Unreadable(e.to_string()),
            Err(panic) => Source::Unreadable(panic),
        }
    }

    /// Every row of `table` that can be read.
    pub(crate) fn rows<K: Key + 'static, V: Value + 'static>(
        &self,
        table: TableDefinition<K, V>,
    ) -> Rows {
        let on = |db: &Database, reverse: bool, out: &mut Vec<(Vec<u8>, Vec<u8>)>| {
            unwind::catch(|| {
                let tx = db.begin_read()?;
                pass(&tx, table, reverse, out)
            })
            .is_ok_and(|r| r.is_ok())
        };
        let (mut forward, mut backward) = (Vec::new(), Vec::new());
        let (f, b) = (&mut forward, &mut backward);
        let complete = match self {
            Source::Unreadable(_) => false,
            // A sound database reads whole or fails whole.
            Source::Sound(db) => on(db, false, f),
            Source::DamagedOpen(db) => both_ends(|r, out| on(db, r, out), f, b),
            Source::DamagedCopy(db) => both_ends(|r, out| on(db, r, out), f, b),
            Source::DamagedFile(path) => both_ends(
                |r, out| with_reader(path, |tx| pass(tx, table, r, out)),
                f,
                b,
            ),
        };
        let seen: HashSet<Vec<u8>> = forward.iter().map(|(k, _)| k.clone()).collect();
        forward.extend(
            backward
                .into_iter()
                .rev()
                .filter(|(k, _)| !seen.contains(k)),
        );
        Rows {
            rows: forward,
            complete,
        }
    }
}

/// Reads with `read` from the start into `forward`; if that stops short,
/// from the end into `backward` (newest first). Returns whether the first
/// pass read everything.
fn both_ends(
    read: impl Fn(bool, &mut Vec<(Vec<u8>, Vec<u8>)>) -> bool,
    forward: &mut Vec<(Vec<u8>, Vec<u8>)>,
    backward: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> bool {
    read(false, forward) || {
        read(true, backward);
        false
    }
}

/// Reads `table` from one end into `out`, row by row, so what was read
/// before a failure stays in `out`. A table never written has no rows.
fn pass<K: Key + 'static, V: Value + 'static>(
    tx: &ReadTransaction,
    table: TableDefinition<K, V>,
    reverse: bool,
    out: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<(), redb::Error> {
    let Some(t) = read_table(tx, table)? else {
        return Ok(());
    };
    let mut push = |row: Result<
        (redb::AccessGuard<'_, K>, redb::AccessGuard<'_, V>),
        redb::StorageError,
    >|
     -> Result<(), redb::Error> {
        let (k, v) = row?;
        out.push((
            K::as_bytes(&k.value()).as_ref().to_vec(),
            V::as_bytes(&v.value()).as_ref().to_vec(),
        ));
        Ok(())
    };
    if reverse {
        for row in t.iter()?.rev() {
            push(row)?;
        }
    } else {
        for row in t.iter()? {
            push(row)?;
        }
    }
    Ok(())
}

/// Opens the file at `path` read-only (as a reader beside a multi-process
/// writer, which needs no allocator state) and runs `f` on a read
/// transaction, behind the panic boundary. Returns whether everything
/// succeeded. redb refuses a file that was not closed cleanly.
fn with_reader(path: &Path, f: impl FnOnce(&ReadTransaction) -> Result<(), redb::Error>) -> bool {
    unwind::catch(|| -> Result<(), redb::Error> {
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .set_cache_size(CACHE_SIZE)
            .open_read_only(path)?;
        let tx = db.begin_read()?;
        f(&tx)
    })
    .is_ok_and(|r| r.is_ok())
}

/// What was read of one table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableReport {
    /// The table.
    pub(crate) table: &'static str,
    /// Rows that decoded and are copied.
    pub(crate) kept: usize,
    /// Rows read but not decodable (dropped).
    pub(crate) undecodable: usize,
    /// Whether the whole table could be read.
    pub(crate) complete: bool,
}

/// What a copy read, per table.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Report {
    /// One entry per table, in copy order.
    pub(crate) tables: Vec<TableReport>,
    /// Why nothing could be opened, if so.
    pub(crate) unreadable: Option<String>,
}

impl Report {
    /// Notes what was read of `table`.
    pub(crate) fn add(
        &mut self,
        table: &'static str,
        complete: bool,
        kept: usize,
        undecodable: usize,
    ) {
        self.tables.push(TableReport {
            table,
            kept,
            undecodable,
            complete,
        });
    }

    /// Rows copied, over all tables.
    pub(crate) fn kept(&self) -> usize {
        self.tables.iter().map(|t| t.kept).sum()
    }

    /// Whether every table was read whole and every row decoded.
    pub(crate) fn complete(&self) -> bool {
        self.tables.iter().all(|t| t.complete && t.undecodable == 0)
    }

    /// One line for logs and `/healthz`: rows kept per table, and the tables
    /// that could not be read whole, e.g. `kept outbox 40, incidents 120;
    /// lost part of incidents`.
    pub(crate) fn summary(&self) -> String {
        let kept: Vec<String> = self
            .tables
            .iter()
            .filter(|t| t.kept > 0)
            .map(|t| format!("{} {}", t.table, t.kept))
            .collect();
        let lost: Vec<String> = self
            .tables
            .iter()
            .filter(|t| !t.complete || t.undecodable > 0)
            .map(|t| t.table.to_string())
            .collect();
        if let Some(why) = &self.unreadable {
            return format!("kept nothing (cannot read it: {why})");
        }
        let mut out = if kept.is_empty() {
            "kept nothing".to_string()
        } else {
            format!("kept {}", kept.join(", "))
        };
        if !lost.is_empty() {
            out.push_str(&format!("; lost part of {}", lost.join(", ")));
        }
        out
    }
}

/// Names in the metadata table that are not copied: the schema version
/// belongs to the destination, and the outbox counter follows the entries
/// copied (see `outbox::apply`).
const NOT_COPIED: &[&str] = &["schema_version", outbox::OUTBOX_COUNTER];

/// Everything readable of a source, decoded, ready to be written elsewhere.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    outbox: outbox::Collected,
    incidents: incidents::Collected,
    soak: soak::Collected,
    counters: Vec<(String, u64)>,
    /// What was read.
    pub(crate) report: Report,
}

impl Collected {
    /// Reads every table of `source` (each one on its own).
    pub(crate) fn read(source: &Source<'_>) -> Collected {
        let mut report = Report::default();
        if let Source::Unreadable(why) = source {
            report.unreadable = Some(why.clone());
        }
        let outbox = outbox::collect(source, &mut report);
        let incidents = incidents::collect(source, &mut report);
        let soak = soak::collect(source, &mut report);
        let meta = source.rows(META);
        let counters: Vec<(String, u64)> = meta
            .rows
            .iter()
            .filter_map(|(k, v)| {
                let name = std::str::from_utf8(k).ok()?;
                let value = u64::from_le_bytes(v.as_slice().try_into().ok()?);
                (!NOT_COPIED.contains(&name)).then(|| (name.to_string(), value))
            })
            .collect();
        Collected {
            outbox,
            incidents,
            soak,
            counters,
            report,
        }
    }

    /// Whether there is nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.report.kept() == 0
    }

    /// Writes everything into `tx`. `newer` says the source is more recent
    /// than the destination (a memory store's rows replace the file's rows of
    /// the same key); otherwise existing rows are kept. Queued notifications
    /// keep their ids unless the destination uses the same key.
    pub(crate) fn write(
        &self,
        tx: &redb::WriteTransaction,
        newer: bool,
    ) -> Result<(), redb::Error> {
        for (name, value) in &self.counters {
            super::raise_counter(tx, name, *value)?;
        }
        outbox::apply(tx, &self.outbox, newer)?;
        incidents::apply(tx, &self.incidents, newer)?;
        soak::apply(tx, &self.soak, newer)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Whether redb reads the file at `path` without a repair.
    pub(crate) fn opens_read_only(path: &Path) -> bool {
        with_reader(path, |_| Ok(()))
    }

    #[test]
    fn the_summary_names_what_was_kept_and_what_was_lost() {
        let mut r = Report::default();
        r.add("outbox", true, 40, 0);
        r.add("silences", true, 0, 0);
        r.add("incidents", false, 120, 0);
        r.add("detectors", true, 2, 1);
        assert_eq!(r.kept(), 162);
        assert!(!r.complete());
        assert_eq!(
            r.summary(),
            "kept outbox 40, incidents 120, detectors 2; lost part of incidents, detectors"
        );
        assert_eq!(Report::default().summary(), "kept nothing");
        let gone = Report {
            unreadable: Some("Permission denied".into()),
            ..Report::default()
        };
        assert_eq!(
            gone.summary(),
            "kept nothing (cannot read it: Permission denied)"
        );
    }
}
