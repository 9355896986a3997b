//! The agent's HTTP API under `/api/v1/`: what its endpoints mean. The
//! listener (`metrics::server`) authenticates every request before it gets
//! here (reads as `/metrics`, writes only for `[agent.api] write_users`)
//! and runs these handlers on the blocking pool; this module reads and
//! writes the store and answers JSON.
//!
//! Endpoints: `POST soak/start`, `soak/phase`, `soak/end` (bodies are
//! `store::soak::Mark`'s fields as JSON, plus an optional `at`, RFC 3339:
//! the caller's stamp, so every agent of a fleet gets the same one), and
//! `GET soak/runs`; `POST windows/open`, `windows/extend`, `windows/close`
//! (change windows, by name, bodies as [`OpenBody`] and [`NameBody`]) and
//! `GET windows`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::alerting::{
    DEFAULT_WINDOW_MAX_DOWN, DEFAULT_WINDOW_MAX_INCIDENT, DEFAULT_WINDOW_TOLERANCE,
};
use crate::config::duration::parse_duration;
use crate::store::windows::{self, ChangeWindow, WindowError, WindowSource};

use crate::metrics::server::{Api, ApiAnswer};
use crate::store::soak::{self, Mark, SoakError};
use crate::store::Store;

/// The daemon's API over its store.
pub struct AgentApi {
    store: Store,
    keep_runs: usize,
}

impl AgentApi {
    /// The API over `store`, keeping at most `keep_runs` soak runs.
    pub fn new(store: Store, keep_runs: usize) -> AgentApi {
        AgentApi { store, keep_runs }
    }
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> ApiAnswer {
    (status, json!({ "error": message.to_string() }).to_string())
}

/// Reads a soak mark and its time from a request body for `action`.
fn mark(action: &str, body: &[u8]) -> Result<(Mark, Option<DateTime<Utc>>), String> {
    let mut v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?
    };
    let Value::Object(map) = &mut v else {
        return Err("the body must be a JSON object".into());
    };
    let at = match map.remove("at") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(
            DateTime::parse_from_rfc3339(&t)
                .map_err(|_| format!("invalid at {t:?} (expected RFC 3339)"))?
                .with_timezone(&Utc),
        ),
        Some(_) => return Err("at must be an RFC 3339 string".into()),
    };
    map.insert("action".into(), Value::String(action.into()));
    let mark = serde_json::from_value(v).map_err(|e| format!("invalid body: {e}"))?;
    Ok((mark, at))
}

/// The body of `POST windows/open`: what `mailpulse window open` sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    /// The window's name.
    pub name: String,
    /// When it opens (RFC 3339, the caller's stamp); default now.
    #[serde(default)]
    pub at: Option<String>,
    /// How long (`"4h"`).
    #[serde(rename = "for")]
    pub duration: String,
    /// Target patterns; default every target.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Tolerance factor; default 10.
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// `"5m"` by default.
    #[serde(default)]
    pub max_down: Option<String>,
    /// `"30m"` by default.
    #[serde(default)]
    pub max_incident: Option<String>,
    /// What it is for.
    #[serde(default)]
    pub note: Option<String>,
    /// Who opens it; default the API user.
    #[serde(default)]
    pub by: Option<String>,
}

/// The body of `POST windows/extend` (with `by`, a duration) and
/// `windows/close`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameBody {
    /// The window's name.
    pub name: String,
    /// When (RFC 3339, the caller's stamp); default now.
    #[serde(default)]
    pub at: Option<String>,
    /// `extend` only: how much longer (`"1h"`).
    #[serde(default)]
    pub by: Option<String>,
}

/// A JSON body (empty reads as `{}`), or why not.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| format!("invalid body: {e}"))
}

/// An optional RFC 3339 `at`, else now.
fn at_or_now(at: Option<&str>) -> Result<DateTime<Utc>, String> {
    match at {
        None => Ok(Utc::now()),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| format!("invalid at {t:?} (expected RFC 3339)")),
    }
}

/// A duration field: `"4h"`, longer than zero.
fn duration(key: &str, text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(d) if d.is_zero() => Err(format!("{key} must be longer than zero")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("invalid {key} {text:?}: {e}")),
    }
}

/// The window an open body asks for, opened by `user` unless it names
/// someone.
pub fn open_window(b: OpenBody, user: &str) -> Result<ChangeWindow, String> {
    if let Some(ch) = b.name.chars().find(|c| crate::config::is_hidden_char(*c)) {
        return Err(format!(
            "the window name must not contain U+{:04X}",
            u32::from(ch)
        ));
    }
    let starts_at = at_or_now(b.at.as_deref())?;
    let length = chrono::Duration::from_std(duration("for", &b.duration)?)
        .map_err(|_| "for is too long".to_string())?;
    let ends_at = starts_at
        .checked_add_signed(length)
        .ok_or("for is too long")?;
    let optional = |key: &str, v: Option<&str>, default: Duration| match v {
        Some(t) => duration(key, t),
        None => Ok(default),
    };
    Ok(ChangeWindow {
        id: 0,
        name: b.name,
        source: WindowSource::Command,
        starts_at,
        ends_at,
        closed_at: None,
        targets: b.targets,
        tolerance: b.tolerance.unwrap_or(DEFAULT_WINDOW_TOLERANCE),
        max_down: optional("max_down", b.max_down.as_deref(), DEFAULT_WINDOW_MAX_DOWN)?,
        max_incident: optional(
            "max_incident",
            b.max_incident.as_deref(),
            DEFAULT_WINDOW_MAX_INCIDENT,
        )?,
        note: b.note,
        by: Some(b.by.unwrap_or_else(|| user.to_string())),
        summary_sent_at: None,
    })
}

