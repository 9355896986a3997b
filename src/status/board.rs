//! The status board: what the live status page and `/api/v1/status` show,
//! kept by the pipeline as samples, host snapshots and incident events
//! arrive. Pure data: no IO, no clock (every update carries its own time).
//!
//! Each target keeps a bounded last hour: its latest [`RECENT_POINTS`]
//! samples at full resolution (for an incident's timeline), 60 one-minute
//! buckets (the sparkline and the 1 h success ratio) and 24 hourly counts
//! (the 24 h success ratio). Nothing grows with time or with the number of
//! samples: a target costs [`Board::bytes_per_target`] whatever its interval.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::detect::{Incident, SlowdownSettings, State};
use crate::sample::host::{HostSnapshot, TcpState};
use crate::sample::{Phase, ProbeKind, Sample};

/// Full-resolution samples kept per target (the newest), within the last hour.
pub const RECENT_POINTS: usize = 240;
/// One-minute buckets kept per target: the last hour.
pub const MINUTES: usize = 60;
/// Hourly buckets kept per target: the last day.
pub const HOURS: usize = 24;
/// Step breakdowns (onset and peak) kept per target, for its latest incidents.
pub const KEPT_BREAKDOWNS: usize = 4;
/// Steps kept in one breakdown (the longest ones).
const MAX_STEPS: usize = 8;

/// How a target is doing, as the page and the API name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// No incident is open.
    Ok,
    /// A slow incident is open.
    Slow,
    /// A down incident is open.
    Down,
}

impl TargetState {
    /// `ok`, `slow` or `down`: the text the page shows and the API returns.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Ok => "ok",
            TargetState::Slow => "slow",
            TargetState::Down => "down",
        }
    }

    /// The detector's state, named for people.
    pub fn from_state(state: State) -> TargetState {
        match state {
            State::Healthy => TargetState::Ok,
            State::Degraded => TargetState::Slow,
            State::Down => TargetState::Down,
        }
    }

    /// Sort key, worst first.
    pub fn rank(self) -> u8 {
        match self {
            TargetState::Down => 0,
            TargetState::Slow => 1,
            TargetState::Ok => 2,
        }
    }
}

/// One sample at full resolution (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Wall-clock start, Unix milliseconds.
    pub at_ms: i64,
    /// Latency in microseconds (saturating); meaningful when `ok`.
    pub latency_us: u32,
    /// Whether the probe succeeded.
    pub ok: bool,
}

impl Point {
    /// The latency of a successful probe.
    pub fn latency(&self) -> Option<Duration> {
        self.ok
            .then(|| Duration::from_micros(u64::from(self.latency_us)))
    }
}

/// Samples of one minute (or hour): counts and latency of the successful ones.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bucket {
    /// The minute (or hour) since the Unix epoch this bucket holds; buckets
    /// of another period are stale.
    pub period: i64,
    /// Samples.
    pub count: u32,
    /// Successful samples.
    pub ok: u32,
    /// Highest latency of a successful sample, microseconds.
    pub max_us: u32,
    /// Sum of the successful samples' latencies, milliseconds.
    pub sum_ms: f32,
}

impl Bucket {
    fn add(&mut self, period: i64, point: &Point) {
        if self.period != period {
            *self = Bucket {
                period,
                ..Bucket::default()
            };
        }
        self.count += 1;
        if point.ok {
            self.ok += 1;
            self.max_us = self.max_us.max(point.latency_us);
            self.sum_ms += point.latency_us as f32 / 1e3;
        }
    }

    /// Mean latency of its successful samples.
    pub fn mean(&self) -> Option<Duration> {
        (self.ok > 0)
            .then(|| Duration::from_secs_f64(f64::from(self.sum_ms) / 1e3 / f64::from(self.ok)))
    }
}

/// The steps of one probe, longest first, in seconds.
pub type Steps = Vec<(Phase, Duration)>;

