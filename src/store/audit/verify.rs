//! `cryowatch audit verify`: walks the chain, then recomputes every sealed block of
//! readings, and names the first thing that does not match.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use super::seal::{digest, sensors_hash};
use super::{GENESIS, chain_hash, record};
use crate::model::{TimestampMs, format_rfc3339};

/// What was checked and, if anything is wrong, the first problem found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// Rows of the chain walked.
    pub records: i64,
    /// The newest row: seq and hash (the value to keep elsewhere as an anchor).
    pub head_seq: i64,
    pub head_hash: String,
    pub head_time: Option<TimestampMs>,
    /// Sealed blocks recomputed and the readings in them.
    pub blocks: usize,
    pub sealed_readings: i64,
    /// Readings are sealed up to here; newer ones are not sealed yet.
    pub sealed_until: Option<TimestampMs>,
    pub unsealed_readings: i64,
    /// Of the unsealed readings, those proven against the batches they were committed in
    /// and the newest seal's record of what stayed open (`audit::batch`); the rest were
    /// stored before readings were bound at commit and are proven once sealed.
    pub bound_readings: i64,
    /// Batches committed since the newest seal, and the newest one: seq and hash.
    pub batches: i64,
    pub batch_head: Option<(i64, String)>,
    /// The newest seal that dropped the batches (the batches since chain from it), as
    /// read in this verification's snapshot.
    #[serde(skip)]
    pub reset: Option<super::batch::Reset>,
    pub problem: Option<Problem>,
}

/// The first broken record and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The audit record at fault (for readings: the seal that no longer matches).
    pub record: i64,
    pub what: String,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// The newest seal of one block.
pub(super) struct Seal {
    pub(super) to: TimestampMs,
    pub(super) count: i64,
    pub(super) hash: String,
    sensors: String,
    record: i64,
}

/// Walks the whole trail; `progress(done, total)` is called as blocks are recomputed.
/// Everything is read from one snapshot, so a daemon writing meanwhile (a late reading
/// resealing its block, say) cannot make the figures disagree.
pub fn verify(c: &Connection, progress: impl FnMut(usize, usize)) -> rusqlite::Result<Verification> {
    let tx = c.unchecked_transaction()?;
    let v = verify_in(&tx, progress);
    tx.finish()?;
    v
}

