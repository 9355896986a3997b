//! The fleet set-up end to end: two agents on 127.0.0.1 (different ports and
//! instances), a real Prometheus scraping both with the shipped rules, and a
//! real Alertmanager receiving from the agents and from the rules. A
//! target's latency is raised and lowered; Prometheus's query API shows the
//! degraded series and the incident duration, and Alertmanager shows the
//! alerts firing, then resolved.

use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::alertmanager::Alertmanager;
use support::prometheus::Prometheus;
use support::{wait_until, write_file, Agent, HttpServer, Reply};

/// Starts Prometheus scraping `agents` (their `[agent] instance` and
/// address) as README's fleet section says: each target labelled with the
/// agent's instance name, so Prometheus's `instance` is the agent's.
async fn start_prometheus(
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
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{alertmanager}\"]\n\
         scrape_configs:\n  - job_name: mailpulse\n    static_configs:\n{targets}",
        rules.display(),
    );
    // Send alert updates to Alertmanager every second instead of every minute.
    Prometheus::start(dir, &config, &["--rules.alert.resend-delay=1s"]).await
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
    if !support::prometheus::available() {
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
    let prom = start_prometheus(dir.path(), &addrs, am.addr).await;

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
