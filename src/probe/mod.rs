//! Probes: one protocol per file, each timing every step of a real dialogue.
//!
//! [`Prober::new`] prepares a target once (TLS configuration, compiled
//! patterns); [`run`] probes it once under its deadline and returns a
//! [`Sample`]. The deadline belongs to `run`, not to the protocol code: a
//! protocol records its steps in a [`Recorder`], so a probe cut off by its
//! timeout still reports the steps it finished and the one it was in.
//! A step that ends by reading the server's reply ends when the reply arrived,
//! as the kernel stamped it ([`stamped`]), not when the probe woke up to read it.
//! Probes never touch metrics, detection or alerts.

pub mod dialogue;
pub mod http;
pub mod imap;
pub mod mailflow;
pub mod ntlm;
pub mod pop3;
pub mod smtp;
pub mod stamped;
pub mod tcp;
pub mod tls;

#[doc(hidden)]
pub mod fuzzing;

use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Stamp;
use crate::config::{ProbeSpec, Target};
use crate::sample::{Failure, FailureReason, Phase, ProbeKind, Sample, TlsInfo};

use self::stamped::Arrivals;

/// Why a protocol step failed, mapped 1:1 to the `reason` label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProbeError {
    /// The `reason` label.
    pub reason: FailureReason,
    /// One line for humans, free of secrets.
    pub message: String,
}

impl ProbeError {
    /// Builds an error.
    pub fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        ProbeError {
            reason,
            message: message.into(),
        }
    }
}

/// Collects the timed steps of one probe run.
///
/// A phase starts when the probe starts it ([`begin`](Self::begin)). It ends
/// either now, or, when what ended it was reading the server's reply, at
/// that reply's arrival on the probe's connections ([`Arrivals`], fed by
/// [`StampedTcp`](stamped::StampedTcp)): the `_after_read` methods. So the
/// delay between a reply's arrival and the probe running again counts in no
/// phase but `total`, which spans the start of the run to the end of its last
/// phase.
#[derive(Debug)]
pub struct Recorder {
    phases: Vec<(Phase, Duration)>,
    current: Option<(Phase, Instant)>,
    /// When the last phase ended.
    ended: Option<Instant>,
    arrivals: Arrivals,
    /// HTTP status of the final response, when one arrived.
    pub status: Option<u16>,
    /// TLS details of the (last) TLS connection.
    pub tls: Option<TlsInfo>,
    /// Extra facts for the operator (final URL, message count, ...).
    pub notes: Vec<String>,
    /// Messages in the mailbox the probe looked at (IMAP SELECT, POP3 STAT).
    pub messages: Option<u64>,
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            phases: Vec::with_capacity(8),
            current: None,
            ended: None,
            arrivals: Arrivals::default(),
            status: None,
            tls: None,
            notes: Vec::new(),
            messages: None,
        }
    }

    /// A recorder for a sub-dialogue of this probe: its own phases, the same
    /// arrivals (its connections may outlive it and end phases of this one).
    fn child(&self) -> Self {
        Recorder {
            arrivals: self.arrivals.clone(),
            ..Recorder::new()
        }
    }

    /// The arrivals cell to give every connection of this probe.
    pub fn arrivals(&self) -> Arrivals {
        self.arrivals.clone()
    }

    /// Starts timing `phase`, ending the phase in progress, if any.
    pub fn begin(&mut self, phase: Phase) {
        let now = Instant::now();
        self.end_at(now);
        self.current = Some((phase, now));
    }

    /// Like [`begin`](Self::begin), for a phase in progress that ended with
    /// reading the server's reply: it ends when the reply arrived.
    pub fn begin_after_read(&mut self, phase: Phase) {
        let end = self.read_end();
        self.end_at(end);
        self.current = Some((phase, Instant::now()));
    }

    /// Ends the phase in progress when the reply just read arrived and starts
    /// `phase` at that instant: for a phase that goes on reading what came
    /// with that reply (`transfer` after the response head).
    pub fn continue_after_read(&mut self, phase: Phase) {
        let at = self.read_end();
        self.end_at(at);
        self.current = Some((phase, at));
    }

    /// Ends the phase in progress and records its duration. Repeated phases
    /// (one per redirect hop, say) add up.
    pub fn end(&mut self) {
        self.end_at(Instant::now());
    }

    /// Ends the phase in progress when the reply just read arrived.
    pub fn end_after_read(&mut self) {
        let end = self.read_end();
        self.end_at(end);
    }

    /// When the phase in progress ended, if it ended by reading: the arrival
    /// of the last read, kept within the phase (never before its start, for
    /// data that was waiting when it began; never after now).
    fn read_end(&self) -> Instant {
        let now = Instant::now();
        match (self.current, self.arrivals.last()) {
            (Some((_, since)), Some(at)) => at.clamp(since, now),
            _ => now,
        }
    }

    fn end_at(&mut self, at: Instant) {
        if let Some((phase, since)) = self.current.take() {
            self.add(phase, at.saturating_duration_since(since));
            self.ended = Some(at);
        }
    }

    fn add(&mut self, phase: Phase, d: Duration) {
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += d,
            None => self.phases.push((phase, d)),
        }
    }

    /// The phase in progress, or the last one finished.
    fn failing_phase(&self) -> Phase {
        self.current
            .map(|(p, _)| p)
            .or_else(|| self.phases.last().map(|(p, _)| *p))
            .unwrap_or(Phase::Connect)
    }
}

