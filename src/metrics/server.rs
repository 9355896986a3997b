//! The HTTP listener: `/metrics` (Prometheus text format, or protobuf with
//! native histograms when the scraper's `Accept` asks for it; gzip-compressed
//! when its `Accept-Encoding` allows), `/healthz` (200 while every loop makes
//! progress, 503 naming the stale ones), the status page and its JSON API
//! (`crate::status`), and the other endpoints of `/api/v1/`, which the daemon
//! plugs in as an [`Api`]. The listener is bound by the caller before READY=1.
//!
//! Authentication is the listener's, for every endpoint alike: reads (GET)
//! follow `[agent.web]`, as `/metrics` does; writes (POST under `/api/v1/`)
//! need a user of `[agent.api] write_users`, checked by the same gate
//! (bcrypt off the workers, per-client failure limit): no or wrong
//! credentials are 401, a read-only user's are 403, and writes are 404
//! while no writer is configured. The [`Api`] only gives the meaning.
//!
//! `[agent.web]` can require TLS (optionally with client certificates), HTTP
//! basic authentication against bcrypt hashes (`auth`), and restrict clients
//! to listed networks. These settings can change on reload without rebinding.
//!
//! The listener is built to be attacked: at most `max_connections` are open
//! (fewer when descriptors are short; see `connections`), a request head is
//! at most [`MAX_HEADER_BYTES`] and must arrive within
//! [`HEADER_READ_TIMEOUT`] (an idle keep-alive connection is closed after as
//! long), and each of these is counted in `mailpulse_web_*`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::auth::{Gate, Rejection, Users};
use super::connections::{descriptor_budget, Connections, Slot};
use super::web::{AuthRejected, Closed, Refused};
use super::{protobuf, Format, Metrics};
use crate::config::net::IpNet;
use crate::config::WebConfig;
use crate::health::Health;
use crate::status::api::Pages;

/// How long a client may take to finish the TLS handshake, and then to send
/// each request head; an idle keep-alive connection is closed after as long
/// without a new request.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers) read; a larger one is
/// answered 431 and its connection closed. Prometheus sends a few hundred
/// bytes. Before this cap hyper buffered up to about 400 KiB per connection.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// A connection's read buffer: nothing served here takes a body, so the
/// head's cap is all it needs (hyper's minimum is 8 KiB).
const READ_BUFFER_BYTES: usize = MAX_HEADER_BYTES;
/// Pause after a failed `accept` (out of descriptors and the like), so the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections the kernel queues for `accept` (the listen backlog; the
/// kernel caps it at `net.core.somaxconn`, 4096 on current kernels). While
/// the listener is at `max_connections` it stops accepting for a moment; a
/// short queue then overflows under a flood and the kernel drops a
/// scraper's SYN, which TCP resends only after 1 s and 3 s. With a queue
/// longer than the flood, the scraper waits its turn instead: under 3,000
/// reconnecting slow-header clients its p99 went from 4.2 s to 1.1 s
/// (bench/RELIABILITY.md, "Listener under attack").
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds the metrics listener on `addr` with [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's and tokio's `bind` do, so a restart can bind at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Largest request body read (API writes); a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// An answer of the [`Api`]: the status code and a JSON body.
pub type ApiAnswer = (StatusCode, String);

/// The endpoints under `/api/v1/`, plugged in by the daemon. The listener
/// authenticates before calling; both methods may block (the store), so
/// they run on the blocking pool.
pub trait Api: Send + Sync {
    /// A read (GET) of `path`, the part after `/api/v1/`; `None` when
    /// there is no such endpoint.
    fn read(&self, path: &str) -> Option<ApiAnswer>;
    /// A write (POST) of `path` with its `body`, by the writer `user`;
    /// `None` when there is no such endpoint.
    fn write(&self, path: &str, body: &[u8], user: &str) -> Option<ApiAnswer>;
}

/// The endpoint's protection, rebuilt from `[agent.web]` on every (re)load.
pub struct WebRuntime {
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    users: Users,
    /// `[agent.api] write_users`; empty while writes are off.
    writers: Users,
    networks: Vec<IpNet>,
    max_connections: usize,
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
        Ok(WebRuntime {
            acceptor,
            // No hashing here (the decoys are made, not computed), so a
            // reload never holds up the task that handles signals.
            users: Users::new(&web.basic_auth_users)?,
            writers: Users::new(&[])?,
            networks: web.allowed_networks.clone(),
            max_connections: web.max_connections,
        })
    }

    /// Adds the users of `[agent.api] write_users`, who alone may write.
    pub fn with_writers(mut self, writers: &[(String, String)]) -> Result<WebRuntime, String> {
        self.writers = Users::new(writers)?;
        Ok(self)
    }

    fn allows(&self, peer: SocketAddr) -> bool {
        self.networks.is_empty() || self.networks.iter().any(|n| n.contains(peer.ip()))
    }
}

