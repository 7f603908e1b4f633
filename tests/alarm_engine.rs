//! The alarm engine over a real embedded store, with time under the test's control:
//! readings and clock ticks go through the engine and are committed with the alarm
//! changes exactly as the store writer does, and "restarts" rebuild the engine from the
//! store alone.

mod common;

use common::engine_rig::{BASE, MIN, Rig, T0};
use cryowatch::config;
use cryowatch::model::Quality;

const WARM_RULE: &str = r#"
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
hysteresis = 2.0
delay = "2m"
severity = "critical"
"#;

#[test]
fn a_warm_spell_shorter_than_the_delay_raises_nothing() {
    let mut rig = Rig::new(WARM_RULE);
    rig.read("dewar-1.temp", T0, -190.0);
    rig.read("dewar-1.temp", T0 + MIN, -145.0); // lid opened, vapour warms
    rig.read("dewar-1.temp", T0 + 2 * MIN, -160.0); // back before the delay ran out
    rig.tick(T0 + 6 * MIN);
    assert!(rig.alarms().is_empty(), "{:?}", rig.alarms());
    assert_eq!(rig.kinds("warm"), ["pending", "cancelled"]);
}

#[test]
fn a_warm_spell_longer_than_the_delay_raises_once_and_clears_past_the_hysteresis() {
    let mut rig = Rig::new(WARM_RULE);
    rig.read("dewar-1.temp", T0, -145.0);
    rig.tick(T0 + MIN);
    assert!(rig.alarms().is_empty());
    rig.tick(T0 + 2 * MIN);
    let open = rig.open();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].rule.as_str(), open[0].severity.as_str()), ("warm", "critical"));
    assert_eq!(open[0].since, T0);
    assert_eq!(open[0].raised_at, T0 + 2 * MIN);
    for i in 3..10 {
        rig.read("dewar-1.temp", T0 + i * MIN, -144.0);
    }
    rig.read("dewar-1.temp", T0 + 10 * MIN, -151.0); // inside the deadband: still warm
    assert_eq!(rig.open().len(), 1);
    rig.read("dewar-1.temp", T0 + 11 * MIN, -152.0);
    assert!(rig.open().is_empty());
    assert_eq!(rig.kinds("warm"), ["pending", "raised", "cleared"]);
}

#[test]
fn missing_data_never_clears_an_alarm_and_the_sensor_goes_stale() {
    let mut rig = Rig::new(WARM_RULE);
    rig.read("dewar-1.temp", T0, -140.0);
    rig.tick(T0 + 3 * MIN);
    assert_eq!(rig.open().len(), 1);
    for i in 4..12 {
        rig.bad("dewar-1.temp", T0 + i * MIN, Quality::CommError);
    }
    let open: Vec<String> = rig.open().into_iter().map(|a| a.rule).collect();
    assert!(open.contains(&"warm".to_string()), "{open:?}");
    assert!(open.contains(&"dewar-1.temp:stale".to_string()), "{open:?}");
    // The probe answers again: stale clears, the warm alarm stays (still warm).
    rig.read("dewar-1.temp", T0 + 12 * MIN, -141.0);
    let open: Vec<String> = rig.open().into_iter().map(|a| a.rule).collect();
    assert_eq!(open, ["warm"]);
}

#[test]
fn a_sensor_that_never_reports_goes_stale_after_start() {
    let mut rig = Rig::new("");
    rig.tick(T0 + 4 * MIN);
    assert!(rig.open().is_empty());
    rig.tick(T0 + 5 * MIN);
    let open: Vec<String> = rig.open().into_iter().map(|a| a.rule).collect();
    assert_eq!(open, ["dewar-1.temp:stale"]);
    rig.tick(T0 + 60 * MIN);
    let mut open: Vec<String> = rig.open().into_iter().map(|a| a.rule).collect();
    open.sort();
    assert_eq!(
        open,
        ["dewar-1.lid:stale", "dewar-1.temp:stale", "mains.on_battery:stale"]
    );
}

