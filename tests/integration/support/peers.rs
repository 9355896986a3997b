//! Misbehaving alert receivers on 127.0.0.1, for the fairness and secret
//! tests: a server that trickles its answer one byte at a time and never
//! finishes, one that answers with an endless body, a TLS server nobody
//! trusts, and servers that echo the request they got back in their error
//! answer (HTTP and SMTP), in the encodings real servers use.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::http::{read_request, HttpServer};

/// What [`trickle_server`] saw.
#[derive(Default)]
pub struct TrickleStats {
    /// Requests read.
    pub requests: AtomicUsize,
    /// Connections open now.
    pub open: AtomicUsize,
    /// Most connections open at once.
    pub max_open: AtomicUsize,
}

/// A server that reads each request, then trickles an answer head one byte
/// every 100 ms and never finishes it (for ten minutes at most).
pub async fn trickle_server() -> (SocketAddr, Arc<TrickleStats>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(TrickleStats::default());
    let shared = stats.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let stats = shared.clone();
            tokio::spawn(async move {
                let open = stats.open.fetch_add(1, Ordering::Relaxed) + 1;
                stats.max_open.fetch_max(open, Ordering::Relaxed);
                if read_request(&mut stream).await.is_some() {
                    stats.requests.fetch_add(1, Ordering::Relaxed);
                    let (mut rd, mut wr) = stream.split();
                    let head = b"HTTP/1.1 200 OK\r\nX-Slow: ";
                    let mut scratch = [0u8; 64];
                    for b in head.iter().chain(std::iter::repeat(&b'a')).take(6000) {
                        if wr.write_all(&[*b]).await.is_err() {
                            break;
                        }
                        // Notice at once when the client hangs up.
                        tokio::select! {
                            r = rd.read(&mut scratch) => if matches!(r, Ok(0) | Err(_)) { break },
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        }
                    }
                }
                stats.open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
    (addr, stats)
}

/// What [`huge_server`] saw.
#[derive(Default)]
pub struct HugeStats {
    /// Requests read.
    pub requests: AtomicUsize,
    /// Most body bytes one connection managed to write before the client
    /// stopped reading or went away.
    pub max_written: AtomicU64,
}

/// A server that answers `status` announcing a 1 GiB body and sends it as
/// fast as the client reads.
pub async fn huge_server(status: u16) -> (SocketAddr, Arc<HugeStats>) {
    const ANNOUNCED: u64 = 1 << 30;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(HugeStats::default());
    let shared = stats.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let stats = shared.clone();
            tokio::spawn(async move {
                if read_request(&mut stream).await.is_none() {
                    return;
                }
                stats.requests.fetch_add(1, Ordering::Relaxed);
                let head = format!("HTTP/1.1 {status} Oops\r\nContent-Length: {ANNOUNCED}\r\n\r\n");
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut written = 0u64;
                while written < ANNOUNCED {
                    if stream.write_all(&chunk).await.is_err() {
                        break;
                    }
                    written += chunk.len() as u64;
                    stats.max_written.fetch_max(written, Ordering::Relaxed);
                }
            });
        }
    });
    (addr, stats)
}

/// An HTTPS server on 127.0.0.1 whose certificate (self-signed, for
/// `localhost`) no client trusts; its [`HttpServer::connections`] are the
/// handshakes attempted.
pub async fn untrusted_tls_server() -> HttpServer {
    let (chain, key) = super::tls::self_signed(&["localhost"]);
    HttpServer::https(chain, key).await
}

/// How an echoing server writes the request back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// As received.
    Plain,
    /// Inside a JSON error object (`{"error": ..., "request": "..."}`),
    /// escaped the way many JSON encoders do (`\/`, `\uXXXX` for non-ASCII).
    Json,
    /// Percent-encoded, as when a request is quoted in a URL or form.
    Percent,
    /// Base64 of the whole request.
    Base64,
}

impl Echo {
    /// Every way, in the order they are used.
    pub const ALL: [Echo; 4] = [Echo::Plain, Echo::Json, Echo::Percent, Echo::Base64];

    /// `text` written this way.
    pub fn encode(self, text: &str) -> String {
        match self {
            Echo::Plain => text.to_string(),
            Echo::Json => {
                let mut s = String::from("{\"error\":\"bad request\",\"request\":\"");
                for c in text.chars() {
                    match c {
                        '"' => s.push_str("\\\""),
                        '\\' => s.push_str("\\\\"),
                        '/' => s.push_str("\\/"),
                        '\n' => s.push_str("\\n"),
                        '\r' => s.push_str("\\r"),
                        c if c.is_ascii() && !c.is_ascii_control() => s.push(c),
                        c => {
                            let mut units = [0u16; 2];
                            for u in c.encode_utf16(&mut units) {
                                s.push_str(&format!("\\u{u:04x}"));
                            }
                        }
                    }
                }
                s.push_str("\"}");
                s
            }
            Echo::Percent => text
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect(),
            Echo::Base64 => base64::engine::general_purpose::STANDARD.encode(text),
        }
    }
}

