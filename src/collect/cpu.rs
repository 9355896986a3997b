//! CPU collector: usage ratio, per-mode time and context switches from `/proc/stat`.
//!
//! It keeps the previous round's tick counters so the ratios describe the time
//! between two calls (since boot on the first call). It reads nothing but `stat`.

use std::path::Path;

use super::procfs::{parse_u64, CollectError, ProcRoot};
use super::Collector;
use crate::sample::host::{CollectorKind, CpuMode, CpuModeStats, CpuStats, HostSnapshot};

/// Clock ticks per second in `/proc/stat` (`USER_HZ`). The kernel fixes it at 100 on
/// every architecture we run on; reading `sysconf(_SC_CLK_TCK)` would need `unsafe` or a
/// new dependency for a value that does not vary in practice.
pub(crate) const USER_HZ: f64 = 100.0;

/// Tick counters of the aggregate `cpu` line, indexed like [`CpuMode::ALL`].
type Ticks = [u64; CpuMode::COUNT];

/// Reads `/proc/stat`; stateful because ratios need the previous counters.
#[derive(Debug, Default)]
pub(crate) struct CpuCollector {
    /// Counters of the previous successful round.
    previous: Option<Ticks>,
    /// Ratios of the previous round, reused when no tick elapsed in between.
    previous_ratios: Option<[f64; CpuMode::COUNT]>,
}

/// What one read of `/proc/stat` yields before any delta is taken.
#[derive(Debug, PartialEq)]
struct StatFile {
    ticks: Ticks,
    cpus: u32,
    context_switches: u64,
}

impl Collector for CpuCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Cpu
    }

    fn collect(&mut self, proc: &ProcRoot, snap: &mut HostSnapshot) -> Result<(), CollectError> {
        let (path, text) = proc.read("stat")?;
        let stat = parse_stat(&path, &text)?;
        snap.cpu = Some(self.update(stat));
        Ok(())
    }
}

impl CpuCollector {
    /// Folds a fresh reading into the state and computes this round's figures.
    fn update(&mut self, stat: StatFile) -> CpuStats {
        let mut ticks = stat.ticks;
        let previous = self.previous.unwrap_or([0; CpuMode::COUNT]);
        // Some kernels let iowait (and, on CPU hotplug, idle) step backwards. Keep each
        // counter monotonic, like node_exporter does, so the exported `_total` series
        // never fakes a counter reset.
        for (now, before) in ticks.iter_mut().zip(previous) {
            *now = (*now).max(before);
        }
        let mut delta = [0u64; CpuMode::COUNT];
        for (d, (now, before)) in delta.iter_mut().zip(ticks.iter().zip(previous)) {
            *d = now - before;
        }
        let elapsed: u64 = delta.iter().sum();
        let ratios = if elapsed > 0 {
            Some(delta.map(|d| d as f64 / elapsed as f64))
        } else {
            // Two calls within one tick: nothing new to say, repeat the last answer.
            self.previous_ratios
        };
        self.previous = Some(ticks);
        self.previous_ratios = ratios;

        // With no tick ever elapsed (all-zero counters) there is no usage to report.
        let usage_ratio = ratios.map_or(0.0, |r| {
            let idle = r[CpuMode::Idle as usize] + r[CpuMode::Iowait as usize];
            (1.0 - idle).clamp(0.0, 1.0)
        });
        let ratios = ratios.unwrap_or([0.0; CpuMode::COUNT]);
        let mut modes = [CpuModeStats::default(); CpuMode::COUNT];
        for (i, m) in modes.iter_mut().enumerate() {
            *m = CpuModeStats {
                seconds_total: ticks[i] as f64 / USER_HZ,
                ratio: ratios[i],
            };
        }
        CpuStats {
            cpus: stat.cpus,
            usage_ratio,
            modes,
            context_switches_total: stat.context_switches,
        }
    }
}

