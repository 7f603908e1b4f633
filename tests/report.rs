//! `cryowatch report` over a seeded store: every figure in the CSV is computed again here,
//! independently, from the readings the test wrote; the PDF renders (poppler) and carries
//! the same figures; the HTML is self-contained; bad arguments exit 2.

mod common;

use std::collections::BTreeMap;

use common::{Site, cryowatch_output, free_port, pdf_fonts, pdf_text};
use cryowatch::model::Quality;
use cryowatch::store::Store;
use rusqlite::params;

const MIN: i64 = 60_000;
const TZ: &str = "Europe/Berlin";

fn site() -> Site {
    let port = free_port();
    Site::new(&format!(
        r#"
[site]
name = "report lab"
timezone = "{TZ}"
[store]
path = "{{dir}}/cryowatch.db"
[[modbus.device]]
id = "plc"
transport = "tcp"
address = "127.0.0.1:{port}"
poll_interval = "60s"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
location = "Room 214, Bau Süd, µ-lab"
[[asset]]
id = "freezer-7"
kind = "freezer_minus80"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.modbus]
device = "plc"
register = "input"
address = 0
type = "f32"
[[sensor]]
id = "freezer-7.door"
asset = "freezer-7"
quantity = "state"
unit = "open"
[sensor.modbus]
device = "plc"
register = "discrete"
address = 0
type = "bool"
"#
    ))
}

/// Midnight of 2026-11-20 in Berlin, as UTC milliseconds.
fn day0() -> i64 {
    jiff::civil::date(2026, 11, 20)
        .at(0, 0, 0, 0)
        .in_tz(TZ)
        .expect("zone")
        .timestamp()
        .as_millisecond()
}

/// One reading a minute for two days, except a 30-minute hole on day one at 05:00, and an
/// excursion to about -140 °C on day two from 10:00 to 10:20.
fn readings() -> Vec<(i64, f64)> {
    let d0 = day0();
    let mut out = Vec::new();
    for i in 0..2 * 1440 {
        let t = d0 + i * MIN;
        if (300..330).contains(&i) {
            continue;
        }
        let v = if (1440 + 600..1440 + 620).contains(&i) {
            -140.0 - (i % 7) as f64 * 0.25
        } else {
            -190.0 + ((i * 37) % 100) as f64 / 10.0
        };
        out.push((t, v));
    }
    out
}

fn seed(site: &Site) {
    let mut store = Store::open(&site.path().join("cryowatch.db")).expect("store");
    let ids = store
        .register_sensors(&[("dewar-1.temp".into(), "degC".into())])
        .expect("sensor");
    let rows: Vec<_> = readings()
        .into_iter()
        .map(|(t, v)| (ids[0], t, Some(v), Quality::Good))
        .collect();
    store.insert(&rows).expect("insert");
    drop(store);
    // A finished alarm and its pages, written as the rows the report reads (no
    // transitions, no delivery attempts): a past the daemon never writes in one go, so
    // on a connection of the test's own.
    let start = day0() + (1440 + 600) * MIN;
    let mut db = rusqlite::Connection::open(site.path().join("cryowatch.db")).expect("open the store file");
    let tx = db.transaction().expect("transaction");
    tx.execute(
        "INSERT INTO alarm (id, rule, sensor, asset, severity, state, raised_at, since, value, latching, firing,
             returned, acked_by, acked_at, ack_comment, ack_path, cleared_at)
         VALUES (1, 'dewar-1.temp:high', 'dewar-1.temp', 'dewar-1', 'critical', 'cleared', ?1, ?1, -140.0, 0, '',
             1, 'ana', ?2, 'lid left open, closed it', 'sms', ?3)",
        params![start, start + 4 * MIN, start + 20 * MIN],
    )
    .expect("alarm");
    for (contact, channel) in [("ana", "email"), ("ana", "sms")] {
        tx.execute(
            "INSERT INTO notification (alarm, kind, cycle, round, step, contact, channel, subject, body, sms,
                 created_at, state, next_at, via, done_at)
             VALUES (1, 'page', 0, 0, 0, ?1, ?2, 's', 'b', 's', ?3, 'sent', ?3, ?2, ?3)",
            params![contact, channel, start + 1000],
        )
        .expect("page");
    }
    tx.commit().expect("commit");
}

fn report(site: &Site, out: &str, asset: &str) -> std::process::Output {
    let from = cryowatch::model::format_rfc3339(day0());
    let to = cryowatch::model::format_rfc3339(day0() + 2 * 1440 * MIN);
    site.report(asset, (&from, &to), &site.path().join(out), &[])
}

