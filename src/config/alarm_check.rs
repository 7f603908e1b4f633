//! `[alarm_check]`: how far the reference thermometer may be from a rule's threshold
//! when the alarm triggered (`tolerance`, in the sensor's unit), and how long a physical
//! alarm check may run before it ends as abandoned (`max_duration`).

use std::time::Duration;

use super::check::Checker;
use super::raw;

/// Default of `[alarm_check] tolerance`, in the sensor's unit.
pub const DEFAULT_TOLERANCE: f64 = 1.0;

/// Default of `[alarm_check] max_duration`.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(2 * 3600);

/// `[alarm_check]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmCheckConfig {
    /// A check passes when |reference − threshold| is at most this.
    pub tolerance: f64,
    /// A check not finished this long after it started is abandoned.
    pub max_duration: Duration,
}

impl Default for AlarmCheckConfig {
    fn default() -> Self {
        AlarmCheckConfig {
            tolerance: DEFAULT_TOLERANCE,
            max_duration: DEFAULT_MAX_DURATION,
        }
    }
}

/// Checks `[alarm_check]`: a finite tolerance not below zero; a positive duration no
/// longer than the longest shelving (the check holds its sensor's paging for as long).
pub(super) fn alarm_check(c: &mut Checker, raw: Option<&raw::AlarmCheck>) -> AlarmCheckConfig {
    let Some(a) = raw else {
        return AlarmCheckConfig::default();
    };
    let tolerance = match a.tolerance {
        None => DEFAULT_TOLERANCE,
        Some(t) if t.is_finite() && t >= 0.0 => t,
        Some(t) => {
            c.err(
                "alarm_check.tolerance",
                format!("expected a number of at least 0, found {t}"),
            );
            DEFAULT_TOLERANCE
        }
    };
    let max_duration = c.positive_duration(
        "alarm_check.max_duration",
        a.max_duration.as_deref(),
        DEFAULT_MAX_DURATION,
    );
    if max_duration > crate::alarm::engine::MAX_SHELVE {
        c.err(
            "alarm_check.max_duration",
            format!(
                "at most {} (the longest shelving: the check holds its sensor's paging that long), found {:?}",
                humantime::format_duration(crate::alarm::engine::MAX_SHELVE),
                a.max_duration.as_deref().unwrap_or_default()
            ),
        );
    }
    AlarmCheckConfig {
        tolerance,
        max_duration,
    }
}
