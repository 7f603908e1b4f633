//! A seeded November for `cryowatch quality` (tests/quality_report.rs): alarms with
//! known acknowledgement times, a nuisance alarm, an escalation to step 2 and one to a
//! second round, a fallback, an undeliverable page, an alarm test, a scheduled test page,
//! open deviations and readings, written into the store as the daemon writes them.

use cryowatch::model::Quality;
use cryowatch::store::Store;
use rusqlite::params;

use super::Site;

pub const FROM: &str = "2026-11-01T00:00:00Z";
pub const TO: &str = "2026-12-01T00:00:00Z";
pub const MIN: i64 = 60_000;

pub fn ms(t: &str) -> i64 {
    t.parse::<jiff::Timestamp>().expect("time").as_millisecond()
}

pub fn site() -> Site {
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
[calibration]
[[alarm_check_schedule]]
assets = ["dewar-1"]
every = "monthly"
"#,
    )
}

/// One seeded alarm.
pub struct Seeded {
    pub id: i64,
    pub rule: &'static str,
    pub raised: i64,
    pub since: i64,
    /// (by, at, path)
    pub ack: Option<(&'static str, i64, &'static str)>,
    pub returned: Option<i64>,
    pub cleared: Option<i64>,
    pub closed: Option<i64>,
    pub test: bool,
}

pub fn alarms() -> Vec<Seeded> {
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
pub type Page = (
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

pub fn pages() -> Vec<Page> {
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

/// One seeded physical alarm check of `dewar-1.temp`: (id, started, state).
pub fn checks() -> Vec<(i64, i64, &'static str)> {
    vec![
        (1, ms("2026-11-05T09:00:00Z"), "passed"),
        (2, ms("2026-11-20T09:00:00Z"), "failed"),
        (3, ms("2026-11-25T09:00:00Z"), "abandoned"),
        // Still running: not counted until it ends.
        (4, ms("2026-11-30T09:00:00Z"), "running"),
    ]
}

/// Temperature readings every minute for the first ten days; none of the lid.
pub const READINGS: i64 = 10 * 1440;

pub fn seed(site: &Site) {
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
    for (id, started, state) in checks() {
        let finished = (state != "running").then_some(started + 30 * MIN);
        let (reference, difference) = match state {
            "passed" => (Some(-150.4), Some(-0.4)),
            "failed" => (Some(-147.5), Some(2.5)),
            _ => (None, None),
        };
        db.execute(
            "INSERT INTO alarm_check (id, sensor, started_at, started_by, silent, tolerance, deadline, state,
                 finished_at, reference, rule, difference)
             VALUES (?1, 'dewar-1.temp', ?2, 'tech-a', 0, 1.0, ?3, ?4, ?5, ?6, 'warm', ?7)",
            params![id, started, started + 120 * MIN, state, finished, reference, difference],
        )
        .expect("alarm check");
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
