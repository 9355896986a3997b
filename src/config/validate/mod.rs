//! Turns configuration text into a validated [`Config`]: parse, deserialize
//! into the raw mirror, then check every key and fill defaults.
//!
//! Every problem found is reported (not only the first), each with the file,
//! line, column and key path it concerns. Positions come from the parser's
//! spans; errors found after deserialization look their key path up in the
//! parsed document.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::raw::{RawConfig, RawStatus, RawTarget, RawWeb};
use super::*;

/// One step of a key path.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A key path such as `target[2].timeout`.
#[derive(Debug, Clone, Default)]
struct KeyPath(Vec<Seg>);

impl KeyPath {
    fn key(&self, k: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Collects errors and resolves positions against the parsed document.
struct Checker<'a> {
    text: &'a str,
    file: Option<PathBuf>,
    doc: Option<Spanned<DeTable<'a>>>,
    errors: Vec<ConfigError>,
    /// Problems that do not stop the agent (a secret file others can read).
    warnings: Vec<ConfigWarning>,
}

impl<'a> Checker<'a> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        (line, col)
    }

    /// The span of the value at `path`, or of the nearest existing parent.
    fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut best = None;
        let mut current: Option<&DeValue<'a>> = None;
        let mut table: Option<&DeTable<'a>> = Some(doc.get_ref());
        for seg in &path.0 {
            match seg {
                Seg::Key(k) => {
                    let t = table.take().or(match current {
                        Some(DeValue::Table(t)) => Some(t),
                        _ => None,
                    })?;
                    let (key, value) = t.iter().find(|(key, _)| key.get_ref().as_ref() == k)?;
                    // Point at the value where there is one to point at, else at the key.
                    best = Some(if value.span().is_empty() {
                        key.span()
                    } else {
                        value.span()
                    });
                    current = Some(value.get_ref());
                }
                Seg::Index(i) => {
                    let DeValue::Array(items) = current? else {
                        return best;
                    };
                    let item = items.get(*i)?;
                    best = Some(item.span());
                    current = Some(item.get_ref());
                }
            }
            table = None;
        }
        best
    }

    fn error_at(&mut self, path: &KeyPath, message: impl Into<String>) {
        let error = self.located(path, message.into());
        self.errors.push(error);
    }

    fn warn_at(&mut self, path: &KeyPath, message: impl Into<String>) {
        let warning = self.located(path, message.into());
        self.warnings.push(warning);
    }

    fn located(&self, path: &KeyPath, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            position: self.span_of(path).map(|s| self.position(s.start)),
            key: path.to_string(),
            message,
        }
    }

    fn finish<T>(mut self, value: T) -> Result<T, ConfigErrors> {
        // Report in file order, so the first line printed is the first to fix.
        self.errors
            .sort_by_key(|e| e.position.unwrap_or((usize::MAX, usize::MAX)));
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

pub(super) fn parse(text: &str, path: Option<&Path>) -> Result<Config, ConfigErrors> {
    let mut checker = Checker {
        text,
        file: path.map(Path::to_path_buf),
        doc: None,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let position = e.span().map(|s| checker.position(s.start));
            checker.errors.push(ConfigError {
                file: checker.file.clone(),
                position,
                key: String::new(),
                message: format!("invalid TOML: {}", e.message().trim_end()),
            });
            return checker.finish(unreachable_config());
        }
    };
    checker.doc = Some(doc.clone());
    let deserializer = toml::de::Deserializer::from(doc);
    let raw: RawConfig = match serde_path_to_error::deserialize(deserializer) {
        Ok(raw) => raw,
        Err(e) => {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().trim_end().to_string();
            let position = inner.span().map(|s| checker.position(s.start));
            checker.errors.push(ConfigError {
                file: checker.file.clone(),
                position,
                key: if key == "." { String::new() } else { key },
                message,
            });
            return checker.finish(unreachable_config());
        }
    };
    let base_dir = path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut config = build(&mut checker, raw, &base_dir, path);
    checker
        .warnings
        .sort_by_key(|w| w.position.unwrap_or((usize::MAX, usize::MAX)));
    config.warnings = std::mem::take(&mut checker.warnings);
    checker.finish(config)
}

/// The error for a name (or other identifier) holding a control or
/// invisible formatting character ([`is_hidden_char`]), naming the first
/// one by code point; `None` for a clean name.
pub(super) fn hidden_char_error(text: &str) -> Option<String> {
    text.chars().find(|ch| is_hidden_char(*ch)).map(|ch| {
        format!(
            "must not contain U+{:04X} (a control, bidirectional or invisible formatting character)",
            u32::from(ch)
        )
    })
}

/// A placeholder returned together with errors; never used.
fn unreachable_config() -> Config {
    Config {
        source: None,
        agent: AgentConfig {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            instance: String::new(),
            state_dir: PathBuf::new(),
            log_level: String::new(),
            memory_trim: Some(DEFAULT_MEMORY_TRIM),
            web: WebConfig::default(),
        },
        host: HostConfig {
            enabled: false,
            interval: DEFAULT_HOST_INTERVAL,
            processes: Vec::new(),
            exclude_filesystems: Vec::new(),
            exclude_interfaces: Vec::new(),
            proc_root: PathBuf::new(),
        },
        slowdown: crate::detect::SlowdownSettings::default(),
        targets: Vec::new(),
        alerting: alerting::AlertingConfig::default(),
        warnings: Vec::new(),
    }
}

/// A key path written as text (`receiver[0].url`) as segments.
fn parse_key_path(text: &str) -> KeyPath {
    let mut path = KeyPath::default();
    for part in text.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            path = path.key(name);
        }
        while let Some(close) = rest.find(']') {
            if let Ok(n) = rest[1..close].parse::<usize>() {
                path = path.index(n);
            }
            rest = &rest[close + 1..];
        }
    }
    path
}

