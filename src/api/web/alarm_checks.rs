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
