//! The embedded state store: one redb file, `<state_dir>/mailpulse.redb`,
//! shared by every part of the agent that must survive a restart (the alert
//! outbox, incident history and detector state, in sibling modules).
//!
//! [`Store`] is a cheap handle (`Arc` inside) around the database. It owns
//! opening, the schema-version key and the transaction helpers; each table's
//! meaning belongs to its module (`outbox.rs`, `incidents.rs`). Every write
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

pub mod incidents;
pub mod outbox;
pub(crate) mod salvage;
mod unwind;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use redb::{ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::Notify;

use salvage::{Collected, Source};

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

/// Notes about damaged files kept for [`StoreStatus::notes`] (the latest).
const MAX_NOTES: usize = 4;

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

/// What went wrong and what is left to do.
struct State {
    backing: Backing,
    /// Whether this handle may move a damaged file aside and fall back to
    /// memory (the daemon); a command's handle only reports errors.
    repair: bool,
    /// Whether to keep trying the file while on memory (false once the file
    /// turned out to be of another schema: retrying cannot help).
    retry_file: bool,
    /// An I/O error happened on the file and it has not been reopened since.
    io_failed: bool,
    /// The last write failed and none has succeeded since.
    write_failed: bool,
    /// A transaction failed on the file's contents (corruption, a panic).
    damaged: Option<String>,
    /// A failure on the contents was followed by a clean integrity check: the
    /// next one moves the file aside without asking redb again.
    suspect: bool,
    /// When a repair was last tried.
    last_try: Option<tokio::time::Instant>,
    /// The latest failure, for errors and [`StoreStatus::problem`].
    message: String,
    /// Whether the current inability to open the file was logged already.
    logged_unavailable: bool,
    corruptions: u64,
    notes: Vec<String>,
    generation: u64,
}

impl State {
    fn new(backing: Backing, repair: bool) -> State {
        State {
            backing,
            repair,
            retry_file: repair,
            io_failed: false,
            write_failed: false,
            damaged: None,
            suspect: false,
            last_try: None,
            message: String::new(),
            logged_unavailable: false,
            corruptions: 0,
            notes: Vec::new(),
            generation: 0,
        }
    }

    fn durable(&self) -> bool {
        self.backing == Backing::File
            && !self.io_failed
            && !self.write_failed
            && self.damaged.is_none()
    }
}

/// Why a file could not be opened.
#[derive(Debug)]
enum OpenFailure {
    /// Its contents are not a sound redb database.
    Damaged(String),
    /// It cannot be opened now (permissions, a read-only or full filesystem,
    /// a missing directory); it may be later.
    Unavailable(String),
    /// It is sound but not ours to use (an older redb format, another schema).
    Incompatible(String),
}

impl OpenFailure {
    fn message(&self) -> &str {
        match self {
            OpenFailure::Damaged(m)
            | OpenFailure::Unavailable(m)
            | OpenFailure::Incompatible(m) => m,
        }
    }
}

/// What [`Store::maintain`] is to do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Repair {
    Reopen,
    Check,
    Attach,
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

    /// Repairs what a failure left to repair, at most once per
    /// [`REOPEN_INTERVAL`]: reopens the file after an I/O error, checks it
    /// after a failure on its contents (moving it aside if it is damaged), and
    /// while on memory tries the file again. Every transaction calls this
    /// first; a caller that may go a while without one calls it on a timer.
    pub fn maintain(&self) {
        let repair = {
            let mut st = self.state();
            let repair = if st.damaged.is_some() && st.repair && st.backing == Backing::File {
                Repair::Check
            } else if st.io_failed && st.backing == Backing::File {
                Repair::Reopen
            } else if st.backing == Backing::MemoryForFile && st.retry_file {
                Repair::Attach
            } else {
                return;
            };
            let now = tokio::time::Instant::now();
            if st
                .last_try
                .is_some_and(|at| now.duration_since(at) < REOPEN_INTERVAL)
            {
                return;
            }
            st.last_try = Some(now);
            repair
        };
        // Not holding `state` here: a transaction in flight may need it to
        // report its error. The write lock waits for every transaction of this
        // process to end, so the old database is dropped (and its file lock
        // released) before the file is opened again.
        let mut db = self
            .inner
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match repair {
            Repair::Reopen => self.reopen(&mut db),
            Repair::Check => self.check(&mut db),
            Repair::Attach => self.attach(&mut db, true),
        }
    }