fn build(c: &mut Checker<'_>, raw: RawConfig, base: &Path, path: Option<&Path>) -> Config {
    let root = KeyPath::default();
    let agent_path = root.key("agent");
    let listen_text = raw.agent.listen.unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            c.error_at(
                &agent_path.key("listen"),
                format!("invalid listen address {listen_text:?} (expected host:port, e.g. \"127.0.0.1:9717\")"),
            );
            DEFAULT_LISTEN.parse().expect("valid default address")
        }
    };
    let instance = match raw.agent.instance {
        Some(i) if i.trim().is_empty() => {
            c.error_at(&agent_path.key("instance"), "must not be empty");
            i
        }
        Some(i) => {
            if let Some(message) = hidden_char_error(&i) {
                c.error_at(&agent_path.key("instance"), message);
            }
            i
        }
        None => hostname(),
    };
    let log_level = raw.agent.log_level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        c.error_at(
            &agent_path.key("log_level"),
            format!("invalid log level {log_level:?} (expected error, warn, info, debug or trace)"),
        );
    }
    let memory_trim = match raw.agent.memory_trim.map(HumanDuration::get) {
        None => Some(DEFAULT_MEMORY_TRIM),
        Some(d) if d.is_zero() => None,
        Some(d) if d < Duration::from_secs(60) => {
            c.error_at(
                &agent_path.key("memory_trim"),
                "must be 0s (off) or at least 1m",
            );
            None
        }
        Some(d) => Some(d),
    };
    let web = build_web(c, &agent_path.key("web"), base, raw.agent.web);
    let agent = AgentConfig {
        listen,
        instance,
        state_dir: raw
            .agent
            .state_dir
            .map(|p| resolve(base, p))
            .unwrap_or_else(default_state_dir),
        log_level,
        memory_trim,
        web,
    };

    let host_path = root.key("host");
    let interval = raw
        .host
        .interval
        .map(HumanDuration::get)
        .unwrap_or(DEFAULT_HOST_INTERVAL);
    if interval < Duration::from_secs(1) {
        c.error_at(&host_path.key("interval"), "must be at least 1s");
    }
    let processes = raw.host.processes.unwrap_or_default();
    for (i, name) in processes.iter().enumerate() {
        if name.trim().is_empty() {
            c.error_at(&host_path.key("processes").index(i), "must not be empty");
        }
    }
    let host = HostConfig {
        enabled: raw.host.enabled.unwrap_or(true),
        interval,
        processes,
        exclude_filesystems: raw.host.exclude_filesystems.unwrap_or_default(),
        exclude_interfaces: raw.host.exclude_interfaces.unwrap_or_default(),
        proc_root: raw
            .host
            .proc_root
            .map(|p| resolve(base, p))
            .unwrap_or_else(|| PathBuf::from("/proc")),
    };

    let slowdown = match slowdown::resolve(raw.slowdown.as_ref(), None) {
        Ok(s) => s,
        Err((key, message)) => {
            c.error_at(&key_path(&root, &key), message);
            crate::detect::SlowdownSettings::default()
        }
    };
    let alerting_raw = alerting::RawAlertingFile {
        agent: alerting::RawAgentPart::default(),
        alerting: raw.alerting,
        receivers: raw.receivers,
        routes: raw.routes,
        maintenance: raw.maintenance,
    };
    let (alerting, alerting_warnings) =
        alerting::validate_with_warnings(alerting_raw, base, &hostname());
    for (key, message) in alerting_warnings {
        c.warn_at(&parse_key_path(&key), message);
    }
    let alerting = match alerting {
        Ok(a) => a,
        Err(errors) => {
            for (key, message) in errors {
                c.error_at(&parse_key_path(&key), message);
            }
            alerting::AlertingConfig::default()
        }
    };
    let mut targets = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, t) in raw.targets.into_iter().enumerate() {
        let tp = root.key("target").index(i);
        if let Some(name) = &t.name {
            if let Some(first) = seen.get(name) {
                c.error_at(
                    &tp.key("name"),
                    format!("duplicate target name {name:?} (first used by target[{first}])"),
                );
            } else {
                seen.insert(name.clone(), i);
            }
        }
        if let Some(target) = build_target(c, &tp, t, base, raw.slowdown.as_ref()) {
            targets.push(target);
        }
    }

    for name in alerting.severity.keys() {
        if !targets.iter().any(|t: &Target| &t.name == name) && !seen.contains_key(name) {
            c.error_at(
                &root.key("alerting").key("severity").key(name),
                format!("no target named {name:?}"),
            );
        }
    }
    Config {
        source: path.map(Path::to_path_buf),
        agent,
        host,
        slowdown,
        targets,
        alerting,
        warnings: Vec::new(),
    }
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_relative() && !base.as_os_str().is_empty() {
        base.join(p)
    } else {
        p
    }
}

/// Keys each kind accepts, besides `name`, `kind`, `interval` and `timeout`.
const HTTP_KEYS: &[&str] = &[
    "url",
    "method",
    "headers",
    "body",
    "expect_status",
    "body_regex",
    "body_not_regex",
    "follow_redirects",
    "max_redirects",
    "max_body_bytes",
    "username",
    "password_file",
    "password_credential",
    "bearer_token_file",
    "auth",
    "allow_plaintext_auth",
    "ip_family",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_insecure_skip_verify",
    "tls_server_name",
];

/// `tcp` keys.
const TCP_KEYS: &[&str] = &[
    "address",
    "tls",
    "ip_family",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_insecure_skip_verify",
    "tls_server_name",
];

/// `smtp` keys.
const SMTP_KEYS: &[&str] = &[
    "address",
    "tls",
    "helo_name",
    "username",
    "password_file",
    "password_credential",
    "auth",
    "mail_from",
    "rcpt_to",
    "ip_family",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_insecure_skip_verify",
    "tls_server_name",
];

