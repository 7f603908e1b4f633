//! The GSM 7-bit default alphabet (3GPP TS 23.038, 6.2.1) as the modem's character set
//! `AT+CSCS="GSM"` expects it: one byte per septet, so `@` is 0x00 and `_` is 0x11.
//!
//! Text going out is first made sendable with [`to_gsm7`]: characters of the default
//! alphabet pass unchanged; everything else is transliterated (`°` → `deg`, `–` → `-`,
//! `[` → `(`, `€` → `EUR`, `á` → `a`, …) or becomes `?`. Characters of the extension
//! table (`[ ] { } \ ^ ~ | €`) are transliterated too: they need the ESC byte, and ESC
//! cancels text entry on most modems. `Ξ` (0x1A, Ctrl-Z) is excluded for the same
//! reason, and CR becomes LF (a CR inside the text makes many modems print a new prompt).
//! After [`to_gsm7`] every character is exactly one septet, so splitting counts chars.

/// The default alphabet, indexed by code. 0x1B is the escape to the extension table.
const DEFAULT: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table: (code after ESC, character). Only decoded, never sent.
const EXTENSION: [(u8, char); 10] = [
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

/// Longest text of one SMS in septets.
pub const SMS_MAX: usize = 160;
/// Most parts one message is split into; text beyond them is cut and ends with `...`.
pub const MAX_PARTS: usize = 5;
/// `(k/n) ` with single-digit k and n (MAX_PARTS < 10).
const PART_PREFIX: usize = 6;
const _: () = assert!(MAX_PARTS < 10);

/// The septet code of `c` if it can be sent as is in text mode.
fn code(c: char) -> Option<u8> {
    if matches!(c, '\u{1b}' | 'Ξ' | '\r') {
        return None;
    }
    DEFAULT.chars().position(|d| d == c).and_then(|p| u8::try_from(p).ok())
}

/// What to send instead of a character outside the sendable default alphabet.
fn replacement(c: char) -> &'static str {
    match c {
        '°' | '˚' => "deg",
        '\r' | '\u{2028}' | '\u{2029}' => "\n",
        '\t' | '\u{a0}' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}' => " ",
        '[' | '{' => "(",
        ']' | '}' => ")",
        '\\' | '|' | '÷' | '⁄' => "/",
        '~' | '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' => "-",
        '^' | '`' | '´' | '‘' | '’' | '‚' | '′' => "'",
        '“' | '”' | '„' | '″' | '«' | '»' => "\"",
        '€' => "EUR",
        '…' => "...",
        '±' => "+/-",
        '×' => "x",
        '·' | '•' => "*",
        'µ' | 'μ' => "u",
        '²' => "2",
        '³' => "3",
        '≤' => "<=",
        '≥' => ">=",
        '≠' => "!=",
        '→' => "->",
        '←' => "<-",
        'Ξ' => "X",
        'À' | 'Á' | 'Â' | 'Ã' | 'Ā' | 'Ą' => "A",
        'á' | 'â' | 'ã' | 'ā' | 'ą' => "a",
        'Ç' | 'Ć' | 'Č' => "C",
        'ç' | 'ć' | 'č' => "c",
        'Ď' => "D",
        'ď' => "d",
        'È' | 'Ê' | 'Ë' | 'Ē' | 'Ę' | 'Ě' => "E",
        'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'Ì' | 'Í' | 'Î' | 'Ï' => "I",
        'í' | 'î' | 'ï' | 'ı' => "i",
        'Ł' => "L",
        'ł' => "l",
        'Ń' | 'Ň' => "N",
        'ń' | 'ň' => "n",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ő' => "O",
        'ó' | 'ô' | 'õ' | 'ő' => "o",
        'Œ' => "OE",
        'œ' => "oe",
        'Ř' => "R",
        'ř' => "r",
        'Ś' | 'Š' => "S",
        'ś' | 'š' => "s",
        'Ť' => "T",
        'ť' => "t",
        'Ù' | 'Ú' | 'Û' | 'Ů' | 'Ű' => "U",
        'ú' | 'û' | 'ů' | 'ű' => "u",
        'Ý' | 'Ÿ' => "Y",
        'ý' | 'ÿ' => "y",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ź' | 'ż' | 'ž' => "z",
        c if c.is_control() => "",
        _ => "?",
    }
}

/// `text` with every character made sendable (see the module docs). CRLF becomes LF.
pub fn to_gsm7(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        match code(c) {
            Some(_) => out.push(c),
            None => out.push_str(replacement(c)),
        }
    }
    out
}

/// The bytes to write for `text` after [`to_gsm7`] (anything else becomes `?`).
pub fn encode(text: &str) -> Vec<u8> {
    text.chars().map(|c| code(c).unwrap_or(b'?')).collect()
}

