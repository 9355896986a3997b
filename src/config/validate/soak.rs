//! `[soak]`: how many soak-test runs the store keeps.

use super::*;
use crate::config::raw::RawSoak;

/// Validates `[soak]` at `path`, filling defaults.
pub(super) fn build_soak(c: &mut Checker<'_>, path: &KeyPath, raw: RawSoak) -> SoakConfig {
    let keep_runs = match raw.keep_runs {
        None => DEFAULT_KEEP_RUNS,
        Some(n) if n < 1 || n > MAX_KEEP_RUNS as i64 => {
            c.error_at(
                &path.key("keep_runs"),
                format!("must be between 1 and {MAX_KEEP_RUNS}, not {n}"),
            );
            DEFAULT_KEEP_RUNS
        }
        Some(n) => n as usize,
    };
    SoakConfig { keep_runs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_runs_has_a_default_and_bounds() {
        assert_eq!(parse("", None).unwrap().soak.keep_runs, DEFAULT_KEEP_RUNS);
        assert_eq!(
            parse("[soak]\nkeep_runs = 3\n", None)
                .unwrap()
                .soak
                .keep_runs,
            3
        );
        let err = parse("[soak]\nkeep_runs = 0\n", None).unwrap_err();
        assert_eq!(err.0[0].key, "soak.keep_runs");
        assert!(err.0[0].message.contains("between 1 and 1000"), "{err}");
    }
}