/// `imap` keys.
const IMAP_KEYS: &[&str] = &[
    "address",
    "tls",
    "username",
    "password_file",
    "password_credential",
    "auth",
    "mailbox",
    "ip_family",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_insecure_skip_verify",
    "tls_server_name",
];

/// `pop3` keys.
const POP3_KEYS: &[&str] = &[
    "address",
    "tls",
    "username",
    "password_file",
    "password_credential",
    "ip_family",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_insecure_skip_verify",
    "tls_server_name",
];

/// `mailflow` keys.
const MAILFLOW_KEYS: &[&str] = &[
    "smtp_address",
    "smtp_tls",
    "imap_address",
    "imap_tls",
    "helo_name",
    "username",
    "password_file",
    "password_credential",
    "auth",
    "mail_from",
    "rcpt_to",
    "mailbox",
    "ip_family",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_insecure_skip_verify",
    "tls_server_name",
];

/// Every kind, with the keys it accepts.
const KINDS: &[(&str, &[&str])] = &[
    ("http", HTTP_KEYS),
    ("tcp", TCP_KEYS),
    ("smtp", SMTP_KEYS),
    ("imap", IMAP_KEYS),
    ("pop3", POP3_KEYS),
    ("mailflow", MAILFLOW_KEYS),
];

fn build_target(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    mut t: RawTarget,
    base: &Path,
    global_slowdown: Option<&slowdown::RawSlowdown>,
) -> Option<Target> {
    let name = match &t.name {
        Some(n) if n.trim().is_empty() => {
            c.error_at(
                &tp.key("name"),
                "must be a non-empty name without control characters",
            );
            return None;
        }
        Some(n) => match hidden_char_error(n) {
            Some(message) => {
                c.error_at(&tp.key("name"), message);
                return None;
            }
            None => n.clone(),
        },
        None => {
            c.error_at(tp, "missing field `name`");
            return None;
        }
    };
    let kind = match t.kind.as_deref() {
        Some(k) => k,
        None => {
            c.error_at(tp, format!("missing field `kind` in target {name:?}"));
            return None;
        }
    };
    let Some((_, allowed)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        let known: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
        c.error_at(
            &tp.key("kind"),
            format!(
                "unknown kind {kind:?} (expected one of: {})",
                known.join(", ")
            ),
        );
        return None;
    };
    let mut misplaced = false;
    for key in t.keys_set() {
        if !allowed.contains(&key) {
            c.error_at(&tp.key(key), format!("not valid for kind {kind:?}"));
            misplaced = true;
        }
    }
    let interval = t
        .interval
        .map(HumanDuration::get)
        .unwrap_or(DEFAULT_TARGET_INTERVAL);
    if interval < Duration::from_millis(100) {
        c.error_at(&tp.key("interval"), "must be at least 100ms");
    }
    let timeout = match t.timeout {
        Some(d) => {
            if d.get().is_zero() {
                c.error_at(&tp.key("timeout"), "must be greater than zero");
            } else if d.get() > interval {
                c.error_at(
                    &tp.key("timeout"),
                    format!(
                        "{d} is longer than the interval ({})",
                        HumanDuration(interval)
                    ),
                );
            }
            d.get()
        }
        None => DEFAULT_TARGET_TIMEOUT.min(interval),
    };
    let slowdown = match slowdown::resolve(global_slowdown, t.slowdown.take().as_ref()) {
        Ok(s) => s,
        Err((key, message)) => {
            // Errors in the global table are reported once, by `build`.
            if let Some(rest) = key.strip_prefix("target.") {
                c.error_at(&key_path(tp, rest), message);
            }
            crate::detect::SlowdownSettings::default()
        }
    };
    let kind = kind.to_string();
    let kind = kind.as_str();
    let spec = match kind {
        "http" => ProbeSpec::Http(build_http(c, tp, t, base)?),
        "tcp" => ProbeSpec::Tcp(build_tcp(c, tp, t, base)?),
        "smtp" => ProbeSpec::Smtp(build_smtp(c, tp, t, base)?),
        "imap" => ProbeSpec::Imap(build_imap(c, tp, t, base)?),
        "pop3" => ProbeSpec::Pop3(build_pop3(c, tp, t, base)?),
        "mailflow" => ProbeSpec::Mailflow(build_mailflow(c, tp, t, base)?),
        _ => unreachable!("kinds are checked above"),
    };
    if misplaced {
        return None;
    }
    Some(Target {
        name,
        interval,
        timeout,
        slowdown,
        spec,
    })
}

/// `parent` extended by a dotted path such as `slowdown.factor`.
fn key_path(parent: &KeyPath, dotted: &str) -> KeyPath {
    dotted.split('.').fold(parent.clone(), |p, k| p.key(k))
}

fn read_secret(c: &mut Checker<'_>, path: &KeyPath, base: &Path, file: PathBuf) -> Option<Secret> {
    let file = match expand_credentials_dir(&file) {
        Ok(f) => f,
        Err(message) => {
            c.error_at(path, message);
            return None;
        }
    };
    let file = resolve(base, file);
    match Secret::from_file(&file) {
        Ok(s) => {
            if let Some(warning) = s.exposure_warning() {
                c.warn_at(path, warning);
            }
            Some(s)
        }
        Err(e) => {
            c.error_at(
                path,
                format!("cannot read secret file {}: {e}", file.display()),
            );
            None
        }
    }
}

/// Expands `${CREDENTIALS_DIRECTORY}` in a secret path (systemd `LoadCredential=`).
fn expand_credentials_dir(file: &Path) -> Result<PathBuf, String> {
    let pattern = format!("${{{CREDENTIALS_DIRECTORY}}}");
    let Some(text) = file.to_str().filter(|t| t.contains(&pattern)) else {
        return Ok(file.to_path_buf());
    };
    match std::env::var(CREDENTIALS_DIRECTORY) {
        Ok(dir) if !dir.is_empty() => Ok(PathBuf::from(text.replace(&pattern, &dir))),
        _ => Err(format!(
            "{pattern} is not set (systemd sets it for units with LoadCredential=)"
        )),
    }
}

