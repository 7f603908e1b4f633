//! The calibration register: each probe's calibration certificates, signed with meaning
//! `calibration` by the person who records them, in one transaction with the signature
//! and its audit record (`calibration.recorded`). `audit verify` (`verify`) checks
//! every record still hashes to what was signed and none was added or removed by hand.
//!
//! The newest record of a sensor gives its due date; [`crate::config::calibration`]
//! turns the days left into readings and alarms.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use super::{Meaning, Signed, Signer, record_signature, sha256};
use crate::model::TimestampMs;
use crate::store::{Store, StoreError};

/// Schema: the calibration register.
pub(crate) const MIGRATION: &str = "
    CREATE TABLE calibration (
        id          INTEGER PRIMARY KEY,
        t           INTEGER NOT NULL,
        sensor      TEXT NOT NULL,
        certificate TEXT NOT NULL,
        calibrated  TEXT NOT NULL,
        due         TEXT NOT NULL,
        due_at      INTEGER NOT NULL,
        as_found    REAL,
        as_left     REAL,
        reference   TEXT NOT NULL,
        offset      REAL,
        signature   INTEGER NOT NULL
    );
    CREATE INDEX calibration_sensor ON calibration (sensor, id);";

/// A calibration to record (its dates as written, `YYYY-MM-DD`, checked by the caller).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewCalibration {
    pub sensor: String,
    pub certificate: String,
    pub calibrated: String,
    pub due: String,
    /// The start of the due date in the site's time zone.
    pub due_at: TimestampMs,
    pub as_found: Option<f64>,
    pub as_left: Option<f64>,
    /// The reference instrument the probe was compared against.
    pub reference: String,
    /// The offset the certificate asks for (it stays configuration: `offset` of the
    /// sensor; the record says which one was asked for).
    pub offset: Option<f64>,
}

/// A calibration as recorded, with its signature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub id: i64,
    pub t: TimestampMs,
    #[serde(flatten)]
    pub record: NewCalibration,
    pub signed_by: String,
    pub printed_name: String,
    pub content_sha256: String,
}

/// The exact content a calibration's signature covers, its recording time included
/// (from then on the certificate is in force).
fn content(id: i64, t: TimestampMs, r: &NewCalibration) -> String {
    json!([
        "calibration",
        id,
        t,
        r.sensor,
        r.certificate,
        r.calibrated,
        r.due,
        r.due_at,
        r.as_found,
        r.as_left,
        r.reference,
        r.offset
    ])
    .to_string()
}

const COLUMNS: &str = "c.id, c.t, c.sensor, c.certificate, c.calibrated, c.due, c.due_at, c.as_found, c.as_left,
     c.reference, c.offset, s.user, s.printed_name, s.content_sha256";

fn row(r: &rusqlite::Row) -> rusqlite::Result<Calibration> {
    Ok(Calibration {
        id: r.get(0)?,
        t: r.get(1)?,
        record: NewCalibration {
            sensor: r.get(2)?,
            certificate: r.get(3)?,
            calibrated: r.get(4)?,
            due: r.get(5)?,
            due_at: r.get(6)?,
            as_found: r.get(7)?,
            as_left: r.get(8)?,
            reference: r.get(9)?,
            offset: r.get(10)?,
        },
        signed_by: r.get(11)?,
        printed_name: r.get(12)?,
        content_sha256: r.get(13)?,
    })
}

fn record(c: &Connection, signer: &Signer, new: &NewCalibration, now: TimestampMs) -> rusqlite::Result<Calibration> {
    let id: i64 = c.query_row("SELECT coalesce(max(id), 0) + 1 FROM calibration", [], |r| r.get(0))?;
    let subject = format!("calibration {id}");
    let text = content(id, now, new);
    let signed = Signed {
        signer,
        meaning: Meaning::Calibration,
        subject: &subject,
        content: &text,
        at: now,
    };
    let detail = serde_json::to_value(new).unwrap_or_default();
    let signature = record_signature(c, &signed, "calibration.recorded", detail, now)?;
    c.execute(
        "INSERT INTO calibration (id, t, sensor, certificate, calibrated, due, due_at, as_found, as_left, reference,
                                  offset, signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            id,
            now,
            new.sensor,
            new.certificate,
            new.calibrated,
            new.due,
            new.due_at,
            new.as_found,
            new.as_left,
            new.reference,
            new.offset,
            signature
        ],
    )?;
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM calibration c JOIN signature s ON s.id = c.signature WHERE c.id = ?1"
    ))?
    .query_row([id], row)
}

