//! Durations and latencies written for people: the one formatter, with a
//! [`Style`] for each place's established form (configuration errors, the
//! replay and incident tables, alert texts, probe tables). Each style is a
//! contract: tests and users read these strings, so a style never changes
//! its output; a new place picks an existing style or adds one here.
//!
//! Pure, and depends on nothing in the crate.

use std::fmt::Write as _;
use std::time::Duration;

/// How a duration is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The configuration's own grammar, exact and parseable back:
    /// `250ms`, `1.5s`, `1h30m`, `5us`, `0s` (configuration errors,
    /// `check-config`, timeouts in messages).
    Config,
    /// Three significant decimals below a minute, whole seconds from a
    /// minute up: `57.6ms`, `1.5s`, `1h30m`, `0ms` (the `replay` table).
    Table,
    /// To the second, parts separated by spaces: `10m 3s`, `1d 2h 3m 4s`,
    /// `0s` below a second (alert texts, `incidents`, `silence list`).
    Spaced,
    /// Plain rounded seconds below 100 s, `61 s`; [`Style::Spaced`] from
    /// there (how soon an incident was detected, in alert texts).
    Seconds,
    /// A latency in milliseconds with a precision that suits its size:
    /// `1.23 ms`, `123.4 ms`, `1.234 s` (the `probe` table).
    Millis,
    /// A latency in the unit that suits it: `450 µs`, `1.5 ms`, `180 ms`,
    /// `3.8 s`, `250 s` (alert texts).
    Latency,
    /// An age at a glance, its two largest units rounded down: `45s`,
    /// `12m`, `2h5m`, `3d4h` (open incidents in `status`).
    Age,
}

/// `d` written in `style`.
pub fn duration(d: Duration, style: Style) -> String {
    match style {
        Style::Config => config(d),
        Style::Table if d < Duration::from_secs(1) => trimmed(d.as_secs_f64() * 1e3, "ms"),
        Style::Table if d < Duration::from_secs(60) => trimmed(d.as_secs_f64(), "s"),
        Style::Table => compound(d.as_secs(), ""),
        Style::Spaced => match d.as_secs() {
            0 => "0s".into(),
            secs => compound(secs, " "),
        },
        Style::Seconds if d < Duration::from_secs(100) => {
            format!("{} s", d.as_secs_f64().round() as u64)
        }
        Style::Seconds => duration(d, Style::Spaced),
        Style::Millis | Style::Latency => seconds(d.as_secs_f64(), style),
        Style::Age => match d.as_secs() {
            secs @ 0..60 => format!("{secs}s"),
            secs @ 60..3600 => format!("{}m", secs / 60),
            secs @ 3600..86400 => compound(secs - secs % 60, ""),
            secs => compound(secs - secs % 3600, ""),
        },
    }
}

/// `seconds` written in `style`, for latencies carried as float seconds
/// (alert events). [`Style::Millis`] and [`Style::Latency`] write the float
/// itself; the other styles write it as a [`Duration`] (negative as zero,
/// too large as [`Duration::MAX`]).
pub fn seconds(seconds: f64, style: Style) -> String {
    match style {
        Style::Millis => {
            let ms = seconds * 1000.0;
            if ms < 10.0 {
                format!("{ms:.2} ms")
            } else if ms < 1000.0 {
                format!("{ms:.1} ms")
            } else {
                format!("{seconds:.3} s")
            }
        }
        Style::Latency => {
            if seconds >= 100.0 {
                format!("{seconds:.0} s")
            } else if seconds >= 1.0 {
                format!("{seconds:.1} s")
            } else if seconds >= 0.01 {
                format!("{:.0} ms", seconds * 1e3)
            } else if seconds >= 0.001 {
                format!("{:.1} ms", seconds * 1e3)
            } else {
                format!("{:.0} µs", seconds * 1e6)
            }
        }
        _ => duration(
            Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX),
            style,
        ),
    }
}

