//! How the daemon's store repairs itself: the [`State`] of what went wrong
//! and what is left to do, and [`Store::maintain`], run before every
//! transaction, which reopens the file after an I/O error, checks it after a
//! failure on its contents (moving a damaged file aside and salvaging what
//! reads), and moves from the memory stand-in to the file once it opens.

use std::sync::PoisonError;

use redb::{Database, ReadableDatabase};

use super::open::{memory_database, move_aside, open_database, OpenFailure};
use super::salvage::{Collected, Source};
use super::{
    read_table, unwind, Backing, Store, StoreError, META, REOPEN_INTERVAL, SCHEMA_VERSION,
};

/// Notes about damaged files kept for [`super::StoreStatus::notes`] (the latest).
const MAX_NOTES: usize = 4;

/// What went wrong and what is left to do.
pub(super) struct State {
    pub(super) backing: Backing,
    /// Whether this handle may move a damaged file aside and fall back to
    /// memory (the daemon); a command's handle only reports errors.
    pub(super) repair: bool,
    /// Whether to keep trying the file while on memory (false once the file
    /// turned out to be of another schema: retrying cannot help).
    pub(super) retry_file: bool,
    /// An I/O error happened on the file and it has not been reopened since.
    pub(super) io_failed: bool,
    /// The last write failed and none has succeeded since.
    pub(super) write_failed: bool,
    /// A transaction failed on the file's contents (corruption, a panic).
    pub(super) damaged: Option<String>,
    /// A failure on the contents was followed by a clean integrity check: the
    /// next one moves the file aside without asking redb again.
    pub(super) suspect: bool,
    /// When a repair was last tried.
    pub(super) last_try: Option<tokio::time::Instant>,
    /// The latest failure, for errors and [`super::StoreStatus::problem`].
    pub(super) message: String,
    /// Whether the current inability to open the file was logged already.
    pub(super) logged_unavailable: bool,
    pub(super) corruptions: u64,
    pub(super) notes: Vec<String>,
    pub(super) generation: u64,
}

impl State {
    pub(super) fn new(backing: Backing, repair: bool) -> State {
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

    pub(super) fn durable(&self) -> bool {
        self.backing == Backing::File
            && !self.io_failed
            && !self.write_failed
            && self.damaged.is_none()
    }
}

/// What [`Store::maintain`] is to do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Repair {
    Reopen,
    Check,
    Attach,
}

impl Store {
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
    pub(super) fn attach(&self, db: &mut Option<Database>, repair: bool) {
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

    pub(super) fn unavailable(&self) -> StoreError {
        StoreError::Unavailable {
            path: self.path().to_path_buf(),
            message: self.state().message.clone(),
        }
    }

    /// Marks the file damaged after a panic or a corruption error; the daemon's
    /// store checks it before its next transaction.
    pub(super) fn damaged(&self, why: String) -> StoreError {
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
}
