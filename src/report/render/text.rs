//! Text for the PDF's embedded DejaVu Sans Condensed (`font`): WinAnsi encoding, widths and line
//! wrapping.
//!
//! The font is set as a simple TrueType font with the single-byte WinAnsi (CP1252)
//! encoding, which every PDF reader maps to Unicode without a table of its own. Text is
//! therefore encoded here, once, to WinAnsi bytes: "°", "µ", "–" and "×" have their own code, a few common
//! characters outside the set get a look-alike ("−" → "-", "≤" → "<=", Greek mu → "µ"),
//! and anything else becomes "?", so nothing is silently dropped or garbled.

/// The font faces the PDF uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Face {
    Regular,
    Bold,
}

/// DejaVu Sans Condensed ascender as a fraction of the font size (checked against the font).
pub(crate) const ASCENT: f32 = 0.928;
/// DejaVu Sans Condensed descender (positive) as a fraction of the font size.
pub(crate) const DESCENT: f32 = 0.236;

/// WinAnsi code points 0x80..=0x9F, which differ from Latin-1.
const WINANSI_HIGH: [(char, u8); 27] = [
    ('\u{20AC}', 0x80),
    ('\u{201A}', 0x82),
    ('\u{0192}', 0x83),
    ('\u{201E}', 0x84),
    ('\u{2026}', 0x85),
    ('\u{2020}', 0x86),
    ('\u{2021}', 0x87),
    ('\u{02C6}', 0x88),
    ('\u{2030}', 0x89),
    ('\u{0160}', 0x8A),
    ('\u{2039}', 0x8B),
    ('\u{0152}', 0x8C),
    ('\u{017D}', 0x8E),
    ('\u{2018}', 0x91),
    ('\u{2019}', 0x92),
    ('\u{201C}', 0x93),
    ('\u{201D}', 0x94),
    ('\u{2022}', 0x95),
    ('\u{2013}', 0x96),
    ('\u{2014}', 0x97),
    ('\u{02DC}', 0x98),
    ('\u{2122}', 0x99),
    ('\u{0161}', 0x9A),
    ('\u{203A}', 0x9B),
    ('\u{0153}', 0x9C),
    ('\u{017E}', 0x9E),
    ('\u{0178}', 0x9F),
];

/// The WinAnsi byte for `c`, if the encoding has it.
fn winansi_byte(c: char) -> Option<u8> {
    match u32::from(c) {
        code @ (0x20..=0x7E | 0xA0..=0xFF) => u8::try_from(code).ok(),
        _ => WINANSI_HIGH.iter().find(|(ch, _)| *ch == c).map(|(_, byte)| *byte),
    }
}

/// A stand-in for a character WinAnsi lacks; "?" when there is no sensible one.
fn substitute(c: char) -> &'static str {
    match c {
        '\t' | '\n' | '\r' => " ",
        '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' => " ",
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => "",
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2212}' => "-",
        '\u{2015}' => "\u{2014}",
        '\u{03BC}' => "\u{00B5}",
        '\u{2103}' => "\u{00B0}C",
        '\u{2264}' => "<=",
        '\u{2265}' => ">=",
        '\u{2260}' => "!=",
        '\u{2248}' => "~",
        '\u{2190}' => "<-",
        '\u{2192}' => "->",
        '\u{2194}' => "<->",
        '\u{2032}' => "'",
        '\u{2033}' => "\"",
        '\u{2044}' | '\u{2215}' => "/",
        '\u{2713}' | '\u{2714}' => "v",
        '\u{2717}' | '\u{2718}' => "x",
        _ => "?",
    }
}

/// The character WinAnsi `code` stands for, if it is assigned.
pub(crate) fn winansi_char(code: u8) -> Option<char> {
    match code {
        0x20..=0x7E | 0xA0..=0xFF => Some(char::from(code)),
        _ => WINANSI_HIGH.iter().find(|(_, b)| *b == code).map(|(c, _)| *c),
    }
}

/// `text` as WinAnsi bytes for the PDF's font; see the module docs for substitutions.
pub(crate) fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match winansi_byte(c) {
            Some(byte) => out.push(byte),
            None => out.extend(substitute(c).chars().filter_map(winansi_byte)),
        }
    }
    out
}

/// The first WinAnsi code in [`advances`].
pub(crate) const FIRST_CODE: u8 = 32;

/// Advance widths in 1/1000 em of WinAnsi codes `FIRST_CODE..=255` in `face`.
pub(crate) fn advances(face: Face) -> &'static [u16; 224] {
    &super::font::metrics(face).advances
}

/// Width in points of WinAnsi `bytes` set in `face` at `size` points.
pub(crate) fn width(bytes: &[u8], face: Face, size: f32) -> f32 {
    let table = advances(face);
    let units: u32 = bytes
        .iter()
        .map(|&b| {
            usize::from(b)
                .checked_sub(usize::from(FIRST_CODE))
                .and_then(|i| table.get(i))
                .map_or(0, |&w| u32::from(w))
        })
        .sum();
    units as f32 * size / 1000.0
}

