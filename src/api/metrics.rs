//! `GET /metrics`: the whole pipeline in Prometheus' text exposition format (0.0.4),
//! encoded by prometheus-client.
//!
//! Two kinds of figures: what only the running daemon knows, registered by each stage
//! when it starts into the registry the daemon hands it (the sources:
//! [`crate::telemetry::Telemetry::register`], the commit stage, the dispatcher, the
//! InfluxDB mirror — each a collector reading the stage's own atomics at scrape time),
//! and what the store knows, read at each scrape through typed store functions
//! ([`crate::store::Store::figures`]: open alarms by state, open deviations, the
//! notification outbox's lag, the InfluxDB mirror's lag, the audit trail's head). When the store cannot be
//! read the daemon's own figures are still served, with `cryowatch_store_readable 0`:
//! disk trouble is when they matter most. This module knows no stage.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::ApiState;
use crate::config::Config;
use crate::model::{TimestampMs, now_ms};
use crate::store::figures::StoreFigures;
use crate::telemetry::families;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<ApiState>, who: super::auth::Principal) -> Response {
    if let Err(e) = who.require(crate::config::Role::Viewer) {
        return e.into_response();
    }
    let config = state.config.clone();
    let figures = match state
        .with_store(move |s| {
            let mut f = s.figures(|id| config.rules.iter().any(|r| r.id == id), config.influx.is_some())?;
            f.alarm_checks = crate::alarm_check::due_checks(&config, s, now_ms())?
                .iter()
                .map(|d| d.state.as_str())
                .collect();
            Ok(f)
        })
        .await
    {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(error = %e, "metrics: cannot read the store; serving the daemon's own figures only");
            None
        }
    };
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        render(&state.config, state.metrics.as_deref(), figures, now_ms()),
    )
        .into_response()
}

/// Open alarm states as stored (`pending` is a rule whose delay is running).
const ALARM_STATES: [&str; 3] = ["pending", "active", "acknowledged"];

/// The exposition text: what the daemon's stages registered (`None` when the API runs
/// outside the daemon), then what the store holds (`None` when it could not be read).
pub fn render(config: &Config, daemon: Option<&Registry>, store: Option<StoreFigures>, now: TimestampMs) -> String {
    let mut out = String::new();
    if let Some(r) = daemon {
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, r);
    }
    let mut scrape = Registry::default();
    scrape.register_collector(Box::new(StoreMetrics {
        figures: store,
        influx: config.influx.is_some(),
        now,
    }));
    let _ = prometheus_text::encode(&mut out, &scrape);
    out
}

/// What the store holds, read for one scrape.
#[derive(Debug)]
struct StoreMetrics {
    figures: Option<StoreFigures>,
    influx: bool,
    now: TimestampMs,
}

impl Collector for StoreMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        families::gauge(
            &mut enc,
            "cryowatch_store_readable",
            "1 when this scrape could read the store (alarms, outboxes, audit trail); 0 and those figures are missing otherwise.",
            u64::from(self.figures.is_some()),
        )?;
        if let Some(s) = &self.figures {
            store_figures(&mut enc, s, self.now)?;
        }
        families::gauge(
            &mut enc,
            "cryowatch_influx_enabled",
            "1 when readings are mirrored to InfluxDB.",
            u64::from(self.influx),
        )?;
        match self.figures.as_ref().and_then(|s| s.mirror.as_ref()) {
            Some(lag) => influx_lag(&mut enc, lag, self.now),
            None => Ok(()),
        }
    }
}

