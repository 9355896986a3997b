//! The daemon probing one HTTP target, `owa`, on a server whose delay the
//! test controls, with a quick detector: the set-up of the incident, soak
//! and soak-report tests.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{free_port, write_file, Agent, HttpServer, Reply};

/// The running set-up.
pub struct Owa {
    /// The target's server (`/owa`); `route` it to slow it down.
    pub server: HttpServer,
    /// Holds the configuration and the state directory.
    pub dir: tempfile::TempDir,
    /// The configuration file.
    pub cfg: PathBuf,
    /// The agent's listen address (for a restart on the same port).
    pub addr: SocketAddr,
    /// The agent, with a learned baseline for `owa`.
    pub agent: Agent,
}

/// Starts the daemon probing `owa` every `interval` (with `timeout`), its
/// detector at factor 3 and 50 ms over the baseline for 500 ms, recovered
/// after 1 s, with `extra` appended to the configuration; returns once the
/// baseline is learned.
pub async fn start(interval: &str, timeout: &str, extra: &str) -> Owa {
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = free_port();
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
         [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
         [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"{interval}\"\ntimeout = \"{timeout}\"\n{extra}",
        state.display(),
        server.url("/owa"),
    );
    let cfg = write_file(dir.path(), "c.toml", &config);
    let addr = ([127, 0, 0, 1], port).into();
    let agent = Agent::start(&cfg, addr, &[]).await;
    agent.wait_baseline("owa").await;
    Owa {
        server,
        dir,
        cfg,
        addr,
        agent,
    }
}
