//! Soak-test runs in the state store: named runs with their ordered phases
//! (`mailpulse soak start|phase|end`), so phase boundaries survive restarts
//! and `kill -9`.
//!
//! One table, `run id -> JSON(Run)`, ids increasing, so the last row is the
//! newest run and the only one that may be active. Every change is one
//! durable transaction that reads the newest run and decides against it, so
//! a command and the daemon's API never interleave half a change. At most
//! `keep` runs are kept (`[soak] keep_runs`); the oldest go first.

use chrono::{DateTime, Utc};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::salvage::{Report, Source};
use super::{read_table, Store, StoreError};

/// Runs: `id -> JSON(Run)`.
const RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("soak_runs");

/// Longest run or phase name, in bytes.
pub const MAX_NAME: usize = 128;
/// Longest note, in bytes.
pub const MAX_NOTE: usize = 1024;

/// One phase of a run, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseMark {
    /// The phase's name (`baseline`, `plateau`, ...).
    pub name: String,
    /// When it began (the caller's stamp).
    pub started_at: DateTime<Utc>,
    /// When the next phase began or the run ended; `None` while current.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// What the operator wrote about it.
    #[serde(default)]
    pub note: Option<String>,
}

/// One soak-test run, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Increasing id, unique in the store.
    pub id: u64,
    /// The run's name.
    pub name: String,
    /// When it began.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while active.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// A note given at start without a phase.
    #[serde(default)]
    pub note: Option<String>,
    /// Its phases, in order; the last one is current while the run is active.
    #[serde(default)]
    pub phases: Vec<PhaseMark>,
}

impl Run {
    /// Whether the run has not ended.
    pub fn is_active(&self) -> bool {
        self.ended_at.is_none()
    }

    /// The phase running now (the last one, while the run is active).
    pub fn current_phase(&self) -> Option<&PhaseMark> {
        self.phases
            .last()
            .filter(|p| self.is_active() && p.ended_at.is_none())
    }

    /// The phase that was running at `at`, if the run was active then.
    pub fn phase_at(&self, at: DateTime<Utc>) -> Option<&PhaseMark> {
        self.phases
            .iter()
            .rev()
            .find(|p| p.started_at <= at && p.ended_at.is_none_or(|end| at < end))
    }

    /// When the latest mark was set (the current phase's start, or the run's).
    fn last_mark(&self) -> DateTime<Utc> {
        self.phases
            .last()
            .map(|p| p.ended_at.unwrap_or(p.started_at))
            .unwrap_or(self.started_at)
            .max(self.started_at)
    }
}

/// Why a soak change was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `start` while a run is active.
    #[error("soak run {0:?} is still active; end it first (mailpulse soak end)")]
    Active(String),
    /// `phase` or `end` with no active run.
    #[error("no soak run is active; start one first (mailpulse soak start NAME)")]
    NoActive,
    /// A name, note or time the store will not take.
    #[error("{0}")]
    Invalid(String),
}

impl SoakError {
    /// Whether the request itself was wrong (as opposed to the store failing).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, SoakError::Store(_))
    }
}

/// Checks a run or phase name: not empty, not too long, no control or
/// invisible formatting characters (`is_hidden` says which those are).
pub fn check_name(
    what: &str,
    name: &str,
    is_hidden: impl Fn(char) -> bool,
) -> Result<(), SoakError> {
    if name.trim().is_empty() {
        return Err(SoakError::Invalid(format!(
            "the {what} name must not be empty"
        )));
    }
    if name.len() > MAX_NAME {
        return Err(SoakError::Invalid(format!(
            "the {what} name is longer than {MAX_NAME} bytes"
        )));
    }
    if let Some(ch) = name.chars().find(|c| is_hidden(*c)) {
        return Err(SoakError::Invalid(format!(
            "the {what} name must not contain U+{:04X}",
            u32::from(ch)
        )));
    }
    Ok(())
}