    /// Reopens the file after an I/O error (redb refuses every transaction
    /// until then); it says durable again only once a write succeeds.
    fn reopen(&self, db: &mut Option<Database>) {
        if !self.state().io_failed {
            return;
        }
        *db = None;
        match open_database(&self.inner.path, false) {
            Ok(reopened) => {
                *db = Some(reopened);
                let mut st = self.state();
                st.io_failed = false;
                // Whether it takes writes again, the next write says.
                tracing::debug!(
                    path = %self.inner.path.display(),
                    "state store reopened after an I/O error"
                );
            }
            Err(OpenFailure::Damaged(why)) => {
                self.state().damaged = Some(why.clone());
                self.replace_damaged(db, &why, None);
            }
            Err(e) => {
                tracing::error!(
                    path = %self.inner.path.display(),
                    error = %e.message(),
                    "state store still unavailable"
                );
                self.state().message = e.message().to_string();
            }
        }
    }

    /// After a failure on the file's contents: reads what it can through the
    /// open handle, then reopens the file with redb's integrity check. A file
    /// that passes is kept (the failure may not have been the file's: a second
    /// one moves it aside without asking again); a damaged one is moved aside
    /// and replaced.
    fn check(&self, db: &mut Option<Database>) {
        let (why, suspect) = {
            let st = self.state();
            match &st.damaged {
                Some(why) if st.backing == Backing::File => (why.clone(), st.suspect),
                _ => return,
            }
        };
        // A panic inside a write transaction leaves the file needing a repair
        // that its damage may prevent: read it while it is still open.
        let through_handle = db
            .take()
            .map(|open| Collected::read(&Source::DamagedOpen(&open)));
        let why = if suspect {
            why
        } else {
            match open_database(&self.inner.path, true) {
                Ok(checked) => {
                    *db = Some(checked);
                    let mut st = self.state();
                    st.damaged = None;
                    st.suspect = true;
                    tracing::warn!(
                        path = %self.inner.path.display(),
                        error = %why,
                        "the state store passed its integrity check after a failure; keeping it"
                    );
                    return;
                }
                Err(OpenFailure::Damaged(found)) => found,
                Err(e) => {
                    // Cannot tell now: treat it as an I/O failure, reopened later.
                    let mut st = self.state();
                    st.damaged = None;
                    st.io_failed = true;
                    st.message = e.message().to_string();
                    return;
                }
            }
        };
        self.replace_damaged(db, &why, through_handle);
    }

