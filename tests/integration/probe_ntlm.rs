//! NTLMv2 for the HTTP probe against an in-process fake of an Exchange front
//! end: NEGOTIATE, CHALLENGE and AUTHENTICATE must arrive on one kept-alive
//! connection, the messages must be well formed, and the NTProofStr must be
//! right for the password (checked with the MS-NLMP algorithm, which the
//! library's unit tests pin to the specification's test vectors).

use crate::support;

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use mailpulse::probe::ntlm;
use mailpulse::sample::{FailureReason, Phase, Sample};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const SERVER_CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];

/// What the fake saw: (connection number, Authorization header) per request.
type Log = Arc<Mutex<Vec<(usize, String)>>>;

/// The CHALLENGE message: the spec's target info (domain "Domain", server
/// "Server"), optionally with a server timestamp.
fn challenge(with_timestamp: bool) -> Vec<u8> {
    let mut info = Vec::new();
    for (id, text) in [(2u16, "Domain"), (1u16, "Server")] {
        let value: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        info.extend_from_slice(&id.to_le_bytes());
        info.extend_from_slice(&(value.len() as u16).to_le_bytes());
        info.extend_from_slice(&value);
    }
    if with_timestamp {
        info.extend_from_slice(&7u16.to_le_bytes());
        info.extend_from_slice(&8u16.to_le_bytes());
        info.extend_from_slice(&ntlm::filetime_now());
    }
    info.extend_from_slice(&[0; 4]);
    let mut m = Vec::new();
    m.extend_from_slice(b"NTLMSSP\0");
    m.extend_from_slice(&2u32.to_le_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&0xe28a_8215u32.to_le_bytes());
    m.extend_from_slice(&SERVER_CHALLENGE);
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&(info.len() as u16).to_le_bytes());
    m.extend_from_slice(&(info.len() as u16).to_le_bytes());
    m.extend_from_slice(&56u32.to_le_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&info);
    m
}

/// Whether an AUTHENTICATE message proves the password `Password` for Domain\User.
fn verify(message: &[u8], with_timestamp: bool) -> Result<(), String> {
    let m = ntlm::parse_authenticate(message)?;
    if (m.user.as_str(), m.domain.as_str()) != ("User", "Domain") {
        return Err(format!("wrong identity {}\\{}", m.domain, m.user));
    }
    if m.flags & 0x0000_0201 != 0x0000_0201 {
        return Err("unicode and NTLM flags missing".into());
    }
    if m.nt.len() < 16 + 28 + 4 || m.nt[16..18] != [1, 1] {
        return Err("not an NTLMv2 response".into());
    }
    if with_timestamp && m.lm != [0; 24] {
        return Err("LmChallengeResponse must be Z(24) with a server timestamp".into());
    }
    let blob = &m.nt[16..];
    let time: [u8; 8] = blob[8..16].try_into().unwrap();
    let client: [u8; 8] = blob[16..24].try_into().unwrap();
    let info = &blob[28..blob.len() - 4];
    let key = ntlm::nt_owf_v2("Password", "User", "Domain");
    let expected = ntlm::ntlmv2_response(&key, &SERVER_CHALLENGE, &client, &time, info);
    if expected != m.nt {
        return Err("NTProofStr does not match the password".into());
    }
    Ok(())
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A fake front end that wants NTLM on `/EWS/Exchange.asmx`.
async fn fake_exchange(with_timestamp: bool) -> (u16, Log) {
    let (addr, log) = fake_exchange_on([127, 0, 0, 1].into(), None, with_timestamp, None).await;
    (addr.port(), log)
}

/// A fake front end on `ip` that wants NTLM (over TLS with an acceptor);
/// with `redirect`, a request it authenticated is answered `302` to there.
async fn fake_exchange_on(
    ip: std::net::IpAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    with_timestamp: bool,
    redirect: Option<String>,
) -> (std::net::SocketAddr, Log) {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let l = log.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((stream, _)) = listener.accept().await {
            n += 1;
            let (conn, log, redirect) = (n, l.clone(), redirect.clone());
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            exchange_conn(stream, conn, log, with_timestamp, redirect).await;
                        }
                    }
                    None => exchange_conn(stream, conn, log, with_timestamp, redirect).await,
                }
            });
        }
    });
    (addr, log)
}

