//! A scrape flood against the real binary: [`PER_SECOND`] concurrent
//! `/metrics` scrapes launched every second, for [`RUN_FOR`] by default (the
//! issue's full minute with `MAILPULSE_FLOOD_SECS=60`, as `bench/reliability.sh flood`
//! runs it). The agent's resident memory stays under [`RSS_BOUND_KIB`] and
//! its probes stay on schedule.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{metric, rss_kib, write_file, Agent, HttpServer, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Scrapes launched at once, every second.
const PER_SECOND: usize = 500;
/// How long the flood lasts by default.
const RUN_FOR: Duration = Duration::from_secs(10);
/// Probe interval of the targets, in milliseconds.
const INTERVAL_MS: u64 = 200;
/// Peak resident memory allowed. An idle debug build with a few targets
/// takes about 26 MiB; each connection in flight holds hyper's buffers and a
/// task (tens of KiB), so 500 concurrent scrapes add about 40 MiB (64 MiB
/// peak measured). 96 MiB catches a leak across the flood, or one rendering
/// per scrape kept alive, without flaking on allocator slack.
const RSS_BOUND_KIB: u64 = 96 * 1024;
/// Probe starts that must be within [`ON_TIME`] of their schedule. The load
/// generator shares the agent's two cores here, so a few late starts are
/// the machine, not the agent; a starved scheduler shows as far fewer.
const ON_TIME_RATIO: f64 = 0.95;
/// How late a start may be and still count as on time (a histogram bucket).
const ON_TIME: &str = "0.1";
/// How long one scrape may take before it counts as failed.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// One scrape: Ok when it returned a complete 200 with the probe families,
/// else what went wrong.
async fn scrape(addr: SocketAddr) -> Result<(), String> {
    let once = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&out);
        if text.starts_with("HTTP/1.1 200") && text.contains("mailpulse_probe_success") {
            Ok(())
        } else {
            Err(format!("answer: {:?}", text.lines().next()))
        }
    };
    tokio::time::timeout(SCRAPE_TIMEOUT, once)
        .await
        .unwrap_or_else(|_| Err("timeout".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_flood_keeps_memory_bounded_and_probes_on_time() {
    let _heavy = support::heavy();
    let run_for = support::secs_from_env("MAILPULSE_FLOOD_SECS", RUN_FOR);
    let web = HttpServer::start().await;
    web.route("/", Reply::ok("ok"));
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut text = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\nphase_histograms = true\nstate_dir = \"{}\"\n",
        dir.path().join("state").display()
    );
    let names = ["web1", "web2", "web3", "web4"];
    for name in names {
        let interval = format!("{INTERVAL_MS}ms");
        text.push_str(&support::http_target(
            name,
            &web.url("/"),
            &interval,
            "150ms",
        ));
    }
    let cfg = write_file(dir.path(), "c.toml", &text);
    let agent = Agent::start(&cfg, addr, &[("RUST_LOG", "info")]).await;
    let pid = agent.child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(pid);
    let lag_before = lags(&agent).await;
    let mut before = Vec::new();
    for name in names {
        before.push(agent.probes(name, "connect").await);
    }

    let start = tokio::time::Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    let mut peak = 0;
    let mut second = 0u64;
    while start.elapsed() < run_for {
        for _ in 0..PER_SECOND {
            flood.spawn(scrape(addr));
        }
        second += 1;
        // Sample memory through the second, then launch the next batch.
        while start.elapsed() < Duration::from_secs(second) {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let launched = flood.len();
    let mut ok = 0;
    let mut failures: std::collections::BTreeMap<String, usize> = Default::default();
    while let Some(r) = flood.join_next().await {
        peak = peak.max(rss_kib(pid));
        match r.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => *failures.entry(e).or_default() += 1,
        }
    }
    let elapsed = start.elapsed();

    let lag_after = lags(&agent).await;
    let starts = lag_after.0 - lag_before.0;
    let on_time = lag_after.1 - lag_before.1;
    let mut done = Vec::new();
    for (name, b) in names.iter().zip(&before) {
        done.push((name, agent.probes(name, "connect").await - b));
    }
    eprintln!(
        "scrape flood: {launched} scrapes in {elapsed:?}, {ok} complete; RSS idle {idle} KiB, \
         peak {peak} KiB (bound {RSS_BOUND_KIB}); {on_time} of {starts} probe starts within {ON_TIME} s; \
         successful probes {done:?}"
    );
    assert!(peak <= RSS_BOUND_KIB, "peak RSS {peak} KiB");
    assert_eq!(ok, launched, "every scrape completed: {failures:?}");
    assert!(
        on_time / starts >= ON_TIME_RATIO,
        "{on_time} of {starts} probe starts within {ON_TIME} s"
    );
    // Every tick started (none skipped), and most probes succeeded against a
    // target served from this same, busy, test process.
    let expected = elapsed.as_millis() as f64 / INTERVAL_MS as f64;
    assert!(
        starts >= expected * names.len() as f64 * 0.9,
        "{starts} probe starts, expected about {}",
        expected * names.len() as f64
    );
    for (name, n) in done {
        assert!(
            n >= expected * 0.7,
            "{name}: {n} successful probes, expected about {expected}"
        );
    }
}

/// Probe starts so far and those within [`ON_TIME`] of their schedule.
async fn lags(agent: &Agent) -> (f64, f64) {
    let s = agent.scrape().await;
    (
        metric(&s, "mailpulse_probe_schedule_lag_seconds_count", &[]).unwrap_or(0.0),
        metric(
            &s,
            "mailpulse_probe_schedule_lag_seconds_bucket",
            &[("le", ON_TIME)],
        )
        .unwrap_or(0.0),
    )
}
