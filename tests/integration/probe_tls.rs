//! HTTPS probes against an in-process TLS server with a throwaway CA: the
//! `tls` phase, certificate expiry, CA files, and verification failures.

use crate::support::{self, HttpServer};

use mailpulse::sample::{FailureReason, Phase};
use rcgen::{CertificateParams, DnType, KeyPair};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// A CA, a server certificate for `localhost` signed by it, and its notAfter.
struct Pki {
    ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    not_after: i64,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mailpulse test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let not_after = rcgen::date_time_ymd(2031, 6, 1);
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        chain: vec![cert.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        not_after: not_after.unix_timestamp(),
    }
}

/// Serves HTTPS on 127.0.0.1:0, answering every request with 200.
async fn tls_server(pki: &Pki) -> std::net::SocketAddr {
    HttpServer::https(pki.chain.clone(), pki.key.clone_key())
        .await
        .addr
}

async fn probe_with(extra: &str, port: u16, dir: &std::path::Path) -> mailpulse::sample::Sample {
    let text = format!(
        "[[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"https://localhost:{port}/owa/healthcheck.htm\"\ntimeout = \"3s\"\n{extra}\n"
    );
    support::probe_once(&support::load_prober(dir, &text)).await
}

#[tokio::test]
async fn https_with_a_ca_file_reports_tls_phase_and_expiry() {
    let pki = pki();
    let addr = tls_server(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    support::write_file(dir.path(), "ca.pem", &pki.ca_pem);
    let s = probe_with(
        "tls_ca_file = \"ca.pem\"\nip_family = \"ipv4\"",
        addr.port(),
        dir.path(),
    )
    .await;
    assert!(s.success(), "{:?}", s.failure);
    assert!(s.phase(Phase::Tls).is_some());
    let tls = s.tls.unwrap();
    assert_eq!(tls.earliest_expiry, Some(pki.not_after));
    assert!(tls.version.starts_with("TLSv1."), "{}", tls.version);
    assert!(!tls.cipher.is_empty());
}

#[tokio::test]
async fn an_unknown_ca_fails_in_the_tls_phase() {
    let pki = pki();
    let addr = tls_server(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let s = probe_with("ip_family = \"ipv4\"", addr.port(), dir.path()).await;
    let f = s.failure.expect("must fail");
    assert_eq!(f.reason, FailureReason::Tls);
    assert_eq!(f.phase, Phase::Tls);
    assert!(f.message.contains("certificate"), "{}", f.message);
}

#[tokio::test]
async fn skip_verify_accepts_the_certificate_and_still_reads_its_expiry() {
    let pki = pki();
    let addr = tls_server(&pki).await;
    let dir = tempfile::tempdir().unwrap();
    let s = probe_with(
        "tls_insecure_skip_verify = true\nip_family = \"ipv4\"",
        addr.port(),
        dir.path(),
    )
    .await;
    assert!(s.success(), "{:?}", s.failure);
    assert_eq!(s.tls.unwrap().earliest_expiry, Some(pki.not_after));
}

#[tokio::test]
async fn garbage_instead_of_tls_is_a_tls_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"220 this is not TLS\r\n").await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let s = probe_with("ip_family = \"ipv4\"", port, dir.path()).await;
    assert_eq!(s.failure.unwrap().reason, FailureReason::Tls);
}

/// A plain-HTTP target builds its TLS client only when a redirect leads to
/// https; the handshake then runs (and, without the test CA, fails in `tls`).
#[tokio::test]
async fn a_redirect_from_http_to_https_builds_the_tls_client_on_the_way() {
    let pki = pki();
    let addr = tls_server(&pki).await;
    let plain = support::HttpServer::start().await;
    plain.route(
        "/owa",
        support::Reply::status(302).header(
            "Location",
            &format!("https://localhost:{}/owa/", addr.port()),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{}\"\ntimeout = \"3s\"\nip_family = \"ipv4\"\n",
        plain.url("/owa")
    );
    let s = support::probe_once(&support::load_prober(dir.path(), &text)).await;
    let f = s.failure.expect("the test CA is not trusted");
    assert_eq!(f.reason, FailureReason::Tls, "{}", f.message);
    assert!(f.message.contains("certificate"), "{}", f.message);
}
