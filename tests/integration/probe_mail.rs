//! The mail probes against a real Postfix and Dovecot on 127.0.0.1, started
//! once per test binary by `tests/mail/setup.sh` (and stopped by its watcher
//! when this process exits): SMTP with STARTTLS, implicit TLS and AUTH, IMAP
//! LOGIN and AUTHENTICATE + SELECT, POP3, the mail flow round trip, wrong
//! passwords, and a secret that must never show anywhere.
//!
//! Without the servers (not root, packages missing) these tests skip with a
//! message, except under `CI`, where they fail.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use mailpulse::sample::{FailureReason, Phase, Sample};
use serde_json::Value;
use support::{write_file, Agent};

/// What `setup.sh` wrote to `PREFIX/env`.
struct Servers {
    env: HashMap<String, String>,
}

impl Servers {
    fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from the env file"))
    }

    fn port(&self, key: &str) -> String {
        format!("127.0.0.1:{}", self.get(key))
    }

    /// Keys for TLS and the probe account, with the real password file.
    fn account(&self) -> String {
        format!(
            "tls_ca_file = \"{}\"\nusername = \"{}\"\npassword_file = \"{}\"\n",
            self.get("CA_FILE"),
            self.get("MAIL_USER"),
            self.get("PASSWORD_FILE")
        )
    }
}

fn start_servers() -> Option<Servers> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let prefix = std::env::temp_dir().join(format!("mailpulse-mail-{}", std::process::id()));
    let out = Command::new("bash")
        .arg(root.join("tests/mail/setup.sh"))
        .arg(&prefix)
        .env("MAILPULSE_MAIL_OWNER_PID", std::process::id().to_string())
        .output();
    let failure = match out {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = failure {
        if std::env::var_os("CI").is_some() {
            panic!("the mail servers must start in CI:\n{why}");
        }
        eprintln!(
            "skipping: cannot start Postfix and Dovecot (run .ci/install-deps as root):\n{why}"
        );
        return None;
    }
    let text = std::fs::read_to_string(prefix.join("env")).unwrap();
    let env = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(Servers { env })
}

/// Held by the tests that deliver mail, so the mailbox count one of them
/// checks is not disturbed by the others.
static DELIVERING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The servers, started on first use; `None` means skip.
fn servers() -> Option<&'static Servers> {
    static SERVERS: OnceLock<Option<Servers>> = OnceLock::new();
    SERVERS.get_or_init(start_servers).as_ref()
}

/// Probes one target given as TOML keys (after name and kind) through the library.
async fn probe_one(kind: &str, keys: &str) -> Sample {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("[[target]]\nname = \"t\"\nkind = \"{kind}\"\ntimeout = \"8s\"\n{keys}");
    support::probe_once(&support::load_prober(dir.path(), &text)).await
}

fn phases(s: &Sample) -> Vec<&'static str> {
    s.phases.iter().map(|(p, _)| p.as_str()).collect()
}

fn assert_ok(s: &Sample, want: &[&str]) {
    assert!(s.success(), "{:?}\n{:?}", s.failure, s.notes);
    assert_eq!(phases(s), want);
    let tls = s.tls.as_ref().expect("tls details");
    assert!(tls.version.starts_with("TLSv1."), "{tls:?}");
    assert!(tls.earliest_expiry.is_some(), "{tls:?}");
}

/// A password file with a wrong password.
fn wrong_password(dir: &Path, value: &str) -> PathBuf {
    write_file(dir, "wrong.pw", &format!("{value}\n"))
}

#[tokio::test]
async fn smtp_submission_with_starttls_and_auth_reports_every_phase() {
    let Some(srv) = servers() else { return };
    let keys = format!(
        "address = \"{}\"\ntls_server_name = \"localhost\"\n{}mail_from = \"{user}\"\nrcpt_to = \"{user}\"\n",
        srv.port("SUBMISSION_PORT"),
        srv.account(),
        user = srv.get("MAIL_USER"),
    );
    let s = probe_one("smtp", &keys).await;
    assert_ok(
        &s,
        &[
            "dns",
            "connect",
            "banner",
            "ehlo",
            "starttls",
            "tls",
            "auth",
            "mail_from",
            "rcpt_to",
            "quit",
            "total",
        ],
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("ESMTP mailpulse test server")),
        "{:?}",
        s.notes
    );
}

