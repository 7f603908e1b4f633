//! Escalation planning over a real store with time under the test's control: the
//! engine raises and acknowledges alarms, the dispatcher plans the outbox at chosen
//! moments, so ten minutes of escalation and its repeats take milliseconds.
//!
//! A power incident from the pages' side, too: mains lost pages; the battery going low
//! (more severe) pages as an incident update through the escalation; warming units and
//! an equally severe member do not page; power back makes one return to normal naming
//! every alarm of the incident.

use std::collections::HashMap;
use std::sync::Arc;

use cryowatch::alarm::engine::Engine;
use cryowatch::config::{self, Config};
use cryowatch::model::Reading;
use cryowatch::notify::dispatcher::Dispatcher;
use cryowatch::store::outbox::Notification;
use cryowatch::store::{Row, Store};

const SEC: i64 = 1_000;
const MIN: i64 = 60_000;
const T0: i64 = 1_795_420_800_000; // Monday 2026-11-23 08:00 UTC

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
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
stale_after = "1h"
[sensor.mqtt]
topic = "t"
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
severity = "critical"
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

struct Rig {
    _dir: tempfile::TempDir,
    config: Config,
    store: Store,
    ids: Vec<i64>,
    engine: Engine,
    dispatcher: Dispatcher,
}

impl Rig {
    fn new() -> Rig {
        Rig::with(CONFIG)
    }

    fn with(text: &str) -> Rig {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("cryowatch.toml");
        let text = text.replace(
            "path = \"store.db\"",
            &format!("path = \"{}/store.db\"", dir.path().display()),
        );
        std::fs::write(&path, text).expect("config");
        let config = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut store = Store::open(&config.store.path).expect("store");
        let names: Vec<_> = config.sensors.iter().map(|s| (s.id.clone(), s.unit.clone())).collect();
        let ids = store.register_sensors(&names).expect("register");
        let engine = cryowatch::pipeline::load_engine(&config, &store, &ids, T0).expect("engine");
        let dispatcher = Dispatcher::new(
            Arc::new(config.clone()),
            Store::open(&config.store.path).expect("store"),
            HashMap::new(),
        );
        Rig {
            _dir: dir,
            config,
            store,
            ids,
            engine,
            dispatcher,
        }
    }

    fn read(&mut self, t: i64, v: f64) {
        self.read_all(t, &[("dewar-1.temp", v)]);
    }

    /// Commits good readings `(sensor, value)` at `t` and evaluates them (and the clock),
    /// as the store writer does.
    fn read_all(&mut self, t: i64, values: &[(&str, f64)]) {
        let readings: Vec<Reading> = values
            .iter()
            .map(|(s, v)| Reading::good(self.config.sensor_index(s).expect("sensor"), t, *v))
            .collect();
        let rows: Vec<Row> = readings
            .iter()
            .map(|r| Row {
                sensor: self.ids[r.sensor],
                time: t,
                value: r.value,
                quality: r.quality,
                source_time: false,
            })
            .collect();
        let engine = &mut self.engine;
        let flags = vec![None; rows.len()];
        self.store
            .commit_readings(&rows, &flags, false, t, |_, _| {
                for r in &readings {
                    engine.on_reading(r, t);
                }
                engine.on_tick(t);
                engine.take_changes()
            })
            .expect("commit");
    }

    fn ack(&mut self, id: i64, t: i64) {
        self.engine.acknowledge(id, "bob", "", "cli", t).expect("ack");
        let changes = self.engine.take_changes();
        self.store.write_alarm_changes(&changes, t).expect("write");
    }

    /// Plans at `t`; returns (kind, round, step, contact) of every notification so far.
    fn plan(&mut self, t: i64) -> Vec<(String, i64, i64, String)> {
        self.dispatcher.plan(t).expect("plan");
        self.store
            .notifications(None)
            .expect("list")
            .into_iter()
            .map(|n| (n.kind, n.round, n.step, n.contact))
            .collect()
    }

