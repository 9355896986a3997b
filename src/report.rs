//! Human and JSON renderings of probe results and configuration summaries,
//! for the `probe` and `check-config` commands. Pure: strings in, strings out.
//!
//! Text that came from outside (a server's banner or status text in a
//! failure message, a silence's reason, a stored target name) goes through
//! [`terminal_text`] before it reaches a terminal, so it cannot move the
//! cursor, recolour the screen or reorder what is shown.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::alert::render;
use crate::config::alerting::{
    zone_name, Glob, MaintenanceWindow, PlannedWindow, ReceiverAuth, ReceiverSpec, SmtpAuth,
    SmtpTls, TimeZone, WindowSchedule,
};
use crate::config::{Config, HttpAuth, ProbeSpec};
use crate::detect::SlowdownSettings;
use crate::human::{self, Style};
use crate::sample::{Phase, Sample};

/// `text` safe to print on a terminal: control characters (escape
/// sequences, carriage returns) and invisible formatting characters
/// (bidirectional overrides; [`crate::config::is_hidden_char`]) are shown
/// escaped, as `\u{1b}`, and everything else as it is.
pub fn terminal_text(text: &str) -> Cow<'_, str> {
    if !text.chars().any(crate::config::is_hidden_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        if crate::config::is_hidden_char(ch) {
            let _ = write!(out, "{}", ch.escape_unicode());
        } else {
            out.push(ch);
        }
    }
    Cow::Owned(out)
}

/// The most names an "unknown name" error lists.
pub const MAX_LISTED_NAMES: usize = 10;

/// The known names to show after "no target named ...": all of them (in
/// their order) when there are at most [`MAX_LISTED_NAMES`], else the
/// closest to `wanted` (by edit distance; on a tie, those containing it
/// first) and how many more there are; "none" when there are none.
pub fn name_hint(wanted: &str, known: &[&str]) -> String {
    if known.is_empty() {
        return "none".to_string();
    }
    if known.len() <= MAX_LISTED_NAMES {
        return known.join(", ");
    }
    let wanted_lower = wanted.to_lowercase();
    let mut ranked: Vec<(usize, bool, &str)> = known
        .iter()
        .map(|k| {
            let contains = k.to_lowercase().contains(&wanted_lower);
            (edit_distance(wanted, k), !contains, *k)
        })
        .collect();
    ranked.sort_unstable();
    let shown: Vec<&str> = ranked
        .iter()
        .take(MAX_LISTED_NAMES)
        .map(|(_, _, k)| *k)
        .collect();
    format!(
        "{}, and {} more",
        shown.join(", "),
        known.len() - MAX_LISTED_NAMES
    )
}

/// The Levenshtein distance between two strings, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// One probe result as a block: a headline, then every phase on its own line.
pub fn sample_table(s: &Sample, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let result = match &s.failure {
        None => "ok".to_string(),
        Some(f) => format!(
            "FAILED ({}) in {}: {}",
            f.reason,
            f.phase,
            terminal_text(&f.message)
        ),
    };
    let _ = write!(out, "{} ({}): {}", terminal_text(&s.target), s.kind, result);
    if let Some(code) = s.status {
        let _ = write!(out, ", status {code}");
    }
    out.push('\n');
    if let Some(tls) = &s.tls {
        let _ = write!(out, "  tls: {} {}", tls.version, tls.cipher);
        if let Some(exp) = tls
            .earliest_expiry
            .and_then(|e| DateTime::from_timestamp(e, 0))
        {
            let days = (exp - now).num_days();
            let _ = write!(
                out,
                ", certificate expires {} (in {days} days)",
                exp.format("%Y-%m-%d %H:%M:%SZ")
            );
        }
        out.push('\n');
    }
    for note in &s.notes {
        let _ = writeln!(out, "  {}", terminal_text(note));
    }
    let slowest = s
        .phases
        .iter()
        .filter(|(p, _)| *p != Phase::Total)
        .max_by_key(|(_, d)| *d)
        .map(|(p, _)| *p);
    let _ = writeln!(out, "  {:<12} {:>12}", "PHASE", "DURATION");
    for (phase, d) in &s.phases {
        let mut marks = String::new();
        if s.failure.as_ref().is_some_and(|f| f.phase == *phase) {
            marks.push_str("  <- failed here");
        } else if Some(*phase) == slowest && s.phases.len() > 2 {
            marks.push_str("  <- slowest");
        }
        let _ = writeln!(
            out,
            "  {:<12} {:>12}{marks}",
            phase.as_str(),
            human::duration(*d, Style::Millis)
        );
    }
    out
}

