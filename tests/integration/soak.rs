//! Soak-test runs: `mailpulse soak start|phase|end|list` on the local store,
//! their refusals, and the marks surviving a restart of the store.

use crate::support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::write_file;

fn soak(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["soak"];
    all.extend_from_slice(args);
    let c = config.to_str().unwrap();
    all.extend_from_slice(&["--config", c]);
    support::mailpulse(&all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn runs(config: &Path) -> Vec<Value> {
    let out = soak(config, &["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn runs_are_marked_in_order_and_refusals_exit_1_changing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &format!(
            "[agent]\nstate_dir = \"{}\"\n[soak]\nkeep_runs = 2\n",
            state.display()
        ),
    );
    // Nothing to end or advance yet.
    for args in [&["end"][..], &["phase", "ramp"][..]] {
        let out = soak(&cfg, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("no soak run is active"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = soak(
        &cfg,
        &[
            "start",
            "golive",
            "--phase",
            "baseline",
            "--note",
            "1x users",
            "--at",
            "2026-12-05T10:00:00Z",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "soak run golive started at 2026-12-05T10:00:00Z (phase baseline)\n"
    );
    // A second run while one is active is refused.
    let out = soak(&cfg, &["start", "other"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("soak run \"golive\" is still active"),
        "{}",
        text(&out.stderr)
    );
    // A mark before the last one would reorder the phases.
    let out = soak(&cfg, &["phase", "ramp", "--at", "2026-12-05T09:00:00Z"]);
    assert_eq!(out.status.code(), Some(1));
    let out = soak(&cfg, &["phase", "plateau", "--at", "2026-12-05T10:30:00Z"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "soak run golive: phase plateau began at 2026-12-05T10:30:00Z\n"
    );
    let out = soak(&cfg, &["end", "--at", "2026-12-05T11:00:00Z"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let listed = runs(&cfg);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let run = &listed[0];
    assert_eq!(run["name"], "golive");
    assert_eq!(run["ended_at"], "2026-12-05T11:00:00Z");
    let phases = run["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    assert_eq!(phases[0]["name"], "baseline");
    assert_eq!(phases[0]["note"], "1x users");
    assert_eq!(phases[0]["ended_at"], "2026-12-05T10:30:00Z");
    assert_eq!(phases[1]["name"], "plateau");

    // `[soak] keep_runs = 2`: the third run drops the first.
    for name in ["second", "third"] {
        assert!(soak(&cfg, &["start", name]).status.success());
        assert!(soak(&cfg, &["end"]).status.success());
    }
    let names: Vec<Value> = runs(&cfg).iter().map(|r| r["name"].clone()).collect();
    assert_eq!(names, ["third", "second"]);

    let out = soak(&cfg, &["list"]);
    assert!(
        text(&out.stdout).contains(" third "),
        "{}",
        text(&out.stdout)
    );
}
