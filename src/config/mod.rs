//! Configuration: the validated, immutable [`Config`] the agent runs on, and
//! [`load`], the only way to get one from a file ([`load_alerting`] reads
//! just what the alert commands need, the same way).
//!
//! Loading happens in two stages (`raw.rs` mirrors the TOML, `validate/`
//! checks it and fills defaults), once, before anything is bound or started.
//! Every error names the file, line, column and key path. Downstream code never
//! sees an `Option` that means "not set": defaults are applied here.

pub mod alerting;
pub mod duration;
pub mod net;
mod raw;
mod receivers;
pub mod secret;
pub mod slo;
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
/// State directory of a system service (incident history, alert outbox).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/mailpulse";

/// The state directory when `[agent] state_dir` is not set: systemd's
/// `$STATE_DIRECTORY` when it provides one, [`DEFAULT_STATE_DIR`] for root,
/// and `$XDG_STATE_HOME/mailpulse` (or `~/.local/state/mailpulse`) for anyone
/// else, so the agent started by hand as a normal user keeps its state too.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd may pass several, separated by colons; the first is ours.
        let dir = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        return PathBuf::from(dir);
    }
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(true);
    if root {
        return PathBuf::from(DEFAULT_STATE_DIR);
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")));
    match base {
        Some(b) => b.join("mailpulse"),
        None => PathBuf::from(DEFAULT_STATE_DIR),
    }
}
/// Default host collection interval.
pub const DEFAULT_HOST_INTERVAL: Duration = Duration::from_secs(15);

/// Default `agent.memory_trim`: how often unused code and heap pages go back.
pub const DEFAULT_MEMORY_TRIM: Duration = Duration::from_secs(600);
/// Default `agent.latency_buckets`: the upper bounds, in seconds, of the
/// classic probe latency histogram's buckets, 1 ms to 10 s. The histogram
/// counts successful probes, which end within their timeout (10 s unless
/// set), so a bound above it would always equal `+Inf`: a series for nothing.
pub const DEFAULT_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Most `agent.latency_buckets` accepted: each is one series per target.
pub const MAX_LATENCY_BUCKETS: usize = 40;
/// Default probe interval of a target.
pub const DEFAULT_TARGET_INTERVAL: Duration = Duration::from_secs(30);
/// Default probe timeout of a target (capped at its interval).
pub const DEFAULT_TARGET_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on an HTTP response body read by a probe.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Default number of redirects an HTTP probe follows.
pub const DEFAULT_MAX_REDIRECTS: u32 = 10;
/// Default mailbox an IMAP probe selects and a mail flow probe watches.
pub const DEFAULT_MAILBOX: &str = "INBOX";
/// The environment variable systemd sets to the directory of a unit's
/// credentials (`LoadCredential=`); `password_credential` names a file there,
/// and `${CREDENTIALS_DIRECTORY}` inside a `*_file` path expands to it.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this came from; `None` for the built-in default.
    pub source: Option<PathBuf>,
    /// `[agent]`
    pub agent: AgentConfig,
    /// `[host]`
    pub host: HostConfig,
    /// `[soak]`
    pub soak: SoakConfig,
    /// `[slowdown]`: the detector defaults every target starts from.
    pub slowdown: crate::detect::SlowdownSettings,
    /// `[[target]]`, in file order, names unique.
    pub targets: Vec<Target>,
    /// `[alerting]`, `[[receiver]]`, `[[route]]` and `[[maintenance]]`.
    pub alerting: alerting::AlertingConfig,
    /// `[[slo]]`: what a soak run must meet, in file order, names unique.
    pub slos: Vec<slo::Slo>,
    /// Problems that do not stop the agent (a secret file others can read),
    /// in file order; `check-config` prints them and `run` logs them.
    pub warnings: Vec<ConfigWarning>,
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
    /// How log lines are written; `run --log-format` overrides it.
    pub log_format: crate::service::logging::LogFormat,
    /// How often to give back unused code and heap pages
    /// (`service::trim`); `None` is off.
    pub memory_trim: Option<Duration>,
    /// Upper bounds (seconds, ascending, positive) of the classic probe
    /// latency histogram's buckets.
    pub latency_buckets: Vec<f64>,
    /// Export a latency histogram for every probe step, not only
    /// `phase="total"`.
    pub phase_histograms: bool,
    /// Protection of the metrics endpoint.
    pub web: WebConfig,
    /// The write API (`/api/v1/` writes).
    pub api: ApiConfig,
}

