//! Misbehaving alert receivers on 127.0.0.1: a server that trickles its
//! answer one byte at a time and never finishes, one that answers with an
//! endless body, and a TLS server nobody trusts.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Reads one HTTP/1.1 request (head and a `Content-Length` body); `None` if
/// the peer went away first.
pub async fn read_request<S: AsyncReadExt + Unpin>(stream: &mut S) -> Option<(String, String)> {
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
/// `localhost`) no client trusts; it counts handshakes attempted.
pub async fn untrusted_tls_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = read_request(&mut tls).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    (addr, connections)
}
