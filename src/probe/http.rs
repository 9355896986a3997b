//! The HTTP(S) probe: one fresh connection per request, every phase timed on
//! the real connection: `dns`, `connect`, `tls`, `first_byte` (request sent
//! until the response head arrived) and `transfer` (reading the body).
//!
//! Redirects are followed up to the configured limit, each hop on a new
//! connection, and their phases add up, as blackbox_exporter reports them.
//!
//! Credentials (Basic, bearer, the NTLM handshake) and every configured
//! header go only to the origin the target's URL names: same scheme, host
//! and port. A redirect elsewhere (another host or port, or `https` to
//! `http` on the same host) is still followed, as a probe of where users
//! land, but without them; and they go over plain HTTP only to an `http://`
//! target that sets `allow_plaintext_auth`.
//!
//! The NTLM handshake is bound to the connection it runs on (Extended
//! Protection): over TLS, to the certificate the server presented on that
//! connection (rustls' peer certificates), never to a configured one.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::{Host, Url};

use crate::config::{HttpAuth, HttpSpec, IpFamily, TlsOptions};
use crate::sample::{FailureReason, Phase};

use super::stamped::StampedTcp;
use super::{ntlm, tls, ProbeError, Recorder};

/// The `User-Agent` every probe request carries.
pub const USER_AGENT: &str = concat!("mailpulse/", env!("CARGO_PKG_VERSION"));

/// An HTTP target prepared for probing.
#[derive(Debug)]
pub struct HttpProber {
    spec: HttpSpec,
    method: Method,
    /// Built when the first `https` request needs it: at once for an `https`
    /// URL or explicit TLS settings (so their errors show at start-up), else
    /// on the first redirect to `https`. Plain-HTTP targets never pay for a
    /// TLS client (its configuration and trust store cost several KiB each).
    tls: OnceLock<Arc<rustls::ClientConfig>>,
    auth_header: Option<HeaderValue>,
}

/// A response head and body as read by the probe.
struct Response {
    status: StatusCode,
    location: Option<String>,
    body: Bytes,
}

