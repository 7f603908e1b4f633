//! The chart drawing, shared by the PDF (vector operations) and HTML (SVG) outputs.
//!
//! Drawn back to front: excursion spans shaded light red and gaps light grey across
//! the plot height, the grid and axes with the time axis in the site's zone, dashed
//! threshold lines with their labels, and the series, decimated and broken at gaps.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Chart, axis, series};

const SERIES: RGBColor = RGBColor(29, 78, 216);
const EXCURSION: RGBAColor = RGBAColor(220, 38, 38, 0.16);
const NO_DATA: RGBAColor = RGBAColor(100, 100, 100, 0.12);
const GRID: RGBColor = RGBColor(225, 225, 225);
const AXIS: RGBColor = RGBColor(110, 110, 110);
const THRESHOLDS: [RGBColor; 4] = [
    RGBColor(194, 65, 12),
    RGBColor(126, 34, 206),
    RGBColor(15, 118, 110),
    RGBColor(161, 98, 7),
];
const HOUR_MS: i64 = 3_600_000;

/// Unix ms of 9999-12-31T23:59:59Z: times are kept within years -9999..=9999, the
/// range a time zone can label.
const LIMIT_MS: i64 = 253_402_300_799_000;

/// The chart's period, kept within [`LIMIT_MS`] and widened to an hour if it is empty
/// or reversed.
pub(crate) fn period(c: &Chart) -> (i64, i64) {
    let from = c.from_ms.clamp(-LIMIT_MS, LIMIT_MS - HOUR_MS);
    let to = c.to_ms.clamp(-LIMIT_MS, LIMIT_MS);
    if to > from { (from, to) } else { (from, from + HOUR_MS) }
}

/// Draws `c` on `root`. `scale` is backend units per typographic point: sizes below
/// are in points, so the chart looks the same on any backend.
pub(crate) fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &Chart, scale: f64) -> Result<(), String> {
    draw_inner(root, c, scale).map_err(|e| e.to_string())
}

