//! The delivery loop: drains the durable outbox into the receivers, fairly.
//! It hands the first entry of every `(receiver, incident)` group to its
//! receiver, records the outcome (removed when delivered or refused for good,
//! rescheduled with [`backoff`] when retriable), and runs the periodic
//! housekeeping (`housekeeping.rs`: expiry, held-page release, reminders) and
//! receiver refreshes. Routing and the outbox writes of new alerts are
//! [`enqueue`](super::enqueue())'s.
//!
//! Fairness: a receiver that fails must never hold up another's pages. Each
//! receiver has at most [`MAX_IN_FLIGHT_PER_RECEIVER`] attempts in flight and
//! a guaranteed share of [`MAX_IN_FLIGHT`] that no other receiver can take;
//! free slots go round-robin between receivers (each receiver's oldest entry
//! first). A receiver that fails backs off by itself: one attempt at a time,
//! after its own jittered backoff, until it answers again (besides each
//! notification's own backoff, which is kept in the outbox); one that asks
//! for quiet (`Retry-After`) gets nothing until then. The others go on
//! meanwhile. The outcomes of every attempt that finished meanwhile are
//! written in one commit, so failing receivers cannot queue a healthy one's
//! bookkeeping behind theirs; an outcome the store cannot take is kept, its
//! incident's group held, and written on a later turn.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::housekeeping::housekeeping;
use super::stored;
use super::{blocking, Alerting, DeliveryError, Receiver, HOUSEKEEPING_INTERVAL};
use crate::clock::Clock;
use crate::metrics::alert::{AlertMetrics, NotificationResult};
use crate::store::outbox::{self, OutboxEntry};
use crate::store::Store;

/// Attempts in flight at once across all receivers (refreshes aside). Part
/// of it is reserved: every receiver is guaranteed
/// `MAX_IN_FLIGHT / receivers` slots (at least one, at most
/// [`MAX_IN_FLIGHT_PER_RECEIVER`]) that others cannot take, so the cap can
/// never be monopolised. Only with more receivers than this is the total higher
/// (one per receiver).
pub const MAX_IN_FLIGHT: usize = 16;
/// Attempts of one receiver in flight at once: a receiver that hangs holds at
/// most this many connections.
pub const MAX_IN_FLIGHT_PER_RECEIVER: usize = 4;
/// How long shutdown waits for attempts in flight before abandoning them (they
/// stay in the outbox and are sent again after a restart).
pub const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// Margin on top of a receiver's own timeout before an attempt is abandoned.
const ATTEMPT_MARGIN: Duration = Duration::from_secs(5);

/// First retry delay before jitter; doubles per failed attempt up to `max_backoff`.
pub const BASE_BACKOFF: Duration = Duration::from_secs(1);
/// Smallest delay between two attempts, so full jitter never spins.
pub const MIN_RETRY_DELAY: Duration = Duration::from_millis(100);
/// A receiver's `Retry-After` is honoured up to this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What a finished task of the delivery loop reports.
enum Done {
    Attempt {
        entry: OutboxEntry,
        result: Result<(), DeliveryError>,
    },
    Refresh(String),
}

/// An outcome known to the loop and not yet written to the outbox. Its group
/// stays busy until it is, so nothing of that incident is sent meanwhile.
enum Record {
    /// Delivered, or refused for good: the entry goes, and what became of
    /// it goes into the delivery log (target, incident start, row).
    Remove(OutboxEntry, Option<(String, i64, outbox::Sent)>),
    /// Failed; the next attempt not before `next_at`.
    Reschedule {
        entry: OutboxEntry,
        next_at: DateTime<Utc>,
        error: String,
    },
}

impl Record {
    fn entry(&self) -> &OutboxEntry {
        match self {
            Record::Remove(e, _) | Record::Reschedule { entry: e, .. } => e,
        }
    }
}

