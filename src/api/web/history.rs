//! `GET /alarms/history?from=&to=`: every alarm raised or open in a period (the last
//! 30 days by default), newest first, with who acknowledged it, when, by which path
//! (web, api, cli, link, sms) and the comment.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Nav, esc, local_time, number, refusal, to_login};
use crate::api::ApiState;
use crate::api::auth::Principal;
use crate::model::now_ms;
use crate::store::alarms::query_alarms;

/// Most rows on one page.
const MAX_ROWS: usize = 1000;
const HOUR: i64 = 3_600_000;

pub async fn page(
    State(st): State<ApiState>,
    who: Option<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(who) = who else {
        return to_login("/alarms/history");
    };
    let now = now_ms();
    let tz = st.config.site.timezone.clone();
    let time = |key: &str, default: &str| {
        let text = q
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .unwrap_or(default);
        crate::timearg::parse_in(text, now, &tz).map_err(|e| format!("{key}: {e}"))
    };
    let (from, to) = match (time("from", "-30d"), time("to", "now")) {
        (Ok(f), Ok(t)) if f < t => (f, t),
        (Ok(_), Ok(_)) => {
            return refusal(
                &st,
                StatusCode::BAD_REQUEST,
                Some(&who),
                "Period not understood",
                "from must be before to",
            );
        }
        (Err(e), _) | (_, Err(e)) => {
            return refusal(&st, StatusCode::BAD_REQUEST, Some(&who), "Period not understood", &e);
        }
    };
    let rows = st
        .with_store(move |s| s.with_conn(|c| query_alarms(c, false, None)))
        .await
        .map(|rows| {
            rows.into_iter()
                .filter(|a| a.raised_at <= to && a.cleared_at.is_none_or(|t| t >= from))
                .collect::<Vec<_>>()
        });
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return super::failure(&st, Some(&who), &e),
    };
    let cfg = &st.config;
    let field = |key: &str| esc(q.get(key).map(String::as_str).unwrap_or(""));
    let mut h = format!(
        "<h1>Alarm history</h1>\
         <form method=\"get\" class=\"period\"><label>From <input name=\"from\" value=\"{}\" placeholder=\"-30d\"></label>\
         <label>To <input name=\"to\" value=\"{}\" placeholder=\"now\"></label><button type=\"submit\">Show</button></form>\
         <p class=\"small\">{} to {}: {} alarm{}. Times are {}.</p>",
        field("from"),
        field("to"),
        esc(&local_time(&st, from)),
        esc(&local_time(&st, to)),
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        esc(cfg.site.timezone.iana_name().unwrap_or("UTC")),
    );
    if rows.is_empty() {
        h.push_str("<p class=\"none\">No alarm in this period.</p>");
    } else {
        h.push_str(
            "<div class=\"scroll\"><table class=\"history\"><thead><tr><th>Alarm</th><th>Asset</th><th>Sensor</th>\
             <th>Rule</th><th>Severity</th><th>State</th><th>Raised</th><th>Value</th><th>Acknowledged by</th>\
             <th>At</th><th>Path</th><th>Comment</th><th>Cleared</th></tr></thead><tbody>",
        );
        for a in rows.iter().take(MAX_ROWS) {
            let (asset, u) = super::alarm_labels(cfg, a);
            let opt_time = |t: Option<i64>| t.map_or_else(|| "—".to_string(), |t| esc(&local_time(&st, t)));
            let _ = write!(
                h,
                "<tr id=\"history-{id}\" data-state=\"{state}\"><td>{id}</td><td>{asset}</td>\
                 <td><a href=\"/sensors/{sensor}?from={from}&amp;to={to}\">{sensor}</a></td><td>{rule}</td>\
                 <td class=\"sev-{sev}\">{sev}</td><td>{state}</td><td class=\"t\">{raised}</td><td>{value}</td>\
                 <td class=\"by\">{by}</td><td class=\"t\">{at}</td><td>{path}</td><td class=\"comment\">{comment}</td><td class=\"t\">{cleared}</td></tr>",
                id = a.id,
                asset = esc(asset),
                sensor = esc(&a.sensor),
                // The sensor page around the alarm: an hour either side.
                from = esc(&crate::model::format_rfc3339(a.raised_at - HOUR)),
                to = esc(&crate::model::format_rfc3339(
                    (a.cleared_at.unwrap_or(now) + HOUR).min(a.raised_at + 30 * 24 * HOUR)
                )),
                rule = esc(&a.rule),
                sev = esc(a.severity.as_str()),
                state = esc(a.state.as_str()),
                raised = esc(&local_time(&st, a.raised_at)),
                value = a.value.map_or("—".to_string(), |v| format!("{} {}", number(v), esc(u))),
                by = esc(a.acked_by.as_deref().unwrap_or("—")),
                at = opt_time(a.acked_at),
                path = esc(a.ack_path.as_deref().unwrap_or("")),
                comment = esc(a.ack_comment.as_deref().unwrap_or("")),
                cleared = opt_time(a.cleared_at),
            );
        }
        h.push_str("</tbody></table></div>");
        if rows.len() > MAX_ROWS {
            let _ = write!(
                h,
                "<p class=\"small\">Only the newest {MAX_ROWS} are shown: choose a shorter period, or use \
                 <code>cryowatch alarms --json</code>.</p>"
            );
        }
    }
    super::page(&st, StatusCode::OK, "Alarm history", Some(&who), Nav::History, &h)
}
