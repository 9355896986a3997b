//! `[[slo]]`: each objective checked once, at load: a unique, clean name,
//! exactly one of `latency`, `success` and `max_incident`, a `step` only
//! with `latency` and naming a known step, and patterns that are not empty.

use std::collections::HashSet;

use super::*;
use crate::config::alerting::Glob;
use crate::config::duration::parse_duration;
use crate::config::raw::RawSlo;
use crate::config::slo::{parse_latency, parse_success, Objective, Slo};
use crate::sample::Phase;

/// Builds every `[[slo]]`, reporting each problem to `c`.
pub(super) fn build_slos(c: &mut Checker<'_>, root: &KeyPath, raw: Vec<RawSlo>) -> Vec<Slo> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let path = root.key("slo").index(i);
        if let Some(slo) = build_slo(c, &path, r) {
            if names.insert(slo.name.clone()) {
                out.push(slo);
            } else {
                c.error_at(
                    &path.key("name"),
                    format!("duplicate slo name {:?}", slo.name),
                );
            }
        }
    }
    out
}

fn build_slo(c: &mut Checker<'_>, path: &KeyPath, r: RawSlo) -> Option<Slo> {
    let key = |k: &str| path.key(k);
    let name = match r.name {
        None => {
            c.error_at(path, "missing field `name`");
            return None;
        }
        Some(n) if n.trim().is_empty() => {
            c.error_at(&key("name"), "must not be empty");
            return None;
        }
        Some(n) => {
            if let Some(message) = hidden_char_error(&n) {
                c.error_at(&key("name"), message);
                return None;
            }
            n
        }
    };
    let mut ok = true;
    let mut patterns = |field: &str, list: Option<Vec<String>>| -> Vec<Glob> {
        let list = list.unwrap_or_default();
        for (j, p) in list.iter().enumerate() {
            if p.is_empty() {
                c.error_at(&key(field).index(j), "must not be empty");
                ok = false;
            }
        }
        list.into_iter().map(Glob).collect()
    };
    let targets = patterns("targets", r.targets);
    let phases = patterns("phases", r.phases);
    let set = [
        r.latency.is_some(),
        r.success.is_some(),
        r.max_incident.is_some(),
    ];
    let objective = match (r.latency, r.success, r.max_incident) {
        _ if set.iter().filter(|s| **s).count() > 1 => {
            c.error_at(
                path,
                "set one of `latency`, `success` and `max_incident` (one objective per [[slo]])",
            );
            return None;
        }
        (Some(text), None, None) => {
            let step = match r.step.as_deref() {
                None => Phase::Total,
                Some(s) => match Phase::ALL.iter().find(|p| p.as_str() == s) {
                    Some(p) => *p,
                    None => {
                        let known: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
                        c.error_at(
                            &key("step"),
                            format!("unknown step {s:?} (expected one of: {})", known.join(", ")),
                        );
                        return None;
                    }
                },
            };
            match parse_latency(&text, parse_duration) {
                Ok((quantile, cmp, limit)) => Objective::Latency {
                    quantile,
                    step,
                    cmp,
                    limit,
                },
                Err(message) => {
                    c.error_at(&key("latency"), message);
                    return None;
                }
            }
        }
        (None, Some(text), None) => match parse_success(&text) {
            Ok((cmp, percent)) => Objective::Success { cmp, percent },
            Err(message) => {
                c.error_at(&key("success"), message);
                return None;
            }
        },
        (None, None, Some(d)) => {
            if d.get().is_zero() {
                c.error_at(&key("max_incident"), "must be above 0");
                return None;
            }
            Objective::MaxIncident(d.get())
        }
        _ => {
            c.error_at(
                path,
                "missing objective: set `latency` (e.g. \"p95 < 1s\"), `success` (e.g. \">= 99.9%\") or `max_incident` (e.g. \"5m\")",
            );
            return None;
        }
    };
    if r.step.is_some() && !matches!(objective, Objective::Latency { .. }) {
        c.error_at(&key("step"), "only valid with `latency`");
        return None;
    }
    ok.then_some(Slo {
        name,
        targets,
        phases,
        objective,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::slo::{Cmp, Objective};
    use crate::config::{parse, Config};
    use crate::sample::Phase;
    use std::time::Duration;

    fn load(text: &str) -> Result<Config, String> {
        parse(text, Some(std::path::Path::new("soak.toml"))).map_err(|e| e.to_string())
    }

    #[test]
    fn the_issues_example_loads() {
        let c = load(
            r#"
[[slo]]
name = "owa p95"
targets = ["owa*"]
phases = ["plateau*"]
latency = "p95 < 1s"
[[slo]]
name = "owa first byte"
latency = "p99 <= 400ms"
step = "first_byte"
[[slo]]
name = "mail available"
targets = ["smtp*", "imap*"]
success = ">= 99.9%"
[[slo]]
name = "no long slowdown"
max_incident = "5m"
"#,
        )
        .unwrap();
        let objectives: Vec<Objective> = c.slos.iter().map(|s| s.objective).collect();
        assert_eq!(
            objectives,
            [
                Objective::Latency {
                    quantile: 0.95,
                    step: Phase::Total,
                    cmp: Cmp::Lt,
                    limit: Duration::from_secs(1)
                },
                Objective::Latency {
                    quantile: 0.99,
                    step: Phase::FirstByte,
                    cmp: Cmp::Le,
                    limit: Duration::from_millis(400)
                },
                Objective::Success {
                    cmp: Cmp::Ge,
                    percent: 99.9
                },
                Objective::MaxIncident(Duration::from_secs(300)),
            ]
        );
        assert_eq!(c.slos[0].targets[0].0, "owa*");
        assert_eq!(c.slos[0].phases[0].0, "plateau*");
        assert!(c.slos[3].targets.is_empty());
    }

    #[test]
    fn mistakes_name_the_file_line_and_key() {
        let cases = [
            ("[[slo]]\nname = \"a\"\nlatency = \"p97 < 1s\"\n", "soak.toml:3:11: slo[0].latency: invalid latency objective"),
            ("[[slo]]\nname = \"a\"\nsuccess = \"99%\"\n", "soak.toml:3:11: slo[0].success: invalid success objective"),
            ("[[slo]]\nname = \"a\"\nlatency = \"p95 < 1s\"\nstep = \"lunch\"\n", "soak.toml:4:8: slo[0].step: unknown step \"lunch\""),
            ("[[slo]]\nname = \"a\"\nmax_incident = \"5m\"\nstep = \"tls\"\n", "soak.toml:4:8: slo[0].step: only valid with `latency`"),
            ("[[slo]]\nname = \"a\"\n", "slo[0]: missing objective"),
            ("[[slo]]\nname = \"a\"\nsuccess = \">= 99%\"\nmax_incident = \"5m\"\n", "slo[0]: set one of"),
            ("[[slo]]\nlatency = \"p95 < 1s\"\n", "slo[0]: missing field `name`"),
            ("[[slo]]\nname = \"a\"\nmax_incident = \"5m\"\n[[slo]]\nname = \"a\"\nmax_incident = \"1m\"\n", "soak.toml:5:8: slo[1].name: duplicate slo name \"a\""),
            ("[[slo]]\nname = \"a\"\nmax_incident = \"5m\"\ntargets = [\"\"]\n", "slo[0].targets[0]: must not be empty"),
            ("[[slo]]\nname = \"a\"\nmax_incident = \"5m\"\nlatnecy = \"p95 < 1s\"\n", "unknown field `latnecy`"),
        ];
        for (text, want) in cases {
            let err = load(text).unwrap_err();
            assert!(err.contains(want), "{text:?}:\n{err}\nwanted: {want}");
        }
    }
}
