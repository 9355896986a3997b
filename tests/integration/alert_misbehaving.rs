//! Five misbehaving receivers beside a healthy one, all real sockets on
//! loopback, through the real delivery loop and outbox: one trickles its
//! answer and never finishes, one answers 429 with `Retry-After`, one sends
//! an endless body, one has a certificate nobody trusts, and one redirects to
//! another host. The healthy receiver gets every page within one attempt
//! timeout, every bad one is tried, none is followed elsewhere, and each bad
//! one fails the way it should, holding at most a few connections and backing
//! off by itself. The default test runs in paused time; the ignored long form
//! (`bench/reliability.sh receivers`) runs 45 real seconds with the default
//! 10 s timeout and prints the figures of `bench/RELIABILITY.md`.

use crate::support;
use crate::support::peers;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mailpulse::alert::{Alerting, Enqueued, MAX_IN_FLIGHT_PER_RECEIVER};
use mailpulse::clock::{Clock as _, TokioClock};
use mailpulse::config::alerting::parse;
use mailpulse::metrics::alert::NotificationResult;
use mailpulse::store::{outbox, Store};
use support::delivery::{self, Delivery};
use support::{HttpServer, Reply};

/// Incidents paged at once.
const PAGES: usize = 60;

/// The receivers, in name order: the healthy one is the last of every
/// incident's entries, the worst place for an oldest-first loop.
const NAMES: [&str; 6] = [
    "a-trickle",
    "b-limited",
    "c-huge",
    "d-badtls",
    "e-redirect",
    "z-healthy",
];

/// What one run saw.
struct Run {
    /// When each healthy page arrived, after the pages were queued.
    healthy: Vec<Duration>,
    /// Distinct healthy pages, and requests the healthy receiver got.
    healthy_ids: usize,
    healthy_requests: usize,
    /// Per bad receiver: requests (or connections, for bad TLS) it got.
    asked: [usize; 5],
    /// Most connections the trickling receiver held at once.
    trickle_max_open: usize,
    /// Most bytes of the endless body one connection pushed.
    huge_max_written: u64,
    /// Requests that reached the host a redirect pointed to.
    followed: usize,
    /// Each receiver's last errors in the outbox, and its failed count.
    errors: Vec<Vec<String>>,
    failed: Vec<u64>,
    /// Origins, to check messages against.
    trickle: String,
    tls: String,
    elsewhere: String,
}

