//! Slowdown detection: one [`Detector`] per target turns a stream of
//! [`Observation`]s (probe results with their timestamps) into incidents that
//! open and close with hysteresis, and records when they started, were
//! detected and recovered.
//!
//! This module is pure: no IO, no clock reads, no async runtime. Every decision is a
//! function of the observations and their timestamps, so the agent and
//! `mailpulse replay` run the very same code, and the state can be persisted
//! (it is `serde`) and restored after a restart, continuing an open incident
//! with its original start.
//!
//! # Classifying one sample
//!
//! A failed probe is *failed*. A successful one is *slow* when its latency is
//! above the absolute `threshold` (if set), or when the baseline is warm and
//! the latency is at least `factor` times the baseline *and* at least
//! `min_delta` above it. "At least" rather than "above" so that a sustained
//! step to exactly `factor` times the baseline counts (a tiny relative
//! tolerance absorbs floating-point rounding). Everything else is *healthy*.
//! Slow and failed samples are *bad*.
//!
//! # Opening: persistence in time and in samples
//!
//! A bad sample while no incident is open starts a *pending run*. A lone bad
//! sample followed by a healthy one is a spike and ends the run, so a run's
//! onset is the first of two consecutive bad samples (an unrelated spike just
//! before a slowdown does not pull its `started_at` early). After that the run
//! survives healthy samples as long as at least `bad_share` of its samples
//! are bad (by default: as long as healthy ones do not outnumber bad ones), so
//! a degradation where some probes still get through fast is one run, while
//! isolated spikes on a healthy target die out at once. A pause in the run
//! (two healthy samples or more) that is as long, at `bad_share`, as the
//! burst of bad samples before it makes that burst a blip: the next bad
//! sample starts a new *burst*, which is the onset, and the blip is kept in
//! the record only as `earlier_burst_at` (two slow hours, two normal ones,
//! then the real rise: the incident starts at the rise). The current burst
//! becomes an incident when its bad samples span at least `for` **and**
//! number at least [`MIN_RUN_SAMPLES`]. The sample-count floor is what makes one set of
//! defaults work at every cadence: at 1 s probes `for = 1m` needs ~61 bad
//! samples; at 30 s it needs 3; with hourly data a single sample would
//! already "span" an hour, which would turn every spike into an incident, so
//! the floor asks for three bad hours. Spikes and two-sample bursts therefore
//! never open an incident, at any cadence. On a spiky target the floor rises
//! (up to eight samples) with the background rate of bad samples, so that a
//! run is unlikely to be chance (see [`background`]). `detected_at` is the
//! sample that confirmed it. `started_at` is the onset of the rise: the first
//! bad sample of the burst, or earlier when the samples just before it were
//! already out of the normal band (not back near the baseline as recovery
//! judges it: `recover_factor` times it) without a break, a *lead* (a ramp
//! or a climb over hours leaves the band before it becomes slow; the lead
//! tolerates one sample back in the band per [`RECOVERY_HEALTHY_PER_BAD`]
//! out of it). An incident thus spans from where latency left the normal
//! band to where it came back, and `baseline_at_onset` is the baseline when
//! it left.
//!
//! # Closing: hysteresis
//!
//! While an incident is open, a *recovered* sample, one back near the
//! baseline the incident started from (under `recover_factor` times it, by
//! default the square root of `factor`, or less than half `min_delta` above
//! it), starts a *recovery run*. Samples that are no longer slow but not back
//! either (2.6x with `factor = 3`) neither close the incident nor count as
//! bad: that is the hysteresis. A recovery run survives at most one other
//! sample per [`RECOVERY_HEALTHY_PER_BAD`] recovered ones: short recovery
//! runs must be clean, while long ones tolerate isolated spikes (at 1 s
//! probes, 120 samples on a noisy target would rarely all be clean, and the
//! incident would never close). It closes the incident once its recovered
//! samples span at least `recover_for` and number at least as many as chance
//! would rarely give: with a share `p` of the incident's earlier samples
//! already recovered, `k` with `p^k` below
//! [`background::CHANCE_RUN_PROBABILITY`] (at least [`MIN_RUN_SAMPLES`], at
//! most [`MAX_RECOVERY_SAMPLES`] and what [`MAX_RECOVERY_SPAN`] holds; the
//! first `k` must be clean), `p` starting
//! from a prior of [`MIX_PRIOR_SAMPLES`] samples at `1 - bad_share` and never
//! above it. So intermittent slowness (60% of 30 s probes slow, where
//! five fast probes in a row are common) stays one incident while that share
//! holds, and a clean step still closes after `recover_for`. A dip shorter
//! than `recover_for` inside a degradation is broken off by the next bad
//! stretch and does not split the incident. `recovered_at` is the first
//! recovered sample of the run that closed it.
//!
//! # New baseline
//!
//! A slow incident whose latency holds one level (a moving average, with at
//! most one sample in [`RECOVERY_HEALTHY_PER_BAD`] more than [`SHIFT_BAND`]
//! away from it, failures included) for `relearn_after` is a level shift,
//! not an incident: it closes with [`Outcome::NewBaseline`], the level as
//! `new_baseline`, and the baseline moves to it at once. Until then it stays
//! open. A down incident, and a target with a pinned `baseline`, never
//! relearn.
//!
//! # Kind
//!
//! An incident is `down` when failures are at least half of the bad samples
//! of the run that opened it, otherwise `slow`. Such a failure-dominated run
//! needs as many samples as the target's failure rate alone asks for, not its
//! latency spikiness: three failed probes in a row are not chance on a target
//! that rarely fails. A slow incident escalates to `down` when failures alone
//! persist like such an opening run would (a majority of the samples, for
//! `for`), noted as `escalated_at`; a down incident stays down until it
//! closes. The open incident's counts (`slow_count`, `failed_count`,
//! `healthy_count`) are current at every sample.
//!
//! # Baseline
//!
//! See [`baseline`]: the median of the first ten healthy samples, then a
//! clamped EWMA of log-latency with a time constant of
//! [`BASELINE_TIME_CONSTANT`] but never fewer than
//! [`BASELINE_MIN_TIME_CONSTANT_SAMPLES`] samples. It learns only from
//! healthy samples while no incident is open and no run is pending, so the
//! onset of a slowdown cannot pollute it, and it is frozen during incidents.
//! The baseline slowness is judged by rises at most
//! [`baseline::MAX_DRIFT_PER_HOUR`], and falls back to the level before a
//! rise that outpaces that, so a ramp (80 ms to 640 ms over an hour) is
//! judged against its starting level while a busy day's drift is followed.
//! It is never above the median of the last two days' hours of learning
//! (or the same time of day a day earlier, if higher), so a climb slower
//! than drift (1.3x, 1.6x, 1.8x ... an hour apart) is judged against the
//! level before it too. Until it is warm, only failures and the
//! absolute threshold can open an incident. A pinned `baseline` replaces
//! the learned one altogether.
//!
//! # Gaps and time
//!
//! When two observations are further apart than the maximum gap (three
//! typical intervals, and at least `recover_for`), whatever the gap hid is
//! unknown: a pending run and a recovery run are dropped, and an open
//! incident stays open. A gap thus neither opens nor closes an incident by
//! itself.
//!
//! Durations are measured on the observations' own time axis (`at`): in the
//! agent that is its steady clock, which a stepped system clock does not
//! move, so `for` and `recover_for` elapse in real time whatever the clock
//! does. Timestamps that go backwards anyway (a restart after the system
//! clock was stepped back, repeated or shuffled rows) shift the axis rather
//! than stall it: the detector adds the step to every later timestamp
//! (`skew`), so time goes on from the latest observation at the pace of the
//! input instead of standing still until the input catches up, and times
//! recorded on the axis never decrease. An incident's record starts at the observation's
//! wall-clock time (`wall`, when given) and measures everything after on the
//! axis, so its duration is right even when the wall clock is stepped
//! during it.
//!
//! `bench/detector-results.md` measures all of this on real and synthetic
//! series, including where it misses.

