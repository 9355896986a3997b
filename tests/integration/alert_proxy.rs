//! Outbound HTTP through proxies, as operators run it: receivers reached
//! only through a loopback proxy (a `CONNECT` tunnel for `https://`, a
//! forwarding proxy for `http://`), named by a receiver's `proxy_url` or by
//! `HTTPS_PROXY`/`HTTP_PROXY` in the environment of the real binary
//! (`mailpulse test-alert`, a child process), `NO_PROXY` bypassing them;
//! proxy credentials never printed; a redirect to another host refused; an
//! endless answer cut. The receivers are named `receiver.invalid`, a name
//! only the test proxy resolves, so a request that reaches one went through
//! the proxy.

use crate::support::{self, peers, proxy::Proxy, HttpServer, Reply};

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;

/// The name only the proxy resolves.
const HIDDEN: &str = "receiver.invalid";
/// The proxy's user, and passwords: the right one, and wrong ones.
const USER: &str = "ops";
const PASSWORD: &str = "pr0xy-s3cr@t";
const WRONG: &str = "wr0ng-pa55w0rd";
const WRONG_ENV: &str = "wr0ng-env-pa55";

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `user:password` for a URL (the `@` of the password percent-encoded).
fn userinfo(password: &str) -> String {
    format!("{USER}:{}", password.replace('@', "%40"))
}

/// An HTTPS receiver for [`HIDDEN`] and `localhost` answering 200, and the
/// PEM file of its certificate in `dir` (for `tls_ca_file`).
async fn https_receiver(dir: &Path) -> (HttpServer, String) {
    let (chain, key) = support::tls::self_signed(&[HIDDEN, "localhost"]);
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::engine::general_purpose::STANDARD.encode(chain[0].as_ref())
    );
    let ca = support::write_file(dir, "receiver-ca.pem", &pem);
    let server = HttpServer::https(chain, key).await;
    (server, ca.display().to_string())
}

/// A webhook receiver table.
fn receiver(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[receiver]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{url}\"\ntimeout = \"5s\"\n{extra}"
    )
}

/// Writes the configuration with these receiver tables.
fn config(dir: &Path, receivers: &[String]) -> std::path::PathBuf {
    let text = format!(
        "[agent]\nstate_dir = \"state\"\ninstance = \"cas01\"\n{}",
        receivers.concat()
    );
    support::write_file(dir, "mailpulse.toml", &text)
}

