//! The live status page and its JSON API on the real daemon (in process),
//! in headless Chromium: a target whose latency the test raises shows as
//! slow, the incident appears with its timings once it recovers, the
//! incident page lists the notifications a webhook receiver got; the pages
//! work with JavaScript off, log no console errors, and show a hostile
//! target name and server banner as text. A screenshot per state goes to
//! `target/test-artifacts/status/`.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use serde_json::Value;
use support::chromium::{self, Loaded};
use support::in_process::InProcessAgent;
use support::{write_file, HttpServer, Reply};

/// How long a state may take to come.
const WAIT: Duration = Duration::from_secs(20);
/// The hostile target name.
const NAME: &str = "<script>alert(1)</script>";
/// The hostile server's greeting (a refusal, so the probe fails with it).
const BANNER: &str = "554 <img src=x onerror=alert(2)> busy";

/// An SMTP server that greets every connection with [`BANNER`] and hangs up;
/// its thread ends with the test process.
fn hostile_smtp() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut writer = stream.try_clone().unwrap();
            let _ = write!(writer, "{BANNER}\r\n");
            let mut line = String::new();
            let _ = BufReader::new(stream).read_line(&mut line);
        }
    });
    port
}

fn config(dir: &std::path::Path, url: &str, hook: &str, smtp: u16) -> std::path::PathBuf {
    write_file(
        dir,
        "c.toml",
        &format!(
            "[agent]\ninstance = \"cas01\"\nstate_dir = \"{}\"\n[host]\nenabled = true\ninterval = \"1s\"\n\
             [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
             [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\n\
             [[target]]\nname = \"{}\"\nkind = \"smtp\"\naddress = \"127.0.0.1:{smtp}\"\ntls = \"none\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\n\
             [[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{hook}\"\n",
            dir.join("state").display(),
            NAME.replace('"', "\\\"")
        ),
    )
}

/// An agent `cas01` without host collection, with `more` configuration.
fn quiet_config(dir: &std::path::Path, more: &str) -> std::path::PathBuf {
    write_file(
        dir,
        "c.toml",
        &format!(
            "[agent]\ninstance = \"cas01\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n{more}",
            dir.join("state").display()
        ),
    )
}

/// The agent on `cfg`, once its status routes answer (they wait for the
/// store, which opens after the listener).
async fn started(cfg: &std::path::Path) -> InProcessAgent {
    let agent = InProcessAgent::start(cfg).await;
    agent
        .wait_until(
            || async {
                matches!(
                    support::get(agent.addr, "/api/v1/status").await,
                    Some((200, _))
                )
            },
            "the status API",
        )
        .await;
    agent
}

/// The page at `path` as served: no script in it, and a policy that lets
/// none run (`default-src 'none'`, no `script-src`), so it is the same page
/// with JavaScript disabled; it refreshes itself instead.
async fn assert_scriptless(agent: &InProcessAgent, path: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(agent.addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{path}: {text}");
    assert!(
        text.contains("content-security-policy: default-src 'none';"),
        "{text}"
    );
    assert!(!text.contains("script-src"), "{text}");
    assert!(!text.contains("<script"), "{text}");
    assert!(text.contains("http-equiv=\"refresh\""), "{text}");
}

async fn json(agent: &InProcessAgent, path: &str) -> Value {
    let (status, body) = support::get(agent.addr, path).await.expect("an answer");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Target `name` in a status answer (`Null` before its first probe).
fn target<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or(&Value::Null)
}

/// The checks every page load must pass: no console errors, no element the
/// outside text could have made.
fn assert_clean(loaded: &Loaded, what: &str) {
    assert!(
        loaded.console_errors().is_empty(),
        "{what}: console errors: {:?}",
        loaded.console_errors()
    );
    let dom = loaded.dom.to_ascii_lowercase();
    assert!(!dom.contains("<script"), "{what}: {}", loaded.dom);
    assert!(!dom.contains("<img"), "{what}: {}", loaded.dom);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_follows_a_slowdown_and_its_incident_in_chromium() {
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    let hook = HttpServer::receiver().await;
    let smtp = hostile_smtp();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &server.url("/owa"), &hook.url("/hook"), smtp);
    let agent = started(&cfg).await;
    let base = format!("http://{}", agent.addr);

    // Warm: a baseline, and the hostile target failing with its banner.
    agent
        .wait_until(
            || async {
                let s = json(&agent, "/api/v1/status").await;
                !target(&s, "owa")["baseline_seconds"].is_null()
                    && target(&s, NAME)["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("onerror"))
            },
            "a baseline for owa and a failed probe of the hostile target",
        )
        .await;
    let page = chromium::dump_dom(&format!("{base}/")).await;
    assert_clean(&page, "the page while healthy");
    assert_scriptless(&agent, "/").await;
    assert!(page.dom.contains("lang=\"en\""), "{}", page.dom);
    assert!(
        page.dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.dom
    );
    assert!(
        page.dom.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "{}",
        page.dom
    );
    assert!(page.dom.contains(">ok</span>"), "{}", page.dom);
    chromium::screenshot(&format!("{base}/"), "1-healthy.png").await;

    // Slow the service down: 60 ms against a ~1 ms baseline.
    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(60)));
    agent
        .wait_until(
            || async {
                let s = json(&agent, "/api/v1/status").await;
                target(&s, "owa")["state"] == "slow"
            },
            "owa to show as slow",
        )
        .await;
    // The page itself says so on its next load (nothing is cached), in
    // colour and in text.
    let page = chromium::dump_dom(&format!("{base}/")).await;
    assert_clean(&page, "the page while slow");
    assert!(page.dom.contains("class=\"state slow\""), "{}", page.dom);
    assert!(page.dom.contains("</span>slow</span>"), "{}", page.dom);
    assert!(page.dom.contains(" open</td>"), "{}", page.dom);
    chromium::screenshot(&format!("{base}/"), "2-slow.png").await;

    // Recover; the incident closes with its timings.
    server.route("/owa", Reply::ok("ok"));
    let incident = support::wait_until("the incident to close", WAIT, || async {
        let list = json(&agent, "/api/v1/incidents?target=owa&limit=5").await;
        let first = list["incidents"][0].clone();
        (!first["recovered_at"].is_null()).then_some(first)
    })
    .await;
    assert_eq!(incident["kind"], "slow");
    assert!(
        incident["duration_seconds"].as_f64().unwrap() > 0.4,
        "{incident}"
    );
    assert!(
        incident["peak_seconds"].as_f64().unwrap() >= 0.06,
        "{incident}"
    );
    let id = incident["id"].as_str().unwrap().to_string();
    // `mailpulse incidents --agent URL` reads the same through the API.
    let agent_url = base.clone();
    let cli = tokio::task::spawn_blocking(move || {
        support::mailpulse(&[
            "incidents",
            "--agent",
            &agent_url,
            "--json",
            "--target",
            "owa",
        ])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&cli.stdout).to_string();
    assert!(
        cli.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let line: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(line["target"], "owa", "{line}");
    assert_eq!(line["started_at"], incident["started_at"], "{line}");
    assert_eq!(line["recovered_at"], incident["recovered_at"], "{line}");
    assert_eq!(line["worst_phase"], incident["worst_step"], "{line}");
    let page = chromium::dump_dom(&format!("{base}/")).await;
    assert_clean(&page, "the page after recovery");
    assert!(
        page.dom.contains(&format!("/incidents/{id}")),
        "{}",
        page.dom
    );
    assert!(page.dom.contains("slow recovered"), "{}", page.dom);
    chromium::screenshot(&format!("{base}/"), "3-recovered.png").await;

    // The incident page: timeline, steps and both notifications delivered.
    let detail = support::wait_until(
        "firing and resolved delivered to the hook",
        WAIT,
        || async {
            let d = json(&agent, &format!("/api/v1/incidents/{id}")).await;
            let delivered = d["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["outcome"] == "delivered")
                .count();
            (delivered == 2).then_some(d)
        },
    )
    .await;
    assert_eq!(detail["notifications"][0]["status"], "firing", "{detail}");
    assert_eq!(detail["notifications"][1]["status"], "resolved", "{detail}");
    assert_eq!(detail["notifications"][0]["receiver"], "hook", "{detail}");
    assert!(detail["samples"].as_array().unwrap().len() > 10, "{detail}");
    assert_eq!(detail["onset_steps"][0]["step"], "first_byte", "{detail}");
    let url = format!("{base}/incidents/{id}");
    let page = chromium::dump_dom(&url).await;
    assert_clean(&page, "the incident page");
    assert!(
        page.dom.contains("<th scope=\"row\">hook</th>"),
        "{}",
        page.dom
    );
    assert_eq!(page.dom.matches(">delivered<").count(), 2, "{}", page.dom);
    assert!(page.dom.contains("<svg"), "{}", page.dom);
    chromium::screenshot(&url, "4-incident.png").await;
    agent.stop().unwrap();
}

/// The API's filters and errors, and an unknown incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_api_filters_and_refuses_bad_parameters() {
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = quiet_config(
        dir.path(),
        &support::http_target("owa", &server.url("/owa"), "100ms", "90ms"),
    );
    let agent = started(&cfg).await;
    let list = json(&agent, "/api/v1/incidents?since=1h&target=owa").await;
    assert_eq!(list["incidents"], serde_json::json!([]));
    for bad in ["limit=0", "limit=abc", "since=yesterday"] {
        let (status, body) = support::get(agent.addr, &format!("/api/v1/incidents?{bad}"))
            .await
            .unwrap();
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("\"error\""), "{body}");
    }
    let (status, _) = support::get(agent.addr, "/api/v1/incidents/0123456789abcdef")
        .await
        .unwrap();
    assert_eq!(status, 404);
    let (status, body) = support::get(agent.addr, "/incidents/nonsense%3Cb%3E")
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert!(!body.contains("nonsense"), "{body}");
    agent.stop().unwrap();
}

/// `/api/v1/status` through the agent's listener: one line of JSON by
/// default, indented with `?pretty` or `?pretty=1`, the same data either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_is_compact_by_default_and_pretty_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = quiet_config(dir.path(), "");
    let agent = started(&cfg).await;
    let (status, compact) = support::get(agent.addr, "/api/v1/status").await.unwrap();
    assert_eq!(status, 200, "{compact}");
    assert_eq!(compact.lines().count(), 1, "{compact}");
    assert!(compact.starts_with("{\"instance\":\"cas01\","), "{compact}");
    let compact: Value = serde_json::from_str(&compact).unwrap();
    for path in ["/api/v1/status?pretty", "/api/v1/status?pretty=1"] {
        let (status, body) = support::get(agent.addr, path).await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            body.starts_with("{\n  \"instance\": \"cas01\",\n"),
            "{path}: {body}"
        );
        let pretty: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(pretty["instance"], compact["instance"], "{path}");
        assert_eq!(pretty["started_at"], compact["started_at"], "{path}");
    }
    agent.stop().unwrap();
}

