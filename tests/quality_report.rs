//! `cryowatch quality` on a seeded November: alarms with known acknowledgement times
//! (one by command line, one by email link under the contact's printed name), a
//! nuisance alarm, an escalation to step 2 and one to a second round, a page delivered
//! through its fallback and one given up, an alarm test, a scheduled test page, open
//! deviations (one from October), and readings. Every figure of the CSV is recomputed
//! here from what was seeded, figure by figure; the PDF shows the headline figures.

mod common;

use std::collections::BTreeMap;

use common::{Site, cryowatch, pdf_text};
use cryowatch::model::Quality;
use cryowatch::store::Store;
use rusqlite::params;

const FROM: &str = "2026-11-01T00:00:00Z";
const TO: &str = "2026-12-01T00:00:00Z";
const MIN: i64 = 60_000;

fn ms(t: &str) -> i64 {
    t.parse::<jiff::Timestamp>().expect("time").as_millisecond()
}

fn site() -> Site {
    Site::new(
        r#"
[site]
name = "quality figures lab"
timezone = "UTC"
[store]
path = "{dir}/cryowatch.db"
[[modbus.device]]
id = "plc"
transport = "tcp"
address = "127.0.0.1:1"
poll_interval = "60s"
[[asset]]
id = "dewar-1"
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
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
delay = "2m"
severity = "critical"
[[rule]]
id = "lid"
sensor = "dewar-1.lid"
kind = "state"
equals = 1
delay = "10m"
severity = "warning"
[[contact]]
id = "tech-a"
name = "Technician A"
email = "a@example.org"
[[contact]]
id = "tech-b"
name = "Technician B"
email = "b@example.org"
[[test_page]]
contact = "tech-a"
every = "Mon 10:00"
[quality]
notify = ["contact:tech-b"]
nuisance_within = "10m"
"#,
    )
}

/// One seeded alarm.
struct Seeded {
    id: i64,
    rule: &'static str,
    raised: i64,
    since: i64,
    /// (by, at, path)
    ack: Option<(&'static str, i64, &'static str)>,
    returned: Option<i64>,
    cleared: Option<i64>,
    closed: Option<i64>,
    test: bool,
}

fn alarms() -> Vec<Seeded> {
    let a = |id, rule, raised: &str, since_before: i64| Seeded {
        id,
        rule,
        raised: ms(raised),
        since: ms(raised) - since_before * MIN,
        ack: None,
        returned: None,
        cleared: None,
        closed: None,
        test: false,
    };
    let mut v = Vec::new();
    // 1: acknowledged after 3 minutes by command line, back to normal at 20 min.
    let mut s = a(1, "warm", "2026-11-03T02:10:00Z", 2);
    s.ack = Some(("tech-a", s.raised + 3 * MIN, "cli"));
    s.returned = Some(s.raised + 20 * MIN);
    s.cleared = Some(s.raised + 21 * MIN);
    s.closed = Some(s.raised + 60 * MIN);
    v.push(s);
    // 2: escalated to step 2, acknowledged by tech-b after 25 minutes, closed.
    let mut s = a(2, "warm", "2026-11-10T14:00:00Z", 2);
    s.ack = Some(("tech-b", s.raised + 25 * MIN, "web"));
    s.cleared = Some(s.raised + 60 * MIN);
    s.closed = Some(ms("2026-11-11T09:00:00Z"));
    v.push(s);
    // 3: a nuisance alarm: cleared 4 minutes after it went active, nobody acted.
    let mut s = a(3, "lid", "2026-11-12T09:00:00Z", 10);
    s.cleared = Some(s.raised + 4 * MIN);
    v.push(s);
    // 4: acknowledged after 1 minute by email link (the printed name), still open.
    let mut s = a(4, "warm", "2026-11-20T22:00:00Z", 2);
    s.ack = Some(("Technician A", s.raised + MIN, "link"));
    v.push(s);
    // 5: cleared after 20 minutes unacknowledged (not a nuisance: too long), paged
    // again in a second round.
    let mut s = a(5, "lid", "2026-11-25T03:00:00Z", 10);
    s.cleared = Some(s.raised + 20 * MIN);
    v.push(s);
    // 6: an alarm test, acknowledged.
    let mut s = a(6, "warm", "2026-11-15T10:00:00Z", 0);
    s.ack = Some(("tech-a", s.raised + 2 * MIN, "cli"));
    s.cleared = Some(s.raised + 5 * MIN);
    s.test = true;
    v.push(s);
    // 7: October's, cleared then and never closed: open at the end of November.
    let mut s = a(7, "lid", "2026-10-28T00:00:00Z", 10);
    s.cleared = Some(s.raised + 60 * MIN);
    v.push(s);
    // 8: December's: outside the period.
    let mut s = a(8, "warm", "2026-12-02T00:00:00Z", 2);
    s.cleared = Some(s.raised + 30 * MIN);
    v.push(s);
    v
}

