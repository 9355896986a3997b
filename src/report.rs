//! Human and JSON renderings of probe results and configuration summaries,
//! for the `probe` and `check-config` commands. Pure: strings in, strings out.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::config::{Config, HttpAuth, HumanDuration, ProbeSpec};
use crate::sample::{Phase, Sample};

/// Formats a duration in milliseconds with a precision that suits its size.
pub fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

/// One probe result as a block: a headline, then every phase on its own line.
pub fn sample_table(s: &Sample, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let result = match &s.failure {
        None => "ok".to_string(),
        Some(f) => format!("FAILED ({}) in {}: {}", f.reason, f.phase, f.message),
    };
    let _ = write!(out, "{} ({}): {}", s.target, s.kind, result);
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
        let _ = writeln!(out, "  {note}");
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
        let _ = writeln!(out, "  {:<12} {:>12}{marks}", phase.as_str(), millis(*d));
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
        "agent: instance {:?}, metrics on http://{}/metrics, state in {}, log level {}",
        c.agent.instance,
        c.agent.listen,
        c.agent.state_dir.display(),
        c.agent.log_level
    );
    if c.host.enabled {
        let _ = write!(out, "host: every {}", HumanDuration(c.host.interval));
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
            HumanDuration(t.interval).to_string(),
            HumanDuration(t.timeout).to_string(),
            what
        );
    }
    out
}

/// One recorded incident as a JSON object: the nine fields of `replay`
/// followed by the worst phase and the slow and failed probe counts.
pub fn incident_json(r: &crate::store::incidents::IncidentRecord) -> Value {
    let mut v = serde_json::to_value(crate::replay::IncidentLine::new(&r.target, &r.incident))
        .expect("incident lines serialize");
    if let Value::Object(map) = &mut v {
        map.insert("worst_phase".into(), json!(r.incident.worst_phase));
        map.insert("slow_count".into(), json!(r.incident.slow_count));
        map.insert("failed_count".into(), json!(r.incident.failed_count));
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
    ];
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let secs = |s: f64| crate::alert::render::human_duration(Duration::from_secs_f64(s.max(0.0)));
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let i = &r.incident;
            vec![
                r.target.clone(),
                i.kind.as_str().to_string(),
                time(i.started_at),
                format!("+{}", secs(i.time_to_detect_seconds())),
                i.recovered_at.map_or("open".to_string(), time),
                i.duration_seconds().map_or("-".to_string(), secs),
                i.peak_latency.map_or("-".to_string(), millis),
                i.baseline_at_onset.map_or("-".to_string(), millis),
                i.worst_phase.clone().unwrap_or_else(|| "-".into()),
                i.slow_count.to_string(),
                i.failed_count.to_string(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
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
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
