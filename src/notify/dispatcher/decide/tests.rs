//! The planner under controlled time: facts are built by hand, `now` is a number.

use std::collections::HashMap;

use super::*;
use crate::model::Severity;
use crate::store::planning::Cleared;

const SEC: i64 = 1_000;
const MIN: i64 = 60_000;
/// Monday 2026-11-23 08:00 UTC, 02:00 in Chicago.
const T0: i64 = 1_795_420_800_000;

const CONFIG: &str = r#"
[site]
name = "plan"
timezone = "America/Chicago"
[store]
path = "store.db"
[mqtt]
url = "mqtt://127.0.0.1:1"
client_id = "t"
[[asset]]
id = "dewar-1"
kind = "ln2_dewar"
[[asset]]
id = "ups-1"
kind = "ups"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.mqtt]
topic = "t"
[[sensor]]
id = "ups-1.charge"
asset = "ups-1"
quantity = "charge"
unit = "%"
[sensor.mqtt]
topic = "u"
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
severity = "critical"
escalation = "oncall"
[[rule]]
id = "battery-low"
sensor = "ups-1.charge"
kind = "low"
threshold = 20.0
severity = "warning"
escalation = "oncall"
[[contact]]
id = "alice"
email = "alice@example.org"
[[contact]]
id = "bob"
email = "bob@example.org"
[[contact]]
id = "carol"
email = "carol@example.org"
[[schedule]]
id = "primary"
rotation = "weekly"
handoff = "Mon 08:00"
members = ["alice", "bob"]
[[escalation]]
id = "oncall"
repeat = 1
repeat_interval = "15m"
[[escalation.step]]
after = "0s"
notify = ["schedule:primary"]
via = ["email"]
[[escalation.step]]
after = "10m"
notify = ["contact:carol"]
via = ["email"]
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = 1
tls = "none"
from = "cw@example.org"
"#;

