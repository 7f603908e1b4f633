//! `[[asset]]`, what is monitored, and `[[sensor]]`, what reads it: each sensor's
//! source is checked by its section's file (`modbus`, `mqtt`, `ups`, `serial`).

use std::collections::HashSet;
use std::time::Duration;

use super::check::Checker;
use super::modbus::{self, ModbusDevice, ModbusPoint};
use super::mqtt::{self, MqttPoint};
use super::raw;
use super::serial::{self, SerialDevice, SerialPoint};
use super::ups::{self, UpsPoint};

const ASSET_KINDS: &[&str] = &[
    "ln2_dewar",
    "freezer_minus150",
    "freezer_minus80",
    "freezer_minus20",
    "refrigerator",
    "room",
    "ups",
    "other",
];

#[derive(Debug, Clone)]
pub struct Asset {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub location: String,
}

#[derive(Debug, Clone)]
pub struct Sensor {
    pub id: String,
    pub asset: usize,
    pub quantity: String,
    pub unit: String,
    pub stale_after: Option<Duration>,
    /// Values outside it are not believed: a good reading outside is stored as
    /// `sensor_fault` (`valid_range`, else a default for the quantity and unit).
    pub valid_range: Option<(f64, f64)>,
    /// The names of a discrete sensor's values 0 and 1 (`states`, else derived from what
    /// it is; [`super::states`]); `None` for a measurement.
    pub states: Option<[String; 2]>,
    pub source: SensorSource,
}

#[derive(Debug, Clone)]
pub enum SensorSource {
    Modbus(ModbusPoint),
    Mqtt(MqttPoint),
    Ups(UpsPoint),
    Serial(SerialPoint),
    /// The monitor's own state ([`super::monitor`]), written by the daemon itself.
    Monitor,
    /// Refused sign-ins ([`super::monitor::SECURITY_SENSOR`]), written by the HTTP API.
    Security,
    /// Days left until the calibration of sensor N is due ([`super::calibration`]),
    /// written by the daemon from the calibration register.
    Calibration(usize),
}

impl SensorSource {
    /// A sensor cryowatch writes itself (its own state, refused sign-ins, calibration
    /// days left), not a probe in a unit: no alarm check, default rule or completeness.
    pub fn is_own(&self) -> bool {
        matches!(
            self,
            SensorSource::Monitor | SensorSource::Security | SensorSource::Calibration(_)
        )
    }
}

/// Checks `[[asset]]`.
pub(super) fn assets(c: &mut Checker, raw: &[raw::Asset]) -> Vec<Asset> {
    c.unique_ids("asset", raw.iter().map(|a| a.id.as_str()));
    raw.iter()
        .enumerate()
        .map(|(i, a)| {
            c.one_of(&format!("asset[{i}].kind"), &a.kind, ASSET_KINDS);
            Asset {
                id: a.id.clone(),
                name: a.name.clone().unwrap_or_else(|| a.id.clone()),
                kind: a.kind.clone(),
                location: a.location.clone().unwrap_or_default(),
            }
        })
        .collect()
}

/// What sensors refer to: the checked devices and assets, the declared UPS ids, and
/// whether there is a usable `[mqtt]` broker.
pub(super) struct SensorContext<'a> {
    pub devices: &'a [ModbusDevice],
    pub serial_devices: &'a [SerialDevice],
    pub assets: &'a [Asset],
    pub ups: &'a HashSet<&'a str>,
    pub mqtt: bool,
}

/// Checks `[[sensor]]`; sensors that cannot be read are left out (with their problems).
pub(super) fn sensors(c: &mut Checker, raw: &[raw::Sensor], ctx: &SensorContext) -> Vec<Sensor> {
    c.unique_ids("sensor", raw.iter().map(|s| s.id.as_str()));
    raw.iter()
        .enumerate()
        .filter_map(|(i, s)| sensor(c, &format!("sensor[{i}]"), s, ctx))
        .collect()
}

