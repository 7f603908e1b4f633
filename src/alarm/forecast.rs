//! Where a sensor is heading, pure: a robust straight line through a window of its
//! readings and when that line reaches a threshold.
//!
//! The fit is Theil–Sen: the slope is the median of the slopes between every pair of
//! samples, the level the median of the samples moved along that slope to the newest
//! one. Unlike a line through the first and last reading, or least squares, a few spikes,
//! a fill's dip or a lid opening do not tilt it (it ignores up to ~29 % of wild points).
//! The window is thinned to at most [`MAX_POINTS`] evenly spaced samples first, so a
//! two-hour window at one reading a second costs the same as one of a few minutes.

use crate::model::TimestampMs;

/// The most samples a fit uses (1,770 pairs).
pub const MAX_POINTS: usize = 60;

/// Longer than this is no forecast (ten years).
const FAR_MS: f64 = 10.0 * 365.0 * 86_400_000.0;

/// A straight line through a window of readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Units per minute.
    pub slope_per_min: f64,
    /// The newest sample's time, and the line's value there.
    pub at: TimestampMs,
    pub value: f64,
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The Theil–Sen line through `samples` (in time order); `None` for fewer than three
/// samples or samples that do not span any time.
pub fn fit(samples: &[(TimestampMs, f64)]) -> Option<Fit> {
    let n = samples.len();
    if n < 3 {
        return None;
    }
    let k = n.min(MAX_POINTS);
    let points: Vec<(f64, f64)> = (0..k)
        .filter_map(|i| samples.get(i * (n - 1) / (k - 1)))
        .filter(|(_, v)| v.is_finite())
        .map(|&(t, v)| (t as f64 / 60_000.0, v))
        .collect();
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, (ti, vi)) in points.iter().enumerate() {
        for (tj, vj) in points.iter().skip(i + 1) {
            if tj > ti {
                slopes.push((vj - vi) / (tj - ti));
            }
        }
    }
    let slope = median(&mut slopes)?;
    let &(at, _) = samples.last()?;
    let last = at as f64 / 60_000.0;
    let mut levels: Vec<f64> = points.iter().map(|(t, v)| v + slope * (last - t)).collect();
    Some(Fit {
        slope_per_min: slope,
        at,
        value: median(&mut levels)?,
    })
}

/// Milliseconds from the fit's newest sample until its line reaches `threshold` going
/// up (`rising`) or down: 0 when it is there already; `None` when it moves away, stays
/// flat, or would take more than ten years.
pub fn eta_ms(fit: &Fit, threshold: f64, rising: bool) -> Option<i64> {
    let gap = if rising {
        threshold - fit.value
    } else {
        fit.value - threshold
    };
    if gap <= 0.0 {
        return Some(0);
    }
    let speed = if rising { fit.slope_per_min } else { -fit.slope_per_min };
    if speed.is_nan() || speed <= 0.0 {
        return None;
    }
    let ms = gap / speed * 60_000.0;
    (ms.is_finite() && ms <= FAR_MS).then_some(ms as i64)
}

/// The first of `thresholds` the line heads for (the lowest above its value when it
/// rises, the highest below when it falls) and the milliseconds until it gets there:
/// what a page says as "at this rate -150 °C in 2h 10m".
pub fn next_threshold(fit: &Fit, thresholds: &[f64]) -> Option<(f64, i64)> {
    let rising = fit.slope_per_min > 0.0;
    let ahead = thresholds
        .iter()
        .copied()
        .filter(|t| t.is_finite() && if rising { *t > fit.value } else { *t < fit.value });
    let next = if rising {
        ahead.reduce(f64::min)
    } else {
        ahead.reduce(f64::max)
    }?;
    Some((next, eta_ms(fit, next, rising)?))
}

