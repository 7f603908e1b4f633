//! What the readings say about each alarm: the readings' own span beyond the limit
//! (an alarm is raised only after its rule's delay and clears only past its
//! hysteresis, so its times differ from the readings'), the peak of a measurement or
//! the state of a discrete input, and where the data of a still-open alarm ends.

use crate::config::Config;
use crate::config::rules::Condition;
use crate::model::TimestampMs;

use super::{Excursion, SensorSection};

/// Fills in `peak`, `state`, `readings_out` and `data_end` of each excursion from its
/// sensor's readings and its rule.
pub(super) fn annotate(cfg: &Config, sensors: &[SensorSection], excursions: &mut [Excursion], to: TimestampMs) {
    for e in excursions {
        e.acked_by = e.acked_by.take().map(|who| super::people::person(cfg, &who));
        let Some(sec) = sensors.iter().find(|s| s.id == e.sensor) else {
            continue;
        };
        let condition = cfg.rules.iter().find(|r| r.id == e.rule).map(|r| &r.condition);
        let end = e.end.unwrap_or(to);
        if e.end.is_none() {
            e.data_end = sec.series.iter().map(|(t, _)| *t).filter(|t| *t < to).max();
        }
        let vals = sec
            .series
            .iter()
            .filter(|(t, _)| *t >= e.start && *t <= end)
            .map(|(_, v)| *v);
        match condition {
            Some(Condition::State { equals }) => {
                let equals = *equals;
                e.peak = None;
                e.state = cfg.state_name(&e.sensor, equals).map(str::to_string);
                e.readings_out = out_span(&sec.series, e.start, end, |v| v == equals);
            }
            Some(Condition::Low { threshold, .. }) => {
                let threshold = *threshold;
                e.readings_out = out_span(&sec.series, e.start, end, |v| v < threshold);
                e.peak = peak(&sec.series, (e.start, end), e.readings_out, false);
            }
            Some(Condition::High { threshold, .. }) => {
                let threshold = *threshold;
                e.readings_out = out_span(&sec.series, e.start, end, |v| v > threshold);
                e.peak = peak(&sec.series, (e.start, end), e.readings_out, true);
            }
            Some(Condition::Rate { rising: false, .. }) => {
                e.peak = vals.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
            }
            _ if sec.states.is_some() => {
                // A discrete sensor's alarm from another rule: its state, never a number.
                e.state = e.peak.and_then(|v| cfg.state_name(&e.sensor, v)).map(str::to_string);
                e.peak = None;
            }
            _ => e.peak = vals.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
        }
    }
}

/// The first and last reading beyond the limit (`out`) that belong to an alarm raised
/// at `start` and ended at `end`: the run of such readings just before `start` (the
/// rule's delay) and those up to `end`. `series` is in time order.
pub(crate) fn out_span(
    series: &[(TimestampMs, f64)],
    start: TimestampMs,
    end: TimestampMs,
    out: impl Fn(f64) -> bool,
) -> Option<(TimestampMs, TimestampMs)> {
    let at = series.partition_point(|(t, _)| *t < start);
    let before = series.get(..at).unwrap_or_default();
    let mut first = None;
    let mut last = before.last().filter(|(_, v)| out(*v)).map(|(t, _)| *t);
    for (t, v) in before.iter().rev() {
        if !out(*v) {
            break;
        }
        first = Some(*t);
    }
    for (t, v) in series
        .get(at..)
        .unwrap_or_default()
        .iter()
        .take_while(|(t, _)| *t <= end)
    {
        if out(*v) {
            first.get_or_insert(*t);
            last = Some(*t);
        }
    }
    first.zip(last)
}

/// The highest (`high`) or lowest reading of a limit alarm: over its readings beyond the
/// limit and up to its end. Those begin before the alarm when the reading that tripped
/// it was stamped before the commit that raised it, or during the rule's delay.
fn peak(
    series: &[(TimestampMs, f64)],
    (start, end): (TimestampMs, TimestampMs),
    out: Option<(TimestampMs, TimestampMs)>,
    high: bool,
) -> Option<f64> {
    let from = out.map_or(start, |(first, _)| first.min(start));
    series
        .iter()
        .filter(|(t, _)| *t >= from && *t <= end)
        .map(|(_, v)| *v)
        .reduce(if high { f64::max } else { f64::min })
}

/// The span an excursion is shaded over on the chart: from the alarm's start to its
/// end, or, while it is still open, to the sensor's last reading (where the data ends),
/// never across the time with no data.
pub(crate) fn shaded(e: &Excursion) -> (TimestampMs, TimestampMs) {
    match (e.end, e.data_end) {
        (Some(end), _) => (e.start, end),
        (None, Some(last)) => (e.start, last.max(e.start)),
        (None, None) => (e.start, e.start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    #[test]
    fn the_readings_span_starts_before_a_delayed_alarm_and_ends_at_the_last_reading_out() {
        // Readings every 10 s: above -150 from 01:55:37 to 01:57:47 (t = 0..=130 s);
        // the alarm, with its 2-minute delay, was raised at 120 s and cleared at 130 s.
        let series: Vec<_> = (-6..20)
            .map(|i| (i * 10 * S, if (0..=13).contains(&i) { -140.0 } else { -190.0 }))
            .collect();
        assert_eq!(out_span(&series, 120 * S, 140 * S, |v| v > -150.0), Some((0, 130 * S)));
        // Nothing out of limit: no span.
        assert_eq!(out_span(&series, 150 * S, 190 * S, |v| v > -150.0), None);
    }

    #[test]
    fn the_peak_counts_the_reading_that_tripped_an_alarm_raised_just_after_it() {
        // Polled every 250 ms: -149.52 at 2.000 s tripped the alarm, raised at 2.010 s
        // when its commit ran; the next reading, -190.5, cleared it at 2.260 s.
        let series = [(1_750, -150.5), (2_000, -149.52), (2_250, -190.5)];
        let out = out_span(&series, 2_010, 2_260, |v| v > -150.0);
        assert_eq!(out, Some((2_000, 2_000)));
        assert_eq!(peak(&series, (2_010, 2_260), out, true), Some(-149.52));
        // A low alarm: the lowest.
        let series = [(0, -70.0), (10, -85.0), (20, -60.0)];
        let out = out_span(&series, 15, 30, |v| v < -80.0);
        assert_eq!(peak(&series, (15, 30), out, false), Some(-85.0));
    }

    #[test]
    fn an_open_excursion_is_shaded_to_the_last_reading_only() {
        let mut e = Excursion {
            alarm: 1,
            sensor: "s".into(),
            rule: "r".into(),
            severity: "alarm".into(),
            start: 100 * S,
            end: None,
            peak: None,
            state: None,
            readings_out: None,
            data_end: Some(400 * S),
            pages_sent: 0,
            pages_delivered: 0,
            acked_by: None,
            acked_at: None,
            ack_comment: None,
            ack_path: None,
            suppressed: None,
            test: false,
            corrective: None,
        };
        assert_eq!(shaded(&e), (100 * S, 400 * S));
        e.data_end = None;
        assert_eq!(shaded(&e), (100 * S, 100 * S));
        e.end = Some(200 * S);
        assert_eq!(shaded(&e), (100 * S, 200 * S));
    }
}
