//! `mailpulse generate-docs --out DIR` (hidden): writes the manual pages
//! (`man/mailpulse.1` and one `man/mailpulse-COMMAND.1` a subcommand) and
//! the shell completions (`completions/mailpulse.bash`, `_mailpulse` for
//! zsh, `mailpulse.fish`) from the binary's own command line definition,
//! so the packages (`packaging/build.sh`) ship pages and completions that
//! cannot drift from the flags the binary takes. Hidden commands (this
//! one) appear in neither.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;

use super::Cli;

/// `mailpulse generate-docs`: the flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write `man/` and `completions/` into (created if
    /// missing; files already there are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// The completions written, by shell: the shell and the file name.
const COMPLETIONS: &[(Shell, &str)] = &[
    (Shell::Bash, "mailpulse.bash"),
    (Shell::Zsh, "_mailpulse"),
    (Shell::Fish, "mailpulse.fish"),
];

/// Writes the pages and completions, and prints each file's path.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    for path in generate(&args.out)? {
        super::out::line(path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes every page and completion under `out`; the paths written.
pub fn generate(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man_dir = out.join("man");
    std::fs::create_dir_all(&man_dir)
        .with_context(|| format!("cannot create {}", man_dir.display()))?;
    for (name, page) in man_pages()? {
        written.push(write(&man_dir.join(name), page.as_bytes())?);
    }
    let completion_dir = out.join("completions");
    std::fs::create_dir_all(&completion_dir)
        .with_context(|| format!("cannot create {}", completion_dir.display()))?;
    for &(shell, name) in COMPLETIONS {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut public_command(), "mailpulse", &mut text);
        written.push(write(&completion_dir.join(name), &text)?);
    }
    Ok(written)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path.to_owned())
}

/// The command line as users see it: [`Cli`] without its hidden
/// subcommands (clap's completion generators list hidden subcommands,
/// and a command cannot drop one, so this copies the top level and every
/// visible subcommand).
pub fn public_command() -> clap::Command {
    let full = Cli::command();
    let mut public = clap::Command::new(full.get_name().to_owned())
        .propagate_version(full.is_propagate_version_set())
        .subcommand_required(full.is_subcommand_required_set())
        .arg_required_else_help(full.is_arg_required_else_help_set());
    if let Some(about) = full.get_about() {
        public = public.about(about.clone());
    }
    if let Some(about) = full.get_long_about() {
        public = public.long_about(about.clone());
    }
    if let Some(version) = full.get_version() {
        public = public.version(version.to_owned());
    }
    for arg in full.get_arguments() {
        public = public.arg(arg.clone());
    }
    for sub in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        public = public.subcommand(sub.clone());
    }
    public
}

/// Every manual page as (file name, roff text): `mailpulse.1`, then one
/// per visible subcommand, theirs after each (`mailpulse-silence-add.1`).
pub fn man_pages() -> anyhow::Result<Vec<(String, String)>> {
    let mut top = public_command().disable_help_subcommand(true);
    top.build();
    let source = format!("mailpulse {}", top.get_version().unwrap_or_default());
    let see_also: Vec<String> = top
        .get_subcommands()
        .map(|s| format!("{}(1)", page_name(s)))
        .collect();
    let mut pages = Vec::new();
    let subcommands: Vec<clap::Command> = top.get_subcommands().cloned().collect();
    pages.push(page(top, &source, &top_sections(&see_also))?);
    let mut todo: Vec<(clap::Command, String)> = subcommands
        .into_iter()
        .rev()
        .map(|s| (s, "mailpulse".to_owned()))
        .collect();
    while let Some((cmd, parent)) = todo.pop() {
        let name = page_name(&cmd);
        let children: Vec<clap::Command> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .cloned()
            .collect();
        pages.push(page(cmd, &source, &sub_sections(&parent))?);
        todo.extend(children.into_iter().rev().map(|s| (s, name.clone())));
    }
    Ok(pages)
}

/// The page's name: `mailpulse` or `mailpulse-COMMAND`.
fn page_name(cmd: &clap::Command) -> String {
    cmd.get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned()
}

/// One page: clap's sections, then `extra`.
fn page(cmd: clap::Command, source: &str, extra: &Roff) -> anyhow::Result<(String, String)> {
    let man = Man::new(cmd).manual("mailpulse manual").source(source);
    let mut text = Vec::new();
    man.render(&mut text)?;
    text.extend_from_slice(extra.to_roff().as_bytes());
    Ok((man.get_filename(), String::from_utf8(text)?))
}

