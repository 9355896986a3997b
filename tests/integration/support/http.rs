//! The one fake HTTP/1.1 server of the tests, and a minimal client.
//!
//! [`HttpServer`] stands for a probe target and for an alert receiver: it
//! records every request (method, path, head, headers, body) with the status
//! it answered, answers from a script of [`Reply`]s first, then from the
//! reply set for the path, then from its default; a reply may be delayed or
//! never come. It can serve TLS and plain HTTP on one port, stop listening
//! (connections refused) and listen again on the same port.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long a reply that never comes ([`Reply::hang`]) holds its connection.
const HANG_FOR: Duration = Duration::from_secs(3600);

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code; 0 means hang without answering.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// Delay before the answer is written.
    pub delay: Duration,
}

impl Reply {
    /// 200 with a body.
    pub fn ok(body: &str) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// A status with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            ..Reply::ok("")
        }
    }

    /// A JSON body with status 200.
    pub fn json(body: &str) -> Reply {
        Reply::ok(body).header("Content-Type", "application/json")
    }

    /// Never answer (the request is recorded, answered 0).
    pub fn hang() -> Reply {
        Reply::status(0)
    }

    /// With this body.
    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.into();
        self
    }

    /// Answers after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A recorded request.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The head as received, request line to the empty line.
    pub head: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// Status answered (0: none).
    pub answered: u16,
    /// When it arrived (tokio clock).
    pub at: tokio::time::Instant,
}

impl Captured {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether it was accepted (2xx).
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

struct State {
    requests: Vec<Captured>,
    script: VecDeque<Reply>,
    routes: HashMap<String, Reply>,
    default: Reply,
}

/// The server; clones share it.
#[derive(Clone)]
pub struct HttpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: Arc<AtomicUsize>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl HttpServer {
    /// A probe target on 127.0.0.1: every path answers 404 until routed.
    pub async fn start() -> HttpServer {
        HttpServer::start_on([127, 0, 0, 1].into(), None).await
    }

    /// A probe target on `ip` (127.0.0.2 and up are other hosts). With a
    /// TLS acceptor, a connection that opens with a TLS handshake is served
    /// over TLS and any other in plain HTTP: `https://` and `http://` on the
    /// same host and port, two origins that differ only by scheme.
    pub async fn start_on(ip: IpAddr, tls: Option<tokio_rustls::TlsAcceptor>) -> HttpServer {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let server = HttpServer {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Mutex::new(State {
                requests: Vec::new(),
                script: VecDeque::new(),
                routes: HashMap::new(),
                default: Reply::status(404),
            })),
            tls,
            connections: Arc::default(),
            task: Arc::default(),
        };
        server.serve(listener);
        server
    }

    /// An alert receiver on 127.0.0.1: answers 200 `{}` unless told otherwise.
    pub async fn receiver() -> HttpServer {
        HttpServer::receiver_on([127, 0, 0, 1].into()).await
    }

    /// An alert receiver on `ip` (`127.0.0.2` is "another host").
    pub async fn receiver_on(ip: IpAddr) -> HttpServer {
        let server = HttpServer::start_on(ip, None).await;
        server.default_reply(Reply::json("{}"));
        server
    }

    /// HTTPS on 127.0.0.1 with `chain` and `key`, answering 200 `ok` to
    /// every request.
    pub async fn https(
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> HttpServer {
        let acceptor = super::tls::acceptor(chain, key);
        let server = HttpServer::start_on([127, 0, 0, 1].into(), Some(acceptor)).await;
        server.default_reply(Reply::ok("ok"));
        server
    }

    fn serve(&self, listener: TcpListener) {
        let me = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                me.connections.fetch_add(1, Ordering::Relaxed);
                let me = me.clone();
                tokio::spawn(async move { me.connection(stream).await });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    async fn connection(&self, stream: TcpStream) {
        let Some(acceptor) = self.tls.clone() else {
            return self.handle(stream).await;
        };
        let mut first = [0u8; 1];
        // 0x16: a TLS handshake record.
        match stream.peek(&mut first).await {
            Ok(1) if first[0] == 0x16 => {
                if let Ok(tls) = acceptor.accept(stream).await {
                    self.handle(tls).await;
                }
            }
            _ => self.handle(stream).await,
        }
    }

    /// Stops listening: new connections are refused.
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Sets what `path` (without its query) answers.
    pub fn route(&self, path: &str, reply: Reply) -> &Self {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_string(), reply);
        self
    }

    /// Queues answers for the next requests, whatever their path.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// Sets the answer to a path without a route once the script is used up.
    pub fn default_reply(&self, reply: Reply) {
        self.state.lock().unwrap().default = reply;
    }

    /// `http://ADDR{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `https://ADDR{path}` (for a server started with TLS).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many requests so far.
    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }

    /// Forgets the requests so far.
    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// Connections accepted so far (TLS handshakes attempted, for a TLS server).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// The accepted requests so far.
    pub fn accepted(&self) -> Vec<Captured> {
        self.requests()
            .into_iter()
            .filter(|r| r.accepted())
            .collect()
    }

    /// Waits (up to `limit`) until `n` requests were accepted.
    pub async fn wait_accepted(&self, n: usize, limit: Duration) -> Vec<Captured> {
        super::wait_until_or(
            &format!("{n} accepted requests"),
            limit,
            || {
                let got: Vec<_> = self
                    .requests()
                    .iter()
                    .map(|r| (r.method.clone(), r.path.clone(), r.answered))
                    .collect();
                format!("got {}: {got:#?}", self.accepted().len())
            },
            || async {
                let got = self.accepted();
                (got.len() >= n).then_some(got)
            },
        )
        .await
    }

    async fn handle<S: AsyncRead + AsyncWrite + Unpin>(&self, mut stream: S) {
        let Some((head, body)) = read_request(&mut stream).await else {
            return;
        };
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let reply = {
            let mut s = self.state.lock().unwrap();
            let route = path.split('?').next().unwrap_or("/");
            let reply = match s.script.pop_front() {
                Some(r) => r,
                None => s.routes.get(route).unwrap_or(&s.default).clone(),
            };
            s.requests.push(Captured {
                method,
                path,
                head,
                headers,
                body,
                answered: reply.status,
                at: tokio::time::Instant::now(),
            });
            reply
        };
        if reply.status == 0 {
            tokio::time::sleep(HANG_FOR).await;
            return;
        }
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut response = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            response.push_str(&format!("{k}: {v}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&reply.body);
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// Reads one HTTP/1.1 request (head and a `Content-Length` body); `None` if
/// the peer went away first.
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    Some((head, body))
}

/// A minimal HTTP GET; returns the status and body.
pub async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let stream = TcpStream::connect(addr).await.ok()?;
    get_on(stream, addr, path, &[]).await
}

/// A minimal HTTP GET over an established stream (plain or TLS), with extra headers.
pub async fn get_on<S>(
    mut stream: S,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.ok()?;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((status, body))
}

/// Decodes a chunked HTTP/1.1 body.
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// `Basic` credentials for an `Authorization` header.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A raw HTTP/1.1 request to the agent at `addr` (its API, `/metrics`),
/// with a JSON `body` and optional basic auth: the status and the body.
pub async fn api_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some((user, password)) = auth {
        req.push_str(&format!(
            "Authorization: {}\r\n",
            basic_auth(user, password)
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}
