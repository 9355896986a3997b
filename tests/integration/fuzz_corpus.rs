//! The fuzzing corpus (`fuzz/corpus/<target>/`) replayed through the same
//! entry points the cargo-fuzz targets call, on stable and in the normal test
//! suite: every kept input, and every crash the fuzzers found (saved as a
//! regression input named after what it found), must parse without a panic.

use std::path::Path;

use mailpulse::probe::fuzzing;
use mailpulse::replay::{read_csv, CsvOptions};

/// Runs `f` on every file under `fuzz/corpus/<target>/`; returns how many.
fn replay(target: &str, f: impl Fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&bytes)));
        assert!(result.is_ok(), "{target}: {} panics", path.display());
        n += 1;
    }
    assert!(n > 0, "no corpus for {target}");
    n
}

#[test]
fn the_config_corpus_parses_without_panics() {
    replay("config_parse", |b| {
        if let Ok(text) = std::str::from_utf8(b) {
            let _ = mailpulse::config::parse(text, None);
        }
    });
}

#[test]
fn the_replay_csv_corpus_parses_without_panics() {
    replay("replay_csv", |b| {
        if let Ok(text) = std::str::from_utf8(b) {
            let _ = read_csv(text, &CsvOptions::default());
        }
    });
}

#[test]
fn the_protocol_corpora_parse_without_panics() {
    replay("smtp_reply", fuzzing::smtp);
    replay("imap_response", fuzzing::imap);
    replay("pop3_response", fuzzing::pop3);
    replay("ntlm_message", fuzzing::ntlm);
}

#[test]
fn a_well_formed_session_reads_to_its_end() {
    // The seeds are real sessions: a parser that stopped early would make
    // the fuzzers explore nothing past the greeting. Here, at least, each
    // runs to completion without panicking on its own seed.
    fuzzing::smtp(b"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n221 bye\r\n");
    fuzzing::imap(b"* OK hi\r\n* CAPABILITY IMAP4rev1\r\nmp1 OK done\r\n");
    fuzzing::pop3(b"+OK hi\r\n+OK\r\nUSER\r\n.\r\n");
}

/// Found by `imap_response` (fuzz/README.md): an untagged response whose
/// first characters are not ASCII (`* F\xc5LAGS`, lossily decoded to a
/// three-byte U+FFFD) made the `* BYE` check slice inside a character and
/// panic, which ended the target's probe task for good.
#[test]
fn regression_imap_untagged_non_ascii_at_byte_3_does_not_panic() {
    fuzzing::imap(b"* OK hi\r\n* F\xc5LAGS (\\Seen)\r\nmp1 OK done\r\n");
    fuzzing::imap(
        b"* OK hi\r\n* CAPABILITY IMAP4rev1\r\nmp1 OK done\r\n* \xd5 RECENT\r\nmp2 OK\r\n",
    );
}
