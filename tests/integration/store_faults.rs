//! The state store failing under a running agent: a store file that is not a
//! redb database, a store with a corrupted page, a state directory on a small
//! filesystem that fills up, and one that is read-only at start and writable
//! later. The agent keeps probing, exporting and alerting, says so in its log,
//! metrics (`mailpulse_state_store_errors_total`, `mailpulse_state_store_durable`,
//! `mailpulse_alerts_pending_in_memory`, `mailpulse_state_store_corruptions_total`)
//! and `/healthz`, and loses no page: what the store cannot take waits in
//! memory and is stored and delivered once it can.
//!
//! The filesystem faults need root (a tmpfs, a read-only bind mount); without
//! it those tests print why and pass without running.

use crate::support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{incidents, metric, wait_until_or, write_file, Agent, HttpServer, Reply};

fn config(port: u16, state: &Path, url: &str) -> String {
    format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
         [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
         [[target]]\nname = \"owa\"\nkind = \"http\"\nurl = \"{url}\"\ninterval = \"100ms\"\ntimeout = \"90ms\"\n",
        state.display()
    )
}

async fn probes(agent: &Agent) -> f64 {
    agent
        .metric(
            "mailpulse_probe_duration_seconds_count",
            &[("target", "owa")],
        )
        .await
        .unwrap_or(0.0)
}

/// Waits until the target has been probed `n` more times (it keeps its schedule).
async fn keeps_probing(agent: &Agent, n: f64) {
    let before = probes(agent).await;
    agent
        .wait_until(
            || async { probes(agent).await >= before + n },
            "probes to go on",
        )
        .await;
}

/// A store file that is not a redb database at all (a garbage header) is a
/// damaged store: moved aside, replaced by a fresh file, reported. (Before
/// issue 21 the agent ran on memory instead, never storing again until
/// restarted.) A file that cannot be opened at all is the read-only test below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_file_that_is_not_a_database_is_moved_aside_and_the_agent_goes_on_with_a_fresh_one()
{
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let garbage = b"\x00garbage, not redb\xff".repeat(200);
    std::fs::write(state.join("mailpulse.redb"), &garbage).unwrap();
    let port = support::free_port();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &config(port, &state, &server.url("/owa")),
    );
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;

    keeps_probing(&agent, 5.0).await;
    let scrape = agent.scrape().await;
    assert_eq!(
        metric(&scrape, "mailpulse_state_store_durable", &[]),
        Some(1.0)
    );
    assert!(metric(&scrape, "mailpulse_state_store_errors_total", &[]).unwrap() >= 1.0);
    assert_eq!(
        metric(&scrape, "mailpulse_state_store_corruptions_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric(&scrape, "mailpulse_probe_success", &[("target", "owa")]),
        Some(1.0)
    );
    let log = agent.log_text();
    assert!(log.contains("cannot open the state store"), "{log}");
    // Moved aside as it was, named in the log and /healthz (which says ok).
    let aside = moved_aside(&state);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(state.join(&aside[0])).unwrap(), garbage);
    assert!(log.contains(&aside[0]), "{log}");
    let (status, body) = support::get(agent.addr, "/healthz").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ok\nnote: state store: "), "{body}");
    assert!(
        body.contains(&aside[0]) && body.contains("kept nothing"),
        "{body}"
    );
}