pub mod background;
pub mod baseline;
pub mod cadence;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sample::{Phase, Sample};

pub use background::Background;
pub use baseline::Baseline;
pub use cadence::Cadence;

/// Bad (or healthy) samples a run needs, besides its duration, before it
/// opens (or closes) an incident; a spiky target needs more bad ones
/// ([`Background::required_bad_samples`]).
pub const MIN_RUN_SAMPLES: u32 = background::MIN_BAD_SAMPLES;

/// The baseline forgets with this time constant: about the last half hour
/// dominates it, long enough to ride out a burst of slow-but-healthy samples,
/// short enough to follow a daily cycle closely.
pub const BASELINE_TIME_CONSTANT: Duration = Duration::from_secs(30 * 60);

/// The baseline's time constant is never shorter than this many samples, so
/// with sparse data (hourly series) one sample cannot move it much.
pub const BASELINE_MIN_TIME_CONSTANT_SAMPLES: f64 = 12.0;

/// Silences longer than this many typical intervals are gaps.
pub const MAX_GAP_INTERVALS: u32 = 3;

/// A recovery run tolerates one bad sample per this many healthy ones.
pub const RECOVERY_HEALTHY_PER_BAD: u32 = 8;

/// The most healthy samples a recovery run needs, however much of the
/// incident was already healthy (see [`Detector`]'s intermittent slowness).
pub const MAX_RECOVERY_SAMPLES: u32 = 30;

/// ... and never more than this span of samples holds.
pub const MAX_RECOVERY_SPAN: Duration = Duration::from_secs(15 * 60);

/// The healthy share of an open incident is estimated as if it had begun
/// with this many samples at the largest share a bad run may hold.
pub const MIX_PRIOR_SAMPLES: u32 = 4;

/// A level shift holds while most samples stay within this factor of its
/// moving average.
pub const SHIFT_BAND: f64 = 2.0;

/// Relative tolerance of the `factor` comparison, for floating-point rounding.
const FACTOR_TOLERANCE: f64 = 1e-9;

/// What makes a sample slow and how long things must persist; one set per
/// target, resolved from `[slowdown]` and the target's override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowdownSettings {
    /// A sample is slow at `factor` times the baseline or more (with `min_delta`).
    pub factor: f64,
    /// ... and only when it is also at least this much above the baseline,
    /// so that jitter of a few milliseconds on a 1 ms baseline is not an
    /// incident (the default, 10 ms, still lets a 5 ms back end that
    /// triples be slow: real back ends of 3-70 ms do that).
    pub min_delta: Duration,
    /// Bad samples must persist this long (and [`MIN_RUN_SAMPLES`]) to open an incident.
    #[serde(rename = "for")]
    pub for_: Duration,
    /// Healthy samples must persist this long (and [`MIN_RUN_SAMPLES`]) to close it.
    pub recover_for: Duration,
    /// Optional absolute limit: any latency above it is slow, even before
    /// the baseline is warm.
    pub threshold: Option<Duration>,
    /// A slow incident whose latency has held steadily at one level this
    /// long closes as a new baseline, and the baseline moves to that level;
    /// a rise that never became slow thaws the baseline after as long.
    #[serde(default = "default_relearn_after")]
    pub relearn_after: Duration,
    /// The share of samples of a bad run (and of an incident) that must be
    /// bad for it to go on: a run survives healthy samples while at least
    /// this share of its samples are bad.
    #[serde(default = "default_bad_share")]
    pub bad_share: f64,
    /// A pinned baseline: slowness is judged against it instead of a
    /// learned one (a soak test's known normal), and it never moves.
    #[serde(default)]
    pub baseline: Option<Duration>,
    /// An incident recovers on samples below `recover_factor` times the
    /// baseline it started from (or less than half `min_delta` above it);
    /// `None`: the square root of `factor`, halfway in ratio.
    #[serde(default)]
    pub recover_factor: Option<f64>,
}

