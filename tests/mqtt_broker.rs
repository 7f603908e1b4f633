//! The MQTT source against a real Mosquitto 2.0 broker: payload formats, wildcard
//! topics, bad input, and no QoS 1 reading lost when the broker restarts, the daemon
//! restarts, is killed with `kill -9`, or is stopped in the middle of a flood; a broker
//! that lost the session said so. Then against RabbitMQ 3.10's MQTT plugin: QoS 1
//! readings, the retained heartbeat, and nothing lost across a daemon or broker restart.
//!
//! Every Mosquitto test has its own broker, port, store and client id, so they run in
//! parallel; the RabbitMQ tests share one broker (it boots in seconds) and take turns.
//! Readings are read back the way an operator does: `cryowatch history --format csv`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::mosquitto::Mosquitto;
use common::rabbitmq::{self, RabbitMq};
use common::{MqttBroker, Proc, Row, Site, wait_for};

/// 2026-01-01T00:00:00Z in epoch milliseconds: flood message `i` carries `BASE_MS + i`.
const BASE_MS: i64 = 1_767_225_600_000;

/// How long a test waits for the daemon to store what was published.
const DRAIN: Duration = Duration::from_secs(20);

/// A config with one sensor `probe` (number, topic `probe/CLIENT_ID`) used to learn
/// when the daemon is subscribed, plus `sensors` (TOML `[[sensor]]` tables).
fn config(broker: &impl MqttBroker, client_id: &str, sensors: &str) -> String {
    format!(
        r#"[site]
name = "mqtt broker test"
timezone = "UTC"

[store]
path = "{{dir}}/cryowatch.db"

[mqtt]
url = "{url}"
client_id = "{client_id}"

[[asset]]
id = "box"
kind = "other"

[[sensor]]
id = "probe"
asset = "box"
[sensor.mqtt]
topic = "probe/{client_id}"
{sensors}"#,
        url = broker.url()
    )
}

/// One `[[sensor]]` table on asset `box`; `mqtt` holds the lines after `topic`.
fn sensor(id: &str, unit: &str, topic: &str, mqtt: &str) -> String {
    format!(
        "\n[[sensor]]\nid = \"{id}\"\nasset = \"box\"\nunit = \"{unit}\"\n[sensor.mqtt]\ntopic = \"{topic}\"\n{mqtt}\n"
    )
}

/// A JSON sensor reading `v` with its time in `ts`, as the flood messages carry them.
fn flood_sensor(id: &str, topic: &str) -> String {
    sensor(
        id,
        "degC",
        topic,
        "format = \"json\"\njson_path = \"v\"\ntimestamp_path = \"ts\"",
    )
}

