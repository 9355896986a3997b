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

/// The fleet budget (README, "Series per target"): a plain HTTP target
/// costs at most 40 series by default, counted as Prometheus counts them,
/// with two to spare for the incident timestamp gauges; its steps still
/// each have their latest duration. `phase_histograms = true` brings back a
/// histogram per step.
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
                series.len() <= 38,
                "{} series for one plain HTTP target:\n{}",
                series.len(),
                series.join("\n")
            );
        }
        agent.stop().unwrap();
    }
    // The opt-in adds four step histograms of 17 series each.
    assert_eq!(counts[1], counts[0] + 4 * 17, "{counts:?}");
}
