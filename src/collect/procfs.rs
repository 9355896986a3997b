//! Reading files under a configurable procfs root, and the collectors' error type.
//!
//! Every collector reads through [`ProcRoot`], so tests point it at the fixture
//! tree in `tests/fixtures/proc/` instead of `/proc`. This module owns no
//! knowledge of any file format beyond "whitespace-separated numbers".

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Why a collector could not produce its part of the snapshot.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// A file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file did not have the expected format.
    #[error("cannot parse {}: {message}", path.display())]
    Parse {
        /// The file that failed.
        path: PathBuf,
        /// What was wrong, in a few words.
        message: String,
    },
    /// The collector has no data source (e.g. the filesystem space source failed to start).
    #[error("{0}")]
    Unavailable(String),
}

impl CollectError {
    /// A parse error for `path`.
    pub(crate) fn parse(path: &Path, message: impl Into<String>) -> Self {
        CollectError::Parse {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// A procfs mount point (`/proc` in production, a fixture directory in tests).
#[derive(Debug, Clone)]
pub(crate) struct ProcRoot {
    root: PathBuf,
}

impl ProcRoot {
    /// A root at `root`.
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        ProcRoot { root: root.into() }
    }

    /// The path of `rel` under the root.
    pub(crate) fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// The root itself.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Reads `rel` into `buf` (cleared first), so callers can reuse one buffer.
    pub(crate) fn read_into(
        &self,
        rel: impl AsRef<Path>,
        buf: &mut String,
    ) -> Result<PathBuf, CollectError> {
        let path = self.path(rel);
        read_file_into(&path, buf)?;
        Ok(path)
    }

    /// Reads `rel` into a new string.
    pub(crate) fn read(&self, rel: impl AsRef<Path>) -> Result<(PathBuf, String), CollectError> {
        let mut buf = String::new();
        let path = self.read_into(rel, &mut buf)?;
        Ok((path, buf))
    }

    /// Reads `rel`, or returns `None` when it does not exist or the kernel does not
    /// support it (PSI files read as `EOPNOTSUPP` when booted with `psi=0`).
    pub(crate) fn read_optional(
        &self,
        rel: impl AsRef<Path>,
    ) -> Result<Option<(PathBuf, String)>, CollectError> {
        match self.read(rel) {
            Ok(found) => Ok(Some(found)),
            Err(CollectError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::Unsupported
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Reads the whole of `path` into `buf`, clearing it first.
pub(crate) fn read_file_into(path: &Path, buf: &mut String) -> Result<(), CollectError> {
    buf.clear();
    File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .map(|_| ())
        .map_err(|source| CollectError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Parses a decimal `u64` field, naming `what` in the error.
///
/// `what` is only formatted on error, so `format_args!` costs nothing on the hot path.
pub(crate) fn parse_u64(
    field: Option<&str>,
    path: &Path,
    what: impl fmt::Display,
) -> Result<u64, CollectError> {
    let field = field.ok_or_else(|| CollectError::parse(path, format!("missing {what}")))?;
    field
        .parse()
        .map_err(|_| CollectError::parse(path, format!("bad {what} {field:?}")))
}

/// Parses a decimal `f64` field, naming `what` in the error.
pub(crate) fn parse_f64(
    field: Option<&str>,
    path: &Path,
    what: impl fmt::Display,
) -> Result<f64, CollectError> {
    let field = field.ok_or_else(|| CollectError::parse(path, format!("missing {what}")))?;
    match field.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(CollectError::parse(path, format!("bad {what} {field:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let root = ProcRoot::new("/nonexistent-mailpulse-root");
        let err = root.read("loadavg").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read /nonexistent-mailpulse-root/loadavg: No such file or directory (os error 2)"
        );
        assert!(root.read_optional("loadavg").unwrap().is_none());
    }

    #[test]
    fn numbers_parse_or_name_the_field() {
        let p = Path::new("/proc/x");
        assert_eq!(parse_u64(Some("42"), p, "count").unwrap(), 42);
        assert_eq!(
            parse_u64(Some("4x"), p, "count").unwrap_err().to_string(),
            "cannot parse /proc/x: bad count \"4x\""
        );
        assert_eq!(
            parse_u64(None, p, "count").unwrap_err().to_string(),
            "cannot parse /proc/x: missing count"
        );
        assert_eq!(parse_f64(Some("0.25"), p, "load").unwrap(), 0.25);
        assert!(parse_f64(Some("nan"), p, "load").is_err());
    }
}
