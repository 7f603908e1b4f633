//! The daemon watches its own record: the audit chain, the sealed blocks and the readings
//! committed since the last seal are verified continuously, off the write path, on a
//! read-only connection of their own.
//!
//! [`Watch::check`] is incremental: the first look (and one a day after it) is a full
//! `audit verify`; every other look checks that the newest record already verified still
//! carries its hash, walks only the records appended since, recomputes the blocks their
//! seals name, and proves the readings committed since the last seal against their
//! batches ([`super::batch`]) — about a block's worth of readings. The first problem is
//! kept: a record that failed once stays failed until a person has looked (the daemon
//! raises the critical, latching `cryowatch.record:integrity` alarm with it, see
//! [`crate::config::monitor`]).
//!
//! The newest verified heads ([`Anchor`]) are published where an outsider keeps them
//! (the retained MQTT heartbeat, the daily all-OK page), and an anchor the daemon
//! published before is checked again when it starts, so a trail rewritten while the
//! daemon was stopped is caught without an anchor typed by hand.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::batch::{self, Reset};
use super::seal::digest;
use super::{GENESIS, chain_hash, record};
use crate::model::{TimestampMs, format_rfc3339};

/// How often the record is looked at.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// How often every reading not sealed yet is proven again when that is costly (between
/// these, a look proves only the batches committed since the one before). When it took
/// less than [`OPEN_CHEAP`] last time (a lab of tens of sensors), every look does it.
pub const OPEN_EVERY: Duration = Duration::from_secs(60);
pub const OPEN_CHEAP: Duration = Duration::from_millis(100);
/// Looks in a row that fail to read the store (not a finding: an error of SQLite or the
/// disk) before the record counts as failed: five minutes of [`INTERVAL`].
const UNREADABLE_AFTER: u32 = 30;
/// How often the whole record is verified again, alarm tables and every block included.
pub const FULL_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The heads of the record as last verified: what an outsider keeps to catch a
/// rewritten trail (`cryowatch audit verify --anchor SEQ:HASH`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub audit_seq: i64,
    pub audit_hash: String,
    /// The newest batch of readings committed since the last seal, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_hash: Option<String>,
    /// When it was verified (RFC 3339).
    pub verified_at: String,
    /// The installation the heads belong to (its tag), so heads of another store on the
    /// same topic are not taken for this one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

impl Anchor {
    /// The form `audit verify --anchor` takes.
    pub fn arg(&self) -> String {
        format!("{}:{}", self.audit_seq, self.audit_hash)
    }
}

/// What the watcher last found, shared with whoever publishes it.
#[derive(Default)]
pub struct Shared {
    state: Mutex<SharedState>,
    /// Interrupts a look in progress (a full verification of years of readings) when the
    /// daemon stops or reloads.
    interrupt: Mutex<Option<rusqlite::InterruptHandle>>,
    /// This installation's tag, put into every anchor.
    store: Option<String>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Clone)]
struct SharedState {
    anchor: Option<Anchor>,
    problem: Option<String>,
    /// Anchors published before (read back from the broker), to check at the next look.
    recalled: Vec<Anchor>,
}

impl Shared {
    /// `store`: the installation's tag, which anchors carry.
    pub fn new(store: Option<String>) -> Arc<Shared> {
        Arc::new(Shared {
            store,
            ..Shared::default()
        })
    }

    /// Heads published by this installation (or by a version that did not tag them).
    pub fn is_ours(&self, anchor: &Anchor) -> bool {
        anchor.store.is_none() || anchor.store == self.store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest verified anchor; `None` before the first look or once the record failed.
    pub fn anchor(&self) -> Option<Anchor> {
        let s = self.lock();
        if s.problem.is_some() {
            return None;
        }
        s.anchor.clone().map(|a| Anchor {
            store: self.store.clone(),
            ..a
        })
    }

    /// The problem found, if the record failed.
    pub fn problem(&self) -> Option<String> {
        self.lock().problem.clone()
    }

    /// An anchor published earlier (e.g. the retained heartbeat read back at start): the
    /// record must still carry it.
    pub fn recall(&self, anchor: Anchor) {
        self.lock().recalled.push(anchor);
    }

    /// Stops a look in progress; the watcher then sees its shutdown.
    pub fn interrupt(&self) {
        if let Some(h) = self.interrupt.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            h.interrupt();
        }
    }

