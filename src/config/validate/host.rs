//! `[host]`: whether and how often host load is collected, and what is
//! left out or grouped.

use super::files::resolve;
use super::*;
use crate::config::raw::RawHost;

/// Validates `[host]` at `path`, filling defaults.
pub(super) fn build_host(
    c: &mut Checker<'_>,
    path: &KeyPath,
    base: &Path,
    raw: RawHost,
) -> HostConfig {
    let interval = raw
        .interval
        .map(HumanDuration::get)
        .unwrap_or(DEFAULT_HOST_INTERVAL);
    if interval < Duration::from_secs(1) {
        c.error_at(&path.key("interval"), "must be at least 1s");
    }
    let processes = raw.processes.unwrap_or_default();
    for (i, name) in processes.iter().enumerate() {
        if name.trim().is_empty() {
            c.error_at(&path.key("processes").index(i), "must not be empty");
        }
    }
    HostConfig {
        enabled: raw.enabled.unwrap_or(true),
        interval,
        processes,
        exclude_filesystems: raw.exclude_filesystems.unwrap_or_default(),
        exclude_interfaces: raw.exclude_interfaces.unwrap_or_default(),
        proc_root: raw
            .proc_root
            .map(|p| resolve(base, p))
            .unwrap_or_else(|| PathBuf::from("/proc")),
    }
}
