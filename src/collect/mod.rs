//! Host collection: one [`HostCollector`] runs every host collector and returns a
//! [`HostSnapshot`].
//!
//! Each collector lives in its own file behind the one `Collector` signature and
//! reads under a configurable procfs root, so tests run them against the fixture
//! tree in `tests/fixtures/proc/`. A collector that fails (missing file, parse
//! error) leaves its part of the snapshot empty and is marked unsuccessful, like
//! node_exporter's `node_scrape_collector_success`; the others still report.
//! This module does blocking file IO and knows nothing about metrics or probes;
//! [`task::run`] is the loop that runs [`HostCollector::collect`] on a
//! blocking thread every host interval and hands each snapshot on.

mod cpu;
mod disk;
mod fd;
mod filesystem;
mod load;
mod memory;
mod network;
pub mod own;
mod pressure;
mod process;
mod procfs;
pub mod task;
mod tcp;

use std::path::PathBuf;

use tokio::time::Instant;

use crate::sample::host::{CollectorKind, CollectorStatus, HostSnapshot};
pub use procfs::CollectError;
use procfs::ProcRoot;

/// What the host collectors read and leave out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectOptions {
    /// Where procfs is mounted; `/proc` unless testing or running in a container
    /// with the host's procfs mounted elsewhere.
    pub proc_root: PathBuf,
    /// Process-group names to report: a process belongs to a group when its
    /// command name or executable basename equals the name.
    pub processes: Vec<String>,
    /// Mount-point prefixes (whole path components) to leave out of the filesystem metrics.
    pub exclude_filesystems: Vec<String>,
    /// Interface names to leave out of the network metrics; a trailing `*` matches a prefix.
    pub exclude_interfaces: Vec<String>,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            proc_root: PathBuf::from("/proc"),
            processes: Vec::new(),
            exclude_filesystems: Vec::new(),
            exclude_interfaces: Vec::new(),
        }
    }
}

/// The one signature every collector implements.
trait Collector: Send {
    /// Which collector this is (the `collector` label).
    fn kind(&self) -> CollectorKind;

    /// Reads its files under `proc` and fills its part of `snap`. On error it must
    /// leave `snap` untouched, so a failed collector contributes nothing.
    fn collect(&mut self, proc: &ProcRoot, snap: &mut HostSnapshot) -> Result<(), CollectError>;
}

/// Runs every host collector, keeping the state some of them need between calls
/// (previous CPU counters, per-process CPU time, reusable buffers).
pub struct HostCollector {
    /// The procfs root every collector reads under.
    proc: ProcRoot,
    /// The collectors, in [`CollectorKind::ALL`] order.
    collectors: Vec<Box<dyn Collector>>,
    /// Whether each collector failed last time, to log changes rather than every failure.
    failing: Vec<bool>,
}

impl HostCollector {
    /// A collector set for `opts`; filesystem sizes come from sysinfo.
    pub fn new(opts: CollectOptions) -> Self {
        Self::with_space_source(opts, Box::new(filesystem::SysinfoSpace::new()))
    }

