//! What every HTTP receiver shares: the agent's one outbound HTTP client
//! (`outbound`: reqwest over the agent's rustls configuration, through a
//! receiver's `proxy_url` or the proxies of the environment, no redirect
//! followed, no idle connection kept), a per-request deadline, a capped
//! response body, and the classification of answers into delivered /
//! retriable / permanent (Alertmanager's rule: 2xx delivered; 5xx, 408 and
//! 429 retriable, honouring `Retry-After`; other codes permanent; network
//! errors and timeouts retriable).
//!
//! No pooling: alerts are rare, and a fresh connection per attempt means a
//! dead peer is never hidden by a stale socket. A cancelled attempt drops
//! its connection. Request bodies and headers are never logged (they may
//! carry keys), and every message names origins only.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderMap;
use hyper::Method;
use rustls::ClientConfig;

use super::redact::Redactor;
use super::DeliveryError;
use crate::config::alerting::{ProxyUrl, ReceiverConfig};
use crate::config::TlsOptions;
use crate::outbound::{self, BodyLimits, Step};

/// The body of a successful answer is read up to this size (Grafana's
/// annotation id is in it); the rest is never read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The body of a failed answer is read up to this size: only a short quote of
/// it goes into the error message, so a receiver that answers with an endless
/// body costs no more than this.
pub const MAX_ERROR_BODY_BYTES: usize = 4 * 1024;
/// At most this much of a response body is quoted in an error message.
const QUOTED_BODY_CHARS: usize = 200;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body, decoded lossily as UTF-8.
    pub body: String,
}

/// A client for one receiver: its TLS settings, proxy, timeout, and the
/// redactor of its secrets (built from the same configuration, so no
/// receiver can have a client without it).
#[derive(Clone)]
pub struct HttpClient {
    client: outbound::Client,
    timeout: Duration,
    redactor: Redactor,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HttpClient(timeout {:?}, {:?})",
            self.timeout, self.client
        )
    }
}

impl HttpClient {
    /// A client with the receiver's TLS settings, proxy, per-request
    /// timeout and secrets (every error it returns is redacted).
    pub fn new(config: &ReceiverConfig) -> Result<HttpClient, String> {
        HttpClient::with(
            &config.tls,
            config.proxy.as_ref(),
            config.timeout,
            Redactor::for_receiver(config),
        )
    }

    /// A client from its parts.
    pub fn with(
        tls: &TlsOptions,
        proxy: Option<&ProxyUrl>,
        timeout: Duration,
        redactor: Redactor,
    ) -> Result<HttpClient, String> {
        Ok(HttpClient {
            client: outbound::Client::new(tls, proxy).map_err(|e| redactor.message(&e))?,
            timeout,
            redactor,
        })
    }

    /// Posts JSON and classifies the answer.
    pub async fn post_json(
        &self,
        url: &url::Url,
        headers: &[(&str, String)],
        body: &serde_json::Value,
    ) -> Result<Response, DeliveryError> {
        self.send_json(Method::POST, url, headers, body).await
    }

    /// Sends JSON with any method and classifies the answer.
    pub async fn send_json(
        &self,
        method: Method,
        url: &url::Url,
        headers: &[(&str, String)],
        body: &serde_json::Value,
    ) -> Result<Response, DeliveryError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| DeliveryError::permanent(format!("cannot encode payload: {e}")))?;
        let mut all: Vec<(&str, String)> = vec![("content-type", "application/json".into())];
        all.extend(headers.iter().cloned());
        classify_redacted(self.request(method, url, &all, body).await?, &self.redactor)
    }

    /// Sends one request and returns whatever the server answered; only
    /// failures to get an answer are errors (retriable, but for a request
    /// that cannot be built).
    pub async fn request(
        &self,
        method: Method,
        url: &url::Url,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Response, DeliveryError> {
        let limits = BodyLimits {
            success: MAX_RESPONSE_BYTES,
            error: MAX_ERROR_BODY_BYTES,
        };
        let exchange = self.client.send(method, url, headers, body, limits);
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => Ok(Response {
                status: answer.status,
                headers: answer.headers,
                body: String::from_utf8_lossy(&answer.body).into_owned(),
            }),
            Ok(Err(failure)) => Err(self.redactor.error(match failure.step {
                Step::Invalid => DeliveryError::permanent(failure.message),
                _ => DeliveryError::retriable(failure.message),
            })),
            Err(_) => Err(DeliveryError::retriable(format!(
                "no answer from {} within {}",
                origin(url),
                crate::config::HumanDuration(self.timeout)
            ))),
        }
    }
}

