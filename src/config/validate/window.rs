//! `[[window]]`: planned change windows. The schedule keys are
//! `[[maintenance]]`'s (`start`/`end`, or `weekly`/`daily` with `duration`,
//! in `time_zone`), read by [`super::maintenance::build_schedule`]; the
//! window's own keys are its name (required, unique), `targets`,
//! `tolerance`, `max_down`, `max_incident` and `note`, defaulted here.

use std::collections::HashSet;

use super::maintenance::{build_schedule, ScheduleKeys};
use super::*;
use crate::config::alerting::{
    Glob, PlannedWindow, DEFAULT_WINDOW_MAX_DOWN, DEFAULT_WINDOW_MAX_INCIDENT,
    DEFAULT_WINDOW_TOLERANCE,
};
use crate::config::raw::RawWindow;

/// Longest window name, in bytes (what the state store takes).
const MAX_NAME: usize = 128;
/// Longest note, in bytes (what the state store takes).
const MAX_NOTE: usize = 1024;

/// Validates every `[[window]]`, reporting at `window[i].key`.
pub(super) fn build_windows(c: &mut Checker<'_>, raw: Vec<RawWindow>) -> Vec<PlannedWindow> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, w) in raw.into_iter().enumerate() {
        let path = KeyPath::default().key("window").index(i);
        if let Some(name) = &w.name {
            if !seen.insert(name.clone()) {
                c.error_at(&path.key("name"), format!("duplicate window name {name:?}"));
            }
        }
        if let Some(w) = build_one(c, &path, w) {
            out.push(w);
        }
    }
    out
}

fn build_one(c: &mut Checker<'_>, path: &KeyPath, w: RawWindow) -> Option<PlannedWindow> {
    let name = required_name(c, path, &w.name);
    if name.as_ref().is_some_and(|n| n.len() > MAX_NAME) {
        c.error_at(
            &path.key("name"),
            format!("must be at most {MAX_NAME} bytes"),
        );
    }
    let tolerance = w.tolerance.unwrap_or(DEFAULT_WINDOW_TOLERANCE);
    if !(tolerance.is_finite() && tolerance > 1.0) {
        c.error_at(
            &path.key("tolerance"),
            format!("must be a factor greater than 1 (times the baseline), got {tolerance}"),
        );
    }
    let positive = |c: &mut Checker<'_>, key: &str, d: Option<HumanDuration>, default| match d {
        Some(d) if d.get().is_zero() => {
            c.error_at(&path.key(key), "must be greater than zero");
            default
        }
        Some(d) => d.get(),
        None => default,
    };
    let max_down = positive(c, "max_down", w.max_down, DEFAULT_WINDOW_MAX_DOWN);
    let max_incident = positive(
        c,
        "max_incident",
        w.max_incident,
        DEFAULT_WINDOW_MAX_INCIDENT,
    );
    if let Some(note) = &w.note {
        if note.len() > MAX_NOTE {
            c.error_at(
                &path.key("note"),
                format!("must be at most {MAX_NOTE} bytes"),
            );
        }
    }
    let targets: Vec<Glob> = w
        .targets
        .unwrap_or_default()
        .into_iter()
        .map(Glob)
        .collect();
    let keys = ScheduleKeys {
        start: w.start,
        end: w.end,
        weekly: w.weekly,
        daily: w.daily,
        duration: w.duration,
        time_zone: w.time_zone,
    };
    let (schedule, time_zone) = build_schedule(c, path, keys)?;
    Some(PlannedWindow {
        name: name?,
        targets,
        schedule,
        time_zone,
        tolerance,
        max_down,
        max_incident,
        note: w.note,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::alerting::{parse, WindowSchedule};

    fn errors(text: &str) -> Vec<String> {
        match parse(text, Path::new(""), "agent.example") {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|e| format!("{}: {}", e.key, e.message))
                    .collect()
            }
        }
    }

    #[test]
    fn planned_windows_take_defaults_and_their_own_keys() {
        let c = parse(
            r#"
            [[window]]
            name = "batch weekend"
            targets = ["owa*", "imap*"]
            weekly = "Sat 22:00"
            duration = "6h"
            time_zone = "Europe/London"
            tolerance = 5
            max_down = "2m"
            max_incident = "1h"
            note = "mailbox moves"
            [[window]]
            name = "one night"
            start = "2026-12-05T22:00"
            end = "2026-12-06T02:00"
            "#,
            Path::new(""),
            "agent.example",
        )
        .unwrap();
        let w = &c.windows[0];
        assert_eq!(w.name, "batch weekend");
        assert_eq!(w.targets.len(), 2);
        assert_eq!(w.tolerance, 5.0);
        assert_eq!(w.max_down, Duration::from_secs(120));
        assert_eq!(w.max_incident, Duration::from_secs(3600));
        assert_eq!(w.note.as_deref(), Some("mailbox moves"));
        assert!(matches!(w.schedule, WindowSchedule::Weekly { .. }));
        let o = &c.windows[1];
        assert_eq!(o.tolerance, 10.0);
        assert_eq!(o.max_down, Duration::from_secs(300));
        assert_eq!(o.max_incident, Duration::from_secs(1800));
        assert!(o.targets.is_empty());
    }

    #[test]
    fn bad_windows_are_reported_at_their_keys() {
        for (text, want) in [
            (
                "[[window]]\nstart = \"2026-12-05T22:00:00Z\"\nend = \"2026-12-06T02:00:00Z\"",
                "window[0]: missing field `name`",
            ),
            (
                "[[window]]\nname = \"a\"\ndaily = \"22:00\"\nduration = \"1h\"\n[[window]]\nname = \"a\"\ndaily = \"23:00\"\nduration = \"1h\"",
                "window[1].name: duplicate window name \"a\"",
            ),
            (
                "[[window]]\nname = \"a\"\ndaily = \"22:00\"\nduration = \"1h\"\ntolerance = 1",
                "window[0].tolerance: must be a factor greater than 1",
            ),
            (
                "[[window]]\nname = \"a\"\ndaily = \"22:00\"\nduration = \"1h\"\nmax_down = \"0s\"",
                "window[0].max_down: must be greater than zero",
            ),
            (
                "[[window]]\nname = \"a\"\nweekly = \"Sat 22:00\"",
                "window[0]: missing field `duration`",
            ),
            (
                "[[window]]\nname = \"a\"\ndaily = \"22:00\"\nduration = \"1h\"\ntime_zone = \"Mars/Olympus\"",
                "window[0].time_zone: unknown time zone \"Mars/Olympus\"",
            ),
            (
                "[[window]]\nname = \"a\"\nstart = \"2026-12-05T22:00:00Z\"\nend = \"2026-12-05T21:00:00Z\"",
                "window[0].end: must be after start",
            ),
            (
                "[[window]]\nname = \"a\"\ndaily = \"22:00\"\nduration = \"1h\"\nrecur = \"x\"",
                "unknown field `recur`",
            ),
        ] {
            let e = errors(text);
            assert!(e.iter().any(|e| e.contains(want)), "{text}: {e:?}");
        }
    }
}
