//! The sample pipeline: every probe result, in order, is recorded in the
//! metrics, fed to its target's slowdown detector, and, when an incident
//! opens, escalates or closes, turned into an alert in the durable outbox.
//!
//! One task owns this flow and its state (the detectors, the alerting in
//! force, the latest host load): everything reaches it as a [`Message`] on
//! one channel (samples, host snapshots, reloads), so events of a target are
//! handled in the order its samples arrived and nothing is shared behind a
//! lock. The incident is saved before its alert is queued; [`alert::reconcile`]
//! repairs the one gap a crash can leave between the two.
//!
//! When the store cannot take a write (a full disk), nothing is lost: the
//! incident record waits in `Incidents`, the alert waits in memory
//! ([`Pending`], bounded), and every second the pipeline writes them, in
//! that order (records first, so an incident is still saved before its
//! alert), once the store takes writes again. Each second it also reports
//! the store's condition in the metrics and `/healthz`, and reconciles the
//! outbox with the detectors whenever the store moved to another file (a
//! read-only directory became writable, a damaged file was replaced).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use tokio::sync::mpsc;

use crate::alert::pending::{DropReason, Pending};
use crate::alert::{self, AlertEvent, Alerting, Enqueued, HostLoad, IncidentContext};
use crate::clock::{Clock, JumpWatch, Stamp};
use crate::config::Target;
use crate::detect::DetectEvent;
use crate::health::{Condition, Health};
use crate::incident::Incidents;
use crate::metrics::soak::ActivePhase;
use crate::metrics::window::WindowOutcome;
use crate::metrics::Metrics;
use crate::sample::host::{HostSnapshot, TcpState};
use crate::sample::{Phase, Sample};
use crate::status::board::Judged;
use crate::status::Shared;
use crate::store::soak::{self, Run};
use crate::store::soak_stats;
use crate::store::windows::{self, ChangeWindow};
use crate::store::{window_stats, Store};
use crate::verdict::stats::PhaseStats;
use crate::window::WindowFigures;

/// How often detector states changed since the last save are written (and
/// what waits in memory for the store, and the store's condition reported).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How often the store is read for the soak-test run in progress (which
/// `mailpulse soak` and the API change), for the soak metrics.
pub const SOAK_POLL: Duration = Duration::from_secs(2);

/// The `/healthz` source of the store's conditions.
const HEALTH_SOURCE: &str = "state store";

/// What the pipeline is sent, in order, on its one channel. A sample is
/// moved in as it is (the hot path allocates nothing); the rare messages
/// are boxed, so they do not make every slot of the channel larger.
#[allow(
    clippy::large_enum_variant,
    reason = "boxing the sample would allocate once per sample"
)]
pub enum Message {
    /// A probe result: recorded, fed to its detector, maybe alerted on.
    Sample(Sample),
    /// A host load reading: recorded, and kept for alert texts.
    Host(Box<HostSnapshot>),
    /// A reloaded configuration.
    Reload(Box<Reload>),
}

impl From<Sample> for Message {
    fn from(sample: Sample) -> Message {
        Message::Sample(sample)
    }
}

impl From<HostSnapshot> for Message {
    fn from(snapshot: HostSnapshot) -> Message {
        Message::Host(Box::new(snapshot))
    }
}

/// What a reload changes in the pipeline.
pub struct Reload {
    /// The configured targets: detectors follow their settings, and those
    /// of removed targets go.
    pub targets: Vec<Target>,
    /// The alerting configuration now in force, when it changed.
    pub alerting: Option<Arc<Alerting>>,
}

/// The pipeline and the state it owns.
pub struct Pipeline {
    /// Where everything is exported.
    pub metrics: Arc<Metrics>,
    /// Every target's detector.
    pub incidents: Incidents,
    /// Receivers, routes and windows in force.
    pub alerting: Arc<Alerting>,
    /// The durable store of incidents and the outbox.
    pub store: Store,
    /// This agent's instance name.
    pub instance: String,
    /// The latest host load, for alert texts; `None` until the first
    /// host snapshot.
    pub host_load: Option<HostLoad>,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
    /// Where the store's condition is reported for `/healthz`.
    pub health: Arc<Health>,
    /// Each configured target's probe kind, for [`alert::reconcile`]; samples keep
    /// it current after reloads.
    pub kinds: HashMap<String, String>,
    /// The status page's board, kept current with every sample, host
    /// snapshot and incident event.
    pub status: Shared,
}

/// What the pipeline keeps between samples.
#[derive(Debug, Default)]
struct Backlog {
    /// Alerts the store could not take yet.
    pending: Pending,
    /// Each target's probe kind.
    kinds: HashMap<String, String>,
    /// The store generation last reconciled with; `None` before the first
    /// reconciliation succeeded.
    reconciled: Option<u64>,
    /// Damaged store files already counted in the metrics.
    corruptions: u64,
    /// Whether the last routine save failed (logged once, not every second).
    failing: bool,
    /// The soak-test run in progress when the store was last read.
    soak: Option<Run>,
    /// The figures of its phase in progress, for `mailpulse soak report`.
    phase: Option<PhaseRecorder>,
    /// The newest run as its phase boundaries were last queued for the
    /// `grafana` receivers; `None` until that succeeded (and after a
    /// reload, so new receivers get them).
    annotated: Option<Run>,
    /// The change windows open when the store was last read (every
    /// [`SOAK_POLL`], and when an incident opens); kept when a read fails.
    windows: Vec<ChangeWindow>,
    /// Whether `mailpulse_window_active` has been set since start-up.
    windows_shown: bool,
    /// Each target's incident (by its start) already paged beyond a change
    /// window's tolerance, so it is paged so once.
    beyond: HashMap<String, DateTime<Utc>>,
    /// The figures gathered inside each open change window, by window id.
    window_figures: HashMap<u64, WindowRecorder>,
}

/// The figures of one change window as the pipeline gathers them; saved at
/// most [`PHASE_SAVE`] apart, when the window ends and at shutdown.
#[derive(Debug)]
struct WindowRecorder {
    /// The window's id.
    id: u64,
    /// What was gathered, including what was saved before a restart.
    figures: WindowFigures,
    /// Whether something was gathered since the last save.
    dirty: bool,
    /// When the figures were last saved.
    saved_at: tokio::time::Instant,
}

impl WindowRecorder {
    /// Saves the figures if something changed; logs a failure (the next
    /// save tries again).
    fn save(&mut self, store: &Store) {
        if !self.dirty {
            return;
        }
        let bytes = serde_json::to_vec(&self.figures).expect("window figures serialize");
        match tokio::task::block_in_place(|| window_stats::save(store, self.id, &bytes)) {
            Ok(()) => {
                self.dirty = false;
                self.saved_at = tokio::time::Instant::now();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot save a change window's figures; trying again later")
            }
        }
    }
}

