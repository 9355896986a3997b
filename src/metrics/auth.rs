//! HTTP basic authentication of the metrics endpoint (`[agent.web]
//! basic_auth_users`), so that guessing stays slow and cannot slow anything
//! else down:
//! - bcrypt runs on the blocking pool, [`VERIFY_CONCURRENCY`] check at a
//!   time with at most [`VERIFY_QUEUE`] waiting; beyond that the answer is
//!   503 at once. The tokio workers that serve scrapes and drive probes
//!   never run bcrypt, and shutdown never waits for it.
//! - A client (an IPv4 address, or an IPv6 /64) that failed
//!   [`FAILURE_LIMIT`] checks within [`FAILURE_WINDOW`] is answered 429
//!   without a check until the window ends. This comes before the cache of
//!   successful checks, so the cache is no fast oracle for guesses; the
//!   price is that a scraper sharing an address with a guesser is refused too.
//! - Every check does the same bcrypt work, that of one check at the highest
//!   configured cost, whether the user exists or not and whatever its own
//!   hash's cost ([`Users::plan`]), so timing does not tell user names.
//! - A successful check is remembered (a digest of user, password and
//!   hash), so a scraper pays bcrypt once, not on every scrape.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hyper::HeaderMap;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::web::AuthRejected;
use crate::config::{MAX_BCRYPT_COST, MIN_BCRYPT_COST};

/// bcrypt checks running at once. One core at most goes to checking
/// passwords, whatever arrives; a scraper whose check succeeded never waits
/// here again (its success is cached).
pub const VERIFY_CONCURRENCY: usize = 1;
/// Checks allowed to wait for [`VERIFY_CONCURRENCY`]; more are answered 503
/// at once. At the default cost 10 (about 70 ms a check) the last waits
/// about a second.
pub const VERIFY_QUEUE: usize = 16;
/// Failed checks a client may have within [`FAILURE_WINDOW`] before it is
/// answered 429 without a check.
pub const FAILURE_LIMIT: u32 = 10;
/// The window [`FAILURE_LIMIT`] counts in, from a client's first failure.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Clients whose failures are remembered at most; when full, those whose
/// window ended are forgotten first, then the oldest.
const TRACKED_CLIENTS: usize = 4096;
/// Successful checks remembered, so bcrypt's cost is paid once per client.
const AUTH_CACHE_SIZE: usize = 1024;

/// Why a request was refused, and when the client may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// The `reason` label, and which answer to give.
    pub reason: AuthRejected,
    /// For 429 and 503: when to come back (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Rejection {
    fn new(reason: AuthRejected) -> Rejection {
        Rejection {
            reason,
            retry_after: None,
        }
    }
}

/// The configured users, with what a check of each costs.
pub(crate) struct Users {
    hashes: HashMap<String, String>,
    /// The highest cost among the hashes: every check costs this much.
    max_cost: u32,
    /// Digests of (user, password, hash) that verified.
    verified: Mutex<HashSet<[u8; 32]>>,
}

/// The bcrypt checks one request runs: the user's own hash, if it has one,
/// then decoys that bring the work up to one check at the highest cost.
#[derive(Debug, PartialEq)]
pub(crate) struct Plan {
    real: Option<String>,
    padding: Vec<String>,
}

