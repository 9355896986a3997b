//! Text from outside reaches a terminal escaped, and long lists stay short
//! (issue 21, "Also:"): silence reasons typed by anyone with access to the
//! CLI, server banners and replies in `mailpulse probe`, and the list of
//! targets after `mailpulse probe NOSUCH`, through the real binary.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

use support::write_file;

/// Terminal escapes a hostile string might carry: clear screen, set the
/// window title, a bell, and a right-to-left override.
const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7} done \u{202e}txt.exe";

fn mailpulse(args: &[&str]) -> Output {
    Command::new(support::bin()).args(args).output().unwrap()
}

/// Whether `text` holds anything a terminal would act on or reorder.
fn has_raw_controls(text: &str) -> bool {
    text.chars()
        .any(|ch| (ch.is_control() && ch != '\n') || ch == '\u{202e}')
}

#[test]
fn silence_reasons_are_listed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "mailpulse.toml",
        "[agent]\nstate_dir = \"state\"\n",
    );
    let c = config.to_str().unwrap();
    let reason = format!("patching {HOSTILE}");
    let out = mailpulse(&[
        "silence", "add", "--target", "owa", "--for", "2h", "--reason", &reason, "--config", c,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!has_raw_controls(&added), "{added:?}");
    let out = mailpulse(&["silence", "list", "--config", c]);
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!has_raw_controls(&list), "{list:?}");
    assert!(
        list.contains("patching \\u{1b}[2J\\u{1b}]0;pwned\\u{7} done \\u{202e}txt.exe"),
        "{list}"
    );
}

/// A fake SMTP server whose banner and EHLO refusal carry terminal escapes.
fn hostile_smtp() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        let _ = write!(writer, "220 mail {HOSTILE} ESMTP\r\n");
        let mut line = String::new();
        if reader.read_line(&mut line).is_ok() {
            let _ = write!(writer, "554 5.7.1 go away {HOSTILE}\r\n");
        }
    });
    port
}

#[test]
fn server_banners_and_replies_are_printed_escaped() {
    let port = hostile_smtp();
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "c.toml",
        &format!(
            "[[target]]\nname = \"mx\"\nkind = \"smtp\"\naddress = \"127.0.0.1:{port}\"\ntls = \"none\"\ntimeout = \"2s\"\n"
        ),
    );
    let out = mailpulse(&["probe", "--config", config.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(2), "{text}");
    // (The dialogue already blanks C0 controls; the override got through.)
    assert!(!has_raw_controls(&text), "{text:?}");
    assert!(text.contains("banner: 220 mail "), "{text}");
    assert!(text.contains("done \\u{202e}txt.exe ESMTP"), "{text}");
    assert!(text.contains("go away "), "{text}");
}

/// `mailpulse probe NOSUCH` on a file with 10,000 targets used to list all
/// of them (about 110 KB on one line); now the closest ten and a count.
#[test]
fn an_unknown_target_lists_a_bounded_number_of_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..10_000 {
        text.push_str(&format!(
            "[[target]]\nname = \"imap{i:05}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:9\"\n"
        ));
    }
    let config = write_file(dir.path(), "c.toml", &text);
    let out = mailpulse(&["probe", "--config", config.to_str().unwrap(), "imap00O42"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.len() < 400, "{} bytes: {err}", err.len());
    assert!(
        err.contains("no target named \"imap00O42\"") && err.contains("(targets: imap00042, "),
        "{err}"
    );
    assert_eq!(err.matches(", ").count(), 10, "{err}");
    assert!(err.ends_with(", and 9990 more)\n"), "{err}");
}
