//! Alert delivery configuration as the agent runs on it: the validated
//! `[alerting]` table, `[[receiver]]`, `[[route]]`, `[[maintenance]]` and
//! `[[window]]` ([`AlertingConfig`]), with their defaults.
//!
//! This is data only. The raw tables are in `raw.rs`, their validation in
//! `validate/` (the same path and the same located errors as the rest of the
//! file; [`parse`] and [`super::load_alerting`] run it on the alerting part
//! alone), and the behaviour of routes and windows (glob matching, whether a
//! window is open) in `alert/glob.rs` and `alert/window.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc, Weekday};
pub use jiff::tz::TimeZone;

// The receiver kinds' settings (`ReceiverKind`, `ReceiverSpec`, each kind's
// spec and defaults) live in `receivers/`, one file a kind; this is their
// public path.
pub use super::receivers::*;
use super::TlsOptions;

/// Default cap on the delay between two delivery attempts.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Default age after which an undelivered notification is given up.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Default interval of reminders while an incident stays open.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);
/// Default per-request timeout of a receiver.
pub const DEFAULT_RECEIVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default severity of an alert whose target has none configured.
pub const DEFAULT_SEVERITY: &str = "critical";
/// Accepted severities, most severe first (PagerDuty's set).
pub const SEVERITIES: &[&str] = &["critical", "error", "warning", "info"];
/// Change windows: latency at or above this many times the baseline is
/// beyond tolerance and pages at once (`tolerance`, `--tolerance`).
pub const DEFAULT_WINDOW_TOLERANCE: f64 = 10.0;
/// Change windows: down for longer than this pages at once (`max_down`).
pub const DEFAULT_WINDOW_MAX_DOWN: Duration = Duration::from_secs(5 * 60);
/// Change windows: open for longer than this pages at once (`max_incident`).
pub const DEFAULT_WINDOW_MAX_INCIDENT: Duration = Duration::from_secs(30 * 60);

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
    /// Planned change windows (`[[window]]`), names unique.
    pub windows: Vec<PlannedWindow>,
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
            windows: Vec::new(),
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
    /// `proxy_url` of an HTTP receiver: every request goes through it
    /// (without it, through the proxies of the environment).
    pub proxy: Option<ProxyUrl>,
    /// Kind-specific settings.
    pub spec: ReceiverSpec,
}

/// A receiver's `proxy_url`: an `http://` or `https://` proxy, with
/// optional credentials (`http://user:password@proxy:3128`), which are a
/// secret: formatting shows only the origin, and the receiver's redactor
/// knows the password in every form it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl(url::Url);

impl ProxyUrl {
    /// Parses a proxy URL. The error never quotes the text (it may hold a
    /// password).
    pub fn parse(text: &str) -> Result<ProxyUrl, String> {
        const UNQUOTED: &str = "the URL is not quoted, it may hold a password";
        let url = url::Url::parse(text.trim())
            .map_err(|e| format!("invalid proxy URL: {e} ({UNQUOTED})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "unsupported proxy scheme {:?} (expected http:// or https://; {UNQUOTED})",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("invalid proxy URL: no host ({UNQUOTED})"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "a proxy URL is scheme://[user:password@]host[:port] with no path or query ({UNQUOTED})"
            ));
        }
        Ok(ProxyUrl(url))
    }

    /// The URL with its credentials, for the HTTP client only.
    pub fn url(&self) -> &url::Url {
        &self.0
    }

    /// `scheme://host:port`, for messages.
    pub fn origin(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        let port = self.0.port_or_known_default().unwrap_or(80);
        format!("{}://{host}:{port}", self.0.scheme())
    }