/// A `.TP` entry: `term` in bold (or italics for a path), then `text`.
fn entry(roff: &mut Roff, term: &str, text: &str) {
    let term = if term.starts_with('/') {
        italic(term)
    } else {
        bold(term)
    };
    roff.control("TP", []).text([term]).text([roman(text)]);
}

/// What `mailpulse.1` says beyond the command line: files, environment,
/// exit status and the other pages.
fn top_sections(see_also: &[String]) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["FILES"]);
    entry(
        &mut roff,
        crate::config::DEFAULT_CONFIG_PATH,
        "The configuration, used when --config is not given. Every key is described in the README.",
    );
    entry(
        &mut roff,
        "/var/lib/mailpulse/mailpulse.redb",
        "The state store ([agent] state_dir): incidents, detector state, the alert outbox and silences.",
    );
    roff.control("SH", ["ENVIRONMENT"]);
    entry(
        &mut roff,
        "RUST_LOG",
        "A log filter that overrides [agent] log_level.",
    );
    entry(
        &mut roff,
        "JOURNAL_STREAM",
        "Set by systemd; when it names standard error, log lines carry priority prefixes that journald reads, so journalctl -p warning shows warnings.",
    );
    entry(
        &mut roff,
        "STATE_DIRECTORY",
        "Set by systemd (StateDirectory=); the default state directory.",
    );
    entry(
        &mut roff,
        crate::config::CREDENTIALS_DIRECTORY,
        "Set by systemd (LoadCredential=); secrets named with password_credential are read from it.",
    );
    entry(
        &mut roff,
        "NOTIFY_SOCKET",
        "Set by systemd for Type=notify; readiness, reloads, status and watchdog pings go there.",
    );
    roff.control("SH", ["EXIT STATUS"]);
    entry(&mut roff, "0", "Success.");
    entry(
        &mut roff,
        "1",
        "An error: an invalid configuration, a daemon that cannot start, a receiver that refused a test alert.",
    );
    entry(&mut roff, "2", "mailpulse probe: a probe failed.");
    roff.control("SH", ["SEE ALSO"]);
    let mut refs = see_also.join(", ");
    refs.push_str(", journalctl(1), systemd.exec(5)");
    roff.text([roman(refs)]);
    roff.control("PP", []);
    roff.text([roman("The README: /usr/share/doc/mailpulse/README.md")]);
    roff
}

/// What a subcommand's page adds: its parent's page and the README.
fn sub_sections(parent: &str) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(format!(
        "{parent}(1), /usr/share/doc/mailpulse/README.md"
    ))]);
    roff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_command_is_the_cli_less_its_hidden_commands() {
        let mut full = Cli::command();
        let mut public = public_command();
        // The top-level help lists no hidden command, so it must match.
        assert_eq!(
            public.render_long_help().to_string(),
            full.render_long_help().to_string()
        );
        assert_eq!(
            public.render_version(),
            full.render_version(),
            "the version"
        );
        let visible: Vec<&str> = full
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name())
            .collect();
        let listed: Vec<&str> = public.get_subcommands().map(|s| s.get_name()).collect();
        assert_eq!(listed, visible);
        assert!(full.find_subcommand("generate-docs").unwrap().is_hide_set());
        assert!(!listed.contains(&"generate-docs"));
        public.debug_assert();
    }

    #[test]
    fn there_is_a_page_for_the_command_and_each_subcommand() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "mailpulse.1");
        for sub in public_command().get_subcommands() {
            let want = format!("mailpulse-{}.1", sub.get_name());
            assert!(names.contains(&want.as_str()), "{want} missing: {names:?}");
        }
        assert!(!names
            .iter()
            .any(|n| n.contains("generate-docs") || n.contains("help")));
        let run = &pages
            .iter()
            .find(|(n, _)| n == "mailpulse-run.1")
            .unwrap()
            .1;
        assert!(run.contains("log\\-format"), "{run}");
        let top = &pages[0].1;
        for section in ["FILES", "ENVIRONMENT", "EXIT STATUS", "SEE ALSO"] {
            assert!(
                top.contains(&format!(".SH \"{section}\""))
                    || top.contains(&format!(".SH {section}")),
                "{section}: {top}"
            );
        }
        assert!(top.contains("mailpulse\\-run(1)"), "{top}");
    }
}
