//! Message text: what a paged human reads in five seconds, and the incident
//! record as labels, annotations and facts every receiver shares.
//!
//! Pure functions of an [`AlertEvent`]: no IO, no clock, no configuration
//! beyond what the event carries. Receivers shape these strings into their
//! payloads; they never compose sentences of their own, so every channel says
//! the same thing. A change-window summary's text is the window module's
//! (`window::render`): its title, and its text as the description.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{AlertEvent, AlertStatus, HostLoad};
use crate::human::{self, Style};
use crate::window::render as window_text;

/// The `alertname` label: one name per incident kind.
pub fn alertname(e: &AlertEvent) -> String {
    if e.summary().is_some() {
        return "MailpulseWindowSummary".into();
    }
    if e.test {
        return "MailpulseTest".into();
    }
    let mut kind = e.incident_kind.clone();
    if let Some(first) = kind.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("Mailpulse{kind}")
}

/// A short headline: `owa slow`, `owa recovered`, `owa new baseline`,
/// `TEST: owa slow`.
pub fn title(e: &AlertEvent) -> String {
    if let Some(s) = e.summary() {
        return window_text::title(s);
    }
    let core = match e.status {
        AlertStatus::Firing if e.reminder => format!("{} still {}", e.target, e.incident_kind),
        AlertStatus::Firing => format!("{} {}", e.target, e.incident_kind),
        AlertStatus::Resolved if e.new_baseline_latency_seconds.is_some() => {
            format!("{} new baseline", e.target)
        }
        AlertStatus::Resolved => format!("{} recovered", e.target),
    };
    if e.test {
        return format!("TEST: {core}");
    }
    match beyond(e) {
        Some((window, _)) => format!("{core}: beyond tolerance of window {window}"),
        None => core,
    }
}

/// The window and why, for a firing page beyond a change window's tolerance.
fn beyond(e: &AlertEvent) -> Option<(&str, &str)> {
    let why = e.beyond_tolerance.as_deref()?;
    (e.status == AlertStatus::Firing).then(|| (e.window.as_deref().unwrap_or_default(), why))
}

/// The one-sentence summary, e.g. `owa slow since 02:14:05Z: latency 3.8 s
/// against a 180 ms baseline (21x), CPU 97%, 4,120 TCP established` or
/// `owa recovered at 02:24:08Z after 10m 3s (detected 61 s after onset, peak 6.2 s)` or
/// `owa has a new baseline of 800 ms, was 180 ms (4.4x): slow since 02:14:05Z, held for relearn_after, accepted at 08:14:05Z`.
pub fn summary(e: &AlertEvent) -> String {
    if let Some(s) = e.summary() {
        return window_text::title(s);
    }
    let mut text = match e.status {
        AlertStatus::Firing => firing_sentence(e),
        AlertStatus::Resolved => recovery_sentence(e),
    };
    if let Some((window, why)) = beyond(e) {
        text = format!("beyond tolerance of window {window}: {why}; {text}");
    }
    if let (Some(h), AlertStatus::Firing, false) = (&e.held, e.status, e.reminder) {
        text.push_str(&format!(
            " (held by {} since {})",
            h.by,
            clock_time(h.since)
        ));
    }
    if e.test {
        format!("[TEST] {text} (test notification from mailpulse test-alert; no action needed)")
    } else {
        text
    }
}

fn firing_sentence(e: &AlertEvent) -> String {
    let still = if e.reminder { "still " } else { "" };
    let mut s = format!(
        "{} {still}{} since {}",
        e.target,
        e.incident_kind,
        clock_time(e.started_at)
    );
    let mut details = Vec::new();
    if e.incident_kind == "down" {
        details.push(count_word(e.failed_count, "failed probe"));
        if let Some(err) = &e.last_error {
            details.push(format!("last error: {err}"));
        }
    } else if let Some(current) = e.current_latency_seconds.or(e.peak_latency_seconds) {
        let mut d = format!("latency {}", human::seconds(current, Style::Latency));
        if let Some(base) = e.baseline_latency_seconds {
            d.push_str(&format!(
                " against a {} baseline",
                human::seconds(base, Style::Latency)
            ));
            if let Some(r) = ratio(current, base) {
                d.push_str(&format!(" ({r})"));
            }
        }
        details.push(d);
    }
    if let Some(h) = &e.host {
        if let Some(cpu) = h.cpu_ratio {
            details.push(format!("CPU {:.0}%", cpu * 100.0));
        }
        if let Some(tcp) = h.tcp_established {
            details.push(format!("{} TCP established", thousands(tcp)));
        }
    }
    if !details.is_empty() {
        s.push_str(": ");
        s.push_str(&details.join(", "));
    }
    s
}