impl HttpProber {
    /// Prepares the TLS client and authentication header of a target.
    pub fn new(spec: &HttpSpec) -> Result<HttpProber, ProbeError> {
        let method = Method::from_bytes(spec.method.as_bytes())
            .map_err(|_| ProbeError::new(FailureReason::Protocol, "invalid method"))?;
        let auth_header = spec.auth.as_ref().and_then(|auth| {
            let text = match auth {
                HttpAuth::Basic { username, password } => {
                    let raw = format!("{username}:{}", password.expose());
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    )
                }
                HttpAuth::Bearer(token) => format!("Bearer {}", token.expose()),
                // NTLM is a handshake on the connection, not a fixed header.
                HttpAuth::Ntlm { .. } => return None,
            };
            let mut value = HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""));
            value.set_sensitive(true);
            Some(value)
        });
        let prober = HttpProber {
            spec: spec.clone(),
            method,
            tls: OnceLock::new(),
            auth_header,
        };
        if spec.url.scheme() == "https" || spec.tls != TlsOptions::default() {
            prober.tls_config()?;
        }
        Ok(prober)
    }

    /// The TLS client of this target, built on first use.
    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, ProbeError> {
        if let Some(config) = self.tls.get() {
            return Ok(config.clone());
        }
        let config = tls::client_config(&self.spec.tls, &[b"http/1.1"])?;
        Ok(self.tls.get_or_init(|| config).clone())
    }

    /// Whether the TLS client has been built (tests).
    #[cfg(test)]
    fn has_tls_config(&self) -> bool {
        self.tls.get().is_some()
    }

    /// Runs the probe, following redirects, and judges the final response.
    pub async fn probe(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        let mut url = self.spec.url.clone();
        let mut method = self.method.clone();
        let mut body = self.spec.body.clone();
        let mut hops = 0;
        loop {
            let trusted = self.trusts(&url);
            if !trusted && (self.spec.auth.is_some() || !self.spec.headers.is_empty()) {
                rec.notes.push(format!(
                    "credentials and configured headers withheld from {} (not the target's origin)",
                    url.origin().ascii_serialization()
                ));
            }
            let response = self
                .request(rec, &url, &method, body.as_deref(), trusted)
                .await?;
            rec.status = Some(response.status.as_u16());
            if response.status.is_redirection() && hops < self.spec.max_redirects {
                if let Some(location) = &response.location {
                    let next = url.join(location).map_err(|e| {
                        ProbeError::new(
                            FailureReason::Protocol,
                            format!("invalid redirect location {location:?}: {e}"),
                        )
                    })?;
                    if !matches!(next.scheme(), "http" | "https") {
                        return Err(ProbeError::new(
                            FailureReason::Protocol,
                            format!("redirect to unsupported scheme {:?}", next.scheme()),
                        ));
                    }
                    // 303 always, and 301/302 after a POST, turn into a GET without body.
                    if response.status == StatusCode::SEE_OTHER
                        || (method == Method::POST && matches!(response.status.as_u16(), 301 | 302))
                    {
                        method = Method::GET;
                        body = None;
                    }
                    url = next;
                    hops += 1;
                    continue;
                }
            }
            if hops > 0 {
                rec.notes
                    .push(format!("followed {hops} redirect(s) to {url}"));
            }
            return self.judge(&response);
        }
    }

    /// Whether `url` may receive the target's configured headers: it has
    /// the target's origin (scheme, host, port).
    fn trusts(&self, url: &Url) -> bool {
        url.origin() == self.spec.url.origin()
    }

    /// Whether `url` may receive the target's credentials: a trusted origin,
    /// over `https` unless the target allows plain text explicitly.
    /// (Validation already refuses credentials on an `http://` target
    /// without `allow_plaintext_auth`; this holds for any `HttpSpec`.)
    fn sends_credentials(&self, url: &Url) -> bool {
        self.trusts(url) && (url.scheme() == "https" || self.spec.allow_plaintext_auth)
    }

    fn judge(&self, response: &Response) -> Result<(), ProbeError> {
        let code = response.status.as_u16();
        if !self.spec.expect_status.iter().any(|r| r.contains(code)) {
            let expected: Vec<String> = self
                .spec
                .expect_status
                .iter()
                .map(|r| r.to_string())
                .collect();
            return Err(ProbeError::new(
                FailureReason::Status,
                format!("status {code}, expected {}", expected.join(" or ")),
            ));
        }
        if self.spec.body_regex.is_some() || self.spec.body_not_regex.is_some() {
            let text = String::from_utf8_lossy(&response.body);
            if let Some(p) = &self.spec.body_regex {
                if !p.0.is_match(&text) {
                    return Err(ProbeError::new(
                        FailureReason::Body,
                        format!("body does not match /{}/", p.0.as_str()),
                    ));
                }
            }
            if let Some(p) = &self.spec.body_not_regex {
                if p.0.is_match(&text) {
                    return Err(ProbeError::new(
                        FailureReason::Body,
                        format!("body matches /{}/", p.0.as_str()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// One request on a fresh connection; with `trusted`, carrying the
    /// target's credentials and configured headers.
    async fn request(
        &self,
        rec: &mut Recorder,
        url: &Url,
        method: &Method,
        body: Option<&str>,
        trusted: bool,
    ) -> Result<Response, ProbeError> {
        let host = url
            .host()
            .ok_or_else(|| ProbeError::new(FailureReason::Dns, "url has no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);

        rec.begin(Phase::Dns);
        let addrs = resolve(&host, port, self.spec.ip_family).await?;

        rec.begin(Phase::Connect);
        let stream = StampedTcp::new(connect(&addrs).await?, rec.arrivals());

        let request = self.build_request(url, method, body, trusted)?;
        let ntlm = self.ntlm().filter(|_| self.sends_credentials(url));
        if url.scheme() == "https" {
            rec.begin(Phase::Tls);
            let host_text = url.host_str().unwrap_or_default();
            let name = tls::server_name(&self.spec.tls, host_text)?;
            let connector = tokio_rustls::TlsConnector::from(self.tls_config()?);
            let tls_stream = connector
                .connect(name, stream)
                .await
                .map_err(|e| tls::handshake_error(&e))?;
            rec.tls = Some(tls::info(tls_stream.get_ref().1));
            // Extended Protection: NTLM is bound to the certificate the
            // server presented on this very connection.
            let ntlm = match ntlm {
                Some(id) => {
                    let leaf = tls_stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .ok_or_else(|| {
                            ProbeError::new(
                                FailureReason::Tls,
                                "the server presented no certificate to bind NTLM to",
                            )
                        })?;
                    Some((id, Channel::Tls(leaf.as_ref().to_vec())))
                }
                None => None,
            };
            exchange(rec, tls_stream, request, self.spec.max_body_bytes, ntlm).await
        } else {
            let ntlm = ntlm.map(|id| (id, Channel::Plain));
            exchange(rec, stream, request, self.spec.max_body_bytes, ntlm).await
        }
    }

    /// The NTLM identity, when the target authenticates with NTLM.
    fn ntlm(&self) -> Option<ntlm::Identity<'_>> {
        match &self.spec.auth {
            Some(HttpAuth::Ntlm {
                domain,
                username,
                password,
            }) => Some(ntlm::Identity {
                domain,
                user: username,
                password: password.expose(),
            }),
            _ => None,
        }
    }

    /// The request for `url`; configured headers only when `trusted` (see
    /// [`trusts`](Self::trusts)), the authentication header only when also
    /// [`sends_credentials`](Self::sends_credentials).
    fn build_request(
        &self,
        url: &Url,
        method: &Method,
        body: Option<&str>,
        trusted: bool,
    ) -> Result<Request<Full<Bytes>>, ProbeError> {
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let host_header = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        };
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(target)
            .header(hyper::header::HOST, host_header)
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .header(hyper::header::ACCEPT, "*/*")
            .header(hyper::header::CONNECTION, "close");
        if let Some(auth) = self
            .auth_header
            .as_ref()
            .filter(|_| trusted && self.sends_credentials(url))
        {
            builder = builder.header(hyper::header::AUTHORIZATION, auth.clone());
        }
        let mut request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default().to_string())))
            .map_err(|e| {
                ProbeError::new(FailureReason::Protocol, format!("invalid request: {e}"))
            })?;
        // Configured headers replace the defaults above (a `Host` override,
        // say). Any of them may be a credential (`Cookie`, `X-API-Key`), and
        // none is meant for another origin: all stay with the target's.
        let configured = if trusted { &self.spec.headers[..] } else { &[] };
        for (name, value) in configured {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                request.headers_mut().insert(n, v);
            }
        }
        Ok(request)
    }
}

/// Resolves `host` (a name or a literal address) into the addresses to try.
pub(super) async fn resolve(
    host: &Host<&str>,
    port: u16,
    family: IpFamily,
) -> Result<Vec<SocketAddr>, ProbeError> {
    let all: Vec<SocketAddr> = match host {
        Host::Ipv4(ip) => vec![SocketAddr::new((*ip).into(), port)],
        Host::Ipv6(ip) => vec![SocketAddr::new((*ip).into(), port)],
        Host::Domain(name) => tokio::net::lookup_host((*name, port))
            .await
            .map_err(|e| {
                ProbeError::new(FailureReason::Dns, format!("cannot resolve {name}: {e}"))
            })?
            .collect(),
    };
    let wanted: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|a| match family {
            IpFamily::Any => true,
            IpFamily::V4 => a.is_ipv4(),
            IpFamily::V6 => a.is_ipv6(),
        })
        .collect();
    if wanted.is_empty() {
        return Err(ProbeError::new(
            FailureReason::Dns,
            format!("{host} has no {} address", family.as_str()),
        ));
    }
    Ok(wanted)
}

/// Connects to the first address that accepts.
pub async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, ProbeError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Probes send small requests and want them on the wire at once.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    let (addr, e) = last.expect("resolve returns at least one address");
    Err(ProbeError::new(
        FailureReason::Connect,
        format!("cannot connect to {addr}: {e}"),
    ))
}

