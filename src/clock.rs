//! Wall-clock time, injected: production reads the system clock, tests use a
//! clock that follows tokio's (pausable) time so timestamps and intervals agree.
//!
//! Two readings of time matter to the agent. The *wall clock* says what time
//! it is (records, alert texts, Grafana). The *steady clock* is the wall
//! clock at start plus the monotonic time elapsed since: it never jumps when
//! the system clock is stepped (NTP correcting a wrong clock, an operator's
//! `date -s`), so every duration detection measures (`for`, `recover_for`,
//! gaps) runs on it. [`JumpWatch`] notices when the two part, so a step of
//! the system clock is logged and counted.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration as WallDuration, Utc};
use tokio::time::Instant;

/// Both clocks read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// What time the system clock says it is.
    pub wall: DateTime<Utc>,
    /// The steady clock: never jumps, advances with monotonic time.
    pub steady: DateTime<Utc>,
}

impl From<DateTime<Utc>> for Stamp {
    /// A moment of a clock that never jumps: both readings are `at`.
    fn from(at: DateTime<Utc>) -> Stamp {
        Stamp {
            wall: at,
            steady: at,
        }
    }
}

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// The wall and the steady clock now. For a clock that cannot be stepped,
    /// both are [`Clock::now`].
    fn stamp(&self) -> Stamp {
        Stamp::from(self.now())
    }
}

/// The system clock, with a steady clock anchored at its creation.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start_wall: DateTime<Utc>,
    start: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            start_wall: Utc::now(),
            start: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn stamp(&self) -> Stamp {
        let wall = Utc::now();
        let steady = self.start_wall + elapsed(self.start);
        Stamp { wall, steady }
    }
}

/// `start.elapsed()` as a chrono duration.
fn elapsed(start: Instant) -> WallDuration {
    WallDuration::from_std(start.elapsed()).unwrap_or(WallDuration::MAX)
}

/// A clock that starts at a given time and advances with tokio's clock,
/// including while tokio's time is paused and auto-advanced in tests. Its
/// wall clock can be stepped ([`TokioClock::step`]), as an operator or NTP
/// steps a system clock; its steady clock cannot.
#[derive(Debug)]
pub struct TokioClock {
    start_wall: DateTime<Utc>,
    start: Instant,
    /// How far the wall clock was stepped from the steady one.
    stepped: Mutex<WallDuration>,
}

impl TokioClock {
    /// A clock reading `start_wall` now.
    pub fn starting_at(start_wall: DateTime<Utc>) -> Arc<TokioClock> {
        Arc::new(TokioClock {
            start_wall,
            start: Instant::now(),
            stepped: Mutex::new(WallDuration::zero()),
        })
    }

    /// Steps the wall clock by `by` (negative: back); the steady clock goes
    /// on as before.
    pub fn step(&self, by: WallDuration) {
        let mut stepped = self.stepped.lock().expect("clock lock");
        *stepped += by;
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.stamp().wall
    }

    fn stamp(&self) -> Stamp {
        let steady = self.start_wall + elapsed(self.start);
        let stepped = *self.stepped.lock().expect("clock lock");
        Stamp {
            wall: steady + stepped,
            steady,
        }
    }
}

/// The system clock, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock::default())
}

/// A change of the wall clock against the steady one larger than this is a
/// step, not the few microseconds between reading the two. Slewing (NTP's
/// gradual correction) moves both kernel clocks alike and never shows.
pub const JUMP_TOLERANCE: WallDuration = WallDuration::seconds(1);

/// A step of the wall clock, seen by [`JumpWatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jump {
    /// How far the wall clock moved beyond the steady one: negative when it
    /// was stepped back.
    pub by: WallDuration,
    /// The wall-clock time after the step.
    pub wall: DateTime<Utc>,
}

impl Jump {
    /// `forward` or `backward` (a label value).
    pub fn direction(&self) -> &'static str {
        if self.by < WallDuration::zero() {
            "backward"
        } else {
            "forward"
        }
    }
}

/// Notices steps of the wall clock in a stream of [`Stamp`]s (the samples'
/// start times). Stamps older than the newest one seen (a slow probe's
/// sample arriving after a faster one's) are ignored, so one step is
/// reported once.
#[derive(Debug, Default)]
pub struct JumpWatch {
    /// The newest stamp's steady time and its wall-minus-steady offset.
    last: Option<(DateTime<Utc>, WallDuration)>,
}

impl JumpWatch {
    /// Takes one stamp; returns the step it reveals, if any.
    pub fn observe(&mut self, stamp: Stamp) -> Option<Jump> {
        let offset = stamp.wall - stamp.steady;
        match self.last {
            Some((steady, _)) if stamp.steady < steady => None,
            Some((_, last_offset)) => {
                self.last = Some((stamp.steady, offset));
                let by = offset - last_offset;
                (by.abs() > JUMP_TOLERANCE).then_some(Jump {
                    by,
                    wall: stamp.wall,
                })
            }
            None => {
                self.last = Some((stamp.steady, offset));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_stepped_tokio_clock_moves_its_wall_clock_only() {
        let clock = TokioClock::starting_at(at("2026-12-05T12:00:00Z"));
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        clock.step(WallDuration::hours(-1));
        let s = clock.stamp();
        assert_eq!(s.steady, at("2026-12-05T12:00:10Z"));
        assert_eq!(s.wall, at("2026-12-05T11:00:10Z"));
        assert_eq!(clock.now(), s.wall);
    }

    #[test]
    fn a_step_is_seen_once_and_stale_stamps_are_ignored() {
        let mut w = JumpWatch::default();
        let stamp = |wall: &str, steady: &str| Stamp {
            wall: at(wall),
            steady: at(steady),
        };
        assert_eq!(
            w.observe(stamp("2026-12-05T12:00:00Z", "2026-12-05T12:00:00Z")),
            None
        );
        // Half a second of disagreement is reading the two clocks apart.
        assert_eq!(
            w.observe(stamp("2026-12-05T12:00:10.5Z", "2026-12-05T12:00:10Z")),
            None
        );
        let jump = w
            .observe(stamp("2026-12-05T11:00:20Z", "2026-12-05T12:00:20Z"))
            .expect("a step back");
        assert_eq!(jump.by, WallDuration::milliseconds(-3_600_500));
        assert_eq!(jump.direction(), "backward");
        // A probe that started before the step reports late: not a second step.
        assert_eq!(
            w.observe(stamp("2026-12-05T12:00:15Z", "2026-12-05T12:00:15Z")),
            None
        );
        assert_eq!(
            w.observe(stamp("2026-12-05T11:00:30Z", "2026-12-05T12:00:30Z")),
            None
        );
        let jump = w
            .observe(stamp("2026-12-05T12:30:40Z", "2026-12-05T12:00:40Z"))
            .expect("a step forward");
        assert_eq!(jump.direction(), "forward");
        assert_eq!(jump.wall, at("2026-12-05T12:30:40Z"));
    }
}
