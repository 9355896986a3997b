//! The metrics listener's connections, at most a limit open at once: the
//! configured `max_connections`, or less when the descriptor limit is low,
//! so the listener never takes the descriptors the probes and collectors
//! need ([`FD_RESERVE`]).
//!
//! At the limit, the open connection that has waited longest for a request
//! (a head not yet sent, an idle keep-alive, a response its client does not
//! read) is closed to make room for the next one, once it has waited
//! [`EVICT_AFTER`]: slow or silent clients cannot keep a scraper out, and a
//! burst of scrapers is not cut down while the agent gets to their heads.
//! Until a place frees or a connection is that old, the listener stops
//! accepting, for [`ROOM_WAIT`] at most: a burst waits in the kernel's
//! backlog for milliseconds, as TCP intends. After that (every connection
//! busy answering, which is rare and short), the next connection is accepted
//! and closed at once, and counted, so the backlog moves: connections left
//! there look open to their clients, who would wait for their own timeouts,
//! and cannot be counted.
//!
//! A connection's wait is counted from when its task first runs, not from
//! its accept: under load the agent itself may be slow to look at a new
//! connection, and a scraper whose head sits unread is not a slow client.
//! Connections whose tasks have not run yet are never closed for another;
//! while they fill the table the listener accepts no more, so a starved
//! agent takes in only what it can serve.
//!
//! An evicted connection holds its descriptor until its task has run, so
//! the listener does not make room while [`CLOSING_SLACK`] evicted
//! connections have not closed yet: the descriptors in use stay within the
//! limit plus that slack.

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
/// How long a connection may wait for a request before it can be closed to
/// make room. A scraper's head arrives within milliseconds of its connect;
/// this leaves time for an agent slow to read it under load (with no wait
/// at all, a burst of 500 scrapes lost a fifth of them to each other).
/// Under a flood of silent connections the listener takes in
/// `limit / EVICT_AFTER` connections a second (1,024 at the defaults), and
/// a scraper waits in the backlog behind the flood (500 ms halved that rate
/// and doubled the wait).
pub const EVICT_AFTER: Duration = Duration::from_millis(250);
/// Evicted connections that may still hold their descriptors while the
/// listener makes room for more. Waiting for each one to close would make
/// the accept loop as slow as a busy machine's task switches.
pub const CLOSING_SLACK: usize = 32;
/// How long the listener stops accepting at most while it is full and no
/// connection can make room; then one connection is refused, and it waits
/// again.
pub const ROOM_WAIT: Duration = Duration::from_secs(1);

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
    /// Woken when a connection closes or goes back to waiting for a request.
    changed: Notify,
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

    /// The connection that has waited longest for a request, and since when.
    fn longest_waiting(&self) -> Option<(Instant, u64)> {
        self.open
            .iter()
            .filter_map(|(id, e)| e.waiting_since.map(|since| (since, *id)))
            .min()
    }

    /// Whether an accept may go ahead at `now`: a place is free, or a
    /// connection can make room. Otherwise, when that may change by itself:
    /// the instant the longest-waiting connection reaches [`EVICT_AFTER`]
    /// (`None` when only a close or the end of a request can change it).
    fn room_at(&self, now: Instant) -> Result<(), Option<Instant>> {
        if self.open.len() + self.closing < self.limit() {
            return Ok(());
        }
        if self.closing >= CLOSING_SLACK {
            return Err(None);
        }
        match self.longest_waiting() {
            Some((since, _)) if since + EVICT_AFTER <= now => Ok(()),
            Some((since, _)) => Err(Some(since + EVICT_AFTER)),
            None => Err(None),
        }
    }
}

struct Entry {
    /// Since when it has waited for a request; `None` before its task first
    /// ran and while a request is answered.
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
            changed: Notify::new(),
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

    /// Waits until an accept may go ahead: a place is free, or a connection
    /// has waited [`EVICT_AFTER`] for a request and can make room; at most
    /// [`ROOM_WAIT`].
    pub(crate) async fn room(&self) {
        let deadline = Instant::now() + ROOM_WAIT;
        loop {
            let changed = self.changed.notified();
            let wake = match self
                .table
                .lock()
                .expect("connections lock")
                .room_at(Instant::now())
            {
                Ok(()) => return,
                Err(wake) => wake.map_or(deadline, |w| w.min(deadline)),
            };
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            if Instant::now() >= deadline {
                return;
            }
        }
    }

