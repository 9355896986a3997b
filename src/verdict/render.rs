//! A [`Report`] as text (a terminal), Markdown (a ticket or a wiki), JSON
//! (a test controller) or HTML: one self-contained file, no scripts, fonts
//! or links to fetch, with the verdict banner, the latency of every target
//! over the run as inline SVG with the phases as bands and the incidents as
//! spans, and the tables. Names and notes come from outside: the text
//! forms pass them through `report::terminal_text`, HTML escapes them.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{seconds, Percentiles, Report, TargetTimeline};
use crate::html::escape;
use crate::report::{table, terminal_text, Width};

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned plain text.
    Text,
    /// GitHub-flavoured Markdown tables.
    Markdown,
    /// The [`Report`] as JSON.
    Json,
    /// One self-contained HTML page.
    Html,
}

/// Writes the report in `format`.
pub fn render(r: &Report, format: Format) -> String {
    match format {
        Format::Text => text(r, false),
        Format::Markdown => text(r, true),
        Format::Json => serde_json::to_string_pretty(r).expect("a report serializes") + "\n",
        Format::Html => html(r),
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn opt(v: Option<f64>) -> String {
    v.map(seconds).unwrap_or_else(|| "-".into())
}

fn pct(p: Option<Percentiles>, f: fn(&Percentiles) -> f64) -> String {
    opt(p.as_ref().map(f))
}

fn ratio(v: Option<f64>) -> String {
    v.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "-".into())
}

fn share(v: Option<f64>) -> String {
    v.map(|p| format!("{p:.2}%")).unwrap_or_else(|| "-".into())
}

/// A section of the report: its title, column headers and rows.
type Section = (&'static str, Vec<&'static str>, Vec<Vec<String>>);

/// The sections, shared by text, Markdown and HTML.
fn sections(r: &Report) -> Vec<Section> {
    let phases = r
        .phases
        .iter()
        .map(|p| {
            let end = p.end.unwrap_or(r.end);
            vec![
                p.name.clone(),
                time(p.start),
                p.end.map(time).unwrap_or_else(|| "(running)".into()),
                seconds((end - p.start).num_milliseconds().max(0) as f64 / 1000.0),
                p.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let slos = r
        .slos
        .iter()
        .map(|s| {
            vec![
                match s.pass {
                    Some(true) => "PASS".into(),
                    Some(false) => "FAIL".into(),
                    None => "NO DATA".into(),
                },
                s.name.clone(),
                s.objective.clone(),
                s.measured.clone(),
            ]
        })
        .collect();
    let targets = r
        .targets
        .iter()
        .map(|t| {
            vec![
                t.server.clone(),
                t.target.clone(),
                t.phase.clone(),
                t.probes.to_string(),
                share(t.success_percent),
                pct(t.total, |p| p.p50),
                pct(t.total, |p| p.p95),
                pct(t.total, |p| p.p99),
                ratio(t.p95_vs_first),
                match (&t.slowest_step, t.slowest) {
                    (Some(step), Some(p)) => format!(
                        "{step} {} / {} / {}",
                        seconds(p.p50),
                        seconds(p.p95),
                        seconds(p.p99)
                    ),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    let incidents = r
        .incidents
        .iter()
        .map(|i| {
            vec![
                i.server.clone(),
                i.target.clone(),
                i.kind.clone(),
                i.phase.clone().unwrap_or_else(|| "-".into()),
                time(i.started_at),
                time(i.detected_at),
                i.recovered_at.map(time).unwrap_or_else(|| "(open)".into()),
                seconds(i.duration(r.end).num_milliseconds().max(0) as f64 / 1000.0),
                opt(i.peak_seconds),
                i.worst_step.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let host = r
        .host
        .iter()
        .map(|h| {
            let l = &h.load;
            let ratio = |v: Option<f64>| {
                v.map(|v| format!("{:.1}%", v * 100.0))
                    .unwrap_or_else(|| "-".into())
            };
            vec![
                h.server.clone(),
                h.phase.clone(),
                ratio(l.cpu_peak),
                l.memory_available_min
                    .map(|b| format!("{:.0} MiB", b as f64 / 1_048_576.0))
                    .unwrap_or_else(|| "-".into()),
                ratio(l.psi_cpu_peak),
                ratio(l.psi_memory_peak),
                ratio(l.psi_io_peak),
                l.load1_peak
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "-".into()),
                l.tcp_established_peak
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    vec![
        (
            "Phases",
            vec!["phase", "start", "end", "length", "note"],
            phases,
        ),
        (
            "Objectives",
            vec!["result", "slo", "objective", "measured (worst)"],
            slos,
        ),
        (
            "Targets per phase",
            vec![
                "server",
                "target",
                "phase",
                "probes",
                "success",
                "p50",
                "p95",
                "p99",
                "p95 vs first",
                "slowest step p50 / p95 / p99",
            ],
            targets,
        ),
        (
            "Incidents",
            vec![
                "server",
                "target",
                "kind",
                "phase",
                "started",
                "detected",
                "recovered",
                "duration",
                "peak",
                "worst step",
            ],
            incidents,
        ),
        (
            "Host load per phase",
            vec![
                "server",
                "phase",
                "cpu peak",
                "memory available (lowest)",
                "psi cpu",
                "psi memory",
                "psi io",
                "load1 peak",
                "tcp established peak",
            ],
            host,
        ),
    ]
}

fn text(r: &Report, markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        let _ = writeln!(
            out,
            "# Soak run {}\n\n**{}**\n",
            md(&r.run),
            md(&r.verdict.line)
        );
        for note in &r.notes {
            let _ = writeln!(out, "_{}_\n", md(note));
        }
    } else {
        let _ = writeln!(
            out,
            "Soak run {:?}: {}",
            terminal_text(&r.run),
            terminal_text(&r.verdict.line)
        );
        for note in &r.notes {
            let _ = writeln!(out, "  ({})", terminal_text(note));
        }
        out.push('\n');
    }
    for (title, header, rows) in sections(r) {
        if markdown {
            let _ = writeln!(out, "## {title}\n");
            if rows.is_empty() {
                out.push_str("(none)\n\n");
                continue;
            }
            let _ = writeln!(out, "| {} |", header.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
            for row in rows {
                let cells: Vec<String> = row.iter().map(|c| md(c)).collect();
                let _ = writeln!(out, "| {} |", cells.join(" | "));
            }
            out.push('\n');
        } else {
            let _ = writeln!(out, "{title}:");
            if rows.is_empty() {
                out.push_str("  (none)\n\n");
                continue;
            }
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|row| row.iter().map(|c| terminal_text(c).into_owned()).collect())
                .collect();
            for line in table(&header, &rows, Width::Chars).lines() {
                let _ = writeln!(out, "  {line}");
            }
            out.push('\n');
        }
    }
    out
}

/// Markdown-safe cell text: no pipes, no HTML, no line breaks.
fn md(text: &str) -> String {
    terminal_text(text)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;font-variant-numeric:tabular-nums}\
th{background:#f2f2f2}.verdict{padding:.75em 1em;font-size:1.3em;font-weight:bold;border-radius:4px}\
.pass{background:#d9f2d9;color:#14521b}.fail{background:#f8d7d7;color:#7a1010}\
.PASS{color:#14521b;font-weight:bold}.FAIL{color:#7a1010;font-weight:bold}\
svg{background:#fff;border:1px solid #ddd;margin:.25em 0 1em}\
.band{fill:#e8eef8}.band.odd{fill:#f4f7fc}.incident{fill:#f6b2b2;opacity:.6}\
.line{fill:none;stroke:#1f5fbf;stroke-width:1.5}.axis{font-size:11px;fill:#555}";

fn html(r: &Report) -> String {
    let mut out = String::new();
    let class = if r.verdict.pass { "pass" } else { "fail" };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Soak run {run}: {state}</title><style>{STYLE}</style></head><body>\n\
         <h1>Soak run {run}</h1>\n<p class=\"verdict {class}\" id=\"verdict\">{line}</p>\n",
        run = escape(&r.run),
        state = if r.verdict.pass { "PASS" } else { "FAIL" },
        line = escape(&r.verdict.line),
    );
    for note in &r.notes {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(note));
    }
    let _ = writeln!(out, "<h2>Latency over the run</h2>");
    for t in &r.timelines {
        chart(&mut out, r, t);
    }
    for (title, header, rows) in sections(r) {
        let _ = writeln!(out, "<h2>{}</h2>", escape(title));
        if rows.is_empty() {
            out.push_str("<p>(none)</p>\n");
            continue;
        }
        out.push_str("<table><thead><tr>");
        for h in &header {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(h));
        }
        out.push_str("</tr></thead><tbody>\n");
        for row in rows {
            out.push_str("<tr>");
            for (k, cell) in row.iter().enumerate() {
                if title == "Objectives" && k == 0 {
                    let _ = write!(out, "<td class=\"{0}\">{0}</td>", escape(cell));
                } else {
                    let _ = write!(out, "<td>{}</td>", escape(cell));
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table>\n");
    }
    let _ = writeln!(
        out,
        "<p><small>Made by mailpulse at the end of the run ({}).</small></p></body></html>",
        escape(&time(r.end))
    );
    out
}

/// One target's latency over the run: phase bands, incident spans and the
/// mean latency per point as a line, with the worst as a faint line.
fn chart(out: &mut String, r: &Report, t: &TargetTimeline) {
    const W: f64 = 900.0;
    const H: f64 = 180.0;
    const LEFT: f64 = 60.0;
    const BOTTOM: f64 = 20.0;
    let Some(start) = r.phases.first().map(|p| p.start.timestamp() as f64) else {
        return;
    };
    let end = (r.end.timestamp() as f64).max(start + 1.0);
    let x =
        |at: f64| LEFT + (at - start).clamp(0.0, end - start) / (end - start) * (W - LEFT - 5.0);
    let top = t
        .points
        .iter()
        .filter_map(|p| p.mean())
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.15;
    let y = |v: f64| (H - BOTTOM) - (v / top).min(1.0) * (H - BOTTOM - 10.0);
    let _ = write!(
        out,
        "<figure><figcaption>{} on {}</figcaption>\
         <svg role=\"img\" aria-label=\"latency of {} over the run\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" class=\"chart\">",
        escape(&t.target),
        escape(&t.server),
        escape(&t.target)
    );
    for (k, p) in r.phases.iter().enumerate() {
        let x0 = x(p.start.timestamp() as f64);
        let x1 = x(p.end.unwrap_or(r.end).timestamp() as f64);
        let _ = write!(
            out,
            "<rect class=\"band{}\" data-phase=\"{}\" x=\"{x0:.1}\" y=\"0\" width=\"{:.1}\" height=\"{:.1}\"><title>phase {}</title></rect>\
             <text class=\"axis\" x=\"{:.1}\" y=\"12\">{}</text>",
            if k % 2 == 1 { " odd" } else { "" },
            escape(&p.name),
            (x1 - x0).max(0.5),
            H - BOTTOM,
            escape(&p.name),
            x0 + 3.0,
            escape(&p.name)
        );
    }
    for i in r
        .incidents
        .iter()
        .filter(|i| i.target == t.target && i.server == t.server)
    {
        let x0 = x(i.started_at.timestamp() as f64);
        let x1 = x(i.recovered_at.unwrap_or(r.end).timestamp() as f64);
        let _ = write!(
            out,
            "<rect class=\"incident\" data-incident=\"{}\" x=\"{x0:.1}\" y=\"0\" width=\"{:.1}\" height=\"{:.1}\"><title>{} incident from {}</title></rect>",
            escape(&i.kind),
            (x1 - x0).max(1.0),
            H - BOTTOM,
            escape(&i.kind),
            escape(&time(i.started_at))
        );
    }
    let path: Vec<String> = t
        .points
        .iter()
        .filter_map(|p| {
            p.mean()
                .map(|m| format!("{:.1},{:.1}", x(p.at as f64), y(m)))
        })
        .collect();
    if !path.is_empty() {
        let _ = write!(
            out,
            "<polyline class=\"line\" points=\"{}\"/>",
            path.join(" ")
        );
    }
    let _ = write!(
        out,
        "<text class=\"axis\" x=\"2\" y=\"{:.1}\">{}</text><text class=\"axis\" x=\"2\" y=\"{:.1}\">0</text>\
         <text class=\"axis\" x=\"{LEFT}\" y=\"{:.1}\">{}</text><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></svg></figure>",
        y(top / 1.15) + 4.0,
        escape(&seconds(top / 1.15)),
        H - BOTTOM,
        H - 5.0,
        escape(&time(r.phases[0].start)),
        W - 5.0,
        H - 5.0,
        escape(&time(r.end))
    );
    out.push('\n');
}
