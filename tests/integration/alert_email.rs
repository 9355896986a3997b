//! The `email` receiver against a real Postfix on 127.0.0.1 (submission with
//! STARTTLS required and SASL AUTH through Dovecot; implicit TLS on the
//! smtps port), set up by the mail probes' `tests/mail/setup.sh` in a private
//! prefix: a firing and a resolved notification land in the recipient's
//! maildir, in order, and a wrong password is a permanent error.
//!
//! Without Postfix (or root) the test skips with a message, unless `CI` is
//! set, in which case it fails.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use mailpulse::alert::{self, AlertEvent};
use mailpulse::config::alerting::parse;
use mailpulse::store::Store;
use support::delivery::{self, Delivery};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/mail")
        .join(name)
}

/// The servers of `setup.sh`, stopped (by recorded PID) on drop.
struct Postfix {
    prefix: PathBuf,
    env: HashMap<String, String>,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("stop.sh"))
            .arg(&self.prefix)
            .status();
    }
}

fn start_postfix(prefix: &Path) -> Result<Postfix, String> {
    let out = Command::new("bash")
        .arg(script("setup.sh"))
        .arg(prefix)
        // Its watcher stops the servers should this process die first.
        .env("MAILPULSE_MAIL_OWNER_PID", std::process::id().to_string())
        .output()
        .map_err(|e| format!("cannot run setup.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cannot start Postfix and Dovecot (run .ci/install-deps as root): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let env = std::fs::read_to_string(prefix.join("env"))
        .map_err(|e| format!("no env file: {e}"))?
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(Postfix {
        prefix: prefix.to_path_buf(),
        env,
    })
}

/// The issue's example incident on `owa`, started 603 s ago.
fn event(key: &str) -> AlertEvent {
    AlertEvent {
        target: "owa".into(),
        ..delivery::slow(key, Utc::now() - chrono::Duration::seconds(603))
    }
}

/// The receiver: `port_key` names the port in the env file, `tls` its mode.
fn receiver_toml(pf: &Postfix, port_key: &str, tls: &str, password_file: &str) -> String {
    format!(
        r#"
        [[receiver]]
        name = "mail"
        kind = "email"
        smtp_address = "127.0.0.1:{}"
        tls = "{tls}"
        from = "mailpulse@agent.test"
        to = ["{}"]
        username = "{}"
        password_file = "{password_file}"
        tls_ca_file = "{}"
        hello = "agent.test"
        "#,
        pf.env[port_key], pf.env["MAIL_USER"], pf.env["MAIL_USER"], pf.env["CA_FILE"]
    )
}

/// Where mail for the test user lands (setup.sh's virtual mailbox map).
fn maildir(pf: &Postfix) -> PathBuf {
    let user = &pf.env["MAIL_USER"];
    let (local, domain) = user.split_once('@').unwrap();
    pf.prefix
        .join("mail")
        .join(domain)
        .join(local)
        .join("Maildir")
}

async fn wait_for_mail(pf: &Postfix, n: usize) -> Vec<String> {
    support::wait_until_or(
        &format!("{n} mails"),
        Duration::from_secs(30),
        || {
            let log = std::fs::read_to_string(pf.prefix.join("postfix.log")).unwrap_or_default();
            format!("postfix log:\n{log}")
        },
        || async {
            let mails = mailbox(&maildir(pf));
            (mails.len() >= n).then_some(mails)
        },
    )
    .await
}

/// The messages in the maildir, oldest first.
fn mailbox(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("new"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    // Maildir names start with the delivery time in seconds, then a sequence.
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_reaches_a_real_postfix_over_starttls_with_auth() {
    let dir = tempfile::tempdir().unwrap();
    let pf = match start_postfix(&dir.path().join("servers")) {
        Ok(pf) => pf,
        Err(why) if std::env::var_os("CI").is_some() => panic!("{why}"),
        Err(why) => {
            eprintln!("skipping: {why}");
            return;
        }
    };
    let config = parse(
        &receiver_toml(&pf, "SUBMISSION_PORT", "starttls", &pf.env["PASSWORD_FILE"]),
        dir.path(),
        "agent.test",
    )
    .unwrap();
    let d = Delivery::open(config, &dir.path().join("state"));
    let firing = event("e1");
    d.enqueue(&firing);
    d.enqueue(&delivery::resolved_at(&firing, Utc::now()));

    let mails = wait_for_mail(&pf, 2).await;

    assert_eq!(mails.len(), 2);
    let first = &mails[0];
    assert!(
        first.contains("Subject: [mailpulse] owa slow (critical)"),
        "{first}"
    );
    assert!(first.contains("X-Mailpulse-Status: firing"), "{first}");
    assert!(first.contains("From: mailpulse@agent.test"));
    assert!(first.contains("owa slow since "), "{first}");
    assert!(first.contains("latency 3.8 s against a 180 ms baseline (21x)"));
    // Postfix records that the submission was authenticated over TLS.
    assert!(first.contains("ESMTPSA"), "{first}");
    let second = &mails[1];
    assert!(
        second.contains("Subject: [mailpulse] owa recovered (critical)"),
        "{second}"
    );
    assert!(
        second.contains("after 10m 3s (detected 61 s after onset, peak 6.2 s)"),
        "{second}"
    );
    assert_eq!(
        d.metrics.count(
            "mail",
            mailpulse::metrics::alert::NotificationResult::Delivered
        ),
        2
    );
    d.stop().await;

    // A wrong password is refused for good, not retried forever.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let config = parse(
        &receiver_toml(
            &pf,
            "SUBMISSION_PORT",
            "starttls",
            &wrong.display().to_string(),
        ),
        dir.path(),
        "agent.test",
    )
    .unwrap();
    let ctx = alert::ReceiverContext {
        store: Store::in_memory().unwrap(),
        clock: mailpulse::clock::system(),
        external_url: None,
    };
    let receiver = alert::build_receiver(&config.receivers[0], &ctx).unwrap();
    let err = receiver.send(&event("e2")).await.unwrap_err();
    assert!(!err.is_retriable(), "{err}");
    assert!(err.to_string().contains("535"), "{err}");

    // Implicit TLS (port 465 style) works too.
    let config = parse(
        &receiver_toml(&pf, "SMTPS_PORT", "tls", &pf.env["PASSWORD_FILE"]),
        dir.path(),
        "agent.test",
    )
    .unwrap();
    let receiver = alert::build_receiver(&config.receivers[0], &ctx).unwrap();
    receiver.send(&event("e3")).await.unwrap();
    let mails = wait_for_mail(&pf, 3).await;
    assert!(
        mails[2].contains("X-Mailpulse-Incident: e3"),
        "{}",
        mails[2]
    );
}
