//! Secrets read from files named by `*_file` configuration keys.
//!
//! A [`Secret`] never shows its value through `Debug` or `Display`, so it can
//! sit inside any configuration type that is logged or printed.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value and the file it came from. Formatting shows only the path.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    path: PathBuf,
}

impl Secret {
    /// Reads a secret file; one trailing newline (as editors and `echo` write) is removed.
    pub fn from_file(path: &Path) -> std::io::Result<Secret> {
        let mut value = std::fs::read_to_string(path)?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        Ok(Secret {
            value,
            path: path.to_path_buf(),
        })
    }

    /// A secret held in memory (tests and built-in values).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret {
            value: value.into(),
            path: PathBuf::from("<memory>"),
        }
    }

    /// The secret itself. Call this only where the value is sent to a peer.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The file the secret was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.path.display())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret from {}>", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "hunter2\n").unwrap();
        let secret = Secret::from_file(&path).unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert!(!format!("{secret:?} {secret}").contains("hunter2"));
    }
}
