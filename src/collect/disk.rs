//! Disk collector: per-device IO counters from `/proc/diskstats`.
//!
//! Loop, RAM and floppy devices are skipped, and so are partitions whose whole
//! disk is listed too (`sda1` next to `sda`, `nvme0n1p2` next to `nvme0n1`), so
//! the same IO is not counted twice; device-mapper and md devices are kept.

use std::collections::HashSet;
use std::path::Path;

use super::procfs::{parse_u64, CollectError, ProcRoot};
use super::Collector;
use crate::sample::host::{CollectorKind, DiskStats, HostSnapshot};

/// `/proc/diskstats` counts in 512-byte sectors whatever the device's real sector size.
const SECTOR_BYTES: u64 = 512;

/// Reads `/proc/diskstats`; stateless.
#[derive(Debug, Default)]
pub(crate) struct DiskCollector;

impl Collector for DiskCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Disk
    }

    fn collect(&mut self, proc: &ProcRoot, snap: &mut HostSnapshot) -> Result<(), CollectError> {
        let (path, text) = proc.read("diskstats")?;
        snap.disks = parse_diskstats(&path, &text)?;
        Ok(())
    }
}

/// Parses every line, then drops the devices we skip.
fn parse_diskstats(path: &Path, text: &str) -> Result<Vec<DiskStats>, CollectError> {
    let mut disks = Vec::new();
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace().skip(2);
        let Some(device) = f.next() else {
            continue;
        };
        // Fields 4..=14 of the documented format (Documentation/admin-guide/iostats.rst).
        let mut v = [0u64; 11];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = parse_u64(f.next(), path, format_args!("field {} of {device}", i + 4))?;
        }
        let [reads, _, sectors_read, ms_reading, writes, _, sectors_written, ms_writing, _, ms_io, _] =
            v;
        disks.push(DiskStats {
            device: device.to_owned(),
            reads_completed_total: reads,
            writes_completed_total: writes,
            read_bytes_total: sectors_read.saturating_mul(SECTOR_BYTES),
            written_bytes_total: sectors_written.saturating_mul(SECTOR_BYTES),
            read_time_seconds_total: ms_reading as f64 / 1000.0,
            write_time_seconds_total: ms_writing as f64 / 1000.0,
            io_time_seconds_total: ms_io as f64 / 1000.0,
        });
    }
    let names: HashSet<&str> = disks.iter().map(|d| d.device.as_str()).collect();
    let skip: Vec<bool> = disks
        .iter()
        .map(|d| is_virtual(&d.device) || is_partition_of_listed_disk(&d.device, &names))
        .collect();
    Ok(disks
        .into_iter()
        .zip(skip)
        .filter_map(|(disk, skip)| (!skip).then_some(disk))
        .collect())
}

/// Loop, RAM, compressed-RAM and floppy devices: no physical IO worth watching.
fn is_virtual(device: &str) -> bool {
    ["loop", "ram", "zram", "fd"].iter().any(|prefix| {
        device
            .strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Whether `device` is a partition of another listed device: `sda1` of `sda`,
/// `nvme0n1p1`/`mmcblk0p1` of `nvme0n1`/`mmcblk0` (a `p` separates two digits).
fn is_partition_of_listed_disk(device: &str, names: &HashSet<&str>) -> bool {
    let base = device.trim_end_matches(|c: char| c.is_ascii_digit());
    if base.len() == device.len() || base.is_empty() {
        return false;
    }
    match base.strip_suffix('p') {
        Some(disk) if disk.ends_with(|c: char| c.is_ascii_digit()) => names.contains(disk),
        _ => !base.ends_with('-') && names.contains(base),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::fixture_root;

    #[test]
    fn fixture_diskstats() {
        let mut snap = HostSnapshot::default();
        DiskCollector.collect(&fixture_root(), &mut snap).unwrap();
        let names: Vec<_> = snap.disks.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["sda", "nvme0n1", "sr0", "dm-0", "dm-1", "md0"]);
        let nvme = &snap.disks[1];
        assert_eq!(
            *nvme,
            DiskStats {
                device: "nvme0n1".into(),
                reads_completed_total: 1_856_213,
                writes_completed_total: 9_822_164,
                read_bytes_total: 94_312_576 * 512,
                written_bytes_total: 402_117_120 * 512,
                read_time_seconds_total: 412.337,
                write_time_seconds_total: 8_317.512,
                io_time_seconds_total: 2_911.804,
            }
        );
    }

    #[test]
    fn partitions_are_skipped_only_next_to_their_disk() {
        let names: HashSet<&str> = ["sda", "nvme0n1", "mmcblk0", "dm-0"].into_iter().collect();
        assert!(is_partition_of_listed_disk("sda1", &names));
        assert!(is_partition_of_listed_disk("nvme0n1p3", &names));
        assert!(is_partition_of_listed_disk("mmcblk0p1", &names));
        assert!(!is_partition_of_listed_disk("sdb1", &names));
        assert!(!is_partition_of_listed_disk("nvme0n1", &names));
        assert!(!is_partition_of_listed_disk("dm-1", &names));
        assert!(!is_partition_of_listed_disk("sda", &names));
    }

    #[test]
    fn virtual_devices() {
        assert!(is_virtual("loop0"));
        assert!(is_virtual("ram15"));
        assert!(is_virtual("zram0"));
        assert!(!is_virtual("fd"));
        assert!(!is_virtual("sda"));
        assert!(!is_virtual("dm-0"));
    }

    #[test]
    fn short_line_is_a_parse_error() {
        let err = parse_diskstats(Path::new("/proc/diskstats"), "8 0 sda 1 2 3\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot parse /proc/diskstats: missing field 7 of sda"
        );
    }
}
