//! Alert delivery configuration: the `[alerting]` table, `[[receiver]]`,
//! `[[route]]` and `[[maintenance]]`, as the user writes them (the `Raw*`
//! serde mirrors, `deny_unknown_fields`) and as the agent runs on them
//! ([`AlertingConfig`], built by [`parse`], or by `validate` inside the loader).
//!
//! Receivers are one flat table for every kind (like targets) so unknown keys
//! keep their position; which keys a kind accepts is checked here and a key of
//! another kind names the kind. Errors are `(key path, message)` pairs; the
//! config loader adds file, line and column. Secrets are read from `*_file`
//! keys into [`Secret`]s. This module reads files but never sends anything.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc, Weekday};

use super::duration::parse_duration;
use super::raw::{RawAlertingFile, RawMaintenance, RawReceiver};
use super::{HumanDuration, Secret, TlsOptions};

/// Default cap on the delay between two delivery attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Default age after which an undelivered notification is given up.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Default interval of reminders while an incident stays open.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// Default per-request timeout of a receiver.
pub const DEFAULT_RECEIVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default interval at which firing alerts are re-posted to Alertmanager.
pub const DEFAULT_ALERTMANAGER_RESEND: Duration = Duration::from_secs(60);
/// Default PagerDuty Events API v2 endpoint.
pub const DEFAULT_PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// Default Opsgenie API base URL (Jira Service Management: `https://api.atlassian.com/jsm/ops/integration`).
pub const DEFAULT_OPSGENIE_URL: &str = "https://api.opsgenie.com";
/// Default severity of an alert whose target has none configured.
pub const DEFAULT_SEVERITY: &str = "critical";
/// Accepted severities, most severe first (PagerDuty's set).
pub const SEVERITIES: &[&str] = &["critical", "error", "warning", "info"];

// ---------------------------------------------------------------------------
// Typed: what the agent runs on.
// ---------------------------------------------------------------------------

/// The validated alerting configuration. The default has no receivers, so
/// nothing is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertingConfig {
    /// Cap on the retry delay.
    pub max_backoff: Duration,
    /// Give up on a notification this old.
    pub max_age: Duration,
    /// Reminder interval while an incident stays open; `None` is off.
    pub repeat_interval: Option<Duration>,
    /// `externalURL` of webhook messages and `generatorURL` of alerts.
    pub external_url: Option<String>,
    /// Severity of targets not in `severity`.
    pub default_severity: String,
    /// Per-target severity.
    pub severity: BTreeMap<String, String>,
    /// Receivers, in file order, names unique.
    pub receivers: Vec<ReceiverConfig>,
    /// Routes, in file order. Empty: every receiver gets every alert.
    pub routes: Vec<Route>,
    /// Configured maintenance windows.
    pub maintenance: Vec<MaintenanceWindow>,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_age: DEFAULT_MAX_AGE,
            repeat_interval: Some(DEFAULT_REPEAT_INTERVAL),
            external_url: None,
            default_severity: DEFAULT_SEVERITY.into(),
            severity: BTreeMap::new(),
            receivers: Vec::new(),
            routes: Vec::new(),
            maintenance: Vec::new(),
        }
    }
}

impl AlertingConfig {
    /// The severity alerts of `target` carry.
    pub fn severity_for(&self, target: &str) -> &str {
        self.severity
            .get(target)
            .map(String::as_str)
            .unwrap_or(&self.default_severity)
    }

    /// Looks a receiver up by name.
    pub fn receiver(&self, name: &str) -> Option<&ReceiverConfig> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

/// One receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    /// Unique name; the `receiver` label.
    pub name: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Whether recoveries are sent.
    pub send_resolved: bool,
    /// TLS settings for HTTPS endpoints and SMTP (CA certificates and
    /// `tls_insecure_skip_verify`; no client identity).
    pub tls: TlsOptions,
    /// Kind-specific settings.
    pub spec: ReceiverSpec,
}

impl ReceiverConfig {
    /// The kind, as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self.spec {
            ReceiverSpec::Webhook(_) => "webhook",
            ReceiverSpec::Alertmanager(_) => "alertmanager",
            ReceiverSpec::PagerDuty(_) => "pagerduty",
            ReceiverSpec::Opsgenie(_) => "opsgenie",
            ReceiverSpec::Slack(_) => "slack",
            ReceiverSpec::Teams(_) => "teams",
            ReceiverSpec::Email(_) => "email",
            ReceiverSpec::Grafana(_) => "grafana",
        }
    }
}

/// Kind-specific receiver settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverSpec {
    /// `kind = "webhook"`: Alertmanager webhook JSON.
    Webhook(WebhookSpec),
    /// `kind = "alertmanager"`: Alertmanager API v2.
    Alertmanager(AlertmanagerSpec),
    /// `kind = "pagerduty"`: Events API v2.
    PagerDuty(PagerDutySpec),
    /// `kind = "opsgenie"`: Opsgenie (or JSM) alert API.
    Opsgenie(OpsgenieSpec),
    /// `kind = "slack"`: incoming webhook.
    Slack(ChatSpec),
    /// `kind = "teams"`: Workflows webhook.
    Teams(ChatSpec),
    /// `kind = "email"`: SMTP submission.
    Email(EmailSpec),
    /// `kind = "grafana"`: annotations API.
    Grafana(GrafanaSpec),
}

