//! The agent's own process, for the standard `process_*` metrics: CPU time,
//! memory, threads and start time from `/proc/self/stat`, descriptors from
//! `/proc/self/fd` and `/proc/self/limits`, boot time from `/proc/stat`.
//!
//! Read at each scrape (the metrics are a reading of now), so it is a plain
//! function rather than a `Collector` of the host rounds.

use std::path::Path;

use super::cpu::USER_HZ;
use super::procfs::{parse_u64, CollectError, ProcRoot};
use crate::sample::host::OwnProcess;

/// Bytes per page for the `rss` field (as in `process.rs`).
const PAGE_BYTES: u64 = 4096;

/// Reads this process's figures from the real `/proc`; `None` where it is
/// not readable (the metrics are then left out of the scrape).
pub fn read_self() -> Option<OwnProcess> {
    read(&ProcRoot::new("/proc"), "self").ok()
}

/// Reads the figures of process `pid` (`self` or a number) under `proc`.
pub(crate) fn read(proc: &ProcRoot, pid: &str) -> Result<OwnProcess, CollectError> {
    let dir = Path::new(pid);
    let (path, stat) = proc.read(dir.join("stat"))?;
    let fields = stat_fields(&stat).ok_or_else(|| CollectError::parse(&path, "no command name"))?;
    // `fields[0]` is field 3 (the state): field n is `fields[n - 3]`.
    let field = |n: usize, name: &str| parse_u64(fields.get(n - 3).copied(), &path, name);
    let ticks = field(14, "utime")?.saturating_add(field(15, "stime")?);
    let threads = field(20, "num_threads")?;
    let start_ticks = field(22, "starttime")?;
    let vsize = field(23, "vsize")?;
    let rss_pages = field(24, "rss")?;

    let (stat_path, system) = proc.read("stat")?;
    let boot = system
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .map(str::trim);
    let boot = parse_u64(boot, &stat_path, "btime")?;

    let fd_dir = proc.path(dir.join("fd"));
    let open_fds = std::fs::read_dir(&fd_dir)
        .map_err(|source| CollectError::Io {
            path: fd_dir.clone(),
            source,
        })?
        .count() as u64;
    let (limits_path, limits) = proc.read(dir.join("limits"))?;
    let max_fds = max_open_files(&limits_path, &limits)?;

    Ok(OwnProcess {
        cpu_seconds_total: ticks as f64 / USER_HZ,
        open_fds,
        max_fds,
        virtual_memory_bytes: vsize,
        resident_memory_bytes: rss_pages.saturating_mul(PAGE_BYTES),
        start_time_seconds: boot as f64 + start_ticks as f64 / USER_HZ,
        threads,
    })
}

/// The fields after the command name of a `stat` line (which may itself
/// hold spaces and parentheses).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let close = stat.rfind(')')?;
    Some(stat.get(close + 1..)?.split_ascii_whitespace().collect())
}

/// The soft limit of the `Max open files` line; `None` when unlimited.
fn max_open_files(path: &Path, limits: &str) -> Result<Option<u64>, CollectError> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .ok_or_else(|| CollectError::parse(path, "no \"Max open files\" line"))?;
    match line.split_ascii_whitespace().next() {
        Some("unlimited") => Ok(None),
        soft => parse_u64(soft, path, "Max open files").map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_process_reads_as_the_standard_figures() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("42");
        std::fs::create_dir_all(pid.join("fd")).unwrap();
        for fd in ["0", "1", "2"] {
            std::fs::write(pid.join("fd").join(fd), "").unwrap();
        }
        std::fs::write(
            pid.join("stat"),
            "42 (mail pulse (x)) S 1 42 42 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 7 0 12345 104857600 2560 18446744073709551615\n",
        )
        .unwrap();
        std::fs::write(
            pid.join("limits"),
            "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("stat"), "cpu  1 2 3 4\nbtime 1700000000\n").unwrap();
        let own = read(&ProcRoot::new(dir.path()), "42").unwrap();
        assert_eq!(
            own,
            OwnProcess {
                cpu_seconds_total: 3.0,
                open_fds: 3,
                max_fds: Some(1024),
                virtual_memory_bytes: 104_857_600,
                resident_memory_bytes: 2560 * 4096,
                start_time_seconds: 1_700_000_123.45,
                threads: 7,
            }
        );
    }

    #[test]
    fn unlimited_descriptors_have_no_maximum() {
        let limits = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(Path::new("limits"), limits).unwrap(), None);
    }

    #[test]
    fn this_process_is_readable() {
        let own = read_self().expect("/proc/self is readable");
        assert!(own.resident_memory_bytes > 0 && own.threads >= 1 && own.open_fds >= 3);
        assert!(own.start_time_seconds > 1_600_000_000.0);
    }
}
