//! Manual pages and shell completions from the real binary
//! (`mailpulse generate-docs --out DIR`, what `packaging/build.sh` runs):
//! a page for the command and each subcommand (nested ones too), which
//! `man` renders without a warning; completions for bash, which bash
//! loads and which complete subcommands and flag values; nothing of the
//! hidden command itself. (`packaging/check.sh` checks the same in the
//! packages.)

use crate::support;

use std::path::Path;
use std::process::Command;

use clap::CommandFactory as _;

/// Runs `generate-docs --out DIR`; the paths it printed.
fn generate(dir: &Path) -> Vec<String> {
    let out = Command::new(support::bin())
        .args(["generate-docs", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The page names the command line calls for: `mailpulse` and
/// `mailpulse-SUB[-SUBSUB]` for every visible subcommand.
fn expected_pages() -> Vec<String> {
    fn walk(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("{prefix}-{}", sub.get_name());
            out.push(name.clone());
            walk(sub, &name, out);
        }
    }
    let mut pages = vec!["mailpulse".to_owned()];
    walk(&mailpulse::cmd::Cli::command(), "mailpulse", &mut pages);
    pages.sort();
    pages
}

#[test]
fn every_command_has_a_manual_page_that_renders() {
    let dir = tempfile::tempdir().unwrap();
    let written = generate(dir.path());
    let man = dir.path().join("man");
    let mut pages: Vec<String> = std::fs::read_dir(&man)
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".1").unwrap_or(&name).to_owned()
        })
        .collect();
    pages.sort();
    assert_eq!(pages, expected_pages());
    assert!(pages.contains(&"mailpulse-silence-add".to_owned()));
    assert_eq!(written.len(), pages.len() + 3, "{written:?}");
    assert!(!written.iter().any(|p| p.contains("generate-docs")));

    if Command::new("man").arg("--version").output().is_err() {
        eprintln!(
            "skipping the rendering: man is not installed (.ci/install-deps installs man-db)"
        );
        return;
    }
    for page in &pages {
        let path = man.join(format!("{page}.1"));
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.is_empty(),
            "{page}: {warnings}"
        );
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{page}: {text}"
        );
        if page == "mailpulse-run" {
            assert!(text.contains("--log-format"), "{text}");
            assert!(text.contains("json: One JSON object per line"), "{text}");
        }
        if page == "mailpulse" {
            for section in ["FILES", "ENVIRONMENT", "EXIT STATUS", "SEE ALSO"] {
                assert!(text.contains(section), "{section}: {text}");
            }
            assert!(text.contains("JOURNAL_STREAM"), "{text}");
        }
    }
}

#[test]
fn bash_loads_the_completion_and_completes_commands_and_values() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let completions = dir.path().join("completions");
    for name in ["mailpulse.bash", "_mailpulse", "mailpulse.fish"] {
        let text = std::fs::read_to_string(completions.join(name)).unwrap();
        assert!(text.contains("log-format"), "{name}");
        assert!(
            !text.contains("generate-docs"),
            "{name} offers the hidden command"
        );
    }
    let script = r#"source "$1" && complete -p mailpulse &&
        COMP_WORDS=(mailpulse ru) COMP_CWORD=1 && _mailpulse mailpulse ru mailpulse && echo "${COMPREPLY[*]}" &&
        COMP_WORDS=(mailpulse run --log-format "") COMP_CWORD=3 && _mailpulse mailpulse "" --log-format && echo "${COMPREPLY[*]}" &&
        COMP_WORDS=(mailpulse silence "") COMP_CWORD=2 && _mailpulse mailpulse "" silence && echo "${COMPREPLY[*]}""#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script, "_"])
        .arg(completions.join("mailpulse.bash"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with("-F _mailpulse mailpulse"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "run");
    assert_eq!(lines[2], "text json");
    for sub in ["add", "list", "remove"] {
        assert!(lines[3].split(' ').any(|w| w == sub), "{}", lines[3]);
    }
}
