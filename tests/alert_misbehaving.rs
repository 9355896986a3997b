//! Five misbehaving receivers beside a healthy one, all real sockets on
//! loopback, through the real delivery loop and outbox in paused time: one
//! trickles its answer and never finishes, one answers 429 with
//! `Retry-After`, one sends an endless body, one has a certificate nobody
//! trusts, and one redirects to another host. The healthy receiver gets every
//! page within one attempt timeout, every bad one is tried, none is followed
//! elsewhere, and each bad one fails the way it should, holding at most a
//! few connections and backing off by itself.

#[path = "alert/capture.rs"]
mod capture;
#[path = "alert/peers.rs"]
mod peers;
mod support;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use capture::{Capture, Reply};
use mailpulse::alert::{Alerting, Enqueued};
use mailpulse::clock::{Clock as _, TokioClock};
use mailpulse::config::alerting::parse;
use mailpulse::metrics::alert::NotificationResult;
use mailpulse::store::{outbox, Store};
use support::delivery::{self, Delivery};

/// Incidents paged at once.
const PAGES: usize = 60;
/// Every receiver's `timeout`: one attempt's limit.
const TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(start_paused = true)]
async fn the_healthy_receiver_gets_every_page_within_one_timeout_while_five_fail() {
    let healthy = Capture::start().await;
    let (trickle, trickled) = peers::trickle_server().await;
    let limited = Capture::start().await;
    limited.default_reply(Reply::status(429).header("Retry-After", "30"));
    let (huge, huged) = peers::huge_server(500).await;
    let (tls, handshakes) = peers::untrusted_tls_server().await;
    let elsewhere = Capture::start_on("127.0.0.2").await;
    let redirect = Capture::start().await;
    redirect.default_reply(Reply::status(302).header("Location", &elsewhere.url("/hook")));

    // Names in this order make the healthy receiver the last of every
    // incident's entries, the worst place for an oldest-first loop.
    let receivers = [
        ("a-trickle", format!("http://{trickle}/hook")),
        ("b-limited", limited.url("/hook")),
        ("c-huge", format!("http://{huge}/hook")),
        ("d-badtls", format!("https://{tls}/hook")),
        ("e-redirect", redirect.url("/hook")),
        ("z-healthy", healthy.url("/hook")),
    ];
    let mut text = String::from("[alerting]\nmax_backoff = \"10s\"\nrepeat_interval = \"off\"\n");
    for (name, url) in &receivers {
        text.push_str(&format!(
            "[[receiver]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{url}\"\ntimeout = \"{}s\"\n",
            TIMEOUT.as_secs()
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
        assert!(matches!(h.enqueue(&e), Enqueued::Queued(r) if r.len() == receivers.len()));
    }

    let got = healthy.wait_accepted(PAGES, Duration::from_secs(300)).await;
    let late: Vec<Duration> = got
        .iter()
        .map(|r| r.at - started)
        .filter(|d| *d > TIMEOUT)
        .collect();
    assert!(
        late.is_empty(),
        "{} of {PAGES} healthy pages came later than one attempt timeout ({TIMEOUT:?}); the last after {:?}",
        late.len(),
        late.iter().max()
    );

    // Let every bad receiver have its first attempts and their timeouts.
    tokio::time::sleep_until(started + TIMEOUT * 4).await;
    let ids: BTreeSet<String> = healthy
        .accepted()
        .iter()
        .map(|r| r.header("x-alert-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), PAGES);
    assert_eq!(healthy.requests().len(), PAGES, "each healthy page once");

    let errors = |name: &str| -> Vec<String> {
        outbox::all_rows(&h.store)
            .unwrap()
            .into_iter()
            .filter(|e| e.receiver == name)
            .filter_map(|e| e.last_error)
            .collect()
    };
    // Trickling: cut off by the total timeout, a few connections at a time.
    let trickle_errors = errors("a-trickle");
    assert!(
        !trickle_errors.is_empty(),
        "the trickling receiver was never tried"
    );
    let expected = format!("no answer from http://{trickle} within 2s");
    assert!(
        trickle_errors.iter().all(|e| e == &expected),
        "{trickle_errors:?}"
    );
    assert!(
        trickled.max_open.load(Ordering::Relaxed) <= mailpulse::alert::MAX_IN_FLIGHT_PER_RECEIVER,
        "the trickling receiver held {} connections at once",
        trickled.max_open.load(Ordering::Relaxed)
    );
    // 429 with Retry-After: the whole receiver waits, not just one incident.
    let asked = limited.requests().len();
    assert!(
        (1..=mailpulse::alert::MAX_IN_FLIGHT_PER_RECEIVER).contains(&asked),
        "a receiver that asked for 30 s of quiet got {asked} requests"
    );
    // An endless body: read up to the cap, the status judged, a short message.
    let huge_errors = errors("c-huge");
    assert!(
        !huge_errors.is_empty(),
        "the endless-body receiver was never tried"
    );
    assert!(
        huge_errors
            .iter()
            .all(|e| e.starts_with("HTTP 500") && e.len() <= 300),
        "{huge_errors:?}"
    );
    let written = huged.max_written.load(Ordering::Relaxed);
    assert!(
        written < 32 << 20,
        "the client let the server push {written} bytes of an endless body"
    );
    // Bad TLS: a retriable handshake failure.
    let tls_errors = errors("d-badtls");
    assert!(handshakes.load(Ordering::Relaxed) > 0);
    assert!(
        !tls_errors.is_empty()
            && tls_errors
                .iter()
                .all(|e| e.starts_with(&format!("TLS handshake with https://{tls}"))),
        "{tls_errors:?}"
    );
    // A redirect is not followed, never to another host; the page waits
    // (retried) for the URL to be fixed rather than being lost.
    assert!(
        !redirect.requests().is_empty(),
        "the redirecting receiver was never tried"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "a redirect was followed to another host"
    );
    assert_eq!(h.metrics.count("e-redirect", NotificationResult::Failed), 0);
    let redirect_errors = errors("e-redirect");
    let expected = format!(
        "HTTP 302: redirect to http://{} not followed; set the receiver's url to the final address",
        elsewhere.addr
    );
    assert!(
        !redirect_errors.is_empty() && redirect_errors.iter().all(|e| e == &expected),
        "{redirect_errors:?}"
    );
    h.stop().await;
}
