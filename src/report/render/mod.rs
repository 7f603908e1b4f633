//! Renders auditor reports: a small document model and two outputs, a typeset A4 PDF
//! and a self-contained HTML page.
//!
//! The report code builds a [`Document`] out of [`Block`]s and hands it to
//! [`render_pdf`] or [`render_html`]; neither touches the store or the file system.
//!
//! - `text`: WinAnsi encoding, widths and wrapping for the PDF's font
//! - `font`: DejaVu Sans Condensed, built in and embedded in every PDF as a subset
//! - `layout`: pages, margins, wrapping and the page footer; `layout/grid` breaks
//!   tables and fields across pages
//! - `pdf`: the layout written out with printpdf
//! - `pdf_chart`: a plotters backend that draws a chart as PDF vector operations
//! - `axis`: time axis ticks on round local times of the site's zone
//! - `chart`: the chart itself (series, gaps, thresholds, excursions, time axis)
//! - `series`: decimation of large series and breaking the line at gaps
//! - `html`: the HTML page, with the chart as inline SVG

mod axis;
mod chart;
mod font;
mod html;
mod layout;
mod pdf;
mod pdf_chart;
mod series;
mod text;

pub use html::render_html;
pub use pdf::render_pdf;

/// A report: a title block, then blocks in order, with a footer on every PDF page.
#[derive(Debug, Clone)]
pub struct Document {
    pub title: String,
    pub subtitle: Option<String>,
    pub blocks: Vec<Block>,
    /// Printed on each PDF page next to "page N of M", and once at the end of the HTML.
    pub footer: String,
}

/// One piece of a [`Document`].
#[derive(Debug, Clone)]
pub enum Block {
    Heading(String),
    /// Wrapped text; a `\n` starts a new line.
    Paragraph(String),
    /// Label/value pairs, e.g. Site, Asset, Period, Time zone.
    Fields(Vec<(String, String)>),
    /// A table whose header row repeats on every PDF page it spans.
    Table {
        headers: Vec<String>,
        rows: Vec<Vec<String>>,
        /// Relative column widths, one per column; `None` (or a count or value that
        /// does not fit) sizes the columns from their content.
        widths: Option<Vec<f32>>,
    },
    Chart(Chart),
    /// A result line coloured pass/fail, e.g. "Audit chain: verified (1234 records)".
    Verdict {
        ok: bool,
        text: String,
    },
    /// Starts a new PDF page (ignored at the top of a page); a print break in HTML.
    PageBreak,
}

/// A time series chart over `from_ms..to_ms`.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    /// The unit of the values, e.g. "°C".
    pub y_label: String,
    /// `(unix ms, value)`, in any order and of any size: it is decimated for drawing,
    /// keeping each pixel column's minimum and maximum. Non-finite values are skipped.
    pub series: Vec<(i64, f64)>,
    /// Spans with no data, `(from, to)` in unix ms: the line breaks there instead of
    /// joining across, and the span is shaded light grey.
    pub gaps: Vec<(i64, i64)>,
    /// Horizontal lines with a label, e.g. `("high alarm", -150.0)`.
    pub thresholds: Vec<(String, f64)>,
    /// Excursion spans, shaded light red across the plot height (at least 1.5 pt wide,
    /// so that a short one still shows on a long period).
    pub shaded: Vec<(i64, i64)>,
    /// The period shown, unix ms; points outside it are not drawn. An empty or reversed
    /// period is drawn as the hour from `from_ms`.
    pub from_ms: i64,
    pub to_ms: i64,
    /// The site's time zone: the time axis is labelled in it.
    pub tz: jiff::tz::TimeZone,
}

/// Why a document could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// plotters failed to draw a chart (the PDF backend itself never fails).
    #[error("drawing chart {title:?}: {message}")]
    Chart { title: String, message: String },
    /// printpdf or lopdf failed to assemble the file.
    #[error("writing the PDF: {0}")]
    Pdf(String),
}
