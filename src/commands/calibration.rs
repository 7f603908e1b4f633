//! `calibration`: the calibration register (see [`crate::calibration`]): record a probe's
//! calibration, signed with the recorder's password, and list every probe's status.

use std::path::Path;

use super::{CommandError, load_for_reading, read_password};
use crate::config::{Config, SensorSource};
use crate::escape::control;
use crate::model::now_ms;
use crate::store::Store;
use crate::store::quality::calibration::NewCalibration;

/// What `calibration record` records besides the sensor and the signer.
pub struct RecordArgs<'a> {
    pub sensor: &'a str,
    pub certificate: &'a str,
    pub calibrated: &'a str,
    pub due: &'a str,
    pub as_found: Option<f64>,
    pub as_left: Option<f64>,
    pub reference: &'a str,
    pub offset: Option<f64>,
}

fn date(flag: &str, text: &str) -> Result<jiff::civil::Date, CommandError> {
    text.trim().parse::<jiff::civil::Date>().map_err(|e| {
        CommandError::BadInput(format!(
            "--{flag}: expected a date like 2026-11-30, found {text:?} ({e})"
        ))
    })
}

/// A written sensor of `cfg` named `id`.
fn probe<'a>(cfg: &'a Config, id: &str) -> Result<&'a crate::config::Sensor, CommandError> {
    cfg.sensors
        .iter()
        .find(|s| s.id == id && !s.source.is_own())
        .ok_or_else(|| CommandError::BadInput(format!("--sensor: unknown sensor {id:?}")))
}

/// `calibration record`: records a calibration of `args.sensor` signed by dashboard user
/// `by`, whose password is read from standard input. Bad input (exit 2, nothing
/// recorded): an unknown sensor, a date that is not one, a due date not after the
/// calibration, a calibration in the future. A wrong password records nothing, is
/// audited, and fails (exit 1).
pub fn record(config: &Path, by: &str, args: &RecordArgs<'_>) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let bad = CommandError::BadInput;
    let sensor = probe(&cfg, args.sensor)?;
    let calibrated = date("calibrated", args.calibrated)?;
    let due = date("due", args.due)?;
    if due <= calibrated {
        return Err(bad(format!("--due {due} must be after --calibrated {calibrated}")));
    }
    let tz = &cfg.site.timezone;
    let today = jiff::Timestamp::from_millisecond(now_ms())
        .map(|t| t.to_zoned(tz.clone()).date())
        .map_err(|e| CommandError::Failed(format!("the clock: {e}")))?;
    if calibrated > today {
        return Err(bad(format!(
            "--calibrated {calibrated} is in the future (today is {today})"
        )));
    }
    let certificate = args.certificate.trim();
    crate::pipeline::control::checked_text(certificate).map_err(|e| bad(format!("--certificate: {e}")))?;
    if certificate.is_empty() {
        return Err(bad("--certificate: name the calibration certificate".into()));
    }
    crate::pipeline::control::checked_text(args.reference).map_err(|e| bad(format!("--reference: {e}")))?;
    for (flag, v) in [
        ("as-found", args.as_found),
        ("as-left", args.as_left),
        ("offset", args.offset),
    ] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(bad(format!("--{flag}: not a number")));
        }
    }
    let due_at = due
        .to_zoned(tz.clone())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|e| bad(format!("--due {due}: {e}")))?;
    let new = NewCalibration {
        sensor: sensor.id.clone(),
        certificate: certificate.to_string(),
        calibrated: calibrated.to_string(),
        due: due.to_string(),
        due_at,
        as_found: args.as_found,
        as_left: args.as_left,
        reference: args.reference.trim().to_string(),
        offset: args.offset,
    };
    let mut store = Store::open(&cfg.store.path)?;
    let password = read_password(&format!(
        "password of {by} (signing the calibration of {} by certificate {certificate}): ",
        sensor.id
    ))?;
    let subject = format!("calibration of {}", sensor.id);
    let signer = store
        .signer(by, &password, &subject, now_ms())?
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let done = store.record_calibration(&signer, &new, now_ms())?;
    println!(
        "calibration {} of {} recorded: certificate {}, calibrated {}, due {} ({}); signed by {} ({}) as \"calibration\", content SHA-256 {}",
        done.id,
        done.record.sensor,
        control(&done.record.certificate),
        done.record.calibrated,
        done.record.due,
        crate::calibration::status(&cfg, Some(&done), now_ms()),
        control(&done.printed_name),
        control(&done.signed_by),
        done.content_sha256
    );
    Ok(())
}

/// `calibration list`: every watched probe and every probe with a calibration on record:
/// certificate, dates, days left and status.
pub fn list(config: &Path, json: bool) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let store = Store::open_read_only(&cfg.store.path)?;
    let latest = store.latest_calibrations()?;
    let now = now_ms();
    let mut sensors: Vec<String> = cfg
        .calibration
        .iter()
        .flat_map(|c| c.sensors.iter())
        .filter_map(|&si| match cfg.sensors.get(si)?.source {
            SensorSource::Calibration(w) => cfg.sensors.get(w).map(|s| s.id.clone()),
            _ => None,
        })
        .collect();
    for c in &latest {
        if !sensors.contains(&c.record.sensor) {
            sensors.push(c.record.sensor.clone());
        }
    }
    sensors.sort();
    let rows: Vec<serde_json::Value> = sensors
        .iter()
        .map(|s| {
            let c = latest.iter().find(|c| &c.record.sensor == s);
            serde_json::json!({
                "sensor": s,
                "certificate": c.map(|c| c.record.certificate.clone()),
                "calibrated": c.map(|c| c.record.calibrated.clone()),
                "due": c.map(|c| c.record.due.clone()),
                "days_left": c.map(|c| crate::calibration::days_left(c.record.due_at, now).floor() as i64),
                "status": crate::calibration::status(&cfg, c, now),
                "as_found": c.and_then(|c| c.record.as_found),
                "as_left": c.and_then(|c| c.record.as_left),
                "reference": c.map(|c| c.record.reference.clone()),
                "offset": c.and_then(|c| c.record.offset),
                "signed_by": c.map(|c| c.signed_by.clone()),
                "printed_name": c.map(|c| c.printed_name.clone()),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no probe is watched ([calibration]) and none has a calibration on record");
        return Ok(());
    }
    for r in &rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        println!(
            "{:<24} {:<10} certificate {:<16} calibrated {:<10} due {:<10} days left {:>5}",
            control(&s("sensor")),
            s("status"),
            control(&s("certificate")),
            s("calibrated"),
            s("due"),
            r["days_left"].as_i64().map_or("-".to_string(), |d| d.to_string())
        );
    }
    Ok(())
}
