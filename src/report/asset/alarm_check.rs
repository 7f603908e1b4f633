//! The physical alarm checks of a report's probes
//! ([`crate::store::quality::alarm_check`]) started in the period: for each rule that
//! triggered, its set point, the first reading beyond it, the reference thermometer's
//! reading, their difference and the result, with who did the check and who signed it.

use jiff::tz::TimeZone;

use crate::report::render::Block;
use crate::store::quality::alarm_check::{AlarmCheck, CheckState};
use crate::store::{Store, StoreError};

use super::AssetReport;
use super::layout::fmt_second;
use super::quality::signer;

/// The checks of `sensors` started in `from..to`, oldest first.
pub(super) fn gather(
    store: &Store,
    sensors: &[&str],
    from: crate::model::TimestampMs,
    to: crate::model::TimestampMs,
) -> Result<Vec<AlarmCheck>, StoreError> {
    let mut checks = store.alarm_checks_started(from, to)?;
    checks.retain(|a| sensors.contains(&a.sensor.as_str()));
    Ok(checks)
}

/// The subject a check's signature is recorded under.
pub(super) fn subject(a: &AlarmCheck) -> String {
    format!("alarm check {}", a.id)
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v}"))
}

/// A difference as printed: its sign always shown.
fn signed(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:+.2}"))
}

fn result(a: &AlarmCheck) -> String {
    match a.state {
        CheckState::Passed | CheckState::Failed => format!("{} (tolerance ±{})", a.state.as_str(), a.tolerance),
        CheckState::Running | CheckState::Abandoned => a.state.as_str().to_string(),
    }
}

fn signed_by(a: &AlarmCheck) -> String {
    match (&a.printed_name, &a.signed_by) {
        (Some(name), Some(user)) => signer(name, user),
        _ => "—".to_string(),
    }
}

/// One row per rule that triggered (the first to trigger is the one compared to the
/// reference); one row for a check in which none did.
fn rows(a: &AlarmCheck, tz: &TimeZone) -> Vec<Vec<String>> {
    let started = format!("{} by {}", fmt_second(a.started_at, tz), a.started_by);
    if a.triggers.is_empty() {
        return vec![vec![
            a.sensor.clone(),
            started,
            "—".into(),
            "no rule triggered".into(),
            num(a.reference),
            "—".into(),
            result(a),
            signed_by(a),
        ]];
    }
    a.triggers
        .iter()
        .map(|t| {
            let compared = a.rule.as_deref() == Some(t.rule.as_str());
            vec![
                a.sensor.clone(),
                started.clone(),
                format!("{} at {}", t.rule, t.threshold),
                format!("{} at {}", t.value, fmt_second(t.t, tz)),
                if compared { num(a.reference) } else { "—".into() },
                if compared { signed(a.difference) } else { "—".into() },
                if compared { result(a) } else { "not compared".into() },
                signed_by(a),
            ]
        })
        .collect()
}

/// The "Alarm checks" section; nothing when no check was started in the period.
pub(super) fn blocks(r: &AssetReport, tz: &TimeZone) -> Vec<Block> {
    if r.alarm_checks.is_empty() {
        return Vec::new();
    }
    let mut blocks = vec![
        Block::Heading("Alarm checks".into()),
        Block::Paragraph(
            "Each probe warmed (or cooled) until its rules triggered: the first stored reading beyond each \
             rule's set point, and the certified reference thermometer's reading at the first trigger, \
             compared to that rule's set point."
                .into(),
        ),
        Block::Table {
            headers: [
                "Sensor",
                "Started",
                "Rule at set point",
                "Triggered at",
                "Reference",
                "Difference",
                "Result",
                "Signed by",
            ]
            .map(String::from)
            .to_vec(),
            rows: r.alarm_checks.iter().flat_map(|a| rows(a, tz)).collect(),
            widths: None,
        },
    ];
    for a in &r.alarm_checks {
        if matches!(a.state, CheckState::Failed | CheckState::Abandoned) {
            blocks.push(Block::Verdict {
                ok: false,
                text: format!(
                    "{}: alarm check {} {}",
                    a.sensor,
                    a.id,
                    if a.state == CheckState::Failed {
                        "failed: the alarm did not trigger within tolerance of the reference thermometer"
                    } else {
                        "was abandoned: it was not finished in time and proves nothing"
                    }
                ),
            });
        }
    }
    blocks
}

/// The CSV rows: `alarm_check`, one per rule that triggered, or one per check in which
/// none did (`start` the check's start, `end` the trigger; set point, trigger value,
/// reference, difference and result in `detail`).
pub(super) fn write_csv(
    r: &AssetReport,
    out: &mut impl std::io::Write,
    q: impl Fn(&str) -> String,
) -> std::io::Result<()> {
    use crate::model::format_rfc3339 as utc;
    for a in &r.alarm_checks {
        let who = format!("started by {}; signed by {}", a.started_by, signed_by(a));
        if a.triggers.is_empty() {
            let detail = format!("alarm check {}; no rule triggered; {}; {who}", a.id, result(a));
            writeln!(
                out,
                "alarm_check,{},{},,,,,,,{}",
                q(&a.sensor),
                utc(a.started_at),
                q(&detail)
            )?;
        }
        for t in &a.triggers {
            let compared = if a.rule.as_deref() == Some(t.rule.as_str()) {
                format!(
                    "reference {}; difference {}; {}",
                    num(a.reference),
                    signed(a.difference),
                    result(a)
                )
            } else {
                "not compared".to_string()
            };
            let detail = format!(
                "alarm check {}; rule {}; set point {}; trigger value {}; {compared}; {who}",
                a.id, t.rule, t.threshold, t.value
            );
            writeln!(
                out,
                "alarm_check,{},{},{},,,,,,{}",
                q(&a.sensor),
                utc(a.started_at),
                utc(t.t),
                q(&detail)
            )?;
        }
    }
    Ok(())
}