/// [`Style::Config`]: whole seconds as `1h30m`, a fraction as `250ms` or
/// `1.5s`, under a millisecond in microseconds.
fn config(d: Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms == 0 {
        return if d.is_zero() {
            "0s".into()
        } else {
            format!("{}us", d.as_micros())
        };
    }
    if !total_ms.is_multiple_of(1000) {
        return if total_ms < 1000 {
            format!("{total_ms}ms")
        } else {
            trimmed(d.as_secs_f64(), "s")
        };
    }
    compound(d.as_secs(), "")
}

/// `value` with three decimals, trailing zeros (and a bare point) dropped,
/// then `unit`: `57.6ms`, `2s`.
fn trimmed(value: f64, unit: &str) -> String {
    let text = format!("{value:.3}");
    format!("{}{unit}", text.trim_end_matches('0').trim_end_matches('.'))
}

/// Whole seconds as days, hours, minutes and seconds, zero parts left out,
/// joined by `separator`: `1h30m`, `10m 3s`; empty for zero.
fn compound(mut secs: u64, separator: &str) -> String {
    let mut out = String::new();
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            if !out.is_empty() {
                out.push_str(separator);
            }
            let _ = write!(out, "{}{unit}", secs / size);
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(style: Style, cases: &[(Duration, &str)]) {
        for (d, expect) in cases {
            assert_eq!(duration(*d, style), *expect, "{style:?} {d:?}");
        }
    }

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn config_style() {
        check(
            Style::Config,
            &[
                (Duration::ZERO, "0s"),
                (Duration::from_micros(5), "5us"),
                (ms(250), "250ms"),
                (ms(1500), "1.5s"),
                (ms(2250), "2.25s"),
                (s(10), "10s"),
                (s(120), "2m"),
                (s(65), "1m5s"),
                (s(5400), "1h30m"),
                (s(86400), "1d"),
            ],
        );
    }

    #[test]
    fn table_style() {
        check(
            Style::Table,
            &[
                (ms(180), "180ms"),
                (Duration::from_micros(57_600), "57.6ms"),
                (Duration::ZERO, "0ms"),
                (ms(1500), "1.5s"),
                (s(60), "1m"),
                (ms(5_400_500), "1h30m"),
            ],
        );
    }

    #[test]
    fn age_style() {
        check(
            Style::Age,
            &[
                (ms(999), "0s"),
                (s(45), "45s"),
                (s(60 * 12 + 59), "12m"),
                (s(2 * 3600 + 5 * 60 + 30), "2h5m"),
                (s(7200), "2h"),
                (s(3 * 86400 + 4 * 3600 + 59 * 60), "3d4h"),
            ],
        );
    }

    #[test]
    fn spaced_and_seconds_styles() {
        check(
            Style::Spaced,
            &[
                (ms(999), "0s"),
                (s(59), "59s"),
                (s(603), "10m 3s"),
                (s(3605), "1h 5s"),
                (s(93784), "1d 2h 3m 4s"),
            ],
        );
        check(Style::Seconds, &[(ms(61_400), "61 s"), (s(600), "10m")]);
    }

    #[test]
    fn latency_styles() {
        check(
            Style::Millis,
            &[
                (Duration::from_micros(1234), "1.23 ms"),
                (Duration::from_micros(123_400), "123.4 ms"),
                (ms(1234), "1.234 s"),
            ],
        );
        assert_eq!(seconds(0.00045, Style::Latency), "450 µs");
        assert_eq!(seconds(0.0015, Style::Latency), "1.5 ms");
        assert_eq!(seconds(0.18, Style::Latency), "180 ms");
        assert_eq!(seconds(3.8, Style::Latency), "3.8 s");
        assert_eq!(seconds(250.0, Style::Latency), "250 s");
        assert_eq!(seconds(-1.0, Style::Spaced), "0s");
    }
}
