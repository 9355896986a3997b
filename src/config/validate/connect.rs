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
fn tls_keys(t: &mut RawTarget) -> TlsKeys {
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

/// Where a kind writes an endpoint: the keys of its address and TLS mode,
/// an example address for messages, and whether it speaks a mail protocol
/// (STARTTLS allowed, the TLS mode defaulting from the port).
pub(super) struct EndpointKeys {
    /// The target kind, for messages.
    pub(super) kind: &'static str,
    /// The key of the `host:port` address.
    pub(super) address: &'static str,
    /// The key of the TLS mode.
    pub(super) tls: &'static str,
    /// An example address for messages.
    pub(super) example: &'static str,
    /// Whether the protocol is SMTP, IMAP or POP3.
    pub(super) mail: bool,
}

impl EndpointKeys {
    /// A kind whose endpoint is `address` and `tls`.
    pub(super) const fn one(kind: &'static str, example: &'static str, mail: bool) -> EndpointKeys {
        EndpointKeys {
            kind,
            address: "address",
            tls: "tls",
            example,
            mail,
        }
    }
}

/// Where and how a probe connects.
pub(super) struct Endpoint {
    /// Where to connect.
    pub(super) address: HostPort,
    /// TLS mode.
    pub(super) tls: TlsMode,
    /// Address family.
    pub(super) ip_family: IpFamily,
    /// TLS settings.
    pub(super) tls_options: TlsOptions,
}

impl Endpoint {
    /// Address, TLS mode, address family and TLS options, for a spec.
    pub(super) fn into_parts(self) -> (HostPort, TlsMode, IpFamily, TlsOptions) {
        (self.address, self.tls, self.ip_family, self.tls_options)
    }
}

/// The value a target set for `key`, one of the endpoint keys.
fn take_endpoint_key(t: &mut RawTarget, key: &str) -> Option<String> {
    match key {
        "address" => t.address.take(),
        "tls" => t.tls.take(),
        "smtp_address" => t.smtp_address.take(),
        "smtp_tls" => t.smtp_tls.take(),
        "imap_address" => t.imap_address.take(),
        "imap_tls" => t.imap_tls.take(),
        _ => unreachable!("not an endpoint key: {key}"),
    }
}

/// The required `host:port` at `keys.address`.
pub(super) fn endpoint_address(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    t: &mut RawTarget,
    keys: &EndpointKeys,
) -> Option<HostPort> {
    let (key, kind) = (keys.address, keys.kind);
    let Some(text) = take_endpoint_key(t, key) else {
        c.error_at(
            tp,
            format!("missing field `{key}` (required for kind {kind:?})"),
        );
        return None;
    };
    let parsed = parse_host_port(&text);
    if parsed.is_none() {
        let example = keys.example;
        c.error_at(
            &tp.key(key),
            format!("invalid address {text:?} (expected host:port, e.g. \"{example}\")"),
        );
    }
    parsed
}

/// The TLS mode at `keys.tls`, defaulting from `port` for mail protocols
/// (see [`TlsMode`]) and to none for `tcp`.
pub(super) fn endpoint_tls(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    t: &mut RawTarget,
    keys: &EndpointKeys,
    port: u16,
) -> TlsMode {
    let mail = keys.mail;
    let default = if mail {
        TlsMode::default_for_mail_port(port)
    } else {
        TlsMode::None
    };
    match take_endpoint_key(t, keys.tls).as_deref() {
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
                &tp.key(keys.tls),
                format!("invalid tls mode {other:?} (expected {expected})"),
            );
            default
        }
    }
}

/// The address and TLS mode at `keys`: the start of every endpoint.
pub(super) fn endpoint_start(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    t: &mut RawTarget,
    keys: &EndpointKeys,
) -> Option<(HostPort, TlsMode)> {
    let address = endpoint_address(c, tp, t, keys)?;
    let tls = endpoint_tls(c, tp, t, keys, address.port);
    Some((address, tls))
}

/// An endpoint completed with the target's address family and TLS options
/// (certificate files are read here).
pub(super) fn endpoint(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    base: &Path,
    t: &mut RawTarget,
    (address, tls): (HostPort, TlsMode),
) -> Endpoint {
    let ip_family = parse_ip_family(c, tp, t.ip_family.take());
    let tls_options = build_tls(c, tp, base, tls_keys(t));
    Endpoint {
        address,
        tls,
        ip_family,
        tls_options,
    }
}
