//! Writes the laid-out pages as a PDF with printpdf.
//!
//! printpdf writes the pages with two stand-in fonts (its built-in Helvetica and
//! Helvetica-Bold); the layout has already encoded every string to WinAnsi bytes, so
//! they go into the content stream as they are. A last pass with lopdf replaces the
//! stand-ins with the embedded DejaVu Sans Condensed (`font`), sets the document information and
//! compresses the pages (see `finish`). Nothing is read from disk, and nothing but the
//! document decides the bytes: no clock, no random file identifier.
//!
//! The file claims no PDF/A conformance, because it does not conform. printpdf 0.7 names
//! `PdfConformance::A2B_2011_PDF_1_7`, but what it writes for it is PDF/X's: an XMP
//! packet without `pdfaid:part`/`pdfaid:conformance` and with dates in the document
//! information's format instead of XMP's, and an output intent `/S /GTS_PDFX` with one
//! of the two profiles it bundles, Coated FOGRA39 and ISO Coated v2, both CMYK, while
//! every colour here is DeviceRGB, which PDF/A allows only beside an RGB output intent.
//! PDF/A-2b would also need the binary comment after the header (lopdf writes none) and
//! a `/Name` in the optional content configuration printpdf writes. Claiming it takes
//! an sRGB ICC profile shipped with the program (or every colour rewritten as
//! DeviceCMYK or DeviceGray against FOGRA39), an XMP packet written here that matches
//! the document information, the output intent's `/S` set to `/GTS_PDFA1`, those two
//! fixes, and a validator (veraPDF) in the tests to prove the claim.

use printpdf::lopdf::{self, Object, StringFormat, content::Operation};
use printpdf::{BuiltinFont, IndirectFontRef, Mm, PdfDocument, PdfLayerReference};

use super::font;
use super::layout::{self, Op, Rgb};
use super::text::Face;
use super::{Document, RenderError};

const A4_WIDTH: Mm = Mm(210.0);
const A4_HEIGHT: Mm = Mm(297.0);
const LAYER: &str = "content";

/// Renders `doc` as an A4 portrait PDF.
pub fn render_pdf(doc: &Document) -> Result<Vec<u8>, RenderError> {
    let pages = layout::layout(doc)?;
    let (pdf, first_page, first_layer) = PdfDocument::new("", A4_WIDTH, A4_HEIGHT, LAYER);
    let fonts = Fonts {
        regular: pdf.add_builtin_font(BuiltinFont::Helvetica).map_err(pdf_error)?,
        bold: pdf.add_builtin_font(BuiltinFont::HelveticaBold).map_err(pdf_error)?,
    };
    for (i, ops) in pages.iter().enumerate() {
        let (page, layer) = if i == 0 {
            (first_page, first_layer)
        } else {
            pdf.add_page(A4_WIDTH, A4_HEIGHT, LAYER)
        };
        let layer = pdf.get_page(page).get_layer(layer);
        Writer {
            layer,
            fonts: &fonts,
            stroke: None,
            fill: None,
            width: None,
        }
        .ops(ops);
    }
    let bytes = pdf.save_to_bytes().map_err(pdf_error)?;
    finish(&bytes, &doc.title).map_err(pdf_error)
}

fn pdf_error(e: impl std::fmt::Display) -> RenderError {
    RenderError::Pdf(e.to_string())
}

struct Fonts {
    regular: IndirectFontRef,
    bold: IndirectFontRef,
}

/// Writes operations to one page, setting colours and widths only when they change.
struct Writer<'a> {
    layer: PdfLayerReference,
    fonts: &'a Fonts,
    stroke: Option<Rgb>,
    fill: Option<Rgb>,
    width: Option<f32>,
}

