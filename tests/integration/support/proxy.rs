//! A loopback HTTP proxy for the outbound-client tests: `CONNECT host:port`
//! tunnels (what a client does for an `https://` URL) and plain-HTTP
//! forwarding (an absolute-form request line, for an `http://` URL), with
//! optional `Proxy-Authorization`, and its own host table: a name such as
//! `receiver.invalid` resolves only here, so a receiver named by it is
//! reachable only through the proxy. Every request it gets is recorded.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest request head the proxy reads.
const MAX_HEAD: usize = 16 * 1024;

/// One request the proxy got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `CONNECT`, or the method of a forwarded request.
    pub method: String,
    /// `host:port` the client asked for.
    pub target: String,
    /// Its `Proxy-Authorization` header, if any.
    pub authorization: Option<String>,
    /// What the proxy answered itself (200 for a tunnel or a forwarded
    /// request; 407 or 502 when it refused).
    pub answered: u16,
}

/// The proxy, listening on 127.0.0.1 until dropped.
pub struct Proxy {
    /// Its address.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

/// What the proxy does with a request it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Tunnels or forwards it.
    Forward,
    /// Answers 502 with the request's head as the body, credentials and
    /// all (a misbehaving proxy that echoes what it got).
    Echo,
}

impl Proxy {
    /// A proxy that forwards to `hosts` (`name` → address; other targets
    /// are resolved as usual) and, with `credentials`, requires exactly
    /// this `Proxy-Authorization` value (answering 407 otherwise).
    pub async fn start(hosts: &[(&str, SocketAddr)], credentials: Option<String>) -> Proxy {
        Proxy::launch(hosts, credentials, Mode::Forward).await
    }

    /// A proxy that answers every request 502, echoing its head.
    pub async fn echoing() -> Proxy {
        Proxy::launch(&[], None, Mode::Echo).await
    }

    async fn launch(
        hosts: &[(&str, SocketAddr)],
        credentials: Option<String>,
        mode: Mode,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let hosts: Arc<HashMap<String, SocketAddr>> = Arc::new(
            hosts
                .iter()
                .map(|(name, addr)| (name.to_string(), *addr))
                .collect(),
        );
        let credentials = Arc::new(credentials);
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (seen, hosts, credentials) =
                    (record.clone(), hosts.clone(), credentials.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &hosts, credentials.as_deref(), mode, &seen).await;
                });
            }
        });
        Proxy { addr, seen, task }
    }

    /// `http://127.0.0.1:PORT`, optionally with `user:password@`.
    pub fn url(&self, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("http://{u}@{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one client connection: one request, then the tunnel or the
/// forwarded exchange until either side closes.
async fn serve(
    mut client: TcpStream,
    hosts: &HashMap<String, SocketAddr>,
    credentials: Option<&str>,
    mode: Mode,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Ok(());
        }
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let rest = buf[head_end..].to_vec();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let authorization = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, v)| v.clone());
    // CONNECT names host:port; a forwarded request an absolute URL.
    let (host_port, origin_form) = if method == "CONNECT" {
        (target.clone(), None)
    } else {
        let url = url::Url::parse(&target).unwrap();
        let host_port = format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(80)
        );
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        (host_port, Some(path))
    };
    let mut record = Seen {
        method: method.clone(),
        target: host_port.clone(),
        authorization: authorization.clone(),
        answered: 200,
    };
    if mode == Mode::Echo {
        record.answered = 502;
        seen.lock().unwrap().push(record);
        let answer = format!(
            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
            head.len()
        );
        client.write_all(answer.as_bytes()).await?;
        return Ok(());
    }
    if credentials.is_some() && authorization.as_deref() != credentials {
        record.answered = 407;
        seen.lock().unwrap().push(record);
        client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
        return Ok(());
    }
    let upstream_addr = match hosts.get(host_port.rsplit_once(':').unwrap().0) {
        Some(a) => Some(*a),
        None => tokio::net::lookup_host(&host_port)
            .await
            .ok()
            .and_then(|mut a| a.next()),
    };
    let upstream = match upstream_addr {
        Some(a) => TcpStream::connect(a).await.ok(),
        None => None,
    };
    let Some(mut upstream) = upstream else {
        record.answered = 502;
        seen.lock().unwrap().push(record);
        client
            .write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
        return Ok(());
    };
    seen.lock().unwrap().push(record);
    match origin_form {
        None => {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?;
            upstream.write_all(&rest).await?;
        }
        Some(path) => {
            // The request as the origin expects it: origin-form, and no
            // Proxy-Authorization (it is the proxy's, never the server's).
            let mut out = format!("{method} {path} {version}\r\n");
            for (k, v) in &headers {
                if !k.eq_ignore_ascii_case("proxy-authorization") {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
            }
            out.push_str("\r\n");
            upstream.write_all(out.as_bytes()).await?;
            upstream.write_all(&rest).await?;
        }
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}
