//! Rule evaluation, pure: whether a rule's condition holds given a reading, and how a
//! condition that holds becomes a fired rule once its delay has run.
//!
//! Missing data never decides: a reading without a good value leaves a threshold
//! condition as it was, so a dead probe cannot clear an alarm (the `stale` and `fault`
//! rules speak for it instead).

use std::collections::VecDeque;

use crate::config::rules::{Condition, Rule};
use crate::model::{Quality, TimestampMs};

/// What a rule knows between readings. Persisted, so a restart resumes a pending delay
/// from its original start.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RuleState {
    /// Does the condition hold? `None` until a reading decided it.
    pub cond: Option<bool>,
    /// When the condition last began to hold (the start of the delay).
    pub since: Option<TimestampMs>,
    /// The delay has run out while the condition held: the rule has fired.
    pub fired: bool,
}

/// What happened to a rule at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RuleEvent {
    /// The condition began to hold; the alarm waits for the delay.
    Pending { since: TimestampMs },
    /// The condition ended before the delay ran out: nothing is raised.
    Cancelled,
    /// The condition held for the whole delay.
    Fired { since: TimestampMs },
    /// The condition of a fired rule no longer holds.
    Ended,
}

/// Applies a decided condition (`None`: undecided, nothing changes) observed at `at`,
/// then checks the delay against `now`. Returns what happened, in order.
pub fn step(
    rule: &Rule,
    state: &mut RuleState,
    cond: Option<bool>,
    at: TimestampMs,
    now: TimestampMs,
) -> Vec<RuleEvent> {
    let mut out = Vec::new();
    match cond {
        Some(true) if state.cond != Some(true) => {
            state.cond = Some(true);
            state.since = Some(at);
            if !rule.delay.is_zero() {
                out.push(RuleEvent::Pending { since: at });
            }
        }
        Some(false) if state.cond != Some(false) => {
            let was = state.cond;
            state.cond = Some(false);
            state.since = None;
            if state.fired {
                state.fired = false;
                out.push(RuleEvent::Ended);
            } else if was == Some(true) {
                out.push(RuleEvent::Cancelled);
            }
        }
        _ => {}
    }
    out.extend(expire(rule, state, now));
    out
}

/// Fires a rule whose condition has held for its whole delay by `now`.
pub fn expire(rule: &Rule, state: &mut RuleState, now: TimestampMs) -> Option<RuleEvent> {
    let since = state.since?;
    if state.cond == Some(true) && !state.fired && now.saturating_sub(since) >= crate::model::millis(rule.delay) {
        state.fired = true;
        return Some(RuleEvent::Fired { since });
    }
    None
}

/// The good samples of the last `window` of one sensor, for rate and forecast rules.
#[derive(Debug, Clone, Default)]
pub struct RateWindow {
    samples: VecDeque<(TimestampMs, f64)>,
    /// A forecast rule's newest fit: when it was made, and the time it gave until the
    /// threshold (`None`: moving away).
    pub fitted: Option<(TimestampMs, Option<i64>)>,
}

impl RateWindow {
    pub fn push(&mut self, t: TimestampMs, v: f64, window_ms: i64) {
        if self.samples.back().is_some_and(|(last, _)| *last > t) {
            return; // out of order: a rate over it would be meaningless
        }
        self.samples.push_back((t, v));
        while self.samples.front().is_some_and(|(first, _)| t - *first > window_ms) {
            self.samples.pop_front();
        }
    }

    /// Like [`RateWindow::push`], keeping at most one sample per `window_ms / 240` (a
    /// two-hour forecast window: one each 30 s, 240 in all, whatever the poll rate): a
    /// fit thins its samples to [`super::forecast::MAX_POINTS`] anyway, and the window
    /// stays a few kilobytes however fast the sensor is read.
    pub fn push_spaced(&mut self, t: TimestampMs, v: f64, window_ms: i64) {
        if self
            .samples
            .back()
            .is_some_and(|(last, _)| t.saturating_sub(*last) < window_ms / 240)
        {
            return;
        }
        self.push(t, v, window_ms);
    }

