//! The HTTP listener: `/metrics` (Prometheus text format), `/healthz`
//! (200 while every loop makes progress, 503 naming the stale ones) and a
//! small index page. The listener is bound by the caller before READY=1.
//!
//! `[agent.web]` can require TLS (optionally with client certificates), HTTP
//! basic authentication against bcrypt hashes, and restrict clients to listed
//! networks. These settings can change on reload without rebinding.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::config::net::IpNet;
use crate::config::WebConfig;
use crate::health::Health;

/// How long a client may take to finish the TLS handshake and send its request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Successful credential checks remembered, so bcrypt's cost is paid once per client.
const AUTH_CACHE_SIZE: usize = 1024;

/// The endpoint's protection, rebuilt from `[agent.web]` on every (re)load.
pub struct WebRuntime {
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    users: HashMap<String, String>,
    networks: Vec<IpNet>,
    /// A hash checked for unknown users, so their answer takes as long as a known user's.
    decoy: String,
    /// Digests of (user, password, hash) that verified.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl WebRuntime {
    /// Builds the runtime form of `[agent.web]`.
    pub fn new(web: &WebConfig) -> Result<WebRuntime, String> {
        let acceptor = match &web.tls {
            None => None,
            Some(tls) => {
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("tls setup: {e}"))?;
                let builder = if tls.client_ca.is_empty() {
                    builder.with_no_client_auth()
                } else {
                    let mut roots = rustls::RootCertStore::empty();
                    for cert in &tls.client_ca {
                        roots
                            .add(cert.clone())
                            .map_err(|e| format!("client CA: {e}"))?;
                    }
                    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider,
                    )
                    .build()
                    .map_err(|e| format!("client CA: {e}"))?;
                    builder.with_client_cert_verifier(verifier)
                };
                let mut config = builder
                    .with_single_cert(tls.identity.chain.clone(), tls.identity.key.clone_key())
                    .map_err(|e| format!("server certificate: {e}"))?;
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
            }
        };
        let decoy = if web.basic_auth_users.is_empty() {
            String::new()
        } else {
            // Same cost as the configured hashes, so unknown users cannot be told apart by timing.
            let cost = web
                .basic_auth_users
                .first()
                .and_then(|(_, h)| h.parse::<bcrypt::HashParts>().ok())
                .map(|p| p.get_cost())
                .unwrap_or(bcrypt::DEFAULT_COST);
            bcrypt::hash("mailpulse-decoy", cost).map_err(|e| format!("bcrypt: {e}"))?
        };
        Ok(WebRuntime {
            acceptor,
            users: web.basic_auth_users.iter().cloned().collect(),
            networks: web.allowed_networks.clone(),
            decoy,
            verified: Mutex::new(HashSet::new()),
        })
    }

    fn allows(&self, peer: SocketAddr) -> bool {
        self.networks.is_empty() || self.networks.iter().any(|n| n.contains(peer.ip()))
    }

    /// Checks the request's basic credentials (bcrypt on the blocking pool).
    async fn authorized(&self, req: &Request<Incoming>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = basic_credentials(req) else {
            return false;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.clone(), true),
            None => (self.decoy.clone(), false),
        };
        let digest: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if known && self.verified.lock().expect("auth cache").contains(&digest) {
            return true;
        }
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok && known {
            let mut cache = self.verified.lock().expect("auth cache");
            if cache.len() >= AUTH_CACHE_SIZE {
                cache.clear();
            }
            cache.insert(digest);
        }
        ok && known
    }
}

fn basic_credentials(req: &Request<Incoming>) -> Option<(String, String)> {
    let value = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// What the handlers need.
pub struct ServerState {
    /// The metrics to encode.
    pub metrics: Arc<Metrics>,
    /// Loop liveness, for `/healthz`.
    pub health: Arc<Health>,
    /// The endpoint's protection; replaced on reload.
    pub web: RwLock<Arc<WebRuntime>>,
    /// The latest rendering of `/metrics` and when it began; the lock also
    /// makes renders take turns (see [`ServerState::scrape`]).
    last_scrape: tokio::sync::Mutex<Option<(Instant, Bytes)>>,
    /// Asks the render thread for a page.
    renderer: Renderer,
}

/// The thread that renders `/metrics` pages, one at a time. One long-lived
/// thread rather than the blocking pool: each new thread that allocates gets
/// an allocator arena of its own, and a page's worth of garbage left in every
/// such arena stayed resident (about 2 MiB at 50 targets). The thread ends
/// when its `Renderer` is dropped.
struct Renderer {
    requests: std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Bytes>>,
}

impl Renderer {
    fn start(metrics: Arc<Metrics>) -> Renderer {
        let (requests, rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<Bytes>>();
        let spawned = std::thread::Builder::new()
            .name("mailpulse-metrics".into())
            .spawn(move || {
                while let Ok(reply) = rx.recv() {
                    // The encoder does not panic; if it ever did, that scrape
                    // is empty and the thread goes on.
                    let page =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| metrics.page()))
                            .unwrap_or_default();
                    let _ = reply.send(page);
                }
            });
        if let Err(e) = spawned {
            // Without the thread every scrape is empty; say why once.
            tracing::error!(error = %e, "cannot start the metrics render thread");
        }
        Renderer { requests }
    }

    async fn page(&self) -> Bytes {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.requests.send(tx).is_err() {
            return Bytes::new();
        }
        rx.await.unwrap_or_default()
    }
}

