//! Giving back memory that start-up and scrapes left resident.
//!
//! Much of a quiet agent's resident memory is not its data. Every code path
//! run once (argument parsing, configuration checks, TLS set-up, the store's
//! first open) stays mapped, each page fault maps its neighbours too (the
//! kernel's fault-around), and the allocator keeps the free holes that
//! start-up and each scrape leave in its arenas. [`trim`] unmaps the
//! read-only, file-backed pages of the executable and its libraries (marking
//! them for random access, and reclaiming the program's own pages, so that
//! what steady running needs comes back a page at a time), then asks glibc
//! to return its free pages. At 50 targets this takes the agent from about
//! 12 to about 9 MiB resident (bench/RESULTS.md).
//!
//! [`limit_allocator_arenas`] keeps glibc to one allocator arena, so those
//! holes do not multiply by thread.
//!
//! This is the crate's only `unsafe` code: `madvise`, `malloc_trim` and
//! `mallopt` calls.

#![allow(unsafe_code)]

use std::fs;
use std::io;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long after start-up the first trim waits: time for the first probe of
/// every target, the first host collection and the first scrapes.
pub const FIRST_TRIM: Duration = Duration::from_secs(30);

/// Trims [`FIRST_TRIM`] after start-up and then every `every`
/// (`agent.memory_trim`), until `token` is cancelled. A failure is logged
/// once and ends the task; the agent runs on untrimmed.
pub async fn run(every: Duration, token: CancellationToken) {
    let mut wait = FIRST_TRIM;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match trim() {
            Ok(t) => tracing::debug!(
                mappings = t.mappings,
                resident_kib = t.resident_before / 1024,
                "returned the resident code pages"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot trim resident code pages; going on without");
                return;
            }
        }
        wait = every;
    }
}

/// What one call of [`trim`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Mappings advised.
    pub mappings: usize,
    /// Resident bytes of those mappings before.
    pub resident_before: u64,
}

/// One mapping of `/proc/self/smaps` that may be trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    start: usize,
    end: usize,
    resident: u64,
}

/// Unmaps the resident pages of the program's and libraries' read-only,
/// file-backed mappings that hold no private (written) page, marks them for
/// random access (no read-ahead on later faults), and returns glibc's free
/// heap pages. Linux only; elsewhere it does nothing.
pub fn trim() -> io::Result<Trimmed> {
    let smaps = fs::read_to_string("/proc/self/smaps")?;
    let exe = fs::read_link("/proc/self/exe")
        .ok()
        .and_then(|p| p.to_str().map(str::to_string));
    let mut done = Trimmed::default();
    for c in candidates(&smaps, exe.as_deref()) {
        advise(&c)?;
        done.mappings += 1;
        done.resident_before += c.resident;
    }
    release_free_heap();
    Ok(done)
}

/// The mappings [`trim`] may advise: not writable, backed by the executable
/// or a shared library, and without anonymous pages. A private mapping's
/// anonymous pages are the ones written since it was mapped (relocations in
/// the RELRO part, for instance); discarding those would lose the writes, so
/// a mapping that has any is left alone entirely. A mapping that is not
/// writable cannot gain one while we look.
fn candidates(smaps: &str, exe: Option<&str>) -> Vec<Candidate> {
    // Every mapping: the candidate, whether its kind qualifies, and whether
    // it has anonymous pages (known only from the lines after its header).
    let mut mappings: Vec<(Candidate, bool, bool)> = Vec::new();
    for line in smaps.lines() {
        if let Some((start, end, perms, path)) = mapping_header(line) {
            let code_file = path.starts_with('/')
                && (Some(path) == exe || path.contains(".so"))
                && !path.ends_with(" (deleted)");
            let eligible = code_file && perms.as_bytes().get(1) == Some(&b'-');
            let c = Candidate {
                start,
                end,
                resident: 0,
            };
            mappings.push((c, eligible, false));
        } else if let Some((c, _, anonymous)) = mappings.last_mut() {
            if let Some(kb) = field_kb(line, "Rss:") {
                c.resident = kb * 1024;
            } else if let Some(kb) = field_kb(line, "Anonymous:") {
                *anonymous |= kb > 0;
            }
        }
    }
    mappings
        .into_iter()
        .filter(|(c, eligible, anonymous)| *eligible && !*anonymous && c.end > c.start)
        .map(|(c, _, _)| c)
        .collect()
}

/// `start-end perms offset dev inode path` -> (start, end, perms, path).
fn mapping_header(line: &str) -> Option<(usize, usize, &str, &str)> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    if perms.len() != 4 {
        return None;
    }
    // offset, device, inode
    for _ in 0..3 {
        fields.next()?;
    }
    let path = fields.next().unwrap_or("").trim_start();
    Some((start, end, perms, path))
}