/// A tmpfs of `size` mounted on `dir`, unmounted on drop. `None` when this
/// process may not mount (not root, or no tmpfs in a container).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the filesystem holding `dir` with one file, leaving nothing free.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0xa5u8; 4096];
    while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_filesystem_is_reported_and_storing_resumes_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let Some(_fs) = Tmpfs::mount(&state, "2m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let server = HttpServer::start().await;
    server.route("/owa", Reply::ok("ok"));
    let port = support::free_port();
    let cfg = write_file(
        dir.path(),
        "c.toml",
        &config(port, &state, &server.url("/owa")),
    );
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
    assert_eq!(
        agent.metric("mailpulse_state_store_durable", &[]).await,
        Some(1.0)
    );
    agent.wait_baseline("owa").await;

    // Disk full, then a slowdown: the incident cannot be stored.
    let filler = fill(&state);
    let errors_before = agent
        .metric("mailpulse_state_store_errors_total", &[])
        .await
        .unwrap();
    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(60)));
    agent
        .wait_metric(
            "mailpulse_state_store_errors_total",
            &[],
            |v| v.unwrap() > errors_before,
            "store errors to be counted",
        )
        .await;
    agent
        .wait_metric(
            "mailpulse_state_store_durable",
            &[],
            |v| v == Some(0.0),
            "the store to be reported as not durable",
        )
        .await;
    // Still probing, still exporting, still detecting.
    keeps_probing(&agent, 5.0).await;
    agent
        .wait_degraded("owa", true, "the slowdown to be detected in memory")
        .await;
    assert!(
        agent.log_text().contains("cannot save"),
        "{}",
        agent.log_text()
    );

    // Space returns; the next writes reopen the file and succeed.
    std::fs::remove_file(&filler).unwrap();
    server.route("/owa", Reply::ok("ok"));
    agent
        .wait_degraded("owa", false, "the incident to close")
        .await;
    agent
        .wait_metric(
            "mailpulse_state_store_durable",
            &[],
            |v| v == Some(1.0),
            "the store to be durable again",
        )
        .await;
    let errors_after_recovery = agent
        .metric("mailpulse_state_store_errors_total", &[])
        .await
        .unwrap();

    // A second slowdown after recovery is stored like any other.
    server.route("/owa", Reply::ok("ok").delayed(Duration::from_millis(60)));
    agent.wait_degraded("owa", true, "a second incident").await;
    agent
        .wait_until(
            || async { incidents(&cfg).iter().any(|i| i["recovered_at"].is_null()) },
            "the second incident in the store",
        )
        .await;
    assert_eq!(
        agent
            .metric("mailpulse_state_store_errors_total", &[])
            .await,
        Some(errors_after_recovery),
        "no store errors after space returned"
    );
    assert!(
        agent.log_text().contains("state store reopened"),
        "{}",
        agent.log_text()
    );
}

// ---------------------------------------------------------------------------
// Pages through store faults: a full disk, a corrupted page, a read-only
// state directory. A webhook receiver captures every page the agent sends.
// ---------------------------------------------------------------------------

/// Targets of the paging tests, each probed at `/NAME` every 100 ms.
const TARGETS: &[&str] = &["owa", "ews"];

/// How long the paging tests wait for an agent to deliver everything.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);

/// A configuration with the `targets` on `server` and the webhook receiver `hook`.
fn paging_config(
    port: u16,
    state: &Path,
    server: &HttpServer,
    targets: &[&str],
    hook: &str,
) -> String {
    let mut out = format!(
        "[agent]\nlisten = \"127.0.0.1:{port}\"\ninstance = \"cas01\"\nstate_dir = \"{}\"\n[host]\nenabled = false\n\
         [slowdown]\nfactor = 3.0\nmin_delta = \"50ms\"\nfor = \"500ms\"\nrecover_for = \"1s\"\n\
         [alerting]\nmax_backoff = \"1s\"\n\
         [[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{hook}\"\n",
        state.display()
    );
    for t in targets {
        out.push_str(&support::http_target(
            t,
            &server.url(&format!("/{t}")),
            "100ms",
            "90ms",
        ));
    }
    out
}

/// Starts a webhook receiver (answering `reply`, else 200), a server whose
/// `targets` are fast, and an agent probing them with its state in `state`;
/// the configuration is written in `dir`.
async fn start_paging(
    dir: &Path,
    state: &Path,
    targets: &[&str],
    reply: Option<Reply>,
) -> (HttpServer, HttpServer, PathBuf, Agent) {
    let hook = HttpServer::receiver().await;
    if let Some(r) = reply {
        hook.default_reply(r);
    }
    let server = HttpServer::start().await;
    set_slow(&server, targets, false);
    let port = support::free_port();
    let cfg = write_file(
        dir,
        "c.toml",
        &paging_config(port, state, &server, targets, &hook.url("/hook")),
    );
    let agent = Agent::start(&cfg, ([127, 0, 0, 1], port).into(), &[]).await;
    (hook, server, cfg, agent)
}

/// Sets every target of `targets` slow (60 ms more than their ~1 ms baseline) or fast.
fn set_slow(server: &HttpServer, targets: &[&str], slow: bool) {
    for t in targets {
        let route = Reply::ok("ok");
        server.route(
            &format!("/{t}"),
            if slow {
                route.delayed(Duration::from_millis(60))
            } else {
                route
            },
        );
    }
}