/// The password of a target from `password_file` or `password_credential`
/// (a file in `$CREDENTIALS_DIRECTORY`). `Err` means an error was reported.
fn read_password(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    base: &Path,
    file: Option<PathBuf>,
    credential: Option<String>,
) -> Result<Option<Secret>, ()> {
    match (file, credential) {
        (Some(_), Some(_)) => {
            c.error_at(
                &tp.key("password_credential"),
                "cannot be combined with password_file",
            );
            Err(())
        }
        (Some(file), None) => read_secret(c, &tp.key("password_file"), base, file)
            .map(Some)
            .ok_or(()),
        (None, Some(name)) => {
            let key = tp.key("password_credential");
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                c.error_at(
                    &key,
                    format!("invalid credential name {name:?} (expected a file name such as \"imap-probe\")"),
                );
                return Err(());
            }
            let file = PathBuf::from(format!("${{{CREDENTIALS_DIRECTORY}}}/{name}"));
            read_secret(c, &key, base, file).map(Some).ok_or(())
        }
        (None, None) => Ok(None),
    }
}

fn build_http(c: &mut Checker<'_>, tp: &KeyPath, t: RawTarget, base: &Path) -> Option<HttpSpec> {
    let Some(url_text) = t.url else {
        c.error_at(tp, "missing field `url` (required for kind \"http\")");
        return None;
    };
    let url = match url::Url::parse(&url_text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        Ok(_) => {
            c.error_at(
                &tp.key("url"),
                format!(
                    "invalid url {url_text:?} (expected an http:// or https:// URL with a host)"
                ),
            );
            return None;
        }
        Err(e) => {
            c.error_at(&tp.key("url"), format!("invalid url {url_text:?}: {e}"));
            return None;
        }
    };
    let method = t
        .method
        .unwrap_or_else(|| "GET".into())
        .to_ascii_uppercase();
    if hyper::Method::from_bytes(method.as_bytes()).is_err() {
        c.error_at(&tp.key("method"), format!("invalid method {method:?}"));
    }
    let headers: Vec<(String, String)> = t.headers.unwrap_or_default().into_iter().collect();
    for (k, v) in &headers {
        if hyper::header::HeaderName::from_bytes(k.as_bytes()).is_err()
            || hyper::header::HeaderValue::from_str(v).is_err()
        {
            c.error_at(&tp.key("headers").key(k), "invalid header name or value");
        }
    }
    let expect_status = match t.expect_status {
        None => vec![StatusRange {
            low: 200,
            high: 299,
        }],
        Some(list) => {
            let sp = tp.key("expect_status");
            if list.is_empty() {
                c.error_at(&sp, "must list at least one status code or class");
            }
            list.into_iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let r = parse_status(&s);
                    if r.is_none() {
                        c.error_at(
                            &sp.index(i),
                            "expected a status code (100-599) or a class such as \"2xx\"",
                        );
                    }
                    r
                })
                .collect()
        }
    };
    let mut pattern = |key: &str, text: Option<String>| {
        text.and_then(|text| match regex::Regex::new(&text) {
            Ok(r) => Some(Pattern(r)),
            Err(e) => {
                let first = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                c.error_at(&tp.key(key), format!("invalid regular expression: {first}"));
                None
            }
        })
    };
    let body_regex = pattern("body_regex", t.body_regex);
    let body_not_regex = pattern("body_not_regex", t.body_not_regex);
    let follow = t.follow_redirects.unwrap_or(true);
    let max_redirects = if follow {
        t.max_redirects.unwrap_or(DEFAULT_MAX_REDIRECTS)
    } else {
        0
    };
    let max_body_bytes = t.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        c.error_at(&tp.key("max_body_bytes"), "must be greater than zero");
    }
    let password_key = if t.password_credential.is_some() {
        "password_credential"
    } else {
        "password_file"
    };
    let password = match read_password(c, tp, base, t.password_file, t.password_credential) {
        Ok(p) => p,
        Err(()) => return None,
    };
    let scheme = t.auth.as_deref().unwrap_or("basic");
    if !matches!(scheme, "basic" | "ntlm") {
        c.error_at(
            &tp.key("auth"),
            format!("invalid auth {scheme:?} for kind \"http\" (expected \"basic\" or \"ntlm\")"),
        );
    }
    let auth = match (t.username, password, t.bearer_token_file) {
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            c.error_at(
                &tp.key("bearer_token_file"),
                "cannot be combined with username/password_file",
            );
            None
        }
        (Some(username), Some(password), None) if scheme == "ntlm" => {
            let (domain, user) = split_ntlm_user(&username);
            Some(HttpAuth::Ntlm {
                domain,
                username: user,
                password,
            })
        }
        (Some(username), Some(password), None) => Some(HttpAuth::Basic { username, password }),
        (Some(_), None, None) => {
            c.error_at(
                &tp.key("username"),
                "needs password_file or password_credential",
            );
            None
        }
        (None, Some(_), None) => {
            c.error_at(&tp.key(password_key), "needs username");
            None
        }
        (None, None, Some(file)) => {
            read_secret(c, &tp.key("bearer_token_file"), base, file).map(HttpAuth::Bearer)
        }
        (None, None, None) => None,
    };
    if t.auth.is_some() && !matches!(auth, Some(HttpAuth::Basic { .. } | HttpAuth::Ntlm { .. })) {
        c.error_at(&tp.key("auth"), "needs username and password_file");
    }
    // As the mail probes: a credential never goes over plain text unless
    // the user says so for this target.
    let allow_plaintext_auth = t.allow_plaintext_auth.unwrap_or(false);
    if url.scheme() == "http" && !allow_plaintext_auth {
        let refused = match &auth {
            Some(HttpAuth::Bearer(_)) => Some(("bearer_token_file", "a token")),
            Some(_) => Some(("username", "a password")),
            None => None,
        };
        if let Some((key, what)) = refused {
            c.error_at(
                &tp.key(key),
                format!("{what} is never sent without TLS; use an https:// url, or set allow_plaintext_auth = true to send it over plain HTTP"),
            );
        }
    }
    let ip_family = parse_ip_family(c, tp, t.ip_family);
    let tls = build_tls(
        c,
        tp,
        base,
        TlsKeys {
            ca_file: t.tls_ca_file,
            cert_file: t.tls_cert_file,
            key_file: t.tls_key_file,
            insecure: t.tls_insecure_skip_verify,
            server_name: t.tls_server_name,
        },
    );
    Some(HttpSpec {
        url,
        method,
        headers,
        body: t.body,
        expect_status,
        body_regex,
        body_not_regex,
        max_redirects,
        max_body_bytes,
        auth,
        allow_plaintext_auth,
        ip_family,
        tls,
    })
}