/// The default `relearn_after`: a day.
pub const DEFAULT_RELEARN_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The default `bad_share`: a bad run goes on while half its samples are bad.
pub const DEFAULT_BAD_SHARE: f64 = 0.5;

fn default_relearn_after() -> Duration {
    DEFAULT_RELEARN_AFTER
}

fn default_bad_share() -> f64 {
    DEFAULT_BAD_SHARE
}

impl SlowdownSettings {
    /// The recovery factor in use: `recover_factor`, or the square root of `factor`.
    pub fn effective_recover_factor(&self) -> f64 {
        self.recover_factor.unwrap_or_else(|| self.factor.sqrt())
    }
}

impl Default for SlowdownSettings {
    /// `factor = 3.0`, `min_delta = "10ms"`, `for = "1m"`,
    /// `recover_for = "2m"`, no threshold, `relearn_after = "24h"`,
    /// `bad_share = 0.5`, a learned baseline, `recover_factor` the square
    /// root of `factor`.
    fn default() -> Self {
        SlowdownSettings {
            factor: 3.0,
            min_delta: Duration::from_millis(10),
            for_: Duration::from_secs(60),
            recover_for: Duration::from_secs(120),
            threshold: None,
            relearn_after: DEFAULT_RELEARN_AFTER,
            bad_share: DEFAULT_BAD_SHARE,
            baseline: None,
            recover_factor: None,
        }
    }
}

/// One probe result as the detector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// When the probe ran, on the time axis durations are measured on: the
    /// agent's steady clock, or a series' own timestamps.
    pub at: DateTime<Utc>,
    /// When the probe ran by the wall clock, if that differs from `at` (the
    /// system clock was stepped since the agent started). Incident records
    /// start at it.
    pub wall: Option<DateTime<Utc>>,
    /// Its latency; `None` for a failed probe.
    pub latency: Option<Duration>,
    /// The phase that took longest (or the one a failure happened in), if known.
    pub worst_phase: Option<String>,
}

impl Observation {
    /// A successful probe.
    pub fn ok(at: DateTime<Utc>, latency: Duration) -> Observation {
        Observation {
            at,
            wall: None,
            latency: Some(latency),
            worst_phase: None,
        }
    }

    /// A failed probe.
    pub fn failed(at: DateTime<Utc>) -> Observation {
        Observation {
            at,
            wall: None,
            latency: None,
            worst_phase: None,
        }
    }

    /// The observation of a probe sample: at its steady-clock start (with its
    /// wall-clock start where the two differ), its total duration when it
    /// succeeded, and as worst phase the longest timed phase (or, for a
    /// failure, the phase it failed in).
    pub fn from_sample(sample: &Sample) -> Observation {
        let worst_phase = match &sample.failure {
            Some(f) => Some(f.phase),
            None => sample
                .phases
                .iter()
                .filter(|(p, _)| *p != Phase::Total)
                .max_by_key(|(_, d)| *d)
                .map(|(p, _)| *p),
        };
        Observation {
            at: sample.steady_at,
            wall: (sample.started_at != sample.steady_at).then_some(sample.started_at),
            latency: sample.success().then(|| sample.total()),
            worst_phase: worst_phase.map(|p| p.as_str().to_string()),
        }
    }
}

/// How one sample was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Neither slow nor failed.
    Healthy,
    /// Slow against the baseline or the threshold.
    Slow,
    /// The probe failed.
    Failed,
}

impl Verdict {
    /// Whether the sample counts against the target.
    pub fn is_bad(self) -> bool {
        self != Verdict::Healthy
    }
}

/// The state of a target as its detector sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// No incident is open (a run may be pending).
    Healthy,
    /// A slow incident is open.
    Degraded,
    /// A down incident is open.
    Down,
}

/// What kind of incident it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentKind {
    /// Probes succeed, but slowly.
    Slow,
    /// Probes fail.
    Down,
}

impl IncidentKind {
    /// The label value used in output: `slow` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Slow => "slow",
            IncidentKind::Down => "down",
        }
    }
}

impl fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an incident ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Latency came back near the baseline it started from.
    Recovered,
    /// Latency held steadily at a new level for `relearn_after`: the level
    /// is the new normal, and the baseline moved to it.
    NewBaseline,
}

impl Outcome {
    /// The value used in output: `recovered` or `new_baseline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Recovered => "recovered",
            Outcome::NewBaseline => "new_baseline",
        }
    }
}

