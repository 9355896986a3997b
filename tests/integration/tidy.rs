//! Tidy checks over every file git tracks (`git ls-files`, and new files it
//! does not ignore), so nothing escapes them: no merge-conflict markers in
//! any text file, every source file opens with a `//!` paragraph, and the
//! module rules of ARCHITECTURE.md as allow-lists.
//!
//! [`MAY_USE`] names, for each top-level module of `src/`, the crate
//! modules it may depend on; a dependency is any path into the crate, in
//! every form it takes (`use crate::x`, `use crate::{x, y::z}` over any
//! number of lines, `crate::x::f()` in code, `super::super::x`, `super::x`
//! from a `mod.rs`, inside inline `mod tests { }` too), read from the code
//! with comments and strings removed. Use within one's own top-level module
//! is free. An entry may also name a submodule (`alert::render`), whose own
//! list then applies to it, and an allowed name may be a submodule or an
//! item (`probe::tls`, `detect::Incident`), which allows that and nothing
//! else of its module. [`PRIVATE`] submodules stay inside their module;
//! [`PURE`] modules name no IO, clock or runtime. A violation says where,
//! which module, what it used and what it may use.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// What each module of `src/` may use of the crate, besides itself: one
/// line a module. Every top-level module needs a line, and a new one fails
/// until it has one; a line for a submodule (`alert::render`) overrides its
/// module's for it. A name allows that module, submodule or item and what
/// is inside it. Edit here when a boundary moves, and say why in
/// ARCHITECTURE.md. Nothing may use `app` but `cmd::run`.
#[rustfmt::skip]
const MAY_USE: &[(&str, &[&str])] = &[
    // Alerting sends; it never probes or collects (it shares only the TLS
    // client setup of probe::tls).
    // It queues and renders change-window summaries (window builds them).
    ("alert", &["clock", "config", "detect::Incident", "human", "metrics", "outbound", "probe::tls", "report", "store", "window"]),
    // The repair after a crash reads the incident layer's open incidents.
    ("alert::reconcile", &["alert", "clock", "config", "detect::Incident", "human", "incident::Incidents", "metrics", "probe::tls", "report", "store"]),
    // Message text is pure (see PURE): the alert model, nothing else.
    ("alert::render", &["alert::AlertEvent", "alert::AlertStatus", "alert::HostLoad", "alert::tests", "human", "window::render"]),
    // The supervisor: the only module that knows them all.
    // The agent's API: what its endpoints mean (the listener authenticates).
    ("api", &["config", "metrics::server", "store"]),
    ("app", &["alert", "api", "clock", "collect", "config", "health", "incident", "metrics", "pipeline", "probe", "report", "sample", "schedule", "service", "status", "store"]),
    // The commands: each parses its arguments, calls into the library and
    // prints. Only `run` starts the daemon.
    ("cmd", &["alert", "clock", "config", "detect", "fleet", "human", "probe", "replay", "report", "sample", "service::logging", "store", "verdict", "window"]),
    ("cmd::run", &["app", "cmd", "config", "human", "metrics", "service"]),
    ("clock", &[]),
    // Collectors return data: no metrics, probes, detection or alerts.
    ("collect", &["sample"]),
    // The host collection task beats the health watchdog.
    ("collect::task", &["collect", "health", "sample"]),
    ("config", &["detect::SlowdownSettings", "human", "sample", "service::logging::LogFormat"]),
    // The detector is pure (see PURE): samples in, events out.
    ("detect", &["sample"]),
    // Fleet fan-out (soak marks, change windows, silences): one authenticated
    // request to many agents, through the one outbound client.
    ("fleet", &["config", "outbound"]),
    ("health", &[]),
    // The one HTML escaper, shared by every rendered page (see PURE): it
    // depends on nothing.
    ("html", &[]),
    // The one human duration formatter: pure, depends on nothing.
    ("human", &[]),
    ("incident", &["config", "detect", "sample", "store"]),
    // Metrics record what they are given; they never probe or decide (no
    // detect::Detector).
    ("metrics", &["collect::tests", "config", "detect::DetectEvent", "detect::Incident", "detect::IncidentKind", "detect::State", "health", "sample"]),
    // The web server hands the status routes to the status module.
    ("metrics::server", &["config", "health", "metrics", "status::api"]),
    // The one outbound HTTP client (receivers, replay): the agent's TLS
    // setup, nothing else.
    ("outbound", &["config", "probe::tls"]),
    ("pipeline", &["alert", "clock", "config", "detect", "health", "incident", "metrics", "sample", "status", "store", "verdict", "window"]),
    // Probes return data: no metrics, detection, incidents or alerts.
    ("probe", &["clock", "config", "sample"]),
    ("replay", &["config", "detect", "human", "outbound"]),
    ("report", &["alert::render", "config", "detect::Incident", "detect::SlowdownSettings", "human", "replay::IncidentLine", "replay::rfc3339", "sample", "store::incidents"]),
    // Plain data shared by every stage: it depends on nothing.
    ("sample", &[]),
    ("schedule", &["clock", "config", "health", "probe", "sample"]),
    // systemd integration; the watchdog reads the health of the tasks.
    ("service", &["health"]),
    // The status page and API: the board the pipeline keeps, the incident
    // history and the outbox's notifications (decoded by alert::stored).
    ("status", &["alert::stored", "clock", "config", "detect", "html", "human", "sample", "store"]),
    // The quantile sketch is pure arithmetic (see PURE): values in, quantiles out.
    ("sketch", &[]),
    // The soak verdict: phase figures, objectives and incidents in, report
    // out (see PURE); tables and terminal escaping are report's.
    ("verdict", &["config", "html", "human", "report::table", "report::terminal_text", "report::Width", "sample", "sketch"]),
    // The store keeps bytes: it knows nothing of alerts, probes or metrics.
    ("store", &["detect"]),
    // Change-window figures, summary and its renderings (see PURE): the
    // window, its incidents and the figures in, the summary out.
    ("window", &["detect", "html", "human", "sketch", "store::incidents", "store::windows"]),
];

