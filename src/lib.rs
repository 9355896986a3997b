//! mailpulse: a monitoring agent for mail and web-access servers.
//!
//! The crate is a library with a thin binary on top, so integration tests drive
//! the same code the agent runs. Data flows one way: collectors and probes fill
//! in plain [`sample`] types, and [`metrics`] turns them into Prometheus series.

#![forbid(unsafe_code)]

pub mod collect;
pub mod metrics;
pub mod sample;