/// One incident, open or closed, with its timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `slow` or `down`.
    pub kind: IncidentKind,
    /// The onset: the first bad sample of the burst that opened it, or where
    /// latency left the normal band just before it (see the module docs).
    pub started_at: DateTime<Utc>,
    /// The sample that confirmed it.
    pub detected_at: DateTime<Utc>,
    /// The first healthy sample of the run that closed it (for a new
    /// baseline, when the level was accepted); `None` while open.
    pub recovered_at: Option<DateTime<Utc>>,
    /// The sample that confirmed the recovery; `None` while open.
    pub closed_at: Option<DateTime<Utc>>,
    /// The highest latency of a successful probe during the incident.
    pub peak_latency: Option<Duration>,
    /// The baseline when the opening run started; `None` if it was not warm.
    pub baseline_at_onset: Option<Duration>,
    /// The phase most often worst among the bad samples, if known.
    pub worst_phase: Option<String>,
    /// Slow samples from `started_at` until it closed.
    pub slow_count: u32,
    /// Failed samples from `started_at` until it closed.
    pub failed_count: u32,
    /// How often each phase was the worst of a bad sample, in first-seen order.
    #[serde(default)]
    phase_counts: Vec<(String, u32)>,
    /// Samples from `started_at` that were not bad.
    #[serde(default)]
    pub healthy_count: u32,
    /// When a slow incident turned into a down one, if it did.
    #[serde(default)]
    pub escalated_at: Option<DateTime<Utc>>,
    /// The first bad sample of an earlier burst in the same bad run, which
    /// was not the onset (a blip before a pause as long as it); kept for
    /// the record, not counted.
    #[serde(default)]
    pub earlier_burst_at: Option<DateTime<Utc>>,
    /// How it ended; `None` while open (and in records stored before outcomes
    /// existed, which all recovered).
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// The level accepted as the new baseline, for [`Outcome::NewBaseline`].
    #[serde(default)]
    pub new_baseline: Option<Duration>,
    /// The soak-test run active when it opened, if any (noted by the
    /// incident layer, which knows the runs; the detector only keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// That run's phase at the incident's start (or when it opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_phase: Option<String>,
    /// The change window that covered the target when it opened, if any
    /// (noted by the incident layer, like the soak run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

impl Incident {
    /// A draft incident for a run starting at `at`.
    fn draft(at: DateTime<Utc>, baseline: Option<Duration>) -> Incident {
        Incident {
            kind: IncidentKind::Slow,
            started_at: at,
            detected_at: at,
            recovered_at: None,
            closed_at: None,
            peak_latency: None,
            baseline_at_onset: baseline,
            worst_phase: None,
            slow_count: 0,
            failed_count: 0,
            phase_counts: Vec::new(),
            healthy_count: 0,
            escalated_at: None,
            earlier_burst_at: None,
            outcome: None,
            new_baseline: None,
            run: None,
            run_phase: None,
            window: None,
        }
    }

    /// Counts one sample.
    fn record(&mut self, obs: &Observation, verdict: Verdict) {
        match verdict {
            Verdict::Healthy => {
                self.healthy_count += 1;
                return;
            }
            Verdict::Slow => self.slow_count += 1,
            Verdict::Failed => self.failed_count += 1,
        }
        if let Some(latency) = obs.latency {
            self.peak_latency = Some(self.peak_latency.map_or(latency, |p| p.max(latency)));
        }
        if let Some(phase) = &obs.worst_phase {
            match self.phase_counts.iter_mut().find(|(p, _)| p == phase) {
                Some((_, n)) => *n += 1,
                None => self.phase_counts.push((phase.clone(), 1)),
            }
            // The first phase to reach the highest count wins ties.
            let mut best: Option<&(String, u32)> = None;
            for entry in &self.phase_counts {
                if best.is_none_or(|b| entry.1 > b.1) {
                    best = Some(entry);
                }
            }
            self.worst_phase = best.map(|(p, _)| p.clone());
        }
    }

    /// Whether it is still open.
    pub fn is_open(&self) -> bool {
        self.recovered_at.is_none()
    }

    /// `recovered_at - started_at` in seconds; `None` while open.
    pub fn duration_seconds(&self) -> Option<f64> {
        self.recovered_at
            .map(|r| seconds_between(self.started_at, r))
    }

    /// `detected_at - started_at` in seconds.
    pub fn time_to_detect_seconds(&self) -> f64 {
        seconds_between(self.started_at, self.detected_at)
    }
}

/// `at` moved by `us` microseconds.
fn shift(at: DateTime<Utc>, us: i64) -> DateTime<Utc> {
    at.checked_add_signed(chrono::Duration::microseconds(us))
        .unwrap_or(at)
}

/// A time difference in microseconds, if it fits.
fn micros(d: chrono::Duration) -> Option<i64> {
    d.num_microseconds()
}

/// `to - from` in seconds, with microsecond precision.
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let d = to - from;
    match d.num_microseconds() {
        Some(us) => us as f64 / 1e6,
        None => d.num_milliseconds() as f64 / 1e3,
    }
}

/// What an observation changed.
#[derive(Debug, Clone, PartialEq)]
pub enum DetectEvent {
    /// An incident was confirmed (its `detected_at` is this observation).
    Opened(Incident),
    /// A slow incident became a down incident.
    Escalated(Incident),
    /// An incident recovered (its `closed_at` is this observation).
    Closed(Incident),
}

impl DetectEvent {
    /// The incident the event is about.
    pub fn incident(&self) -> &Incident {
        match self {
            DetectEvent::Opened(i) | DetectEvent::Escalated(i) | DetectEvent::Closed(i) => i,
        }
    }
}

/// A run of samples of one kind (bad, healthy or failed) that tolerates a
/// minority of the other kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Run {
    /// The first matching sample.
    first_at: DateTime<Utc>,
    /// The latest matching sample.
    last_at: DateTime<Utc>,
    /// Matching samples.
    matching: u32,
    /// Samples of the other kind seen since `first_at`.
    other: u32,
}

impl Run {
    fn new(at: DateTime<Utc>) -> Run {
        Run {
            first_at: at,
            last_at: at,
            matching: 1,
            other: 0,
        }
    }

    fn extend(&mut self, at: DateTime<Utc>) {
        self.matching += 1;
        self.last_at = at;
    }

    /// Whether the other kind is more than one sample per
    /// [`RECOVERY_HEALTHY_PER_BAD`] matching ones (a recovery run or a lead
    /// then ends).
    fn too_mixed(&self) -> bool {
        self.other * RECOVERY_HEALTHY_PER_BAD > self.matching
    }