/// How an HTTP receiver authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverAuth {
    /// No authentication.
    None,
    /// `Authorization: Bearer` from `token_file`.
    Bearer(Secret),
    /// `Authorization: Basic` from `username` and `password_file`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
}

/// `kind = "webhook"`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSpec {
    /// Where the JSON is posted.
    pub url: url::Url,
    /// Authentication.
    pub auth: ReceiverAuth,
}

/// `kind = "alertmanager"`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerSpec {
    /// Base URL of one Alertmanager (`/api/v2/alerts` is appended).
    pub url: url::Url,
    /// Authentication.
    pub auth: ReceiverAuth,
    /// Re-post interval of open alerts.
    pub resend_interval: Duration,
}

/// `kind = "pagerduty"`.
#[derive(Debug, Clone, PartialEq)]
pub struct PagerDutySpec {
    /// The enqueue endpoint.
    pub url: url::Url,
    /// Integration (routing) key.
    pub routing_key: Secret,
}

/// `kind = "opsgenie"`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpsgenieSpec {
    /// API base URL (`/v2/alerts` is appended).
    pub url: url::Url,
    /// API key, sent as `Authorization: GenieKey`.
    pub api_key: Secret,
    /// Extra tags.
    pub tags: Vec<String>,
}

/// `kind = "slack"` and `kind = "teams"`: the URL is the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSpec {
    /// The webhook URL (from `url` or `url_file`).
    pub url: Secret,
}

/// How the e-mail receiver secures its SMTP session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection, then STARTTLS, which the server must offer.
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all (loopback relays only).
    None,
}

/// `kind = "email"`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailSpec {
    /// Host name of the submission server (also the TLS name).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// AUTH credentials, if any.
    pub credentials: Option<(String, Secret)>,
    /// Transport security.
    pub tls: SmtpTls,
    /// EHLO name.
    pub hello: String,
}

/// `kind = "grafana"`.
#[derive(Debug, Clone, PartialEq)]
pub struct GrafanaSpec {
    /// Grafana base URL (`/api/annotations` is appended).
    pub url: url::Url,
    /// Authentication (a service-account token as bearer).
    pub auth: ReceiverAuth,
    /// Dashboard of the annotations, if any.
    pub dashboard_uid: Option<String>,
    /// Panel of the annotations, if any.
    pub panel_id: Option<i64>,
    /// Extra tags.
    pub tags: Vec<String>,
}

/// A target name pattern: `*` matches any run of characters, `?` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(pub String);

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `[[route]]`. Unset matchers match anything.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Target name pattern.
    pub target: Option<Glob>,
    /// Probe kind.
    pub kind: Option<String>,
    /// Incident kind (`slow`, `down`).
    pub incident: Option<String>,
    /// Severity.
    pub severity: Option<String>,
    /// Receivers alerts matching this route go to.
    pub receivers: Vec<String>,
    /// Whether later routes are tried after this one matched.
    pub continue_matching: bool,
}

/// When a maintenance window is open.
#[derive(Debug, Clone, PartialEq)]
pub enum WindowSchedule {
    /// Once, from `start` to `end`.
    Once {
        /// Start.
        start: DateTime<Utc>,
        /// End (exclusive).
        end: DateTime<Utc>,
    },
    /// Every week on `weekday` at `at` (UTC), for `duration`.
    Weekly {
        /// Day of the start.
        weekday: Weekday,
        /// Time of the start, UTC.
        at: NaiveTime,
        /// Length.
        duration: Duration,
    },
    /// Every day at `at` (UTC), for `duration`.
    Daily {
        /// Time of the start, UTC.
        at: NaiveTime,
        /// Length.
        duration: Duration,
    },
}

/// One configured maintenance window.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceWindow {
    /// Name for messages.
    pub name: String,
    /// Targets it covers; empty covers every target.
    pub targets: Vec<Glob>,
    /// When it is open.
    pub schedule: WindowSchedule,
}

// ---------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------

/// A validation error: the dotted key path (`receiver[1].url`) and the message.
pub type KeyError = (String, String);

/// Receiver kinds and the kind-specific keys each accepts.
const RECEIVER_KINDS: &[(&str, &[&str])] = &[
    (
        "webhook",
        &[
            "url",
            "token_file",
            "username",
            "password_file",
            "tls_ca_file",
            "tls_insecure_skip_verify",
        ],
    ),
    (
        "alertmanager",
        &[
            "url",
            "token_file",
            "username",
            "password_file",
            "tls_ca_file",
            "tls_insecure_skip_verify",
            "resend_interval",
        ],
    ),
    (
        "pagerduty",
        &[
            "url",
            "routing_key_file",
            "tls_ca_file",
            "tls_insecure_skip_verify",
        ],
    ),
    (
        "opsgenie",
        &[
            "url",
            "api_key_file",
            "tags",
            "tls_ca_file",
            "tls_insecure_skip_verify",
        ],
    ),
    (
        "slack",
        &["url", "url_file", "tls_ca_file", "tls_insecure_skip_verify"],
    ),
    (
        "teams",
        &["url", "url_file", "tls_ca_file", "tls_insecure_skip_verify"],
    ),
    (
        "email",
        &[
            "smtp_address",
            "from",
            "to",
            "username",
            "password_file",
            "tls",
            "hello",
            "tls_ca_file",
            "tls_insecure_skip_verify",
        ],
    ),
    (
        "grafana",
        &[
            "url",
            "token_file",
            "username",
            "password_file",
            "dashboard_uid",
            "panel_id",
            "tags",
            "tls_ca_file",
            "tls_insecure_skip_verify",
        ],
    ),
];

