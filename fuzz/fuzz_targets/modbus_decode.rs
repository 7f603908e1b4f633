//! The Modbus register decoder (`sources::modbus::decode`): arbitrary register words
//! and an arbitrary decode spec (type, byte order, scale, offset, fault values), within
//! what `cryowatch check` accepts (scale finite and not 0, offset finite).
#![no_main]

use cryowatch::config::{ByteOrder, DataType, ModbusPoint, RegisterKind};
use cryowatch::model::Quality;
use cryowatch::sources::modbus::decode::{decode_bit, decode_point, raw_value};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const TYPES: [DataType; 9] = [
    DataType::U16,
    DataType::I16,
    DataType::U32,
    DataType::I32,
    DataType::U64,
    DataType::I64,
    DataType::F32,
    DataType::F64,
    DataType::Bool,
];
const ORDERS: [ByteOrder; 4] = [ByteOrder::Abcd, ByteOrder::Cdab, ByteOrder::Badc, ByteOrder::Dcba];

#[derive(Debug, Arbitrary)]
struct Input {
    data_type: u8,
    byte_order: u8,
    /// `None`: the default 1.0.
    scale: Option<f64>,
    /// `None`: the default 0.0.
    offset: Option<f64>,
    fault_values: Vec<f64>,
    /// The words the device served; usually as many as the type needs.
    words: Vec<u16>,
    wrong_count: bool,
    bit: bool,
}

/// Registers in `order` that carry the big-endian bytes `be` (the device's side).
fn encode(be: &[u8], order: ByteOrder) -> Vec<u16> {
    let mut ws: Vec<u16> = be.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    if matches!(order, ByteOrder::Badc | ByteOrder::Dcba) {
        for w in &mut ws {
            *w = w.swap_bytes();
        }
    }
    if matches!(order, ByteOrder::Cdab | ByteOrder::Dcba) {
        ws.reverse();
    }
    ws
}

fuzz_target!(|input: Input| {
    let data_type = TYPES[usize::from(input.data_type) % TYPES.len()];
    let order = ORDERS[usize::from(input.byte_order) % ORDERS.len()];
    let scale = input.scale.unwrap_or(1.0);
    let offset = input.offset.unwrap_or(0.0);
    // What validation lets through (config::validate refuses anything else).
    if scale == 0.0 || !scale.is_finite() || !offset.is_finite() {
        return;
    }
    let n = usize::from(data_type.words());
    let mut words = input.words.clone();
    if !input.wrong_count {
        words.resize(n, 0);
    }
    let point = ModbusPoint {
        device: 0,
        register: RegisterKind::Holding,
        address: 0,
        data_type,
        byte_order: order,
        scale,
        offset,
        fault_values: input.fault_values.clone(),
        invert: false,
    };

    let (value, quality) = decode_point(&words, &point);
    match quality {
        // A good reading is always a finite number.
        Quality::Good => assert!(
            value.is_some_and(f64::is_finite),
            "good reading {value:?} from {words:04x?} as {data_type:?} {order:?} * {scale:e} + {offset:e}"
        ),
        Quality::SensorFault | Quality::CommError => assert_eq!(value, None),
        other => panic!("the decoder made a {other:?} reading"),
    }
    // A wrong number of words is a communication error, never a value.
    assert_eq!(
        quality == Quality::CommError,
        words.len() != n,
        "{words:04x?} as {data_type:?}"
    );

    let raw = raw_value(&words, data_type, order);
    if let Some(raw) = raw {
        // A configured sentinel is a probe fault, compared before scaling.
        if point.fault_values.contains(&raw) || raw.is_nan() {
            assert_eq!(
                quality,
                Quality::SensorFault,
                "raw {raw} with faults {:?}",
                point.fault_values
            );
        }
        if quality == Quality::Good {
            let v = value.unwrap_or(f64::NAN);
            // Scaling removes binary noise only: at most the twelfth significant digit.
            let exact = raw * scale + offset;
            let tolerance = exact.abs() * 1e-11;
            assert!(
                (v - exact).abs() <= tolerance,
                "{raw} * {scale:e} + {offset:e} gave {v}"
            );
            if scale == 1.0 && offset == 0.0 {
                assert_eq!(v.to_bits(), raw.to_bits(), "an unscaled value changed");
            }
        }
    }

    if words.len() == n {
        let b: Vec<u8> = {
            // The big-endian bytes these words carry in this order: encoding them back
            // must give the same words.
            let mut ws = words.clone();
            if matches!(order, ByteOrder::Cdab | ByteOrder::Dcba) {
                ws.reverse();
            }
            if matches!(order, ByteOrder::Badc | ByteOrder::Dcba) {
                for w in &mut ws {
                    *w = w.swap_bytes();
                }
            }
            ws.iter().flat_map(|w| w.to_be_bytes()).collect()
        };
        assert_eq!(encode(&b, order), words);
        let want = match data_type {
            DataType::Bool => f64::from(u8::from(words[0] != 0)),
            DataType::U16 => f64::from(u16::from_be_bytes([b[0], b[1]])),
            DataType::I16 => f64::from(i16::from_be_bytes([b[0], b[1]])),
            DataType::U32 => f64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            DataType::I32 => f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            DataType::U64 => u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f64,
            DataType::I64 => i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f64,
            DataType::F32 => f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            DataType::F64 => f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        };
        let raw = raw.unwrap_or_else(|| panic!("{words:04x?} not decoded as {data_type:?}"));
        if data_type == DataType::F32 {
            // Stored as its shortest decimal form, which is the same f32.
            assert!(
                (raw.is_nan() && want.is_nan()) || raw as f32 == want as f32,
                "f32 {want} decoded as {raw}"
            );
        } else {
            assert!(
                raw.to_bits() == want.to_bits() || (raw.is_nan() && want.is_nan()),
                "{data_type:?} {order:?} {words:04x?}: {raw} != {want}"
            );
        }
        // A plain u16 with no scale is the register itself, in either word order.
        if data_type == DataType::U16
            && matches!(order, ByteOrder::Abcd | ByteOrder::Cdab)
            && scale == 1.0
            && offset == 0.0
        {
            assert_eq!(raw, f64::from(words[0]));
            if quality == Quality::Good {
                assert_eq!(value, Some(f64::from(words[0])));
            }
        }
    }

    // Coils and discrete inputs: 0 or 1, or the sentinel fault.
    let (bv, bq) = decode_bit(input.bit, &point);
    let bit = f64::from(u8::from(input.bit));
    if point.fault_values.contains(&bit) {
        assert_eq!((bv, bq), (None, Quality::SensorFault));
    } else {
        assert_eq!((bv, bq), (Some(bit), Quality::Good));
    }
});
