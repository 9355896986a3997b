//! Configuration errors, one fixture per error class: each
//! `tests/fixtures/config/invalid-*.toml` starts with `# expect: LINE:COL: MESSAGE`
//! and `mailpulse check-config` must print exactly `FILE:LINE:COL: MESSAGE`
//! and exit 1. `valid-*.toml` fixtures must pass.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures(prefix: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

fn check_config(path: &Path) -> (i32, String, String) {
    let out = Command::new(support::bin())
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn every_invalid_fixture_fails_with_its_exact_message() {
    let mut failures = Vec::new();
    for path in fixtures("invalid-") {
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()));
        let (code, stdout, stderr) = check_config(&path);
        let want = format!("{}:{expect}\n", path.display());
        if code != 1 || stderr != want || !stdout.is_empty() {
            failures.push(format!(
                "{}\n  want: {want}  got ({code}): {stderr}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_fixtures_pass_with_a_summary() {
    for path in fixtures("valid-") {
        let (code, stdout, stderr) = check_config(&path);
        assert_eq!(code, 0, "{}: {stderr}", path.display());
        assert!(stdout.contains(": valid\n"), "{stdout}");
    }
}

#[test]
fn every_problem_in_a_file_is_reported_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = support::write_file(
        dir.path(),
        "c.toml",
        "[agent]\nlisten = \"nowhere\"\n[[target]]\nname = \"a\"\nkind = \"http\"\nurl = \"ftp://x/\"\n[[target]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://x/\"\n",
    );
    let (code, _, stderr) = check_config(&path);
    assert_eq!(code, 1);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].contains("agent.listen"), "{stderr}");
    assert!(lines[1].contains("target[0].url"), "{stderr}");
    assert!(lines[2].contains("target[1].name: duplicate"), "{stderr}");
}

#[test]
fn a_missing_file_is_named() {
    let (code, _, stderr) = check_config(Path::new("/nonexistent/mailpulse.toml"));
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "/nonexistent/mailpulse.toml: cannot read configuration: No such file or directory (os error 2)\n"
    );
}

#[test]
fn the_builtin_default_is_valid_and_collects_host_load_only() {
    let c = mailpulse::config::Config::builtin();
    assert_eq!(c.agent.listen.to_string(), "127.0.0.1:9717");
    assert!(c.host.enabled);
    assert!(c.targets.is_empty());
    assert!(!c.agent.instance.is_empty());
}

#[test]
fn the_examples_are_valid_with_their_credentials_in_place() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    let names =
        regex::Regex::new(r#"(?:password_credential = "|\$\{CREDENTIALS_DIRECTORY\}/)([\w.-]+)"#)
            .unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        // Stand in for systemd's credentials directory with the names the example uses.
        let text = std::fs::read_to_string(&path).unwrap();
        let creds = tempfile::tempdir().unwrap();
        for name in names.captures_iter(&text) {
            support::write_file(creds.path(), &name[1], "example-password\n");
        }
        let out = Command::new(support::bin())
            .args(["check-config", "--config"])
            .arg(&path)
            .env("CREDENTIALS_DIRECTORY", creds.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(": valid\n"),
            "{}: {}{}",
            path.display(),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains("example-password"), "{stdout}");
        checked += 1;
    }
    assert!(
        checked >= 2,
        "examples/mail.toml and examples/exchange.toml"
    );
}
