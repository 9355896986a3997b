//! Entry points for `fuzz/` (cargo-fuzz): the protocol response parsers
//! driven by arbitrary server bytes, with no socket and no runtime.
//!
//! Each function runs the client side of one protocol against a scripted
//! server (`Dialogue::scripted`) that says exactly the given bytes and then
//! closes. Sends are discarded, so the futures never wait and are polled once.
//! Not part of the supported API; nothing in the agent calls this module.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use super::dialogue::Dialogue;

/// Polls a future that never waits (everything it reads is in memory).
fn run_now(future: impl Future<Output = ()>) {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(()) => {}
        Poll::Pending => panic!("a scripted dialogue waited"),
    }
}

/// SMTP: banner, EHLO extensions, then every reply in `server`.
pub fn smtp(server: &[u8]) {
    run_now(super::smtp::fuzz_session(Dialogue::scripted(
        "smtp", server,
    )));
}

/// IMAP: greeting, CAPABILITY, SELECT, SEARCH, FETCH (with literals), LOGOUT.
pub fn imap(server: &[u8]) {
    run_now(super::imap::fuzz_session(Dialogue::scripted(
        "imap", server,
    )));
}

/// POP3: greeting, CAPA list, USER/PASS, STAT, QUIT.
pub fn pop3(server: &[u8]) {
    run_now(super::pop3::fuzz_session(Dialogue::scripted(
        "pop3", server,
    )));
}

/// NTLM: a CHALLENGE (what a server sends) and an AUTHENTICATE message.
pub fn ntlm(message: &[u8]) {
    let _ = super::ntlm::parse_challenge(message);
    let _ = super::ntlm::parse_authenticate(message);
}
