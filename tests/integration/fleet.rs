//! The fleet set-up end to end: two agents on 127.0.0.1 (different ports and
//! instances), a real Prometheus scraping both with the shipped rules, and a
//! real Alertmanager receiving from the agents and from the rules. A
//! target's latency is raised and lowered; Prometheus's query API shows the
//! degraded series and the incident duration, and Alertmanager shows the
//! alerts firing, then resolved.

use crate::support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::alertmanager::Alertmanager;
use support::{wait_until, write_file, Agent, HttpServer, Reply};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A real Prometheus, stopped by its PID on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `agents` (their `[agent] instance` and
    /// address) as README's fleet section says: each target labelled with
    /// the agent's instance name, so Prometheus's `instance` is the agent's.
    async fn start(
        dir: &Path,
        agents: &[(&str, SocketAddr)],
        alertmanager: SocketAddr,
    ) -> Prometheus {
        let rules =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/prometheus/mailpulse-rules.yml");
        let targets: String = agents
            .iter()
            .map(|(name, addr)| {
                format!("      - targets: [\"{addr}\"]\n        labels: {{instance: {name}}}\n")
            })
            .collect();
        let config = write_file(
            dir,
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{alertmanager}\"]\n\
                 scrape_configs:\n  - job_name: mailpulse\n    static_configs:\n{targets}",
                rules.display(),
            ),
        );
        let addr: SocketAddr = ([127, 0, 0, 1], support::free_port()).into();
        let log = dir.join("prometheus.log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            // Send alert updates to Alertmanager every second instead of every minute.
            .arg("--rules.alert.resend-delay=1s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let p = Prometheus { child, addr, log };
        if support::answers(addr, "/-/ready", Duration::from_secs(20)).await {
            return p;
        }
        panic!(
            "prometheus did not start:\n{}",
            std::fs::read_to_string(&p.log).unwrap_or_default()
        );
    }

    /// Instant query results: (labels, value) pairs.
    async fn query(&self, promql: &str) -> Vec<(Value, f64)> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let Some((200, body)) =
            support::get(self.addr, &format!("/api/v1/query?query={encoded}")).await
        else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|r| {
                (
                    r["metric"].clone(),
                    r["value"][1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }
}

fn agent_config(port: u16, instance: &str, state: &Path, url: &str, am: SocketAddr) -> String {
    format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\ninstance = \"{instance}\"\nstate_dir = \"{}\"\n[host]\ninterval = \"1s\"\n\
         [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"1s\"\nrecover_for = \"2s\"\n\
         [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"200ms\"\ntimeout = \"190ms\"\n\
         [[receiver]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://{am}\"\nresend_interval = \"1s\"\n",
        state.display()
    )
}

/// Alert names and instances Alertmanager lists as active.
async fn active(am: &Alertmanager) -> Vec<(String, String)> {
    let Some((200, body)) = support::get(
        am.addr,
        "/api/v2/alerts?active=true&silenced=false&inhibited=false",
    )
    .await
    else {
        return Vec::new();
    };
    let list: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    list.as_array()
        .map(|l| {
            l.iter()
                .filter(|a| a["status"]["state"] == "active")
                .map(|a| {
                    (
                        a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                        a["labels"]["instance"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_prometheus_and_alertmanager_see_a_slowdown_come_and_go() {
    if !Path::new(PROMETHEUS).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{PROMETHEUS} is required in CI"
        );
        eprintln!("skipping: {PROMETHEUS} missing (run .ci/install-deps)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(am) = Alertmanager::start_or_skip(dir.path()).await else {
        return;
    };
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));

    let mut agents = Vec::new();
    let mut addrs = Vec::new();
    for instance in ["cas01", "cas02"] {
        let port = support::free_port();
        let cfg = write_file(
            dir.path(),
            &format!("{instance}.toml"),
            &agent_config(
                port,
                instance,
                &dir.path().join(instance),
                &server.url("/owa"),
                am.addr,
            ),
        );
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        agents.push(Agent::start(&cfg, addr, &[]).await);
        addrs.push((instance, addr));
    }
    let prom = Prometheus::start(dir.path(), &addrs, am.addr).await;

    // Both agents are scraped and have learned a baseline.
    wait_until(
        "both agents scraped with a baseline",
        Duration::from_secs(30),
        || async {
            prom.query("mailpulse_target_baseline_seconds{target=\"owa\"}")
                .await
                .len()
                == 2
        },
    )
    .await;

    // Raise the latency: both agents open a slow incident.
    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(80)));
    wait_until(
        "the degraded series in Prometheus",
        Duration::from_secs(30),
        || async {
            let r = prom
                .query("mailpulse_target_degraded{target=\"owa\"} == 1")
                .await;
            r.len() == 2
        },
    )
    .await;
    wait_until(
        "alerts from the agents and from the rules",
        Duration::from_secs(30),
        || async {
            let a = active(&am).await;
            let from_agents = a.iter().filter(|(n, _)| n == "MailpulseSlow").count();
            let from_rules = a.iter().filter(|(n, _)| n == "MailpulseTargetSlow").count();
            from_agents == 2 && from_rules == 2
        },
    )
    .await;
    // One name reaches both: the agents' alerts and the rules' alerts say
    // the same `instance`, the agent's own name.
    let instances = |alert: &str, list: &[(String, String)]| -> Vec<String> {
        let mut v: Vec<String> = list
            .iter()
            .filter(|(n, _)| n == alert)
            .map(|(_, i)| i.clone())
            .collect();
        v.sort();
        v
    };
    let list = active(&am).await;
    assert_eq!(
        instances("MailpulseSlow", &list),
        ["cas01", "cas02"],
        "{list:?}"
    );
    assert_eq!(
        instances("MailpulseTargetSlow", &list),
        ["cas01", "cas02"],
        "{list:?}"
    );
    // The agent's own name on build_info does not collide with it.
    let build = prom.query("mailpulse_build_info").await;
    assert_eq!(build.len(), 2, "{build:?}");
    for (labels, _) in &build {
        assert!(labels.get("exported_instance").is_none(), "{labels}");
        assert_eq!(labels["instance"], labels["agent_instance"], "{labels}");
    }

    // Lower it again: the incidents close with their durations, the alerts resolve.
    server.route("/owa", Reply::ok("ok"));
    wait_until(
        "the incident duration in Prometheus",
        Duration::from_secs(30),
        || async {
            let r = prom
                .query("mailpulse_last_incident_duration_seconds{target=\"owa\"} > 1")
                .await;
            r.len() == 2
        },
    )
    .await;
    // The closed-incident counters existed at zero before the first
    // incident, so increase() counts it and a mean duration is defined.
    wait_until(
        "the first incident in increase() of the closed-incident counters",
        Duration::from_secs(30),
        || async {
            let mean = prom
                .query(
                    "sum by (instance) (increase(mailpulse_incident_closed_seconds_total{target=\"owa\"}[2m])) \
                     / sum by (instance) (increase(mailpulse_incidents_closed_total{target=\"owa\"}[2m])) > 1",
                )
                .await;
            mean.len() == 2
        },
    )
    .await;
    let degraded = prom
        .query("max(mailpulse_target_degraded{target=\"owa\"})")
        .await;
    assert_eq!(degraded.first().map(|(_, v)| *v), Some(0.0));
    let total = prom
        .query("sum(mailpulse_incidents_total{target=\"owa\",kind=\"slow\"})")
        .await;
    assert_eq!(
        total.first().map(|(_, v)| *v),
        Some(2.0),
        "one incident per agent"
    );
    wait_until(
        "every alert resolved in Alertmanager",
        Duration::from_secs(30),
        || async {
            active(&am)
                .await
                .iter()
                .all(|(n, _)| n != "MailpulseSlow" && n != "MailpulseTargetSlow")
        },
    )
    .await;
    drop(agents);
}