impl Users {
    /// The users of `[agent.web] basic_auth_users`; an error for a hash that
    /// is not bcrypt or whose cost is out of range (validation reports these
    /// first, with their place in the file).
    pub(crate) fn new(users: &[(String, String)]) -> Result<Users, String> {
        let mut max_cost = MIN_BCRYPT_COST;
        for (user, hash) in users {
            let cost = hash
                .parse::<bcrypt::HashParts>()
                .map_err(|_| format!("basic_auth_users.{user}: expected a bcrypt hash"))?
                .get_cost();
            if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost) {
                return Err(format!(
                    "basic_auth_users.{user}: bcrypt cost {cost} is outside {MIN_BCRYPT_COST}-{MAX_BCRYPT_COST}"
                ));
            }
            max_cost = max_cost.max(cost);
        }
        Ok(Users {
            hashes: users.iter().cloned().collect(),
            max_cost,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Whether authentication is off.
    pub(crate) fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The checks for `user`. bcrypt's work is 2^cost rounds, so a user
    /// whose hash has cost `c` below the highest cost `m` is padded with
    /// decoys of costs `c, c+1, ..., m-1` (2^c + 2^c + 2^(c+1) + ... +
    /// 2^(m-1) = 2^m), and an unknown user is checked against one decoy of
    /// cost `m`. Each check adds only a small fixed set-up to its rounds.
    pub(crate) fn plan(&self, user: &str) -> Plan {
        match self.hashes.get(user) {
            None => Plan {
                real: None,
                padding: vec![decoy(self.max_cost)],
            },
            Some(hash) => {
                let cost = cost_of(hash);
                Plan {
                    real: Some(hash.clone()),
                    padding: (cost..self.max_cost).map(decoy).collect(),
                }
            }
        }
    }

    /// The cache key of a known user's credentials; `None` for an unknown user.
    fn digest(&self, user: &str, password: &str) -> Option<[u8; 32]> {
        let hash = self.hashes.get(user)?;
        Some(
            Sha256::new()
                .chain_update(user.as_bytes())
                .chain_update([0])
                .chain_update(password.as_bytes())
                .chain_update([0])
                .chain_update(hash.as_bytes())
                .finalize()
                .into(),
        )
    }

    fn cached(&self, digest: &[u8; 32]) -> bool {
        self.verified.lock().expect("auth cache").contains(digest)
    }

    fn remember(&self, digest: [u8; 32]) {
        let mut cache = self.verified.lock().expect("auth cache");
        if cache.len() >= AUTH_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(digest);
    }
}

impl Plan {
    /// Runs every check of the plan with `verify(password, hash)`, the
    /// padding too whatever the first answered, and says whether the user's
    /// own hash matched.
    pub(crate) fn run(self, password: &str, verify: &mut dyn FnMut(&str, &str) -> bool) -> bool {
        let ok = self.real.is_some_and(|hash| verify(password, &hash));
        for hash in &self.padding {
            verify(password, hash);
        }
        ok
    }
}

/// A well-formed bcrypt hash of `cost` that no password matches in practice:
/// checking against it costs exactly what checking a real one does.
fn decoy(cost: u32) -> String {
    format!("$2b${cost:02}${}", ".".repeat(53))
}

fn cost_of(hash: &str) -> u32 {
    hash.parse::<bcrypt::HashParts>()
        .map(|p| p.get_cost())
        .unwrap_or(MAX_BCRYPT_COST)
}

/// The user name and password of a `Basic` `Authorization` header.
/// The user name of a request's basic credentials (after a check passed).
pub(crate) fn basic_user(headers: &HeaderMap) -> Option<String> {
    basic_credentials(headers).map(|(user, _)| user)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The key failures are counted under: the address, or its /64 for IPv6
/// (one host commonly has a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// A client's failed checks in its current window.
struct Failures {
    since: Instant,
    count: u32,
}

/// What outlives a reload: the per-client failure counts and the bcrypt
/// checks waiting or running.
pub(crate) struct Gate {
    failures: Mutex<HashMap<IpAddr, Failures>>,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            failures: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(VERIFY_CONCURRENCY)),
            waiting: AtomicUsize::new(0),
        }
    }
}