/// Queues `PAGES` incidents for the six receivers (each with `timeout`) and
/// watches for `watch`.
async fn run(timeout: Duration, watch: Duration) -> Run {
    let healthy = HttpServer::receiver().await;
    let (trickle, trickled) = peers::trickle_server().await;
    let limited = HttpServer::receiver().await;
    limited.default_reply(Reply::status(429).header("Retry-After", "30"));
    let (huge, huged) = peers::huge_server(500).await;
    let tls = peers::untrusted_tls_server().await;
    let elsewhere = HttpServer::receiver_on([127, 0, 0, 2].into()).await;
    let redirect = HttpServer::receiver().await;
    redirect.default_reply(Reply::status(302).header("Location", &elsewhere.url("/hook")));
    let urls = [
        format!("http://{trickle}/hook"),
        limited.url("/hook"),
        format!("http://{huge}/hook"),
        tls.https_url("/hook"),
        redirect.url("/hook"),
        healthy.url("/hook"),
    ];
    let mut text = String::from("[alerting]\nmax_backoff = \"10s\"\nrepeat_interval = \"off\"\n");
    for (name, url) in NAMES.iter().zip(&urls) {
        text.push_str(&format!(
            "[[receiver]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{url}\"\ntimeout = \"{}ms\"\n",
            timeout.as_millis()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = parse(&text, dir.path(), "agent.test").unwrap_or_else(|e| panic!("{e:?}"));
    let clock = TokioClock::starting_at("2026-12-05T02:00:00Z".parse().unwrap());
    let store = Store::open(dir.path()).unwrap();
    let alerting = Alerting::new(config, &store, clock.clone()).unwrap();
    let h = Delivery::start_with_clock(alerting, store, Some(dir), clock.clone());

    let started = tokio::time::Instant::now();
    for i in 0..PAGES {
        let e = delivery::slow(&format!("inc{i:02}"), clock.now());
        assert!(matches!(h.enqueue(&e), Enqueued::Queued(r) if r.len() == NAMES.len()));
    }
    tokio::time::sleep_until(started + watch).await;

    let accepted = healthy.accepted();
    let rows = outbox::all_rows(&h.store).unwrap();
    let run = Run {
        healthy: accepted.iter().map(|r| r.at - started).collect(),
        healthy_ids: accepted
            .iter()
            .map(|r| r.header("x-alert-id").unwrap().to_string())
            .collect::<BTreeSet<_>>()
            .len(),
        healthy_requests: healthy.requests().len(),
        asked: [
            trickled.requests.load(Ordering::Relaxed),
            limited.requests().len(),
            huged.requests.load(Ordering::Relaxed),
            tls.connections(),
            redirect.requests().len(),
        ],
        trickle_max_open: trickled.max_open.load(Ordering::Relaxed),
        huge_max_written: huged.max_written.load(Ordering::Relaxed),
        followed: elsewhere.requests().len(),
        errors: NAMES
            .iter()
            .map(|n| {
                rows.iter()
                    .filter(|e| e.receiver == *n)
                    .filter_map(|e| e.last_error.clone())
                    .collect()
            })
            .collect(),
        failed: NAMES
            .iter()
            .map(|n| h.metrics.count(n, NotificationResult::Failed))
            .collect(),
        trickle: trickle.to_string(),
        tls: tls.addr.to_string(),
        elsewhere: elsewhere.addr.to_string(),
    };
    h.stop().await;
    run
}

/// What must hold whatever the clock: the healthy receiver got every page
/// once, each within one attempt `timeout`; every bad receiver was tried and
/// failed as it should.
fn check(run: &Run, timeout: Duration) {
    let late = run.healthy.iter().filter(|d| **d > timeout).count();
    assert!(
        run.healthy.len() == PAGES && late == 0,
        "the healthy receiver got {} of {PAGES} pages, {late} of them later than one attempt timeout ({timeout:?}); the last after {:?}",
        run.healthy.len(),
        run.healthy.iter().max()
    );
    assert_eq!(run.healthy_ids, PAGES);
    assert_eq!(run.healthy_requests, PAGES, "each healthy page once");
    for (name, asked) in NAMES.iter().zip(run.asked) {
        assert!(asked > 0, "{name} was never tried");
    }
    // Trickling: cut off by the total timeout, a few connections at a time.
    let expected = format!(
        "no answer from http://{} within {}",
        run.trickle,
        mailpulse::config::HumanDuration(timeout)
    );
    assert!(
        !run.errors[0].is_empty() && run.errors[0].iter().all(|e| e == &expected),
        "{:?}",
        run.errors[0]
    );
    assert!(
        run.trickle_max_open <= MAX_IN_FLIGHT_PER_RECEIVER,
        "the trickling receiver held {} connections at once",
        run.trickle_max_open
    );
    // 429 with Retry-After 30: the whole receiver waits, not just one incident.
    assert!(
        run.asked[1] <= MAX_IN_FLIGHT_PER_RECEIVER,
        "a receiver that asked for 30 s of quiet got {} requests",
        run.asked[1]
    );
    // An endless body: read up to the cap, the status judged, a short message.
    assert!(
        !run.errors[2].is_empty()
            && run.errors[2]
                .iter()
                .all(|e| e.starts_with("HTTP 500") && e.len() <= 300),
        "{:?}",
        run.errors[2]
    );
    assert!(
        run.huge_max_written < 32 << 20,
        "the client let the server push {} bytes of an endless body",
        run.huge_max_written
    );
    // Bad TLS: a retriable handshake failure.
    assert!(
        !run.errors[3].is_empty()
            && run.errors[3]
                .iter()
                .all(|e| e.starts_with(&format!("TLS handshake with https://{}", run.tls))),
        "{:?}",
        run.errors[3]
    );
    // A redirect is not followed, never to another host; the page waits
    // (retried) for the URL to be fixed rather than being lost.
    assert_eq!(run.followed, 0, "a redirect was followed to another host");
    assert_eq!(run.failed[4], 0);
    let expected = format!(
        "HTTP 302: redirect to http://{} not followed; set the receiver's url to the final address",
        run.elsewhere
    );
    assert!(
        !run.errors[4].is_empty() && run.errors[4].iter().all(|e| e == &expected),
        "{:?}",
        run.errors[4]
    );
}

#[tokio::test(start_paused = true)]
async fn the_healthy_receiver_gets_every_page_within_one_timeout_while_five_fail() {
    let timeout = Duration::from_secs(2);
    let run = run(timeout, timeout * 4).await;
    check(&run, timeout);
}

/// The long form, in real time with the default receiver timeout, as the
/// issue measured it (45 s); prints the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "45 s in real time; run by bench/reliability.sh receivers"]
async fn misbehaving_receivers_for_45_real_seconds() {
    let timeout = mailpulse::config::alerting::DEFAULT_RECEIVER_TIMEOUT;
    let run = run(timeout, Duration::from_secs(45)).await;
    let mut healthy = run.healthy.clone();
    healthy.sort();
    eprintln!(
        "healthy: {} of {PAGES} pages, median {:?}, last {:?}",
        healthy.len(),
        healthy.get(healthy.len() / 2),
        healthy.last()
    );
    for (name, asked) in NAMES.iter().zip(run.asked) {
        eprintln!("{name}: {asked} requests in 45 s");
    }
    eprintln!(
        "trickle: at most {} connections at once; endless body: at most {} bytes pushed per connection; redirects followed: {}",
        run.trickle_max_open, run.huge_max_written, run.followed
    );
    check(&run, timeout);
}
