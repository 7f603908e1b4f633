//! `GET /metrics`: Prometheus text exposition of what the store knows, computed at each
//! scrape. For now: the InfluxDB mirror's lag and health.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;
use crate::model::now_ms;
use crate::store::mirror::{self, Lag};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let mirrored = state.config.influx.is_some();
    let lag = if mirrored {
        match state.with_store(|s| s.with_conn(mirror::lag)).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(error = %e, "metrics: cannot read the store");
                return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response();
            }
        }
    } else {
        None
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        render(lag.as_ref(), now_ms()),
    )
        .into_response()
}

/// The exposition text; `lag` is `None` when no mirror is configured.
pub fn render(lag: Option<&Lag>, now: i64) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    };
    gauge(
        "cryowatch_influx_enabled",
        "1 when readings are mirrored to InfluxDB.",
        f64::from(u8::from(lag.is_some())),
    );
    let Some(lag) = lag else { return out };
    gauge(
        "cryowatch_influx_lag_readings",
        "Readings stored but not yet confirmed by InfluxDB.",
        lag.readings as f64,
    );
    gauge(
        "cryowatch_influx_lag_alarm_events",
        "Alarm transitions not yet confirmed by InfluxDB.",
        lag.alarm_events as f64,
    );
    gauge(
        "cryowatch_influx_oldest_unmirrored_age_seconds",
        "Age of the oldest reading waiting for InfluxDB (0 when none waits).",
        lag.oldest.map(|t| (now - t).max(0) as f64 / 1000.0).unwrap_or(0.0),
    );
    gauge(
        "cryowatch_influx_refused",
        "1 while InfluxDB refuses the token, org or bucket.",
        f64::from(u8::from(lag.refused)),
    );
    gauge(
        "cryowatch_influx_quarantined_points",
        "Points InfluxDB refused for their content, kept and not requeued.",
        lag.quarantined_points as f64,
    );
    gauge(
        "cryowatch_influx_last_write_timestamp_seconds",
        "When InfluxDB last confirmed a write (Unix time; 0 never).",
        lag.last_ok.map(|t| t as f64 / 1000.0).unwrap_or(0.0),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_is_exposed_as_gauges() {
        let lag = Lag {
            readings: 12,
            oldest: Some(1_000),
            ..Lag::default()
        };
        let text = render(Some(&lag), 31_000);
        assert!(text.contains("\ncryowatch_influx_lag_readings 12\n"), "{text}");
        assert!(
            text.contains("\ncryowatch_influx_oldest_unmirrored_age_seconds 30\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE cryowatch_influx_refused gauge\ncryowatch_influx_refused 0\n"),
            "{text}"
        );
        assert_eq!(render(None, 0).lines().last(), Some("cryowatch_influx_enabled 0"));
    }
}
