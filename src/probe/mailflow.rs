//! The mail flow probe: submits a uniquely tagged message by SMTP and waits
//! until it can be fetched over IMAP, then deletes it. Phases: `prepare`
//! (IMAP session opened, logged in and the mailbox selected, before anything
//! is sent), `submit` (the whole SMTP submission until the message was
//! accepted), `delivery` (accepted until visible over IMAP: the number this
//! probe exists for), `fetch` (the tag read back), `delete` and `quit`.
//!
//! Bounded: delivery is awaited only until the probe's deadline minus a
//! reserve for cleaning up, so the probe returns by its timeout. Nothing is
//! left behind for long: every run also deletes the tagged messages of earlier
//! runs of the same target that arrived too late to be deleted by their own
//! run. The SMTP and IMAP steps inside `prepare` and `submit` are named in
//! failure messages (`smtp auth: ...`).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{HumanDuration, MailflowSpec};
use crate::sample::{FailureReason, Phase, TlsInfo};

use super::{imap, smtp, tls, ProbeError, Recorder};

/// The header that carries a probe message's tag.
pub const TAG_HEADER: &str = "X-Mailpulse-Probe";
/// First pause between two looks into the mailbox; it grows up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(10);
/// Longest pause between two looks into the mailbox.
const MAX_POLL: Duration = Duration::from_millis(250);
/// Most time kept back from the delivery wait for fetch, delete and logout
/// (at most a quarter of the timeout).
const CLEANUP_RESERVE: Duration = Duration::from_secs(2);

/// A mail flow target prepared for probing.
#[derive(Debug)]
pub struct MailflowProber {
    spec: MailflowSpec,
    smtp_tls: Arc<rustls::ClientConfig>,
    imap_tls: Arc<rustls::ClientConfig>,
    /// Tag prefix shared by every message of this target.
    prefix: String,
    timeout: Duration,
}

