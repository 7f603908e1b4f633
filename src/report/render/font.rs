//! The typeface every PDF carries: DejaVu Sans Condensed and its bold, built into the
//! binary (`fonts/`, with their licence) and embedded in each PDF as a subset, so the
//! file reads the same on any machine, years from now (21 CFR 11.10(b)).
//!
//! Text is set as a simple TrueType font with `/WinAnsiEncoding`, the single-byte
//! encoding `text` produces; widths come from the font's own `hmtx` table, so the
//! layout measures exactly what the viewer draws. The condensed cut sets about as
//! much text to a line as Helvetica did, so tables keep their columns.

use std::sync::OnceLock;

use printpdf::lopdf::{self, Dictionary, Object, Stream};

use super::text::{FIRST_CODE, Face, winansi_char};

mod subset;

const REGULAR: &[u8] = include_bytes!("fonts/DejaVuSansCondensed.ttf");
const BOLD: &[u8] = include_bytes!("fonts/DejaVuSansCondensed-Bold.ttf");

/// One face's figures in PDF glyph space (1/1000 em).
pub(crate) struct Metrics {
    /// Advance widths of WinAnsi codes `FIRST_CODE..=255`.
    pub advances: [u16; 224],
    pub ascent: i64,
    pub descent: i64,
    pub cap_height: i64,
    pub bbox: [i64; 4],
    /// Glyph ids of the WinAnsi characters: what the embedded subset keeps.
    glyphs: Vec<u16>,
}

fn data(face: Face) -> &'static [u8] {
    match face {
        Face::Regular => REGULAR,
        Face::Bold => BOLD,
    }
}

/// PostScript name of `face`, behind the subset tag ISO 32000-1 9.6.4 asks for.
fn name(face: Face) -> &'static str {
    match face {
        Face::Regular => "CRYWAA+DejaVuSansCondensed",
        Face::Bold => "CRYWAB+DejaVuSansCondensed-Bold",
    }
}

fn measure(face: Face) -> Metrics {
    // The fonts are part of the binary; a unit test parses both.
    let f = ttf_parser::Face::parse(data(face), 0).expect("the built-in font parses");
    let em = f64::from(f.units_per_em());
    let scale = |v: i16| (f64::from(v) * 1000.0 / em).round() as i64;
    let mut advances = [0u16; 224];
    let mut glyphs = Vec::new();
    for (slot, code) in advances.iter_mut().zip(FIRST_CODE..=255) {
        let Some(glyph) = winansi_char(code).and_then(|c| f.glyph_index(c)) else {
            continue;
        };
        glyphs.push(glyph.0);
        let advance = f.glyph_hor_advance(glyph).unwrap_or(0);
        *slot = (f64::from(advance) * 1000.0 / em).round() as u16;
    }
    let b = f.global_bounding_box();
    Metrics {
        advances,
        ascent: scale(f.ascender()),
        descent: scale(f.descender()),
        cap_height: scale(f.capital_height().unwrap_or(f.ascender())),
        bbox: [scale(b.x_min), scale(b.y_min), scale(b.x_max), scale(b.y_max)],
        glyphs,
    }
}

/// The figures of `face`, read from the font once.
pub(crate) fn metrics(face: Face) -> &'static Metrics {
    static REGULAR_METRICS: OnceLock<Metrics> = OnceLock::new();
    static BOLD_METRICS: OnceLock<Metrics> = OnceLock::new();
    match face {
        Face::Regular => REGULAR_METRICS.get_or_init(|| measure(Face::Regular)),
        Face::Bold => BOLD_METRICS.get_or_init(|| measure(Face::Bold)),
    }
}

/// Turns the font dictionary `font` (printpdf's stand-in for `face`) into the embedded
/// TrueType font, adding its descriptor and font program to `doc`.
pub(crate) fn embed(doc: &mut lopdf::Document, font: lopdf::ObjectId, face: Face) -> Result<(), lopdf::Error> {
    let m = metrics(face);
    let program =
        subset::subset(data(face), &m.glyphs).map_err(|e| lopdf::Error::Syntax(format!("subsetting the font: {e}")))?;
    let mut file = Dictionary::new();
    file.set("Length1", program.len() as i64);
    let file = doc.add_object(Stream::new(file, program));
    let descriptor = doc.add_object(Dictionary::from_iter([
        ("Type", Object::Name(b"FontDescriptor".to_vec())),
        ("FontName", Object::Name(name(face).as_bytes().to_vec())),
        // Nonsymbolic: the codes are WinAnsi, looked up through the font's Unicode cmap.
        ("Flags", Object::Integer(32)),
        (
            "FontBBox",
            Object::Array(m.bbox.iter().map(|&v| Object::Integer(v)).collect()),
        ),
        ("ItalicAngle", Object::Integer(0)),
        ("Ascent", Object::Integer(m.ascent)),
        ("Descent", Object::Integer(m.descent)),
        ("CapHeight", Object::Integer(m.cap_height)),
        ("StemV", Object::Integer(if face == Face::Bold { 140 } else { 80 })),
        ("FontFile2", Object::Reference(file)),
    ]));
    let widths = m.advances.iter().map(|&w| Object::Integer(i64::from(w))).collect();
    let dict = Dictionary::from_iter([
        ("Type", Object::Name(b"Font".to_vec())),
        ("Subtype", Object::Name(b"TrueType".to_vec())),
        ("BaseFont", Object::Name(name(face).as_bytes().to_vec())),
        ("Encoding", Object::Name(b"WinAnsiEncoding".to_vec())),
        ("FirstChar", Object::Integer(i64::from(FIRST_CODE))),
        ("LastChar", Object::Integer(255)),
        ("Widths", Object::Array(widths)),
        ("FontDescriptor", Object::Reference(descriptor)),
    ]);
    doc.objects.insert(font, Object::Dictionary(dict));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_faces_parse_and_cover_every_winansi_character() {
        for face in [Face::Regular, Face::Bold] {
            let m = metrics(face);
            // 0x7F and five codes of 0x80..=0x9F are unassigned in WinAnsi.
            assert_eq!(m.glyphs.len(), 224 - 6);
            assert!(m.advances[usize::from(b'A' - FIRST_CODE)] > 500);
        }
    }

    #[test]
    fn the_subset_keeps_the_kept_glyphs_and_their_widths() {
        let m = metrics(Face::Regular);
        let small = subset::subset(REGULAR, &m.glyphs).expect("subsets");
        assert!(small.len() < REGULAR.len() / 4, "subset is {} bytes", small.len());
        let f = ttf_parser::Face::parse(&small, 0).expect("the subset parses");
        let mu = f.glyph_index('µ').expect("µ kept");
        assert!(f.outline_glyph(mu, &mut Bounds).is_some());
        let cjk = f.glyph_index('Ж').expect("cmap unchanged");
        assert!(f.outline_glyph(cjk, &mut Bounds).is_none(), "Ж dropped");
    }

    struct Bounds;
    impl ttf_parser::OutlineBuilder for Bounds {
        fn move_to(&mut self, _: f32, _: f32) {}
        fn line_to(&mut self, _: f32, _: f32) {}
        fn quad_to(&mut self, _: f32, _: f32, _: f32, _: f32) {}
        fn curve_to(&mut self, _: f32, _: f32, _: f32, _: f32, _: f32, _: f32) {}
        fn close(&mut self) {}
    }
}