    /// Whether the matching samples persisted for `span` and number `samples`.
    fn holds(&self, span: Duration, samples: u32) -> bool {
        let covered = (self.last_at - self.first_at).to_std().unwrap_or_default();
        self.matching >= samples && covered >= span
    }
}

/// Counts one sample of the other kind against `run` and drops the run when
/// the other kind outnumbers it (a majority run).
fn interrupt_majority(run: &mut Option<Run>) {
    if let Some(r) = run {
        r.other += 1;
        if r.other > r.matching {
            *run = None;
        }
    }
}

/// A pending run and the incident it would become.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    /// The whole run, which lives while its share of bad samples holds.
    run: Run,
    /// The incident its current burst would become.
    draft: Incident,
    /// Wall clock minus time axis when the run started, in microseconds: the
    /// draft's times are axis times plus this.
    #[serde(default)]
    wall_offset_us: i64,
    /// The current burst: the bad samples since the latest pause at least
    /// as long as the burst before it; `None`: the whole run.
    #[serde(default)]
    burst: Option<Run>,
    /// Healthy samples since the latest bad one.
    #[serde(default)]
    healthy_streak: u32,
    /// The rise that led into the current burst: the samples out of the
    /// normal band just before it, if any (see [`Lead`]).
    #[serde(default)]
    lead: Option<Lead>,
}

/// A stretch of samples out of the normal band (not back near the baseline,
/// as recovery judges it) outside incidents: where a rise began before any
/// of its samples were slow. It tolerates one sample back in the band per
/// [`RECOVERY_HEALTHY_PER_BAD`] out of it, like a recovery run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Lead {
    /// The samples out of the band (and those back in it).
    run: Run,
    /// The baseline when it began: the level before the rise.
    baseline: Option<Duration>,
}

/// How much of an open incident (outside its current recovery run) was
/// back at the recovery level: the more, the longer a recovery run must be
/// before it is more than chance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Mix {
    samples: u32,
    recovered: u32,
}

impl Mix {
    fn add(&mut self, samples: u32, recovered: u32) {
        self.samples = self.samples.saturating_add(samples);
        self.recovered = self.recovered.saturating_add(recovered);
    }

    /// Healthy samples a recovery run needs, besides `recover_for`: a run
    /// that chance alone would give at most [`background::CHANCE_RUN_PROBABILITY`]
    /// if a share of the incident's samples were healthy. The share is
    /// estimated with [`MIX_PRIOR_SAMPLES`] samples at the most an incident
    /// may hold, `1 - bad_share`, so that a young incident with a few
    /// healthy samples is not judged clean.
    fn required_recovery_samples(&self, bad_share: f64, most_samples: u32) -> u32 {
        let prior = f64::from(MIX_PRIOR_SAMPLES);
        let most = 1.0 - bad_share;
        let share = (f64::from(self.recovered) + prior * most) / (f64::from(self.samples) + prior);
        // An incident more healthy than a bad run may be is over, not intermittent.
        let share = share.min(most);
        background::chance_run_length(share, MIN_RUN_SAMPLES, most_samples)
    }
}

/// A level an open slow incident's latency holds, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shift {
    /// `ln(seconds)` in fixed point ([`baseline::to_fixed`]), a moving average.
    level: i64,
    /// The first sample at this level.
    since: DateTime<Utc>,
    /// Samples within [`SHIFT_BAND`] of the level, and outside it (failures too).
    inside: u32,
    outside: u32,
}

impl Shift {
    fn start(at: DateTime<Utc>, latency: Duration) -> Shift {
        Shift {
            level: baseline::to_fixed(latency.max(baseline::LATENCY_FLOOR).as_secs_f64().ln()),
            since: at,
            inside: 1,
            outside: 0,
        }
    }

    /// Whether the level stopped holding: more than one sample in
    /// [`RECOVERY_HEALTHY_PER_BAD`] outside it (the first few tolerated).
    fn broken(&self) -> bool {
        self.outside * RECOVERY_HEALTHY_PER_BAD > self.inside.max(RECOVERY_HEALTHY_PER_BAD)
    }
}

/// Whether a run's share of bad samples fell below `share`.
fn share_broken(run: &Run, share: f64) -> bool {
    f64::from(run.other) * share > f64::from(run.matching) * (1.0 - share)
}

/// The slowdown detector of one target. Feed it every probe result in order
/// with [`Detector::observe`]; persist it with serde to survive restarts (the
/// state is integers and timestamps except `settings.factor`; after
/// restoring, apply the current configuration with [`Detector::set_settings`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    settings: SlowdownSettings,
    baseline: Baseline,
    cadence: Cadence,
    /// The rate of bad samples that did not become incidents.
    background: Background,
    /// The (effective) time of the latest observation.
    last_at: Option<DateTime<Utc>>,
    /// Microseconds added to every observation's `at`: the sum of the steps
    /// back the input took, so effective time never decreases.
    #[serde(default)]
    skew_us: i64,
    /// The open incident's [`Pending::wall_offset_us`].
    #[serde(default)]
    incident_wall_offset_us: i64,
    /// The bad run that may become an incident, while none is open.
    pending: Option<Pending>,
    /// The open incident.
    incident: Option<Incident>,
    /// The healthy run that may close the open incident.
    recovery: Option<Run>,
    /// The failure run that may escalate an open slow incident.
    down_run: Option<Run>,
    /// The open incident's samples outside its recovery run.
    #[serde(default)]
    mix: Mix,
    /// The level the open slow incident holds, which may become the new baseline.
    #[serde(default)]
    shift: Option<Shift>,
    /// The stretch out of the normal band going on, while no incident is open.
    #[serde(default)]
    lead: Option<Lead>,
}

