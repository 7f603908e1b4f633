//! `GET /metrics`: the whole pipeline in Prometheus' text exposition format (0.0.4).
//!
//! Two kinds of figures: what only the running daemon knows ([`Telemetry`]: readings by
//! source and quality, connection states, poll and commit latency, queue depth, MQTT,
//! dispatcher and mirror counters), and what the store knows, read at each scrape with
//! a few indexed queries ([`crate::store::figures`]: open alarms by state, the notification
//! outbox's lag, the InfluxDB mirror's lag, the audit trail's head). When the store
//! cannot be read the daemon's own figures are still served, with
//! `cryowatch_store_readable 0`: disk trouble is when they matter most.
//!
//! Written by hand: the format is a few lines per family, and the counters live in the
//! stages' own atomics, so an exporter crate would only add a registry to copy them into.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;
use crate::config::Config;
use crate::model::{Quality, TimestampMs, now_ms};
use crate::store::figures::StoreFigures;
use crate::telemetry::{BUCKETS, HistogramSnapshot, Source, Telemetry};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<ApiState>, who: super::auth::Principal) -> Response {
    if let Err(e) = who.require(crate::config::Role::Viewer) {
        return e.into_response();
    }
    let config = state.config.clone();
    let figures = match state
        .with_store(move |s| s.figures(|id| config.rules.iter().any(|r| r.id == id), config.influx.is_some()))
        .await
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(error = %e, "metrics: cannot read the store; serving the daemon's own figures only");
            None
        }
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        render(&state.config, state.telemetry.as_deref(), figures.as_ref(), now_ms()),
    )
        .into_response()
}

/// Open alarm states as stored (`pending` is a rule whose delay is running).
const ALARM_STATES: [&str; 3] = ["pending", "active", "acknowledged"];

/// Results a delivery attempt is recorded with; each configured channel shows them all.
const RESULTS: [&str; 4] = ["sent", "failed_retryable", "failed", "unreachable"];

/// The exposition text. `telemetry` is `None` when the API runs outside the daemon;
/// `store` is `None` when the store could not be read.
pub fn render(
    config: &Config,
    telemetry: Option<&Telemetry>,
    store: Option<&StoreFigures>,
    now: TimestampMs,
) -> String {
    let mut out = Text::default();
    if let Some(t) = telemetry {
        daemon_figures(&mut out, config, t);
    }
    out.gauge(
        "cryowatch_store_readable",
        "1 when this scrape could read the store (alarms, outboxes, audit trail); 0 and those figures are missing otherwise.",
        u8::from(store.is_some()),
    );
    if let Some(s) = store {
        store_figures(&mut out, s, now);
    }
    influx(&mut out, config, telemetry, store, now);
    out.0
}

fn daemon_figures(out: &mut Text, config: &Config, t: &Telemetry) {
    out.gauge(
        "cryowatch_start_time_seconds",
        "When the daemon started (Unix time).",
        t.started as f64 / 1000.0,
    );
    out.family(
        "cryowatch_readings_total",
        "counter",
        "Readings handed to the store writer, by source and quality.",
    );
    for source in Source::ALL.into_iter().filter(|s| t.has_source(*s)) {
        for q in Quality::ALL {
            out.sample(
                "cryowatch_readings_total",
                &[("source", source.as_str()), ("quality", q.as_str())],
                t.readings(source, q),
            );
        }
    }
    out.family(
        "cryowatch_source_connected",
        "gauge",
        "1 when the device answered its last poll (modbus: connection open and an answer, exception responses included; ups: upsd returned the UPS's variables) or the MQTT broker connection is up; 0 otherwise.",
    );
    for d in t.devices() {
        out.sample(
            "cryowatch_source_connected",
            &[("source", d.source.as_str()), ("device", &d.id)],
            u8::from(d.connected()),
        );
    }
    if let Some(broker) = &t.mqtt_broker {
        let up = t.mqtt.connected.load(std::sync::atomic::Ordering::Relaxed);
        out.sample(
            "cryowatch_source_connected",
            &[("source", "mqtt"), ("device", broker)],
            u8::from(up),
        );
    }
    out.family(
        "cryowatch_poll_duration_seconds",
        "histogram",
        "Duration of each poll that sent requests to a device, answered or not.",
    );
    for d in t.devices() {
        out.histogram(
            "cryowatch_poll_duration_seconds",
            &[("source", d.source.as_str()), ("device", &d.id)],
            &d.poll.snapshot(),
        );
    }
    if t.mqtt_broker.is_some() {
        mqtt(out, t);
    }
    store_writer(out, t);
    notifications(out, config, t);
}