fn draw_inner<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &Chart,
    scale: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let pt = |v: f64| v * scale;
    let font = |size: f64| ("sans-serif", size * 1.24 * scale).into_font();
    let stroke = |width: f64| (width * scale).round().max(1.0) as u32;
    let (from, to) = period(c);
    let (width_px, _) = root.dim_in_pixel();

    let y_area = pt(48.0);
    let margin = pt(8.0);
    // The plot's width, known exactly only once the chart is built; decimation needs it
    // first, and a slight overestimate only keeps a few more points.
    let plot_px = (f64::from(width_px) - y_area - 2.0 * margin).max(1.0);
    let segments = series::segments(&c.series, &c.gaps, from, to, plot_px as usize);
    let (y_lo, y_hi) = y_range(&segments, &c.thresholds);

    let max_ticks = (plot_px / pt(75.0)).floor().clamp(2.0, 10.0) as i64;
    let ticks = axis::ticks(from, to, &c.tz, max_ticks);
    let tick_times: Vec<i64> = ticks.iter().map(|(t, _)| *t).collect();
    let x_format = |v: &i64| match ticks.binary_search_by_key(v, |(t, _)| *t) {
        Ok(i) => ticks[i].1.clone(),
        Err(_) => axis::format_instant(*v, &c.tz),
    };
    let decimals = decimals_for((y_hi - y_lo) / 6.0);
    let y_format = |v: &f64| format!("{v:.decimals$}");

    root.fill(&WHITE)?;
    let mut ctx = ChartBuilder::on(root)
        .caption(&c.title, font(10.5).style(FontStyle::Bold))
        .margin(margin)
        .x_label_area_size(pt(34.0))
        .y_label_area_size(y_area)
        .build_cartesian_2d((from..to).with_key_points(tick_times), y_lo..y_hi)?;

    let plot_width = f64::from(ctx.plotting_area().dim_in_pixel().0.max(1));
    let ms_per_px = (to - from) as f64 / plot_width;
    // A 45-minute excursion in a year is far narrower than a pixel: draw every span at
    // least 1.5 pt wide so that it can be seen.
    let min_span = (ms_per_px * pt(1.5)) as i64;
    let spans = |list: &[(i64, i64)], color: RGBAColor| -> Vec<Rectangle<(i64, f64)>> {
        list.iter()
            .filter_map(|&span| visible_span(span, from, to, min_span))
            .map(|(a, b)| Rectangle::new([(a, y_lo), (b, y_hi)], color.filled()))
            .collect()
    };
    ctx.draw_series(spans(&c.gaps, NO_DATA))?;
    ctx.draw_series(spans(&c.shaded, EXCURSION))?;

    let mut legend = vec![format!("Time ({})", axis::zone_name(&c.tz, from))];
    if !c.shaded.is_empty() {
        legend.push("red: excursion".to_string());
    }
    if !c.gaps.is_empty() {
        legend.push("grey: no data".to_string());
    }
    ctx.configure_mesh()
        .x_labels(ticks.len().max(2))
        .y_labels(6)
        .x_label_formatter(&x_format)
        .y_label_formatter(&y_format)
        .x_desc(legend.join("  \u{b7}  "))
        .y_desc(c.y_label.as_str())
        .label_style(font(7.0))
        .axis_desc_style(font(8.0))
        .bold_line_style(GRID.stroke_width(stroke(0.4)))
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS.stroke_width(stroke(0.6)))
        .set_all_tick_mark_size(pt(2.5))
        .draw()?;

    let thresholds: Vec<(usize, &str, f64)> = c
        .thresholds
        .iter()
        .enumerate()
        .filter(|(_, (_, v))| v.is_finite())
        .map(|(i, (label, v))| (i, label.as_str(), *v))
        .collect();
    for &(i, _, value) in &thresholds {
        let style = THRESHOLDS[i % THRESHOLDS.len()].stroke_width(stroke(0.9));
        let dashes = dashes(from, to, ms_per_px * pt(5.0), ms_per_px * pt(3.0));
        ctx.draw_series(dashes.map(|(a, b)| PathElement::new(vec![(a, value), (b, value)], style)))?;
    }

    let line = SERIES.stroke_width(stroke(0.8));
    for seg in &segments {
        if let [only] = seg.as_slice() {
            let dot = Circle::new(*only, stroke(0.9), SERIES.filled());
            ctx.draw_series(std::iter::once(dot))?;
        } else {
            ctx.draw_series(std::iter::once(PathElement::new(seg.clone(), line)))?;
        }
    }

    // Labels last, on a white backing, so that the series cannot hide them. They
    // alternate ends so that two close thresholds do not print over each other.
    for (i, label, value) in thresholds {
        let right = i % 2 == 0;
        let inset = (ms_per_px * pt(3.0)) as i64;
        let (x, h) = if right {
            (to - inset, HPos::Right)
        } else {
            (from + inset, HPos::Left)
        };
        let text = format!("{label} ({value})");
        let color = THRESHOLDS[i % THRESHOLDS.len()];
        let text_style = font(7.0).color(&color).pos(Pos::new(h, VPos::Bottom));
        let (w, text_h) = root.estimate_text_size(&text, &text_style)?;
        let (w, text_h) = (w as i32, text_h as i32);
        let (ax, ay) = ctx.backend_coord(&(x, value));
        let left = if right { ax - w } else { ax };
        let pad = pt(1.0) as i32;
        let backing = [(left - pad, ay - text_h - pad), (left + w + pad, ay - pad)];
        root.draw(&Rectangle::new(backing, WHITE.mix(0.85).filled()))?;
        ctx.draw_series(std::iter::once(Text::new(text, (x, value), text_style)))?;
    }
    root.present()
}

/// `span` clipped to `from..to` and widened about its middle to at least `min` wide.
fn visible_span((a, b): (i64, i64), from: i64, to: i64, min: i64) -> Option<(i64, i64)> {
    let (a, b) = (a.max(from), b.min(to));
    if a >= b {
        return None;
    }
    let grow = (min - (b - a)).max(0) / 2;
    Some(((a - grow).max(from), (b + grow).min(to)))
}

