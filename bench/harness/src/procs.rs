//! The processes the harness starts, and what `/proc` says about them.
//!
//! Every process is started here, remembered by PID, and stopped by that PID
//! (SIGTERM, then SIGKILL after a grace period); a [`Proc`] that is dropped,
//! on an error path too, stops its process. CPU time is `utime + stime` from
//! `/proc/<pid>/stat` (it includes threads that have exited), memory is
//! `VmRSS`, `RssAnon`, `RssFile` and `VmHWM` from `/proc/<pid>/status`.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::Client;

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`).
pub const CLK_TCK: f64 = 100.0;
/// How long a stopped process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A process the harness started.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, cmd: &mut Command, log_dir: &Path) -> io::Result<Proc> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{name}.log")))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
        Ok(Proc {
            name: name.to_string(),
            child,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> io::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(io::Error::other(format!("{} exited: {status}", self.name))),
        }
    }

    /// CPU seconds and memory now.
    pub fn usage(&self) -> io::Result<Usage> {
        usage(self.pid())
    }

    /// Stops the process by its PID: SIGTERM, then SIGKILL after the grace period.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resource usage of one process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User plus system CPU seconds since the process started.
    pub cpu_s: f64,
    /// Resident set, bytes.
    pub rss: u64,
    /// Anonymous resident memory (heap, stacks), bytes.
    pub rss_anon: u64,
    /// File-backed resident memory (the mapped binary and libraries), bytes.
    pub rss_file: u64,
    /// Peak resident set, bytes.
    pub hwm: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn usage(pid: u32) -> io::Result<Usage> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("bad stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; `after` starts at field 3.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let cpu_s = (ticks(14) + ticks(15)) as f64 / CLK_TCK;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Usage {
        cpu_s,
        rss: kb("VmRSS:") * 1024,
        rss_anon: kb("RssAnon:") * 1024,
        rss_file: kb("RssFile:") * 1024,
        hwm: kb("VmHWM:") * 1024,
        threads: kb("Threads:"),
    })
}

/// A free TCP port on 127.0.0.1 (bound and released; the window for a race is tiny).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The loopback address of `port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until `GET path` on `port` answers 200, or fails after `limit`.
pub fn wait_http(proc: &mut Proc, port: u16, path: &str, limit: Duration) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    let mut client = Client::new(local(port));
    loop {
        proc.check_alive()?;
        if let Ok(r) = client.get(path) {
            if r.status == 200 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "{} did not answer {path} on port {port} within {limit:?}",
                proc.name
            )));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Busy-loops until `seconds` have passed (the CPU hog, one per core).
pub fn hog(seconds: f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut x: u64 = 1;
    while Instant::now() < deadline {
        for _ in 0..100_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        std::hint::black_box(x);
    }
}
