//! Load collector: the 1, 5 and 15 minute load averages from `/proc/loadavg`.

use std::path::Path;

use super::procfs::{parse_f64, CollectError, ProcRoot};
use super::Collector;
use crate::sample::host::{CollectorKind, HostSnapshot, LoadAverage};

/// Reads `/proc/loadavg`; stateless.
#[derive(Debug, Default)]
pub(crate) struct LoadCollector;

impl Collector for LoadCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Load
    }

    fn collect(&mut self, proc: &ProcRoot, snap: &mut HostSnapshot) -> Result<(), CollectError> {
        let (path, text) = proc.read("loadavg")?;
        snap.load = Some(parse_loadavg(&path, &text)?);
        Ok(())
    }
}

/// Parses `0.52 0.58 0.59 1/389 12345`.
fn parse_loadavg(path: &Path, text: &str) -> Result<LoadAverage, CollectError> {
    let mut fields = text.split_ascii_whitespace();
    Ok(LoadAverage {
        load1: parse_f64(fields.next(), path, "load1")?,
        load5: parse_f64(fields.next(), path, "load5")?,
        load15: parse_f64(fields.next(), path, "load15")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::fixture_root;

    #[test]
    fn fixture_loadavg() {
        let mut snap = HostSnapshot::default();
        LoadCollector.collect(&fixture_root(), &mut snap).unwrap();
        let expected = LoadAverage {
            load1: 1.23,
            load5: 0.87,
            load15: 0.65,
        };
        assert_eq!(snap.load, Some(expected));
    }

    #[test]
    fn truncated_loadavg_is_a_parse_error() {
        let err = parse_loadavg(Path::new("/proc/loadavg"), "0.1 0.2\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot parse /proc/loadavg: missing load15"
        );
    }
}