    /// A collector set whose filesystem sizes come from `space` (tests use fixed sizes).
    fn with_space_source(opts: CollectOptions, space: Box<dyn filesystem::SpaceSource>) -> Self {
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(cpu::CpuCollector::default()),
            Box::new(load::LoadCollector),
            Box::new(memory::MemoryCollector),
            Box::new(pressure::PressureCollector),
            Box::new(filesystem::FilesystemCollector::new(
                space,
                &opts.exclude_filesystems,
            )),
            Box::new(disk::DiskCollector),
            Box::new(network::NetworkCollector::new(&opts.exclude_interfaces)),
            Box::new(tcp::TcpCollector::default()),
            Box::new(fd::FdCollector),
            Box::new(process::ProcessCollector::new(&opts.processes)),
        ];
        debug_assert!(collectors.iter().map(|c| c.kind()).eq(CollectorKind::ALL));
        HostCollector {
            proc: ProcRoot::new(opts.proc_root),
            failing: vec![false; collectors.len()],
            collectors,
        }
    }

    /// Blocking; called every host interval by [`task::run`] (via `spawn_blocking`).
    /// Keeps previous counters to compute the CPU usage ratio between calls (on the
    /// first call, the ratio since boot). Never fails as a whole: see
    /// [`HostSnapshot::collectors`] for what each collector achieved.
    pub fn collect(&mut self) -> HostSnapshot {
        let mut snap = HostSnapshot::default();
        for (collector, failing) in self.collectors.iter_mut().zip(&mut self.failing) {
            let kind = collector.kind();
            let started = Instant::now();
            let result = collector.collect(&self.proc, &mut snap);
            let duration = started.elapsed();
            let error = match result {
                Ok(()) => {
                    if *failing {
                        tracing::info!(collector = kind.as_str(), "host collector recovered");
                    }
                    None
                }
                Err(e) => {
                    let message = e.to_string();
                    if *failing {
                        tracing::debug!(collector = kind.as_str(), error = %message, "host collector still failing");
                    } else {
                        tracing::warn!(collector = kind.as_str(), error = %message, "host collector failed");
                    }
                    Some(message)
                }
            };
            *failing = error.is_some();
            snap.collectors.push(CollectorStatus {
                collector: kind,
                success: error.is_none(),
                duration,
                error,
            });
        }
        snap
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::sample::host::{CpuMode, TcpState};

    /// The fixture procfs tree shipped with the tests.
    pub(crate) fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc")
    }

    /// A root over the fixture tree.
    pub(crate) fn fixture_root() -> ProcRoot {
        ProcRoot::new(fixture_dir())
    }

    /// A writable copy of the fixture tree, for tests that remove or change files.
    pub(crate) fn fixture_copy() -> tempfile::TempDir {
        fn copy(from: &Path, to: &Path) {
            fs::create_dir_all(to).unwrap();
            for entry in fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                let kind = entry.file_type().unwrap();
                if kind.is_symlink() {
                    std::os::unix::fs::symlink(fs::read_link(entry.path()).unwrap(), &target)
                        .unwrap();
                } else if kind.is_dir() {
                    copy(&entry.path(), &target);
                } else {
                    fs::copy(entry.path(), &target).unwrap();
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        copy(&fixture_dir(), dir.path());
        dir
    }

    /// Options for the fixture, with the fixture's process groups.
    pub(crate) fn fixture_options(root: &Path) -> CollectOptions {
        CollectOptions {
            proc_root: root.to_path_buf(),
            processes: ["master", "dovecot", "imap", "nginx", "spamd"]
                .map(String::from)
                .to_vec(),
            exclude_filesystems: Vec::new(),
            exclude_interfaces: vec!["veth*".to_owned()],
        }
    }

    /// One snapshot of the fixture tree with fixed filesystem sizes.
    pub(crate) fn fixture_snapshot() -> HostSnapshot {
        let space = Box::new(filesystem::tests::FixedSpace::fixture());
        HostCollector::with_space_source(fixture_options(&fixture_dir()), space).collect()
    }

    #[test]
    fn fixture_snapshot_has_every_section() {
        let snap = fixture_snapshot();
        let failed: Vec<_> = snap.collectors.iter().filter(|c| !c.success).collect();
        assert!(failed.is_empty(), "{failed:?}");
        let kinds: Vec<_> = snap.collectors.iter().map(|c| c.collector).collect();
        assert_eq!(kinds, CollectorKind::ALL);
        assert_eq!(
            snap.cpu.as_ref().unwrap().mode(CpuMode::User).seconds_total,
            47_053.56
        );
        assert_eq!(snap.load.unwrap().load15, 0.65);
        assert_eq!(snap.memory.unwrap().available_bytes, 9_874_236 * 1024);
        assert!(snap.pressure.unwrap().io.is_some());
        assert_eq!(snap.filesystems.len(), 3);
        assert_eq!(snap.disks.len(), 6);
        assert_eq!(snap.interfaces.len(), 3);
        assert_eq!(snap.tcp.unwrap().get(TcpState::Listen), 9);
        assert_eq!(snap.file_descriptors.unwrap().allocated, 12_672);
        assert_eq!(snap.process_groups.len(), 5);
    }

    #[test]
    fn a_missing_file_fails_only_its_collector() {
        let dir = fixture_copy();
        fs::remove_file(dir.path().join("meminfo")).unwrap();
        fs::write(dir.path().join("loadavg"), "garbage\n").unwrap();
        let space = Box::new(filesystem::tests::FixedSpace::fixture());
        let mut collector = HostCollector::with_space_source(fixture_options(dir.path()), space);
        let snap = collector.collect();

        let failed: Vec<_> = snap
            .collectors
            .iter()
            .filter(|c| !c.success)
            .map(|c| c.collector)
            .collect();
        assert_eq!(failed, [CollectorKind::Load, CollectorKind::Memory]);
        let memory = snap.collector(CollectorKind::Memory).unwrap();
        assert_eq!(
            memory.error.as_deref(),
            Some(
                format!(
                    "cannot read {}/meminfo: No such file or directory (os error 2)",
                    dir.path().display()
                )
                .as_str()
            )
        );
        assert!(snap.memory.is_none());
        assert!(snap.load.is_none());
        assert!(snap.cpu.is_some());
        assert!(snap.tcp.is_some());
        assert_eq!(snap.process_groups.len(), 5);

        // The next round recovers once the file is back.
        fs::copy(fixture_dir().join("meminfo"), dir.path().join("meminfo")).unwrap();
        let snap = collector.collect();
        assert!(snap.collector(CollectorKind::Memory).unwrap().success);
        assert!(snap.memory.is_some());
    }

    #[test]
    fn an_empty_root_fails_every_collector_but_returns() {
        let dir = tempfile::tempdir().unwrap();
        let space = Box::new(filesystem::tests::FixedSpace::fixture());
        let snap = HostCollector::with_space_source(fixture_options(dir.path()), space).collect();
        let succeeded: Vec<_> = snap
            .collectors
            .iter()
            .filter(|c| c.success)
            .map(|c| c.collector)
            .collect();
        // PSI files are optional and an empty process table is not an error.
        assert_eq!(succeeded, [CollectorKind::Pressure, CollectorKind::Process]);
        assert_eq!(
            snap.process_groups.iter().map(|g| g.processes).sum::<u64>(),
            0
        );
    }

    #[test]
    fn the_collector_can_move_to_a_blocking_thread() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<HostCollector>();
    }

    #[test]
    fn the_live_system_collects() {
        let opts = CollectOptions {
            processes: vec!["init".into(), "systemd".into()],
            ..CollectOptions::default()
        };
        let mut collector = HostCollector::new(opts);
        collector.collect();
        let snap = collector.collect();
        for c in &snap.collectors {
            // Pressure may be missing (fine) but never fails on a real kernel; all
            // other files exist on any Linux this agent supports.
            assert!(c.success, "{c:?}");
        }
        let cpu = snap.cpu.unwrap();
        assert!((0.0..=1.0).contains(&cpu.usage_ratio), "{cpu:?}");
        assert!(cpu.cpus >= 1);
    }
}
