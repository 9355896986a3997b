//! Soak-test runs: `mailpulse soak start|phase|end|list` on the local store,
//! their refusals, and the marks surviving a restart of the store.

use crate::support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::fleet::{self, Fleet};
use support::write_file;

fn soak(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["soak"];
    all.extend_from_slice(args);
    let c = config.to_str().unwrap();
    all.extend_from_slice(&["--config", c]);
    support::mailpulse(&all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn runs(config: &Path) -> Vec<Value> {
    let out = soak(config, &["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn runs_are_marked_in_order_and_refusals_exit_1_changing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &format!(
            "[agent]\nstate_dir = \"{}\"\n[soak]\nkeep_runs = 2\n",
            state.display()
        ),
    );
    // Nothing to end or advance yet.
    for args in [&["end"][..], &["phase", "ramp"][..]] {
        let out = soak(&cfg, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("no soak run is active"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = soak(
        &cfg,
        &[
            "start",
            "golive",
            "--phase",
            "baseline",
            "--note",
            "1x users",
            "--at",
            "2026-12-05T10:00:00Z",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "soak run golive started at 2026-12-05T10:00:00Z (phase baseline)\n"
    );
    // A second run while one is active is refused.
    let out = soak(&cfg, &["start", "other"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("soak run \"golive\" is still active"),
        "{}",
        text(&out.stderr)
    );
    // A mark before the last one would reorder the phases.
    let out = soak(&cfg, &["phase", "ramp", "--at", "2026-12-05T09:00:00Z"]);
    assert_eq!(out.status.code(), Some(1));
    let out = soak(&cfg, &["phase", "plateau", "--at", "2026-12-05T10:30:00Z"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "soak run golive: phase plateau began at 2026-12-05T10:30:00Z\n"
    );
    let out = soak(&cfg, &["end", "--at", "2026-12-05T11:00:00Z"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let listed = runs(&cfg);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let run = &listed[0];
    assert_eq!(run["name"], "golive");
    assert_eq!(run["ended_at"], "2026-12-05T11:00:00Z");
    let phases = run["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    assert_eq!(phases[0]["name"], "baseline");
    assert_eq!(phases[0]["note"], "1x users");
    assert_eq!(phases[0]["ended_at"], "2026-12-05T10:30:00Z");
    assert_eq!(phases[1]["name"], "plateau");

    // `[soak] keep_runs = 2`: the third run drops the first.
    for name in ["second", "third"] {
        assert!(soak(&cfg, &["start", name]).status.success());
        assert!(soak(&cfg, &["end"]).status.success());
    }
    let names: Vec<Value> = runs(&cfg).iter().map(|r| r["name"].clone()).collect();
    assert_eq!(names, ["third", "second"]);

    let out = soak(&cfg, &["list"]);
    assert!(
        text(&out.stdout).contains(" third "),
        "{}",
        text(&out.stdout)
    );
}

/// Issue 17: the daemon notices runs marked by the command while it runs
/// (metrics of the phase in progress), an incident opened during a run
/// carries its run and phase (table, JSON, `--run`), and the marks survive
/// `kill -9`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_exports_the_phase_and_incidents_carry_it() {
    use std::time::Duration;
    use support::{incidents, Agent, Reply};

    let support::owa::Owa {
        server,
        dir: _dir,
        cfg,
        addr,
        mut agent,
    } = support::owa::start("100ms", "90ms", "").await;
    assert_eq!(
        agent
            .metric("mailpulse_soak_phase_info", &[("run", "golive")])
            .await,
        None
    );

    let out = soak(&cfg, &["start", "golive", "--phase", "baseline"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info = [("run", "golive"), ("phase", "baseline")];
    agent
        .wait_metric(
            "mailpulse_soak_phase_info",
            &info,
            |v| v == Some(1.0),
            "the baseline phase",
        )
        .await;
    let out = soak(&cfg, &["phase", "plateau"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plateau = [("run", "golive"), ("phase", "plateau")];
    agent
        .wait_metric(
            "mailpulse_soak_phase_info",
            &plateau,
            |v| v == Some(1.0),
            "the plateau phase",
        )
        .await;
    let scrape = agent.scrape().await;
    assert_eq!(
        support::metric(&scrape, "mailpulse_soak_phase_info", &info),
        None
    );
    let started = support::metric(
        &scrape,
        "mailpulse_soak_phase_started_timestamp_seconds",
        &plateau,
    )
    .unwrap();
    let listed = runs(&cfg);
    let phase_start: chrono::DateTime<chrono::Utc> = listed[0]["phases"][1]["started_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((started - phase_start.timestamp_millis() as f64 / 1000.0).abs() < 0.001);

    // A slowdown during the plateau.
    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(60)));
    agent
        .wait_degraded("owa", true, "the incident to open")
        .await;
    let open = incidents(&cfg);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["run"], "golive");
    assert_eq!(open[0]["phase"], "plateau");

    // kill -9: the run and its phases are still there, and exported again.
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    drop(agent);
    let agent = Agent::start(&cfg, addr, &[]).await;
    agent
        .wait_metric(
            "mailpulse_soak_phase_info",
            &plateau,
            |v| v == Some(1.0),
            "the plateau after the restart",
        )
        .await;
    server.route("/owa", Reply::ok("ok"));
    agent
        .wait_degraded("owa", false, "the incident to close")
        .await;
    let out = soak(&cfg, &["end"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    agent
        .wait_metric(
            "mailpulse_soak_phase_info",
            &plateau,
            |v| v.is_none(),
            "no phase after the end",
        )
        .await;

    let closed = incidents(&cfg);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(
        closed[0]["run"], "golive",
        "the closed record keeps its run"
    );
    assert_eq!(closed[0]["phase"], "plateau");
    let c = cfg.to_str().unwrap();
    let table = support::mailpulse(&["incidents", "--config", c]);
    let table = text(&table.stdout);
    assert!(
        table.contains("RUN") && table.contains("golive") && table.contains("plateau"),
        "{table}"
    );
    let other = support::mailpulse(&["incidents", "--json", "--run", "other", "--config", c]);
    assert!(other.status.success());
    assert_eq!(text(&other.stdout), "");
    let ours = support::mailpulse(&[
        "incidents",
        "--json",
        "--run",
        "golive",
        "--since",
        "1h",
        "--config",
        c,
    ]);
    assert_eq!(text(&ours.stdout).lines().count(), 1);
    let before = support::mailpulse(&[
        "incidents",
        "--json",
        "--until",
        "2020-01-01T00:00:00Z",
        "--config",
        c,
    ]);
    assert_eq!(text(&before.stdout), "");
}

/// Issue 17: the write API refuses no credentials (401), a wrong password
/// (401) and a read-only user (403), each changing nothing; a writer marks
/// runs; reads follow the `/metrics` rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_api_takes_writers_only() {
    use support::in_process::InProcessAgent;

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let reader = bcrypt::hash("read-pw", 4).unwrap();
    let writer = bcrypt::hash("write-pw", 4).unwrap();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &format!(
            "[agent]\nlisten = \"127.0.0.1:9\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
             [agent.web]\nbasic_auth_users = {{ prom = \"{reader}\" }}\n\
             [agent.api]\nwrite_users = {{ ops = \"{writer}\" }}\n",
            state.display()
        ),
    );
    let agent = InProcessAgent::start(&cfg).await;
    let addr = agent.addr;
    let start = r#"{"name":"golive","phase":"baseline","at":"2026-12-05T10:00:00Z"}"#;
    let runs_now = || async {
        let (code, body) = support::api_request(
            addr,
            "GET",
            "/api/v1/soak/runs",
            Some(("prom", "read-pw")),
            "",
        )
        .await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Vec<Value>>(&body).unwrap()
    };
    for (auth, want) in [
        (None, 401),
        (Some(("ops", "wrong")), 401),
        (Some(("prom", "read-pw")), 403),
    ] {
        let (code, body) =
            support::api_request(addr, "POST", "/api/v1/soak/start", auth, start).await;
        assert_eq!(code, want, "{auth:?}: {body}");
        assert!(runs_now().await.is_empty(), "{auth:?} changed nothing");
    }
    // Reads need the read credentials, as /metrics does.
    let (code, _) = support::api_request(addr, "GET", "/api/v1/soak/runs", None, "").await;
    assert_eq!(code, 401);

    let ops = Some(("ops", "write-pw"));
    let (code, body) = support::api_request(addr, "POST", "/api/v1/soak/start", ops, start).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = support::api_request(addr, "POST", "/api/v1/soak/start", ops, start).await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("still active"), "{body}");
    let (code, body) = support::api_request(
        addr,
        "POST",
        "/api/v1/soak/phase",
        ops,
        r#"{"phase":"plateau","at":"2026-12-05T10:30:00Z"}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let runs = runs_now().await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["phases"][1]["started_at"], "2026-12-05T10:30:00Z");
    agent.stop().unwrap();
}

/// Issue 17: a fleet mark goes to every agent with one stamp; an agent that
/// does not take it gets its own line and the command exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_mark_reaches_every_agent_and_reports_the_unreachable_one() {
    let fleet = Fleet::start(2, "").await;
    // Nothing listens there.
    let gone_addr = fleet::closed_addr();
    let mark = |args: &[&str], with_gone: bool| {
        let mut cmd = fleet.to_every_agent(&[&["soak"], args].concat());
        if with_gone {
            cmd.args(["--agent", &format!("http://{gone_addr}")]);
        }
        cmd
    };
    let out = fleet::output(mark(&["start", "golive", "--phase", "baseline"], false)).await;
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let lines = text(&out.stdout);
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(
        lines
            .lines()
            .all(|l| l.contains(": soak run golive started at ")),
        "{lines}"
    );
    // One stamp for all.
    let stamps: std::collections::HashSet<&str> = lines
        .lines()
        .map(|l| l.split(" started at ").nth(1).unwrap())
        .collect();
    assert_eq!(stamps.len(), 1, "{lines}");

    let out = fleet::output(mark(&["phase", "plateau"], true)).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert_eq!(
        lines
            .lines()
            .filter(|l| l.contains(": phase plateau began at "))
            .count(),
        2,
        "{lines}"
    );
    let failed: Vec<&str> = lines.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(failed.len(), 1, "{lines}");
    assert!(
        failed[0].starts_with(&format!("http://{gone_addr}: FAILED: ")),
        "{lines}"
    );
    assert!(text(&out.stderr).contains("1 of 3 agent(s) failed"));

    // Without credentials the agents refuse, agent by agent.
    let mut end = mark(&["end"], false);
    end.env_remove("MAILPULSE_API_USER");
    let out = fleet::output(end).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.contains("FAILED: status 401"))
            .count(),
        2,
        "{}",
        text(&out.stdout)
    );
    fleet.stop().await;
}

/// Issue 17: `--prometheus URL --job JOB` finds the agents in a real
/// Prometheus's targets and marks them all; another job's targets are left
/// out, and without `--job` they are tried too (and fail, exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_found_through_prometheus() {
    if !support::prometheus::available() {
        return;
    }
    let gone_addr = fleet::closed_addr();
    let fleet = Fleet::start(2, "").await.scraped(&[gone_addr]).await;
    let url = fleet.prometheus_url();
    let run = |args: &[&str]| fleet.run(&[&["soak"], args].concat());
    let out = run(&[
        "start",
        "golive",
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
    for a in &fleet.addrs {
        assert!(
            lines.contains(&format!("http://{a}: soak run golive started at ")),
            "{lines}"
        );
    }
    assert_eq!(lines.lines().count(), 2, "{lines}");
    let out = run(&["end", "--prometheus", &url]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let lines = text(&out.stdout);
    assert_eq!(lines.lines().count(), 3, "{lines}");
    assert!(
        lines.contains(&format!("http://{gone_addr}: FAILED: ")),
        "{lines}"
    );
    fleet.stop().await;
}

/// Issue 17: phase boundaries reach the `grafana` receivers through the
/// outbox as one annotation per phase (a point at its start, a region once
/// it ended), tagged `mailpulse`, `soak`, `run:NAME`, `phase:NAME`, and a
/// restart posts no boundary twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phases_become_grafana_annotations_once_across_a_restart() {
    use std::time::Duration;
    use support::{Agent, HttpServer, Reply};

    const WAIT: Duration = Duration::from_secs(20);
    let gf = HttpServer::receiver().await;
    gf.default_reply(Reply::json(r#"{"message":"Annotation added","id":42}"#));
    let receiver = format!(
        "[[receiver]]\nname = \"gf\"\nkind = \"grafana\"\nurl = \"{}\"\n",
        gf.url("/grafana/")
    );
    let support::owa::Owa {
        dir: _dir,
        cfg,
        addr,
        mut agent,
        ..
    } = support::owa::start("100ms", "90ms", &receiver).await;

    let out = soak(&cfg, &["start", "golive", "--phase", "baseline"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = gf.wait_accepted(1, WAIT).await;
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/grafana/api/annotations")
    );
    let first = got[0].json();
    assert_eq!(
        first["tags"],
        serde_json::json!(["mailpulse", "soak", "run:golive", "phase:baseline"])
    );
    assert_eq!(first["text"], "soak run golive: phase baseline");
    assert!(first.get("timeEnd").is_none(), "{first}");
    let listed = runs(&cfg);
    let millis = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp_millis()
    };
    assert_eq!(first["time"], millis(&listed[0]["phases"][0]["started_at"]));

    // The baseline's region closed and the plateau's point posted; then a
    // restart: neither is queued again (the closed baseline, whose
    // annotation id is forgotten, would be posted anew as a region). The
    // stop is SIGTERM, which records the deliveries: a kill -9 in the
    // instant between Grafana's answer and that record sends it again
    // (at least once, as every receiver).
    let out = soak(&cfg, &["phase", "plateau"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    gf.wait_accepted(3, WAIT).await;
    agent.signal("TERM");
    agent.child.wait().unwrap();
    drop(agent);
    let agent = Agent::start(&cfg, addr, &[]).await;
    let out = soak(&cfg, &["end"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The plateau's region closes.
    let closes = |phase: &'static str| {
        gf.accepted().iter().any(|r| {
            r.method == "PATCH" && r.json()["tags"][3] == format!("phase:{phase}").as_str()
        })
    };
    support::wait_until("the plateau's region", WAIT, || async {
        closes("plateau") && closes("baseline")
    })
    .await;
    let got = gf.accepted();
    let listed = runs(&cfg);
    let phases = &listed[0]["phases"];

    let posts: Vec<Value> = got
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.json())
        .collect();
    let patches: Vec<Value> = got
        .iter()
        .filter(|r| r.method == "PATCH")
        .inspect(|r| assert_eq!(r.path, "/grafana/api/annotations/42"))
        .map(|r| r.json())
        .collect();
    let phase_of = |v: &Value| v["tags"][3].as_str().unwrap().to_string();
    let mut posted: Vec<String> = posts.iter().map(phase_of).collect();
    posted.sort();
    assert_eq!(posted, ["phase:baseline", "phase:plateau"], "{got:#?}");
    let mut patched: Vec<String> = patches.iter().map(phase_of).collect();
    patched.sort();
    assert_eq!(patched, ["phase:baseline", "phase:plateau"], "{got:#?}");
    for p in &patches {
        let i = usize::from(phase_of(p) == "phase:plateau");
        assert_eq!(p["time"], millis(&phases[i]["started_at"]));
        assert_eq!(p["timeEnd"], millis(&phases[i]["ended_at"]));
    }
    // No boundary is posted again while the agent keeps reading the ended run.
    agent
        .wait_metric(
            "mailpulse_outbox_pending",
            &[],
            |v| v == Some(0.0),
            "an empty outbox",
        )
        .await;
    let posts = gf.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 2, "{:#?}", gf.requests());
}
