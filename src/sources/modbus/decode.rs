//! Register words to values: byte order, type, fault sentinels, scale and offset.
//! Pure functions, tested against hand-encoded words.

use crate::config::{ByteOrder, DataType, ModbusPoint};
use crate::model::Quality;

/// Puts the bytes of `words` (as received, each big-endian on the wire) into big-endian
/// order according to `order`.
fn to_big_endian(words: &[u16], order: ByteOrder) -> Vec<u8> {
    let mut ws: Vec<u16> = words.to_vec();
    if matches!(order, ByteOrder::Cdab | ByteOrder::Dcba) {
        ws.reverse();
    }
    if matches!(order, ByteOrder::Badc | ByteOrder::Dcba) {
        for w in &mut ws {
            *w = w.swap_bytes();
        }
    }
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// The raw value the device encoded, before scale and offset. `words` must hold exactly
/// `data_type.words()` registers.
pub fn raw_value(words: &[u16], data_type: DataType, order: ByteOrder) -> Option<f64> {
    if words.len() != usize::from(data_type.words()) {
        return None;
    }
    let b = to_big_endian(words, order);
    Some(match data_type {
        DataType::Bool => f64::from(u8::from(words[0] != 0)),
        DataType::U16 => f64::from(u16::from_be_bytes([b[0], b[1]])),
        DataType::I16 => f64::from(i16::from_be_bytes([b[0], b[1]])),
        DataType::U32 => f64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        DataType::I32 => f64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        // Values beyond 2^53 lose their lowest bits in f64; sensors do not produce them.
        DataType::U64 => u64::from_be_bytes(b[..8].try_into().ok()?) as f64,
        DataType::I64 => i64::from_be_bytes(b[..8].try_into().ok()?) as f64,
        DataType::F32 => f32_as_decimal(f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        DataType::F64 => f64::from_be_bytes(b[..8].try_into().ok()?),
    })
}

/// An f32 as the f64 nearest its shortest decimal form: a device serving -79.8f32 is
/// stored as -79.8, not -79.80000305175781.
fn f32_as_decimal(v: f32) -> f64 {
    if !v.is_finite() {
        return f64::from(v);
    }
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// `raw * scale + offset`, with the binary noise of the multiplication removed
/// (853 * 0.1 is 85.3, not 85.30000000000001). Twelve significant digits are far
/// beyond what any probe resolves.
pub fn scaled(raw: f64, scale: f64, offset: f64) -> f64 {
    if scale == 1.0 && offset == 0.0 {
        return raw;
    }
    let v = raw * scale + offset;
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    format!("{v:.11e}").parse().unwrap_or(v)
}

/// Decodes one point from its registers into (value, quality).
pub fn decode_point(words: &[u16], p: &ModbusPoint) -> (Option<f64>, Quality) {
    let Some(raw) = raw_value(words, p.data_type, p.byte_order) else {
        return (None, Quality::CommError);
    };
    if !raw.is_finite() || p.fault_values.contains(&raw) {
        return (None, Quality::SensorFault);
    }
    let value = scaled(raw, p.scale, p.offset);
    // Beyond f64's range after scaling (a huge raw value or scale): no usable reading.
    if !value.is_finite() {
        return (None, Quality::SensorFault);
    }
    (Some(value), Quality::Good)
}

/// Decodes a single bit (coil or discrete input), inverted for a normally-closed
/// contact; fault values are in the sensor's terms (after inversion).
pub fn decode_bit(bit: bool, p: &ModbusPoint) -> (Option<f64>, Quality) {
    let raw = f64::from(u8::from(bit != p.invert));
    if p.fault_values.contains(&raw) {
        return (None, Quality::SensorFault);
    }
    (Some(raw), Quality::Good)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegisterKind;

    fn words_of(bytes: &[u8]) -> Vec<u16> {
        bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect()
    }

    /// Encodes big-endian bytes into registers in `order` (the inverse of decoding).
    fn encode(be: &[u8], order: ByteOrder) -> Vec<u16> {
        let mut ws = words_of(be);
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

    const ORDERS: [ByteOrder; 4] = [ByteOrder::Abcd, ByteOrder::Cdab, ByteOrder::Badc, ByteOrder::Dcba];

    #[test]
    fn every_type_round_trips_in_every_byte_order() {
        for order in ORDERS {
            let cases: Vec<(DataType, Vec<u8>, f64)> = vec![
                (DataType::U16, 51234u16.to_be_bytes().to_vec(), 51234.0),
                (DataType::I16, (-1905i16).to_be_bytes().to_vec(), -1905.0),
                (DataType::U32, 3_000_000_000u32.to_be_bytes().to_vec(), 3e9),
                (DataType::I32, (-123_456_789i32).to_be_bytes().to_vec(), -123_456_789.0),
                (
                    DataType::U64,
                    (1u64 << 53).to_be_bytes().to_vec(),
                    9_007_199_254_740_992.0,
                ),
                (DataType::I64, (-9_000_000_000_000i64).to_be_bytes().to_vec(), -9e12),
                (DataType::F32, (-196.5f32).to_be_bytes().to_vec(), -196.5),
                (
                    DataType::F64,
                    (-196.123456789f64).to_be_bytes().to_vec(),
                    -196.123456789,
                ),
            ];
            for (t, be, want) in cases {
                let words = encode(&be, order);
                assert_eq!(raw_value(&words, t, order), Some(want), "{t:?} {order:?}");
            }
        }
    }

    #[test]
    fn cdab_float_matches_a_known_word_swapped_encoding() {
        // -196.5f32 is 0xC344_8000; word-swapped it is served as [0x8000, 0xC344].
        assert_eq!(
            raw_value(&[0x8000, 0xC344], DataType::F32, ByteOrder::Cdab),
            Some(-196.5)
        );
        assert_eq!(
            raw_value(&[0xC344, 0x8000], DataType::F32, ByteOrder::Abcd),
            Some(-196.5)
        );
        assert_eq!(
            raw_value(&[0x0080, 0x44C3], DataType::F32, ByteOrder::Dcba),
            Some(-196.5)
        );
        assert_eq!(
            raw_value(&[0x44C3, 0x0080], DataType::F32, ByteOrder::Badc),
            Some(-196.5)
        );
    }

    #[test]
    fn f32_values_are_stored_as_their_decimal_form() {
        let w = words_of(&(-79.8f32).to_be_bytes());
        assert_eq!(raw_value(&w, DataType::F32, ByteOrder::Abcd), Some(-79.8));
    }

    #[test]
    fn scaling_removes_binary_noise() {
        assert_eq!(scaled(853.0, 0.1, 0.0), 85.3);
        assert_eq!(scaled(-1905.0, 0.1, 0.0), -190.5);
        assert_eq!(scaled(100.0, 1.0, -273.15), -173.15);
        assert_eq!(scaled(7.0, 1.0, 0.0), 7.0);
    }

    fn point(t: DataType, faults: Vec<f64>) -> ModbusPoint {
        ModbusPoint {
            device: 0,
            register: RegisterKind::Holding,
            address: 0,
            data_type: t,
            byte_order: ByteOrder::Abcd,
            scale: 0.1,
            offset: 0.0,
            fault_values: faults,
            invert: false,
        }
    }

    #[test]
    fn a_normally_closed_contact_reads_inverted_so_a_broken_wire_is_an_alarm() {
        let mut p = point(DataType::Bool, vec![]);
        p.register = RegisterKind::Discrete;
        assert_eq!(decode_bit(true, &p), (Some(1.0), Quality::Good));
        p.invert = true;
        // Closed (all well) reads 0; open, or a cut wire, reads 1.
        assert_eq!(decode_bit(true, &p), (Some(0.0), Quality::Good));
        assert_eq!(decode_bit(false, &p), (Some(1.0), Quality::Good));
    }

    #[test]
    fn a_fault_sentinel_is_compared_before_scaling() {
        let p = point(DataType::I16, vec![-32768.0]);
        assert_eq!(decode_point(&[0x8000], &p), (None, Quality::SensorFault));
        assert_eq!(decode_point(&[0xF88F], &p), (Some(-190.5), Quality::Good));
    }

    #[test]
    fn a_nan_float_is_a_sensor_fault() {
        let p = point(DataType::F32, vec![]);
        assert_eq!(decode_point(&[0x7FC0, 0x0000], &p), (None, Quality::SensorFault));
    }

    /// Found by fuzzing (fuzz/fuzz_targets/modbus_decode.rs): a finite raw value that
    /// overflows when scaled was stored as an infinite `good` reading.
    #[test]
    fn a_value_that_overflows_when_scaled_is_a_sensor_fault() {
        let mut p = point(DataType::F32, vec![]);
        p.byte_order = ByteOrder::Badc;
        p.scale = -1.3238703117368209e306;
        p.offset = -1.4604099973797001e-263;
        assert_eq!(decode_point(&[0x7eef, 0xffff], &p), (None, Quality::SensorFault));
        p.data_type = DataType::U64;
        p.scale = 1e300;
        assert_eq!(decode_point(&[0xffff; 4], &p), (None, Quality::SensorFault));
    }

    #[test]
    fn a_wrong_word_count_is_not_decoded() {
        assert_eq!(raw_value(&[1], DataType::U32, ByteOrder::Abcd), None);
    }
}
