//! Tables and label/value fields: rows of wrapped cells that break across pages.
//!
//! A row that does not fit moves to the next page under a repeated header; a row
//! taller than a whole page is split between its lines.

use super::baseline_offset;
use super::text::{self, Face};
use super::{CONTENT_WIDTH, FIELDS, HEADER_FILL, INK, Layout, MARGIN_BOTTOM, MARGIN_X, RULE, Style, TABLE, TOP, ZEBRA};

/// A wrapped cell: its lines and face.
struct Cell {
    lines: Vec<Vec<u8>>,
    face: Face,
}

/// How a grid (table or fields) is drawn.
struct Grid<'a> {
    columns: &'a [f32],
    header: Option<&'a [Cell]>,
    style: Style,
    zebra: bool,
    rules: bool,
}

impl Layout {
    pub(super) fn fields(&mut self, pairs: &[(String, String)]) {
        let widest = pairs
            .iter()
            .map(|(label, _)| text::text_width(label, Face::Bold, FIELDS.size))
            .fold(0.0, f32::max);
        let label_width = (widest + 14.0).min(CONTENT_WIDTH * 0.35);
        let columns = [label_width, CONTENT_WIDTH - label_width];
        let grid = Grid {
            columns: &columns,
            header: None,
            style: FIELDS,
            zebra: false,
            rules: false,
        };
        for (label, value) in pairs {
            let cells = [
                cell(label, Face::Bold, columns[0], FIELDS),
                cell(value, Face::Regular, columns[1], FIELDS),
            ];
            self.row(&grid, &cells, false);
        }
        self.y -= 8.0;
    }

    pub(super) fn table(&mut self, headers: &[String], rows: &[Vec<String>], widths: Option<&[f32]>) {
        let count = rows.iter().map(Vec::len).chain([headers.len()]).max().unwrap_or(0);
        if count == 0 {
            return;
        }
        let columns = column_widths(headers, rows, widths, count);
        let header: Vec<Cell> = (0..count)
            .map(|i| cell(headers.get(i).map_or("", String::as_str), Face::Bold, columns[i], TABLE))
            .collect();
        let header = (!headers.is_empty()).then_some(header.as_slice());
        let grid = Grid {
            columns: &columns,
            header,
            style: TABLE,
            zebra: true,
            rules: true,
        };
        let cells_of = |row: &[String]| -> Vec<Cell> {
            (0..count)
                .map(|i| cell(row.get(i).map_or("", String::as_str), Face::Regular, columns[i], TABLE))
                .collect()
        };
        // Start on a new page rather than leave the header alone at the bottom.
        let header_height = header.map_or(0.0, |h| row_height(h, TABLE));
        let first_row = rows.first().map_or(0.0, |r| row_height(&cells_of(r), TABLE));
        self.ensure((header_height + first_row).min(TOP - MARGIN_BOTTOM));
        self.header(&grid);
        for (index, row) in rows.iter().enumerate() {
            self.row(&grid, &cells_of(row), index % 2 == 1);
        }
        self.y -= 10.0;
    }

    fn header(&mut self, grid: &Grid) {
        if let Some(header) = grid.header {
            let height = row_height(header, grid.style);
            self.rect(MARGIN_X, self.y, CONTENT_WIDTH, height, HEADER_FILL);
            let lines = header.iter().map(|c| c.lines.len()).max().unwrap_or(1);
            self.cells(grid, header, 0, lines);
            self.y -= height;
        }
    }

