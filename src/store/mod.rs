//! The embedded state store: one redb file, `<state_dir>/mailpulse.redb`,
//! shared by every part of the agent that must survive a restart (the alert
//! outbox, incident history and detector state, soak-test runs, change windows, in sibling
//! modules).
//!
//! [`Store`] is a cheap handle (`Arc` inside) around the database. It owns
//! opening, the schema-version key and the transaction helpers; each table's
//! meaning belongs to its module (`outbox/`, `incidents.rs`, `soak.rs`). Every write
//! commits with redb's default `Immediate` durability (fsync before the commit
//! returns), so what a caller was told is stored survives `kill -9` and power
//! loss. The file is opened in redb's multi-writer mode so that short-lived
//! commands (`mailpulse silence add`) can write while the daemon runs. This
//! module knows nothing about alerts, probes or metrics.
//!
//! The daemon's store ([`Store::open_daemon`]) keeps working through faults
//! of the file and repairs itself at the next transaction (or
//! [`Store::maintain`]), at most once per [`REOPEN_INTERVAL`]:
//! - a failed write (disk full, quota, an I/O error) poisons a redb database
//!   until it is reopened: the store reopens the file, and says it is not
//!   durable until a write succeeds again;
//! - a file that cannot be opened (a read-only or missing directory) is
//!   replaced by a memory store, and the file is tried again; once it opens,
//!   everything the memory store collected is copied into it and the store
//!   moves to the file;
//! - damaged contents (redb reports corruption, or panics on a garbage page:
//!   every call into redb runs behind the panic boundary of `unwind.rs`) make
//!   the store check the file; a damaged file is moved aside as
//!   `mailpulse.redb.corrupt-<UTC time>`, whatever of it can still be read is
//!   copied, table by table, into a fresh file (`salvage.rs`), and the agent
//!   goes on with it.
//!
//! [`Store::status`] says which of these is going on, for metrics and `/healthz`.
//!
//! Files: this one is the handle, its errors and status, opening and the
//! transactions; `repair.rs` the self-repair state and [`Store::maintain`];
//! `open.rs` opening a file or a memory database and moving a damaged file
//! aside; `salvage.rs` copying rows between databases (each table's module
//! merges its own rows); `unwind.rs` the panic boundary.

pub mod incidents;
mod open;
pub mod outbox;
mod repair;
pub(crate) mod salvage;
pub mod soak;
pub mod soak_stats;
#[cfg(test)]
mod tests;
mod unwind;
pub mod window_stats;
pub mod windows;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::Notify;

use open::{memory_database, open_database};
use repair::State;

/// File name of the store inside the state directory.
pub const FILE_NAME: &str = "mailpulse.redb";
/// Schema version this build reads and writes. Bump it (and migrate) whenever
/// a table's key or value encoding changes.
pub const SCHEMA_VERSION: u64 = 1;

/// Least time between two attempts to repair the store (reopen the file after
/// an I/O error, check it after a failure on its contents, or try it again
/// while running on memory): each attempt may read the whole file.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes of redb's in-process page cache. redb keeps every page it writes in
/// that cache until the cache is full, so a large cache grows the agent's
/// resident memory with the file (about 1 KiB per stored incident, up to
/// [`incidents::MAX_HISTORY`]) and never gives it back. The store is written a
/// few times a second at most and the kernel's page cache already holds the
/// file, so a small cache is enough: at 64 KiB a commit reads about a dozen
/// 4 KiB pages from the kernel (bench/notes.md).
pub const CACHE_SIZE: usize = 64 * 1024;

/// What a damaged store file is renamed to, before a UTC time:
/// `mailpulse.redb.corrupt-20261202T171500Z`.
pub const DAMAGED_SUFFIX: &str = ".corrupt-";

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
    /// The database reported corruption or panicked on the file's contents.
    #[error("state store {path} is damaged: {message}")]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What redb said, or where it panicked.
        message: String,
    },
}

/// Where a store keeps its data now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// The file.
    File,
    /// Memory, standing in for a file that cannot be used now; the file is
    /// tried again, and what memory holds moves into it once it opens.
    MemoryForFile,
    /// Memory only, by design (commands and tests that must not touch a file).
    Memory,
}

