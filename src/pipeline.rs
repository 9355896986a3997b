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

use tokio::sync::mpsc;

use crate::alert::pending::{DropReason, Pending};
use crate::alert::{self, AlertEvent, Alerting, HostLoad, IncidentContext};
use crate::clock::{Clock, JumpWatch, Stamp};
use crate::config::Target;
use crate::detect::DetectEvent;
use crate::health::{Condition, Health};
use crate::incident::Incidents;
use crate::metrics::soak::ActivePhase;
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
    /// [`SOAK_POLL`]); kept when a read fails.
    windows: Vec<ChangeWindow>,
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
    /// for). A store that cannot be read keeps the last known windows.
    fn poll_windows(&mut self, backlog: &mut Backlog) {
        let now = self.clock.now();
        if let Ok(open) = tokio::task::block_in_place(|| windows::open_at(&self.store, now)) {
            backlog.windows = open;
        }
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
        let (event, saved, state, baseline, open_since) = {
            let incidents = &mut self.incidents;
            // Only a sample that opens, escalates or closes an incident writes
            // to the store; the rest stay on this worker (block_in_place hands
            // the worker to another thread, which costs more than detection).
            let mut event = incidents.detect(sample);
            let store = &self.store;
            let known = &backlog.soak;
            let error = event.as_mut().and_then(|e| {
                tokio::task::block_in_place(|| {
                    if let DetectEvent::Opened(i) = e {
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
            (event, error.is_none(), state, baseline, open_since)
        };
        self.metrics
            .detect
            .record_state(&sample.target, state, baseline, open_since);
        let Some(event) = event else { return };
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
        let alerting = &self.alerting;
        let ctx = IncidentContext {
            instance: self.instance.clone(),
            target: sample.target.clone(),
            probe_kind: sample.kind.as_str().to_string(),
            severity: alerting.config.severity_for(&sample.target).to_string(),
            current_latency_seconds: sample
                .success()
                .then(|| sample.phase(Phase::Total).map(|d| d.as_secs_f64()))
                .flatten(),
            last_error: sample
                .failure
                .as_ref()
                .map(|f| format!("{}: {}", f.reason, f.message)),
            host: self.host_load.clone(),
        };
        let alert = AlertEvent::from_incident(incident, ctx);
        let now = self.clock.now();
        // Straight to the outbox when the incident is saved and nothing older
        // waits; otherwise behind what waits, in order.
        if saved && backlog.pending.is_empty() {
            match tokio::task::block_in_place(|| alert::enqueue(&self.store, alerting, &alert, now))
            {
                Ok(_) => return,
                Err(e) => {
                    self.metrics.agent.store_errors.inc();
                    tracing::error!(target = %sample.target, error = %e, "cannot queue an alert; keeping it in memory until the store takes it");
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