const QUANTITIES: &[&str] = &["temperature", "level", "state", "voltage", "runtime", "charge", "other"];

/// Checks one `[[sensor]]` at key path `p`; `None` when it cannot be read.
fn sensor(c: &mut Checker, p: &str, s: &raw::Sensor, ctx: &SensorContext) -> Option<Sensor> {
    if let Some(unit) = &s.unit {
        c.printable(&format!("{p}.unit"), unit);
    }
    let asset = ctx.assets.iter().position(|a| a.id == s.asset);
    if asset.is_none() {
        c.err(
            format!("{p}.asset"),
            format!(
                "unknown asset {:?} (sensor {:?}); declare it in an [[asset]]",
                s.asset, s.id
            ),
        );
    }
    let quantity = s.quantity.clone().unwrap_or_else(|| "other".into());
    c.one_of(&format!("{p}.quantity"), &quantity, QUANTITIES);
    let stale_after = s
        .stale_after
        .as_deref()
        .map(|t| c.positive_duration(&format!("{p}.stale_after"), Some(t), Duration::from_secs(60)));
    let sources = [
        s.modbus.is_some(),
        s.mqtt.is_some(),
        s.ups.is_some(),
        s.serial.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if sources != 1 {
        c.err(p, format!("sensor {:?} needs exactly one source table: [sensor.modbus], [sensor.mqtt], [sensor.ups] or [sensor.serial] (found {sources})", s.id));
        return None;
    }
    let source = if let Some(m) = &s.modbus {
        SensorSource::Modbus(modbus::point(c, &format!("{p}.modbus"), m, ctx.devices, &s.id)?)
    } else if let Some(m) = &s.serial {
        SensorSource::Serial(serial::point(c, &format!("{p}.serial"), m, ctx.serial_devices, &s.id)?)
    } else if let Some(m) = &s.mqtt {
        if !ctx.mqtt {
            c.err(
                format!("{p}.mqtt"),
                format!(
                    "sensor {:?} reads MQTT but there is no [mqtt] section with the broker",
                    s.id
                ),
            );
        }
        let mut point = mqtt::point(c, &format!("{p}.mqtt"), m)?;
        point.discrete = quantity == "state";
        SensorSource::Mqtt(point)
    } else {
        let u = s.ups.as_ref()?;
        SensorSource::Ups(ups::point(c, &format!("{p}.ups"), u, ctx.ups))
    };
    let states = super::states::states(c, p, s, super::states::is_discrete(&quantity, &source));
    Some(Sensor {
        id: s.id.clone(),
        asset: asset?,
        valid_range: valid_range(c, p, s, &quantity),
        states,
        quantity,
        unit: s.unit.clone().unwrap_or_default(),
        stale_after,
        source,
    })
}

/// The plausible values of a sensor: `valid_range`, else the physical limits of its
/// quantity in its unit (a temperature below absolute zero, a charge above 100 %).
fn valid_range(c: &mut Checker, p: &str, s: &raw::Sensor, quantity: &str) -> Option<(f64, f64)> {
    if let Some(r) = &s.valid_range {
        return match r.as_slice() {
            [lo, hi] if lo.is_finite() && hi.is_finite() && lo < hi => Some((*lo, *hi)),
            _ => {
                c.err(
                    format!("{p}.valid_range"),
                    format!("expected [low, high] with low < high, both finite; found {r:?}"),
                );
                None
            }
        };
    }
    let unit = s.unit.as_deref().unwrap_or("").trim().to_lowercase();
    match quantity {
        "temperature" => Some(match unit.as_str() {
            "degf" | "°f" | "f" | "fahrenheit" => (-459.67, 400.0),
            "k" | "kelvin" => (0.0, 500.0),
            _ => (-273.15, 200.0),
        }),
        "charge" => Some((0.0, 100.0)),
        "runtime" => Some((0.0, 10_000_000.0)),
        "voltage" => Some((0.0, 100_000.0)),
        _ => None,
    }
}
