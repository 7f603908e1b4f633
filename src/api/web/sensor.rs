//! `GET /sensors/{id}?from=&to=`: one sensor's history as a chart (the last 24 hours by
//! default, at most 31 days), with its alarm thresholds as lines, excursions shaded and
//! listed with their acknowledgements, and spans without data greyed. The chart is the
//! auditor report's, drawn as inline SVG.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;

use super::{Nav, age, esc, local_time, number, refusal, to_login};
use crate::api::ApiState;
use crate::api::auth::Principal;
use crate::config::rules::{Condition, stale_after};
use crate::model::unit_symbol;
use crate::model::{Quality, TimestampMs, now_ms};
use crate::report::render::{Block, Chart, Document, render_html};
use crate::store::alarms::{AlarmRow, query_alarms};

/// The longest period a page shows (longer ones: `cryowatch report`).
const MAX_SPAN_MS: i64 = 31 * 24 * 3600 * 1000;

/// What the page shows, read from the store.
struct Series {
    points: Vec<(TimestampMs, f64)>,
    gaps: Vec<(TimestampMs, TimestampMs)>,
    bad_quality: i64,
    excursions: Vec<AlarmRow>,
    latest: Option<(TimestampMs, Option<f64>, Quality)>,
}

/// The chart as an inline `<svg>` element, cut from the report renderer's page.
fn chart_svg(chart: Chart) -> String {
    let doc = Document {
        title: chart.title.clone(),
        subtitle: None,
        blocks: vec![Block::Chart(chart)],
        footer: String::new(),
    };
    let html = render_html(&doc);
    match (html.find("<svg"), html.rfind("</svg>")) {
        (Some(a), Some(b)) if a < b => html[a..b + "</svg>".len()].to_string(),
        // The renderer explains a chart it could not draw in a paragraph.
        _ => html
            .find("<p class=\"error\">")
            .and_then(|a| html[a..].find("</p>").map(|b| html[a..a + b + 4].to_string()))
            .unwrap_or_default(),
    }
}

/// The page's period from its `from` and `to` (in the site's time zone `tz`): refused
/// when unreadable, empty or longer than [`MAX_SPAN_MS`]; no arithmetic on it can wrap.
fn period(
    tz: &jiff::tz::TimeZone,
    q: &HashMap<String, String>,
    now: TimestampMs,
) -> Result<(TimestampMs, TimestampMs), String> {
    let time = |key: &str, default: &str| {
        crate::timearg::parse_in(
            q.get(key)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .unwrap_or(default),
            now,
            tz,
        )
        .map_err(|e| format!("{key}: {e}"))
    };
    let (from, to) = (time("from", "-24h")?, time("to", "now")?);
    if from >= to {
        return Err("from must be before to".into());
    }
    if to.checked_sub(from).is_none_or(|span| span > MAX_SPAN_MS) {
        return Err("the period is longer than 31 days: use `cryowatch report` for long periods".into());
    }
    Ok((from, to))
}

