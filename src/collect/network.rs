//! Network collector: per-interface byte, packet, error and drop counters from `/proc/net/dev`.
//!
//! Every interface is reported, loopback included, unless the operator excludes
//! it by name; a name ending in `*` excludes every interface with that prefix
//! (`veth*` for container links).

use std::path::Path;

use super::procfs::{parse_u64, CollectError, ProcRoot};
use super::Collector;
use crate::sample::host::{CollectorKind, HostSnapshot, InterfaceStats};

/// Reads `/proc/net/dev`, minus the excluded interfaces.
#[derive(Debug, Default)]
pub(crate) struct NetworkCollector {
    /// Exact names or `prefix*` patterns to leave out.
    exclude: Vec<String>,
}

impl NetworkCollector {
    /// A collector leaving out interfaces matching `exclude`.
    pub(crate) fn new(exclude: &[String]) -> Self {
        NetworkCollector {
            exclude: exclude.to_vec(),
        }
    }

    /// Whether the operator excluded `interface`.
    fn is_excluded(&self, interface: &str) -> bool {
        self.exclude
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => interface.starts_with(prefix),
                None => interface == pattern,
            })
    }
}

impl Collector for NetworkCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::Network
    }

    fn collect(&mut self, proc: &ProcRoot, snap: &mut HostSnapshot) -> Result<(), CollectError> {
        let (path, text) = proc.read("net/dev")?;
        let mut interfaces = parse_net_dev(&path, &text)?;
        interfaces.retain(|i| !self.is_excluded(&i.interface));
        snap.interfaces = interfaces;
        Ok(())
    }
}

/// Parses the two header lines and one `name: 16 numbers` line per interface.
fn parse_net_dev(path: &Path, text: &str) -> Result<Vec<InterfaceStats>, CollectError> {
    let mut interfaces = Vec::new();
    for line in text.lines() {
        // Header lines have a `|` and no `:`; old kernels glue the first number to
        // the colon (`eth0:123`), so split on the colon rather than on whitespace.
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let mut v = [0u64; 16];
        let mut fields = counters.split_ascii_whitespace();
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = parse_u64(
                fields.next(),
                path,
                format_args!("column {} of {name}", i + 1),
            )?;
        }
        interfaces.push(InterfaceStats {
            interface: name.to_owned(),
            receive_bytes_total: v[0],
            receive_packets_total: v[1],
            receive_errors_total: v[2],
            receive_drops_total: v[3],
            transmit_bytes_total: v[8],
            transmit_packets_total: v[9],
            transmit_errors_total: v[10],
            transmit_drops_total: v[11],
        });
    }
    Ok(interfaces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::fixture_root;

    fn names(exclude: &[&str]) -> Vec<String> {
        let exclude: Vec<String> = exclude.iter().map(|s| s.to_string()).collect();
        let mut snap = HostSnapshot::default();
        NetworkCollector::new(&exclude)
            .collect(&fixture_root(), &mut snap)
            .unwrap();
        snap.interfaces.into_iter().map(|i| i.interface).collect()
    }

    #[test]
    fn fixture_net_dev() {
        let mut snap = HostSnapshot::default();
        NetworkCollector::default()
            .collect(&fixture_root(), &mut snap)
            .unwrap();
        let eth0 = snap
            .interfaces
            .iter()
            .find(|i| i.interface == "eth0")
            .unwrap();
        assert_eq!(
            *eth0,
            InterfaceStats {
                interface: "eth0".into(),
                receive_bytes_total: 918_273_645_012,
                receive_packets_total: 1_203_348_871,
                receive_errors_total: 3,
                receive_drops_total: 1_207,
                transmit_bytes_total: 1_712_093_388_447,
                transmit_packets_total: 1_544_012_930,
                transmit_errors_total: 0,
                transmit_drops_total: 12,
            }
        );
    }

    #[test]
    fn exclusions_by_name_and_prefix() {
        assert_eq!(names(&[]), ["lo", "eth0", "docker0", "veth1a2b3c4"]);
        assert_eq!(names(&["lo", "veth*"]), ["eth0", "docker0"]);
        assert_eq!(names(&["eth"]), ["lo", "eth0", "docker0", "veth1a2b3c4"]);
    }

    #[test]
    fn glued_first_counter_parses() {
        let text =
            "Inter-|   Receive\n face |bytes\n  eth1:4294967296 2 0 0 0 0 0 0 5 6 0 0 0 0 0 0\n";
        let got = parse_net_dev(Path::new("/proc/net/dev"), text).unwrap();
        assert_eq!(got[0].interface, "eth1");
        assert_eq!(got[0].receive_bytes_total, 4_294_967_296);
        assert_eq!(got[0].transmit_packets_total, 6);
    }
}
