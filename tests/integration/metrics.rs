//! A real scrape of a running agent passes `promtool check metrics` with no
//! output, and carries the contract's metric families. The agent runs in
//! this process (`app::run` on 127.0.0.1:0).

use crate::support;

use support::in_process::InProcessAgent;
use support::{metric, write_file, HttpServer, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_scrape_passes_promtool_and_has_the_contract_families() {
    let server = HttpServer::start().await;
    server
        .route("/ok", Reply::ok("ok"))
        .route("/down", Reply::status(500));
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[host]\ninterval = \"1s\"\nprocesses = [\"mailpulse\"]\n\
         [[target]]\nname = \"ok\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
         [[target]]\nname = \"down\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n",
        server.url("/ok"),
        server.url("/down")
    );
    let cfg = write_file(dir.path(), "c.toml", &text);
    let agent = InProcessAgent::start(&cfg).await;
    agent
        .wait_until(
            || async {
                let s = agent.scrape().await;
                metric(
                    &s,
                    "mailpulse_probe_failures_total",
                    &[("target", "down"), ("reason", "status")],
                )
                .is_some_and(|v| v >= 1.0)
                    && metric(&s, "mailpulse_probe_success", &[("target", "ok")]) == Some(1.0)
            },
            "both targets probed",
        )
        .await;
    let scrape = agent.scrape().await;
    // Failure counters exist from the start, at zero, for every reason.
    assert_eq!(
        metric(
            &scrape,
            "mailpulse_probe_failures_total",
            &[("target", "ok"), ("reason", "timeout")]
        ),
        Some(0.0)
    );
    for family in [
        "mailpulse_probe_success",
        "mailpulse_probe_duration_seconds_bucket",
        "mailpulse_probe_last_duration_seconds",
        "mailpulse_probe_failures_total",
        "mailpulse_probe_schedule_lag_seconds_bucket",
        "mailpulse_build_info",
        "process_resident_memory_bytes",
    ] {
        assert!(
            scrape.lines().any(|l| l.starts_with(family)),
            "{family} missing:\n{scrape}"
        );
    }
    assert_eq!(
        metric(
            &scrape,
            "mailpulse_probe_success",
            &[("target", "down"), ("kind", "http")]
        ),
        Some(0.0)
    );

    support::promtool_check(&scrape);
}

/// The series one target adds to Prometheus from a classic (text) scrape:
/// every sample line that carries its `target` label.
fn series_of(scrape: &str, target: &str) -> Vec<String> {
    let label = format!("target=\"{target}\"");
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(&label))
        .map(|l| {
            l.rsplit_once(' ')
                .map_or(l, |(series, _)| series)
                .to_string()
        })
        .collect()
}

/// The fleet budget (README, "Series per target"): a default target costs
/// at most 40 series, counted as Prometheus counts them; a plain HTTP one 37,
/// leaving room for HTTPS's TLS step, counter and certificate expiry. Its
/// steps still each have their latest duration. `phase_histograms = true`
/// brings back a histogram per step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_target_stays_within_the_series_budget() {
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    // A host name, as a user writes it, so the probe has its DNS step too.
    let url = server.url("/owa").replace("127.0.0.1", "localhost");
    let dir = tempfile::tempdir().unwrap();
    let mut counts = Vec::new();
    for opt_in in [false, true] {
        let text = format!(
            "[agent]\nphase_histograms = {opt_in}\n[host]\nenabled = false\n\
             [slowdown]\nbaseline = \"50ms\"\n\
             [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{url}\"\nip_family = \"ipv4\"\n\
             interval = \"200ms\"\ntimeout = \"150ms\"\n"
        );
        let cfg = write_file(dir.path(), &format!("c-{opt_in}.toml"), &text);
        let agent = InProcessAgent::start(&cfg).await;
        agent
            .wait_until(
                || async {
                    let s = agent.scrape().await;
                    metric(&s, "mailpulse_probe_success", &[("target", "owa")]) == Some(1.0)
                        && metric(
                            &s,
                            "mailpulse_target_baseline_seconds",
                            &[("target", "owa")],
                        )
                        .is_some()
                },
                "the target probed",
            )
            .await;
        let scrape = agent.scrape().await;
        let series = series_of(&scrape, "owa");
        for phase in ["dns", "connect", "first_byte", "transfer", "total"] {
            assert!(
                metric(
                    &scrape,
                    "mailpulse_probe_last_duration_seconds",
                    &[("target", "owa"), ("phase", phase)]
                )
                .is_some(),
                "{phase} has no latest duration:\n{scrape}"
            );
            let histogram = metric(
                &scrape,
                "mailpulse_probe_duration_seconds_count",
                &[("target", "owa"), ("phase", phase)],
            );
            assert_eq!(
                histogram.is_some(),
                opt_in || phase == "total",
                "{phase} histogram (phase_histograms = {opt_in}):\n{scrape}"
            );
        }
        counts.push(series.len());
        if !opt_in {
            assert!(
                series.len() <= 37,
                "{} series for one plain HTTP target:\n{}",
                series.len(),
                series.join("\n")
            );
        }
        agent.stop().unwrap();
    }
    // The opt-in adds four step histograms of 16 series each (13 default
    // buckets, `+Inf`, sum and count).
    assert_eq!(counts[1], counts[0] + 4 * 16, "{counts:?}");
}

