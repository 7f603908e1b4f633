//! `GET /alarms/history?from=&to=`: every alarm raised or open in a period (the last
//! 30 days by default), newest first, with who acknowledged it (and whether they signed
//! the acknowledgement electronically), when, by which path (web, api, cli, link, sms)
//! and the comment.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::{Nav, local_time, number, to_login};
use crate::api::ApiState;
use crate::api::auth::Principal;
use crate::config::Config;
use crate::model::{TimestampMs, format_rfc3339, now_ms};
use crate::store::alarms::AlarmRow;
use crate::store::quality::Signer;

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
    let (from, to) = match super::period(&st.config, &q, now - 30 * 24 * HOUR, now) {
        Ok(p) => p,
        Err(why) => return super::bad_period(&st, &who, &why),
    };
    let rows = st
        .with_store(move |s| Ok((s.alarms(false)?, s.ack_signers()?)))
        .await
        .map(|(rows, signers)| {
            let rows = rows
                .into_iter()
                .filter(|a| a.raised_at <= to && a.cleared_at.is_none_or(|t| t >= from))
                .collect::<Vec<_>>();
            (rows, signers)
        });
    let (rows, signers) = match rows {
        Ok(r) => r,
        Err(e) => return super::failure(&st, Some(&who), &e),
    };
    let form = (q.get("from").map(String::as_str), q.get("to").map(String::as_str));
    let body = render(&st.config, form, (from, to), now, (&rows, &signers));
    super::page(&st, StatusCode::OK, "Alarm history", Some(&who), Nav::History, body)
}

/// The page body: the period form (`asked`: its fields as sent), then the alarms of
/// `period` in a table, with the signers of signed acknowledgements by alarm id.
fn render(
    cfg: &Config,
    asked: (Option<&str>, Option<&str>),
    period: (TimestampMs, TimestampMs),
    now: TimestampMs,
    (rows, signers): (&[AlarmRow], &HashMap<i64, Signer>),
) -> Markup {
    let (from, to) = period;
    let opt_time = |t: Option<TimestampMs>| t.map_or_else(|| "—".to_string(), |t| local_time(cfg, t));
    html! {
        h1 { "Alarm history" }
        form method="get" class="period" {
            label { "From " input name="from" value=(asked.0.unwrap_or("")) placeholder="-30d"; }
            label { "To " input name="to" value=(asked.1.unwrap_or("")) placeholder="now"; }
            button type="submit" { "Show" }
        }
        p class="small" {
            (local_time(cfg, from)) " to " (local_time(cfg, to)) ": " (rows.len()) " alarm"
            @if rows.len() != 1 { "s" }
            ". Times are " (cfg.site.timezone.iana_name().unwrap_or("UTC")) "."
        }
        @if rows.is_empty() {
            p class="none" { "No alarm in this period." }
        } @else {
            div class="scroll" {
                table class="history" {
                    thead {
                        tr {
                            th { "Alarm" } th { "Asset" } th { "Sensor" } th { "Rule" } th { "Severity" }
                            th { "State" } th { "Raised" } th { "Value" } th { "Acknowledged by" } th { "At" }
                            th { "Path" } th { "Comment" } th { "Cleared" }
                        }
                    }
                    tbody {
                        @for a in rows.iter().take(MAX_ROWS) {
                            @let (asset, u) = super::alarm_labels(cfg, a);
                            @let (sev, state) = (a.severity.as_str(), a.state.as_str());
                            // The sensor page around the alarm: an hour either side.
                            @let around = (
                                format_rfc3339(a.raised_at - HOUR),
                                format_rfc3339((a.cleared_at.unwrap_or(now) + HOUR).min(a.raised_at + 30 * 24 * HOUR)),
                            );
                            tr id={ "history-" (a.id) } data-state=(state) {
                                td { (a.id) }
                                td { (asset) }
                                td { a href={ "/sensors/" (a.sensor) "?from=" (around.0) "&to=" (around.1) } { (a.sensor) } }
                                td { (a.rule) }
                                td class={ "sev-" (sev) } { (sev) }
                                td { (state) }
                                td class="t" { (local_time(cfg, a.raised_at)) }
                                td {
                                    @match a.value {
                                        Some(v) => { (number(v)) " " (u) },
                                        None => "—",
                                    }
                                }
                                td class="by" {
                                    (a.acked_by.as_deref().unwrap_or("—"))
                                    @if let Some(s) = signers.get(&a.id) {
                                        br; span class="signed" { "signed: " (s.printed_name) }
                                    }
                                }
                                td class="t" { (opt_time(a.acked_at)) }
                                td { (a.ack_path.as_deref().unwrap_or("")) }
                                td class="comment" { (a.ack_comment.as_deref().unwrap_or("")) }
                                td class="t" { (opt_time(a.cleared_at)) }
                            }
                        }
                    }
                }
            }
            @if rows.len() > MAX_ROWS {
                p class="small" {
                    "Only the newest " (MAX_ROWS) " are shown: choose a shorter period, or use "
                    code { "cryowatch alarms --json" } "."
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, assert_escaped, hostile};
    use super::*;

    #[test]
    fn every_outside_string_in_the_alarm_history_is_escaped() {
        let cfg = testkit::config();
        let now = 1_795_420_800_000;
        let (from, to) = (hostile("from"), hostile("to"));
        let rows = [
            testkit::alarm(now - 3_600_000, true),
            testkit::alarm(now - 600_000, false),
        ];
        let signer = Signer {
            user: "tech-c".into(),
            printed_name: hostile("printed-name"),
        };
        let signers = HashMap::from([(rows[0].id, signer)]);
        let html = render(
            &cfg,
            (Some(&from), Some(&to)),
            (now - 86_400_000, now),
            now,
            (&rows, &signers),
        )
        .into_string();
        assert_escaped(
            &html,
            &[
                "from",
                "to",
                "asset-name",
                "sensor-id",
                "unit",
                "rule-id",
                "acked-by",
                "ack-path",
                "comment",
                "printed-name",
            ],
        );
        assert!(html.contains("<input name=\"from\" value=\"&lt;script&gt;"), "{html}");
        assert!(html.contains("?from=2026-11-23T06:00:00.000Z&amp;to="), "{html}");
    }
}