/// Errors, then warnings (problems that do not make the file invalid).
struct Errors(Vec<KeyError>, Vec<KeyError>);

impl Errors {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push((key.into(), message.into()));
    }

    fn warn(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.1.push((key.into(), message.into()));
    }
}

/// Turns the raw alerting tables into an [`AlertingConfig`], reporting every
/// problem. Relative `*_file` paths are resolved against `base_dir` (the
/// configuration file's directory); `hostname` is the default EHLO name.
pub(crate) fn validate(
    raw: RawAlertingFile,
    base_dir: &Path,
    hostname: &str,
) -> Result<AlertingConfig, Vec<KeyError>> {
    validate_with_warnings(raw, base_dir, hostname).0
}

/// [`validate`], and the warnings found on the way (a secret file others
/// can read), as `(key path, message)` pairs.
pub(crate) fn validate_with_warnings(
    raw: RawAlertingFile,
    base_dir: &Path,
    hostname: &str,
) -> (Result<AlertingConfig, Vec<KeyError>>, Vec<KeyError>) {
    let mut e = Errors(Vec::new(), Vec::new());
    let a = raw.alerting;
    let mut config = AlertingConfig::default();
    if let Some(d) = a.max_backoff {
        if d.get() < Duration::from_secs(1) {
            e.push("alerting.max_backoff", "must be at least 1s");
        }
        config.max_backoff = d.get();
    }
    if let Some(d) = a.max_age {
        if d.get() < Duration::from_secs(60) {
            e.push("alerting.max_age", "must be at least 1m");
        }
        config.max_age = d.get();
    }
    match a.repeat_interval.as_deref() {
        None => {}
        Some("off") => config.repeat_interval = None,
        Some(text) => match parse_duration(text) {
            Ok(d) if d < Duration::from_secs(60) => e.push(
                "alerting.repeat_interval",
                "must be at least 1m, or \"off\"",
            ),
            Ok(d) => config.repeat_interval = Some(d),
            Err(msg) => e.push("alerting.repeat_interval", format!("{msg}, or \"off\"")),
        },
    }
    if let Some(u) = a.external_url {
        match url::Url::parse(&u) {
            Ok(_) => config.external_url = Some(u),
            Err(err) => e.push("alerting.external_url", format!("invalid url {u:?}: {err}")),
        }
    }
    if let Some(s) = a.default_severity {
        check_severity(&mut e, "alerting.default_severity", &s);
        config.default_severity = s;
    }
    for (target, s) in a.severity.unwrap_or_default() {
        check_severity(&mut e, &format!("alerting.severity.{target}"), &s);
        config.severity.insert(target, s);
    }

    let mut seen = HashSet::new();
    for (i, r) in raw.receivers.into_iter().enumerate() {
        let path = format!("receiver[{i}]");
        if let Some(name) = &r.name {
            if !seen.insert(name.clone()) {
                e.push(
                    format!("{path}.name"),
                    format!("duplicate receiver name {name:?}"),
                );
            }
        }
        if let Some(rc) = build_receiver(&mut e, &path, r, base_dir, hostname) {
            config.receivers.push(rc);
        }
    }

    for (i, r) in raw.routes.into_iter().enumerate() {
        let path = format!("route[{i}]");
        let receivers = r.receivers.unwrap_or_default();
        if receivers.is_empty() {
            e.push(
                format!("{path}.receivers"),
                "must name at least one receiver",
            );
        }
        for (j, name) in receivers.iter().enumerate() {
            if !seen.contains(name) {
                let known: Vec<&str> = config.receivers.iter().map(|r| r.name.as_str()).collect();
                e.push(
                    format!("{path}.receivers[{j}]"),
                    format!(
                        "no receiver named {name:?} (receivers: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
        if let Some(s) = &r.severity {
            check_severity(&mut e, &format!("{path}.severity"), s);
        }
        if let Some(k) = &r.incident {
            if !matches!(k.as_str(), "slow" | "down") {
                e.push(
                    format!("{path}.incident"),
                    format!("unknown incident kind {k:?} (expected \"slow\" or \"down\")"),
                );
            }
        }
        config.routes.push(Route {
            target: r.target.map(Glob),
            kind: r.kind,
            incident: r.incident,
            severity: r.severity,
            receivers,
            continue_matching: r.continue_matching.unwrap_or(false),
        });
    }

    for (i, m) in raw.maintenance.into_iter().enumerate() {
        let path = format!("maintenance[{i}]");
        if let Some(w) = build_window(&mut e, &path, m) {
            config.maintenance.push(w);
        }
    }

    let result = if e.0.is_empty() { Ok(config) } else { Err(e.0) };
    (result, e.1)
}

fn check_severity(e: &mut Errors, key: &str, s: &str) {
    if !SEVERITIES.contains(&s) {
        e.push(
            key,
            format!(
                "unknown severity {s:?} (expected one of: {})",
                SEVERITIES.join(", ")
            ),
        );
    }
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_relative() && !base.as_os_str().is_empty() {
        base.join(p)
    } else {
        p
    }
}

fn read_secret(e: &mut Errors, key: String, base: &Path, file: PathBuf) -> Option<Secret> {
    let file = resolve(base, file);
    match Secret::from_file(&file) {
        Ok(s) if s.expose().trim().is_empty() => {
            e.push(key, format!("secret file {} is empty", file.display()));
            None
        }
        Ok(s) => {
            if let Some(warning) = s.exposure_warning() {
                e.warn(key, warning);
            }
            Some(s)
        }
        Err(err) => {
            e.push(
                key,
                format!("cannot read secret file {}: {err}", file.display()),
            );
            None
        }
    }
}

/// Parses a receiver's URL. An error never quotes it: a receiver URL may
/// hold a secret (a Slack or Teams URL is one; a webhook's may carry a
/// token or a password).
fn parse_url(e: &mut Errors, key: String, text: &str) -> Option<url::Url> {
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
        Ok(u) => {
            e.push(
                key,
                format!(
                    "invalid url with scheme {:?} (expected an http:// or https:// URL with a host; the URL is not quoted, it may hold a secret)",
                    u.scheme()
                ),
            );
            None
        }
        Err(err) => {
            e.push(
                key,
                format!("invalid url: {err} (the URL is not quoted, it may hold a secret)"),
            );
            None
        }
    }
}

fn build_receiver(
    e: &mut Errors,
    path: &str,
    r: RawReceiver,
    base: &Path,
    hostname: &str,
) -> Option<ReceiverConfig> {
    let name = match &r.name {
        Some(n) if n.trim().is_empty() => {
            e.push(
                format!("{path}.name"),
                "must be a non-empty name without control characters",
            );
            return None;
        }
        Some(n) => match super::validate::hidden_char_error(n) {
            Some(message) => {
                e.push(format!("{path}.name"), message);
                return None;
            }
            None => n.clone(),
        },
        None => {
            e.push(path, "missing field `name`");
            return None;
        }
    };
    let Some(kind) = r.kind.clone() else {
        e.push(path, format!("missing field `kind` in receiver {name:?}"));
        return None;
    };
    let Some((_, allowed)) = RECEIVER_KINDS.iter().find(|(k, _)| *k == kind) else {
        let known: Vec<&str> = RECEIVER_KINDS.iter().map(|(k, _)| *k).collect();
        e.push(
            format!("{path}.kind"),
            format!(
                "unknown kind {kind:?} (expected one of: {})",
                known.join(", ")
            ),
        );
        return None;
    };
    let mut misplaced = false;
    for key in r.keys_set() {
        if !allowed.contains(&key) {
            e.push(
                format!("{path}.{key}"),
                format!("not valid for receiver kind {kind:?}"),
            );
            misplaced = true;
        }
    }
    let timeout = r
        .timeout
        .map(HumanDuration::get)
        .unwrap_or(DEFAULT_RECEIVER_TIMEOUT);
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(300) {
        e.push(format!("{path}.timeout"), "must be between 100ms and 5m");
    }
    let tls = build_tls(
        e,
        path,
        base,
        r.tls_ca_file.clone(),
        r.tls_insecure_skip_verify,
    );
    let key = |k: &str| format!("{path}.{k}");
    let auth = |e: &mut Errors, r: &mut RawReceiver| -> ReceiverAuth {
        match (
            r.token_file.take(),
            r.username.take(),
            r.password_file.take(),
        ) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                e.push(
                    key("token_file"),
                    "cannot be combined with username/password_file",
                );
                ReceiverAuth::None
            }
            (Some(f), None, None) => read_secret(e, key("token_file"), base, f)
                .map(ReceiverAuth::Bearer)
                .unwrap_or(ReceiverAuth::None),
            (None, Some(username), Some(f)) => read_secret(e, key("password_file"), base, f)
                .map(|password| ReceiverAuth::Basic { username, password })
                .unwrap_or(ReceiverAuth::None),
            (None, Some(_), None) => {
                e.push(key("username"), "needs password_file");
                ReceiverAuth::None
            }
            (None, None, Some(_)) => {
                e.push(key("password_file"), "needs username");
                ReceiverAuth::None
            }
            (None, None, None) => ReceiverAuth::None,
        }
    };
    let mut r = r;
    let required_url = |e: &mut Errors, r: &RawReceiver| -> Option<url::Url> {
        match &r.url {
            Some(u) => parse_url(e, key("url"), u),
            None => {
                e.push(
                    path,
                    format!("missing field `url` (required for kind {kind:?})"),
                );
                None
            }
        }
    };
    let spec = match kind.as_str() {
        "webhook" => {
            let url = required_url(e, &r);
            let auth = auth(e, &mut r);
            ReceiverSpec::Webhook(WebhookSpec { url: url?, auth })
        }
        "alertmanager" => {
            let url = required_url(e, &r);
            let auth = auth(e, &mut r);
            let resend_interval = r
                .resend_interval
                .map(HumanDuration::get)
                .unwrap_or(DEFAULT_ALERTMANAGER_RESEND);
            if resend_interval < Duration::from_secs(1) {
                e.push(key("resend_interval"), "must be at least 1s");
            }
            ReceiverSpec::Alertmanager(AlertmanagerSpec {
                url: url?,
                auth,
                resend_interval,
            })
        }
        "pagerduty" => {
            let url = parse_url(
                e,
                key("url"),
                r.url.as_deref().unwrap_or(DEFAULT_PAGERDUTY_URL),
            );
            let routing_key = match r.routing_key_file.take() {
                Some(f) => read_secret(e, key("routing_key_file"), base, f),
                None => {
                    e.push(
                        path,
                        "missing field `routing_key_file` (required for kind \"pagerduty\")",
                    );
                    None
                }
            };
            ReceiverSpec::PagerDuty(PagerDutySpec {
                url: url?,
                routing_key: routing_key?,
            })
        }
        "opsgenie" => {
            let url = parse_url(
                e,
                key("url"),
                r.url.as_deref().unwrap_or(DEFAULT_OPSGENIE_URL),
            );
            let api_key = match r.api_key_file.take() {
                Some(f) => read_secret(e, key("api_key_file"), base, f),
                None => {
                    e.push(
                        path,
                        "missing field `api_key_file` (required for kind \"opsgenie\")",
                    );
                    None
                }
            };
            ReceiverSpec::Opsgenie(OpsgenieSpec {
                url: url?,
                api_key: api_key?,
                tags: r.tags.take().unwrap_or_default(),
            })
        }
        "slack" | "teams" => {
            let url = match (r.url.take(), r.url_file.take()) {
                (Some(_), Some(_)) => {
                    e.push(key("url_file"), "cannot be combined with url");
                    None
                }
                (Some(u), None) => parse_url(e, key("url"), &u).map(|u| Secret::new(u.as_str())),
                (None, Some(f)) => match read_secret(e, key("url_file"), base, f) {
                    Some(s) => {
                        let valid = url::Url::parse(s.expose().trim()).is_ok_and(|u| {
                            matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                        });
                        if !valid {
                            // Never quote the content: the URL is the secret.
                            e.push(
                                key("url_file"),
                                format!(
                                    "{} does not hold an http:// or https:// URL",
                                    s.path().display()
                                ),
                            );
                        }
                        valid.then_some(s)
                    }
                    None => None,
                },
                (None, None) => {
                    e.push(
                        path,
                        format!("missing field `url` or `url_file` (required for kind {kind:?})"),
                    );
                    None
                }
            };
            let spec = ChatSpec { url: url? };
            if kind == "slack" {
                ReceiverSpec::Slack(spec)
            } else {
                ReceiverSpec::Teams(spec)
            }
        }
        "email" => build_email(e, path, &mut r, base, hostname)?,
        "grafana" => {
            let url = required_url(e, &r);
            let auth = auth(e, &mut r);
            ReceiverSpec::Grafana(GrafanaSpec {
                url: url?,
                auth,
                dashboard_uid: r.dashboard_uid.take(),
                panel_id: r.panel_id,
                tags: r.tags.take().unwrap_or_default(),
            })
        }
        _ => unreachable!("kinds are checked above"),
    };
    if misplaced {
        return None;
    }
    Some(ReceiverConfig {
        name,
        timeout,
        send_resolved: r.send_resolved.unwrap_or(true),
        tls: tls?,
        spec,
    })
}

fn build_email(
    e: &mut Errors,
    path: &str,
    r: &mut RawReceiver,
    base: &Path,
    hostname: &str,
) -> Option<ReceiverSpec> {
    let key = |k: &str| format!("{path}.{k}");
    let mut ok = true;
    let (host, port) = match r.smtp_address.take() {
        None => {
            e.push(
                path,
                "missing field `smtp_address` (required for kind \"email\")",
            );
            ok = false;
            (String::new(), 0)
        }
        Some(addr) => match split_host_port(&addr) {
            Some(hp) => hp,
            None => {
                e.push(
                    key("smtp_address"),
                    format!("invalid address {addr:?} (expected host:port, e.g. \"smtp.example.org:587\")"),
                );
                ok = false;
                (String::new(), 0)
            }
        },
    };
    let from = r.from.take().unwrap_or_default();
    if !looks_like_address(&from) {
        e.push(
            if from.is_empty() {
                path.to_string()
            } else {
                key("from")
            },
            if from.is_empty() {
                "missing field `from` (required for kind \"email\")".to_string()
            } else {
                format!("invalid address {from:?}")
            },
        );
        ok = false;
    }
    let to = r.to.take().unwrap_or_default();
    if to.is_empty() {
        e.push(
            key("to"),
            "must list at least one address (required for kind \"email\")",
        );
        ok = false;
    }
    for (i, addr) in to.iter().enumerate() {
        if !looks_like_address(addr) {
            e.push(
                format!("{path}.to[{i}]"),
                format!("invalid address {addr:?}"),
            );
            ok = false;
        }
    }
    let tls = match r.tls.as_deref() {
        None | Some("starttls") => SmtpTls::StartTls,
        Some("tls") => SmtpTls::Implicit,
        Some("none") => SmtpTls::None,
        Some(other) => {
            e.push(
                key("tls"),
                format!("invalid tls {other:?} (expected \"starttls\", \"tls\" or \"none\")"),
            );
            ok = false;
            SmtpTls::StartTls
        }
    };
    let credentials = match (r.username.take(), r.password_file.take()) {
        (Some(u), Some(f)) => match read_secret(e, key("password_file"), base, f) {
            Some(s) => Some((u, s)),
            None => {
                ok = false;
                None
            }
        },
        (Some(_), None) => {
            e.push(key("username"), "needs password_file");
            ok = false;
            None
        }
        (None, Some(_)) => {
            e.push(key("password_file"), "needs username");
            ok = false;
            None
        }
        (None, None) => None,
    };
    let hello = r.hello.take().unwrap_or_else(|| hostname.to_string());
    if hello.is_empty() || hello.chars().any(|c| c.is_whitespace() || c.is_control()) {
        e.push(key("hello"), "must be a host name");
        ok = false;
    }
    ok.then_some(ReceiverSpec::Email(EmailSpec {
        host,
        port,
        from,
        to,
        credentials,
        tls,
        hello,
    }))
}

/// Splits `host:port` or `[v6]:port`.
fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// A plain `local@domain` address, without display names or angle brackets
/// (which would need quoting in SMTP commands).
fn looks_like_address(a: &str) -> bool {
    match a.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !a
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
        }
        None => false,
    }
}

