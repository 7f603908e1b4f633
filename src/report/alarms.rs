//! `cryowatch alarms`: the alarm list, as a table or JSON.

use std::io::Write;

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
    pub acknowledged_by: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub cleared_at: Option<String>,
    pub suppressed: Option<&'a str>,
    pub incident: Option<i64>,
    pub latched: bool,
}

pub fn lines(rows: &[AlarmRow]) -> Vec<AlarmLine<'_>> {
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
            l.value.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
            crate::escape::control(l.acknowledged_by.unwrap_or("-")),
            crate::escape::control(note.trim_end())
        )?;
    }
    if lines.is_empty() {
        writeln!(out, "(no alarms)")?;
    }
    Ok(())
}
