//! A window summary written for people: [`title`] (one line, for subjects
//! and chat headlines), [`text`] (the plain text every chat, mail and pager
//! receiver sends, and `window report` prints) and [`html`] (one
//! self-contained page: inline CSS and SVG, no script, every outside string
//! escaped). The JSON form is the summary's own serialization.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::summary::{IncidentLine, TargetSummary, WindowSummary};
use crate::html::escape;
use crate::human::{self, Style};

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn clock(t: DateTime<Utc>) -> String {
    t.format("%H:%M:%SZ").to_string()
}

fn spaced(seconds: f64) -> String {
    human::duration(Duration::from_secs_f64(seconds.max(0.0)), Style::Spaced)
}

fn latency(seconds: Option<f64>) -> String {
    seconds
        .filter(|s| *s > 0.0)
        .map_or_else(|| "-".to_string(), |s| human::seconds(s, Style::Latency))
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// One line: which window, on which agent, and what it came to.
pub fn title(s: &WindowSummary) -> String {
    let state = if s.in_progress { "so far" } else { "ended" };
    let mut out = format!(
        "Change window {:?} {state} on {}: {}",
        s.window,
        s.instance,
        plural(s.incident_count, "incident")
    );
    if s.incident_count > 0 {
        let _ = write!(
            out,
            " ({} held, {} beyond tolerance)",
            s.held, s.beyond_tolerance
        );
    }
    if !s.still_open.is_empty() {
        let _ = write!(out, ", {} still open", s.still_open.len());
    }
    out
}

fn outcome(l: &IncidentLine) -> String {
    match (l.outcome.as_str(), &l.beyond_tolerance) {
        ("beyond_tolerance", Some(why)) => format!("beyond tolerance ({why})"),
        ("beyond_tolerance", None) => "beyond tolerance".to_string(),
        ("paged", _) => "opened before the window, paged".to_string(),
        (other, _) => other.to_string(),
    }
}

fn p95_line(t: &TargetSummary) -> String {
    if t.probes == 0 {
        return "no probes inside the window".to_string();
    }
    format!(
        "p95 {} inside vs {} the hour before ({}, {} failed)",
        latency(t.p95_inside_seconds),
        latency(t.p95_before_seconds),
        plural(t.probes as usize, "probe"),
        t.failures
    )
}

/// The summary as plain text (no markup; a terminal caller escapes it).
pub fn text(s: &WindowSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", title(s));
    let span = spaced((s.ends_at - s.starts_at).num_milliseconds() as f64 / 1000.0);
    let how = if s.in_progress {
        ", still open"
    } else if s.closed_early {
        ", closed early"
    } else {
        ", expired"
    };
    let _ = writeln!(
        out,
        "Span: {} to {} ({span}{how})",
        stamp(s.starts_at),
        stamp(s.ends_at)
    );
    if let Some(note) = &s.note {
        let _ = writeln!(out, "Note: {note}");
    }
    if let Some(by) = &s.by {
        let _ = writeln!(out, "Opened by: {by}");
    }
    let covers = if s.covers.is_empty() {
        "every target".to_string()
    } else {
        s.covers.join(", ")
    };
    let _ = writeln!(
        out,
        "Covers: {covers}; tolerance {}x, max_down {}, max_incident {}",
        s.tolerance,
        human::duration(Duration::from_secs_f64(s.max_down_seconds), Style::Config),
        human::duration(
            Duration::from_secs_f64(s.max_incident_seconds),
            Style::Config
        )
    );
    for t in &s.targets {
        let _ = writeln!(out);
        let mut head = format!("{}: {}", t.target, plural(t.incident_count, "incident"));
        if t.incident_count > 0 {
            let _ = write!(
                head,
                ", degraded {}, worst peak {}",
                spaced(t.degraded_seconds),
                latency(t.worst_peak_seconds)
            );
        }
        let _ = writeln!(out, "{head}; {}", p95_line(t));
        for l in &t.incidents {
            let recovered = match l.recovered_at {
                Some(r) => format!("recovered {}", clock(r)),
                None => "still open".to_string(),
            };
            let _ = writeln!(
                out,
                "  {} from {}, detected {}, {recovered}; {} degraded, peak {}; {}",
                l.kind,
                stamp(l.started_at),
                clock(l.detected_at),
                spaced(l.degraded_seconds),
                latency(l.peak_latency_seconds),
                outcome(l)
            );
        }
    }
    if !s.still_open.is_empty() {
        let _ = writeln!(out);
        let what = if s.in_progress {
            "Open now"
        } else {
            "Still open at the end (paging normally now)"
        };
        let list: Vec<String> = s
            .still_open
            .iter()
            .map(|o| format!("{} ({} since {})", o.target, o.kind, stamp(o.started_at)))
            .collect();
        let _ = writeln!(out, "{what}: {}", list.join(", "));
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}\
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}\
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}\
th{background:#f3f3f3}.held{color:#8a6d00}.beyond_tolerance{color:#b00020;font-weight:bold}\
.paged{color:#555}.meta td:first-child{font-weight:bold}svg{display:block;margin:.5rem 0}";

/// The timeline of one target's incidents over the window, inline SVG.
fn timeline(s: &WindowSummary, t: &TargetSummary) -> String {
    let width = 600.0;
    let span = (s.ends_at - s.starts_at).num_milliseconds().max(1) as f64;
    let x = |at: DateTime<Utc>| {
        ((at - s.starts_at).num_milliseconds() as f64 / span * width).clamp(0.0, width)
    };
    let mut out = format!(
        "<svg class=\"timeline\" width=\"{width}\" height=\"24\" viewBox=\"0 0 {width} 24\" role=\"img\" aria-label=\"incidents of {}\"><rect x=\"0\" y=\"4\" width=\"{width}\" height=\"16\" fill=\"#e8f3e8\"/>",
        escape(&t.target)
    );
    for l in &t.incidents {
        let from = x(l.started_at);
        let to = x(l.recovered_at.unwrap_or(s.ends_at));
        let colour = if l.outcome == "beyond_tolerance" {
            "#d33"
        } else {
            "#e9b000"
        };
        let _ = write!(
            out,
            "<rect class=\"span {}\" x=\"{from:.1}\" y=\"4\" width=\"{:.1}\" height=\"16\" fill=\"{colour}\"><title>{} from {}</title></rect>",
            escape(&l.outcome),
            (to - from).max(1.0),
            escape(&l.kind),
            stamp(l.started_at)
        );
    }
    out.push_str("</svg>");
    out
}

/// The summary as one self-contained HTML page.
pub fn html(s: &WindowSummary) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title(s))
    );
    let _ = write!(out, "<h1 id=\"title\">{}</h1>", escape(&title(s)));
    out.push_str("<table class=\"meta\">");
    let mut row = |k: &str, v: &str| {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
    };
    row("Window", &s.window);
    row("Agent", &s.instance);
    row(
        "Span",
        &format!("{} to {}", stamp(s.starts_at), stamp(s.ends_at)),
    );
    if let Some(note) = &s.note {
        row("Note", note);
    }
    if let Some(by) = &s.by {
        row("Opened by", by);
    }
    row(
        "Covers",
        &if s.covers.is_empty() {
            "every target".to_string()
        } else {
            s.covers.join(", ")
        },
    );
    row(
        "Tolerance",
        &format!(
            "{}x, max_down {}, max_incident {}",
            s.tolerance,
            human::duration(Duration::from_secs_f64(s.max_down_seconds), Style::Config),
            human::duration(
                Duration::from_secs_f64(s.max_incident_seconds),
                Style::Config
            )
        ),
    );
    out.push_str("</table>");
    for t in &s.targets {
        let _ = write!(
            out,
            "<section class=\"target\" data-target=\"{}\"><h2>{}</h2><p class=\"figures\">{}; {}</p>",
            escape(&t.target),
            escape(&t.target),
            escape(&plural(t.incident_count, "incident")),
            escape(&p95_line(t))
        );
        out.push_str(&timeline(s, t));
        if !t.incidents.is_empty() {
            out.push_str("<table class=\"incidents\"><tr><th>Kind</th><th>Start</th><th>Detected</th><th>Recovered</th><th>Degraded</th><th>Peak</th><th>Outcome</th></tr>");
            for l in &t.incidents {
                let _ = write!(
                    out,
                    "<tr class=\"incident\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                    escape(&l.kind),
                    stamp(l.started_at),
                    clock(l.detected_at),
                    l.recovered_at.map_or_else(|| "still open".to_string(), clock),
                    spaced(l.degraded_seconds),
                    latency(l.peak_latency_seconds),
                    escape(&l.outcome),
                    escape(&outcome(l))
                );
            }
            out.push_str("</table>");
        }
        out.push_str("</section>");
    }
    if !s.still_open.is_empty() {
        out.push_str("<h2>Still open</h2><ul id=\"still-open\">");
        for o in &s.still_open {
            let _ = write!(
                out,
                "<li>{} ({} since {})</li>",
                escape(&o.target),
                escape(&o.kind),
                stamp(o.started_at)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::summary::tests::sample;

    #[test]
    fn the_text_names_every_figure() {
        let t = text(&sample());
        let expected = [
            "Change window \"batch-1\" ended on cas01: 3 incidents (1 held, 2 beyond tolerance), 1 still open",
            "Span: 2026-12-05 22:00:00Z to 2026-12-06 01:00:00Z (3h, closed early)",
            "Note: 30,000 accounts <batch 1>",
            "Covers: owa*, imap; tolerance 10x, max_down 5m, max_incident 30m",
            "owa: 2 incidents, degraded 12m 3s, worst peak 4.0 s; p95 381 ms inside vs 180 ms the hour before (200 probes, 0 failed)",
            "  slow from 2026-12-05 22:14:05Z, detected 22:14:35Z, recovered 22:24:08Z; 10m 3s degraded, peak 600 ms; held",
            "  slow from 2026-12-05 23:00:00Z, detected 23:00:30Z, recovered 23:02:00Z; 2m degraded, peak 4.0 s; beyond tolerance (latency 20x the baseline, tolerance 10x)",
            "imap: 1 incident, degraded 10m, worst peak -; p95 50 ms inside vs - the hour before (200 probes, 4 failed)",
            "owa-ext: 0 incidents; no probes inside the window",
            "Still open at the end (paging normally now): imap (down since 2026-12-06 00:50:00Z)",
        ];
        for line in expected {
            assert!(t.lines().any(|l| l == line), "{line:?} not in\n{t}");
        }
    }

    #[test]
    fn the_page_escapes_outside_text_and_loads_nothing() {
        let mut s = sample();
        s.targets[0].target = "<script>x</script>".into();
        let page = html(&s);
        assert!(page.contains("30,000 accounts &lt;batch 1&gt;"));
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!page.contains("<script"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert_eq!(page.matches("class=\"incident\"").count(), 3);
    }
}
