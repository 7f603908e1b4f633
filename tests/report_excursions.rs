//! `cryowatch report` on excursions as the readings saw them: an alarm raised after its
//! rule's delay beside the readings' own span out of limit, a lid's state alarm by the
//! state's name and still open where the data ends, one person acknowledging by
//! command line and by email link printed under one name, and the quality record: each
//! excursion's signed corrective action or open deviation, and the signatures bound to
//! the report's alarms.

mod common;

use common::{Site, cryowatch, free_port, pdf_text};
use cryowatch::model::Quality;
use cryowatch::store::Store;
use rusqlite::params;

const S: i64 = 1000;
/// The period every report here covers.
const PERIOD: (&str, &str) = ("2026-11-21T01:00:00Z", "2026-11-21T03:00:00Z");

fn site() -> Site {
    let port = free_port();
    Site::new(&format!(
        r#"
[site]
name = "excursion lab"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
[[modbus.device]]
id = "plc"
transport = "tcp"
address = "127.0.0.1:{port}"
poll_interval = "10s"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
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
id = "dewar-1.lid"
asset = "dewar-1"
quantity = "state"
unit = "open"
[sensor.modbus]
device = "plc"
register = "discrete"
address = 0
type = "bool"
[[rule]]
id = "dewar-1-warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
hysteresis = 2.0
delay = "2m"
severity = "critical"
[[rule]]
id = "dewar-1-lid-open"
sensor = "dewar-1.lid"
kind = "state"
equals = 1
delay = "10m"
severity = "warning"
[[contact]]
id = "tech-c"
name = "Cryo Technician C"
email = "tech-c@example.org"
phone = "+15551230003"
[[reason]]
code = "fill-late"
text = "LN2 fill started late"
"#
    ))
}

/// 2026-11-21T01:50:07Z: the first reading.
fn t0() -> i64 {
    jiff::Timestamp::from_second(1_795_225_807)
        .expect("time")
        .as_millisecond()
}

fn at(i: i64) -> i64 {
    t0() + i * 10 * S
}

fn seed(site: &Site) {
    let mut store = Store::open(&site.path().join("cryowatch.db")).expect("store");
    let ids = store
        .register_sensors(&[
            ("dewar-1.temp".into(), "degC".into()),
            ("dewar-1.lid".into(), "open".into()),
        ])
        .expect("sensors");
    let mut rows = Vec::new();
    // Temperature every 10 s for an hour, above -150 °C from 01:55:37 (i = 33) to
    // 01:57:47 (i = 46).
    for i in 0..360 {
        let v = if (33..=46).contains(&i) { -140.0 } else { -190.0 };
        rows.push((ids[0], at(i), Some(v), Quality::Good));
    }
    // The lid: closed, open from 02:00:07 (i = 60); its data ends at 02:20:07 (i = 180).
    for i in 0..=180 {
        rows.push((ids[1], at(i), Some(f64::from(u8::from(i >= 60))), Quality::Good));
    }
    store.insert(&rows).expect("insert");
    drop(store);
    let db = rusqlite::Connection::open(site.path().join("cryowatch.db")).expect("open the store file");
    // The warm alarm: raised after the 2-minute delay at 01:57:37, cleared at 01:57:57
    // below the hysteresis band; acknowledged from the command line as `tech-c`.
    db.execute(
        "INSERT INTO alarm (id, rule, sensor, asset, severity, state, raised_at, since, value, latching, firing,
             returned, acked_by, acked_at, ack_comment, ack_path, cleared_at)
         VALUES (1, 'dewar-1-warm', 'dewar-1.temp', 'dewar-1', 'critical', 'cleared', ?1, ?1, -140.0, 0, '',
             1, 'tech-c', ?2, 'fill valve checked', 'cli', ?3)",
        params![at(45), at(46), at(47)],
    )
    .expect("warm alarm");
    // The lid alarm: raised at 02:10:07 after 10 minutes open, still open; acknowledged
    // by the email link, which records the contact's printed name.
    db.execute(
        "INSERT INTO alarm (id, rule, sensor, asset, severity, state, raised_at, since, value, latching, firing,
             returned, acked_by, acked_at, ack_comment, ack_path)
         VALUES (2, 'dewar-1-lid-open', 'dewar-1.lid', 'dewar-1', 'warning', 'acknowledged', ?1, ?1, 1.0, 0, '',
             0, 'Cryo Technician C', ?2, 'on my way', 'link')",
        params![at(120), at(125)],
    )
    .expect("lid alarm");
}

