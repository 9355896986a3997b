//! Receivers that echo our request back in their error answer (HTTP 500 or
//! 400 with the request line, headers and body; SMTP 454 with the AUTH line
//! and the decoded password), in plain, JSON-escaped, percent-encoded and
//! base64 form: no secret of any receiver kind (webhook bearer and basic
//! auth, Alertmanager, PagerDuty routing key, Opsgenie key, Slack and Teams
//! URL tokens, Grafana token, SMTP password over AUTH PLAIN and LOGIN) shows
//! in the log, the store, the metrics, or `mailpulse test-alert` output, in
//! any encoding.

use crate::support;
use crate::support::peers;

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use mailpulse::alert::Alerting;
use mailpulse::clock::{Clock as _, TokioClock};
use mailpulse::config::alerting::parse;
use mailpulse::store::{outbox, Store};
use peers::EchoServer;
use support::delivery::{self, Delivery};

/// The SMTP login.
const SMTP_USER: &str = "alerts@example.org";

/// Every configured secret, by receiver; each has characters that JSON,
/// percent-encoding or HTML escape.
struct Secrets {
    bearer: &'static str,
    basic_user: &'static str,
    basic_password: &'static str,
    alertmanager: &'static str,
    routing_key: &'static str,
    genie_key: &'static str,
    grafana: &'static str,
    smtp_password: &'static str,
    slack_path: &'static str,
    teams_path: &'static str,
}

const SECRETS: Secrets = Secrets {
    bearer: "wh-T0ken/\"quoted\"+plus\\back",
    basic_user: "ops",
    basic_password: "pa55 w/\"rd\\&<x>",
    alertmanager: "am-Bearer/T0k3n+x=",
    routing_key: "R0uting\"Key\u{e9}0123456789abcdef",
    genie_key: "0p5-G3nie/Key+\"x\"",
    grafana: "glsa_Gr4fana/T0ken\"x'y",
    smtp_password: "sm7p P@ss/\"w\u{f6}rd\"",
    slack_path: "/services/T0AAAA1111/B0BBBB2222/abcdefGHIJKL1234mnopQRST",
    teams_path: "/workflows/0123abcd4567ef89/triggers/manual/paths/invoke?api-version=2016-06-01&sig=Xq7Lr2Vm9Kp4Wz8Ny3Tb6Hd1Jc5",
};

impl Secrets {
    /// Each secret with what it belongs to, and the tokens made of it that we
    /// send (the Basic credentials, the SMTP AUTH PLAIN string, the tokens of
    /// a secret URL). `true`: any 10 characters in a row of it count as a
    /// leak; `false`: only the whole (it has parts that are not secret, such
    /// as a user name or the words of a URL path).
    fn all(&self) -> Vec<(&'static str, String, bool)> {
        vec![
            ("webhook bearer token", self.bearer.into(), true),
            ("webhook password", self.basic_password.into(), true),
            (
                "webhook basic credentials",
                format!("{}:{}", self.basic_user, self.basic_password),
                false,
            ),
            ("alertmanager token", self.alertmanager.into(), true),
            ("pagerduty routing key", self.routing_key.into(), true),
            ("opsgenie api key", self.genie_key.into(), true),
            ("grafana token", self.grafana.into(), true),
            ("smtp password", self.smtp_password.into(), true),
            (
                "smtp auth plain",
                format!("\0{SMTP_USER}\0{}", self.smtp_password),
                false,
            ),
            ("slack url path", self.slack_path.into(), false),
            ("slack url token", "abcdefGHIJKL1234mnopQRST".into(), true),
            (
                "teams url query",
                self.teams_path.split_once('?').unwrap().1.into(),
                false,
            ),
            ("teams workflow", "0123abcd4567ef89".into(), true),
            (
                "teams url signature",
                "Xq7Lr2Vm9Kp4Wz8Ny3Tb6Hd1Jc5".into(),
                true,
            ),
        ]
    }
}

// ---------------------------------------------------------------------------
// An independent oracle: every decoded view of a text.
// ---------------------------------------------------------------------------

