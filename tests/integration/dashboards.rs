//! The Grafana dashboards under `dashboards/` pass `dashboards/check.sh`: valid against
//! Grafana's dashboard model (JSON Schema generated from `@grafana/schema`), the project's lint
//! rules, and every PromQL expression accepted by a real Prometheus on 127.0.0.1.
//!
//! The script needs node and npm (it installs its pinned npm packages itself) and prometheus
//! (it installs the Debian package when it runs as root). In CI a missing node or npm is a
//! failure; elsewhere the test is skipped with a message. The check runs with a live scrape
//! (`check.sh --scrape FILE`) of a real agent that has been through an incident, with an
//! HTTPS target, a receiver and a soak-test run in progress, so every `mailpulse_*` metric a
//! panel or annotation names must exist.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `program` is an executable on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(program)))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Why the check cannot run on this machine, if it cannot.
fn missing_tools() -> Option<String> {
    let missing: Vec<&str> = ["node", "npm"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if !missing.is_empty() {
        return Some(format!("{} not installed", missing.join(" and ")));
    }
    // check.sh installs prometheus with apt-get, which needs root.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !on_path("prometheus") && !root {
        return Some("prometheus not installed and not root to install it".to_string());
    }
    None
}

/// A scrape of an agent that has been through a slow incident, with an HTTPS
/// target, host collection, a webhook receiver, a soak run in progress and
/// a change window open.
async fn live_scrape(dir: &Path) -> String {
    use std::time::Duration;
    use support::{write_file, Agent, HttpServer, Reply};
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    let (chain, key) = support::tls::self_signed(&["localhost"]);
    let tls = HttpServer::https(chain, key).await;
    let hook = HttpServer::receiver().await;
    let port = support::free_port();
    let cfg = write_file(
        dir,
        "agent.toml",
        &format!(
            "[agent]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n[host]\ninterval = \"1s\"\nprocesses = [\"mailpulse\"]\n\
             [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
             [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\n\
             [[target]]\nname = \"owa-tls\"\nkind = \"http\"\nurl = \"https://localhost:{}/\"\ninterval = \"1s\"\n\
             tls_insecure_skip_verify = true\nip_family = \"ipv4\"\n\
             [[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            dir.join("state").display(),
            server.url("/owa"),
            tls.addr.port(),
            hook.url("/hook"),
        ),
    );
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
    let has = |v: Option<f64>| v.is_some();
    agent.wait_baseline("owa").await;
    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(60)));
    agent.wait_degraded("owa", true, "an incident").await;
    server.route("/owa", Reply::ok("ok"));
    agent
        .wait_metric(
            "mailpulse_last_incident_duration_seconds",
            &[("target", "owa")],
            has,
            "the incident to close",
        )
        .await;
    agent
        .wait_metric(
            "mailpulse_tls_cert_expiry_timestamp_seconds",
            &[("target", "owa-tls")],
            has,
            "the tls target",
        )
        .await;
    hook.wait_accepted(2, Duration::from_secs(15)).await;
    // A soak run in progress, so the soak metrics exist.
    let out = support::mailpulse(&[
        "soak",
        "start",
        "golive",
        "--phase",
        "baseline",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent
        .wait_metric(
            "mailpulse_soak_phase_info",
            &[("run", "golive"), ("phase", "baseline")],
            has,
            "the soak phase",
        )
        .await;
    // A change window open, so the window metrics exist.
    let out = support::mailpulse(&[
        "window",
        "open",
        "batch-01",
        "--for",
        "1h",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent
        .wait_metric(
            "mailpulse_window_active",
            &[("window", "batch-01")],
            has,
            "the change window",
        )
        .await;
    agent.scrape().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_pass_their_checks_against_a_live_scrape() {
    let _busy = support::busy();
    if let Some(why) = missing_tools() {
        if std::env::var_os("CI").is_some() {
            panic!("dashboards/check.sh cannot run in CI: {why}");
        }
        eprintln!("skipping: {why} (dashboards/check.sh needs node 20+, npm and prometheus)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scrape = live_scrape(dir.path()).await;
    let scrape_file = dir.path().join("scrape.txt");
    std::fs::write(&scrape_file, scrape).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("dashboards/check.sh"))
        .arg("--scrape")
        .arg(&scrape_file)
        .current_dir(&root)
        .output()
        .expect("run bash dashboards/check.sh");
    assert!(
        out.status.success(),
        "dashboards/check.sh --scrape failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The expression of the annotation `name` in the dashboard `file`, with its
/// `$job`, `$instance` and `$target` variables matching everything.
fn annotation_expr(file: &str, name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file);
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let list = dash["annotations"]["list"].as_array().unwrap();
    let a = list
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{file} has no annotation {name:?}"));
    let expr = a["target"]["expr"].as_str().unwrap();
    ["$job", "$instance", "$target"]
        .iter()
        .fold(expr.to_string(), |e, v| e.replace(v, ".*"))
}

/// Both dashboards draw each incident as one band from its onset (the first
/// bad sample, before the incident was detected) to its recovery, evaluated
/// by a real Prometheus engine (`promtool test rules`) over the two incident
/// timestamps a target's agent exports: a slow incident from minute 10,
/// detected at 13, recovered at 20, and a second one from 40, detected at
/// 43, recovered at 50.
#[test]
fn incident_bands_run_from_onset_to_recovery() {
    let Some(promtool) = support::promtool() else {
        return;
    };
    const NAME: &str = "Incidents, onset to recovery";
    let expr = annotation_expr("dashboards/mailpulse-soak-test.json", NAME);
    assert_eq!(
        expr,
        annotation_expr("dashboards/mailpulse-fleet-overview.json", NAME),
        "the two dashboards draw incidents alike"
    );
    // One value a minute, minutes 0 to 70; `_` is no sample (the agent
    // exports the series from the first detection on).
    let minutes = |f: &dyn Fn(u32) -> Option<u32>| -> String {
        (0..=70)
            .map(|m| f(m).map_or("_".to_string(), |v| v.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let started = minutes(&|m| match m {
        0..=12 => None,
        13..=42 => Some(600),
        _ => Some(2400),
    });
    let recovered = minutes(&|m| match m {
        0..=12 => None,
        13..=19 => Some(0),
        20..=42 => Some(1200),
        43..=49 => Some(0),
        _ => Some(3000),
    });
    let labels = r#"{job="mailpulse", instance="cas01", target="owa"}"#;
    // Minute of evaluation and the band's value there (the onset), if any.
    let expected = [
        (9, None),
        (11, Some(600)), // after the onset, before detection
        (15, Some(600)),
        (19, Some(600)),
        (21, None),
        (39, None),
        (41, Some(2400)),
        (49, Some(2400)),
        (51, None),
    ];
    let tests: Vec<serde_json::Value> = expected
        .iter()
        .map(|(minute, value)| {
            let samples: Vec<serde_json::Value> = value
                .iter()
                .map(|v| serde_json::json!({"labels": r#"{instance="cas01", target="owa"}"#, "value": v}))
                .collect();
            serde_json::json!({"expr": expr, "eval_time": format!("{minute}m"), "exp_samples": samples})
        })
        .collect();
    // JSON is YAML.
    let file = serde_json::json!({
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": format!("mailpulse_incident_started_timestamp_seconds{labels}"), "values": started},
                {"series": format!("mailpulse_incident_recovered_timestamp_seconds{labels}"), "values": recovered},
            ],
            "promql_expr_test": tests,
        }],
    });
    promtool_test(&promtool, &file);
}

/// Issue 17: the soak-test dashboard draws each phase of the selected run as
/// a band while any agent reports it in progress (`mailpulse_soak_phase_info`),
/// one band for the fleet, ending where the next phase begins.
#[test]
fn soak_phase_bands_follow_the_selected_run() {
    let Some(promtool) = support::promtool() else {
        return;
    };
    let expr = annotation_expr("dashboards/mailpulse-soak-test.json", "Soak-test phases")
        .replace("$run", "golive");
    // One value a minute, minutes 0 to 30: 1 while the phase is in
    // progress, a staleness marker when the agent stops exporting it.
    let series = |from: u32, to: u32| -> String {
        (0..=30)
            .map(|m| match m {
                m if m < from => "_",
                m if m < to => "1",
                _ => "stale",
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let info = |instance: &str, run: &str, phase: &str| {
        format!(
            r#"mailpulse_soak_phase_info{{job="mailpulse", instance="{instance}", run="{run}", phase="{phase}"}}"#
        )
    };
    let input = serde_json::json!([
        {"series": info("cas01", "golive", "baseline"), "values": series(2, 10)},
        {"series": info("cas02", "golive", "baseline"), "values": series(2, 10)},
        {"series": info("cas01", "golive", "plateau"), "values": series(10, 20)},
        {"series": info("cas02", "golive", "plateau"), "values": series(10, 20)},
        {"series": info("cas03", "other", "plateau"), "values": series(0, 30)},
    ]);
    let expected = [
        (1, None),
        (5, Some("baseline")),
        (9, Some("baseline")),
        (11, Some("plateau")),
        (19, Some("plateau")),
        (21, None),
    ];
    let tests: Vec<serde_json::Value> = expected
        .iter()
        .map(|(minute, phase)| {
            let samples: Vec<serde_json::Value> = phase
                .iter()
                .map(|p| serde_json::json!({"labels": format!(r#"{{run="golive", phase="{p}"}}"#), "value": 1}))
                .collect();
            serde_json::json!({"expr": expr, "eval_time": format!("{minute}m"), "exp_samples": samples})
        })
        .collect();
    let file = serde_json::json!({
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input, "promql_expr_test": tests}],
    });
    promtool_test(&promtool, &file);
}

/// Issue 18: both dashboards draw each change window as one band while any
/// agent reports it open (`mailpulse_window_active`), from its opening to
/// its end, two windows side by side.
#[test]
fn change_window_bands_run_while_a_window_is_open() {
    let Some(promtool) = support::promtool() else {
        return;
    };
    for file in [
        "dashboards/mailpulse-soak-test.json",
        "dashboards/mailpulse-fleet-overview.json",
    ] {
        let expr = annotation_expr(file, "Change windows");
        let series = |from: u32, to: u32| -> String {
            (0..=30)
                .map(|m| match m {
                    m if m < from => "_",
                    m if m < to => "1",
                    _ => "stale",
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let active = |instance: &str, window: &str| {
            format!(
                r#"mailpulse_window_active{{job="mailpulse", instance="{instance}", window="{window}"}}"#
            )
        };
        let input = serde_json::json!([
            {"series": active("cas01", "batch-1"), "values": series(2, 10)},
            {"series": active("cas02", "batch-1"), "values": series(2, 10)},
            {"series": active("cas01", "batch-2"), "values": series(8, 20)},
        ]);
        let expected: [(u32, &[&str]); 5] = [
            (1, &[]),
            (5, &["batch-1"]),
            (9, &["batch-1", "batch-2"]),
            (15, &["batch-2"]),
            (21, &[]),
        ];
        let tests: Vec<serde_json::Value> = expected
            .iter()
            .map(|(minute, windows)| {
                let samples: Vec<serde_json::Value> = windows
                    .iter()
                    .map(|w| serde_json::json!({"labels": format!(r#"{{window="{w}"}}"#), "value": 1}))
                    .collect();
                serde_json::json!({"expr": expr, "eval_time": format!("{minute}m"), "exp_samples": samples})
            })
            .collect();
        let cases = serde_json::json!({
            "rule_files": [],
            "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": input, "promql_expr_test": tests}],
        });
        promtool_test(&promtool, &cases);
    }
}

/// Runs `promtool test rules` on `file` (a unit-test file, JSON being YAML)
/// and fails with its output unless every case passes.
fn promtool_test(promtool: &Path, file: &serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.test.yml");
    std::fs::write(&path, file.to_string()).unwrap();
    let out = Command::new(promtool)
        .args(["test", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
