//! Readings bound to the record at commit: tampering is detectable from the first second,
//! not only once a block is sealed.
//!
//! Every transaction that stores readings newer than the sealed blocks appends one row to
//! `reading_batch` in the same transaction: the keys of the readings it stored (sensor id,
//! time, seq), their count and a SHA-256 over every reading (key, value, quality) in
//! commit order, chained by hash to the batch before it. The chain starts at the newest
//! `readings.sealed` record of the audit trail (its hash is the first batch's `prev`), so
//! the batches hang off the audit chain.
//!
//! When a block is sealed ([`super::seal`]), the batches are checked against the table
//! first (a reading forged in the store is never sealed), the seal records the count and
//! hash of every reading not yet sealed (`open`), and the batches are dropped: from then
//! on the seal covers what they covered. So `reading_batch` holds about one block's worth
//! of commits, never years.
//!
//! [`check_open`] proves the readings not yet sealed: each batch's readings are still
//! there and unchanged, the batches chain, and every other unsealed reading is one the
//! newest seal recorded as open. A reading edited, added or deleted one second after its
//! commit fails it.

use std::collections::HashSet;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::{GENESIS, hex};
use crate::model::{Quality, TimestampMs, format_rfc3339};

/// Schema version 10: the batches committed since the newest seal.
pub(crate) const MIGRATION: &str = "
    CREATE TABLE reading_batch (
        seq    INTEGER PRIMARY KEY,
        t      INTEGER NOT NULL,
        count  INTEGER NOT NULL,
        keys   BLOB NOT NULL,
        hash   TEXT NOT NULL
    );";

/// One reading as the batch digest covers it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub sensor: i64,
    pub t: TimestampMs,
    pub seq: i64,
    pub value: Option<f64>,
    pub quality: Quality,
}

/// Adds one reading to a running digest: the same bytes the block seals hash.
pub fn hash_reading(h: &mut Sha256, sensor: i64, t: TimestampMs, seq: i64, value: Option<f64>, quality: i64) {
    h.update(sensor.to_le_bytes());
    h.update(t.to_le_bytes());
    h.update(seq.to_le_bytes());
    match value {
        Some(v) => {
            h.update([1]);
            h.update(v.to_bits().to_le_bytes());
        }
        None => h.update([0]),
    }
    h.update(quality.to_le_bytes());
}

/// Adds one reading as stored to a running digest, whatever the column types: a value or
/// quality of the type the store writes hashes exactly as [`hash_reading`] does, anything
/// else (text or a blob written into the table by hand) hashes differently, so it is
/// reported as an altered reading rather than stopping the check.
pub fn hash_stored(h: &mut Sha256, sensor: i64, t: i64, seq: i64, value: ValueRef, quality: ValueRef) {
    match (value, quality) {
        (ValueRef::Null, ValueRef::Integer(q)) => hash_reading(h, sensor, t, seq, None, q),
        (ValueRef::Real(v), ValueRef::Integer(q)) => hash_reading(h, sensor, t, seq, Some(v), q),
        (value, quality) => {
            h.update(sensor.to_le_bytes());
            h.update(t.to_le_bytes());
            h.update(seq.to_le_bytes());
            for v in [value, quality] {
                h.update([0xff]);
                h.update(format!("{v:?}").as_bytes());
            }
        }
    }
}

/// The hash of a batch row from its fields and the previous batch's hash.
pub fn batch_hash(prev: &str, seq: i64, t: TimestampMs, count: i64, digest: &str) -> String {
    let canonical = serde_json::json!([seq, t, count, digest]).to_string();
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    hex(&h.finalize())
}

/// The keys of a batch, compactly: per reading the differences from the previous key's
/// sensor and time, and its seq, each as a zigzag varint — about 4 to 6 bytes a reading
/// where three plain integers take 24. (The table lives for one block; this keeps the
/// store small while it does.)
fn encode_keys(rows: &[Bound]) -> Vec<u8> {
    let mut keys = Vec::with_capacity(rows.len() * 6);
    let (mut sensor, mut t) = (0i64, 0i64);
    for r in rows {
        put_varint(&mut keys, zigzag(r.sensor.wrapping_sub(sensor)));
        put_varint(&mut keys, zigzag(r.t.wrapping_sub(t)));
        put_varint(&mut keys, zigzag(r.seq));
        (sensor, t) = (r.sensor, r.t);
    }
    keys
}

