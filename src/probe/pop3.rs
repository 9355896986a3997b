//! The POP3 probe: a real client dialogue, every step timed: `connect`,
//! `tls` (implicit, on 995), `banner` (`+OK`), `capability` (`CAPA`),
//! `starttls` (`STLS`) + `tls` + `capability` again, `auth` (`USER`/`PASS`),
//! `stat` with the message count, and `quit`.
//!
//! A `-ERR` to `USER` or `PASS` fails with reason `auth`; any other `-ERR`
//! with reason `reply` and the server's text.

use std::sync::Arc;

use crate::config::{Pop3Spec, TlsMode};
use crate::sample::{FailureReason, Phase};

use super::dialogue::Dialogue;
use super::{tls, ProbeError, Recorder};

/// A POP3 target prepared for probing.
#[derive(Debug)]
pub struct Pop3Prober {
    spec: Pop3Spec,
    tls: Arc<rustls::ClientConfig>,
}

impl Pop3Prober {
    /// Prepares the TLS client of a target.
    pub fn new(spec: &Pop3Spec) -> Result<Pop3Prober, ProbeError> {
        Ok(Pop3Prober {
            spec: spec.clone(),
            tls: tls::client_config(&spec.tls_options, &[b"pop3"])?,
        })
    }

    /// Runs the dialogue.
    pub async fn probe(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        let spec = &self.spec;
        let mut d = Dialogue::open(
            rec,
            "pop3",
            &spec.address,
            spec.ip_family,
            spec.tls,
            &self.tls,
            &spec.tls_options,
        )
        .await?;
        if let Some(creds) = &spec.auth {
            d.hide(creds.password.expose());
        }

        rec.begin(Phase::Banner);
        let greeting = status_line(&mut d, "the greeting").await?;
        match greeting {
            Ok(text) => rec.notes.push(format!("banner: +OK {}", d.shown(&text))),
            Err(text) => {
                return Err(ProbeError::new(
                    FailureReason::Reply,
                    format!("server refused the session: -ERR {}", d.shown(&text)),
                ))
            }
        }

        rec.begin_after_read(Phase::Capability);
        let caps = capa(&mut d).await?;

        if spec.tls == TlsMode::StartTls {
            rec.begin_after_read(Phase::Starttls);
            // A server without CAPA may still know STLS: try it then.
            if caps
                .as_ref()
                .is_some_and(|c| !c.iter().any(|c| c == "STLS"))
            {
                return Err(ProbeError::new(
                    FailureReason::Tls,
                    "server does not offer STLS (set tls = \"none\" to probe without TLS)",
                ));
            }
            expect_ok(&mut d, "STLS", "STLS").await?;
            rec.begin_after_read(Phase::Tls);
            d.upgrade(rec, &spec.address.host, &self.tls, &spec.tls_options)
                .await?;
            rec.begin(Phase::Capability);
            capa(&mut d).await?;
        }

        if let Some(creds) = &spec.auth {
            rec.begin_after_read(Phase::Auth);
            d.send(&format!("USER {}", creds.username)).await?;
            if let Err(text) = status_line(&mut d, "the USER reply").await? {
                return Err(ProbeError::new(
                    FailureReason::Auth,
                    format!("USER refused: -ERR {}", d.shown(&text)),
                ));
            }
            d.send_secret(
                &format!("PASS {}", creds.password.expose()),
                "PASS <password>",
            )
            .await?;
            if let Err(text) = status_line(&mut d, "the PASS reply").await? {
                return Err(ProbeError::new(
                    FailureReason::Auth,
                    format!("login refused: -ERR {}", d.shown(&text)),
                ));
            }

            rec.begin_after_read(Phase::Stat);
            let text = expect_ok(&mut d, "STAT", "STAT").await?;
            let count = text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    ProbeError::new(
                        FailureReason::Protocol,
                        format!("malformed STAT reply: +OK {}", d.shown(&text)),
                    )
                })?;
            rec.messages = Some(count);
            rec.notes.push(format!("maildrop: {count} message(s)"));
        }

        rec.begin_after_read(Phase::Quit);
        d.send("QUIT").await?;
        let quit = match status_line(&mut d, "the QUIT reply").await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(text)) => Err(ProbeError::new(
                FailureReason::Reply,
                format!("QUIT refused: -ERR {}", d.shown(&text)),
            )),
            Err(e) if e.message.starts_with("connection closed") => Ok(()),
            Err(e) => Err(e),
        };
        quit?;
        rec.end_after_read();
        Ok(())
    }
}

/// The client side of a session against a scripted server (fuzzing):
/// greeting, CAPA, USER/PASS, STAT and QUIT, stopping at the first error.
pub(super) async fn fuzz_session(mut d: Dialogue) {
    if status_line(&mut d, "the greeting").await.is_err() {
        return;
    }
    if capa(&mut d).await.is_err() {
        return;
    }
    for what in ["the USER reply", "the PASS reply"] {
        if status_line(&mut d, what).await.is_err() {
            return;
        }
    }
    if let Ok(text) = expect_ok(&mut d, "STAT", "STAT").await {
        let _ = text.split_whitespace().next().map(str::parse::<u64>);
    }
    let _ = status_line(&mut d, "the QUIT reply").await;
}

/// Reads a `+OK text` (Ok) or `-ERR text` (Err) line.
async fn status_line(d: &mut Dialogue, what: &str) -> Result<Result<String, String>, ProbeError> {
    let line = d.read_line(what).await?;
    let rest_of = |prefix: &str| {
        line.get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(prefix))
            .map(|_| line[prefix.len()..].trim_start().to_string())
    };
    if let Some(text) = rest_of("+OK") {
        Ok(Ok(text))
    } else if let Some(text) = rest_of("-ERR") {
        Ok(Err(text))
    } else {
        Err(ProbeError::new(
            FailureReason::Protocol,
            format!("malformed line in {what}: {:?}", d.shown(&line)),
        ))
    }
}

/// Sends `command` and expects `+OK`; returns the text after it.
async fn expect_ok(d: &mut Dialogue, command: &str, name: &str) -> Result<String, ProbeError> {
    d.send(command).await?;
    match status_line(d, &format!("the {name} reply")).await? {
        Ok(text) => Ok(text),
        Err(text) => Err(ProbeError::new(
            FailureReason::Reply,
            format!("{name} refused: -ERR {}", d.shown(&text)),
        )),
    }
}

/// `CAPA` (RFC 2449): the capability names, or `None` if the server has no CAPA.
async fn capa(d: &mut Dialogue) -> Result<Option<Vec<String>>, ProbeError> {
    d.send("CAPA").await?;
    if status_line(d, "the CAPA reply").await?.is_err() {
        return Ok(None);
    }
    let mut caps = Vec::new();
    loop {
        let line = d.read_line("the CAPA list").await?;
        if line == "." {
            return Ok(Some(caps));
        }
        // Dot-stuffing: a leading dot of a data line is doubled.
        let line = line.strip_prefix('.').unwrap_or(&line);
        if let Some(name) = line.split_whitespace().next() {
            caps.push(name.to_ascii_uppercase());
        }
    }
}
