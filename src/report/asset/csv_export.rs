//! The report flattened into one CSV table, one row per day, gap, excursion, corrective
//! action, test, suppression, signature, calibration, alarm check, review and the audit
//! status.

use super::AssetReport;
use super::quality::{Deviation, OPEN_DEVIATION, deviation, signer};

/// One CSV table under the header `record,sensor,start,end,min,max,mean,readings,expected,detail`;
/// `record` says what each row is:
///
/// - `day`: a sensor's day in the site's time zone (min, max, mean, readings);
/// - `completeness`: a sensor's good readings against those expected over the period;
/// - `gap`: a span without a good reading longer than the sensor's stale limit;
/// - `excursion`: an alarm (`start` raised, `end` cleared, `max` its peak), its pages and
///   acknowledgement, and, once cleared, whether it is closed or an open deviation;
/// - `corrective_action`: the signed corrective action that closed an excursion (`start`
///   when it was signed; reason code and text, action, impact, comment, signer);
/// - `test`: an alarm test and its result;
/// - `suppression`: a shelving or maintenance window;
/// - `signature`: an electronic signature bound to the report's records (`start` when it
///   was made; printed name, user, meaning, what was signed, content SHA-256);
/// - `calibration`: a probe's certificate in force during the period (`start`..`end`:
///   the span its calibration was overdue, when it was; readings in it are flagged);
/// - `alarm_check`: a physical alarm check started in the period, one row per rule that
///   triggered (`start` the check's start, `end` the trigger; set point, trigger value,
///   reference, difference, result, who);
/// - `review`: a periodic review whose period overlaps the report's (`start` and `end`
///   its period; version, the reviewed report's SHA-256, status), each of its signatures
///   a `signature` row after it;
/// - `audit`: what the audit trail's verification proves (`start` when the report was
///   generated).
///
/// Times are RFC 3339 UTC.
pub fn write_csv(r: &AssetReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    use crate::model::format_rfc3339 as utc;
    let q = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    writeln!(out, "record,sensor,start,end,min,max,mean,readings,expected,detail")?;
    for s in &r.sensors {
        for d in &s.days {
            writeln!(
                out,
                "day,{},{},,{},{},{},{},,",
                q(&s.id),
                d.date,
                d.min.map(|v| v.to_string()).unwrap_or_default(),
                d.max.map(|v| v.to_string()).unwrap_or_default(),
                d.mean.map(|v| v.to_string()).unwrap_or_default(),
                d.readings
            )?;
        }
        writeln!(
            out,
            "completeness,{},{},{},,,,{},{},{}",
            q(&s.id),
            utc(r.from),
            utc(r.to),
            s.received,
            s.expected.map(|e| e.to_string()).unwrap_or_default(),
            q(&format!("bad quality {}; {}", s.bad_quality, s.expectation))
        )?;
        for g in &s.gaps {
            writeln!(out, "gap,{},{},{},,,,,,", q(&s.id), utc(g.from), utc(g.to))?;
        }
    }
    for e in &r.excursions {
        let readings = match e.readings_out {
            Some((first, last)) => format!("; readings out of limit {} to {}", utc(first), utc(last)),
            None => String::new(),
        };
        let open = match (e.end, e.data_end) {
            (None, Some(last)) => format!("; open at end of data (last reading {})", utc(last)),
            (None, None) => "; open at end of data".into(),
            _ => String::new(),
        };
        let state = e.state.as_ref().map(|s| format!("; state {s}")).unwrap_or_default();
        let closing = match deviation(e) {
            Some(Deviation::Closed(_)) => "; closed by a signed corrective action".to_string(),
            Some(Deviation::Open) => format!("; {OPEN_DEVIATION}"),
            None => String::new(),
        };
        let detail = format!(
            "alarm {} {} {}{state}{readings}{open}; pages sent {} delivered {}; acknowledged by {} at {} via {}: {}{}{closing}",
            e.alarm,
            e.rule,
            e.severity,
            e.pages_sent,
            e.pages_delivered,
            e.acked_by.as_deref().unwrap_or("-"),
            e.acked_at.map(utc).unwrap_or_default(),
            e.ack_path.as_deref().unwrap_or("-"),
            e.ack_comment.as_deref().unwrap_or(""),
            if e.test { " (test)" } else { "" }
        );
        writeln!(
            out,
            "excursion,{},{},{},,{},,,,{}",
            q(&e.sensor),
            utc(e.start),
            e.end.map(utc).unwrap_or_default(),
            e.peak.map(|v| v.to_string()).unwrap_or_default(),
            q(&detail)
        )?;
    }
    for (e, ca) in r.excursions.iter().filter_map(|e| match deviation(e) {
        Some(Deviation::Closed(ca)) => Some((e, ca)),
        _ => None,
    }) {
        let detail = format!(
            "alarm {}; reason {} ({}); action: {}; impact: {}; comment: {}; signed by {}, meaning {}",
            e.alarm,
            ca.reason,
            ca.reason_text,
            ca.action,
            ca.impact,
            ca.comment,
            signer(&ca.printed_name, &ca.signed_by),
            ca.meaning
        );
        writeln!(
            out,
            "corrective_action,{},{},,,,,,,{}",
            q(&e.sensor),
            utc(ca.t),
            q(&detail)
        )?;
    }
    for t in &r.tests {
        writeln!(
            out,
            "test,{},{},,,,,,,{}",
            q(&t.sensor),
            utc(t.started_at),
            q(&format!("{} by {}: {}", t.result, t.by, t.detail))
        )?;
    }
    for s in &r.suppressions {
        writeln!(
            out,
            "suppression,{},{},{},,,,,,{}",
            q(&s.sensor),
            s.from.map(utc).unwrap_or_default(),
            s.until.map(utc).unwrap_or_default(),
            q(&format!("{} by {}: {}", s.kind, s.by, s.reason))
        )?;
    }
    for s in &r.signatures {
        let detail = format!(
            "{}; meaning {}; signed {}; content sha256 {}",
            signer(&s.printed_name, &s.user),
            s.meaning,
            s.signed,
            s.content_sha256
        );
        writeln!(out, "signature,,{},,,,,,,{}", utc(s.t), q(&detail))?;
    }
    super::calibration::write_csv(r, out, q)?;
    super::alarm_check::write_csv(r, out, q)?;
    super::review::write_csv(r, out, q)?;
    let audit = super::integrity(&r.audit, utc);
    writeln!(out, "audit,,{},,,,,,,{}", utc(r.generated_at), q(&audit))?;
    Ok(())
}
