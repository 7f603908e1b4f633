//! `GET /quality?from=&to=`: the alarm system's own performance per month and asset
//! ([`crate::report::indicators`]), the same figures as `cryowatch quality`; by default
//! this month and the two before, in the site's time zone.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::{Nav, local_time, to_login};
use crate::api::ApiState;
use crate::api::auth::Principal;
use crate::config::Config;
use crate::model::now_ms;
use crate::report::indicators::{self, AckStats, Indicators, Summary, asset_label, headline, seconds};

/// The longest period the page computes.
const MAX_PERIOD_MS: i64 = 3 * 366 * 86_400_000;

pub async fn page(
    State(st): State<ApiState>,
    who: Option<Principal>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(who) = who else {
        return to_login("/quality");
    };
    let now = now_ms();
    let asked = |key: &str| q.get(key).map(String::as_str).filter(|v| !v.is_empty());
    let default_from = indicators::months_back(now, 2, &st.config.site.timezone);
    let (from, to) = match super::period(&st.config, &q, default_from, now) {
        Ok(p) => p,
        Err(why) => return super::bad_period(&st, &who, &why),
    };
    if to.saturating_sub(from) > MAX_PERIOD_MS {
        return super::bad_period(
            &st,
            &who,
            "a period of at most 3 years (for longer ones: cryowatch quality on the server)",
        );
    }
    // On a connection of its own: a long period must not hold up the pages and
    // acknowledgements that share the API's.
    let cfg = st.config.clone();
    let req = indicators::Request { from, to, now };
    let gathered = tokio::task::spawn_blocking(move || {
        let store = crate::store::Store::open_read_only(&cfg.store.path)?;
        indicators::gather(&cfg, &store, req)
    })
    .await;
    let r = match gathered {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return super::failure(&st, Some(&who), &e.into()),
        Err(e) => {
            tracing::error!(error = %e, "the quality page failed");
            return axum::response::IntoResponse::into_response(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let body = render(&st.config, (asked("from"), asked("to")), &r);
    super::page(
        &st,
        StatusCode::OK,
        "Quality indicators",
        Some(&who),
        Nav::Quality,
        body,
    )
}

fn ack_table(first: &str, rows: &[(String, AckStats)]) -> Markup {
    html! {
        table class="quality" {
            thead { tr { th { (first) } th { "acknowledged" } th { "p50" } th { "p90" } th { "max" } } }
            tbody {
                @for (k, a) in rows {
                    tr { td { (k) } td { (a.count) } td { (seconds(a.p50)) } td { (seconds(a.p90)) } td { (seconds(a.max)) } }
                }
            }
        }
    }
}

fn by_rule(title: &str, rows: &[(String, usize)]) -> Markup {
    html! {
        @if !rows.is_empty() {
            h3 { (title) }
            table class="quality" {
                thead { tr { th { "Rule" } th { "Alarms" } } }
                tbody { @for (rule, n) in rows { tr { td { (rule) } td { (n) } } } }
            }
        }
    }
}

fn summary(s: &Summary) -> Markup {
    let hours: Vec<(String, AckStats)> = s.ack_by_hour.iter().map(|(h, a)| (format!("{h:02}:00"), *a)).collect();
    html! {
        section class="quality" id={ "quality-" (s.month) "-" (asset_label(&s.asset)) } {
            h2 { (s.month) " · " (asset_label(&s.asset)) }
            table class="quality" {
                tbody { @for (label, value) in headline(s) { tr { th { (label) } td { (value) } } } }
            }
            (by_rule("Alarms by rule", &s.alarms_by_rule))
            (by_rule("Nuisance alarms by rule (the rules whose delays to tune)", &s.nuisance_by_rule))
            @if !s.ack_by_contact.is_empty() {
                h3 { "Time to acknowledge by contact" }
                (ack_table("Contact", &s.ack_by_contact))
                h3 { "Time to acknowledge by hour of day the alarm became active" }
                (ack_table("Hour", &hours))
            }
        }
    }
}

/// The page body: the period form (`asked`: its fields as sent), then each month's and
/// asset's figures, what is not recorded yet, and the definitions.
fn render(cfg: &Config, asked: (Option<&str>, Option<&str>), r: &Indicators) -> Markup {
    html! {
        h1 { "Quality indicators" }
        form method="get" class="period" {
            label { "From " input name="from" value=(asked.0.unwrap_or("")) placeholder="first of the month, two months ago"; }
            label { "To " input name="to" value=(asked.1.unwrap_or("")) placeholder="now"; }
            button type="submit" { "Show" }
        }
        p class="small" {
            (local_time(cfg, r.from)) " to " (local_time(cfg, r.to)) ". Months are "
            (r.timezone) "'s. The same figures, with every record each one counts: "
            code { "cryowatch quality --from … --to … --out quality.csv" } "."
        }
        @if r.summaries.is_empty() {
            p class="none" { "Nothing was recorded in this period." }
        }
        @for s in &r.summaries { (summary(s)) }
        h2 { "Definitions" }
        @for line in indicators::definitions(r.nuisance_within_s).lines() { p class="small" { (line) } }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, assert_escaped, hostile};
    use super::*;
    use crate::report::indicators::{Counted, Figure, summarize};

    #[test]
    fn every_outside_string_on_the_quality_page_is_escaped() {
        let cfg = testkit::config();
        let rec = |figure: Figure| Counted {
            figure,
            month: "2026-11".into(),
            asset: hostile("asset-id"),
            rule: hostile("rule-id"),
            contact: hostile("contact"),
            hour: Some(3),
            value: 90.0,
            of: None,
            record: "alarm 1".into(),
            detail: String::new(),
        };
        let records = vec![rec(Figure::Alarm), rec(Figure::Ack), rec(Figure::Nuisance)];
        let r = Indicators {
            site: hostile("site-name"),
            from: 1_795_420_800_000,
            to: 1_795_420_800_000 + 86_400_000,
            timezone: "UTC".into(),
            generated_at: 1_795_420_800_000,
            nuisance_within_s: 600,
            months: vec!["2026-11".into()],
            summaries: summarize(&records),
            records,
        };
        let (from, to) = (hostile("from"), hostile("to"));
        let html = render(&cfg, (Some(&from), Some(&to)), &r).into_string();
        assert_escaped(&html, &["from", "to", "asset-id", "rule-id", "contact"]);
        assert!(html.contains("Alarm checks done / due"), "{html}");
        assert!(html.contains("<td>1m 30s</td>"), "{html}");
    }
}