/// Flood payloads `{"v":i,"ts":BASE_MS+i}` for `i` in `range`.
fn flood_lines(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| format!(r#"{{"v":{i},"ts":{}}}"#, BASE_MS + i)).collect()
}

/// `history` of one sensor, or None while the store or the sensor does not exist yet.
fn rows(site: &Site, sensor: &str) -> Option<Vec<Row>> {
    let out = common::cryowatch_output(&[
        "history",
        "-c",
        &site.config_str(),
        "--sensor",
        sensor,
        "--from",
        "2000-01-01",
        "--format",
        "csv",
    ]);
    out.status
        .success()
        .then(|| common::parse_csv(&String::from_utf8_lossy(&out.stdout)))
}

fn count(site: &Site, sensor: &str) -> usize {
    rows(site, sensor).map_or(0, |r| r.len())
}

/// Publishes to the probe topic until a probe reading is stored: from then on the
/// daemon's session is subscribed and the broker keeps QoS 1 messages for it.
fn wait_subscribed(site: &Site, broker: &impl MqttBroker, client_id: &str) {
    let before = count(site, "probe");
    let topic = format!("probe/{client_id}");
    wait_for(Duration::from_secs(15), "the daemon to subscribe", || {
        broker.publish(&topic, "1", 1);
        std::thread::sleep(Duration::from_millis(100));
        (count(site, "probe") > before).then_some(())
    });
}

/// Waits until `sensor` has at least `n` readings and returns them.
fn wait_rows(site: &Site, sensor: &str, n: usize) -> Vec<Row> {
    let deadline = Instant::now() + DRAIN;
    loop {
        let got = rows(site, sensor).unwrap_or_default();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{sensor}: {} of {n} readings stored after {DRAIN:?}; got {got:?}\ndaemon log:\n{}",
            got.len(),
            site.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until every value `0..n` of a flood is stored, then returns how many times
/// each value is stored and the rows.
fn wait_flood(site: &Site, sensor: &str, n: i64) -> (BTreeMap<i64, usize>, Vec<Row>) {
    let deadline = Instant::now() + DRAIN;
    loop {
        let got = rows(site, sensor).unwrap_or_default();
        let mut seen = BTreeMap::new();
        for r in &got {
            let v = r
                .value
                .unwrap_or_else(|| panic!("{sensor}: reading without a value: {r:?}"));
            *seen.entry(v as i64).or_insert(0usize) += 1;
        }
        if (0..n).all(|v| seen.contains_key(&v)) {
            return (seen, got);
        }
        if Instant::now() > deadline {
            let missing: Vec<i64> = (0..n).filter(|v| !seen.contains_key(v)).collect();
            panic!(
                "{sensor}: {} of {n} published values missing after {DRAIN:?} (first: {:?})\ndaemon log:\n{}",
                missing.len(),
                &missing[..missing.len().min(20)],
                site.daemon_log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asserts a flood `0..n` is stored exactly once per value, each at `BASE_MS + value`.
fn assert_flood_exactly_once(site: &Site, sensor: &str, n: i64) {
    let (seen, got) = wait_flood(site, sensor, n);
    let duplicated: Vec<(i64, usize)> = seen.iter().filter(|(_, c)| **c > 1).map(|(v, c)| (*v, *c)).collect();
    assert!(
        duplicated.is_empty(),
        "{sensor}: {} values stored more than once (value, times): {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(20)]
    );
    assert_eq!(got.len(), n as usize, "{sensor}: unexpected extra readings");
    for (i, r) in got.iter().enumerate() {
        let expected = Row {
            time: rfc3339(BASE_MS + i as i64),
            sensor: sensor.to_string(),
            value: Some(i as f64),
            unit: "degC".to_string(),
            quality: "good".to_string(),
        };
        assert_eq!(r, &expected, "{sensor}: reading {i}");
    }
}

fn rfc3339(ms: i64) -> String {
    format!("{:.3}", jiff::Timestamp::from_millisecond(ms).expect("valid timestamp"))
}

fn good(time: &str, sensor: &str, value: f64, unit: &str) -> Row {
    Row {
        time: time.to_string(),
        sensor: sensor.to_string(),
        value: Some(value),
        unit: unit.to_string(),
        quality: "good".to_string(),
    }
}

fn values(rows: &[Row]) -> Vec<Option<f64>> {
    rows.iter().map(|r| r.value).collect()
}

/// Waits until the daemon has stored at least `n` readings of `sensor`, so a signal sent
/// next lands in the middle of a flood.
fn wait_stored(site: &Site, sensor: &str, n: usize) {
    wait_for(DRAIN, &format!("{n} flood readings to be stored"), || {
        (count(site, sensor) >= n).then_some(())
    });
}

fn wait_publisher(mut publisher: Proc) {
    assert_eq!(
        publisher.wait_exit(DRAIN),
        Some(0),
        "mosquitto_pub -l failed to publish the flood"
    );
}

#[test]
fn numbers_and_json_paths_store_exactly_the_published_values_and_times() {
    let broker = Mosquitto::start();
    let id = "cw-test-formats";
    let sensors = [
        sensor("num", "degC", "lab/num", "format = \"number\""),
        sensor(
            "nested",
            "degC",
            "lab/nested",
            "format = \"json\"\njson_path = \"probe.temp_c\"\ntimestamp_path = \"meta.ts\"",
        ),
        sensor(
            "item0",
            "percent",
            "lab/array",
            "format = \"json\"\njson_path = \"sensors.0.value\"\ntimestamp_path = \"ts\"",
        ),
        sensor(
            "item1",
            "degC",
            "lab/array",
            "format = \"json\"\njson_path = \"sensors.1.value\"\ntimestamp_path = \"ts\"",
        ),
    ]
    .concat();
    let site = Site::new(&config(&broker, id, &sensors));
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);

    let before = jiff::Timestamp::now();
    broker.publish("lab/num", "-80.5", 1);
    broker.publish("lab/num", " -79.25\n", 1);

    // RFC 3339 in UTC and with an offset; `null` is a probe fault.
    broker.publish(
        "lab/nested",
        r#"{"probe":{"temp_c":-190.5},"meta":{"ts":"2026-03-01T10:00:00.250Z"}}"#,
        1,
    );
    broker.publish(
        "lab/nested",
        r#"{"probe":{"temp_c":-189.75,"fault":false},"meta":{"ts":"2026-03-01T11:00:01.5+01:00"}}"#,
        1,
    );
    broker.publish(
        "lab/nested",
        r#"{"probe":{"temp_c":null},"meta":{"ts":"2026-03-01T10:00:02Z"}}"#,
        1,
    );
    // Array items by index, one message feeding two sensors; epoch seconds (integer and
    // fractional) and epoch milliseconds.
    broker.publish(
        "lab/array",
        r#"{"ts":1772359200,"sensors":[{"value":61},{"value":-79.8}]}"#,
        1,
    );
    broker.publish(
        "lab/array",
        r#"{"ts":1772359201.125,"sensors":[{"value":60.5},{"value":"-79.9"}]}"#,
        1,
    );
    broker.publish(
        "lab/array",
        r#"{"ts":1772359202375,"sensors":[{"value":60},{"value":-80.0}]}"#,
        1,
    );

    for (sensor, n) in [("num", 2), ("nested", 3), ("item0", 3), ("item1", 3)] {
        wait_rows(&site, sensor, n);
    }
    // The last message of every topic is stored: anything extra would be there too.
    std::thread::sleep(Duration::from_millis(300));
    let after_stored = jiff::Timestamp::now();
    let [num, nested, item0, item1] = ["num", "nested", "item0", "item1"].map(|s| site.history(s));

    // Number payloads carry no time: they are stamped on arrival.
    assert_eq!(values(&num), vec![Some(-80.5), Some(-79.25)], "{num:?}");
    for r in &num {
        let t: jiff::Timestamp = r.time.parse().expect("RFC 3339 time");
        let (lo, hi) = (before - jiff::SignedDuration::from_millis(1), after_stored);
        assert!(t >= lo && t <= hi, "arrival time {t} not within {lo}..{hi}");
        assert_eq!((r.unit.as_str(), r.quality.as_str()), ("degC", "good"), "{r:?}");
    }
    assert!(num[0].time.as_str() <= num[1].time.as_str(), "{num:?}");

    assert_eq!(
        nested,
        vec![
            good("2026-03-01T10:00:00.250Z", "nested", -190.5, "degC"),
            good("2026-03-01T10:00:01.500Z", "nested", -189.75, "degC"),
            Row {
                time: "2026-03-01T10:00:02.000Z".into(),
                sensor: "nested".into(),
                value: None,
                unit: "degC".into(),
                quality: "sensor_fault".into(),
            },
        ]
    );
    assert_eq!(
        item0,
        vec![
            good("2026-03-01T10:00:00.000Z", "item0", 61.0, "percent"),
            good("2026-03-01T10:00:01.125Z", "item0", 60.5, "percent"),
            good("2026-03-01T10:00:02.375Z", "item0", 60.0, "percent"),
        ]
    );
    assert_eq!(
        item1,
        vec![
            good("2026-03-01T10:00:00.000Z", "item1", -79.8, "degC"),
            good("2026-03-01T10:00:01.125Z", "item1", -79.9, "degC"),
            good("2026-03-01T10:00:02.375Z", "item1", -80.0, "degC"),
        ]
    );
    site.stop_daemon(daemon);
}

#[test]
fn wildcard_topics_map_every_matching_topic_to_their_sensor() {
    let broker = Mosquitto::start();
    let id = "cw-test-wildcards";
    let sensors = [
        sensor("plus", "degC", "w/+/temp", "format = \"number\""),
        sensor("hash", "degC", "w/dock/#", "format = \"number\""),
        sensor("exact", "degC", "w/f9/temp", "format = \"number\""),
    ]
    .concat();
    let site = Site::new(&config(&broker, id, &sensors));
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);

    for (topic, value) in [
        ("w/f1/temp", "1"),
        ("w/f2/temp", "2"),
        ("w/f1/x/temp", "97"), // `+` is one level only
        ("w/f9/temp", "9"),    // `+` and the exact topic: both sensors
        ("w/dock", "10"),      // `#` also matches its parent level
        ("w/dock/a", "11"),
        ("w/dock/a/b/c", "12"),
        ("w/dockyard/a", "98"),
        ("w/temp", "99"),
        // Last on each sensor: once these are stored, everything before them is too.
        ("w/end/temp", "100"),
        ("w/dock/end", "101"),
    ] {
        broker.publish(topic, value, 1);
    }
    for (sensor, n) in [("plus", 4), ("hash", 4), ("exact", 1)] {
        wait_rows(&site, sensor, n);
    }
    std::thread::sleep(Duration::from_millis(300));
    let [plus, hash, exact] = ["plus", "hash", "exact"].map(|s| site.history(s));
    assert_eq!(values(&plus), vec![Some(1.0), Some(2.0), Some(9.0), Some(100.0)]);
    assert_eq!(values(&hash), vec![Some(10.0), Some(11.0), Some(12.0), Some(101.0)]);
    assert_eq!(values(&exact), vec![Some(9.0)]);
    // The reading of w/f9/temp is one message: both sensors got the same arrival time.
    assert_eq!(plus[2].time, exact[0].time);
    site.stop_daemon(daemon);
}

#[test]
fn bad_payloads_and_unknown_topics_are_skipped_logged_once_and_the_daemon_keeps_storing() {
    let broker = Mosquitto::start();
    let id = "cw-test-malformed";
    let num = sensor("num", "degC", "m/num", "format = \"number\"");
    let json = sensor(
        "json",
        "degC",
        "m/json",
        "format = \"json\"\njson_path = \"probe.temp_c\"\ntimestamp_path = \"ts\"",
    );
    let old = sensor("old", "degC", "m/old", "format = \"number\"");

    // A first run subscribes the persistent session to m/old; the sensor is then
    // removed from the config, but the broker keeps the subscription: messages on m/old
    // reach the daemon with no sensor for them.
    let site = Site::new(&config(&broker, id, &[num.as_str(), &json, &old].concat()));
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);
    site.stop_daemon(daemon);
    let text =
        config(&broker, id, &[num.as_str(), &json].concat()).replace("{dir}", &site.path().display().to_string());
    std::fs::write(site.config(), text).expect("rewrite config");
    let mut daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);

    let repeat = |line: &str, n: usize| vec![line.to_string(); n];
    broker.publish_lines("m/num", &repeat("not-a-number", 50), 1);
    broker.publish_lines(
        "m/json",
        &[
            repeat(r#"{"probe":"#, 20),
            repeat(r#"{"other":{"temp_c":-80}}"#, 20),
            repeat(r#"{"probe":{"temp_c":"warm"}}"#, 10),
        ]
        .concat(),
        1,
    );
    broker.publish_lines("m/old", &repeat("-80", 50), 1);
    broker.publish("m/num", "-80.5", 1);
    broker.publish(
        "m/json",
        r#"{"probe":{"temp_c":-190.25},"ts":"2026-03-01T10:00:00Z"}"#,
        1,
    );

    wait_rows(&site, "num", 1);
    wait_rows(&site, "json", 1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(daemon.running(), "daemon died; log:\n{}", site.daemon_log());
    let nums = site.history("num");
    assert_eq!(values(&nums), vec![Some(-80.5)], "{nums:?}");
    assert_eq!(
        site.history("json"),
        vec![good("2026-03-01T10:00:00.000Z", "json", -190.25, "degC")]
    );

    // 50 bad messages per topic, one log line per topic (rate-limited per interval).
    let log = site.daemon_log();
    for (topic, problem) in [
        ("m/num", "malformed payload"),
        ("m/json", "malformed payload"),
        ("m/old", "unknown topic"),
    ] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&format!("\"{topic}\""))).collect();
        assert_eq!(lines.len(), 1, "log lines about {topic}:\n{}", lines.join("\n"));
        assert!(lines[0].contains(problem), "{topic}: {}", lines[0]);
    }
    site.stop_daemon(daemon);
}

/// `true`, `1e308` and -300 °C on a temperature path are no readings of a temperature:
/// stored as `sensor_fault` (the fault rule speaks for them), never a good value — and a
/// state sensor still takes `true`.
#[test]
fn implausible_values_are_stored_as_sensor_fault_not_as_good_readings() {
    let broker = Mosquitto::start();
    let id = "cw-test-implausible";
    let temp = sensor(
        "temp",
        "degC",
        "p/temp",
        "format = \"json\"\njson_path = \"t\"\ntimestamp_path = \"ts\"",
    )
    .replace("unit = \"degC\"", "unit = \"degC\"\nquantity = \"temperature\"");
    let narrow = sensor("narrow", "degC", "p/narrow", "format = \"number\"").replace(
        "unit = \"degC\"",
        "unit = \"degC\"\nquantity = \"temperature\"\nvalid_range = [-200.0, 60.0]",
    );
    let lid = sensor("lid", "open", "p/lid", "format = \"json\"\njson_path = \"open\"")
        .replace("unit = \"open\"", "unit = \"open\"\nquantity = \"state\"");
    let site = Site::new(&config(&broker, id, &[temp.as_str(), &narrow, &lid].concat()));
    let out = common::cryowatch_output(&["check", "-c", &site.config_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);
    for (i, v) in ["true", "1e308", "-300", "-80.5"].iter().enumerate() {
        let ts = BASE_MS + i as i64 * 1000;
        broker.publish("p/temp", &format!(r#"{{"t":{v},"ts":{ts}}}"#), 1);
    }
    broker.publish("p/narrow", "75", 1);
    broker.publish("p/narrow", "-190", 1);
    broker.publish("p/lid", r#"{"open":true}"#, 1);
    let temps = wait_rows(&site, "temp", 4);
    let seen: Vec<(&str, Option<f64>)> = temps.iter().map(|r| (r.quality.as_str(), r.value)).collect();
    assert_eq!(
        seen,
        [
            ("sensor_fault", None),
            ("sensor_fault", Some(1e308)),
            ("sensor_fault", Some(-300.0)),
            ("good", Some(-80.5))
        ],
        "{temps:?}"
    );
    let narrow = wait_rows(&site, "narrow", 2);
    let seen: Vec<&str> = narrow.iter().map(|r| r.quality.as_str()).collect();
    assert_eq!(seen, ["sensor_fault", "good"], "{narrow:?}");
    let lid = wait_rows(&site, "lid", 1);
    assert_eq!((lid[0].quality.as_str(), lid[0].value), ("good", Some(1.0)));
    assert!(site.daemon_log().contains("valid_range"), "{}", site.daemon_log());
    site.stop_daemon(daemon);
}

#[test]
fn a_broker_restart_mid_run_loses_no_qos1_reading() {
    let mut broker = Mosquitto::start_persistent();
    let id = "cw-test-broker-restart";
    let site = Site::new(&config(&broker, id, &flood_sensor("flood", "r/flood")));
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);

    // Batch A: the first part arrives while the daemon keeps up; the rest is published
    // while the daemon is frozen (SIGSTOP, a slow consumer), so it sits in the broker's
    // queue for the daemon's session, 20 of them in flight, when the broker stops. The
    // broker saves it to its database and comes back on the same port.
    const RUNNING: i64 = 5_000;
    const A: i64 = 20_000;
    const N: i64 = 30_000;
    broker.publish_lines("r/flood", &flood_lines(0..RUNNING), 1);
    daemon.signal("STOP");
    broker.publish_lines("r/flood", &flood_lines(RUNNING..A), 1);
    broker.stop();
    let stored_at_restart = count(&site, "flood");
    broker.start_again();
    daemon.signal("CONT");
    assert!(
        (stored_at_restart as i64) < A,
        "the daemon had stored all {A} readings before the broker stopped: nothing was queued"
    );
    // Batch B, after the restart.
    broker.publish_lines("r/flood", &flood_lines(A..N), 1);

    assert_flood_exactly_once(&site, "flood", N);
    let log = site.daemon_log();
    assert!(
        log.contains("session_present=true"),
        "the daemon did not resume its session:\n{log}"
    );
    eprintln!("broker restart: {stored_at_restart} of {A} stored when the broker stopped");
    site.stop_daemon(daemon);
}

#[test]
fn messages_published_while_the_daemon_is_stopped_are_stored_after_it_starts() {
    let broker = Mosquitto::start();
    let id = "cw-test-daemon-restart";
    let site = Site::new(&config(&broker, id, &flood_sensor("flood", "d/flood")));
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);
    broker.publish_lines("d/flood", &flood_lines(0..100), 1);
    wait_flood(&site, "flood", 100);
    site.stop_daemon(daemon);

    // More than Mosquitto's default queue of 1000 for an offline session.
    const N: i64 = 3_000;
    broker.publish_lines("d/flood", &flood_lines(100..N), 1);
    assert_eq!(count(&site, "flood"), 100, "stored while the daemon was stopped?");

    let daemon = site.start_daemon();
    assert_flood_exactly_once(&site, "flood", N);
    assert!(
        site.daemon_log().contains("session_present=true"),
        "the daemon did not resume its session:\n{}",
        site.daemon_log()
    );
    site.stop_daemon(daemon);
}

#[test]
fn identical_readings_without_a_timestamp_are_each_stored_even_when_they_arrive_in_one_burst() {
    let broker = Mosquitto::start();
    let id = "cw-test-identical-burst";
    let site = Site::new(&config(&broker, id, &sensor("level", "percent", "n/level", "")));
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);
    site.stop_daemon(daemon);

    // Queued while the daemon is down, then delivered in one burst: many land in the same
    // millisecond of arrival. Each is a reading of its own and must be kept.
    const N: usize = 300;
    broker.publish_lines("n/level", &vec!["85.5".to_string(); N], 1);
    let daemon = site.start_daemon();
    let got = wait_rows(&site, "level", N);
    assert_eq!(got.len(), N, "stored {} of {N} identical readings", got.len());
    assert!(got.iter().all(|r| r.value == Some(85.5) && r.quality == "good"));
    // And nothing more arrives later (no redelivered copies).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(&site, "level"), N);
    site.stop_daemon(daemon);
}

#[test]
fn kill_9_in_the_middle_of_a_flood_loses_no_reading_and_redelivery_is_not_stored_twice() {
    let broker = Mosquitto::start();
    let id = "cw-test-kill9";
    let site = Site::new(&config(&broker, id, &flood_sensor("flood", "k/flood")));
    let mut daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);

    const N: i64 = 20_000;
    let publisher = broker.spawn_publish_lines("k/flood", &flood_lines(0..N), 1);
    wait_stored(&site, "flood", 200);
    daemon.signal("KILL");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), None, "killed by a signal");
    let stored_at_kill = count(&site, "flood");
    wait_publisher(publisher);
    assert!(
        (stored_at_kill as i64) < N,
        "the flood was over before the kill: nothing tested"
    );

    let daemon = site.start_daemon();
    assert_flood_exactly_once(&site, "flood", N);
    eprintln!("kill -9: {stored_at_kill} of {N} stored at the kill");
    site.stop_daemon(daemon);
}

#[test]
fn kill_9_while_the_store_is_stalled_loses_no_reading_received_but_not_yet_stored() {
    let broker = Mosquitto::start();
    let id = "cw-test-stalled-store";
    let site = Site::new(&config(&broker, id, &flood_sensor("flood", "x/flood")));
    let mut daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);

    // Another connection holds the store's write lock, like a stalled disk: the daemon's
    // commits wait. What it receives meanwhile is not stored, so it must not be
    // acknowledged to the broker either, or the kill below loses it.
    let lock = rusqlite::Connection::open(site.path().join("cryowatch.db")).expect("open the store");
    lock.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("take the store's write lock");
    const N: i64 = 5_000;
    broker.publish_lines("x/flood", &flood_lines(0..N), 1);
    // Well within the daemon's 5 s busy timeout: its commit is still waiting.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(&site, "flood"), 0, "stored despite the write lock?");
    daemon.signal("KILL");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), None, "killed by a signal");
    lock.execute_batch("ROLLBACK").expect("release the write lock");
    drop(lock);

    let daemon = site.start_daemon();
    assert_flood_exactly_once(&site, "flood", N);
    site.stop_daemon(daemon);
}

