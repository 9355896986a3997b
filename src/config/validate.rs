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
        let position = self.span_of(path).map(|s| self.position(s.start));
        self.errors.push(ConfigError {
            file: self.file.clone(),
            position,
            key: path.to_string(),
            message: message.into(),
        });
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
    let config = build(&mut checker, raw, &base_dir, path);
    checker.finish(config)
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
        targets: Vec::new(),
    }
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
        Some(i) => i,
        None => hostname(),
    };
    let log_level = raw.agent.log_level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        c.error_at(
            &agent_path.key("log_level"),
            format!("invalid log level {log_level:?} (expected error, warn, info, debug or trace)"),
        );
    }
    let web = build_web(c, &agent_path.key("web"), base, raw.agent.web);
    let agent = AgentConfig {
        listen,
        instance,
        state_dir: raw
            .agent
            .state_dir
            .map(|p| resolve(base, p))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        log_level,
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
        if let Some(target) = build_target(c, &tp, t, base) {
            targets.push(target);
        }
    }

    Config {
        source: path.map(Path::to_path_buf),
        agent,
        host,
        targets,
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
    "bearer_token_file",
    "ip_family",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_insecure_skip_verify",
    "tls_server_name",
];

/// Every kind, with the keys it accepts.
const KINDS: &[(&str, &[&str])] = &[("http", HTTP_KEYS)];

fn build_target(c: &mut Checker<'_>, tp: &KeyPath, t: RawTarget, base: &Path) -> Option<Target> {
    let name = match &t.name {
        Some(n) if n.trim().is_empty() || n.chars().any(|ch| ch.is_control()) => {
            c.error_at(
                &tp.key("name"),
                "must be a non-empty name without control characters",
            );
            return None;
        }
        Some(n) => n.clone(),
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
    let spec = match kind {
        "http" => ProbeSpec::Http(build_http(c, tp, t, base)?),
        _ => unreachable!("kinds are checked above"),
    };
    if misplaced {
        return None;
    }
    Some(Target {
        name,
        interval,
        timeout,
        spec,
    })
}

fn read_secret(c: &mut Checker<'_>, path: &KeyPath, base: &Path, file: PathBuf) -> Option<Secret> {
    let file = resolve(base, file);
    match Secret::from_file(&file) {
        Ok(s) => Some(s),
        Err(e) => {
            c.error_at(
                path,
                format!("cannot read secret file {}: {e}", file.display()),
            );
            None
        }
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
    let auth = match (t.username, t.password_file, t.bearer_token_file) {
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            c.error_at(
                &tp.key("bearer_token_file"),
                "cannot be combined with username/password_file",
            );
            None
        }
        (Some(username), Some(file), None) => read_secret(c, &tp.key("password_file"), base, file)
            .map(|password| HttpAuth::Basic { username, password }),
        (Some(_), None, None) => {
            c.error_at(&tp.key("username"), "needs password_file");
            None
        }
        (None, Some(_), None) => {
            c.error_at(&tp.key("password_file"), "needs username");
            None
        }
        (None, None, Some(file)) => {
            read_secret(c, &tp.key("bearer_token_file"), base, file).map(HttpAuth::Bearer)
        }
        (None, None, None) => None,
    };
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
    match CertificateDer::pem_file_iter(&file).and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
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
    let key = match PrivateKeyDer::from_pem_file(&key_path) {
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
        } else if hash.parse::<bcrypt::HashParts>().is_err() {
            c.error_at(
                &wp.key("basic_auth_users").key(&user),
                "expected a bcrypt hash (\"$2b$...\"; make one with `mailpulse hash-password`)",
            );
        } else {
            basic_auth_users.push((user, hash));
        }
    }
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
    }
}
