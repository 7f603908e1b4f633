//! The UPS source against a real NUT 2.8 upsd with a `dummy-ups` driver: every variable
//! stored while on line, a power cut (`OB LB`) seen within a few polls, and a dead driver,
//! a stopped upsd or an unknown UPS name giving `comm_error` readings every poll — never
//! silence — with recovery when the fault goes away.
//!
//! A whole power cut played by the driver (OL → OB DISCHRG → OB LB → FSD → OL CHRG) with
//! the rules and escalation of the README's lab pages the mains loss, then the battery
//! going low, then one return to normal naming every alarm of the incident.
//!
//! Every test has its own upsd, port, store and directory, so they run in parallel.
//! Readings are read back the way an operator does: `cryowatch history --format csv`.

mod common;

use std::time::{Duration, Instant};

use common::nut::Nut;
use common::smtp::SmtpServer;
use common::{Row, Site, cryowatch_output};

/// The daemon polls upsd this often in every test.
const POLL: &str = "200ms";

/// How long a test waits for the daemon to store what it should.
const PATIENCE: Duration = Duration::from_secs(15);

/// The sensors of UPS `ups`, one per variable: (sensor id, variable, expected on line).
const POINTS: [(&str, &str, f64); 5] = [
    ("ups.on_battery", "on_battery", 0.0),
    ("ups.low_battery", "low_battery", 0.0),
    ("ups.charge", "charge", 100.0),
    ("ups.runtime", "runtime", 3600.0),
    ("ups.input_voltage", "input_voltage", 230.0),
];

/// A config with one `[[ups]] id = "ups"` at `addr` named `name`, reading every variable.
/// `extra` goes into the `[[ups]]` table (e.g. a username).
fn config(addr: &str, name: &str, extra: &str) -> String {
    let mut c = format!(
        "[site]\nname = \"ups nut test\"\ntimezone = \"UTC\"\n\n[store]\npath = \"{{dir}}/cryowatch.db\"\n\n\
         [[ups]]\nid = \"ups\"\nnut = \"{addr}\"\nname = \"{name}\"\npoll_interval = \"{POLL}\"\n{extra}\n\
         [[asset]]\nid = \"power\"\nkind = \"other\"\n"
    );
    for (id, variable, _) in POINTS {
        c += &format!(
            "\n[[sensor]]\nid = \"{id}\"\nasset = \"power\"\n[sensor.ups]\nups = \"ups\"\nvariable = \"{variable}\"\n"
        );
    }
    c
}

/// Writes the config, asserts `cryowatch check` accepts it, and starts the daemon.
fn start(config: &str) -> (Site, common::Proc) {
    let site = Site::new(config);
    let out = cryowatch_output(&["check", "-c", &site.config_str()]);
    assert!(
        out.status.success(),
        "cryowatch check refused the test config:\n{}\n{config}",
        String::from_utf8_lossy(&out.stderr)
    );
    let daemon = site.start_daemon();
    (site, daemon)
}

/// A directory for NUT's files with a short path (the driver's socket lives there).
fn nut_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("nut")
        .tempdir_in("/tmp")
        .expect("NUT temp dir")
}

