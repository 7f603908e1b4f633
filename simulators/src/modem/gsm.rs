//! The GSM 7-bit default alphabet (3GPP TS 23.038) as `AT+CSCS="GSM"` carries it: one
//! byte per septet, extension characters escaped with ESC.
//!
//! Written from the standard apart from the daemon's own table
//! (`cryowatch::notify::modem::gsm7`) on purpose: the fake modem checks what the daemon
//! sends, and a table both shared would let one mistake pass both sides unseen.

use super::ESC;

/// The GSM 7-bit default alphabet (3GPP TS 23.038), indexed by code; 0x1B escapes.
const GSM: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table: code after ESC, character.
const GSM_EXT: [(u8, char); 10] = [
    (0x0A, '\u{c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// GSM bytes (one per septet) to text.
pub fn gsm_decode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut it = bytes.iter();
    while let Some(&b) = it.next() {
        let c = if b == ESC {
            it.next()
                .and_then(|e| GSM_EXT.iter().find(|(x, _)| x == e))
                .map_or(' ', |(_, c)| *c)
        } else {
            GSM.chars().nth(usize::from(b)).unwrap_or('?')
        };
        out.push(c);
    }
    out
}

/// Text to GSM bytes, extension characters escaped, unknown characters as `?`.
pub fn gsm_encode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in text.chars() {
        if let Some(p) = GSM.chars().position(|g| g == c).filter(|&p| p != 0x1B) {
            out.push(p as u8);
        } else if let Some((e, _)) = GSM_EXT.iter().find(|(_, x)| *x == c) {
            out.extend([ESC, *e]);
        } else {
            out.push(b'?');
        }
    }
    out
}