fn decode_keys(keys: &[u8]) -> Option<Vec<(i64, TimestampMs, i64)>> {
    let mut out = Vec::new();
    let (mut sensor, mut t) = (0i64, 0i64);
    let mut at = 0;
    while at < keys.len() {
        sensor = sensor.wrapping_add(unzigzag(get_varint(keys, &mut at)?));
        t = t.wrapping_add(unzigzag(get_varint(keys, &mut at)?));
        let seq = unzigzag(get_varint(keys, &mut at)?);
        out.push((sensor, t, seq));
    }
    Some(out)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The hash a new batch chains to: the newest batch's, or (right after a seal) the hash
/// of the seal that dropped the batches before it, or the genesis value when no seal did.
fn chain_start(c: &Connection) -> rusqlite::Result<(i64, String)> {
    if let Some(last) = head(c)? {
        return Ok(last);
    }
    Ok((
        0,
        current_reset(c)?.map(|r| r.hash).unwrap_or_else(|| GENESIS.to_string()),
    ))
}

/// Binds the readings a transaction stored (in commit order) into the chain of batches;
/// returns the new batch's seq and hash, or `None` when there was nothing to bind.
pub fn bind(c: &Connection, now: TimestampMs, rows: &[Bound]) -> rusqlite::Result<Option<(i64, String)>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let mut h = Sha256::new();
    for r in rows {
        hash_reading(&mut h, r.sensor, r.t, r.seq, r.value, r.quality.code());
    }
    let digest = hex(&h.finalize());
    let (last, prev) = chain_start(c)?;
    // A seq at the end of the range was not written by cryowatch: refuse rather than wrap.
    let seq = last
        .checked_add(1)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(0, last))?;
    let count = rows.len() as i64;
    // The row keeps the keys and the chained hash; the batch's digest and the previous
    // hash are recomputed by whoever checks it, so they are not stored twice.
    let hash = batch_hash(&prev, seq, now, count, &digest);
    c.prepare_cached("INSERT INTO reading_batch (seq, t, count, keys, hash) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![seq, now, count, encode_keys(rows), hash])?;
    Ok(Some((seq, hash)))
}

/// The newest batch: (seq, hash), to publish beside the audit head.
pub fn head(c: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    c.prepare_cached("SELECT seq, hash FROM reading_batch ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// The hash batch `seq` carries now, if it exists.
pub fn hash_at(c: &Connection, seq: i64) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT hash FROM reading_batch WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()
}

/// Count and SHA-256 of every reading with `t >= from`, in key order: what a seal records
/// as still open.
pub fn open_digest(
    c: &Connection,
    from: TimestampMs,
    skip: &HashSet<(i64, TimestampMs, i64)>,
) -> rusqlite::Result<(i64, String)> {
    let mut rows =
        c.prepare_cached("SELECT t, seq, value, quality FROM reading WHERE sensor = ?1 AND t >= ?2 ORDER BY t, seq")?;
    let mut h = Sha256::new();
    let mut count = 0i64;
    for id in super::seal::reading_sensors(c)? {
        let mut q = rows.query(params![id, from])?;
        while let Some(r) = q.next()? {
            let (t, seq) = (int(r.get_ref(0)?), int(r.get_ref(1)?));
            if skip.contains(&(id, t, seq)) {
                continue;
            }
            hash_stored(&mut h, id, t, seq, r.get_ref(2)?, r.get_ref(3)?);
            count += 1;
        }
    }
    Ok((count, hex(&h.finalize())))
}

/// A key column as stored: text written into it by hand reads as a key no reading has.
pub fn int(v: ValueRef) -> i64 {
    match v {
        ValueRef::Integer(i) => i,
        _ => i64::MIN,
    }
}

/// Drops every batch after a seal covered them (the seal records what is still open).
pub fn reset(c: &Connection) -> rusqlite::Result<usize> {
    c.execute("DELETE FROM reading_batch", [])
}

/// What the newest seal recorded as open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub count: i64,
    pub hash: String,
}

/// The newest `readings.sealed` record as the batches need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    pub record: i64,
    pub hash: String,
    /// End of the block it sealed.
    pub to: TimestampMs,
    /// `None` for seals written before readings were bound at commit.
    pub open: Option<Open>,
}

impl Reset {
    /// Reads a `readings.sealed` record's detail.
    pub fn from_detail(record: i64, hash: &str, detail: &str) -> Option<Reset> {
        let d: serde_json::Value = serde_json::from_str(detail).ok()?;
        let open = match &d["open"] {
            serde_json::Value::Null => None,
            o => Some(Open {
                count: o["count"].as_i64()?,
                hash: o["hash"].as_str()?.to_string(),
            }),
        };
        Some(Reset {
            record,
            hash: hash.to_string(),
            to: d["to"].as_i64()?,
            open,
        })
    }
}

