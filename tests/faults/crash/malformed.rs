//! 10,000 bad MQTT messages — malformed payloads on a sensor's topic and messages on
//! topics no sensor reads — interleaved with good readings: the daemon keeps running,
//! stores every good reading, counts the bad ones on `/metrics` and logs each problem
//! once per topic per interval.
//!
//! Unknown topics reach the daemon the way they do in the field: its persistent session
//! still holds subscriptions for sensors that were removed from the configuration.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::kill::wait_until;
use super::{Feed, Message, api_get, api_section, base_config, json_sensor};
use crate::common::mosquitto::Mosquitto;
use crate::common::{Site, free_port};
use crate::outcome::Outcome;

const CLIENT: &str = "cw-fault-malformed";
const SENSOR: &str = "lab.json";
const BAD: usize = 10_000;
const GOOD_EVERY: usize = 20;
const OLD_TOPICS: usize = 5;

fn config(broker: &Mosquitto, api: SocketAddr, with_old: bool) -> String {
    let mut text = base_config(broker, CLIENT);
    text.push_str(&json_sensor(SENSOR, "m/json", true));
    text.push_str(&api_section(api));
    if with_old {
        for i in 1..=OLD_TOPICS {
            text.push_str(&format!(
                "\n[[sensor]]\nid = \"old-{i}\"\nasset = \"box\"\nstale_after = \"1h\"\n[sensor.mqtt]\ntopic = \"old/{i}\"\n"
            ));
        }
    }
    text
}

/// The bad payload number `k`: every kind of garbage a broken publisher sends.
fn garbage(k: usize, rng: &mut fastrand::Rng) -> Vec<u8> {
    match k % 9 {
        0 => b"not json".to_vec(),
        1 => b"{".to_vec(),
        2 => br#"{"v":"warm","ts":1}"#.to_vec(),
        3 => br#"{"x":-80}"#.to_vec(),
        4 => Vec::new(),
        5 => (0..rng.usize(1..64)).map(|_| rng.u8(..)).collect(),
        6 => br#"{"v":1e999}"#.to_vec(),
        7 => vec![b'['; 4096],
        _ => br#"{"v":[1,2,3],"ts":"yesterday"}"#.to_vec(),
    }
}

pub fn metric(api: SocketAddr, name: &str) -> Option<f64> {
    let body = api_get(api, "/metrics")?.body;
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

pub fn run() -> Outcome {
    let mut out = Outcome::new("10,000 malformed MQTT messages");
    let broker = Mosquitto::start();
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("api address");
    let site = Site::new(&config(&broker, api, true));
    // First run: the session subscribes to old/1..5; then those sensors are removed.
    let daemon = site.start_daemon();
    super::wait_subscribed(&site, &broker, CLIENT);
    let _ = super::stop_daemon(daemon);
    let text = config(&broker, api, false).replace("{dir}", &site.path().display().to_string());
    std::fs::write(site.config(), text).expect("rewrite the config");
    let mut daemon = site.start_daemon();
    super::wait_subscribed(&site, &broker, CLIENT);
    let log_before = super::log_lines(&site, "mqtt message skipped");

    // The sequence: a good reading every GOOD_EVERY messages, the bad ones alternating
    // between the sensor's topic (malformed) and the removed topics (unknown).
    let mut rng = fastrand::Rng::with_seed(7);
    let mut messages: Vec<Message> = Vec::new();
    let t0 = super::now_ms() - 60_000;
    let (mut bad, mut good) = (0usize, 0i64);
    while bad < BAD {
        if messages.len().is_multiple_of(GOOD_EVERY) {
            let ts = t0 + good;
            messages.push((
                "m/json".into(),
                format!(r#"{{"v":{},"ts":{ts}}}"#, -190.0 + good as f64 * 0.001).into_bytes(),
                Some(ts),
            ));
            good += 1;
        } else {
            let topic = if bad % 2 == 0 {
                "m/json".to_string()
            } else {
                format!("old/{}", 1 + (bad / 2) % OLD_TOPICS)
            };
            messages.push((topic, garbage(bad / 2, &mut rng), None));
            bad += 1;
        }
    }
    let malformed_sent = messages
        .iter()
        .filter(|(t, _, time)| t == "m/json" && time.is_none())
        .count();
    let unknown_sent = BAD - malformed_sent;
    let mut queue = messages.into_iter();
    let feed = Feed::start(&broker, "cw-fault-malformed-feed", Duration::ZERO, move |_| {
        queue.next()
    });
    feed.wait_done(Duration::from_secs(60));
    let (times, published) = feed.stop();
    let published_at = Instant::now();
    let drained = super::wait_stored(&site, SENSOR, &times, Duration::from_secs(30));
    let counted = wait_until(Duration::from_secs(20), || {
        metric(api, "cryowatch_mqtt_malformed_messages_total") == Some(malformed_sent as f64)
            && metric(api, "cryowatch_mqtt_unknown_topic_messages_total") == Some(unknown_sent as f64)
    });
    let malformed = metric(api, "cryowatch_mqtt_malformed_messages_total");
    let unknown = metric(api, "cryowatch_mqtt_unknown_topic_messages_total");
    let log_lines = super::log_lines(&site, "mqtt message skipped") - log_before;
    let crashes = u64::from(!daemon.running());
    let code = super::stop_daemon(daemon);

    let (stored, dup) = super::tally(&times, &super::stored_times(&site, SENSOR));
    out.readings_produced = Some(times.len() as u64);
    out.readings_stored = Some(stored);
    out.readings_duplicated = Some(dup);
    out.crashes = crashes;
    out.recovery = drained.map(|_| published_at.elapsed());
    out.detail = format!(
        "{published} messages: {malformed_sent} malformed on the sensor's topic, {unknown_sent} on {OLD_TOPICS} unknown topics, {} good; /metrics malformed {malformed:?}, unknown topic {unknown:?}; {log_lines} log lines about them (1 + {OLD_TOPICS} topics); recovery = last message published → every good reading stored",
        times.len()
    );
    let mut problems = Vec::new();
    if !counted {
        problems.push("the bad messages were not all counted".to_string());
    }
    if log_lines == 0 || log_lines > 4 * (1 + OLD_TOPICS) {
        problems.push(format!("{log_lines} log lines about bad messages"));
    }
    super::conclude(&mut out, problems, code, &site);
    out
}
