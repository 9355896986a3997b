//! `[agent.web]`: the metrics endpoint over TLS, behind bcrypt basic
//! authentication, and restricted to client networks, through the real binary.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{CertificateParams, KeyPair};
use support::{get_on, write_file, Agent};
use tokio::net::TcpStream;

async fn tls_get(
    addr: SocketAddr,
    ca_pem: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let stream = TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .ok()?;
    get_on(tls, addr, path, headers).await
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_protect_the_metrics_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    write_file(dir.path(), "cert.pem", &cert.pem());
    write_file(dir.path(), "key.pem", &key.serialize_pem());
    // Cost 4 keeps the test fast; the agent accepts any valid bcrypt hash.
    let hash = bcrypt::hash("scrape-pw", 4).unwrap();
    let port = support::free_port();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &format!(
            "[agent]\nlisten = \"127.0.0.1:{port}\"\n[agent.web]\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\n\
             basic_auth_users = {{ prometheus = \"{hash}\" }}\nallowed_networks = [\"127.0.0.0/8\"]\n"
        ),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let agent = Agent::spawn(&cfg, addr, &[]).await;
    let ca = cert.pem();

    // Plain HTTP on a TLS listener gets nothing useful.
    assert!(support::get(addr, "/metrics")
        .await
        .is_none_or(|(code, _)| code != 200));
    // TLS without credentials: 401.
    let (code, _) = tls_get(addr, &ca, "/metrics", &[])
        .await
        .expect("tls answer");
    assert_eq!(code, 401);
    // Wrong password, unknown user: 401.
    let auth = basic("prometheus", "wrong");
    assert_eq!(
        tls_get(addr, &ca, "/metrics", &[("Authorization", &auth)])
            .await
            .unwrap()
            .0,
        401
    );
    let auth = basic("nobody", "scrape-pw");
    assert_eq!(
        tls_get(addr, &ca, "/metrics", &[("Authorization", &auth)])
            .await
            .unwrap()
            .0,
        401
    );
    // Right credentials, twice (the second from the cache).
    let auth = basic("prometheus", "scrape-pw");
    for _ in 0..2 {
        let (code, body) = tls_get(addr, &ca, "/metrics", &[("Authorization", &auth)])
            .await
            .unwrap();
        assert_eq!(code, 200);
        assert!(body.contains("mailpulse_build_info"));
    }
    assert!(!agent.log_text().contains("scrape-pw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_allowed_networks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &format!("[agent]\nlisten = \"127.0.0.1:{port}\"\n[agent.web]\nallowed_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n"),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let _agent = Agent::spawn(&cfg, addr, &[]).await;
    assert_eq!(support::get(addr, "/metrics").await, None);
}

#[test]
fn hash_password_prints_a_hash_that_verifies() {
    use std::io::Write as _;
    let mut child = std::process::Command::new(support::bin())
        .args(["hash-password", "--cost", "4"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(bcrypt::verify("s3cret", hash.trim()).unwrap());
}
