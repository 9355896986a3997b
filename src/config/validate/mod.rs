//! Turns configuration text into a validated [`Config`]: parse, deserialize
//! into the raw mirror (`raw.rs`), then check every key and fill defaults.
//!
//! Every problem found is reported (not only the first), each with the file,
//! line, column and key path it concerns. Positions come from the parser's
//! spans; errors found after deserialization name their [`KeyPath`], which
//! the [`Checker`] looks up in the parsed document.
//!
//! One file per part of the configuration: `agent.rs`, `web.rs`, `host.rs`,
//! `target.rs` (the keys every target has, then per kind: `http.rs`, and
//! `mail.rs` for tcp, smtp, imap, pop3 and mailflow, whose endpoints
//! `connect.rs` reads), `soak.rs`, `alerting.rs` (with `receiver.rs`, which hands each
//! kind to `config/receivers/`, `maintenance.rs` and `window.rs`, which shares
//! its schedule keys); `files.rs` reads
//! every secret, certificate and key file. `[slowdown]` is `config/slowdown.rs`.
//!
//! [`parse`] validates a whole file; [`parse_alerting`] only what the alert
//! commands need, on the same path.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

mod agent;
mod alerting;
mod connect;
mod files;
mod host;
mod http;
mod mail;
mod maintenance;
mod receiver;
mod slo;
mod soak;
mod target;
mod web;
mod window;

use super::raw::{RawAlertingFile, RawConfig};
use super::*;
use agent::build_agent;
use alerting::build_alerting;
use files::resolve;
use host::build_host;
pub(in crate::config) use receiver::ReceiverFields;
use target::{build_targets, key_path};

/// One step of a key path.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A key path such as `target[2].timeout`.
#[derive(Debug, Clone, Default)]
struct KeyPath(Vec<Seg>);