fn percent_decoded(text: &str, plus_is_space: bool) -> String {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_unescaped(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    let mut pending_high: Option<u16> = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let Ok(unit) = u16::from_str_radix(&hex, 16) else {
                    continue;
                };
                if (0xd800..0xdc00).contains(&unit) {
                    pending_high = Some(unit);
                } else if let Some(high) = pending_high.take() {
                    out.extend(char::decode_utf16([high, unit]).map(|r| r.unwrap_or('\u{fffd}')));
                } else if let Some(c) = char::from_u32(u32::from(unit)) {
                    out.push(c);
                }
            }
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn html_unescaped(text: &str) -> String {
    let mut out = text
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    while let Some(start) = out.find("&#") {
        let Some(len) = out[start..].find(';') else {
            break;
        };
        let body = &out[start + 2..start + len];
        let value = match body.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => body.parse().ok(),
        };
        let c = value.and_then(char::from_u32).unwrap_or('\u{fffd}');
        out.replace_range(start..start + len + 1, &c.to_string());
    }
    out.replace("&amp;", "&")
}

/// Every base64 run of `text` (8 characters or more), decoded at each of the
/// four character offsets.
fn base64_decoded(text: &str) -> Vec<String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let mut out = Vec::new();
    let normalised = text.replace('-', "+").replace('_', "/");
    for run in normalised
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/'))
        .filter(|r| r.len() >= 8)
    {
        for offset in 0..4 {
            let part = &run[offset..];
            // A lone last character carries no whole byte.
            let usable = part.len() - usize::from(part.len() % 4 == 1);
            if let Ok(bytes) = engine.decode(&part[..usable]) {
                out.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    out
}

/// `text` and what it says once percent-, JSON-, HTML- and base64-decoded,
/// twice over (base64 of a JSON echo of an `Authorization: Basic` header).
fn views(text: &str) -> Vec<String> {
    let mut all = vec![text.to_string()];
    for _ in 0..2 {
        let mut next = Vec::new();
        for v in &all {
            next.push(percent_decoded(v, false));
            next.push(percent_decoded(v, true));
            next.push(json_unescaped(v));
            next.push(html_unescaped(v));
            next.extend(base64_decoded(v));
        }
        all.extend(next);
        all.sort();
        all.dedup();
    }
    all
}

/// The secrets (or any 10 characters in a row of one) that `text` shows in
/// any encoding, with what they belong to.
fn leaks(text: &str) -> Vec<&'static str> {
    let views = views(text);
    let mut found = Vec::new();
    for (what, secret, windowed) in SECRETS.all() {
        let chars: Vec<char> = secret.chars().collect();
        let window = if windowed {
            chars.len().min(10)
        } else {
            chars.len()
        };
        let shown = chars.windows(window).any(|w| {
            let piece: String = w.iter().collect();
            views.iter().any(|v| v.contains(&piece))
        });
        if shown {
            found.push(what);
        }
    }
    found
}

#[test]
fn the_oracle_sees_every_encoding() {
    let token = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", SECRETS.basic_user, SECRETS.basic_password));
    for encoding in peers::Echo::ALL {
        let text = encoding.encode(&format!(
            "POST /hook HTTP/1.1\nauthorization: Basic {token}\n"
        ));
        assert!(
            leaks(&text).contains(&"webhook basic credentials"),
            "{encoding:?}: {text}"
        );
    }
    let plain = base64::engine::general_purpose::STANDARD
        .encode(format!("\0{SMTP_USER}\0{}", SECRETS.smtp_password));
    assert!(leaks(&format!("454 AUTH PLAIN {plain}")).contains(&"smtp password"));
    assert!(leaks("HTTP 500: nothing secret here").is_empty());
}

// ---------------------------------------------------------------------------
// The receivers.
// ---------------------------------------------------------------------------

/// One echoing peer per receiver, and the configuration pointing at them.
struct Peers {
    http: Vec<(&'static str, EchoServer)>,
    smtp: Vec<(&'static str, Arc<std::sync::atomic::AtomicUsize>)>,
    config: String,
}

fn secret_file(dir: &Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    p.display().to_string()
}

async fn peers(status: u16, dir: &Path) -> Peers {
    let mut http = Vec::new();
    for name in [
        "webhook-bearer",
        "webhook-basic",
        "alertmanager",
        "pagerduty",
        "opsgenie",
        "slack",
        "teams",
        "grafana",
    ] {
        http.push((name, peers::echo_server(status).await));
    }
    let url = |name: &str, path: &str| {
        http.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.url(path))
            .unwrap()
    };
    // PagerDuty's key is at the end of a long trigger: accept triggers, so
    // the short resolve (key in its first 100 bytes) is what is echoed.
    *http[3].1.accept_containing.lock().unwrap() = Some("\"trigger\"".into());
    let (plain, plain_sessions) = peers::echo_smtp_server("PLAIN").await;
    let (login, login_sessions) = peers::echo_smtp_server("LOGIN").await;
    let s = &SECRETS;
    let config = format!(
        r#"[alerting]
max_backoff = "2s"
repeat_interval = "off"

[[receiver]]
name = "webhook-bearer"
kind = "webhook"
url = "{}"
token_file = "{}"
timeout = "3s"

[[receiver]]
name = "webhook-basic"
kind = "webhook"
url = "{}"
username = "{}"
password_file = "{}"
timeout = "3s"

[[receiver]]
name = "alertmanager"
kind = "alertmanager"
url = "{}"
token_file = "{}"
timeout = "3s"

[[receiver]]
name = "pagerduty"
kind = "pagerduty"
url = "{}"
routing_key_file = "{}"
timeout = "3s"

[[receiver]]
name = "opsgenie"
kind = "opsgenie"
url = "{}"
api_key_file = "{}"
timeout = "3s"

[[receiver]]
name = "slack"
kind = "slack"
url_file = "{}"
timeout = "3s"

[[receiver]]
name = "teams"
kind = "teams"
url_file = "{}"
timeout = "3s"

[[receiver]]
name = "grafana"
kind = "grafana"
url = "{}"
token_file = "{}"
timeout = "3s"

[[receiver]]
name = "email-plain"
kind = "email"
smtp_address = "{plain}"
tls = "none"
from = "mailpulse@example.org"
to = ["ops@example.org"]
username = "{SMTP_USER}"
password_file = "{}"
timeout = "3s"

[[receiver]]
name = "email-login"
kind = "email"
smtp_address = "{login}"
tls = "none"
from = "mailpulse@example.org"
to = ["ops@example.org"]
username = "{SMTP_USER}"
password_file = "{}"
timeout = "3s"
"#,
        url("webhook-bearer", "/hook"),
        secret_file(dir, "bearer", s.bearer),
        url("webhook-basic", "/hook"),
        s.basic_user,
        secret_file(dir, "basic", s.basic_password),
        url("alertmanager", "/"),
        secret_file(dir, "am", s.alertmanager),
        url("pagerduty", "/v2/enqueue"),
        secret_file(dir, "pd", s.routing_key),
        url("opsgenie", "/"),
        secret_file(dir, "og", s.genie_key),
        secret_file(dir, "slack", &url("slack", s.slack_path)),
        secret_file(dir, "teams", &url("teams", s.teams_path)),
        url("grafana", "/"),
        secret_file(dir, "gf", s.grafana),
        secret_file(dir, "smtp-plain", s.smtp_password),
        secret_file(dir, "smtp-login", s.smtp_password),
    );
    Peers {
        http,
        smtp: vec![
            ("email-plain", plain_sessions),
            ("email-login", login_sessions),
        ],
        config,
    }
}

/// The log of this test binary, kept in memory.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buffer
    })
    .clone()
}

