//! Lays a [`Document`] out on A4 pages as positioned drawing operations.
//!
//! Coordinates are PDF points with the origin at the bottom left of the page. Blocks
//! flow down the page and break onto the next one: paragraphs between lines, tables
//! between rows (repeating the header, and splitting a row taller than a page between
//! its lines), headings stay with what follows, a chart moves whole. The footer with
//! "page N of M" is added once the page count is known.

mod grid;

use super::text::{self, ASCENT, DESCENT, Face};
use super::{Block, Chart, Document, RenderError, pdf_chart};

/// An RGB colour, each channel 0..=1.
pub(crate) type Rgb = (f32, f32, f32);

/// One drawing operation on a page.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// WinAnsi `bytes` with the baseline starting at `(x, y)`, turned `angle` degrees
    /// counter-clockwise.
    Text {
        x: f32,
        y: f32,
        size: f32,
        face: Face,
        color: Rgb,
        angle: f32,
        bytes: Vec<u8>,
    },
    Stroke {
        points: Vec<(f32, f32)>,
        width: f32,
        color: Rgb,
        closed: bool,
    },
    Fill {
        points: Vec<(f32, f32)>,
        color: Rgb,
    },
}

pub(crate) type Page = Vec<Op>;

pub(crate) const PAGE_WIDTH: f32 = 595.28;
pub(crate) const PAGE_HEIGHT: f32 = 841.89;
const MARGIN_X: f32 = 56.7;
const MARGIN_TOP: f32 = 56.7;
const MARGIN_BOTTOM: f32 = 62.0;
const FOOTER_BASELINE: f32 = 34.0;
const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN_X;
const TOP: f32 = PAGE_HEIGHT - MARGIN_TOP;
const CHART_HEIGHT: f32 = 250.0;

const INK: Rgb = (0.1, 0.1, 0.12);
const MUTED: Rgb = (0.38, 0.38, 0.42);
const RULE: Rgb = (0.78, 0.78, 0.8);
const HEADER_FILL: Rgb = (0.9, 0.91, 0.93);
const ZEBRA: Rgb = (0.965, 0.968, 0.975);
const PASS: (Rgb, Rgb) = ((0.09, 0.45, 0.2), (0.9, 0.96, 0.91));
const FAIL: (Rgb, Rgb) = ((0.72, 0.11, 0.11), (0.99, 0.91, 0.91));

const BODY: Style = Style {
    size: 10.0,
    leading: 13.5,
    pad_x: 0.0,
    pad_y: 0.0,
};
const TABLE: Style = Style {
    size: 8.5,
    leading: 10.5,
    pad_x: 3.5,
    pad_y: 2.5,
};
const FIELDS: Style = Style {
    size: 10.0,
    leading: 13.0,
    pad_x: 0.0,
    pad_y: 1.5,
};

#[derive(Clone, Copy)]
struct Style {
    size: f32,
    leading: f32,
    pad_x: f32,
    pad_y: f32,
}

/// The pages of `doc`, footers included.
pub(crate) fn layout(doc: &Document) -> Result<Vec<Page>, RenderError> {
    let mut l = Layout {
        done: Vec::new(),
        ops: Vec::new(),
        y: TOP,
    };
    l.title(doc);
    for block in &doc.blocks {
        match block {
            Block::Heading(t) => l.heading(t),
            Block::Paragraph(t) => l.paragraph(t),
            Block::Fields(pairs) => l.fields(pairs),
            Block::Table { headers, rows, widths } => l.table(headers, rows, widths.as_deref()),
            Block::Chart(c) => l.chart(c)?,
            Block::Verdict { ok, text } => l.verdict(*ok, text),
            Block::PageBreak => {
                if !l.fresh() {
                    l.new_page();
                }
            }
        }
    }
    let mut pages = l.done;
    if !l.ops.is_empty() || pages.is_empty() {
        pages.push(l.ops);
    }
    add_footers(&mut pages, &doc.footer);
    Ok(pages)
}

struct Layout {
    done: Vec<Page>,
    ops: Page,
    /// The top of the free space on the current page.
    y: f32,
}

impl Layout {
    fn fresh(&self) -> bool {
        self.y >= TOP - 0.01
    }

    fn room(&self) -> f32 {
        self.y - MARGIN_BOTTOM
    }

    fn new_page(&mut self) {
        self.done.push(std::mem::take(&mut self.ops));
        self.y = TOP;
    }

    /// Moves to a new page unless `height` fits here or this page is still empty.
    fn ensure(&mut self, height: f32) {
        if height > self.room() && !self.fresh() {
            self.new_page();
        }
    }

    fn gap(&mut self, height: f32) {
        if !self.fresh() {
            self.y -= height;
        }
    }

