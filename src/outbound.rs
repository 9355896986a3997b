//! The agent's one outbound HTTP client, shared by the alert receivers
//! (`alert/http.rs` classifies its answers) and `replay --prometheus`:
//! reqwest over the agent's one rustls configuration (`probe::tls`, ring
//! provider), HTTP/1.1 only. Probes keep their own client (their phase
//! timings need the raw connection).
//!
//! What it guarantees: it goes through a proxy like the rest of the
//! ecosystem (a configured `proxy_url`, else `HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY` and `NO_PROXY` as curl reads them, both spellings); it
//! follows no redirect at all, so nothing it sends ever reaches another host
//! than the one configured (the caller sees the 3xx and decides); it reads a
//! response body up to a cap the caller gives and no further; it keeps no
//! idle connection (a dead peer is never hidden by a stale socket); and its
//! messages name only origins (`scheme://host:port`), never a path, a query
//! or the credentials of a proxy, which may all be secrets.

use std::error::Error as StdError;
use std::fmt;

use base64::Engine as _;
use hyper_util::client::proxy::matcher::Matcher;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;

use crate::config::alerting::ProxyUrl;
use crate::config::TlsOptions;

/// The `User-Agent` of every outbound request.
pub const USER_AGENT: &str = concat!("mailpulse/", env!("CARGO_PKG_VERSION"));

/// The environment variables naming proxies, in the order curl reads them.
pub const PROXY_ENV_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// How much of a response body is read: `success` bytes of a 2xx answer,
/// `error` bytes of any other; the rest is never read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Cap for 2xx answers.
    pub success: usize,
    /// Cap for every other answer.
    pub error: usize,
}

/// An HTTP answer, its body read up to the cap.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, up to the cap.
    pub body: Vec<u8>,
    /// Whether the body went on past the cap (the rest was not read).
    pub cut: bool,
    /// Why reading the body stopped early, if it did (the connection broke).
    pub read_error: Option<String>,
}

/// At which step a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The request could not be built (a bad header, URL or body): sending
    /// it again would fail again.
    Invalid,
    /// No connection to the server or to the proxy.
    Connect,
    /// The proxy refused the tunnel or broke it.
    Proxy,
    /// The TLS handshake with the server failed.
    Tls,
    /// The connection broke during the exchange.
    Exchange,
}

/// A request that got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Where it failed.
    pub step: Step,
    /// What happened, naming origins only.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Failure {}

/// Which proxy a client goes through.
#[derive(Clone)]
enum Route {
    /// The configured `proxy_url`, for every request (its origin, for
    /// messages).
    Configured(String),
    /// The proxy environment variables (read when the client was built).
    Environment(std::sync::Arc<Matcher>),
}

/// An HTTP client with one TLS setup and one proxy route. Cheap to clone;
/// `Debug` shows no credentials.
#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
    route: Route,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.route {
            Route::Configured(origin) => write!(f, "Client(proxy {origin})"),
            Route::Environment(_) => f.write_str("Client(proxy from the environment)"),
        }
    }
}

impl Client {
    /// A client with these TLS settings (the agent's one rustls setup:
    /// system roots plus extra CAs, or no verification) that goes through
    /// `proxy` if given, else through the proxies of the environment.
    pub fn new(tls: &TlsOptions, proxy: Option<&ProxyUrl>) -> Result<Client, String> {
        let tls =
            crate::probe::tls::client_config(tls, &[b"http/1.1"]).map_err(|e| e.to_string())?;
        let builder = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .user_agent(USER_AGENT);
        let (builder, route) = match proxy {
            Some(p) => {
                let proxy = reqwest::Proxy::all(p.url().as_str())
                    .map_err(|_| format!("invalid proxy_url for {}", p.origin()))?;
                (builder.proxy(proxy), Route::Configured(p.origin()))
            }
            // reqwest reads the same variables with the same matcher when
            // no proxy is set; this one only names the proxy in messages.
            None => (
                builder,
                Route::Environment(std::sync::Arc::new(Matcher::from_env())),
            ),
        };
        let inner = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", chain(&e)))?;
        Ok(Client { inner, route })
    }

