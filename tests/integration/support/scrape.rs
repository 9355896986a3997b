//! Reading a Prometheus text scrape: the value of one sample, and
//! `promtool check metrics` on a whole page.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where the Debian `prometheus` package installs promtool.
const PROMTOOL: &str = "/usr/bin/promtool";

/// The value of the sample `name{labels}` in a scrape, where the labels given
/// are a subset of the series' labels (the first such series).
pub fn metric(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let all_match = labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
            if all_match {
                value.parse().ok()
            } else {
                None
            }
        })
}

/// `/usr/bin/promtool`, or `None` (with a message) outside CI when the
/// `prometheus` package is missing; in CI a missing promtool is a failure.
pub fn promtool() -> Option<PathBuf> {
    let path = PathBuf::from(PROMTOOL);
    if path.exists() {
        Some(path)
    } else if std::env::var_os("CI").is_some() {
        panic!("promtool is required in CI (.ci/install-deps installs the prometheus package)");
    } else {
        eprintln!("skipping promtool: not installed (run .ci/install-deps)");
        None
    }
}

/// Asserts that `promtool check metrics` accepts `scrape` and reports nothing.
pub fn promtool_check(scrape: &str) {
    let Some(promtool) = promtool() else { return };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {report}"
    );
}