fn parse_status(s: &RawStatus) -> Option<StatusRange> {
    match s {
        RawStatus::Code(code) if (100..=599).contains(code) => Some(StatusRange {
            low: *code as u16,
            high: *code as u16,
        }),
        RawStatus::Code(_) => None,
        RawStatus::Class(text) => {
            let t = text.to_ascii_lowercase();
            let digit = t.strip_suffix("xx")?.parse::<u16>().ok()?;
            (1..=5).contains(&digit).then_some(StatusRange {
                low: digit * 100,
                high: digit * 100 + 99,
            })
        }
    }
}

fn parse_ip_family(c: &mut Checker<'_>, tp: &KeyPath, text: Option<String>) -> IpFamily {
    match text.as_deref() {
        None | Some("any") => IpFamily::Any,
        Some("ipv4" | "ip4") => IpFamily::V4,
        Some("ipv6" | "ip6") => IpFamily::V6,
        Some(other) => {
            c.error_at(
                &tp.key("ip_family"),
                format!("invalid ip_family {other:?} (expected \"any\", \"ipv4\" or \"ipv6\")"),
            );
            IpFamily::Any
        }
    }
}

/// The raw TLS keys of a target.
struct TlsKeys {
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    insecure: Option<bool>,
    server_name: Option<String>,
}

/// Reads a PEM file of certificates; `None` (with an error recorded) when
/// unreadable or empty.
fn load_certs(
    c: &mut Checker<'_>,
    key: &KeyPath,
    base: &Path,
    file: PathBuf,
) -> Option<Vec<CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let file = resolve(base, file);
    let certs = match secret::read_limited(&file, secret::MAX_CERTIFICATE_FILE_BYTES) {
        Ok((bytes, _)) => CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match certs {
        Ok(certs) if certs.is_empty() => {
            c.error_at(key, format!("no PEM certificate in {}", file.display()));
            None
        }
        Ok(certs) => Some(certs),
        Err(e) => {
            c.error_at(
                key,
                format!("cannot read certificates from {}: {e}", file.display()),
            );
            None
        }
    }
}

/// Reads a certificate chain and its private key from PEM files.
fn load_identity(
    c: &mut Checker<'_>,
    parent: &KeyPath,
    (cert_key, key_key): (&str, &str),
    base: &Path,
    (cert, key): (PathBuf, PathBuf),
) -> Option<ClientIdentity> {
    use rustls_pki_types::pem::PemObject;
    let chain = load_certs(c, &parent.key(cert_key), base, cert);
    let key_path = resolve(base, key);
    let key = match secret::read_limited(&key_path, secret::MAX_KEY_FILE_BYTES) {
        Ok((bytes, _)) => PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let key = match key {
        Ok(key) => Some(key),
        Err(e) => {
            c.error_at(
                &parent.key(key_key),
                format!("cannot read a private key from {}: {e}", key_path.display()),
            );
            None
        }
    };
    Some(ClientIdentity {
        chain: chain?,
        key: key?,
        key_path,
    })
}

/// Both files of a pair, or an error naming the missing one.
fn pair(
    c: &mut Checker<'_>,
    parent: &KeyPath,
    (a_key, b_key): (&str, &str),
    a: Option<PathBuf>,
    b: Option<PathBuf>,
) -> Option<(PathBuf, PathBuf)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a, b)),
        (Some(_), None) => {
            c.error_at(&parent.key(a_key), format!("needs {b_key}"));
            None
        }
        (None, Some(_)) => {
            c.error_at(&parent.key(b_key), format!("needs {a_key}"));
            None
        }
        (None, None) => None,
    }
}

fn build_tls(c: &mut Checker<'_>, tp: &KeyPath, base: &Path, k: TlsKeys) -> TlsOptions {
    let ca_certs = k
        .ca_file
        .and_then(|f| load_certs(c, &tp.key("tls_ca_file"), base, f))
        .unwrap_or_default();
    let keys = ("tls_cert_file", "tls_key_file");
    let client_identity = pair(c, tp, keys, k.cert_file, k.key_file)
        .and_then(|files| load_identity(c, tp, keys, base, files));
    if let Some(name) = &k.server_name {
        if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
            c.error_at(
                &tp.key("tls_server_name"),
                format!("invalid server name {name:?}"),
            );
        }
    }
    TlsOptions {
        ca_certs,
        client_identity,
        insecure_skip_verify: k.insecure.unwrap_or(false),
        server_name: k.server_name,
    }
}