/// One probe result as JSON: phases in seconds, failure details when failed.
pub fn sample_json(s: &Sample) -> Value {
    let phases: serde_json::Map<String, Value> = s
        .phases
        .iter()
        .map(|(p, d)| (p.as_str().to_string(), json!(d.as_secs_f64())))
        .collect();
    json!({
        "target": s.target,
        "kind": s.kind.as_str(),
        "started_at": s.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "success": s.success(),
        "reason": s.failure.as_ref().map(|f| f.reason.as_str()),
        "failed_phase": s.failure.as_ref().map(|f| f.phase.as_str()),
        "message": s.failure.as_ref().map(|f| f.message.clone()),
        "status": s.status,
        "phases": phases,
        "tls": s.tls.as_ref().map(|t| json!({
            "version": t.version,
            "cipher": t.cipher,
            "earliest_expiry": t.earliest_expiry
                .and_then(|e| DateTime::from_timestamp(e, 0))
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        })),
        "notes": s.notes,
        "messages": s.messages,
    })
}

/// The `check-config` summary: what the agent will do with this file.
pub fn config_summary(c: &Config) -> String {
    let mut out = String::new();
    let source = c
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in default".into());
    let _ = writeln!(out, "{source}: valid");
    let _ = writeln!(
        out,
        "agent: instance {:?}, metrics on {}://{}/metrics, state in {}, log level {}",
        c.agent.instance,
        if c.agent.web.tls.is_some() {
            "https"
        } else {
            "http"
        },
        c.agent.listen,
        c.agent.state_dir.display(),
        c.agent.log_level
    );
    if c.host.enabled {
        let _ = write!(
            out,
            "host: every {}",
            human::duration(c.host.interval, Style::Config)
        );
        if !c.host.processes.is_empty() {
            let _ = write!(out, ", process groups: {}", c.host.processes.join(", "));
        }
        out.push('\n');
    } else {
        let _ = writeln!(out, "host: collection disabled");
    }
    let _ = writeln!(out, "targets: {}", c.targets.len());
    for t in &c.targets {
        let what = match &t.spec {
            ProbeSpec::Http(h) => {
                let mut w = format!("{} {}", h.method, h.url);
                match h.auth {
                    Some(HttpAuth::Ntlm { .. }) => w.push_str(" (with NTLM auth)"),
                    Some(_) => w.push_str(" (with auth)"),
                    None => {}
                }
                // Say so when nothing is encrypted (TLS settings on such a
                // target apply only to redirects to https).
                if h.url.scheme() == "http" {
                    w.push_str(", plain HTTP");
                    if h.auth.is_some() {
                        w.push_str(", credentials in clear");
                    }
                }
                w
            }
            ProbeSpec::Tcp(s) => format!("{} tls {}", s.address, s.tls.as_str()),
            ProbeSpec::Smtp(s) => {
                let mut w = format!("{} tls {}", s.address, s.tls.as_str());
                if let Some(c) = &s.auth {
                    let _ = write!(w, ", auth as {:?}", c.username);
                }
                if let Some(to) = &s.rcpt_to {
                    let _ = write!(w, ", checks RCPT TO <{to}>");
                }
                w
            }
            ProbeSpec::Imap(s) => {
                let mut w = format!("{} tls {}", s.address, s.tls.as_str());
                if let Some(c) = &s.auth {
                    let _ = write!(w, ", login as {:?}, select {:?}", c.username, s.mailbox);
                }
                w
            }
            ProbeSpec::Pop3(s) => {
                let mut w = format!("{} tls {}", s.address, s.tls.as_str());
                if let Some(c) = &s.auth {
                    let _ = write!(w, ", login as {:?}", c.username);
                }
                w
            }
            ProbeSpec::Mailflow(m) => format!(
                "smtp {} (tls {}) -> imap {} (tls {}) {:?}, as {:?}",
                m.smtp.address,
                m.smtp.tls.as_str(),
                m.imap.address,
                m.imap.tls.as_str(),
                m.imap.mailbox,
                m.smtp
                    .auth
                    .as_ref()
                    .map(|c| c.username.as_str())
                    .unwrap_or("")
            ),
        };
        let _ = writeln!(
            out,
            "  {:<16} {:<8} every {:<6} timeout {:<6} {}",
            t.name,
            t.kind().as_str(),
            human::duration(t.interval, Style::Config),
            human::duration(t.timeout, Style::Config),
            what
        );
    }
    alerting_summary(c, &mut out);
    if !c.slos.is_empty() {
        let _ = writeln!(out, "slos: {}", c.slos.len());
        let all = |globs: &[crate::config::alerting::Glob], what: &str| {
            if globs.is_empty() {
                format!("every {what}")
            } else {
                let list: Vec<&str> = globs.iter().map(|g| g.0.as_str()).collect();
                format!("{what}s {}", list.join(", "))
            }
        };
        for slo in &c.slos {
            let _ = writeln!(
                out,
                "  {:?}: {} ({}; {})",
                terminal_text(&slo.name),
                slo.objective,
                terminal_text(&all(&slo.targets, "target")),
                terminal_text(&all(&slo.phases, "phase"))
            );
        }
    }
    out
}