fn verify_in(c: &Connection, mut progress: impl FnMut(usize, usize)) -> rusqlite::Result<Verification> {
    let mut v = Verification::default();
    let mut prev_hash = GENESIS.to_string();
    let mut seals: BTreeMap<TimestampMs, Seal> = BTreeMap::new();
    // The sensor table as last recorded: (record, hash).
    let mut sensors: Option<(i64, String)> = None;
    // Per alarm id: raised in the trail, and the newest acknowledgement (record, by, comment).
    let mut raised: std::collections::HashSet<i64> = std::collections::HashSet::new();
    let mut acks: std::collections::HashMap<i64, (i64, String, String)> = std::collections::HashMap::new();
    // Corrective actions on the record: (record, alarm id).
    let mut closed: Vec<(i64, i64)> = Vec::new();
    let mut first_time: Option<TimestampMs> = None;
    // Reductions: (record, from, to, minutes hash); readings deleted up to here.
    let mut reduced: Vec<(i64, TimestampMs, TimestampMs, String)> = Vec::new();
    let mut deleted_until = TimestampMs::MIN;
    // The newest seal that dropped the batches before it (the batches since chain from it).
    let mut reset: Option<super::batch::Reset> = None;
    // The newest batch when the daemon last stopped: (its stop record, (seq, hash)).
    let mut stopped_at: Option<(i64, (i64, String))> = None;
    {
        let mut st = c.prepare("SELECT seq, t, kind, actor, subject, detail, prev, hash FROM audit ORDER BY seq")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let rec = record(r)?;
            if let Some((record, what)) = link_problem(v.head_seq, &prev_hash, &rec) {
                v.problem = Some(Problem { record, what });
                return Ok(v);
            }
            if rec.kind == "readings.sealed"
                && let Some(problem) = found_changed(&rec.detail)
            {
                v.problem = Some(Problem {
                    record: rec.seq,
                    what: format!(
                        "record {} sealed readings that had changed since their commit: {problem}",
                        rec.seq
                    ),
                });
                return Ok(v);
            }
            if rec.kind == "readings.sealed" || rec.kind == "readings.resealed" {
                match parse_seal(&rec.detail, rec.seq) {
                    Some((from, seal)) => {
                        // A reseal must be explained by what it says happened: late
                        // readings only add, retention only removes.
                        let reason = serde_json::from_str::<serde_json::Value>(&rec.detail)
                            .ok()
                            .and_then(|d| d["reason"].as_str().map(str::to_string))
                            .unwrap_or_default();
                        let before = seals.get(&from).map(|s| s.count);
                        let unexplained = match (rec.kind.as_str(), before) {
                            ("readings.resealed", None) => true,
                            ("readings.resealed", Some(n)) if reason == "late readings" => seal.count <= n,
                            ("readings.resealed", Some(n)) if reason.starts_with("retention") => seal.count > n,
                            ("readings.resealed", Some(_)) => true,
                            _ => false,
                        };
                        if unexplained {
                            v.problem = Some(Problem {
                                record: rec.seq,
                                what: format!(
                                    "record {} reseals readings from {} with {} readings ({}), which its reason {reason:?} does not explain",
                                    rec.seq,
                                    format_rfc3339(from),
                                    seal.count,
                                    before
                                        .map(|n| format!("{n} before"))
                                        .unwrap_or_else(|| "never sealed before".into())
                                ),
                            });
                            return Ok(v);
                        }
                        sensors = Some((rec.seq, seal.sensors.clone()));
                        seals.insert(from, seal);
                    }
                    None => {
                        v.problem = Some(Problem {
                            record: rec.seq,
                            what: format!("record {} is a seal without a readable block description", rec.seq),
                        });
                        return Ok(v);
                    }
                }
            }
            if rec.kind == "readings.sealed"
                && let Some(r) = super::batch::Reset::from_detail(rec.seq, &rec.hash, &rec.detail)
                && r.open.is_some()
            {
                reset = Some(r);
            }
            if rec.kind == "daemon.stop" {
                stopped_at = serde_json::from_str::<serde_json::Value>(&rec.detail)
                    .ok()
                    .and_then(|d| serde_json::from_value::<Option<(i64, String)>>(d["batch_head"].clone()).ok())
                    .flatten()
                    .map(|head| (rec.seq, head));
            }
            if rec.kind == "sensors.registered"
                && let Some(h) = serde_json::from_str::<serde_json::Value>(&rec.detail)
                    .ok()
                    .and_then(|d| d["sensors"].as_str().map(str::to_string))
            {
                sensors = Some((rec.seq, h));
            }
            if let Some(id) = rec.subject.strip_prefix("alarm ").and_then(|n| n.parse::<i64>().ok()) {
                match rec.kind.as_str() {
                    "alarm.raised" => {
                        raised.insert(id);
                    }
                    "alarm.closed" => closed.push((rec.seq, id)),
                    "alarm.acknowledged" => {
                        let comment = serde_json::from_str::<serde_json::Value>(&rec.detail)
                            .ok()
                            .and_then(|d| d["comment"].as_str().map(str::to_string))
                            .unwrap_or_default();
                        acks.insert(id, (rec.seq, rec.actor.clone(), comment));
                    }
                    _ => {}
                }
            }
            if rec.kind == "readings.reduced" || rec.kind == "readings.deleted" {
                let d: serde_json::Value = serde_json::from_str(&rec.detail).unwrap_or_default();
                if let (Some(from), Some(to)) = (d["from"].as_i64(), d["to"].as_i64()) {
                    match d["minutes_hash"].as_str() {
                        Some(h) if rec.kind == "readings.reduced" => reduced.push((rec.seq, from, to, h.to_string())),
                        _ => deleted_until = deleted_until.max(to),
                    }
                }
            }
            first_time.get_or_insert(rec.t);
            v.records += 1;
            v.head_seq = rec.seq;
            v.head_time = Some(rec.t);
            prev_hash = rec.hash;
        }
    }
    v.head_hash = prev_hash;

    // Seals tile time without holes: each block starts where the previous one ended.
    let mut end: Option<TimestampMs> = None;
    for (from, s) in &seals {
        if let Some(e) = end
            && *from != e
        {
            v.problem = Some(Problem {
                record: s.record,
                what: format!(
                    "readings between {} and {} were never sealed (a seal is missing before record {})",
                    format_rfc3339(e),
                    format_rfc3339(*from),
                    s.record
                ),
            });
            return Ok(v);
        }
        end = Some(s.to);
    }
    v.sealed_until = end;

    if let Some((record, hash)) = &sensors
        && sensors_hash(c)? != *hash
    {
        v.problem = Some(Problem {
            record: *record,
            what: format!(
                "the sensor table (names and units of the readings) changed after record {record} recorded it"
            ),
        });
        return Ok(v);
    }

    // Per-minute summaries written by retention (until retention deleted them too).
    for (record, from, to, hash) in &reduced {
        if *to > deleted_until
            && *from >= deleted_until
            && crate::store::retention::minutes_hash(c, *from, *to)? != *hash
        {
            v.problem = Some(Problem {
                record: *record,
                what: format!(
                    "the per-minute summaries from {} to {} no longer match record {record} that wrote them",
                    format_rfc3339(*from),
                    format_rfc3339(*to)
                ),
            });
            return Ok(v);
        }
    }

    // Every alarm raised on the record is still in the store.
    {
        let mut exists = c.prepare("SELECT EXISTS (SELECT 1 FROM alarm WHERE id = ?1)")?;
        let mut ids: Vec<&i64> = raised.iter().collect();
        ids.sort_unstable();
        for id in ids {
            if !exists.query_row([id], |r| r.get::<_, bool>(0))? {
                v.problem = Some(Problem {
                    record: v.head_seq,
                    what: format!("alarm {id} was raised on the record but is missing from the store (deleted)"),
                });
                return Ok(v);
            }
        }
    }

    // Alarms since the trail began must match it: raised on the record, and acknowledged
    // by whom and with the comment the trail says.
    if let Some(since) = first_time {
        let mut st = c.prepare("SELECT id, acked_by, ack_comment FROM alarm WHERE raised_at >= ?1 ORDER BY id")?;
        let rows = st.query_map([since], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            let (id, by, comment) = row?;
            let problem = if !raised.contains(&id) {
                Some((
                    v.head_seq,
                    format!(
                        "alarm {id} is in the store but was never raised in the audit trail (the alarm table was edited)"
                    ),
                ))
            } else if let Some(by) = by {
                match acks.get(&id) {
                    None => Some((
                        v.head_seq,
                        format!("alarm {id} shows an acknowledgement by {by} that the audit trail does not hold"),
                    )),
                    Some((rec, who, said)) if *who != by || *said != comment.clone().unwrap_or_default() => Some((
                        *rec,
                        format!(
                            "alarm {id}'s acknowledgement (by {by}) differs from audit record {rec} (by {who}): the alarm table was edited"
                        ),
                    )),
                    Some(_) => None,
                }
            } else {
                None
            };
            if let Some((record, what)) = problem {
                v.problem = Some(Problem { record, what });
                return Ok(v);
            }
        }
    }

    if let Some((record, what)) = crate::store::quality::verify(c, &closed, v.head_seq)? {
        v.problem = Some(Problem { record, what });
        return Ok(v);
    }

    if let Some(what) = mistyped_reading(c)? {
        v.problem = Some(Problem {
            record: v.head_seq,
            what,
        });
        return Ok(v);
    }

    let total = seals.len();
    for (i, (from, s)) in seals.iter().enumerate() {
        progress(i, total);
        let d = digest(c, *from, s.to)?;
        if d.count != s.count || d.hash != s.hash {
            let how = match d.count.cmp(&s.count) {
                std::cmp::Ordering::Less => format!("{} readings were deleted", s.count - d.count),
                std::cmp::Ordering::Greater => format!("{} readings were added", d.count - s.count),
                std::cmp::Ordering::Equal => "a reading was altered".to_string(),
            };
            v.problem = Some(Problem {
                record: s.record,
                what: format!(
                    "readings from {} to {} no longer match their seal (record {}): {} sealed, {} stored now; {how}",
                    format_rfc3339(*from),
                    format_rfc3339(s.to),
                    s.record,
                    s.count,
                    d.count
                ),
            });
            return Ok(v);
        }
        v.blocks += 1;
        v.sealed_readings += d.count;
    }
    progress(total, total);
    // Readings newer than the seals: proven against the batches they were committed in.
    let open = super::batch::check_open(c, reset.as_ref(), v.sealed_until.unwrap_or(0))?;
    if let Some(what) = open.problem {
        v.problem = Some(Problem {
            record: reset.as_ref().map(|r| r.record).unwrap_or(v.head_seq),
            what,
        });
        return Ok(v);
    }
    // Batches the daemon left when it last stopped are still there, unless a seal
    // dropped them since.
    if let Some((record, (seq, hash))) = &stopped_at
        && reset.as_ref().is_none_or(|r| r.record < *record)
    {
        let found = super::batch::hash_at(c, *seq)?;
        if found.as_ref() != Some(hash) {
            v.problem = Some(Problem {
                record: *record,
                what: format!(
                    "batch {seq} of readings, the newest when the daemon stopped (record {record}), was {} since",
                    if found.is_some() { "rewritten" } else { "removed" }
                ),
            });
            return Ok(v);
        }
    }
    v.reset = reset;
    v.batches = open.batches;
    v.batch_head = open.head;
    v.bound_readings = open.bound;
    v.unsealed_readings = open.bound + open.unbound;
    Ok(v)
}

