//! The shipped Prometheus rules are valid and pass their unit tests
//! (`promtool check rules` and `promtool test rules`).

use crate::support;

use std::path::Path;
use std::process::Command;

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
    let Some(promtool) = support::promtool() else {
        return;
    };
    run(&promtool, &["check", "rules", "mailpulse-rules.yml"]);
    run(&promtool, &["test", "rules", "mailpulse-rules.test.yml"]);
}
