//! Opening redb databases: the file in multi-writer mode behind the panic
//! boundary (optionally checked for damage), a fresh memory database, what an
//! open failure means ([`OpenFailure`]), and moving a damaged file aside.

use std::path::{Path, PathBuf};

use redb::{ConcurrencyMode, Database};

use super::{unwind, CACHE_SIZE, DAMAGED_SUFFIX, FILE_NAME};

/// Why a file could not be opened.
#[derive(Debug)]
pub(super) enum OpenFailure {
    /// Its contents are not a sound redb database.
    Damaged(String),
    /// It cannot be opened now (permissions, a read-only or full filesystem,
    /// a missing directory); it may be later.
    Unavailable(String),
    /// It is sound but not ours to use (an older redb format, another schema).
    Incompatible(String),
}

impl OpenFailure {
    pub(super) fn message(&self) -> &str {
        match self {
            OpenFailure::Damaged(m)
            | OpenFailure::Unavailable(m)
            | OpenFailure::Incompatible(m) => m,
        }
    }
}

/// Opens (creating if needed) the redb file at `path` in multi-writer mode,
/// behind the panic boundary; with `check`, redb verifies every page of the
/// committed trees first, so damage shows here rather than as a panic later.
pub(super) fn open_database(path: &Path, check: bool) -> Result<Database, OpenFailure> {
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
pub(super) fn memory_database() -> Database {
    Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .expect("an empty memory database opens")
}

/// Renames the damaged file to `<name>.corrupt-<UTC time>` (with `-2`, `-3`...
/// if that exists). Returns the new path.
pub(super) fn move_aside(path: &Path) -> Result<PathBuf, String> {
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