/// Whether `rec` follows record `last` (hash `prev`) in the chain: the record at fault
/// and what is wrong when it does not (rows deleted, inserted, reordered or altered).
pub(super) fn link_problem(last: i64, prev: &str, rec: &super::Record) -> Option<(i64, String)> {
    let expected = last + 1;
    if rec.seq != expected {
        return Some((
            expected,
            format!(
                "record {expected} is missing: the trail jumps from record {last} to record {} (rows were deleted)",
                rec.seq
            ),
        ));
    }
    if rec.prev != prev {
        return Some((
            rec.seq,
            format!(
                "record {} does not follow record {last}: its previous-hash field does not match (rows were removed, inserted or reordered)",
                rec.seq
            ),
        ));
    }
    let hash = chain_hash(
        &rec.prev,
        rec.seq,
        rec.t,
        &rec.kind,
        &rec.actor,
        &rec.subject,
        &rec.detail,
    );
    (hash != rec.hash).then(|| {
        (
            rec.seq,
            format!(
                "record {} ({} at {}) was altered: its content no longer matches its hash",
                rec.seq,
                rec.kind,
                format_rfc3339(rec.t)
            ),
        )
    })
}

/// A reading row with a column of another type than the store writes (text or a blob
/// written into the table by hand, which no sensor's history shows and the digests cannot
/// place): one full pass over the table.
pub fn mistyped_reading(c: &Connection) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    c.query_row(
        "SELECT quote(sensor), quote(t), quote(seq), quote(value), quote(quality) FROM reading
         WHERE typeof(sensor) != 'integer' OR typeof(t) != 'integer' OR typeof(seq) != 'integer'
            OR typeof(quality) != 'integer' OR typeof(value) NOT IN ('real', 'null') LIMIT 1",
        [],
        |r| {
            Ok(format!(
                "a reading was written by hand outside cryowatch: (sensor {}, time {}, seq {}, value {}, quality {}) is not of the types cryowatch stores",
                r.get::<_, String>(0)?.escape_debug(),
                r.get::<_, String>(1)?.escape_debug(),
                r.get::<_, String>(2)?.escape_debug(),
                r.get::<_, String>(3)?.escape_debug(),
                r.get::<_, String>(4)?.escape_debug()
            ))
        },
    )
    .optional()
}

