//! Prometheus metric families, one module per producer; each registers on an explicit registry.

pub mod host;