fn store_figures(enc: &mut DescriptorEncoder, s: &StoreFigures, now: TimestampMs) -> std::fmt::Result {
    let mut m = families::family(
        enc,
        "cryowatch_alarms",
        MetricType::Gauge,
        "Open alarms by state (pending: a rule's delay is running).",
    )?;
    for state in ALARM_STATES {
        families::gauge_sample(&mut m, &[("state", state)], s.alarms(state))?;
    }
    for (state, n) in s.alarms.iter().filter(|(st, _)| !ALARM_STATES.contains(&st.as_str())) {
        families::gauge_sample(&mut m, &[("state", state)], *n)?;
    }
    families::gauge(
        enc,
        "cryowatch_alarms_suppressed",
        "Open alarms under a maintenance window or shelved.",
        s.suppressed,
    )?;
    families::gauge(
        enc,
        "cryowatch_notification_outbox_pending",
        "Notifications in the outbox not yet delivered or given up.",
        s.outbox_pending,
    )?;
    families::gauge(
        enc,
        "cryowatch_notification_outbox_oldest_age_seconds",
        "Age of the oldest notification waiting in the outbox (0 when none waits).",
        age(s.outbox_oldest, now),
    )?;
    families::gauge(
        enc,
        "cryowatch_open_deviations",
        "Excursions cleared and not yet closed by a signed corrective action (alarm tests excepted).",
        s.open_deviations,
    )?;
    families::gauge(
        enc,
        "cryowatch_open_deviation_oldest_age_seconds",
        "Time since the oldest open deviation cleared (0 when none is open).",
        age(s.open_deviation_oldest, now),
    )?;
    if !s.alarm_checks.is_empty() {
        let mut m = families::family(
            enc,
            "cryowatch_alarm_checks",
            MetricType::Gauge,
            "Probes under an [[alarm_check_schedule]] by where their physical alarm check stands (done this period, due by its end, overdue: the last period ended without one).",
        )?;
        for state in ["done", "due", "overdue"] {
            let n = s.alarm_checks.iter().filter(|x| **x == state).count();
            families::gauge_sample(&mut m, &[("state", state)], n as u64)?;
        }
    }
    if let Some((seq, t)) = s.audit_head {
        families::gauge(
            enc,
            "cryowatch_audit_head_seq",
            "Sequence number of the audit trail's newest record.",
            seq,
        )?;
        families::gauge(
            enc,
            "cryowatch_audit_head_age_seconds",
            "Time since the audit trail's newest record.",
            age(Some(t), now),
        )?;
    }
    Ok(())
}

fn influx_lag(enc: &mut DescriptorEncoder, lag: &crate::store::mirror::Lag, now: TimestampMs) -> std::fmt::Result {
    families::gauge(
        enc,
        "cryowatch_influx_lag_readings",
        "Readings stored but not yet confirmed by InfluxDB.",
        lag.readings,
    )?;
    families::gauge(
        enc,
        "cryowatch_influx_lag_alarm_events",
        "Alarm transitions not yet confirmed by InfluxDB.",
        lag.alarm_events,
    )?;
    families::gauge(
        enc,
        "cryowatch_influx_oldest_unmirrored_age_seconds",
        "Age of the oldest reading waiting for InfluxDB (0 when none waits).",
        age(lag.oldest, now),
    )?;
    families::gauge(
        enc,
        "cryowatch_influx_refused",
        "1 while InfluxDB refuses the token, org or bucket.",
        u64::from(lag.refused),
    )?;
    families::gauge(
        enc,
        "cryowatch_influx_quarantined_points",
        "Points InfluxDB refused for their content, kept and not requeued.",
        lag.quarantined_points,
    )?;
    families::gauge(
        enc,
        "cryowatch_influx_last_write_timestamp_seconds",
        "When InfluxDB last confirmed a write (Unix time; 0 never).",
        lag.last_ok.map(|t| t as f64 / 1000.0).unwrap_or(0.0),
    )
}

/// Seconds from `t` to `now`; 0 for none.
fn age(t: Option<TimestampMs>, now: TimestampMs) -> f64 {
    t.map(|t| (now - t).max(0) as f64 / 1000.0).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::mirror::Lag;
    use crate::telemetry::{Source, Telemetry};

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
    fn scheduled_alarm_checks_are_counted_by_state_and_absent_without_a_schedule() {
        let cfg = config("");
        let figures = StoreFigures {
            alarm_checks: vec!["overdue", "done", "overdue"],
            ..StoreFigures::default()
        };
        let text = render(&cfg, None, Some(figures), 0);
        for line in [
            "cryowatch_alarm_checks{state=\"done\"} 1\n",
            "cryowatch_alarm_checks{state=\"due\"} 0\n",
            "cryowatch_alarm_checks{state=\"overdue\"} 2\n",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
        let text = render(&cfg, None, Some(StoreFigures::default()), 0);
        assert!(!text.contains("cryowatch_alarm_checks"), "{text}");
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
        let text = render(&cfg, None, Some(figures), 31_000);
        assert!(text.contains("\ncryowatch_influx_lag_readings 12\n"), "{text}");
        assert!(
            text.contains("\ncryowatch_influx_oldest_unmirrored_age_seconds 30.0\n"),
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
        let t = Arc::new(Telemetry::new(&cfg));
        t.count_readings(Source::Modbus, &[crate::model::Reading::good(0, 1, 1.0)]);
        let dev = t.modbus_device(0);
        dev.set_connected(true);
        dev.poll.observe(std::time::Duration::from_millis(3));
        let mut registry = Registry::default();
        t.register(&mut registry);
        let text = render(&cfg, Some(&registry), Some(StoreFigures::default()), 0);
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
