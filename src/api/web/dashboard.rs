//! `GET /`: a tile per asset coloured by its state, and the open alarms, each with an
//! acknowledge form for operators. The page's script polls `GET /dashboard/live` for
//! the same two parts rendered again, so there is one renderer and the browser never
//! builds HTML from data (the script keeps an acknowledge form being filled in). The
//! form posts to `POST /alarms/{id}/ack` ([`super::ack`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::{Nav, age, csrf_field, esc, local_time, number, to_login};
use crate::api::auth::Principal;
use crate::api::{ApiError, ApiState};
use crate::config::Role;
use crate::model::unit_symbol;
use crate::model::{Quality, TimestampMs, now_ms};
use crate::report::status::{self, SensorStatus};
use crate::store::alarms::{self, AlarmRow};

/// How far back the trend arrow looks.
const TREND_WINDOW_MS: i64 = 5 * 60 * 1000;
/// A reference reading younger than this gives no trend (too soon after start).
const TREND_MIN_MS: i64 = 60 * 1000;
/// Changes smaller than this over the window count as steady.
const STEADY: f64 = 0.2;

/// What the dashboard shows, read in one go.
pub struct Board {
    pub now: TimestampMs,
    pub sensors: Vec<SensorStatus>,
    /// Per sensor: the first good reading of the trend window, (time, value).
    pub earlier: HashMap<String, (TimestampMs, f64)>,
    /// Open alarms: active first, most severe first.
    pub alarms: Vec<AlarmRow>,
}

async fn read_board(st: &ApiState) -> Result<Board, ApiError> {
    let config = st.config.clone();
    st.with_store(move |s| {
        let now = now_ms();
        let sensors = status::gather(&config, s, now)?;
        let ids = s.sensors()?;
        let mut earlier = HashMap::new();
        for sensor in &config.sensors {
            let Some((id, _)) = ids.get(&sensor.id) else { continue };
            s.history(*id, now - TREND_WINDOW_MS, now, |r| match (r.quality, r.value) {
                (Quality::Good, Some(v)) if v.is_finite() => {
                    earlier.insert(sensor.id.clone(), (r.time, v));
                    false
                }
                _ => true,
            })?;
        }
        let mut open = s.with_conn(|c| alarms::query_alarms(c, true, None))?;
        open.sort_by_key(|a| {
            (
                a.state != crate::model::AlarmState::Active,
                std::cmp::Reverse(a.severity),
                std::cmp::Reverse(a.id),
            )
        });
        Ok(Board {
            now,
            sensors,
            earlier,
            alarms: open,
        })
    })
    .await
}

/// `ok`, `warning` or `alarm` for an asset: alarm when an open alarm of severity alarm
/// or critical is not suppressed, warning for any other open alarm or a sensor that is
/// not reporting good readings.
pub fn asset_state(sensors: &[&SensorStatus], open: &[&AlarmRow]) -> &'static str {
    if open
        .iter()
        .any(|a| a.severity != crate::model::Severity::Warning && a.suppressed.is_none())
    {
        "alarm"
    } else if !open.is_empty() || sensors.iter().any(|s| s.state != "ok") {
        "warning"
    } else {
        "ok"
    }
}

/// (arrow, css class, explanation) of the change since the reference reading.
pub fn trend(
    now_value: f64,
    earlier: (TimestampMs, f64),
    now: TimestampMs,
    u: &str,
) -> Option<(&'static str, &'static str, String)> {
    let (t, v) = earlier;
    if now - t < TREND_MIN_MS {
        return None;
    }
    let delta = now_value - v;
    let (arrow, class) = if delta.abs() < STEADY {
        ("→", "steady")
    } else if delta > 0.0 {
        ("↑", "up")
    } else {
        ("↓", "down")
    };
    Some((arrow, class, format!("{delta:+.2} {u} in the last {}", age(now - t))))
}