    /// Moves the damaged file aside, copies what can be read of it (or what
    /// `read` already read through the handle that was open on it, if that is
    /// more) into the memory store (a fresh one unless memory already stands
    /// in for the file), and tries a fresh file. The file's database is closed.
    fn replace_damaged(&self, db: &mut Option<Database>, why: &str, read: Option<Collected>) {
        let path = &self.inner.path;
        let aside = move_aside(path);
        let memory = match db.take() {
            Some(m) if self.state().backing == Backing::MemoryForFile => m,
            _ => memory_database(),
        };
        let from_file = || {
            let file = match &aside {
                Ok(p) => p.as_path(),
                Err(_) => path.as_path(),
            };
            Collected::read(&Source::damaged_file(file))
        };
        let collected = match read {
            Some(r) if r.report.complete() => r,
            Some(r) => {
                let f = from_file();
                if f.report.kept() > r.report.kept() {
                    f
                } else {
                    r
                }
            }
            None => from_file(),
        };
        let copied = unwind::catch(|| -> Result<(), redb::Error> {
            let tx = memory.begin_write()?;
            collected.write(&tx, false)?;
            tx.commit()?;
            Ok(())
        });
        let summary = match copied {
            Ok(Ok(())) => collected.report.summary(),
            Ok(Err(e)) => format!("kept nothing: {e}"),
            Err(panic) => format!("kept nothing: {panic}"),
        };
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        let note = match &aside {
            Ok(p) => {
                tracing::error!(
                    path = %path.display(),
                    moved_to = %p.display(),
                    error = %why,
                    salvaged = %summary,
                    "the state store is damaged; moved it aside and starting a fresh one"
                );
                format!(
                    "{now}: {} was damaged ({why}); moved aside to {}; {summary}",
                    path.display(),
                    p.display()
                )
            }
            Err(e) => {
                tracing::error!(
                    path = %path.display(),
                    error = %why,
                    move_error = %e,
                    salvaged = %summary,
                    "the state store is damaged and cannot be moved aside; running on memory"
                );
                format!(
                    "{now}: {} is damaged ({why}) and cannot be moved aside ({e}); {summary}",
                    path.display()
                )
            }
        };
        {
            let mut st = self.state();
            st.corruptions += 1;
            st.notes.push(note);
            let excess = st.notes.len().saturating_sub(MAX_NOTES);
            st.notes.drain(..excess);
            st.backing = Backing::MemoryForFile;
            st.damaged = None;
            st.suspect = false;
            st.io_failed = false;
            st.write_failed = false;
            st.message = format!("{} was damaged", path.display());
        }
        *db = Some(memory);
        if aside.is_ok() {
            self.attach(db, false);
        }
    }