fn build_web(c: &mut Checker<'_>, wp: &KeyPath, base: &Path, raw: Option<RawWeb>) -> WebConfig {
    let Some(raw) = raw else {
        return WebConfig::default();
    };
    let keys = ("tls_cert_file", "tls_key_file");
    let tls = pair(c, wp, keys, raw.tls_cert_file, raw.tls_key_file)
        .and_then(|files| load_identity(c, wp, keys, base, files))
        .map(|identity| WebTls {
            identity,
            client_ca: Vec::new(),
        });
    let tls = match (tls, raw.tls_client_ca_file) {
        (Some(mut tls), Some(file)) => {
            tls.client_ca =
                load_certs(c, &wp.key("tls_client_ca_file"), base, file).unwrap_or_default();
            Some(tls)
        }
        (None, Some(_)) => {
            c.error_at(
                &wp.key("tls_client_ca_file"),
                "needs tls_cert_file and tls_key_file",
            );
            None
        }
        (tls, None) => tls,
    };
    let mut basic_auth_users = Vec::new();
    for (user, hash) in raw.basic_auth_users.unwrap_or_default() {
        if user.is_empty() || user.contains(':') {
            c.error_at(
                &wp.key("basic_auth_users"),
                format!("invalid user name {user:?}"),
            );
        } else {
            match hash.parse::<bcrypt::HashParts>().map(|h| h.get_cost()) {
                Err(_) => c.error_at(
                    &wp.key("basic_auth_users").key(&user),
                    "expected a bcrypt hash (\"$2b$...\"; make one with `mailpulse hash-password`)",
                ),
                // Every failed check costs this much CPU (and unknown users
                // are checked at the highest configured cost): bounded, so
                // a typo cannot make one check take days.
                Ok(cost) if cost > MAX_BCRYPT_COST => c.error_at(
                    &wp.key("basic_auth_users").key(&user),
                    format!("bcrypt cost {cost} is above the maximum {MAX_BCRYPT_COST}"),
                ),
                Ok(cost) if cost < MIN_BCRYPT_COST => c.error_at(
                    &wp.key("basic_auth_users").key(&user),
                    format!("bcrypt cost {cost} is below the minimum {MIN_BCRYPT_COST}"),
                ),
                Ok(_) => basic_auth_users.push((user, hash)),
            }
        }
    }
    let max_connections = match raw.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(n) if (1..=MAX_CONNECTIONS_LIMIT as u64).contains(&n) => n as usize,
        Some(_) => {
            c.error_at(
                &wp.key("max_connections"),
                format!("must be between 1 and {MAX_CONNECTIONS_LIMIT}"),
            );
            DEFAULT_MAX_CONNECTIONS
        }
    };
    let mut allowed_networks = Vec::new();
    for (i, text) in raw.allowed_networks.unwrap_or_default().iter().enumerate() {
        match text.parse::<net::IpNet>() {
            Ok(n) => allowed_networks.push(n),
            Err(e) => c.error_at(&wp.key("allowed_networks").index(i), e),
        }
    }
    WebConfig {
        tls,
        basic_auth_users,
        allowed_networks,
        max_connections,
    }
}

/// Splits `DOMAIN\\user` or `user@domain` into (domain, user) for NTLM.
fn split_ntlm_user(text: &str) -> (String, String) {
    if let Some((domain, user)) = text.split_once('\\') {
        (domain.to_string(), user.to_string())
    } else if let Some((user, domain)) = text.rsplit_once('@') {
        (domain.to_string(), user.to_string())
    } else {
        (String::new(), text.to_string())
    }
}

/// Parses `host:port` (`[v6]:port` for IPv6 literals); the port is required.
fn parse_host_port(text: &str) -> Option<HostPort> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (host, port)
    } else {
        let (host, port) = text.rsplit_once(':')?;
        if host.contains(':') {
            return None;
        }
        (host, port)
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_' | ':'));
    valid_host.then(|| HostPort {
        host: host.to_string(),
        port,
    })
}

/// The required `host:port` at `key`.
fn address(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    key: &str,
    kind: &str,
    text: Option<String>,
    example: &str,
) -> Option<HostPort> {
    let Some(text) = text else {
        c.error_at(
            tp,
            format!("missing field `{key}` (required for kind {kind:?})"),
        );
        return None;
    };
    let parsed = parse_host_port(&text);
    if parsed.is_none() {
        c.error_at(
            &tp.key(key),
            format!("invalid address {text:?} (expected host:port, e.g. \"{example}\")"),
        );
    }
    parsed
}

/// A TLS mode, defaulting from the port for mail protocols (see [`TlsMode`]).
fn tls_mode(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    key: &str,
    text: Option<String>,
    port: u16,
    mail: bool,
) -> TlsMode {
    let default = if mail {
        TlsMode::default_for_mail_port(port)
    } else {
        TlsMode::None
    };
    match text.as_deref() {
        None => default,
        Some("none") => TlsMode::None,
        Some("implicit") => TlsMode::Implicit,
        Some("starttls") if mail => TlsMode::StartTls,
        Some(other) => {
            let expected = if mail {
                "\"none\", \"starttls\" or \"implicit\""
            } else {
                "\"none\" or \"implicit\""
            };
            c.error_at(
                &tp.key(key),
                format!("invalid tls mode {other:?} (expected {expected})"),
            );
            default
        }
    }
}

/// Whether `text` can be sent inside one protocol line without breaking it.
fn is_single_line(text: &str) -> bool {
    !text.chars().any(|ch| matches!(ch, '\r' | '\n' | '\0'))
}

/// A mail address for `MAIL FROM`/`RCPT TO`: no spaces, brackets or line breaks.
fn mail_address(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    key: &str,
    text: Option<String>,
) -> Option<String> {
    let text = text?;
    let ok = !text.is_empty()
        && text.contains('@')
        && !text
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control() || matches!(ch, '<' | '>'));
    if !ok {
        c.error_at(
            &tp.key(key),
            format!("invalid mail address {text:?} (expected local@domain)"),
        );
        return None;
    }
    Some(text)
}

