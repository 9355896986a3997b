//! `[[maintenance]]`: a one-off window (`start`, `end`) or a recurring one
//! (`weekly` or `daily` with `duration`), in the local time of its IANA
//! `time_zone` (default UTC), which is looked up once here in the system's
//! time zone database. [`build_schedule`] reads those keys for
//! `[[window]]` too. Whether a window is open at a given time is
//! `alert/window.rs`'s business.

use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc, Weekday};

use super::*;
use crate::config::alerting::{local_instant, Glob, MaintenanceWindow, TimeZone, WindowSchedule};
use crate::config::raw::RawMaintenance;

/// The schedule keys `[[maintenance]]` and `[[window]]` share.
pub(super) struct ScheduleKeys {
    pub start: Option<String>,
    pub end: Option<String>,
    pub weekly: Option<String>,
    pub daily: Option<String>,
    pub duration: Option<HumanDuration>,
    pub time_zone: Option<String>,
}

pub(super) fn build_window(
    c: &mut Checker<'_>,
    path: &KeyPath,
    m: RawMaintenance,
) -> Option<MaintenanceWindow> {
    if let Some(message) = m.name.as_deref().and_then(hidden_char_error) {
        c.error_at(&path.key("name"), message);
        return None;
    }
    let name = m.name.unwrap_or_else(|| path.to_string());
    let targets: Vec<Glob> = m
        .targets
        .unwrap_or_default()
        .into_iter()
        .map(Glob)
        .collect();
    let keys = ScheduleKeys {
        start: m.start,
        end: m.end,
        weekly: m.weekly,
        daily: m.daily,
        duration: m.duration,
        time_zone: m.time_zone,
    };
    let (schedule, time_zone) = build_schedule(c, path, keys)?;
    Some(MaintenanceWindow {
        name,
        targets,
        schedule,
        time_zone,
    })
}

/// Reads a window's schedule and zone, reporting at `path`'s keys.
pub(super) fn build_schedule(
    c: &mut Checker<'_>,
    path: &KeyPath,
    m: ScheduleKeys,
) -> Option<(WindowSchedule, TimeZone)> {
    let key = |k: &str| path.key(k);
    let time_zone = match m.time_zone.as_deref() {
        None => TimeZone::UTC,
        Some(zone) => match TimeZone::get(zone) {
            Ok(tz) => tz,
            Err(_) => {
                c.error_at(
                    &key("time_zone"),
                    format!(
                        "unknown time zone {zone:?} (expected an IANA name from the system's time zone database, e.g. \"Europe/London\")"
                    ),
                );
                return None;
            }
        },
    };
    let schedule = match (m.start, m.end, m.weekly, m.daily) {
        (Some(start), Some(end), None, None) => {
            if m.duration.is_some() {
                c.error_at(
                    &key("duration"),
                    "not valid with start/end (use end, or weekly/daily with duration)",
                );
                return None;
            }
            let s = parse_time(c, &key("start"), &start, &time_zone)?;
            let t = parse_time(c, &key("end"), &end, &time_zone)?;
            if t <= s {
                c.error_at(&key("end"), "must be after start");
                return None;
            }
            WindowSchedule::Once { start: s, end: t }
        }
        (Some(_), None, None, None) => {
            c.error_at(
                path,
                "missing field `end` (a one-off window needs start and end)",
            );
            return None;
        }
        (None, Some(_), None, None) => {
            c.error_at(
                path,
                "missing field `start` (a one-off window needs start and end)",
            );
            return None;
        }
        (None, None, Some(weekly), None) => {
            let Some((day, time)) = weekly.split_once(' ') else {
                c.error_at(
                    &key("weekly"),
                    format!("invalid weekly start {weekly:?} (expected e.g. \"Sat 22:00\", local time of time_zone)"),
                );
                return None;
            };
            let weekday = match day.parse::<Weekday>() {
                Ok(d) => d,
                Err(_) => {
                    c.error_at(
                        &key("weekly"),
                        format!(
                            "invalid weekly start {weekly:?} (expected e.g. \"Sat 22:00\", local time of time_zone)"
                        ),
                    );
                    return None;
                }
            };
            let at = parse_clock(c, &key("weekly"), time)?;
            let duration = window_duration(c, path, m.duration, Duration::from_secs(7 * 86400))?;
            WindowSchedule::Weekly {
                weekday,
                at,
                duration,
            }
        }
        (None, None, None, Some(daily)) => {
            let at = parse_clock(c, &key("daily"), &daily)?;
            let duration = window_duration(c, path, m.duration, Duration::from_secs(86400))?;
            WindowSchedule::Daily { at, duration }
        }
        (None, None, None, None) => {
            c.error_at(
                path,
                "needs start and end (one-off), or weekly or daily with duration (recurring)",
            );
            return None;
        }
        _ => {
            c.error_at(
                path,
                "use one of: start and end, weekly with duration, daily with duration",
            );
            return None;
        }
    };
    Some((schedule, time_zone))
}

fn window_duration(
    c: &mut Checker<'_>,
    path: &KeyPath,
    d: Option<HumanDuration>,
    max: Duration,
) -> Option<Duration> {
    match d {
        None => {
            c.error_at(
                path,
                "missing field `duration` (required for a recurring window)",
            );
            None
        }
        Some(d) if d.get().is_zero() || d.get() > max => {
            c.error_at(
                &path.key("duration"),
                format!(
                    "must be greater than zero and at most {}",
                    HumanDuration(max)
                ),
            );
            None
        }
        Some(d) => Some(d.get()),
    }
}

/// An instant: RFC 3339 with its offset, or a local date and time of `zone`
/// (`2026-10-24T22:00` or with seconds).
fn parse_time(
    c: &mut Checker<'_>,
    key: &KeyPath,
    text: &str,
    zone: &TimeZone,
) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let local = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok());
    match local.and_then(|l| local_instant(zone, l)) {
        Some(t) => Some(t),
        None => {
            c.error_at(
                key,
                format!("invalid time {text:?} (expected RFC 3339, e.g. \"2026-12-05T22:00:00Z\", or a local time of time_zone, e.g. \"2026-12-05T22:00\")"),
            );
            None
        }
    }
}

fn parse_clock(c: &mut Checker<'_>, key: &KeyPath, text: &str) -> Option<NaiveTime> {
    match NaiveTime::parse_from_str(text, "%H:%M") {
        Ok(t) => Some(t),
        Err(_) => {
            c.error_at(
                key,
                format!("invalid time of day {text:?} (expected HH:MM, local time of time_zone)"),
            );
            None
        }
    }
}
