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

/// The largest accepted `min_delta`, `threshold` and `baseline`.
pub const MAX_LATENCY_SETTING: Duration = Duration::from_secs(3600);

/// The longest accepted `relearn_after`.
pub const MAX_RELEARN_AFTER: Duration = Duration::from_secs(30 * 86400);

/// The smallest accepted `bad_share`: below it a "bad run" would be mostly healthy.
pub const MIN_BAD_SHARE: f64 = 0.1;

/// One `[slowdown]` table as written; every key is optional.
///
/// ```toml
/// [slowdown]            # defaults for every target
/// factor = 3.0          # slow at 3x the learned baseline or more ...
/// min_delta = "10ms"    # ... and at least this much above it
/// for = "1m"            # bad samples must persist this long to open an incident
/// recover_for = "2m"    # healthy samples must persist this long to close it
/// # threshold = "2s"    # optional absolute limit
/// relearn_after = "24h" # a slow level held this long is the new normal
/// bad_share = 0.5       # a bad run goes on while this share of its probes is bad
/// # baseline = "80ms"   # pin the baseline instead of learning it
/// # recover_factor = 1.7 # recovered under this many times the baseline (default sqrt(factor))
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
    /// `relearn_after`: how long a slow level must hold to become the new baseline.
    pub relearn_after: Option<HumanDuration>,
    /// `bad_share`: the share of a bad run's probes that must be bad for it to go on.
    pub bad_share: Option<f64>,
    /// `baseline`: a pinned baseline latency.
    pub baseline: Option<HumanDuration>,
    /// `recover_factor`: samples under this many times the baseline are recovered.
    pub recover_factor: Option<f64>,
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
        if let Some(d) = raw.relearn_after {
            if d.get().is_zero() {
                return Err((
                    key("relearn_after"),
                    "relearn_after must be greater than 0s".into(),
                ));
            }
            check_at_most(&key("relearn_after"), d, MAX_RELEARN_AFTER)?;
            settings.relearn_after = d.get();
        }
        if let Some(share) = raw.bad_share {
            if !share.is_finite() || !(MIN_BAD_SHARE..=1.0).contains(&share) {
                return Err((
                    key("bad_share"),
                    format!("bad_share must be between {MIN_BAD_SHARE} and 1, got {share}"),
                ));
            }
            settings.bad_share = share;
        }
        if let Some(d) = raw.baseline {
            if d.get().is_zero() {
                return Err((key("baseline"), "baseline must be greater than 0s".into()));
            }
            check_at_most(&key("baseline"), d, MAX_LATENCY_SETTING)?;
            settings.baseline = Some(d.get());
        }
        if let Some(f) = raw.recover_factor {
            if !f.is_finite() || f <= 1.0 || f > MAX_FACTOR {
                return Err((
                    key("recover_factor"),
                    format!(
                        "recover_factor must be greater than 1 and at most {MAX_FACTOR}, got {f}"
                    ),
                ));
            }
            settings.recover_factor = Some(f);
        }
    }
    if let Some(f) = settings.recover_factor {
        if f > settings.factor {
            // Reported where it was set last (the target's table wins).
            let table = if per_target.is_some_and(|t| t.recover_factor.is_some()) {
                "target.slowdown"
            } else {
                "slowdown"
            };
            return Err((
                format!("{table}.recover_factor"),
                format!(
                    "recover_factor must be at most factor ({}), got {f}",
                    settings.factor
                ),
            ));
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
    fn issue_16_keys_resolve_and_validate() {
        check(
            "relearn_after = \"12h\"\nbad_share = 0.4",
            "baseline = \"80ms\"\nrecover_factor = 1.5",
            Ok(settings(|s| {
                s.relearn_after = Duration::from_secs(12 * 3600);
                s.bad_share = 0.4;
                s.baseline = Some(Duration::from_millis(80));
                s.recover_factor = Some(1.5);
            })),
        );
        check(
            "",
            "relearn_after = \"0s\"",
            Err((
                "target.slowdown.relearn_after",
                "relearn_after must be greater than 0s",
            )),
        );
        check(
            "relearn_after = \"31d\"",
            "",
            Err((
                "slowdown.relearn_after",
                "relearn_after must be at most 30d, got 31d",
            )),
        );
        check(
            "bad_share = 0.05",
            "",
            Err((
                "slowdown.bad_share",
                "bad_share must be between 0.1 and 1, got 0.05",
            )),
        );
        check(
            "",
            "baseline = \"0s\"",
            Err((
                "target.slowdown.baseline",
                "baseline must be greater than 0s",
            )),
        );
        check(
            "recover_factor = 1",
            "",
            Err((
                "slowdown.recover_factor",
                "recover_factor must be greater than 1 and at most 100, got 1",
            )),
        );
        check(
            "recover_factor = 2.5",
            "factor = 2",
            Err((
                "slowdown.recover_factor",
                "recover_factor must be at most factor (2), got 2.5",
            )),
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