    fn take_recalled(&self) -> Vec<Anchor> {
        std::mem::take(&mut self.lock().recalled)
    }

    fn set(&self, anchor: Option<Anchor>, problem: Option<String>) {
        let mut s = self.lock();
        if anchor.is_some() {
            s.anchor = anchor;
        }
        if problem.is_some() {
            s.problem = problem;
        }
    }
}

/// One look at the record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Look {
    /// The first problem ever found (kept once found).
    pub problem: Option<String>,
    /// The heads verified by this look.
    pub anchor: Option<Anchor>,
    /// This look was a full verification.
    pub full: bool,
    /// Records walked by this look.
    pub records: i64,
}

/// The incremental verifier's memory between looks.
#[derive(Debug, Default)]
pub struct Watch {
    /// The newest record verified: (seq, hash).
    verified: Option<(i64, String)>,
    /// The end of the newest sealed block, as the trail says.
    sealed_until: TimestampMs,
    /// The newest seal that dropped the batches, which the batches since chain from.
    reset: Option<Reset>,
    /// (that seal's record, the newest batch verified since it: seq and hash): the next
    /// look goes on from there, and batches never go backwards.
    batch_since: Option<(i64, (i64, String))>,
    next_full: TimestampMs,
    next_open: TimestampMs,
    /// The last full check of the unsealed readings was cheap: do it at every look.
    open_cheap: bool,
    problem: Option<String>,
}

impl Watch {
    pub fn new() -> Watch {
        Watch::default()
    }

    /// Looks at the record at `now`; `recalled` are anchors published before that the
    /// trail must still carry.
    pub fn check(&mut self, c: &Connection, now: TimestampMs, recalled: &[Anchor]) -> rusqlite::Result<Look> {
        if let Some(problem) = &self.problem {
            return Ok(Look {
                problem: Some(problem.clone()),
                ..Look::default()
            });
        }
        let mut look = if self.verified.is_none() || now >= self.next_full {
            self.full(c, now)?
        } else {
            let tx = c.unchecked_transaction()?;
            let look = self.incremental(&tx, now)?;
            tx.finish()?;
            look
        };
        if look.problem.is_none() {
            for a in recalled {
                if let Some(p) = recalled_problem(c, a)? {
                    look.problem = Some(p);
                    break;
                }
            }
        }
        if let Some(p) = &look.problem {
            self.problem = Some(p.clone());
            look.anchor = None;
        }
        Ok(look)
    }

    fn full(&mut self, c: &Connection, now: TimestampMs) -> rusqlite::Result<Look> {
        let v = super::verify::verify(c, |_, _| {})?;
        self.next_full = now.saturating_add(FULL_EVERY.as_millis() as i64);
        if let Some(p) = v.problem {
            return Ok(Look {
                problem: Some(format!("audit verify: record {}: {}", p.record, p.what)),
                full: true,
                records: v.records,
                ..Look::default()
            });
        }
        self.verified = (v.head_seq > 0).then(|| (v.head_seq, v.head_hash.clone()));
        self.sealed_until = v.sealed_until.unwrap_or(0);
        self.reset = v.reset.clone();
        self.batch_since = Some((
            self.reset.as_ref().map_or(0, |r| r.record),
            v.batch_head.clone().unwrap_or((0, String::new())),
        ));
        // The next look checks every unsealed reading again and learns what that costs.
        self.next_open = now;
        // An empty trail is verified too: remember that it was empty.
        if self.verified.is_none() {
            self.verified = Some((0, GENESIS.to_string()));
        }
        Ok(Look {
            anchor: Some(anchor(v.head_seq, v.head_hash, v.batch_head, now)),
            full: true,
            records: v.records,
            problem: None,
        })
    }

