//! When the store cannot write (disk full, read-only filesystem, I/O errors), pages can
//! no longer go through the outbox — it lives in the store. This module decides when a
//! run of failed commits becomes the critical local condition "the store cannot write"
//! and when it is over ([`OutageWatch`], pure: time is an argument), and keeps that
//! condition where `cryowatch status` can read it while the store itself cannot take it
//! ([`ConditionFile`]).
//!
//! The store writer records when its current run of failures began
//! ([`crate::pipeline::commit::WriterStats::failing_since`]); the dispatcher watches it, pages the
//! people a critical alarm reaches first straight from memory once the failures have
//! lasted [`RAISE_AFTER`], says so once more when commits succeed again, and records both
//! in the outbox and the audit trail as soon as the store takes writes.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::TimestampMs;

/// How long commits must keep failing before the condition is raised and paged: long
/// enough to ride out a momentary lock or I/O hiccup, short against a warming dewar.
pub const RAISE_AFTER: Duration = Duration::from_secs(10);

/// What the watcher decided on one look at the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Commits have failed since `since` for at least [`RAISE_AFTER`]: raise the
    /// condition and page.
    Raise { since: TimestampMs },
    /// A raised outage is over: commits succeed again.
    Recovered { since: TimestampMs, until: TimestampMs },
}

/// The outage state machine: at most one [`Decision::Raise`] per outage, and one
/// [`Decision::Recovered`] after it.
#[derive(Debug, Clone, Default)]
pub struct OutageWatch {
    /// Start of the outage that was raised, while it lasts.
    raised: Option<TimestampMs>,
    after_ms: i64,
}

impl OutageWatch {
    pub fn new(after: Duration) -> OutageWatch {
        OutageWatch {
            raised: None,
            after_ms: crate::model::millis(after),
        }
    }

    /// Whether an outage is raised now.
    pub fn raised(&self) -> Option<TimestampMs> {
        self.raised
    }

    /// Looks at the writer at `now`: `failing_since` is when its current run of failed
    /// commits began, `None` while it commits. A store that recovers for a moment and
    /// fails again while an outage is raised continues that outage (no second page).
    pub fn observe(&mut self, now: TimestampMs, failing_since: Option<TimestampMs>) -> Option<Decision> {
        match (self.raised, failing_since) {
            (None, Some(since)) if now - since >= self.after_ms => {
                self.raised = Some(since);
                Some(Decision::Raise { since })
            }
            (Some(since), None) => {
                self.raised = None;
                Some(Decision::Recovered { since, until: now })
            }
            _ => None,
        }
    }
}

/// Size of the condition file: allocated once, then always overwritten in place, so a
/// full filesystem can still take the text.
const CONDITION_SIZE: usize = 4096;

/// `<store>.condition`: the daemon's pid and its current store condition (empty when
/// none), written in place into blocks allocated at start.
#[derive(Debug)]
pub struct ConditionFile {
    file: File,
}

/// The condition file next to the store at `store`.
pub fn condition_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_os_string();
    name.push(".condition");
    PathBuf::from(name)
}

impl ConditionFile {
    /// Creates (or takes over) the file next to the store and clears it.
    pub fn open(store: &Path) -> std::io::Result<ConditionFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(condition_path(store))?;
        let file = ConditionFile { file };
        file.set("")?;
        file.file.sync_all()?;
        Ok(file)
    }

    /// Replaces the condition text (one line; cut to fit).
    pub fn set(&self, text: &str) -> std::io::Result<()> {
        let mut line = format!("{}\t{}", std::process::id(), text.replace('\n', " "));
        while line.len() > CONDITION_SIZE - 1 {
            line.pop();
        }
        let mut buf = line.into_bytes();
        buf.resize(CONDITION_SIZE - 1, b' ');
        buf.push(b'\n');
        self.file.write_all_at(&buf, 0)
    }
}

/// The condition a running daemon wrote next to the store at `store`, if any: nothing
/// when the file is missing, empty, or left by a daemon that is no longer running.
pub fn read_condition(store: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(condition_path(store))
        .and_then(|mut f| f.read_to_string(&mut text))
        .ok()?;
    let (pid, condition) = text.split_once('\t')?;
    let condition = condition.trim();
    let pid: u32 = pid.trim().parse().ok()?;
    let alive = Path::new(&format!("/proc/{pid}")).exists();
    (alive && !condition.is_empty()).then(|| condition.to_string())
}

/// A page sent from memory while the store refused writes, recorded once it takes them.
pub struct MemoryPageRecord<'a> {
    /// The page as an outbox row (`kind = "store_failure"`).
    pub page: crate::store::outbox::NewNotification,
    pub created: TimestampMs,
    /// Every attempt: channel, result, detail, time.
    pub attempts: &'a [(String, &'static str, String, TimestampMs)],
    /// The delivery: channel, detail, time.
    pub delivered: Option<&'a (String, String, TimestampMs)>,
}

