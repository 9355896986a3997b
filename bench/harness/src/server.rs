//! The probe target: a small HTTP/1.1 server on 127.0.0.1 whose answers take
//! a known time, and which measures what it actually did.
//!
//! One thread per connection, blocking IO, one response per connection
//! (`Connection: close`), head and body in one write. Routes:
//! - `/t/...`: 200 at once (the fleet of the memory, CPU and scale runs);
//! - `/acc/<who>/<ms>`: 200 after sleeping `ms` milliseconds, and the request
//!   is logged: its path, when it was accepted, when its head was read and when
//!   the response was written (the truth the accuracy run compares with);
//! - `/status/<code>`: that status at once;
//! - `/sleep/<ms>`: 200 after `ms` (not logged);
//! - `/flap/<period_s>/<slow_s>/<ms>`: slow (`ms`) during the first `slow_s`
//!   seconds of every `period_s` of wall-clock time, fast otherwise;
//! - `/_log`: the logged requests, one per line, then forgotten.
//!
//! `bench/run.sh` starts it as its own process under a real-time priority
//! (`chrt -f`) for the accuracy run, so a CPU hog on normal priority does not
//! disturb the reference clock.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Stack of each connection thread: they only parse one request line.
const THREAD_STACK: usize = 64 * 1024;
/// Longest request head read.
const MAX_HEAD: usize = 16 * 1024;
/// Longest time a connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One logged request.
struct Record {
    path: String,
    /// Response written minus connection accepted.
    total: Duration,
    /// Response written minus request head read.
    first_byte: Duration,
    /// Wall clock when the response was written, in microseconds since the epoch.
    done_unix_us: u128,
}

/// Runs the server on `port` until killed. Prints `ready` once listening.
pub fn run(port: u16) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("ready");
    let log: Arc<Mutex<Vec<Record>>> = Arc::new(Mutex::new(Vec::new()));
    for stream in listener.incoming() {
        let accepted = Instant::now();
        let Ok(stream) = stream else { continue };
        let log = log.clone();
        let spawned = thread::Builder::new()
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let _ = handle(stream, accepted, &log);
            });
        if spawned.is_err() {
            // Out of threads: drop this connection, keep serving.
            thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}

fn handle(mut stream: TcpStream, accepted: Instant, log: &Mutex<Vec<Record>>) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut buf = [0u8; MAX_HEAD];
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        if buf[..filled].windows(4).any(|w| w == b"\r\n\r\n") || filled == buf.len() {
            break;
        }
    }
    let head_read = Instant::now();
    let head = String::from_utf8_lossy(&buf[..filled]);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let num = |i: usize| {
        parts
            .get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut status = 200;
    let mut body = String::from("ok\n");
    let mut logged = false;
    match parts[0] {
        "acc" => {
            sleep_ms(num(2));
            logged = true;
        }
        "sleep" => sleep_ms(num(1)),
        "status" => status = num(1).clamp(100, 599) as u16,
        "flap" => {
            let (period, slow, ms) = (num(1).max(1), num(2), num(3));
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            if now.as_secs() % period < slow {
                sleep_ms(ms);
            }
        }
        "_log" => {
            let records = std::mem::take(&mut *log.lock().expect("log lock"));
            body = records
                .iter()
                .map(|r| {
                    format!(
                        "{} {} {} {}\n",
                        r.path,
                        r.total.as_nanos(),
                        r.first_byte.as_nanos(),
                        r.done_unix_us
                    )
                })
                .collect();
        }
        _ => {}
    }
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        if status == 200 { "OK" } else { "Status" },
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    let written = Instant::now();
    let done_unix_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    if logged {
        log.lock().expect("log lock").push(Record {
            path,
            total: written - accepted,
            first_byte: written - head_read,
            done_unix_us,
        });
    }
    let _ = stream.shutdown(Shutdown::Write);
    // Drain what the client still sends so the close is orderly.
    let _ = stream.read(&mut buf);
    Ok(())
}

fn sleep_ms(ms: u64) {
    if ms > 0 {
        thread::sleep(Duration::from_millis(ms));
    }
}

/// A logged request as the harness reads it back from `/_log`.
#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub total_s: f64,
    pub first_byte_s: f64,
    pub done_unix_us: u128,
}

/// Parses the `/_log` answer.
pub fn parse_log(text: &str) -> Vec<Logged> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(Logged {
                path: f.next()?.to_string(),
                total_s: f.next()?.parse::<f64>().ok()? / 1e9,
                first_byte_s: f.next()?.parse::<f64>().ok()? / 1e9,
                done_unix_us: f.next()?.parse().ok()?,
            })
        })
        .collect()
}