/// (id, alarm, kind, cycle, round, step, contact, channel, created, state, via)
type Page = (
    i64,
    Option<i64>,
    &'static str,
    i64,
    i64,
    i64,
    &'static str,
    &'static str,
    i64,
    &'static str,
    Option<&'static str>,
);

fn pages() -> Vec<Page> {
    let at = |a: &str, plus: i64| ms(a) + plus * MIN;
    vec![
        (
            1,
            Some(1),
            "page",
            0,
            0,
            0,
            "tech-a",
            "email",
            at("2026-11-03T02:10:00Z", 0),
            "sent",
            Some("email"),
        ),
        (
            2,
            Some(2),
            "page",
            0,
            0,
            0,
            "tech-a",
            "email",
            at("2026-11-10T14:00:00Z", 0),
            "sent",
            Some("email"),
        ),
        (
            3,
            Some(2),
            "page",
            0,
            0,
            1,
            "tech-b",
            "email",
            at("2026-11-10T14:00:00Z", 15),
            "sent",
            Some("email"),
        ),
        (
            4,
            Some(4),
            "page",
            0,
            0,
            0,
            "tech-a",
            "email",
            at("2026-11-20T22:00:00Z", 0),
            "sent",
            Some("sms"),
        ),
        (
            5,
            Some(4),
            "page",
            0,
            0,
            0,
            "tech-b",
            "email",
            at("2026-11-20T22:00:00Z", 0),
            "failed",
            None,
        ),
        (
            6,
            None,
            "test",
            ms("2026-11-02T10:00:00Z"),
            0,
            0,
            "tech-a",
            "email",
            at("2026-11-02T10:00:00Z", 0),
            "sent",
            Some("email"),
        ),
        (
            7,
            Some(6),
            "page",
            0,
            0,
            0,
            "tech-a",
            "email",
            at("2026-11-15T10:00:00Z", 0),
            "sent",
            Some("email"),
        ),
        (
            8,
            Some(5),
            "page",
            0,
            0,
            0,
            "tech-a",
            "email",
            at("2026-11-25T03:00:00Z", 0),
            "sent",
            Some("email"),
        ),
        (
            9,
            Some(5),
            "page",
            0,
            1,
            0,
            "tech-a",
            "email",
            at("2026-11-25T03:00:00Z", 10),
            "sent",
            Some("email"),
        ),
    ]
}

/// Temperature readings every minute for the first ten days; none of the lid.
const READINGS: i64 = 10 * 1440;

