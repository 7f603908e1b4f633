//! `[[modbus.device]]`, the devices polled over Modbus TCP or RTU, and `[sensor.modbus]`,
//! a sensor's register on one of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check::{Checker, resolve};
use super::raw;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Tcp {
        address: String,
    },
    Rtu {
        serial: PathBuf,
        baud: u32,
        parity: Parity,
        data_bits: u8,
        stop_bits: u8,
    },
}

/// A TCP address as devices sharing connections compare it: blanks around it and its
/// port dropped, the host in lower case (host names are case-insensitive), not resolved.
pub fn gateway_key(address: &str) -> String {
    let a = address.trim();
    match a.rsplit_once(':') {
        Some((host, port)) => format!("{}:{}", host.trim().to_ascii_lowercase(), port.trim()),
        None => a.to_ascii_lowercase(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

#[derive(Debug, Clone)]
pub struct ModbusDevice {
    pub id: String,
    pub transport: Transport,
    pub unit: u8,
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// `max_connections`: at most this many connections are opened to the device's TCP
    /// address, shared by every device there (1 for RTU, where it is refused).
    pub max_connections: usize,
}

impl ModbusDevice {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1;
}

/// Checks `[[modbus.device]]`: each device, then what devices sharing a serial line or a
/// TCP address must agree on.
pub(super) fn devices(c: &mut Checker, raw: &[raw::ModbusDevice], base: &Path) -> Vec<ModbusDevice> {
    c.unique_ids("modbus.device", raw.iter().map(|d| d.id.as_str()));
    let devices: Vec<ModbusDevice> = raw
        .iter()
        .enumerate()
        .map(|(i, d)| device(c, &format!("modbus.device[{i}]"), d, base))
        .collect();
    check_shared_buses(c, &devices);
    check_shared_gateways(c, raw, &devices);
    devices
}

fn device(c: &mut Checker, p: &str, d: &raw::ModbusDevice, base: &Path) -> ModbusDevice {
    let poll_interval = c.positive_duration(
        &format!("{p}.poll_interval"),
        d.poll_interval.as_deref(),
        Duration::from_secs(5),
    );
    let timeout = c.positive_duration(&format!("{p}.timeout"), d.timeout.as_deref(), Duration::from_secs(1));
    let transport = match d.transport.as_str() {
        "tcp" => {
            for (key, given) in [
                ("serial", d.serial.is_some()),
                ("baud", d.baud.is_some()),
                ("parity", d.parity.is_some()),
                ("data_bits", d.data_bits.is_some()),
                ("stop_bits", d.stop_bits.is_some()),
            ] {
                if given {
                    c.err(format!("{p}.{key}"), "only applies to transport = \"rtu\"");
                }
            }
            let address = match d.address.as_deref().map(str::trim) {
                Some(a)
                    if a.rsplit_once(':')
                        .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok()) =>
                {
                    a.to_string()
                }
                Some(a) => {
                    c.err(format!("{p}.address"), format!("expected host:port, found {a:?}"));
                    a.to_string()
                }
                None => {
                    c.err(
                        format!("{p}.address"),
                        "missing: transport = \"tcp\" needs address = \"host:port\"",
                    );
                    String::new()
                }
            };
            Transport::Tcp { address }
        }
        "rtu" => {
            if d.address.is_some() {
                c.err(
                    format!("{p}.address"),
                    "only applies to transport = \"tcp\"; use serial for rtu",
                );
            }
            if d.max_connections.is_some() {
                c.err(
                    format!("{p}.max_connections"),
                    "only applies to transport = \"tcp\"; the devices on one serial line always share its one port",
                );
            }
            let serial = match &d.serial {
                Some(s) => resolve(base, s),
                None => {
                    c.err(
                        format!("{p}.serial"),
                        "missing: transport = \"rtu\" needs serial = \"/dev/ttyUSB0\"",
                    );
                    PathBuf::new()
                }
            };
            let (baud, parity, data_bits, stop_bits) =
                line_settings(c, p, (d.baud, d.parity.as_deref(), d.data_bits, d.stop_bits));
            Transport::Rtu {
                serial,
                baud,
                parity,
                data_bits,
                stop_bits,
            }
        }
        other => {
            c.err(
                format!("{p}.transport"),
                format!("unknown value {other:?}; expected one of: tcp, rtu"),
            );
            Transport::Tcp { address: String::new() }
        }
    };
    let unit = d.unit.unwrap_or(1);
    if matches!(transport, Transport::Rtu { .. }) && !(1..=247).contains(&unit) {
        c.err(
            format!("{p}.unit"),
            format!("an RTU unit id must be 1..=247, found {unit}"),
        );
    }
    let max_connections = match d.max_connections {
        Some(0) => {
            c.err(
                format!("{p}.max_connections"),
                "must be at least 1 (connections opened to the device's address)",
            );
            ModbusDevice::DEFAULT_MAX_CONNECTIONS
        }
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => ModbusDevice::DEFAULT_MAX_CONNECTIONS,
    };
    ModbusDevice {
        id: d.id.clone(),
        transport,
        unit,
        poll_interval,
        timeout,
        max_connections,
    }
}

/// Devices at one TCP address share its connections (a gateway may serve one client at
/// a time): they must agree on how many there may be.
fn check_shared_gateways(c: &mut Checker, raw: &[raw::ModbusDevice], devices: &[ModbusDevice]) {
    let mut first: HashMap<String, usize> = HashMap::new();
    let value_of = |i: usize| match raw[i].max_connections {
        Some(n) => n.to_string(),
        None => format!("{} (not set: the default)", ModbusDevice::DEFAULT_MAX_CONNECTIONS),
    };
    for (i, d) in devices.iter().enumerate() {
        let Transport::Tcp { address } = &d.transport else {
            continue;
        };
        let key = gateway_key(address);
        match first.get(&key) {
            None => {
                first.insert(key, i);
            }
            Some(&j) if devices[j].max_connections != d.max_connections => {
                c.err(
                    format!("modbus.device[{i}].max_connections"),
                    format!(
                        "{} disagrees with modbus.device[{j}].max_connections = {} of device {:?} at \
                         the same address {key}; devices at one TCP address share its connections: \
                         give them all the same max_connections",
                        value_of(i),
                        value_of(j),
                        devices[j].id
                    ),
                );
            }
            Some(_) => {}
        }
    }
}

/// Devices on one serial line share the port: their line settings must agree.
fn check_shared_buses(c: &mut Checker, devices: &[ModbusDevice]) {
    let mut first: HashMap<&Path, usize> = HashMap::new();
    for (i, d) in devices.iter().enumerate() {
        let Transport::Rtu { serial, .. } = &d.transport else {
            continue;
        };
        match first.get(serial.as_path()) {
            None => {
                first.insert(serial, i);
            }
            Some(&j) => {
                let other = &devices[j];
                let line = |t: &Transport| match t {
                    Transport::Rtu {
                        baud,
                        parity,
                        data_bits,
                        stop_bits,
                        ..
                    } => Some((*baud, *parity, *data_bits, *stop_bits)),
                    Transport::Tcp { .. } => None,
                };
                if line(&d.transport) != line(&other.transport) {
                    c.err(
                        format!("modbus.device[{i}]"),
                        format!(
                            "shares serial {} with {:?} but baud/parity/data_bits/stop_bits differ",
                            serial.display(),
                            other.id
                        ),
                    );
                }
                if d.unit == other.unit {
                    c.err(
                        format!("modbus.device[{i}].unit"),
                        format!(
                            "unit {} is already used on serial {} by {:?}",
                            d.unit,
                            serial.display(),
                            other.id
                        ),
                    );
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegisterKind {
    Coil,
    Discrete,
    Holding,
    Input,
}

impl RegisterKind {
    /// Bit-addressed kinds (coils, discrete inputs) hold one bit per address.
    pub fn is_bit(self) -> bool {
        matches!(self, RegisterKind::Coil | RegisterKind::Discrete)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RegisterKind::Coil => "coil",
            RegisterKind::Discrete => "discrete",
            RegisterKind::Holding => "holding",
            RegisterKind::Input => "input",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    Bool,
}

impl DataType {
    /// 16-bit registers the value occupies (1 address for `bool`).
    pub fn words(self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 | DataType::Bool => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Big-endian words, big-endian bytes in each word (Modbus' usual order).
    Abcd,
    /// Word order reversed (low word first), bytes big-endian within each word.
    Cdab,
    /// Word order big-endian, bytes swapped within each word.
    Badc,
    /// Fully little-endian.
    Dcba,
}

#[derive(Debug, Clone)]
pub struct ModbusPoint {
    pub device: usize,
    pub register: RegisterKind,
    pub address: u16,
    pub data_type: DataType,
    pub byte_order: ByteOrder,
    pub scale: f64,
    pub offset: f64,
    pub fault_values: Vec<f64>,
    /// A coil or discrete input wired normally closed: its bit is read inverted, so an
    /// open contact or a broken wire reads 1.
    pub invert: bool,
}

/// Checks a serial line's `baud` (default 9600), `parity` (none), `data_bits` (8) and
/// `stop_bits` (1) at key path `p`: a Modbus RTU line and a text-protocol line alike.
pub(super) fn line_settings(
    c: &mut Checker,
    p: &str,
    (baud, parity, data_bits, stop_bits): (Option<u32>, Option<&str>, Option<u8>, Option<u8>),
) -> (u32, Parity, u8, u8) {
    let parity = match parity.map(|v| c.one_of(&format!("{p}.parity"), v, &["none", "even", "odd"])) {
        Some(Some("even")) => Parity::Even,
        Some(Some("odd")) => Parity::Odd,
        _ => Parity::None,
    };
    let data_bits = data_bits.unwrap_or(8);
    if !(5..=8).contains(&data_bits) {
        c.err(
            format!("{p}.data_bits"),
            format!("must be 5, 6, 7 or 8, found {data_bits}"),
        );
    }
    let stop_bits = stop_bits.unwrap_or(1);
    if !(1..=2).contains(&stop_bits) {
        c.err(format!("{p}.stop_bits"), format!("must be 1 or 2, found {stop_bits}"));
    }
    let baud = baud.unwrap_or(9600);
    if baud == 0 {
        c.err(format!("{p}.baud"), "must be greater than zero");
    }
    (baud, parity, data_bits, stop_bits)
}

/// Checks a sensor's `[sensor.modbus]` at key path `p` against the checked `devices`.
pub(super) fn point(
    c: &mut Checker,
    p: &str,
    m: &raw::SensorModbus,
    devices: &[ModbusDevice],
    sensor_id: &str,
) -> Option<ModbusPoint> {
    let device = devices.iter().position(|d| d.id == m.device);
    if device.is_none() {
        c.err(
            format!("{p}.device"),
            format!(
                "unknown modbus device {:?} (sensor {sensor_id:?}); declare it in a [[modbus.device]]",
                m.device
            ),
        );
    }
    let register = match c.one_of(
        &format!("{p}.register"),
        &m.register,
        &["coil", "discrete", "holding", "input"],
    ) {
        Some("coil") => RegisterKind::Coil,
        Some("discrete") => RegisterKind::Discrete,
        Some("holding") => RegisterKind::Holding,
        Some("input") => RegisterKind::Input,
        _ => return None,
    };
    let data_type = match c.one_of(
        &format!("{p}.type"),
        &m.data_type,
        &["u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bool"],
    )? {
        "u16" => DataType::U16,
        "i16" => DataType::I16,
        "u32" => DataType::U32,
        "i32" => DataType::I32,
        "u64" => DataType::U64,
        "i64" => DataType::I64,
        "f32" => DataType::F32,
        "f64" => DataType::F64,
        _ => DataType::Bool,
    };
    if register.is_bit() && data_type != DataType::Bool {
        c.err(
            format!("{p}.type"),
            format!("type {:?} does not fit register kind {:?}: coils and discrete inputs hold single bits; use type = \"bool\"", m.data_type, m.register),
        );
    }
    let words = data_type.words();
    let last = u32::from(m.address) + u32::from(words) - 1;
    if last > u32::from(u16::MAX) {
        c.err(
            format!("{p}.address"),
            format!(
                "type {:?} at address {} needs registers {}..={last}, past the last Modbus address 65535",
                m.data_type, m.address, m.address
            ),
        );
    }
    let byte_order = match m.byte_order.as_deref() {
        None => ByteOrder::Abcd,
        Some(b) => match c.one_of(&format!("{p}.byte_order"), b, &["ABCD", "CDAB", "BADC", "DCBA"]) {
            Some("CDAB") => ByteOrder::Cdab,
            Some("BADC") => ByteOrder::Badc,
            Some("DCBA") => ByteOrder::Dcba,
            _ => ByteOrder::Abcd,
        },
    };
    if register.is_bit() && m.byte_order.is_some() {
        c.err(format!("{p}.byte_order"), "does not apply to coils and discrete inputs");
    }
    let scale = m.scale.unwrap_or(1.0);
    if scale == 0.0 || !scale.is_finite() {
        c.err(
            format!("{p}.scale"),
            format!("must be a finite number other than 0, found {scale}"),
        );
    }
    if m.invert.is_some() && !register.is_bit() {
        c.err(
            format!("{p}.invert"),
            "applies to coils and discrete inputs only (a normally-closed contact)",
        );
    }
    let offset = m.offset.unwrap_or(0.0);
    if !offset.is_finite() {
        c.err(format!("{p}.offset"), "must be a finite number");
    }
    Some(ModbusPoint {
        device: device?,
        register,
        address: m.address,
        data_type,
        byte_order,
        scale,
        offset,
        fault_values: m.fault_values.clone(),
        invert: m.invert.unwrap_or(false),
    })
}