impl ServerState {
    /// State with the given protection.
    pub fn new(metrics: Arc<Metrics>, health: Arc<Health>, web: WebRuntime) -> ServerState {
        ServerState {
            renderer: Renderer::start(metrics.clone()),
            metrics,
            health,
            web: RwLock::new(Arc::new(web)),
            last_scrape: tokio::sync::Mutex::new(None),
        }
    }

    /// The `/metrics` body. Rendering gathers every family and reads
    /// `/proc/self` for the process collector (its open descriptors too, which
    /// a scrape flood multiplies), so it runs on the render thread, one
    /// render at a time, never on the workers that drive the probes. A scrape
    /// that waited while another render ran reuses the next one that began
    /// after it arrived: it is as fresh as a render of its own, and a burst of
    /// concurrent scrapes costs about two renders instead of one each.
    pub async fn scrape(&self) -> Bytes {
        let arrived = Instant::now();
        let mut last = self.last_scrape.lock().await;
        if let Some((began, body)) = &*last {
            if *began >= arrived {
                return body.clone();
            }
        }
        // The stale page goes first, so its buffer can come back for this
        // render (a page kept here would hold a second page-sized buffer).
        *last = None;
        let began = Instant::now();
        let body = self.renderer.page().await;
        *last = Some((began, body.clone()));
        body
    }

    /// Replaces the protection (after a reload).
    pub fn set_web(&self, web: WebRuntime) {
        *self.web.write().expect("web lock") = Arc::new(web);
    }
}

/// Serves connections until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<ServerState>, shutdown: CancellationToken) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a metrics connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let web = state.web.read().expect("web lock").clone();
        if !web.allows(peer) {
            tracing::debug!(%peer, "metrics client outside allowed_networks; closing");
            continue;
        }
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let work = async {
                match &web.acceptor {
                    None => serve_connection(stream, state, web.clone()).await,
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream));
                        match handshake.await {
                            Ok(Ok(tls)) => serve_connection(tls, state, web.clone()).await,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "metrics tls handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "metrics tls handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                _ = work => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

async fn serve_connection<S>(io: S, state: Arc<ServerState>, web: Arc<WebRuntime>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let web = web.clone();
        async move { Ok::<_, Infallible>(handle(&state, &web, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

async fn handle(
    state: &ServerState,
    web: &WebRuntime,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if !web.authorized(&req).await {
        let mut r = text(StatusCode::UNAUTHORIZED, "text/plain", "unauthorized\n");
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Basic realm=\"mailpulse\""),
        );
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        );
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            state.scrape().await,
        ),
        "/healthz" => match state.health.report() {
            (true, body) => text(StatusCode::OK, "text/plain", body),
            (false, body) => text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", body),
        },
        "/" => text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            concat!(
                "<html><head><title>mailpulse</title></head><body><h1>mailpulse ",
                env!("CARGO_PKG_VERSION"),
                "</h1><p><a href=\"/metrics\">metrics</a> · <a href=\"/healthz\">health</a></p></body></html>\n"
            ),
        ),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn consecutive_scrapes_reuse_one_page_buffer() {
        let metrics = Arc::new(Metrics::new("test").unwrap());
        let web = WebRuntime::new(&WebConfig::default()).unwrap();
        let state = ServerState::new(metrics, Health::new(), web);
        let first = state.scrape().await;
        let ptr = first.as_ptr();
        // The HTTP layer has sent and dropped the response.
        drop(first);
        let second = state.scrape().await;
        assert_eq!(
            second.as_ptr(),
            ptr,
            "the second render wrote into the first page's buffer"
        );
    }
}