fn check_note(note: Option<&str>) -> Result<(), SoakError> {
    match note {
        Some(n) if n.len() > MAX_NOTE => Err(SoakError::Invalid(format!(
            "the note is longer than {MAX_NOTE} bytes"
        ))),
        _ => Ok(()),
    }
}

fn json_err(e: serde_json::Error) -> redb::Error {
    redb::Error::Corrupted(format!("invalid stored soak run: {e}"))
}

/// The newest run in a write transaction, if any.
fn newest(table: &redb::Table<'_, u64, &[u8]>) -> Result<Option<Run>, redb::Error> {
    match table.last()? {
        Some((_, v)) => Ok(Some(serde_json::from_slice(v.value()).map_err(json_err)?)),
        None => Ok(None),
    }
}

fn put(table: &mut redb::Table<'_, u64, &[u8]>, run: &Run) -> Result<(), redb::Error> {
    let json = serde_json::to_vec(run).map_err(json_err)?;
    table.insert(run.id, json.as_slice())?;
    Ok(())
}

/// Applies `change` to the newest run in one durable transaction; a refusal
/// it returns writes nothing.
fn change(
    store: &Store,
    change: impl FnOnce(Option<Run>) -> Result<Run, SoakError>,
    keep: usize,
) -> Result<Run, SoakError> {
    let mut refusal = None;
    let outcome = store.write(|tx| {
        let mut table = tx.open_table(RUNS)?;
        let run = match change(newest(&table)?) {
            Ok(run) => run,
            Err(e) => {
                refusal = Some(e);
                return Ok(None);
            }
        };
        put(&mut table, &run)?;
        let excess = table.len()?.saturating_sub(keep.max(1) as u64);
        for _ in 0..excess {
            if table.pop_first()?.is_none() {
                break;
            }
        }
        Ok(Some(run))
    })?;
    match (outcome, refusal) {
        (Some(run), _) => Ok(run),
        (None, Some(e)) => Err(e),
        (None, None) => Err(SoakError::NoActive),
    }
}

/// Starts run `name` at `at`, with its first phase if `phase` is given (the
/// note goes to that phase, else to the run). Refused while a run is active.
/// Keeps at most `keep` runs.
pub fn start(
    store: &Store,
    name: &str,
    phase: Option<&str>,
    note: Option<&str>,
    at: DateTime<Utc>,
    keep: usize,
) -> Result<Run, SoakError> {
    check_note(note)?;
    change(
        store,
        |newest| {
            if let Some(run) = newest.as_ref().filter(|r| r.is_active()) {
                return Err(SoakError::Active(run.name.clone()));
            }
            let phases = phase
                .map(|p| PhaseMark {
                    name: p.to_string(),
                    started_at: at,
                    ended_at: None,
                    note: note.map(str::to_string),
                })
                .into_iter()
                .collect();
            Ok(Run {
                id: newest.map_or(1, |r| r.id + 1),
                name: name.to_string(),
                started_at: at,
                ended_at: None,
                note: note.filter(|_| phase.is_none()).map(str::to_string),
                phases,
            })
        },
        keep,
    )
}

