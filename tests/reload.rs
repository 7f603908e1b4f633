//! SIGHUP with a good and a bad configuration, against a real daemon polling cryosim:
//! a good one is applied (a sensor added, a threshold changed) with no reading lost and
//! the open alarm kept; a bad one is refused, the daemon keeps running on the old one and
//! `status` raises it as a warning until a good one is loaded; all of it audited.

mod common;

use std::time::Duration;

use common::cryosim::CryoSim;
use common::{Site, cryowatch_output, wait_for};

const PATIENCE: Duration = Duration::from_secs(20);

fn config(sim: &CryoSim, with_level: bool, threshold: f64) -> String {
    let level = if with_level {
        "[[sensor]]\nid = \"dewar-1.level\"\nasset = \"dewar-1\"\nquantity = \"level\"\nunit = \"percent\"\n[sensor.modbus]\ndevice = \"ctrl\"\nregister = \"holding\"\naddress = 10\ntype = \"u16\"\nscale = 0.1\n"
    } else {
        ""
    };
    format!(
        r#"[site]
name = "reload lab"
[store]
path = "{{dir}}/cryowatch.db"
{dewar}{level}[[rule]]
id = "dewar-warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = {threshold}
hysteresis = 0.5
severity = "critical"
"#,
        dewar = sim.dewar_toml()
    )
}

fn open_alarms(site: &Site) -> Vec<i64> {
    let out = cryowatch_output(&["alarms", "-c", &site.config_str(), "--active", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x["id"].as_i64()).collect())
        .unwrap_or_default()
}

#[test]
fn sighup_applies_a_good_configuration_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().expect("dir");
    let sim = CryoSim::start(dir.path());
    // -191 °C: the dewar (about -190 °C) is above it, so the alarm is open from the start.
    let site = Site::new(&config(&sim, false, -191.0));
    let daemon = site.start_daemon();
    let alarm = wait_for(PATIENCE, "the alarm", || open_alarms(&site).first().copied());
    let before = site.history("dewar-1.temp").len();

    // A good configuration: one more sensor, a changed threshold that still alarms.
    std::fs::write(
        site.config(),
        config(&sim, true, -190.8).replace("{dir}", &site.path().display().to_string()),
    )
    .expect("write config");
    daemon.signal("HUP");
    wait_for(PATIENCE, "the new sensor's readings", || {
        (!site.history("dewar-1.level").is_empty()).then_some(())
    });
    assert_eq!(
        open_alarms(&site),
        vec![alarm],
        "the open alarm is kept across the reload"
    );
    // Polling never stopped for long: no gap over 3 s in the temperature record.
    let rows = site.history("dewar-1.temp");
    assert!(rows.len() > before);
    let times: Vec<i64> = rows
        .iter()
        .map(|r| {
            r.time
                .parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .unwrap_or(0)
        })
        .collect();
    let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(gap < 3000, "a {gap} ms gap in the readings across the reload");

    // A bad configuration: refused, the daemon keeps running on the one it has. (The
    // command line reads the store through a good copy: the file itself is broken now.)
    let good = site.path().join("good.toml");
    std::fs::copy(site.config(), &good).expect("copy");
    let good = good.display().to_string();
    std::fs::write(site.config(), "[site]\nname = \"broken\"\n[[sensor]]\nid = 7\n").expect("write bad config");
    daemon.signal("HUP");
    let warning = wait_for(PATIENCE, "the refused reload in status", || {
        let out = cryowatch_output(&["status", "-c", &good]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        err.contains("reload").then_some(err)
    });
    assert!(warning.contains("WARNING") && warning.contains("refused"), "{warning}");
    let good_path = std::path::PathBuf::from(&good);
    let n = site.history_at(&good_path, "dewar-1.level").len();
    wait_for(PATIENCE, "readings to go on", || {
        (site.history_at(&good_path, "dewar-1.level").len() > n + 2).then_some(())
    });

    // Good again: applied, and the warning is gone.
    std::fs::write(
        site.config(),
        config(&sim, true, -190.8).replace("{dir}", &site.path().display().to_string()),
    )
    .expect("write config");
    daemon.signal("HUP");
    wait_for(PATIENCE, "the warning to clear", || {
        let out = cryowatch_output(&["status", "-c", &site.config_str()]);
        (!String::from_utf8_lossy(&out.stderr).contains("refused")).then_some(())
    });
    let log = cryowatch_output(&["audit", "log", "-c", &site.config_str(), "--kind", "config"]);
    let log = String::from_utf8_lossy(&log.stdout).to_string();
    for kind in ["config.loaded", "config.reloaded", "config.rejected"] {
        assert!(log.contains(kind), "{kind} not audited:\n{log}");
    }
    assert!(
        log.contains("dewar-1.level"),
        "the reload's diff names the added sensor:\n{log}"
    );
    site.stop_daemon(daemon);
}
