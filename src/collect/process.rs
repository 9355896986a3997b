//! Process collector: count, CPU time and resident memory per configured process group.
//!
//! A process belongs to the first group whose name equals its command name
//! (`comm` in `/proc/<pid>/stat`) or, failing that, the basename of its executable
//! (`/proc/<pid>/exe`, readable only with enough privilege). Only `stat` is read
//! per process: it has the times and the resident set as well as the name.
//!
//! Summing the CPU time of the live processes would make the group's counter drop
//! whenever one exits, which Prometheus would read as a reset. So the collector
//! remembers each matched process's time and adds only the growth since the last
//! round to a running total per group.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use super::cpu::USER_HZ;
use super::procfs::{read_file_into, CollectError, ProcRoot};
use super::Collector;
use crate::sample::host::{CollectorKind, HostSnapshot, ProcessGroupStats};

/// Bytes per page for the `rss` field. 4 KiB on x86-64 and on the usual arm64
/// kernels; reading `sysconf(_SC_PAGESIZE)` would need `unsafe` or a new dependency.
const PAGE_BYTES: u64 = 4096;

/// Longest command name the kernel keeps (`TASK_COMM_LEN` minus the NUL).
const COMM_MAX_BYTES: usize = 15;

/// A process is identified by its pid and start time, so a reused pid is a new process.
type ProcessKey = (u32, u64);

/// Scans `/proc/<pid>/stat` for the configured groups.
#[derive(Debug, Default)]
pub(crate) struct ProcessCollector {
    /// Configured group names, in order.
    groups: Vec<String>,
    /// Per group: CPU ticks accumulated over all rounds.
    cpu_ticks: Vec<u64>,
    /// Matched processes of the last round: their group and CPU ticks then.
    seen: HashMap<ProcessKey, (usize, u64)>,
    /// Reused buffer for one `stat` file.
    buf: String,
}

impl ProcessCollector {
    /// A collector for the named groups.
    pub(crate) fn new(groups: &[String]) -> Self {
        ProcessCollector {
            groups: groups.to_vec(),
            cpu_ticks: vec![0; groups.len()],
            ..Self::default()
        }
    }

    /// The group `comm` (or, lazily, the executable) belongs to.
    fn group_of(&self, comm: &str, proc_dir: &Path) -> Option<usize> {
        if let Some(g) = self.groups.iter().position(|name| comm_matches(comm, name)) {
            return Some(g);
        }
        // Fails for kernel threads and, without privilege, for other users' processes.
        let exe = fs::read_link(proc_dir.join("exe")).ok()?;
        let base = exe.file_name()?.to_str()?;
        // An upgraded package leaves running daemons on a deleted binary.
        let base = base.strip_suffix(" (deleted)").unwrap_or(base);
        self.groups.iter().position(|name| name == base)
    }
}

impl Collector for ProcessCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Process
    }

    fn collect(&mut self, proc: &ProcRoot, snap: &mut HostSnapshot) -> Result<(), CollectError> {
        if self.groups.is_empty() {
            snap.process_groups = Vec::new();
            return Ok(());
        }
        let root = proc.root();
        let entries = fs::read_dir(root).map_err(|source| CollectError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        let mut counts = vec![0u64; self.groups.len()];
        let mut rss_pages = vec![0u64; self.groups.len()];
        let mut cpu_ticks = self.cpu_ticks.clone();
        let mut seen = HashMap::with_capacity(self.seen.len());
        let mut buf = std::mem::take(&mut self.buf);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let dir = entry.path();
            // The process may have exited since the directory was listed.
            if read_file_into(&dir.join("stat"), &mut buf).is_err() {
                continue;
            }
            let Some(stat) = parse_pid_stat(&buf) else {
                continue;
            };
            if matches!(stat.state, 'Z' | 'X') {
                continue;
            }
            let Some(group) = self.group_of(stat.comm, &dir) else {
                continue;
            };
            let key = (pid, stat.start_time);
            let growth = match self.seen.get(&key) {
                Some(&(g, before)) if g == group => stat.cpu_ticks.saturating_sub(before),
                _ => stat.cpu_ticks,
            };
            cpu_ticks[group] = cpu_ticks[group].saturating_add(growth);
            counts[group] += 1;
            rss_pages[group] = rss_pages[group].saturating_add(stat.rss_pages);
            seen.insert(key, (group, stat.cpu_ticks));
        }
        self.buf = buf;
        self.seen = seen;
        self.cpu_ticks = cpu_ticks;
        snap.process_groups = self
            .groups
            .iter()
            .enumerate()
            .map(|(g, name)| ProcessGroupStats {
                group: name.clone(),
                processes: counts[g],
                cpu_seconds_total: self.cpu_ticks[g] as f64 / USER_HZ,
                resident_memory_bytes: rss_pages[g].saturating_mul(PAGE_BYTES),
            })
            .collect();
        Ok(())
    }
}

/// Whether a (possibly truncated) `comm` stands for the configured `name`.
fn comm_matches(comm: &str, name: &str) -> bool {
    if name.len() <= COMM_MAX_BYTES {
        return comm == name;
    }
    name.get(..COMM_MAX_BYTES) == Some(comm)
}