/// One connection of the fake front end.
async fn exchange_conn<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    conn: usize,
    log: Log,
    with_timestamp: bool,
    redirect: Option<String>,
) {
    let mut challenged = false;
    while let Some(head) = read_head(&mut stream).await {
        let auth = head
            .lines()
            .find_map(|l| l.strip_prefix("authorization: "))
            .unwrap_or("")
            .to_string();
        log.lock().unwrap().push((conn, auth.clone()));
        let token = auth
            .strip_prefix("NTLM ")
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok());
        let response = match token {
            Some(m) if m.starts_with(b"NTLMSSP\0\x01\0\0\0") => {
                challenged = true;
                let c = base64::engine::general_purpose::STANDARD
                    .encode(challenge(with_timestamp));
                format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM {c}\r\nContent-Length: 12\r\n\r\nunauthorized")
            }
            Some(m) if challenged && verify(&m, with_timestamp).is_ok() => match &redirect {
                Some(to) => format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                None => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_string(),
            },
            _ => "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
        };
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn probe_ews(port: u16, user: &str, password: &str, extra: &str) -> Sample {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(dir.path(), "pw", &format!("{password}\n"));
    let text = format!(
        "[[target]]\nname = \"ews\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/EWS/Exchange.asmx\"\n\
         timeout = \"2s\"\nauth = \"ntlm\"\nusername = '{user}'\npassword_file = \"pw\"\n\
         allow_plaintext_auth = true\n{extra}\n"
    );
    support::probe_once(&support::load_prober(dir.path(), &text)).await
}

#[tokio::test]
async fn ntlm_authenticates_on_one_connection_and_times_the_handshake() {
    for with_timestamp in [false, true] {
        let (port, log) = fake_exchange(with_timestamp).await;
        let s = probe_ews(port, "Domain\\User", "Password", "").await;
        assert!(s.success(), "{:?}", s.failure);
        assert_eq!(s.status, Some(200));
        let phases: Vec<&str> = s.phases.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            phases,
            ["dns", "connect", "auth", "first_byte", "transfer", "total"]
        );
        let log = log.lock().unwrap().clone();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(log[0].0, log[1].0, "both legs on one connection");
        assert!(log.iter().all(|(_, a)| a.starts_with("NTLM ")), "{log:?}");
    }
}

#[tokio::test]
async fn the_user_may_be_written_as_user_at_domain() {
    let (port, _) = fake_exchange(true).await;
    let s = probe_ews(port, "User@Domain", "Password", "").await;
    assert!(s.success(), "{:?}", s.failure);
}

#[tokio::test]
async fn a_wrong_password_fails_at_auth_with_reason_auth() {
    let (port, _) = fake_exchange(true).await;
    let s = probe_ews(port, "Domain\\User", "Passw0rd", "").await;
    let f = s.failure.expect("must fail");
    assert_eq!(
        (f.reason, f.phase),
        (FailureReason::Auth, Phase::Auth),
        "{}",
        f.message
    );
    assert_eq!(s.status, Some(401));
}

#[tokio::test]
async fn a_server_without_ntlm_is_an_auth_failure() {
    let server = support::HttpServer::start().await;
    server.route(
        "/EWS/Exchange.asmx",
        support::Reply::status(401).header("WWW-Authenticate", "Basic realm=\"x\""),
    );
    let port = server.addr.port();
    let s = probe_ews(port, "Domain\\User", "Password", "").await;
    let f = s.failure.expect("must fail");
    assert_eq!((f.reason, f.phase), (FailureReason::Auth, Phase::Auth));
    assert_eq!(f.message, "server sent no NTLM challenge (offered: Basic)");
}

