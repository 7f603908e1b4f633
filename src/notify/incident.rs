//! Power incidents in paging.
//!
//! The alarm that opens a power incident (mains lost) is paged as any alarm. Alarms
//! raised while it lasts join it and are covered by its page — forty units warming in
//! one power cut are one page, not forty — unless a member brings a severity the
//! incident has not paged yet, or is the first alarm of the power supply itself (the
//! battery going low during the cut): that member pages through its own escalation, as
//! an *incident update* naming what joined. When the
//! incident's alarm clears, one return to normal names every member, with whether it is
//! over, and reaches everyone paged for the incident or for any member that cleared with
//! it; it waits up to [`SETTLE_MS`] for members still open, so that power coming back
//! makes one message rather than one per member.

use super::message::Member;
use crate::config::rules::Severity;
use crate::model::{TimestampMs, format_rfc3339};
use crate::store::alarms::AlarmRow;

/// How long an incident's return to normal waits for members still open.
pub const SETTLE_MS: i64 = 60_000;

fn severity(a: &AlarmRow) -> Severity {
    a.severity
}

/// Whether `member` brings its incident news worth a page: it is more severe than the
/// incident's own alarm and every member that joined before it, or it is the first
/// alarm of the power supply itself (`is_power`: the battery going low, the runtime
/// getting short) — the incident getting worse, whatever its severity. Members under
/// maintenance or shelved were not paged and do not count.
pub fn brings_worse(
    member: &AlarmRow,
    incident: &AlarmRow,
    members: &[AlarmRow],
    is_power: impl Fn(&AlarmRow) -> bool,
) -> bool {
    let earlier = || members.iter().filter(|m| m.id < member.id && m.suppressed.is_none());
    let paged = earlier()
        .map(severity)
        .chain([severity(incident)])
        .max()
        .unwrap_or(Severity::Critical);
    severity(member) > paged || (is_power(member) && !earlier().any(&is_power))
}

/// Whether the return to normal of `incident` (cleared at `cleared_at`) should wait for
/// members still open at `now`.
pub fn settling(members: &[AlarmRow], cleared_at: TimestampMs, now: TimestampMs) -> bool {
    members.iter().any(|m| m.state != crate::model::AlarmState::Cleared) && now.saturating_sub(cleared_at) < SETTLE_MS
}

/// One line per member for the texts: where, which rule and severity, and whether it is
/// over.
pub fn member_lines(members: &[AlarmRow]) -> Vec<Member> {
    members
        .iter()
        .map(|m| {
            let state = match (m.state.as_str(), m.cleared_at, &m.acked_by) {
                ("cleared", Some(t), _) => format!("back to normal at {}", format_rfc3339(t)),
                ("cleared", None, _) => "back to normal".to_string(),
                (_, _, Some(by)) => format!("STILL ACTIVE, acknowledged by {by}"),
                _ => "STILL ACTIVE".to_string(),
            };
            Member {
                text: format!("{} {} ({}, alarm {}): {state}", m.sensor, m.rule, m.severity, m.id),
                open: m.state != crate::model::AlarmState::Cleared,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(id: i64, severity: &str) -> AlarmRow {
        AlarmRow {
            id,
            rule: format!("rule-{id}"),
            sensor: format!("sensor-{id}"),
            asset: "ups".into(),
            severity: crate::model::Severity::parse(severity).expect("a severity"),
            state: crate::model::AlarmState::Active,
            raised_at: 0,
            since: 0,
            value: None,
            latching: false,
            firing: String::new(),
            returned: false,
            suppressed: None,
            incident: Some(1),
            acked_by: None,
            acked_at: None,
            ack_comment: None,
            ack_path: None,
            cleared_at: None,
        }
    }

    #[test]
    fn a_member_more_severe_than_the_incident_brings_an_update_and_its_equals_do_not() {
        let incident = alarm(1, "alarm");
        let low = alarm(2, "critical");
        let short = alarm(3, "critical");
        let warm = alarm(4, "alarm");
        let members = [low.clone(), short.clone(), warm.clone()];
        let no_power = |_: &AlarmRow| false;
        assert!(brings_worse(&low, &incident, &members, no_power));
        assert!(
            !brings_worse(&short, &incident, &members, no_power),
            "the incident already paged critical"
        );
        assert!(!brings_worse(&warm, &incident, &members, no_power));
    }

    #[test]
    fn the_first_alarm_of_the_power_supply_itself_brings_an_update_even_when_not_more_severe() {
        let incident = alarm(1, "critical");
        let warm = alarm(2, "critical");
        let low = alarm(3, "critical");
        let short = alarm(4, "critical");
        let members = [warm.clone(), low.clone(), short.clone()];
        let power = |a: &AlarmRow| a.id == 3 || a.id == 4;
        assert!(
            !brings_worse(&warm, &incident, &members, power),
            "a warming unit is covered"
        );
        assert!(brings_worse(&low, &incident, &members, power), "the battery going low");
        assert!(
            !brings_worse(&short, &incident, &members, power),
            "one update for the supply"
        );
    }

    #[test]
    fn a_suppressed_member_paged_nothing_so_the_next_as_severe_one_pages() {
        let incident = alarm(1, "warning");
        let mut shelved = alarm(2, "critical");
        shelved.suppressed = Some("maintenance".into());
        let next = alarm(3, "critical");
        assert!(brings_worse(&next, &incident, &[shelved, next.clone()], |_| false));
    }

    #[test]
    fn the_return_to_normal_waits_a_while_for_open_members_only() {
        let mut cleared = alarm(2, "critical");
        cleared.state = crate::model::AlarmState::Cleared;
        assert!(!settling(&[cleared.clone()], 1_000, 1_500));
        let open = alarm(3, "alarm");
        assert!(settling(&[cleared.clone(), open.clone()], 1_000, 1_500));
        assert!(!settling(&[cleared, open], 1_000, 1_000 + SETTLE_MS));
    }
}
