//! Writing readings: sensors registered, readings inserted in one transaction (a
//! redelivered reading skipped, several in one millisecond kept apart by `seq`), bound
//! into the audit trail or resealing their block, queued for the InfluxDB mirror; and
//! blocks of readings sealed when they are due.

use rusqlite::{Connection, params};

use crate::model::{Quality, TimestampMs};
use crate::store::audit::batch::Bound;

use super::{Row, Store, StoreError};

impl Store {
    /// Seals the readings of every block that ended `grace_ms` ago (see `audit::seal`).
    pub fn seal_due(
        &mut self,
        now: TimestampMs,
        interval_ms: i64,
        grace_ms: i64,
    ) -> Result<Option<crate::store::audit::seal::Sealed>, StoreError> {
        // Known to be sealed up to the horizon: no transaction just to find that out.
        if self.sealed_until > 0 && crate::store::audit::seal::horizon(now, interval_ms, grace_ms) <= self.sealed_until
        {
            return Ok(None);
        }
        let written = self.batch_head.clone();
        let sealed =
            self.transaction(|c| crate::store::audit::seal::seal_due(c, now, interval_ms, grace_ms, written.as_ref()))?;
        if let Some(s) = &sealed {
            self.sealed_until = s.to;
            if !s.more {
                // The seal recorded what stays open and dropped the batches.
                self.batch_head = None;
            }
        }
        Ok(sealed)
    }

    /// Registers the configured sensors (name → id), updating units; sensors no longer
    /// configured keep their rows so their history stays readable.
    pub fn register_sensors(&mut self, sensors: &[(String, String)]) -> Result<Vec<i64>, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let before = crate::store::audit::seal::sensors_hash(&tx).map_err(err)?;
        let mut ids = Vec::with_capacity(sensors.len());
        {
            let mut up = tx
                .prepare("INSERT INTO sensor (name, unit) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET unit = excluded.unit RETURNING id")
                .map_err(err)?;
            for (name, unit) in sensors {
                ids.push(up.query_row(params![name, unit], |r| r.get(0)).map_err(err)?);
            }
        }
        let after = crate::store::audit::seal::sensors_hash(&tx).map_err(err)?;
        if after != before {
            let list: Vec<_> = sensors.iter().map(|(n, u)| serde_json::json!([n, u])).collect();
            crate::store::audit::append(
                &tx,
                crate::model::now_ms(),
                "sensors.registered",
                "daemon",
                "sensor table",
                &serde_json::json!({ "sensors": after, "configured": list }),
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(ids)
    }

    /// Turns queueing for the InfluxDB mirror on or off. Turning it off empties the
    /// mirror's outbox and returns how many readings were waiting in it.
    pub fn set_mirror(&mut self, on: bool) -> Result<usize, StoreError> {
        let dropped = self.transaction(|c| {
            if on {
                crate::store::mirror::enable(c).map(|()| 0)
            } else {
                crate::store::mirror::disable(c)
            }
        })?;
        self.mirror = on;
        Ok(dropped)
    }

    /// Writes readings in one transaction. A source-stamped reading identical to one
    /// already stored (a redelivered message) is skipped; any other reading in the same
    /// millisecond is kept with the next `seq`.
    pub fn insert<R: Copy + Into<Row>>(&mut self, rows: &[R]) -> Result<(), StoreError> {
        self.insert_then(rows, |_, _| Ok(()))
    }

    /// The commit stage's write: `rows`, the flags of the new ones (`flags[i]` belongs
    /// to `rows[i]`) and the alarm changes `evaluate` makes of them, in one transaction.
    /// `evaluate` learns which rows were new (a redelivery is skipped) and, when
    /// `read_requests`, the requests queued for the daemon, oldest first.
    pub fn commit_readings<R: Copy + Into<Row>>(
        &mut self,
        rows: &[R],
        flags: &[Option<crate::model::Flag>],
        read_requests: bool,
        now: TimestampMs,
        evaluate: impl FnOnce(&[bool], Vec<crate::model::changes::RequestRow>) -> crate::model::changes::Changes,
    ) -> Result<(), StoreError> {
        self.insert_then(rows, |c, new| {
            let requests = if read_requests {
                crate::store::alarms::pending_requests(c)?
            } else {
                Vec::new()
            };
            let changes = evaluate(new, requests);
            for ((row, flag), _) in rows.iter().zip(flags).zip(new).filter(|(_, n)| **n) {
                if let Some(flag) = flag {
                    crate::store::flags::record(c, &(*row).into(), *flag, now)?;
                }
            }
            crate::store::alarms::write(c, &changes, now)
        })
    }

    /// Writes readings and then, in the same transaction, whatever `then` writes.
    /// `then` learns which rows were new (`true`) and which were redeliveries skipped.
    pub(in crate::store) fn insert_then<R: Copy + Into<Row>>(
        &mut self,
        rows: &[R],
        then: impl FnOnce(&Connection, &[bool]) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let res = self.insert_inner(rows, then);
        if res.is_err() {
            // The transaction rolled back: what the cache says was written was not.
            self.same_ms.clear();
        }
        res
    }

    fn insert_inner<R: Copy + Into<Row>>(
        &mut self,
        rows: &[R],
        then: impl FnOnce(&Connection, &[bool]) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut new = Vec::with_capacity(rows.len());
        let mut late = Vec::new();
        let mut bound = Vec::with_capacity(rows.len());
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO reading (sensor, t, seq, value, quality) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )
                .map_err(err)?;
            for row in rows {
                let Row {
                    sensor,
                    time: t,
                    value,
                    quality,
                    source_time,
                } = (*row).into();
                if t < self.sealed_until {
                    late.push((new.len(), t));
                }
                let key = (value.map(f64::to_bits), quality.code());
                // The newest millisecond of each sensor is remembered, so a burst of
                // readings within one millisecond needs no lookups. `None`: older than
                // that millisecond, looked up.
                let seq = match self.same_ms.get_mut(&sensor) {
                    Some((last, seen)) if *last == t => {
                        if source_time && seen.contains(&key) {
                            new.push(false);
                            continue;
                        }
                        seen.push(key);
                        Some(seen.len() - 1)
                    }
                    Some((last, _)) if *last > t => None,
                    _ => Some(0),
                };
                let stored = match seq {
                    None => insert_out_of_order(&tx, sensor, t, value, quality, source_time).map_err(err)?,
                    Some(seq)
                        if ins
                            .execute(params![sensor, t, seq as i64, value, quality.code()])
                            .map_err(err)?
                            == 0 =>
                    {
                        self.same_ms.remove(&sensor);
                        insert_out_of_order(&tx, sensor, t, value, quality, source_time).map_err(err)?
                    }
                    Some(seq) => {
                        if seq == 0 {
                            self.same_ms.insert(sensor, (t, vec![key]));
                        }
                        Some(seq as i64)
                    }
                };
                if let Some(seq) = stored {
                    let b = Bound {
                        sensor,
                        t,
                        seq,
                        value,
                        quality,
                    };
                    keep_stored(&tx, (self.mirror, self.sealed_until), &mut bound, b).map_err(err)?;
                }
                new.push(stored.is_some());
            }
        }
        // Every reading newer than the seals is bound into the record in this transaction.
        let bound = crate::store::audit::batch::bind(&tx, crate::model::now_ms(), &bound).map_err(err)?;
        // Only readings really stored (not redeliveries) change a sealed block.
        let late: Vec<TimestampMs> = late.into_iter().filter(|&(i, _)| new[i]).map(|(_, t)| t).collect();
        if !late.is_empty() {
            crate::store::audit::seal::reseal(&tx, crate::model::now_ms(), &late, None, "late readings")
                .map_err(err)?;
        }
        then(&tx, &new).map_err(err)?;
        tx.commit().map_err(err)?;
        if bound.is_some() {
            self.batch_head = bound;
        }
        Ok(())
    }
}

