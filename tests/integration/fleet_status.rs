//! Issue 19: `mailpulse status --prometheus URL`, the fleet view for the
//! bridge call, against a real Prometheus (Debian's) scraping two
//! in-process agents, one of whose targets is made slow until it opens an
//! incident, and the other one then stopped; and against a Prometheus that is not there, once (exit 1) and
//! watching (the error shown, tried again, Ctrl-C ends it).

use crate::support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::in_process::InProcessAgent;
use support::prometheus::Prometheus;
use support::{wait_until, write_file, HttpServer, Reply};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An agent with quick detector settings and the given `[[target]]`s.
fn agent_config(dir: &Path, name: &str, targets: &str) -> std::path::PathBuf {
    write_file(
        dir,
        &format!("{name}.toml"),
        &format!(
            "[agent]\nlisten = \"127.0.0.1:9\"\ninstance = \"{name}\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
             [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"1s\"\nrecover_for = \"2s\"\n{targets}",
            dir.join(name).display()
        ),
    )
}

/// Runs `mailpulse status ARGS` off the test's runtime.
async fn status(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(support::bin())
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slow_target_comes_first_with_its_open_incident() {
    if !support::prometheus::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    server.route("/web", Reply::ok("ok"));
    let target =
        |name: &str, path: &str| support::http_target(name, &server.url(path), "200ms", "190ms");
    let cas01 =
        InProcessAgent::start(&agent_config(dir.path(), "cas01", &target("owa", "/owa"))).await;
    let cas02 = InProcessAgent::start(&agent_config(
        dir.path(),
        "cas02",
        &format!("{}{}", target("owa", "/web"), target("web", "/web")),
    ))
    .await;
    // As README's fleet section scrapes them: `instance` is the agent's name.
    let scrape: String = [("cas01", cas01.addr), ("cas02", cas02.addr)]
        .iter()
        .map(|(name, addr)| {
            format!("      - targets: [\"{addr}\"]\n        labels: {{instance: {name}}}\n")
        })
        .collect();
    let prom = Prometheus::start(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mailpulse\n    static_configs:\n{scrape}"
        ),
        &[],
    )
    .await;
    wait_until(
        "every target scraped with a baseline",
        Duration::from_secs(30),
        || async {
            prom.query("mailpulse_target_baseline_seconds > 0")
                .await
                .len()
                == 3
        },
    )
    .await;

    // cas01's owa gets slow: its agent opens an incident.
    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(80)));
    wait_until(
        "cas01's open incident in Prometheus",
        Duration::from_secs(30),
        || async {
            prom.query("mailpulse_target_degraded{instance=\"cas01\"} == 1 and on(instance, target) mailpulse_incident_recovered_timestamp_seconds == 0")
                .await
                .len()
                == 1
        },
    )
    .await;

    let url = format!("http://{}", prom.addr);
    let out = status(&["status", "--prometheus", &url]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].ends_with(&format!("{}: 2 agents, 3 targets, 0 down, 1 slow", &url)),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("INSTANCE  TARGET  STATE  LATENCY"),
        "{stdout}"
    );
    assert_eq!(lines.len(), 5, "{stdout}");
    let first: Vec<&str> = lines[2]
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(&first[..3], ["cas01", "owa", "slow"], "{stdout}");
    let age = first.last().unwrap();
    assert!(
        (age.ends_with('s') || age.ends_with('m')) && age[..age.len() - 1].parse::<u64>().is_ok(),
        "an open incident's age: {stdout}"
    );
    for line in &lines[3..] {
        assert!(line.starts_with("cas02 "), "{stdout}");
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[2], "ok", "{stdout}");
        assert_eq!(cells.last(), Some(&"-"), "no open incident: {stdout}");
    }

    // The same as JSON, narrowed to the job.
    let out = status(&[
        "status",
        "--prometheus",
        &url,
        "--job",
        "mailpulse",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["instance"], "cas01");
    assert_eq!(rows[0]["state"], "slow");
    assert_eq!(rows[0]["kind"], "http");
    assert!(rows[0]["incident_age_seconds"].is_u64(), "{rows:?}");
    assert!(rows[0]["ratio"].as_f64().unwrap() > 1.0, "{rows:?}");
    // Another job has none of them.
    let out = status(&["status", "--prometheus", &url, "--job", "other"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("0 agents, 0 targets"),
        "{}",
        text(&out.stdout)
    );

    // cas02 stops: Prometheus cannot scrape it, and the view says so.
    cas02.stop().unwrap();
    wait_until(
        "cas02's failed scrape in Prometheus",
        Duration::from_secs(30),
        || async { prom.query("up{instance=\"cas02\"} == 0").await.len() == 1 },
    )
    .await;
    let out = status(&["status", "--prometheus", &url]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .ends_with("1 agent, 1 target, 0 down, 1 slow; not scraped: cas02"),
        "{stdout}"
    );
    assert!(!stdout.contains("\ncas02 "), "{stdout}");

    drop(prom);
    cas01.stop().unwrap();
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_prometheus_exits_1_with_a_clear_message() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let out = status(&["status", "--prometheus", &url]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot read the fleet's status from {url}")),
        "{stderr}"
    );
    assert!(stderr.contains("prometheus request failed"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn watching_shows_the_error_keeps_trying_and_stops_on_ctrl_c() {
    use tokio::io::AsyncBufReadExt as _;

    let url = format!("http://127.0.0.1:{}", closed_port());
    let mut child = tokio::process::Command::new(support::bin())
        .args([
            "status",
            "--prometheus",
            &url,
            "--watch",
            "--interval",
            "1s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while seen
            .iter()
            .filter(|l: &&String| l.contains("trying again in 1s"))
            .count()
            < 2
        {
            match lines.next_line().await.unwrap() {
                Some(l) => seen.push(l),
                None => break,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "two tries within 20 s: {seen:?}");
    // Not a terminal: one snapshot per interval, a blank line between.
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].contains(&format!("cannot read the fleet's status from {url}: ")),
        "{seen:?}"
    );
    assert_eq!(seen[1], "");
    assert!(
        !seen.iter().any(|l| l.contains('\u{1b}')),
        "no screen clearing: {seen:?}"
    );
    let pid = child.id().unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the watch ends on Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