/// The credentials of a mail target: both `username` and a password, or neither.
/// `Err` means an error was reported.
fn mail_credentials(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    base: &Path,
    t: &mut RawTarget,
    tls: &[TlsMode],
) -> Result<Option<Credentials>, ()> {
    let password_key = if t.password_credential.is_some() {
        "password_credential"
    } else {
        "password_file"
    };
    let password = read_password(
        c,
        tp,
        base,
        t.password_file.take(),
        t.password_credential.take(),
    )?;
    let creds = match (t.username.take(), password) {
        (Some(username), Some(password)) => {
            if username.is_empty() || !is_single_line(&username) {
                c.error_at(
                    &tp.key("username"),
                    "must be non-empty, without line breaks or NUL",
                );
                return Err(());
            }
            if !is_single_line(password.expose()) {
                // Never show the value: only where it came from.
                c.error_at(
                    &tp.key(password_key),
                    format!(
                        "the secret in {} must be one line without NUL",
                        password.path().display()
                    ),
                );
                return Err(());
            }
            Credentials { username, password }
        }
        (Some(_), None) => {
            c.error_at(
                &tp.key("username"),
                "needs password_file or password_credential",
            );
            return Err(());
        }
        (None, Some(_)) => {
            c.error_at(&tp.key(password_key), "needs username");
            return Err(());
        }
        (None, None) => return Ok(None),
    };
    if tls.contains(&TlsMode::None) {
        c.error_at(
            &tp.key("username"),
            "a password is never sent without TLS; use tls = \"starttls\" or \"implicit\"",
        );
        return Err(());
    }
    Ok(Some(creds))
}

/// The raw TLS keys of a target, taken out of it.
fn tls_keys(t: &mut RawTarget) -> TlsKeys {
    TlsKeys {
        ca_file: t.tls_ca_file.take(),
        cert_file: t.tls_cert_file.take(),
        key_file: t.tls_key_file.take(),
        insecure: t.tls_insecure_skip_verify.take(),
        server_name: t.tls_server_name.take(),
    }
}

fn build_tcp(c: &mut Checker<'_>, tp: &KeyPath, mut t: RawTarget, base: &Path) -> Option<TcpSpec> {
    let address = address(
        c,
        tp,
        "address",
        "tcp",
        t.address.take(),
        "mail.example.org:25",
    )?;
    let tls = tls_mode(c, tp, "tls", t.tls.take(), address.port, false);
    let ip_family = parse_ip_family(c, tp, t.ip_family.take());
    let tls_options = build_tls(c, tp, base, tls_keys(&mut t));
    Some(TcpSpec {
        address,
        tls,
        ip_family,
        tls_options,
    })
}

/// Where and how a mail probe connects.
struct Endpoint {
    address: HostPort,
    tls: TlsMode,
    ip_family: IpFamily,
    tls_options: TlsOptions,
}

/// The parts of an SMTP spec shared by `smtp` and `mailflow`.
fn build_smtp_parts(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    t: &mut RawTarget,
    endpoint: Endpoint,
    auth: Option<Credentials>,
) -> Option<SmtpSpec> {
    let Endpoint {
        address,
        tls,
        ip_family,
        tls_options,
    } = endpoint;
    let helo_name = match t.helo_name.take() {
        Some(name) => {
            if name.is_empty() || name.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                c.error_at(&tp.key("helo_name"), format!("invalid helo_name {name:?}"));
            }
            name
        }
        None => hostname(),
    };
    let mechanism = match t.auth.take().as_deref() {
        None | Some("plain") => SmtpAuthMechanism::Plain,
        Some("login") => SmtpAuthMechanism::Login,
        Some(other) => {
            c.error_at(
                &tp.key("auth"),
                format!("invalid auth {other:?} (expected \"plain\" or \"login\")"),
            );
            SmtpAuthMechanism::Plain
        }
    };
    let mail_from = mail_address(c, tp, "mail_from", t.mail_from.take());
    let rcpt_to = mail_address(c, tp, "rcpt_to", t.rcpt_to.take());
    Some(SmtpSpec {
        address,
        tls,
        ip_family,
        tls_options,
        helo_name,
        auth,
        mechanism,
        mail_from,
        rcpt_to,
    })
}

fn build_smtp(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    mut t: RawTarget,
    base: &Path,
) -> Option<SmtpSpec> {
    let address = address(
        c,
        tp,
        "address",
        "smtp",
        t.address.take(),
        "mail.example.org:587",
    )?;
    let tls = tls_mode(c, tp, "tls", t.tls.take(), address.port, true);
    let auth = mail_credentials(c, tp, base, &mut t, &[tls]).ok()?;
    if t.auth.is_some() && auth.is_none() {
        c.error_at(&tp.key("auth"), "needs username and password_file");
    }
    if t.rcpt_to.is_some() && t.mail_from.is_none() {
        c.error_at(&tp.key("rcpt_to"), "needs mail_from");
    }
    let ip_family = parse_ip_family(c, tp, t.ip_family.take());
    let tls_options = build_tls(c, tp, base, tls_keys(&mut t));
    let endpoint = Endpoint {
        address,
        tls,
        ip_family,
        tls_options,
    };
    build_smtp_parts(c, tp, &mut t, endpoint, auth)
}

/// The IMAP `auth` key.
fn imap_mechanism(c: &mut Checker<'_>, tp: &KeyPath, text: Option<String>) -> ImapAuthMechanism {
    match text.as_deref() {
        None | Some("login") => ImapAuthMechanism::Login,
        Some("plain") => ImapAuthMechanism::Plain,
        Some(other) => {
            c.error_at(
                &tp.key("auth"),
                format!("invalid auth {other:?} (expected \"login\" or \"plain\")"),
            );
            ImapAuthMechanism::Login
        }
    }
}

/// The `mailbox` key.
fn mailbox(c: &mut Checker<'_>, tp: &KeyPath, text: Option<String>) -> String {
    let name = text.unwrap_or_else(|| DEFAULT_MAILBOX.into());
    if name.is_empty() || !is_single_line(&name) {
        c.error_at(
            &tp.key("mailbox"),
            "must be a non-empty mailbox name on one line",
        );
    }
    name
}