/// The steps of an incident's onset and peak samples, as this agent saw them.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    /// The incident's start (its identity, with the target).
    pub started_at: DateTime<Utc>,
    /// The steps of the sample that confirmed the incident.
    pub onset: Steps,
    /// The steps of the slowest successful sample so far, and its latency.
    pub peak: Option<(Duration, Steps)>,
}

/// The latest probe of a target.
#[derive(Debug, Clone, PartialEq)]
pub struct LastProbe {
    /// When it started (wall clock).
    pub at: DateTime<Utc>,
    /// Its total duration.
    pub latency: Duration,
    /// Whether it succeeded.
    pub ok: bool,
    /// The longest step (not `total`), or the step it failed in.
    pub slowest: Option<(Phase, Duration)>,
    /// `reason: message` when it failed (untrusted text).
    pub error: Option<String>,
    /// How late it started.
    pub schedule_lag: Duration,
}

/// One target's board.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetBoard {
    /// Its probe kind.
    pub kind: ProbeKind,
    /// Its detector's state.
    pub health: TargetState,
    /// The baseline its detector judges against.
    pub baseline: Option<Duration>,
    /// The latency from which a sample counts as slow, if known.
    pub slow_line: Option<Duration>,
    /// The latest probe.
    pub last: Option<LastProbe>,
    /// Earliest certificate expiry seen by the latest TLS probe, Unix seconds.
    pub tls_expiry: Option<i64>,
    /// The open incident, if any.
    pub open: Option<Incident>,
    /// Newest last.
    recent: std::collections::VecDeque<Point>,
    minutes: [Bucket; MINUTES],
    hours: [Bucket; HOURS],
    breakdowns: std::collections::VecDeque<Breakdown>,
}

impl TargetBoard {
    fn new(kind: ProbeKind) -> TargetBoard {
        TargetBoard {
            kind,
            health: TargetState::Ok,
            baseline: None,
            slow_line: None,
            last: None,
            tls_expiry: None,
            open: None,
            recent: std::collections::VecDeque::with_capacity(RECENT_POINTS),
            minutes: [Bucket::default(); MINUTES],
            hours: [Bucket::default(); HOURS],
            breakdowns: std::collections::VecDeque::new(),
        }
    }

