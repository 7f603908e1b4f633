//! `cryowatch history`: one sensor's readings as CSV (`time,sensor,value,unit,quality`)
//! or a JSON array, streamed so a ten-year export does not sit in memory.

use std::io::{self, Write};

use crate::model::{TimestampMs, format_rfc3339};
use crate::store::{HistoryKey, Store, StoreError, StoredReading};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("unknown sensor {0:?}: it is not in the configuration and nothing was ever recorded for it")]
    UnknownSensor(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the output: {0}")]
    Io(#[from] io::Error),
}

pub const CSV_HEADER: &str = "time,sensor,value,unit,quality";

/// Writes the readings of `sensor` between `from` and `to` (inclusive). Returns the
/// number of rows written.
pub fn export(
    store: &Store,
    sensor: &str,
    from: TimestampMs,
    to: TimestampMs,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64, HistoryError> {
    let sensors = store.sensors()?;
    let Some((id, unit)) = sensors.get(sensor) else {
        return Err(HistoryError::UnknownSensor(sensor.to_string()));
    };
    let page = Page {
        sensor_id: *id,
        sensor,
        unit,
        start: HistoryKey::at(from),
        to,
        end: None,
    };
    export_page(store, &page, format, out)
}

/// One page of a sensor's history: from key `start` to time `to`, before key `end`.
pub struct Page<'a> {
    pub sensor_id: i64,
    pub sensor: &'a str,
    pub unit: &'a str,
    pub start: HistoryKey,
    pub to: TimestampMs,
    pub end: Option<HistoryKey>,
}

/// Writes `page` as a whole document of `format` (CSV with its header, or a JSON
/// array). Returns the number of rows written.
pub fn export_page(store: &Store, page: &Page, format: Format, out: &mut dyn Write) -> Result<u64, HistoryError> {
    let (sensor, unit) = (page.sensor, page.unit);
    let mut rows = 0u64;
    let mut failed: Option<io::Error> = None;
    match format {
        Format::Csv => writeln!(out, "{CSV_HEADER}")?,
        Format::Json => write!(out, "[")?,
    }
    store.history_page(page.sensor_id, page.start, page.to, page.end, |r| {
        let res = match format {
            Format::Csv => write_csv(out, sensor, unit, &r),
            Format::Json => write_json(out, sensor, unit, &r, rows == 0),
        };
        match res {
            Ok(()) => {
                rows += 1;
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if format == Format::Json {
        writeln!(out, "{}]", if rows > 0 { "\n" } else { "" })?;
    }
    out.flush()?;
    Ok(rows)
}

fn write_csv(out: &mut dyn Write, sensor: &str, unit: &str, r: &StoredReading) -> io::Result<()> {
    let value = r.value.map(|v| v.to_string()).unwrap_or_default();
    writeln!(
        out,
        "{},{},{},{},{}",
        format_rfc3339(r.time),
        csv_field(sensor),
        value,
        csv_field(unit),
        r.quality
    )
}

/// Quotes a field when it holds a comma, quote or line break (RFC 4180).
pub(crate) fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

fn write_json(out: &mut dyn Write, sensor: &str, unit: &str, r: &StoredReading, first: bool) -> io::Result<()> {
    let obj = serde_json::json!({
        "time": format_rfc3339(r.time),
        "sensor": sensor,
        "value": r.value,
        "unit": unit,
        "quality": r.quality.as_str(),
    });
    write!(out, "{}\n  {obj}", if first { "" } else { "," })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Quality;

    #[test]
    fn csv_has_the_contract_header_and_empty_values_for_failed_polls() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::open(&dir.path().join("h.db")).expect("open");
        let ids = store
            .register_sensors(&[("dewar-1.temp".into(), "degC".into())])
            .expect("register");
        store
            .insert(&[
                (ids[0], 1_795_420_800_123, Some(-190.5), Quality::Good),
                (ids[0], 1_795_420_801_000, None, Quality::CommError),
            ])
            .expect("insert");
        let mut out = Vec::new();
        let n = export(&store, "dewar-1.temp", 0, i64::MAX, Format::Csv, &mut out).expect("export");
        assert_eq!(n, 2);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "time,sensor,value,unit,quality\n2026-11-23T08:00:00.123Z,dewar-1.temp,-190.5,degC,good\n2026-11-23T08:00:01.000Z,dewar-1.temp,,degC,comm_error\n"
        );
        let mut json = Vec::new();
        export(&store, "dewar-1.temp", 0, i64::MAX, Format::Json, &mut json).expect("export");
        let parsed: serde_json::Value = serde_json::from_slice(&json).expect("valid json");
        assert_eq!(parsed[0]["value"], serde_json::json!(-190.5));
        assert_eq!(parsed[1]["value"], serde_json::Value::Null);
        assert!(matches!(
            export(&store, "nope", 0, 1, Format::Csv, &mut Vec::new()),
            Err(HistoryError::UnknownSensor(_))
        ));
    }
}