/// The newest `readings.sealed` record that recorded what stayed open and dropped the
/// batches before it: the batches since chain from it. (Seals made while catching up on
/// several blocks at once, and seals from before readings were bound at commit, leave
/// the batches as they are.)
pub fn current_reset(c: &Connection) -> rusqlite::Result<Option<Reset>> {
    c.prepare_cached(
        "SELECT seq, hash, detail FROM audit WHERE kind = 'readings.sealed' AND json_type(detail, '$.open') IS NOT NULL
         ORDER BY seq DESC LIMIT 1",
    )?
    .query_row([], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })
    .optional()
    .map(|found| found.and_then(|(seq, hash, detail)| Reset::from_detail(seq, &hash, &detail)))
}

/// What [`check_open`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenCheck {
    pub batches: i64,
    /// Readings proven by the batches and by the newest seal's open record.
    pub bound: i64,
    /// Readings not sealed and not bound (stored before this version bound readings at
    /// commit); they are sealed with their block.
    pub unbound: i64,
    /// The newest batch: (seq, hash).
    pub head: Option<(i64, String)>,
    /// The first problem, as a sentence.
    pub problem: Option<String>,
}

/// Checks every reading newer than `sealed_until` (the end of the newest sealed block)
/// against the batches and `reset` (the newest `readings.sealed` record, if any).
pub fn check_open(c: &Connection, reset: Option<&Reset>, sealed_until: TimestampMs) -> rusqlite::Result<OpenCheck> {
    check(c, reset, sealed_until, None, true)
}

/// [`check_open`] when the readings outside the batches need no counting: proven against
/// the newest seal's open record when it is the one they follow, skipped (not counted)
/// otherwise — what a seal needs, at the cost of the batches and one block.
pub fn check_batches(c: &Connection, reset: Option<&Reset>, sealed_until: TimestampMs) -> rusqlite::Result<OpenCheck> {
    check(c, reset, sealed_until, None, false)
}

/// Checks only the batches committed after batch `since` (seq, hash) — a look between
/// two full checks, whose cost follows what was committed meanwhile, not how much is
/// open. The readings not in batches (what the newest seal left open) are not rechecked.
pub fn check_new(c: &Connection, since: &(i64, String)) -> rusqlite::Result<OpenCheck> {
    check(c, None, TimestampMs::MAX, Some(since), false)
}