    /// The full-resolution samples kept, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Point> {
        self.recent.iter()
    }

    /// The last hour before `now` by minute, oldest first: one entry per
    /// minute, `None` where no sample was taken.
    pub fn minutes(&self, now: DateTime<Utc>) -> Vec<Option<Bucket>> {
        let current = now.timestamp().div_euclid(60);
        (0..MINUTES as i64)
            .rev()
            .map(|back| {
                let period = current - back;
                let b = self.minutes[period.rem_euclid(MINUTES as i64) as usize];
                (b.period == period && b.count > 0).then_some(b)
            })
            .collect()
    }

    /// The share of successful samples over the last hour (by minute).
    pub fn success_1h(&self, now: DateTime<Utc>) -> Option<f64> {
        ratio(self.minutes(now).into_iter().flatten())
    }

    /// The share of successful samples over the last 24 hours (by hour).
    pub fn success_24h(&self, now: DateTime<Utc>) -> Option<f64> {
        let current = now.timestamp().div_euclid(3600);
        ratio(
            self.hours
                .iter()
                .filter(|b| b.period > current - HOURS as i64 && b.period <= current)
                .copied(),
        )
    }

    /// Whole days until the earliest certificate expiry (negative once expired).
    pub fn tls_days_left(&self, now: DateTime<Utc>) -> Option<i64> {
        self.tls_expiry
            .map(|at| (at - now.timestamp()).div_euclid(86_400))
    }

    /// The onset and peak steps of the incident that started at `started_at`,
    /// if this agent saw it (kept for the latest few incidents only).
    pub fn breakdown(&self, started_at: DateTime<Utc>) -> Option<&Breakdown> {
        self.breakdowns.iter().find(|b| b.started_at == started_at)
    }

    fn record(&mut self, sample: &Sample) {
        let latency = sample.total();
        let point = Point {
            at_ms: sample.started_at.timestamp_millis(),
            latency_us: u32::try_from(latency.as_micros()).unwrap_or(u32::MAX),
            ok: sample.success(),
        };
        let minute = sample.started_at.timestamp().div_euclid(60);
        self.minutes[minute.rem_euclid(MINUTES as i64) as usize].add(minute, &point);
        let hour = sample.started_at.timestamp().div_euclid(3600);
        self.hours[hour.rem_euclid(HOURS as i64) as usize].add(hour, &point);
        let hour_ago = point.at_ms - 3_600_000;
        while self
            .recent
            .front()
            .is_some_and(|p| p.at_ms < hour_ago || self.recent.len() >= RECENT_POINTS)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(point);
        let slowest = match &sample.failure {
            Some(f) => Some((f.phase, sample.phase(f.phase).unwrap_or_default())),
            None => sample
                .phases
                .iter()
                .filter(|(p, _)| *p != Phase::Total)
                .max_by_key(|(_, d)| *d)
                .copied(),
        };
        self.last = Some(LastProbe {
            at: sample.started_at,
            latency,
            ok: sample.success(),
            slowest,
            error: sample
                .failure
                .as_ref()
                .map(|f| format!("{}: {}", f.reason, f.message)),
            schedule_lag: sample.schedule_lag,
        });
        if let Some(tls) = &sample.tls {
            self.tls_expiry = tls.earliest_expiry;
        }
    }

    /// Notes the steps of an incident's onset and of its slowest sample.
    fn note_steps(&mut self, sample: &Sample, opened: bool) {
        let Some(open) = &self.open else { return };
        if opened || self.breakdown(open.started_at).is_none() {
            if self.breakdowns.len() >= KEPT_BREAKDOWNS {
                self.breakdowns.pop_front();
            }
            self.breakdowns.push_back(Breakdown {
                started_at: open.started_at,
                onset: steps(sample),
                peak: None,
            });
        }
        if !sample.success() {
            return;
        }
        let started_at = open.started_at;
        let latency = sample.total();
        if let Some(b) = self
            .breakdowns
            .iter_mut()
            .find(|b| b.started_at == started_at)
        {
            if b.peak.as_ref().is_none_or(|(peak, _)| latency > *peak) {
                b.peak = Some((latency, steps(sample)));
            }
        }
    }
}

/// A sample's steps, longest first (at most [`MAX_STEPS`]), `total` left out.
fn steps(sample: &Sample) -> Steps {
    let mut steps: Steps = sample
        .phases
        .iter()
        .filter(|(p, _)| *p != Phase::Total)
        .copied()
        .collect();
    steps.sort_by_key(|s| std::cmp::Reverse(s.1));
    steps.truncate(MAX_STEPS);
    steps
}

fn ratio(buckets: impl Iterator<Item = Bucket>) -> Option<f64> {
    let (count, ok) = buckets.fold((0u64, 0u64), |(c, o), b| {
        (c + u64::from(b.count), o + u64::from(b.ok))
    });
    (count > 0).then(|| ok as f64 / count as f64)
}

/// The latency from which a sample is slow under `settings` and `baseline`
/// (what [`crate::detect::Detector::classify`] applies), if either sets one.
pub fn slow_line(settings: &SlowdownSettings, baseline: Option<Duration>) -> Option<Duration> {
    let relative = baseline.map(|base| {
        let ratio = Duration::from_secs_f64(base.as_secs_f64() * settings.factor);
        ratio.max(base.saturating_add(settings.min_delta))
    });
    match (relative, settings.threshold) {
        (Some(r), Some(t)) => Some(r.min(t)),
        (r, t) => r.or(t),
    }
}

