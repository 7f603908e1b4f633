//! Escalation planning over a real store with time under the test's control: the
//! engine raises and acknowledges alarms, the dispatcher plans the outbox at chosen
//! moments, so ten minutes of escalation and its repeats take milliseconds.

use std::collections::HashMap;
use std::sync::Arc;

use cryowatch::alarm::engine::Engine;
use cryowatch::config::{self, Config};
use cryowatch::model::Reading;
use cryowatch::notify::dispatcher::Dispatcher;
use cryowatch::store::{Row, Store, alarms, outbox};

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
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("cryowatch.toml");
        std::fs::write(&path, CONFIG).expect("config");
        let config = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut store = Store::open(&config.store.path).expect("store");
        let names: Vec<_> = config.sensors.iter().map(|s| (s.id.clone(), s.unit.clone())).collect();
        let ids = store.register_sensors(&names).expect("register");
        let engine = Engine::load(&config, &store, &ids, T0).expect("engine");
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
        let r = Reading::good(0, t, v);
        let rows = [Row {
            sensor: self.ids[0],
            time: t,
            value: Some(v),
            quality: r.quality,
            source_time: false,
        }];
        let engine = &mut self.engine;
        self.store
            .insert_then(&rows, |c, _| {
                engine.on_reading(&r, t);
                alarms::write(c, &engine.take_changes(), t)
            })
            .expect("commit");
    }

    fn ack(&mut self, id: i64, t: i64) {
        self.engine.acknowledge(id, "bob", "", "cli", t).expect("ack");
        let changes = self.engine.take_changes();
        self.store
            .transaction(|c| alarms::write(c, &changes, t))
            .expect("write");
    }

    /// Plans at `t`; returns (kind, round, step, contact) of every notification so far.
    fn plan(&mut self, t: i64) -> Vec<(String, i64, i64, String)> {
        self.dispatcher.plan(t).expect("plan");
        self.store
            .with_conn(|c| outbox::list(c, None))
            .expect("list")
            .into_iter()
            .map(|n| (n.kind, n.round, n.step, n.contact))
            .collect()
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
    let id = rig
        .store
        .with_conn(|c| alarms::query_alarms(c, true, None))
        .expect("alarms")[0]
        .id;
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
    let id = rig
        .store
        .with_conn(|c| alarms::query_alarms(c, true, None))
        .expect("alarms")[0]
        .id;
    // Make the alarm a member of an (acknowledged) incident led by another alarm.
    rig.store
        .with_conn(|c| {
            c.execute(
                "INSERT INTO alarm (id, rule, sensor, asset, severity, state, raised_at, since, latching, firing, returned)
                 VALUES (999, 'mains', 'x', 'ups', 'critical', 'acknowledged', ?1, ?1, 0, '', 0)",
                [T0],
            )?;
            c.execute("UPDATE alarm SET incident = 999 WHERE id = ?1", [id])
        })
        .expect("incident");
    assert_eq!(rig.plan(T0).len(), 1, "the incident is owned: the member pages itself");
    rig.store
        .with_conn(|c| c.execute("UPDATE alarm SET state = 'active' WHERE id = 999", []))
        .expect("unack");
    rig.store
        .with_conn(|c| c.execute("DELETE FROM notification", []))
        .expect("reset");
    assert_eq!(
        rig.plan(T0).len(),
        0,
        "an unacknowledged incident pages for its members"
    );
}
