//! Headless Chromium (Debian's `chromium`, installed by `.ci/install-deps`)
//! loading a page of the agent: the DOM after load (`--dump-dom`), a
//! screenshot, and what Chromium logged on stderr (console messages and
//! errors come out there with `--enable-logging=stderr --v=0`). Each run
//! has its own profile directory and is killed (by its PID, on drop) if it
//! outlives [`LIMIT`].

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Debian installs it.
pub const BINARY: &str = "/usr/bin/chromium";
/// The longest one run may take.
const LIMIT: Duration = Duration::from_secs(90);

/// What one load of a page gave.
#[derive(Debug)]
pub struct Loaded {
    /// The serialized DOM after load (empty for a screenshot run).
    pub dom: String,
    /// Chromium's log.
    pub log: String,
}

impl Loaded {
    /// Console messages and page errors in the log (`CONSOLE` lines, CSP
    /// refusals, uncaught exceptions).
    pub fn console_errors(&self) -> Vec<&str> {
        self.log
            .lines()
            .filter(|l| {
                l.contains(":CONSOLE")
                    || l.contains("Uncaught")
                    || l.contains("Refused to")
                    || l.contains("Content Security Policy")
            })
            .collect()
    }
}

/// Where the tests keep their screenshots: `target/test-artifacts/status/`.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/status");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn run(url: &str, extra: &[String]) -> Loaded {
    assert!(
        Path::new(BINARY).exists(),
        "{BINARY} is missing: run .ci/install-deps (package chromium)"
    );
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(BINARY);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,1000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    cmd.args(extra).arg(url).kill_on_drop(true);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("chromium starts");
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("chromium finished in time")
        .expect("chromium ran");
    Loaded {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Loads `url` and returns its DOM after load. (Chromium's headless mode
/// reads the DOM with script, so `--blink-settings=scriptEnabled=false`
/// leaves `--dump-dom` empty: pages are shown to need no script by carrying
/// none and forbidding it in their Content-Security-Policy.)
pub async fn dump_dom(url: &str) -> Loaded {
    run(url, &["--dump-dom".to_string()]).await
}

/// Loads `url` and saves a screenshot of it as `name` (PNG) under
/// [`artifacts`]; returns its path.
pub async fn screenshot(url: &str, name: &str) -> PathBuf {
    let file = artifacts().join(name);
    let _ = std::fs::remove_file(&file);
    let loaded = run(url, &[format!("--screenshot={}", file.display())]).await;
    assert!(file.exists(), "no screenshot of {url}: {}", loaded.log);
    file
}
