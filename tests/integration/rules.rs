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

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// The `- alert: NAME` entries of the rules file, each with the text up to
/// the next entry.
fn alerts(rules: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in rules.lines() {
        if let Some(name) = line.trim_start().strip_prefix("- alert: ") {
            out.push((name.trim().to_string(), String::new()));
        } else if line.trim_start().starts_with("- record: ")
            || line.trim_start().starts_with("- name: ")
        {
            // A recording rule or a new group ends the alert before it.
            out.push((String::new(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.retain(|(name, _)| !name.is_empty());
    out
}

#[test]
fn every_alert_has_a_runbook_entry_in_the_readme() {
    let rules = read("dashboards/prometheus/mailpulse-rules.yml");
    let readme = read("README.md");
    let runbook = readme
        .split("\n## Alert runbook\n")
        .nth(1)
        .expect("README.md has an \"Alert runbook\" section");
    let runbook = runbook.split("\n## ").next().unwrap();
    let list = alerts(&rules);
    assert!(list.len() >= 17, "{list:?}");
    for (name, body) in &list {
        let url = format!(
            "runbook_url: \"https://github.com/mailpulse/mailpulse/blob/main/README.md#{}\"",
            name.to_lowercase()
        );
        assert!(body.contains(&url), "{name}: no {url}");
        assert!(
            runbook.lines().any(|l| l == format!("### {name}")),
            "{name}: no \"### {name}\" in README.md's Alert runbook"
        );
    }
}

#[test]
fn the_rules_name_the_scrape_job_in_one_place() {
    let rules = read("dashboards/prometheus/mailpulse-rules.yml");
    let code: Vec<&str> = rules
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| l.contains("job="))
        .collect();
    assert_eq!(code, ["        expr: up{job=\"mailpulse\"}"]);
}

#[test]
fn the_provisioning_path_is_where_the_packages_install_the_dashboards() {
    let cargo = read("Cargo.toml");
    let readme = read("dashboards/README.md");
    let installed = "/usr/share/mailpulse/dashboards";
    assert!(
        cargo.contains("[\"dashboards/*.json\", \"usr/share/mailpulse/dashboards/\", \"644\"]"),
        "the .deb installs the dashboards elsewhere"
    );
    assert!(
        cargo.contains(
            "source = \"dashboards/*.json\", dest = \"/usr/share/mailpulse/dashboards/\""
        ),
        "the .rpm installs the dashboards elsewhere"
    );
    assert!(
        readme.contains(&format!("path: {installed}\n")),
        "dashboards/README.md's provider path is not {installed}"
    );
}
