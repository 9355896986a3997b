//! Living as a service: signals, systemd notifications and logging.
//! Used only by `app` and `main`.

pub mod logging;
pub mod signals;
pub mod systemd;