/// The fleet budget (README, "Series per target") is for a default target:
/// an HTTPS one costs at most 40 series in a classic scrape, a plain HTTP one
/// at most 37. The TLS version and cipher ride on the certificate's expiry
/// gauge; every step, `tls` included, keeps its latest duration. A closed
/// incident then adds exactly its two timestamps (the dashboards' band), the
/// latest incident's duration and the target's incident duration histogram
/// for the kind it ended as (6 buckets, `+Inf`, sum and count): 12 series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_target_and_a_target_after_an_incident_stay_within_the_series_budget() {
    const HTTPS_BUDGET: usize = 40;
    const HTTP_BUDGET: usize = 37;
    let (chain, key) = support::tls::self_signed(&["localhost"]);
    // One server answers HTTP and HTTPS on the same port.
    let server = HttpServer::start_on(
        [127, 0, 0, 1].into(),
        Some(support::tls::acceptor(chain, key)),
    )
    .await;
    server.route("/owa", Reply::ok("ok"));
    let port = server.addr.port();
    let dir = tempfile::tempdir().unwrap();
    // Host names, as users write them, so both probes have their DNS step.
    let text = format!(
        "[host]\nenabled = false\n\
         [slowdown]\nbaseline = \"50ms\"\nfor = \"400ms\"\nrecover_for = \"400ms\"\n\
         [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"http://localhost:{port}/owa\"\n\
         ip_family = \"ipv4\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\n\
         [[target]]\nname = \"owa-tls\"\nkind = \"http\"\nurl = \"https://localhost:{port}/owa\"\n\
         ip_family = \"ipv4\"\ntls_insecure_skip_verify = true\ninterval = \"100ms\"\ntimeout = \"90ms\"\n"
    );
    let cfg = write_file(dir.path(), "c.toml", &text);
    let agent = InProcessAgent::start(&cfg).await;
    let targets = ["owa", "owa-tls"];
    agent
        .wait_until(
            || async {
                let s = agent.scrape().await;
                targets.iter().all(|t| {
                    metric(&s, "mailpulse_probe_success", &[("target", t)]) == Some(1.0)
                        && metric(&s, "mailpulse_target_degraded", &[("target", t)]) == Some(0.0)
                }) && metric(
                    &s,
                    "mailpulse_tls_cert_expiry_timestamp_seconds",
                    &[("target", "owa-tls")],
                )
                .is_some()
            },
            "both targets probed",
        )
        .await;
    let before = agent.scrape().await;
    let https = series_of(&before, "owa-tls");
    assert!(
        https.len() <= HTTPS_BUDGET,
        "{} series for one HTTPS target:\n{}",
        https.len(),
        https.join("\n")
    );
    let http = series_of(&before, "owa");
    assert!(
        http.len() <= HTTP_BUDGET,
        "{} series for one plain HTTP target:\n{}",
        http.len(),
        http.join("\n")
    );
    // What TLS adds over plain HTTP: its step, its failure counter and the
    // certificate's expiry, which names the connection's version and cipher.
    assert_eq!(
        https.len(),
        series_of(&before, "owa").len() + 3,
        "{}",
        https.join("\n")
    );
    for phase in ["dns", "connect", "tls", "first_byte", "transfer", "total"] {
        assert!(
            metric(
                &before,
                "mailpulse_probe_last_duration_seconds",
                &[("target", "owa-tls"), ("phase", phase)]
            )
            .is_some(),
            "{phase} has no latest duration:\n{before}"
        );
    }
    let expiry = metric(
        &before,
        "mailpulse_tls_cert_expiry_timestamp_seconds",
        &[("target", "owa-tls"), ("version", "TLSv1.3")],
    )
    .expect("the expiry names the TLS version");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now, "expiry {expiry} is not in the future");
    assert!(
        https
            .iter()
            .any(|s| s.starts_with("mailpulse_tls_cert_expiry_timestamp_seconds{cipher=\"TLS13_")),
        "{}",
        https.join("\n")
    );
    assert!(metric(
        &before,
        "mailpulse_probe_failures_total",
        &[("target", "owa-tls"), ("reason", "tls")]
    )
    .is_some());

    // A down incident on both targets, then their recovery.
    server.route("/owa", Reply::status(500));
    agent
        .wait_until(
            || async {
                let s = agent.scrape().await;
                targets
                    .iter()
                    .all(|t| metric(&s, "mailpulse_target_down", &[("target", t)]) == Some(1.0))
            },
            "a down incident on both targets",
        )
        .await;
    server.route("/owa", Reply::ok("ok"));
    agent
        .wait_until(
            || async {
                let s = agent.scrape().await;
                targets.iter().all(|t| {
                    metric(
                        &s,
                        "mailpulse_incidents_closed_total",
                        &[("target", t), ("kind", "down")],
                    ) == Some(1.0)
                })
            },
            "both incidents closed",
        )
        .await;
    let after = agent.scrape().await;
    agent.stop().unwrap();
    for t in targets {
        let (b, a) = (series_of(&before, t), series_of(&after, t));
        let mut added: Vec<&String> = a.iter().filter(|s| !b.contains(s)).collect();
        added.sort();
        let histogram = |suffix: &str, le: Option<&str>| {
            let le = le.map_or(String::new(), |le| format!(",le=\"{le}\""));
            format!(
                "mailpulse_incident_duration_seconds_{suffix}{{kind=\"down\",target=\"{t}\"{le}}}"
            )
        };
        let mut expected: Vec<String> = ["60", "300", "900", "3600", "14400", "86400", "+Inf"]
            .into_iter()
            .map(|le| histogram("bucket", Some(le)))
            .chain([histogram("sum", None), histogram("count", None)])
            .chain([
                format!("mailpulse_incident_recovered_timestamp_seconds{{target=\"{t}\"}}"),
                format!("mailpulse_incident_started_timestamp_seconds{{target=\"{t}\"}}"),
                format!("mailpulse_last_incident_duration_seconds{{target=\"{t}\"}}"),
            ])
            .collect();
        expected.sort();
        assert_eq!(
            added,
            expected.iter().collect::<Vec<_>>(),
            "what an incident added to {t}"
        );
        assert_eq!(
            a.len(),
            b.len() + 12,
            "{t} lost a series:\n{}",
            a.join("\n")
        );
        // The latest incident's duration is its recovery minus its onset,
        // and the one observation of the target's `down` histogram.
        let value = |name, labels: &[(&str, &str)]| {
            metric(&after, name, labels).unwrap_or_else(|| panic!("{name} {labels:?}"))
        };
        let lasted = value("mailpulse_last_incident_duration_seconds", &[("target", t)]);
        assert!((0.3..60.0).contains(&lasted), "{t} lasted {lasted} s");
        let band = value(
            "mailpulse_incident_recovered_timestamp_seconds",
            &[("target", t)],
        ) - value(
            "mailpulse_incident_started_timestamp_seconds",
            &[("target", t)],
        );
        assert!(
            (band - lasted).abs() < 0.002,
            "{t}: band {band} s, lasted {lasted} s"
        );
        let down = [("target", t), ("kind", "down")];
        assert_eq!(
            value("mailpulse_incident_duration_seconds_count", &down),
            1.0
        );
        assert_eq!(
            value("mailpulse_incident_duration_seconds_sum", &down),
            lasted
        );
    }
    support::promtool_check(&after);
}