    /// Plans at `t`, then takes every pending notification as delivered (as the mail
    /// server accepting it would); returns the notifications this pass planned.
    fn plan_sent(&mut self, t: i64) -> Vec<Notification> {
        let before = self.outbox().len();
        self.dispatcher.plan(t).expect("plan");
        self.db()
            .execute(
                "UPDATE notification SET state = 'sent', via = channel WHERE state = 'pending'",
                [],
            )
            .expect("sent");
        self.outbox().split_off(before)
    }

    fn outbox(&self) -> Vec<Notification> {
        self.store.notifications(None).expect("list")
    }

    /// A connection of the test's own to the store's file, for what only the test does
    /// to it (the store runs in WAL mode: the store's connections see each commit).
    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.config.store.path).expect("open the store file")
    }

    fn alarm(&self, rule: &str) -> i64 {
        self.store
            .alarms(false)
            .expect("alarms")
            .into_iter()
            .find(|a| a.rule == rule)
            .unwrap_or_else(|| panic!("no alarm of {rule}"))
            .id
    }
}

fn page(round: i64, step: i64, who: &str) -> (String, i64, i64, String) {
    ("page".into(), round, step, who.into())
}

#[test]
fn steps_go_out_on_time_repeat_once_and_are_never_planned_twice() {
    let mut rig = Rig::new();
    rig.read(T0 + MIN, -140.0);
    // Monday 08:01 UTC is 02:01 in Chicago: before the 08:00 local handoff, so the
    // previous week's person is on call.
    let first = rig.plan(T0 + MIN);
    assert_eq!(first.len(), 1);
    let on_call = first[0].3.clone();
    assert!(on_call == "alice" || on_call == "bob");
    assert_eq!(rig.plan(T0 + 10 * MIN), first, "step 2 is not due before 10 min");
    let at_11 = rig.plan(T0 + 11 * MIN);
    assert_eq!(at_11, vec![page(0, 0, &on_call), page(0, 1, "carol")]);
    // The repeat starts 15 min after the last step: 11 + 10... = activation + 25 min.
    assert_eq!(rig.plan(T0 + 25 * MIN), at_11);
    let repeated = rig.plan(T0 + 26 * MIN);
    assert_eq!(repeated.len(), 3);
    assert_eq!(repeated[2], page(1, 0, &on_call));
    let all = rig.plan(T0 + 120 * MIN);
    assert_eq!(all.len(), 4, "one repeat only: {all:?}");
    assert_eq!(rig.plan(T0 + 121 * MIN), all, "planning again adds nothing");
}

#[test]
fn an_acknowledgement_stops_the_steps_not_yet_due() {
    let mut rig = Rig::new();
    rig.read(T0, -140.0);
    assert_eq!(rig.plan(T0).len(), 1);
    let id = rig.store.alarms(true).expect("alarms")[0].id;
    rig.ack(id, T0 + 5 * MIN);
    assert_eq!(rig.plan(T0 + 60 * MIN).len(), 1);
}

#[test]
fn a_restart_of_the_dispatcher_plans_only_what_is_missing() {
    let mut rig = Rig::new();
    rig.read(T0, -140.0);
    rig.plan(T0);
    // A new dispatcher (a restart) long after both steps were due: step 2 once.
    rig.dispatcher = Dispatcher::new(
        Arc::new(rig.config.clone()),
        Store::open(&rig.config.store.path).expect("store"),
        HashMap::new(),
    );
    let after = rig.plan(T0 + 12 * MIN);
    assert_eq!(after.len(), 2);
    assert_eq!(rig.plan(T0 + 12 * MIN).len(), 2);
}

#[test]
fn after_a_long_outage_each_overdue_step_pages_once_not_once_per_missed_round() {
    let mut rig = Rig::new();
    rig.read(T0, -140.0);
    // Nothing planned until long after both rounds were due (the daemon was down).
    let after = rig.plan(T0 + 120 * MIN);
    let steps: Vec<(i64, i64)> = after.iter().map(|n| (n.1, n.2)).collect();
    assert_eq!(steps, [(1, 0), (1, 1)], "{after:?}");
    assert_eq!(rig.plan(T0 + 121 * MIN), after);
}

