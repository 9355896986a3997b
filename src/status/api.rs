//! The status routes: `/`, `/incidents/ID`, `/api/v1/status`,
//! `/api/v1/incidents` and `/api/v1/incidents/ID`. [`Pages::answer`] reads
//! a copy of the board, the incident history and the outbox (blocking IO:
//! the web server calls it off its workers) and renders the page or JSON.
//! The web server's protection (TLS, basic auth, networks) is applied
//! before any of this runs.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::json::{IncidentDetail, IncidentList, IncidentView, NotificationView, StatusView};
use super::{html, id_of_key, Shared};
use crate::alert::stored;
use crate::clock::Clock;
use crate::store::incidents::{self as history, IncidentRecord, Selection};
use crate::store::{outbox, Store};

/// Incidents `/api/v1/incidents` returns when no `limit` is given.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` `/api/v1/incidents` takes.
pub const MAX_LIMIT: usize = 1000;
/// Recent incidents the page `/` lists besides the open ones.
pub const PAGE_INCIDENTS: usize = 50;

/// A rendered answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

impl Reply {
    fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: HTML,
            body,
        }
    }

    fn json(status: u16, value: &impl serde::Serialize) -> Reply {
        Reply::json_as(status, value, true)
    }

    /// `value` as JSON, indented when `pretty`, else on one line.
    fn json_as(status: u16, value: &impl serde::Serialize, pretty: bool) -> Reply {
        let body = if pretty {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        };
        let mut body = body.unwrap_or_else(|_| "{}".into());
        body.push('\n');
        Reply {
            status,
            content_type: JSON,
            body,
        }
    }

    fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, &serde_json::json!({ "error": message }))
    }
}

/// What the status routes read.
#[derive(Clone)]
pub struct Pages {
    board: Shared,
    store: Option<Store>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").finish_non_exhaustive()
    }
}

/// The filters of `/api/v1/incidents`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    /// Only this target's incidents.
    pub target: Option<String>,
    /// Only incidents started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only incidents started at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only incidents opened during the soak run of this name.
    pub run: Option<String>,
    /// At most this many (newest first).
    pub limit: usize,
}

/// Whether the query asks for indented JSON: `pretty` with no value, `1`
/// or `true`; `0` or `false` (or no `pretty` at all) is one line.
pub fn pretty(query: Option<&str>) -> Result<bool, String> {
    let mut pretty = false;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "pretty" {
            pretty = match value.as_ref() {
                "" | "1" | "true" => true,
                "0" | "false" => false,
                _ => return Err("pretty: expected 1, true, 0 or false, or no value".into()),
            };
        }
    }
    Ok(pretty)
}

/// A time parameter `key`: RFC 3339, or a duration such as `2h` back from `now`.
fn time(key: &str, value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    let back = crate::config::duration::parse_duration(value)
        .map_err(|_| format!("{key}: expected an RFC 3339 time or a duration such as 2h"))?;
    Ok(now - chrono::Duration::from_std(back).map_err(|_| format!("{key}: duration too long"))?)
}

impl Filter {
    /// Reads `target`, `since` and `until` (RFC 3339, or a duration such as
    /// `2h` back from `now`; the incident's start), `run` (a soak run's name)
    /// and `limit` (1 to [`MAX_LIMIT`]) from a query string.
    pub fn parse(query: Option<&str>, now: DateTime<Utc>) -> Result<Filter, String> {
        let mut f = Filter {
            limit: DEFAULT_LIMIT,
            ..Filter::default()
        };
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "target" => f.target = Some(value.into_owned()),
                "since" => f.since = Some(time("since", &value, now)?),
                "until" => f.until = Some(time("until", &value, now)?),
                "run" => f.run = Some(value.into_owned()),
                "limit" => {
                    f.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| format!("limit: expected a number from 1 to {MAX_LIMIT}"))?;
                }
                _ => {}
            }
        }
        Ok(f)
    }
}

impl Pages {
    /// Routes over `board`, the incident history and outbox of `store`
    /// (`None`: the agent runs without one), at the time of `clock`.
    pub fn new(board: Shared, store: Option<Store>, clock: Arc<dyn Clock>) -> Pages {
        Pages {
            board,
            store,
            clock,
        }
    }

