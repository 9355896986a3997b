//! Plain data for one round of host collection: [`HostSnapshot`] and its parts.
//!
//! This module owns only the shape of what the host collectors found (CPU, load,
//! memory, pressure, filesystems, disks, network, TCP states, file descriptors and
//! process groups) plus the per-collector outcome. It does no IO and reads no
//! clock; `collect` fills these types in and `metrics::host` reads them. Units are
//! always base units (bytes, seconds, ratios 0..1), and counters are the kernel's
//! cumulative values, so a consumer never has to know a `/proc` file format.

use std::fmt;
use std::time::Duration;

/// Everything one call of the host collector found.
///
/// A section is `None` (or empty) when its collector failed or found nothing;
/// [`HostSnapshot::collectors`] says which collectors ran and whether they succeeded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostSnapshot {
    /// CPU usage and time spent per mode, from `/proc/stat`.
    pub cpu: Option<CpuStats>,
    /// Load averages, from `/proc/loadavg`.
    pub load: Option<LoadAverage>,
    /// Memory and swap, from `/proc/meminfo`.
    pub memory: Option<MemoryStats>,
    /// Pressure stall information, from `/proc/pressure/*`.
    pub pressure: Option<PressureStats>,
    /// Mounted real filesystems, in mount-table order.
    pub filesystems: Vec<FilesystemStats>,
    /// Block devices, from `/proc/diskstats`.
    pub disks: Vec<DiskStats>,
    /// Network interfaces, from `/proc/net/dev`.
    pub interfaces: Vec<InterfaceStats>,
    /// TCP connections by state, from `/proc/net/tcp` and `/proc/net/tcp6`.
    pub tcp: Option<TcpConnections>,
    /// System-wide file handles, from `/proc/sys/fs/file-nr`.
    pub file_descriptors: Option<FileDescriptors>,
    /// One entry per configured process group, in configuration order.
    pub process_groups: Vec<ProcessGroupStats>,
    /// The outcome of every collector that ran, in a fixed order.
    pub collectors: Vec<CollectorStatus>,
}

impl HostSnapshot {
    /// The outcome of one collector, if it ran.
    pub fn collector(&self, kind: CollectorKind) -> Option<&CollectorStatus> {
        self.collectors.iter().find(|c| c.collector == kind)
    }
}

/// The agent's own process: what the standard `process_*` metrics show.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OwnProcess {
    /// User and system CPU time, seconds.
    pub cpu_seconds_total: f64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors (`None`: unlimited).
    pub max_fds: Option<u64>,
    /// Virtual memory size, bytes.
    pub virtual_memory_bytes: u64,
    /// Resident memory size, bytes.
    pub resident_memory_bytes: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// OS threads.
    pub threads: u64,
}

/// One host collector; its `as_str()` is the `collector` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CollectorKind {
    /// `/proc/stat`.
    Cpu,
    /// `/proc/loadavg`.
    Load,
    /// `/proc/meminfo`.
    Memory,
    /// `/proc/pressure/{cpu,memory,io}`.
    Pressure,
    /// The mount table plus filesystem space.
    Filesystem,
    /// `/proc/diskstats`.
    Disk,
    /// `/proc/net/dev`.
    Network,
    /// `/proc/net/tcp` and `/proc/net/tcp6`.
    Tcp,
    /// `/proc/sys/fs/file-nr`.
    FileDescriptors,
    /// `/proc/<pid>/` for the configured process groups.
    Process,
}

impl CollectorKind {
    /// Every collector, in the order they run.
    pub const ALL: [CollectorKind; 10] = [
        CollectorKind::Cpu,
        CollectorKind::Load,
        CollectorKind::Memory,
        CollectorKind::Pressure,
        CollectorKind::Filesystem,
        CollectorKind::Disk,
        CollectorKind::Network,
        CollectorKind::Tcp,
        CollectorKind::FileDescriptors,
        CollectorKind::Process,
    ];

    /// The label value used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            CollectorKind::Cpu => "cpu",
            CollectorKind::Load => "load",
            CollectorKind::Memory => "memory",
            CollectorKind::Pressure => "pressure",
            CollectorKind::Filesystem => "filesystem",
            CollectorKind::Disk => "disk",
            CollectorKind::Network => "network",
            CollectorKind::Tcp => "tcp",
            CollectorKind::FileDescriptors => "fd",
            CollectorKind::Process => "process",
        }
    }
}

impl fmt::Display for CollectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one collector fared in one round (node_exporter's `node_scrape_collector_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorStatus {
    /// Which collector this is.
    pub collector: CollectorKind,
    /// Whether it read and parsed everything it needs.
    pub success: bool,
    /// How long it took.
    pub duration: Duration,
    /// Why it failed, for logs; `None` on success.
    pub error: Option<String>,
}