fn build_tls(
    e: &mut Errors,
    path: &str,
    base: &Path,
    ca_file: Option<PathBuf>,
    insecure: Option<bool>,
) -> Option<TlsOptions> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut tls = TlsOptions {
        insecure_skip_verify: insecure.unwrap_or(false),
        ..TlsOptions::default()
    };
    if let Some(file) = ca_file {
        let file = resolve(base, file);
        let key = format!("{path}.tls_ca_file");
        let certs =
            match super::secret::read_limited(&file, super::secret::MAX_CERTIFICATE_FILE_BYTES) {
                Ok((bytes, _)) => CertificateDer::pem_slice_iter(&bytes)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|err| err.to_string()),
                Err(err) => Err(err.to_string()),
            };
        match certs {
            Ok(certs) if certs.is_empty() => {
                e.push(key, format!("no PEM certificate in {}", file.display()));
                return None;
            }
            Ok(certs) => tls.ca_certs = certs,
            Err(err) => {
                e.push(
                    key,
                    format!("cannot read certificates from {}: {err}", file.display()),
                );
                return None;
            }
        }
    }
    Some(tls)
}

fn build_window(e: &mut Errors, path: &str, m: RawMaintenance) -> Option<MaintenanceWindow> {
    if let Some(message) = m
        .name
        .as_deref()
        .and_then(super::validate::hidden_char_error)
    {
        e.push(format!("{path}.name"), message);
        return None;
    }
    let name = m.name.unwrap_or_else(|| path.to_string());
    let targets: Vec<Glob> = m
        .targets
        .unwrap_or_default()
        .into_iter()
        .map(Glob)
        .collect();
    let key = |k: &str| format!("{path}.{k}");
    let schedule = match (m.start, m.end, m.weekly, m.daily) {
        (Some(start), Some(end), None, None) => {
            if m.duration.is_some() {
                e.push(
                    key("duration"),
                    "not valid with start/end (use end, or weekly/daily with duration)",
                );
                return None;
            }
            let s = parse_time(e, key("start"), &start)?;
            let t = parse_time(e, key("end"), &end)?;
            if t <= s {
                e.push(key("end"), "must be after start");
                return None;
            }
            WindowSchedule::Once { start: s, end: t }
        }
        (Some(_), None, None, None) => {
            e.push(
                path,
                "missing field `end` (a one-off window needs start and end)",
            );
            return None;
        }
        (None, Some(_), None, None) => {
            e.push(
                path,
                "missing field `start` (a one-off window needs start and end)",
            );
            return None;
        }
        (None, None, Some(weekly), None) => {
            let Some((day, time)) = weekly.split_once(' ') else {
                e.push(
                    key("weekly"),
                    format!("invalid weekly start {weekly:?} (expected e.g. \"Sat 22:00\", UTC)"),
                );
                return None;
            };
            let weekday = match day.parse::<Weekday>() {
                Ok(d) => d,
                Err(_) => {
                    e.push(
                        key("weekly"),
                        format!(
                            "invalid weekly start {weekly:?} (expected e.g. \"Sat 22:00\", UTC)"
                        ),
                    );
                    return None;
                }
            };
            let at = parse_clock(e, key("weekly"), time)?;
            let duration = window_duration(e, path, m.duration, Duration::from_secs(7 * 86400))?;
            WindowSchedule::Weekly {
                weekday,
                at,
                duration,
            }
        }
        (None, None, None, Some(daily)) => {
            let at = parse_clock(e, key("daily"), &daily)?;
            let duration = window_duration(e, path, m.duration, Duration::from_secs(86400))?;
            WindowSchedule::Daily { at, duration }
        }
        (None, None, None, None) => {
            e.push(
                path,
                "needs start and end (one-off), or weekly or daily with duration (recurring)",
            );
            return None;
        }
        _ => {
            e.push(
                path,
                "use one of: start and end, weekly with duration, daily with duration",
            );
            return None;
        }
    };
    Some(MaintenanceWindow {
        name,
        targets,
        schedule,
    })
}