impl Gate {
    /// Checks a request's basic credentials from `peer` against `users`.
    pub(crate) async fn check(
        &self,
        users: &Users,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Result<(), Rejection> {
        if users.is_empty() {
            return Ok(());
        }
        let Some((user, password)) = basic_credentials(headers) else {
            return Err(Rejection::new(AuthRejected::Missing));
        };
        let client = client_key(peer);
        if let Some(wait) = self.limited(client, Instant::now()) {
            return Err(Rejection {
                reason: AuthRejected::Limited,
                retry_after: Some(wait),
            });
        }
        let digest = users.digest(&user, &password);
        if digest.as_ref().is_some_and(|d| users.cached(d)) {
            return Ok(());
        }
        let plan = users.plan(&user);
        let Some(permit) = self.permit().await else {
            return Err(Rejection {
                reason: AuthRejected::Busy,
                retry_after: Some(Duration::from_secs(1)),
            });
        };
        // The permit goes with the check: if this request is dropped (its
        // client left, or shutdown), the check still counts until it ends.
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            plan.run(&password, &mut |p, h| bcrypt::verify(p, h).unwrap_or(false))
        })
        .await
        .unwrap_or(false);
        match (ok, digest) {
            (true, Some(d)) => {
                users.remember(d);
                self.failures.lock().expect("auth failures").remove(&client);
                Ok(())
            }
            _ => {
                if self.failed(client, Instant::now()) {
                    tracing::warn!(
                        client = %client,
                        failures = FAILURE_LIMIT,
                        window = ?FAILURE_WINDOW,
                        "metrics client keeps failing basic authentication; answering 429 until its window ends"
                    );
                }
                Err(Rejection::new(AuthRejected::Invalid))
            }
        }
    }

    /// How long `client` must still wait, if it is over the failure limit.
    fn limited(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().expect("auth failures");
        let f = failures.get(&client)?;
        let ends = f.since + FAILURE_WINDOW;
        (f.count >= FAILURE_LIMIT && now < ends).then(|| ends - now)
    }

    /// Counts a failed check; true when it brought `client` to the limit.
    fn failed(&self, client: IpAddr, now: Instant) -> bool {
        let mut failures = self.failures.lock().expect("auth failures");
        if failures.len() >= TRACKED_CLIENTS && !failures.contains_key(&client) {
            failures.retain(|_, f| now < f.since + FAILURE_WINDOW);
            if failures.len() >= TRACKED_CLIENTS {
                let oldest = failures
                    .iter()
                    .min_by_key(|(_, f)| f.since)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    failures.remove(&k);
                }
            }
        }
        let f = failures.entry(client).or_insert(Failures {
            since: now,
            count: 0,
        });
        if now >= f.since + FAILURE_WINDOW {
            *f = Failures {
                since: now,
                count: 0,
            };
        }
        f.count += 1;
        f.count == FAILURE_LIMIT
    }

    /// A turn to run a check, waiting behind at most [`VERIFY_QUEUE`]
    /// others; `None` when the queue is full.
    async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Some(p);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= VERIFY_QUEUE {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        // Leaves the queue however the wait ends, dropped included.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&self.waiting);
        self.permits.clone().acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(list: &[(&str, &str, u32)]) -> Users {
        let list: Vec<(String, String)> = list
            .iter()
            .map(|(u, p, c)| (u.to_string(), bcrypt::hash(p, *c).unwrap()))
            .collect();
        Users::new(&list).unwrap()
    }

    /// Runs `user`'s plan with `password`, counting bcrypt rounds (2^cost
    /// per check) instead of timing them.
    fn rounds(users: &Users, user: &str, password: &str) -> (bool, u64, usize) {
        let mut rounds = 0u64;
        let mut checks = 0;
        let ok = users.plan(user).run(password, &mut |p, h| {
            rounds += 1 << cost_of(h);
            checks += 1;
            bcrypt::verify(p, h).unwrap()
        });
        (ok, rounds, checks)
    }

    #[test]
    fn known_and_unknown_users_cost_the_same() {
        let u = users(&[("cheap", "pw-cheap", 4), ("dear", "pw-dear", 7)]);
        let full = 1u64 << 7;
        // Unknown user, known users with wrong and right passwords: the same rounds.
        assert_eq!(rounds(&u, "nobody", "pw-cheap"), (false, full, 1));
        assert_eq!(rounds(&u, "cheap", "wrong"), (false, full, 4));
        assert_eq!(rounds(&u, "cheap", "pw-cheap"), (true, full, 4));
        assert_eq!(rounds(&u, "dear", "wrong"), (false, full, 1));
        assert_eq!(rounds(&u, "dear", "pw-dear"), (true, full, 1));
        // A password of another user does not let in.
        assert!(!rounds(&u, "dear", "pw-cheap").0);
    }

    #[test]
    fn decoys_are_hashes_that_cost_their_cost_and_match_nothing() {
        for cost in MIN_BCRYPT_COST..=MAX_BCRYPT_COST {
            let d = decoy(cost);
            let parts: bcrypt::HashParts = d.parse().unwrap();
            assert_eq!(parts.get_cost(), cost);
        }
        // The check runs (Ok), it is not refused as malformed (Err, free).
        assert_eq!(bcrypt::verify("", &decoy(4)).ok(), Some(false));
        assert_eq!(bcrypt::verify("password", &decoy(5)).ok(), Some(false));
    }

    #[test]
    fn costs_outside_the_range_are_refused() {
        let ok = bcrypt::hash("x", 4).unwrap();
        let dear = ok.replacen("$04$", "$31$", 1);
        let err = Users::new(&[("p".into(), dear)]).err().unwrap();
        assert!(err.contains("bcrypt cost 31"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_over_the_failure_limit_waits_out_its_window() {
        let gate = Gate::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let start = Instant::now();
        for i in 1..FAILURE_LIMIT {
            assert!(!gate.failed(a, start));
            assert_eq!(gate.limited(a, start), None, "after {i} failures");
        }
        assert!(gate.failed(a, start), "the limit is reached");
        assert_eq!(gate.limited(a, start), Some(FAILURE_WINDOW));
        assert_eq!(
            gate.limited(b, start),
            None,
            "another client is not limited"
        );
        let later = start + FAILURE_WINDOW / 2;
        assert_eq!(gate.limited(a, later), Some(FAILURE_WINDOW / 2));
        assert_eq!(gate.limited(a, start + FAILURE_WINDOW), None);
        // A new window starts from nothing.
        assert!(!gate.failed(a, start + FAILURE_WINDOW));
        assert_eq!(gate.limited(a, start + FAILURE_WINDOW), None);
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let a = client_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = client_key("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = client_key("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            client_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn checks_beyond_the_queue_are_turned_away_at_once() {
        let gate = Arc::new(Gate::default());
        let running = gate.permit().await.unwrap();
        let mut waiting = Vec::new();
        for _ in 0..VERIFY_QUEUE {
            let g = gate.clone();
            waiting.push(tokio::spawn(async move { g.permit().await.is_some() }));
        }
        while gate.waiting.load(Ordering::SeqCst) < VERIFY_QUEUE {
            tokio::task::yield_now().await;
        }
        assert!(gate.permit().await.is_none(), "the queue is full");
        // A waiter that gives up leaves its place.
        waiting.pop().unwrap().abort();
        while gate.waiting.load(Ordering::SeqCst) >= VERIFY_QUEUE {
            tokio::task::yield_now().await;
        }
        drop(running);
        for w in waiting {
            assert!(w.await.unwrap());
        }
    }
}
