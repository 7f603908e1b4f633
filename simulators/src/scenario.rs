//! Scenarios and the physics behind them.
//!
//! Nothing in here reads a clock: every computation takes `now` as an argument, so the
//! values a scenario produces at any moment can be tested exactly.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Nominal dewar temperature (vapour phase), °C.
pub const DEWAR_TEMP_C: f64 = -190.5;
/// Nominal dewar LN2 level, %.
pub const DEWAR_LEVEL_PCT: f64 = 85.3;
/// Nominal -80 °C freezer cabinet temperature, °C.
pub const FREEZER_TEMP_C: f64 = -80.0;
/// Nominal UPS battery charge, %.
pub const UPS_CHARGE_PCT: f64 = 100.0;
/// Nominal UPS runtime on battery, seconds.
pub const UPS_RUNTIME_S: f64 = 3600.0;
/// Nominal mains voltage at the UPS input, V.
pub const UPS_INPUT_V: f64 = 230.0;
/// How fast a freezer warms with its compressor off (power loss), °C per minute.
pub const POWER_LOSS_WARMING_C_PER_MIN: f64 = 0.5;
/// The generator is running this long after the power loss.
pub const GENERATOR_START_AFTER: Duration = Duration::from_secs(10);
/// The ATS has transferred to the generator this long after the power loss.
pub const ATS_TRANSFER_AFTER: Duration = Duration::from_secs(15);
/// `low_battery` is raised at or below this runtime, seconds.
pub const LOW_BATTERY_RUNTIME_S: f64 = 300.0;
/// `low_battery` is raised at or below this charge, %.
pub const LOW_BATTERY_CHARGE_PCT: f64 = 20.0;

/// What kind of equipment a simulated device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// LN2 dewar controller: temperature, level, lid switch, fill valve.
    Dewar,
    /// -80 °C freezer: cabinet temperature, door switch, compressor.
    Freezer,
    /// UPS with generator and automatic transfer switch.
    Ups,
}

impl Kind {
    /// The matching cryowatch asset kind.
    pub fn asset_kind(self) -> &'static str {
        match self {
            Kind::Dewar => "ln2_dewar",
            Kind::Freezer => "freezer_minus80",
            Kind::Ups => "ups",
        }
    }
}

/// A behaviour a device can be switched to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scenario {
    /// Nominal, constant values.
    Steady,
    /// Temperature rises from its current value at this rate (°C per minute).
    Warmup { c_per_min: f64 },
    /// Lid (dewar) or door (freezer) switch reads open; values hold.
    LidOpen,
    /// Mains lost: UPS on battery, generator and ATS follow; freezers warm slowly.
    PowerLoss,
    /// Temperature registers serve the fault sentinels; MQTT sends `null`.
    ProbeFault,
    /// The device stops answering Modbus and stops publishing MQTT.
    Silent,
}

impl Scenario {
    /// The scenario names as accepted by [`Scenario::from_str`].
    pub const NAMES: [&'static str; 6] = [
        "steady",
        "warmup:<degC_per_min>",
        "lid-open",
        "power-loss",
        "probe-fault",
        "silent",
    ];

    /// Whether this scenario means anything for a device of this kind.
    pub fn applies_to(self, kind: Kind) -> bool {
        match self {
            Scenario::Steady | Scenario::PowerLoss | Scenario::Silent => true,
            Scenario::Warmup { .. } | Scenario::LidOpen | Scenario::ProbeFault => kind != Kind::Ups,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scenario::Steady => f.write_str("steady"),
            Scenario::Warmup { c_per_min } => write!(f, "warmup:{c_per_min:?}"),
            Scenario::LidOpen => f.write_str("lid-open"),
            Scenario::PowerLoss => f.write_str("power-loss"),
            Scenario::ProbeFault => f.write_str("probe-fault"),
            Scenario::Silent => f.write_str("silent"),
        }
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (name, arg) = match s.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (s, None),
        };
        let scenario = match name {
            "steady" => Scenario::Steady,
            "warmup" => {
                let c_per_min = match arg {
                    None => 1.0,
                    Some(a) => a
                        .parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && r.abs() <= 1000.0)
                        .ok_or_else(|| format!("bad warmup rate {a:?}: want degrees C per minute, e.g. warmup:2.0"))?,
                };
                return Ok(Scenario::Warmup { c_per_min });
            }
            "lid-open" => Scenario::LidOpen,
            "power-loss" => Scenario::PowerLoss,
            "probe-fault" => Scenario::ProbeFault,
            "silent" => Scenario::Silent,
            _ => {
                return Err(format!(
                    "unknown scenario {s:?} (known: {})",
                    Scenario::NAMES.join(", ")
                ));
            }
        };
        match arg {
            Some(_) => Err(format!("scenario {name:?} takes no argument")),
            None => Ok(scenario),
        }
    }
}

/// The continuous physical quantities of a device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Physical {
    pub temp_c: f64,
    pub level_pct: f64,
    pub charge_pct: f64,
    pub runtime_s: f64,
}