/// The fields of `/proc/<pid>/stat` we use.
#[derive(Debug, PartialEq)]
struct PidStat<'a> {
    comm: &'a str,
    state: char,
    /// `utime + stime`, in clock ticks.
    cpu_ticks: u64,
    /// Start time after boot, in clock ticks.
    start_time: u64,
    rss_pages: u64,
}

/// Parses `pid (comm) state ppid ...`; the command name may itself contain
/// spaces and parentheses, so it runs to the *last* `)`.
fn parse_pid_stat(text: &str) -> Option<PidStat<'_>> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?;
    let mut fields = text.get(close + 1..)?.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3), utime and stime are fields 14 and 15, starttime 22, rss 24.
    let mut rest = fields.skip(10);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    let mut rest = rest.skip(6);
    let start_time = rest.next()?.parse().ok()?;
    let rss_pages = rest.nth(1)?.parse::<i64>().ok()?.max(0).unsigned_abs();
    Some(PidStat {
        comm,
        state,
        cpu_ticks: utime.saturating_add(stime),
        start_time,
        rss_pages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::{fixture_copy, fixture_root};

    const GROUPS: [&str; 5] = ["master", "dovecot", "imap", "nginx", "spamd"];

    fn collector() -> ProcessCollector {
        let groups: Vec<String> = GROUPS.iter().map(|s| s.to_string()).collect();
        ProcessCollector::new(&groups)
    }

    fn row(g: &ProcessGroupStats) -> (&str, u64, f64, u64) {
        (
            g.group.as_str(),
            g.processes,
            g.cpu_seconds_total,
            g.resident_memory_bytes,
        )
    }

    #[test]
    fn fixture_groups() {
        let mut snap = HostSnapshot::default();
        collector().collect(&fixture_root(), &mut snap).unwrap();
        let got: Vec<_> = snap.process_groups.iter().map(row).collect();
        assert_eq!(
            got,
            [
                ("master", 1, 37.3, 1187 * 4096),
                ("dovecot", 1, 7.5, 900 * 4096),
                // Two live imap processes; the zombie one is not counted.
                ("imap", 2, 0.82, 3120 * 4096),
                // Matched by its (deleted) executable, not its comm.
                ("nginx", 1, 62.5, 2500 * 4096),
                ("spamd", 0, 0.0, 0),
            ]
        );
    }

    #[test]
    fn group_cpu_time_survives_an_exiting_process() {
        let dir = fixture_copy();
        let root = ProcRoot::new(dir.path());
        let mut c = collector();
        c.collect(&root, &mut HostSnapshot::default()).unwrap();

        // imap 2101 exits, imap 2100 uses one more second of user time.
        fs::remove_dir_all(dir.path().join("2101")).unwrap();
        let stat = fs::read_to_string(dir.path().join("2100/stat")).unwrap();
        fs::write(
            dir.path().join("2100/stat"),
            stat.replacen(" 12 8 ", " 112 8 ", 1),
        )
        .unwrap();
        let mut snap = HostSnapshot::default();
        c.collect(&root, &mut snap).unwrap();
        let imap = &snap.process_groups[2];
        assert_eq!(row(imap), ("imap", 1, 1.82, 1500 * 4096));
    }

    #[test]
    fn a_reused_pid_is_a_new_process() {
        let dir = fixture_copy();
        let root = ProcRoot::new(dir.path());
        let mut c = collector();
        c.collect(&root, &mut HostSnapshot::default()).unwrap();
        // Same pid, later start time, less CPU: counts in full, nothing subtracted.
        let stat = fs::read_to_string(dir.path().join("2001/stat")).unwrap();
        let reborn = stat
            .replacen(" 300 450 ", " 10 0 ", 1)
            .replacen(" 2310 ", " 99999 ", 1);
        fs::write(dir.path().join("2001/stat"), reborn).unwrap();
        let mut snap = HostSnapshot::default();
        c.collect(&root, &mut snap).unwrap();
        assert_eq!(row(&snap.process_groups[1]).2, 7.6);
    }

    #[test]
    fn no_groups_scans_nothing() {
        let mut snap = HostSnapshot::default();
        let mut c = ProcessCollector::new(&[]);
        c.collect(&ProcRoot::new("/nonexistent-mailpulse-root"), &mut snap)
            .unwrap();
        assert!(snap.process_groups.is_empty());
    }

    #[test]
    fn stat_with_odd_comm() {
        let text = "77 (a) b)) S 1 77 77 0 -1 4194560 10 0 0 0 3 4 0 0 20 0 1 0 555 1000 9 18446744073709551615\n";
        let s = parse_pid_stat(text).unwrap();
        assert_eq!(
            s,
            PidStat {
                comm: "a) b)",
                state: 'S',
                cpu_ticks: 7,
                start_time: 555,
                rss_pages: 9,
            }
        );
        assert_eq!(parse_pid_stat("77 (x) S 1 2"), None);
    }

    #[test]
    fn long_names_match_truncated_comm() {
        assert!(comm_matches("amavisd-release", "amavisd-release-worker"));
        assert!(!comm_matches("amavisd", "amavisd-release-worker"));
        assert!(comm_matches("imap", "imap"));
        assert!(!comm_matches("imap-login", "imap"));
    }
}
