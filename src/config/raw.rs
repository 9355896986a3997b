//! The configuration exactly as the user wrote it: serde mirrors of the TOML
//! tables with `deny_unknown_fields`, every key optional where a default exists.
//!
//! Nothing outside `config/` sees these types; `validate/` turns them into
//! the typed [`crate::config::Config`]. Targets and receivers are one flat
//! table for every kind (not a serde-tagged enum) so that unknown keys are
//! still rejected with their position; which keys a kind accepts is checked
//! during validation. [`RawConfig`] is the whole file; [`RawAlertingFile`]
//! the part the alert commands read (other tables are ignored, not refused).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::duration::HumanDuration;

/// The names of those of `$table`'s `Option` fields that are set, in the
/// order given: the kind-specific keys a flat table set, for the "not valid
/// for kind" check.
macro_rules! keys_set {
    ($table:expr; $($field:ident),* $(,)?) => {{
        let mut keys = Vec::new();
        $(if $table.$field.is_some() { keys.push(stringify!($field)); })*
        keys
    }};
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub agent: RawAgent,
    #[serde(default)]
    pub host: RawHost,
    #[serde(default)]
    pub soak: RawSoak,
    pub slowdown: Option<super::slowdown::RawSlowdown>,
    #[serde(default, rename = "target")]
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub alerting: RawAlerting,
    #[serde(default, rename = "receiver")]
    pub receivers: Vec<RawReceiver>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub maintenance: Vec<RawMaintenance>,
    #[serde(default, rename = "window")]
    pub windows: Vec<RawWindow>,
    #[serde(default, rename = "slo")]
    pub slos: Vec<RawSlo>,
}

/// `[agent]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub listen: Option<String>,
    pub instance: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    pub memory_trim: Option<HumanDuration>,
    pub latency_buckets: Option<Vec<f64>>,
    pub phase_histograms: Option<bool>,
    pub web: Option<RawWeb>,
    pub api: Option<RawApi>,
}

/// `[agent.api]`: the agent's write API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub write_users: Option<BTreeMap<String, String>>,
}

/// `[agent.web]`: protection of the metrics endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_client_ca_file: Option<PathBuf>,
    pub basic_auth_users: Option<BTreeMap<String, String>>,
    pub allowed_networks: Option<Vec<String>>,
    pub max_connections: Option<u64>,
}

/// `[soak]`: soak-test runs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSoak {
    pub keep_runs: Option<i64>,
}

/// `[host]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub enabled: Option<bool>,
    pub interval: Option<HumanDuration>,
    pub processes: Option<Vec<String>>,
    pub exclude_filesystems: Option<Vec<String>>,
    pub exclude_interfaces: Option<Vec<String>>,
    pub proc_root: Option<PathBuf>,
}

/// One expected status: a code (`200`) or a class (`"2xx"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawStatus {
    Code(i64),
    Class(String),
}

/// `[[target]]`, the union of every kind's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub interval: Option<HumanDuration>,
    pub timeout: Option<HumanDuration>,
    pub slowdown: Option<super::slowdown::RawSlowdown>,

    // http
    pub url: Option<String>,
    pub method: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub body: Option<String>,
    pub expect_status: Option<Vec<RawStatus>>,
    pub body_regex: Option<String>,
    pub body_not_regex: Option<String>,
    pub follow_redirects: Option<bool>,
    pub max_redirects: Option<u32>,
    pub max_body_bytes: Option<u64>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_credential: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub auth: Option<String>,
    pub allow_plaintext_auth: Option<bool>,

    // tcp, smtp, imap, pop3
    pub address: Option<String>,
    pub tls: Option<String>,
    // smtp, mailflow
    pub helo_name: Option<String>,
    pub mail_from: Option<String>,
    pub rcpt_to: Option<String>,
    // imap, mailflow
    pub mailbox: Option<String>,
    // mailflow
    pub smtp_address: Option<String>,
    pub smtp_tls: Option<String>,
    pub imap_address: Option<String>,
    pub imap_tls: Option<String>,

    // connection options shared by kinds
    pub ip_family: Option<String>,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_insecure_skip_verify: Option<bool>,
    pub tls_server_name: Option<String>,
}