/// What the handlers need.
pub struct ServerState {
    /// The metrics to encode.
    pub metrics: Arc<Metrics>,
    /// Loop liveness, for `/healthz`.
    pub health: Arc<Health>,
    /// The endpoint's protection; replaced on reload.
    pub web: RwLock<Arc<WebRuntime>>,
    /// The endpoints under `/api/v1/` besides the status API, once the
    /// daemon plugs them in.
    api: RwLock<Option<Arc<dyn Api>>>,
    /// The latest rendering of `/metrics` in each [`Variant`] and when it
    /// began; the lock also makes renders take turns (see [`ServerState::scrape`]).
    last_scrape: tokio::sync::Mutex<[Option<(Instant, Bytes)>; 4]>,
    /// Asks the render thread for a page.
    renderer: Renderer,
    /// The open connections and their limit.
    connections: Arc<Connections>,
    /// Failed-check counts and the bcrypt queue, kept across reloads.
    gate: Gate,
    /// The status page and API (`/`, `/incidents/ID`, `/api/v1/*`), once
    /// the daemon has opened its store.
    pages: std::sync::OnceLock<Pages>,
}

/// The thread that renders `/metrics` pages, one at a time. One long-lived
/// thread rather than the blocking pool: each new thread that allocates gets
/// an allocator arena of its own, and a page's worth of garbage left in every
/// such arena stayed resident (about 2 MiB at 50 targets). The thread ends
/// when its `Renderer` is dropped.
struct Renderer {
    requests: std::sync::mpsc::Sender<(Variant, tokio::sync::oneshot::Sender<Bytes>)>,
}

/// What a scraper gets: a format, compressed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// Text or protobuf.
    pub format: Format,
    /// gzip-compressed.
    pub gzip: bool,
}

impl Variant {
    /// Plain text, uncompressed: what a scraper that asks for nothing gets.
    pub const TEXT: Variant = Variant {
        format: Format::Text,
        gzip: false,
    };

    /// The variant a request's `Accept` and `Accept-Encoding` ask for.
    pub fn of(headers: &hyper::HeaderMap) -> Variant {
        let header = |name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",")
        };
        let format = if protobuf::accepts(&header(hyper::header::ACCEPT)) {
            Format::Protobuf
        } else {
            Format::Text
        };
        Variant {
            format,
            gzip: accepts_gzip(&header(hyper::header::ACCEPT_ENCODING)),
        }
    }

    fn slot(self) -> usize {
        usize::from(self.format == Format::Protobuf) * 2 + usize::from(self.gzip)
    }

    fn content_type(self) -> &'static str {
        match self.format {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::Protobuf => protobuf::CONTENT_TYPE,
        }
    }

    /// Renders `metrics` as this variant asks.
    fn render(self, metrics: &Metrics) -> Bytes {
        let page = metrics.page_as(self.format);
        if !self.gzip {
            return page;
        }
        // The fastest level: the page is repetitive enough that it still
        // shrinks about tenfold (bench/RESULTS.md), for a fraction of the CPU.
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(page.len() / 6),
            flate2::Compression::fast(),
        );
        use std::io::Write as _;
        // Writing into a Vec cannot fail.
        let _ = gz.write_all(&page);
        gz.finish().map(Bytes::from).unwrap_or_default()
    }
}

/// Whether an `Accept-Encoding` value allows gzip (listed, without `q=0`).
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|part| {
        let mut params = part.split(';').map(str::trim);
        let coding = params.next().unwrap_or("");
        (coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip"))
            && !params.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f64>().is_ok_and(|q| q <= 0.0))
            })
    })
}

