//! `kind = "http"` targets: URL, method, headers, expected status, body
//! patterns and authentication (basic, bearer, NTLM).

use super::connect::{build_tls, parse_ip_family, TlsKeys};
use super::files::{read_password, read_secret};
use super::*;
use crate::config::raw::{RawStatus, RawTarget};

pub(super) fn build_http(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    t: RawTarget,
    base: &Path,
) -> Option<HttpSpec> {
    let Some(url_text) = t.url else {
        c.error_at(tp, "missing field `url` (required for kind \"http\")");
        return None;
    };
    let url = match url::Url::parse(&url_text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        Ok(_) => {
            c.error_at(
                &tp.key("url"),
                format!(
                    "invalid url {url_text:?} (expected an http:// or https:// URL with a host)"
                ),
            );
            return None;
        }
        Err(e) => {
            c.error_at(&tp.key("url"), format!("invalid url {url_text:?}: {e}"));
            return None;
        }
    };
    let method = t
        .method
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    if hyper::Method::from_bytes(method.as_bytes()).is_err() {
        c.error_at(&tp.key("method"), format!("invalid method {method:?}"));
    }
    let headers: Vec<(String, String)> = t.headers.unwrap_or_default().into_iter().collect();
    for (k, v) in &headers {
        if hyper::header::HeaderName::from_bytes(k.as_bytes()).is_err()
            || hyper::header::HeaderValue::from_str(v).is_err()
        {
            c.error_at(&tp.key("headers").key(k), "invalid header name or value");
        }
    }
    let expect_status = match t.expect_status {
        None => vec![StatusRange {
            low: 200,
            high: 299,
        }],
        Some(list) => {
            let sp = tp.key("expect_status");
            if list.is_empty() {
                c.error_at(&sp, "must list at least one status code or class");
            }
            list.into_iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let r = parse_status(&s);
                    if r.is_none() {
                        c.error_at(
                            &sp.index(i),
                            "expected a status code (100-599) or a class such as \"2xx\"",
                        );
                    }
                    r
                })
                .collect()
        }
    };
    let mut pattern = |key: &str, text: Option<String>| {
        text.and_then(|text| match regex::Regex::new(&text) {
            Ok(r) => Some(Pattern(r)),
            Err(e) => {
                let first = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                c.error_at(&tp.key(key), format!("invalid regular expression: {first}"));
                None
            }
        })
    };
    let body_regex = pattern("body_regex", t.body_regex);
    let body_not_regex = pattern("body_not_regex", t.body_not_regex);
    let follow = t.follow_redirects.unwrap_or(true);
    let max_redirects = if follow {
        t.max_redirects.unwrap_or(DEFAULT_MAX_REDIRECTS)
    } else {
        0
    };
    let max_body_bytes = t.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        c.error_at(&tp.key("max_body_bytes"), "must be greater than zero");
    }
    let password_key = if t.password_credential.is_some() {
        "password_credential"
    } else {
        "password_file"
    };
    let password = match read_password(c, tp, base, t.password_file, t.password_credential) {
        Ok(p) => p,
        Err(()) => return None,
    };
    let scheme = t.auth.as_deref().unwrap_or("basic");
    if !matches!(scheme, "basic" | "ntlm") {
        c.error_at(
            &tp.key("auth"),
            format!("invalid auth {scheme:?} for kind \"http\" (expected \"basic\" or \"ntlm\")"),
        );
    }
    let auth = match (t.username, password, t.bearer_token_file) {
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            c.error_at(
                &tp.key("bearer_token_file"),
                "cannot be combined with username/password_file",
            );
            None
        }
        (Some(username), Some(password), None) if scheme == "ntlm" => {
            let (domain, user) = split_ntlm_user(&username);
            Some(HttpAuth::Ntlm {
                domain,
                username: user,
                password,
            })
        }
        (Some(username), Some(password), None) => Some(HttpAuth::Basic { username, password }),
        (Some(_), None, None) => {
            c.error_at(
                &tp.key("username"),
                "needs password_file or password_credential",
            );
            None
        }
        (None, Some(_), None) => {
            c.error_at(&tp.key(password_key), "needs username");
            None
        }
        (None, None, Some(file)) => {
            read_secret(c, &tp.key("bearer_token_file"), base, file).map(HttpAuth::Bearer)
        }
        (None, None, None) => None,
    };
    if t.auth.is_some() && !matches!(auth, Some(HttpAuth::Basic { .. } | HttpAuth::Ntlm { .. })) {
        c.error_at(&tp.key("auth"), "needs username and password_file");
    }
    // As the mail probes: a credential never goes over plain text unless
    // the user says so for this target.
    let allow_plaintext_auth = t.allow_plaintext_auth.unwrap_or(false);
    if url.scheme() == "http" && !allow_plaintext_auth {
        let refused = match &auth {
            Some(HttpAuth::Bearer(_)) => Some(("bearer_token_file", "a token")),
            Some(_) => Some(("username", "a password")),
            None => None,
        };
        if let Some((key, what)) = refused {
            c.error_at(
                &tp.key(key),
                format!("{what} is never sent without TLS; use an https:// url, or set allow_plaintext_auth = true to send it over plain HTTP"),
            );
        }
    }
    let ip_family = parse_ip_family(c, tp, t.ip_family);
    let tls = build_tls(
        c,
        tp,
        base,
        TlsKeys {
            ca_file: t.tls_ca_file,
            cert_file: t.tls_cert_file,
            key_file: t.tls_key_file,
            insecure: t.tls_insecure_skip_verify,
            server_name: t.tls_server_name,
        },
    );
    Some(HttpSpec {
        url,
        method,
        headers,
        body: t.body,
        expect_status,
        body_regex,
        body_not_regex,
        max_redirects,
        max_body_bytes,
        auth,
        allow_plaintext_auth,
        ip_family,
        tls,
    })
}

fn parse_status(s: &RawStatus) -> Option<StatusRange> {
    match s {
        RawStatus::Code(code) if (100..=599).contains(code) => Some(StatusRange {
            low: *code as u16,
            high: *code as u16,
        }),
        RawStatus::Code(_) => None,
        RawStatus::Class(text) => {
            let t = text.to_ascii_lowercase();
            let digit = t.strip_suffix("xx")?.parse::<u16>().ok()?;
            (1..=5).contains(&digit).then_some(StatusRange {
                low: digit * 100,
                high: digit * 100 + 99,
            })
        }
    }
}

/// Splits `DOMAIN\\user` or `user@domain` into (domain, user) for NTLM.
fn split_ntlm_user(text: &str) -> (String, String) {
    if let Some((domain, user)) = text.split_once('\\') {
        (domain.to_string(), user.to_string())
    } else if let Some((user, domain)) = text.rsplit_once('@') {
        (domain.to_string(), user.to_string())
    } else {
        (String::new(), text.to_string())
    }
}
