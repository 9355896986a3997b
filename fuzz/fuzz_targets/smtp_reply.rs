//! What a server sends, fed to the SMTP client parser
//! (`probe::fuzzing::smtp`): it may fail, never panic or grow without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mailpulse::probe::fuzzing::smtp(data);
});