/// The host's load at its latest reading.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostNow {
    /// CPU busy ratio, 0..1.
    pub cpu_ratio: Option<f64>,
    /// Memory available, bytes.
    pub memory_available_bytes: Option<u64>,
    /// Memory in all, bytes.
    pub memory_total_bytes: Option<u64>,
    /// CPU, memory and IO pressure: share of the last 10 s some task stalled.
    pub psi_some_avg10: [Option<f64>; 3],
    /// One-minute load average.
    pub load1: Option<f64>,
    /// Established TCP connections.
    pub tcp_established: Option<u64>,
}

impl HostNow {
    /// The summary of a host snapshot.
    pub fn from_snapshot(s: &HostSnapshot) -> HostNow {
        let psi = s.pressure.as_ref();
        let some =
            |r: Option<&crate::sample::host::ResourcePressure>| r.map(|r| r.some.avg10_ratio);
        HostNow {
            cpu_ratio: s.cpu.as_ref().map(|c| c.usage_ratio),
            memory_available_bytes: s.memory.as_ref().map(|m| m.available_bytes),
            memory_total_bytes: s.memory.as_ref().map(|m| m.total_bytes),
            psi_some_avg10: [
                some(psi.and_then(|p| p.cpu.as_ref())),
                some(psi.and_then(|p| p.memory.as_ref())),
                some(psi.and_then(|p| p.io.as_ref())),
            ],
            load1: s.load.as_ref().map(|l| l.load1),
            tcp_established: s.tcp.as_ref().map(|t| t.get(TcpState::Established)),
        }
    }
}

/// The outcome of the latest configuration reload.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadState {
    /// When it was applied or rejected.
    pub at: DateTime<Utc>,
    /// Whether it was applied.
    pub ok: bool,
    /// Why it was rejected (untrusted text: a configuration error).
    pub error: Option<String>,
}

/// Who this agent is.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentInfo {
    /// `[agent] instance`.
    pub instance: String,
    /// The agent's version.
    pub version: &'static str,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The latest reload; `None` before the first one.
    pub reload: Option<ReloadState>,
}

/// Everything the status page shows that the pipeline keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    /// The agent itself.
    pub agent: AgentInfo,
    /// Each target by name.
    pub targets: BTreeMap<String, TargetBoard>,
    /// The host's load; `None` before the first snapshot (or without `[host]`).
    pub host: Option<HostNow>,
}

/// What the pipeline tells the board about one sample besides the sample.
#[derive(Debug, Clone, Copy)]
pub struct Judged<'a> {
    /// The detector's state after the sample.
    pub state: State,
    /// Its baseline.
    pub baseline: Option<Duration>,
    /// Its settings.
    pub settings: &'a SlowdownSettings,
    /// The open incident after the sample.
    pub open: Option<&'a Incident>,
    /// Whether this sample opened, escalated or closed an incident.
    pub event: bool,
}

impl Board {
    /// An empty board for agent `instance`, started at `started_at`.
    pub fn new(instance: &str, started_at: DateTime<Utc>) -> Board {
        Board {
            agent: AgentInfo {
                instance: instance.to_string(),
                version: env!("CARGO_PKG_VERSION"),
                started_at,
                reload: None,
            },
            targets: BTreeMap::new(),
            host: None,
        }
    }

    /// Records one sample and what its detector made of it.
    pub fn record(&mut self, sample: &Sample, judged: Judged<'_>) {
        let board = self
            .targets
            .entry(sample.target.clone())
            .or_insert_with(|| TargetBoard::new(sample.kind));
        board.kind = sample.kind;
        board.record(sample);
        board.health = TargetState::from_state(judged.state);
        board.baseline = judged.baseline;
        board.slow_line = slow_line(judged.settings, judged.baseline);
        // An incident record is copied only when it changes state (or was
        // restored from the store), not on every sample.
        let opened = judged.event
            && judged.open.is_some()
            && board.open.as_ref().map(|o| o.started_at) != judged.open.map(|o| o.started_at);
        if judged.event || judged.open.is_some() != board.open.is_some() {
            board.open = judged.open.cloned();
        } else if let (Some(kept), Some(now)) = (&mut board.open, judged.open) {
            if sample.success() && now.peak_latency != kept.peak_latency {
                kept.peak_latency = now.peak_latency;
            }
        }
        board.note_steps(sample, opened);
    }