/// What the loop knows of one receiver between turns.
#[derive(Debug, Default)]
struct Lane {
    /// Its attempts in flight.
    in_flight: usize,
    /// Retriable failures in a row. While there are any, the receiver gets
    /// one attempt at a time, after its own backoff.
    failures: u32,
    /// The end of its backoff after a failure.
    retry_at: Option<DateTime<Utc>>,
    /// It asked (`Retry-After`) not to be sent anything before then.
    quiet_until: Option<DateTime<Utc>>,
}

impl Lane {
    /// When it may be sent something again, if not at `now`.
    fn waiting_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.retry_at.max(self.quiet_until).filter(|t| *t > now)
    }
}

/// The attempt slots and backoff of every configured receiver.
#[derive(Debug)]
struct Slots {
    lanes: BTreeMap<String, Lane>,
    /// Attempts in flight, all receivers.
    total: usize,
    /// Slots each receiver is guaranteed.
    share: usize,
    /// Rotates which receiver picks first, turn by turn.
    turn: usize,
}

impl Slots {
    fn new<'a>(receivers: impl Iterator<Item = &'a str>) -> Slots {
        let lanes: BTreeMap<String, Lane> = receivers
            .map(|name| (name.to_string(), Lane::default()))
            .collect();
        let share = (MAX_IN_FLIGHT / lanes.len().max(1)).clamp(1, MAX_IN_FLIGHT_PER_RECEIVER);
        Slots {
            lanes,
            total: 0,
            share,
            turn: 0,
        }
    }

    /// Whether `receiver` may start one more attempt at `now`: it is not
    /// backing off or asking for quiet, it is under its own cap (one while it
    /// is failing), and either within its guaranteed share or there is room
    /// in the pool left once every other receiver's unused share is set aside.
    fn may_start(&self, receiver: &str, now: DateTime<Utc>) -> bool {
        let Some(lane) = self.lanes.get(receiver) else {
            return false;
        };
        let cap = if lane.failures > 0 {
            1
        } else {
            MAX_IN_FLIGHT_PER_RECEIVER
        };
        if lane.waiting_until(now).is_some() || lane.in_flight >= cap {
            return false;
        }
        if lane.in_flight < self.share {
            return true;
        }
        let reserved: usize = self
            .lanes
            .iter()
            .filter(|(name, _)| name.as_str() != receiver)
            .map(|(_, l)| self.share.saturating_sub(l.in_flight))
            .sum();
        self.total + reserved < MAX_IN_FLIGHT
    }

    fn started(&mut self, receiver: &str) {
        if let Some(lane) = self.lanes.get_mut(receiver) {
            lane.in_flight += 1;
            self.total += 1;
        }
    }

    /// An attempt of `receiver` ended; `failed` is `Some` with the delay the
    /// receiver asked for (if any) when it failed retriably. A receiver that
    /// answered (delivered, or refused for good) is not failing.
    fn finished(
        &mut self,
        receiver: &str,
        now: DateTime<Utc>,
        max_backoff: Duration,
        failed: Option<Option<Duration>>,
    ) {
        let Some(lane) = self.lanes.get_mut(receiver) else {
            return;
        };
        lane.in_flight = lane.in_flight.saturating_sub(1);
        self.total = self.total.saturating_sub(1);
        let at = |d: Duration| now + chrono::Duration::from_std(d).unwrap_or_default();
        match failed {
            None => {
                lane.failures = 0;
                lane.retry_at = None;
            }
            Some(retry_after) => {
                lane.failures = lane.failures.saturating_add(1);
                let delay = backoff(lane.failures, max_backoff, None);
                lane.retry_at = Some(lane.retry_at.map_or(at(delay), |t| t.max(at(delay))));
                if let Some(quiet) = retry_after {
                    // A rate limit (429, or 503 with Retry-After) is the
                    // receiver's, not one incident's: hold all of its
                    // notifications.
                    let until = at(quiet.min(MAX_RETRY_AFTER));
                    lane.quiet_until = Some(lane.quiet_until.map_or(until, |t| t.max(until)));
                }
            }
        }
    }

    /// When `receiver` may be sent something again, if not at `now`.
    fn waiting_until(&self, receiver: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.lanes.get(receiver)?.waiting_until(now)
    }
}

