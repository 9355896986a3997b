//! `mailpulse-bench`: the performance benchmark of mailpulse against
//! node_exporter + blackbox_exporter, run side by side on one machine.
//!
//! `bench/run.sh` is the documented entry point; it installs the peers, builds
//! mailpulse and this harness, and calls `mailpulse-bench run`. Each scenario
//! writes its section to `<out>/<scenario>.md` and its verdict rows to
//! `<out>/<scenario>.verdict`; `compose` joins the sections present into
//! `bench/RESULTS.md`, so one scenario can be re-run alone.
//!
//! Subcommands:
//! - `run --mailpulse BIN [--quick] [--only s1,s2] [--out DIR] [--results FILE]`
//! - `compose [--out DIR] [--results FILE]`
//! - `serve --port P` (the probe target; started by `run`)
//! - `hog --seconds S` (one busy core; started by `run`, killed by PID)

mod http;
mod procs;
mod prom;
mod report;
mod scenarios;
mod server;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

/// How long and how much each scenario measures.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `quick` or `full`.
    pub mode: &'static str,
    /// Side by side: warm-up and measuring window, seconds.
    pub side_warmup: u64,
    pub side_window: u64,
    /// Scrapes of each `/metrics` for the latency figures.
    pub scrapes: usize,
    /// Accuracy: probes per delay and agent.
    pub accuracy_samples: usize,
    /// Scale: target counts, warm-up and window per step, seconds.
    pub scale_targets: Vec<usize>,
    pub scale_warmup: u64,
    pub scale_window: u64,
    /// Steady state: seconds at 10x rate, and seconds between memory samples.
    pub steady_seconds: u64,
    pub steady_every: u64,
    /// Incident storm: seconds (samples every `steady_every`).
    pub incidents_seconds: u64,
}

impl Plan {
    fn quick() -> Plan {
        Plan {
            mode: "quick",
            side_warmup: 15,
            side_window: 60,
            scrapes: 1000,
            accuracy_samples: 25,
            scale_targets: vec![0, 10, 200, 2000],
            scale_warmup: 8,
            scale_window: 20,
            steady_seconds: 60,
            steady_every: 2,
            incidents_seconds: 120,
        }
    }

    fn full() -> Plan {
        Plan {
            mode: "full",
            side_warmup: 60,
            side_window: 480,
            scrapes: 1000,
            accuracy_samples: 150,
            scale_targets: vec![0, 10, 100, 500, 1000, 2000],
            scale_warmup: 15,
            scale_window: 90,
            steady_seconds: 900,
            steady_every: 5,
            incidents_seconds: 900,
        }
    }
}