impl KeyPath {
    fn key(&self, k: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Collects errors and resolves positions against the parsed document.
struct Checker<'a> {
    text: &'a str,
    file: Option<PathBuf>,
    doc: Option<Spanned<DeTable<'a>>>,
    errors: Vec<ConfigError>,
    /// Problems that do not stop the agent (a secret file others can read).
    warnings: Vec<ConfigWarning>,
}

impl<'a> Checker<'a> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        (line, col)
    }

    /// The span of the value at `path`, or of the nearest existing parent.
    fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        let doc = self.doc.as_ref()?;
        let mut best = None;
        let mut current: Option<&DeValue<'a>> = None;
        let mut table: Option<&DeTable<'a>> = Some(doc.get_ref());
        for seg in &path.0 {
            match seg {
                Seg::Key(k) => {
                    let t = table.take().or(match current {
                        Some(DeValue::Table(t)) => Some(t),
                        _ => None,
                    })?;
                    let (key, value) = t.iter().find(|(key, _)| key.get_ref().as_ref() == k)?;
                    // Point at the value where there is one to point at, else at the key.
                    best = Some(if value.span().is_empty() {
                        key.span()
                    } else {
                        value.span()
                    });
                    current = Some(value.get_ref());
                }
                Seg::Index(i) => {
                    let DeValue::Array(items) = current? else {
                        return best;
                    };
                    let item = items.get(*i)?;
                    best = Some(item.span());
                    current = Some(item.get_ref());
                }
            }
            table = None;
        }
        best
    }

    fn error_at(&mut self, path: &KeyPath, message: impl Into<String>) {
        let error = self.located(path, message.into());
        self.errors.push(error);
    }

    fn warn_at(&mut self, path: &KeyPath, message: impl Into<String>) {
        let warning = self.located(path, message.into());
        self.warnings.push(warning);
    }

    fn located(&self, path: &KeyPath, message: String) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            position: self.span_of(path).map(|s| self.position(s.start)),
            key: path.to_string(),
            message,
        }
    }

    fn finish<T>(mut self, value: T) -> Result<T, ConfigErrors> {
        // Report in file order, so the first line printed is the first to fix.
        self.errors
            .sort_by_key(|e| e.position.unwrap_or((usize::MAX, usize::MAX)));
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }

    /// The errors found, when the file could not be read far enough to
    /// build anything.
    fn fail<T>(self) -> Result<T, ConfigErrors> {
        match self.finish(()) {
            Err(errors) => Err(errors),
            Ok(()) => unreachable!("fail is called after an error was reported"),
        }
    }

    /// The warnings found so far, in file order.
    fn take_warnings(&mut self) -> Vec<ConfigWarning> {
        self.warnings
            .sort_by_key(|w| w.position.unwrap_or((usize::MAX, usize::MAX)));
        std::mem::take(&mut self.warnings)
    }

    /// A checker for `text`, which came from `file`.
    fn new(text: &'a str, file: Option<&Path>) -> Checker<'a> {
        Checker {
            text,
            file: file.map(Path::to_path_buf),
            doc: None,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Parses the text and deserializes it into the raw mirror `T` (which
    /// decides which tables are read and whether unknown ones are refused),
    /// keeping the parsed document to locate later errors. `None` when the
    /// text is not TOML or does not fit `T` (the error is reported).
    fn read_raw<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        let doc = match DeTable::parse(self.text) {
            Ok(doc) => doc,
            Err(e) => {
                let position = e.span().map(|s| self.position(s.start));
                self.errors.push(ConfigError {
                    file: self.file.clone(),
                    position,
                    key: String::new(),
                    message: format!("invalid TOML: {}", e.message().trim_end()),
                });
                return None;
            }
        };
        self.doc = Some(doc.clone());
        let deserializer = toml::de::Deserializer::from(doc);
        match serde_path_to_error::deserialize(deserializer) {
            Ok(raw) => Some(raw),
            Err(e) => {
                let key = e.path().to_string();
                let inner = e.into_inner();
                let message = inner.message().trim_end().to_string();
                let position = inner.span().map(|s| self.position(s.start));
                self.errors.push(ConfigError {
                    file: self.file.clone(),
                    position,
                    key: if key == "." { String::new() } else { key },
                    message,
                });
                None
            }
        }
    }
}

/// The directory relative `*_file` paths of the file at `path` start from.
fn base_dir(path: Option<&Path>) -> PathBuf {
    path.and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The whole file: every table checked, unknown tables refused.
pub(super) fn parse(text: &str, path: Option<&Path>) -> Result<Config, ConfigErrors> {
    let mut checker = Checker::new(text, path);
    let Some(raw) = checker.read_raw::<RawConfig>() else {
        return checker.fail();
    };
    let mut config = build(&mut checker, raw, &base_dir(path), path);
    config.warnings = checker.take_warnings();
    checker.finish(config)
}

/// Only what the alert commands (`test-alert`, `silence`) need: `[agent]
/// state_dir` and `instance` (taken as written, defaulted) and the alerting
/// tables, checked as the whole-file validation checks them. Every other
/// table is left unread, so a target being edited, or one whose secret
/// only the daemon may read, never stops a silence or a test alert.
/// `base` is where relative `*_file` paths start; `hostname` the default
/// instance and EHLO name. Warnings are dropped (the daemon reports them).
pub(super) fn parse_alerting(
    text: &str,
    path: Option<&Path>,
    base: &Path,
    hostname: &str,
) -> Result<super::alerting::AlertingFile, ConfigErrors> {
    let mut checker = Checker::new(text, path);
    let Some(mut raw) = checker.read_raw::<RawAlertingFile>() else {
        return checker.fail();
    };
    let agent = std::mem::take(&mut raw.agent);
    let state_dir = agent
        .state_dir
        .map(|p| resolve(base, p))
        .unwrap_or_else(default_state_dir);
    let instance = agent.instance.unwrap_or_else(|| hostname.to_string());
    let target_names = target_names(raw.targets.take());
    let alerting = build_alerting(&mut checker, raw, base, hostname);
    checker.finish(super::alerting::AlertingFile {
        state_dir,
        instance,
        alerting,
        target_names,
    })
}

/// The names of the `[[target]]` tables as written (tables without a string
/// `name` are skipped; the daemon's loader reports them).
fn target_names(targets: Option<toml::Value>) -> Vec<String> {
    let Some(toml::Value::Array(tables)) = targets else {
        return Vec::new();
    };
    tables
        .iter()
        .filter_map(|t| t.get("name")?.as_str().map(str::to_string))
        .collect()
}

/// The `name` a target or receiver at `path` needs: not blank, without
/// hidden characters. `None` when it is missing or invalid (reported).
fn required_name(c: &mut Checker<'_>, path: &KeyPath, name: &Option<String>) -> Option<String> {
    match name {
        Some(n) if n.trim().is_empty() => {
            c.error_at(
                &path.key("name"),
                "must be a non-empty name without control characters",
            );
            None
        }
        Some(n) => match hidden_char_error(n) {
            Some(message) => {
                c.error_at(&path.key("name"), message);
                None
            }
            None => Some(n.clone()),
        },
        None => {
            c.error_at(path, "missing field `name`");
            None
        }
    }
}

/// Reports `kind`, at `path.kind`, as none of the `known` kinds.
fn unknown_kind<'k>(
    c: &mut Checker<'_>,
    path: &KeyPath,
    kind: &str,
    known: impl Iterator<Item = &'k str>,
) {
    let known: Vec<&str> = known.collect();
    c.error_at(
        &path.key("kind"),
        format!(
            "unknown kind {kind:?} (expected one of: {})",
            known.join(", ")
        ),
    );
}

/// Reports every key of a flat table (`set`, the kind-specific keys it
/// set) that its kind does not `accept`, as not valid for `kind` (`kind
/// "smtp"`); whether there was one.
fn misplaced_keys(
    c: &mut Checker<'_>,
    path: &KeyPath,
    set: Vec<&'static str>,
    accepts: impl Fn(&str) -> bool,
    kind: &str,
) -> bool {
    let mut misplaced = false;
    for key in set.into_iter().filter(|key| !accepts(key)) {
        c.error_at(&path.key(key), format!("not valid for {kind}"));
        misplaced = true;
    }
    misplaced
}

/// The error for a name (or other identifier) holding a control or
/// invisible formatting character ([`is_hidden_char`]), naming the first
/// one by code point; `None` for a clean name.
pub(super) fn hidden_char_error(text: &str) -> Option<String> {
    text.chars().find(|ch| is_hidden_char(*ch)).map(|ch| {
        format!(
            "must not contain U+{:04X} (a control, bidirectional or invisible formatting character)",
            u32::from(ch)
        )
    })
}

fn build(c: &mut Checker<'_>, raw: RawConfig, base: &Path, path: Option<&Path>) -> Config {
    let root = KeyPath::default();
    let agent = build_agent(c, &root.key("agent"), base, raw.agent);
    let host = build_host(c, &root.key("host"), base, raw.host);
    let soak = soak::build_soak(c, &root.key("soak"), raw.soak);
    let slowdown = match slowdown::resolve(raw.slowdown.as_ref(), None) {
        Ok(s) => s,
        Err((key, message)) => {
            c.error_at(&key_path(&root, &key), message);
            crate::detect::SlowdownSettings::default()
        }
    };
    let alerting_raw = RawAlertingFile {
        agent: super::raw::RawAgentPart::default(),
        alerting: raw.alerting,
        receivers: raw.receivers,
        routes: raw.routes,
        maintenance: raw.maintenance,
        windows: raw.windows,
        targets: None,
    };
    let errors_before = c.errors.len();
    let alerting = build_alerting(c, alerting_raw, base, &hostname());
    // Targets named in `[alerting] severity` are checked against the
    // targets only when the alerting tables are valid.
    let alerting_valid = c.errors.len() == errors_before;
    let (targets, seen) = build_targets(c, &root, raw.targets, base, raw.slowdown.as_ref());
    let slos = slo::build_slos(c, &root, raw.slos);

    let severity_targets = alerting.severity.keys().filter(|_| alerting_valid);
    for name in severity_targets {
        if !targets.iter().any(|t: &Target| &t.name == name) && !seen.contains_key(name) {
            c.error_at(
                &root.key("alerting").key("severity").key(name),
                format!("no target named {name:?}"),
            );
        }
    }
    Config {
        source: path.map(Path::to_path_buf),
        agent,
        host,
        soak,
        slowdown,
        targets,
        alerting,
        slos,
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// issue 21: names with bidirectional controls read as something else
    /// (`owa\u{202E}gpj.exe` shows as `owaexe.jpg`).
    #[test]
    fn names_refuse_controls_and_invisible_formatting() {
        for ch in [
            '\0', '\t', '\n', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{ad}', '\u{61c}',
            '\u{200b}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{2028}', '\u{202a}', '\u{202e}',
            '\u{2060}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{feff}',
        ] {
            let name = format!("owa{ch}x");
            let want = format!(
                "must not contain U+{:04X} (a control, bidirectional or invisible formatting character)",
                u32::from(ch)
            );
            assert_eq!(hidden_char_error(&name), Some(want), "{ch:?}");
        }
        for name in [
            "owa",
            "OWA-01_cas.example.org",
            "Zürich mail",
            "メール",
            "a b",
            "x→y",
        ] {
            assert_eq!(hidden_char_error(name), None, "{name}");
        }
    }

    #[test]
    fn the_instance_and_maintenance_names_are_checked_too() {
        let err = parse("[agent]\ninstance = \"cas\\u2067\"\n", None).unwrap_err();
        assert_eq!(err.0[0].key, "agent.instance");
        assert!(err.0[0].message.contains("U+2067"), "{err}");
        let err = parse(
            "[[maintenance]]\nname = \"patch\\u200Fday\"\nstart = \"2026-12-05T22:00:00Z\"\nend = \"2026-12-06T02:00:00Z\"\n",
            None,
        )
        .unwrap_err();
        assert_eq!(err.0[0].key, "maintenance[0].name");
        assert!(err.0[0].message.contains("U+200F"), "{err}");
    }
}
