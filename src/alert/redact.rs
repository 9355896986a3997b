//! Keeps receiver secrets out of everything that leaves a receiver: the
//! [`Redactor`] of a receiver knows its configured secrets (tokens, keys,
//! passwords, secret URLs) and every form in which we send them (plain,
//! base64 as in `Authorization: Basic` and SMTP `AUTH PLAIN`/`LOGIN`), and
//! finds them in a text also when the text re-encodes them (percent-encoded,
//! JSON-escaped, HTML entities, or inside a longer base64 run), so a receiver
//! that echoes our request in its error answer cannot make us log, print or
//! store a secret.
//!
//! [`build_receiver`](super::build_receiver) wraps every receiver in
//! [`Redacted`], which passes each error through its redactor before it
//! leaves the receiver layer (to the delivery loop's log and outbox, or to
//! `test-alert`), so no receiver can forget. The HTTP client holds the same
//! redactor for the messages it builds (a quoted body is redacted before it
//! is cut short, so a secret cannot be half quoted), which also covers what a
//! receiver logs by itself.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::{AlertEvent, BoxFuture, DeliveryError, Receiver};
use crate::config::alerting::{ReceiverConfig, ReceiverSecret};
use crate::config::Secret;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";
/// Longest error message a receiver hands out, in characters (after
/// redaction, so a cut never leaves part of a secret).
pub const MAX_ERROR_CHARS: usize = 1024;
/// Shortest run of base64 characters that stands for part of a secret inside
/// a longer base64 text (shorter runs would match by chance).
const MIN_BASE64_RUN: usize = 6;
/// Shortest path segment or query value of a secret URL that is taken as a
/// token on its own (`services`, `invoke` and the like are shorter or plain
/// words).
const MIN_URL_TOKEN: usize = 8;

/// Finds and replaces one receiver's secrets. `Debug` shows only how many
/// patterns it holds.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Strings to find (the longest match at a position wins).
    patterns: Vec<Vec<char>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} patterns)", self.patterns.len())
    }
}

