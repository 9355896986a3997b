//! `mailpulse-profile`: heap allocations and time of mailpulse's hot paths,
//! measured in-process with a counting global allocator.
//!
//! - one HTTP probe (`probe::run`) of a loopback server that allocates nothing;
//! - recording one sample into the probe metrics, and feeding it to detection;
//! - one `/metrics` page with 50 targets: `gather()`, then the text encoding
//!   (mailpulse's own and the `prometheus` crate's, for comparison);
//! - the latency histograms' footprint and quantile error (`footprint`).
//!
//! Prints a Markdown table; `bench/profile.sh` runs it. Counts are for the
//! whole process while the measured call runs; the loopback server is
//! written so that it never allocates, so they are the agent's own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mailpulse::incident::Incidents;
use mailpulse::metrics::Metrics;
use mailpulse::probe::{self, Prober};
use prometheus::Encoder as _;

mod footprint;

/// Counts allocations (and bytes) made through the system allocator.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not yet freed.
static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only
// counts on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations, bytes and time of `f`, averaged over `n` calls.
fn measure<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, f64, Duration) {
    let (a0, b0) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(f());
    }
    let took = start.elapsed() / n as u32;
    let (a1, b1) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    (
        (a1 - a0) as f64 / n as f64,
        (b1 - b0) as f64 / n as f64,
        took,
    )
}

/// A loopback HTTP server that answers every connection with a fixed
/// response and never touches the heap.
fn serve(listener: TcpListener) {
    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
    let mut buf = [0u8; 4096];
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let mut filled = 0;
        while let Ok(n) = s.read(&mut buf[filled..]) {
            if n == 0 {
                break;
            }
            filled += n;
            if buf[..filled].windows(4).any(|w| w == b"\r\n\r\n") || filled == buf.len() {
                break;
            }
        }
        let _ = s.write_all(RESPONSE);
    }
}

const TARGETS: usize = 50;

fn row(what: &str, (allocs, bytes, took): (f64, f64, Duration)) {
    println!(
        "| {what} | {allocs:.1} | {:.1} | {:.1} |",
        bytes / 1024.0,
        took.as_secs_f64() * 1e6
    );
}

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || serve(listener));

    let mut text = String::new();
    for i in 0..TARGETS {
        text.push_str(&format!(
            "[[target]]\nname = \"t{i:04}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/t/{i}\"\ninterval = \"1s\"\n\n"
        ));
    }
    let config = mailpulse::config::parse(&text, None).expect("config");
    let probers: Vec<Prober> = config
        .targets
        .iter()
        .map(|t| Prober::new(t).expect("prober"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    println!("| path | allocations per call | KiB allocated per call | µs per call |");
    println!("|---|---:|---:|---:|");

    // Warm up every prober once, and keep one sample per target.
    let samples: Vec<_> = probers
        .iter()
        .map(|p| runtime.block_on(probe::run(p, chrono::Utc::now(), Duration::ZERO)))
        .collect();
    assert!(
        samples.iter().all(|s| s.success()),
        "{:?}",
        samples[0].failure
    );
    let mut i = 0;
    row(
        "HTTP probe (`probe::run`, loopback, fresh connection)",
        measure(2000, || {
            i += 1;
            runtime.block_on(probe::run(
                &probers[i % TARGETS],
                chrono::Utc::now(),
                Duration::ZERO,
            ))
        }),
    );

    let metrics = Metrics::new("profile").expect("metrics");
    for s in &samples {
        metrics.probe.record(s);
    }
    let mut i = 0;
    row(
        "record a sample (`ProbeMetrics::record`)",
        measure(20_000, || {
            i += 1;
            metrics.probe.record(&samples[i % TARGETS])
        }),
    );

    let mut incidents = Incidents::load(None, &config.targets).expect("incidents");
    let mut i = 0;
    row(
        "detection (`Incidents::detect`)",
        measure(20_000, || {
            i += 1;
            incidents.detect(&samples[i % TARGETS])
        }),
    );

    for t in &config.targets {
        metrics.detect.add_target(&t.name);
    }
    row(
        "scrape: `Metrics::encode` (gather + text)",
        measure(500, || metrics.encode()),
    );
    row(
        "scrape: `Registry::gather` alone",
        measure(500, || metrics.registry.gather()),
    );
    let families = metrics.registry.gather();
    row(
        "scrape: mailpulse's text encoder alone",
        measure(500, || {
            let mut out = Vec::with_capacity(512 * 1024);
            mailpulse::metrics::text::encode(&families, &mut out);
            out
        }),
    );
    row(
        "scrape: the crate's `TextEncoder` alone",
        measure(500, || {
            let mut out = Vec::with_capacity(512 * 1024);
            let _ = prometheus::TextEncoder::new().encode(&families, &mut out);
            out
        }),
    );
    println!(
        "\n{TARGETS} HTTP targets; the page is {} KiB.",
        metrics.encode().len() / 1024
    );

    // Leak check of the sample path: probe, record, detect, scrape, with
    // failing targets too, many rounds; the heap still in use must not grow.
    let refused = TcpListener::bind("127.0.0.1:0").expect("bind");
    let refused_port = refused.local_addr().expect("addr").port();
    drop(refused);
    let mut text = String::new();
    for i in 0..TARGETS {
        let url = if i % 5 == 0 {
            format!("http://127.0.0.1:{refused_port}/")
        } else {
            format!("http://127.0.0.1:{port}/t/{i}")
        };
        text.push_str(&format!(
            "[[target]]\nname = \"t{i:04}\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"100ms\"\n\n"
        ));
    }
    let config = mailpulse::config::parse(&text, None).expect("config");
    let probers: Vec<Prober> = config
        .targets
        .iter()
        .map(|t| Prober::new(t).expect("prober"))
        .collect();
    let metrics = Metrics::new("leak").expect("metrics");
    let mut incidents = Incidents::load(None, &config.targets).expect("incidents");
    let mut round = |n: usize| {
        for _ in 0..n {
            for p in &probers {
                let s = runtime.block_on(probe::run(p, chrono::Utc::now(), Duration::ZERO));
                metrics.probe.record(&s);
                if let Some(e) = incidents.detect(&s) {
                    metrics.detect.record_event(&s.target, &e);
                }
            }
            drop(metrics.page());
        }
    };
    round(40);
    let warm = LIVE.load(Ordering::Relaxed);
    round(400);
    let after = LIVE.load(Ordering::Relaxed);
    println!(
        "\nLeak check: {} probes (1 in 5 refused), each recorded and detected, a page every {TARGETS}: heap in use {:.1} KiB after warm-up, {:.1} KiB after {} more probes ({:+.1} KiB).",
        440 * TARGETS,
        warm as f64 / 1024.0,
        after as f64 / 1024.0,
        400 * TARGETS,
        (after - warm) as f64 / 1024.0
    );
    footprint::report();
}
