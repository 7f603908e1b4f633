//! `GET /`: a tile per asset coloured by its state, and the open alarms, each with an
//! acknowledge form for operators. The page's script polls `GET /dashboard/live` for
//! the same two parts rendered again, so there is one renderer and the browser never
//! builds HTML from data (the script keeps an acknowledge form being filled in). The
//! form posts to `POST /alarms/{id}/ack` ([`super::ack`]).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Nav, age, csrf_field, local_time, number, to_login};
use crate::api::auth::Principal;
use crate::api::{ApiError, ApiState};
use crate::config::{Config, Role, Sensor};
use crate::model::unit_symbol;
use crate::model::{Quality, TimestampMs, now_ms};
use crate::report::status::{self, SensorStatus};
use crate::store::alarms::AlarmRow;

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
        let mut open = s.alarms(true)?;
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

fn tiles(cfg: &Config, b: &Board) -> Markup {
    let by_id: HashMap<&str, &Sensor> = cfg.sensors.iter().map(|c| (c.id.as_str(), c)).collect();
    html! {
        section id="tiles" class="tiles" aria-label="Assets" {
            @for asset in &cfg.assets {
                @let mine: Vec<&SensorStatus> = b.sensors.iter().filter(|s| s.asset == asset.id).collect();
                @let open: Vec<&AlarmRow> = b.alarms.iter().filter(|a| a.asset == asset.id).collect();
                @let state = asset_state(&mine, &open);
                article class={ "tile state-" (state) } id={ "asset-" (asset.id) } data-state=(state) {
                    header { h2 { (asset.name) } span class="badge" { (state.to_uppercase()) } }
                    @if !asset.location.is_empty() {
                        p class="where" { (asset.location) }
                    }
                    ul class="readings" {
                        @let per_quantity = quantity_counts(&mine, &by_id);
                        @for s in &mine {
                            (reading(b, s, by_id.get(s.sensor.as_str()).copied(), &per_quantity))
                        }
                    }
                    @if let Some(first) = open.first() {
                        p class="open" {
                            a href={ "#alarm-" (first.id) } {
                                (open.len()) " open alarm" @if open.len() != 1 { "s" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How many of an asset's sensors (`mine`) measure each quantity.
fn quantity_counts<'a>(mine: &[&SensorStatus], by_id: &HashMap<&str, &'a Sensor>) -> HashMap<&'a str, usize> {
    let mut counts = HashMap::new();
    for c in mine.iter().filter_map(|s| by_id.get(s.sensor.as_str())) {
        *counts.entry(c.quantity.as_str()).or_default() += 1;
    }
    counts
}

/// One sensor's line in its asset's tile: what it measures, value, trend and age.
/// `per_quantity` counts the asset's sensors of each quantity.
fn reading(b: &Board, s: &SensorStatus, checked: Option<&Sensor>, per_quantity: &HashMap<&str, usize>) -> Markup {
    let short = |id: &str| id.rsplit('.').next().unwrap_or(id).replace('_', " ");
    let quantity = match checked {
        // A discrete input is named by what it is ("lid", "on battery"): "state" says nothing.
        Some(c) if c.states.is_some() => short(&c.id),
        // Three "temperature" lines of one dewar say which is which by their ids.
        Some(c) if per_quantity.get(c.quantity.as_str()).copied().unwrap_or(0) > 1 => {
            format!("{} · {}", c.quantity.replace('_', " "), short(&c.id))
        }
        Some(c) => c.quantity.replace('_', " "),
        None => String::new(),
    };
    let u = unit_symbol(&s.unit);
    let arrow = match (s.value, b.earlier.get(&s.sensor)) {
        // A discrete state has no trend.
        (Some(v), Some(e)) if s.state == "ok" && s.value_name.is_none() => trend(v, *e, b.now, u),
        _ => None,
    };
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
    html! {
        li class={ "sensor sensor-" (s.state) } {
            a href={ "/sensors/" (s.sensor) } {
                span class="q" { (quantity) }
                span class="v" {
                    @match (&s.value_name, s.value) {
                        (Some(name), _) => { (name) },
                        (None, Some(v)) => { (number(v)) " " (u) },
                        (None, None) => "—",
                    }
                }
                @if let Some((a, class, why)) = arrow {
                    span class={ "trend " (class) } title=(why) aria-label=(why) { (a) }
                }
                span class="age" { (note) }
            }
        }
    }
}

fn alarm_item(cfg: &Config, who: &Principal, a: &AlarmRow, now: TimestampMs) -> Markup {
    let (asset, u) = super::alarm_labels(cfg, a);
    let (sev, state) = (a.severity.as_str(), a.state.as_str());
    html! {
        article class={ "alarm sev-" (sev) " is-" (state) } id={ "alarm-" (a.id) } data-state=(state) {
            h3 {
                span class="sev" { (sev.to_uppercase()) } " " (asset) " · "
                a href={ "/sensors/" (a.sensor) } { (a.sensor) }
            }
            p class="facts" {
                "Alarm " (a.id) " · rule " (a.rule)
                @if let Some(v) = a.value {
                    " · "
                    @match cfg.state_name(&a.sensor, v) {
                        Some(name) => { (name) },
                        None => { (number(v)) " " (u) },
                    }
                }
                " · raised " (local_time(cfg, a.raised_at)) " (" (age(now - a.raised_at)) " ago) · "
                b class="state" { (state) }
                @if a.returned { " · back to normal, needs acknowledgement" }
                @if let Some(s) = &a.suppressed { " · suppressed: " (s) }
            }
            @if let Some(by) = &a.acked_by {
                p class="acked" {
                    "Acknowledged by " b { (by) }
                    @if let Some(t) = a.acked_at { " at " (local_time(cfg, t)) }
                    @if let Some(p) = &a.ack_path { " via " (p) }
                    @match a.ack_comment.as_deref().filter(|c| !c.is_empty()) {
                        Some(c) => { ": " q class="comment" { (c) } },
                        None => " (no comment)",
                    }
                }
            } @else if a.state == crate::model::AlarmState::Active || a.returned {
                @if who.role >= Role::Operator {
                    form method="post" action={ "/alarms/" (a.id) "/ack" } class="ack" {
                        (csrf_field(who))
                        label for={ "comment-" (a.id) } { "Comment for the record" }
                        textarea id={ "comment-" (a.id) } name="comment" rows="2" maxlength=(crate::api::ack::MAX_COMMENT)
                            placeholder="What you found, what you did or will do" {}
                        @if who.actor.starts_with("user:") {
                            (super::signature_fields("Sign the acknowledgement (optional: with your password it is an electronic signature)", false))
                        }
                        button type="submit" { "Acknowledge alarm " (a.id) }
                    }
                } @else {
                    p class="small" { "An operator can acknowledge this alarm." }
                }
            }
        }
    }
}

fn alarm_list(cfg: &Config, who: &Principal, b: &Board) -> Markup {
    html! {
        section id="alarms" class="alarms" aria-label="Open alarms" {
            h2 { "Open alarms " span class="count" { (b.alarms.len()) } }
            @if b.alarms.is_empty() {
                p class="none" { "No open alarms." }
            }
            @for a in &b.alarms {
                (alarm_item(cfg, who, a, b.now))
            }
        }
    }
}

/// The live part of the dashboard: tiles, open alarms, and when it was read.
fn live_html(cfg: &Config, who: &Principal, b: &Board) -> Markup {
    html! {
        (tiles(cfg, b))
        (alarm_list(cfg, who, b))
        p id="updated" class="small" { "Updated " (local_time(cfg, b.now)) }
    }
}

/// The dashboard's page body: the notice of an acknowledgement just made, if any, the
/// live part, and open `deviations` below it (not refreshed, so a form being filled in
/// stays) with a notice for an alarm just `closed`.
fn body_with(
    cfg: &Config,
    who: &Principal,
    b: &Board,
    acked: Option<&AlarmRow>,
    deviations: Option<(&[AlarmRow], Option<i64>)>,
) -> Markup {
    html! {
        h1 class="visually-hidden" { "Dashboard" }
        @if let Some(a) = acked {
            p class="notice ok" role="status" {
                "Alarm " (a.id) " acknowledged by " (a.acked_by.as_deref().unwrap_or(""))
                @if let Some(t) = a.acked_at { " at " (local_time(cfg, t)) }
                "."
            }
        }
        @if let Some((_, Some(id))) = deviations {
            p class="notice ok" role="status" { "Alarm " (id) " closed with a signed corrective action." }
        }
        div id="live" data-src="/dashboard/live" data-every="4000" { (live_html(cfg, who, b)) }
        noscript { p class="small" { "Reload the page to see new readings." } }
        @if let Some((rows, _)) = deviations {
            (super::deviations::section(cfg, who, rows))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct DashboardQuery {
    acked: Option<i64>,
    closed: Option<i64>,
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
    let mut acked = None;
    if let Some(id) = q.acked {
        let row = st.with_store(move |s| s.alarm(id)).await.ok().flatten();
        acked = row.filter(|a| a.acked_by.is_some());
    }
    let deviations = match st.with_store(|s| s.open_deviations()).await {
        Ok(rows) => rows,
        Err(e) => return super::failure(&st, Some(&who), &e),
    };
    let unsigned = match st.with_store(|s| s.unsigned_reviews()).await {
        Ok(rows) => rows,
        Err(e) => return super::failure(&st, Some(&who), &e),
    };
    let cfg = st.config.clone();
    let checks = match st
        .with_store(move |s| crate::alarm_check::due_checks(&cfg, s, crate::model::now_ms()))
        .await
    {
        Ok(rows) => rows,
        Err(e) => return super::failure(&st, Some(&who), &e),
    };
    let body = body_with(&st.config, &who, &board, acked.as_ref(), Some((&deviations, q.closed)));
    let body = maud::html! {
        (super::reviews::notice(&unsigned, crate::model::now_ms()))
        (super::alarm_checks::notice(&checks))
        (body)
    };
    super::page(&st, StatusCode::OK, "Dashboard", Some(&who), Nav::Dashboard, body)
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
        Ok(b) => (
            super::secure_headers(),
            Html(live_html(&st.config, &who, &b).into_string()),
        )
            .into_response(),
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
    use super::super::testkit::{self, assert_escaped, hostile};
    use super::*;

    #[test]
    fn every_outside_string_on_the_dashboard_is_escaped() {
        let cfg = testkit::config();
        let now = 1_795_420_800_000;
        let status = SensorStatus {
            sensor: hostile("sensor-id"),
            asset: hostile("asset-id"),
            value: Some(-190.0),
            value_name: None,
            unit: hostile("unit"),
            quality: "good".into(),
            time: Some(crate::model::format_rfc3339(now - 8_000)),
            last_good: None,
            state: "ok".into(),
            alarms: Vec::new(),
        };
        let acked = AlarmRow {
            id: 8,
            ..testkit::alarm(now - 900_000, true)
        };
        let board = Board {
            now,
            sensors: vec![status],
            earlier: HashMap::from([(hostile("sensor-id"), (now - 300_000, -195.0))]),
            alarms: vec![testkit::alarm(now - 600_000, false), acked.clone()],
        };
        let who = Principal {
            actor: "user:olga".into(),
            role: Role::Operator,
            csrf: Some(hostile("csrf")),
        };
        let html = body_with(&cfg, &who, &board, Some(&acked), None).into_string();
        assert_escaped(
            &html,
            &[
                "asset-id",
                "asset-name",
                "asset-location",
                "sensor-id",
                "quantity",
                "unit",
                "rule-id",
                "suppressed",
                "acked-by",
                "ack-path",
                "comment",
                "csrf",
            ],
        );
        assert!(
            html.contains("<span class=\"trend up\" title=\"+5.00 &lt;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("<form method=\"post\" action=\"/alarms/7/ack\" class=\"ack\">"),
            "{html}"
        );
        assert!(
            html.contains("<p class=\"notice ok\" role=\"status\">Alarm 8 acknowledged by &lt;"),
            "{html}"
        );
    }

    #[test]
    fn sensors_of_one_quantity_in_one_tile_are_told_apart_by_their_ids() {
        let mut cfg = testkit::config();
        let mut top = cfg.sensors[0].clone();
        top.id = "d1.temp_top".into();
        cfg.sensors[0].id = "d1.temp_bottom".into();
        cfg.sensors.push(top);
        let asset = cfg.assets[0].id.clone();
        let quantity = cfg.sensors[0].quantity.clone();
        let status = |id: &str| SensorStatus {
            sensor: id.into(),
            asset: asset.clone(),
            value: Some(-190.0),
            value_name: None,
            unit: "degC".into(),
            quality: "good".into(),
            time: None,
            last_good: None,
            state: "ok".into(),
            alarms: Vec::new(),
        };
        let board = Board {
            now: 0,
            sensors: vec![status("d1.temp_bottom"), status("d1.temp_top")],
            earlier: HashMap::new(),
            alarms: Vec::new(),
        };
        let html = tiles(&cfg, &board).into_string();
        let label = |id: &str| maud::html! { (format!("{quantity} · {id}")) }.into_string();
        for id in ["temp bottom", "temp top"] {
            assert!(html.contains(&label(id)), "no label {:?} in {html}", label(id));
        }
    }

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