fn recovery_sentence(e: &AlertEvent) -> String {
    if let Some(new) = e.new_baseline_latency_seconds {
        let mut s = format!(
            "{} has a new baseline of {}",
            e.target,
            human::seconds(new, Style::Latency)
        );
        if let Some(old) = e.baseline_latency_seconds {
            s.push_str(&format!(", was {}", human::seconds(old, Style::Latency)));
            if let Some(r) = ratio(new, old) {
                s.push_str(&format!(" ({r})"));
            }
        }
        s.push_str(&format!(
            ": slow since {}, held for relearn_after",
            clock_time(e.started_at)
        ));
        if let Some(at) = e.recovered_at {
            s.push_str(&format!(", accepted at {}", clock_time(at)));
        }
        return s;
    }
    let mut s = match e.recovered_at {
        Some(at) => format!(
            "{} recovered at {} after {}",
            e.target,
            clock_time(at),
            human::duration(span(e.started_at, at), Style::Spaced)
        ),
        None => format!("{} recovered", e.target),
    };
    let mut details = vec![format!(
        "detected {} after onset",
        human::duration(span(e.started_at, e.detected_at), Style::Seconds)
    )];
    if e.incident_kind == "down" {
        details.push(count_word(e.failed_count, "failed probe"));
    } else if let Some(peak) = e.peak_latency_seconds {
        details.push(format!("peak {}", human::seconds(peak, Style::Latency)));
    }
    s.push_str(&format!(" ({})", details.join(", ")));
    s
}

/// Several lines with every detail of the incident, for bodies and descriptions.
pub fn description(e: &AlertEvent) -> String {
    if let Some(s) = e.summary() {
        return window_text::text(s);
    }
    let mut lines = vec![summary(e), String::new()];
    for (name, value) in facts(e) {
        lines.push(format!("{name}: {value}"));
    }
    lines.join("\n")
}

/// The incident record as `(name, value)` pairs, in reading order, for chat
/// fields, card fact sets and e-mail bodies.
pub fn facts(e: &AlertEvent) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("Target", format!("{} ({})", e.target, e.probe_kind)),
        ("Instance", e.instance.clone()),
        ("Severity", e.severity.clone()),
        ("Started", rfc3339(e.started_at)),
        (
            "Detected",
            format!(
                "{} ({} after onset)",
                rfc3339(e.detected_at),
                human::duration(span(e.started_at, e.detected_at), Style::Seconds)
            ),
        ),
    ];
    if let Some(at) = e.recovered_at {
        f.push(("Recovered", rfc3339(at)));
        f.push((
            "Duration",
            human::duration(span(e.started_at, at), Style::Spaced),
        ));
    }
    if let Some(v) = e.current_latency_seconds {
        f.push(("Latency now", human::seconds(v, Style::Latency)));
    }
    if let Some(v) = e.peak_latency_seconds {
        f.push(("Peak latency", human::seconds(v, Style::Latency)));
    }
    if let Some(v) = e.baseline_latency_seconds {
        f.push(("Baseline", human::seconds(v, Style::Latency)));
    }
    if let Some(v) = e.new_baseline_latency_seconds {
        f.push(("New baseline", human::seconds(v, Style::Latency)));
    }
    if let Some(p) = &e.worst_phase {
        f.push(("Worst phase", p.clone()));
    }
    if let Some(run) = &e.run {
        let phase = e.phase.as_deref().map(|p| format!(", phase {p}"));
        f.push(("Soak run", format!("{run}{}", phase.unwrap_or_default())));
    }
    if let Some(w) = &e.window {
        f.push(("Change window", w.clone()));
    }
    if let Some(why) = &e.beyond_tolerance {
        f.push(("Beyond tolerance", why.clone()));
    }
    f.push((
        "Probes",
        format!("{} slow, {} failed", e.slow_count, e.failed_count),
    ));
    if let Some(err) = &e.last_error {
        f.push(("Last error", err.clone()));
    }
    if let Some(h) = &e.host {
        let line = host_line(h);
        if !line.is_empty() {
            f.push(("Host", line));
        }
    }
    if let Some(h) = &e.held {
        f.push((
            "Held",
            format!(
                "by {} since {} ({})",
                h.by,
                rfc3339(h.since),
                if e.beyond_tolerance.is_some() {
                    "paged beyond tolerance"
                } else {
                    "paged when it ended"
                }
            ),
        ));
    }
    f.push(("Incident", e.incident_key.clone()));
    f
}

