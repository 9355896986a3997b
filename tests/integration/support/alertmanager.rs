//! A real Alertmanager (Debian package `prometheus-alertmanager`) on
//! 127.0.0.1 for tests, with a fresh storage directory and no cluster
//! listener; stopped by its PID on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The binary the Debian package installs.
pub const BINARY: &str = "/usr/bin/prometheus-alertmanager";
/// How long it may take to become ready.
const START_WITHIN: Duration = Duration::from_secs(20);

/// A running Alertmanager.
pub struct Alertmanager {
    child: Child,
    /// Its API address.
    pub addr: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Starts one in `dir`, or explains why it cannot.
    pub async fn start(dir: &Path) -> Result<Alertmanager, String> {
        if !Path::new(BINARY).exists() {
            return Err(format!(
                "{BINARY} is missing (apt-get install prometheus-alertmanager; see .ci/install-deps)"
            ));
        }
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
        )
        .unwrap();
        let storage = dir.join("am-data");
        std::fs::create_dir_all(&storage).unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], super::free_port()).into();
        let log = dir.join("alertmanager.log");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address={addr}"))
            // An empty cluster address is the only way to keep it off 0.0.0.0:9094.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .map_err(|e| format!("cannot start {BINARY}: {e}"))?;
        let am = Alertmanager { child, addr, log };
        if super::answers(addr, "/-/ready", START_WITHIN).await {
            return Ok(am);
        }
        Err(format!(
            "alertmanager did not become ready; log:\n{}",
            std::fs::read_to_string(&am.log).unwrap_or_default()
        ))
    }

    /// Starts one, skipping (None) outside CI when it cannot, failing in CI.
    pub async fn start_or_skip(dir: &Path) -> Option<Alertmanager> {
        match Alertmanager::start(dir).await {
            Ok(am) => Some(am),
            Err(why) if std::env::var_os("CI").is_some() => panic!("{why}"),
            Err(why) => {
                eprintln!("skipping: {why}");
                None
            }
        }
    }

    /// The alert for `target` as Alertmanager lists it (active or not).
    pub async fn alert(&self, target: &str) -> Option<Value> {
        self.alerts(target).await?.into_iter().next()
    }

    /// Every alert for `target` Alertmanager lists (it leaves out resolved
    /// ones); `None` when it does not answer.
    pub async fn alerts(&self, target: &str) -> Option<Vec<Value>> {
        let (status, body) = super::get(self.addr, "/api/v2/alerts").await?;
        assert_eq!(status, 200, "{body}");
        let list: Value = serde_json::from_str(&body).ok()?;
        Some(
            list.as_array()?
                .iter()
                .filter(|a| a["labels"]["target"] == target)
                .cloned()
                .collect(),
        )
    }
}
