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
//! `GET windows`; `POST silences/add`, `silences/extend`, `silences/remove`
//! (bodies as [`SilenceAddBody`] and [`SilenceChangeBody`]; a silence is
//! named by its `id`, or, the same on every agent of a fleet, by the time
//! it was added, `added_at`) and `GET silences`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::alerting::{
    DEFAULT_WINDOW_MAX_DOWN, DEFAULT_WINDOW_MAX_INCIDENT, DEFAULT_WINDOW_TOLERANCE,
};
use crate::config::duration::parse_duration;
use crate::store::outbox::{self, ExtendRefused, Silence};
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

/// The body of `POST silences/add`: what `mailpulse silence add` sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceAddBody {
    /// Target name pattern; default every target (`*`).
    #[serde(default)]
    pub target: Option<String>,
    /// How long (`"2h"`).
    #[serde(rename = "for")]
    pub duration: String,
    /// Why.
    pub reason: String,
    /// When it starts (RFC 3339); default `at`.
    #[serde(default)]
    pub start: Option<String>,
    /// Who adds it; default the API user.
    #[serde(default)]
    pub by: Option<String>,
    /// When it is added (RFC 3339, the caller's stamp, which then names it
    /// on every agent); default now.
    #[serde(default)]
    pub at: Option<String>,
}

/// The body of `POST silences/extend` and `silences/remove`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceChangeBody {
    /// The silence's id on this agent.
    #[serde(default)]
    pub id: Option<u64>,
    /// Or when it was added (RFC 3339): the same on every agent of a fleet.
    #[serde(default)]
    pub added_at: Option<String>,
    /// `extend`: how much longer (`"1h"`); `remove`: who removes it.
    #[serde(default)]
    pub by: Option<String>,
    /// `extend`: who extends it; default the API user.
    #[serde(default)]
    pub who: Option<String>,
    /// When (RFC 3339, the caller's stamp); default now.
    #[serde(default)]
    pub at: Option<String>,
}

/// A required RFC 3339 time.
fn time(key: &str, t: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("invalid {key} {t:?} (expected RFC 3339)"))
}