/// What the loop keeps about its tasks between turns.
struct Books {
    /// Attempt slots and backoff per receiver.
    slots: Slots,
    /// The entry each attempt task carries, to settle it should the task fail.
    attempts: HashMap<tokio::task::Id, OutboxEntry>,
    /// Receivers whose refresh is running.
    refreshing: HashSet<String>,
    /// Outcomes not yet written to the outbox.
    unrecorded: Vec<Record>,
    /// The last attempt to write them failed (logged once per streak).
    recording_failed: bool,
}

/// The delivery loop: drains the outbox until `token` is cancelled, then
/// waits up to [`DRAIN_GRACE`] for attempts in flight. Also expires old
/// entries, releases alerts held by windows that ended, sends reminders and
/// lets receivers refresh, every [`HOUSEKEEPING_INTERVAL`].
pub async fn run_delivery(
    store: Store,
    alerting: Arc<Alerting>,
    metrics: AlertMetrics,
    token: CancellationToken,
    clock: Arc<dyn Clock>,
) {
    for r in alerting.receivers() {
        metrics.add_receiver(r.name());
    }
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let mut busy: HashSet<(String, String)> = HashSet::new();
    let mut books = Books {
        slots: Slots::new(alerting.receivers().map(|r| r.name())),
        attempts: HashMap::new(),
        refreshing: HashSet::new(),
        unrecorded: Vec::new(),
        recording_failed: false,
    };
    let mut unknown_logged: HashSet<String> = HashSet::new();
    let mut next_housekeeping = tokio::time::Instant::now();
    loop {
        if token.is_cancelled() {
            break;
        }
        // Write what finished last turn first, so our own commit does not
        // wake the wait below.
        books.record(&store, &mut busy).await;
        // Register for change notifications before looking, so a write made
        // while we look still wakes us.
        let changed = store.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();

        let now = clock.now();
        if tokio::time::Instant::now() >= next_housekeeping {
            next_housekeeping = tokio::time::Instant::now() + HOUSEKEEPING_INTERVAL;
            housekeeping(&store, &alerting, &metrics, now).await;
            for r in alerting.receivers() {
                if books.refreshing.insert(r.name().to_string()) {
                    let r = r.clone();
                    tasks.spawn(async move {
                        let name = r.name().to_string();
                        let refreshed = r.clone();
                        if let Err(why) =
                            contained(async move { refreshed.refresh(now).await }).await
                        {
                            let why = r.redact(&why);
                            tracing::error!(receiver = %name, error = %why, "receiver refresh failed");
                        }
                        Done::Refresh(name)
                    });
                }
            }
        }

        let snapshot = busy.clone();
        let due = match blocking(&store, move |s| outbox::due(s, now, &snapshot)).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the alert outbox");
                outbox::Due::default()
            }
        };
        let mut wake_at = due.next_at;
        // Each receiver's ready groups, oldest first.
        let mut queues: BTreeMap<String, VecDeque<OutboxEntry>> = BTreeMap::new();
        for entry in due.ready {
            if alerting.receiver(&entry.receiver).is_none() {
                if unknown_logged.insert(entry.receiver.clone()) {
                    tracing::warn!(receiver = %entry.receiver, "outbox holds notifications for a receiver no longer configured; they expire after max_age");
                }
                continue;
            }
            queues
                .entry(entry.receiver.clone())
                .or_default()
                .push_back(entry);
        }
        for name in queues.keys() {
            if let Some(t) = books.slots.waiting_until(name, now) {
                wake_at = Some(wake_at.map_or(t, |w| w.min(t)));
            }
        }
        // Round-robin: one attempt per receiver per round, starting with a
        // different receiver every turn, until no receiver may start more.
        let mut order: Vec<String> = queues.keys().cloned().collect();
        if !order.is_empty() {
            let first = books.slots.turn % order.len();
            order.rotate_left(first);
            books.slots.turn = books.slots.turn.wrapping_add(1);
        }
        loop {
            let mut started = false;
            for name in &order {
                let Some(queue) = queues.get_mut(name) else {
                    continue;
                };
                if queue.is_empty() || !books.slots.may_start(name, now) {
                    continue;
                }
                let Some(entry) = queue.pop_front() else {
                    continue;
                };
                let Some(receiver) = alerting.receiver(name).cloned() else {
                    continue;
                };
                busy.insert(entry.group());
                books.slots.started(name);
                started = true;
                let deadline = alerting
                    .config
                    .receiver(name)
                    .map_or(crate::config::alerting::DEFAULT_RECEIVER_TIMEOUT, |rc| {
                        rc.timeout
                    })
                    + ATTEMPT_MARGIN;
                let metrics = metrics.clone();
                let carried = entry.clone();
                let handle = tasks.spawn(async move {
                    let sent = entry.clone();
                    let sender = receiver.clone();
                    let result = contained(async move {
                        attempt(sender.as_ref(), &sent, deadline, &metrics).await
                    })
                    .await
                    // A bug in a receiver: retried with backoff like any failure,
                    // so the group keeps its order and nothing is lost.
                    .unwrap_or_else(|why| {
                        Err(DeliveryError::retriable(
                            receiver.redact(&format!("receiver failed: {why}")),
                        ))
                    });
                    Done::Attempt { entry, result }
                });
                books.attempts.insert(handle.id(), carried);
            }
            if !started {
                break;
            }
        }

        let mut wait = wake_at
            .map(|t| (t - clock.now()).to_std().unwrap_or_default())
            .unwrap_or(HOUSEKEEPING_INTERVAL)
            .min(next_housekeeping.saturating_duration_since(tokio::time::Instant::now()));
        if !books.unrecorded.is_empty() {
            // Outcomes the store could not take: try again soon.
            wait = wait.min(HOUSEKEEPING_INTERVAL);
        }
        tokio::select! {
            _ = token.cancelled() => break,
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                // Settle every task that finished meanwhile, so their outcomes
                // share one commit.
                let mut finished = vec![done];
                while let Some(more) = tasks.try_join_next_with_id() {
                    finished.push(more);
                }
                for done in finished {
                    books.settle(&alerting, &metrics, &clock, done);
                }
            }
            _ = &mut changed => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Drain: let attempts in flight finish so their outcome is recorded; an
    // attempt cut off here stays in the outbox and is sent again after a restart.
    let drain = async {
        while let Some(done) = tasks.join_next_with_id().await {
            books.settle(&alerting, &metrics, &clock, done);
        }
    };
    if tokio::time::timeout(DRAIN_GRACE, drain).await.is_err() {
        tracing::warn!(
            in_flight = tasks.len(),
            "alert deliveries still running at shutdown; they will be retried after a restart"
        );
        tasks.abort_all();
    }
    books.record(&store, &mut busy).await;
    if !books.unrecorded.is_empty() {
        tracing::warn!(
            outcomes = books.unrecorded.len(),
            "delivery outcomes not recorded at shutdown; those notifications are sent again after a restart"
        );
    }
}

