//! Maintenance and change windows at work: whether a [`MaintenanceWindow`]
//! is open at a given time and holds pages of a target, which occurrence of
//! a planned change window ([`PlannedWindow`], `[[window]]`) is open at a
//! given time (pure, [`occurrence_at`]; the daemon stores it), whether a
//! stored change window covers a target, and when an incident is beyond its
//! tolerance. `config` holds the validated
//! schedule as data; evaluating it against the clock is alerting's business,
//! so it lives here (an inherent impl on the configuration type). A
//! recurring window starts at a local time of its zone, so "Sat 22:00
//! Europe/London" is 22:00 on the clocks of London on both sides of a
//! daylight-saving change; its length is elapsed time.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};

use crate::config::alerting::{
    local_instant, Glob, MaintenanceWindow, PlannedWindow, TimeZone, WindowSchedule,
};
use crate::detect::Incident;
use crate::human::{self, Style};
use crate::store::windows::{ChangeWindow, WindowSource};

impl MaintenanceWindow {
    /// Whether the window holds pages of `target` at `at`.
    pub fn covers(&self, target: &str, at: DateTime<Utc>) -> bool {
        let target_ok = self.targets.is_empty() || self.targets.iter().any(|g| g.matches(target));
        target_ok && self.open_at(at)
    }

    /// Whether the window is open at `at`.
    pub fn open_at(&self, at: DateTime<Utc>) -> bool {
        occurrence_at(&self.schedule, &self.time_zone, at).is_some()
    }
}

impl PlannedWindow {
    /// The occurrence open at `at` (its start and end), if any.
    pub fn occurrence_at(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        occurrence_at(&self.schedule, &self.time_zone, at)
    }

    /// The next occurrence that starts after `at`, if any.
    pub fn next_occurrence(&self, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        next_occurrence(&self.schedule, &self.time_zone, at)
    }

    /// The change window of the occurrence from `start` to `end`, as the
    /// daemon stores it (`store::windows::ensure_occurrence`).
    pub fn change_window(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> ChangeWindow {
        ChangeWindow {
            id: 0,
            name: self.name.clone(),
            source: WindowSource::Config,
            starts_at: start,
            ends_at: end,
            closed_at: None,
            targets: self.targets.iter().map(|g| g.0.clone()).collect(),
            tolerance: self.tolerance,
            max_down: self.max_down,
            max_incident: self.max_incident,
            note: self.note.clone(),
            by: None,
            summary_sent_at: None,
        }
    }
}

/// The occurrence of `schedule` (local times of `zone`) open at `at`: its
/// start and (exclusive) end. A recurring occurrence starts at the local
/// time on its day and lasts its duration of elapsed time.
pub fn occurrence_at(
    schedule: &WindowSchedule,
    zone: &TimeZone,
    at: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    match schedule {
        WindowSchedule::Once { start, end } => {
            (*start <= at && at < *end).then_some((*start, *end))
        }
        WindowSchedule::Weekly {
            weekday,
            at: time,
            duration,
        } => {
            // The latest start at or before `at`: this week's or last week's.
            let day = local_date(zone, at)?;
            let back =
                (7 + day.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
            let day = day - chrono::Days::new(u64::from(back));
            latest_occurrence(zone, day, *time, 7, at, *duration)
        }
        WindowSchedule::Daily { at: time, duration } => {
            let day = local_date(zone, at)?;
            latest_occurrence(zone, day, *time, 1, at, *duration)
        }
    }
}

/// The first occurrence of `schedule` that starts after `at`, if any.
pub fn next_occurrence(
    schedule: &WindowSchedule,
    zone: &TimeZone,
    at: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (weekday, time, duration) = match schedule {
        WindowSchedule::Once { start, end } => return (*start > at).then_some((*start, *end)),
        WindowSchedule::Weekly {
            weekday,
            at,
            duration,
        } => (Some(*weekday), *at, *duration),
        WindowSchedule::Daily { at, duration } => (None, *at, *duration),
    };
    let today = local_date(zone, at)?;
    (0..=8u64)
        .filter_map(|d| today.checked_add_days(chrono::Days::new(d)))
        .filter(|day| weekday.is_none_or(|w| day.weekday() == w))
        .filter_map(|day| local_instant(zone, day.and_time(time)))
        .find(|start| *start > at)
        .map(|start| (start, start + to_chrono(duration)))
}

/// Whether the change window `window` covers `target` at `at`: open then,
/// and one of its patterns matches (no pattern covers every target).
pub fn change_window_covers(window: &ChangeWindow, target: &str, at: DateTime<Utc>) -> bool {
    window.is_open_at(at)
        && (window.targets.is_empty()
            || window
                .targets
                .iter()
                .any(|p| Glob(p.clone()).matches(target)))
}

/// Why `incident` (of a target `window` covers) is beyond the window's
/// tolerance at `at`, in words, or `None` while it is within it: the
/// latency `latency` at or above `tolerance` x the baseline (the
/// incident's at onset, else `baseline`), down for longer than `max_down`
/// (since it went down), or open for longer than `max_incident`.
pub fn beyond_tolerance(
    window: &ChangeWindow,
    incident: &Incident,
    baseline: Option<Duration>,
    latency: Option<Duration>,
    at: DateTime<Utc>,
) -> Option<String> {
    let since = |t: DateTime<Utc>| (at - t).to_std().unwrap_or_default();
    if let (Some(latency), Some(base)) = (latency, incident.baseline_at_onset.or(baseline)) {
        let ratio = latency.as_secs_f64() / base.as_secs_f64();
        if !base.is_zero() && ratio >= window.tolerance {
            return Some(format!(
                "latency {} is {} the {} baseline (tolerance {}x)",
                human::duration(latency, Style::Latency),
                factor(ratio),
                human::duration(base, Style::Latency),
                window.tolerance
            ));
        }
    }
    if incident.kind.as_str() == "down" {
        let down = since(incident.escalated_at.unwrap_or(incident.started_at));
        if down > window.max_down {
            return Some(format!(
                "down for {} (max_down {})",
                human::duration(down, Style::Spaced),
                human::duration(window.max_down, Style::Config)
            ));
        }
    }
    let open = since(incident.started_at);
    if open > window.max_incident {
        return Some(format!(
            "open for {} (max_incident {})",
            human::duration(open, Style::Spaced),
            human::duration(window.max_incident, Style::Config)
        ));
    }
    None
}

/// A ratio as a factor: `21x`, `4.5x`.
fn factor(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.1}x")
    }
}