impl RawTarget {
    /// The keys this table set, by name, for the per-kind "key not valid here" check.
    pub fn keys_set(&self) -> Vec<&'static str> {
        keys_set!(
            self;
            url,
            method,
            headers,
            body,
            expect_status,
            body_regex,
            body_not_regex,
            follow_redirects,
            max_redirects,
            max_body_bytes,
            username,
            password_file,
            password_credential,
            bearer_token_file,
            auth,
            allow_plaintext_auth,
            address,
            tls,
            helo_name,
            mail_from,
            rcpt_to,
            mailbox,
            smtp_address,
            smtp_tls,
            imap_address,
            imap_tls,
            ip_family,
            tls_ca_file,
            tls_cert_file,
            tls_key_file,
            tls_insecure_skip_verify,
            tls_server_name
        )
    }
}

/// The alerting tables of a configuration file. Unknown top-level tables are
/// ignored here (the main loader rejects them), so this can also read just the
/// alerting part of a full file.
#[derive(Debug, Default, Deserialize)]
pub struct RawAlertingFile {
    /// `[agent]`, only the keys alert commands need.
    #[serde(default)]
    pub agent: RawAgentPart,
    /// `[alerting]`
    #[serde(default)]
    pub alerting: RawAlerting,
    /// `[[receiver]]`
    #[serde(default, rename = "receiver")]
    pub receivers: Vec<RawReceiver>,
    /// `[[route]]`
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
    /// `[[maintenance]]`
    #[serde(default)]
    pub maintenance: Vec<RawMaintenance>,
    /// `[[window]]`
    #[serde(default, rename = "window")]
    pub windows: Vec<RawWindow>,
    /// `[[target]]`, read as any TOML (for the names only): a target being
    /// edited never stops an alert command.
    #[serde(default, rename = "target")]
    pub targets: Option<toml::Value>,
}

/// The `[agent]` keys the alert commands read (`state_dir`, `instance`); the
/// rest of the table is the main loader's.
#[derive(Debug, Default, Deserialize)]
pub struct RawAgentPart {
    /// Directory of the state store.
    pub state_dir: Option<PathBuf>,
    /// The instance name alerts carry.
    pub instance: Option<String>,
}

/// `[alerting]`: delivery behaviour shared by every receiver.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerting {
    /// Cap on the retry delay (default 60s).
    pub max_backoff: Option<HumanDuration>,
    /// Give up on a notification this old (default 24h).
    pub max_age: Option<HumanDuration>,
    /// Reminder interval while an incident stays open, or `"off"` (default 4h).
    pub repeat_interval: Option<String>,
    /// Link to this agent or its dashboard, sent as `externalURL`/`generatorURL`.
    pub external_url: Option<String>,
    /// Severity of targets not listed in `severity` (default "critical").
    pub default_severity: Option<String>,
    /// Per-target severity: `severity = { owa = "warning" }`.
    pub severity: Option<BTreeMap<String, String>>,
}

/// `[[receiver]]`, the union of every kind's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    /// Unique name, used by routes and `test-alert --receiver`.
    pub name: Option<String>,
    /// `webhook`, `alertmanager`, `pagerduty`, `opsgenie`, `slack`, `teams`, `email`, `grafana`.
    pub kind: Option<String>,
    /// Per-request timeout (default 10s).
    pub timeout: Option<HumanDuration>,
    /// Whether recoveries are sent (default true).
    pub send_resolved: Option<bool>,

    // HTTP receivers
    /// Endpoint or base URL.
    pub url: Option<String>,
    /// File holding the URL, for Slack and Teams whose URL is the secret.
    pub url_file: Option<PathBuf>,
    /// Bearer token (webhook, alertmanager, grafana).
    pub token_file: Option<PathBuf>,
    /// PagerDuty integration key.
    pub routing_key_file: Option<PathBuf>,
    /// Opsgenie (or JSM) API key.
    pub api_key_file: Option<PathBuf>,
    /// Extra CA certificates for the receiver's TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// Accept any TLS certificate.
    pub tls_insecure_skip_verify: Option<bool>,
    /// HTTP receivers: the proxy every request goes through.
    pub proxy_url: Option<String>,
    /// Alertmanager: re-post interval of firing alerts (default 1m).
    pub resend_interval: Option<HumanDuration>,
    /// Grafana: dashboard of the annotation (else an organisation annotation).
    pub dashboard_uid: Option<String>,
    /// Grafana: panel of the annotation.
    pub panel_id: Option<i64>,
    /// Grafana and Opsgenie: extra tags.
    pub tags: Option<Vec<String>>,

    // email
    /// SMTP submission server, `host:port`.
    pub smtp_address: Option<String>,
    /// Sender address.
    pub from: Option<String>,
    /// Recipient addresses.
    pub to: Option<Vec<String>>,
    /// SMTP (and webhook basic auth) user name.
    pub username: Option<String>,
    /// SMTP (and webhook basic auth) password.
    pub password_file: Option<PathBuf>,
    /// `starttls` (default), `tls` (implicit, port 465) or `none`.
    pub tls: Option<String>,
    /// Name sent in EHLO (default: the host name).
    pub hello: Option<String>,
    /// SMTP AUTH mechanism: `plain`, `login` or `xoauth2` (default: PLAIN or
    /// LOGIN, as the server offers).
    pub auth: Option<String>,
}