#[test]
fn sigterm_in_the_middle_of_a_flood_exits_0_and_acknowledges_only_what_is_stored() {
    let broker = Mosquitto::start();
    let id = "cw-test-sigterm";
    // Number payloads carry no time: a message stored and then redelivered (because its
    // acknowledgement never left) would be stored twice with two arrival times.
    let site = Site::new(&config(
        &broker,
        id,
        &sensor("flood", "degC", "s/flood", "format = \"number\""),
    ));
    let mut daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);

    const N: i64 = 20_000;
    let lines: Vec<String> = (0..N).map(|i| i.to_string()).collect();
    let publisher = broker.spawn_publish_lines("s/flood", &lines, 1);
    wait_stored(&site, "flood", 200);
    daemon.signal("TERM");
    let code = daemon.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "daemon exit after SIGTERM; log:\n{}", site.daemon_log());
    let at_exit = rows(&site, "flood").unwrap_or_default();
    wait_publisher(publisher);
    assert!(
        (at_exit.len() as i64) < N,
        "the flood was over before SIGTERM: nothing tested"
    );

    let daemon = site.start_daemon();
    let (seen, got) = wait_flood(&site, "flood", N);
    let duplicated: Vec<(i64, usize)> = seen.iter().filter(|(_, c)| **c > 1).map(|(v, c)| (*v, *c)).collect();
    assert!(
        duplicated.is_empty(),
        "{} values stored twice: acknowledged after exit or not at all (value, times): {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(20)]
    );
    assert_eq!(got.len(), N as usize);
    // What was stored before the exit is still there, unchanged.
    let after: std::collections::HashSet<(&str, i64)> = got
        .iter()
        .map(|r| (r.time.as_str(), r.value.unwrap_or(f64::NAN) as i64))
        .collect();
    for r in &at_exit {
        let key = (r.time.as_str(), r.value.unwrap_or(f64::NAN) as i64);
        assert!(after.contains(&key), "reading stored before SIGTERM changed: {r:?}");
    }
    eprintln!("SIGTERM: {} of {N} stored at exit", at_exit.len());
    site.stop_daemon(daemon);
}

