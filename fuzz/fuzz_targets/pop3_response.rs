//! What a server sends, fed to the POP3 client parser
//! (`probe::fuzzing::pop3`): it may fail, never panic or grow without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mailpulse::probe::fuzzing::pop3(data);
});
