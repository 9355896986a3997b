//! `kill -9` at random moments, many times, while a target flaps in and out
//! of a slowdown and the webhook receiver sometimes answers 503. At the end,
//! every incident in `mailpulse incidents --json` was paged exactly once
//! firing and once resolved, in that order, nothing else was paged, and the
//! store opens cleanly.
//!
//! Ignored by default (it takes minutes): `bench/reliability.sh kill9` runs it, with
//! `MAILPULSE_KILLS` kills (50 by default).

use crate::support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::{incidents, metric, write_file, Agent, HttpServer, Reply};

/// Kills by default.
const KILLS: usize = 50;
/// The longest an agent lives before it is killed, in milliseconds.
const MAX_LIFE_MS: u64 = 4000;
/// How long the target stays slow, then fast, in milliseconds.
const FLAP_MS: u64 = 2500;

fn config(port: u16, state: &std::path::Path, url: &str, hook: &str) -> String {
    format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\ninstance = \"cas01\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
         [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
         [alerting]\nmax_backoff = \"1s\"\n\
         [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\n\
         [[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{hook}\"\n",
        state.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes minutes; run by bench/reliability.sh kill9"]
async fn kill_9_at_random_moments_loses_and_duplicates_no_page() {
    let kills = std::env::var("MAILPULSE_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(KILLS);
    let seed = std::env::var("MAILPULSE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("kill9: {kills} kills, seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);

    let dir = tempfile::tempdir().unwrap();
    let hook = HttpServer::receiver().await;
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    let port = support::free_port();
    let addr = ([127, 0, 0, 1], port).into();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &config(
            port,
            &dir.path().join("state"),
            &server.url("/owa"),
            &hook.url("/hook"),
        ),
    );

    // The target flaps and the receiver has bad moments until `stop`.
    let stop = Arc::new(AtomicBool::new(false));
    let flapper = {
        let (server, hook, stop) = (server.clone(), hook.clone(), stop.clone());
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
        tokio::spawn(async move {
            let mut slow = false;
            let mut since = 0;
            while !stop.load(Ordering::Relaxed) {
                if since >= FLAP_MS {
                    slow = !slow;
                    since = 0;
                    let route = Reply::ok("ok");
                    server.route(
                        "/owa",
                        if slow {
                            route.delayed(Duration::from_millis(60))
                        } else {
                            route
                        },
                    );
                }
                hook.default_reply(if rng.u8(..10) < 3 {
                    Reply::status(503)
                } else {
                    Reply::json("{}")
                });
                tokio::time::sleep(Duration::from_millis(250)).await;
                since += 250;
            }
        })
    };

    for _ in 0..kills {
        let mut agent = Agent::start(&cfg, addr, &[("RUST_LOG", "info")]).await;
        tokio::time::sleep(Duration::from_millis(rng.u64(100..MAX_LIFE_MS))).await;
        agent.child.kill().unwrap();
        agent.child.wait().unwrap();
    }

    // Calm: the service is fast, the receiver answers, one last agent drains.
    stop.store(true, Ordering::Relaxed);
    flapper.await.unwrap();
    server.route("/owa", Reply::ok("ok"));
    hook.default_reply(Reply::json("{}"));
    let agent = Agent::start(&cfg, addr, &[("RUST_LOG", "info")]).await;
    let settled = || async {
        let s = agent.scrape().await;
        metric(&s, "mailpulse_target_degraded", &[("target", "owa")]) == Some(0.0)
            && metric(&s, "mailpulse_outbox_pending", &[]) == Some(0.0)
            && incidents(&cfg)
                .iter()
                .all(|i| i["recovered_at"].is_string())
    };
    support::wait_until_or(
        "the last agent to settle",
        Duration::from_secs(60),
        || agent.log_text(),
        settled,
    )
    .await;
    // Give any duplicate a chance to arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Pages per incident (keyed by its start), in the order accepted.
    let time = |v: &Value| -> chrono::DateTime<chrono::Utc> {
        v.as_str()
            .expect("a time")
            .parse()
            .expect("an RFC 3339 time")
    };
    let mut pages: BTreeMap<chrono::DateTime<chrono::Utc>, Vec<String>> = BTreeMap::new();
    for r in hook.accepted() {
        for a in r.json()["alerts"].as_array().unwrap() {
            pages
                .entry(time(&a["startsAt"]))
                .or_default()
                .push(a["status"].as_str().unwrap().to_string());
        }
    }
    let history = incidents(&cfg);
    let starts: Vec<_> = history.iter().map(|i| time(&i["started_at"])).collect();
    let refused = hook.requests().iter().filter(|r| r.answered == 503).count();
    eprintln!(
        "kill9: {} incidents, {} pages accepted, {refused} refused with 503",
        history.len(),
        pages.values().map(Vec::len).sum::<usize>()
    );
    assert!(
        !history.is_empty(),
        "no incident happened; lengthen the run"
    );
    let mut bad = Vec::new();
    for start in &starts {
        match pages.get(start) {
            Some(p) if p == &["firing", "resolved"] => {}
            other => bad.push(format!("{start}: {other:?}")),
        }
    }
    for start in pages.keys() {
        if !starts.contains(start) {
            bad.push(format!("{start}: paged but not in the history"));
        }
    }
    assert!(
        bad.is_empty(),
        "pages that do not match the history:\n{}\nhistory: {history:?}\npages: {pages:?}",
        bad.join("\n")
    );
}