fn mqtt(out: &mut Text, t: &Telemetry) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &t.mqtt;
    let counters = [
        ("cryowatch_mqtt_messages_total", "MQTT messages received.", &m.messages),
        (
            "cryowatch_mqtt_malformed_messages_total",
            "MQTT payloads that could not be parsed (skipped and acknowledged).",
            &m.malformed,
        ),
        (
            "cryowatch_mqtt_oversized_messages_total",
            "MQTT messages larger than a reading may be (1 MiB; skipped and acknowledged).",
            &m.oversized,
        ),
        (
            "cryowatch_mqtt_future_readings_total",
            "MQTT readings stamped more than mqtt.max_clock_skew ahead of the clock (stored and flagged, never evaluated).",
            &m.future,
        ),
        (
            "cryowatch_mqtt_unknown_topic_messages_total",
            "MQTT messages on a topic no sensor is configured for.",
            &m.unknown_topic,
        ),
        (
            "cryowatch_mqtt_redelivered_messages_total",
            "MQTT redeliveries recognised as already stored and only acknowledged.",
            &m.redelivered,
        ),
        (
            "cryowatch_mqtt_connects_total",
            "Connections the MQTT broker accepted.",
            &m.connects,
        ),
        (
            "cryowatch_mqtt_sessions_lost_total",
            "Connections the MQTT broker accepted without the session it kept before (restarted without persistence, session expired): readings published while disconnected may be missing.",
            &m.sessions_lost,
        ),
    ];
    for (name, help, v) in counters {
        out.counter(name, help, v.load(Relaxed));
    }
}

fn store_writer(out: &mut Text, t: &Telemetry) {
    use std::sync::atomic::Ordering::Relaxed;
    out.family(
        "cryowatch_store_commit_duration_seconds",
        "histogram",
        "Duration of each store transaction that committed (readings, alarm evaluation and changes).",
    );
    out.histogram(
        "cryowatch_store_commit_duration_seconds",
        &[],
        &t.writer.commit.snapshot(),
    );
    out.counter(
        "cryowatch_store_committed_readings_total",
        "Readings committed to the store (duplicates included).",
        t.writer.committed.load(Relaxed),
    );
    out.counter(
        "cryowatch_store_transactions_total",
        "Store transactions committed by the writer.",
        t.writer.transactions.load(Relaxed),
    );
    out.counter(
        "cryowatch_store_write_failures_total",
        "Store transactions that failed and were retried.",
        t.writer.failures.load(Relaxed),
    );
    if let Some((depth, capacity)) = t.queue() {
        out.gauge(
            "cryowatch_store_queue_depth",
            "Messages (one source batch of readings, or a clock tick) waiting for the store writer.",
            depth,
        );
        out.gauge(
            "cryowatch_store_queue_capacity",
            "Messages the store writer's queue holds before sources wait.",
            capacity,
        );
    }
}

fn notifications(out: &mut Text, config: &Config, t: &Telemetry) {
    let mut results: Vec<(String, &str, u64)> = config
        .notify
        .channels
        .iter()
        .flat_map(|c| RESULTS.map(|r| (c.id.clone(), r, 0)))
        .collect();
    for (channel, result, n) in t.dispatch.results() {
        match results.iter_mut().find(|(c, r, _)| *c == channel && *r == result) {
            Some(slot) => slot.2 = n,
            None => results.push((channel, result, n)),
        }
    }
    out.family(
        "cryowatch_notification_attempts_total",
        "counter",
        "Delivery attempts by channel and result (sent, failed_retryable, failed, unreachable; fate_delivered and fate_failed as read back from a gateway; unavailable when the channel could not be set up).",
    );
    for (channel, result, n) in &results {
        out.sample(
            "cryowatch_notification_attempts_total",
            &[("channel", channel), ("result", result)],
            *n,
        );
    }
    out.counter(
        "cryowatch_notifications_undeliverable_total",
        "Passes in which no channel could deliver a notification (it is retried or given up).",
        t.dispatch.undeliverable.load(std::sync::atomic::Ordering::Relaxed),
    );
}

