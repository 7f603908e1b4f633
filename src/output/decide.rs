//! The decision, pure: from the open alarms and an output's `when` to on or off, with
//! the alarms that make it so. No store, no Modbus.

use crate::config::{Output, When};
use crate::model::{AlarmId, AlarmState};
use crate::store::outputs::OpenAlarm;

/// What an output should be now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// On: the alarm is signalled (with `fail_safe`, the coil is then de-energised).
    pub on: bool,
    /// The alarms that match, oldest first; empty when off.
    pub causes: Vec<AlarmId>,
}

/// Whether `open` turns on an output with `when`. Alarm tests never do (they test the
/// paging chain, not the room), nor do suppressed alarms — shelved, or in a maintenance
/// window — while they are suppressed: the beacon does not sound for what paging holds
/// back. Severity words mean that severity or worse.
pub fn matches(when: &When, open: &OpenAlarm) -> bool {
    let a = &open.alarm;
    if open.test || a.suppressed.is_some() || a.state == AlarmState::Cleared {
        return false;
    }
    if when.active && a.returned {
        return false;
    }
    let acked = a.state == AlarmState::Acknowledged;
    if when.acknowledged.is_some_and(|want| want != acked) {
        return false;
    }
    when.severity.is_none_or(|s| a.severity >= s)
}

/// The state `output` should have with `alarms` open: on while at least one matches.
pub fn decide(output: &Output, alarms: &[OpenAlarm]) -> Decision {
    let mut causes: Vec<AlarmId> = alarms
        .iter()
        .filter(|a| matches(&output.when, a))
        .map(|a| a.alarm.id)
        .collect();
    causes.sort_unstable();
    Decision {
        on: !causes.is_empty(),
        causes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutputTarget;
    use crate::model::Severity;
    use crate::model::changes::AlarmRow;

    fn alarm(id: AlarmId, severity: Severity, state: AlarmState) -> OpenAlarm {
        OpenAlarm {
            alarm: AlarmRow {
                id,
                rule: format!("rule-{id}"),
                sensor: "dewar-1.temp".into(),
                asset: "dewar-1".into(),
                severity,
                state,
                raised_at: 1_000,
                since: 1_000,
                value: Some(-120.0),
                latching: false,
                firing: format!("rule-{id}"),
                returned: false,
                suppressed: None,
                incident: None,
                acked_by: None,
                acked_at: None,
                ack_comment: None,
                ack_path: None,
                cleared_at: None,
            },
            test: false,
        }
    }

    fn output(when: &str) -> Output {
        Output {
            id: "beacon".into(),
            device: 0,
            target: OutputTarget::Coil(16),
            when: When::parse(when).expect("a valid when"),
            fail_safe: false,
        }
    }

    #[test]
    fn no_open_alarm_leaves_the_output_off() {
        assert_eq!(
            decide(&output("active"), &[]),
            Decision {
                on: false,
                causes: vec![]
            }
        );
    }

    #[test]
    fn critical_matches_critical_alarms_and_nothing_milder() {
        let o = output("critical");
        let alarms = [
            alarm(1, Severity::Warning, AlarmState::Active),
            alarm(2, Severity::Alarm, AlarmState::Active),
            alarm(3, Severity::Critical, AlarmState::Active),
        ];
        assert_eq!(decide(&o, &alarms).causes, vec![3]);
        assert!(!decide(&o, &alarms[..2]).on);
    }

    #[test]
    fn a_severity_word_means_that_severity_or_worse() {
        let alarms = [
            alarm(1, Severity::Warning, AlarmState::Active),
            alarm(2, Severity::Alarm, AlarmState::Active),
            alarm(3, Severity::Critical, AlarmState::Active),
        ];
        assert_eq!(decide(&output("warning"), &alarms).causes, vec![1, 2, 3]);
        assert_eq!(decide(&output("alarm"), &alarms).causes, vec![2, 3]);
    }

    #[test]
    fn an_acknowledgement_turns_an_unacknowledged_output_off() {
        let o = output("active unacknowledged critical");
        let mut a = alarm(7, Severity::Critical, AlarmState::Active);
        assert!(decide(&o, std::slice::from_ref(&a)).on);
        a.alarm.state = AlarmState::Acknowledged;
        assert!(!decide(&o, &[a.clone()]).on);
        assert!(decide(&output("acknowledged"), &[a]).on);
    }

    #[test]
    fn a_latching_alarm_back_to_normal_is_no_longer_active_but_still_unacknowledged() {
        let mut a = alarm(4, Severity::Alarm, AlarmState::Active);
        a.alarm.latching = true;
        a.alarm.returned = true;
        assert!(!decide(&output("active"), std::slice::from_ref(&a)).on);
        assert!(decide(&output("unacknowledged"), &[a]).on);
    }

    #[test]
    fn every_word_must_hold() {
        let alarms = [
            alarm(1, Severity::Critical, AlarmState::Acknowledged),
            alarm(2, Severity::Warning, AlarmState::Active),
        ];
        assert!(!decide(&output("unacknowledged critical"), &alarms).on);
        assert_eq!(decide(&output("unacknowledged"), &alarms).causes, vec![2]);
    }

    #[test]
    fn shelved_suppressed_and_test_alarms_never_sound_the_output() {
        let o = output("warning");
        let mut shelved = alarm(1, Severity::Critical, AlarmState::Active);
        shelved.alarm.suppressed = Some("shelved by carol until 14:00: probe swap".into());
        let mut test = alarm(2, Severity::Critical, AlarmState::Active);
        test.test = true;
        let cleared = alarm(3, Severity::Critical, AlarmState::Cleared);
        assert!(!decide(&o, &[shelved.clone(), test, cleared]).on);
        shelved.alarm.suppressed = None;
        assert_eq!(decide(&o, &[shelved]).causes, vec![1]);
    }
}
