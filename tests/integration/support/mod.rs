//! What the integration tests share: the real `mailpulse` binary as a
//! daemon ([`Agent`]) and as a command ([`bin`]), the agent run in this
//! process ([`in_process::InProcessAgent`]), the one fake HTTP server
//! ([`HttpServer`], probe target and alert receiver), misbehaving peers,
//! throwaway TLS certificates, the one polling wait ([`wait_until`]), the
//! one scrape reader ([`metric`], [`promtool_check`]), real Alertmanager and
//! delivery-loop harnesses, a fleet of agents scraped by a real Prometheus
//! ([`fleet::Fleet`]), and readers of a process's `/proc` entries.
//! Every server binds 127.0.0.1 (127.0.0.2 and up stand for other hosts).
#![allow(dead_code)]

pub mod agent;
pub mod alertmanager;
pub mod chromium;
pub mod delivery;
pub mod fleet;
pub mod http;
pub mod in_process;
pub mod owa;
pub mod peers;
pub mod prometheus;
pub mod proxy;
pub mod scrape;
pub mod tls;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

pub use agent::Agent;
pub use http::{api_request, basic_auth, get, get_on, HttpServer, Reply};
pub use scrape::{metric, promtool, promtool_check};

/// How often [`wait_until`] polls.
pub const POLL: Duration = Duration::from_millis(20);

/// Heavy tests hold it to write, the others' shares of the machine to read.
static LOAD: RwLock<()> = RwLock::new(());

