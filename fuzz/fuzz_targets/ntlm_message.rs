//! What a server sends, fed to the NTLM client parser
//! (`probe::fuzzing::ntlm`): it may fail, never panic or grow without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mailpulse::probe::fuzzing::ntlm(data);
});