    /// Whether `path` is one of these routes.
    pub fn serves(path: &str) -> bool {
        path == "/"
            || path.starts_with("/incidents/")
            || path == "/api/v1/status"
            || path == "/api/v1/incidents"
            || path.starts_with("/api/v1/incidents/")
    }

    /// The answer to `GET path?query`; blocking (reads the store).
    pub fn answer(&self, path: &str, query: Option<&str>) -> Reply {
        let now = self.clock.now();
        match path {
            "/" => {
                let board = self.board.snapshot();
                let view = StatusView::new(&board, now);
                let recent = self
                    .select(
                        &Selection::default(),
                        PAGE_INCIDENTS + view.open_incidents.len(),
                    )
                    .unwrap_or_default();
                let recent: Vec<IncidentView> = recent
                    .iter()
                    .map(|r| IncidentView::new(&r.target, &r.incident, now))
                    .collect();
                Reply::html(200, html::status_page(&view, &recent))
            }
            "/api/v1/status" => match pretty(query) {
                Ok(pretty) => {
                    Reply::json_as(200, &StatusView::new(&self.board.snapshot(), now), pretty)
                }
                Err(e) => Reply::error(400, &e),
            },
            "/api/v1/incidents" => {
                let filter = match Filter::parse(query, now) {
                    Ok(f) => f,
                    Err(e) => return Reply::error(400, &e),
                };
                let which = Selection {
                    target: filter.target.as_deref(),
                    since_micros: filter.since.map(|t| t.timestamp_micros()),
                    until_micros: filter.until.map(|t| t.timestamp_micros()),
                    run: filter.run.as_deref(),
                };
                match self.select(&which, filter.limit) {
                    Ok(records) => Reply::json(
                        200,
                        &IncidentList {
                            incidents: records
                                .iter()
                                .map(|r| IncidentView::new(&r.target, &r.incident, now))
                                .collect(),
                        },
                    ),
                    Err(e) => Reply::error(503, &e),
                }
            }
            _ => {
                if let Some(id) = path.strip_prefix("/api/v1/incidents/") {
                    return match self.detail(id, now) {
                        Ok(Some(d)) => Reply::json(200, &d),
                        Ok(None) => Reply::error(404, "no such incident"),
                        Err(e) => Reply::error(503, &e),
                    };
                }
                if let Some(id) = path.strip_prefix("/incidents/") {
                    let instance = self.board.snapshot().agent.instance;
                    return match self.detail(id, now) {
                        Ok(Some(d)) => Reply::html(200, html::incident_page(&instance, &d)),
                        Ok(None) => Reply::html(404, html::not_found_page("No such incident.")),
                        Err(e) => Reply::html(503, html::not_found_page(&e)),
                    };
                }
                Reply::error(404, "not found")
            }
        }
    }

    fn select(&self, which: &Selection<'_>, limit: usize) -> Result<Vec<IncidentRecord>, String> {
        let Some(store) = &self.store else {
            return Ok(Vec::new());
        };
        history::select(store, which, limit)
            .map_err(|e| format!("cannot read the incident history: {e}"))
    }

    /// One incident with its timeline and notifications; `None` if no
    /// stored incident has this id.
    fn detail(&self, id: &str, now: DateTime<Utc>) -> Result<Option<IncidentDetail>, String> {
        let valid = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
        let Some(store) = self.store.as_ref().filter(|_| valid) else {
            return Ok(None);
        };
        let id = id.to_ascii_lowercase();
        let found = history::find(store, |at, target| id_of_key(at, target) == id)
            .map_err(|e| format!("cannot read the incident history: {e}"))?;
        let Some(record) = found else { return Ok(None) };
        let notifications = notifications(store, &record)?;
        let board = self.board.snapshot();
        Ok(Some(IncidentDetail::new(
            &record.target,
            &record.incident,
            board.targets.get(&record.target),
            notifications,
            now,
        )))
    }
}