/// A CPU time category of `/proc/stat`; its `as_str()` is the `mode` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CpuMode {
    /// Normal processes in user mode.
    User,
    /// Niced processes in user mode.
    Nice,
    /// Kernel mode.
    System,
    /// Idle, not waiting for IO.
    Idle,
    /// Idle while IO was outstanding.
    Iowait,
    /// Servicing hardware interrupts.
    Irq,
    /// Servicing softirqs.
    Softirq,
    /// Stolen by the hypervisor for other guests.
    Steal,
}

impl CpuMode {
    /// Number of modes.
    pub const COUNT: usize = 8;

    /// Every mode, in `/proc/stat` column order.
    pub const ALL: [CpuMode; CpuMode::COUNT] = [
        CpuMode::User,
        CpuMode::Nice,
        CpuMode::System,
        CpuMode::Idle,
        CpuMode::Iowait,
        CpuMode::Irq,
        CpuMode::Softirq,
        CpuMode::Steal,
    ];

    /// The label value used in metrics and output.
    pub fn as_str(self) -> &'static str {
        match self {
            CpuMode::User => "user",
            CpuMode::Nice => "nice",
            CpuMode::System => "system",
            CpuMode::Idle => "idle",
            CpuMode::Iowait => "iowait",
            CpuMode::Irq => "irq",
            CpuMode::Softirq => "softirq",
            CpuMode::Steal => "steal",
        }
    }
}

impl fmt::Display for CpuMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Time spent in one CPU mode, summed over all CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuModeStats {
    /// Cumulative seconds in this mode since boot (never decreases between rounds).
    pub seconds_total: f64,
    /// Share of all CPU time spent in this mode since the previous round (0..1).
    pub ratio: f64,
}

/// CPU usage, from the aggregate `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CpuStats {
    /// Number of CPUs listed in `/proc/stat`.
    pub cpus: u32,
    /// Share of CPU time that was not idle or iowait since the previous round
    /// (since boot on the first round), 0..1.
    pub usage_ratio: f64,
    /// Per-mode time, indexed like [`CpuMode::ALL`]; use [`CpuStats::mode`].
    pub modes: [CpuModeStats; CpuMode::COUNT],
    /// Context switches since boot.
    pub context_switches_total: u64,
}

impl CpuStats {
    /// The figures of one mode.
    pub fn mode(&self, mode: CpuMode) -> CpuModeStats {
        self.modes[mode as usize]
    }
}

/// Run-queue load averages, from `/proc/loadavg`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadAverage {
    /// One-minute load average.
    pub load1: f64,
    /// Five-minute load average.
    pub load5: f64,
    /// Fifteen-minute load average.
    pub load15: f64,
}

/// Memory and swap, from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStats {
    /// `MemTotal`: usable RAM.
    pub total_bytes: u64,
    /// `MemAvailable`: the kernel's estimate of memory available without swapping.
    pub available_bytes: u64,
    /// `MemFree`: memory not used at all.
    pub free_bytes: u64,
    /// `Buffers`: raw block-device buffers.
    pub buffers_bytes: u64,
    /// `Cached`: page cache.
    pub cached_bytes: u64,
    /// `SwapTotal`: swap space.
    pub swap_total_bytes: u64,
    /// `SwapFree`: unused swap space.
    pub swap_free_bytes: u64,
}

/// Pressure stall information (PSI) for the resources the kernel reports.
///
/// A resource is `None` when its file is absent, as on kernels built or booted without PSI.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PressureStats {
    /// `/proc/pressure/cpu`.
    pub cpu: Option<ResourcePressure>,
    /// `/proc/pressure/memory`.
    pub memory: Option<ResourcePressure>,
    /// `/proc/pressure/io`.
    pub io: Option<ResourcePressure>,
}

/// The two lines of one PSI file.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ResourcePressure {
    /// `some`: at least one runnable task was stalled on the resource.
    pub some: PressureLine,
    /// `full`: all non-idle tasks were stalled at once; absent for CPU on kernels before 5.13.
    pub full: Option<PressureLine>,
}

/// One line of a PSI file, converted to base units.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PressureLine {
    /// Share of the last 10 seconds spent stalled (`avg10` / 100), 0..1.
    pub avg10_ratio: f64,
    /// Share of the last 60 seconds spent stalled (`avg60` / 100), 0..1.
    pub avg60_ratio: f64,
    /// Share of the last 300 seconds spent stalled (`avg300` / 100), 0..1.
    pub avg300_ratio: f64,
    /// Cumulative stall time since boot (`total`, microseconds, converted to seconds).
    pub stalled_seconds_total: f64,
}

