//! Host metric families (`mailpulse_host_*`) and recording a [`HostSnapshot`] into them.
//!
//! This module owns the names, HELP texts, types and labels of every host series.
//! It does no IO: [`HostMetrics::record`] copies one snapshot into the families.
//! Each round replaces the previous one: a series whose subject is gone from the
//! snapshot (an unmounted filesystem, a removed interface, a failed collector's
//! figures) is removed rather than left stale, and counters carry the kernel's
//! cumulative values, so `rate()` works as with node_exporter.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{CounterVec, GaugeVec, Opts, Registry};

use crate::sample::host::{
    CollectorStatus, CpuMode, CpuStats, DiskStats, FilesystemStats, HostSnapshot, InterfaceStats,
    MemoryStats, PressureLine, ResourcePressure,
};

/// Label values of one series, in the family's label order.
type LabelValues = Vec<String>;

/// A metric vector that remembers which series the current round set, so the
/// rest can be removed, and the last raw value of each (for counters).
struct Tracked<V> {
    vec: V,
    series: Mutex<Series>,
}

/// The series of the previous round and of the one being recorded.
#[derive(Default)]
struct Series {
    /// Series set by the last finished round, with the raw value they got.
    live: HashMap<LabelValues, f64>,
    /// Series set so far in the current round.
    touched: HashMap<LabelValues, f64>,
}

impl<V> Tracked<V> {
    /// Notes that `labels` got `value` this round and returns the value it had
    /// before: earlier this round if set twice (duplicate names), else last round.
    fn touch(&self, labels: &[&str], value: f64) -> Option<f64> {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let key: LabelValues = labels.iter().map(|l| (*l).to_owned()).collect();
        let previous = series
            .touched
            .get(&key)
            .or_else(|| series.live.get(&key))
            .copied();
        series.touched.insert(key, value);
        previous
    }
}

impl Tracked<GaugeVec> {
    /// Sets one gauge series.
    fn set(&self, labels: &[&str], value: f64) {
        self.touch(labels, value);
        self.vec.with_label_values(labels).set(value);
    }
}

impl Tracked<CounterVec> {
    /// Moves one counter series to the kernel's cumulative `value`. The crate's
    /// counters only go up, so the growth since the last round is added; a value
    /// below the last one is a real reset (the device was re-created) and restarts
    /// the series.
    fn set(&self, labels: &[&str], value: f64) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        let counter = self.vec.with_label_values(labels);
        match self.touch(labels, value) {
            Some(last) if value >= last => counter.inc_by(value - last),
            // A reset, or a new series (possibly re-created after removal).
            _ => {
                counter.reset();
                counter.inc_by(value);
            }
        }
    }
}

/// Ends a round: removes every series that was live but not set this time.
trait Sweep {
    /// Removes the series not set since the last sweep.
    fn sweep(&self);
}

impl<T: MetricVecBuilder> Sweep for Tracked<MetricVec<T>> {
    fn sweep(&self) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let Series { live, touched } = &mut *series;
        for gone in live.keys().filter(|k| !touched.contains_key(*k)) {
            // Only fails on a label-count mismatch, which `touch` rules out.
            let _ = self.vec.remove_label_values(gone);
        }
        *live = std::mem::take(touched);
    }
}

/// Registers one family on `reg` and wraps it.
fn family<V>(
    reg: &Registry,
    make: impl FnOnce() -> prometheus::Result<V>,
) -> prometheus::Result<Tracked<V>>
where
    V: prometheus::core::Collector + Clone + 'static,
{
    let vec = make()?;
    reg.register(Box::new(vec.clone()))?;
    Ok(Tracked {
        vec,
        series: Mutex::new(Series::default()),
    })
}

