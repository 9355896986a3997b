//! A real Prometheus (Debian's `/usr/bin/prometheus`) on 127.0.0.1: started
//! on a given configuration with a fresh TSDB in the test's directory,
//! queried through its HTTP API, stopped by its PID on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// Where `.ci/install-deps` puts it.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Whether Prometheus is installed; outside CI a test without it skips.
pub fn available() -> bool {
    if Path::new(PROMETHEUS).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{PROMETHEUS} is required in CI"
    );
    eprintln!("skipping: {PROMETHEUS} missing (run .ci/install-deps)");
    false
}

/// A real Prometheus, stopped by its PID on drop.
pub struct Prometheus {
    child: Child,
    /// Its web address.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus on the YAML `config`, with `args` added to its
    /// command line, and waits until it is ready.
    pub async fn start(dir: &Path, config: &str, args: &[&str]) -> Prometheus {
        let config = super::write_file(dir, "prometheus.yml", config);
        let addr: SocketAddr = ([127, 0, 0, 1], super::free_port()).into();
        let log = dir.join("prometheus.log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let p = Prometheus { child, addr, log };
        if super::answers(addr, "/-/ready", Duration::from_secs(20)).await {
            return p;
        }
        panic!("prometheus did not start:\n{}", p.log_text());
    }

    /// What Prometheus logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Instant query results: (labels, value) pairs.
    pub async fn query(&self, promql: &str) -> Vec<(Value, f64)> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let Some((200, body)) =
            super::get(self.addr, &format!("/api/v1/query?query={encoded}")).await
        else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|r| {
                (
                    r["metric"].clone(),
                    r["value"][1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }
}