/// Width in points of `text` (any Unicode) as it will be printed.
pub(crate) fn text_width(text: &str, face: Face, size: f32) -> f32 {
    width(&encode(text), face, size)
}

/// `text` wrapped to `max_width` points, as WinAnsi lines.
///
/// Breaks at spaces; a word wider than a line is broken between characters. A `\n`
/// in `text` always starts a new line. Returns at least one (possibly empty) line.
pub(crate) fn wrap(text: &str, face: Face, size: f32, max_width: f32) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for source_line in text.split('\n') {
        wrap_line(&encode(source_line), face, size, max_width, &mut lines);
    }
    if lines.is_empty() {
        lines.push(Vec::new());
    }
    lines
}

fn wrap_line(bytes: &[u8], face: Face, size: f32, max_width: f32, out: &mut Vec<Vec<u8>>) {
    let space = width(b" ", face, size);
    let mut line: Vec<u8> = Vec::new();
    let mut line_width = 0.0;
    for word in bytes.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let word_width = width(word, face, size);
        let sep = if line.is_empty() { 0.0 } else { space };
        if line_width + sep + word_width <= max_width {
            if !line.is_empty() {
                line.push(b' ');
            }
            line.extend_from_slice(word);
            line_width += sep + word_width;
            continue;
        }
        if !line.is_empty() {
            out.push(std::mem::take(&mut line));
        }
        line_width = 0.0;
        // The word starts a fresh line; break it between characters if it is too wide.
        for &b in word {
            let w = width(&[b], face, size);
            if line_width + w > max_width && !line.is_empty() {
                out.push(std::mem::take(&mut line));
                line_width = 0.0;
            }
            line.push(b);
            line_width += w;
        }
    }
    out.push(line);
}

/// `bytes` shortened with "…" to fit `max_width` points.
pub(crate) fn truncate(bytes: &[u8], face: Face, size: f32, max_width: f32) -> Vec<u8> {
    if width(bytes, face, size) <= max_width {
        return bytes.to_vec();
    }
    const ELLIPSIS: u8 = 0x85;
    let budget = max_width - width(&[ELLIPSIS], face, size);
    let mut out = Vec::new();
    let mut used = 0.0;
    for &b in bytes {
        let w = width(&[b], face, size);
        if used + w > budget {
            break;
        }
        out.push(b);
        used += w;
    }
    out.push(ELLIPSIS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_symbols_encode_to_their_winansi_codes() {
        assert_eq!(encode("-196 °C"), b"-196 \xB0C");
        assert_eq!(encode("5 µm × 2 – ok"), b"5 \xB5m \xD7 2 \x96 ok");
        assert_eq!(encode("\u{2212}5 \u{03BC}S \u{2264} 3"), b"-5 \xB5S <= 3");
        assert_eq!(encode("漢"), b"?");
    }

    #[test]
    fn widths_follow_the_embedded_fonts_metrics() {
        // DejaVu Sans Condensed: "A" 615/1000 em, bold 696/1000 em, "°" 450/1000 em.
        assert!((width(b"A", Face::Regular, 10.0) - 6.15).abs() < 1e-4);
        assert!((width(b"A", Face::Bold, 10.0) - 6.96).abs() < 1e-4);
        assert!((text_width("°", Face::Regular, 1000.0) - 450.0).abs() < 1e-3);
        let m = super::super::font::metrics(Face::Regular);
        assert_eq!((ASCENT * 1000.0).round() as i64, m.ascent);
        assert_eq!((DESCENT * 1000.0).round() as i64, -m.descent);
        for code in FIRST_CODE..=255 {
            assert_eq!(
                winansi_char(code).and_then(winansi_byte),
                winansi_char(code).map(|_| code)
            );
        }
    }

    #[test]
    fn wrapping_fills_lines_and_breaks_long_words() {
        let lines = wrap(
            "aaa bbb ccc",
            Face::Regular,
            10.0,
            width(b"aaa bbb", Face::Regular, 10.0),
        );
        assert_eq!(lines, vec![b"aaa bbb".to_vec(), b"ccc".to_vec()]);
        let long = "x".repeat(200);
        let lines = wrap(&long, Face::Regular, 10.0, 50.0);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| width(l, Face::Regular, 10.0) <= 50.0));
        assert_eq!(lines.concat().len(), 200);
        assert_eq!(wrap("a\nb", Face::Regular, 10.0, 500.0).len(), 2);
    }

    #[test]
    fn truncation_ends_in_an_ellipsis_within_the_width() {
        let t = truncate(&encode(&"word ".repeat(50)), Face::Regular, 8.0, 100.0);
        assert!(width(&t, Face::Regular, 8.0) <= 100.0);
        assert_eq!(t.last(), Some(&0x85));
    }
}
