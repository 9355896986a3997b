//! `[[slo]]`: the targets a soak run must meet, as data. Each objective is
//! one of a latency percentile under a bound (`latency = "p95 < 1s"`, of the
//! whole probe or of one `step`), a success ratio (`success = ">= 99.9%"`) or
//! a longest incident (`max_incident = "5m"`), over the targets and phases
//! its patterns match. Measuring a run against them is the report's job.

use std::fmt;
use std::time::Duration;

use super::alerting::Glob;
use crate::sample::Phase;

/// One `[[slo]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// Its name in the report (unique).
    pub name: String,
    /// Target name patterns (`*`, `?`); empty: every target.
    pub targets: Vec<Glob>,
    /// Phase name patterns; empty: every phase of the run.
    pub phases: Vec<Glob>,
    /// What must hold.
    pub objective: Objective,
}

/// What an SLO requires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// A percentile of a step's latency (`total`: the whole probe) within a bound.
    Latency {
        /// The percentile, 0 to 1 (`p95` is 0.95).
        quantile: f64,
        /// The step measured.
        step: Phase,
        /// `<` or `<=`.
        cmp: Cmp,
        /// The bound.
        limit: Duration,
    },
    /// The share of successful probes, in percent, against a bound.
    Success {
        /// `>` or `>=`.
        cmp: Cmp,
        /// The bound in percent, as written (`99.9`). Compare it with
        /// `ok * 100 / probes` computed in one division, which rounds to the
        /// same number when the share is exactly the bound.
        percent: f64,
    },
    /// No incident longer than this.
    MaxIncident(Duration),
}

/// A comparison of a measured value with a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Cmp {
    /// Whether `measured` compares to `bound` as this says.
    pub fn holds(self, measured: f64, bound: f64) -> bool {
        match self {
            Cmp::Lt => measured < bound,
            Cmp::Le => measured <= bound,
            Cmp::Gt => measured > bound,
            Cmp::Ge => measured >= bound,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }

    /// Splits a leading comparison off `text` (longest first).
    fn split(text: &str) -> Option<(Cmp, &str)> {
        [
            ("<=", Cmp::Le),
            (">=", Cmp::Ge),
            ("<", Cmp::Lt),
            (">", Cmp::Gt),
        ]
        .into_iter()
        .find_map(|(op, cmp)| text.strip_prefix(op).map(|rest| (cmp, rest.trim_start())))
    }
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The percentiles a latency objective may name.
pub const PERCENTILES: [&str; 4] = ["p50", "p90", "p95", "p99"];

/// Parses `latency = "p95 < 1s"`: a percentile of [`PERCENTILES`], `<` or
/// `<=`, and a duration; the step is the caller's. Errors say what was
/// expected.
pub fn parse_latency(
    text: &str,
    parse_duration: impl Fn(&str) -> Result<Duration, String>,
) -> Result<(f64, Cmp, Duration), String> {
    let expected = || {
        format!("invalid latency objective {text:?} (expected e.g. \"p95 < 1s\": p50, p90, p95 or p99, then < or <=, then a duration)")
    };
    let text = text.trim();
    let (p, rest) = text.split_once(char::is_whitespace).ok_or_else(expected)?;
    if !PERCENTILES.contains(&p) {
        return Err(expected());
    }
    let quantile = f64::from(p[1..].parse::<u8>().map_err(|_| expected())?) / 100.0;
    let (cmp, bound) = Cmp::split(rest.trim_start()).ok_or_else(expected)?;
    if !matches!(cmp, Cmp::Lt | Cmp::Le) {
        return Err(format!(
            "{}: a latency must stay under its bound (< or <=)",
            expected()
        ));
    }
    let limit = parse_duration(bound).map_err(|e| format!("{}: {e}", expected()))?;
    if limit.is_zero() {
        return Err(format!("{}: the bound must be above 0", expected()));
    }
    Ok((quantile, cmp, limit))
}

/// Parses `success = ">= 99.9%"`: `>` or `>=`, and a percentage from 0 to 100
/// (returned as the percentage).
pub fn parse_success(text: &str) -> Result<(Cmp, f64), String> {
    let expected = || {
        format!("invalid success objective {text:?} (expected e.g. \">= 99.9%\": > or >=, then a percentage)")
    };
    let (cmp, rest) = Cmp::split(text.trim()).ok_or_else(expected)?;
    if !matches!(cmp, Cmp::Gt | Cmp::Ge) {
        return Err(format!(
            "{}: a success ratio must stay above its bound (> or >=)",
            expected()
        ));
    }
    let number = rest.strip_suffix('%').ok_or_else(expected)?;
    let pct: f64 = number.trim().parse().map_err(|_| expected())?;
    if !(0.0..=100.0).contains(&pct) {
        return Err(format!("{}: the percentage must be 0 to 100", expected()));
    }
    Ok((cmp, pct))
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Objective::Latency {
                quantile,
                step,
                cmp,
                limit,
            } => write!(
                f,
                "p{:.0} of {} {cmp} {}",
                quantile * 100.0,
                step.as_str(),
                crate::human::duration(*limit, crate::human::Style::Config)
            ),
            Objective::Success { cmp, percent } => write!(f, "success {cmp} {percent}%"),
            Objective::MaxIncident(d) => write!(
                f,
                "no incident longer than {}",
                crate::human::duration(*d, crate::human::Style::Config)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::duration::parse_duration;

    #[test]
    fn latency_objectives_read_as_written() {
        assert_eq!(
            parse_latency("p95 < 1s", parse_duration),
            Ok((0.95, Cmp::Lt, Duration::from_secs(1)))
        );
        assert_eq!(
            parse_latency(" p99 <= 250ms ", parse_duration),
            Ok((0.99, Cmp::Le, Duration::from_millis(250)))
        );
        for bad in [
            "p95",
            "p96 < 1s",
            "p95 > 1s",
            "p95 < soon",
            "p95 < 0s",
            "95 < 1s",
            "p95<1s",
        ] {
            assert!(parse_latency(bad, parse_duration).is_err(), "{bad}");
        }
    }

    #[test]
    fn success_objectives_read_as_written() {
        assert_eq!(parse_success(">= 99.9%"), Ok((Cmp::Ge, 99.9)));
        assert_eq!(parse_success(">99%"), Ok((Cmp::Gt, 99.0)));
        // 999 good probes of 1000 meet ">= 99.9%".
        assert!(Cmp::Ge.holds(999.0 * 100.0 / 1000.0, 99.9));
        for bad in ["99.9%", "<= 99%", ">= 99.9", ">= 101%", ">= many%"] {
            assert!(parse_success(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comparisons_compare() {
        assert!(Cmp::Lt.holds(0.9, 1.0) && !Cmp::Lt.holds(1.0, 1.0));
        assert!(Cmp::Le.holds(1.0, 1.0) && Cmp::Ge.holds(1.0, 1.0));
        assert!(!Cmp::Gt.holds(1.0, 1.0));
    }
}
