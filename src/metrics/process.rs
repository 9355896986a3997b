//! The standard `process_*` metrics of the agent itself (CPU, memory,
//! descriptors, threads, start time), as every Prometheus client library
//! exports them. The figures come from a reader handed in at registration
//! (`collect::own::read_self` in the agent), called at each scrape; this
//! module reads nothing itself.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGauge, Opts, Registry};

use crate::sample::host::OwnProcess;

/// What reads the process's figures now; `None` leaves them out.
pub type Reader = fn() -> Option<OwnProcess>;

/// The `process_*` families, filled from the reader at each collection.
pub struct ProcessMetrics {
    read: Reader,
    cpu: Counter,
    open_fds: IntGauge,
    max_fds: IntGauge,
    virtual_memory: IntGauge,
    resident_memory: IntGauge,
    start_time: Gauge,
    threads: IntGauge,
    descs: Vec<Desc>,
}

impl ProcessMetrics {
    /// Registers the families on `reg`, read by `read` at each scrape.
    pub fn register(reg: &Registry, read: Reader) -> prometheus::Result<()> {
        let cpu = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))?;
        let open_fds = IntGauge::new("process_open_fds", "Number of open file descriptors.")?;
        let max_fds = IntGauge::new(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        )?;
        let virtual_memory = IntGauge::new(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        )?;
        let resident_memory = IntGauge::new(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        )?;
        let start_time = Gauge::new(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        )?;
        let threads = IntGauge::new("process_threads", "Number of OS threads in the process.")?;
        let descs = [
            cpu.desc(),
            open_fds.desc(),
            max_fds.desc(),
            virtual_memory.desc(),
            resident_memory.desc(),
            start_time.desc(),
            threads.desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        reg.register(Box::new(ProcessMetrics {
            read,
            cpu,
            open_fds,
            max_fds,
            virtual_memory,
            resident_memory,
            start_time,
            threads,
            descs,
        }))
    }
}

/// A figure as an `i64` gauge value (saturating).
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(p) = (self.read)() else {
            return Vec::new();
        };
        // The counter only grows: add what the kernel's total grew by.
        let grown = p.cpu_seconds_total - self.cpu.get();
        if grown > 0.0 {
            self.cpu.inc_by(grown);
        }
        self.open_fds.set(int(p.open_fds));
        self.virtual_memory.set(int(p.virtual_memory_bytes));
        self.resident_memory.set(int(p.resident_memory_bytes));
        self.start_time.set(p.start_time_seconds);
        self.threads.set(int(p.threads));
        let mut families = Vec::with_capacity(7);
        families.extend(self.cpu.collect());
        families.extend(self.open_fds.collect());
        if let Some(max) = p.max_fds {
            self.max_fds.set(int(max));
            families.extend(self.max_fds.collect());
        }
        families.extend(self.virtual_memory.collect());
        families.extend(self.resident_memory.collect());
        families.extend(self.start_time.collect());
        families.extend(self.threads.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> Option<OwnProcess> {
        Some(OwnProcess {
            cpu_seconds_total: 1.5,
            open_fds: 12,
            max_fds: Some(1024),
            virtual_memory_bytes: 100 << 20,
            resident_memory_bytes: 13 << 20,
            start_time_seconds: 1_700_000_000.25,
            threads: 4,
        })
    }

    #[test]
    fn the_standard_families_carry_what_the_reader_says() {
        let reg = Registry::new();
        ProcessMetrics::register(&reg, fixed).unwrap();
        let mut text = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&reg.gather(), &mut text)
            .unwrap();
        for line in [
            "process_cpu_seconds_total 1.5",
            "process_open_fds 12",
            "process_max_fds 1024",
            "process_virtual_memory_bytes 104857600",
            "process_resident_memory_bytes 13631488",
            "process_start_time_seconds 1700000000.25",
            "process_threads 4",
            "# TYPE process_cpu_seconds_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn an_unreadable_process_leaves_the_families_out() {
        let reg = Registry::new();
        ProcessMetrics::register(&reg, || None).unwrap();
        assert!(reg.gather().is_empty());
    }
}
