//! Memory collector: RAM and swap figures from `/proc/meminfo`, converted to bytes.

use std::path::Path;

use super::procfs::{parse_u64, CollectError, ProcRoot};
use super::Collector;
use crate::sample::host::{CollectorKind, HostSnapshot, MemoryStats};

/// Reads `/proc/meminfo`; stateless.
#[derive(Debug, Default)]
pub(crate) struct MemoryCollector;

impl Collector for MemoryCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Memory
    }

    fn collect(&mut self, proc: &ProcRoot, snap: &mut HostSnapshot) -> Result<(), CollectError> {
        let (path, text) = proc.read("meminfo")?;
        snap.memory = Some(parse_meminfo(&path, &text)?);
        Ok(())
    }
}

/// Parses the `Key:   value kB` lines we need; every one of them is required
/// (`MemAvailable` exists since Linux 3.14).
fn parse_meminfo(path: &Path, text: &str) -> Result<MemoryStats, CollectError> {
    const KEYS: [&str; 7] = [
        "MemTotal",
        "MemAvailable",
        "MemFree",
        "Buffers",
        "Cached",
        "SwapTotal",
        "SwapFree",
    ];
    let mut values: [Option<u64>; KEYS.len()] = [None; KEYS.len()];
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(slot) = KEYS.iter().position(|k| *k == key) else {
            continue;
        };
        let mut fields = rest.split_ascii_whitespace();
        let value = parse_u64(fields.next(), path, key)?;
        let bytes = match fields.next() {
            Some("kB") => value.saturating_mul(1024),
            None => value,
            Some(unit) => {
                return Err(CollectError::parse(
                    path,
                    format!("unknown unit {unit:?} for {key}"),
                ))
            }
        };
        values[slot] = Some(bytes);
    }
    let get = |i: usize| {
        values[i].ok_or_else(|| CollectError::parse(path, format!("missing {}", KEYS[i])))
    };
    Ok(MemoryStats {
        total_bytes: get(0)?,
        available_bytes: get(1)?,
        free_bytes: get(2)?,
        buffers_bytes: get(3)?,
        cached_bytes: get(4)?,
        swap_total_bytes: get(5)?,
        swap_free_bytes: get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::fixture_root;

    #[test]
    fn fixture_meminfo() {
        let mut snap = HostSnapshot::default();
        MemoryCollector.collect(&fixture_root(), &mut snap).unwrap();
        let expected = MemoryStats {
            total_bytes: 16_318_412 * 1024,
            available_bytes: 9_874_236 * 1024,
            free_bytes: 1_402_884 * 1024,
            buffers_bytes: 612_004 * 1024,
            cached_bytes: 7_401_552 * 1024,
            swap_total_bytes: 4_194_300 * 1024,
            swap_free_bytes: 4_012_796 * 1024,
        };
        assert_eq!(snap.memory, Some(expected));
    }

    #[test]
    fn missing_key_is_a_parse_error() {
        let err = parse_meminfo(Path::new("/proc/meminfo"), "MemTotal: 1 kB\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot parse /proc/meminfo: missing MemAvailable"
        );
    }
}