    /// One row of a grid, broken between its lines across pages if it must be.
    fn row(&mut self, grid: &Grid, cells: &[Cell], shaded: bool) {
        let style = grid.style;
        let total = cells.iter().map(|c| c.lines.len()).max().unwrap_or(1);
        let header_height = grid.header.map_or(0.0, |h| row_height(h, style));
        let page_capacity = TOP - MARGIN_BOTTOM - header_height;
        let mut start = 0;
        while start < total {
            let remaining = total - start;
            let needed = remaining as f32 * style.leading + 2.0 * style.pad_y;
            let fits_here = ((self.room() - 2.0 * style.pad_y) / style.leading).floor().max(0.0) as usize;
            // Split only a row that would not fit on a page of its own either.
            let take = if needed <= self.room() {
                remaining
            } else if needed > page_capacity && fits_here > 0 {
                fits_here.min(remaining)
            } else if self.fresh() || (grid.header.is_some() && self.just_headed(header_height)) {
                fits_here.clamp(1, remaining)
            } else {
                self.new_page();
                self.header(grid);
                continue;
            };
            let height = take as f32 * style.leading + 2.0 * style.pad_y;
            if shaded && grid.zebra {
                self.rect(MARGIN_X, self.y, CONTENT_WIDTH, height, ZEBRA);
            }
            self.cells(grid, cells, start, take);
            self.y -= height;
            if grid.rules {
                self.rule(self.y, 0.4, RULE);
            }
            start += take;
            if start < total {
                self.new_page();
                self.header(grid);
            }
        }
    }

    /// Whether only the repeated header has been drawn on this page.
    fn just_headed(&self, header_height: f32) -> bool {
        (TOP - header_height - self.y).abs() < 0.01
    }

    /// Draws `count` lines of each cell from line `start`, in the row at `self.y`.
    fn cells(&mut self, grid: &Grid, cells: &[Cell], start: usize, count: usize) {
        let style = grid.style;
        let mut x = MARGIN_X;
        for (c, width) in cells.iter().zip(grid.columns) {
            for (i, line) in c.lines.iter().skip(start).take(count).enumerate() {
                let baseline = self.y - style.pad_y - i as f32 * style.leading - baseline_offset(style);
                self.text(x + style.pad_x, baseline, style.size, c.face, INK, line.clone());
            }
            x += width;
        }
    }
}

fn cell(t: &str, face: Face, width: f32, style: Style) -> Cell {
    Cell {
        lines: text::wrap(t, face, style.size, width - 2.0 * style.pad_x),
        face,
    }
}

fn row_height(cells: &[Cell], style: Style) -> f32 {
    let lines = cells.iter().map(|c| c.lines.len()).max().unwrap_or(1);
    lines as f32 * style.leading + 2.0 * style.pad_y
}

/// Column widths in points: the given relative widths, or shares of the content's
/// natural widths where none (or unusable ones) are given.
pub(super) fn column_widths(
    headers: &[String],
    rows: &[Vec<String>],
    widths: Option<&[f32]>,
    count: usize,
) -> Vec<f32> {
    if let Some(w) = widths.filter(|w| w.len() == count && w.iter().all(|v| v.is_finite() && *v > 0.0)) {
        let sum: f32 = w.iter().sum();
        return w.iter().map(|v| v / sum * CONTENT_WIDTH).collect();
    }
    let pad = 2.0 * TABLE.pad_x + 1.0;
    let mut natural: Vec<f32> = (0..count)
        .map(|i| {
            headers
                .get(i)
                .map_or(0.0, |h| text::text_width(h, Face::Bold, TABLE.size) + pad)
        })
        .collect();
    for row in rows {
        for (n, value) in natural.iter_mut().zip(row) {
            *n = n.max(text::text_width(value, Face::Regular, TABLE.size) + pad);
        }
    }
    let fair = CONTENT_WIDTH / count as f32;
    let mut out: Vec<f32> = natural.iter().map(|n| n.max(20.0).min(fair)).collect();
    let spare = CONTENT_WIDTH - out.iter().sum::<f32>();
    let wants: Vec<f32> = natural.iter().zip(&out).map(|(n, o)| (n - o).max(0.0)).collect();
    let wanted: f32 = wants.iter().sum();
    for (o, want) in out.iter_mut().zip(&wants) {
        *o += if wanted > 0.0 {
            spare * (want / wanted).min(1.0)
        } else {
            spare / count as f32
        };
    }
    out
}
