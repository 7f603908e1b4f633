//! The command line as operators and scripts use it: the demo, `run` refusing a bad
//! config, SIGHUP with a broken config, the exit codes of `history` and `status`, and
//! reading commands that need none of the service's secrets.

mod common;

use std::time::Duration;

use common::{Site, cryowatch_output, free_port, parse_csv, wait_for};

/// A site whose only device refuses connections: the daemon records `comm_error`
/// readings on its own, with no peer needed.
fn refused_site() -> Site {
    let port = free_port();
    Site::new(&format!(
        r#"
[site]
name = "cli test"
[store]
path = "{{dir}}/cryowatch.db"
[[modbus.device]]
id = "plc"
transport = "tcp"
address = "127.0.0.1:{port}"
poll_interval = "200ms"
timeout = "200ms"
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
"#
    ))
}

#[test]
fn demo_shows_live_readings_that_history_and_status_read_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    let out = cryowatch_output(&["demo", "--dir", &d, "--for", "7s"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = format!("{d}/cryowatch.toml");
    assert!(stdout.contains(&config), "demo must say where its config is:\n{stdout}");
    assert!(
        stdout.contains("readings stored"),
        "demo must show live readings:\n{stdout}"
    );
    assert!(stdout.contains("dewar-1.temp"), "{stdout}");

    let history = |sensor: &str| {
        let out = cryowatch_output(&["history", "-c", &config, "--sensor", sensor, "--from", "-1h"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        parse_csv(&String::from_utf8_lossy(&out.stdout))
    };
    // Polled every 2 s for 7 s, with noise of ±0.05 around the nominal values.
    let dewar = history("dewar-1.temp");
    assert!(dewar.len() >= 3, "{dewar:?}");
    for r in &dewar {
        assert_eq!(r.quality, "good", "{r:?}");
        assert_eq!(r.unit, "degC");
        let v = r.value.expect("a good reading has a value");
        assert!((v + 190.5).abs() < 0.2, "dewar temperature {v}");
    }
    let level = history("dewar-1.level");
    assert!(
        level.iter().all(|r| r.value.is_some_and(|v| (v - 85.3).abs() < 0.2)),
        "{level:?}"
    );
    let freezer = history("freezer-7.temp");
    assert!(
        freezer.iter().all(|r| r.value.is_some_and(|v| (v + 80.0).abs() < 0.2)),
        "{freezer:?}"
    );
    assert!(!freezer.is_empty());

    let out = cryowatch_output(&["status", "-c", &config, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    let rows = rows.as_array().expect("an array of sensors");
    assert_eq!(
        rows.len(),
        20,
        "every demo sensor is listed, and the monitor's own record and sign-in watch"
    );
    for r in rows {
        assert_ne!(r["state"], "no_data", "{r}");
    }
    let record = rows
        .iter()
        .find(|r| r["sensor"] == "cryowatch.record")
        .expect("the record's row");
    assert_eq!(record["value"], 0.0, "the record verifies: {record}");
    assert_eq!(record["asset"], "cryowatch", "{record}");
    assert!(
        rows.iter().any(|r| r["sensor"] == "cryowatch.security"),
        "the demo serves the dashboard, so its sign-ins are watched"
    );
    // A discrete input keeps its number for machines and gets its name for people.
    let lid = rows
        .iter()
        .find(|r| r["sensor"] == "dewar-1.lid")
        .expect("the lid's row");
    assert_eq!(
        (&lid["value"], &lid["value_name"]),
        (&0.0.into(), &"closed".into()),
        "{lid}"
    );
    let battery = rows
        .iter()
        .find(|r| r["sensor"] == "ups-1.on_battery")
        .expect("the UPS's row");
    assert_eq!(battery["value_name"], "on mains", "{battery}");
    let temp = rows.iter().find(|r| r["sensor"] == "dewar-1.temp").expect("temp");
    assert!(temp["value_name"].is_null(), "a measurement has no state name: {temp}");
    let out = cryowatch_output(&["status", "-c", &config]);
    let table = String::from_utf8_lossy(&out.stdout);
    let line = |sensor: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{sensor} ")))
            .unwrap_or_else(|| panic!("no {sensor} in:\n{table}"))[sensor.len()..]
            .to_string()
    };
    let lid = line("dewar-1.lid");
    assert!(lid.contains(" closed ") && !lid.contains(" open "), "{table}");
    let battery = line("ups-1.on_battery");
    assert!(
        battery.contains(" on mains ") && !battery.contains("on_battery"),
        "{table}"
    );
    assert!(
        stdout.contains("dewar-1.lid")
            && stdout
                .lines()
                .any(|l| l.contains("dewar-1.lid") && l.contains("closed")),
        "the demo's live view names the lid's state:\n{stdout}"
    );
    assert!(
        stdout.contains("dashboard: http://127.0.0.1:") && stdout.contains("user: demo  password: "),
        "{stdout}"
    );
}

#[test]
fn run_refuses_an_invalid_config_with_exit_2_and_every_problem() {
    let site = Site::new(
        r#"
[store]
path = "{dir}/x.db"
[[sensor]]
id = "a"
asset = "nowhere"
quantity = "temperature"
unit = "degC"
[sensor.modbus]
device = "nodevice"
register = "input"
address = 0
type = "f32"
"#,
    );
    let out = cryowatch_output(&["run", "-c", &site.config_str()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sensor[0].asset"), "{stderr}");
    assert!(stderr.contains("sensor[0].modbus.device"), "{stderr}");
    assert!(
        !site.path().join("x.db").exists(),
        "nothing may be created from an invalid config"
    );
}

#[test]
fn sighup_with_a_broken_config_keeps_the_daemon_running() {
    let site = refused_site();
    let daemon = site.start_daemon();
    // Never silence: a refused connection is recorded as comm_error.
    wait_for(Duration::from_secs(10), "comm_error readings", || {
        let rows = site.history("dewar-1.temp");
        (rows.len() >= 2).then_some(())
    });
    assert!(
        site.history("dewar-1.temp")
            .iter()
            .all(|r| r.quality == "comm_error" && r.value.is_none())
    );

    // `history` reads through an intact copy once the live config is broken.
    let good = site.path().join("good.toml");
    std::fs::copy(site.config(), &good).expect("copy config");
    std::fs::write(site.config(), "[store\nthis is not toml").expect("break the config");
    daemon.signal("HUP");
    wait_for(Duration::from_secs(10), "the SIGHUP complaint in the log", || {
        site.daemon_log().contains("configuration is invalid").then_some(())
    });
    let before = site.history_at(&good, "dewar-1.temp").len();
    std::thread::sleep(Duration::from_millis(800));
    let mut daemon = daemon;
    assert!(
        daemon.running(),
        "the daemon must survive a bad reload:\n{}",
        site.daemon_log()
    );
    let after = site.history_at(&good, "dewar-1.temp").len();
    assert!(
        after > before,
        "readings must keep coming after a bad reload ({before} -> {after})"
    );
    site.stop_daemon(daemon);
}

#[test]
fn history_and_status_exit_codes() {
    let site = refused_site();
    let c = site.config_str();
    // Nothing recorded yet: a runtime failure, clearly worded.
    let out = cryowatch_output(&["status", "-c", &c]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    let daemon = site.start_daemon();
    wait_for(Duration::from_secs(10), "a reading", || {
        (!site.history("dewar-1.temp").is_empty()).then_some(())
    });
    site.stop_daemon(daemon);

    for args in [
        vec!["history", "-c", &c, "--sensor", "no-such-sensor"],
        vec![
            "history",
            "-c",
            &c,
            "--sensor",
            "dewar-1.temp",
            "--from",
            "yesterday-ish",
        ],
        vec![
            "history",
            "-c",
            &c,
            "--sensor",
            "dewar-1.temp",
            "--from",
            "now",
            "--to",
            "-1h",
        ],
        vec!["history", "-c", &c, "--sensor", "dewar-1.temp", "--format", "xml"],
    ] {
        let out = cryowatch_output(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.trim().is_empty(), "{args:?} must say what is wrong");
    }
    // Relative times in both spellings.
    for args in [
        vec!["history", "-c", &c, "--sensor", "dewar-1.temp", "--from", "-1h"],
        vec![
            "history",
            "-c",
            &c,
            "--sensor",
            "dewar-1.temp",
            "--from=-1h",
            "--to",
            "now",
        ],
    ] {
        let out = cryowatch_output(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!parse_csv(&String::from_utf8_lossy(&out.stdout)).is_empty(), "{args:?}");
    }
    let out = cryowatch_output(&["status", "-c", &c]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("dewar-1.temp") && table.contains("comm_error"),
        "{table}"
    );
}

/// Reading commands do not need the service's secrets: a person without the SMTP
/// password in their environment can still see status and alarms. `check` (and `run`)
/// still demand every secret, naming the key.
#[test]
fn reading_commands_work_without_the_channel_secrets_that_check_demands() {
    let site = Site::new(
        r#"
[site]
name = "secrets test"
[store]
path = "{dir}/cryowatch.db"
[[asset]]
id = "dewar-1"
kind = "ln2_dewar"
[[channel]]
id = "email"
kind = "smtp"
host = "smtp.example.org"
from = "cryowatch@example.org"
username = "cryowatch"
password_env = "CRYOWATCH_CLI_TEST_UNSET_PASSWORD"
"#,
    );
    // The store as the daemon leaves it.
    cryowatch::store::Store::open(&site.path().join("cryowatch.db")).expect("create the store");
    let c = site.config_str();
    for args in [
        vec!["status", "-c", &c],
        vec!["alarms", "-c", &c],
        vec!["audit", "verify", "-c", &c],
    ] {
        let out = cryowatch_output(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = cryowatch_output(&["check", "-c", &c]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "{c}: channel[0].password_env: environment variable \"CRYOWATCH_CLI_TEST_UNSET_PASSWORD\" is not set\n"
        )
    );
}

/// `oncall` says who is on call at a time, who is next and from when, with the start the
/// rotation counts from, written or implied.
#[test]
fn oncall_names_who_is_on_call_and_who_is_next() {
    let site = Site::new(
        r#"
[site]
name = "rota"
timezone = "America/Chicago"
[store]
path = "{dir}/cryowatch.db"
[[contact]]
id = "alice"
email = "alice@example.org"
[[contact]]
id = "bob"
email = "bob@example.org"
[[contact]]
id = "carol"
email = "carol@example.org"
[[schedule]]
id = "primary"
rotation = "weekly"
handoff = "Mon 08:00"
start = "2026-11-25 12:00"
members = ["alice", "bob"]
[[schedule.override]]
contact = "carol"
from = "2026-12-24T17:00:00-06:00"
to = "2026-12-26T08:00:00-06:00"
[[schedule]]
id = "nights"
rotation = "daily"
handoff = "20:00"
members = ["bob"]
"#,
    );
    let c = site.config_str();
    let out = cryowatch_output(&["oncall", "-c", &c, "--at", "2026-11-26"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "primary (weekly, start 2026-11-25T12:00:00-06:00)\n  now   alice\n  next  bob from 2026-11-30T08:00:00-06:00\n\
         nights (daily, start 2024-01-01T20:00:00-06:00 (implied: no start written))\n  now   bob\n  next  nobody else\n"
    );
    let out = cryowatch_output(&["oncall", "-c", &c, "--at", "2026-12-24T12:00:00-06:00", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v[0]["now"], "alice", "{v}");
    assert_eq!(v[0]["next"], "carol");
    assert_eq!(v[0]["next_by_override"], true);
    assert_eq!(v[0]["next_from"], "2026-12-24T17:00:00-06:00");
    let out = cryowatch_output(&["oncall", "-c", &c, "--at", "soon"]);
    assert_eq!(out.status.code(), Some(2));
}