    fn text(&mut self, x: f32, baseline: f32, size: f32, face: Face, color: Rgb, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.ops.push(Op::Text {
                x,
                y: baseline,
                size,
                face,
                color,
                angle: 0.0,
                bytes,
            });
        }
    }

    fn rect(&mut self, x: f32, top: f32, width: f32, height: f32, color: Rgb) {
        let points = vec![(x, top), (x + width, top), (x + width, top - height), (x, top - height)];
        self.ops.push(Op::Fill { points, color });
    }

    fn rule(&mut self, y: f32, width: f32, color: Rgb) {
        let points = vec![(MARGIN_X, y), (MARGIN_X + CONTENT_WIDTH, y)];
        self.ops.push(Op::Stroke {
            points,
            width,
            color,
            closed: false,
        });
    }

    /// Lines of `style` text, breaking onto a new page between lines.
    fn lines(&mut self, lines: Vec<Vec<u8>>, x: f32, style: Style, face: Face, color: Rgb) {
        for line in lines {
            self.ensure(style.leading);
            let baseline = self.y - baseline_offset(style);
            self.text(x, baseline, style.size, face, color, line);
            self.y -= style.leading;
        }
    }

    fn title(&mut self, doc: &Document) {
        let title = Style {
            size: 18.0,
            leading: 22.0,
            ..BODY
        };
        let lines = text::wrap(&doc.title, Face::Bold, title.size, CONTENT_WIDTH);
        self.lines(lines, MARGIN_X, title, Face::Bold, INK);
        if let Some(subtitle) = &doc.subtitle {
            let sub = Style {
                size: 11.0,
                leading: 14.5,
                ..BODY
            };
            self.y -= 2.0;
            let lines = text::wrap(subtitle, Face::Regular, sub.size, CONTENT_WIDTH);
            self.lines(lines, MARGIN_X, sub, Face::Regular, MUTED);
        }
        self.y -= 6.0;
        self.rule(self.y, 0.8, RULE);
        self.y -= 12.0;
    }

    fn heading(&mut self, t: &str) {
        let style = Style {
            size: 13.0,
            leading: 17.0,
            ..BODY
        };
        let lines = text::wrap(t, Face::Bold, style.size, CONTENT_WIDTH);
        // Keep the heading with at least three lines of what follows.
        self.ensure(lines.len() as f32 * style.leading + 10.0 + 3.0 * BODY.leading);
        self.gap(8.0);
        self.lines(lines, MARGIN_X, style, Face::Bold, INK);
        self.y -= 3.0;
    }

    fn paragraph(&mut self, t: &str) {
        let lines = text::wrap(t, Face::Regular, BODY.size, CONTENT_WIDTH);
        self.lines(lines, MARGIN_X, BODY, Face::Regular, INK);
        self.y -= 6.0;
    }

    fn chart(&mut self, c: &Chart) -> Result<(), RenderError> {
        self.ensure(CHART_HEIGHT);
        let ops = pdf_chart::draw(c, MARGIN_X, self.y, CONTENT_WIDTH, CHART_HEIGHT)?;
        self.ops.extend(ops);
        self.y -= CHART_HEIGHT + 10.0;
        Ok(())
    }

    fn verdict(&mut self, ok: bool, t: &str) {
        let style = Style {
            size: 10.5,
            leading: 15.0,
            pad_x: 6.0,
            pad_y: 5.0,
        };
        let (ink, fill) = if ok { PASS } else { FAIL };
        let tag = text::encode(if ok { "PASS" } else { "FAIL" });
        let tag_width = text::width(&tag, Face::Bold, 9.0) + 10.0;
        let text_x = MARGIN_X + style.pad_x + tag_width + 8.0;
        let width = MARGIN_X + CONTENT_WIDTH - style.pad_x - text_x;
        let mut lines = text::wrap(t, Face::Bold, style.size, width);
        let max_lines = ((TOP - MARGIN_BOTTOM - 2.0 * style.pad_y) / style.leading) as usize;
        if lines.len() > max_lines {
            lines.truncate(max_lines.max(1));
            if let Some(last) = lines.last_mut() {
                let mut longer = std::mem::take(last);
                longer.extend_from_slice(b" ...");
                *last = text::truncate(&longer, Face::Bold, style.size, width);
            }
        }
        let height = lines.len() as f32 * style.leading + 2.0 * style.pad_y;
        self.ensure(height);
        let top = self.y;
        self.rect(MARGIN_X, top, CONTENT_WIDTH, height, fill);
        self.rect(MARGIN_X, top, 3.0, height, ink);
        let tag_top = top - style.pad_y - (style.leading - 12.0) / 2.0;
        self.rect(MARGIN_X + style.pad_x, tag_top, tag_width, 12.0, ink);
        self.text(
            MARGIN_X + style.pad_x + 5.0,
            tag_top - 9.0,
            9.0,
            Face::Bold,
            (1.0, 1.0, 1.0),
            tag,
        );
        for (i, line) in lines.into_iter().enumerate() {
            let baseline = top - style.pad_y - i as f32 * style.leading - baseline_offset(style);
            self.text(text_x, baseline, style.size, Face::Bold, ink, line);
        }
        self.y -= height + 8.0;
    }
}

/// From the top of a line box to the baseline, centring the font's extent.
fn baseline_offset(style: Style) -> f32 {
    (style.leading - (ASCENT + DESCENT) * style.size) / 2.0 + ASCENT * style.size
}

fn add_footers(pages: &mut [Page], footer: &str) {
    let total = pages.len();
    let size = 8.0;
    for (i, ops) in pages.iter_mut().enumerate() {
        let number = text::encode(&format!("page {} of {total}", i + 1));
        let number_width = text::width(&number, Face::Regular, size);
        let left = text::truncate(
            &text::encode(footer),
            Face::Regular,
            size,
            CONTENT_WIDTH - number_width - 16.0,
        );
        let rule = vec![
            (MARGIN_X, FOOTER_BASELINE + 11.0),
            (MARGIN_X + CONTENT_WIDTH, FOOTER_BASELINE + 11.0),
        ];
        ops.push(Op::Stroke {
            points: rule,
            width: 0.5,
            color: RULE,
            closed: false,
        });
        for (x, bytes) in [(MARGIN_X, left), (MARGIN_X + CONTENT_WIDTH - number_width, number)] {
            ops.push(Op::Text {
                x,
                y: FOOTER_BASELINE,
                size,
                face: Face::Regular,
                color: MUTED,
                angle: 0.0,
                bytes,
            });
        }
    }
}

#[cfg(test)]
mod tests;
