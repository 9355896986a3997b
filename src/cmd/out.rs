//! Standard output of the commands: everything a command prints for people
//! or programs goes through [`print()`] (`println!` and `print!` are not used
//! anywhere in `src/`; `tests/integration/tidy.rs` checks it).
//!
//! A reader that stops early (`mailpulse incidents --json | head -1`,
//! a pager quit) closes the pipe: the write fails with `EPIPE` (the Rust
//! runtime ignores `SIGPIPE`), where `println!` would panic and exit 101.
//! Here a closed standard output is a normal end of the output: what is
//! left is dropped, the command finishes what it was doing (a silence is
//! still added) and exits with its own code, saying nothing. Any other
//! write error (a full disk under `> file`) is kept, the rest of the output
//! is dropped, and [`finish`] returns it, so the command exits 1 with
//! "cannot write to standard output".

use std::fmt;
use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

/// What became of standard output so far.
#[derive(Debug, Default)]
pub struct Output {
    /// Why nothing more is written: the reader left, or a write failed.
    ended: Option<Ended>,
}

/// Why an [`Output`] writes nothing more.
#[derive(Debug)]
enum Ended {
    /// The reader closed the pipe: a normal end.
    Closed,
    /// A write failed otherwise: an error to report.
    Failed(io::Error),
}

impl Output {
    /// An output that has written nothing yet.
    pub const fn new() -> Output {
        Output { ended: None }
    }

    /// Writes `text` to `w` (and flushes it, so a closed pipe shows now,
    /// not at exit), unless the output has ended; a closed pipe or another
    /// error ends it.
    pub fn write(&mut self, w: &mut impl Write, text: fmt::Arguments<'_>) {
        if self.ended.is_some() {
            return;
        }
        if let Err(e) = w.write_fmt(text).and_then(|()| w.flush()) {
            self.ended = Some(if e.kind() == io::ErrorKind::BrokenPipe {
                Ended::Closed
            } else {
                Ended::Failed(e)
            });
        }
    }

    /// Whether the reader has gone: nothing more is written.
    pub fn closed(&self) -> bool {
        matches!(self.ended, Some(Ended::Closed))
    }

    /// The write error to report, if one happened (a closed pipe is none).
    pub fn take_error(&mut self) -> Option<io::Error> {
        match self.ended.take() {
            Some(Ended::Failed(e)) => Some(e),
            other => {
                self.ended = other;
                None
            }
        }
    }
}

/// The process's standard output, as the commands write it.
static STDOUT: Mutex<Output> = Mutex::new(Output::new());

/// Prints `text` on standard output; nothing once the output has ended.
pub fn print(text: impl fmt::Display) {
    let mut out = STDOUT.lock().unwrap_or_else(PoisonError::into_inner);
    out.write(&mut io::stdout().lock(), format_args!("{text}"));
}

/// Prints `text` and a newline, as [`print()`] does.
pub fn line(text: impl fmt::Display) {
    print(format_args!("{text}\n"));
}

/// Whether standard output has ended (the reader left, or a write
/// failed): a command that prints until stopped (`status --watch`) stops.
pub fn ended() -> bool {
    let out = STDOUT.lock().unwrap_or_else(PoisonError::into_inner);
    out.ended.is_some()
}

/// Whether standard output is a terminal (a command that redraws clears
/// the screen only then).
pub fn is_terminal() -> bool {
    io::IsTerminal::is_terminal(&io::stdout())
}

/// The end of a command's output: `Err` with the write error that cut it
/// short, if one did (a reader that left is not one). `cmd::run` calls it
/// once the command returns.
pub fn finish() -> io::Result<()> {
    let mut out = STDOUT.lock().unwrap_or_else(PoisonError::into_inner);
    out.take_error().map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes `room` bytes, then fails with `kind`.
    struct Failing {
        got: Vec<u8>,
        room: usize,
        kind: io::ErrorKind,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.got.len() >= self.room {
                return Err(io::Error::from(self.kind));
            }
            let n = buf.len().min(self.room - self.got.len());
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn writer(room: usize, kind: io::ErrorKind) -> Failing {
        Failing {
            got: Vec::new(),
            room,
            kind,
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_output_quietly() {
        let mut out = Output::new();
        let mut w = writer(6, io::ErrorKind::BrokenPipe);
        out.write(&mut w, format_args!("first\n"));
        assert!(!out.closed());
        out.write(&mut w, format_args!("second\n"));
        assert!(out.closed());
        out.write(&mut w, format_args!("third\n"));
        assert_eq!(w.got, b"first\n");
        assert!(out.take_error().is_none());
        assert!(out.closed(), "taking no error keeps it closed");
    }

    #[test]
    fn another_write_error_is_kept_for_the_exit_code() {
        let mut out = Output::new();
        let mut w = writer(3, io::ErrorKind::StorageFull);
        out.write(&mut w, format_args!("first\n"));
        out.write(&mut w, format_args!("second\n"));
        assert_eq!(w.got, b"fir");
        assert!(!out.closed());
        let e = out.take_error().expect("the error is reported");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn everything_is_written_while_the_reader_reads() {
        let mut out = Output::new();
        let mut w = Vec::new();
        out.write(&mut w, format_args!("a {}\n", 1));
        out.write(&mut w, format_args!("b\n"));
        assert_eq!(w, b"a 1\nb\n");
        assert!(out.take_error().is_none());
    }
}