/// Every scenario, in report order.
pub const SCENARIOS: [&str; 5] = ["side", "accuracy", "scale", "steady", "incidents"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => {
            let port = flag(&args, "--port").and_then(|p| p.parse().ok()).unwrap_or(0);
            server::run(port).map_err(|e| e.to_string())
        }
        Some("hog") => {
            let s = flag(&args, "--seconds").and_then(|p| p.parse().ok()).unwrap_or(10.0);
            procs::hog(s);
            Ok(())
        }
        Some("scrape") => {
            let port = flag(&args, "--port").and_then(|p| p.parse().ok()).unwrap_or(9106);
            let count = flag(&args, "--count").and_then(|p| p.parse().ok()).unwrap_or(1000);
            let path = flag(&args, "--path").unwrap_or_else(|| "/metrics".into());
            let then = flag(&args, "--then").and_then(|p| p.parse().ok());
            let gap = flag(&args, "--gap-ms").and_then(|p| p.parse().ok()).unwrap_or(0);
            scrape_times(port, &path, count, then, gap).map_err(|e| e.to_string())
        }
        Some("compose") => report::compose(&out_dir(&args), &results_file(&args)).map_err(|e| e.to_string()),
        Some("run") => run(&args),
        _ => Err("usage: mailpulse-bench run --mailpulse BIN [--quick] [--only side,accuracy,scale,steady,incidents] [--steady-seconds N] [--out DIR] [--results FILE] | serve --port P | scrape --port P [--path P] [--count N] [--then PORT] [--gap-ms MS] | compose [--out DIR] [--results FILE]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mailpulse-bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// Times `count` GETs of `path` (default `/metrics`) on one kept-alive connection, as the side
/// scenario does, and prints the quantiles: a quick check while working on the page. With
/// `then`, each GET is followed by one on that port (timed too, as the side scenario
/// alternates); `gap_ms` pauses before every GET.
fn scrape_times(
    port: u16,
    path: &str,
    count: usize,
    then: Option<u16>,
    gap_ms: u64,
) -> std::io::Result<()> {
    let local = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let ports: Vec<u16> = std::iter::once(port).chain(then).collect();
    let mut clients: Vec<http::Client> =
        ports.iter().map(|p| http::Client::new(local(*p))).collect();
    let gap = std::time::Duration::from_millis(gap_ms);
    let timed = scenarios::timed_gets(&mut clients, path, count, gap)?;
    for (port, t) in ports.iter().zip(&timed) {
        let times = &t.times;
        println!(
            "port {port}: {count} scrapes of {} bytes: median {} ms, p90 {} ms, p99 {} ms, max {} ms",
            t.bytes,
            stats::ms(stats::median(times)),
            stats::ms(stats::quantile(times, 0.9)),
            stats::ms(stats::quantile(times, 0.99)),
            stats::ms(stats::quantile(times, 1.0)),
        );
    }
    Ok(())
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn out_dir(args: &[String]) -> PathBuf {
    PathBuf::from(flag(args, "--out").unwrap_or_else(|| "bench/out".into()))
}

fn results_file(args: &[String]) -> PathBuf {
    PathBuf::from(flag(args, "--results").unwrap_or_else(|| "bench/RESULTS.md".into()))
}

fn run(args: &[String]) -> Result<(), String> {
    let mailpulse = flag(args, "--mailpulse").ok_or("--mailpulse BIN is required")?;
    let mut plan = if args.iter().any(|a| a == "--quick") {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(s) = flag(args, "--steady-seconds") {
        plan.steady_seconds = s
            .parse()
            .map_err(|_| format!("--steady-seconds {s:?}: not a whole number of seconds"))?;
        // About a thousand samples whatever the length.
        plan.steady_every = plan.steady_every.max(plan.steady_seconds / 1000);
    }
    let only: Vec<String> = flag(args, "--only")
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| SCENARIOS.iter().map(|s| s.to_string()).collect());
    for s in &only {
        if !SCENARIOS.contains(&s.as_str()) {
            return Err(format!(
                "unknown scenario {s:?} (known: {})",
                SCENARIOS.join(", ")
            ));
        }
    }
    let out = out_dir(args);
    let env = scenarios::Env::new(PathBuf::from(mailpulse), out.clone(), plan)
        .map_err(|e| e.to_string())?;
    report::write_machine(&env).map_err(|e| e.to_string())?;
    for s in SCENARIOS {
        if !only.iter().any(|o| o == s) {
            continue;
        }
        eprintln!("== {s} ({})", env.plan.mode);
        let started = std::time::Instant::now();
        let section = match s {
            "side" => scenarios::side(&env),
            "accuracy" => scenarios::accuracy(&env),
            "scale" => scenarios::scale(&env),
            "incidents" => scenarios::incidents(&env),
            _ => scenarios::steady(&env),
        }
        .map_err(|e| format!("scenario {s}: {e}"))?;
        report::write_section(&env, s, &section).map_err(|e| e.to_string())?;
        eprintln!("== {s} done in {:.0} s", started.elapsed().as_secs_f64());
    }
    report::compose(&out, &results_file(args)).map_err(|e| e.to_string())
}