impl crate::store::Store {
    /// Records an ended outage in one transaction: each page sent from memory as an
    /// outbox row with its attempts, `recovered` (the "store takes writes again" message)
    /// queued for each of their recipients, and `detail` in the audit trail.
    pub fn record_outage(
        &mut self,
        pages: Vec<MemoryPageRecord<'_>>,
        recovered: impl Fn(crate::store::outbox::NewNotification) -> crate::store::outbox::NewNotification,
        store_name: &str,
        detail: &serde_json::Value,
        now: TimestampMs,
    ) -> Result<(), crate::store::StoreError> {
        use crate::store::outbox::{enqueue, finish, record_attempt};
        self.transaction(|c| {
            for p in pages {
                let Some(id) = enqueue(c, &p.page, p.created)? else {
                    continue;
                };
                for (ch, label, detail, t) in p.attempts {
                    record_attempt(c, id, ch, label, detail, *t)?;
                }
                match p.delivered {
                    Some((via, detail, t)) => finish(c, id, "sent", Some(via), detail, *t)?,
                    None => finish(
                        c,
                        id,
                        "failed",
                        None,
                        "not delivered while the store refused writes",
                        now,
                    )?,
                }
                enqueue(c, &recovered(p.page), now)?;
            }
            crate::store::audit::append(c, now, "store.write_failed", "daemon", store_name, detail)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000;

    #[test]
    fn failures_shorter_than_the_limit_are_not_raised() {
        let mut w = OutageWatch::new(Duration::from_secs(10));
        assert_eq!(w.observe(0, None), None);
        assert_eq!(w.observe(5 * S, Some(S)), None);
        assert_eq!(w.observe(10 * S, Some(S)), None, "9 s of failures");
        assert_eq!(
            w.observe(12 * S, None),
            None,
            "recovered before the limit: nothing to say"
        );
        assert_eq!(w.raised(), None);
    }

    #[test]
    fn an_outage_is_raised_once_and_its_end_said_once() {
        let mut w = OutageWatch::new(Duration::from_secs(10));
        assert_eq!(w.observe(11 * S, Some(S)), Some(Decision::Raise { since: S }));
        for t in 12..100 {
            assert_eq!(w.observe(t * S, Some(S)), None, "raised once per outage");
        }
        assert_eq!(w.raised(), Some(S));
        assert_eq!(
            w.observe(100 * S, None),
            Some(Decision::Recovered {
                since: S,
                until: 100 * S
            })
        );
        assert_eq!(w.observe(101 * S, None), None);
    }

    #[test]
    fn a_brief_recovery_inside_a_raised_outage_is_the_same_outage() {
        let mut w = OutageWatch::new(Duration::from_secs(10));
        assert!(w.observe(20 * S, Some(0)).is_some());
        // Between two looks the store took one commit and failed again.
        assert_eq!(w.observe(21 * S, Some(20 * S + 500)), None);
        assert_eq!(w.raised(), Some(0));
    }

    #[test]
    fn a_new_outage_after_recovery_is_raised_again_after_the_limit() {
        let mut w = OutageWatch::new(Duration::from_secs(10));
        assert!(matches!(w.observe(10 * S, Some(0)), Some(Decision::Raise { .. })));
        assert!(matches!(w.observe(11 * S, None), Some(Decision::Recovered { .. })));
        assert_eq!(w.observe(15 * S, Some(12 * S)), None);
        assert_eq!(w.observe(22 * S, Some(12 * S)), Some(Decision::Raise { since: 12 * S }));
    }

    #[test]
    fn a_clock_stepping_back_does_not_raise() {
        let mut w = OutageWatch::new(Duration::from_secs(10));
        assert_eq!(w.observe(-3600 * S, Some(0)), None);
    }

    #[test]
    fn the_condition_file_is_read_while_its_daemon_runs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("cw.db");
        assert_eq!(read_condition(&store), None, "no file");
        let f = ConditionFile::open(&store).expect("open");
        assert_eq!(read_condition(&store), None, "cleared");
        f.set("CRITICAL: the store cannot write").expect("set");
        assert_eq!(
            read_condition(&store).as_deref(),
            Some("CRITICAL: the store cannot write")
        );
        assert_eq!(
            std::fs::metadata(condition_path(&store)).expect("meta").len(),
            CONDITION_SIZE as u64
        );
        f.set("").expect("clear");
        assert_eq!(read_condition(&store), None);
        // Left by a process that is gone: ignored.
        std::fs::write(condition_path(&store), "4194304999\tCRITICAL: old\n").expect("write");
        assert_eq!(read_condition(&store), None);
    }
}
