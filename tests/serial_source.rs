//! The serial line source against simulated TEC 3000-style controllers (`cryosim tec`)
//! on a socat pty pair, read by the daemon: three addresses on one line, a dead unit, a
//! garbled, faulty and late one, and fill events sent unasked.

mod common;

use std::time::Duration;

use common::tec::FakeTec;
use common::{Row, Site, wait_for};

const TIMEOUT_MS: u64 = 300;

/// A site reading 001, 002 and 004's temperatures on the line at `tty`, every second,
/// and 004's fill events.
fn site(tty: &std::path::Path) -> Site {
    Site::new(&format!(
        r#"
[site]
name = "serial test"
timezone = "UTC"

[store]
path = "{{dir}}/cryowatch.db"

[[serial.device]]
id = "tec-bus"
port = "{tty}"
baud = 9600
line_ending = "\r"
timeout = "{TIMEOUT_MS}ms"
poll_interval = "1s"

[[asset]]
id = "dewar-1"
kind = "ln2_dewar"

[[sensor]]
id = "u1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.serial]
device = "tec-bus"
query = "001 TEMPA?\r"
pattern = '^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$'
fault_patterns = ['^\s*ERR']

[[sensor]]
id = "u2.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.serial]
device = "tec-bus"
query = "002 TEMPA?\r"
pattern = '^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$'
fault_patterns = ['^\s*ERR']

[[sensor]]
id = "u4.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.serial]
device = "tec-bus"
query = "004 TEMPA?\r"
pattern = '^\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$'
fault_patterns = ['^\s*ERR']

[[sensor]]
id = "u4.filling"
asset = "dewar-1"
quantity = "state"
unit = "filling"
[sensor.serial]
device = "tec-bus"

[[serial.event]]
device = "tec-bus"
pattern = '^004 EVT FILL (START|END)'
sensor = "u4.filling"
values = {{ START = 1, END = 0 }}
"#,
        tty = tty.display()
    ))
}

fn millis(row: &Row) -> i64 {
    let t: jiff::Timestamp = row.time.parse().unwrap_or_else(|e| panic!("time {:?}: {e}", row.time));
    t.as_millisecond()
}

fn qualities(rows: &[Row]) -> Vec<&str> {
    rows.iter().map(|r| r.quality.as_str()).collect()
}

#[test]
fn live_units_read_every_poll_and_a_dead_one_only_comm_error_without_stalling_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tec = FakeTec::start(dir.path(), &["--mode", "002=dead"]);
    let site = site(&tec.tty);
    let daemon = site.start_daemon();
    let context = || format!("daemon:\n{}\n{}", site.daemon_log(), tec.log());
    wait_for(Duration::from_secs(20), "five polls of 004", || {
        (site.history("u4.temp").len() >= 5).then_some(())
    });
    site.stop_daemon(daemon);

    let (u1, u2, u4) = (
        site.history("u1.temp"),
        site.history("u2.temp"),
        site.history("u4.temp"),
    );
    for (rows, value) in [(&u1, -196.2), (&u4, -197.1)] {
        assert!(rows.len() >= 5, "{rows:?}\n{}", context());
        for r in rows.iter() {
            assert_eq!(
                (r.quality.as_str(), r.value),
                ("good", Some(value)),
                "{r:?}\n{}",
                context()
            );
        }
    }
    assert!(u2.len() >= 4, "{u2:?}\n{}", context());
    assert!(qualities(&u2).iter().all(|q| *q == "comm_error"), "{u2:?}");
    assert!(u2.iter().all(|r| r.value.is_none()), "{u2:?}");
    // Logged when it starts failing, not every poll.
    let log = site.daemon_log();
    let warned = log
        .lines()
        .filter(|l| l.contains("serial sensor not read") && l.contains(r#"sensor="u2.temp""#))
        .count();
    assert_eq!(warned, 1, "{log}");
    // One poll is 001, 002 (silent for the timeout), 004: 004 answers after 001 by the
    // dead unit's timeout plus the exchanges, never a whole timeout more.
    assert!(u1.len().abs_diff(u4.len()) <= 1, "001: {}, 004: {}", u1.len(), u4.len());
    for (a, b) in u1.iter().zip(&u4) {
        let lag = millis(b) - millis(a);
        let most = i64::try_from(2 * TIMEOUT_MS).unwrap_or(i64::MAX);
        assert!(
            (0..most).contains(&lag),
            "004 read {lag} ms after 001 (one dead unit between them, timeout {TIMEOUT_MS} ms): {a:?} {b:?}"
        );
    }
    // Every second, not slowed down by the dead unit.
    let span = millis(&u4[u4.len() - 1]) - millis(&u4[0]);
    let polls = i64::try_from(u4.len() - 1).unwrap_or(1);
    assert!((800..=1300).contains(&(span / polls)), "{span} ms for {polls} polls");
}

#[test]
fn garbled_faulty_and_late_answers_affect_only_their_own_sensor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tec = FakeTec::start(dir.path(), &["--late", "650ms"]);
    let site = site(&tec.tty);
    let daemon = site.start_daemon();
    let context = || format!("daemon:\n{}\n{}", site.daemon_log(), tec.log());
    let wait_rows = |sensor: &str, n: usize| {
        wait_for(Duration::from_secs(20), &format!("{n} readings of {sensor}"), || {
            let rows = site.history(sensor);
            (rows.len() >= n).then_some(rows)
        })
    };
    let before = wait_rows("u2.temp", 2);
    assert!(before.iter().all(|r| r.quality == "good"), "{before:?}\n{}", context());

    let mut seen = before.len();
    for (mode, quality) in [
        ("garbled", "comm_error"),
        ("fault", "sensor_fault"),
        ("late", "comm_error"),
    ] {
        tec.ok(&format!("mode 002 {mode}"));
        // The poll running when the mode changed may still see the old one.
        let rows = wait_rows("u2.temp", seen + 4);
        let tail = &rows[seen + 1..];
        assert!(
            tail.iter().all(|r| r.quality == quality && r.value.is_none()),
            "002 {mode}: {:?}\n{}",
            qualities(tail),
            context()
        );
        seen = rows.len();
    }
    site.stop_daemon(daemon);
    // 001 and 004 never took 002's noise, fault or late answer for theirs.
    for (sensor, value) in [("u1.temp", -196.2), ("u4.temp", -197.1)] {
        let rows = site.history(sensor);
        assert!(rows.len() >= 10, "{sensor}: {rows:?}");
        for r in &rows {
            assert_eq!(
                (r.quality.as_str(), r.value),
                ("good", Some(value)),
                "{r:?}\n{}",
                context()
            );
        }
    }
}

