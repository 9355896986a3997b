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
