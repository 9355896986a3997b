//! Server-side TLS for the fake servers: the one rustls server
//! configuration (ring provider, safe defaults, no client auth) and
//! throwaway self-signed certificates.
#![allow(dead_code)]

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS acceptor serving `chain` with `key`.
pub fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> tokio_rustls::TlsAcceptor {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A throwaway self-signed certificate for `names` and its key.
pub fn self_signed(names: &[&str]) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::generate_simple_self_signed(names).unwrap();
    let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    (vec![cert.cert.der().clone()], key)
}

/// An acceptor with a throwaway self-signed certificate for `localhost`,
/// 127.0.0.1 and 127.0.0.2 (probes of it set `tls_insecure_skip_verify`;
/// nothing else trusts it).
pub fn self_signed_acceptor() -> tokio_rustls::TlsAcceptor {
    let (chain, key) = self_signed(&["localhost", "127.0.0.1", "127.0.0.2"]);
    acceptor(chain, key)
}