impl Physical {
    pub fn nominal(kind: Kind) -> Self {
        let temp_c = match kind {
            Kind::Dewar => DEWAR_TEMP_C,
            Kind::Freezer => FREEZER_TEMP_C,
            Kind::Ups => 0.0,
        };
        Physical {
            temp_c,
            level_pct: DEWAR_LEVEL_PCT,
            charge_pct: UPS_CHARGE_PCT,
            runtime_s: UPS_RUNTIME_S,
        }
    }
}

/// Small variations added to the served values when noise is on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Noise {
    pub temp_c: f64,
    pub level_pct: f64,
}

/// What a device serves at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reading {
    Dewar {
        /// `None` while the probe is faulty.
        temp_c: Option<f64>,
        level_pct: f64,
        lid_open: bool,
        fill_valve: bool,
    },
    Freezer {
        temp_c: Option<f64>,
        door_open: bool,
        compressor: bool,
    },
    Ups {
        on_battery: bool,
        low_battery: bool,
        generator: bool,
        ats_on_generator: bool,
        charge_pct: u16,
        runtime_s: u16,
        input_v: f64,
        since_power_loss_s: u32,
    },
}

/// The scenario state of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub kind: Kind,
    pub scenario: Scenario,
    /// When the current scenario was selected.
    pub since: Instant,
    /// The physical values at `since`; scenarios evolve from here.
    pub base: Physical,
    /// Dewar fill valve (coil 0), written by Modbus clients.
    pub fill_valve: bool,
}

impl State {
    pub fn new(kind: Kind, now: Instant) -> Self {
        State {
            kind,
            scenario: Scenario::Steady,
            since: now,
            base: Physical::nominal(kind),
            fill_valve: false,
        }
    }

    /// Switch to `scenario` at `now`. The new scenario starts from the current values,
    /// and its clock (warm-up, power-loss timers) starts at `now`.
    pub fn switch(&mut self, scenario: Scenario, now: Instant) {
        self.base = self.physical(now);
        self.scenario = scenario;
        self.since = now;
    }

    /// Time spent in the current scenario.
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }

    /// The physical values at `now` (before quantization and fault substitution).
    pub fn physical(&self, now: Instant) -> Physical {
        let elapsed = self.elapsed(now);
        let minutes = elapsed.as_secs_f64() / 60.0;
        let mut p = self.base;
        match self.scenario {
            Scenario::Steady => p = Physical::nominal(self.kind),
            Scenario::Warmup { c_per_min } => p.temp_c += c_per_min * minutes,
            Scenario::PowerLoss => match self.kind {
                Kind::Freezer => p.temp_c += POWER_LOSS_WARMING_C_PER_MIN * minutes,
                Kind::Ups => {
                    p.runtime_s = (self.base.runtime_s - elapsed.as_secs_f64()).max(0.0);
                    p.charge_pct = if self.base.runtime_s > 0.0 {
                        self.base.charge_pct * p.runtime_s / self.base.runtime_s
                    } else {
                        0.0
                    };
                }
                Kind::Dewar => {}
            },
            Scenario::LidOpen | Scenario::ProbeFault | Scenario::Silent => {}
        }
        p
    }

    /// What the device serves at `now`.
    pub fn reading(&self, now: Instant, noise: Noise) -> Reading {
        let p = self.physical(now);
        let fault = self.scenario == Scenario::ProbeFault;
        let temp_c = (!fault).then(|| round_to(p.temp_c + noise.temp_c, 100.0));
        let lid_open = self.scenario == Scenario::LidOpen;
        let power_loss = self.scenario == Scenario::PowerLoss;
        match self.kind {
            Kind::Dewar => Reading::Dewar {
                temp_c,
                level_pct: round_to((p.level_pct + noise.level_pct).clamp(0.0, 100.0), 10.0),
                lid_open,
                fill_valve: self.fill_valve,
            },
            Kind::Freezer => Reading::Freezer {
                temp_c,
                door_open: lid_open,
                compressor: !power_loss,
            },
            Kind::Ups => {
                let elapsed = self.elapsed(now);
                let charge = p.charge_pct.round().clamp(0.0, 100.0);
                let runtime = p.runtime_s.floor().clamp(0.0, f64::from(u16::MAX));
                Reading::Ups {
                    on_battery: power_loss,
                    low_battery: power_loss && (runtime <= LOW_BATTERY_RUNTIME_S || charge <= LOW_BATTERY_CHARGE_PCT),
                    generator: power_loss && elapsed >= GENERATOR_START_AFTER,
                    ats_on_generator: power_loss && elapsed >= ATS_TRANSFER_AFTER,
                    // Both are clamped to the u16 range above.
                    charge_pct: charge as u16,
                    runtime_s: runtime as u16,
                    input_v: if power_loss { 0.0 } else { UPS_INPUT_V },
                    since_power_loss_s: if power_loss {
                        u32::try_from(elapsed.as_secs()).unwrap_or(u32::MAX)
                    } else {
                        0
                    },
                }
            }
        }
    }
}

/// Round to a resolution of `1 / per_unit` (100.0: hundredths).
fn round_to(v: f64, per_unit: f64) -> f64 {
    (v * per_unit).round() / per_unit
}

#[cfg(test)]
#[path = "scenario_tests.rs"]
mod tests;
