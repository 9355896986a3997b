//! Configuration: the validated, immutable [`Config`] the agent runs on, and
//! [`load`], the only way to get one from a file.
//!
//! Loading happens in two stages (`raw.rs` mirrors the TOML, `validate.rs`
//! checks it and fills defaults), once, before anything is bound or started.
//! Every error names the file, line, column and key path. Downstream code never
//! sees an `Option` that means "not set": defaults are applied here.

pub mod duration;
mod raw;
pub mod secret;
pub mod slowdown;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use duration::HumanDuration;
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};
pub use secret::Secret;

/// Where the daemon looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/mailpulse/mailpulse.toml";
/// The metrics listener of the built-in default configuration.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9717";
/// Default state directory (incident history, alert outbox).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/mailpulse";
/// Default host collection interval.
pub const DEFAULT_HOST_INTERVAL: Duration = Duration::from_secs(15);
/// Default probe interval of a target.
pub const DEFAULT_TARGET_INTERVAL: Duration = Duration::from_secs(30);
/// Default probe timeout of a target (capped at its interval).
pub const DEFAULT_TARGET_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on an HTTP response body read by a probe.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Default number of redirects an HTTP probe follows.
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this came from; `None` for the built-in default.
    pub source: Option<PathBuf>,
    /// `[agent]`
    pub agent: AgentConfig,
    /// `[host]`
    pub host: HostConfig,
    /// `[[target]]`, in file order, names unique.
    pub targets: Vec<Target>,
}

/// `[agent]`: the daemon itself.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Address of the `/metrics` and `/healthz` listener.
    pub listen: SocketAddr,
    /// The `instance` this agent reports as; defaults to the host name.
    pub instance: String,
    /// Directory for durable state.
    pub state_dir: PathBuf,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing filter).
    pub log_level: String,
}

/// `[host]`: host load collection.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// Whether host metrics are collected at all.
    pub enabled: bool,
    /// How often host metrics are collected.
    pub interval: Duration,
    /// Process names whose CPU, memory and count are reported as groups.
    pub processes: Vec<String>,
    /// Mount-point prefixes to leave out of filesystem metrics.
    pub exclude_filesystems: Vec<String>,
    /// Interface names to leave out of network metrics.
    pub exclude_interfaces: Vec<String>,
    /// Root of the proc filesystem (tests point it at a fixture tree).
    pub proc_root: PathBuf,
}

/// One `[[target]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Unique name; the `target` label.
    pub name: String,
    /// Time between probe starts.
    pub interval: Duration,
    /// Deadline of one probe, at most `interval`.
    pub timeout: Duration,
    /// What to probe and how.
    pub spec: ProbeSpec,
}

impl Target {
    /// The probe kind of this target.
    pub fn kind(&self) -> crate::sample::ProbeKind {
        match self.spec {
            ProbeSpec::Http(_) => crate::sample::ProbeKind::Http,
        }
    }
}

/// Kind-specific settings of a target.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeSpec {
    /// `kind = "http"`
    Http(HttpSpec),
}

/// Which address family a probe may connect over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpFamily {
    /// Any address, in the resolver's order.
    #[default]
    Any,
    /// IPv4 addresses only.
    V4,
    /// IPv6 addresses only.
    V6,
}

impl IpFamily {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::Any => "any",
            IpFamily::V4 => "ipv4",
            IpFamily::V6 => "ipv6",
        }
    }
}

/// TLS settings of a probe, with certificate files already read and parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsOptions {
    /// Extra CA certificates trusted besides the system roots (from `tls_ca_file`).
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// Client certificate chain and key for mutual TLS (from `tls_cert_file`/`tls_key_file`).
    pub client_identity: Option<ClientIdentity>,
    /// Accept any certificate (expiry is still recorded).
    pub insecure_skip_verify: bool,
    /// Server name sent in SNI and verified, when it differs from the host.
    pub server_name: Option<String>,
}

/// A client certificate chain and its private key. Formatting never shows the key.
pub struct ClientIdentity {
    /// Certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key of the leaf.
    pub key: PrivateKeyDer<'static>,
    /// The key file, for messages.
    pub key_path: PathBuf,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            key_path: self.key_path.clone(),
        }
    }
}

impl PartialEq for ClientIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain && self.key.secret_der() == other.key.secret_der()
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClientIdentity({} certificates, key from {})",
            self.chain.len(),
            self.key_path.display()
        )
    }
}

/// An accepted range of HTTP status codes, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    /// Lowest accepted code.
    pub low: u16,
    /// Highest accepted code.
    pub high: u16,
}

impl StatusRange {
    /// Whether `code` is inside the range.
    pub fn contains(self, code: u16) -> bool {
        (self.low..=self.high).contains(&code)
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else if self.low.is_multiple_of(100) && self.high == self.low + 99 {
            write!(f, "{}xx", self.low / 100)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// A compiled regular expression that compares by its source text.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// HTTP authentication sent with each request.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpAuth {
    /// `Authorization: Basic` from `username` and `password_file`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// `Authorization: Bearer` from `bearer_token_file`.
    Bearer(Secret),
}

/// `kind = "http"` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSpec {
    /// The URL requested (http or https).
    pub url: url::Url,
    /// Request method.
    pub method: String,
    /// Extra request headers, in order.
    pub headers: Vec<(String, String)>,
    /// Request body, if any.
    pub body: Option<String>,
    /// Accepted status codes.
    pub expect_status: Vec<StatusRange>,
    /// The body must match this.
    pub body_regex: Option<Pattern>,
    /// The body must not match this.
    pub body_not_regex: Option<Pattern>,
    /// Redirects followed; 0 means a 3xx answer is judged as it is.
    pub max_redirects: u32,
    /// Bodies longer than this fail the probe.
    pub max_body_bytes: u64,
    /// Authentication, if any.
    pub auth: Option<HttpAuth>,
    /// Address family.
    pub ip_family: IpFamily,
    /// TLS settings (used for https URLs).
    pub tls: TlsOptions,
}

/// A configuration error with its position in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when there is one.
    pub file: Option<PathBuf>,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// Dotted key path such as `target[2].timeout`; empty for file-level errors.
    pub key: String,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some((line, col)) = self.position {
                write!(f, ":{line}:{col}")?;
            }
            f.write_str(": ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// All errors found in one file (validation reports every problem, not just the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: Some(path.to_path_buf()),
            position: None,
            key: String::new(),
            message: format!("cannot read configuration: {e}"),
        }])
    })?;
    parse(&text, Some(path))
}

/// Parses and validates configuration text; `path` is used for messages and
/// to resolve relative `*_file` paths (relative to the file's directory).
pub fn parse(text: &str, path: Option<&Path>) -> Result<Config, ConfigErrors> {
    validate::parse(text, path)
}

impl Config {
    /// The built-in configuration used when no file exists: host load only,
    /// metrics on [`DEFAULT_LISTEN`].
    pub fn builtin() -> Config {
        parse("", None).expect("the built-in configuration is valid")
    }

    /// Looks a target up by name.
    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }
}

/// The host name, as the default `instance`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| sysinfo::System::host_name().ok())
        .unwrap_or_else(|| "localhost".into())
}
