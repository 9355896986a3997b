//! Human durations in configuration files: `"250ms"`, `"10s"`, `"2m"`, `"1h30m"`.
//!
//! The grammar is deliberately strict (no spaces, no bare numbers, no unit
//! words such as `sec`) so that a typo is an error at load time rather than a
//! silently different interval.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};

use crate::human::{self, Style};

/// A duration written as a human string in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// Units accepted after a number, longest first so `ms` wins over `m`.
const UNITS: &[(&str, f64)] = &[
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
    ("d", 86400.0),
];

/// Parses a human duration: one or more `<number><unit>` groups with no spaces,
/// units `ns`, `us`, `ms`, `s`, `m`, `h`, `d`; the number may have a fraction.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?} (expected forms like \"250ms\", \"10s\", \"2m\", \"1h30m\")"
        )
    };
    if text.is_empty() {
        return Err(invalid());
    }
    let mut rest = text;
    let mut seconds = 0.0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let (unit, factor) = UNITS
            .iter()
            .find(|(unit, _)| {
                rest.starts_with(unit)
                    && !rest[unit.len()..].starts_with(|c: char| c.is_alphabetic())
            })
            .ok_or_else(invalid)?;
        seconds += value * factor;
        rest = &rest[unit.len()..];
    }
    if !seconds.is_finite() || seconds > 10.0 * 365.0 * 86400.0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human::duration(self.0, Style::Config))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"10s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {v} (a duration needs a unit, e.g. \"{v}s\")"
                )))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    "invalid duration {v} (a duration needs a unit, e.g. \"{v}s\")"
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Option<f64>) {
        let got = parse_duration(input).ok().map(|d| d.as_secs_f64());
        match (got, expect) {
            (Some(g), Some(e)) => assert!((g - e).abs() < 1e-9, "{input}: got {g}, want {e}"),
            (g, e) => assert_eq!(g, e, "{input}"),
        }
    }

    #[test]
    fn accepted_and_rejected_forms() {
        check("250ms", Some(0.25));
        check("10s", Some(10.0));
        check("2m", Some(120.0));
        check("1h30m", Some(5400.0));
        check("1.5s", Some(1.5));
        check("100us", Some(0.0001));
        check("1d", Some(86400.0));
        check("0s", Some(0.0));
        check("5 sec", None);
        check("5sec", None);
        check("5", None);
        check("", None);
        check("s", None);
        check("-1s", None);
        check(".5s", None);
        check("5s ", None);
        check(" 5s", None);
        check("10S", None);
        check("1ms2", None);
        check("1y", None);
    }

    #[test]
    fn message_quotes_the_input() {
        let err = parse_duration("5 sec").unwrap_err();
        assert!(err.starts_with("invalid duration \"5 sec\""), "{err}");
    }

    #[test]
    fn formats_round_trip() {
        for text in [
            "250ms", "10s", "2m", "1h30m", "1d", "0s", "1m5s", "1.5s", "2.25s",
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(HumanDuration(d).to_string(), text);
        }
    }
}