/// The value of a `Name:   123 kB` line.
fn field_kb(line: &str, name: &str) -> Option<u64> {
    line.strip_prefix(name)?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

#[cfg(target_os = "linux")]
fn advise(c: &Candidate) -> io::Result<()> {
    let addr = c.start as *mut libc::c_void;
    let len = c.end - c.start;
    // SAFETY (all three calls): the range is one whole mapping of this
    // process, read from /proc/self/smaps. It is not writable and has no
    // anonymous page, so every page holds exactly the file's bytes. The
    // advice changes which pages are resident, never what the addresses read:
    // the next access maps the same bytes again from the file. No Rust
    // reference can observe a difference.
    //
    // First, no read-ahead on later faults, so pages come back one at a time.
    let rc = unsafe { libc::madvise(addr, len, libc::MADV_RANDOM) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // Then reclaim the pages only this process maps (the program's own):
    // faults around a later access map only pages in the page cache, so a
    // page that stays cached but unused would come back with its neighbours.
    // Pages other processes map too (the C library's) are skipped by the
    // kernel. Kernels before 5.4 do not know this advice; the next step still
    // unmaps.
    let _ = unsafe { libc::madvise(addr, len, libc::MADV_PAGEOUT) };
    // Finally unmap whatever is still mapped.
    let rc = unsafe { libc::madvise(addr, len, libc::MADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Has glibc serve every thread from one allocator arena. By default each
/// thread that allocates gets an arena of its own (up to eight per core),
/// and each arena keeps its own free holes and high-water mark: the agent's
/// resident memory crept up for a quarter of an hour at 10x probe rate, and
/// with one arena it levelled off about 1 MiB lower within minutes
/// (bench/notes.md). Allocation here is light and mostly served by the
/// per-thread caches in front of the arena, so the shared lock costs little.
/// Call it first thing in `main`, before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_allocator_arenas() {
    // SAFETY: mallopt only changes a tuning parameter of glibc's allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Does nothing where the C library is not glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_allocator_arenas() {}

/// Returns the allocator's free pages to the system, in every arena: start-up
/// and each scrape leave free holes that glibc keeps resident otherwise.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_heap() {
    // SAFETY: glibc's malloc_trim takes the allocator's own locks and only
    // releases pages no allocation uses.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_heap() {}

#[cfg(not(target_os = "linux"))]
fn advise(_: &Candidate) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5653755da000-56537589d000 r--p 00000000 fe:00 5810499                    /usr/bin/mailpulse
Size:               2828 kB
Rss:                1048 kB
Anonymous:             0 kB
56537589d000-565376139000 r-xp 002c2000 fe:00 5810499                    /usr/bin/mailpulse
Size:               8816 kB
Rss:                6492 kB
Anonymous:             0 kB
565376139000-56537619f000 r--p 00b5d000 fe:00 5810499                    /usr/bin/mailpulse
Size:                408 kB
Rss:                 408 kB
Anonymous:           408 kB
56537619f000-5653761a1000 rw-p 00bc2000 fe:00 5810499                    /usr/bin/mailpulse
Rss:                   8 kB
Anonymous:             8 kB
56537aafe000-56537ac54000 rw-p 00000000 00:00 0                          [heap]
Rss:                1308 kB
Anonymous:          1308 kB
7f4a4a400000-7f4a4a428000 r--p 00000000 fe:00 1234                       /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 160 kB
Anonymous:             0 kB
7f4a4a428000-7f4a4a5bd000 r-xp 00028000 fe:00 1234                       /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1100 kB
Anonymous:             0 kB
7f4a4a600000-7f4a4a700000 r--s 00000000 fe:00 99                         /var/lib/mailpulse/data
Rss:                  40 kB
Anonymous:             0 kB
7f4a4a79d000-7f4a4a79f000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   4 kB
Anonymous:             0 kB
";

    #[test]
    fn only_unwritten_read_only_code_mappings_are_candidates() {
        let c = candidates(SMAPS, Some("/usr/bin/mailpulse"));
        let starts: Vec<usize> = c.iter().map(|c| c.start).collect();
        assert_eq!(
            starts,
            vec![0x5653755da000, 0x56537589d000, 0x7f4a4a400000, 0x7f4a4a428000],
            "the relocated RELRO part, writable data, the heap, a data file and the vDSO are left alone"
        );
        assert_eq!(c[1].resident, 6492 * 1024);
    }

    #[test]
    fn a_malformed_table_yields_nothing() {
        assert!(candidates("garbage\nRss: 12 kB\n", None).is_empty());
        assert!(mapping_header("1-2 rw").is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn trimming_this_process_keeps_it_working_and_lowers_its_rss() {
        let resident = || {
            let smaps = fs::read_to_string("/proc/self/smaps").unwrap();
            let exe = fs::read_link("/proc/self/exe").unwrap();
            candidates(&smaps, exe.to_str())
                .iter()
                .map(|c| c.resident)
                .sum::<u64>()
        };
        let before = resident();
        let done = trim().unwrap();
        assert!(done.mappings >= 2, "{done:?}");
        assert!(done.resident_before > 0);
        // Code runs again from the page cache, text and constants intact.
        let text = format!("{:?}", vec![1.5_f64, 2.25]);
        assert_eq!(text, "[1.5, 2.25]");
        let after = resident();
        assert!(
            after < before,
            "resident code pages: {before} bytes before, {after} after"
        );
    }
}
