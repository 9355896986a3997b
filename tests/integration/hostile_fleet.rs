//! A hundred hostile targets at once against the real binary: slow drips,
//! endless lines, huge bodies, TLS garbage and resets (in-process servers on
//! 127.0.0.1), plus three well-behaved web targets. The agent's resident
//! memory stays under [`RSS_BOUND`] and the good targets keep their schedule.
//!
//! Runs for [`RUN_FOR`] by default; `MAILPULSE_HOSTILE_SECS` lengthens it.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{metric, rss_kib, write_file, Agent, HttpServer, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Hostile targets in the fleet.
const HOSTILE: usize = 100;
/// How long the fleet runs (default).
const RUN_FOR: Duration = Duration::from_secs(10);
/// Probe interval and timeout of the hostile targets: every probe of theirs
/// runs into its timeout or a cap, so 100 are in flight most of the time.
const HOSTILE_INTERVAL: &str = "1s";
const HOSTILE_TIMEOUT: &str = "900ms";
/// Interval of the good targets, in milliseconds.
const GOOD_INTERVAL_MS: u64 = 200;
/// Peak resident memory allowed. An idle agent takes about 15 MiB. Every
/// probe is capped: a mail dialogue at 64 KiB per response plus an 8 KiB
/// line, an HTTP body at `max_body_bytes` (1 MiB by default, 64 KiB here),
/// hyper's header buffer at about 400 KiB. A hundred probes in flight at
/// worst half a MiB each is 50 MiB; 96 MiB leaves room for allocator slack
/// while still catching any buffer that grows with what the server sends
/// (a 100 MB body or an endless line would blow through it at once).
const RSS_BOUND_KIB: u64 = 96 * 1024;

/// What a hostile server does with every connection.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// One byte of a plausible greeting every 50 ms, forever.
    SlowDrip,
    /// A line that never ends.
    EndlessLine,
    /// An HTTP 200 with a 1 GB body, sent as fast as the client reads.
    HugeBody,
    /// Random bytes where a TLS handshake should be.
    TlsGarbage,
    /// Accept, then reset (RST) at once.
    Reset,
}

async fn serve(kind: Hostile) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(hostile(kind, stream));
        }
    });
    addr
}