    /// Keeps only the targets named in `names` (after a reload).
    pub fn retain_targets(&mut self, names: &[&str]) {
        self.targets.retain(|n, _| names.contains(&n.as_str()));
    }

    /// Records the host's latest load.
    pub fn record_host(&mut self, snapshot: &HostSnapshot) {
        self.host = Some(HostNow::from_snapshot(snapshot));
    }

    /// Records the outcome of a reload.
    pub fn record_reload(&mut self, at: DateTime<Utc>, error: Option<String>) {
        self.agent.reload = Some(ReloadState {
            at,
            ok: error.is_none(),
            error,
        });
    }

    /// The largest schedule lag among the targets' latest probes.
    pub fn schedule_lag(&self) -> Option<Duration> {
        self.targets
            .values()
            .filter_map(|t| t.last.as_ref().map(|l| l.schedule_lag))
            .max()
    }

    /// What one target's board costs in memory at most, in bytes (its name
    /// and incident records aside): the struct, its full recent-sample ring
    /// and its step breakdowns.
    pub fn bytes_per_target() -> usize {
        std::mem::size_of::<TargetBoard>()
            + RECENT_POINTS * std::mem::size_of::<Point>()
            + KEPT_BREAKDOWNS
                * (std::mem::size_of::<Breakdown>()
                    + 2 * MAX_STEPS * std::mem::size_of::<(Phase, Duration)>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Failure, FailureReason};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn sample(secs: i64, ms: u64) -> Sample {
        let mut s = Sample::http_ok(at(secs), at(secs), ms);
        s.phases
            .insert(0, (Phase::FirstByte, Duration::from_millis(ms * 3 / 4)));
        s.phases
            .insert(0, (Phase::Connect, Duration::from_millis(ms / 4)));
        s
    }

    fn failed(secs: i64) -> Sample {
        let mut s = sample(secs, 5);
        s.failure = Some(Failure {
            reason: FailureReason::Connect,
            phase: Phase::Connect,
            message: "refused <b>".into(),
        });
        s
    }

    fn judged(settings: &SlowdownSettings) -> Judged<'_> {
        Judged {
            state: State::Healthy,
            baseline: Some(Duration::from_millis(100)),
            settings,
            open: None,
            event: false,
        }
    }

    #[test]
    fn history_stays_bounded_to_the_last_hour() {
        let settings = SlowdownSettings::default();
        let mut b = Board::new("cas01", at(0));
        for i in 0..10_000 {
            b.record(&sample(i, 100), judged(&settings));
        }
        let t = &b.targets["owa"];
        assert_eq!(t.recent().count(), RECENT_POINTS);
        assert_eq!(
            t.recent().last().unwrap().at_ms,
            at(9_999).timestamp_millis()
        );
        let minutes = t.minutes(at(9_999));
        assert_eq!(minutes.len(), MINUTES);
        assert!(minutes.iter().all(|m| m.is_some_and(|m| m.count == 60)));
        assert_eq!(minutes.iter().flatten().map(|m| m.count).sum::<u32>(), 3600);
    }

    #[test]
    fn a_sparse_target_keeps_samples_of_the_last_hour_only() {
        let settings = SlowdownSettings::default();
        let mut b = Board::new("cas01", at(0));
        for i in 0..100 {
            b.record(&sample(i * 60, 100), judged(&settings));
        }
        let t = &b.targets["owa"];
        // Samples every minute: the last hour is 61 of them at most.
        assert!(t.recent().count() <= 61, "{}", t.recent().count());
        assert!(t
            .recent()
            .all(|p| p.at_ms >= at(99 * 60 - 3600).timestamp_millis()));
    }