impl RawReceiver {
    /// The kind-specific keys this table set.
    pub fn keys_set(&self) -> Vec<&'static str> {
        keys_set!(
            self;
            url,
            url_file,
            token_file,
            routing_key_file,
            api_key_file,
            tls_ca_file,
            tls_insecure_skip_verify,
            proxy_url,
            resend_interval,
            dashboard_uid,
            panel_id,
            tags,
            smtp_address,
            from,
            to,
            username,
            password_file,
            tls,
            hello,
            auth
        )
    }
}

/// `[[route]]`: which receivers an alert goes to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Target name pattern (`*` and `?` wildcards); default any.
    pub target: Option<String>,
    /// Probe kind (`http`, `smtp`, ...); default any.
    pub kind: Option<String>,
    /// Incident kind (`slow` or `down`); default any.
    pub incident: Option<String>,
    /// Severity; default any.
    pub severity: Option<String>,
    /// What is routed: `incident` or `window_summary`; default both.
    pub event: Option<String>,
    /// Receivers, by name.
    pub receivers: Option<Vec<String>>,
    /// Keep matching later routes after this one matched (default false).
    #[serde(rename = "continue")]
    pub continue_matching: Option<bool>,
}

/// `[[maintenance]]`: a window in which paging is held.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    /// A name for messages and `silence list`.
    pub name: Option<String>,
    /// Target name patterns; default every target.
    pub targets: Option<Vec<String>>,
    /// One-off window start, RFC 3339 or local `YYYY-MM-DDTHH:MM[:SS]`.
    pub start: Option<String>,
    /// One-off window end, RFC 3339 or local `YYYY-MM-DDTHH:MM[:SS]`.
    pub end: Option<String>,
    /// Recurring weekly start, `"Sat 22:00"` (local).
    pub weekly: Option<String>,
    /// Recurring daily start, `"02:00"` (local).
    pub daily: Option<String>,
    /// Length of a recurring window.
    pub duration: Option<HumanDuration>,
    /// IANA time zone of local times (`"Europe/London"`); default UTC.
    pub time_zone: Option<String>,
}

/// `[[window]]`: a planned change window (one-off or recurring, with the
/// schedule keys of `[[maintenance]]`), which holds expected trouble and
/// pages what goes beyond its tolerance.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// Its name (required; unique among `[[window]]`s).
    pub name: Option<String>,
    /// Target name patterns; default every target.
    pub targets: Option<Vec<String>>,
    /// One-off start, RFC 3339 or local `YYYY-MM-DDTHH:MM[:SS]`.
    pub start: Option<String>,
    /// One-off end, RFC 3339 or local `YYYY-MM-DDTHH:MM[:SS]`.
    pub end: Option<String>,
    /// Recurring weekly start, `"Sat 22:00"` (local).
    pub weekly: Option<String>,
    /// Recurring daily start, `"02:00"` (local).
    pub daily: Option<String>,
    /// Length of a recurring window.
    pub duration: Option<HumanDuration>,
    /// IANA time zone of local times; default UTC.
    pub time_zone: Option<String>,
    /// Latency at or above this many times the baseline pages at once.
    pub tolerance: Option<f64>,
    /// Down for longer than this pages at once.
    pub max_down: Option<HumanDuration>,
    /// Open for longer than this pages at once.
    pub max_incident: Option<HumanDuration>,
    /// What the window is for, shown in `window list` and its summary.
    pub note: Option<String>,
}

/// `[[slo]]`: one objective of a soak run.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    /// Its name in the report.
    pub name: Option<String>,
    /// Target name patterns; default every target.
    pub targets: Option<Vec<String>>,
    /// Phase name patterns; default every phase.
    pub phases: Option<Vec<String>>,
    /// `"p95 < 1s"`.
    pub latency: Option<String>,
    /// The step a latency objective measures; default `total`.
    pub step: Option<String>,
    /// `">= 99.9%"`.
    pub success: Option<String>,
    /// The longest incident allowed.
    pub max_incident: Option<HumanDuration>,
}
