//! Host load snapshot (filled in by the host collectors).

/// Placeholder until the collectors land.
#[derive(Debug, Clone, Default)]
pub struct HostSnapshot {}