/// The labels of the alert (its identity in Alertmanager): `alertname`,
/// `target`, `kind` (the probe kind), `instance`, `severity`, and `run` and
/// `phase` for an incident opened during a soak-test run (fixed when it
/// opens, so the identity stays the same until it resolves).
pub fn labels(e: &AlertEvent) -> BTreeMap<String, String> {
    if let Some(s) = e.summary() {
        return BTreeMap::from([
            ("alertname".to_string(), alertname(e)),
            ("instance".to_string(), e.instance.clone()),
            ("severity".to_string(), e.severity.clone()),
            ("window".to_string(), s.window.clone()),
        ]);
    }
    let mut labels = BTreeMap::from([
        ("alertname".to_string(), alertname(e)),
        ("target".to_string(), e.target.clone()),
        ("kind".to_string(), e.probe_kind.clone()),
        ("instance".to_string(), e.instance.clone()),
        ("severity".to_string(), e.severity.clone()),
    ]);
    if let Some(run) = &e.run {
        labels.insert("run".to_string(), run.clone());
        if let Some(p) = &e.phase {
            labels.insert("phase".to_string(), p.clone());
        }
    }
    labels
}

/// The annotations: the incident record as strings. Absent values are left out.
pub fn annotations(e: &AlertEvent) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        a.insert(k.to_string(), v);
    };
    if let Some(s) = e.summary() {
        put("summary", window_text::title(s));
        put("description", window_text::text(s));
        put("window", s.window.clone());
        put("window_start", rfc3339(s.starts_at));
        put("window_end", rfc3339(s.ends_at));
        return a;
    }
    put("summary", summary(e));
    if let Some(h) = &e.held {
        put("held_by", h.by.clone());
        put("held_since", rfc3339(h.since));
    }
    put("description", description(e));
    put("incident_key", e.incident_key.clone());
    put("incident_kind", e.incident_kind.clone());
    put("started_at", rfc3339(e.started_at));
    put("detected_at", rfc3339(e.detected_at));
    put(
        "time_to_detect_seconds",
        seconds(span(e.started_at, e.detected_at)),
    );
    if let Some(at) = e.recovered_at {
        let d = span(e.started_at, at);
        put("recovered_at", rfc3339(at));
        put("duration_seconds", seconds(d));
        put("duration", human::duration(d, Style::Spaced));
    }
    if let Some(v) = e.peak_latency_seconds {
        put("peak_latency_seconds", number(v));
    }
    if let Some(v) = e.baseline_latency_seconds {
        put("baseline_latency_seconds", number(v));
    }
    if let Some(v) = e.new_baseline_latency_seconds {
        put("outcome", "new_baseline".into());
        put("new_baseline_latency_seconds", number(v));
    }
    if let Some(v) = e.current_latency_seconds {
        put("current_latency_seconds", number(v));
    }
    if let Some(p) = &e.worst_phase {
        put("worst_phase", p.clone());
    }
    if let Some(run) = &e.run {
        put("run", run.clone());
    }
    if let Some(p) = &e.phase {
        put("phase", p.clone());
    }
    if let Some(w) = &e.window {
        put("window", w.clone());
    }
    if let Some(why) = &e.beyond_tolerance {
        put("beyond_tolerance", why.clone());
    }
    put("slow_count", e.slow_count.to_string());
    put("failed_count", e.failed_count.to_string());
    if let Some(err) = &e.last_error {
        put("last_error", err.clone());
    }
    if let Some(h) = &e.host {
        let line = host_line(h);
        if !line.is_empty() {
            put("host_load", line);
        }
    }
    if e.reminder {
        put("reminder", "true".into());
    }
    if e.test {
        put("test", "true".into());
    }
    a
}