async fn hostile(kind: Hostile, mut s: TcpStream) {
    // Drain whatever the probe sends so its writes never block.
    let chunk = vec![b'x'; 64 * 1024];
    match kind {
        Hostile::SlowDrip => {
            for b in b"220 slow.example ESMTP and a very long greeting that drips"
                .iter()
                .cycle()
            {
                if s.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Hostile::EndlessLine => {
            let _ = s.write_all(b"220 ").await;
            while s.write_all(&chunk).await.is_ok() {}
        }
        Hostile::HugeBody => {
            let mut head = [0u8; 1024];
            let _ = s.read(&mut head).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
                .await;
            while s.write_all(&chunk).await.is_ok() {}
        }
        Hostile::TlsGarbage => {
            let garbage: Vec<u8> = (0..16 * 1024).map(|_| fastrand::u8(..)).collect();
            while s.write_all(&garbage).await.is_ok() {}
        }
        Hostile::Reset => {
            let _ = s.set_zero_linger();
            drop(s);
        }
    }
}

fn target(name: &str, kind: Hostile, addr: SocketAddr, i: usize) -> String {
    let timing = format!("interval = \"{HOSTILE_INTERVAL}\"\ntimeout = \"{HOSTILE_TIMEOUT}\"\n");
    let body = match (kind, i % 4) {
        (Hostile::HugeBody, _) => {
            format!("kind = \"http\"\nurl = \"http://{addr}/\"\nmax_body_bytes = 65536\n")
        }
        (Hostile::TlsGarbage, 0) => format!("kind = \"http\"\nurl = \"https://{addr}/\"\n"),
        (Hostile::TlsGarbage, 1) => {
            format!("kind = \"imap\"\naddress = \"{addr}\"\ntls = \"implicit\"\n")
        }
        (Hostile::TlsGarbage, _) => {
            format!("kind = \"smtp\"\naddress = \"{addr}\"\ntls = \"implicit\"\n")
        }
        (_, 0) => format!("kind = \"http\"\nurl = \"http://{addr}/\"\n"),
        (_, 1) => format!("kind = \"smtp\"\naddress = \"{addr}\"\ntls = \"none\"\n"),
        (_, 2) => format!("kind = \"imap\"\naddress = \"{addr}\"\ntls = \"none\"\n"),
        (_, _) => format!("kind = \"pop3\"\naddress = \"{addr}\"\ntls = \"none\"\n"),
    };
    format!("[[target]]\nname = \"{name}\"\n{body}{timing}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_hostile_targets_keep_memory_bounded_and_good_targets_on_time() {
    let _heavy = support::heavy();
    let run_for = support::secs_from_env("MAILPULSE_HOSTILE_SECS", RUN_FOR);
    let kinds = [
        Hostile::SlowDrip,
        Hostile::EndlessLine,
        Hostile::HugeBody,
        Hostile::TlsGarbage,
        Hostile::Reset,
    ];
    let mut servers = Vec::new();
    for kind in kinds {
        servers.push((kind, serve(kind).await));
    }
    let good = HttpServer::start().await;
    good.route("/", Reply::ok("ok"));

    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let mut text = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\nphase_histograms = true\nstate_dir = \"{}\"\n[host]\nenabled = false\n",
        dir.path().join("state").display()
    );
    for i in 0..HOSTILE {
        let (kind, addr) = servers[i % servers.len()];
        text.push_str(&target(
            &format!("hostile{i:03}"),
            kind,
            addr,
            i / servers.len(),
        ));
    }
    let goods = ["good1", "good2", "good3"];
    for name in goods {
        let interval = format!("{GOOD_INTERVAL_MS}ms");
        text.push_str(&support::http_target(
            name,
            &good.url("/"),
            &interval,
            "150ms",
        ));
    }
    let cfg = write_file(dir.path(), "c.toml", &text);
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[("RUST_LOG", "info")]).await;
    let pid = agent.child.id();

    // One interval for every target to start (starts are spread over it).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before: Vec<f64> = futures_counts(&agent, &goods).await;
    let start = tokio::time::Instant::now();
    let mut peak = 0;
    while start.elapsed() < run_for {
        peak = peak.max(rss_kib(pid));
        assert!(
            peak <= RSS_BOUND_KIB,
            "agent RSS {peak} KiB is over {RSS_BOUND_KIB} KiB"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = start.elapsed();
    let after = futures_counts(&agent, &goods).await;
    let expected = elapsed.as_millis() as f64 / GOOD_INTERVAL_MS as f64;
    for ((name, b), a) in goods.iter().zip(&before).zip(&after) {
        let done = a - b;
        assert!(
            done >= expected * 0.9 - 1.0,
            "{name}: {done} successful probes in {elapsed:?}, expected about {expected}"
        );
    }

    // Every start, hostile or good, within 100 ms of its schedule.
    let scrape = agent.scrape().await;
    let lag_count = metric(&scrape, "mailpulse_probe_schedule_lag_seconds_count", &[]).unwrap();
    let on_time = metric(
        &scrape,
        "mailpulse_probe_schedule_lag_seconds_bucket",
        &[("le", "0.1")],
    )
    .unwrap();
    assert!(
        on_time / lag_count >= 0.99,
        "{on_time} of {lag_count} probe starts within 100 ms"
    );
    // The hostile targets did run and failed.
    assert_eq!(
        metric(
            &scrape,
            "mailpulse_probe_success",
            &[("target", "hostile002")]
        ),
        Some(0.0)
    );
    eprintln!(
        "hostile fleet: {HOSTILE} hostile targets for {elapsed:?}: peak RSS {peak} KiB (bound {RSS_BOUND_KIB}), \
         {lag_count} starts, {on_time} within 100 ms"
    );
}

async fn futures_counts(agent: &Agent, names: &[&str]) -> Vec<f64> {
    let mut out = Vec::new();
    for name in names {
        out.push(agent.probes(name, "connect").await);
    }
    out
}
