//! The report of a three-phase run with a slowdown in the second phase only.

use std::time::Duration;

use chrono::DateTime;

use super::render::{render, Format};
use super::stats::PhaseStats;
use super::*;
use crate::config::slo::Cmp;
use crate::sample::Phase;

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_748_800 + minute * 60, 0).unwrap()
}

fn slo(name: &str, targets: &[&str], phases: &[&str], objective: Objective) -> Slo {
    Slo {
        name: name.into(),
        targets: targets.iter().map(|t| Glob(t.to_string())).collect(),
        phases: phases.iter().map(|t| Glob(t.to_string())).collect(),
        objective,
    }
}

/// Three 10-minute phases, a probe every 10 s; `owa` takes 150-190 ms but
/// 600-690 ms in `plateau`, and fails twice there.
fn run(target: &str) -> (Vec<RunPhase>, Vec<ServerRun>, Vec<RunIncident>) {
    let names = ["baseline", "plateau", "cool-down"];
    let phases: Vec<RunPhase> = names
        .iter()
        .enumerate()
        .map(|(k, n)| RunPhase {
            name: n.to_string(),
            start: at(10 * k as i64),
            end: Some(at(10 * k as i64 + 10)),
            note: (k == 1).then(|| "7.5x users".to_string()),
        })
        .collect();
    let mut stats = vec![PhaseStats::default(); 3];
    for (k, s) in stats.iter_mut().enumerate() {
        for j in 0..60i64 {
            let t = at(10 * k as i64).timestamp() + j * 10;
            let ms = if k == 1 {
                600 + (j as u64 % 10) * 10
            } else {
                150 + (j as u64 % 5) * 10
            };
            let failed = k == 1 && (j == 7 || j == 8);
            s.observe(&stats::tests::sample(target, t, (!failed).then_some(ms)));
        }
    }
    let incidents = vec![RunIncident {
        server: "cas01".into(),
        target: target.into(),
        kind: "slow".into(),
        started_at: at(10),
        detected_at: at(11),
        recovered_at: Some(at(20)),
        peak_seconds: Some(0.69),
        worst_step: Some("first_byte".into()),
        phase: Some("plateau".into()),
    }];
    (
        phases,
        vec![ServerRun {
            server: "cas01".into(),
            phases: stats.into_iter().map(Into::into).collect(),
        }],
        incidents,
    )
}

fn slos() -> Vec<Slo> {
    vec![
        slo(
            "owa p95",
            &["owa*"],
            &[],
            Objective::Latency {
                quantile: 0.95,
                step: Phase::Total,
                cmp: Cmp::Lt,
                limit: Duration::from_millis(300),
            },
        ),
        slo(
            "owa p95 outside the plateau",
            &["owa*"],
            &["baseline", "cool*"],
            Objective::Latency {
                quantile: 0.95,
                step: Phase::Total,
                cmp: Cmp::Lt,
                limit: Duration::from_millis(300),
            },
        ),
        slo(
            "available",
            &[],
            &[],
            Objective::Success {
                cmp: Cmp::Ge,
                percent: 99.0,
            },
        ),
        slo(
            "short",
            &[],
            &[],
            Objective::MaxIncident(Duration::from_secs(300)),
        ),
        slo(
            "imap fast",
            &["imap*"],
            &[],
            Objective::Latency {
                quantile: 0.5,
                step: Phase::Total,
                cmp: Cmp::Lt,
                limit: Duration::from_secs(1),
            },
        ),
    ]
}

fn make(target: &str) -> Report {
    let (phases, servers, incidents) = run(target);
    let slos = slos();
    report(&Input {
        run: "go-live-1",
        phases: &phases,
        servers: &servers,
        incidents: &incidents,
        slos: &slos,
        end: at(30),
    })
}

#[test]
fn the_plateau_fails_its_latency_objective_and_the_other_phases_pass() {
    let r = make("owa");
    let by_name = |n: &str| r.slos.iter().find(|s| s.name == n).unwrap();
    let p95 = by_name("owa p95");
    assert_eq!(p95.pass, Some(false));
    let failed: Vec<&str> = p95
        .checks
        .iter()
        .filter(|c| !c.pass)
        .map(|c| c.phase.as_str())
        .collect();
    assert_eq!(failed, ["plateau"]);
    // The worst check first: the plateau's p95 (rank 56 of 58: 690 ms),
    // within the sketch's 0.5%.
    assert!(
        (p95.checks[0].measured - 0.69).abs() <= 0.69 * 0.005,
        "{:?}",
        p95.checks[0]
    );
    assert_eq!(by_name("owa p95 outside the plateau").pass, Some(true));
    // 58 of 60 in the plateau: 96.67% < 99%.
    let avail = by_name("available");
    assert_eq!(avail.pass, Some(false));
    assert_eq!(avail.checks[0].phase, "plateau");
    assert!((avail.checks[0].measured - 58.0 * 100.0 / 60.0).abs() < 1e-9);
    // The 10-minute incident is over the 5-minute limit.
    let short = by_name("short");
    assert_eq!((short.pass, short.checks.len()), (Some(false), 1));
    assert_eq!(short.checks[0].measured, 600.0);
    assert_eq!(by_name("imap fast").pass, None);
    assert!(!r.verdict.pass);
    assert!(
        r.verdict
            .line
            .starts_with("FAIL: 3 of 5 objectives failed, 1 without data: owa p95 ("),
        "{}",
        r.verdict.line
    );
}

