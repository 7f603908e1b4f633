//! The rules that look at a sensor's course rather than its value: `forecast` (a robust
//! line through the last `window` of readings reaches `threshold` within `horizon`) and
//! `no_event` (an expected discrete reading, such as a fill starting, has not come
//! `within` a time).

use std::time::Duration;

use super::check::Checker;
use super::raw;
use super::rules::Condition;

/// Default of a forecast's `window`.
const DEFAULT_WINDOW: Duration = Duration::from_secs(2 * 3600);

/// The longest `horizon` or `within` (a year): further than that is no alarm.
const LONGEST: Duration = Duration::from_secs(365 * 86_400);

fn direction(c: &mut Checker, p: &str, r: &raw::Rule) -> Option<bool> {
    match r.direction.as_deref() {
        None => Some(true),
        Some(d) => c
            .one_of(&format!("{p}.direction"), d, &["rising", "falling"])
            .map(|d| d == "rising"),
    }
}

fn bounded(c: &mut Checker, key: &str, given: Option<&str>, what: &str) -> Option<Duration> {
    let Some(text) = given else {
        c.err(key, format!("missing: {what}"));
        return None;
    };
    let d = c.positive_duration(key, Some(text), Duration::ZERO);
    if d > LONGEST {
        c.err(key, format!("at most 365 days, found {text:?}"));
        return None;
    }
    (!d.is_zero()).then_some(d)
}

/// `kind = "forecast"`: `threshold` (already checked), `direction`, `window` (default
/// 2h), `horizon` (required).
pub(super) fn forecast(c: &mut Checker, p: &str, r: &raw::Rule, threshold: f64) -> Option<Condition> {
    let window = c.positive_duration(&format!("{p}.window"), r.window.as_deref(), DEFAULT_WINDOW);
    let horizon = bounded(
        c,
        &format!("{p}.horizon"),
        r.horizon.as_deref(),
        "a forecast rule needs horizon = \"12h\" (warn when the threshold is that close)",
    );
    let rising = direction(c, p, r)?;
    Some(Condition::Forecast {
        threshold,
        rising,
        window,
        horizon: horizon?,
    })
}

/// `kind = "no_event"`: `equals` (already checked), `within` (required).
pub(super) fn no_event(c: &mut Checker, p: &str, r: &raw::Rule, equals: f64) -> Option<Condition> {
    let within = bounded(
        c,
        &format!("{p}.within"),
        r.within.as_deref(),
        "a no_event rule needs within = \"36h\" (the longest time without the event)",
    )?;
    Some(Condition::NoEvent { equals, within })
}
