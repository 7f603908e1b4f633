//! The report flattened into one CSV table, one row per day, gap, excursion, test,
//! suppression and the audit status.

use super::AssetReport;

/// One CSV table: `record` says what each row is (`day`, `gap`, `excursion`, `test`,
/// `suppression`, `audit`); times are RFC 3339 UTC.
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
        let detail = format!(
            "alarm {} {} {}{state}{readings}{open}; pages sent {} delivered {}; acknowledged by {} at {} via {}: {}{}",
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
    let audit = super::integrity(&r.audit, utc);
    writeln!(out, "audit,,{},,,,,,,{}", utc(r.generated_at), q(&audit))?;
    Ok(())
}
