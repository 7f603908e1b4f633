//! Sealed blocks of readings: tampering with a stored reading is detected without hashing
//! each reading as it is written.
//!
//! The store writer seals time in blocks: once the wall clock is `grace` past the end of
//! a block of `interval` (aligned to the interval), every reading with `from <= t < to`
//! is hashed in key order (sensor id, time, seq) and the block's count and SHA-256 are
//! appended to the audit trail as `readings.sealed`. A reading that arrives later for an
//! already sealed block (a source delivering its backlog) is stored as usual and the block
//! is sealed again in the same transaction (`readings.resealed`, reason "late readings");
//! so is a block that retention reduces. The newest seal of a block is the one that
//! counts. The sensor table (id, name, unit) is hashed into each seal, so renaming a
//! sensor under its readings is detected too.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{append, hex};
use crate::model::TimestampMs;

/// A block's count and hash as computed from the table now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDigest {
    pub count: i64,
    pub hash: String,
}

/// Every sensor id that has readings (including ids no longer in `sensor`), found by
/// skipping along the primary key rather than scanning the table.
pub fn reading_sensors(c: &Connection) -> rusqlite::Result<Vec<i64>> {
    let mut next_sensor = c.prepare_cached("SELECT sensor FROM reading WHERE sensor > ?1 ORDER BY sensor LIMIT 1")?;
    let mut ids = Vec::new();
    let mut sensor = i64::MIN;
    // Text written into the column by hand sorts after every number: the walk stops
    // there (verify names such rows, see `verify::mistyped_reading`).
    while let Some(Some(id)) = next_sensor
        .query_row([sensor], |r| {
            Ok(match r.get_ref(0)? {
                rusqlite::types::ValueRef::Integer(i) => Some(i),
                _ => None,
            })
        })
        .optional()?
    {
        ids.push(id);
        sensor = id;
    }
    Ok(ids)
}

/// Hashes every reading with `from <= t < to`, sensor by sensor in key order.
pub fn digest(c: &Connection, from: TimestampMs, to: TimestampMs) -> rusqlite::Result<BlockDigest> {
    let mut rows = c.prepare_cached(
        "SELECT t, seq, value, quality FROM reading WHERE sensor = ?1 AND t >= ?2 AND t < ?3 ORDER BY t, seq",
    )?;
    let mut h = Sha256::new();
    let mut count = 0i64;
    for id in reading_sensors(c)? {
        let mut q = rows.query(params![id, from, to])?;
        while let Some(r) = q.next()? {
            let (t, seq) = (super::batch::int(r.get_ref(0)?), super::batch::int(r.get_ref(1)?));
            super::batch::hash_stored(&mut h, id, t, seq, r.get_ref(2)?, r.get_ref(3)?);
            count += 1;
        }
    }
    Ok(BlockDigest {
        count,
        hash: hex(&h.finalize()),
    })
}

/// SHA-256 over the sensor table (id, name, unit) in id order.
pub fn sensors_hash(c: &Connection) -> rusqlite::Result<String> {
    let mut st = c.prepare_cached("SELECT id, name, unit FROM sensor ORDER BY id")?;
    let mut q = st.query([])?;
    let mut h = Sha256::new();
    while let Some(r) = q.next()? {
        let row = serde_json::json!([r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?]);
        h.update(row.to_string().as_bytes());
        h.update(b"\n");
    }
    Ok(hex(&h.finalize()))
}

/// The end of the newest sealed block (0 when nothing is sealed yet).
pub fn sealed_until(c: &Connection) -> rusqlite::Result<TimestampMs> {
    c.query_row("SELECT coalesce(max(t_to), 0) FROM reading_seal", [], |r| r.get(0))
}

/// A block sealed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub from: TimestampMs,
    pub to: TimestampMs,
    pub count: i64,
    pub audit: i64,
    /// More is due already (catching up after a stop, or a first seal of old history).
    pub more: bool,
    /// The readings committed since the last seal no longer matched their batches: the
    /// problem, recorded in the seal (the record fails `audit verify` from then on).
    pub found_changed: Option<String>,
}

/// The newest block boundary that lies `grace_ms` in the past: readings before it are
/// due to be sealed.
pub fn horizon(now: TimestampMs, interval_ms: i64, grace_ms: i64) -> TimestampMs {
    let interval = interval_ms.max(1);
    (now - grace_ms).div_euclid(interval) * interval
}

/// The longest block sealed at once: catching up after days down, or sealing years of
/// history the first time, goes an hour at a time, so neither the seal nor a later
/// reseal of one block holds the writer for long.
const MAX_BLOCK: i64 = 3_600_000;