#[test]
fn a_member_of_an_acknowledged_power_incident_is_paged_on_its_own() {
    let mut rig = Rig::new();
    rig.read(T0, -140.0);
    let id = rig.store.alarms(true).expect("alarms")[0].id;
    // Make the alarm a member of an (acknowledged) incident led by another alarm, by
    // hand: no engine made this incident.
    let db = rig.db();
    db.execute(
        "INSERT INTO alarm (id, rule, sensor, asset, severity, state, raised_at, since, latching, firing, returned)
         VALUES (999, 'mains', 'x', 'ups', 'critical', 'acknowledged', ?1, ?1, 0, '', 0)",
        [T0],
    )
    .expect("incident");
    db.execute("UPDATE alarm SET incident = 999 WHERE id = ?1", [id])
        .expect("incident");
    assert_eq!(rig.plan(T0).len(), 1, "the incident is owned: the member pages itself");
    db.execute("UPDATE alarm SET state = 'active' WHERE id = 999", [])
        .expect("unack");
    db.execute("DELETE FROM notification", []).expect("reset");
    assert_eq!(
        rig.plan(T0).len(),
        0,
        "an unacknowledged incident pages for its members"
    );
}

/// The lab of the README: one UPS read through NUT, a dewar; every alarm escalates in
/// one step to the on-call person, no repeat.
const POWER_LAB: &str = r#"
[site]
name = "incident"
timezone = "UTC"
[store]
path = "store.db"
[mqtt]
url = "mqtt://127.0.0.1:1"
client_id = "t"
[[asset]]
id = "ups-lab-b"
name = "Lab B UPS"
kind = "ups"
[[asset]]
id = "dewar-1"
kind = "ln2_dewar"
[[sensor]]
id = "ups-lab-b.on_battery"
asset = "ups-lab-b"
quantity = "state"
stale_after = "1h"
[sensor.mqtt]
topic = "ob"
[[sensor]]
id = "ups-lab-b.low_battery"
asset = "ups-lab-b"
quantity = "state"
stale_after = "1h"
[sensor.mqtt]
topic = "lb"
[[sensor]]
id = "ups-lab-b.runtime"
asset = "ups-lab-b"
quantity = "runtime"
unit = "s"
stale_after = "1h"
[sensor.mqtt]
topic = "rt"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
stale_after = "1h"
[sensor.mqtt]
topic = "t"
[[rule]]
id = "mains-lost"
sensor = "ups-lab-b.on_battery"
kind = "state"
equals = 1
severity = "alarm"
escalation = "oncall"
incident = "power"
[[rule]]
id = "battery-low"
sensor = "ups-lab-b.low_battery"
kind = "state"
equals = 1
severity = "critical"
escalation = "oncall"
[[rule]]
id = "runtime-short"
sensor = "ups-lab-b.runtime"
kind = "low"
threshold = 600.0
hysteresis = 60.0
severity = "critical"
escalation = "oncall"
[[rule]]
id = "dewar-warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
hysteresis = 2.0
severity = "alarm"
escalation = "oncall"
[[contact]]
id = "alice"
name = "Alice"
email = "alice@example.org"
[[contact]]
id = "bob"
name = "Bob"
email = "bob@example.org"
[[escalation]]
id = "oncall"
[[escalation.step]]
after = "0s"
notify = ["contact:alice"]
via = ["email"]
[[escalation]]
id = "dewar-team"
[[escalation.step]]
after = "0s"
notify = ["contact:bob"]
via = ["email"]
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = 1
tls = "none"
from = "cw@example.org"
"#;

fn summary(n: &[Notification]) -> Vec<(String, Option<i64>, String)> {
    n.iter().map(|n| (n.kind.clone(), n.alarm, n.contact.clone())).collect()
}

const ON_LINE: [(&str, f64); 4] = [
    ("ups-lab-b.on_battery", 0.0),
    ("ups-lab-b.low_battery", 0.0),
    ("ups-lab-b.runtime", 3600.0),
    ("dewar-1.temp", -190.0),
];