    fn incremental(&mut self, c: &Connection, now: TimestampMs) -> rusqlite::Result<Look> {
        let fail = |what: String| {
            Ok(Look {
                problem: Some(what),
                ..Look::default()
            })
        };
        let (mut seq, mut prev) = self.verified.clone().unwrap_or((0, GENESIS.to_string()));
        if seq > 0 {
            let found: Option<String> = c
                .prepare_cached("SELECT hash FROM audit WHERE seq = ?1")?
                .query_row([seq], |r| r.get(0))
                .optional()?;
            match found {
                Some(h) if h == prev => {}
                Some(_) => return fail(format!("record {seq}, verified earlier, was rewritten since")),
                None => {
                    return fail(format!(
                        "record {seq}, verified earlier, was removed (the trail was cut short)"
                    ));
                }
            }
        }
        let mut records = 0i64;
        let mut st = c.prepare_cached(
            "SELECT seq, t, kind, actor, subject, detail, prev, hash FROM audit WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = st.query([seq])?;
        while let Some(r) = rows.next()? {
            let rec = record(r)?;
            if rec.seq != seq + 1 {
                return fail(format!(
                    "record {} is missing: the trail jumps from record {seq} to record {} (rows were deleted)",
                    seq + 1,
                    rec.seq
                ));
            }
            if rec.prev != prev {
                return fail(format!(
                    "record {} does not follow record {seq}: rows were removed, inserted or reordered",
                    rec.seq
                ));
            }
            if chain_hash(
                &rec.prev,
                rec.seq,
                rec.t,
                &rec.kind,
                &rec.actor,
                &rec.subject,
                &rec.detail,
            ) != rec.hash
            {
                return fail(format!(
                    "record {} ({} at {}) was altered: its content no longer matches its hash",
                    rec.seq,
                    rec.kind,
                    format_rfc3339(rec.t)
                ));
            }
            if rec.kind == "readings.sealed" || rec.kind == "readings.resealed" {
                if let Some(p) = self.seal_problem(c, &rec)? {
                    return fail(p);
                }
                if rec.kind == "readings.sealed"
                    && let Some(reset) = Reset::from_detail(rec.seq, &rec.hash, &rec.detail)
                {
                    self.sealed_until = self.sealed_until.max(reset.to);
                    if reset.open.is_some() {
                        self.reset = Some(reset);
                    }
                }
            }
            seq = rec.seq;
            prev = rec.hash;
            records += 1;
        }
        // The readings committed since the last seal: every one of them once a minute or
        // after a seal dropped the batches, else the batches committed since the last look.
        let reset_record = self.reset.as_ref().map_or(0, |r| r.record);
        let newest = batch::head(c)?;
        // The newest batch verified at the last look must still be there, unchanged,
        // unless a seal has dropped the batches since.
        if let Some((r, (seq, hash))) = &self.batch_since
            && *r == reset_record
            && *seq > 0
        {
            let found: Option<String> = c
                .prepare_cached("SELECT hash FROM reading_batch WHERE seq = ?1")?
                .query_row([seq], |q| q.get(0))
                .optional()?;
            if found.as_ref() != Some(hash) {
                let newest_seq = newest.as_ref().map_or(0, |b| b.0);
                return fail(match found {
                    None => format!(
                        "batches {}..{seq} of readings committed since the last seal were removed with their readings",
                        newest_seq.min(*seq) + 1
                    ),
                    Some(_) => format!("batch {seq} of readings, verified earlier, was rewritten since"),
                });
            }
        }
        let since = match &self.batch_since {
            Some((r, since)) if *r == reset_record && now < self.next_open && !self.open_cheap => {
                (since.0 > 0).then(|| since.clone())
            }
            _ => None,
        };
        let open = match &since {
            Some(since) => batch::check_new(c, since)?,
            None => {
                let started = std::time::Instant::now();
                let open = batch::check_open(c, self.reset.as_ref(), self.sealed_until)?;
                self.open_cheap = started.elapsed() < OPEN_CHEAP;
                self.next_open = now.saturating_add(OPEN_EVERY.as_millis() as i64);
                open
            }
        };
        if let Some(p) = open.problem {
            return fail(p);
        }
        let head = open.head.or(since).unwrap_or((0, String::new()));
        self.batch_since = Some((reset_record, head.clone()));
        self.verified = Some((seq, prev.clone()));
        Ok(Look {
            anchor: Some(anchor(seq, prev, (head.0 > 0).then_some(head), now)),
            records,
            ..Look::default()
        })
    }

    /// A seal appended since the last look must match the readings it names (when it is
    /// still the newest seal of its block).
    fn seal_problem(&self, c: &Connection, rec: &super::Record) -> rusqlite::Result<Option<String>> {
        if let Some(problem) = super::verify::found_changed(&rec.detail) {
            return Ok(Some(format!(
                "record {} sealed readings that had changed since their commit: {problem}",
                rec.seq
            )));
        }
        let d: serde_json::Value = serde_json::from_str(&rec.detail).unwrap_or_default();
        let (Some(from), Some(to), Some(count), Some(hash)) = (
            d["from"].as_i64(),
            d["to"].as_i64(),
            d["count"].as_i64(),
            d["hash"].as_str(),
        ) else {
            return Ok(Some(format!(
                "record {} is a seal without a readable block description",
                rec.seq
            )));
        };
        let current: Option<i64> = c
            .prepare_cached("SELECT audit FROM reading_seal WHERE t_from = ?1")?
            .query_row([from], |r| r.get(0))
            .optional()?;
        if current != Some(rec.seq) {
            return Ok(None);
        }
        let now = digest(c, from, to)?;
        Ok((now.count != count || now.hash != hash).then(|| {
            format!(
                "readings from {} to {} no longer match their seal (record {}): {count} sealed, {} stored now",
                format_rfc3339(from),
                format_rfc3339(to),
                rec.seq,
                now.count
            )
        }))
    }
}

fn anchor(seq: i64, hash: String, batch: Option<(i64, String)>, now: TimestampMs) -> Anchor {
    let (batch_seq, batch_hash) = batch.unzip();
    Anchor {
        audit_seq: seq,
        audit_hash: hash,
        batch_seq,
        batch_hash,
        verified_at: format_rfc3339(now),
        store: None,
    }
}

/// An anchor published earlier that the trail no longer carries.
fn recalled_problem(c: &Connection, a: &Anchor) -> rusqlite::Result<Option<String>> {
    if a.audit_seq <= 0 {
        return Ok(None);
    }
    let found: Option<String> = c
        .prepare_cached("SELECT hash FROM audit WHERE seq = ?1")?
        .query_row([a.audit_seq], |r| r.get(0))
        .optional()?;
    Ok(match found {
        Some(h) if h == a.audit_hash => None,
        Some(_) => Some(format!(
            "record {} does not carry the hash published for it at {}: the trail was rewritten",
            a.audit_seq, a.verified_at
        )),
        None => Some(format!(
            "record {} (published at {}) is missing: the trail was cut short",
            a.audit_seq, a.verified_at
        )),
    })
}

/// Runs the watcher until `shutdown`: looks every [`INTERVAL`] on its own read-only
/// connection and hands each look to `report` (which stores it as a reading of the
/// record-integrity sensor) and to `shared` (which the heartbeat publishes).
pub fn spawn(
    path: std::path::PathBuf,
    shared: Arc<Shared>,
    shutdown: tokio_util::sync::CancellationToken,
    mut report: impl FnMut(&Look) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("record-watch".into()).spawn(move || {
        let mut watch = Watch::new();
        let mut store: Option<crate::store::Store> = None;
        let mut logged_open_error = false;
        let mut errors = 0u32;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if store.is_none() {
                match crate::store::Store::open_read_only(&path) {
                    Ok(s) => {
                        if let Ok(h) = s.with_conn(|c| Ok(c.get_interrupt_handle())) {
                            *shared.interrupt.lock().unwrap_or_else(PoisonError::into_inner) = Some(h);
                        }
                        store = Some(s)
                    }
                    Err(e) if !logged_open_error => {
                        tracing::warn!(error = %e, "record watch cannot open the store yet; retrying");
                        logged_open_error = true;
                    }
                    Err(_) => {}
                }
            }
            if let Some(s) = &store {
                let recalled = shared.take_recalled();
                match s.with_conn(|c| watch.check(c, crate::model::now_ms(), &recalled)) {
                    Ok(look) => {
                        errors = 0;
                        if let Some(p) = &look.problem {
                            if shared.problem().is_none() {
                                tracing::error!(problem = %p, "the record fails its check: raising the record-integrity alarm");
                            }
                        } else if look.full {
                            tracing::info!(records = look.records, "record verified in full");
                        }
                        shared.set(look.anchor.clone(), look.problem.clone());
                        report(&look);
                    }
                    Err(_) if shutdown.is_cancelled() => return,
                    Err(e) => {
                        errors += 1;
                        for a in recalled {
                            shared.recall(a);
                        }
                        // A record that cannot be read for minutes cannot be vouched for.
                        if errors == UNREADABLE_AFTER {
                            let look = Look {
                                problem: Some(format!("the record cannot be read to check it: {e}")),
                                ..Look::default()
                            };
                            tracing::error!(error = %e, looks = errors, "the record cannot be read to check it: raising the record-integrity alarm");
                            shared.set(None, look.problem.clone());
                            report(&look);
                        } else {
                            tracing::warn!(error = %e, "record watch: reading the store failed; trying again");
                        }
                    }
                }
            }
            let deadline = std::time::Instant::now() + INTERVAL;
            while std::time::Instant::now() < deadline {
                if shutdown.is_cancelled() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Quality;
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().expect("dir");
        let mut s = Store::open(&dir.path().join("s.db")).expect("store");
        let ids = s.register_sensors(&[("a".into(), "degC".into())]).expect("sensors");
        (dir, s, ids[0])
    }

    fn look(w: &mut Watch, s: &Store, now: TimestampMs) -> Look {
        s.with_conn(|c| w.check(c, now, &[])).expect("look")
    }

    #[test]
    fn an_untouched_record_passes_every_look_and_its_heads_move_on() {
        let (_d, mut s, id) = store();
        let mut w = Watch::new();
        let first = look(&mut w, &s, 1_000);
        assert!(first.full && first.problem.is_none(), "{first:?}");
        s.insert(&[(id, 500, Some(-190.0), Quality::Good)]).expect("insert");
        let second = look(&mut w, &s, 2_000);
        assert!(!second.full && second.problem.is_none(), "{second:?}");
        let anchor = second.anchor.expect("heads");
        assert_eq!(anchor.batch_seq, Some(1));
    }

    #[test]
    fn a_reading_edited_after_a_look_fails_the_next_one_and_stays_failed() {
        let (_d, mut s, id) = store();
        let mut w = Watch::new();
        s.insert(&[(id, 500, Some(-120.0), Quality::Good)]).expect("insert");
        assert!(look(&mut w, &s, 1_000).problem.is_none());
        s.with_conn(|c| c.execute("UPDATE reading SET value = -190.0", []))
            .expect("tamper");
        let p = look(&mut w, &s, 2_000).problem.expect("caught");
        assert!(p.contains("was altered"), "{p}");
        s.with_conn(|c| c.execute("UPDATE reading SET value = -120.0", []))
            .expect("undo");
        assert!(look(&mut w, &s, 3_000).problem.is_some(), "a failure is kept");
    }

    #[test]
    fn when_the_full_check_is_costly_new_batches_are_checked_at_once_and_old_ones_each_minute() {
        let (_d, mut s, id) = store();
        let mut w = Watch::new();
        s.insert(&[(id, 500, Some(-120.0), Quality::Good)]).expect("insert");
        assert!(look(&mut w, &s, 1_000).problem.is_none(), "full verification");
        assert!(look(&mut w, &s, 1_500).problem.is_none(), "every unsealed reading");
        w.open_cheap = false;
        // An old batch edited: not seen by the cheap look, seen at the next full one.
        s.with_conn(|c| c.execute("UPDATE reading SET value = -190.0 WHERE t = 500", []))
            .expect("tamper");
        s.insert(&[(id, 600, Some(-121.0), Quality::Good)]).expect("insert");
        assert!(look(&mut w, &s, 2_000).problem.is_none(), "only the new batch checked");
        let p = look(&mut w, &s, 1_500 + OPEN_EVERY.as_millis() as i64 + 1)
            .problem
            .expect("caught");
        assert!(p.contains("was altered"), "{p}");
    }

    #[test]
    fn a_new_batch_edited_is_caught_by_the_cheap_look() {
        let (_d, mut s, id) = store();
        let mut w = Watch::new();
        assert!(look(&mut w, &s, 1_000).problem.is_none());
        s.insert(&[(id, 500, Some(-120.0), Quality::Good)]).expect("insert");
        assert!(look(&mut w, &s, 2_000).problem.is_none());
        w.open_cheap = false;
        s.insert(&[(id, 600, Some(-121.0), Quality::Good)]).expect("insert");
        s.with_conn(|c| c.execute("DELETE FROM reading WHERE t = 600", []))
            .expect("tamper");
        let p = look(&mut w, &s, 3_000).problem.expect("caught");
        assert!(p.contains("was deleted"), "{p}");
    }

    #[test]
    fn the_newest_batch_removed_with_its_readings_after_a_look_is_caught() {
        let (_d, mut s, id) = store();
        let mut w = Watch::new();
        for t in [500, 600, 700] {
            s.insert(&[(id, t, Some(-190.0), Quality::Good)]).expect("insert");
        }
        assert!(look(&mut w, &s, 1_000).problem.is_none());
        assert!(look(&mut w, &s, 1_500).problem.is_none());
        s.with_conn(|c| {
            c.execute("DELETE FROM reading WHERE t = 700", [])?;
            c.execute("DELETE FROM reading_batch WHERE seq = 3", [])
        })
        .expect("tamper");
        let p = look(&mut w, &s, 2_000).problem.expect("caught");
        assert!(p.contains("were removed"), "{p}");
    }

    #[test]
    fn an_audit_record_rewritten_after_it_was_verified_is_caught() {
        let (_d, s, _) = store();
        let mut w = Watch::new();
        assert!(look(&mut w, &s, 1_000).problem.is_none());
        s.with_conn(|c| {
            c.execute(
                "UPDATE audit SET hash = 'x' || substr(hash, 2) WHERE seq = (SELECT max(seq) FROM audit)",
                [],
            )
        })
        .expect("tamper");
        let p = look(&mut w, &s, 2_000).problem.expect("caught");
        assert!(p.contains("rewritten"), "{p}");
    }

    #[test]
    fn a_published_anchor_the_trail_no_longer_carries_is_caught() {
        let (_d, s, _) = store();
        let mut w = Watch::new();
        let a = look(&mut w, &s, 1_000).anchor.expect("heads");
        let forged = Anchor {
            audit_hash: "0".repeat(64),
            ..a.clone()
        };
        assert!(
            s.with_conn(|c| w.check(c, 2_000, std::slice::from_ref(&a)))
                .expect("look")
                .problem
                .is_none()
        );
        let p = s
            .with_conn(|c| w.check(c, 3_000, &[forged]))
            .expect("look")
            .problem
            .expect("caught");
        assert!(p.contains("does not carry the hash published"), "{p}");
    }
}
