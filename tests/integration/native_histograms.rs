//! Percentiles a soak lead can sign: a real Prometheus (Debian's 2.42 with
//! `--enable-feature=native-histograms`, so it asks for the protobuf format)
//! scrapes an agent probing a target whose latency is uniform over
//! 150-190 ms, for over a minute. The p50, p95 and p99 that
//! `histogram_quantile` computes from the agent's native histogram are
//! within 5% of the exact quantiles of the totals the probes recorded. What
//! the classic buckets of the text format would give is printed beside them
//! (the figures of bench/RESULTS.md).

use crate::support;

use std::time::Duration;

use support::in_process::InProcessAgent;
use support::prometheus::Prometheus;
use support::{metric, write_file, HttpServer, Reply};

const TOTAL: &str = "mailpulse_probe_duration_seconds";

/// The `q` quantile of sorted `values`, interpolated between neighbours.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// What `histogram_quantile` makes of the classic buckets of `target`'s
/// total in a text scrape: linear within the bucket that holds the rank.
fn classic_quantile(scrape: &str, target: &str, q: f64) -> f64 {
    let mut buckets: Vec<(f64, f64)> = scrape
        .lines()
        .filter(|l| {
            l.starts_with("mailpulse_probe_duration_seconds_bucket{")
                && l.contains(&format!("target=\"{target}\""))
                && l.contains("phase=\"total\"")
        })
        .map(|l| {
            let le = l.split("le=\"").nth(1).unwrap().split('"').next().unwrap();
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (le, l.rsplit(' ').next().unwrap().parse().unwrap())
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let count = buckets.last().unwrap().1;
    let rank = q * count;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, cumulative) in buckets {
        if cumulative >= rank {
            if le.is_infinite() {
                return lower;
            }
            return lower + (le - lower) * (rank - below) / (cumulative - below);
        }
        (lower, below) = (le, cumulative);
    }
    lower
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_quantiles_from_native_histograms_are_within_5_percent() {
    if !support::prometheus::available() {
        return;
    }
    let server = HttpServer::start().await;
    // Uniform delays over 150-190 ms, from a fixed seed (xorshift64).
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    server.script((0..2000).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ms = 150.0 + 40.0 * (x >> 11) as f64 / (1u64 << 53) as f64;
        Reply::ok("ok").delayed(Duration::from_secs_f64(ms / 1000.0))
    }));
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[host]\nenabled = false\n\
         [[target]]\nname = \"lat\"\nkind = \"http\"\nurl = \"{}\"\n\
         interval = \"300ms\"\ntimeout = \"290ms\"\n",
        server.url("/lat")
    );
    let cfg = write_file(dir.path(), "c.toml", &text);
    let agent = InProcessAgent::start(&cfg).await;
    let prom = Prometheus::start(
        dir.path(),
        &format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: mailpulse\n    static_configs:\n      - targets: [\"{}\"]\n",
            agent.addr
        ),
        &["--enable-feature=native-histograms"],
    )
    .await;

    // The agent's own record of each probe: a scrape in which the count of
    // successful probes moved by one carries that probe's total as the
    // latest duration. Scrapes come every 40 ms, probes every 300 ms.
    let count_of =
        |s: &str| metric(s, &format!("{TOTAL}_count"), &[("target", "lat")]).unwrap_or(0.0) as u64;
    let mut totals = Vec::new();
    let (mut last, mut missed) = (0, 0);
    let until = tokio::time::Instant::now() + Duration::from_secs(70);
    let mut record = |s: &str, totals: &mut Vec<f64>| {
        let count = count_of(s);
        if count == last + 1 {
            let total = metric(
                s,
                "mailpulse_probe_last_duration_seconds",
                &[("target", "lat"), ("phase", "total")],
            );
            totals.push(total.unwrap());
        } else if count > last {
            missed += count - last;
        }
        last = count;
    };
    while tokio::time::Instant::now() < until {
        record(&agent.scrape().await, &mut totals);
        // Sampling the agent's page, not waiting for an event.
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    // No more successful probes: the histogram stops where the record does,
    // once a probe has failed (a probe under way when the server stopped
    // may still succeed; probes of a target never overlap).
    let failures = |s: &str| {
        s.lines()
            .filter(|l| {
                l.starts_with("mailpulse_probe_failures_total{") && l.contains("target=\"lat\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let failed_before = failures(&agent.scrape().await);
    server.stop();
    let stopped = tokio::time::Instant::now();
    let final_scrape = loop {
        let s = agent.scrape().await;
        record(&s, &mut totals);
        if failures(&s) > failed_before {
            break s;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "no probe failed after the server stopped"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    };
    let count = count_of(&final_scrape);
    assert!(count >= 200, "only {count} probes in 70 s");
    assert!(missed * 50 <= count, "{missed} of {count} probes not seen");

    // Prometheus has ingested the final histogram (as a native one:
    // histogram_count reads native histograms only).
    let selector = format!("{TOTAL}{{target=\"lat\",phase=\"total\"}}");
    support::wait_until(
        "Prometheus has the final native histogram",
        Duration::from_secs(15),
        || async {
            prom.query(&format!("histogram_count({selector})"))
                .await
                .first()
                .is_some_and(|(_, v)| *v as u64 == count)
        },
    )
    .await;
    let up = prom.query("up").await;
    assert!(up.iter().all(|(_, v)| *v == 1.0), "{up:?}");

    totals.sort_by(f64::total_cmp);
    let mut report = Vec::new();
    for q in [0.5, 0.95, 0.99] {
        let exact = exact_quantile(&totals, q);
        let native = prom
            .query(&format!("histogram_quantile({q}, {selector})"))
            .await
            .first()
            .map(|(_, v)| *v)
            .unwrap_or(f64::NAN);
        let classic = classic_quantile(&final_scrape, "lat", q);
        let error = native / exact - 1.0;
        report.push(format!(
            "p{}: exact {:.4} s, native {:.4} s ({:+.2}%), classic {:.4} s ({:+.2}%)",
            q * 100.0,
            exact,
            native,
            error * 100.0,
            classic,
            (classic / exact - 1.0) * 100.0
        ));
        assert!(error.abs() < 0.05, "{}", report.join("\n"));
    }
    eprintln!(
        "native histograms, {} probes ({missed} not seen by the record):\n{}",
        count,
        report.join("\n")
    );
    drop(prom);
    agent.stop().unwrap();
}
