//! The shipped Prometheus rules are valid and pass their unit tests
//! (`promtool check rules` and `promtool test rules`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn promtool() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/promtool");
    if path.exists() {
        Some(path)
    } else if std::env::var_os("CI").is_some() {
        panic!("promtool is required in CI (.ci/install-deps installs the prometheus package)");
    } else {
        eprintln!("skipping: promtool not installed (run .ci/install-deps)");
        None
    }
}

fn run(promtool: &Path, args: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/prometheus");
    let out = Command::new(promtool)
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rules_are_valid_and_pass_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    run(&promtool, &["check", "rules", "mailpulse-rules.yml"]);
    run(&promtool, &["test", "rules", "mailpulse-rules.test.yml"]);
}