/// The value axis range: the data and every threshold, with a margin.
fn y_range(segments: &[series::Segment], thresholds: &[(String, f64)]) -> (f64, f64) {
    let levels = thresholds.iter().map(|(_, v)| *v).filter(|v| v.is_finite());
    let data = series::value_range(segments);
    let (lo, hi) = levels
        .fold(data, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
        .unwrap_or((0.0, 1.0));
    let span = hi - lo;
    let pad = if span > f64::EPSILON * hi.abs().max(1.0) {
        span * 0.08
    } else {
        (hi.abs() * 0.05).max(1.0)
    };
    (lo - pad, hi + pad)
}

/// Enough decimals to tell ticks `step` apart.
fn decimals_for(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) {
        return 1;
    }
    (-step.log10().floor()).clamp(0.0, 4.0) as usize
}

/// `(start, end)` of the dashes of a dashed line across `from..to`.
fn dashes(from: i64, to: i64, dash: f64, gap: f64) -> impl Iterator<Item = (i64, i64)> {
    let period = (dash + gap).max(1.0);
    let count = ((to - from) as f64 / period).ceil().min(2_000.0) as i64;
    (0..count).map(move |k| {
        let a = from + (k as f64 * period) as i64;
        (a, (a + dash.max(1.0) as i64).min(to))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_axis_includes_every_threshold() {
        let segs = vec![vec![(0, -190.0), (1, -185.0)]];
        let (lo, hi) = y_range(&segs, &[("high".into(), -150.0), ("bad".into(), f64::NAN)]);
        assert!(lo < -190.0 && hi > -150.0, "{lo}..{hi}");
        let (lo, hi) = y_range(&[], &[]);
        assert!(lo < 0.0 && hi > 1.0);
        let (lo, hi) = y_range(&[vec![(0, 4.0)]], &[]);
        assert!(lo < 4.0 && hi > 4.0);
    }

    #[test]
    fn narrow_spans_are_widened_to_stay_visible_and_clipped_to_the_period() {
        assert_eq!(visible_span((100, 104), 0, 1000, 20), Some((92, 112)));
        assert_eq!(visible_span((-50, 500), 0, 1000, 20), Some((0, 500)));
        assert_eq!(visible_span((2000, 3000), 0, 1000, 20), None);
        assert_eq!(visible_span((0, 2), 0, 1000, 20), Some((0, 11)));
    }

    #[test]
    fn absurd_periods_and_values_still_render() {
        use crate::report::render::{Block, Document, render_html, render_pdf};
        let chart = |from_ms, to_ms, series: Vec<(i64, f64)>| Chart {
            title: "edge".into(),
            y_label: String::new(),
            series,
            gaps: vec![(i64::MIN, i64::MAX)],
            thresholds: vec![("inf".into(), f64::INFINITY), ("huge".into(), 1e300)],
            shaded: vec![(i64::MAX - 5, i64::MIN)],
            from_ms,
            to_ms,
            tz: jiff::tz::TimeZone::UTC,
        };
        let charts = [
            chart(i64::MIN, i64::MAX, vec![(0, -1e300), (1, f64::NAN), (i64::MAX, 5.0)]),
            chart(5, 5, vec![]),
            chart(10, -10, vec![(0, 1.0)]),
        ];
        for c in charts {
            let doc = Document {
                title: String::new(),
                subtitle: None,
                blocks: vec![Block::Chart(c)],
                footer: String::new(),
            };
            assert!(render_pdf(&doc).is_ok());
            assert!(render_html(&doc).contains("<svg"));
        }
    }

    #[test]
    fn tick_labels_show_as_many_decimals_as_the_step_needs() {
        assert_eq!(decimals_for(20.0), 0);
        assert_eq!(decimals_for(0.5), 1);
        assert_eq!(decimals_for(0.02), 2);
        assert_eq!(decimals_for(f64::NAN), 1);
    }
}