impl Renderer {
    fn start(metrics: Arc<Metrics>) -> Renderer {
        let (requests, rx) =
            std::sync::mpsc::channel::<(Variant, tokio::sync::oneshot::Sender<Bytes>)>();
        let spawned = std::thread::Builder::new()
            .name("mailpulse-metrics".into())
            .spawn(move || {
                while let Ok((variant, reply)) = rx.recv() {
                    // The encoder does not panic; if it ever did, that scrape
                    // is empty and the thread goes on.
                    let page = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        variant.render(&metrics)
                    }))
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

    async fn page(&self, variant: Variant) -> Bytes {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.requests.send((variant, tx)).is_err() {
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
            connections: Connections::new(web.max_connections, metrics.web.clone()),
            gate: Gate::default(),
            metrics,
            health,
            web: RwLock::new(Arc::new(web)),
            api: RwLock::new(None),
            last_scrape: tokio::sync::Mutex::new(Default::default()),
            pages: std::sync::OnceLock::new(),
        }
    }

    /// Serves the status page and API from `pages` (set once; later calls
    /// are ignored).
    pub fn set_pages(&self, pages: Pages) {
        let _ = self.pages.set(pages);
    }

    /// Answers a status route off the serving workers (it reads the store).
    async fn status_page(&self, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
        let Some(pages) = self.pages.get().cloned() else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "starting: the status page is not ready yet\n",
            );
        };
        let (path, query) = (path.to_string(), query.map(str::to_string));
        match tokio::task::spawn_blocking(move || pages.answer(&path, query.as_deref())).await {
            Ok(reply) => {
                let mut r = text(
                    StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK),
                    reply.content_type,
                    reply.body,
                );
                r.headers_mut().insert(
                    hyper::header::CACHE_CONTROL,
                    hyper::header::HeaderValue::from_static("no-store"),
                );
                r.headers_mut().insert(
                    hyper::header::CONTENT_SECURITY_POLICY,
                    hyper::header::HeaderValue::from_static(
                        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                    ),
                );
                r.headers_mut().insert(
                    hyper::header::X_CONTENT_TYPE_OPTIONS,
                    hyper::header::HeaderValue::from_static("nosniff"),
                );
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "status page render failed");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "status page failed\n",
                )
            }
        }
    }

    /// Keeps the listener's connections within what a descriptor limit of
    /// `nofile` allows, leaving a reserve for probes and collectors.
    pub fn limit_descriptors(&self, nofile: u64) {
        self.connections.set_budget(descriptor_budget(nofile));
    }

    /// Connections the listener keeps open at most, now.
    pub fn connection_limit(&self) -> usize {
        self.connections.limit()
    }

    /// The `/metrics` body. Rendering gathers every family and reads
    /// `/proc/self` for the process collector (its open descriptors too, which
    /// a scrape flood multiplies), so it runs on the render thread, one
    /// render at a time, never on the workers that drive the probes. A scrape
    /// that waited while another render ran reuses the next one that began
    /// after it arrived: it is as fresh as a render of its own, and a burst of
    /// concurrent scrapes costs about two renders instead of one each.
    pub async fn scrape(&self, variant: Variant) -> Bytes {
        let arrived = Instant::now();
        let mut all = self.last_scrape.lock().await;
        let last = &mut all[variant.slot()];
        if let Some((began, body)) = &*last {
            if *began >= arrived {
                return body.clone();
            }
        }
        // The stale page goes first, so its buffer can come back for this
        // render (a page kept here would hold a second page-sized buffer).
        *last = None;
        let began = Instant::now();
        let body = self.renderer.page(variant).await;
        *last = Some((began, body.clone()));
        body
    }

    /// Plugs in the endpoints under `/api/v1/`.
    pub fn set_api(&self, api: Arc<dyn Api>) {
        *self.api.write().expect("api lock") = Some(api);
    }

    /// Replaces the protection (after a reload).
    pub fn set_web(&self, web: WebRuntime) {
        self.connections.set_configured(web.max_connections);
        *self.web.write().expect("web lock") = Arc::new(web);
    }
}