    /// How many samples the window holds.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the window holds no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Whether the samples span at least half the window: fewer would turn noise into a
    /// trend.
    fn spans_half(&self, window_ms: i64) -> bool {
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, _)), Some((t1, _))) => t1 > t0 && (t1 - t0).saturating_mul(2) >= window_ms,
            _ => false,
        }
    }

    /// Units per minute between the oldest and newest sample, once the samples span at
    /// least half the window (fewer would turn noise into a rate).
    pub fn per_minute(&self, window_ms: i64) -> Option<f64> {
        let (t0, v0) = *self.samples.front()?;
        let (t1, v1) = *self.samples.back()?;
        let span = t1 - t0;
        if span <= 0 || span * 2 < window_ms {
            return None;
        }
        Some((v1 - v0) / (span as f64 / 60_000.0))
    }
}

/// Whether a threshold, state or fault condition holds for a reading. `prev` is the
/// current condition (the deadband between the threshold and its hysteresis keeps it).
/// Stale, rate and combined conditions are decided by the engine, which has their inputs.
pub fn decide(condition: &Condition, prev: Option<bool>, value: Option<f64>, quality: Quality) -> Option<bool> {
    if let Condition::Fault = condition {
        return match quality {
            Quality::SensorFault => Some(true),
            Quality::Good => Some(false),
            _ => None,
        };
    }
    let v = match (quality, value) {
        (Quality::Good, Some(v)) if v.is_finite() => v,
        _ => return None,
    };
    match *condition {
        Condition::High { threshold, hysteresis } => band(v > threshold, v <= threshold - hysteresis, prev),
        Condition::Low { threshold, hysteresis } => band(v < threshold, v >= threshold + hysteresis, prev),
        Condition::State { equals } => Some((v - equals).abs() < 1e-9),
        _ => None,
    }
}

/// The rate condition for the current window.
pub fn decide_rate(condition: &Condition, prev: Option<bool>, window: &RateWindow) -> Option<bool> {
    let Condition::Rate {
        per_minute,
        window: w,
        rising,
        hysteresis,
    } = *condition
    else {
        return None;
    };
    let rate = window.per_minute(crate::model::millis(w))?;
    let speed = if rising { rate } else { -rate };
    band(speed > per_minute, speed <= per_minute - hysteresis, prev)
}

/// The forecast condition for the current window, fitted again at most every 1/120 of
/// the window (a two-hour window: once a minute) and otherwise as last decided; `now`
/// is the newest sample's time. The fit and its time to the threshold are kept in the
/// window for the page that names them.
pub fn decide_forecast(
    condition: &Condition,
    prev: Option<bool>,
    window: &mut RateWindow,
    now: TimestampMs,
) -> Option<bool> {
    let Condition::Forecast {
        threshold,
        rising,
        window: w,
        horizon,
    } = *condition
    else {
        return None;
    };
    let w = crate::model::millis(w);
    if !window.spans_half(w) {
        return None;
    }
    if let Some((at, _)) = window.fitted
        && now.saturating_sub(at) < w / 120
    {
        return None;
    }
    let fit = super::forecast::fit(window.samples.make_contiguous())?;
    let eta = super::forecast::eta_ms(&fit, threshold, rising);
    window.fitted = Some((now, eta));
    super::forecast::holds(Some(eta), crate::model::millis(horizon), prev)
}

/// Combines children's conditions: `all` holds when every child holds and ends when any
/// ends; `any` the other way round. Undecided children leave it undecided.
pub fn combine(all: bool, children: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let (mut any_true, mut any_false, mut any_unknown) = (false, false, false);
    for c in children {
        match c {
            Some(true) => any_true = true,
            Some(false) => any_false = true,
            None => any_unknown = true,
        }
    }
    if all {
        if any_false {
            Some(false)
        } else if any_unknown {
            None
        } else {
            Some(any_true)
        }
    } else if any_true {
        Some(true)
    } else if any_unknown {
        None
    } else {
        Some(false)
    }
}

