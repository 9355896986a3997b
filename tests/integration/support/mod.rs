//! Test support: in-process servers on 127.0.0.1:0 with controllable
//! behaviour, the real `mailpulse` binary started as a child process, and a
//! small scrape matcher.
#![allow(dead_code)]

pub mod alertmanager;
pub mod capture;
pub mod delivery;
pub mod peers;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Path of the binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mailpulse"))
}

/// What a fake HTTP server does for one path.
#[derive(Clone, Debug)]
pub struct Route {
    /// Delay before the response head is written.
    pub delay: Duration,
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
    /// Never answer at all (hold the connection open).
    pub hang: bool,
}

impl Route {
    /// 200 with a body.
    pub fn ok(body: &str) -> Route {
        Route {
            delay: Duration::ZERO,
            status: 200,
            headers: Vec::new(),
            body: body.to_string(),
            hang: false,
        }
    }

    /// A status code with an empty body.
    pub fn status(code: u16) -> Route {
        Route {
            status: code,
            ..Route::ok("")
        }
    }

    /// Answers after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Route {
        self.delay = delay;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Route {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Reads the request and never answers.
    pub fn hang() -> Route {
        Route {
            hang: true,
            ..Route::ok("")
        }
    }
}

/// A fake HTTP/1.1 server whose routes can be changed while it runs.
#[derive(Clone)]
pub struct HttpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    /// Request heads received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    /// Starts a server with no routes (every path answers 404).
    pub async fn start() -> HttpServer {
        HttpServer::start_on([127, 0, 0, 1].into(), None).await
    }

    /// Starts a server on `ip` (127.0.0.2 and up are other hosts). With a
    /// TLS acceptor, a connection that opens with a TLS handshake is served
    /// over TLS and any other in plain HTTP: `https://` and `http://` on the
    /// same host and port, two origins that differ only by scheme.
    pub async fn start_on(
        ip: std::net::IpAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> HttpServer {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let server = HttpServer {
            addr: listener.local_addr().unwrap(),
            routes: Arc::default(),
            requests: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let s = s.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    // 0x16: a TLS handshake record.
                    match (tls, stream.peek(&mut first).await) {
                        (Some(acceptor), Ok(1)) if first[0] == 0x16 => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                s.handle(tls).await;
                            }
                        }
                        _ => s.handle(stream).await,
                    }
                });
            }
        });
        server
    }

    /// `https://ADDR/path` (for a server started with TLS).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    /// Sets what `path` answers.
    pub fn route(&self, path: &str, route: Route) -> &Self {
        self.routes.lock().unwrap().insert(path.to_string(), route);
        self
    }

    /// `http://127.0.0.1:port/path`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn handle<S>(&self, mut stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head).to_string();
        self.requests.lock().unwrap().push(head.clone());
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let path = path.split('?').next().unwrap_or("/").to_string();
        let route = self.routes.lock().unwrap().get(&path).cloned();
        let route = route.unwrap_or_else(|| Route::status(404));
        if route.hang {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        tokio::time::sleep(route.delay).await;
        let mut response = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
            route.status,
            route.body.len()
        );
        for (k, v) in &route.headers {
            response.push_str(&format!("{k}: {v}\r\n"));
        }
        response.push_str("\r\n");
        response.push_str(&route.body);
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// A port on 127.0.0.1 that nothing listens on now, for an agent to bind.
/// It is taken below the kernel's ephemeral range (32768 and up), where
/// outgoing connections and `bind(0)` listeners get their ports, so none of
/// those can take it before the agent binds; and each call takes the next
/// port of a sequence that starts at an offset of this process's PID, so
/// tests running in parallel do not pick the same one.
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

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port`
/// (from `/proc/net/tcp` and the process's descriptors).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    let inode = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Fields: sl, local, remote, state (0A = LISTEN), ..., inode (10th).
        (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A"))
            .then(|| f.get(9).map(|i| format!("socket:[{i}]")))
            .flatten()
    });
    let Some(socket) = inode else {
        return false;
    };
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == socket.as_str()))
    })
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path
}

/// The agent binary running as a child process.
pub struct Agent {
    /// The child.
    pub child: Child,
    /// Its metrics address.
    pub addr: SocketAddr,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Agent {
    /// Starts `mailpulse run --config FILE` with extra environment and waits
    /// until `/healthz` answers.
    pub async fn start(config: &Path, addr: SocketAddr, env: &[(&str, &str)]) -> Agent {
        let agent = Agent::spawn(config, addr, env).await;
        agent
            .wait_until(
                || async { get(addr, "/healthz").await.is_some() },
                "listening",
            )
            .await;
        agent
    }

    /// Starts the agent and waits only until its port accepts connections
    /// (for listeners that want TLS or credentials).
    pub async fn spawn(config: &Path, addr: SocketAddr, env: &[(&str, &str)]) -> Agent {
        let log = config.with_extension("log");
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .env("RUST_LOG", "debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let agent = Agent { child, addr, log };
        // This agent's own listener, not another process's on the same port.
        let pid = agent.child.id();
        agent
            .wait_until(
                || async {
                    match addr {
                        SocketAddr::V4(v4) if v4.ip().is_loopback() => listens_on(pid, addr.port()),
                        _ => TcpStream::connect(addr).await.is_ok(),
                    }
                },
                "its own listener",
            )
            .await;
        agent
    }

    /// Waits (up to 15 s) until `cond` holds, polling every 20 ms; fails at
    /// once, with the agent's log, if the agent exits meanwhile.
    pub async fn wait_until<F, Fut>(&self, mut cond: F, what: &str)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !cond().await {
            if self.exited() {
                panic!(
                    "the agent exited while waiting for {what}; its log:\n{}",
                    self.log_text()
                );
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; agent log:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the agent has exited (a zombie not yet waited for, or gone).
    fn exited(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .map(|stat| {
                // The state follows the command name, which is in parentheses.
                stat.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    }

    /// The agent's stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Scrapes `/metrics`.
    pub async fn scrape(&self) -> String {
        get(self.addr, "/metrics").await.unwrap_or_default().1
    }

    /// Sends a signal to the agent.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
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

/// The value of the sample `name{labels}` in a scrape, where the labels given
/// are a subset of the series' labels.
pub fn metric(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let all_match = labels
                .iter()
                .all(|(k, v)| rest.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
            if all_match {
                value.parse().ok()
            } else {
                None
            }
        })
}

/// `/usr/bin/promtool`, or `None` (with a message) outside CI when the
/// `prometheus` package is missing; in CI a missing promtool is a failure.
pub fn promtool() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/promtool");
    if path.exists() {
        Some(path)
    } else if std::env::var_os("CI").is_some() {
        panic!("promtool is required in CI (.ci/install-deps installs the prometheus package)");
    } else {
        eprintln!("skipping promtool: not installed (run .ci/install-deps)");
        None
    }
}

/// Asserts that `promtool check metrics` accepts `scrape` and reports nothing.
pub fn promtool_check(scrape: &str) {
    let Some(promtool) = promtool() else { return };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {report}"
    );
}

/// A TLS acceptor with a throwaway self-signed certificate for `localhost`,
/// 127.0.0.1 and 127.0.0.2 (probes of it set `tls_insecure_skip_verify`).
pub fn self_signed_acceptor() -> tokio_rustls::TlsAcceptor {
    let names = ["localhost", "127.0.0.1", "127.0.0.2"].map(String::from);
    let cert = rcgen::generate_simple_self_signed(names.to_vec()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Serves HTTPS on 127.0.0.1:0 with `chain` and `key`, answering every
/// request `200 ok` and closing.
pub async fn https_server(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}