#[tokio::test(start_paused = true)]
async fn echoed_secrets_never_reach_the_log_the_store_or_the_metrics() {
    let log = captured_log();
    let dir = tempfile::tempdir().unwrap();
    let p = peers(500, dir.path()).await;
    let config = parse(&p.config, dir.path(), "agent.test").unwrap_or_else(|e| panic!("{e:?}"));
    let clock = TokioClock::starting_at("2026-12-05T02:00:00Z".parse().unwrap());
    let state = dir.path().join("state");
    let store = Store::open(&state).unwrap();
    let alerting = Alerting::new(config, &store, clock.clone()).unwrap();
    let h = Delivery::start_with_clock(alerting, store, None, clock.clone());

    let firing = delivery::slow("inc1", clock.now());
    h.enqueue(&firing);
    h.enqueue(&delivery::resolved_at(&firing, clock.now()));

    // Every echo in every encoding, and a few SMTP sessions of each kind.
    support::wait_until_or(
        "every echo and two SMTP sessions of each kind",
        Duration::from_secs(600),
        || {
            format!(
                "echoes: {:?}, smtp sessions: {:?}",
                p.http
                    .iter()
                    .map(|(n, s)| (*n, s.echoed.load(Ordering::Relaxed)))
                    .collect::<Vec<_>>(),
                p.smtp
                    .iter()
                    .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
                    .collect::<Vec<_>>()
            )
        },
        || async {
            let http_done = p
                .http
                .iter()
                .all(|(_, s)| s.echoed.load(Ordering::Relaxed) >= peers::Echo::ALL.len());
            let smtp_done = p.smtp.iter().all(|(_, n)| n.load(Ordering::Relaxed) >= 2);
            http_done && smtp_done
        },
    )
    .await;
    let errors: Vec<(String, String)> = outbox::all_rows(&h.store)
        .unwrap()
        .into_iter()
        .filter_map(|e| Some((e.receiver, e.last_error?)))
        .collect();
    let scrape = h.scrape();
    h.stop().await;

    // The outbox kept each receiver's last error...
    let names: Vec<&str> = p
        .http
        .iter()
        .map(|(n, _)| *n)
        .chain(p.smtp.iter().map(|(n, _)| *n))
        .collect();
    for name in &names {
        assert!(
            errors.iter().any(|(r, _)| r == name),
            "no error recorded for {name}: {errors:?}"
        );
    }
    // ...and neither it, the store file, the log nor the metrics shows a secret.
    for (receiver, error) in &errors {
        let shown = leaks(error);
        assert!(
            shown.is_empty(),
            "{receiver}: {shown:?} in the outbox: {error}"
        );
    }
    let mut raw = Vec::new();
    for f in std::fs::read_dir(&state).unwrap() {
        raw.extend(std::fs::read(f.unwrap().path()).unwrap());
    }
    let shown = leaks(&String::from_utf8_lossy(&raw));
    assert!(shown.is_empty(), "{shown:?} in the store file");
    let text = String::from_utf8_lossy(&log.lock().unwrap()).to_string();
    for name in &names {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("receiver={name}")) && l.contains("<redacted>")),
            "the log has no redacted error of {name}"
        );
    }
    for line in text.lines() {
        let shown = leaks(line);
        assert!(shown.is_empty(), "{shown:?} in the log: {line}");
    }
    let shown = leaks(&scrape);
    assert!(shown.is_empty(), "{shown:?} in the metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_secrets_never_reach_test_alert_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = peers(400, dir.path()).await;
    let config = dir.path().join("mailpulse.toml");
    let mut f = std::fs::File::create(&config).unwrap();
    writeln!(f, "[agent]\nstate_dir = \"state\"\ninstance = \"cas01\"").unwrap();
    f.write_all(p.config.as_bytes()).unwrap();
    drop(f);
    let names: Vec<&'static str> = p
        .http
        .iter()
        .map(|(n, _)| *n)
        .chain(p.smtp.iter().map(|(n, _)| *n))
        .collect();
    for name in names {
        // Once per echo encoding; the quoted part of each answer shows a
        // secret (redacted) at least in one of them.
        let mut redacted = false;
        for _ in 0..peers::Echo::ALL.len() {
            let config = config.clone();
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_mailpulse"))
                    .args(["test-alert", "--receiver", name, "--config"])
                    .arg(&config)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(1), "{name}: {printed}");
            let shown = leaks(&printed);
            assert!(
                shown.is_empty(),
                "{name}: {shown:?} in test-alert output: {printed}"
            );
            redacted |= printed.contains("<redacted>");
        }
        assert!(redacted, "{name}: no echo of a secret reached the output");
    }
}