/// Seals the next block: from the end of the last seal towards the newest block boundary
/// that lies `grace_ms` in the past, at most an hour (or one interval) at a time. The very
/// first block runs from the epoch to the interval holding the oldest reading.
/// The readings committed since the last seal are checked against their batches
/// ([`super::batch`]) first, and the chain of batches must end with `written` (the
/// newest batch the writer committed, when it knows it); what the check found is part
/// of the seal.
pub fn seal_due(
    c: &Connection,
    now: TimestampMs,
    interval_ms: i64,
    grace_ms: i64,
    written: Option<&(i64, String)>,
) -> rusqlite::Result<Option<Sealed>> {
    let interval = interval_ms.max(1);
    let horizon = horizon(now, interval, grace_ms);
    let from = sealed_until(c)?;
    if horizon <= from {
        return Ok(None);
    }
    let step = interval * ((MAX_BLOCK + interval - 1) / interval).max(1);
    let to = if from == 0 {
        match oldest(c)? {
            Some(t) if t.div_euclid(interval) * interval > 0 => (t.div_euclid(interval) * interval).min(horizon),
            Some(_) => horizon.min(step),
            // Nothing stored yet: one empty block up to the horizon, not 56 years of
            // empty hourly blocks from the epoch.
            None => horizon,
        }
    } else {
        (from + step).min(horizon)
    };
    let to = if to <= from { horizon } else { to };
    // The readings committed since the last seal must still be what was committed. When
    // they are not, the seal says so in the chain for good (`found_changed`), so a
    // forged reading is never sealed as if it were the one committed; sealing goes on,
    // so the work of the next check stays one block's worth.
    let reset = super::batch::current_reset(c)?;
    let mut check = super::batch::check_batches(c, reset.as_ref(), from)?;
    if check.problem.is_none()
        && let Some((seq, hash)) = written
        && check.head.as_ref() != Some(&(*seq, hash.clone()))
    {
        check.problem = Some(format!(
            "the batches of readings committed since the last seal were cut short or rewritten: the newest one committed is batch {seq}, the table ends at {}",
            check.head.as_ref().map_or_else(
                || "none".to_string(),
                |(s, h)| format!("batch {s} with another hash ({h})")
            )
        ));
    }
    let d = digest(c, from, to)?;
    // What stays open is recorded, and the batches, now covered by this seal, dropped.
    // While catching up (more blocks due) the batches stay until the last block.
    let more = to < horizon;
    let open = if more {
        None
    } else {
        Some(super::batch::open_digest(c, to, &Default::default())?)
    };
    let audit = record(
        c,
        now,
        "readings.sealed",
        from,
        to,
        &d,
        Extra {
            open: open.as_ref(),
            found_changed: check.problem.as_deref(),
            ..Extra::default()
        },
    )?;
    if open.is_some() {
        super::batch::reset(c)?;
    }
    c.execute(
        "INSERT OR REPLACE INTO reading_seal (t_from, t_to, count, hash, audit) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![from, to, d.count, d.hash, audit],
    )?;
    Ok(Some(Sealed {
        from,
        to,
        count: d.count,
        audit,
        more,
        found_changed: check.problem,
    }))
}

/// The oldest reading's time, found sensor by sensor along the primary key.
pub fn oldest(c: &Connection) -> rusqlite::Result<Option<TimestampMs>> {
    let mut st = c.prepare_cached("SELECT min(t) FROM reading WHERE sensor = ?1")?;
    let mut min: Option<TimestampMs> = None;
    for id in reading_sensors(c)? {
        if let Some(t) = st.query_row([id], |r| r.get::<_, Option<i64>>(0))? {
            min = Some(min.map_or(t, |m| m.min(t)));
        }
    }
    Ok(min)
}

/// Seals again every sealed block holding one of `times` (late readings) or overlapping
/// `[from, to)` (retention); returns how many blocks.
pub fn reseal(
    c: &Connection,
    now: TimestampMs,
    times: &[TimestampMs],
    range: Option<(TimestampMs, TimestampMs)>,
    reason: &str,
) -> rusqlite::Result<usize> {
    let mut blocks: Vec<(i64, i64)> = Vec::new();
    {
        let mut at = c.prepare_cached("SELECT t_from, t_to FROM reading_seal WHERE t_from <= ?1 AND t_to > ?1")?;
        for &t in times {
            if let Some(b) = at.query_row([t], |r| Ok((r.get(0)?, r.get(1)?))).optional()? {
                blocks.push(b);
            }
        }
        if let Some((from, to)) = range {
            let mut over = c.prepare_cached("SELECT t_from, t_to FROM reading_seal WHERE t_from < ?2 AND t_to > ?1")?;
            let found = over.query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for b in found {
                blocks.push(b?);
            }
        }
    }
    blocks.sort_unstable();
    blocks.dedup();
    for &(from, to) in &blocks {
        let d = digest(c, from, to)?;
        let audit = record(
            c,
            now,
            "readings.resealed",
            from,
            to,
            &d,
            Extra {
                reason: Some(reason),
                ..Extra::default()
            },
        )?;
        c.execute(
            "UPDATE reading_seal SET count = ?2, hash = ?3, audit = ?4 WHERE t_from = ?1",
            params![from, d.count, d.hash, audit],
        )?;
    }
    Ok(blocks.len())
}

/// What a seal record says besides its block.
#[derive(Default)]
struct Extra<'a> {
    /// Why a block was sealed again.
    reason: Option<&'a str>,
    /// Count and hash of the readings still open (the batches were dropped).
    open: Option<&'a (i64, String)>,
    /// What the check of the batches found changed.
    found_changed: Option<&'a str>,
}

fn record(
    c: &Connection,
    now: TimestampMs,
    kind: &str,
    from: TimestampMs,
    to: TimestampMs,
    d: &BlockDigest,
    extra: Extra,
) -> rusqlite::Result<i64> {
    let mut detail = serde_json::json!({
        "from": from,
        "to": to,
        "count": d.count,
        "hash": d.hash,
        "sensors": sensors_hash(c)?,
    });
    if let Some(reason) = extra.reason {
        detail["reason"] = reason.into();
    }
    if let Some((count, hash)) = extra.open {
        detail["open"] = serde_json::json!({ "count": count, "hash": hash });
    }
    if let Some(problem) = extra.found_changed {
        detail["found_changed"] = problem.into();
    }
    let subject = format!(
        "readings {}..{}",
        crate::model::format_rfc3339(from),
        crate::model::format_rfc3339(to)
    );
    append(c, now, kind, "daemon", &subject, &detail)
}