/// Text the modem reports in the GSM character set (received messages), including
/// extension-table escapes. Bytes above 0x7F are not GSM: they are taken as Latin-1.
pub fn decode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut iter = bytes.iter().copied();
    while let Some(b) = iter.next() {
        if b == 0x1B {
            match iter.next() {
                Some(e) => out.push(EXTENSION.iter().find(|(x, _)| *x == e).map_or(' ', |(_, c)| *c)),
                None => out.push(' '),
            }
        } else if b < 0x80 {
            out.push(DEFAULT.chars().nth(usize::from(b)).unwrap_or('?'));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Splits sendable text (after [`to_gsm7`]) into SMS parts of at most [`SMS_MAX`]
/// septets. Text that fits is one part, unchanged. Longer text becomes parts numbered
/// `(1/3) `, `(2/3) `, … cut at the last space or newline of each part when one lies
/// in its second half, at most [`MAX_PARTS`] parts (the last one then ends with `...`).
/// These are separate messages, not a concatenated (UDH) one: every phone shows them,
/// in whatever order the network delivers them, and the numbers let a reader sort them.
pub fn split(text: &str) -> Vec<String> {
    let text = text.trim_end();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= SMS_MAX {
        return vec![text.to_string()];
    }
    let budget = SMS_MAX - PART_PREFIX;
    let mut parts: Vec<String> = Vec::new();
    let mut rest: &[char] = &chars;
    while !rest.is_empty() {
        if rest.len() <= budget {
            parts.push(rest.iter().collect());
            break;
        }
        if parts.len() + 1 == MAX_PARTS {
            let kept: String = rest[..budget - 3].iter().collect();
            parts.push(kept.trim_end().to_string() + "...");
            break;
        }
        let cut = rest[..=budget]
            .iter()
            .rposition(|c| c.is_whitespace())
            .filter(|&i| i >= budget / 2);
        let (part, next) = match cut {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (&rest[..budget], &rest[budget..]),
        };
        parts.push(part.iter().collect::<String>().trim_end().to_string());
        let skip = next.iter().take_while(|c| c.is_whitespace()).count();
        rest = &next[skip..];
    }
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| format!("({}/{n}) {p}", i + 1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_alphabet_has_128_codes() {
        assert_eq!(DEFAULT.chars().count(), 128);
        assert_eq!(code('@'), Some(0x00));
        assert_eq!(code('$'), Some(0x02));
        assert_eq!(code('_'), Some(0x11));
        assert_eq!(code('A'), Some(0x41));
        assert_eq!(code('à'), Some(0x7F));
    }

    #[test]
    fn ascii_letters_digits_and_most_punctuation_pass_unchanged() {
        let s = "Dewar dewar-1: -142.3 C (limit -150). Reply ACK 4711 #2 50% ok? a+b=c; x<y>z 'q' \"d\" &*!/,:";
        assert_eq!(to_gsm7(s), s);
        assert_eq!(encode(s), s.as_bytes());
    }

    #[test]
    fn characters_that_differ_from_ascii_are_encoded_by_their_gsm_code() {
        assert_eq!(encode("a@b$c_d"), vec![b'a', 0x00, b'b', 0x02, b'c', 0x11, b'd']);
        assert_eq!(decode(&encode("Zürich £5 é Δ")), "Zürich £5 é Δ");
    }

    #[test]
    fn degree_signs_dashes_quotes_and_accents_are_transliterated() {
        assert_eq!(to_gsm7("−142.3 °C ≥ −150 °C"), "-142.3 degC >= -150 degC");
        assert_eq!(
            to_gsm7("Müller – „Tür“ [B1] {x} ~5 € 10 ^ a|b \\"),
            "Müller - \"Tür\" (B1) (x) -5 EUR 10 ' a/b /"
        );
        assert_eq!(to_gsm7("São José, Kraków, Dvořák"), "Sao José, Krakow, Dvorak");
        assert_eq!(to_gsm7("ok 👍"), "ok ?");
    }

    #[test]
    fn control_bytes_that_would_end_or_cancel_text_entry_are_never_sent() {
        let out = encode(&to_gsm7("a\u{1a}b\u{1b}c\rd\r\ne\tfΞ"));
        assert!(
            !out.contains(&0x1A) && !out.contains(&0x1B) && !out.contains(&b'\r'),
            "{out:?}"
        );
        assert_eq!(decode(&out), "abc\nd\ne fX");
    }

    #[test]
    fn extension_escapes_are_decoded() {
        assert_eq!(decode(b"\x1b\x3cA\x1b\x3e \x1b\x65 \x1b\x28\x1b\x29"), "[A] € {}");
    }

    #[test]
    fn a_message_that_fits_is_one_unnumbered_part() {
        let text = "x".repeat(160);
        assert_eq!(split(&text), vec![text.clone()]);
        assert_eq!(split("short\n"), vec!["short".to_string()]);
    }

    #[test]
    fn a_long_message_is_split_at_spaces_into_numbered_parts() {
        let words: Vec<String> = (0..60).map(|i| format!("word{i:02}")).collect();
        let text = words.join(" ");
        let parts = split(&text);
        assert_eq!(parts.len(), 3, "{parts:#?}");
        for (i, p) in parts.iter().enumerate() {
            assert!(p.chars().count() <= SMS_MAX, "{p}");
            assert!(p.starts_with(&format!("({}/3) ", i + 1)), "{p}");
            assert!(!p.ends_with(' '));
        }
        let joined: Vec<&str> = parts.iter().map(|p| &p[6..]).collect();
        assert_eq!(joined.join(" "), text);
    }

    #[test]
    fn a_long_word_is_cut_hard() {
        let text = "y".repeat(400);
        let parts = split(&text);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].chars().count(), 160);
        let joined: String = parts.iter().map(|p| &p[6..]).collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn a_very_long_message_is_cut_after_the_last_part() {
        let text = "z ".repeat(1000);
        let parts = split(&text);
        assert_eq!(parts.len(), MAX_PARTS);
        assert!(parts[MAX_PARTS - 1].ends_with("..."));
        assert!(parts.iter().all(|p| p.chars().count() <= SMS_MAX));
    }
}
