//! Tests of the store: opening and the schema version, and the faults the
//! daemon's store repairs (a damaged file, a file that cannot be opened, a
//! full disk).

use super::*;

#[test]
fn creates_the_directory_and_keeps_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = Store::open(&state).unwrap();
    assert_eq!(store.path(), state.join(FILE_NAME));
    drop(store);
    // Reopening an existing file works and keeps the version.
    let store = Store::open(&state).unwrap();
    let v = store
        .read(|tx| {
            Ok(tx
                .open_table(META)?
                .get("schema_version")?
                .map(|v| v.value()))
        })
        .unwrap();
    assert_eq!(v, Some(SCHEMA_VERSION));
}

#[test]
fn another_schema_is_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .write(|tx| {
            tx.open_table(META)?.insert("schema_version", 99)?;
            Ok(())
        })
        .unwrap();
    drop(store);
    let err = Store::open(dir.path()).unwrap_err().to_string();
    let path = dir.path().join(FILE_NAME);
    assert_eq!(
        err,
        format!(
            "the state store {} has schema version 99, this build understands 1",
            path.display()
        )
    );
}

#[test]
fn an_unreadable_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(
        &path,
        b"not a database, just some bytes that are long enough",
    )
    .unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot open the state store {}: ", path.display())),
        "{err}"
    );
}

// -----------------------------------------------------------------------
// Faults: a damaged file, a file that cannot be opened, a full disk.
// -----------------------------------------------------------------------

use crate::detect::{Detector, Incident, SlowdownSettings};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn incident(start: i64) -> Incident {
    serde_json::from_value(serde_json::json!({
        "kind": "slow",
        "started_at": t(start),
        "detected_at": t(start + 30),
        "recovered_at": t(start + 300),
        "closed_at": t(start + 330),
        "peak_latency": {"secs": 2, "nanos": 0},
        "baseline_at_onset": {"secs": 0, "nanos": 100_000_000},
        "worst_phase": "first_byte",
        "slow_count": 10,
        "failed_count": 0
    }))
    .unwrap()
}

/// What a store holds, comparable across files (outbox ids differ).
#[derive(Debug, PartialEq)]
struct Contents {
    outbox: Vec<(String, String, String)>,
    history: Vec<(String, DateTime<Utc>)>,
    detectors: Vec<String>,
}

fn contents(store: &Store) -> Contents {
    let mut outbox: Vec<(String, String, String)> = outbox::all_rows(store)
        .unwrap()
        .into_iter()
        .map(|e| (e.receiver, e.incident_key, e.payload))
        .collect();
    outbox.sort();
    let mut history: Vec<(String, DateTime<Utc>)> =
        incidents::history(store, incidents::MAX_HISTORY as usize)
            .unwrap()
            .into_iter()
            .map(|r| (r.target, r.incident.started_at))
            .collect();
    history.sort();
    let mut detectors: Vec<String> = incidents::load_detectors(store)
        .unwrap()
        .into_keys()
        .collect();
    detectors.sort();
    Contents {
        outbox,
        history,
        detectors,
    }
}

/// A store file with 40 queued notifications of 20 incidents, 150 incident
/// records, two detector states, a silence, receiver state and an open
/// incident: enough rows for every table to span several pages.
fn filled(dir: &Path) -> Contents {
    let store = Store::open(dir).unwrap();
    for i in 0..20 {
        let key = format!("incident-{i:02}");
        let payload = format!("{{\"pad\":\"{}\"}}", "x".repeat(300));
        outbox::enqueue(&store, &["hook"], &key, &payload, t(i)).unwrap();
        outbox::enqueue(&store, &["hook"], &key, &payload, t(i + 1)).unwrap();
    }
    let records: Vec<Incident> = (0..150).map(|i| incident(i * 600)).collect();
    let detector = Detector::new(SlowdownSettings::default());
    for chunk in records.chunks(50) {
        let batch = incidents::Batch {
            detectors: vec![("owa", &detector), ("ews", &detector)],
            incidents: chunk.iter().map(|i| ("owa", i)).collect(),
        };
        incidents::save(&store, &batch).unwrap();
    }
    outbox::put_state(&store, "grafana", "incident-00", b"17").unwrap();
    contents(&store)
}

fn corrupt(file: &Path, page: u64, rng: &mut fastrand::Rng) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start(page * 4096)).unwrap();
    let bytes: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
    f.write_all(&bytes).unwrap();
}

fn subset<T: PartialEq + std::fmt::Debug>(part: &[T], whole: &[T], what: &str) {
    for x in part {
        assert!(whole.contains(x), "{what}: {x:?} was not in the original");
    }
}

