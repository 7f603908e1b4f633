//! The auditor's report for one asset over a period: what `cryowatch report` writes as
//! PDF, HTML or CSV. [`gather`] reads the store into an [`AssetReport`] (every figure
//! computed here, in the site's time zone); [`document`] lays it out for the renderers
//! and [`write_csv`] flattens it.
//!
//! Its parts: `gathering` reads the period (sensors, alarms with their pages and
//! acknowledgements, tests, shelvings, audit status); `daily` turns a sensor's readings
//! into days and gaps; `people` gives each person who acknowledged one name;
//! `excursion` sets each alarm beside its readings (their span
//! beyond the limit, peak or state, where an open one's data ends); `quality` adds the
//! quality record (each excursion's signed corrective action or its open deviation, and
//! every signature bound to the report's records) and lays it out; `review` the periodic
//! reviews of the period and their signatures; `calibration` the probes' certificates
//! and the spans their calibration was overdue; `alarm_check` the physical alarm checks
//! of its probes; `digest` the content hash a review
//! signs; `layout` builds the document; `csv_export` writes the CSV table.

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::model::TimestampMs;
use crate::store::audit::verify::Verification;
use crate::store::quality::CorrectiveAction;

mod alarm_check;
mod calibration;
mod csv_export;
mod daily;
mod digest;
mod excursion;
pub(crate) mod gathering;
mod layout;
pub(crate) mod people;
mod quality;
mod review;

pub use csv_export::write_csv;
pub use digest::content_sha256;
pub use gathering::gather;
pub use layout::document;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("unknown asset {0:?}; configured assets: {1}")]
    UnknownAsset(String, String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// One day of one sensor, in the site's time zone.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Day {
    pub date: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub readings: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gap {
    pub from: TimestampMs,
    pub to: TimestampMs,
}

#[derive(Debug, Clone, Serialize)]
pub struct SensorSection {
    pub id: String,
    pub quantity: String,
    pub unit: String,
    /// Good readings received in the period.
    pub received: i64,
    /// Readings the sensor's schedule calls for (poll interval), or `None` for pushed
    /// data without a schedule.
    pub expected: Option<i64>,
    /// How the expectation was set, for the reader.
    pub expectation: String,
    /// Readings whose quality was not good (communication error, sensor fault...).
    pub bad_quality: i64,
    /// Spans longer than the sensor's stale limit without a good reading.
    pub gaps: Vec<Gap>,
    pub stale_limit_ms: i64,
    pub days: Vec<Day>,
    pub thresholds: Vec<(String, f64)>,
    /// A discrete sensor's names of 0 and 1 ([`crate::config::Sensor::states`]).
    pub states: Option<[String; 2]>,
    #[serde(skip)]
    pub series: Vec<(TimestampMs, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Excursion {
    pub alarm: i64,
    pub sensor: String,
    pub rule: String,
    pub severity: String,
    pub start: TimestampMs,
    pub end: Option<TimestampMs>,
    /// The most extreme value during the excursion (highest for high and rising-rate
    /// rules, lowest for low ones); `None` for a discrete sensor, which has `state`.
    pub peak: Option<f64>,
    /// For a discrete sensor: the name of the state the alarm is about ("OPEN").
    pub state: Option<String>,
    /// The first and last reading beyond the rule's limit (or in its state): the
    /// readings' own span, which the rule's delay and hysteresis shift the alarm from.
    pub readings_out: Option<(TimestampMs, TimestampMs)>,
    /// For an alarm still open: the sensor's last reading in the period.
    pub data_end: Option<TimestampMs>,
    pub pages_sent: i64,
    pub pages_delivered: i64,
    pub acked_by: Option<String>,
    pub acked_at: Option<TimestampMs>,
    pub ack_comment: Option<String>,
    pub ack_path: Option<String>,
    pub suppressed: Option<String>,
    pub test: bool,
    /// The signed corrective action that closed the excursion, if one did.
    pub corrective: Option<CorrectiveAction>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlarmTest {
    pub id: i64,
    pub sensor: String,
    pub started_at: TimestampMs,
    pub by: String,
    pub result: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Suppression {
    pub kind: String,
    pub sensor: String,
    pub from: Option<TimestampMs>,
    pub until: Option<TimestampMs>,
    pub by: String,
    pub reason: String,
}

/// An electronic signature bound to one of the report's records.
#[derive(Debug, Clone, Serialize)]
pub struct Signature {
    pub t: TimestampMs,
    pub user: String,
    pub printed_name: String,
    pub meaning: String,
    /// The record signed, as stored (`alarm 12`).
    pub subject: String,
    /// The record signed, as people read it (`alarm 12 (dewar-1.temp high)`).
    pub signed: String,
    pub content_sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AssetReport {
    pub site: String,
    pub asset: String,
    pub asset_name: String,
    pub asset_kind: String,
    pub location: String,
    pub from: TimestampMs,
    pub to: TimestampMs,
    pub timezone: String,
    pub generated_at: TimestampMs,
    pub generated_by: String,
    pub version: String,
    pub sensors: Vec<SensorSection>,
    pub excursions: Vec<Excursion>,
    pub tests: Vec<AlarmTest>,
    pub suppressions: Vec<Suppression>,
    /// Every electronic signature bound to the report's records, in the order made.
    pub signatures: Vec<Signature>,
    /// The probes' calibration certificates in force during the period.
    pub calibrations: Vec<calibration::Certificate>,
    /// The physical alarm checks of the asset's probes started in the period.
    pub alarm_checks: Vec<crate::store::quality::alarm_check::AlarmCheck>,
    /// The periodic reviews whose period overlaps the report's, oldest first.
    pub reviews: Vec<crate::store::quality::review::Review>,
    pub audit: Verification,
    #[serde(skip)]
    pub tz: TimeZone,
}

/// What to report on, and for whom.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub asset: &'a str,
    pub from: TimestampMs,
    pub to: TimestampMs,
    pub now: TimestampMs,
    /// Who generates the report (printed on it).
    pub by: &'a str,
}

pub(crate) fn fmt_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m {:02}s", s / 60, s % 60)
    }
}

/// What the audit trail's verification proves, in the words `audit verify` uses: the
/// chain, how far the readings are sealed, and how many newer readings await a seal.
/// `time` formats a moment for the output at hand.
pub(crate) fn integrity(v: &Verification, time: impl Fn(TimestampMs) -> String) -> String {
    if let Some(p) = &v.problem {
        return format!("Audit trail BROKEN at record {}: {}", p.record, p.what);
    }
    let mut out = format!(
        "Audit trail intact: {} records, head record {} hash {}. ",
        v.records, v.head_seq, v.head_hash
    );
    match v.sealed_until {
        Some(until) => out.push_str(&format!(
            "Readings verified against their seals up to {} ({} readings in {} sealed blocks)",
            time(until),
            v.sealed_readings,
            v.blocks
        )),
        None => out.push_str("No readings sealed yet"),
    }
    if v.unsealed_readings == 0 {
        out.push_str("; no newer reading awaits its seal.");
        return out;
    }
    let after = if v.sealed_until.is_some() { " after it" } else { "" };
    out.push_str(&format!("; {} readings{after} not yet sealed", v.unsealed_readings));
    match v.unsealed_readings - v.bound_readings {
        0 => out.push_str(&format!(
            ", all verified against the {} batches they were committed in.",
            v.batches
        )),
        n if n == v.unsealed_readings => out.push_str(", proven once sealed."),
        n => out.push_str(&format!(
            ": {} verified against the {} batches they were committed in, {n} proven once sealed.",
            v.bound_readings, v.batches
        )),
    }
    out
}
