//! The shared state of all simulated devices.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::{Value, json};
use tokio_modbus::ExceptionCode;

use crate::devices::{self, DEVICES, DeviceInfo};
use crate::scenario::{Noise, Reading, Scenario, State};

/// Amplitude of the variations added when noise is on (± this much).
pub const NOISE_AMPLITUDE: f64 = 0.05;

/// All device states plus the noise source.
#[derive(Debug)]
pub struct Lab {
    states: Vec<State>,
    noise: bool,
    rng: fastrand::Rng,
}

/// The lab as shared between the servers and the handle.
#[derive(Debug, Clone)]
pub struct SharedLab(Arc<Mutex<Lab>>);

impl SharedLab {
    pub fn new(noise: bool, now: Instant) -> Self {
        let states = DEVICES.iter().map(|d| State::new(d.kind, now)).collect();
        SharedLab(Arc::new(Mutex::new(Lab {
            states,
            noise,
            rng: fastrand::Rng::new(),
        })))
    }

    /// Lock the lab. Every critical section is short and cannot leave the state
    /// inconsistent, so a poisoned lock is simply taken over.
    pub fn lock(&self) -> MutexGuard<'_, Lab> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Lab {
    /// Switch `device` (a name, or `all`) to `scenario` at `now`. With `all`, devices
    /// the scenario does not apply to are left alone.
    pub fn set(&mut self, device: &str, scenario: Scenario, now: Instant) -> Result<(), String> {
        if device == "all" {
            for (state, info) in self.states.iter_mut().zip(DEVICES.iter()) {
                if scenario.applies_to(info.kind) {
                    state.switch(scenario, now);
                }
            }
            return Ok(());
        }
        let idx = find(device)?;
        let info = &DEVICES[idx];
        if !scenario.applies_to(info.kind) {
            return Err(format!(
                "scenario {scenario} does not apply to {} ({})",
                info.name,
                info.kind.asset_kind()
            ));
        }
        self.states[idx].switch(scenario, now);
        Ok(())
    }

    pub fn scenario(&self, idx: usize) -> Scenario {
        self.states[idx].scenario
    }

    pub fn is_silent(&self, idx: usize) -> bool {
        self.scenario(idx) == Scenario::Silent
    }

    /// What device `idx` serves at `now` (with noise when enabled).
    pub fn reading(&mut self, idx: usize, now: Instant) -> Reading {
        let noise = if self.noise {
            let mut jitter = || (self.rng.f64() * 2.0 - 1.0) * NOISE_AMPLITUDE;
            Noise {
                temp_c: jitter(),
                level_pct: jitter(),
            }
        } else {
            Noise::default()
        };
        self.states[idx].reading(now, noise)
    }

    /// The `get` answer for device `idx`.
    pub fn json(&mut self, idx: usize, now: Instant) -> Value {
        let reading = self.reading(idx, now);
        reading.to_json(&DEVICES[idx], self.scenario(idx))
    }

    /// The `list` answer: devices with their current scenario, and the scenario names.
    pub fn list(&self) -> Value {
        let devices: Vec<Value> = DEVICES
            .iter()
            .zip(self.states.iter())
            .map(|(d, s)| device_json(d, s.scenario))
            .collect();
        json!({ "devices": devices, "scenarios": Scenario::NAMES })
    }

    /// A Modbus write to coil `addr` of device `idx`. Only the dewar's fill valve
    /// (coil 0) is writable.
    pub fn write_coil(&mut self, idx: usize, addr: u16, value: bool) -> Result<(), ExceptionCode> {
        match (DEVICES[idx].kind, addr) {
            (crate::scenario::Kind::Dewar, 0) => {
                self.states[idx].fill_valve = value;
                Ok(())
            }
            _ => Err(ExceptionCode::IllegalDataAddress),
        }
    }
}

fn device_json(d: &DeviceInfo, scenario: Scenario) -> Value {
    json!({
        "name": d.name,
        "unit": d.unit,
        "kind": d.kind.asset_kind(),
        "modbus": d.modbus,
        "mqtt": d.mqtt,
        "scenario": scenario.to_string(),
    })
}

/// Index of the device called `name`, or an error naming the known devices.
pub fn find(name: &str) -> Result<usize, String> {
    devices::find(name).ok_or_else(|| {
        let known: Vec<&str> = DEVICES.iter().map(|d| d.name).collect();
        format!("unknown device {name:?} (known: {}, all)", known.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn set_all_skips_devices_the_scenario_does_not_fit() {
        let t0 = Instant::now();
        let lab = SharedLab::new(false, t0);
        let mut lab = lab.lock();
        lab.set("all", Scenario::LidOpen, t0).unwrap();
        let ups = find("ups-1").unwrap();
        assert_eq!(lab.scenario(ups), Scenario::Steady);
        assert_eq!(lab.scenario(find("freezer-9").unwrap()), Scenario::LidOpen);
        assert!(lab.set("ups-1", Scenario::LidOpen, t0).is_err());
        assert!(lab.set("nope", Scenario::Steady, t0).is_err());
        lab.set("all", Scenario::PowerLoss, t0).unwrap();
        let v = lab.json(ups, t0 + Duration::from_secs(16));
        assert_eq!(v["on_battery"], json!(1));
        assert_eq!(v["ats_on_generator"], json!(1));
    }

    #[test]
    fn noise_stays_within_its_amplitude() {
        let t0 = Instant::now();
        let lab = SharedLab::new(true, t0);
        let mut lab = lab.lock();
        for _ in 0..200 {
            match lab.reading(0, t0) {
                Reading::Dewar {
                    temp_c: Some(t),
                    level_pct,
                    ..
                } => {
                    assert!((t + 190.5).abs() <= 0.051, "{t}");
                    assert!((level_pct - 85.3).abs() <= 0.11, "{level_pct}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn only_the_fill_valve_is_writable() {
        let t0 = Instant::now();
        let lab = SharedLab::new(false, t0);
        let mut lab = lab.lock();
        lab.write_coil(0, 0, true).unwrap();
        assert_eq!(lab.json(0, t0)["fill_valve"], json!(1));
        assert_eq!(lab.write_coil(0, 1, true), Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(lab.write_coil(1, 0, true), Err(ExceptionCode::IllegalDataAddress));
    }
}