/// A host-load snapshot in a few words: `CPU 97%, load 12.3, 1.2 GiB memory
/// available, 4,120 TCP established`.
pub fn host_line(h: &HostLoad) -> String {
    let mut parts = Vec::new();
    if let Some(cpu) = h.cpu_ratio {
        parts.push(format!("CPU {:.0}%", cpu * 100.0));
    }
    if let Some(l) = h.load1 {
        parts.push(format!("load {l:.1}"));
    }
    if let Some(m) = h.memory_available_bytes {
        parts.push(format!("{} memory available", bytes(m)));
    }
    if let Some(t) = h.tcp_established {
        parts.push(format!("{} TCP established", thousands(t)));
    }
    parts.join(", ")
}

/// The time of day in UTC, `02:14:05Z`.
pub fn clock_time(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%SZ").to_string()
}

/// RFC 3339 in UTC with a `Z` and no fraction when whole.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// How many times `value` is `base`: `21x`, `2.5x`; `None` without a base.
pub fn ratio(value: f64, base: f64) -> Option<String> {
    if base <= 0.0 || !value.is_finite() || !base.is_finite() {
        return None;
    }
    let r = value / base;
    Some(if r >= 10.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.1}x")
    })
}

/// `4120` as `4,120`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units with one decimal: `1.2 GiB`.
pub fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < units.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[unit])
    }
}

fn count_word(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{} {word}s", thousands(n))
    }
}

/// The non-negative time from `a` to `b`.
pub fn span(a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
    (b - a).to_std().unwrap_or_default()
}

/// Whole seconds as an integer, fractions to the millisecond: `603`, `0.25`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        number(d.as_secs_f64())
    }
}

