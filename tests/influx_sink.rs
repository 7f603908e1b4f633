//! The InfluxDB mirror against a real line-protocol server (VictoriaMetrics, which
//! accepts InfluxDB v2's `/api/v2/write`): what lands, with which tags, values and times;
//! an outage back-filled in order and exactly once; `kill -9` during the back-fill; a
//! server refusing the credentials; and, through a fault-injecting proxy in front of the
//! real server, Retry-After, 413 and a refused (quarantined) batch.
//!
//! What landed is read back with `/api/v1/export`, never trusted from the 204, and
//! compared with the store read directly. VictoriaMetrics keeps every sample it is sent
//! (no deduplication), so a reading written twice shows up twice.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy};
use common::mosquitto::Mosquitto;
use common::strict_line_protocol::StrictLineProtocol;
use common::victoria::Victoria;
use common::{Proc, Site, cryowatch_output, wait_for};

const SENSORS: [(&str, &str, &str, &str); 3] = [
    ("dewar-1.temp", "dewar-1", "temperature", "degC"),
    ("dewar-1.level", "dewar-1", "level", "percent"),
    ("freezer-7.temp", "freezer-7", "temperature", "degC"),
];

const WAIT: Duration = Duration::from_secs(60);

fn config(broker: &Mosquitto, client_id: &str, influx_url: &str, influx_extra: &str) -> String {
    let mut text = format!(
        r#"[site]
name = "Lab B"
timezone = "UTC"

[store]
path = "{{dir}}/cryowatch.db"
flush_interval = "50ms"

[mqtt]
url = "{mqtt}"
client_id = "{client_id}"

[influx]
url = "{influx_url}"
org = "biorepo"
bucket = "cryo"
token = "test-token"
flush_interval = "100ms"
max_retry_interval = "1s"
{influx_extra}

[[asset]]
id = "dewar-1"
kind = "ln2_dewar"

[[asset]]
id = "freezer-7"
kind = "freezer_minus80"

[[sensor]]
id = "probe"
asset = "dewar-1"
quantity = "other"
unit = "x"
[sensor.mqtt]
topic = "probe/{client_id}"

[[rule]]
id = "freezer-7-warm"
sensor = "freezer-7.temp"
kind = "high"
threshold = -70.0
delay = "0s"
severity = "critical"
"#,
        mqtt = broker.url()
    );
    for (id, asset, quantity, unit) in SENSORS {
        text.push_str(&format!(
            "\n[[sensor]]\nid = \"{id}\"\nasset = \"{asset}\"\nquantity = \"{quantity}\"\nunit = \"{unit}\"\n[sensor.mqtt]\ntopic = \"lab/{id}\"\nformat = \"json\"\njson_path = \"v\"\ntimestamp_path = \"ts\"\n"
        ));
    }
    text
}

/// Readings of one sensor as the store holds them: (time ms, value, quality code).
type Stored = BTreeMap<String, Vec<(i64, Option<f64>, i64)>>;

