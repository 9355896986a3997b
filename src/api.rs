//! The agent's HTTP API under `/api/v1/`: what its endpoints mean. The
//! listener (`metrics::server`) authenticates every request before it gets
//! here (reads as `/metrics`, writes only for `[agent.api] write_users`)
//! and runs these handlers on the blocking pool; this module reads and
//! writes the store and answers JSON.
//!
//! Endpoints: `POST soak/start`, `soak/phase`, `soak/end` (bodies are
//! `store::soak::Mark`'s fields as JSON, plus an optional `at`, RFC 3339:
//! the caller's stamp, so every agent of a fleet gets the same one), and
//! `GET soak/runs`.

use chrono::{DateTime, Utc};
use hyper::StatusCode;
use serde_json::{json, Value};

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

impl Api for AgentApi {
    fn read(&self, path: &str) -> Option<ApiAnswer> {
        match path {
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