impl AgentApi {
    /// `POST windows/<action>`.
    fn window(&self, action: &str, bytes: &[u8], user: &str) -> ApiAnswer {
        let result = match action {
            "open" => body::<OpenBody>(bytes)
                .and_then(|b| open_window(b, user))
                .map(|w| windows::open(&self.store, w)),
            "extend" => body::<NameBody>(bytes).and_then(|b| {
                let at = at_or_now(b.at.as_deref())?;
                let by = duration("by", b.by.as_deref().ok_or("extend needs by, a duration")?)?;
                Ok(windows::extend(&self.store, &b.name, by, at))
            }),
            _ => body::<NameBody>(bytes).and_then(|b| {
                if b.by.is_some() {
                    return Err("close takes no by".into());
                }
                let at = at_or_now(b.at.as_deref())?;
                Ok(windows::close(&self.store, &b.name, at))
            }),
        };
        match result {
            Err(e) => error(StatusCode::BAD_REQUEST, e),
            Ok(Ok(w)) => {
                tracing::info!(user, action, window = %w.name, ends_at = %w.end(), "change window through the API");
                (StatusCode::OK, json!({ "window": w }).to_string())
            }
            Ok(Err(e @ (WindowError::Open(_) | WindowError::NotOpen(_)))) => {
                error(StatusCode::CONFLICT, e)
            }
            Ok(Err(e @ WindowError::Invalid(_))) => error(StatusCode::BAD_REQUEST, e),
            Ok(Err(e @ WindowError::Store(_))) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
}

impl Api for AgentApi {
    fn read(&self, path: &str) -> Option<ApiAnswer> {
        match path {
            "windows" => Some(match windows::windows(&self.store) {
                Ok(all) => (
                    StatusCode::OK,
                    serde_json::to_string(&all).expect("windows serialize"),
                ),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }),
            "soak/runs" => Some(match soak::runs(&self.store) {
                Ok(runs) => (
                    StatusCode::OK,
                    serde_json::to_string(&runs).expect("runs serialize"),
                ),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }),
            _ => None,
        }
    }

    fn write(&self, path: &str, body: &[u8], user: &str) -> Option<ApiAnswer> {
        if let Some(action) = path.strip_prefix("windows/") {
            return matches!(action, "open" | "extend" | "close")
                .then(|| self.window(action, body, user));
        }
        let action = path.strip_prefix("soak/")?;
        if !matches!(action, "start" | "phase" | "end") {
            return None;
        }
        let (mark, at) = match mark(action, body) {
            Ok(m) => m,
            Err(e) => return Some(error(StatusCode::BAD_REQUEST, e)),
        };
        let at = at.unwrap_or_else(Utc::now);
        let result = mark.apply(
            &self.store,
            at,
            self.keep_runs,
            crate::config::is_hidden_char,
        );
        Some(match result {
            Ok(run) => {
                tracing::info!(user, mark = %mark.describe(), run = %run.name, "soak mark through the API");
                (StatusCode::OK, json!({ "run": run }).to_string())
            }
            Err(e @ (SoakError::Active(_) | SoakError::NoActive)) => error(StatusCode::CONFLICT, e),
            Err(e @ SoakError::Invalid(_)) => error(StatusCode::BAD_REQUEST, e),
            Err(e @ SoakError::Store(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_read_from_bodies() {
        let (m, at) = mark(
            "start",
            br#"{"name":"r","phase":"p","at":"2026-12-05T10:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            Mark::Start {
                name: "r".into(),
                phase: Some("p".into()),
                note: None
            }
        );
        assert_eq!(at, Some("2026-12-05T10:00:00Z".parse().unwrap()));
        assert_eq!(mark("end", b"").unwrap(), (Mark::End, None));
        assert!(mark("phase", b"{}").is_err(), "a phase needs its name");
        assert!(mark("end", br#"{"at":"yesterday"}"#).is_err());
    }

    #[test]
    fn answers_say_what_was_refused() {
        let api = AgentApi::new(Store::in_memory().unwrap(), 20);
        let (status, _) = api.write("soak/end", b"", "ops").unwrap();
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, body) = api.write("soak/start", br#"{"name":"r"}"#, "ops").unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = api.read("soak/runs").unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("\"name\":\"r\""), "{body}");
        assert!(api.write("other", b"", "ops").is_none());
    }
}