impl Redactor {
    /// A redactor for the given secret values (each also in base64).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut r = Redactor::default();
        for s in secrets {
            r.add_secret(s);
        }
        r.finish()
    }

    /// The redactor of a configured receiver: every secret its kind sends,
    /// in every form it sends it.
    pub fn for_receiver(config: &ReceiverConfig) -> Redactor {
        let mut r = Redactor::default();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for secret in config.spec.secrets() {
            match secret {
                ReceiverSecret::Token(token) => r.add_secret_value(token),
                ReceiverSecret::Url(url) => r.add_secret_url(url),
                ReceiverSecret::HttpBasic { username, password } => {
                    r.add_secret_value(password);
                    // `Authorization: Basic base64(user:password)`, as sent.
                    r.add_secret(&b64(&format!("{username}:{}", password.expose())));
                }
                ReceiverSecret::SmtpLogin { username, password } => {
                    r.add_secret_value(password);
                    // AUTH PLAIN base64("\0user\0password"); AUTH LOGIN sends
                    // base64(password), which add_secret_value covers.
                    r.add_secret(&b64(&format!("\0{username}\0{}", password.expose())));
                }
            }
        }
        // The proxy's credentials: the configured one's, and those of the
        // environment's proxies (read as the HTTP client reads them, when the
        // receiver is built), in every form they are sent.
        if let Some(proxy) = &config.proxy {
            for form in crate::outbound::credential_forms(proxy.url()) {
                r.add_secret(&form);
            }
        }
        for form in crate::outbound::environment_proxy_secrets() {
            r.add_secret(&form);
        }
        r.finish()
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        if self.patterns.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            let end = self
                .patterns
                .iter()
                .filter_map(|p| match_at(text, i, p))
                .max();
            match end {
                Some(end) => {
                    out.push_str(REDACTED);
                    i = end;
                }
                None => {
                    // `i` is always on a character boundary.
                    let c = text[i..].chars().next().unwrap_or_default();
                    out.push(c);
                    i += c.len_utf8().max(1);
                }
            }
        }
        out
    }

    /// The error with its message redacted and cut to [`MAX_ERROR_CHARS`].
    pub fn error(&self, e: DeliveryError) -> DeliveryError {
        match e {
            DeliveryError::Retriable {
                message,
                retry_after,
            } => DeliveryError::Retriable {
                message: self.message(&message),
                retry_after,
            },
            DeliveryError::Permanent { message } => DeliveryError::Permanent {
                message: self.message(&message),
            },
        }
    }

    /// A message redacted, then cut to [`MAX_ERROR_CHARS`].
    pub fn message(&self, message: &str) -> String {
        let redacted = self.redact(message);
        if redacted.chars().count() <= MAX_ERROR_CHARS {
            return redacted;
        }
        let mut cut: String = redacted.chars().take(MAX_ERROR_CHARS - 1).collect();
        cut.push('…');
        cut
    }

    /// A secret value as configured and as sent (trimmed).
    fn add_secret_value(&mut self, secret: &Secret) {
        self.add_secret(secret.expose());
        self.add_secret(secret.expose().trim());
    }

    /// A secret string as it is and as it is written inside a JSON body (the
    /// PagerDuty routing key), each with its base64 forms.
    fn add_secret(&mut self, secret: &str) {
        self.add_forms(secret);
        let json = serde_json::to_string(secret).unwrap_or_default();
        let escaped = json
            .get(1..json.len().saturating_sub(1))
            .unwrap_or_default();
        if escaped != secret {
            self.add_forms(escaped);
        }
    }

    /// A string, its base64 forms, and the runs of base64 that stand for it
    /// inside any longer base64 text.
    fn add_forms(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        self.push(secret);
        let bytes = secret.as_bytes();
        let standard = base64::engine::general_purpose::STANDARD;
        let url_safe = |s: &str| s.replace('+', "-").replace('/', "_");
        let whole = standard.encode(bytes);
        self.push(&url_safe(&whole));
        self.push(&whole);
        // Inside a longer base64 text the secret starts at one of three byte
        // offsets; at each, the characters encoding only its bytes are fixed.
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&shifted);
            let first = (offset * 8).div_ceil(6);
            let last = shifted.len() * 8 / 6;
            if last > first && last - first >= MIN_BASE64_RUN {
                let run = &encoded[first..last];
                self.push(run);
                self.push(&url_safe(run));
            }
        }
    }

    /// A URL that is itself the secret (Slack, Teams): the whole of it, what
    /// goes in the request line (path and query), and each token-like path
    /// segment and query value, as written and decoded.
    fn add_secret_url(&mut self, secret: &Secret) {
        let text = secret.expose().trim();
        self.add_secret(text);
        let Ok(url) = url::Url::parse(text) else {
            return;
        };
        let path = url.path();
        if path != "/" {
            self.add_secret(path);
        }
        if let Some(query) = url.query() {
            self.add_secret(query);
            self.add_secret(&format!("{path}?{query}"));
            for part in query.split('&') {
                let value = part.split_once('=').map_or(part, |(_, v)| v);
                self.add_url_token(value);
            }
        }
        for segment in path.split('/') {
            self.add_url_token(segment);
        }
    }

    /// A path segment or query value, if it looks like a token.
    fn add_url_token(&mut self, raw: &str) {
        let decoded = percent_decode(raw);
        for token in [raw, decoded.as_str()] {
            let long = token.chars().count() >= MIN_URL_TOKEN;
            let word = token.chars().all(|c| c.is_ascii_alphabetic() || c == '-');
            if long && !word {
                self.add_secret(token);
            }
        }
    }

    fn push(&mut self, pattern: &str) {
        if !pattern.is_empty() {
            self.patterns.push(pattern.chars().collect());
        }
    }

    /// Without duplicates.
    fn finish(mut self) -> Redactor {
        self.patterns.sort();
        self.patterns.dedup();
        self
    }
}

/// `%XX` sequences decoded (invalid UTF-8 lossily); `+` stays.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = hex_byte(&b[i + 1..i + 3]) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(two).ok()?;
    u8::from_str_radix(text, 16).ok()
}

