//! Writing the results: the machine description, one section per scenario
//! (`<out>/<scenario>.md` and `.verdict`), and `bench/RESULTS.md` composed
//! from whichever sections exist, with the verdict table first.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;

use crate::scenarios::{Env, Section, BLACKBOX_EXPORTER, NODE_EXPORTER};
use crate::SCENARIOS;

/// Headings of the scenario sections.
fn heading(scenario: &str) -> &'static str {
    match scenario {
        "side" => "Memory, CPU and scrape latency, side by side (50 HTTP targets + host)",
        "accuracy" => "Probe accuracy under a CPU hog",
        "scale" => "Scale: 0 to 2,000 targets at 1 s",
        "incidents" => "Memory under an incident storm",
        _ => "Steady state: an accelerated day",
    }
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// Describes the machine and the versions measured, into `<out>/machine.md`.
pub fn write_machine(env: &Env) -> io::Result<()> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let os = fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default();
    let commit = std::env::var("MAILPULSE_COMMIT").unwrap_or_else(|_| "unknown".into());
    let mut text = String::new();
    let _ = writeln!(
        text,
        "- Machine: {} × {model}, {:.1} GiB RAM, {os}, Linux {}",
        env.cores,
        mem_kb / 1024.0 / 1024.0,
        first_line("uname", &["-r"])
    );
    let _ = writeln!(
        text,
        "- mailpulse: `{}` (commit {commit}, release build)",
        first_line(&env.mailpulse.to_string_lossy(), &["--version"])
    );
    let _ = writeln!(
        text,
        "- node_exporter: `{}`",
        first_line(NODE_EXPORTER, &["--version"])
    );
    let _ = writeln!(
        text,
        "- blackbox_exporter: `{}`",
        first_line(BLACKBOX_EXPORTER, &["--version"])
    );
    fs::write(env.out.join("machine.md"), text)
}

/// Writes one scenario's section and verdict rows.
pub fn write_section(env: &Env, scenario: &str, section: &Section) -> io::Result<()> {
    let when = first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let commit = std::env::var("MAILPULSE_COMMIT").unwrap_or_else(|_| "unknown".into());
    let body = format!(
        "## {}\n\n_Run {when}, {} mode, mailpulse commit {commit}._\n\n{}\n",
        heading(scenario),
        env.plan.mode,
        section.body.trim_end()
    );
    fs::write(env.out.join(format!("{scenario}.md")), body)?;
    let mut rows = String::new();
    for v in &section.verdicts {
        let _ = writeln!(
            rows,
            "| {} | {} | {} |",
            v.target,
            if v.met { "**met**" } else { "**not met**" },
            v.figure
        );
    }
    fs::write(env.out.join(format!("{scenario}.verdict")), rows)
}

/// Joins the sections present in `out` into `results`. A scenario with no
/// section in `out` (a `--only` run on a machine without the earlier runs'
/// output) keeps its section and verdict rows from the `results` already
/// there, so a partial run never drops what it did not measure.
pub fn compose(out: &Path, results: &Path) -> io::Result<()> {
    let before = fs::read_to_string(results).unwrap_or_default();
    let mut verdicts = String::new();
    let mut sections = String::new();
    for s in SCENARIOS {
        if let Ok(v) = fs::read_to_string(out.join(format!("{s}.verdict"))) {
            verdicts.push_str(&v);
        }
        match fs::read_to_string(out.join(format!("{s}.md"))) {
            Ok(b) => {
                sections.push_str(&b);
                sections.push('\n');
            }
            Err(_) => {
                if let Some(b) = section_of(&before, heading(s)) {
                    sections.push_str(b.trim_end());
                    sections.push_str("\n\n");
                }
            }
        }
    }
    for row in kept_verdicts(&before, &verdicts) {
        verdicts.push_str(row);
        verdicts.push('\n');
    }
    let machine = fs::read_to_string(out.join("machine.md"))
        .ok()
        .or_else(|| machine_of(&before))
        .unwrap_or_default();
    let notes = results
        .parent()
        .map(|d| fs::read_to_string(d.join("notes.md")).unwrap_or_default())
        .unwrap_or_default();
    let text = format!(
        "# Performance benchmark results\n\n\
         Generated by `bench/run.sh` (`bench/harness`); the sections below are rewritten by each run, \
         the discussion at the end is kept in `bench/notes.md`. mailpulse, node_exporter and \
         blackbox_exporter ran on the same machine, in the same run, against the same loopback targets; \
         the targets are ratios measured side by side, so they carry over between machines better than \
         the absolute times do.\n\n{machine}\n\
         ## Verdicts\n\n| target | verdict | measured |\n|---|---|---|\n{verdicts}\n{sections}{notes}"
    );
    if let Some(dir) = results.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(results, text)
}

/// The section of `text` under `## {heading}`, heading included, up to the
/// next `## ` heading.
fn section_of<'a>(text: &'a str, heading: &str) -> Option<&'a str> {
    let start = text.find(&format!("\n## {heading}\n"))? + 1;
    let rest = &text[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 4);
    Some(&rest[..end])
}

/// The machine lines (`- Machine: ...` and what follows) of an earlier result.
fn machine_of(text: &str) -> Option<String> {
    let start = text.find("- Machine: ")?;
    let end = text[start..]
        .find("\n\n")
        .map_or(text.len(), |i| start + i + 1);
    Some(text[start..end].to_string())
}

/// The verdict rows of an earlier result whose target no row of `fresh`
/// names: the verdicts of scenarios this run did not measure.
fn kept_verdicts<'a>(before: &'a str, fresh: &str) -> Vec<&'a str> {
    let target = |row: &str| row.split(" | ").next().map(str::to_string);
    let fresh: Vec<String> = fresh.lines().filter_map(target).collect();
    let Some(table) = section_of(before, "Verdicts") else {
        return Vec::new();
    };
    table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| target |"))
        .filter(|l| target(l).is_some_and(|t| !fresh.contains(&t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_run_keeps_the_sections_and_verdicts_it_did_not_measure() {
        let dir =
            std::env::temp_dir().join(format!("mailpulse-bench-compose-{}", std::process::id()));
        let out = dir.join("out");
        fs::create_dir_all(&out).unwrap();
        let results = dir.join("RESULTS.md");
        fs::write(
            &results,
            format!(
                "# Performance benchmark results\n\nintro\n\n- Machine: old box\n- mailpulse: old\n\n\
                 ## Verdicts\n\n| target | verdict | measured |\n|---|---|---|\n\
                 | Memory target | **met** | old memory |\n| Accuracy target | **met** | old accuracy |\n\n\
                 ## {}\n\nold side figures\n\n## {}\n\nold accuracy figures\n\n## Discussion\n\nold notes\n",
                heading("side"),
                heading("accuracy")
            ),
        )
        .unwrap();
        fs::write(
            out.join("side.md"),
            format!("## {}\n\nnew side figures\n", heading("side")),
        )
        .unwrap();
        fs::write(
            out.join("side.verdict"),
            "| Memory target | **met** | new memory |\n",
        )
        .unwrap();
        compose(&out, &results).unwrap();
        let text = fs::read_to_string(&results).unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert!(
            text.contains("new side figures") && !text.contains("old side figures"),
            "{text}"
        );
        assert!(text.contains("old accuracy figures"), "{text}");
        assert!(
            text.contains("| Memory target | **met** | new memory |"),
            "{text}"
        );
        assert!(!text.contains("old memory"), "{text}");
        assert!(
            text.contains("| Accuracy target | **met** | old accuracy |"),
            "{text}"
        );
        assert!(text.contains("- Machine: old box"), "{text}");
    }
}