/// Serves connections until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<ServerState>, shutdown: CancellationToken) {
    loop {
        // While full, wait (a second at most) for a place or for a
        // connection that can make room (see `connections`).
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = state.connections.room() => {}
        }
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a metrics connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let web = state.web.read().expect("web lock").clone();
        if !web.allows(peer) {
            state.metrics.web.refused(Refused::Network);
            tracing::debug!(%peer, "metrics client outside allowed_networks; closing");
            continue;
        }
        // Still full after that wait: closed here, at once, so the
        // backlog moves.
        let Some(slot) = state.connections.admit() else {
            tracing::debug!(%peer, "metrics listener full and no connection can make room; closing");
            continue;
        };
        let slot = Arc::new(slot);
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            slot.start();
            let work = async {
                match &web.acceptor {
                    None => serve_connection(stream, peer, &state, &web, &slot).await,
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream));
                        match handshake.await {
                            Ok(Ok(tls)) => serve_connection(tls, peer, &state, &web, &slot).await,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "metrics tls handshake failed");
                                Some(Closed::TlsHandshake)
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "metrics tls handshake timed out");
                                Some(Closed::TlsHandshake)
                            }
                        }
                    }
                }
            };
            tokio::select! {
                closed = work => if let Some(reason) = closed {
                    state.metrics.web.closed(reason);
                },
                // Counted when it was chosen.
                _ = slot.evicted() => tracing::debug!(%peer, "metrics connection closed to make room"),
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

/// Serves HTTP/1 on one connection; why the agent cut it short, if it did.
async fn serve_connection<S>(
    io: S,
    peer: SocketAddr,
    state: &Arc<ServerState>,
    web: &Arc<WebRuntime>,
    slot: &Arc<Slot>,
) -> Option<Closed>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (state, web, slot) = (state.clone(), web.clone(), slot.clone());
    let service = hyper::service::service_fn(move |req| {
        let (state, web, slot) = (state.clone(), web.clone(), slot.clone());
        async move {
            let _busy = slot.busy();
            Ok::<_, Infallible>(handle(&state, &web, peer.ip(), req).await)
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(READ_BUFFER_BYTES)
        .serve_connection(TokioIo::new(io), service)
        .await;
    match served {
        Err(e) if e.is_timeout() => Some(Closed::HeaderTimeout),
        Err(e) if e.is_parse_too_large() => Some(Closed::HeaderTooLarge),
        _ => None,
    }
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

/// The answer to a request basic authentication refused.
fn refusal(rejection: Rejection) -> Response<Full<Bytes>> {
    let mut r = match rejection.reason {
        AuthRejected::Missing | AuthRejected::Invalid => {
            let mut r = text(StatusCode::UNAUTHORIZED, "text/plain", "unauthorized\n");
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Basic realm=\"mailpulse\""),
            );
            r
        }
        AuthRejected::Limited => text(
            StatusCode::TOO_MANY_REQUESTS,
            "text/plain",
            "too many failed attempts\n",
        ),
        AuthRejected::Busy => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "too many credential checks waiting\n",
        ),
    };
    if let Some(after) = rejection.retry_after {
        // Whole seconds, rounded up.
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        r.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from(secs),
        );
    }
    r
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    text(status, "application/json", body)
}

/// A write under `/api/v1/`: a writer's credentials (401 without or with
/// wrong ones, 403 for a read-only user's), a body of at most
/// [`MAX_BODY_BYTES`], then the [`Api`].
async fn write(
    state: &ServerState,
    web: &WebRuntime,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt as _;
    let api = state.api.read().expect("api lock").clone();
    let (Some(api), false) = (api, web.writers.is_empty()) else {
        return json(
            StatusCode::NOT_FOUND,
            r#"{"error":"writes are off ([agent.api] write_users)"}"#.into(),
        );
    };
    if let Err(rejection) = state.gate.check(&web.writers, peer, req.headers()).await {
        state.metrics.web.auth_rejected(rejection.reason);
        // A read-only user's own credentials: known, but not allowed.
        if rejection.reason == AuthRejected::Invalid
            && !web.users.is_empty()
            && state
                .gate
                .check(&web.users, peer, req.headers())
                .await
                .is_ok()
        {
            return json(
                StatusCode::FORBIDDEN,
                r#"{"error":"this user may read, not write"}"#.into(),
            );
        }
        return refusal(rejection);
    }
    let user = super::auth::basic_user(req.headers()).unwrap_or_default();
    let path = req.uri().path()["/api/v1/".len()..].to_string();
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    r#"{{"error":"the body is not readable or longer than {MAX_BODY_BYTES} bytes"}}"#
                ),
            )
        }
    };
    let answer = tokio::task::spawn_blocking(move || api.write(&path, &body, &user)).await;
    match answer {
        Ok(Some((status, body))) => json(status, body),
        Ok(None) => json(
            StatusCode::NOT_FOUND,
            r#"{"error":"no such endpoint"}"#.into(),
        ),
        Err(_) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"the write failed"}"#.into(),
        ),
    }
}

