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
use super::{GENESIS, record};
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
            match super::hash_at(c, seq)? {
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
            if let Some((_, what)) = super::verify::link_problem(seq, &prev, &rec) {
                return fail(what);
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
            let found = batch::hash_at(c, *seq)?;
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
        let Some((from, seal)) = super::verify::parse_seal(&rec.detail, rec.seq) else {
            return Ok(Some(format!(
                "record {} is a seal without a readable block description",
                rec.seq
            )));
        };
        let (to, count) = (seal.to, seal.count);
        let current: Option<i64> = c
            .prepare_cached("SELECT audit FROM reading_seal WHERE t_from = ?1")?
            .query_row([from], |r| r.get(0))
            .optional()?;
        if current != Some(rec.seq) {
            return Ok(None);
        }
        let now = digest(c, from, to)?;
        Ok((now.count != count || now.hash != seal.hash).then(|| {
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
    Ok(match super::hash_at(c, a.audit_seq)? {
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
mod tests;