/// Judges an answer: 2xx is delivered; 5xx, 408 and 429 are retriable (with
/// `Retry-After` when given); a redirect is retriable too (it is not
/// followed: credentials and keys go only where the configuration says, and
/// a page waits rather than being lost while the URL is fixed); anything
/// else is permanent.
pub fn classify(r: Response) -> Result<Response, DeliveryError> {
    classify_redacted(r, &Redactor::default())
}

/// [`classify`], with the quoted body redacted before it is cut short.
fn classify_redacted(r: Response, redactor: &Redactor) -> Result<Response, DeliveryError> {
    let error = match r.status {
        200..=299 => return Ok(r),
        408 | 429 | 500..=599 => DeliveryError::Retriable {
            message: status_message(&r, redactor),
            retry_after: retry_after(&r.headers),
        },
        300..=399 => DeliveryError::retriable(redirect_message(&r)),
        _ => DeliveryError::permanent(status_message(&r, redactor)),
    };
    Err(redactor.error(error))
}

fn status_message(r: &Response, redactor: &Redactor) -> String {
    let body: String = quotable(&redactor.redact(r.body.trim()))
        .chars()
        .take(QUOTED_BODY_CHARS)
        .collect();
    if body.is_empty() {
        format!("HTTP {}", r.status)
    } else {
        format!("HTTP {}: {body}", r.status)
    }
}

/// What a redirect answer says, naming only the origin it points to (its
/// path may hold a token).
fn redirect_message(r: &Response) -> String {
    let location = r
        .headers
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok());
    let target = match location.map(url::Url::parse) {
        Some(Ok(u)) => origin(&u),
        Some(Err(_)) => "another path on the same server".to_string(),
        None => "nowhere (no Location)".to_string(),
    };
    format!(
        "HTTP {}: redirect to {target} not followed; set the receiver's url to the final address",
        r.status
    )
}

/// `text` safe to print on a terminal and in a log line: line breaks and tabs
/// become spaces, other control and bidirectional formatting characters
/// become U+FFFD, so an answer cannot forge log lines or rewrite a terminal.
pub fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if crate::config::is_hidden_char(c) => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// The delay a `Retry-After` header asks for: seconds, or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(hyper::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    // An HTTP date is absolute; compare it with the system clock, as the
    // server that wrote it did.
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// `scheme://host:port` of a URL, for messages (paths may hold secrets, as
/// Slack and Teams webhook URLs do).
pub fn origin(url: &url::Url) -> String {
    outbound::origin(url)
}