fn window_duration(
    e: &mut Errors,
    path: &str,
    d: Option<HumanDuration>,
    max: Duration,
) -> Option<Duration> {
    match d {
        None => {
            e.push(
                path,
                "missing field `duration` (required for a recurring window)",
            );
            None
        }
        Some(d) if d.get().is_zero() || d.get() > max => {
            e.push(
                format!("{path}.duration"),
                format!(
                    "must be greater than zero and at most {}",
                    HumanDuration(max)
                ),
            );
            None
        }
        Some(d) => Some(d.get()),
    }
}

fn parse_time(e: &mut Errors, key: String, text: &str) -> Option<DateTime<Utc>> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => {
            e.push(
                key,
                format!("invalid time {text:?} (expected RFC 3339, e.g. \"2026-12-05T22:00:00Z\")"),
            );
            None
        }
    }
}

fn parse_clock(e: &mut Errors, key: String, text: &str) -> Option<NaiveTime> {
    match NaiveTime::parse_from_str(text, "%H:%M") {
        Ok(t) => Some(t),
        Err(_) => {
            e.push(
                key,
                format!("invalid time of day {text:?} (expected HH:MM, UTC)"),
            );
            None
        }
    }
}

/// Parses and validates alerting tables from TOML text (other top-level
/// tables are ignored). TOML syntax errors come back with an empty key and
/// `line:col: ` before the message.
pub fn parse(text: &str, base_dir: &Path, hostname: &str) -> Result<AlertingConfig, Vec<KeyError>> {
    let raw: RawAlertingFile =
        toml::from_str(text).map_err(|e| vec![(String::new(), toml_message(text, &e))])?;
    validate(raw, base_dir, hostname)
}

