//! Target name patterns at work: whether a [`Glob`] (`*` any run of
//! characters, `?` one) matches a target name, and whether a [`Route`]'s
//! matchers take an alert. `config` holds the patterns as data; matching
//! them is alert routing's business, so it lives here (an inherent impl
//! on the configuration types, which any module of the crate may add).

use crate::config::alerting::{Glob, Route};

impl Glob {
    /// The pattern that matches everything.
    pub fn any() -> Glob {
        Glob("*".into())
    }

    /// Whether `text` matches the pattern.
    pub fn matches(&self, text: &str) -> bool {
        fn go(p: &[char], t: &[char]) -> bool {
            match p.split_first() {
                None => t.is_empty(),
                Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
                Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
                Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
            }
        }
        let p: Vec<char> = self.0.chars().collect();
        let t: Vec<char> = text.chars().collect();
        go(&p, &t)
    }
}

impl Route {
    /// Whether an alert with these properties matches.
    pub fn matches(&self, target: &str, kind: &str, incident: &str, severity: &str) -> bool {
        self.event.as_deref().is_none_or(|e| e == "incident")
            && self.target.as_ref().is_none_or(|g| g.matches(target))
            && self.kind.as_deref().is_none_or(|k| k == kind)
            && self.incident.as_deref().is_none_or(|k| k == incident)
            && self.severity.as_deref().is_none_or(|s| s == severity)
    }

    /// Whether a change-window summary over `targets` (the targets it
    /// covered) matches: `event` unset or `window_summary`, no `kind`,
    /// `incident` or `severity` matcher (a summary has none), and `target`
    /// unset or matching any of `targets`.
    pub fn matches_summary<'a>(&self, mut targets: impl Iterator<Item = &'a str>) -> bool {
        self.event.as_deref().is_none_or(|e| e == "window_summary")
            && self.kind.is_none()
            && self.incident.is_none()
            && self.severity.is_none()
            && self
                .target
                .as_ref()
                .is_none_or(|g| targets.any(|t| g.matches(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let check = |p: &str, t: &str, expect: bool| {
            assert_eq!(Glob(p.into()).matches(t), expect, "{p} ~ {t}")
        };
        check("*", "owa", true);
        check("owa", "owa", true);
        check("owa", "owa2", false);
        check("owa*", "owa-cas01", true);
        check("*-cas0?", "owa-cas01", true);
        check("*-cas0?", "owa-cas010", false);
        check("smtp*", "owa", false);
    }

    /// Moved from `config::alerting`'s `receivers_of_every_kind`: the route
    /// it configures matches by its target pattern.
    #[test]
    fn a_route_matches_by_its_target_pattern() {
        let c = crate::config::alerting::parse(
            "[[receiver]]\nname = \"pd\"\nkind = \"webhook\"\nurl = \"http://h/\"\n[[route]]\ntarget = \"owa*\"\nreceivers = [\"pd\"]\ncontinue = true\n",
            std::path::Path::new(""),
            "agent.example",
        )
        .unwrap();
        assert!(c.routes[0].matches("owa-cas01", "http", "slow", "critical"));
        assert!(!c.routes[0].matches("imap", "http", "slow", "critical"));
    }
}