/// A panic inside a write transaction: redb then leaves the file needing
/// a repair, as a crash would.
fn leave_unclean(dir: &Path) {
    let db = open_database(&dir.join(FILE_NAME), false).unwrap();
    let _ = unwind::catch(|| {
        let tx = db.begin_write().unwrap();
        tx.open_table(META).unwrap().insert("x", 1).unwrap();
        panic!("crash")
    });
}

#[test]
fn every_corrupted_page_is_caught_and_what_can_be_read_is_kept() {
    let outcomes = corrupted_pages(false);
    // The tables are read independently: damage to one leaves the other whole.
    assert!(outcomes.contains(&(true, false)), "{outcomes:?}");
    assert!(outcomes.contains(&(false, true)), "{outcomes:?}");
}

/// A file left needing a repair (a crash) that is then damaged cannot be
/// read: redb must repair it first, and the damage defeats the repair. It
/// is still caught, moved aside and replaced, without a panic.
#[test]
fn every_corrupted_page_of_a_file_not_closed_cleanly_is_caught() {
    corrupted_pages(true);
}

/// Overwrites every page of a filled store in turn (with two seeds of
/// random bytes, one if `unclean`), opens it as the daemon does, and uses
/// every table. Returns, for the files moved aside, whether the outbox
/// and the history came through whole.
fn corrupted_pages(unclean: bool) -> HashSet<(bool, bool)> {
    let base_dir = tempfile::tempdir().unwrap();
    let original = filled(base_dir.path());
    if unclean {
        leave_unclean(base_dir.path());
        assert!(
            !salvage::tests::opens_read_only(&base_dir.path().join(FILE_NAME)),
            "the file is clean"
        );
    }
    let base = std::fs::read(base_dir.path().join(FILE_NAME)).unwrap();
    let pages = base.len() as u64 / 4096;
    assert!(pages >= 20, "a store of {pages} pages is too small to test");
    // Which tables came through whole when something was moved aside.
    let mut outcomes: HashSet<(bool, bool)> = HashSet::new();
    let mut moved = 0;
    let (mut outbox_whole, mut history_whole) = (0, 0);
    let seeds = if unclean { 1 } else { 2 };
    for seed in 0..seeds {
        for page in 0..pages {
            let mut rng = fastrand::Rng::with_seed(seed * 1000 + page);
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join(FILE_NAME);
            std::fs::write(&file, &base).unwrap();
            corrupt(&file, page, &mut rng);

            let store = Store::open_daemon(dir.path());
            let status = store.status();
            assert!(status.durable, "seed {seed} page {page}: {status:?}");
            // Every table reads and takes writes, on whichever file is in use.
            let now = contents(&store);
            outbox::enqueue(&store, &["hook"], "new", "{}", t(9000)).unwrap();
            let late = incident(999_999);
            let batch = incidents::Batch {
                detectors: Vec::new(),
                incidents: vec![("owa", &late)],
            };
            incidents::save(&store, &batch).unwrap();
            outbox::silences(&store).unwrap();
            outbox::open_records(&store).unwrap();
            assert!(store.status().durable, "seed {seed} page {page}");

            subset(&now.outbox, &original.outbox, "outbox");
            subset(&now.history, &original.history, "history");
            subset(&now.detectors, &original.detectors, "detectors");
            if status.corruptions == 0 {
                assert_eq!(now, original, "seed {seed} page {page}: unnoticed damage");
                assert_ne!(page, 0, "a broken header went unnoticed");
                continue;
            }
            moved += 1;
            assert_eq!(status.corruptions, 1);
            assert_eq!(status.notes.len(), 1);
            let aside: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{FILE_NAME}{DAMAGED_SUFFIX}")))
                .collect();
            assert_eq!(aside.len(), 1, "seed {seed} page {page}");
            assert!(status.notes[0].contains(&aside[0]), "{:?}", status.notes);
            let whole = (
                now.outbox == original.outbox,
                now.history == original.history,
            );
            outbox_whole += usize::from(whole.0);
            history_whole += usize::from(whole.1);
            outcomes.insert(whole);
        }
    }
    eprintln!(
        "{} file of {pages} pages, {seeds} seed(s): {moved} damaged files moved aside; \
         the outbox came through whole in {outbox_whole}, the history in {history_whole}",
        if unclean { "unclean" } else { "clean" },
    );
    // About half the pages of the file are in use by its trees.
    assert!(
        moved * 3 > pages as usize * seeds as usize,
        "only {moved} damaged files found in {pages} pages"
    );
    outcomes
}

