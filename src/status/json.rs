//! The views the status page and the JSON API share: plain serializable
//! structs built from a [`Board`] and stored incident records, so the page
//! and `/api/v1/*` always show the same facts. Pure: the time is given.
//!
//! Times are RFC 3339 UTC strings, durations are seconds (floats), ratios
//! are 0..1; absent values are `null`.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::board::{Board, Breakdown, Steps, TargetBoard, TargetState};
use crate::detect::Incident;
use crate::sample::Phase;

/// RFC 3339 in UTC with `Z`, to the millisecond where there is a fraction.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// `[agent] instance`.
    pub instance: String,
    /// The agent's version.
    pub version: String,
    /// When the agent started.
    pub started_at: String,
    /// Seconds since it started.
    pub uptime_seconds: u64,
    /// The latest configuration reload; `null` before the first.
    pub reload: Option<ReloadView>,
    /// Every target, worst state first, then by name.
    pub targets: Vec<TargetView>,
    /// Open incidents, newest first.
    pub open_incidents: Vec<IncidentView>,
    /// The host's load now; `null` without host collection.
    pub host: Option<HostView>,
    /// The largest schedule lag among the targets' latest probes.
    pub schedule_lag_seconds: Option<f64>,
    /// When this view was made.
    pub generated_at: String,
}

/// The latest reload.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadView {
    /// When it was applied or rejected.
    pub at: String,
    /// Whether it was applied.
    pub ok: bool,
    /// Why it was rejected.
    pub error: Option<String>,
}

/// One step of a probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepView {
    /// The phase (`connect`, `first_byte`, `banner`, ...).
    pub step: &'static str,
    /// How long it took.
    pub seconds: f64,
}

impl StepView {
    fn new((phase, d): (Phase, Duration)) -> StepView {
        StepView {
            step: phase.as_str(),
            seconds: secs(d),
        }
    }
}

/// One minute of a target's last hour (the sparkline).
#[derive(Debug, Clone, Serialize)]
pub struct MinuteView {
    /// Its start.
    pub at: String,
    /// Probes in it.
    pub probes: u32,
    /// Successful probes in it.
    pub ok: u32,
    /// Mean latency of the successful ones.
    pub mean_seconds: Option<f64>,
    /// Highest latency of the successful ones.
    pub max_seconds: Option<f64>,
}

/// One target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView {
    /// Its name.
    pub name: String,
    /// Its probe kind.
    pub kind: &'static str,
    /// `ok`, `slow` or `down`.
    pub state: &'static str,
    /// The latest probe's latency (failed probes too).
    pub latency_seconds: Option<f64>,
    /// Whether the latest probe succeeded.
    pub last_ok: Option<bool>,
    /// When the latest probe started.
    pub last_probe_at: Option<String>,
    /// Why the latest probe failed.
    pub last_error: Option<String>,
    /// The baseline its detector judges against.
    pub baseline_seconds: Option<f64>,
    /// The latency from which a probe is slow.
    pub slow_line_seconds: Option<f64>,
    /// The latest probe's longest step (or the one it failed in).
    pub slowest_step: Option<StepView>,
    /// Successful share of the last hour's probes.
    pub success_ratio_1h: Option<f64>,
    /// Successful share of the last 24 hours' probes.
    pub success_ratio_24h: Option<f64>,
    /// Whole days until the earliest certificate expiry.
    pub tls_days_left: Option<i64>,
    /// How late the latest probe started.
    pub schedule_lag_seconds: Option<f64>,
    /// The open incident's id.
    pub open_incident: Option<String>,
    /// The last hour by minute, oldest first (`null`: no probe that minute).
    pub last_hour: Vec<Option<MinuteView>>,
}

impl TargetView {
    /// The view of one target at `now`.
    pub fn new(name: &str, t: &TargetBoard, now: DateTime<Utc>) -> TargetView {
        let minute_start = |i: usize| {
            let current = now.timestamp().div_euclid(60);
            let m = current - (super::board::MINUTES - 1 - i) as i64;
            DateTime::from_timestamp(m * 60, 0).unwrap_or_default()
        };
        TargetView {
            name: name.to_string(),
            kind: t.kind.as_str(),
            state: t.health.as_str(),
            latency_seconds: t.last.as_ref().map(|l| secs(l.latency)),
            last_ok: t.last.as_ref().map(|l| l.ok),
            last_probe_at: t.last.as_ref().map(|l| time(l.at)),
            last_error: t.last.as_ref().and_then(|l| l.error.clone()),
            baseline_seconds: t.baseline.map(secs),
            slow_line_seconds: t.slow_line.map(secs),
            slowest_step: t.last.as_ref().and_then(|l| l.slowest).map(StepView::new),
            success_ratio_1h: t.success_1h(now),
            success_ratio_24h: t.success_24h(now),
            tls_days_left: t.tls_days_left(now),
            schedule_lag_seconds: t.last.as_ref().map(|l| secs(l.schedule_lag)),
            open_incident: t
                .open
                .as_ref()
                .map(|i| super::incident_id(name, i.started_at)),
            last_hour: t
                .minutes(now)
                .into_iter()
                .enumerate()
                .map(|(i, b)| {
                    b.map(|b| MinuteView {
                        at: time(minute_start(i)),
                        probes: b.count,
                        ok: b.ok,
                        mean_seconds: b.mean().map(secs),
                        max_seconds: (b.ok > 0)
                            .then(|| secs(Duration::from_micros(u64::from(b.max_us)))),
                    })
                })
                .collect(),
        }
    }
}