fn active(newest: Option<Run>, at: DateTime<Utc>) -> Result<Run, SoakError> {
    let run = newest.filter(Run::is_active).ok_or(SoakError::NoActive)?;
    if at < run.last_mark() {
        return Err(SoakError::Invalid(format!(
            "{} is before the last mark of run {:?} ({})",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            run.name,
            run.last_mark()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    Ok(run)
}

/// Ends the active run's current phase at `at` and starts `phase`.
pub fn phase(
    store: &Store,
    phase: &str,
    note: Option<&str>,
    at: DateTime<Utc>,
    keep: usize,
) -> Result<Run, SoakError> {
    check_note(note)?;
    change(
        store,
        |newest| {
            let mut run = active(newest, at)?;
            if let Some(current) = run.phases.last_mut() {
                current.ended_at.get_or_insert(at);
            }
            run.phases.push(PhaseMark {
                name: phase.to_string(),
                started_at: at,
                ended_at: None,
                note: note.map(str::to_string),
            });
            Ok(run)
        },
        keep,
    )
}

/// Ends the active run (and its current phase) at `at`.
pub fn end(store: &Store, at: DateTime<Utc>, keep: usize) -> Result<Run, SoakError> {
    change(
        store,
        |newest| {
            let mut run = active(newest, at)?;
            if let Some(current) = run.phases.last_mut() {
                current.ended_at.get_or_insert(at);
            }
            run.ended_at = Some(at);
            Ok(run)
        },
        keep,
    )
}

/// One change to the runs, as a command or the agent's API asks for it
/// (and as the fleet fan-out sends it, stamped once by the caller).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Mark {
    /// Start a run, with its first phase if given.
    Start {
        /// The run's name.
        name: String,
        /// Its first phase.
        #[serde(default)]
        phase: Option<String>,
        /// A note for the phase (or the run, without a phase).
        #[serde(default)]
        note: Option<String>,
    },
    /// End the current phase and start the next.
    Phase {
        /// The next phase's name.
        phase: String,
        /// A note for it.
        #[serde(default)]
        note: Option<String>,
    },
    /// End the active run.
    End,
}

impl Mark {
    /// Checks the names it carries (`is_hidden`: see [`check_name`]) and
    /// applies it at `at`, keeping at most `keep` runs.
    pub fn apply(
        &self,
        store: &Store,
        at: DateTime<Utc>,
        keep: usize,
        is_hidden: impl Fn(char) -> bool + Copy,
    ) -> Result<Run, SoakError> {
        match self {
            Mark::Start {
                name,
                phase: p,
                note,
            } => {
                check_name("run", name, is_hidden)?;
                if let Some(p) = p {
                    check_name("phase", p, is_hidden)?;
                }
                start(store, name, p.as_deref(), note.as_deref(), at, keep)
            }
            Mark::Phase { phase: p, note } => {
                check_name("phase", p, is_hidden)?;
                phase(store, p, note.as_deref(), at, keep)
            }
            Mark::End => end(store, at, keep),
        }
    }

    /// What it does, for messages: `start run "x"`, `phase "y"`, `end`.
    pub fn describe(&self) -> String {
        match self {
            Mark::Start { name, .. } => format!("start {name:?}"),
            Mark::Phase { phase, .. } => format!("phase {phase:?}"),
            Mark::End => "end".to_string(),
        }
    }
}

/// Every stored run, oldest first. A row that does not decode is skipped
/// (and logged), so one bad value never hides the others.
pub fn runs(store: &Store) -> Result<Vec<Run>, StoreError> {
    store.read(|tx| {
        let Some(table) = read_table(tx, RUNS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            match serde_json::from_slice::<Run>(v.value()) {
                Ok(run) => out.push(run),
                Err(e) => tracing::warn!(id = k.value(), error = %e, "ignoring a stored soak run"),
            }
        }
        Ok(out)
    })
}

/// The newest run, active or not, if any (a row that does not decode
/// counts as none).
pub fn newest_run(store: &Store) -> Result<Option<Run>, StoreError> {
    store.read(|tx| {
        let Some(table) = read_table(tx, RUNS)? else {
            return Ok(None);
        };
        let Some((_, v)) = table.last()? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<Run>(v.value()).ok())
    })
}

/// The active run, if any (the newest run, when it has not ended).
pub fn active_run(store: &Store) -> Result<Option<Run>, StoreError> {
    store.read(|tx| {
        let Some(table) = read_table(tx, RUNS)? else {
            return Ok(None);
        };
        let Some((_, v)) = table.last()? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<Run>(v.value())
            .ok()
            .filter(Run::is_active))
    })
}

/// The rows of the runs table that [`collect`] could read and decode.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    runs: Vec<(u64, Vec<u8>)>,
}

