//! A TrueType subset for embedding in a PDF.
//!
//! Glyph ids stay as they are, so the font's own `cmap` still maps characters to them:
//! glyphs outside the kept set become empty, the tables a PDF viewer does not read
//! (layout, kerning, glyph names) are left out, and `loca` is rewritten in its long
//! form. The kept set is closed over composite glyphs' components.

/// Tables a viewer needs to draw a simple TrueType font from a character code
/// (ISO 32000-1 9.9, plus `cmap`, `OS/2` and `name`), in the sorted order of their tags.
const KEPT: [&[u8; 4]; 11] = [
    b"OS/2", b"cmap", b"cvt ", b"fpgm", b"glyf", b"head", b"hhea", b"hmtx", b"loca", b"maxp", b"name",
];

fn u16_at(data: &[u8], at: usize) -> Result<u16, &'static str> {
    data.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or("font table truncated")
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, &'static str> {
    data.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or("font table truncated")
}

/// A table's tag and its bytes.
type Table<'a> = ([u8; 4], &'a [u8]);

/// The font's tables by tag, as slices of `font`.
fn tables(font: &[u8]) -> Result<Vec<Table<'_>>, &'static str> {
    let count = usize::from(u16_at(font, 4)?);
    (0..count)
        .map(|i| {
            let record = 12 + 16 * i;
            let tag = font.get(record..record + 4).ok_or("font directory truncated")?;
            let offset = u32_at(font, record + 8)? as usize;
            let length = u32_at(font, record + 12)? as usize;
            let data = font
                .get(offset..offset.saturating_add(length))
                .ok_or("font table outside the file")?;
            Ok(([tag[0], tag[1], tag[2], tag[3]], data))
        })
        .collect()
}

fn table<'a>(tables: &[Table<'a>], tag: &[u8; 4]) -> Result<&'a [u8], &'static str> {
    tables
        .iter()
        .find(|(t, _)| t == tag)
        .map(|(_, d)| *d)
        .ok_or("font lacks a required table")
}

/// Glyph ids referenced by the composite glyph `glyph` (none for a simple glyph).
fn components(glyph: &[u8]) -> Result<Vec<u16>, &'static str> {
    let mut out = Vec::new();
    if glyph.len() < 10 || (u16_at(glyph, 0)? as i16) >= 0 {
        return Ok(out);
    }
    let mut at = 10;
    loop {
        let flags = u16_at(glyph, at)?;
        out.push(u16_at(glyph, at + 2)?);
        at += 4 + if flags & 0x0001 != 0 { 4 } else { 2 };
        at += if flags & 0x0008 != 0 {
            2
        } else if flags & 0x0040 != 0 {
            4
        } else if flags & 0x0080 != 0 {
            8
        } else {
            0
        };
        if flags & 0x0020 == 0 {
            return Ok(out);
        }
    }
}

fn checksum(data: &[u8]) -> u32 {
    data.chunks(4).fold(0u32, |sum, c| {
        let mut word = [0u8; 4];
        word[..c.len()].copy_from_slice(c);
        sum.wrapping_add(u32::from_be_bytes(word))
    })
}

/// `font` with only the glyphs `keep` (and `.notdef`, and their components) drawn.
pub(crate) fn subset(font: &[u8], keep: &[u16]) -> Result<Vec<u8>, &'static str> {
    let tables = tables(font)?;
    let head = table(&tables, b"head")?;
    let glyf = table(&tables, b"glyf")?;
    let loca = table(&tables, b"loca")?;
    let glyphs = usize::from(u16_at(table(&tables, b"maxp")?, 4)?);
    let long = u16_at(head, 50)? == 1;
    let offset = |g: usize| -> Result<usize, &'static str> {
        Ok(if long {
            u32_at(loca, 4 * g)? as usize
        } else {
            2 * usize::from(u16_at(loca, 2 * g)?)
        })
    };
    let glyph = |g: usize| -> Result<&[u8], &'static str> {
        glyf.get(offset(g)?..offset(g + 1)?)
            .ok_or("glyph outside the glyf table")
    };

    let mut kept = vec![false; glyphs];
    let mut todo: Vec<u16> = keep.iter().copied().chain([0]).collect();
    while let Some(g) = todo.pop() {
        let g = usize::from(g);
        if g >= glyphs || kept[g] {
            continue;
        }
        kept[g] = true;
        todo.extend(components(glyph(g)?)?);
    }

    let mut new_glyf = Vec::new();
    let mut new_loca = Vec::with_capacity(4 * (glyphs + 1));
    for (g, keep) in kept.iter().enumerate() {
        new_loca.extend_from_slice(&(new_glyf.len() as u32).to_be_bytes());
        if *keep {
            new_glyf.extend_from_slice(glyph(g)?);
            new_glyf.resize(new_glyf.len().next_multiple_of(4), 0);
        }
    }
    new_loca.extend_from_slice(&(new_glyf.len() as u32).to_be_bytes());
    let mut new_head = head.to_vec();
    new_head.get_mut(8..12).ok_or("head truncated")?.fill(0);
    new_head
        .get_mut(50..52)
        .ok_or("head truncated")?
        .copy_from_slice(&1u16.to_be_bytes());

    let mut out_tables: Vec<(&[u8; 4], Vec<u8>)> = Vec::new();
    for tag in KEPT {
        let data = match tag {
            b"glyf" => std::mem::take(&mut new_glyf),
            b"loca" => std::mem::take(&mut new_loca),
            b"head" => new_head.clone(),
            _ => match table(&tables, tag) {
                Ok(d) => d.to_vec(),
                Err(_) if matches!(tag, b"OS/2" | b"name" | b"cvt " | b"fpgm") => continue,
                Err(e) => return Err(e),
            },
        };
        out_tables.push((tag, data));
    }

    let count = out_tables.len() as u16;
    let power = 1u16 << (15 - count.leading_zeros() as u16);
    let mut out = Vec::new();
    out.extend_from_slice(&u32_at(font, 0)?.to_be_bytes());
    for v in [
        count,
        power * 16,
        power.trailing_zeros() as u16,
        count * 16 - power * 16,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    let mut at = 12 + 16 * out_tables.len();
    let mut head_at = 0;
    for (tag, data) in &out_tables {
        if *tag == b"head" {
            head_at = at;
        }
        out.extend_from_slice(*tag);
        out.extend_from_slice(&checksum(data).to_be_bytes());
        out.extend_from_slice(&(at as u32).to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        at += data.len().next_multiple_of(4);
    }
    for (_, data) in &out_tables {
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let adjustment = 0xB1B0_AFBAu32.wrapping_sub(checksum(&out));
    out[head_at + 8..head_at + 12].copy_from_slice(&adjustment.to_be_bytes());
    Ok(out)
}
