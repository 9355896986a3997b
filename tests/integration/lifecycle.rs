//! The daemon's lifecycle through the real binary: SIGTERM and SIGINT stop it
//! cleanly, SIGHUP reloads (adding, keeping and removing targets; a broken
//! file keeps the running configuration), and systemd notifications arrive
//! on a fake `NOTIFY_SOCKET`.

use crate::support;

use std::time::Duration;

use support::{metric, write_file, Agent, HttpServer, Reply};
use tokio::net::UnixDatagram;

fn config(port: u16, targets: &[(&str, &str)]) -> String {
    let mut text = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\ninstance = \"test\"\n[host]\ninterval = \"1s\"\n"
    );
    for (name, url) in targets {
        text.push_str(&support::http_target(name, url, "200ms", "150ms"));
    }
    text
}

fn probe_count(scrape: &str, target: &str) -> f64 {
    metric(
        scrape,
        "mailpulse_probe_duration_seconds_count",
        &[("target", target), ("phase", "total")],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_stop_cleanly_with_exit_0() {
    for sig in ["TERM", "INT"] {
        let server = HttpServer::start().await;
        server.route("/", Reply::ok("ok"));
        let dir = tempfile::tempdir().unwrap();
        let port = support::free_port();
        let cfg = write_file(
            dir.path(),
            "c.toml",
            &config(port, &[("web", &server.url("/"))]),
        );
        let mut agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
        agent.signal(sig);
        let status = agent.wait_exit(Duration::from_secs(5)).await;
        assert_eq!(status.code(), Some(0), "SIG{sig}: {}", agent.log_text());
        assert!(agent.log_text().contains("shutting down"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_keeps_and_removes_targets() {
    let server = HttpServer::start().await;
    server
        .route("/a", Reply::ok("a"))
        .route("/b", Reply::ok("b"))
        .route("/c", Reply::ok("c"));
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &config(port, &[("a", &server.url("/a")), ("c", &server.url("/c"))]),
    );
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
    agent
        .wait_until(
            || async { agent.probes("a", "total").await >= 2.0 },
            "probes of a",
        )
        .await;

    write_file(
        dir.path(),
        "c.toml",
        &config(port, &[("a", &server.url("/a")), ("b", &server.url("/b"))]),
    );
    let before = agent.probes("a", "total").await;
    agent.signal("HUP");
    agent
        .wait_metric(
            "mailpulse_probe_success",
            &[("target", "b")],
            |v| v == Some(1.0),
            "target b",
        )
        .await;
    let scrape = agent.scrape().await;
    // The unchanged target kept its series (no reset), the removed one is gone.
    assert!(
        probe_count(&scrape, "a") >= before,
        "a was reset:\n{scrape}"
    );
    assert_eq!(
        metric(&scrape, "mailpulse_probe_success", &[("target", "c")]),
        None,
        "{scrape}"
    );
    assert_eq!(metric(&scrape, "mailpulse_targets", &[]), Some(2.0));
    assert_eq!(
        metric(&scrape, "mailpulse_config_last_reload_successful", &[]),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_on_sighup_keeps_the_old_one_running() {
    let server = HttpServer::start().await;
    server.route("/a", Reply::ok("a"));
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &config(port, &[("a", &server.url("/a"))]),
    );
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
    agent
        .wait_until(
            || async { agent.probes("a", "total").await >= 1.0 },
            "probes of a",
        )
        .await;
    write_file(
        dir.path(),
        "c.toml",
        "[[target]]\nname = \"a\"\ntimeout = \"5 sec\"\n",
    );
    agent.signal("HUP");
    agent
        .wait_metric(
            "mailpulse_config_last_reload_successful",
            &[],
            |v| v == Some(0.0),
            "reload rejected",
        )
        .await;
    let log = agent.log_text();
    assert!(
        log.contains("configuration rejected") && log.contains("invalid duration \"5 sec\""),
        "{log}"
    );
    let count = agent.probes("a", "total").await;
    agent
        .wait_until(
            || async { agent.probes("a", "total").await > count },
            "a keeps probing",
        )
        .await;
}

/// Receives notifications into `messages` until `until` holds (10 s at most).
async fn recv_until(
    sock: &UnixDatagram,
    messages: &mut Vec<String>,
    until: &dyn Fn(&[String]) -> bool,
) {
    let mut buf = vec![0u8; 4096];
    let wait = async {
        while !until(messages) {
            let n = sock.recv(&mut buf).await.unwrap();
            messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .is_err()
    {
        panic!("notifications so far: {messages:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_sees_ready_watchdog_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let port = support::free_port();
    let cfg = write_file(dir.path(), "c.toml", &config(port, &[]));
    let sock_env = sock_path.to_string_lossy().to_string();
    let mut agent = Agent::start(
        &cfg,
        ([127, 0, 0, 1], port).into(),
        &[("NOTIFY_SOCKET", &sock_env), ("WATCHDOG_USEC", "200000")],
    )
    .await;

    let mut messages: Vec<String> = Vec::new();
    recv_until(&sock, &mut messages, &|m| {
        m.iter().filter(|s| s.contains("WATCHDOG=1")).count() >= 3
    })
    .await;
    let ready = messages
        .iter()
        .position(|m| m.contains("READY=1"))
        .expect("READY=1");
    let first_watchdog = messages
        .iter()
        .position(|m| m.contains("WATCHDOG=1"))
        .unwrap();
    assert!(
        ready < first_watchdog || messages[ready].contains("STATUS="),
        "{messages:?}"
    );

    agent.signal("HUP");
    recv_until(&sock, &mut messages, &|m| {
        m.iter().any(|s| s.contains("RELOADING=1"))
    })
    .await;
    let reloading = messages.iter().find(|s| s.contains("RELOADING=1")).unwrap();
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let n = messages.len();
    recv_until(&sock, &mut messages, &|m| {
        m[n..].iter().any(|s| s.contains("READY=1"))
    })
    .await;

    agent.signal("TERM");
    recv_until(&sock, &mut messages, &|m| {
        m.iter().any(|s| s.contains("STOPPING=1"))
    })
    .await;
    assert_eq!(
        agent.wait_exit(Duration::from_secs(5)).await.code(),
        Some(0)
    );
}

/// In process (`app::run` on 127.0.0.1:0): no signal is involved.
#[tokio::test]
async fn healthz_and_unknown_paths() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(dir.path(), "c.toml", &config(0, &[]));
    let agent = support::in_process::InProcessAgent::start(&cfg).await;
    assert_eq!(
        support::get(agent.addr, "/healthz").await.unwrap(),
        (200, "ok\n".to_string())
    );
    assert_eq!(support::get(agent.addr, "/nope").await.unwrap().0, 404);
}

/// Starts an agent with a fake `NOTIFY_SOCKET`, rewrites its configuration
/// with `make(dir)`, sends SIGHUP, waits for RELOADING=1 (the reload has
/// begun), then sends SIGTERM: the agent must exit 0 within the grace period
/// (plus start-up slack), whatever the reload is stuck on. With `logged`,
/// SIGTERM waits until the log shows that text (the reload's verdict).
async fn sigterm_during_reload(
    make: impl FnOnce(&std::path::Path, &std::path::Path),
    logged: Option<&str>,
) {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let port = support::free_port();
    let cfg = write_file(dir.path(), "c.toml", &config(port, &[]));
    let sock_env = sock_path.to_string_lossy().to_string();
    let mut agent = Agent::start(
        &cfg,
        ([127, 0, 0, 1], port).into(),
        &[("NOTIFY_SOCKET", &sock_env)],
    )
    .await;
    let mut messages: Vec<String> = Vec::new();
    recv_until(&sock, &mut messages, &|m| {
        m.iter().any(|s| s.contains("READY=1"))
    })
    .await;
    make(dir.path(), &cfg);
    agent.signal("HUP");
    recv_until(&sock, &mut messages, &|m| {
        m.iter().any(|s| s.contains("RELOADING=1"))
    })
    .await;
    if let Some(text) = logged {
        agent
            .wait_until(|| async { agent.log_text().contains(text) }, text)
            .await;
    }
    agent.signal("TERM");
    let status = agent
        .wait_exit(mailpulse::app::SHUTDOWN_GRACE + Duration::from_secs(2))
        .await;
    assert_eq!(status.code(), Some(0), "{}", agent.log_text());
}

/// issue 21, break 9: a reload whose configuration points a secret at a FIFO
/// used to block the supervisor in `open`, so SIGTERM was never handled.
/// Now the FIFO is refused and the agent stops on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_agent_after_a_reload_with_a_fifo_secret() {
    sigterm_during_reload(|dir, cfg| {
        let fifo = dir.join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let text = std::fs::read_to_string(cfg).unwrap();
        std::fs::write(
            cfg,
            format!(
                "{text}[[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"https://127.0.0.1:9/\"\n\
                 username = \"probe\"\npassword_file = \"fifo\"\n"
            ),
        )
        .unwrap();
    }, Some("fifo: not a regular file (a FIFO)"))
    .await;
}

/// issue 21, break 9: a reload that is stuck reading (here the configuration
/// file itself became a FIFO nobody writes) runs off the signal task, so
/// SIGTERM still stops the agent within the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_agent_during_a_stuck_reload() {
    sigterm_during_reload(
        |dir, cfg| {
            let fifo = dir.join("c.fifo");
            let status = std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap();
            assert!(status.success());
            std::fs::rename(&fifo, cfg).unwrap();
        },
        None,
    )
    .await;
}

/// issue 21, break 9: a secret file every user may read is logged at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_readable_by_others_is_logged_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pw = write_file(dir.path(), "pw", "s3cr3t\n");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o604)).unwrap();
    let port = support::free_port();
    let text = format!(
        "{}[[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"https://127.0.0.1:9/\"\n\
         interval = \"1m\"\nusername = \"probe\"\npassword_file = \"pw\"\n",
        config(port, &[])
    );
    let cfg = write_file(dir.path(), "c.toml", &text);
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
    let want = format!(
        "target[0].password_file: secret file {} is readable by others (mode 0604); chmod o-r it",
        pw.display()
    );
    agent
        .wait_until(|| async { agent.log_text().contains(&want) }, &want)
        .await;
    assert!(agent.log_text().contains("configuration warning"));
    assert!(!agent.log_text().contains("s3cr3t"));
}