impl Detector {
    /// A detector with no history.
    pub fn new(settings: SlowdownSettings) -> Detector {
        Detector {
            settings,
            baseline: Baseline::default(),
            cadence: Cadence::default(),
            background: Background::default(),
            last_at: None,
            skew_us: 0,
            incident_wall_offset_us: 0,
            pending: None,
            incident: None,
            recovery: None,
            down_run: None,
            mix: Mix::default(),
            shift: None,
            lead: None,
        }
    }

    /// Replaces the settings (configuration reload); history, baseline and
    /// any open incident are kept.
    pub fn set_settings(&mut self, settings: SlowdownSettings) {
        self.settings = settings;
    }

    /// When the latest observation was made, if any.
    pub fn last_observation_at(&self) -> Option<DateTime<Utc>> {
        self.last_at
    }

    /// The settings in use.
    pub fn settings(&self) -> &SlowdownSettings {
        &self.settings
    }

    /// The current state.
    pub fn state(&self) -> State {
        match &self.incident {
            None => State::Healthy,
            Some(i) if i.kind == IncidentKind::Down => State::Down,
            Some(_) => State::Degraded,
        }
    }

    /// The baseline slowness is judged against: the pinned one, or the
    /// learned one once warm.
    pub fn baseline(&self) -> Option<Duration> {
        self.settings.baseline.or(self.baseline.value())
    }

    /// The learned baseline's estimator.
    pub fn learned_baseline(&self) -> &Baseline {
        &self.baseline
    }

    /// The typical interval between observations, once two were seen.
    pub fn typical_interval(&self) -> Option<Duration> {
        self.cadence.typical()
    }

    /// The open incident, if any.
    pub fn open_incident(&self) -> Option<&Incident> {
        self.incident.as_ref()
    }

    /// Notes the soak-test run and phase the open incident belongs to (the
    /// incident layer knows the runs; the detector only keeps the names).
    pub fn mark_open_incident(&mut self, run: &str, phase: Option<&str>) {
        if let Some(i) = self.incident.as_mut() {
            i.run = Some(run.to_string());
            i.run_phase = phase.map(str::to_string);
        }
    }

    /// Notes the change window that covers the open incident's target (the
    /// incident layer knows the windows; the detector only keeps the name).
    pub fn mark_open_window(&mut self, window: &str) {
        if let Some(i) = self.incident.as_mut() {
            i.window = Some(window.to_string());
        }
    }

    /// The rates of bad and of failed samples outside incidents (that did
    /// not open one).
    pub fn background(&self) -> &Background {
        &self.background
    }

    /// When the bad run that may open an incident started, if one is pending.
    pub fn pending_since(&self) -> Option<DateTime<Utc>> {
        self.pending.as_ref().map(|p| p.run.first_at)
    }

    /// Silences longer than this are gaps: [`MAX_GAP_INTERVALS`] typical
    /// intervals, and at least `recover_for`.
    pub fn max_gap(&self) -> Duration {
        let by_cadence = self
            .cadence
            .typical()
            .map_or(Duration::ZERO, |t| t.saturating_mul(MAX_GAP_INTERVALS));
        by_cadence.max(self.settings.recover_for)
    }

    /// How a sample with this latency (`None`: failed) would be judged now.
    pub fn classify(&self, latency: Option<Duration>) -> Verdict {
        let Some(latency) = latency else {
            return Verdict::Failed;
        };
        if self.settings.threshold.is_some_and(|t| latency > t) {
            return Verdict::Slow;
        }
        if let Some(base) = self.baseline() {
            let ratio_line = base.as_secs_f64() * self.settings.factor * (1.0 - FACTOR_TOLERANCE);
            let delta_line = base.saturating_add(self.settings.min_delta);
            if latency.as_secs_f64() >= ratio_line && latency >= delta_line {
                return Verdict::Slow;
            }
        }
        Verdict::Healthy
    }

    /// Whether a sample is back near `base`, the baseline an incident
    /// started from: under `recover_factor` times it, or less than half
    /// `min_delta` above it (and not over the threshold). Without a
    /// baseline, any sample that is not bad.
    fn is_recovered(&self, latency: Option<Duration>, base: Option<Duration>) -> bool {
        let Some(latency) = latency else {
            return false;
        };
        if self.classify(Some(latency)).is_bad() {
            return false;
        }
        let Some(base) = base else {
            return true;
        };
        let ratio_line = base.as_secs_f64() * self.settings.effective_recover_factor();
        let delta_line = base.saturating_add(self.settings.min_delta / 2);
        latency.as_secs_f64() < ratio_line || latency < delta_line
    }

    /// Feeds one observation; returns what it changed, if anything.
    pub fn observe(&mut self, obs: &Observation) -> Option<DetectEvent> {
        let mut at = shift(obs.at, self.skew_us);
        if let Some(last) = self.last_at {
            if at < last {
                // The input went back: carry on from the latest time.
                self.skew_us = self
                    .skew_us
                    .saturating_add(micros(last - at).unwrap_or(i64::MAX));
                at = last;
            }
        }
        let wall_offset = obs.wall.map_or(0, |w| micros(w - at).unwrap_or(0));
        let mut interval = Duration::ZERO;
        if let Some(last) = self.last_at {
            interval = (at - last).to_std().unwrap_or_default();
            if interval > self.max_gap() {
                // Nothing is known about the silence: runs in progress cannot
                // be said to have persisted through it.
                self.drop_pending();
                self.drop_recovery();
                self.down_run = None;
                self.lead = None;
                self.cadence.record(interval);
                // How far the baseline may rise is not known either.
                interval = Duration::ZERO;
            } else {
                self.cadence.record(interval);
            }
        }
        self.last_at = Some(at);
        let verdict = self.classify(obs.latency);
        if self.incident.is_none() {
            self.track_lead(at, obs.latency);
        }
        if self.incident.is_some() {
            self.observe_during_incident(at, obs, verdict)
        } else {
            self.observe_outside_incident(at, wall_offset, interval, obs, verdict)
        }
    }