/// Submodules only their own top-level module may use.
const PRIVATE: &[&str] = &[
    // Raw configuration types never leave config/.
    "config::raw",
];

/// Modules that do no IO, read no clock and need no runtime.
const PURE: &[&str] = &[
    "detect",
    "alert::render",
    "html",
    "human",
    "sketch",
    "status::board",
    "status::json",
    "status::html",
    "verdict",
    "window",
];

/// What a [`PURE`] module may not name.
const IMPURE: &[&str] = &[
    "tokio",
    "std::fs",
    "std::net",
    "SystemTime",
    "Utc::now",
    "Instant::now",
];

/// Calls that open redb databases and transactions: only `store/` makes
/// them, each behind its panic boundary (`store/unwind.rs`).
const REDB_OPENERS: &[&str] = &[
    "begin_write(",
    "begin_read(",
    "Database::",
    "ReadOnlyDatabase",
];

/// The one file that may allow `unsafe` code (ARCHITECTURE.md says why).
const UNSAFE_ALLOWED_IN: &str = "src/service/trim.rs";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file git tracks, and every new one it does not ignore, relative
/// to the repository root; deleted ones and symbolic links left out.
fn tracked() -> Vec<String> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("tidy reads the file list with `git ls-files`: {e}"));
    assert!(
        out.status.success(),
        "git ls-files failed (tidy needs a git checkout): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|f| !f.is_empty())
        .filter(|f| {
            std::fs::symlink_metadata(root().join(f)).is_ok_and(|m| m.file_type().is_file())
        })
        .map(String::from)
        .collect();
    files.sort();
    files.dedup();
    files
}

/// The tracked text files (no NUL byte, valid UTF-8) and their text.
fn text_files() -> Vec<(String, String)> {
    tracked()
        .into_iter()
        .filter_map(|f| {
            let bytes = std::fs::read(root().join(&f)).ok()?;
            if bytes.contains(&0) {
                return None;
            }
            Some((f, String::from_utf8(bytes).ok()?))
        })
        .collect()
}

