//! The TOML configuration loader (`config::parse`): parsing, validation and
//! error positions must never panic, whatever the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        // No path: relative `*_file` keys resolve against the fuzzer's cwd.
        let _ = mailpulse::config::parse(text, None).map_err(|e| e.to_string());
    }
});
