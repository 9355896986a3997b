//! The metrics listener's connections, at most a limit open at once: the
//! configured `max_connections`, or less when the descriptor limit is low,
//! so the listener never takes the descriptors the probes and collectors
//! need ([`FD_RESERVE`]).
//!
//! At the limit a new connection is accepted, and takes the place of the
//! open connection that has waited longest for a request (a head not yet
//! sent, an idle keep-alive, a response its client does not read). Only when
//! every connection is busy answering a request is the new one closed at
//! once. Either way the accept queue is drained: connections left in the
//! kernel's backlog would look open to their clients, who would wait for
//! their own timeouts, could not be counted, and would be served first
//! once a slot freed, ahead of a scraper that came later. A scraper sends its
//! request within milliseconds of connecting, so it is never the connection
//! that waited longest: slow or silent clients cannot keep it out.
//!
//! An evicted connection holds its descriptor until its task has run, so
//! the listener accepts no more while the table is full and
//! [`CLOSING_SLACK`] evicted connections have not closed yet
//! ([`Connections::room`]): the descriptors in use stay within the limit
//! plus that slack.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::web::{Closed, Refused, WebMetrics};

/// Descriptors kept for everything but the listener's connections: probes
/// (one or two each while they run), host collectors, the state store, the
/// log, the listening socket, systemd's notify socket. Half the limit when
/// the limit is below twice this.
pub const FD_RESERVE: u64 = 512;
/// Evicted connections that may still hold their descriptors while the
/// listener accepts more. Waiting for each one to close before the next
/// accept would make the accept loop as slow as a busy machine's task
/// switches, and a scraper would wait in the backlog behind the flood.
pub const CLOSING_SLACK: usize = 32;
/// How long the listener waits at most for evicted connections to close
/// before it accepts again anyway ([`Connections::room`]); their tasks
/// normally run within microseconds.
const CLOSING_WAIT: Duration = Duration::from_secs(1);