/// The p95 latency of `target`'s successful probes in the hour before
/// `start`, from the status board's latest probes, and how many there were.
fn hour_before(
    board: &crate::status::board::Board,
    target: &str,
    start: chrono::DateTime<chrono::Utc>,
) -> (Option<f64>, u32) {
    let Some(t) = board.targets.get(target) else {
        return (None, 0);
    };
    let (from, to) = (
        (start - chrono::Duration::hours(1)).timestamp_millis(),
        start.timestamp_millis(),
    );
    let mut latencies: Vec<f64> = t
        .recent()
        .filter(|p| from <= p.at_ms && p.at_ms < to)
        .filter_map(|p| p.latency())
        .map(|d| d.as_secs_f64())
        .collect();
    let n = latencies.len() as u32;
    (crate::window::p95(&mut latencies), n)
}

/// How often the figures of the soak phase in progress are saved (and when
/// the phase ends, and at shutdown): what a `kill -9` can lose of them.
pub const PHASE_SAVE: Duration = Duration::from_secs(60);

/// The figures of one soak phase as the pipeline gathers them.
#[derive(Debug)]
struct PhaseRecorder {
    /// The run's id.
    run: u64,
    /// The phase's index in the run.
    index: u32,
    /// The oldest run the store keeps (older rows go at the next save).
    oldest_run: u64,
    /// What was gathered, including what was saved before a restart.
    stats: PhaseStats,
    /// Whether something was gathered since the last save.
    dirty: bool,
    /// When the figures were last saved.
    saved_at: tokio::time::Instant,
}

impl PhaseRecorder {
    /// Saves the figures if something changed; logs a failure (the next
    /// save tries again).
    fn save(&mut self, store: &Store) {
        if !self.dirty {
            return;
        }
        let bytes = serde_json::to_vec(&self.stats).expect("phase figures serialize");
        let saved = tokio::task::block_in_place(|| {
            soak_stats::save(store, self.run, self.index, &bytes, self.oldest_run)
        });
        match saved {
            Ok(()) => {
                self.dirty = false;
                self.saved_at = tokio::time::Instant::now();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot save the soak phase's figures; trying again later")
            }
        }
    }
}

/// The soak metrics' view of a run in progress.
fn active_phase(run: &Run) -> ActivePhase {
    let (phase, at) = match run.current_phase() {
        Some(p) => (p.name.clone(), p.started_at),
        None => (String::new(), run.started_at),
    };
    ActivePhase {
        run: run.name.clone(),
        phase,
        started_at: at.timestamp_millis() as f64 / 1000.0,
    }
}

/// The short host-load summary alerts carry.
pub fn host_load(s: &HostSnapshot) -> HostLoad {
    HostLoad {
        cpu_ratio: s.cpu.as_ref().map(|c| c.usage_ratio),
        load1: s.load.as_ref().map(|l| l.load1),
        memory_available_bytes: s.memory.as_ref().map(|m| m.available_bytes),
        tcp_established: s.tcp.as_ref().map(|t| t.get(TcpState::Established)),
    }
}