/// Waits until `done` holds for the readings of `sensor`, polling `history`; on timeout
/// the panic shows the readings and the daemon's log.
fn wait_rows(site: &Site, sensor: &str, what: &str, done: impl Fn(&[Row]) -> bool) -> Vec<Row> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let rows = site.history(sensor);
        if done(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{sensor}: timed out after {PATIENCE:?} waiting for {what}; last readings: {:?}\ndaemon log:\n{}",
            &rows[rows.len().saturating_sub(5)..],
            site.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn is(row: Option<&Row>, quality: &str, value: Option<f64>) -> bool {
    row.is_some_and(|r| r.quality == quality && r.value == value)
}

/// Waits until the latest reading of every sensor is good with the on-line value.
fn wait_on_line(site: &Site) {
    for (id, _, value) in POINTS {
        wait_rows(site, id, &format!("a good reading of {value}"), |rows| {
            is(rows.last(), "good", Some(value))
        });
    }
}

/// Waits until `n` more `comm_error` readings (no value) than now are stored for every
/// sensor, and the latest is one of them.
fn wait_comm_errors(site: &Site, n: usize) {
    let before: Vec<usize> = POINTS.iter().map(|(id, _, _)| comm_errors(&site.history(id))).collect();
    for ((id, _, _), before) in POINTS.iter().zip(before) {
        wait_rows(site, id, &format!("{n} more comm_error readings"), |rows| {
            comm_errors(rows) >= before + n && is(rows.last(), "comm_error", None)
        });
    }
}

fn comm_errors(rows: &[Row]) -> usize {
    rows.iter()
        .filter(|r| {
            assert!(
                r.quality != "comm_error" || r.value.is_none(),
                "comm_error with a value: {r:?}"
            );
            r.quality == "comm_error"
        })
        .count()
}

#[test]
fn an_online_ups_gives_every_variable_with_a_login() {
    let dir = nut_dir();
    let nut = Nut::start(dir.path(), "labups");
    let login = format!("username = \"{}\"\npassword = \"{}\"\n", Nut::USER, Nut::PASSWORD);
    let (site, daemon) = start(&config(&nut.addr(), nut.name(), &login));
    wait_on_line(&site);
    site.stop_daemon(daemon);
    for (id, _, value) in POINTS {
        let rows = site.history(id);
        assert!(
            rows.iter().all(|r| r.quality == "good" && r.value == Some(value)),
            "{id}: every reading should be good {value}: {rows:?}"
        );
    }
}

#[test]
fn a_power_cut_shows_on_battery_and_low_battery_within_a_few_polls_and_clears() {
    let dir = nut_dir();
    let nut = Nut::start(dir.path(), "labups");
    let (site, daemon) = start(&config(&nut.addr(), nut.name(), ""));
    wait_on_line(&site);

    nut.set("ups.status", "OB LB");
    let cut = Instant::now();
    for id in ["ups.on_battery", "ups.low_battery"] {
        wait_rows(&site, id, "1 after the power cut", |rows| {
            is(rows.last(), "good", Some(1.0))
        });
    }
    assert!(
        cut.elapsed() < Duration::from_secs(3),
        "the power cut took {:?} to be stored",
        cut.elapsed()
    );

    nut.set("ups.status", "OL");
    for id in ["ups.on_battery", "ups.low_battery"] {
        wait_rows(&site, id, "0 after mains came back", |rows| {
            is(rows.last(), "good", Some(0.0))
        });
    }
    site.stop_daemon(daemon);
}

#[test]
fn a_dead_driver_gives_comm_error_every_poll_until_it_is_back() {
    let dir = nut_dir();
    let mut nut = Nut::start(dir.path(), "labups");
    let (site, daemon) = start(&config(&nut.addr(), nut.name(), ""));
    wait_on_line(&site);

    nut.kill_driver();
    wait_comm_errors(&site, 3);
    let log = site.daemon_log();
    assert!(log.contains("DRIVER-NOT-CONNECTED"), "the log should say why:\n{log}");

    // Mains fails while the driver is down: the restarted driver reports it.
    nut.set("ups.status", "OB");
    nut.start_driver();
    wait_rows(&site, "ups.on_battery", "on battery after the driver restart", |rows| {
        is(rows.last(), "good", Some(1.0))
    });
    wait_rows(&site, "ups.charge", "a good charge again", |rows| {
        is(rows.last(), "good", Some(100.0))
    });
    site.stop_daemon(daemon);
    // While the driver was starting (ups.status WAIT) nothing may have read "on line".
    let on_battery = site.history("ups.on_battery");
    let first_after_fault = on_battery
        .iter()
        .position(|r| r.quality == "comm_error")
        .expect("comm_error readings");
    assert!(
        on_battery[first_after_fault..]
            .iter()
            .all(|r| r.quality == "comm_error" || r.value == Some(1.0)),
        "a reading between the driver's death and its data said on line: {on_battery:?}"
    );
}

#[test]
fn a_stopped_upsd_gives_comm_error_every_poll_and_recovers_on_restart() {
    let dir = nut_dir();
    let mut nut = Nut::start(dir.path(), "labups");
    let (site, daemon) = start(&config(&nut.addr(), nut.name(), ""));
    wait_on_line(&site);

    nut.kill_upsd();
    let stopped = Instant::now();
    wait_comm_errors(&site, 3);
    // Still one reading per poll while the reconnects back off.
    std::thread::sleep(Duration::from_millis(1000));
    let rows = site.history("ups.charge");
    let down = comm_errors(&rows);
    let polls = stopped.elapsed().as_millis() / 200;
    assert!(
        down as u128 + 3 >= polls,
        "{down} comm_error readings in {:?} of polling every {POLL}: {rows:?}",
        stopped.elapsed()
    );
    let log = site.daemon_log();
    assert!(log.contains(&nut.addr()), "the log should name upsd's address:\n{log}");

    nut.start_upsd();
    wait_on_line(&site);
    site.stop_daemon(daemon);
}

#[test]
fn an_unknown_ups_name_gives_comm_error_and_a_log_naming_it() {
    let dir = nut_dir();
    let nut = Nut::start(dir.path(), "labups");
    let (site, daemon) = start(&config(&nut.addr(), "nosuchups", ""));
    wait_comm_errors(&site, 3);
    site.stop_daemon(daemon);
    let log = site.daemon_log();
    assert!(
        log.contains("nosuchups") && log.contains("UNKNOWN-UPS"),
        "the log should name the UPS upsd does not know:\n{log}"
    );
    assert_eq!(
        log.matches("UNKNOWN-UPS").count(),
        1,
        "the same failure should be logged once, not every poll:\n{log}"
    );
}

#[test]
fn a_variable_the_ups_does_not_report_gives_sensor_fault() {
    let dir = nut_dir();
    let nut = Nut::start_with(
        dir.path(),
        "smallups",
        &[
            ("ups.status", "OL"),
            ("battery.charge", "80"),
            ("battery.runtime", "n/a"),
        ],
    );
    let (site, daemon) = start(&config(&nut.addr(), nut.name(), ""));
    for id in ["ups.input_voltage", "ups.runtime"] {
        wait_rows(&site, id, "sensor_fault readings", |rows| {
            rows.len() >= 3 && rows.iter().all(|r| r.quality == "sensor_fault" && r.value.is_none())
        });
    }
    wait_rows(&site, "ups.charge", "a good 80", |rows| {
        is(rows.last(), "good", Some(80.0))
    });
    site.stop_daemon(daemon);
    let log = site.daemon_log();
    assert_eq!(
        log.matches("does not report input.voltage").count(),
        1,
        "a missing variable should be logged once:\n{log}"
    );
    assert!(log.contains("battery.runtime"), "{log}");
}

/// The README lab's UPS, its power rules and its escalation (the on-call person at once,
/// a second person after 10 minutes, the whole sequence twice more), paging by email.
fn lab_config(nut: &Nut, smtp_port: u16) -> String {
    format!(
        r#"[site]
name = "Cell Therapy Lab B"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
[[ups]]
id = "ups-lab-b"
nut = "{addr}"
name = "{name}"
poll_interval = "{POLL}"
[[asset]]
id = "ups-lab-b"
name = "Lab B UPS"
kind = "ups"
location = "Room 210"
[[sensor]]
id = "ups-lab-b.on_battery"
asset = "ups-lab-b"
quantity = "state"
unit = "on_battery"
[sensor.ups]
ups = "ups-lab-b"
variable = "on_battery"
[[sensor]]
id = "ups-lab-b.low_battery"
asset = "ups-lab-b"
quantity = "state"
unit = "low_battery"
[sensor.ups]
ups = "ups-lab-b"
variable = "low_battery"
[[sensor]]
id = "ups-lab-b.runtime"
asset = "ups-lab-b"
quantity = "runtime"
unit = "s"
[sensor.ups]
ups = "ups-lab-b"
variable = "runtime"
[[sensor]]
id = "ups-lab-b.charge"
asset = "ups-lab-b"
quantity = "charge"
unit = "%"
[sensor.ups]
ups = "ups-lab-b"
variable = "charge"
[[rule]]
id = "mains-lost"
sensor = "ups-lab-b.on_battery"
kind = "state"
equals = 1
delay = "1s"
severity = "critical"
incident = "power"
[[rule]]
id = "battery-low"
sensor = "ups-lab-b.low_battery"
kind = "state"
equals = 1
severity = "critical"
[[rule]]
id = "runtime-short"
sensor = "ups-lab-b.runtime"
kind = "low"
threshold = 600.0
hysteresis = 60.0
severity = "critical"
[[contact]]
id = "alice"
name = "Alice Nguyen"
email = "alice@example.org"
[[contact]]
id = "carol"
name = "Carol Smith"
email = "carol@example.org"
[[escalation]]
id = "cryo-oncall"
repeat = 2
repeat_interval = "15m"
[[escalation.step]]
after = "0s"
notify = ["contact:alice"]
via = ["email"]
[[escalation.step]]
after = "10m"
notify = ["contact:carol"]
via = ["email"]
[[route]]
escalation = "cryo-oncall"
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
"#,
        addr = nut.addr(),
        name = nut.name()
    )
}

#[test]
fn a_power_cut_pages_the_mains_loss_then_the_battery_going_low_then_one_return_to_normal_naming_all() {
    let dir = nut_dir();
    let nut = Nut::start_with(
        dir.path(),
        "labups",
        &[
            ("ups.status", "OL"),
            ("battery.charge", "100"),
            ("battery.runtime", "3600"),
        ],
    );
    let smtp = SmtpServer::start(dir.path());
    let (site, daemon) = start(&lab_config(&nut, smtp.port));
    wait_rows(&site, "ups-lab-b.on_battery", "on line", |rows| {
        is(rows.last(), "good", Some(0.0))
    });
    let subjects = || -> Vec<String> {
        smtp.messages()
            .iter()
            .map(|m| m.header("Subject").unwrap_or_default().to_string())
            .collect()
    };

    // Mains lost: one page.
    nut.set("battery.runtime", "1800");
    nut.set("ups.status", "OB DISCHRG");
    let mails = smtp.wait_messages(1, PATIENCE);
    let first = mails[0].header("Subject").unwrap_or_default().to_string();
    assert!(first.contains("[CRITICAL] Lab B UPS: ups-lab-b.on_battery"), "{first}");

    // The battery goes low and the runtime short: one incident update.
    nut.set("battery.charge", "20");
    nut.set("ups.status", "OB LB");
    nut.set("battery.runtime", "300");
    let mails = smtp.wait_messages(2, PATIENCE);
    let update = &mails[1];
    let subject = update.header("Subject").unwrap_or_default();
    assert!(
        subject.contains("Power incident") && subject.contains("update") && subject.contains("ups-lab-b.low_battery"),
        "{subject}"
    );
    // The forced shutdown signal and the rest of the discharge page nobody again.
    nut.set("ups.status", "FSD OB LB");
    nut.set("battery.charge", "5");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(subjects().len(), 2, "{:?}", subjects());

    // Power back: one return to normal, naming every alarm of the incident.
    nut.set("battery.runtime", "1500");
    nut.set("ups.status", "OL CHRG");
    let mails = smtp.wait_messages(3, PATIENCE);
    let normal = &mails[2];
    let subject = normal.header("Subject").unwrap_or_default();
    assert!(
        subject.contains("[NORMAL]") && subject.contains("ups-lab-b.on_battery"),
        "{subject}"
    );
    for rule in ["battery-low", "runtime-short"] {
        assert!(
            normal
                .body
                .lines()
                .any(|l| l.contains(rule) && l.contains("back to normal at")),
            "the return to normal names {rule}:\n{}",
            normal.body
        );
    }
    assert!(normal.rcpt_tos == ["alice@example.org"], "{:?}", normal.rcpt_tos);
    // Nothing else: no separate return to normal for the battery, no second update.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(subjects().len(), 3, "{:?}", subjects());
    site.stop_daemon(daemon);
}
