//! The dashboard's notice of overdue physical alarm checks
//! ([`crate::alarm_check`]): each probe whose scheduled check was not done in the last
//! period, with the command that starts one.

use maud::{Markup, html};

use crate::alarm_check::{DueCheck, overdue};
use crate::model::format_rfc3339;

/// Nothing while no scheduled check is overdue.
pub fn notice(due: &[DueCheck]) -> Markup {
    let late: Vec<&DueCheck> = overdue(due).collect();
    html! {
        @if !late.is_empty() {
            div class="notice bad" id="alarm-checks-notice" {
                p { (late.len()) " alarm check(s) overdue:" }
                ul {
                    @for d in &late {
                        li {
                            (d.sensor) " (" (d.asset) "), " (d.every) " check for " (d.period)
                            ", due " (format_rfc3339(d.due_at)) ": "
                            code { "cryowatch alarm-check start --sensor " (d.sensor) " --by USER" }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{assert_escaped, hostile};
    use super::*;
    use crate::alarm_check::DueState;

    fn due(sensor: String, state: DueState) -> DueCheck {
        DueCheck {
            sensor,
            asset: hostile("asset"),
            every: "quarterly",
            period: "2026-Q3".into(),
            due_at: 1_790_812_800_000,
            state,
            check: None,
        }
    }

    #[test]
    fn only_overdue_checks_are_shown_with_the_command_that_starts_one_and_escaped() {
        assert!(
            notice(&[due("dewar-1.temp".into(), DueState::Due)])
                .into_string()
                .is_empty()
        );
        let html = notice(&[
            due(hostile("sensor"), DueState::Overdue),
            due("freezer-7.temp".into(), DueState::Done),
        ])
        .into_string();
        assert_escaped(&html, &["sensor", "asset"]);
        assert!(html.contains("1 alarm check(s) overdue"), "{html}");
        assert!(html.contains("quarterly check for 2026-Q3"), "{html}");
        assert!(!html.contains("freezer-7.temp"), "{html}");
    }
}