/// The host's load now.
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    /// CPU busy ratio, 0..1.
    pub cpu_ratio: Option<f64>,
    /// Memory available, bytes.
    pub memory_available_bytes: Option<u64>,
    /// Memory in all, bytes.
    pub memory_total_bytes: Option<u64>,
    /// CPU pressure: share of the last 10 s some task stalled.
    pub psi_cpu_some_ratio: Option<f64>,
    /// Memory pressure, as `psi_cpu_some_ratio`.
    pub psi_memory_some_ratio: Option<f64>,
    /// IO pressure, as `psi_cpu_some_ratio`.
    pub psi_io_some_ratio: Option<f64>,
    /// One-minute load average.
    pub load1: Option<f64>,
    /// Established TCP connections.
    pub tcp_established: Option<u64>,
}

/// One incident.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentView {
    /// Its id (`/incidents/ID`, `/api/v1/incidents/ID`).
    pub id: String,
    /// The target.
    pub target: String,
    /// `slow` or `down`.
    pub kind: &'static str,
    /// Whether it is still open.
    pub open: bool,
    /// The first bad probe.
    pub started_at: String,
    /// When it was confirmed.
    pub detected_at: String,
    /// The first healthy probe of the recovery; `null` while open.
    pub recovered_at: Option<String>,
    /// When a slow incident turned into a down one.
    pub escalated_at: Option<String>,
    /// `recovered_at - started_at`, or until now while open.
    pub duration_seconds: f64,
    /// The highest latency of a successful probe during it.
    pub peak_seconds: Option<f64>,
    /// The baseline when it started.
    pub baseline_seconds: Option<f64>,
    /// The step most often worst among its bad probes.
    pub worst_step: Option<String>,
    /// Slow probes during it.
    pub slow_probes: u32,
    /// Failed probes during it.
    pub failed_probes: u32,
    /// How it ended (`recovered`, `new_baseline`, ...); `null` while open.
    pub outcome: Option<&'static str>,
    /// The soak-test run active when it opened; `null` outside runs.
    pub run: Option<String>,
    /// That run's phase; `null` outside runs.
    pub phase: Option<String>,
    /// The change window that covered the target when it opened; `null`
    /// outside windows.
    pub window: Option<String>,
}

impl IncidentView {
    /// The view of `target`'s incident at `now`.
    pub fn new(target: &str, i: &Incident, now: DateTime<Utc>) -> IncidentView {
        let end = i.recovered_at.unwrap_or(now);
        IncidentView {
            id: super::incident_id(target, i.started_at),
            target: target.to_string(),
            kind: i.kind.as_str(),
            open: i.recovered_at.is_none(),
            started_at: time(i.started_at),
            detected_at: time(i.detected_at),
            recovered_at: i.recovered_at.map(time),
            escalated_at: i.escalated_at.map(time),
            duration_seconds: ((end - i.started_at).num_milliseconds().max(0) as f64) / 1e3,
            peak_seconds: i.peak_latency.map(secs),
            baseline_seconds: i.baseline_at_onset.map(secs),
            worst_step: i.worst_phase.clone(),
            slow_probes: i.slow_count,
            failed_probes: i.failed_count,
            outcome: i.outcome.map(|o| o.as_str()),
            run: i.run.clone(),
            phase: i.run_phase.clone(),
            window: i.window.clone(),
        }
    }
}

/// `GET /api/v1/incidents`.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentList {
    /// Newest first.
    pub incidents: Vec<IncidentView>,
}

/// One probe of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleView {
    /// When it started.
    pub at: String,
    /// Its latency; `null` when it failed.
    pub latency_seconds: Option<f64>,
}