/// Registers a gauge family with `labels`.
fn gauge(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<Tracked<GaugeVec>> {
    family(reg, || GaugeVec::new(Opts::new(name, help), labels))
}

/// Registers a counter family with `labels`.
fn counter(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<Tracked<CounterVec>> {
    family(reg, || CounterVec::new(Opts::new(name, help), labels))
}

/// The `window` label values of the PSI averages, in `PressureLine` field order.
const PRESSURE_WINDOWS: [&str; 3] = ["10s", "60s", "300s"];

/// The four families of one PSI resource.
struct PressureFamilies {
    /// `some` total: at least one task waited.
    waiting_seconds: Tracked<CounterVec>,
    /// `full` total: all non-idle tasks were stalled.
    stalled_seconds: Tracked<CounterVec>,
    /// `some` averages, by `window`.
    waiting_ratio: Tracked<GaugeVec>,
    /// `full` averages, by `window`.
    stalled_ratio: Tracked<GaugeVec>,
}

impl PressureFamilies {
    /// `resource` is `cpu`, `memory` or `io`; `what` is the HELP noun ("CPU time").
    fn register(reg: &Registry, resource: &str, what: &str) -> prometheus::Result<Self> {
        let name = |suffix: &str| format!("mailpulse_host_pressure_{resource}_{suffix}");
        Ok(PressureFamilies {
            waiting_seconds: counter(
                reg,
                &name("waiting_seconds_total"),
                &format!("Total time in seconds that at least one task waited for {what} (PSI some)."),
                &[],
            )?,
            stalled_seconds: counter(
                reg,
                &name("stalled_seconds_total"),
                &format!("Total time in seconds that all non-idle tasks were stalled on {what} at once (PSI full)."),
                &[],
            )?,
            waiting_ratio: gauge(
                reg,
                &name("waiting_ratio"),
                &format!("Share of time at least one task waited for {what}, averaged over the window (PSI some), 0 to 1."),
                &["window"],
            )?,
            stalled_ratio: gauge(
                reg,
                &name("stalled_ratio"),
                &format!("Share of time all non-idle tasks were stalled on {what}, averaged over the window (PSI full), 0 to 1."),
                &["window"],
            )?,
        })
    }

    /// Sets the series of one resource; `full` ones only where the kernel has them.
    fn record(&self, pressure: &ResourcePressure) {
        let line = |seconds: &Tracked<CounterVec>, ratio: &Tracked<GaugeVec>, l: &PressureLine| {
            seconds.set(&[], l.stalled_seconds_total);
            for (window, v) in
                PRESSURE_WINDOWS
                    .iter()
                    .zip([l.avg10_ratio, l.avg60_ratio, l.avg300_ratio])
            {
                ratio.set(&[window], v);
            }
        };
        line(&self.waiting_seconds, &self.waiting_ratio, &pressure.some);
        if let Some(full) = &pressure.full {
            line(&self.stalled_seconds, &self.stalled_ratio, full);
        }
    }

    /// The four families, for the end-of-round sweep.
    fn sweepers(&self) -> [&dyn Sweep; 4] {
        [
            &self.waiting_seconds,
            &self.stalled_seconds,
            &self.waiting_ratio,
            &self.stalled_ratio,
        ]
    }
}

/// Every `mailpulse_host_*` family, registered on one registry.
pub struct HostMetrics {
    collector_success: Tracked<GaugeVec>,
    collector_duration: Tracked<GaugeVec>,

    cpus: Tracked<GaugeVec>,
    cpu_usage: Tracked<GaugeVec>,
    cpu_seconds: Tracked<CounterVec>,
    cpu_mode_ratio: Tracked<GaugeVec>,
    context_switches: Tracked<CounterVec>,

    load1: Tracked<GaugeVec>,
    load5: Tracked<GaugeVec>,
    load15: Tracked<GaugeVec>,

    memory_total: Tracked<GaugeVec>,
    memory_available: Tracked<GaugeVec>,
    memory_free: Tracked<GaugeVec>,
    memory_buffers: Tracked<GaugeVec>,
    memory_cached: Tracked<GaugeVec>,
    swap_total: Tracked<GaugeVec>,
    swap_free: Tracked<GaugeVec>,

    pressure_cpu: PressureFamilies,
    pressure_memory: PressureFamilies,
    pressure_io: PressureFamilies,

    fs_size: Tracked<GaugeVec>,
    fs_avail: Tracked<GaugeVec>,
    fs_free: Tracked<GaugeVec>,
    fs_readonly: Tracked<GaugeVec>,

    disk_reads: Tracked<CounterVec>,
    disk_writes: Tracked<CounterVec>,
    disk_read_bytes: Tracked<CounterVec>,
    disk_written_bytes: Tracked<CounterVec>,
    disk_read_time: Tracked<CounterVec>,
    disk_write_time: Tracked<CounterVec>,
    disk_io_time: Tracked<CounterVec>,

    net_rx_bytes: Tracked<CounterVec>,
    net_rx_packets: Tracked<CounterVec>,
    net_rx_errors: Tracked<CounterVec>,
    net_rx_drops: Tracked<CounterVec>,
    net_tx_bytes: Tracked<CounterVec>,
    net_tx_packets: Tracked<CounterVec>,
    net_tx_errors: Tracked<CounterVec>,
    net_tx_drops: Tracked<CounterVec>,

    tcp_connections: Tracked<GaugeVec>,

    fd_allocated: Tracked<GaugeVec>,
    fd_maximum: Tracked<GaugeVec>,

    processes: Tracked<GaugeVec>,
    process_cpu_seconds: Tracked<CounterVec>,
    process_resident_memory: Tracked<GaugeVec>,
}

/// Label names of the filesystem families, in the order values are passed.
const FS_LABELS: [&str; 3] = ["device", "fstype", "mountpoint"];

impl HostMetrics {
    /// Registers every host family on `reg`; fails if one is already registered there.
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        Ok(HostMetrics {
            collector_success: gauge(
                reg,
                "mailpulse_host_collector_success",
                "Whether the host collector succeeded in the last round (1) or failed (0).",
                &["collector"],
            )?,
            collector_duration: gauge(
                reg,
                "mailpulse_host_collector_duration_seconds",
                "How long the host collector took in the last round, in seconds.",
                &["collector"],
            )?,

            cpus: gauge(reg, "mailpulse_host_cpus", "Number of CPUs the kernel reports.", &[])?,
            cpu_usage: gauge(
                reg,
                "mailpulse_host_cpu_usage_ratio",
                "Share of CPU time not idle or waiting for IO since the previous collection, 0 to 1.",
                &[],
            )?,
            cpu_seconds: counter(
                reg,
                "mailpulse_host_cpu_seconds_total",
                "CPU time spent in each mode since boot, summed over all CPUs, in seconds.",
                &["mode"],
            )?,
            cpu_mode_ratio: gauge(
                reg,
                "mailpulse_host_cpu_mode_ratio",
                "Share of CPU time spent in each mode since the previous collection, 0 to 1.",
                &["mode"],
            )?,
            context_switches: counter(
                reg,
                "mailpulse_host_context_switches_total",
                "Context switches since boot.",
                &[],
            )?,

            load1: gauge(reg, "mailpulse_host_load1", "One-minute load average.", &[])?,
            load5: gauge(reg, "mailpulse_host_load5", "Five-minute load average.", &[])?,
            load15: gauge(reg, "mailpulse_host_load15", "Fifteen-minute load average.", &[])?,

            memory_total: gauge(
                reg,
                "mailpulse_host_memory_total_bytes",
                "Usable RAM in bytes (MemTotal).",
                &[],
            )?,
            memory_available: gauge(
                reg,
                "mailpulse_host_memory_available_bytes",
                "Memory available for new work without swapping, in bytes (MemAvailable).",
                &[],
            )?,
            memory_free: gauge(
                reg,
                "mailpulse_host_memory_free_bytes",
                "Memory not used at all, in bytes (MemFree).",
                &[],
            )?,
            memory_buffers: gauge(
                reg,
                "mailpulse_host_memory_buffers_bytes",
                "Memory used for block-device buffers, in bytes (Buffers).",
                &[],
            )?,
            memory_cached: gauge(
                reg,
                "mailpulse_host_memory_cached_bytes",
                "Memory used for the page cache, in bytes (Cached).",
                &[],
            )?,
            swap_total: gauge(
                reg,
                "mailpulse_host_memory_swap_total_bytes",
                "Swap space in bytes (SwapTotal).",
                &[],
            )?,
            swap_free: gauge(
                reg,
                "mailpulse_host_memory_swap_free_bytes",
                "Unused swap space in bytes (SwapFree).",
                &[],
            )?,

            pressure_cpu: PressureFamilies::register(reg, "cpu", "CPU time")?,
            pressure_memory: PressureFamilies::register(reg, "memory", "memory")?,
            pressure_io: PressureFamilies::register(reg, "io", "IO")?,

            fs_size: gauge(
                reg,
                "mailpulse_host_filesystem_size_bytes",
                "Size of the filesystem in bytes.",
                &FS_LABELS,
            )?,
            fs_avail: gauge(
                reg,
                "mailpulse_host_filesystem_avail_bytes",
                "Filesystem space available to non-root users, in bytes.",
                &FS_LABELS,
            )?,
            fs_free: gauge(
                reg,
                "mailpulse_host_filesystem_free_bytes",
                "Free filesystem space including the root reserve, in bytes.",
                &FS_LABELS,
            )?,
            fs_readonly: gauge(
                reg,
                "mailpulse_host_filesystem_readonly",
                "Whether the filesystem is mounted read-only (1) or not (0).",
                &FS_LABELS,
            )?,

            disk_reads: counter(
                reg,
                "mailpulse_host_disk_reads_completed_total",
                "Reads completed by the block device.",
                &["device"],
            )?,
            disk_writes: counter(
                reg,
                "mailpulse_host_disk_writes_completed_total",
                "Writes completed by the block device.",
                &["device"],
            )?,
            disk_read_bytes: counter(
                reg,
                "mailpulse_host_disk_read_bytes_total",
                "Bytes read from the block device.",
                &["device"],
            )?,
            disk_written_bytes: counter(
                reg,
                "mailpulse_host_disk_written_bytes_total",
                "Bytes written to the block device.",
                &["device"],
            )?,
            disk_read_time: counter(
                reg,
                "mailpulse_host_disk_read_time_seconds_total",
                "Time spent by all reads of the block device, in seconds.",
                &["device"],
            )?,
            disk_write_time: counter(
                reg,
                "mailpulse_host_disk_write_time_seconds_total",
                "Time spent by all writes of the block device, in seconds.",
                &["device"],
            )?,
            disk_io_time: counter(
                reg,
                "mailpulse_host_disk_io_time_seconds_total",
                "Time the block device had IO in flight, in seconds.",
                &["device"],
            )?,

            net_rx_bytes: counter(
                reg,
                "mailpulse_host_network_receive_bytes_total",
                "Bytes received on the network interface.",
                &["interface"],
            )?,
            net_rx_packets: counter(
                reg,
                "mailpulse_host_network_receive_packets_total",
                "Packets received on the network interface.",
                &["interface"],
            )?,
            net_rx_errors: counter(
                reg,
                "mailpulse_host_network_receive_errors_total",
                "Receive errors on the network interface.",
                &["interface"],
            )?,
            net_rx_drops: counter(
                reg,
                "mailpulse_host_network_receive_drops_total",
                "Received packets dropped on the network interface.",
                &["interface"],
            )?,
            net_tx_bytes: counter(
                reg,
                "mailpulse_host_network_transmit_bytes_total",
                "Bytes transmitted on the network interface.",
                &["interface"],
            )?,
            net_tx_packets: counter(
                reg,
                "mailpulse_host_network_transmit_packets_total",
                "Packets transmitted on the network interface.",
                &["interface"],
            )?,
            net_tx_errors: counter(
                reg,
                "mailpulse_host_network_transmit_errors_total",
                "Transmit errors on the network interface.",
                &["interface"],
            )?,
            net_tx_drops: counter(
                reg,
                "mailpulse_host_network_transmit_drops_total",
                "Packets dropped on transmit on the network interface.",
                &["interface"],
            )?,

            tcp_connections: gauge(
                reg,
                "mailpulse_host_tcp_connections",
                "TCP sockets (IPv4 and IPv6) in each state.",
                &["state"],
            )?,

            fd_allocated: gauge(
                reg,
                "mailpulse_host_file_descriptors_allocated",
                "File handles allocated system-wide.",
                &[],
            )?,
            fd_maximum: gauge(
                reg,
                "mailpulse_host_file_descriptors_maximum",
                "Limit on file handles system-wide (fs.file-max).",
                &[],
            )?,

            processes: gauge(
                reg,
                "mailpulse_host_processes",
                "Live processes in the configured process group (0 if none runs).",
                &["group"],
            )?,
            process_cpu_seconds: counter(
                reg,
                "mailpulse_host_process_cpu_seconds_total",
                "User and system CPU time used by the process group's processes, in seconds.",
                &["group"],
            )?,
            process_resident_memory: gauge(
                reg,
                "mailpulse_host_process_resident_memory_bytes",
                "Resident memory of the process group's live processes, in bytes.",
                &["group"],
            )?,
        })
    }

    /// Copies one snapshot into the families, replacing the previous round.
    /// Called by one task at a time (the host collection loop).
    pub fn record(&self, snap: &HostSnapshot) {
        snap.collectors
            .iter()
            .for_each(|c| self.record_collector(c));
        if let Some(cpu) = &snap.cpu {
            self.record_cpu(cpu);
        }
        if let Some(load) = &snap.load {
            self.load1.set(&[], load.load1);
            self.load5.set(&[], load.load5);
            self.load15.set(&[], load.load15);
        }
        if let Some(memory) = &snap.memory {
            self.record_memory(memory);
        }
        if let Some(pressure) = &snap.pressure {
            let resources = [
                (&self.pressure_cpu, &pressure.cpu),
                (&self.pressure_memory, &pressure.memory),
                (&self.pressure_io, &pressure.io),
            ];
            for (families, resource) in resources {
                if let Some(resource) = resource {
                    families.record(resource);
                }
            }
        }
        snap.filesystems
            .iter()
            .for_each(|f| self.record_filesystem(f));
        snap.disks.iter().for_each(|d| self.record_disk(d));
        snap.interfaces
            .iter()
            .for_each(|i| self.record_interface(i));
        if let Some(tcp) = &snap.tcp {
            for (state, count) in tcp.iter() {
                self.tcp_connections.set(&[state.as_str()], count as f64);
            }
        }
        if let Some(fd) = &snap.file_descriptors {
            self.fd_allocated.set(&[], fd.allocated as f64);
            self.fd_maximum.set(&[], fd.maximum as f64);
        }
        for g in &snap.process_groups {
            let group = [g.group.as_str()];
            self.processes.set(&group, g.processes as f64);
            self.process_cpu_seconds.set(&group, g.cpu_seconds_total);
            self.process_resident_memory
                .set(&group, g.resident_memory_bytes as f64);
        }
        self.sweepers().into_iter().for_each(|s| s.sweep());
    }

    fn record_collector(&self, c: &CollectorStatus) {
        let label = [c.collector.as_str()];
        self.collector_success
            .set(&label, if c.success { 1.0 } else { 0.0 });
        self.collector_duration
            .set(&label, c.duration.as_secs_f64());
    }

    fn record_cpu(&self, cpu: &CpuStats) {
        self.cpus.set(&[], f64::from(cpu.cpus));
        self.cpu_usage.set(&[], cpu.usage_ratio);
        for mode in CpuMode::ALL {
            let m = cpu.mode(mode);
            self.cpu_seconds.set(&[mode.as_str()], m.seconds_total);
            self.cpu_mode_ratio.set(&[mode.as_str()], m.ratio);
        }
        self.context_switches
            .set(&[], cpu.context_switches_total as f64);
    }

    fn record_memory(&self, m: &MemoryStats) {
        self.memory_total.set(&[], m.total_bytes as f64);
        self.memory_available.set(&[], m.available_bytes as f64);
        self.memory_free.set(&[], m.free_bytes as f64);
        self.memory_buffers.set(&[], m.buffers_bytes as f64);
        self.memory_cached.set(&[], m.cached_bytes as f64);
        self.swap_total.set(&[], m.swap_total_bytes as f64);
        self.swap_free.set(&[], m.swap_free_bytes as f64);
    }

    fn record_filesystem(&self, f: &FilesystemStats) {
        let labels = [
            f.device.as_str(),
            f.fs_type.as_str(),
            f.mount_point.as_str(),
        ];
        self.fs_size.set(&labels, f.size_bytes as f64);
        self.fs_avail.set(&labels, f.avail_bytes as f64);
        if let Some(free) = f.free_bytes {
            self.fs_free.set(&labels, free as f64);
        }
        self.fs_readonly
            .set(&labels, if f.read_only { 1.0 } else { 0.0 });
    }

    fn record_disk(&self, d: &DiskStats) {
        let device = [d.device.as_str()];
        self.disk_reads.set(&device, d.reads_completed_total as f64);
        self.disk_writes
            .set(&device, d.writes_completed_total as f64);
        self.disk_read_bytes.set(&device, d.read_bytes_total as f64);
        self.disk_written_bytes
            .set(&device, d.written_bytes_total as f64);
        self.disk_read_time.set(&device, d.read_time_seconds_total);
        self.disk_write_time
            .set(&device, d.write_time_seconds_total);
        self.disk_io_time.set(&device, d.io_time_seconds_total);
    }

    fn record_interface(&self, i: &InterfaceStats) {
        let interface = [i.interface.as_str()];
        self.net_rx_bytes
            .set(&interface, i.receive_bytes_total as f64);
        self.net_rx_packets
            .set(&interface, i.receive_packets_total as f64);
        self.net_rx_errors
            .set(&interface, i.receive_errors_total as f64);
        self.net_rx_drops
            .set(&interface, i.receive_drops_total as f64);
        self.net_tx_bytes
            .set(&interface, i.transmit_bytes_total as f64);
        self.net_tx_packets
            .set(&interface, i.transmit_packets_total as f64);
        self.net_tx_errors
            .set(&interface, i.transmit_errors_total as f64);
        self.net_tx_drops
            .set(&interface, i.transmit_drops_total as f64);
    }

    /// Every family, so a round can end by removing what it did not set.
    fn sweepers(&self) -> Vec<&dyn Sweep> {
        let mut all: Vec<&dyn Sweep> = vec![
            &self.collector_success,
            &self.collector_duration,
            &self.cpus,
            &self.cpu_usage,
            &self.cpu_seconds,
            &self.cpu_mode_ratio,
            &self.context_switches,
            &self.load1,
            &self.load5,
            &self.load15,
            &self.memory_total,
            &self.memory_available,
            &self.memory_free,
            &self.memory_buffers,
            &self.memory_cached,
            &self.swap_total,
            &self.swap_free,
            &self.fs_size,
            &self.fs_avail,
            &self.fs_free,
            &self.fs_readonly,
            &self.disk_reads,
            &self.disk_writes,
            &self.disk_read_bytes,
            &self.disk_written_bytes,
            &self.disk_read_time,
            &self.disk_write_time,
            &self.disk_io_time,
            &self.net_rx_bytes,
            &self.net_rx_packets,
            &self.net_rx_errors,
            &self.net_rx_drops,
            &self.net_tx_bytes,
            &self.net_tx_packets,
            &self.net_tx_errors,
            &self.net_tx_drops,
            &self.tcp_connections,
            &self.fd_allocated,
            &self.fd_maximum,
            &self.processes,
            &self.process_cpu_seconds,
            &self.process_resident_memory,
        ];
        for p in [&self.pressure_cpu, &self.pressure_memory, &self.pressure_io] {
            all.extend(p.sweepers());
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use prometheus::{Encoder, TextEncoder};

    use super::*;
    use crate::collect::tests::fixture_snapshot;

    /// The fixture snapshot with durations pinned, so the scrape is deterministic.
    fn snapshot() -> HostSnapshot {
        let mut snap = fixture_snapshot();
        for c in &mut snap.collectors {
            c.duration = Duration::from_micros(250);
        }
        snap
    }

    fn scrape(reg: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&reg.gather(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn recorded(snaps: &[HostSnapshot]) -> (Registry, String) {
        let reg = Registry::new();
        let metrics = HostMetrics::register(&reg).unwrap();
        for snap in snaps {
            metrics.record(snap);
        }
        let text = scrape(&reg);
        (reg, text)
    }

    fn assert_lines(text: &str, expected: &[&str]) {
        for line in expected {
            assert!(
                text.lines().any(|l| l == *line),
                "missing line {line:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn fixture_scrape_has_exact_lines() {
        let (_, text) = recorded(&[snapshot()]);
        assert_lines(
            &text,
            &[
                "# HELP mailpulse_host_cpu_usage_ratio Share of CPU time not idle or waiting for IO since the previous collection, 0 to 1.",
                "# TYPE mailpulse_host_cpu_usage_ratio gauge",
                "# TYPE mailpulse_host_cpu_seconds_total counter",
                r#"mailpulse_host_cpu_seconds_total{mode="user"} 47053.56"#,
                r#"mailpulse_host_cpu_seconds_total{mode="steal"} 120.45"#,
                "mailpulse_host_cpus 4",
                "mailpulse_host_context_switches_total 9847562113",
                "mailpulse_host_load1 1.23",
                "mailpulse_host_load5 0.87",
                "mailpulse_host_load15 0.65",
                "mailpulse_host_memory_available_bytes 10111217664",
                "mailpulse_host_memory_swap_free_bytes 4109103104",
                "mailpulse_host_pressure_cpu_waiting_seconds_total 9.348055",
                "mailpulse_host_pressure_io_stalled_seconds_total 270.001209",
                r#"mailpulse_host_pressure_memory_stalled_ratio{window="10s"} 0.0042"#,
                r#"mailpulse_host_pressure_io_waiting_ratio{window="300s"} 0.0115"#,
                r#"mailpulse_host_pressure_io_waiting_ratio{window="10s"} 0.0402"#,
                r#"mailpulse_host_pressure_memory_waiting_ratio{window="300s"} 0.0007"#,
                r#"mailpulse_host_tcp_connections{state="established"} 6"#,
                r#"mailpulse_host_tcp_connections{state="listen"} 9"#,
                r#"mailpulse_host_tcp_connections{state="closing"} 0"#,
                r#"mailpulse_host_filesystem_size_bytes{device="/dev/mapper/vg0-mail",fstype="xfs",mountpoint="/var/mail"} 536870912000"#,
                r#"mailpulse_host_filesystem_avail_bytes{device="/dev/mapper/vg0-mail",fstype="xfs",mountpoint="/var/mail"} 12884901888"#,
                r#"mailpulse_host_filesystem_readonly{device="/dev/mapper/vg0-mail",fstype="xfs",mountpoint="/var/mail"} 1"#,
                r#"mailpulse_host_disk_read_bytes_total{device="nvme0n1"} 48288038912"#,
                r#"mailpulse_host_disk_io_time_seconds_total{device="nvme0n1"} 2911.804"#,
                r#"mailpulse_host_network_receive_bytes_total{interface="eth0"} 918273645012"#,
                r#"mailpulse_host_network_transmit_drops_total{interface="eth0"} 12"#,
                "mailpulse_host_file_descriptors_allocated 12672",
                "mailpulse_host_file_descriptors_maximum 9223372036854776000",
                r#"mailpulse_host_processes{group="imap"} 2"#,
                r#"mailpulse_host_processes{group="spamd"} 0"#,
                r#"mailpulse_host_process_cpu_seconds_total{group="master"} 37.3"#,
                r#"mailpulse_host_process_resident_memory_bytes{group="nginx"} 10240000"#,
                r#"mailpulse_host_collector_success{collector="tcp"} 1"#,
                r#"mailpulse_host_collector_duration_seconds{collector="fd"} 0.00025"#,
            ],
        );
        // Filtered out by the collectors, so never exported.
        assert!(!text.contains(r#"interface="veth1a2b3c4""#));
        assert!(!text.contains(r#"device="sda1""#));
        // Every family has its HELP line.
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(families, helps);
        assert!(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.starts_with("mailpulse_host_")));
    }

    #[test]
    fn vanished_series_are_removed() {
        let full = snapshot();
        let mut smaller = full.clone();
        smaller.interfaces.retain(|i| i.interface != "docker0");
        smaller.filesystems.retain(|f| f.mount_point != "/boot");
        smaller.memory = None;
        let (_, text) = recorded(&[full, smaller]);
        assert!(!text.contains(r#"interface="docker0""#), "{text}");
        assert!(!text.contains(r#"mountpoint="/boot""#), "{text}");
        assert!(!text.contains("mailpulse_host_memory_"), "{text}");
        assert!(text.contains(r#"interface="eth0""#));

        // An empty round leaves only nothing at all: every family is swept.
        let (reg, _) = recorded(&[snapshot(), HostSnapshot::default()]);
        let left: Vec<_> = reg.gather().iter().map(|f| f.name().to_owned()).collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn counters_follow_kernel_values_and_resets() {
        let mut snap = snapshot();
        fn eth0(s: &mut HostSnapshot) -> &mut u64 {
            let i = s
                .interfaces
                .iter_mut()
                .find(|i| i.interface == "eth0")
                .unwrap();
            &mut i.receive_bytes_total
        }
        let first = snap.clone();
        *eth0(&mut snap) += 1000;
        let grown = snap.clone();
        *eth0(&mut snap) = 500;
        let reset = snap.clone();

        let (_, text) = recorded(&[first.clone(), grown.clone()]);
        assert_lines(
            &text,
            &[r#"mailpulse_host_network_receive_bytes_total{interface="eth0"} 918273646012"#],
        );
        let (_, text) = recorded(&[first.clone(), grown.clone(), grown.clone()]);
        assert_lines(
            &text,
            &[r#"mailpulse_host_network_receive_bytes_total{interface="eth0"} 918273646012"#],
        );
        let (_, text) = recorded(&[first, grown, reset]);
        assert_lines(
            &text,
            &[r#"mailpulse_host_network_receive_bytes_total{interface="eth0"} 500"#],
        );
    }

    #[test]
    fn duplicate_group_names_do_not_double_count() {
        let mut snap = snapshot();
        let imap = snap.process_groups[2].clone();
        snap.process_groups.push(imap);
        let (_, text) = recorded(&[snap.clone(), snap]);
        assert_lines(
            &text,
            &[r#"mailpulse_host_process_cpu_seconds_total{group="imap"} 0.82"#],
        );
    }

    #[test]
    fn metrics_can_be_shared_between_tasks() {
        fn assert_shareable<T: Send + Sync + 'static>() {}
        assert_shareable::<HostMetrics>();
    }

    #[test]
    fn registering_twice_on_one_registry_fails() {
        let reg = Registry::new();
        HostMetrics::register(&reg).unwrap();
        assert!(HostMetrics::register(&reg).is_err());
    }

    /// `promtool check metrics` (Debian package `prometheus`) must find nothing to
    /// complain about; skipped where promtool is not installed.
    #[test]
    fn promtool_accepts_the_scrape() {
        let promtool = Path::new("/usr/bin/promtool");
        if !promtool.exists() {
            eprintln!("skipped: {} not installed", promtool.display());
            return;
        }
        let (_, text) = recorded(&[snapshot()]);
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && report.trim().is_empty(),
            "promtool: {report}"
        );
    }
}
