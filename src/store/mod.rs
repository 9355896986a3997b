//! The embedded state store: one redb file, `<state_dir>/mailpulse.redb`,
//! shared by every part of the agent that must survive a restart (the alert
//! outbox here; incident history later, in sibling modules).
//!
//! [`Store`] is a cheap handle (`Arc` inside) around the database. It owns
//! opening, the schema-version key and the transaction helpers; each table's
//! meaning belongs to its module (`outbox.rs`). Every write commits with
//! redb's default `Immediate` durability (fsync before the commit returns), so
//! what a caller was told is stored survives `kill -9` and power loss. The
//! file is opened in redb's multi-writer mode so that short-lived commands
//! (`mailpulse silence add`) can write while the daemon runs. This module
//! knows nothing about alerts, probes or metrics.
//!
//! A failed write (disk full, quota, an I/O error) poisons a redb database:
//! every later transaction fails with "previous I/O error" until it is
//! reopened. [`Store`] therefore reopens the file (redb repairs it from its
//! last durable commit) before the next transaction after such an error, at
//! most once per [`REOPEN_INTERVAL`], so the agent resumes storing by itself
//! once space returns.

pub mod incidents;
pub mod outbox;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::Notify;

/// File name of the store inside the state directory.
pub const FILE_NAME: &str = "mailpulse.redb";
/// Schema version this build reads and writes. Bump it (and migrate) whenever
/// a table's key or value encoding changes.
pub const SCHEMA_VERSION: u64 = 1;

/// Least time between two attempts to reopen a store that failed with an
/// I/O error: each attempt reads (and may repair) the whole file.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes of redb's in-process page cache. redb keeps every page it writes in
/// that cache until the cache is full, so a large cache grows the agent's
/// resident memory with the file (about 1 KiB per stored incident, up to
/// [`incidents::MAX_HISTORY`]) and never gives it back. The store is written a
/// few times a second at most and the kernel's page cache already holds the
/// file, so a small cache is enough: at 64 KiB a commit reads about a dozen
/// 4 KiB pages from the kernel (bench/notes.md).
pub const CACHE_SIZE: usize = 64 * 1024;

/// Store-wide metadata: `schema_version` and counters.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// An error of the state store. Messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file or its directory cannot be opened or created.
    #[error("cannot open the state store {path}: {message}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file was written by a build with another schema.
    #[error(
        "the state store {path} has schema version {found}, this build understands {expected}"
    )]
    Schema {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: u64,
        /// Version this build writes.
        expected: u64,
    },
    /// The file failed earlier and could not be reopened yet.
    #[error("state store {path} is unavailable since an I/O error: {message}")]
    Unavailable {
        /// The database file.
        path: PathBuf,
        /// Why the last reopen failed.
        message: String,
    },
    /// A read or write failed.
    #[error("state store {path}: {message}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A handle to the open store. Clones share the database.
#[derive(Clone)]
pub struct Store {
    /// `None` while a file that failed could not be reopened.
    db: Arc<RwLock<Option<Database>>>,
    path: Arc<PathBuf>,
    changed: Arc<Notify>,
    /// Set by an I/O error; cleared by a successful reopen.
    failed: Arc<Mutex<Failed>>,
    /// Whether the database is a file that can be reopened.
    file: bool,
}

/// The I/O failure state of a file store.
#[derive(Default)]
struct Failed {
    /// An I/O error happened and the database has not been reopened since.
    pending: bool,
    /// When a reopen was last tried.
    last_try: Option<tokio::time::Instant>,
    /// Why the last reopen failed.
    message: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

impl Store {
    /// Opens (creating if needed) `<state_dir>/mailpulse.redb`, creating the
    /// directory too.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let path = state_dir.join(FILE_NAME);
        std::fs::create_dir_all(state_dir).map_err(|e| StoreError::Open {
            path: path.clone(),
            message: format!("cannot create {}: {e}", state_dir.display()),
        })?;
        Store::open_file(&path)
    }

    /// Opens (creating if needed) the store at exactly `path`.
    pub fn open_file(path: &Path) -> Result<Store, StoreError> {
        let db = open_database(path).map_err(|message| StoreError::Open {
            path: path.to_path_buf(),
            message,
        })?;
        let store = Store {
            db: Arc::new(RwLock::new(Some(db))),
            path: Arc::new(path.to_path_buf()),
            changed: Arc::new(Notify::new()),
            failed: Arc::default(),
            file: true,
        };
        store.check_schema()?;
        Ok(store)
    }