/// Waits until every target has a learned baseline.
async fn warm(agent: &Agent, targets: &[&str]) {
    for t in targets {
        agent.wait_baseline(t).await;
    }
}

/// Waits until every target of `targets` is degraded (`true`) or not, and
/// returns every `mailpulse_state_store_durable` value scraped meanwhile.
async fn wait_degraded(agent: &Agent, targets: &[&str], degraded: bool) -> Vec<f64> {
    let want = if degraded { 1.0 } else { 0.0 };
    let durable = RefCell::new(Vec::new());
    agent
        .wait_until(
            || async {
                let scrape = agent.scrape().await;
                durable
                    .borrow_mut()
                    .extend(metric(&scrape, "mailpulse_state_store_durable", &[]));
                targets.iter().all(|t| {
                    metric(&scrape, "mailpulse_target_degraded", &[("target", t)]) == Some(want)
                })
            },
            &format!("every target degraded={degraded}"),
        )
        .await;
    durable.into_inner()
}

/// The pages the hook accepted, per incident (target and start), in the order accepted.
fn pages(hook: &HttpServer) -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in hook.accepted() {
        for a in r.json()["alerts"].as_array().unwrap() {
            let key = (
                a["labels"]["target"].as_str().unwrap().to_string(),
                a["startsAt"].as_str().unwrap().to_string(),
            );
            out.entry(key)
                .or_default()
                .push(a["status"].as_str().unwrap().to_string());
        }
    }
    out
}

/// Waits until the hook accepted `n` pages; fails with what it got.
async fn wait_pages(agent: &Agent, hook: &HttpServer, n: usize, what: &str) {
    wait_until_or(
        &format!("{n} pages ({what})"),
        DELIVERY_LIMIT,
        || format!("got {:?}\nagent log:\n{}", pages(hook), agent.log_text()),
        || async { pages(hook).values().map(Vec::len).sum::<usize>() >= n },
    )
    .await;
}

