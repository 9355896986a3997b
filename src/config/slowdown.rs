//! `[slowdown]` and `[target.slowdown]`: how the slowdown detector judges a
//! target, as written in the file ([`RawSlowdown`]) and resolved into the
//! [`SlowdownSettings`] the detector runs on ([`resolve`]).
//!
//! The top-level table gives defaults for every target and a target's own
//! table overrides them key by key. This file only merges and validates: it
//! reads no file and knows nothing about positions in one; the caller maps
//! the key path of an error to its location.

use std::time::Duration;

use serde::Deserialize;

use super::duration::HumanDuration;
use crate::detect::SlowdownSettings;

/// The largest accepted `factor`: beyond it nothing short of a timeout is slow.
pub const MAX_FACTOR: f64 = 100.0;

/// The longest accepted `for` and `recover_for`.
pub const MAX_PERSISTENCE: Duration = Duration::from_secs(86400);

/// The largest accepted `min_delta` and `threshold`.
pub const MAX_LATENCY_SETTING: Duration = Duration::from_secs(3600);

/// One `[slowdown]` table as written; every key is optional.
///
/// ```toml
/// [slowdown]            # defaults for every target
/// factor = 3.0          # slow at 3x the learned baseline or more ...
/// min_delta = "100ms"   # ... and at least this much above it
/// for = "1m"            # bad samples must persist this long to open an incident
/// recover_for = "2m"    # healthy samples must persist this long to close it
/// # threshold = "2s"    # optional absolute limit
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlowdown {
    /// `factor`: how many times the baseline a slow sample takes at least.
    pub factor: Option<f64>,
    /// `min_delta`: how far above the baseline a slow sample is at least.
    pub min_delta: Option<HumanDuration>,
    /// `for`: how long bad samples persist before an incident opens.
    #[serde(rename = "for")]
    pub for_: Option<HumanDuration>,
    /// `recover_for`: how long healthy samples persist before it closes.
    pub recover_for: Option<HumanDuration>,
    /// `threshold`: an absolute latency above which a sample is slow.
    pub threshold: Option<HumanDuration>,
}

/// Merges the global table and a target's override over the defaults, and
/// validates the result.
///
/// An error is `(key path, message)`, where the key path is `slowdown.<key>`
/// when the global table set the bad value and `target.slowdown.<key>` when
/// the target's override did (the caller adds the target's index).
pub fn resolve(
    global: Option<&RawSlowdown>,
    per_target: Option<&RawSlowdown>,
) -> Result<SlowdownSettings, (String, String)> {
    let mut settings = SlowdownSettings::default();
    for (table, raw) in [("slowdown", global), ("target.slowdown", per_target)] {
        let Some(raw) = raw else { continue };
        let key = |k: &str| format!("{table}.{k}");
        if let Some(factor) = raw.factor {
            if !factor.is_finite() || factor <= 1.0 || factor > MAX_FACTOR {
                return Err((
                    key("factor"),
                    format!("factor must be greater than 1 and at most {MAX_FACTOR}, got {factor}"),
                ));
            }
            settings.factor = factor;
        }
        if let Some(d) = raw.min_delta {
            check_at_most(&key("min_delta"), d, MAX_LATENCY_SETTING)?;
            settings.min_delta = d.get();
        }
        if let Some(d) = raw.for_ {
            check_at_most(&key("for"), d, MAX_PERSISTENCE)?;
            settings.for_ = d.get();
        }
        if let Some(d) = raw.recover_for {
            check_at_most(&key("recover_for"), d, MAX_PERSISTENCE)?;
            settings.recover_for = d.get();
        }
        if let Some(d) = raw.threshold {
            if d.get().is_zero() {
                return Err((key("threshold"), "threshold must be greater than 0s".into()));
            }
            check_at_most(&key("threshold"), d, MAX_LATENCY_SETTING)?;
            settings.threshold = Some(d.get());
        }
    }
    Ok(settings)
}

fn check_at_most(key: &str, value: HumanDuration, max: Duration) -> Result<(), (String, String)> {
    if value.get() > max {
        let name = key.rsplit('.').next().unwrap_or(key);
        return Err((
            key.to_string(),
            format!("{name} must be at most {}, got {value}", HumanDuration(max)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawSlowdown {
        toml::from_str(text).unwrap()
    }

    fn check(global: &str, target: &str, expect: Result<SlowdownSettings, (&str, &str)>) {
        let g = (!global.is_empty()).then(|| raw(global));
        let t = (!target.is_empty()).then(|| raw(target));
        let got = resolve(g.as_ref(), t.as_ref());
        let expect = expect.map_err(|(k, m)| (k.to_string(), m.to_string()));
        assert_eq!(got, expect, "global {global:?} target {target:?}");
    }

    fn settings(f: impl FnOnce(&mut SlowdownSettings)) -> SlowdownSettings {
        let mut s = SlowdownSettings::default();
        f(&mut s);
        s
    }

    #[test]
    fn defaults_and_overrides() {
        check("", "", Ok(SlowdownSettings::default()));
        check(
            "factor = 4\nthreshold = \"2s\"",
            "for = \"30s\"\nfactor = 2.5",
            Ok(settings(|s| {
                s.factor = 2.5;
                s.threshold = Some(Duration::from_secs(2));
                s.for_ = Duration::from_secs(30);
            })),
        );
        check(
            "min_delta = \"50ms\"\nrecover_for = \"5m\"",
            "",
            Ok(settings(|s| {
                s.min_delta = Duration::from_millis(50);
                s.recover_for = Duration::from_secs(300);
            })),
        );
        check(
            "for = \"0s\"\nmin_delta = \"0s\"",
            "",
            Ok(settings(|s| {
                s.for_ = Duration::ZERO;
                s.min_delta = Duration::ZERO;
            })),
        );
    }

    #[test]
    fn invalid_values_name_their_key() {
        check(
            "factor = 1",
            "",
            Err((
                "slowdown.factor",
                "factor must be greater than 1 and at most 100, got 1",
            )),
        );
        check(
            "",
            "factor = 0.5",
            Err((
                "target.slowdown.factor",
                "factor must be greater than 1 and at most 100, got 0.5",
            )),
        );
        check(
            "",
            "threshold = \"0s\"",
            Err((
                "target.slowdown.threshold",
                "threshold must be greater than 0s",
            )),
        );
        check(
            "for = \"2d\"",
            "",
            Err(("slowdown.for", "for must be at most 1d, got 2d")),
        );
        check(
            "recover_for = \"25h\"",
            "",
            Err((
                "slowdown.recover_for",
                "recover_for must be at most 1d, got 1d1h",
            )),
        );
        check(
            "min_delta = \"2h\"",
            "",
            Err(("slowdown.min_delta", "min_delta must be at most 1h, got 2h")),
        );
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_rejected() {
        let err = toml::from_str::<RawSlowdown>("factr = 3").unwrap_err();
        assert!(err.to_string().contains("unknown field `factr`"), "{err}");
        let err = toml::from_str::<RawSlowdown>("for = 60").unwrap_err();
        assert!(err.to_string().contains("needs a unit"), "{err}");
        let err = toml::from_str::<RawSlowdown>("recover_for = \"2 min\"").unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }
}