    /// Moves from the memory store to the file if the file opens (checked for
    /// damage): everything memory holds is copied into the file in one
    /// transaction, then the file is used. `repair` allows a damaged file to
    /// be moved aside and replaced (once).
    fn attach(&self, db: &mut Option<Database>, repair: bool) {
        if self.state().backing != Backing::MemoryForFile {
            return;
        }
        let path = &self.inner.path;
        let opened = match path.parent().map(std::fs::create_dir_all) {
            Some(Err(e)) => Err(OpenFailure::Unavailable(format!(
                "cannot create {}: {e}",
                path.parent().unwrap_or(path).display()
            ))),
            _ => open_database(path, true),
        };
        let file = match opened {
            Ok(file) => file,
            Err(OpenFailure::Damaged(why)) if repair => {
                let error = StoreError::Open {
                    path: path.clone(),
                    message: why.clone(),
                };
                tracing::error!(error = %error, "the state store is damaged");
                self.replace_damaged(db, &why, None);
                return;
            }
            Err(e) => return self.not_attached(&e),
        };
        let Some(memory) = db.as_ref() else {
            return;
        };
        let carried = Collected::read(&Source::Sound(memory));
        let merged = unwind::catch(|| -> Result<Result<(), u64>, redb::Error> {
            let found = {
                let tx = file.begin_read()?;
                match read_table(&tx, META)? {
                    Some(meta) => meta.get("schema_version")?.map(|v| v.value()),
                    None => None,
                }
            };
            match found {
                Some(v) if v != SCHEMA_VERSION => return Ok(Err(v)),
                Some(_) if carried.is_empty() => return Ok(Ok(())),
                _ => {}
            }
            let tx = file.begin_write()?;
            tx.open_table(META)?
                .insert("schema_version", SCHEMA_VERSION)?;
            carried.write(&tx, true)?;
            tx.commit()?;
            Ok(Ok(()))
        });
        match merged {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(found))) => {
                let error = StoreError::Schema {
                    path: path.clone(),
                    found,
                    expected: SCHEMA_VERSION,
                };
                return self.not_attached(&OpenFailure::Incompatible(error.to_string()));
            }
            Ok(Err(e)) => {
                return self.not_attached(&OpenFailure::Unavailable(format!(
                    "cannot copy what memory holds into it: {e}"
                )))
            }
            Err(panic) => {
                let why = format!("panicked while copying into it: {panic}");
                drop(file);
                if repair {
                    self.replace_damaged(db, &why, None);
                    return;
                }
                return self.not_attached(&OpenFailure::Damaged(why));
            }
        }
        *db = Some(file);
        let generation = {
            let mut st = self.state();
            st.backing = Backing::File;
            st.io_failed = false;
            st.write_failed = false;
            st.message.clear();
            st.logged_unavailable = false;
            st.generation += 1;
            st.generation
        };
        if carried.is_empty() {
            tracing::debug!(path = %path.display(), generation, "state store file in use");
        } else {
            tracing::warn!(
                path = %path.display(),
                carried = %carried.report.summary(),
                "the state store file can be used again; moved what memory held into it"
            );
        }
        self.inner.changed.notify_waiters();
    }

    /// Stays on memory after a failed attempt to use the file, logging the
    /// first failure (and any that differs) as an error.
    fn not_attached(&self, failure: &OpenFailure) {
        let mut st = self.state();
        let message = failure.message().to_string();
        if !st.logged_unavailable || st.message != message {
            let error = StoreError::Open {
                path: self.inner.path.clone(),
                message: message.clone(),
            };
            if let OpenFailure::Incompatible(_) = failure {
                tracing::error!(error = %error, "cannot use the state store file; running on memory until restarted (incidents and queued alerts will NOT survive a restart)");
            } else {
                tracing::error!(error = %error, "cannot open the state store; running on memory and trying the file every second (incidents and queued alerts will NOT survive a restart until it opens)");
            }
        }
        if let OpenFailure::Incompatible(_) = failure {
            st.retry_file = false;
        }
        st.logged_unavailable = true;
        st.message = message;
    }

    fn unavailable(&self) -> StoreError {
        StoreError::Unavailable {
            path: self.path().to_path_buf(),
            message: self.state().message.clone(),
        }
    }

    /// Marks the file damaged after a panic or a corruption error; the daemon's
    /// store checks it before its next transaction.
    fn damaged(&self, why: String) -> StoreError {
        let mut st = self.state();
        st.message = why.clone();
        if st.backing == Backing::File && st.damaged.is_none() {
            if st.repair {
                tracing::error!(
                    path = %self.inner.path.display(),
                    error = %why,
                    "the state store failed on its contents; checking the file"
                );
                st.last_try = None;
            }
            st.damaged = Some(why.clone());
        }
        StoreError::Damaged {
            path: self.path().to_path_buf(),
            message: why,
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

/// Opens (creating if needed) the redb file at `path` in multi-writer mode,
/// behind the panic boundary; with `check`, redb verifies every page of the
/// committed trees first, so damage shows here rather than as a panic later.
fn open_database(path: &Path, check: bool) -> Result<Database, OpenFailure> {
    let opened = unwind::catch(|| {
        Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .set_cache_size(CACHE_SIZE)
            .set_check_integrity_on_open(check)
            .create(path)
    });
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(classify(e)),
        Err(panic) => Err(OpenFailure::Damaged(format!(
            "panicked while opening: {panic}"
        ))),
    }
}

/// Tells damage (corrupt pages, not a redb file at all) from a file that
/// cannot be opened now and one that is sound but not usable.
fn classify(e: redb::DatabaseError) -> OpenFailure {
    use redb::{DatabaseError, StorageError};
    let message = e.to_string();
    match e {
        DatabaseError::Storage(StorageError::Corrupted(_)) => OpenFailure::Damaged(message),
        // redb's "Not a redb database" (a garbage header); the kernel never
        // reports InvalidData.
        DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            OpenFailure::Damaged(message)
        }
        DatabaseError::UpgradeRequired(_) => OpenFailure::Incompatible(message),
        _ => OpenFailure::Unavailable(message),
    }
}

/// A fresh in-memory database.
fn memory_database() -> Database {
    Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .expect("an empty memory database opens")
}