/// The sections of [`config_summary`] after the targets: the detector's
/// settings and each target's overrides of them, then receivers, routes and
/// maintenance windows. Secrets are never shown: a receiver URL is shown as
/// its origin only (scheme, host, port: a path or query may hold a token),
/// and one that is itself the secret (Slack, Teams) not at all; secret
/// files are named by path.
fn alerting_summary(c: &Config, out: &mut String) {
    let _ = writeln!(out, "slowdown: {}", slowdown_text(&c.slowdown));
    for t in &c.targets {
        let overrides = slowdown_overrides(&c.slowdown, &t.slowdown);
        if !overrides.is_empty() {
            let _ = writeln!(out, "  {:<16} overrides {}", t.name, overrides.join(", "));
        }
    }
    let a = &c.alerting;
    let _ = writeln!(out, "receivers: {}", a.receivers.len());
    for r in &a.receivers {
        let mut what = receiver_text(&r.spec);
        if let Some(proxy) = &r.proxy {
            // The proxy's origin only (its Display), never its credentials.
            let _ = write!(what, ", via proxy {proxy}");
        }
        let _ = write!(
            what,
            ", timeout {}",
            human::duration(r.timeout, Style::Config)
        );
        if !r.send_resolved {
            what.push_str(", no resolve notices");
        }
        if r.tls.insecure_skip_verify {
            what.push_str(", certificate not verified");
        }
        let _ = writeln!(
            out,
            "  {:<16} {:<12} {}",
            terminal_text(&r.name),
            r.kind().as_str(),
            terminal_text(&what)
        );
    }
    if a.routes.is_empty() {
        let _ = writeln!(
            out,
            "routes: 0{}",
            if a.receivers.is_empty() {
                ""
            } else {
                " (every receiver gets every alert)"
            }
        );
    } else {
        let _ = writeln!(out, "routes: {} (tried in order)", a.routes.len());
    }
    for route in &a.routes {
        let mut matchers = Vec::new();
        if let Some(g) = &route.target {
            matchers.push(format!("target {:?}", g.0));
        }
        for (key, value) in [
            ("kind", &route.kind),
            ("incident", &route.incident),
            ("severity", &route.severity),
            ("event", &route.event),
        ] {
            if let Some(v) = value {
                matchers.push(format!("{key} {v}"));
            }
        }
        let matchers = if matchers.is_empty() {
            "every alert".to_string()
        } else {
            matchers.join(", ")
        };
        let _ = writeln!(
            out,
            "  {} -> {}{}",
            terminal_text(&matchers),
            terminal_text(&route.receivers.join(", ")),
            if route.continue_matching {
                " (continue)"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(out, "maintenance windows: {}", a.maintenance.len());
    for w in &a.maintenance {
        let _ = writeln!(out, "  {}", maintenance_window(w));
    }
    if !a.windows.is_empty() {
        let _ = writeln!(out, "change windows: {}", a.windows.len());
        for w in &a.windows {
            let _ = writeln!(out, "  {}", planned_window(w));
        }
    }
}

/// Detector settings as the summary shows them: `factor 3, min_delta 10ms,
/// for 1m, recover_for 2m` and the threshold when there is one.
fn slowdown_text(s: &SlowdownSettings) -> String {
    let mut text = format!(
        "factor {}, min_delta {}, for {}, recover_for {}",
        s.factor,
        human::duration(s.min_delta, Style::Config),
        human::duration(s.for_, Style::Config),
        human::duration(s.recover_for, Style::Config)
    );
    if let Some(t) = s.threshold {
        let _ = write!(text, ", threshold {}", human::duration(t, Style::Config));
    }
    text
}

/// The keys of a target's detector settings that differ from `[slowdown]`,
/// with the target's values.
fn slowdown_overrides(global: &SlowdownSettings, own: &SlowdownSettings) -> Vec<String> {
    let d = |d: Duration| human::duration(d, Style::Config);
    let mut keys = Vec::new();
    if own.factor != global.factor {
        keys.push(format!("factor {}", own.factor));
    }
    for (key, g, o) in [
        ("min_delta", global.min_delta, own.min_delta),
        ("for", global.for_, own.for_),
        ("recover_for", global.recover_for, own.recover_for),
    ] {
        if g != o {
            keys.push(format!("{key} {}", d(o)));
        }
    }
    if own.threshold != global.threshold {
        keys.push(match own.threshold {
            Some(t) => format!("threshold {}", d(t)),
            None => "no threshold".to_string(),
        });
    }
    keys
}

/// Where a receiver sends and how it authenticates, without a secret.
fn receiver_text(spec: &ReceiverSpec) -> String {
    let origin = |u: &url::Url| u.origin().ascii_serialization();
    let auth = |a: &ReceiverAuth| match a {
        ReceiverAuth::None => String::new(),
        ReceiverAuth::Bearer(token) => format!(", bearer token from {}", token.path().display()),
        ReceiverAuth::Basic { username, .. } => format!(", basic auth as {username:?}"),
    };
    match spec {
        ReceiverSpec::Webhook(w) => format!("{}{}", origin(&w.url), auth(&w.auth)),
        ReceiverSpec::Alertmanager(a) => format!(
            "{}{}, resend every {}",
            origin(&a.url),
            auth(&a.auth),
            human::duration(a.resend_interval, Style::Config)
        ),
        ReceiverSpec::PagerDuty(p) => format!(
            "{}, routing key from {}",
            origin(&p.url),
            p.routing_key.path().display()
        ),
        ReceiverSpec::Opsgenie(o) => format!(
            "{}, API key from {}",
            origin(&o.url),
            o.api_key.path().display()
        ),
        // The URL is the secret: not even its host is shown.
        ReceiverSpec::Slack(c) | ReceiverSpec::Teams(c) => match c.url.file() {
            Some(file) => format!(
                "webhook URL from {} (not shown: it is a secret)",
                file.display()
            ),
            None => "webhook URL not shown (it is a secret)".to_string(),
        },
        ReceiverSpec::Email(e) => {
            let mut text = format!(
                "smtp {}:{} tls {}, from {:?} to {}",
                e.host,
                e.port,
                match e.tls {
                    SmtpTls::StartTls => "starttls",
                    SmtpTls::Implicit => "implicit",
                    SmtpTls::None => "none",
                },
                e.from,
                e.to.iter()
                    .map(|t| format!("{t:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some((user, password)) = &e.credentials {
                let mechanism = match e.auth {
                    SmtpAuth::Plain => " PLAIN",
                    SmtpAuth::Login => " LOGIN",
                    _ => "",
                };
                let _ = write!(
                    text,
                    ", auth{mechanism} as {user:?} (password from {})",
                    password.path().display()
                );
            }
            if let Some(login) = &e.oauth2 {
                let _ = write!(
                    text,
                    ", auth XOAUTH2 as {:?} (token from {}, read at every send)",
                    login.username,
                    login.token_file.display()
                );
            }
            text
        }
        ReceiverSpec::Grafana(g) => {
            let mut text = format!("{}{}", origin(&g.url), auth(&g.auth));
            if let Some(uid) = &g.dashboard_uid {
                let _ = write!(text, ", dashboard {uid:?}");
            }
            text
        }
    }
}

/// A configured maintenance window in one line, as `silence list` and
/// `check-config` show it: `"patch": all targets, every Sun 02:00 UTC for
/// 2h`.
pub fn maintenance_window(w: &MaintenanceWindow) -> String {
    format!(
        "{:?}: {}",
        w.name,
        schedule_text(&w.targets, &w.schedule, &w.time_zone)
    )
}

/// A planned change window (`[[window]]`) in one line, as `check-config`
/// shows it: `"batch": owa*, every Sat 22:00 Europe/London for 6h;
/// tolerance 10x, down 5m, incident 30m`.
pub fn planned_window(w: &PlannedWindow) -> String {
    format!(
        "{:?}: {}; tolerance {}x, down {}, incident {}",
        w.name,
        schedule_text(&w.targets, &w.schedule, &w.time_zone),
        w.tolerance,
        human::duration(w.max_down, Style::Config),
        human::duration(w.max_incident, Style::Config)
    )
}

/// `TARGETS, WHEN` of a window's patterns and schedule.
fn schedule_text(targets: &[Glob], schedule: &WindowSchedule, zone: &TimeZone) -> String {
    let targets = if targets.is_empty() {
        "all targets".to_string()
    } else {
        targets
            .iter()
            .map(|g| terminal_text(&g.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let when = match schedule {
        WindowSchedule::Once { start, end } => {
            format!("{} to {}", render::rfc3339(*start), render::rfc3339(*end))
        }
        WindowSchedule::Weekly {
            weekday,
            at,
            duration,
        } => format!(
            "every {weekday} {} {} for {}",
            at.format("%H:%M"),
            zone_name(zone),
            human::duration(*duration, Style::Spaced)
        ),
        WindowSchedule::Daily { at, duration } => format!(
            "every day {} {} for {}",
            at.format("%H:%M"),
            zone_name(zone),
            human::duration(*duration, Style::Spaced)
        ),
    };
    format!("{targets}, {when}")
}

/// One recorded incident as a JSON object: the nine fields of `replay`
/// followed by the worst phase, the slow, failed and healthy probe counts,
/// `escalated_at`, `earlier_burst_at`, the `outcome` (`recovered`,
/// `new_baseline`, null while open), `new_baseline_seconds`, the soak `run`
/// and `phase`, and the change `window` that covered it (null outside one).
pub fn incident_json(r: &crate::store::incidents::IncidentRecord) -> Value {
    let i = &r.incident;
    let mut v = serde_json::to_value(crate::replay::IncidentLine::new(&r.target, i))
        .expect("incident lines serialize");
    if let Value::Object(map) = &mut v {
        let time = |t: Option<DateTime<Utc>>| t.map(crate::replay::rfc3339);
        map.insert("worst_phase".into(), json!(i.worst_phase));
        map.insert("slow_count".into(), json!(i.slow_count));
        map.insert("failed_count".into(), json!(i.failed_count));
        map.insert("healthy_count".into(), json!(i.healthy_count));
        map.insert("escalated_at".into(), json!(time(i.escalated_at)));
        map.insert("earlier_burst_at".into(), json!(time(i.earlier_burst_at)));
        map.insert("outcome".into(), json!(i.outcome.map(|o| o.as_str())));
        map.insert(
            "new_baseline_seconds".into(),
            json!(i.new_baseline.map(|d| d.as_secs_f64())),
        );
        map.insert("run".into(), json!(i.run));
        map.insert("phase".into(), json!(i.run_phase));
        map.insert("window".into(), json!(i.window));
    }
    v
}

/// Recorded incidents as a table for people, newest first.
pub fn incident_table(records: &[crate::store::incidents::IncidentRecord]) -> String {
    let header = [
        "TARGET",
        "KIND",
        "STARTED",
        "DETECTED",
        "RECOVERED",
        "DURATION",
        "PEAK",
        "BASELINE",
        "WORST PHASE",
        "SLOW",
        "FAILED",
        "RUN",
        "PHASE",
        "WINDOW",
    ];
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let secs = |s: f64| human::duration(Duration::from_secs_f64(s.max(0.0)), Style::Spaced);
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let i = &r.incident;
            vec![
                terminal_text(&r.target).into_owned(),
                i.kind.as_str().to_string(),
                time(i.started_at),
                format!("+{}", secs(i.time_to_detect_seconds())),
                i.recovered_at.map_or("open".to_string(), time),
                i.duration_seconds().map_or("-".to_string(), secs),
                i.peak_latency
                    .map_or("-".to_string(), |d| human::duration(d, Style::Millis)),
                i.baseline_at_onset
                    .map_or("-".to_string(), |d| human::duration(d, Style::Millis)),
                i.worst_phase
                    .as_deref()
                    .map_or("-".to_string(), |p| terminal_text(p).into_owned()),
                i.slow_count.to_string(),
                i.failed_count.to_string(),
                i.run
                    .as_deref()
                    .map_or("-".to_string(), |r| terminal_text(r).into_owned()),
                i.run_phase
                    .as_deref()
                    .map_or("-".to_string(), |p| terminal_text(p).into_owned()),
                i.window
                    .as_deref()
                    .map_or("-".to_string(), |w| terminal_text(w).into_owned()),
            ]
        })
        .collect();
    table(&header, &rows, Width::Chars)
}

/// How [`table`] measures a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// In characters, as cells are padded (`incidents`).
    Chars,
    /// In bytes, as the `replay` table always has: the same as characters
    /// for ASCII text, wider for other.
    Bytes,
}

/// `rows` under `header` in aligned columns, each as wide as its widest
/// cell (measured by `width`), two spaces apart, with no trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>], width: Width) -> String {
    let measure = |cell: &str| match width {
        Width::Chars => cell.chars().count(),
        Width::Bytes => cell.len(),
    };
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(measure(cell));
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_window_shows_its_schedule_and_tolerance() {
        let c = crate::config::alerting::parse(
            "[[window]]\nname = \"batch\"\ntargets = [\"owa*\"]\nweekly = \"Sat 22:00\"\nduration = \"6h\"\ntime_zone = \"Europe/London\"\nmax_down = \"2m\"\n",
            std::path::Path::new(""),
            "agent.example",
        )
        .unwrap();
        assert_eq!(
            planned_window(&c.windows[0]),
            "\"batch\": owa*, every Sat 22:00 Europe/London for 6h; tolerance 10x, down 2m, incident 30m"
        );
    }

    #[test]
    fn a_maintenance_window_names_its_time_zone() {
        let c = crate::config::alerting::parse(
            "[[maintenance]]\nname = \"patch\"\nweekly = \"Sat 22:00\"\nduration = \"4h\"\ntime_zone = \"Europe/London\"\n[[maintenance]]\nname = \"nightly\"\ndaily = \"02:00\"\nduration = \"1h\"\n",
            std::path::Path::new(""),
            "agent.example",
        )
        .unwrap();
        assert_eq!(
            maintenance_window(&c.maintenance[0]),
            "\"patch\": all targets, every Sat 22:00 Europe/London for 4h"
        );
        assert_eq!(
            maintenance_window(&c.maintenance[1]),
            "\"nightly\": all targets, every day 02:00 UTC for 1h"
        );
    }

    #[test]
    fn terminal_text_escapes_what_a_terminal_would_obey() {
        assert!(matches!(
            terminal_text("plain text, ünïcode ✓"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            terminal_text("a\u{1b}[2Jb\u{1b}]0;pwned\u{7}c\rd\u{9b}e"),
            "a\\u{1b}[2Jb\\u{1b}]0;pwned\\u{7}c\\u{d}d\\u{9b}e"
        );
        assert_eq!(
            terminal_text("patch \u{202e}txt.exe\u{2066}x\u{2069}"),
            "patch \\u{202e}txt.exe\\u{2066}x\\u{2069}"
        );
    }

    #[test]
    fn tables_measure_cells_in_characters_or_in_bytes() {
        let rows = vec![
            vec!["éé".to_string(), "x".to_string()],
            vec!["abc".to_string(), "y".to_string()],
        ];
        assert_eq!(
            table(&["A", "B"], &rows, Width::Chars),
            "A    B\néé   x\nabc  y\n"
        );
        assert_eq!(
            table(&["A", "B"], &rows, Width::Bytes),
            "A     B\néé    x\nabc   y\n"
        );
    }

    /// issue 21: `mailpulse probe NOSUCH` listed all 10,000 targets.
    #[test]
    fn an_unknown_name_lists_a_bounded_number_of_close_names() {
        assert_eq!(name_hint("x", &[]), "none");
        assert_eq!(name_hint("ews", &["owa", "smtp"]), "owa, smtp");
        let names: Vec<String> = (0..10_000).map(|i| format!("host{i:05}-imap")).collect();
        let known: Vec<&str> = names.iter().map(String::as_str).collect();
        let hint = name_hint("host00042-imap", &known[..41]);
        assert!(hint.ends_with(", and 31 more"), "{hint}");
        let hint = name_hint("host09999-imap", &known);
        assert!(hint.starts_with("host09999-imap, "), "{hint}");
        assert!(hint.ends_with(", and 9990 more"), "{hint}");
        assert_eq!(hint.matches(", ").count(), MAX_LISTED_NAMES);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("owa", "owa"), 0);
    }

    /// issue 21: the summary said nothing about an `http://` target being
    /// unencrypted; it says "plain HTTP" now (and credentials in clear).
    #[test]
    fn the_summary_says_plain_http_for_http_urls() {
        let config = crate::config::parse(
            "[[target]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://a.example.org/\"\n\
             [[target]]\nname = \"b\"\nkind = \"http\"\nurl = \"https://b.example.org/\"\n",
            None,
        )
        .unwrap();
        let summary = config_summary(&config);
        let line = |name: &str| {
            summary
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap()
                .to_string()
        };
        assert!(
            line("a ").ends_with("GET http://a.example.org/, plain HTTP"),
            "{summary}"
        );
        assert!(
            line("b ").ends_with("GET https://b.example.org/"),
            "{summary}"
        );
        assert!(
            summary.contains("metrics on http://127.0.0.1:9717/metrics"),
            "{summary}"
        );
    }

    #[test]
    fn the_summary_says_https_for_a_tls_metrics_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        let text = "[agent.web]\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\n";
        let config = crate::config::parse(text, Some(&dir.path().join("c.toml"))).unwrap();
        let summary = config_summary(&config);
        assert!(
            summary.contains("metrics on https://127.0.0.1:9717/metrics"),
            "{summary}"
        );
    }

    #[test]
    fn stored_text_in_the_incident_table_is_escaped() {
        let incident: crate::detect::Incident = serde_json::from_value(json!({
            "kind": "slow",
            "started_at": "2026-12-01T10:00:00Z",
            "detected_at": "2026-12-01T10:01:00Z",
            "recovered_at": null,
            "closed_at": null,
            "peak_latency": null,
            "baseline_at_onset": null,
            "worst_phase": "first\u{1b}[31m_byte",
            "slow_count": 3,
            "failed_count": 0,
            "window": "batch\u{1b}[2J1",
        }))
        .unwrap();
        let record = crate::store::incidents::IncidentRecord {
            target: "owa\u{1b}]0;pwned\u{7}\u{202e}".into(),
            incident,
        };
        let table = incident_table(std::slice::from_ref(&record));
        assert!(
            !table.contains('\u{1b}') && !table.contains('\u{202e}'),
            "{table:?}"
        );
        assert!(
            table.contains("owa\\u{1b}]0;pwned\\u{7}\\u{202e}"),
            "{table}"
        );
        assert!(table.contains("first\\u{1b}[31m_byte"), "{table}");
        assert!(
            table.lines().next().unwrap().ends_with("  WINDOW"),
            "{table}"
        );
        assert!(table.contains("batch\\u{1b}[2J1"), "{table}");
        let json = incident_json(&record);
        assert_eq!(json["window"], "batch\u{1b}[2J1");
    }
}
