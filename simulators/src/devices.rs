//! The simulated lab (device catalog) and how readings are encoded into Modbus
//! registers and JSON.

use serde_json::{Value, json};

use crate::scenario::{Kind, Reading, Scenario};

/// One simulated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Device name, as used by the control port and in MQTT topics.
    pub name: &'static str,
    pub kind: Kind,
    /// Modbus unit id.
    pub unit: u8,
    /// Answers Modbus requests (TCP and RTU).
    pub modbus: bool,
    /// Publishes telemetry to `lab/<name>/telemetry`.
    pub mqtt: bool,
}

/// The devices of the simulated lab.
pub const DEVICES: [DeviceInfo; 4] = [
    DeviceInfo {
        name: "dewar-1",
        kind: Kind::Dewar,
        unit: 1,
        modbus: true,
        mqtt: false,
    },
    DeviceInfo {
        name: "freezer-7",
        kind: Kind::Freezer,
        unit: 2,
        modbus: true,
        mqtt: true,
    },
    DeviceInfo {
        name: "ups-1",
        kind: Kind::Ups,
        unit: 3,
        modbus: true,
        mqtt: false,
    },
    DeviceInfo {
        name: "freezer-9",
        kind: Kind::Freezer,
        unit: 4,
        modbus: false,
        mqtt: true,
    },
];

/// Index into [`DEVICES`] of the device called `name`.
pub fn find(name: &str) -> Option<usize> {
    DEVICES.iter().position(|d| d.name == name)
}

/// Index into [`DEVICES`] of the device answering Modbus requests for `unit`.
pub fn by_unit(unit: u8) -> Option<usize> {
    DEVICES.iter().position(|d| d.modbus && d.unit == unit)
}

/// f32 served by temperature registers while the probe is faulty.
pub const F32_FAULT: f32 = -9999.0;
/// i16 served by temperature registers while the probe is faulty.
pub const I16_FAULT: i16 = i16::MIN;

/// f32 as two big-endian words, high word first (byte order ABCD).
pub fn f32_abcd(v: f32) -> [u16; 2] {
    let b = v.to_be_bytes();
    [u16::from_be_bytes([b[0], b[1]]), u16::from_be_bytes([b[2], b[3]])]
}

/// f32 as two big-endian words, low word first (byte order CDAB, "word swapped").
pub fn f32_cdab(v: f32) -> [u16; 2] {
    let [hi, lo] = f32_abcd(v);
    [lo, hi]
}

/// u32 as two big-endian words, high word first (ABCD).
pub fn u32_abcd(v: u32) -> [u16; 2] {
    [(v >> 16) as u16, (v & 0xffff) as u16]
}

/// A value in tenths as an i16 register (two's complement); `None` gives the fault
/// sentinel -32768. Values out of range saturate at -32767 / 32767.
pub fn i16_tenths(v: Option<f64>) -> u16 {
    let raw = match v {
        Some(v) => (v * 10.0).round().clamp(-32767.0, 32767.0) as i16,
        None => I16_FAULT,
    };
    raw as u16
}

/// A non-negative value in tenths as a u16 register (saturating).
pub fn u16_tenths(v: f64) -> u16 {
    (v * 10.0).round().clamp(0.0, f64::from(u16::MAX)) as u16
}

/// A contiguous run of mapped addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<T> {
    pub start: u16,
    pub values: Vec<T>,
}

impl<T: Copy> Block<T> {
    fn new(start: u16, values: Vec<T>) -> Option<Self> {
        Some(Block { start, values })
    }

    /// The values at `addr..addr + qty`, or `None` if any of them is not mapped.
    pub fn read(&self, addr: u16, qty: u16) -> Option<Vec<T>> {
        let from = usize::from(addr.checked_sub(self.start)?);
        let to = from + usize::from(qty);
        self.values.get(from..to).map(<[T]>::to_vec)
    }
}

/// Everything a device serves over Modbus at one moment. `None`: nothing mapped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    pub coils: Option<Block<bool>>,
    pub discrete: Option<Block<bool>>,
    pub input: Option<Block<u16>>,
    pub holding: Option<Block<u16>>,
}