    /// Sends one request and reads the answer's body up to `limits`; only
    /// failures to get an answer are errors.
    pub async fn send(
        &self,
        method: Method,
        url: &url::Url,
        headers: &[(&str, String)],
        body: Vec<u8>,
        limits: BodyLimits,
    ) -> Result<Answer, Failure> {
        let invalid = |message: String| Failure {
            step: Step::Invalid,
            message,
        };
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| invalid(format!("invalid header name: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| invalid(format!("invalid value of header {k}")))?;
            map.append(name, value);
        }
        let mut request = self.inner.request(method, url.clone()).headers(map);
        if !body.is_empty() {
            request = request.body(body);
        }
        let mut response = request.send().await.map_err(|e| self.failure(url, &e))?;
        let status = response.status();
        let limit = if status.is_success() {
            limits.success
        } else {
            limits.error
        };
        let headers = std::mem::take(response.headers_mut());
        // Read up to the limit and no further; a body cut short still leaves
        // the status to judge by. The connection is dropped with the rest.
        let mut bytes = Vec::new();
        let mut cut = false;
        let mut read_error = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let take = chunk.len().min(limit - bytes.len());
                    bytes.extend_from_slice(&chunk[..take]);
                    if bytes.len() == limit {
                        // At the cap: nothing more is read, not even to
                        // learn whether the body ends here.
                        cut = take < chunk.len() || response.content_length() != Some(0);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(root(&e));
                    break;
                }
            }
        }
        Ok(Answer {
            status: status.as_u16(),
            headers,
            body: bytes,
            cut,
            read_error,
        })
    }

    /// The failure of a request to `url`, naming origins only.
    fn failure(&self, url: &url::Url, e: &reqwest::Error) -> Failure {
        let to = origin(url);
        if e.is_builder() {
            return Failure {
                step: Step::Invalid,
                message: format!("invalid request to {to}: {}", root(e)),
            };
        }
        let proxy = self.proxy_for(url);
        if let Some(tls) = chain_has_rustls(e) {
            return Failure {
                step: Step::Tls,
                message: format!("TLS handshake with {to}: {tls}"),
            };
        }
        if let Some(tunnel) = find_in_chain(e, |s| s.starts_with("tunnel error")) {
            let proxy = proxy.unwrap_or_else(|| "the proxy".into());
            // A tunnel that failed because the proxy could not be reached
            // is a connection failure.
            if tunnel.contains("failed to create underlying connection") {
                return Failure {
                    step: Step::Connect,
                    message: format!("cannot connect to proxy {proxy} (for {to}): {}", root(e)),
                };
            }
            let detail = tunnel.trim_start_matches("tunnel error: ");
            let detail = match root(e) {
                r if r == tunnel => detail.to_string(),
                r => format!("{detail}: {r}"),
            };
            return Failure {
                step: Step::Proxy,
                message: format!("proxy {proxy} refused the tunnel to {to}: {detail}"),
            };
        }
        if e.is_connect() {
            let message = match proxy {
                Some(p) => format!("cannot connect to proxy {p} (for {to}): {}", root(e)),
                None => format!("cannot connect to {to}: {}", root(e)),
            };
            return Failure {
                step: Step::Connect,
                message,
            };
        }
        let via = proxy
            .map(|p| format!(" through proxy {p}"))
            .unwrap_or_default();
        Failure {
            step: Step::Exchange,
            message: format!("request to {to}{via}: {}", root(e)),
        }
    }

    /// The origin of the proxy a request to `url` goes through, if any.
    fn proxy_for(&self, url: &url::Url) -> Option<String> {
        match &self.route {
            Route::Configured(origin) => Some(origin.clone()),
            Route::Environment(m) => {
                let uri: hyper::Uri = url.as_str().parse().ok()?;
                let i = m.intercept(&uri)?;
                let p = i.uri();
                Some(format!(
                    "{}://{}:{}",
                    p.scheme_str().unwrap_or("http"),
                    p.host().unwrap_or_default(),
                    p.port_u16().unwrap_or(match p.scheme_str() {
                        Some("https") => 443,
                        _ => 80,
                    })
                ))
            }
        }
    }
}