thread_local! {
    /// Whether this thread's test holds [`heavy`].
    static HEAVY_HERE: Cell<bool> = const { Cell::new(false) };
    /// This thread's read guard of [`LOAD`], and how many [`Share`]s use it.
    static SHARES: RefCell<(usize, Option<RwLockReadGuard<'static, ()>>)> =
        const { RefCell::new((0, None)) };
}

/// Held by a test that loads the machine (a flood, a hundred hostile
/// targets, a node toolchain): it waits until no other test runs an
/// [`Agent`] or a [`timed`] section, and none starts until it ends. All
/// tests share one process and the machine's cores; when each file was its
/// own test binary, these ran alone.
pub fn heavy() -> Heavy {
    let guard = LOAD.write().unwrap_or_else(PoisonError::into_inner);
    HEAVY_HERE.with(|h| h.set(true));
    Heavy(guard)
}

/// See [`heavy`].
pub struct Heavy(RwLockWriteGuard<'static, ()>);

impl Drop for Heavy {
    fn drop(&mut self) {
        HEAVY_HERE.with(|h| h.set(false));
    }
}

/// Held by a test while it checks real time against a tight bound (a phase
/// within 20 ms of a server's delay, an exit within 2 s): no [`heavy`] test
/// runs meanwhile. Every [`Agent`] holds one too.
pub fn timed() -> Share {
    Share::take()
}

/// Held by a test that keeps a core busy for seconds (an hour of paused
/// time): no [`heavy`] test runs meanwhile.
pub fn busy() -> Share {
    Share::take()
}

/// A test's share of the machine, which [`heavy`] tests wait for. Shares
/// of one thread (one test) take the lock once, so a test that holds one
/// never queues behind a waiting heavy test for another; a heavy test's
/// own shares are free. It stays on the thread that took it.
pub struct Share {
    /// Whether it took part in this thread's count (not on a heavy thread).
    counted: bool,
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl Share {
    fn take() -> Share {
        let counted = !HEAVY_HERE.with(Cell::get);
        if counted {
            SHARES.with(|s| {
                let mut s = s.borrow_mut();
                if s.0 == 0 {
                    s.1 = Some(LOAD.read().unwrap_or_else(PoisonError::into_inner));
                }
                s.0 += 1;
            });
        }
        Share {
            counted,
            _this_thread: std::marker::PhantomData,
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        SHARES.with(|s| {
            let mut s = s.borrow_mut();
            s.0 -= 1;
            if s.0 == 0 {
                s.1 = None;
            }
        });
    }
}

/// Path of the binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mailpulse"))
}

/// Runs `mailpulse ARGS` to completion.
pub fn mailpulse(args: &[&str]) -> std::process::Output {
    Command::new(bin()).args(args).output().unwrap()
}

/// `mailpulse incidents --json --config CFG`, one JSON object a line;
/// fails if the command does (the store does not open, say).
pub fn incidents(config: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(bin())
        .args(["incidents", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mailpulse incidents failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A `[[target]]` of kind `http` for a configuration file.
pub fn http_target(name: &str, url: &str, interval: &str, timeout: &str) -> String {
    format!(
        "[[target]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"{interval}\"\ntimeout = \"{timeout}\"\n"
    )
}

/// How long a load run lasts: `default`, or the whole seconds in the
/// environment variable `var` (`MAILPULSE_FLOOD_SECS=60`).
pub fn secs_from_env(var: &str, default: Duration) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(default, Duration::from_secs)
}

/// A port on 127.0.0.1 that nothing listens on now, for an agent to bind.
/// It is taken below the kernel's ephemeral range (32768 and up), where
/// outgoing connections and `bind(0)` listeners get their ports, so none of
/// those can take it before the agent binds; and each call takes the next
/// port of a sequence that starts at an offset of this process's PID, so
/// test processes running at once do not pick the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(131) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SPAN, "no free port left in {FIRST}..{}", FIRST + SPAN);
        let port = (FIRST + (start + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path
}

/// The prober of the first target of `toml`, written to `dir/c.toml` (so
/// the files it names resolve in `dir`) and loaded like the agent loads it.
pub fn load_prober(dir: &Path, toml: &str) -> mailpulse::probe::Prober {
    let path = write_file(dir, "c.toml", toml);
    let config = mailpulse::config::load(&path).unwrap_or_else(|e| panic!("{e}\n{toml}"));
    mailpulse::probe::Prober::new(&config.targets[0]).unwrap()
}

/// One probe through the library, started now, on time.
pub async fn probe_once(prober: &mailpulse::probe::Prober) -> mailpulse::sample::Sample {
    mailpulse::probe::run(prober, chrono::Utc::now(), Duration::ZERO).await
}

/// What a condition polled by [`wait_until`] returns: `true` once it holds,
/// or `Some(value)` once there is a value to return.
pub trait Ready {
    /// What [`wait_until`] returns.
    type Value;
    /// `Some` once ready.
    fn ready(self) -> Option<Self::Value>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Ready for Option<T> {
    type Value = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Polls `cond` every [`POLL`] (on the tokio clock, so paused-time tests
/// wait in virtual time) until it is ready, and returns its value; fails
/// naming `what` once `limit` has passed.
pub async fn wait_until<R, Fut>(what: &str, limit: Duration, cond: impl FnMut() -> Fut) -> R::Value
where
    R: Ready,
    Fut: Future<Output = R>,
{
    wait_until_or(what, limit, String::new, cond).await
}

/// [`wait_until`], failing with what `context` says then (a log, what
/// arrived so far).
pub async fn wait_until_or<R, Fut>(
    what: &str,
    limit: Duration,
    context: impl FnOnce() -> String,
    cond: impl FnMut() -> Fut,
) -> R::Value
where
    R: Ready,
    Fut: Future<Output = R>,
{
    match poll_until(limit, cond).await {
        Some(value) => value,
        None => panic!(
            "timed out after {limit:?} waiting for {what}; {}",
            context()
        ),
    }
}

/// The one polling loop: `cond` every [`POLL`] until it is ready (its
/// value) or `limit` has passed (`None`), for a caller that does not fail
/// then (a peer that may not start).
pub async fn poll_until<R, Fut>(limit: Duration, mut cond: impl FnMut() -> Fut) -> Option<R::Value>
where
    R: Ready,
    Fut: Future<Output = R>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = cond().await.ready() {
            return Some(value);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether `GET path` on `addr` answers 200 within `limit`: a server in
/// another process has started.
pub async fn answers(addr: SocketAddr, path: &str, limit: Duration) -> bool {
    poll_until(limit, || async {
        matches!(get(addr, path).await, Some((200, _)))
    })
    .await
    .is_some()
}

/// The resident set of process `pid` in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The descriptors process `pid` has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Saves `n` closed slow incidents of `target` in `store`, ten minutes apart
/// from a fixed instant, `per_commit` to a transaction (which fixes the
/// file's layout of pages, for tests that damage it).
pub fn save_closed_incidents(
    store: &mailpulse::store::Store,
    target: &str,
    n: usize,
    per_commit: usize,
) {
    use mailpulse::store::incidents::{save, Batch};
    let records: Vec<mailpulse::detect::Incident> = (0..n)
        .map(|i| {
            let start =
                chrono::DateTime::from_timestamp(1_780_000_000 + i as i64 * 600, 0).unwrap();
            serde_json::from_value(serde_json::json!({
                "kind": "slow",
                "started_at": start,
                "detected_at": start + chrono::Duration::seconds(30),
                "recovered_at": start + chrono::Duration::seconds(300),
                "closed_at": start + chrono::Duration::seconds(330),
                "peak_latency": {"secs": 2, "nanos": 0},
                "baseline_at_onset": {"secs": 0, "nanos": 100_000_000},
                "worst_phase": "first_byte",
                "slow_count": 10,
                "failed_count": 0
            }))
            .unwrap()
        })
        .collect();
    for chunk in records.chunks(per_commit) {
        let batch = Batch {
            detectors: Vec::new(),
            incidents: chunk.iter().map(|i| (target, i)).collect(),
        };
        save(store, &batch).unwrap();
    }
}