/// Runs `work` as a task of its own, so that a panic in it (a bug in a
/// receiver) comes back here as an error with its message instead of ending
/// the task that holds the outbox entry. The task is aborted if the caller is.
async fn contained<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let task = tokio::spawn(work);
    let _guard = AbortOnDrop(task.abort_handle());
    task.await.map_err(|e| {
        if !e.is_panic() {
            return "cancelled".to_string();
        }
        let payload = e.into_panic();
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .map_or_else(|| "panicked".to_string(), |m| format!("panicked: {m}"))
    })
}

/// The delay before attempt `attempts + 1` after `attempts` failures: full
/// jitter over an exponential ceiling (`BASE_BACKOFF * 2^(attempts-1)`,
/// capped by `max_backoff`), at least [`MIN_RETRY_DELAY`], and at least the
/// receiver's `Retry-After` (itself capped by [`MAX_RETRY_AFTER`]).
pub fn backoff(attempts: u32, max_backoff: Duration, retry_after: Option<Duration>) -> Duration {
    let exp = BASE_BACKOFF
        .checked_mul(1u32 << attempts.saturating_sub(1).min(20))
        .unwrap_or(max_backoff)
        .min(max_backoff);
    let jittered = exp.mul_f64(fastrand::f64()).max(MIN_RETRY_DELAY);
    match retry_after {
        Some(r) => jittered.max(r.min(MAX_RETRY_AFTER)),
        None => jittered,
    }
}