/// Renames the damaged file to `<name>.corrupt-<UTC time>` (with `-2`, `-3`...
/// if that exists). Returns the new path.
fn move_aside(path: &Path) -> Result<PathBuf, String> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| FILE_NAME.to_string());
    let mut aside = path.with_file_name(format!("{name}{DAMAGED_SUFFIX}{stamp}"));
    let mut n = 1;
    while aside.exists() {
        n += 1;
        aside = path.with_file_name(format!("{name}{DAMAGED_SUFFIX}{stamp}-{n}"));
    }
    std::fs::rename(path, &aside)
        .map(|()| aside)
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

    // -----------------------------------------------------------------------
    // Faults: a damaged file, a file that cannot be opened, a full disk.
    // -----------------------------------------------------------------------

    use crate::detect::{Detector, Incident, SlowdownSettings};
    use chrono::{DateTime, Utc};
    use std::collections::HashSet;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn incident(start: i64) -> Incident {
        serde_json::from_value(serde_json::json!({
            "kind": "slow",
            "started_at": t(start),
            "detected_at": t(start + 30),
            "recovered_at": t(start + 300),
            "closed_at": t(start + 330),
            "peak_latency": {"secs": 2, "nanos": 0},
            "baseline_at_onset": {"secs": 0, "nanos": 100_000_000},
            "worst_phase": "first_byte",
            "slow_count": 10,
            "failed_count": 0
        }))
        .unwrap()
    }

    /// What a store holds, comparable across files (outbox ids differ).
    #[derive(Debug, PartialEq)]
    struct Contents {
        outbox: Vec<(String, String, String)>,
        history: Vec<(String, DateTime<Utc>)>,
        detectors: Vec<String>,
    }

    fn contents(store: &Store) -> Contents {
        let mut outbox: Vec<(String, String, String)> = outbox::all_rows(store)
            .unwrap()
            .into_iter()
            .map(|e| (e.receiver, e.incident_key, e.payload))
            .collect();
        outbox.sort();
        let mut history: Vec<(String, DateTime<Utc>)> =
            incidents::history(store, incidents::MAX_HISTORY as usize)
                .unwrap()
                .into_iter()
                .map(|r| (r.target, r.incident.started_at))
                .collect();
        history.sort();
        let mut detectors: Vec<String> = incidents::load_detectors(store)
            .unwrap()
            .into_keys()
            .collect();
        detectors.sort();
        Contents {
            outbox,
            history,
            detectors,
        }
    }

    /// A store file with 40 queued notifications of 20 incidents, 150 incident
    /// records, two detector states, a silence, receiver state and an open
    /// incident: enough rows for every table to span several pages.
    fn filled(dir: &Path) -> Contents {
        let store = Store::open(dir).unwrap();
        for i in 0..20 {
            let key = format!("incident-{i:02}");
            let payload = format!("{{\"pad\":\"{}\"}}", "x".repeat(300));
            outbox::enqueue(&store, &["hook"], &key, &payload, t(i)).unwrap();
            outbox::enqueue(&store, &["hook"], &key, &payload, t(i + 1)).unwrap();
        }
        let records: Vec<Incident> = (0..150).map(|i| incident(i * 600)).collect();
        let detector = Detector::new(SlowdownSettings::default());
        for chunk in records.chunks(50) {
            let batch = incidents::Batch {
                detectors: vec![("owa", &detector), ("ews", &detector)],
                incidents: chunk.iter().map(|i| ("owa", i)).collect(),
            };
            incidents::save(&store, &batch).unwrap();
        }
        outbox::put_state(&store, "grafana", "incident-00", b"17").unwrap();
        contents(&store)
    }

    fn corrupt(file: &Path, page: u64, rng: &mut fastrand::Rng) {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
        f.seek(SeekFrom::Start(page * 4096)).unwrap();
        let bytes: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
        f.write_all(&bytes).unwrap();
    }

    fn subset<T: PartialEq + std::fmt::Debug>(part: &[T], whole: &[T], what: &str) {
        for x in part {
            assert!(whole.contains(x), "{what}: {x:?} was not in the original");
        }
    }

    /// A panic inside a write transaction: redb then leaves the file needing
    /// a repair, as a crash would.
    fn leave_unclean(dir: &Path) {
        let db = open_database(&dir.join(FILE_NAME), false).unwrap();
        let _ = unwind::catch(|| {
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert("x", 1).unwrap();
            panic!("crash")
        });
    }

    #[test]
    fn every_corrupted_page_is_caught_and_what_can_be_read_is_kept() {
        let outcomes = corrupted_pages(false);
        // The tables are read independently: damage to one leaves the other whole.
        assert!(outcomes.contains(&(true, false)), "{outcomes:?}");
        assert!(outcomes.contains(&(false, true)), "{outcomes:?}");
    }

    /// A file left needing a repair (a crash) that is then damaged cannot be
    /// read: redb must repair it first, and the damage defeats the repair. It
    /// is still caught, moved aside and replaced, without a panic.
    #[test]
    fn every_corrupted_page_of_a_file_not_closed_cleanly_is_caught() {
        corrupted_pages(true);
    }

    /// Overwrites every page of a filled store in turn (with two seeds of
    /// random bytes, one if `unclean`), opens it as the daemon does, and uses
    /// every table. Returns, for the files moved aside, whether the outbox
    /// and the history came through whole.
    fn corrupted_pages(unclean: bool) -> HashSet<(bool, bool)> {
        let base_dir = tempfile::tempdir().unwrap();
        let original = filled(base_dir.path());
        if unclean {
            leave_unclean(base_dir.path());
            assert!(
                !salvage::tests::opens_read_only(&base_dir.path().join(FILE_NAME)),
                "the file is clean"
            );
        }
        let base = std::fs::read(base_dir.path().join(FILE_NAME)).unwrap();
        let pages = base.len() as u64 / 4096;
        assert!(pages >= 20, "a store of {pages} pages is too small to test");
        // Which tables came through whole when something was moved aside.
        let mut outcomes: HashSet<(bool, bool)> = HashSet::new();
        let mut moved = 0;
        let (mut outbox_whole, mut history_whole) = (0, 0);
        let seeds = if unclean { 1 } else { 2 };
        for seed in 0..seeds {
            for page in 0..pages {
                let mut rng = fastrand::Rng::with_seed(seed * 1000 + page);
                let dir = tempfile::tempdir().unwrap();
                let file = dir.path().join(FILE_NAME);
                std::fs::write(&file, &base).unwrap();
                corrupt(&file, page, &mut rng);

                let store = Store::open_daemon(dir.path());
                let status = store.status();
                assert!(status.durable, "seed {seed} page {page}: {status:?}");
                // Every table reads and takes writes, on whichever file is in use.
                let now = contents(&store);
                outbox::enqueue(&store, &["hook"], "new", "{}", t(9000)).unwrap();
                let late = incident(999_999);
                let batch = incidents::Batch {
                    detectors: Vec::new(),
                    incidents: vec![("owa", &late)],
                };
                incidents::save(&store, &batch).unwrap();
                outbox::silences(&store).unwrap();
                outbox::open_records(&store).unwrap();
                assert!(store.status().durable, "seed {seed} page {page}");

                subset(&now.outbox, &original.outbox, "outbox");
                subset(&now.history, &original.history, "history");
                subset(&now.detectors, &original.detectors, "detectors");
                if status.corruptions == 0 {
                    assert_eq!(now, original, "seed {seed} page {page}: unnoticed damage");
                    assert_ne!(page, 0, "a broken header went unnoticed");
                    continue;
                }
                moved += 1;
                assert_eq!(status.corruptions, 1);
                assert_eq!(status.notes.len(), 1);
                let aside: Vec<String> = std::fs::read_dir(dir.path())
                    .unwrap()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("{FILE_NAME}{DAMAGED_SUFFIX}")))
                    .collect();
                assert_eq!(aside.len(), 1, "seed {seed} page {page}");
                assert!(status.notes[0].contains(&aside[0]), "{:?}", status.notes);
                let whole = (
                    now.outbox == original.outbox,
                    now.history == original.history,
                );
                outbox_whole += usize::from(whole.0);
                history_whole += usize::from(whole.1);
                outcomes.insert(whole);
            }
        }
        eprintln!(
            "{} file of {pages} pages, {seeds} seed(s): {moved} damaged files moved aside; \
             the outbox came through whole in {outbox_whole}, the history in {history_whole}",
            if unclean { "unclean" } else { "clean" },
        );
        // About half the pages of the file are in use by its trees.
        assert!(
            moved * 3 > pages as usize * seeds as usize,
            "only {moved} damaged files found in {pages} pages"
        );
        outcomes
    }

    #[test]
    fn a_file_that_is_not_a_database_is_moved_aside_for_a_fresh_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"not redb at all".repeat(400)).unwrap();
        let store = Store::open_daemon(dir.path());
        let status = store.status();
        assert!(status.durable, "{status:?}");
        assert_eq!(status.backing, Backing::File);
        assert_eq!(status.corruptions, 1);
        assert!(
            status.notes[0].contains("Not a redb database")
                && status.notes[0].contains("kept nothing"),
            "{:?}",
            status.notes
        );
        outbox::enqueue(&store, &["a"], "i", "{}", t(0)).unwrap();
        assert_eq!(outbox::all_rows(&store).unwrap().len(), 1);
    }

    /// The store file of a state directory made unopenable: moved away, with
    /// a directory of its name in its place (no root needed).
    struct Blocked {
        file: PathBuf,
        kept: PathBuf,
    }

    impl Blocked {
        fn new(state: &Path) -> Blocked {
            let file = state.join(FILE_NAME);
            let kept = state.with_extension("kept");
            std::fs::rename(&file, &kept).unwrap();
            std::fs::create_dir(&file).unwrap();
            Blocked { file, kept }
        }

        /// Puts the file back.
        fn unblock(self) {
            std::fs::remove_dir(&self.file).unwrap();
            std::fs::rename(&self.kept, &self.file).unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_that_cannot_be_opened_is_replaced_by_memory_until_it_can() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        // A previous run queued a message of incident "old".
        {
            let store = Store::open(&state).unwrap();
            outbox::enqueue(&store, &["a"], "old", "old firing", t(0)).unwrap();
        }
        // The store file cannot be opened: a directory stands in its place.
        let blocked = Blocked::new(&state);
        let store = Store::open_daemon(&state);
        let status = store.status();
        assert!(!status.durable);
        assert_eq!(status.backing, Backing::MemoryForFile);
        assert!(
            status
                .problem
                .as_deref()
                .unwrap()
                .starts_with("running on memory ("),
            "{status:?}"
        );
        assert_eq!(status.corruptions, 0, "not damage: nothing is moved aside");
        // Meanwhile memory takes everything.
        outbox::enqueue(&store, &["a"], "new", "new firing", t(10)).unwrap();
        outbox::enqueue(&store, &["a"], "new", "new resolved", t(11)).unwrap();
        let new = incident(10);
        let batch = incidents::Batch {
            detectors: Vec::new(),
            incidents: vec![("owa", &new)],
        };
        incidents::save(&store, &batch).unwrap();
        outbox::put_state(&store, "a", "new", b"7").unwrap();
        // An attempt at the first message starts before the move.
        let in_flight = outbox::all_rows(&store).unwrap()[0].clone();
        assert_eq!(in_flight.payload, "new firing");

        // The file can be opened again: at the next try, memory moves into it.
        blocked.unblock();
        store.maintain();
        assert!(
            !store.status().durable,
            "tried again before REOPEN_INTERVAL"
        );
        tokio::time::advance(REOPEN_INTERVAL).await;
        store.maintain();
        let status = store.status();
        assert!(status.durable, "{status:?}");
        assert_eq!(status.backing, Backing::File);
        assert_eq!(status.generation, 1);
        let payloads = |store: &Store| -> Vec<String> {
            outbox::all_rows(store)
                .unwrap()
                .into_iter()
                .map(|e| e.payload)
                .collect()
        };
        assert_eq!(
            payloads(&store),
            ["new firing", "new resolved", "old firing"]
        );
        // The attempt in flight ends: its entry is found and removed, so it
        // is not sent again from the file.
        assert!(outbox::remove(&store, &in_flight).unwrap());
        // New messages sort after everything carried over.
        outbox::enqueue(&store, &["a"], "new", "new reminder", t(12)).unwrap();
        let mut rows = outbox::all_rows(&store).unwrap();
        rows.sort_by_key(|e| e.id);
        assert_eq!(rows.last().unwrap().payload, "new reminder");
        drop(store);
        // It is all in the file.
        let reopened = Store::open(&state).unwrap();
        assert_eq!(
            payloads(&reopened),
            ["new resolved", "new reminder", "old firing"]
        );
        assert_eq!(incidents::history(&reopened, 10).unwrap().len(), 1);
        assert_eq!(
            outbox::get_state(&reopened, "a", "new").unwrap().unwrap(),
            b"7"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_incident_queued_in_both_memory_and_the_file_keeps_its_order() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        {
            let store = Store::open(&state).unwrap();
            outbox::enqueue(&store, &["a"], "inc", "file firing", t(0)).unwrap();
            outbox::enqueue(&store, &["a"], "other", "other firing", t(0)).unwrap();
        }
        let blocked = Blocked::new(&state);
        let store = Store::open_daemon(&state);
        outbox::enqueue(&store, &["a"], "inc", "memory update", t(1)).unwrap();
        outbox::enqueue(&store, &["a"], "inc", "memory resolved", t(2)).unwrap();
        blocked.unblock();
        tokio::time::advance(REOPEN_INTERVAL).await;
        store.maintain();
        assert!(store.status().durable);
        let order: Vec<String> = outbox::all_rows(&store)
            .unwrap()
            .into_iter()
            .filter(|e| e.incident_key == "inc")
            .map(|e| e.payload)
            .collect();
        assert_eq!(order, ["file firing", "memory update", "memory resolved"]);
        let due = outbox::due(&store, t(10), &Default::default()).unwrap();
        let heads: Vec<&str> = due.ready.iter().map(|e| e.payload.as_str()).collect();
        assert!(
            heads.contains(&"file firing") && heads.contains(&"other firing"),
            "{heads:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_write_says_not_durable_until_a_write_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_daemon(dir.path());
        assert!(store.status().durable);
        store.fail_writes(true);
        assert!(outbox::enqueue(&store, &["a"], "i", "{}", t(0)).is_err());
        let status = store.status();
        assert!(!status.durable);
        assert!(status.problem.unwrap().contains("simulated"));
        // The file is reopened, but that alone proves nothing: still not durable.
        tokio::time::advance(REOPEN_INTERVAL).await;
        store.maintain();
        assert!(!store.status().durable);
        assert!(outbox::all_rows(&store).is_ok(), "reads go on");
        assert!(!store.status().durable);
        // Space returns: the next write succeeds and says so.
        store.fail_writes(false);
        outbox::enqueue(&store, &["a"], "i", "{}", t(1)).unwrap();
        assert!(store.status().durable);
    }

    #[test]
    fn a_panic_on_the_contents_is_checked_then_moves_the_file_aside_if_it_recurs() {
        let dir = tempfile::tempdir().unwrap();
        let original = filled(dir.path());
        let store = Store::open_daemon(dir.path());
        let err = store
            .read(|_| -> Result<(), redb::Error> { panic!("invalid page type 9") })
            .unwrap_err();
        assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("invalid page type 9"), "{err}");
        assert!(!store.status().durable);
        // The next transaction checks the file: it is sound, so it is kept.
        assert_eq!(contents(&store), original);
        let status = store.status();
        assert!(status.durable);
        assert_eq!(status.corruptions, 0);
        // Again: the file is moved aside without asking redb, and all of it kept.
        store
            .write(|_| -> Result<(), redb::Error> { panic!("invalid page type 9") })
            .unwrap_err();
        let now = contents(&store);
        assert_eq!(now, original, "{:?}", store.status());
        let status = store.status();
        assert!(status.durable, "{status:?}");
        assert_eq!(status.corruptions, 1);
        assert!(
            status.notes[0].contains("invalid page type 9"),
            "{:?}",
            status.notes
        );
        assert_eq!(status.generation, 2);
    }

    #[test]
    fn a_command_reports_a_damaged_file_without_moving_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"not redb at all".repeat(400)).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("Not a redb database"), "{err}");
        assert!(dir.path().join(FILE_NAME).exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
