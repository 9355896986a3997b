//! Plain data shared by every stage of the pipeline: what a probe measured
//! ([`Sample`]) and what the host collectors read ([`host::HostSnapshot`]).
//!
//! This module depends on nothing else in the crate, does no IO and reads no
//! clock: producers fill these types in, consumers (metrics, detection) read them.

pub mod host;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The protocol a target is probed with; its `as_str()` is the `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// HTTP or HTTPS request with phase timings.
    Http,
    /// TCP connect, optionally with a TLS handshake.
    Tcp,
    /// An SMTP dialogue (banner, EHLO, STARTTLS, AUTH, envelope, QUIT).
    Smtp,
    /// An IMAP dialogue (greeting, CAPABILITY, STARTTLS, LOGIN, SELECT, LOGOUT).
    Imap,
    /// A POP3 dialogue (greeting, CAPA, STLS, USER/PASS, STAT, QUIT).
    Pop3,
    /// End to end: a tagged message submitted by SMTP and fetched over IMAP.
    Mailflow,
}

impl ProbeKind {
    /// The label value used in metrics and output.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Smtp => "smtp",
            ProbeKind::Imap => "imap",
            ProbeKind::Pop3 => "pop3",
            ProbeKind::Mailflow => "mailflow",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One timed step of a probe; its `as_str()` is the `phase` label.
///
/// Mail dialogues share one vocabulary: a step that several protocols have
/// (the greeting, STARTTLS, authentication, the goodbye) has one phase, so a
/// dashboard can compare `auth` across SMTP, IMAP and POP3. Repeated steps
/// (the EHLO after STARTTLS) add up into one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Name resolution.
    Dns,
    /// TCP connect to the chosen address.
    Connect,
    /// TLS handshake (implicit TLS, or after STARTTLS/STLS).
    Tls,
    /// Request sent until the first byte of the response head arrived.
    FirstByte,
    /// First response byte until the body was fully read.
    Transfer,
    /// Waiting for the server's greeting (SMTP 220, IMAP `* OK`, POP3 `+OK`).
    Banner,
    /// SMTP `EHLO` (both before and after STARTTLS).
    Ehlo,
    /// IMAP `CAPABILITY` or POP3 `CAPA` (both before and after STARTTLS).
    Capability,
    /// The `STARTTLS`/`STLS` command and its reply (the handshake is `tls`).
    Starttls,
    /// Authentication: SMTP `AUTH`, IMAP `LOGIN`/`AUTHENTICATE`, POP3 `USER`/`PASS`,
    /// or HTTP NTLM.
    Auth,
    /// SMTP `MAIL FROM`.
    MailFrom,
    /// SMTP `RCPT TO`.
    RcptTo,
    /// IMAP `SELECT` of the mailbox.
    Select,
    /// POP3 `STAT`.
    Stat,
    /// The goodbye: SMTP `RSET`/`QUIT`, IMAP `LOGOUT`, POP3 `QUIT`.
    Quit,
    /// Mail flow: opening the IMAP session that watches the mailbox.
    Prepare,
    /// Mail flow: the whole SMTP submission until the message was accepted.
    Submit,
    /// Mail flow: message accepted by SMTP until it was visible over IMAP.
    Delivery,
    /// Mail flow: fetching the delivered message to check its tag.
    Fetch,
    /// Mail flow: deleting the probe message (and leftovers of earlier runs).
    Delete,
    /// The whole probe, from start to finish.
    Total,
}

impl Phase {
    /// Every phase, in dialogue order.
    pub const ALL: [Phase; 21] = [
        Phase::Dns,
        Phase::Connect,
        Phase::Tls,
        Phase::FirstByte,
        Phase::Transfer,
        Phase::Banner,
        Phase::Ehlo,
        Phase::Capability,
        Phase::Starttls,
        Phase::Auth,
        Phase::MailFrom,
        Phase::RcptTo,
        Phase::Select,
        Phase::Stat,
        Phase::Quit,
        Phase::Prepare,
        Phase::Submit,
        Phase::Delivery,
        Phase::Fetch,
        Phase::Delete,
        Phase::Total,
    ];

    /// The label value used in metrics and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::FirstByte => "first_byte",
            Phase::Transfer => "transfer",
            Phase::Banner => "banner",
            Phase::Ehlo => "ehlo",
            Phase::Capability => "capability",
            Phase::Starttls => "starttls",
            Phase::Auth => "auth",
            Phase::MailFrom => "mail_from",
            Phase::RcptTo => "rcpt_to",
            Phase::Select => "select",
            Phase::Stat => "stat",
            Phase::Quit => "quit",
            Phase::Prepare => "prepare",
            Phase::Submit => "submit",
            Phase::Delivery => "delivery",
            Phase::Fetch => "fetch",
            Phase::Delete => "delete",
            Phase::Total => "total",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a probe failed; its `as_str()` is the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    /// The name did not resolve, or resolved to no usable address.
    Dns,
    /// The TCP connection was refused, reset or unreachable.
    Connect,
    /// The TLS handshake failed (including certificate verification).
    Tls,
    /// The probe did not finish within its timeout.
    Timeout,
    /// The server answered with a status code that is not expected.
    Status,
    /// The body did not match the expected pattern.
    Body,
    /// The server broke the protocol (malformed or oversized response, early
    /// close or reset in the middle of a dialogue, data injected after STARTTLS).
    Protocol,
    /// The server rejected the credentials (SMTP 535, IMAP `NO` to `LOGIN`,
    /// POP3 `-ERR` to `PASS`, HTTP 401 after NTLM), or offers no way to send them.
    Auth,
    /// The server answered a mail command with a refusal (SMTP 4xx/5xx, IMAP
    /// `NO`/`BAD`/`BYE`, POP3 `-ERR`); the code is in the message, not the label.
    Reply,
}

impl FailureReason {
    /// Every reason, in declaration order.
    pub const ALL: [FailureReason; 9] = [
        FailureReason::Dns,
        FailureReason::Connect,
        FailureReason::Tls,
        FailureReason::Timeout,
        FailureReason::Status,
        FailureReason::Body,
        FailureReason::Protocol,
        FailureReason::Auth,
        FailureReason::Reply,
    ];

    /// The label value used in metrics and output.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Dns => "dns",
            FailureReason::Connect => "connect",
            FailureReason::Tls => "tls",
            FailureReason::Timeout => "timeout",
            FailureReason::Status => "status",
            FailureReason::Body => "body",
            FailureReason::Protocol => "protocol",
            FailureReason::Auth => "auth",
            FailureReason::Reply => "reply",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed probe: the reason label, the phase it failed in, and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The `reason` label value.
    pub reason: FailureReason,
    /// The phase that was running when the probe failed.
    pub phase: Phase,
    /// A one-line explanation, free of secrets.
    pub message: String,
}

/// TLS details of the connection a probe made.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsInfo {
    /// Negotiated protocol version, e.g. `TLSv1.3`.
    pub version: String,
    /// Negotiated cipher suite.
    pub cipher: String,
    /// Earliest `notAfter` of the presented chain, as Unix seconds.
    pub earliest_expiry: Option<i64>,
}

/// Everything one probe run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Target name (the `target` label).
    pub target: String,
    /// Probe kind (the `kind` label).
    pub kind: ProbeKind,
    /// Wall-clock time the probe started.
    pub started_at: DateTime<Utc>,
    /// The agent's steady clock when the probe started (`clock::Stamp`): the
    /// wall clock at the agent's start plus monotonic time since. Detection
    /// measures durations on it, so a stepped system clock cannot stretch or
    /// shrink them. Equal to `started_at` where no steady clock is kept.
    pub steady_at: DateTime<Utc>,
    /// Timed phases in the order they ran; `Total` is always last.
    pub phases: Vec<(Phase, Duration)>,
    /// `None` on success.
    pub failure: Option<Failure>,
    /// HTTP status code, where the probe got one.
    pub status: Option<u16>,
    /// TLS details, where the probe used TLS.
    pub tls: Option<TlsInfo>,
    /// How late the probe started against its schedule.
    pub schedule_lag: Duration,
    /// Extra facts for the operator (final URL after redirects, ...).
    pub notes: Vec<String>,
    /// Messages in the mailbox the probe looked at (IMAP `SELECT`, POP3 `STAT`).
    pub messages: Option<u64>,
}

impl Sample {
    /// Whether the probe succeeded.
    pub fn success(&self) -> bool {
        self.failure.is_none()
    }

    /// The duration of one phase, if it was measured.
    pub fn phase(&self, phase: Phase) -> Option<Duration> {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, d)| *d)
    }

    /// The whole probe's duration.
    pub fn total(&self) -> Duration {
        self.phase(Phase::Total).unwrap_or_default()
    }
}

#[cfg(test)]
impl Sample {
    /// A successful HTTP probe of target `owa` that took `ms` in all,
    /// started at `wall` on the wall clock and `steady` on the steady one:
    /// the sample the unit tests of later stages feed in.
    pub(crate) fn http_ok(wall: DateTime<Utc>, steady: DateTime<Utc>, ms: u64) -> Sample {
        Sample {
            target: "owa".into(),
            kind: ProbeKind::Http,
            started_at: wall,
            steady_at: steady,
            phases: vec![(Phase::Total, Duration::from_millis(ms))],
            failure: None,
            status: Some(200),
            tls: None,
            schedule_lag: Duration::ZERO,
            notes: vec![],
            messages: None,
        }
    }
}