/// `[agent.api]`: who may write through the agent's HTTP API (`POST
/// /api/v1/...`). Off (no writes) while `write_users` is empty. Reads
/// follow `[agent.web]`, as `/metrics` does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ApiConfig {
    /// User name to bcrypt hash of the users who may write; names distinct
    /// from `[agent.web] basic_auth_users`.
    pub write_users: Vec<(String, String)>,
}

impl ApiConfig {
    /// Whether writes are enabled.
    pub fn writes_enabled(&self) -> bool {
        !self.write_users.is_empty()
    }
}

/// `[agent.web]`: TLS, basic authentication and client networks for the
/// metrics endpoint, in the spirit of the Prometheus exporters' web config.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    /// Serve HTTPS with this certificate, when set.
    pub tls: Option<WebTls>,
    /// User name to bcrypt hash (cost at most [`MAX_BCRYPT_COST`]); empty
    /// means no authentication.
    pub basic_auth_users: Vec<(String, String)>,
    /// Client networks allowed to connect; empty means everyone.
    pub allowed_networks: Vec<net::IpNet>,
    /// Connections the listener keeps open at most (fewer when the
    /// descriptor limit is low: `metrics::server` keeps a reserve).
    pub max_connections: usize,
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig {
            tls: None,
            basic_auth_users: Vec::new(),
            allowed_networks: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Default of `[agent.web] max_connections`: a Prometheus server or two
/// needs one connection each per scrape, so 256 leaves room for many
/// scrapers while a flood of connections stays small (a few MiB of buffers).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Largest accepted `[agent.web] max_connections`.
pub const MAX_CONNECTIONS_LIMIT: usize = 65_536;
/// Highest bcrypt cost `basic_auth_users` accepts. One check at cost 14
/// takes about a second of a core (release build; each step doubles it):
/// the first scrape with new credentials still answers within Prometheus's
/// default 10 s timeout while a few checks queue, and a higher cost buys
/// little against guessing that the per-client failure limit does not
/// already give. At cost 31 one check takes days.
pub const MAX_BCRYPT_COST: u32 = 14;
/// Lowest bcrypt cost there is (bcrypt refuses anything below).
pub const MIN_BCRYPT_COST: u32 = 4;

/// The metrics endpoint's TLS identity, already read and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct WebTls {
    /// Server certificate chain and key.
    pub identity: ClientIdentity,
    /// When set, clients must present a certificate signed by one of these.
    pub client_ca: Vec<CertificateDer<'static>>,
}

/// `[soak]`: soak-test runs (`mailpulse soak`).
#[derive(Debug, Clone, PartialEq)]
pub struct SoakConfig {
    /// How many runs the store keeps; the oldest go first.
    pub keep_runs: usize,
}

/// Default of `[soak] keep_runs`.
pub const DEFAULT_KEEP_RUNS: usize = 20;
/// Largest `[soak] keep_runs`.
pub const MAX_KEEP_RUNS: usize = 1000;

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
    /// How the slowdown detector judges this target (`[slowdown]` merged
    /// with the target's own `[target.slowdown]`).
    pub slowdown: crate::detect::SlowdownSettings,
    /// What to probe and how.
    pub spec: ProbeSpec,
}

impl Target {
    /// The probe kind of this target.
    pub fn kind(&self) -> crate::sample::ProbeKind {
        use crate::sample::ProbeKind;
        match self.spec {
            ProbeSpec::Http(_) => ProbeKind::Http,
            ProbeSpec::Tcp(_) => ProbeKind::Tcp,
            ProbeSpec::Smtp(_) => ProbeKind::Smtp,
            ProbeSpec::Imap(_) => ProbeKind::Imap,
            ProbeSpec::Pop3(_) => ProbeKind::Pop3,
            ProbeSpec::Mailflow(_) => ProbeKind::Mailflow,
        }
    }
}