/// The first calibration record that no longer matches what was signed, or that the
/// trail does not hold, or that the trail holds and the store lost: (audit record, what
/// is wrong).
pub(super) fn verify(c: &Connection, head: i64) -> rusqlite::Result<Option<(i64, String)>> {
    let mut st = c.prepare(&format!(
        "SELECT {COLUMNS}, s.subject, s.audit FROM calibration c LEFT JOIN signature s ON s.id = c.signature ORDER BY c.id"
    ))?;
    let rows = st.query_map([], |r| {
        let subject: Option<String> = r.get(14)?;
        let audit: Option<i64> = r.get(15)?;
        let cal = match subject {
            Some(_) => Some(row(r)?),
            None => None,
        };
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(2)?, cal, subject, audit))
    })?;
    let mut seen = std::collections::HashSet::new();
    for found in rows {
        let (id, sensor, cal, subject, audit) = found?;
        seen.insert(format!("calibration {id}"));
        let Some(cal) = cal else {
            return Ok(Some((
                head,
                format!("calibration {id} of {sensor} has no signature: it was added to the store by hand"),
            )));
        };
        let audit = audit.unwrap_or(head);
        if subject.as_deref() != Some(&format!("calibration {id}")) {
            return Ok(Some((
                audit,
                format!("calibration {id} of {sensor} carries a signature of another record: it was copied"),
            )));
        }
        if sha256(&content(id, cal.t, &cal.record)) != cal.content_sha256 {
            return Ok(Some((
                audit,
                format!(
                    "calibration {id} of {sensor} no longer matches what {} signed in audit record {audit}: it was edited",
                    cal.printed_name
                ),
            )));
        }
    }
    let mut st = c.prepare("SELECT seq, subject FROM audit WHERE kind = 'calibration.recorded' ORDER BY seq")?;
    for found in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
        let (seq, subject) = found?;
        if !seen.contains(&subject) {
            return Ok(Some((
                seq,
                format!("{subject} was recorded in audit record {seq}, but it is missing from the store"),
            )));
        }
    }
    Ok(None)
}

impl Store {
    /// Records a calibration signed by `signer` (meaning `calibration`).
    pub fn record_calibration(
        &mut self,
        signer: &Signer,
        new: &NewCalibration,
        now: TimestampMs,
    ) -> Result<Calibration, StoreError> {
        self.transaction(|c| record(c, signer, new, now))
    }

    /// The id of the newest calibration record (0 when none): what changes when one is
    /// recorded.
    pub fn calibration_head(&self) -> Result<i64, StoreError> {
        self.with_conn(|c| c.query_row("SELECT coalesce(max(id), 0) FROM calibration", [], |r| r.get(0)))
    }

    /// The newest calibration of each sensor that has one.
    pub fn latest_calibrations(&self) -> Result<Vec<Calibration>, StoreError> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM calibration c JOIN signature s ON s.id = c.signature
                 WHERE c.id = (SELECT max(id) FROM calibration n WHERE n.sensor = c.sensor)
                 ORDER BY c.sensor"
            ))?;
            st.query_map([], row)?.collect()
        })
    }

    /// Every calibration of `sensor`, oldest first.
    pub fn calibrations_of(&self, sensor: &str) -> Result<Vec<Calibration>, StoreError> {
        self.with_conn(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM calibration c JOIN signature s ON s.id = c.signature
                 WHERE c.sensor = ?1 ORDER BY c.id"
            ))?;
            st.query_map([sensor], row)?.collect()
        })
    }

    /// The newest calibration of `sensor`.
    pub fn latest_calibration(&self, sensor: &str) -> Result<Option<Calibration>, StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM calibration c JOIN signature s ON s.id = c.signature
                 WHERE c.sensor = ?1 ORDER BY c.id DESC LIMIT 1"
            ))?
            .query_row([sensor], row)
            .optional()
        })
    }
}