#[test]
fn a_pending_delay_resumes_from_its_original_start_after_a_restart() {
    let mut rig = Rig::new(WARM_RULE);
    rig.read("dewar-1.temp", T0, -140.0);
    rig.restart(T0 + MIN);
    rig.tick(T0 + MIN + 59_000);
    assert!(rig.alarms().is_empty());
    rig.tick(T0 + 2 * MIN);
    let open = rig.open();
    assert_eq!(open.len(), 1, "raised at start + delay, not restart + delay");
    assert_eq!(open[0].since, T0);
}

#[test]
fn an_active_alarm_survives_a_restart_and_is_not_raised_twice() {
    let mut rig = Rig::new(WARM_RULE);
    rig.read("dewar-1.temp", T0, -140.0);
    rig.tick(T0 + 2 * MIN);
    let id = rig.open()[0].id;
    rig.restart(T0 + 3 * MIN);
    rig.read("dewar-1.temp", T0 + 4 * MIN, -139.0);
    rig.tick(T0 + 5 * MIN);
    assert_eq!(rig.open().iter().map(|a| a.id).collect::<Vec<_>>(), [id]);
    assert_eq!(rig.kinds("warm"), ["pending", "raised"]);
    // A new alarm after the restart gets a new id.
    rig.read("dewar-1.temp", T0 + 6 * MIN, -170.0);
    rig.read("dewar-1.temp", T0 + 7 * MIN, -140.0);
    rig.restart(T0 + 8 * MIN);
    rig.tick(T0 + 10 * MIN);
    let ids: Vec<i64> = rig.alarms().iter().map(|a| a.id).collect();
    assert_eq!(ids, [id + 1, id]);
}

#[test]
fn a_latching_alarm_needs_an_acknowledgement_to_clear() {
    let mut rig = Rig::new(
        r#"
[[rule]]
id = "lid"
sensor = "dewar-1.lid"
kind = "state"
equals = 1
delay = "1m"
severity = "warning"
latching = true
"#,
    );
    rig.read("dewar-1.lid", T0, 1.0);
    rig.read("dewar-1.lid", T0 + 2 * MIN, 1.0);
    rig.read("dewar-1.lid", T0 + 3 * MIN, 0.0);
    let open = rig.open();
    assert_eq!(open.len(), 1);
    assert!(open[0].returned);
    let id = open[0].id;
    let answer = rig
        .engine
        .acknowledge(id, "alice", "lid left open during fill", "cli", T0 + 4 * MIN);
    assert!(answer.as_deref().is_ok_and(|a| a.contains("cleared")), "{answer:?}");
    rig.tick(T0 + 4 * MIN);
    assert!(rig.open().is_empty());
    let a = &rig.alarms()[0];
    assert_eq!(a.acked_by.as_deref(), Some("alice"));
    assert_eq!(a.ack_comment.as_deref(), Some("lid left open during fill"));
    let ack = rig
        .events()
        .into_iter()
        .find(|e| e.kind == "acknowledged")
        .expect("ack event");
    assert_eq!((ack.actor.as_str(), ack.alarm), ("alice", Some(id)));
    assert_eq!(
        rig.kinds("lid"),
        ["pending", "raised", "returned_to_normal", "acknowledged", "cleared"]
    );
}

#[test]
fn a_critical_rule_upgrades_an_acknowledged_warning() {
    let mut rig = Rig::new(
        r#"
[[rule]]
id = "warm-warning"
sensor = "dewar-1.temp"
kind = "high"
threshold = -165.0
severity = "warning"
[[rule]]
id = "warm-critical"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
severity = "critical"
"#,
    );
    rig.read("dewar-1.temp", T0, -160.0);
    let id = rig.open()[0].id;
    rig.engine
        .acknowledge(id, "bob", "watching it", "cli", T0 + MIN)
        .expect("ack");
    rig.tick(T0 + MIN);
    rig.read("dewar-1.temp", T0 + 2 * MIN, -148.0);
    let open = rig.open();
    assert_eq!(open.len(), 1, "one alarm, upgraded");
    assert_eq!(
        (open[0].id, open[0].severity.as_str(), open[0].state.as_str()),
        (id, "critical", "active")
    );
    assert_eq!(open[0].acked_by, None);
    assert!(rig.events().iter().any(|e| e.kind == "upgraded" && e.alarm == Some(id)));
}