/// Kind-specific settings of a target.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeSpec {
    /// `kind = "http"`
    Http(HttpSpec),
    /// `kind = "tcp"`
    Tcp(TcpSpec),
    /// `kind = "smtp"`
    Smtp(SmtpSpec),
    /// `kind = "imap"`
    Imap(ImapSpec),
    /// `kind = "pop3"`
    Pop3(Pop3Spec),
    /// `kind = "mailflow"`
    Mailflow(MailflowSpec),
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

/// A certificate chain and its private key (a probe's client identity, or
/// the metrics endpoint's server identity). Formatting never shows the key.
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
    /// NTLMv2 (`auth = "ntlm"`) from `username` (`DOMAIN\\user` or
    /// `user@domain`) and `password_file`, on one kept-alive connection.
    Ntlm {
        /// NT domain; empty when the user name carries none.
        domain: String,
        /// User name without the domain.
        username: String,
        /// Password.
        password: Secret,
    },
}

/// `kind = "http"` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSpec {
    /// The URL requested (http or https).
    pub url: url::Url,
    /// Request method.
    pub method: String,
    /// Extra request headers, in order. Like `auth`, they are sent only to
    /// the origin of `url` (any of them may carry a credential).
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
    /// Authentication, if any. It is sent only to the origin of `url`
    /// (scheme, host and port), never to where a redirect leads.
    pub auth: Option<HttpAuth>,
    /// `allow_plaintext_auth`: the user accepts that `auth` goes over plain
    /// HTTP to an `http://` url (without it such a target is refused).
    pub allow_plaintext_auth: bool,
    /// Address family.
    pub ip_family: IpFamily,
    /// TLS settings (used for https URLs).
    pub tls: TlsOptions,
}

/// A `host:port` address, as written in `address = "mail.example.org:587"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or literal address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How a mail or TCP probe uses TLS (`tls = "..."`).
///
/// The default follows the port: 465, 993 and 995 are implicit TLS (RFC 8314);
/// any other SMTP, IMAP or POP3 port *requires* STARTTLS, so a server that
/// stops offering it fails the probe instead of being silently probed in
/// plaintext. Plaintext must be asked for with `tls = "none"`. For `tcp` the
/// default is `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext only.
    None,
    /// Plaintext greeting, then STARTTLS (SMTP, IMAP) or STLS (POP3), required.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

impl TlsMode {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::StartTls => "starttls",
            TlsMode::Implicit => "implicit",
        }
    }

    /// The default for a mail protocol on `port`.
    pub fn default_for_mail_port(port: u16) -> TlsMode {
        match port {
            465 | 993 | 995 => TlsMode::Implicit,
            _ => TlsMode::StartTls,
        }
    }
}

/// A user name and password for a mail server.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    /// User name (login).
    pub username: String,
    /// Password, from `password_file` or `password_credential`.
    pub password: Secret,
}

/// The SASL mechanism an SMTP probe authenticates with (`auth = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpAuthMechanism {
    /// `AUTH PLAIN` with an initial response (RFC 4616).
    #[default]
    Plain,
    /// `AUTH LOGIN` (user name and password as two base64 challenges).
    Login,
}

/// How an IMAP probe authenticates (`auth = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImapAuthMechanism {
    /// The `LOGIN` command.
    #[default]
    Login,
    /// `AUTHENTICATE PLAIN` (with SASL-IR when the server offers it).
    Plain,
}

/// `kind = "tcp"` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TcpSpec {
    /// Where to connect.
    pub address: HostPort,
    /// `None` or `Implicit` (STARTTLS needs a protocol).
    pub tls: TlsMode,
    /// Address family.
    pub ip_family: IpFamily,
    /// TLS settings (used when `tls` is not `None`).
    pub tls_options: TlsOptions,
}

