//! Read planning: the points of one device grouped into as few requests as the
//! protocol allows. Adjacent and overlapping points of one register kind share a
//! request of at most 125 registers or 2000 bits; a value never spans two requests.

use crate::config::{ModbusPoint, RegisterKind};

/// Most registers one read request may carry (FC 3/4).
pub const MAX_REGISTERS_PER_READ: u16 = 125;
/// Most bits one read request may carry (FC 1/2).
pub const MAX_BITS_PER_READ: u16 = 2000;

/// One read request and the points it serves.
#[derive(Debug, Clone)]
pub struct Block {
    pub kind: RegisterKind,
    pub start: u16,
    pub count: u16,
    /// (sensor index, point) served by this block.
    pub points: Vec<(usize, ModbusPoint)>,
}

impl Block {
    /// The slice of a response belonging to `p`.
    pub fn range_of(&self, p: &ModbusPoint) -> std::ops::Range<usize> {
        let from = usize::from(p.address - self.start);
        from..from + usize::from(p.data_type.words())
    }
}

/// Plans the requests for one device's points.
pub fn plan(points: &[(usize, ModbusPoint)]) -> Vec<Block> {
    let mut sorted: Vec<&(usize, ModbusPoint)> = points.iter().collect();
    sorted.sort_by_key(|(_, p)| (p.register, p.address));
    let mut blocks: Vec<Block> = Vec::new();
    for (sensor, p) in sorted {
        let width = if p.register.is_bit() { 1 } else { p.data_type.words() };
        let limit = if p.register.is_bit() {
            MAX_BITS_PER_READ
        } else {
            MAX_REGISTERS_PER_READ
        };
        let end = u32::from(p.address) + u32::from(width);
        if let Some(b) = blocks.last_mut()
            && b.kind == p.register
            && u32::from(p.address) <= u32::from(b.start) + u32::from(b.count)
            && end - u32::from(b.start) <= u32::from(limit)
        {
            let new_count = (end - u32::from(b.start)).max(u32::from(b.count));
            b.count = u16::try_from(new_count).unwrap_or(limit);
            b.points.push((*sensor, p.clone()));
            continue;
        }
        blocks.push(Block {
            kind: p.register,
            start: p.address,
            count: width,
            points: vec![(*sensor, p.clone())],
        });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ByteOrder, DataType};

    fn pt(register: RegisterKind, address: u16, data_type: DataType) -> ModbusPoint {
        ModbusPoint {
            device: 0,
            register,
            address,
            data_type,
            byte_order: ByteOrder::Abcd,
            scale: 1.0,
            offset: 0.0,
            fault_values: vec![],
            invert: false,
        }
    }

    fn spans(blocks: &[Block]) -> Vec<(RegisterKind, u16, u16, usize)> {
        blocks
            .iter()
            .map(|b| (b.kind, b.start, b.count, b.points.len()))
            .collect()
    }

    #[test]
    fn adjacent_registers_of_one_kind_share_one_request() {
        let pts = vec![
            (0, pt(RegisterKind::Holding, 2, DataType::F32)),
            (1, pt(RegisterKind::Holding, 0, DataType::F32)),
            (2, pt(RegisterKind::Holding, 4, DataType::U16)),
            (3, pt(RegisterKind::Input, 4, DataType::U16)),
        ];
        assert_eq!(
            spans(&plan(&pts)),
            vec![(RegisterKind::Holding, 0, 5, 3), (RegisterKind::Input, 4, 1, 1)]
        );
    }

    #[test]
    fn a_gap_starts_a_new_request() {
        let pts = vec![
            (0, pt(RegisterKind::Holding, 0, DataType::U16)),
            (1, pt(RegisterKind::Holding, 10, DataType::U16)),
        ];
        assert_eq!(plan(&pts).len(), 2);
    }

    #[test]
    fn overlapping_points_share_registers() {
        let pts = vec![
            (0, pt(RegisterKind::Input, 0, DataType::F64)),
            (1, pt(RegisterKind::Input, 2, DataType::U16)),
        ];
        assert_eq!(spans(&plan(&pts)), vec![(RegisterKind::Input, 0, 4, 2)]);
    }

    #[test]
    fn requests_never_exceed_125_registers_and_never_split_a_value() {
        let pts: Vec<_> = (0..100)
            .map(|i| (i, pt(RegisterKind::Holding, (i * 2) as u16, DataType::U32)))
            .collect();
        let blocks = plan(&pts);
        assert!(blocks.iter().all(|b| b.count <= MAX_REGISTERS_PER_READ));
        assert_eq!(
            spans(&blocks),
            vec![
                (RegisterKind::Holding, 0, 124, 62),
                (RegisterKind::Holding, 124, 76, 38)
            ]
        );
        for b in &blocks {
            for (_, p) in &b.points {
                assert!(b.range_of(p).end <= usize::from(b.count));
            }
        }
    }

    #[test]
    fn bits_are_grouped_up_to_2000_per_request() {
        let pts: Vec<_> = (0..2500)
            .map(|i| (i, pt(RegisterKind::Coil, i as u16, DataType::Bool)))
            .collect();
        assert_eq!(
            spans(&plan(&pts)),
            vec![
                (RegisterKind::Coil, 0, 2000, 2000),
                (RegisterKind::Coil, 2000, 500, 500)
            ]
        );
    }
}