/// What an echoing HTTP server does.
pub struct EchoServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The status of its error answers (400 or 500).
    pub status: u16,
    /// Requests answered with an echo so far.
    pub echoed: Arc<AtomicUsize>,
    /// Requests whose body contains this string are accepted with 202 `{}`
    /// (e.g. a PagerDuty trigger, so that `test-alert` goes on to the resolve).
    pub accept_containing: Arc<Mutex<Option<String>>>,
}

impl EchoServer {
    /// `http://127.0.0.1:port{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A server that answers every request with `status` and the request
/// echoed back: its request line, then its `Authorization` header, then its
/// body, then the other headers (a real echo puts them in some order; this
/// one puts what holds secrets first, so that it is inside the part of an
/// error message that is quoted). Successive echoes cycle through
/// [`Echo::ALL`].
pub async fn echo_server(status: u16) -> EchoServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echoed = Arc::new(AtomicUsize::new(0));
    let accept_containing: Arc<Mutex<Option<String>>> = Arc::default();
    let (counter, accept) = (echoed.clone(), accept_containing.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (counter, accept) = (counter.clone(), accept.clone());
            tokio::spawn(async move {
                let Some((head, body)) = read_request(&mut stream).await else {
                    return;
                };
                let accepted = accept
                    .lock()
                    .unwrap()
                    .as_deref()
                    .is_some_and(|s| body.contains(s));
                let answer = if accepted {
                    "HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                        .to_string()
                } else {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
                    let request_line = lines.next().unwrap_or_default();
                    let (auth, other): (Vec<&str>, Vec<&str>) =
                        lines.partition(|l| l.to_ascii_lowercase().starts_with("authorization:"));
                    let text = format!(
                        "{request_line}\n{}\n{body}\n{}",
                        auth.join("\n"),
                        other.join("\n")
                    );
                    let echo = Echo::ALL[n % Echo::ALL.len()].encode(&text);
                    format!(
                        "HTTP/1.1 {status} Echo\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{echo}",
                        echo.len()
                    )
                };
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    EchoServer {
        addr,
        status,
        echoed,
        accept_containing,
    }
}

/// An SMTP server on 127.0.0.1 without TLS that offers `mechanism` (`PLAIN`
/// or `LOGIN`) and refuses the credentials with a 454 (temporary, so they
/// are tried again) that echoes what it got: the AUTH line as sent (base64),
/// and the password decoded (plain). Returns its address and the number of
/// sessions.
pub async fn echo_smtp_server(mechanism: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sessions = Arc::new(AtomicUsize::new(0));
    let counter = sessions.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(smtp_session(stream, mechanism));
        }
    });
    (addr, sessions)
}

async fn smtp_session(stream: TcpStream, mechanism: &'static str) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let decode = |s: &str| {
        b64.decode(s.trim())
            .map(|v| String::from_utf8_lossy(&v).replace('\0', " "))
            .unwrap_or_default()
    };
    let mut s = BufReader::new(stream);
    if s.get_mut().write_all(b"220 echo ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    let mut sent_lines: Vec<String> = Vec::new();
    loop {
        line.clear();
        match s.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cmd = line.trim_end().to_string();
        sent_lines.push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            format!("250-echo\r\n250 AUTH {mechanism}\r\n")
        } else if let Some(token) = cmd.strip_prefix("AUTH PLAIN ") {
            format!(
                "454-4.7.0 credentials rejected: {cmd}\r\n454 4.7.0 decoded: {}\r\n",
                decode(token)
            )
        } else if upper == "AUTH LOGIN" {
            "334 VXNlcm5hbWU6\r\n".to_string()
        } else if sent_lines.len() >= 2 && sent_lines[sent_lines.len() - 2] == "AUTH LOGIN" {
            "334 UGFzc3dvcmQ6\r\n".to_string()
        } else if sent_lines.len() >= 3 && sent_lines[sent_lines.len() - 3] == "AUTH LOGIN" {
            format!(
                "454-4.7.0 password rejected: {cmd}\r\n454 4.7.0 decoded: {}\r\n",
                decode(&cmd)
            )
        } else if upper == "QUIT" {
            let _ = s.get_mut().write_all(b"221 bye\r\n").await;
            return;
        } else {
            "250 ok\r\n".to_string()
        };
        if s.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
