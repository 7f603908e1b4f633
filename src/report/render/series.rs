//! Turning a series of any size into the few points a chart needs.
//!
//! The visible points are cut into segments at every gap, so the line breaks there
//! instead of joining across missing data, and each segment is decimated to the
//! minimum and the maximum of every pixel column. An excursion that lasts one sample
//! still reaches its true peak on the chart; a year of one-minute data (525,600
//! points) becomes a few thousand.

use std::borrow::Cow;

/// Consecutive points with no gap between them, drawn as one connected line.
pub(crate) type Segment = Vec<(i64, f64)>;

/// The points of `series` within `from..=to`, broken at `gaps` and decimated to at
/// most two points (the minimum and the maximum) per column, with `columns` columns
/// across `from..=to`. Non-finite values are skipped.
pub(crate) fn segments(series: &[(i64, f64)], gaps: &[(i64, i64)], from: i64, to: i64, columns: usize) -> Vec<Segment> {
    let series: Cow<[(i64, f64)]> = if series.is_sorted_by_key(|p| p.0) {
        Cow::Borrowed(series)
    } else {
        let mut sorted = series.to_vec();
        sorted.sort_by_key(|p| p.0);
        Cow::Owned(sorted)
    };
    let gaps = merge(gaps);
    let span = i128::from(to) - i128::from(from);
    let columns = columns.max(1);
    let column_of = |t: i64| -> usize {
        if span <= 0 {
            return 0;
        }
        let c = (i128::from(t) - i128::from(from)) * columns as i128 / span;
        usize::try_from(c).unwrap_or(0).min(columns - 1)
    };

    let mut out = Vec::new();
    let mut current: Vec<(i64, f64)> = Vec::new();
    let mut bucket = Bucket::default();
    let mut gap_index = 0;
    let mut previous: Option<i64> = None;
    let visible = series.iter().filter(|(t, v)| *t >= from && *t <= to && v.is_finite());
    for &(t, v) in visible {
        if let Some(p) = previous {
            while gap_index < gaps.len() && gaps[gap_index].1 <= p {
                gap_index += 1;
            }
            let gap_between = gaps.get(gap_index).is_some_and(|&(start, _)| start < t);
            if gap_between {
                bucket.flush(&mut current);
                out.push(std::mem::take(&mut current));
            }
        }
        previous = Some(t);
        bucket.add(column_of(t), t, v, &mut current);
    }
    bucket.flush(&mut current);
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The smallest and largest value over all segments.
pub(crate) fn value_range(segments: &[Segment]) -> Option<(f64, f64)> {
    segments.iter().flatten().fold(None, |acc, &(_, v)| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Gaps as sorted, disjoint, non-empty spans.
fn merge(gaps: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut sorted: Vec<(i64, i64)> = gaps.iter().copied().filter(|(a, b)| a < b).collect();
    sorted.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(sorted.len());
    for (a, b) in sorted {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// The minimum and maximum of the column being collected.
#[derive(Default)]
struct Bucket {
    column: Option<usize>,
    min: (i64, f64),
    max: (i64, f64),
}

impl Bucket {
    fn add(&mut self, column: usize, t: i64, v: f64, out: &mut Vec<(i64, f64)>) {
        if self.column != Some(column) {
            self.flush(out);
            self.column = Some(column);
            self.min = (t, v);
            self.max = (t, v);
            return;
        }
        if v < self.min.1 {
            self.min = (t, v);
        }
        if v > self.max.1 {
            self.max = (t, v);
        }
    }

    /// Writes the column's extremes in time order and starts afresh.
    fn flush(&mut self, out: &mut Vec<(i64, f64)>) {
        if self.column.take().is_none() {
            return;
        }
        let (first, second) = if self.min.0 <= self.max.0 {
            (self.min, self.max)
        } else {
            (self.max, self.min)
        };
        out.push(first);
        if second != first {
            out.push(second);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn noisy(n: i64) -> Vec<(i64, f64)> {
        (0..n)
            .map(|i| (i * MINUTE, -190.0 + ((i * 7919) % 13) as f64 * 0.1))
            .collect()
    }

    #[test]
    fn decimation_keeps_single_sample_peaks_and_bounds_the_point_count() {
        let mut series = noisy(100_000);
        series[31_337].1 = -120.0;
        series[77_000].1 = -250.0;
        let to = 99_999 * MINUTE;
        let segs = segments(&series, &[], 0, to, 500);
        assert_eq!(segs.len(), 1);
        let points = segs[0].len();
        assert!(points <= 1000, "{points} points for 500 columns");
        assert_eq!(value_range(&segs), Some((-250.0, -120.0)));
        assert!(segs[0].contains(&(31_337 * MINUTE, -120.0)));
        assert!(segs[0].windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn gaps_break_the_line_instead_of_joining_across() {
        let series: Vec<(i64, f64)> = (0..120)
            .filter(|m| !(30..60).contains(m))
            .map(|m| (m * MINUTE, m as f64))
            .collect();
        let segs = segments(&series, &[(29 * MINUTE + 1, 60 * MINUTE - 1)], 0, 119 * MINUTE, 1000);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].last().map(|p| p.0), Some(29 * MINUTE));
        assert_eq!(segs[1].first().map(|p| p.0), Some(60 * MINUTE));
        // Without the declared gap the line runs through.
        assert_eq!(segments(&series, &[], 0, 119 * MINUTE, 1000).len(), 1);
    }

    #[test]
    fn overlapping_gaps_and_unsorted_input_are_handled() {
        let mut series: Vec<(i64, f64)> = (0..10).map(|m| (m * MINUTE, 1.0)).collect();
        series.reverse();
        let gaps = [(4 * MINUTE + 1, 5 * MINUTE), (2 * MINUTE + 1, 4 * MINUTE + 5), (9, 9)];
        let segs = segments(&series, &gaps, 0, 9 * MINUTE, 100);
        let lens: Vec<usize> = segs.iter().map(Vec::len).collect();
        // 0..=2, then 3..=4 sit inside the merged gap (each alone), then 5..=9.
        assert_eq!(lens, vec![3, 1, 1, 5]);
    }

    #[test]
    fn points_outside_the_period_and_non_finite_values_are_skipped() {
        let series = vec![
            (-MINUTE, 5.0),
            (0, 1.0),
            (MINUTE, f64::NAN),
            (2 * MINUTE, 2.0),
            (3 * MINUTE, 9.0),
        ];
        let segs = segments(&series, &[], 0, 2 * MINUTE, 100);
        assert_eq!(segs, vec![vec![(0, 1.0), (2 * MINUTE, 2.0)]]);
    }
}