    /// Follows the stretch of samples out of the normal band (see [`Lead`]).
    fn track_lead(&mut self, at: DateTime<Utc>, latency: Option<Duration>) {
        let baseline = self.baseline();
        if !self.is_recovered(latency, baseline) {
            match &mut self.lead {
                Some(lead) => lead.run.extend(at),
                None => {
                    self.lead = Some(Lead {
                        run: Run::new(at),
                        baseline,
                    })
                }
            }
        } else if let Some(lead) = &mut self.lead {
            lead.run.other += 1;
            if lead.run.too_mixed() {
                self.lead = None;
            }
        }
    }

    /// The per-sample weight of the baseline's moving average.
    fn baseline_alpha(&self) -> f64 {
        let samples = match self.cadence.typical() {
            Some(t) if !t.is_zero() => (BASELINE_TIME_CONSTANT.as_secs_f64() / t.as_secs_f64())
                .max(BASELINE_MIN_TIME_CONSTANT_SAMPLES),
            _ => BASELINE_MIN_TIME_CONSTANT_SAMPLES,
        };
        1.0 - (-1.0 / samples).exp()
    }

    /// Drops the pending run; its samples did not open an incident, so they
    /// count towards the background rate.
    fn drop_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            for _ in 0..p.draft.slow_count {
                self.record_background(Verdict::Slow);
            }
            for _ in 0..p.draft.failed_count {
                self.record_background(Verdict::Failed);
            }
            for _ in 0..p.run.other {
                self.record_background(Verdict::Healthy);
            }
        }
    }

    /// Drops the recovery run; its samples join the incident's mix.
    fn drop_recovery(&mut self) {
        if let Some(r) = self.recovery.take() {
            self.mix.add(r.matching + r.other, r.matching);
        }
    }

    /// Counts a sample outside incidents towards the background rates, once
    /// slowness can be judged at all.
    fn record_background(&mut self, verdict: Verdict) {
        if self.baseline().is_some() || self.settings.threshold.is_some() {
            self.background
                .record(verdict == Verdict::Slow, verdict == Verdict::Failed);
        }
    }

    fn observe_outside_incident(
        &mut self,
        at: DateTime<Utc>,
        wall_offset_us: i64,
        interval: Duration,
        obs: &Observation,
        verdict: Verdict,
    ) -> Option<DetectEvent> {
        let share = self.settings.bad_share;
        if verdict == Verdict::Healthy {
            match &mut self.pending {
                Some(p) => {
                    p.run.other += 1;
                    p.healthy_streak += 1;
                    p.draft.record(obs, verdict);
                    // A lone bad sample is a spike, not an onset.
                    if p.run.matching < 2 || share_broken(&p.run, share) {
                        self.drop_pending();
                    }
                }
                None => self.record_background(Verdict::Healthy),
            }
            // Frozen while a run is pending, so a slowdown's onset (or its
            // fast samples) cannot drag the baseline along.
            if self.pending.is_none() {
                if let Some(latency) = obs.latency {
                    let alpha = self.baseline_alpha();
                    self.baseline
                        .learn(latency, alpha, interval, self.settings.relearn_after);
                }
            }
            return None;
        }
        let baseline = self.baseline();
        let pending = match self.pending.as_mut() {
            Some(p) => {
                let burst_bad = p.burst.as_ref().map_or(p.run.matching, |b| b.matching);
                p.run.extend(at);
                if p.healthy_streak >= 2
                    && f64::from(p.healthy_streak) * share >= f64::from(burst_bad) * (1.0 - share)
                {
                    // A pause as long as the burst before it: that burst was
                    // a blip, and the onset is here.
                    let earlier = p.draft.earlier_burst_at.unwrap_or(p.draft.started_at);
                    p.draft = Incident::draft(shift(at, p.wall_offset_us), baseline);
                    p.draft.earlier_burst_at = Some(earlier);
                    p.burst = Some(Run::new(at));
                    p.lead = self.lead.clone();
                } else if let Some(b) = &mut p.burst {
                    b.extend(at);
                }
                p.healthy_streak = 0;
                p
            }
            None => self.pending.insert(Pending {
                run: Run::new(at),
                draft: Incident::draft(shift(at, wall_offset_us), baseline),
                wall_offset_us,
                burst: None,
                healthy_streak: 0,
                lead: self.lead.clone(),
            }),
        };
        pending.draft.record(obs, verdict);
        let mostly_failures = pending.draft.failed_count >= pending.draft.slow_count;
        let required = self.background.required_bad_samples(mostly_failures);
        let burst = pending.burst.as_ref().unwrap_or(&pending.run);
        if !burst.holds(self.settings.for_, required) {
            return None;
        }
        let burst_first_at = burst.first_at;
        let Pending {
            mut draft,
            wall_offset_us,
            lead,
            ..
        } = self.pending.take()?;
        self.lead = None;
        if let Some(lead) =
            lead.filter(|l| shift(l.run.first_at, wall_offset_us) < draft.started_at)
        {
            // The rise left the normal band before its first slow sample:
            // that is its onset, and its samples until then were healthy.
            // The snapshot ends with the burst's first sample.
            let lead_in = (lead.run.matching + lead.run.other).saturating_sub(1);
            draft.started_at = shift(lead.run.first_at, wall_offset_us);
            draft.healthy_count = draft.healthy_count.saturating_add(lead_in);
            draft.baseline_at_onset = lead.baseline.or(draft.baseline_at_onset);
        }
        draft.detected_at = shift(at, wall_offset_us);
        self.incident_wall_offset_us = wall_offset_us;
        draft.kind = if mostly_failures {
            IncidentKind::Down
        } else {
            IncidentKind::Slow
        };
        self.recovery = None;
        self.down_run = None;
        self.mix = Mix::default();
        self.mix.add(
            draft.slow_count + draft.failed_count + draft.healthy_count,
            draft.healthy_count,
        );
        self.shift = obs.latency.map(|l| Shift {
            inside: draft.slow_count,
            ..Shift::start(burst_first_at, l)
        });
        self.incident = Some(draft.clone());
        Some(DetectEvent::Opened(draft))
    }

    fn observe_during_incident(
        &mut self,
        at: DateTime<Utc>,
        obs: &Observation,
        verdict: Verdict,
    ) -> Option<DetectEvent> {
        let onset_base = self.incident.as_ref()?.baseline_at_onset;
        let recovered = self.is_recovered(obs.latency, onset_base.or(self.baseline()));
        let required = self
            .mix
            .required_recovery_samples(self.settings.bad_share, self.max_recovery_samples());
        let offset = self.incident_wall_offset_us;
        let incident = self.incident.as_mut()?;
        incident.record(obs, verdict);
        if verdict != Verdict::Failed {
            interrupt_majority(&mut self.down_run);
        }
        if recovered {
            let recovery = match self.recovery.as_mut() {
                Some(r) => {
                    r.extend(at);
                    r
                }
                None => self.recovery.insert(Run::new(at)),
            };
            if recovery.holds(self.settings.recover_for, required) {
                incident.recovered_at = Some(shift(recovery.first_at, offset));
                incident.closed_at = Some(shift(at, offset));
                incident.outcome = Some(Outcome::Recovered);
                return self.close();
            }
        } else {
            match &mut self.recovery {
                Some(r) => {
                    r.other += 1;
                    // Until it has the samples chance would rarely give, a
                    // recovery run must be clean.
                    if r.matching < required || r.too_mixed() {
                        self.drop_recovery();
                    }
                }
                None => self.mix.add(1, 0),
            }
        }
        if recovered {
            // Back near the old baseline is a recovery, not a new level.
            self.shift = None;
        } else if self.track_shift(at, obs.latency) {
            let level = self.shift.as_ref().map(|s| baseline::from_fixed(s.level))?;
            self.baseline.set(level);
            let incident = self.incident.as_mut()?;
            incident.recovered_at = Some(shift(at, offset));
            incident.closed_at = Some(shift(at, offset));
            incident.outcome = Some(Outcome::NewBaseline);
            incident.new_baseline = Some(level);
            return self.close();
        }
        let incident = self.incident.as_mut()?;
        if incident.kind == IncidentKind::Down || verdict != Verdict::Failed {
            return None;
        }
        let down = match self.down_run.as_mut() {
            Some(r) => {
                r.extend(at);
                r
            }
            None => self.down_run.insert(Run::new(at)),
        };
        if !down.holds(
            self.settings.for_,
            self.background.required_bad_samples(true),
        ) {
            return None;
        }
        incident.kind = IncidentKind::Down;
        incident.escalated_at = Some(shift(at, offset));
        self.down_run = None;
        self.shift = None;
        Some(DetectEvent::Escalated(incident.clone()))
    }

    /// Ends the open incident (its record is complete) and every run that
    /// belonged to it.
    fn close(&mut self) -> Option<DetectEvent> {
        let closed = self.incident.take()?;
        self.recovery = None;
        self.down_run = None;
        self.mix = Mix::default();
        self.shift = None;
        Some(DetectEvent::Closed(closed))
    }

    /// The most samples a recovery run may need: [`MAX_RECOVERY_SAMPLES`],
    /// and no more than [`MAX_RECOVERY_SPAN`] holds (at least
    /// [`MIN_RUN_SAMPLES`]), so sparse data (hourly series) is not asked for
    /// a clean day.
    fn max_recovery_samples(&self) -> u32 {
        let by_time = match self.cadence.typical() {
            Some(t) if !t.is_zero() => {
                (MAX_RECOVERY_SPAN.as_secs_f64() / t.as_secs_f64()).floor() as u32
            }
            _ => MAX_RECOVERY_SAMPLES,
        };
        by_time.clamp(MIN_RUN_SAMPLES, MAX_RECOVERY_SAMPLES)
    }

    /// Follows the level an open slow incident holds; true once it has held
    /// steadily for `relearn_after` (never with a pinned baseline, nor for
    /// a down incident).
    fn track_shift(&mut self, at: DateTime<Utc>, latency: Option<Duration>) -> bool {
        let slow = self
            .incident
            .as_ref()
            .is_some_and(|i| i.kind == IncidentKind::Slow);
        if !slow || self.settings.baseline.is_some() {
            self.shift = None;
            return false;
        }
        let alpha = self.baseline_alpha();
        let Some(s) = &mut self.shift else {
            self.shift = latency.map(|l| Shift::start(at, l));
            return false;
        };
        match latency {
            None => s.outside += 1,
            Some(l) => {
                let x = baseline::to_fixed(l.max(baseline::LATENCY_FLOOR).as_secs_f64().ln());
                let band = baseline::to_fixed(SHIFT_BAND.ln());
                if (x - s.level).abs() <= band {
                    s.inside += 1;
                } else {
                    s.outside += 1;
                }
                let step = (x - s.level).clamp(-band, band) as f64 * alpha;
                s.level += step.round() as i64;
            }
        }
        if s.broken() {
            self.shift = latency.map(|l| Shift::start(at, l));
            return false;
        }
        let held = (at - s.since).to_std().unwrap_or_default();
        held >= self.settings.relearn_after && s.inside >= MIN_RUN_SAMPLES
    }
}