/// `mailpulse test-alert --receiver NAME` in a child process whose only
/// proxy variables are `env`.
async fn test_alert(config: &Path, name: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(support::bin());
    cmd.args(["test-alert", "--receiver", name, "--config"])
        .arg(config);
    for var in mailpulse::outbound::PROXY_ENV_VARS.iter().chain(&[
        "NO_PROXY",
        "no_proxy",
        "REQUEST_METHOD",
    ]) {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails if `text` holds the password in any form it travels in.
fn assert_no_secret(text: &str, password: &str) {
    for form in [
        password.to_string(),
        password.replace('@', "%40"),
        basic(USER, password),
        basic(USER, password)["Basic ".len()..].to_string(),
    ] {
        assert!(!text.contains(&form), "{form:?} leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_receiver_is_reached_through_a_connect_proxy_named_by_proxy_url() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = https_receiver(dir.path()).await;
    let proxy = Proxy::start(&[(HIDDEN, server.addr)], Some(basic(USER, PASSWORD))).await;
    let url = format!("https://{HIDDEN}:{}/hook", server.addr.port());
    let tls = format!("tls_ca_file = \"{ca}\"\n");
    let c = config(
        dir.path(),
        &[
            receiver(
                "proxied",
                &url,
                &format!(
                    "{tls}proxy_url = \"{}\"\n",
                    proxy.url(Some(&userinfo(PASSWORD)))
                ),
            ),
            receiver(
                "wrong-password",
                &url,
                &format!(
                    "{tls}proxy_url = \"{}\"\n",
                    proxy.url(Some(&userinfo(WRONG)))
                ),
            ),
            receiver("direct", &url, &tls),
        ],
    );

    let out = test_alert(&c, "proxied", &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/hook");
    assert_eq!(requests[0].header("proxy-authorization"), None);
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, format!("{HIDDEN}:{}", server.addr.port()));
    assert_eq!(seen[0].authorization, Some(basic(USER, PASSWORD)));

    // Refused by the proxy: retriable, said plainly, no credential shown.
    let out = test_alert(&c, "wrong-password", &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "proxy http://{} refused the tunnel to https://{HIDDEN}:{}: proxy authorization required",
            proxy.addr,
            server.addr.port()
        )),
        "{err}"
    );
    assert_no_secret(&err, WRONG);
    assert_no_secret(&err, PASSWORD);
    assert_eq!(proxy.seen()[1].answered, 407);

    // Without the proxy the name does not even resolve.
    let out = test_alert(&c, "direct", &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "cannot connect to https://{HIDDEN}:{}",
            server.addr.port()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_receiver_is_reached_through_a_forwarding_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let server = HttpServer::receiver().await;
    let proxy = Proxy::start(&[(HIDDEN, server.addr)], Some(basic(USER, PASSWORD))).await;
    let url = format!("http://{HIDDEN}:{}/hook?team=mail", server.addr.port());
    let c = config(
        dir.path(),
        &[receiver(
            "proxied",
            &url,
            &format!("proxy_url = \"{}\"\n", proxy.url(Some(&userinfo(PASSWORD)))),
        )],
    );
    let out = test_alert(&c, "proxied", &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/hook?team=mail");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].header("proxy-authorization"), None);
    assert_eq!(
        requests[0].json()["alerts"][0]["labels"]["alertname"],
        "MailpulseTest"
    );
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, format!("{HIDDEN}:{}", server.addr.port()));
    assert_eq!(seen[0].authorization, Some(basic(USER, PASSWORD)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxies_of_the_environment_are_used_and_no_proxy_bypasses_them() {
    let dir = tempfile::tempdir().unwrap();
    let (tls_server, ca) = https_receiver(dir.path()).await;
    let plain = HttpServer::receiver().await;
    let proxy = Proxy::start(&[(HIDDEN, tls_server.addr)], None).await;
    let plain_proxy = Proxy::start(&[(HIDDEN, plain.addr)], None).await;
    let tls = format!("tls_ca_file = \"{ca}\"\n");
    let hidden = format!("https://{HIDDEN}:{}/hook", tls_server.addr.port());
    let local = format!("https://localhost:{}/hook", tls_server.addr.port());
    let c = config(
        dir.path(),
        &[
            receiver("hidden", &hidden, &tls),
            receiver("local", &local, &tls),
            receiver(
                "plain",
                &format!("http://{HIDDEN}:{}/hook", plain.addr.port()),
                "",
            ),
        ],
    );
    let https_proxy = proxy.url(None);

    // HTTPS_PROXY: a tunnel through the proxy.
    let out = test_alert(&c, "hidden", &[("HTTPS_PROXY", &https_proxy)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tls_server.requests().len(), 1);
    assert_eq!(proxy.seen().len(), 1);
    assert_eq!(proxy.seen()[0].method, "CONNECT");

    // HTTP_PROXY (lower case too) for an http:// receiver; HTTPS_PROXY is
    // not used for it.
    let out = test_alert(
        &c,
        "plain",
        &[
            ("http_proxy", &plain_proxy.url(None)),
            ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(plain.requests().len(), 1);
    assert_eq!(plain_proxy.seen().len(), 1);
    assert_eq!(plain_proxy.seen()[0].method, "POST");

    // A proxy that is down fails the request, naming the proxy...
    let dead = [("HTTPS_PROXY", "http://127.0.0.1:9")];
    let out = test_alert(&c, "local", &dead).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "cannot connect to proxy http://127.0.0.1:9 (for https://localhost:{})",
            tls_server.addr.port()
        )),
        "{}",
        stderr(&out)
    );
    // ...unless NO_PROXY names the host: then it goes straight there.
    let bypass = [
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("NO_PROXY", "example.org, localhost"),
    ];
    let out = test_alert(&c, "local", &bypass).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tls_server.requests().len(), 2);
    assert_eq!(proxy.seen().len(), 1);

    // Credentials of a proxy of the environment are never printed.
    let auth_proxy = Proxy::start(&[(HIDDEN, tls_server.addr)], Some(basic(USER, PASSWORD))).await;
    let with_wrong = format!("http://{}@{}", userinfo(WRONG_ENV), auth_proxy.addr);
    let out = test_alert(&c, "hidden", &[("HTTPS_PROXY", &with_wrong)]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("proxy authorization required"),
        "{}",
        stderr(&out)
    );
    assert_no_secret(&stderr(&out), WRONG_ENV);
    assert_eq!(
        auth_proxy.seen()[0].authorization,
        Some(basic(USER, WRONG_ENV))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_is_refused_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = HttpServer::receiver_on([127, 0, 0, 2].into()).await;
    let server = HttpServer::receiver().await;
    server.default_reply(Reply::status(307).header("Location", &elsewhere.url("/hook")));
    let proxy = Proxy::start(&[(HIDDEN, server.addr)], None).await;
    let c = config(
        dir.path(),
        &[receiver(
            "moved",
            &format!("http://{HIDDEN}:{}/hook", server.addr.port()),
            &format!("proxy_url = \"{}\"\n", proxy.url(None)),
        )],
    );
    let out = test_alert(&c, "moved", &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "HTTP 307: redirect to http://{} not followed; set the receiver's url to the final address",
            elsewhere.addr
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(proxy.seen().len(), 1, "{:?}", proxy.seen());
    assert_eq!(elsewhere.requests().len(), 0, "the redirect was followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_is_cut_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, ok_stats) = peers::huge_server(200).await;
    let (failing, failing_stats) = peers::huge_server(500).await;
    let c = config(
        dir.path(),
        &[
            receiver("ok", &format!("http://{ok}/hook"), ""),
            receiver("failing", &format!("http://{failing}/hook"), ""),
        ],
    );
    // A 2xx is delivered after at most the success cap is read, long
    // before the 5 s timeout that reading 1 GiB would hit.
    let out = test_alert(&c, "ok", &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    // An error answer: its status judged, a short quote of its start.
    let out = test_alert(&c, "failing", &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("failed: HTTP 500: xxxx"), "{err}");
    assert!(err.len() < 600, "{err}");
    for stats in [ok_stats, failing_stats] {
        let written = stats.max_written.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            written < 32 << 20,
            "the client let the server push {written} bytes of an endless body"
        );
    }
}

/// `replay --prometheus` shares the client: `HTTP_PROXY` of the environment
/// takes it to a Prometheus only the proxy can reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reaches_prometheus_through_the_proxy_of_the_environment() {
    let prometheus = HttpServer::start().await;
    prometheus.route(
        "/api/v1/query_range",
        Reply::json(
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"target":"web"},"values":[[1709251200,"0.2"]]}]}}"#,
        ),
    );
    let proxy = Proxy::start(&[("prometheus.invalid", prometheus.addr)], None).await;
    let mut cmd = Command::new(support::bin());
    cmd.args([
        "replay",
        "--json",
        "--prometheus",
        &format!("http://prometheus.invalid:{}", prometheus.addr.port()),
        "--query",
        "probe_duration_seconds",
        "--start",
        "0",
        "--end",
        "1",
        "--step",
        "1",
    ]);
    for var in mailpulse::outbound::PROXY_ENV_VARS
        .iter()
        .chain(&["NO_PROXY", "no_proxy"])
    {
        cmd.env_remove(var);
    }
    cmd.env("HTTP_PROXY", proxy.url(None));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(prometheus.requests().len(), 1);
    assert!(prometheus.requests()[0]
        .path
        .starts_with("/api/v1/query_range?query=probe_duration_seconds"));
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].target,
        format!("prometheus.invalid:{}", prometheus.addr.port())
    );
}