#[test]
fn a_file_that_is_not_a_database_is_moved_aside_for_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), b"not redb at all".repeat(400)).unwrap();
    let store = Store::open_daemon(dir.path());
    let status = store.status();
    assert!(status.durable, "{status:?}");
    assert_eq!(status.backing, Backing::File);
    assert_eq!(status.corruptions, 1);
    assert!(
        status.notes[0].contains("Not a redb database") && status.notes[0].contains("kept nothing"),
        "{:?}",
        status.notes
    );
    outbox::enqueue(&store, &["a"], "i", "{}", t(0)).unwrap();
    assert_eq!(outbox::all_rows(&store).unwrap().len(), 1);
}

/// The store file of a state directory made unopenable: moved away, with
/// a directory of its name in its place (no root needed).
struct Blocked {
    file: PathBuf,
    kept: PathBuf,
}

impl Blocked {
    fn new(state: &Path) -> Blocked {
        let file = state.join(FILE_NAME);
        let kept = state.with_extension("kept");
        std::fs::rename(&file, &kept).unwrap();
        std::fs::create_dir(&file).unwrap();
        Blocked { file, kept }
    }

    /// Puts the file back.
    fn unblock(self) {
        std::fs::remove_dir(&self.file).unwrap();
        std::fs::rename(&self.kept, &self.file).unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_file_that_cannot_be_opened_is_replaced_by_memory_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // A previous run queued a message of incident "old".
    {
        let store = Store::open(&state).unwrap();
        outbox::enqueue(&store, &["a"], "old", "old firing", t(0)).unwrap();
    }
    // The store file cannot be opened: a directory stands in its place.
    let blocked = Blocked::new(&state);
    let store = Store::open_daemon(&state);
    let status = store.status();
    assert!(!status.durable);
    assert_eq!(status.backing, Backing::MemoryForFile);
    assert!(
        status
            .problem
            .as_deref()
            .unwrap()
            .starts_with("running on memory ("),
        "{status:?}"
    );
    assert_eq!(status.corruptions, 0, "not damage: nothing is moved aside");
    // Meanwhile memory takes everything.
    outbox::enqueue(&store, &["a"], "new", "new firing", t(10)).unwrap();
    outbox::enqueue(&store, &["a"], "new", "new resolved", t(11)).unwrap();
    let new = incident(10);
    let batch = incidents::Batch {
        detectors: Vec::new(),
        incidents: vec![("owa", &new)],
    };
    incidents::save(&store, &batch).unwrap();
    outbox::put_state(&store, "a", "new", b"7").unwrap();
    // An attempt at the first message starts before the move.
    let in_flight = outbox::all_rows(&store).unwrap()[0].clone();
    assert_eq!(in_flight.payload, "new firing");

    // The file can be opened again: at the next try, memory moves into it.
    blocked.unblock();
    store.maintain();
    assert!(
        !store.status().durable,
        "tried again before REOPEN_INTERVAL"
    );
    tokio::time::advance(REOPEN_INTERVAL).await;
    store.maintain();
    let status = store.status();
    assert!(status.durable, "{status:?}");
    assert_eq!(status.backing, Backing::File);
    assert_eq!(status.generation, 1);
    let payloads = |store: &Store| -> Vec<String> {
        outbox::all_rows(store)
            .unwrap()
            .into_iter()
            .map(|e| e.payload)
            .collect()
    };
    assert_eq!(
        payloads(&store),
        ["new firing", "new resolved", "old firing"]
    );
    // The attempt in flight ends: its entry is found and removed, so it
    // is not sent again from the file.
    assert!(outbox::remove(&store, &in_flight).unwrap());
    // New messages sort after everything carried over.
    outbox::enqueue(&store, &["a"], "new", "new reminder", t(12)).unwrap();
    let mut rows = outbox::all_rows(&store).unwrap();
    rows.sort_by_key(|e| e.id);
    assert_eq!(rows.last().unwrap().payload, "new reminder");
    drop(store);
    // It is all in the file.
    let reopened = Store::open(&state).unwrap();
    assert_eq!(
        payloads(&reopened),
        ["new resolved", "new reminder", "old firing"]
    );
    assert_eq!(incidents::history(&reopened, 10).unwrap().len(), 1);
    assert_eq!(
        outbox::get_state(&reopened, "a", "new").unwrap().unwrap(),
        b"7"
    );
}

#[tokio::test(start_paused = true)]
async fn an_incident_queued_in_both_memory_and_the_file_keeps_its_order() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    {
        let store = Store::open(&state).unwrap();
        outbox::enqueue(&store, &["a"], "inc", "file firing", t(0)).unwrap();
        outbox::enqueue(&store, &["a"], "other", "other firing", t(0)).unwrap();
    }
    let blocked = Blocked::new(&state);
    let store = Store::open_daemon(&state);
    outbox::enqueue(&store, &["a"], "inc", "memory update", t(1)).unwrap();
    outbox::enqueue(&store, &["a"], "inc", "memory resolved", t(2)).unwrap();
    blocked.unblock();
    tokio::time::advance(REOPEN_INTERVAL).await;
    store.maintain();
    assert!(store.status().durable);
    let order: Vec<String> = outbox::all_rows(&store)
        .unwrap()
        .into_iter()
        .filter(|e| e.incident_key == "inc")
        .map(|e| e.payload)
        .collect();
    assert_eq!(order, ["file firing", "memory update", "memory resolved"]);
    let due = outbox::due(&store, t(10), &Default::default()).unwrap();
    let heads: Vec<&str> = due.ready.iter().map(|e| e.payload.as_str()).collect();
    assert!(
        heads.contains(&"file firing") && heads.contains(&"other firing"),
        "{heads:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_write_says_not_durable_until_a_write_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_daemon(dir.path());
    assert!(store.status().durable);
    store.fail_writes(true);
    assert!(outbox::enqueue(&store, &["a"], "i", "{}", t(0)).is_err());
    let status = store.status();
    assert!(!status.durable);
    assert!(status.problem.unwrap().contains("simulated"));
    // The file is reopened, but that alone proves nothing: still not durable.
    tokio::time::advance(REOPEN_INTERVAL).await;
    store.maintain();
    assert!(!store.status().durable);
    assert!(outbox::all_rows(&store).is_ok(), "reads go on");
    assert!(!store.status().durable);
    // Space returns: the next write succeeds and says so.
    store.fail_writes(false);
    outbox::enqueue(&store, &["a"], "i", "{}", t(1)).unwrap();
    assert!(store.status().durable);
}

#[test]
fn a_panic_on_the_contents_is_checked_then_moves_the_file_aside_if_it_recurs() {
    let dir = tempfile::tempdir().unwrap();
    let original = filled(dir.path());
    let store = Store::open_daemon(dir.path());
    let err = store
        .read(|_| -> Result<(), redb::Error> { panic!("invalid page type 9") })
        .unwrap_err();
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("invalid page type 9"), "{err}");
    assert!(!store.status().durable);
    // The next transaction checks the file: it is sound, so it is kept.
    assert_eq!(contents(&store), original);
    let status = store.status();
    assert!(status.durable);
    assert_eq!(status.corruptions, 0);
    // Again: the file is moved aside without asking redb, and all of it kept.
    store
        .write(|_| -> Result<(), redb::Error> { panic!("invalid page type 9") })
        .unwrap_err();
    let now = contents(&store);
    assert_eq!(now, original, "{:?}", store.status());
    let status = store.status();
    assert!(status.durable, "{status:?}");
    assert_eq!(status.corruptions, 1);
    assert!(
        status.notes[0].contains("invalid page type 9"),
        "{:?}",
        status.notes
    );
    assert_eq!(status.generation, 2);
}

