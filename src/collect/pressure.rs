//! Pressure collector: PSI averages and stall totals from `/proc/pressure/{cpu,memory,io}`.
//!
//! A missing file is not an error: kernels built without `CONFIG_PSI`, or booted
//! with `psi=0`, have no pressure files, and the resource is simply left out.

use std::path::Path;

use super::procfs::{parse_f64, parse_u64, CollectError, ProcRoot};
use super::Collector;
use crate::sample::host::{
    CollectorKind, HostSnapshot, PressureLine, PressureStats, ResourcePressure,
};

/// Reads the three PSI files; stateless.
#[derive(Debug, Default)]
pub(crate) struct PressureCollector;

impl Collector for PressureCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Pressure
    }

    fn collect(&mut self, proc: &ProcRoot, snap: &mut HostSnapshot) -> Result<(), CollectError> {
        let read = |name: &str| -> Result<Option<ResourcePressure>, CollectError> {
            match proc.read_optional(Path::new("pressure").join(name))? {
                Some((path, text)) => parse_pressure(&path, &text).map(Some),
                None => Ok(None),
            }
        };
        snap.pressure = Some(PressureStats {
            cpu: read("cpu")?,
            memory: read("memory")?,
            io: read("io")?,
        });
        Ok(())
    }
}

/// Parses `some avg10=0.12 avg60=0.05 avg300=0.01 total=123456` and the optional `full` line.
fn parse_pressure(path: &Path, text: &str) -> Result<ResourcePressure, CollectError> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let slot = match fields.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        let mut avg = [None; 3];
        let mut total = None;
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                return Err(CollectError::parse(path, format!("bad field {field:?}")));
            };
            match key {
                "avg10" => avg[0] = Some(parse_f64(Some(value), path, key)?),
                "avg60" => avg[1] = Some(parse_f64(Some(value), path, key)?),
                "avg300" => avg[2] = Some(parse_f64(Some(value), path, key)?),
                "total" => total = Some(parse_u64(Some(value), path, key)?),
                _ => {}
            }
        }
        let [Some(a10), Some(a60), Some(a300)] = avg else {
            return Err(CollectError::parse(path, "missing avg10, avg60 or avg300"));
        };
        let total = total.ok_or_else(|| CollectError::parse(path, "missing total"))?;
        // The kernel prints averages as percentages with two decimals, and totals in
        // microseconds. Rounding to the printed precision keeps 4.02 % at 0.0402
        // rather than 0.040199999999999999.
        let ratio = |percent: f64| (percent * 100.0).round() / 10_000.0;
        *slot = Some(PressureLine {
            avg10_ratio: ratio(a10),
            avg60_ratio: ratio(a60),
            avg300_ratio: ratio(a300),
            stalled_seconds_total: total as f64 / 1e6,
        });
    }
    Ok(ResourcePressure {
        some: some.ok_or_else(|| CollectError::parse(path, "no some line"))?,
        full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::{fixture_copy, fixture_root};

    #[test]
    fn fixture_pressure() {
        let mut snap = HostSnapshot::default();
        PressureCollector
            .collect(&fixture_root(), &mut snap)
            .unwrap();
        let p = snap.pressure.unwrap();
        let cpu = p.cpu.unwrap();
        assert_eq!(cpu.some.avg10_ratio, 0.0213);
        assert_eq!(cpu.some.avg60_ratio, 0.0567);
        assert_eq!(cpu.some.avg300_ratio, 0.0237);
        assert_eq!(cpu.some.stalled_seconds_total, 9.348055);
        assert_eq!(cpu.full.unwrap().stalled_seconds_total, 0.0);
        let memory = p.memory.unwrap();
        assert_eq!(memory.full.unwrap().avg10_ratio, 0.0042);
        assert_eq!(memory.full.unwrap().stalled_seconds_total, 1.024_577);
        let io = p.io.unwrap();
        assert_eq!(io.some.avg300_ratio, 0.0115);
        assert_eq!(io.some.stalled_seconds_total, 312.914_633);
        assert_eq!(io.full.unwrap().stalled_seconds_total, 270.001_209);
        assert_eq!(io.some.avg10_ratio, 0.0402);
    }

    #[test]
    fn kernel_without_psi_is_fine() {
        let dir = fixture_copy();
        std::fs::remove_dir_all(dir.path().join("pressure")).unwrap();
        let mut snap = HostSnapshot::default();
        PressureCollector
            .collect(&ProcRoot::new(dir.path()), &mut snap)
            .unwrap();
        assert_eq!(snap.pressure, Some(PressureStats::default()));
    }

    #[test]
    fn old_kernel_cpu_file_has_no_full_line() {
        let p = parse_pressure(
            Path::new("/proc/pressure/cpu"),
            "some avg10=1.00 avg60=0.50 avg300=0.25 total=2000000\n",
        )
        .unwrap();
        assert_eq!(p.full, None);
        assert_eq!(p.some.avg10_ratio, 0.01);
        assert_eq!(p.some.stalled_seconds_total, 2.0);
    }

    #[test]
    fn malformed_line_is_a_parse_error() {
        let err = parse_pressure(Path::new("/proc/pressure/io"), "some avg10=1.00 total=5\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot parse /proc/pressure/io: missing avg10, avg60 or avg300"
        );
    }
}
