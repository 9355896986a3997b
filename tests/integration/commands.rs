//! Commands that agree (issue 20), through the real binary: one rule for
//! where every command's configuration comes from (`--config`, else
//! /etc/mailpulse/mailpulse.toml if it exists, else the built-in default,
//! said on stderr), a reader that closes standard output early is a normal
//! end for every command (no panic, no error text, the command's own exit
//! code), and `check-config` summarises receivers, routes, maintenance
//! windows and per-target detection overrides without showing a secret.

use crate::support;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::write_file;

/// The default configuration path the commands look at.
const DEFAULT_CONFIG: &str = "/etc/mailpulse/mailpulse.toml";

/// What every command says on stderr when it runs on the built-in default.
const NOTE: &str = "mailpulse: no configuration file (no --config, and /etc/mailpulse/mailpulse.toml does not exist); using the built-in default (host load only: no targets, no receivers)\n";

/// `mailpulse ARGS` with its state directory (for the built-in default,
/// which has no `state_dir`) in `state`.
fn mailpulse_in(state: &Path, args: &[&str]) -> Output {
    Command::new(support::bin())
        .args(args)
        .env("STATE_DIRECTORY", state)
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether the machine has a default configuration file, so that the
/// built-in default cannot be tested here (prints why).
fn default_file_exists() -> bool {
    let exists = std::fs::symlink_metadata(DEFAULT_CONFIG).is_ok();
    if exists {
        eprintln!("skipping: {DEFAULT_CONFIG} exists on this machine, so no command runs on the built-in default");
    }
    exists
}

/// Whether this process runs as root (mount namespaces need it).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// issue 20: without `--config` and without /etc/mailpulse/mailpulse.toml,
/// `run` and `incidents` used the built-in default while `check-config`,
/// `probe`, `silence` and `test-alert` failed with "cannot read
/// configuration". Now every one of them takes the built-in default, says
/// so once on stderr, and where it leaves nothing to do says why.
#[test]
fn without_a_file_every_command_runs_on_the_builtin_default() {
    if default_file_exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();

    let out = mailpulse_in(&state, &["check-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), NOTE);
    let summary = text(&out.stdout);
    assert!(
        summary.starts_with("built-in default: valid\n"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("state in {}, ", state.display())),
        "{summary}"
    );
    assert!(summary.contains("\ntargets: 0\n"), "{summary}");
    assert!(summary.contains("\nreceivers: 0\n"), "{summary}");

    let out = mailpulse_in(&state, &["incidents"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), NOTE);
    assert_eq!(
        text(&out.stdout),
        format!("no incidents recorded in {}\n", state.display())
    );

    // silence keeps its silences in the default state directory, where the
    // daemon on the built-in default looks for them.
    let out = mailpulse_in(
        &state,
        &[
            "silence", "add", "--target", "owa", "--for", "2h", "--reason", "patching",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), NOTE);
    assert!(
        text(&out.stdout).starts_with("silence 1 added: owa until "),
        "{}",
        text(&out.stdout)
    );
    assert!(state.join("mailpulse.redb").exists());
    let out = mailpulse_in(&state, &["silence", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), NOTE);
    let list = text(&out.stdout);
    assert!(list.starts_with("ID "), "{list}");
    assert!(list.contains(" active   patching"), "{list}");
    let out = mailpulse_in(&state, &["silence", "remove", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "silence 1 removed\n");

    // Nothing to probe and no receiver to test: an error that says why,
    // not "cannot read configuration".
    let out = mailpulse_in(&state, &["probe"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{NOTE}mailpulse: error: nothing to probe: the built-in default has no targets; name a file with --config FILE\n"
        )
    );
    assert!(out.stdout.is_empty());
    let out = mailpulse_in(&state, &["test-alert", "--receiver", "pager"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "mailpulse: error: no receiver named \"pager\": the built-in default has no receivers; name the file that defines it with --config FILE\n"
    );
}

/// The rule's first clause: a file named with `--config` must exist, for
/// every command (no falling back to a default).
#[test]
fn a_named_file_that_is_missing_is_an_error_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let m = missing.to_str().unwrap();
    let state = dir.path();
    let why = format!("{m}: cannot read configuration: No such file or directory (os error 2)\n");
    let cases: [&[&str]; 6] = [
        &["check-config", "--config", m],
        &["probe", "--config", m],
        &["incidents", "--config", m],
        &["silence", "list", "--config", m],
        &["test-alert", "--receiver", "pager", "--config", m],
        &["replay", "--csv", m, "--config", m],
    ];
    for args in cases {
        let out = mailpulse_in(state, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        let want = if args[0] == "check-config" {
            why.clone()
        } else {
            format!("mailpulse: error: {why}")
        };
        assert_eq!(stderr, want, "{args:?}");
    }
}

/// The rule's second clause, on the real path: with no `--config`, an
/// /etc/mailpulse/mailpulse.toml that exists is what every command reads
/// (and nothing is said about a built-in default). The file is put there
/// in a private mount namespace (an overlay on /etc that only the command
/// sees), so the machine's /etc is never written. Needs root.
#[test]
fn without_config_the_default_file_is_read_when_it_exists() {
    if !is_root() {
        eprintln!(
            "skipping: not root (an overlay on /etc in a private mount namespace needs root)"
        );
        return;
    }
    let namespaces = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .output();
    if !namespaces.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: no private mount namespace here (unshare --mount): {namespaces:?}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("mailpulse")).unwrap();
    let state = dir.path().join("state");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    write_file(
        &etc.join("mailpulse"),
        "mailpulse.toml",
        &format!(
            "[agent]\nstate_dir = \"{}\"\n[[target]]\nname = \"smtp-local\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\
             [[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n",
            state.display()
        ),
    );
    let in_namespace = |args: &str| -> Option<Output> {
        let script = format!(
            "mount -t overlay overlay -o lowerdir={}:/etc /etc || exit 97; exec {} {args}",
            etc.display(),
            support::bin().display()
        );
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env_remove("STATE_DIRECTORY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if out.status.code() == Some(97) {
            eprintln!(
                "skipping: cannot mount an overlay on /etc here: {}",
                text(&out.stderr)
            );
            return None;
        }
        Some(out)
    };
    let Some(out) = in_namespace("check-config") else {
        return;
    };
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    let summary = text(&out.stdout);
    assert!(
        summary.starts_with(&format!("{DEFAULT_CONFIG}: valid\n")),
        "{summary}"
    );
    assert!(summary.contains("\n  smtp-local "), "{summary}");

    let out = in_namespace("probe").unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("smtp-local"),
        "{}",
        text(&out.stdout)
    );
    drop(listener);

    let out = in_namespace("silence add --for 1h --reason upgrade").unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert!(
        state.join("mailpulse.redb").exists(),
        "the file's state_dir"
    );

    let out = in_namespace("incidents").unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("no incidents recorded in {}\n", state.display())
    );

    // test-alert finds the file's receiver (which nothing answers).
    let out = in_namespace("test-alert --receiver hook").unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .starts_with("mailpulse: error: test notification to hook (webhook) failed"),
        "{}",
        text(&out.stderr)
    );
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
    let store = mailpulse::store::Store::open(state).unwrap();
    support::save_closed_incidents(&store, "owa", n, 100);
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

/// issue 20: `check-config` summarised the agent and the targets only. It
/// lists receivers, routes, maintenance windows and each target's detection
/// overrides now, after the lines it always printed, and shows no secret: a
/// receiver URL only as its origin, a Slack or Teams URL (itself the
/// secret) not at all, secret files by path.
#[test]
fn check_config_summarises_alerting_and_overrides_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("pd.key", "PDKEY-SECRET\n"),
        (
            "slack.url",
            "https://hooks.slack.com/services/T0/B0/SLACKSECRET\n",
        ),
        ("mail.pw", "MAILSECRET\n"),
        ("hook.token", "HOOKTOKEN\n"),
        ("o365.token", "OAUTHTOKEN\n"),
    ] {
        let path = write_file(dir.path(), name, content);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }
    let config = write_file(
        dir.path(),
        "c.toml",
        "[slowdown]\nfor = \"2m\"\n\
         [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"https://owa.example.org/owa/\"\n\
         [target.slowdown]\nfor = \"5m\"\nthreshold = \"2s\"\n\
         [[target]]\nname = \"mx\"\nkind = \"tcp\"\naddress = \"127.0.0.1:25\"\n\
         [[receiver]]\nname = \"pager\"\nkind = \"pagerduty\"\nrouting_key_file = \"pd.key\"\n\
         [[receiver]]\nname = \"chat\"\nkind = \"slack\"\nurl_file = \"slack.url\"\n\
         [[receiver]]\nname = \"teams\"\nkind = \"teams\"\nurl = \"https://prod.example.org/workflows/TEAMSPATH?sig=TEAMSSIG\"\n\
         [[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"https://hooks.example.org:8443/in/HOOKPATH?key=HOOKQUERY\"\n\
         token_file = \"hook.token\"\nsend_resolved = false\nproxy_url = \"http://ops:PROXYPW@proxy.example.org:3128\"\n\
         [[receiver]]\nname = \"mail\"\nkind = \"email\"\nsmtp_address = \"smtp.example.org:587\"\n\
         from = \"mailpulse@example.org\"\nto = [\"ops@example.org\"]\nusername = \"mailpulse\"\npassword_file = \"mail.pw\"\n\
         [[receiver]]\nname = \"o365\"\nkind = \"email\"\nsmtp_address = \"smtp.office365.com:587\"\n\
         from = \"alerts@example.org\"\nto = [\"ops@example.org\"]\nauth = \"xoauth2\"\nusername = \"alerts@example.org\"\ntoken_file = \"o365.token\"\n\
         [[route]]\ntarget = \"owa*\"\nkind = \"http\"\nreceivers = [\"pager\", \"chat\"]\ncontinue = true\n\
         [[route]]\nreceivers = [\"mail\"]\n\
         [[maintenance]]\nname = \"patch\"\ntargets = [\"owa\"]\nweekly = \"Sun 02:00\"\nduration = \"2h\"\n\
         [[maintenance]]\nname = \"move\"\nstart = \"2026-12-05T22:00:00Z\"\nend = \"2026-12-06T02:00:00Z\"\n",
    );
    let out = support::mailpulse(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    let d = dir.path().display();
    // The lines it always printed, unchanged, then the new sections.
    let want = format!(
        "{c}: valid\n\
         agent: instance {instance:?}, metrics on http://127.0.0.1:9717/metrics, state in {state}, log level info\n\
         host: every 15s\n\
         targets: 2\n  \
           owa              http     every 30s    timeout 10s    GET https://owa.example.org/owa/\n  \
           mx               tcp      every 30s    timeout 10s    127.0.0.1:25 tls none\n\
         slowdown: factor 3, min_delta 10ms, for 2m, recover_for 2m\n  \
           owa              overrides for 5m, threshold 2s\n\
         receivers: 6\n  \
           pager            pagerduty    https://events.pagerduty.com, routing key from {d}/pd.key, timeout 10s\n  \
           chat             slack        webhook URL from {d}/slack.url (not shown: it is a secret), timeout 10s\n  \
           teams            teams        webhook URL not shown (it is a secret), timeout 10s\n  \
           hook             webhook      https://hooks.example.org:8443, bearer token from {d}/hook.token, via proxy http://proxy.example.org:3128 (with credentials), timeout 10s, no resolve notices\n  \
           mail             email        smtp smtp.example.org:587 tls starttls, from \"mailpulse@example.org\" to \"ops@example.org\", auth as \"mailpulse\" (password from {d}/mail.pw), timeout 10s\n  \
           o365             email        smtp smtp.office365.com:587 tls starttls, from \"alerts@example.org\" to \"ops@example.org\", auth XOAUTH2 as \"alerts@example.org\" (token from {d}/o365.token, read at every send), timeout 10s\n\
         routes: 2 (tried in order)\n  \
           target \"owa*\", kind http -> pager, chat (continue)\n  \
           every alert -> mail\n\
         maintenance windows: 2\n  \
           \"patch\": owa, every Sun 02:00 UTC for 2h\n  \
           \"move\": all targets, 2026-12-05T22:00:00Z to 2026-12-06T02:00:00Z\n",
        c = config.display(),
        instance = summary_instance(&summary),
        state = summary_state(&summary),
    );
    assert_eq!(summary, want);
    for secret in [
        "PDKEY",
        "SLACKSECRET",
        "services/T0",
        "hooks.slack.com",
        "MAILSECRET",
        "HOOKTOKEN",
        "TEAMSPATH",
        "TEAMSSIG",
        "prod.example.org",
        "HOOKPATH",
        "HOOKQUERY",
        "PROXYPW",
        "ops:",
        "OAUTHTOKEN",
    ] {
        assert!(!summary.contains(secret), "{secret} shown:\n{summary}");
    }
}

/// issue 17: `check-config` lists the `[[slo]]` objectives a soak run is
/// held to, as it understood them, after the alerting sections; a mistake
/// in one is a `file:line:col: key: message` error.
#[test]
fn check_config_lists_the_soak_objectives() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "c.toml",
        "[[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"https://owa.example.org/owa/\"\n\
         [[slo]]\nname = \"owa p95\"\ntargets = [\"owa*\"]\nphases = [\"plateau*\"]\nlatency = \"p95 < 1s\"\n\
         [[slo]]\nname = \"first byte\"\nlatency = \"p99 <= 250ms\"\nstep = \"first_byte\"\n\
         [[slo]]\nname = \"mail available\"\ntargets = [\"smtp*\", \"imap*\"]\nsuccess = \">= 99.9%\"\n\
         [[slo]]\nname = \"no long slowdown\"\nmax_incident = \"5m\"\n",
    );
    let out = support::mailpulse(&["check-config", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(
        summary.ends_with(
            "slos: 4\n  \
               \"owa p95\": p95 of total < 1s (targets owa*; phases plateau*)\n  \
               \"first byte\": p99 of first_byte <= 250ms (every target; every phase)\n  \
               \"mail available\": success >= 99.9% (targets smtp*, imap*; every phase)\n  \
               \"no long slowdown\": no incident longer than 5m (every target; every phase)\n"
        ),
        "{summary}"
    );

    let bad = write_file(
        dir.path(),
        "bad.toml",
        "[[slo]]\nname = \"owa p95\"\nlatency = \"p95 > 1s\"\n",
    );
    let out = support::mailpulse(&["check-config", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!(
            "{}:3:11: slo[0].latency: invalid latency objective \"p95 > 1s\"",
            bad.display()
        )),
        "{}",
        text(&out.stderr)
    );
}

/// The instance name the summary shows (the host name by default).
fn summary_instance(summary: &str) -> String {
    let line = summary.lines().nth(1).unwrap();
    let start = line.find("instance \"").unwrap() + "instance \"".len();
    line[start..start + line[start..].find('"').unwrap()].to_string()
}

/// The state directory the summary shows (the user's default).
fn summary_state(summary: &str) -> String {
    let line = summary.lines().nth(1).unwrap();
    let start = line.find("state in ").unwrap() + "state in ".len();
    line[start..start + line[start..].find(", log level").unwrap()].to_string()
}

/// Text from the file reaches the terminal escaped in the new sections too:
/// a route's target pattern and a mail address can hold anything.
#[test]
fn check_config_escapes_what_a_terminal_would_obey() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "c.toml",
        "[[receiver]]\nname = \"mail\"\nkind = \"email\"\nsmtp_address = \"127.0.0.1:25\"\ntls = \"none\"\n\
         from = \"a\u{202e}b@example.org\"\nto = [\"ops@example.org\"]\n\
         [[route]]\ntarget = \"owa\u{202e}*\"\nreceivers = [\"mail\"]\n\
         [[maintenance]]\nname = \"patch\"\ntargets = [\"owa\u{202e}*\"]\ndaily = \"02:00\"\nduration = \"1h\"\n",
    );
    let out = support::mailpulse(&["check-config", "--config", config.to_str().unwrap()]);
    let summary = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!summary.contains('\u{202e}'), "{summary:?}");
    for escaped in [
        "from \"a\\u{202e}b@example.org\"",
        "  target \"owa\\u{202e}*\" -> mail\n",
        "  \"patch\": owa\\u{202e}*, every day 02:00 UTC for 1h\n",
    ] {
        assert!(summary.contains(escaped), "{escaped} not in {summary}");
    }
}
