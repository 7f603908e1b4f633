//! The alarm engine over a real embedded store, with time under the test's control:
//! readings and clock ticks go through the engine and are committed with the alarm
//! changes exactly as the store writer does, and "restarts" rebuild the engine from the
//! store alone. Shared by the engine's tests.

use cryowatch::alarm::engine::Engine;
use cryowatch::config::{self, Config};
use cryowatch::model::{Quality, Reading};
use cryowatch::store::alarms::{AlarmRow, EventRow};
use cryowatch::store::{Row, Store};

pub const MIN: i64 = 60_000;
pub const T0: i64 = 1_795_420_800_000; // 2026-11-23T08:00:00Z, a Monday

pub const BASE: &str = r#"
[site]
name = "test"
timezone = "UTC"
[store]
path = "store.db"
[mqtt]
url = "mqtt://127.0.0.1:1"
client_id = "t"
[[asset]]
id = "dewar-1"
kind = "ln2_dewar"
[[asset]]
id = "ups"
kind = "ups"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
stale_after = "5m"
[sensor.mqtt]
topic = "t/temp"
[[sensor]]
id = "dewar-1.lid"
asset = "dewar-1"
quantity = "state"
stale_after = "1h"
[sensor.mqtt]
topic = "t/lid"
[[sensor]]
id = "mains.on_battery"
asset = "ups"
quantity = "state"
stale_after = "1h"
[sensor.mqtt]
topic = "t/ob"
"#;

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub store: Store,
    pub ids: Vec<i64>,
    pub engine: Engine,
}

impl Rig {
    pub fn new(extra: &str) -> Rig {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cryowatch.toml");
        std::fs::write(&path, format!("{BASE}{extra}")).expect("write config");
        let config = config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
        let mut store = Store::open(&dir.path().join("store.db")).expect("store");
        let names: Vec<_> = config.sensors.iter().map(|s| (s.id.clone(), s.unit.clone())).collect();
        let ids = store.register_sensors(&names).expect("register");
        let engine = cryowatch::pipeline::load_engine(&config, &store, &ids, T0).expect("engine");
        Rig {
            dir,
            config,
            store,
            ids,
            engine,
        }
    }

    pub fn sensor(&self, id: &str) -> usize {
        self.config.sensor_index(id).expect("sensor")
    }

    /// Stores a good reading at `t` and evaluates it (and the clock) at `t`.
    pub fn read(&mut self, sensor: &str, t: i64, value: f64) {
        let r = Reading::good(self.sensor(sensor), t, value);
        self.commit(&[r], t, true);
    }

    /// Stores a good reading at `t` and evaluates it, without a clock tick.
    pub fn read_without_tick(&mut self, sensor: &str, t: i64, value: f64) {
        let r = Reading::good(self.sensor(sensor), t, value);
        self.commit(&[r], t, false);
    }

    pub fn bad(&mut self, sensor: &str, t: i64, q: Quality) {
        let r = Reading::bad(self.sensor(sensor), t, q);
        self.commit(&[r], t, true);
    }

    pub fn tick(&mut self, t: i64) {
        self.commit(&[], t, true);
    }

    pub fn commit(&mut self, readings: &[Reading], now: i64, tick: bool) {
        let rows: Vec<Row> = readings
            .iter()
            .map(|r| Row {
                sensor: self.ids[r.sensor],
                time: r.time,
                value: r.value,
                quality: r.quality,
                source_time: r.source_time,
            })
            .collect();
        let engine = &mut self.engine;
        let flags = vec![None; rows.len()];
        self.store
            .commit_readings(&rows, &flags, true, now, |new, requests| {
                for req in &requests {
                    engine.request(req, now);
                }
                for (r, _) in readings.iter().zip(new).filter(|(_, n)| **n) {
                    engine.on_reading(r, now);
                }
                if tick {
                    engine.on_tick(now);
                }
                engine.take_changes()
            })
            .expect("commit");
    }

    /// Drops the engine and builds a new one from the store, as a restart does.
    pub fn restart(&mut self, now: i64) {
        self.engine = cryowatch::pipeline::load_engine(&self.config, &self.store, &self.ids, now).expect("engine");
    }

    pub fn alarms(&self) -> Vec<AlarmRow> {
        self.store.alarms(false).expect("alarms")
    }

    pub fn open(&self) -> Vec<AlarmRow> {
        self.store.alarms(true).expect("alarms")
    }

    pub fn events(&self) -> Vec<EventRow> {
        self.store.events(None).expect("events")
    }

    pub fn kinds(&self, rule: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e.rule.as_deref() == Some(rule))
            .map(|e| e.kind)
            .collect()
    }
}