impl Pipeline {
    /// Reconciles the outbox with the detectors, then runs until every sender
    /// of `rx` is gone, and saves what it can.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Message>) {
        for r in DropReason::ALL {
            self.metrics
                .agent
                .alerts_dropped
                .with_label_values(&[r.as_str()]);
        }
        let mut backlog = Backlog {
            kinds: self.kinds.clone(),
            ..Backlog::default()
        };
        self.settle(&mut backlog);
        let mut last_ok: HashMap<String, bool> = HashMap::new();
        let mut jumps = JumpWatch::default();
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut soak_poll = tokio::time::interval(SOAK_POLL);
        soak_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Message::Sample(s)) => {
                        log_transition(&mut last_ok, &s);
                        self.watch_clock(&mut jumps, &s);
                        self.handle(&mut backlog, &s);
                    }
                    Some(Message::Host(snapshot)) => {
                        self.record_host(&snapshot);
                        if let Some(r) = &mut backlog.phase {
                            r.stats.observe_host(&snapshot);
                            r.dirty = true;
                        }
                    }
                    Some(Message::Reload(reload)) => {
                        self.reload(*reload);
                        backlog.annotated = None;
                    }
                    None => break,
                },
                _ = flush.tick() => self.settle(&mut backlog),
                _ = soak_poll.tick() => {
                    self.poll_soak(&mut backlog);
                    self.poll_windows(&mut backlog);
                }
            }
        }
        self.settle(&mut backlog);
        if let Some(r) = &mut backlog.phase {
            r.save(&self.store);
        }
        for r in backlog.window_figures.values_mut() {
            r.save(&self.store);
        }
        if !backlog.pending.is_empty() {
            tracing::error!(
                alerts = backlog.pending.len(),
                "stopping with alerts the state store never took; they are lost"
            );
        }
    }

    /// Reads the soak-test run in progress and shows it in the metrics when
    /// it changed. A store that cannot be read keeps the last known run.
    fn poll_soak(&mut self, backlog: &mut Backlog) {
        let Ok(newest) = tokio::task::block_in_place(|| soak::newest_run(&self.store)) else {
            return;
        };
        self.annotate_phases(backlog, newest.as_ref());
        let run = newest.filter(Run::is_active);
        let changed = run != backlog.soak;
        backlog.soak = run;
        // The figures first: once the metrics show a phase over, its
        // figures are in the store.
        self.follow_phase(backlog);
        if changed {
            self.metrics
                .soak
                .set(backlog.soak.as_ref().map(active_phase).as_ref());
        }
    }

    /// Reads the change windows open now (`mailpulse window`, the API and
    /// `[[window]]` write them from elsewhere, so there is no event to wait
    /// for), first storing the occurrence of each `[[window]]` open now
    /// that the store does not hold yet (so a planned window is then a
    /// stored one like any other), and shows them in
    /// `mailpulse_window_active`. A store that cannot be read keeps the last
    /// known windows.
    fn poll_windows(&mut self, backlog: &mut Backlog) {
        let now = self.clock.now();
        let store = &self.store;
        let planned = &self.alerting.config.windows;
        let read = tokio::task::block_in_place(|| {
            let mut all = windows::windows(store)?;
            for w in planned {
                let Some((start, end)) = w.occurrence_at(now) else {
                    continue;
                };
                if all.iter().any(|s| s.name == w.name && s.starts_at == start) {
                    continue;
                }
                match windows::ensure_occurrence(store, w.change_window(start, end)) {
                    Ok(stored) => {
                        tracing::info!(window = %w.name, starts_at = %start, ends_at = %end, "planned change window opened");
                        all.push(stored);
                    }
                    Err(e) => {
                        tracing::warn!(window = %w.name, error = %e, "cannot store the planned change window; trying again shortly")
                    }
                }
            }
            Ok::<_, crate::store::StoreError>(all)
        });
        let Ok(all) = read else {
            return;
        };
        let open: Vec<ChangeWindow> = all.into_iter().filter(|w| w.is_open_at(now)).collect();
        if open != backlog.windows || !backlog.windows_shown {
            self.metrics
                .window
                .set_open(open.iter().map(|w| w.name.as_str()));
            backlog.windows_shown = true;
        }
        backlog.windows = open;
        self.follow_windows(backlog);
    }

    /// Keeps a figures recorder for each open change window: starts one from
    /// what the store has of it (a restart goes on where it stopped), saves
    /// each at most [`PHASE_SAVE`] apart, and saves and drops the recorders
    /// of windows that ended (their summary reads the figures from the store).
    fn follow_windows(&mut self, backlog: &mut Backlog) {
        let open: Vec<u64> = backlog.windows.iter().map(|w| w.id).collect();
        let ended: Vec<u64> = backlog
            .window_figures
            .keys()
            .filter(|id| !open.contains(id))
            .copied()
            .collect();
        for id in ended {
            if let Some(mut r) = backlog.window_figures.remove(&id) {
                r.save(&self.store);
            }
        }
        for id in open {
            if let Some(r) = backlog.window_figures.get_mut(&id) {
                if r.saved_at.elapsed() >= PHASE_SAVE {
                    r.save(&self.store);
                }
                continue;
            }
            let Ok(stored) = tokio::task::block_in_place(|| window_stats::load(&self.store, id))
            else {
                continue;
            };
            let figures = stored
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default();
            backlog.window_figures.insert(
                id,
                WindowRecorder {
                    id,
                    figures,
                    dirty: false,
                    saved_at: tokio::time::Instant::now(),
                },
            );
        }
    }

    /// Counts a sample in the figures of every open change window that
    /// covers its target.
    fn record_in_windows(&self, backlog: &mut Backlog, sample: &Sample) {
        for w in &backlog.windows {
            if !alert::change_window_covers(w, &sample.target, sample.started_at) {
                continue;
            }
            let Some(r) = backlog.window_figures.get_mut(&w.id) else {
                continue;
            };
            let latency = sample
                .phase(Phase::Total)
                .filter(|_| sample.success())
                .map(|d| d.as_secs_f64());
            let status = &self.status;
            r.figures.observe(&sample.target, latency, || {
                let mut before = (None, 0);
                status.update(|board| before = hour_before(board, &sample.target, w.starts_at));
                before
            });
            r.dirty = true;
        }
    }

    /// Queues the phase boundaries of the newest run for the `grafana`
    /// receivers when it changed since they were last queued (and once after
    /// start-up and each reload); the outbox remembers what it queued, so
    /// reading the same run again queues nothing twice.
    fn annotate_phases(&mut self, backlog: &mut Backlog, newest: Option<&Run>) {
        let Some(run) = newest else { return };
        if backlog.annotated.as_ref() == Some(run) {
            return;
        }
        let now = self.clock.now();
        let queued = tokio::task::block_in_place(|| {
            alert::enqueue_phase_marks(&self.store, &self.alerting, &self.instance, run, now)
        });
        match queued {
            Ok(_) => backlog.annotated = Some(run.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot queue the soak phase annotations; trying again later")
            }
        }
    }

    /// Keeps the phase figures in step with the run in progress: saves a
    /// phase's figures when it ends, and starts the next phase's from what
    /// the store has of it (a restart mid-phase goes on where it stopped).
    fn follow_phase(&mut self, backlog: &mut Backlog) {
        let now = backlog.soak.as_ref().and_then(|run| {
            run.current_phase()
                .map(|_| (run.id, (run.phases.len() - 1) as u32))
        });
        let current = backlog.phase.as_ref().map(|r| (r.run, r.index));
        if now == current {
            if let Some(r) = backlog
                .phase
                .as_mut()
                .filter(|r| r.saved_at.elapsed() >= PHASE_SAVE)
            {
                r.save(&self.store);
            }
            return;
        }
        if let Some(mut ended) = backlog.phase.take() {
            ended.save(&self.store);
        }
        let Some((run, index)) = now else { return };
        let stored = tokio::task::block_in_place(|| soak_stats::load(&self.store, run));
        let stats = stored
            .ok()
            .and_then(|rows| rows.into_iter().find(|(i, _)| *i == index))
            .and_then(|(_, bytes)| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let oldest_run = tokio::task::block_in_place(|| soak::runs(&self.store))
            .ok()
            .and_then(|runs| runs.first().map(|r| r.id))
            .unwrap_or(run);
        backlog.phase = Some(PhaseRecorder {
            run,
            index,
            oldest_run,
            stats,
            dirty: false,
            saved_at: tokio::time::Instant::now(),
        });
    }

    /// Records a host snapshot and keeps its summary for alert texts.
    fn record_host(&mut self, snapshot: &HostSnapshot) {
        self.metrics.host.record(snapshot);
        self.status.update(|board| board.record_host(snapshot));
        self.host_load = Some(host_load(snapshot));
    }

    /// Applies a reloaded configuration: detectors follow the targets, and
    /// alerts queued from now on go by the new alerting configuration.
    fn reload(&mut self, reload: Reload) {
        if let Some(alerting) = reload.alerting {
            self.alerting = alerting;
        }
        self.incidents.configure(&reload.targets);
        let names: Vec<&str> = reload.targets.iter().map(|t| t.name.as_str()).collect();
        self.status.update(|board| board.retain_targets(&names));
    }

    /// Logs and counts a step of the system clock that a sample's start
    /// times reveal.
    fn watch_clock(&self, jumps: &mut JumpWatch, sample: &Sample) {
        let stamp = Stamp {
            wall: sample.started_at,
            steady: sample.steady_at,
        };
        if let Some(jump) = jumps.observe(stamp) {
            self.metrics
                .agent
                .clock_jumps
                .with_label_values(&[jump.direction()])
                .inc();
            tracing::warn!(
                direction = jump.direction(),
                by_seconds = jump.by.num_milliseconds() as f64 / 1e3,
                now = %jump.wall,
                "the system clock was stepped; detection goes on measuring durations on the monotonic clock, incident times follow the new clock from the next incident"
            );
        }
    }

    /// Writes what waits for the store (incident records and detector
    /// states, then alerts), reconciles when the store moved to another
    /// file, and reports the store's condition.
    fn settle(&mut self, backlog: &mut Backlog) {
        // Most seconds there is nothing to do: stay on this worker then.
        let idle = self.store.is_durable()
            && backlog.pending.is_empty()
            && backlog.reconciled == Some(self.store.status().generation)
            && !self.incidents.has_unsaved();
        if idle {
            return self.report(backlog);
        }
        tokio::task::block_in_place(|| {
            self.store.maintain();
            let saved = {
                let incidents = &mut self.incidents;
                let result = if incidents.has_unsaved() {
                    incidents.flush().map(|_| ())
                } else {
                    Ok(())
                };
                match &result {
                    Err(e) if !backlog.failing => {
                        tracing::error!(error = %e, "cannot save detector state; retrying every second");
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot save detector state"),
                    Ok(()) => {}
                }
                if result.is_err() {
                    self.metrics.agent.store_errors.inc();
                }
                backlog.failing = result.is_err();
                result.is_ok() && incidents.unsaved_incidents() == 0
            };
            if saved && !backlog.pending.is_empty() {
                match backlog.pending.flush(&self.store, &self.alerting) {
                    Ok(n) => tracing::info!(
                        written = n,
                        waiting = backlog.pending.len(),
                        "alerts kept in memory are in the outbox now"
                    ),
                    Err(e) => {
                        self.metrics.agent.store_errors.inc();
                        tracing::debug!(error = %e, waiting = backlog.pending.len(), "the state store still cannot take the alerts kept in memory");
                    }
                }
            }
            let generation = self.store.status().generation;
            if saved && backlog.pending.is_empty() && backlog.reconciled != Some(generation) {
                match alert::reconcile(
                    &self.store,
                    &self.alerting,
                    &self.incidents,
                    &self.instance,
                    &backlog.kinds,
                    self.clock.now(),
                ) {
                    Ok(()) => backlog.reconciled = Some(generation),
                    Err(e) => {
                        self.metrics.agent.store_errors.inc();
                        tracing::error!(error = %e, "cannot reconcile alerts with incidents");
                    }
                }
            }
        });
        self.report(backlog);
    }

    /// Puts the store's condition and what waits in memory in the metrics and
    /// `/healthz`.
    fn report(&self, backlog: &mut Backlog) {
        let status = self.store.status();
        let agent = &self.metrics.agent;
        agent.store_durable.set(i64::from(status.durable));
        if status.corruptions > backlog.corruptions {
            agent
                .store_corruptions
                .inc_by(status.corruptions - backlog.corruptions);
            backlog.corruptions = status.corruptions;
        }
        agent
            .alerts_pending_memory
            .set(backlog.pending.len() as i64);
        let unsaved = self.incidents.unsaved_incidents();
        let mut conditions = Vec::new();
        if let Some(problem) = status.problem {
            conditions.push(Condition::Degraded(format!("state store: {problem}")));
        }
        if !backlog.pending.is_empty() || unsaved > 0 {
            conditions.push(Condition::Degraded(format!(
                "{} alert(s) and {unsaved} incident record(s) waiting in memory for the state store",
                backlog.pending.len()
            )));
        }
        conditions.extend(
            status
                .notes
                .into_iter()
                .map(|n| Condition::Note(format!("state store: {n}"))),
        );
        self.health.set_conditions(HEALTH_SOURCE, conditions);
    }

    /// Records one sample and acts on what its detector decided.
    fn handle(&mut self, backlog: &mut Backlog, sample: &Sample) {
        self.metrics.probe.record(sample);
        if let Some(r) = &mut backlog.phase {
            r.stats.observe(sample);
            r.dirty = true;
        }
        self.record_in_windows(backlog, sample);
        // A store that failed (disk full) shows as not durable until it recovers.
        self.metrics
            .agent
            .store_durable
            .set(i64::from(self.store.is_durable()));
        if backlog.kinds.get(&sample.target).map(String::as_str) != Some(sample.kind.as_str()) {
            backlog
                .kinds
                .insert(sample.target.clone(), sample.kind.as_str().to_string());
        }
        let (event, saved, state, baseline, open_since, fresh_windows) = {
            let incidents = &mut self.incidents;
            // Only a sample that opens, escalates or closes an incident writes
            // to the store; the rest stay on this worker (block_in_place hands
            // the worker to another thread, which costs more than detection).
            let mut event = incidents.detect(sample);
            let store = &self.store;
            let known = &backlog.soak;
            let now = self.clock.now();
            let mut fresh_windows = None;
            let known_windows = &backlog.windows;
            let error = event.as_mut().and_then(|e| {
                tokio::task::block_in_place(|| {
                    if let DetectEvent::Opened(i) = e {
                        // The store, not the last poll: a window opened a
                        // second ago covers the incident (and holds its page).
                        let open =
                            windows::open_at(store, now).unwrap_or_else(|_| known_windows.clone());
                        if let Some(w) = alert::covering_window(&open, &sample.target, now) {
                            incidents.mark_window(&sample.target, &w.name);
                            i.window = Some(w.name.clone());
                        }
                        fresh_windows = Some(open);
                        // The store, not the last poll: a phase marked a
                        // second ago counts.
                        let run = soak::active_run(store).unwrap_or_else(|_| known.clone());
                        if let Some(run) = run {
                            let phase = run
                                .phase_at(i.started_at)
                                .or_else(|| run.current_phase())
                                .map(|p| p.name.clone());
                            incidents.mark_open(&sample.target, &run.name, phase.as_deref());
                            i.run = Some(run.name);
                            i.run_phase = phase;
                        }
                    }
                    incidents.save_event(&sample.target, e)
                })
                .err()
            });
            if let Some(err) = &error {
                self.metrics.agent.store_errors.inc();
                tracing::error!(target = %sample.target, error = %err, "cannot save an incident; keeping it in memory until the store takes it");
            }
            let Some(d) = incidents.detector(&sample.target) else {
                return;
            };
            let (state, baseline) = (d.state(), d.baseline());
            let open_since = d.open_incident().map(|i| i.started_at);
            self.status.update(|board| {
                board.record(
                    sample,
                    Judged {
                        state,
                        baseline,
                        settings: d.settings(),
                        open: d.open_incident(),
                        event: event.is_some(),
                    },
                )
            });
            (
                event,
                error.is_none(),
                state,
                baseline,
                open_since,
                fresh_windows,
            )
        };
        if let Some(open) = fresh_windows {
            backlog.windows = open;
        }
        self.metrics
            .detect
            .record_state(&sample.target, state, baseline, open_since);
        let beyond = self.beyond_tolerance(backlog, sample);
        let Some(event) = event else {
            if let Some((window, why)) = beyond {
                // Beyond tolerance between events: the incident as it is now.
                let Some(incident) = self
                    .incidents
                    .detector(&sample.target)
                    .and_then(|d| d.open_incident())
                    .cloned()
                else {
                    return;
                };
                let mut alert = AlertEvent::from_incident(&incident, self.context(sample));
                alert.beyond_tolerance = Some(why);
                alert.window = Some(window);
                let started_at = incident.started_at;
                self.queue_beyond(backlog, alert, started_at, true);
            }
            return;
        };
        self.metrics.detect.record_event(&sample.target, &event);
        let incident = event.incident();
        match &event {
            DetectEvent::Opened(i) => tracing::warn!(
                target = %sample.target, kind = %i.kind, started_at = %i.started_at,
                "incident opened"
            ),
            DetectEvent::Escalated(i) => tracing::warn!(
                target = %sample.target, started_at = %i.started_at,
                "incident escalated to down"
            ),
            DetectEvent::Closed(i) => tracing::info!(
                target = %sample.target, kind = %i.kind,
                duration_seconds = i.duration_seconds().unwrap_or_default(),
                outcome = i.outcome.map_or("recovered", |o| o.as_str()),
                new_baseline_seconds = i.new_baseline.map(|d| d.as_secs_f64()),
                "incident closed"
            ),
        }
        let mut alert = AlertEvent::from_incident(incident, self.context(sample));
        match (&event, beyond) {
            (DetectEvent::Closed(_), _) => {
                backlog.beyond.remove(&sample.target);
            }
            (_, Some((window, why))) => {
                // Opened or escalated beyond tolerance: this page goes out.
                alert.beyond_tolerance = Some(why);
                alert.window = Some(window);
                let started_at = incident.started_at;
                self.queue_beyond(backlog, alert, started_at, saved);
                return;
            }
            _ => {}
        }
        let opened = matches!(event, DetectEvent::Opened(_));
        if let Some(Enqueued::Held(by)) = self.queue(backlog, alert, saved) {
            if let Some(window) = by.strip_prefix("window ").filter(|_| opened) {
                self.metrics.window.count(window, WindowOutcome::Held);
            }
        }
    }

    /// What an alert of `sample`'s target carries besides its incident.
    fn context(&self, sample: &Sample) -> IncidentContext {
        IncidentContext {
            instance: self.instance.clone(),
            target: sample.target.clone(),
            probe_kind: sample.kind.as_str().to_string(),
            severity: self
                .alerting
                .config
                .severity_for(&sample.target)
                .to_string(),
            current_latency_seconds: sample
                .success()
                .then(|| sample.phase(Phase::Total).map(|d| d.as_secs_f64()))
                .flatten(),
            last_error: sample
                .failure
                .as_ref()
                .map(|f| format!("{}: {}", f.reason, f.message)),
            host: self.host_load.clone(),
        }
    }

    /// Whether `sample`'s target has an open incident, covered by an open
    /// change window, that went beyond the window's tolerance with this
    /// sample and was not paged so yet: the window's name and why.
    fn beyond_tolerance(&self, backlog: &Backlog, sample: &Sample) -> Option<(String, String)> {
        if backlog.windows.is_empty() {
            return None;
        }
        let d = self.incidents.detector(&sample.target)?;
        let i = d.open_incident()?;
        if backlog.beyond.get(&sample.target) == Some(&i.started_at) {
            return None;
        }
        let w = alert::covering_window(&backlog.windows, &sample.target, self.clock.now())?;
        let latency = sample
            .success()
            .then(|| sample.phase(Phase::Total))
            .flatten();
        let why = alert::beyond_tolerance(w, i, d.baseline(), latency, sample.started_at)?;
        Some((w.name.clone(), why))
    }

    /// Queues a page beyond a change window's tolerance (its incident
    /// `saved` or not, as for [`Pipeline::queue`]), once per incident, and
    /// counts it when it goes out.
    fn queue_beyond(
        &mut self,
        backlog: &mut Backlog,
        alert: AlertEvent,
        started_at: DateTime<Utc>,
        saved: bool,
    ) {
        backlog.beyond.insert(alert.target.clone(), started_at);
        let window = alert.window.clone().unwrap_or_default();
        let outcome = self.queue(backlog, alert, saved);
        if matches!(outcome, Some(Enqueued::Queued(_)) | None) {
            self.metrics
                .window
                .count(&window, WindowOutcome::BeyondTolerance);
        }
    }

    /// Queues an alert: straight to the outbox when its incident is saved
    /// (`saved`) and nothing older waits, with what [`alert::enqueue`] did;
    /// otherwise behind what waits in memory, in order (`None`).
    fn queue(&mut self, backlog: &mut Backlog, alert: AlertEvent, saved: bool) -> Option<Enqueued> {
        let alerting = &self.alerting;
        let now = self.clock.now();
        // Straight to the outbox when the incident is saved and nothing older
        // waits; otherwise behind what waits, in order.
        if saved && backlog.pending.is_empty() {
            match tokio::task::block_in_place(|| alert::enqueue(&self.store, alerting, &alert, now))
            {
                Ok(outcome) => return Some(outcome),
                Err(e) => {
                    self.metrics.agent.store_errors.inc();
                    tracing::error!(target = %alert.target, error = %e, "cannot queue an alert; keeping it in memory until the store takes it");
                }
            }
        }
        let target = alert.target.clone();
        for gone in backlog.pending.push(alert, now) {
            self.metrics
                .agent
                .alerts_dropped
                .with_label_values(&[DropReason::MemoryFull.as_str()])
                .inc();
            tracing::error!(
                target = %gone.target,
                incident = %gone.incident_key,
                status = gone.status.as_str(),
                "alert dropped: too many alerts waiting in memory for the state store"
            );
        }
        tracing::warn!(
            target = %target,
            waiting = backlog.pending.len(),
            "alert waiting in memory for the state store"
        );
        self.report(backlog);
        None
    }
}

/// Logs each target's transitions between success and failure.
fn log_transition(last_ok: &mut HashMap<String, bool>, sample: &Sample) {
    let ok = sample.success();
    let was_ok = last_ok.insert(sample.target.clone(), ok);
    match (&sample.failure, was_ok) {
        (Some(f), None | Some(true)) => tracing::warn!(
            target = %sample.target,
            kind = %sample.kind,
            reason = %f.reason,
            phase = %f.phase,
            "probe failed: {}", f.message
        ),
        (None, Some(false)) => tracing::info!(
            target = %sample.target,
            kind = %sample.kind,
            "probe succeeded again"
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertStatus, BoxFuture, DeliveryError, Receiver};
    use crate::clock::TokioClock;
    use crate::store::{incidents as history, outbox};
    use chrono::Duration as WallDuration;
    use chrono::{DateTime, Utc};

    /// A receiver that is never called here (nothing delivers in these tests).
    struct Hook;

    impl Receiver for Hook {
        fn name(&self) -> &str {
            "hook"
        }
        fn kind(&self) -> &'static str {
            "webhook"
        }
        fn send<'a>(&'a self, _: &'a AlertEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
            Box::pin(async { Ok(()) })
        }
    }

    const CONFIG: &str = "[slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
        [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\n";

    fn pipeline(store: &Store) -> Pipeline {
        let config = crate::config::parse(CONFIG, None).unwrap();
        let incidents = Incidents::load(Some(store.clone()), &config.targets).unwrap();
        let alerting = Alerting::with_receivers(config.alerting.clone(), vec![Arc::new(Hook)]);
        Pipeline {
            metrics: Arc::new(Metrics::new("cas01").unwrap()),
            incidents,
            alerting: Arc::new(alerting),
            store: store.clone(),
            instance: "cas01".into(),
            host_load: None,
            clock: crate::clock::system(),
            health: Health::new(),
            kinds: HashMap::from([("owa".to_string(), "http".to_string())]),
            status: Shared::new("cas01", chrono::Utc::now()),
        }
    }

    /// The daemon's store in `dir`, a pipeline on it and its backlog, after
    /// the pipeline's first step (start-up reconciliation).
    fn start(dir: &std::path::Path) -> (Store, Pipeline, Backlog) {
        let store = Store::open_daemon(dir);
        let mut p = pipeline(&store);
        let mut b = Backlog {
            kinds: p.kinds.clone(),
            ..Backlog::default()
        };
        p.settle(&mut b);
        (store, p, b)
    }

    /// Feeds `n` samples of `ms` milliseconds, 100 ms apart from `*at`.
    fn feed(p: &mut Pipeline, b: &mut Backlog, at: &mut DateTime<Utc>, n: usize, ms: u64) {
        for _ in 0..n {
            let stamp = Stamp {
                wall: *at,
                steady: *at,
            };
            p.handle(b, &stamped(stamp, ms));
            *at += chrono::Duration::milliseconds(100);
        }
    }

    fn statuses(store: &Store) -> Vec<AlertStatus> {
        let mut rows = outbox::all_rows(store).unwrap();
        rows.sort_by_key(|e| e.id);
        rows.iter()
            .map(|e| {
                serde_json::from_str::<AlertEvent>(&e.payload)
                    .unwrap()
                    .status
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn alerts_wait_in_memory_while_the_store_fails_then_follow_their_incidents_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut p, mut b) = start(dir.path());
        let mut at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        feed(&mut p, &mut b, &mut at, 60, 1);

        // The disk fills; an incident opens and closes.
        store.fail_writes(true);
        feed(&mut p, &mut b, &mut at, 20, 100);
        feed(&mut p, &mut b, &mut at, 30, 1);
        p.settle(&mut b);
        assert_eq!(b.pending.len(), 2, "firing and resolved wait in memory");
        assert_eq!(p.incidents.unsaved_incidents(), 1);
        assert!(statuses(&store).is_empty(), "nothing reached the outbox");
        assert!(history::history(&store, 10).unwrap().is_empty());
        assert_eq!(p.metrics.agent.store_durable.get(), 0);
        assert_eq!(p.metrics.agent.alerts_pending_memory.get(), 2);
        let (healthy, body) = p.health.report();
        assert!(!healthy);
        assert!(
            body.contains("degraded: 2 alert(s) and 1 incident record(s) waiting in memory"),
            "{body}"
        );

        // Space returns: the incident is stored, then its alerts, in order.
        store.fail_writes(false);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !b.pending.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "never written");
            p.settle(&mut b);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            statuses(&store),
            [AlertStatus::Firing, AlertStatus::Resolved]
        );
        let records = history::history(&store, 10).unwrap();
        assert_eq!(records.len(), 1);
        assert!(records[0].incident.recovered_at.is_some());
        assert_eq!(p.incidents.unsaved_incidents(), 0);
        assert_eq!(p.metrics.agent.store_durable.get(), 1);
        assert_eq!(p.metrics.agent.alerts_pending_memory.get(), 0);
        assert_eq!(p.health.report(), (true, "ok\n".to_string()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_store_moving_to_another_file_is_reconciled_with_the_detectors() {
        let dir = tempfile::tempdir().unwrap();
        let (store, mut p, mut b) = start(dir.path());
        assert_eq!(b.reconciled, Some(1));
        let mut at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        feed(&mut p, &mut b, &mut at, 60, 1);
        feed(&mut p, &mut b, &mut at, 20, 100);
        assert_eq!(statuses(&store), [AlertStatus::Firing]);
        // The file is damaged twice: a fresh one replaces it (generation 2).
        for _ in 0..2 {
            let _ = store.read(|_| -> Result<(), redb::Error> { panic!("invalid page type 9") });
            store.maintain();
        }
        assert_eq!(store.status().generation, 2);
        p.settle(&mut b);
        assert_eq!(b.reconciled, Some(2));
        assert_eq!(p.metrics.agent.store_corruptions.get(), 1);
        // The open incident's page survived the move, so nothing new is queued.
        assert_eq!(statuses(&store), [AlertStatus::Firing]);
        let (healthy, body) = p.health.report();
        assert!(healthy, "{body}");
        assert!(body.starts_with("ok\nnote: state store: "), "{body}");
    }

    /// Host snapshots and reloads arrive on the pipeline's one channel, in
    /// order with the samples: the host load is recorded and carried by the
    /// alert of the next incident, and a reload that removes the target
    /// drops its detector before the samples sent after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn host_snapshots_and_reloads_are_messages_in_order_with_samples() {
        use crate::sample::host::LoadAverage;
        let store = Store::in_memory().unwrap();
        let p = pipeline(&store);
        let metrics = p.metrics.clone();
        let (tx, rx) = mpsc::channel(16);
        let running = tokio::spawn(p.run(rx));
        let snapshot = HostSnapshot {
            load: Some(LoadAverage {
                load1: 1.5,
                load5: 1.0,
                load15: 0.5,
            }),
            ..HostSnapshot::default()
        };
        tx.send(snapshot.into()).await.unwrap();
        let mut at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut feed = async |samples: &[u64]| {
            for &ms in samples {
                let stamp = Stamp {
                    wall: at,
                    steady: at,
                };
                tx.send(stamped(stamp, ms).into()).await.unwrap();
                at += chrono::Duration::milliseconds(100);
            }
        };
        feed(&[&[1; 60][..], &[100; 20]].concat()).await;
        // The target goes: healthy samples still queued for it would have
        // closed the incident (and queued its resolve) had it stayed.
        let reload = Reload {
            targets: Vec::new(),
            alerting: None,
        };
        tx.send(Message::Reload(Box::new(reload))).await.unwrap();
        feed(&[1; 30]).await;
        drop(tx);
        running.await.unwrap();

        let page = String::from_utf8(metrics.encode()).unwrap();
        assert!(page.contains("\nmailpulse_host_load1 1.5\n"), "{page}");
        let rows = outbox::all_rows(&store).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let alert: AlertEvent = serde_json::from_str(&rows[0].payload).unwrap();
        assert_eq!(alert.status, AlertStatus::Firing);
        assert_eq!(alert.host.and_then(|h| h.load1), Some(1.5));
    }

    /// Issue 18: a pipeline on an injected clock reading `start`, with a
    /// change window `batch1` open around it over `owa*` (tolerance 10x,
    /// `max_down` and `max_incident` as given).
    fn windowed(
        store: &Store,
        start: DateTime<Utc>,
        max_down: Duration,
        max_incident: Duration,
    ) -> (Pipeline, Backlog) {
        windowed_over(store, start, max_down, max_incident, "owa*")
    }

    /// [`windowed`] with the window over `pattern`.
    fn windowed_over(
        store: &Store,
        start: DateTime<Utc>,
        max_down: Duration,
        max_incident: Duration,
        pattern: &str,
    ) -> (Pipeline, Backlog) {
        let mut p = pipeline(store);
        p.clock = TokioClock::starting_at(start);
        windows::open(
            store,
            ChangeWindow {
                id: 0,
                name: "batch1".into(),
                source: windows::WindowSource::Command,
                starts_at: start - WallDuration::hours(1),
                ends_at: start + WallDuration::hours(1),
                closed_at: None,
                targets: vec![pattern.into()],
                tolerance: 10.0,
                max_down,
                max_incident,
                note: None,
                by: None,
                summary_sent_at: None,
            },
        )
        .unwrap();
        let mut b = Backlog {
            kinds: p.kinds.clone(),
            ..Backlog::default()
        };
        p.settle(&mut b);
        p.poll_windows(&mut b);
        assert_eq!(b.windows.len(), 1);
        (p, b)
    }

    fn outbox_events(store: &Store) -> Vec<AlertEvent> {
        let mut rows = outbox::all_rows(store).unwrap();
        rows.sort_by_key(|e| e.id);
        rows.iter()
            .map(|e| serde_json::from_str(&e.payload).unwrap())
            .collect()
    }

    fn held_events(store: &Store) -> Vec<AlertEvent> {
        alert::stored::held(store)
            .unwrap()
            .into_iter()
            .filter_map(|h| h.event)
            .collect()
    }

    fn failed(at: DateTime<Utc>) -> Sample {
        let mut s = Sample::http_ok(at, at, 0);
        s.phases.clear();
        s.failure = Some(crate::sample::Failure {
            reason: crate::sample::FailureReason::Connect,
            phase: Phase::Connect,
            message: "connection refused".into(),
        });
        s
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// Inside a window a 3x slowdown is detected, tagged and recorded, its
    /// page held (`window batch1`, counted `held`); a 20x latency then
    /// pages at once, once, marked beyond tolerance and saying since when
    /// it was held.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_window_holds_a_blip_and_pages_once_beyond_tolerance() {
        let store = Store::in_memory().unwrap();
        let mut at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (mut p, mut b) = windowed(&store, at, HOUR, HOUR);
        feed(&mut p, &mut b, &mut at, 60, 100);
        feed(&mut p, &mut b, &mut at, 20, 300);
        let open = p
            .incidents
            .detector("owa")
            .unwrap()
            .open_incident()
            .unwrap();
        assert_eq!(open.window.as_deref(), Some("batch1"));
        assert!(outbox_events(&store).is_empty(), "held, not sent");
        let held = held_events(&store);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].window.as_deref(), Some("batch1"));
        assert_eq!(held[0].held.as_ref().unwrap().by, "window batch1");
        let metrics = p.metrics.clone();
        let count = |o| metrics.window.incidents("batch1", o);
        assert_eq!(
            (
                count(WindowOutcome::Held),
                count(WindowOutcome::BeyondTolerance)
            ),
            (1, 0)
        );

        feed(&mut p, &mut b, &mut at, 5, 2000);
        let sent = outbox_events(&store);
        assert_eq!(sent.len(), 1, "{sent:#?}");
        let page = &sent[0];
        assert_eq!(page.status, AlertStatus::Firing);
        assert_eq!(page.window.as_deref(), Some("batch1"));
        let why = page.beyond_tolerance.as_deref().unwrap();
        assert!(
            why.starts_with("latency 2.0 s is 20x the 100 ms baseline (tolerance 10x)"),
            "{why}"
        );
        assert_eq!(page.held.as_ref().unwrap().by, "window batch1");
        assert_eq!(page.current_latency_seconds, Some(2.0));
        assert!(held_events(&store).is_empty(), "the held page went out");
        assert_eq!(
            (
                count(WindowOutcome::Held),
                count(WindowOutcome::BeyondTolerance)
            ),
            (1, 1)
        );
        // Still beyond, still open: nothing more.
        feed(&mut p, &mut b, &mut at, 20, 2500);
        assert_eq!(outbox_events(&store).len(), 1);
        assert_eq!(count(WindowOutcome::BeyondTolerance), 1);
        // The record carries the window once it closes.
        feed(&mut p, &mut b, &mut at, 40, 100);
        let records = history::history(&store, 10).unwrap();
        assert_eq!(records[0].incident.window.as_deref(), Some("batch1"));
    }

    /// A window over other targets neither tags nor holds; a silence still
    /// holds a page beyond a window's tolerance.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn only_covered_targets_are_held_and_silences_still_hold() {
        let store = Store::in_memory().unwrap();
        let mut at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (mut p, mut b) = windowed_over(&store, at, HOUR, HOUR, "smtp*");
        feed(&mut p, &mut b, &mut at, 60, 100);
        feed(&mut p, &mut b, &mut at, 20, 300);
        let sent = outbox_events(&store);
        assert_eq!(sent.len(), 1, "paged as usual");
        assert_eq!(
            (sent[0].window.as_deref(), sent[0].held.as_ref()),
            (None, None)
        );
        assert_eq!(p.metrics.window.incidents("batch1", WindowOutcome::Held), 0);

        let store = Store::in_memory().unwrap();
        let mut at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (mut p, mut b) = windowed(&store, at, HOUR, HOUR);
        let now = p.clock.now();
        outbox::add_silence(
            &store,
            &outbox::Silence {
                id: 0,
                target: "owa".into(),
                starts_at: now - WallDuration::hours(1),
                ends_at: now + WallDuration::hours(1),
                reason: "patching".into(),
                created_at: now,
                created_by: None,
                removed_at: None,
                removed_by: None,
                extensions: Vec::new(),
            },
        )
        .unwrap();
        feed(&mut p, &mut b, &mut at, 60, 100);
        feed(&mut p, &mut b, &mut at, 20, 2000);
        assert!(outbox_events(&store).is_empty(), "the silence holds it");
        let held = held_events(&store);
        assert_eq!(held.len(), 1);
        assert!(held[0].held.as_ref().unwrap().by.starts_with("silence "));
        assert!(held[0].beyond_tolerance.is_some(), "kept for its release");
        assert_eq!(
            p.metrics
                .window
                .incidents("batch1", WindowOutcome::BeyondTolerance),
            0
        );
    }

    /// Down longer than `max_down`, or open longer than `max_incident`,
    /// pages at once (on the sample that crosses the limit).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn down_past_max_down_and_open_past_max_incident_page() {
        let store = Store::in_memory().unwrap();
        let mut at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (mut p, mut b) = windowed(&store, at, Duration::from_secs(2), HOUR);
        feed(&mut p, &mut b, &mut at, 60, 100);
        let mut down_at = None;
        for _ in 0..60 {
            p.handle(&mut b, &failed(at));
            if down_at.is_none() && !held_events(&store).is_empty() {
                down_at = Some(at);
            }
            at += WallDuration::milliseconds(100);
            if !outbox_events(&store).is_empty() {
                break;
            }
        }
        let sent = outbox_events(&store);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].incident_kind, "down");
        let why = sent[0].beyond_tolerance.as_deref().unwrap();
        assert!(why.starts_with("down for 2"), "{why}");
        assert!(why.ends_with("(max_down 2s)"), "{why}");
        let paged_at = at - WallDuration::milliseconds(100);
        let started = sent[0].started_at;
        assert!(down_at.is_some());
        assert!(paged_at - started > WallDuration::seconds(2));
        assert!(paged_at - started <= WallDuration::milliseconds(2100));

        let store = Store::in_memory().unwrap();
        let mut at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let (mut p, mut b) = windowed(&store, at, HOUR, Duration::from_secs(3));
        feed(&mut p, &mut b, &mut at, 60, 100);
        feed(&mut p, &mut b, &mut at, 30, 300);
        assert!(
            outbox_events(&store).is_empty(),
            "3 s open: within max_incident"
        );
        feed(&mut p, &mut b, &mut at, 2, 300);
        let sent = outbox_events(&store);
        assert_eq!(sent.len(), 1);
        let why = sent[0].beyond_tolerance.as_deref().unwrap();
        assert!(why.ends_with("(max_incident 3s)"), "{why}");
        assert_eq!(
            p.metrics
                .window
                .incidents("batch1", WindowOutcome::BeyondTolerance),
            1
        );
    }

    /// When the window closes, the held page of an incident still open
    /// goes out `recover_for` (1 s here) later, saying by which window and
    /// since when; an incident that recovers within that grace never pages.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_held_page_is_released_after_the_grace_unless_it_recovers() {
        for recovers in [false, true] {
            let store = Store::in_memory().unwrap();
            let mut at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
            let (mut p, mut b) = windowed(&store, at, HOUR, HOUR);
            feed(&mut p, &mut b, &mut at, 60, 100);
            feed(&mut p, &mut b, &mut at, 20, 300);
            let since = held_events(&store)[0].held.as_ref().unwrap().since;
            let closed = p.clock.now();
            windows::close(&store, "batch1", closed).unwrap();
            let alerting = p.alerting.clone();
            let second = WallDuration::seconds(1);
            alert::release_held(&store, &alerting, closed).unwrap();
            alert::release_held(&store, &alerting, closed + second / 2).unwrap();
            assert!(outbox_events(&store).is_empty(), "within the grace");
            if recovers {
                feed(&mut p, &mut b, &mut at, 40, 100);
                assert!(held_events(&store).is_empty(), "the resolve took it");
            } else {
                feed(&mut p, &mut b, &mut at, 5, 300);
            }
            alert::release_held(&store, &alerting, closed + second).unwrap();
            let sent = outbox_events(&store);
            if recovers {
                assert!(sent.is_empty(), "{sent:#?}");
                continue;
            }
            assert_eq!(sent.len(), 1, "{sent:#?}");
            let held = sent[0].held.as_ref().unwrap();
            assert_eq!(held.by, "window batch1");
            assert_eq!(held.since, since);
            assert_eq!(held.ended_at, Some(closed));
            assert_eq!(sent[0].beyond_tolerance, None);
            assert!(held_events(&store).is_empty());
        }
    }

    fn stamped(stamp: Stamp, ms: u64) -> Sample {
        Sample::http_ok(stamp.wall, stamp.steady, ms)
    }

    /// Issue 21, break 10, in the agent: the system clock is stepped back an
    /// hour, then the target is slow for 30 minutes. The step is logged and
    /// counted once; the incident opens `for` after the onset and records its
    /// true duration.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clock_stepped_back_is_counted_and_detection_goes_on() {
        let config = crate::config::parse(
            "[[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"https://127.0.0.1:9/\"\ninterval = \"10s\"\n",
            None,
        )
        .unwrap();
        let start: DateTime<Utc> = "2026-12-05T12:00:00Z".parse().unwrap();
        let clock = TokioClock::starting_at(start);
        let store = Store::in_memory().unwrap();
        let metrics = Arc::new(Metrics::new("test").unwrap());
        let incidents = Incidents::load(Some(store.clone()), &config.targets).unwrap();
        let alerting = Alerting::new(config.alerting.clone(), &store, clock.clone()).unwrap();
        let flow = Pipeline {
            metrics: metrics.clone(),
            incidents,
            alerting: Arc::new(alerting),
            store: store.clone(),
            instance: "test".into(),
            host_load: None,
            clock: clock.clone(),
            health: Health::new(),
            kinds: HashMap::from([("owa".to_string(), "http".to_string())]),
            status: Shared::new("cas01", chrono::Utc::now()),
        };
        let (tx, rx) = mpsc::channel(16);
        let running = tokio::spawn(flow.run(rx));
        let mut steady = start;
        let mut feed = async |n: usize, ms: u64, offset: WallDuration| -> DateTime<Utc> {
            let first_wall = steady + offset;
            for _ in 0..n {
                let stamp = Stamp {
                    wall: steady + offset,
                    steady,
                };
                tx.send(stamped(stamp, ms).into()).await.unwrap();
                steady += WallDuration::seconds(10);
            }
            first_wall
        };
        let back = WallDuration::hours(-1);
        feed(60, 200, WallDuration::zero()).await;
        let onset_wall = feed(180, 4000, back).await;
        feed(30, 200, back).await;
        drop(tx);
        running.await.unwrap();

        let jumps = &metrics.agent.clock_jumps;
        assert_eq!(jumps.with_label_values(&["backward"]).get(), 1);
        assert_eq!(jumps.with_label_values(&["forward"]).get(), 0);
        let recorded = history::history(&store, 10).unwrap();
        assert_eq!(recorded.len(), 1, "{recorded:#?}");
        let i = &recorded[0].incident;
        assert_eq!(i.started_at, onset_wall);
        assert_eq!(i.time_to_detect_seconds(), 60.0);
        assert_eq!(i.duration_seconds(), Some(1800.0));
    }
}
