//! mailpulse: a monitoring agent for mail and web-access servers.
//!
//! The crate is a library with a thin binary on top, so integration tests drive
//! the same code the agent runs. Data flows one way: `schedule` runs `probe`s
//! that produce [`sample::Sample`]s, `collect` reads host load into
//! [`sample::host::HostSnapshot`]s, and `metrics` exports both. `detect` turns
//! probe results into incidents, and `replay` runs it over recorded series.
//! `app` wires the pieces together into the daemon, and `cmd` holds the
//! subcommands, one per file; see `ARCHITECTURE.md`.
#![deny(unsafe_code)]

pub mod alert;
pub mod api;
pub mod app;
pub mod clock;
pub mod cmd;
pub mod collect;
pub mod config;
pub mod detect;
pub mod fleet;
pub mod health;
pub mod html;
pub mod human;
pub mod incident;
pub mod metrics;
pub mod outbound;
pub mod pipeline;
pub mod probe;
pub mod replay;
pub mod report;
pub mod sample;
pub mod schedule;
pub mod service;
pub mod sketch;
pub mod status;
pub mod store;
pub mod verdict;
pub mod window;