/// A proxy that echoes the request it got, `Proxy-Authorization` and all,
/// in its error answer: the quoted answer shows the credentials redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_echoes_its_credentials_gets_them_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::echoing().await;
    let c = config(
        dir.path(),
        &[receiver(
            "echo",
            &format!("http://{HIDDEN}:8080/hook"),
            &format!("proxy_url = \"{}\"\n", proxy.url(Some(&userinfo(PASSWORD)))),
        )],
    );
    let out = test_alert(&c, "echo", &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("HTTP 502: POST http://receiver.invalid:8080/hook HTTP/1.1"),
        "{err}"
    );
    assert!(err.contains("<redacted>"), "{err}");
    assert_no_secret(&err, PASSWORD);
    // It did get them.
    assert_eq!(proxy.seen()[0].authorization, Some(basic(USER, PASSWORD)));
}

/// The daemon (`mailpulse run`, a child process) pages an HTTPS receiver
/// that only the proxy in its `HTTPS_PROXY` reaches; its probes keep their
/// own client and go straight to their target (`HTTP_PROXY` names a dead
/// proxy, which would fail them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_pages_through_the_https_proxy_of_its_environment() {
    let _timed = support::timed();
    let dir = tempfile::tempdir().unwrap();
    let (receiver_server, ca) = https_receiver(dir.path()).await;
    let proxy = Proxy::start(&[(HIDDEN, receiver_server.addr)], None).await;
    let target = HttpServer::start().await;
    target.route("/owa", Reply::ok("ok"));
    let port = support::free_port();
    let text = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\ninstance = \"cas01\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
         [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
         [alerting]\nmax_backoff = \"1s\"\n\
         [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\n{}",
        dir.path().join("state").display(),
        target.url("/owa"),
        receiver(
            "hook",
            &format!("https://{HIDDEN}:{}/hook", receiver_server.addr.port()),
            &format!("tls_ca_file = \"{ca}\"\n"),
        ),
    );
    let cfg = support::write_file(dir.path(), "c.toml", &text);
    let https_proxy = proxy.url(None);
    let env = [
        ("HTTPS_PROXY", https_proxy.as_str()),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        // Set and empty: no bypass, whatever the test's own environment says.
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    let agent = support::Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &env).await;
    agent.wait_baseline("owa").await;
    target.route(
        "/owa",
        Reply::ok("ok").delayed(std::time::Duration::from_millis(60)),
    );
    let firing = receiver_server
        .wait_accepted(1, std::time::Duration::from_secs(15))
        .await;
    let body = firing[0].json();
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["target"], "owa");
    let seen = proxy.seen();
    assert!(
        !seen.is_empty()
            && seen.iter().all(|s| s.method == "CONNECT"
                && s.target == format!("{HIDDEN}:{}", receiver_server.addr.port())),
        "{seen:?}"
    );
}
