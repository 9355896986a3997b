//! The sample pipeline: every probe result, in order, is recorded in the
//! metrics, fed to its target's slowdown detector, and, when an incident
//! opens, escalates or closes, turned into an alert in the durable outbox.
//!
//! One task owns this flow, so events of a target are handled in the order
//! its samples arrived. The incident is saved before its alert is queued;
//! [`reconcile`] repairs the one gap a crash can leave between the two.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::alert::{self, AlertEvent, Alerting, HostLoad, IncidentContext};
use crate::clock::{Clock, JumpWatch, Stamp};
use crate::detect::DetectEvent;
use crate::incident::Incidents;
use crate::metrics::Metrics;
use crate::sample::host::{HostSnapshot, TcpState};
use crate::sample::{Phase, Sample};
use crate::store::{incidents as history, Store};

/// How often detector states changed since the last save are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// What the pipeline needs; shared with the supervisor, which swaps the
/// alerting configuration and reconfigures incidents on reload.
pub struct Pipeline {
    /// Where everything is exported.
    pub metrics: Arc<Metrics>,
    /// Every target's detector.
    pub incidents: Arc<Mutex<Incidents>>,
    /// Receivers, routes and windows in force.
    pub alerting: Arc<RwLock<Arc<Alerting>>>,
    /// The durable store of incidents and the outbox.
    pub store: Store,
    /// This agent's instance name.
    pub instance: String,
    /// The latest host load, for alert texts.
    pub host_load: Arc<RwLock<Option<HostLoad>>>,
    /// Wall-clock time.
    pub clock: Arc<dyn Clock>,
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
    /// Runs until every sender of `rx` is gone, then saves what is unsaved.
    pub async fn run(self, mut rx: mpsc::Receiver<Sample>) {
        let mut last_ok: HashMap<String, bool> = HashMap::new();
        let mut jumps = JumpWatch::default();
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                sample = rx.recv() => match sample {
                    Some(s) => {
                        log_transition(&mut last_ok, &s);
                        self.watch_clock(&mut jumps, &s);
                        self.handle(&s);
                    }
                    None => break,
                },
                _ = flush.tick() => self.flush(),
            }
        }
        self.flush();
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

    fn flush(&self) {
        let result = {
            let mut incidents = self.incidents.lock().expect("incidents lock");
            if !incidents.has_unsaved() {
                return;
            }
            tokio::task::block_in_place(|| incidents.flush())
        };
        if let Err(e) = result {
            self.metrics.agent.store_errors.inc();
            tracing::error!(error = %e, "cannot save detector state");
        }
    }

    /// Records one sample and acts on what its detector decided.
    pub fn handle(&self, sample: &Sample) {
        self.metrics.probe.record(sample);
        // A store that failed (disk full) shows as not durable until it reopens.
        self.metrics
            .agent
            .store_durable
            .set(i64::from(self.store.is_durable()));
        let (event, state, baseline) = {
            let mut incidents = self.incidents.lock().expect("incidents lock");
            // Only a sample that opens, escalates or closes an incident writes
            // to the store; the rest stay on this worker (block_in_place hands
            // the worker to another thread, which costs more than detection).
            let event = incidents.detect(sample);
            let error = event.as_ref().and_then(|e| {
                tokio::task::block_in_place(|| incidents.save_event(&sample.target, e)).err()
            });
            if let Some(err) = error {
                self.metrics.agent.store_errors.inc();
                tracing::error!(target = %sample.target, error = %err, "cannot save an incident; alerting anyway");
            }
            let Some(d) = incidents.detector(&sample.target) else {
                return;
            };
            (event, d.state(), d.baseline())
        };
        self.metrics
            .detect
            .record_state(&sample.target, state, baseline);
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
                "incident closed"
            ),
        }
        let alerting = self.alerting.read().expect("alerting lock").clone();
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
            host: self.host_load.read().expect("host load lock").clone(),
        };
        let alert = AlertEvent::from_incident(incident, ctx);
        let now = self.clock.now();
        if let Err(e) =
            tokio::task::block_in_place(|| alert::enqueue(&self.store, &alerting, &alert, now))
        {
            self.metrics.agent.store_errors.inc();
            tracing::error!(target = %sample.target, error = %e, "cannot queue an alert");
        }
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

/// Start-up repair of the gap a crash can leave between saving an incident
/// and queuing its alert, in both directions:
/// - an alert still firing whose incident is no longer open (it closed, or
///   its target is gone) gets its resolve, at the recorded recovery time;
/// - an incident open in its detector whose alert never made it to the
///   outbox gets its firing alert.
pub fn reconcile(
    store: &Store,
    alerting: &Alerting,
    incidents: &Incidents,
    instance: &str,
    kinds: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(), crate::store::StoreError> {
    let recorded = history::history(store, history::MAX_HISTORY as usize)?;
    let mut known: Vec<String> = alert::open_incidents(store)?
        .into_iter()
        .map(|e| e.incident_key)
        .collect();
    known.extend(
        crate::store::outbox::held(store)?
            .into_iter()
            .filter_map(|(_, payload)| serde_json::from_str::<AlertEvent>(&payload).ok())
            .map(|e| e.incident_key),
    );
    alert::reconcile(store, alerting, now, |event| {
        let still_open = incidents
            .detector(&event.target)
            .and_then(|d| d.open_incident())
            .is_some_and(|i| i.started_at == event.started_at);
        if still_open {
            return None;
        }
        let recovered = recorded
            .iter()
            .find(|r| r.target == event.target && r.incident.started_at == event.started_at)
            .and_then(|r| r.incident.recovered_at);
        Some(recovered.unwrap_or(now))
    })?;
    for (target, detector) in incidents.detectors() {
        let Some(incident) = detector.open_incident() else {
            continue;
        };
        let probe_kind = kinds.get(target).cloned().unwrap_or_default();
        let key = alert::incident_key(instance, target, &probe_kind, incident.started_at);
        if known.contains(&key) {
            continue;
        }
        let ctx = IncidentContext {
            instance: instance.to_string(),
            target: target.to_string(),
            probe_kind,
            severity: alerting.config.severity_for(target).to_string(),
            current_latency_seconds: None,
            last_error: None,
            host: None,
        };
        tracing::info!(target, started_at = %incident.started_at, "queuing the alert of an incident opened before the restart");
        alert::enqueue(
            store,
            alerting,
            &AlertEvent::from_incident(incident, ctx),
            now,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use crate::sample::ProbeKind;
    use chrono::Duration as WallDuration;

    fn sample(stamp: Stamp, ms: u64) -> Sample {
        Sample {
            target: "owa".into(),
            kind: ProbeKind::Http,
            started_at: stamp.wall,
            steady_at: stamp.steady,
            phases: vec![(Phase::Total, Duration::from_millis(ms))],
            failure: None,
            status: Some(200),
            tls: None,
            schedule_lag: Duration::ZERO,
            notes: vec![],
            messages: None,
        }
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
            incidents: Arc::new(Mutex::new(incidents)),
            alerting: Arc::new(RwLock::new(Arc::new(alerting))),
            store: store.clone(),
            instance: "test".into(),
            host_load: Arc::new(RwLock::new(None)),
            clock: clock.clone(),
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
                tx.send(sample(stamp, ms)).await.unwrap();
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
