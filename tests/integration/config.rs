//! Configuration errors, one fixture per error class: each
//! `tests/fixtures/config/invalid-*.toml` starts with `# expect: LINE:COL: MESSAGE`
//! and `mailpulse check-config` must print exactly `FILE:LINE:COL: MESSAGE`
//! and exit 1. `valid-*.toml` fixtures must pass.

use crate::support;

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

/// `mkfifo PATH` (no `unsafe` libc call in tests).
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Runs `mailpulse ARGS --config PATH`, killing it after `within`; returns
/// (exit code, stdout, stderr) or panics if it had to be killed.
fn run_bounded(args: &[&str], path: &Path, within: std::time::Duration) -> (i32, String, String) {
    let mut child = Command::new(support::bin())
        .args(args)
        .arg("--config")
        .arg(path)
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "mailpulse {args:?} still running after {within:?}; stderr so far: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// issue 21, break 9: every file the configuration reads (secrets,
/// certificates, keys) must be a regular file of bounded size. A FIFO used
/// to hang `check-config` and `/dev/zero` to read until memory ran out; now
/// each is refused at once, naming file, line, column and key.
#[test]
fn secret_and_certificate_files_must_be_small_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let big = support::write_file(dir.path(), "big.pw", &"x".repeat(64 * 1024 + 1));
    let fifo_s = fifo.display().to_string();
    let big_s = big.display().to_string();
    let target =
        "[[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"https://owa.example.org/\"\n";
    let cases: Vec<(String, String)> = vec![
        (
            format!("{target}username = \"probe\"\npassword_file = \"{fifo_s}\"\n"),
            format!("6:17: target[0].password_file: cannot read secret file {fifo_s}: not a regular file (a FIFO)"),
        ),
        (
            format!("{target}username = \"probe\"\npassword_file = \"/dev/zero\"\n"),
            "6:17: target[0].password_file: cannot read secret file /dev/zero: not a regular file (a character device)".to_string(),
        ),
        (
            format!("{target}bearer_token_file = \"{big_s}\"\n"),
            format!("5:21: target[0].bearer_token_file: cannot read secret file {big_s}: larger than 65536 bytes"),
        ),
        (
            format!("{target}tls_ca_file = \"{fifo_s}\"\n"),
            format!("5:15: target[0].tls_ca_file: cannot read certificates from {fifo_s}: not a regular file (a FIFO)"),
        ),
        (
            format!("[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"https://hooks.example.org/\"\ntoken_file = \"{fifo_s}\"\n"),
            format!("5:14: receiver[0].token_file: cannot read secret file {fifo_s}: not a regular file (a FIFO)"),
        ),
        (
            format!("[agent.web]\ntls_cert_file = \"{fifo_s}\"\ntls_key_file = \"/dev/zero\"\n"),
            format!("2:17: agent.web.tls_cert_file: cannot read certificates from {fifo_s}: not a regular file (a FIFO)\n\
                     {{FILE}}:3:16: agent.web.tls_key_file: cannot read a private key from /dev/zero: not a regular file (a character device)"),
        ),
    ];
    let mut failures = Vec::new();
    for (i, (text, expect)) in cases.iter().enumerate() {
        let path = support::write_file(dir.path(), &format!("c{i}.toml"), text);
        let started = tokio::time::Instant::now();
        let (code, stdout, stderr) =
            run_bounded(&["check-config"], &path, std::time::Duration::from_secs(10));
        let want = format!(
            "{}:{}\n",
            path.display(),
            expect.replace("{FILE}", &path.display().to_string())
        );
        if code != 1 || stderr != want || !stdout.is_empty() {
            failures.push(format!("case {i}\n  want: {want}  got ({code}): {stderr}"));
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "case {i} took {:?}",
            started.elapsed()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// issue 21, break 9: `run` refuses to start on a FIFO secret (it used to
/// hang before binding anything, deaf to SIGTERM).
#[test]
fn run_refuses_to_start_on_a_fifo_secret() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let port = support::free_port();
    let path = support::write_file(
        dir.path(),
        "c.toml",
        &format!(
            "[agent]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n[[target]]\nname = \"owa\"\nkind = \"http\"\n\
             url = \"https://owa.example.org/\"\nusername = \"probe\"\npassword_file = \"fifo\"\n",
            dir.path().join("state").display()
        ),
    );
    let (code, _, stderr) = run_bounded(&["run"], &path, std::time::Duration::from_secs(10));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:9:17: target[0].password_file: cannot read secret file {}: not a regular file (a FIFO)",
            path.display(),
            fifo.display()
        )),
        "{stderr}"
    );
}

/// issue 21, break 9: a secret file that anyone on the host can read is
/// accepted with a warning naming it (group-readable files are not: that
/// is how a secret is shared with the service's group).
#[test]
fn a_secret_readable_by_others_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pw = support::write_file(dir.path(), "pw", "s3cr3t\n");
    let path = support::write_file(
        dir.path(),
        "c.toml",
        "[[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"https://owa.example.org/\"\nusername = \"probe\"\npassword_file = \"pw\"\n",
    );
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stdout, stderr) = check_config(&path);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(": valid\n"), "{stdout}");
    assert_eq!(
        stderr,
        format!(
            "warning: {}:6:17: target[0].password_file: secret file {} is readable by others (mode 0644); chmod o-r it\n",
            path.display(),
            pw.display()
        )
    );
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, _, stderr) = check_config(&path);
    assert_eq!((code, stderr.as_str()), (0, ""));
}

/// issue 21, break 1: a password or token on an `http://` target is refused
/// (the fixtures `invalid-http-plaintext-*.toml`) unless the target sets
/// `allow_plaintext_auth = true`.
#[test]
fn plaintext_http_auth_is_accepted_only_when_allowed() {
    for name in [
        "invalid-http-plaintext-password.toml",
        "invalid-http-plaintext-token.toml",
    ] {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/config")
            .join(name);
        let text = std::fs::read_to_string(&fixture).unwrap();
        let dir = tempfile::tempdir().unwrap();
        support::write_file(dir.path(), "probe.pw", "s3cr3t\n");
        let allowed = support::write_file(
            dir.path(),
            "c.toml",
            &format!("{text}allow_plaintext_auth = true\n"),
        );
        let (code, stdout, stderr) = check_config(&allowed);
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(stdout.contains(": valid\n"), "{stdout}");
    }
}