/// The condition of a store, for metrics, logs and `/healthz`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreStatus {
    /// Whether what is written now survives a restart: the file is in use and
    /// its last write succeeded.
    pub durable: bool,
    /// Where the data is kept now.
    pub backing: Backing,
    /// Why the store is not durable, in one line; `None` when it is.
    pub problem: Option<String>,
    /// Damaged files found since start (each one moved aside).
    pub corruptions: u64,
    /// What happened to the latest damaged files (where each was moved, what
    /// of it was kept), newest last.
    pub notes: Vec<String>,
    /// Changes each time the store moves to a file (at start, from memory,
    /// after a damaged file was replaced), so callers can reconcile what they
    /// keep with what the new file holds.
    pub generation: u64,
}

/// A handle to the open store. Clones share the database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// The file (or `<memory>` for a memory-only store).
    path: PathBuf,
    /// `None` while a file that failed could not be reopened.
    db: RwLock<Option<Database>>,
    changed: Notify,
    state: Mutex<State>,
    /// Tests: every write fails as on a full disk.
    #[cfg(test)]
    fail_writes: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.inner.path.display())
    }
}

impl Store {
    fn with(path: PathBuf, db: Database, backing: Backing, repair: bool) -> Store {
        Store {
            inner: Arc::new(Inner {
                path,
                db: RwLock::new(Some(db)),
                changed: Notify::new(),
                state: Mutex::new(State::new(backing, repair)),
                #[cfg(test)]
                fail_writes: Default::default(),
            }),
        }
    }