/// (min, max, mean, count) per local date, computed here.
fn expected_days() -> BTreeMap<String, (f64, f64, f64, i64)> {
    let tz = jiff::tz::TimeZone::get(TZ).expect("zone");
    let mut days: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (t, v) in readings() {
        let date = jiff::Timestamp::from_millisecond(t)
            .expect("time")
            .to_zoned(tz.clone())
            .date()
            .to_string();
        days.entry(date).or_default().push(v);
    }
    days.into_iter()
        .map(|(d, vs)| {
            let min = vs.iter().copied().fold(f64::INFINITY, f64::min);
            let max = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mean = vs.iter().sum::<f64>() / vs.len() as f64;
            (d, (min, max, mean, vs.len() as i64))
        })
        .collect()
}

#[test]
fn the_csv_report_has_the_figures_computed_independently() {
    let site = site();
    seed(&site);
    let out = report(&site, "r.csv", "dewar-1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(site.path().join("r.csv")).expect("csv");
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.splitn(10, ',').collect()).collect();
    assert_eq!(
        lines[0].join(","),
        "record,sensor,start,end,min,max,mean,readings,expected,detail"
    );
    let expected = expected_days();
    assert_eq!(expected.len(), 2);
    let days: Vec<_> = lines.iter().filter(|l| l[0] == "day").collect();
    assert_eq!(days.len(), 2, "{text}");
    for d in days {
        let (min, max, mean, n) = expected[d[2]];
        let num = |s: &str| s.parse::<f64>().expect("number");
        assert_eq!(num(d[4]), min, "{} min", d[2]);
        assert_eq!(num(d[5]), max, "{} max", d[2]);
        assert!((num(d[6]) - mean).abs() < 1e-9, "{} mean {} vs {mean}", d[2], d[6]);
        assert_eq!(d[7].parse::<i64>().expect("count"), n, "{} readings", d[2]);
    }
    let completeness = lines.iter().find(|l| l[0] == "completeness").expect("completeness");
    assert_eq!(completeness[7], "2850", "received");
    assert_eq!(completeness[8], "2880", "expected at one a minute");
    let gaps: Vec<_> = lines.iter().filter(|l| l[0] == "gap").collect();
    assert_eq!(gaps.len(), 1, "{text}");
    assert_eq!(gaps[0][2], cryowatch::model::format_rfc3339(day0() + 299 * MIN));
    assert_eq!(gaps[0][3], cryowatch::model::format_rfc3339(day0() + 330 * MIN));
    let exc = lines.iter().find(|l| l[0] == "excursion").expect("excursion");
    let peak = readings()
        .into_iter()
        .filter(|(t, _)| (day0() + 2040 * MIN..=day0() + 2060 * MIN).contains(t))
        .map(|(_, v)| v)
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(exc[5].parse::<f64>().expect("peak"), peak);
    assert!(exc[9].contains("pages sent 2 delivered 2"), "{}", exc[9]);
    assert!(
        exc[9].contains("acknowledged by ana") && exc[9].contains("lid left open"),
        "{}",
        exc[9]
    );
    let audit = lines.iter().find(|l| l[0] == "audit").expect("audit");
    assert!(audit[9].contains("Audit trail intact"), "{}", audit[9]);
}