#[tokio::test]
async fn smtp_implicit_tls_with_auth_login() {
    let Some(srv) = servers() else { return };
    let keys = format!(
        "address = \"{}\"\ntls = \"implicit\"\nauth = \"login\"\n{}",
        srv.port("SMTPS_PORT"),
        srv.account()
    );
    let s = probe_one("smtp", &keys).await;
    assert_ok(
        &s,
        &[
            "dns", "connect", "tls", "banner", "ehlo", "auth", "quit", "total",
        ],
    );
}

#[tokio::test]
async fn an_unknown_recipient_is_a_reply_failure_with_the_code() {
    let Some(srv) = servers() else { return };
    let keys = format!(
        "address = \"{}\"\ntls_ca_file = \"{}\"\nmail_from = \"{}\"\nrcpt_to = \"nobody@mailpulse.test\"\n",
        srv.port("SMTP_PORT"),
        srv.get("CA_FILE"),
        srv.get("MAIL_USER")
    );
    let s = probe_one("smtp", &keys).await;
    let f = s.failure.expect("must fail");
    assert_eq!(f.reason, FailureReason::Reply);
    assert_eq!(f.phase, Phase::RcptTo);
    assert!(
        f.message.starts_with("RCPT TO refused: 550"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn imap_starttls_login_and_select_with_a_message_count() {
    let Some(srv) = servers() else { return };
    let keys = format!("address = \"{}\"\n{}", srv.port("IMAP_PORT"), srv.account());
    let s = probe_one("imap", &keys).await;
    assert_ok(
        &s,
        &[
            "dns",
            "connect",
            "banner",
            "capability",
            "starttls",
            "tls",
            "auth",
            "select",
            "quit",
            "total",
        ],
    );
    assert!(s.messages.is_some());
}

#[tokio::test]
async fn imaps_authenticate_plain() {
    let Some(srv) = servers() else { return };
    let keys = format!(
        "address = \"{}\"\ntls = \"implicit\"\nauth = \"plain\"\n{}",
        srv.port("IMAPS_PORT"),
        srv.account()
    );
    let s = probe_one("imap", &keys).await;
    assert_ok(
        &s,
        &[
            "dns",
            "connect",
            "tls",
            "banner",
            "capability",
            "auth",
            "select",
            "quit",
            "total",
        ],
    );
}

#[tokio::test]
async fn selecting_a_missing_mailbox_is_a_reply_failure() {
    let Some(srv) = servers() else { return };
    let keys = format!(
        "address = \"{}\"\ntls = \"implicit\"\nmailbox = \"Nope\"\n{}",
        srv.port("IMAPS_PORT"),
        srv.account()
    );
    let f = probe_one("imap", &keys).await.failure.expect("must fail");
    assert_eq!((f.reason, f.phase), (FailureReason::Reply, Phase::Select));
    assert!(
        f.message.starts_with("SELECT Nope refused: NO"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn pop3_stls_and_implicit_tls() {
    let Some(srv) = servers() else { return };
    let keys = format!("address = \"{}\"\n{}", srv.port("POP3_PORT"), srv.account());
    let s = probe_one("pop3", &keys).await;
    // The CAPA after STLS adds up into the one `capability` phase.
    assert_ok(
        &s,
        &[
            "dns",
            "connect",
            "banner",
            "capability",
            "starttls",
            "tls",
            "auth",
            "stat",
            "quit",
            "total",
        ],
    );
    let keys = format!(
        "address = \"{}\"\ntls = \"implicit\"\n{}",
        srv.port("POP3S_PORT"),
        srv.account()
    );
    let s = probe_one("pop3", &keys).await;
    assert_ok(
        &s,
        &[
            "dns",
            "connect",
            "tls",
            "banner",
            "capability",
            "auth",
            "stat",
            "quit",
            "total",
        ],
    );
    assert!(s.messages.is_some());
}

#[tokio::test]
async fn tcp_with_tls_reads_the_certificate() {
    let Some(srv) = servers() else { return };
    let keys = format!(
        "address = \"{}\"\ntls = \"implicit\"\ntls_ca_file = \"{}\"\n",
        srv.port("IMAPS_PORT"),
        srv.get("CA_FILE")
    );
    assert_ok(
        &probe_one("tcp", &keys).await,
        &["dns", "connect", "tls", "total"],
    );
}

#[tokio::test]
async fn the_mail_flow_round_trip_reports_delivery_and_leaves_nothing() {
    let Some(srv) = servers() else { return };
    let _delivering = DELIVERING.lock().await;
    let count = || async {
        let keys = format!(
            "address = \"{}\"\ntls = \"implicit\"\n{}",
            srv.port("IMAPS_PORT"),
            srv.account()
        );
        probe_one("imap", &keys)
            .await
            .messages
            .expect("a message count")
    };
    let before = count().await;
    let keys = format!(
        "smtp_address = \"{}\"\nimap_address = \"{}\"\nimap_tls = \"implicit\"\n{}",
        srv.port("SUBMISSION_PORT"),
        srv.port("IMAPS_PORT"),
        srv.account()
    );
    for _ in 0..2 {
        let s = probe_one("mailflow", &keys).await;
        assert_ok(
            &s,
            &[
                "prepare", "submit", "delivery", "fetch", "delete", "quit", "total",
            ],
        );
        let delivery = s.phase(Phase::Delivery).unwrap();
        assert!(delivery < Duration::from_secs(5), "{delivery:?}");
    }
    // Every probe message was deleted again.
    assert_eq!(count().await, before);
}

#[tokio::test]
async fn a_wrong_password_fails_at_the_auth_step_with_reason_auth() {
    let Some(srv) = servers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = wrong_password(dir.path(), "not-the-password");
    let account = format!(
        "tls_ca_file = \"{}\"\nusername = \"{}\"\npassword_file = \"{}\"\n",
        srv.get("CA_FILE"),
        srv.get("MAIL_USER"),
        pw.display()
    );
    let cases = [
        (
            "smtp",
            format!("address = \"{}\"\n", srv.port("SUBMISSION_PORT")),
            Phase::Auth,
        ),
        (
            "imap",
            format!("address = \"{}\"\n", srv.port("IMAP_PORT")),
            Phase::Auth,
        ),
        (
            "pop3",
            format!("address = \"{}\"\n", srv.port("POP3_PORT")),
            Phase::Auth,
        ),
        (
            "mailflow",
            format!(
                "smtp_address = \"{}\"\nimap_address = \"{}\"\n",
                srv.port("SUBMISSION_PORT"),
                srv.port("IMAP_PORT")
            ),
            Phase::Prepare,
        ),
    ];
    for (kind, address, phase) in cases {
        let s = probe_one(kind, &format!("{address}{account}")).await;
        let f = s.failure.unwrap_or_else(|| panic!("{kind} must fail"));
        assert_eq!(
            (kind, f.reason, f.phase),
            (kind, FailureReason::Auth, phase),
            "{}",
            f.message
        );
        assert!(!f.message.contains("not-the-password"), "{}", f.message);
    }
}

/// Runs the binary and returns (exit code, stdout, stderr).
fn run_bin(args: &[&str], cfg: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(support::bin());
    cmd.args(args).arg("--config").arg(cfg);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn all_kinds_config(srv: &Servers, account: &str) -> String {
    format!(
        "[[target]]\nname = \"submission\"\nkind = \"smtp\"\naddress = \"{sub}\"\ntimeout = \"8s\"\n{account}\n\
         [[target]]\nname = \"imap\"\nkind = \"imap\"\naddress = \"{imap}\"\ntimeout = \"8s\"\n{account}\n\
         [[target]]\nname = \"pop3s\"\nkind = \"pop3\"\naddress = \"{pop3s}\"\ntls = \"implicit\"\ntimeout = \"8s\"\n{account}\n\
         [[target]]\nname = \"flow\"\nkind = \"mailflow\"\nsmtp_address = \"{smtps}\"\nsmtp_tls = \"implicit\"\nimap_address = \"{imap}\"\ntimeout = \"8s\"\n{account}\n",
        sub = srv.port("SUBMISSION_PORT"),
        imap = srv.port("IMAP_PORT"),
        pop3s = srv.port("POP3S_PORT"),
        smtps = srv.port("SMTPS_PORT"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_the_dialogue_of_every_kind() {
    let Some(srv) = servers() else { return };
    let _delivering = DELIVERING.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(dir.path(), "c.toml", &all_kinds_config(srv, &srv.account()));
    let cfg2 = cfg.clone();
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || run_bin(&["probe", "--json"], &cfg2, &[]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let results: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let want: &[(&str, &[&str])] = &[
        (
            "submission",
            &["banner", "ehlo", "starttls", "tls", "auth", "quit"],
        ),
        (
            "imap",
            &[
                "banner",
                "capability",
                "starttls",
                "tls",
                "auth",
                "select",
                "quit",
            ],
        ),
        ("pop3s", &["tls", "banner", "auth", "stat", "quit"]),
        (
            "flow",
            &["prepare", "submit", "delivery", "fetch", "delete", "quit"],
        ),
    ];
    for ((name, steps), r) in want.iter().zip(&results) {
        assert_eq!(r["target"], *name);
        assert_eq!(r["success"], true, "{r}");
        for step in *steps {
            assert!(
                r["phases"][step].as_f64().is_some(),
                "{name}: no {step} in {r}"
            );
        }
        assert!(r["tls"]["earliest_expiry"].is_string(), "{r}");
    }
    let (code, table, _) = tokio::task::spawn_blocking(move || run_bin(&["probe"], &cfg, &[]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{table}");
    assert!(table.contains("imap (imap): ok\n"), "{table}");
    assert!(table.contains("  delivery "), "{table}");
    assert!(table.contains("mailbox INBOX: "), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_from_a_secret_file_never_shows_even_when_auth_fails() {
    let Some(srv) = servers() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A wrong password, so every probe fails at auth and reports it.
    let secret = "Sup3r-Secret-Wr0ng-Passw0rd";
    let pw = wrong_password(dir.path(), secret);
    let encoded = {
        use base64::Engine as _;
        let user = srv.get("MAIL_USER");
        base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{secret}"))
    };
    // The same password through systemd credentials, for check-config.
    let creds = tempfile::tempdir().unwrap();
    write_file(creds.path(), "mail", &format!("{secret}\n"));
    let account = format!(
        "tls_ca_file = \"{}\"\nusername = \"{}\"\npassword_file = \"{}\"\n",
        srv.get("CA_FILE"),
        srv.get("MAIL_USER"),
        pw.display()
    );
    let port = support::free_port();
    let mut text = format!("[agent]\nlisten = \"127.0.0.1:{port}\"\n[host]\nenabled = false\n");
    text.push_str(
        &all_kinds_config(srv, &account)
            .replace("timeout = \"8s\"", "interval = \"4s\"\ntimeout = \"3s\""),
    );
    text.push_str(&format!(
        "[[target]]\nname = \"by-credential\"\nkind = \"imap\"\naddress = \"{}\"\ntls = \"implicit\"\ntls_ca_file = \"{}\"\nusername = \"{}\"\npassword_credential = \"mail\"\ninterval = \"4s\"\ntimeout = \"3s\"\n",
        srv.port("IMAPS_PORT"),
        srv.get("CA_FILE"),
        srv.get("MAIL_USER"),
    ));
    let cfg = write_file(dir.path(), "c.toml", &text);
    let creds_dir = creds.path().to_str().unwrap().to_string();

    let mut outputs = Vec::new();
    let cfg2 = cfg.clone();
    let cd = creds_dir.clone();
    let runs = tokio::task::spawn_blocking(move || {
        let env = [
            ("CREDENTIALS_DIRECTORY", cd.as_str()),
            ("RUST_LOG", "trace"),
        ];
        vec![
            run_bin(&["check-config"], &cfg2, &env),
            run_bin(&["probe"], &cfg2, &env),
            run_bin(&["probe", "--json"], &cfg2, &env),
        ]
    })
    .await
    .unwrap();
    assert_eq!(runs[0].0, 0, "{:?}", runs[0]);
    assert_eq!(runs[1].0, 2, "{:?}", runs[1]);
    let json: Vec<Value> = serde_json::from_str(&runs[2].1).unwrap();
    for r in &json {
        assert_eq!(r["reason"], "auth", "{r}");
    }
    for (code, out, err) in runs {
        outputs.push(format!("exit {code}\n{out}\n{err}"));
    }

    let agent = Agent::start(
        &cfg,
        ([127, 0, 0, 1], port).into(),
        &[("RUST_LOG", "trace"), ("CREDENTIALS_DIRECTORY", &creds_dir)],
    )
    .await;
    agent
        .wait_until(
            || async {
                let s = agent.scrape().await;
                ["submission", "imap", "pop3s", "flow", "by-credential"]
                    .iter()
                    .all(|t| {
                        support::metric(
                            &s,
                            "mailpulse_probe_failures_total",
                            &[("target", t), ("reason", "auth")],
                        )
                        .is_some_and(|n| n >= 1.0)
                    })
            },
            "every target failed at auth",
        )
        .await;
    outputs.push(agent.scrape().await);
    outputs.push(agent.log_text());
    assert!(
        outputs[outputs.len() - 1].contains("AUTH PLAIN <credentials>"),
        "the trace log shows the dialogue, redacted"
    );
    for out in &outputs {
        assert!(!out.contains(secret), "the password leaked:\n{out}");
        assert!(
            !out.contains(&encoded),
            "the encoded password leaked:\n{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_exports_mail_phases_that_pass_promtool() {
    let Some(srv) = servers() else { return };
    let _delivering = DELIVERING.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let mut text = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\nphase_histograms = true\n[host]\nenabled = false\n"
    );
    text.push_str(&all_kinds_config(srv, &srv.account()).replace(
        "timeout = \"8s\"",
        "interval = \"2s\"\ntimeout = \"1500ms\"",
    ));
    let cfg = write_file(dir.path(), "c.toml", &text);
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
    agent
        .wait_until(
            || async {
                let s = agent.scrape().await;
                ["submission", "imap", "pop3s", "flow"].iter().all(|t| {
                    support::metric(&s, "mailpulse_probe_success", &[("target", t)]) == Some(1.0)
                })
            },
            "every mail target succeeded",
        )
        .await;
    let scrape = agent.scrape().await;
    // A message the agent submitted just before it stops still arrives:
    // let it land before other tests count the mailbox.
    drop(agent);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (target, phase) in [
        ("submission", "starttls"),
        ("imap", "select"),
        ("pop3s", "stat"),
        ("flow", "delivery"),
    ] {
        let labels = [("target", target), ("phase", phase)];
        assert!(
            support::metric(&scrape, "mailpulse_probe_duration_seconds_count", &labels).is_some(),
            "{target} {phase}"
        );
    }
    assert!(support::metric(
        &scrape,
        "mailpulse_probe_mailbox_messages",
        &[("target", "imap")]
    )
    .is_some());
    assert!(
        support::metric(
            &scrape,
            "mailpulse_tls_cert_expiry_timestamp_seconds",
            &[("target", "submission")]
        )
        .is_some(),
        "STARTTLS connections report their certificate too"
    );
    support::promtool_check(&scrape);
}