    /// Opens (creating if needed) `<state_dir>/mailpulse.redb`, creating the
    /// directory too. For commands: any failure is an error, and a damaged
    /// file is reported, never moved.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let path = state_dir.join(FILE_NAME);
        std::fs::create_dir_all(state_dir).map_err(|e| StoreError::Open {
            path: path.clone(),
            message: format!("cannot create {}: {e}", state_dir.display()),
        })?;
        Store::open_file(&path)
    }

    /// Opens (creating if needed) the store at exactly `path`, as [`Store::open`].
    pub fn open_file(path: &Path) -> Result<Store, StoreError> {
        let db = open_database(path, false).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        let store = Store::with(path.to_path_buf(), db, Backing::File, false);
        store.check_schema()?;
        Ok(store)
    }

    /// A store held in memory only, for commands that need a store handle but
    /// must not touch the daemon's file (and for tests).
    pub fn in_memory() -> Result<Store, StoreError> {
        let store = Store::with(
            PathBuf::from("<memory>"),
            memory_database(),
            Backing::Memory,
            false,
        );
        store.check_schema()?;
        Ok(store)
    }

    /// The daemon's store: `<state_dir>/mailpulse.redb`, checked for damage
    /// as it opens. Never fails: a damaged file is moved aside and replaced
    /// (keeping what can be read of it); a file that cannot be opened is
    /// replaced by memory until it can. Each case is logged as an error and
    /// shows in [`Store::status`].
    pub fn open_daemon(state_dir: &Path) -> Store {
        let store = Store::with(
            state_dir.join(FILE_NAME),
            memory_database(),
            Backing::MemoryForFile,
            true,
        );
        store
            .check_schema()
            .expect("a fresh memory store has no other schema");
        {
            let mut db = store
                .inner
                .db
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            store.state().last_try = Some(tokio::time::Instant::now());
            store.attach(&mut db, true);
        }
        store
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

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in a write transaction and commits it (durably) if `f` succeeds.
    /// Blocks while another write transaction, of this or another process, is open.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        self.maintain();
        let guard = self.inner.db.read().unwrap_or_else(PoisonError::into_inner);
        let Some(db) = guard.as_ref() else {
            drop(guard);
            self.state().write_failed = true;
            return Err(self.unavailable());
        };
        #[cfg(test)]
        if self
            .inner
            .fail_writes
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            drop(guard);
            self.state().write_failed = true;
            let full = std::io::Error::other("No space left on device (simulated)");
            return Err(self.err(redb::Error::Io(full)));
        }
        let outcome = unwind::catch(|| -> Result<T, redb::Error> {
            let tx = db.begin_write()?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        });
        drop(guard);
        let result = match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.err(e)),
            Err(panic) => Err(self.damaged(panic)),
        };
        {
            let mut st = self.state();
            if result.is_ok() && st.write_failed && st.backing == Backing::File {
                tracing::warn!(path = %self.inner.path.display(), "the state store takes writes again");
            }
            st.write_failed = result.is_err();
            // A commit that succeeded proves the database works.
            st.io_failed &= result.is_err();
        }
        if result.is_ok() {
            self.inner.changed.notify_waiters();
        }
        result
    }

    /// Runs `f` in a read transaction (a consistent snapshot).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        self.maintain();
        let guard = self.inner.db.read().unwrap_or_else(PoisonError::into_inner);
        let Some(db) = guard.as_ref() else {
            drop(guard);
            return Err(self.unavailable());
        };
        let outcome = unwind::catch(|| -> Result<T, redb::Error> {
            let tx = db.begin_read()?;
            f(&tx)
        });
        drop(guard);
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.err(e)),
            Err(panic) => Err(self.damaged(panic)),
        }
    }

    /// Whether the store is failing: a write, the file or its contents failed
    /// and the store has not recovered since.
    pub fn is_failing(&self) -> bool {
        let st = self.state();
        st.io_failed || st.write_failed || st.damaged.is_some()
    }

    /// Whether what is written now survives a restart: a file store that is
    /// not failing.
    pub fn is_durable(&self) -> bool {
        self.state().durable()
    }

    /// The store's condition now.
    pub fn status(&self) -> StoreStatus {
        let st = self.state();
        let path = self.inner.path.display();
        let durable = st.durable();
        let problem = (!durable).then(|| match st.backing {
            Backing::Memory => "kept in memory only".to_string(),
            Backing::MemoryForFile if st.retry_file => format!(
                "running on memory ({}); trying {path} again every {}s",
                st.message,
                REOPEN_INTERVAL.as_secs()
            ),
            Backing::MemoryForFile => format!(
                "running on memory ({}); restart the agent once {path} is fixed",
                st.message
            ),
            Backing::File => match &st.damaged {
                Some(why) => format!("{path} failed on its contents ({why}); checking it"),
                None if st.io_failed => format!("{path} failed ({}); reopening it", st.message),
                None => format!("the last write to {path} failed ({})", st.message),
            },
        });
        StoreStatus {
            durable,
            backing: st.backing,
            problem,
            corruptions: st.corruptions,
            notes: st.notes.clone(),
            generation: st.generation,
        }
    }

    /// Resolves when a write transaction of this process commits next (or the
    /// store moves to another database). Writes of other processes are not
    /// signalled; poll for those.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.changed.notified()
    }

    /// Wraps a database error with the file's path. An I/O error marks the
    /// store for a reopen before its next transaction; a corruption error (or
    /// poisoned state after a panic) marks it for a check.
    pub fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        let e = e.into();
        let message = e.to_string();
        match e {
            redb::Error::Corrupted(_) | redb::Error::LockPoisoned(_) => self.damaged(message),
            e => {
                let mut st = self.state();
                if matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo)
                    && st.backing == Backing::File
                {
                    st.io_failed = true;
                }
                st.message = message.clone();
                StoreError::Db {
                    path: self.path().to_path_buf(),
                    message,
                }
            }
        }
    }

    /// Tests: makes every write fail (or succeed again) as on a full disk.
    #[cfg(test)]
    pub(crate) fn fail_writes(&self, on: bool) {
        self.inner
            .fail_writes
            .store(on, std::sync::atomic::Ordering::SeqCst);
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

/// Raises a counter of the metadata table to at least `at_least`.
pub(crate) fn raise_counter(
    tx: &redb::WriteTransaction,
    name: &str,
    at_least: u64,
) -> Result<(), redb::Error> {
    let mut meta = tx.open_table(META)?;
    let now = meta.get(name)?.map(|v| v.value()).unwrap_or(0);
    if now < at_least {
        meta.insert(name, at_least)?;
    }
    Ok(())
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
