//! The status pages as server-rendered HTML: `/` (the agent, its targets,
//! incidents and host load) and `/incidents/ID` (one incident's timeline,
//! steps and notifications). Pure: they render the views of [`super::json`].
//!
//! No external assets (styles inline, charts as inline SVG), no script: the
//! page refreshes itself (`<meta http-equiv="refresh">`). Every piece of
//! outside text (target names, errors, server replies, receiver names) goes
//! through [`crate::html::escape`]. State is shown as text as well as colour.

use std::fmt::Write as _;
use std::time::Duration;

use super::json::{IncidentDetail, IncidentView, SampleView, StatusView, StepView, TargetView};
use crate::html::escape;
use crate::human::{self, Style};

/// Seconds between the page's own refreshes.
pub const REFRESH_SECONDS: u32 = 5;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1rem 2rem;color:#1a1a1a;background:#fff}\
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin-top:1.5rem}\
table{border-collapse:collapse;width:100%;font-size:.9rem}\
th,td{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:middle}\
thead th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.state{display:inline-block;padding:.1rem .5rem;border-radius:.6rem;font-weight:600;color:#fff}\
.ok{background:#1e7d32}.slow{background:#b35c00}.down{background:#b71c1c}\
.muted{color:#666}.err{color:#b71c1c}svg{vertical-align:middle}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}";

fn head(out: &mut String, title: &str, refresh: bool) {
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    if refresh {
        let _ = write!(
            out,
            "<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">"
        );
    }
    let _ = write!(
        out,
        "<title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
}

fn latency(seconds: f64) -> String {
    human::duration(Duration::from_secs_f64(seconds.max(0.0)), Style::Latency)
}

fn opt_latency(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "–".to_string(), latency)
}

fn span(seconds: f64) -> String {
    human::duration(Duration::from_secs_f64(seconds.max(0.0)), Style::Spaced)
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "–".into(), |r| format!("{:.1}%", r * 100.0))
}

/// A time as `2026-12-03 07:30:05Z` (RFC 3339 in, seconds kept).
fn when(rfc3339: &str) -> String {
    let t = rfc3339.replacen('T', " ", 1);
    match t.find('.') {
        Some(dot) => format!("{}Z", &t[..dot]),
        None => t,
    }
}

fn state_badge(out: &mut String, state: &str) {
    let symbol = match state {
        "ok" => "✓",
        "slow" => "◔",
        _ => "✕",
    };
    let _ = write!(
        out,
        "<span class=\"state {state}\"><span aria-hidden=\"true\">{symbol} </span>{state}</span>"
    );
}

/// The last hour's per-minute worst latency (failed minutes at the top, in
/// red) as a small inline SVG.
fn sparkline(out: &mut String, t: &TargetView) {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let peak = t
        .last_hour
        .iter()
        .flatten()
        .filter_map(|m| m.max_seconds)
        .fold(t.slow_line_seconds.unwrap_or(0.0), f64::max);
    if peak <= 0.0 {
        out.push_str("<span class=\"muted\">no data</span>");
        return;
    }
    let step = W / (t.last_hour.len().max(2) - 1) as f64;
    let y = |s: f64| H - 1.0 - (s / peak) * (H - 2.0);
    let _ = write!(
        out,
        "<svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"latency over the last hour, peak {}\">",
        latency(peak)
    );
    let mut path = String::new();
    for (i, m) in t.last_hour.iter().enumerate() {
        let Some(m) = m else { continue };
        let x = i as f64 * step;
        if let Some(s) = m.max_seconds {
            let _ = write!(
                path,
                "{}{x:.1},{:.1} ",
                if path.is_empty() { "M" } else { "L" },
                y(s)
            );
        }
        if m.ok < m.probes {
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"0\" width=\"2\" height=\"{H}\" fill=\"#e57373\"/>",
                x - 1.0
            );
        }
    }
    if let Some(line) = t.slow_line_seconds {
        let _ = write!(
            out,
            "<line x1=\"0\" x2=\"{W}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"#b35c00\" stroke-dasharray=\"2,2\" stroke-width=\"1\"/>",
            y(line)
        );
    }
    let _ = write!(
        out,
        "<path d=\"{path}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"1.5\"/></svg>"
    );
}

fn step_text(s: &Option<StepView>) -> String {
    s.as_ref().map_or_else(
        || "–".into(),
        |s| format!("{} {}", s.step, latency(s.seconds)),
    )
}

fn targets_table(out: &mut String, v: &StatusView) {
    out.push_str("<section aria-labelledby=\"targets\"><h2 id=\"targets\">Targets</h2>");
    if v.targets.is_empty() {
        out.push_str("<p>No target has been probed yet.</p></section>");
        return;
    }
    out.push_str("<table><thead><tr><th scope=\"col\">Target</th><th scope=\"col\">Kind</th><th scope=\"col\">State</th><th scope=\"col\">Latency</th><th scope=\"col\">Baseline</th><th scope=\"col\">Slowest step</th><th scope=\"col\">Last hour</th><th scope=\"col\">Success 1 h</th><th scope=\"col\">Success 24 h</th><th scope=\"col\">TLS days left</th></tr></thead><tbody>");
    for t in &v.targets {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>",
            escape(&t.name),
            t.kind
        );
        state_badge(out, t.state);
        if let Some(id) = &t.open_incident {
            let _ = write!(out, " <a href=\"/incidents/{id}\">incident</a>");
        }
        out.push_str("</td><td class=\"n\">");
        match (t.last_ok, t.latency_seconds) {
            (Some(false), _) => {
                let _ = write!(
                    out,
                    "<span class=\"err\">failed: {}</span>",
                    escape(t.last_error.as_deref().unwrap_or(""))
                );
            }
            (_, l) => out.push_str(&opt_latency(l)),
        }
        let _ = write!(
            out,
            "</td><td class=\"n\">{}</td><td>{}</td><td>",
            opt_latency(t.baseline_seconds),
            step_text(&t.slowest_step)
        );
        sparkline(out, t);
        let _ = write!(
            out,
            "</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            percent(t.success_ratio_1h),
            percent(t.success_ratio_24h),
            t.tls_days_left
                .map_or_else(|| "–".into(), |d| d.to_string())
        );
    }
    out.push_str("</tbody></table></section>");
}