fn seed(site: &Site) {
    let path = site.path().join("cryowatch.db");
    let mut store = Store::open(&path).expect("store");
    let ids = store
        .register_sensors(&[
            ("dewar-1.temp".into(), "degC".into()),
            ("dewar-1.lid".into(), "open".into()),
        ])
        .expect("sensors");
    let rows: Vec<_> = (0..READINGS)
        .map(|i| (ids[0], ms(FROM) + i * MIN, Some(-190.0), Quality::Good))
        .collect();
    store.insert(&rows).expect("readings");
    drop(store);
    let db = rusqlite::Connection::open(&path).expect("open the store file");
    for a in alarms() {
        let (sensor, severity) = if a.rule == "warm" {
            ("dewar-1.temp", "critical")
        } else {
            ("dewar-1.lid", "warning")
        };
        let state = match (a.cleared, a.ack) {
            (Some(_), _) => "cleared",
            (None, Some(_)) => "acknowledged",
            (None, None) => "active",
        };
        db.execute(
            "INSERT INTO alarm (id, rule, sensor, asset, severity, state, raised_at, since, value, latching, firing,
                 returned, acked_by, acked_at, ack_comment, ack_path, cleared_at)
             VALUES (?1, ?2, ?3, 'dewar-1', ?4, ?5, ?6, ?7, 1.0, 0, '', 0, ?8, ?9, '', ?10, ?11)",
            params![
                a.id,
                a.rule,
                sensor,
                severity,
                state,
                a.raised,
                a.since,
                a.ack.map(|x| x.0),
                a.ack.map(|x| x.1),
                a.ack.map(|x| x.2),
                a.cleared
            ],
        )
        .expect("alarm");
        if let Some(t) = a.returned {
            db.execute(
                "INSERT INTO alarm_event (t, alarm, rule, sensor, kind, state, actor, comment)
                 VALUES (?1, ?2, ?3, ?4, 'returned_to_normal', 'acknowledged', 'system', '')",
                params![t, a.id, a.rule, sensor],
            )
            .expect("event");
        }
        if let Some(t) = a.closed {
            db.execute(
                "INSERT INTO corrective_action (alarm, t, reason, reason_text, action, impact, comment, signature)
                 VALUES (?1, ?2, 'fill-late', 'LN2 fill started late', 'refilled', 'none', '', 0)",
                params![a.id, t],
            )
            .expect("corrective action");
        }
        if a.test {
            db.execute(
                "INSERT INTO alarm_test (sensor, rule, alarm, started_at, by, value) VALUES (?1, ?2, ?3, ?4, 'tech-a', -100.0)",
                params![sensor, a.rule, a.id, a.raised],
            )
            .expect("alarm test");
        }
    }
    for (id, alarm, kind, cycle, round, step, contact, channel, created, state, via) in pages() {
        db.execute(
            "INSERT INTO notification (id, alarm, kind, cycle, round, step, contact, channel, subject, body, sms,
                 created_at, state, attempts, next_at, via, done_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 's', 'b', 'm', ?9, ?10, 1, ?9, ?11, ?9)",
            params![
                id, alarm, kind, cycle, round, step, contact, channel, created, state, via
            ],
        )
        .expect("notification");
    }
}

/// The CSV's figure rows: (figure, month, asset, rule, contact, hour) → value.
type Figures = BTreeMap<(String, String, String, String, String, String), f64>;

fn parse(csv: &str) -> (Figures, Vec<Vec<String>>) {
    let mut figures = Figures::new();
    let mut records = Vec::new();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("figure,month,asset,rule,contact,hour,value,of,record,detail")
    );
    for line in lines {
        // Only `detail` (the last field) may be quoted: split the first nine fields.
        let f: Vec<String> = line.splitn(10, ',').map(str::to_string).collect();
        assert_eq!(f.len(), 10, "{line}");
        if f[8].is_empty() {
            if f[6].is_empty() {
                continue; // a section the store does not record
            }
            let key = (
                f[0].clone(),
                f[1].clone(),
                f[2].clone(),
                f[3].clone(),
                f[4].clone(),
                f[5].clone(),
            );
            figures.insert(key, f[6].parse().unwrap_or_else(|_| panic!("value in {line}")));
        } else {
            records.push(f);
        }
    }
    (figures, records)
}

/// Nearest rank, computed here on its own.
fn nearest_rank(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.max(1) - 1]
}

fn run(site: &Site, out: &str) -> std::path::PathBuf {
    let path = site.path().join(out);
    let res = cryowatch()
        .args(["quality", "-c", &site.config_str(), "--from", FROM, "--to", TO, "--out"])
        .arg(&path)
        .output()
        .expect("cryowatch runs");
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    path
}