fn stored(site: &Site) -> Stored {
    let conn = rusqlite::Connection::open_with_flags(
        site.path().join("cryowatch.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the store");
    // The running daemon may hold the lock a moment (a checkpoint): wait for it.
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy timeout");
    let mut st = conn
        .prepare("SELECT s.name, r.t, r.value, r.quality FROM reading r JOIN sensor s ON s.id = r.sensor ORDER BY s.name, r.t, r.seq")
        .expect("prepare");
    let mut out = Stored::new();
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query");
    for row in rows {
        let (name, t, v, q) = row.expect("row");
        out.entry(name).or_default().push((t, v, q));
    }
    out
}

fn stored_count(site: &Site) -> usize {
    if !site.path().join("cryowatch.db").exists() {
        return 0;
    }
    stored(site).values().map(Vec::len).sum()
}

/// Timestamps of every `cryo_reading` that landed, per sensor, in time order
/// (duplicates kept), from the `quality` field every point carries.
fn landed(vm: &Victoria) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for s in vm.export(r#"{__name__="cryo_reading_quality"}"#) {
        out.entry(s.label("sensor").to_string())
            .or_default()
            .extend(s.timestamps.iter().copied());
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}

/// What landed, read again for a few seconds while the server shows fewer than
/// `expected` samples: VictoriaMetrics can make a just-flushed part visible a moment
/// late. More than expected is returned at once (a duplicate is never waited away).
fn settled(vm: &Victoria, expected: usize) -> BTreeMap<String, Vec<i64>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = landed(vm);
        if now.values().map(Vec::len).sum::<usize>() >= expected || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `cryowatch influx status --json`.
fn influx_status(site: &Site) -> serde_json::Value {
    let out = cryowatch_output(&["influx", "status", "-c", &site.config_str(), "--json"]);
    assert!(
        out.status.success(),
        "influx status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("influx status JSON")
}

fn waiting(site: &Site) -> i64 {
    let s = influx_status(site);
    s["readings"].as_i64().unwrap_or(-1) + s["alarm_events"].as_i64().unwrap_or(-1)
}

/// Publishes until a probe reading is stored: the daemon is subscribed from then on.
fn wait_subscribed(site: &Site, broker: &Mosquitto, client_id: &str) {
    let topic = format!("probe/{client_id}");
    wait_for(Duration::from_secs(20), "the daemon to subscribe", || {
        broker.publish(&topic, "1", 1);
        std::thread::sleep(Duration::from_millis(100));
        (stored_count(site) > 0).then_some(())
    });
}

/// `n` readings per sensor, one a second ending an hour ago; the freezer warms past
/// its -70 °C threshold at reading `n / 2`.
fn publish(broker: &Mosquitto, start_ms: i64, n: usize) {
    for (k, (id, ..)) in SENSORS.iter().enumerate() {
        let lines: Vec<String> = (0..n)
            .map(|i| {
                let v = match k {
                    0 => -190.0 + i as f64 * 0.001,
                    1 => 80.0 - i as f64 * 0.01,
                    _ if i >= n / 2 => -65.5,
                    _ => -80.25,
                };
                format!(r#"{{"v":{v},"ts":{}}}"#, start_ms + i as i64 * 1000)
            })
            .collect();
        broker.publish_lines(&format!("lab/{id}"), &lines, 1);
    }
}

fn hour_ago() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    now - 3_600_000
}

/// Waits until the store holds `n` readings and nothing waits for InfluxDB.
fn wait_mirrored(site: &Site, n: usize) {
    wait_for(WAIT, &format!("{n} readings stored and mirrored"), || {
        (stored_count(site) >= n && waiting(site) == 0).then_some(())
    });
}

/// Every stored reading landed exactly once, with its time.
fn assert_exactly_once(site: &Site, vm: &Victoria) {
    let stored = stored(site);
    let landed = settled(vm, stored.values().map(Vec::len).sum());
    assert_eq!(
        landed.keys().collect::<Vec<_>>(),
        stored.keys().collect::<Vec<_>>(),
        "sensors"
    );
    for (sensor, rows) in &stored {
        let times: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(
            landed[sensor].len(),
            times.len(),
            "{sensor}: samples in the server vs readings stored"
        );
        assert_eq!(landed[sensor], times, "{sensor}: timestamps");
    }
}

fn start(site: &Site) -> Proc {
    site.start_daemon()
}

#[test]
fn readings_and_alarm_transitions_land_with_their_tags_values_and_times() {
    let broker = Mosquitto::start();
    let vm = Victoria::start();
    let id = "cw-influx-land";
    let site = Site::new(&config(&broker, id, &vm.url(), ""));
    let daemon = start(&site);
    wait_subscribed(&site, &broker, id);
    let total = stored_count(&site) + 300;
    publish(&broker, hour_ago(), 100);
    wait_mirrored(&site, total);
    assert_exactly_once(&site, &vm);

    // Values and tags, series by series.
    let stored = stored(&site);
    let values = vm.export(r#"{__name__="cryo_reading_value"}"#);
    for (id, asset, quantity, unit) in SENSORS {
        let s = values
            .iter()
            .find(|s| s.label("sensor") == id)
            .unwrap_or_else(|| panic!("no cryo_reading_value series for {id}"));
        assert_eq!(s.label("site"), "Lab B");
        assert_eq!(s.label("asset"), asset);
        assert_eq!(s.label("quantity"), quantity);
        assert_eq!(s.label("unit"), unit);
        let want: Vec<(i64, f64)> = stored[id].iter().map(|r| (r.0, r.1.expect("a value"))).collect();
        assert_eq!(s.points(), want, "{id}: values");
    }

    // The freezer's excursion as a cryo_alarm point, and the thresholds in force.
    let alarms = wait_for(WAIT, "the alarm transition in the server", || {
        let a = vm.export(r#"{__name__="cryo_alarm_alarm",rule="freezer-7-warm"}"#);
        (!a.is_empty()).then_some(a)
    });
    let raised = alarms
        .iter()
        .find(|s| s.label("event") == "raised")
        .unwrap_or_else(|| panic!("no raised transition: {alarms:?}"));
    assert_eq!(raised.label("severity"), "critical");
    assert_eq!(raised.label("sensor"), "freezer-7.temp");
    assert_eq!(raised.label("asset"), "freezer-7");
    assert_eq!(raised.timestamps.len(), 1, "raised once: {raised:?}");
    let value = vm.export(r#"{__name__="cryo_alarm_value",rule="freezer-7-warm",event="raised"}"#);
    assert_eq!(
        value.first().map(|s| s.values.clone()),
        Some(vec![-65.5]),
        "the value that raised it"
    );
    let thresholds = wait_for(WAIT, "the thresholds in the server", || {
        let t = vm.export(r#"{__name__="cryo_threshold_threshold"}"#);
        (t.len() >= 2).then_some(t)
    });
    let of = |rule: &str| {
        thresholds
            .iter()
            .find(|s| s.label("rule") == rule)
            .map(|s| (s.label("kind").to_string(), s.values[0]))
    };
    assert_eq!(of("freezer-7-warm"), Some(("high".into(), -70.0)));
    assert!(
        thresholds
            .iter()
            .any(|s| s.label("asset") == "dewar-1" && s.label("kind") == "high" && s.values[0] == -150.0),
        "the dewar's default threshold: {thresholds:?}"
    );
    site.stop_daemon(daemon);
}

#[test]
fn an_outage_is_back_filled_in_order_exactly_once_and_warned_about() {
    let broker = Mosquitto::start();
    let mut vm = Victoria::start();
    let id = "cw-influx-outage";
    let site = Site::new(&config(&broker, id, &vm.url(), "batch_size = 40\nlag_warning = \"1s\""));
    let daemon = start(&site);
    wait_subscribed(&site, &broker, id);
    wait_mirrored(&site, 1);

    vm.stop();
    let total = stored_count(&site) + 900;
    publish(&broker, hour_ago(), 300);
    wait_for(WAIT, "the readings to be stored while the server is down", || {
        (stored_count(&site) >= total).then_some(())
    });
    let status = wait_for(WAIT, "the failure to be recorded", || {
        let s = influx_status(&site);
        s["failure"].is_string().then_some(s)
    });
    assert!(status["readings"].as_i64().unwrap_or(0) >= 900, "{status}");
    std::thread::sleep(Duration::from_millis(1200));
    let out = cryowatch_output(&["status", "-c", &site.config_str()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.contains("InfluxDB mirror (") && stdout.contains("readings and"),
        "{stdout}"
    );
    assert!(stderr.contains("WARNING: InfluxDB mirror is"), "{stderr}");

    vm.start_again();
    // While the backlog drains, what has landed is always the oldest part of it.
    let stored_now = stored(&site);
    let deadline = Instant::now() + WAIT;
    let oldest_first = |snapshot: &BTreeMap<String, Vec<i64>>| {
        snapshot.iter().find_map(|(sensor, times)| {
            let all: Vec<i64> = stored_now[sensor].iter().map(|r| r.0).collect();
            (times.len() > all.len() || times[..] != all[..times.len()]).then(|| (sensor.clone(), times.len()))
        })
    };
    loop {
        // VictoriaMetrics can show a just-flushed part a moment late, so a view with a
        // hole is read again (a few times) before it counts as out of order.
        let mut wrong = oldest_first(&landed(&vm));
        for _ in 0..10 {
            if wrong.is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            wrong = oldest_first(&landed(&vm));
        }
        if let Some((sensor, n)) = wrong {
            panic!("{sensor}: landed {n} readings that are not the oldest ones");
        }
        if waiting(&site) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "back-fill did not finish");
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_exactly_once(&site, &vm);
    let out = cryowatch_output(&["status", "-c", &site.config_str()]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("InfluxDB mirror is"),
        "the lag warning clears once back-filled"
    );
    site.stop_daemon(daemon);
}

#[test]
fn kill_9_during_the_back_fill_loses_nothing_and_repeats_at_most_one_batch() {
    let broker = Mosquitto::start();
    let mut vm = Victoria::start();
    let id = "cw-influx-kill";
    const BATCH: usize = 25;
    let site = Site::new(&config(&broker, id, &vm.url(), &format!("batch_size = {BATCH}")));
    let mut daemon = start(&site);
    wait_subscribed(&site, &broker, id);
    wait_mirrored(&site, 1);
    vm.stop();
    let total = stored_count(&site) + 6000;
    publish(&broker, hour_ago(), 2000);
    wait_for(WAIT, "the backlog to be stored", || {
        (stored_count(&site) >= total).then_some(())
    });
    let backlog = waiting(&site);
    vm.start_again();
    // Kill the daemon once part of the backlog is confirmed.
    let at_kill = wait_for(WAIT, "the back-fill to start", || {
        let w = waiting(&site);
        (w < backlog - 200).then_some(w)
    });
    daemon.signal("KILL");
    let _ = daemon.wait_exit(Duration::from_secs(10));
    assert!(
        at_kill > 0,
        "the back-fill finished before the kill: nothing was tested"
    );
    let daemon = start(&site);
    wait_mirrored(&site, total);

    let stored = stored(&site);
    let landed = settled(&vm, stored.values().map(Vec::len).sum());
    let mut repeated = 0;
    for (sensor, rows) in &stored {
        let times: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let mut distinct = landed[sensor].clone();
        distinct.dedup();
        assert_eq!(distinct, times, "{sensor}: every reading landed");
        repeated += landed[sensor].len() - distinct.len();
    }
    assert!(
        repeated <= BATCH,
        "{repeated} readings written twice: more than the one batch in flight at the kill"
    );
    // A repeated point is the identical point (InfluxDB overwrites it).
    for s in vm.export(r#"{__name__="cryo_reading_value"}"#) {
        for w in s.points().windows(2) {
            if w[0].0 == w[1].0 {
                assert_eq!(w[0].1, w[1].1, "{}: a repeat with another value", s.label("sensor"));
            }
        }
    }
    site.stop_daemon(daemon);
}

#[test]
fn refused_credentials_keep_every_reading_and_raise_a_warning_until_corrected() {
    let broker = Mosquitto::start();
    let mut vm = Victoria::start_with(&["-httpAuth.username=admin", "-httpAuth.password=secret"]);
    let id = "cw-influx-401";
    let site = Site::new(&config(&broker, id, &vm.url(), ""));
    let daemon = start(&site);
    wait_subscribed(&site, &broker, id);
    publish(&broker, hour_ago(), 20);
    let status = wait_for(WAIT, "the refusal to be recorded", || {
        let s = influx_status(&site);
        (s["refused"] == true).then_some(s)
    });
    assert!(
        status["failure"].as_str().unwrap_or("").contains("HTTP 401"),
        "{status}"
    );
    let out = cryowatch_output(&["status", "-c", &site.config_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARNING: InfluxDB mirror refused"), "{stderr}");

    // The administrator fixes the server side; everything kept is sent.
    vm.stop();
    vm.set_args(&[]);
    vm.start_again();
    let total = stored_count(&site);
    wait_mirrored(&site, total);
    assert_exactly_once(&site, &vm);
    assert_eq!(influx_status(&site)["refused"], false);
    site.stop_daemon(daemon);
}

#[test]
fn retry_after_a_too_large_batch_and_a_refused_batch_are_handled_like_telegraf() {
    let broker = Mosquitto::start();
    let vm = Victoria::start();
    let proxy = FaultProxy::start(&format!("127.0.0.1:{}", vm.port));
    let id = "cw-influx-faults";
    let site = Site::new(&config(&broker, id, &proxy.url(), "batch_size = 100"));
    let daemon = start(&site);
    wait_subscribed(&site, &broker, id);
    wait_mirrored(&site, 1);
    let base = hour_ago();

    // 429 with Retry-After: 2 → the same batch again, no sooner than 2 s later.
    proxy.fail_next([Fault::status(429, "too many requests").header("Retry-After", "2")]);
    let seen_before = proxy.seen().len();
    publish(&broker, base, 10);
    let n = stored_count(&site);
    wait_mirrored(&site, n);
    let seen = proxy.seen()[seen_before..].to_vec();
    let refused = seen
        .iter()
        .position(|s| s.status == 429)
        .unwrap_or_else(|| panic!("no 429 answered: {seen:?}"));
    let retry = &seen[refused + 1];
    assert!(
        retry.at - seen[refused].at >= Duration::from_millis(1900),
        "retried after {:?}, before the 2 s Retry-After",
        retry.at - seen[refused].at
    );
    assert_exactly_once(&site, &vm);

    // 413 above 20 points → smaller batches until they pass; nothing lost.
    proxy.too_large_above(Some(20));
    publish(&broker, base + 100_000, 30);
    let n = stored_count(&site);
    wait_mirrored(&site, n);
    proxy.too_large_above(None);
    let seen = proxy.seen();
    assert!(seen.iter().any(|s| s.status == 413), "no batch was too large: {seen:?}");
    assert!(
        seen.iter().any(|s| s.status == 204 && s.lines > 1 && s.lines <= 20),
        "{seen:?}"
    );
    assert_exactly_once(&site, &vm);

    // 500 → retried; 400 for one point's content (every time it is sent) → the batch
    // is split until that point is alone; it alone is quarantined, counted, kept, and
    // its neighbours land; requeue sends it. Aimed at readings: an alarm transition in
    // the same moment must not take the fault.
    proxy.fail_next([Fault::status(500, "internal error").for_body_starting("cryo_reading,")]);
    let refused_at = (base + 200_000 + 2_000) * 1_000_000;
    let refused_parts = ["cryo_reading,", "sensor=dewar-1.temp,", &format!(" {refused_at}")];
    proxy.refuse_line(Some((
        &refused_parts,
        Fault::status(
            400,
            r#"{"code":"invalid","message":"partial write: field type conflict"}"#,
        ),
    )));
    publish(&broker, base + 200_000, 5);
    let n = stored_count(&site);
    let status = wait_for(WAIT, "the refused point to be quarantined", || {
        let s = influx_status(&site);
        (stored_count(&site) >= n && s["quarantined_batches"] == 1 && s["readings"] == 0).then_some(s)
    });
    assert_eq!(status["quarantined_points"], 1, "{status}");
    proxy.refuse_line(None);
    let conditions = status["conditions"].to_string();
    assert!(conditions.contains("quarantined"), "{conditions}");
    let out = cryowatch_output(&["influx", "quarantine", "-c", &site.config_str(), "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("quarantine JSON");
    assert_eq!(list[0]["status"], 400, "{list}");
    assert!(
        list[0]["reason"].as_str().unwrap_or("").contains("field type conflict"),
        "{list}"
    );
    let quarantined = status["quarantined_points"].as_i64().unwrap_or(-1);
    let expected = stored_count(&site) - usize::try_from(quarantined).unwrap_or(0);
    let missing = stored_count(&site) - settled(&vm, expected).values().map(Vec::len).sum::<usize>();
    assert_eq!(missing as i64, quarantined);

    let out = cryowatch_output(&["influx", "requeue", "-c", &site.config_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_mirrored(&site, n);
    assert_exactly_once(&site, &vm);
    assert_eq!(influx_status(&site)["quarantined_batches"], 0);
    site.stop_daemon(daemon);
}

#[test]
fn backfill_sends_history_recorded_before_the_mirror_was_configured() {
    let broker = Mosquitto::start();
    let vm = Victoria::start();
    let id = "cw-influx-history";
    let with_influx = config(&broker, id, &vm.url(), "");
    let without: String = {
        let start = with_influx.find("[influx]").expect("influx section");
        let end = with_influx[start..].find("\n\n").expect("end of section") + start;
        format!("{}{}", &with_influx[..start], &with_influx[end..])
    };
    let site = Site::new(&without);
    let daemon = start(&site);
    wait_subscribed(&site, &broker, id);
    let n = stored_count(&site) + 150;
    publish(&broker, hour_ago(), 50);
    wait_for(WAIT, "history to be stored", || {
        (stored_count(&site) >= n).then_some(())
    });
    site.stop_daemon(daemon);

    std::fs::write(
        site.config(),
        with_influx.replace("{dir}", &site.path().display().to_string()),
    )
    .expect("config");
    let out = cryowatch_output(&["influx", "backfill", "-c", &site.config_str(), "--from", "-2h"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with(&format!("{} readings", stored_count(&site))), "{said}");
    let daemon = start(&site);
    let total = stored_count(&site);
    wait_mirrored(&site, total);
    assert_exactly_once(&site, &vm);
    site.stop_daemon(daemon);
}

/// Sensors whose id, asset and unit need escaping in line protocol: a trailing
/// backslash, a backslash before a comma, commas, spaces, `=` and double quotes.
const ESCAPED: [(&str, &str); 4] = [
    (r"esc\", r"deg\"),
    ("esc a,b=c", r#"per cent, "x""#),
    (r#"esc "q""#, "a=b"),
    (r"esc\,x", r"u\,v"),
];
const ESCAPED_ASSET: &str = r#"rack 1, "B"=\"#;

/// `[[asset]]` and `[[sensor]]` tables for [`ESCAPED`] (appended after `[influx]`).
fn escaped_tables() -> String {
    let mut t = format!("\n[[asset]]\nid = '{ESCAPED_ASSET}'\nkind = \"other\"\n");
    for (k, (id, unit)) in ESCAPED.iter().enumerate() {
        t += &format!(
            "\n[[sensor]]\nid = '{id}'\nasset = '{ESCAPED_ASSET}'\nquantity = \"other\"\nunit = '{unit}'\n\
             [sensor.mqtt]\ntopic = \"lab/esc/{k}\"\nformat = \"json\"\njson_path = \"v\"\ntimestamp_path = \"ts\"\n"
        );
    }
    t
}

/// `cryowatch influx quarantine --json`: (stream, points) of every quarantined batch.
fn quarantined(site: &Site) -> Vec<(String, i64)> {
    let out = cryowatch_output(&["influx", "quarantine", "-c", &site.config_str(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("quarantine JSON");
    rows.iter()
        .map(|r| {
            (
                r["stream"].as_str().unwrap_or_default().to_string(),
                r["points"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[test]
fn names_that_need_escaping_land_through_a_strict_line_protocol_server_and_read_back_intact() {
    let broker = Mosquitto::start();
    let vm = Victoria::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let strict = StrictLineProtocol::start(dir.path(), &vm.url());
    let id = "cw-influx-escape";
    let site = Site::new(&config(&broker, id, &strict.url(), &escaped_tables()));
    let check = cryowatch_output(&["check", "-c", &site.config_str()]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let daemon = start(&site);
    wait_subscribed(&site, &broker, id);
    let start_ms = hour_ago();
    let total = stored_count(&site) + ESCAPED.len() * 5;
    for k in 0..ESCAPED.len() {
        let lines: Vec<String> = (0..5)
            .map(|i| {
                format!(
                    r#"{{"v":{},"ts":{}}}"#,
                    k as f64 * 10.0 + i as f64 + 0.5,
                    start_ms + i * 1000
                )
            })
            .collect();
        broker.publish_lines(&format!("lab/esc/{k}"), &lines, 1);
    }
    wait_mirrored(&site, total);
    site.stop_daemon(daemon);

    assert_eq!(
        strict.refused(),
        Vec::<String>::new(),
        "batches the strict server refused"
    );
    assert_eq!(quarantined(&site), vec![], "quarantined batches");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let series = vm.export(r#"{__name__="cryo_reading_value",site="Lab B"}"#);
        let mut problems = Vec::new();
        for (k, (id, unit)) in ESCAPED.iter().enumerate() {
            let want: Vec<f64> = (0..5).map(|i| k as f64 * 10.0 + i as f64 + 0.5).collect();
            match series.iter().find(|s| s.label("sensor") == *id) {
                None => problems.push(format!("{id:?}: no series")),
                Some(s) if s.label("unit") != *unit || s.label("asset") != ESCAPED_ASSET || s.values != want => {
                    problems.push(format!(
                        "{id:?}: unit {:?} asset {:?} values {:?}",
                        s.label("unit"),
                        s.label("asset"),
                        s.values
                    ))
                }
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}\nsensors landed: {:?}\ndaemon log:\n{}",
            problems.join("\n"),
            series.iter().map(|s| s.label("sensor")).collect::<Vec<_>>(),
            site.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn one_point_the_server_cannot_take_is_quarantined_alone_while_eleven_neighbours_land() {
    let broker = Mosquitto::start();
    let vm = Victoria::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let strict = StrictLineProtocol::start(dir.path(), &vm.url());
    let id = "cw-influx-isolate";
    // Batches are sent once 12 readings wait (or after the flush interval).
    let site = Site::new(&config(&broker, id, &strict.url(), "batch_size = 12"));
    let daemon = start(&site);
    wait_subscribed(&site, &broker, id);
    wait_for(WAIT, "the probe readings mirrored", || {
        (waiting(&site) == 0).then_some(())
    });
    let before = stored_count(&site);
    // 11 good readings and one stamped in 2300: kept by the store with its claimed
    // time, but past the last nanosecond timestamp InfluxDB can hold.
    let t = hour_ago();
    let mut lines: Vec<(String, String)> = Vec::new();
    for i in 0..11 {
        let (sensor, ..) = SENSORS[i % SENSORS.len()];
        lines.push((
            format!("lab/{sensor}"),
            format!(r#"{{"v":{i}.5,"ts":{}}}"#, t + i as i64 * 1000),
        ));
    }
    lines.insert(
        5,
        ("lab/dewar-1.level".into(), r#"{"v":1.0,"ts":10413792000000}"#.into()),
    );
    for (topic, payload) in &lines {
        broker.publish(topic, payload, 1);
    }
    wait_for(WAIT, "12 readings stored and nothing waiting", || {
        (stored_count(&site) >= before + 12 && waiting(&site) == 0).then_some(())
    });
    site.stop_daemon(daemon);

    assert_eq!(
        quarantined(&site),
        vec![("reading".to_string(), 1)],
        "only the one point is quarantined; daemon log:\n{}",
        site.daemon_log()
    );
    assert!(!strict.refused().is_empty(), "the strict server refused a batch");
    let landed = settled(&vm, 11);
    let good: usize = SENSORS.iter().map(|(s, ..)| landed.get(*s).map_or(0, Vec::len)).sum();
    assert_eq!(good, 11, "the neighbours landed: {landed:?}");
}