fn build_imap(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    mut t: RawTarget,
    base: &Path,
) -> Option<ImapSpec> {
    let address = address(
        c,
        tp,
        "address",
        "imap",
        t.address.take(),
        "mail.example.org:993",
    )?;
    let tls = tls_mode(c, tp, "tls", t.tls.take(), address.port, true);
    let auth = mail_credentials(c, tp, base, &mut t, &[tls]).ok()?;
    if auth.is_none() {
        if t.auth.is_some() {
            c.error_at(&tp.key("auth"), "needs username and password_file");
        }
        if t.mailbox.is_some() {
            c.error_at(&tp.key("mailbox"), "needs username and password_file");
        }
    }
    let mechanism = imap_mechanism(c, tp, t.auth.take());
    let mailbox = mailbox(c, tp, t.mailbox.take());
    let ip_family = parse_ip_family(c, tp, t.ip_family.take());
    let tls_options = build_tls(c, tp, base, tls_keys(&mut t));
    Some(ImapSpec {
        address,
        tls,
        ip_family,
        tls_options,
        auth,
        mechanism,
        mailbox,
    })
}

fn build_pop3(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    mut t: RawTarget,
    base: &Path,
) -> Option<Pop3Spec> {
    let address = address(
        c,
        tp,
        "address",
        "pop3",
        t.address.take(),
        "mail.example.org:995",
    )?;
    let tls = tls_mode(c, tp, "tls", t.tls.take(), address.port, true);
    let auth = mail_credentials(c, tp, base, &mut t, &[tls]).ok()?;
    let ip_family = parse_ip_family(c, tp, t.ip_family.take());
    let tls_options = build_tls(c, tp, base, tls_keys(&mut t));
    Some(Pop3Spec {
        address,
        tls,
        ip_family,
        tls_options,
        auth,
    })
}

fn build_mailflow(
    c: &mut Checker<'_>,
    tp: &KeyPath,
    mut t: RawTarget,
    base: &Path,
) -> Option<MailflowSpec> {
    let smtp_address = address(
        c,
        tp,
        "smtp_address",
        "mailflow",
        t.smtp_address.take(),
        "mail.example.org:587",
    );
    let imap_address = address(
        c,
        tp,
        "imap_address",
        "mailflow",
        t.imap_address.take(),
        "mail.example.org:993",
    );
    let (smtp_address, imap_address) = (smtp_address?, imap_address?);
    let smtp_tls = tls_mode(
        c,
        tp,
        "smtp_tls",
        t.smtp_tls.take(),
        smtp_address.port,
        true,
    );
    let imap_tls = tls_mode(
        c,
        tp,
        "imap_tls",
        t.imap_tls.take(),
        imap_address.port,
        true,
    );
    let Some(auth) = mail_credentials(c, tp, base, &mut t, &[smtp_tls, imap_tls]).ok()? else {
        c.error_at(
            tp,
            "missing field `username` (kind \"mailflow\" needs username and password_file)",
        );
        return None;
    };
    // The probe account usually mails itself: both envelope addresses default
    // to the user name when it is an address.
    let default_address = auth.username.contains('@').then(|| auth.username.clone());
    if t.mail_from.is_none() {
        t.mail_from = default_address.clone();
    }
    if t.rcpt_to.is_none() {
        t.rcpt_to = t.mail_from.clone().or(default_address);
    }
    if t.mail_from.is_none() || t.rcpt_to.is_none() {
        c.error_at(
            tp,
            "missing field `mail_from` (needed when username is not a mail address)",
        );
        return None;
    }
    let mailbox = mailbox(c, tp, t.mailbox.take());
    let ip_family = parse_ip_family(c, tp, t.ip_family.take());
    let tls_options = build_tls(c, tp, base, tls_keys(&mut t));
    let imap = ImapSpec {
        address: imap_address,
        tls: imap_tls,
        ip_family,
        tls_options: tls_options.clone(),
        auth: Some(auth.clone()),
        mechanism: ImapAuthMechanism::Login,
        mailbox,
    };
    let endpoint = Endpoint {
        address: smtp_address,
        tls: smtp_tls,
        ip_family,
        tls_options,
    };
    let smtp = build_smtp_parts(c, tp, &mut t, endpoint, Some(auth))?;
    if smtp.mail_from.is_none() || smtp.rcpt_to.is_none() {
        return None;
    }
    Some(MailflowSpec { smtp, imap })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// issue 21: names with bidirectional controls read as something else
    /// (`owa\u{202E}gpj.exe` shows as `owaexe.jpg`).
    #[test]
    fn names_refuse_controls_and_invisible_formatting() {
        for ch in [
            '\0', '\t', '\n', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{ad}', '\u{61c}',
            '\u{200b}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{2028}', '\u{202a}', '\u{202e}',
            '\u{2060}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{feff}',
        ] {
            let name = format!("owa{ch}x");
            let want = format!(
                "must not contain U+{:04X} (a control, bidirectional or invisible formatting character)",
                u32::from(ch)
            );
            assert_eq!(hidden_char_error(&name), Some(want), "{ch:?}");
        }
        for name in [
            "owa",
            "OWA-01_cas.example.org",
            "Zürich mail",
            "メール",
            "a b",
            "x→y",
        ] {
            assert_eq!(hidden_char_error(name), None, "{name}");
        }
    }

    #[test]
    fn the_instance_and_maintenance_names_are_checked_too() {
        let err = parse("[agent]\ninstance = \"cas\\u2067\"\n", None).unwrap_err();
        assert_eq!(err.0[0].key, "agent.instance");
        assert!(err.0[0].message.contains("U+2067"), "{err}");
        let err = parse(
            "[[maintenance]]\nname = \"patch\\u200Fday\"\nstart = \"2026-12-05T22:00:00Z\"\nend = \"2026-12-06T02:00:00Z\"\n",
            None,
        )
        .unwrap_err();
        assert_eq!(err.0[0].key, "maintenance[0].name");
        assert!(err.0[0].message.contains("U+200F"), "{err}");
    }
}