/// Where a match of `pattern` starting at byte `start` of `text` ends (the
/// longest), each character of the pattern written as itself or in any of the
/// encodings of [`encodings_at`].
fn match_at(text: &str, start: usize, pattern: &[char]) -> Option<usize> {
    let first = *pattern.first()?;
    // Quick refusal: every form of a character starts with the character
    // itself or one of these.
    let head = text.as_bytes()[start];
    let mut lead = [0u8; 4];
    if !(text[start..].starts_with(first.encode_utf8(&mut lead) as &str)
        || matches!(head, b'%' | b'\\' | b'&' | b'+'))
    {
        return None;
    }
    // All positions the text can be at after each pattern character (an
    // encoding may be read more than one way, so keep every way).
    let mut positions = vec![start];
    for &c in pattern {
        let mut next = Vec::new();
        for &p in &positions {
            for end in encodings_at(text, p, c) {
                if !next.contains(&end) {
                    next.push(end);
                }
            }
        }
        if next.is_empty() {
            return None;
        }
        positions = next;
    }
    positions.into_iter().max()
}

/// Every end position at which `text[at..]` begins with `c` written as
/// itself, percent-encoded (`%XX` per UTF-8 byte, any case; `+` for a space),
/// JSON-escaped (`\"`, `\\`, `\/`, `\n`..., `\uXXXX` and surrogate pairs) or
/// as an HTML character reference (`&amp;`, `&#39;`, `&#x2F;`...).
fn encodings_at(text: &str, at: usize, c: char) -> Vec<usize> {
    let rest = &text[at..];
    let mut ends = Vec::new();
    let mut buf = [0u8; 4];
    let literal: &str = c.encode_utf8(&mut buf);
    if rest.starts_with(literal) {
        ends.push(at + literal.len());
    }
    // Percent-encoding, byte by byte.
    let mut p = 0;
    let bytes = rest.as_bytes();
    let mut percent = true;
    for b in literal.bytes() {
        if bytes.get(p) == Some(&b'%')
            && bytes
                .get(p + 1..p + 3)
                .and_then(hex_byte)
                .is_some_and(|v| v == b)
        {
            p += 3;
        } else {
            percent = false;
            break;
        }
    }
    if percent {
        ends.push(at + p);
    }
    if c == ' ' && rest.starts_with('+') {
        ends.push(at + 1);
    }
    // JSON escapes.
    let short = match c {
        '"' => Some("\\\""),
        '\\' => Some("\\\\"),
        '/' => Some("\\/"),
        '\n' => Some("\\n"),
        '\r' => Some("\\r"),
        '\t' => Some("\\t"),
        '\u{8}' => Some("\\b"),
        '\u{c}' => Some("\\f"),
        _ => None,
    };
    if let Some(s) = short {
        if rest.starts_with(s) {
            ends.push(at + s.len());
        }
    }
    let mut units = [0u16; 2];
    let mut q = 0;
    let mut escaped = true;
    for u in c.encode_utf16(&mut units) {
        let unit = rest
            .get(q..q + 6)
            .filter(|s| s.starts_with("\\u"))
            .and_then(|s| u16::from_str_radix(&s[2..], 16).ok());
        if unit == Some(*u) {
            q += 6;
        } else {
            escaped = false;
            break;
        }
    }
    if escaped {
        ends.push(at + q);
    }
    // HTML character references.
    if rest.starts_with('&') {
        let named = match c {
            '&' => Some("&amp;"),
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            '"' => Some("&quot;"),
            '\'' => Some("&apos;"),
            _ => None,
        };
        if let Some(n) = named {
            if rest.starts_with(n) {
                ends.push(at + n.len());
            }
        }
        // Numeric: `&#39;`, `&#x2F;` (at most 10 characters before the `;`).
        if let Some(semi) = rest.bytes().take(12).position(|b| b == b';') {
            let entity = &rest[..semi];
            let value = if let Some(hex) = entity
                .strip_prefix("&#x")
                .or_else(|| entity.strip_prefix("&#X"))
            {
                u32::from_str_radix(hex, 16).ok()
            } else if let Some(dec) = entity.strip_prefix("&#") {
                dec.parse::<u32>().ok()
            } else {
                None
            };
            if value == Some(u32::from(c)) {
                ends.push(at + semi + 1);
            }
        }
    }
    ends
}