/// A float without noise: `6.2`, `0.18`, `3`.
fn number(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::sample_event;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_sentences_of_the_issue() {
        let mut e = sample_event();
        assert_eq!(
            summary(&e),
            "owa slow since 02:14:05Z: latency 3.8 s against a 180 ms baseline (21x), CPU 97%, 4,120 TCP established"
        );
        e.status = AlertStatus::Resolved;
        e.recovered_at = Some(at("2026-12-05T02:24:08Z"));
        assert_eq!(
            summary(&e),
            "owa recovered at 02:24:08Z after 10m 3s (detected 61 s after onset, peak 6.2 s)"
        );
        assert_eq!(title(&e), "owa recovered");
    }

    /// Issue 16: a level shift held for `relearn_after` closes as a new
    /// baseline, and its notification says so with the old and new levels.
    #[test]
    fn a_new_baseline_says_so_with_both_levels() {
        let mut e = sample_event();
        e.status = AlertStatus::Resolved;
        e.recovered_at = Some(at("2026-12-05T08:14:05Z"));
        e.new_baseline_latency_seconds = Some(0.8);
        assert_eq!(title(&e), "owa new baseline");
        assert_eq!(
            summary(&e),
            "owa has a new baseline of 800 ms, was 180 ms (4.4x): slow since 02:14:05Z, held for relearn_after, accepted at 08:14:05Z"
        );
        assert!(description(&e).contains("\nBaseline: 180 ms\nNew baseline: 800 ms\n"));
        let a = annotations(&e);
        assert_eq!(a.get("outcome").map(String::as_str), Some("new_baseline"));
        assert_eq!(
            a.get("new_baseline_latency_seconds").map(String::as_str),
            Some("0.8")
        );
        // A stored alert from before issue 16 decodes, as a recovery.
        let mut json = serde_json::to_value(sample_event()).unwrap();
        json.as_object_mut()
            .unwrap()
            .remove("new_baseline_latency_seconds");
        let old: AlertEvent = serde_json::from_value(json).unwrap();
        assert_eq!(old.new_baseline_latency_seconds, None);
    }

    #[test]
    fn down_reminder_and_test() {
        let mut e = sample_event();
        e.incident_kind = "down".into();
        e.failed_count = 5;
        e.last_error = Some("connection refused".into());
        e.host = None;
        assert_eq!(
            summary(&e),
            "owa down since 02:14:05Z: 5 failed probes, last error: connection refused"
        );
        assert_eq!(alertname(&e), "MailpulseDown");
        e.reminder = true;
        assert_eq!(title(&e), "owa still down");
        assert!(summary(&e).starts_with("owa still down since 02:14:05Z"));
        e.reminder = false;
        e.test = true;
        assert_eq!(alertname(&e), "MailpulseTest");
        assert_eq!(
            summary(&e),
            "[TEST] owa down since 02:14:05Z: 5 failed probes, last error: connection refused (test notification from mailpulse test-alert; no action needed)"
        );
    }

    #[test]
    fn the_description_lists_every_fact() {
        let mut e = sample_event();
        e.status = AlertStatus::Resolved;
        e.recovered_at = Some(at("2026-12-05T02:24:08Z"));
        let expect = "\
owa recovered at 02:24:08Z after 10m 3s (detected 61 s after onset, peak 6.2 s)

Target: owa (http)
Instance: cas01
Severity: critical
Started: 2026-12-05T02:14:05Z
Detected: 2026-12-05T02:15:06Z (61 s after onset)
Recovered: 2026-12-05T02:24:08Z
Duration: 10m 3s
Latency now: 3.8 s
Peak latency: 6.2 s
Baseline: 180 ms
Worst phase: first_byte
Probes: 12 slow, 0 failed
Host: CPU 97%, load 12.3, 1.2 GiB memory available, 4,120 TCP established
Incident: 3f2a9c0d11e4b7a2";
        assert_eq!(description(&e), expect);
    }

    /// Issue 18: a page beyond a change window's tolerance says so in its
    /// title, summary, facts and annotations; a released page says by what
    /// and since when it was held; a page of a window's incident names it.
    #[test]
    fn window_pages_say_beyond_tolerance_and_held() {
        let mut e = sample_event();
        e.window = Some("batch1".into());
        assert_eq!(title(&e), "owa slow");
        assert_eq!(
            annotations(&e).get("window").map(String::as_str),
            Some("batch1")
        );
        assert!(!annotations(&e).contains_key("beyond_tolerance"));
        e.beyond_tolerance =
            Some("latency 3.8 s is 21x the 180 ms baseline (tolerance 10x)".into());
        e.held = serde_json::from_value(serde_json::json!({
            "by": "window batch1", "since": e.detected_at
        }))
        .unwrap();
        assert_eq!(title(&e), "owa slow: beyond tolerance of window batch1");
        assert_eq!(
            summary(&e),
            "beyond tolerance of window batch1: latency 3.8 s is 21x the 180 ms baseline (tolerance 10x); \
             owa slow since 02:14:05Z: latency 3.8 s against a 180 ms baseline (21x), CPU 97%, 4,120 TCP established \
             (held by window batch1 since 02:15:06Z)"
        );
        let a = annotations(&e);
        assert_eq!(a["beyond_tolerance"], e.beyond_tolerance.clone().unwrap());
        assert_eq!(a["held_by"], "window batch1");
        let d = description(&e);
        assert!(d.contains("\nChange window: batch1\n"), "{d}");
        assert!(d.contains("\nBeyond tolerance: latency 3.8 s"), "{d}");
        assert!(d.contains("(paged beyond tolerance)"), "{d}");
        // The resolve of that incident is an ordinary recovery.
        e.status = AlertStatus::Resolved;
        e.recovered_at = Some(e.started_at + chrono::Duration::seconds(603));
        assert_eq!(title(&e), "owa recovered");
        assert!(summary(&e).starts_with("owa recovered at"));
    }

    /// Issue 17: an incident opened during a soak-test run names the run
    /// and phase in its labels, annotations and facts; others do not.
    #[test]
    fn a_soak_run_shows_in_labels_annotations_and_facts() {
        let mut e = sample_event();
        assert!(!labels(&e).contains_key("run"));
        assert!(!annotations(&e).contains_key("run"));
        e.run = Some("golive".into());
        e.phase = Some("plateau".into());
        let l = labels(&e);
        assert_eq!(l.get("run").map(String::as_str), Some("golive"));
        assert_eq!(l.get("phase").map(String::as_str), Some("plateau"));
        let a = annotations(&e);
        assert_eq!(a.get("run").map(String::as_str), Some("golive"));
        assert_eq!(a.get("phase").map(String::as_str), Some("plateau"));
        assert!(description(&e).contains("\nSoak run: golive, phase plateau\n"));
    }

    #[test]
    fn annotations_carry_the_record_as_strings() {
        let mut e = sample_event();
        e.status = AlertStatus::Resolved;
        e.recovered_at = Some(at("2026-12-05T02:24:08Z"));
        let a = annotations(&e);
        let get = |k: &str| a.get(k).map(String::as_str);
        assert_eq!(get("started_at"), Some("2026-12-05T02:14:05Z"));
        assert_eq!(get("detected_at"), Some("2026-12-05T02:15:06Z"));
        assert_eq!(get("recovered_at"), Some("2026-12-05T02:24:08Z"));
        assert_eq!(get("duration_seconds"), Some("603"));
        assert_eq!(get("duration"), Some("10m 3s"));
        assert_eq!(get("time_to_detect_seconds"), Some("61"));
        assert_eq!(get("peak_latency_seconds"), Some("6.2"));
        assert_eq!(get("baseline_latency_seconds"), Some("0.18"));
        assert_eq!(get("worst_phase"), Some("first_byte"));
        assert_eq!(
            get("host_load"),
            Some("CPU 97%, load 12.3, 1.2 GiB memory available, 4,120 TCP established")
        );
        assert_eq!(get("last_error"), None);
        let l = labels(&e);
        assert_eq!(
            l.keys().collect::<Vec<_>>(),
            ["alertname", "instance", "kind", "severity", "target"]
        );
        assert_eq!(l["alertname"], "MailpulseSlow");
        assert_eq!(l["kind"], "http");
    }

    #[test]
    fn number_formats() {
        let check = |secs: u64, expect: &str| {
            assert_eq!(
                human::duration(Duration::from_secs(secs), Style::Spaced),
                expect
            )
        };
        check(0, "0s");
        check(59, "59s");
        check(603, "10m 3s");
        check(3605, "1h 5s");
        check(93784, "1d 2h 3m 4s");
        assert_eq!(
            human::duration(Duration::from_secs(61), Style::Seconds),
            "61 s"
        );
        assert_eq!(
            human::duration(Duration::from_secs(600), Style::Seconds),
            "10m"
        );
        let check = |v: f64, expect: &str| assert_eq!(human::seconds(v, Style::Latency), expect);
        check(3.8, "3.8 s");
        check(0.18, "180 ms");
        check(0.0015, "1.5 ms");
        check(0.00045, "450 µs");
        check(250.0, "250 s");
        assert_eq!(ratio(3.8, 0.18).as_deref(), Some("21x"));
        assert_eq!(ratio(0.45, 0.18).as_deref(), Some("2.5x"));
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(thousands(4120), "4,120");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(bytes(1_288_490_189), "1.2 GiB");
        assert_eq!(bytes(512), "512 B");
    }
}