    /// A store held in memory only, for commands that need a store handle but
    /// must not touch the daemon's file (and for tests).
    pub fn in_memory() -> Result<Store, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::Open {
                path: PathBuf::from("<memory>"),
                message: e.to_string(),
            })?;
        let store = Store {
            db: Arc::new(RwLock::new(Some(db))),
            path: Arc::new(PathBuf::from("<memory>")),
            changed: Arc::new(Notify::new()),
            failed: Arc::default(),
            file: false,
        };
        store.check_schema()?;
        Ok(store)
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let found = self.write(|tx| {
            let mut meta = tx.open_table(META)?;
            let found = meta.get("schema_version")?.map(|v| v.value());
            if found.is_none() {
                meta.insert("schema_version", SCHEMA_VERSION)?;
            }
            Ok(found)
        })?;
        match found {
            Some(v) if v != SCHEMA_VERSION => Err(StoreError::Schema {
                path: self.path().to_path_buf(),
                found: v,
                expected: SCHEMA_VERSION,
            }),
            _ => Ok(()),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a write transaction and commits it (durably) if `f` succeeds.
    /// Blocks while another write transaction, of this or another process, is open.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        self.reopen_if_failed();
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        let db = guard.as_ref().ok_or_else(|| self.unavailable())?;
        let tx = db.begin_write().map_err(|e| self.err(e))?;
        let value = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        drop(guard);
        self.changed.notify_waiters();
        Ok(value)
    }

    /// Runs `f` in a read transaction (a consistent snapshot).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        self.reopen_if_failed();
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        let db = guard.as_ref().ok_or_else(|| self.unavailable())?;
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        f(&tx).map_err(|e| self.err(e))
    }

    /// Whether the store is failing: an I/O error happened and reopening
    /// the file has not succeeded since.
    pub fn is_failing(&self) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pending
    }

    /// Whether what is written now survives a restart: a file store that is
    /// not failing.
    pub fn is_durable(&self) -> bool {
        self.file && !self.is_failing()
    }

    /// After an I/O error, closes and reopens the file (at most once per
    /// [`REOPEN_INTERVAL`]); redb refuses every transaction until then.
    fn reopen_if_failed(&self) {
        {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            if !failed.pending || !self.file {
                return;
            }
            let now = tokio::time::Instant::now();
            if failed
                .last_try
                .is_some_and(|at| now.duration_since(at) < REOPEN_INTERVAL)
            {
                return;
            }
            failed.last_try = Some(now);
        }
        // Not holding `failed` here: a transaction in flight may need it to
        // report its error. The write lock waits for every transaction of this
        // process to end, so the old database is dropped (and its file lock
        // released) before the file is opened again.
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        *db = None;
        let result = open_database(&self.path);
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(reopened) => {
                *db = Some(reopened);
                failed.pending = false;
                failed.message.clear();
                tracing::warn!(
                    path = %self.path.display(),
                    "state store reopened after an I/O error; storing again"
                );
            }
            Err(message) => {
                tracing::error!(
                    path = %self.path.display(),
                    error = %message,
                    "state store still unavailable"
                );
                failed.message = message;
            }
        }
    }

    fn unavailable(&self) -> StoreError {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        StoreError::Unavailable {
            path: self.path().to_path_buf(),
            message: failed.message.clone(),
        }
    }

    /// Resolves when a write transaction of this process commits next.
    /// Writes of other processes are not signalled; poll for those.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Wraps a database error with the file's path. An I/O error marks the
    /// store for a reopen before its next transaction.
    pub fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        let e = e.into();
        if matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo) {
            self.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pending = true;
        }
        StoreError::Db {
            path: self.path().to_path_buf(),
            message: e.to_string(),
        }
    }

    /// Reads a counter from the metadata table, incrementing it by one in the
    /// same transaction; the first value is 1.
    pub(crate) fn next_counter(
        tx: &redb::WriteTransaction,
        name: &str,
    ) -> Result<u64, redb::Error> {
        let mut meta = tx.open_table(META)?;
        let next = meta.get(name)?.map(|v| v.value()).unwrap_or(0) + 1;
        meta.insert(name, next)?;
        Ok(next)
    }
}

/// Opens (creating if needed) the redb file at `path` in multi-writer mode.
fn open_database(path: &Path) -> Result<Database, String> {
    Database::builder()
        .set_concurrency_mode(ConcurrencyMode::MultiWriter)
        .set_cache_size(CACHE_SIZE)
        .create(path)
        .map_err(|e| e.to_string())
}

/// Opens `table` for reading, treating a table never written as empty.
pub(crate) fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &redb::ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>, redb::Error> {
    match tx.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_directory_and_keeps_the_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = Store::open(&state).unwrap();
        assert_eq!(store.path(), state.join(FILE_NAME));
        drop(store);
        // Reopening an existing file works and keeps the version.
        let store = Store::open(&state).unwrap();
        let v = store
            .read(|tx| {
                Ok(tx
                    .open_table(META)?
                    .get("schema_version")?
                    .map(|v| v.value()))
            })
            .unwrap();
        assert_eq!(v, Some(SCHEMA_VERSION));
    }

    #[test]
    fn another_schema_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|tx| {
                tx.open_table(META)?.insert("schema_version", 99)?;
                Ok(())
            })
            .unwrap();
        drop(store);
        let err = Store::open(dir.path()).unwrap_err().to_string();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(
            err,
            format!(
                "the state store {} has schema version 99, this build understands 1",
                path.display()
            )
        );
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(
            &path,
            b"not a database, just some bytes that are long enough",
        )
        .unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("cannot open the state store {}: ", path.display())),
            "{err}"
        );
    }
}