#[test]
fn a_battery_going_low_during_a_power_cut_pages_as_an_incident_update_and_one_return_to_normal_names_all() {
    let mut rig = Rig::with(POWER_LAB);
    rig.read_all(T0, &ON_LINE);
    assert!(rig.plan_sent(T0).is_empty());
    // Mains lost: the incident's page.
    rig.read_all(
        T0 + 10 * SEC,
        &[("ups-lab-b.on_battery", 1.0), ("ups-lab-b.runtime", 1800.0)],
    );
    let mains = rig.alarm("mains-lost");
    assert_eq!(
        summary(&rig.plan_sent(T0 + 10 * SEC)),
        [("page".into(), Some(mains), "alice".into())]
    );
    // The dewar warms (as severe as the incident): it joins, no page of its own.
    rig.read_all(T0 + 30 * SEC, &[("dewar-1.temp", -140.0)]);
    assert!(rig.plan_sent(T0 + 30 * SEC).is_empty());
    // 50 s later the battery goes low and the runtime short, both critical: worse than
    // anything the incident paged, so one update page, through the escalation.
    rig.read_all(
        T0 + MIN,
        &[("ups-lab-b.low_battery", 1.0), ("ups-lab-b.runtime", 300.0)],
    );
    let low = rig.alarm("battery-low");
    let short = rig.alarm("runtime-short");
    let update = rig.plan_sent(T0 + MIN);
    assert_eq!(
        summary(&update),
        [("page".into(), Some(low), "alice".into())],
        "{update:#?}"
    );
    let u = &update[0];
    assert!(
        u.subject.contains(&format!("Power incident {mains} update")),
        "{}",
        u.subject
    );
    assert!(u.subject.contains("[CRITICAL]"), "{}", u.subject);
    assert!(
        u.body
            .contains(&format!("power incident {mains} (ups-lab-b.on_battery mains-lost)")),
        "{}",
        u.body
    );
    for member in ["battery-low", "runtime-short", "dewar-warm"] {
        assert!(u.body.contains(member), "the update names {member}:\n{}", u.body);
    }
    assert!(u.sms.contains("update"), "{}", u.sms);
    assert!(rig.plan_sent(T0 + 2 * MIN).is_empty(), "planned once");
    // Power back: everything clears. One return to normal, from the incident, naming
    // every alarm; no separate one for the battery.
    rig.read_all(T0 + 5 * MIN, &ON_LINE);
    let normal = rig.plan_sent(T0 + 5 * MIN);
    assert_eq!(
        summary(&normal),
        [("normal".into(), Some(mains), "alice".into())],
        "{normal:#?}"
    );
    let n = &normal[0];
    for (rule, id) in [
        ("battery-low", low),
        ("runtime-short", short),
        ("dewar-warm", rig.alarm("dewar-warm")),
    ] {
        assert!(
            n.body.contains(&format!("{rule} (")) && n.body.contains(&format!("alarm {id}): back to normal")),
            "the return to normal names {rule}:\n{}",
            n.body
        );
    }
    assert!(
        n.sms.contains("3 alarm(s) of the incident, all back to normal"),
        "{}",
        n.sms
    );
    assert!(
        rig.plan_sent(T0 + 30 * MIN).is_empty(),
        "nothing more: {:#?}",
        rig.outbox()
    );
}

