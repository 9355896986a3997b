//! Change windows (issue 18), the command side: `mailpulse window
//! open|extend|close|list` on the local store with its refusals, the
//! `/api/v1/windows` endpoints and their authentication, a `[[window]]`
//! occurrence stored by the daemon, and a fleet found through a real
//! Prometheus where one agent killed with `kill -9` mid-window still has
//! its window after a restart and, when the window is closed fleet-wide,
//! sends its summary (once, as every other agent does) to a webhook sink.
//! The fleet is `support::fleet::Fleet`.

use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::fleet::{output, Fleet};
use support::write_file;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `mailpulse window ARGS --config CONFIG`.
fn window(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["window"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", config.to_str().unwrap()]);
    support::mailpulse(&all)
}

/// `window list --json [--all]`: one object a window.
fn listed(config: &Path, all: bool) -> Vec<Value> {
    let mut args = vec!["list", "--json"];
    if all {
        args.push("--all");
    }
    let out = window(config, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn windows_open_extend_close_and_refusals_exit_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &format!(
            "[agent]\nstate_dir = \"{}\"\n{}\
             [[window]]\nname = \"weekly batch\"\nweekly = \"Sat 22:00\"\nduration = \"6h\"\n\
             time_zone = \"Europe/London\"\nnote = \"planned\"\n",
            dir.path().join("state").display(),
            support::http_target("owa-1", "http://127.0.0.1:9/", "1s", "1s"),
        ),
    );
    let out = window(
        &cfg,
        &[
            "open",
            "batch-07",
            "--for",
            "2h",
            "--targets",
            "owa*",
            "imap*",
            "--tolerance",
            "4",
            "--max-down",
            "2m",
            "--note",
            "30,000 accounts",
            "--by",
            "alice",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(line.starts_with("window batch-07 open from "), "{line}");
    assert!(
        line.contains("(owa*,imap*; tolerance 4x, down 2m, incident 30m)"),
        "{line}"
    );
    // `imap*` matches no configured target: said, and stored anyway.
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: --targets \"imap*\" matches no configured target"),
        "{err}"
    );
    assert!(!err.contains("\"owa*\""), "{err}");

    let rows = listed(&cfg, false);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let w = &rows[0];
    assert_eq!(w["name"], "batch-07");
    assert_eq!(w["state"], "open");
    assert_eq!(w["source"], "command");
    assert_eq!(w["targets"], serde_json::json!(["owa*", "imap*"]));
    assert_eq!(w["tolerance"], 4.0);
    assert_eq!(w["max_down_seconds"], 120.0);
    assert_eq!(w["max_incident_seconds"], 1800.0);
    assert_eq!(w["note"], "30,000 accounts");
    assert_eq!(w["by"], "alice");
    let start: chrono::DateTime<chrono::Utc> = w["starts_at"].as_str().unwrap().parse().unwrap();
    let end: chrono::DateTime<chrono::Utc> = w["ends_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(end - start, chrono::Duration::hours(2));
    // The configured window, not open yet, is listed as scheduled.
    let planned = &rows[1];
    assert_eq!(planned["name"], "weekly batch");
    assert_eq!(planned["state"], "scheduled");
    assert_eq!(planned["source"], "config");
    assert_eq!(planned["id"], Value::Null);

    // Refusals: exit 1, a reason, nothing changed.
    for (args, want) in [
        (
            &["open", "batch-07", "--for", "1h"][..],
            "window \"batch-07\" is already open; extend or close it",
        ),
        (
            &["open", "b", "--for", "0s"][..],
            "--for must be longer than zero",
        ),
        (
            &["open", "b", "--for", "1h", "--tolerance", "0.5"][..],
            "the tolerance must be a factor greater than 1, got 0.5",
        ),
        (
            &["extend", "nope", "--by", "1h"][..],
            "no window \"nope\" is open",
        ),
        (&["close", "nope"][..], "no window \"nope\" is open"),
        (
            &["open", "b", "--for", "soon"][..],
            "invalid value 'soon' for '--for",
        ),
    ] {
        let out = window(&cfg, args);
        let code = if args[0] == "open" && args[3] == "soon" {
            2
        } else {
            1
        };
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "", "{args:?}");
    }
    assert_eq!(listed(&cfg, true).len(), 2, "no refusal stored anything");

    let out = window(&cfg, &["extend", "batch-07", "--by", "1h"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let extended = listed(&cfg, false)[0]["ends_at"].clone();
    let ext: chrono::DateTime<chrono::Utc> = extended.as_str().unwrap().parse().unwrap();
    assert_eq!(ext - start, chrono::Duration::hours(3));
    assert!(text(&out.stdout).contains(&format!("extended until {}", extended.as_str().unwrap())));

    let out = window(&cfg, &["close", "batch-07"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("window batch-07 closed at "));
    let rows = listed(&cfg, false);
    assert_eq!(rows.len(), 1, "a closed window is not listed without --all");
    let rows = listed(&cfg, true);
    assert_eq!(rows[0]["state"], "closed");
    assert!(rows[0]["closed_at"].is_string());
    // The name is free again.
    let out = window(&cfg, &["open", "batch-07", "--for", "1h"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = window(&cfg, &["list"]);
    let table = text(&out.stdout);
    assert!(table.starts_with("NAME "), "{table}");
    assert!(table.contains("weekly batch"), "{table}");
    assert!(table.contains("planned"), "{table}");
}

/// The API: no credentials or a wrong password 401, a read-only user 403
/// (each changing nothing), a writer 200; the window shows in
/// `mailpulse_window_active` within the daemon's poll, and goes away when
/// closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_api_takes_writers_only_and_the_daemon_exports_open_windows() {
    use support::in_process::InProcessAgent;

    let dir = tempfile::tempdir().unwrap();
    let reader = bcrypt::hash("read-pw", 4).unwrap();
    let writer = bcrypt::hash("write-pw", 4).unwrap();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &format!(
            "[agent]\nlisten = \"127.0.0.1:9\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
             [agent.web]\nbasic_auth_users = {{ prom = \"{reader}\" }}\n\
             [agent.api]\nwrite_users = {{ ops = \"{writer}\" }}\n",
            dir.path().join("state").display()
        ),
    );
    let agent = InProcessAgent::start(&cfg).await;
    let addr = agent.addr;
    let prom = Some(("prom", "read-pw"));
    let scrape = || async {
        support::api_request(addr, "GET", "/metrics", prom, "")
            .await
            .1
    };
    let list = || async {
        let (code, body) = support::api_request(addr, "GET", "/api/v1/windows", prom, "").await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Vec<Value>>(&body).unwrap()
    };
    let open = r#"{"name":"batch 1","for":"2h","targets":["owa*"],"tolerance":5,"note":"moves"}"#;
    for (auth, want) in [
        (None, 401),
        (Some(("ops", "wrong")), 401),
        (Some(("prom", "read-pw")), 403),
    ] {
        let (code, body) =
            support::api_request(addr, "POST", "/api/v1/windows/open", auth, open).await;
        assert_eq!(code, want, "{auth:?}: {body}");
        assert!(list().await.is_empty(), "{auth:?} changed nothing");
    }
    let (code, _) = support::api_request(addr, "GET", "/api/v1/windows", None, "").await;
    assert_eq!(code, 401, "reads need the read credentials");

    let ops = Some(("ops", "write-pw"));
    let (code, body) = support::api_request(addr, "POST", "/api/v1/windows/open", ops, open).await;
    assert_eq!(code, 200, "{body}");
    let w: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(w["window"]["name"], "batch 1");
    assert_eq!(
        w["window"]["by"], "ops",
        "the API user is the default author"
    );
    let (code, body) = support::api_request(addr, "POST", "/api/v1/windows/open", ops, open).await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("already open"), "{body}");
    let (code, body) = support::api_request(
        addr,
        "POST",
        "/api/v1/windows/open",
        ops,
        r#"{"name":"x","for":"soon"}"#,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = support::api_request(
        addr,
        "POST",
        "/api/v1/windows/extend",
        ops,
        r#"{"name":"batch 1","by":"30m"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let windows = list().await;
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0]["tolerance"], 5.0);

    agent
        .wait_until(
            || async {
                scrape()
                    .await
                    .contains("mailpulse_window_active{window=\"batch 1\"} 1")
            },
            "the open window in the metrics",
        )
        .await;
    let (code, body) = support::api_request(
        addr,
        "POST",
        "/api/v1/windows/close",
        ops,
        r#"{"name":"batch 1"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    agent
        .wait_until(
            || async {
                !agent
                    .scrape()
                    .await
                    .contains("mailpulse_window_active{window=\"batch 1\"}")
            },
            "the closed window to leave the metrics",
        )
        .await;
    let (code, body) = support::api_request(
        addr,
        "POST",
        "/api/v1/windows/close",
        ops,
        r#"{"name":"batch 1"}"#,
    )
    .await;
    assert_eq!(code, 409, "{body}");
    agent.stop().unwrap();
}

/// A `[[window]]` whose occurrence is open now is stored by the daemon (a
/// configured window is then a stored one) and exported as active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_stores_the_planned_occurrence_open_now() {
    use support::in_process::InProcessAgent;

    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let rfc = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (start, end) = (
        rfc(now - chrono::Duration::minutes(5)),
        rfc(now + chrono::Duration::hours(1)),
    );
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &format!(
            "[agent]\nlisten = \"127.0.0.1:9\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
             [[window]]\nname = \"planned\"\nstart = \"{start}\"\nend = \"{end}\"\n\
             targets = [\"owa*\"]\nmax_incident = \"1h\"\nnote = \"batch 3\"\n",
            dir.path().join("state").display()
        ),
    );
    let agent = InProcessAgent::start(&cfg).await;
    agent
        .wait_until(
            || async {
                agent
                    .scrape()
                    .await
                    .contains("mailpulse_window_active{window=\"planned\"} 1")
            },
            "the planned window in the metrics",
        )
        .await;
    let rows = listed(&cfg, false);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["source"], "config");
    assert_eq!(rows[0]["state"], "open");
    assert_eq!(rows[0]["starts_at"], start.as_str());
    assert_eq!(rows[0]["ends_at"], end.as_str());
    assert_eq!(rows[0]["max_incident_seconds"], 3600.0);
    assert_eq!(rows[0]["note"], "batch 3");
    assert!(rows[0]["id"].is_u64());
    agent.stop().unwrap();
}

/// Issue 18: `window open --prometheus` reaches both agents with one stamp;
/// one agent killed with `kill -9` mid-window has the window after its
/// restart (listed through its API, and exported as active); `window close
/// --prometheus` ends it on both, and each agent, the restarted one
/// included, sends its summary to the webhook sink exactly once, naming the
/// window and its own instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_window_reaches_every_agent_and_survives_a_kill_9() {
    if !support::prometheus::available() {
        return;
    }
    // Each agent probes a healthy `owa` (covered by the window, and its
    // probe count tells the time) and sends summaries to one webhook sink.
    let site = support::HttpServer::start().await;
    site.route("/owa", support::Reply::ok("ok"));
    let sink = support::HttpServer::receiver().await;
    let extra = format!(
        "{}[alerting]\n[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\
         [[route]]\nevent = \"window_summary\"\nreceivers = [\"hook\"]\n",
        support::http_target("owa", &site.url("/owa"), "200ms", "190ms"),
        sink.url("/hook")
    );
    let mut fleet = Fleet::start(2, &extra).await.scraped(&[]).await;
    let url = fleet.prometheus_url();
    let out = fleet
        .run(&[
            "window",
            "open",
            "batch-07",
            "--for",
            "1h",
            "--targets",
            "owa*",
            "--note",
            "batch 7",
            "--prometheus",
            &url,
            "--job",
            "mailpulse",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let lines = text(&out.stdout);
    assert_eq!(lines.lines().count(), 2, "{lines}");
    for a in &fleet.addrs {
        assert!(
            lines.contains(&format!("http://{a}: window batch-07 open from ")),
            "{lines}"
        );
    }
    let spans: std::collections::HashSet<&str> = lines
        .lines()
        .map(|l| l.split(" open from ").nth(1).unwrap())
        .collect();
    assert_eq!(spans.len(), 1, "one stamp for all: {lines}");
    for i in 0..2 {
        fleet
            .agent(i)
            .wait_metric(
                "mailpulse_window_active",
                &[("window", "batch-07")],
                |v| v == Some(1.0),
                "the window active",
            )
            .await;
    }

    fleet.kill_9(1);
    // The fleet change that agent misses is reported agent by agent.
    let out = fleet
        .run(&[
            "window",
            "extend",
            "batch-07",
            "--by",
            "30m",
            "--prometheus",
            &url,
        ])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let lines = text(&out.stdout);
    assert!(
        lines.contains(&format!(
            "http://{}: window batch-07 extended until ",
            fleet.addrs[0]
        )),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("http://{}: FAILED: ", fleet.addrs[1])),
        "{lines}"
    );
    assert!(text(&out.stderr).contains("1 of 2 agent(s) failed"));

    fleet.restart(1).await;
    fleet
        .agent(1)
        .wait_metric(
            "mailpulse_window_active",
            &[("window", "batch-07")],
            |v| v == Some(1.0),
            "the window active",
        )
        .await;
    let agent1 = format!("http://{}", fleet.addrs[1]);
    let out = fleet
        .run(&["window", "list", "--json", "--agent", &agent1])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["name"], "batch-07");
    assert_eq!(rows[0]["state"], "open");
    assert_eq!(rows[0]["note"], "batch 7");
    assert_eq!(rows[0]["agent"], agent1.as_str());
    assert!(
        sink.accepted().is_empty(),
        "no summary while the window is open"
    );

    // The window ends fleet-wide: every agent sends its summary.
    let out = fleet
        .run(&["window", "close", "batch-07", "--prometheus", &url])
        .await;
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let lines = text(&out.stdout);
    for a in &fleet.addrs {
        assert!(
            lines.contains(&format!("http://{a}: window batch-07 closed at ")),
            "{lines}"
        );
    }
    let got = sink.wait_accepted(2, Duration::from_secs(30)).await;
    let mut instances = Vec::new();
    for r in &got {
        let body = r.json();
        assert_eq!(r.path, "/hook");
        assert_eq!(body["event"], "window_summary", "{body:#}");
        let s = &body["summary"];
        assert_eq!(s["window"], "batch-07", "{s:#}");
        assert_eq!(s["note"], "batch 7", "{s:#}");
        assert_eq!(s["closed_early"], true, "{s:#}");
        assert_eq!(s["targets"][0]["target"], "owa", "{s:#}");
        instances.push(s["instance"].as_str().unwrap().to_string());
    }
    instances.sort();
    assert_eq!(instances, ["agent0", "agent1"], "one summary per agent");
    // Exactly once: with both deliveries recorded, a few more seconds of
    // housekeeping (every second; 15 probes of 200 ms) send nothing more.
    for i in 0..2 {
        let agent = fleet.agent(i);
        agent
            .wait_metric(
                "mailpulse_outbox_pending",
                &[],
                |v| v == Some(0.0),
                "the summary's delivery to be recorded",
            )
            .await;
        let now = agent.probes("owa", "total").await;
        agent
            .wait_metric(
                "mailpulse_probe_duration_seconds_count",
                &[("target", "owa"), ("phase", "total")],
                |v| v.unwrap_or(0.0) >= now + 15.0,
                "more probes",
            )
            .await;
    }
    assert_eq!(sink.accepted().len(), 2, "no summary sent twice");
}

/// Issue 18: silences fleet-wide like windows. The silence API refuses no
/// credentials (401) and a read-only user (403); `silence add --agent ...`
/// stamps one time for all agents, which then names the silence on each of
/// them for `extend` and `remove`; the audit (who added, extended, removed)
/// is kept on every agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_are_added_extended_and_removed_fleet_wide() {
    let reader = bcrypt::hash("read-pw", 4).unwrap();
    let fleet = Fleet::start(
        2,
        &format!("[agent.web]\nbasic_auth_users = {{ prom = \"{reader}\" }}\n"),
    )
    .await;
    let addrs = fleet.addrs.clone();
    let add = r#"{"target":"owa*","for":"1h","reason":"batch"}"#;
    for (auth, want) in [(None, 401), (Some(("prom", "read-pw")), 403)] {
        let (code, body) =
            support::api_request(addrs[0], "POST", "/api/v1/silences/add", auth, add).await;
        assert_eq!(code, want, "{auth:?}: {body}");
    }
    let stored = |addr: SocketAddr| async move {
        let (code, body) = support::api_request(
            addr,
            "GET",
            "/api/v1/silences",
            Some(("prom", "read-pw")),
            "",
        )
        .await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Vec<Value>>(&body).unwrap()
    };
    assert!(
        stored(addrs[0]).await.is_empty(),
        "a refused add stores nothing"
    );

    let silence = |args: &[&str]| output(fleet.to_every_agent(&[&["silence"], args].concat()));
    let out = silence(&[
        "add", "--target", "owa*", "--for", "1h", "--reason", "batch 7", "--by", "alice",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let lines = text(&out.stdout);
    for a in &addrs {
        assert!(
            lines.contains(&format!("http://{a}: silence 1 added: owa* until ")),
            "{lines}"
        );
    }
    let added = lines
        .lines()
        .find_map(|l| l.strip_prefix("added at "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no stamp: {lines}"))
        .to_string();

    // Another silence on one agent only: the ids now differ, the stamp not.
    let (code, body) = support::api_request(
        addrs[1],
        "POST",
        "/api/v1/silences/add",
        Some(("ops", "write-pw")),
        add,
    )
    .await;
    assert_eq!(code, 200, "{body}");

    let out = silence(&["extend", &added, "--by", "30m"]).await;
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout)
            .matches(": silence 1 extended: owa* until ")
            .count(),
        2,
        "{}",
        text(&out.stdout)
    );
    let out = silence(&["remove", &added, "--by", "carol"]).await;
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = silence(&["remove", &added, "--by", "carol"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "a second removal is refused on each agent"
    );
    assert_eq!(
        text(&out.stdout).matches("FAILED: ").count(),
        2,
        "{}",
        text(&out.stdout)
    );
    let out = silence(&["extend", "2020-01-01T00:00:00Z", "--by", "1h"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("no silence added at 2020-01-01T00:00:00Z"),
        "{}",
        text(&out.stdout)
    );

    for a in &addrs {
        let all = stored(*a).await;
        let s = all
            .iter()
            .find(|s| s["created_at"] == added.as_str())
            .unwrap();
        assert_eq!(s["created_by"], "alice");
        assert_eq!(s["removed_by"], "carol");
        assert_eq!(s["extensions"].as_array().unwrap().len(), 1);
        assert!(s["removed_at"].is_string());
    }
    // Reads take the read credentials, as /metrics does.
    let mut list = fleet.to_every_agent(&["silence", "list", "--all"]);
    list.env("MAILPULSE_API_USER", "prom")
        .env("MAILPULSE_API_PASSWORD", "read-pw");
    let out = output(list).await;
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let listed = text(&out.stdout);
    assert_eq!(
        listed
            .matches("removed  batch 7 (by alice; extended at ")
            .count(),
        2,
        "{listed}"
    );
    assert!(listed.contains("removed at "), "{listed}");
    fleet.stop().await;
}
