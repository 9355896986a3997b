//! Tidy checks on the source tree: every file opens with a module doc, and the
//! architecture invariants of ARCHITECTURE.md hold (checked by grepping
//! `use crate::` lines, so a new dependency across a boundary fails here).

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rel(path: &Path) -> String {
    path.strip_prefix(src())
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let missing: Vec<String> = sources(&src())
        .into_iter()
        .filter(|p| !std::fs::read_to_string(p).unwrap().starts_with("//!"))
        .map(|p| rel(&p))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! module doc: {missing:?}"
    );
}

/// Modules under `prefix` must not mention any of `forbidden` (as `crate::X`).
fn check_boundary(prefix: &str, forbidden: &[&str], violations: &mut Vec<String>) {
    for path in sources(&src()) {
        let name = rel(&path);
        if !name.starts_with(prefix) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            for f in forbidden {
                if line.contains(f) {
                    violations.push(format!(
                        "src/{name}:{}: {} must not use {f}",
                        i + 1,
                        prefix.trim_end_matches('/')
                    ));
                }
            }
        }
    }
}

#[test]
fn architecture_invariants_hold() {
    let mut v = Vec::new();
    // Probes and collectors never touch metrics, detection or alerts.
    check_boundary(
        "probe/",
        &[
            "crate::metrics",
            "crate::detect",
            "crate::alert",
            "crate::incident",
            "crate::app",
        ],
        &mut v,
    );
    check_boundary(
        "collect/",
        &[
            "crate::metrics",
            "crate::probe",
            "crate::detect",
            "crate::alert",
            "crate::app",
        ],
        &mut v,
    );
    // Metrics record what they are given; they never probe or decide.
    check_boundary(
        "metrics/",
        &[
            "crate::probe",
            "crate::detect::Detector",
            "crate::alert",
            "crate::app",
            "crate::schedule",
        ],
        &mut v,
    );
    // Detection is pure: no IO, no clock, no runtime.
    check_boundary(
        "detect/",
        &[
            "tokio",
            "std::fs",
            "std::net",
            "Utc::now",
            "crate::app",
            "crate::metrics",
        ],
        &mut v,
    );
    // Message text is pure: no IO, no clock, no runtime.
    check_boundary(
        "alert/render.rs",
        &["tokio", "std::fs", "std::net", "Utc::now", "crate::store"],
        &mut v,
    );
    // The store keeps bytes; it knows nothing of alerts, probes or metrics.
    check_boundary(
        "store/",
        &[
            "crate::alert",
            "crate::probe",
            "crate::metrics",
            "crate::app",
        ],
        &mut v,
    );
    // Alerting sends; it never probes or collects (it shares only the TLS
    // client setup of probe::tls).
    check_boundary(
        "alert/",
        &[
            "crate::probe::run",
            "crate::probe::Prober",
            "crate::collect",
            "crate::app",
        ],
        &mut v,
    );
    // Only the store opens redb databases and transactions (behind its panic
    // boundary, store/unwind.rs).
    for path in sources(&src()) {
        let name = rel(&path);
        if name.starts_with("store/") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for f in [
            "begin_write(",
            "begin_read(",
            "Database::",
            "ReadOnlyDatabase",
        ] {
            if text.contains(f) {
                v.push(format!("src/{name}: only store/ may call redb's {f}"));
            }
        }
    }
    // The sample types depend on nothing.
    check_boundary("sample/", &["use crate::"], &mut v);
    // Nothing but main.rs depends on the supervisor.
    for path in sources(&src()) {
        let name = rel(&path);
        if name == "main.rs" || name == "app.rs" || name == "lib.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("crate::app") {
            v.push(format!("src/{name}: only main.rs may depend on app"));
        }
        if !name.starts_with("config/") && text.contains("raw::") {
            v.push(format!(
                "src/{name}: raw configuration types stay inside config/"
            ));
        }
    }
    assert!(v.is_empty(), "{}", v.join("\n"));
}

/// No merge-conflict markers in tracked text (a merge once committed some
/// into README.md and ARCHITECTURE.md), and `unsafe` only where allowed.
#[test]
fn no_conflict_markers_and_unsafe_only_in_trim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = sources(&src());
    files.extend(sources(&root.join("tests")));
    for name in [
        "README.md",
        "ARCHITECTURE.md",
        "Cargo.toml",
        "bench/README.md",
    ] {
        files.push(root.join(name));
    }
    let mut bad = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if ["<<<<<<< ", ">>>>>>> "].iter().any(|m| line.starts_with(m)) || line == "=======" {
                bad.push(format!("{}:{}: conflict marker", path.display(), i + 1));
            }
        }
    }
    for path in sources(&src()) {
        let name = rel(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        if name != "service/trim.rs" && text.contains("allow(unsafe_code)") {
            bad.push(format!("src/{name}: allows unsafe code"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