fn check(
    c: &Connection,
    reset: Option<&Reset>,
    sealed_until: TimestampMs,
    since: Option<&(i64, String)>,
    count_unbound: bool,
) -> rusqlite::Result<OpenCheck> {
    let mut out = OpenCheck::default();
    let (mut expected_seq, mut prev) = match since {
        Some((seq, hash)) => (seq + 1, hash.clone()),
        None => (1, reset.map(|r| r.hash.clone()).unwrap_or_else(|| GENESIS.to_string())),
    };
    let mut seen: HashSet<(i64, TimestampMs, i64)> = HashSet::new();
    let mut reading =
        c.prepare_cached("SELECT value, quality FROM reading WHERE sensor = ?1 AND t = ?2 AND seq = ?3")?;
    let mut st =
        c.prepare_cached("SELECT seq, t, count, keys, hash FROM reading_batch WHERE seq >= ?1 ORDER BY seq")?;
    let mut rows = st.query([expected_seq])?;
    while let Some(r) = rows.next()? {
        let (seq, t, count) = (int(r.get_ref(0)?), int(r.get_ref(1)?), int(r.get_ref(2)?));
        let keys: Vec<u8> = match r.get_ref(3)? {
            ValueRef::Blob(b) => b.to_vec(),
            _ => Vec::new(),
        };
        let text = |i: usize| -> rusqlite::Result<String> {
            Ok(match r.get_ref(i)? {
                ValueRef::Text(b) => String::from_utf8_lossy(b).into_owned(),
                v => format!("{v:?}"),
            })
        };
        let bhash = text(4)?;
        let when = format_rfc3339(t);
        let fail = |what: String| -> rusqlite::Result<OpenCheck> {
            Ok(OpenCheck {
                problem: Some(what),
                ..OpenCheck::default()
            })
        };
        if seq != expected_seq {
            return fail(format!(
                "batch {expected_seq} of readings committed since the last seal is missing: the batches jump to {seq} (committed readings were deleted with their batch)"
            ));
        }
        let Some(keys) = decode_keys(&keys).filter(|k| k.len() as i64 == count) else {
            return fail(format!(
                "batch {seq} of readings (committed {when}) lists its readings unreadably"
            ));
        };
        let mut h = Sha256::new();
        for &(sensor, rt, rseq) in &keys {
            let found: Option<(rusqlite::types::Value, rusqlite::types::Value)> = reading
                .query_row(params![sensor, rt, rseq], |q| Ok((q.get(0)?, q.get(1)?)))
                .optional()?;
            let Some((value, quality)) = found else {
                return fail(format!(
                    "a reading committed {when} (batch {seq}: sensor id {sensor}, {}) was deleted",
                    format_rfc3339(rt)
                ));
            };
            hash_stored(&mut h, sensor, rt, rseq, (&value).into(), (&quality).into());
            seen.insert((sensor, rt, rseq));
        }
        // The readings as stored, hashed into the chain from the batch before: the batch's
        // own hash unless a reading, the batch or the order of batches was changed.
        if batch_hash(&prev, seq, t, count, &hex(&h.finalize())) != bhash {
            return fail(format!(
                "a reading committed {when} (batch {seq}, {count} readings) was altered, or the batch itself: they no longer match the chain of batches"
            ));
        }
        out.batches += 1;
        out.bound += count;
        out.head = Some((seq, bhash.clone()));
        prev = bhash;
        expected_seq += 1;
    }
    if since.is_some() {
        return Ok(out);
    }
    // Everything else not sealed yet must be what the newest seal left open.
    match reset.and_then(|r| r.open.as_ref().map(|o| (r, o))) {
        Some((r, open)) if r.to == sealed_until => {
            let (count, hash) = open_digest(c, sealed_until, &seen)?;
            if count != open.count || hash != open.hash {
                let how = match count.cmp(&open.count) {
                    std::cmp::Ordering::Less => format!("{} readings were deleted", open.count - count),
                    std::cmp::Ordering::Greater => format!("{} readings were added", count - open.count),
                    std::cmp::Ordering::Equal => "a reading was altered".to_string(),
                };
                out.problem = Some(format!(
                    "readings newer than {} no longer match what record {} and the batches since recorded: {how}",
                    format_rfc3339(sealed_until),
                    r.record
                ));
                return Ok(out);
            }
            out.bound += count;
        }
        _ if count_unbound => {
            let (count, _) = open_digest(c, sealed_until, &seen)?;
            out.unbound = count;
        }
        _ => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_a_truncated_list_is_refused() {
        let rows = [
            Bound {
                sensor: 3,
                t: -5,
                seq: 0,
                value: None,
                quality: Quality::Stale,
            },
            Bound {
                sensor: i64::MAX,
                t: 1_700_000_000_000,
                seq: 2,
                value: Some(1.5),
                quality: Quality::Good,
            },
            Bound {
                sensor: i64::MIN,
                t: i64::MIN,
                seq: i64::MAX,
                value: None,
                quality: Quality::Good,
            },
            Bound {
                sensor: 4,
                t: 1_700_000_000_250,
                seq: 0,
                value: None,
                quality: Quality::Good,
            },
        ];
        let keys = encode_keys(&rows);
        assert_eq!(
            decode_keys(&keys),
            Some(vec![
                (3, -5, 0),
                (i64::MAX, 1_700_000_000_000, 2),
                (i64::MIN, i64::MIN, i64::MAX),
                (4, 1_700_000_000_250, 0)
            ])
        );
        assert_eq!(decode_keys(&keys[..keys.len() - 1]), None, "cut inside a varint");
        assert_eq!(decode_keys(&[0xff; 11]), None, "longer than 64 bits");
    }

    #[test]
    fn a_second_of_readings_of_many_sensors_takes_a_few_bytes_a_key() {
        let rows: Vec<Bound> = (1..=1000)
            .map(|sensor| Bound {
                sensor,
                t: 1_800_000_000_000,
                seq: 0,
                value: None,
                quality: Quality::Good,
            })
            .collect();
        let per_key = encode_keys(&rows).len() as f64 / rows.len() as f64;
        assert!(per_key <= 3.1, "{per_key} bytes a key");
    }

    #[test]
    fn a_batch_hash_covers_every_field_and_its_predecessor() {
        let base = batch_hash(GENESIS, 1, 10, 2, "ab");
        assert_ne!(base, batch_hash(GENESIS, 2, 10, 2, "ab"));
        assert_ne!(base, batch_hash(GENESIS, 1, 11, 2, "ab"));
        assert_ne!(base, batch_hash(GENESIS, 1, 10, 3, "ab"));
        assert_ne!(base, batch_hash(GENESIS, 1, 10, 2, "ac"));
        assert_ne!(base, batch_hash(&base, 1, 10, 2, "ab"));
    }
}