#[test]
fn a_member_still_open_when_power_returns_is_listed_as_active_and_announced_on_its_own_later() {
    let text = POWER_LAB.replace(
        "severity = \"alarm\"\nescalation = \"oncall\"\n[[contact]]",
        "severity = \"critical\"\nescalation = \"dewar-team\"\n[[contact]]",
    );
    let mut rig = Rig::with(&text);
    rig.read_all(T0, &ON_LINE);
    rig.read_all(T0 + 10 * SEC, &[("ups-lab-b.on_battery", 1.0)]);
    let mains = rig.alarm("mains-lost");
    assert_eq!(rig.plan_sent(T0 + 10 * SEC).len(), 1);
    // The dewar warms, critical: worse than the incident, so an update — through its
    // own escalation, to bob.
    rig.read_all(T0 + 20 * SEC, &[("dewar-1.temp", -140.0)]);
    let warm = rig.alarm("dewar-warm");
    assert_eq!(
        summary(&rig.plan_sent(T0 + 20 * SEC)),
        [("page".into(), Some(warm), "bob".into())]
    );
    // Power back; the dewar is still warm. The incident's return to normal waits a
    // while for it, then goes out naming it as still active, to both.
    rig.read_all(T0 + MIN, &[("ups-lab-b.on_battery", 0.0)]);
    assert!(rig.plan_sent(T0 + MIN).is_empty(), "waiting for the open member");
    let normal = rig.plan_sent(T0 + 2 * MIN + SEC);
    assert_eq!(
        summary(&normal),
        [("normal".into(), Some(mains), "alice".into())],
        "{normal:#?}"
    );
    assert!(
        normal[0].body.contains(&format!("alarm {warm}): STILL ACTIVE")),
        "{}",
        normal[0].body
    );
    // The dewar cools later: its own return to normal, to bob who was paged for it.
    rig.read_all(T0 + 10 * MIN, &[("dewar-1.temp", -190.0)]);
    assert_eq!(
        summary(&rig.plan_sent(T0 + 10 * MIN)),
        [("normal".into(), Some(warm), "bob".into())]
    );
}

#[test]
fn members_that_clear_with_the_incident_reach_everyone_paged_for_them_once() {
    let text = POWER_LAB.replace(
        "severity = \"alarm\"\nescalation = \"oncall\"\n[[contact]]",
        "severity = \"critical\"\nescalation = \"dewar-team\"\n[[contact]]",
    );
    let mut rig = Rig::with(&text);
    rig.read_all(T0, &ON_LINE);
    rig.read_all(T0 + 10 * SEC, &[("ups-lab-b.on_battery", 1.0)]);
    rig.plan_sent(T0 + 10 * SEC);
    rig.read_all(T0 + 20 * SEC, &[("dewar-1.temp", -140.0)]);
    rig.plan_sent(T0 + 20 * SEC);
    let mains = rig.alarm("mains-lost");
    rig.read_all(T0 + MIN, &[("dewar-1.temp", -190.0), ("ups-lab-b.on_battery", 0.0)]);
    let mut normal = summary(&rig.plan_sent(T0 + MIN));
    normal.sort();
    assert_eq!(
        normal,
        [
            ("normal".into(), Some(mains), "alice".into()),
            ("normal".into(), Some(mains), "bob".into())
        ]
    );
    assert!(rig.plan_sent(T0 + 10 * MIN).is_empty());
}

/// The running dispatcher, not only its planning: under paused tokio time its loop plans
/// step 1 at once and step 2 ten minutes of (virtual) time later, and nothing between.
#[tokio::test(start_paused = true)]
async fn the_running_dispatcher_pages_the_second_step_ten_minutes_later_under_paused_time() {
    let mut rig = Rig::new();
    rig.read(T0, -140.0);
    let start = tokio::time::Instant::now();
    let clock: cryowatch::notify::dispatcher::Clock =
        Arc::new(move || T0 + i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX));
    let dispatcher = Dispatcher::new(
        Arc::new(rig.config.clone()),
        Store::open(&rig.config.store.path).expect("store"),
        HashMap::new(),
    )
    .with_clock(clock);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (_events, rx) = tokio::sync::broadcast::channel(16);
    let pages = |rig: &Rig| -> Vec<(i64, i64)> {
        rig.outbox()
            .into_iter()
            .filter(|n| n.kind == "page")
            .map(|n| (n.round, n.step))
            .collect()
    };
    // The dispatcher's loop and the checks take turns on this one task.
    let checks = async {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert_eq!(pages(&rig), vec![(0, 0)]);
        tokio::time::sleep(std::time::Duration::from_secs(9 * 60 - 2)).await;
        assert_eq!(pages(&rig), vec![(0, 0)], "step 2 is not due before 10 min");
        tokio::time::sleep(std::time::Duration::from_secs(62)).await;
        assert_eq!(pages(&rig), vec![(0, 0), (0, 1)]);
        shutdown.cancel();
    };
    tokio::join!(dispatcher.run(shutdown.clone(), rx), checks);
}
