//! The state store failing under a running agent: a store file that is not a
//! redb database, and a state directory on a small filesystem that fills up.
//! The agent keeps probing and exporting, says so in its log and metrics
//! (`mailpulse_state_store_errors_total`, `mailpulse_state_store_durable`),
//! and stores incidents again once space returns.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{metric, write_file, Agent, HttpServer, Route};

fn config(port: u16, state: &Path, url: &str) -> String {
    format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
         [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
         [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\n",
        state.display()
    )
}

async fn value(agent: &Agent, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric(&agent.scrape().await, name, labels)
}

async fn probes(agent: &Agent) -> f64 {
    value(
        agent,
        "mailpulse_probe_duration_seconds_count",
        &[("target", "owa")],
    )
    .await
    .unwrap_or(0.0)
}

/// Waits until the target has been probed `n` more times (it keeps its schedule).
async fn keeps_probing(agent: &Agent, n: f64) {
    let before = probes(agent).await;
    agent
        .wait_until(
            || async { probes(agent).await >= before + n },
            "probes to go on",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_file_that_is_not_a_database_leaves_the_agent_probing_on_memory() {
    let server = HttpServer::start().await;
    server.route("/owa", Route::ok("ok"));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("mailpulse.redb"),
        b"\x00garbage, not redb\xff".repeat(200),
    )
    .unwrap();
    let port = support::free_port();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &config(port, &state, &server.url("/owa")),
    );
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;

    keeps_probing(&agent, 5.0).await;
    let scrape = agent.scrape().await;
    assert_eq!(
        metric(&scrape, "mailpulse_state_store_durable", &[]),
        Some(0.0)
    );
    assert!(metric(&scrape, "mailpulse_state_store_errors_total", &[]).unwrap() >= 1.0);
    assert_eq!(
        metric(&scrape, "mailpulse_probe_success", &[("target", "owa")]),
        Some(1.0)
    );
    assert!(
        agent.log_text().contains("cannot open the state store"),
        "{}",
        agent.log_text()
    );
}

/// A tmpfs of `size` mounted on `dir`, unmounted on drop. `None` when this
/// process may not mount (not root, or no tmpfs in a container).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` with one file, leaving nothing free.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0xa5u8; 4096];
    while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
    let _ = f.sync_all();
    path
}

fn incidents(cfg: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(support::bin())
        .args(["incidents", "--json", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_filesystem_is_reported_and_storing_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let Some(_fs) = Tmpfs::mount(&state, "2m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let server = HttpServer::start().await;
    server.route("/owa", Route::ok("ok"));
    let port = support::free_port();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &config(port, &state, &server.url("/owa")),
    );
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
    assert_eq!(
        value(&agent, "mailpulse_state_store_durable", &[]).await,
        Some(1.0)
    );
    agent
        .wait_until(
            || async {
                value(
                    &agent,
                    "mailpulse_target_baseline_seconds",
                    &[("target", "owa")],
                )
                .await
                .is_some()
            },
            "a learned baseline",
        )
        .await;

    // Disk full, then a slowdown: the incident cannot be stored.
    let filler = fill(&state);
    let errors_before = value(&agent, "mailpulse_state_store_errors_total", &[])
        .await
        .unwrap();
    server.route("/owa", Route::ok("ok").delayed(Duration::from_millis(60)));
    agent
        .wait_until(
            || async {
                value(&agent, "mailpulse_state_store_errors_total", &[])
                    .await
                    .unwrap()
                    > errors_before
            },
            "store errors to be counted",
        )
        .await;
    agent
        .wait_until(
            || async { value(&agent, "mailpulse_state_store_durable", &[]).await == Some(0.0) },
            "the store to be reported as not durable",
        )
        .await;
    // Still probing, still exporting, still detecting.
    keeps_probing(&agent, 5.0).await;
    agent
        .wait_until(
            || async {
                value(&agent, "mailpulse_target_degraded", &[("target", "owa")]).await == Some(1.0)
            },
            "the slowdown to be detected in memory",
        )
        .await;
    assert!(
        agent.log_text().contains("cannot save"),
        "{}",
        agent.log_text()
    );

    // Space returns; the next writes reopen the file and succeed.
    std::fs::remove_file(&filler).unwrap();
    server.route("/owa", Route::ok("ok"));
    agent
        .wait_until(
            || async {
                value(&agent, "mailpulse_target_degraded", &[("target", "owa")]).await == Some(0.0)
            },
            "the incident to close",
        )
        .await;
    agent
        .wait_until(
            || async { value(&agent, "mailpulse_state_store_durable", &[]).await == Some(1.0) },
            "the store to be durable again",
        )
        .await;
    let errors_after_recovery = value(&agent, "mailpulse_state_store_errors_total", &[])
        .await
        .unwrap();

    // A second slowdown after recovery is stored like any other.
    server.route("/owa", Route::ok("ok").delayed(Duration::from_millis(60)));
    agent
        .wait_until(
            || async {
                value(&agent, "mailpulse_target_degraded", &[("target", "owa")]).await == Some(1.0)
            },
            "a second incident",
        )
        .await;
    agent
        .wait_until(
            || async { incidents(&cfg).iter().any(|i| i["recovered_at"].is_null()) },
            "the second incident in the store",
        )
        .await;
    assert_eq!(
        value(&agent, "mailpulse_state_store_errors_total", &[]).await,
        Some(errors_after_recovery),
        "no store errors after space returned"
    );
    assert!(
        agent.log_text().contains("state store reopened"),
        "{}",
        agent.log_text()
    );
}
