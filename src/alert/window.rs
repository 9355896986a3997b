//! Maintenance windows at work: whether a [`MaintenanceWindow`] is open at
//! a given time and holds pages of a target. `config` holds the validated
//! schedule as data; evaluating it against the clock is alerting's business,
//! so it lives here (an inherent impl on the configuration type).

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::config::alerting::{MaintenanceWindow, WindowSchedule};

impl MaintenanceWindow {
    /// Whether the window holds pages of `target` at `at`.
    pub fn covers(&self, target: &str, at: DateTime<Utc>) -> bool {
        let target_ok = self.targets.is_empty() || self.targets.iter().any(|g| g.matches(target));
        target_ok && self.open_at(at)
    }

    /// Whether the window is open at `at`.
    pub fn open_at(&self, at: DateTime<Utc>) -> bool {
        match &self.schedule {
            WindowSchedule::Once { start, end } => *start <= at && at < *end,
            WindowSchedule::Weekly {
                weekday,
                at: time,
                duration,
            } => {
                // The latest start at or before `at`: this week's or last week's.
                let day = at.date_naive();
                let back =
                    (7 + day.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
                let mut start = Utc
                    .from_utc_datetime(&(day - chrono::Days::new(u64::from(back))).and_time(*time));
                if start > at {
                    start -= chrono::Duration::days(7);
                }
                at < start + to_chrono(*duration)
            }
            WindowSchedule::Daily { at: time, duration } => {
                let mut start = Utc.from_utc_datetime(&at.date_naive().and_time(*time));
                if start > at {
                    start -= chrono::Duration::days(1);
                }
                at < start + to_chrono(*duration)
            }
        }
    }
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