/// One attempt: decodes the payload and sends it under a deadline.
async fn attempt(
    receiver: &dyn Receiver,
    entry: &OutboxEntry,
    deadline: Duration,
    metrics: &AlertMetrics,
) -> Result<(), DeliveryError> {
    let event = stored::queued(entry)
        .map_err(|e| DeliveryError::permanent(format!("undecodable outbox payload: {e}")))?;
    let started = tokio::time::Instant::now();
    let result = match tokio::time::timeout(deadline, receiver.send(&event)).await {
        Ok(r) => r,
        Err(_) => Err(DeliveryError::retriable(format!(
            "no answer within {}",
            crate::config::HumanDuration(deadline)
        ))),
    };
    metrics.observe_duration(receiver.name(), started.elapsed().as_secs_f64());
    result
}

/// The delivery-log row of a notification leaving the queue with `outcome`
/// at `now` (`None` for test notifications, soak phase marks, which have
/// no target, change-window summaries, which have no incident, and
/// undecodable payloads).
pub(crate) fn sent_row(
    entry: &OutboxEntry,
    outcome: &str,
    now: DateTime<Utc>,
    error: Option<String>,
) -> Option<(String, i64, outbox::Sent)> {
    let event = stored::queued(entry)
        .ok()
        .filter(|e| !e.test && !e.soak_phase && e.summary().is_none())?;
    let sent = outbox::Sent {
        id: entry.id,
        receiver: entry.receiver.clone(),
        status: event.status.as_str().to_string(),
        reminder: event.reminder,
        outcome: outcome.to_string(),
        created_at: entry.created_at,
        done_at: now,
        attempts: entry.attempts,
        last_error: error.or_else(|| entry.last_error.clone()),
    };
    Some((event.target, event.started_at.timestamp_micros(), sent))
}

impl Books {
    /// Takes in the outcome of a finished task: frees its slot, counts and logs
    /// it, and queues what the outbox must record.
    fn settle(
        &mut self,
        alerting: &Alerting,
        metrics: &AlertMetrics,
        clock: &Arc<dyn Clock>,
        done: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
    ) {
        let (entry, result) = match done {
            Ok((_, Done::Refresh(name))) => {
                self.refreshing.remove(&name);
                return;
            }
            Ok((id, Done::Attempt { entry, result })) => {
                self.attempts.remove(&id);
                (entry, result)
            }
            Err(e) => {
                // A receiver's panic is caught inside its task (`contained`);
                // should the task itself fail, its attempt counts as a retriable
                // failure, so the group keeps its order and nothing is lost.
                tracing::error!(error = %e, "alert delivery task failed");
                let Some(entry) = self.attempts.remove(&e.id()) else {
                    return;
                };
                let result = Err(DeliveryError::retriable(format!(
                    "delivery task failed: {e}"
                )));
                (entry, result)
            }
        };
        let receiver = entry.receiver.clone();
        let now = clock.now();
        let max_backoff = alerting.config.max_backoff;
        let failed = match &result {
            Err(DeliveryError::Retriable { retry_after, .. }) => Some(*retry_after),
            _ => None,
        };
        self.slots.finished(&receiver, now, max_backoff, failed);
        match result {
            Ok(()) => {
                metrics.record(&receiver, NotificationResult::Delivered);
                tracing::info!(receiver = %receiver, incident = %entry.incident_key, attempts = entry.attempts + 1, "notification delivered");
                let log = sent_row(&entry, "delivered", now, None);
                self.unrecorded.push(Record::Remove(entry, log));
            }
            Err(DeliveryError::Permanent { message }) => {
                metrics.record(&receiver, NotificationResult::Failed);
                tracing::error!(receiver = %receiver, incident = %entry.incident_key, error = %message, "notification refused; dropped");
                let log = sent_row(&entry, "rejected", now, Some(message));
                self.unrecorded.push(Record::Remove(entry, log));
            }
            Err(DeliveryError::Retriable {
                message,
                retry_after,
            }) => {
                metrics.record(&receiver, NotificationResult::Retried);
                let delay = backoff(entry.attempts + 1, max_backoff, retry_after);
                let next_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
                tracing::warn!(
                    receiver = %receiver,
                    incident = %entry.incident_key,
                    attempt = entry.attempts + 1,
                    retry_in_ms = delay.as_millis() as u64,
                    error = %message,
                    "notification failed; will retry"
                );
                if let Some(quiet) = retry_after {
                    tracing::info!(receiver = %receiver, quiet_ms = quiet.min(MAX_RETRY_AFTER).as_millis() as u64, "receiver asked to wait (Retry-After); holding all its notifications meanwhile");
                }
                self.unrecorded.push(Record::Reschedule {
                    entry,
                    next_at,
                    error: message,
                });
            }
        }
    }
}

