//! A plotters backend that records a chart as PDF vector operations.
//!
//! plotters draws on an integer grid, so the backend works in quarter points
//! ([`UNITS_PER_PT`]) and converts to page points when it records an [`Op`]. Text is
//! set in the embedded DejaVu Sans Condensed, measured with its real widths so that plotters lays
//! out axis labels correctly.

use std::convert::Infallible;

use plotters::prelude::{DrawingBackend, IntoDrawingArea};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind, FontStyle, FontTransform,
};

use super::layout::{Op, Rgb};
use super::text::{self, ASCENT, DESCENT, Face};
use super::{Chart, RenderError, chart};

/// Backend units per PDF point.
pub(crate) const UNITS_PER_PT: f32 = 4.0;

/// Draws `c` into a `width` × `height` point box whose top left corner is at
/// `(left, top)` on the page (PDF coordinates, origin bottom left).
pub(crate) fn draw(c: &Chart, left: f32, top: f32, width: f32, height: f32) -> Result<Vec<Op>, RenderError> {
    let mut backend = PdfChartBackend {
        left,
        top,
        size: (units(width), units(height)),
        ops: Vec::new(),
    };
    {
        let root = (&mut backend).into_drawing_area();
        chart::draw(&root, c, f64::from(UNITS_PER_PT)).map_err(|message| RenderError::Chart {
            title: c.title.clone(),
            message,
        })?;
    }
    Ok(backend.ops)
}

fn units(pt: f32) -> u32 {
    (pt * UNITS_PER_PT).round().max(1.0) as u32
}

struct PdfChartBackend {
    left: f32,
    top: f32,
    size: (u32, u32),
    ops: Vec<Op>,
}

type DrawResult = Result<(), DrawingErrorKind<Infallible>>;

impl PdfChartBackend {
    fn point(&self, (x, y): BackendCoord) -> (f32, f32) {
        (self.left + x as f32 / UNITS_PER_PT, self.top - y as f32 / UNITS_PER_PT)
    }

    fn stroke(&mut self, points: Vec<(f32, f32)>, color: BackendColor, width: u32, closed: bool) {
        if color.alpha <= 0.0 || points.len() < 2 {
            return;
        }
        self.ops.push(Op::Stroke {
            points,
            width: width as f32 / UNITS_PER_PT,
            color: rgb(color),
            closed,
        });
    }

    fn fill(&mut self, points: Vec<(f32, f32)>, color: BackendColor) {
        if color.alpha <= 0.0 || points.len() < 3 {
            return;
        }
        self.ops.push(Op::Fill {
            points,
            color: rgb(color),
        });
    }
}

/// The colour as seen over white paper: the PDF is written without transparency.
fn rgb(c: BackendColor) -> Rgb {
    let a = c.alpha.clamp(0.0, 1.0) as f32;
    let blend = |v: u8| (f32::from(v) / 255.0) * a + (1.0 - a);
    (blend(c.rgb.0), blend(c.rgb.1), blend(c.rgb.2))
}

fn face(style: &impl BackendTextStyle) -> Face {
    match style.style() {
        FontStyle::Bold => Face::Bold,
        _ => Face::Regular,
    }
}

/// The font size in points for a plotters size, as plotters' SVG backend reads it.
fn font_pt(style: &impl BackendTextStyle) -> f32 {
    (style.size() / 1.24) as f32 / UNITS_PER_PT
}

impl DrawingBackend for &mut PdfChartBackend {
    type ErrorType = Infallible;

    fn get_size(&self) -> (u32, u32) {
        self.size
    }

    fn ensure_prepared(&mut self) -> DrawResult {
        Ok(())
    }

    fn present(&mut self) -> DrawResult {
        Ok(())
    }