/// `[api]` on a free port with a viewer token, for reading `/metrics`.
fn api_section() -> (String, std::net::SocketAddr) {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", common::free_port()).parse().expect("address");
    let text = format!(
        "\n[api]\nlisten = \"{addr}\"\n[[api.token]]\nid = \"viewer\"\nrole = \"viewer\"\ntoken = \"mqtt-test-viewer-token-0123456789\"\n"
    );
    (text, addr)
}

/// One sample of `/metrics` (a counter without labels).
fn metric(api: std::net::SocketAddr, name: &str) -> Option<f64> {
    let auth = "Bearer mqtt-test-viewer-token-0123456789";
    let body = common::http::call(api, "GET", "/metrics", &[("Authorization", auth)], None)
        .ok()?
        .body;
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

#[test]
fn a_message_larger_than_any_reading_is_consumed_counted_and_does_not_block_the_readings_behind_it() {
    let broker = Mosquitto::start();
    let id = "cw-test-oversized";
    let (api, addr) = api_section();
    let sensors = [
        sensor("big", "degC", "m/big", "format = \"json\"\njson_path = \"v\""),
        sensor("after", "degC", "m/after", "format = \"number\""),
        api,
    ]
    .concat();
    let site = Site::new(&config(&broker, id, &sensors));
    let mut daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);

    // 2 MiB: over the MQTT client's old packet limit and over any reading's size.
    let mut huge = br#"{"v":-80.0,"pad":""#.to_vec();
    huge.resize(2 << 20, b'x');
    huge.extend_from_slice(br#""}"#);
    broker.publish_bytes("m/big", &huge, 1);
    broker.publish("m/big", r#"{"v":-79.5}"#, 1);
    let numbers: Vec<String> = (0..20).map(|i| format!("-{i}.5")).collect();
    broker.publish_lines("m/after", &numbers, 1);

    let big = wait_rows(&site, "big", 1);
    assert_eq!(
        values(&big),
        vec![Some(-79.5)],
        "only the reading after the huge message"
    );
    wait_rows(&site, "after", 20);
    wait_for(Duration::from_secs(10), "the oversized message to be counted", || {
        (metric(addr, "cryowatch_mqtt_oversized_messages_total") == Some(1.0)).then_some(())
    });
    // Consumed, not redelivered: no reconnect loop, nothing more counted.
    std::thread::sleep(Duration::from_secs(2));
    assert!(daemon.running(), "daemon died; log:\n{}", site.daemon_log());
    let log = site.daemon_log();
    let lost = log.lines().filter(|l| l.contains("mqtt connection lost")).count();
    assert_eq!(lost, 0, "the connection dropped {lost} times; log:\n{log}");
    assert_eq!(metric(addr, "cryowatch_mqtt_oversized_messages_total"), Some(1.0));
    assert_eq!(metric(addr, "cryowatch_mqtt_connects_total"), Some(1.0));
    let skipped: Vec<&str> = log.lines().filter(|l| l.contains("\"m/big\"")).collect();
    assert_eq!(skipped.len(), 1, "{}", skipped.join("\n"));
    assert!(skipped[0].contains("oversized"), "{}", skipped[0]);
    site.stop_daemon(daemon);
}

/// Milliseconds since the epoch, now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// `cryowatch ARGS -c CONFIG` as JSON.
fn json_of(site: &Site, args: &[&str]) -> serde_json::Value {
    let config = site.config_str();
    let mut all = args.to_vec();
    all.extend(["-c", &config]);
    let out = common::cryowatch_output(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e})"))
}

#[test]
fn a_reading_stamped_far_ahead_is_kept_and_flagged_but_never_the_latest_and_never_evaluated() {
    let broker = Mosquitto::start();
    let id = "cw-test-future";
    let (api, addr) = api_section();
    let rule = "\n[[rule]]\nid = \"fz-warming\"\nsensor = \"fz\"\nkind = \"rate\"\nthreshold = 1.0\nwindow = \"1m\"\nseverity = \"alarm\"\n";
    let sensors = [
        sensor(
            "fz",
            "degC",
            "m/fz",
            "format = \"json\"\njson_path = \"v\"\ntimestamp_path = \"ts\"",
        ),
        rule.to_string(),
        api,
    ]
    .concat();
    let site = Site::new(&config(&broker, id, &sensors));
    let mut daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);

    // A normal reading, one stamped 2099 by a broken clock, then a fast warming.
    let now = now_ms();
    broker.publish("m/fz", &format!(r#"{{"v":-80.0,"ts":{}}}"#, now - 60_000), 1);
    broker.publish("m/fz", r#"{"v":-80.0,"ts":"2099-01-01T00:00:00Z"}"#, 1);
    broker.publish("m/fz", &format!(r#"{{"v":-70.0,"ts":{}}}"#, now - 30_000), 1);
    broker.publish("m/fz", &format!(r#"{{"v":-60.0,"ts":{}}}"#, now - 1_000), 1);

    // Kept with its claimed time.
    let history = |site: &Site| -> Vec<Row> {
        let config = site.config_str();
        let args = [
            "history",
            "-c",
            &config,
            "--sensor",
            "fz",
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--format",
            "csv",
        ];
        common::parse_csv(&String::from_utf8_lossy(&common::cryowatch_output(&args).stdout))
    };
    let all = wait_for(DRAIN, "the four readings to be stored", || {
        let rows = history(&site);
        (rows.len() >= 4).then_some(rows)
    });
    assert!(
        all.iter()
            .any(|r| r.time == "2099-01-01T00:00:00.000Z" && r.value == Some(-80.0)),
        "{all:?}"
    );

    // Never the latest: status shows the warmest reading, a second old.
    let status = json_of(&site, &["status", "--json"]);
    let fz = status
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["sensor"] == "fz"))
        .unwrap_or_else(|| panic!("no fz in status: {status}"));
    assert_eq!(fz["value"], -60.0, "{fz}");
    let shown = fz["time"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let age = shown.map(|t| now - t.as_millisecond());
    assert!(age.is_some_and(|a| (0..120_000).contains(&a)), "shown time {fz}");
    assert_eq!(fz["state"], "ok", "{fz}");

    // Never evaluated: the rate rule still sees the warming (20 °C per minute).
    wait_for(DRAIN, "the warming alarm", || {
        json_of(&site, &["alarms", "--active", "--json"])
            .to_string()
            .contains("fz-warming")
            .then_some(())
    });
    // Counted and logged.
    wait_for(Duration::from_secs(10), "the flagged reading to be counted", || {
        (metric(addr, "cryowatch_mqtt_future_readings_total") == Some(1.0)).then_some(())
    });
    let log = site.daemon_log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("\"m/fz\"")).collect();
    assert_eq!(lines.len(), 1, "{}", lines.join("\n"));
    assert!(lines[0].contains("ahead of the clock"), "{}", lines[0]);
    assert!(daemon.running(), "daemon died; log:\n{log}");
    site.stop_daemon(daemon);
}

/// The daemon's WARN lines saying the broker lost its session.
fn session_lost_warnings(site: &Site) -> Vec<String> {
    site.daemon_log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("mqtt session lost"))
        .map(String::from)
        .collect()
}

/// Waits for the `n`th lost-session warning and checks it names the gap: the broker,
/// the client id, and when the daemon was last connected and reconnected.
fn wait_session_lost(site: &Site, broker: &Mosquitto, id: &str, n: usize) -> String {
    let warning = wait_for(Duration::from_secs(20), "the lost-session warning", || {
        session_lost_warnings(site).get(n - 1).cloned()
    });
    for needle in [
        format!("broker=127.0.0.1:{}", broker.port),
        format!("client_id={id}"),
        "last_connected=20".to_string(),
        "reconnected=20".to_string(),
        "persistence".to_string(),
    ] {
        assert!(
            warning.contains(&needle),
            "{needle} missing from the warning:\n{warning}"
        );
    }
    warning
}

#[test]
fn a_broker_that_lost_the_session_is_a_warning_naming_the_gap_and_a_first_connection_is_not() {
    // persistence false: a restarted broker has forgotten every session.
    let mut broker = Mosquitto::start();
    let id = "cw-test-session-lost";
    let (api, addr) = api_section();
    let site = Site::new(&config(&broker, id, &api));
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);
    let log = site.daemon_log();
    assert!(
        session_lost_warnings(&site).is_empty(),
        "the first connection of a new client id lost nothing:\n{log}"
    );
    assert!(
        log.contains("first connection of this client id"),
        "the first connection is said at INFO:\n{log}"
    );

    // The broker restarts while the daemon runs.
    broker.restart();
    wait_session_lost(&site, &broker, id, 1);
    wait_subscribed(&site, &broker, id);
    assert_eq!(metric(addr, "cryowatch_mqtt_sessions_lost_total"), Some(1.0));
    let status = common::cryowatch_output(&["status", "-c", &site.config_str()]);
    let conditions = String::from_utf8_lossy(&status.stderr);
    assert!(
        conditions.contains(&format!("kept no session for client id {id}")),
        "status conditions:\n{conditions}"
    );
    site.stop_daemon(daemon);

    // The broker restarts while the daemon is stopped: the store knows the client id
    // was connected before.
    broker.restart();
    let daemon = site.start_daemon();
    wait_session_lost(&site, &broker, id, 2);
    wait_subscribed(&site, &broker, id);
    site.stop_daemon(daemon);

    // A daemon restart where the broker kept the session is no loss.
    let daemon = site.start_daemon();
    wait_subscribed(&site, &broker, id);
    assert!(
        site.daemon_log().contains("session_present=true"),
        "{}",
        site.daemon_log()
    );
    assert_eq!(session_lost_warnings(&site).len(), 2, "{}", site.daemon_log());
    site.stop_daemon(daemon);
}

// RabbitMQ 3.10's MQTT plugin (MQTT 3.1.1): one broker for this test binary, which its
// tests take in turn (`rabbitmq::shared`), each with its own client id and topics.

/// A heartbeat on `status/CLIENT_ID`, beating every half second.
fn heartbeat_section(client_id: &str) -> String {
    format!("\n[heartbeat]\nmqtt_topic = \"status/{client_id}\"\ninterval = \"500ms\"\n")
}

/// How many MQTT connections of `client_id` RabbitMQ accepted, from its log.
fn rabbitmq_connections(broker: &RabbitMq, client_id: &str) -> usize {
    let needle = format!("client id: {client_id})");
    broker
        .log()
        .lines()
        .filter(|l| l.contains("accepting MQTT connection") && l.contains(&needle))
        .count()
}

#[test]
fn rabbitmq_delivers_qos1_readings_and_keeps_the_heartbeat_retained_on_one_connection() {
    let mut guard = rabbitmq::shared();
    let Some(broker) = guard.as_mut() else {
        panic!("rabbitmq did not start")
    };
    let id = "cw-rabbit-qos1";
    let sensors = [flood_sensor("flood", "rq/flood"), heartbeat_section(id)].concat();
    let site = Site::new(&config(broker, id, &sensors));
    let daemon = site.start_daemon();
    wait_subscribed(&site, broker, id);
    broker.publish_lines("rq/flood", &flood_lines(0..500), 1);
    assert_flood_exactly_once(&site, "flood", 500);

    // Retained messages (RabbitMQ sends them to subscriptions without wildcards): the
    // heartbeat's status and the record's heads.
    let status = format!("status/{id}");
    wait_for(Duration::from_secs(10), "the retained online status", || {
        broker.retained(&status).filter(|m| m.contains("\"online\""))
    });
    wait_for(Duration::from_secs(10), "the retained record heads", || {
        broker
            .retained(&format!("{status}/record"))
            .filter(|m| m.contains("audit_hash"))
    });
    // One connection each, the heartbeat's recall of its heads included.
    std::thread::sleep(Duration::from_secs(4));
    let log = site.daemon_log();
    assert_eq!(
        rabbitmq_connections(broker, &format!("{id}-heartbeat")),
        1,
        "heartbeat connections; daemon log:\n{log}"
    );
    assert_eq!(
        rabbitmq_connections(broker, id),
        1,
        "source connections; daemon log:\n{log}"
    );
    assert!(
        !log.contains("refused") && !log.contains("connection lost"),
        "RabbitMQ refused something:\n{log}"
    );
    site.stop_daemon(daemon);
    let last = broker.retained(&status).unwrap_or_default();
    assert!(last.contains("\"stopped\""), "a clean stop says so: {last}");
}

#[test]
fn rabbitmq_keeps_the_session_while_the_daemon_is_stopped_and_nothing_published_meanwhile_is_lost() {
    let mut guard = rabbitmq::shared();
    let Some(broker) = guard.as_mut() else {
        panic!("rabbitmq did not start")
    };
    let id = "cw-rabbit-daemon-restart";
    let site = Site::new(&config(broker, id, &flood_sensor("flood", "rd/flood")));
    let daemon = site.start_daemon();
    wait_subscribed(&site, broker, id);
    broker.publish_lines("rd/flood", &flood_lines(0..100), 1);
    wait_flood(&site, "flood", 100);
    site.stop_daemon(daemon);

    const N: i64 = 2_000;
    broker.publish_lines("rd/flood", &flood_lines(100..N), 1);
    assert_eq!(count(&site, "flood"), 100, "stored while the daemon was stopped?");
    let daemon = site.start_daemon();
    assert_flood_exactly_once(&site, "flood", N);
    let log = site.daemon_log();
    assert!(log.contains("session_present=true"), "the session was not kept:\n{log}");
    assert!(session_lost_warnings(&site).is_empty(), "{log}");
    site.stop_daemon(daemon);
}

#[test]
fn rabbitmq_restarting_under_the_daemon_loses_no_qos1_reading_and_readings_resume() {
    let mut guard = rabbitmq::shared();
    let Some(broker) = guard.as_mut() else {
        panic!("rabbitmq did not start")
    };
    let id = "cw-rabbit-broker-restart";
    let site = Site::new(&config(broker, id, &flood_sensor("flood", "rr/flood")));
    let daemon = site.start_daemon();
    wait_subscribed(&site, broker, id);
    // Batch A: the daemon stores part of it, the rest waits in RabbitMQ's queue for the
    // daemon's session while the daemon is frozen and the broker restarts.
    const A: i64 = 1_000;
    const N: i64 = 1_500;
    broker.publish_lines("rr/flood", &flood_lines(0..200), 1);
    wait_flood(&site, "flood", 200);
    daemon.signal("STOP");
    broker.publish_lines("rr/flood", &flood_lines(200..A), 1);
    broker.restart();
    daemon.signal("CONT");
    // Batch B, after the restart.
    broker.publish_lines("rr/flood", &flood_lines(A..N), 1);
    assert_flood_exactly_once(&site, "flood", N);
    let log = site.daemon_log();
    assert!(log.contains("mqtt connection lost"), "no reconnect?\n{log}");
    assert!(
        session_lost_warnings(&site).is_empty(),
        "RabbitMQ kept the session:\n{log}"
    );
    site.stop_daemon(daemon);
}