impl Books {
    /// Writes the outcomes waiting in `unrecorded` in one commit and frees
    /// their groups. If the store cannot take them they stay queued, and
    /// their groups busy, for the next turn: a delivered notification is not
    /// sent again and a failed one not retried before its time while the
    /// store is failing.
    async fn record(&mut self, store: &Store, busy: &mut HashSet<(String, String)>) {
        if self.unrecorded.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.unrecorded);
        let groups: Vec<(String, String)> = records.iter().map(|r| r.entry().group()).collect();
        let written = blocking(store, move |s| {
            let result = s.write(|tx| {
                for r in &records {
                    match r {
                        Record::Remove(entry, log) => {
                            outbox::remove_in(tx, entry)?;
                            if let Some((target, started, sent)) = log {
                                outbox::sent::log_in(tx, target, *started, sent)?;
                            }
                        }
                        Record::Reschedule {
                            entry,
                            next_at,
                            error,
                        } => {
                            outbox::reschedule_in(tx, entry, *next_at, error)?;
                        }
                    }
                }
                Ok(())
            });
            Ok((result, records))
        })
        .await;
        match written {
            Ok((Ok(()), _)) => {
                if std::mem::take(&mut self.recording_failed) {
                    tracing::info!(
                        outcomes = groups.len(),
                        "delivery outcomes recorded in the outbox again"
                    );
                }
                for g in &groups {
                    busy.remove(g);
                }
            }
            Ok((Err(e), records)) => {
                if !std::mem::replace(&mut self.recording_failed, true) {
                    tracing::error!(error = %e, outcomes = records.len(), "cannot record delivery outcomes in the outbox; their notifications wait until it can");
                }
                self.unrecorded = records;
            }
            Err(e) => {
                // The store task itself failed and took the outcomes with it:
                // free the groups; the entries are still in the outbox and are
                // sent again (at least once).
                tracing::error!(error = %e, "cannot record delivery outcomes in the outbox");
                for g in &groups {
                    busy.remove(g);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn six() -> Slots {
        Slots::new(["a", "b", "c", "d", "e", "healthy"].into_iter())
    }

    /// Starts attempts of `receiver` while it may, up to `n`; returns how many.
    fn fill(s: &mut Slots, receiver: &str, n: usize) -> usize {
        let mut started = 0;
        while started < n && s.may_start(receiver, t(0)) {
            s.started(receiver);
            started += 1;
        }
        started
    }

    #[test]
    fn failing_receivers_cannot_take_a_healthy_ones_share() {
        let mut s = six();
        assert_eq!(s.share, 2);
        // Five receivers that hang take all they can...
        for r in ["a", "b", "c", "d", "e"] {
            fill(&mut s, r, usize::MAX);
        }
        assert!(s.total <= MAX_IN_FLIGHT);
        assert!(s
            .lanes
            .values()
            .all(|l| l.in_flight <= MAX_IN_FLIGHT_PER_RECEIVER));
        // ...and the healthy one still has its share.
        assert_eq!(fill(&mut s, "healthy", usize::MAX), s.share);
        assert!(s.total <= MAX_IN_FLIGHT);
        // Unknown receivers never start.
        assert!(!s.may_start("gone", t(0)));
    }

    #[test]
    fn a_lone_receiver_has_its_own_cap() {
        let mut s = Slots::new(["only"].into_iter());
        assert_eq!(fill(&mut s, "only", usize::MAX), MAX_IN_FLIGHT_PER_RECEIVER);
        // More receivers than slots: each still gets one.
        let names: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
        let mut s = Slots::new(names.iter().map(String::as_str));
        for n in &names {
            assert_eq!(fill(&mut s, n, usize::MAX), 1, "{n}");
        }
    }

    #[test]
    fn a_failing_receiver_backs_off_alone_and_one_attempt_at_a_time() {
        let mut s = six();
        let max = Duration::from_secs(60);
        fill(&mut s, "a", 2);
        s.finished("a", t(0), max, Some(None));
        // Backing off: nothing until its delay is over, the others unaffected.
        let until = s.waiting_until("a", t(0)).expect("backing off");
        assert!(until > t(0) && until <= t(1), "{until}");
        assert!(!s.may_start("a", t(0)));
        assert!(s.may_start("b", t(0)));
        // Then one attempt at a time while it keeps failing: the other one
        // is still in flight.
        assert!(!s.may_start("a", t(2)));
        s.finished("a", t(2), max, Some(None));
        assert!(s.waiting_until("a", t(2)).is_some_and(|u| u <= t(4)));
        assert!(s.may_start("a", t(5)));
        s.started("a");
        assert!(!s.may_start("a", t(5)));
        // An answer, even a refusal, ends it.
        s.finished("a", t(5), max, None);
        assert_eq!(s.lanes["a"].failures, 0);
        assert_eq!(fill(&mut s, "a", usize::MAX), MAX_IN_FLIGHT_PER_RECEIVER);
    }

    #[test]
    fn retry_after_quiets_the_whole_receiver() {
        let mut s = six();
        let max = Duration::from_secs(1);
        fill(&mut s, "a", 3);
        s.finished("a", t(0), max, Some(Some(Duration::from_secs(30))));
        // A success of an attempt already in flight does not end the quiet.
        s.finished("a", t(0), max, None);
        assert_eq!(s.waiting_until("a", t(0)), Some(t(30)));
        assert!(!s.may_start("a", t(29)));
        assert!(s.may_start("a", t(30)));
        assert!(s.may_start("b", t(0)));
        // The quiet asked for is capped.
        s.finished("a", t(30), max, Some(Some(Duration::from_secs(1 << 40))));
        assert_eq!(
            s.waiting_until("a", t(30)),
            Some(t(30) + chrono::Duration::from_std(MAX_RETRY_AFTER).unwrap())
        );
    }

    #[test]
    fn backoff_is_capped_jittered_and_honours_retry_after() {
        let max = Duration::from_secs(60);
        for attempts in 1..40 {
            let d = backoff(attempts, max, None);
            assert!(d >= MIN_RETRY_DELAY && d <= max, "{attempts}: {d:?}");
        }
        // The ceiling grows: after 3 failures at most 4 s.
        for _ in 0..100 {
            assert!(backoff(3, max, None) <= Duration::from_secs(4));
        }
        assert!(backoff(1, max, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        assert_eq!(
            backoff(1, max, Some(Duration::from_secs(86400))).max(MAX_RETRY_AFTER),
            MAX_RETRY_AFTER
        );
    }
}