/// Reads the runs table from `source`, keeping the rows that decode.
pub(crate) fn collect(source: &Source<'_>, report: &mut Report) -> Collected {
    let runs = source.rows(RUNS).keep("soak_runs", report, |k, v| {
        serde_json::from_slice::<Run>(v).ok()?;
        Some((<u64 as redb::Value>::from_bytes(k), v.to_vec()))
    });
    Collected { runs }
}

/// Writes what [`collect`] read into `tx`: rows replace the destination's
/// rows of the same id when `newer`, and are otherwise written only where it
/// has none.
pub(crate) fn apply(
    tx: &redb::WriteTransaction,
    c: &Collected,
    newer: bool,
) -> Result<(), redb::Error> {
    let mut t = tx.open_table(RUNS)?;
    for (id, v) in &c.runs {
        if newer || t.get(*id)?.is_none() {
            t.insert(*id, v.as_slice())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_run_goes_through_its_phases_in_order() {
        let store = Store::in_memory().unwrap();
        let t0 = at("2026-12-05T10:00:00Z");
        let run = start(&store, "r1", Some("baseline"), Some("warm"), t0, 20).unwrap();
        assert_eq!(run.id, 1);
        assert_eq!(run.current_phase().unwrap().name, "baseline");
        let t1 = at("2026-12-05T10:30:00Z");
        phase(&store, "plateau", None, t1, 20).unwrap();
        let t2 = at("2026-12-05T11:00:00Z");
        let ended = end(&store, t2, 20).unwrap();
        assert!(!ended.is_active());
        assert_eq!(ended.phases.len(), 2);
        assert_eq!(ended.phases[0].ended_at, Some(t1));
        assert_eq!(ended.phases[0].note.as_deref(), Some("warm"));
        assert_eq!(ended.phases[1].ended_at, Some(t2));
        assert_eq!(
            ended.phase_at(at("2026-12-05T10:45:00Z")).unwrap().name,
            "plateau"
        );
        assert_eq!(runs(&store).unwrap(), vec![ended]);
        assert_eq!(active_run(&store).unwrap(), None);
    }

    #[test]
    fn refusals_change_nothing() {
        let store = Store::in_memory().unwrap();
        let t0 = at("2026-12-05T10:00:00Z");
        assert!(matches!(
            phase(&store, "p", None, t0, 20),
            Err(SoakError::NoActive)
        ));
        assert!(matches!(end(&store, t0, 20), Err(SoakError::NoActive)));
        let run = start(&store, "r1", None, None, t0, 20).unwrap();
        assert!(
            matches!(start(&store, "r2", None, None, t0, 20), Err(SoakError::Active(n)) if n == "r1")
        );
        // A mark before the last one would reorder the phases.
        let early = at("2026-12-05T09:00:00Z");
        assert!(matches!(
            phase(&store, "p", None, early, 20),
            Err(SoakError::Invalid(_))
        ));
        assert_eq!(runs(&store).unwrap(), vec![run]);
    }

    #[test]
    fn only_the_last_keep_runs_are_kept() {
        let store = Store::in_memory().unwrap();
        let mut t = at("2026-12-05T10:00:00Z");
        for k in 0..5 {
            start(&store, &format!("r{k}"), None, None, t, 3).unwrap();
            t += chrono::Duration::minutes(1);
            end(&store, t, 3).unwrap();
        }
        let names: Vec<String> = runs(&store).unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["r2", "r3", "r4"]);
    }

    #[test]
    fn names_are_checked() {
        let hidden = |c: char| c.is_control();
        assert!(check_name("run", "soak-1", hidden).is_ok());
        assert!(check_name("run", " ", hidden).is_err());
        assert!(check_name("run", "a\u{1b}b", hidden).is_err());
        assert!(check_name("run", &"x".repeat(MAX_NAME + 1), hidden).is_err());
    }
}