#[test]
fn each_phase_has_its_percentiles_and_its_ratio_to_the_first() {
    assert_eq!(
        make("owa").notes,
        ["percentiles from the agents' own sketches, within 0.5% of exact"]
    );
    let r = make("owa");
    assert_eq!(r.targets.len(), 3);
    let plateau = &r.targets[1];
    assert_eq!((plateau.phase.as_str(), plateau.probes), ("plateau", 60));
    let total = plateau.total.unwrap();
    assert!((total.p50 - 0.64).abs() <= 0.64 * 0.005, "{total:?}");
    assert!((total.p99 - 0.69).abs() <= 0.69 * 0.005, "{total:?}");
    assert_eq!(plateau.slowest_step.as_deref(), Some("first_byte"));
    let ratio = plateau.p95_vs_first.unwrap();
    assert!((ratio - 0.69 / 0.19).abs() < 0.02, "{ratio}");
    assert_eq!(
        r.targets[0].p95_vs_first.map(|v| (v * 1e6).round()),
        Some(1e6)
    );
    assert_eq!(r.timelines.len(), 1);
    assert_eq!(
        r.timelines[0]
            .points
            .iter()
            .map(|p| p.ok + p.failed)
            .sum::<u32>(),
        180
    );
}

#[test]
fn no_objectives_pass_and_a_clean_run_passes() {
    let (phases, servers, _) = run("owa");
    let r = report(&Input {
        run: "r",
        phases: &phases,
        servers: &servers,
        incidents: &[],
        slos: &[],
        end: at(30),
    });
    assert!(r.verdict.pass);
    let slos = vec![slo(
        "short",
        &[],
        &[],
        Objective::MaxIncident(Duration::from_secs(60)),
    )];
    let r = report(&Input {
        slos: &slos,
        incidents: &[],
        ..Input {
            run: "r",
            phases: &phases,
            servers: &servers,
            incidents: &[],
            slos: &[],
            end: at(30),
        }
    });
    assert_eq!(r.verdict.line, "PASS: 1 of 1 objectives met");
    assert_eq!(r.slos[0].measured, "no incident");
}

#[test]
fn every_format_carries_the_verdict_and_escapes_names() {
    let mut r = make("owa<script>alert(1)</script>");
    r.notes.push("not read: <b>cas02</b>".into());
    let text = render(&r, Format::Text);
    assert!(
        text.starts_with("Soak run \"go-live-1\": FAIL: 3 of 5"),
        "{text}"
    );
    assert!(text.contains("Phases:\n  phase      start"), "{text}");
    assert_eq!(
        text.lines().nth(1),
        Some("  (percentiles from the agents' own sketches, within 0.5% of exact)"),
        "the error statement under the verdict: {text}"
    );
    assert!(text.contains("  (not read: <b>cas02</b>)\n\n"), "{text}");
    let md = render(&r, Format::Markdown);
    assert!(md.contains("**FAIL: 3 of 5"), "{md}");
    assert!(
        md.contains("| FAIL | owa p95 | p95 of total &lt; 300ms |"),
        "{md}"
    );
    assert!(!md.contains("<script>"));
    assert!(md.contains("_not read: &lt;b&gt;cas02&lt;/b&gt;_"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
    assert_eq!(json["verdict"]["pass"], false);
    assert_eq!(json["slos"][0]["pass"], false);
    assert_eq!(json["incidents"][0]["phase"], "plateau");
    let html = render(&r, Format::Html);
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(!html.contains("<script"), "no script, and the name escaped");
    assert!(html.contains("owa&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("<p class=\"note\">not read: &lt;b&gt;cas02&lt;/b&gt;</p>"));
    assert_eq!(json["notes"].as_array().map(Vec::len), Some(2));
    assert_eq!(html.matches("<h1>").count(), 1);
    assert_eq!(html.matches("class=\"band").count(), 3);
    assert_eq!(html.matches("class=\"incident\"").count(), 1);
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "self-contained"
    );
}