#[test]
fn a_rate_rule_fires_on_a_fast_rise_only() {
    let mut rig = Rig::new(
        r#"
[[rule]]
id = "fast"
sensor = "dewar-1.temp"
kind = "rate"
threshold = 1.0
window = "5m"
"#,
    );
    for i in 0..6 {
        rig.read("dewar-1.temp", T0 + i * MIN, -190.0 + 0.2 * i as f64);
    }
    assert!(rig.open().is_empty(), "0.2 °C/min is not fast");
    for i in 6..12 {
        rig.read("dewar-1.temp", T0 + i * MIN, -189.0 + 2.0 * (i - 5) as f64);
    }
    assert_eq!(rig.open().iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(), ["fast"]);
}

#[test]
fn a_probe_fault_raises_the_default_fault_alarm_after_its_delay() {
    let mut rig = Rig::new("");
    rig.read("dewar-1.temp", T0, -190.0);
    rig.bad("dewar-1.temp", T0 + MIN, Quality::SensorFault);
    rig.bad("dewar-1.temp", T0 + 2 * MIN, Quality::SensorFault);
    let open: Vec<String> = rig.open().into_iter().map(|a| a.rule).collect();
    assert_eq!(open, ["dewar-1.temp:fault"]);
}

#[test]
fn a_probe_fault_within_a_stale_alarms_life_joins_it_instead_of_raising_a_second() {
    let mut rig = Rig::new("");
    rig.read("dewar-1.temp", T0, -190.0);
    // The probe breaks: nothing good for the stale delay, then it reports a fault.
    rig.tick(T0 + 5 * MIN);
    let open: Vec<String> = rig.open().into_iter().map(|a| a.rule).collect();
    assert_eq!(open, ["dewar-1.temp:stale"]);
    rig.bad("dewar-1.temp", T0 + 5 * MIN + 10_000, Quality::SensorFault);
    rig.bad("dewar-1.temp", T0 + 7 * MIN, Quality::SensorFault);
    let open = rig.open();
    assert_eq!(open.len(), 1, "one alarm for one broken probe: {open:?}");
    assert_eq!(open[0].rule, "dewar-1.temp:stale");
    assert!(open[0].firing.contains("dewar-1.temp:fault"), "{:?}", open[0].firing);
    assert_eq!(rig.alarms().len(), 1);
    // Repaired: one alarm clears, once.
    rig.read("dewar-1.temp", T0 + 8 * MIN, -190.0);
    assert!(rig.open().is_empty(), "{:?}", rig.open());
    let cleared = rig.events().into_iter().filter(|e| e.kind == "cleared").count();
    assert_eq!(cleared, 1);
}

#[test]
fn all_combines_conditions_and_components_can_stay_silent() {
    let mut rig = Rig::new(
        r#"
[[rule]]
id = "on-battery"
sensor = "mains.on_battery"
kind = "state"
equals = 1
raise = false
[[rule]]
id = "lid-open"
sensor = "dewar-1.lid"
kind = "state"
equals = 1
raise = false
[[rule]]
id = "lid-open-on-battery"
kind = "all"
of = ["on-battery", "lid-open"]
severity = "critical"
"#,
    );
    rig.read("mains.on_battery", T0, 1.0);
    rig.read("dewar-1.lid", T0, 0.0);
    assert!(rig.open().is_empty());
    rig.read("dewar-1.lid", T0 + MIN, 1.0);
    let open = rig.open();
    assert_eq!(
        open.iter().map(|a| a.rule.as_str()).collect::<Vec<_>>(),
        ["lid-open-on-battery"]
    );
    rig.read("mains.on_battery", T0 + 2 * MIN, 0.0);
    assert!(rig.open().is_empty());
}