/// A reading was stored: queued for the InfluxDB mirror when it is on, and kept for the
/// batch digest unless it falls in a sealed block (then its block is sealed again instead).
fn keep_stored(
    tx: &Connection,
    (mirror, sealed_until): (bool, TimestampMs),
    bound: &mut Vec<Bound>,
    b: Bound,
) -> rusqlite::Result<()> {
    if mirror {
        crate::store::mirror::enqueue(tx, b.sensor, b.t, b.seq, b.value, b.quality)?;
    }
    if b.t >= sealed_until {
        bound.push(b);
    }
    Ok(())
}

/// Inserts a reading whose millisecond may already hold readings: a source-stamped one
/// is skipped when an identical one is there (a redelivered message); otherwise it is
/// stored with the next `seq`, which is returned.
fn insert_out_of_order(
    tx: &rusqlite::Transaction,
    sensor: i64,
    t: TimestampMs,
    value: Option<f64>,
    quality: Quality,
    source_time: bool,
) -> rusqlite::Result<Option<i64>> {
    let duplicate: bool = source_time
        && tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM reading WHERE sensor = ?1 AND t = ?2 AND value IS ?3 AND quality = ?4)",
            params![sensor, t, value, quality.code()],
            |r| r.get(0),
        )?;
    if duplicate {
        return Ok(None);
    }
    tx.query_row(
        "INSERT INTO reading (sensor, t, seq, value, quality)
         SELECT ?1, ?2, coalesce(max(seq) + 1, 0), ?3, ?4 FROM reading WHERE sensor = ?1 AND t = ?2
         RETURNING seq",
        params![sensor, t, value, quality.code()],
        |r| r.get(0),
    )
    .map(Some)
}