fn store_figures(out: &mut Text, s: &StoreFigures, now: TimestampMs) {
    out.family(
        "cryowatch_alarms",
        "gauge",
        "Open alarms by state (pending: a rule's delay is running).",
    );
    for state in ALARM_STATES {
        out.sample("cryowatch_alarms", &[("state", state)], s.alarms(state));
    }
    for (state, n) in s.alarms.iter().filter(|(st, _)| !ALARM_STATES.contains(&st.as_str())) {
        out.sample("cryowatch_alarms", &[("state", state)], *n);
    }
    out.gauge(
        "cryowatch_alarms_suppressed",
        "Open alarms under a maintenance window or shelved.",
        s.suppressed,
    );
    out.gauge(
        "cryowatch_notification_outbox_pending",
        "Notifications in the outbox not yet delivered or given up.",
        s.outbox_pending,
    );
    out.gauge(
        "cryowatch_notification_outbox_oldest_age_seconds",
        "Age of the oldest notification waiting in the outbox (0 when none waits).",
        age(s.outbox_oldest, now),
    );
    if let Some((seq, t)) = s.audit_head {
        out.gauge(
            "cryowatch_audit_head_seq",
            "Sequence number of the audit trail's newest record.",
            seq,
        );
        out.gauge(
            "cryowatch_audit_head_age_seconds",
            "Time since the audit trail's newest record.",
            age(Some(t), now),
        );
    }
}

fn influx(out: &mut Text, config: &Config, t: Option<&Telemetry>, store: Option<&StoreFigures>, now: TimestampMs) {
    out.gauge(
        "cryowatch_influx_enabled",
        "1 when readings are mirrored to InfluxDB.",
        u8::from(config.influx.is_some()),
    );
    if let Some(sink) = t.and_then(|t| t.sink.as_ref()) {
        use std::sync::atomic::Ordering::Relaxed;
        out.family(
            "cryowatch_influx_written_points_total",
            "counter",
            "Points InfluxDB confirmed, by stream.",
        );
        out.sample(
            "cryowatch_influx_written_points_total",
            &[("stream", "readings")],
            sink.readings.load(Relaxed),
        );
        out.sample(
            "cryowatch_influx_written_points_total",
            &[("stream", "alarm_events")],
            sink.alarm_events.load(Relaxed),
        );
        out.counter(
            "cryowatch_influx_write_retries_total",
            "Failed InfluxDB write attempts (retried).",
            sink.retries.load(Relaxed),
        );
    }
    let Some(lag) = store.and_then(|s| s.mirror.as_ref()) else {
        return;
    };
    out.gauge(
        "cryowatch_influx_lag_readings",
        "Readings stored but not yet confirmed by InfluxDB.",
        lag.readings,
    );
    out.gauge(
        "cryowatch_influx_lag_alarm_events",
        "Alarm transitions not yet confirmed by InfluxDB.",
        lag.alarm_events,
    );
    out.gauge(
        "cryowatch_influx_oldest_unmirrored_age_seconds",
        "Age of the oldest reading waiting for InfluxDB (0 when none waits).",
        age(lag.oldest, now),
    );
    out.gauge(
        "cryowatch_influx_refused",
        "1 while InfluxDB refuses the token, org or bucket.",
        u8::from(lag.refused),
    );
    out.gauge(
        "cryowatch_influx_quarantined_points",
        "Points InfluxDB refused for their content, kept and not requeued.",
        lag.quarantined_points,
    );
    out.gauge(
        "cryowatch_influx_last_write_timestamp_seconds",
        "When InfluxDB last confirmed a write (Unix time; 0 never).",
        lag.last_ok.map(|t| t as f64 / 1000.0).unwrap_or(0.0),
    );
}

/// Seconds from `t` to `now`; 0 for none.
fn age(t: Option<TimestampMs>, now: TimestampMs) -> f64 {
    t.map(|t| (now - t).max(0) as f64 / 1000.0).unwrap_or(0.0)
}

/// A sample value.
trait Value {
    fn write(&self, out: &mut String);
}

