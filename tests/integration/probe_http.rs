//! The HTTP probe against local servers, through the real binary
//! (`mailpulse probe --json`) and through the library for TLS cases.

use crate::support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{write_file, HttpServer, Reply};

/// Runs `mailpulse probe --json` on a config and returns (exit code, results).
fn probe_json(config: &std::path::Path) -> (i32, Vec<Value>) {
    let out = Command::new(support::bin())
        .args(["probe", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let list: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), list.as_array().unwrap().clone())
}

fn http_target(name: &str, url: &str, extra: &str) -> String {
    format!("[[target]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"10s\"\ntimeout = \"2s\"\n{extra}\n")
}

fn phase(result: &Value, phase: &str) -> f64 {
    result["phases"][phase]
        .as_f64()
        .unwrap_or_else(|| panic!("no {phase} in {result}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_byte_matches_a_known_server_delay() {
    let _timed = support::timed();
    let server = HttpServer::start().await;
    server.route(
        "/slow",
        Reply::ok("hello").delayed(Duration::from_millis(200)),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &http_target("slow", &server.url("/slow"), ""),
    );
    let (code, results) = tokio::task::spawn_blocking(move || probe_json(&cfg))
        .await
        .unwrap();
    assert_eq!(code, 0, "{results:?}");
    let r = &results[0];
    assert_eq!(r["success"], true);
    assert_eq!(r["status"], 200);
    let fb = phase(r, "first_byte");
    assert!((0.200..0.220).contains(&fb), "first_byte {fb}");
    let total = phase(r, "total");
    assert!(total >= fb, "total {total} < first_byte {fb}");
    for p in ["dns", "connect", "transfer"] {
        assert!(phase(r, p) < 0.05, "{p} {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_at_the_timeout() {
    let server = HttpServer::start().await;
    server.route("/hang", Reply::hang());
    let dir = tempfile::tempdir().unwrap();
    let text = http_target("hang", &server.url("/hang"), "")
        .replace("timeout = \"2s\"", "timeout = \"300ms\"");
    let cfg = write_file(dir.path(), "c.toml", &text);
    let (code, results) = tokio::task::spawn_blocking(move || probe_json(&cfg))
        .await
        .unwrap();
    assert_eq!(code, 2);
    let r = &results[0];
    assert_eq!(r["success"], false);
    assert_eq!(r["reason"], "timeout");
    assert_eq!(r["failed_phase"], "first_byte");
    let total = phase(r, "total");
    assert!((0.300..0.400).contains(&total), "total {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_status_and_body_mismatch_have_their_reasons() {
    let server = HttpServer::start().await;
    server.route("/down", Reply::status(503));
    server.route("/page", Reply::ok("<html>maintenance</html>"));
    server.route("/moved", Reply::status(302).header("Location", "/page"));
    let dir = tempfile::tempdir().unwrap();
    let text = [
        http_target("status", &server.url("/down"), ""),
        http_target("body", &server.url("/page"), "body_regex = \"Outlook\""),
        http_target(
            "notbody",
            &server.url("/page"),
            "body_not_regex = \"maint\"",
        ),
        http_target("accept503", &server.url("/down"), "expect_status = [503]"),
        http_target(
            "redirect",
            &server.url("/moved"),
            "body_regex = \"maintenance\"",
        ),
        http_target(
            "noredirect",
            &server.url("/moved"),
            "follow_redirects = false\nexpect_status = [\"3xx\"]",
        ),
    ]
    .concat();
    let cfg = write_file(dir.path(), "c.toml", &text);
    let (code, results) = tokio::task::spawn_blocking(move || probe_json(&cfg))
        .await
        .unwrap();
    assert_eq!(code, 2);
    let by_name = |n: &str| results.iter().find(|r| r["target"] == n).unwrap().clone();
    assert_eq!(by_name("status")["reason"], "status");
    assert_eq!(by_name("status")["message"], "status 503, expected 2xx");
    assert_eq!(by_name("body")["reason"], "body");
    assert_eq!(by_name("notbody")["reason"], "body");
    assert_eq!(by_name("accept503")["success"], true);
    let redirect = by_name("redirect");
    assert_eq!(redirect["success"], true, "{redirect}");
    assert_eq!(redirect["status"], 200);
    assert_eq!(by_name("noredirect")["success"], true);
    assert_eq!(by_name("noredirect")["status"], 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_connect_failure() {
    let port = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &http_target("closed", &format!("http://127.0.0.1:{port}/"), ""),
    );
    let (code, results) = tokio::task::spawn_blocking(move || probe_json(&cfg))
        .await
        .unwrap();
    assert_eq!(code, 2);
    assert_eq!(results[0]["reason"], "connect");
    assert_eq!(results[0]["failed_phase"], "connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_output_names_the_slow_phase() {
    let server = HttpServer::start().await;
    server.route("/slow", Reply::ok("x").delayed(Duration::from_millis(50)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &http_target("owa", &server.url("/slow"), ""),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new(support::bin())
            .args(["probe", "--config"])
            .arg(&cfg)
            .arg("owa")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("owa (http): ok, status 200\n"), "{text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("first_byte"))
        .unwrap();
    assert!(line.ends_with("<- slowest"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_target_name_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &http_target("owa", "http://127.0.0.1:9/", ""),
    );
    let out = Command::new(support::bin())
        .args(["probe", "--config"])
        .arg(&cfg)
        .arg("ews")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no target named \"ews\"") && err.contains("targets: owa"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_basic_auth_are_sent_without_leaking_the_password() {
    let server = HttpServer::start().await;
    server.route("/owa/healthcheck.htm", Reply::ok("200 OK"));
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "pw", "s3cr3t-pw\n");
    // A plain-HTTP target sends a password only when told to.
    let extra =
        "username = \"probe\"\npassword_file = \"pw\"\nheaders = { \"X-Probe\" = \"yes\" }\n\
                 allow_plaintext_auth = true";
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &http_target("owa", &server.url("/owa/healthcheck.htm"), extra),
    );
    let cfg2 = cfg.clone();
    let (code, results) = tokio::task::spawn_blocking(move || probe_json(&cfg2))
        .await
        .unwrap();
    assert_eq!(code, 0, "{results:?}");
    let head = server.requests()[0].head.clone();
    // base64("probe:s3cr3t-pw")
    assert!(
        head.contains("authorization: Basic cHJvYmU6czNjcjN0LXB3\r\n"),
        "{head}"
    );
    assert!(head.contains("x-probe: yes\r\n"), "{head}");
    assert!(head.contains("user-agent: mailpulse/"), "{head}");
    let summary = Command::new(support::bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(
        text.contains("(with auth)") && !text.contains("s3cr3t"),
        "{text}"
    );
}

/// Probe accuracy under CPU load: the probe's only thread is kept busy while
/// the response arrives (as a CPU hog delays its wake-up), yet `first_byte`
/// and `total` are the server's timing, not the late read's.
#[test]
fn first_byte_is_when_the_response_arrived_not_when_the_probe_woke() {
    let _timed = support::timed();
    use std::io::{Read, Write};
    use tokio::time::Instant;

    const DELAY: Duration = Duration::from_millis(20);
    const BLOCK: Duration = Duration::from_millis(60);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (block, blocked) = tokio::sync::oneshot::channel::<()>();
    let (busy, is_busy) = std::sync::mpsc::channel::<()>();
    // The server: answers after DELAY, but only once the probe's runtime is
    // busy; returns its own measure of the wait (request read to response written).
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "no request");
            head.extend_from_slice(&buf[..n]);
        }
        let request_read = Instant::now();
        std::thread::sleep(DELAY);
        block.send(()).unwrap();
        is_busy.recv().unwrap();
        let written = Instant::now();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .unwrap();
        written - request_read
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sample = runtime.block_on(async move {
        tokio::spawn(async move {
            if blocked.await.is_ok() {
                busy.send(()).unwrap();
                // The runtime's only thread, and so the probe, is held here
                // while the response comes in.
                std::thread::sleep(BLOCK);
            }
        });
        let text = http_target("late", &format!("http://{addr}/"), "");
        let cfg = mailpulse::config::parse(&text, None).unwrap();
        let prober = mailpulse::probe::Prober::new(&cfg.targets[0]).unwrap();
        mailpulse::probe::run(&prober, chrono::Utc::now(), Duration::ZERO).await
    });
    let truth = server.join().unwrap();
    assert!(sample.success(), "{sample:?}");
    let fb = sample.phase(mailpulse::sample::Phase::FirstByte).unwrap();
    let total = sample.phase(mailpulse::sample::Phase::Total).unwrap();
    // Without kernel stamps both would be about BLOCK too long.
    let slack = Duration::from_millis(15);
    assert!(
        fb + Duration::from_millis(1) >= truth && fb < truth + slack,
        "first_byte {fb:?}, server's wait {truth:?}"
    );
    assert!(
        total >= fb && total < fb + slack,
        "total {total:?}, first_byte {fb:?}"
    );
}

/// Secret values that must reach only the target's origin.
const SECRETS: [&str; 4] = ["s3cr3t-pw", "t0ken-value", "k3y-value", "c00kie-value"];

/// Whether a request head carries any credential or configured header.
fn carries_credentials(head: &str) -> bool {
    let lower = head.to_ascii_lowercase();
    lower.contains("\r\nauthorization:")
        || lower.contains("\r\nx-api-key:")
        || lower.contains("\r\ncookie:")
        || SECRETS.iter().any(|s| head.contains(s))
        // base64("probe:s3cr3t-pw")
        || head.contains("cHJvYmU6czNjcjN0LXB3")
}

/// The heads a server received for `path`.
fn heads_for(server: &HttpServer, path: &str) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .map(|r| r.head)
        .filter(|h| h.split_whitespace().nth(1) == Some(path))
        .collect()
}

/// issue 21, break 1: an HTTPS target that redirects elsewhere used to hand
/// its Basic password, bearer token and configured headers to wherever the
/// `Location` pointed, in clear over `http://`. Credentials and configured
/// headers now go only to the origin the target names (scheme, host, port);
/// the redirect is still followed, without them: to another host
/// (127.0.0.2), to another port, and to `http://` on the same host and port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_configured_headers_stay_on_the_targets_origin() {
    let acceptor = support::tls::self_signed_acceptor();
    let origin = HttpServer::start_on([127, 0, 0, 1].into(), Some(acceptor.clone())).await;
    let other_host = HttpServer::start_on([127, 0, 0, 2].into(), Some(acceptor.clone())).await;
    let other_port = HttpServer::start_on([127, 0, 0, 1].into(), Some(acceptor)).await;
    let to = |path: &str, location: String| {
        origin.route(path, Reply::status(302).header("Location", &location));
    };
    to("/same", "/landing".into());
    to("/to-plain", origin.url("/landing-plain"));
    to("/to-host", other_host.url("/landing"));
    to("/to-port", other_port.https_url("/landing"));
    for server in [&origin, &other_host, &other_port] {
        server.route("/landing", Reply::ok("landed"));
    }
    origin.route("/landing-plain", Reply::ok("landed"));

    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "pw", "s3cr3t-pw\n");
    write_file(dir.path(), "token", "t0ken-value\n");
    let common = "tls_insecure_skip_verify = true\n\
                  headers = { \"X-Api-Key\" = \"k3y-value\", \"Cookie\" = \"session=c00kie-value\" }\n\
                  body_regex = \"landed\"";
    for auth in [
        "username = \"probe\"\npassword_file = \"pw\"",
        "bearer_token_file = \"token\"",
    ] {
        for server in [&origin, &other_host, &other_port] {
            server.clear_requests();
        }
        let text: String = ["same", "to-plain", "to-host", "to-port"]
            .iter()
            .map(|p| {
                http_target(
                    p,
                    &origin.https_url(&format!("/{p}")),
                    &format!("{auth}\n{common}"),
                )
            })
            .collect();
        let cfg = write_file(dir.path(), "c.toml", &text);
        let (code, results) = tokio::task::spawn_blocking(move || probe_json(&cfg))
            .await
            .unwrap();
        assert_eq!(code, 0, "{auth}: {results:#?}");
        // The origin got them on every request, the redirects included.
        for path in ["/same", "/to-plain", "/to-host", "/to-port", "/landing"] {
            let heads = heads_for(&origin, path);
            assert_eq!(heads.len(), 1, "{auth}: {path}: {heads:?}");
            assert!(carries_credentials(&heads[0]), "{auth}: {path}: {heads:?}");
            assert!(heads[0].contains("x-api-key: k3y-value\r\n"), "{heads:?}");
        }
        // Every other origin saw the probe, and nothing of its credentials.
        let elsewhere = [
            (
                "http same host and port",
                heads_for(&origin, "/landing-plain"),
            ),
            ("another host", heads_for(&other_host, "/landing")),
            ("another port", heads_for(&other_port, "/landing")),
        ];
        for (what, heads) in elsewhere {
            assert_eq!(heads.len(), 1, "{auth}: {what}: {heads:?}");
            assert!(
                !carries_credentials(&heads[0]),
                "{auth}: {what}:\n{}",
                heads[0]
            );
            assert!(heads[0].contains("user-agent: mailpulse/"), "{}", heads[0]);
        }
    }
}