/// Parses the lines of `/proc/stat` this collector needs.
fn parse_stat(path: &Path, text: &str) -> Result<StatFile, CollectError> {
    let mut ticks = None;
    let mut cpus = 0u32;
    let mut context_switches = None;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            Some("cpu") => {
                let mut t = [0u64; CpuMode::COUNT];
                for (i, mode) in CpuMode::ALL.iter().enumerate() {
                    // Kernels before 2.6.11 lack steal (and older ones iowait, irq,
                    // softirq); the first four columns are always there.
                    let field = fields.next();
                    t[i] = match field {
                        None if i >= 4 => 0,
                        _ => parse_u64(field, path, mode.as_str())?,
                    };
                }
                // The guest columns are already included in user and nice.
                ticks = Some(t);
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            Some("ctxt") => context_switches = Some(parse_u64(fields.next(), path, "ctxt")?),
            _ => {}
        }
    }
    Ok(StatFile {
        ticks: ticks.ok_or_else(|| CollectError::parse(path, "no aggregate cpu line"))?,
        cpus,
        context_switches: context_switches
            .ok_or_else(|| CollectError::parse(path, "no ctxt line"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::fixture_root;

    fn stat(ticks: Ticks) -> StatFile {
        StatFile {
            ticks,
            cpus: 2,
            context_switches: 7,
        }
    }

    #[test]
    fn fixture_stat_since_boot() {
        let mut snap = HostSnapshot::default();
        CpuCollector::default()
            .collect(&fixture_root(), &mut snap)
            .unwrap();
        let cpu = snap.cpu.unwrap();
        assert_eq!(cpu.cpus, 4);
        assert_eq!(cpu.context_switches_total, 9_847_562_113);
        // user nice system idle iowait irq softirq steal:
        // 4_705_356 13_124 1_233_580 63_412_911 97_334 0 59_621 12_045, sum 69_533_971.
        assert_eq!(cpu.mode(CpuMode::User).seconds_total, 47_053.56);
        assert_eq!(cpu.mode(CpuMode::Idle).seconds_total, 634_129.11);
        assert_eq!(cpu.mode(CpuMode::Steal).seconds_total, 120.45);
        assert_eq!(cpu.mode(CpuMode::Irq).seconds_total, 0.0);
        let total = 69_533_971.0;
        assert_eq!(cpu.mode(CpuMode::Iowait).ratio, 97_334.0 / total);
        assert_eq!(
            cpu.usage_ratio,
            1.0 - (63_412_911.0 / total + 97_334.0 / total)
        );
    }

    #[test]
    fn ratios_cover_the_interval_between_calls() {
        let mut c = CpuCollector::default();
        c.update(stat([100, 0, 100, 800, 0, 0, 0, 0]));
        // 100 ticks later: 30 user, 10 system, 50 idle, 10 iowait.
        let s = c.update(stat([130, 0, 110, 850, 10, 0, 0, 0]));
        assert_eq!(s.mode(CpuMode::User).ratio, 0.3);
        assert_eq!(s.mode(CpuMode::Iowait).ratio, 0.1);
        assert!((s.usage_ratio - 0.4).abs() < 1e-12);
        assert_eq!(s.mode(CpuMode::User).seconds_total, 1.3);
    }

    #[test]
    fn no_elapsed_tick_repeats_the_last_ratios() {
        let mut c = CpuCollector::default();
        c.update(stat([100, 0, 100, 800, 0, 0, 0, 0]));
        let first = c.update(stat([130, 0, 110, 850, 10, 0, 0, 0]));
        let again = c.update(stat([130, 0, 110, 850, 10, 0, 0, 0]));
        assert_eq!(first, again);
    }

    #[test]
    fn counters_going_backwards_are_held() {
        let mut c = CpuCollector::default();
        c.update(stat([100, 0, 100, 800, 50, 0, 0, 0]));
        let s = c.update(stat([150, 0, 100, 850, 40, 0, 0, 0]));
        assert_eq!(s.mode(CpuMode::Iowait).seconds_total, 0.5);
        assert_eq!(s.mode(CpuMode::Iowait).ratio, 0.0);
        assert_eq!(s.mode(CpuMode::User).ratio, 0.5);
    }

    #[test]
    fn malformed_stat_is_a_parse_error() {
        let p = Path::new("/proc/stat");
        let err = parse_stat(p, "cpu 1 2 x 4\nctxt 5\n").unwrap_err();
        assert_eq!(err.to_string(), "cannot parse /proc/stat: bad system \"x\"");
        let err = parse_stat(p, "cpu0 1 2 3 4\nctxt 5\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot parse /proc/stat: no aggregate cpu line"
        );
        // Old kernels without steal still parse.
        let ok = parse_stat(p, "cpu 1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\nctxt 5\n").unwrap();
        assert_eq!(ok.ticks, [1, 2, 3, 4, 5, 6, 7, 0]);
        assert_eq!(ok.cpus, 1);
    }
}