/// A receiver with a bug that panics with its token in the message.
struct Panicky;

impl mailpulse::alert::Receiver for Panicky {
    fn name(&self) -> &str {
        "panicky"
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(
        &'a self,
        _event: &'a mailpulse::alert::AlertEvent,
    ) -> mailpulse::alert::BoxFuture<'a, Result<(), mailpulse::alert::DeliveryError>> {
        Box::pin(async move { panic!("token {} rejected", SECRETS.bearer) })
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_message_with_a_secret_is_redacted_too() {
    use mailpulse::alert::redact::{Redacted, Redactor};
    use mailpulse::alert::Receiver;
    let clock = TokioClock::starting_at("2026-12-05T02:00:00Z".parse().unwrap());
    let rx: Arc<dyn Receiver> = Arc::new(Redacted::new(
        Arc::new(Panicky),
        Redactor::new([SECRETS.bearer]),
    ));
    let d = Delivery::with_receivers(
        mailpulse::config::alerting::AlertingConfig::default(),
        vec![rx],
        clock.clone(),
    );
    d.enqueue(&delivery::slow("inc1", clock.now()));
    let error = support::wait_until("a failed attempt", Duration::from_secs(60), || async {
        let rows = outbox::all_rows(&d.store).unwrap();
        rows.into_iter().find_map(|e| e.last_error)
    })
    .await;
    d.stop().await;
    assert_eq!(
        error,
        "receiver failed: panicked: token <redacted> rejected"
    );
}
