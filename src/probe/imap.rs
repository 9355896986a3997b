//! The IMAP probe: a real client dialogue, every step timed: `connect`,
//! `tls` (implicit, on 993), `banner` (`* OK`, `* PREAUTH` or `* BYE`),
//! `capability`, `starttls` + `tls` + `capability` again, `auth` (`LOGIN` or
//! `AUTHENTICATE PLAIN`), `select` of the mailbox with its message count, and
//! `quit` (`LOGOUT`).
//!
//! Responses are read up to the tagged completion, with untagged lines and
//! literals (`{n}` followed by n bytes) inside the caps of [`Dialogue`]. A
//! `NO` to the login fails with reason `auth`; other `NO`, `BAD` and an
//! unexpected `BYE` fail with reason `reply` and the server's text. [`Session`]
//! is reused by the mail flow probe to find, fetch and delete its message.

use std::sync::Arc;

use base64::Engine as _;

use crate::config::{ImapAuthMechanism, ImapSpec, TlsMode};
use crate::sample::{FailureReason, Phase};

use super::dialogue::Dialogue;
use super::{tls, ProbeError, Recorder};

/// An IMAP target prepared for probing.
#[derive(Debug)]
pub struct ImapProber {
    spec: ImapSpec,
    tls: Arc<rustls::ClientConfig>,
}

impl ImapProber {
    /// Prepares the TLS client of a target.
    pub fn new(spec: &ImapSpec) -> Result<ImapProber, ProbeError> {
        Ok(ImapProber {
            spec: spec.clone(),
            tls: tls::client_config(&spec.tls_options, &[b"imap"])?,
        })
    }

    /// Runs the dialogue.
    pub async fn probe(&self, rec: &mut Recorder) -> Result<(), ProbeError> {
        let mut session = Session::open(rec, &self.spec, &self.tls).await?;
        if session.authenticated {
            rec.begin_after_read(Phase::Select);
            let count = session.select(&self.spec.mailbox).await?;
            rec.messages = Some(count);
            rec.notes
                .push(format!("mailbox {}: {count} message(s)", self.spec.mailbox));
        }
        rec.begin_after_read(Phase::Quit);
        session.logout().await?;
        rec.end_after_read();
        Ok(())
    }
}

/// How a tagged command completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    No,
    Bad,
}

/// A completed command: its status, the text after it, and the untagged
/// responses that came before it (without the leading `* `).
#[derive(Debug)]
struct Completion {
    status: Status,
    text: String,
    untagged: Vec<String>,
}

/// An open IMAP session, greeted and (if configured) logged in.
#[derive(Debug)]
pub struct Session {
    d: Dialogue,
    /// Capabilities, uppercased.
    caps: Vec<String>,
    /// Number of the next tag (`mp1`, `mp2`, ...).
    next_tag: u32,
    /// Whether the session is in the authenticated state.
    authenticated: bool,
}

impl Session {
    /// Connects, reads the greeting, asks for capabilities, starts TLS and
    /// logs in, as `spec` asks; each step timed in `rec`.
    pub async fn open(
        rec: &mut Recorder,
        spec: &ImapSpec,
        tls_config: &Arc<rustls::ClientConfig>,
    ) -> Result<Session, ProbeError> {
        let mut d = Dialogue::open(
            rec,
            "imap",
            &spec.address,
            spec.ip_family,
            spec.tls,
            tls_config,
            &spec.tls_options,
        )
        .await?;
        if let Some(creds) = &spec.auth {
            let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
            d.hide(creds.password.expose());
            d.hide(&quote(creds.password.expose()));
            d.hide(&b64(&format!(
                "\0{}\0{}",
                creds.username,
                creds.password.expose()
            )));
        }

        rec.begin(Phase::Banner);
        let greeting = read_response_line(&mut d, "the greeting").await?;
        let preauth = if let Some(rest) = greeting.strip_prefix("* OK") {
            rec.notes.push(format!("banner: OK{}", d.shown(rest)));
            false
        } else if greeting.starts_with("* PREAUTH") {
            rec.notes
                .push(format!("banner: {}", d.shown(&greeting[2..])));
            true
        } else if let Some(rest) = greeting.strip_prefix("* BYE") {
            return Err(ProbeError::new(
                FailureReason::Reply,
                format!("server refused the session: BYE{}", d.shown(rest)),
            ));
        } else {
            return Err(ProbeError::new(
                FailureReason::Protocol,
                format!("not an IMAP greeting: {:?}", d.shown(&greeting)),
            ));
        };

        let mut session = Session {
            d,
            caps: Vec::new(),
            next_tag: 1,
            authenticated: preauth,
        };
        rec.begin_after_read(Phase::Capability);
        session.capability().await?;

        if spec.tls == TlsMode::StartTls {
            rec.begin_after_read(Phase::Starttls);
            if !session.has("STARTTLS") {
                return Err(ProbeError::new(
                    FailureReason::Tls,
                    "server does not offer STARTTLS (set tls = \"none\" to probe without TLS)",
                ));
            }
            session.expect_ok("STARTTLS", "STARTTLS").await?;
            rec.begin_after_read(Phase::Tls);
            session
                .d
                .upgrade(rec, &spec.address.host, tls_config, &spec.tls_options)
                .await?;
            // RFC 9051: capabilities learnt before TLS must be discarded.
            rec.begin(Phase::Capability);
            session.capability().await?;
        }

        if let (Some(creds), false) = (&spec.auth, session.authenticated) {
            rec.begin_after_read(Phase::Auth);
            session
                .login(spec.mechanism, &creds.username, creds.password.expose())
                .await?;
            session.authenticated = true;
        }
        Ok(session)
    }

    fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }

    fn tag(&mut self) -> String {
        let tag = format!("mp{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    async fn capability(&mut self) -> Result<(), ProbeError> {
        let done = self.expect_ok("CAPABILITY", "CAPABILITY").await?;
        self.caps = done
            .untagged
            .iter()
            .filter_map(|u| u.strip_prefix("CAPABILITY "))
            .flat_map(|list| list.split_whitespace())
            .map(str::to_ascii_uppercase)
            .collect();
        Ok(())
    }

    /// Sends a command and reads until its tagged completion.
    async fn command(&mut self, command: &str, name: &str) -> Result<Completion, ProbeError> {
        let tag = self.tag();
        self.d.send(&format!("{tag} {command}")).await?;
        self.completion(&tag, name).await
    }

    /// Like [`Session::command`], but anything other than `OK` is a refusal.
    async fn expect_ok(&mut self, command: &str, name: &str) -> Result<Completion, ProbeError> {
        let done = self.command(command, name).await?;
        if done.status != Status::Ok {
            return Err(self.refused(name, &done));
        }
        Ok(done)
    }

    fn refused(&self, name: &str, done: &Completion) -> ProbeError {
        let status = match done.status {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        };
        ProbeError::new(
            FailureReason::Reply,
            format!("{name} refused: {status} {}", self.d.shown(&done.text)),
        )
    }

    /// Reads untagged responses until the completion of `tag`.
    async fn completion(&mut self, tag: &str, name: &str) -> Result<Completion, ProbeError> {
        let what = format!("the {name} response");
        let mut untagged = Vec::new();
        loop {
            let line = read_response_line(&mut self.d, &what).await?;
            if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                let (word, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let status = match word.to_ascii_uppercase().as_str() {
                    "OK" => Status::Ok,
                    "NO" => Status::No,
                    "BAD" => Status::Bad,
                    _ => {
                        return Err(ProbeError::new(
                            FailureReason::Protocol,
                            format!("malformed completion in {what}: {:?}", self.d.shown(&line)),
                        ))
                    }
                };
                return Ok(Completion {
                    status,
                    text: text.to_string(),
                    untagged,
                });
            }
            if let Some(rest) = line.strip_prefix("* ") {
                // Bytes, not a str slice: server text is lossily decoded, so
                // byte 3 may fall inside a multi-byte character (found by
                // fuzzing; it panicked the probe and stopped the target).
                let bye = rest
                    .as_bytes()
                    .get(..3)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"BYE"));
                if bye && name != "LOGOUT" {
                    return Err(ProbeError::new(
                        FailureReason::Reply,
                        format!(
                            "server ended the session during {name}: {}",
                            self.d.shown(rest)
                        ),
                    ));
                }
                untagged.push(rest.to_string());
                continue;
            }
            return Err(ProbeError::new(
                FailureReason::Protocol,
                format!("unexpected line in {what}: {:?}", self.d.shown(&line)),
            ));
        }
    }

    async fn login(
        &mut self,
        mechanism: ImapAuthMechanism,
        username: &str,
        password: &str,
    ) -> Result<(), ProbeError> {
        let tag = self.tag();
        match mechanism {
            ImapAuthMechanism::Login => {
                if self.has("LOGINDISABLED") {
                    return Err(ProbeError::new(
                        FailureReason::Auth,
                        "server disables LOGIN (LOGINDISABLED); try auth = \"plain\"",
                    ));
                }
                self.send_login(&tag, username, password).await?;
            }
            ImapAuthMechanism::Plain => {
                if !self.has("AUTH=PLAIN") {
                    return Err(ProbeError::new(
                        FailureReason::Auth,
                        "server does not offer AUTHENTICATE PLAIN",
                    ));
                }
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("\0{username}\0{password}").as_bytes());
                if self.has("SASL-IR") {
                    self.d
                        .send_secret(
                            &format!("{tag} AUTHENTICATE PLAIN {token}"),
                            &format!("{tag} AUTHENTICATE PLAIN <credentials>"),
                        )
                        .await?;
                } else {
                    self.d.send(&format!("{tag} AUTHENTICATE PLAIN")).await?;
                    self.continuation(&tag, "AUTHENTICATE").await?;
                    self.d.send_secret(&token, "<credentials>").await?;
                }
            }
        }
        let done = self.completion(&tag, "login").await?;
        match done.status {
            Status::Ok => Ok(()),
            Status::No => Err(ProbeError::new(
                FailureReason::Auth,
                format!("login refused: NO {}", self.d.shown(&done.text)),
            )),
            Status::Bad => Err(self.refused("login", &done)),
        }
    }

    /// Sends `LOGIN user password`, each as a quoted string where it can be
    /// one and as a synchronizing literal where it cannot (non-ASCII).
    async fn send_login(
        &mut self,
        tag: &str,
        username: &str,
        password: &str,
    ) -> Result<(), ProbeError> {
        let shown = format!("{tag} LOGIN <user> <password>");
        let mut pending = format!("{tag} LOGIN ");
        for (i, value) in [username, password].into_iter().enumerate() {
            if i > 0 {
                pending.push(' ');
            }
            if is_quotable(value) {
                pending.push_str(&quote(value));
            } else {
                pending.push_str(&format!("{{{}}}", value.len()));
                self.d.send_secret(&pending, &shown).await?;
                self.continuation(tag, "LOGIN").await?;
                pending = value.to_string();
            }
        }
        self.d.send_secret(&pending, &shown).await
    }

    /// Waits for a `+` continuation request.
    async fn continuation(&mut self, tag: &str, name: &str) -> Result<(), ProbeError> {
        let line = self
            .d
            .read_line(&format!("the {name} continuation"))
            .await?;
        if line.starts_with('+') {
            return Ok(());
        }
        if let Some(rest) = line.strip_prefix(tag) {
            let rest = rest.trim_start();
            let reason = if rest.starts_with("NO") {
                FailureReason::Auth
            } else {
                FailureReason::Reply
            };
            return Err(ProbeError::new(
                reason,
                format!("{name} refused: {}", self.d.shown(rest)),
            ));
        }
        Err(ProbeError::new(
            FailureReason::Protocol,
            format!("expected a continuation, got {:?}", self.d.shown(&line)),
        ))
    }

    /// Selects `mailbox` and returns its message count (`* n EXISTS`).
    pub async fn select(&mut self, mailbox: &str) -> Result<u64, ProbeError> {
        let done = self
            .command(&format!("SELECT {}", quote(mailbox)), "SELECT")
            .await?;
        if done.status != Status::Ok {
            return Err(self.refused(&format!("SELECT {mailbox}"), &done));
        }
        done.untagged
            .iter()
            .rev()
            .find_map(|u| {
                let (n, word) = u.split_once(' ')?;
                word.eq_ignore_ascii_case("EXISTS")
                    .then(|| n.parse().ok())
                    .flatten()
            })
            .ok_or_else(|| {
                ProbeError::new(
                    FailureReason::Protocol,
                    format!("SELECT {mailbox} gave no message count (EXISTS)"),
                )
            })
    }

    /// `NOOP`: lets the server report new messages.
    pub async fn noop(&mut self) -> Result<(), ProbeError> {
        self.expect_ok("NOOP", "NOOP").await.map(drop)
    }

    /// `UID SEARCH HEADER name "value"`: the UIDs of messages whose header
    /// `name` contains `value`.
    pub async fn search_header(&mut self, name: &str, value: &str) -> Result<Vec<u32>, ProbeError> {
        let done = self
            .expect_ok(
                &format!("UID SEARCH HEADER {name} {}", quote(value)),
                "SEARCH",
            )
            .await?;
        Ok(done
            .untagged
            .iter()
            .filter_map(|u| u.strip_prefix("SEARCH"))
            .flat_map(|list| list.split_whitespace())
            .filter_map(|n| n.parse().ok())
            .collect())
    }

    /// The value of header `name` of message `uid`, fetched without setting \Seen.
    pub async fn fetch_header(&mut self, uid: u32, name: &str) -> Result<String, ProbeError> {
        let done = self
            .expect_ok(
                &format!("UID FETCH {uid} (BODY.PEEK[HEADER.FIELDS ({name})])"),
                "FETCH",
            )
            .await?;
        let prefix = format!("{name}:").to_ascii_lowercase();
        done.untagged
            .iter()
            .filter(|u| u.contains("FETCH"))
            .flat_map(|u| u.split(['\r', '\n']))
            .find_map(|line| {
                line.to_ascii_lowercase()
                    .starts_with(&prefix)
                    .then(|| line[prefix.len()..].trim().to_string())
            })
            .ok_or_else(|| {
                ProbeError::new(
                    FailureReason::Protocol,
                    format!("message {uid} has no {name} header"),
                )
            })
    }

    /// Flags `uids` \Deleted and expunges exactly them (`UID EXPUNGE`, RFC
    /// 4315) or, on servers without UIDPLUS, every \Deleted message.
    pub async fn delete(&mut self, uids: &[u32]) -> Result<(), ProbeError> {
        if uids.is_empty() {
            return Ok(());
        }
        let set: Vec<String> = uids.iter().map(u32::to_string).collect();
        let set = set.join(",");
        self.expect_ok(
            &format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"),
            "STORE",
        )
        .await?;
        if self.has("UIDPLUS") {
            self.expect_ok(&format!("UID EXPUNGE {set}"), "EXPUNGE")
                .await?;
        } else {
            self.expect_ok("EXPUNGE", "EXPUNGE").await?;
        }
        Ok(())
    }

    /// `LOGOUT`: expects `* BYE` and a tagged `OK`; a server that closes
    /// right after its `BYE` is accepted too.
    pub async fn logout(mut self) -> Result<(), ProbeError> {
        match self.command("LOGOUT", "LOGOUT").await {
            Ok(done) if done.status == Status::Ok => Ok(()),
            Ok(done) => Err(self.refused("LOGOUT", &done)),
            Err(e) if e.message.starts_with("connection closed") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The client side of a session against a scripted server (fuzzing):
/// greeting, CAPABILITY, SELECT, SEARCH, FETCH and LOGOUT, each reading
/// whatever the script holds, stopping at the first error.
pub(super) async fn fuzz_session(mut d: Dialogue) {
    if read_response_line(&mut d, "the greeting").await.is_err() {
        return;
    }
    let mut session = Session {
        d,
        caps: Vec::new(),
        next_tag: 1,
        authenticated: false,
    };
    if session.capability().await.is_err() {
        return;
    }
    let _ = session.has("UIDPLUS");
    if session.select("INBOX").await.is_err() {
        return;
    }
    let Ok(uids) = session.search_header("X-Mailpulse-Probe", "1").await else {
        return;
    };
    if session
        .fetch_header(uids.first().copied().unwrap_or(1), "X-Mailpulse-Probe")
        .await
        .is_err()
    {
        return;
    }
    let _ = session.logout().await;
}

/// Reads one response line with its literals: `{n}` at the end of a line is
/// followed by n bytes and the rest of the line, all joined into one string.
async fn read_response_line(d: &mut Dialogue, what: &str) -> Result<String, ProbeError> {
    let mut line = d.read_line(what).await?;
    while let Some(n) = literal_length(&line) {
        let bytes = d.read_exact(n, what).await?;
        line.push_str("\r\n");
        line.push_str(&String::from_utf8_lossy(&bytes));
        let rest = d.read_line(what).await?;
        line.push_str(&rest);
    }
    Ok(line)
}

/// The length of a literal announced at the end of `line` (`{12}` or `{12+}`).
fn literal_length(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    let digits = inner[open + 1..].trim_end_matches('+');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `text` can be sent as an IMAP quoted string.
fn is_quotable(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// `text` as a quoted string (callers check [`is_quotable`] for secrets;
/// other values were validated to be one line).
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_recognised_only_at_the_end() {
        assert_eq!(literal_length("* 1 FETCH (BODY[HEADER] {42}"), Some(42));
        assert_eq!(literal_length("a LOGIN {5+}"), Some(5));
        assert_eq!(literal_length("* OK {x}"), None);
        assert_eq!(literal_length("* OK {}"), None);
        assert_eq!(literal_length("* OK done"), None);
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert!(is_quotable("p@ss w0rd!"));
        assert!(!is_quotable("pässword"));
    }
}