impl Writer<'_> {
    fn ops(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    face,
                    color,
                    angle,
                    bytes,
                } => {
                    self.text(*x, *y, *size, *face, *color, *angle, bytes);
                }
                Op::Stroke {
                    points,
                    width,
                    color,
                    closed,
                } => {
                    if self.width != Some(*width) {
                        self.op("w", vec![num(*width)]);
                        self.width = Some(*width);
                    }
                    if self.stroke != Some(*color) {
                        self.op("RG", rgb(*color));
                        self.stroke = Some(*color);
                    }
                    self.path(points, *closed);
                    self.op("S", vec![]);
                }
                Op::Fill { points, color } => {
                    self.set_fill(*color);
                    self.path(points, true);
                    self.op("f", vec![]);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn text(&mut self, x: f32, y: f32, size: f32, face: Face, color: Rgb, angle: f32, bytes: &[u8]) {
        let font = match face {
            Face::Regular => &self.fonts.regular,
            Face::Bold => &self.fonts.bold,
        };
        let (sin, cos) = angle.to_radians().sin_cos();
        self.set_fill(color);
        self.op("BT", vec![]);
        self.layer.set_font(font, size);
        self.op("Tm", vec![num(cos), num(sin), num(-sin), num(cos), num(x), num(y)]);
        self.op("Tj", vec![Object::String(bytes.to_vec(), StringFormat::Literal)]);
        self.op("ET", vec![]);
    }

    fn set_fill(&mut self, color: Rgb) {
        if self.fill != Some(color) {
            self.op("rg", rgb(color));
            self.fill = Some(color);
        }
    }

    fn path(&self, points: &[(f32, f32)], closed: bool) {
        for (i, &(x, y)) in points.iter().enumerate() {
            self.op(if i == 0 { "m" } else { "l" }, vec![num(x), num(y)]);
        }
        if closed {
            self.op("h", vec![]);
        }
    }

    fn op(&self, operator: &str, operands: Vec<Object>) {
        self.layer.add_operation(Operation::new(operator, operands));
    }
}

/// A number rounded to 1/100 pt, which keeps the content streams short.
fn num(v: f32) -> Object {
    Object::Real((v * 100.0).round() / 100.0)
}

fn rgb((r, g, b): Rgb) -> Vec<Object> {
    vec![num(r), num(g), num(b)]
}

/// Rewrites what printpdf 0.7 cannot be told: its document information carries the
/// title as raw UTF-8 (garbled for anything but ASCII), an empty PDF/X version key and
/// the clock's time, its file identifier is random, its fonts are the standard 14 (not
/// embedded: each viewer substitutes its own), and it leaves page content uncompressed.
///
/// The file is a function of the document alone: no clock, no random identifier (its
/// `/ID` is a digest of the title and the pages), so the same report renders to the
/// same bytes. When it was generated is printed in the report itself.
fn finish(bytes: &[u8], title: &str) -> Result<Vec<u8>, lopdf::Error> {
    let mut doc = lopdf::Document::load_mem(bytes)?;
    let id = content_id(&doc, title)?;
    doc.trailer.set(
        "ID",
        Object::Array(vec![
            Object::String(id.clone(), StringFormat::Hexadecimal),
            Object::String(id, StringFormat::Hexadecimal),
        ]),
    );
    let stand_ins: Vec<_> = doc
        .objects
        .iter()
        .filter_map(
            |(id, object)| match object.as_dict().ok()?.get(b"BaseFont").and_then(Object::as_name) {
                Ok(b"Helvetica") => Some((*id, Face::Regular)),
                Ok(b"Helvetica-Bold") => Some((*id, Face::Bold)),
                _ => None,
            },
        )
        .collect();
    for (id, face) in stand_ins {
        font::embed(&mut doc, id, face)?;
    }
    let info = doc.trailer.get(b"Info").and_then(Object::as_reference)?;
    let info = doc.get_object_mut(info).and_then(Object::as_dict_mut)?;
    for key in [&b"GTS_PDFXVersion"[..], b"CreationDate", b"ModDate", b"Trapped"] {
        info.remove(key);
    }
    info.set("Title", Object::String(text_string(title), StringFormat::Hexadecimal));
    info.set("Producer", Object::string_literal("cryowatch"));
    info.set("Creator", Object::string_literal("cryowatch"));
    doc.compress();
    let mut out = Vec::with_capacity(bytes.len() / 2);
    doc.save_to(&mut out)?;
    Ok(out)
}

/// The file identifier: the first 16 bytes of the SHA-256 of the title and of each
/// page's content, in page order.
fn content_id(doc: &lopdf::Document, title: &str) -> Result<Vec<u8>, lopdf::Error> {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    digest.update(title.as_bytes());
    for page in doc.get_pages().into_values() {
        let content = doc.get_page_content(page)?;
        digest.update((content.len() as u64).to_be_bytes());
        digest.update(&content);
    }
    Ok(digest.finalize().get(..16).unwrap_or_default().to_vec())
}