/// A receiver whose errors pass through its [`Redactor`] before they leave
/// it. [`build_receiver`](super::build_receiver) wraps every receiver in one.
pub struct Redacted {
    inner: Arc<dyn Receiver>,
    redactor: Redactor,
}

impl Redacted {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Receiver>, redactor: Redactor) -> Redacted {
        Redacted { inner, redactor }
    }
}

impl Receiver for Redacted {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            self.inner
                .send(event)
                .await
                .map_err(|e| self.redactor.error(e))
        })
    }

    fn stateful(&self) -> bool {
        self.inner.stateful()
    }

    fn refresh(&self, now: DateTime<Utc>) -> BoxFuture<'_, ()> {
        self.inner.refresh(now)
    }

    fn redact(&self, text: &str) -> String {
        self.redactor.message(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerting::{
        ChatSpec, EmailSpec, ReceiverAuth, ReceiverSpec, SmtpTls, WebhookSpec,
    };
    use crate::config::TlsOptions;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    fn receiver(spec: ReceiverSpec) -> ReceiverConfig {
        ReceiverConfig {
            name: "r".into(),
            timeout: std::time::Duration::from_secs(1),
            send_resolved: true,
            tls: TlsOptions::default(),
            proxy: None,
            spec,
        }
    }

    fn basic(user: &str, password: &str) -> Redactor {
        Redactor::for_receiver(&receiver(ReceiverSpec::Webhook(WebhookSpec {
            url: url::Url::parse("http://127.0.0.1:1/hook").unwrap(),
            auth: ReceiverAuth::Basic {
                username: user.into(),
                password: Secret::new(password),
            },
        })))
    }

    /// Percent-encodes every byte but ASCII letters and digits.
    fn percent(s: &str, upper: bool) -> String {
        s.bytes()
            .map(|b| match (b.is_ascii_alphanumeric(), upper) {
                (true, _) => (b as char).to_string(),
                (false, true) => format!("%{b:02X}"),
                (false, false) => format!("%{b:02x}"),
            })
            .collect()
    }

    /// JSON with `\/` and `\uXXXX` for everything not plain ASCII.
    fn json_escaped(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' => out.push_str("\\/"),
                c if c.is_ascii_graphic() || c == ' ' => out.push(c),
                c => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{u:04X}"));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_encoding_of_a_password_is_redacted() {
        let pw = "p@ss/w\u{f6}rd \"q\" \\x 🦀";
        let r = basic("alice", pw);
        let token = B64.encode(format!("alice:{pw}"));
        let cases = [
            pw.to_string(),
            B64.encode(pw),
            percent(pw, true),
            percent(pw, false),
            pw.replace(' ', "+"),
            json_escaped(pw),
            serde_json::to_string(pw).unwrap(),
            pw.replace('"', "&quot;").replace('/', "&#x2F;"),
            format!("Authorization: Basic {token}"),
            json_escaped(&format!("Basic {token}")),
        ];
        for text in cases {
            let shown = r.redact(&format!("before {text} after"));
            assert!(
                shown.starts_with("before ")
                    && shown.ends_with(" after")
                    && shown.contains(REDACTED),
                "{text:?} -> {shown:?}"
            );
            assert!(
                !shown.contains("ss/w") && !shown.contains(&token[4..]),
                "{shown:?}"
            );
        }
    }

    #[test]
    fn a_secret_inside_a_longer_base64_text_is_redacted_at_any_offset() {
        let secret = "Sup3rS3cretT0ken";
        let r = Redactor::new([secret]);
        for prefix in ["", "a", "ab", "abc", "Authorization: Bearer "] {
            let blob = B64.encode(format!("{prefix}{secret} and more"));
            let shown = r.redact(&blob);
            let (before, after) = shown
                .split_once(REDACTED)
                .unwrap_or_else(|| panic!("{prefix:?}: {shown}"));
            assert!(blob.starts_with(before) && blob.ends_with(after), "{shown}");
            // Every character that encodes only the secret's bits is gone.
            let (p, n) = (prefix.len(), secret.len());
            assert!(before.len() <= (8 * p).div_ceil(6), "{prefix:?}: {shown}");
            assert!(
                blob.len() - after.len() >= 8 * (p + n) / 6,
                "{prefix:?}: {shown}"
            );
        }
    }

    #[test]
    fn smtp_auth_tokens_are_redacted() {
        let r = Redactor::for_receiver(&receiver(ReceiverSpec::Email(EmailSpec {
            host: "127.0.0.1".into(),
            port: 25,
            from: "a@example.org".into(),
            to: vec!["b@example.org".into()],
            credentials: Some(("alice".into(), Secret::new("s3cretpw"))),
            oauth2: None,
            auth: crate::config::alerting::SmtpAuth::Auto,
            tls: SmtpTls::None,
            hello: "agent".into(),
        })));
        let plain = B64.encode("\0alice\0s3cretpw");
        let login = B64.encode("s3cretpw");
        let reply = format!("535 rejected AUTH PLAIN {plain}; LOGIN {login}; decoded s3cretpw");
        let shown = r.redact(&reply);
        assert_eq!(
            shown,
            format!("535 rejected AUTH PLAIN {REDACTED}; LOGIN {REDACTED}; decoded {REDACTED}")
        );
    }

    #[test]
    fn secret_urls_lose_their_tokens_and_keep_their_words() {
        let url = "https://hooks.slack.com/services/T0AAAA1111/B0BBBB2222/abcdefGHIJKL1234mnopQRST";
        let r = Redactor::for_receiver(&receiver(ReceiverSpec::Slack(ChatSpec {
            url: Secret::new(format!("{url}\n")),
        })));
        let shown = r.redact(&format!("POST /services/T0AAAA1111/B0BBBB2222/abcdefGHIJKL1234mnopQRST HTTP/1.1; url {url}; token abcdefGHIJKL1234mnopQRST in services"));
        assert_eq!(
            shown,
            format!("POST {REDACTED} HTTP/1.1; url {REDACTED}; token {REDACTED} in services")
        );
        let teams = "https://x.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Frun&sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5";
        let r = Redactor::for_receiver(&receiver(ReceiverSpec::Teams(ChatSpec {
            url: Secret::new(teams),
        })));
        let shown = r.redact("invalid signature Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5 for invoke");
        assert_eq!(shown, format!("invalid signature {REDACTED} for invoke"));
    }

    #[test]
    fn text_without_secrets_is_left_alone_and_messages_are_capped_after_redaction() {
        let r = Redactor::new(["t0k3n-value"]);
        let text = "HTTP 500: internal error, try again (%41 \\u0041 &amp; +)";
        assert_eq!(r.redact(text), text);
        assert_eq!(Redactor::default().redact(text), text);
        // A secret straddling the cut is redacted before it is cut.
        let long = format!("{}t0k3n-value", "x".repeat(MAX_ERROR_CHARS - 4));
        let shown = r.message(&long);
        assert_eq!(shown.chars().count(), MAX_ERROR_CHARS);
        assert!(!shown.contains("t0k"), "{shown}");
        assert!(format!("{r:?}").starts_with("Redactor("));
        assert!(!format!("{r:?}").contains("t0k3n"));
    }

    #[test]
    fn errors_keep_their_kind_and_delay() {
        let r = Redactor::new(["k3y-k3y-k3y"]);
        let e = r.error(DeliveryError::Retriable {
            message: "HTTP 429: k3y-k3y-k3y".into(),
            retry_after: Some(std::time::Duration::from_secs(3)),
        });
        assert_eq!(
            e,
            DeliveryError::Retriable {
                message: format!("HTTP 429: {REDACTED}"),
                retry_after: Some(std::time::Duration::from_secs(3)),
            }
        );
        let e = r.error(DeliveryError::permanent("k3y-k3y-k3y"));
        assert_eq!(e, DeliveryError::permanent(REDACTED));
    }
}