    /// Whether the URL carries credentials.
    pub fn has_credentials(&self) -> bool {
        !self.0.username().is_empty() || self.0.password().is_some()
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin())?;
        if self.has_credentials() {
            f.write_str(" (with credentials)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

impl ReceiverConfig {
    /// The kind.
    pub fn kind(&self) -> ReceiverKind {
        self.spec.kind()
    }
}

/// A target name pattern: `*` matches any run of characters, `?` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(pub String);

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The values of a route's `event` matcher: incident alerts, and the
/// summaries of change windows that ended.
pub const EVENTS: [&str; 2] = ["incident", "window_summary"];

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
    /// What it routes: `incident` or `window_summary` ([`EVENTS`]); `None`
    /// routes both.
    pub event: Option<String>,
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
    /// Every week on `weekday` at `at` (local time of the window's zone),
    /// for `duration` (elapsed time).
    Weekly {
        /// Day of the start.
        weekday: Weekday,
        /// Time of the start, local.
        at: NaiveTime,
        /// Length.
        duration: Duration,
    },
    /// Every day at `at` (local time of the window's zone), for `duration`
    /// (elapsed time).
    Daily {
        /// Time of the start, local.
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
    /// `time_zone`: the zone whose local time a recurring schedule names
    /// (default UTC); one-off times are already instants.
    pub time_zone: TimeZone,
}

/// One planned change window (`[[window]]`): when it opens (the schedule
/// keys of `[[maintenance]]`) and what it tolerates. The daemon stores each
/// occurrence as it opens, so it is then a change window like one opened
/// with `mailpulse window open`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedWindow {
    /// Its name, unique among `[[window]]`s.
    pub name: String,
    /// Target name patterns it covers; empty covers every target.
    pub targets: Vec<Glob>,
    /// When it is open.
    pub schedule: WindowSchedule,
    /// The zone whose local time the schedule names (default UTC).
    pub time_zone: TimeZone,
    /// Latency at or above this many times the baseline is beyond tolerance.
    pub tolerance: f64,
    /// Down for longer than this is beyond tolerance.
    pub max_down: Duration,
    /// Open for longer than this is beyond tolerance.
    pub max_incident: Duration,
    /// What it is for.
    pub note: Option<String>,
}

/// The instant a local date and time of `zone` names. In a gap (clocks going
/// forward) it is as far past the gap's start as the time is (01:30 in a
/// 01:00-02:00 gap is 02:30 after the change); in a fold (clocks going back)
/// it is the earlier of the two. `None` only outside the representable range.
pub fn local_instant(zone: &TimeZone, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::{Datelike, Timelike};
    let narrow = |v: u32| i8::try_from(v).ok();
    let civil = jiff::civil::DateTime::new(
        i16::try_from(local.year()).ok()?,
        narrow(local.month())?,
        narrow(local.day())?,
        narrow(local.hour())?,
        narrow(local.minute())?,
        narrow(local.second())?,
        0,
    )
    .ok()?;
    let at = zone.to_ambiguous_timestamp(civil).compatible().ok()?;
    DateTime::from_timestamp(at.as_second(), 0)
}

/// The name a zone is shown by: its IANA name (`UTC` for the default).
pub fn zone_name(zone: &TimeZone) -> &str {
    zone.iana_name().unwrap_or("UTC")
}

/// Parses and validates the alerting tables of configuration text (the
/// other tables are not read), as [`super::load_alerting`] does for a file.
/// Relative `*_file` paths start at `base_dir`; `hostname` is the default
/// EHLO name.
pub fn parse(
    text: &str,
    base_dir: &Path,
    hostname: &str,
) -> Result<AlertingConfig, super::ConfigErrors> {
    super::validate::parse_alerting(text, None, base_dir, hostname).map(|f| f.alerting)
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
    /// The names of the configured targets, as written (unvalidated), for
    /// warnings such as a silence that matches none.
    pub target_names: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_url_never_shows_its_credentials() {
        let p = ProxyUrl::parse("http://ops:s3cr%40t@proxy.example.org:3128").unwrap();
        assert_eq!(p.origin(), "http://proxy.example.org:3128");
        assert_eq!(
            p.to_string(),
            "http://proxy.example.org:3128 (with credentials)"
        );
        assert_eq!(
            format!("{p:?}"),
            "ProxyUrl(http://proxy.example.org:3128 (with credentials))"
        );
        assert_eq!(p.url().password(), Some("s3cr%40t"));
        let p = ProxyUrl::parse("https://proxy.example.org").unwrap();
        assert_eq!(p.to_string(), "https://proxy.example.org:443");
    }

    #[test]
    fn a_bad_proxy_url_is_refused_without_being_quoted() {
        for (text, want) in [
            (
                "socks5://ops:s3cret@proxy:1080",
                "unsupported proxy scheme \"socks5\"",
            ),
            ("http://ops:s3cret@proxy:3128/path", "with no path or query"),
            ("http://ops:s3cret@proxy:3128/?q=1", "with no path or query"),
            ("ops:s3cret@proxy:3128", "unsupported proxy scheme \"ops\""),
            ("http://ops:s3cret@:3128", "invalid proxy URL: empty host"),
            ("proxy", "invalid proxy URL: relative URL without a base"),
        ] {
            let e = ProxyUrl::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
            assert!(
                e.ends_with("the URL is not quoted, it may hold a password)"),
                "{e}"
            );
        }
    }
}