impl MailflowProber {
    /// Prepares the TLS clients of a target; `target` names its messages and
    /// `timeout` bounds the delivery wait.
    pub fn new(
        spec: &MailflowSpec,
        target: &str,
        timeout: Duration,
    ) -> Result<MailflowProber, ProbeError> {
        let safe: String = target
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.') {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        Ok(MailflowProber {
            spec: spec.clone(),
            smtp_tls: tls::client_config(&spec.smtp.tls_options, &[])?,
            imap_tls: tls::client_config(&spec.imap.tls_options, &[b"imap"])?,
            prefix: format!("mailpulse:{safe}:"),
            timeout,
        })
    }

    /// Runs one round trip.
    pub async fn probe(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        let deadline = Instant::now() + self.timeout;
        let reserve = CLEANUP_RESERVE.min(self.timeout / 4);
        let tag = format!("{}{}", self.prefix, unique_id());

        rec.begin(Phase::Prepare);
        let mut sub = rec.child();
        let mut mailbox = imap::Session::open(&mut sub, &self.spec.imap, &self.imap_tls)
            .await
            .map_err(|e| inner("imap", &sub, e))?;
        sub.begin_after_read(Phase::Select);
        mailbox
            .select(&self.spec.imap.mailbox)
            .await
            .map_err(|e| inner("imap", &sub, e))?;
        keep_earliest(rec, sub.tls.take());

        rec.begin_after_read(Phase::Submit);
        let mut sub = rec.child();
        let accepted = self
            .submit(&mut sub, &tag)
            .await
            .map_err(|e| inner("smtp", &sub, e))?;
        keep_earliest(rec, sub.tls.take());

        // Delivery starts the moment the acceptance arrived.
        rec.continue_after_read(Phase::Delivery);
        let (session, reply) = accepted;
        session.quit_without_waiting().await;
        rec.notes.push(format!("submitted: {reply}"));
        let uid = self
            .wait_for_delivery(&mut mailbox, &tag, deadline - reserve)
            .await?;

        rec.begin_after_read(Phase::Fetch);
        let value = mailbox.fetch_header(uid, TAG_HEADER).await?;
        if value != tag {
            return Err(ProbeError::new(
                FailureReason::Protocol,
                format!("message {uid} carries tag {value:?}, expected {tag:?}"),
            ));
        }

        rec.begin_after_read(Phase::Delete);
        // Earlier runs' messages that came too late for their own cleanup.
        let mut doomed: Vec<u32> = mailbox
            .search_header(TAG_HEADER, &self.prefix)
            .await?
            .into_iter()
            .filter(|u| *u < uid)
            .collect();
        if !doomed.is_empty() {
            rec.notes.push(format!(
                "deleted {} late message(s) of earlier runs",
                doomed.len()
            ));
        }
        doomed.push(uid);
        mailbox.delete(&doomed).await?;

        rec.begin_after_read(Phase::Quit);
        mailbox.logout().await?;
        rec.end_after_read();
        Ok(())
    }

    /// The SMTP submission; returns the open session and the acceptance reply.
    async fn submit(
        &self,
        rec: &mut Recorder,
        tag: &str,
    ) -> Result<(smtp::Session, String), ProbeError> {
        let spec = &self.spec.smtp;
        let from = spec.mail_from.as_deref().unwrap_or_default();
        let to = spec.rcpt_to.as_deref().unwrap_or_default();
        let mut session = smtp::Session::open(rec, spec, &self.smtp_tls).await?;
        rec.begin_after_read(Phase::MailFrom);
        session.mail_from(from).await?;
        rec.begin_after_read(Phase::RcptTo);
        session.rcpt_to(to).await?;
        rec.begin_after_read(Phase::Submit);
        let reply = session.data(&message(from, to, tag)).await?;
        let text = reply.lines.first().cloned().unwrap_or_default();
        let shown = session.shown(&format!("{} {text}", reply.code));
        Ok((session, shown))
    }

    /// Looks for the tagged message until `until`; returns its UID.
    async fn wait_for_delivery(
        &self,
        mailbox: &mut imap::Session,
        tag: &str,
        until: Instant,
    ) -> Result<u32, ProbeError> {
        let started = Instant::now();
        let mut pause = FIRST_POLL;
        loop {
            mailbox.noop().await?;
            if let Some(uid) = mailbox.search_header(TAG_HEADER, tag).await?.last() {
                return Ok(*uid);
            }
            if Instant::now() + pause >= until {
                return Err(ProbeError::new(
                    FailureReason::Timeout,
                    format!(
                        "message not delivered to {} within {} (a later run deletes it if it arrives)",
                        self.spec.imap.mailbox,
                        HumanDuration(round_ms(started.elapsed()))
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}

/// The probe message: plain text, tagged in a header and in the subject.
fn message(from: &str, to: &str, tag: &str) -> String {
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("mailpulse.invalid");
    let id = tag.rsplit(':').next().unwrap_or(tag);
    format!(
        "From: <{from}>\n\
         To: <{to}>\n\
         Subject: mailpulse mail flow probe {id}\n\
         Date: {date}\n\
         Message-ID: <{id}@{domain}>\n\
         {TAG_HEADER}: {tag}\n\
         Auto-Submitted: auto-generated\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=us-ascii\n\
         \n\
         This message was sent by mailpulse to measure mail delivery time.\n\
         It is deleted as soon as it arrives.\n",
        date = chrono::Utc::now().to_rfc2822(),
    )
}

/// An id unique across runs, targets and agents: time, process and a
/// per-process random key.
fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!(
        "{}-{:016x}",
        chrono::Utc::now().timestamp_millis(),
        h.finish()
    )
}

/// Names the inner protocol step an error happened in.
fn inner(protocol: &str, sub: &Recorder, e: ProbeError) -> ProbeError {
    ProbeError::new(
        e.reason,
        format!("{protocol} {}: {}", sub.failing_phase(), e.message),
    )
}

/// Keeps the TLS details whose certificate expires first.
fn keep_earliest(rec: &mut Recorder, new: Option<TlsInfo>) {
    let Some(new) = new else { return };
    let replace = match &rec.tls {
        None => true,
        Some(old) => match (old.earliest_expiry, new.earliest_expiry) {
            (Some(a), Some(b)) => b < a,
            (None, Some(_)) => true,
            _ => false,
        },
    };
    if replace {
        rec.tls = Some(new);
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ() {
        assert_ne!(unique_id(), unique_id());
    }

    #[test]
    fn the_message_carries_the_tag() {
        let m = message("a@example.org", "b@example.org", "mailpulse:t:123-abc");
        assert!(
            m.contains("\nX-Mailpulse-Probe: mailpulse:t:123-abc\n"),
            "{m}"
        );
        assert!(m.contains("Message-ID: <123-abc@example.org>"), "{m}");
    }
}