impl Reading {
    /// The register image of this reading (see the register map in README.md).
    pub fn image(&self) -> Image {
        match *self {
            Reading::Dewar {
                temp_c,
                level_pct,
                lid_open,
                fill_valve,
            } => {
                let t = temp_c.map_or(F32_FAULT, |t| t as f32);
                let [a, b] = f32_abcd(t);
                let [c, d] = f32_cdab(t);
                Image {
                    coils: Block::new(0, vec![fill_valve]),
                    discrete: Block::new(0, vec![lid_open]),
                    input: Block::new(0, vec![a, b, c, d]),
                    holding: Block::new(10, vec![u16_tenths(level_pct), i16_tenths(temp_c)]),
                }
            }
            Reading::Freezer {
                temp_c,
                door_open,
                compressor,
            } => {
                let [a, b] = f32_abcd(temp_c.map_or(F32_FAULT, |t| t as f32));
                Image {
                    discrete: Block::new(0, vec![door_open, compressor]),
                    input: Block::new(0, vec![a, b, i16_tenths(temp_c)]),
                    ..Image::default()
                }
            }
            Reading::Ups {
                on_battery,
                low_battery,
                generator,
                ats_on_generator,
                charge_pct,
                runtime_s,
                input_v,
                since_power_loss_s,
            } => {
                let [hi, lo] = u32_abcd(since_power_loss_s);
                Image {
                    discrete: Block::new(0, vec![on_battery, low_battery, generator, ats_on_generator]),
                    input: Block::new(0, vec![charge_pct, runtime_s, u16_tenths(input_v), hi, lo]),
                    ..Image::default()
                }
            }
        }
    }

    /// The reading as a flat JSON object (booleans as 0/1), as answered by `get`.
    pub fn to_json(&self, device: &DeviceInfo, scenario: Scenario) -> Value {
        let b = u8::from;
        let mut v = match *self {
            Reading::Dewar {
                temp_c,
                level_pct,
                lid_open,
                fill_valve,
            } => json!({
                "temp_c": temp_c,
                "probe_fault": b(temp_c.is_none()),
                "level_pct": level_pct,
                "lid": b(lid_open),
                "fill_valve": b(fill_valve),
            }),
            Reading::Freezer {
                temp_c,
                door_open,
                compressor,
            } => json!({
                "temp_c": temp_c,
                "probe_fault": b(temp_c.is_none()),
                "door": b(door_open),
                "compressor": b(compressor),
            }),
            Reading::Ups {
                on_battery,
                low_battery,
                generator,
                ats_on_generator,
                charge_pct,
                runtime_s,
                input_v,
                since_power_loss_s,
            } => json!({
                "on_battery": b(on_battery),
                "low_battery": b(low_battery),
                "generator": b(generator),
                "ats_on_generator": b(ats_on_generator),
                "charge_pct": charge_pct,
                "runtime_s": runtime_s,
                "input_v": input_v,
                "since_power_loss_s": since_power_loss_s,
            }),
        };
        if let Value::Object(map) = &mut v {
            map.insert("device".into(), device.name.into());
            map.insert("unit".into(), device.unit.into());
            map.insert("scenario".into(), scenario.to_string().into());
        }
        v
    }

