//! Probes: one protocol per file, each timing every step of a real dialogue.
//!
//! [`Prober::new`] prepares a target once (TLS configuration, compiled
//! patterns); [`run`] probes it once under its deadline and returns a
//! [`Sample`]. The deadline belongs to `run`, not to the protocol code: a
//! protocol records its steps in a [`Recorder`], so a probe cut off by its
//! timeout still reports the steps it finished and the one it was in.
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

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::config::{ProbeSpec, Target};
use crate::sample::{Failure, FailureReason, Phase, ProbeKind, Sample, TlsInfo};

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
#[derive(Debug)]
pub struct Recorder {
    phases: Vec<(Phase, Duration)>,
    current: Option<(Phase, Instant)>,
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
            status: None,
            tls: None,
            notes: Vec::new(),
            messages: None,
        }
    }

    /// Starts timing `phase`, ending the phase in progress, if any.
    pub fn begin(&mut self, phase: Phase) {
        self.end();
        self.current = Some((phase, Instant::now()));
    }

    /// Ends the phase in progress and records its duration. Repeated phases
    /// (one per redirect hop, say) add up.
    pub fn end(&mut self) {
        if let Some((phase, since)) = self.current.take() {
            self.add(phase, since.elapsed());
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

/// Probes once under the target's timeout. `started_at` is the wall-clock
/// start and `schedule_lag` how late this run started against its schedule;
/// both are carried into the sample.
pub async fn run(prober: &Prober, started_at: DateTime<Utc>, schedule_lag: Duration) -> Sample {
    let start = Instant::now();
    let mut rec = Recorder::new();
    let result = {
        let work = async {
            match &prober.inner {
                Inner::Http(p) => p.probe(&mut rec).await,
                Inner::Tcp(p) => p.probe(&mut rec).await,
                Inner::Smtp(p) => p.probe(&mut rec).await,
                Inner::Imap(p) => p.probe(&mut rec).await,
                Inner::Pop3(p) => p.probe(&mut rec).await,
                Inner::Mailflow(p) => p.probe(&mut rec).await,
            }
        };
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
    rec.end();
    rec.add(Phase::Total, start.elapsed());
    Sample {
        target: prober.name.clone(),
        kind: prober.kind,
        started_at,
        phases: rec.phases,
        failure,
        status: rec.status,
        tls: rec.tls,
        schedule_lag,
        notes: rec.notes,
        messages: rec.messages,
    }
}
