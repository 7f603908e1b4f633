//! InfluxDB 2.x line protocol, written by hand because the escaping must be exact: one
//! line the server cannot parse refuses the whole request.
//!
//! `measurement[,tag=value...] field=value[,field=value...] timestamp`, where
//! - measurement: `,` and space are escaped with a backslash;
//! - tag keys, tag values and field keys: `,`, `=` and space are escaped;
//! - string field values are quoted; `"` and `\` inside are escaped;
//! - a backslash anywhere is written `\\`, which InfluxDB reads as one backslash (so a
//!   name ending in a backslash cannot escape the delimiter after it);
//! - a newline ends a line and cannot be escaped: control characters (newline, carriage
//!   return, tab, …) are written as a space. `cryowatch check` refuses them in ids and
//!   units, so only free text (an alarm comment) can carry one.
//!
//! Tags and fields are written sorted by key, as InfluxDB prefers. Empty tag values are
//! left out (line protocol has none).

use std::io::Write;

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Float(f64),
    Int(i64),
    Str(String),
}

/// One point: measurement, tags, fields and a timestamp in the write's precision.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    measurement: &'static str,
    tags: Vec<(&'static str, String)>,
    fields: Vec<(&'static str, Field)>,
    time: i64,
}

impl Point {
    pub fn new(measurement: &'static str, time: i64) -> Point {
        Point {
            measurement,
            tags: Vec::new(),
            fields: Vec::new(),
            time,
        }
    }

    /// Adds a tag; an empty value is left out.
    pub fn tag(mut self, key: &'static str, value: &str) -> Point {
        if !value.is_empty() {
            self.tags.push((key, value.to_string()));
        }
        self
    }

    /// Adds a float field; a value that is not finite is left out (line protocol has no
    /// NaN or infinity).
    pub fn float(mut self, key: &'static str, value: f64) -> Point {
        if value.is_finite() {
            self.fields.push((key, Field::Float(value)));
        }
        self
    }

    pub fn int(mut self, key: &'static str, value: i64) -> Point {
        self.fields.push((key, Field::Int(value)));
        self
    }

    pub fn string(mut self, key: &'static str, value: &str) -> Point {
        self.fields.push((key, Field::Str(value.to_string())));
        self
    }

    /// Appends the point as one line (with its newline) to `out`. A point without
    /// fields writes nothing: line protocol needs at least one.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if self.fields.is_empty() {
            return;
        }
        escape(self.measurement, &[',', ' '], out);
        let mut tags: Vec<&(&str, String)> = self.tags.iter().collect();
        tags.sort_by_key(|(k, _)| *k);
        for (k, v) in tags {
            out.push(b',');
            escape(k, KEY, out);
            out.push(b'=');
            escape(v, KEY, out);
        }
        let mut fields: Vec<&(&str, Field)> = self.fields.iter().collect();
        fields.sort_by_key(|(k, _)| *k);
        for (i, (k, v)) in fields.into_iter().enumerate() {
            out.push(if i == 0 { b' ' } else { b',' });
            escape(k, KEY, out);
            out.push(b'=');
            match v {
                // Writing into a Vec cannot fail.
                Field::Float(f) => {
                    let _ = write!(out, "{f}");
                }
                Field::Int(n) => {
                    let _ = write!(out, "{n}i");
                }
                Field::Str(s) => {
                    out.push(b'"');
                    escape(s, &['"'], out);
                    out.push(b'"');
                }
            }
        }
        let _ = writeln!(out, " {}", self.time);
    }
}

/// What is escaped in tag keys, tag values and field keys (besides the backslash).
const KEY: &[char] = &[',', '=', ' '];

/// Writes `s` with every character of `special` and every backslash escaped, and
/// control characters as a space (escaped too when a space is special).
fn escape(s: &str, special: &[char], out: &mut Vec<u8>) {
    let mut buf = [0u8; 4];
    for ch in s.chars() {
        let ch = if ch.is_control() { ' ' } else { ch };
        if ch == '\\' || special.contains(&ch) {
            out.push(b'\\');
        }
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
}

/// Serialises points to line protocol, one per line.
pub fn encode(points: &[Point], out: &mut Vec<u8>) {
    for p in points {
        p.write_to(out);
    }
}

/// The point's line, for tests.
#[cfg(test)]
pub fn line(p: &Point) -> String {
    let mut out = Vec::new();
    p.write_to(&mut out);
    String::from_utf8(out).expect("line protocol is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_escapes_comma_and_space() {
        let mut out = Vec::new();
        escape("a b,c=d", &[',', ' '], &mut out);
        assert_eq!(String::from_utf8(out).expect("utf-8"), r"a\ b\,c=d");
    }

    #[test]
    fn tag_keys_values_and_field_keys_escape_comma_equals_and_space() {
        let p = Point::new("m", 1).tag("sensor", "a b,c=d").int("n", 1);
        assert_eq!(line(&p), "m,sensor=a\\ b\\,c\\=d n=1i 1\n");
    }

    #[test]
    fn a_trailing_backslash_cannot_escape_the_delimiter_after_it() {
        let p = Point::new("m", 1)
            .tag("sensor", r"probe\")
            .tag("unit", r"a\,b")
            .float("v", 1.5);
        assert_eq!(line(&p), "m,sensor=probe\\\\,unit=a\\\\\\,b v=1.5 1\n");
    }

    #[test]
    fn string_fields_escape_double_quote_and_backslash_only() {
        let p = Point::new("m", 1).string("comment", r#"lid "closed", a=b \"#);
        assert_eq!(line(&p), "m comment=\"lid \\\"closed\\\", a=b \\\\\" 1\n");
    }

    #[test]
    fn newlines_and_other_control_characters_become_spaces() {
        let p = Point::new("m", 1)
            .tag("sensor", "a\nb")
            .string("comment", "one\r\ntwo\tthree");
        assert_eq!(line(&p), "m,sensor=a\\ b comment=\"one  two three\" 1\n");
    }

    #[test]
    fn tags_and_fields_are_sorted_and_empty_tags_and_non_finite_floats_left_out() {
        let p = Point::new("m", 7)
            .tag("z", "1")
            .tag("a", "")
            .tag("b", "2")
            .float("value", f64::NAN)
            .string("quality", "good")
            .int("alarm", 3);
        assert_eq!(line(&p), "m,b=2,z=1 alarm=3i,quality=\"good\" 7\n");
    }

    #[test]
    fn a_point_without_fields_writes_nothing() {
        assert_eq!(line(&Point::new("m", 1).tag("a", "b").float("v", f64::INFINITY)), "");
    }
}
