//! Logs as journald and log shippers read them, through the real binary:
//! with stderr on the stream `JOURNAL_STREAM` names, every line starts
//! with its level's sd-daemon priority prefix (`<4>` a warning), also
//! `main`'s last error; a `JOURNAL_STREAM` naming another stream changes
//! nothing; `--log-format json` (or `[agent] log_format = "json"`) writes
//! one JSON object a line. The state directory is logged at start, and
//! secrets never appear. (The same against a real journald, under
//! systemd in a container: `packaging/nspawn-inside.sh`.)

use crate::support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{write_file, Agent};

/// What the secret file holds; it must never reach a log.
const SECRET: &str = "s3cr3t-never-logged";

/// A configuration on `port` whose one target names a secret file every
/// user may read (the agent warns about it at start), its state in
/// `DIR/state`, and `extra` lines in `[agent]`.
fn config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let pw = write_file(dir, "pw", &format!("{SECRET}\n"));
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    write_file(
        dir,
        "c.toml",
        &format!(
            "[agent]\nlisten = \"127.0.0.1:{port}\"\ninstance = \"test\"\nstate_dir = \"state\"\n{extra}\
             [host]\ninterval = \"1s\"\n\
             [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"https://127.0.0.1:9/\"\n\
             interval = \"1m\"\nusername = \"probe\"\npassword_file = \"pw\"\n"
        ),
    )
}

/// `path`'s device and inode as systemd writes them in `JOURNAL_STREAM`
/// (the file is created if missing).
fn stream_id(path: &Path) -> String {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let meta = file.metadata().unwrap();
    format!("{}:{}", meta.dev(), meta.ino())
}

/// The priority of a journal line (`<4>...` is 4), if it has a prefix.
fn priority(line: &str) -> Option<u8> {
    let rest = line.strip_prefix('<')?;
    let (n, _) = rest.split_once('>')?;
    n.parse().ok()
}

/// The agent on [`config`] (with `extra` in `[agent]`), its
/// `JOURNAL_STREAM` naming `stream` (`None`: its own log file, whose device
/// and inode are what systemd would put there; Agent truncates it in
/// place); returned once it has warned about the secret file.
async fn agent_with_stream(dir: &Path, extra: &str, stream: Option<&Path>) -> Agent {
    let port = support::free_port();
    let cfg = config(dir, port, extra);
    let stream = stream_id(stream.unwrap_or(&cfg.with_extension("log")));
    let agent = Agent::start(
        &cfg,
        ([127, 0, 0, 1], port).into(),
        &[("JOURNAL_STREAM", &stream)],
    )
    .await;
    agent
        .wait_until(
            || async { agent.log_text().contains("configuration warning") },
            "the warning about the secret file",
        )
        .await;
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_journal_stream_every_line_carries_its_priority() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_with_stream(dir.path(), "", None).await;

    // A reload of a file with two errors: one event, a line for each error.
    write_file(
        dir.path(),
        "c.toml",
        "[agent]\nlisten = \"nowhere\"\nmemory_trim = \"1s\"\n",
    );
    agent.signal("HUP");
    agent
        .wait_until(
            || async { agent.log_text().contains("agent.memory_trim") },
            "the rejected reload",
        )
        .await;

    let log = agent.log_text();
    for line in log.lines() {
        assert!(
            matches!(priority(line), Some(3 | 4 | 6 | 7)),
            "a line without a priority prefix: {line:?}\n{log}"
        );
    }
    let line_with = |text: &str| {
        log.lines()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no line with {text:?}:\n{log}"))
    };
    let warning = line_with("configuration warning");
    assert!(warning.starts_with("<4> WARN "), "{warning}");
    assert!(warning.contains("readable by others"), "{warning}");
    let state = line_with("state directory");
    assert!(state.starts_with("<6> INFO "), "{state}");
    let state_dir = dir.path().join("state");
    assert!(
        state.contains(&format!("path={}", state_dir.display())),
        "{state}"
    );
    assert!(line_with("configuration loaded").starts_with("<6>"));
    // Both lines of the rejection are errors to journald.
    assert!(line_with("configuration rejected").starts_with("<3>ERROR "));
    assert!(line_with("agent.listen").starts_with("<3>"), "{log}");
    assert!(line_with("agent.memory_trim").starts_with("<3>"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_stream_naming_another_file_is_not_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    // Inherited from a unit whose stderr was the journal; this one's is not.
    let agent = agent_with_stream(dir.path(), "", Some(&dir.path().join("other"))).await;
    let log = agent.log_text();
    for line in log.lines() {
        assert_eq!(priority(line), None, "{line}");
        // A timestamp leads: 2026-12-03T00:39:01.123456Z
        assert!(
            chrono::DateTime::parse_from_rfc3339(line.split(' ').next().unwrap()).is_ok(),
            "{line}"
        );
    }
}

/// Every line of `log` as a JSON object; fails on a line that is not one.
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{log}"));
            for key in ["timestamp", "level", "target", "message"] {
                assert!(v[key].is_string(), "{key} missing: {line}");
            }
            assert!(v["fields"].is_object(), "fields missing: {line}");
            v
        })
        .collect()
}