/// Space on one mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemStats {
    /// The mounted device (first field of the mount table), e.g. `/dev/sda1`.
    pub device: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// Filesystem type, e.g. `ext4`.
    pub fs_type: String,
    /// Total size.
    pub size_bytes: u64,
    /// Space available to unprivileged users.
    pub avail_bytes: u64,
    /// Free space including blocks reserved for root; `None` when the space
    /// source cannot tell (sysinfo reports only size and available space).
    pub free_bytes: Option<u64>,
    /// Whether it is mounted read-only (from the current mount options).
    pub read_only: bool,
}

/// Cumulative IO counters of one block device, from `/proc/diskstats`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiskStats {
    /// Kernel device name, e.g. `sda`, `nvme0n1`, `dm-0`.
    pub device: String,
    /// Reads completed successfully.
    pub reads_completed_total: u64,
    /// Writes completed successfully.
    pub writes_completed_total: u64,
    /// Bytes read (sectors × 512).
    pub read_bytes_total: u64,
    /// Bytes written (sectors × 512).
    pub written_bytes_total: u64,
    /// Seconds spent by all reads.
    pub read_time_seconds_total: f64,
    /// Seconds spent by all writes.
    pub write_time_seconds_total: f64,
    /// Seconds the device had IO in flight (busy time).
    pub io_time_seconds_total: f64,
}

/// Cumulative counters of one network interface, from `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceStats {
    /// Interface name, e.g. `eth0`.
    pub interface: String,
    /// Bytes received.
    pub receive_bytes_total: u64,
    /// Packets received.
    pub receive_packets_total: u64,
    /// Receive errors.
    pub receive_errors_total: u64,
    /// Received packets dropped.
    pub receive_drops_total: u64,
    /// Bytes transmitted.
    pub transmit_bytes_total: u64,
    /// Packets transmitted.
    pub transmit_packets_total: u64,
    /// Transmit errors.
    pub transmit_errors_total: u64,
    /// Packets dropped on transmit.
    pub transmit_drops_total: u64,
}

/// A TCP socket state as `/proc/net/tcp` numbers it; its `as_str()` is the `state` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpState {
    /// `TCP_ESTABLISHED` (1).
    Established,
    /// `TCP_SYN_SENT` (2).
    SynSent,
    /// `TCP_SYN_RECV` (3).
    SynRecv,
    /// `TCP_FIN_WAIT1` (4).
    FinWait1,
    /// `TCP_FIN_WAIT2` (5).
    FinWait2,
    /// `TCP_TIME_WAIT` (6).
    TimeWait,
    /// `TCP_CLOSE` (7).
    Close,
    /// `TCP_CLOSE_WAIT` (8).
    CloseWait,
    /// `TCP_LAST_ACK` (9).
    LastAck,
    /// `TCP_LISTEN` (10).
    Listen,
    /// `TCP_CLOSING` (11).
    Closing,
}

impl TcpState {
    /// Number of states.
    pub const COUNT: usize = 11;

    /// Every state, in kernel numbering order (state `n` is `ALL[n - 1]`).
    pub const ALL: [TcpState; TcpState::COUNT] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
    ];

    /// The state with the kernel's number, if it is one of the above.
    pub fn from_kernel(n: u8) -> Option<TcpState> {
        TcpState::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// The label value used in metrics (node_exporter's names).
    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::Established => "established",
            TcpState::SynSent => "syn_sent",
            TcpState::SynRecv => "syn_recv",
            TcpState::FinWait1 => "fin_wait1",
            TcpState::FinWait2 => "fin_wait2",
            TcpState::TimeWait => "time_wait",
            TcpState::Close => "close",
            TcpState::CloseWait => "close_wait",
            TcpState::LastAck => "last_ack",
            TcpState::Listen => "listen",
            TcpState::Closing => "closing",
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TCP sockets (IPv4 and IPv6 together) counted by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpConnections {
    /// Counts indexed like [`TcpState::ALL`]; use [`TcpConnections::get`].
    pub counts: [u64; TcpState::COUNT],
}

impl TcpConnections {
    /// The number of sockets in one state.
    pub fn get(&self, state: TcpState) -> u64 {
        self.counts[state as usize]
    }

    /// Every state with its count, in [`TcpState::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (TcpState, u64)> + '_ {
        TcpState::ALL.iter().map(|&s| (s, self.get(s)))
    }
}

/// System-wide file handles, from `/proc/sys/fs/file-nr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileDescriptors {
    /// Allocated file handles.
    pub allocated: u64,
    /// The limit on file handles (`fs.file-max`).
    pub maximum: u64,
}

/// The processes of one configured group (matched by command name).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessGroupStats {
    /// The configured name, the `group` label.
    pub group: String,
    /// Live processes whose comm or executable basename equals the name (0 if none).
    pub processes: u64,
    /// CPU seconds (user + system) used by the group's processes, accumulated
    /// across rounds so it never decreases when a process exits.
    pub cpu_seconds_total: f64,
    /// Resident memory of the group's live processes.
    pub resident_memory_bytes: u64,
}