/// One notification of an incident, to one receiver.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotificationView {
    /// The receiver's name.
    pub receiver: String,
    /// `firing` or `resolved` (a reminder is `firing`).
    pub status: String,
    /// Whether it is a reminder of an open incident.
    pub reminder: bool,
    /// `queued` (waiting or retrying) or `delivered`, `expired`, `rejected`.
    pub outcome: String,
    /// When it was queued.
    pub queued_at: String,
    /// When it was delivered or given up; `null` while queued.
    pub done_at: Option<String>,
    /// Failed attempts.
    pub attempts: u32,
    /// The next attempt, while queued.
    pub next_attempt_at: Option<String>,
    /// The latest failure (redacted by its receiver).
    pub last_error: Option<String>,
}

/// `GET /api/v1/incidents/ID`.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentDetail {
    /// The incident.
    #[serde(flatten)]
    pub incident: IncidentView,
    /// The latency from which a probe is slow, as the target's detector
    /// judges now.
    pub slow_line_seconds: Option<f64>,
    /// The steps of the probe that confirmed it, longest first (when this
    /// agent saw it since it started).
    pub onset_steps: Option<Vec<StepView>>,
    /// The steps of its slowest successful probe, longest first.
    pub peak_steps: Option<Vec<StepView>>,
    /// The probes around it that this agent still keeps (the last hour).
    pub samples: Vec<SampleView>,
    /// Every notification the outbox has of it, oldest first.
    pub notifications: Vec<NotificationView>,
}

fn steps(s: &Steps) -> Vec<StepView> {
    s.iter().copied().map(StepView::new).collect()
}

impl IncidentDetail {
    /// The detail of `target`'s incident, with what the board keeps of it.
    pub fn new(
        target: &str,
        i: &Incident,
        board: Option<&TargetBoard>,
        notifications: Vec<NotificationView>,
        now: DateTime<Utc>,
    ) -> IncidentDetail {
        let breakdown: Option<&Breakdown> = board.and_then(|b| b.breakdown(i.started_at));
        // The timeline: from a third of its length before it to as long after.
        let end = i.recovered_at.unwrap_or(now);
        let pad = ((end - i.started_at) / 3).max(chrono::Duration::seconds(30));
        let (from, to) = (
            (i.started_at - pad).timestamp_millis(),
            (end + pad).timestamp_millis(),
        );
        let samples = board
            .map(|b| {
                b.recent()
                    .filter(|p| p.at_ms >= from && p.at_ms <= to)
                    .map(|p| SampleView {
                        at: time(DateTime::from_timestamp_millis(p.at_ms).unwrap_or_default()),
                        latency_seconds: p.latency().map(secs),
                    })
                    .collect()
            })
            .unwrap_or_default();
        IncidentDetail {
            incident: IncidentView::new(target, i, now),
            slow_line_seconds: board.and_then(|b| b.slow_line).map(secs),
            onset_steps: breakdown.map(|b| steps(&b.onset)),
            peak_steps: breakdown.and_then(|b| b.peak.as_ref().map(|(_, s)| steps(s))),
            samples,
            notifications,
        }
    }
}

impl StatusView {
    /// The status of `board` at `now`.
    pub fn new(board: &Board, now: DateTime<Utc>) -> StatusView {
        let mut targets: Vec<TargetView> = board
            .targets
            .iter()
            .map(|(name, t)| TargetView::new(name, t, now))
            .collect();
        targets.sort_by_key(|t| {
            let state = match t.state {
                "down" => TargetState::Down,
                "slow" => TargetState::Slow,
                _ => TargetState::Ok,
            };
            state.rank()
        });
        let mut open_incidents: Vec<IncidentView> = board
            .targets
            .iter()
            .filter_map(|(name, t)| t.open.as_ref().map(|i| IncidentView::new(name, i, now)))
            .collect();
        open_incidents.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        let a = &board.agent;
        StatusView {
            instance: a.instance.clone(),
            version: a.version.to_string(),
            started_at: time(a.started_at),
            uptime_seconds: (now - a.started_at).num_seconds().max(0) as u64,
            reload: a.reload.as_ref().map(|r| ReloadView {
                at: time(r.at),
                ok: r.ok,
                error: r.error.clone(),
            }),
            targets,
            open_incidents,
            host: board.host.as_ref().map(|h| HostView {
                cpu_ratio: h.cpu_ratio,
                memory_available_bytes: h.memory_available_bytes,
                memory_total_bytes: h.memory_total_bytes,
                psi_cpu_some_ratio: h.psi_some_avg10[0],
                psi_memory_some_ratio: h.psi_some_avg10[1],
                psi_io_some_ratio: h.psi_some_avg10[2],
                load1: h.load1,
                tcp_established: h.tcp_established,
            }),
            schedule_lag_seconds: board.schedule_lag().map(secs),
            generated_at: time(now),
        }
    }
}
