//! `cryowatch alarms`: the alarm list, as a table or JSON.

use std::io::Write;

use crate::config::Config;
use crate::model::format_rfc3339;
use crate::store::alarms::AlarmRow;

/// One line of the list: what an operator needs to act on an alarm.
#[derive(Debug, serde::Serialize)]
pub struct AlarmLine<'a> {
    pub id: i64,
    pub rule: &'a str,
    pub sensor: &'a str,
    pub asset: &'a str,
    pub severity: &'a str,
    pub state: &'a str,
    pub raised_at: String,
    pub value: Option<f64>,
    /// The value as a person reads it when the sensor is discrete (`OPEN`, `ON BATTERY`).
    pub value_name: Option<&'a str>,
    pub acknowledged_by: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub cleared_at: Option<String>,
    pub suppressed: Option<&'a str>,
    pub incident: Option<i64>,
    pub latched: bool,
}

/// The lines of `rows`; `cfg` names the states of discrete sensors.
pub fn lines<'a>(rows: &'a [AlarmRow], cfg: &'a Config) -> Vec<AlarmLine<'a>> {
    rows.iter()
        .map(|a| AlarmLine {
            id: a.id,
            rule: &a.rule,
            sensor: &a.sensor,
            asset: &a.asset,
            severity: a.severity.as_str(),
            state: a.state.as_str(),
            raised_at: format_rfc3339(a.raised_at),
            value: a.value,
            value_name: a.value.and_then(|v| cfg.state_name(&a.sensor, v)),
            acknowledged_by: a.acked_by.as_deref(),
            comment: a.ack_comment.as_deref().filter(|c| !c.is_empty()),
            cleared_at: a.cleared_at.map(format_rfc3339),
            suppressed: a.suppressed.as_deref(),
            incident: a.incident,
            latched: a.returned,
        })
        .collect()
}

pub fn write_table(lines: &[AlarmLine], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>5}  {:<13} {:<8}  {:<24} {:<18} {:<16} {:<24} {:>9}  {:<12} comment",
        "id", "state", "severity", "rule", "sensor", "asset", "raised_at", "value", "acked_by"
    )?;
    for l in lines {
        let mut note = l.comment.unwrap_or("").to_string();
        if let Some(s) = l.suppressed {
            note = format!("[suppressed: {s}] {note}");
        }
        if let Some(i) = l.incident {
            note = format!("[incident {i}] {note}");
        }
        if l.latched {
            note = format!("[latched: back to normal, needs ack] {note}");
        }
        writeln!(
            out,
            "{:>5}  {:<13} {:<8}  {:<24} {:<18} {:<16} {:<24} {:>9}  {:<12} {}",
            l.id,
            l.state,
            l.severity,
            l.rule,
            l.sensor,
            l.asset,
            l.raised_at,
            match (l.value_name, l.value) {
                (Some(name), _) => name.to_string(),
                (None, Some(v)) => format!("{v:.2}"),
                (None, None) => "-".into(),
            },
            crate::escape::control(l.acknowledged_by.unwrap_or("-")),
            crate::escape::control(note.trim_end())
        )?;
    }
    if lines.is_empty() {
        writeln!(out, "(no alarms)")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::web::testkit;

    #[test]
    fn a_discrete_sensor_s_alarm_value_is_listed_by_its_state_name() {
        let mut cfg = testkit::config();
        let row = crate::store::alarms::AlarmRow {
            value: Some(1.0),
            ..testkit::alarm(0, false)
        };
        let mut table = Vec::new();
        write_table(&lines(std::slice::from_ref(&row), &cfg), &mut table).expect("table");
        assert!(
            String::from_utf8_lossy(&table).contains(" 1.00 "),
            "a measurement keeps its number"
        );
        cfg.sensors[0].states = Some(["closed".into(), "OPEN".into()]);
        let listed = lines(std::slice::from_ref(&row), &cfg);
        assert_eq!(listed[0].value_name, Some("OPEN"));
        let mut table = Vec::new();
        write_table(&listed, &mut table).expect("table");
        let table = String::from_utf8_lossy(&table);
        assert!(table.contains(" OPEN ") && !table.contains("1.00"), "{table}");
    }
}
