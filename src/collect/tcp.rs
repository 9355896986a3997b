//! TCP collector: sockets counted by state from `/proc/net/tcp` and `/proc/net/tcp6`.
//!
//! Mail servers can hold tens of thousands of sockets, so the files are streamed
//! through one reused line buffer and only the state column is looked at: no
//! allocation per line and no address parsing. `tcp6` may be absent (IPv6
//! disabled); `tcp` may not.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use super::procfs::{CollectError, ProcRoot};
use super::Collector;
use crate::sample::host::{CollectorKind, HostSnapshot, TcpConnections, TcpState};

/// Read buffer size: a few hundred socket lines per `read` syscall.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Streams the socket tables; keeps its line buffer between rounds.
#[derive(Debug, Default)]
pub(crate) struct TcpCollector {
    /// One socket line at a time (about 150 bytes; the capacity is reused).
    line: Vec<u8>,
}

impl Collector for TcpCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Tcp
    }

    fn collect(&mut self, proc: &ProcRoot, snap: &mut HostSnapshot) -> Result<(), CollectError> {
        let mut counts = TcpConnections::default();
        for (name, required) in [("net/tcp", true), ("net/tcp6", false)] {
            let path = proc.path(name);
            match count_states(&path, &mut counts, &mut self.line) {
                Ok(()) => {}
                Err(CountError::Io(e)) if !required && e.kind() == io::ErrorKind::NotFound => {}
                Err(CountError::Io(source)) => return Err(CollectError::Io { path, source }),
                Err(CountError::Malformed(line)) => {
                    return Err(CollectError::parse(
                        &path,
                        format!("no state column on line {line}"),
                    ))
                }
            }
        }
        snap.tcp = Some(counts);
        Ok(())
    }
}

/// Why one socket table could not be counted.
enum CountError {
    /// Opening or reading failed.
    Io(io::Error),
    /// This (1-based) line had no two-digit hexadecimal state column.
    Malformed(usize),
}

impl From<io::Error> for CountError {
    fn from(e: io::Error) -> Self {
        CountError::Io(e)
    }
}

/// Adds the sockets of one table to `counts`, reusing `line` as the buffer.
fn count_states(
    path: &Path,
    counts: &mut TcpConnections,
    line: &mut Vec<u8>,
) -> Result<(), CountError> {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, File::open(path)?);
    // The first line is the column header.
    line.clear();
    reader.read_until(b'\n', line)?;
    let mut number = 1;
    loop {
        line.clear();
        if reader.read_until(b'\n', line)? == 0 {
            return Ok(());
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let state = state_column(line).ok_or(CountError::Malformed(number))?;
        // States the kernel does not print as such (NEW_SYN_RECV, BOUND_INACTIVE) are ignored.
        if let Some(state) = TcpState::from_kernel(state) {
            counts.counts[state as usize] += 1;
        }
    }
}

/// The fourth whitespace-separated field (`st`) of a socket line, as a number:
/// `   0: 0100007F:0019 00000000:0000 0A 00000000:00000000 ...` gives 10.
fn state_column(line: &[u8]) -> Option<u8> {
    let field = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .nth(3)?;
    let [hi, lo] = field else {
        return None;
    };
    let hex = |b: u8| char::from(b).to_digit(16);
    u8::try_from(hex(*hi)? * 16 + hex(*lo)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::{fixture_copy, fixture_root};

    #[test]
    fn fixture_tcp_and_tcp6() {
        let mut snap = HostSnapshot::default();
        TcpCollector::default()
            .collect(&fixture_root(), &mut snap)
            .unwrap();
        let tcp = snap.tcp.unwrap();
        let got: Vec<_> = tcp
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (s.as_str(), n))
            .collect();
        assert_eq!(
            got,
            [
                ("established", 6),
                ("syn_recv", 1),
                ("fin_wait2", 1),
                ("time_wait", 3),
                ("close_wait", 1),
                ("listen", 9),
            ]
        );
    }

    #[test]
    fn tcp6_may_be_absent_but_tcp_may_not() {
        let dir = fixture_copy();
        std::fs::remove_file(dir.path().join("net/tcp6")).unwrap();
        let root = ProcRoot::new(dir.path());
        let mut snap = HostSnapshot::default();
        TcpCollector::default().collect(&root, &mut snap).unwrap();
        assert_eq!(snap.tcp.unwrap().get(TcpState::Listen), 5);

        std::fs::remove_file(dir.path().join("net/tcp")).unwrap();
        let err = TcpCollector::default()
            .collect(&root, &mut snap)
            .unwrap_err();
        assert!(matches!(err, CollectError::Io { .. }), "{err}");
    }

    #[test]
    fn state_column_parsing() {
        assert_eq!(
            state_column(b"   0: 0100007F:0019 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1"),
            Some(10)
        );
        assert_eq!(
            state_column(b"10000: 0100007F:0019 0100007F:9C40 01 0:0"),
            Some(1)
        );
        assert_eq!(
            state_column(b"  sl  local_address rem_address   st tx_queue"),
            None
        );
        assert_eq!(state_column(b"   0: 0100007F:0019 00000000:0000"), None);
        assert_eq!(
            state_column(b"   0: 0100007F:0019 00000000:0000 0G x"),
            None
        );
    }

    #[test]
    fn many_sockets_count_exactly() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        let mut text = String::from("  sl  local_address rem_address   st tx_queue rx_queue\n");
        for i in 0..50_000 {
            let st = if i % 5 == 0 { "06" } else { "01" };
            text.push_str(&format!(
                "{i:>4}: 0A000002:0019 C0A80A{:02X}:{:04X} {st} 00000000:00000000 00:00000000 00000000   110        0 {} 1 0000000000000000 20 4 30 10 -1\n",
                i % 256,
                i % 65536,
                1_000_000 + i
            ));
        }
        std::fs::write(dir.path().join("net/tcp"), text).unwrap();
        let mut snap = HostSnapshot::default();
        TcpCollector::default()
            .collect(&ProcRoot::new(dir.path()), &mut snap)
            .unwrap();
        let tcp = snap.tcp.unwrap();
        assert_eq!(tcp.get(TcpState::TimeWait), 10_000);
        assert_eq!(tcp.get(TcpState::Established), 40_000);
    }

    #[test]
    fn malformed_line_names_its_number() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("net")).unwrap();
        std::fs::write(
            dir.path().join("net/tcp"),
            "header\n   0: 0100007F:0019 00000000:0000 0A x\n1: broken\n",
        )
        .unwrap();
        let err = TcpCollector::default()
            .collect(&ProcRoot::new(dir.path()), &mut HostSnapshot::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot parse {}/net/tcp: no state column on line 3",
                dir.path().display()
            )
        );
    }
}