pub async fn page(
    State(st): State<ApiState>,
    who: Option<Principal>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    uri: Uri,
) -> Response {
    let Some(who) = who else {
        return to_login(uri.path_and_query().map_or("/", |p| p.as_str()));
    };
    let cfg = st.config.clone();
    let Some(si) = cfg.sensors.iter().position(|s| s.id == id) else {
        return refusal(
            &st,
            StatusCode::NOT_FOUND,
            Some(&who),
            "No such sensor",
            &format!("No sensor {id:?} is configured."),
        );
    };
    let now = now_ms();
    let (from, to) = match period(&st.config.site.timezone, &q, now) {
        Ok(p) => p,
        Err(e) => return refusal(&st, StatusCode::BAD_REQUEST, Some(&who), "Period not understood", &e),
    };
    let sensor = cfg.sensors[si].clone();
    let stale = crate::model::millis(stale_after(&sensor, &cfg.devices, &cfg.ups));
    let latest_bound = cfg.latest_bound(now);
    let read = st
        .with_store(move |s| {
            let mut out = Series {
                points: Vec::new(),
                gaps: Vec::new(),
                bad_quality: 0,
                excursions: Vec::new(),
                latest: None,
            };
            if let Some(sid) = s.sensors()?.get(&sensor.id).map(|(id, _)| *id) {
                s.history(sid, from, to, |r| {
                    match (r.quality, r.value) {
                        (Quality::Good, Some(v)) if v.is_finite() => out.points.push((r.time, v)),
                        _ => out.bad_quality += 1,
                    }
                    true
                })?;
                s.with_conn(|c| {
                    crate::store::retention::minute_means(c, sid, from, to, |t, v| out.points.push((t, v)))
                })?;
                out.latest = s.latest(sid, latest_bound)?.0.map(|r| (r.time, r.value, r.quality));
            }
            out.points.sort_by_key(|p| p.0);
            let mut last = from;
            for &(t, _) in &out.points {
                if t - last > stale {
                    out.gaps.push((last, t));
                }
                last = t;
            }
            if to.min(now) - last > stale {
                out.gaps.push((last, to.min(now)));
            }
            out.excursions = s
                .with_conn(|c| query_alarms(c, false, None))?
                .into_iter()
                .filter(|a| a.sensor == sensor.id && a.raised_at <= to && a.cleared_at.is_none_or(|t| t >= from))
                .collect();
            Ok(out)
        })
        .await;
    let series = match read {
        Ok(s) => s,
        Err(e) => return super::failure(&st, Some(&who), &e),
    };
    let body = render(&st, si, from, to, now, series);
    super::page(&st, StatusCode::OK, &id, Some(&who), Nav::Other, &body)
}