/// The id of the silence `id` or `added_at` names; `None` when no silence
/// has it (or the body names none).
fn silence_id(store: &Store, b: &SilenceChangeBody) -> Result<Result<u64, String>, String> {
    match (b.id, &b.added_at) {
        (Some(id), None) => Ok(Ok(id)),
        (None, Some(added)) => {
            let added = time("added_at", added)?;
            let all = outbox::silences(store).map_err(|e| e.to_string())?;
            Ok(all
                .iter()
                .find(|s| s.created_at == added)
                .map(|s| s.id)
                .ok_or_else(|| {
                    format!(
                        "no silence added at {}",
                        added.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                }))
        }
        _ => Err("name the silence by id or by added_at (one of them)".into()),
    }
}

/// A name the audit keeps, or why not.
fn who(key: &str, name: Option<String>, user: &str) -> Result<String, String> {
    match name {
        Some(n) if n.trim().is_empty() => Err(format!("{key} must not be empty")),
        Some(n) if n.chars().any(crate::config::is_hidden_char) => Err(format!(
            "{key} must not contain control, bidirectional or invisible characters"
        )),
        Some(n) => Ok(n),
        None => Ok(user.to_string()),
    }
}

impl AgentApi {
    /// `POST silences/<action>`.
    fn silence(&self, action: &str, bytes: &[u8], user: &str) -> ApiAnswer {
        let answer = |s: Silence| {
            tracing::info!(user, action, silence = s.id, target = %s.target, ends_at = %s.ends_at, "silence through the API");
            (StatusCode::OK, json!({ "silence": s }).to_string())
        };
        match action {
            "add" => {
                let b = match body::<SilenceAddBody>(bytes) {
                    Ok(b) => b,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e),
                };
                let add = || -> Result<Silence, String> {
                    let created_at = at_or_now(b.at.as_deref())?;
                    let starts_at = match &b.start {
                        Some(t) => time("start", t)?,
                        None => created_at,
                    };
                    let length = chrono::Duration::from_std(duration("for", &b.duration)?)
                        .map_err(|_| "for is too long".to_string())?;
                    if b.reason.trim().is_empty() {
                        return Err("reason must not be empty".into());
                    }
                    Ok(Silence {
                        id: 0,
                        target: b.target.clone().unwrap_or_else(|| "*".into()),
                        starts_at,
                        ends_at: starts_at + length,
                        reason: b.reason.clone(),
                        created_at,
                        created_by: Some(who("by", b.by.clone(), user)?),
                        removed_at: None,
                        removed_by: None,
                        extensions: Vec::new(),
                    })
                };
                let mut silence = match add() {
                    Ok(s) => s,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e),
                };
                match outbox::add_silence(&self.store, &silence) {
                    Ok(id) => {
                        silence.id = id;
                        answer(silence)
                    }
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
                }
            }
            _ => {
                let b = match body::<SilenceChangeBody>(bytes) {
                    Ok(b) => b,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e),
                };
                let id = match silence_id(&self.store, &b) {
                    Ok(Ok(id)) => id,
                    Ok(Err(e)) => return error(StatusCode::NOT_FOUND, e),
                    Err(e) => return error(StatusCode::BAD_REQUEST, e),
                };
                let at = match at_or_now(b.at.as_deref()) {
                    Ok(at) => at,
                    Err(e) => return error(StatusCode::BAD_REQUEST, e),
                };
                if action == "extend" {
                    let by =
                        b.by.as_deref()
                            .ok_or_else(|| "extend needs by, a duration".to_string())
                            .and_then(|t| duration("by", t))
                            .and_then(|d| {
                                chrono::Duration::from_std(d).map_err(|_| "by is too long".into())
                            });
                    let (by, who) = match (by, who("who", b.who, user)) {
                        (Ok(by), Ok(who)) => (by, who),
                        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
                    };
                    match outbox::extend_silence(&self.store, id, by, at, Some(who)) {
                        Ok(Ok(s)) => answer(s),
                        Ok(Err(e @ ExtendRefused::Missing(_))) => error(StatusCode::NOT_FOUND, e),
                        Ok(Err(e @ ExtendRefused::Ended(_))) => error(StatusCode::CONFLICT, e),
                        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
                    }
                } else {
                    if b.who.is_some() {
                        return error(StatusCode::BAD_REQUEST, "remove takes by (who), not who");
                    }
                    let by = match who("by", b.by, user) {
                        Ok(by) => by,
                        Err(e) => return error(StatusCode::BAD_REQUEST, e),
                    };
                    let removed = outbox::remove_silence(&self.store, id, at, Some(by));
                    let found = outbox::silences(&self.store)
                        .map(|all| all.into_iter().find(|s| s.id == id));
                    match (removed, found) {
                        (Ok(true), Ok(Some(s))) => answer(s),
                        (Ok(false), Ok(Some(_))) => error(
                            StatusCode::CONFLICT,
                            format!("silence {id} was removed already"),
                        ),
                        (Ok(_), Ok(None)) => {
                            error(StatusCode::NOT_FOUND, format!("no silence with id {id}"))
                        }
                        (Err(e), _) | (_, Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
                    }
                }
            }
        }
    }

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
            "silences" => Some(match outbox::silences(&self.store) {
                Ok(all) => (
                    StatusCode::OK,
                    serde_json::to_string(&all).expect("silences serialize"),
                ),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            }),
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
        if let Some(action) = path.strip_prefix("silences/") {
            return matches!(action, "add" | "extend" | "remove")
                .then(|| self.silence(action, body, user));
        }
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

    #[test]
    fn window_requests_are_checked_and_refusals_say_why() {
        let api = AgentApi::new(Store::in_memory().unwrap(), 20);
        let open = br#"{"name":"b1","for":"2h","at":"2026-12-05T22:00:00Z","max_down":"2m"}"#;
        let (status, body) = api.write("windows/open", open, "ops").unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["window"]["ends_at"], "2026-12-06T00:00:00Z");
        assert_eq!(v["window"]["by"], "ops");
        assert_eq!(v["window"]["tolerance"], 10.0);
        assert_eq!(v["window"]["max_down_seconds"], 120.0);
        for (path, body, want) in [
            ("windows/open", &open[..], StatusCode::CONFLICT),
            (
                "windows/open",
                br#"{"name":"x","for":"0s"}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "windows/open",
                br#"{"name":"x","for":"1h","colour":"red"}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "windows/open",
                br#"{"name":"a\u202eb","for":"1h"}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "windows/open",
                br#"{"name":"x","for":"1h","tolerance":1}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "windows/extend",
                br#"{"name":"b1"}"#,
                StatusCode::BAD_REQUEST,
            ),
            (
                "windows/extend",
                br#"{"name":"nope","by":"1h"}"#,
                StatusCode::CONFLICT,
            ),
            ("windows/close", br#"{"name":"nope"}"#, StatusCode::CONFLICT),
        ] {
            let (status, answer) = api.write(path, body, "ops").unwrap();
            assert_eq!(
                status,
                want,
                "{path} {}: {answer}",
                String::from_utf8_lossy(body)
            );
            assert!(answer.contains("\"error\""), "{answer}");
        }
        assert!(api.write("windows/report", b"", "ops").is_none());
        let (status, body) = api.read("windows").unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(serde_json::from_str::<Vec<Value>>(&body).unwrap().len(), 1);
    }

    #[test]
    fn silences_are_named_by_id_or_by_when_they_were_added() {
        let api = AgentApi::new(Store::in_memory().unwrap(), 20);
        let add = br#"{"target":"owa*","for":"1h","reason":"moves","at":"2026-12-05T22:00:00Z"}"#;
        let (status, body) = api.write("silences/add", add, "ops").unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = api
            .write(
                "silences/extend",
                br#"{"added_at":"2026-12-05T22:00:00Z","by":"30m","at":"2026-12-05T22:10:00Z"}"#,
                "ops",
            )
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["silence"]["ends_at"], "2026-12-05T23:30:00Z");
        assert_eq!(v["silence"]["extensions"][0]["by"], "ops");
        let remove = br#"{"id":1,"by":"carol","at":"2026-12-05T22:20:00Z"}"#;
        let (status, body) = api.write("silences/remove", remove, "ops").unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        for (path, body, want) in [
            ("silences/remove", &remove[..], StatusCode::CONFLICT),
            (
                "silences/extend",
                br#"{"id":1,"by":"1h"}"#,
                StatusCode::CONFLICT,
            ),
            (
                "silences/extend",
                br#"{"id":9,"by":"1h"}"#,
                StatusCode::NOT_FOUND,
            ),
            (
                "silences/remove",
                br#"{"added_at":"2020-01-01T00:00:00Z"}"#,
                StatusCode::NOT_FOUND,
            ),
            ("silences/remove", br#"{}"#, StatusCode::BAD_REQUEST),
            (
                "silences/add",
                br#"{"for":"1h","reason":" "}"#,
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let (status, answer) = api.write(path, body, "ops").unwrap();
            assert_eq!(
                status,
                want,
                "{path} {}: {answer}",
                String::from_utf8_lossy(body)
            );
        }
        let (_, body) = api.read("silences").unwrap();
        let all: Vec<Value> = serde_json::from_str(&body).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0]["removed_by"], "carol");
        assert_eq!(all[0]["created_by"], "ops");
    }
}