/// What a seal's check of the batches found changed, if anything.
pub fn found_changed(detail: &str) -> Option<String> {
    let d: serde_json::Value = serde_json::from_str(detail).ok()?;
    d["found_changed"].as_str().map(str::to_string)
}

pub(super) fn parse_seal(detail: &str, record: i64) -> Option<(TimestampMs, Seal)> {
    let d: serde_json::Value = serde_json::from_str(detail).ok()?;
    Some((
        d["from"].as_i64()?,
        Seal {
            to: d["to"].as_i64()?,
            count: d["count"].as_i64()?,
            hash: d["hash"].as_str()?.to_string(),
            sensors: d["sensors"].as_str()?.to_string(),
            record,
        },
    ))
}

/// `SEQ:HASH` as given to `audit verify --anchor`.
pub fn parse_anchor(text: &str) -> Option<(i64, String)> {
    let (seq, hash) = text.split_once(':')?;
    let seq: i64 = seq.trim().parse().ok()?;
    let hash = hash.trim().to_ascii_lowercase();
    (seq > 0 && hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some((seq, hash))
}

impl Verification {
    /// Requires record `seq` to carry `hash` (an anchor kept outside the store, e.g. from
    /// the log or a report): a trail rewritten from scratch or cut short fails here.
    pub fn check_anchor(
        &mut self,
        store: &crate::store::Store,
        anchor: &(i64, String),
    ) -> Result<(), crate::store::StoreError> {
        if self.problem.is_some() {
            return Ok(());
        }
        let (seq, hash) = anchor;
        let found = store.with_conn(|c| super::hash_at(c, *seq))?;
        self.problem = match found {
            Some(h) if h == *hash => None,
            Some(_) => Some(Problem {
                record: *seq,
                what: format!("record {seq} does not carry the anchored hash: the trail was rewritten"),
            }),
            None => Some(Problem {
                record: *seq,
                what: format!(
                    "record {seq} (anchored) is missing: the trail was cut short to record {}",
                    self.head_seq
                ),
            }),
        };
        Ok(())
    }
}

/// One line to stderr per tenth of the blocks, when there are many.
pub fn stderr_progress() -> impl FnMut(usize, usize) {
    let mut last = usize::MAX;
    move |done, total| {
        if total >= 200 {
            let tenth = done * 10 / total.max(1);
            if tenth != last {
                last = tenth;
                eprintln!("verifying sealed readings: {}%", tenth * 10);
            }
        }
    }
}

/// The human summary of a verification.
pub fn write_text(v: &Verification, out: &mut impl std::io::Write) -> std::io::Result<()> {
    match &v.problem {
        None => writeln!(
            out,
            "audit trail intact: {} records, head {} {}",
            v.records, v.head_seq, v.head_hash
        )?,
        Some(p) => writeln!(out, "audit trail BROKEN at record {}: {}", p.record, p.what)?,
    }
    if v.problem.is_none() {
        match v.sealed_until {
            Some(until) => writeln!(
                out,
                "readings: {} in {} sealed blocks up to {} verified; {} newer readings not sealed yet",
                v.sealed_readings,
                v.blocks,
                format_rfc3339(until),
                v.unsealed_readings
            )?,
            None => writeln!(
                out,
                "readings: none sealed yet; {} readings not sealed yet",
                v.unsealed_readings
            )?,
        }
        if v.unsealed_readings > 0 || v.batches > 0 {
            write!(
                out,
                "unsealed readings: {} verified against the {} batches they were committed in and the newest seal",
                v.bound_readings, v.batches
            )?;
            match (v.unsealed_readings - v.bound_readings, &v.batch_head) {
                (0, Some((seq, hash))) => writeln!(out, "; batch head {seq} {hash}")?,
                (0, None) => writeln!(out)?,
                (n, _) => writeln!(
                    out,
                    "; {n} stored before readings were bound at commit, proven once sealed"
                )?,
            }
        }
    }
    Ok(())
}
