//! The configuration exactly as the user wrote it: serde mirrors of the TOML
//! tables with `deny_unknown_fields`, every key optional where a default exists.
//!
//! Nothing outside `config/` sees these types; `validate.rs` turns them into
//! the typed [`crate::config::Config`]. Targets are one flat table for every
//! kind (not a serde-tagged enum) so that unknown keys are still rejected with
//! their position; which keys a kind accepts is checked during validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::duration::HumanDuration;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub agent: RawAgent,
    #[serde(default)]
    pub host: RawHost,
    pub slowdown: Option<super::slowdown::RawSlowdown>,
    #[serde(default, rename = "target")]
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub alerting: super::alerting::RawAlerting,
    #[serde(default, rename = "receiver")]
    pub receivers: Vec<super::alerting::RawReceiver>,
    #[serde(default, rename = "route")]
    pub routes: Vec<super::alerting::RawRoute>,
    #[serde(default)]
    pub maintenance: Vec<super::alerting::RawMaintenance>,
}

/// `[agent]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub listen: Option<String>,
    pub instance: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub log_level: Option<String>,
    pub memory_trim: Option<HumanDuration>,
    pub web: Option<RawWeb>,
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
        let mut keys = Vec::new();
        macro_rules! check {
            ($($field:ident),*) => {
                $(if self.$field.is_some() { keys.push(stringify!($field)); })*
            };
        }
        check!(
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
        );
        keys
    }
}
