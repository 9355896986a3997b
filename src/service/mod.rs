//! Living as a service: signals, systemd notifications and the watchdog
//! feeder, logging, the descriptor limit, and returning start-up's code
//! pages. Used only by `app`, `cmd/run.rs` and `main` (and `config`, which
//! holds the `logging::LogFormat` it validated).

pub mod fdlimit;
pub mod logging;
pub mod signals;
pub mod systemd;
pub mod trim;
pub mod watchdog;