#[test]
fn the_quality_figures_of_a_seeded_month_match_their_recomputation() {
    let site = site();
    seed(&site);
    let csv = std::fs::read_to_string(run(&site, "q.csv")).expect("csv");
    let (got, records) = parse(&csv);
    let (from, to) = (ms(FROM), ms(TO));
    let nov = |figure: &str| {
        (
            figure.to_string(),
            "2026-11".to_string(),
            "dewar-1".to_string(),
            String::new(),
            String::new(),
            String::new(),
        )
    };
    let mut want = Figures::new();
    let seeded = alarms();
    let in_period: Vec<&Seeded> = seeded
        .iter()
        .filter(|a| !a.test && a.raised >= from && a.raised < to)
        .collect();
    want.insert(nov("alarms"), in_period.len() as f64);
    for rule in ["warm", "lid"] {
        let mut k = nov("alarms");
        k.3 = rule.into();
        want.insert(k, in_period.iter().filter(|a| a.rule == rule).count() as f64);
    }
    // Both rules watch limits: every alarm is an excursion.
    want.insert(nov("excursions"), in_period.len() as f64);
    let minutes: f64 = in_period
        .iter()
        .map(|a| (a.returned.or(a.cleared).unwrap_or(to).min(to) - a.since) as f64 / MIN as f64)
        .sum();
    want.insert(nov("excursion_minutes"), minutes);
    // Time to acknowledge, from the alarm going active; people under one name.
    let name = |by: &str| {
        if by.ends_with('A') || by == "tech-a" {
            "Technician A (tech-a)"
        } else {
            "Technician B (tech-b)"
        }
    };
    let acks: Vec<(&str, i64, f64)> = in_period
        .iter()
        .filter_map(|a| {
            a.ack
                .map(|(by, at, _)| (name(by), a.raised / 3_600_000 % 24, (at - a.raised) as f64 / 1000.0))
        })
        .collect();
    let mut stats = |contact: &str, hour: &str, v: Vec<f64>| {
        for (figure, value) in [
            ("ack_count", v.len() as f64),
            ("ack_p50_s", nearest_rank(v.clone(), 50.0)),
            ("ack_p90_s", nearest_rank(v.clone(), 90.0)),
            ("ack_max_s", v.iter().copied().fold(0.0, f64::max)),
        ] {
            let mut k = nov(figure);
            k.4 = contact.into();
            k.5 = hour.into();
            want.insert(k, value);
        }
    };
    stats("", "", acks.iter().map(|a| a.2).collect());
    for c in ["Technician A (tech-a)", "Technician B (tech-b)"] {
        stats(c, "", acks.iter().filter(|a| a.0 == c).map(|a| a.2).collect());
    }
    let mut hours: Vec<i64> = acks.iter().map(|a| a.1).collect();
    hours.dedup();
    for h in hours {
        stats(
            "",
            &h.to_string(),
            acks.iter().filter(|a| a.1 == h).map(|a| a.2).collect(),
        );
    }
    want.insert(
        nov("not_acknowledged"),
        in_period.iter().filter(|a| a.ack.is_none()).count() as f64,
    );
    // Alarm 2 reached step 2, alarm 5 a second round.
    want.insert(nov("escalations"), 2.0);
    want.insert(nov("undeliverable"), 1.0);
    want.insert(nov("fallbacks"), 1.0);
    let nuisance: Vec<&&Seeded> = in_period
        .iter()
        .filter(|a| a.ack.is_none() && a.cleared.is_some_and(|c| c - a.raised <= 10 * MIN))
        .collect();
    assert_eq!(nuisance.len(), 1, "the seed has one nuisance alarm");
    want.insert(nov("nuisance"), 1.0);
    let mut k = nov("nuisance");
    k.3 = "lid".into();
    want.insert(k, 1.0);
    // Open deviations by the month they cleared in, aged at the period's end.
    for month in ["2026-10", "2026-11"] {
        let open: Vec<f64> = seeded
            .iter()
            .filter(|a| !a.test && a.cleared.is_some_and(|c| c < to) && a.closed.is_none_or(|c| c >= to))
            .filter(|a| {
                jiff::Timestamp::from_millisecond(a.cleared.unwrap_or(0))
                    .expect("t")
                    .to_string()
                    .starts_with(month)
            })
            .map(|a| (to - a.cleared.unwrap_or(0)) as f64 / 86_400_000.0)
            .collect();
        let mut k = nov("open_deviations");
        k.1 = month.into();
        want.insert(k.clone(), open.len() as f64);
        k.0 = "oldest_deviation_days".into();
        want.insert(k, open.iter().copied().fold(0.0, f64::max));
    }
    want.insert(nov("alarm_tests"), 1.0);
    want.insert(nov("readings"), READINGS as f64);
    want.insert(nov("readings_expected"), 2.0 * 30.0 * 1440.0);
    want.insert(
        nov("completeness_percent"),
        100.0 * READINGS as f64 / (2.0 * 30.0 * 1440.0),
    );
    // Test pages belong to the site: Mondays at 10:00 up to now, one delivered.
    let now = jiff::Timestamp::now().as_millisecond();
    let mondays = ["2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23", "2026-11-30"]
        .iter()
        .filter(|d| ms(&format!("{d}T10:00:00Z")) < now.min(to))
        .count();
    let site_key = |figure: &str| {
        let mut k = nov(figure);
        k.2 = String::new();
        k
    };
    want.insert(site_key("test_pages_done"), 1.0);
    want.insert(site_key("test_pages_due"), mondays as f64);
    want.insert(site_key("test_pages_due_done"), 1.0);
    // Compare figure by figure: each expected one present and equal; zero figures the
    // report adds (per month and asset) must be zero here.
    for (k, v) in &want {
        let g = got.get(k).unwrap_or_else(|| panic!("figure {k:?} missing:\n{csv}"));
        assert!((g - v).abs() < 1e-9, "{k:?}: report {g}, recomputed {v}\n{csv}");
    }
    for (k, g) in &got {
        if !want.contains_key(k) {
            assert_eq!(*g, 0.0, "figure {k:?} = {g} not expected:\n{csv}");
        }
    }
    // The records beneath: each figure's records name what was seeded.
    let named = |figure: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r[0] == figure)
            .map(|r| r[8].clone())
            .collect()
    };
    assert_eq!(named("nuisance"), ["alarm 3"]);
    assert_eq!(named("escalation"), ["alarm 2", "alarm 5"]);
    assert_eq!(named("undeliverable"), ["notification 5"]);
    assert_eq!(named("fallback"), ["notification 4"]);
    assert_eq!(named("ack"), ["alarm 1", "alarm 2", "alarm 4"]);
    assert_eq!(named("alarm_test"), ["alarm test 1"]);
    assert_eq!(named("open_deviation"), ["alarm 3", "alarm 5", "alarm 7"]);
    assert!(
        !named("alarm").contains(&"alarm 6".to_string()),
        "an alarm test is not an alarm"
    );
    assert!(!named("alarm").contains(&"alarm 8".to_string()), "December is outside");
    let step2 = records
        .iter()
        .find(|r| r[0] == "escalation" && r[8] == "alarm 2")
        .expect("alarm 2");
    assert_eq!(step2[6], "2", "alarm 2 reached step 2: {step2:?}");
}

