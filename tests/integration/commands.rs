//! Commands that agree (issue 20), through the real binary: a reader that
//! closes standard output early is a normal end for every command (no
//! panic, no error text, the command's own exit code).

use crate::support;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::write_file;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `mailpulse ARGS` with its standard output a pipe whose reading end
/// is closed before the command writes anything (a reader that left at
/// once, as `| head -0` or a quit pager). Returns the exit code and stderr.
fn with_stdout_closed(args: &[&str], stdin: &str) -> (Option<i32>, String) {
    let mut child = Command::new(support::bin())
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closing our end now leaves the pipe without a reader.
    drop(child.stdout.take());
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (out.status.code(), text(&out.stderr))
}

/// `n` closed incidents of target `owa` in the store in `state`.
fn store_incidents(state: &Path, n: usize) {
    use mailpulse::store::{incidents as table, Store};
    let store = Store::open(state).unwrap();
    let records: Vec<mailpulse::detect::Incident> = (0..n)
        .map(|i| {
            let start =
                chrono::DateTime::from_timestamp(1_780_000_000 + i as i64 * 600, 0).unwrap();
            serde_json::from_value(serde_json::json!({
                "kind": "slow",
                "started_at": start,
                "detected_at": start + chrono::Duration::seconds(30),
                "recovered_at": start + chrono::Duration::seconds(300),
                "closed_at": start + chrono::Duration::seconds(330),
                "peak_latency": {"secs": 2, "nanos": 0},
                "baseline_at_onset": {"secs": 0, "nanos": 100_000_000},
                "worst_phase": "first_byte",
                "slow_count": 10,
                "failed_count": 0
            }))
            .unwrap()
        })
        .collect();
    for chunk in records.chunks(100) {
        let batch = table::Batch {
            detectors: Vec::new(),
            incidents: chunk.iter().map(|i| ("owa", i)).collect(),
        };
        table::save(&store, &batch).unwrap();
    }
}

/// A configuration in `dir` with its state there and one tcp target at `port`.
fn small_config(dir: &Path, port: u16) -> PathBuf {
    write_file(
        dir,
        "c.toml",
        &format!(
            "[agent]\nstate_dir = \"state\"\n[[target]]\nname = \"smtp-local\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\
             [[maintenance]]\nname = \"patch\"\nweekly = \"Sun 02:00\"\nduration = \"2h\"\n"
        ),
    )
}

/// issue 20: `mailpulse incidents --json | head -1` panicked on the broken
/// pipe ("failed printing to stdout", exit 101); so did every command that
/// printed. A reader that leaves is a normal end now: the command's own exit
/// code, nothing on stderr.
#[test]
fn a_closed_stdout_is_a_normal_end_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = small_config(dir.path(), listener.local_addr().unwrap().port());
    let c = config.to_str().unwrap();
    store_incidents(&dir.path().join("state"), 200);
    let csv = write_file(
        dir.path(),
        "owa.csv",
        &(0..120)
            .map(|i| format!("{},0.1\n", 1_709_251_200 + i * 10))
            .fold("timestamp,value\n".to_string(), |acc, l| acc + &l),
    );
    let cases: Vec<(Vec<&str>, &str, i32)> = vec![
        (vec!["incidents", "--json", "--config", c], "", 0),
        (vec!["incidents", "--config", c], "", 0),
        (vec!["check-config", "--config", c], "", 0),
        (vec!["probe", "--config", c], "", 0),
        (vec!["probe", "--json", "--config", c], "", 0),
        (vec!["replay", "--csv", csv.to_str().unwrap()], "", 0),
        (vec!["silence", "list", "--config", c], "", 0),
        (vec!["hash-password", "--cost", "4"], "s3cret\n", 0),
    ];
    let mut failures = Vec::new();
    for (args, stdin, want) in &cases {
        let (code, stderr) = with_stdout_closed(args, stdin);
        if code != Some(*want) || !stderr.is_empty() {
            failures.push(format!(
                "{args:?}: exit {code:?} (want {want}), stderr: {stderr}"
            ));
        }
    }
    // The command still does what it was asked: the silence is added.
    let (code, stderr) = with_stdout_closed(
        &[
            "silence", "add", "--for", "1h", "--reason", "upgrade", "--config", c,
        ],
        "",
    );
    if code != Some(0) || !stderr.is_empty() {
        failures.push(format!("silence add: exit {code:?}, stderr: {stderr}"));
    }
    let out = support::mailpulse(&["silence", "list", "--config", c]);
    assert!(
        text(&out.stdout).contains(" upgrade"),
        "{}",
        text(&out.stdout)
    );
    // A probe that fails keeps its own exit code, 2.
    drop(listener);
    let (code, stderr) = with_stdout_closed(&["probe", "--config", c], "");
    if code != Some(2) || !stderr.is_empty() {
        failures.push(format!(
            "failing probe: exit {code:?} (want 2), stderr: {stderr}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A write that fails for another reason than a reader that left (a full
/// disk under `> file`) is an error: exit 1 naming it, not a panic (101)
/// and not a silent success.
#[test]
fn a_failed_write_to_stdout_is_an_error() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipping: no /dev/full");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), 9);
    let out = Command::new(support::bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "mailpulse: error: cannot write to standard output: No space left on device (os error 28)\n"
    );
}

/// The issue's own command line: `incidents --json | head -1`, with far
/// more output than a pipe holds, so the command is still writing when
/// `head` exits.
#[test]
fn incidents_json_piped_into_head_ends_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), 9);
    store_incidents(&dir.path().join("state"), 2000);
    let script = format!(
        "{} incidents --json --limit 5000 --config {} | head -1; echo \"exit=${{PIPESTATUS[0]}}\" >&2",
        support::bin().display(),
        config.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let first: serde_json::Value = serde_json::from_str(stdout.trim_end()).unwrap();
    assert_eq!(first["target"], "owa", "{stdout}");
    assert_eq!(text(&out.stderr), "exit=0\n");
}