async fn handle(
    state: &ServerState,
    web: &WebRuntime,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if req.method() == Method::POST && req.uri().path().starts_with("/api/v1/") {
        return write(state, web, peer, req).await;
    }
    if let Err(rejection) = state.gate.check(&web.users, peer, req.headers()).await {
        state.metrics.web.auth_rejected(rejection.reason);
        return refusal(rejection);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        );
    }
    // The status API's paths are the status pages'; the rest of /api/v1/ is the Api's.
    let api_path = Some(req.uri().path())
        .filter(|p| !Pages::serves(p))
        .and_then(|p| p.strip_prefix("/api/v1/"));
    if let Some(path) = api_path {
        let api = state.api.read().expect("api lock").clone();
        let path = path.to_string();
        let answer = match api {
            Some(api) => tokio::task::spawn_blocking(move || api.read(&path))
                .await
                .ok()
                .flatten(),
            None => None,
        };
        return match answer {
            Some((status, body)) => json(status, body),
            None => json(
                StatusCode::NOT_FOUND,
                r#"{"error":"no such endpoint"}"#.into(),
            ),
        };
    }
    match req.uri().path() {
        "/metrics" => {
            let variant = Variant::of(req.headers());
            let mut r = text(
                StatusCode::OK,
                variant.content_type(),
                state.scrape(variant).await,
            );
            let headers = r.headers_mut();
            headers.insert(
                hyper::header::VARY,
                hyper::header::HeaderValue::from_static("Accept, Accept-Encoding"),
            );
            if variant.gzip {
                headers.insert(
                    hyper::header::CONTENT_ENCODING,
                    hyper::header::HeaderValue::from_static("gzip"),
                );
            }
            r
        }
        "/healthz" => match state.health.report() {
            (true, body) => text(StatusCode::OK, "text/plain", body),
            (false, body) => text(StatusCode::SERVICE_UNAVAILABLE, "text/plain", body),
        },
        path if Pages::serves(path) => state.status_page(path, req.uri().query()).await,
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
        let first = state.scrape(Variant::TEXT).await;
        let ptr = first.as_ptr();
        // The HTTP layer has sent and dropped the response.
        drop(first);
        let second = state.scrape(Variant::TEXT).await;
        assert_eq!(
            second.as_ptr(),
            ptr,
            "the second render wrote into the first page's buffer"
        );
    }

    #[tokio::test]
    async fn a_gzip_scrape_is_the_text_page_compressed() {
        let metrics = Arc::new(Metrics::new("test").unwrap());
        let web = WebRuntime::new(&WebConfig::default()).unwrap();
        let state = ServerState::new(metrics, Health::new(), web);
        let gzip = Variant {
            format: Format::Text,
            gzip: true,
        };
        let body = state.scrape(gzip).await;
        assert_eq!(&body[..2], [0x1f, 0x8b], "gzip magic");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        assert!(
            text.contains("# TYPE mailpulse_build_info gauge\n"),
            "{text}"
        );
        let plain = state.scrape(Variant::TEXT).await;
        assert!(
            body.len() < plain.len(),
            "{} vs {}",
            body.len(),
            plain.len()
        );
    }

    #[test]
    fn gzip_is_served_only_when_accepted() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=0.5"));
        assert!(accepts_gzip("GZIP"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip(""));
        let mut headers = hyper::HeaderMap::new();
        assert_eq!(Variant::of(&headers), Variant::TEXT);
        headers.insert(hyper::header::ACCEPT_ENCODING, "gzip".parse().unwrap());
        headers.insert(
            hyper::header::ACCEPT,
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3".parse().unwrap(),
        );
        assert_eq!(
            Variant::of(&headers),
            Variant {
                format: Format::Protobuf,
                gzip: true
            }
        );
    }
}
