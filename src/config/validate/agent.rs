//! `[agent]`: the listen address, instance name, state directory, log
//! level and format, memory trimming of the daemon, and the shape of the
//! probe latency histograms (`[agent.web]` is `web.rs`).

use std::net::SocketAddr;

use super::files::resolve;
use super::web::{bcrypt_users, build_web};
use super::*;
use crate::config::raw::{RawAgent, RawApi};
use crate::service::logging::LogFormat;

/// Validates `[agent]` at `path`, filling defaults.
pub(super) fn build_agent(
    c: &mut Checker<'_>,
    path: &KeyPath,
    base: &Path,
    raw: RawAgent,
) -> AgentConfig {
    let listen_text = raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            c.error_at(
                &path.key("listen"),
                format!("invalid listen address {listen_text:?} (expected host:port, e.g. \"127.0.0.1:9717\")"),
            );
            DEFAULT_LISTEN.parse().expect("valid default address")
        }
    };
    let instance = match raw.instance {
        Some(i) if i.trim().is_empty() => {
            c.error_at(&path.key("instance"), "must not be empty");
            i
        }
        Some(i) => {
            if let Some(message) = hidden_char_error(&i) {
                c.error_at(&path.key("instance"), message);
            }
            i
        }
        None => hostname(),
    };
    let log_level = raw.log_level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        c.error_at(
            &path.key("log_level"),
            format!("invalid log level {log_level:?} (expected error, warn, info, debug or trace)"),
        );
    }
    let log_format = match raw.log_format.as_deref().map(LogFormat::from_name) {
        None => LogFormat::default(),
        Some(Some(format)) => format,
        Some(None) => {
            c.error_at(
                &path.key("log_format"),
                format!(
                    "invalid log format {:?} (expected text or json)",
                    raw.log_format.unwrap_or_default()
                ),
            );
            LogFormat::default()
        }
    };
    let memory_trim = match raw.memory_trim.map(HumanDuration::get) {
        None => Some(DEFAULT_MEMORY_TRIM),
        Some(d) if d.is_zero() => None,
        Some(d) if d < Duration::from_secs(60) => {
            c.error_at(&path.key("memory_trim"), "must be 0s (off) or at least 1m");
            None
        }
        Some(d) => Some(d),
    };
    let latency_buckets = match raw.latency_buckets {
        None => DEFAULT_LATENCY_BUCKETS.to_vec(),
        Some(b) => latency_buckets(c, &path.key("latency_buckets"), b),
    };
    let web = build_web(c, &path.key("web"), base, raw.web);
    let api = build_api(c, &path.key("api"), raw.api, listen, &web);
    AgentConfig {
        listen,
        instance,
        state_dir: raw
            .state_dir
            .map(|p| resolve(base, p))
            .unwrap_or_else(default_state_dir),
        log_level,
        log_format,
        memory_trim,
        latency_buckets,
        phase_histograms: raw.phase_histograms.unwrap_or(false),
        web,
        api,
    }
}

/// Checks `agent.latency_buckets`: 1 to [`MAX_LATENCY_BUCKETS`] finite,
/// positive bounds, each above the one before; the default where they are not.
fn latency_buckets(c: &mut Checker<'_>, path: &KeyPath, bounds: Vec<f64>) -> Vec<f64> {
    let before = c.errors.len();
    if bounds.is_empty() {
        c.error_at(path, "must list at least one bucket bound (seconds)");
    } else if bounds.len() > MAX_LATENCY_BUCKETS {
        c.error_at(
            path,
            format!(
                "at most {MAX_LATENCY_BUCKETS} buckets (each is one series per target), got {}",
                bounds.len()
            ),
        );
    }
    for (i, b) in bounds.iter().enumerate() {
        if !b.is_finite() || *b <= 0.0 {
            c.error_at(
                &path.index(i),
                format!("{b} is not a positive number of seconds"),
            );
        } else if i > 0 && bounds[i - 1].is_finite() && *b <= bounds[i - 1] {
            c.error_at(
                &path.index(i),
                format!(
                    "{b} is not above the bound before it ({}): list bounds in ascending order",
                    bounds[i - 1]
                ),
            );
        }
    }
    if c.errors.len() > before {
        DEFAULT_LATENCY_BUCKETS.to_vec()
    } else {
        bounds
    }
}

/// Validates `[agent.api]`: writers are bcrypt users distinct from the
/// read-only ones, and their credentials never cross the network in clear
/// (TLS, or a loopback listener).
fn build_api(
    c: &mut Checker<'_>,
    path: &KeyPath,
    raw: Option<RawApi>,
    listen: SocketAddr,
    web: &WebConfig,
) -> ApiConfig {
    let Some(raw) = raw else {
        return ApiConfig::default();
    };
    let key = path.key("write_users");
    let write_users = bcrypt_users(c, &key, raw.write_users.unwrap_or_default());
    for (user, _) in &write_users {
        if web.basic_auth_users.iter().any(|(u, _)| u == user) {
            c.error_at(
                &key.key(user),
                format!("{user:?} is also in [agent.web] basic_auth_users; writers must be distinct from read-only users"),
            );
        }
    }
    if !write_users.is_empty() && web.tls.is_none() && !listen.ip().is_loopback() {
        c.error_at(
            &key,
            format!("writes on plain HTTP need a loopback listen address, not {listen} (credentials would cross the network in clear); set [agent.web] tls_cert_file and tls_key_file"),
        );
    }
    ApiConfig { write_users }
}