/// The most connections the listener may hold under a descriptor limit of
/// `nofile`: the limit minus [`FD_RESERVE`] (or minus half of it when it is
/// small), at least 1.
pub fn descriptor_budget(nofile: u64) -> usize {
    let reserve = FD_RESERVE.min(nofile / 2);
    usize::try_from(nofile.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// The table of open connections.
pub(crate) struct Connections {
    table: Mutex<Table>,
    metrics: WebMetrics,
    /// Woken when a connection closes.
    closed: Notify,
}

struct Table {
    /// `[agent.web] max_connections`.
    configured: usize,
    /// What the descriptor limit allows ([`descriptor_budget`]).
    budget: usize,
    next_id: u64,
    open: HashMap<u64, Entry>,
    /// Evicted connections whose tasks have not closed them yet.
    closing: usize,
}

impl Table {
    fn limit(&self) -> usize {
        self.configured.min(self.budget).max(1)
    }

    /// Whether an accept may go ahead: a place is free, or fewer than
    /// [`CLOSING_SLACK`] descriptors are still closing.
    fn has_room(&self) -> bool {
        self.open.len() + self.closing < self.limit() || self.closing < CLOSING_SLACK
    }
}

struct Entry {
    /// Since when it has waited for a request; `None` while one is answered.
    waiting_since: Option<Instant>,
    /// Cancelled to close it.
    evict: CancellationToken,
}

/// One admitted connection; dropping it frees its place.
pub(crate) struct Slot {
    id: u64,
    evict: CancellationToken,
    owner: Arc<Connections>,
}

impl Connections {
    /// An empty table allowing `configured` connections (no descriptor
    /// budget until [`Connections::set_budget`]).
    pub(crate) fn new(configured: usize, metrics: WebMetrics) -> Arc<Connections> {
        let c = Arc::new(Connections {
            table: Mutex::new(Table {
                configured,
                budget: usize::MAX,
                next_id: 0,
                open: HashMap::new(),
                closing: 0,
            }),
            metrics,
            closed: Notify::new(),
        });
        c.update_gauges(&c.table.lock().expect("connections lock"));
        c
    }

    /// Sets `[agent.web] max_connections` (on start and reload). Connections
    /// beyond a lowered limit make room as new ones arrive.
    pub(crate) fn set_configured(&self, configured: usize) {
        let mut t = self.table.lock().expect("connections lock");
        t.configured = configured;
        self.update_gauges(&t);
    }

    /// Sets the most connections the descriptor limit allows.
    pub(crate) fn set_budget(&self, budget: usize) {
        let mut t = self.table.lock().expect("connections lock");
        t.budget = budget;
        self.update_gauges(&t);
    }

    /// The limit in force.
    pub(crate) fn limit(&self) -> usize {
        self.table.lock().expect("connections lock").limit()
    }

    /// Waits until an accept may go ahead: while the table is full and an
    /// evicted connection has not closed yet, accepting would take one more
    /// descriptor. Gives up after [`CLOSING_WAIT`].
    pub(crate) async fn room(&self) {
        let deadline = Instant::now() + CLOSING_WAIT;
        loop {
            let closed = self.closed.notified();
            if self.table.lock().expect("connections lock").has_room() {
                return;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                return;
            }
        }
    }

    /// Admits a new connection, closing the one that waited longest for a
    /// request when at the limit; `None` (counted) when every connection is
    /// busy answering one.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let now = Instant::now();
        let mut t = self.table.lock().expect("connections lock");
        while t.open.len() >= t.limit() {
            let oldest = t
                .open
                .iter()
                .filter_map(|(id, e)| e.waiting_since.map(|since| (since, *id)))
                .min();
            let Some((_, id)) = oldest else {
                drop(t);
                self.metrics.refused(Refused::Limit);
                return None;
            };
            if let Some(e) = t.open.remove(&id) {
                e.evict.cancel();
                t.closing += 1;
                self.metrics.closed(Closed::Evicted);
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let evict = CancellationToken::new();
        t.open.insert(
            id,
            Entry {
                waiting_since: Some(now),
                evict: evict.clone(),
            },
        );
        self.update_gauges(&t);
        Some(Slot {
            id,
            evict,
            owner: self.clone(),
        })
    }

    fn set_waiting(&self, id: u64, waiting: bool) {
        let mut t = self.table.lock().expect("connections lock");
        if let Some(e) = t.open.get_mut(&id) {
            e.waiting_since = waiting.then(Instant::now);
        }
    }

    fn update_gauges(&self, t: &Table) {
        self.metrics.connections_open.set(t.open.len() as i64);
        self.metrics.connections_limit.set(t.limit() as i64);
    }
}

impl Slot {
    /// Completes when the connection must close to make room for another.
    pub(crate) fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.evict.cancelled()
    }

    /// Marks the connection busy answering a request until the guard drops;
    /// a busy connection is never evicted.
    pub(crate) fn busy(&self) -> Busy {
        self.owner.set_waiting(self.id, false);
        Busy {
            id: self.id,
            owner: self.owner.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.owner.table.lock().expect("connections lock");
        if t.open.remove(&self.id).is_none() {
            // It was evicted: its descriptor closes now.
            t.closing = t.closing.saturating_sub(1);
        }
        self.owner.update_gauges(&t);
        drop(t);
        self.owner.closed.notify_waiters();
    }
}

/// A request being answered on a connection (see [`Slot::busy`]).
pub(crate) struct Busy {
    id: u64,
    owner: Arc<Connections>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.owner.set_waiting(self.id, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(limit: usize) -> (Arc<Connections>, WebMetrics, prometheus::Registry) {
        let reg = prometheus::Registry::new();
        let metrics = WebMetrics::register(&reg).unwrap();
        (Connections::new(limit, metrics.clone()), metrics, reg)
    }

    fn count(reg: &prometheus::Registry, family: &str, reason: &str) -> u64 {
        reg.gather()
            .iter()
            .filter(|f| f.name() == family)
            .flat_map(|f| f.get_metric())
            .filter(|s| s.get_label()[0].value() == reason)
            .map(|s| s.get_counter().get_value() as u64)
            .sum()
    }

    #[test]
    fn the_budget_keeps_a_reserve_of_descriptors() {
        assert_eq!(descriptor_budget(1024), 512);
        assert_eq!(descriptor_budget(512), 256);
        assert_eq!(descriptor_budget(65_536), 65_024);
        assert_eq!(descriptor_budget(1), 1);
        let (c, m, _) = table(256);
        c.set_budget(descriptor_budget(300));
        assert_eq!(c.limit(), 150);
        assert_eq!(m.connections_limit.get(), 150);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_the_longest_waiting_connection_makes_room() {
        let (c, m, reg) = table(2);
        let first = c.admit().unwrap();
        tokio::time::advance(std::time::Duration::from_millis(10)).await;
        let second = c.admit().unwrap();
        tokio::time::advance(std::time::Duration::from_millis(10)).await;
        // The first waited longest: it goes.
        let third = c.admit().unwrap();
        assert!(first.evict.is_cancelled());
        assert!(!second.evict.is_cancelled());
        assert_eq!(m.connections_open.get(), 2);
        assert_eq!(
            count(&reg, "mailpulse_web_connections_closed_total", "evicted"),
            1
        );
        drop(first);
        assert_eq!(m.connections_open.get(), 2, "already counted out");
        // A connection answering a request is kept; with both busy, a new
        // one is refused.
        let _a = second.busy();
        let _b = third.busy();
        assert!(c.admit().is_none());
        assert_eq!(
            count(&reg, "mailpulse_web_connections_refused_total", "limit"),
            1
        );
        drop(_b);
        let fourth = c.admit().unwrap();
        assert!(third.evict.is_cancelled());
        assert!(!second.evict.is_cancelled());
        drop((second, third, fourth));
        assert_eq!(m.connections_open.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_accept_while_evicted_connections_still_hold_the_slack() {
        let (c, _, _) = table(1);
        let mut evicted = Vec::new();
        for _ in 0..CLOSING_SLACK {
            c.room().await;
            evicted.push(c.admit().unwrap());
        }
        let first = evicted.remove(0);
        let second = c.admit().unwrap();
        assert!(first.evict.is_cancelled());
        assert!(evicted.iter().all(|e| e.evict.is_cancelled()));
        // CLOSING_SLACK evicted connections have not closed: no more accepts.
        let waiting = tokio::spawn({
            let c = c.clone();
            async move {
                let began = Instant::now();
                c.room().await;
                began.elapsed()
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        tokio::time::advance(Duration::from_millis(5)).await;
        drop(first);
        assert_eq!(waiting.await.unwrap(), Duration::from_millis(5));
        // Tasks that never close hold the listener up for CLOSING_WAIT at most.
        let _third = c.admit().unwrap();
        assert!(second.evict.is_cancelled());
        let began = Instant::now();
        c.room().await;
        assert_eq!(began.elapsed(), CLOSING_WAIT);
    }
}