/// A target prepared for probing.
#[derive(Debug)]
pub struct Prober {
    name: String,
    timeout: Duration,
    kind: ProbeKind,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Http(http::HttpProber),
    Tcp(tcp::TcpProber),
    Smtp(smtp::SmtpProber),
    Imap(imap::ImapProber),
    Pop3(pop3::Pop3Prober),
    Mailflow(mailflow::MailflowProber),
}

impl Prober {
    /// Prepares a target; fails only if its TLS settings cannot be turned into a client.
    pub fn new(target: &Target) -> Result<Prober, ProbeError> {
        // Long before the first probe reads anything.
        stamped::keep_stamping();
        let inner = match &target.spec {
            ProbeSpec::Http(spec) => Inner::Http(http::HttpProber::new(spec)?),
            ProbeSpec::Tcp(spec) => Inner::Tcp(tcp::TcpProber::new(spec)?),
            ProbeSpec::Smtp(spec) => Inner::Smtp(smtp::SmtpProber::new(spec)?),
            ProbeSpec::Imap(spec) => Inner::Imap(imap::ImapProber::new(spec)?),
            ProbeSpec::Pop3(spec) => Inner::Pop3(pop3::Pop3Prober::new(spec)?),
            ProbeSpec::Mailflow(spec) => Inner::Mailflow(mailflow::MailflowProber::new(
                spec,
                &target.name,
                target.timeout,
            )?),
        };
        Ok(Prober {
            name: target.name.clone(),
            timeout: target.timeout,
            kind: target.kind(),
            inner,
        })
    }