    /// The MQTT telemetry payload of a freezer; `None` for devices that do not publish.
    pub fn telemetry(&self, ts: &str) -> Option<Value> {
        match *self {
            Reading::Freezer {
                temp_c,
                door_open,
                compressor,
            } => {
                let probe = match temp_c {
                    Some(t) => json!({ "temp_c": t }),
                    None => json!({ "temp_c": null, "fault": "open" }),
                };
                Some(json!({
                    "probe": probe,
                    "door": u8::from(door_open),
                    "compressor": u8::from(compressor),
                    "ts": ts,
                }))
            }
            Reading::Dewar { .. } | Reading::Ups { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_word_orders() {
        // -190.5 = 0xC33E8000
        assert_eq!(f32_abcd(-190.5), [0xC33E, 0x8000]);
        assert_eq!(f32_cdab(-190.5), [0x8000, 0xC33E]);
        // -80.0 = 0xC2A00000
        assert_eq!(f32_abcd(-80.0), [0xC2A0, 0x0000]);
        // -9999.0 = 0xC61C3C00
        assert_eq!(f32_abcd(F32_FAULT), [0xC61C, 0x3C00]);
        let [a, b] = f32_abcd(1.25);
        assert_eq!(f32::from_bits((u32::from(a) << 16) | u32::from(b)), 1.25);
    }

    #[test]
    fn i16_tenths_and_sentinel() {
        assert_eq!(i16_tenths(Some(-190.5)) as i16, -1905);
        assert_eq!(i16_tenths(Some(-80.0)), 0xFCE0);
        assert_eq!(i16_tenths(Some(4.04)) as i16, 40);
        assert_eq!(i16_tenths(None), 0x8000);
        assert_eq!(i16_tenths(None) as i16, -32768);
        // A real value never collides with the sentinel.
        assert_eq!(i16_tenths(Some(-1e9)) as i16, -32767);
        assert_eq!(i16_tenths(Some(1e9)) as i16, 32767);
    }

    #[test]
    fn u16_and_u32_words() {
        assert_eq!(u16_tenths(85.3), 853);
        assert_eq!(u16_tenths(230.0), 2300);
        assert_eq!(u16_tenths(-1.0), 0);
        assert_eq!(u32_abcd(0), [0, 0]);
        assert_eq!(u32_abcd(70_000), [0x0001, 0x1170]);
        assert_eq!(u32_abcd(0xDEAD_BEEF), [0xDEAD, 0xBEEF]);
    }

    #[test]
    fn dewar_image() {
        let r = Reading::Dewar {
            temp_c: Some(-190.5),
            level_pct: 85.3,
            lid_open: true,
            fill_valve: false,
        };
        let img = r.image();
        let input = img.input.as_ref().unwrap();
        assert_eq!(input.read(0, 4), Some(vec![0xC33E, 0x8000, 0x8000, 0xC33E]));
        assert_eq!(input.read(2, 2), Some(vec![0x8000, 0xC33E]));
        assert_eq!(input.read(3, 2), None);
        let holding = img.holding.as_ref().unwrap();
        assert_eq!(holding.read(10, 2), Some(vec![853, (-1905i16) as u16]));
        assert_eq!(holding.read(9, 1), None);
        assert_eq!(holding.read(0, 1), None);
        assert_eq!(img.discrete.as_ref().unwrap().read(0, 1), Some(vec![true]));
        assert_eq!(img.coils.as_ref().unwrap().read(0, 1), Some(vec![false]));
    }

    #[test]
    fn probe_fault_image_serves_sentinels() {
        let r = Reading::Dewar {
            temp_c: None,
            level_pct: 85.3,
            lid_open: false,
            fill_valve: false,
        };
        let img = r.image();
        assert_eq!(img.input.unwrap().values, vec![0xC61C, 0x3C00, 0x3C00, 0xC61C]);
        assert_eq!(img.holding.unwrap().values, vec![853, 0x8000]);
        let f = Reading::Freezer {
            temp_c: None,
            door_open: false,
            compressor: true,
        };
        assert_eq!(f.image().input.unwrap().values, vec![0xC61C, 0x3C00, 0x8000]);
    }

    #[test]
    fn ups_image() {
        let r = Reading::Ups {
            on_battery: true,
            low_battery: false,
            generator: true,
            ats_on_generator: false,
            charge_pct: 97,
            runtime_s: 3480,
            input_v: 0.0,
            since_power_loss_s: 120,
        };
        let img = r.image();
        assert_eq!(img.discrete.unwrap().values, vec![true, false, true, false]);
        assert_eq!(img.input.unwrap().values, vec![97, 3480, 0, 0, 120]);
        assert_eq!(img.holding, None);
        assert_eq!(img.coils, None);
    }

    #[test]
    fn json_forms() {
        let dev = DEVICES[find("freezer-7").unwrap()];
        let r = Reading::Freezer {
            temp_c: Some(-80.0),
            door_open: false,
            compressor: true,
        };
        let v = r.to_json(&dev, Scenario::Steady);
        assert_eq!(v["temp_c"], json!(-80.0));
        assert_eq!(v["door"], json!(0));
        assert_eq!(v["unit"], json!(2));
        assert_eq!(v["scenario"], json!("steady"));
        let t = r.telemetry("2026-11-23T08:00:00.123Z").unwrap();
        assert_eq!(
            t.to_string(),
            r#"{"compressor":1,"door":0,"probe":{"temp_c":-80.0},"ts":"2026-11-23T08:00:00.123Z"}"#
        );
        let f = Reading::Freezer {
            temp_c: None,
            door_open: true,
            compressor: true,
        };
        assert_eq!(
            f.telemetry("x").unwrap()["probe"],
            json!({"temp_c": null, "fault": "open"})
        );
    }

    #[test]
    fn unit_routing() {
        assert_eq!(by_unit(1).map(|i| DEVICES[i].name), Some("dewar-1"));
        assert_eq!(by_unit(3).map(|i| DEVICES[i].name), Some("ups-1"));
        assert_eq!(by_unit(4), None, "freezer-9 is MQTT only");
        assert_eq!(by_unit(0), None);
    }
}