#[test]
fn alarms_raised_during_a_power_loss_join_its_incident_and_restoration_is_announced() {
    let mut rig = Rig::new(
        r#"
[[rule]]
id = "mains-lost"
sensor = "mains.on_battery"
kind = "state"
equals = 1
incident = "power"
severity = "critical"
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
"#,
    );
    rig.read("dewar-1.temp", T0, -190.0);
    rig.read("mains.on_battery", T0 + MIN, 1.0);
    let incident = rig.open()[0].id;
    rig.read("dewar-1.temp", T0 + 2 * MIN, -140.0);
    let warm = rig.open().into_iter().find(|a| a.rule == "warm").expect("warm alarm");
    assert_eq!(warm.incident, Some(incident));
    rig.read("mains.on_battery", T0 + 3 * MIN, 0.0);
    let cleared = rig
        .events()
        .into_iter()
        .find(|e| e.kind == "cleared" && e.alarm == Some(incident))
        .expect("mains alarm cleared");
    assert_eq!(cleared.comment, "power restored");
    // After the incident, a new alarm stands on its own.
    rig.read("dewar-1.temp", T0 + 4 * MIN, -190.0);
    rig.read("dewar-1.temp", T0 + 5 * MIN, -140.0);
    let newest = &rig.open()[0];
    assert_eq!((newest.rule.as_str(), newest.incident), ("warm", None));
}

#[test]
fn a_shelved_sensor_alarms_without_escalation_until_the_shelf_expires() {
    let mut rig = Rig::new(WARM_RULE);
    let answer = rig.engine.shelve(
        "dewar-1.temp",
        std::time::Duration::from_secs(600),
        "carol",
        "probe swap",
        T0,
    );
    assert!(answer.is_ok(), "{answer:?}");
    rig.read("dewar-1.temp", T0 + MIN, -140.0);
    rig.tick(T0 + 4 * MIN);
    let open = rig.open();
    assert_eq!(open.len(), 1, "still raised and stored");
    assert!(open[0].suppressed.as_deref().is_some_and(|s| s.contains("probe swap")));
    rig.tick(T0 + 10 * MIN);
    let open = rig.open();
    assert_eq!(open[0].suppressed, None);
    let kinds: Vec<String> = rig.events().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"shelved".to_string()) && kinds.contains(&"unshelved".to_string()));
    assert!(kinds.contains(&"unsuppressed".to_string()), "{kinds:?}");
}

#[test]
fn a_shelving_ended_early_for_its_reason_releases_the_sensor_and_leaves_other_shelvings() {
    let mut rig = Rig::new(WARM_RULE);
    let hour = std::time::Duration::from_secs(3600);
    assert!(
        rig.engine
            .shelve("dewar-1.temp", hour, "tech", "alarm check 1 by tech", T0)
            .is_ok()
    );
    rig.read("dewar-1.temp", T0 + MIN, -140.0);
    rig.tick(T0 + 4 * MIN);
    assert!(rig.open()[0].suppressed.is_some());
    // Another reason ends nothing; the check's own reason releases the sensor.
    assert!(
        rig.engine
            .end_shelving("dewar-1.temp", "probe swap", T0 + 5 * MIN)
            .is_ok()
    );
    rig.tick(T0 + 5 * MIN);
    assert!(rig.open()[0].suppressed.is_some());
    let ended = rig
        .engine
        .end_shelving("dewar-1.temp", "alarm check 1 by tech", T0 + 6 * MIN);
    assert!(ended.is_ok_and(|t| t.contains("ended")));
    rig.tick(T0 + 6 * MIN);
    assert_eq!(rig.open()[0].suppressed, None);
    assert!(
        rig.engine
            .end_shelving("nope", "alarm check 1 by tech", T0 + 7 * MIN)
            .is_err()
    );
}

#[test]
fn shelving_is_refused_without_a_reason_or_for_too_long() {
    let mut rig = Rig::new("");
    let long = std::time::Duration::from_secs(30 * 24 * 3600);
    assert!(rig.engine.shelve("dewar-1.temp", long, "carol", "why", T0).is_err());
    let hour = std::time::Duration::from_secs(3600);
    assert!(rig.engine.shelve("dewar-1.temp", hour, "carol", " ", T0).is_err());
    assert!(rig.engine.shelve("nope", hour, "carol", "why", T0).is_err());
}