fn tiles(st: &ApiState, b: &Board) -> String {
    let mut h = String::from("<section id=\"tiles\" class=\"tiles\" aria-label=\"Assets\">");
    for asset in &st.config.assets {
        let mine: Vec<&SensorStatus> = b.sensors.iter().filter(|s| s.asset == asset.id).collect();
        let open: Vec<&AlarmRow> = b.alarms.iter().filter(|a| a.asset == asset.id).collect();
        let state = asset_state(&mine, &open);
        let _ = write!(
            h,
            "<article class=\"tile state-{state}\" id=\"asset-{id}\" data-state=\"{state}\">\
             <header><h2>{name}</h2><span class=\"badge\">{label}</span></header>",
            id = esc(&asset.id),
            name = esc(&asset.name),
            label = state.to_uppercase(),
        );
        if !asset.location.is_empty() {
            let _ = write!(h, "<p class=\"where\">{}</p>", esc(&asset.location));
        }
        h.push_str("<ul class=\"readings\">");
        for s in &mine {
            let quantity = st
                .config
                .sensors
                .iter()
                .find(|c| c.id == s.sensor)
                .map_or("", |c| c.quantity.as_str());
            let u = unit_symbol(&s.unit);
            let value = match s.value {
                Some(v) => format!("{} {}", number(v), esc(u)),
                None => "—".to_string(),
            };
            let arrow = match (s.value, b.earlier.get(&s.sensor)) {
                (Some(v), Some(e)) if s.state == "ok" => trend(v, *e, b.now, u),
                _ => None,
            };
            let arrow = arrow.map_or(String::new(), |(a, class, why)| {
                format!(
                    "<span class=\"trend {class}\" title=\"{w}\" aria-label=\"{w}\">{a}</span>",
                    w = esc(&why)
                )
            });
            let when = s
                .time
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_millisecond());
            let note = match (s.state.as_str(), when) {
                ("ok", Some(t)) => format!("{} ago", age(b.now - t)),
                (other, Some(t)) => format!("{} · {} ago", other.replace('_', " "), age(b.now - t)),
                (other, None) => other.replace('_', " "),
            };
            let _ = write!(
                h,
                "<li class=\"sensor sensor-{state}\"><a href=\"/sensors/{id}\"><span class=\"q\">{q}</span>\
                 <span class=\"v\">{value}</span>{arrow}<span class=\"age\">{note}</span></a></li>",
                state = esc(s.state.as_str()),
                id = esc(&s.sensor),
                q = esc(quantity),
                note = esc(&note),
            );
        }
        h.push_str("</ul>");
        if !open.is_empty() {
            let n = open.len();
            let _ = write!(
                h,
                "<p class=\"open\"><a href=\"#alarm-{}\">{n} open alarm{}</a></p>",
                open[0].id,
                if n == 1 { "" } else { "s" }
            );
        }
        h.push_str("</article>");
    }
    h.push_str("</section>");
    h
}

fn alarm_item(st: &ApiState, who: &Principal, a: &AlarmRow, now: TimestampMs) -> String {
    let cfg = &st.config;
    let (asset, u) = super::alarm_labels(cfg, a);
    let mut h = format!(
        "<article class=\"alarm sev-{sev} is-{state}\" id=\"alarm-{id}\" data-state=\"{state}\">\
         <h3><span class=\"sev\">{sev_up}</span> {asset} · <a href=\"/sensors/{sensor}\">{sensor}</a></h3>\
         <p class=\"facts\">Alarm {id} · rule {rule}",
        sev = esc(a.severity.as_str()),
        sev_up = esc(&a.severity.as_str().to_uppercase()),
        state = esc(a.state.as_str()),
        id = a.id,
        asset = esc(asset),
        sensor = esc(&a.sensor),
        rule = esc(&a.rule),
    );
    if let Some(v) = a.value {
        let _ = write!(h, " · {} {}", number(v), esc(u));
    }
    let _ = write!(
        h,
        " · raised {} ({} ago) · <b class=\"state\">{}</b>",
        esc(&local_time(st, a.raised_at)),
        age(now - a.raised_at),
        esc(a.state.as_str())
    );
    if a.returned {
        h.push_str(" · back to normal, needs acknowledgement");
    }
    if let Some(s) = &a.suppressed {
        let _ = write!(h, " · suppressed: {}", esc(s));
    }
    h.push_str("</p>");
    if let Some(by) = &a.acked_by {
        let _ = write!(h, "<p class=\"acked\">Acknowledged by <b>{}</b>", esc(by));
        if let Some(t) = a.acked_at {
            let _ = write!(h, " at {}", esc(&local_time(st, t)));
        }
        if let Some(p) = &a.ack_path {
            let _ = write!(h, " via {}", esc(p));
        }
        match a.ack_comment.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => {
                let _ = write!(h, ": <q class=\"comment\">{}</q></p>", esc(c));
            }
            None => h.push_str(" (no comment)</p>"),
        }
    } else if a.state == crate::model::AlarmState::Active || a.returned {
        if who.role >= Role::Operator {
            let _ = write!(
                h,
                "<form method=\"post\" action=\"/alarms/{id}/ack\" class=\"ack\">{csrf}\
                 <label for=\"comment-{id}\">Comment for the record</label>\
                 <textarea id=\"comment-{id}\" name=\"comment\" rows=\"2\" maxlength=\"{max}\" \
                 placeholder=\"What you found, what you did or will do\"></textarea>\
                 <button type=\"submit\">Acknowledge alarm {id}</button></form>",
                id = a.id,
                csrf = csrf_field(who),
                max = crate::api::ack::MAX_COMMENT,
            );
        } else {
            h.push_str("<p class=\"small\">An operator can acknowledge this alarm.</p>");
        }
    }
    h.push_str("</article>");
    h
}