/// Whether a forecast holds: the threshold is reached within `horizon_ms`. Once it
/// holds it ends only when the time left grows past 1.25 × the horizon or the trend
/// turns away: a deadband, like a threshold's hysteresis, so a noisy slope near the
/// horizon does not raise and clear the warning by turns. `None` (no fit yet) decides
/// nothing.
pub fn holds(eta: Option<Option<i64>>, horizon_ms: i64, prev: Option<bool>) -> Option<bool> {
    let eta = eta?;
    let on = eta.is_some_and(|e| e <= horizon_ms);
    let off = eta.is_none_or(|e| e > horizon_ms.saturating_add(horizon_ms / 4));
    Some(if on {
        true
    } else if off {
        false
    } else {
        prev.unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn a_steady_warming_is_fitted_exactly_and_reaches_its_threshold_when_the_line_says() {
        // -190 °C warming 0.5 °C a minute, a reading a minute for an hour.
        let s: Vec<_> = (0..=60).map(|i| (i * MIN, -190.0 + 0.5 * i as f64)).collect();
        let f = fit(&s).expect("fit");
        assert!((f.slope_per_min - 0.5).abs() < 1e-9, "{f:?}");
        assert!((f.value - -160.0).abs() < 1e-9, "{f:?}");
        assert_eq!(f.at, 60 * MIN);
        // From -160 to -150 at 0.5 °C/min: 20 minutes.
        assert_eq!(eta_ms(&f, -150.0, true), Some(20 * MIN));
        // Going down it never gets there; already past a lower threshold.
        assert_eq!(eta_ms(&f, -200.0, false), None);
        assert_eq!(eta_ms(&f, -170.0, true), Some(0));
    }

    #[test]
    fn spikes_and_a_fill_dip_do_not_tilt_the_line() {
        // The same warming with a lid opening (+40 °C for two readings) and a fill
        // (-20 °C for five): a line through the ends or least squares would be thrown.
        let s: Vec<_> = (0..=60)
            .map(|i| {
                let v = -190.0 + 0.5 * i as f64;
                let v = match i {
                    20 | 21 => v + 40.0,
                    50..=54 => v - 20.0,
                    _ => v,
                };
                (i * MIN, v)
            })
            .collect();
        let f = fit(&s).expect("fit");
        assert!((f.slope_per_min - 0.5).abs() < 0.05, "{f:?}");
        assert!((f.value - -160.0).abs() < 1.0, "{f:?}");
    }

    #[test]
    fn a_long_window_is_thinned_and_too_few_samples_are_no_fit() {
        let s: Vec<_> = (0..7_200).map(|i| (i * 1000, -80.0 - 0.01 * i as f64)).collect();
        let f = fit(&s).expect("fit");
        assert!((f.slope_per_min - -0.6).abs() < 1e-6, "{f:?}");
        assert!(fit(&s[..2]).is_none());
        assert!(fit(&[(0, 1.0), (0, 2.0), (0, 3.0)]).is_none(), "no time spanned");
    }

    #[test]
    fn a_page_names_the_next_threshold_ahead_of_the_trend() {
        let rising = Fit {
            slope_per_min: 0.5,
            at: 0,
            value: -160.0,
        };
        // -150 comes before -130; -170 is behind.
        assert_eq!(
            next_threshold(&rising, &[-130.0, -170.0, -150.0]),
            Some((-150.0, 20 * MIN))
        );
        let falling = Fit {
            slope_per_min: -0.5,
            ..rising
        };
        assert_eq!(next_threshold(&falling, &[-130.0, -170.0]), Some((-170.0, 20 * MIN)));
        let flat = Fit {
            slope_per_min: 0.0,
            ..rising
        };
        assert_eq!(next_threshold(&flat, &[-150.0]), None);
    }

    #[test]
    fn a_forecast_holds_within_the_horizon_and_ends_only_past_a_quarter_more() {
        let h = 120 * MIN;
        assert_eq!(holds(Some(Some(100 * MIN)), h, None), Some(true));
        assert_eq!(holds(Some(Some(140 * MIN)), h, Some(true)), Some(true));
        assert_eq!(holds(Some(Some(140 * MIN)), h, Some(false)), Some(false));
        assert_eq!(holds(Some(Some(151 * MIN)), h, Some(true)), Some(false));
        assert_eq!(holds(Some(None), h, Some(true)), Some(false), "the trend turned");
        assert_eq!(holds(None, h, Some(true)), None, "no fit decides nothing");
    }
}