/// Holds above the threshold, ends past the hysteresis, keeps `prev` in between.
fn band(on: bool, off: bool, prev: Option<bool>) -> Option<bool> {
    if on {
        Some(true)
    } else if off {
        Some(false)
    } else {
        Some(prev.unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::rules::{Origin, Severity};

    #[test]
    fn a_forecast_window_keeps_one_sample_per_240th_of_itself_whatever_the_poll_rate() {
        let mut w = RateWindow::default();
        let window = 2 * 3600 * 1000;
        // Four hours of readings every 250 ms: 57,600 readings.
        for i in 0..57_600 {
            w.push_spaced(i * 250, -190.0 + i as f64 * 1e-4, window);
        }
        // One each 30 s over the last two hours (and the edge).
        assert!((240..=241).contains(&w.len()), "{}", w.len());
    }

    fn rule(condition: Condition, delay_s: u64) -> Rule {
        Rule {
            id: "r".into(),
            sensor: 0,
            condition,
            severity: Severity::Alarm,
            delay: Duration::from_secs(delay_s),
            escalation: None,
            latching: false,
            raises: true,
            power_incident: false,
            restage: false,
            origin: Origin::Written(0),
        }
    }

    const HIGH: Condition = Condition::High {
        threshold: -150.0,
        hysteresis: 2.0,
    };

    #[test]
    fn high_holds_above_the_threshold_and_ends_only_past_the_hysteresis() {
        assert_eq!(decide(&HIGH, None, Some(-149.0), Quality::Good), Some(true));
        assert_eq!(decide(&HIGH, Some(true), Some(-151.0), Quality::Good), Some(true));
        assert_eq!(decide(&HIGH, Some(true), Some(-152.0), Quality::Good), Some(false));
        assert_eq!(decide(&HIGH, None, Some(-151.0), Quality::Good), Some(false));
    }

    #[test]
    fn low_mirrors_high() {
        let low = Condition::Low {
            threshold: 2.0,
            hysteresis: 0.5,
        };
        assert_eq!(decide(&low, None, Some(1.9), Quality::Good), Some(true));
        assert_eq!(decide(&low, Some(true), Some(2.3), Quality::Good), Some(true));
        assert_eq!(decide(&low, Some(true), Some(2.5), Quality::Good), Some(false));
    }

    #[test]
    fn readings_without_a_good_value_decide_nothing() {
        for q in [Quality::CommError, Quality::Stale, Quality::SensorFault] {
            assert_eq!(decide(&HIGH, Some(true), None, q), None);
        }
        assert_eq!(decide(&HIGH, Some(true), Some(f64::NAN), Quality::Good), None);
    }

    #[test]
    fn fault_holds_on_sensor_fault_and_ends_on_a_good_reading_only() {
        assert_eq!(decide(&Condition::Fault, None, None, Quality::SensorFault), Some(true));
        assert_eq!(decide(&Condition::Fault, Some(true), None, Quality::CommError), None);
        assert_eq!(
            decide(&Condition::Fault, Some(true), Some(1.0), Quality::Good),
            Some(false)
        );
    }

    #[test]
    fn state_matches_its_value() {
        let lid = Condition::State { equals: 1.0 };
        assert_eq!(decide(&lid, None, Some(1.0), Quality::Good), Some(true));
        assert_eq!(decide(&lid, Some(true), Some(0.0), Quality::Good), Some(false));
    }

    #[test]
    fn a_condition_shorter_than_the_delay_is_cancelled_and_never_fires() {
        let r = rule(HIGH, 120);
        let mut s = RuleState::default();
        assert_eq!(
            step(&r, &mut s, Some(true), 0, 0),
            vec![RuleEvent::Pending { since: 0 }]
        );
        assert_eq!(step(&r, &mut s, Some(true), 60_000, 60_000), vec![]);
        assert_eq!(
            step(&r, &mut s, Some(false), 119_000, 119_000),
            vec![RuleEvent::Cancelled]
        );
        assert_eq!(expire(&r, &mut s, 500_000), None);
        assert!(!s.fired);
    }

    #[test]
    fn a_condition_that_outlasts_the_delay_fires_once_with_its_start() {
        let r = rule(HIGH, 120);
        let mut s = RuleState::default();
        step(&r, &mut s, Some(true), 1_000, 1_000);
        assert_eq!(expire(&r, &mut s, 120_999), None);
        assert_eq!(expire(&r, &mut s, 121_000), Some(RuleEvent::Fired { since: 1_000 }));
        assert_eq!(expire(&r, &mut s, 200_000), None);
        assert_eq!(step(&r, &mut s, Some(true), 210_000, 210_000), vec![]);
        assert_eq!(step(&r, &mut s, Some(false), 220_000, 220_000), vec![RuleEvent::Ended]);
    }

    #[test]
    fn a_rule_without_delay_fires_on_the_first_reading() {
        let r = rule(HIGH, 0);
        let mut s = RuleState::default();
        assert_eq!(step(&r, &mut s, Some(true), 5, 5), vec![RuleEvent::Fired { since: 5 }]);
    }

    #[test]
    fn undecided_readings_keep_a_pending_delay_running() {
        let r = rule(HIGH, 60);
        let mut s = RuleState::default();
        step(&r, &mut s, Some(true), 0, 0);
        assert_eq!(step(&r, &mut s, None, 30_000, 30_000), vec![]);
        assert_eq!(
            step(&r, &mut s, None, 60_000, 60_000),
            vec![RuleEvent::Fired { since: 0 }]
        );
    }

    #[test]
    fn a_restored_state_resumes_the_delay_from_its_original_start() {
        let r = rule(HIGH, 600);
        let mut before = RuleState::default();
        step(&r, &mut before, Some(true), 0, 0);
        let mut after = before; // as persisted and loaded after a restart
        assert_eq!(expire(&r, &mut after, 599_999), None);
        assert_eq!(expire(&r, &mut after, 600_000), Some(RuleEvent::Fired { since: 0 }));
    }

    #[test]
    fn rate_needs_half_a_window_of_samples_and_follows_the_direction() {
        let rising = Condition::Rate {
            per_minute: 1.0,
            window: Duration::from_secs(300),
            rising: true,
            hysteresis: 0.0,
        };
        let falling = Condition::Rate {
            per_minute: 1.0,
            window: Duration::from_secs(300),
            rising: false,
            hysteresis: 0.0,
        };
        let mut w = RateWindow::default();
        w.push(0, -190.0, 300_000);
        w.push(60_000, -188.0, 300_000);
        assert_eq!(
            decide_rate(&rising, None, &w),
            None,
            "one minute of a five-minute window"
        );
        w.push(180_000, -184.0, 300_000); // 2 °C/min
        assert_eq!(decide_rate(&rising, None, &w), Some(true));
        assert_eq!(decide_rate(&falling, None, &w), Some(false));
        // Old samples leave the window.
        w.push(600_000, -184.0, 300_000);
        assert_eq!(w.per_minute(300_000), None);
    }

    #[test]
    fn all_and_any_combine_and_stay_undecided_on_missing_children() {
        assert_eq!(combine(true, [Some(true), Some(true)].into_iter()), Some(true));
        assert_eq!(combine(true, [Some(true), None].into_iter()), None);
        assert_eq!(combine(true, [Some(false), None].into_iter()), Some(false));
        assert_eq!(combine(false, [Some(false), Some(true)].into_iter()), Some(true));
        assert_eq!(combine(false, [Some(false), None].into_iter()), None);
        assert_eq!(combine(false, [Some(false), Some(false)].into_iter()), Some(false));
    }
}