    /// The target's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The failure reasons a probe of `target` can meet whatever its server
/// does, so their counters can start at zero. An HTTP target leaves out
/// `reply` (mail only), `tls` unless its URL is `https` (a redirect to
/// `https` can still fail it), `body` unless it checks the body and `auth`
/// unless it uses NTLM; the other kinds list every reason. A reason not
/// listed is still counted, from its first failure on.
pub fn failure_reasons(target: &Target) -> Vec<FailureReason> {
    use crate::config::HttpAuth;
    let ProbeSpec::Http(http) = &target.spec else {
        return FailureReason::ALL.to_vec();
    };
    let mut reasons = vec![
        FailureReason::Dns,
        FailureReason::Connect,
        FailureReason::Timeout,
        FailureReason::Status,
        FailureReason::Protocol,
    ];
    if http.url.scheme() == "https" {
        reasons.push(FailureReason::Tls);
    }
    if http.body_regex.is_some() || http.body_not_regex.is_some() {
        reasons.push(FailureReason::Body);
    }
    if matches!(http.auth, Some(HttpAuth::Ntlm { .. })) {
        reasons.push(FailureReason::Auth);
    }
    reasons
}

/// Probes once under the target's timeout. `started_at` is the start on the
/// wall and the steady clock (a plain `DateTime` for both) and
/// `schedule_lag` how late this run started against its schedule; all are
/// carried into the sample.
pub async fn run(prober: &Prober, started_at: impl Into<Stamp>, schedule_lag: Duration) -> Sample {
    let started = started_at.into();
    let start = Instant::now();
    let mut rec = Recorder::new();
    let result = {
        // Boxed: a target's task waits between probes holding only this
        // pointer, instead of room for the largest protocol's state (about
        // 6 KiB each, multiplied by the number of targets).
        let work = Box::pin(async {
            match &prober.inner {
                Inner::Http(p) => p.probe(&mut rec).await,
                Inner::Tcp(p) => p.probe(&mut rec).await,
                Inner::Smtp(p) => p.probe(&mut rec).await,
                Inner::Imap(p) => p.probe(&mut rec).await,
                Inner::Pop3(p) => p.probe(&mut rec).await,
                Inner::Mailflow(p) => p.probe(&mut rec).await,
            }
        });
        tokio::time::timeout(prober.timeout, work).await
    };
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(Failure {
            reason: e.reason,
            phase: rec.failing_phase(),
            message: e.message,
        }),
        Err(_) => Some(Failure {
            reason: FailureReason::Timeout,
            phase: rec.failing_phase(),
            message: format!(
                "no answer within the timeout of {}",
                crate::config::HumanDuration(prober.timeout)
            ),
        }),
    };
    // `total` ends with the last phase (at a reply's arrival, say), or now
    // for a probe cut off by its deadline.
    rec.end();
    let timed_out = matches!(&failure, Some(f) if f.reason == FailureReason::Timeout);
    let end = match rec.ended {
        Some(end) if !timed_out => end,
        _ => Instant::now(),
    };
    rec.add(Phase::Total, end.saturating_duration_since(start));
    Sample {
        target: prober.name.clone(),
        kind: prober.kind,
        started_at: started.wall,
        steady_at: started.steady,
        phases: rec.phases,
        failure,
        status: rec.status,
        tls: rec.tls,
        schedule_lag,
        notes: rec.notes,
        messages: rec.messages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Every target's task holds a `run` future between probes: the protocol
    /// state is boxed, so that future stays small whatever the protocol.
    #[test]
    fn a_probe_future_holds_no_protocol_state_inline() {
        for (kind, extra) in [
            ("http", "url = \"http://127.0.0.1:9/\""),
            ("tcp", "address = \"127.0.0.1:9\""),
        ] {
            let text = format!("[[target]]\nname = \"t\"\nkind = \"{kind}\"\n{extra}\n");
            let target = crate::config::parse(&text, None).unwrap().targets.remove(0);
            let prober = Prober::new(&target).unwrap();
            let future = run(&prober, chrono::Utc::now(), Duration::ZERO);
            // 6.9 KiB in a release build with the protocol future inline; 400 bytes boxed.
            assert!(
                std::mem::size_of_val(&future) < 1024,
                "{kind}: {} bytes",
                std::mem::size_of_val(&future)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_phase_ended_by_a_read_ends_when_the_reply_arrived() {
        let mut rec = Recorder::new();
        rec.begin(Phase::Connect);
        tokio::time::advance(2 * MS).await;
        rec.begin(Phase::FirstByte);
        tokio::time::advance(10 * MS).await;
        rec.arrivals.record(Instant::now());
        // The probe runs again 5 ms after the arrival.
        tokio::time::advance(5 * MS).await;
        rec.continue_after_read(Phase::Transfer);
        tokio::time::advance(3 * MS).await;
        rec.end_after_read();
        assert_eq!(
            rec.phases,
            vec![
                (Phase::Connect, 2 * MS),
                (Phase::FirstByte, 10 * MS),
                (Phase::Transfer, Duration::ZERO),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_phase_starts_when_the_probe_runs_again() {
        let mut rec = Recorder::new();
        rec.begin(Phase::Banner);
        tokio::time::advance(4 * MS).await;
        rec.arrivals.record(Instant::now());
        tokio::time::advance(5 * MS).await;
        rec.begin_after_read(Phase::Ehlo);
        tokio::time::advance(MS).await;
        rec.arrivals.record(Instant::now());
        tokio::time::advance(MS).await;
        rec.end_after_read();
        assert_eq!(rec.phases, vec![(Phase::Banner, 4 * MS), (Phase::Ehlo, MS)]);
    }

    #[tokio::test(start_paused = true)]
    async fn arrivals_are_kept_within_the_phase() {
        let mut rec = Recorder::new();
        // Data that was waiting before the phase began ends it at once.
        rec.arrivals.record(Instant::now());
        tokio::time::advance(3 * MS).await;
        rec.begin(Phase::Banner);
        tokio::time::advance(2 * MS).await;
        rec.begin_after_read(Phase::Ehlo);
        // No read at all: now.
        let mut fresh = Recorder::new();
        fresh.begin(Phase::Quit);
        tokio::time::advance(2 * MS).await;
        fresh.end_after_read();
        assert_eq!(rec.phases, vec![(Phase::Banner, Duration::ZERO)]);
        assert_eq!(fresh.phases, vec![(Phase::Quit, 2 * MS)]);
    }
}