#[test]
fn the_pdf_renders_with_the_same_figures_and_the_html_is_self_contained() {
    let site = site();
    seed(&site);
    let out = report(&site, "r.pdf", "dewar-1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = pdf_text(&site.path().join("r.pdf"));
    // CRYOWATCH_REPORT_OUT=DIR keeps a copy to look at.
    if let Ok(dir) = std::env::var("CRYOWATCH_REPORT_OUT") {
        let _ = std::fs::copy(site.path().join("r.pdf"), std::path::Path::new(&dir).join("report.pdf"));
    }
    assert!(
        text.contains("Storage temperature record") && text.contains("dewar-1"),
        "{text}"
    );
    assert!(text.contains("Europe/Berlin") && text.contains("Room 214"), "{text}");
    for (date, (min, max, _, n)) in expected_days() {
        let row = text
            .lines()
            .find(|l| l.trim_start().starts_with(&date))
            .unwrap_or_default();
        assert!(
            row.contains(&format!("{min:.2}")) && row.contains(&format!("{max:.2}")),
            "{date}: {row}"
        );
        assert!(row.contains(&n.to_string()), "{date}: {row}");
    }
    assert!(text.contains("lid left open"), "{text}");
    assert!(text.contains("Bau Süd, µ-lab"), "non-ASCII drawn: {text}");
    assert!(text.contains("°C"), "{text}");
    assert!(text.contains("page 1 of"), "{text}");
    // The archival copy carries its fonts: every one embedded, none left to the viewer.
    let fonts = pdf_fonts(&site.path().join("r.pdf"));
    assert!(!fonts.is_empty());
    assert!(fonts.iter().all(|(_, embedded)| *embedded), "{fonts:?}");
    assert!(text.contains("Audit trail intact"), "{text}");

    let out = report(&site, "r.html", "dewar-1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(site.path().join("r.html")).expect("html");
    assert!(
        html.contains("<svg") && html.contains("lid left open"),
        "chart and excursion"
    );
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external resources"
    );
}

#[test]
fn bad_arguments_exit_2_and_say_what_is_wrong() {
    let site = site();
    seed(&site);
    let out = report(&site, "r.csv", "dewar-9");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dewar-9") && err.contains("dewar-1, freezer-7"), "{err}");
    let out = report(&site, "r.txt", "dewar-1");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(".pdf, .html or .csv"));
    let out = cryowatch_output(&[
        "report",
        "-c",
        &site.config_str(),
        "--asset",
        "dewar-1",
        "--from",
        "now",
        "--to",
        "-1h",
        "--out",
        "x.csv",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_door_is_reported_closed_and_open_by_name() {
    let site = site();
    let mut store = Store::open(&site.path().join("cryowatch.db")).expect("store");
    let ids = store
        .register_sensors(&[("freezer-7.door".into(), "open".into())])
        .expect("sensor");
    // Closed all day one; on day two open from 10:00 to 10:30.
    let rows: Vec<_> = (0..2 * 1440)
        .map(|i| {
            let open = (1440 + 600..1440 + 630).contains(&i);
            (ids[0], day0() + i * MIN, Some(f64::from(u8::from(open))), Quality::Good)
        })
        .collect();
    store.insert(&rows).expect("insert");
    drop(store);
    let start = day0() + (1440 + 600) * MIN;
    let db = rusqlite::Connection::open(site.path().join("cryowatch.db")).expect("open the store file");
    db.execute(
        "INSERT INTO alarm (id, rule, sensor, asset, severity, state, raised_at, since, value, latching, firing,
             returned, cleared_at)
         VALUES (1, 'door-open', 'freezer-7.door', 'freezer-7', 'warning', 'cleared', ?1, ?1, 1.0, 0, '', 1, ?2)",
        params![start, start + 30 * MIN],
    )
    .expect("alarm");
    drop(db);

    let out = report(&site, "door.html", "freezer-7");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(site.path().join("door.html")).expect("html");
    let text = html.replace(['\n'], " ");
    assert!(text.contains("freezer-7.door (state: 0 = closed, 1 = OPEN)"), "{html}");
    assert!(text.contains("<td>closed</td>"), "day one: closed only: {html}");
    assert!(text.contains("<td>closed, OPEN</td>"), "day two: both: {html}");
    assert!(text.contains("2.1 %"), "30 of 1440 readings open: {html}");
    assert!(
        !text.contains("0.00") && !text.contains("1.00"),
        "no bare numbers: {html}"
    );

    let out = report(&site, "door.pdf", "freezer-7");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pdf = pdf_text(&site.path().join("door.pdf"));
    assert!(pdf.contains("closed, OPEN") && pdf.contains("Readings OPEN"), "{pdf}");
}

#[test]
fn the_integrity_statement_says_how_far_the_readings_are_sealed_as_audit_verify_does() {
    let site = site();
    seed(&site);
    // Day one sealed, day two not yet: what a daemon's store holds between seals.
    let mut store = Store::open(&site.path().join("cryowatch.db")).expect("store");
    while let Some(s) = store.seal_due(day0() + 1440 * MIN, 3_600_000, 0).expect("seal") {
        if !s.more {
            break;
        }
    }
    drop(store);
    let verify = cryowatch_output(&["audit", "verify", "-c", &site.config_str()]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    let verify = String::from_utf8_lossy(&verify.stdout).into_owned();
    // "readings: N in B sealed blocks up to T verified; U newer readings not sealed yet"
    let line = verify
        .lines()
        .find(|l| l.starts_with("readings:"))
        .expect("readings line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let (sealed, until, unsealed) = (words[1], words[8], words[10]);
    assert!(unsealed.parse::<i64>().expect("count") > 1000, "{verify}");
    assert_eq!(until, cryowatch::model::format_rfc3339(day0() + 1440 * MIN));

    let out = report(&site, "r.csv", "dewar-1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(site.path().join("r.csv")).expect("csv");
    let audit = csv.lines().find(|l| l.starts_with("audit,")).expect("audit line");
    assert!(
        audit.contains(&format!("up to {until} ({sealed} readings"))
            && audit.contains(&format!("{unsealed} readings after it not yet sealed")),
        "{audit}\n{verify}"
    );

    let out = report(&site, "r.pdf", "dewar-1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = pdf_text(&site.path().join("r.pdf"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        text.contains("verified against their seals up to 2026-11-21 00:00 CET")
            && text.contains(&format!("{unsealed} readings after it not yet sealed")),
        "{text}"
    );
}
