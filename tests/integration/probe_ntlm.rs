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