/// The incident table: open ones first (they come first in `incidents`).
fn incidents_table(out: &mut String, caption: &str, incidents: &[&IncidentView]) {
    let _ = write!(
        out,
        "<section aria-labelledby=\"incidents\"><h2 id=\"incidents\">{caption}</h2>"
    );
    if incidents.is_empty() {
        out.push_str("<p>No incidents.</p></section>");
        return;
    }
    // The soak run and change window columns show only when some row has one.
    let soak = incidents.iter().any(|i| i.run.is_some());
    let windows = incidents.iter().any(|i| i.window.is_some());
    out.push_str("<table><thead><tr><th scope=\"col\">Target</th><th scope=\"col\">State</th><th scope=\"col\">Started</th><th scope=\"col\">Detected</th><th scope=\"col\">Recovered</th><th scope=\"col\">Duration</th><th scope=\"col\">Peak</th><th scope=\"col\">Baseline</th><th scope=\"col\">Worst step</th>");
    if soak {
        out.push_str("<th scope=\"col\">Soak run / phase</th>");
    }
    if windows {
        out.push_str("<th scope=\"col\">Change window</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for i in incidents {
        let _ = write!(
            out,
            "<tr><th scope=\"row\"><a href=\"/incidents/{}\">{}</a></th><td>",
            i.id,
            escape(&i.target)
        );
        if i.open {
            state_badge(out, i.kind);
            out.push_str(" open");
        } else {
            let _ = write!(
                out,
                "{} {}",
                i.kind,
                i.outcome.unwrap_or("recovered").replace('_', " ")
            );
        }
        let _ = write!(
            out,
            "</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td>",
            when(&i.started_at),
            when(&i.detected_at),
            i.recovered_at.as_deref().map_or_else(|| "–".into(), when),
            span(i.duration_seconds),
            opt_latency(i.peak_seconds),
            opt_latency(i.baseline_seconds),
            escape(i.worst_step.as_deref().unwrap_or("–"))
        );
        if soak {
            let _ = match (&i.run, &i.phase) {
                (Some(run), Some(phase)) => {
                    write!(out, "<td>{} / {}</td>", escape(run), escape(phase))
                }
                (Some(run), None) => write!(out, "<td>{}</td>", escape(run)),
                _ => write!(out, "<td>–</td>"),
            };
        }
        if windows {
            let _ = write!(
                out,
                "<td>{}</td>",
                escape(i.window.as_deref().unwrap_or("–"))
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></section>");
}

fn host(out: &mut String, v: &StatusView) {
    out.push_str("<section aria-labelledby=\"host\"><h2 id=\"host\">Host</h2>");
    let lag = opt_latency(v.schedule_lag_seconds);
    let Some(h) = &v.host else {
        let _ = write!(
            out,
            "<p>Host collection is off. Schedule lag (latest probes, worst): {lag}</p></section>"
        );
        return;
    };
    let opt = |x: Option<f64>, f: &dyn Fn(f64) -> String| x.map_or_else(|| "–".into(), f);
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let mem = match (h.memory_available_bytes, h.memory_total_bytes) {
        (Some(a), Some(t)) => format!(
            "{:.0} MiB of {:.0} MiB",
            a as f64 / 1048576.0,
            t as f64 / 1048576.0
        ),
        (Some(a), None) => format!("{:.0} MiB", a as f64 / 1048576.0),
        _ => "–".into(),
    };
    let _ = write!(
        out,
        "<dl><dt>CPU busy</dt><dd>{}</dd><dt>Memory available</dt><dd>{mem}</dd>\
         <dt>Pressure (some, 10 s): CPU / memory / IO</dt><dd>{} / {} / {}</dd>\
         <dt>Load (1 min)</dt><dd>{}</dd><dt>TCP established</dt><dd>{}</dd>\
         <dt>Schedule lag (latest probes, worst)</dt><dd>{lag}</dd></dl></section>",
        opt(h.cpu_ratio, &pct),
        opt(h.psi_cpu_some_ratio, &pct),
        opt(h.psi_memory_some_ratio, &pct),
        opt(h.psi_io_some_ratio, &pct),
        opt(h.load1, &|l| format!("{l:.2}")),
        h.tcp_established
            .map_or_else(|| "–".into(), |n| n.to_string()),
    );
}

/// The page `/`: the agent, its targets, open and recent incidents (at
/// most 50 besides the open ones), host load and schedule lag.
pub fn status_page(v: &StatusView, recent: &[IncidentView]) -> String {
    let mut out = String::with_capacity(16 * 1024 + v.targets.len() * 2048);
    head(&mut out, &format!("mailpulse · {}", v.instance), true);
    let _ = write!(
        out,
        "<header><h1>mailpulse status: {}</h1><p>version {} · up {} (since {}) · configuration: ",
        escape(&v.instance),
        escape(&v.version),
        span(v.uptime_seconds as f64),
        when(&v.started_at)
    );
    match &v.reload {
        None => out.push_str("as loaded at start"),
        Some(r) if r.ok => {
            let _ = write!(out, "reloaded at {}", when(&r.at));
        }
        Some(r) => {
            let _ = write!(
                out,
                "<span class=\"err\">last reload rejected at {}: {}</span> (the previous one runs)",
                when(&r.at),
                escape(r.error.as_deref().unwrap_or(""))
            );
        }
    }
    out.push_str("</p></header><main>");
    targets_table(&mut out, v);
    let open_ids: Vec<&str> = v.open_incidents.iter().map(|i| i.id.as_str()).collect();
    let rows: Vec<&IncidentView> = v
        .open_incidents
        .iter()
        .chain(
            recent
                .iter()
                .filter(|i| !open_ids.contains(&i.id.as_str()))
                .take(50),
        )
        .collect();
    incidents_table(&mut out, "Incidents (open first, then the last 50)", &rows);
    host(&mut out, v);
    let _ = write!(
        out,
        "</main><footer><p class=\"muted\">Generated {} · refreshes every {REFRESH_SECONDS} s · \
         <a href=\"/api/v1/status\">JSON</a> · <a href=\"/metrics\">metrics</a> · <a href=\"/healthz\">health</a></p></footer></body></html>",
        when(&v.generated_at)
    );
    out.push('\n');
    out
}

/// Seconds since the epoch of an RFC 3339 time (0 if it does not parse).
fn epoch(rfc3339: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp_millis() as f64 / 1e3)
        .unwrap_or(0.0)
}

/// The incident's timeline: its probes' latencies (failures as red marks),
/// the baseline and the slow line, the incident shaded.
fn timeline(out: &mut String, d: &IncidentDetail) {
    const W: f64 = 720.0;
    const H: f64 = 200.0;
    const PAD: f64 = 40.0;
    let samples: &[SampleView] = &d.samples;
    if samples.len() < 2 {
        out.push_str(
            "<p>This agent no longer keeps the probes of that time (it keeps the last hour).</p>",
        );
        return;
    }
    let t0 = epoch(&samples[0].at);
    let t1 = epoch(&samples[samples.len() - 1].at).max(t0 + 1.0);
    let i = &d.incident;
    let peak = samples
        .iter()
        .filter_map(|s| s.latency_seconds)
        .chain(d.slow_line_seconds)
        .chain(i.baseline_seconds)
        .fold(0.0, f64::max)
        .max(0.001);
    let x = |t: f64| PAD + (t - t0) / (t1 - t0) * (W - PAD - 10.0);
    let y = |s: f64| H - 20.0 - s / peak * (H - 30.0);
    let _ = write!(
        out,
        "<figure><svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"latency of each probe around the incident, with baseline and slow line\">"
    );
    let start = epoch(&i.started_at).clamp(t0, t1);
    let end = i.recovered_at.as_deref().map_or(t1, epoch).clamp(t0, t1);
    let _ = write!(
        out,
        "<rect x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{}\" fill=\"#fff3e0\"/>",
        x(start),
        (x(end) - x(start)).max(1.0),
        H - 20.0
    );
    let mut line = |label: &str, s: Option<f64>, colour: &str| {
        if let Some(s) = s {
            let _ = write!(
                out,
                "<line x1=\"{PAD}\" x2=\"{W}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"{colour}\" stroke-dasharray=\"4,3\"/><text x=\"2\" y=\"{1:.1}\" font-size=\"10\" fill=\"{colour}\">{label}</text>",
                y(s),
                y(s) + 3.0
            );
        }
    };
    line("baseline", i.baseline_seconds, "#1e7d32");
    line("slow", d.slow_line_seconds, "#b35c00");
    let mut path = String::new();
    for s in samples {
        let sx = x(epoch(&s.at));
        match s.latency_seconds {
            Some(l) => {
                let _ = write!(
                    path,
                    "{}{sx:.1},{:.1} ",
                    if path.is_empty() { "M" } else { "L" },
                    y(l)
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<rect x=\"{:.1}\" y=\"{}\" width=\"2\" height=\"8\" fill=\"#b71c1c\"/>",
                    sx - 1.0,
                    H - 18.0
                );
            }
        }
    }
    let _ = write!(
        out,
        "<path d=\"{path}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"1.5\"/>\
         <text x=\"{PAD}\" y=\"{}\" font-size=\"10\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>\
         <text x=\"2\" y=\"12\" font-size=\"10\">{}</text></svg>",
        H - 2.0,
        when(&samples[0].at),
        W - 10.0,
        H - 2.0,
        when(&samples[samples.len() - 1].at),
        latency(peak)
    );
    out.push_str("<figcaption>Latency of each probe (blue; failures as red marks at the bottom), baseline (green) and slow line (orange); the incident is shaded.</figcaption></figure>");
}

fn steps_table(out: &mut String, caption: &str, steps: Option<&Vec<StepView>>) {
    let _ = write!(out, "<h3>{caption}</h3>");
    match steps {
        None => out.push_str("<p>Not kept: this agent did not see it since it started, or its probes have no steps.</p>"),
        Some(steps) => {
            out.push_str("<table><thead><tr><th scope=\"col\">Step</th><th scope=\"col\">Duration</th></tr></thead><tbody>");
            for s in steps {
                let _ = write!(
                    out,
                    "<tr><th scope=\"row\">{}</th><td class=\"n\">{}</td></tr>",
                    s.step,
                    latency(s.seconds)
                );
            }
            out.push_str("</tbody></table>");
        }
    }
}

/// The page `/incidents/ID`.
pub fn incident_page(instance: &str, d: &IncidentDetail) -> String {
    let i = &d.incident;
    let mut out = String::with_capacity(32 * 1024);
    head(
        &mut out,
        &format!("mailpulse · {instance} · incident of {}", i.target),
        i.open,
    );
    let _ = write!(
        out,
        "<header><p><a href=\"/\">← status of {}</a></p><h1>Incident of {}: ",
        escape(instance),
        escape(&i.target)
    );
    state_badge(&mut out, i.kind);
    let _ = write!(
        out,
        " {}</h1></header><main><dl><dt>Started</dt><dd>{}</dd><dt>Detected</dt><dd>{}</dd>",
        if i.open { "open" } else { "over" },
        when(&i.started_at),
        when(&i.detected_at)
    );
    if let Some(e) = &i.escalated_at {
        let _ = write!(out, "<dt>Escalated to down</dt><dd>{}</dd>", when(e));
    }
    let _ = write!(
        out,
        "<dt>Recovered</dt><dd>{}</dd><dt>Duration</dt><dd>{}{}</dd><dt>Peak</dt><dd>{}</dd><dt>Baseline at onset</dt><dd>{}</dd><dt>Worst step</dt><dd>{}</dd><dt>Slow / failed probes</dt><dd>{} / {}</dd>",
        i.recovered_at.as_deref().map_or_else(|| "not yet".into(), when),
        span(i.duration_seconds),
        if i.open { " so far" } else { "" },
        opt_latency(i.peak_seconds),
        opt_latency(i.baseline_seconds),
        escape(i.worst_step.as_deref().unwrap_or("–")),
        i.slow_probes,
        i.failed_probes
    );
    if let Some(o) = i.outcome {
        let _ = write!(out, "<dt>Outcome</dt><dd>{}</dd>", o.replace('_', " "));
    }
    out.push_str("</dl><section aria-labelledby=\"timeline\"><h2 id=\"timeline\">Timeline</h2>");
    timeline(&mut out, d);
    out.push_str("</section><section aria-labelledby=\"steps\"><h2 id=\"steps\">Steps</h2>");
    steps_table(
        &mut out,
        "At onset (the probe that confirmed it)",
        d.onset_steps.as_ref(),
    );
    steps_table(
        &mut out,
        "At peak (its slowest successful probe)",
        d.peak_steps.as_ref(),
    );
    out.push_str("</section><section aria-labelledby=\"notifications\"><h2 id=\"notifications\">Notifications</h2>");
    if d.notifications.is_empty() {
        out.push_str("<p>No notification of it in the outbox.</p>");
    } else {
        out.push_str("<table><thead><tr><th scope=\"col\">Receiver</th><th scope=\"col\">Message</th><th scope=\"col\">Outcome</th><th scope=\"col\">Queued</th><th scope=\"col\">Done</th><th scope=\"col\">Failed attempts</th><th scope=\"col\">Last error</th></tr></thead><tbody>");
        for n in &d.notifications {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"err\">{}</td></tr>",
                escape(&n.receiver),
                escape(&n.status),
                if n.reminder { " (reminder)" } else { "" },
                escape(&n.outcome),
                when(&n.queued_at),
                n.done_at.as_deref().map_or_else(
                    || n.next_attempt_at.as_deref().map_or("–".into(), |t| format!("next try {}", when(t))),
                    when
                ),
                n.attempts,
                escape(n.last_error.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</tbody></table>");
    }
    let _ = write!(
        out,
        "</section></main><footer><p class=\"muted\"><a href=\"/api/v1/incidents/{}\">JSON</a></p></footer></body></html>",
        i.id
    );
    out.push('\n');
    out
}

/// A plain page for an unknown incident.
pub fn not_found_page(what: &str) -> String {
    let mut out = String::new();
    head(&mut out, "mailpulse · not found", false);
    let _ = write!(
        out,
        "<main><h1>Not found</h1><p>{}</p><p><a href=\"/\">status</a></p></main></body></html>",
        escape(what)
    );
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Incident, SlowdownSettings, State};
    use crate::sample::{Phase, Sample};
    use crate::status::board::{Board, Judged};
    use chrono::{DateTime, Utc};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    const HOSTILE: &str = "<script>alert(1)</script>";

    fn incident(started: i64, recovered: Option<i64>) -> Incident {
        serde_json::from_value(serde_json::json!({
            "kind": "slow", "started_at": at(started), "detected_at": at(started + 2),
            "recovered_at": recovered.map(at), "closed_at": recovered.map(at),
            "peak_latency": {"secs": 2, "nanos": 0}, "baseline_at_onset": {"secs": 0, "nanos": 100_000_000},
            "worst_phase": "first_byte", "slow_count": 3, "failed_count": 0
        }))
        .unwrap()
    }

    fn board() -> Board {
        let settings = SlowdownSettings::default();
        let mut b = Board::new("cas<01>", at(0));
        let open = incident(50, None);
        for i in 0..100 {
            let mut s = Sample::http_ok(at(i), at(i), if i > 50 { 2000 } else { 100 });
            s.target = HOSTILE.into();
            s.phases
                .insert(0, (Phase::FirstByte, Duration::from_millis(80)));
            let slow = i > 52;
            b.record(
                &s,
                Judged {
                    state: if slow {
                        State::Degraded
                    } else {
                        State::Healthy
                    },
                    baseline: Some(Duration::from_millis(100)),
                    settings: &settings,
                    open: slow.then_some(&open),
                    event: i == 53,
                },
            );
        }
        let mut s = Sample::http_ok(at(99), at(99), 30);
        s.target = "ok-target".into();
        s.failure = Some(crate::sample::Failure {
            reason: crate::sample::FailureReason::Protocol,
            phase: Phase::Banner,
            message: "banner \"<img src=x onerror=alert(2)>\"".into(),
        });
        b.record(
            &s,
            Judged {
                state: State::Healthy,
                baseline: None,
                settings: &settings,
                open: None,
                event: false,
            },
        );
        b
    }

    /// The page has no raw `<script` or `<img` anywhere: all outside text is
    /// escaped, and the page itself carries no script.
    fn assert_inert(page: &str) {
        assert!(!page.to_ascii_lowercase().contains("<script"), "{page}");
        assert!(!page.to_ascii_lowercase().contains("<img"), "{page}");
    }

    #[test]
    fn a_rejected_reload_is_shown_with_its_error_escaped() {
        let mut b = board();
        b.record_reload(at(90), Some("c.toml:3:1: target[0].name: bad <b>".into()));
        let page = status_page(&StatusView::new(&b, at(100)), &[]);
        assert!(page.contains("last reload rejected at"), "{page}");
        assert!(page.contains("bad &lt;b&gt;"), "{page}");
        assert_inert(&page);
    }

    #[test]
    fn the_status_page_escapes_outside_text_and_is_accessible() {
        let b = board();
        let view = StatusView::new(&b, at(100));
        let recent = vec![IncidentView::new(HOSTILE, &incident(10, Some(20)), at(100))];
        let page = status_page(&view, &recent);
        assert_inert(&page);
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;img src=x onerror=alert(2)&gt;"));
        assert!(page.contains("cas&lt;01&gt;"));
        assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert_eq!(page.matches("<h1").count(), 1);
        assert!(page.contains("<th scope=\"col\">State</th>"));
        assert!(page.contains("<th scope=\"row\">"));
        // State as text beside its colour; the slow target sorts first.
        let slow = page.find("class=\"state slow\"").unwrap();
        assert!(page[slow..]
            .starts_with("class=\"state slow\"><span aria-hidden=\"true\">◔ </span>slow</span>"));
        assert!(slow < page.find("class=\"state ok\"").unwrap());
        assert!(page.contains("http-equiv=\"refresh\""));
        assert!(page.contains("<svg"));
        // The open incident is listed first, the closed one after it.
        let open_row = page.find(" open</td>").unwrap();
        let closed_row = page.find("slow recovered").unwrap();
        assert!(open_row < closed_row);
    }

    /// Incidents of a soak run show their run and phase in a column of
    /// their own, escaped; without any, the column is not there.
    #[test]
    fn soak_runs_get_a_column_when_an_incident_has_one() {
        let b = board();
        let view = StatusView::new(&b, at(100));
        let plain = vec![IncidentView::new("owa", &incident(10, Some(20)), at(100))];
        assert!(!status_page(&view, &plain).contains("Soak run"));
        let mut during = incident(30, Some(40));
        during.run = Some("golive<1>".into());
        during.run_phase = Some("plateau".into());
        let rows = vec![
            IncidentView::new("owa", &during, at(100)),
            IncidentView::new("owa", &incident(10, Some(20)), at(100)),
        ];
        let page = status_page(&view, &rows);
        assert!(
            page.contains("<th scope=\"col\">Soak run / phase</th>"),
            "{page}"
        );
        assert!(
            page.contains("<td>golive&lt;1&gt; / plateau</td>"),
            "{page}"
        );
        assert!(page.contains("<td>–</td></tr>"), "{page}");
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(
            (json["run"].as_str(), json["phase"].as_str()),
            (Some("golive<1>"), Some("plateau"))
        );
        assert_inert(&page);
    }

    /// Issue 18: incidents a change window covered name it in a column of
    /// their own (escaped) and in the JSON; without any, no column.
    #[test]
    fn change_windows_get_a_column_when_an_incident_has_one() {
        let b = board();
        let view = StatusView::new(&b, at(100));
        let plain = vec![IncidentView::new("owa", &incident(10, Some(20)), at(100))];
        assert!(!status_page(&view, &plain).contains("Change window"));
        assert!(serde_json::to_value(&plain[0]).unwrap()["window"].is_null());
        let mut during = incident(30, Some(40));
        during.window = Some("batch<1>".into());
        let rows = vec![
            IncidentView::new("owa", &during, at(100)),
            IncidentView::new("owa", &incident(10, Some(20)), at(100)),
        ];
        let page = status_page(&view, &rows);
        assert!(
            page.contains("<th scope=\"col\">Change window</th>"),
            "{page}"
        );
        assert!(page.contains("<td>batch&lt;1&gt;</td></tr>"), "{page}");
        assert!(page.contains("<td>–</td></tr>"), "{page}");
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["window"], "batch<1>");
        assert_inert(&page);
    }

    #[test]
    fn the_incident_page_draws_its_timeline_and_lists_notifications() {
        let b = board();
        let open = incident(50, None);
        let notifications = vec![crate::status::json::NotificationView {
            receiver: "hook<1>".into(),
            status: "firing".into(),
            reminder: false,
            outcome: "queued".into(),
            queued_at: "2023-11-14T22:14:12Z".into(),
            done_at: None,
            attempts: 2,
            next_attempt_at: Some("2023-11-14T22:15:12Z".into()),
            last_error: Some("HTTP 503: <html>busy</html>".into()),
        }];
        let d = IncidentDetail::new(
            HOSTILE,
            &open,
            b.targets.get(HOSTILE),
            notifications,
            at(100),
        );
        assert!(d.samples.len() > 40, "{}", d.samples.len());
        assert_eq!(d.onset_steps.as_ref().unwrap()[0].step, "first_byte");
        let page = incident_page("cas01", &d);
        assert_inert(&page);
        assert_eq!(page.matches("<h1").count(), 1);
        assert!(page.contains("hook&lt;1&gt;"));
        assert!(page.contains("HTTP 503: &lt;html&gt;busy&lt;/html&gt;"));
        assert!(page.contains(">baseline</text>"));
        assert!(page.contains(">slow</text>"));
        assert!(page.contains("<path d=\"M"));
    }
}