fn render(st: &ApiState, si: usize, from: TimestampMs, to: TimestampMs, now: TimestampMs, s: Series) -> String {
    let cfg = &st.config;
    let sensor = &cfg.sensors[si];
    let asset = cfg.assets.get(sensor.asset);
    let u = unit_symbol(&sensor.unit);
    let rules: Vec<_> = cfg.rules.iter().filter(|r| r.sensor == si && r.raises).collect();
    let thresholds: Vec<(String, f64)> = rules
        .iter()
        .filter_map(|r| match r.condition {
            Condition::High { threshold, .. } => Some((format!("{} high ({})", r.severity.as_str(), r.id), threshold)),
            Condition::Low { threshold, .. } => Some((format!("{} low ({})", r.severity.as_str(), r.id), threshold)),
            _ => None,
        })
        .collect();
    let mut h = format!(
        "<p class=\"crumbs\"><a href=\"/\">Dashboard</a> › {}</p><h1>{} <small>{}</small></h1>",
        esc(asset.map_or("", |a| a.name.as_str())),
        esc(&sensor.id),
        esc(&format!("{} in {u}", sensor.quantity)),
    );
    if let Some((t, v, q)) = s.latest {
        let value = v.map_or("—".to_string(), |v| format!("{} {u}", number(v)));
        let _ = write!(
            h,
            "<p class=\"latest\">Latest: <b>{}</b> at {} ({} ago){}</p>",
            esc(&value),
            esc(&local_time(st, t)),
            age(now - t),
            if q == Quality::Good {
                String::new()
            } else {
                format!(", quality {}", q.as_str())
            }
        );
    }
    h.push_str("<nav class=\"periods\" aria-label=\"Period\">");
    for (label, arg) in [("6 h", "-6h"), ("24 h", "-24h"), ("7 d", "-7d"), ("31 d", "-31d")] {
        let _ = write!(h, "<a href=\"/sensors/{}?from={arg}\">{label}</a>", esc(&sensor.id));
    }
    let _ = write!(
        h,
        "</nav><p class=\"small\">{} to {}</p>",
        esc(&local_time(st, from)),
        esc(&local_time(st, to))
    );
    let shaded = s
        .excursions
        .iter()
        .map(|a| (a.raised_at, a.cleared_at.unwrap_or(to)))
        .collect();
    let chart = Chart {
        title: format!("{} {}", sensor.id, sensor.quantity),
        y_label: u.to_string(),
        series: s.points.clone(),
        gaps: s.gaps.clone(),
        thresholds: thresholds.clone(),
        shaded,
        from_ms: from,
        to_ms: to,
        tz: cfg.site.timezone.clone(),
    };
    let _ = write!(h, "<figure class=\"chart\">{}</figure>", chart_svg(chart));
    let _ = write!(
        h,
        "<p class=\"small\">{} readings shown, {} not good (communication error, sensor fault or stale), {} spans without data.</p>",
        s.points.len(),
        s.bad_quality,
        s.gaps.len()
    );
    h.push_str("<h2>Thresholds</h2>");
    if thresholds.is_empty() {
        h.push_str("<p class=\"none\">No threshold rule on this sensor.</p>");
    } else {
        h.push_str("<ul class=\"thresholds\">");
        for (label, v) in &thresholds {
            let _ = write!(h, "<li>{}: {} {u}</li>", esc(label), number(*v));
        }
        h.push_str("</ul>");
    }
    h.push_str("<h2>Excursions</h2>");
    if s.excursions.is_empty() {
        h.push_str("<p class=\"none\">No alarm in this period.</p>");
        return h;
    }
    h.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Alarm</th><th>Rule</th><th>Severity</th><th>Start</th>\
         <th>End</th><th>Peak</th><th>Acknowledged</th><th>Comment</th></tr></thead><tbody>",
    );
    for a in &s.excursions {
        let end = a.cleared_at.unwrap_or(to);
        let low = rules
            .iter()
            .any(|r| r.id == a.rule && matches!(r.condition, Condition::Low { .. }));
        let during = s
            .points
            .iter()
            .filter(|(t, _)| *t >= a.raised_at && *t <= end)
            .map(|p| p.1);
        let peak = if low {
            during.reduce(f64::min)
        } else {
            during.reduce(f64::max)
        };
        let acked = match (&a.acked_by, a.acked_at) {
            (Some(by), Some(t)) => format!(
                "{} at {} via {}",
                esc(by),
                esc(&local_time(st, t)),
                esc(a.ack_path.as_deref().unwrap_or("?"))
            ),
            _ => "—".to_string(),
        };
        let _ = write!(
            h,
            "<tr><td>{id}</td><td>{rule}</td><td class=\"sev-{sev}\">{sev}</td><td class=\"t\">{start}</td><td class=\"t\">{end}</td>\
             <td>{peak}</td><td>{acked}</td><td>{comment}</td></tr>",
            id = a.id,
            rule = esc(&a.rule),
            sev = esc(a.severity.as_str()),
            start = esc(&local_time(st, a.raised_at)),
            end = a
                .cleared_at
                .map_or_else(|| esc(a.state.as_str()), |t| esc(&local_time(st, t))),
            peak = peak
                .or(a.value)
                .map_or("—".to_string(), |v| format!("{} {}", number(v), esc(u))),
            comment = esc(a.ack_comment.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</tbody></table></div>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: TimestampMs = 1_795_420_800_000; // 2026-11-23T08:00:00Z

    fn of(pairs: &[(&str, &str)]) -> Result<(TimestampMs, TimestampMs), String> {
        let q = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        period(&jiff::tz::TimeZone::UTC, &q, NOW)
    }

    #[test]
    fn periods_beyond_any_time_are_refused_not_wrapped() {
        assert_eq!(of(&[]), Ok((NOW - 86_400_000, NOW)));
        for (from, to) in [
            ("-200000000y", "now"),
            ("-1000y", "+1000y"),
            ("-9223372036854775807ms", "now"),
            ("-0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
            ("now", "+200000000y"),
        ] {
            let e = of(&[("from", from), ("to", to)]).expect_err(from);
            assert!(
                e.starts_with("from:") || e.starts_with("to:") || e.contains("longer than 31 days"),
                "{from}..{to}: {e}"
            );
        }
    }
}