#[test]
fn fill_event_lines_become_readings_of_the_filling_sensor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tec = FakeTec::start(dir.path(), &[]);
    let site = site(&tec.tty);
    let daemon = site.start_daemon();
    let context = || format!("daemon:\n{}\n{}", site.daemon_log(), tec.log());
    wait_for(Duration::from_secs(20), "a first poll", || {
        (!site.history("u4.temp").is_empty()).then_some(())
    });
    assert!(site.history("u4.filling").is_empty(), "no event yet");
    tec.ok("event 004 FILL START");
    let rows = wait_for(Duration::from_secs(10), "the START event", || {
        let rows = site.history("u4.filling");
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(
        rows.iter().map(|r| (r.value, r.quality.as_str())).collect::<Vec<_>>(),
        [(Some(1.0), "good")],
        "{}",
        context()
    );
    // Another unit's event and a line nobody expects are no readings of it.
    tec.ok("event 001 FILL END");
    tec.ok("event 004 FILL END");
    wait_for(Duration::from_secs(10), "the END event", || {
        (site.history("u4.filling").len() >= 2).then_some(())
    });
    site.stop_daemon(daemon);
    let rows = site.history("u4.filling");
    assert_eq!(
        rows.iter().map(|r| r.value).collect::<Vec<_>>(),
        [Some(1.0), Some(0.0)],
        "{rows:?}\n{}",
        context()
    );
    assert!(millis(&rows[0]) < millis(&rows[1]));
    // The polled sensors kept reading meanwhile.
    assert!(site.history("u4.temp").iter().all(|r| r.quality == "good"));
    assert!(
        site.daemon_log().contains("unsolicited serial lines"),
        "001's event is logged as unmatched:\n{}",
        site.daemon_log()
    );
}

#[test]
fn a_missing_port_reads_comm_error_until_it_appears_and_again_when_it_goes() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The daemon starts before the line exists: DIR/ttyB is created by the pty pair.
    let site = site(&dir.path().join("ttyB"));
    let daemon = site.start_daemon();
    let missing = wait_for(Duration::from_secs(20), "three polls without a port", || {
        let rows = site.history("u1.temp");
        (rows.len() >= 3).then_some(rows)
    });
    assert!(qualities(&missing).iter().all(|q| *q == "comm_error"), "{missing:?}");
    let u4 = site.history("u4.temp");
    assert!(
        !u4.is_empty() && qualities(&u4).iter().all(|q| *q == "comm_error"),
        "{u4:?}"
    );

    let tec = FakeTec::start(dir.path(), &[]);
    // Reopened with backoff (1 s, 2 s, 4 s, ...): good readings within a few polls.
    let rows = wait_for(Duration::from_secs(30), "a good reading once the port exists", || {
        let rows = site.history("u1.temp");
        rows.iter().any(|r| r.quality == "good").then_some(rows)
    });
    let seen = rows.len();
    assert!(
        site.daemon_log().contains("serial port failed"),
        "the missing port is logged:\n{}",
        site.daemon_log()
    );
    drop(tec);
    let rows = wait_for(Duration::from_secs(20), "comm_error after the port went away", || {
        let rows = site.history("u1.temp");
        (rows.len() >= seen + 3).then_some(rows)
    });
    site.stop_daemon(daemon);
    let tail = &rows[seen + 1..];
    assert!(
        tail.iter().all(|r| r.quality == "comm_error"),
        "after the line went away: {:?}\n{}",
        qualities(tail),
        site.daemon_log()
    );
}
