//! Unix signals turned into a typed control stream, in one place.
//!
//! Handlers are installed once, before slow start-up work, so a signal that
//! arrives early is not lost (tokio keeps the registration for the process).

use tokio::signal::unix::{signal, Signal, SignalKind};

/// What a signal asks the agent to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop cleanly.
    Shutdown,
    /// Re-read the configuration.
    Reload,
}

/// The installed signal handlers.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            // SIGTERM: `systemctl stop`, `kill`.
            term: signal(SignalKind::terminate())?,
            // SIGINT: Ctrl-C in a terminal.
            int: signal(SignalKind::interrupt())?,
            // SIGHUP: `systemctl reload` (ExecReload=kill -HUP $MAINPID).
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    pub async fn next(&mut self) -> Control {
        tokio::select! {
            _ = self.term.recv() => Control::Shutdown,
            _ = self.int.recv() => Control::Shutdown,
            _ = self.hup.recv() => Control::Reload,
        }
    }
}