#[test]
fn a_maintenance_window_suppresses_and_is_recorded() {
    let mut rig = Rig::new(
        r#"
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
[[maintenance]]
id = "monday-fill"
sensors = ["dewar-1.temp"]
every = "Mon 08:30"
duration = "30m"
"#,
    );
    rig.tick(T0 + 29 * MIN);
    rig.tick(T0 + 31 * MIN);
    rig.read("dewar-1.temp", T0 + 32 * MIN, -140.0);
    let open = rig.open();
    assert!(
        open[0].suppressed.as_deref().is_some_and(|s| s.contains("monday-fill")),
        "{open:?}"
    );
    rig.tick(T0 + 61 * MIN);
    assert_eq!(rig.open()[0].suppressed, None);
    let kinds: Vec<String> = rig.events().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"maintenance_started".to_string()));
    assert!(kinds.contains(&"maintenance_ended".to_string()));
    assert!(kinds.contains(&"unsuppressed".to_string()));
}

#[test]
fn a_queued_request_is_answered_once() {
    let mut rig = Rig::new(WARM_RULE);
    rig.read("dewar-1.temp", T0, -140.0);
    rig.tick(T0 + 2 * MIN);
    let id = rig.open()[0].id;
    let args = serde_json::json!({"alarm": id, "by": "dave", "comment": "on it", "path": "cli"});
    let req = rig.store.queue_request("ack", &args, T0).expect("queue");
    rig.tick(T0 + 3 * MIN);
    rig.tick(T0 + 4 * MIN);
    let answer = rig.store.request_answer(req).expect("answer");
    assert_eq!(answer, Some((true, format!("alarm {id} acknowledged by dave"))));
    let acks = rig.events().into_iter().filter(|e| e.kind == "acknowledged").count();
    assert_eq!(acks, 1);
    let _ = rig.dir.path();
}

#[test]
fn an_open_alarm_of_a_removed_rule_is_closed_on_the_record() {
    let mut rig = Rig::new(WARM_RULE);
    rig.read("dewar-1.temp", T0, -140.0);
    rig.tick(T0 + 2 * MIN);
    assert_eq!(rig.open().len(), 1);
    // The same store under a configuration without the rule.
    let path = rig.dir.path().join("cryowatch.toml");
    std::fs::write(&path, BASE).expect("config");
    rig.config = config::load(&path).expect("config");
    rig.restart(T0 + 3 * MIN);
    rig.tick(T0 + 3 * MIN);
    assert!(rig.open().is_empty());
    let last = rig.events().pop().expect("event");
    assert_eq!(
        last.kind, "closed",
        "closed on the record, not announced as back to normal"
    );
    assert!(last.comment.contains("no longer in the configuration"));
}

#[test]
fn a_late_reading_older_than_the_newest_does_not_clear_an_alarm() {
    let mut rig = Rig::new(WARM_RULE);
    rig.read("dewar-1.temp", T0, -140.0);
    rig.tick(T0 + 3 * MIN);
    let id = rig.open()[0].id;
    // A buffered reading from before the excursion arrives late.
    rig.read("dewar-1.temp", T0 - 5 * MIN, -191.0);
    assert_eq!(rig.open().iter().map(|a| a.id).collect::<Vec<_>>(), [id]);
}

#[test]
fn a_latched_alarm_that_warms_again_before_a_restart_is_not_cleared_by_its_ack() {
    let mut rig = Rig::new(
        r#"
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
latching = true
"#,
    );
    rig.read("dewar-1.temp", T0, -140.0);
    rig.read("dewar-1.temp", T0 + MIN, -160.0); // back to normal: latched
    assert!(rig.open()[0].returned);
    rig.read("dewar-1.temp", T0 + 2 * MIN, -140.0); // warm again
    rig.restart(T0 + 3 * MIN);
    let id = rig.open()[0].id;
    let answer = rig.engine.acknowledge(id, "alice", "", "cli", T0 + 4 * MIN);
    rig.tick(T0 + 4 * MIN);
    assert!(answer.as_deref().is_ok_and(|a| !a.contains("cleared")), "{answer:?}");
    assert_eq!(rig.open().len(), 1, "still warm: the alarm stays open");
}
