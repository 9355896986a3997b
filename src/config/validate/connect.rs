//! How a target connects: `host:port` addresses, TLS modes, the address
//! family and the TLS options (CA, client identity, server name).

use super::files::{load_certs, load_identity, pair};
use super::*;
use crate::config::raw::RawTarget;

pub(super) fn parse_ip_family(c: &mut Checker<'_>, tp: &KeyPath, text: Option<String>) -> IpFamily {
    match text.as_deref() {
        None | Some("any") => IpFamily::Any,
        Some("ipv4" | "ip4") => IpFamily::V4,
        Some("ipv6" | "ip6") => IpFamily::V6,
        Some(other) => {
            c.error_at(
                &tp.key("ip_family"),
                format!("invalid ip_family {other:?} (expected \"any\", \"ipv4\" or \"ipv6\")"),
            );
            IpFamily::Any
        }
    }
}

/// The raw TLS keys of a target.
pub(super) struct TlsKeys {
    pub(super) ca_file: Option<PathBuf>,
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) insecure: Option<bool>,
    pub(super) server_name: Option<String>,
}

/// The raw TLS keys of a target, taken out of it.
pub(super) fn tls_keys(t: &mut RawTarget) -> TlsKeys {
    TlsKeys {
        ca_file: t.tls_ca_file.take(),
        cert_file: t.tls_cert_file.take(),
        key_file: t.tls_key_file.take(),
        insecure: t.tls_insecure_skip_verify.take(),
        server_name: t.tls_server_name.take(),
    }
}

pub(super) fn build_tls(c: &mut Checker<'_>, tp: &KeyPath, base: &Path, k: TlsKeys) -> TlsOptions {
    let ca_certs = k
        .ca_file
        .and_then(|f| load_certs(c, &tp.key("tls_ca_file"), base, f))
        .unwrap_or_default();
    let keys = ("tls_cert_file", "tls_key_file");
    let client_identity = pair(c, tp, keys, k.cert_file, k.key_file)
        .and_then(|files| load_identity(c, tp, keys, base, files));
    if let Some(name) = &k.server_name {
        if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
            c.error_at(
                &tp.key("tls_server_name"),
                format!("invalid server name {name:?}"),
            );
        }
    }
    TlsOptions {
        ca_certs,
        client_identity,
        insecure_skip_verify: k.insecure.unwrap_or(false),
        server_name: k.server_name,
    }
}

/// Parses `host:port` (`[v6]:port` for IPv6 literals); the port is required.
pub(super) fn parse_host_port(text: &str) -> Option<HostPort> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, port)
    } else {
        let (host, port) = text.rsplit_once(':')?;
        if host.contains(':') {
            return None;
        }
        (host, port)
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_' | ':'));
    valid_host.then(|| HostPort {
        host: host.to_string(),
        port,
    })
}

/// The required `host:port` at `key`.
pub(super) fn address(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    key: &str,
    kind: &str,
    text: Option<String>,
    example: &str,
) -> Option<HostPort> {
    let Some(text) = text else {
        c.error_at(
            tp,
            format!("missing field `{key}` (required for kind {kind:?})"),
        );
        return None;
    };
    let parsed = parse_host_port(&text);
    if parsed.is_none() {
        c.error_at(
            &tp.key(key),
            format!("invalid address {text:?} (expected host:port, e.g. \"{example}\")"),
        );
    }
    parsed
}

/// A TLS mode, defaulting from the port for mail protocols (see [`TlsMode`]).
pub(super) fn tls_mode(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    key: &str,
    text: Option<String>,
    port: u16,
    mail: bool,
) -> TlsMode {
    let default = if mail {
        TlsMode::default_for_mail_port(port)
    } else {
        TlsMode::None
    };
    match text.as_deref() {
        None => default,
        Some("none") => TlsMode::None,
        Some("implicit") => TlsMode::Implicit,
        Some("starttls") if mail => TlsMode::StartTls,
        Some(other) => {
            let expected = if mail {
                "\"none\", \"starttls\" or \"implicit\""
            } else {
                "\"none\" or \"implicit\""
            };
            c.error_at(
                &tp.key(key),
                format!("invalid tls mode {other:?} (expected {expected})"),
            );
            default
        }
    }
}