/// A rustls client configuration from a receiver's TLS settings: the same
/// setup as the probes' (ring provider, system roots plus `tls_ca_file`,
/// optional `tls_insecure_skip_verify`).
pub fn tls_config(tls: &TlsOptions, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, String> {
    crate::probe::tls::client_config(tls, alpn).map_err(|e| e.to_string())
}

/// A URL that is itself the secret (Slack and Teams webhooks). The error
/// names the file it came from, never the value.
pub fn secret_url(secret: &crate::config::Secret) -> Result<url::Url, String> {
    url::Url::parse(secret.expose().trim())
        .map_err(|_| format!("{} does not hold a valid URL", secret.path().display()))
}

/// `Authorization` header value of a receiver's auth, if any.
pub fn authorization(auth: &crate::config::alerting::ReceiverAuth) -> Option<String> {
    use crate::config::alerting::ReceiverAuth;
    use base64::Engine as _;
    match auth {
        ReceiverAuth::None => None,
        ReceiverAuth::Bearer(t) => Some(format!("Bearer {}", t.expose().trim())),
        ReceiverAuth::Basic { username, password } => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose()))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn response(status: u16, retry: Option<&str>) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(r) = retry {
            headers.insert(
                hyper::header::RETRY_AFTER,
                HeaderValue::from_str(r).unwrap(),
            );
        }
        Response {
            status,
            headers,
            body: "nope".into(),
        }
    }

    #[test]
    fn classification_follows_alertmanager() {
        assert!(classify(response(202, None)).is_ok());
        let check = |status: u16, retriable: bool| {
            let e = classify(response(status, None)).unwrap_err();
            assert_eq!(e.is_retriable(), retriable, "{status}");
            assert_eq!(e.to_string(), format!("HTTP {status}: nope"));
        };
        check(500, true);
        check(503, true);
        check(429, true);
        check(408, true);
        check(400, false);
        check(401, false);
        check(404, false);
        let e = classify(response(429, Some("7"))).unwrap_err();
        assert_eq!(
            e,
            DeliveryError::Retriable {
                message: "HTTP 429: nope".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn redirects_are_not_followed_and_name_only_the_origin() {
        let mut r = response(302, None);
        r.headers.insert(
            hyper::header::LOCATION,
            HeaderValue::from_static("http://127.0.0.2:8080/services/T0/B0/s3cr3t?sig=x"),
        );
        let e = classify(r).unwrap_err();
        assert!(e.is_retriable());
        assert_eq!(
            e.to_string(),
            "HTTP 302: redirect to http://127.0.0.2:8080 not followed; set the receiver's url to the final address"
        );
        let e = classify(response(301, None)).unwrap_err();
        assert!(
            e.to_string().contains("redirect to nowhere (no Location)"),
            "{e}"
        );
    }

    #[test]
    fn quoted_bodies_cannot_drive_a_terminal() {
        let mut r = response(500, None);
        r.body = "bad\x1b[2J\x1b]0;title\x07\nnext\u{202e}line".into();
        let e = classify(r).unwrap_err().to_string();
        assert_eq!(
            e,
            "HTTP 500: bad\u{fffd}[2J\u{fffd}]0;title\u{fffd} next\u{fffd}line"
        );
    }

    /// A server on 127.0.0.1 that answers one request with `head`, then a
    /// body of `lead` followed by `body_len` bytes of `x`.
    async fn server(head: &'static str, lead: String, body_len: usize) -> url::Url {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let length = lead.len() + body_len;
            let mut out = format!("{head}Content-Length: {length}\r\n\r\n{lead}").into_bytes();
            out.resize(out.len() + body_len, b'x');
            for chunk in out.chunks(16 * 1024) {
                if s.write_all(chunk).await.is_err() {
                    break;
                }
            }
        });
        url::Url::parse(&format!("http://{addr}/hook")).unwrap()
    }

    #[tokio::test]
    async fn a_long_error_body_is_quoted_from_its_start_and_redacted_before_the_cut() {
        let client = HttpClient::with(
            &TlsOptions::default(),
            None,
            Duration::from_secs(5),
            Redactor::new(["t0p-s3cret-t0ken"]),
        )
        .unwrap();
        // A 1 MiB body (more than either cap) whose secret straddles the
        // 200th character, where the quote is cut.
        let lead = format!("quota exceeded for {}(t0p-s3cret-t0ken)", ".".repeat(172));
        assert_eq!(lead.find("t0p"), Some(192));
        let url = server("HTTP/1.1 500 Oops\r\n", lead, 1 << 20).await;
        let e = client
            .post_json(&url, &[], &serde_json::json!({}))
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("HTTP 500: quota exceeded for ..."),
            "{text}"
        );
        // Redacted, then cut: what is left of the secret is the marker's start.
        assert!(text.ends_with("(<redacte"), "{text}");
        assert!(!text.contains("t0p"), "{text}");
        assert!(e.is_retriable());
    }

    #[test]
    fn origin_hides_paths() {
        let u = url::Url::parse("https://hooks.slack.com/services/T0/B0/secret").unwrap();
        assert_eq!(origin(&u), "https://hooks.slack.com:443");
    }
}