/// The notifications of an incident: those the outbox still holds (queued
/// or retrying) and those it delivered or gave up on, oldest first.
fn notifications(store: &Store, record: &IncidentRecord) -> Result<Vec<NotificationView>, String> {
    let started = record.incident.started_at;
    let mut out = Vec::new();
    let rows = outbox::all_rows(store).map_err(|e| format!("cannot read the outbox: {e}"))?;
    for entry in rows {
        let Ok(event) = stored::queued(&entry) else {
            continue;
        };
        if event.target != record.target || event.started_at != started || event.test {
            continue;
        }
        out.push((
            entry.id,
            NotificationView {
                receiver: entry.receiver.clone(),
                status: event.status.as_str().to_string(),
                reminder: event.reminder,
                outcome: "queued".into(),
                queued_at: super::json::time(entry.created_at),
                done_at: None,
                attempts: entry.attempts,
                next_attempt_at: Some(super::json::time(entry.next_attempt_at)),
                last_error: entry.last_error.clone(),
            },
        ));
    }
    for done in outbox::sent_for(store, &record.target, started.timestamp_micros())
        .map_err(|e| format!("cannot read the delivery log: {e}"))?
    {
        out.push((
            done.id,
            NotificationView {
                receiver: done.receiver,
                status: done.status,
                reminder: done.reminder,
                outcome: done.outcome,
                queued_at: super::json::time(done.created_at),
                done_at: Some(super::json::time(done.done_at)),
                attempts: done.attempts,
                next_attempt_at: None,
                last_error: done.last_error,
            },
        ));
    }
    out.sort_by_key(|(id, _)| *id);
    Ok(out.into_iter().map(|(_, n)| n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/api/v1/status` is one line of JSON unless `pretty` asks for it
    /// indented; both carry the same data, and a bad `pretty` is a 400.
    #[test]
    fn status_json_is_compact_unless_pretty_is_asked() {
        let clock = crate::clock::system();
        let pages = Pages::new(Shared::new("cas<01>", clock.now()), None, clock);
        let compact = pages.answer("/api/v1/status", None);
        assert_eq!(compact.status, 200);
        assert_eq!(compact.content_type, JSON);
        assert_eq!(compact.body.lines().count(), 1, "{}", compact.body);
        assert!(compact.body.starts_with("{\"instance\":\"cas<01>\","));
        assert!(compact.body.ends_with("}\n"));
        let data = |r: &Reply| {
            let mut v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            for moving in ["uptime_seconds", "generated_at"] {
                v[moving] = serde_json::Value::Null;
            }
            v
        };
        for query in ["pretty", "pretty=1", "pretty=true", "limit=5&pretty"] {
            let indented = pages.answer("/api/v1/status", Some(query));
            assert_eq!(indented.status, 200, "{query}");
            assert!(
                indented
                    .body
                    .starts_with("{\n  \"instance\": \"cas<01>\",\n"),
                "{query}: {}",
                indented.body
            );
            assert_eq!(data(&indented), data(&compact), "{query}");
        }
        for query in ["pretty=0", "pretty=false", "other=1"] {
            let body = pages.answer("/api/v1/status", Some(query)).body;
            assert_eq!(body.lines().count(), 1, "{query}: {body}");
        }
        let bad = pages.answer("/api/v1/status", Some("pretty=yes"));
        assert_eq!(bad.status, 400);
        assert!(bad.body.contains("pretty: expected"), "{}", bad.body);
    }

    #[test]
    fn filters_read_targets_times_durations_and_bounded_limits() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let f = Filter::parse(Some("target=%3Cb%3E+x&since=2h&limit=5"), now).unwrap();
        assert_eq!(f.target.as_deref(), Some("<b> x"));
        assert_eq!(f.since, Some(now - chrono::Duration::hours(2)));
        assert_eq!(f.limit, 5);
        let f = Filter::parse(Some("since=2026-12-01T00:00:00Z"), now).unwrap();
        assert_eq!(f.since.unwrap().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(f.limit, DEFAULT_LIMIT);
        assert!(Filter::parse(Some("limit=1001"), now).is_err());
        assert!(Filter::parse(Some("limit=0"), now).is_err());
        assert!(Filter::parse(Some("since=soon"), now).is_err());
        let f = Filter::parse(
            Some("run=golive+12&since=2026-12-03T06:00:00Z&until=1h"),
            now,
        )
        .unwrap();
        assert_eq!(f.run.as_deref(), Some("golive 12"));
        assert_eq!(f.until, Some(now - chrono::Duration::hours(1)));
        assert!(f.since < f.until);
        assert!(Filter::parse(Some("until=later"), now)
            .unwrap_err()
            .starts_with("until: "));
    }
}