    fn draw_pixel(&mut self, p: BackendCoord, color: BackendColor) -> DrawResult {
        let corners = [p, (p.0 + 1, p.1), (p.0 + 1, p.1 + 1), (p.0, p.1 + 1)];
        let points = corners.iter().map(|&c| self.point(c)).collect();
        self.fill(points, color);
        Ok(())
    }

    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> DrawResult {
        let points = vec![self.point(from), self.point(to)];
        self.stroke(points, style.color(), style.stroke_width(), false);
        Ok(())
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> DrawResult {
        let (l, t) = self.point(upper_left);
        let (r, b) = self.point(bottom_right);
        let points = vec![(l, t), (r, t), (r, b), (l, b)];
        if fill {
            self.fill(points, style.color());
        } else {
            self.stroke(points, style.color(), style.stroke_width(), true);
        }
        Ok(())
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(&mut self, path: I, style: &S) -> DrawResult {
        let points = path.into_iter().map(|c| self.point(c)).collect();
        self.stroke(points, style.color(), style.stroke_width(), false);
        Ok(())
    }

    fn draw_circle<S: BackendStyle>(&mut self, center: BackendCoord, radius: u32, style: &S, fill: bool) -> DrawResult {
        let (cx, cy) = self.point(center);
        let r = radius as f32 / UNITS_PER_PT;
        let points = (0..16)
            .map(|i| {
                let a = i as f32 * std::f32::consts::TAU / 16.0;
                (cx + r * a.cos(), cy + r * a.sin())
            })
            .collect();
        if fill {
            self.fill(points, style.color());
        } else {
            self.stroke(points, style.color(), style.stroke_width(), true);
        }
        Ok(())
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> DrawResult {
        let points = vert.into_iter().map(|c| self.point(c)).collect();
        self.fill(points, style.color());
        Ok(())
    }

    fn draw_text<T: BackendTextStyle>(&mut self, text: &str, style: &T, pos: BackendCoord) -> DrawResult {
        if style.color().alpha <= 0.0 {
            return Ok(());
        }
        let face = face(style);
        let size = font_pt(style);
        let bytes = text::encode(text);
        let width = text::width(&bytes, face, size);
        // Offsets along the text direction and "down" across it, in points.
        let along = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let down = match style.anchor().v_pos {
            VPos::Top => ASCENT * size,
            VPos::Center => ASCENT * size / 2.0,
            VPos::Bottom => -DESCENT * size,
        };
        // Direction and "down" vectors on the page (y up), and the PDF angle.
        let (dir, downward, angle) = match style.transform() {
            FontTransform::Rotate90 => ((0.0, -1.0), (-1.0, 0.0), -90.0),
            FontTransform::Rotate180 => ((-1.0, 0.0), (0.0, 1.0), 180.0),
            FontTransform::Rotate270 => ((0.0, 1.0), (1.0, 0.0), 90.0),
            _ => ((1.0, 0.0), (0.0, -1.0), 0.0),
        };
        let (x, y) = self.point(pos);
        self.ops.push(Op::Text {
            x: x + dir.0 * along + downward.0 * down,
            y: y + dir.1 * along + downward.1 * down,
            size,
            face,
            color: rgb(style.color()),
            angle,
            bytes,
        });
        Ok(())
    }

    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> Result<(u32, u32), DrawingErrorKind<Infallible>> {
        let size = font_pt(style);
        let width = text::text_width(text, face(style), size);
        Ok((units(width), units((ASCENT + DESCENT) * size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_chart() -> Chart {
        let hour = 3_600_000;
        Chart {
            title: "Dewar 3 – LN2 temperature".into(),
            y_label: "°C".into(),
            series: (0..48 * 60)
                .map(|m| (m * 60_000, -190.0 + (m % 17) as f64 * 0.2))
                .collect(),
            gaps: vec![(10 * hour, 12 * hour)],
            thresholds: vec![("high alarm".into(), -150.0)],
            shaded: vec![(30 * hour, 31 * hour)],
            from_ms: 0,
            to_ms: 48 * hour,
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    #[test]
    fn a_chart_becomes_vector_operations_inside_its_box() {
        let ops = draw(&sample_chart(), 50.0, 700.0, 480.0, 250.0).expect("chart draws");
        let texts: Vec<String> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Text { bytes, .. } => Some(bytes.iter().map(|&b| char::from(b)).collect()),
                _ => None,
            })
            .collect();
        assert!(texts.iter().any(|t| t == "\u{b0}C"), "{texts:?}");
        assert!(texts.iter().any(|t| t.starts_with("high alarm")), "{texts:?}");
        let inside = |&(x, y): &(f32, f32)| (49.0..=531.0).contains(&x) && (449.0..=701.0).contains(&y);
        for op in &ops {
            match op {
                Op::Stroke { points, .. } | Op::Fill { points, .. } => {
                    assert!(points.iter().all(inside), "{op:?}");
                }
                Op::Text { .. } => {}
            }
        }
    }
}