/// The status routes sit behind the same basic authentication as
/// `/metrics`: refused without credentials, served with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_routes_need_the_same_credentials_as_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let cfg = quiet_config(
        dir.path(),
        &format!("[agent.web]\nbasic_auth_users = {{ ops = \"{hash}\" }}\n"),
    );
    let agent = InProcessAgent::spawn(&cfg);
    let good = support::basic_auth("ops", "pw");
    let bad = support::basic_auth("ops", "guess");
    for path in [
        "/",
        "/api/v1/status",
        "/api/v1/incidents",
        "/incidents/0123456789abcdef",
    ] {
        let get = |auth: Option<String>| async move {
            let stream = tokio::net::TcpStream::connect(agent.addr).await.ok()?;
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            support::get_on(stream, agent.addr, path, &headers).await
        };
        assert_eq!(get(None).await.map(|a| a.0), Some(401), "{path}");
        assert_eq!(
            get(Some(bad.clone())).await.map(|a| a.0),
            Some(401),
            "{path}"
        );
        let served = support::wait_until("the status routes", WAIT, || {
            let good = good.clone();
            let get = &get;
            async move { get(Some(good)).await.filter(|a| a.0 != 503) }
        })
        .await;
        let expected = if path.starts_with("/incidents/") {
            404
        } else {
            200
        };
        assert_eq!(served.0, expected, "{path}: {}", served.1);
    }
    agent.stop().unwrap();
}