/// Waits for the warning about the secret file, and returns the log as
/// JSON objects.
async fn json_log_of(agent: &Agent) -> Vec<serde_json::Value> {
    agent
        .wait_until(
            || async { agent.log_text().contains("configuration warning") },
            "the warning about the secret file",
        )
        .await;
    json_lines(&agent.log_text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    // The flag wins over the configuration.
    let cfg = config(dir.path(), port, "log_format = \"text\"\n");
    let agent = Agent::start_with_args(
        &cfg,
        ([127, 0, 0, 1], port).into(),
        &[],
        &["--log-format", "json"],
    )
    .await;
    let lines = json_log_of(&agent).await;
    let find = |message: &str| {
        lines
            .iter()
            .find(|v| v["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} in {lines:#?}"))
    };
    let warning = find("configuration warning");
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["target"], "mailpulse::app");
    let problem = warning["fields"]["problem"].as_str().unwrap();
    assert!(problem.contains("target[0].password_file"), "{problem}");
    assert!(problem.contains("readable by others"), "{problem}");
    let state = find("state directory");
    assert_eq!(state["level"], "INFO");
    assert_eq!(
        state["fields"]["path"],
        dir.path().join("state").display().to_string()
    );
    let ts = state["timestamp"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
        "timestamp {ts}"
    );
    assert!(!agent.log_text().contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_in_the_configuration_and_under_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent_with_stream(dir.path(), "log_format = \"json\"\n", None).await;
    // Each line: the priority prefix (journald strips it), then the object.
    let log = agent.log_text();
    let mut unprefixed = String::new();
    for line in log.lines() {
        let p = priority(line).unwrap_or_else(|| panic!("no prefix: {line}"));
        let json = &line[line.find('>').unwrap() + 1..];
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let want = match v["level"].as_str().unwrap() {
            "ERROR" => 3,
            "WARN" => 4,
            "INFO" => 6,
            _ => 7,
        };
        assert_eq!(p, want, "{line}");
        unprefixed.push_str(json);
        unprefixed.push('\n');
    }
    let lines = json_lines(&unprefixed);
    assert!(lines
        .iter()
        .any(|v| v["message"] == "configuration warning"));
    assert!(!log.contains(SECRET));
}

/// `main`'s last error (here, a configuration that does not exist) is an
/// error to journald too.
#[test]
fn the_last_error_on_the_journal_stream_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr");
    let stream = stream_id(&log);
    let missing = dir.path().join("missing.toml");
    let status = Command::new(support::bin())
        .args(["run", "--config"])
        .arg(&missing)
        .env("JOURNAL_STREAM", &stream)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("<3>mailpulse: error: "), "{text}");
    assert!(text.lines().all(|l| l.starts_with("<3>")), "{text}");

    // Without the journal, the same error as ever.
    let plain = Command::new(support::bin())
        .args(["run", "--config"])
        .arg(&missing)
        .env("JOURNAL_STREAM", &stream)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plain.stderr);
    assert!(text.starts_with("mailpulse: error: "), "{text}");
}

/// `check-config` runs as the unit's `ExecStartPre`: under journald its
/// warnings are warnings and its errors errors, a priority on every line.
#[test]
fn check_config_on_the_journal_stream_prefixes_warnings_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), support::free_port(), "");
    let log = dir.path().join("stderr");
    let stream = stream_id(&log);
    let run = |config: &Path| {
        let status = Command::new(support::bin())
            .args(["check-config", "--config"])
            .arg(config)
            .env("JOURNAL_STREAM", &stream)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .status()
            .unwrap();
        (status.code(), std::fs::read_to_string(&log).unwrap())
    };
    let (code, text) = run(&cfg);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("<4>warning: "), "{text}");
    assert!(text.contains("readable by others"), "{text}");
    assert!(text.lines().all(|l| priority(l) == Some(4)), "{text}");

    // Two errors, a line each, every one an error.
    let bad = write_file(
        dir.path(),
        "bad.toml",
        "[agent]\nlog_format = \"xml\"\n[[target]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"nowhere\"\n",
    );
    let (code, text) = run(&bad);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().all(|l| priority(l) == Some(3)), "{text}");
    assert!(!text.contains(SECRET));
}