/// `kind = "smtp"` settings (also the submission half of `mailflow`).
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpSpec {
    /// Where to connect.
    pub address: HostPort,
    /// TLS mode.
    pub tls: TlsMode,
    /// Address family.
    pub ip_family: IpFamily,
    /// TLS settings.
    pub tls_options: TlsOptions,
    /// Name sent with `EHLO`; defaults to the host name.
    pub helo_name: String,
    /// Credentials for `AUTH`, if any.
    pub auth: Option<Credentials>,
    /// SASL mechanism for `AUTH`.
    pub mechanism: SmtpAuthMechanism,
    /// Envelope sender checked with `MAIL FROM` (no message is sent).
    pub mail_from: Option<String>,
    /// Recipient checked with `RCPT TO`; needs `mail_from`.
    pub rcpt_to: Option<String>,
}

/// `kind = "imap"` settings (also the fetching half of `mailflow`).
#[derive(Debug, Clone, PartialEq)]
pub struct ImapSpec {
    /// Where to connect.
    pub address: HostPort,
    /// TLS mode.
    pub tls: TlsMode,
    /// Address family.
    pub ip_family: IpFamily,
    /// TLS settings.
    pub tls_options: TlsOptions,
    /// Credentials; without them the probe ends after CAPABILITY/STARTTLS.
    pub auth: Option<Credentials>,
    /// How to log in.
    pub mechanism: ImapAuthMechanism,
    /// Mailbox selected after login.
    pub mailbox: String,
}

/// `kind = "pop3"` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Pop3Spec {
    /// Where to connect.
    pub address: HostPort,
    /// TLS mode.
    pub tls: TlsMode,
    /// Address family.
    pub ip_family: IpFamily,
    /// TLS settings.
    pub tls_options: TlsOptions,
    /// Credentials for `USER`/`PASS`; without them the probe ends after STLS.
    pub auth: Option<Credentials>,
}

/// `kind = "mailflow"` settings: an SMTP submission with `mail_from`,
/// `rcpt_to` and credentials set, and an IMAP session that can log in.
#[derive(Debug, Clone, PartialEq)]
pub struct MailflowSpec {
    /// The submission side (`smtp_address`, `smtp_tls`, ...).
    pub smtp: SmtpSpec,
    /// The mailbox side (`imap_address`, `imap_tls`, `mailbox`, ...).
    pub imap: ImapSpec,
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

/// A positioned problem that does not make the configuration invalid;
/// displayed like a [`ConfigError`].
pub type ConfigWarning = ConfigError;

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

/// The largest configuration file read: 10,000 targets take about 1.5 MiB.
/// (The file itself may be a pipe, as `--config <(generate)` gives; the
/// files it names may not.)
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    parse(&read_config(path)?, Some(path))
}

/// Reads a configuration file for the alert commands (`test-alert`,
/// `silence`): `[agent] state_dir` and `instance`, and the alerting tables,
/// validated as [`load`] validates them; the other tables are not read, so
/// a target being edited never stops a silence. Errors are located as
/// [`load`]'s are.
pub fn load_alerting(path: &Path) -> Result<alerting::AlertingFile, ConfigErrors> {
    let text = read_config(path)?;
    let base = path.parent().unwrap_or(Path::new(""));
    validate::parse_alerting(&text, Some(path), base, &hostname())
}

/// The text of the configuration file at `path`, or the error naming it.
fn read_config(path: &Path) -> Result<String, ConfigErrors> {
    let error = |message: String| {
        ConfigErrors(vec![ConfigError {
            file: Some(path.to_path_buf()),
            position: None,
            key: String::new(),
            message,
        }])
    };
    read_config_text(path)
        .map_err(|e| error(format!("cannot read configuration: {e}")))?
        .ok_or_else(|| {
            error(format!(
                "cannot read configuration: larger than {MAX_CONFIG_BYTES} bytes"
            ))
        })
}

/// The text of a configuration file, `None` when longer than [`MAX_CONFIG_BYTES`].
fn read_config_text(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Ok(None);
    }
    String::from_utf8(bytes).map(Some).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
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

/// Whether `ch` is a control character or an invisible formatting one
/// (bidirectional embeddings, overrides, isolates and marks, zero-width
/// characters, line and paragraph separators, the byte order mark): text
/// with one can read differently from what it is, so names refuse them and
/// terminal output escapes them.
pub fn is_hidden_char(ch: char) -> bool {
    ch.is_control()
        || matches!(
            ch,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
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
