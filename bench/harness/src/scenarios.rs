//! The scenarios: each starts the processes it measures, drives them on
//! loopback for a bounded time, stops them by PID and returns its section of
//! the report.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::http::Client;
use crate::procs::{self, local, Proc, Usage};
use crate::prom;
use crate::stats::{self, median, mib, ms, quantile};
use crate::Plan;

/// How long a started process gets to answer its first request.
const START_LIMIT: Duration = Duration::from_secs(30);
/// The peers' Debian binaries.
pub const NODE_EXPORTER: &str = "prometheus-node-exporter";
pub const BLACKBOX_EXPORTER: &str = "prometheus-blackbox-exporter";
/// Real-time priority of the probe target in the accuracy run.
const TARGET_RT_PRIORITY: &str = "20";

/// What every scenario needs.
pub struct Env {
    pub mailpulse: PathBuf,
    pub harness: PathBuf,
    pub out: PathBuf,
    pub work: PathBuf,
    pub plan: Plan,
    pub cores: usize,
}

impl Env {
    pub fn new(mailpulse: PathBuf, out: PathBuf, plan: Plan) -> io::Result<Env> {
        fs::create_dir_all(&out)?;
        // Absolute, because mailpulse reads paths relative to its config file.
        let out = fs::canonicalize(&out)?;
        let work = out.join("work");
        fs::create_dir_all(&work)?;
        let mailpulse = fs::canonicalize(&mailpulse)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", mailpulse.display())))?;
        Ok(Env {
            mailpulse,
            harness: std::env::current_exe()?,
            out,
            work,
            plan,
            cores: thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        })
    }
}

/// One row of the verdict table.
pub struct Verdict {
    pub target: String,
    pub figure: String,
    pub met: bool,
}

/// What a scenario reports.
pub struct Section {
    pub verdicts: Vec<Verdict>,
    pub body: String,
}

// ---------------------------------------------------------------------------
// Starting things

/// The probe target server, optionally at real-time priority.
fn start_target(env: &Env, realtime: bool) -> io::Result<(Proc, u16)> {
    let port = procs::free_port()?;
    let mut cmd = if realtime && chrt_works() {
        let mut c = Command::new("chrt");
        c.args(["-f", TARGET_RT_PRIORITY]).arg(&env.harness);
        c
    } else {
        Command::new(&env.harness)
    };
    cmd.args(["serve", "--port", &port.to_string()]);
    let mut p = Proc::spawn("target", &mut cmd, &env.work)?;
    procs::wait_http(&mut p, port, "/t/ready", START_LIMIT)?;
    Ok((p, port))
}