    #[test]
    fn success_ratios_count_the_last_hour_and_day() {
        let settings = SlowdownSettings::default();
        let mut b = Board::new("cas01", at(0));
        // Two hours ago: all failed; the last hour: three in four succeed.
        for i in 0..60 {
            b.record(&failed(i * 60), judged(&settings));
        }
        for i in 0..60 {
            let s = if i % 4 == 0 {
                failed(7200 + i * 60)
            } else {
                sample(7200 + i * 60, 100)
            };
            b.record(&s, judged(&settings));
        }
        let t = &b.targets["owa"];
        let now = at(7200 + 59 * 60);
        assert_eq!(t.success_1h(now), Some(0.75));
        assert_eq!(t.success_24h(now), Some(45.0 / 120.0));
        // A day later, nothing of it counts.
        assert_eq!(t.success_24h(now + chrono::Duration::hours(25)), None);
        assert_eq!(t.success_1h(now + chrono::Duration::hours(2)), None);
    }

    #[test]
    fn the_last_probe_names_its_slowest_step_or_where_it_failed() {
        let settings = SlowdownSettings::default();
        let mut b = Board::new("cas01", at(0));
        b.record(&sample(0, 400), judged(&settings));
        let last = b.targets["owa"].last.clone().unwrap();
        assert_eq!(
            last.slowest,
            Some((Phase::FirstByte, Duration::from_millis(300)))
        );
        b.record(&failed(1), judged(&settings));
        let last = b.targets["owa"].last.clone().unwrap();
        assert_eq!(last.slowest.map(|s| s.0), Some(Phase::Connect));
        assert_eq!(last.error.as_deref(), Some("connect: refused <b>"));
    }

    #[test]
    fn the_slow_line_is_the_lower_of_ratio_and_threshold() {
        let mut s = SlowdownSettings {
            factor: 3.0,
            min_delta: Duration::from_millis(50),
            threshold: None,
            ..SlowdownSettings::default()
        };
        let base = Some(Duration::from_millis(10));
        assert_eq!(slow_line(&s, base), Some(Duration::from_millis(60)));
        assert_eq!(
            slow_line(&s, Some(Duration::from_millis(100))),
            Some(Duration::from_millis(300))
        );
        s.threshold = Some(Duration::from_millis(200));
        assert_eq!(
            slow_line(&s, Some(Duration::from_millis(100))),
            Some(Duration::from_millis(200))
        );
        assert_eq!(slow_line(&s, None), Some(Duration::from_millis(200)));
    }

    #[test]
    fn an_incident_keeps_its_onset_and_peak_steps() {
        let settings = SlowdownSettings::default();
        let incident: Incident = serde_json::from_value(serde_json::json!({
            "kind": "slow", "started_at": at(10), "detected_at": at(12),
            "recovered_at": null, "closed_at": null, "peak_latency": null,
            "baseline_at_onset": null, "worst_phase": null,
            "slow_count": 3, "failed_count": 0
        }))
        .unwrap();
        let mut b = Board::new("cas01", at(0));
        let open = |event| Judged {
            state: State::Degraded,
            open: Some(&incident),
            event,
            ..judged(&settings)
        };
        b.record(&sample(12, 800), open(true));
        b.record(&sample(13, 2000), open(false));
        b.record(&sample(14, 900), open(false));
        let t = &b.targets["owa"];
        assert_eq!(t.health, TargetState::Slow);
        let bd = t.breakdown(at(10)).unwrap();
        assert_eq!(bd.onset[0], (Phase::FirstByte, Duration::from_millis(600)));
        let (peak, steps) = bd.peak.clone().unwrap();
        assert_eq!(peak, Duration::from_millis(2000));
        assert_eq!(steps[0], (Phase::FirstByte, Duration::from_millis(1500)));
        b.record(&sample(15, 100), judged(&settings));
        assert!(b.targets["owa"].open.is_none());
    }
}