#[test]
fn a_command_reports_a_damaged_file_without_moving_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), b"not redb at all".repeat(400)).unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("Not a redb database"), "{err}");
    assert!(dir.path().join(FILE_NAME).exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn the_history_is_selected_by_start_window_target_and_soak_run() {
    use super::incidents::{save, select, Batch, Selection};
    let store = Store::in_memory().unwrap();
    let mut during = incident(100);
    during.run = Some("golive".into());
    let mut other = incident(200);
    other.run = Some("rehearsal".into());
    let before = incident(0);
    let after = incident(300);
    let batch = Batch {
        detectors: Vec::new(),
        incidents: vec![
            ("owa", &before),
            ("owa", &during),
            ("imap", &other),
            ("owa", &after),
        ],
    };
    save(&store, &batch).unwrap();
    let starts = |which: Selection<'_>| -> Vec<(String, i64)> {
        select(&store, &which, 100)
            .unwrap()
            .into_iter()
            .map(|r| (r.target, r.incident.started_at.timestamp() - 1_800_000_000))
            .collect()
    };
    let micros = |s: i64| t(s).timestamp_micros();
    assert_eq!(starts(Selection::default()).len(), 4);
    assert_eq!(
        starts(Selection {
            since_micros: Some(micros(100)),
            until_micros: Some(micros(200)),
            ..Selection::default()
        }),
        [("imap".to_string(), 200), ("owa".to_string(), 100)]
    );
    assert_eq!(
        starts(Selection {
            run: Some("golive"),
            ..Selection::default()
        }),
        [("owa".to_string(), 100)]
    );
    assert!(starts(Selection {
        since_micros: Some(micros(201)),
        until_micros: Some(micros(299)),
        ..Selection::default()
    })
    .is_empty());
}