/// The connection an NTLM login is bound to (`MsvAvChannelBindings`).
enum Channel {
    /// Plain HTTP: no channel bindings (the all-zero value).
    Plain,
    /// TLS: the leaf certificate (DER) the server presented on this
    /// connection, for the `tls-server-end-point` binding.
    Tls(Vec<u8>),
}

/// Sends one request and reads the response, timing `first_byte` (until the
/// head arrived) and `transfer` (from there until the body's end arrived).
/// With an NTLM identity, the handshake comes first on the same connection
/// (timed as `auth`): NEGOTIATE, the server's 401 CHALLENGE, then the request
/// itself carrying the AUTHENTICATE message, bound to `Channel` and carrying
/// a MIC over the three messages.
/// The connection is driven in this task (not spawned), so a probe cut off by
/// its deadline leaves nothing running behind it.
async fn exchange<S>(
    rec: &mut Recorder,
    io: S,
    request: Request<Full<Bytes>>,
    max_body: u64,
    ntlm_login: Option<(ntlm::Identity<'_>, Channel)>,
) -> Result<Response, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .handshake::<_, Full<Bytes>>(TokioIo::new(io))
        .await
        .map_err(protocol)?;
    let mut conn = std::pin::pin!(conn);
    let mut conn_done = false;

    let ntlm_on = ntlm_login.is_some();
    let work = async {
        let mut request = request;
        if let Some((id, channel)) = ntlm_login {
            rec.begin(Phase::Auth);
            let negotiate_message = ntlm::negotiate();
            let mut negotiate = copy_request(&request);
            negotiate.headers_mut().insert(
                hyper::header::CONNECTION,
                HeaderValue::from_static("keep-alive"),
            );
            negotiate.headers_mut().insert(
                hyper::header::AUTHORIZATION,
                ntlm_header(&negotiate_message),
            );
            let response = sender.send_request(negotiate).await.map_err(protocol)?;
            if response.status() != StatusCode::UNAUTHORIZED {
                // The server let us in without asking: judge this answer.
                rec.notes
                    .push("server answered without asking for NTLM".to_string());
                rec.continue_after_read(Phase::Transfer);
                return read_response(rec, response, max_body).await;
            }
            let challenge = response
                .headers()
                .get_all(hyper::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| {
                    let (scheme, token) = v.trim().split_once(' ')?;
                    scheme
                        .eq_ignore_ascii_case("NTLM")
                        .then(|| token.trim().to_string())
                });
            let offered: Vec<String> = response
                .headers()
                .get_all(hyper::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split_whitespace().next().map(str::to_string))
                .collect();
            read_body(response.into_body(), max_body).await?;
            let Some(token) = challenge else {
                return Err(ProbeError::new(
                    FailureReason::Auth,
                    format!(
                        "server sent no NTLM challenge (offered: {})",
                        if offered.is_empty() {
                            "nothing".to_string()
                        } else {
                            offered.join(", ")
                        }
                    ),
                ));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(token.as_bytes())
                .map_err(|_| {
                    ProbeError::new(FailureReason::Protocol, "NTLM challenge is not base64")
                })?;
            let challenge = ntlm::parse_challenge(&bytes)
                .map_err(|e| ProbeError::new(FailureReason::Protocol, e))?;
            let mut client_challenge = [0u8; 8];
            tls::provider()
                .secure_random
                .fill(&mut client_challenge)
                .map_err(|_| ProbeError::new(FailureReason::Auth, "no random numbers for NTLM"))?;
            let binding = ntlm::Binding {
                negotiate: &negotiate_message,
                channel_bindings: match &channel {
                    Channel::Plain => ntlm::NO_CHANNEL_BINDINGS,
                    Channel::Tls(certificate) => ntlm::tls_channel_bindings(certificate),
                },
            };
            let message = ntlm::authenticate(
                &challenge,
                id,
                &client_challenge,
                &ntlm::filetime_now(),
                &binding,
            );
            sender.ready().await.map_err(|_| {
                ProbeError::new(
                    FailureReason::Protocol,
                    "server closed the connection during the NTLM handshake",
                )
            })?;
            request
                .headers_mut()
                .insert(hyper::header::AUTHORIZATION, ntlm_header(&message));
        }
        // After NTLM, `auth` ended with the challenge's arrival; computing
        // the answer counts in `total` only.
        if ntlm_on {
            rec.begin_after_read(Phase::FirstByte);
        } else {
            rec.begin(Phase::FirstByte);
        }
        let response = sender.send_request(request).await.map_err(protocol)?;
        if ntlm_on && response.status() == StatusCode::UNAUTHORIZED {
            // The verdict on the credentials: the probe fails in its auth step.
            rec.begin_after_read(Phase::Auth);
            rec.status = Some(401);
            return Err(ProbeError::new(
                FailureReason::Auth,
                "NTLM authentication rejected (401 after AUTHENTICATE)",
            ));
        }
        rec.continue_after_read(Phase::Transfer);
        read_response(rec, response, max_body).await
    };
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            result = &mut work => return result,
            done = &mut conn, if !conn_done => {
                conn_done = true;
                if let Err(e) = done {
                    return Err(protocol(e));
                }
            }
        }
    }
}