/// The tracked Rust sources of the library and binary, and their text.
fn sources() -> Vec<(String, String)> {
    text_files()
        .into_iter()
        .filter(|(f, _)| f.starts_with("src/") && f.ends_with(".rs"))
        .collect()
}

#[test]
fn no_tracked_file_has_merge_conflict_markers() {
    let mut bad = Vec::new();
    for (file, text) in text_files() {
        for (i, line) in text.lines().enumerate() {
            let marker = ["<<<<<<< ", "||||||| ", ">>>>>>> "]
                .iter()
                .any(|m| line.starts_with(m))
                || line == "=======";
            if marker {
                bad.push(format!("{file}:{}: merge-conflict marker: {line}", i + 1));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|(_, text)| !text.starts_with("//!"))
        .map(|(f, _)| f)
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! module doc: {missing:?}"
    );
}

#[test]
fn modules_use_only_what_their_allow_list_names() {
    let table = rules();
    let mut bad = Vec::new();
    let mut tops = std::collections::BTreeSet::new();
    for (file, text) in sources() {
        let Some(module) = module_of(&file) else {
            continue;
        };
        if let Some(top) = module.first() {
            tops.insert(top.clone());
        }
        let here = module.join("::");
        let (rule, allowed) = rule_for(&table, &module);
        for (line, used) in crate_paths(&strip(&text), &module) {
            if let Some(why) = verdict(&module, &rule, allowed, &used) {
                bad.push(format!(
                    "{file}:{line}: {here} uses crate::{}{why}; {rule} may use: {}",
                    used.join("::"),
                    if allowed.is_empty() {
                        "nothing of the crate".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ));
            }
        }
    }
    for top in &tops {
        if !table.contains_key(top.as_str()) {
            bad.push(format!(
                "src/{top}: a top-level module without an entry in MAY_USE (tests/integration/tidy.rs)"
            ));
        }
    }
    for name in table.keys() {
        let top = name.split("::").next().unwrap();
        if !tops.contains(top) {
            bad.push(format!(
                "MAY_USE names {name}, which is not a module of src/ (tests/integration/tidy.rs)"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn pure_modules_do_no_io_and_read_no_clock() {
    let mut bad = Vec::new();
    for (file, text) in sources() {
        let Some(module) = module_of(&file) else {
            continue;
        };
        let here = module.join("::");
        let code = strip(&text);
        for pure in PURE {
            if !within(&module, pure) {
                continue;
            }
            for (i, line) in code.lines().enumerate() {
                for f in IMPURE {
                    if contains_path(line, f) {
                        bad.push(format!(
                            "{file}:{}: {here} uses {f}; {pure} is pure (no IO, no clock, no runtime)",
                            i + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn only_the_store_opens_redb_and_only_trim_allows_unsafe() {
    let mut bad = Vec::new();
    for (file, text) in sources() {
        let code = strip(&text);
        for (i, line) in code.lines().enumerate() {
            if !file.starts_with("src/store/") {
                for f in REDB_OPENERS {
                    if line.contains(f) {
                        bad.push(format!(
                            "{file}:{}: only src/store/ may call redb's {f}",
                            i + 1
                        ));
                    }
                }
            }
            if file != UNSAFE_ALLOWED_IN && line.contains("allow(unsafe_code)") {
                bad.push(format!(
                    "{file}:{}: allows unsafe code (only {UNSAFE_ALLOWED_IN} may)",
                    i + 1
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The one writer of standard output, through which every command prints.
const STDOUT_WRITER: &str = "src/cmd/out.rs";

/// issue 20: `println!` panics when the reader of standard output has left
/// (`mailpulse incidents --json | head -1` exited 101). Commands print
/// through `cmd::out`, where that is a normal end; nothing else in `src/`
/// writes to standard output.
#[test]
fn only_cmd_out_writes_to_standard_output() {
    let mut bad = Vec::new();
    for (file, text) in sources() {
        if file == STDOUT_WRITER {
            continue;
        }
        for (i, line) in strip(&text).lines().enumerate() {
            if writes_stdout(line) {
                bad.push(format!(
                    "{file}:{}: writes to standard output; print through cmd::out ({STDOUT_WRITER})",
                    i + 1
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Whether a line of code (comments and strings removed) prints to
/// standard output: `print!`, `println!` or `stdout()` (not `eprint!`,
/// `eprintln!` or a path ending in them).
fn writes_stdout(line: &str) -> bool {
    ["print!", "println!", "stdout()"].iter().any(|needle| {
        line.match_indices(needle).any(|(at, _)| {
            !line[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    })
}

#[test]
fn the_stdout_check_tells_print_from_eprint() {
    assert!(writes_stdout("    println!(\"{}\", x);"));
    assert!(writes_stdout("print!(\"{out}\");"));
    assert!(writes_stdout("let w = std::io::stdout();"));
    assert!(!writes_stdout("    eprintln!(\"{e}\");"));
    assert!(!writes_stdout("eprint!(\"x\");"));
    assert!(!writes_stdout("out::print(x); out::line(y);"));
}

/// The checks themselves, on snippets.
#[test]
fn tidy_reads_every_form_of_a_crate_path() {
    let module = vec!["probe".to_string(), "http".to_string()];
    let code = strip(
        "//! doc: crate::alert in a comment\n\
         use crate::metrics;\n\
         use crate::{config::{self, Target}, sample::Sample};\n\
         pub(crate) use crate::{\n    detect::Detector,\n    incident,\n};\n\
         fn f() { let s = \"crate::alert in a string\"; crate::store::open(); }\n\
         use super::super::app::run;\n\
         use super::tls;\n\
         mod tests {\n    use super::*;\n    use super::super::dialogue;\n}\n",
    );
    let found: Vec<(usize, String)> = crate_paths(&code, &module)
        .into_iter()
        .map(|(line, p)| (line, p.join("::")))
        .collect();
    let want: Vec<(usize, String)> = [
        (2, "metrics"),
        (3, "config"),
        (3, "config::Target"),
        (3, "sample::Sample"),
        (5, "detect::Detector"),
        (6, "incident"),
        (8, "store::open"),
        (9, "app::run"),
        (10, "probe::tls"),
        (12, "probe::http"),
        (13, "probe::dialogue"),
    ]
    .into_iter()
    .map(|(l, p)| (l, p.to_string()))
    .collect();
    assert_eq!(found, want);
    let table = rules();
    let (rule, allowed) = rule_for(&table, &module);
    assert_eq!(rule, "probe");
    assert!(verdict(&module, &rule, allowed, &["metrics".into()]).is_some());
    assert!(verdict(&module, &rule, allowed, &["probe".into(), "tls".into()]).is_none());
    let alert = vec!["alert".to_string(), "email".to_string()];
    let (rule, allowed) = rule_for(&table, &alert);
    assert!(verdict(&alert, &rule, allowed, &["probe".into(), "tls".into()]).is_none());
    assert!(verdict(&alert, &rule, allowed, &["probe".into(), "Prober".into()]).is_some());
    assert!(verdict(&alert, &rule, allowed, &["config".into(), "raw".into()]).is_some());
    assert!(contains_path("let t = SystemTime::now();", "SystemTime"));
    assert!(!contains_path("let t = MySystemTime::now();", "SystemTime"));
    assert!(contains_path("x = tokio::spawn(f);", "tokio"));
}

/// [`MAY_USE`] by module name.
fn rules() -> BTreeMap<&'static str, &'static [&'static str]> {
    MAY_USE.iter().copied().collect()
}

/// The most specific rule for `module`, and its list.
fn rule_for(
    table: &BTreeMap<&'static str, &'static [&'static str]>,
    module: &[String],
) -> (String, &'static [&'static str]) {
    (1..=module.len())
        .rev()
        .map(|n| module[..n].join("::"))
        .find_map(|name| table.get(name.as_str()).map(|list| (name, *list)))
        .unwrap_or_else(|| (module.first().cloned().unwrap_or_default(), &[]))
}

/// Why `module` (under `rule`, with `allowed`) may not use `used`; `None`
/// when it may.
fn verdict(module: &[String], rule: &str, allowed: &[&str], used: &[String]) -> Option<String> {
    let own_top = module.first().map(String::as_str);
    let top = used.first().map(String::as_str);
    if top == own_top {
        if PRIVATE.iter().any(|p| within(used, p)) {
            return None;
        }
        // Within one's own top-level module: free, unless the rule is a
        // submodule's, which lists even its siblings.
        if !rule.contains("::") || within(used, rule) {
            return None;
        }
    } else if let Some(private) = PRIVATE.iter().find(|p| within(used, p)) {
        return Some(format!(" ({private} is private to its module)"));
    }
    if allowed.iter().any(|a| within(used, a)) {
        return None;
    }
    Some(String::new())
}

/// Whether the path `path` is `prefix` or inside it (by whole segments).
fn within(path: &[String], prefix: &str) -> bool {
    let prefix: Vec<&str> = prefix.split("::").collect();
    path.len() >= prefix.len() && path.iter().zip(&prefix).all(|(a, b)| a == b)
}

/// Whether `line` names `path` (`tokio`, `Utc::now`) as a whole path
/// segment, not as part of a longer name.
fn contains_path(line: &str, path: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(path).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + path.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// The module path of a source file of the library (`src/alert/mod.rs` is
/// `alert`, `src/alert/render.rs` is `alert::render`, `src/lib.rs` the
/// root); `None` for the binary (`src/main.rs`, a crate of its own).
fn module_of(file: &str) -> Option<Vec<String>> {
    let rel = file.strip_prefix("src/")?.strip_suffix(".rs")?;
    if rel == "main" {
        return None;
    }
    let mut parts: Vec<String> = rel.split('/').map(String::from).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    Some(parts)
}

/// `text` with comments, string and character literals blanked (lines and
/// columns kept), so only code is read.
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    blank(&mut out, b[i]);
                    blank(&mut out, b[i + 1]);
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    blank(&mut out, b[i]);
                    blank(&mut out, b[i + 1]);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&b, i) {
            // r"..." or r#"..."# (after an optional b): up to the quote and
            // as many hashes.
            let open = b[i..].iter().position(|&c| c == '"').unwrap() + i;
            for &c in &b[i..=open] {
                blank(&mut out, c);
            }
            i = open + 1;
            while i < b.len() {
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        blank(&mut out, ' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == '"' {
            blank(&mut out, c);
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            if i < b.len() {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == '\'' && is_char_literal(&b, i) {
            blank(&mut out, c);
            i += 1;
            while i < b.len() && b[i] != '\'' {
                if b[i] == '\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            if i < b.len() {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// At `i`, the start of a raw string (`r"`, `r#"`, `br"`...): its hashes.
fn raw_string_start(b: &[char], i: usize) -> Option<usize> {
    if i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if b.get(j) == Some(&'b') {
        j += 1;
    }
    if b.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == '#').count();
    (b.get(j + hashes) == Some(&'"')).then_some(hashes)
}

/// Whether the quote at `i` opens a character literal (`'a'`, `'\n'`), not
/// a lifetime (`'a`).
fn is_char_literal(b: &[char], i: usize) -> bool {
    match b.get(i + 1) {
        Some('\\') => true,
        Some(_) => b.get(i + 2) == Some(&'\''),
        None => false,
    }
}

/// A token of stripped code: an identifier or keyword, `::`, or one
/// punctuation character; with its line.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Path,
    Punct(char),
}

fn tokens(code: &str) -> Vec<(usize, Tok)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_alphabetic() || c == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push((n + 1, Tok::Ident(chars[start..i].iter().collect())));
            } else if c == ':' && chars.get(i + 1) == Some(&':') {
                out.push((n + 1, Tok::Path));
                i += 2;
            } else {
                if !c.is_whitespace() {
                    out.push((n + 1, Tok::Punct(c)));
                }
                i += 1;
            }
        }
    }
    out
}

/// Every path into the crate in `code` of the module `module`, resolved to
/// a path from the crate root, with its line: `use` trees, `crate::` paths
/// and `super::` paths, inside inline `mod x { }` blocks too.
fn crate_paths(code: &str, module: &[String]) -> Vec<(usize, Vec<String>)> {
    let toks = tokens(code);
    let mut out = Vec::new();
    // The inline modules we are in: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let here: Vec<String> = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(m, _)| m.clone()))
            .collect();
        match &toks[i].1 {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(k) if k == "mod" => {
                if let (Some((_, Tok::Ident(name))), Some((_, Tok::Punct('{')))) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    depth += 1;
                    inline.push((name.clone(), depth));
                    i += 3;
                } else {
                    i += 1;
                }
            }
            Tok::Ident(k) if k == "use" => {
                let mut paths = Vec::new();
                let end = use_tree(&toks, i + 1, Vec::new(), &mut paths);
                for (line, p) in paths {
                    if let Some(resolved) = resolve(&p, &here) {
                        out.push((line, resolved));
                    }
                }
                i = end;
            }
            Tok::Ident(k) if (k == "crate" || k == "super" || k == "self") => {
                // A path in code: `crate::a::b`, `super::super::c`.
                let line = toks[i].0;
                let preceded_by_path = i > 0 && toks[i - 1].1 == Tok::Path;
                let mut segs = vec![k.clone()];
                let mut j = i + 1;
                while let (Some((_, Tok::Path)), Some((_, Tok::Ident(s)))) =
                    (toks.get(j), toks.get(j + 1))
                {
                    segs.push(s.clone());
                    j += 2;
                }
                if !preceded_by_path && segs.len() > 1 && k != "self" {
                    if let Some(resolved) = resolve(&segs, &here) {
                        out.push((line, resolved));
                    }
                }
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

/// Reads a `use` tree from `toks[i..]` into full paths (each with the
/// `prefix` in front, and the line of its last segment); returns the index
/// after it (after the `;` at the top).
fn use_tree(
    toks: &[(usize, Tok)],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<(usize, Vec<String>)>,
) -> usize {
    let mut path = prefix;
    let mut line = toks.get(i).map_or(0, |t| t.0);
    let mut glob = false;
    loop {
        match toks.get(i).map(|t| &t.1) {
            Some(Tok::Ident(s)) if s == "as" => {
                // `as name`: the path is already complete.
                i += 2;
            }
            // `a::{self, b}`: `self` is `a` itself.
            Some(Tok::Ident(s)) if s == "self" && !path.is_empty() => {
                line = toks[i].0;
                i += 1;
            }
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                line = toks[i].0;
                i += 1;
            }
            Some(Tok::Path) => i += 1,
            Some(Tok::Punct('*')) => {
                out.push((toks[i].0, path.clone()));
                glob = true;
                i += 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                while toks.get(i).map(|t| &t.1) != Some(&Tok::Punct('}')) {
                    i = use_tree(toks, i, path.clone(), out);
                    match toks.get(i).map(|t| &t.1) {
                        Some(Tok::Punct(',')) => i += 1,
                        Some(Tok::Punct('}')) => {}
                        _ => return i,
                    }
                }
                i += 1;
                if toks.get(i).map(|t| &t.1) == Some(&Tok::Punct(';')) {
                    i += 1;
                }
                return i;
            }
            Some(Tok::Punct(',')) | Some(Tok::Punct('}')) => {
                if !glob {
                    out.push((line, path));
                }
                return i;
            }
            _ => {
                if !glob && !path.is_empty() {
                    out.push((line, path));
                }
                return i + 1;
            }
        }
    }
}

/// `path` (as written: `crate::…`, `super::…`, `self::…`, or another
/// crate) from the module `here`, as a path from the crate root; `None`
/// for another crate's path.
fn resolve(path: &[String], here: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    match first.as_str() {
        "crate" => Some(path[1..].to_vec()),
        "self" => Some(
            here.iter()
                .cloned()
                .chain(path[1..].iter().cloned())
                .collect(),
        ),
        "super" => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            let base = here.len().checked_sub(ups)?;
            Some(
                here[..base]
                    .iter()
                    .cloned()
                    .chain(path[ups..].iter().cloned())
                    .collect(),
            )
        }
        _ => None,
    }
}