/// The occurrence of a recurring window that starts at `time` on `day`
/// (local), or `period_days` earlier if that start is still ahead of `at`,
/// when it is open at `at`.
fn latest_occurrence(
    zone: &TimeZone,
    day: NaiveDate,
    time: NaiveTime,
    period_days: u64,
    at: DateTime<Utc>,
    duration: Duration,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = |day: NaiveDate| local_instant(zone, day.and_time(time));
    let latest = match start(day) {
        Some(s) if s <= at => Some(s),
        _ => day
            .checked_sub_days(chrono::Days::new(period_days))
            .and_then(start),
    }?;
    let end = latest + to_chrono(duration);
    (latest <= at && at < end).then_some((latest, end))
}

/// The local calendar date of `at` in `zone`.
fn local_date(zone: &TimeZone, at: DateTime<Utc>) -> Option<NaiveDate> {
    let stamp = jiff::Timestamp::from_second(at.timestamp()).ok()?;
    let date = zone.to_datetime(stamp).date();
    NaiveDate::from_ymd_opt(
        i32::from(date.year()),
        u32::try_from(date.month()).ok()?,
        u32::try_from(date.day()).ok()?,
    )
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::alerting::AlertingConfig;

    fn parse(text: &str) -> Result<AlertingConfig, impl std::fmt::Debug> {
        crate::config::alerting::parse(text, Path::new(""), "agent.example")
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn windows_open_and_close() {
        let c = parse(
            r#"
            [[maintenance]]
            name = "patch night"
            targets = ["owa"]
            weekly = "Sat 22:00"
            duration = "4h"
            [[maintenance]]
            daily = "23:30"
            duration = "1h"
            [[maintenance]]
            start = "2026-12-01T10:00:00Z"
            end = "2026-12-01T11:00:00Z"
            "#,
        )
        .unwrap();
        let weekly = &c.maintenance[0];
        // 2026-12-05 is a Saturday.
        assert!(!weekly.covers("owa", at("2026-12-05T21:59:59Z")));
        assert!(weekly.covers("owa", at("2026-12-05T22:00:00Z")));
        assert!(weekly.covers("owa", at("2026-12-06T01:59:59Z")));
        assert!(!weekly.covers("owa", at("2026-12-06T02:00:00Z")));
        assert!(!weekly.covers("smtp", at("2026-12-05T23:00:00Z")));
        let daily = &c.maintenance[1];
        assert!(daily.covers("any", at("2026-12-02T00:15:00Z")));
        assert!(!daily.covers("any", at("2026-12-02T00:30:00Z")));
        assert!(daily.covers("any", at("2026-12-02T23:30:00Z")));
        let once = &c.maintenance[2];
        assert!(once.covers("x", at("2026-12-01T10:30:00Z")));
        assert!(!once.covers("x", at("2026-12-01T11:00:00Z")));
    }
}

/// When an incident is beyond a change window's tolerance (pure, on
/// explicit instants).
#[cfg(test)]
mod tolerance {
    use super::*;
    use crate::store::windows::WindowSource;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn window() -> ChangeWindow {
        ChangeWindow {
            id: 1,
            name: "batch1".into(),
            source: WindowSource::Command,
            starts_at: at(-3600),
            ends_at: at(3600),
            closed_at: None,
            targets: vec!["owa*".into()],
            tolerance: 10.0,
            max_down: Duration::from_secs(300),
            max_incident: Duration::from_secs(1800),
            note: None,
            by: None,
            summary_sent_at: None,
        }
    }

    fn incident(kind: &str, escalated_at: Option<DateTime<Utc>>) -> Incident {
        serde_json::from_value(serde_json::json!({
            "kind": kind, "started_at": at(0), "detected_at": at(60),
            "recovered_at": null, "closed_at": null, "peak_latency": null,
            "baseline_at_onset": {"secs": 0, "nanos": 180_000_000}, "worst_phase": null,
            "slow_count": 3, "failed_count": 0, "escalated_at": escalated_at
        }))
        .unwrap()
    }

    #[test]
    fn covers_by_pattern_while_open() {
        let w = window();
        assert!(change_window_covers(&w, "owa-1", at(0)));
        assert!(!change_window_covers(&w, "smtp", at(0)));
        assert!(!change_window_covers(&w, "owa-1", at(3600)));
    }

    #[test]
    fn latency_at_or_above_tolerance_times_the_baseline() {
        let (w, i) = (window(), incident("slow", None));
        let ms = Duration::from_millis;
        assert_eq!(beyond_tolerance(&w, &i, None, Some(ms(1799)), at(60)), None);
        assert_eq!(
            beyond_tolerance(&w, &i, None, Some(ms(1800)), at(60)).as_deref(),
            Some("latency 1.8 s is 10x the 180 ms baseline (tolerance 10x)")
        );
        // 3x is a blip the window expects; no latency (a failure) says nothing.
        assert_eq!(beyond_tolerance(&w, &i, None, Some(ms(540)), at(60)), None);
        assert_eq!(beyond_tolerance(&w, &i, None, None, at(60)), None);
    }

    #[test]
    fn down_longer_than_max_down_since_it_went_down() {
        let w = window();
        let down = incident("down", None);
        assert_eq!(beyond_tolerance(&w, &down, None, None, at(300)), None);
        assert_eq!(
            beyond_tolerance(&w, &down, None, None, at(301)).as_deref(),
            Some("down for 5m 1s (max_down 5m)")
        );
        // Slow first, down from 10 minutes in: counted from the escalation.
        let escalated = incident("down", Some(at(600)));
        assert_eq!(beyond_tolerance(&w, &escalated, None, None, at(900)), None);
        assert!(beyond_tolerance(&w, &escalated, None, None, at(901)).is_some());
        // A slow incident is never "down for long".
        assert_eq!(
            beyond_tolerance(&w, &incident("slow", None), None, None, at(901)),
            None
        );
    }

    #[test]
    fn open_longer_than_max_incident() {
        let (w, i) = (window(), incident("slow", None));
        assert_eq!(beyond_tolerance(&w, &i, None, None, at(1800)), None);
        assert_eq!(
            beyond_tolerance(&w, &i, None, None, at(1801)).as_deref(),
            Some("open for 30m 1s (max_incident 30m)")
        );
    }
}

/// Windows in local time across daylight-saving changes, on explicit
/// instants (the clock is the caller's): Europe/London's March and October
/// changes of 2026 (01:00 UTC on 29 March and 25 October) and
/// America/New_York's (07:00 UTC on 8 March, 06:00 UTC on 1 November).
#[cfg(test)]
mod time_zones {
    use std::path::Path;

    use super::*;
    use crate::config::alerting::AlertingConfig;

    fn parse(text: &str) -> AlertingConfig {
        crate::config::alerting::parse(text, Path::new(""), "agent.example").unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Asserts the window opens at `start` and closes at `end` (UTC).
    fn opens_and_closes(w: &MaintenanceWindow, start: &str, end: &str) {
        let (s, e) = (at(start), at(end));
        let second = chrono::Duration::seconds(1);
        assert!(!w.open_at(s - second), "{} open before {start}", w.name);
        assert!(w.open_at(s), "{} not open at {start}", w.name);
        assert!(w.open_at(e - second), "{} not open until {end}", w.name);
        assert!(!w.open_at(e), "{} still open at {end}", w.name);
    }

    #[test]
    fn weekly_sat_22_london_is_22_local_on_both_sides_of_both_changes() {
        let c = parse(
            r#"
            [[maintenance]]
            name = "patch"
            weekly = "Sat 22:00"
            duration = "4h"
            time_zone = "Europe/London"
            "#,
        );
        let w = &c.maintenance[0];
        // October: Sat 24th is summer time (UTC+1), Sat 31st winter (UTC).
        opens_and_closes(w, "2026-10-24T21:00:00Z", "2026-10-25T01:00:00Z");
        opens_and_closes(w, "2026-10-31T22:00:00Z", "2026-11-01T02:00:00Z");
        // March: Sat 28th is winter time, Sat 4 April summer time.
        opens_and_closes(w, "2026-03-28T22:00:00Z", "2026-03-29T02:00:00Z");
        opens_and_closes(w, "2026-04-04T21:00:00Z", "2026-04-05T01:00:00Z");
    }

    #[test]
    fn weekly_across_the_new_york_changes() {
        let c = parse(
            r#"
            [[maintenance]]
            weekly = "Sun 03:00"
            duration = "2h"
            time_zone = "America/New_York"
            "#,
        );
        let w = &c.maintenance[0];
        // Sun 1 March EST (UTC-5); Sun 8 March: 03:00 is the first local hour
        // of summer time (UTC-4), an hour after the change.
        opens_and_closes(w, "2026-03-01T08:00:00Z", "2026-03-01T10:00:00Z");
        opens_and_closes(w, "2026-03-08T07:00:00Z", "2026-03-08T09:00:00Z");
        // Sun 1 November: 03:00 is winter time again, two hours after the
        // clocks went back at 02:00 summer time.
        opens_and_closes(w, "2026-10-25T07:00:00Z", "2026-10-25T09:00:00Z");
        opens_and_closes(w, "2026-11-01T08:00:00Z", "2026-11-01T10:00:00Z");
    }

    #[test]
    fn daily_follows_local_time_through_a_gap_and_a_fold() {
        let c = parse(
            r#"
            [[maintenance]]
            name = "nine"
            daily = "09:00"
            duration = "30m"
            time_zone = "America/New_York"
            [[maintenance]]
            name = "half past one"
            daily = "01:30"
            duration = "1h"
            time_zone = "Europe/London"
            "#,
        );
        let nine = &c.maintenance[0];
        opens_and_closes(nine, "2026-03-07T14:00:00Z", "2026-03-07T14:30:00Z");
        opens_and_closes(nine, "2026-03-08T13:00:00Z", "2026-03-08T13:30:00Z");
        opens_and_closes(nine, "2026-10-31T13:00:00Z", "2026-10-31T13:30:00Z");
        opens_and_closes(nine, "2026-11-01T14:00:00Z", "2026-11-01T14:30:00Z");
        let half = &c.maintenance[1];
        // 29 March: 01:30 does not exist (01:00 GMT -> 02:00 BST); the window
        // opens as far into the day as 01:30 is, 02:30 BST = 01:30 UTC.
        opens_and_closes(half, "2026-03-28T01:30:00Z", "2026-03-28T02:30:00Z");
        opens_and_closes(half, "2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z");
        opens_and_closes(half, "2026-03-30T00:30:00Z", "2026-03-30T01:30:00Z");
        // 25 October: 01:30 happens twice; the window opens at the first
        // (BST, 00:30 UTC) and lasts an hour of elapsed time.
        opens_and_closes(half, "2026-10-24T00:30:00Z", "2026-10-24T01:30:00Z");
        opens_and_closes(half, "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z");
        opens_and_closes(half, "2026-10-26T01:30:00Z", "2026-10-26T02:30:00Z");
    }

    #[test]
    fn one_off_local_times_are_read_in_the_zone() {
        let c = parse(
            r#"
            [[maintenance]]
            name = "london night of the change"
            start = "2026-10-25T00:30"
            end = "2026-10-25T03:00"
            time_zone = "Europe/London"
            [[maintenance]]
            name = "new york spring night"
            start = "2026-03-08T01:00:00"
            end = "2026-03-08T04:00:00"
            time_zone = "America/New_York"
            [[maintenance]]
            name = "london spring morning, offsets given"
            start = "2026-03-29T00:30:00+00:00"
            end = "2026-03-29T03:00:00+01:00"
            time_zone = "Europe/London"
            "#,
        );
        // 00:30 BST is 23:30 UTC the day before; 03:00 GMT is 03:00 UTC.
        opens_and_closes(
            &c.maintenance[0],
            "2026-10-24T23:30:00Z",
            "2026-10-25T03:00:00Z",
        );
        // 01:00 EST to 04:00 EDT: two hours, the clocks skip one.
        opens_and_closes(
            &c.maintenance[1],
            "2026-03-08T06:00:00Z",
            "2026-03-08T08:00:00Z",
        );
        // An explicit offset is an instant: the zone does not change it.
        opens_and_closes(
            &c.maintenance[2],
            "2026-03-29T00:30:00Z",
            "2026-03-29T02:00:00Z",
        );
    }

    #[test]
    fn without_a_zone_windows_stay_in_utc() {
        let c = parse(
            r#"
            [[maintenance]]
            weekly = "Sat 22:00"
            duration = "4h"
            [[maintenance]]
            start = "2026-10-25T00:30"
            end = "2026-10-25T03:00"
            "#,
        );
        opens_and_closes(
            &c.maintenance[0],
            "2026-10-24T22:00:00Z",
            "2026-10-25T02:00:00Z",
        );
        opens_and_closes(
            &c.maintenance[1],
            "2026-10-25T00:30:00Z",
            "2026-10-25T03:00:00Z",
        );
    }

    #[test]
    fn an_unknown_zone_is_an_error_naming_its_key() {
        let text = "[[maintenance]]\ndaily = \"02:00\"\nduration = \"1h\"\ntime_zone = \"Europe/Lundon\"\n";
        let err = crate::config::alerting::parse(text, Path::new(""), "agent.example")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("maintenance[0].time_zone: unknown time zone \"Europe/Lundon\""),
            "{err}"
        );
    }
}

/// The occurrence of a planned change window open at a given instant (start
/// and end, what the daemon stores), across daylight-saving changes: both
/// of Europe/London's in 2026 (01:00 UTC on 29 March and 25 October) and
/// America/New_York's autumn one (06:00 UTC on 1 November), for one-off,
/// daily and weekly schedules. The clock is the caller's.
#[cfg(test)]
mod planned_occurrences {
    use std::path::Path;

    use super::*;

    fn windows(text: &str) -> Vec<PlannedWindow> {
        crate::config::alerting::parse(text, Path::new(""), "agent.example")
            .unwrap()
            .windows
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Asserts the occurrence open from `start` to `end` is found at its
    /// first and last second and in between, and is not open just outside.
    fn occurs(w: &PlannedWindow, start: &str, end: &str) {
        let (s, e) = (at(start), at(end));
        let second = chrono::Duration::seconds(1);
        for t in [s, s + (e - s) / 2, e - second] {
            assert_eq!(w.occurrence_at(t), Some((s, e)), "{} at {t}", w.name);
        }
        assert_ne!(w.occurrence_at(s - second), Some((s, e)), "{}", w.name);
        assert_ne!(
            w.occurrence_at(e),
            Some((s, e)),
            "{} still open at {end}",
            w.name
        );
        assert_eq!(
            w.next_occurrence(s - second).map(|o| o.0),
            Some(s),
            "{}: next before {start}",
            w.name
        );
    }

    #[test]
    fn weekly_sat_22_london_across_both_changes() {
        let w = &windows(
            r#"
            [[window]]
            name = "batch"
            weekly = "Sat 22:00"
            duration = "6h"
            time_zone = "Europe/London"
            "#,
        )[0];
        // October: 24th summer time (UTC+1), 31st winter time; the night of
        // the change is an hour longer on the clocks, not in elapsed time.
        occurs(w, "2026-10-24T21:00:00Z", "2026-10-25T03:00:00Z");
        occurs(w, "2026-10-31T22:00:00Z", "2026-11-01T04:00:00Z");
        // March: 28th winter time, 4 April summer time.
        occurs(w, "2026-03-28T22:00:00Z", "2026-03-29T04:00:00Z");
        occurs(w, "2026-04-04T21:00:00Z", "2026-04-05T03:00:00Z");
        assert_eq!(w.occurrence_at(at("2026-10-27T12:00:00Z")), None);
        assert_eq!(
            w.next_occurrence(at("2026-10-27T12:00:00Z")),
            Some((at("2026-10-31T22:00:00Z"), at("2026-11-01T04:00:00Z")))
        );
    }

    #[test]
    fn daily_0130_london_through_the_gap_and_the_fold() {
        let w = &windows(
            r#"
            [[window]]
            name = "nightly"
            daily = "01:30"
            duration = "1h"
            time_zone = "Europe/London"
            "#,
        )[0];
        occurs(w, "2026-03-28T01:30:00Z", "2026-03-28T02:30:00Z");
        // 01:30 does not exist on 29 March: 02:30 BST, 01:30 UTC.
        occurs(w, "2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z");
        occurs(w, "2026-03-30T00:30:00Z", "2026-03-30T01:30:00Z");
        // 01:30 happens twice on 25 October: the first (BST).
        occurs(w, "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z");
        occurs(w, "2026-10-26T01:30:00Z", "2026-10-26T02:30:00Z");
    }

    #[test]
    fn weekly_and_daily_new_york_autumn_change() {
        let ws = windows(
            r#"
            [[window]]
            name = "sunday"
            weekly = "Sun 01:30"
            duration = "2h"
            time_zone = "America/New_York"
            [[window]]
            name = "evening"
            daily = "20:00"
            duration = "8h"
            time_zone = "America/New_York"
            "#,
        );
        // Sun 1 November: 01:30 happens twice; the first is EDT (05:30 UTC).
        occurs(&ws[0], "2026-10-25T05:30:00Z", "2026-10-25T07:30:00Z");
        occurs(&ws[0], "2026-11-01T05:30:00Z", "2026-11-01T07:30:00Z");
        occurs(&ws[0], "2026-11-08T06:30:00Z", "2026-11-08T08:30:00Z");
        // 20:00 EDT on 31 October runs through the change: 8h elapsed.
        occurs(&ws[1], "2026-11-01T00:00:00Z", "2026-11-01T08:00:00Z");
        occurs(&ws[1], "2026-11-02T01:00:00Z", "2026-11-02T09:00:00Z");
    }

    #[test]
    fn one_off_local_times_on_change_nights() {
        let ws = windows(
            r#"
            [[window]]
            name = "london autumn"
            start = "2026-10-25T00:30"
            end = "2026-10-25T03:00"
            time_zone = "Europe/London"
            [[window]]
            name = "london spring"
            start = "2026-03-29T00:30"
            end = "2026-03-29T03:00"
            time_zone = "Europe/London"
            [[window]]
            name = "new york autumn"
            start = "2026-11-01T00:00"
            end = "2026-11-01T03:00"
            time_zone = "America/New_York"
            "#,
        );
        // 00:30 BST (23:30 UTC the day before) to 03:00 GMT.
        occurs(&ws[0], "2026-10-24T23:30:00Z", "2026-10-25T03:00:00Z");
        // 00:30 GMT to 03:00 BST: an hour and a half elapsed.
        occurs(&ws[1], "2026-03-29T00:30:00Z", "2026-03-29T02:00:00Z");
        // 00:00 EDT to 03:00 EST: four hours elapsed.
        occurs(&ws[2], "2026-11-01T04:00:00Z", "2026-11-01T08:00:00Z");
        assert_eq!(ws[2].next_occurrence(at("2026-11-01T05:00:00Z")), None);
    }

    #[test]
    fn an_occurrence_is_a_configured_change_window() {
        let w = &windows(
            r#"
            [[window]]
            name = "batch"
            targets = ["owa*"]
            daily = "22:00"
            duration = "2h"
            tolerance = 4
            note = "moves"
            "#,
        )[0];
        let (s, e) = w.occurrence_at(at("2026-12-05T23:00:00Z")).unwrap();
        let c = w.change_window(s, e);
        assert_eq!(c.source, WindowSource::Config);
        assert_eq!((c.starts_at, c.ends_at), (s, e));
        assert!(change_window_covers(
            &c,
            "owa-1",
            at("2026-12-05T23:00:00Z")
        ));
        assert!(!change_window_covers(
            &c,
            "smtp",
            at("2026-12-05T23:00:00Z")
        ));
        assert_eq!(c.tolerance, 4.0);
        assert_eq!(c.note.as_deref(), Some("moves"));
    }
}