/// A PDF text string for any Unicode: UTF-16BE behind a byte order mark.
fn text_string(s: &str) -> Vec<u8> {
    let mut out = vec![0xFE, 0xFF];
    out.extend(s.encode_utf16().flat_map(u16::to_be_bytes));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::render::Block;

    #[test]
    fn text_goes_into_the_page_as_winansi_bytes_of_an_embedded_font() {
        let doc = Document {
            title: "Zürich – Dewar 3".into(),
            subtitle: None,
            blocks: vec![Block::Paragraph("-196 °C, 5 µm × 2".into())],
            footer: String::new(),
        };
        let pdf = render_pdf(&doc).expect("renders");
        let parsed = lopdf::Document::load_mem(&pdf).expect("parses");
        let page = parsed.get_pages().into_values().next().expect("one page");
        let content = parsed.get_page_content(page).expect("page content");
        let needle = b"(-196 \xB0C, 5 \xB5m \xD7 2) Tj";
        assert!(
            content.windows(needle.len()).any(|w| w == needle),
            "WinAnsi text not found"
        );

        let info = parsed
            .trailer
            .get(b"Info")
            .and_then(Object::as_reference)
            .expect("info");
        let info = parsed.get_dictionary(info).expect("info dictionary");
        let title = info.get(b"Title").and_then(Object::as_str).expect("title");
        assert_eq!(title, text_string("Zürich – Dewar 3").as_slice());
        for key in [&b"GTS_PDFXVersion"[..], b"CreationDate", b"ModDate", b"Trapped"] {
            assert!(info.get(key).is_err(), "{}", String::from_utf8_lossy(key));
        }

        let fonts: Vec<_> = parsed
            .objects
            .values()
            .filter_map(|o| o.as_dict().ok())
            .filter(|d| d.get(b"Type").and_then(Object::as_name).ok() == Some(b"Font"))
            .collect();
        assert_eq!(fonts.len(), 2);
        for f in fonts {
            assert_eq!(f.get(b"Subtype").and_then(Object::as_name).ok(), Some(&b"TrueType"[..]));
            let descriptor = f
                .get(b"FontDescriptor")
                .and_then(Object::as_reference)
                .and_then(|r| parsed.get_dictionary(r))
                .expect("descriptor");
            assert!(descriptor.get(b"FontFile2").is_ok(), "font program embedded");
        }
        let bold = parsed
            .objects
            .values()
            .filter_map(|o| o.as_dict().ok())
            .find(|d| d.get(b"BaseFont").and_then(Object::as_name).ok() == Some(b"CRYWAB+DejaVuSansCondensed-Bold"))
            .expect("bold face");
        let widths = bold.get(b"Widths").and_then(Object::as_array).expect("widths");
        // "A" is 696/1000 em in DejaVu Sans Condensed Bold.
        assert_eq!(
            widths.get(usize::from(b'A' - 32)).and_then(|w| w.as_i64().ok()),
            Some(696)
        );
    }

    #[test]
    fn the_same_document_renders_to_the_same_bytes_and_another_to_another_id() {
        let doc = |text: &str| Document {
            title: "Dewar 3".into(),
            subtitle: None,
            blocks: vec![Block::Paragraph(text.into())],
            footer: String::new(),
        };
        let first = render_pdf(&doc("-196 °C")).expect("renders");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(
            first == render_pdf(&doc("-196 °C")).expect("renders again"),
            "the bytes differ"
        );
        let id = |pdf: &[u8]| {
            let parsed = lopdf::Document::load_mem(pdf).expect("parses");
            let ids = parsed.trailer.get(b"ID").and_then(Object::as_array).expect("an /ID");
            let ids: Vec<Vec<u8>> = ids.iter().map(|i| i.as_str().expect("a string").to_vec()).collect();
            assert_eq!(ids.len(), 2);
            assert_eq!(ids[0].len(), 16);
            ids
        };
        assert_ne!(id(&first), id(&render_pdf(&doc("-150 °C")).expect("renders")));
    }
}