/// issue 21, break 1: an NTLM target that redirects to another origin used
/// to start a new NTLM handshake there, handing that host a response
/// derived from the password. The redirect is still followed, with no
/// Authorization at all: the other host sees one plain request.
#[tokio::test]
async fn ntlm_never_starts_a_handshake_with_another_origin() {
    let acceptor = support::tls::self_signed_acceptor();
    let (elsewhere, elsewhere_log) =
        fake_exchange_on([127, 0, 0, 2].into(), None, true, None).await;
    let (origin, origin_log) = fake_exchange_on(
        [127, 0, 0, 1].into(),
        Some(acceptor),
        true,
        Some(format!("http://{elsewhere}/EWS/Exchange.asmx")),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    support::write_file(dir.path(), "pw", "Password\n");
    let text = format!(
        "[[target]]\nname = \"ews\"\nkind = \"http\"\nurl = \"https://{origin}/EWS/Exchange.asmx\"\n\
         timeout = \"2s\"\nauth = \"ntlm\"\nusername = 'Domain\\User'\npassword_file = \"pw\"\n\
         tls_insecure_skip_verify = true\nexpect_status = [401]\n"
    );
    let s = support::probe_once(&support::load_prober(dir.path(), &text)).await;
    // The other origin wants NTLM too, and is not given it: its 401 is the answer.
    assert!(s.success(), "{:?}", s.failure);
    assert_eq!(s.status, Some(401));
    let origin_log = origin_log.lock().unwrap().clone();
    assert_eq!(origin_log.len(), 2, "{origin_log:?}");
    assert!(
        origin_log.iter().all(|(_, a)| a.starts_with("NTLM ")),
        "{origin_log:?}"
    );
    let elsewhere_log = elsewhere_log.lock().unwrap().clone();
    assert_eq!(elsewhere_log.len(), 1, "{elsewhere_log:?}");
    assert_eq!(elsewhere_log[0].1, "", "{elsewhere_log:?}");
}

/// Extended Protection (issue 20): the probe's NTLM against pyspnego's
/// acceptor (`tests/ntlm/acceptor.py`), an implementation independent of
/// ours, with channel bindings on and a MIC required, as an Exchange 2019
/// CU14+ virtual directory wants them.
mod extended_protection {
    use super::*;

    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    /// The Python that `.ci/install-deps` installs pyspnego for.
    const CI_PYTHON: &str = "/opt/mailpulse-ci/venv/bin/python3";
    /// How long the acceptor may take to start (Python, pyspnego and
    /// `cryptography` imports on a loaded machine).
    const START_WITHIN: Duration = Duration::from_secs(30);
    /// How long its verdict may take once the probe has its answer (it
    /// writes the verdict before answering: normally there already).
    const VERDICT_WITHIN: Duration = Duration::from_secs(5);
    /// How long the acceptor lives at most, should nothing stop it.
    const LIFETIME_SECS: &str = "120";

    /// A Python with pyspnego: `MAILPULSE_TEST_PYTHON`, the CI venv, or
    /// `python3`. Outside CI its absence skips (None, with a message); in
    /// CI it fails.
    fn python() -> Option<PathBuf> {
        let candidates = std::env::var_os("MAILPULSE_TEST_PYTHON")
            .map(PathBuf::from)
            .into_iter()
            .chain([PathBuf::from(CI_PYTHON), PathBuf::from("python3")]);
        for python in candidates {
            let ok = Command::new(&python)
                .args(["-c", "import spnego, cryptography"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Some(python);
            }
        }
        let why = "no Python with pyspnego (run .ci/install-deps)";
        if std::env::var_os("CI").is_some() {
            panic!("{why}");
        }
        eprintln!("skipping: {why}");
        None
    }

    /// The acceptor, stopped (killed by its PID, and reaped) when dropped;
    /// closing its stdin would stop it too.
    struct Acceptor {
        child: Child,
        port: u16,
        lines: mpsc::Receiver<String>,
    }

    /// How the acceptor runs: plain HTTP, or TLS serving `cert` and binding
    /// to `bind_to`.
    enum Mode<'a> {
        Plain,
        Tls {
            cert: &'a Path,
            key: &'a Path,
            bind_to: &'a Path,
        },
    }

    impl Acceptor {
        fn start(dir: &Path, mode: Mode<'_>) -> Option<Acceptor> {
            let python = python()?;
            let users = support::write_file(dir, "ntlm-users", "Domain:User:Password\n");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ntlm/acceptor.py");
            let mut command = Command::new(python);
            command
                .arg(script)
                .args(["--lifetime", LIFETIME_SECS])
                .env("NTLM_USER_FILE", users)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if let Mode::Tls { cert, key, bind_to } = mode {
                command
                    .arg("--cert")
                    .arg(cert)
                    .arg("--key")
                    .arg(key)
                    .arg("--bind-to")
                    .arg(bind_to);
            }
            let mut child = command.spawn().expect("start the pyspnego acceptor");
            let stdout = child.stdout.take().expect("piped");
            let (tx, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut acceptor = Acceptor {
                child,
                port: 0,
                lines,
            };
            let first = acceptor
                .lines
                .recv_timeout(START_WITHIN)
                .expect("the acceptor says where it listens");
            acceptor.port = first
                .strip_prefix("listening ")
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
            Some(acceptor)
        }

        /// Its verdict on the next AUTHENTICATE.
        fn verdict(&self) -> String {
            self.lines
                .recv_timeout(VERDICT_WITHIN)
                .expect("the acceptor judged an AUTHENTICATE")
        }
    }

    impl Drop for Acceptor {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A throwaway self-signed certificate signed with `alg`, written as
    /// `NAME.pem` and `NAME.key`.
    fn certificate(
        dir: &Path,
        name: &str,
        alg: &'static rcgen::SignatureAlgorithm,
    ) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (
            support::write_file(dir, &format!("{name}.pem"), &cert.pem()),
            support::write_file(dir, &format!("{name}.key"), &key.serialize_pem()),
        )
    }

    async fn probe(dir: &Path, url: &str, password: &str, extra: &str) -> Sample {
        support::write_file(dir, "pw", &format!("{password}\n"));
        let text = format!(
            "[[target]]\nname = \"ews\"\nkind = \"http\"\nurl = \"{url}\"\ntimeout = \"10s\"\n\
             auth = \"ntlm\"\nusername = 'Domain\\User'\npassword_file = \"pw\"\n{extra}\n"
        );
        support::probe_once(&support::load_prober(dir, &text)).await
    }

    /// Over HTTPS the AUTHENTICATE carries the tls-server-end-point binding
    /// of the certificate the connection presented, and a MIC: pyspnego
    /// verifies both, for a SHA-256 and a SHA-384 certificate (whose
    /// binding is hashed with SHA-384).
    #[tokio::test]
    async fn pyspnego_with_channel_binding_required_accepts_the_probe() {
        for (name, alg) in [
            ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
            ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (cert, key) = certificate(dir.path(), name, alg);
            let mode = Mode::Tls {
                cert: &cert,
                key: &key,
                bind_to: &cert,
            };
            let Some(acceptor) = Acceptor::start(dir.path(), mode) else {
                return;
            };
            let url = format!("https://127.0.0.1:{}/EWS/Exchange.asmx", acceptor.port);
            let s = probe(
                dir.path(),
                &url,
                "Password",
                "tls_insecure_skip_verify = true",
            )
            .await;
            let verdict = acceptor.verdict();
            assert!(s.success(), "{name}: {:?}; acceptor: {verdict}", s.failure);
            assert_eq!(s.status, Some(200));
            assert!(
                verdict.starts_with("accepted Domain\\User bindings="),
                "{name}: {verdict}"
            );
        }
    }

    /// A binding to another certificate (what a TLS-intercepting relay
    /// would make the client send) is refused, as is a wrong password: the
    /// acceptor really checks.
    #[tokio::test]
    async fn pyspnego_refuses_a_binding_to_another_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (served, key) = certificate(dir.path(), "served", &rcgen::PKCS_ECDSA_P256_SHA256);
        let (other, _) = certificate(dir.path(), "other", &rcgen::PKCS_ECDSA_P256_SHA256);
        for (bind_to, password, refusal) in [
            (
                &other,
                "Password",
                "Acceptor bindings do not match initiator bindings",
            ),
            (&served, "Passw0rd", "Invalid NTLM response from initiator"),
        ] {
            let mode = Mode::Tls {
                cert: &served,
                key: &key,
                bind_to,
            };
            let Some(acceptor) = Acceptor::start(dir.path(), mode) else {
                return;
            };
            let url = format!("https://127.0.0.1:{}/EWS/Exchange.asmx", acceptor.port);
            let s = probe(
                dir.path(),
                &url,
                password,
                "tls_insecure_skip_verify = true",
            )
            .await;
            let f = s.failure.expect("must fail");
            assert_eq!(
                (f.reason, f.phase),
                (FailureReason::Auth, Phase::Auth),
                "{}",
                f.message
            );
            assert_eq!(s.status, Some(401));
            let verdict = acceptor.verdict();
            assert!(
                verdict.starts_with("refused ") && verdict.contains(refusal),
                "{verdict}"
            );
        }
    }

    /// Over plain HTTP there is no channel to bind to: the probe sends the
    /// all-zero bindings (as Windows clients do), and the MIC still
    /// verifies.
    #[tokio::test]
    async fn over_plain_http_pyspnego_verifies_the_mic_and_sees_no_bindings() {
        let dir = tempfile::tempdir().unwrap();
        let Some(acceptor) = Acceptor::start(dir.path(), Mode::Plain) else {
            return;
        };
        let url = format!("http://127.0.0.1:{}/EWS/Exchange.asmx", acceptor.port);
        let s = probe(dir.path(), &url, "Password", "allow_plaintext_auth = true").await;
        let verdict = acceptor.verdict();
        assert!(s.success(), "{:?}; acceptor: {verdict}", s.failure);
        assert_eq!(
            verdict,
            format!("accepted Domain\\User bindings={}", "00".repeat(16))
        );
    }
}