fn alarm_list(st: &ApiState, who: &Principal, b: &Board) -> String {
    let mut h = format!(
        "<section id=\"alarms\" class=\"alarms\" aria-label=\"Open alarms\"><h2>Open alarms <span class=\"count\">{}</span></h2>",
        b.alarms.len()
    );
    if b.alarms.is_empty() {
        h.push_str("<p class=\"none\">No open alarms.</p>");
    }
    for a in &b.alarms {
        h.push_str(&alarm_item(st, who, a, b.now));
    }
    h.push_str("</section>");
    h
}

/// The live part of the dashboard: tiles, open alarms, and when it was read.
fn live_html(st: &ApiState, who: &Principal, b: &Board) -> String {
    format!(
        "{}{}<p id=\"updated\" class=\"small\">Updated {}</p>",
        tiles(st, b),
        alarm_list(st, who, b),
        esc(&local_time(st, b.now))
    )
}

#[derive(Debug, Deserialize)]
pub struct DashboardQuery {
    acked: Option<i64>,
}

/// `GET /`.
pub async fn page(State(st): State<ApiState>, who: Option<Principal>, Query(q): Query<DashboardQuery>) -> Response {
    let Some(who) = who else {
        return to_login("/");
    };
    let board = match read_board(&st).await {
        Ok(b) => b,
        Err(e) => return super::failure(&st, Some(&who), &e),
    };
    let mut notice = String::new();
    if let Some(id) = q.acked {
        let row = st
            .with_store(move |s| s.with_conn(|c| alarms::query_alarms(c, false, Some(id))))
            .await
            .ok()
            .and_then(|mut r| r.pop());
        if let Some(a) = row.filter(|a| a.acked_by.is_some()) {
            notice = format!(
                "<p class=\"notice ok\" role=\"status\">Alarm {} acknowledged by {}{}.</p>",
                a.id,
                esc(a.acked_by.as_deref().unwrap_or("")),
                a.acked_at
                    .map(|t| format!(" at {}", esc(&local_time(&st, t))))
                    .unwrap_or_default()
            );
        }
    }
    let body = format!(
        "<h1 class=\"visually-hidden\">Dashboard</h1>{notice}\
         <div id=\"live\" data-src=\"/dashboard/live\" data-every=\"{every}\">{live}</div>\
         <noscript><p class=\"small\">Reload the page to see new readings.</p></noscript>",
        every = 4000,
        live = live_html(&st, &who, &board),
    );
    super::page(&st, StatusCode::OK, "Dashboard", Some(&who), Nav::Dashboard, &body)
}

/// `GET /dashboard/live`: the live part of the dashboard, for the page's script; 401
/// once the session has ended (the script then goes to the sign-in page).
pub async fn live(State(st): State<ApiState>, who: Option<Principal>) -> Response {
    let Some(who) = who else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CACHE_CONTROL, "no-store")],
            "signed out",
        )
            .into_response();
    };
    match read_board(&st).await {
        Ok(b) => (super::secure_headers(), Html(live_html(&st, &who, &b))).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dashboard refresh failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CACHE_CONTROL, "no-store")],
                "store unavailable",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_arrows_need_an_old_enough_reference_and_a_real_change() {
        let now = 10 * 60_000;
        assert_eq!(trend(-190.0, (now - 30_000, -195.0), now, "°C"), None, "too recent");
        assert_eq!(
            trend(-190.0, (now - 300_000, -190.1), now, "°C").map(|t| t.0),
            Some("→")
        );
        let (arrow, class, why) = trend(-190.0, (now - 300_000, -195.0), now, "°C").expect("trend");
        assert_eq!((arrow, class), ("↑", "up"));
        assert_eq!(why, "+5.00 °C in the last 5 min");
        assert_eq!(
            trend(-80.0, (now - 300_000, -79.0), now, "°C").map(|t| t.1),
            Some("down")
        );
    }
}
