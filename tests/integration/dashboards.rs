//! The Grafana dashboards under `dashboards/` pass `dashboards/check.sh`: valid against
//! Grafana's dashboard model (JSON Schema generated from `@grafana/schema`), the project's lint
//! rules, and every PromQL expression accepted by a real Prometheus on 127.0.0.1.
//!
//! The script needs node and npm (it installs its pinned npm packages itself) and prometheus
//! (it installs the Debian package when it runs as root). In CI a missing node or npm is a
//! failure; elsewhere the test is skipped with a message. The check runs with a live scrape
//! (`check.sh --scrape FILE`) of a real agent that has been through an incident, with an
//! HTTPS target and a receiver, so every `mailpulse_*` metric a panel names must exist.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `program` is an executable on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program)))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Why the check cannot run on this machine, if it cannot.
fn missing_tools() -> Option<String> {
    let missing: Vec<&str> = ["node", "npm"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if !missing.is_empty() {
        return Some(format!("{} not installed", missing.join(" and ")));
    }
    // check.sh installs prometheus with apt-get, which needs root.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !on_path("prometheus") && !root {
        return Some("prometheus not installed and not root to install it".to_string());
    }
    None
}

/// A scrape of an agent that has been through a slow incident, with an HTTPS
/// target, host collection and a webhook receiver.
async fn live_scrape(dir: &Path) -> String {
    use std::time::Duration;
    use support::{write_file, Agent, HttpServer, Reply};
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    let (chain, key) = support::tls::self_signed(&["localhost"]);
    let tls = HttpServer::https(chain, key).await;
    let hook = HttpServer::receiver().await;
    let port = support::free_port();
    let cfg = write_file(
        dir,
        "agent.toml",
        &format!(
            "[agent]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n[host]\ninterval = \"1s\"\nprocesses = [\"mailpulse\"]\n\
             [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
             [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\n\
             [[target]]\nname = \"owa-tls\"\nkind = \"http\"\nurl = \"https://localhost:{}/\"\ninterval = \"1s\"\n\
             tls_insecure_skip_verify = true\nip_family = \"ipv4\"\n\
             [[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            dir.join("state").display(),
            server.url("/owa"),
            tls.addr.port(),
            hook.url("/hook"),
        ),
    );
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
    let has = |v: Option<f64>| v.is_some();
    agent.wait_baseline("owa").await;
    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(60)));
    agent.wait_degraded("owa", true, "an incident").await;
    server.route("/owa", Reply::ok("ok"));
    agent
        .wait_metric(
            "mailpulse_last_incident_duration_seconds",
            &[("target", "owa")],
            has,
            "the incident to close",
        )
        .await;
    agent
        .wait_metric(
            "mailpulse_tls_cert_expiry_timestamp_seconds",
            &[("target", "owa-tls")],
            has,
            "the tls target",
        )
        .await;
    hook.wait_accepted(2, Duration::from_secs(15)).await;
    agent.scrape().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_pass_their_checks_against_a_live_scrape() {
    let _busy = support::busy();
    if let Some(why) = missing_tools() {
        if std::env::var_os("CI").is_some() {
            panic!("dashboards/check.sh cannot run in CI: {why}");
        }
        eprintln!("skipping: {why} (dashboards/check.sh needs node 20+, npm and prometheus)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scrape = live_scrape(dir.path()).await;
    let scrape_file = dir.path().join("scrape.txt");
    std::fs::write(&scrape_file, scrape).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("dashboards/check.sh"))
        .arg("--scrape")
        .arg(&scrape_file)
        .current_dir(&root)
        .output()
        .expect("run bash dashboards/check.sh");
    assert!(
        out.status.success(),
        "dashboards/check.sh --scrape failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