/// A TOML error as `line:col: message`.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let at = e
        .span()
        .map(|s| {
            let before = &text[..s.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("{line}:{col}: ")
        })
        .unwrap_or_default();
    format!("{at}{}", e.message().trim_end())
}

/// What the alert commands (`test-alert`, `silence`) need from a file: the
/// state directory, the instance name and the alerting configuration. Other
/// tables are ignored; the daemon's loader validates the whole file.
#[derive(Debug, Clone)]
pub struct AlertingFile {
    /// `[agent] state_dir`, defaulted.
    pub state_dir: PathBuf,
    /// `[agent] instance`, defaulted to the host name.
    pub instance: String,
    /// The alerting tables.
    pub alerting: AlertingConfig,
}

/// Reads the alerting part of a configuration file. Errors are
/// `path: key: message` lines.
pub fn load_alerting_part(path: &Path) -> Result<AlertingFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read configuration: {e}", path.display()))?;
    let raw: RawAlertingFile = toml::from_str(&text)
        .map_err(|e| format!("{}:{}", path.display(), toml_message(&text, &e)))?;
    let base = path.parent().unwrap_or(Path::new(""));
    let state_dir = raw
        .agent
        .state_dir
        .clone()
        .map(|p| resolve(base, p))
        .unwrap_or_else(super::default_state_dir);
    let hostname = super::hostname();
    let instance = raw
        .agent
        .instance
        .clone()
        .unwrap_or_else(|| hostname.clone());
    let alerting = validate(raw, base, &hostname).map_err(|errors| {
        errors
            .iter()
            .map(|(k, m)| format!("{}: {k}: {m}", path.display()))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    Ok(AlertingFile {
        state_dir,
        instance,
        alerting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AlertingConfig, Vec<KeyError>> {
        let raw: RawAlertingFile =
            toml::from_str(text).map_err(|e| vec![(String::new(), e.message().to_string())])?;
        validate(raw, Path::new(""), "agent.example")
    }

    /// Checks that `text` is rejected with exactly one error `(key, message)`.
    fn check_err(text: &str, key: &str, message: &str) {
        let errors = parse(text).expect_err("config should be rejected");
        assert_eq!(
            errors,
            vec![(key.to_string(), message.to_string())],
            "{text}"
        );
    }

    #[test]
    fn empty_means_defaults_and_no_receivers() {
        let c = parse("").unwrap();
        assert_eq!(c, AlertingConfig::default());
        assert_eq!(c.max_backoff, Duration::from_secs(60));
        assert_eq!(c.repeat_interval, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(c.severity_for("owa"), "critical");
    }

    #[test]
    fn receivers_of_every_kind() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "k3y\n").unwrap();
        let s = secret.display();
        let text = format!(
            r#"
            [alerting]
            max_backoff = "30s"
            repeat_interval = "off"
            severity = {{ owa = "warning" }}
            [[receiver]]
            name = "hook"
            kind = "webhook"
            url = "http://127.0.0.1:1/hook"
            token_file = "{s}"
            [[receiver]]
            name = "am"
            kind = "alertmanager"
            url = "http://127.0.0.1:9093"
            [[receiver]]
            name = "pd"
            kind = "pagerduty"
            routing_key_file = "{s}"
            [[receiver]]
            name = "og"
            kind = "opsgenie"
            api_key_file = "{s}"
            [[receiver]]
            name = "sl"
            kind = "slack"
            url = "https://hooks.slack.invalid/services/x"
            [[receiver]]
            name = "tm"
            kind = "teams"
            url = "https://example.invalid/workflows/x"
            [[receiver]]
            name = "mail"
            kind = "email"
            smtp_address = "127.0.0.1:2525"
            from = "mailpulse@example.org"
            to = ["ops@example.org"]
            username = "u"
            password_file = "{s}"
            [[receiver]]
            name = "gf"
            kind = "grafana"
            url = "http://127.0.0.1:3000"
            token_file = "{s}"
            tags = ["soak"]
            [[route]]
            target = "owa*"
            receivers = ["pd", "sl"]
            continue = true
            "#
        );
        let c = parse(&text).unwrap();
        let kinds: Vec<&str> = c.receivers.iter().map(|r| r.kind()).collect();
        assert_eq!(
            kinds,
            [
                "webhook",
                "alertmanager",
                "pagerduty",
                "opsgenie",
                "slack",
                "teams",
                "email",
                "grafana"
            ]
        );
        assert_eq!(c.max_backoff, Duration::from_secs(30));
        assert_eq!(c.repeat_interval, None);
        assert_eq!(c.severity_for("owa"), "warning");
        assert_eq!(c.severity_for("imap"), "critical");
        let ReceiverSpec::PagerDuty(pd) = &c.receivers[2].spec else {
            panic!()
        };
        assert_eq!(pd.url.as_str(), DEFAULT_PAGERDUTY_URL);
        assert_eq!(pd.routing_key.expose(), "k3y");
        assert!(
            !format!("{c:?}").contains("k3y"),
            "secrets leak through Debug"
        );
        let ReceiverSpec::Email(mail) = &c.receivers[6].spec else {
            panic!()
        };
        assert_eq!((mail.host.as_str(), mail.port), ("127.0.0.1", 2525));
        assert_eq!(mail.tls, SmtpTls::StartTls);
        assert_eq!(mail.hello, "agent.example");
        assert!(c.routes[0].continue_matching);
    }

    #[test]
    fn errors_name_the_key() {
        check_err(
            "[[receiver]]\nname = \"x\"\nkind = \"pager\"",
            "receiver[0].kind",
            "unknown kind \"pager\" (expected one of: webhook, alertmanager, pagerduty, opsgenie, slack, teams, email, grafana)",
        );
        check_err(
            "[[receiver]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://h/\"\nsmtp_address = \"h:25\"",
            "receiver[0].smtp_address",
            "not valid for receiver kind \"webhook\"",
        );
        check_err(
            "[[receiver]]\nname = \"x\"\nkind = \"webhook\"",
            "receiver[0]",
            "missing field `url` (required for kind \"webhook\")",
        );
        check_err(
            "[[receiver]]\nname = \"x\"\nkind = \"pagerduty\"\nrouting_key_file = \"/nonexistent/key\"",
            "receiver[0].routing_key_file",
            "cannot read secret file /nonexistent/key: No such file or directory (os error 2)",
        );
        check_err(
            "[[receiver]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://h/\"\n[[receiver]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://h/\"",
            "receiver[1].name",
            "duplicate receiver name \"x\"",
        );
        check_err(
            "[[route]]\nreceivers = [\"nope\"]",
            "route[0].receivers[0]",
            "no receiver named \"nope\" (receivers: none)",
        );
        check_err(
            "[alerting]\nrepeat_interval = \"4 hours\"",
            "alerting.repeat_interval",
            "invalid duration \"4 hours\" (expected forms like \"250ms\", \"10s\", \"2m\", \"1h30m\"), or \"off\"",
        );
        check_err(
            "[alerting]\nseverity = { owa = \"high\" }",
            "alerting.severity.owa",
            "unknown severity \"high\" (expected one of: critical, error, warning, info)",
        );
        check_err(
            "[[maintenance]]\nweekly = \"Sat 22:00\"",
            "maintenance[0]",
            "missing field `duration` (required for a recurring window)",
        );
        check_err(
            "[[maintenance]]\nstart = \"2026-12-05T22:00:00Z\"\nend = \"2026-12-05T21:00:00Z\"",
            "maintenance[0].end",
            "must be after start",
        );
        // Issue 21: an invalid Slack or Teams URL was quoted whole, and the
        // URL is the secret.
        check_err(
            "[[receiver]]\nname = \"s\"\nkind = \"slack\"\nurl = \"hooks.example/services/T0/B0/s3cr3t-XyZ\"",
            "receiver[0].url",
            "invalid url: relative URL without a base (the URL is not quoted, it may hold a secret)",
        );
        check_err(
            "[[receiver]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"ftp://user:pw@h/x\"",
            "receiver[0].url",
            "invalid url with scheme \"ftp\" (expected an http:// or https:// URL with a host; the URL is not quoted, it may hold a secret)",
        );
        check_err(
            "[[receiver]]\nname = \"m\"\nkind = \"email\"\nsmtp_address = \"h\"\nfrom = \"a@b\"\nto = [\"c@d\"]",
            "receiver[0].smtp_address",
            "invalid address \"h\" (expected host:port, e.g. \"smtp.example.org:587\")",
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err =
            parse("[[receiver]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://h/\"\nulr = 1")
                .unwrap_err();
        assert!(err[0].1.contains("unknown field `ulr`"), "{err:?}");
    }
}