fn config() -> Config {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("cryowatch.toml");
    std::fs::write(&path, CONFIG).expect("config");
    crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn alarm(id: AlarmId, rule: &str, severity: Severity) -> AlarmRow {
    let (sensor, asset) = match rule {
        "battery-low" => ("ups-1.charge", "ups-1"),
        _ => ("dewar-1.temp", "dewar-1"),
    };
    AlarmRow {
        id,
        rule: rule.into(),
        sensor: sensor.into(),
        asset: asset.into(),
        severity,
        state: AlarmState::Active,
        raised_at: T0,
        since: T0,
        value: Some(-140.0),
        latching: false,
        firing: rule.into(),
        returned: false,
        suppressed: None,
        incident: None,
        acked_by: None,
        acked_at: None,
        ack_comment: None,
        ack_path: None,
        cleared_at: None,
    }
}

/// One active alarm whose escalation cycle (transition 10) started at T0.
fn one_active() -> PlanFacts {
    PlanFacts {
        open: vec![alarm(1, "warm", Severity::Critical)],
        cycles: HashMap::from([(1, (10, T0))]),
        ..PlanFacts::default()
    }
}

fn decide_at(cfg: &Config, facts: &PlanFacts, now: TimestampMs) -> Vec<Planned> {
    let tz = cfg.site.timezone.clone();
    let reaching = |_: &Contact| Vec::new();
    let policy = Policy {
        cfg,
        tz: &tz,
        reaching: &reaching,
    };
    decide(&policy, facts, now)
}

/// `(round, step, contacts)` of each page planned.
fn pages(planned: &[Planned]) -> Vec<(u32, usize, Vec<&str>)> {
    planned
        .iter()
        .filter_map(|p| match p {
            Planned::Page { round, step, to, .. } => {
                Some((*round, *step, to.iter().map(|(c, _)| c.as_str()).collect()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_first_step_is_due_at_once_and_the_second_after_its_delay() {
    let cfg = config();
    let facts = one_active();
    // 02:00 Monday in Chicago: before the 08:00 handoff, still last week's member.
    assert_eq!(pages(&decide_at(&cfg, &facts, T0)), vec![(0, 0, vec!["alice"])]);
    assert_eq!(
        pages(&decide_at(&cfg, &facts, T0 + 10 * MIN - 1)),
        vec![(0, 0, vec!["alice"])]
    );
    assert_eq!(
        pages(&decide_at(&cfg, &facts, T0 + 10 * MIN)),
        vec![(0, 0, vec!["alice"]), (0, 1, vec!["carol"])]
    );
}

#[test]
fn a_step_already_in_the_outbox_is_not_planned_again() {
    let cfg = config();
    let mut facts = one_active();
    facts.planned.insert((1, 10, 0, 0));
    assert!(pages(&decide_at(&cfg, &facts, T0 + MIN)).is_empty());
    assert_eq!(
        pages(&decide_at(&cfg, &facts, T0 + 10 * MIN)),
        vec![(0, 1, vec!["carol"])]
    );
    // A step of an earlier cycle (re-raised since) does not count.
    facts.planned.clear();
    facts.planned.insert((1, 9, 0, 0));
    assert_eq!(pages(&decide_at(&cfg, &facts, T0 + MIN)), vec![(0, 0, vec!["alice"])]);
}

#[test]
fn the_sequence_repeats_after_the_repeat_interval_and_then_stops() {
    let cfg = config();
    let mut facts = one_active();
    facts.planned.extend([(1, 10, 0, 0), (1, 10, 0, 1)]);
    // Round 1 starts 10m (last step) + 15m after the start.
    assert!(pages(&decide_at(&cfg, &facts, T0 + 25 * MIN - 1)).is_empty());
    assert_eq!(
        pages(&decide_at(&cfg, &facts, T0 + 25 * MIN)),
        vec![(1, 0, vec!["alice"])]
    );
    facts.planned.extend([(1, 10, 1, 0), (1, 10, 1, 1)]);
    assert!(pages(&decide_at(&cfg, &facts, T0 + 24 * 60 * MIN)).is_empty());
}

#[test]
fn after_a_long_outage_each_step_pages_once_for_its_latest_round() {
    let cfg = config();
    let facts = one_active();
    // Down through both rounds: step 0 and step 1 once each, of round 1.
    assert_eq!(
        pages(&decide_at(&cfg, &facts, T0 + 60 * MIN)),
        vec![(1, 0, vec!["alice"]), (1, 1, vec!["carol"])]
    );
}

#[test]
fn the_rotation_hands_over_at_its_local_time() {
    let cfg = config();
    let facts = one_active();
    // 08:00 Chicago is 14:00 UTC: bob's week begins.
    let handoff = T0 + 6 * 60 * MIN;
    assert_eq!(pages(&decide_at(&cfg, &facts, handoff - SEC))[0].2, vec!["alice"]);
    let mut facts = facts;
    facts.cycles.insert(1, (11, handoff));
    assert_eq!(pages(&decide_at(&cfg, &facts, handoff))[0].2, vec!["bob"]);
}

#[test]
fn acknowledged_and_suppressed_alarms_page_nobody() {
    let cfg = config();
    let mut facts = one_active();
    facts.open[0].state = AlarmState::Acknowledged;
    assert!(decide_at(&cfg, &facts, T0 + MIN).is_empty());
    let mut facts = one_active();
    facts.open[0].suppressed = Some("maintenance".into());
    assert!(decide_at(&cfg, &facts, T0 + MIN).is_empty());
    // Without a cycle start (no raise recorded) there is nothing to count from.
    let mut facts = one_active();
    facts.cycles.clear();
    assert!(decide_at(&cfg, &facts, T0 + MIN).is_empty());
}

#[test]
fn an_alarm_held_by_an_alarm_check_pages_only_the_checker_once_and_nobody_when_silent() {
    let cfg = config();
    let tz = cfg.site.timezone.clone();
    let reaching = |_: &Contact| vec!["email".to_string()];
    let policy = Policy {
        cfg: &cfg,
        tz: &tz,
        reaching: &reaching,
    };
    let mut facts = one_active();
    facts.open[0].suppressed = Some("shelved by bob: alarm check 1 by bob".into());
    // Silent (or by someone who is no contact): no running check pages.
    assert!(decide(&policy, &facts, T0 + 20 * MIN).is_empty());
    facts
        .checkers
        .insert("dewar-1.temp".into(), ("alarm check 1 by bob".into(), "bob".into()));
    // Long after both steps were due: bob alone, once, no escalation to carol.
    assert_eq!(
        pages(&decide(&policy, &facts, T0 + 20 * MIN)),
        vec![(0, 0, vec!["bob"])]
    );
    facts.planned.insert((1, 10, 0, 0));
    assert!(decide(&policy, &facts, T0 + 20 * MIN).is_empty());
    // A sensor held by something else (maintenance) pages nobody, check or not.
    facts.planned.clear();
    facts.open[0].suppressed = Some("maintenance window defrost".into());
    assert!(decide(&policy, &facts, T0 + 20 * MIN).is_empty());
}

/// A power incident (alarm 1, critical) with `member` joined it.
fn incident_with(member: AlarmRow) -> PlanFacts {
    let mut member = member;
    member.incident = Some(1);
    let mut facts = one_active();
    facts.open[0].incident = Some(1);
    facts.members.insert(1, vec![member.clone()]);
    facts.cycles.insert(member.id, (20, T0 + MIN));
    facts.planned.insert((1, 10, 0, 0));
    facts.open.push(member);
    facts
}

#[test]
fn a_member_no_more_severe_than_its_incident_is_covered_by_its_page() {
    let cfg = config();
    let facts = incident_with(alarm(2, "warm", Severity::Critical));
    assert!(pages(&decide_at(&cfg, &facts, T0 + 2 * MIN)).is_empty());
}

#[test]
fn the_first_alarm_of_the_power_supply_pages_as_an_incident_update() {
    let cfg = config();
    let facts = incident_with(alarm(2, "battery-low", Severity::Warning));
    let planned = decide_at(&cfg, &facts, T0 + 2 * MIN);
    assert!(
        matches!(
            &planned[..],
            [Planned::Page {
                alarm: 2,
                update_of: Some(1),
                cycle: 20,
                round: 0,
                step: 0,
                ..
            }]
        ),
        "{planned:?}"
    );
    // Once someone owns the incident, the member escalates on its own.
    let mut facts = facts;
    facts.open[0].state = AlarmState::Acknowledged;
    let planned = decide_at(&cfg, &facts, T0 + 2 * MIN);
    assert!(
        matches!(
            &planned[..],
            [Planned::Page {
                alarm: 2,
                update_of: None,
                ..
            }]
        ),
        "{planned:?}"
    );
}

fn paged(contacts: &[&str]) -> Vec<(String, String)> {
    contacts.iter().map(|c| (c.to_string(), "email".to_string())).collect()
}

#[test]
fn a_return_to_normal_goes_to_everyone_paged_once_each() {
    let cfg = config();
    let mut a = alarm(1, "warm", Severity::Critical);
    a.state = AlarmState::Cleared;
    a.cleared_at = Some(T0 + 30 * MIN);
    let mut m = alarm(2, "warm", Severity::Critical);
    m.state = AlarmState::Cleared;
    m.incident = Some(1);
    let facts = PlanFacts {
        cleared: vec![Cleared {
            alarm: a,
            incident: None,
        }],
        members: HashMap::from([(1, vec![m])]),
        paged: HashMap::from([(1, paged(&["bob", "carol"])), (2, paged(&["carol", "alice"]))]),
        ..PlanFacts::default()
    };
    let planned = decide_at(&cfg, &facts, T0 + 31 * MIN);
    assert_eq!(
        planned,
        vec![Planned::Normal {
            alarm: 1,
            to: paged(&["bob", "carol", "alice"])
        }]
    );
}

#[test]
fn an_incidents_return_to_normal_waits_for_members_still_open_then_goes() {
    let cfg = config();
    let mut a = alarm(1, "warm", Severity::Critical);
    a.state = AlarmState::Cleared;
    a.cleared_at = Some(T0 + 30 * MIN);
    let m = alarm(2, "warm", Severity::Critical);
    let facts = PlanFacts {
        cleared: vec![Cleared {
            alarm: a,
            incident: None,
        }],
        members: HashMap::from([(1, vec![m])]),
        paged: HashMap::from([(1, paged(&["bob"]))]),
        ..PlanFacts::default()
    };
    assert!(decide_at(&cfg, &facts, T0 + 30 * MIN + 59 * SEC).is_empty());
    assert_eq!(decide_at(&cfg, &facts, T0 + 31 * MIN).len(), 1);
}

#[test]
fn a_member_cleared_with_its_incident_waits_for_the_incidents_message() {
    let cfg = config();
    let mut inc = alarm(1, "warm", Severity::Critical);
    inc.state = AlarmState::Cleared;
    let mut m = alarm(2, "warm", Severity::Critical);
    m.state = AlarmState::Cleared;
    m.incident = Some(1);
    m.cleared_at = Some(T0);
    let mut facts = PlanFacts {
        cleared: vec![Cleared {
            alarm: m,
            incident: Some((inc, false)),
        }],
        paged: HashMap::from([(2, paged(&["bob"]))]),
        ..PlanFacts::default()
    };
    assert!(decide_at(&cfg, &facts, T0 + 2 * MIN).is_empty());
    // Announced there already and still unannounced here: it goes on its own.
    if let Some((_, announced)) = facts.cleared[0].incident.as_mut() {
        *announced = true;
    }
    assert_eq!(decide_at(&cfg, &facts, T0 + 2 * MIN).len(), 1);
}

#[test]
fn answers_to_sms_acknowledgements_are_planned_in_order() {
    let cfg = config();
    let reply = |request| crate::store::outbox::SmsAckAnswered {
        request,
        alarm: 1,
        contact: "bob".into(),
        via: "modem".into(),
        ok: true,
        result: "acknowledged".into(),
    };
    let facts = PlanFacts {
        replies: vec![reply(4), reply(5)],
        ..PlanFacts::default()
    };
    assert_eq!(
        decide_at(&cfg, &facts, T0),
        vec![Planned::Reply(reply(4)), Planned::Reply(reply(5))]
    );
}