fn protocol(e: hyper::Error) -> ProbeError {
    ProbeError::new(FailureReason::Protocol, format!("http error: {e}"))
}

/// `NTLM <base64>` as a sensitive header value.
fn ntlm_header(message: &[u8]) -> HeaderValue {
    let text = format!(
        "NTLM {}",
        base64::engine::general_purpose::STANDARD.encode(message)
    );
    let mut value = HeaderValue::from_str(&text).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// A copy of a request (hyper's requests are not `Clone`).
fn copy_request(request: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// Reads the status, location and body of a response (phase `transfer` is
/// running; it ends when the body's last bytes arrived).
async fn read_response(
    rec: &mut Recorder,
    response: hyper::Response<hyper::body::Incoming>,
    max_body: u64,
) -> Result<Response, ProbeError> {
    let status = response.status();
    let location = response
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_body(response.into_body(), max_body).await?;
    rec.end_after_read();
    Ok(Response {
        status,
        location,
        body,
    })
}

/// Reads a whole body, failing past `max_body` bytes.
async fn read_body(mut body: hyper::body::Incoming, max_body: u64) -> Result<Bytes, ProbeError> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(protocol)?;
        if let Some(data) = frame.data_ref() {
            if (buf.len() + data.len()) as u64 > max_body {
                return Err(ProbeError::new(
                    FailureReason::Protocol,
                    format!("body larger than max_body_bytes ({max_body})"),
                ));
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ProbeSpec};

    fn prober(url: &str, extra: &str) -> HttpProber {
        let text = format!("[[target]]\nname = \"t\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}");
        let target = config::parse(&text, None).unwrap().targets.remove(0);
        let ProbeSpec::Http(spec) = &target.spec else {
            panic!("not an http target")
        };
        HttpProber::new(spec).unwrap()
    }

    #[test]
    fn credentials_go_only_to_the_targets_origin() {
        let secure = prober("https://owa.example.org/owa/", "");
        let plain = prober("http://owa.example.org/", "");
        let allowed = prober("http://owa.example.org/", "allow_plaintext_auth = true\n");
        let url = |u: &str| Url::parse(u).unwrap();
        // (prober, next url, configured headers, credentials)
        let cases = [
            (&secure, "https://owa.example.org/other?x=1", true, true),
            (&secure, "https://OWA.example.org:443/", true, true),
            (&secure, "http://owa.example.org/", false, false),
            (&secure, "https://owa.example.org:8443/", false, false),
            (&secure, "https://evil.example.org/", false, false),
            (&secure, "https://127.0.0.2/", false, false),
            (&plain, "http://owa.example.org:80/x", true, false),
            (&plain, "https://owa.example.org/", false, false),
            (&allowed, "http://owa.example.org/x", true, true),
            (&allowed, "http://other.example.org/", false, false),
        ];
        for (p, next, headers, credentials) in cases {
            let next = url(next);
            assert_eq!(p.trusts(&next), headers, "{} -> {next}", p.spec.url);
            assert_eq!(
                p.sends_credentials(&next),
                credentials,
                "{} -> {next}",
                p.spec.url
            );
        }
    }

    #[test]
    fn plain_http_targets_build_their_tls_client_only_when_needed() {
        let plain = prober("http://127.0.0.1/", "");
        assert!(!plain.has_tls_config());
        // A redirect to https builds it on the way.
        plain.tls_config().unwrap();
        assert!(plain.has_tls_config());
        assert!(prober("https://127.0.0.1/", "").has_tls_config());
        let explicit = prober("http://127.0.0.1/", "tls_insecure_skip_verify = true\n");
        assert!(explicit.has_tls_config());
    }
}