#[test]
fn the_pdf_shows_the_headline_figures() {
    let site = site();
    seed(&site);
    let text = pdf_text(&run(&site, "q.pdf"));
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for part in [
        "2026-11 · dewar-1",
        // Acknowledged after 3, 25 and 1 minutes: p50 3m, p90 25m.
        "p50 3m 00s, p90 25m 00s, max 25m 00s (3 acknowledged)",
        "Escalated beyond the first step 2",
        "Nuisance alarms 1",
        "no alarm checks are recorded",
        "Calibration status: not recorded",
    ] {
        assert!(text.contains(part), "{part:?} not in:\n{text}");
    }
}

#[test]
fn a_period_that_ends_before_it_starts_and_an_unknown_extension_are_bad_input() {
    let site = site();
    let out = site.path().join("q.csv");
    let res = cryowatch()
        .args(["quality", "-c", &site.config_str(), "--from", TO, "--to", FROM, "--out"])
        .arg(&out)
        .output()
        .expect("cryowatch runs");
    assert_eq!(res.status.code(), Some(2), "{}", String::from_utf8_lossy(&res.stderr));
    let res = cryowatch()
        .args(["quality", "-c", &site.config_str(), "--from", FROM, "--to", TO, "--out"])
        .arg(site.path().join("q.txt"))
        .output()
        .expect("cryowatch runs");
    assert_eq!(res.status.code(), Some(2), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(!out.exists());
}
