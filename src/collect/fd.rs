//! File-descriptor collector: allocated and maximum file handles from `/proc/sys/fs/file-nr`.

use std::path::Path;

use super::procfs::{parse_u64, CollectError, ProcRoot};
use super::Collector;
use crate::sample::host::{CollectorKind, FileDescriptors, HostSnapshot};

/// Reads `/proc/sys/fs/file-nr`; stateless.
#[derive(Debug, Default)]
pub(crate) struct FdCollector;

impl Collector for FdCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::FileDescriptors
    }

    fn collect(&mut self, proc: &ProcRoot, snap: &mut HostSnapshot) -> Result<(), CollectError> {
        let (path, text) = proc.read("sys/fs/file-nr")?;
        snap.file_descriptors = Some(parse_file_nr(&path, &text)?);
        Ok(())
    }
}

/// Parses `allocated unused maximum`; the middle field is always 0 since Linux 2.6.
fn parse_file_nr(path: &Path, text: &str) -> Result<FileDescriptors, CollectError> {
    let mut fields = text.split_ascii_whitespace();
    let allocated = parse_u64(fields.next(), path, "allocated")?;
    parse_u64(fields.next(), path, "unused")?;
    let maximum = parse_u64(fields.next(), path, "maximum")?;
    Ok(FileDescriptors { allocated, maximum })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::fixture_root;

    #[test]
    fn fixture_file_nr() {
        let mut snap = HostSnapshot::default();
        FdCollector.collect(&fixture_root(), &mut snap).unwrap();
        let expected = FileDescriptors {
            allocated: 12_672,
            maximum: 9_223_372_036_854_775_807,
        };
        assert_eq!(snap.file_descriptors, Some(expected));
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let err = parse_file_nr(Path::new("/proc/sys/fs/file-nr"), "12\t0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot parse /proc/sys/fs/file-nr: missing maximum"
        );
    }
}