fn report(site: &Site, out: &str) -> String {
    let path = site.path().join(out);
    let out = site.report("dewar-1", PERIOD, &path, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = if path.extension().is_some_and(|e| e == "pdf") {
        pdf_text(&path)
    } else {
        std::fs::read_to_string(&path).expect("report")
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn an_excursion_shows_the_alarms_times_beside_the_readings_span_out_of_limit() {
    let site = site();
    seed(&site);
    let html = report(&site, "r.html");
    // The alarm: 20 s from raised to cleared, to the second.
    assert!(
        html.contains("raised 2026-11-21 01:57:37 UTC cleared 2026-11-21 01:57:57 UTC (0m 20s)"),
        "{html}"
    );
    // The readings: out of limit from 01:55:37 to 01:57:47, 2m 10s.
    assert!(
        html.contains("2026-11-21 01:55:37 UTC to 2026-11-21 01:57:47 UTC (2m 10s)"),
        "{html}"
    );
    // The PDF's columns interleave in extracted text: the same figures, one by one.
    let pdf = report(&site, "r.pdf");
    for part in [
        "01:57:37 UTC",
        "01:57:57 UTC",
        "(0m 20s)",
        "01:55:37 UTC",
        "01:57:47 UTC",
        "(2m 10s)",
    ] {
        assert!(pdf.contains(part), "{part}: {pdf}");
    }
}

#[test]
fn a_lid_alarm_is_reported_by_state_and_open_where_the_data_ends() {
    let site = site();
    seed(&site);
    let html = report(&site, "r.html");
    assert!(html.contains("<td>state OPEN</td>"), "{html}");
    assert!(!html.contains("1.00"), "no numeric peak for a lid: {html}");
    assert!(
        html.contains("raised 2026-11-21 02:10:07 UTC open at end of data (last reading 2026-11-21 02:20:07 UTC) (at least 10m 00s)"),
        "{html}"
    );
    // The lid was open from 02:00:07 to its last reading.
    assert!(
        html.contains("2026-11-21 02:00:07 UTC to 2026-11-21 02:20:07 UTC (20m 00s)"),
        "{html}"
    );
    let pdf = report(&site, "r.pdf");
    for part in [
        "state OPEN",
        "open at end of data",
        "(last reading",
        "(at least 10m 00s)",
    ] {
        assert!(pdf.contains(part), "{part}: {pdf}");
    }
    assert!(!pdf.contains("1.00"), "no numeric peak for a lid: {pdf}");
    let csv = report(&site, "r.csv");
    assert!(
        csv.contains("state OPEN") && csv.contains("open at end of data"),
        "{csv}"
    );
}

#[test]
fn one_person_acknowledging_by_command_line_and_by_link_has_one_name() {
    let site = site();
    seed(&site);
    let text = report(&site, "r.html");
    assert_eq!(
        text.matches("Cryo Technician C (tech-c) at").count(),
        2,
        "both acknowledgements under one name: {text}"
    );
}

#[test]
fn the_report_names_the_person_who_generated_it() {
    let site = site();
    seed(&site);
    let html = site.path().join("by.html");
    let run = |by: Option<&str>, user: Option<&str>| {
        let mut cmd = cryowatch();
        cmd.args(["report", "-c", &site.config_str(), "--asset", "dewar-1"])
            .args(["--from", PERIOD.0, "--to", PERIOD.1, "--out"])
            .arg(&html)
            .env_remove("SUDO_USER");
        if let Some(by) = by {
            cmd.args(["--by", by]);
        }
        if let Some(user) = user {
            cmd.env("USER", user);
        }
        let out = cmd.output().expect("cryowatch runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&html).expect("report");
        assert!(!text.contains("cli:unknown"), "{text}");
        text
    };
    // --by names the person; a configured contact by its printed name and id.
    let text = run(Some("tech-c"), Some("root"));
    assert!(text.contains(" by Cryo Technician C (tech-c)</dd>"), "{text}");
    let text = run(Some("Quality Officer Q"), None);
    assert!(text.contains(" by Quality Officer Q</dd>"), "{text}");
    // Without it, the system user, said to be an account.
    let text = run(None, Some("labtech"));
    assert!(text.contains(" by labtech (system account)</dd>"), "{text}");
    let out = site.report("dewar-1", ("-1h", "now"), &html, &["--by", " "]);
    assert_eq!(out.status.code(), Some(2), "a blank --by is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--by"));
}

const PASSWORD: &str = "correct horse battery staple";

/// Alarm 1 closed by `tech-c` ("Cryo Technician C") with `cryowatch close`, signed with
/// their password; besides it, alarm 3 cleared and left open, alarm 4 an alarm test.
/// The signature's content SHA-256.
fn close_first_alarm(site: &Site) -> String {
    let db = rusqlite::Connection::open(site.path().join("cryowatch.db")).expect("open the store file");
    for (id, raised) in [(3, 200), (4, 300)] {
        db.execute(
            "INSERT INTO alarm (id, rule, sensor, asset, severity, state, raised_at, since, value, latching, firing,
                 returned, cleared_at)
             VALUES (?1, 'dewar-1-warm', 'dewar-1.temp', 'dewar-1', 'critical', 'cleared', ?2, ?2, -140.0, 0, '', 1, ?3)",
            params![id, at(raised), at(raised + 3)],
        )
        .expect("cleared alarm");
    }
    db.execute(
        "INSERT INTO alarm_test (id, sensor, rule, alarm, started_at, by, value)
         VALUES (1, 'dewar-1.temp', 'dewar-1-warm', 4, ?1, 'tech-c', -140.0)",
        [at(299)],
    )
    .expect("alarm test");
    site.add_signer("tech-c", "Cryo Technician C", PASSWORD);
    let closed = site.with_stdin(
        &[
            "close",
            "1",
            "--by",
            "tech-c",
            "--reason",
            "fill-late",
            "--action",
            "autofill valve replaced",
            "--impact",
            "quarantined",
            "--comment",
            "rack 3 moved to dewar-2",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(closed.status.success(), "{}", String::from_utf8_lossy(&closed.stderr));
    db.query_row(
        "SELECT content_sha256 FROM signature WHERE subject = 'alarm 1'",
        [],
        |r| r.get(0),
    )
    .expect("the signature")
}

#[test]
fn each_excursion_shows_its_corrective_action_or_open_deviation_and_every_signature_is_listed() {
    let site = site();
    seed(&site);
    let sha = close_first_alarm(&site);
    let open = "open deviation — no corrective action signed";

    let html = report(&site, "q.html");
    // Alarm 1: its corrective action, signed (the table's cells, one after another).
    assert!(
        html.contains(
            "<td>1</td><td>fill-late: LN2 fill started late</td><td>autofill valve replaced</td>\
             <td>quarantined</td><td>rack 3 moved to dewar-2</td><td>Cryo Technician C (tech-c) at "
        ),
        "{html}"
    );
    // Only alarm 3 is open: not alarm 1 (closed), alarm 2 (still active) nor 4 (a test).
    assert_eq!(html.matches(open).count(), 1, "{html}");
    assert!(html.contains(&format!("<td>3</td><td>{open}</td>")), "{html}");
    // The signature, once, by what it signed.
    assert!(
        html.contains(&format!(
            "</td><td>corrective action</td><td>alarm 1 (dewar-1.temp high)</td><td>{}</td></tr>",
            &sha[..12]
        )),
        "{html}"
    );
    assert_eq!(
        html.matches("<td>alarm 1 (dewar-1.temp high)</td>").count(),
        1,
        "{html}"
    );

    // The PDF's columns wrap and interleave in extracted text: words that stay whole.
    let pdf = report(&site, "q.pdf");
    for part in [
        "Corrective actions",
        "fill-late:",
        "autofill valve replaced",
        "quarantined",
        "Cryo Technician C (tech-c)",
        "open deviation —",
        "Signatures",
        &sha[..12],
    ] {
        assert!(pdf.contains(part), "{part}: {pdf}");
    }

    let path = site.path().join("q.csv");
    let out = site.report("dewar-1", PERIOD, &path, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(&path).expect("csv");
    assert!(
        csv.starts_with("record,sensor,start,end,min,max,mean,readings,expected,detail\n"),
        "{csv}"
    );
    let rows = |kind: &str| -> Vec<&str> { csv.lines().filter(|l| l.starts_with(&format!("{kind},"))).collect() };
    let corrective = rows("corrective_action");
    assert_eq!(corrective.len(), 1, "{csv}");
    for part in [
        "corrective_action,dewar-1.temp,",
        "reason fill-late (LN2 fill started late); action: autofill valve replaced; impact: quarantined; \
         comment: rack 3 moved to dewar-2; signed by Cryo Technician C (tech-c), meaning corrective action",
    ] {
        assert!(corrective[0].contains(part), "{part}: {csv}");
    }
    let signatures = rows("signature");
    assert_eq!(signatures.len(), 1, "{csv}");
    assert!(
        signatures[0].contains(&format!(
            "Cryo Technician C (tech-c); meaning corrective action; signed alarm 1 (dewar-1.temp high); \
             content sha256 {sha}"
        )),
        "{csv}"
    );
    let excursions = rows("excursion");
    assert_eq!(excursions.iter().filter(|l| l.contains(open)).count(), 1, "{csv}");
    assert!(
        excursions
            .iter()
            .any(|l| l.contains("alarm 1 ") && l.contains("closed by a signed corrective action"))
    );
}