    /// Admits a new connection, closing the one that waited longest for a
    /// request (at least [`EVICT_AFTER`]) when at the limit; `None`
    /// (counted) when no connection can make room.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let now = Instant::now();
        let mut t = self.table.lock().expect("connections lock");
        while t.open.len() >= t.limit() {
            let oldest = t
                .longest_waiting()
                .filter(|(since, _)| *since + EVICT_AFTER <= now);
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
                waiting_since: None,
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
        drop(t);
        if waiting {
            self.changed.notify_waiters();
        }
    }

    fn update_gauges(&self, t: &Table) {
        self.metrics.connections_open.set(t.open.len() as i64);
        self.metrics.connections_limit.set(t.limit() as i64);
    }
}

impl Slot {
    /// Marks the connection's task as running: from now on it waits for its
    /// client's request, and can be closed to make room once it has waited
    /// [`EVICT_AFTER`].
    pub(crate) fn start(&self) {
        self.owner.set_waiting(self.id, true);
    }

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
        self.owner.changed.notify_waiters();
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
        let second = c.admit().unwrap();
        tokio::time::advance(EVICT_AFTER * 2).await;
        // Connections whose tasks have not run yet are never closed for another.
        assert!(c.admit().is_none());
        first.start();
        tokio::time::advance(Duration::from_millis(10)).await;
        second.start();
        // Both too young to be closed for another.
        assert!(c.admit().is_none());
        assert_eq!(
            count(&reg, "mailpulse_web_connections_refused_total", "limit"),
            2
        );
        tokio::time::advance(EVICT_AFTER).await;
        // The first waited longest: it goes.
        let third = c.admit().unwrap();
        third.start();
        assert!(first.evict.is_cancelled());
        assert!(!second.evict.is_cancelled());
        assert_eq!(m.connections_open.get(), 2);
        assert_eq!(
            count(&reg, "mailpulse_web_connections_closed_total", "evicted"),
            1
        );
        drop(first);
        assert_eq!(m.connections_open.get(), 2, "already counted out");
        // A connection answering a request is kept, however long it has been open.
        tokio::time::advance(EVICT_AFTER).await;
        let _a = second.busy();
        let _b = third.busy();
        assert!(c.admit().is_none());
        drop(_b);
        // The third waits again, from now.
        assert!(c.admit().is_none());
        tokio::time::advance(EVICT_AFTER).await;
        let fourth = c.admit().unwrap();
        fourth.start();
        assert!(third.evict.is_cancelled());
        assert!(!second.evict.is_cancelled());
        drop((second, third, fourth));
        assert_eq!(m.connections_open.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_listener_waits_for_a_place_or_an_old_enough_connection() {
        let (c, _, _) = table(1);
        let first = c.admit().unwrap();
        first.start();
        // Room comes when the first has waited EVICT_AFTER.
        let began = Instant::now();
        c.room().await;
        assert_eq!(began.elapsed(), EVICT_AFTER);
        // Or when a connection closes.
        let second = c.admit().unwrap();
        second.start();
        assert!(first.evict.is_cancelled());
        drop(first);
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
        drop(second);
        assert_eq!(waiting.await.unwrap(), Duration::from_millis(5));
        // A connection busy answering for long holds the listener for ROOM_WAIT at most.
        let third = c.admit().unwrap();
        third.start();
        let _busy = third.busy();
        let began = Instant::now();
        c.room().await;
        assert_eq!(began.elapsed(), ROOM_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn no_room_is_made_while_evicted_connections_hold_the_slack() {
        let (c, _, _) = table(1);
        let mut evicted = Vec::new();
        for _ in 0..=CLOSING_SLACK {
            c.room().await;
            let slot = c.admit().unwrap();
            slot.start();
            evicted.push(slot);
        }
        let last = evicted.pop().unwrap();
        assert!(evicted.iter().all(|e| e.evict.is_cancelled()));
        assert!(!last.evict.is_cancelled());
        // CLOSING_SLACK evicted connections have not closed: the last one,
        // however old, is not closed for another.
        tokio::time::advance(EVICT_AFTER).await;
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
        drop(evicted.pop());
        assert_eq!(waiting.await.unwrap(), Duration::from_millis(5));
    }
}