/// Every incident in the history was paged exactly once firing, then once
/// resolved; returns the history.
fn every_incident_paged_once_in_order(
    cfg: &Path,
    hook: &HttpServer,
    targets: &[&str],
) -> Vec<Value> {
    let history: Vec<Value> = incidents(cfg)
        .into_iter()
        .filter(|i| targets.contains(&i["target"].as_str().unwrap()))
        .collect();
    let got = pages(hook);
    let mut bad = Vec::new();
    for i in &history {
        let start: chrono::DateTime<chrono::Utc> =
            i["started_at"].as_str().unwrap().parse().unwrap();
        let key = (
            i["target"].as_str().unwrap().to_string(),
            start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
        let paged = got
            .iter()
            .find(|((t, s), _)| {
                t == &key.0 && s.parse::<chrono::DateTime<chrono::Utc>>().ok() == Some(start)
            })
            .map(|(_, p)| p.clone());
        if paged.as_deref() != Some(&["firing".to_string(), "resolved".to_string()][..]) {
            bad.push(format!("{key:?}: {paged:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "incidents not paged exactly firing then resolved:\n{}\nall pages: {got:?}",
        bad.join("\n")
    );
    history
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_every_page_in_memory_and_delivers_it_once_space_returns() {
    // Incidents open and close while the state directory is full (2 rounds of
    // both targets: 4 incidents, 8 pages).
    const ROUNDS: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let Some(_fs) = Tmpfs::mount(&state, "2m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let (hook, server, cfg, agent) = start_paging(dir.path(), &state, TARGETS, None).await;
    warm(&agent, TARGETS).await;
    assert_eq!(
        agent.metric("mailpulse_state_store_durable", &[]).await,
        Some(1.0)
    );

    // The disk fills; the first incidents cannot be written.
    let filler = fill(&state);
    set_slow(&server, TARGETS, true);
    wait_degraded(&agent, TARGETS, true).await;
    agent
        .wait_metric(
            "mailpulse_state_store_durable",
            &[],
            |v| v == Some(0.0),
            "the store to say it is not durable",
        )
        .await;
    // From here until space returns, every scrape says not durable.
    let mut durable = Vec::new();
    set_slow(&server, TARGETS, false);
    durable.extend(wait_degraded(&agent, TARGETS, false).await);
    for _ in 1..ROUNDS {
        set_slow(&server, TARGETS, true);
        durable.extend(wait_degraded(&agent, TARGETS, true).await);
        set_slow(&server, TARGETS, false);
        durable.extend(wait_degraded(&agent, TARGETS, false).await);
    }
    let scrape = agent.scrape().await;
    durable.extend(metric(&scrape, "mailpulse_state_store_durable", &[]));
    assert!(
        durable.iter().all(|d| *d == 0.0),
        "mailpulse_state_store_durable said 1 while the disk was full: {durable:?}"
    );
    let waiting = metric(&scrape, "mailpulse_alerts_pending_in_memory", &[]);
    assert!(
        waiting.is_some_and(|n| n >= 1.0),
        "alerts waiting in memory: {waiting:?}\n{scrape}"
    );
    let (status, body) = support::get(agent.addr, "/healthz").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("state store") && body.contains("waiting in memory"),
        "{body}"
    );

    // Space returns: every page is written to the outbox and delivered.
    let held = waiting.unwrap_or_default();
    std::fs::remove_file(&filler).unwrap();
    let freed = tokio::time::Instant::now();
    wait_pages(
        &agent,
        &hook,
        2 * ROUNDS * TARGETS.len(),
        "every page of the outage",
    )
    .await;
    agent
        .wait_until(
            || async {
                let s = agent.scrape().await;
                metric(&s, "mailpulse_state_store_durable", &[]) == Some(1.0)
                    && metric(&s, "mailpulse_alerts_pending_in_memory", &[]) == Some(0.0)
                    && metric(&s, "mailpulse_outbox_pending", &[]) == Some(0.0)
            },
            "the store to be durable with nothing waiting",
        )
        .await;
    eprintln!(
        "full disk: {} scrapes said durable 0, {held} alerts waited in memory, \
         all {} pages delivered {:.1} s after space returned",
        durable.len(),
        2 * ROUNDS * TARGETS.len(),
        freed.elapsed().as_secs_f64()
    );
    let history = every_incident_paged_once_in_order(&cfg, &hook, TARGETS);
    assert_eq!(
        history.len(),
        ROUNDS * TARGETS.len(),
        "incidents of the outage kept in the history: {history:?}"
    );
    assert!(history.iter().all(|i| i["recovered_at"].is_string()));
    assert_eq!(
        agent
            .metric(
                "mailpulse_alerts_dropped_total",
                &[("reason", "memory_full")]
            )
            .await,
        Some(0.0)
    );
    // /healthz follows within a second (the pipeline reports every second).
    agent
        .wait_until(
            || async {
                support::get(agent.addr, "/healthz").await == Some((200, "ok\n".to_string()))
            },
            "/healthz to say ok",
        )
        .await;
}

/// An alert as a previous run queued it, for target `target` starting `secs`
/// after a fixed time.
fn old_alert(target: &str, secs: i64, resolved: bool) -> mailpulse::alert::AlertEvent {
    let start = chrono::DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap();
    let mut e: mailpulse::alert::AlertEvent = serde_json::from_value(serde_json::json!({
        "incident_key": mailpulse::alert::incident_key("cas01", target, "http", start),
        "status": "firing",
        "instance": "cas01",
        "target": target,
        "probe_kind": "http",
        "incident_kind": "slow",
        "severity": "critical",
        "started_at": start,
        "detected_at": start + chrono::Duration::seconds(30),
        "recovered_at": null,
        "peak_latency_seconds": 2.5,
        "baseline_latency_seconds": 0.1,
        "current_latency_seconds": 2.0,
        "worst_phase": "first_byte",
        "slow_count": 10,
        "failed_count": 0,
        "last_error": null,
        "host": null
    }))
    .unwrap();
    if resolved {
        e.status = mailpulse::alert::AlertStatus::Resolved;
        e.recovered_at = Some(start + chrono::Duration::seconds(300));
    }
    e
}

/// Writes a store as a previous run of the agent could have left it: the
/// pages of `queued` incidents of target `old` waiting in the outbox for the
/// receiver `hook` (firing and resolved each), and `history` closed incidents
/// of that target. The same arguments give the same layout of pages.
fn previous_run_store(state: &Path, queued: usize, history: usize) {
    use mailpulse::store::{outbox, Store};
    let store = Store::open(state).unwrap();
    // Queued ten minutes ago, well within max_age; whole seconds, so every
    // run writes values of the same size and the file has the same layout.
    let at = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() - 600, 0).unwrap();
    for i in 0..queued {
        for resolved in [false, true] {
            let e = old_alert("old", i as i64 * 600, resolved);
            let payload = serde_json::to_string(&e).unwrap();
            outbox::enqueue(&store, &["hook"], &e.incident_key, &payload, at).unwrap();
        }
    }
    support::save_closed_incidents(&store, "old", history, 50);
}

/// Overwrites 4 KiB page `page` of `file` with bytes from `rng`.
fn corrupt_page(file: &Path, page: u64, rng: &mut fastrand::Rng) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.seek(SeekFrom::Start(page * 4096)).unwrap();
    let bytes: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
    f.write_all(&bytes).unwrap();
    f.sync_all().unwrap();
}

/// Files moved aside as damaged in `state`.
fn moved_aside(state: &Path) -> Vec<String> {
    std::fs::read_dir(state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mailpulse.redb.corrupt-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_a_corrupted_page_never_panics_and_keeps_alerting() {
    // Fixed seeds, so a failure names a reproducible page; page 0 (the
    // header) is always among them.
    const SEEDS: &[u64] = &[0, 1, 2, 3, 4, 5];
    let base_dir = tempfile::tempdir().unwrap();
    previous_run_store(base_dir.path(), 20, 200);
    let base = std::fs::read(base_dir.path().join("mailpulse.redb")).unwrap();
    let page_count = base.len() as u64 / 4096;
    let mut moved = 0;
    for &seed in SEEDS {
        let mut rng = fastrand::Rng::with_seed(seed);
        let page = if seed == 0 { 0 } else { rng.u64(1..page_count) };
        eprintln!("seed {seed}: page {page} of {page_count}");
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let file = state.join("mailpulse.redb");
        std::fs::write(&file, &base).unwrap();
        corrupt_page(&file, page, &mut rng);

        let (hook, server, _cfg, agent) = start_paging(dir.path(), &state, &["owa"], None).await;

        // It keeps probing and alerting: a new incident is paged and resolved.
        warm(&agent, &["owa"]).await;
        set_slow(&server, &["owa"], true);
        wait_degraded(&agent, &["owa"], true).await;
        set_slow(&server, &["owa"], false);
        wait_degraded(&agent, &["owa"], false).await;
        wait_until_or(
            &format!("seed {seed} page {page}: the new incident to be paged"),
            DELIVERY_LIMIT,
            || format!("got {:?}\n{}", pages(&hook), agent.log_text()),
            || async {
                pages(&hook)
                    .iter()
                    .any(|((t, _), p)| t == "owa" && p == &["firing", "resolved"])
            },
        )
        .await;
        let scrape = agent.scrape().await;
        assert_eq!(
            metric(&scrape, "mailpulse_state_store_durable", &[]),
            Some(1.0),
            "seed {seed} page {page}: {}",
            agent.log_text()
        );

        // A damaged store was reported and moved aside; an undamaged one (the
        // page was free) was used as it is. Either way, no panic escaped.
        let log = agent.log_text();
        assert!(
            !log.contains("panicked at"),
            "seed {seed} page {page}: a panic reached the log:\n{log}"
        );
        let aside = moved_aside(&state);
        let corruptions = metric(&scrape, "mailpulse_state_store_corruptions_total", &[]);
        if aside.is_empty() {
            assert_eq!(corruptions, Some(0.0), "seed {seed} page {page}");
            assert_ne!(page, 0, "a broken header went unnoticed");
        } else {
            moved += 1;
            assert_eq!(aside.len(), 1, "{aside:?}");
            assert_eq!(corruptions, Some(1.0), "seed {seed} page {page}");
            assert!(
                log.contains("damaged") && log.contains(&aside[0]),
                "seed {seed} page {page}: the log does not name {aside:?}:\n{log}"
            );
            let (_, body) = support::get(agent.addr, "/healthz").await.unwrap();
            assert!(body.contains(&aside[0]), "seed {seed}: /healthz: {body}");
        }
        // What could be read was kept: old pages arrive in order (firing
        // before resolved), and all of them when the outbox was not hit.
        agent
            .wait_metric(
                "mailpulse_outbox_pending",
                &[],
                |v| v == Some(0.0),
                "the outbox to drain",
            )
            .await;
        let old: Vec<Vec<String>> = pages(&hook)
            .into_iter()
            .filter(|((t, _), _)| t == "old")
            .map(|(_, p)| p)
            .collect();
        for p in &old {
            assert!(
                p == &["firing", "resolved"] || p == &["firing"] || p == &["resolved"],
                "seed {seed} page {page}: {p:?}"
            );
        }
        if aside.is_empty() {
            wait_pages(&agent, &hook, 2 + 2 * 20, "every old page").await;
        }
        eprintln!(
            "seed {seed} page {page}: moved aside {aside:?}, {} old incidents paged",
            old.len()
        );
        agent.signal("TERM");
    }
    assert!(moved >= 1, "no seed hit a page in use");
}

/// `dir` bind-mounted on itself read-only; made writable with
/// [`ReadOnly::make_writable`]; unmounted on drop. `None` when this process
/// may not mount (not root).
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(dir: &Path) -> Option<ReadOnly> {
        let run = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !run(&["--bind"]) {
            return None;
        }
        let guard = ReadOnly(dir.to_path_buf());
        let ro = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ro.then_some(guard)
    }

    fn make_writable(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,bind,rw"])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot remount {} writable", self.0.display());
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_state_directory_is_used_once_writable_with_what_memory_queued() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // A previous run left one incident's two pages waiting in the file.
    previous_run_store(&state, 1, 0);
    let Some(ro) = ReadOnly::mount(&state) else {
        eprintln!("skipped: cannot bind-mount read-only here (needs root)");
        return;
    };
    assert!(
        std::fs::write(state.join("probe"), b"x").is_err(),
        "the bind mount is not read-only"
    );
    // The receiver refuses while the directory is read-only, so what is
    // queued stays queued (in memory).
    let (hook, server, cfg, agent) =
        start_paging(dir.path(), &state, &["owa"], Some(Reply::status(503))).await;
    assert_eq!(
        agent.metric("mailpulse_state_store_durable", &[]).await,
        Some(0.0)
    );
    assert!(
        agent.log_text().contains("cannot open the state store"),
        "{}",
        agent.log_text()
    );
    warm(&agent, &["owa"]).await;
    set_slow(&server, &["owa"], true);
    wait_degraded(&agent, &["owa"], true).await;
    set_slow(&server, &["owa"], false);
    wait_degraded(&agent, &["owa"], false).await;
    agent
        .wait_metric(
            "mailpulse_outbox_pending",
            &[],
            |v| v.is_some_and(|n| n >= 1.0),
            "the new pages queued in memory",
        )
        .await;
    let (status, body) = support::get(agent.addr, "/healthz").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("state store"), "{body}");

    // The directory becomes writable: the agent moves to the file, carrying
    // over what memory queued, and delivers the file's pages and its own.
    ro.make_writable();
    let writable = tokio::time::Instant::now();
    hook.default_reply(Reply::json("{}"));
    agent
        .wait_metric(
            "mailpulse_state_store_durable",
            &[],
            |v| v == Some(1.0),
            "the agent to move to the file",
        )
        .await;
    let moved = writable.elapsed();
    wait_pages(&agent, &hook, 4, "the file's two pages and memory's two").await;
    eprintln!(
        "read-only: on the file {:.1} s after it became writable, 4 pages delivered after {:.1} s",
        moved.as_secs_f64(),
        writable.elapsed().as_secs_f64()
    );
    agent
        .wait_metric(
            "mailpulse_outbox_pending",
            &[],
            |v| v == Some(0.0),
            "the outbox to drain",
        )
        .await;
    let got = pages(&hook);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.values().all(|p| p == &["firing", "resolved"]),
        "{got:?}"
    );
    // The incident of the read-only time is in the file.
    let history = every_incident_paged_once_in_order(&cfg, &hook, &["owa"]);
    assert_eq!(history.len(), 1, "{history:?}");
    // /healthz follows within a second (the pipeline reports every second).
    agent
        .wait_until(
            || async {
                support::get(agent.addr, "/healthz").await == Some((200, "ok\n".to_string()))
            },
            "/healthz to say ok",
        )
        .await;
    drop(agent);
}