fn chrt_works() -> bool {
    Command::new("chrt")
        .args(["-f", TARGET_RT_PRIORITY, "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// A mailpulse target line set.
struct MpTarget {
    name: String,
    url: String,
    interval: &'static str,
    timeout: Option<&'static str>,
}

fn mp_targets_fleet(n: usize, server: u16, interval: &'static str) -> Vec<MpTarget> {
    (0..n)
        .map(|i| MpTarget {
            name: format!("t{i:04}"),
            url: format!("http://127.0.0.1:{server}/t/{i}"),
            interval,
            timeout: None,
        })
        .collect()
}

/// The state directory of the mailpulse started as `name`.
fn state_dir(env: &Env, name: &str) -> PathBuf {
    env.work.join(format!("{name}-state"))
}

/// Starts `mailpulse run` with these targets and a fresh state directory.
fn start_mailpulse(
    env: &Env,
    name: &str,
    host_interval: &str,
    targets: &[MpTarget],
    agent_extra: &str,
) -> io::Result<(Proc, u16)> {
    let port = procs::free_port()?;
    let state = state_dir(env, name);
    let _ = fs::remove_dir_all(&state);
    fs::create_dir_all(&state)?;
    let mut cfg = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\ninstance = \"bench\"\nstate_dir = \"{}\"\nlog_level = \"warn\"\n{agent_extra}\n[host]\ninterval = \"{host_interval}\"\n",
        state.display()
    );
    for t in targets {
        let _ = write!(
            cfg,
            "\n[[target]]\nname = \"{}\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"{}\"\n",
            t.name, t.url, t.interval
        );
        if let Some(timeout) = t.timeout {
            let _ = writeln!(cfg, "timeout = \"{timeout}\"");
        }
    }
    let path = env.work.join(format!("{name}.toml"));
    fs::write(&path, cfg)?;
    let mut cmd = Command::new(&env.mailpulse);
    cmd.arg("run").arg("--config").arg(&path);
    let mut p = Proc::spawn(name, &mut cmd, &env.work)?;
    procs::wait_http(&mut p, port, "/metrics", START_LIMIT)?;
    Ok((p, port))
}

fn start_node(env: &Env) -> io::Result<(Proc, u16)> {
    let port = procs::free_port()?;
    let mut cmd = Command::new(NODE_EXPORTER);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // No systemd here: the collector would only log an error per scrape.
        .arg("--no-collector.systemd");
    let mut p = Proc::spawn("node_exporter", &mut cmd, &env.work)?;
    procs::wait_http(&mut p, port, "/metrics", START_LIMIT)?;
    Ok((p, port))
}

fn start_blackbox(env: &Env) -> io::Result<(Proc, u16)> {
    let port = procs::free_port()?;
    let cfg = env.work.join("blackbox.yml");
    fs::write(
        &cfg,
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n",
    )?;
    let mut cmd = Command::new(BLACKBOX_EXPORTER);
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let mut p = Proc::spawn("blackbox_exporter", &mut cmd, &env.work)?;
    procs::wait_http(&mut p, port, "/metrics", START_LIMIT)?;
    Ok((p, port))
}

/// Starts one busy process per core for `seconds`; each also stops by itself.
fn start_hogs(env: &Env, seconds: u64) -> io::Result<Vec<Proc>> {
    (0..env.cores)
        .map(|i| {
            let mut cmd = Command::new(&env.harness);
            cmd.args(["hog", "--seconds", &seconds.to_string()]);
            Proc::spawn(&format!("hog{i}"), &mut cmd, &env.work)
        })
        .collect()
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// A background loop that runs `step` every `every` until stopped.
struct Loop {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Loop {
    fn every(every: Duration, mut step: impl FnMut() + Send + 'static) -> Loop {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                step();
                next += every;
                let now = Instant::now();
                if next > now {
                    sleep_checking(next - now, &flag);
                } else {
                    next = now;
                }
            }
        });
        Loop {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn sleep_checking(d: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        thread::sleep((deadline - now).min(Duration::from_millis(100)));
    }
}

/// Samples the usage of several processes every second over a window.
fn watch(procs: &mut [&mut Proc], seconds: u64) -> io::Result<Vec<Vec<Usage>>> {
    let mut series = vec![Vec::new(); procs.len()];
    let start = Instant::now();
    for tick in 0..=seconds {
        for (p, s) in procs.iter_mut().zip(series.iter_mut()) {
            p.check_alive()?;
            s.push(p.usage()?);
        }
        if tick < seconds {
            let next = start + Duration::from_secs(tick + 1);
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
    Ok(series)
}

/// CPU seconds per hour over a series (first to last sample).
fn cpu_per_hour(series: &[Usage], seconds: f64) -> f64 {
    let first = series.first().map(|u| u.cpu_s).unwrap_or(0.0);
    let last = series.last().map(|u| u.cpu_s).unwrap_or(0.0);
    (last - first) / seconds * 3600.0
}

fn rss_median(series: &[Usage]) -> f64 {
    median(&series.iter().map(|u| u.rss as f64).collect::<Vec<_>>())
}

fn verdict(target: &str, met: bool, figure: String) -> Verdict {
    Verdict {
        target: target.to_string(),
        figure,
        met,
    }
}

// ---------------------------------------------------------------------------
// Side by side: memory, CPU and scrape latency with 50 HTTP targets

/// Targets of the side-by-side run.
const SIDE_TARGETS: usize = 50;

pub fn side(env: &Env) -> io::Result<Section> {
    let plan = &env.plan;
    let (_server, sport) = start_target(env, false)?;
    let targets = mp_targets_fleet(SIDE_TARGETS, sport, "1s");
    let (mut mp, mport) = start_mailpulse(env, "mailpulse-side", "15s", &targets, "")?;
    let (mut node, nport) = start_node(env)?;
    let (mut bb, bport) = start_blackbox(env)?;

    // Prometheus emulation for blackbox_exporter: every target probed once a
    // second, spread over the second, on one kept-alive connection.
    let bb_ok = Arc::new(AtomicU64::new(0));
    let bb_fail = Arc::new(AtomicU64::new(0));
    let bb_loop = {
        let (ok, fail) = (bb_ok.clone(), bb_fail.clone());
        let mut client = Client::new(local(bport));
        let mut i = 0usize;
        Loop::every(
            Duration::from_millis(1000 / SIDE_TARGETS as u64),
            move || {
                let path = format!(
                    "/probe?module=http_2xx&target=http://127.0.0.1:{sport}/t/{}",
                    i % SIDE_TARGETS
                );
                i += 1;
                match client.get(&path) {
                    Ok(r) if r.status == 200 && r.text().contains("probe_success 1") => {
                        ok.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => fail.fetch_add(1, Ordering::Relaxed),
                };
            },
        )
    };
    // Prometheus scraping mailpulse and node_exporter every 15 s.
    let scrape_loop = {
        let mut m = Client::new(local(mport));
        let mut n = Client::new(local(nport));
        Loop::every(Duration::from_secs(15), move || {
            let _ = m.get("/metrics");
            let _ = n.get("/metrics");
        })
    };

    thread::sleep(Duration::from_secs(plan.side_warmup));
    let window = plan.side_window;
    let series = watch(&mut [&mut mp, &mut node, &mut bb], window)?;
    drop(scrape_loop);

    // Scrape latency: alternate mailpulse and node_exporter, 1,000 each, on
    // kept-alive connections, while blackbox keeps probing. First spaced (the
    // verdict), then back to back (reported beside it).
    let mut clients = [Client::new(local(mport)), Client::new(local(nport))];
    let [spaced_m, spaced_n]: [Timed; 2] =
        timed_gets(&mut clients, "/metrics", plan.scrapes, SCRAPE_GAP)?
            .try_into()
            .map_err(|_| io::Error::other("two endpoints, two results"))?;
    let [b2b_m, b2b_n]: [Timed; 2] =
        timed_gets(&mut clients, "/metrics", plan.scrapes, Duration::ZERO)?
            .try_into()
            .map_err(|_| io::Error::other("two endpoints, two results"))?;
    let [mut m, _] = clients;
    let (mt, nt) = (spaced_m.times, spaced_n.times);
    let (mbytes, mlines, nbytes, nlines) = (
        spaced_m.bytes,
        spaced_m.lines,
        spaced_n.bytes,
        spaced_n.lines,
    );
    drop(bb_loop);
    let mp_scrape = m.get("/metrics")?.text();
    let mp_end = mp.usage()?;
    let (node_end, bb_end) = (node.usage()?, bb.usage()?);

    let w = window as f64;
    let (mp_cpu, node_cpu, bb_cpu) = (
        cpu_per_hour(&series[0], w),
        cpu_per_hour(&series[1], w),
        cpu_per_hour(&series[2], w),
    );
    let (mp_rss, node_rss, bb_rss) = (
        rss_median(&series[0]),
        rss_median(&series[1]),
        rss_median(&series[2]),
    );
    let pair_rss = node_rss + bb_rss;
    let pair_cpu = node_cpu + bb_cpu;
    let probes_mp = 0.0
        + prom::parse(&mp_scrape)
            .iter()
            .filter(|s| {
                s.name == "mailpulse_probe_duration_seconds_count"
                    && s.label("phase") == Some("total")
            })
            .map(|s| s.value)
            .sum::<f64>();
    let mp_fail = 0.0
        + prom::parse(&mp_scrape)
            .iter()
            .filter(|s| s.name == "mailpulse_probe_failures_total")
            .map(|s| s.value)
            .sum::<f64>();

    let (mmed, mp99, nmed, np99) = (
        median(&mt),
        quantile(&mt, 0.99),
        median(&nt),
        quantile(&nt, 0.99),
    );
    let mem_ratio = mp_rss / pair_rss;
    let cpu_ratio = mp_cpu / pair_cpu;
    let verdicts = vec![
        verdict(
            "Resident memory, 50 HTTP targets + host: at most 1/4 of node_exporter + blackbox_exporter",
            mem_ratio <= 0.25,
            format!(
                "{} MiB vs {} MiB: ratio {:.3}",
                mib(mp_rss),
                mib(pair_rss),
                mem_ratio
            ),
        ),
        verdict(
            "CPU seconds per hour, 1 s probes, 15 s scrapes: at most 1/4 of the pair",
            cpu_ratio <= 0.25,
            format!("{mp_cpu:.1} s/h vs {pair_cpu:.1} s/h: ratio {cpu_ratio:.3}"),
        ),
        verdict(
            "`/metrics` scrape latency, median: at most 1/5 of node_exporter's",
            mmed / nmed <= 0.2,
            format!("{} ms vs {} ms: ratio {:.3}", ms(mmed), ms(nmed), mmed / nmed),
        ),
        verdict(
            "`/metrics` scrape latency, p99: at most 1/5 of node_exporter's",
            mp99 / np99 <= 0.2,
            format!("{} ms vs {} ms: ratio {:.3}", ms(mp99), ms(np99), mp99 / np99),
        ),
    ];

    let mut body = String::new();
    let _ = writeln!(body, "Three processes at once on the same machine and targets: mailpulse probing {SIDE_TARGETS} HTTP targets every 1 s with host collection every 15 s; blackbox_exporter probing the same {SIDE_TARGETS} targets through `/probe`, called once a second per target by the harness (as Prometheus would scrape it, one kept-alive connection, requests spread over the second); node_exporter with its default collectors (`--no-collector.systemd`: no systemd here). mailpulse and node_exporter were scraped every 15 s. Targets: the harness's own HTTP server on 127.0.0.1 (answers `200 ok` at once, one connection per probe). Warm-up {} s, then {window} s measured: CPU is the growth of `utime + stime` (`/proc/<pid>/stat`, 10 ms ticks) over the window, scaled to an hour; memory is the median of `VmRSS` (`/proc/<pid>/status`) sampled every second.\n", plan.side_warmup);
    let _ = writeln!(body, "| process | RSS median (MiB) | RSS at end: anon + file (MiB) | peak RSS (MiB) | threads | CPU s per hour |");
    let _ = writeln!(body, "|---|---:|---:|---:|---:|---:|");
    for (name, s, end, cpu) in [
        ("mailpulse", &series[0], mp_end, mp_cpu),
        ("node_exporter", &series[1], node_end, node_cpu),
        ("blackbox_exporter", &series[2], bb_end, bb_cpu),
    ] {
        let _ = writeln!(
            body,
            "| {name} | {} | {} + {} | {} | {} | {cpu:.1} |",
            mib(rss_median(s)),
            mib(end.rss_anon as f64),
            mib(end.rss_file as f64),
            mib(end.hwm as f64),
            end.threads
        );
    }
    let _ = writeln!(
        body,
        "| node_exporter + blackbox_exporter | {} | | | | {pair_cpu:.1} |\n",
        mib(pair_rss)
    );
    let _ = writeln!(body, "Probes in the run: mailpulse {probes_mp:.0} successful, {mp_fail:.0} failed; blackbox_exporter {} successful, {} failed.\n", bb_ok.load(Ordering::Relaxed), bb_fail.load(Ordering::Relaxed));
    let _ = writeln!(body, "Scrape latency: {} scrapes of each, alternating, on kept-alive connections, timed by the harness from writing the request to reading the last body byte, while blackbox_exporter kept probing. No `Accept-Encoding`, so neither compresses. The verdict is on the spaced pass: a pause of {} ms before every scrape, so that each starts on a machine at rest from the one before, as Prometheus's scrapes, seconds apart, do. The back-to-back pass that follows starts each scrape the moment the other exporter's ended, so it also measures what that exporter is still doing then (node_exporter's garbage collector, for one); it is reported for comparison.\n", plan.scrapes, SCRAPE_GAP.as_millis());
    let _ = writeln!(
        body,
        "| endpoint | pass | median (ms) | p90 (ms) | p99 (ms) | max (ms) | body | lines |"
    );
    let _ = writeln!(body, "|---|---|---:|---:|---:|---:|---:|---:|");
    for (name, pass, t, bytes, lines) in [
        ("mailpulse", "spaced", &mt, mbytes, mlines),
        ("node_exporter", "spaced", &nt, nbytes, nlines),
        ("mailpulse", "back to back", &b2b_m.times, mbytes, mlines),
        (
            "node_exporter",
            "back to back",
            &b2b_n.times,
            nbytes,
            nlines,
        ),
    ] {
        let _ = writeln!(
            body,
            "| {name} | {pass} | {} | {} | {} | {} | {} KiB | {lines} |",
            ms(median(t)),
            ms(quantile(t, 0.9)),
            ms(quantile(t, 0.99)),
            ms(quantile(t, 1.0)),
            bytes / 1024
        );
    }
    save_tsv(
        env,
        "side-scrapes",
        &[
            "mailpulse_s",
            "node_exporter_s",
            "mailpulse_back_to_back_s",
            "node_exporter_back_to_back_s",
        ],
        &[&mt, &nt, &b2b_m.times, &b2b_n.times],
    )?;
    Ok(Section { verdicts, body })
}

/// The pause before each scrape of the spaced pass.
const SCRAPE_GAP: Duration = Duration::from_millis(25);

/// One endpoint's timed GETs: each time in seconds, and the last body's size.
pub struct Timed {
    /// Each GET, writing the request to reading the last body byte.
    pub times: Vec<f64>,
    /// The last body's bytes.
    pub bytes: usize,
    /// The last body's lines.
    pub lines: usize,
}

/// `count` rounds of one GET of `path` on each client in turn (kept-alive
/// connections), each after a pause of `gap`.
pub fn timed_gets(
    clients: &mut [Client],
    path: &str,
    count: usize,
    gap: Duration,
) -> io::Result<Vec<Timed>> {
    let mut timed: Vec<Timed> = clients
        .iter()
        .map(|_| Timed {
            times: Vec::with_capacity(count),
            bytes: 0,
            lines: 0,
        })
        .collect();
    for _ in 0..count {
        for (client, t) in clients.iter_mut().zip(&mut timed) {
            if !gap.is_zero() {
                thread::sleep(gap);
            }
            let start = Instant::now();
            let r = client.get(path)?;
            t.times.push(start.elapsed().as_secs_f64());
            t.bytes = r.body.len();
            t.lines = r.body.iter().filter(|b| **b == b'\n').count();
        }
    }
    Ok(timed)
}

fn save_tsv(env: &Env, name: &str, header: &[&str], cols: &[&[f64]]) -> io::Result<()> {
    let mut text = header.join("\t");
    text.push('\n');
    let rows = cols.iter().map(|c| c.len()).max().unwrap_or(0);
    for i in 0..rows {
        let row: Vec<String> = cols
            .iter()
            .map(|c| c.get(i).map(|v| format!("{v}")).unwrap_or_default())
            .collect();
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    fs::write(env.out.join(format!("{name}.tsv")), text)
}

// ---------------------------------------------------------------------------
// Probe accuracy under a CPU hog

/// Added delays of the accuracy run, milliseconds.
const DELAYS_MS: [u64; 4] = [0, 10, 100, 1000];
/// Time between probes of one delay, for both agents.
const ACCURACY_INTERVAL: Duration = Duration::from_secs(2);

/// One probe result paired with the server's record.
#[derive(Clone, Copy)]
struct Paired {
    reported_total: f64,
    reported_fb: f64,
    truth_total: f64,
    truth_fb: f64,
}

/// A paired result and the path it was for.
type PairedAt = (String, Paired);

/// An agent's report before pairing: path, when it was seen, total, first byte.
type Observation = (String, u128, f64, f64);

/// One measuring phase of the accuracy run: `n` probes per delay and agent,
/// with or without the CPU hog. Returns the paired results of mailpulse and
/// of blackbox_exporter.
#[allow(clippy::too_many_arguments)]
fn accuracy_phase(
    env: &Env,
    n: usize,
    hog: bool,
    sport: u16,
    mport: u16,
    bport: u16,
    mp: &mut Proc,
    bb: &mut Proc,
) -> io::Result<(Vec<PairedAt>, Vec<PairedAt>)> {
    let seconds = n as u64 * ACCURACY_INTERVAL.as_secs() + 40;
    let mut hogs = if hog {
        let h = start_hogs(env, seconds + 20)?;
        thread::sleep(Duration::from_secs(4));
        h
    } else {
        Vec::new()
    };
    let measure_from = now_us();

    // mailpulse: poll /metrics and note each new latest probe.
    let mp_obs: Arc<Mutex<Vec<Observation>>> = Arc::default();
    let poll = {
        let obs = mp_obs.clone();
        let mut client = Client::new(local(mport));
        let mut last: HashMap<u64, f64> = HashMap::new();
        Loop::every(Duration::from_millis(200), move || {
            let Ok(r) = client.get("/metrics") else {
                return;
            };
            let seen = now_us();
            let samples = prom::parse(&r.text());
            for d in DELAYS_MS {
                let name = format!("acc-{d}");
                let get = |phase: &str| {
                    prom::find(
                        &samples,
                        "mailpulse_probe_last_duration_seconds",
                        &[("target", &name), ("phase", phase)],
                    )
                    .map(|s| s.value)
                };
                let (Some(total), Some(fb)) = (get("total"), get("first_byte")) else {
                    continue;
                };
                let previous = last.insert(d, total);
                if previous.is_some_and(|p| p != total) && seen > measure_from {
                    obs.lock()
                        .expect("obs")
                        .push((format!("/acc/mp/{d}"), seen, total, fb));
                }
            }
        })
    };

    // blackbox_exporter: one thread per delay, a /probe every interval.
    let bb_obs: Arc<Mutex<Vec<Observation>>> = Arc::default();
    let bb_threads: Vec<_> = DELAYS_MS
        .iter()
        .map(|&d| {
            let obs = bb_obs.clone();
            thread::spawn(move || {
                let mut client = Client::new(local(bport));
                let mut next = Instant::now();
                for _ in 0..n {
                    let path = format!(
                        "/probe?module=http_2xx&target=http://127.0.0.1:{sport}/acc/bb/{d}"
                    );
                    if let Ok(r) = client.get(&path) {
                        let seen = now_us();
                        let s = prom::parse(&r.text());
                        let phase = |p: &str| {
                            prom::find(&s, "probe_http_duration_seconds", &[("phase", p)])
                                .map(|x| x.value)
                                .unwrap_or(0.0)
                        };
                        let total: f64 = ["resolve", "connect", "tls", "processing", "transfer"]
                            .iter()
                            .map(|p| phase(p))
                            .sum();
                        obs.lock().expect("obs").push((
                            format!("/acc/bb/{d}"),
                            seen,
                            total,
                            phase("processing"),
                        ));
                    }
                    next += ACCURACY_INTERVAL;
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        })
        .collect();
    for t in bb_threads {
        let _ = t.join();
    }
    // Let mailpulse reach the same count (it started with the run).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let have = mp_obs.lock().expect("obs").len();
        if have >= n * DELAYS_MS.len() {
            break;
        }
        mp.check_alive()?;
        thread::sleep(Duration::from_millis(200));
    }
    drop(poll);
    for h in &mut hogs {
        h.stop();
    }
    bb.check_alive()?;
    let log = crate::server::parse_log(&Client::new(local(sport)).get("/_log")?.text());

    let mp_pairs = pair(&mp_obs.lock().expect("obs"), &log);
    let bb_pairs = pair(&bb_obs.lock().expect("obs"), &log);
    Ok((mp_pairs, bb_pairs))
}

pub fn accuracy(env: &Env) -> io::Result<Section> {
    let plan = &env.plan;
    let realtime = chrt_works();
    let (_server, sport) = start_target(env, true)?;
    let targets: Vec<MpTarget> = DELAYS_MS
        .iter()
        .map(|d| MpTarget {
            name: format!("acc-{d}"),
            url: format!("http://127.0.0.1:{sport}/acc/mp/{d}"),
            interval: "2s",
            timeout: Some("1900ms"),
        })
        .collect();
    let (mut mp, mport) = start_mailpulse(env, "mailpulse-accuracy", "15s", &targets, "")?;
    let (mut bb, bport) = start_blackbox(env)?;

    let idle_n = (plan.accuracy_samples / 4).max(10);
    let idle = accuracy_phase(env, idle_n, false, sport, mport, bport, &mut mp, &mut bb)?;
    let loaded = accuracy_phase(
        env,
        plan.accuracy_samples,
        true,
        sport,
        mport,
        bport,
        &mut mp,
        &mut bb,
    )?;
    mp.stop();
    bb.stop();

    let mut body = String::new();
    let _ = writeln!(body, "The probe target is the harness's own server on 127.0.0.1, {} so the CPU hog does not disturb the reference. For each delay it sleeps that long before answering and records, with its own monotonic clock, when it accepted the connection, when it had read the request head and when it wrote the response (head and body in one write). **Truth**: `first_byte` = response written minus request read; `total` = response written minus connection accepted. Both are slightly *shorter* than what a perfect client sees (they leave out the loopback transit, the connect handshake and the request write, together well under 0.1 ms here), so a perfect agent shows a small positive error.\n", if realtime { "run at real-time priority (`chrt -f 20`)" } else { "at normal priority (chrt was not usable)" });
    let _ = writeln!(body, "Both agents probe each delay every 2 s under the same load: {} busy-loop processes (one per core, normal priority, started 4 s before measuring, each stopping by itself and killed by PID at the end) keep both cores saturated. mailpulse runs as the daemon (4 targets, interval 2 s, timeout 1.9 s); its reports are read from `mailpulse_probe_last_duration_seconds` polled every 200 ms. blackbox_exporter is driven through `/probe`; its `total` is the sum of `probe_http_duration_seconds` phases and its `first_byte` the `processing` phase. Each report is paired with the server's record of the same request (same path, the last one finished before the report was seen). Errors are reported minus truth; the targets apply to their absolute value.\n", env.cores);
    let _ = writeln!(body, "First a control phase without the hog ({idle_n} probes per delay and agent), then the measured phase under the hog ({} per delay and agent). The verdict is on the loaded phase.\n", plan.accuracy_samples);
    let _ = writeln!(body, "| load | agent | delay | probes | `first_byte` error median / p99 (ms) | `total` error median / p99 (ms) | signed median fb / total (ms) |");
    let _ = writeln!(body, "|---|---|---:|---:|---:|---:|---:|");
    let mut mp_ok = true;
    let mut worst = (0.0f64, 0.0f64);
    let mut bb_worst = (0.0f64, 0.0f64);
    let runs = [
        ("idle", "mailpulse", &idle.0),
        ("idle", "blackbox_exporter", &idle.1),
        ("2-core hog", "mailpulse", &loaded.0),
        ("2-core hog", "blackbox_exporter", &loaded.1),
    ];
    for (load, agent, pairs) in runs {
        for d in DELAYS_MS {
            let p: Vec<Paired> = pairs
                .iter()
                .filter(|(path, _)| path.ends_with(&format!("/{d}")))
                .map(|(_, p)| *p)
                .collect();
            let fb: Vec<f64> = p.iter().map(|x| x.reported_fb - x.truth_fb).collect();
            let tot: Vec<f64> = p.iter().map(|x| x.reported_total - x.truth_total).collect();
            let afb: Vec<f64> = fb.iter().map(|v| v.abs()).collect();
            let atot: Vec<f64> = tot.iter().map(|v| v.abs()).collect();
            let (m_fb, p_fb, m_t, p_t) = (
                median(&afb),
                quantile(&afb, 0.99),
                median(&atot),
                quantile(&atot, 0.99),
            );
            let _ = writeln!(
                body,
                "| {load} | {agent} | {d} ms | {} | {} / {} | {} / {} | {} / {} |",
                p.len(),
                ms(m_fb),
                ms(p_fb),
                ms(m_t),
                ms(p_t),
                ms(median(&fb)),
                ms(median(&tot))
            );
            let med = m_fb.max(m_t);
            let p99 = p_fb.max(p_t);
            if load == "idle" {
                continue;
            }
            if agent == "mailpulse" {
                if p.is_empty() || med > 0.001 || p99 > 0.002 {
                    mp_ok = false;
                }
                worst = (worst.0.max(med), worst.1.max(p99));
            } else {
                bb_worst = (bb_worst.0.max(med), bb_worst.1.max(p99));
            }
        }
    }
    let all_mp: Vec<Paired> = loaded.0.iter().map(|(_, p)| *p).collect();
    save_tsv(
        env,
        "accuracy-mailpulse",
        &[
            "reported_total",
            "truth_total",
            "reported_first_byte",
            "truth_first_byte",
        ],
        &[
            &all_mp.iter().map(|p| p.reported_total).collect::<Vec<_>>(),
            &all_mp.iter().map(|p| p.truth_total).collect::<Vec<_>>(),
            &all_mp.iter().map(|p| p.reported_fb).collect::<Vec<_>>(),
            &all_mp.iter().map(|p| p.truth_fb).collect::<Vec<_>>(),
        ],
    )?;
    let verdicts = vec![verdict(
        "Probe accuracy under a 2-core CPU hog (0/10/100/1000 ms): `total` and `first_byte` within 1 ms (median) and 2 ms (p99) of the truth",
        mp_ok,
        format!(
            "worst delay: median {} ms, p99 {} ms (blackbox_exporter: {} / {} ms)",
            ms(worst.0),
            ms(worst.1),
            ms(bb_worst.0),
            ms(bb_worst.1)
        ),
    )];
    Ok(Section { verdicts, body })
}

/// Pairs each observation with the last server record of its path finished
/// before it was seen (a record is used once).
fn pair(obs: &[Observation], log: &[crate::server::Logged]) -> Vec<(String, Paired)> {
    let mut used = vec![false; log.len()];
    let mut out = Vec::new();
    // Reports can be noted a hair before the server logs the write: allow 20 ms.
    const SLACK_US: u128 = 20_000;
    for (path, seen, total, fb) in obs {
        let best = log
            .iter()
            .enumerate()
            .filter(|(i, r)| !used[*i] && &r.path == path && r.done_unix_us <= seen + SLACK_US)
            .max_by_key(|(_, r)| r.done_unix_us);
        if let Some((i, r)) = best {
            used[i] = true;
            out.push((
                path.clone(),
                Paired {
                    reported_total: *total,
                    reported_fb: *fb,
                    truth_total: r.total_s,
                    truth_fb: r.first_byte_s,
                },
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Scale: 0 to 2,000 targets at 1 s

pub fn scale(env: &Env) -> io::Result<Section> {
    let plan = &env.plan;
    let (_server, sport) = start_target(env, false)?;
    let mut rows = Vec::new();
    let mut body = String::new();
    for &n in &plan.scale_targets {
        eprintln!("   scale: {n} targets");
        let targets = mp_targets_fleet(n, sport, "1s");
        let (mut mp, mport) =
            start_mailpulse(env, &format!("mailpulse-scale-{n}"), "15s", &targets, "")?;
        let scrapes = {
            let mut c = Client::new(local(mport));
            Loop::every(Duration::from_secs(15), move || {
                let _ = c.get("/metrics");
            })
        };
        thread::sleep(Duration::from_secs(plan.scale_warmup));
        let mut client = Client::new(local(mport));
        let before = prom::parse(&client.get("/metrics")?.text());
        let series = watch(&mut [&mut mp], plan.scale_window)?;
        let after = prom::parse(&client.get("/metrics")?.text());
        drop(scrapes);
        let lag = prom::bucket_delta(
            &prom::buckets(&before, "mailpulse_probe_schedule_lag_seconds"),
            &prom::buckets(&after, "mailpulse_probe_schedule_lag_seconds"),
        );
        let count = |s: &[prom::Sample], name: &str| -> f64 {
            s.iter()
                .filter(|x| x.name == name && x.label("phase").is_none_or(|p| p == "total"))
                .map(|x| x.value)
                .sum()
        };
        let probes = count(&after, "mailpulse_probe_duration_seconds_count")
            - count(&before, "mailpulse_probe_duration_seconds_count");
        let failures = count(&after, "mailpulse_probe_failures_total")
            - count(&before, "mailpulse_probe_failures_total");
        let w = plan.scale_window as f64;
        let cpu = cpu_per_hour(&series[0], w);
        let end = *series[0].last().expect("samples");
        rows.push(ScaleRow {
            n,
            cpu_h: cpu,
            rss: rss_median(&series[0]),
            anon: end.rss_anon as f64,
            threads: end.threads,
            probes_per_s: probes / w,
            failures,
            lag_p50: prom::bucket_quantile(&lag, 0.5),
            lag_p99: prom::bucket_quantile(&lag, 0.99),
            under_10ms: prom::fraction_below(&lag, 0.01),
        });
        mp.stop();
        let _ = fs::remove_dir_all(env.work.join(format!("mailpulse-scale-{n}-state")));
    }
    let _ = writeln!(body, "mailpulse alone, one fresh daemon per step, N HTTP targets at a 1 s interval on the harness's server (127.0.0.1, `200 ok` at once), host collection every 15 s, scraped every 15 s. Warm-up {} s, then {} s measured. Schedule lag is the growth of the `mailpulse_probe_schedule_lag_seconds` histogram over the window, its quantiles interpolated inside buckets as `histogram_quantile` does; \"≤ 10 ms\" is the exact share in the buckets up to 10 ms. Per-target figures are the growth over the 0-target agent (host collection only) divided by N.\n", plan.scale_warmup, plan.scale_window);
    let _ = writeln!(body, "| targets | probes/s | failures | lag p50 (ms) | lag p99 (ms) | lag ≤ 10 ms | CPU s/h | CPU s/h per target | RSS (MiB) | anon (MiB) | RSS per target (KiB) | threads |");
    let _ = writeln!(
        body,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let base = rows.iter().find(|r| r.n == 0).map(|r| (r.cpu_h, r.rss));
    for r in &rows {
        let (per_cpu, per_rss) = match (base, r.n) {
            (Some((c, m)), n) if n > 0 => (
                format!("{:.3}", (r.cpu_h - c) / n as f64),
                format!("{:.1}", (r.rss - m) / n as f64 / 1024.0),
            ),
            _ => ("".into(), "".into()),
        };
        let opt = |v: Option<f64>| v.map(ms).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            body,
            "| {} | {:.1} | {:.0} | {} | {} | {} | {:.1} | {per_cpu} | {} | {} | {per_rss} | {} |",
            r.n,
            r.probes_per_s,
            r.failures,
            opt(r.lag_p50),
            opt(r.lag_p99),
            r.under_10ms
                .map(|f| format!("{:.2}%", f * 100.0))
                .unwrap_or_else(|| "-".into()),
            r.cpu_h,
            mib(r.rss),
            mib(r.anon),
            r.threads
        );
    }
    let top = rows.iter().max_by_key(|r| r.n);
    let verdicts = match top {
        Some(r) if r.n > 0 => vec![verdict(
            &format!(
                "Scale: {} targets at 1 s on {} cores, schedule lag p99 under 10 ms",
                r.n, env.cores
            ),
            r.under_10ms.is_some_and(|f| f >= 0.99) && r.probes_per_s >= 0.95 * r.n as f64,
            format!(
                "p99 {} ms ({} of starts ≤ 10 ms), {:.0} probes/s, {:.1} CPU s/h, {} MiB RSS",
                r.lag_p99.map(ms).unwrap_or_default(),
                r.under_10ms
                    .map(|f| format!("{:.2}%", f * 100.0))
                    .unwrap_or_default(),
                r.probes_per_s,
                r.cpu_h,
                mib(r.rss)
            ),
        )],
        _ => Vec::new(),
    };
    Ok(Section { verdicts, body })
}

struct ScaleRow {
    n: usize,
    cpu_h: f64,
    rss: f64,
    anon: f64,
    threads: u64,
    probes_per_s: f64,
    failures: f64,
    lag_p50: Option<f64>,
    lag_p99: Option<f64>,
    under_10ms: Option<f64>,
}

// ---------------------------------------------------------------------------
// Steady state: an accelerated day

/// Real seconds of one day at 10x.
const ACCELERATED_DAY_S: f64 = 86_400.0 / 10.0;

/// The machine's 1-minute load average, or 0 when it cannot be read.
fn loadavg_1m() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

pub fn steady(env: &Env) -> io::Result<Section> {
    let plan = &env.plan;
    let (_server, sport) = start_target(env, false)?;
    let refused = procs::free_port()?;
    let mut targets = mp_targets_fleet(40, sport, "100ms");
    let mut add = |name: String, url: String| {
        targets.push(MpTarget {
            name,
            url,
            interval: "100ms",
            timeout: None,
        })
    };
    for i in 0..2 {
        add(
            format!("status500-{i}"),
            format!("http://127.0.0.1:{sport}/status/500"),
        );
        add(
            format!("refused-{i}"),
            format!("http://127.0.0.1:{refused}/"),
        );
        add(
            format!("timeout-{i}"),
            format!("http://127.0.0.1:{sport}/sleep/150"),
        );
    }
    // Down for 90 s of every 6 minutes (an hour-long cycle at 10x): incidents open
    // (after the detector's default `for`, 60 s) and close (`recover_for`, 2 min).
    for i in 0..4 {
        add(
            format!("flap-{i}"),
            format!("http://127.0.0.1:{sport}/flap/360/90/200"),
        );
    }
    let (mut mp, mport) = start_mailpulse(
        env,
        "mailpulse-steady",
        "1500ms",
        &targets,
        // Without the periodic trim, whose drops would hide a slow growth.
        "memory_trim = \"0s\"\n",
    )?;
    let scrapes = {
        let mut c = Client::new(local(mport));
        Loop::every(Duration::from_millis(1500), move || {
            let _ = c.get("/metrics");
        })
    };
    let start = Instant::now();
    let mut points = Vec::new();
    let mut hwm = 0;
    // Written as the run goes, so a long run can be watched and a broken one still tells.
    let mut tsv = fs::File::create(env.out.join("steady-rss.tsv"))?;
    writeln!(
        tsv,
        "seconds\trss_bytes\trss_anon_bytes\trss_file_bytes\tloadavg_1m"
    )?;
    let mut reported = 0;
    let mut loads = Vec::new();
    while start.elapsed().as_secs() < plan.steady_seconds {
        mp.check_alive()?;
        let u = mp.usage()?;
        hwm = u.hwm;
        let t = start.elapsed().as_secs_f64();
        let load = loadavg_1m();
        points.push((t, u.rss as f64, u.rss_anon as f64));
        loads.push(load);
        writeln!(
            tsv,
            "{t:.1}\t{}\t{}\t{}\t{load:.2}",
            u.rss, u.rss_anon, u.rss_file
        )?;
        if t as u64 >= reported + 300 {
            reported = t as u64;
            eprintln!(
                "steady: {t:.0} s, RSS {} MiB (anonymous {}, file {})",
                mib(u.rss as f64),
                mib(u.rss_anon as f64),
                mib(u.rss_file as f64)
            );
        }
        thread::sleep(Duration::from_secs(plan.steady_every));
    }
    drop(scrapes);
    let scrape = prom::parse(&Client::new(local(mport)).get("/metrics")?.text());
    let sum = |name: &str| -> f64 {
        scrape
            .iter()
            .filter(|s| s.name == name && s.label("phase").is_none_or(|p| p == "total"))
            .map(|s| s.value)
            .sum()
    };
    let probes =
        sum("mailpulse_probe_duration_seconds_count") + sum("mailpulse_probe_failures_total");
    let incidents = sum("mailpulse_incidents_total");
    let cpu = mp.usage()?.cpu_s;
    mp.stop();

    let total = plan.steady_seconds as f64;
    let warm = total * 0.3;
    let after: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.0 >= warm)
        .map(|p| (p.0, p.1))
        .collect();
    let after_anon: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.0 >= warm)
        .map(|p| (p.0, p.2))
        .collect();
    let slope = stats::slope(&after); // bytes per second
    let slope_anon = stats::slope(&after_anon);
    let q = after.len() / 4;
    let first_q = median(&after[..q.max(1)].iter().map(|p| p.1).collect::<Vec<_>>());
    let last_q = median(
        &after[after.len() - q.max(1)..]
            .iter()
            .map(|p| p.1)
            .collect::<Vec<_>>(),
    );
    let per_day = slope * ACCELERATED_DAY_S;
    // "No growth": the fitted trend adds less than 1 MiB over a whole accelerated day.
    let met = per_day < 1024.0 * 1024.0;
    let simulated_h = total * 10.0 / 3600.0;
    let mut body = String::new();
    let span = if total >= ACCELERATED_DAY_S {
        "a whole accelerated day".to_string()
    } else {
        format!(
            "a whole accelerated day would be {:.1} h, so the day is extrapolated from the trend",
            ACCELERATED_DAY_S / 3600.0
        )
    };
    let _ = writeln!(body, "mailpulse at 10x rate for {total:.0} s ({simulated_h:.1} simulated hours; {span}): 50 HTTP targets every 100 ms (40 healthy, 2 answering 500, 2 refused, 2 timing out, 4 down for 90 s of every 6 min, so an incident opens (after 60 s) and closes for each every 6 min), host collection every 1.5 s, scraped every 1.5 s. RSS sampled every {} s; the first 30% is warm-up; the trend is a least-squares line through the rest. The agent runs with `memory_trim = \"0s\"`: the periodic trim (on by default) would drop the RSS every 10 minutes and hide a slow growth. `steady-rss.tsv` has every sample, with anonymous and file-backed RSS apart, and the machine's load average: the run must have the machine to itself, because anything that loads the CPU makes the agent's probes overlap and raises the allocator's high-water mark, which without the trim is never given back.\n", plan.steady_every);
    let _ = writeln!(body, "| figure | value |\n|---|---:|");
    let _ = writeln!(
        body,
        "| probes run | {probes:.0} ({:.0}/s) |",
        probes / total
    );
    let _ = writeln!(body, "| incidents opened | {incidents:.0} |");
    let _ = writeln!(body, "| CPU seconds (whole run) | {cpu:.1} |");
    let _ = writeln!(
        body,
        "| machine's 1-minute load average (median, highest) | {:.2}, {:.2} |",
        median(&loads),
        loads.iter().copied().fold(0.0, f64::max)
    );
    let _ = writeln!(
        body,
        "| RSS after warm-up, first quarter median | {} MiB |",
        mib(first_q)
    );
    let _ = writeln!(body, "| RSS, last quarter median | {} MiB |", mib(last_q));
    let _ = writeln!(body, "| peak RSS | {} MiB |", mib(hwm as f64));
    let _ = writeln!(
        body,
        "| RSS trend after warm-up | {:+.1} KiB per real hour ({:+.1} KiB per accelerated day) |",
        slope * 3600.0 / 1024.0,
        per_day / 1024.0
    );
    let _ = writeln!(
        body,
        "| anonymous RSS trend | {:+.1} KiB per real hour |",
        slope_anon * 3600.0 / 1024.0
    );
    let verdicts = vec![verdict(
        "Steady state: accelerated day (10x probe rate), no memory growth after warm-up",
        met,
        format!(
            "trend {:+.1} KiB per accelerated day over {simulated_h:.1} simulated hours; {} → {} MiB",
            per_day / 1024.0,
            mib(first_q),
            mib(last_q)
        ),
    )];
    Ok(Section { verdicts, body })
}

// ---------------------------------------------------------------------------
// Incident storm

/// Sums `mailpulse_incidents_total` over one scrape of the agent.
fn incidents_so_far(client: &mut Client) -> io::Result<f64> {
    let page = prom::parse(&client.get("/metrics")?.text());
    Ok(page
        .iter()
        .filter(|s| s.name == "mailpulse_incidents_total")
        .map(|s| s.value)
        .sum())
}

/// Memory against the number of incidents: ten targets flap every 6 s and the
/// detector opens after 1 s and closes after 2 s, so about 100 incidents open
/// and close a minute, each written to the store and handed to alerting. The
/// steady scenario sees about 110 incidents in a whole accelerated day; this
/// one shows in minutes what each incident leaves behind, and whether that
/// settles.
pub fn incidents(env: &Env) -> io::Result<Section> {
    let plan = &env.plan;
    let (_server, sport) = start_target(env, false)?;
    let mut targets = mp_targets_fleet(40, sport, "100ms");
    for i in 0..10 {
        targets.push(MpTarget {
            name: format!("flap-{i}"),
            url: format!("http://127.0.0.1:{sport}/flap/6/3/200"),
            interval: "100ms",
            timeout: None,
        });
    }
    let name = "mailpulse-incidents";
    let (mut mp, mport) = start_mailpulse(
        env,
        name,
        "1500ms",
        &targets,
        // No periodic trim (as in steady), and a detector quick enough to open
        // an incident inside every 3 s outage and close it inside every 3 s
        // recovery.
        "memory_trim = \"0s\"\n\n[slowdown]\nfor = \"1s\"\nrecover_for = \"2s\"\n",
    )?;
    let state_file = state_dir(env, name).join("mailpulse.redb");
    let mut client = Client::new(local(mport));
    let start = Instant::now();
    // (seconds, incidents, anonymous RSS, store file bytes)
    let mut points: Vec<(f64, f64, f64, f64)> = Vec::new();
    let mut tsv = fs::File::create(env.out.join("incidents-rss.tsv"))?;
    writeln!(
        tsv,
        "seconds\tincidents\trss_bytes\trss_anon_bytes\trss_file_bytes\tstore_bytes"
    )?;
    while start.elapsed().as_secs() < plan.incidents_seconds {
        mp.check_alive()?;
        let incidents = incidents_so_far(&mut client)?;
        let u = mp.usage()?;
        let store = fs::metadata(&state_file).map(|m| m.len()).unwrap_or(0);
        let t = start.elapsed().as_secs_f64();
        points.push((t, incidents, u.rss_anon as f64, store as f64));
        writeln!(
            tsv,
            "{t:.1}\t{incidents:.0}\t{}\t{}\t{}\t{store}",
            u.rss, u.rss_anon, u.rss_file
        )?;
        thread::sleep(Duration::from_secs(plan.steady_every));
    }
    let hwm = mp.usage()?.hwm;
    mp.stop();

    let total = points.last().map(|p| p.1).unwrap_or(0.0);
    let secs = plan.incidents_seconds as f64;
    // Anonymous RSS at the sample nearest each share of the incidents.
    let at_share = |share: f64| -> (f64, f64) {
        let want = total * share;
        points
            .iter()
            .min_by(|a, b| (a.1 - want).abs().total_cmp(&(b.1 - want).abs()))
            .map(|p| (p.1, p.2))
            .unwrap_or((0.0, 0.0))
    };
    // Growth per 1,000 incidents, least squares over each half of the run.
    let per_thousand = |from: f64, to: f64| -> f64 {
        let pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.1 >= total * from && p.1 <= total * to)
            .map(|p| (p.1, p.2))
            .collect();
        stats::slope(&pts) * 1000.0 / 1024.0
    };
    let store_end = points.last().map(|p| p.3).unwrap_or(0.0);
    let store_start = points.first().map(|p| p.3).unwrap_or(0.0);
    let mut body = String::new();
    let _ = writeln!(body, "mailpulse for {secs:.0} s with 50 HTTP targets every 100 ms: 40 healthy and 10 answering in 200 ms (past the 100 ms timeout) for 3 s of every 6 s, with `[slowdown] for = \"1s\"` and `recover_for = \"2s\"`, so each of the ten opens and closes an incident every 6 s. No receiver is configured (each incident logs that it matched no route); `memory_trim = \"0s\"` as in the steady scenario. Memory, the incident count (from `/metrics`, which is also the scrape load) and the store file's size are sampled every {} s into `incidents-rss.tsv`.\n", plan.steady_every);
    let _ = writeln!(body, "| figure | value |\n|---|---:|");
    let _ = writeln!(
        body,
        "| incidents opened | {total:.0} ({:.0} a minute) |",
        total / secs * 60.0
    );
    for share in [0.1, 0.25, 0.5, 0.75, 1.0] {
        let (n, anon) = at_share(share);
        let _ = writeln!(
            body,
            "| anonymous RSS after {n:.0} incidents | {} MiB |",
            mib(anon)
        );
    }
    let _ = writeln!(
        body,
        "| anonymous RSS growth, first half | {:+.0} KiB per 1,000 incidents |",
        per_thousand(0.0, 0.5)
    );
    let _ = writeln!(
        body,
        "| anonymous RSS growth, second half | {:+.0} KiB per 1,000 incidents |",
        per_thousand(0.5, 1.0)
    );
    let _ = writeln!(body, "| peak RSS | {} MiB |", mib(hwm as f64));
    let _ = writeln!(
        body,
        "| store file | {:.0} KiB at the first sample, {:.0} KiB at the end ({:.2} KiB more per incident) |",
        store_start / 1024.0,
        store_end / 1024.0,
        if total > 0.0 {
            (store_end - store_start) / 1024.0 / total
        } else {
            0.0
        }
    );
    Ok(Section {
        verdicts: Vec::new(),
        body,
    })
}