macro_rules! integer_value {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn write(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integer_value!(u8, u64, i64, usize);

impl Value for f64 {
    fn write(&self, out: &mut String) {
        match *self {
            v if v.is_nan() => out.push_str("NaN"),
            v if v == f64::INFINITY => out.push_str("+Inf"),
            v if v == f64::NEG_INFINITY => out.push_str("-Inf"),
            v => {
                let _ = write!(out, "{v}");
            }
        }
    }
}

/// The exposition being written.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Value) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        self.0.push(' ');
        value.write(&mut self.0);
        self.0.push('\n');
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl Value) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, value: impl Value) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    /// One histogram's `_bucket`, `_sum` and `_count` lines (the family written before).
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for (i, n) in h.cumulative.iter().enumerate() {
            let le = BUCKETS.get(i).map_or_else(|| "+Inf".to_string(), f64::to_string);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, *n);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds);
        self.sample(&format!("{name}_count"), labels, h.count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mirror::Lag;

    fn config(extra: &str) -> Config {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        let text = format!(
            "[site]\nname = \"t\"\ntimezone = \"UTC\"\n[store]\npath = \"{}/s.db\"\n\
             [[modbus.device]]\nid = \"ctrl \\\"A\\\"\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:1\"\nunit = 1\n\
             [[asset]]\nid = \"d\"\nkind = \"ln2_dewar\"\n\
             [[sensor]]\nid = \"d.t\"\nasset = \"d\"\nunit = \"degC\"\n[sensor.modbus]\ndevice = \"ctrl \\\"A\\\"\"\nregister = \"input\"\naddress = 0\ntype = \"f32\"\n{extra}",
            dir.path().display()
        );
        std::fs::write(&path, text).expect("write");
        crate::config::load(&path).expect("valid config")
    }

    #[test]
    fn the_mirror_lag_is_exposed_as_gauges_when_influx_is_configured() {
        let cfg = config("");
        let figures = StoreFigures {
            mirror: Some(Lag {
                readings: 12,
                oldest: Some(1_000),
                ..Lag::default()
            }),
            ..StoreFigures::default()
        };
        let text = render(&cfg, None, Some(&figures), 31_000);
        assert!(text.contains("\ncryowatch_influx_lag_readings 12\n"), "{text}");
        assert!(
            text.contains("\ncryowatch_influx_oldest_unmirrored_age_seconds 30\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE cryowatch_influx_refused gauge\ncryowatch_influx_refused 0\n"),
            "{text}"
        );
        let text = render(&cfg, None, None, 0);
        assert!(text.contains("\ncryowatch_influx_enabled 0\n"), "{text}");
        assert!(text.contains("\ncryowatch_store_readable 0\n"), "{text}");
    }

    #[test]
    fn daemon_figures_have_their_labels_escaped_and_histograms_are_cumulative() {
        let cfg =
            config("[[modbus.device]]\nid = \"spare\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:2\"\nunit = 1\n");
        let t = Telemetry::new(&cfg);
        t.count_readings(Source::Modbus, &[crate::model::Reading::good(0, 1, 1.0)]);
        let dev = t.modbus_device(0);
        dev.set_connected(true);
        dev.poll.observe(std::time::Duration::from_millis(3));
        let text = render(&cfg, Some(&t), Some(&StoreFigures::default()), 0);
        assert!(
            text.contains("\ncryowatch_readings_total{source=\"modbus\",quality=\"good\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("source=\"mqtt\""), "no MQTT configured: {text}");
        assert!(
            text.contains("\ncryowatch_source_connected{source=\"modbus\",device=\"ctrl \\\"A\\\"\"} 1\n"),
            "{text}"
        );
        let dev = "device=\"ctrl \\\"A\\\"\"";
        for (le, n) in [("0.0025", 0), ("0.005", 1), ("+Inf", 1)] {
            let line = format!("\ncryowatch_poll_duration_seconds_bucket{{source=\"modbus\",{dev},le=\"{le}\"}} {n}\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(
            text.contains(&format!(
                "\ncryowatch_poll_duration_seconds_count{{source=\"modbus\",{dev}}} 1\n"
            )),
            "{text}"
        );
        assert!(text.contains("\ncryowatch_alarms{state=\"active\"} 0\n"), "{text}");
        assert!(
            !text.contains("spare"),
            "a device without sensors is not polled: {text}"
        );
    }
}
