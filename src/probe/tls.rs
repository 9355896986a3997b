//! TLS for probes: a rustls client configuration from a target's
//! [`TlsOptions`], and the details of a finished handshake (version, cipher,
//! earliest certificate expiry).
//!
//! The system trust store is read once per process; everything else comes
//! already parsed from the configuration.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsOptions;
use crate::sample::{FailureReason, TlsInfo};

use super::ProbeError;

/// The crypto provider every TLS client here uses, built once and shared.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system trust store, read and parsed once and shared by every target
/// that adds no CA of its own. Unreadable or unparsable entries are skipped.
///
/// Parsed trust anchors take about 100 KiB for a Debian store, so one copy
/// per target grew the agent by that much per target (200 MB at 2,000).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let result = rustls_native_certs::load_native_certs();
            if let Some(e) = result.errors.first() {
                tracing::debug!(error = %e, "some system certificates could not be loaded");
            }
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(result.certs);
            Arc::new(roots)
        })
        .clone()
}

/// The trust store of a target: the shared system store, or a copy of it
/// with the target's own CAs added.
fn roots_for(extra: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, rustls::Error> {
    let system = system_roots();
    if extra.is_empty() {
        return Ok(system);
    }
    let mut roots = (*system).clone();
    for cert in extra {
        roots.add(cert.clone())?;
    }
    Ok(Arc::new(roots))
}

/// Builds a client configuration offering `alpn` protocols.
pub fn client_config(opts: &TlsOptions, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, ProbeError> {
    let tls_err = |e: rustls::Error| ProbeError::new(FailureReason::Tls, format!("tls setup: {e}"));
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let builder = if opts.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
    } else {
        builder.with_root_certificates(roots_for(&opts.ca_certs).map_err(tls_err)?)
    };
    let mut config = match &opts.client_identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(tls_err)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The server name to send and verify: the configured override, else `host`.
pub fn server_name(opts: &TlsOptions, host: &str) -> Result<ServerName<'static>, ProbeError> {
    let name = opts.server_name.as_deref().unwrap_or(host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(name.to_string()).map_err(|_| {
        ProbeError::new(
            FailureReason::Tls,
            format!("invalid TLS server name {name:?}"),
        )
    })
}

/// Version, cipher and earliest certificate expiry of an established connection.
pub fn info(conn: &rustls::ClientConnection) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => String::new(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let earliest_expiry = conn.peer_certificates().and_then(earliest_expiry);
    TlsInfo {
        version,
        cipher,
        earliest_expiry,
    }
}

/// The earliest `notAfter` of a certificate chain, as Unix seconds.
pub fn earliest_expiry(chain: &[CertificateDer<'_>]) -> Option<i64> {
    chain
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .min()
}

/// Describes a handshake failure without the noise of nested error types.
pub fn handshake_error(e: &std::io::Error) -> ProbeError {
    let message = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => format!("tls handshake failed: {tls}"),
        None => format!("tls handshake failed: {e}"),
    };
    ProbeError::new(FailureReason::Tls, message)
}

/// A verifier for `tls_insecure_skip_verify`: accepts any certificate, but
/// still checks handshake signatures so the connection is at least consistent.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_without_own_cas_share_one_parsed_system_store() {
        let a = roots_for(&[]).unwrap();
        let b = roots_for(&[]).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&provider(), &provider()));
    }

    #[test]
    fn own_cas_extend_a_copy_of_the_system_store() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let der = ca.cert.der().clone();
        let system = roots_for(&[]).unwrap();
        let own = roots_for(&[der]).unwrap();
        assert_eq!(own.len(), system.len() + 1);
        assert_eq!(roots_for(&[]).unwrap().len(), system.len());
    }
}
