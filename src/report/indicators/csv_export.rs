//! The quality figures as one CSV table: first every figure of every month and asset,
//! then every record they count, so each figure can be recounted from the rows beneath.

use super::{AckStats, Counted, Indicators, Summary};
use crate::report::history::csv_field as q;

/// The header of [`write_csv`]'s table.
pub const HEADER: &str = "figure,month,asset,rule,contact,hour,value,of,record,detail";

/// Writes the table under [`HEADER`]. A row with an empty `record` is a figure of its
/// month and asset (`rule`, `contact` or `hour` set when it is broken down by one):
///
/// - `alarms`, `excursions`, `excursion_minutes`, `not_acknowledged`, `escalations`,
///   `undeliverable`, `fallbacks`, `nuisance`, `open_deviations`,
///   `oldest_deviation_days`, `alarm_tests`, `test_pages_done`, `test_pages_due`,
///   `test_pages_due_done`, `alarm_checks`, `alarm_checks_passed`, `alarm_checks_due`,
///   `alarm_checks_due_done`, `readings`, `readings_expected`, `completeness_percent`;
/// - `ack_count`, `ack_p50_s`, `ack_p90_s`, `ack_max_s`: time to acknowledge in seconds
///   (nearest-rank percentiles), overall, by `contact` and by `hour`.
///
/// A row with a `record` is one record counted, under its figure's singular name (see
/// [`super::Figure`]): `alarm`, `excursion` (value: minutes), `ack` (seconds),
/// `not_acknowledged`, `escalation` (highest step), `undeliverable`, `fallback`,
/// `nuisance` (seconds active), `open_deviation` (age in days), `alarm_test`,
/// `test_page`, `test_page_due` (1 delivered, 0 not), `alarm_check` (1 passed, 0 failed
/// or abandoned), `alarm_check_due` (1 done, 0 not), `readings` (stored, `of` expected),
/// `calibration` (1 in force, 0 overdue or never).
pub fn write_csv(r: &Indicators, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for s in &r.summaries {
        for row in summary_rows(s) {
            writeln!(out, "{row}")?;
        }
    }
    for c in &r.records {
        writeln!(out, "{}", record_row(c))?;
    }
    Ok(())
}

fn record_row(c: &Counted) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{},{}",
        c.figure.as_str(),
        q(&c.month),
        q(&c.asset),
        q(&c.rule),
        q(&c.contact),
        c.hour.map_or_else(String::new, |h| h.to_string()),
        c.value,
        c.of.map_or_else(String::new, |o| o.to_string()),
        q(&c.record),
        q(&c.detail)
    )
}

/// The figure rows of one month and asset.
fn summary_rows(s: &Summary) -> Vec<String> {
    let mut rows = Vec::new();
    let mut row = |figure: &str, (rule, contact, hour): (&str, &str, String), value: String| {
        rows.push(format!(
            "{figure},{},{},{},{},{hour},{value},,,",
            q(&s.month),
            q(&s.asset),
            q(rule),
            q(contact)
        ));
    };
    let all = || ("", "", String::new());
    let n = |v: usize| v.to_string();
    row("alarms", all(), n(s.alarms));
    for (rule, c) in &s.alarms_by_rule {
        row("alarms", (rule, "", String::new()), n(*c));
    }
    row("excursions", all(), n(s.excursions));
    row("excursion_minutes", all(), s.excursion_minutes.to_string());
    let mut ack = |by: (&str, &str, String), a: &AckStats| {
        row("ack_count", by.clone(), n(a.count));
        row("ack_p50_s", by.clone(), a.p50.to_string());
        row("ack_p90_s", by.clone(), a.p90.to_string());
        row("ack_max_s", by, a.max.to_string());
    };
    if let Some(a) = &s.ack {
        ack(all(), a);
    }
    for (contact, a) in &s.ack_by_contact {
        ack(("", contact, String::new()), a);
    }
    for (hour, a) in &s.ack_by_hour {
        ack(("", "", hour.to_string()), a);
    }
    row("not_acknowledged", all(), n(s.not_acknowledged));
    row("escalations", all(), n(s.escalations));
    row("undeliverable", all(), n(s.undeliverable));
    row("fallbacks", all(), n(s.fallbacks));
    row("nuisance", all(), n(s.nuisance));
    for (rule, c) in &s.nuisance_by_rule {
        row("nuisance", (rule, "", String::new()), n(*c));
    }
    row("open_deviations", all(), n(s.open_deviations));
    if let Some(d) = s.oldest_deviation_days {
        row("oldest_deviation_days", all(), d.to_string());
    }
    row("alarm_tests", all(), n(s.alarm_tests));
    row("test_pages_done", all(), n(s.test_pages_done));
    row("test_pages_due", all(), n(s.test_pages_due));
    row("test_pages_due_done", all(), n(s.test_pages_due_done));
    row("alarm_checks", all(), n(s.alarm_checks));
    row("alarm_checks_passed", all(), n(s.alarm_checks_passed));
    row("alarm_checks_due", all(), n(s.alarm_checks_due));
    row("alarm_checks_due_done", all(), n(s.alarm_checks_due_done));
    row("readings", all(), s.readings.to_string());
    row("readings_expected", all(), s.readings_expected.to_string());
    if let Some(p) = s.completeness() {
        row("completeness_percent", all(), p.to_string());
    }
    rows
}