/// The innermost cause of an error: the message that says what happened
/// (reqwest's own layers only say where).
fn root(e: &(dyn StdError + 'static)) -> String {
    let mut last: &(dyn StdError + 'static) = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// Every message of an error's chain, joined.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

/// The first message in an error's chain that `pred` accepts.
fn find_in_chain(e: &(dyn StdError + 'static), pred: impl Fn(&str) -> bool) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = cur {
        let text = s.to_string();
        if pred(&text) {
            return Some(text);
        }
        cur = s.source();
    }
    None
}

/// The rustls error in an error's chain, if any (also inside I/O errors,
/// however deeply nested: an I/O error's `source` skips the error it wraps).
fn chain_has_rustls(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = cur {
        if let Some(found) = rustls_inside(s) {
            return Some(found);
        }
        cur = s.source();
    }
    None
}

/// `e` itself as a rustls error, or the rustls error inside the I/O errors
/// it wraps.
fn rustls_inside(e: &(dyn StdError + 'static)) -> Option<String> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r.to_string());
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_inside(inner)
}

/// `scheme://host:port` of a URL, for messages (paths may hold secrets, as
/// Slack and Teams webhook URLs do).
pub fn origin(url: &url::Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{}://{h}:{p}", url.scheme()),
        _ => url.scheme().to_string(),
    }
}

/// The secrets in the proxy environment variables (passwords of proxy URLs,
/// as written, decoded, and as the `Proxy-Authorization` value carries
/// them), for redactors: a proxy that echoes its request cannot make us log
/// them.
pub fn environment_proxy_secrets() -> Vec<String> {
    PROXY_ENV_VARS
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .filter_map(|text| {
            let text = text.trim();
            let with_scheme = if text.contains("://") {
                text.to_string()
            } else {
                format!("http://{text}")
            };
            url::Url::parse(&with_scheme).ok()
        })
        .flat_map(|u| credential_forms(&u))
        .collect()
}

/// The forms in which the credentials of a proxy URL leave the agent: the
/// password as written and decoded, and `base64(user:password)`.
pub fn credential_forms(url: &url::Url) -> Vec<String> {
    let Some(raw) = url.password() else {
        return Vec::new();
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let password = decode(raw);
    let user = decode(url.username());
    let mut forms = vec![password.clone()];
    if raw != password {
        forms.push(raw.to_string());
    }
    forms.push(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
    forms.retain(|f| !f.is_empty());
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_hides_paths_and_credentials() {
        let u = url::Url::parse("https://hooks.slack.com/services/T0/B0/secret").unwrap();
        assert_eq!(origin(&u), "https://hooks.slack.com:443");
        let u = url::Url::parse("http://ops:s3cr%40t@proxy.example:3128/").unwrap();
        assert_eq!(origin(&u), "http://proxy.example:3128");
    }

    #[test]
    fn credentials_are_known_in_every_form_they_are_sent() {
        let u = url::Url::parse("http://ops:s3cr%40t@proxy.example:3128/").unwrap();
        assert_eq!(
            credential_forms(&u),
            vec![
                "s3cr@t".to_string(),
                "s3cr%40t".to_string(),
                base64::engine::general_purpose::STANDARD.encode("ops:s3cr@t"),
            ]
        );
        let u = url::Url::parse("http://proxy.example:3128/").unwrap();
        assert!(credential_forms(&u).is_empty());
    }
}
