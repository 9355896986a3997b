//! Secrets read from files named by `*_file` configuration keys, and the one
//! bounded reader every file the configuration names goes through.
//!
//! A [`Secret`] never shows its value through `Debug` or `Display`, so it can
//! sit inside any configuration type that is logged or printed.
//!
//! [`read_limited`] reads only regular files (a FIFO would block the reader
//! forever, a device such as `/dev/zero` never ends) and at most a named
//! number of bytes, so no configuration can make loading hang or exhaust
//! memory. It never opens anything but a regular file: opening some devices
//! has effects of its own (a tape rewinds).

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The largest secret file read (`password_file`, `bearer_token_file`,
/// `token_file`, `url_file`...): a password, token or webhook URL is a few
/// hundred bytes at most.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The largest certificate file read (`tls_ca_file`, `tls_cert_file`,
/// `tls_client_ca_file`): a whole CA bundle such as Debian's
/// `ca-certificates.crt` is about 220 KiB.
pub const MAX_CERTIFICATE_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The largest private key file read (`tls_key_file`): a 4096-bit RSA key
/// in PEM is about 3.3 KiB.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Permission bit that lets every user of the host read a file. A secret
/// with it set is reported (group-readable is not: that is how a secret is
/// shared with the service's group, as in `root:mailpulse 0640`).
pub const READABLE_BY_OTHERS: u32 = 0o004;

/// Why a file named by the configuration could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Opening or reading failed (the system's message).
    Io(std::io::Error),
    /// Not a regular file: what it is instead ("a FIFO", "a directory"...).
    NotRegular(&'static str),
    /// Longer than the limit, in bytes.
    TooLarge(u64),
    /// A text file that is not UTF-8.
    NotUtf8,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::NotRegular(what) => write!(f, "not a regular file ({what})"),
            ReadError::TooLarge(limit) => write!(f, "larger than {limit} bytes"),
            ReadError::NotUtf8 => f.write_str("stream did not contain valid UTF-8"),
        }
    }
}

impl std::error::Error for ReadError {}

/// What a file is, when it is not a regular file.
fn kind_of(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    }
}

/// Reads a regular file of at most `limit` bytes (symbolic links to one are
/// followed, as systemd credentials and mounted secrets use them), and
/// returns its bytes and permission bits.
///
/// The type is checked before opening (so a FIFO or device is never opened)
/// and again on the opened file (so a file swapped in between is caught);
/// the open is non-blocking in case a FIFO wins that race anyway. The size
/// is enforced while reading, not taken from the metadata, which procfs and
/// growing files get wrong.
pub fn read_limited(path: &Path, limit: u64) -> Result<(Vec<u8>, u32), ReadError> {
    let before = std::fs::metadata(path).map_err(ReadError::Io)?;
    if let Some(what) = kind_of(&before) {
        return Err(ReadError::NotRegular(what));
    }
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if let Some(what) = kind_of(&meta) {
        return Err(ReadError::NotRegular(what));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge(limit));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok((bytes, meta.permissions().mode() & 0o7777))
}

/// A secret value and the file it came from. Formatting shows only the path.
#[derive(Clone)]
pub struct Secret {
    value: String,
    path: PathBuf,
    /// The file's permission bits, when it came from a file.
    mode: Option<u32>,
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        // The value and where it came from; a chmod alone changes nothing.
        self.value == other.value && self.path == other.path
    }
}

impl Eq for Secret {}

impl Secret {
    /// Reads a secret file (a regular file of at most [`MAX_SECRET_BYTES`]);
    /// one trailing newline (as editors and `echo` write) is removed.
    pub fn from_file(path: &Path) -> Result<Secret, ReadError> {
        let (bytes, mode) = read_limited(path, MAX_SECRET_BYTES)?;
        let mut value = String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)?;
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        Ok(Secret {
            value,
            path: path.to_path_buf(),
            mode: Some(mode),
        })
    }

    /// A secret held in memory (tests and built-in values).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret {
            value: value.into(),
            path: PathBuf::from("<memory>"),
            mode: None,
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

    /// The file the secret was read from; `None` for one written in the
    /// configuration itself (or held in memory).
    pub fn file(&self) -> Option<&Path> {
        self.mode.is_some().then_some(self.path.as_path())
    }

    /// The permission bits of its file when every user may read it
    /// ([`READABLE_BY_OTHERS`]), for a warning; `None` otherwise.
    pub fn readable_by_others(&self) -> Option<u32> {
        self.mode.filter(|m| m & READABLE_BY_OTHERS != 0)
    }

    /// The warning for a secret file every user may read, if it is one.
    pub fn exposure_warning(&self) -> Option<String> {
        self.readable_by_others().map(|mode| {
            format!(
                "secret file {} is readable by others (mode {mode:04o}); chmod o-r it",
                self.path.display()
            )
        })
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

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let at_limit = dir.path().join("at-limit");
        std::fs::write(&at_limit, vec![b'x'; MAX_SECRET_BYTES as usize]).unwrap();
        assert_eq!(
            Secret::from_file(&at_limit).unwrap().expose().len() as u64,
            MAX_SECRET_BYTES
        );
        let over = dir.path().join("over");
        std::fs::write(&over, vec![b'x'; MAX_SECRET_BYTES as usize + 1]).unwrap();
        let check = |path: &Path, want: &str| {
            assert_eq!(Secret::from_file(path).unwrap_err().to_string(), want);
        };
        check(&over, "larger than 65536 bytes");
        check(dir.path(), "not a regular file (a directory)");
        check(
            Path::new("/dev/zero"),
            "not a regular file (a character device)",
        );
        check(
            Path::new("/dev/null"),
            "not a regular file (a character device)",
        );
        // procfs files say they are empty; the cap holds while reading.
        assert!(matches!(
            read_limited(Path::new("/proc/self/maps"), 16),
            Err(ReadError::TooLarge(16))
        ));
        let latin1 = dir.path().join("latin1");
        std::fs::write(&latin1, b"caf\xe9").unwrap();
        check(&latin1, "stream did not contain valid UTF-8");
    }

    #[test]
    fn a_secret_anyone_may_read_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "x").unwrap();
        for (mode, flagged) in [(0o600, false), (0o640, false), (0o644, true), (0o604, true)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let secret = Secret::from_file(&path).unwrap();
            assert_eq!(secret.readable_by_others().is_some(), flagged, "{mode:o}");
        }
        assert_eq!(
            Secret::from_file(&path)
                .unwrap()
                .exposure_warning()
                .unwrap(),
            format!(
                "secret file {} is readable by others (mode 0604); chmod o-r it",
                path.display()
            )
        );
        assert_eq!(Secret::new("x").readable_by_others(), None);
    }
}
