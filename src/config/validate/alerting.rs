//! The alerting part of a file: the `[alerting]` table, `[[receiver]]`
//! (each through [`super::receiver`]), `[[route]]`, `[[maintenance]]`
//! (through [`super::maintenance`]) and `[[window]]` (`super::window`), checked together because routes name
//! receivers. The daemon's loader runs this inside the whole file's
//! validation; `load_alerting` (the alert commands) runs it alone.

use std::collections::HashSet;

use super::maintenance::build_window;
use super::receiver::build_receiver;
use super::*;
use crate::config::alerting::{AlertingConfig, Glob, Route, EVENTS, SEVERITIES};
use crate::config::duration::parse_duration;
use crate::config::raw::RawAlertingFile;

/// Turns the raw alerting tables into an [`AlertingConfig`], reporting every
/// problem to `c`. Relative `*_file` paths are resolved against `base` (the
/// configuration file's directory); `hostname` is the default EHLO name.
pub(super) fn build_alerting(
    c: &mut Checker<'_>,
    raw: RawAlertingFile,
    base: &Path,
    hostname: &str,
) -> AlertingConfig {
    let root = KeyPath::default();
    let ap = root.key("alerting");
    let a = raw.alerting;
    let mut config = AlertingConfig::default();
    if let Some(d) = a.max_backoff {
        if d.get() < Duration::from_secs(1) {
            c.error_at(&ap.key("max_backoff"), "must be at least 1s");
        }
        config.max_backoff = d.get();
    }
    if let Some(d) = a.max_age {
        if d.get() < Duration::from_secs(60) {
            c.error_at(&ap.key("max_age"), "must be at least 1m");
        }
        config.max_age = d.get();
    }
    match a.repeat_interval.as_deref() {
        None => {}
        Some("off") => config.repeat_interval = None,
        Some(text) => match parse_duration(text) {
            Ok(d) if d < Duration::from_secs(60) => c.error_at(
                &ap.key("repeat_interval"),
                "must be at least 1m, or \"off\"",
            ),
            Ok(d) => config.repeat_interval = Some(d),
            Err(msg) => c.error_at(&ap.key("repeat_interval"), format!("{msg}, or \"off\"")),
        },
    }
    if let Some(u) = a.external_url {
        match url::Url::parse(&u) {
            Ok(_) => config.external_url = Some(u),
            Err(err) => c.error_at(&ap.key("external_url"), format!("invalid url {u:?}: {err}")),
        }
    }
    if let Some(s) = a.default_severity {
        check_severity(c, &ap.key("default_severity"), &s);
        config.default_severity = s;
    }
    for (target, s) in a.severity.unwrap_or_default() {
        check_severity(c, &ap.key("severity").key(&target), &s);
        config.severity.insert(target, s);
    }

    let mut seen = HashSet::new();
    for (i, r) in raw.receivers.into_iter().enumerate() {
        let path = root.key("receiver").index(i);
        if let Some(name) = &r.name {
            if !seen.insert(name.clone()) {
                c.error_at(
                    &path.key("name"),
                    format!("duplicate receiver name {name:?}"),
                );
            }
        }
        if let Some(rc) = build_receiver(c, &path, r, base, hostname) {
            config.receivers.push(rc);
        }
    }

    for (i, r) in raw.routes.into_iter().enumerate() {
        let path = root.key("route").index(i);
        let receivers = r.receivers.unwrap_or_default();
        if receivers.is_empty() {
            c.error_at(&path.key("receivers"), "must name at least one receiver");
        }
        for (j, name) in receivers.iter().enumerate() {
            if !seen.contains(name) {
                let known: Vec<&str> = config.receivers.iter().map(|r| r.name.as_str()).collect();
                c.error_at(
                    &path.key("receivers").index(j),
                    format!(
                        "no receiver named {name:?} (receivers: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
        if let Some(s) = &r.severity {
            check_severity(c, &path.key("severity"), s);
        }
        if let Some(k) = &r.incident {
            if !matches!(k.as_str(), "slow" | "down") {
                c.error_at(
                    &path.key("incident"),
                    format!("unknown incident kind {k:?} (expected \"slow\" or \"down\")"),
                );
            }
        }
        if let Some(e) = &r.event {
            if !EVENTS.contains(&e.as_str()) {
                c.error_at(
                    &path.key("event"),
                    format!("unknown event {e:?} (expected \"incident\" or \"window_summary\")"),
                );
            } else if e == "window_summary"
                && (r.kind.is_some() || r.incident.is_some() || r.severity.is_some())
            {
                c.error_at(
                    &path.key("event"),
                    "a window summary has no kind, incident or severity: with those matchers this route never matches",
                );
            }
        }
        config.routes.push(Route {
            target: r.target.map(Glob),
            kind: r.kind,
            incident: r.incident,
            severity: r.severity,
            event: r.event,
            receivers,
            continue_matching: r.continue_matching.unwrap_or(false),
        });
    }

    for (i, m) in raw.maintenance.into_iter().enumerate() {
        if let Some(w) = build_window(c, &root.key("maintenance").index(i), m) {
            config.maintenance.push(w);
        }
    }
    config.windows = super::window::build_windows(c, raw.windows);
    config
}

fn check_severity(c: &mut Checker<'_>, key: &KeyPath, s: &str) {
    if !SEVERITIES.contains(&s) {
        c.error_at(
            key,
            format!(
                "unknown severity {s:?} (expected one of: {})",
                SEVERITIES.join(", ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::alerting::*;

    /// A validation error: the dotted key path (`receiver[1].url`) and the message.
    type KeyError = (String, String);

    /// The alerting tables of `text`, or the key and message of each error
    /// (these tests moved here from `config::alerting`, asserting the same).
    fn parse(text: &str) -> Result<AlertingConfig, Vec<KeyError>> {
        crate::config::alerting::parse(text, Path::new(""), "agent.example")
            .map_err(|e| e.0.into_iter().map(|e| (e.key, e.message)).collect())
    }

    /// Checks that `text` is rejected with exactly one error `(key, message)`.
    fn check_err(text: &str, key: &str, message: &str) {
        let errors = parse(text).expect_err("config should be rejected");
        assert_eq!(
            errors,
            vec![(key.to_string(), message.to_string())],
            "{text}"
        );
    }

    #[test]
    fn empty_means_defaults_and_no_receivers() {
        let c = parse("").unwrap();
        assert_eq!(c, AlertingConfig::default());
        assert_eq!(c.max_backoff, Duration::from_secs(60));
        assert_eq!(c.repeat_interval, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(c.severity_for("owa"), "critical");
    }

    #[test]
    fn receivers_of_every_kind() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "k3y\n").unwrap();
        let s = secret.display();
        let text = format!(
            r#"
            [alerting]
            max_backoff = "30s"
            repeat_interval = "off"
            severity = {{ owa = "warning" }}
            [[receiver]]
            name = "hook"
            kind = "webhook"
            url = "http://127.0.0.1:1/hook"
            token_file = "{s}"
            [[receiver]]
            name = "am"
            kind = "alertmanager"
            url = "http://127.0.0.1:9093"
            [[receiver]]
            name = "pd"
            kind = "pagerduty"
            routing_key_file = "{s}"
            [[receiver]]
            name = "og"
            kind = "opsgenie"
            api_key_file = "{s}"
            [[receiver]]
            name = "sl"
            kind = "slack"
            url = "https://hooks.slack.invalid/services/x"
            [[receiver]]
            name = "tm"
            kind = "teams"
            url = "https://example.invalid/workflows/x"
            [[receiver]]
            name = "mail"
            kind = "email"
            smtp_address = "127.0.0.1:2525"
            from = "mailpulse@example.org"
            to = ["ops@example.org"]
            username = "u"
            password_file = "{s}"
            [[receiver]]
            name = "gf"
            kind = "grafana"
            url = "http://127.0.0.1:3000"
            token_file = "{s}"
            tags = ["soak"]
            [[route]]
            target = "owa*"
            receivers = ["pd", "sl"]
            continue = true
            "#
        );
        let c = parse(&text).unwrap();
        let kinds: Vec<&str> = c.receivers.iter().map(|r| r.kind().as_str()).collect();
        assert_eq!(
            kinds,
            [
                "webhook",
                "alertmanager",
                "pagerduty",
                "opsgenie",
                "slack",
                "teams",
                "email",
                "grafana"
            ]
        );
        assert_eq!(c.max_backoff, Duration::from_secs(30));
        assert_eq!(c.repeat_interval, None);
        assert_eq!(c.severity_for("owa"), "warning");
        assert_eq!(c.severity_for("imap"), "critical");
        let ReceiverSpec::PagerDuty(pd) = &c.receivers[2].spec else {
            panic!()
        };
        assert_eq!(pd.url.as_str(), DEFAULT_PAGERDUTY_URL);
        assert_eq!(pd.routing_key.expose(), "k3y");
        assert!(
            !format!("{c:?}").contains("k3y"),
            "secrets leak through Debug"
        );
        let ReceiverSpec::Email(mail) = &c.receivers[6].spec else {
            panic!()
        };
        assert_eq!((mail.host.as_str(), mail.port), ("127.0.0.1", 2525));
        assert_eq!(mail.tls, SmtpTls::StartTls);
        assert_eq!(mail.hello, "agent.example");
        assert!(c.routes[0].continue_matching);
        assert_eq!(c.routes[0].event, None);
        let c = parse("[[receiver]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"http://h/\"\n[[route]]\nevent = \"window_summary\"\nreceivers = [\"h\"]").unwrap();
        assert_eq!(c.routes[0].event.as_deref(), Some("window_summary"));
    }

    #[test]
    fn errors_name_the_key() {
        check_err(
            "[[receiver]]\nname = \"x\"\nkind = \"pager\"",
            "receiver[0].kind",
            "unknown kind \"pager\" (expected one of: webhook, alertmanager, pagerduty, opsgenie, slack, teams, email, grafana)",
        );
        check_err(
            "[[receiver]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://h/\"\nsmtp_address = \"h:25\"",
            "receiver[0].smtp_address",
            "not valid for receiver kind \"webhook\"",
        );
        check_err(
            "[[receiver]]\nname = \"x\"\nkind = \"webhook\"",
            "receiver[0]",
            "missing field `url` (required for kind \"webhook\")",
        );
        check_err(
            "[[receiver]]\nname = \"x\"\nkind = \"pagerduty\"\nrouting_key_file = \"/nonexistent/key\"",
            "receiver[0].routing_key_file",
            "cannot read secret file /nonexistent/key: No such file or directory (os error 2)",
        );
        check_err(
            "[[receiver]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://h/\"\n[[receiver]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://h/\"",
            "receiver[1].name",
            "duplicate receiver name \"x\"",
        );
        check_err(
            "[[route]]\nreceivers = [\"nope\"]",
            "route[0].receivers[0]",
            "no receiver named \"nope\" (receivers: none)",
        );
        let hook = "[[receiver]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"http://h/\"\n";
        check_err(
            &format!("{hook}[[route]]\nevent = \"summary\"\nreceivers = [\"h\"]"),
            "route[0].event",
            "unknown event \"summary\" (expected \"incident\" or \"window_summary\")",
        );
        check_err(
            &format!("{hook}[[route]]\nevent = \"window_summary\"\nseverity = \"critical\"\nreceivers = [\"h\"]"),
            "route[0].event",
            "a window summary has no kind, incident or severity: with those matchers this route never matches",
        );
        check_err(
            "[alerting]\nrepeat_interval = \"4 hours\"",
            "alerting.repeat_interval",
            "invalid duration \"4 hours\" (expected forms like \"250ms\", \"10s\", \"2m\", \"1h30m\"), or \"off\"",
        );
        check_err(
            "[alerting]\nseverity = { owa = \"high\" }",
            "alerting.severity.owa",
            "unknown severity \"high\" (expected one of: critical, error, warning, info)",
        );
        check_err(
            "[[maintenance]]\nweekly = \"Sat 22:00\"",
            "maintenance[0]",
            "missing field `duration` (required for a recurring window)",
        );
        check_err(
            "[[maintenance]]\nstart = \"2026-12-05T22:00:00Z\"\nend = \"2026-12-05T21:00:00Z\"",
            "maintenance[0].end",
            "must be after start",
        );
        // Issue 21: an invalid Slack or Teams URL was quoted whole, and the
        // URL is the secret.
        check_err(
            "[[receiver]]\nname = \"s\"\nkind = \"slack\"\nurl = \"hooks.example/services/T0/B0/s3cr3t-XyZ\"",
            "receiver[0].url",
            "invalid url: relative URL without a base (the URL is not quoted, it may hold a secret)",
        );
        check_err(
            "[[receiver]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"ftp://user:pw@h/x\"",
            "receiver[0].url",
            "invalid url with scheme \"ftp\" (expected an http:// or https:// URL with a host; the URL is not quoted, it may hold a secret)",
        );
        check_err(
            "[[receiver]]\nname = \"m\"\nkind = \"email\"\nsmtp_address = \"h\"\nfrom = \"a@b\"\nto = [\"c@d\"]",
            "receiver[0].smtp_address",
            "invalid address \"h\" (expected host:port, e.g. \"smtp.example.org:587\")",
        );
    }

    #[test]
    fn xoauth2_needs_a_user_and_a_token_file_and_no_password() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "ya29.a0token\n").unwrap();
        let t = token.display();
        let base = "[[receiver]]\nname = \"m\"\nkind = \"email\"\nsmtp_address = \"smtp.office365.com:587\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n";
        let c = parse(&format!(
            "{base}auth = \"xoauth2\"\nusername = \"alerts@example.org\"\ntoken_file = \"{t}\"\n"
        ))
        .unwrap();
        let ReceiverSpec::Email(spec) = &c.receivers[0].spec else {
            panic!("{c:?}")
        };
        let login = spec.oauth2.as_ref().unwrap();
        assert_eq!(spec.auth, SmtpAuth::XOAuth2);
        assert_eq!(login.username, "alerts@example.org");
        assert_eq!(login.token_file, token);
        assert_eq!(login.token.expose(), "ya29.a0token");
        assert!(spec.credentials.is_none());
        check_err(
            &format!("{base}auth = \"xoauth2\"\nusername = \"u\"\n"),
            "receiver[0].auth",
            "auth = \"xoauth2\" needs `token_file` (the access token)",
        );
        check_err(
            &format!("{base}auth = \"xoauth2\"\ntoken_file = \"{t}\"\n"),
            "receiver[0]",
            "auth = \"xoauth2\" needs `username` (the mailbox the token is for)",
        );
        check_err(
            &format!("{base}auth = \"xoauth2\"\nusername = \"u\"\ntoken_file = \"{t}\"\npassword_file = \"{t}\"\n"),
            "receiver[0].password_file",
            "not used with auth = \"xoauth2\" (use token_file)",
        );
        check_err(
            &format!("{base}username = \"u\"\npassword_file = \"{t}\"\ntoken_file = \"{t}\"\n"),
            "receiver[0].token_file",
            "only used with auth = \"xoauth2\"",
        );
        check_err(
            &format!("{base}auth = \"cram-md5\"\n"),
            "receiver[0].auth",
            "invalid auth \"cram-md5\" (expected \"plain\", \"login\" or \"xoauth2\")",
        );
        check_err(
            &format!("{base}auth = \"login\"\n"),
            "receiver[0].auth",
            "needs username and password_file",
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err =
            parse("[[receiver]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://h/\"\nulr = 1")
                .unwrap_err();
        assert!(err[0].1.contains("unknown field `ulr`"), "{err:?}");
    }

    /// A target name with a dot is one key: its bad severity is located at
    /// its own value. (The alerting errors used to be located by re-parsing
    /// their key text, which split `owa.example` in two, found no such key
    /// and reported the error without a position, after all the others.)
    #[test]
    fn a_dotted_target_name_in_severity_is_located_at_its_value() {
        let text = "[alerting]\nseverity = { \"owa.example\" = \"high\" }\n[[target]]\nname = \"owa.example\"\nkind = \"http\"\nurl = \"https://h/\"\n";
        let err = crate::config::parse(text, None).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].key, "alerting.severity.owa.example");
        assert_eq!(err.0[0].position, Some((2, 30)));
    }
}
